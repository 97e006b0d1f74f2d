//! The transactional outbox (issue 24): one table for everything the platform or a webhook
//! endpoint must hear of a committed change. A row with no `endpoint` is a `callback.cancel` for
//! the service's dispatch target (published by the monitor's dispatch pass); a row with one is a
//! lifecycle event for that endpoint, written by the transaction of the change it reports — so an
//! event exists if and only if its change committed — and delivered at least once, in order per
//! callback and endpoint, by whichever replica claims it.
//!
//! Which endpoints hear a change is a join with `webhook_subscriptions` inside that transaction:
//! no replica has to know the endpoints in memory, and a tenant without subscriptions pays one
//! index probe that finds nothing.

use std::sync::LazyLock;

use sqlx::{Any, Row, Transaction};

use super::audit::{append_audit, AuditEntry};
use super::error::StoreResult;
use super::handle::Store;
use crate::domain::webhook::LifecycleEvent;
use crate::time::{Millis, Moment};

/// The columns an event row is written with (`events_insert`).
const EVENT_COLUMNS: &str =
    "tenant_id, endpoint, callback_id, service_name, event_type, state, reason, attempt, due_ms, occurred_ms, next_ms";

/// `INSERT … SELECT` of the events `condition` picks (on subscription `s` and callback row `c`)
/// for the rows of `source` (aliased `c`, with the columns of `callbacks`; those `filter` keeps)
/// whose tenant has an endpoint subscribed to them for their service: in order per callback and,
/// within one change, `callback.created` before `callback.dispatched`. The event's time is the
/// row's `updated_ms`: every change sets it.
fn events_insert(source: &str, condition: &str, filter: &str) -> String {
    format!(
        "INSERT INTO outbox ({EVENT_COLUMNS})
         SELECT c.tenant_id, s.endpoint, c.id, c.service_name, s.event_type, c.state, c.reason, c.attempt, c.due_ms,
                c.updated_ms, c.updated_ms
         FROM {source} JOIN webhook_subscriptions s
           ON s.tenant_id = c.tenant_id AND s.service_name IN ('', c.service_name) AND ({condition})
         WHERE {filter}
         ORDER BY c.id, s.event_type"
    )
}

/// `callback.created` for new callback rows, and `callback.dispatched` too for those booked
/// straight into a hand-off (`QUEUED`, claimed by the booking). Built once: every batch uses it.
static BOOKING_CONDITION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "s.event_type = '{}' OR (s.event_type = '{}' AND c.state = 'QUEUED')",
        LifecycleEvent::Created.as_str(),
        LifecycleEvent::Dispatched.as_str()
    )
});

/// The booking's events for every row of the batch statement's `inserted` (PostgreSQL), built once.
pub(super) fn booking_events_of_inserted() -> &'static str {
    static SQL: LazyLock<String> = LazyLock::new(|| events_insert("inserted c", &BOOKING_CONDITION, "TRUE"));
    &SQL
}

/// Write `event` for the callbacks `ids` inside the caller's transaction, after their change.
pub(super) async fn record_events(
    tx: &mut Transaction<'_, Any>,
    event: LifecycleEvent,
    ids: &[&str],
) -> StoreResult<()> {
    insert_events_for(tx, &format!("s.event_type = '{}'", event.as_str()), ids).await
}

/// The booking's events for the new callbacks `ids`, inside its transaction (SQLite).
pub(super) async fn record_booking_events(tx: &mut Transaction<'_, Any>, ids: &[&str]) -> StoreResult<()> {
    insert_events_for(tx, &BOOKING_CONDITION, ids).await
}

async fn insert_events_for(tx: &mut Transaction<'_, Any>, condition: &str, ids: &[&str]) -> StoreResult<()> {
    for chunk in ids.chunks(super::handle::ROWS_PER_STATEMENT) {
        let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = events_insert("callbacks c", condition, &format!("c.id IN ({})", marks.join(", ")));
        let query = chunk.iter().fold(sqlx::query(&sql), |q, id| q.bind(id.to_string()));
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Write `call_in.matched` for a call-in request inside the caller's transaction (its group
/// stands in for the service in `services` filters).
pub(super) async fn record_callin_matched(tx: &mut Transaction<'_, Any>, id: &str) -> StoreResult<()> {
    let event = LifecycleEvent::CallInMatched.as_str();
    let sql = format!(
        "INSERT INTO outbox ({EVENT_COLUMNS})
         SELECT r.tenant_id, s.endpoint, r.id, r.group_name, '{event}', r.state, NULL, 0, NULL, r.updated_ms, r.updated_ms
         FROM callin_requests r JOIN webhook_subscriptions s
           ON s.tenant_id = r.tenant_id AND s.event_type = '{event}' AND s.service_name IN ('', r.group_name)
         WHERE r.id = $1"
    );
    sqlx::query(&sql).bind(id).execute(&mut **tx).await?;
    Ok(())
}

/// Write a `callback.cancel` for the service's dispatch target (a hand-off cancelled after
/// publication) inside the caller's transaction.
pub(super) async fn record_cancel_message(
    tx: &mut Transaction<'_, Any>,
    record: &super::callbacks::CallbackRecord,
    now: Moment,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO outbox (tenant_id, callback_id, service_name, event_type, attempt, occurred_ms, next_ms)
         VALUES ($1, $2, $3, 'callback.cancel', $4, $5, $5)",
    )
    .bind(record.tenant_id.clone())
    .bind(record.id.clone())
    .bind(record.service_name.clone())
    .bind(record.attempt)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// (Re)write an endpoint's subscriptions inside the caller's transaction: the (event, service)
/// pairs it hears, none while it is disabled.
pub(super) async fn write_subscriptions(
    tx: &mut Transaction<'_, Any>,
    tenant_id: &str,
    endpoint: &str,
    pairs: &[(&str, &str)],
) -> StoreResult<()> {
    sqlx::query("DELETE FROM webhook_subscriptions WHERE tenant_id = $1 AND endpoint = $2")
        .bind(tenant_id)
        .bind(endpoint)
        .execute(&mut **tx)
        .await?;
    for chunk in pairs.chunks(super::handle::ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO webhook_subscriptions (tenant_id, endpoint, event_type, service_name) VALUES {}",
            super::placeholders::placeholders(chunk.len(), 4)
        );
        let query = chunk.iter().fold(sqlx::query(&sql), |q, (event, service)| {
            q.bind(tenant_id.to_string()).bind(endpoint.to_string()).bind(event.to_string()).bind(service.to_string())
        });
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// A lifecycle event claimed for delivery, with what its body needs from its subject's row.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    pub id: i64,
    pub tenant_id: String,
    /// The tenant's name (its id if the tenant is gone).
    pub tenant_name: String,
    pub endpoint: String,
    /// The callback's id, or the call-in request's for `call_in.matched`.
    pub subject_id: String,
    /// The service (the call-in group for `call_in.matched`).
    pub service_name: String,
    pub event_type: String,
    pub state: Option<String>,
    pub reason: Option<String>,
    pub attempt: i64,
    pub due_ms: Option<Moment>,
    pub occurred_ms: Moment,
    /// Failed deliveries so far.
    pub tries: i64,
    /// The customer's number (the caller's, for a call-in), if the subject's row still exists.
    pub phone: Option<String>,
    /// For `call_in.matched`: the callback the request belongs to and the number it called.
    pub call_in: Option<(Option<String>, String)>,
}

const PENDING_COLUMNS: &str = "id, tenant_id, endpoint, callback_id, service_name, event_type, state, reason, \
     attempt, due_ms, occurred_ms, tries";

fn pending_from_row(r: &sqlx::any::AnyRow) -> StoreResult<PendingEvent> {
    Ok(PendingEvent {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        tenant_name: r.try_get("tenant_id")?,
        endpoint: r.try_get("endpoint")?,
        subject_id: r.try_get("callback_id")?,
        service_name: r.try_get("service_name")?,
        event_type: r.try_get("event_type")?,
        state: r.try_get("state")?,
        reason: r.try_get("reason")?,
        attempt: r.try_get("attempt")?,
        due_ms: r.try_get("due_ms")?,
        occurred_ms: r.try_get("occurred_ms")?,
        tries: r.try_get("tries")?,
        phone: None,
        call_in: None,
    })
}

/// Whose events a claim may take: every endpoint but those (tenant id, name) this replica is
/// busy delivering to, or one endpoint only (its delivery task taking its next chunk).
#[derive(Debug, Clone)]
pub enum ClaimScope {
    AllBut(Vec<(String, String)>),
    Endpoint((String, String)),
}

/// What became of one claimed event.
#[derive(Debug, Clone)]
pub enum EventOutcome {
    Delivered(i64),
    /// Not delivered: try again at `next_ms`, or mark it failed (`give_up`).
    Retry {
        id: i64,
        next_ms: Moment,
        error: String,
        give_up: bool,
    },
}

impl Store {
    /// Claim up to `limit` events due for delivery for `replica` until `now + lease_ms`, of the
    /// endpoints `scope` names: each the oldest unfinished one of its callback for its endpoint (so
    /// order per callback holds across replicas), skipping rows another replica is claiming. A
    /// claim lapses at its end, or as soon as its replica has not been seen since `seen_after`
    /// (killed: its claims need not wait).
    pub async fn claim_events(
        &self,
        replica: &str,
        now: Moment,
        lease_ms: Millis,
        seen_after: Moment,
        scope: &ClaimScope,
        limit: i64,
    ) -> StoreResult<Vec<PendingEvent>> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let (scoped, keys) = match scope {
                ClaimScope::AllBut(busy) if busy.is_empty() => (String::new(), Vec::new()),
                ClaimScope::AllBut(busy) => {
                    let marks: Vec<String> =
                        (0..busy.len()).map(|i| format!("(${}, ${})", 6 + 2 * i, 7 + 2 * i)).collect();
                    (format!(" AND (o.tenant_id, o.endpoint) NOT IN (VALUES {})", marks.join(", ")), busy.clone())
                }
                ClaimScope::Endpoint(key) => {
                    (" AND o.tenant_id = $6 AND o.endpoint = $7".to_string(), vec![key.clone()])
                }
            };
            let sql = self.update_picked(
                "outbox",
                &format!(
                    "SELECT o.id FROM outbox o
                     WHERE o.endpoint IS NOT NULL AND o.failed_ms IS NULL AND o.next_ms <= $1{scoped}
                       AND (o.claim_until_ms IS NULL OR o.claim_until_ms < $1
                            OR NOT EXISTS (SELECT 1 FROM replicas r WHERE r.id = o.claimed_by AND r.seen_ms > $5))
                       AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.callback_id = o.callback_id
                                       AND p.endpoint = o.endpoint AND p.failed_ms IS NULL AND p.id < o.id)
                     ORDER BY o.next_ms LIMIT $3"
                ),
                "claimed_by = $2, claim_until_ms = $1 + $4",
                PENDING_COLUMNS,
            );
            let query = sqlx::query(&sql).bind(now).bind(replica).bind(limit).bind(lease_ms).bind(seen_after);
            let query = keys.iter().fold(query, |q, (tenant, endpoint)| q.bind(tenant.clone()).bind(endpoint.clone()));
            let rows = query.fetch_all(&mut *tx).await?;
            let mut events: Vec<PendingEvent> = rows.iter().map(pending_from_row).collect::<StoreResult<_>>()?;
            events.sort_by_key(|e| e.id);
            attach_subjects(&mut tx, &mut events).await?;
            tx.commit().await?;
            Ok(events)
        })
        .await
    }

    /// Settle claimed events: delivered ones are deleted (their delivery record stays, purged
    /// with the other bookkeeping), others wait for their next try or are marked failed.
    pub async fn settle_events(&self, outcomes: &[EventOutcome], now: Moment) -> StoreResult<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let delivered: Vec<i64> = outcomes
                .iter()
                .filter_map(|o| match o {
                    EventOutcome::Delivered(id) => Some(*id),
                    EventOutcome::Retry { .. } => None,
                })
                .collect();
            for chunk in delivered.chunks(super::handle::ROWS_PER_STATEMENT) {
                let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
                let sql = format!("DELETE FROM outbox WHERE id IN ({})", marks.join(", "));
                chunk.iter().fold(sqlx::query(&sql), |q, id| q.bind(*id)).execute(&mut *tx).await?;
            }
            for outcome in outcomes {
                if let EventOutcome::Retry { id, next_ms, error, give_up } = outcome {
                    sqlx::query(
                        "UPDATE outbox SET tries = tries + 1, next_ms = $1, last_error = $2, claimed_by = NULL,
                             claim_until_ms = NULL, failed_ms = $3
                         WHERE id = $4",
                    )
                    .bind(*next_ms)
                    .bind(error.clone())
                    .bind(give_up.then_some(now))
                    .bind(*id)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Lifecycle events waiting for delivery (not failed), and when the oldest one's change
    /// happened: `ges_webhook_outbox_pending` and `ges_webhook_outbox_oldest_age_seconds`.
    pub async fn outbox_backlog(&self) -> StoreResult<(i64, Option<Moment>)> {
        self.timed(async {
            let row = sqlx::query(
                "SELECT COUNT(*) AS n, MIN(occurred_ms) AS oldest FROM outbox
                 WHERE endpoint IS NOT NULL AND failed_ms IS NULL",
            )
            .fetch_one(&self.reader)
            .await?;
            Ok((row.try_get("n")?, row.try_get("oldest")?))
        })
        .await
    }

    /// An event of an endpoint, pending or failed, goes out again now (a failed one gets one more
    /// try), audited. False when it is no longer in the outbox (delivered: bodies are not kept).
    pub async fn requeue_event(
        &self,
        tenant_id: &str,
        endpoint: &str,
        id: i64,
        audit: &AuditEntry,
        now: Moment,
    ) -> StoreResult<bool> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let done = sqlx::query(
                "UPDATE outbox SET failed_ms = NULL, next_ms = $1, claimed_by = NULL, claim_until_ms = NULL
                 WHERE id = $2 AND tenant_id = $3 AND endpoint = $4",
            )
            .bind(now)
            .bind(id)
            .bind(tenant_id)
            .bind(endpoint)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            append_audit(&mut tx, audit, now).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    /// `callback.cancel` messages to publish: (outbox row, callback id, attempt).
    pub async fn outbox_pending(&self, limit: i64) -> StoreResult<Vec<(i64, String, i64)>> {
        self.timed(async {
            let rows =
                sqlx::query("SELECT id, callback_id, attempt FROM outbox WHERE endpoint IS NULL ORDER BY id LIMIT $1")
                    .bind(limit)
                    .fetch_all(&self.reader)
                    .await?;
            rows.iter().map(|r| Ok((r.try_get("id")?, r.try_get("callback_id")?, r.try_get("attempt")?))).collect()
        })
        .await
    }

    pub async fn outbox_done(&self, row: i64) -> StoreResult<()> {
        self.timed(async {
            sqlx::query("DELETE FROM outbox WHERE id = $1").bind(row).execute(&self.writer).await?;
            Ok(())
        })
        .await
    }
}

/// Fill in each event's tenant name, and its number (and a call-in's details) from its subject's
/// row if that still exists: a purged or erased callback's events go out without one.
async fn attach_subjects(tx: &mut Transaction<'_, Any>, events: &mut [PendingEvent]) -> StoreResult<()> {
    let mut tenants: Vec<String> = events.iter().map(|e| e.tenant_id.clone()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    for chunk in tenants.chunks(super::handle::ROWS_PER_STATEMENT) {
        let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!("SELECT id, name FROM tenants WHERE id IN ({})", marks.join(", "));
        let rows = chunk.iter().fold(sqlx::query(&sql), |q, id| q.bind(id.clone())).fetch_all(&mut **tx).await?;
        for row in rows {
            let (id, name): (String, String) = (row.try_get("id")?, row.try_get("name")?);
            events.iter_mut().filter(|e| e.tenant_id == id).for_each(|e| e.tenant_name = name.clone());
        }
    }
    let is_callin = |e: &PendingEvent| e.event_type == LifecycleEvent::CallInMatched.as_str();
    for (table, columns, callin) in [
        ("callbacks", "id, phone, NULL AS callback_id, NULL AS to_number", false),
        ("callin_requests", "id, from_number AS phone, callback_id, to_number", true),
    ] {
        let ids: Vec<String> = events.iter().filter(|e| is_callin(e) == callin).map(|e| e.subject_id.clone()).collect();
        for chunk in ids.chunks(super::handle::ROWS_PER_STATEMENT) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!("SELECT {columns} FROM {table} WHERE id IN ({})", marks.join(", "));
            let rows = chunk.iter().fold(sqlx::query(&sql), |q, id| q.bind(id.clone())).fetch_all(&mut **tx).await?;
            for row in rows {
                let id: String = row.try_get("id")?;
                let phone: Option<String> = row.try_get("phone")?;
                let linked: Option<String> = row.try_get("callback_id")?;
                let to_number: Option<String> = row.try_get("to_number")?;
                for e in events.iter_mut().filter(|e| e.subject_id == id && is_callin(e) == callin) {
                    e.phone = phone.clone();
                    e.call_in = to_number.clone().map(|to| (linked.clone(), to));
                }
            }
        }
    }
    Ok(())
}
