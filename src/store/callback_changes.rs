//! Callbacks changed by their owner or an operator: cancelled (one or in bulk, audited), edited
//! or rescheduled, the capacity moved in the same transaction.

use serde_json::{Map, Value};
use sqlx::{Any, Transaction};

use super::audit::{append_audit, AuditEntry};
use super::callbacks::{append_history, fetch_in_tx, CallbackRecord};
use super::capacity::{release, reserve};

use super::error::StoreResult;
use super::handle::{Store, BULK_TIMEOUT_FACTOR};
use crate::domain::booking::CapacityClaim;
use crate::domain::callback::{Actor, State, REASON_CANCELLED};
use crate::domain::webhook::LifecycleEvent;
use crate::time::Moment;
#[derive(Debug, Clone)]
pub enum CancelOutcome {
    Cancelled(Box<CallbackRecord>),
    AlreadyCompleted,
    NotFound,
}

/// What `edit_callback` changes: the time (already checked against the service's rules), the
/// `userData`, or both; who asks, and the audit entry of an operator's edit.
#[derive(Debug, Clone)]
pub struct CallbackEdit {
    pub time: Option<NewTime>,
    pub user_data: Option<Map<String, Value>>,
    pub actor: Actor,
    pub audit: Option<AuditEntry>,
}

#[derive(Debug, Clone, Copy)]
pub struct NewTime {
    pub desired_ms: Moment,
    pub due_ms: Moment,
    pub bucket: Option<CapacityClaim>,
}

#[derive(Debug, Clone)]
pub enum RescheduleOutcome {
    Rescheduled(Box<CallbackRecord>),
    SlotFull,
    NotReschedulable(State),
    NotFound,
}

impl Store {
    /// Cancel an unfinished callback (api or admin).
    pub async fn cancel_callback(
        &self,
        tenant_id: &str,
        id: &str,
        actor: Actor,
        now: Moment,
    ) -> StoreResult<CancelOutcome> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let outcome = cancel_in(&mut tx, tenant_id, id, actor, None, now).await?;
            tx.commit().await?;
            Ok(outcome)
        })
        .await
    }

    /// Cancel many callbacks and record the audit entry, all in one transaction: an error midway
    /// leaves every one as it was and no audit entry. One outcome per id, in order.
    pub async fn cancel_callbacks(
        &self,
        tenant_id: &str,
        ids: &[String],
        actor: Actor,
        audit: &AuditEntry,
        now: Moment,
    ) -> StoreResult<Vec<CancelOutcome>> {
        self.audited_bulk(ids, audit, now, async |tx, id| cancel_in(tx, tenant_id, id, actor, None, now).await).await
    }

    /// `each` for every id in one transaction with the audit entry, within the bulk timeout: an
    /// error midway (or the `fail-bulk-midway` fault) leaves every row as it was and no audit
    /// entry. One outcome per id, in order.
    pub(super) async fn audited_bulk<T>(
        &self,
        ids: &[String],
        audit: &AuditEntry,
        now: Moment,
        mut each: impl AsyncFnMut(&mut Transaction<'static, Any>, &str) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        self.timed_within(self.statement_timeout * BULK_TIMEOUT_FACTOR, async {
            let mut tx = self.writer.begin().await?;
            let mut outcomes = Vec::with_capacity(ids.len());
            for (i, id) in ids.iter().enumerate() {
                self.faults.fail_bulk_midway(i, ids.len())?;
                outcomes.push(each(&mut tx, id).await?);
            }
            append_audit(&mut tx, audit, now).await?;
            tx.commit().await?;
            Ok(outcomes)
        })
        .await
    }

    /// Edit a `SCHEDULED` callback: move it (its old bucket place released and the new one
    /// reserved) and/or replace its `userData`, with a history entry and, for an operator, the
    /// audit entry, all in one transaction.
    pub async fn edit_callback(
        &self,
        tenant_id: &str,
        id: &str,
        edit: &CallbackEdit,
        now: Moment,
    ) -> StoreResult<RescheduleOutcome> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let Some(mut current) = fetch_in_tx(&mut tx, tenant_id, id).await? else {
                return Ok(RescheduleOutcome::NotFound);
            };
            if current.state != State::Scheduled {
                return Ok(RescheduleOutcome::NotReschedulable(current.state));
            }
            if let Some(time) = &edit.time {
                if let Some(old) = current.bucket_ms {
                    release(&mut tx, tenant_id, &current.service_name, old).await?;
                }
                if let Some(CapacityClaim { bucket_start, capacity }) = time.bucket {
                    if !reserve(&mut tx, tenant_id, &current.service_name, bucket_start, capacity).await? {
                        return Ok(RescheduleOutcome::SlotFull);
                    }
                }
                current.desired_ms = time.desired_ms;
                current.due_ms = time.due_ms;
                current.bucket_ms = time.bucket.map(|b| b.bucket_start);
            }
            if let Some(user_data) = &edit.user_data {
                current.details.insert("userData".to_string(), Value::Object(user_data.clone()));
            }
            let details = serde_json::to_string(&current.details)?;
            let moved = sqlx::query(
                "UPDATE callbacks SET desired_ms = $1, due_ms = $2, updated_ms = $3, bucket_ms = $4, details = $5
                 WHERE id = $6 AND state = $7",
            )
            .bind(current.desired_ms)
            .bind(current.due_ms)
            .bind(now)
            .bind(current.bucket_ms)
            .bind(details)
            .bind(id)
            .bind(State::Scheduled.as_str())
            .execute(&mut *tx)
            .await?;
            if moved.rows_affected() == 0 {
                return Ok(RescheduleOutcome::NotReschedulable(State::Queued));
            }
            let note = match (edit.time.is_some(), edit.user_data.is_some()) {
                (true, true) => Some("rescheduled; userData edited"),
                (false, true) => Some("userData edited"),
                _ => None,
            };
            append_history(&mut tx, id, State::Scheduled, None, note, edit.actor, now).await?;
            if edit.time.is_some() {
                super::outbox::record_events(&mut tx, LifecycleEvent::Rescheduled, &[id]).await?;
            }
            if let Some(audit) = &edit.audit {
                append_audit(&mut tx, audit, now).await?;
            }
            tx.commit().await?;
            current.updated_ms = now;
            Ok(RescheduleOutcome::Rescheduled(Box::new(current)))
        })
        .await
    }
}

/// Cancel one callback inside the caller's transaction (`cancel_callback`, `cancel_callbacks`).
/// `note` says why in the history entry where the actor alone does not ("service deleted").
pub(super) async fn cancel_in(
    tx: &mut Transaction<'_, Any>,
    tenant_id: &str,
    id: &str,
    actor: Actor,
    note: Option<&str>,
    now: Moment,
) -> StoreResult<CancelOutcome> {
    // A concurrent writer (another replica, the platform) may move the callback between our
    // read and our conditional write; read again and retry rather than fail the cancel.
    let current = loop {
        let Some(current) = fetch_in_tx(tx, tenant_id, id).await? else {
            return Ok(CancelOutcome::NotFound);
        };
        if current.state == State::Completed {
            return Ok(CancelOutcome::AlreadyCompleted);
        }
        let moved =
            sqlx::query("UPDATE callbacks SET state = $1, reason = $2, updated_ms = $3 WHERE id = $4 AND state = $5")
                .bind(State::Completed.as_str())
                .bind(REASON_CANCELLED)
                .bind(now)
                .bind(id)
                .bind(current.state.as_str())
                .execute(&mut **tx)
                .await?;
        if moved.rows_affected() == 1 {
            break current;
        }
    };
    if let Some(bucket) = current.bucket_ms {
        release(tx, tenant_id, &current.service_name, bucket).await?;
    }
    // Handed over already: the platform must hear of the cancel (published by the monitor).
    if current.published_ms.is_some() && current.state.is_active() {
        super::outbox::record_cancel_message(tx, &current, now).await?;
    }
    append_history(tx, id, State::Completed, Some(REASON_CANCELLED), note, actor, now).await?;
    super::outbox::record_events(tx, LifecycleEvent::Cancelled, &[id]).await?;
    Ok(CancelOutcome::Cancelled(Box::new(CallbackRecord {
        state: State::Completed,
        reason: Some(REASON_CANCELLED.to_string()),
        updated_ms: now,
        ..current
    })))
}
