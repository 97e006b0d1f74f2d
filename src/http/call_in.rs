//! Click-to-call-in: the public requests API (`/engagement/v3/call-in/requests/...`) and the
//! voice platform's match (`/internal/v1/call-in/match`). An edge: parse, call `ops::call_in`,
//! render.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::domain::call_in::{normalise_caller, parse_access_code};
use crate::domain::phone::mask;
use crate::error::{ApiError, FieldProblem, Reason};
use crate::http::clean_input::clean_user_data;
use crate::http::envelope;
use crate::http::extractors::{ApiKeyAuth, InternalAuth, JsonBody};
use crate::ops::call_in::{self, CallInRequest};
use crate::ops::AppState;
use crate::store::CallInRecord;
use crate::time::Moment;

const CALLBACK_ID_MAX: usize = 128;

/// Ask for a number to call (GES v3 field names). Unknown fields are ignored; `null` means absent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateCallInParms {
    /// Required: a call-in group of this tenant.
    pub group_name: Option<String>,
    /// The number the customer will call from; required when the group matches callers.
    pub from_phone_number: Option<String>,
    /// Keys must be JavaScript identifiers (others are dropped); values string, number or bool.
    #[schema(value_type = Option<Object>)]
    pub user_data: Option<Map<String, Value>>,
    /// A callback id to associate (stored and returned).
    pub callback_service_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CallInIdParms {
    /// The call-in request id.
    pub id: Option<String>,
}

/// A call-in request. `state` and `userData` appear in retrieve, cancel and match answers.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallInView {
    pub id: String,
    /// The number to dial (E.164).
    pub to_phone_number: String,
    pub group_name: String,
    /// Epoch milliseconds.
    pub expiration_time: i64,
    /// Only when the group uses codes: the group's digit count, first digit 1–9.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_phone_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_service_id: Option<String>,
    /// `PENDING`, `MATCHED`, `EXPIRED` or `CANCELLED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub user_data: Option<Value>,
}

fn view(record: CallInRecord, with_state: bool, now: Moment) -> CallInView {
    CallInView {
        state: with_state.then(|| record.state.as_seen(record.expires_ms, now).as_str().to_string()),
        user_data: with_state.then_some(Value::Object(record.user_data)),
        id: record.id,
        to_phone_number: record.to_number,
        group_name: record.group_name,
        expiration_time: record.expires_ms.as_ms(),
        access_code: record.access_code,
        from_phone_number: record.from_number,
        callback_service_id: record.callback_id,
    }
}

/// Request a number (and access code) to call.
#[utoipa::path(post, path = "/engagement/v3/call-in/requests/create", tag = "call-in",
    request_body = CreateCallInParms,
    responses(
        (status = 200, description = "Issued: the number to dial, the access code, the expiration", body = CallInView),
        (status = 400, description = "UNKNOWN_GROUP, INVALID_PHONE_NUMBER or VALIDATION_FAILED"),
        (status = 401, description = "Missing or unknown API key"),
        (status = 503, description = "POOL_EXHAUSTED: no free number or code; or the database is unavailable"),
    ),
    security(("api_key" = [])))]
pub async fn create(
    state: web::Data<AppState>,
    auth: ApiKeyAuth,
    body: JsonBody<CreateCallInParms>,
) -> Result<HttpResponse, ApiError> {
    let tenant = &auth.tenant;
    let p = body.value;
    let mut problems = Vec::new();
    let group_name = p.group_name.filter(|g| !g.trim().is_empty());
    if group_name.is_none() {
        problems.push(FieldProblem::new("groupName", "is required"));
    }
    let user_data = match p.user_data {
        Some(data) => clean_user_data(data, &mut problems),
        None => Map::new(),
    };
    let callback_id = p.callback_service_id.filter(|c| !c.is_empty());
    if callback_id.as_ref().is_some_and(|c| c.len() > CALLBACK_ID_MAX) {
        problems.push(FieldProblem::new("callbackServiceId", format!("must be at most {CALLBACK_ID_MAX} characters")));
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let group_name = group_name.unwrap_or_default();
    let from_number = match p.from_phone_number.as_deref().filter(|f| !f.trim().is_empty()) {
        Some(raw) => Some(normalise_caller(raw).ok_or_else(|| {
            ApiError::new(
                Reason::InvalidPhoneNumber,
                format!(
                    "fromPhoneNumber {} is not a valid phone number; send it with + and the country code",
                    mask(raw)
                ),
            )
        })?),
        None => None,
    };
    let request = CallInRequest { group_name, from_number, callback_id, user_data };
    let record = call_in::create(&state, tenant, request).await?;
    let issued = record.created_ms;
    Ok(envelope::ok(view(record, false, issued)))
}

fn required_id(id: Option<String>) -> Result<String, ApiError> {
    id.filter(|s| !s.is_empty()).ok_or_else(|| ApiError::field("id", "is required"))
}

/// Read a call-in request. A pending request past its expiration reads as `EXPIRED`.
#[utoipa::path(post, path = "/engagement/v3/call-in/requests/retrieve", tag = "call-in", request_body = CallInIdParms,
    responses((status = 200, body = CallInView), (status = 404, description = "Unknown id, or another tenant's")),
    security(("api_key" = [])))]
pub async fn retrieve(
    state: web::Data<AppState>,
    auth: ApiKeyAuth,
    body: JsonBody<CallInIdParms>,
) -> Result<HttpResponse, ApiError> {
    let id = required_id(body.value.id)?;
    let record =
        state.store.get_callin(&auth.tenant.id, &id).await?.ok_or_else(|| ApiError::not_found("call-in request"))?;
    Ok(envelope::ok(view(record, true, crate::time::now())))
}

/// Cancel a pending call-in request; its number (or code) is free at once. Cancelling a
/// cancelled request again answers 200; a matched or expired one 400 `ALREADY_COMPLETED`.
#[utoipa::path(post, path = "/engagement/v3/call-in/requests/cancel", tag = "call-in", request_body = CallInIdParms,
    responses((status = 200, body = CallInView), (status = 400, description = "ALREADY_COMPLETED: matched or expired"),
        (status = 404, description = "Unknown id")),
    security(("api_key" = [])))]
pub async fn cancel(
    state: web::Data<AppState>,
    auth: ApiKeyAuth,
    body: JsonBody<CallInIdParms>,
) -> Result<HttpResponse, ApiError> {
    let id = required_id(body.value.id)?;
    let now = crate::time::now();
    let record = call_in::cancel(&state, &auth.tenant, &id, now).await?;
    Ok(envelope::ok(view(record, true, now)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchBody {
    pub to_phone_number: Option<String>,
    /// A JSON number or a string of digits.
    pub access_code: Option<Value>,
    /// The inbound caller (ANI).
    pub from_phone_number: Option<String>,
}

/// The voice platform reports an inbound call: the matching pending request becomes `MATCHED`
/// and its number (or code) is free again.
pub async fn match_inbound(
    state: web::Data<AppState>,
    _auth: InternalAuth,
    body: JsonBody<MatchBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.value;
    let mut problems = Vec::new();
    let to_number = match b.to_phone_number.as_deref().filter(|t| !t.trim().is_empty()) {
        Some(raw) => {
            let n = normalise_caller(raw);
            if n.is_none() {
                problems.push(FieldProblem::new("toPhoneNumber", "must be an E.164 number"));
            }
            n
        }
        None => {
            problems.push(FieldProblem::new("toPhoneNumber", "is required"));
            None
        }
    };
    let code = match parse_access_code(b.access_code.as_ref().unwrap_or(&Value::Null)) {
        Ok(code) => code,
        Err(problem) => {
            problems.push(FieldProblem::new("accessCode", problem));
            None
        }
    };
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let to_number = to_number.unwrap_or_default();
    // An ANI that is not a number ("anonymous") can never satisfy a caller match.
    let from_number = b.from_phone_number.as_deref().and_then(normalise_caller);
    let now = crate::time::now();
    let record = call_in::match_inbound(&state, &to_number, code, from_number.as_deref(), now).await?;
    Ok(envelope::ok(view(record, true, now)))
}
