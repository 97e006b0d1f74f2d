//! Whether this replica is ready (`/health/ready`, the admin overview): the database answers,
//! the booking writer and throttle loops run, and the process is not shutting down. Redis is
//! reported but not required: bookings keep working without it.

use serde_json::json;

use crate::ops::AppState;

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
