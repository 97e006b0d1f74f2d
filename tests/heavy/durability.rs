//! Durability and abuse against the real binary: acknowledged bookings survive `kill -9` (also
//! with batches in flight), and a flood of random API keys stays cheap.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{fresh_database, Backend, ADMIN_TOKEN};
use crate::process::{provision, send, Process};

async fn acknowledged_booking_survives_kill_9(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(backend, &dir).await;
    let client = reqwest::Client::new();
    let mut first = Process::start(&url, &[]);
    let key = provision(&first, &client).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let body = json!({ "serviceName": "sales", "phoneNumber": format!("+1415555{:04}", 2671 + i) });
        let (status, resp) =
            send(&client, Method::POST, first.url("/engagement/v3/callbacks/create"), &[("x-api-key", &key)], body)
                .await;
        assert_eq!(status, 200, "{resp}");
        ids.push(resp["data"]["id"].as_str().unwrap().to_string());
    }
    // Killed right after the last 200: no graceful shutdown, no flush.
    first.kill_9();
    let second = Process::start(&url, &[]);
    for id in &ids {
        let (status, resp) = send(
            &client,
            Method::POST,
            second.url("/engagement/v3/callbacks/retrieve"),
            &[("x-api-key", &key)],
            json!({ "id": id }),
        )
        .await;
        assert_eq!(status, 200, "acknowledged callback {id} lost after kill -9: {resp}");
        assert_eq!(resp["data"]["callbackState"], "QUEUED");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_booking_survives_kill_9_on_sqlite() {
    acknowledged_booking_survives_kill_9(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_booking_survives_kill_9_on_postgres() {
    acknowledged_booking_survives_kill_9(Backend::Postgres).await;
}

/// Group commit keeps "200 means committed": bookings stream in 64 at a time, so batches are being
/// written when the process is killed; every booking answered 200 is there after the restart.
async fn bookings_acknowledged_while_batches_are_in_flight_survive_kill_9(backend: Backend) {
    use futures_util::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(backend, &dir).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut first = Process::start(&url, &[("RINGBACK__HTTP__WORKERS", "2")]);
    let key = provision(&first, &client).await;
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let roomy = json!({ "maxQueued": 1000000, "perNumberLimit": { "limit": 1000, "windowSeconds": 60 },
        "serviceRateLimits": [{ "limit": 1000000, "windowSeconds": 60 }] });
    let h = [("authorization", auth.as_str())];
    assert_eq!(send(&client, Method::PUT, first.url("/admin/v1/tenants/acme/services/sales"), &h, roomy).await.0, 200);
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let burst = {
        let (client, create, key, acknowledged) =
            (client.clone(), first.url("/engagement/v3/callbacks/create"), key.clone(), acknowledged.clone());
        tokio::spawn(async move {
            futures_util::stream::iter(0..5000_u32)
                .map(|i| {
                    let body = json!({ "serviceName": "sales", "phoneNumber": format!("+1415{:07}", 3_000_000 + i) });
                    let req = client.post(&create).header("x-api-key", &key).json(&body);
                    let acknowledged = acknowledged.clone();
                    async move {
                        let Ok(r) = req.send().await else { return false };
                        if r.status() != 200 {
                            return false;
                        }
                        let Ok(v) = r.json::<Value>().await else { return false };
                        acknowledged.lock().unwrap().push(v["data"]["id"].as_str().unwrap().to_string());
                        true
                    }
                })
                .buffer_unordered(64)
                .collect::<Vec<bool>>()
                .await
        })
    };
    crate::helpers::eventually(60, "bookings acknowledged", || async { acknowledged.lock().unwrap().len() >= 300 })
        .await;
    first.kill_9();
    let answered = burst.await.unwrap();
    let ids = acknowledged.lock().unwrap().clone();
    assert!(answered.iter().any(|ok| !ok), "the kill interrupted bookings in flight");
    let second = Process::start(&url, &[]);
    let lost: Vec<String> = futures_util::stream::iter(ids.iter().cloned())
        .map(|id| {
            let req = client.post(second.url("/engagement/v3/callbacks/retrieve")).header("x-api-key", &key);
            async move {
                let status = req.json(&json!({ "id": id })).send().await.map(|r| r.status().as_u16()).unwrap_or(0);
                (status != 200).then_some(id)
            }
        })
        .buffer_unordered(16)
        .filter_map(|lost| async move { lost })
        .collect()
        .await;
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged bookings lost after kill -9, e.g. {:?}",
        lost.len(),
        ids.len(),
        &lost[..lost.len().min(3)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_acknowledged_while_batches_are_in_flight_survive_kill_9_on_sqlite() {
    bookings_acknowledged_while_batches_are_in_flight_survive_kill_9(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_acknowledged_while_batches_are_in_flight_survive_kill_9_on_postgres() {
    bookings_acknowledged_while_batches_are_in_flight_survive_kill_9(Backend::Postgres).await;
}

/// 20,000 random (well-formed) API keys at full speed from 127.0.0.1, while a valid key is used
/// from the same address: the valid key keeps succeeding without another database lookup; the
/// flood's lookups stop at the per-address allowance; every flood request is a counted 401. Own
/// process, so the lookup counters are this test's alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_random_keys_costs_bounded_lookups_and_never_locks_out_a_valid_key() {
    use futures_util::StreamExt;
    use rand::Rng;
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(Backend::Sqlite, &dir).await;
    let app = Process::start(&url, &[("RINGBACK__HTTP__WORKERS", "2")]);
    let client = reqwest::Client::new();
    let key = provision(&app, &client).await;
    let list = app.url("/engagement/v3/callbacks?limit=1");
    let valid = |client: reqwest::Client, list: String, key: String| async move {
        client.get(list).header("x-api-key", key).send().await.map(|r| r.status().as_u16()).unwrap_or(0)
    };
    assert_eq!(valid(client.clone(), list.clone(), key.clone()).await, 200);

    let started = Instant::now();
    let flood = futures_util::stream::iter(0..20_000)
        .map(|_| {
            let random: String =
                rand::thread_rng().sample_iter(rand::distributions::Alphanumeric).take(32).map(char::from).collect();
            valid(client.clone(), list.clone(), format!("rb_{random}"))
        })
        .buffer_unordered(32)
        .collect::<Vec<u16>>();
    let steady = async {
        let mut answers = Vec::new();
        while started.elapsed() < Duration::from_secs(3) || answers.len() < 20 {
            answers.push(valid(client.clone(), list.clone(), key.clone()).await);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        answers
    };
    let (flooded, steady) = tokio::join!(flood, steady);
    let elapsed = started.elapsed();
    assert!(flooded.iter().all(|s| *s == 401), "every random key is a 401");
    assert!(steady.iter().all(|s| *s == 200), "the valid key keeps working: {steady:?}");

    let metrics = client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let value =
        |series: &str| crate::helpers::metric_value(&metrics, series).unwrap_or_else(|| panic!("{series} exposed"));
    assert_eq!(value(r#"ges_api_key_lookups_total{result="valid"}"#), 1.0, "the valid key was looked up once");
    let unknown = value(r#"ges_api_key_lookups_total{result="unknown"}"#);
    // 60 per minute per address, all of it available as a burst.
    let allowed = 60.0 + elapsed.as_secs_f64() + 1.0;
    assert!((1.0..=allowed).contains(&unknown), "{unknown} lookups of unknown keys in {elapsed:?} (allowed {allowed})");
    assert_eq!(value("ges_api_key_lookups_refused_total") + unknown, 20_000.0, "the rest were refused without one");
    let counted_401: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("ges_http_failed_requests_total{") && l.contains(r#"httpCode="401""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(counted_401, 20_000.0, "the flood shows in the 401 counters the alerts read");

    // An admin change makes this replica read every key again; the valid key is looked up anew
    // from an address far past its unknown-key allowance, and is not refused.
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let admin = [("authorization", auth.as_str())];
    assert_eq!(send(&client, Method::PUT, app.url("/admin/v1/tenants/acme"), &admin, json!({})).await.0, 200);
    assert_eq!(
        valid(client.clone(), list.clone(), key.clone()).await,
        200,
        "a known key is never refused by the limit"
    );
    let metrics = client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(crate::helpers::metric_value(&metrics, r#"ges_api_key_lookups_total{result="valid"}"#), Some(2.0));
}
