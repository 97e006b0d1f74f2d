//! Fault switches of one store's writes, so a test can break a booking batch, a bulk admin
//! operation or a service's proxy record for real. They live
//! with the store, not in `telemetry::faults`' process-wide switches: tests run many applications
//! in one process, and a switch armed for one must not trip another's booking. Armed only through
//! `http::admin::faults` (`faults.enabled`); disarmed, each check is one relaxed atomic load.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;

use super::error::StoreError;

/// What the next booking batches meet (`arm_batch_fault`), for the writer's failure paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchFault {
    /// PostgreSQL's lock timeout (55P03) before the commit: the batch rolls back.
    LockTimeout,
    /// The commit happens, but its answer is lost (as a connection dropped during COMMIT).
    CommitAnswerLost,
    /// The batch rolls back, and the writer is told so as if a COMMIT's answer were lost.
    RolledBackAnswerLost,
    /// A panic in the middle of the batch, before the commit.
    Panic,
}

#[derive(Default)]
pub struct StoreFaults {
    batch_stall: AtomicBool,
    /// The armed `BatchFault` (index + 1; 0 = none) and how many batches it hits.
    batch_fault: AtomicU32,
    batch_fault_times: AtomicU32,
    writer_stall: Mutex<Option<std::time::Duration>>,
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

    /// The booking writer sleeps this long before it looks at its next batch.
    pub fn arm_writer_stall(&self, stall: std::time::Duration) {
        *self.writer_stall.lock().unwrap_or_else(|p| p.into_inner()) = Some(stall);
    }

    pub fn take_writer_stall(&self) -> Option<std::time::Duration> {
        self.writer_stall.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// The next `times` booking batches meet `fault`.
    pub fn arm_batch_fault(&self, fault: BatchFault, times: u32) {
        let code = match fault {
            BatchFault::LockTimeout => 1,
            BatchFault::CommitAnswerLost => 2,
            BatchFault::RolledBackAnswerLost => 3,
            BatchFault::Panic => 4,
        };
        self.batch_fault_times.store(times, Ordering::SeqCst);
        self.batch_fault.store(code, Ordering::SeqCst);
    }

    /// The fault this batch meets, if one is armed.
    pub fn take_batch_fault(&self) -> Option<BatchFault> {
        if self.batch_fault.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let left = self.batch_fault_times.fetch_sub(1, Ordering::SeqCst);
        let code = if left <= 1 {
            self.batch_fault.swap(0, Ordering::SeqCst)
        } else {
            self.batch_fault.load(Ordering::SeqCst)
        };
        match (left, code) {
            (0, _) => None,
            (_, 1) => Some(BatchFault::LockTimeout),
            (_, 2) => Some(BatchFault::CommitAnswerLost),
            (_, 3) => Some(BatchFault::RolledBackAnswerLost),
            (_, 4) => Some(BatchFault::Panic),
            _ => None,
        }
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
