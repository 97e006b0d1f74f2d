//! The outcome report (issue 27), on both backends: bookings, refusals, hand-offs,
//! acknowledgements, customers reached, completions by reason, follow-ups and the latencies, read
//! back from `GET …/reports/outcomes` (JSON and CSV) after real bookings and platform reports.

use reqwest::Method;
use serde_json::{json, Value};

use sqlx::{Connection, Row};

use crate::helpers::{eventually, in_seconds, phone, Backend, TestApp, ADMIN_TOKEN};
use crate::on_both_backends;

on_both_backends!(backend: the_outcome_report_counts_the_funnel_of_a_service,);

fn unique(what: &str) -> String {
    format!("{what}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

fn sum(buckets: &[Value], field: &str) -> i64 {
    buckets.iter().map(|b| b[field].as_i64().unwrap()).sum()
}

/// (rows, distinct cells) of the tenant's roll-up.
async fn rollup_rows(app: &TestApp, tenant_id: &str) -> (i64, i64) {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&app.database_url).await.unwrap();
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, (SELECT COUNT(*) FROM (SELECT DISTINCT service_name, hour_ms, metric, label
           FROM outcome_rollup WHERE tenant_id = $1) AS cells) AS cells FROM outcome_rollup WHERE tenant_id = $1",
    )
    .bind(tenant_id)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    (row.get("n"), row.get("cells"))
}

async fn the_outcome_report_counts_the_funnel_of_a_service(backend: Backend) {
    // A recovery pass a second: it folds the roll-up's rows.
    let app = TestApp::spawn_with(backend, &[("RINGBACK__MONITOR__RECOVERY_SECONDS", "1")]).await;
    let tenant = unique("report");
    let key = app
        .tenant_with_service(
            &tenant,
            "sales",
            json!({ "retry": { "onNoAnswer": { "attempts": 1, "afterSeconds": [600] } } }),
        )
        .await;
    let platform = app
        .admin(Method::POST, &format!("/tenants/{tenant}/api-keys"), Some(json!({ "scope": "platform" })))
        .await
        .body["data"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let report = |id: String, body: Value| {
        let (app, platform) = (&app, platform.clone());
        async move {
            app.call_on(
                &app.external,
                Method::POST,
                &format!("/engagement/v3/callbacks/{id}/state"),
                &[("x-api-key", &platform)],
                Some(body),
            )
            .await
            .expect(200, None);
        }
    };
    let reached = app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(7400) })).await.id();
    app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(7401), "desiredTime": in_seconds(7200) }))
        .await
        .expect(200, None);
    let unanswered = app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(7402) })).await.id();
    app.create(&key, json!({ "serviceName": "sales", "phoneNumber": "+1 555 000" }))
        .await
        .expect(400, Some("INVALID_PHONE_NUMBER"));
    report(reached.clone(), json!({ "state": "QUEUED", "attempt": 1 })).await;
    report(reached.clone(), json!({ "state": "PROCESSING" })).await;
    report(reached, json!({ "state": "COMPLETED", "reason": "AGENT_CONNECTED" })).await;
    report(unanswered, json!({ "state": "COMPLETED", "reason": "NO_ANSWER" })).await;

    let path = format!("/tenants/{tenant}/reports/outcomes?service=sales&groupBy=hour&from={}", in_seconds(-7200));
    // Refusals reach the roll-up within a second.
    eventually(5, "the refusal in the report", || async {
        sum(app.admin(Method::GET, &path, None).await.body["data"]["buckets"].as_array().unwrap(), "refused") == 1
    })
    .await;
    let r = app.admin(Method::GET, &path, None).await;
    r.expect(200, None);
    let buckets = r.body["data"]["buckets"].as_array().unwrap().clone();
    assert!(buckets.len() >= 2, "hourly buckets over the range: {}", buckets.len());
    assert_eq!(sum(&buckets, "booked"), 3, "{buckets:?}");
    assert_eq!((sum(&buckets, "immediate"), sum(&buckets, "scheduled")), (2, 1));
    assert_eq!(sum(&buckets, "handedOver"), 2);
    assert_eq!(sum(&buckets, "acknowledged"), 1);
    assert_eq!(sum(&buckets, "reached"), 1);
    assert_eq!(sum(&buckets, "completed"), 2);
    assert_eq!(sum(&buckets, "retries"), 1, "the follow-up of the unanswered one");
    let now = buckets.iter().find(|b| b["booked"].as_i64() > Some(0)).unwrap();
    assert_eq!(now["completedByReason"], json!({ "AGENT_CONNECTED": 1, "NO_ANSWER": 1 }));
    assert_eq!(now["refusedByReason"], json!({ "INVALID_PHONE_NUMBER": 1 }));
    assert_eq!(now["bookingToHandoffSeconds"]["p50"], 1, "immediate bookings are claimed at once: {now}");
    assert!(now["handoffToProcessingSeconds"]["p90"].as_i64().is_some(), "{now}");

    // The default: the last 7 days by day; CSV with a column per reason.
    let week = app.admin(Method::GET, &format!("/tenants/{tenant}/reports/outcomes"), None).await;
    assert_eq!(week.body["data"]["groupBy"], "day");
    assert_eq!(sum(week.body["data"]["buckets"].as_array().unwrap(), "booked"), 3);
    let csv = app
        .client
        .get(format!("{}/admin/v1{path}", app.internal))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let header = csv.lines().next().unwrap();
    assert!(header.starts_with("start,booked,immediate,scheduled,refused,"), "{header}");
    assert!(header.contains("refused_INVALID_PHONE_NUMBER") && header.contains("completed_NO_ANSWER"), "{header}");
    app.admin(Method::GET, &format!("/tenants/{tenant}/reports/outcomes?groupBy=week"), None)
        .await
        .expect(400, Some("VALIDATION_FAILED"));

    // Writers only insert; the recovery pass folds the rows into one a cell, and the report is the same.
    let tenant_id = app.admin(Method::GET, &format!("/tenants/{tenant}"), None).await.body["data"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    eventually(10, "the roll-up folded to one row a cell", || async {
        let (rows, cells) = rollup_rows(&app, &tenant_id).await;
        rows == cells
    })
    .await;
    let folded = app.admin(Method::GET, &path, None).await.body["data"]["buckets"].clone();
    assert_eq!(folded.as_array().unwrap().iter().map(|b| b["booked"].as_i64().unwrap()).sum::<i64>(), 3);
    assert_eq!(folded, r.body["data"]["buckets"], "folding changes no figure");
}
