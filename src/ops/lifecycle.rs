//! A callback's life after booking: cancel (by the API, an operator, a delete with
//! `cancelUnfinished`, the monitor for a callback whose service is gone), reschedule, the voice
//! platform's state reports, re-drive, and the monitor's completions (attempts spent, queued too
//! long). `ges_callbacks_cancelled`, `ges_callbacks_rescheduled`, `ges_callbacks_completed` and
//! `CB_SUBMIT_FAILED` are incremented here and nowhere else, under labels from one resolver
//! (`TenantDirectory::labels`, or the request's own tenant).

use super::booking::with_proposals;
use super::tenant_directory::Labels;
use super::{service_context, AppState};
use crate::domain::callback::{Actor, CompletionReason, State};
use crate::domain::{booking, retry};
use crate::error::{ApiError, Reason};
use crate::store::{
    AuditEntry, CallbackEdit, CallbackRecord, CancelOutcome, Finished, FollowUpOutcome, FollowUpPlan, HistoryEntry,
    NewTime, PlatformReport, RedriveOutcome, ReportOutcome, RescheduleOutcome, Tenant,
};
use crate::telemetry::catalogue::{
    CALLBACKS_CANCELLED, CALLBACKS_COMPLETED, CALLBACKS_RESCHEDULED, CALLBACK_RETRIES, CB_SUBMIT_FAILED,
};
use crate::time::{Millis, Moment};

fn count_completed(labels: &Labels, reason: &CompletionReason, n: u64) {
    metrics::counter!(CALLBACKS_COMPLETED, "tenant" => labels.tenant.clone(), "service" => labels.service.clone(), "reason" => reason.as_str().to_string())
        .increment(n);
}

/// A cancel completes the callback: both counters move.
fn count_cancelled(labels: &Labels) {
    metrics::counter!(CALLBACKS_CANCELLED, "tenant" => labels.tenant.clone(), "service" => labels.service.clone())
        .increment(1);
    count_completed(labels, &CompletionReason::Cancelled, 1);
}

/// Callbacks an operation of `tenant` cancelled (bulk cancel, a delete with `cancelUnfinished`),
/// by service.
pub fn cancelled(tenant: &Tenant, services: &[String]) {
    for service in services {
        count_cancelled(&Labels::of(tenant, service));
    }
}

/// Callbacks of `tenant` completed `ERASED` by an erasure (issue 27), by service.
pub fn erased(tenant: &Tenant, services: &[String]) {
    for service in services {
        count_completed(&Labels::of(tenant, service), &CompletionReason::Erased, 1);
    }
}

/// Cancel one callback of `tenant` through the public API.
pub async fn cancel(state: &AppState, tenant: &Tenant, id: &str) -> Result<(), ApiError> {
    match state.store.cancel_callback(&tenant.id, id, Actor::Api, crate::time::now()).await? {
        CancelOutcome::Cancelled(record) => {
            count_cancelled(&Labels::of(tenant, &record.service_name));
            tracing::info!(callbackId = %id, stage = "state_changed", "callback cancelled");
            Ok(())
        }
        CancelOutcome::AlreadyCompleted => {
            Err(ApiError::new(Reason::AlreadyCompleted, "the callback has already completed"))
        }
        CancelOutcome::NotFound => Err(ApiError::not_found("callback")),
    }
}

/// Cancel up to 1,000 callbacks of `tenant` in one transaction with its audit entry (admin).
pub async fn cancel_many(
    state: &AppState,
    tenant: &Tenant,
    ids: &[String],
    audit: &AuditEntry,
) -> Result<Vec<CancelOutcome>, ApiError> {
    let outcomes = state.store.cancel_callbacks(&tenant.id, ids, Actor::Admin, audit, crate::time::now()).await?;
    for outcome in &outcomes {
        if let CancelOutcome::Cancelled(record) = outcome {
            count_cancelled(&Labels::of(tenant, &record.service_name));
        }
    }
    Ok(outcomes)
}

/// Move a `SCHEDULED` callback to `desired` (epoch ms), under the same rules as a booking.
pub async fn reschedule(
    state: &AppState,
    tenant: &Tenant,
    id: &str,
    desired: Moment,
) -> Result<CallbackRecord, ApiError> {
    edit(state, tenant, id, Some(desired), None, Actor::Api, None).await
}

/// Edit a `SCHEDULED` callback: a new `desired` time (epoch ms; under the same rules as a booking)
/// and/or new `userData`. One operation for the public `callbacks/reschedule` and
/// `callbacks/update` and the admin API's `PATCH` and `reschedule` (with their audit entry).
pub async fn edit(
    state: &AppState,
    tenant: &Tenant,
    id: &str,
    desired: Option<Moment>,
    user_data: Option<serde_json::Map<String, serde_json::Value>>,
    actor: Actor,
    audit: Option<AuditEntry>,
) -> Result<CallbackRecord, ApiError> {
    let current = state.store.get_callback(&tenant.id, id).await?.ok_or_else(|| ApiError::not_found("callback"))?;
    if current.state != State::Scheduled {
        return Err(not_reschedulable(current.state));
    }
    let now = crate::time::now();
    let mut proposals_for = None;
    let time = match desired {
        None => None,
        Some(desired) if desired <= now => {
            return Err(ApiError::new(Reason::TimeOutOfRange, "desiredTime must be in the future"));
        }
        Some(desired) => {
            let service = service_context::load(&state.store, &state.services, tenant, &current.service_name).await?;
            let (due_ms, bucket) = match booking::scheduled_slot(desired, &service.rules(), now) {
                Ok(slot) => slot,
                Err(e) => return Err(with_proposals(e, state, tenant, &service, desired, now).await),
            };
            proposals_for = Some((service, desired));
            Some(NewTime { desired_ms: desired, due_ms, bucket })
        }
    };
    let change = CallbackEdit { time, user_data, actor, audit };
    match state.store.edit_callback(&tenant.id, id, &change, now).await? {
        RescheduleOutcome::Rescheduled(record) => {
            if change.time.is_some() {
                let labels = Labels::of(tenant, &record.service_name);
                metrics::counter!(CALLBACKS_RESCHEDULED, "tenant" => labels.tenant, "service" => labels.service)
                    .increment(1);
            }
            Ok(*record)
        }
        RescheduleOutcome::SlotFull => {
            let full = ApiError::new(Reason::SlotFull, "that time slot is full; see data.slots for open times");
            match proposals_for {
                Some((service, desired)) => Err(with_proposals(full, state, tenant, &service, desired, now).await),
                None => Err(full),
            }
        }
        RescheduleOutcome::NotReschedulable(s) => Err(not_reschedulable(s)),
        RescheduleOutcome::NotFound => Err(ApiError::not_found("callback")),
    }
}

fn not_reschedulable(state: State) -> ApiError {
    ApiError::new(
        Reason::NotReschedulable,
        format!("only SCHEDULED callbacks can be rescheduled or edited; this one is {state}"),
    )
}

/// Apply the voice platform's report on a hand-off (internal API). `Ok(None)`: nothing moved
/// (the same state again, or a report on an older attempt). A completion the service's retry
/// policy covers books its follow-up in the same transaction (issue 27).
pub async fn report(
    state: &AppState,
    id: &str,
    report: &PlatformReport,
) -> Result<Option<Box<CallbackRecord>>, ApiError> {
    let plan = follow_up_plan(state, id, report).await?;
    let planned = match &plan {
        Retry::Plan(plan) => Some(plan),
        _ => None,
    };
    match state.store.apply_platform_report(id, report, planned, crate::time::now()).await? {
        ReportOutcome::Applied { record, from, follow_up } => {
            let stage = if from == record.state { "acknowledged" } else { "state_changed" };
            tracing::debug!(corrId = %record.corr_id, callbackId = %id, stage, state = record.state.as_str(), attempt = record.attempt, "platform report applied");
            if record.state == State::Completed {
                let labels = state.directory.labels(&state.store, &record.tenant_id, &record.service_name).await;
                let reason = CompletionReason::parse(record.reason.as_deref().unwrap_or_default());
                count_completed(&labels, &reason, 1);
                let result = match (&plan, &follow_up) {
                    (_, Some(FollowUpOutcome::Booked { id: next, desired_ms })) => {
                        tracing::info!(callbackId = %id, followUp = %next, desiredTime = %crate::time::format_utc(*desired_ms), "follow-up booked");
                        Some("booked")
                    }
                    (_, Some(FollowUpOutcome::NoSlot)) => Some("no_slot"),
                    (Retry::Exhausted, None) => Some("exhausted"),
                    _ => None,
                };
                if let (Some(result), Some(outcome)) = (result, retry::outcome_label(&reason)) {
                    metrics::counter!(CALLBACK_RETRIES, "tenant" => labels.tenant, "service" => labels.service,
                        "outcome" => outcome, "result" => result)
                    .increment(1);
                }
            }
            Ok(Some(record))
        }
        ReportOutcome::Unchanged => Ok(None),
        ReportOutcome::Illegal(current) => Err(ApiError::new(
            Reason::IllegalTransition,
            format!(
                "the callback is {current}; {} is not a legal next state for this hand-off",
                report.state.map(State::as_str).unwrap_or("that")
            ),
        )),
        ReportOutcome::NotFound => Err(ApiError::not_found("callback")),
    }
}

/// Whether a report's completion calls for a follow-up.
enum Retry {
    /// Not a completion the service's policy covers.
    None,
    /// Covered, but this callback is already the rule's last follow-up.
    Exhausted,
    Plan(FollowUpPlan),
}

/// How many candidate times a follow-up is offered to the report's transaction: its first slots
/// may fill between this read and the report's commit.
const FOLLOW_UP_CANDIDATES: usize = 20;

/// The follow-up a report would book if it completes the callback with an outcome the service's
/// retry policy covers: the times it may take, read before the report's transaction, which takes
/// the first one that still has a place.
async fn follow_up_plan(state: &AppState, id: &str, report: &PlatformReport) -> Result<Retry, ApiError> {
    let reason = match (report.state, report.reason.as_deref()) {
        (Some(State::Completed), Some(r)) => CompletionReason::parse(r),
        _ => return Ok(Retry::None),
    };
    if retry::outcome_label(&reason).is_none() {
        return Ok(Retry::None);
    }
    let Some(current) = state.store.callback_by_id(id).await?.filter(|c| c.state != State::Completed) else {
        return Ok(Retry::None);
    };
    // The directory knows the tenant's name once it has seen it (reloaded here if new).
    state.directory.ensure(&state.store, [(current.tenant_id.as_str(), current.service_name.as_str())]).await;
    let tenant_name = state.directory.tenant_name(&current.tenant_id);
    let Some(tenant) = state.store.get_tenant(&tenant_name).await? else { return Ok(Retry::None) };
    let Ok(service) = service_context::load(&state.store, &state.services, &tenant, &current.service_name).await else {
        return Ok(Retry::None);
    };
    let Some(rule) = retry::rule_for(&service.record.config.retry, &reason) else { return Ok(Retry::None) };
    let Some(delay) = retry::delay(rule, current.retry_number) else { return Ok(Retry::Exhausted) };
    let now = crate::time::now();
    let rules = service.rules();
    let earliest = now + delay;
    let (_, latest) = rules.bookable_range(now);
    // From a day before `earliest`: the bucket holding it may start earlier.
    let reserved = state
        .store
        .reserved_counts(&tenant.id, service.name(), earliest - crate::time::DAY, latest + Millis::from_ms(1))
        .await?;
    let candidates = retry::candidates(&rules, earliest, now, &reserved, FOLLOW_UP_CANDIDATES);
    Ok(Retry::Plan(FollowUpPlan { id: uuid::Uuid::now_v7().to_string(), reason, candidates }))
}

/// Hand `ids` of `tenant` over again (admin), all or nothing with the audit entry.
pub async fn redrive(
    state: &AppState,
    tenant: &Tenant,
    ids: &[String],
    audit: &AuditEntry,
) -> Result<Vec<RedriveOutcome>, ApiError> {
    Ok(state.store.redrive_callbacks(&tenant.id, ids, &state.replica_id, audit, crate::time::now()).await?)
}

/// The monitor spent a callback's hand-off attempts: `COMPLETED` / `SUBMIT_FAILED`.
pub async fn submit_failed(state: &AppState, tenant_id: &str, service: &str, id: &str) -> anyhow::Result<()> {
    if state.store.complete_by_monitor(id, &CompletionReason::SubmitFailed, crate::time::now()).await? {
        let labels = state.directory.labels(&state.store, tenant_id, service).await;
        metrics::counter!(CB_SUBMIT_FAILED, "tenant" => labels.tenant.clone()).increment(1);
        count_completed(&labels, &CompletionReason::SubmitFailed, 1);
        tracing::warn!(callbackId = %id, stage = "state_changed", state = State::Completed.as_str(), "hand-off attempts spent: SUBMIT_FAILED");
    }
    Ok(())
}

/// The recovery pass: callbacks whose service is gone are cancelled (never handed over), then
/// hand-offs past their `queuedTtlSeconds` expire. Both a batch at a time until none are left.
pub async fn settle_stranded(state: &AppState, now: Moment) -> anyhow::Result<()> {
    loop {
        let cancelled = state.store.cancel_orphans(now).await?;
        for f in &cancelled {
            count_cancelled(&finished_labels(state, f).await);
            tracing::warn!(corrId = %f.corr_id, callbackId = %f.id, service = %f.service_name, stage = "state_changed", "the callback's service no longer exists: CANCELLED, never handed over");
        }
        if cancelled.len() < crate::store::ORPHAN_BATCH {
            break;
        }
    }
    loop {
        let expired = state.store.expire_queued(now).await?;
        for f in &expired {
            count_completed(&finished_labels(state, f).await, &CompletionReason::FailTimeoutTtl, 1);
            tracing::info!(corrId = %f.corr_id, callbackId = %f.id, stage = "state_changed", "not processing within queuedTtlSeconds: FAIL_TIMEOUT_TTL");
        }
        if expired.len() < crate::store::RECOVERY_BATCH {
            break;
        }
    }
    Ok(())
}

async fn finished_labels(state: &AppState, f: &Finished) -> Labels {
    state.directory.labels(&state.store, &f.tenant_id, &f.service_name).await
}

/// A callback as `retrieve` shows it: the record, its history, and while it is active its
/// position in its queue and estimated wait.
pub struct Retrieved {
    pub record: CallbackRecord,
    pub history: Vec<HistoryEntry>,
    pub waiting: Option<(i64, i64)>,
}

/// Read one callback of `tenant` with its history (and its place in the queue while active).
pub async fn retrieve(state: &AppState, tenant: &Tenant, id: &str) -> Result<Retrieved, ApiError> {
    let record = state.store.get_callback(&tenant.id, id).await?.ok_or_else(|| ApiError::not_found("callback"))?;
    let history = state.store.list_history(id).await?;
    let waiting = match record.state.is_active() {
        true => Some(super::queues::position_and_wait(state, tenant, &record).await?),
        false => None,
    };
    Ok(Retrieved { record, history, waiting })
}
