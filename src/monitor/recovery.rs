//! The recovery pass: cancel callbacks whose service is gone, expire hand-offs past
//! `queuedTtlSeconds`, purge finished records past `ttlSeconds` (both carried on each row) and
//! stale bookkeeping, expire call-in requests past their expiration (counted
//! here only for the requests this pass moves; a create that expires one first counts it
//! itself), refresh `ges_monitor_size`.

use std::time::Instant;

use super::{Directory, CYCLE_METRIC};
use crate::domain::callback::State;
use crate::domain::callback::REASON_CANCELLED;
use crate::domain::time::now_ms;
use crate::ops::AppState;
use crate::store::ExpiredCallIn;
use crate::store::{CALLIN_EXPIRY_BATCH, ORPHAN_BATCH, RECOVERY_BATCH};
use crate::telemetry::catalogue::{CALLBACKS_CANCELLED, CALLBACKS_COMPLETED, CALLIN_EXPIRED};

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
    // Orphans first, so none is expired under FAIL_TIMEOUT_TTL when its service is gone.
    loop {
        let cancelled = store.cancel_orphans(now).await?;
        for f in &cancelled {
            let tenant = directory.tenant_name(&f.tenant_id);
            let service = f.service_name.clone();
            metrics::counter!(CALLBACKS_CANCELLED, "tenant" => tenant.clone(), "service" => service.clone())
                .increment(1);
            metrics::counter!(CALLBACKS_COMPLETED, "tenant" => tenant, "service" => service, "reason" => REASON_CANCELLED)
                .increment(1);
            tracing::warn!(corrId = %f.corr_id, callbackId = %f.id, service = %f.service_name, stage = "state_changed", "the callback's service no longer exists: CANCELLED, never handed over");
        }
        if cancelled.len() < ORPHAN_BATCH {
            break;
        }
    }
    loop {
        let expired = store.expire_queued(now).await?;
        for f in &expired {
            let tenant = directory.tenant_name(&f.tenant_id);
            metrics::counter!(CALLBACKS_COMPLETED, "tenant" => tenant, "service" => f.service_name.clone(), "reason" => "FAIL_TIMEOUT_TTL")
                .increment(1);
            tracing::info!(corrId = %f.corr_id, callbackId = %f.id, stage = "state_changed", "not processing within queuedTtlSeconds: FAIL_TIMEOUT_TTL");
        }
        if expired.len() < RECOVERY_BATCH {
            break;
        }
    }
    let purged = store.purge_finished(now).await?;
    if purged > 0 {
        tracing::debug!(count = purged, "purged finished callbacks past their ttlSeconds");
    }
    store.purge_bookkeeping(now).await?;
    let (by_state, due) = store.monitor_counts(now).await?;
    for s in [State::Scheduled, State::Queued, State::Routing, State::Processing] {
        let n = by_state.iter().find(|(st, _)| *st == s).map(|(_, n)| *n).unwrap_or(0);
        metrics::gauge!("ges_monitor_size", "type" => s.as_str().to_ascii_lowercase()).set(n as f64);
    }
    metrics::gauge!("ges_monitor_size", "type" => "due").set(due as f64);
    // Last, so a call-in failure cannot leave the monitor's gauges stale.
    expire_call_ins(state, now).await?;
    store.purge_callins(now - CALLIN_RETENTION_MS).await?;
    Ok(())
}

/// Expire call-in requests batch by batch, counting each batch as soon as it is committed (a
/// later failure must not lose the count of rows already moved).
async fn expire_call_ins(state: &AppState, now: i64) -> anyhow::Result<()> {
    loop {
        let expired = state.store.expire_callin_batch(now).await?;
        count_expired(state, &expired).await;
        if !expired.is_empty() {
            tracing::debug!(count = expired.len(), "call-in requests expired");
        }
        if expired.len() < CALLIN_EXPIRY_BATCH {
            return Ok(());
        }
    }
}

/// Count requests the sweep moved to `EXPIRED` (once each: only the write that moves one counts
/// it).
async fn count_expired(state: &AppState, expired: &[ExpiredCallIn]) {
    if expired.is_empty() {
        return;
    }
    for (tenant, group) in state.store.callin_labels(expired).await {
        metrics::counter!(CALLIN_EXPIRED, "tenant" => tenant, "group" => group).increment(1);
    }
}
