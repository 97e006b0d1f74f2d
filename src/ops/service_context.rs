//! A service with its calendar, and the rules booking derives from them. Every booking needs
//! one, and they change only by admin writes, so they are kept in memory (`ServiceCache`).

use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;

use crate::coord::recent_loads::RecentLoads;
use crate::domain::booking::ServiceRules;
use crate::domain::calendar::{Calendar, Hours};
use crate::domain::names::is_valid_name;
use crate::error::{ApiError, Reason};
use crate::ops::AppState;
use crate::store::{ServiceRecord, Tenant};

pub struct ServiceContext {
    pub record: ServiceRecord,
    pub calendar: Option<Calendar>,
}

impl ServiceContext {
    pub fn rules(&self) -> ServiceRules<'_> {
        let config = &self.record.config;
        let tz = config
            .timezone
            .as_deref()
            .and_then(|z| TimeZone::get(z).ok())
            .or_else(|| self.calendar.as_ref().map(|c| c.timezone().clone()))
            .unwrap_or(TimeZone::UTC);
        let hours = match &self.calendar {
            Some(c) => Hours::Calendar(c),
            None => Hours::AlwaysOpen,
        };
        ServiceRules { config, hours, tz }
    }

    pub fn name(&self) -> &str {
        &self.record.name
    }
}

pub fn unknown_service() -> ApiError {
    ApiError::new(Reason::UnknownService, "serviceName is not a service of this tenant")
}

/// How long another replica's admin change may go unseen here. This replica's own admin writes
/// take effect at once (the store's configuration generation is the entries' stamp).
pub const SERVICE_CACHE_MAX_AGE: Duration = Duration::from_secs(1);
/// A bound on memory when a client asks for many names (unknown names are cached too).
const SERVICE_CACHE_MAX_ENTRIES: usize = 10_000;

/// Loaded services with their parsed calendars (`None`: no such service), by (tenant id,
/// service name): at most one pair of `SELECT`s per service per second per replica instead of
/// one pair per booking, and one for a whole burst on a cold cache (a restart, a deploy).
pub type ServiceCache = RecentLoads<(String, String), Option<Arc<ServiceContext>>>;

pub fn service_cache() -> ServiceCache {
    RecentLoads::new(SERVICE_CACHE_MAX_AGE, SERVICE_CACHE_MAX_ENTRIES)
}

/// An enabled service of the tenant, or 400 `UNKNOWN_SERVICE`.
pub async fn load(state: &AppState, tenant: &Tenant, name: &str) -> Result<Arc<ServiceContext>, ApiError> {
    if !is_valid_name(name) {
        return Err(unknown_service());
    }
    // Read before loading: a change committed meanwhile makes this entry stale, never the reverse.
    let generation = state.store.config_generation();
    let key = (tenant.id.clone(), name.to_string());
    let context = state
        .services
        .get_or_load(key, generation, || async {
            Ok::<_, ApiError>(match state.store.get_service(&tenant.id, name).await? {
                Some(record) => {
                    let calendar = load_calendar(state, tenant, record.config.calendar.as_deref()).await?;
                    Some(Arc::new(ServiceContext { record, calendar }))
                }
                None => None,
            })
        })
        .await?;
    context.filter(|c| c.record.config.enabled).ok_or_else(unknown_service)
}

pub async fn load_calendar(
    state: &AppState,
    tenant: &Tenant,
    name: Option<&str>,
) -> Result<Option<Calendar>, ApiError> {
    let Some(name) = name else { return Ok(None) };
    match state.store.get_calendar(&tenant.id, name).await? {
        Some(body) => Ok(Calendar::parse(&body).ok()),
        None => {
            // Deleting a calendar in use is refused, so this is a race with such a delete.
            tracing::warn!(calendar = %name, "service refers to a missing calendar; treating it as always open");
            Ok(None)
        }
    }
}
