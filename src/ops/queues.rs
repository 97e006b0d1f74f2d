//! Queue position and estimated wait (domain.md § Queue position and EWT): the three ways to
//! estimate a virtual queue's wait, what a callback UI may offer, a handed-over callback's place
//! in its queue, and the platform's pushed queue figures.

use crate::domain::names::is_valid_name;
use crate::error::ApiError;
use crate::ops::service_context::{self, unknown_service};
use crate::ops::AppState;
use crate::store::{CallbackRecord, QueueStats, Tenant};
use crate::time::{Millis, Moment, HOUR};

/// Platform figures older than this are not trusted.
const FRESH: Millis = Millis::from_ms(60_000);

/// How long our own history of waits looks back.
const HISTORY: Millis = HOUR;

/// How an estimated wait is made: GES's `mode1`, `mode2` and `mode3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EwtSource {
    /// `mode1`: Ringback's own history of waits.
    History,
    /// `mode2` (the default): the platform's figure when fresh, else our history.
    PlatformElseHistory,
    /// `mode3`: the platform's pushed figure only.
    Platform,
}

impl EwtSource {
    /// The GES query value (`mode1`, `mode2`, `mode3`).
    pub fn parse(text: &str) -> Option<EwtSource> {
        match text {
            "mode1" => Some(EwtSource::History),
            "mode2" => Some(EwtSource::PlatformElseHistory),
            "mode3" => Some(EwtSource::Platform),
            _ => None,
        }
    }
}

/// Estimated wait of a virtual queue in seconds, if known.
pub async fn queue_ewt(
    state: &AppState,
    tenant: &Tenant,
    vq: &str,
    source: EwtSource,
    now: Moment,
) -> Result<Option<i64>, ApiError> {
    let pushed = || async {
        let stats = state.store.queue_stats(&tenant.id, vq).await?;
        Ok::<_, ApiError>(stats.filter(|s| now - s.updated_ms < FRESH).and_then(|s| s.ewt))
    };
    let history = || async {
        let services = state.store.services_of_queue(&tenant.id, vq).await?;
        Ok::<_, ApiError>(state.store.recent_wait_ms(&tenant.id, &services, now - HISTORY).await?.map(|ms| ms / 1000))
    };
    match source {
        EwtSource::Platform => pushed().await,
        EwtSource::History => history().await,
        EwtSource::PlatformElseHistory => match pushed().await? {
            Some(e) => Ok(Some(e)),
            None => history().await,
        },
    }
}

/// `positionInQueue` and `estimatedWaitTime` of a handed-over callback (retrieve).
pub async fn position_and_wait(state: &AppState, tenant: &Tenant, cb: &CallbackRecord) -> Result<(i64, i64), ApiError> {
    let vq = match state.store.get_service(&tenant.id, &cb.service_name).await? {
        Some(s) => s.config.virtual_queue_name(&cb.service_name).to_string(),
        None => cb.service_name.clone(),
    };
    let now = crate::time::now();
    let fresh = cb.platform_reported_ms.is_some_and(|t| now - t < FRESH);
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
        _ => queue_ewt(state, tenant, &vq, EwtSource::PlatformElseHistory, now).await?.unwrap_or(-1),
    };
    Ok((position, wait))
}

/// What a callback UI may offer for a service (or the first service of a virtual queue).
#[derive(Debug, Clone, Copy)]
pub struct QueueStatus {
    /// Seconds (`mode2`), if known.
    pub ewt: Option<i64>,
    pub offer_immediate: bool,
    pub offer_scheduled: bool,
}

/// The queue status of `name`: a service name, else a virtual queue name.
pub async fn queue_status(state: &AppState, tenant: &Tenant, name: &str) -> Result<QueueStatus, ApiError> {
    let service_name = match is_valid_name(name) {
        false => return Err(unknown_service()),
        true => match state.store.get_service(&tenant.id, name).await? {
            Some(_) => name.to_string(),
            None => {
                state.store.services_of_queue(&tenant.id, name).await?.into_iter().next().ok_or_else(unknown_service)?
            }
        },
    };
    let service = service_context::load_any(&state.store, &state.services, tenant, &service_name)
        .await?
        .ok_or_else(unknown_service)?;
    let vq = service.record.config.virtual_queue_name(&service_name).to_string();
    let now = crate::time::now();
    let ewt = queue_ewt(state, tenant, &vq, EwtSource::PlatformElseHistory, now).await?;
    let config = &service.record.config;
    let offer_scheduled = config.enabled && config.scheduled_enabled;
    let mut offer_immediate = config.enabled && config.immediate_enabled;
    if offer_immediate {
        let hours = service.rules().hours;
        let stats = state.store.queue_stats(&tenant.id, &vq).await?.filter(|s| now - s.updated_ms < FRESH);
        let no_agents = stats.and_then(|s| s.agents_logged_in) == Some(0);
        let open_for = hours.open_for_seconds(now);
        offer_immediate = open_for > 0 && !no_agents && ewt.is_none_or(|e| e < open_for);
    }
    Ok(QueueStatus { ewt, offer_immediate, offer_scheduled })
}

/// One virtual queue's estimate, as the estimated-wait-time answers give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueEstimate {
    /// Seconds.
    Known(i64),
    /// A queue of the tenant with no recent data.
    NoRecentData,
    /// A queue the tenant does not have.
    UnknownQueue,
}

/// The estimate of virtual queue `vq`.
pub async fn estimate(
    state: &AppState,
    tenant: &Tenant,
    vq: &str,
    source: EwtSource,
    now: Moment,
) -> Result<QueueEstimate, ApiError> {
    let known = is_valid_name(vq)
        && (!state.store.services_of_queue(&tenant.id, vq).await?.is_empty()
            || state.store.queue_stats(&tenant.id, vq).await?.is_some());
    if !known {
        return Ok(QueueEstimate::UnknownQueue);
    }
    Ok(match queue_ewt(state, tenant, vq, source, now).await? {
        Some(e) => QueueEstimate::Known(e),
        None => QueueEstimate::NoRecentData,
    })
}

/// The platform's figures for one of the tenant's virtual queues (internal API), kept for
/// `mode2`/`mode3` estimates and the immediate-callback offer.
pub async fn record_stats(state: &AppState, tenant_id: &str, vq: &str, stats: &QueueStats) -> Result<(), ApiError> {
    Ok(state.store.put_queue_stats(tenant_id, vq, stats).await?)
}
