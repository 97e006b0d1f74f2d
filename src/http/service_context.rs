//! A service with its calendar, and the rules booking derives from them. Every booking needs
//! one, and they change only by admin writes, so they are kept in memory (`ServiceCache`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;

use crate::domain::booking::ServiceRules;
use crate::domain::calendar::{Calendar, Hours};
use crate::domain::names::is_valid_name;
use crate::error::{ApiError, Reason};
use crate::state::AppState;
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
/// take effect at once (the store's configuration generation); other replicas' within this.
pub const SERVICE_CACHE_MAX_AGE: Duration = Duration::from_secs(1);
/// A bound on memory when a client asks for many names (unknown names are cached too).
const SERVICE_CACHE_MAX_ENTRIES: usize = 10_000;

/// Loaded services with their parsed calendars, by (tenant id, service name): at most one
/// pair of `SELECT`s per service per second per replica instead of one pair per booking.
#[derive(Clone, Default)]
pub struct ServiceCache {
    inner: Arc<Mutex<HashMap<(String, String), Cached>>>,
}

struct Cached {
    context: Option<Arc<ServiceContext>>,
    generation: u64,
    loaded: Instant,
}

impl ServiceCache {
    fn get(&self, key: &(String, String), generation: u64) -> Option<Option<Arc<ServiceContext>>> {
        let inner = self.inner.lock().ok()?;
        let hit = inner.get(key)?;
        (hit.generation == generation && hit.loaded.elapsed() < SERVICE_CACHE_MAX_AGE).then(|| hit.context.clone())
    }

    fn put(&self, key: (String, String), context: Option<Arc<ServiceContext>>, generation: u64) {
        if let Ok(mut inner) = self.inner.lock() {
            if inner.len() >= SERVICE_CACHE_MAX_ENTRIES {
                inner.retain(|_, c| c.generation == generation && c.loaded.elapsed() < SERVICE_CACHE_MAX_AGE);
            }
            inner.insert(key, Cached { context, generation, loaded: Instant::now() });
        }
    }
}

/// An enabled service of the tenant, or 400 `UNKNOWN_SERVICE`.
pub async fn load(state: &AppState, tenant: &Tenant, name: &str) -> Result<Arc<ServiceContext>, ApiError> {
    if !is_valid_name(name) {
        return Err(unknown_service());
    }
    let key = (tenant.id.clone(), name.to_string());
    // Read before loading: a change committed meanwhile makes this entry stale, never the reverse.
    let generation = state.store.config_generation();
    let context = match state.services.get(&key, generation) {
        Some(hit) => hit,
        None => {
            let context = match state.store.get_service(&tenant.id, name).await? {
                Some(record) => {
                    let calendar = load_calendar(state, tenant, record.config.calendar.as_deref()).await?;
                    Some(Arc::new(ServiceContext { record, calendar }))
                }
                None => None,
            };
            state.services.put(key, context.clone(), generation);
            context
        }
    };
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
