//! The OpenAPI document tells the truth: real answers of every public operation — successes and
//! each kind of error — have their status documented, and their bodies match the documented
//! schema. The schema check covers the subset of JSON Schema the document uses (`$ref`, `type`,
//! `required`, `properties`, `items`, `enum`, `oneOf`/`anyOf`/`allOf`).

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{local_time, phone, Backend, Response, TestApp};

/// Problems of `value` against `schema` (resolving `$ref` in `doc`), each with its JSON path.
fn violations(doc: &Value, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let target = reference.strip_prefix('#').and_then(|p| doc.pointer(p)).unwrap_or(&Value::Null);
        if target.is_null() {
            out.push(format!("{at}: unresolved {reference}"));
        } else {
            violations(doc, target, value, at, out);
        }
        return;
    }
    for (key, all) in [("oneOf", false), ("anyOf", false), ("allOf", true)] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let results: Vec<Vec<String>> = options
                .iter()
                .map(|o| {
                    let mut v = Vec::new();
                    violations(doc, o, value, at, &mut v);
                    v
                })
                .collect();
            let passing = results.iter().filter(|r| r.is_empty()).count();
            let ok = if all { passing == options.len() } else { passing >= 1 };
            if !ok {
                out.push(format!("{at}: matches no {key} option: {:?}", results.concat()));
            }
        }
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let fits = |t: &str| match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            _ => true,
        };
        if !types.iter().any(|t| fits(t)) {
            out.push(format!("{at}: {value} is not {types:?}"));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            out.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    if let (Some(object), Some(required)) = (value.as_object(), schema.get("required").and_then(Value::as_array)) {
        for name in required.iter().filter_map(Value::as_str) {
            if !object.contains_key(name) {
                out.push(format!("{at}: missing required {name}"));
            }
        }
    }
    if let (Some(object), Some(properties)) = (value.as_object(), schema.get("properties").and_then(Value::as_object)) {
        for (name, property) in properties {
            if let Some(v) = object.get(name) {
                violations(doc, property, v, &format!("{at}.{name}"), out);
            }
        }
    }
    if let (Some(items), Some(schema)) = (value.as_array(), schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            violations(doc, schema, item, &format!("{at}[{i}]"), out);
        }
    }
}

/// The answer's status is documented for the operation and its body matches the schema there.
fn check(doc: &Value, path: &str, method: &str, r: &Response, problems: &mut Vec<String>) {
    let status = r.status.as_u16().to_string();
    let operation = &doc["paths"][path][method];
    assert!(operation.is_object(), "{method} {path} is not in the document");
    let Some(response) = operation["responses"].get(&status) else {
        problems.push(format!("{method} {path}: status {status} not documented ({})", r.text));
        return;
    };
    let content_type = r.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.starts_with("application/json") {
        problems.push(format!("{method} {path} {status}: content-type {content_type}"));
    }
    let schema = &response["content"]["application/json"]["schema"];
    if schema.is_null() {
        problems.push(format!("{method} {path} {status}: no schema"));
        return;
    }
    let mut found = Vec::new();
    violations(doc, schema, &r.body, "body", &mut found);
    problems.extend(found.into_iter().map(|p| format!("{method} {path} {status}: {p}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_answers_match_the_openapi_document() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc = app.call(Method::GET, "/engagement/v3/openapi.json", &[], None).await.body;
    let key = app.tenant_with_service("acme", "sales", json!({ "slotCapacity": 1, "maxFuture": "1y" })).await;
    let h = [("x-api-key", key.as_str())];
    let post = |path: &'static str, body: Value| {
        let url = format!("/engagement/v3{path}");
        let key = key.clone();
        let app = &app;
        async move { app.call(Method::POST, &url, &[("x-api-key", &key)], Some(body)).await }
    };
    let mut problems = Vec::new();
    let create = "/engagement/v3/callbacks/create";
    let when = local_time(2, "10:00", "UTC");

    let booked =
        post("/callbacks/create", json!({ "serviceName": "sales", "phoneNumber": phone(1), "desiredTime": when }))
            .await;
    booked.expect(200, None);
    check(&doc, create, "post", &booked, &mut problems);
    let full =
        post("/callbacks/create", json!({ "serviceName": "sales", "phoneNumber": phone(2), "desiredTime": when }))
            .await;
    full.expect(429, Some("SLOT_FULL"));
    check(&doc, create, "post", &full, &mut problems);
    let missing = post("/callbacks/create", json!({ "serviceName": "sales" })).await;
    missing.expect(400, Some("VALIDATION_FAILED"));
    check(&doc, create, "post", &missing, &mut problems);
    let stranger = app.call(Method::POST, create, &[("x-api-key", "rb_not_a_key")], Some(json!({}))).await;
    stranger.expect(401, Some("UNAUTHORIZED"));
    check(&doc, create, "post", &stranger, &mut problems);
    let url = format!("{}{create}", app.internal);
    let sent = app.client.post(&url).header("x-api-key", &key).header("content-type", "text/plain").body("{}");
    let text = Response::from(sent.send().await.unwrap()).await;
    text.expect(415, Some("UNSUPPORTED_MEDIA_TYPE"));
    check(&doc, create, "post", &text, &mut problems);
    let huge = json!({ "serviceName": "sales", "phoneNumber": phone(3), "captchaToken": "x".repeat(70_000) });
    let too_large = post("/callbacks/create", huge).await;
    too_large.expect(413, Some("PAYLOAD_TOO_LARGE"));
    check(&doc, create, "post", &too_large, &mut problems);
    let idem = |body: Value| {
        let url = format!("{}{create}", app.internal);
        let req = app.client.post(url).header("x-api-key", &key).header("idempotency-key", "truth-1").json(&body);
        async move { Response::from(req.send().await.unwrap()).await }
    };
    idem(json!({ "serviceName": "sales", "phoneNumber": phone(4) })).await.expect(200, None);
    let reused = idem(json!({ "serviceName": "sales", "phoneNumber": phone(5) })).await;
    reused.expect(422, Some("IDEMPOTENCY_KEY_REUSED"));
    check(&doc, create, "post", &reused, &mut problems);

    let id = booked.id();
    for op in ["retrieve", "cancel"] {
        let path = format!("/engagement/v3/callbacks/{op}");
        let unknown =
            app.call(Method::POST, &path, &h, Some(json!({ "id": "01a00000-0000-7000-8000-000000000000" }))).await;
        unknown.expect(404, Some("NOT_FOUND"));
        check(&doc, &path, "post", &unknown, &mut problems);
    }
    let retrieved = post("/callbacks/retrieve", json!({ "id": id })).await;
    retrieved.expect(200, None);
    check(&doc, "/engagement/v3/callbacks/retrieve", "post", &retrieved, &mut problems);
    let later = local_time(3, "11:00", "UTC");
    let moved = post("/callbacks/reschedule", json!({ "id": id, "desiredTime": later })).await;
    moved.expect(200, None);
    check(&doc, "/engagement/v3/callbacks/reschedule", "post", &moved, &mut problems);
    let cancelled = post("/callbacks/cancel", json!({ "id": id })).await;
    cancelled.expect(200, None);
    check(&doc, "/engagement/v3/callbacks/cancel", "post", &cancelled, &mut problems);
    let again = post("/callbacks/cancel", json!({ "id": id })).await;
    again.expect(400, Some("ALREADY_COMPLETED"));
    check(&doc, "/engagement/v3/callbacks/cancel", "post", &again, &mut problems);

    let list = "/engagement/v3/callbacks";
    let listed = app.call(Method::GET, list, &h, None).await;
    listed.expect(200, None);
    check(&doc, list, "get", &listed, &mut problems);
    let bad_limit = app.call(Method::GET, &format!("{list}?limit=0"), &h, None).await;
    bad_limit.expect(400, Some("VALIDATION_FAILED"));
    check(&doc, list, "get", &bad_limit, &mut problems);

    let availability = "/engagement/v3/callbacks/availability/{service-name}";
    let slots = app.call(Method::GET, "/engagement/v3/callbacks/availability/sales", &h, None).await;
    slots.expect(200, None);
    check(&doc, availability, "get", &slots, &mut problems);
    let unknown = app.call(Method::GET, "/engagement/v3/callbacks/availability/nope", &h, None).await;
    unknown.expect(400, Some("UNKNOWN_SERVICE"));
    check(&doc, availability, "get", &unknown, &mut problems);
    let open_for = app.call(Method::GET, "/engagement/v3/callbacks/open-for/sales", &h, None).await;
    open_for.expect(200, None);
    check(&doc, "/engagement/v3/callbacks/open-for/{service-name}", "get", &open_for, &mut problems);

    let queue_status = "/engagement/v3/callbacks/queue-status/{queue-name}";
    let status = app.call(Method::GET, "/engagement/v3/callbacks/queue-status/sales", &h, None).await;
    status.expect(200, None);
    check(&doc, queue_status, "get", &status, &mut problems);
    let no_queue = app.call(Method::GET, "/engagement/v3/callbacks/queue-status/nope", &h, None).await;
    no_queue.expect(400, Some("UNKNOWN_SERVICE"));
    check(&doc, queue_status, "get", &no_queue, &mut problems);
    let ewt = "/engagement/v3/estimated-wait-time";
    let estimates = app.call(Method::GET, &format!("{ewt}?virtual-queues=sales,nope"), &h, None).await;
    estimates.expect(200, None);
    assert_eq!(estimates.body["data"][1]["resultCode"], 2, "{}", estimates.text);
    check(&doc, ewt, "get", &estimates, &mut problems);
    let bad_mode = app.call(Method::GET, &format!("{ewt}?virtual-queues=sales&mode=mode9"), &h, None).await;
    bad_mode.expect(400, Some("VALIDATION_FAILED"));
    check(&doc, ewt, "get", &bad_mode, &mut problems);

    let call_in = "/engagement/v3/call-in/requests/retrieve";
    let no_request = app.call(Method::POST, call_in, &h, Some(json!({ "id": "nope" }))).await;
    no_request.expect(404, Some("NOT_FOUND"));
    check(&doc, call_in, "post", &no_request, &mut problems);
    let no_group = post("/call-in/requests/create", json!({ "groupName": "nope" })).await;
    no_group.expect(400, None);
    check(&doc, "/engagement/v3/call-in/requests/create", "post", &no_group, &mut problems);

    assert!(problems.is_empty(), "answers the document does not describe:\n{}", problems.join("\n"));
}

#[test]
fn the_schema_check_finds_what_is_wrong() {
    let doc = json!({ "components": { "schemas": { "Id": { "type": "object", "required": ["id"],
        "properties": { "id": { "type": "string" }, "n": { "type": ["integer", "null"] } } } } } });
    let schema = json!({ "$ref": "#/components/schemas/Id" });
    let found = |value: Value| {
        let mut out = Vec::new();
        violations(&doc, &schema, &value, "body", &mut out);
        out
    };
    assert!(found(json!({ "id": "a", "n": null })).is_empty());
    assert_eq!(found(json!({ "n": 1 })), vec!["body: missing required id"]);
    assert_eq!(found(json!({ "id": 1 })).len(), 1);
    assert_eq!(found(json!({ "id": "a", "n": "x" })).len(), 1);
    let status = json!({ "type": "string", "enum": ["A"] });
    let mut out = Vec::new();
    violations(&doc, &status, &json!("B"), "reason", &mut out);
    assert_eq!(out.len(), 1);
}
