//! The voice platform's reports over the external listener (issue 24), for a platform that
//! cannot reach the internal API (a Twilio Function, a Lambda behind a webhook): a `platform`
//! API key may report its own tenant's callback states and queue statistics — exactly the bodies
//! and rules of the internal API's `state` and `stats` — and nothing else.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::http::extractors::{JsonBody, PlatformAuth};
use crate::http::internal::{apply_report, store_stats, StateBody, StatsBody};
use crate::ops::AppState;

/// The answer to a state report.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateData {
    pub id: String,
    /// The callback's state after the report (absent when nothing moved).
    pub callback_state: Option<String>,
    pub attempt: Option<i64>,
}

/// The answer to queue statistics.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatsData {
    pub virtual_queue: String,
}

/// Report a hand-off's state (QUEUED acknowledges it) — a `platform` key, its tenant's callbacks only.
#[utoipa::path(post, path = "/engagement/v3/callbacks/{id}/state", tag = "platform",
    params(("id" = String, Path, description = "The callback's id")),
    request_body = StateBody,
    responses(
        (status = 200, description = "Applied (or nothing moved)", body = StateData),
        (status = 400, description = "VALIDATION_FAILED: state or reason"),
        (status = 403, description = "FORBIDDEN_SCOPE: not a platform key"),
        (status = 404, description = "NOT_FOUND: unknown id, or another tenant's"),
        (status = 409, description = "ILLEGAL_TRANSITION: not a legal next state for this hand-off"),
    ),
    security(("api_key" = [])))]
pub async fn report_state(
    state: web::Data<AppState>,
    auth: PlatformAuth,
    path: web::Path<String>,
    body: JsonBody<StateBody>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    crate::telemetry::request_context::record_callback_id(&id);
    let report = body.value.into_report()?;
    if state.store.get_callback(&auth.tenant.id, &id).await?.is_none() {
        return Err(ApiError::not_found("callback"));
    }
    apply_report(&state, &id, &report).await
}

/// Push a virtual queue's statistics (EWT mode3) — a `platform` key, for its own tenant.
#[utoipa::path(put, path = "/engagement/v3/queues/{virtual_queue}/stats", tag = "platform",
    params(("virtual_queue" = String, Path, description = "The virtual queue")),
    request_body = StatsBody,
    responses(
        (status = 200, description = "Stored", body = StatsData),
        (status = 403, description = "FORBIDDEN_SCOPE: not a platform key"),
    ),
    security(("api_key" = [])))]
pub async fn queue_stats(
    state: web::Data<AppState>,
    auth: PlatformAuth,
    path: web::Path<String>,
    body: JsonBody<StatsBody>,
) -> Result<HttpResponse, ApiError> {
    store_stats(&state, &auth.tenant.id, &path.into_inner(), body.value).await
}
