//! The callback monitor (domain.md § The callback monitor): on every replica, a dispatch pass
//! each tick (claim → publish → record, re-claims, failures), an events pass (lifecycle events to
//! webhook endpoints, issue 24) and a recovery pass (expire, purge,
//! `ges_monitor_size`). Replicas cooperate only through the database.

mod events;
mod handoff;
mod handoff_memory;
mod message;
mod recovery;

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::task::JoinHandle;

pub use message::handoff_message;

use crate::coord::stream::HandOffStream;
use crate::ops::AppState;
use crate::telemetry::{faults, supervise};

/// How often the events pass looks for due lifecycle events: an event waits at most this long
/// for its first try (the goal is commit-to-delivery p99 within a second).
const EVENTS_TICK: Duration = Duration::from_millis(200);

/// Start the passes, each restarted if it panics (`UNCAUGHT_EXCEPTION`): the dispatch pass unless
/// `monitor.dispatch = "none"`, the recovery pass always. They run until the process stops.
pub fn spawn(state: AppState, handoff_stream: HandOffStream) -> Vec<JoinHandle<()>> {
    handoff_memory::Raise::register_all();
    let directory = state.directory.clone();
    let memory = handoff_memory::HandOffMemory::default();
    // `monitor.dispatch = "none"`: this replica claims and hands over nothing; housekeeping runs.
    let dispatches = state.settings.monitor.dispatch != crate::config::DispatchMode::None;
    let dispatch = dispatches.then(|| {
        let (state, directory) = (state.clone(), directory.clone());
        supervise::spawn("monitor-dispatch", move || {
            let (state, handoff_stream, directory, memory) =
                (state.clone(), handoff_stream.clone(), directory.clone(), memory.clone());
            async move {
                let tick = Duration::from_millis(state.settings.monitor.tick_ms);
                loop {
                    if faults::take_task_panic() {
                        panic!("fault injection: panic in the monitor's dispatch task");
                    }
                    handoff::pass(&state, &handoff_stream, &directory, &memory).await;
                    state.monitor_passes.dispatch.fetch_add(1, Ordering::Relaxed);
                    // An immediate booking wakes the monitor so its hand-off does not wait for the tick.
                    let _ = tokio::time::timeout(tick, state.handoff_wake.notified()).await;
                }
            }
        })
    });
    // Lifecycle events go out from every replica that hands over (any may claim them).
    let events = dispatches.then(|| {
        let state = state.clone();
        let busy = events::Busy::default();
        supervise::spawn("monitor-events", move || {
            let (state, busy) = (state.clone(), busy.clone());
            async move {
                let mut ticker = tokio::time::interval(EVENTS_TICK);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticker.tick().await;
                    events::pass(&state, &busy).await;
                }
            }
        })
    });
    let recovery = supervise::spawn("monitor-recovery", move || {
        let (state, directory) = (state.clone(), directory.clone());
        async move {
            let period = Duration::from_secs(state.settings.monitor.recovery_seconds.max(1));
            let mut ticker = tokio::time::interval(period);
            loop {
                ticker.tick().await;
                recovery::pass(&state, &directory).await;
                state.monitor_passes.recovery.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    dispatch.into_iter().chain(events).chain([recovery]).collect()
}
