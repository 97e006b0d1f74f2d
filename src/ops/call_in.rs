//! Click-to-call-in: issuing a number (and access code) for a request, cancelling it, matching
//! the platform's inbound call, and expiring requests nobody called in on. `ges_callin_created`,
//! `ges_callin_matched`, `ges_callin_expired` and `CALLIN_POOL_EXHAUSTED` are incremented here and
//! nowhere else. Phone numbers are logged masked; `userData` and access codes never.

use serde_json::{Map, Value};

use super::tenant_directory::Labels;
use super::AppState;
use crate::coord::throttle::ThrottleOutcome;
use crate::domain::call_in::RequestState;
use crate::domain::phone::mask;
use crate::domain::throttle;
use crate::error::{ApiError, Reason};
use crate::store::{
    AuditEntry, CallInGroupRecord, CallInKey, CallInRecord, CancelCallInOutcome, CreateCallInOutcome, NewCallIn,
    Tenant, CALLIN_EXPIRY_BATCH,
};
use crate::telemetry::catalogue::{CALLIN_CREATED, CALLIN_EXPIRED, CALLIN_MATCHED, CALLIN_POOL_EXHAUSTED};
use crate::time::Moment;

/// A request as the edge parsed it.
pub struct CallInRequest {
    pub group_name: String,
    /// E.164; required when the group matches callers.
    pub from_number: Option<String>,
    pub callback_id: Option<String>,
    pub user_data: Map<String, Value>,
}

fn count_expired(labels: &Labels, n: usize) {
    if n > 0 {
        metrics::counter!(CALLIN_EXPIRED, "tenant" => labels.tenant.clone(), "group" => labels.service.clone())
            .increment(n as u64);
    }
}

/// The labels of call-in requests by key, in order (the fallbacks of `Labels::resolve` when the
/// store cannot say).
async fn labels_of(state: &AppState, keys: &[CallInKey]) -> Vec<Labels> {
    match state.store.callin_label_facts(keys).await {
        Ok(facts) => keys
            .iter()
            .zip(facts)
            .map(|(key, f)| Labels::resolve(f.tenant_name, &key.group, f.group_configured))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, count = keys.len(), "call-in labels unavailable; counted as undefined/unknown");
            keys.iter().map(|key| Labels::resolve(None, &key.group, false)).collect()
        }
    }
}

/// Issue a number (and code) of `tenant`'s group for `request`. Stale requests of the group that
/// this create expires first are counted here, once.
pub async fn create(state: &AppState, tenant: &Tenant, request: CallInRequest) -> Result<CallInRecord, ApiError> {
    let group = state
        .store
        .get_callin_group(&tenant.id, &request.group_name)
        .await?
        .ok_or_else(|| ApiError::new(Reason::UnknownGroup, "groupName is not a call-in group of this tenant"))?;
    if group.config.require_caller_match && request.from_number.is_none() {
        return Err(ApiError::field("fromPhoneNumber", "is required: this group matches callers by their number"));
    }
    // api.md: `callbackServiceId` is the id of a callback to associate, so one of this tenant's.
    if let Some(callback_id) = &request.callback_id {
        if state.store.get_callback(&tenant.id, callback_id).await?.is_none() {
            return Err(ApiError::field("callbackServiceId", "is not the id of one of this tenant's callbacks"));
        }
    }
    let caller = request.from_number.as_deref().map(|n| state.throttles.number_key(n));
    let counters = throttle::callin_counters(&tenant.id, &group.name, caller.as_deref(), &group.config);
    let reservation = match state.throttles.reserve(&counters).await {
        ThrottleOutcome::Admitted(r) => r,
        ThrottleOutcome::Refused { index, retry_after } => {
            return Err(super::booking::throttled(&counters[index], tenant, retry_after));
        }
    };
    let created = issue(state, tenant, &group, request).await;
    if created.is_err() {
        // Only issued requests consume the budget.
        state.throttles.release(&reservation).await;
    }
    created
}

async fn issue(
    state: &AppState,
    tenant: &Tenant,
    group: &CallInGroupRecord,
    request: CallInRequest,
) -> Result<CallInRecord, ApiError> {
    let new = NewCallIn {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant.id.clone(),
        group_name: group.name.clone(),
        from_number: request.from_number,
        callback_id: request.callback_id,
        user_data: request.user_data,
        now: crate::time::now(),
    };
    let labels = Labels::of(tenant, &group.name);
    match state.store.create_callin(&new, &group.config).await? {
        CreateCallInOutcome::Created(record, expired) => {
            count_expired(&labels, expired.len());
            metrics::counter!(CALLIN_CREATED, "tenant" => labels.tenant, "group" => labels.service).increment(1);
            tracing::info!(callInId = %record.id, group = %group.name, toPhoneNumber = %mask(&record.to_number), "call-in request issued");
            Ok(*record)
        }
        CreateCallInOutcome::Exhausted(expired) => {
            count_expired(&labels, expired.len());
            metrics::counter!(CALLIN_POOL_EXHAUSTED, "tenant" => labels.tenant).increment(1);
            tracing::warn!(group = %group.name, "call-in pool exhausted");
            Err(ApiError::new(
                Reason::PoolExhausted,
                "every number (and access code) of this group is in use; retry shortly",
            )
            .with_retry_after(crate::time::Millis::from_secs(1)))
        }
    }
}

/// Cancel a pending request; its number (or code) is free at once. Cancelling a cancelled
/// request again is not an error; a matched or expired one is `ALREADY_COMPLETED`.
pub async fn cancel(state: &AppState, tenant: &Tenant, id: &str, now: Moment) -> Result<CallInRecord, ApiError> {
    match state.store.cancel_callin(&tenant.id, id, now).await? {
        CancelCallInOutcome::Cancelled(record) => {
            tracing::info!(callInId = %id, "call-in request cancelled");
            Ok(*record)
        }
        CancelCallInOutcome::NotPending(record) if record.state == RequestState::Cancelled => Ok(*record),
        CancelCallInOutcome::NotPending(record) => Err(ApiError::new(
            Reason::AlreadyCompleted,
            format!("the call-in request is {}", record.state.as_seen(record.expires_ms, now).as_str()),
        )),
        CancelCallInOutcome::NotFound => Err(ApiError::not_found("call-in request")),
    }
}

/// What a bulk cancel did, by id.
#[derive(Debug, Default)]
pub struct BulkCancel {
    /// Cancelled now or before (as in the public cancel).
    pub cancelled: Vec<String>,
    pub not_found: Vec<String>,
    /// Matched or expired.
    pub already_completed: Vec<String>,
}

/// Cancel pending requests of `tenant` in one audited transaction (admin API).
pub async fn cancel_many(
    state: &AppState,
    tenant: &Tenant,
    ids: &[String],
    audit: &AuditEntry,
) -> Result<BulkCancel, ApiError> {
    let outcomes = state.store.cancel_callins(&tenant.id, ids, audit, crate::time::now()).await?;
    let mut done = BulkCancel::default();
    for (id, outcome) in ids.iter().zip(outcomes) {
        let list = match outcome {
            CancelCallInOutcome::Cancelled(_) => &mut done.cancelled,
            CancelCallInOutcome::NotPending(r) if r.state == RequestState::Cancelled => &mut done.cancelled,
            CancelCallInOutcome::NotPending(_) => &mut done.already_completed,
            CancelCallInOutcome::NotFound => &mut done.not_found,
        };
        list.push(id.clone());
    }
    Ok(done)
}

/// The platform's inbound call to `to_number` (with `code`, from `from_number`) matches the
/// pending request that holds them: it becomes `MATCHED`, its number (or code) free again.
pub async fn match_inbound(
    state: &AppState,
    to_number: &str,
    code: Option<i64>,
    from_number: Option<&str>,
    now: Moment,
) -> Result<CallInRecord, ApiError> {
    let Some(record) = state.store.match_callin(to_number, code, from_number, now).await? else {
        tracing::info!(toPhoneNumber = %mask(to_number), "inbound call matched no pending call-in request");
        return Err(ApiError::not_found("pending call-in request for this number, code and caller"));
    };
    let key = CallInKey { tenant_id: record.tenant_id.clone(), group: record.group_name.clone() };
    for labels in labels_of(state, &[key]).await {
        metrics::counter!(CALLIN_MATCHED, "tenant" => labels.tenant, "group" => labels.service).increment(1);
    }
    tracing::info!(callInId = %record.id, toPhoneNumber = %mask(to_number), "inbound call matched");
    Ok(record)
}

/// The recovery pass: expire pending requests past their expiration batch by batch, counting
/// each batch as soon as it is committed (a later failure must not lose the count of rows
/// already moved). A create that expires one first counts it itself.
pub async fn expire(state: &AppState, now: Moment) -> anyhow::Result<()> {
    loop {
        let expired = state.store.expire_callin_batch(now).await?;
        if !expired.is_empty() {
            for labels in labels_of(state, &expired).await {
                count_expired(&labels, 1);
            }
            tracing::debug!(count = expired.len(), "call-in requests expired");
        }
        if expired.len() < CALLIN_EXPIRY_BATCH {
            return Ok(());
        }
    }
}
