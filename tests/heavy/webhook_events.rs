//! Lifecycle events from the transactional outbox (issue 24) against the real binary: none lost
//! and none invented when the replica is killed with `kill -9` during a burst of bookings, and
//! order per callback kept while two replicas deliver at once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::{Connection, Row};

use crate::helpers::{eventually, fresh_database, metric_value, Backend, ADMIN_TOKEN, MULTI_PROCESS};
use crate::process::{send, Process};
use crate::receiver::{Answer, Received, Receiver};

const ENV: [(&str, &str); 4] = [
    ("RINGBACK__MONITOR__DISPATCH", "webhooks"),
    ("RINGBACK__WEBHOOKS__ALLOW_HTTP", "127.0.0.1"),
    ("RINGBACK__WEBHOOKS__ALLOWED_NETWORKS", "127.0.0.0/8"),
    ("RINGBACK__DATABASE__MAX_CONNECTIONS", "16"),
];

/// Tenant `acme`, endpoint `dialer` (hand-offs) and `crm` (the `events`) at `receiver`, service
/// `sales` handed to `dialer` with room for a burst; returns an API key.
async fn provision(p: &Process, client: &reqwest::Client, receiver: &Receiver, events: &[&str]) -> String {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let h = [("authorization", auth.as_str())];
    let admin = |path: &str| p.url(&format!("/admin/v1/tenants/acme{path}"));
    assert_eq!(send(client, Method::PUT, admin(""), &h, json!({})).await.0, 200);
    for (name, body) in
        [("dialer", json!({ "url": receiver.url })), ("crm", json!({ "url": receiver.url, "events": events }))]
    {
        assert_eq!(send(client, Method::PUT, admin(&format!("/webhooks/{name}")), &h, body).await.0, 200);
    }
    let service = json!({ "dispatch": { "target": "webhook", "webhook": "dialer" }, "maxFuture": "1w", "maxQueued": 1000000, "slotMinutes": 60, "slotCapacity": 100000,
        "perNumberLimit": { "limit": 1000, "windowSeconds": 60 }, "serviceRateLimits": [{ "limit": 1000000, "windowSeconds": 60 }] });
    assert_eq!(send(client, Method::PUT, admin("/services/sales"), &h, service).await.0, 200);
    let (status, body) = send(client, Method::POST, admin("/api-keys"), &h, json!({})).await;
    assert_eq!(status, 200);
    body["data"]["key"].as_str().unwrap().to_string()
}

fn in_an_hour() -> String {
    (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3_600)).to_string()
}

/// (webhook-id, type, callback id) of every lifecycle event received (hand-offs left out).
fn events(received: &[Received]) -> Vec<(String, String, String)> {
    received
        .iter()
        .filter(|r| r.id.starts_with("evt_"))
        .map(|r| {
            let body: Value = r.json();
            (
                r.id.clone(),
                body["type"].as_str().unwrap().to_string(),
                body["data"]["callbackId"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn callback_ids(url: &str) -> HashSet<String> {
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let rows = sqlx::query("SELECT id FROM callbacks").fetch_all(&mut conn).await.unwrap();
    rows.iter().map(|r| r.get::<String, _>(0)).collect()
}

async fn pending_events(url: &str) -> i64 {
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::query("SELECT COUNT(*) FROM outbox WHERE endpoint IS NOT NULL").fetch_one(&mut conn).await.unwrap().get(0)
}

/// 2,000 bookings stream in 64 at a time and the replica is killed with `kill -9` midway. After
/// a restart every committed booking — every acknowledged one among them — has exactly one
/// `callback.created` (delivered at least once; repeats share its `webhook-id`), and no event
/// exists for a booking that was never committed.
async fn no_event_is_lost_or_invented_by_kill_9_during_a_burst(backend: Backend) {
    let _alone = MULTI_PROCESS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(backend, &dir).await;
    let receiver = Receiver::start(Answer::Ok);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut first = Process::start(&url, &ENV);
    let key = provision(&first, &client, &receiver, &["callback.created"]).await;
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let burst = {
        let (client, create, key, acknowledged) =
            (client.clone(), first.url("/engagement/v3/callbacks/create"), key.clone(), acknowledged.clone());
        tokio::spawn(async move {
            futures_util::stream::iter(0..2000_u32)
                .map(|i| {
                    let body = json!({ "serviceName": "sales", "phoneNumber": format!("+1415{:07}", 4_000_000 + i), "desiredTime": in_an_hour() });
                    let req = client.post(&create).header("x-api-key", &key).json(&body);
                    let acknowledged = acknowledged.clone();
                    async move {
                        let Ok(r) = req.send().await else { return false };
                        let Ok(v) = r.json::<Value>().await else { return false };
                        if let Some(id) = v["data"]["id"].as_str() {
                            acknowledged.lock().unwrap().push(id.to_string());
                        }
                        true
                    }
                })
                .buffer_unordered(64)
                .collect::<Vec<bool>>()
                .await
        })
    };
    eventually(60, "bookings acknowledged", || async { acknowledged.lock().unwrap().len() >= 500 }).await;
    first.kill_9();
    let answered = burst.await.unwrap();
    assert!(answered.iter().any(|ok| !ok), "the kill interrupted bookings in flight");
    let acknowledged: HashSet<String> = acknowledged.lock().unwrap().iter().cloned().collect();
    let _second = Process::start(&url, &ENV);
    eventually(60, "every event delivered", || async { pending_events(&url).await == 0 }).await;

    let committed = callback_ids(&url).await;
    assert!(acknowledged.is_subset(&committed), "acknowledged bookings are committed");
    let received = events(&receiver.received());
    let mut ids_per_callback: HashMap<String, HashSet<String>> = HashMap::new();
    for (webhook_id, kind, callback) in &received {
        assert_eq!(kind, "callback.created");
        ids_per_callback.entry(callback.clone()).or_default().insert(webhook_id.clone());
    }
    let heard: HashSet<String> = ids_per_callback.keys().cloned().collect();
    let missing: Vec<&String> = committed.difference(&heard).collect();
    let invented: Vec<&String> = heard.difference(&committed).collect();
    assert!(
        missing.is_empty(),
        "{} committed bookings without an event, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(3)]
    );
    assert!(invented.is_empty(), "events for bookings never committed: {invented:?}");
    assert!(ids_per_callback.values().all(|ids| ids.len() == 1), "one event per booking; repeats share its webhook-id");
    eprintln!(
        "kill -9 burst: {} acknowledged, {} committed, {} deliveries of {} events",
        acknowledged.len(),
        committed.len(),
        received.len(),
        heard.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_event_is_lost_or_invented_by_kill_9_during_a_burst_on_postgres() {
    no_event_is_lost_or_invented_by_kill_9_during_a_burst(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_event_is_lost_or_invented_by_kill_9_during_a_burst_on_sqlite() {
    no_event_is_lost_or_invented_by_kill_9_during_a_burst(Backend::Sqlite).await;
}

/// Two replicas on one PostgreSQL deliver at once (the receiver answers slowly, so both have
/// deliveries in flight); each callback's events still arrive created → rescheduled → cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_per_callback_holds_while_two_replicas_deliver_at_once() {
    let _alone = MULTI_PROCESS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(Backend::Postgres, &dir).await;
    let receiver = Receiver::start(Answer::SleepThenAcknowledge(20));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let a = Process::start(&url, &ENV);
    let b = Process::start(&url, &ENV);
    let key =
        provision(&a, &client, &receiver, &["callback.created", "callback.rescheduled", "callback.cancelled"]).await;
    let replicas = [a.url("/engagement/v3/callbacks"), b.url("/engagement/v3/callbacks")];
    let h = [("x-api-key", key.as_str())];
    let ids: Vec<String> = futures_util::stream::iter(0..150_u32)
        .map(|i| {
            let (client, base, h) = (client.clone(), replicas[i as usize % 2].clone(), h);
            async move {
                let body = json!({ "serviceName": "sales", "phoneNumber": format!("+1415{:07}", 5_000_000 + i), "desiredTime": in_an_hour() });
                let (status, r) = send(&client, Method::POST, format!("{base}/create"), &h, body).await;
                assert_eq!(status, 200, "{r}");
                let id = r["data"]["id"].as_str().unwrap().to_string();
                let later = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(7_200)).to_string();
                let body = json!({ "id": id, "desiredTime": later });
                assert_eq!(send(&client, Method::POST, format!("{base}/reschedule"), &h, body).await.0, 200);
                assert_eq!(send(&client, Method::POST, format!("{base}/cancel"), &h, json!({ "id": id })).await.0, 200);
                id
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    eventually(90, "every event delivered", || async { pending_events(&url).await == 0 }).await;

    let mut order: HashMap<String, Vec<String>> = HashMap::new();
    let mut seen = HashSet::new();
    for (webhook_id, kind, callback) in events(&receiver.received()) {
        if seen.insert(webhook_id) {
            order.entry(callback).or_default().push(kind);
        }
    }
    for id in &ids {
        assert_eq!(order[id], ["callback.created", "callback.rescheduled", "callback.cancelled"], "callback {id}");
    }
    // Both replicas delivered.
    for p in [&a, &b] {
        let metrics = client.get(p.url("/metrics")).send().await.unwrap().text().await.unwrap();
        let delivered: f64 = metrics
            .lines()
            .filter(|l| l.starts_with("ges_webhook_deliveries_total{") && l.contains(r#"endpoint="crm""#))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert!(delivered > 0.0, "replica on port {} delivered none", p.port);
    }
}

/// The outbox's backlog gauges (issue 24) in a process of their own (they are unlabelled, and the
/// recorder is process-wide): events waiting for a failing endpoint show as pending, with the age
/// of the oldest change; once the endpoint answers, both return to 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backlog_gauges_follow_waiting_events() {
    let _alone = MULTI_PROCESS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(Backend::Sqlite, &dir).await;
    let receiver = Receiver::start(Answer::Status(500));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut env = ENV.to_vec();
    env.push(("RINGBACK__MONITOR__RECOVERY_SECONDS", "1"));
    let p = Process::start(&url, &env);
    let key = provision(&p, &client, &receiver, &["callback.created"]).await;
    for i in 0..3_u32 {
        let body = json!({ "serviceName": "sales", "phoneNumber": format!("+1415{:07}", 6_000_000 + i), "desiredTime": in_an_hour() });
        let (status, r) =
            send(&client, Method::POST, p.url("/engagement/v3/callbacks/create"), &[("x-api-key", &key)], body).await;
        assert_eq!(status, 200, "{r}");
    }
    let metrics = || async { client.get(p.url("/metrics")).send().await.unwrap().text().await.unwrap() };
    eventually(20, "three events pending, the oldest aging", || async {
        let m = metrics().await;
        metric_value(&m, "ges_webhook_outbox_pending") == Some(3.0)
            && metric_value(&m, "ges_webhook_outbox_oldest_age_seconds").is_some_and(|age| age >= 1.0)
    })
    .await;
    receiver.answer_with(Answer::Ok);
    eventually(30, "the backlog delivered", || async {
        let m = metrics().await;
        metric_value(&m, "ges_webhook_outbox_pending") == Some(0.0)
            && metric_value(&m, "ges_webhook_outbox_oldest_age_seconds") == Some(0.0)
    })
    .await;
}
