//! Admin API: tenants, API keys, services, audit, log level.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{phone, Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(backend: bulk_cancel_and_redrive_are_all_or_nothing_with_their_audit_entry);

on_both_backends!(
    tenants_are_put_read_listed_and_deleted,
    api_keys_are_shown_once_listed_and_revoked,
    services_get_defaults_aliases_and_field_path_errors,
    every_admin_write_is_audited_without_secrets,
    admin_api_needs_a_valid_bearer_token,
    deleting_a_service_or_tenant_with_unfinished_callbacks_needs_the_cancel_flag,
    a_widget_key_does_everything_but_list_callbacks,
);

async fn tenants_are_put_read_listed_and_deleted(app: TestApp) {
    let r =
        app.admin(Method::PUT, "/tenants/Acme_EU", Some(json!({ "allowedOrigins": ["https://shop.example"] }))).await;
    r.expect(200, None);
    assert_eq!(r.body["data"]["name"], "Acme_EU");
    assert_eq!(r.body["data"]["enabled"], true, "defaults filled in");
    assert!(r.body["data"]["id"].is_string());
    let again = app.admin(Method::PUT, "/tenants/Acme_EU", Some(json!({ "enabled": false }))).await;
    assert_eq!(again.body["data"]["id"], r.body["data"]["id"], "PUT replaces in place");
    assert_eq!(again.body["data"]["allowedOrigins"], json!([]));
    app.admin(Method::GET, "/tenants/Acme_EU", None).await.expect(200, None);
    app.admin(Method::GET, "/tenants/acme_eu", None).await.expect(404, Some("NOT_FOUND"));
    let list = app.admin(Method::GET, "/tenants", None).await;
    assert_eq!(list.body["data"]["items"].as_array().unwrap().len(), 1);
    assert!(list.body["data"]["nextCursor"].is_null());
    let bad =
        app.admin(Method::PUT, "/tenants/x", Some(json!({ "allowedOrigins": ["https://ok.example", "nope"] }))).await;
    bad.expect(400, Some("VALIDATION_FAILED"));
    assert_eq!(bad.body["status"]["details"][0]["field"], "allowedOrigins[1]");
    app.admin(Method::PUT, "/tenants/x", Some(json!({ "enabled": true, "colour": "red" })))
        .await
        .expect(400, Some("VALIDATION_FAILED"));
    app.admin(Method::PUT, "/tenants/bad%20name", Some(json!({}))).await.expect(400, Some("VALIDATION_FAILED"));
    let del = app.admin(Method::DELETE, "/tenants/Acme_EU", None).await;
    del.expect(200, None);
    assert_eq!(del.body["data"]["name"], "Acme_EU");
    app.admin(Method::DELETE, "/tenants/Acme_EU", None).await.expect(404, Some("NOT_FOUND"));
}

async fn api_keys_are_shown_once_listed_and_revoked(app: TestApp) {
    let key = app.tenant_with_service("acme", "sales", json!({})).await;
    app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(10) })).await.expect(200, None);
    let list = app.admin(Method::GET, "/tenants/acme/api-keys", None).await;
    let items = list.body["data"]["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert!(key.starts_with(items[0]["prefix"].as_str().unwrap()));
    assert!(items[0].get("key").is_none(), "plaintext is shown only at creation");
    assert!(!list.text.contains(&key));
    // Last use is recorded (off the request path, at most once a minute).
    let mut last_used = serde_json::Value::Null;
    for _ in 0..50 {
        let l = app.admin(Method::GET, "/tenants/acme/api-keys", None).await;
        last_used = l.body["data"]["items"][0]["lastUsedTime"].clone();
        if last_used.is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(last_used.is_string(), "lastUsedTime recorded");
    let id = items[0]["id"].as_str().unwrap();
    let del = app.admin(Method::DELETE, &format!("/tenants/acme/api-keys/{id}"), None).await;
    del.expect(200, None);
    assert_eq!(del.body["data"]["id"], id);
    // Revoked on this replica at once.
    app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(10) }))
        .await
        .expect(401, Some("UNAUTHORIZED"));
    app.admin(Method::DELETE, &format!("/tenants/acme/api-keys/{id}"), None).await.expect(404, Some("NOT_FOUND"));
    app.admin(Method::POST, "/tenants/ghost/api-keys", Some(json!({}))).await.expect(404, Some("NOT_FOUND"));
}

async fn services_get_defaults_aliases_and_field_path_errors(app: TestApp) {
    app.admin(Method::PUT, "/tenants/acme", Some(json!({}))).await.expect(200, None);
    let r = app
        .admin(Method::PUT, "/tenants/acme/services/Sales", Some(json!({ "_throttle_callbacks_per_service_1": "20" })))
        .await;
    r.expect(200, None);
    let s = &r.body["data"];
    assert_eq!(s["name"], "Sales");
    assert_eq!(s["virtualQueue"], "Sales");
    assert_eq!(s["slotMinutes"], 5);
    assert_eq!(s["slotCapacity"], 100);
    assert_eq!(s["maxFuture"], "1M");
    assert_eq!(s["inQueueChecking"], "false");
    assert_eq!(
        s["serviceRateLimits"],
        json!([{ "limit": 20, "windowSeconds": 300 }, { "limit": 1000, "windowSeconds": 3600 }])
    );
    assert_eq!(s["perNumberLimit"], json!({ "limit": 6, "windowSeconds": 86400 }));
    assert_eq!(s["ttlSeconds"], 86400);
    let got = app.admin(Method::GET, "/tenants/acme/services/Sales", None).await;
    assert_eq!(got.body["data"], r.body["data"]);
    let bad = app
        .admin(Method::PUT, "/tenants/acme/services/Sales", Some(json!({ "serviceRateLimits": [{ "limit": 5, "windowSeconds": 60 }, { "limit": 0, "windowSeconds": 60 }], "slotMinutes": 7 })))
        .await;
    bad.expect(400, Some("VALIDATION_FAILED"));
    let fields: Vec<&str> =
        bad.body["status"]["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["slotMinutes", "serviceRateLimits[1].limit"]);
    // Validated whole before anything is stored: the old version is intact.
    let still = app.admin(Method::GET, "/tenants/acme/services/Sales", None).await;
    assert_eq!(still.body["data"]["slotMinutes"], 5);
    app.admin(Method::PUT, "/tenants/acme/services/Sales", Some(json!({ "slotMinuts": 5 })))
        .await
        .expect(400, Some("VALIDATION_FAILED"));
    app.admin(Method::PUT, "/tenants/acme/services/Sales", Some(json!([1]))).await.expect(400, Some("MALFORMED_JSON"));
    let list = app.admin(Method::GET, "/tenants/acme/services", None).await;
    assert_eq!(list.body["data"]["items"].as_array().unwrap().len(), 1);
    app.admin(Method::DELETE, "/tenants/acme/services/Sales", None).await.expect(200, None);
    app.admin(Method::GET, "/tenants/acme/services/Sales", None).await.expect(404, Some("NOT_FOUND"));
}

async fn every_admin_write_is_audited_without_secrets(app: TestApp) {
    let key = app.tenant_with_service("acme", "sales", json!({})).await;
    let audit = app.admin(Method::GET, "/audit", None).await;
    audit.expect(200, None);
    let items = audit.body["data"]["items"].as_array().unwrap();
    let resources: Vec<&str> = items.iter().map(|i| i["resource"].as_str().unwrap()).collect();
    assert_eq!(resources.len(), 3);
    assert!(resources[0].starts_with("tenants/acme/api-keys/"), "newest first: {resources:?}");
    assert_eq!(resources[1..], ["tenants/acme/services/sales", "tenants/acme"]);
    assert!(items.iter().all(|i| i["actor"] == "admin-token-1"));
    assert!(!audit.text.contains(&key), "the key never reaches the audit log");
    assert!(!audit.text.contains(crate::helpers::ADMIN_TOKEN));
    // Failed writes are not audited.
    app.admin(Method::PUT, "/tenants/acme/services/sales", Some(json!({ "slotMinutes": 1 }))).await.expect(400, None);
    let again = app.admin(Method::GET, "/audit", None).await;
    assert_eq!(again.body["data"]["items"].as_array().unwrap().len(), 3);
}

async fn admin_api_needs_a_valid_bearer_token(app: TestApp) {
    app.call(Method::GET, "/admin/v1/tenants", &[], None).await.expect(401, Some("UNAUTHORIZED"));
    app.call(Method::GET, "/admin/v1/tenants", &[("authorization", "Bearer wrong")], None)
        .await
        .expect(401, Some("UNAUTHORIZED"));
    app.call(Method::GET, "/admin/v1/tenants", &[("authorization", "test-admin-token")], None)
        .await
        .expect(401, Some("UNAUTHORIZED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_tokens_are_both_valid_and_no_tokens_means_no_admin_api() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("RINGBACK__ADMIN__TOKENS", "old-token,new-token")]).await;
    for token in ["old-token", "new-token"] {
        let auth = format!("Bearer {token}");
        app.call(Method::GET, "/admin/v1/tenants", &[("authorization", &auth)], None).await.expect(200, None);
    }
    let off = TestApp::spawn_with(Backend::Sqlite, &[("RINGBACK__ADMIN__TOKENS", "")]).await;
    off.call(Method::GET, "/admin/v1/tenants", &[("authorization", "Bearer x")], None)
        .await
        .expect(404, Some("NOT_FOUND"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_level_is_read_changed_and_validated() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let r = app.admin(Method::GET, "/log-level", None).await;
    assert_eq!(r.body["data"]["level"], "info");
    app.admin(Method::PUT, "/log-level", Some(json!({ "level": "trace" }))).await.expect(200, None);
    assert_eq!(app.admin(Method::GET, "/log-level", None).await.body["data"]["level"], "trace");
    let bad = app.admin(Method::PUT, "/log-level", Some(json!({ "level": "loud=[" }))).await;
    bad.expect(400, Some("VALIDATION_FAILED"));
    assert_eq!(bad.body["status"]["details"][0]["field"], "level");
}

/// A bulk cancel that fails halfway (fault injection: a database error at the middle id) leaves
/// every callback as it was and writes no audit entry; the retry cancels all, audited once.
async fn bulk_cancel_and_redrive_are_all_or_nothing_with_their_audit_entry(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("RINGBACK__FAULTS__ENABLED", "true")]).await;
    let key = app.tenant_with_service("acme", "sales", json!({ "maxFuture": "1y" })).await;
    let when = crate::helpers::local_time(3, "10:00", "UTC");
    let mut ids = Vec::new();
    for n in 0..6 {
        let r = app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(n), "desiredTime": when })).await;
        ids.push(r.id());
    }
    let cancel = json!({ "ids": ids });
    app.admin(Method::POST, "/faults/fail-bulk-midway", Some(json!({}))).await.expect(200, None);
    let failed = app.admin(Method::POST, "/tenants/acme/callbacks/cancel", Some(cancel.clone())).await;
    assert!(failed.status.is_server_error(), "{}", failed.text);
    for id in &ids {
        assert_eq!(app.retrieve(&key, id).await.body["data"]["callbackState"], "SCHEDULED", "nothing cancelled");
    }
    assert_eq!(audited(&app, "cancel").await, 0, "no audit entry for what did not happen");
    let done = app.admin(Method::POST, "/tenants/acme/callbacks/cancel", Some(cancel)).await;
    done.expect(200, None);
    assert_eq!(done.body["data"]["cancelled"].as_array().map(Vec::len), Some(6), "{}", done.text);
    assert_eq!(audited(&app, "cancel").await, 1);
    // Re-drive goes through the same transaction shape: armed, it fails and changes nothing.
    app.admin(Method::POST, "/faults/fail-bulk-midway", Some(json!({}))).await.expect(200, None);
    let redrive = app.admin(Method::POST, "/tenants/acme/callbacks/redrive", Some(json!({ "ids": ids }))).await;
    assert!(redrive.status.is_server_error(), "{}", redrive.text);
    assert_eq!(audited(&app, "redrive").await, 0);
    let redrive = app.admin(Method::POST, "/tenants/acme/callbacks/redrive", Some(json!({ "ids": ids }))).await;
    redrive.expect(200, None);
    assert_eq!(redrive.body["data"]["notEligible"].as_array().map(Vec::len), Some(6), "cancelled is not re-drivable");
    assert_eq!(audited(&app, "redrive").await, 1);
}

/// Audit entries of tenant acme's bulk `operation` (cancel, redrive).
async fn audited(app: &TestApp, operation: &str) -> usize {
    let audit = app.admin(Method::GET, "/audit?limit=100", None).await;
    let items = audit.body["data"]["items"].as_array().cloned().unwrap_or_default();
    items.iter().filter(|e| e["resource"] == format!("tenants/acme/callbacks/{operation}")).count()
}

/// No callback is left without its service: a delete of a service or tenant with unfinished
/// callbacks answers 409 `HAS_UNFINISHED_CALLBACKS` with the count, and `?cancelUnfinished=true`
/// cancels them in the same audited operation.
async fn deleting_a_service_or_tenant_with_unfinished_callbacks_needs_the_cancel_flag(app: TestApp) {
    let key = app.tenant_with_service("acme", "sales", json!({ "maxFuture": "1y" })).await;
    app.admin(Method::PUT, "/tenants/acme/services/other", Some(json!({ "maxFuture": "1y" }))).await.expect(200, None);
    let when = crate::helpers::local_time(3, "10:00", "UTC");
    let book = |service: &'static str, n: u32| {
        app.create(&key, json!({ "serviceName": service, "phoneNumber": phone(n), "desiredTime": when }))
    };
    let ids = [book("sales", 1).await.id(), book("sales", 2).await.id(), book("sales", 3).await.id()];
    let other = book("other", 4).await.id();
    app.public(&key, "/callbacks/cancel", json!({ "id": ids[2] })).await.expect(200, None);

    let refused = app.admin(Method::DELETE, "/tenants/acme/services/sales", None).await;
    refused.expect(409, Some("HAS_UNFINISHED_CALLBACKS"));
    assert_eq!(
        refused.body["status"]["details"][0]["problem"], "2",
        "the finished one does not count: {}",
        refused.text
    );
    let bad = app.admin(Method::DELETE, "/tenants/acme/services/sales?cancelUnfinished=maybe", None).await;
    bad.expect(400, Some("VALIDATION_FAILED"));
    for id in &ids[..2] {
        assert_eq!(
            app.retrieve(&key, id).await.body["data"]["callbackState"],
            "SCHEDULED",
            "a refused delete changes nothing"
        );
    }
    let done = app.admin(Method::DELETE, "/tenants/acme/services/sales?cancelUnfinished=true", None).await;
    done.expect(200, None);
    assert_eq!(done.body["data"]["cancelledCallbacks"], 2);
    for id in &ids[..2] {
        let cb = app.retrieve(&key, id).await.body["data"].clone();
        assert_eq!(
            (cb["callbackState"].as_str(), cb["callbackReason"].as_str()),
            (Some("COMPLETED"), Some("CANCELLED"))
        );
        let last = cb["history"].as_array().unwrap().last().unwrap().clone();
        assert_eq!((last["actor"].as_str(), last["note"].as_str()), (Some("admin"), Some("service deleted")));
    }
    app.admin(Method::GET, "/tenants/acme/services/sales", None).await.expect(404, Some("NOT_FOUND"));

    app.admin(Method::DELETE, "/tenants/acme", None).await.expect(409, Some("HAS_UNFINISHED_CALLBACKS"));
    assert_eq!(app.retrieve(&key, &other).await.body["data"]["callbackState"], "SCHEDULED");
    let gone = app.admin(Method::DELETE, "/tenants/acme?cancelUnfinished=true", None).await;
    gone.expect(200, None);
    assert_eq!(gone.body["data"]["cancelledCallbacks"], 1);
    let audit = app.admin(Method::GET, "/audit?limit=100", None).await;
    let deletes: Vec<&str> = audit.body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "DELETE")
        .filter_map(|e| e["resource"].as_str())
        .collect();
    assert!(deletes.contains(&"tenants/acme/services/sales") && deletes.contains(&"tenants/acme"), "{deletes:?}");
}

/// Keys fit for a browser: a `widget` key books and manages callbacks by id and reads what a
/// booking page needs, but may not list callbacks (phone numbers): 403 `FORBIDDEN_SCOPE`. Keys
/// are `full` unless asked otherwise, with or without a body.
async fn a_widget_key_does_everything_but_list_callbacks(app: TestApp) {
    let full = app.tenant_with_service("acme", "sales", json!({ "maxFuture": "1y" })).await;
    let issued = app.admin(Method::POST, "/tenants/acme/api-keys", Some(json!({ "scope": "widget" }))).await;
    issued.expect(200, None);
    assert_eq!(issued.body["data"]["scope"], "widget");
    let widget = issued.body["data"]["key"].as_str().unwrap().to_string();
    let id = app.create(&widget, json!({ "serviceName": "sales", "phoneNumber": phone(1) })).await.id();
    app.retrieve(&widget, &id).await.expect(200, None);
    let later = crate::helpers::local_time(2, "10:00", "UTC");
    let booked = app
        .create(&widget, json!({ "serviceName": "sales", "phoneNumber": phone(2), "desiredTime": later }))
        .await
        .id();
    let moved = crate::helpers::local_time(2, "11:00", "UTC");
    app.public(&widget, "/callbacks/reschedule", json!({ "id": booked, "desiredTime": moved })).await.expect(200, None);
    app.public(&widget, "/callbacks/cancel", json!({ "id": id })).await.expect(200, None);
    let date = &later[..10];
    let h = [("x-api-key", widget.as_str())];
    // Everything a booking page reads (api.md: the widget scope's operations).
    for path in [
        format!("/engagement/v3/callbacks/availability/sales?start={date}"),
        "/engagement/v3/callbacks/open-for/sales".to_string(),
        "/engagement/v3/callbacks/queue-status/sales".to_string(),
        "/engagement/v3/estimated-wait-time?virtual-queues=sales".to_string(),
    ] {
        app.call(Method::GET, &path, &h, None).await.expect(200, None);
    }
    let listed = app.call(Method::GET, "/engagement/v3/callbacks", &h, None).await;
    listed.expect(403, Some("FORBIDDEN_SCOPE"));
    app.call(Method::GET, "/engagement/v3/callbacks", &[("x-api-key", full.as_str())], None).await.expect(200, None);

    let default = app.admin(Method::POST, "/tenants/acme/api-keys", None).await;
    assert_eq!(default.body["data"]["scope"], "full", "{}", default.text);
    let bad = app.admin(Method::POST, "/tenants/acme/api-keys", Some(json!({ "scope": "admin" }))).await;
    bad.expect(400, Some("VALIDATION_FAILED"));
    assert_eq!(bad.body["status"]["details"][0]["field"], "scope");
}
