//! Erasure by phone number (issue 27; GDPR art. 17, CCPA): one tenant's every record of a number,
//! in one transaction with its audit entry. Unfinished callbacks of the number are first completed
//! with reason `ERASED` (the platform is told to stop dialling those it already has); then the
//! number and `userData` are overwritten in its callbacks, its call-in requests lose the caller's
//! number and `userData`, and the records that could repeat them — stored idempotency answers,
//! audit bodies, outbox rows (hand-offs and lifecycle events, delivered or not) and their delivery
//! records — are deleted or emptied. What is outside the database (throttle counters, dispatch
//! stream entries) is for the caller (`ops::erasure`), after the commit.

use serde_json::Value;
use sqlx::{Any, Row, Transaction};

use super::audit::{append_audit, AuditEntry};
use super::callbacks::{append_noted_history_rows, fetch_in_tx};
use super::error::StoreResult;
use super::handle::Store;
use crate::domain::callback::{Actor, State, REASON_ERASED};
use crate::domain::phone::E164;
use crate::domain::webhook::LifecycleEvent;
use crate::time::Moment;

/// What an erasure overwrote or deleted, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Erased {
    /// Callback ids of the number (every one now without it).
    #[serde(skip)]
    pub callback_ids: Vec<String>,
    /// The service of each callback completed `ERASED` (for `ges_callbacks_completed`).
    #[serde(skip)]
    pub cancelled_in: Vec<String>,
    pub cancelled: u64,
    pub callbacks: u64,
    pub call_in_requests: u64,
    pub idempotency_records: u64,
    pub audit_entries: u64,
    pub outbox_rows: u64,
    pub delivery_records: u64,
}

impl Erased {
    /// Records touched in the database.
    pub fn total(&self) -> u64 {
        self.callbacks
            + self.call_in_requests
            + self.idempotency_records
            + self.audit_entries
            + self.outbox_rows
            + self.delivery_records
    }
}

/// What replaces an erased number: not a number, so it can never be dialled or matched.
pub const ERASED_NUMBER: &str = "ERASED";

/// Finished callbacks whose personal data one retention pass overwrites at most.
const RETENTION_BATCH: i64 = 500;

impl Store {
    /// Overwrite the number and `userData` of finished callbacks older than their tenant's
    /// `retentionDays` (issue 27). How many; the recovery pass repeats until none is left.
    pub async fn purge_personal_data(&self, now: Moment) -> StoreResult<u64> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let rows = sqlx::query(
                "SELECT c.id, c.details FROM callbacks c JOIN tenants t ON t.id = c.tenant_id
                 WHERE t.retention_days IS NOT NULL AND c.state = 'COMPLETED' AND c.phone <> $1
                   AND c.updated_ms <= $2 - t.retention_days * 86400000
                 LIMIT $3",
            )
            .bind(ERASED_NUMBER)
            .bind(now)
            .bind(RETENTION_BATCH)
            .fetch_all(&mut *tx)
            .await?;
            for r in &rows {
                erase_callback(&mut tx, &r.try_get::<String, _>("id")?, &r.try_get::<String, _>("details")?).await?;
            }
            tx.commit().await?;
            Ok(rows.len() as u64)
        })
        .await
    }

    pub async fn erase_number(
        &self,
        tenant_id: &str,
        tenant_name: &str,
        number: &E164,
        audit: &AuditEntry,
        now: Moment,
    ) -> StoreResult<Erased> {
        self.timed_within(self.statement_timeout * super::handle::BULK_TIMEOUT_FACTOR, async {
            let mut tx = self.writer.begin().await?;
            let mut erased = Erased::default();
            let rows = sqlx::query("SELECT id FROM callbacks WHERE tenant_id = $1 AND phone = $2")
                .bind(tenant_id)
                .bind(number.as_str())
                .fetch_all(&mut *tx)
                .await?;
            for r in &rows {
                erased.callback_ids.push(r.try_get("id")?);
            }
            // Records that could repeat the number or userData, before anything new is written.
            for id in erased.callback_ids.clone() {
                let id = id.as_str();
                erase_outbox_of(&mut tx, tenant_id, id, &mut erased).await?;
                let ids_like = format!("%{id}%");
                let done = sqlx::query("DELETE FROM idempotency WHERE tenant_id = $1 AND response LIKE $2")
                    .bind(tenant_id)
                    .bind(&ids_like)
                    .execute(&mut *tx)
                    .await?;
                erased.idempotency_records += done.rows_affected();
                let done = sqlx::query(
                    "UPDATE audit_log SET body = NULL WHERE tenant = $1 AND body IS NOT NULL AND (resource LIKE $2 OR body LIKE $2)",
                )
                .bind(tenant_name)
                .bind(&ids_like)
                .execute(&mut *tx)
                .await?;
                erased.audit_entries += done.rows_affected();
            }
            // Anything else that quotes the number itself (a refused create's stored answer, an
            // admin body), written with or without its `+`.
            let digits = format!("%{}%", number.as_str().trim_start_matches('+'));
            let done = sqlx::query("DELETE FROM idempotency WHERE tenant_id = $1 AND response LIKE $2")
                .bind(tenant_id)
                .bind(&digits)
                .execute(&mut *tx)
                .await?;
            erased.idempotency_records += done.rows_affected();
            let done = sqlx::query("UPDATE audit_log SET body = NULL WHERE tenant = $1 AND body LIKE $2")
                .bind(tenant_name)
                .bind(&digits)
                .execute(&mut *tx)
                .await?;
            erased.audit_entries += done.rows_affected();

            // Unfinished callbacks: completed ERASED first (the platform hears a cancel for those
            // it has; the message is built from the erased row, so it carries no number).
            for id in &erased.callback_ids {
                let Some(current) = fetch_in_tx(&mut tx, tenant_id, id).await? else { continue };
                if current.state == State::Completed {
                    continue;
                }
                let moved = sqlx::query(
                    "UPDATE callbacks SET state = 'COMPLETED', reason = $1, updated_ms = $2 WHERE id = $3 AND state = $4",
                )
                .bind(REASON_ERASED)
                .bind(now)
                .bind(id)
                .bind(current.state.as_str())
                .execute(&mut *tx)
                .await?;
                if moved.rows_affected() == 0 {
                    continue;
                }
                if let Some(bucket) = current.bucket_ms {
                    super::capacity::release(&mut tx, tenant_id, &current.service_name, bucket).await?;
                }
                if current.published_ms.is_some() && current.state.is_active() {
                    super::outbox::record_cancel_message(&mut tx, &current, now).await?;
                }
                let ids = [id.as_str()];
                append_noted_history_rows(&mut tx, &ids, State::Completed, Some(REASON_ERASED), Some("erased on request"), Actor::Admin, now)
                    .await?;
                super::outbox::record_events(&mut tx, LifecycleEvent::Cancelled, &ids).await?;
                erased.cancelled += 1;
                erased.cancelled_in.push(current.service_name.clone());
            }
            // The callbacks themselves: no number, no userData.
            for id in &erased.callback_ids {
                let row = sqlx::query("SELECT details FROM callbacks WHERE id = $1").bind(id).fetch_one(&mut *tx).await?;
                erase_callback(&mut tx, id, &row.try_get::<String, _>("details")?).await?;
                erased.callbacks += 1;
            }
            // Call-in requests from the number, or for its callbacks.
            let mut requests = sqlx::query("SELECT id FROM callin_requests WHERE tenant_id = $1 AND from_number = $2")
                .bind(tenant_id)
                .bind(number.as_str())
                .fetch_all(&mut *tx)
                .await?;
            for id in &erased.callback_ids {
                requests.extend(
                    sqlx::query("SELECT id FROM callin_requests WHERE tenant_id = $1 AND callback_id = $2")
                        .bind(tenant_id)
                        .bind(id)
                        .fetch_all(&mut *tx)
                        .await?,
                );
            }
            for r in &requests {
                let id: String = r.try_get("id")?;
                let done = sqlx::query(
                    "UPDATE callin_requests SET from_number = NULL, user_data = '{}' WHERE id = $1 AND tenant_id = $2",
                )
                .bind(&id)
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?;
                erased.call_in_requests += done.rows_affected();
            }
            // The audit entry keeps the count and the request's corrId only: a hash of the number
            // could be brute-forced.
            let audit = AuditEntry {
                body: Some(serde_json::json!({ "records": erased.total(), "corrId": crate::telemetry::request_context::corr_id() }).to_string()),
                ..audit.clone()
            };
            append_audit(&mut tx, &audit, now).await?;
            tx.commit().await?;
            Ok(erased)
        })
        .await
    }
}

/// A callback without its number and with an empty `userData` (`details`: its stored details).
async fn erase_callback(tx: &mut Transaction<'_, Any>, id: &str, details: &str) -> StoreResult<()> {
    let mut details: serde_json::Map<String, Value> = serde_json::from_str(details)?;
    details.insert("userData".into(), Value::Object(Default::default()));
    sqlx::query("UPDATE callbacks SET phone = $1, details = $2 WHERE id = $3")
        .bind(ERASED_NUMBER)
        .bind(serde_json::to_string(&details)?)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Delete a callback's outbox rows (its hand-off cancels and lifecycle events, delivered or not)
/// and the delivery records of its hand-offs and events.
async fn erase_outbox_of(
    tx: &mut Transaction<'_, Any>,
    tenant_id: &str,
    id: &str,
    erased: &mut Erased,
) -> StoreResult<()> {
    let events = sqlx::query("SELECT id FROM outbox WHERE tenant_id = $1 AND callback_id = $2")
        .bind(tenant_id)
        .bind(id)
        .fetch_all(&mut **tx)
        .await?;
    for e in &events {
        let webhook_id = format!("evt_{}", e.try_get::<i64, _>("id")?);
        let done = sqlx::query("DELETE FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2")
            .bind(tenant_id)
            .bind(webhook_id)
            .execute(&mut **tx)
            .await?;
        erased.delivery_records += done.rows_affected();
    }
    // Hand-offs' records are named `<callback id>:<attempt>`. (A delivered event's outbox row is
    // deleted at delivery; its record, `evt_<row id>`, holds ids, a status and a latency — no
    // number — and can no longer be tied to the callback.)
    let done = sqlx::query("DELETE FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id LIKE $2")
        .bind(tenant_id)
        .bind(format!("{id}:%"))
        .execute(&mut **tx)
        .await?;
    erased.delivery_records += done.rows_affected();
    let done = sqlx::query("DELETE FROM outbox WHERE tenant_id = $1 AND callback_id = $2")
        .bind(tenant_id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    erased.outbox_rows += done.rows_affected();
    Ok(())
}
