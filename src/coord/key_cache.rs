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
/// Known keys: bounded only against a runaway; real deployments hold far fewer.
const MAX_KNOWN: usize = 100_000;
/// Unknown keys are kept apart and bounded on their own, so a flood of random keys never pushes
/// the valid ones out (it used to clear one shared map, valid keys included).
const MAX_UNKNOWN: usize = 10_000;
/// Every key Ringback issues is `rb_` and 32 base64url characters (`http::admin::api_keys`).
const KEY_PREFIX: &str = "rb_";
const KEY_LEN: usize = 35;

#[derive(Clone)]
pub struct KeyCache {
    ttl: Duration,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    known: HashMap<String, (ResolvedKey, Instant)>,
    unknown: HashMap<String, Instant>,
    last_touch: HashMap<String, Instant>,
}

pub fn hash_key(plaintext: &str) -> String {
    hex::encode(Sha256::digest(plaintext.as_bytes()))
}

/// Whether `plaintext` could be a key Ringback issued; anything else is refused without a query.
fn well_formed(plaintext: &str) -> bool {
    plaintext.len() == KEY_LEN
        && plaintext.starts_with(KEY_PREFIX)
        && plaintext[KEY_PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl KeyCache {
    pub fn new(ttl: Duration) -> Self {
        KeyCache { ttl, inner: Arc::new(Mutex::new(Inner::default())) }
    }

    pub async fn resolve(&self, store: &Store, plaintext: &str) -> StoreResult<Option<ResolvedKey>> {
        if !well_formed(plaintext) {
            return Ok(None);
        }
        let hash = hash_key(plaintext);
        if let Some(hit) = self.cached(&hash) {
            self.touch_if_due(store, hit.as_ref());
            return Ok(hit);
        }
        let resolved = store.resolve_api_key(&hash).await?;
        if let Ok(mut inner) = self.inner.lock() {
            let now = Instant::now();
            match &resolved {
                Some(key) => {
                    if inner.known.len() >= MAX_KNOWN {
                        inner.known.clear();
                    }
                    inner.unknown.remove(&hash);
                    inner.known.insert(hash, (key.clone(), now));
                }
                None => {
                    if inner.unknown.len() >= MAX_UNKNOWN {
                        let ttl = self.negative_ttl();
                        inner.unknown.retain(|_, at| now.duration_since(*at) < ttl);
                        if inner.unknown.len() >= MAX_UNKNOWN {
                            inner.unknown.clear();
                        }
                    }
                    inner.unknown.insert(hash, now);
                }
            }
        }
        self.touch_if_due(store, resolved.as_ref());
        Ok(resolved)
    }

    fn cached(&self, hash: &str) -> Option<Option<ResolvedKey>> {
        let inner = self.inner.lock().ok()?;
        if let Some((key, fetched)) = inner.known.get(hash) {
            return (fetched.elapsed() < self.ttl).then(|| Some(key.clone()));
        }
        let fetched = inner.unknown.get(hash)?;
        (fetched.elapsed() < self.negative_ttl()).then_some(None)
    }

    fn negative_ttl(&self) -> Duration {
        NEGATIVE_TTL.min(self.ttl)
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
            inner.known.clear();
            inner.unknown.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_shape_of_an_issued_key_is_looked_up() {
        assert!(well_formed("rb_abcdefghijklmnopqrstuvwxyzAB-_01"));
        assert!(!well_formed("rb_not_a_key"));
        assert!(!well_formed("xx_abcdefghijklmnopqrstuvwxyzAB-_01"));
        assert!(!well_formed("rb_abcdefghijklmnopqrstuvwxyzAB-_0!"));
        assert!(!well_formed("rb_abcdefghijklmnopqrstuvwxyzAB-_0é"));
    }

    #[test]
    fn keys_are_hashed_with_sha256_hex() {
        assert_eq!(hash_key("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
