//! Event-loop lag (observability.md § Event-loop lag). actix runs one single-threaded runtime per
//! worker, so every worker — and the runtime hosting the monitor — runs its own probe: sleep a
//! fixed period, measure the overshoot, record it as `ges_eventloop_lag_seconds{worker}` (latest)
//! and `ges_eventloop_delay_seconds{worker}` (every sample). A blocked worker cannot run its probe,
//! so its next sample carries the whole stall. The probe never yields in a busy loop: ten timer
//! wake-ups a second per runtime.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use crate::telemetry::catalogue::{EVENTLOOP_DELAY, EVENTLOOP_LAG};

thread_local! {
    /// The label of the worker whose runtime runs on this thread (for fault injection and logs).
    static WORKER: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The worker label of the current thread, if a probe runs on it.
pub fn current_worker() -> Option<String> {
    WORKER.with(|w| w.borrow().clone())
}

/// Start a probe on the current actix worker (a single-threaded runtime with a local task set).
/// Called from the app factory, which actix runs once per worker on that worker's thread.
pub fn start_on_worker(label: String, period: Duration) {
    WORKER.with(|w| *w.borrow_mut() = Some(label.clone()));
    actix_web::rt::spawn(probe(label, period));
}

/// The probe loop; spawn it on the runtime to be watched.
pub async fn probe(label: String, period: Duration) {
    let lag = metrics::gauge!(EVENTLOOP_LAG, "worker" => label.clone());
    let delay = metrics::histogram!(EVENTLOOP_DELAY, "worker" => label);
    loop {
        let started = Instant::now();
        tokio::time::sleep(period).await;
        let overshoot = started.elapsed().saturating_sub(period).as_secs_f64();
        lag.set(overshoot);
        delay.record(overshoot);
    }
}
