//! Public callbacks API (`/engagement/v3/callbacks/...`): create, retrieve, cancel, reschedule, list.
//! An edge: parse the wire shape, call one operation (`ops::booking`, `ops::lifecycle`), render.

use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::domain::callback::Actor;
use crate::error::{ApiError, FieldProblem};
use crate::http::callback_views::{list_page, parse_list_query, view, CallbackPage, CallbackView};
use crate::http::clean_input::clean_user_data;
use crate::http::create_request::{validate_create, CreateCallbackParms};
use crate::http::envelope;
use crate::http::extractors::{ApiKeyAuth, JsonBody};
use crate::ops::booking::{self, Caller, Created, Idempotency};
use crate::ops::{lifecycle, AppState};
use crate::telemetry::trace_context::TraceContext;
use crate::time::{format_utc, parse_instant, Moment};

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
    let key = idempotency_key(&req)?;
    let idempotency =
        key.map(|key| Idempotency { key, body_digest: hex::encode(Sha256::digest(body.raw.to_string().as_bytes())) });
    let request = validate_create(body.value);
    let deadline = crate::http::extractors::RequestDeadline::of(&req);
    let trace = req.extensions().get::<TraceContext>().copied();
    let caller = Caller { tenant: auth.tenant, scope: auth.scope, client: auth.client, deadline, trace };
    match booking::create(&state, caller, request, idempotency).await? {
        Created::Booked { body, .. } => Ok(HttpResponse::Ok().json(body)),
        Created::Replayed { status, body } => {
            let status = actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::OK);
            Ok(HttpResponse::build(status).content_type("application/json").body(body))
        }
    }
}

/// The dry run's answer: what create would answer now.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidateData {
    /// Whether create would book it now.
    pub bookable: bool,
    /// The number as it would be stored (E.164).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// `immediate` or `scheduled`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    #[schema(rename = "type")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_time: Option<String>,
    /// When it would be handed over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_time: Option<String>,
    /// An immediate request outside office hours, moved to the next opening.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deferred: Option<bool>,
    /// The capacity bucket it would take (its start, UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// Why create would refuse it: the reason create would answer, its message and field problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub details: Vec<FieldProblem>,
    /// Proposed open slots (keyed by time), as create's `SLOT_FULL` gives them.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub slots: Option<Value>,
}

/// Dry run (issue 27): the verdict create would give this body now, reserving and writing
/// nothing. Rate limits are not evaluated (checking one takes from its budget). A widget key's
/// dry runs count against its address's allowance, like its creates.
#[utoipa::path(post, path = "/engagement/v3/callbacks/validate", tag = "callbacks",
    request_body = CreateCallbackParms,
    responses((status = 200, description = "The verdict: bookable (with the number, type and slot) or the refusal create would answer", body = ValidateData)),
    security(("api_key" = [])))]
pub async fn validate(
    state: web::Data<AppState>,
    auth: ApiKeyAuth,
    req: HttpRequest,
    body: JsonBody<CreateCallbackParms>,
) -> Result<HttpResponse, ApiError> {
    let request = validate_create(body.value);
    let deadline = crate::http::extractors::RequestDeadline::of(&req);
    let caller = Caller { tenant: auth.tenant, scope: auth.scope, client: auth.client, deadline, trace: None };
    let data = match booking::dry_run(&state, &caller, request).await? {
        booking::Verdict::Bookable(d) => ValidateData {
            bookable: true,
            phone_number: Some(d.phone.as_str().to_string()),
            kind: Some(d.kind.as_label().to_string()),
            desired_time: Some(format_utc(d.desired_ms)),
            due_time: Some(format_utc(d.due_ms)),
            deferred: Some(d.deferred),
            slot: d.capacity.map(|c| format_utc(c.bucket_start)),
            ..ValidateData::refused(None)
        },
        booking::Verdict::Refused(e) => ValidateData::refused(Some(e)),
    };
    Ok(envelope::ok(data))
}

impl ValidateData {
    fn refused(e: Option<ApiError>) -> ValidateData {
        let (reason, message, details, slots) = match e {
            Some(e) => (Some(e.reason.as_str().to_string()), Some(e.message), e.details, e.slots),
            None => (None, None, Vec::new(), None),
        };
        ValidateData {
            bookable: false,
            phone_number: None,
            kind: None,
            desired_time: None,
            due_time: None,
            deferred: None,
            slot: None,
            reason,
            message,
            details,
            slots,
        }
    }
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

fn required_id(id: Option<String>) -> Result<String, ApiError> {
    id.filter(|s| !s.is_empty()).ok_or_else(|| ApiError::field("id", "is required"))
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
    let lifecycle::Retrieved { record, history, waiting } = lifecycle::retrieve(&state, &auth.tenant, &id).await?;
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
    crate::telemetry::request_context::record_callback_id(&id);
    lifecycle::cancel(&state, &auth.tenant, &id).await?;
    Ok(envelope::ok(IdData { id }))
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
    crate::telemetry::request_context::record_callback_id(&id);
    let record = lifecycle::reschedule(&state, &auth.tenant, &id, desired).await?;
    Ok(envelope::ok(RescheduleData { id, desired_time: format_utc(record.desired_ms) }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateParms {
    pub id: Option<String>,
    /// ISO 8601 with a zone, in the future: moves the callback, under the same rules as reschedule.
    pub desired_time: Option<String>,
    /// Replaces the callback's `userData` whole (same rules as at create).
    #[schema(value_type = Option<Object>)]
    pub user_data: Option<Map<String, Value>>,
}

/// What an edit asks for, checked: a new time (epoch ms) and/or new `userData`, at least one.
pub struct CheckedEdit {
    pub desired: Option<Moment>,
    pub user_data: Option<Map<String, Value>>,
}

/// Check an edit's fields (`callbacks/update`, the admin `PATCH callbacks/{id}`); `problems`
/// may already hold the caller's own (a missing id).
pub fn check_edit(
    desired_time: Option<String>,
    user_data: Option<Map<String, Value>>,
    mut problems: Vec<FieldProblem>,
) -> Result<CheckedEdit, ApiError> {
    if desired_time.is_none() && user_data.is_none() {
        problems.push(FieldProblem::new("desiredTime", "send desiredTime, userData or both"));
    }
    let desired = desired_time.and_then(|t| {
        parse_instant("desiredTime", &t).map_err(|p| problems.push(FieldProblem::new("desiredTime", p))).ok()
    });
    let user_data = user_data.map(|data| clean_user_data(data, &mut problems));
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    Ok(CheckedEdit { desired, user_data })
}

/// Edit a `SCHEDULED` callback's `userData` and/or `desiredTime` (extension, issue 27: GES's UI
/// edits callbacks). The same operation as reschedule and the admin API's `PATCH callbacks/{id}`.
#[utoipa::path(post, path = "/engagement/v3/callbacks/update", tag = "callbacks", request_body = UpdateParms,
    responses((status = 200, body = CallbackView),
        (status = 400, description = "NOT_RESCHEDULABLE, SLOT_FULL (with data.slots), a time or userData error"),
        (status = 404, description = "Unknown id")),
    security(("api_key" = [])))]
pub async fn update(
    state: web::Data<AppState>,
    auth: ApiKeyAuth,
    body: JsonBody<UpdateParms>,
) -> Result<HttpResponse, ApiError> {
    let UpdateParms { id, desired_time, user_data } = body.value;
    let mut problems = Vec::new();
    if id.as_deref().is_none_or(str::is_empty) {
        problems.push(FieldProblem::new("id", "is required"));
    }
    let edit = check_edit(desired_time, user_data, problems)?;
    let id = id.unwrap_or_default();
    crate::telemetry::request_context::record_callback_id(&id);
    let record = lifecycle::edit(&state, &auth.tenant, &id, edit.desired, edit.user_data, Actor::Api, None).await?;
    Ok(envelope::ok(view(record, None)))
}

/// List callbacks (extension): filters, ordered by (desiredTime, id), with a cursor.
#[utoipa::path(get, path = "/engagement/v3/callbacks", tag = "callbacks",
    params(
        ("serviceName" = Option<String>, Query), ("phoneNumber" = Option<String>, Query),
        ("phoneEndsWith" = Option<String>, Query, description = "The number's last 2-15 digits"),
        ("state" = Option<Vec<String>>, Query, description = "Repeatable; !COMPLETED = every other state"),
        ("from" = Option<String>, Query), ("to" = Option<String>, Query),
        ("limit" = Option<i64>, Query, description = "1-500, default 100"), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = CallbackPage), (status = 403, description = "FORBIDDEN_SCOPE: a widget key may not list callbacks")),
    security(("api_key" = [])))]
pub async fn list(state: web::Data<AppState>, auth: ApiKeyAuth, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    auth.may_list_callbacks()?;
    let filter = parse_list_query(req.query_string())?;
    Ok(envelope::ok(list_page(&state, &auth.tenant, filter).await?))
}
