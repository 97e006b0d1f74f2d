//! Internal API for the voice platform (`/internal/v1`): state reports and queue statistics.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::domain::callback::{State, COMPLETION_REASONS};
use crate::domain::time::now_ms;
use crate::error::{ApiError, FieldProblem, Reason};
use crate::http::envelope;
use crate::http::extractors::{InternalAuth, JsonBody};
use crate::ops::AppState;
use crate::store::{PlatformReport, QueueStats, ReportOutcome};
use crate::telemetry::catalogue::CALLBACKS_COMPLETED;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateBody {
    pub state: Option<String>,
    pub reason: Option<String>,
    pub position_in_queue: Option<i64>,
    pub estimated_wait_time: Option<i64>,
    pub session_id: Option<String>,
    pub attempt: Option<i64>,
}

pub async fn report_state(
    state: web::Data<AppState>,
    _auth: InternalAuth,
    path: web::Path<String>,
    body: JsonBody<StateBody>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    tracing::Span::current().record("callbackId", id.as_str());
    let b = body.value;
    let target = match b.state.as_deref() {
        Some(s) => s.parse::<State>().map_err(|p| ApiError::field("state", p))?,
        None => return Err(ApiError::field("state", "is required")),
    };
    if target == State::Scheduled {
        return Err(ApiError::field("state", "must be QUEUED, ROUTING, PROCESSING or COMPLETED"));
    }
    if target == State::Completed && !b.reason.as_deref().is_some_and(|r| COMPLETION_REASONS.contains(&r)) {
        return Err(ApiError::validation(vec![FieldProblem::new(
            "reason",
            format!("COMPLETED needs a reason, one of {}", COMPLETION_REASONS.join(", ")),
        )]));
    }
    let report = PlatformReport {
        state: Some(target),
        reason: b.reason,
        position: b.position_in_queue,
        ewt: b.estimated_wait_time,
        session_id: b.session_id,
        attempt: b.attempt,
    };
    match state.store.apply_platform_report(&id, &report, now_ms()).await? {
        ReportOutcome::Applied { record, from } => {
            let stage = if from == record.state { "acknowledged" } else { "state_changed" };
            tracing::debug!(corrId = %record.corr_id, callbackId = %id, stage, state = record.state.as_str(), attempt = record.attempt, "platform report applied");
            if record.state == State::Completed {
                let tenant = state.store.tenant_name(&record.tenant_id).await?.unwrap_or_else(|| "undefined".into());
                let service = match state.store.get_service(&record.tenant_id, &record.service_name).await? {
                    Some(_) => record.service_name.clone(),
                    None => "unknown".into(),
                };
                let reason = record.reason.clone().unwrap_or_default();
                metrics::counter!(CALLBACKS_COMPLETED, "tenant" => tenant, "service" => service, "reason" => reason)
                    .increment(1);
            }
            Ok(envelope::ok(json!({ "id": id, "callbackState": record.state.as_str(), "attempt": record.attempt })))
        }
        ReportOutcome::Unchanged => Ok(envelope::ok(json!({ "id": id }))),
        ReportOutcome::Illegal(current) => Err(ApiError::new(
            Reason::IllegalTransition,
            format!("the callback is {current}; {target} is not a legal next state for this hand-off"),
        )),
        ReportOutcome::NotFound => Err(ApiError::not_found("callback")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsBody {
    pub ewt: Option<i64>,
    pub agents_logged_in: Option<i64>,
    pub calls_waiting: Option<i64>,
}

pub async fn queue_stats(
    state: web::Data<AppState>,
    _auth: InternalAuth,
    path: web::Path<(String, String)>,
    body: JsonBody<StatsBody>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_name, vq) = path.into_inner();
    let tenant = state.store.get_tenant(&tenant_name).await?.ok_or_else(|| ApiError::not_found("tenant"))?;
    let b = body.value;
    let stats = QueueStats {
        ewt: b.ewt,
        agents_logged_in: b.agents_logged_in,
        calls_waiting: b.calls_waiting,
        updated_ms: now_ms(),
    };
    state.store.put_queue_stats(&tenant.id, &vq, &stats).await?;
    Ok(envelope::ok(json!({ "virtualQueue": vq })))
}
