//! Fault-injection switches, so every alarm can be raised for real in a test. They are global
//! because the log writer and the monitor's tasks know nothing of the application state; the routes that
//! arm them (`http::admin::faults`) exist only when `faults.enabled` is set, on the internal
//! listener. Disarmed, each check is one relaxed atomic load.

use crate::time::Moment;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

static LOG_STALL_UNTIL_MS: AtomicI64 = AtomicI64::new(0);
static TASK_PANIC: AtomicBool = AtomicBool::new(false);

/// Make the log writer behave like a stuck stdout until `until`.
pub fn stall_log_writer_until(until: Moment) {
    LOG_STALL_UNTIL_MS.store(until.as_ms(), Ordering::Relaxed);
}

/// How long the log writer should still stall; `None` (one atomic load, no clock read) when no
/// stall was ever armed — the writer calls this for every line.
pub fn log_writer_stall() -> Option<std::time::Duration> {
    let until = LOG_STALL_UNTIL_MS.load(Ordering::Relaxed);
    if until == 0 {
        return None;
    }
    let left = until - crate::time::now().as_ms();
    (left > 0).then(|| std::time::Duration::from_millis(left as u64))
}

/// The next background-task iteration that checks panics.
pub fn arm_task_panic() {
    TASK_PANIC.store(true, Ordering::SeqCst);
}

pub fn take_task_panic() -> bool {
    TASK_PANIC.swap(false, Ordering::SeqCst)
}
