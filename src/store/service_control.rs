//! Operators' controls over hand-offs (admin API): re-drive failed callbacks, pause and resume a
//! service's hand-offs, and the per-service figures the console's "Now" shows.

use sqlx::{Any, Row, Transaction};

use super::audit::AuditEntry;
use super::callbacks::{append_history_rows, fetch_in_tx};
use super::error::StoreResult;
use super::handle::Store;
use super::outbox::record_events;
use crate::domain::callback::{Actor, CompletionReason, State};
use crate::domain::webhook::LifecycleEvent;
use crate::time::Moment;
impl Store {
    /// Re-drive many callbacks and record the audit entry, all in one transaction: an error midway
    /// leaves every one as it was and no audit entry. One outcome per id, in order.
    pub async fn redrive_callbacks(
        &self,
        tenant_id: &str,
        ids: &[String],
        replica: &str,
        audit: &AuditEntry,
        now: Moment,
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
    pub async fn list_completed_with_reason(
        &self,
        tenant_id: &str,
        reason: &CompletionReason,
        since: Moment,
        limit: i64,
    ) -> StoreResult<Vec<String>> {
        self.timed(async {
            let rows = sqlx::query(
                "SELECT id FROM callbacks WHERE tenant_id = $1 AND state = 'COMPLETED' AND reason = $2 AND updated_ms >= $3 ORDER BY updated_ms LIMIT $4",
            )
            .bind(tenant_id)
            .bind(reason.as_str())
            .bind(since)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
            rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
        })
        .await
    }

    pub async fn set_handoffs_paused(
        &self,
        tenant_id: &str,
        service: &str,
        paused: bool,
        audit: &super::audit::AuditEntry,
        now: Moment,
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
    pub async fn list_service_overview(
        &self,
        tenant_id: &str,
        now: Moment,
        failed_since: Moment,
    ) -> StoreResult<Vec<ServiceNow>> {
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
    pub async fn count_active_by_service(&self, tenant_id: &str) -> StoreResult<Vec<(String, i64)>> {
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

/// One service's "Now" figures (`Store::list_service_overview`).
#[derive(Debug, Clone)]
pub struct ServiceNow {
    pub name: String,
    pub paused: bool,
    pub active: i64,
    pub due: i64,
    pub oldest_due_ms: Option<Moment>,
    pub failed: i64,
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
    now: Moment,
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
