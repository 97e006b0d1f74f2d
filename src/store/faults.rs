//! Fault switches of one store's writes, so a test can break a booking batch, a bulk admin
//! operation or a service's proxy record for real. They live
//! with the store, not in `telemetry::faults`' process-wide switches: tests run many applications
//! in one process, and a switch armed for one must not trip another's booking. Armed only through
//! `http::admin::faults` (`faults.enabled`); disarmed, each check is one relaxed atomic load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::StoreError;

#[derive(Default)]
pub struct StoreFaults {
    batch_stall: AtomicBool,
    bulk_failure: AtomicBool,
    vq_proxy_failure: AtomicBool,
    collision_armed: AtomicBool,
    collisions: Mutex<Vec<(String, String)>>,
}

impl StoreFaults {
    /// The next booking batch writes its rows, then stalls past the statement timeout before its
    /// commit: the database "hangs" mid-batch, and the batch is rolled back.
    pub fn arm_batch_stall(&self) {
        self.batch_stall.store(true, Ordering::SeqCst);
    }

    pub fn take_batch_stall(&self) -> bool {
        self.batch_stall.load(Ordering::Relaxed) && self.batch_stall.swap(false, Ordering::SeqCst)
    }

    /// The next bulk admin operation (cancel, re-drive) fails halfway through its ids, as a
    /// database error would.
    pub fn arm_bulk_failure(&self) {
        self.bulk_failure.store(true, Ordering::SeqCst);
    }

    /// An error at the middle id of an armed bulk operation (`done` of `total` handled so far).
    pub fn fail_bulk_midway(&self, done: usize, total: usize) -> Result<(), StoreError> {
        if done == total / 2
            && self.bulk_failure.load(Ordering::Relaxed)
            && self.bulk_failure.swap(false, Ordering::SeqCst)
        {
            return Err(StoreError::Other(anyhow::anyhow!("fault injection: a bulk operation failed halfway")));
        }
        Ok(())
    }

    /// The next virtual-queue proxy write fails with a real database error.
    pub fn arm_vq_proxy_failure(&self) {
        self.vq_proxy_failure.store(true, Ordering::SeqCst);
    }

    pub fn take_vq_proxy_failure(&self) -> bool {
        self.vq_proxy_failure.load(Ordering::Relaxed) && self.vq_proxy_failure.swap(false, Ordering::SeqCst)
    }

    /// The next booking for `phone` (E.164) is written under `id`, an existing callback's id, so
    /// the database refuses its row (primary key): one poisoned request in a batch.
    pub fn arm_booking_id_collision(&self, phone: String, id: String) {
        self.collisions.lock().unwrap_or_else(|p| p.into_inner()).push((phone, id));
        self.collision_armed.store(true, Ordering::SeqCst);
    }

    /// The id to use for a booking for `phone`, when a collision is armed for it.
    pub fn take_booking_id_collision(&self, phone: &str) -> Option<String> {
        if !self.collision_armed.load(Ordering::Relaxed) {
            return None;
        }
        let mut armed = self.collisions.lock().unwrap_or_else(|p| p.into_inner());
        let at = armed.iter().position(|(p, _)| p == phone)?;
        let (_, id) = armed.remove(at);
        self.collision_armed.store(!armed.is_empty(), Ordering::SeqCst);
        Some(id)
    }
}
