//! `/metrics` as Prometheus sees it: route patterns as labels, never raw ids or numbers.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{phone, Backend, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_metrics_carry_route_patterns_and_spec_labels_only() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.tenant_with_service("metrics-tenant", "metrics-svc", json!({})).await;
    let number = phone(4242);
    let id = app.create(&key, json!({ "serviceName": "metrics-svc", "phoneNumber": number })).await.id();
    app.retrieve(&key, &id).await.expect(200, None);
    app.retrieve(&key, "missing-id-123").await.expect(404, None);
    app.create("wrong-key", json!({})).await.expect(401, None);
    app.call(Method::GET, &format!("/engagement/v3/callbacks/{id}/nowhere"), &[], None).await.expect(404, None);
    app.create(&key, json!({ "serviceName": "no-such-service", "phoneNumber": number })).await.expect(400, None);

    let text = app.metrics().await;
    let has = |needle: &str| text.lines().any(|l| l.contains(needle));
    assert!(
        has(
            r#"ges_http_requests_total{path="/engagement/v3/callbacks/retrieve",method="POST",tenant="metrics-tenant"}"#
        ),
        "{text}"
    );
    assert!(has(
        r#"ges_http_failed_requests_total{path="/engagement/v3/callbacks/retrieve",httpCode="404",tenant="metrics-tenant"}"#
    ));
    assert!(has(
        r#"ges_http_failed_requests_total{path="/engagement/v3/callbacks/create",httpCode="401",tenant="undefined"}"#
    ));
    assert!(has(r#"path="unmatched""#), "unknown routes are labelled unmatched");
    assert!(has(
        r#"ges_http_request_duration_seconds_bucket{path="/engagement/v3/callbacks/create",method="POST",httpCode="200",le="0.0005"}"#
    ));
    assert!(has("ges_http_requests_in_flight"));
    assert!(has(r#"ges_callbacks_created{tenant="metrics-tenant",service="metrics-svc",type="immediate"} 1"#));
    // A client-supplied service name never becomes a label value.
    assert!(has(r#"ges_callbacks_rejected{tenant="metrics-tenant",service="unknown",reason="UNKNOWN_SERVICE"} 1"#));
    assert!(!text.contains("no-such-service"));
    // Alarms are there at 0 before their first occurrence; tolerances carry the configured values.
    assert!(has(r#"CB_ENQUEUE_LIMIT_REACHED{tenant="metrics-tenant"} 0"#));
    assert!(has("UNCAUGHT_EXCEPTION "));
    assert!(has("http_401_tolerance 20"));
    assert!(text.contains("# HELP ges_http_requests_total"));
    // Process metrics as floats, appended by our own collector.
    let cpu: f64 = text
        .lines()
        .find(|l| l.starts_with("ges_process_cpu_seconds_total "))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(cpu > 0.0);
    assert!(has("ges_process_resident_memory_bytes ") && has("ges_process_open_fds ") && has("ges_build_info{"));
    assert!(text.contains("# TYPE ges_http_request_duration_seconds histogram"));
    // No ids, numbers or other unbounded values in any label.
    assert!(!text.contains(&id), "callback id leaked into /metrics");
    assert!(!text.contains("missing-id-123"));
    assert!(!text.contains(&number[2..]), "phone number leaked into /metrics");
    for line in text.lines().filter(|l| l.starts_with("ges_http")) {
        if let Some(path) = line.split("path=\"").nth(1).and_then(|p| p.split('"').next()) {
            assert!(path == "unmatched" || path.starts_with('/'), "{line}");
            // Route patterns hold no digits beyond the API version.
            let unversioned = path.replace("/v3", "").replace("/v1", "");
            assert!(!unversioned.chars().any(|c| c.is_ascii_digit()), "{line}");
        }
    }
}

/// `promtool check metrics` on a live scrape after a workload says nothing but the two remarks
/// observability.md allows: the `_total` suffix on GES-named counters, snake_case on `httpCode`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_finds_nothing_but_the_allow_listed_remarks() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.tenant_with_service("promtool", "svc", json!({})).await;
    app.create(&key, json!({ "serviceName": "svc", "phoneNumber": phone(1) })).await.expect(200, None);
    app.create(&key, json!({ "serviceName": "svc" })).await.expect(400, None);
    app.call(Method::GET, "/engagement/v3/nope", &[], None).await.expect(404, None);
    let scrape = app.metrics().await;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is required; the test command installs it");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), scrape.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let ges_named = |name: &str| {
        name.starts_with("ges_callbacks_")
            || name.starts_with("ges_callin_")
            || name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
    };
    let mut remarks = 0;
    for line in report.lines().filter(|l| !l.trim().is_empty()) {
        let name = line.split_whitespace().next().unwrap_or("");
        let allowed = (line.ends_with(r#"counter metrics should have "_total" suffix"#) && ges_named(name))
            || (line.ends_with("label names should be written in 'snake_case' not 'camelCase'")
                && ["ges_http_failed_requests_total", "ges_http_request_duration_seconds"].contains(&name));
        assert!(allowed, "promtool remark not allowed by observability.md: {line}\n{report}");
        remarks += 1;
    }
    assert!(remarks > 0, "promtool ran and reported the known remarks: {report}");
}
