//! Operators and roles (issue 26): every role against every admin route (generated from the role
//! table, `http::roles::RULES`), tenant limits, the audit log with operators' names and
//! tenants, the `ringback operator` command, and an admin API that exists with operators alone.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{Backend, Response, TestApp};
use crate::on_both_backends;
use ringback::domain::operator::Role;
use ringback::http::roles::{filters_by_tenant, PREFIX, RULES};

on_both_backends!(
    every_role_meets_every_admin_route_as_its_rule_says,
    a_limited_operator_sees_its_tenants_and_its_audit_entries_only,
    an_operator_reads_one_callback_with_its_history,
);

fn unique(what: &str) -> String {
    format!("{what}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

async fn as_operator(app: &TestApp, token: &str, method: Method, path: &str, body: Option<Value>) -> Response {
    let auth = format!("Bearer {token}");
    app.call(method, &format!("{PREFIX}{path}"), &[("authorization", &auth)], body).await
}

/// Add an operator through the admin API; returns its token.
async fn add_operator(app: &TestApp, name: &str, role: Role, tenants: Option<&[&str]>) -> String {
    let r = app
        .admin(Method::POST, "/operators", Some(json!({ "name": name, "role": role.as_str(), "tenants": tenants })))
        .await;
    r.expect(200, None);
    r.body["data"]["token"].as_str().expect("token").to_string()
}

async fn every_role_meets_every_admin_route_as_its_rule_says(app: TestApp) {
    // Each operator is limited to a tenant that exists and one that does not: calls on the missing
    // one pass the role check and then find nothing, so no call of this test changes anything.
    let (own, ghost, other) = (unique("own"), unique("ghost"), unique("other"));
    for tenant in [&own, &other] {
        app.admin(Method::PUT, &format!("/tenants/{tenant}"), Some(json!({}))).await.expect(200, None);
    }
    let mut checked = 0;
    for role in Role::ALL {
        let token = add_operator(&app, &unique(role.as_str()), role, Some(&[&own, &ghost])).await;
        for (method, pattern, need) in RULES {
            if pattern.starts_with("/faults") {
                continue; // not registered here (faults.enabled is off); their rule is Admin, checked by the table's test
            }
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let body = (method != Method::GET).then(|| json!({}));
            let concrete =
                |tenant: &str| pattern.replace("{tenant}", tenant).replace("{name}", "x").replace("{id}", "1");
            let tenant_route = pattern.contains("{tenant}");
            let allowed = role.may(*need) && (tenant_route || filters_by_tenant(&format!("{PREFIX}{pattern}")));
            let r = as_operator(&app, &token, method.clone(), &concrete(&ghost), body.clone()).await;
            if allowed {
                assert_ne!(r.status, StatusCode::FORBIDDEN, "{role:?} {method} {pattern}: {:?}", r.body);
                assert_ne!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{role:?} {method} {pattern}: {:?}", r.body);
            } else {
                r.expect(403, Some("FORBIDDEN_SCOPE"));
            }
            if tenant_route {
                // Another tenant's: refused whatever the role.
                as_operator(&app, &token, method.clone(), &concrete(&other), body)
                    .await
                    .expect(403, Some("FORBIDDEN_SCOPE"));
            }
            checked += 1;
        }
    }
    assert!(checked >= 4 * 30, "the table has the admin routes: {checked} checks");

    // Unlimited operators: a monitor reads everything and writes nothing; only an admin sets the log level.
    let monitor = add_operator(&app, &unique("watcher"), Role::Monitor, None).await;
    let tenants = as_operator(&app, &monitor, Method::GET, "/tenants", None).await;
    tenants.expect(200, None);
    let names: Vec<&str> =
        tenants.body["data"]["items"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&own.as_str()) && names.contains(&other.as_str()), "{names:?}");
    as_operator(&app, &monitor, Method::PUT, "/log-level", Some(json!({ "level": "debug" })))
        .await
        .expect(403, Some("FORBIDDEN_SCOPE"));
    as_operator(&app, &monitor, Method::PUT, &format!("/tenants/{own}/services/s"), Some(json!({})))
        .await
        .expect(403, Some("FORBIDDEN_SCOPE"));
    let admin = add_operator(&app, &unique("chief"), Role::Admin, None).await;
    as_operator(&app, &admin, Method::GET, "/log-level", None).await.expect(200, None);
    // A token that is no operator's is 401, not 403.
    as_operator(&app, "rbo_not-a-token", Method::GET, "/tenants", None).await.expect(401, Some("UNAUTHORIZED"));
}

async fn a_limited_operator_sees_its_tenants_and_its_audit_entries_only(app: TestApp) {
    let (own, other) = (unique("own"), unique("other"));
    for tenant in [&own, &other] {
        app.admin(Method::PUT, &format!("/tenants/{tenant}"), Some(json!({}))).await.expect(200, None);
    }
    let name = unique("sup");
    let supervisor = add_operator(&app, &name, Role::Supervisor, Some(&[&own])).await;
    // Its writes are audited under its name and its tenant.
    let service = format!("/tenants/{own}/services/sales");
    app.admin(Method::PUT, &service, Some(json!({}))).await.expect(200, None);
    as_operator(&app, &supervisor, Method::PUT, &format!("{service}/dispatch"), Some(json!({ "paused": true })))
        .await
        .expect(200, None);
    app.admin(Method::PUT, &format!("/tenants/{other}/services/sales"), Some(json!({}))).await.expect(200, None);

    let tenants = as_operator(&app, &supervisor, Method::GET, "/tenants", None).await;
    let names: Vec<&str> =
        tenants.body["data"]["items"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, vec![own.as_str()]);

    let audit = as_operator(&app, &supervisor, Method::GET, "/audit", None).await;
    audit.expect(200, None);
    let entries = audit.body["data"]["items"].as_array().unwrap();
    assert!(!entries.is_empty());
    assert!(entries.iter().all(|e| e["tenant"] == own.as_str()), "{entries:#?}");
    assert!(
        entries.iter().any(|e| e["actor"] == name.as_str() && e["resource"].as_str().unwrap().ends_with("/dispatch")),
        "the supervisor's write is audited under its name: {entries:#?}"
    );
    // The admin token's reading shows the other tenant's entries too, and the operator's creation.
    let all = app.admin(Method::GET, "/audit", None).await;
    let all = all.body["data"]["items"].as_array().unwrap().clone();
    assert!(all.iter().any(|e| e["tenant"] == other.as_str()));
    assert!(all.iter().any(|e| e["resource"] == format!("operators/{name}") && e["tenant"].is_null()));

    // Revoked: refused at once.
    app.admin(Method::DELETE, &format!("/operators/{name}"), None).await.expect(200, None);
    as_operator(&app, &supervisor, Method::GET, "/tenants", None).await.expect(401, Some("UNAUTHORIZED"));
}

/// `ringback operator add` on the app's database: the token on the last line of stdout works at
/// once on the running app, and `revoke` ends it. With no admin token configured, the admin API
/// exists once an operator does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_from_the_command_line_open_the_admin_api_and_are_revoked_at_once() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("RINGBACK__ADMIN__TOKENS", "")]).await;
    let anyone = app.call(Method::GET, "/admin/v1/tenants", &[], None).await;
    assert_eq!(anyone.status, StatusCode::NOT_FOUND, "no token and no operator: no admin API");

    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringback"))
            .arg("operator")
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RINGBACK__DATABASE__URL", &app.database_url)
            .env("RINGBACK_LOG", "off")
            .output()
            .expect("ringback operator runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, stdout, stderr) = run(&["add", "ana@example.com", "--role", "admin"]);
    assert!(ok, "{stderr}");
    let token = stdout.lines().last().expect("the token's line").trim().to_string();
    assert!(token.starts_with("rbo_"), "{stdout}");
    as_operator(&app, &token, Method::PUT, "/tenants/acme", Some(json!({}))).await.expect(200, None);
    as_operator(&app, &token, Method::GET, "/tenants", None).await.expect(200, None);
    let audit = as_operator(&app, &token, Method::GET, "/audit", None).await;
    let actors: Vec<&str> =
        audit.body["data"]["items"].as_array().unwrap().iter().filter_map(|e| e["actor"].as_str()).collect();
    assert!(actors.contains(&"ana@example.com") && actors.contains(&"cli"), "{actors:?}");

    let (ok, _, stderr) = run(&["add", "bad name", "--role", "admin"]);
    assert!(!ok && stderr.contains("name"), "{stderr}");
    let (ok, _, stderr) = run(&["add", "bo", "--role", "root"]);
    assert!(!ok && stderr.contains("role"), "{stderr}");
    let (ok, list, _) = run(&["list"]);
    assert!(ok && list.contains("ana@example.com\tadmin\tall tenants"), "{list}");
    assert!(!list.contains(&token), "a listing never shows a token");

    let (ok, _, stderr) = run(&["revoke", "ana@example.com"]);
    assert!(ok, "{stderr}");
    let refused = as_operator(&app, &token, Method::GET, "/tenants", None).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "the last operator gone: no admin API again");
}

async fn an_operator_reads_one_callback_with_its_history(app: TestApp) {
    let (tenant, other) = (unique("own"), unique("other"));
    let key = app.tenant_with_service(&tenant, "sales", json!({})).await;
    let other_key = app.tenant_with_service(&other, "sales", json!({})).await;
    let id = app.create(&key, json!({ "serviceName": "sales", "phoneNumber": "+14155552671" })).await.id();
    let elsewhere = app.create(&other_key, json!({ "serviceName": "sales", "phoneNumber": "+14155552671" })).await.id();
    let monitor = add_operator(&app, &unique("eyes"), Role::Monitor, Some(&[&tenant])).await;

    let one = as_operator(&app, &monitor, Method::GET, &format!("/tenants/{tenant}/callbacks/{id}"), None).await;
    one.expect(200, None);
    let data = &one.body["data"];
    assert_eq!(data["id"], id.as_str());
    assert_eq!(data["serviceName"], "sales");
    assert!(data["attempt"].is_number(), "{data}");
    let history = data["history"].as_array().expect("history");
    assert!(!history.is_empty(), "{data}");
    // Counts per state under the list's filters (every state named), for a scheduled callback too.
    let later = app
        .create(&key, json!({ "serviceName": "sales", "phoneNumber": "+14155552672", "desiredTime": crate::helpers::in_seconds(3600) }))
        .await;
    later.expect(200, None);
    let counts = as_operator(&app, &monitor, Method::GET, &format!("/tenants/{tenant}/callbacks/counts"), None).await;
    counts.expect(200, None);
    let c = &counts.body["data"];
    assert_eq!(c["total"], 2, "{c}");
    assert_eq!(c["counts"]["SCHEDULED"], 1, "{c}");
    assert_eq!(c["counts"].as_object().unwrap().values().filter_map(Value::as_i64).sum::<i64>(), 2, "{c}");
    assert!(c["counts"]["COMPLETED"].is_number(), "every state is named: {c}");
    let scheduled =
        as_operator(&app, &monitor, Method::GET, &format!("/tenants/{tenant}/callbacks/counts?state=SCHEDULED"), None)
            .await;
    assert_eq!(scheduled.body["data"]["total"], 1, "{:?}", scheduled.body);
    let none =
        as_operator(&app, &monitor, Method::GET, &format!("/tenants/{tenant}/callbacks/counts?serviceName=nope"), None)
            .await;
    assert_eq!(none.body["data"]["total"], 0, "{:?}", none.body);
    // Another tenant's callback is not found under this tenant, and that tenant is refused.
    as_operator(&app, &monitor, Method::GET, &format!("/tenants/{tenant}/callbacks/{elsewhere}"), None)
        .await
        .expect(404, Some("NOT_FOUND"));
    as_operator(&app, &monitor, Method::GET, &format!("/tenants/{other}/callbacks/{elsewhere}"), None)
        .await
        .expect(403, Some("FORBIDDEN_SCOPE"));
    // The bulk operations keep their routes (the router takes the first pattern that matches).
    let redrive = as_operator(
        &app,
        &monitor,
        Method::POST,
        &format!("/tenants/{tenant}/callbacks/redrive"),
        Some(json!({ "ids": [id] })),
    )
    .await;
    redrive.expect(403, Some("FORBIDDEN_SCOPE"));
    let reached =
        app.admin(Method::POST, &format!("/tenants/{tenant}/callbacks/redrive"), Some(json!({ "ids": [id] }))).await;
    assert!(![404, 405].contains(&reached.status.as_u16()), "redrive is still its own route: {:?}", reached.body);
}
