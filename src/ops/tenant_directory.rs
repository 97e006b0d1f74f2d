//! Every tenant's name and service configurations, for work that spans tenants (the monitor's
//! passes, platform reports, call-in expiry), refreshed every 5 s; and the one resolver of the
//! `tenant` and `service` labels of business counters, with their fallbacks for a tenant or
//! service that is gone. Not the request path's cache (`service_context::ServiceCache`): a
//! request needs one service's rules current within a second (and at once after this replica's
//! own admin write); a pass needs a name or a setting for thousands of rows, where 5 s is fresh.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::domain::service::ServiceConfig;
use crate::store::{Store, Tenant};

const REFRESH: Duration = Duration::from_secs(5);

/// The `tenant` label of a tenant that no longer exists.
pub const UNDEFINED_TENANT: &str = "undefined";
/// The `service` label of a service that is not (or no longer) configured.
pub const UNKNOWN_SERVICE: &str = "unknown";

/// The `tenant` and `service` (or, for call-in, `group`) labels of a business counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    pub tenant: String,
    pub service: String,
}

impl Labels {
    /// The one place the fallbacks are decided: a tenant that is gone is `undefined`; a service
    /// (or group) that is not configured is `unknown`.
    pub fn resolve(tenant_name: Option<String>, name: &str, configured: bool) -> Labels {
        Labels {
            tenant: tenant_label(tenant_name),
            service: if configured { name.to_string() } else { UNKNOWN_SERVICE.to_string() },
        }
    }

    /// Work a request names for its own tenant, on a service (or group) it has just read.
    pub fn of(tenant: &Tenant, name: &str) -> Labels {
        Labels { tenant: tenant.name.clone(), service: name.to_string() }
    }
}

fn tenant_label(name: Option<String>) -> String {
    name.unwrap_or_else(|| UNDEFINED_TENANT.to_string())
}

#[derive(Default)]
struct Inner {
    tenants: HashMap<String, String>,
    services: HashMap<(String, String), ServiceConfig>,
    loaded: Option<Instant>,
    /// Services a reload for them did not find (deleted ones): not reloaded for again until the
    /// next regular refresh, so work on a deleted service does not reload every service each time.
    absent: std::collections::HashSet<(String, String)>,
}

#[derive(Clone, Default)]
pub struct TenantDirectory {
    inner: Arc<RwLock<Inner>>,
}

impl TenantDirectory {
    pub async fn refresh_if_stale(&self, store: &Store) {
        let stale = self.inner.read().map(|i| i.loaded.is_none_or(|t| t.elapsed() >= REFRESH)).unwrap_or(true);
        if stale {
            self.refresh(store).await;
        }
    }

    /// Reload at once when work names a service this directory has not seen yet (created since
    /// the last refresh), so its configuration — not the defaults — governs its first hand-off.
    pub async fn ensure<'a>(&self, store: &Store, keys: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let keys: Vec<(String, String)> = keys.into_iter().map(|(t, s)| (t.to_string(), s.to_string())).collect();
        let missing = self
            .inner
            .read()
            .map(|i| keys.iter().any(|k| !i.services.contains_key(k) && !i.absent.contains(k)))
            .unwrap_or(true);
        if missing {
            self.refresh(store).await;
            if let Ok(mut inner) = self.inner.write() {
                let still: Vec<(String, String)> =
                    keys.into_iter().filter(|k| !inner.services.contains_key(k)).collect();
                inner.absent.extend(still);
            }
        }
    }

    pub async fn refresh(&self, store: &Store) {
        match store.all_services().await {
            Ok(rows) => {
                let mut tenants = HashMap::new();
                let mut services = HashMap::new();
                for (tenant_id, tenant_name, service, config) in rows {
                    tenants.insert(tenant_id.clone(), tenant_name);
                    services.insert((tenant_id, service), config);
                }
                if let Ok(mut inner) = self.inner.write() {
                    *inner = Inner { tenants, services, loaded: Some(Instant::now()), absent: Default::default() };
                }
            }
            Err(e) => tracing::warn!(error = %e, "monitor could not load services"),
        }
    }

    pub fn tenant_name(&self, tenant_id: &str) -> String {
        tenant_label(self.known_tenant(tenant_id))
    }

    fn known_tenant(&self, tenant_id: &str) -> Option<String> {
        self.inner.read().ok().and_then(|i| i.tenants.get(tenant_id).cloned())
    }

    /// A service's configuration; defaults for a service deleted since its callbacks were booked.
    pub fn service(&self, tenant_id: &str, service: &str) -> ServiceConfig {
        self.inner
            .read()
            .ok()
            .and_then(|i| i.services.get(&(tenant_id.to_string(), service.to_string())).cloned())
            .unwrap_or_default()
    }

    /// The labels of work on `service` of `tenant_id`, reloading once if either is new here.
    pub async fn labels(&self, store: &Store, tenant_id: &str, service: &str) -> Labels {
        self.ensure(store, [(tenant_id, service)]).await;
        let configured = self
            .inner
            .read()
            .map(|i| i.services.contains_key(&(tenant_id.to_string(), service.to_string())))
            .unwrap_or(false);
        Labels::resolve(self.known_tenant(tenant_id), service, configured)
    }
}
