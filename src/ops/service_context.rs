//! A service with its calendar, and the rules booking derives from them. Every booking needs
//! one, and they change only by admin writes, so they are kept in memory (`ServiceCache`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;

use crate::coord::recent_loads::RecentLoads;
use crate::domain::booking::ServiceRules;
use crate::domain::calendar::{Calendar, Hours};
use crate::domain::names::is_valid_name;
use crate::error::{ApiError, Reason};
use crate::store::{ServiceRecord, Store, Tenant};
use crate::telemetry::catalogue::CONFIG_PARSE_ERRORS;
use crate::time::Moment;

pub struct ServiceContext {
    pub record: ServiceRecord,
    pub calendar: Option<Calendar>,
    /// The service's time zone, else its calendar's, else UTC: resolved once per load.
    pub tz: TimeZone,
}

impl ServiceContext {
    pub fn rules(&self) -> ServiceRules<'_> {
        let hours = match &self.calendar {
            Some(c) => Hours::Calendar(c),
            None => Hours::AlwaysOpen,
        };
        ServiceRules { config: &self.record.config, hours, tz: self.tz.clone() }
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

/// Reserved places per bucket start of one service in a window, as proposals read them. When a
/// popular slot fills, the booking writer refuses a whole batch at once (hundreds of requests in
/// one commit) and each refusal proposes other slots from the same reservations: one read serves
/// every refusal of a window for 250 ms. Proposals are hints (a slot may fill before the client
/// books it), so a quarter-second-old view is as good.
pub type ReservationReads = RecentLoads<(String, String, Moment, Moment), Arc<HashMap<Moment, u32>>>;

pub fn reservation_reads() -> ReservationReads {
    RecentLoads::new(std::time::Duration::from_millis(250), 1_000)
}

/// An enabled service of the tenant, or 400 `UNKNOWN_SERVICE`.
pub async fn load(
    store: &Store,
    cache: &ServiceCache,
    tenant: &Tenant,
    name: &str,
) -> Result<Arc<ServiceContext>, ApiError> {
    let context = load_any(store, cache, tenant, name).await?;
    context.filter(|c| c.record.config.enabled).ok_or_else(unknown_service)
}

/// The tenant's service `name`, enabled or not (`None`: no such service), through the cache.
pub async fn load_any(
    store: &Store,
    cache: &ServiceCache,
    tenant: &Tenant,
    name: &str,
) -> Result<Option<Arc<ServiceContext>>, ApiError> {
    if !is_valid_name(name) {
        return Ok(None);
    }
    // Read before loading: a change committed meanwhile makes this entry stale, never the reverse.
    let generation = store.config_generation();
    let key = (tenant.id.clone(), name.to_string());
    cache
        .get_or_load(key, generation, || async {
            Ok::<_, ApiError>(match store.get_service(&tenant.id, name).await? {
                Some(record) => {
                    let calendar = load_calendar(store, tenant, record.config.calendar.as_deref()).await?;
                    let tz = service_timezone(&record, calendar.as_ref());
                    Some(Arc::new(ServiceContext { record, calendar, tz }))
                }
                None => None,
            })
        })
        .await
}

/// Writes validate time zones, so a bad one is a row written by an older version or by hand: it
/// is logged and counted once per load, and the service runs on UTC as before.
fn service_timezone(record: &ServiceRecord, calendar: Option<&Calendar>) -> TimeZone {
    match record.config.timezone.as_deref() {
        Some(zone) => TimeZone::get(zone).unwrap_or_else(|e| {
            stored_config_unreadable("timezone", &record.name, &e.to_string());
            TimeZone::UTC
        }),
        None => calendar.map(|c| c.timezone().clone()).unwrap_or(TimeZone::UTC),
    }
}

fn stored_config_unreadable(kind: &'static str, name: &str, problem: &str) {
    metrics::counter!(CONFIG_PARSE_ERRORS, "kind" => kind).increment(1);
    tracing::error!(kind, name, problem, "stored configuration does not parse; running as if it were absent");
}

/// A calendar's parsed hours; one that no longer parses is logged and counted (once per load)
/// and the service is open around the clock, as before.
async fn load_calendar(store: &Store, tenant: &Tenant, name: Option<&str>) -> Result<Option<Calendar>, ApiError> {
    let Some(name) = name else { return Ok(None) };
    match store.get_calendar(&tenant.id, name).await? {
        Some(body) => match Calendar::parse(&body) {
            Ok(calendar) => Ok(Some(calendar)),
            Err(problems) => {
                let problem =
                    problems.iter().map(|p| format!("{}: {}", p.field, p.problem)).collect::<Vec<_>>().join("; ");
                stored_config_unreadable("calendar", name, &problem);
                Ok(None)
            }
        },
        None => {
            // Deleting a calendar in use is refused, so this is a race with such a delete.
            tracing::warn!(calendar = %name, "service refers to a missing calendar; treating it as always open");
            Ok(None)
        }
    }
}
