//! The HTTP edge: payload errors in the envelope, authentication, routing, listeners, CORS, OpenAPI.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{phone, Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    payload_errors_are_enveloped_and_store_nothing,
    api_key_is_required_and_must_be_known,
    unclean_or_unbounded_input_is_refused_and_nothing_is_stored
);

async fn payload_errors_are_enveloped_and_store_nothing(app: TestApp) {
    let key = app.tenant_with_service("acme", "sales", json!({})).await;
    let url = format!("{}/engagement/v3/callbacks/create", app.internal);
    let send = |content_type: &'static str, body: String| {
        let req = app.client.post(&url).header("x-api-key", &key).header("content-type", content_type).body(body);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap();
            (status, body)
        }
    };
    let (status, body) = send("application/json", "{\"serviceName\": ".into()).await;
    assert_eq!((status, body["status"]["reason"].as_str()), (400, Some("MALFORMED_JSON")));
    let (status, body) = send("application/json", "[1, 2]".into()).await;
    assert_eq!((status, body["status"]["reason"].as_str()), (400, Some("MALFORMED_JSON")));
    let (status, body) =
        send("text/plain", json!({ "serviceName": "sales", "phoneNumber": phone(1) }).to_string()).await;
    assert_eq!((status, body["status"]["reason"].as_str()), (415, Some("UNSUPPORTED_MEDIA_TYPE")));
    let before = invalid_content_length(&app.metrics().await);
    let huge =
        json!({ "serviceName": "sales", "phoneNumber": phone(1), "captchaToken": "x".repeat(70_000) }).to_string();
    let (status, body) = send("application/json", huge).await;
    assert_eq!((status, body["status"]["reason"].as_str()), (413, Some("PAYLOAD_TOO_LARGE")));
    assert!(invalid_content_length(&app.metrics().await) > before, "INVALID_CONTENT_LENGTH counts oversized bodies");
    let (status, _) =
        send("application/json; charset=utf-8", json!({ "serviceName": "sales", "phoneNumber": phone(1) }).to_string())
            .await;
    assert_eq!(status, 200, "a charset parameter is fine");
    let listed = app.call(Method::GET, "/engagement/v3/callbacks", &[("x-api-key", &key)], None).await;
    assert_eq!(listed.body["data"]["items"].as_array().unwrap().len(), 1, "only the valid request stored anything");
}

fn invalid_content_length(metrics: &str) -> f64 {
    crate::helpers::metric_value(metrics, "INVALID_CONTENT_LENGTH").expect("INVALID_CONTENT_LENGTH is registered at 0")
}

async fn api_key_is_required_and_must_be_known(app: TestApp) {
    app.tenant_with_service("acme", "sales", json!({})).await;
    let body = json!({ "serviceName": "sales", "phoneNumber": phone(1) });
    app.call(Method::POST, "/engagement/v3/callbacks/create", &[], Some(body.clone()))
        .await
        .expect(401, Some("UNAUTHORIZED"));
    app.create("rb_not_a_key", body.clone()).await.expect(401, Some("UNAUTHORIZED"));
    let r = app.call(Method::GET, "/engagement/v3/callbacks", &[("x-api-key", "")], None).await;
    r.expect(401, Some("UNAUTHORIZED"));
    // A disabled tenant's keys stop working.
    let key = app.tenant_with_service("gone", "sales", json!({})).await;
    app.admin(Method::PUT, "/tenants/gone", Some(json!({ "enabled": false }))).await.expect(200, None);
    app.create(&key, body).await.expect(401, Some("UNAUTHORIZED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_answer_in_the_envelope() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.call(Method::GET, "/engagement/v3/nothing-here", &[], None).await.expect(404, Some("NOT_FOUND"));
    app.call(Method::GET, "/engagement/v3/callbacks/create", &[], None).await.expect(405, Some("METHOD_NOT_ALLOWED"));
    app.call(Method::DELETE, "/engagement/v3/callbacks", &[], None).await.expect(405, Some("METHOD_NOT_ALLOWED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_listener_serves_public_api_and_health_only() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.tenant_with_service("acme", "sales", json!({})).await;
    let r = app
        .call_on(
            &app.external,
            Method::POST,
            "/engagement/v3/callbacks/create",
            &[("x-api-key", &key)],
            Some(json!({ "serviceName": "sales", "phoneNumber": phone(1) })),
        )
        .await;
    r.expect(200, None);
    let live = app.client.get(format!("{}/health/live", app.external)).send().await.unwrap();
    assert_eq!(live.status(), 200);
    assert_eq!(live.json::<serde_json::Value>().await.unwrap(), json!({ "status": "alive" }));
    let auth = format!("Bearer {}", crate::helpers::ADMIN_TOKEN);
    app.call_on(&app.external, Method::GET, "/admin/v1/tenants", &[("authorization", &auth)], None)
        .await
        .expect(404, Some("NOT_FOUND"));
    app.call_on(&app.external, Method::GET, "/metrics", &[], None).await.expect(404, Some("NOT_FOUND"));
    let ready = app.client.get(format!("{}/health/ready", app.internal)).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["dependencies"]["database"], "up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_uses_the_union_and_requests_their_own_tenant() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key_a = app.tenant_with_service("a", "sales", json!({})).await;
    app.admin(Method::PUT, "/tenants/a", Some(json!({ "allowedOrigins": ["https://a.example"] })))
        .await
        .expect(200, None);
    app.admin(Method::PUT, "/tenants/b", Some(json!({ "allowedOrigins": ["https://b.example"] })))
        .await
        .expect(200, None);
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, format!("{}/engagement/v3/callbacks/create", app.internal))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type, x-api-key")
            .send()
    };
    for origin in ["https://a.example", "https://b.example"] {
        let r = preflight(origin).await.unwrap();
        assert_eq!(r.headers()["access-control-allow-origin"], origin);
        assert!(r.headers()["access-control-allow-headers"].to_str().unwrap().contains("x-api-key"));
    }
    let r = preflight("https://evil.example").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let body = json!({ "serviceName": "sales", "phoneNumber": phone(1) });
    let own = app
        .call(
            Method::POST,
            "/engagement/v3/callbacks/create",
            &[("x-api-key", &key_a), ("origin", "https://a.example")],
            Some(body.clone()),
        )
        .await;
    own.expect(200, None);
    assert_eq!(own.headers["access-control-allow-origin"], "https://a.example");
    // b's origin passes the preflight union, but a's key does not accept it.
    let other = app
        .call(
            Method::POST,
            "/engagement/v3/callbacks/create",
            &[("x-api-key", &key_a), ("origin", "https://b.example")],
            Some(body),
        )
        .await;
    other.expect(401, Some("UNAUTHORIZED"));
    assert!(other.headers.get("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_describes_the_public_api() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let r = app.client.get(format!("{}/engagement/v3/openapi.json", app.external)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let doc: serde_json::Value = r.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/engagement/v3/callbacks/create",
        "/engagement/v3/callbacks/retrieve",
        "/engagement/v3/callbacks/cancel",
        "/engagement/v3/callbacks/reschedule",
        "/engagement/v3/callbacks",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    let parms = &doc["components"]["schemas"]["CreateCallbackParms"]["properties"];
    for field in ["serviceName", "phoneNumber", "desiredTime", "inboundVQ", "surveyRP", "userData", "cbOfferType"] {
        assert!(parms.get(field).is_some(), "{field} missing from CreateCallbackParms");
    }
    assert_eq!(doc["components"]["securitySchemes"]["api_key"]["name"], "x-api-key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_correlation_id_is_echoed_when_well_formed() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let r = app.call(Method::GET, "/engagement/v3/nope", &[("x-correlation-id", "trace-42.a_b")], None).await;
    assert_eq!(r.headers["x-correlation-id"], "trace-42.a_b");
    assert_eq!(r.body["status"]["corrId"], "trace-42.a_b");
    let r = app.call(Method::GET, "/engagement/v3/nope", &[("x-correlation-id", "bad id!")], None).await;
    assert_ne!(r.body["status"]["corrId"], "bad id!");
    assert_eq!(r.body["status"]["corrId"].as_str().unwrap().len(), 36);
}

/// NUL and other control characters, anywhere a request carries a string: 400 naming the field,
/// on both backends, and nothing reaches the database (PostgreSQL answered 500 on a NUL id).
/// Lists a request names are bounded too (api.md).
async fn unclean_or_unbounded_input_is_refused_and_nothing_is_stored(app: TestApp) {
    let key = app.tenant_with_service("acme", "sales", json!({})).await;
    let refused = |r: &crate::helpers::Response, field: &str| {
        r.expect(400, Some("VALIDATION_FAILED"));
        assert_eq!(r.body["status"]["details"][0]["field"], field, "{}", r.text);
    };
    let create = |body: serde_json::Value| app.create(&key, body);
    let ok = json!({ "serviceName": "sales", "phoneNumber": phone(1) });
    refused(&create(json!({ "serviceName": "sa\u{0}les", "phoneNumber": phone(1) })).await, "serviceName");
    refused(&create(json!({ "serviceName": "sales", "phoneNumber": "+1415\u{1b}5550142" })).await, "phoneNumber");
    refused(
        &create(json!({ "serviceName": "sales", "phoneNumber": phone(1), "userData": { "note": "a\u{0}b" } })).await,
        "userData.note",
    );
    refused(
        &create(json!({ "serviceName": "sales", "phoneNumber": phone(1), "userData": { "n\u{7f}": "x" } })).await,
        "userData",
    );
    refused(
        &create(json!({ "serviceName": "sales", "phoneNumber": phone(1), "pushTargets": ["ok", "b\u{0}d"] })).await,
        "pushTargets[1]",
    );
    // Tab, CR and LF are free text in userData values, and only there.
    let note = "call after 5pm\r\n\tback door";
    let booked = create(json!({ "serviceName": "sales", "phoneNumber": phone(2), "userData": { "note": note } })).await;
    booked.expect(200, None);
    refused(&create(json!({ "serviceName": "sales\t", "phoneNumber": phone(3) })).await, "serviceName");
    // Ids in bodies (retrieve, cancel; call-in too): PostgreSQL never sees them.
    for path in [
        "/engagement/v3/callbacks/retrieve",
        "/engagement/v3/callbacks/cancel",
        "/engagement/v3/call-in/requests/retrieve",
        "/engagement/v3/call-in/requests/cancel",
    ] {
        let r = app.call(Method::POST, path, &[("x-api-key", &key)], Some(json!({ "id": "01a\u{0}" }))).await;
        refused(&r, "id");
    }
    // Query parameters and path segments, named by their parameter.
    let get = |path: String| {
        let (app, key) = (&app, key.clone());
        async move { app.call(Method::GET, &path, &[("x-api-key", &key)], None).await }
    };
    refused(&get("/engagement/v3/callbacks?phoneNumber=%2B1415%005550142".into()).await, "phoneNumber");
    refused(&get("/engagement/v3/callbacks/open-for/sa%00les".into()).await, "service_name");
    let repeated: Vec<String> = (0..21).map(|i| format!("phoneNumber={}", phone(i).replace('+', "%2B"))).collect();
    let r = get(format!("/engagement/v3/callbacks?{}", repeated.join("&"))).await;
    refused(&r, "phoneNumber");
    let twenty = repeated[..20].join("&");
    get(format!("/engagement/v3/callbacks?{twenty}")).await.expect(200, None);
    let queues = |n: usize| (0..n).map(|i| format!("q{i}")).collect::<Vec<_>>().join(",");
    let ewt = |n: usize| format!("/engagement/v3/estimated-wait-time?virtual-queues={}", queues(n));
    refused(&get(ewt(51)).await, "virtual-queues");
    let fifty = get(ewt(50)).await;
    fifty.expect(200, None);
    assert_eq!(fifty.body["data"].as_array().map(Vec::len), Some(50));
    // A literal "%00" text (encoded %25) is not a NUL.
    get("/engagement/v3/callbacks/open-for/sa%2500les".into()).await.expect(400, Some("UNKNOWN_SERVICE"));
    let r = app
        .call(
            Method::POST,
            "/engagement/v3/callbacks/create",
            &[("x-api-key", &key), ("idempotency-key", "a\tb")],
            Some(ok),
        )
        .await;
    refused(&r, "Idempotency-Key");
    // Only the clean booking was stored, its note intact.
    let listed = app.call(Method::GET, "/engagement/v3/callbacks", &[("x-api-key", &key)], None).await;
    let items = listed.body["data"]["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 1, "{}", listed.text);
    let retrieved = app.retrieve(&key, &booked.id()).await;
    assert_eq!(retrieved.body["data"]["userData"]["note"], note, "{}", retrieved.text);
}
