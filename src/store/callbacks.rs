//! Callbacks and their state history. Every transition is one conditional write
//! (`... WHERE state = <expected>`), so concurrent writers can never move a callback twice.

use serde_json::{Map, Value};
use sqlx::{Any, Row, Transaction};

use super::audit::{append_audit, AuditEntry};
use super::capacity::{release, reserve};
use super::{Store, StoreResult, BULK_TIMEOUT_FACTOR};
use crate::domain::booking::CapacityClaim;
use crate::domain::callback::{Actor, State, REASON_CANCELLED};
use crate::domain::webhook::LifecycleEvent;

/// A booking ready to be written.
#[derive(Debug, Clone)]
pub struct NewCallback {
    pub id: String,
    pub tenant_id: String,
    pub service_name: String,
    pub state: State,
    pub phone: String,
    pub desired_ms: i64,
    pub due_ms: i64,
    pub priority: i64,
    pub corr_id: String,
    /// Immediate callbacks are inserted claimed for their first hand-off, held by this replica.
    pub claimed_by: Option<String>,
    pub details: Map<String, Value>,
    pub now_ms: i64,
    pub ttls: Ttls,
    /// The booking request's W3C `traceparent` (issue 25): its hand-offs are linked to that trace.
    pub traceparent: Option<String>,
}

/// A service's `queuedTtlSeconds` and `ttlSeconds` in ms, carried on each of its callbacks so the
/// monitor expires and purges it without the service row (which may be gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttls {
    pub queued_ms: i64,
    pub finished_ms: i64,
}

impl Ttls {
    pub fn of(config: &crate::domain::service::ServiceConfig) -> Ttls {
        let ms = crate::time::seconds_ms;
        Ttls { queued_ms: ms(config.queued_ttl_seconds), finished_ms: ms(config.ttl_seconds) }
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
    pub desired_ms: i64,
    pub due_ms: i64,
    pub priority: i64,
    pub corr_id: String,
    pub attempt: i64,
    pub failed_attempts: i64,
    pub claimed_ms: Option<i64>,
    pub published_ms: Option<i64>,
    pub acked_ms: Option<i64>,
    pub queued_ms: Option<i64>,
    pub details: Map<String, Value>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub bucket_ms: Option<i64>,
    pub processing_ms: Option<i64>,
    pub platform_position: Option<i64>,
    pub platform_ewt: Option<i64>,
    pub platform_reported_ms: Option<i64>,
    /// The callback this one follows up (issue 27), and how many follow-ups came before it.
    pub retry_of: Option<String>,
    pub retry_number: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub state: State,
    pub reason: Option<String>,
    pub time_ms: i64,
    pub actor: String,
    /// Why, where the state and reason do not say (e.g. "service deleted").
    pub note: Option<String>,
    /// The hand-off attempt the entry belongs to (0: before the first); `None` for entries older
    /// than the column.
    pub attempt: Option<i64>,
}

/// Filters of `GET /callbacks` (all optional).
#[derive(Debug, Clone, Default)]
pub struct CallbackFilter {
    pub service_name: Option<String>,
    pub phone: Option<String>,
    /// The number's last digits (the console's search); digits only.
    pub phone_suffix: Option<String>,
    /// Empty = every state.
    pub states: Vec<State>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Keyset cursor: (desired_ms, id) of the last item already returned.
    pub after: Option<(i64, String)>,
    pub limit: i64,
}

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
    pub desired_ms: i64,
    pub due_ms: i64,
    pub bucket: Option<CapacityClaim>,
}

#[derive(Debug, Clone)]
pub enum RescheduleOutcome {
    Rescheduled(Box<CallbackRecord>),
    SlotFull,
    NotReschedulable(State),
    NotFound,
}

enum Param {
    Text(String),
    Int(i64),
}

const COLUMNS: &str = "id, tenant_id, service_name, state, reason, phone, desired_ms, due_ms, priority, corr_id, \
     attempt, failed_attempts, claimed_ms, published_ms, acked_ms, queued_ms, details, created_ms, updated_ms, bucket_ms, \
     processing_ms, platform_position, platform_ewt, platform_reported_ms, retry_of, retry_number";

fn from_row(r: &sqlx::any::AnyRow) -> StoreResult<CallbackRecord> {
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

async fn append_history(
    tx: &mut Transaction<'_, Any>,
    callback_id: &str,
    state: State,
    reason: Option<&str>,
    note: Option<&str>,
    actor: Actor,
    now_ms: i64,
) -> StoreResult<()> {
    append_noted_history_rows(tx, &[callback_id], state, reason, note, actor, now_ms).await
}

/// History rows for several callbacks in one statement per 100.
pub(super) async fn append_history_rows(
    tx: &mut Transaction<'_, Any>,
    ids: &[&str],
    state: State,
    reason: Option<&str>,
    actor: Actor,
    now_ms: i64,
) -> StoreResult<()> {
    append_noted_history_rows(tx, ids, state, reason, None, actor, now_ms).await
}

/// History rows with a note saying why (`history[].note`).
pub(super) async fn append_noted_history_rows(
    tx: &mut Transaction<'_, Any>,
    ids: &[&str],
    state: State,
    reason: Option<&str>,
    note: Option<&str>,
    actor: Actor,
    now_ms: i64,
) -> StoreResult<()> {
    for chunk in ids.chunks(super::ROWS_PER_STATEMENT) {
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
            .bind(now_ms)
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
    pub async fn booking_room(&self, tenant_id: &str, service: &str, phone: &str) -> StoreResult<(i64, i64)> {
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
            .bind(phone)
            .fetch_one(&self.reader)
            .await?;
            Ok((row.try_get("unfinished")?, row.try_get("active")?))
        })
        .await
    }

    pub async fn callback_history(&self, id: &str) -> StoreResult<Vec<HistoryEntry>> {
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

    /// One page ordered by (desired_ms, id); keyset pagination stays stable under concurrent inserts.
    pub async fn list_callbacks(&self, tenant_id: &str, filter: &CallbackFilter) -> StoreResult<Vec<CallbackRecord>> {
        self.timed(async {
            let (clause, mut params) = filter_clause(tenant_id, filter);
            let mut sql = format!("SELECT {COLUMNS} FROM callbacks WHERE {clause}");
            if let Some((after_ms, after_id)) = &filter.after {
                let ms = push_param(&mut params, Param::Int(*after_ms));
                let id = push_param(&mut params, Param::Text(after_id.clone()));
                sql.push_str(&format!(" AND (desired_ms > {ms} OR (desired_ms = {ms} AND id > {id}))"));
            }
            let limit = push_param(&mut params, Param::Int(filter.limit));
            sql.push_str(&format!(" ORDER BY desired_ms, id LIMIT {limit}"));
            let rows = bind_params(sqlx::query(&sql), params).fetch_all(&self.reader).await?;
            rows.iter().map(from_row).collect()
        })
        .await
    }

    /// How many callbacks match `filter` (its cursor and limit aside), per state.
    pub async fn count_callbacks(&self, tenant_id: &str, filter: &CallbackFilter) -> StoreResult<Vec<(String, i64)>> {
        self.timed(async {
            let (clause, params) = filter_clause(tenant_id, filter);
            let sql = format!("SELECT state, COUNT(*) AS n FROM callbacks WHERE {clause} GROUP BY state");
            let rows = bind_params(sqlx::query(&sql), params).fetch_all(&self.reader).await?;
            rows.iter().map(|r| Ok((r.try_get("state")?, r.try_get("n")?))).collect()
        })
        .await
    }

    /// Cancel an unfinished callback (api or admin).
    pub async fn cancel_callback(
        &self,
        tenant_id: &str,
        id: &str,
        actor: Actor,
        now_ms: i64,
    ) -> StoreResult<CancelOutcome> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let outcome = cancel_in(&mut tx, tenant_id, id, actor, None, now_ms).await?;
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
        now_ms: i64,
    ) -> StoreResult<Vec<CancelOutcome>> {
        self.audited_bulk(ids, audit, now_ms, async |tx, id| cancel_in(tx, tenant_id, id, actor, None, now_ms).await)
            .await
    }

    /// `each` for every id in one transaction with the audit entry, within the bulk timeout: an
    /// error midway (or the `fail-bulk-midway` fault) leaves every row as it was and no audit
    /// entry. One outcome per id, in order.
    pub(super) async fn audited_bulk<T>(
        &self,
        ids: &[String],
        audit: &AuditEntry,
        now_ms: i64,
        mut each: impl AsyncFnMut(&mut Transaction<'static, Any>, &str) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        self.timed_within(self.statement_timeout * BULK_TIMEOUT_FACTOR, async {
            let mut tx = self.writer.begin().await?;
            let mut outcomes = Vec::with_capacity(ids.len());
            for (i, id) in ids.iter().enumerate() {
                self.faults.fail_bulk_midway(i, ids.len())?;
                outcomes.push(each(&mut tx, id).await?);
            }
            append_audit(&mut tx, audit, now_ms).await?;
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
        now_ms: i64,
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
            .bind(now_ms)
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
            append_history(&mut tx, id, State::Scheduled, None, note, edit.actor, now_ms).await?;
            if edit.time.is_some() {
                super::outbox::record_events(&mut tx, LifecycleEvent::Rescheduled, &[id]).await?;
            }
            if let Some(audit) = &edit.audit {
                append_audit(&mut tx, audit, now_ms).await?;
            }
            tx.commit().await?;
            current.updated_ms = now_ms;
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
    now_ms: i64,
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
                .bind(now_ms)
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
        super::outbox::record_cancel_message(tx, &current, now_ms).await?;
    }
    append_history(tx, id, State::Completed, Some(REASON_CANCELLED), note, actor, now_ms).await?;
    super::outbox::record_events(tx, LifecycleEvent::Cancelled, &[id]).await?;
    Ok(CancelOutcome::Cancelled(Box::new(CallbackRecord {
        state: State::Completed,
        reason: Some(REASON_CANCELLED.to_string()),
        updated_ms: now_ms,
        ..current
    })))
}

/// Append a bind parameter; returns its placeholder.
fn push_param(params: &mut Vec<Param>, p: Param) -> String {
    params.push(p);
    format!("${}", params.len())
}

/// The list's filters (tenant, service, number, states, desired-time range) as a WHERE clause.
fn filter_clause(tenant_id: &str, filter: &CallbackFilter) -> (String, Vec<Param>) {
    let mut clause = "tenant_id = $1".to_string();
    let mut params = vec![Param::Text(tenant_id.to_string())];
    if let Some(service) = &filter.service_name {
        let mark = push_param(&mut params, Param::Text(service.clone()));
        clause.push_str(&format!(" AND service_name = {mark}"));
    }
    if let Some(phone) = &filter.phone {
        let mark = push_param(&mut params, Param::Text(phone.clone()));
        clause.push_str(&format!(" AND phone = {mark}"));
    }
    if let Some(digits) = &filter.phone_suffix {
        let mark = push_param(&mut params, Param::Text(format!("%{digits}")));
        clause.push_str(&format!(" AND phone LIKE {mark}"));
    }
    if !filter.states.is_empty() {
        let marks: Vec<String> =
            filter.states.iter().map(|s| push_param(&mut params, Param::Text(s.as_str().to_string()))).collect();
        clause.push_str(&format!(" AND state IN ({})", marks.join(", ")));
    }
    if let Some(from) = filter.from_ms {
        let mark = push_param(&mut params, Param::Int(from));
        clause.push_str(&format!(" AND desired_ms >= {mark}"));
    }
    if let Some(to) = filter.to_ms {
        let mark = push_param(&mut params, Param::Int(to));
        clause.push_str(&format!(" AND desired_ms <= {mark}"));
    }
    (clause, params)
}

fn bind_params<'q>(
    mut query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    params: Vec<Param>,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    for p in params {
        query = match p {
            Param::Text(t) => query.bind(t),
            Param::Int(i) => query.bind(i),
        };
    }
    query
}
