//! Public callbacks API (`/engagement/v3/callbacks/...`): create, retrieve, cancel, reschedule, list.
//! Handlers are thin: parse the wire shape, ask `domain` to decide, ask `store` to persist.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::coord::recent_loads::RecentLoads;
use crate::coord::throttle::ThrottleOutcome;
use crate::domain::booking::{self, CreateRequest};
use crate::domain::callback::{Actor, State};
use crate::domain::capacity;
use crate::domain::throttle::{self, CounterKind, CounterSpec};
use crate::domain::time::{format_utc, now_ms, parse_instant};
use crate::error::{ApiError, FieldProblem, Reason};
use crate::http::envelope;
use crate::http::extractors::{ApiKeyAuth, JsonBody};
use crate::ops::service_context::{self, ServiceContext};
use crate::ops::AppState;
use crate::store::{
    Booking, BookingGuards, CallbackFilter, CallbackRecord, CancelOutcome, HistoryEntry, IdempotencyBegin,
    IdempotencyResult, InsertOutcome, NewCallback, RescheduleOutcome, Tenant,
};
use crate::telemetry::catalogue::{CALLBACKS_CANCELLED, CALLBACKS_CREATED, CALLBACKS_REJECTED, CALLBACKS_RESCHEDULED};

/// `CreateCallbackParms` as GES v3 names it. Unknown fields are ignored; `null` means absent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateCallbackParms {
    /// Required.
    pub service_name: Option<String>,
    /// Required. Normalised to E.164.
    pub phone_number: Option<String>,
    /// ISO 8601 with a zone. Absent or not in the future: an immediate callback.
    pub desired_time: Option<String>,
    /// `ASAP` | `SCHEDULED` | `COMBINED_SCHEDULED_AND_ASAP` (reporting only). Any other value
    /// falls back to the default: `SCHEDULED` with `desiredTime`, else `ASAP`.
    pub cb_offer_type: Option<String>,
    pub language: Option<String>,
    #[serde(rename = "inboundVQ")]
    #[schema(rename = "inboundVQ")]
    pub inbound_vq: Option<String>,
    pub channel: Option<String>,
    pub cb_origination_ixn_id: Option<String>,
    #[serde(rename = "surveyRP")]
    #[schema(rename = "surveyRP")]
    pub survey_rp: Option<String>,
    pub route_point: Option<String>,
    pub offer_threshold: Option<i64>,
    /// `ON-HOURS` | `OFF-HOURS` (reporting only); any other value is not stored.
    pub offer_timing: Option<String>,
    pub priority: Option<i64>,
    /// Keys must be JavaScript identifiers (others are dropped); values string, number or bool.
    #[schema(value_type = Option<Object>)]
    pub user_data: Option<Map<String, Value>>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub push_targets: Option<Vec<Value>>,
    pub always_check_capacity: Option<bool>,
    /// Accepted and ignored.
    pub captcha_token: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct IdParms {
    /// The callback id.
    pub id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RescheduleParms {
    pub id: Option<String>,
    /// ISO 8601 with a zone, in the future.
    pub desired_time: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct IdData {
    pub id: String,
}

/// A callback as `retrieve` and `list` return it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallbackView {
    pub id: String,
    pub service_name: String,
    pub desired_time: String,
    pub callback_state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_reason: Option<String>,
    pub phone_number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position_in_queue: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_wait_time: Option<i64>,
    pub created_time: String,
    pub updated_time: String,
    #[schema(value_type = Object)]
    pub user_data: Value,
    /// Stored reporting fields (`language`, `channel`, `cbOfferType`, ...).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub reporting: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryView>>,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryView {
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub time: String,
    /// `api`, `admin`, `monitor` or `platform`.
    pub actor: String,
    /// Extension: why, where state and reason do not say ("service deleted").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallbackPage {
    pub items: Vec<CallbackView>,
    pub next_cursor: Option<String>,
}

const OFFER_TYPES: [&str; 3] = ["ASAP", "SCHEDULED", "COMBINED_SCHEDULED_AND_ASAP"];
const USER_DATA_MAX_KEYS: usize = 64;
const USER_DATA_MAX_BYTES: usize = 16 * 1024;
const IDEMPOTENCY_KEY_MAX: usize = 128;

/// Book a callback.
#[utoipa::path(post, path = "/engagement/v3/callbacks/create", tag = "callbacks",
    request_body = CreateCallbackParms,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first 2xx/400 answer for 24 h")),
    responses(
        (status = 200, description = "Booked; data.id is the callback id", body = IdData),
        (status = 400, description = "Validation, phone, time or service error"),
        (status = 401, description = "Missing or unknown API key"),
        (status = 409, description = "Same Idempotency-Key in progress"),
        (status = 422, description = "Same Idempotency-Key, different body"),
        (status = 429, description = "Slot full or throttled; data.slots proposes times"),
        (status = 503, description = "Database unavailable or queue full"),
    ),
    security(("api_key" = [])))]
pub async fn create(
    state: web::Data<AppState>,
    auth: ApiKeyAuth,
    req: HttpRequest,
    body: JsonBody<CreateCallbackParms>,
) -> Result<HttpResponse, ApiError> {
    let idempotency_key = idempotency_key(&req)?;
    let tenant = &auth.tenant;
    let Some(key) = idempotency_key else {
        let (response, _) = book(&state, tenant, body.value, None).await;
        return response;
    };
    let hash = hex::encode(Sha256::digest(body.raw.to_string().as_bytes()));
    match state.store.begin_idempotent(&tenant.id, &key, &hash, now_ms()).await? {
        IdempotencyBegin::Fresh => {}
        IdempotencyBegin::Replay { status, body } => {
            let status = actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::OK);
            return Ok(HttpResponse::build(status).content_type("application/json").body(body));
        }
        IdempotencyBegin::DifferentBody => {
            return Err(ApiError::new(
                Reason::IdempotencyKeyReused,
                "this Idempotency-Key was used with a different body",
            ))
        }
        IdempotencyBegin::InProgress => {
            return Err(ApiError::new(
                Reason::IdempotencyInProgress,
                "a request with this Idempotency-Key is still being processed",
            )
            .with_retry_after(1))
        }
    }
    let (response, stored_with_booking) = book(&state, tenant, body.value, Some(&key)).await;
    if !stored_with_booking {
        let remembered = match &response {
            Err(e) if e.status() == actix_web::http::StatusCode::BAD_REQUEST => {
                let result = IdempotencyResult {
                    tenant_id: tenant.id.clone(),
                    key: key.clone(),
                    status: 400,
                    body: e.body(&crate::http::corr_id::current()).to_string(),
                };
                state.store.finish_idempotent(&result).await
            }
            // 429 and 5xx are not remembered, so a retry can succeed.
            _ => state.store.release_idempotent(&tenant.id, &key).await,
        };
        if let Err(e) = remembered {
            tracing::warn!(error = %e, "could not update the idempotency record");
        }
    }
    response
}

fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else { return Ok(None) };
    match value.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= IDEMPOTENCY_KEY_MAX => {
            crate::http::clean_input::check_text("Idempotency-Key", k)?;
            Ok(Some(k.to_string()))
        }
        _ => Err(ApiError::field("Idempotency-Key", "must be 1-128 visible ASCII characters")),
    }
}

/// The booking path (domain.md § Booking, steps 1–6). Returns the answer and whether the
/// idempotency record was written together with the booking.
async fn book(
    state: &AppState,
    tenant: &Tenant,
    parms: CreateCallbackParms,
    idempotency_key: Option<&str>,
) -> (Result<HttpResponse, ApiError>, bool) {
    let mut service_label = "unknown".to_string();
    let result = book_inner(state, tenant, parms, idempotency_key, &mut service_label).await;
    match result {
        Ok((response, stored)) => (Ok(response), stored),
        Err(e) => {
            metrics::counter!(CALLBACKS_REJECTED, "tenant" => tenant.name.clone(), "service" => service_label, "reason" => e.reason.as_str())
                .increment(1);
            tracing::debug!(reason = e.reason.as_str(), "booking refused");
            (Err(e), false)
        }
    }
}

async fn book_inner(
    state: &AppState,
    tenant: &Tenant,
    parms: CreateCallbackParms,
    idempotency_key: Option<&str>,
    service_label: &mut String,
) -> Result<(HttpResponse, bool), ApiError> {
    let request = validate_create(parms)?;
    let service = service_context::load(state, tenant, &request.service_name).await?;
    *service_label = service.name().to_string();
    tracing::Span::current().record("service", service.name());
    let rules = service.rules();
    let config = &service.record.config;
    let now = now_ms();
    let decision = match booking::decide(&request, &rules, now) {
        Ok(d) => d,
        Err(e) => return Err(proposals(e, state, tenant, &service, request.desired_ms.unwrap_or(now), now).await),
    };
    tracing::trace!(stage = "validated", kind = decision.kind.as_label(), phone = %decision.phone, "request validated");

    // Step 4: throttles, reserved all or none. In-queue checking is decided with the insert,
    // where it also sees the same batch's earlier bookings.
    let phone = decision.phone.as_str();
    let in_queue_limit = throttle::in_queue_limit(config.in_queue_checking);
    let counters = throttle::counters(&tenant.id, service.name(), phone, config);
    let reservation = match state.throttles.reserve(&counters).await {
        ThrottleOutcome::Admitted(r) => r,
        ThrottleOutcome::Refused { index, retry_after_ms } => {
            return Err(throttled(&counters[index], tenant, retry_after_ms));
        }
    };
    tracing::trace!(stage = "throttle", "throttles passed");

    // Steps 5 and 6: capacity, guards and the insert in one transaction (shared with the
    // bookings that arrived meanwhile: `store::writer`).
    let id = state.store.faults().take_booking_id_collision(phone).unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let body = envelope::ok_body(IdData { id: id.clone() });
    let replay = idempotency_key.map(|key| IdempotencyResult {
        tenant_id: tenant.id.clone(),
        key: key.to_string(),
        status: 200,
        body: body.to_string(),
    });
    let active_on_insert = decision.initial_state.is_active();
    let guards = BookingGuards {
        max_unfinished_for_number: in_queue_limit,
        max_active: active_on_insert.then_some(i64::from(config.max_queued)),
        bucket: decision.capacity.map(|c| (c.bucket_start, c.capacity)),
    };
    let new = NewCallback {
        id: id.clone(),
        tenant_id: tenant.id.clone(),
        service_name: service.name().to_string(),
        state: decision.initial_state,
        phone: phone.to_string(),
        desired_ms: decision.desired_ms,
        due_ms: decision.due_ms,
        priority: decision.priority,
        corr_id: crate::http::corr_id::current(),
        claimed_by: decision.claimed.then(|| state.replica_id.clone()),
        details: request.details,
        now_ms: now,
        ttls: crate::store::Ttls::of(config),
    };
    let (booked_with_replay, has_bucket) = (replay.is_some(), guards.bucket.is_some());
    let outcome = state.bookings.book(Booking { new, guards, replay }).await;
    let refusal = match outcome {
        Ok(InsertOutcome::Inserted) => None,
        Ok(InsertOutcome::AlreadyQueued) => Some(already_queued()),
        Ok(InsertOutcome::QueueFull) => {
            Some(ApiError::new(Reason::QueueFull, "the service has as many active callbacks as it can hold; try later"))
        }
        Ok(InsertOutcome::SlotFull) => {
            let full = ApiError::new(Reason::SlotFull, "that time slot is full; see data.slots for open times");
            Some(proposals(full, state, tenant, &service, decision.desired_ms, now).await)
        }
        Err(e) => Some(ApiError::from(e)),
    };
    if let Some(refusal) = refusal {
        // Only accepted bookings consume throttle budget.
        state.throttles.release(&reservation).await;
        return Err(refusal);
    }
    if has_bucket {
        tracing::trace!(stage = "capacity", "capacity reserved");
    }
    if decision.claimed {
        state.dispatch_wake.notify_one();
    }
    tracing::Span::current().record("callbackId", id.as_str());
    tracing::trace!(stage = "stored", callbackId = %id, state = decision.initial_state.as_str(), "callback stored");
    metrics::counter!(CALLBACKS_CREATED, "tenant" => tenant.name.clone(), "service" => service.name().to_string(), "type" => decision.kind.as_label())
        .increment(1);
    tracing::info!(callbackId = %id, kind = decision.kind.as_label(), deferred = decision.deferred, phone = %decision.phone, "callback booked");
    Ok((HttpResponse::Ok().json(body), booked_with_replay))
}

fn already_queued() -> ApiError {
    ApiError::new(Reason::AlreadyQueued, "this number already has callbacks waiting in this service")
        .with_slots(json!({}))
}

fn throttled(spec: &CounterSpec, tenant: &Tenant, retry_after_ms: i64) -> ApiError {
    let (alarm, message) = match spec.kind {
        CounterKind::PerNumber => {
            ("CB_ENQUEUE_LIMIT_REACHED", "this number has booked as many callbacks as the service allows for now")
        }
        CounterKind::ServiceWindow => ("CB_TTL_LIMIT_REACHED", "the service is taking no more bookings for now"),
    };
    metrics::counter!(alarm, "tenant" => tenant.name.clone()).increment(1);
    let seconds = (retry_after_ms.max(1000) as u64).div_ceil(1000);
    ApiError::new(Reason::Throttled, format!("{message}; retry in {seconds} s"))
        .with_retry_after(seconds)
        .with_slots(json!({}))
}

/// Attach `data.slots` to a `SLOT_FULL`: up to 10 open buckets with room nearest `desired`.
/// Reserved places per bucket start of one service in a window, as proposals read them. When a
/// popular slot fills, the booking writer refuses a whole batch at once (hundreds of requests in
/// one commit) and each refusal proposes other slots from the same reservations: one read serves
/// every refusal of a window for 250 ms. Proposals are hints (a slot may fill before the client
/// books it), so a quarter-second-old view is as good.
pub type ReservationReads = RecentLoads<(String, String, i64, i64), Arc<HashMap<i64, u32>>>;

pub fn reservation_reads() -> ReservationReads {
    RecentLoads::new(std::time::Duration::from_millis(250), 1_000)
}

pub async fn proposals(
    e: ApiError,
    state: &AppState,
    tenant: &Tenant,
    service: &ServiceContext,
    desired: i64,
    now: i64,
) -> ApiError {
    if e.reason != Reason::SlotFull {
        return e;
    }
    let rules = service.rules();
    let (earliest, latest) = rules.bookable_range(now);
    let window = 8 * 86_400_000;
    let (from, to) = (desired - window, desired + window);
    let key = (tenant.id.clone(), service.name().to_string(), from, to);
    let read = || async { state.store.reserved_counts(&tenant.id, service.name(), from, to).await.map(Arc::new) };
    let reserved = match state.reservations.get_or_load(key, 0, read).await {
        Ok(r) => r,
        Err(err) => return ApiError::from(err),
    };
    let slots = capacity::propose(&rules.grid(), rules.hours, desired, earliest, latest, &reserved, 10);
    let map: Map<String, Value> = slots.into_iter().map(|(t, left)| (format_utc(t), Value::from(left))).collect();
    e.with_slots(Value::Object(map))
}

/// Field rules of `CreateCallbackParms` (api.md), every problem listed at once.
fn validate_create(p: CreateCallbackParms) -> Result<CreateRequest, ApiError> {
    let mut problems = Vec::new();
    let service_name = p.service_name.filter(|s| !s.trim().is_empty());
    if service_name.is_none() {
        problems.push(FieldProblem::new("serviceName", "is required"));
    }
    let phone = p.phone_number.filter(|s| !s.trim().is_empty());
    if phone.is_none() {
        problems.push(FieldProblem::new("phoneNumber", "is required"));
    }
    let desired_ms = match p.desired_time.as_deref() {
        Some(t) => match parse_instant("desiredTime", t) {
            Ok(ms) => Some(ms),
            Err(problem) => {
                problems.push(FieldProblem::new("desiredTime", problem));
                None
            }
        },
        None => None,
    };
    // Reporting only, and lenient as GES is: Genesys' generated client sends the field's
    // description text as its default, so any other value falls back to the default rule.
    let default_offer = if p.desired_time.is_some() { "SCHEDULED" } else { "ASAP" };
    let offer_type = match p.cb_offer_type {
        Some(t) if OFFER_TYPES.contains(&t.as_str()) => t,
        Some(_) => {
            tracing::debug!(default = default_offer, "unrecognised cbOfferType; using the default");
            default_offer.to_string()
        }
        None => default_offer.to_string(),
    };
    // Reporting only too: an unrecognised value is left out rather than refusing the booking.
    let offer_timing = p.offer_timing.filter(|t| {
        let known = t == "ON-HOURS" || t == "OFF-HOURS";
        if !known {
            tracing::debug!("unrecognised offerTiming; not stored");
        }
        known
    });
    let user_data = match p.user_data {
        Some(data) => clean_user_data(data, &mut problems),
        None => Map::new(),
    };
    if let Some(targets) = &p.push_targets {
        for (i, t) in targets.iter().enumerate() {
            let ok = t.get("channel").and_then(Value::as_str) == Some("FCM")
                && t.get("target").is_some_and(Value::is_string);
            if !ok {
                problems.push(FieldProblem::new(
                    format!("pushTargets[{i}]"),
                    "must be {\"channel\": \"FCM\", \"target\": \"...\"}",
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let mut details = Map::new();
    details.insert("cbOfferType".into(), Value::from(offer_type));
    details.insert("language".into(), Value::from(p.language.unwrap_or_else(|| "en-US".to_string())));
    let optional = [
        ("inboundVQ", p.inbound_vq.map(Value::from)),
        ("channel", p.channel.map(Value::from)),
        ("cbOriginationIxnId", p.cb_origination_ixn_id.map(Value::from)),
        ("surveyRP", p.survey_rp.map(Value::from)),
        ("routePoint", p.route_point.map(Value::from)),
        ("offerThreshold", p.offer_threshold.map(Value::from)),
        ("offerTiming", offer_timing.map(Value::from)),
        ("pushTargets", p.push_targets.map(Value::from)),
    ];
    for (name, value) in optional {
        if let Some(v) = value {
            details.insert(name.into(), v);
        }
    }
    details.insert("userData".into(), Value::Object(user_data));
    Ok(CreateRequest {
        service_name: service_name.unwrap_or_default(),
        phone_raw: phone.unwrap_or_default(),
        desired_ms,
        priority: p.priority,
        always_check_capacity: p.always_check_capacity.unwrap_or(false),
        details,
    })
}

fn is_js_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

pub(crate) fn clean_user_data(data: Map<String, Value>, problems: &mut Vec<FieldProblem>) -> Map<String, Value> {
    let mut kept = Map::new();
    for (key, value) in data {
        if !is_js_identifier(&key) || value.is_null() {
            continue;
        }
        match value {
            Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                kept.insert(key, value);
            }
            _ => problems.push(FieldProblem::new(format!("userData.{key}"), "must be a string, number or boolean")),
        }
    }
    if kept.len() > USER_DATA_MAX_KEYS {
        problems.push(FieldProblem::new("userData", format!("must have at most {USER_DATA_MAX_KEYS} keys")));
    }
    if Value::Object(kept.clone()).to_string().len() > USER_DATA_MAX_BYTES {
        problems.push(FieldProblem::new("userData", "must be at most 16 KiB as JSON"));
    }
    kept
}

fn required_id(id: Option<String>) -> Result<String, ApiError> {
    id.filter(|s| !s.is_empty()).ok_or_else(|| ApiError::field("id", "is required"))
}

async fn find(state: &AppState, tenant: &Tenant, id: &str) -> Result<CallbackRecord, ApiError> {
    state.store.get_callback(&tenant.id, id).await?.ok_or_else(|| ApiError::not_found("callback"))
}

pub fn view(record: CallbackRecord, history: Option<Vec<HistoryEntry>>) -> CallbackView {
    let mut reporting = record.details;
    let user_data = reporting.remove("userData").unwrap_or_else(|| json!({}));
    CallbackView {
        id: record.id,
        service_name: record.service_name,
        desired_time: format_utc(record.desired_ms),
        callback_state: record.state.as_str().to_string(),
        callback_reason: if record.state == State::Completed { record.reason } else { None },
        phone_number: record.phone,
        position_in_queue: None,
        estimated_wait_time: None,
        created_time: format_utc(record.created_ms),
        updated_time: format_utc(record.updated_ms),
        user_data,
        reporting,
        history: history.map(|h| {
            h.into_iter()
                .map(|e| HistoryView {
                    state: e.state.as_str().to_string(),
                    reason: e.reason,
                    time: format_utc(e.time_ms),
                    actor: e.actor,
                    note: e.note,
                })
                .collect()
        }),
    }
}

/// Read one callback with its history.
#[utoipa::path(post, path = "/engagement/v3/callbacks/retrieve", tag = "callbacks", request_body = IdParms,
    responses((status = 200, body = CallbackView), (status = 404, description = "Unknown id, or another tenant's")),
    security(("api_key" = [])))]
pub async fn retrieve(
    state: web::Data<AppState>,
    auth: ApiKeyAuth,
    body: JsonBody<IdParms>,
) -> Result<HttpResponse, ApiError> {
    let id = required_id(body.value.id)?;
    let record = find(&state, &auth.tenant, &id).await?;
    let history = state.store.callback_history(&id).await?;
    let waiting = match record.state.is_active() {
        true => {
            let vq = match state.store.get_service(&auth.tenant.id, &record.service_name).await? {
                Some(s) => s.config.virtual_queue_name(&record.service_name).to_string(),
                None => record.service_name.clone(),
            };
            Some(crate::http::queues::position_and_wait(&state, &auth.tenant, &record, &vq).await?)
        }
        false => None,
    };
    let mut shown = view(record, Some(history));
    if let Some((position, wait)) = waiting {
        shown.position_in_queue = Some(position);
        shown.estimated_wait_time = Some(wait);
    }
    Ok(envelope::ok(shown))
}

/// Cancel a callback that has not completed.
#[utoipa::path(post, path = "/engagement/v3/callbacks/cancel", tag = "callbacks", request_body = IdParms,
    responses((status = 200, body = IdData), (status = 400, description = "ALREADY_COMPLETED"), (status = 404, description = "Unknown id")),
    security(("api_key" = [])))]
pub async fn cancel(
    state: web::Data<AppState>,
    auth: ApiKeyAuth,
    body: JsonBody<IdParms>,
) -> Result<HttpResponse, ApiError> {
    let id = required_id(body.value.id)?;
    tracing::Span::current().record("callbackId", id.as_str());
    match state.store.cancel_callback(&auth.tenant.id, &id, Actor::Api, now_ms()).await? {
        CancelOutcome::Cancelled(record) => {
            record_cancelled(&auth.tenant, &record.service_name);
            tracing::info!(callbackId = %id, stage = "state_changed", "callback cancelled");
            Ok(envelope::ok(IdData { id }))
        }
        CancelOutcome::AlreadyCompleted => {
            Err(ApiError::new(Reason::AlreadyCompleted, "the callback has already completed"))
        }
        CancelOutcome::NotFound => Err(ApiError::not_found("callback")),
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RescheduleData {
    pub id: String,
    pub desired_time: String,
}

/// Move a `SCHEDULED` callback to a new time (extension; GES v3 lacks it).
#[utoipa::path(post, path = "/engagement/v3/callbacks/reschedule", tag = "callbacks", request_body = RescheduleParms,
    responses((status = 200, body = RescheduleData), (status = 400, description = "NOT_RESCHEDULABLE or a time error"), (status = 404, description = "Unknown id")),
    security(("api_key" = [])))]
pub async fn reschedule(
    state: web::Data<AppState>,
    auth: ApiKeyAuth,
    body: JsonBody<RescheduleParms>,
) -> Result<HttpResponse, ApiError> {
    let RescheduleParms { id, desired_time } = body.value;
    let mut problems = Vec::new();
    if id.as_deref().is_none_or(str::is_empty) {
        problems.push(FieldProblem::new("id", "is required"));
    }
    let desired = match desired_time.as_deref() {
        None => {
            problems.push(FieldProblem::new("desiredTime", "is required"));
            None
        }
        Some(t) => parse_instant("desiredTime", t).map_err(|p| problems.push(FieldProblem::new("desiredTime", p))).ok(),
    };
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let (id, desired) = (id.unwrap_or_default(), desired.unwrap_or_default());
    tracing::Span::current().record("callbackId", id.as_str());
    let current = find(&state, &auth.tenant, &id).await?;
    if current.state != State::Scheduled {
        return Err(not_reschedulable(current.state));
    }
    let now = now_ms();
    if desired <= now {
        return Err(ApiError::new(Reason::TimeOutOfRange, "desiredTime must be in the future"));
    }
    let service = service_context::load(&state, &auth.tenant, &current.service_name).await?;
    let (due, claim) = match booking::scheduled_slot(desired, &service.rules(), now) {
        Ok(slot) => slot,
        Err(e) => return Err(proposals(e, &state, &auth.tenant, &service, desired, now).await),
    };
    let bucket = claim.map(|c| (c.bucket_start, c.capacity));
    match state.store.reschedule_callback(&auth.tenant.id, &id, desired, due, bucket, now).await? {
        RescheduleOutcome::Rescheduled(record) => {
            metrics::counter!(CALLBACKS_RESCHEDULED, "tenant" => auth.tenant.name.clone(), "service" => record.service_name.clone())
                .increment(1);
            Ok(envelope::ok(RescheduleData { id, desired_time: format_utc(record.desired_ms) }))
        }
        RescheduleOutcome::SlotFull => {
            let full = ApiError::new(Reason::SlotFull, "that time slot is full; see data.slots for open times");
            Err(proposals(full, &state, &auth.tenant, &service, desired, now).await)
        }
        RescheduleOutcome::NotReschedulable(s) => Err(not_reschedulable(s)),
        RescheduleOutcome::NotFound => Err(ApiError::not_found("callback")),
    }
}

/// A cancel completes the callback: both counters move.
pub fn record_cancelled(tenant: &Tenant, service: &str) {
    metrics::counter!(CALLBACKS_CANCELLED, "tenant" => tenant.name.clone(), "service" => service.to_string())
        .increment(1);
    metrics::counter!(crate::telemetry::catalogue::CALLBACKS_COMPLETED, "tenant" => tenant.name.clone(), "service" => service.to_string(), "reason" => crate::domain::callback::REASON_CANCELLED)
        .increment(1);
}

fn not_reschedulable(state: State) -> ApiError {
    ApiError::new(Reason::NotReschedulable, format!("only SCHEDULED callbacks can be rescheduled; this one is {state}"))
}

/// List callbacks (extension): filters, ordered by (desiredTime, id), with a cursor.
#[utoipa::path(get, path = "/engagement/v3/callbacks", tag = "callbacks",
    params(
        ("serviceName" = Option<String>, Query), ("phoneNumber" = Option<String>, Query),
        ("state" = Option<Vec<String>>, Query, description = "Repeatable; !COMPLETED = every other state"),
        ("from" = Option<String>, Query), ("to" = Option<String>, Query),
        ("limit" = Option<i64>, Query, description = "1-500, default 100"), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = CallbackPage)),
    security(("api_key" = [])))]
pub async fn list(state: web::Data<AppState>, auth: ApiKeyAuth, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let filter = parse_list_query(req.query_string())?;
    Ok(envelope::ok(list_page(&state, &auth.tenant, filter).await?))
}

pub async fn list_page(state: &AppState, tenant: &Tenant, filter: CallbackFilter) -> Result<CallbackPage, ApiError> {
    let (records, next_cursor) = page_of(state, tenant, filter).await?;
    Ok(CallbackPage { items: records.into_iter().map(|r| view(r, None)).collect(), next_cursor })
}

/// One page of records and the cursor of the next (one extra row tells whether there is one).
pub async fn page_of(
    state: &AppState,
    tenant: &Tenant,
    filter: CallbackFilter,
) -> Result<(Vec<CallbackRecord>, Option<String>), ApiError> {
    let limit = filter.limit;
    let mut records = state.store.list_callbacks(&tenant.id, &CallbackFilter { limit: limit + 1, ..filter }).await?;
    let next_cursor = if records.len() as i64 > limit {
        records.truncate(limit as usize);
        records.last().map(|r| encode_cursor(r.desired_ms, &r.id))
    } else {
        None
    };
    Ok((records, next_cursor))
}

pub fn parse_list_query(query: &str) -> Result<CallbackFilter, ApiError> {
    let mut filter = CallbackFilter { limit: 100, ..Default::default() };
    let mut problems = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "serviceName" => filter.service_name = Some(value.into_owned()),
            "phoneNumber" => match booking::parse_phone(&value, &Default::default()) {
                Ok(n) => filter.phone = Some(n.as_str().to_string()),
                Err(_) => problems.push(FieldProblem::new("phoneNumber", "is not a phone number")),
            },
            "state" => match value.strip_prefix('!') {
                Some(excluded) => match excluded.parse::<State>() {
                    Ok(x) => filter.states.extend(State::ALL.into_iter().filter(|s| *s != x)),
                    Err(p) => problems.push(FieldProblem::new("state", p)),
                },
                None => match value.parse::<State>() {
                    Ok(s) => filter.states.push(s),
                    Err(p) => problems.push(FieldProblem::new("state", p)),
                },
            },
            "from" => match parse_instant("from", &value) {
                Ok(ms) => filter.from_ms = Some(ms),
                Err(p) => problems.push(FieldProblem::new("from", p)),
            },
            "to" => match parse_instant("to", &value) {
                Ok(ms) => filter.to_ms = Some(ms),
                Err(p) => problems.push(FieldProblem::new("to", p)),
            },
            "limit" => match value.parse::<i64>() {
                Ok(n) if (1..=500).contains(&n) => filter.limit = n,
                _ => problems.push(FieldProblem::new("limit", "must be a whole number from 1 to 500")),
            },
            "cursor" => match decode_cursor(&value) {
                Some(after) => filter.after = Some(after),
                None => problems.push(FieldProblem::new("cursor", "is not a cursor this API returned")),
            },
            _ => {}
        }
    }
    filter.states.sort();
    filter.states.dedup();
    if problems.is_empty() {
        Ok(filter)
    } else {
        Err(ApiError::validation(problems))
    }
}

fn encode_cursor(desired_ms: i64, id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{desired_ms}:{id}"))
}

fn decode_cursor(text: &str) -> Option<(i64, String)> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (ms, id) = text.split_once(':')?;
    Some((ms.parse().ok()?, id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_keeps_identifiers_and_scalars_only() {
        let mut problems = Vec::new();
        let data = json!({ "ok_1": "x", "n": 2, "b": true, "bad key": "dropped", "1st": "dropped", "gone": null });
        let kept = clean_user_data(data.as_object().unwrap().clone(), &mut problems);
        assert!(problems.is_empty());
        assert_eq!(kept.len(), 3);
        let data = json!({ "nested": { "a": 1 } });
        clean_user_data(data.as_object().unwrap().clone(), &mut problems);
        assert_eq!(problems[0].field, "userData.nested");
    }

    #[test]
    fn list_query_reads_repeated_states_negation_and_cursor() {
        let f = parse_list_query("state=SCHEDULED&state=QUEUED&limit=5").unwrap();
        assert_eq!(f.states, vec![State::Scheduled, State::Queued]);
        assert_eq!(f.limit, 5);
        let f = parse_list_query("state=%21COMPLETED").unwrap();
        assert_eq!(f.states.len(), 4);
        assert!(!f.states.contains(&State::Completed));
        let c = encode_cursor(42, "abc");
        assert_eq!(parse_list_query(&format!("cursor={c}")).unwrap().after, Some((42, "abc".to_string())));
        let e = parse_list_query("limit=0&state=DONE&cursor=zz").unwrap_err();
        assert_eq!(e.details.len(), 3);
    }
}
