//! The admin API the operations console reads and writes (issue 26, part 3), on both backends:
//! one callback edited (`PATCH`, `reschedule`; the public `callbacks/update` is the same
//! operation), the filtered list as CSV, the last digits of a number as a filter, slots and
//! availability of a service, call-in requests listed and cancelled, the overview, history
//! entries with their hand-off attempt, and the admin OpenAPI document.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{in_seconds, local_time, phone, TestApp, ADMIN_TOKEN};
use crate::on_both_backends;

on_both_backends!(
    an_operator_edits_and_reschedules_one_callback_audited_and_the_public_update_is_the_same_operation,
    the_filtered_list_exports_as_csv_that_no_spreadsheet_runs,
    slots_availability_and_the_overview_describe_a_service,
    call_in_requests_are_listed_and_cancelled_in_bulk,
    the_admin_openapi_document_lists_every_admin_route_on_the_internal_listener_only,
);

fn unique(what: &str) -> String {
    format!("{what}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

async fn an_operator_edits_and_reschedules_one_callback_audited_and_the_public_update_is_the_same_operation(
    app: TestApp,
) {
    let tenant = unique("edit");
    let key = app.tenant_with_service(&tenant, "sales", json!({ "maxFuture": "30d" })).await;
    let booked = app
        .create(
            &key,
            json!({ "serviceName": "sales", "phoneNumber": phone(1), "desiredTime": in_seconds(3600),
            "userData": { "order": "A-1" } }),
        )
        .await;
    booked.expect(200, None);
    let id = booked.id();
    let path = format!("/tenants/{tenant}/callbacks/{id}");

    // userData and desiredTime together; the answer is the callback with its history.
    let later = in_seconds(7200);
    let patched = app
        .admin(Method::PATCH, &path, Some(json!({ "userData": { "order": "A-2", "vip": true }, "desiredTime": later })))
        .await;
    patched.expect(200, None);
    let data = &patched.body["data"];
    assert_eq!(data["userData"], json!({ "order": "A-2", "vip": true }));
    assert_eq!(crate::helpers::utc_ms(data["desiredTime"].as_str().unwrap()), crate::helpers::utc_ms(&later));
    let last = data["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["note"], "rescheduled; userData edited", "{last}");
    assert_eq!(last["actor"], "admin");
    assert_eq!(last["attempt"], 0, "not yet handed over: {last}");
    // Audited with the operator's name and the tenant.
    let audit = app.admin(Method::GET, "/audit", None).await;
    let entry = audit.body["data"]["items"].as_array().unwrap().iter().find(|e| e["resource"] == path[1..]).cloned();
    let entry = entry.unwrap_or_else(|| panic!("no audit entry for {path}: {:?}", audit.body));
    assert_eq!(entry["action"], "PATCH");
    assert!(entry["actor"].as_str().unwrap().starts_with("admin-token"), "{entry}");

    // Reschedule alone.
    let moved =
        app.admin(Method::POST, &format!("{path}/reschedule"), Some(json!({ "desiredTime": in_seconds(5400) }))).await;
    moved.expect(200, None);
    assert_eq!(moved.body["data"]["userData"]["order"], "A-2", "userData kept");

    // Bad input: nothing to change, a bad time, a bad userData value; nothing is written.
    app.admin(Method::PATCH, &path, Some(json!({}))).await.expect(400, Some("VALIDATION_FAILED"));
    app.admin(Method::PATCH, &path, Some(json!({ "desiredTime": "soon" })))
        .await
        .expect(400, Some("VALIDATION_FAILED"));
    app.admin(Method::PATCH, &path, Some(json!({ "userData": { "x": [1] } })))
        .await
        .expect(400, Some("VALIDATION_FAILED"));
    app.admin(Method::PATCH, &path, Some(json!({ "desiredTime": in_seconds(-60) })))
        .await
        .expect(400, Some("TIME_OUT_OF_RANGE"));
    let unchanged = app.admin(Method::GET, &path, None).await;
    assert_eq!(unchanged.body["data"]["userData"]["order"], "A-2");

    // The public update: the same operation with an API key.
    let updated = app.public(&key, "/callbacks/update", json!({ "id": id, "userData": { "order": "A-3" } })).await;
    updated.expect(200, None);
    assert_eq!(updated.body["data"]["userData"], json!({ "order": "A-3" }));
    app.public(&key, "/callbacks/update", json!({ "userData": {} })).await.expect(400, Some("VALIDATION_FAILED"));
    app.public(&key, "/callbacks/update", json!({ "id": "nope", "userData": {} })).await.expect(404, Some("NOT_FOUND"));

    // Only SCHEDULED callbacks are edited: an immediate one is refused, untouched.
    let now = app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(2) })).await;
    now.expect(200, None);
    let now_path = format!("/tenants/{tenant}/callbacks/{}", now.id());
    app.admin(Method::PATCH, &now_path, Some(json!({ "userData": { "a": 1 } })))
        .await
        .expect(400, Some("NOT_RESCHEDULABLE"));
    app.public(&key, "/callbacks/update", json!({ "id": now.id(), "userData": { "a": 1 } }))
        .await
        .expect(400, Some("NOT_RESCHEDULABLE"));
    // An immediate booking's history names its first hand-off attempt.
    let got = app.admin(Method::GET, &now_path, None).await;
    let first = &got.body["data"]["history"][0];
    assert!(first["attempt"].as_i64().is_some_and(|a| a >= 0), "{first}");
    // Unknown ids are 404 on both admin routes.
    app.admin(Method::PATCH, &format!("/tenants/{tenant}/callbacks/nope"), Some(json!({ "userData": {} })))
        .await
        .expect(404, Some("NOT_FOUND"));
}

async fn the_filtered_list_exports_as_csv_that_no_spreadsheet_runs(app: TestApp) {
    let tenant = unique("csv");
    let key = app.tenant_with_service(&tenant, "sales", json!({ "maxFuture": "30d" })).await;
    let mut ids = Vec::new();
    for (i, order) in ["=HYPERLINK(\"http://evil\")", "plain", "@SUM(1)"].iter().enumerate() {
        let r = app
            .create(
                &key,
                json!({ "serviceName": "sales", "phoneNumber": phone(100 + i as u32),
                "desiredTime": in_seconds(3600 + i as i64), "userData": { "order": order } }),
            )
            .await;
        r.expect(200, None);
        ids.push(r.id());
    }
    let url = format!("{}/admin/v1/tenants/{tenant}/callbacks?limit=1", app.internal);
    let r = app
        .client
        .get(&url)
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = r.text().await.unwrap();
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(lines[0].starts_with("id,serviceName,state,"), "{text}");
    assert_eq!(
        lines.len(),
        4,
        "header and every page of the filtered set (limit=1 is the page size of JSON only): {text}"
    );
    for (line, id) in lines[1..].iter().zip(&ids) {
        assert!(line.starts_with(id.as_str()), "ordered as the list: {line}");
        assert!(line.contains("\"'+"), "the number is text, not a formula: {line}");
    }
    assert!(!text.contains(",=") && !text.contains(",@") && !text.contains(",+"), "no cell starts a formula: {text}");
    // Filters apply: the last digits of the number.
    let last4 = &phone(101)[phone(101).len() - 4..];
    let found = app.admin(Method::GET, &format!("/tenants/{tenant}/callbacks?phoneEndsWith={last4}"), None).await;
    found.expect(200, None);
    let items = found.body["data"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["id"], ids[1].as_str());
    app.admin(Method::GET, &format!("/tenants/{tenant}/callbacks?phoneEndsWith=12a"), None)
        .await
        .expect(400, Some("VALIDATION_FAILED"));
}

async fn slots_availability_and_the_overview_describe_a_service(app: TestApp) {
    let tenant = unique("slots");
    let key = app
        .tenant_with_service(&tenant, "am", json!({ "slotMinutes": 60, "slotCapacity": 2, "maxFuture": "1y" }))
        .await;
    let day = local_time(5, "00:00", "UTC")[..10].to_string();
    let at_ten = format!("{day}T10:00:00.000Z");
    app.create(&key, json!({ "serviceName": "am", "phoneNumber": phone(200), "desiredTime": at_ten }))
        .await
        .expect(200, None);
    let slots = app
        .admin(
            Method::GET,
            &format!("/tenants/{tenant}/services/am/slots?from={day}T00:00:00Z&to={day}T12:00:00Z"),
            None,
        )
        .await;
    slots.expect(200, None);
    let items = slots.body["data"]["slots"].as_array().unwrap();
    assert_eq!(items.len(), 12, "{items:?}");
    let ten = items.iter().find(|s| s["utcTime"] == at_ten.as_str()).expect("the 10:00 slot");
    assert_eq!((ten["total"].as_u64(), ten["reserved"].as_u64(), ten["free"].as_u64()), (Some(2), Some(1), Some(1)));
    assert_eq!(slots.body["data"]["slotMinutes"], 60);
    app.admin(
        Method::GET,
        &format!("/tenants/{tenant}/services/am/slots?from={day}T00:00:00Z&to={day}T00:00:00Z"),
        None,
    )
    .await
    .expect(400, Some("VALIDATION_FAILED"));
    app.admin(Method::GET, &format!("/tenants/{tenant}/services/nope/slots"), None)
        .await
        .expect(400, Some("UNKNOWN_SERVICE"));
    // Availability: the public rules for an operator.
    let open = app
        .admin(Method::GET, &format!("/tenants/{tenant}/services/am/availability?start={day}&maxTimeSlots=3"), None)
        .await;
    open.expect(200, None);
    assert_eq!(open.body["data"]["slots"].as_array().unwrap().len(), 3);
    assert_eq!(open.body["data"]["durationMin"], 60);

    // Overview: one immediate callback active; hand-offs not paused; health as readiness says.
    app.create(&key, json!({ "serviceName": "am", "phoneNumber": phone(201) })).await.expect(200, None);
    app.admin(Method::PUT, &format!("/tenants/{tenant}/services/am/dispatch"), Some(json!({ "paused": true })))
        .await
        .expect(200, None);
    let now = app.admin(Method::GET, &format!("/tenants/{tenant}/overview"), None).await;
    now.expect(200, None);
    let services = now.body["data"]["services"].as_array().unwrap();
    assert_eq!(services.len(), 1);
    assert_eq!(services[0]["name"], "am");
    assert_eq!(services[0]["paused"], true);
    assert_eq!(services[0]["active"], 1, "{services:?}");
    assert_eq!(services[0]["dueNotHandedOver"], 0);
    assert_eq!(services[0]["failedLastHour"], 0);
    assert_eq!(now.body["data"]["health"]["dependencies"]["database"], "up");
}

async fn call_in_requests_are_listed_and_cancelled_in_bulk(app: TestApp) {
    let tenant = unique("ci");
    app.admin(Method::PUT, &format!("/tenants/{tenant}"), Some(json!({}))).await.expect(200, None);
    let numbers: Vec<String> = (0..3).map(|i| phone(9400 + i)).collect();
    app.admin(Method::PUT, &format!("/tenants/{tenant}/call-in-groups/help"), Some(json!({ "numbers": numbers })))
        .await
        .expect(200, None);
    let key = app.admin(Method::POST, &format!("/tenants/{tenant}/api-keys"), Some(json!({}))).await.body["data"]
        ["key"]
        .as_str()
        .unwrap()
        .to_string();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let r = app.public(&key, "/call-in/requests/create", json!({ "groupName": "help" })).await;
        r.expect(200, None);
        ids.push(r.id());
    }
    let list = app.admin(Method::GET, &format!("/tenants/{tenant}/call-in-requests?limit=2"), None).await;
    list.expect(200, None);
    let page: Vec<&str> =
        list.body["data"]["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(page.len(), 2);
    let cursor = list.body["data"]["nextCursor"].as_str().expect("a second page").to_string();
    let rest = app
        .admin(
            Method::GET,
            &format!("/tenants/{tenant}/call-in-requests?limit=2&cursor={}", urlencoding(&cursor)),
            None,
        )
        .await;
    let mut all: Vec<String> = page.iter().map(|s| s.to_string()).collect();
    all.extend(rest.body["data"]["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()));
    all.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(all, expected);

    let cancel = app
        .admin(
            Method::POST,
            &format!("/tenants/{tenant}/call-in-requests/cancel"),
            Some(json!({ "ids": [ids[0], ids[1], "nope"] })),
        )
        .await;
    cancel.expect(200, None);
    assert_eq!(cancel.body["data"]["cancelled"], json!([ids[0], ids[1]]));
    assert_eq!(cancel.body["data"]["notFound"], json!(["nope"]));
    let pending = app.admin(Method::GET, &format!("/tenants/{tenant}/call-in-requests?state=PENDING"), None).await;
    let pending: Vec<&Value> = pending.body["data"]["items"].as_array().unwrap().iter().collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["id"], ids[2].as_str());
    let cancelled = app.admin(Method::GET, &format!("/tenants/{tenant}/call-in-requests?state=CANCELLED"), None).await;
    assert_eq!(cancelled.body["data"]["items"].as_array().unwrap().len(), 2);
    app.admin(Method::GET, &format!("/tenants/{tenant}/call-in-requests?state=LOST"), None)
        .await
        .expect(400, Some("VALIDATION_FAILED"));
}

fn urlencoding(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn the_admin_openapi_document_lists_every_admin_route_on_the_internal_listener_only(app: TestApp) {
    let doc = app.admin(Method::GET, "/openapi.json", None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc.body["paths"].as_object().unwrap();
    for (method, pattern, _) in ringback::http::roles::RULES {
        if pattern.starts_with("/faults") {
            continue;
        }
        let op = &paths[&format!("/admin/v1{pattern}")][method.to_lowercase()];
        assert!(op["summary"].is_string(), "{method} {pattern} is documented");
    }
    assert!(paths.keys().all(|p| p.starts_with("/admin/v1/")), "the public API is not in it");
    // The public document has no admin route; the admin document is not on the external listener.
    let public = app.call(Method::GET, "/engagement/v3/openapi.json", &[], None).await;
    assert!(public.body["paths"].as_object().unwrap().keys().all(|p| !p.starts_with("/admin")));
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let outside =
        app.call_on(&app.external, Method::GET, "/admin/v1/openapi.json", &[("authorization", &auth)], None).await;
    assert_eq!(outside.status, StatusCode::NOT_FOUND);
}
