//! The union of every tenant's allowed CORS origins, which preflights (they carry no API key)
//! are checked against. Refreshed from the store every few seconds and at once after a tenant
//! write on this replica.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use crate::store::{Store, StoreResult};

#[derive(Clone, Default)]
pub struct OriginCache {
    union: Arc<RwLock<HashSet<String>>>,
}

impl OriginCache {
    pub fn allows(&self, origin: &str) -> bool {
        self.union.read().map(|set| set.contains(origin)).unwrap_or(false)
    }

    pub async fn refresh(&self, store: &Store) -> StoreResult<()> {
        let tenants = store.list_tenants().await?;
        let union: HashSet<String> =
            tenants.into_iter().filter(|t| t.enabled).flat_map(|t| t.allowed_origins).collect();
        if let Ok(mut set) = self.union.write() {
            *set = union;
        }
        Ok(())
    }
}
