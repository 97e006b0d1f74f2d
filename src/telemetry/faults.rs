//! Fault-injection switches, so every alarm can be raised for real in a test. They are global
//! because the log writer and the store know nothing of the application state; the routes that
//! arm them (`http::admin::faults`) exist only when `faults.enabled` is set, on the internal
//! listener. Disarmed, each check is one relaxed atomic load.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

static LOG_STALL_UNTIL_MS: AtomicI64 = AtomicI64::new(0);
static TASK_PANIC: AtomicBool = AtomicBool::new(false);
static VQ_PROXY_FAILURE: AtomicBool = AtomicBool::new(false);

/// Make the log writer behave like a stuck stdout until `until_ms` (epoch ms).
pub fn stall_log_writer_until(until_ms: i64) {
    LOG_STALL_UNTIL_MS.store(until_ms, Ordering::Relaxed);
}

pub fn log_writer_stall_ms(now_ms: i64) -> i64 {
    (LOG_STALL_UNTIL_MS.load(Ordering::Relaxed) - now_ms).max(0)
}

/// The next background-task iteration that checks panics.
pub fn arm_task_panic() {
    TASK_PANIC.store(true, Ordering::SeqCst);
}

pub fn take_task_panic() -> bool {
    TASK_PANIC.swap(false, Ordering::SeqCst)
}

/// The next virtual-queue proxy write fails (a real database error).
pub fn arm_vq_proxy_failure() {
    VQ_PROXY_FAILURE.store(true, Ordering::SeqCst);
}

pub fn take_vq_proxy_failure() -> bool {
    VQ_PROXY_FAILURE.swap(false, Ordering::SeqCst)
}
