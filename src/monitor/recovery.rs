//! The recovery pass: cancel callbacks whose service is gone, expire hand-offs past
//! `queuedTtlSeconds`, purge finished records past `ttlSeconds` (both carried on each row) and
//! stale bookkeeping, expire call-in requests past their expiration (counted
//! here only for the requests this pass moves; a create that expires one first counts it
//! itself), refresh `ges_monitor_size` and the webhook outbox's backlog gauges.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use crate::domain::callback::State;
use crate::ops::{AppState, TenantDirectory};
use crate::telemetry::catalogue::{MONITOR_CYCLE, MONITOR_SIZE, WEBHOOK_OUTBOX_OLDEST_AGE, WEBHOOK_OUTBOX_PENDING};
use crate::time::{Millis, Moment, DAY, HOUR};

/// Finished call-in requests stay readable this long.
const CALLIN_RETENTION: Millis = DAY;

pub async fn pass(state: &AppState, directory: &TenantDirectory) {
    let started = Instant::now();
    directory.refresh(&state.store).await;
    if let Err(e) = run(state).await {
        tracing::warn!(error = %e, "recovery pass failed; retrying next period");
    }
    metrics::histogram!(MONITOR_CYCLE, "pass" => "recovery").record(started.elapsed().as_secs_f64());
}

/// The outcome report's roll-up past `reports.retention_days`, once an hour per replica: its rows
/// are hourly and the delete reads the whole table (no index on the hour alone: see migration 0016).
async fn purge_outcomes_hourly(state: &AppState, now: Moment) -> anyhow::Result<()> {
    static LAST_HOUR: AtomicI64 = AtomicI64::new(-1);
    let hour = now.truncate(HOUR).as_ms();
    if LAST_HOUR.swap(hour, Ordering::Relaxed) != hour {
        let keep = DAY * i64::from(state.settings.reports.retention_days);
        state.store.purge_outcomes(now - keep).await?;
    }
    Ok(())
}

async fn run(state: &AppState) -> anyhow::Result<()> {
    let store = &state.store;
    let now = crate::time::now();
    // Orphans first, so none is expired under FAIL_TIMEOUT_TTL when its service is gone.
    crate::ops::lifecycle::settle_stranded(state, now).await?;
    let purged = store.purge_finished(now).await?;
    if purged > 0 {
        tracing::debug!(count = purged, "purged finished callbacks past their ttlSeconds");
    }
    store.purge_bookkeeping(now).await?;
    // The outcome report's recent rows, one a cell (rows are inserted for the current hour).
    let folded = store.compact_outcomes(now.truncate(HOUR) - HOUR).await?;
    if folded > 0 {
        tracing::debug!(rows = folded, "outcome roll-up rows folded");
    }
    purge_outcomes_hourly(state, now).await?;
    // Tenants' retentionDays (issue 27): personal data of old finished callbacks, a batch a pass.
    let overwritten = store.purge_personal_data(now).await?;
    if overwritten > 0 {
        tracing::info!(
            count = overwritten,
            "finished callbacks' numbers and userData erased past their tenant's retentionDays"
        );
    }
    let (by_state, due) = store.monitor_counts(now).await?;
    for s in [State::Scheduled, State::Queued, State::Routing, State::Processing] {
        let n = by_state.iter().find(|(st, _)| *st == s).map(|(_, n)| *n).unwrap_or(0);
        metrics::gauge!(MONITOR_SIZE, "type" => s.as_str().to_ascii_lowercase()).set(n as f64);
    }
    metrics::gauge!(MONITOR_SIZE, "type" => "due").set(due as f64);
    let (pending, oldest) = store.outbox_backlog().await?;
    metrics::gauge!(WEBHOOK_OUTBOX_PENDING).set(pending as f64);
    let oldest_age = oldest.map_or(Millis::ZERO, |t| (now - t).max(Millis::ZERO));
    metrics::gauge!(WEBHOOK_OUTBOX_OLDEST_AGE).set(oldest_age.as_secs_f64());
    // Last, so a call-in failure cannot leave the monitor's gauges stale.
    crate::ops::call_in::expire(state, now).await?;
    store.purge_callins(now - CALLIN_RETENTION).await?;
    Ok(())
}
