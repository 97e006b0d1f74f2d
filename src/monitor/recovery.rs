//! The recovery pass: expire hand-offs past `queuedTtlSeconds`, purge finished records past
//! `ttlSeconds` and stale bookkeeping, expire call-in requests past their expiration (counted
//! here only for the requests this pass moves; a create that expires one first counts it
//! itself), refresh `ges_monitor_size`.

use std::time::Instant;

use super::{Directory, CYCLE_METRIC};
use crate::domain::callback::State;
use crate::domain::time::now_ms;
use crate::http::call_in::count_expired;
use crate::state::AppState;
use crate::telemetry::catalogue::CALLBACKS_COMPLETED;

/// Finished call-in requests stay readable this long.
const CALLIN_RETENTION_MS: i64 = 86_400_000;

pub async fn pass(state: &AppState, directory: &Directory) {
    let started = Instant::now();
    directory.refresh(&state.store).await;
    if let Err(e) = run(state, directory).await {
        tracing::warn!(error = %e, "recovery pass failed; retrying next period");
    }
    metrics::histogram!(CYCLE_METRIC, "pass" => "recovery").record(started.elapsed().as_secs_f64());
}

async fn run(state: &AppState, directory: &Directory) -> anyhow::Result<()> {
    let store = &state.store;
    let now = now_ms();
    for (tenant_id, service, config) in directory.services() {
        let expired =
            store.expire_queued(&tenant_id, &service, now - config.queued_ttl_seconds as i64 * 1000, now).await?;
        if !expired.is_empty() {
            let tenant = directory.tenant_name(&tenant_id);
            metrics::counter!(CALLBACKS_COMPLETED, "tenant" => tenant, "service" => service.clone(), "reason" => "FAIL_TIMEOUT_TTL")
                .increment(expired.len() as u64);
            for f in &expired {
                tracing::info!(corrId = %f.corr_id, callbackId = %f.id, stage = "state_changed", "not processing within queuedTtlSeconds: FAIL_TIMEOUT_TTL");
            }
        }
        let purged = store.purge_finished(&tenant_id, &service, now - config.ttl_seconds as i64 * 1000).await?;
        if purged > 0 {
            tracing::debug!(service = %service, count = purged, "purged finished callbacks past ttlSeconds");
        }
    }
    store.purge_bookkeeping(now).await?;
    let expired = store.expire_callins(now).await?;
    count_expired(state, &expired).await;
    if !expired.is_empty() {
        tracing::debug!(count = expired.len(), "call-in requests expired");
    }
    store.purge_callins(now - CALLIN_RETENTION_MS).await?;
    let (by_state, due) = store.monitor_counts(now).await?;
    for s in [State::Scheduled, State::Queued, State::Routing, State::Processing] {
        let n = by_state.iter().find(|(st, _)| *st == s).map(|(_, n)| *n).unwrap_or(0);
        metrics::gauge!("ges_monitor_size", "type" => s.as_str().to_ascii_lowercase()).set(n as f64);
    }
    metrics::gauge!("ges_monitor_size", "type" => "due").set(due as f64);
    Ok(())
}
