//! The dispatch pass: re-claim stale work, claim what is due, publish this replica's claims,
//! publish cancel messages.

use std::time::Instant;

use super::{handoff_message, Directory, CYCLE_METRIC};
use crate::coord::stream::{BatchResult, Dispatcher};
use crate::domain::callback::State;
use crate::domain::time::now_ms;
use crate::state::AppState;
use crate::store::HandOff;
use crate::telemetry::catalogue::CALLBACKS_COMPLETED;

const BATCH: i64 = 200;
const SUBMIT_FAILED: &str = "SUBMIT_FAILED";

pub async fn pass(state: &AppState, dispatcher: &Dispatcher, directory: &Directory) {
    let started = Instant::now();
    directory.refresh_if_stale(&state.store).await;
    if dispatcher.is_down() && !dispatcher.check().await {
        // Down: nothing is claimed, published or re-claimed, and no attempt is spent.
        metrics::histogram!(CYCLE_METRIC, "pass" => "dispatch").record(started.elapsed().as_secs_f64());
        return;
    }
    if let Err(e) = run(state, dispatcher, directory).await {
        tracing::warn!(error = %e, "dispatch pass failed; retrying next tick");
    }
    metrics::histogram!(CYCLE_METRIC, "pass" => "dispatch").record(started.elapsed().as_secs_f64());
}

async fn run(state: &AppState, dispatcher: &Dispatcher, directory: &Directory) -> anyhow::Result<()> {
    let store = &state.store;
    let me = state.replica_id.as_str();
    let now = now_ms();
    let lease_ms = state.settings.monitor.claim_lease_seconds as i64 * 1000;
    // Publish what we hold, then claim one batch at a time and publish it before claiming more,
    // so no claim waits longer than one batch for its publication (and its lease never lapses).
    if !publish_own_claims(state, dispatcher, directory).await? {
        return Ok(());
    }
    loop {
        let claimed = store.claim_due(me, now_ms(), BATCH).await?;
        for h in &claimed {
            tracing::trace!(corrId = %h.corr_id, callbackId = %h.id, attempt = h.attempt, stage = "claimed", "claimed for hand-off");
        }
        // The batch just claimed is published straight from the claim's answer.
        if !publish(state, dispatcher, directory, &claimed).await? {
            return Ok(());
        }
        if (claimed.len() as i64) < BATCH {
            break;
        }
    }
    // Other replicas' stale work. After an outage every owner first gets a full lease to publish
    // its own claims, so a live replica's claims are not taken over just because the stream was down.
    if dispatcher.up_for() >= std::time::Duration::from_millis(lease_ms as u64) {
        let reclaimed = store.reclaim_expired_leases(me, now, lease_ms, BATCH).await?;
        if reclaimed > 0 {
            tracing::info!(count = reclaimed, "re-claimed hand-offs whose claim lease expired");
        }
    }
    let mut resend = false;
    for (tenant_id, service, id, failed) in store.reclaim_unacknowledged(me, now, BATCH).await? {
        directory.ensure(store, [(tenant_id.as_str(), service.as_str())]).await;
        let config = directory.service(&tenant_id, &service);
        tracing::debug!(callbackId = %id, failedAttempts = failed, "hand-off not acknowledged in time; re-sending");
        if failed >= i64::from(config.max_dispatch_attempts) {
            submit_failed(state, directory, &tenant_id, &service, &id).await?;
        } else {
            resend = true;
        }
    }
    if resend && !publish_own_claims(state, dispatcher, directory).await? {
        return Ok(());
    }
    publish_cancels(state, dispatcher, directory).await
}

/// Publish everything this replica holds, in batches; false when the stream went down.
async fn publish_own_claims(state: &AppState, dispatcher: &Dispatcher, directory: &Directory) -> anyhow::Result<bool> {
    loop {
        let batch = state.store.unpublished_claims(&state.replica_id, now_ms(), BATCH).await?;
        let full = batch.len() as i64 == BATCH;
        if !publish(state, dispatcher, directory, &batch).await? {
            return Ok(false);
        }
        if !full {
            return Ok(true);
        }
    }
}

/// Publish a batch; false when the stream went down.
async fn publish(
    state: &AppState,
    dispatcher: &Dispatcher,
    directory: &Directory,
    batch: &[HandOff],
) -> anyhow::Result<bool> {
    if batch.is_empty() {
        return Ok(true);
    }
    directory.ensure(&state.store, batch.iter().map(|h| (h.tenant_id.as_str(), h.service_name.as_str()))).await;
    // Marked first, written second: an (id, attempt) reaches the stream at most once.
    let now = now_ms();
    let marks: Vec<(String, i64, i64)> = batch
        .iter()
        .map(|h| {
            (
                h.id.clone(),
                h.attempt,
                now + directory.service(&h.tenant_id, &h.service_name).ack_timeout_seconds as i64 * 1000,
            )
        })
        .collect();
    let marked = state.store.mark_published(&state.replica_id, &marks, now).await?;
    let batch: Vec<&HandOff> = batch.iter().zip(marked).filter_map(|(h, m)| m.then_some(h)).collect();
    let messages: Vec<_> = batch
        .iter()
        .map(|h| {
            handoff_message(
                "callback.submit",
                h,
                &directory.tenant_name(&h.tenant_id),
                &directory.service(&h.tenant_id, &h.service_name),
            )
        })
        .collect();
    let held = |items: &[&HandOff]| -> Vec<(String, i64)> { items.iter().map(|h| (h.id.clone(), h.attempt)).collect() };
    let results = match dispatcher.publish(&messages).await {
        BatchResult::Answered(results) => results,
        BatchResult::Unreachable { error, maybe_written } => {
            // Not in the stream (or perhaps in it): take the marks back; a batch that may have been
            // written goes out again as its next attempt, so a duplicate is always a higher attempt.
            state.store.unpublish(&held(&batch), maybe_written).await?;
            tracing::warn!(error = %error, "dispatch stream unreachable; hand-offs wait");
            return Ok(false);
        }
    };
    let lag_threshold_ms = state.settings.monitor.lag_threshold_seconds as i64 * 1000;
    let mut written = 0_u64;
    for (h, result) in batch.iter().zip(&results) {
        match result {
            Ok(()) => {
                written += 1;
                let delay_ms = (now - h.due_ms).max(0);
                metrics::histogram!("ges_monitor_dispatch_delay_seconds").record(delay_ms as f64 / 1000.0);
                if delay_ms > lag_threshold_ms {
                    metrics::counter!("MONITOR_LAGGING_BEHIND").increment(1);
                }
                tracing::debug!(corrId = %h.corr_id, callbackId = %h.id, attempt = h.attempt, delayMs = delay_ms, stage = "published", "handed over");
            }
            Err(e) => refused(state, directory, h, e, now).await?,
        }
    }
    metrics::counter!("ges_dispatch_published_total", "type" => "submit").increment(written);
    Ok(true)
}

/// Redis answered the hand-off with an error: one failed attempt, retried with backoff
/// 1, 2, 4 … 30 s, and `SUBMIT_FAILED` once `maxDispatchAttempts` are spent.
async fn refused(state: &AppState, directory: &Directory, h: &HandOff, error: &str, now: i64) -> anyhow::Result<()> {
    let backoff_s = (1_i64 << h.failed_attempts.clamp(0, 5)).min(30);
    let Some(failed) = state.store.mark_publish_failed(&h.id, h.attempt, now + backoff_s * 1000).await? else {
        return Ok(());
    };
    tracing::warn!(corrId = %h.corr_id, callbackId = %h.id, failedAttempts = failed, error = %error, "the dispatch stream refused a hand-off");
    if failed >= i64::from(directory.service(&h.tenant_id, &h.service_name).max_dispatch_attempts) {
        submit_failed(state, directory, &h.tenant_id, &h.service_name, &h.id).await?;
    }
    Ok(())
}

async fn submit_failed(
    state: &AppState,
    directory: &Directory,
    tenant_id: &str,
    service: &str,
    id: &str,
) -> anyhow::Result<()> {
    if state.store.complete_by_monitor(id, SUBMIT_FAILED, now_ms()).await? {
        let tenant = directory.tenant_name(tenant_id);
        metrics::counter!("CB_SUBMIT_FAILED", "tenant" => tenant.clone()).increment(1);
        metrics::counter!(CALLBACKS_COMPLETED, "tenant" => tenant, "service" => directory.service_label(tenant_id, service), "reason" => SUBMIT_FAILED)
            .increment(1);
        tracing::warn!(callbackId = %id, stage = "state_changed", state = State::Completed.as_str(), "hand-off attempts spent: SUBMIT_FAILED");
    }
    Ok(())
}

async fn publish_cancels(state: &AppState, dispatcher: &Dispatcher, directory: &Directory) -> anyhow::Result<()> {
    for (row, callback_id, attempt) in state.store.outbox_pending(100).await? {
        let Some(record) = state.store.callback_by_id(&callback_id).await? else {
            state.store.outbox_done(row).await?;
            continue;
        };
        let h = HandOff {
            id: record.id,
            tenant_id: record.tenant_id,
            service_name: record.service_name,
            attempt,
            phone: record.phone,
            desired_ms: record.desired_ms,
            due_ms: record.due_ms,
            priority: record.priority,
            corr_id: record.corr_id,
            failed_attempts: record.failed_attempts,
            details: record.details,
        };
        let message = handoff_message(
            "callback.cancel",
            &h,
            &directory.tenant_name(&h.tenant_id),
            &directory.service(&h.tenant_id, &h.service_name),
        );
        match dispatcher.publish(&[message]).await {
            BatchResult::Answered(r) if r.iter().all(Result::is_ok) => {
                state.store.outbox_done(row).await?;
                metrics::counter!("ges_dispatch_published_total", "type" => "cancel").increment(1);
                tracing::debug!(corrId = %h.corr_id, callbackId = %h.id, stage = "published", "cancel handed over");
            }
            _ => break,
        }
    }
    Ok(())
}
