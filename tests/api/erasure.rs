//! Erasure by phone number (issue 27), on both backends: after `POST …/erasure`, no text column of
//! any table holds the number or the `userData` booked with it; unfinished callbacks of the number
//! were completed `ERASED`; the answer counts what was touched; the audit entry keeps only the count
//! and the corrId.

use reqwest::Method;
use serde_json::json;
use sqlx::{Connection, Row};

use crate::helpers::{in_seconds, phone, TestApp};
use crate::on_both_backends;

on_both_backends!(an_erased_number_is_in_no_table_afterwards,);

fn unique(what: &str) -> String {
    format!("{what}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// (table, column) of every text column of the app's database that contains `needle`.
async fn columns_holding(app: &TestApp, needle: &str) -> Vec<(String, String)> {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&app.database_url).await.unwrap();
    let listing = if app.database_url.starts_with("postgres") {
        "SELECT CAST(table_name AS TEXT) AS t, CAST(column_name AS TEXT) AS c FROM information_schema.columns
         WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'json', 'jsonb')"
    } else {
        "SELECT m.name AS t, p.name AS c FROM sqlite_master m JOIN pragma_table_info(m.name) p
         WHERE m.type = 'table' AND (p.type = '' OR upper(p.type) LIKE '%TEXT%' OR upper(p.type) LIKE '%CHAR%')"
    };
    let columns: Vec<(String, String)> = sqlx::query(listing)
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<String, _>("t"), r.get::<String, _>("c")))
        .filter(|(t, _)| t != "_sqlx_migrations")
        .collect();
    assert!(columns.len() > 20, "every text column is searched: {columns:?}");
    let mut holding = Vec::new();
    for (t, c) in columns {
        let sql = format!("SELECT COUNT(*) AS n FROM \"{t}\" WHERE CAST(\"{c}\" AS TEXT) LIKE $1");
        let n: i64 = sqlx::query(&sql).bind(format!("%{needle}%")).fetch_one(&mut conn).await.unwrap().get("n");
        if n > 0 {
            holding.push((t, c));
        }
    }
    holding
}

async fn an_erased_number_is_in_no_table_afterwards(app: TestApp) {
    let tenant = unique("erase");
    let key = app.tenant_with_service(&tenant, "sales", json!({ "maxFuture": "30d" })).await;
    let number = phone(7355);
    let digits = number.trim_start_matches("+1").to_string();
    let secret = format!("MARKER{}", uuid::Uuid::new_v4().simple());
    let booked = |body: serde_json::Value, idempotency: Option<&str>| {
        let (app, key) = (&app, key.clone());
        let idempotency = idempotency.map(str::to_string);
        async move {
            let mut headers = vec![("x-api-key", key.clone())];
            if let Some(k) = idempotency {
                headers.push(("idempotency-key", k));
            }
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.call(Method::POST, "/engagement/v3/callbacks/create", &headers, Some(body)).await
        }
    };
    let now =
        booked(json!({ "serviceName": "sales", "phoneNumber": number, "userData": { "note": secret } }), Some("k-1"))
            .await;
    now.expect(200, None);
    let later = booked(
        json!({ "serviceName": "sales", "phoneNumber": number, "desiredTime": in_seconds(3600), "userData": { "note": secret } }),
        None,
    )
    .await;
    later.expect(200, None);
    let done = booked(json!({ "serviceName": "sales", "phoneNumber": number }), None).await;
    app.public(&key, "/callbacks/cancel", json!({ "id": done.id() })).await.expect(200, None);
    // An operator's edit puts the secret in an audit body.
    app.admin(
        Method::PATCH,
        &format!("/tenants/{tenant}/callbacks/{}", later.id()),
        Some(json!({ "userData": { "note": secret } })),
    )
    .await
    .expect(200, None);
    // A call-in request from the number.
    app.admin(
        Method::PUT,
        &format!("/tenants/{tenant}/call-in-groups/help"),
        Some(json!({ "numbers": [phone(7356)] })),
    )
    .await
    .expect(200, None);
    app.public(
        &key,
        "/call-in/requests/create",
        json!({ "groupName": "help", "fromPhoneNumber": number, "userData": { "note": secret } }),
    )
    .await
    .expect(200, None);
    // Another number of the tenant is kept.
    let kept =
        booked(json!({ "serviceName": "sales", "phoneNumber": phone(7357), "userData": { "note": "keep" } }), None)
            .await;
    assert!(!columns_holding(&app, &digits).await.is_empty(), "the number is stored before");
    assert!(!columns_holding(&app, &secret).await.is_empty());

    let erased = app
        .admin(Method::POST, &format!("/tenants/{tenant}/erasure"), Some(json!({ "phoneNumber": "+1 (415) 200-7355" })))
        .await;
    erased.expect(200, None);
    let d = &erased.body["data"];
    assert_eq!(d["callbacks"], 3, "{d}");
    assert_eq!(d["cancelled"], 2, "the two unfinished ones: {d}");
    assert_eq!(d["callInRequests"], 1, "{d}");
    assert!(d["idempotencyRecords"].as_u64().unwrap() >= 1, "{d}");
    assert!(d["auditEntries"].as_u64().unwrap() >= 1, "{d}");
    assert!(d["total"].as_u64().unwrap() >= 6, "{d}");

    assert_eq!(columns_holding(&app, &digits).await, Vec::<(String, String)>::new(), "no table holds the number");
    assert_eq!(columns_holding(&app, &secret).await, Vec::<(String, String)>::new(), "no table holds its userData");
    let one = app.retrieve(&key, &now.id()).await;
    assert_eq!(one.body["data"]["callbackState"], "COMPLETED");
    assert_eq!(one.body["data"]["callbackReason"], "ERASED");
    assert_eq!(one.body["data"]["phoneNumber"], "ERASED");
    // The other number is untouched; the audit entry says how many, not which.
    assert_eq!(app.retrieve(&key, &kept.id()).await.body["data"]["userData"]["note"], "keep");
    let audit = app.admin(Method::GET, "/audit", None).await;
    let entry = audit.body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"] == format!("tenants/{tenant}/erasure"))
        .cloned()
        .unwrap();
    assert_eq!(
        entry["body"]["records"],
        d["callbacks"].as_u64().unwrap()
            + d["callInRequests"].as_u64().unwrap()
            + d["idempotencyRecords"].as_u64().unwrap()
            + d["auditEntries"].as_u64().unwrap()
            + d["outboxRows"].as_u64().unwrap()
            + d["deliveryRecords"].as_u64().unwrap()
    );
    assert!(entry["body"]["corrId"].is_string());
    // Bad input is refused whole.
    app.admin(Method::POST, &format!("/tenants/{tenant}/erasure"), Some(json!({ "phoneNumber": "call me" })))
        .await
        .expect(400, None);
}

/// The dispatch stream's entries of an erased number's callbacks are deleted (`XDEL`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_numbers_hand_offs_leave_the_dispatch_stream() {
    let (app, redis) = crate::helpers::app_with_stream(crate::helpers::Backend::Sqlite, &[]).await;
    let tenant = unique("xdel");
    let key = app.tenant_with_service(&tenant, "sales", json!({})).await;
    let number = phone(7360);
    let id = app.create(&key, json!({ "serviceName": "sales", "phoneNumber": number })).await.id();
    let other = app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(7361) })).await.id();
    crate::helpers::eventually(10, "both hand-offs in the stream", || async {
        let ids: Vec<String> =
            crate::helpers::stream_entries(&redis.url()).await.into_iter().map(|(i, _, _)| i).collect();
        ids.contains(&id) && ids.contains(&other)
    })
    .await;
    let erased =
        app.admin(Method::POST, &format!("/tenants/{tenant}/erasure"), Some(json!({ "phoneNumber": number }))).await;
    erased.expect(200, None);
    assert!(erased.body["data"]["streamEntries"].as_u64().unwrap() >= 1, "{:?}", erased.body);
    let entries = crate::helpers::stream_entries(&redis.url()).await;
    assert!(
        !entries.iter().any(|(i, _, t)| *i == id && t == "callback.submit"),
        "the erased number's hand-off is gone"
    );
    assert!(entries.iter().any(|(i, _, _)| *i == other), "another number's stay");
    // The cancel the platform is sent (it may be published by now) carries no number: no entry does.
    let mut conn = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let raw: redis::streams::StreamRangeReply =
        redis::cmd("XRANGE").arg("NewCallbackStream").arg("-").arg("+").query_async(&mut conn).await.unwrap();
    let digits = number.trim_start_matches('+');
    for entry in raw.ids {
        for value in entry.map.values() {
            let text: String = redis::from_redis_value(value).unwrap_or_default();
            assert!(!text.contains(digits), "a stream entry still carries the number: {text}");
        }
    }
}

/// A tenant's `retentionDays`: the recovery pass overwrites the number and `userData` of finished
/// callbacks older than that, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_callbacks_lose_their_personal_data_after_the_tenants_retention_days() {
    let app =
        TestApp::spawn_with(crate::helpers::Backend::Sqlite, &[("RINGBACK__MONITOR__RECOVERY_SECONDS", "1")]).await;
    let tenant = unique("keep");
    let key = app.tenant_with_service(&tenant, "sales", json!({})).await;
    app.admin(Method::PUT, &format!("/tenants/{tenant}"), Some(json!({ "retentionDays": 0 }))).await.expect(400, None);
    let t = app.admin(Method::PUT, &format!("/tenants/{tenant}"), Some(json!({ "retentionDays": 30 }))).await;
    t.expect(200, None);
    assert_eq!(t.body["data"]["retentionDays"], 30);
    let old = app
        .create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(7370), "userData": { "note": "old" } }))
        .await
        .id();
    let recent = app
        .create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(7371), "userData": { "note": "recent" } }))
        .await
        .id();
    for id in [&old, &recent] {
        app.public(&key, "/callbacks/cancel", json!({ "id": id })).await.expect(200, None);
    }
    // Finished 31 days ago (and kept by a long ttlSeconds).
    crate::helpers::sql(
        &app,
        &[&format!(
            "UPDATE callbacks SET updated_ms = updated_ms - 31 * 86400000, ttl_ms = 400 * 86400000 WHERE id = '{old}'"
        )],
    )
    .await;
    crate::helpers::eventually(10, "the old callback's number is erased", || async {
        app.retrieve(&key, &old).await.body["data"]["phoneNumber"] == "ERASED"
    })
    .await;
    assert_eq!(app.retrieve(&key, &old).await.body["data"]["userData"], json!({}));
    let kept = app.retrieve(&key, &recent).await;
    assert_eq!(kept.body["data"]["phoneNumber"], phone(7371).as_str());
    assert_eq!(kept.body["data"]["userData"]["note"], "recent");
}
