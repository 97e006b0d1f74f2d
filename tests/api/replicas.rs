//! Several service processes on one PostgreSQL and one Redis: capacity and throttles hold across them.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::booking_rules::concurrent_bookings_on;
use crate::helpers::{
    eventually, fresh_database, local_time, phone, stream_entries, Backend, RedisServer, ADMIN_TOKEN, MULTI_PROCESS,
};
use crate::process::{send, Process};

async fn two_replicas(
    redis: &RedisServer,
    service: serde_json::Value,
) -> (Process, Process, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(Backend::Postgres, &dir).await;
    let env = [("RINGBACK__REDIS__URL", redis.url()), ("RINGBACK__DATABASE__MAX_CONNECTIONS", "16".to_string())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = Process::start(&url, &env);
    let b = Process::start(&url, &env);
    let client = reqwest::Client::new();
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let h = [("authorization", auth.as_str())];
    assert_eq!(send(&client, Method::PUT, a.url("/admin/v1/tenants/acme"), &h, json!({})).await.0, 200);
    assert_eq!(send(&client, Method::PUT, a.url("/admin/v1/tenants/acme/services/s"), &h, service).await.0, 200);
    let (_, key) = send(&client, Method::POST, a.url("/admin/v1/tenants/acme/api-keys"), &h, json!({})).await;
    (a, b, key["data"]["key"].as_str().unwrap().to_string(), dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_never_overbook_a_bucket() {
    let _alone = MULTI_PROCESS.lock().await;
    let redis = RedisServer::start();
    let service = json!({ "slotMinutes": 60, "slotCapacity": 25, "maxFuture": "1y",
        "perNumberLimit": { "limit": 100000, "windowSeconds": 60 }, "serviceRateLimits": [{ "limit": 1000000, "windowSeconds": 60 }] });
    let (a, b, key, _dir) = two_replicas(&redis, service).await;
    let bases = [a.url(""), b.url("")];
    let (ok, full) = concurrent_bookings_on(&bases, &key, "s", &local_time(1, "10:00", "UTC"), 1000, 0).await;
    assert_eq!((ok, full), (25, 975));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttles_hold_across_processes() {
    let _alone = MULTI_PROCESS.lock().await;
    let redis = RedisServer::start();
    let service = json!({ "perNumberLimit": { "limit": 3, "windowSeconds": 3600 }, "serviceRateLimits": [{ "limit": 20, "windowSeconds": 3600 }] });
    let (a, b, key, _dir) = two_replicas(&redis, service).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let create = |p: &Process, n: u32| {
        let req = client
            .post(p.url("/engagement/v3/callbacks/create"))
            .header("x-api-key", &key)
            .header("content-type", "application/json")
            .body(json!({ "serviceName": "s", "phoneNumber": phone(n) }).to_string());
        async move { req.send().await.unwrap().status().as_u16() }
    };
    // One number, ten requests spread over both processes: exactly three admitted.
    let same_number =
        futures_util::future::join_all((0..10).map(|i| create(if i % 2 == 0 { &a } else { &b }, 7))).await;
    assert_eq!(same_number.iter().filter(|s| **s == 200).count(), 3, "{same_number:?}");
    assert_eq!(same_number.iter().filter(|s| **s == 429).count(), 7);
    // Fifty numbers: the service window of 20 (3 already used) admits exactly 17 more.
    let many = futures_util::future::join_all((0..50).map(|i| create(if i % 2 == 0 { &a } else { &b }, 100 + i))).await;
    assert_eq!(many.iter().filter(|s| **s == 200).count(), 17, "{many:?}");
}

/// Replicas on one PostgreSQL with a Redis stream of the test's own, fast monitor ticks.
async fn stream_replicas(
    n: usize,
    redis: &RedisServer,
    extra: &[(&str, &str)],
    ack_timeout_seconds: u32,
) -> (Vec<Process>, String, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(Backend::Postgres, &dir).await;
    let redis_url = redis.url();
    let mut env: Vec<(&str, &str)> = vec![
        ("RINGBACK__REDIS__URL", redis_url.as_str()),
        ("RINGBACK__INTERNAL__TOKENS", crate::helpers::INTERNAL_TOKEN),
        ("RINGBACK__MONITOR__TICK_MS", "200"),
        ("RINGBACK__DATABASE__MAX_CONNECTIONS", "8"),
    ];
    env.extend_from_slice(extra);
    let processes: Vec<Process> = (0..n).map(|_| Process::start(&url, &env)).collect();
    let client = reqwest::Client::new();
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let h = [("authorization", auth.as_str())];
    let p = &processes[0];
    assert_eq!(send(&client, Method::PUT, p.url("/admin/v1/tenants/acme"), &h, json!({})).await.0, 200);
    let service = json!({ "slotCapacity": 1000000, "maxFuture": "1y", "maxQueued": 1000000, "ackTimeoutSeconds": ack_timeout_seconds,
        "perNumberLimit": { "limit": 100000, "windowSeconds": 60 }, "serviceRateLimits": [{ "limit": 1000000, "windowSeconds": 60 }] });
    assert_eq!(send(&client, Method::PUT, p.url("/admin/v1/tenants/acme/services/s"), &h, service).await.0, 200);
    let (_, key) = send(&client, Method::POST, p.url("/admin/v1/tenants/acme/api-keys"), &h, json!({})).await;
    (processes, key["data"]["key"].as_str().unwrap().to_string(), url, dir)
}

/// Book `n` scheduled callbacks for `when`, spread over the replicas, 64 at a time.
async fn book_many(bases: &[String], key: &str, when: &str, n: u32) {
    use futures_util::StreamExt;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let started = std::time::Instant::now();
    let statuses: Vec<u16> = futures_util::stream::iter(0..n)
        .map(|i| {
            let client = client.clone();
            let url = format!("{}/engagement/v3/callbacks/create", bases[i as usize % bases.len()]);
            let body = json!({ "serviceName": "s", "phoneNumber": phone(i), "desiredTime": when }).to_string();
            async move {
                // A pooled connection the server just closed fails without an answer: retry, safely,
                // under the same Idempotency-Key.
                for _ in 0..3 {
                    let sent = client
                        .post(&url)
                        .header("x-api-key", key)
                        .header("idempotency-key", format!("book-{i}"))
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    if let Ok(r) = sent {
                        return r.status().as_u16();
                    }
                }
                0
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(
        statuses.iter().all(|s| *s == 200),
        "bookings refused: {:?}",
        statuses.iter().filter(|s| **s != 200).take(5).collect::<Vec<_>>()
    );
    eprintln!("booked {n} callbacks in {:?}", started.elapsed());
}

fn at_offset(seconds: i64) -> String {
    (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(seconds)).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_hand_over_ten_thousand_due_callbacks_exactly_once() {
    let _alone = MULTI_PROCESS.lock().await;
    let redis = RedisServer::start();
    // A generous claim lease: on a saturated 2-core machine a replica can stall past 10 s, and a
    // lapsed lease is re-claimed as attempt 2 — correct, but not what this test is about (the
    // crash test covers it).
    let (replicas, key, _db, _dir) =
        // A loaded 2-core machine acknowledges 10,000 hand-offs slowly: give it the time.
        stream_replicas(3, &redis, &[("RINGBACK__MONITOR__CLAIM_LEASE_SECONDS", "60")], 600).await;
    let bases: Vec<String> = replicas.iter().map(|p| p.url("")).collect();
    // Hold hand-offs while booking, so all 10,000 are due at the moment they are released.
    let client = reqwest::Client::new();
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let headers = [("authorization", auth.as_str())];
    let pause = |paused: bool| {
        send(
            &client,
            Method::PUT,
            replicas[1].url("/admin/v1/tenants/acme/services/s/dispatch"),
            &headers,
            json!({ "paused": paused }),
        )
    };
    assert_eq!(pause(true).await.0, 200);
    book_many(&bases, &key, &at_offset(3), 10_000).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(pause(false).await.0, 200);
    let sim = tokio::spawn(ringback::simulator::run(
        ringback::simulator::Source::Redis {
            url: redis.url(),
            stream: "NewCallbackStream".into(),
            group: "sim".into(),
            consumer: "sim".into(),
        },
        ringback::simulator::SimulatorConfig {
            internal_url: bases[0].clone(),
            token: crate::helpers::INTERNAL_TOKEN.into(),
            ack_delay: Duration::ZERO,
            routing_delay: Duration::ZERO,
            processing_delay: Duration::ZERO,
            completion_delay: Duration::ZERO,
            outcomes: [0, 1, 0],
            stats_every: Duration::from_secs(5),
            concurrency: 64,
        },
    ));
    eventually(180, "10,000 hand-offs in the stream", || async { stream_entries(&redis.url()).await.len() >= 10_000 })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let entries = stream_entries(&redis.url()).await;
    let mut per_id: HashMap<&str, Vec<i64>> = HashMap::new();
    for (id, attempt, _) in &entries {
        per_id.entry(id.as_str()).or_default().push(*attempt);
    }
    let twice: Vec<_> = per_id.iter().filter(|(_, a)| a.len() > 1).take(5).collect();
    assert_eq!(entries.len(), 10_000, "none twice; e.g. {twice:?}");
    let ids: HashSet<&str> = entries.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids.len(), 10_000, "none lost");
    let later: Vec<_> = entries.iter().filter(|(_, attempt, _)| *attempt != 1).collect();
    assert!(
        later.is_empty(),
        "every hand-off is attempt 1; {} are not, e.g. {:?}",
        later.len(),
        later.iter().take(3).collect::<Vec<_>>()
    );
    assert!(entries.iter().all(|(_, _, kind)| kind == "callback.submit"));
    eventually(180, "the simulator acknowledged and finished every callback", || {
        let req = client
            .get(format!("{}/admin/v1/tenants/acme/callbacks?state=!COMPLETED&limit=1", bases[1]))
            .header("authorization", &auth);
        async move {
            let body: serde_json::Value = req.send().await.unwrap().json().await.unwrap();
            body["data"]["items"].as_array().is_some_and(|a| a.is_empty())
        }
    })
    .await;
    sim.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_dispatch_burst_loses_nothing() {
    let _alone = MULTI_PROCESS.lock().await;
    let redis = RedisServer::start();
    let (mut replicas, key, db, _dir) =
        // A replica killed between marking a batch published and writing it leaves that batch to
        // the ack timeout (mark before write: never the same attempt twice); 20 s lets the test
        // see it re-sent as the next attempt instead of waiting the default 120 s.
        stream_replicas(2, &redis, &[("RINGBACK__MONITOR__CLAIM_LEASE_SECONDS", "2")], 20).await;
    let bases: Vec<String> = replicas.iter().map(|p| p.url("")).collect();
    book_many(&bases, &key, &at_offset(15), 3000).await;
    // Kill one replica as soon as the burst starts reaching the stream.
    eventually(60, "burst started", || async { !stream_entries(&redis.url()).await.is_empty() }).await;
    replicas[0].kill_9();
    let _restarted = Process::start(
        &db,
        &[
            ("RINGBACK__REDIS__URL", redis.url().as_str()),
            ("RINGBACK__MONITOR__TICK_MS", "200"),
            ("RINGBACK__MONITOR__CLAIM_LEASE_SECONDS", "2"),
        ],
    );
    eventually(90, "every due callback handed over", || async {
        stream_entries(&redis.url()).await.iter().map(|(id, _, _)| id.clone()).collect::<HashSet<_>>().len() == 3000
    })
    .await;
    let entries = stream_entries(&redis.url()).await;
    let mut seen: HashMap<String, Vec<i64>> = HashMap::new();
    for (id, attempt, _) in entries {
        seen.entry(id).or_default().push(attempt);
    }
    for (id, attempts) in &seen {
        let distinct: HashSet<_> = attempts.iter().collect();
        assert_eq!(distinct.len(), attempts.len(), "{id} handed over twice with the same attempt: {attempts:?}");
    }
}
