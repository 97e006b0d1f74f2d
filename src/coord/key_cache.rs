//! API keys → tenant, cached in memory for at most `cache.key_ttl_seconds` (≤ 30 s), so a
//! revoked key stops working everywhere within that time while a hot key costs no query.
//! Keys are looked up by their SHA-256; the plaintext is never stored or logged.
//!
//! A forged key costs nothing (issue 22): a new-format key must carry a valid tag
//! (`domain::api_key`), and a key of the legacy shape must be one of the legacy keys this replica
//! holds in memory (loaded at start-up and re-read every key TTL; no legacy key is issued any
//! more, so the set only shrinks). Anything else answers 401 without a lookup. So every lookup
//! is of a key Ringback issued, and no per-address allowance is needed: nothing is shared between
//! an attacker and a customer. Known and unknown keys live in two bounded caches (`moka`);
//! concurrent requests with one uncached key share one lookup (`RecentLoads`).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use moka::sync::Cache;
use sha2::{Digest, Sha256};

use crate::coord::recent_loads::RecentLoads;
use crate::domain::api_key::{KeyShape, KeySigner, LEGACY_PREFIX};
use crate::store::{ResolvedKey, Store, StoreError, StoreResult};
use crate::telemetry::catalogue::{API_KEY_LEGACY_USES, API_KEY_LOOKUPS, API_KEY_LOOKUPS_REFUSED};

/// How often a key's last use is written back.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// Unknown keys are remembered briefly so a revoked key in a loop does not become a loop of queries.
const NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// Known keys: bounded only against a runaway; real deployments hold far fewer.
const MAX_KNOWN: u64 = 100_000;
/// How long an idle valid key is remembered; its tenant data is re-read every key TTL all the same.
const KNOWN_IDLE: Duration = Duration::from_secs(3600);
/// Unknown (revoked) keys are kept apart and bounded on their own.
const MAX_UNKNOWN: u64 = 10_000;
/// How long one lookup's answer is shared with the requests that asked meanwhile.
const LOOKUP_SHARED_FOR: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct KeyCache {
    ttl: Duration,
    signer: KeySigner,
    /// SHA-256 of every legacy-format key that exists.
    legacy: Arc<RwLock<HashSet<String>>>,
    /// Valid keys by hash, with until when their tenant data may be used without a lookup.
    known: Cache<String, (ResolvedKey, Instant)>,
    unknown: Cache<String, ()>,
    /// Lookups in flight (or just done), by key hash.
    in_flight: RecentLoads<String, Option<ResolvedKey>>,
    /// Bumped by `invalidate_all`, so a lookup started before it is not shared after it.
    generation: Arc<AtomicU64>,
    last_touch: Arc<Mutex<std::collections::HashMap<String, Instant>>>,
}

pub fn hash_key(plaintext: &str) -> String {
    hex::encode(Sha256::digest(plaintext.as_bytes()))
}

/// What the key cache counts of its own work (docs/architecture.md: a mechanism's instruments,
/// counted in one function of its module).
enum KeyEvent {
    /// Refused without a lookup, for this reason (the `reason` label).
    Refused(&'static str),
    /// A legacy-format key was used.
    LegacyUse,
    /// One database lookup, by result (`valid`, `unknown`).
    Lookup(&'static str),
}

fn count(event: KeyEvent) {
    match event {
        KeyEvent::Refused(reason) => metrics::counter!(API_KEY_LOOKUPS_REFUSED, "reason" => reason).increment(1),
        KeyEvent::LegacyUse => metrics::counter!(API_KEY_LEGACY_USES).increment(1),
        KeyEvent::Lookup(result) => metrics::counter!(API_KEY_LOOKUPS, "result" => result).increment(1),
    }
}

/// A key refused without a lookup, counted with its reason.
fn refused(reason: &'static str) -> StoreResult<Option<ResolvedKey>> {
    count(KeyEvent::Refused(reason));
    Ok(None)
}

impl KeyCache {
    pub fn new(ttl: Duration, signer: KeySigner, legacy: HashSet<String>) -> Self {
        KeyCache {
            ttl,
            signer,
            legacy: Arc::new(RwLock::new(legacy)),
            known: Cache::builder().max_capacity(MAX_KNOWN).time_to_idle(KNOWN_IDLE.max(ttl)).build(),
            unknown: Cache::builder().max_capacity(MAX_UNKNOWN).time_to_live(NEGATIVE_TTL.min(ttl)).build(),
            in_flight: RecentLoads::new(LOOKUP_SHARED_FOR, MAX_UNKNOWN as usize),
            generation: Arc::default(),
            last_touch: Arc::default(),
        }
    }

    /// The signer new keys are issued with.
    pub fn signer(&self) -> &KeySigner {
        &self.signer
    }

    /// Replace the set of legacy keys (re-read from the store every key TTL).
    pub fn set_legacy(&self, hashes: HashSet<String>) {
        *self.legacy.write().unwrap_or_else(|p| p.into_inner()) = hashes;
    }

    fn is_legacy_key(&self, hash: &str) -> bool {
        self.legacy.read().unwrap_or_else(|p| p.into_inner()).contains(hash)
    }

    /// The key's tenant, or `None` for a key that is not valid.
    pub async fn resolve(&self, store: &Store, plaintext: &str) -> StoreResult<Option<ResolvedKey>> {
        let hash = hash_key(plaintext);
        // A key found valid within the key TTL answers from memory: its shape was checked then.
        if let Some(key) = self.fresh_known(&hash) {
            self.touch_if_due(store, &key);
            if plaintext.starts_with(LEGACY_PREFIX) {
                count(KeyEvent::LegacyUse);
            }
            return Ok(Some(key));
        }
        let legacy = match self.signer.shape(plaintext) {
            KeyShape::Signed => false,
            KeyShape::Legacy => true,
            KeyShape::Forged => return refused("forged"),
            KeyShape::Malformed => return refused("malformed"),
        };
        if legacy && !self.is_legacy_key(&hash) {
            return refused("unknown_legacy");
        }
        let resolved = self.resolve_hash(store, hash).await?;
        if legacy && resolved.is_some() {
            count(KeyEvent::LegacyUse);
        }
        Ok(resolved)
    }

    /// The key's tenant data while it is fresh (read less than a key TTL ago).
    fn fresh_known(&self, hash: &str) -> Option<ResolvedKey> {
        self.known.get(hash).filter(|(_, fresh_until)| Instant::now() < *fresh_until).map(|(key, _)| key)
    }

    async fn resolve_hash(&self, store: &Store, hash: String) -> StoreResult<Option<ResolvedKey>> {
        if !self.known.contains_key(&hash) && self.unknown.contains_key(&hash) {
            return Ok(None);
        }
        let generation = self.generation.load(Ordering::Acquire);
        let found = self.in_flight.get_or_load(hash.clone(), generation, || self.look_up(store, &hash)).await?;
        if let Some(key) = &found {
            self.touch_if_due(store, key);
        }
        Ok(found)
    }

    /// One database lookup, its result cached and counted.
    async fn look_up(&self, store: &Store, hash: &str) -> Result<Option<ResolvedKey>, StoreError> {
        let found = store.resolve_api_key(hash).await?;
        match &found {
            Some(key) => {
                count(KeyEvent::Lookup("valid"));
                self.unknown.invalidate(hash);
                self.known.insert(hash.to_string(), (key.clone(), Instant::now() + self.ttl));
            }
            None => {
                count(KeyEvent::Lookup("unknown"));
                self.known.invalidate(hash);
                self.unknown.insert(hash.to_string(), ());
            }
        }
        Ok(found)
    }

    /// Record the key's last use at most once a minute per replica, off the request path.
    fn touch_if_due(&self, store: &Store, resolved: &ResolvedKey) {
        let due = match self.last_touch.lock() {
            Ok(mut last_touch) => {
                let now = Instant::now();
                match last_touch.get(&resolved.key_id) {
                    Some(at) if now.duration_since(*at) < TOUCH_EVERY => false,
                    _ => {
                        last_touch.insert(resolved.key_id.clone(), now);
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
                if let Err(e) = store.touch_api_key(&key_id, crate::time::now()).await {
                    tracing::warn!(error = %e, "could not record API key use");
                }
            });
        }
    }

    /// Read every key again on its next use (after a key is revoked or a tenant changes here).
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let now = Instant::now();
        for (hash, (key, _)) in self.known.iter() {
            self.known.insert(hash.as_ref().clone(), (key, now));
        }
        self.unknown.invalidate_all();
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
