//! The public callbacks API: create, retrieve, cancel, reschedule, list.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{phone, TestApp};
use crate::on_both_backends;

on_both_backends!(
    immediate_booking_is_queued_and_retrievable_with_history,
    scheduled_booking_keeps_its_time_and_reporting_fields,
    missing_required_fields_are_listed_in_details,
    invalid_values_are_refused_with_their_reason,
    genesys_client_body_books_with_the_default_offer_type,
    another_tenants_callback_is_not_found,
    cancel_completes_once_and_then_reports_already_completed,
    reschedule_moves_scheduled_callbacks_only,
    list_filters_and_pages_with_a_stable_cursor,
    idempotent_replay_returns_the_first_answer_and_creates_nothing,
    disabled_or_unknown_service_is_refused,
);

fn in_hours(h: i64) -> String {
    let t = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(h);
    t.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

async fn immediate_booking_is_queued_and_retrievable_with_history(app: TestApp) {
    let key = app.tenant_with_service("acme", "sales", json!({})).await;
    let created = app
        .create(
            &key,
            json!({ "serviceName": "sales", "phoneNumber": "(415) 555-2671", "userData": { "orderId": "A1" } }),
        )
        .await;
    created.expect(200, None);
    assert_eq!(created.body["status"]["message"], "Successful");
    let corr = created.body["status"]["corrId"].as_str().unwrap().to_string();
    assert_eq!(created.headers["x-correlation-id"].to_str().unwrap(), corr);
    let id = created.id();

    let got = app.retrieve(&key, &id).await;
    got.expect(200, None);
    let cb = &got.body["data"];
    assert_eq!(cb["id"], id.as_str());
    assert_eq!(cb["callbackState"], "QUEUED");
    assert_eq!(cb["phoneNumber"], "+14155552671");
    assert_eq!(cb["serviceName"], "sales");
    assert_eq!(cb["cbOfferType"], "ASAP");
    assert_eq!(cb["language"], "en-US");
    assert_eq!(cb["userData"]["orderId"], "A1");
    assert!(cb.get("callbackReason").is_none());
    let history = cb["history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["state"], "QUEUED");
    assert_eq!(history[0]["actor"], "api");
    // Output times are UTC with milliseconds.
    let created_time = cb["createdTime"].as_str().unwrap();
    assert!(created_time.ends_with('Z') && created_time.len() == 24, "{created_time}");
}

async fn scheduled_booking_keeps_its_time_and_reporting_fields(app: TestApp) {
    let key = app.tenant_with_service("acme", "sales", json!({})).await;
    let when = in_hours(3);
    let created = app
        .create(
            &key,
            json!({ "serviceName": "sales", "phoneNumber": phone(1), "desiredTime": when, "channel": "web",
                    "inboundVQ": "VQ_Sales", "offerTiming": "ON-HOURS", "priority": 7, "captchaToken": "x",
                    "someFutureField": 1, "language": null }),
        )
        .await;
    created.expect(200, None);
    let cb = app.retrieve(&key, &created.id()).await.body["data"].clone();
    assert_eq!(cb["callbackState"], "SCHEDULED");
    assert_eq!(cb["cbOfferType"], "SCHEDULED");
    assert_eq!(cb["channel"], "web");
    assert_eq!(cb["inboundVQ"], "VQ_Sales");
    assert_eq!(cb["language"], "en-US", "null means absent");
    let stored = jiff::Timestamp::from_str_exact(cb["desiredTime"].as_str().unwrap());
    let sent: jiff::Timestamp = when.parse().unwrap();
    assert_eq!(stored.as_second(), sent.as_second());
}

trait ExactParse {
    fn from_str_exact(s: &str) -> jiff::Timestamp;
}
impl ExactParse for jiff::Timestamp {
    fn from_str_exact(s: &str) -> jiff::Timestamp {
        s.parse().expect("timestamp")
    }
}

async fn missing_required_fields_are_listed_in_details(app: TestApp) {
    let key = app.tenant_with_service("acme", "sales", json!({})).await;
    let r = app.create(&key, json!({ "desiredTime": "10am" })).await;
    r.expect(400, Some("VALIDATION_FAILED"));
    let fields: Vec<&str> =
        r.body["status"]["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["serviceName", "phoneNumber", "desiredTime"]);
    assert!(r.body.get("data").is_none());
    let r = app.create(&key, json!({ "serviceName": "sales", "phoneNumber": 4155552671_u64 })).await;
    r.expect(400, Some("VALIDATION_FAILED"));
    assert_eq!(r.body["status"]["details"][0]["field"], "phoneNumber");
}

async fn invalid_values_are_refused_with_their_reason(app: TestApp) {
    let key =
        app.tenant_with_service("acme", "sales", json!({ "maxFuture": "2d", "blockedPatterns": ["+1212"] })).await;
    let cases = [
        (json!({ "serviceName": "sales", "phoneNumber": "+1 415 555" }), "INVALID_PHONE_NUMBER"),
        (json!({ "serviceName": "sales", "phoneNumber": "+19005550123" }), "PREMIUM_NUMBER"),
        (json!({ "serviceName": "sales", "phoneNumber": "+12125552671" }), "NUMBER_NOT_ALLOWED"),
        (
            json!({ "serviceName": "sales", "phoneNumber": phone(2), "desiredTime": in_hours(24 * 5) }),
            "TIME_OUT_OF_RANGE",
        ),
        (
            json!({ "serviceName": "sales", "phoneNumber": phone(2), "userData": { "deep": { "x": 1 } } }),
            "VALIDATION_FAILED",
        ),
    ];
    for (body, reason) in cases {
        let r = app.create(&key, body.clone()).await;
        r.expect(400, Some(reason));
        // The message never shows the whole number.
        assert!(!r.text.contains("5552671") && !r.text.contains("5550123"), "{}", r.text);
    }
    let listed = app.call(Method::GET, "/engagement/v3/callbacks", &[("x-api-key", &key)], None).await;
    assert_eq!(listed.body["data"]["items"].as_array().unwrap().len(), 0, "refusals store nothing");
}

/// Genesys' generated GES v3 client (engagement-client-js 9.0.84) sends the field description as
/// `cbOfferType`'s default. GES books it; so does Ringback, with the default offer type.
async fn genesys_client_body_books_with_the_default_offer_type(app: TestApp) {
    let key = app.tenant_with_service("acme", "sales", json!({})).await;
    let official = r#"{"serviceName":"sales","phoneNumber":"+14155550142","cbOfferType":"ASAP if the request does not include the desiredTime parameter and SCHEDULED if the request includes the desiredTime parameter.","language":"en-US"}"#;
    let sent = app
        .client
        .post(format!("{}/engagement/v3/callbacks/create", app.internal))
        .header("x-api-key", &key)
        .header("content-type", "application/json")
        .body(official)
        .send()
        .await
        .expect("request sent");
    let created = crate::helpers::Response::from(sent).await;
    created.expect(200, None);
    let cb = app.retrieve(&key, &created.id()).await.body["data"].clone();
    assert_eq!(cb["cbOfferType"], "ASAP", "no desiredTime: the ASAP default");
    assert_eq!(cb["callbackState"], "QUEUED");
    // Any other unknown value with a desiredTime falls back to SCHEDULED.
    let later =
        json!({ "serviceName": "sales", "phoneNumber": phone(3), "cbOfferType": "LATER", "desiredTime": in_hours(2) });
    let created = app.create(&key, later).await;
    created.expect(200, None);
    let cb = app.retrieve(&key, &created.id()).await.body["data"].clone();
    assert_eq!(cb["cbOfferType"], "SCHEDULED");
    // offerTiming is reporting only as well: an unknown value books and is not stored.
    let timing = json!({ "serviceName": "sales", "phoneNumber": phone(5), "offerTiming": "LUNCHTIME" });
    let created = app.create(&key, timing).await;
    created.expect(200, None);
    assert!(app.retrieve(&key, &created.id()).await.body["data"].get("offerTiming").is_none());
    // A known value is kept as sent.
    let combined =
        json!({ "serviceName": "sales", "phoneNumber": phone(4), "cbOfferType": "COMBINED_SCHEDULED_AND_ASAP" });
    let created = app.create(&key, combined).await;
    created.expect(200, None);
    assert_eq!(app.retrieve(&key, &created.id()).await.body["data"]["cbOfferType"], "COMBINED_SCHEDULED_AND_ASAP");
}

async fn another_tenants_callback_is_not_found(app: TestApp) {
    let key_a = app.tenant_with_service("tenant-a", "sales", json!({})).await;
    let key_b = app.tenant_with_service("tenant-b", "sales", json!({})).await;
    let id = app.create(&key_a, json!({ "serviceName": "sales", "phoneNumber": phone(3) })).await.id();
    app.retrieve(&key_b, &id).await.expect(404, Some("NOT_FOUND"));
    app.public(&key_b, "/callbacks/cancel", json!({ "id": id })).await.expect(404, Some("NOT_FOUND"));
    app.retrieve(&key_a, "no-such-id").await.expect(404, Some("NOT_FOUND"));
    // Still intact for its owner.
    assert_eq!(app.retrieve(&key_a, &id).await.body["data"]["callbackState"], "QUEUED");
}

async fn cancel_completes_once_and_then_reports_already_completed(app: TestApp) {
    let key = app.tenant_with_service("acme", "sales", json!({})).await;
    let id = app
        .create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(4), "desiredTime": in_hours(2) }))
        .await
        .id();
    let r = app.public(&key, "/callbacks/cancel", json!({ "id": id })).await;
    r.expect(200, None);
    assert_eq!(r.body["data"]["id"], id.as_str());
    let cb = app.retrieve(&key, &id).await.body["data"].clone();
    assert_eq!(cb["callbackState"], "COMPLETED");
    assert_eq!(cb["callbackReason"], "CANCELLED");
    let states: Vec<&str> = cb["history"].as_array().unwrap().iter().map(|h| h["state"].as_str().unwrap()).collect();
    assert_eq!(states, vec!["SCHEDULED", "COMPLETED"]);
    app.public(&key, "/callbacks/cancel", json!({ "id": id })).await.expect(400, Some("ALREADY_COMPLETED"));
    app.public(&key, "/callbacks/cancel", json!({})).await.expect(400, Some("VALIDATION_FAILED"));
}

async fn reschedule_moves_scheduled_callbacks_only(app: TestApp) {
    let key = app.tenant_with_service("acme", "sales", json!({ "maxFuture": "1w" })).await;
    let id = app
        .create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(5), "desiredTime": in_hours(2) }))
        .await
        .id();
    let new_time = in_hours(5);
    let r = app.public(&key, "/callbacks/reschedule", json!({ "id": id, "desiredTime": new_time })).await;
    r.expect(200, None);
    let moved: jiff::Timestamp = r.body["data"]["desiredTime"].as_str().unwrap().parse().unwrap();
    assert_eq!(moved.as_second(), new_time.parse::<jiff::Timestamp>().unwrap().as_second());
    let cb = app.retrieve(&key, &id).await.body["data"].clone();
    assert_eq!(cb["desiredTime"], r.body["data"]["desiredTime"]);
    assert_eq!(cb["history"].as_array().unwrap().len(), 2);
    app.public(&key, "/callbacks/reschedule", json!({ "id": id, "desiredTime": in_hours(24 * 10) }))
        .await
        .expect(400, Some("TIME_OUT_OF_RANGE"));
    app.public(&key, "/callbacks/reschedule", json!({ "id": id })).await.expect(400, Some("VALIDATION_FAILED"));
    let immediate = app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(6) })).await.id();
    app.public(&key, "/callbacks/reschedule", json!({ "id": immediate, "desiredTime": in_hours(3) }))
        .await
        .expect(400, Some("NOT_RESCHEDULABLE"));
    app.public(&key, "/callbacks/reschedule", json!({ "id": "nope", "desiredTime": in_hours(3) }))
        .await
        .expect(404, Some("NOT_FOUND"));
}

async fn list_filters_and_pages_with_a_stable_cursor(app: TestApp) {
    let key = app.tenant_with_service("acme", "sales", json!({})).await;
    let r = app.admin(Method::PUT, "/tenants/acme/services/support", Some(json!({}))).await;
    r.expect(200, None);
    let mut ids = Vec::new();
    for i in 0..7 {
        let body = json!({ "serviceName": if i % 2 == 0 { "sales" } else { "support" }, "phoneNumber": phone(100 + i), "desiredTime": in_hours(1 + i64::from(i)) });
        ids.push(app.create(&key, body).await.id());
    }
    app.public(&key, "/callbacks/cancel", json!({ "id": ids[6] })).await.expect(200, None);
    let get = |q: String| {
        let key = key.clone();
        let app = &app;
        async move { app.call(Method::GET, &format!("/engagement/v3/callbacks{q}"), &[("x-api-key", &key)], None).await }
    };
    // Page through everything, 3 at a time, inserting a new (later) callback midway.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("?limit=3&cursor={c}"),
            None => "?limit=3".into(),
        };
        let page = get(q).await;
        page.expect(200, None);
        for item in page.body["data"]["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_string());
            assert!(item.get("history").is_none());
        }
        if seen.len() == 3 {
            app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(200), "desiredTime": in_hours(48) }))
                .await
                .expect(200, None);
        }
        match page.body["data"]["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 8, "every callback exactly once, including the one inserted while paging");
    assert_eq!(&seen[..7], &ids[..], "ordered by desiredTime");
    let sales = get("?serviceName=sales".into()).await;
    assert_eq!(sales.body["data"]["items"].as_array().unwrap().len(), 5);
    let open = get("?state=!COMPLETED".into()).await;
    assert_eq!(open.body["data"]["items"].as_array().unwrap().len(), 7);
    let done = get("?state=COMPLETED".into()).await;
    assert_eq!(done.body["data"]["items"][0]["id"], ids[6].as_str());
    let by_phone = get(format!("?phoneNumber={}", phone(101).replace('+', "%2B"))).await;
    assert_eq!(by_phone.body["data"]["items"].as_array().unwrap().len(), 1);
    let window = get(format!("?from={}&to={}", in_hours(2).replace('+', "%2B"), in_hours(4).replace('+', "%2B"))).await;
    window.expect(200, None);
    let n = window.body["data"]["items"].as_array().unwrap().len();
    assert!((2..=3).contains(&n), "{n}");
    get("?limit=501".into()).await.expect(400, Some("VALIDATION_FAILED"));
    get("?state=LOST".into()).await.expect(400, Some("VALIDATION_FAILED"));
}

async fn idempotent_replay_returns_the_first_answer_and_creates_nothing(app: TestApp) {
    let key = app.tenant_with_service("acme", "sales", json!({})).await;
    let body = json!({ "serviceName": "sales", "phoneNumber": phone(7), "userData": { "a": 1, "b": 2 } });
    let idem = |k: &'static str| [("x-api-key", key.clone()), ("idempotency-key", k.to_string())];
    let call = |headers: [(&'static str, String); 2], body: Value| {
        let app = &app;
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.call(Method::POST, "/engagement/v3/callbacks/create", &h, Some(body)).await
        }
    };
    let first = call(idem("order-1"), body.clone()).await;
    first.expect(200, None);
    // Same body with keys in another order is the same JSON.
    let reordered = json!({ "userData": { "b": 2, "a": 1 }, "phoneNumber": phone(7), "serviceName": "sales" });
    let replay = call(idem("order-1"), reordered).await;
    replay.expect(200, None);
    assert_eq!(replay.body, first.body, "same status and body, original corrId");
    assert_ne!(replay.headers["x-correlation-id"], first.headers["x-correlation-id"]);
    let different = call(idem("order-1"), json!({ "serviceName": "sales", "phoneNumber": phone(8) })).await;
    different.expect(422, Some("IDEMPOTENCY_KEY_REUSED"));
    // A 400 is remembered too.
    let bad = call(idem("order-2"), json!({ "serviceName": "sales" })).await;
    bad.expect(400, Some("VALIDATION_FAILED"));
    let bad_again = call(idem("order-2"), json!({ "serviceName": "sales" })).await;
    assert_eq!(bad_again.body, bad.body);
    let listed = app.call(Method::GET, "/engagement/v3/callbacks", &[("x-api-key", &key)], None).await;
    assert_eq!(listed.body["data"]["items"].as_array().unwrap().len(), 1, "the replay created nothing");
    let too_long = "k".repeat(129);
    let h = [("x-api-key", key.as_str()), ("idempotency-key", too_long.as_str())];
    app.call(Method::POST, "/engagement/v3/callbacks/create", &h, Some(body))
        .await
        .expect(400, Some("VALIDATION_FAILED"));
}

async fn disabled_or_unknown_service_is_refused(app: TestApp) {
    let key = app.tenant_with_service("acme", "sales", json!({ "enabled": false })).await;
    app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(9) }))
        .await
        .expect(400, Some("UNKNOWN_SERVICE"));
    app.create(&key, json!({ "serviceName": "nope", "phoneNumber": phone(9) }))
        .await
        .expect(400, Some("UNKNOWN_SERVICE"));
    app.admin(Method::PUT, "/tenants/acme/services/later", Some(json!({ "immediateEnabled": false })))
        .await
        .expect(200, None);
    app.create(&key, json!({ "serviceName": "later", "phoneNumber": phone(9) }))
        .await
        .expect(400, Some("KIND_DISABLED"));
    app.create(&key, json!({ "serviceName": "later", "phoneNumber": phone(9), "desiredTime": in_hours(1) }))
        .await
        .expect(200, None);
}
