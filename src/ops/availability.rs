//! Availability (domain.md § Office hours and capacity): a service's open slots with their use,
//! and how long an office (a service's or a calendar's) stays open.

use crate::domain::calendar::{Calendar, Hours};
use crate::domain::capacity::{slots_with_use, SlotUse};
use crate::domain::names::is_valid_name;
use crate::error::{ApiError, Reason};
use crate::ops::service_context::{self, unknown_service, ServiceContext};
use crate::ops::AppState;
use crate::store::Tenant;
use crate::time::Moment;

/// The bookable slots of `service` offered in `[start, end)`, with their reserved places.
pub async fn slot_use(
    state: &AppState,
    tenant: &Tenant,
    service: &ServiceContext,
    start: Moment,
    end: Moment,
    now: Moment,
) -> Result<Vec<SlotUse>, ApiError> {
    let rules = service.rules();
    let (bookable_from, bookable_to) = rules.bookable_range(now);
    let grid = rules.grid();
    // The reservations are read from the first bucket on (it may start before `start`).
    let first_bucket = grid.buckets(start, end).first().map(|b| b.start).unwrap_or(start);
    let reserved = state.store.reserved_counts(&tenant.id, service.name(), first_bucket, end).await?;
    let slots = slots_with_use(&grid, rules.hours, (start, end), (start.max(bookable_from), bookable_to), &reserved);
    Ok(slots.into_iter().filter(|s| s.offered < end).collect())
}

/// Seconds from `start` until the office closes (0 when closed). `name` may be a service or a
/// calendar of the tenant.
pub async fn open_for(state: &AppState, tenant: &Tenant, name: &str, start: Moment) -> Result<i64, ApiError> {
    match service_context::load(&state.store, &state.services, tenant, name).await {
        Ok(service) => Ok(service.rules().hours.open_for_seconds(start)),
        Err(e) if e.reason == Reason::UnknownService => {
            let body = match is_valid_name(name) {
                true => state.store.get_calendar(&tenant.id, name).await?,
                false => None,
            };
            let calendar = body.and_then(|b| Calendar::parse(&b).ok()).ok_or_else(unknown_service)?;
            Ok(Hours::Calendar(&calendar).open_for_seconds(start))
        }
        Err(e) => Err(e),
    }
}
