//! Several service processes on one PostgreSQL and one Redis: capacity and throttles hold across them.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::booking_rules::concurrent_bookings_on;
use crate::helpers::{fresh_database, local_time, phone, Backend, RedisServer, ADMIN_TOKEN};
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
