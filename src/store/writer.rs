//! The booking writer: group commit. Bookings from every request of this process queue here; one
//! task writes whatever has queued as one transaction (`Store::insert_batch`), and the next batch
//! forms while that one commits. No timer waits for company, so a lone booking at low load is
//! written at once; under load, a commit is shared by everyone who arrived during the previous one.
//!
//! Each request still gets its own answer, and only after the commit: a 200 means committed.
//! A failure of the database itself (unreachable, timeout) fails the whole batch; any other
//! failure is retried booking by booking, so a request whose data the database refuses fails
//! alone.

use tokio::sync::{mpsc, oneshot};

use super::booking_batch::{Booking, MAX_BATCH};
use super::callbacks::InsertOutcome;
use super::{Store, StoreError, StoreResult};

struct Job {
    booking: Booking,
    answer: oneshot::Sender<StoreResult<InsertOutcome>>,
}

/// A handle to the writer task; cheap to clone. The task ends when every handle is dropped,
/// after writing what was queued.
#[derive(Clone)]
pub struct BookingWriter {
    queue: mpsc::UnboundedSender<Job>,
}

impl BookingWriter {
    /// Start the writer on the current runtime.
    pub fn spawn(store: Store) -> BookingWriter {
        let (queue, jobs) = mpsc::unbounded_channel();
        tokio::spawn(run(store, jobs));
        BookingWriter { queue }
    }

    /// Write one booking with whoever else is waiting; the answer comes after the commit.
    pub async fn book(&self, booking: Booking) -> StoreResult<InsertOutcome> {
        let (answer, answered) = oneshot::channel();
        if self.queue.send(Job { booking, answer }).is_err() {
            return Err(StoreError::Unavailable("the booking writer has stopped".into()));
        }
        answered.await.unwrap_or_else(|_| Err(StoreError::Unavailable("the booking writer has stopped".into())))
    }
}

async fn run(store: Store, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        write(&store, std::mem::take(&mut batch)).await;
        batch.reserve(MAX_BATCH);
    }
}

async fn write(store: &Store, batch: Vec<Job>) {
    let bookings: Vec<&Booking> = batch.iter().map(|j| &j.booking).collect();
    match store.insert_batch(&bookings).await {
        Ok(outcomes) => {
            for (job, outcome) in batch.into_iter().zip(outcomes) {
                let _ = job.answer.send(Ok(outcome));
            }
        }
        Err(StoreError::Other(e)) if batch.len() > 1 => {
            tracing::warn!(error = %e, size = batch.len(), "a booking batch failed; writing its bookings one by one");
            for job in batch {
                let outcome = store.insert_batch(&[&job.booking]).await.map(|mut o| o.remove(0));
                let _ = job.answer.send(outcome);
            }
        }
        Err(e) if batch.len() == 1 => {
            if let Some(job) = batch.into_iter().next() {
                let _ = job.answer.send(Err(e));
            }
        }
        Err(e) => {
            let message = e.to_string();
            let unavailable = matches!(e, StoreError::Unavailable(_));
            for job in batch {
                let error = match unavailable {
                    true => StoreError::Unavailable(message.clone()),
                    false => StoreError::Other(anyhow::anyhow!(message.clone())),
                };
                let _ = job.answer.send(Err(error));
            }
        }
    }
}
