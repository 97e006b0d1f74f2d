//! Tenant names and service configurations the monitor needs, refreshed every few seconds.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::domain::service::ServiceConfig;
use crate::store::Store;

const REFRESH: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Inner {
    tenants: HashMap<String, String>,
    services: HashMap<(String, String), ServiceConfig>,
    loaded: Option<Instant>,
}

#[derive(Clone, Default)]
pub struct Directory {
    inner: Arc<RwLock<Inner>>,
}

impl Directory {
    pub async fn refresh_if_stale(&self, store: &Store) {
        let stale = self.inner.read().map(|i| i.loaded.is_none_or(|t| t.elapsed() >= REFRESH)).unwrap_or(true);
        if stale {
            self.refresh(store).await;
        }
    }

    /// Reload at once when work names a service this directory has not seen yet (created since
    /// the last refresh), so its configuration — not the defaults — governs its first hand-off.
    pub async fn ensure<'a>(&self, store: &Store, keys: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let missing = self
            .inner
            .read()
            .map(|i| keys.into_iter().any(|(t, s)| !i.services.contains_key(&(t.to_string(), s.to_string()))))
            .unwrap_or(true);
        if missing {
            self.refresh(store).await;
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
                    *inner = Inner { tenants, services, loaded: Some(Instant::now()) };
                }
            }
            Err(e) => tracing::warn!(error = %e, "monitor could not load services"),
        }
    }

    pub fn tenant_name(&self, tenant_id: &str) -> String {
        self.inner
            .read()
            .ok()
            .and_then(|i| i.tenants.get(tenant_id).cloned())
            .unwrap_or_else(|| "undefined".to_string())
    }

    /// A service's configuration; defaults for a service deleted since its callbacks were booked.
    pub fn service(&self, tenant_id: &str, service: &str) -> ServiceConfig {
        self.inner
            .read()
            .ok()
            .and_then(|i| i.services.get(&(tenant_id.to_string(), service.to_string())).cloned())
            .unwrap_or_default()
    }

    /// Label value for a service: its name when configured, else `unknown`.
    pub fn service_label(&self, tenant_id: &str, service: &str) -> String {
        let known = self
            .inner
            .read()
            .map(|i| i.services.contains_key(&(tenant_id.to_string(), service.to_string())))
            .unwrap_or(false);
        if known {
            service.to_string()
        } else {
            "unknown".to_string()
        }
    }
}
