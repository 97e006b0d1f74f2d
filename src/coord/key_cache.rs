//! API keys → tenant, cached in memory for at most `cache.key_ttl_seconds` (≤ 30 s), so a
//! revoked key stops working everywhere within that time while a hot key costs no query.
//! Keys are looked up by their SHA-256; the plaintext is never stored or logged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::store::{ResolvedKey, Store, StoreResult};

/// How often a key's last use is written back.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// Unknown keys are remembered briefly so a flood of bad keys does not become a flood of queries.
const NEGATIVE_TTL: Duration = Duration::from_secs(5);
const MAX_ENTRIES: usize = 100_000;

#[derive(Clone)]
pub struct KeyCache {
    ttl: Duration,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    by_hash: HashMap<String, Entry>,
    last_touch: HashMap<String, Instant>,
}

struct Entry {
    resolved: Option<ResolvedKey>,
    fetched: Instant,
}

pub fn hash_key(plaintext: &str) -> String {
    hex::encode(Sha256::digest(plaintext.as_bytes()))
}

impl KeyCache {
    pub fn new(ttl: Duration) -> Self {
        KeyCache { ttl, inner: Arc::new(Mutex::new(Inner::default())) }
    }

    pub async fn resolve(&self, store: &Store, plaintext: &str) -> StoreResult<Option<ResolvedKey>> {
        let hash = hash_key(plaintext);
        if let Some(hit) = self.cached(&hash) {
            self.touch_if_due(store, hit.as_ref());
            return Ok(hit);
        }
        let resolved = store.resolve_api_key(&hash).await?;
        if let Ok(mut inner) = self.inner.lock() {
            if inner.by_hash.len() >= MAX_ENTRIES {
                inner.by_hash.clear();
            }
            inner.by_hash.insert(hash, Entry { resolved: resolved.clone(), fetched: Instant::now() });
        }
        self.touch_if_due(store, resolved.as_ref());
        Ok(resolved)
    }

    fn cached(&self, hash: &str) -> Option<Option<ResolvedKey>> {
        let inner = self.inner.lock().ok()?;
        let entry = inner.by_hash.get(hash)?;
        let ttl = if entry.resolved.is_some() { self.ttl } else { NEGATIVE_TTL.min(self.ttl) };
        (entry.fetched.elapsed() < ttl).then(|| entry.resolved.clone())
    }

    /// Record the key's last use at most once a minute per replica, off the request path.
    fn touch_if_due(&self, store: &Store, resolved: Option<&ResolvedKey>) {
        let Some(resolved) = resolved else { return };
        let due = match self.inner.lock() {
            Ok(mut inner) => {
                let now = Instant::now();
                match inner.last_touch.get(&resolved.key_id) {
                    Some(at) if now.duration_since(*at) < TOUCH_EVERY => false,
                    _ => {
                        inner.last_touch.insert(resolved.key_id.clone(), now);
                        true
                    }
                }
            }
            Err(_) => false,
        };
        if due {
            let store = store.clone();
            let key_id = resolved.key_id.clone();
            tokio::spawn(async move {
                if let Err(e) = store.touch_api_key(&key_id, crate::domain::time::now_ms()).await {
                    tracing::warn!(error = %e, "could not record API key use");
                }
            });
        }
    }

    /// Forget everything this replica cached (after a key is revoked or a tenant changes here).
    pub fn invalidate_all(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.by_hash.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hashed_with_sha256_hex() {
        assert_eq!(hash_key("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
