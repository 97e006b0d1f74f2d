//! Throttle counters: shared across replicas in Redis; in-process when Redis is not configured;
//! and, while a configured Redis is unreachable, in-process too — logged once per outage — so
//! bookings continue with per-replica limits. The outage is a breaker (`crate::breaker`): once
//! Redis is seen down, bookings go per-replica at once instead of each waiting out the command
//! timeout, and its probe brings them back to Redis within a second of its return.
//!
//! Only accepted bookings may consume budget. A booking therefore *reserves* all its counters in
//! one atomic step (all or none), and the caller *releases* them if a later step refuses it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_redis::Pool;

use crate::breaker::Breaker;
use crate::coalesce::Coalescer;
use crate::coord::redis::{answers_ping, COMMAND_TIMEOUT};
use crate::domain::throttle::{CounterSpec, NumberHasher};
use crate::time::Millis;

/// One round trip for every reservation and release that queued meanwhile (`crate::coalesce`),
/// applied in order. ARGV: the number of operations, then per operation its kind (1 reserve,
/// 2 release) and key count, and for a reservation each counter's limit and window. A
/// reservation checks every counter, then takes one of each — or none. Answers two numbers per
/// operation: 0, 0 when taken (or given back); else the refusing counter (1-based) and its PTTL.
const BATCH: &str = r#"
local k, a, out = 1, 2, {}
for _ = 1, tonumber(ARGV[1]) do
  local kind, n = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 2
  local refused = 0
  if kind == 1 then
    for i = 0, n - 1 do
      local current = tonumber(redis.call('GET', KEYS[k + i]) or '0')
      if current + 1 > tonumber(ARGV[a + 2 * i]) then refused = i + 1; break end
    end
    if refused == 0 then
      for i = 0, n - 1 do
        if redis.call('INCR', KEYS[k + i]) == 1 then redis.call('PEXPIRE', KEYS[k + i], ARGV[a + 2 * i + 1]) end
      end
    end
    a = a + 2 * n
  else
    for i = 0, n - 1 do
      local v = tonumber(redis.call('GET', KEYS[k + i]) or '0')
      if v > 0 then redis.call('DECR', KEYS[k + i]) end
    end
  end
  out[#out + 1] = refused
  out[#out + 1] = refused > 0 and redis.call('PTTL', KEYS[k + refused - 1]) or 0
  k = k + n
end
return out
"#;

/// Most operations in one script call: bounds the script's run time, during which Redis serves
/// nothing else.
const MAX_BATCH: usize = 256;
/// Throttle operations waiting for the script; past it callers wait for room (backpressure).
const QUEUE_LIMIT: usize = 16_384;

enum Op {
    Reserve(Vec<CounterSpec>),
    Release(Vec<String>),
}

/// Per operation: 0 when done, else the refusing counter (1-based) and its remaining window.
type OpAnswer = Result<(i64, i64), String>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThrottleOutcome {
    Admitted(Reservation),
    /// `index` into the counter list; when the refusing window ends.
    Refused {
        index: usize,
        retry_after: Millis,
    },
}

/// Counters taken by one booking, to give back if it is refused later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    keys: Vec<String>,
    in_redis: bool,
}

/// Stale heap entries tolerated before a rebuild.
const COMPACT_SLACK: usize = 1024;

/// The in-process counters (no Redis, or Redis down): per key a count and the end of its window.
/// Windows end in a min-heap, so expiry pops what has ended instead of scanning every entry, and a
/// count given back to zero is dropped at once: memory follows the live windows only (issue 23).
#[derive(Default)]
struct LocalCounters {
    counts: HashMap<String, (u32, Instant)>,
    ends: BinaryHeap<Reverse<(Instant, String)>>,
}

impl LocalCounters {
    fn expire(&mut self, now: Instant) {
        while let Some(Reverse((end, _))) = self.ends.peek() {
            if *end > now {
                break;
            }
            let Some(Reverse((end, key))) = self.ends.pop() else { break };
            // A window given back to zero and opened again has a later end: keep that one.
            if self.counts.get(&key).is_some_and(|(_, e)| *e == end) {
                self.counts.remove(&key);
            }
        }
    }

    fn take(&mut self, key: &str, window_end: Instant) {
        match self.counts.get_mut(key) {
            Some((count, _)) => *count += 1,
            None => {
                self.counts.insert(key.to_string(), (1, window_end));
                self.ends.push(Reverse((window_end, key.to_string())));
            }
        }
    }

    fn give_back(&mut self, key: &str) {
        if let Some((count, _)) = self.counts.get_mut(key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.counts.remove(key);
                self.compact();
            }
        }
    }

    /// Window ends of counts already dropped stay in the heap until they pass; once they
    /// outnumber the live ones, rebuild it from the live counts (amortised constant time).
    fn compact(&mut self) {
        if self.ends.len() > 2 * self.counts.len() + COMPACT_SLACK {
            self.ends = self.counts.iter().map(|(k, (_, end))| Reverse((*end, k.clone()))).collect();
        }
    }
}

#[derive(Clone)]
pub struct Throttles {
    redis: Option<Pool>,
    batches: Option<Coalescer<Op, OpAnswer>>,
    local: Arc<Mutex<LocalCounters>>,
    numbers: NumberHasher,
    outage: Breaker,
}

impl Throttles {
    /// How throttle keys name the number `e164` (a keyed hash: no number in Redis).
    pub fn number_key(&self, e164: &str) -> String {
        self.numbers.key(e164)
    }

    /// Whether the batching loop runs (always, without Redis: nothing to run).
    pub fn is_running(&self) -> bool {
        self.batches.as_ref().is_none_or(Coalescer::is_running)
    }

    /// The cache Redis pool, when one is configured (for the pool gauges).
    pub fn pool(&self) -> Option<&Pool> {
        self.redis.as_ref()
    }

    /// The throttles; with a Redis pool, this starts their batching task on the current runtime
    /// (`app.rs` calls it where the process's other tasks start).
    pub fn start(redis: Option<Pool>, numbers: NumberHasher) -> Self {
        let batches = redis.clone().map(|pool| {
            let script = Arc::new(redis::Script::new(BATCH));
            Coalescer::spawn("throttle-coalescer", MAX_BATCH, QUEUE_LIMIT, move |ops| {
                let (pool, script) = (pool.clone(), script.clone());
                async move { run_batch(&pool, &script, &ops).await }
            })
        });
        let outage = Breaker::new("cache Redis");
        outage.report_to(crate::telemetry::catalogue::REDIS_CONNECTION);
        Throttles { redis, batches, local: Arc::default(), numbers, outage }
    }

    pub async fn reserve(&self, specs: &[CounterSpec]) -> ThrottleOutcome {
        if let Some(batches) = self.batches.as_ref().filter(|_| !self.outage.is_open()) {
            match answer(batches.call(Op::Reserve(specs.to_vec())).await) {
                Ok((0, _)) => {
                    return ThrottleOutcome::Admitted(Reservation {
                        keys: specs.iter().map(|s| s.key.clone()).collect(),
                        in_redis: true,
                    });
                }
                Ok((i, ttl)) => {
                    return ThrottleOutcome::Refused {
                        index: (i - 1) as usize,
                        retry_after: Millis::from_ms(ttl.max(1000)),
                    };
                }
                Err(e) => self.redis_failed(&e),
            }
        }
        self.reserve_locally(specs)
    }

    pub async fn release(&self, reservation: &Reservation) {
        if reservation.in_redis {
            if let Some(batches) = &self.batches {
                if answer(batches.call(Op::Release(reservation.keys.clone())).await).is_err() {
                    tracing::warn!("could not give back throttle budget in Redis; it returns when its window ends");
                }
            }
            return;
        }
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        for key in &reservation.keys {
            local.give_back(key);
        }
    }

    fn reserve_locally(&self, specs: &[CounterSpec]) -> ThrottleOutcome {
        let now = Instant::now();
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        local.expire(now);
        for (index, spec) in specs.iter().enumerate() {
            if let Some((count, expires)) = local.counts.get(&spec.key) {
                if count + 1 > spec.limit {
                    let retry_after = Millis::from_std(expires.saturating_duration_since(now));
                    return ThrottleOutcome::Refused { index, retry_after: retry_after.max(Millis::from_ms(1000)) };
                }
            }
        }
        for spec in specs {
            let window = Duration::from_millis(spec.window.as_ms().max(1) as u64);
            local.take(&spec.key, now + window);
        }
        ThrottleOutcome::Admitted(Reservation { keys: specs.iter().map(|s| s.key.clone()).collect(), in_redis: false })
    }

    /// Forget counters (an erased number's, issue 27): deleted in Redis and here. How many of them
    /// existed.
    pub async fn forget(&self, keys: &[String]) -> anyhow::Result<u64> {
        let mut forgotten = 0;
        {
            let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
            for key in keys {
                forgotten += u64::from(local.counts.remove(key).is_some());
            }
        }
        if let Some(pool) = &self.redis {
            let mut conn = pool.get().await?;
            // One key a command: each counter lives in its own service's hash slot.
            for key in keys {
                forgotten += redis::cmd("DEL").arg(key).query_async::<u64>(&mut conn).await?;
            }
        }
        Ok(forgotten)
    }

    /// `None` without a cache Redis; else whether it is down (by the last booking or health check).
    pub fn redis_down(&self) -> Option<bool> {
        self.redis.as_ref().map(|_| self.outage.is_open())
    }

    /// Health check: PING the cache Redis and open or close the outage breaker on the answer.
    /// `None` without a cache Redis.
    pub async fn check(&self, within: std::time::Duration) -> Option<bool> {
        let pool = self.redis.as_ref()?;
        let reachable = answers_ping(pool, within).await;
        if reachable {
            self.redis_answered();
        } else {
            self.redis_failed("health check failed");
        }
        Some(reachable)
    }

    /// Throttles go per-replica until the probe's PING is answered (the breaker logs both).
    fn redis_failed(&self, error: &str) {
        let Some(pool) = self.redis.clone() else { return };
        self.outage.trip(&format!("{error}; throttles are per-replica until it returns"), move || {
            let pool = pool.clone();
            async move { answers_ping(&pool, COMMAND_TIMEOUT).await }
        });
    }

    fn redis_answered(&self) {
        self.outage.close();
    }
}

fn answer(answer: Option<OpAnswer>) -> OpAnswer {
    answer.unwrap_or_else(|| Err("the throttle task has stopped".into()))
}

/// One script call for the batch; a failure (or no answer in time) fails every operation in it,
/// and each caller falls back on its own.
async fn run_batch(pool: &Pool, script: &redis::Script, ops: &[Op]) -> Vec<OpAnswer> {
    let answers = tokio::time::timeout(COMMAND_TIMEOUT, async {
        let mut conn = pool.get().await.map_err(|e| e.to_string())?;
        let mut call = script.prepare_invoke();
        call.arg(ops.len());
        for op in ops {
            match op {
                Op::Reserve(specs) => {
                    call.arg(1).arg(specs.len());
                    for spec in specs {
                        call.key(&spec.key).arg(spec.limit).arg(spec.window.as_ms().max(1));
                    }
                }
                Op::Release(keys) => {
                    call.arg(2).arg(keys.len());
                    for key in keys {
                        call.key(key);
                    }
                }
            }
        }
        call.invoke_async::<Vec<i64>>(&mut conn).await.map_err(|e| e.to_string())
    })
    .await
    .map_err(|_| "Redis did not answer in time".to_string())
    .and_then(|r| r);
    match answers {
        Ok(flat) if flat.len() == 2 * ops.len() => flat.chunks(2).map(|p| Ok((p[0], p[1]))).collect(),
        Ok(flat) => {
            let e = format!("the throttle script answered {} numbers for {} operations", flat.len(), ops.len());
            ops.iter().map(|_| Err(e.clone())).collect()
        }
        Err(e) => ops.iter().map(|_| Err(e.clone())).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::throttle::CounterKind;

    fn spec(key: &str, limit: u32) -> CounterSpec {
        CounterSpec { key: key.into(), limit, window: Millis::from_ms(60_000), kind: CounterKind::ServiceWindow }
    }

    #[tokio::test]
    async fn local_counters_admit_up_to_the_limit_and_release_gives_back() {
        let t = Throttles::start(None, NumberHasher::new(b"salt".to_vec()));
        let specs = [spec("a", 2), spec("b", 5)];
        let first = t.reserve(&specs).await;
        assert!(matches!(first, ThrottleOutcome::Admitted(_)));
        assert!(matches!(t.reserve(&specs).await, ThrottleOutcome::Admitted(_)));
        match t.reserve(&specs).await {
            ThrottleOutcome::Refused { index, retry_after } => {
                assert_eq!(index, 0);
                assert!(retry_after.as_ms() >= 1000);
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

    #[tokio::test]
    async fn local_counters_stay_bounded_for_many_distinct_numbers() {
        let t = Throttles::start(None, NumberHasher::new(b"salt".to_vec()));
        // 200,000 distinct numbers whose bookings are refused later: each gives its count back.
        for n in 0..200_000 {
            let ThrottleOutcome::Admitted(r) = t.reserve(&[spec(&format!("number:{n}"), 6)]).await else {
                panic!("admitted")
            };
            t.release(&r).await;
        }
        {
            let local = t.local.lock().unwrap();
            assert_eq!(local.counts.len(), 0, "counts given back to zero are dropped");
            assert!(local.ends.len() <= COMPACT_SLACK + 1, "{} window ends held", local.ends.len());
        }
        // Windows that end are dropped without a scan, on the next reservation.
        let short =
            CounterSpec { key: "short".into(), limit: 1, window: Millis::from_ms(1), kind: CounterKind::PerNumber };
        for n in 0..1_000 {
            t.reserve(&[CounterSpec { key: format!("w{n}"), ..short.clone() }]).await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        t.reserve(&[spec("last", 1)]).await;
        let local = t.local.lock().unwrap();
        assert_eq!(local.counts.len(), 1, "only the live window is held");
        assert!(local.ends.len() <= COMPACT_SLACK + 2, "ended windows left the heap: {}", local.ends.len());
        assert!(!local.ends.iter().any(|Reverse((_, k))| k.starts_with('w')), "every ended window was popped");
    }
}
