//! The monitor's writes (domain.md § The callback monitor): claim due callbacks, re-claim stale
//! claims and unacknowledged hand-offs, record publication and failures, expire and purge. Every
//! transition is a conditional write on (state, attempt), so replicas never move a callback twice.

use serde_json::{Map, Value};
use sqlx::{Any, Row, Transaction};

use super::audit::AuditEntry;
use super::callbacks::{append_history_rows, cancel_in, fetch_in_tx, CallbackRecord, CancelOutcome};
use super::outbox::record_events;
use super::{Store, StoreResult};
use crate::domain::callback::{Actor, State, REASON_FAIL_TIMEOUT_TTL};
use crate::domain::webhook::LifecycleEvent;
use crate::time::DAY_MS;

/// A hand-off ready to publish.
#[derive(Debug, Clone)]
pub struct HandOff {
    pub id: String,
    pub tenant_id: String,
    pub service_name: String,
    pub attempt: i64,
    pub phone: String,
    pub desired_ms: i64,
    pub due_ms: i64,
    pub priority: i64,
    pub corr_id: String,
    pub failed_attempts: i64,
    pub details: Map<String, Value>,
    /// The booking's W3C `traceparent`, if it had one.
    pub traceparent: Option<String>,
}

/// A callback moved to `COMPLETED` by the monitor's recovery pass.
#[derive(Debug, Clone)]
pub struct Finished {
    pub id: String,
    pub corr_id: String,
    pub tenant_id: String,
    pub service_name: String,
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

/// Most callbacks one recovery statement completes; the pass repeats until fewer come back.
pub const RECOVERY_BATCH: usize = 1000;
/// Orphans are cancelled one by one (capacity, platform notice, history), so fewer per call.
pub const ORPHAN_BATCH: usize = 100;

const HANDOFF_COLUMNS: &str =
    "id, tenant_id, service_name, attempt, phone, desired_ms, due_ms, priority, corr_id, failed_attempts, details, traceparent";

/// Only rows of a service that exists and whose hand-offs are not paused are handed over. A row
/// whose service is gone is never handed over (with a missing row counted as "not paused",
/// callbacks of deleted services went to the voice platform with default settings); the
/// recovery pass cancels it (`cancel_orphans`).
const NOT_PAUSED: &str = "EXISTS (SELECT 1 FROM services s WHERE s.tenant_id = c.tenant_id AND s.name = c.service_name AND s.dispatch_paused = 0)";

/// A callback whose service no longer exists.
const ORPHAN: &str =
    "NOT EXISTS (SELECT 1 FROM services s WHERE s.tenant_id = c.tenant_id AND s.name = c.service_name)";

/// The history note of a callback cancelled because its service is gone.
pub const SERVICE_DELETED_NOTE: &str = "service deleted";

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

/// Platform report on a hand-off (internal API).
#[derive(Debug, Clone, Default)]
pub struct PlatformReport {
    pub state: Option<State>,
    pub reason: Option<String>,
    pub position: Option<i64>,
    pub ewt: Option<i64>,
    pub session_id: Option<String>,
    pub attempt: Option<i64>,
}

/// A follow-up to book if the report completes the callback (issue 27): its id, the outcome it
/// follows, and the times it may take, earliest first (`domain::retry::candidates`).
#[derive(Debug, Clone)]
pub struct FollowUpPlan {
    pub id: String,
    pub reason: String,
    pub candidates: Vec<crate::domain::retry::Candidate>,
}

/// What became of a planned follow-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowUpOutcome {
    Booked {
        id: String,
        desired_ms: i64,
    },
    /// Every candidate's slot was full by the time of the report (or there was none).
    NoSlot,
}

#[derive(Debug, Clone)]
pub enum ReportOutcome {
    /// Moved forward (or acknowledged); with the follow-up booked in the same transaction, if one
    /// was planned and the report completed the callback.
    Applied {
        record: Box<CallbackRecord>,
        from: State,
        follow_up: Option<FollowUpOutcome>,
    },
    /// Same state again, or a report for an older attempt: nothing moved.
    Unchanged,
    Illegal(State),
    NotFound,
}

/// The same attempt of a hand-off published again at `$1` (the mark taken back), while it still
/// waits for its acknowledgement: `$2` id, `$3` attempt.
const SAME_ATTEMPT_AGAIN: &str = "UPDATE callbacks SET claimed_ms = $1, published_ms = NULL, ack_deadline_ms = NULL
     WHERE id = $2 AND attempt = $3 AND state = 'QUEUED' AND acked_ms IS NULL";

impl Store {
    fn skip_locked(&self) -> &'static str {
        match self.kind {
            super::BackendKind::Postgres => " FOR UPDATE SKIP LOCKED",
            super::BackendKind::Sqlite => "",
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
    pub async fn claim_due(&self, replica: &str, now: i64, limit: i64) -> StoreResult<Vec<HandOff>> {
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
    pub async fn heartbeat(&self, replica: &str, now: i64) -> StoreResult<()> {
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
    pub async fn reclaim_expired_leases(&self, replica: &str, now: i64, lease_ms: i64, limit: i64) -> StoreResult<u64> {
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
        now: i64,
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
    pub async fn unpublished_claims(&self, replica: &str, now: i64, limit: i64) -> StoreResult<Vec<HandOff>> {
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
        batch: &[(String, i64, i64)],
        now: i64,
    ) -> StoreResult<Vec<bool>> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let mut marked_ids = std::collections::HashSet::new();
            let mut deadlines: Vec<i64> = batch.iter().map(|(_, _, d)| *d).collect();
            deadlines.sort_unstable();
            deadlines.dedup();
            for deadline in deadlines {
                let group: Vec<&(String, i64, i64)> = batch.iter().filter(|(_, _, d)| *d == deadline).collect();
                for chunk in group.chunks(super::ROWS_PER_STATEMENT) {
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
    pub async fn defer_publication(&self, id: &str, attempt: i64, retry_at: i64) -> StoreResult<()> {
        self.timed(async {
            sqlx::query(SAME_ATTEMPT_AGAIN).bind(retry_at).bind(id).bind(attempt).execute(&self.writer).await?;
            Ok(())
        })
        .await
    }

    /// Acknowledge hand-offs at once (a webhook's `{"acknowledged": true}` answers): what a `QUEUED`
    /// report of each would record, in one statement per 100. Returns the ids acknowledged now.
    pub async fn acknowledge_handoffs(&self, held: &[(String, i64)], now: i64) -> StoreResult<Vec<String>> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        self.timed(async {
            let mut acked = Vec::with_capacity(held.len());
            for chunk in held.chunks(super::ROWS_PER_STATEMENT) {
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
        now: i64,
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
    pub async fn mark_publish_failed(&self, id: &str, attempt: i64, retry_at: i64) -> StoreResult<Option<i64>> {
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

    /// `COMPLETED` with `reason` from an unfinished state, by the monitor. False if it moved on.
    pub async fn complete_by_monitor(&self, id: &str, reason: &str, now: i64) -> StoreResult<bool> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let done = sqlx::query("UPDATE callbacks SET state = 'COMPLETED', reason = $1, updated_ms = $2 WHERE id = $3 AND state <> 'COMPLETED'")
                .bind(reason)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            append_history_rows(&mut tx, &[id], State::Completed, Some(reason), Actor::Monitor, now).await?;
            record_events(&mut tx, LifecycleEvent::Completed, &[id]).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    /// Recovery: hand-offs not `PROCESSING` within their service's `queuedTtlSeconds` (carried on
    /// the row), at most `RECOVERY_BATCH` per call. Orphans are `cancel_orphans`' business.
    pub async fn expire_queued(&self, now: i64) -> StoreResult<Vec<Finished>> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let sql = self.update_picked(
                "callbacks",
                &format!(
                    "SELECT c.id FROM callbacks c
                     WHERE c.state IN ('QUEUED', 'ROUTING') AND c.queued_ttl_ms <= $1 - c.queued_ms AND NOT {ORPHAN}
                     LIMIT {RECOVERY_BATCH}"
                ),
                "state = 'COMPLETED', reason = $2, updated_ms = $1",
                "id, corr_id, tenant_id, service_name",
            );
            let rows = sqlx::query(&sql).bind(now).bind(REASON_FAIL_TIMEOUT_TTL).fetch_all(&mut *tx).await?;
            let finished: Vec<Finished> = rows
                .iter()
                .map(|r| {
                    Ok(Finished {
                        id: r.try_get("id")?,
                        corr_id: r.try_get("corr_id")?,
                        tenant_id: r.try_get("tenant_id")?,
                        service_name: r.try_get("service_name")?,
                    })
                })
                .collect::<StoreResult<_>>()?;
            let ids: Vec<&str> = finished.iter().map(|f| f.id.as_str()).collect();
            append_history_rows(&mut tx, &ids, State::Completed, Some(REASON_FAIL_TIMEOUT_TTL), Actor::Monitor, now)
                .await?;
            record_events(&mut tx, LifecycleEvent::Completed, &ids).await?;
            tx.commit().await?;
            Ok(finished)
        })
        .await
    }

    /// Recovery: callbacks whose service is gone (deleted before deletes refused unfinished
    /// callbacks, or its row removed by hand) become `COMPLETED` / `CANCELLED` when due or once
    /// handed over — with their capacity given back and the platform told, as any cancel — and
    /// never reach the voice platform again; they are purged like any finished one. At most
    /// `ORPHAN_BATCH` per call.
    pub async fn cancel_orphans(&self, now: i64) -> StoreResult<Vec<Finished>> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let sql = format!(
                "SELECT c.id, c.tenant_id FROM callbacks c
                 WHERE (c.state IN ('QUEUED', 'ROUTING') OR (c.state = 'SCHEDULED' AND c.due_ms <= $1)) AND {ORPHAN}
                 LIMIT {ORPHAN_BATCH}{}",
                self.skip_locked()
            );
            let rows = sqlx::query(&sql).bind(now).fetch_all(&mut *tx).await?;
            let mut finished = Vec::with_capacity(rows.len());
            for row in &rows {
                let (id, tenant_id): (String, String) = (row.try_get("id")?, row.try_get("tenant_id")?);
                let outcome =
                    cancel_in(&mut tx, &tenant_id, &id, Actor::Monitor, Some(SERVICE_DELETED_NOTE), now).await?;
                if let CancelOutcome::Cancelled(record) = outcome {
                    let CallbackRecord { id, corr_id, tenant_id, service_name, .. } = *record;
                    finished.push(Finished { id, corr_id, tenant_id, service_name });
                }
            }
            tx.commit().await?;
            Ok(finished)
        })
        .await
    }

    /// Recovery: finished records kept longer than their service's `ttlSeconds` (carried on the
    /// row, so a deleted service's records go too).
    pub async fn purge_finished(&self, now: i64) -> StoreResult<u64> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            // History first: SQLite enforces the cascade only with foreign keys on.
            sqlx::query(
                "DELETE FROM callback_history WHERE callback_id IN (SELECT id FROM callbacks
                   WHERE state = 'COMPLETED' AND ttl_ms <= $1 - updated_ms)",
            )
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let done = sqlx::query("DELETE FROM callbacks WHERE state = 'COMPLETED' AND ttl_ms <= $1 - updated_ms")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(done.rows_affected())
        })
        .await
    }

    /// Recovery: idempotency records past 24 h and capacity rows of buckets long gone.
    pub async fn purge_bookkeeping(&self, now: i64) -> StoreResult<()> {
        self.timed(async {
            sqlx::query("DELETE FROM idempotency WHERE created_ms <= $1")
                .bind(now - super::idempotency::RETENTION_MS)
                .execute(&self.writer)
                .await?;
            sqlx::query("DELETE FROM capacity_buckets WHERE bucket_ms <= $1")
                .bind(now - crate::domain::capacity::BUCKET_RETENTION_DAYS * DAY_MS)
                .execute(&self.writer)
                .await?;
            sqlx::query("DELETE FROM webhook_deliveries WHERE created_ms <= $1")
                .bind(now - super::webhooks::DELIVERY_RETENTION_MS)
                .execute(&self.writer)
                .await?;
            // Lifecycle events given up on are kept as long as the delivery records that explain them.
            sqlx::query("DELETE FROM outbox WHERE failed_ms <= $1")
                .bind(now - super::webhooks::DELIVERY_RETENTION_MS)
                .execute(&self.writer)
                .await?;
            // Replicas gone for a day: their claims were taken over long ago.
            sqlx::query("DELETE FROM replicas WHERE seen_ms <= $1").bind(now - DAY_MS).execute(&self.writer).await?;
            Ok(())
        })
        .await
    }

    /// Counts for `ges_monitor_size`: unfinished callbacks by state, and those due now.
    pub async fn monitor_counts(&self, now: i64) -> StoreResult<(Vec<(State, i64)>, i64)> {
        self.timed(async {
            let rows =
                sqlx::query("SELECT state, COUNT(*) AS n FROM callbacks WHERE state <> 'COMPLETED' GROUP BY state")
                    .fetch_all(&self.reader)
                    .await?;
            let mut by_state = Vec::new();
            for r in &rows {
                let state: String = r.try_get("state")?;
                if let Ok(s) = state.parse::<State>() {
                    by_state.push((s, r.try_get("n")?));
                }
            }
            let due = sqlx::query("SELECT COUNT(*) AS n FROM callbacks WHERE state = 'SCHEDULED' AND due_ms <= $1")
                .bind(now)
                .fetch_one(&self.reader)
                .await?;
            Ok((by_state, due.try_get("n")?))
        })
        .await
    }

    /// The platform's report on a hand-off: forward moves, acknowledgements, idempotent repeats.
    pub async fn apply_platform_report(
        &self,
        id: &str,
        report: &PlatformReport,
        plan: Option<&FollowUpPlan>,
        now: i64,
    ) -> StoreResult<ReportOutcome> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            loop {
                let Some(current) = super::callbacks::fetch_any_in_tx(&mut tx, id).await? else {
                    return Ok(ReportOutcome::NotFound);
                };
                match report.attempt {
                    Some(a) if a < current.attempt => return Ok(ReportOutcome::Unchanged),
                    Some(a) if a > current.attempt => return Ok(ReportOutcome::Illegal(current.state)),
                    _ => {}
                }
                let target = report.state.unwrap_or(current.state);
                if current.state == State::Scheduled || target < current.state || (current.state == State::Completed && target != State::Completed) {
                    return Ok(ReportOutcome::Illegal(current.state));
                }
                // Every accepted report acknowledges the hand-off ("every later state implies it").
                let first_ack = current.acked_ms.is_none();
                let completing = target == State::Completed && current.state != State::Completed;
                let moved = sqlx::query(
                    "UPDATE callbacks SET state = $1, reason = COALESCE($2, reason), acked_ms = COALESCE(acked_ms, $3),
                         processing_ms = CASE WHEN $1 = 'PROCESSING' THEN COALESCE(processing_ms, $3) ELSE processing_ms END,
                         platform_position = COALESCE($4, platform_position), platform_ewt = COALESCE($5, platform_ewt),
                         platform_reported_ms = CASE WHEN $4 IS NOT NULL OR $5 IS NOT NULL THEN $3 ELSE platform_reported_ms END,
                         session_id = COALESCE($6, session_id), updated_ms = CASE WHEN $1 <> $7 THEN $3 ELSE updated_ms END
                     WHERE id = $8 AND state = $7 AND attempt = $9",
                )
                .bind(target.as_str())
                .bind(if completing { report.reason.clone() } else { None })
                .bind(now)
                .bind(report.position)
                .bind(report.ewt)
                .bind(report.session_id.clone())
                .bind(current.state.as_str())
                .bind(id)
                .bind(current.attempt)
                .execute(&mut *tx)
                .await?;
                if moved.rows_affected() == 0 {
                    continue; // moved under us; read again
                }
                if target == current.state {
                    if first_ack && target == State::Queued {
                        // The timeline shows the acknowledgement (a later state implies it).
                        super::callbacks::append_noted_history_rows(
                            &mut tx,
                            &[id],
                            State::Queued,
                            None,
                            Some("acknowledged"),
                            Actor::Platform,
                            now,
                        )
                        .await?;
                    }
                    tx.commit().await?;
                    return Ok(if first_ack && target == State::Queued {
                        ReportOutcome::Applied { record: Box::new(current.clone()), from: current.state, follow_up: None }
                    } else {
                        ReportOutcome::Unchanged
                    });
                }
                let reason = (target == State::Completed).then(|| report.reason.clone()).flatten();
                let follow_up = match plan.filter(|_| completing) {
                    Some(plan) => Some(book_follow_up(&mut tx, &current, plan, now).await?),
                    None => None,
                };
                let note = follow_up.as_ref().map(|f| match f {
                    FollowUpOutcome::Booked { id, desired_ms } => {
                        format!("follow-up {id} booked for {}", crate::time::format_utc(*desired_ms))
                    }
                    FollowUpOutcome::NoSlot => "no follow-up: no open slot with room within maxFuture".to_string(),
                });
                super::callbacks::append_noted_history_rows(
                    &mut tx,
                    &[id],
                    target,
                    reason.as_deref(),
                    note.as_deref(),
                    Actor::Platform,
                    now,
                )
                .await?;
                let event =
                    if target == State::Completed { LifecycleEvent::Completed } else { LifecycleEvent::StateChanged };
                record_events(&mut tx, event, &[id]).await?;
                tx.commit().await?;
                let from = current.state;
                let record = CallbackRecord { state: target, reason, updated_ms: now, ..current };
                return Ok(ReportOutcome::Applied { record: Box::new(record), from, follow_up });
            }
        })
        .await
    }

    /// Re-drive many callbacks and record the audit entry, all in one transaction: an error midway
    /// leaves every one as it was and no audit entry. One outcome per id, in order.
    pub async fn redrive_callbacks(
        &self,
        tenant_id: &str,
        ids: &[String],
        replica: &str,
        audit: &AuditEntry,
        now: i64,
    ) -> StoreResult<Vec<RedriveOutcome>> {
        self.audited_bulk(ids, audit, now, async |tx, id| {
            Ok(if redrive_in(tx, tenant_id, id, replica, now).await? {
                RedriveOutcome::Requeued
            } else if fetch_in_tx(tx, tenant_id, id).await?.is_some() {
                RedriveOutcome::NotEligible
            } else {
                RedriveOutcome::NotFound
            })
        })
        .await
    }

    /// Ids of a tenant's callbacks completed with `reason` since `since`.
    pub async fn completed_with_reason(
        &self,
        tenant_id: &str,
        reason: &str,
        since: i64,
        limit: i64,
    ) -> StoreResult<Vec<String>> {
        self.timed(async {
            let rows = sqlx::query(
                "SELECT id FROM callbacks WHERE tenant_id = $1 AND state = 'COMPLETED' AND reason = $2 AND updated_ms >= $3 ORDER BY updated_ms LIMIT $4",
            )
            .bind(tenant_id)
            .bind(reason)
            .bind(since)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
            rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
        })
        .await
    }

    pub async fn set_dispatch_paused(
        &self,
        tenant_id: &str,
        service: &str,
        paused: bool,
        audit: &super::AuditEntry,
        now: i64,
    ) -> StoreResult<bool> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let done = sqlx::query("UPDATE services SET dispatch_paused = $1 WHERE tenant_id = $2 AND name = $3")
                .bind(i64::from(paused))
                .bind(tenant_id)
                .bind(service)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            super::audit::append_audit(&mut tx, audit, now).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    /// The console's "Now" figures per service of a tenant (`GET …/overview`): active callbacks,
    /// due ones not yet handed over and the oldest due time, hand-offs that failed (completed
    /// `SUBMIT_FAILED` or `FAIL_TIMEOUT_TTL`) since `failed_since`, and whether hand-offs are paused.
    pub async fn service_overview(&self, tenant_id: &str, now: i64, failed_since: i64) -> StoreResult<Vec<ServiceNow>> {
        self.timed(async {
            let of_service = "FROM callbacks c WHERE c.tenant_id = s.tenant_id AND c.service_name = s.name";
            let rows = sqlx::query(&format!(
                "SELECT s.name, s.dispatch_paused,
                   (SELECT COUNT(*) {of_service} AND c.state IN ('QUEUED', 'ROUTING', 'PROCESSING')) AS active,
                   (SELECT COUNT(*) {of_service} AND c.state = 'SCHEDULED' AND c.due_ms <= $2) AS due,
                   (SELECT MIN(c.due_ms) {of_service} AND c.state = 'SCHEDULED' AND c.due_ms <= $2) AS oldest_due,
                   (SELECT COUNT(*) {of_service} AND c.state = 'COMPLETED'
                      AND c.reason IN ('SUBMIT_FAILED', 'FAIL_TIMEOUT_TTL') AND c.updated_ms >= $3) AS failed
                 FROM services s WHERE s.tenant_id = $1 ORDER BY s.name"
            ))
            .bind(tenant_id)
            .bind(now)
            .bind(failed_since)
            .fetch_all(&self.reader)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(ServiceNow {
                        name: r.try_get("name")?,
                        paused: r.try_get::<i64, _>("dispatch_paused")? != 0,
                        active: r.try_get("active")?,
                        due: r.try_get("due")?,
                        oldest_due_ms: r.try_get("oldest_due")?,
                        failed: r.try_get("failed")?,
                    })
                })
                .collect()
        })
        .await
    }

    /// Active (`QUEUED`+`ROUTING`+`PROCESSING`) callbacks per service of a tenant.
    pub async fn active_by_service(&self, tenant_id: &str) -> StoreResult<Vec<(String, i64)>> {
        self.timed(async {
            let rows = sqlx::query(
                "SELECT service_name, COUNT(*) AS n FROM callbacks WHERE tenant_id = $1 AND state IN ('QUEUED', 'ROUTING', 'PROCESSING')
                 GROUP BY service_name ORDER BY service_name",
            )
            .bind(tenant_id)
            .fetch_all(&self.reader)
            .await?;
            rows.iter().map(|r| Ok((r.try_get("service_name")?, r.try_get("n")?))).collect()
        })
        .await
    }
}

/// One service's "Now" figures (`Store::service_overview`).
#[derive(Debug, Clone)]
pub struct ServiceNow {
    pub name: String,
    pub paused: bool,
    pub active: i64,
    pub due: i64,
    pub oldest_due_ms: Option<i64>,
    pub failed: i64,
}

/// Book `plan`'s follow-up of `original` in the report's transaction: the first candidate whose
/// slot still has a place (taken here, conditionally, as any booking takes one), with the
/// original's number, priority, details (its `userData`) and time limits.
async fn book_follow_up(
    tx: &mut Transaction<'_, Any>,
    original: &CallbackRecord,
    plan: &FollowUpPlan,
    now: i64,
) -> StoreResult<FollowUpOutcome> {
    for c in &plan.candidates {
        if let Some(claim) = c.claim {
            let taken = super::capacity::reserve(
                tx,
                &original.tenant_id,
                &original.service_name,
                claim.bucket_start,
                claim.capacity,
            )
            .await?;
            if !taken {
                continue;
            }
        }
        sqlx::query(
            "INSERT INTO callbacks (id, tenant_id, service_name, state, phone, desired_ms, due_ms, priority, corr_id,
                 attempt, details, created_ms, updated_ms, bucket_ms, queued_ttl_ms, ttl_ms, traceparent, retry_of, retry_number)
             SELECT $1, tenant_id, service_name, 'SCHEDULED', phone, $2, $3, priority, corr_id, 0, details, $4, $4, $5,
                 queued_ttl_ms, ttl_ms, traceparent, id, retry_number + 1
             FROM callbacks WHERE id = $6",
        )
        .bind(plan.id.clone())
        .bind(c.desired_ms)
        .bind(c.due_ms)
        .bind(now)
        .bind(c.claim.map(|claim| claim.bucket_start))
        .bind(original.id.clone())
        .execute(&mut **tx)
        .await?;
        let note = format!("follow-up {} of {} after {}", original.retry_number + 1, original.id, plan.reason);
        let ids = [plan.id.as_str()];
        super::callbacks::append_noted_history_rows(tx, &ids, State::Scheduled, None, Some(&note), Actor::Monitor, now)
            .await?;
        super::outbox::record_booking_events(tx, &ids).await?;
        return Ok(FollowUpOutcome::Booked { id: plan.id.clone(), desired_ms: c.desired_ms });
    }
    Ok(FollowUpOutcome::NoSlot)
}

/// What a bulk re-drive did with one id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedriveOutcome {
    Requeued,
    NotEligible,
    NotFound,
}

/// Re-drive an eligible `COMPLETED` callback (`SUBMIT_FAILED` or `FAIL_TIMEOUT_TTL`) inside the
/// caller's transaction: a new claimed hand-off held by `replica`, `failedAttempts` reset. False
/// when not eligible.
async fn redrive_in(
    tx: &mut Transaction<'_, Any>,
    tenant_id: &str,
    id: &str,
    replica: &str,
    now: i64,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE callbacks SET state = 'QUEUED', reason = NULL, attempt = attempt + 1, failed_attempts = 0, claimed_ms = $1,
             claimed_by = $2, published_ms = NULL, acked_ms = NULL, ack_deadline_ms = NULL, queued_ms = $1,
             processing_ms = NULL, updated_ms = $1
         WHERE id = $3 AND tenant_id = $4 AND state = 'COMPLETED' AND reason IN ('SUBMIT_FAILED', 'FAIL_TIMEOUT_TTL')",
    )
    .bind(now)
    .bind(replica)
    .bind(id)
    .bind(tenant_id)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    append_history_rows(tx, &[id], State::Queued, None, Actor::Admin, now).await?;
    record_events(tx, LifecycleEvent::Dispatched, &[id]).await?;
    Ok(true)
}
