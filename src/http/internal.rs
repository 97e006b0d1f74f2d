//! Internal API for the voice platform (`/internal/v1`): state reports (`ops::lifecycle::report`)
//! and queue statistics.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::domain::callback::{State, COMPLETION_REASONS};
use crate::error::{ApiError, FieldProblem};
use crate::http::envelope;
use crate::http::extractors::{InternalAuth, JsonBody};
use crate::ops::{lifecycle, AppState};
use crate::store::{PlatformReport, QueueStats};

/// A state report (api.md § Internal API, `state`): the body of the internal API's route and of
/// a `platform` key's external one.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateBody {
    /// QUEUED (the acknowledgement), ROUTING, PROCESSING or COMPLETED.
    pub state: Option<String>,
    /// With COMPLETED: the outcome. NO_ANSWER, BUSY, VOICEMAIL and UNREACHABLE (issue 27) say the
    /// customer was not reached: the service's retry policy may book a follow-up.
    pub reason: Option<String>,
    pub position_in_queue: Option<i64>,
    pub estimated_wait_time: Option<i64>,
    pub session_id: Option<String>,
    /// The hand-off's attempt the report is about.
    pub attempt: Option<i64>,
}

impl StateBody {
    /// The report the body asks for, its fields checked.
    pub fn into_report(self) -> Result<PlatformReport, ApiError> {
        let target = match self.state.as_deref() {
            Some(s) => s.parse::<State>().map_err(|p| ApiError::field("state", p))?,
            None => return Err(ApiError::field("state", "is required")),
        };
        if target == State::Scheduled {
            return Err(ApiError::field("state", "must be QUEUED, ROUTING, PROCESSING or COMPLETED"));
        }
        if target == State::Completed && !self.reason.as_deref().is_some_and(|r| COMPLETION_REASONS.contains(&r)) {
            return Err(ApiError::validation(vec![FieldProblem::new(
                "reason",
                format!("COMPLETED needs a reason, one of {}", COMPLETION_REASONS.join(", ")),
            )]));
        }
        Ok(PlatformReport {
            state: Some(target),
            reason: self.reason,
            position: self.position_in_queue,
            ewt: self.estimated_wait_time,
            session_id: self.session_id,
            attempt: self.attempt,
        })
    }
}

/// Apply a report and render the answer (both routes).
pub async fn apply_report(state: &AppState, id: &str, report: &PlatformReport) -> Result<HttpResponse, ApiError> {
    match lifecycle::report(state, id, report).await? {
        Some(record) => {
            Ok(envelope::ok(json!({ "id": id, "callbackState": record.state.as_str(), "attempt": record.attempt })))
        }
        None => Ok(envelope::ok(json!({ "id": id }))),
    }
}

pub async fn report_state(
    state: web::Data<AppState>,
    _auth: InternalAuth,
    path: web::Path<String>,
    body: JsonBody<StateBody>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    crate::telemetry::request_context::record_callback_id(&id);
    apply_report(&state, &id, &body.value.into_report()?).await
}

/// Queue statistics (api.md § Internal API, `stats`).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatsBody {
    pub ewt: Option<i64>,
    pub agents_logged_in: Option<i64>,
    pub calls_waiting: Option<i64>,
}

/// Store a tenant's statistics of a virtual queue and render the answer (both routes).
pub async fn store_stats(state: &AppState, tenant_id: &str, vq: &str, b: StatsBody) -> Result<HttpResponse, ApiError> {
    let stats = QueueStats {
        ewt: b.ewt,
        agents_logged_in: b.agents_logged_in,
        calls_waiting: b.calls_waiting,
        updated_ms: crate::time::now(),
    };
    crate::ops::queues::record_stats(state, tenant_id, vq, &stats).await?;
    Ok(envelope::ok(json!({ "virtualQueue": vq })))
}

pub async fn queue_stats(
    state: web::Data<AppState>,
    _auth: InternalAuth,
    path: web::Path<(String, String)>,
    body: JsonBody<StatsBody>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_name, vq) = path.into_inner();
    let tenant = state.store.get_tenant(&tenant_name).await?.ok_or_else(|| ApiError::not_found("tenant"))?;
    store_stats(&state, &tenant.id, &vq, body.value).await
}
