//! The hand-off's writes (domain.md § The callback monitor): claim due callbacks, keep claims alive,
//! re-claim stale claims and unacknowledged hand-offs, record publication, acknowledgement and failed
//! publishes. Every transition is a conditional write on (state, attempt), so replicas never move a
//! callback twice.

use serde_json::{Map, Value};
use sqlx::Row;

use super::audit::AuditEntry;
use super::callbacks::append_history_rows;
use super::error::StoreResult;
use super::handle::Store;
use super::outbox::record_events;
use crate::domain::callback::{Actor, State};
use crate::domain::webhook::LifecycleEvent;
use crate::time::{Millis, Moment};
/// A hand-off ready to publish.
#[derive(Debug, Clone)]
pub struct HandOff {
    pub id: String,
    pub tenant_id: String,
    pub service_name: String,
    pub attempt: i64,
    pub phone: String,
    pub desired_ms: Moment,
    pub due_ms: Moment,
    pub priority: i64,
    pub corr_id: String,
    pub failed_attempts: i64,
    pub details: Map<String, Value>,
    /// The booking's W3C `traceparent`, if it had one.
    pub traceparent: Option<String>,
}

/// A hand-off re-claimed because the platform did not acknowledge it in time.
#[derive(Debug, Clone)]
pub struct Unacknowledged {
    pub tenant_id: String,
    pub service_name: String,
    pub id: String,
    /// Failed attempts so far, this one included.
    pub failed_attempts: i64,
}

const HANDOFF_COLUMNS: &str =
    "id, tenant_id, service_name, attempt, phone, desired_ms, due_ms, priority, corr_id, failed_attempts, details, traceparent";

/// Only rows of a service that exists and whose hand-offs are not paused are handed over. A row
/// whose service is gone is never handed over (with a missing row counted as "not paused",
/// callbacks of deleted services went to the voice platform with default settings); the
/// recovery pass cancels it (`cancel_orphans`).
const NOT_PAUSED: &str = "EXISTS (SELECT 1 FROM services s WHERE s.tenant_id = c.tenant_id AND s.name = c.service_name AND s.dispatch_paused = 0)";

fn handoff(r: &sqlx::any::AnyRow) -> StoreResult<HandOff> {
    Ok(HandOff {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        service_name: r.try_get("service_name")?,
        attempt: r.try_get("attempt")?,
        phone: r.try_get("phone")?,
        desired_ms: r.try_get("desired_ms")?,
        due_ms: r.try_get("due_ms")?,
        priority: r.try_get("priority")?,
        corr_id: r.try_get("corr_id")?,
        failed_attempts: r.try_get("failed_attempts")?,
        details: serde_json::from_str(&r.try_get::<String, _>("details")?)?,
        traceparent: r.try_get("traceparent")?,
    })
}

/// The same attempt of a hand-off published again at `$1` (the mark taken back), while it still
/// waits for its acknowledgement: `$2` id, `$3` attempt.
const SAME_ATTEMPT_AGAIN: &str = "UPDATE callbacks SET claimed_ms = $1, published_ms = NULL, ack_deadline_ms = NULL
     WHERE id = $2 AND attempt = $3 AND state = 'QUEUED' AND acked_ms IS NULL";

impl Store {
    pub(super) fn skip_locked(&self) -> &'static str {
        match self.kind {
            super::backend::BackendKind::Postgres => " FOR UPDATE SKIP LOCKED",
            super::backend::BackendKind::Sqlite => "",
        }
    }

    /// `UPDATE {table} SET {set}` on the rows `pick` chooses (`SELECT id … ORDER BY … LIMIT n`),
    /// chosen once, then `RETURNING {returning}`. The pick is a materialized CTE, not `id IN
    /// (subquery)`: with a table just filled and not yet analysed, PostgreSQL ran such a
    /// subquery again for every candidate row (3,000 due hand-offs: 9.7 s, past the statement
    /// timeout, so every monitor pass failed and nothing was re-sent). On PostgreSQL the pick
    /// locks its rows, skipping those another replica holds, and re-checks its conditions on
    /// them; on SQLite the statement runs alone. Either way the update needs no second filter.
    pub(super) fn update_picked(&self, table: &str, pick: &str, set: &str, returning: &str) -> String {
        format!(
            "WITH picked AS MATERIALIZED ({pick}{})
             UPDATE {table} SET {set} WHERE id IN (SELECT id FROM picked) RETURNING {returning}",
            self.skip_locked()
        )
    }

    /// Claim due `SCHEDULED` callbacks for hand-off: `QUEUED`, `attempt + 1`, held by `replica`.
    /// Committed before anything is published.
    pub async fn claim_due(&self, replica: &str, now: Moment, limit: i64) -> StoreResult<Vec<HandOff>> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let sql = self.update_picked(
                "callbacks",
                &format!(
                    "SELECT c.id FROM callbacks c WHERE c.state = 'SCHEDULED' AND c.due_ms <= $1 AND {NOT_PAUSED}
                     ORDER BY c.due_ms LIMIT $3"
                ),
                "state = 'QUEUED', attempt = attempt + 1, claimed_ms = $1, claimed_by = $2, published_ms = NULL,
                 acked_ms = NULL, ack_deadline_ms = NULL, queued_ms = $1, updated_ms = $1",
                HANDOFF_COLUMNS,
            );
            let rows = sqlx::query(&sql).bind(now).bind(replica).bind(limit).fetch_all(&mut *tx).await?;
            let claimed: Vec<HandOff> = rows.iter().map(handoff).collect::<StoreResult<_>>()?;
            let ids: Vec<&str> = claimed.iter().map(|h| h.id.as_str()).collect();
            append_history_rows(&mut tx, &ids, State::Queued, None, Actor::Monitor, now).await?;
            record_events(&mut tx, LifecycleEvent::Dispatched, &ids).await?;
            tx.commit().await?;
            Ok(claimed)
        })
        .await
    }

    /// Record that `replica`'s monitor is alive and making progress. Its claims are safe from
    /// re-claiming while this is fresher than the claim lease.
    pub async fn heartbeat(&self, replica: &str, now: Moment) -> StoreResult<()> {
        self.timed(async {
            sqlx::query(
                "INSERT INTO replicas (id, seen_ms) VALUES ($1, $2)
                 ON CONFLICT (id) DO UPDATE SET seen_ms = excluded.seen_ms",
            )
            .bind(replica)
            .bind(now)
            .execute(&self.writer)
            .await?;
            Ok(())
        })
        .await
    }

    /// Claims not published within the lease whose holder has not been seen within the lease
    /// either (a crashed or stuck replica) move to `replica` with `attempt + 1`. A live replica
    /// that is merely slow to publish — busy, paused, short of connections — keeps its claims.
    /// Returns how many.
    pub async fn reclaim_expired_leases(
        &self,
        replica: &str,
        now: Moment,
        lease_ms: Millis,
        limit: i64,
    ) -> StoreResult<u64> {
        self.timed(async {
            let sql = self.update_picked(
                "callbacks",
                &format!(
                    "SELECT c.id FROM callbacks c WHERE c.state = 'QUEUED' AND c.published_ms IS NULL
                       AND c.claimed_ms <= $3 AND {NOT_PAUSED}
                       AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.id = c.claimed_by AND r.seen_ms > $3)
                     ORDER BY c.claimed_ms LIMIT $4"
                ),
                "attempt = attempt + 1, claimed_ms = $1, claimed_by = $2, updated_ms = $1",
                "id",
            );
            let moved = sqlx::query(&sql)
                .bind(now)
                .bind(replica)
                .bind(now - lease_ms)
                .bind(limit)
                .fetch_all(&self.writer)
                .await?;
            Ok(moved.len() as u64)
        })
        .await
    }

    /// Published hand-offs the platform has not acknowledged by their deadline: re-claimed with
    /// `attempt + 1`, counting one failed attempt.
    pub async fn reclaim_unacknowledged(
        &self,
        replica: &str,
        now: Moment,
        limit: i64,
    ) -> StoreResult<Vec<Unacknowledged>> {
        self.timed(async {
            let sql = self.update_picked(
                "callbacks",
                &format!(
                    "SELECT c.id FROM callbacks c WHERE c.state = 'QUEUED' AND c.acked_ms IS NULL
                       AND c.published_ms IS NOT NULL AND c.ack_deadline_ms <= $1 AND {NOT_PAUSED}
                     ORDER BY c.ack_deadline_ms LIMIT $3"
                ),
                "attempt = attempt + 1, failed_attempts = failed_attempts + 1, claimed_ms = $1, claimed_by = $2,
                 published_ms = NULL, ack_deadline_ms = NULL, updated_ms = $1",
                "tenant_id, service_name, id, failed_attempts",
            );
            let rows = sqlx::query(&sql).bind(now).bind(replica).bind(limit).fetch_all(&self.writer).await?;
            rows.iter()
                .map(|r| {
                    Ok(Unacknowledged {
                        tenant_id: r.try_get("tenant_id")?,
                        service_name: r.try_get("service_name")?,
                        id: r.try_get("id")?,
                        failed_attempts: r.try_get("failed_attempts")?,
                    })
                })
                .collect()
        })
        .await
    }

    /// This replica's claims that are due for publication.
    pub async fn unpublished_claims(&self, replica: &str, now: Moment, limit: i64) -> StoreResult<Vec<HandOff>> {
        self.timed(async {
            let sql = format!(
                "SELECT {HANDOFF_COLUMNS} FROM callbacks c
                 WHERE c.state = 'QUEUED' AND c.published_ms IS NULL AND c.claimed_by = $1 AND c.claimed_ms <= $2 AND {NOT_PAUSED}
                 ORDER BY c.claimed_ms LIMIT $3"
            );
            let rows = sqlx::query(&sql).bind(replica).bind(now).bind(limit).fetch_all(&self.reader).await?;
            rows.iter().map(handoff).collect()
        })
        .await
    }

    /// Mark hand-offs published *before* they are written to the stream, so an (id, attempt) can
    /// reach the stream at most once. Returns which of them were still this replica's to publish.
    /// One statement per 100 hand-offs sharing an ack deadline: round trips, not rows, cost here.
    pub async fn mark_published(
        &self,
        replica: &str,
        batch: &[(String, i64, Moment)],
        now: Moment,
    ) -> StoreResult<Vec<bool>> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let mut marked_ids = std::collections::HashSet::new();
            let mut deadlines: Vec<Moment> = batch.iter().map(|(_, _, d)| *d).collect();
            deadlines.sort_unstable();
            deadlines.dedup();
            for deadline in deadlines {
                let group: Vec<&(String, i64, Moment)> = batch.iter().filter(|(_, _, d)| *d == deadline).collect();
                for chunk in group.chunks(super::handle::ROWS_PER_STATEMENT) {
                    let pairs: Vec<String> =
                        (0..chunk.len()).map(|i| format!("(${}, ${})", 4 + 2 * i, 5 + 2 * i)).collect();
                    let sql = format!(
                        "UPDATE callbacks SET published_ms = $1, updated_ms = $1, ack_deadline_ms = $2
                         WHERE claimed_by = $3 AND state = 'QUEUED' AND published_ms IS NULL
                           AND (id, attempt) IN (VALUES {}) RETURNING id",
                        pairs.join(", ")
                    );
                    let mut query = sqlx::query(&sql).bind(now).bind(deadline).bind(replica);
                    for (id, attempt, _) in chunk {
                        query = query.bind(id.clone()).bind(*attempt);
                    }
                    for row in query.fetch_all(&mut *tx).await? {
                        marked_ids.insert(row.try_get::<String, _>("id")?);
                    }
                }
            }
            tx.commit().await?;
            Ok(batch.iter().map(|(id, _, _)| marked_ids.contains(id)).collect())
        })
        .await
    }

    /// Take back the mark of hand-offs that did not reach the stream. With `next_attempt`, the
    /// entry may have been written: its retry goes out as the next attempt.
    pub async fn unpublish(&self, held: &[(String, i64)], next_attempt: bool) -> StoreResult<()> {
        if held.is_empty() {
            return Ok(());
        }
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            for (id, attempt) in held {
                sqlx::query(
                    "UPDATE callbacks SET published_ms = NULL, ack_deadline_ms = NULL, attempt = attempt + $1
                     WHERE id = $2 AND attempt = $3 AND state = 'QUEUED' AND acked_ms IS NULL",
                )
                .bind(i64::from(next_attempt))
                .bind(id)
                .bind(*attempt)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// A hand-off whose request was not sent, or whose answer was lost (a webhook endpoint down or
    /// slow): the mark taken back and the *same* attempt sent again at `retry_at`, spending nothing
    /// (a receiver that dedups on `webhook-id` dials once).
    pub async fn defer_publication(&self, id: &str, attempt: i64, retry_at: Moment) -> StoreResult<()> {
        self.timed(async {
            sqlx::query(SAME_ATTEMPT_AGAIN).bind(retry_at).bind(id).bind(attempt).execute(&self.writer).await?;
            Ok(())
        })
        .await
    }

    /// Acknowledge hand-offs at once (a webhook's `{"acknowledged": true}` answers): what a `QUEUED`
    /// report of each would record, in one statement per 100. Returns the ids acknowledged now.
    pub async fn acknowledge_handoffs(&self, held: &[(String, i64)], now: Moment) -> StoreResult<Vec<String>> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        self.timed(async {
            let mut acked = Vec::with_capacity(held.len());
            for chunk in held.chunks(super::handle::ROWS_PER_STATEMENT) {
                let pairs: Vec<String> =
                    (0..chunk.len()).map(|i| format!("(${}, ${})", 2 + 2 * i, 3 + 2 * i)).collect();
                let sql = format!(
                    "UPDATE callbacks SET acked_ms = $1
                     WHERE state = 'QUEUED' AND acked_ms IS NULL AND (id, attempt) IN (VALUES {}) RETURNING id",
                    pairs.join(", ")
                );
                let query = chunk
                    .iter()
                    .fold(sqlx::query(&sql).bind(now), |q, (id, attempt)| q.bind(id.clone()).bind(*attempt));
                for row in query.fetch_all(&self.writer).await? {
                    acked.push(row.try_get("id")?);
                }
            }
            Ok(acked)
        })
        .await
    }

    /// An admin's redelivery of a hand-off (audited): the same attempt sent again now, while it
    /// still waits for its acknowledgement. False if it has moved on.
    pub async fn redeliver_handoff(
        &self,
        tenant_id: &str,
        id: &str,
        attempt: i64,
        audit: &AuditEntry,
        now: Moment,
    ) -> StoreResult<bool> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let moved = sqlx::query(&format!("{SAME_ATTEMPT_AGAIN} AND tenant_id = $4"))
                .bind(now)
                .bind(id)
                .bind(attempt)
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?;
            if moved.rows_affected() == 0 {
                return Ok(false);
            }
            super::audit::append_audit(&mut tx, audit, now).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    /// A publish Redis refused: one failed attempt, the mark taken back, retried at `retry_at` (the
    /// claim's lease restarts then). Returns the failed-attempt count, or `None` if the claim moved on.
    pub async fn mark_publish_failed(&self, id: &str, attempt: i64, retry_at: Moment) -> StoreResult<Option<i64>> {
        self.timed(async {
            let row = sqlx::query(
                "UPDATE callbacks SET failed_attempts = failed_attempts + 1, claimed_ms = $1, published_ms = NULL, ack_deadline_ms = NULL
                 WHERE id = $2 AND attempt = $3 AND state = 'QUEUED' AND acked_ms IS NULL
                 RETURNING failed_attempts",
            )
            .bind(retry_at)
            .bind(id)
            .bind(attempt)
            .fetch_optional(&self.writer)
            .await?;
            Ok(row.map(|r| r.try_get("failed_attempts")).transpose()?)
        })
        .await
    }
}
