//! Refused bookings for the outcome report (issue 27). A refusal writes nothing, so the report's
//! roll-up would never hear of it: refusals are tallied here (per tenant, service, hour and reason)
//! and added to the roll-up every second by `flush_loop`, one transaction a second however many
//! refusals a flood brings. A crash loses at most the last second's tally.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::store::{RefusalCount, Store};
use crate::time::{Moment, HOUR};

const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// (tenant id, service, hour start, reason).
type TallyKey = (String, String, Moment, String);

#[derive(Clone, Default)]
pub struct RefusalTally {
    counts: Arc<Mutex<HashMap<TallyKey, i64>>>,
}

impl RefusalTally {
    pub fn add(&self, tenant_id: &str, service: &str, reason: &str, now: Moment) {
        let key = (tenant_id.to_string(), service.to_string(), now.truncate(HOUR), reason.to_string());
        *self.counts.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_default() += 1;
    }

    fn take(&self) -> Vec<RefusalCount> {
        let taken = std::mem::take(&mut *self.counts.lock().unwrap_or_else(|p| p.into_inner()));
        taken.into_iter().map(|((t, s, h, r), n)| (t, s, h, r, n)).collect()
    }
}

/// Add the tally to the roll-up every second (supervised: `app`).
pub async fn flush_loop(tally: RefusalTally, store: Store) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    loop {
        tick.tick().await;
        flush(&tally, &store).await;
    }
}

/// Add what is tallied now. A failed write puts the counts back for the next.
pub async fn flush(tally: &RefusalTally, store: &Store) {
    let counts = tally.take();
    if counts.is_empty() {
        return;
    }
    if let Err(e) = store.add_refusals(&counts).await {
        tracing::warn!(error = %e, "could not add refusals to the outcome report; retrying next second");
        let mut tally = tally.counts.lock().unwrap_or_else(|p| p.into_inner());
        for (t, s, h, r, n) in counts {
            *tally.entry((t, s, h, r)).or_default() += n;
        }
    }
}
