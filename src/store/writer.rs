//! The booking writer: group commit. Bookings from every request of this process queue here; one
//! task writes whatever has queued as one transaction (`Store::insert_batch`), and the next batch
//! forms while that one commits. No timer waits for company, so a lone booking at low load is
//! written at once; under load, a commit is shared by everyone who arrived during the previous one.
//!
//! Each request gets its own answer, and only after the commit: a 200 means committed. The
//! writer fails fast and exactly once (issue 23):
//! - the queue is bounded (`booking.queue_limit`): when full, a booking is refused at once;
//! - a booking joins a batch only while its deadline leaves at least a statement timeout;
//!   otherwise it is withdrawn unwritten (503), so a client's retry never races a late commit;
//! - contention (lock timeout, deadlock, serialization failure) retries the whole batch once,
//!   then answers 503;
//! - a COMMIT whose answer is lost (timeout, dropped connection) or a panic in the batch is
//!   settled by reading the batch's rows back: rows that exist answer as committed, the others
//!   503; if the read-back fails too, 503 (exactly once across retries is `Idempotency-Key`'s job);
//! - any other failure of a batch is retried booking by booking, so a request whose data the
//!   database refuses fails alone.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use super::booking_batch::{Booking, Decided, MAX_BATCH};
use super::callbacks::InsertOutcome;
use super::error::{StoreError, StoreResult};
use super::handle::Store;
use crate::coalesce::{Coalescer, NotRun};
use crate::telemetry::catalogue::UNCAUGHT_EXCEPTION;
use crate::telemetry::otlp;
use crate::telemetry::trace_context::TraceContext;
use tracing::Instrument;

/// A handle to the writer task; cheap to clone. The task ends when every handle is dropped,
/// after writing what was queued.
#[derive(Clone)]
pub struct BookingWriter {
    queue: Coalescer<Booking, StoreResult<InsertOutcome>>,
}

impl BookingWriter {
    /// Start the writer on the current runtime, with room for `queue_limit` waiting bookings.
    pub fn spawn(store: Store, queue_limit: usize) -> BookingWriter {
        let queue = Coalescer::spawn("booking-writer", MAX_BATCH, queue_limit, move |batch| {
            let store = store.clone();
            let span = batch_span(&batch);
            async move { write(&store, batch).await }.instrument(span)
        });
        BookingWriter { queue }
    }

    /// Write one booking with whoever else is waiting; the answer comes after the commit.
    pub async fn book(&self, booking: Booking) -> StoreResult<InsertOutcome> {
        match self.queue.try_call(booking).await {
            Ok(outcome) => outcome,
            Err(NotRun::Full) => Err(StoreError::Shed("the booking queue is full".into())),
            Err(NotRun::Unanswered) => Err(StoreError::Unavailable("the booking writer did not answer".into())),
        }
    }

    /// Whether the writer's loop runs (readiness).
    pub fn is_running(&self) -> bool {
        self.queue.is_running()
    }
}

/// One span for a batch holding sampled bookings when spans are exported, linked to each sampled
/// booking's request: one transaction serves many traces, so the batch is a child of none of them.
fn batch_span(batch: &[Booking]) -> tracing::Span {
    if !otlp::enabled() {
        return tracing::Span::none();
    }
    let mut sampled = batch
        .iter()
        .filter_map(|b| b.new.traceparent.as_deref().and_then(TraceContext::parse))
        .filter(|t| t.sampled)
        .peekable();
    if sampled.peek().is_none() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(parent: None, "booking_batch", otel.kind = "internal", size = batch.len());
    for request in sampled {
        otlp::link(&span, &request);
    }
    span
}

async fn write(store: &Store, batch: Vec<Booking>) -> Vec<StoreResult<InsertOutcome>> {
    if let Some(stall) = store.faults().take_writer_stall() {
        tokio::time::sleep(stall).await;
    }
    let now = Instant::now();
    let live: Vec<&Booking> = batch.iter().filter(|b| in_time(store, b, now)).collect();
    let mut written = write_live(store, &live).await.into_iter();
    batch
        .iter()
        .map(|b| match in_time(store, b, now) {
            true => written.next().unwrap_or_else(|| Err(StoreError::Unavailable("no answer".into()))),
            false => Err(StoreError::Shed("the booking's deadline left no time to write it".into())),
        })
        .collect()
}

/// Whether a booking may still be written at `now`: its deadline leaves a statement timeout.
fn in_time(store: &Store, booking: &Booking, now: Instant) -> bool {
    booking.deadline.saturating_duration_since(now) >= store.statement_timeout
}

/// Write `batch` (one transaction), settling contention, a lost COMMIT answer and a panic.
async fn write_live(store: &Store, batch: &[&Booking]) -> Vec<StoreResult<InsertOutcome>> {
    if batch.is_empty() {
        return Vec::new();
    }
    let mut contended = false;
    loop {
        let decided = Decided::default();
        let attempt = AssertUnwindSafe(store.insert_batch(batch, &decided)).catch_unwind().await;
        let decided = decided.into_inner().unwrap_or_else(|p| p.into_inner());
        let error = match attempt {
            Ok(Ok(outcomes)) => return outcomes.into_iter().map(Ok).collect(),
            Err(_) => {
                // The location was logged by the panic hook; the message may quote input.
                metrics::counter!(UNCAUGHT_EXCEPTION).increment(1);
                tracing::error!(size = batch.len(), "a booking batch panicked; reading its rows back");
                return read_back(store, batch, decided).await;
            }
            Ok(Err(e)) => e,
        };
        match error {
            _ if decided.is_some() => {
                tracing::warn!(error = %error, size = batch.len(), "a COMMIT's answer was lost; reading its rows back");
                return read_back(store, batch, decided).await;
            }
            StoreError::Contention(cause) if !contended => {
                tracing::info!(error = %cause, size = batch.len(), "a booking batch met contention; retrying it once");
                contended = true;
            }
            StoreError::Contention(cause) => return same_for_all(batch.len(), &StoreError::Unavailable(cause)),
            StoreError::Other(e) if batch.len() > 1 => {
                tracing::warn!(error = %e, size = batch.len(), "a booking batch failed; writing its bookings one by one");
                let mut outcomes = Vec::with_capacity(batch.len());
                for booking in batch {
                    // One by one takes longer: each still goes only while its deadline allows.
                    if !in_time(store, booking, Instant::now()) {
                        outcomes.push(Err(StoreError::Shed("the booking's deadline left no time to write it".into())));
                        continue;
                    }
                    outcomes.extend(Box::pin(write_live(store, &[*booking])).await);
                }
                return outcomes;
            }
            error if batch.len() == 1 => return vec![Err(error)],
            error => return same_for_all(batch.len(), &error),
        }
    }
}

fn same_for_all(n: usize, error: &StoreError) -> Vec<StoreResult<InsertOutcome>> {
    let message = error.to_string();
    (0..n)
        .map(|_| match error {
            StoreError::Unavailable(cause) | StoreError::Contention(cause) | StoreError::NoConnection(cause) => {
                Err(StoreError::Unavailable(cause.clone()))
            }
            StoreError::Down(cause) => Err(StoreError::Down(cause.clone())),
            StoreError::Shed(cause) => Err(StoreError::Shed(cause.clone())),
            StoreError::Other(_) => Err(StoreError::Other(anyhow::anyhow!(message.clone()))),
        })
        .collect()
}

/// The batch's fate when its COMMIT's answer is lost: bookings decided as refusals wrote
/// nothing and keep their answer; the others are committed if and only if their row exists.
async fn read_back(
    store: &Store,
    batch: &[&Booking],
    decided: Option<Vec<InsertOutcome>>,
) -> Vec<StoreResult<InsertOutcome>> {
    let decided = decided.unwrap_or_else(|| vec![InsertOutcome::Inserted; batch.len()]);
    let ids: Vec<&str> = batch.iter().map(|b| b.new.id.as_str()).collect();
    // The read-back gets its own statement timeout, however late the batch already is.
    let existing = match tokio::time::timeout(
        store.statement_timeout + Duration::from_millis(100),
        store.existing_callback_ids(&ids),
    )
    .await
    {
        Ok(Ok(existing)) => existing,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "the read-back failed; answering 503");
            return same_for_all(batch.len(), &StoreError::Unavailable("the outcome of the commit is unknown".into()));
        }
        Err(_) => return same_for_all(batch.len(), &StoreError::Unavailable("the read-back timed out".into())),
    };
    batch
        .iter()
        .zip(decided)
        .map(|(b, outcome)| match outcome {
            InsertOutcome::Inserted if existing.contains(&b.new.id) => Ok(InsertOutcome::Inserted),
            InsertOutcome::Inserted => Err(StoreError::Unavailable("the batch was not committed".into())),
            refusal => Ok(refusal),
        })
        .collect()
}
