//! Throttle policy (domain.md § services, § booking step 4): which counters an accepted booking
//! consumes, and the in-queue limits. Counting itself lives in `coord::throttle`.

use crate::domain::call_in::CallInGroupConfig;
use crate::domain::service::{InQueueChecking, RateLimit, ServiceConfig};
use crate::time::Millis;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterKind {
    /// `perNumberLimit`: refusals raise `CB_ENQUEUE_LIMIT_REACHED`.
    PerNumber,
    /// `serviceRateLimits[i]`: refusals raise `CB_TTL_LIMIT_REACHED`.
    ServiceWindow,
}

/// Throttle keys name a number by a keyed hash, never in clear (issue 23): Redis holds no phone
/// number. The salt is generated once per deployment and kept in the database (apart from the
/// API-key signing secret, so rotating that does not reset throttle windows).
#[derive(Clone)]
pub struct NumberHasher {
    /// The HMAC keyed with the salt once; each number starts from a copy of it.
    keyed: hmac::Hmac<sha2::Sha256>,
}

impl NumberHasher {
    pub fn new(salt: Vec<u8>) -> Self {
        use hmac::Mac;
        NumberHasher { keyed: hmac::Hmac::new_from_slice(&salt).expect("HMAC takes a key of any length") }
    }

    /// 128 bits of HMAC-SHA256(salt, E.164), hex.
    pub fn key(&self, e164: &str) -> String {
        use hmac::Mac;
        let mut mac = self.keyed.clone();
        mac.update(e164.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }
}

/// A TTL counter as GMS keeps them: a window opens at the first accepted booking it counts and
/// lasts `window_ms`; the next accepted booking after it ends opens a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterSpec {
    pub key: String,
    pub limit: u32,
    pub window: Millis,
    pub kind: CounterKind,
}

/// The counters a booking for a number (`number`: its `NumberHasher` key) in a service consumes. Keys share one Redis hash
/// tag per service so one script can check them all atomically (and so would a Redis Cluster).
pub fn counters(tenant_id: &str, service: &str, number: &str, config: &ServiceConfig) -> Vec<CounterSpec> {
    let tag = format!("ringback:throttle:{{{tenant_id}:{service}}}");
    let per_number = format!("{tag}:number:{}:{}", config.per_number_limit.window_seconds, number);
    let mut specs = vec![counter(per_number, &config.per_number_limit, CounterKind::PerNumber)];
    for (i, window) in config.service_rate_limits.iter().enumerate() {
        specs.push(counter(format!("{tag}:service:{i}:{}", window.window_seconds), window, CounterKind::ServiceWindow));
    }
    specs
}

fn counter(key: String, limit: &RateLimit, kind: CounterKind) -> CounterSpec {
    CounterSpec { key, limit: limit.limit, window: crate::time::Millis::from_secs(limit.window_seconds), kind }
}

/// The counters a call-in request consumes (issue 22): per `fromPhoneNumber` when one is given,
/// and the group's rate. A loop can no longer hold every number and code of a group.
pub fn callin_counters(
    tenant_id: &str,
    group: &str,
    from: Option<&str>,
    config: &CallInGroupConfig,
) -> Vec<CounterSpec> {
    let tag = format!("ringback:throttle:{{{tenant_id}:callin:{group}}}");
    let mut specs = Vec::with_capacity(2);
    if let Some(from) = from {
        let key = format!("{tag}:number:{}:{from}", config.per_number_limit.window_seconds);
        specs.push(counter(key, &config.per_number_limit, CounterKind::PerNumber));
    }
    let key = format!("{tag}:group:{}", config.rate_limit.window_seconds);
    specs.push(counter(key, &config.rate_limit, CounterKind::ServiceWindow));
    specs
}

/// Unfinished callbacks a number may already have in the service before in-queue checking
/// refuses it: `"true"` allows 1 more while it has fewer than 2, `"strict"` none while it has 1.
pub fn in_queue_limit(mode: InQueueChecking) -> Option<i64> {
    match mode {
        InQueueChecking::Off => None,
        InQueueChecking::On => Some(2),
        InQueueChecking::Strict => Some(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_counter_per_number_and_per_service_window() {
        let specs = counters("t1", "sales", "+14155552671", &ServiceConfig::default());
        assert_eq!(specs.len(), 3);
        assert_eq!((specs[0].limit, specs[0].window.as_ms(), specs[0].kind), (6, 86_400_000, CounterKind::PerNumber));
        assert_eq!((specs[1].limit, specs[1].window.as_ms()), (500, 300_000));
        assert_eq!((specs[2].limit, specs[2].window.as_ms()), (1000, 3_600_000));
        assert!(specs.iter().all(|s| s.key.starts_with("ringback:throttle:{t1:sales}:")));
        assert_eq!(in_queue_limit(InQueueChecking::Strict), Some(1));
        let hasher = NumberHasher::new(b"salt".to_vec());
        let key = hasher.key("+14155552671");
        assert_eq!(key.len(), 32);
        assert!(!key.contains("4155552671"));
        assert_eq!(key, hasher.key("+14155552671"), "stable");
        assert_ne!(key, NumberHasher::new(b"other".to_vec()).key("+14155552671"), "keyed");
        assert_eq!(in_queue_limit(InQueueChecking::Off), None);
    }

    #[test]
    fn call_in_counts_per_caller_and_per_group() {
        let config = CallInGroupConfig::default();
        let specs = callin_counters("t1", "g", Some("+14155552671"), &config);
        assert_eq!((specs[0].limit, specs[0].window.as_ms(), specs[0].kind), (6, 3_600_000, CounterKind::PerNumber));
        assert_eq!((specs[1].limit, specs[1].window.as_ms(), specs[1].kind), (600, 60_000, CounterKind::ServiceWindow));
        assert_eq!(callin_counters("t1", "g", None, &config).len(), 1, "no caller, no per-number counter");
        assert!(specs.iter().all(|s| s.key.starts_with("ringback:throttle:{t1:callin:g}:")));
    }
}
