//! Retry policy (issue 27), on both backends: an outcome the service retries books a follow-up in
//! the report's transaction — inside office hours, in a slot with room, after its delay, with the
//! original's `userData`, chained by `retryOf`/`retryNumber` — never more than the rule's attempts;
//! no slot within `maxFuture` leaves a note instead. Each counted by `ges_callback_retries_total`.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{in_seconds, metric_value, phone, sql, utc_ms, TestApp};
use crate::on_both_backends;

on_both_backends!(
    a_no_answer_books_follow_ups_in_open_slots_with_room_until_the_attempts_are_spent,
    without_a_slot_within_max_future_no_follow_up_is_booked_and_the_history_says_why,
);

fn unique(what: &str) -> String {
    format!("{what}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// A platform key of the tenant, for state reports on the external listener.
async fn platform_key(app: &TestApp, tenant: &str) -> String {
    let r = app.admin(Method::POST, &format!("/tenants/{tenant}/api-keys"), Some(json!({ "scope": "platform" }))).await;
    r.expect(200, None);
    r.body["data"]["key"].as_str().unwrap().to_string()
}

async fn report(app: &TestApp, key: &str, id: &str, body: Value) {
    app.call_on(
        &app.external,
        Method::POST,
        &format!("/engagement/v3/callbacks/{id}/state"),
        &[("x-api-key", key)],
        Some(body),
    )
    .await
    .expect(200, None);
}

/// The number's callbacks, oldest first.
async fn chain(app: &TestApp, tenant: &str, number: &str) -> Vec<Value> {
    let q = form_urlencoded::Serializer::new(String::new()).append_pair("phoneNumber", number).finish();
    let r = app.admin(Method::GET, &format!("/tenants/{tenant}/callbacks?{q}&limit=50"), None).await;
    r.expect(200, None);
    let mut items = r.body["data"]["items"].as_array().unwrap().clone();
    items.sort_by_key(|c| c["createdTime"].as_str().unwrap().to_string());
    items
}

/// A handed-over attempt of a scheduled follow-up, as the monitor would leave it (this test does
/// not wait the follow-up's delay out).
async fn hand_over(app: &TestApp, id: &str) {
    sql(
        app,
        &[&format!(
            "UPDATE callbacks SET state = 'QUEUED', attempt = attempt + 1, queued_ms = updated_ms WHERE id = '{id}'"
        )],
    )
    .await;
}

async fn a_no_answer_books_follow_ups_in_open_slots_with_room_until_the_attempts_are_spent(app: TestApp) {
    let tenant = unique("retry");
    let key = app
        .tenant_with_service(
            &tenant,
            "sales",
            json!({ "slotMinutes": 60, "slotCapacity": 1, "maxFuture": "30d",
                "retry": { "onNoAnswer": { "attempts": 2, "afterSeconds": [600, 3600] } } }),
        )
        .await;
    let platform = platform_key(&app, &tenant).await;
    let number = phone(7100);
    // The slot holding now + 600 s is full: the follow-up must take a later one.
    let filler = app
        .create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(7101), "desiredTime": in_seconds(660) }))
        .await;
    filler.expect(200, None);
    let full_hour = utc_ms(&in_seconds(660)) / 3_600_000;
    let original = app
        .create(&key, json!({ "serviceName": "sales", "phoneNumber": number, "userData": { "order": "A-1" } }))
        .await;
    original.expect(200, None);
    let original = original.id();

    let reported = utc_ms(&in_seconds(0));
    report(&app, &platform, &original, json!({ "state": "COMPLETED", "reason": "NO_ANSWER" })).await;
    let callbacks = chain(&app, &tenant, &number).await;
    assert_eq!(callbacks.len(), 2, "{callbacks:?}");
    let first = &callbacks[1];
    assert_eq!(first["retryOf"], original.as_str());
    assert_eq!(first["retryNumber"], 1);
    assert_eq!(first["callbackState"], "SCHEDULED");
    assert_eq!(first["userData"], json!({ "order": "A-1" }), "userData carried over");
    let at = utc_ms(first["desiredTime"].as_str().unwrap());
    assert!(at >= reported + 600_000, "not before its delay: {at} vs {reported}");
    assert_ne!(at / 3_600_000, full_hour, "not in the full slot");
    let history = app.admin(Method::GET, &format!("/tenants/{tenant}/callbacks/{original}"), None).await.body["data"]
        ["history"]
        .clone();
    let last = history.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["reason"], "NO_ANSWER");
    assert!(
        last["note"].as_str().unwrap().starts_with(&format!("follow-up {}", first["id"].as_str().unwrap())),
        "{last}"
    );

    // The follow-up is not reached either: the second and last follow-up, an hour on at least.
    let first_id = first["id"].as_str().unwrap().to_string();
    hand_over(&app, &first_id).await;
    let reported = utc_ms(&in_seconds(0));
    report(&app, &platform, &first_id, json!({ "state": "COMPLETED", "reason": "NO_ANSWER" })).await;
    let callbacks = chain(&app, &tenant, &number).await;
    assert_eq!(callbacks.len(), 3);
    let second = &callbacks[2];
    assert_eq!((second["retryOf"].as_str(), second["retryNumber"].as_i64()), (Some(first_id.as_str()), Some(2)));
    assert!(utc_ms(second["desiredTime"].as_str().unwrap()) >= reported + 3_600_000);

    // The rule's attempts are spent: no third follow-up.
    let second_id = second["id"].as_str().unwrap().to_string();
    hand_over(&app, &second_id).await;
    report(&app, &platform, &second_id, json!({ "state": "COMPLETED", "reason": "NO_ANSWER" })).await;
    assert_eq!(chain(&app, &tenant, &number).await.len(), 3, "never more than attempts");
    // Another outcome is not covered by this policy.
    let other = app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(7102) })).await.id();
    report(&app, &platform, &other, json!({ "state": "COMPLETED", "reason": "BUSY" })).await;
    assert_eq!(chain(&app, &tenant, &phone(7102)).await.len(), 1);

    let metrics = app.metrics().await;
    let series = |result: &str| {
        format!(
            r#"ges_callback_retries_total{{tenant="{tenant}",service="sales",outcome="no_answer",result="{result}"}}"#
        )
    };
    assert_eq!(metric_value(&metrics, &series("booked")), Some(2.0));
    assert_eq!(metric_value(&metrics, &series("exhausted")), Some(1.0));
}

async fn without_a_slot_within_max_future_no_follow_up_is_booked_and_the_history_says_why(app: TestApp) {
    let tenant = unique("noslot");
    let key = app
        .tenant_with_service(
            &tenant,
            "sales",
            json!({ "maxFuture": "1h", "retry": { "onBusy": { "attempts": 1, "afterSeconds": [7200] } } }),
        )
        .await;
    let platform = platform_key(&app, &tenant).await;
    let number = phone(7200);
    let id = app.create(&key, json!({ "serviceName": "sales", "phoneNumber": number })).await.id();
    report(&app, &platform, &id, json!({ "state": "COMPLETED", "reason": "BUSY" })).await;
    assert_eq!(chain(&app, &tenant, &number).await.len(), 1, "no follow-up");
    let history = app.admin(Method::GET, &format!("/tenants/{tenant}/callbacks/{id}"), None).await.body["data"]
        ["history"]
        .clone();
    let last = history.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["note"], "no follow-up: no open slot with room within maxFuture", "{last}");
    let series =
        format!(r#"ges_callback_retries_total{{tenant="{tenant}",service="sales",outcome="busy",result="no_slot"}}"#);
    assert_eq!(metric_value(&app.metrics().await, &series), Some(1.0));
    // A bad policy is refused, naming the field.
    let bad = app
        .admin(
            Method::PUT,
            &format!("/tenants/{tenant}/services/sales"),
            Some(json!({ "retry": { "onBusy": { "attempts": 0, "afterSeconds": [] } } })),
        )
        .await;
    bad.expect(400, Some("VALIDATION_FAILED"));
    let fields: Vec<&str> =
        bad.body["status"]["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert!(fields.contains(&"retry.onBusy.attempts") && fields.contains(&"retry.onBusy.afterSeconds"), "{fields:?}");
}
