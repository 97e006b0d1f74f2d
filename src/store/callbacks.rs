//! Callbacks and their state history: the row, how it is read, and the history entries every
//! transition appends. Every transition is one conditional write (`... WHERE state = <expected>`), so
//! concurrent writers can never move a callback twice.

use serde_json::{Map, Value};
use sqlx::{Any, Row, Transaction};

use super::error::StoreResult;
use super::handle::Store;
use crate::domain::booking::CapacityClaim;
use crate::domain::callback::{Actor, State};
use crate::domain::phone::E164;
use crate::time::{Millis, Moment};
/// A booking ready to be written.
#[derive(Debug, Clone)]
pub struct NewCallback {
    pub id: String,
    pub tenant_id: String,
    pub service_name: String,
    pub state: State,
    pub phone: E164,
    pub desired_ms: Moment,
    pub due_ms: Moment,
    pub priority: i64,
    pub corr_id: String,
    /// Immediate callbacks are inserted claimed for their first hand-off, held by this replica.
    pub claimed_by: Option<String>,
    pub details: Map<String, Value>,
    pub now: Moment,
    pub ttls: Ttls,
    /// The booking request's W3C `traceparent` (issue 25): its hand-offs are linked to that trace.
    pub traceparent: Option<String>,
}

/// A service's `queuedTtlSeconds` and `ttlSeconds` in ms, carried on each of its callbacks so the
/// monitor expires and purges it without the service row (which may be gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttls {
    pub queued: Millis,
    pub finished: Millis,
}

impl Ttls {
    pub fn of(config: &crate::domain::service::ServiceConfig) -> Ttls {
        Ttls { queued: Millis::from_secs(config.queued_ttl_seconds), finished: Millis::from_secs(config.ttl_seconds) }
    }
}

/// Checks that must hold at the moment of the insert, inside its transaction.
#[derive(Debug, Clone, Default)]
pub struct BookingGuards {
    /// In-queue checking: refuse when the number already has this many unfinished callbacks.
    pub max_unfinished_for_number: Option<i64>,
    /// `maxQueued`: refuse an immediate booking when the service has this many active callbacks.
    pub max_active: Option<i64>,
    /// Capacity bucket to reserve.
    pub bucket: Option<CapacityClaim>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted,
    AlreadyQueued,
    QueueFull,
    SlotFull,
}

#[derive(Debug, Clone)]
pub struct CallbackRecord {
    pub id: String,
    pub tenant_id: String,
    pub service_name: String,
    pub state: State,
    pub reason: Option<String>,
    pub phone: String,
    pub desired_ms: Moment,
    pub due_ms: Moment,
    pub priority: i64,
    pub corr_id: String,
    pub attempt: i64,
    pub failed_attempts: i64,
    pub claimed_ms: Option<Moment>,
    pub published_ms: Option<Moment>,
    pub acked_ms: Option<Moment>,
    pub queued_ms: Option<Moment>,
    pub details: Map<String, Value>,
    pub created_ms: Moment,
    pub updated_ms: Moment,
    pub bucket_ms: Option<Moment>,
    pub processing_ms: Option<Moment>,
    pub platform_position: Option<i64>,
    pub platform_ewt: Option<i64>,
    pub platform_reported_ms: Option<Moment>,
    /// The callback this one follows up (issue 27), and how many follow-ups came before it.
    pub retry_of: Option<String>,
    pub retry_number: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub state: State,
    pub reason: Option<String>,
    pub time_ms: Moment,
    pub actor: String,
    /// Why, where the state and reason do not say (e.g. "service deleted").
    pub note: Option<String>,
    /// The hand-off attempt the entry belongs to (0: before the first); `None` for entries older
    /// than the column.
    pub attempt: Option<i64>,
}

pub(super) const COLUMNS: &str = "id, tenant_id, service_name, state, reason, phone, desired_ms, due_ms, priority, corr_id, \
     attempt, failed_attempts, claimed_ms, published_ms, acked_ms, queued_ms, details, created_ms, updated_ms, bucket_ms, \
     processing_ms, platform_position, platform_ewt, platform_reported_ms, retry_of, retry_number";

pub(super) fn from_row(r: &sqlx::any::AnyRow) -> StoreResult<CallbackRecord> {
    let state: String = r.try_get("state")?;
    let details: String = r.try_get("details")?;
    Ok(CallbackRecord {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        service_name: r.try_get("service_name")?,
        state: state.parse().map_err(|e: String| anyhow::anyhow!(e))?,
        reason: r.try_get("reason")?,
        phone: r.try_get("phone")?,
        desired_ms: r.try_get("desired_ms")?,
        due_ms: r.try_get("due_ms")?,
        priority: r.try_get("priority")?,
        corr_id: r.try_get("corr_id")?,
        attempt: r.try_get("attempt")?,
        failed_attempts: r.try_get("failed_attempts")?,
        claimed_ms: r.try_get("claimed_ms")?,
        published_ms: r.try_get("published_ms")?,
        acked_ms: r.try_get("acked_ms")?,
        queued_ms: r.try_get("queued_ms")?,
        details: serde_json::from_str(&details)?,
        created_ms: r.try_get("created_ms")?,
        updated_ms: r.try_get("updated_ms")?,
        bucket_ms: r.try_get("bucket_ms")?,
        processing_ms: r.try_get("processing_ms")?,
        platform_position: r.try_get("platform_position")?,
        platform_ewt: r.try_get("platform_ewt")?,
        platform_reported_ms: r.try_get("platform_reported_ms")?,
        retry_of: r.try_get("retry_of")?,
        retry_number: r.try_get("retry_number")?,
    })
}

pub(super) async fn append_history(
    tx: &mut Transaction<'_, Any>,
    callback_id: &str,
    state: State,
    reason: Option<&str>,
    note: Option<&str>,
    actor: Actor,
    now: Moment,
) -> StoreResult<()> {
    append_noted_history_rows(tx, &[callback_id], state, reason, note, actor, now).await
}

/// History rows for several callbacks in one statement per 100.
pub(super) async fn append_history_rows(
    tx: &mut Transaction<'_, Any>,
    ids: &[&str],
    state: State,
    reason: Option<&str>,
    actor: Actor,
    now: Moment,
) -> StoreResult<()> {
    append_noted_history_rows(tx, ids, state, reason, None, actor, now).await
}

/// History rows with a note saying why (`history[].note`).
pub(super) async fn append_noted_history_rows(
    tx: &mut Transaction<'_, Any>,
    ids: &[&str],
    state: State,
    reason: Option<&str>,
    note: Option<&str>,
    actor: Actor,
    now: Moment,
) -> StoreResult<()> {
    for chunk in ids.chunks(super::handle::ROWS_PER_STATEMENT) {
        // The attempt is the callback's own at this moment (after this transaction's update).
        let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 6)).collect();
        let sql = format!(
            "INSERT INTO callback_history (callback_id, state, reason, time_ms, actor, note, attempt)
             SELECT id, $1, $2, $3, $4, $5, attempt FROM callbacks WHERE id IN ({})",
            marks.join(", ")
        );
        let mut query = sqlx::query(&sql)
            .bind(state.as_str())
            .bind(reason.map(str::to_string))
            .bind(now)
            .bind(actor.as_str())
            .bind(note.map(str::to_string));
        for id in chunk {
            query = query.bind(id.to_string());
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

pub(super) async fn fetch_any_in_tx(tx: &mut Transaction<'_, Any>, id: &str) -> StoreResult<Option<CallbackRecord>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM callbacks WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub(super) async fn fetch_in_tx(
    tx: &mut Transaction<'_, Any>,
    tenant_id: &str,
    id: &str,
) -> StoreResult<Option<CallbackRecord>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM callbacks WHERE id = $1 AND tenant_id = $2"))
        .bind(id)
        .bind(tenant_id)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(from_row).transpose()
}

impl Store {
    /// Any tenant's callback (the monitor and the internal API work across tenants).
    pub async fn callback_by_id(&self, id: &str) -> StoreResult<Option<CallbackRecord>> {
        self.timed(async {
            let row = sqlx::query(&format!("SELECT {COLUMNS} FROM callbacks WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.reader)
                .await?;
            row.as_ref().map(from_row).transpose()
        })
        .await
    }

    pub async fn get_callback(&self, tenant_id: &str, id: &str) -> StoreResult<Option<CallbackRecord>> {
        self.timed(async {
            let row = sqlx::query(&format!("SELECT {COLUMNS} FROM callbacks WHERE id = $1 AND tenant_id = $2"))
                .bind(id)
                .bind(tenant_id)
                .fetch_optional(&self.reader)
                .await?;
            row.as_ref().map(from_row).transpose()
        })
        .await
    }

    /// What a booking's guards would read now (the dry run): the number's unfinished callbacks in
    /// the service, and the service's active ones.
    pub async fn booking_room(&self, tenant_id: &str, service: &str, phone: &E164) -> StoreResult<(i64, i64)> {
        self.timed(async {
            let row = sqlx::query(
                "SELECT
                   (SELECT COUNT(*) FROM callbacks WHERE tenant_id = $1 AND service_name = $2 AND phone = $3
                      AND state <> 'COMPLETED') AS unfinished,
                   (SELECT COUNT(*) FROM callbacks WHERE tenant_id = $1 AND service_name = $2
                      AND state IN ('QUEUED', 'ROUTING', 'PROCESSING')) AS active",
            )
            .bind(tenant_id)
            .bind(service)
            .bind(phone.as_str())
            .fetch_one(&self.reader)
            .await?;
            Ok((row.try_get("unfinished")?, row.try_get("active")?))
        })
        .await
    }

    pub async fn list_history(&self, id: &str) -> StoreResult<Vec<HistoryEntry>> {
        self.timed(async {
            let rows = sqlx::query(
                "SELECT state, reason, time_ms, actor, note, attempt FROM callback_history WHERE callback_id = $1 ORDER BY id",
            )
            .bind(id)
            .fetch_all(&self.reader)
            .await?;
            rows.iter()
                .map(|r| {
                    let state: String = r.try_get("state")?;
                    Ok(HistoryEntry {
                        state: state.parse().map_err(|e: String| anyhow::anyhow!(e))?,
                        reason: r.try_get("reason")?,
                        time_ms: r.try_get("time_ms")?,
                        actor: r.try_get("actor")?,
                        note: r.try_get("note")?,
                        attempt: r.try_get("attempt")?,
                    })
                })
                .collect()
        })
        .await
    }
}
