//! The health checker: every `health.interval_seconds`, each configured dependency is checked with
//! a 2 s timeout and its gauge set (0 up, 1 down). `GES_HEALTH` follows the required dependencies
//! only (database, dispatch stream); a down cache Redis alone does not raise it. A dependency that
//! is not configured has no gauge. Recovery needs no restart: the next check clears the gauge.

use std::time::Duration;

use crate::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

fn gauge(name: &'static str, down: bool) {
    metrics::gauge!(name).set(if down { 1.0 } else { 0.0 });
}

/// One round of checks; returns (database down, cache Redis down, dispatch stream down).
pub async fn check_once(state: &AppState, cache: Option<&deadpool_redis::Pool>) -> (bool, Option<bool>, Option<bool>) {
    let database_down = !matches!(tokio::time::timeout(CHECK_TIMEOUT, state.store.ping()).await, Ok(Ok(())));
    if state.store.kind() == crate::store::BackendKind::Postgres {
        gauge("POSTGRES_STATUS", database_down);
    }
    let cache_down = match cache {
        Some(pool) => {
            let ok = tokio::time::timeout(CHECK_TIMEOUT, async {
                let mut conn = pool.get().await.ok()?;
                redis::cmd("PING").query_async::<String>(&mut conn).await.ok()
            })
            .await
            .ok()
            .flatten()
            .is_some();
            gauge("REDIS_CONNECTION", !ok);
            state.throttles.observed(ok);
            Some(!ok)
        }
        None => None,
    };
    let stream_down = match state.dispatcher.is_redis() {
        true => {
            let ok = state.dispatcher.check().await;
            gauge("ORS_REDIS_STATUS", !ok);
            Some(!ok)
        }
        false => None,
    };
    gauge("GES_HEALTH", database_down || stream_down == Some(true));
    (database_down, cache_down, stream_down)
}

/// Check forever at the configured period.
pub async fn run(state: AppState, cache: Option<deadpool_redis::Pool>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(state.settings.health.interval_seconds));
    loop {
        ticker.tick().await;
        check_once(&state, cache.as_ref()).await;
    }
}
