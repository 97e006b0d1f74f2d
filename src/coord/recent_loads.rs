//! Loads shared while they are recent: concurrent callers for one key wait for the same load,
//! and later callers reuse its result until it is `max_age` old or its stamp (a configuration
//! generation) has moved on. A failed load is not kept: the next caller tries again. Used where
//! a burst of requests would otherwise send the same read to the pool hundreds of times at once
//! (service configuration on a cold cache, reservations for the proposals of a filled slot, the
//! lookup of one API key).
//!
//! Bounded by size with eviction (`moka`): past `max_entries` keys the least useful entries go, in
//! amortised constant time, so 100,000 distinct keys a second cost per request what 10 do — no
//! scan of the whole map under one lock.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;
use tokio::sync::OnceCell;

pub struct RecentLoads<K, V> {
    max_age: Duration,
    entries: Cache<K, Entry<V>>,
}

struct Entry<V> {
    cell: Arc<OnceCell<V>>,
    stamp: u64,
    started: Instant,
}

impl<V> Clone for Entry<V> {
    fn clone(&self) -> Self {
        Entry { cell: self.cell.clone(), stamp: self.stamp, started: self.started }
    }
}

impl<V> Entry<V> {
    fn fresh(&self, stamp: u64, max_age: Duration) -> bool {
        self.stamp == stamp && self.started.elapsed() < max_age
    }
}

impl<K, V> Clone for RecentLoads<K, V> {
    fn clone(&self) -> Self {
        RecentLoads { max_age: self.max_age, entries: self.entries.clone() }
    }
}

impl<K, V> RecentLoads<K, V>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub fn new(max_age: Duration, max_entries: usize) -> Self {
        let entries = Cache::builder().max_capacity(max_entries as u64).time_to_live(max_age).build();
        RecentLoads { max_age, entries }
    }

    /// The value for `key` loaded under `stamp` less than `max_age` ago, else `load`'s.
    pub async fn get_or_load<E, F, Fut>(&self, key: K, stamp: u64, load: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        self.cell(key, stamp).get_or_try_init(load).await.cloned()
    }

    /// The entry to read or fill for `key`: the current one while fresh, else a new empty one
    /// (chosen atomically, so concurrent callers agree on one).
    fn cell(&self, key: K, stamp: u64) -> Arc<OnceCell<V>> {
        let max_age = self.max_age;
        self.entries
            .entry(key)
            .or_insert_with_if(
                || Entry { cell: Arc::new(OnceCell::new()), stamp, started: Instant::now() },
                |existing| !existing.fresh(stamp, max_age),
            )
            .into_value()
            .cell
    }

    /// Entries held now (after pending evictions are applied).
    #[cfg(test)]
    fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn concurrent_callers_share_one_load_and_a_new_stamp_loads_again() {
        let loads = RecentLoads::<&str, u32>::new(Duration::from_secs(60), 10);
        let count = AtomicU32::new(0);
        let load = || async {
            tokio::task::yield_now().await;
            Ok::<_, ()>(count.fetch_add(1, Ordering::SeqCst))
        };
        let answers = futures_util::future::join_all((0..50).map(|_| loads.get_or_load("a", 1, load))).await;
        assert!(answers.iter().all(|a| *a == Ok(0)));
        assert_eq!(loads.get_or_load("a", 2, load).await, Ok(1), "a moved stamp loads again");
        assert_eq!(loads.get_or_load("b", 2, load).await, Ok(2), "another key loads its own");
        assert_eq!(loads.get_or_load("a", 2, || async { Err::<u32, ()>(()) }).await, Ok(1));
    }

    #[tokio::test]
    async fn a_failed_load_is_not_kept() {
        let loads = RecentLoads::<&str, u32>::new(Duration::from_secs(60), 10);
        assert_eq!(loads.get_or_load("a", 0, || async { Err::<u32, &str>("down") }).await, Err("down"));
        assert_eq!(loads.get_or_load("a", 0, || async { Ok::<u32, &str>(7) }).await, Ok(7));
    }

    #[tokio::test]
    async fn many_distinct_keys_stay_within_the_bound() {
        let loads = RecentLoads::<u32, u32>::new(Duration::from_secs(60), 100);
        for k in 0..10_000 {
            loads.get_or_load(k, 0, || async move { Ok::<u32, ()>(k) }).await.unwrap();
        }
        assert!(loads.len() <= 100, "{} entries held", loads.len());
    }
}
