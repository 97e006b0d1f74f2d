//! Throttle counters: shared across replicas in Redis; in-process when Redis is not configured;
//! and, while a configured Redis is unreachable, in-process too — logged once per outage — so
//! bookings continue with per-replica limits.
//!
//! Only accepted bookings may consume budget. A booking therefore *reserves* all its counters in
//! one atomic step (all or none), and the caller *releases* them if a later step refuses it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_redis::Pool;

use crate::coord::redis::COMMAND_TIMEOUT;
use crate::domain::throttle::CounterSpec;

/// Check every counter, then take one of each — or none.
const RESERVE: &str = r#"
for i, key in ipairs(KEYS) do
  local current = tonumber(redis.call('GET', key) or '0')
  if current + 1 > tonumber(ARGV[2 * i - 1]) then
    return {i, redis.call('PTTL', key)}
  end
end
for i, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then
    redis.call('PEXPIRE', key, ARGV[2 * i])
  end
end
return {0, 0}
"#;

const RELEASE: &str = r#"
for _, key in ipairs(KEYS) do
  local v = tonumber(redis.call('GET', key) or '0')
  if v > 0 then redis.call('DECR', key) end
end
return 0
"#;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThrottleOutcome {
    Admitted(Reservation),
    /// `index` into the counter list; when the refusing window ends.
    Refused {
        index: usize,
        retry_after_ms: i64,
    },
}

/// Counters taken by one booking, to give back if it is refused later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    keys: Vec<String>,
    in_redis: bool,
}

#[derive(Clone)]
pub struct Throttles {
    redis: Option<Pool>,
    reserve_script: Arc<redis::Script>,
    release_script: Arc<redis::Script>,
    local: Arc<Mutex<HashMap<String, (u32, Instant)>>>,
    outage: Arc<AtomicBool>,
}

impl Throttles {
    /// The cache Redis pool, when one is configured (for the pool gauges).
    pub fn pool(&self) -> Option<&Pool> {
        self.redis.as_ref()
    }

    pub fn new(redis: Option<Pool>) -> Self {
        Throttles {
            redis,
            reserve_script: Arc::new(redis::Script::new(RESERVE)),
            release_script: Arc::new(redis::Script::new(RELEASE)),
            local: Arc::default(),
            outage: Arc::default(),
        }
    }

    pub async fn reserve(&self, specs: &[CounterSpec]) -> ThrottleOutcome {
        if let Some(pool) = &self.redis {
            match self.reserve_in_redis(pool, specs).await {
                Ok(outcome) => {
                    self.redis_answered();
                    return outcome;
                }
                Err(e) => self.redis_failed(&e),
            }
        }
        self.reserve_locally(specs)
    }

    pub async fn release(&self, reservation: &Reservation) {
        if reservation.in_redis {
            if let Some(pool) = &self.redis {
                let done = tokio::time::timeout(COMMAND_TIMEOUT, async {
                    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
                    let mut call = self.release_script.prepare_invoke();
                    for key in &reservation.keys {
                        call.key(key);
                    }
                    call.invoke_async::<i64>(&mut conn).await.map_err(|e| e.to_string())
                })
                .await;
                if !matches!(done, Ok(Ok(_))) {
                    tracing::warn!("could not give back throttle budget in Redis; it returns when its window ends");
                }
            }
            return;
        }
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        for key in &reservation.keys {
            if let Some((count, _)) = local.get_mut(key) {
                *count = count.saturating_sub(1);
            }
        }
    }

    async fn reserve_in_redis(&self, pool: &Pool, specs: &[CounterSpec]) -> Result<ThrottleOutcome, String> {
        let answer = tokio::time::timeout(COMMAND_TIMEOUT, async {
            let mut conn = pool.get().await.map_err(|e| e.to_string())?;
            let mut call = self.reserve_script.prepare_invoke();
            for spec in specs {
                call.key(&spec.key).arg(spec.limit).arg(spec.window_ms.max(1));
            }
            call.invoke_async::<(i64, i64)>(&mut conn).await.map_err(|e| e.to_string())
        })
        .await
        .map_err(|_| "Redis did not answer in time".to_string())??;
        Ok(match answer {
            (0, _) => ThrottleOutcome::Admitted(Reservation {
                keys: specs.iter().map(|s| s.key.clone()).collect(),
                in_redis: true,
            }),
            (i, ttl) => ThrottleOutcome::Refused { index: (i - 1) as usize, retry_after_ms: ttl.max(1000) },
        })
    }

    fn reserve_locally(&self, specs: &[CounterSpec]) -> ThrottleOutcome {
        let now = Instant::now();
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        local.retain(|_, (_, expires)| *expires > now);
        for (index, spec) in specs.iter().enumerate() {
            if let Some((count, expires)) = local.get(&spec.key) {
                if count + 1 > spec.limit {
                    let retry_after_ms = expires.saturating_duration_since(now).as_millis() as i64;
                    return ThrottleOutcome::Refused { index, retry_after_ms: retry_after_ms.max(1000) };
                }
            }
        }
        for spec in specs {
            let window = Duration::from_millis(spec.window_ms.max(1) as u64);
            local.entry(spec.key.clone()).or_insert((0, now + window)).0 += 1;
        }
        ThrottleOutcome::Admitted(Reservation { keys: specs.iter().map(|s| s.key.clone()).collect(), in_redis: false })
    }

    /// `None` without a cache Redis; else whether it is down (by the last booking or health check).
    pub fn redis_down(&self) -> Option<bool> {
        self.redis.as_ref().map(|_| self.outage.load(Ordering::SeqCst))
    }

    /// The health checker's verdict on the cache Redis.
    pub fn observed(&self, reachable: bool) {
        if reachable {
            self.redis_answered();
        } else {
            self.redis_failed("health check failed");
        }
    }

    fn redis_failed(&self, error: &str) {
        if !self.outage.swap(true, Ordering::SeqCst) {
            tracing::warn!(error = %error, "Redis unreachable: throttles fall back to per-replica limits until it returns");
        }
    }

    fn redis_answered(&self) {
        if self.outage.swap(false, Ordering::SeqCst) {
            tracing::info!("Redis reachable again: throttles are shared across replicas again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::throttle::CounterKind;

    fn spec(key: &str, limit: u32) -> CounterSpec {
        CounterSpec { key: key.into(), limit, window_ms: 60_000, kind: CounterKind::ServiceWindow }
    }

    #[tokio::test]
    async fn local_counters_admit_up_to_the_limit_and_release_gives_back() {
        let t = Throttles::new(None);
        let specs = [spec("a", 2), spec("b", 5)];
        let first = t.reserve(&specs).await;
        assert!(matches!(first, ThrottleOutcome::Admitted(_)));
        assert!(matches!(t.reserve(&specs).await, ThrottleOutcome::Admitted(_)));
        match t.reserve(&specs).await {
            ThrottleOutcome::Refused { index, retry_after_ms } => {
                assert_eq!(index, 0);
                assert!(retry_after_ms >= 1000);
            }
            other => panic!("{other:?}"),
        }
        if let ThrottleOutcome::Admitted(r) = first {
            t.release(&r).await;
        }
        assert!(matches!(t.reserve(&specs).await, ThrottleOutcome::Admitted(_)));
        // "b" now holds 2 (the refusal took nothing, the release gave one back): three more fit.
        for _ in 0..3 {
            assert!(matches!(t.reserve(&[spec("b", 5)]).await, ThrottleOutcome::Admitted(_)));
        }
        assert!(matches!(t.reserve(&[spec("b", 5)]).await, ThrottleOutcome::Refused { .. }));
    }
}
