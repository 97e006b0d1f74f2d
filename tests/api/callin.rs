//! Click-to-call-in over HTTP, on both backends: number pools, access codes, matching inbound
//! calls (through the dialer simulator), expiry, metrics, and the admin API's validation.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{eventually, metric_value, phone, Backend, Pass, TestApp, INTERNAL_TOKEN};
use crate::on_both_backends;

on_both_backends!(backend:
    unique_pool_of_10_hands_each_number_out_once_under_100_concurrent_creates,
    shared_number_never_pends_one_code_twice_and_exhausts_beyond_the_code_space,
    inbound_calls_match_only_the_right_code_and_caller,
    matched_expired_and_cancelled_requests_free_their_number,
    recovery_pass_expires_pending_requests_and_counts_each_once,
    call_in_groups_are_validated_audited_and_numbers_are_deployment_unique,
    a_group_switched_from_unique_to_shared_numbers_never_reuses_a_pending_code,
    a_group_without_codes_issues_no_access_code_and_matches_on_the_number,
);

async fn spawn(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    let mut env = vec![("RINGBACK__INTERNAL__TOKENS", INTERNAL_TOKEN)];
    env.extend_from_slice(extra);
    TestApp::spawn_with(backend, &env).await
}

/// Metric series are process-wide and tests share the process: each test names its own tenant.
fn unique_tenant(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// A tenant with one call-in group and an API key; returns the key.
async fn tenant_with_group(app: &TestApp, tenant: &str, group: &str, config: Value) -> String {
    app.admin(Method::PUT, &format!("/tenants/{tenant}"), Some(json!({}))).await.expect(200, None);
    app.admin(Method::PUT, &format!("/tenants/{tenant}/call-in-groups/{group}"), Some(config)).await.expect(200, None);
    let r = app.admin(Method::POST, &format!("/tenants/{tenant}/api-keys"), Some(json!({}))).await;
    r.expect(200, None);
    r.body["data"]["key"].as_str().expect("key").to_string()
}

fn pool(n: u32) -> Vec<String> {
    (0..n).map(|i| phone(9000 + i)).collect()
}

async fn create(app: &TestApp, key: &str, body: Value) -> crate::helpers::Response {
    app.public(key, "/call-in/requests/create", body).await
}

async fn state_of(app: &TestApp, key: &str, id: &str) -> String {
    let r = app.public(key, "/call-in/requests/retrieve", json!({ "id": id })).await;
    r.expect(200, None);
    r.body["data"]["state"].as_str().unwrap_or_default().to_string()
}

async fn inbound(app: &TestApp, body: Value) -> crate::helpers::Response {
    let auth = format!("Bearer {INTERNAL_TOKEN}");
    app.call(Method::POST, "/internal/v1/call-in/match", &[("authorization", &auth)], Some(body)).await
}

async fn unique_pool_of_10_hands_each_number_out_once_under_100_concurrent_creates(backend: Backend) {
    let app = spawn(backend, &[]).await;
    let tenant = unique_tenant("cu");
    let numbers = pool(10);
    let key = tenant_with_group(&app, &tenant, "sales", json!({ "numbers": numbers })).await;
    let alarm = format!(r#"CALLIN_POOL_EXHAUSTED{{tenant="{tenant}"}}"#);
    let before = app.metrics().await;
    assert!(before.lines().any(|l| l == format!("{alarm} 0")), "the alarm is registered at 0 for the new tenant");

    let answers =
        futures_util::future::join_all((0..100).map(|_| create(&app, &key, json!({ "groupName": "sales" })))).await;
    let ok: Vec<&Value> = answers.iter().filter(|r| r.status == 200).map(|r| &r.body["data"]).collect();
    let exhausted = answers.iter().filter(|r| r.status == 503 && r.reason() == "POOL_EXHAUSTED").count();
    assert_eq!((ok.len(), exhausted), (10, 90), "{:?}", answers.iter().map(|r| &r.text).collect::<Vec<_>>());
    let handed: HashSet<&str> = ok.iter().map(|d| d["toPhoneNumber"].as_str().expect("toPhoneNumber")).collect();
    assert_eq!(handed.len(), 10, "no number handed out twice");
    assert!(handed.iter().all(|n| numbers.iter().any(|p| p == n)));
    for d in &ok {
        let code = d["accessCode"].as_i64().expect("accessCode is a JSON number");
        assert!((1000..10_000).contains(&code), "4 digits, first 1-9: {code}");
        assert_eq!(d["groupName"], "sales");
        assert!(d["expirationTime"].as_i64().is_some_and(|t| t > 1_700_000_000_000), "epoch ms");
    }
    let m = app.metrics().await;
    assert_eq!(metric_value(&m, &alarm), Some(90.0));
    assert_eq!(metric_value(&m, &format!(r#"ges_callin_created{{tenant="{tenant}",group="sales"}}"#)), Some(10.0));
}

async fn shared_number_never_pends_one_code_twice_and_exhausts_beyond_the_code_space(backend: Backend) {
    let app = spawn(backend, &[]).await;
    let tenant = unique_tenant("cs");
    let number = phone(9100);
    let config = json!({ "numbers": [number], "uniqueNumbers": false, "accessCodeDigits": 2 });
    let key = tenant_with_group(&app, &tenant, "shared", config).await;

    let answers =
        futures_util::future::join_all((0..100).map(|_| create(&app, &key, json!({ "groupName": "shared" })))).await;
    let codes: Vec<i64> =
        answers.iter().filter(|r| r.status == 200).map(|r| r.body["data"]["accessCode"].as_i64().unwrap()).collect();
    let exhausted = answers.iter().filter(|r| r.reason() == "POOL_EXHAUSTED").count();
    assert_eq!((codes.len(), exhausted), (90, 10), "2 digits with a first digit 1-9 are 90 codes");
    let distinct: HashSet<i64> = codes.iter().copied().collect();
    assert_eq!(distinct.len(), 90, "no (number, code) pending twice");
    assert!(codes.iter().all(|c| (10..100).contains(c)));
    assert!(answers.iter().filter(|r| r.status == 200).all(|r| r.body["data"]["toPhoneNumber"] == number.as_str()));
}

async fn inbound_calls_match_only_the_right_code_and_caller(backend: Backend) {
    let app = spawn(backend, &[]).await;
    let tenant = unique_tenant("cm");
    let config = json!({ "numbers": pool(3), "requireCallerMatch": true });
    let key = tenant_with_group(&app, &tenant, "vip", config).await;
    let caller = phone(42);

    create(&app, &key, json!({ "groupName": "vip" })).await.expect(400, Some("VALIDATION_FAILED"));
    create(&app, &key, json!({ "groupName": "vip", "fromPhoneNumber": "not a number" }))
        .await
        .expect(400, Some("INVALID_PHONE_NUMBER"));
    create(&app, &key, json!({ "groupName": "nope", "fromPhoneNumber": caller }))
        .await
        .expect(400, Some("UNKNOWN_GROUP"));

    // callbackServiceId is a callback id (api.md): one of this tenant's callbacks, nothing else.
    let body = json!({ "groupName": "vip", "fromPhoneNumber": caller, "callbackServiceId": "cb-1" });
    let refused = create(&app, &key, body).await;
    refused.expect(400, Some("VALIDATION_FAILED"));
    assert_eq!(refused.body["status"]["details"][0]["field"], "callbackServiceId");
    app.admin(Method::PUT, &format!("/tenants/{tenant}/services/sales"), Some(json!({}))).await.expect(200, None);
    let booked = app.create(&key, json!({ "serviceName": "sales", "phoneNumber": caller })).await;
    booked.expect(200, None);
    let callback_id = booked.id();
    let body = json!({ "groupName": "vip", "fromPhoneNumber": caller, "userData": { "orderId": "A-17" }, "callbackServiceId": callback_id });
    let issued = create(&app, &key, body).await;
    issued.expect(200, None);
    let data = issued.body["data"].clone();
    assert_eq!(
        (data["fromPhoneNumber"].as_str(), data["callbackServiceId"].as_str()),
        (Some(caller.as_str()), Some(callback_id.as_str()))
    );
    assert!(data.get("userData").is_none() && data.get("state").is_none(), "create answers the GES v3 fields");
    let (to, code) = (data["toPhoneNumber"].clone(), data["accessCode"].as_i64().unwrap());

    // Wrong caller, no code, unknown number: no match, and the request stays pending.
    inbound(&app, json!({ "toPhoneNumber": to, "accessCode": code, "fromPhoneNumber": phone(43) }))
        .await
        .expect(404, Some("NOT_FOUND"));
    inbound(&app, json!({ "toPhoneNumber": to, "fromPhoneNumber": caller })).await.expect(404, Some("NOT_FOUND"));
    inbound(&app, json!({ "toPhoneNumber": phone(9999), "accessCode": code, "fromPhoneNumber": caller }))
        .await
        .expect(404, Some("NOT_FOUND"));
    inbound(&app, json!({ "toPhoneNumber": to, "accessCode": "12x" })).await.expect(400, Some("VALIDATION_FAILED"));
    assert_eq!(state_of(&app, &key, data["id"].as_str().unwrap()).await, "PENDING");

    // The dialer simulator calls once with a wrong code, then with the right one.
    let client = reqwest::Client::new();
    let calls = ringback::simulator::place_inbound_calls(&client, &app.internal, INTERNAL_TOKEN, &data).await.unwrap();
    assert_eq!(calls.wrong_code, Some(404), "a wrong code matches nothing");
    let (status, matched) = calls.right_code;
    assert_eq!(status, 200, "{matched}");
    assert_eq!(matched["data"]["id"], data["id"]);
    assert_eq!(matched["data"]["state"], "MATCHED");
    assert_eq!(matched["data"]["userData"], json!({ "orderId": "A-17" }));

    // Matched once only; the code may arrive as a digit string.
    inbound(&app, json!({ "toPhoneNumber": to, "accessCode": code.to_string(), "fromPhoneNumber": caller }))
        .await
        .expect(404, Some("NOT_FOUND"));
    assert_eq!(state_of(&app, &key, data["id"].as_str().unwrap()).await, "MATCHED");
    let matched_series = format!(r#"ges_callin_matched{{tenant="{tenant}",group="vip"}}"#);
    assert_eq!(metric_value(&app.metrics().await, &matched_series), Some(1.0));

    // Two concurrent matches of one request: exactly one wins.
    let again = create(&app, &key, json!({ "groupName": "vip", "fromPhoneNumber": caller })).await;
    let d = again.body["data"].clone();
    let call = json!({ "toPhoneNumber": d["toPhoneNumber"], "accessCode": d["accessCode"], "fromPhoneNumber": caller });
    let both = futures_util::future::join_all((0..2).map(|_| inbound(&app, call.clone()))).await;
    let mut statuses: Vec<u16> = both.iter().map(|r| r.status.as_u16()).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 404]);
}

async fn matched_expired_and_cancelled_requests_free_their_number(backend: Backend) {
    let app = spawn(backend, &[]).await;
    let tenant = unique_tenant("cf");
    let number = phone(9200);
    let key = tenant_with_group(&app, &tenant, "one", json!({ "numbers": [number], "expirySeconds": 1 })).await;
    let new = || create(&app, &key, json!({ "groupName": "one" }));
    let expired_series = format!(r#"ges_callin_expired{{tenant="{tenant}",group="one"}}"#);

    // Expired: reads EXPIRED as soon as its time passes, cannot be matched, frees the number.
    let a = new().await;
    a.expect(200, None);
    let a_id = a.id();
    new().await.expect(503, Some("POOL_EXHAUSTED"));
    assert_eq!(state_of(&app, &key, &a_id).await, "PENDING");
    eventually(5, "request A reads EXPIRED", || async { state_of(&app, &key, &a_id).await == "EXPIRED" }).await;
    inbound(&app, json!({ "toPhoneNumber": number, "accessCode": a.body["data"]["accessCode"] }))
        .await
        .expect(404, Some("NOT_FOUND"));
    let b = new().await;
    b.expect(200, None);
    assert_eq!(b.body["data"]["toPhoneNumber"], number.as_str(), "the expired request's number is free again");
    assert_eq!(
        metric_value(&app.metrics().await, &expired_series),
        Some(1.0),
        "counted once, by the create that moved it"
    );

    // Matched: frees the number.
    inbound(&app, json!({ "toPhoneNumber": number, "accessCode": b.body["data"]["accessCode"] }))
        .await
        .expect(200, None);
    let c = new().await;
    c.expect(200, None);

    // Cancelled: frees the number; cancel is repeatable, a matched request cannot be cancelled.
    let cancelled = app.public(&key, "/call-in/requests/cancel", json!({ "id": c.id() })).await;
    cancelled.expect(200, None);
    assert_eq!(cancelled.body["data"]["state"], "CANCELLED");
    app.public(&key, "/call-in/requests/cancel", json!({ "id": c.id() })).await.expect(200, None);
    app.public(&key, "/call-in/requests/cancel", json!({ "id": b.id() })).await.expect(400, Some("ALREADY_COMPLETED"));
    app.public(&key, "/call-in/requests/cancel", json!({ "id": "nope" })).await.expect(404, Some("NOT_FOUND"));
    let d = new().await;
    d.expect(200, None);

    // Retrieve shows each state.
    let states = [
        state_of(&app, &key, &a_id).await,
        state_of(&app, &key, &b.id()).await,
        state_of(&app, &key, &c.id()).await,
        state_of(&app, &key, &d.id()).await,
    ];
    assert_eq!(states, ["EXPIRED", "MATCHED", "CANCELLED", "PENDING"]);
    // Another tenant's key cannot see the request.
    let other = tenant_with_group(&app, &unique_tenant("cf2"), "g", json!({ "numbers": [phone(9300)] })).await;
    app.public(&other, "/call-in/requests/retrieve", json!({ "id": d.id() })).await.expect(404, Some("NOT_FOUND"));
}

async fn recovery_pass_expires_pending_requests_and_counts_each_once(backend: Backend) {
    let app = spawn(backend, &[("RINGBACK__MONITOR__RECOVERY_SECONDS", "1")]).await;
    let tenant = unique_tenant("cr");
    let config = json!({ "numbers": pool(2), "expirySeconds": 1 });
    let key = tenant_with_group(&app, &tenant, "short", config).await;
    let series = format!(r#"ges_callin_expired{{tenant="{tenant}",group="short"}}"#);
    let a = create(&app, &key, json!({ "groupName": "short" })).await;
    a.expect(200, None);
    eventually(10, "the recovery pass counts the expiry", || async {
        metric_value(&app.metrics().await, &series) == Some(1.0)
    })
    .await;
    assert_eq!(state_of(&app, &key, &a.id()).await, "EXPIRED");
    // Each later request is counted by whichever write expires it (this pass, or a create's
    // sweep), once: after both have had their chance, the count is the number of requests.
    create(&app, &key, json!({ "groupName": "short" })).await.expect(200, None);
    create(&app, &key, json!({ "groupName": "short" })).await.expect(200, None);
    eventually(10, "all three expiries counted", || async {
        metric_value(&app.metrics().await, &series).is_some_and(|n| n >= 3.0)
    })
    .await;
    create(&app, &key, json!({ "groupName": "short" })).await.expect(200, None);
    eventually(10, "the fourth expiry counted", || async {
        metric_value(&app.metrics().await, &series).is_some_and(|n| n >= 4.0)
    })
    .await;
    // Another pass and another create's sweep run over the same expired rows: no recount.
    app.monitor_passes(Pass::Recovery, 2).await;
    create(&app, &key, json!({ "groupName": "short" })).await.expect(200, None);
    assert_eq!(metric_value(&app.metrics().await, &series), Some(4.0), "each request counted exactly once");
}

async fn call_in_groups_are_validated_audited_and_numbers_are_deployment_unique(backend: Backend) {
    let app = spawn(backend, &[]).await;
    for t in ["acme", "globex"] {
        app.admin(Method::PUT, &format!("/tenants/{t}"), Some(json!({}))).await.expect(200, None);
    }
    let (n0, n1, n2) = (phone(9400), phone(9401), phone(9402));
    let app = &app;
    let put = |tenant: &'static str, name: &'static str, body: Value| async move {
        app.admin(Method::PUT, &format!("/tenants/{tenant}/call-in-groups/{name}"), Some(body)).await
    };
    let field_of =
        |r: &crate::helpers::Response| r.body["status"]["details"][0]["field"].as_str().unwrap_or("").to_string();

    let stored = put("acme", "Sales", json!({ "numbers": [n0, n1] })).await;
    stored.expect(200, None);
    assert_eq!(
        stored.body["data"],
        json!({ "name": "Sales", "numbers": [n0, n1], "uniqueNumbers": true, "accessCodeDigits": 4,
                "expirySeconds": 300, "requireCallerMatch": false,
                "perNumberLimit": { "limit": 6, "windowSeconds": 3600 },
                "rateLimit": { "limit": 600, "windowSeconds": 60 } }),
        "defaults filled in"
    );

    let cases = [
        (json!({ "numbers": [n2, n2] }), "numbers[1]"),
        (json!({ "numbers": ["4155550100"] }), "numbers[0]"),
        (json!({ "numbers": [n2, "+1555"] }), "numbers[1]"),
        (json!({ "numbers": [] }), "numbers"),
        (json!({ "numbers": [n2], "uniqueNumbers": false, "accessCodeDigits": 0 }), "accessCodeDigits"),
        (json!({ "numbers": [n2], "accessCodeDigits": 10 }), "accessCodeDigits"),
        (json!({ "numbers": [n2], "expirySeconds": 0 }), "expirySeconds"),
        (json!({ "numbers": [n2], "colour": "red" }), "colour"),
    ];
    for (body, field) in cases {
        let r = put("globex", "Support", body.clone()).await;
        r.expect(400, Some("VALIDATION_FAILED"));
        assert_eq!(field_of(&r), field, "{body}");
    }
    // A number of another tenant's group, and of another group of the same tenant.
    let taken = put("globex", "Support", json!({ "numbers": [n2, n1] })).await;
    taken.expect(400, Some("VALIDATION_FAILED"));
    assert_eq!(field_of(&taken), "numbers[1]");
    put("acme", "Other", json!({ "numbers": [n0] })).await.expect(400, Some("VALIDATION_FAILED"));
    app.admin(Method::GET, "/tenants/globex/call-in-groups/Support", None).await.expect(404, Some("NOT_FOUND"));

    // Concurrent claims of one number: exactly one group gets it.
    let names = ["g1", "g2", "g3", "g4", "g5"];
    let claims =
        futures_util::future::join_all(names.iter().map(|n| put("globex", n, json!({ "numbers": [n2] })))).await;
    assert_eq!(
        claims.iter().filter(|r| r.status == 200).count(),
        1,
        "{:?}",
        claims.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    assert!(claims.iter().filter(|r| r.status != 200).all(|r| r.reason() == "VALIDATION_FAILED"));

    // Replace keeps the name; list, get, delete; a deleted group's numbers are free.
    put("acme", "Sales", json!({ "numbers": [n1], "accessCodeDigits": 0 })).await.expect(200, None);
    let got = app.admin(Method::GET, "/tenants/acme/call-in-groups/Sales", None).await;
    assert_eq!(got.body["data"]["numbers"], json!([n1]));
    put("globex", "Taker", json!({ "numbers": [n0] })).await.expect(200, None);
    let list = app.admin(Method::GET, "/tenants/acme/call-in-groups", None).await;
    assert_eq!(list.body["data"]["items"].as_array().map(Vec::len), Some(1));
    assert!(list.body["data"]["nextCursor"].is_null());
    let del = app.admin(Method::DELETE, "/tenants/acme/call-in-groups/Sales", None).await;
    del.expect(200, None);
    assert_eq!(del.body["data"]["name"], "Sales");
    app.admin(Method::DELETE, "/tenants/acme/call-in-groups/Sales", None).await.expect(404, Some("NOT_FOUND"));
    put("globex", "Taker", json!({ "numbers": [n0, n1] })).await.expect(200, None);
    put("acme", "bad name!", json!({ "numbers": [phone(9500)] })).await.expect(400, Some("VALIDATION_FAILED"));

    let audit = app.admin(Method::GET, "/audit", None).await;
    let resources: Vec<&str> =
        audit.body["data"]["items"].as_array().unwrap().iter().filter_map(|e| e["resource"].as_str()).collect();
    assert!(resources.contains(&"tenants/acme/call-in-groups/Sales"), "{resources:?}");
    assert!(resources.contains(&"tenants/globex/call-in-groups/Taker"));

    // Deleting a tenant frees its groups' numbers.
    app.admin(Method::DELETE, "/tenants/globex", None).await.expect(200, None);
    put("acme", "Sales", json!({ "numbers": [n0, n1, n2] })).await.expect(200, None);

    let doc = app.call_on(&app.external, Method::GET, "/engagement/v3/openapi.json", &[], None).await;
    for path in ["create", "retrieve", "cancel"] {
        assert!(doc.body["paths"][format!("/engagement/v3/call-in/requests/{path}")]["post"].is_object(), "{path}");
    }
}

/// Requests made while a group had unique numbers hold their number whole (with a code of their
/// own): after a switch to shared numbers, that number is not shared until they end, so no
/// (number, code) is ever pending twice and a caller cannot reach someone else's request.
async fn a_group_switched_from_unique_to_shared_numbers_never_reuses_a_pending_code(backend: Backend) {
    let app = spawn(backend, &[]).await;
    let tenant = unique_tenant("cs");
    let number = phone(9500);
    let unique = json!({ "numbers": [number], "uniqueNumbers": true, "accessCodeDigits": 1 });
    let key = tenant_with_group(&app, &tenant, "sales", unique).await;
    let first = create(&app, &key, json!({ "groupName": "sales" })).await;
    first.expect(200, None);
    let first_code = first.body["data"]["accessCode"].as_i64().expect("code");
    let shared = json!({ "numbers": [number], "uniqueNumbers": false, "accessCodeDigits": 1 });
    app.admin(Method::PUT, &format!("/tenants/{tenant}/call-in-groups/sales"), Some(shared)).await.expect(200, None);
    create(&app, &key, json!({ "groupName": "sales" })).await.expect(503, Some("POOL_EXHAUSTED"));
    let matched = inbound(&app, json!({ "toPhoneNumber": number, "accessCode": first_code })).await;
    matched.expect(200, None);
    assert_eq!(matched.body["data"]["id"], first.body["data"]["id"]);
    let mut codes = HashSet::new();
    for _ in 0..9 {
        let r = create(&app, &key, json!({ "groupName": "sales" })).await;
        r.expect(200, None);
        assert!(codes.insert(r.body["data"]["accessCode"].as_i64().expect("code")), "a code pending twice");
    }
    create(&app, &key, json!({ "groupName": "sales" })).await.expect(503, Some("POOL_EXHAUSTED"));
}

/// `accessCodeDigits: 0`: the answer has no `accessCode` field at all, and the inbound call
/// matches on the number alone.
async fn a_group_without_codes_issues_no_access_code_and_matches_on_the_number(backend: Backend) {
    let app = spawn(backend, &[]).await;
    let tenant = unique_tenant("cn");
    let number = phone(9600);
    let key = tenant_with_group(&app, &tenant, "sales", json!({ "numbers": [number], "accessCodeDigits": 0 })).await;
    let issued = create(&app, &key, json!({ "groupName": "sales" })).await;
    issued.expect(200, None);
    assert!(issued.body["data"].get("accessCode").is_none(), "{}", issued.text);
    assert_eq!(issued.body["data"]["toPhoneNumber"], number.as_str());
    let matched = inbound(&app, json!({ "toPhoneNumber": number })).await;
    matched.expect(200, None);
    assert_eq!(matched.body["data"]["id"], issued.body["data"]["id"]);
    assert_eq!(matched.body["data"]["state"], "MATCHED");
}
