//! Issue 27's GES gaps and the dry run, on both backends: `callbacks/validate` gives create's
//! verdict and writes nothing; the per-queue estimated wait time answers as the list form does for
//! one queue; `include-calls-on-hold` is accepted; `_urs_virtual_queue` names the virtual queue.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{in_seconds, local_time, phone, TestApp};
use crate::on_both_backends;

on_both_backends!(
    a_dry_run_gives_creates_verdict_and_reserves_nothing,
    the_per_queue_estimated_wait_time_and_the_urs_virtual_queue_alias,
);

fn unique(what: &str) -> String {
    format!("{what}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

async fn count(app: &TestApp, tenant: &str) -> i64 {
    let r = app.admin(Method::GET, &format!("/tenants/{tenant}/callbacks/counts"), None).await;
    r.expect(200, None);
    r.body["data"]["total"].as_i64().unwrap()
}

async fn a_dry_run_gives_creates_verdict_and_reserves_nothing(app: TestApp) {
    let tenant = unique("dry");
    let key = app
        .tenant_with_service(
            &tenant,
            "one",
            json!({ "slotMinutes": 60, "slotCapacity": 1, "maxFuture": "1y", "inQueueChecking": "strict" }),
        )
        .await;
    let validate = |body: Value| app.public(&key, "/callbacks/validate", body);
    let at_ten = format!("{}T10:00:00.000Z", &local_time(5, "00:00", "UTC")[..10]);

    // Bookable: the normalised number, the type, the slot; nothing written, nothing reserved.
    let ok = validate(json!({ "serviceName": "one", "phoneNumber": "(415) 555-2671", "desiredTime": at_ten })).await;
    ok.expect(200, None);
    let d = &ok.body["data"];
    assert_eq!(d["bookable"], true, "{d}");
    assert_eq!(d["phoneNumber"], "+14155552671");
    assert_eq!(d["type"], "scheduled");
    assert_eq!(d["slot"], at_ten.as_str());
    assert_eq!(count(&app, &tenant).await, 0, "a dry run writes nothing");
    let again = validate(json!({ "serviceName": "one", "phoneNumber": phone(1), "desiredTime": at_ten })).await;
    assert_eq!(again.body["data"]["bookable"], true, "the place was not taken: {:?}", again.body);

    // Refusals as create would answer them, inside a 200.
    let bad = validate(json!({ "serviceName": "one" })).await;
    bad.expect(200, None);
    assert_eq!(bad.body["data"]["bookable"], false);
    assert_eq!(bad.body["data"]["reason"], "VALIDATION_FAILED");
    assert_eq!(bad.body["data"]["details"][0]["field"], "phoneNumber");
    let unknown = validate(json!({ "serviceName": "nope", "phoneNumber": phone(2) })).await;
    assert_eq!(unknown.body["data"]["reason"], "UNKNOWN_SERVICE");

    // The slot fills: the dry run says SLOT_FULL with proposals, as create does.
    app.create(&key, json!({ "serviceName": "one", "phoneNumber": phone(3), "desiredTime": at_ten }))
        .await
        .expect(200, None);
    app.create(&key, json!({ "serviceName": "one", "phoneNumber": phone(4), "desiredTime": at_ten }))
        .await
        .expect(429, Some("SLOT_FULL"));
    let full = validate(json!({ "serviceName": "one", "phoneNumber": phone(5), "desiredTime": at_ten })).await;
    assert_eq!(full.body["data"]["bookable"], false);
    assert_eq!(full.body["data"]["reason"], "SLOT_FULL");
    assert!(full.body["data"]["slots"].as_object().is_some_and(|s| !s.is_empty()), "{:?}", full.body);

    // In-queue checking: a number with an unfinished callback is ALREADY_QUEUED.
    let later = in_seconds(7200);
    app.create(&key, json!({ "serviceName": "one", "phoneNumber": phone(6), "desiredTime": later }))
        .await
        .expect(200, None);
    let queued =
        validate(json!({ "serviceName": "one", "phoneNumber": phone(6), "desiredTime": in_seconds(10_800) })).await;
    assert_eq!(queued.body["data"]["reason"], "ALREADY_QUEUED", "{:?}", queued.body);
    assert_eq!(count(&app, &tenant).await, 2, "only the two accepted creates wrote");
}

async fn the_per_queue_estimated_wait_time_and_the_urs_virtual_queue_alias(app: TestApp) {
    let tenant = unique("ewt");
    let key = app.tenant_with_service(&tenant, "sales", json!({ "_urs_virtual_queue": "SalesVQ" })).await;
    let service = app.admin(Method::GET, &format!("/tenants/{tenant}/services/sales"), None).await;
    assert_eq!(service.body["data"]["virtualQueue"], "SalesVQ", "the alias names the virtual queue");
    // The platform's statistics, through a platform key.
    let platform =
        app.admin(Method::POST, &format!("/tenants/{tenant}/api-keys"), Some(json!({ "scope": "platform" }))).await;
    let platform = platform.body["data"]["key"].as_str().unwrap().to_string();
    app.call(
        Method::PUT,
        "/engagement/v3/queues/SalesVQ/stats",
        &[("x-api-key", &platform)],
        Some(json!({ "ewt": 42, "agentsLoggedIn": 3, "callsWaiting": 3 })),
    )
    .await
    .expect(200, None);
    let get = |path: &'static str| {
        let (app, key) = (&app, key.clone());
        async move { app.call(Method::GET, path, &[("x-api-key", key.as_str())], None).await }
    };
    let one =
        get("/engagement/v3/estimated-wait-time/virtual-queues/SalesVQ?mode=mode3&include-calls-on-hold=true").await;
    one.expect(200, None);
    assert_eq!(one.body["data"], json!({ "virtualQueue": "SalesVQ", "estimatedWaitTime": 42, "resultCode": 0 }));
    let list =
        get("/engagement/v3/estimated-wait-time?virtual-queues=SalesVQ&mode=mode3&include-calls-on-hold=false").await;
    assert_eq!(list.body["data"][0], one.body["data"], "the same answer as the list form for one queue");
    let unknown = get("/engagement/v3/estimated-wait-time/virtual-queues/Nope").await;
    unknown.expect(200, None);
    assert_eq!(
        (unknown.body["data"]["resultCode"].as_i64(), unknown.body["data"]["estimatedWaitTime"].as_i64()),
        (Some(2), Some(-1))
    );
    get("/engagement/v3/estimated-wait-time/virtual-queues/SalesVQ?include-calls-on-hold=maybe")
        .await
        .expect(400, Some("VALIDATION_FAILED"));
}
