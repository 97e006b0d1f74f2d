//! Audited deletes: a delete and its audit entry in one transaction, and the deletes of what
//! callbacks belong to (a service, a tenant), which settle or refuse their unfinished callbacks.

use sqlx::{Any, Row, Transaction};

use super::audit::{append_audit, AuditEntry};
use super::callback_changes::CancelOutcome;
use super::error::StoreResult;
use super::handle::Store;
use crate::domain::callback::Actor;
use crate::time::Moment;

/// The statements of a delete, in order; false (and nothing more run) when the first deletes
/// nothing.
async fn run_deletes(tx: &mut Transaction<'_, Any>, statements: &[(&str, &[&str])]) -> StoreResult<bool> {
    for (i, (sql, params)) in statements.iter().enumerate() {
        let mut query = sqlx::query(sql);
        for p in params.iter() {
            query = query.bind(p.to_string());
        }
        let done = query.execute(&mut **tx).await?;
        if i == 0 && done.rows_affected() == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whose unfinished callbacks a delete must settle, and whether it may cancel them.
pub(super) struct Unfinished<'a> {
    pub(super) tenant_id: &'a str,
    pub(super) service: Option<&'a str>,
    pub(super) cancel: bool,
}

/// What a delete of a service or tenant did.
#[derive(Debug)]
pub enum DeleteOutcome {
    /// Deleted; the services of the callbacks it cancelled (one entry per callback).
    Deleted {
        cancelled: Vec<String>,
    },
    NotFound,
    /// Refused: this many callbacks are not `COMPLETED`.
    HasUnfinished(usize),
}

impl Store {
    /// `audited_delete` for what callbacks belong to: its unfinished (not `COMPLETED`) callbacks
    /// either refuse the delete (api.md `HAS_UNFINISHED_CALLBACKS`) or are cancelled first, in the
    /// same transaction, so no callback is left without its service (handed over with default
    /// settings, never expiring, never purged).
    pub(super) async fn delete_with_callbacks(
        &self,
        scope: &Unfinished<'_>,
        statements: &[(&str, &[&str])],
        audit: &AuditEntry,
        now: Moment,
    ) -> StoreResult<DeleteOutcome> {
        self.timed_within(self.statement_timeout * super::handle::BULK_TIMEOUT_FACTOR, async {
            let mut tx = self.writer.begin().await?;
            // Deleted first, so an unknown name is a 404 whatever callbacks carry it; a refusal
            // below rolls the deletes back.
            if !run_deletes(&mut tx, statements).await? {
                return Ok(DeleteOutcome::NotFound);
            }
            let mut sql = "SELECT id FROM callbacks WHERE tenant_id = $1 AND state <> 'COMPLETED'".to_string();
            if scope.service.is_some() {
                sql.push_str(" AND service_name = $2");
            }
            let mut query = sqlx::query(&sql).bind(scope.tenant_id);
            if let Some(service) = scope.service {
                query = query.bind(service);
            }
            let ids: Vec<String> =
                query.fetch_all(&mut *tx).await?.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>()?;
            if !ids.is_empty() && !scope.cancel {
                return Ok(DeleteOutcome::HasUnfinished(ids.len()));
            }
            let mut cancelled = Vec::with_capacity(ids.len());
            let note = if scope.service.is_some() { "service deleted" } else { "tenant deleted" };
            for id in &ids {
                if let CancelOutcome::Cancelled(record) =
                    super::callback_changes::cancel_in(&mut tx, scope.tenant_id, id, Actor::Admin, Some(note), now)
                        .await?
                {
                    cancelled.push(record.service_name);
                }
            }
            append_audit(&mut tx, audit, now).await?;
            tx.commit().await?;
            self.config_changed();
            Ok(DeleteOutcome::Deleted { cancelled })
        })
        .await
    }

    /// Run the statements in one transaction with the audit entry. The first statement decides:
    /// when it deletes nothing, nothing is written and the answer is `false`.
    pub(super) async fn audited_delete(
        &self,
        statements: &[(&str, &[&str])],
        audit: &AuditEntry,
        now: Moment,
    ) -> StoreResult<bool> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            if !run_deletes(&mut tx, statements).await? {
                return Ok(false);
            }
            append_audit(&mut tx, audit, now).await?;
            tx.commit().await?;
            self.config_changed();
            Ok(true)
        })
        .await
    }
}
