//! Durability and abuse against the real binary: acknowledged bookings survive `kill -9` (also
//! with batches in flight), and a flood of random API keys stays cheap.

use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// A fresh replica behind one proxy address (issue 22): while 20,000 forged keys of both shapes
/// (`rbk_` with a tag that does not verify, `rb_` that is no legacy key) arrive from that address,
/// 100 tenants' valid keys — 50 signed, 50 legacy — make their first request. Every valid key
/// answers 200, every forged one 401, and no forged key costs a database lookup. Own process, so
/// the lookup counters are this test's alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_keys_of_both_shapes_cost_no_lookup_and_never_lock_out_valid_keys_behind_one_proxy() {
    use futures_util::StreamExt;
    use rand::Rng;
    use sha2::{Digest, Sha256};
    use sqlx::Connection;
    let _alone = crate::helpers::MULTI_PROCESS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(Backend::Sqlite, &dir).await;
    let behind_proxy = [("RINGBACK__HTTP__WORKERS", "2"), ("RINGBACK__CLIENTS__TRUSTED_PROXIES", "127.0.0.1")];
    let client = reqwest::Client::new();
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let admin = [("authorization", auth.as_str())];
    let mut keys = Vec::new();
    {
        let setup = Process::start(&url, &behind_proxy);
        sqlx::any::install_default_drivers();
        let mut db = sqlx::AnyConnection::connect(&url).await.unwrap();
        for t in 0..100 {
            let tenant = setup.url(&format!("/admin/v1/tenants/t{t}"));
            assert_eq!(send(&client, Method::PUT, tenant.clone(), &admin, json!({})).await.0, 200);
            if t % 2 == 0 {
                let (status, body) = send(&client, Method::POST, format!("{tenant}/api-keys"), &admin, json!({})).await;
                assert_eq!(status, 200);
                keys.push(body["data"]["key"].as_str().unwrap().to_string());
            } else {
                let key = format!("rb_legacy{t:026}");
                let hash = hex::encode(Sha256::digest(key.as_bytes()));
                let insert = format!(
                    "INSERT INTO api_keys (id, tenant_id, prefix, key_hash, created_ms, scope)
                     SELECT 'legacy-{t}', id, '{}', '{hash}', 0, 'full' FROM tenants WHERE name = 't{t}'",
                    &key[..10]
                );
                sqlx::Executor::execute(&mut db, insert.as_str()).await.unwrap();
                keys.push(key);
            }
        }
    }
    let app = Process::start(&url, &behind_proxy);
    let list = app.url("/engagement/v3/callbacks?limit=1");
    let get = |client: reqwest::Client, list: String, key: String| async move {
        client
            .get(list)
            .header("x-api-key", key)
            .header("x-forwarded-for", "203.0.113.7")
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    let flood = futures_util::stream::iter(0..20_000)
        .map(|i| {
            let random = |n: usize| -> String {
                rand::thread_rng().sample_iter(rand::distributions::Alphanumeric).take(n).map(char::from).collect()
            };
            let forged = if i % 2 == 0 { format!("rbk_{}", random(54)) } else { format!("rb_{}", random(32)) };
            get(client.clone(), list.clone(), forged)
        })
        .buffer_unordered(32)
        .collect::<Vec<u16>>();
    let first_uses = async {
        let mut answers = Vec::new();
        for key in &keys {
            answers.push(get(client.clone(), list.clone(), key.clone()).await);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        answers
    };
    let (flooded, first_uses) = tokio::join!(flood, first_uses);
    assert!(flooded.iter().all(|s| *s == 401), "every forged key is a 401");
    assert!(first_uses.iter().all(|s| *s == 200), "every valid key answers 200: {first_uses:?}");

    let metrics = client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let value = |series: &str| crate::helpers::metric_value(&metrics, series);
    assert_eq!(value(r#"ges_api_key_lookups_total{result="valid"}"#), Some(100.0), "one lookup per valid key");
    assert_eq!(value(r#"ges_api_key_lookups_total{result="unknown"}"#), None, "no lookup for a forged key");
    let refused = value(r#"ges_api_key_lookups_refused_total{reason="forged"}"#).unwrap_or(0.0)
        + value(r#"ges_api_key_lookups_refused_total{reason="unknown_legacy"}"#).unwrap_or(0.0)
        + value(r#"ges_api_key_lookups_refused_total{reason="malformed"}"#).unwrap_or(0.0);
    assert_eq!(refused, 20_000.0, "every forged key was refused without a lookup");
    assert_eq!(value("ges_api_key_legacy_uses_total"), Some(50.0), "legacy uses are counted");
    let counted_401: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("ges_http_failed_requests_total{") && l.contains(r#"httpCode="401""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(counted_401, 20_000.0, "the flood shows in the 401 counters the alerts read");
}
