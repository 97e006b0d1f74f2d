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
    let (ready, body) = crate::ops::readiness::readiness(&state).await;
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// `GET /metrics` (internal listener only), Prometheus text format 0.0.4.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.publish_pool_gauges();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render() + &crate::telemetry::process::render())
}
