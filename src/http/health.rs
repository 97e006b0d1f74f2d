//! `/health/live` and `/health/ready` (plain JSON, not the envelope: probes read the status).
//! Readiness follows the database only; Redis trouble is reported but does not take a replica
//! out of service, because bookings keep working.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::ops::AppState;

pub async fn live(state: web::Data<AppState>) -> HttpResponse {
    if state.is_shutting_down() {
        HttpResponse::ServiceUnavailable().json(json!({ "status": "shutting down" }))
    } else {
        HttpResponse::Ok().json(json!({ "status": "alive" }))
    }
}

pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let (ready, body) = readiness(&state).await;
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Whether this replica is ready, and the body `/health/ready` answers (also shown by the
/// admin overview).
pub async fn readiness(state: &AppState) -> (bool, serde_json::Value) {
    let database_up =
        tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ping()).await.is_ok_and(|r| r.is_ok());
    let mut dependencies = serde_json::Map::new();
    dependencies.insert("database".into(), json!(if database_up { "up" } else { "down" }));
    // Reported, not required: Redis trouble does not take a replica out of service.
    if let Some(down) = state.throttles.redis_down() {
        dependencies.insert("redis".into(), json!(if down { "down" } else { "up" }));
    }
    if state.settings.monitor.dispatch != crate::config::DispatchMode::Stream {
        dependencies.insert("orsRedis".into(), json!("off"));
    } else if state.handoff_stream.is_redis() {
        dependencies.insert("orsRedis".into(), json!(if state.handoff_stream.is_down() { "down" } else { "up" }));
    }
    // A stopped writer or throttle loop would leave bookings unanswered: out of service.
    let loops_running = state.bookings.is_running() && state.throttles.is_running();
    if !loops_running {
        dependencies.insert("bookingWriter".into(), json!("stopped"));
    }
    let ready = database_up && loops_running && !state.is_shutting_down();
    (ready, json!({ "status": if ready { "ready" } else { "not ready" }, "dependencies": dependencies }))
}

/// `GET /metrics` (internal listener only), Prometheus text format 0.0.4.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.publish_pool_gauges();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render() + &crate::telemetry::process::render())
}
