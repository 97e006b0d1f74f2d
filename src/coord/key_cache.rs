//! API keys → tenant, cached in memory for at most `cache.key_ttl_seconds` (≤ 30 s), so a
//! revoked key stops working everywhere within that time while a hot key costs no query.
//! Keys are looked up by their SHA-256; the plaintext is never stored or logged.
//!
//! Floods stay cheap (issue 14): known and unknown keys live in two bounded caches (`moka`), so
//! random keys can never push a valid key out; each distinct unknown key costs at most one
//! lookup per negative TTL; and past `clients.unknown_key_lookups_per_minute` lookups of unknown
//! keys from one client address, that address's further unknown keys are refused without a
//! lookup (`governor`). A key once seen valid is never refused by that limit: its entry outlives
//! its freshness, so re-checking it (for revocation) is not an unknown-key lookup. Concurrent
//! requests with one uncached key share one lookup (`RecentLoads`): a thousand requests of a new
//! key cost one query and one unit of their address's allowance, not a thousand.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use moka::sync::Cache;
use sha2::{Digest, Sha256};

use crate::coord::recent_loads::RecentLoads;
use crate::store::{ResolvedKey, Store, StoreError, StoreResult};
use crate::telemetry::catalogue::{API_KEY_LOOKUPS, API_KEY_LOOKUPS_REFUSED};

/// How often a key's last use is written back.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// Unknown keys are remembered briefly so a flood of bad keys does not become a flood of queries.
const NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// Known keys: bounded only against a runaway; real deployments hold far fewer.
const MAX_KNOWN: u64 = 100_000;
/// How long a valid key is remembered as "known valid" (exempt from the per-address limit) after
/// its last use; its tenant data is re-read every key TTL all the same.
const KNOWN_IDLE: Duration = Duration::from_secs(3600);
/// Unknown keys are kept apart and bounded on their own.
const MAX_UNKNOWN: u64 = 10_000;
/// How long one lookup's answer is shared with the requests that asked meanwhile.
const LOOKUP_SHARED_FOR: Duration = Duration::from_secs(1);
/// Client addresses tracked by the per-address limit before idle ones are dropped.
const LIMITER_SWEEP_AT: usize = 10_000;
/// Every key Ringback issues is `rb_` and 32 base64url characters (`http::admin::api_keys`).
const KEY_PREFIX: &str = "rb_";
const KEY_LEN: usize = 35;

#[derive(Clone)]
pub struct KeyCache {
    ttl: Duration,
    /// Valid keys by hash, with until when their tenant data may be used without a lookup.
    known: Cache<String, (ResolvedKey, Instant)>,
    unknown: Cache<String, ()>,
    /// Unknown-key lookups per client address.
    lookups: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Lookups in flight (or just done), by key hash and — when the limit applies — address.
    in_flight: RecentLoads<(String, Option<IpAddr>), Lookup>,
    /// Bumped by `invalidate_all`, so a lookup started before it is not shared after it.
    generation: Arc<AtomicU64>,
    last_touch: Arc<Mutex<std::collections::HashMap<String, Instant>>>,
}

/// What one lookup found.
#[derive(Clone)]
enum Lookup {
    Valid(ResolvedKey),
    Unknown,
    /// Not looked up: the address is past its unknown-key allowance.
    Refused,
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
    /// `unknown_per_minute`: lookups of unknown keys allowed per client address per minute (and
    /// as a burst).
    pub fn new(ttl: Duration, unknown_per_minute: NonZeroU32) -> Self {
        KeyCache {
            ttl,
            known: Cache::builder().max_capacity(MAX_KNOWN).time_to_idle(KNOWN_IDLE.max(ttl)).build(),
            unknown: Cache::builder().max_capacity(MAX_UNKNOWN).time_to_live(NEGATIVE_TTL.min(ttl)).build(),
            lookups: Arc::new(RateLimiter::keyed(Quota::per_minute(unknown_per_minute))),
            in_flight: RecentLoads::new(LOOKUP_SHARED_FOR, MAX_UNKNOWN as usize),
            generation: Arc::default(),
            last_touch: Arc::default(),
        }
    }

    /// The key's tenant, or `None` for a key that is not (or may not be looked up as) valid.
    pub async fn resolve(&self, store: &Store, plaintext: &str, client: IpAddr) -> StoreResult<Option<ResolvedKey>> {
        if !well_formed(plaintext) {
            return Ok(None);
        }
        let hash = hash_key(plaintext);
        let known = self.known.get(&hash);
        if let Some((key, fresh_until)) = &known {
            if Instant::now() < *fresh_until {
                self.touch_if_due(store, key);
                return Ok(Some(key.clone()));
            }
        }
        // Keys never seen valid here are limited per address; a known one is only re-checked.
        let limited = known.is_none();
        if limited && self.unknown.contains_key(&hash) {
            return Ok(None);
        }
        let shared_by = (hash.clone(), limited.then_some(client));
        let generation = self.generation.load(Ordering::Acquire);
        let lookup = self
            .in_flight
            .get_or_load(shared_by, generation, || self.look_up(store, &hash, limited.then_some(client)))
            .await?;
        Ok(match lookup {
            Lookup::Valid(key) => {
                self.touch_if_due(store, &key);
                Some(key)
            }
            Lookup::Unknown | Lookup::Refused => None,
        })
    }

    /// One database lookup (unless `client`, when given, is past its allowance), its result
    /// cached and counted.
    async fn look_up(&self, store: &Store, hash: &str, client: Option<IpAddr>) -> Result<Lookup, StoreError> {
        if let Some(client) = client {
            if self.lookups.check_key(&client).is_err() {
                metrics::counter!(API_KEY_LOOKUPS_REFUSED).increment(1);
                return Ok(Lookup::Refused);
            }
            if self.lookups.len() > LIMITER_SWEEP_AT {
                self.lookups.retain_recent();
            }
        }
        Ok(match store.resolve_api_key(hash).await? {
            Some(key) => {
                metrics::counter!(API_KEY_LOOKUPS, "result" => "valid").increment(1);
                self.unknown.invalidate(hash);
                self.known.insert(hash.to_string(), (key.clone(), Instant::now() + self.ttl));
                Lookup::Valid(key)
            }
            None => {
                metrics::counter!(API_KEY_LOOKUPS, "result" => "unknown").increment(1);
                self.known.invalidate(hash);
                self.unknown.insert(hash.to_string(), ());
                Lookup::Unknown
            }
        })
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
                if let Err(e) = store.touch_api_key(&key_id, crate::time::now_ms()).await {
                    tracing::warn!(error = %e, "could not record API key use");
                }
            });
        }
    }

    /// Read every key again on its next use (after a key is revoked or a tenant changes here).
    /// Known keys stay known, so the per-address limit still never refuses them.
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
