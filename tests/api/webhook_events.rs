//! Lifecycle events over signed webhooks (issue 24): written in the transaction of the change they
//! report (none for a change that rolled back), delivered in order per callback with the number
//! masked unless asked for, verified by the Standard Webhooks reference library, retried with the
//! same `webhook-id` after a failure, and an endpoint failing past `webhooks.retry_for_hours`
//! disabled with an alarm.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{json, Value};
use sqlx::{Connection, Row};

use crate::helpers::{eventually, in_seconds, metric_value, phone, Backend, TestApp, INTERNAL_TOKEN};
use crate::on_both_backends;
use crate::receiver::{verify_with_reference_library, Answer, Received, Receiver};

on_both_backends!(backend:
    every_lifecycle_event_reaches_its_subscribers_in_order_signed_and_masked,
    a_change_that_rolled_back_writes_no_event,
    a_failing_endpoint_gets_the_same_event_again_then_is_disabled_with_an_alarm,
);

const ALL_CALLBACK_EVENTS: [&str; 6] = [
    "callback.created",
    "callback.rescheduled",
    "callback.cancelled",
    "callback.dispatched",
    "callback.state_changed",
    "callback.completed",
];

async fn app(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    let mut env = vec![
        ("RINGBACK__MONITOR__DISPATCH", "webhooks"),
        ("RINGBACK__MONITOR__TICK_MS", "100"),
        ("RINGBACK__WEBHOOKS__ALLOW_HTTP", "127.0.0.1"),
        ("RINGBACK__WEBHOOKS__ALLOWED_NETWORKS", "127.0.0.0/8"),
        ("RINGBACK__INTERNAL__TOKENS", INTERNAL_TOKEN),
    ];
    env.extend_from_slice(extra);
    TestApp::spawn_with(backend, &env).await
}

fn in_hours(h: i64) -> String {
    in_seconds(h * 3_600)
}

/// A tenant name of this test's own: metric series are process-wide and tests share the process.
fn unique_tenant() -> String {
    format!("ev-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// Create (or update) endpoint `name` of `tenant`; returns its secret when created.
async fn endpoint(app: &TestApp, tenant: &str, name: &str, body: Value) -> String {
    let r = app.admin(Method::PUT, &format!("/tenants/{tenant}/webhooks/{name}"), Some(body)).await;
    r.expect(200, None);
    r.body["data"]["secret"].as_str().unwrap_or_default().to_string()
}

/// `tenant` with service `sales` handed over to endpoint `dialer` (acknowledging); its key.
async fn tenant_with_service(app: &TestApp, tenant: &str, dialer: &Receiver) -> String {
    app.admin(Method::PUT, &format!("/tenants/{tenant}"), Some(json!({}))).await.expect(200, None);
    endpoint(app, tenant, "dialer", json!({ "url": dialer.url })).await;
    let service = json!({ "dispatch": { "target": "webhook", "webhook": "dialer" }, "maxFuture": "1w" });
    app.admin(Method::PUT, &format!("/tenants/{tenant}/services/sales"), Some(service)).await.expect(200, None);
    let r = app.admin(Method::POST, &format!("/tenants/{tenant}/api-keys"), Some(json!({}))).await;
    r.body["data"]["key"].as_str().unwrap().to_string()
}

/// Event types received per callback, in arrival order (repeats of one `webhook-id` once).
fn by_callback(received: &[Received]) -> HashMap<String, Vec<String>> {
    let mut seen = std::collections::HashSet::new();
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for r in received {
        if !seen.insert(r.id.clone()) {
            continue;
        }
        let body = r.json();
        let subject = body["data"]["callbackId"].as_str().unwrap_or_default().to_string();
        out.entry(subject).or_default().push(body["type"].as_str().unwrap().to_string());
    }
    out
}

async fn outbox_rows(app: &TestApp, filter: &str) -> i64 {
    let mut conn = sqlx::AnyConnection::connect(&app.database_url).await.unwrap();
    sqlx::query(&format!("SELECT COUNT(*) FROM outbox WHERE {filter}")).fetch_one(&mut conn).await.unwrap().get(0)
}

async fn every_lifecycle_event_reaches_its_subscribers_in_order_signed_and_masked(backend: Backend) {
    let dialer = Receiver::start(Answer::Acknowledge);
    let crm = Receiver::start(Answer::Ok);
    let full = Receiver::start(Answer::Ok);
    let elsewhere = Receiver::start(Answer::Ok);
    let app = app(backend, &[]).await;
    let t = unique_tenant();
    let key = tenant_with_service(&app, &t, &dialer).await;
    let secret = endpoint(&app, &t, "crm", json!({ "url": crm.url, "events": ALL_CALLBACK_EVENTS })).await;
    let body =
        json!({ "url": full.url, "events": ["callback.created", "call_in.matched"], "includePhoneNumber": true });
    endpoint(&app, &t, "full", body).await;
    let body = json!({ "url": elsewhere.url, "events": ALL_CALLBACK_EVENTS, "services": ["support"] });
    endpoint(&app, &t, "elsewhere", body).await;
    let platform =
        app.admin(Method::POST, &format!("/tenants/{t}/api-keys"), Some(json!({ "scope": "platform" }))).await;
    let platform = platform.body["data"]["key"].as_str().unwrap().to_string();

    // Later, moved, cancelled.
    let later =
        app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(1), "desiredTime": in_hours(2) }));
    let later = later.await.id();
    app.public(&key, "/callbacks/reschedule", json!({ "id": later, "desiredTime": in_hours(3) }))
        .await
        .expect(200, None);
    app.public(&key, "/callbacks/cancel", json!({ "id": later })).await.expect(200, None);
    // Now: handed over (acknowledged by the dialer's answer), then reported through to the end.
    let now = app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(2) })).await.id();
    eventually(20, "the hand-off", || async { !dialer.received().is_empty() }).await;
    for (state, reason) in [("ROUTING", None), ("PROCESSING", None), ("COMPLETED", Some("AGENT_CONNECTED"))] {
        let mut report = json!({ "state": state, "attempt": 1 });
        if let Some(reason) = reason {
            report["reason"] = json!(reason);
        }
        let path = format!("/engagement/v3/callbacks/{now}/state");
        app.call_on(&app.external, Method::POST, &path, &[("x-api-key", &platform)], Some(report))
            .await
            .expect(200, None);
    }
    eventually(20, "eight events at the CRM", || async { crm.received().len() >= 8 }).await;
    let order = by_callback(&crm.received());
    assert_eq!(order[&later], ["callback.created", "callback.rescheduled", "callback.cancelled"]);
    let handed = ["callback.created", "callback.dispatched", "callback.state_changed", "callback.state_changed"];
    assert_eq!(order[&now][..4], handed, "{order:?}");
    assert_eq!(order[&now][4], "callback.completed");

    let received = crm.received();
    let events: Vec<Value> = received.iter().map(Received::json).collect();
    for (r, e) in received.iter().zip(&events) {
        assert!(r.id.starts_with("evt_"), "{}", r.id);
        let number = e["data"]["phoneNumber"].as_str().unwrap();
        assert!(number.starts_with('*') && number.len() == 11, "masked to the last four: {number}");
        assert_eq!(e["data"]["tenant"], t.as_str());
        assert_eq!(e["data"]["serviceName"], "sales");
        assert_eq!(e["timestamp"], e["data"]["time"]);
    }
    let cancelled = events.iter().find(|e| e["type"] == "callback.cancelled").unwrap();
    assert_eq!(
        (cancelled["data"]["state"].as_str(), cancelled["data"]["reason"].as_str()),
        (Some("COMPLETED"), Some("CANCELLED"))
    );
    let completed = events.iter().find(|e| e["type"] == "callback.completed").unwrap();
    assert_eq!(completed["data"]["reason"], "AGENT_CONNECTED");
    let dispatched = events.iter().find(|e| e["type"] == "callback.dispatched").unwrap();
    assert_eq!(
        (dispatched["data"]["state"].as_str(), dispatched["data"]["attempt"].as_i64()),
        (Some("QUEUED"), Some(1))
    );
    let cases: Vec<Value> = received.iter().map(|r| r.case(&secret, &r.body, "valid")).collect();
    verify_with_reference_library(&cases);

    // Only what an endpoint subscribed to, for its services; the number in clear where asked for.
    eventually(10, "two creations at the full endpoint", || async { full.received().len() >= 2 }).await;
    let clear: Vec<Value> = full.received().iter().map(Received::json).collect();
    assert!(clear.iter().all(|e| e["type"] == "callback.created"));
    assert!(clear.iter().any(|e| e["data"]["phoneNumber"] == phone(1).as_str()), "{clear:?}");
    assert!(elsewhere.received().is_empty(), "an endpoint for another service hears nothing");

    // An inbound call matching a call-in request.
    let group = json!({ "numbers": [phone(9001)] });
    app.admin(Method::PUT, &format!("/tenants/{t}/call-in-groups/vip"), Some(group)).await.expect(200, None);
    let issued =
        app.public(&key, "/call-in/requests/create", json!({ "groupName": "vip", "fromPhoneNumber": phone(3) }));
    let data = issued.await.body["data"].clone();
    let auth = format!("Bearer {INTERNAL_TOKEN}");
    let call = json!({ "toPhoneNumber": data["toPhoneNumber"], "accessCode": data["accessCode"], "fromPhoneNumber": phone(3) });
    app.call(Method::POST, "/internal/v1/call-in/match", &[("authorization", &auth)], Some(call))
        .await
        .expect(200, None);
    eventually(10, "the match at the full endpoint", || async { full.received().len() >= 3 }).await;
    let matched = full.received()[2].json();
    assert_eq!(matched["type"], "call_in.matched");
    assert_eq!((matched["data"]["group"].as_str(), matched["data"]["state"].as_str()), (Some("vip"), Some("MATCHED")));
    assert_eq!(matched["data"]["fromPhoneNumber"], phone(3).as_str());

    eventually(10, "the outbox emptied", || async { outbox_rows(&app, "endpoint IS NOT NULL").await == 0 }).await;
    let m = app.metrics().await;
    let delivered = format!(
        r#"ges_webhook_deliveries_total{{tenant="{t}",endpoint="crm",kind="callback.created",result="delivered"}}"#
    );
    assert_eq!(metric_value(&m, &delivered), Some(2.0));
}

async fn a_change_that_rolled_back_writes_no_event(backend: Backend) {
    let dialer = Receiver::start(Answer::Acknowledge);
    let crm = Receiver::start(Answer::Ok);
    let app = app(backend, &[("RINGBACK__FAULTS__ENABLED", "true")]).await;
    let t = unique_tenant();
    let key = tenant_with_service(&app, &t, &dialer).await;
    endpoint(&app, &t, "crm", json!({ "url": crm.url, "events": ["callback.created"] })).await;
    // The batch fails before its commit (and once more on its retry): 503, nothing written.
    let fault = json!({ "fault": "lock_timeout", "times": 2 });
    app.admin(Method::POST, "/faults/booking-batch", Some(fault)).await.expect(200, None);
    let body = json!({ "serviceName": "sales", "phoneNumber": phone(4), "desiredTime": in_hours(1) });
    app.create(&key, body.clone()).await.expect(503, Some("UNAVAILABLE"));
    // A refused booking writes nothing either.
    app.create(&key, json!({ "serviceName": "nope", "phoneNumber": phone(5) })).await;
    let booked = app.create(&key, body).await;
    booked.expect(200, None);
    eventually(10, "the committed booking's event", || async { !crm.received().is_empty() }).await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let events: Vec<Value> = crm.received().iter().map(Received::json).collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["callbackId"], booked.id().as_str());
}

async fn a_failing_endpoint_gets_the_same_event_again_then_is_disabled_with_an_alarm(backend: Backend) {
    let dialer = Receiver::start(Answer::Acknowledge);
    let crm = Receiver::start(Answer::Status(500));
    // A retry window of 4.5 s: tries at about 0, 0.5–1, 1.5–3 s, then failed.
    let app = app(backend, &[("RINGBACK__WEBHOOKS__RETRY_FOR_HOURS", "0.00125")]).await;
    let t = unique_tenant();
    let key = tenant_with_service(&app, &t, &dialer).await;
    let crm_endpoint = json!({ "url": crm.url, "events": ["callback.created", "callback.cancelled"] });
    endpoint(&app, &t, "crm", crm_endpoint.clone()).await;

    // 500 then 200: delivered on the second try under the same webhook-id.
    let first =
        app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(6), "desiredTime": in_hours(1) }));
    let first = first.await.id();
    eventually(10, "the first try", || async { !crm.received().is_empty() }).await;
    crm.answer_with(Answer::Ok);
    eventually(10, "the second try", || async { crm.received().len() >= 2 }).await;
    let ids: Vec<String> = crm.received().iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids[0], ids[1], "the same webhook-id");
    eventually(10, "delivered", || async { outbox_rows(&app, "endpoint IS NOT NULL").await == 0 }).await;

    // Failing throughout: retried with backoff, then marked failed; past the window the endpoint
    // is disabled with an alarm and an audit entry, and hears nothing more.
    crm.answer_with(Answer::Status(503));
    let before = crm.received().len();
    app.public(&key, "/callbacks/cancel", json!({ "id": first })).await.expect(200, None);
    eventually(20, "the event given up on", || async { outbox_rows(&app, "failed_ms IS NOT NULL").await == 1 }).await;
    let tries = crm.received()[before..].to_vec();
    assert!(tries.len() >= 2, "retried before giving up: {}", tries.len());
    assert!(tries.iter().all(|r| r.id == tries[0].id), "one webhook-id for every try");
    let second =
        app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(7), "desiredTime": in_hours(1) }));
    second.await.expect(200, None);
    let disabled = || async {
        let r = app.admin(Method::GET, &format!("/tenants/{t}/webhooks/crm"), None).await;
        r.body["data"]["enabled"] == false
    };
    eventually(20, "the endpoint disabled", disabled).await;
    let m = app.metrics().await;
    assert_eq!(metric_value(&m, &format!(r#"WEBHOOK_ENDPOINT_DISABLED{{tenant="{t}"}}"#)), Some(1.0));
    let audit = app.admin(Method::GET, "/audit?limit=50", None).await;
    assert!(audit.text.contains("DISABLE"), "audited: {}", audit.text);
    assert_eq!(outbox_rows(&app, "endpoint = 'crm' AND failed_ms IS NULL").await, 0, "nothing left to deliver");
    let heard = crm.received().len();
    app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(8) })).await.expect(200, None);
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(crm.received().len(), heard, "a disabled endpoint hears nothing");
    // Enabled again by an operator, it can be sent a failed event again (one more try).
    endpoint(&app, &t, "crm", crm_endpoint).await;
    let deliveries = app.admin(Method::GET, &format!("/tenants/{t}/webhooks/crm/deliveries"), None).await;
    let failed = deliveries.body["data"]["items"][0]["id"].as_i64().unwrap();
    crm.answer_with(Answer::Ok);
    let path = format!("/tenants/{t}/webhooks/crm/deliveries/{failed}/redeliver");
    app.admin(Method::POST, &path, None).await.expect(200, None);
    eventually(10, "redelivered", || async { crm.received().len() > heard }).await;
    app.admin(Method::POST, &path, None).await.expect(409, Some("ILLEGAL_TRANSITION"));
}

/// A slow endpoint holds back only its own events: another endpoint's arrive meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_never_delays_another_endpoints_events() {
    let dialer = Receiver::start(Answer::Acknowledge);
    let slow = Receiver::start(Answer::SleepThenAcknowledge(2_000));
    let fast = Receiver::start(Answer::Ok);
    let app = app(Backend::Sqlite, &[]).await;
    let t = unique_tenant();
    let key = tenant_with_service(&app, &t, &dialer).await;
    endpoint(&app, &t, "slow", json!({ "url": slow.url, "events": ["callback.created"], "timeoutMs": 10_000 })).await;
    endpoint(&app, &t, "fast", json!({ "url": fast.url, "events": ["callback.created"] })).await;
    let book = |from: u32, n: u32| {
        let (app, key) = (&app, &key);
        async move {
            for i in from..from + n {
                let body = json!({ "serviceName": "sales", "phoneNumber": phone(100 + i), "desiredTime": in_hours(1) });
                app.create(key, body).await.expect(200, None);
            }
        }
    };
    book(0, 24).await;
    // 24 events at 8 in flight and 2 s each: the slow endpoint needs about 6 s for them. Events
    // written meanwhile reach the fast endpoint at once, not after the slow one's chunk.
    eventually(4, "the first events at the fast endpoint", || async { fast.received().len() >= 24 }).await;
    book(24, 8).await;
    eventually(3, "the later events at the fast endpoint", || async { fast.received().len() >= 32 }).await;
    assert!(slow.received().len() < 24, "the slow endpoint is still at its first chunk: {}", slow.received().len());
    eventually(30, "every event at the slow endpoint too", || async { slow.received().len() >= 32 }).await;
}
