//! Hand-offs over signed webhooks (issue 24): endpoints with secrets shown once and rotation,
//! Standard Webhooks signatures checked by the reference library, acknowledgement by answer,
//! the same `webhook-id` again for a request whose answer was lost, a non-2xx as a failed attempt,
//! no redirect followed, and no request to an internal address.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use sqlx::{Connection, Row};

use crate::helpers::{eventually, phone, Backend, TestApp};
use crate::on_both_backends;
use crate::receiver::{verify_with_reference_library, Answer, Receiver};

on_both_backends!(backend:
    endpoints_are_validated_and_their_secret_is_shown_once,
    hand_offs_are_signed_acknowledged_by_answer_and_verified_by_the_reference_library,
    a_lost_answer_is_resent_as_the_same_webhook_id_and_a_500_spends_an_attempt,
    a_platform_key_reports_its_own_tenants_states_on_the_external_listener_and_nothing_else,
);

/// Loopback receivers are allowed by configuration, as the README says a test deployment would.
async fn app(backend: Backend) -> TestApp {
    TestApp::spawn_with(
        backend,
        &[
            ("RINGBACK__MONITOR__DISPATCH", "webhooks"),
            ("RINGBACK__MONITOR__TICK_MS", "100"),
            ("RINGBACK__WEBHOOKS__ALLOW_HTTP", "127.0.0.1,localhost"),
            ("RINGBACK__WEBHOOKS__ALLOWED_NETWORKS", "127.0.0.0/8"),
        ],
    )
    .await
}

/// Tenant `acme` with endpoint `dialer` at `url` and service `sales` handing over to it; returns
/// (API key, the endpoint's secret).
async fn webhook_service(app: &TestApp, url: &str, endpoint: Value) -> (String, String) {
    app.admin(Method::PUT, "/tenants/acme", Some(json!({}))).await.expect(200, None);
    let mut body = json!({ "url": url });
    body.as_object_mut().unwrap().extend(endpoint.as_object().unwrap().clone());
    let created = app.admin(Method::PUT, "/tenants/acme/webhooks/dialer", Some(body)).await;
    created.expect(200, None);
    let secret = created.body["data"]["secret"].as_str().expect("the secret, once").to_string();
    let service = json!({ "dispatch": { "target": "webhook", "webhook": "dialer" }, "ackTimeoutSeconds": 60 });
    app.admin(Method::PUT, "/tenants/acme/services/sales", Some(service)).await.expect(200, None);
    let r = app.admin(Method::POST, "/tenants/acme/api-keys", Some(json!({}))).await;
    (r.body["data"]["key"].as_str().unwrap().to_string(), secret)
}

async fn acked(app: &TestApp, id: &str) -> bool {
    let mut conn = sqlx::AnyConnection::connect(&app.database_url).await.unwrap();
    let row =
        sqlx::query(&format!("SELECT acked_ms FROM callbacks WHERE id = '{id}'")).fetch_one(&mut conn).await.unwrap();
    row.get::<Option<i64>, _>(0).is_some()
}

async fn endpoints_are_validated_and_their_secret_is_shown_once(backend: Backend) {
    let app = app(backend).await;
    app.admin(Method::PUT, "/tenants/acme", Some(json!({}))).await.expect(200, None);
    let put = |body: Value| app.admin(Method::PUT, "/tenants/acme/webhooks/dialer", Some(body));
    for (url, why) in [
        ("http://hooks.example.com/x", "plain http to a host not in allow_http"),
        ("https://169.254.169.254/latest/meta-data", "link-local (cloud metadata)"),
        ("https://10.0.0.1/hook", "private"),
        ("https://[::ffff:10.0.0.1]/hook", "IPv4-mapped private"),
    ] {
        let r = put(json!({ "url": url })).await;
        r.expect(400, Some("VALIDATION_FAILED"));
        assert_eq!(r.body["status"]["details"][0]["field"], "url", "{why}: {}", r.body);
    }
    let r = put(json!({ "url": "http://127.0.0.1:9/h", "events": ["callback.nope"], "timeoutMs": 30_001 })).await;
    r.expect(400, Some("VALIDATION_FAILED"));
    assert_eq!(r.body["status"]["details"].as_array().unwrap().len(), 2);

    let created = put(json!({ "url": "http://127.0.0.1:9/h", "events": ["callback.created"] })).await;
    created.expect(200, None);
    let secret = created.body["data"]["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let again = put(json!({ "url": "http://127.0.0.1:9/h2" })).await;
    again.expect(200, None);
    assert!(again.body["data"].get("secret").is_none(), "a later PUT keeps the secret and does not show it");
    let read = app.admin(Method::GET, "/tenants/acme/webhooks/dialer", None).await;
    read.expect(200, None);
    assert!(read.body["data"].get("secret").is_none() && read.text.find("whsec_").is_none(), "GET never shows it");
    assert_eq!(read.body["data"]["url"], "http://127.0.0.1:9/h2");
    let rotated = app.admin(Method::POST, "/tenants/acme/webhooks/dialer/rotate-secret", None).await;
    rotated.expect(200, None);
    assert_ne!(rotated.body["data"]["secret"].as_str().unwrap(), secret);
    assert!(rotated.body["data"]["previousSecretValidUntil"].is_string());
    // A service may only name an endpoint that exists; in webhooks mode, only an endpoint.
    let r = app
        .admin(
            Method::PUT,
            "/tenants/acme/services/s",
            Some(json!({ "dispatch": { "target": "webhook", "webhook": "nope" } })),
        )
        .await;
    r.expect(400, Some("VALIDATION_FAILED"));
    assert_eq!(r.body["status"]["details"][0]["field"], "dispatch.webhook");
    let r = app.admin(Method::PUT, "/tenants/acme/services/s", Some(json!({}))).await;
    r.expect(400, Some("VALIDATION_FAILED"));
    assert_eq!(r.body["status"]["details"][0]["field"], "dispatch");
    let audit = app.admin(Method::GET, "/audit?limit=50", None).await;
    assert!(audit.text.contains("webhooks/dialer/rotate-secret"), "writes are audited: {}", audit.text);
    assert!(!audit.text.contains(&secret), "the audit log never holds a secret");
    app.admin(Method::DELETE, "/tenants/acme/webhooks/dialer", None).await.expect(200, None);
    app.admin(Method::GET, "/tenants/acme/webhooks/dialer", None).await.expect(404, Some("NOT_FOUND"));
}

async fn hand_offs_are_signed_acknowledged_by_answer_and_verified_by_the_reference_library(backend: Backend) {
    let receiver = Receiver::start(Answer::Acknowledge);
    let app = app(backend).await;
    let (key, secret) = webhook_service(&app, &receiver.url, json!({})).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let r = app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(n) })).await;
        r.expect(200, None);
        ids.push(r.id());
    }
    eventually(20, "five hand-offs received", || async { receiver.received().len() >= 5 }).await;
    for id in &ids {
        eventually(10, "acknowledged by the answer", || async { acked(&app, id).await }).await;
    }
    let received = receiver.received();
    assert_eq!(received.len(), 5, "each once");
    let mut seen: Vec<String> = received.iter().map(|r| r.id.clone()).collect();
    seen.sort();
    let mut expected: Vec<String> = ids.iter().map(|id| format!("{id}:1")).collect();
    expected.sort();
    assert_eq!(seen, expected, "webhook-id is <callback id>:<attempt>, attempt 1");
    let first = &received[0];
    let body = first.json();
    assert_eq!(body["type"], "callback.submit");
    assert_eq!(body["data"]["attempt"], 1);
    assert!(body["data"]["phoneNumber"].as_str().unwrap().starts_with("+1415"), "the platform must dial it: {body}");
    assert_eq!(body["data"]["service"], "sales");

    // The reference library verifies every delivery; a tampered body and a wrong secret fail.
    let mut cases: Vec<Value> = received.iter().map(|r| r.case(&secret, &r.body, "valid")).collect();
    cases.push(first.case(&secret, &first.body.replace("sales", "sale5"), "invalid"));
    cases.push(first.case("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &first.body, "invalid"));
    let mut stale = first.case(&secret, &first.body, "invalid");
    stale["headers"]["webhook-timestamp"] = Value::from((first.timestamp.parse::<i64>().unwrap() - 600).to_string());
    cases.push(stale);

    // During a rotation both secrets sign, and each verifies on its own.
    let rotated = app.admin(Method::POST, "/tenants/acme/webhooks/dialer/rotate-secret", None).await;
    let new_secret = rotated.body["data"]["secret"].as_str().unwrap().to_string();
    app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(9) })).await.expect(200, None);
    eventually(20, "the sixth hand-off", || async { receiver.received().len() >= 6 }).await;
    let during = receiver.received()[5].clone();
    assert_eq!(during.signature.split(' ').count(), 2, "two signatures: {}", during.signature);
    cases.push(during.case(&secret, &during.body, "valid"));
    cases.push(during.case(&new_secret, &during.body, "valid"));
    verify_with_reference_library(&cases);

    let deliveries = app.admin(Method::GET, "/tenants/acme/webhooks/dialer/deliveries", None).await;
    deliveries.expect(200, None);
    let items = deliveries.body["data"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 6);
    assert!(items.iter().all(|d| d["statusCode"] == 200 && d["eventType"] == "callback.submit"));
    assert!(!deliveries.text.contains("+1415"), "no bodies in the delivery record");
    let metrics = app.metrics().await;
    assert!(metrics.contains(
        r#"ges_webhook_deliveries_total{tenant="acme",endpoint="dialer",kind="callback.submit",result="delivered"}"#
    ));
}

async fn a_lost_answer_is_resent_as_the_same_webhook_id_and_a_500_spends_an_attempt(backend: Backend) {
    let receiver = Receiver::start(Answer::SleepThenAcknowledge(1_500));
    let app = app(backend).await;
    let (key, _) = webhook_service(&app, &receiver.url, json!({ "timeoutMs": 300 })).await;
    let r = app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(1) })).await;
    let id = r.id();
    eventually(10, "the first request", || async { !receiver.received().is_empty() }).await;
    receiver.answer_with(Answer::Acknowledge);
    eventually(20, "the same hand-off again", || async { receiver.received().len() >= 2 }).await;
    eventually(10, "acknowledged", || async { acked(&app, &id).await }).await;
    let ids: Vec<String> = receiver.received().iter().map(|r| r.id.clone()).collect();
    assert!(ids.iter().all(|w| *w == format!("{id}:1")), "the same webhook-id, no attempt spent: {ids:?}");

    // A 500 is a failed attempt (maxDispatchAttempts counts it), re-sent after a backoff under the
    // same webhook-id, as Standard Webhooks senders retry a message; a 302 is not followed.
    receiver.answer_with(Answer::Status(500));
    let r = app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(2) })).await;
    let second = r.id();
    let sent_for = |id: &str| receiver.received().iter().filter(|r| r.id.starts_with(&format!("{id}:"))).count();
    eventually(10, "the refused request", || async { sent_for(&second) >= 1 }).await;
    receiver.answer_with(Answer::Redirect);
    eventually(20, "the redirected request", || async { sent_for(&second) >= 2 }).await;
    receiver.answer_with(Answer::Acknowledge);
    eventually(20, "acknowledged at last", || async { acked(&app, &second).await }).await;
    assert_eq!(sent_for(&second), 3, "500, then 302 (not followed), then acknowledged");
    assert!(receiver.received().iter().filter(|r| r.id.starts_with(&second)).all(|r| r.id == format!("{second}:1")));
    let mut conn = sqlx::AnyConnection::connect(&app.database_url).await.unwrap();
    let failed: i64 = sqlx::query(&format!("SELECT failed_attempts FROM callbacks WHERE id = '{second}'"))
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    assert_eq!(failed, 2, "the 500 and the 302 each spent an attempt");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let deliveries = app.admin(Method::GET, "/tenants/acme/webhooks/dialer/deliveries", None).await;
    let codes: Vec<Value> =
        deliveries.body["data"]["items"].as_array().unwrap().iter().map(|d| d["statusCode"].clone()).collect();
    assert!(codes.contains(&json!(500)) && codes.contains(&json!(302)) && codes.contains(&Value::Null), "{codes:?}");
}

/// A name that resolves to a loopback address is refused at configuration time unless loopback is
/// allowed, and a request is never sent to an address the rules refuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_resolving_to_an_internal_address_is_refused() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("RINGBACK__WEBHOOKS__ALLOW_HTTP", "localhost")]).await;
    app.admin(Method::PUT, "/tenants/acme", Some(json!({}))).await.expect(200, None);
    let r =
        app.admin(Method::PUT, "/tenants/acme/webhooks/dialer", Some(json!({ "url": "http://localhost:9/h" }))).await;
    r.expect(400, Some("VALIDATION_FAILED"));
    assert!(r.body["status"]["details"][0]["problem"].as_str().unwrap().contains("resolves only to"), "{}", r.body);
}

async fn a_platform_key_reports_its_own_tenants_states_on_the_external_listener_and_nothing_else(backend: Backend) {
    let receiver = Receiver::start(Answer::Ok);
    let app = app(backend).await;
    let (key, _) = webhook_service(&app, &receiver.url, json!({})).await;
    let r = app.admin(Method::POST, "/tenants/acme/api-keys", Some(json!({ "scope": "platform" }))).await;
    let platform = r.body["data"]["key"].as_str().unwrap().to_string();
    let id = app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(1) })).await.id();
    eventually(20, "the hand-off", || async { !receiver.received().is_empty() }).await;
    assert!(!acked(&app, &id).await, "a plain 200 publishes but does not acknowledge");

    let report = |key: String, id: String, body: Value| {
        let app = &app;
        async move {
            let path = format!("/engagement/v3/callbacks/{id}/state");
            app.call_on(&app.external, Method::POST, &path, &[("x-api-key", &key)], Some(body)).await
        }
    };
    report(platform.clone(), id.clone(), json!({ "state": "QUEUED", "attempt": 1 })).await.expect(200, None);
    assert!(acked(&app, &id).await, "the platform's QUEUED is the acknowledgement");
    for state in ["ROUTING", "PROCESSING"] {
        report(platform.clone(), id.clone(), json!({ "state": state, "attempt": 1 })).await.expect(200, None);
    }
    let done = report(
        platform.clone(),
        id.clone(),
        json!({ "state": "COMPLETED", "reason": "AGENT_CONNECTED", "attempt": 1 }),
    )
    .await;
    done.expect(200, None);
    assert_eq!(done.body["data"]["callbackState"], "COMPLETED");
    let stats = app
        .call_on(
            &app.external,
            Method::PUT,
            "/engagement/v3/queues/sales/stats",
            &[("x-api-key", &platform)],
            Some(json!({ "ewt": 30 })),
        )
        .await;
    stats.expect(200, None);

    // Only its own tenant's callbacks, and nothing but reports; no other key may report.
    app.admin(Method::PUT, "/tenants/other", Some(json!({}))).await.expect(200, None);
    app.admin(
        Method::PUT,
        "/tenants/other/services/s",
        Some(json!({ "dispatch": { "target": "webhook", "webhook": "x" } })),
    )
    .await
    .expect(400, Some("VALIDATION_FAILED"));
    app.admin(Method::PUT, "/tenants/other/webhooks/x", Some(json!({ "url": receiver.url }))).await.expect(200, None);
    app.admin(
        Method::PUT,
        "/tenants/other/services/s",
        Some(json!({ "dispatch": { "target": "webhook", "webhook": "x" } })),
    )
    .await
    .expect(200, None);
    let r = app.admin(Method::POST, "/tenants/other/api-keys", Some(json!({}))).await;
    let other_key = r.body["data"]["key"].as_str().unwrap().to_string();
    let theirs = app.create(&other_key, json!({ "serviceName": "s", "phoneNumber": phone(2) })).await.id();
    report(platform.clone(), theirs, json!({ "state": "QUEUED", "attempt": 1 })).await.expect(404, Some("NOT_FOUND"));
    app.create(&platform, json!({ "serviceName": "sales", "phoneNumber": phone(3) }))
        .await
        .expect(403, Some("FORBIDDEN_SCOPE"));
    report(key.clone(), id.clone(), json!({ "state": "QUEUED", "attempt": 1 }))
        .await
        .expect(403, Some("FORBIDDEN_SCOPE"));
}

/// With `webhooks.encryption_key_file`, secrets are stored sealed (AES-256-GCM): the database never
/// holds the `whsec_` text, and hand-offs are still signed with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_encrypted_at_rest_when_a_key_is_configured() {
    use base64::Engine;
    let key_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key_file.path(), base64::engine::general_purpose::STANDARD.encode([42u8; 32])).unwrap();
    let receiver = Receiver::start(Answer::Acknowledge);
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("RINGBACK__MONITOR__TICK_MS", "100"),
            ("RINGBACK__WEBHOOKS__ALLOW_HTTP", "127.0.0.1"),
            ("RINGBACK__WEBHOOKS__ALLOWED_NETWORKS", "127.0.0.0/8"),
            ("RINGBACK__WEBHOOKS__ENCRYPTION_KEY_FILE", key_file.path().to_str().unwrap()),
        ],
    )
    .await;
    let (key, secret) = webhook_service(&app, &receiver.url, json!({})).await;
    let mut conn = sqlx::AnyConnection::connect(&app.database_url).await.unwrap();
    let stored: String = sqlx::query("SELECT secret FROM webhook_endpoints").fetch_one(&mut conn).await.unwrap().get(0);
    assert!(stored.starts_with("enc:v1:") && !stored.contains(&secret), "{stored}");
    app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(1) })).await.expect(200, None);
    eventually(20, "the hand-off", || async { !receiver.received().is_empty() }).await;
    let got = receiver.received()[0].clone();
    verify_with_reference_library(&[got.case(&secret, &got.body, "valid")]);
}

/// A receiver that answers 2xx but never acknowledges meets the existing failure rules: the next
/// attempt after `ackTimeoutSeconds` (a new `webhook-id`), `SUBMIT_FAILED` after `maxDispatchAttempts`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_hand_off_follows_the_existing_failure_rules() {
    let receiver = Receiver::start(Answer::Ok);
    let app = app(Backend::Sqlite).await;
    webhook_service(&app, &receiver.url, json!({})).await;
    let service = json!({ "dispatch": { "target": "webhook", "webhook": "dialer" }, "ackTimeoutSeconds": 1, "maxDispatchAttempts": 2 });
    app.admin(Method::PUT, "/tenants/acme/services/sales", Some(service)).await.expect(200, None);
    let r = app.admin(Method::POST, "/tenants/acme/api-keys", Some(json!({}))).await;
    let key = r.body["data"]["key"].as_str().unwrap().to_string();
    let id = app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(1) })).await.id();
    eventually(30, "SUBMIT_FAILED", || async {
        let r = app.retrieve(&key, &id).await;
        r.body["data"]["callbackReason"] == "SUBMIT_FAILED" || r.body["data"]["reason"] == "SUBMIT_FAILED"
    })
    .await;
    let ids: Vec<String> = receiver.received().iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, vec![format!("{id}:1"), format!("{id}:2")], "one request per attempt, then no more");
}

/// A URL that passed its `PUT` is checked again at every delivery: one stored as an internal IP
/// literal, or a name that resolves to loopback where loopback is not allowed, sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_is_checked_again_at_delivery_time() {
    let receiver = Receiver::start(Answer::Acknowledge);
    let port = receiver.url.trim_start_matches("http://127.0.0.1:").split('/').next().unwrap().to_string();
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[("RINGBACK__MONITOR__TICK_MS", "100"), ("RINGBACK__WEBHOOKS__ALLOW_HTTP", "localhost")],
    )
    .await;
    app.admin(Method::PUT, "/tenants/acme", Some(json!({}))).await.expect(200, None);
    // As if DNS or the rules changed after the PUT: the stored URL now reaches loopback.
    let config = json!({ "url": format!("http://localhost:{port}/hooks") }).to_string();
    crate::helpers::sql(
        &app,
        &[&format!(
            "INSERT INTO webhook_endpoints (tenant_id, name, config, secret, created_ms, updated_ms)
             SELECT id, 'dialer', '{config}', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 0, 0 FROM tenants WHERE name = 'acme'"
        )],
    )
    .await;
    app.admin(
        Method::PUT,
        "/tenants/acme/services/sales",
        Some(json!({ "dispatch": { "target": "webhook", "webhook": "dialer" } })),
    )
    .await
    .expect(200, None);
    let r = app.admin(Method::POST, "/tenants/acme/api-keys", Some(json!({}))).await;
    let key = r.body["data"]["key"].as_str().unwrap().to_string();
    app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(1) })).await.expect(200, None);
    eventually(20, "a refused delivery recorded", || async {
        let d = app.admin(Method::GET, "/tenants/acme/webhooks/dialer/deliveries", None).await;
        d.text.contains("resolves only to")
    })
    .await;
    assert!(receiver.received().is_empty(), "nothing reached the loopback receiver");
}

/// Delivery records and failed lifecycle events are kept 7 days, then purged with the other bookkeeping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_records_are_purged_after_seven_days() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("RINGBACK__MONITOR__RECOVERY_SECONDS", "1")]).await;
    let now = jiff::Timestamp::now().as_millisecond();
    let six_days = now - 6 * 86_400_000;
    let eight_days = now - 8 * 86_400_000;
    let insert = |at: i64, id: &str| {
        format!(
            "INSERT INTO webhook_deliveries (tenant_id, endpoint, event_type, webhook_id, status_code, latency_ms, error, created_ms)
             VALUES ('t', 'e', 'callback.submit', '{id}', 200, 1, NULL, {at})"
        )
    };
    crate::helpers::sql(&app, &[&insert(six_days, "kept:1"), &insert(eight_days, "purged:1")]).await;
    let ids = || async {
        let mut conn = sqlx::AnyConnection::connect(&app.database_url).await.unwrap();
        let rows = sqlx::query("SELECT webhook_id FROM webhook_deliveries").fetch_all(&mut conn).await.unwrap();
        rows.iter().map(|r| r.get::<String, _>(0)).collect::<Vec<String>>()
    };
    eventually(10, "the old record purged", || async { !ids().await.contains(&"purged:1".to_string()) }).await;
    assert_eq!(ids().await, vec!["kept:1".to_string()]);
    // Lifecycle events given up on go with them, after as long.
    let failed_event = |at: i64, callback: &str| {
        format!(
            "INSERT INTO outbox (tenant_id, endpoint, callback_id, service_name, event_type, attempt, occurred_ms, next_ms, failed_ms)
             VALUES ('t', 'e', '{callback}', 's', 'callback.created', 0, {at}, {at}, {at})"
        )
    };
    crate::helpers::sql(&app, &[&failed_event(six_days, "kept"), &failed_event(eight_days, "purged")]).await;
    let events = || async {
        let mut conn = sqlx::AnyConnection::connect(&app.database_url).await.unwrap();
        let rows = sqlx::query("SELECT callback_id FROM outbox").fetch_all(&mut conn).await.unwrap();
        rows.iter().map(|r| r.get::<String, _>(0)).collect::<Vec<String>>()
    };
    eventually(10, "the old failed event purged", || async { events().await == ["kept"] }).await;
}

/// Redelivery sends a hand-off again as the same attempt (same `webhook-id`) while it awaits its
/// acknowledgement; once acknowledged it has moved on (409), and an unknown delivery is 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_off_awaiting_its_acknowledgement_can_be_redelivered_once_acknowledged_not() {
    let receiver = Receiver::start(Answer::Ok);
    let app = app(Backend::Sqlite).await;
    let (key, _) = webhook_service(&app, &receiver.url, json!({})).await;
    let id = app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(1) })).await.id();
    eventually(20, "the first request", || async { receiver.received().len() == 1 }).await;
    let deliveries = app.admin(Method::GET, "/tenants/acme/webhooks/dialer/deliveries", None).await;
    let delivery = deliveries.body["data"]["items"][0]["id"].as_i64().expect("a delivery id");
    let path = format!("/tenants/acme/webhooks/dialer/deliveries/{delivery}/redeliver");
    receiver.answer_with(Answer::Acknowledge);
    app.admin(Method::POST, &path, None).await.expect(200, None);
    eventually(20, "the same hand-off again", || async { receiver.received().len() == 2 }).await;
    eventually(10, "acknowledged", || async { acked(&app, &id).await }).await;
    assert!(receiver.received().iter().all(|r| r.id == format!("{id}:1")), "the same webhook-id");
    app.admin(Method::POST, &path, None).await.expect(409, Some("ILLEGAL_TRANSITION"));
    app.admin(Method::POST, "/tenants/acme/webhooks/dialer/deliveries/999999/redeliver", None)
        .await
        .expect(404, Some("NOT_FOUND"));
    let audit = app.admin(Method::GET, "/audit?limit=50", None).await;
    assert!(audit.text.contains(&format!("deliveries/{delivery}/redeliver")), "audited");
}

/// W3C Trace Context (issue 25): a hand-off starts a trace of its own (the monitor's publish span),
/// sent as the `traceparent` header and the entry's field, keeping the booking's sampling decision;
/// the booking's trace id stays the booking's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_off_carries_a_trace_context_of_its_own() {
    let receiver = Receiver::start(Answer::Acknowledge);
    let app = app(Backend::Sqlite).await;
    let (key, _) = webhook_service(&app, &receiver.url, json!({})).await;
    let booking = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let body = json!({ "serviceName": "sales", "phoneNumber": phone(1) });
    let headers = [("x-api-key", key.as_str()), ("traceparent", booking)];
    app.call(Method::POST, "/engagement/v3/callbacks/create", &headers, Some(body)).await.expect(200, None);
    eventually(20, "the hand-off", || async { !receiver.received().is_empty() }).await;
    let handoff = receiver.received()[0].clone();
    let header = handoff.traceparent.clone().expect("a traceparent header");
    let parts: Vec<&str> = header.split('-').collect();
    assert_eq!((parts.len(), parts[0], parts[1].len(), parts[2].len(), parts[3]), (4, "00", 32, 16, "01"), "{header}");
    assert_ne!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736", "a trace of its own, linked to the booking's");
    assert_eq!(handoff.json()["data"]["traceparent"], header.as_str(), "the entry's field and the header agree");
}
