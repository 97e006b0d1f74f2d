//! The recovery pass's writes: complete what the monitor gives up on, expire queued callbacks past
//! their TTL, cancel callbacks whose service is gone, purge finished rows and bookkeeping, count
//! states for the gauges.

use sqlx::Row;

use super::callback_changes::{cancel_in, CancelOutcome};
use super::callbacks::{append_history_rows, CallbackRecord};
use super::error::StoreResult;
use super::handle::Store;
use super::outbox::record_events;
use crate::domain::callback::{Actor, CompletionReason, State, REASON_FAIL_TIMEOUT_TTL};
use crate::domain::webhook::LifecycleEvent;
use crate::time::{Moment, DAY};
/// A callback moved to `COMPLETED` by the monitor's recovery pass.
#[derive(Debug, Clone)]
pub struct Finished {
    pub id: String,
    pub corr_id: String,
    pub tenant_id: String,
    pub service_name: String,
}

/// Most callbacks one recovery statement completes; the pass repeats until fewer come back.
pub const RECOVERY_BATCH: usize = 1000;

/// Orphans are cancelled one by one (capacity, platform notice, history), so fewer per call.
pub const ORPHAN_BATCH: usize = 100;

/// A callback whose service no longer exists.
const ORPHAN: &str =
    "NOT EXISTS (SELECT 1 FROM services s WHERE s.tenant_id = c.tenant_id AND s.name = c.service_name)";

/// The history note of a callback cancelled because its service is gone.
pub const SERVICE_DELETED_NOTE: &str = "service deleted";

impl Store {
    /// `COMPLETED` with `reason` from an unfinished state, by the monitor. False if it moved on.
    pub async fn complete_by_monitor(&self, id: &str, reason: &CompletionReason, now: Moment) -> StoreResult<bool> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let done = sqlx::query("UPDATE callbacks SET state = 'COMPLETED', reason = $1, updated_ms = $2 WHERE id = $3 AND state <> 'COMPLETED'")
                .bind(reason.as_str())
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            append_history_rows(&mut tx, &[id], State::Completed, Some(reason.as_str()), Actor::Monitor, now).await?;
            record_events(&mut tx, LifecycleEvent::Completed, &[id]).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    /// Recovery: hand-offs not `PROCESSING` within their service's `queuedTtlSeconds` (carried on
    /// the row), at most `RECOVERY_BATCH` per call. Orphans are `cancel_orphans`' business.
    pub async fn expire_queued(&self, now: Moment) -> StoreResult<Vec<Finished>> {
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
    pub async fn cancel_orphans(&self, now: Moment) -> StoreResult<Vec<Finished>> {
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
    pub async fn purge_finished(&self, now: Moment) -> StoreResult<u64> {
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
    pub async fn purge_bookkeeping(&self, now: Moment) -> StoreResult<()> {
        self.timed(async {
            sqlx::query("DELETE FROM idempotency WHERE created_ms <= $1")
                .bind(now - super::idempotency::RETENTION)
                .execute(&self.writer)
                .await?;
            sqlx::query("DELETE FROM capacity_buckets WHERE bucket_ms <= $1")
                .bind(now - DAY * crate::domain::capacity::BUCKET_RETENTION_DAYS)
                .execute(&self.writer)
                .await?;
            sqlx::query("DELETE FROM webhook_deliveries WHERE created_ms <= $1")
                .bind(now - super::webhooks::DELIVERY_RETENTION)
                .execute(&self.writer)
                .await?;
            // Lifecycle events given up on are kept as long as the delivery records that explain them.
            sqlx::query("DELETE FROM outbox WHERE failed_ms <= $1")
                .bind(now - super::webhooks::DELIVERY_RETENTION)
                .execute(&self.writer)
                .await?;
            // Replicas gone for a day: their claims were taken over long ago.
            sqlx::query("DELETE FROM replicas WHERE seen_ms <= $1").bind(now - DAY).execute(&self.writer).await?;
            Ok(())
        })
        .await
    }

    /// Counts for `ges_monitor_size`: unfinished callbacks by state, and those due now.
    pub async fn monitor_counts(&self, now: Moment) -> StoreResult<(Vec<(State, i64)>, i64)> {
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
}
