//! `GET /engagement/v3/openapi.json`: OpenAPI 3.1 of the public API, generated from the handlers'
//! annotations, then made to tell the truth about the envelope (`envelope`): every answer is
//! `{ status, data? }`, and every status an operation can answer is documented with its body.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use serde_json::{json, Map, Value};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::Reason;
use crate::http::{availability, call_in, callback_views, callbacks, create_request, internal, platform, queues};

#[derive(OpenApi)]
#[openapi(
    info(title = "Ringback public API", description = "GES v3-compatible callback API. Every answer is an envelope `{ status: { code, message, corrId, reason?, details? }, data? }`."),
    paths(callbacks::create, callbacks::retrieve, callbacks::cancel, callbacks::reschedule, callbacks::update, callbacks::validate, callbacks::list,
        availability::availability, availability::open_for, queues::queue_status, queues::estimated_wait_time, queues::estimated_wait_time_of_queue,
        call_in::create, call_in::retrieve, call_in::cancel, platform::report_state, platform::queue_stats),
    components(schemas(
        create_request::CreateCallbackParms, callbacks::IdParms, callbacks::RescheduleParms, callbacks::UpdateParms, callbacks::ValidateData, callbacks::IdData,
        callback_views::CallbackView, callback_views::HistoryView, callback_views::CallbackPage, callbacks::RescheduleData,
        availability::SlotView, availability::AvailabilityData, queues::QueueStatusData, queues::EwtEntry,
        call_in::CreateCallInParms, call_in::CallInIdParms, call_in::CallInView,
        internal::StateBody, internal::StatsBody, platform::StateData, platform::StatsData
    )),
    modifiers(&ApiKeyScheme),
    tags((name = "callbacks", description = "Book, read, move and cancel callbacks"),
        (name = "call-in", description = "Click-to-call-in: a number (and access code) for the customer to call"),
        (name = "platform", description = "A voice platform behind a webhook: state reports and queue statistics with a platform key"))
)]
pub struct PublicApi;

struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))));
    }
}

/// The document as served (built once).
pub fn document_json() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut doc = serde_json::to_value(PublicApi::openapi()).unwrap_or_else(|_| json!({}));
        envelope(&mut doc);
        doc
    })
}

pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(document_json())
}

/// Statuses an operation can answer besides its own: every operation can be refused at the edge
/// (400 for a control character or a repeated parameter, 401 for the key) and can meet a database
/// that is down (503) or a bug (500); one with a JSON body also 413 and 415.
fn statuses_of(path: &str, method: &str) -> Vec<(u16, &'static str)> {
    let mut out = vec![
        (400, "VALIDATION_FAILED or another 400 reason (see status.reason)"),
        (401, "Missing or unknown API key, or an Origin its tenant does not allow"),
        (500, "INTERNAL: an unexpected failure (counted as UNCAUGHT_EXCEPTION)"),
        (503, "UNAVAILABLE: the database did not answer in time (Retry-After)"),
    ];
    if method == "post" {
        out.push((413, "PAYLOAD_TOO_LARGE: the body is over the limit"));
        out.push((415, "UNSUPPORTED_MEDIA_TYPE: the body is not application/json"));
        out.push((408, "REQUEST_TIMEOUT: the body did not arrive within http.request_timeout_ms"));
    }
    let by_id = ["retrieve", "cancel", "reschedule", "update"].iter().any(|op| path.ends_with(op));
    if by_id {
        out.push((404, "NOT_FOUND: unknown id, or another tenant's"));
    }
    if path.ends_with("/callbacks/create") {
        out.push((409, "IDEMPOTENCY_IN_PROGRESS: the same Idempotency-Key is still being processed"));
        out.push((422, "IDEMPOTENCY_KEY_REUSED: the same Idempotency-Key with a different body"));
    }
    if path.ends_with("/state") || path.ends_with("/stats") {
        out.push((403, "FORBIDDEN_SCOPE: a platform key only, and nothing else for one"));
    } else {
        out.push((403, "FORBIDDEN_SCOPE: a platform key may not call this"));
    }
    if path.ends_with("/state") {
        out.push((404, "NOT_FOUND: unknown id, or another tenant's"));
        out.push((409, "ILLEGAL_TRANSITION: not a legal next state for this hand-off"));
    }
    if path.ends_with("/callbacks/validate") {
        out.push((429, "THROTTLED: a widget key's client address is past its allowance (dry runs count like creates)"));
    }
    if path.ends_with("/call-in/requests/create") {
        out.push((429, "THROTTLED: the caller's or the group's limit (Retry-After)"));
    }
    if ["/callbacks/create", "/callbacks/reschedule", "/callbacks/update"].iter().any(|op| path.ends_with(op)) {
        out.push((429, "SLOT_FULL, THROTTLED or ALREADY_QUEUED; data.slots proposes open times"));
    }
    out
}

/// Wrap every success schema in the envelope and document every error status with the error
/// envelope, keeping the handlers' own descriptions.
fn envelope(doc: &mut Value) {
    let schemas = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut);
    if let Some(schemas) = schemas {
        schemas.insert("Status".into(), status_schema());
        schemas.insert("ErrorEnvelope".into(), error_envelope_schema());
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for (method, operation) in item.iter_mut() {
            add_trace_context_header(operation);
            let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else { continue };
            for (code, response) in responses.iter_mut() {
                if code.starts_with('2') {
                    wrap_success(response);
                }
            }
            for (status, description) in statuses_of(path, method) {
                let response =
                    responses.entry(status.to_string()).or_insert_with(|| json!({ "description": description }));
                response["content"] =
                    json!({ "application/json": { "schema": { "$ref": "#/components/schemas/ErrorEnvelope" } } });
            }
        }
    }
}

/// Every operation accepts a W3C `traceparent` and `tracestate` (issue 25): the caller's trace is continued, a
/// malformed or absent one starts a new trace; it never makes a request fail.
fn add_trace_context_header(operation: &mut Value) {
    let traceparent = json!({
        "name": "traceparent", "in": "header", "required": false,
        "description": "W3C Trace Context: the request continues the caller's trace (its log lines carry its `traceId`); a malformed or absent value starts a new trace. On the external listener the sampled flag is not obeyed.",
        "schema": { "type": "string", "example": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" }
    });
    let tracestate = json!({
        "name": "tracestate", "in": "header", "required": false,
        "description": "W3C Trace Context vendor data, kept unchanged with the exported span's parent; never interpreted, never makes a request fail.",
        "schema": { "type": "string", "example": "rojo=00f067aa0ba902b7" }
    });
    match operation.get_mut("parameters").and_then(Value::as_array_mut) {
        Some(parameters) => parameters.extend([traceparent, tracestate]),
        None => operation["parameters"] = json!([traceparent, tracestate]),
    }
}

fn wrap_success(response: &mut Value) {
    let data = response
        .pointer("/content/application~1json/schema")
        .cloned()
        .unwrap_or_else(|| json!({ "description": "see the operation's description" }));
    response["content"] = json!({ "application/json": { "schema": {
        "type": "object",
        "required": ["status", "data"],
        "properties": { "status": { "$ref": "#/components/schemas/Status" }, "data": data },
    } } });
}

fn status_schema() -> Value {
    let reasons: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
    json!({
        "type": "object",
        "required": ["code", "message", "corrId"],
        "properties": {
            "code": { "type": "integer", "description": "the HTTP status, repeated" },
            "message": { "type": "string", "description": "for people; programs switch on reason" },
            "corrId": { "type": "string", "description": "the x-correlation-id of the request, on every log line" },
            "reason": { "type": "string", "enum": reasons },
            "details": { "type": "array", "items": {
                "type": "object", "required": ["field", "problem"],
                "properties": { "field": { "type": "string" }, "problem": { "type": "string" } },
            } },
        },
    })
}

fn error_envelope_schema() -> Value {
    let mut properties = Map::new();
    properties.insert("status".into(), json!({ "$ref": "#/components/schemas/Status" }));
    properties.insert(
        "data".into(),
        json!({ "type": "object", "description": "on a 429 of create or reschedule: { slots } with proposed times" }),
    );
    json!({ "type": "object", "required": ["status"], "properties": properties })
}
