//! The hand-off pass: re-claim stale work, claim what is due, publish this replica's claims,
//! publish cancel messages.

use std::time::{Duration, Instant};

use super::handoff_memory::{settle_doubts, HandOffMemory, InDoubt, Raise};
use super::message::handoff_message;
use crate::coord::stream::{message_field, BatchResult, HandOffStream};
use crate::coord::webhook_sender::Sent;
use crate::domain::callback::HandOffKind;
use crate::domain::service::ServiceConfig;
use crate::ops::webhooks::WebhookHandOff;
use crate::ops::AppState;
use crate::ops::TenantDirectory;
use crate::store::HandOff;
use crate::telemetry::catalogue::{DISPATCH_PUBLISHED, MONITOR_CYCLE, MONITOR_DISPATCH_DELAY, MONITOR_LAGGING_BEHIND};
use crate::telemetry::trace_context::{self, TraceContext};
use crate::time::{Millis, Moment};

const BATCH: i64 = 200;

pub async fn pass(
    state: &AppState,
    handoff_stream: &HandOffStream,
    directory: &TenantDirectory,
    memory: &HandOffMemory,
) {
    let started = Instant::now();
    directory.refresh_if_stale(&state.store).await;
    // Down: nothing is claimed, published or re-claimed, and no attempt is spent.
    let up = !handoff_stream.is_down() || handoff_stream.check().await;
    if up {
        if let Err(e) = run(state, handoff_stream, directory, memory).await {
            tracing::warn!(error = %e, "dispatch pass failed; retrying next tick");
        }
    }
    metrics::histogram!(MONITOR_CYCLE, "pass" => "dispatch").record(started.elapsed().as_secs_f64());
}

async fn run(
    state: &AppState,
    handoff_stream: &HandOffStream,
    directory: &TenantDirectory,
    memory: &HandOffMemory,
) -> anyhow::Result<()> {
    let store = &state.store;
    let me = state.replica_id.as_str();
    memory.beat(state).await?;
    // Settle earlier writes whose answer was lost before anything else is published.
    if !settle_doubts(state, handoff_stream, memory).await? {
        return Ok(());
    }
    let now = crate::time::now();
    let lease = crate::time::Millis::from_secs(state.settings.monitor.claim_lease_seconds);
    // Publish what we hold, then claim one batch at a time and publish it before claiming more,
    // so no claim waits longer than one batch for its publication.
    if !publish_own_claims(state, handoff_stream, directory, memory).await? {
        return Ok(());
    }
    loop {
        let claimed = store.claim_due(me, crate::time::now(), BATCH).await?;
        for h in &claimed {
            tracing::trace!(corrId = %h.corr_id, callbackId = %h.id, attempt = h.attempt, stage = "claimed", "claimed for hand-off");
        }
        // The batch just claimed is published straight from the claim's answer.
        if !publish(state, handoff_stream, directory, memory, &claimed).await? {
            return Ok(());
        }
        if (claimed.len() as i64) < BATCH {
            break;
        }
    }
    // Stale work of replicas that stopped beating. After an outage every owner first gets a full
    // lease to publish its own claims, so no claim is taken over just because the stream was down.
    if handoff_stream.up_for() >= lease.to_std() {
        let reclaimed = store.reclaim_expired_leases(me, now, lease, BATCH).await?;
        if reclaimed > 0 {
            Raise::LeaseExpired.count(reclaimed);
            tracing::warn!(
                count = reclaimed,
                cause = Raise::LeaseExpired.as_label(),
                "re-claimed hand-offs of a replica not seen within the claim lease; they go out as their next attempt"
            );
        }
    }
    let mut resend = false;
    for late in store.reclaim_unacknowledged(me, now, BATCH).await? {
        directory.ensure(store, [(late.tenant_id.as_str(), late.service_name.as_str())]).await;
        let config = directory.service(&late.tenant_id, &late.service_name);
        Raise::AckTimeout.count(1);
        tracing::info!(callbackId = %late.id, failedAttempts = late.failed_attempts, cause = Raise::AckTimeout.as_label(), "hand-off not acknowledged in time; re-sending as the next attempt");
        if late.failed_attempts >= i64::from(config.max_dispatch_attempts) {
            crate::ops::lifecycle::submit_failed(state, &late.tenant_id, &late.service_name, &late.id).await?;
        } else {
            resend = true;
        }
    }
    if resend && !publish_own_claims(state, handoff_stream, directory, memory).await? {
        return Ok(());
    }
    publish_cancels(state, handoff_stream, directory).await
}

/// Publish everything this replica holds, in batches; false when the stream went down.
async fn publish_own_claims(
    state: &AppState,
    handoff_stream: &HandOffStream,
    directory: &TenantDirectory,
    memory: &HandOffMemory,
) -> anyhow::Result<bool> {
    loop {
        let batch = state.store.unpublished_claims(&state.replica_id, crate::time::now(), BATCH).await?;
        let full = batch.len() as i64 == BATCH;
        if !publish(state, handoff_stream, directory, memory, &batch).await? {
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
    handoff_stream: &HandOffStream,
    directory: &TenantDirectory,
    memory: &HandOffMemory,
    batch: &[HandOff],
) -> anyhow::Result<bool> {
    if batch.is_empty() {
        return Ok(true);
    }
    // Every batch goes through here, so a long backlog keeps this replica seen as alive.
    memory.beat(state).await?;
    directory.ensure(&state.store, batch.iter().map(|h| (h.tenant_id.as_str(), h.service_name.as_str()))).await;
    // Marked first, written second: an (id, attempt) reaches the stream at most once.
    let now = crate::time::now();
    // Each hand-off's service configuration, read once (the directory answers with a copy).
    let configs: Vec<ServiceConfig> = batch.iter().map(|h| directory.service(&h.tenant_id, &h.service_name)).collect();
    let marks: Vec<(String, i64, Moment)> = batch
        .iter()
        .zip(&configs)
        .map(|(h, config)| (h.id.clone(), h.attempt, now + crate::time::Millis::from_secs(config.ack_timeout_seconds)))
        .collect();
    let marked = state.store.mark_published(&state.replica_id, &marks, now).await?;
    let marked: Vec<(&HandOff, &ServiceConfig)> =
        batch.iter().zip(&configs).zip(marked).filter_map(|(pair, m)| m.then_some(pair)).collect();
    // A service whose `dispatch` names a webhook endpoint is handed over there (issue 24); its
    // endpoint's trouble is its own and never marks the stream down.
    let (hooked, streamed): (Vec<_>, Vec<_>) = marked.into_iter().partition(|(_, c)| c.dispatch.webhook().is_some());
    if !hooked.is_empty() {
        publish_to_webhooks(state, directory, memory, &hooked, now).await?;
    }
    if streamed.is_empty() {
        return Ok(true);
    }
    let messages: Vec<_> = streamed
        .iter()
        .map(|(h, config)| handoff_message(HandOffKind::Submit, h, &directory.tenant_name(&h.tenant_id), config))
        .collect();
    let batch: Vec<&HandOff> = streamed.into_iter().map(|(h, _)| h).collect();
    let held = |items: &[&HandOff]| -> Vec<(String, i64)> { items.iter().map(|h| (h.id.clone(), h.attempt)).collect() };
    let results = match handoff_stream.publish(&messages).await {
        BatchResult::Answered(results) => results,
        BatchResult::Unreachable { error } => {
            // Never sent: take the marks back; the same attempts go out when the stream returns.
            state.store.unpublish(&held(&batch), false).await?;
            tracing::warn!(error = %error, "dispatch stream unreachable; hand-offs wait");
            return Ok(false);
        }
        BatchResult::InDoubt { error, since } => {
            // Sent, answer lost: the marks stay until the stream is read back (next pass).
            tracing::warn!(error = %error, count = batch.len(), "a write to the dispatch stream lost its answer; it is read back before anything else is published");
            memory.remember(InDoubt { since, held: held(&batch) });
            return Ok(false);
        }
    };
    let mut written = 0_u64;
    for ((h, result), message) in batch.iter().zip(&results).zip(&messages) {
        match result {
            Ok(()) => {
                written += 1;
                handed_over(state, h, message_field(message, trace_context::HEADER), now);
            }
            Err(e) => refused(state, directory, h, e, now).await?,
        }
    }
    count_published(HandOffKind::Submit, written);
    Ok(true)
}

/// Messages the platform now has, by type (`submit`, `cancel`): the hand-off's own instrument,
/// counted here only (docs/architecture.md).
fn count_published(kind: HandOffKind, n: u64) {
    metrics::counter!(DISPATCH_PUBLISHED, "type" => kind.label()).increment(n);
}

/// A hand-off the platform now has (stream or webhook): its delay, and the lag alarm. Its log line
/// carries the hand-off's trace (`traceId`) and the booking's (`linkedTraceId`): the link.
fn handed_over(state: &AppState, h: &HandOff, handoff_trace: Option<&str>, now: Moment) {
    let delay = (now - h.due_ms).max(Millis::ZERO);
    metrics::histogram!(MONITOR_DISPATCH_DELAY).record(delay.as_secs_f64());
    if delay > crate::time::Millis::from_secs(state.settings.monitor.lag_threshold_seconds) {
        metrics::counter!(MONITOR_LAGGING_BEHIND).increment(1);
    }
    // Parsed only when the line is written: every hand-off passes here.
    if tracing::enabled!(tracing::Level::DEBUG) {
        let trace_id = |header: Option<&str>| header.and_then(TraceContext::parse).map(|t| t.trace_id_hex());
        tracing::debug!(
            corrId = %h.corr_id, callbackId = %h.id, attempt = h.attempt, delayMs = delay.as_ms(), stage = "published",
            traceId = trace_id(handoff_trace), linkedTraceId = trace_id(h.traceparent.as_deref()),
            "handed over"
        );
    }
}

/// A webhook request that was not sent, or whose answer was lost, goes out again as the same
/// attempt (same `webhook-id`) after this long, spending nothing.
const WEBHOOK_RETRY: Millis = Millis::from_ms(5_000);

/// Hand webhook services' callbacks over: one signed POST each (`ops::webhooks`). A 2xx is
/// published (and acknowledged when its body says `{"acknowledged": true}`); a request not sent or
/// whose answer was lost goes again as the same attempt; a non-2xx is a failed attempt, as a
/// refusal by the stream is. The replica keeps beating while requests are in flight, so no claim
/// lease runs out under a slow endpoint.
async fn publish_to_webhooks(
    state: &AppState,
    directory: &TenantDirectory,
    memory: &HandOffMemory,
    hooked: &[(&HandOff, &ServiceConfig)],
    now: Moment,
) -> anyhow::Result<()> {
    let tenants: Vec<String> = hooked.iter().map(|(h, _)| directory.tenant_name(&h.tenant_id)).collect();
    let messages: Vec<_> = hooked
        .iter()
        .zip(&tenants)
        .map(|((h, config), tenant)| handoff_message(HandOffKind::Submit, h, tenant, config))
        .collect();
    let items: Vec<WebhookHandOff> = hooked
        .iter()
        .zip(&messages)
        .zip(&tenants)
        .map(|(((h, config), message), tenant)| WebhookHandOff {
            tenant_id: &h.tenant_id,
            tenant_name: tenant,
            endpoint: config.dispatch.webhook().unwrap_or_default(),
            kind: HandOffKind::Submit,
            callback_id: &h.id,
            attempt: h.attempt,
            message,
        })
        .collect();
    let results = while_beating(state, memory, crate::ops::webhooks::deliver_handoffs(state, &items)).await;
    let mut acknowledged_now = Vec::new();
    for (((h, _), sent), message) in hooked.iter().zip(results).zip(&messages) {
        match sent {
            Sent::Delivered { acknowledged, .. } => {
                handed_over(state, h, message_field(message, trace_context::HEADER), now);
                if acknowledged {
                    acknowledged_now.push((h.id.clone(), h.attempt));
                }
            }
            Sent::NotSent(_) | Sent::InDoubt(_) => {
                state.store.defer_publication(&h.id, h.attempt, now + WEBHOOK_RETRY).await?;
            }
            Sent::Refused { status } => {
                refused(state, directory, h, &format!("the endpoint answered HTTP {status}"), now).await?
            }
        }
    }
    // The endpoints' answers acknowledged these: `QUEUED` for each attempt, as the internal API's
    // state report would record it, in one write for the batch.
    for id in state.store.acknowledge_handoffs(&acknowledged_now, crate::time::now()).await? {
        tracing::debug!(callbackId = %id, stage = "acknowledged", "hand-off acknowledged by the endpoint's answer");
    }
    Ok(())
}

/// Run `work`, keeping this replica seen as alive meanwhile.
async fn while_beating<T>(state: &AppState, memory: &HandOffMemory, work: impl std::future::Future<Output = T>) -> T {
    tokio::pin!(work);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tick.tick() => {
                if let Err(e) = memory.beat(state).await {
                    tracing::warn!(error = %e, "could not record this replica's liveness");
                }
            }
        }
    }
}

/// Redis answered the hand-off with an error: one failed attempt, retried with backoff
/// 1, 2, 4 … 30 s, and `SUBMIT_FAILED` once `maxDispatchAttempts` are spent.
async fn refused(
    state: &AppState,
    directory: &TenantDirectory,
    h: &HandOff,
    error: &str,
    now: Moment,
) -> anyhow::Result<()> {
    let backoff_s = (1_u64 << h.failed_attempts.clamp(0, 5)).min(30);
    let Some(failed) =
        state.store.mark_publish_failed(&h.id, h.attempt, now + crate::time::Millis::from_secs(backoff_s)).await?
    else {
        return Ok(());
    };
    tracing::warn!(corrId = %h.corr_id, callbackId = %h.id, failedAttempts = failed, error = %error, "the dispatch stream refused a hand-off");
    if failed >= i64::from(directory.service(&h.tenant_id, &h.service_name).max_dispatch_attempts) {
        crate::ops::lifecycle::submit_failed(state, &h.tenant_id, &h.service_name, &h.id).await?;
    }
    Ok(())
}

async fn publish_cancels(
    state: &AppState,
    handoff_stream: &HandOffStream,
    directory: &TenantDirectory,
) -> anyhow::Result<()> {
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
            // A cancel is not linked to the booking's trace.
            traceparent: None,
        };
        let tenant = directory.tenant_name(&h.tenant_id);
        let config = directory.service(&h.tenant_id, &h.service_name);
        let message = handoff_message(HandOffKind::Cancel, &h, &tenant, &config);
        if let Some(endpoint) = config.dispatch.webhook() {
            let item = WebhookHandOff {
                tenant_id: &h.tenant_id,
                tenant_name: &tenant,
                endpoint,
                kind: HandOffKind::Cancel,
                callback_id: &h.id,
                attempt: h.attempt,
                message: &message,
            };
            match crate::ops::webhooks::deliver_handoffs(state, &[item]).await.as_slice() {
                [Sent::Delivered { .. }] => state.store.outbox_done(row).await?,
                _ => break,
            }
            continue;
        }
        match handoff_stream.publish(&[message]).await {
            BatchResult::Answered(r) if r.iter().all(Result::is_ok) => {
                state.store.outbox_done(row).await?;
                count_published(HandOffKind::Cancel, 1);
                tracing::debug!(corrId = %h.corr_id, callbackId = %h.id, stage = "published", "cancel handed over");
            }
            _ => break,
        }
    }
    Ok(())
}
