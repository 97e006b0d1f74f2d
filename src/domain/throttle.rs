//! Throttle policy (domain.md § services, § booking step 4): which counters an accepted booking
//! consumes, and the in-queue limits. Counting itself lives in `coord::throttle`.

use crate::domain::service::{InQueueChecking, ServiceConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterKind {
    /// `perNumberLimit`: refusals raise `CB_ENQUEUE_LIMIT_REACHED`.
    PerNumber,
    /// `serviceRateLimits[i]`: refusals raise `CB_TTL_LIMIT_REACHED`.
    ServiceWindow,
}

/// A TTL counter as GMS keeps them: a window opens at the first accepted booking it counts and
/// lasts `window_ms`; the next accepted booking after it ends opens a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterSpec {
    pub key: String,
    pub limit: u32,
    pub window_ms: i64,
    pub kind: CounterKind,
}

/// The counters a booking for `phone` (E.164) in a service consumes. Keys share one Redis hash
/// tag per service so one script can check them all atomically (and so would a Redis Cluster).
pub fn counters(tenant_id: &str, service: &str, phone: &str, config: &ServiceConfig) -> Vec<CounterSpec> {
    let tag = format!("ringback:throttle:{{{tenant_id}:{service}}}");
    let mut specs = vec![CounterSpec {
        key: format!("{tag}:number:{}:{}", config.per_number_limit.window_seconds, phone),
        limit: config.per_number_limit.limit,
        window_ms: crate::time::seconds_ms(config.per_number_limit.window_seconds),
        kind: CounterKind::PerNumber,
    }];
    for (i, window) in config.service_rate_limits.iter().enumerate() {
        specs.push(CounterSpec {
            key: format!("{tag}:service:{i}:{}", window.window_seconds),
            limit: window.limit,
            window_ms: crate::time::seconds_ms(window.window_seconds),
            kind: CounterKind::ServiceWindow,
        });
    }
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
        assert_eq!((specs[0].limit, specs[0].window_ms, specs[0].kind), (6, 86_400_000, CounterKind::PerNumber));
        assert_eq!((specs[1].limit, specs[1].window_ms), (500, 300_000));
        assert_eq!((specs[2].limit, specs[2].window_ms), (1000, 3_600_000));
        assert!(specs.iter().all(|s| s.key.starts_with("ringback:throttle:{t1:sales}:")));
        assert_eq!(in_queue_limit(InQueueChecking::Strict), Some(1));
        assert_eq!(in_queue_limit(InQueueChecking::Off), None);
    }
}
