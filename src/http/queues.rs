//! Queue status and estimated wait times (domain.md § Queue position and EWT).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::http::envelope;
use crate::http::extractors::ApiKeyAuth;
use crate::ops::queues::{self, EwtSource, QueueEstimate};
use crate::ops::AppState;
use crate::store::Tenant;
use crate::time::Moment;

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
    let status = queues::queue_status(&state, &auth.tenant, &path.into_inner()).await?;
    Ok(envelope::ok(QueueStatusData {
        ewt: status.ewt.unwrap_or(-1),
        offer_immediate_callback: status.offer_immediate,
        offer_scheduled_callback: status.offer_scheduled,
    }))
}

/// The most virtual queues one estimated-wait-time request may name (api.md).
pub const MAX_VIRTUAL_QUEUES: usize = 50;

/// One virtual queue's estimate as the estimated-wait-time answers give it: `resultCode` 0 with
/// the estimate, 1 when there is no recent data, 2 for a queue the tenant does not have.
async fn ewt_entry(
    state: &AppState,
    tenant: &Tenant,
    vq: &str,
    source: EwtSource,
    now: Moment,
) -> Result<EwtEntry, ApiError> {
    let entry = |estimated_wait_time: i64, result_code: i64, message: Option<&str>| EwtEntry {
        virtual_queue: vq.to_string(),
        estimated_wait_time,
        result_code,
        message: message.map(str::to_string),
    };
    Ok(match queues::estimate(state, tenant, vq, source, now).await? {
        QueueEstimate::Known(e) => entry(e, 0, None),
        QueueEstimate::NoRecentData => entry(-1, 1, Some("no recent wait-time data for this virtual queue")),
        QueueEstimate::UnknownQueue => entry(-1, 2, Some("unknown virtual queue")),
    })
}

/// `mode` and `include-calls-on-hold` of both estimated-wait-time routes. The latter is accepted
/// and ignored: the platform's queue statistics (`stats`) carry no calls on hold to include.
fn ewt_mode(query: &str) -> Result<(EwtSource, Option<String>), ApiError> {
    let mut mode = EwtSource::PlatformElseHistory;
    let mut queues = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "virtual-queues" => queues = Some(v.into_owned()),
            "mode" => {
                mode = EwtSource::parse(&v).ok_or_else(|| ApiError::field("mode", "must be mode1, mode2 or mode3"))?
            }
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
    Ok(envelope::ok(ewt_entry(&state, &auth.tenant, path.trim(), mode, crate::time::now()).await?))
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
    let now = crate::time::now();
    let mut results = Vec::new();
    for vq in names {
        results.push(ewt_entry(&state, &auth.tenant, vq, mode, now).await?);
    }
    Ok(envelope::ok(results))
}
