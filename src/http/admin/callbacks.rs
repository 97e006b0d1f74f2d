//! Operator work on callbacks: query across services, bulk cancel, re-drive, pause/resume a
//! service's hand-offs, watermarks.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::existing_tenant;
use crate::domain::callback::{Actor, CompletionReason, State};
use crate::error::ApiError;
use crate::http::callback_views::{page_of, parse_list_query, view};
use crate::http::callbacks::{check_edit, CheckedEdit};
use crate::http::envelope;
use crate::http::extractors::{AdminAuth, JsonBody};
use crate::ops::AppState;
use crate::store::AuditEntry;
use crate::store::{CallbackRecord, CancelOutcome, HistoryEntry, RedriveOutcome, Tenant};
use crate::time::{format_utc, parse_instant, Moment};

use super::MAX_IDS;

/// The public list's filters, with the hand-off bookkeeping operators need.
pub async fn list(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let tenant = existing_tenant(&state, &path).await?;
    let filter = parse_list_query(req.query_string())?;
    if super::csv_export::wants_csv(&req) {
        return Ok(super::csv_export::callbacks(state.into_inner(), tenant, filter));
    }
    let (records, next_cursor) = page_of(&state, &tenant, filter).await?;
    let items: Vec<Value> = records.into_iter().map(|r| operator_view(r, None)).collect();
    Ok(envelope::ok(json!({ "items": items, "nextCursor": next_cursor })))
}

/// `GET …/callbacks/counts` (issue 26): how many callbacks the list's filters match, per state
/// (every state named, 0 included), and in all.
pub async fn counts(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let tenant = existing_tenant(&state, &path).await?;
    let filter = parse_list_query(req.query_string())?;
    let counted = state.store.count_callbacks(&tenant.id, &filter).await?;
    let mut counts = Map::new();
    for s in State::ALL {
        counts.insert(s.as_str().to_string(), json!(0));
    }
    let mut total = 0;
    for (state_name, n) in counted {
        total += n;
        counts.insert(state_name, json!(n));
    }
    Ok(envelope::ok(json!({ "counts": counts, "total": total })))
}

/// `GET …/callbacks/{id}` (issue 26): one callback as the list shows it, with its history.
pub async fn get(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    let tenant = existing_tenant(&state, &tenant).await?;
    let record = state.store.get_callback(&tenant.id, &id).await?.ok_or_else(|| ApiError::not_found("callback"))?;
    let history = state.store.list_history(&id).await?;
    Ok(envelope::ok(operator_view(record, Some(history))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EditBody {
    #[serde(default)]
    pub desired_time: Option<String>,
    #[serde(default)]
    pub user_data: Option<Map<String, Value>>,
}

/// `PATCH …/callbacks/{id}` (issue 26): a `SCHEDULED` callback's `userData` and/or `desiredTime`,
/// audited; the operation of the public `callbacks/update`.
pub async fn patch(
    state: web::Data<AppState>,
    admin: AdminAuth,
    path: web::Path<(String, String)>,
    body: JsonBody<EditBody>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_name, id) = path.into_inner();
    let tenant = existing_tenant(&state, &tenant_name).await?;
    let EditBody { desired_time, user_data } = body.value;
    let edit = check_edit(desired_time, user_data, Vec::new())?;
    let audit =
        AuditEntry::new(&admin.actor, "PATCH", format!("tenants/{tenant_name}/callbacks/{id}"), Some(&body.raw));
    edited(&state, &tenant, &id, edit, audit).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RescheduleBody {
    pub desired_time: String,
}

/// `POST …/callbacks/{id}/reschedule` (issue 26): the public reschedule's rules, audited.
pub async fn reschedule(
    state: web::Data<AppState>,
    admin: AdminAuth,
    path: web::Path<(String, String)>,
    body: JsonBody<RescheduleBody>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_name, id) = path.into_inner();
    let tenant = existing_tenant(&state, &tenant_name).await?;
    let edit = check_edit(Some(body.value.desired_time.clone()), None, Vec::new())?;
    let audit = AuditEntry::new(
        &admin.actor,
        "POST",
        format!("tenants/{tenant_name}/callbacks/{id}/reschedule"),
        Some(&body.raw),
    );
    edited(&state, &tenant, &id, edit, audit).await
}

async fn edited(
    state: &AppState,
    tenant: &Tenant,
    id: &str,
    edit: CheckedEdit,
    audit: AuditEntry,
) -> Result<HttpResponse, ApiError> {
    let record =
        crate::ops::lifecycle::edit(state, tenant, id, edit.desired, edit.user_data, Actor::Admin, Some(audit)).await?;
    let history = state.store.list_history(id).await?;
    Ok(envelope::ok(operator_view(record, Some(history))))
}

/// The public view, with the hand-off bookkeeping operators need.
pub fn operator_view(r: CallbackRecord, history: Option<Vec<HistoryEntry>>) -> Value {
    let extra = json!({ "attempt": r.attempt, "failedAttempts": r.failed_attempts,
        "publishedTime": r.published_ms.map(format_utc), "ackedTime": r.acked_ms.map(format_utc) });
    let mut v = serde_json::to_value(view(r, history)).unwrap_or_else(|_| json!({}));
    if let (Some(obj), Value::Object(more)) = (v.as_object_mut(), extra) {
        obj.extend(more);
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    pub ids: Vec<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

pub async fn cancel(
    state: web::Data<AppState>,
    admin: AdminAuth,
    path: web::Path<String>,
    body: JsonBody<CancelBody>,
) -> Result<HttpResponse, ApiError> {
    let tenant = existing_tenant(&state, &path).await?;
    super::bounded_ids(&body.value.ids)?;
    // All or nothing, with the audit entry in the same transaction.
    let audit =
        AuditEntry::new(&admin.actor, "POST", format!("tenants/{}/callbacks/cancel", tenant.name), Some(&body.raw));
    let ids = &body.value.ids;
    let outcomes = crate::ops::lifecycle::cancel_many(&state, &tenant, ids, &audit).await?;
    let (mut cancelled, mut not_found, mut already) = (Vec::new(), Vec::new(), Vec::new());
    for (id, outcome) in ids.iter().zip(outcomes) {
        match outcome {
            CancelOutcome::Cancelled(_) => cancelled.push(id.clone()),
            CancelOutcome::AlreadyCompleted => already.push(id.clone()),
            CancelOutcome::NotFound => not_found.push(id.clone()),
        }
    }
    Ok(envelope::ok(json!({ "cancelled": cancelled, "notFound": not_found, "alreadyCompleted": already })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedriveBody {
    #[serde(default)]
    pub ids: Option<Vec<String>>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub since: Option<String>,
}

pub async fn redrive(
    state: web::Data<AppState>,
    admin: AdminAuth,
    path: web::Path<String>,
    body: JsonBody<RedriveBody>,
) -> Result<HttpResponse, ApiError> {
    let tenant = existing_tenant(&state, &path).await?;
    let b = &body.value;
    let ids = match (&b.ids, &b.reason) {
        (Some(ids), None) => super::bounded_ids(ids)?.to_vec(),
        (None, Some(text)) if text == "SUBMIT_FAILED" || text == "FAIL_TIMEOUT_TTL" => {
            let reason = CompletionReason::parse(text);
            let since = match &b.since {
                Some(t) => parse_instant("since", t).map_err(|p| ApiError::field("since", p))?,
                None => Moment::from_ms(0),
            };
            state.store.list_completed_with_reason(&tenant.id, &reason, since, MAX_IDS as i64).await?
        }
        (None, Some(_)) => return Err(ApiError::field("reason", "must be SUBMIT_FAILED or FAIL_TIMEOUT_TTL")),
        _ => return Err(ApiError::field("ids", "send either ids or reason (with an optional since)")),
    };
    // All or nothing, with the audit entry in the same transaction.
    let audit =
        AuditEntry::new(&admin.actor, "POST", format!("tenants/{}/callbacks/redrive", tenant.name), Some(&body.raw));
    let outcomes = crate::ops::lifecycle::redrive(&state, &tenant, &ids, &audit).await?;
    let (mut requeued, mut not_found, mut not_eligible) = (Vec::new(), Vec::new(), Vec::new());
    for (id, outcome) in ids.into_iter().zip(outcomes) {
        match outcome {
            RedriveOutcome::Requeued => requeued.push(id),
            RedriveOutcome::NotEligible => not_eligible.push(id),
            RedriveOutcome::NotFound => not_found.push(id),
        }
    }
    if !requeued.is_empty() {
        state.handoff_wake.notify_one();
    }
    Ok(envelope::ok(json!({ "requeued": requeued, "notFound": not_found, "notEligible": not_eligible })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchBody {
    pub paused: bool,
}

pub async fn dispatch(
    state: web::Data<AppState>,
    admin: AdminAuth,
    path: web::Path<(String, String)>,
    body: JsonBody<DispatchBody>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_name, service) = path.into_inner();
    let tenant = existing_tenant(&state, &tenant_name).await?;
    let audit = AuditEntry::new(
        &admin.actor,
        "PUT",
        format!("tenants/{tenant_name}/services/{service}/dispatch"),
        Some(&body.raw),
    );
    crate::ops::configuration::pause_handoffs(&state, &tenant, &service, body.value.paused, &audit).await?;
    Ok(envelope::ok(json!({ "name": service, "paused": body.value.paused })))
}

pub async fn watermarks(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = existing_tenant(&state, &path).await?;
    let counts = state.store.count_active_by_service(&tenant.id).await?;
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let services: Map<String, Value> = counts.into_iter().map(|(s, n)| (s, Value::from(n))).collect();
    Ok(envelope::ok(json!({ "services": services, "total": total })))
}
