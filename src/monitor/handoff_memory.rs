//! What the hand-off pass remembers between passes (and across a restart after a panic): when
//! this replica last told the others it is alive, the writes whose answer was lost and how they are
//! settled, and why an attempt was raised (the `cause` label).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::coord::stream::{HandOffStream, ReadBack};
use crate::ops::AppState;
use crate::telemetry::catalogue::DISPATCH_ATTEMPTS_RAISED;

/// Why a replica handed a callback over again as its next `attempt` (the `cause` label).
#[derive(Debug, Clone, Copy)]
pub enum Raise {
    /// Another replica's claim, unpublished past the lease while that replica was not seen.
    LeaseExpired,
    /// Published, not acknowledged by the platform within `ackTimeoutSeconds`.
    AckTimeout,
    /// A write whose answer was lost and whose outcome the stream could not settle.
    PublishInDoubt,
}

impl Raise {
    pub(super) fn as_label(self) -> &'static str {
        match self {
            Raise::LeaseExpired => "lease_expired",
            Raise::AckTimeout => "ack_timeout",
            Raise::PublishInDoubt => "publish_in_doubt",
        }
    }

    /// Every cause at 0 from start-up, so the first raise shows in `increase()`.
    pub fn register_all() {
        for cause in [Raise::LeaseExpired, Raise::AckTimeout, Raise::PublishInDoubt] {
            metrics::counter!(DISPATCH_ATTEMPTS_RAISED, "cause" => cause.as_label()).increment(0);
        }
    }

    pub(super) fn count(self, n: u64) {
        if n > 0 {
            metrics::counter!(DISPATCH_ATTEMPTS_RAISED, "cause" => self.as_label()).increment(n);
        }
    }
}

/// A batch sent to the stream whose answer was lost: still marked published until the stream
/// says which of its entries it holds.
pub(super) struct InDoubt {
    pub(super) since: Option<String>,
    pub(super) held: Vec<(String, i64)>,
}

/// What the dispatch task remembers between passes (and across a restart after a panic).
#[derive(Clone, Default)]
pub struct HandOffMemory {
    last_beat: Arc<Mutex<Option<Instant>>>,
    in_doubt: Arc<Mutex<Vec<InDoubt>>>,
}

impl HandOffMemory {
    /// Tell the other replicas this one is alive and publishing (at most every quarter lease),
    /// so they leave its claims alone however long its backlog takes.
    pub(super) async fn beat(&self, state: &AppState) -> anyhow::Result<()> {
        let period = Duration::from_secs(state.settings.monitor.claim_lease_seconds) / 4;
        let due = self.last_beat.lock().map(|t| t.is_none_or(|t| t.elapsed() >= period)).unwrap_or(true);
        if due {
            state.store.heartbeat(&state.replica_id, crate::time::now()).await?;
            if let Ok(mut t) = self.last_beat.lock() {
                *t = Some(Instant::now());
            }
        }
        Ok(())
    }

    pub(super) fn remember(&self, doubt: InDoubt) {
        if let Ok(mut d) = self.in_doubt.lock() {
            d.push(doubt);
        }
    }

    fn take_doubts(&self) -> Vec<InDoubt> {
        self.in_doubt.lock().map(|mut d| std::mem::take(&mut *d)).unwrap_or_default()
    }
}

/// Ask the stream which entries of each batch in doubt it holds: those stay published; those it
/// certainly lacks are re-sent as the same attempt; only an outcome it cannot settle spends the
/// next attempt (so an (id, attempt) never reaches the stream twice). False when the stream
/// is unreachable (the doubts wait for it).
pub(super) async fn settle_doubts(
    state: &AppState,
    handoff_stream: &HandOffStream,
    memory: &HandOffMemory,
) -> anyhow::Result<bool> {
    let mut doubts = memory.take_doubts().into_iter();
    while let Some(doubt) = doubts.next() {
        match handoff_stream.read_back(doubt.since.as_deref(), &doubt.held).await {
            ReadBack::Found(written) => {
                let absent: Vec<(String, i64)> = doubt.held.iter().filter(|h| !written.contains(*h)).cloned().collect();
                state.store.unpublish(&absent, false).await?;
                tracing::info!(written = written.len(), absent = absent.len(), "a write in doubt settled by reading the stream back; absent hand-offs are re-sent as the same attempt");
            }
            ReadBack::Undecidable(why) => {
                state.store.unpublish(&doubt.held, true).await?;
                Raise::PublishInDoubt.count(doubt.held.len() as u64);
                tracing::warn!(count = doubt.held.len(), cause = Raise::PublishInDoubt.as_label(), reason = %why, "a write in doubt could not be settled; its hand-offs go out as their next attempt");
            }
            ReadBack::Unreachable(error) => {
                tracing::warn!(error = %error, "dispatch stream unreachable while settling a write in doubt; hand-offs wait");
                memory.remember(doubt);
                doubts.for_each(|d| memory.remember(d));
                return Ok(false);
            }
        }
    }
    Ok(true)
}
