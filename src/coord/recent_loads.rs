//! Loads shared while they are recent: concurrent callers for one key wait for the same load,
//! and later callers reuse its result until it is `max_age` old or its stamp (a configuration
//! generation) has moved on. A failed load is not kept: the next caller tries again. Used where
//! a burst of requests would otherwise send the same read to the pool hundreds of times at once
//! (service configuration on a cold cache, reservations for the proposals of a filled slot).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

pub struct RecentLoads<K, V> {
    max_age: Duration,
    /// Past this many keys, stale ones are dropped (a bound on memory for many distinct keys).
    max_entries: usize,
    entries: Arc<Mutex<HashMap<K, Entry<V>>>>,
}

struct Entry<V> {
    cell: Arc<OnceCell<V>>,
    stamp: u64,
    started: Instant,
}

impl<V> Entry<V> {
    fn fresh(&self, stamp: u64, max_age: Duration) -> bool {
        self.stamp == stamp && self.started.elapsed() < max_age
    }
}

impl<K, V> Clone for RecentLoads<K, V> {
    fn clone(&self) -> Self {
        RecentLoads { max_age: self.max_age, max_entries: self.max_entries, entries: self.entries.clone() }
    }
}

impl<K: Eq + Hash, V: Clone> RecentLoads<K, V> {
    pub fn new(max_age: Duration, max_entries: usize) -> Self {
        RecentLoads { max_age, max_entries, entries: Arc::default() }
    }

    /// The value for `key` loaded under `stamp` less than `max_age` ago, else `load`'s.
    pub async fn get_or_load<E, F, Fut>(&self, key: K, stamp: u64, load: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        self.cell(key, stamp).get_or_try_init(load).await.cloned()
    }

    /// The entry to read or fill for `key`: the current one while fresh, else a new empty one.
    fn cell(&self, key: K, stamp: u64) -> Arc<OnceCell<V>> {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(hit) = entries.get(&key).filter(|e| e.fresh(stamp, self.max_age)) {
            return hit.cell.clone();
        }
        if entries.len() >= self.max_entries {
            entries.retain(|_, e| e.fresh(stamp, self.max_age));
        }
        let cell = Arc::new(OnceCell::new());
        entries.insert(key, Entry { cell: cell.clone(), stamp, started: Instant::now() });
        cell
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
}
