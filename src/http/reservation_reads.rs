//! Shared reads of a service's capacity reservations for the slots proposed with a 429
//! `SLOT_FULL`. When a popular slot fills, the booking writer refuses a whole batch at once
//! (hundreds of requests in one commit); each refusal proposes other slots from the same
//! reservations. One read serves every refusal of the same window for `MAX_AGE`, so a full slot
//! costs one query, not one per refused request competing for the pool. Proposals are hints
//! (the slot may fill before the client books it), so a quarter-second-old view is as good.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::store::{Store, StoreResult};

const MAX_AGE: Duration = Duration::from_millis(250);
/// Windows remembered at once; stale ones are dropped past this.
const MAX_ENTRIES: usize = 1_000;

/// Reserved places per bucket start.
pub type Reserved = Arc<HashMap<i64, u32>>;
type Key = (String, String, i64, i64);
type Cell = Arc<OnceCell<Reserved>>;

#[derive(Clone, Default)]
pub struct ReservationReads {
    recent: Arc<Mutex<HashMap<Key, (Instant, Cell)>>>,
}

impl ReservationReads {
    /// Reservations of `service` in `[from, to)`, read at most `MAX_AGE` ago. Concurrent callers
    /// for one window wait for the same read; a failed read is not remembered.
    pub async fn reserved(
        &self,
        store: &Store,
        tenant_id: &str,
        service: &str,
        from: i64,
        to: i64,
    ) -> StoreResult<Reserved> {
        let cell = self.cell((tenant_id.to_string(), service.to_string(), from, to));
        let read =
            cell.get_or_try_init(|| async { store.reserved_counts(tenant_id, service, from, to).await.map(Arc::new) });
        read.await.cloned()
    }

    fn cell(&self, key: Key) -> Cell {
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if recent.len() >= MAX_ENTRIES {
            recent.retain(|_, (at, _)| now.duration_since(*at) < MAX_AGE);
        }
        match recent.get(&key) {
            Some((at, cell)) if now.duration_since(*at) < MAX_AGE => cell.clone(),
            _ => {
                let cell = Cell::default();
                recent.insert(key, (now, cell.clone()));
                cell
            }
        }
    }
}
