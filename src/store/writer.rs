//! The booking writer: group commit. Bookings from every request of this process queue here; one
//! task writes whatever has queued as one transaction (`Store::insert_batch`), and the next batch
//! forms while that one commits. No timer waits for company, so a lone booking at low load is
//! written at once; under load, a commit is shared by everyone who arrived during the previous one.
//!
//! Each request still gets its own answer, and only after the commit: a 200 means committed.
//! A failure of the database itself (unreachable, timeout) fails the whole batch; any other
//! failure is retried booking by booking, so a request whose data the database refuses fails
//! alone.

use super::booking_batch::{Booking, MAX_BATCH};
use super::callbacks::InsertOutcome;
use super::{Store, StoreError, StoreResult};
use crate::coalesce::Coalescer;

/// A handle to the writer task; cheap to clone. The task ends when every handle is dropped,
/// after writing what was queued.
#[derive(Clone)]
pub struct BookingWriter {
    queue: Coalescer<Booking, StoreResult<InsertOutcome>>,
}

impl BookingWriter {
    /// Start the writer on the current runtime.
    pub fn spawn(store: Store) -> BookingWriter {
        let queue = Coalescer::spawn(MAX_BATCH, move |batch| {
            let store = store.clone();
            async move { write(&store, batch).await }
        });
        BookingWriter { queue }
    }

    /// Write one booking with whoever else is waiting; the answer comes after the commit.
    pub async fn book(&self, booking: Booking) -> StoreResult<InsertOutcome> {
        self.queue
            .call(booking)
            .await
            .unwrap_or_else(|| Err(StoreError::Unavailable("the booking writer has stopped".into())))
    }
}

async fn write(store: &Store, batch: Vec<Booking>) -> Vec<StoreResult<InsertOutcome>> {
    let bookings: Vec<&Booking> = batch.iter().collect();
    match store.insert_batch(&bookings).await {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(StoreError::Other(e)) if batch.len() > 1 => {
            tracing::warn!(error = %e, size = batch.len(), "a booking batch failed; writing its bookings one by one");
            let mut outcomes = Vec::with_capacity(batch.len());
            for booking in &batch {
                outcomes.push(store.insert_batch(&[booking]).await.map(|mut o| o.remove(0)));
            }
            outcomes
        }
        Err(e) if batch.len() == 1 => vec![Err(e)],
        Err(e) => {
            let message = e.to_string();
            (0..batch.len())
                .map(|_| match &e {
                    StoreError::Unavailable(cause) => Err(StoreError::Unavailable(cause.clone())),
                    StoreError::Down(cause) => Err(StoreError::Down(cause.clone())),
                    StoreError::NoConnection(cause) => Err(StoreError::Unavailable(cause.clone())),
                    StoreError::Other(_) => Err(StoreError::Other(anyhow::anyhow!(message.clone()))),
                })
                .collect()
        }
    }
}
