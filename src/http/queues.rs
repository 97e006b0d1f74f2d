//! Queue status and estimated wait times (domain.md § Queue position and EWT).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::names::is_valid_name;
use crate::error::ApiError;
use crate::http::envelope;
use crate::http::extractors::ApiKeyAuth;
use crate::ops::service_context::{self, unknown_service};
use crate::ops::AppState;
use crate::store::{CallbackRecord, Tenant};
use crate::time::now_ms;

/// Platform figures older than this are not trusted.
const FRESH_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Ringback's own history.
    Mode1,
    /// mode3 when available, else mode1.
    Mode2,
    /// The platform's pushed EWT.
    Mode3,
}

impl Mode {
    fn parse(text: &str) -> Option<Mode> {
        match text {
            "mode1" => Some(Mode::Mode1),
            "mode2" => Some(Mode::Mode2),
            "mode3" => Some(Mode::Mode3),
            _ => None,
        }
    }
}

/// Estimated wait of a virtual queue in seconds, if known.
pub async fn queue_ewt(
    state: &AppState,
    tenant: &Tenant,
    vq: &str,
    mode: Mode,
    now: i64,
) -> Result<Option<i64>, ApiError> {
    let pushed = || async {
        let stats = state.store.queue_stats(&tenant.id, vq).await?;
        Ok::<_, ApiError>(stats.filter(|s| now - s.updated_ms < FRESH_MS).and_then(|s| s.ewt))
    };
    let history = || async {
        let services = state.store.services_of_queue(&tenant.id, vq).await?;
        Ok::<_, ApiError>(state.store.recent_wait_ms(&tenant.id, &services, now - 3_600_000).await?.map(|ms| ms / 1000))
    };
    match mode {
        Mode::Mode3 => pushed().await,
        Mode::Mode1 => history().await,
        Mode::Mode2 => match pushed().await? {
            Some(e) => Ok(Some(e)),
            None => history().await,
        },
    }
}

/// `positionInQueue` and `estimatedWaitTime` of a handed-over callback (retrieve).
pub async fn position_and_wait(
    state: &AppState,
    tenant: &Tenant,
    cb: &CallbackRecord,
    vq: &str,
) -> Result<(i64, i64), ApiError> {
    let now = now_ms();
    let fresh = cb.platform_reported_ms.is_some_and(|t| now - t < FRESH_MS);
    let position = match (fresh, cb.platform_position) {
        (true, Some(p)) => p,
        _ if cb.state == crate::domain::callback::State::Queued => {
            state
                .store
                .queue_rank(&tenant.id, &cb.service_name, cb.priority, cb.queued_ms.unwrap_or(cb.created_ms), &cb.id)
                .await?
        }
        // Routing or processing: at the head of the queue.
        _ => 1,
    };
    let wait = match (fresh, cb.platform_ewt) {
        (true, Some(e)) => e,
        _ => queue_ewt(state, tenant, vq, Mode::Mode2, now).await?.unwrap_or(-1),
    };
    Ok((position, wait))
}

/// `GET /callbacks/queue-status/{queue-name}`: a service name, else a virtual queue name.
/// What a callback UI needs to decide what to offer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueStatusData {
    /// Estimated wait in seconds (mode2), -1 when unknown.
    pub ewt: i64,
    pub offer_immediate_callback: bool,
    pub offer_scheduled_callback: bool,
}

/// One virtual queue's estimate.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EwtEntry {
    pub virtual_queue: String,
    /// Seconds, -1 when unknown.
    pub estimated_wait_time: i64,
    /// 0 estimated, 1 no recent data, 2 unknown virtual queue.
    pub result_code: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[utoipa::path(get, path = "/engagement/v3/callbacks/queue-status/{queue-name}", tag = "callbacks",
    params(("queue-name" = String, Path, description = "A service name or a virtual queue name")),
    responses((status = 200, description = "EWT and whether to offer immediate and scheduled callbacks", body = QueueStatusData)),
    security(("api_key" = [])))]
pub async fn queue_status(
    state: web::Data<AppState>,
    auth: ApiKeyAuth,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    let tenant = &auth.tenant;
    let service_name = match is_valid_name(&name) {
        false => return Err(unknown_service()),
        true => match state.store.get_service(&tenant.id, &name).await? {
            Some(_) => name.clone(),
            None => state
                .store
                .services_of_queue(&tenant.id, &name)
                .await?
                .into_iter()
                .next()
                .ok_or_else(unknown_service)?,
        },
    };
    let service = service_context::load_any(&state.store, &state.services, tenant, &service_name)
        .await?
        .ok_or_else(unknown_service)?;
    let vq = service.record.config.virtual_queue_name(&service_name).to_string();
    let now = now_ms();
    let ewt = queue_ewt(&state, tenant, &vq, Mode::Mode2, now).await?;
    let config = &service.record.config;
    let offer_scheduled = config.enabled && config.scheduled_enabled;
    let mut offer_immediate = config.enabled && config.immediate_enabled;
    if offer_immediate {
        let hours = service.rules().hours;
        let stats = state.store.queue_stats(&tenant.id, &vq).await?.filter(|s| now - s.updated_ms < FRESH_MS);
        let no_agents = stats.and_then(|s| s.agents_logged_in) == Some(0);
        let open_for = hours.open_for_seconds(now);
        offer_immediate = open_for > 0 && !no_agents && ewt.is_none_or(|e| e < open_for);
    }
    Ok(envelope::ok(QueueStatusData {
        ewt: ewt.unwrap_or(-1),
        offer_immediate_callback: offer_immediate,
        offer_scheduled_callback: offer_scheduled,
    }))
}

/// The most virtual queues one estimated-wait-time request may name (api.md).
pub const MAX_VIRTUAL_QUEUES: usize = 50;

/// One virtual queue's estimate as the estimated-wait-time answers give it: `resultCode` 0 with
/// the estimate, 1 when there is no recent data, 2 for a queue the tenant does not have.
async fn ewt_entry(state: &AppState, tenant: &Tenant, vq: &str, mode: Mode, now: i64) -> Result<EwtEntry, ApiError> {
    let known = is_valid_name(vq)
        && (!state.store.services_of_queue(&tenant.id, vq).await?.is_empty()
            || state.store.queue_stats(&tenant.id, vq).await?.is_some());
    let entry = |estimated_wait_time: i64, result_code: i64, message: Option<&str>| EwtEntry {
        virtual_queue: vq.to_string(),
        estimated_wait_time,
        result_code,
        message: message.map(str::to_string),
    };
    Ok(if !known {
        entry(-1, 2, Some("unknown virtual queue"))
    } else {
        match queue_ewt(state, tenant, vq, mode, now).await? {
            Some(e) => entry(e, 0, None),
            None => entry(-1, 1, Some("no recent wait-time data for this virtual queue")),
        }
    })
}

/// `mode` and `include-calls-on-hold` of both estimated-wait-time routes. The latter is accepted
/// and ignored: the platform's queue statistics (`stats`) carry no calls on hold to include.
fn ewt_mode(query: &str) -> Result<(Mode, Option<String>), ApiError> {
    let mut mode = Mode::Mode2;
    let mut queues = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "virtual-queues" => queues = Some(v.into_owned()),
            "mode" => mode = Mode::parse(&v).ok_or_else(|| ApiError::field("mode", "must be mode1, mode2 or mode3"))?,
            "include-calls-on-hold" if v != "true" && v != "false" => {
                return Err(ApiError::field("include-calls-on-hold", "must be true or false"));
            }
            _ => {}
        }
    }
    Ok((mode, queues))
}

/// `GET /estimated-wait-time/virtual-queues/{virtual-queue}` (issue 27: the per-queue form some GES
/// samples call): `data` is that queue's entry, under the list form's rules.
#[utoipa::path(get, path = "/engagement/v3/estimated-wait-time/virtual-queues/{virtual-queue}", tag = "callbacks",
    params(("virtual-queue" = String, Path),
        ("mode" = Option<String>, Query, description = "mode1 history, mode2 either (default), mode3 platform"),
        ("include-calls-on-hold" = Option<bool>, Query, description = "Accepted and ignored: the platform's statistics carry no calls on hold")),
    responses((status = 200, description = "data.estimatedWaitTime in seconds (-1 with resultCode 1 or 2 when unknown)", body = EwtEntry)),
    security(("api_key" = [])))]
pub async fn estimated_wait_time_of_queue(
    state: web::Data<AppState>,
    auth: ApiKeyAuth,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (mode, _) = ewt_mode(req.query_string())?;
    Ok(envelope::ok(ewt_entry(&state, &auth.tenant, path.trim(), mode, now_ms()).await?))
}

/// `GET /estimated-wait-time?virtual-queues=a,b&mode=mode2`.
#[utoipa::path(get, path = "/engagement/v3/estimated-wait-time", tag = "callbacks",
    params(("virtual-queues" = String, Query, description = "Comma-separated virtual queue names, at most 50"),
        ("mode" = Option<String>, Query, description = "mode1 history, mode2 either (default), mode3 platform"),
        ("include-calls-on-hold" = Option<bool>, Query, description = "Accepted and ignored: the platform's statistics carry no calls on hold")),
    responses((status = 200, description = "One estimate per virtual queue, in the order asked", body = Vec<EwtEntry>)),
    security(("api_key" = [])))]
pub async fn estimated_wait_time(
    state: web::Data<AppState>,
    auth: ApiKeyAuth,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (mode, queues) = ewt_mode(req.query_string())?;
    let queues = queues
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| ApiError::field("virtual-queues", "is required (comma-separated)"))?;
    let names: Vec<&str> = queues.split(',').map(str::trim).filter(|q| !q.is_empty()).collect();
    if names.len() > MAX_VIRTUAL_QUEUES {
        // Each name costs a few queries: bounded, so one request cannot walk thousands (api.md).
        return Err(ApiError::field("virtual-queues", format!("names at most {MAX_VIRTUAL_QUEUES} virtual queues")));
    }
    let now = now_ms();
    let mut results = Vec::new();
    for vq in names {
        results.push(ewt_entry(&state, &auth.tenant, vq, mode, now).await?);
    }
    Ok(envelope::ok(results))
}
