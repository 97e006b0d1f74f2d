//! API keys that prove themselves (issue 22): signed keys, legacy keys known by their hash,
//! forged keys refused without a lookup, and what a public (widget) key can and cannot do.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::{Connection, Row};

use crate::helpers::{eventually, phone, sql, Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(backend:
    issued_keys_are_signed_and_a_changed_character_is_refused,
    a_legacy_key_works_once_known_and_stops_within_the_key_ttl_when_revoked,
    a_widget_keys_priority_is_ignored_and_its_bookings_are_limited_per_address,
    call_in_create_is_throttled_per_caller_and_per_group,
);

/// A legacy-format key: `rb_` + 32 base64url characters.
fn legacy_key(n: u32) -> String {
    format!("rb_legacyKey{n:023}")
}

/// A legacy key written as an older version did.
async fn insert_legacy_key(app: &TestApp, tenant: &str, n: u32) -> String {
    let key = legacy_key(n);
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    let statement = format!(
        "INSERT INTO api_keys (id, tenant_id, prefix, key_hash, created_ms, scope)
         SELECT 'legacy-{n}', id, '{}', '{hash}', 0, 'full' FROM tenants WHERE name = '{tenant}'",
        &key[..10]
    );
    sql(app, &[statement.as_str()]).await;
    key
}

async fn list_status(app: &TestApp, key: &str) -> u16 {
    app.call(Method::GET, "/engagement/v3/callbacks?limit=1", &[("x-api-key", key)], None).await.status.as_u16()
}

async fn issued_keys_are_signed_and_a_changed_character_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.tenant_with_service("acme", "sales", json!({})).await;
    assert!(key.starts_with("rbk_") && key.len() == 4 + 54, "{key}");
    assert_eq!(list_status(&app, &key).await, 200);
    let mut forged: Vec<char> = key.chars().collect();
    forged[20] = if forged[20] == 'x' { 'y' } else { 'x' };
    let forged: String = forged.into_iter().collect();
    let refused = app.call(Method::GET, "/engagement/v3/callbacks?limit=1", &[("x-api-key", &forged)], None).await;
    refused.expect(401, Some("UNAUTHORIZED"));
    // A second replica of the same deployment verifies the first one's keys (one secret, kept in
    // the database) — here the same app after a restart of its key cache by an admin write.
    app.admin(Method::PUT, "/tenants/acme", Some(json!({}))).await.expect(200, None);
    assert_eq!(list_status(&app, &key).await, 200);
}

async fn a_legacy_key_works_once_known_and_stops_within_the_key_ttl_when_revoked(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("RINGBACK__CACHE__KEY_TTL_SECONDS", "1")]).await;
    app.tenant_with_service("acme", "sales", json!({})).await;
    let legacy = insert_legacy_key(&app, "acme", 1).await;
    // The set of legacy keys is re-read every key TTL.
    eventually(10, "the legacy key is known", || async { list_status(&app, &legacy).await == 200 }).await;
    assert_eq!(list_status(&app, &legacy_key(99)).await, 401, "an unknown legacy key");
    let listed = app.admin(Method::GET, "/tenants/acme/api-keys", None).await;
    assert!(listed.body["data"]["items"].as_array().unwrap().iter().any(|k| k["id"] == "legacy-1"));
    app.admin(Method::DELETE, "/tenants/acme/api-keys/legacy-1", None).await.expect(200, None);
    assert_eq!(list_status(&app, &legacy).await, 401, "revoked at once on the replica that revoked it");
}

async fn a_widget_keys_priority_is_ignored_and_its_bookings_are_limited_per_address(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("RINGBACK__CLIENTS__WIDGET_BOOKINGS_PER_MINUTE", "3")]).await;
    let full = app.tenant_with_service("acme", "sales", json!({ "priority": 2 })).await;
    let r = app.admin(Method::POST, "/tenants/acme/api-keys", Some(json!({ "scope": "widget" }))).await;
    let widget = r.body["data"]["key"].as_str().expect("widget key").to_string();

    let by_widget =
        app.create(&widget, json!({ "serviceName": "sales", "phoneNumber": phone(1), "priority": 99 })).await;
    by_widget.expect(200, None);
    let by_full = app.create(&full, json!({ "serviceName": "sales", "phoneNumber": phone(2), "priority": 99 })).await;
    by_full.expect(200, None);
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&app.database_url).await.unwrap();
    let priority = |id: String| format!("SELECT CAST(priority AS BIGINT) AS p FROM callbacks WHERE id = '{id}'");
    let p: i64 = sqlx::query(&priority(by_widget.id())).fetch_one(&mut conn).await.unwrap().get("p");
    assert_eq!(p, 2, "a widget key's priority is ignored: the service's applies");
    let p: i64 = sqlx::query(&priority(by_full.id())).fetch_one(&mut conn).await.unwrap().get("p");
    assert_eq!(p, 99, "a full key may still set it");

    // Two more from this address fill its allowance of 3; the next is refused as api.md says.
    for n in 3..5 {
        app.create(&widget, json!({ "serviceName": "sales", "phoneNumber": phone(n) })).await.expect(200, None);
    }
    let refused = app.create(&widget, json!({ "serviceName": "sales", "phoneNumber": phone(9) })).await;
    refused.expect(429, Some("THROTTLED"));
    assert_eq!(refused.body["data"]["slots"], json!({}));
    let retry_after: u64 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let alarm = r#"WIDGET_RATE_LIMIT_REACHED{tenant="acme"}"#;
    assert!(crate::helpers::metric_value(&app.metrics().await, alarm).is_some_and(|v| v >= 1.0));
    // A full key from the same address is not limited.
    app.create(&full, json!({ "serviceName": "sales", "phoneNumber": phone(10) })).await.expect(200, None);
}

async fn call_in_create_is_throttled_per_caller_and_per_group(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.admin(Method::PUT, "/tenants/acme", Some(json!({}))).await.expect(200, None);
    let group = json!({ "numbers": [phone(9001), phone(9002), phone(9003), phone(9004), phone(9005)],
        "accessCodeDigits": 4, "uniqueNumbers": false,
        "perNumberLimit": { "limit": 2, "windowSeconds": 3600 }, "rateLimit": { "limit": 4, "windowSeconds": 3600 } });
    app.admin(Method::PUT, "/tenants/acme/call-in-groups/vip", Some(group)).await.expect(200, None);
    let r = app.admin(Method::POST, "/tenants/acme/api-keys", Some(json!({}))).await;
    let key = r.body["data"]["key"].as_str().unwrap().to_string();
    let create = |from: String| {
        let key = key.clone();
        let app = &app;
        async move {
            app.public(&key, "/call-in/requests/create", json!({ "groupName": "vip", "fromPhoneNumber": from })).await
        }
    };
    create(phone(1)).await.expect(200, None);
    create(phone(1)).await.expect(200, None);
    let third = create(phone(1)).await;
    third.expect(429, Some("THROTTLED"));
    assert!(third.headers.contains_key("retry-after"));
    create(phone(2)).await.expect(200, None);
    create(phone(3)).await.expect(200, None);
    create(phone(4)).await.expect(429, Some("THROTTLED"));
    let bad = app.admin(
        Method::PUT,
        "/tenants/acme/call-in-groups/vip",
        Some(json!({ "numbers": [phone(9001)], "rateLimit": { "limit": 0, "windowSeconds": 60 } })),
    );
    let bad = tokio::time::timeout(Duration::from_secs(30), bad).await.unwrap();
    bad.expect(400, Some("VALIDATION_FAILED"));
    assert_eq!(bad.body["status"]["details"][0]["field"], "rateLimit.limit");
}

/// Throttle keys name a number by a keyed hash (issue 23): after bookings and a call-in request
/// on PostgreSQL + Redis, no Redis key holds the number's digits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_redis_key_holds_a_phone_number() {
    let redis = crate::helpers::RedisServer::start();
    let app = TestApp::spawn_with(Backend::Postgres, &[("RINGBACK__REDIS__URL", &redis.url())]).await;
    let key = app.tenant_with_service("acme", "sales", json!({})).await;
    let number = phone(4242);
    app.create(&key, json!({ "serviceName": "sales", "phoneNumber": number })).await.expect(200, None);
    app.admin(Method::PUT, "/tenants/acme/call-in-groups/vip", Some(json!({ "numbers": [phone(9001)] })))
        .await
        .expect(200, None);
    app.public(&key, "/call-in/requests/create", json!({ "groupName": "vip", "fromPhoneNumber": number }))
        .await
        .expect(200, None);
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut conn).await.unwrap();
    assert!(keys.iter().any(|k| k.contains(":number:")), "the per-number counters exist: {keys:?}");
    let digits = number.trim_start_matches('+');
    let national = &digits[1..];
    assert!(!keys.iter().any(|k| k.contains(national)), "a key holds the number: {keys:?}");
}
