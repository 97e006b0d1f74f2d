//! Click-to-call-in requests: read, listed, cancelled, matched to an inbound call, expired and
//! purged. What keeps concurrent writers honest is in the schema (`0004_callin.sql`): a number is the
//! primary key of its pool row (one group in the whole deployment), and a pending request's (number,
//! slot) is unique — `slot` being its access code on shared numbers and 0 on unique numbers. Every
//! state change is one conditional write (`... AND state = 'PENDING'`).

use std::collections::HashMap;

use serde_json::{Map, Value};
use sqlx::{Any, Row, Transaction};

use super::audit::AuditEntry;
use super::error::StoreResult;
use super::handle::Store;
use crate::domain::call_in::RequestState;
use crate::time::Moment;
/// A request ready to be written; the store picks its number and code.
#[derive(Debug, Clone)]
pub struct NewCallIn {
    pub id: String,
    pub tenant_id: String,
    pub group_name: String,
    pub from_number: Option<String>,
    pub callback_id: Option<String>,
    pub user_data: Map<String, Value>,
    pub now: Moment,
}

#[derive(Debug, Clone)]
pub struct CallInRecord {
    pub id: String,
    pub tenant_id: String,
    pub group_name: String,
    /// As stored; `state.as_seen(expires_ms, now)` is what clients see.
    pub state: RequestState,
    pub to_number: String,
    pub access_code: Option<i64>,
    pub from_number: Option<String>,
    pub callback_id: Option<String>,
    pub user_data: Map<String, Value>,
    pub expires_ms: Moment,
    pub created_ms: Moment,
    pub updated_ms: Moment,
}

/// Which tenant's group a call-in request belongs to: of the requests a write moved to `EXPIRED`
/// (`ges_callin_expired` is counted by whoever moves one, so exactly once), or for labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallInKey {
    pub tenant_id: String,
    pub group: String,
}

impl CallInKey {
    pub(super) fn from_row(r: &sqlx::any::AnyRow) -> StoreResult<CallInKey> {
        Ok(CallInKey { tenant_id: r.try_get("tenant_id")?, group: r.try_get("group_name")? })
    }
}

/// What the store knows for a call-in request's labels: its tenant's name (`None`: the tenant is
/// gone) and whether its group is still configured.
#[derive(Debug, Clone)]
pub struct CallInLabelFacts {
    pub tenant_name: Option<String>,
    pub group_configured: bool,
}

#[derive(Debug, Clone)]
pub enum CreateCallInOutcome {
    Created(Box<CallInRecord>, Vec<CallInKey>),
    /// No free number (unique numbers) or no free code on any number (shared numbers).
    Exhausted(Vec<CallInKey>),
}

#[derive(Debug, Clone)]
pub enum CancelCallInOutcome {
    Cancelled(Box<CallInRecord>),
    /// No longer pending (or past its expiration): the record as it is.
    NotPending(Box<CallInRecord>),
    NotFound,
}

pub(super) const COLUMNS: &str = "id, tenant_id, group_name, state, to_number, access_code, from_number, callback_id, \
     user_data, expires_ms, created_ms, updated_ms";

pub(super) fn from_row(r: &sqlx::any::AnyRow) -> StoreResult<CallInRecord> {
    let state: String = r.try_get("state")?;
    let user_data: String = r.try_get("user_data")?;
    Ok(CallInRecord {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        group_name: r.try_get("group_name")?,
        state: state.parse().map_err(|e: String| anyhow::anyhow!(e))?,
        to_number: r.try_get("to_number")?,
        access_code: r.try_get("access_code")?,
        from_number: r.try_get("from_number")?,
        callback_id: r.try_get("callback_id")?,
        user_data: serde_json::from_str(&user_data)?,
        expires_ms: r.try_get("expires_ms")?,
        created_ms: r.try_get("created_ms")?,
        updated_ms: r.try_get("updated_ms")?,
    })
}

/// Filters of the admin list of call-in requests.
#[derive(Debug, Clone, Default)]
pub struct CallInFilter {
    pub group: Option<String>,
    pub state: Option<RequestState>,
    /// Keyset cursor: (created_ms, id) of the last request already returned.
    pub before: Option<(i64, String)>,
    pub limit: i64,
}

/// One pending request cancelled inside the caller's transaction (`cancel_callins`).
async fn cancel_callin_in(
    tx: &mut Transaction<'_, Any>,
    tenant_id: &str,
    id: &str,
    now: Moment,
) -> StoreResult<CancelCallInOutcome> {
    let row = sqlx::query(&format!(
        "UPDATE callin_requests SET state = 'CANCELLED', updated_ms = $1
         WHERE id = $2 AND tenant_id = $3 AND state = 'PENDING' AND expires_ms > $1 RETURNING {COLUMNS}"
    ))
    .bind(now)
    .bind(id)
    .bind(tenant_id)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(r) = row {
        return Ok(CancelCallInOutcome::Cancelled(Box::new(from_row(&r)?)));
    }
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM callin_requests WHERE id = $1 AND tenant_id = $2"))
        .bind(id)
        .bind(tenant_id)
        .fetch_optional(&mut **tx)
        .await?;
    match row {
        Some(r) => Ok(CancelCallInOutcome::NotPending(Box::new(from_row(&r)?))),
        None => Ok(CancelCallInOutcome::NotFound),
    }
}

/// Requests the recovery pass expires per statement.
pub const CALLIN_EXPIRY_BATCH: usize = 1000;

impl Store {
    /// Metric labels for call-in requests a write moved: (tenant name, group name), the group
    /// being `unknown` when it is no longer configured and the tenant `undefined` when it is gone.
    /// Never fails: a count must not be lost because its labels could not be read, so on a
    /// database error every request is labelled `undefined`/`unknown` (and a warning logged).
    /// For each key, in order: its tenant's name and whether its group is configured (one query
    /// per distinct key).
    pub async fn callin_label_facts(&self, keys: &[CallInKey]) -> StoreResult<Vec<CallInLabelFacts>> {
        self.timed(async {
            let mut resolved: HashMap<&CallInKey, CallInLabelFacts> = HashMap::new();
            let mut facts = Vec::with_capacity(keys.len());
            for key in keys {
                if !resolved.contains_key(key) {
                    let row = sqlx::query(
                        "SELECT t.name,
                                (SELECT COUNT(*) FROM callin_groups g WHERE g.tenant_id = t.id AND g.name = $2) AS configured
                         FROM tenants t WHERE t.id = $1",
                    )
                    .bind(&key.tenant_id)
                    .bind(&key.group)
                    .fetch_optional(&self.reader)
                    .await?;
                    let found = match row {
                        Some(r) => CallInLabelFacts {
                            tenant_name: Some(r.try_get("name")?),
                            group_configured: r.try_get::<i64, _>("configured")? > 0,
                        },
                        None => CallInLabelFacts { tenant_name: None, group_configured: false },
                    };
                    resolved.insert(key, found);
                }
                if let Some(found) = resolved.get(key) {
                    facts.push(found.clone());
                }
            }
            Ok(facts)
        })
        .await
    }

    pub async fn get_callin(&self, tenant_id: &str, id: &str) -> StoreResult<Option<CallInRecord>> {
        self.timed(async {
            let row = sqlx::query(&format!("SELECT {COLUMNS} FROM callin_requests WHERE id = $1 AND tenant_id = $2"))
                .bind(id)
                .bind(tenant_id)
                .fetch_optional(&self.reader)
                .await?;
            row.as_ref().map(from_row).transpose()
        })
        .await
    }

    /// A tenant's requests, newest first (admin list): optionally of one group and in one stored
    /// state (`PENDING` means pending and unexpired; `EXPIRED` includes pending ones past their
    /// time), after the keyset cursor `(created_ms, id)`.
    pub async fn list_callins(
        &self,
        tenant_id: &str,
        filter: &CallInFilter,
        now: Moment,
    ) -> StoreResult<Vec<CallInRecord>> {
        self.timed(async {
            let mut sql = format!("SELECT {COLUMNS} FROM callin_requests WHERE tenant_id = $1");
            sql.push_str(match filter.state {
                Some(RequestState::Pending) => " AND state = 'PENDING' AND expires_ms > $2",
                Some(RequestState::Expired) => " AND (state = 'EXPIRED' OR (state = 'PENDING' AND expires_ms <= $2))",
                Some(RequestState::Matched) => " AND state = 'MATCHED' AND $2 = $2",
                Some(RequestState::Cancelled) => " AND state = 'CANCELLED' AND $2 = $2",
                None => " AND $2 = $2",
            });
            sql.push_str(" AND ($3 = '' OR group_name = $3)");
            sql.push_str(" AND ($4 < 0 OR created_ms < $4 OR (created_ms = $4 AND id < $5))");
            sql.push_str(" ORDER BY created_ms DESC, id DESC LIMIT $6");
            let (after_ms, after_id) = filter.before.clone().unwrap_or((-1, String::new()));
            let rows = sqlx::query(&sql)
                .bind(tenant_id)
                .bind(now)
                .bind(filter.group.clone().unwrap_or_default())
                .bind(after_ms)
                .bind(after_id)
                .bind(filter.limit)
                .fetch_all(&self.reader)
                .await?;
            rows.iter().map(from_row).collect()
        })
        .await
    }

    /// Cancel many pending requests with the operator's audit entry, all in one transaction.
    pub async fn cancel_callins(
        &self,
        tenant_id: &str,
        ids: &[String],
        audit: &AuditEntry,
        now: Moment,
    ) -> StoreResult<Vec<CancelCallInOutcome>> {
        self.audited_bulk(ids, audit, now, async |tx, id| cancel_callin_in(tx, tenant_id, id, now).await).await
    }

    /// Cancel a pending, unexpired request: one conditional write.
    pub async fn cancel_callin(&self, tenant_id: &str, id: &str, now: Moment) -> StoreResult<CancelCallInOutcome> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let outcome = cancel_callin_in(&mut tx, tenant_id, id, now).await?;
            tx.commit().await?;
            Ok(outcome)
        })
        .await
    }

    /// Match an inbound call: the pending, unexpired request on `to_number` whose code (when it
    /// has one) and caller (when the group required it) agree becomes `MATCHED`, in one
    /// conditional write — of two concurrent matches, the second finds it no longer pending.
    pub async fn match_callin(
        &self,
        to_number: &str,
        access_code: Option<i64>,
        from_number: Option<&str>,
        now: Moment,
    ) -> StoreResult<Option<CallInRecord>> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let row = sqlx::query(&format!(
                "UPDATE callin_requests SET state = 'MATCHED', updated_ms = $1
                 WHERE id = (SELECT id FROM callin_requests
                             WHERE to_number = $2 AND state = 'PENDING' AND expires_ms > $1
                               AND (access_code IS NULL OR access_code = $3)
                               AND (require_caller = 0 OR from_number = $4)
                             ORDER BY created_ms LIMIT 1)
                   AND state = 'PENDING' AND expires_ms > $1
                 RETURNING {COLUMNS}"
            ))
            .bind(now)
            .bind(to_number)
            .bind(access_code)
            .bind(from_number.map(str::to_string))
            .fetch_optional(&mut *tx)
            .await?;
            let matched = row.as_ref().map(from_row).transpose()?;
            if let Some(m) = &matched {
                super::outbox::record_callin_matched(&mut tx, &m.id).await?;
            }
            tx.commit().await?;
            Ok(matched)
        })
        .await
    }

    /// One batch of the recovery pass: up to `CALLIN_EXPIRY_BATCH` pending requests past their
    /// expiration become `EXPIRED`. Rows a create holds are skipped (PostgreSQL), so the sweep
    /// never waits on a create's lock and the two cannot deadlock; the create expires them itself.
    pub async fn expire_callin_batch(&self, now: Moment) -> StoreResult<Vec<CallInKey>> {
        self.timed(async {
            let rows = sqlx::query(&self.update_picked(
                "callin_requests",
                &format!(
                    "SELECT id FROM callin_requests WHERE state = 'PENDING' AND expires_ms <= $1
                     ORDER BY id LIMIT {CALLIN_EXPIRY_BATCH}"
                ),
                "state = 'EXPIRED', updated_ms = $1",
                "tenant_id, group_name",
            ))
            .bind(now)
            .fetch_all(&self.writer)
            .await?;
            rows.iter().map(CallInKey::from_row).collect()
        })
        .await
    }

    /// Forget finished requests last changed before `before_ms`.
    pub async fn purge_callins(&self, before_ms: Moment) -> StoreResult<u64> {
        self.timed(async {
            let done = sqlx::query("DELETE FROM callin_requests WHERE state <> 'PENDING' AND updated_ms < $1")
                .bind(before_ms)
                .execute(&self.writer)
                .await?;
            Ok(done.rows_affected())
        })
        .await
    }
}
