//! A service with its calendar, and the rules booking derives from them. Every booking needs
//! one, and they change only by admin writes, so they are kept in memory (`ServiceCache`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

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
/// Concurrent misses of one service wait for the same load, so a burst of bookings on a cold
/// cache (a restart, a deploy) costs one read, not one per request competing for the pool.
#[derive(Clone, Default)]
pub struct ServiceCache {
    inner: Arc<Mutex<HashMap<(String, String), Cached>>>,
}

type Loaded = Option<Arc<ServiceContext>>;

struct Cached {
    cell: Arc<OnceCell<Loaded>>,
    generation: u64,
    loaded: Instant,
}

impl Cached {
    fn fresh(&self, generation: u64) -> bool {
        self.generation == generation && self.loaded.elapsed() < SERVICE_CACHE_MAX_AGE
    }
}

impl ServiceCache {
    /// The entry to read or fill for `key`: the current one while fresh, else a new empty one.
    fn cell(&self, key: (String, String), generation: u64) -> Arc<OnceCell<Loaded>> {
        let mut inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(hit) = inner.get(&key).filter(|c| c.fresh(generation)) {
            return hit.cell.clone();
        }
        if inner.len() >= SERVICE_CACHE_MAX_ENTRIES {
            inner.retain(|_, c| c.fresh(generation));
        }
        let cell = Arc::new(OnceCell::new());
        inner.insert(key, Cached { cell: cell.clone(), generation, loaded: Instant::now() });
        cell
    }
}

/// An enabled service of the tenant, or 400 `UNKNOWN_SERVICE`.
pub async fn load(state: &AppState, tenant: &Tenant, name: &str) -> Result<Arc<ServiceContext>, ApiError> {
    if !is_valid_name(name) {
        return Err(unknown_service());
    }
    // Read before loading: a change committed meanwhile makes this entry stale, never the reverse.
    let generation = state.store.config_generation();
    let cell = state.services.cell((tenant.id.clone(), name.to_string()), generation);
    // A failed load is not kept: the next request tries again.
    let context = cell
        .get_or_try_init(|| async {
            Ok::<_, ApiError>(match state.store.get_service(&tenant.id, name).await? {
                Some(record) => {
                    let calendar = load_calendar(state, tenant, record.config.calendar.as_deref()).await?;
                    Some(Arc::new(ServiceContext { record, calendar }))
                }
                None => None,
            })
        })
        .await?;
    context.clone().filter(|c| c.record.config.enabled).ok_or_else(unknown_service)
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
