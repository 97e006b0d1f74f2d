//! Durations are bounded at 10 years (issue 23): a huge one is refused at `PUT`, and one stored
//! before the bound is clamped by the migration, so the recovery pass's arithmetic cannot overflow.

use reqwest::Method;
use serde_json::json;
use sqlx::{Connection, Row};

use crate::helpers::{phone, sql, test_settings, Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(backend: a_huge_duration_is_refused_at_put_and_a_stored_one_is_clamped_by_the_migration);

async fn a_huge_duration_is_refused_at_put_and_a_stored_one_is_clamped_by_the_migration(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.tenant_with_service("acme", "sales", json!({})).await;
    for huge in [json!(9_000_000_000_000_000u64), json!(9e15)] {
        let r = app.admin(Method::PUT, "/tenants/acme/services/sales", Some(json!({ "queuedTtlSeconds": huge }))).await;
        r.expect(400, Some("VALIDATION_FAILED"));
        assert_eq!(r.body["status"]["details"][0]["field"], "queuedTtlSeconds");
    }
    app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(1) })).await.expect(200, None);
    // As an older version could have stored them; then the migration is run again.
    let set_config = match backend {
        Backend::Postgres => {
            "UPDATE services SET config = jsonb_set(config::jsonb, '{queuedTtlSeconds}', '9000000000000000')::text"
        }
        Backend::Sqlite => "UPDATE services SET config = json_set(config, '$.queuedTtlSeconds', 9000000000000000)",
    };
    sql(
        &app,
        &[
            set_config,
            "UPDATE callbacks SET queued_ttl_ms = 9000000000000000000",
            "DELETE FROM _sqlx_migrations WHERE version = 8",
        ],
    )
    .await;
    let again = ringback::Application::build(test_settings(&app.database_url, &[])).await.expect("migrates again");
    drop(again);
    let mut conn = sqlx::AnyConnection::connect(&app.database_url).await.unwrap();
    let ttl: i64 = sqlx::query("SELECT queued_ttl_ms FROM callbacks").fetch_one(&mut conn).await.unwrap().get(0);
    assert_eq!(ttl, 315_360_000_000);
    let config: String = sqlx::query("SELECT config FROM services").fetch_one(&mut conn).await.unwrap().get(0);
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["queuedTtlSeconds"], 315_360_000);
}
