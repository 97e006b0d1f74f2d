//! The health checker, an application task (started by `app`): every `health.interval_seconds`,
//! each configured dependency is checked with
//! a 2 s timeout and its gauge set (0 up, 1 down). `GES_HEALTH` follows the required dependencies
//! only (database, dispatch stream); a down cache Redis alone does not raise it. A dependency that
//! is not configured has no gauge. Recovery needs no restart: the next check clears the gauge.

use std::time::Duration;

use crate::ops::AppState;
use crate::telemetry::catalogue::{GES_HEALTH, ORS_REDIS_STATUS, POSTGRES_STATUS, REDIS_CONNECTION};

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

fn gauge(name: &'static str, down: bool) {
    metrics::gauge!(name).set(if down { 1.0 } else { 0.0 });
}

/// One round of checks, each setting its dependency's gauge (and `GES_HEALTH`).
async fn check_once(state: &AppState) {
    // A failed check opens the database breaker too (a hung database answers no query at all,
    // which a query's own error would never say).
    let database_down = match tokio::time::timeout(CHECK_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => false,
        Ok(Err(e)) => {
            state.store.seen_down(&format!("health check: {e}"));
            true
        }
        Err(_) => {
            state.store.seen_down("health check: no answer within 2 s");
            true
        }
    };
    if state.store.kind() == crate::store::BackendKind::Postgres {
        gauge(POSTGRES_STATUS, database_down);
    }
    if let Some(ok) = state.throttles.check(CHECK_TIMEOUT).await {
        gauge(REDIS_CONNECTION, !ok);
    }
    let stream_down = match state.handoff_stream.is_redis() {
        true => {
            let ok = state.handoff_stream.check().await;
            gauge(ORS_REDIS_STATUS, !ok);
            Some(!ok)
        }
        false => None,
    };
    gauge(GES_HEALTH, database_down || stream_down == Some(true));
}

/// Check forever at the configured period; configured host names are resolved on every round
/// (`DNS_FAILURE`).
pub async fn run(state: AppState) {
    let hosts = crate::telemetry::dns::configured_hosts(&state.settings);
    let mut ticker = tokio::time::interval(Duration::from_secs(state.settings.health.interval_seconds));
    loop {
        ticker.tick().await;
        crate::telemetry::dns::check(&hosts, CHECK_TIMEOUT).await;
        check_once(&state).await;
    }
}
