//! Click-to-call-in: groups with their number pools, and requests. What keeps concurrent writers
//! honest is in the schema (`0004_callin.sql`): a number is the primary key of its pool row (one
//! group in the whole deployment), and a pending request's (number, slot) is unique — `slot` being
//! its access code on shared numbers and 0 on unique numbers. Every state change is one
//! conditional write (`... AND state = 'PENDING'`).

use std::collections::{HashMap, HashSet};

use rand::rngs::OsRng;
use serde_json::{Map, Value};
use sqlx::{Any, Row, Transaction};

use super::audit::{append_audit, AuditEntry};
use super::{flag, Store, StoreError, StoreResult};
use crate::domain::call_in::{code_space, draw_code, pick_free_code, CallInGroupConfig, RequestState};

#[derive(Debug, Clone)]
pub struct CallInGroupRecord {
    pub name: String,
    pub config: CallInGroupConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutGroupOutcome {
    Stored,
    /// `numbers[index]` already belongs to another group (of any tenant).
    NumberTaken(usize),
}

/// A request ready to be written; the store picks its number and code.
#[derive(Debug, Clone)]
pub struct NewCallIn {
    pub id: String,
    pub tenant_id: String,
    pub group_name: String,
    pub from_number: Option<String>,
    pub callback_id: Option<String>,
    pub user_data: Map<String, Value>,
    pub now_ms: i64,
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
    pub expires_ms: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// Which tenant's group a call-in request belongs to: of the requests a write moved to `EXPIRED`
/// (`ges_callin_expired` is counted by whoever moves one, so exactly once), or for labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallInKey {
    pub tenant_id: String,
    pub group: String,
}

impl CallInKey {
    fn from_row(r: &sqlx::any::AnyRow) -> StoreResult<CallInKey> {
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

enum Attempt {
    Done(CreateCallInOutcome),
    /// A unique index refused the insert (a writer outside this group's lock took the slot).
    Collision,
}

/// Creates that collide are retried with a fresh pick this many times before answering 503.
const CREATE_ATTEMPTS: usize = 4;
/// Random draws checked one by one on a large code space before calling the number full.
const CODE_DRAWS: usize = 32;
/// Code spaces up to this size are listed whole (4 digits and fewer).
const ENUMERABLE_CODES: i64 = 9_000;

const COLUMNS: &str = "id, tenant_id, group_name, state, to_number, access_code, from_number, callback_id, \
     user_data, expires_ms, created_ms, updated_ms";

fn from_row(r: &sqlx::any::AnyRow) -> StoreResult<CallInRecord> {
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

fn group_from_row(r: &sqlx::any::AnyRow) -> StoreResult<CallInGroupRecord> {
    Ok(CallInGroupRecord {
        name: r.try_get("name")?,
        config: serde_json::from_str(&r.try_get::<String, _>("config")?)?,
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
    now_ms: i64,
) -> StoreResult<CancelCallInOutcome> {
    let row = sqlx::query(&format!(
        "UPDATE callin_requests SET state = 'CANCELLED', updated_ms = $1
         WHERE id = $2 AND tenant_id = $3 AND state = 'PENDING' AND expires_ms > $1 RETURNING {COLUMNS}"
    ))
    .bind(now_ms)
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

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

impl Store {
    /// Create or replace a group and its pool. Numbers that stay keep their last-assigned time
    /// (least-recently-used order survives a replace). Pending requests are not touched: see
    /// `http::admin::call_in_groups` for why.
    pub async fn put_callin_group(
        &self,
        tenant_id: &str,
        name: &str,
        config: &CallInGroupConfig,
        audit: &AuditEntry,
        now_ms: i64,
    ) -> StoreResult<PutGroupOutcome> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            sqlx::query(
                "INSERT INTO callin_groups (tenant_id, name, config, created_ms, updated_ms) VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (tenant_id, name) DO UPDATE SET config = $3, updated_ms = $4",
            )
            .bind(tenant_id)
            .bind(name)
            .bind(serde_json::to_string(config)?)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            let rows = sqlx::query(
                "SELECT number, last_assigned_ms FROM callin_numbers WHERE tenant_id = $1 AND group_name = $2",
            )
            .bind(tenant_id)
            .bind(name)
            .fetch_all(&mut *tx)
            .await?;
            let mut last_assigned = HashMap::new();
            for r in &rows {
                last_assigned.insert(r.try_get::<String, _>("number")?, r.try_get::<i64, _>("last_assigned_ms")?);
            }
            sqlx::query("DELETE FROM callin_numbers WHERE tenant_id = $1 AND group_name = $2")
                .bind(tenant_id)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            for (position, number) in config.numbers.iter().enumerate() {
                // The primary key on `number` is the arbiter: of two concurrent writers claiming
                // one number, the second fails here (after the first commits) and is refused.
                let inserted = sqlx::query(
                    "INSERT INTO callin_numbers (number, tenant_id, group_name, position, last_assigned_ms)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(number)
                .bind(tenant_id)
                .bind(name)
                .bind(position as i64)
                .bind(last_assigned.get(number).copied().unwrap_or(0))
                .execute(&mut *tx)
                .await;
                match inserted {
                    Ok(_) => {}
                    Err(e) if is_unique_violation(&e) => return Ok(PutGroupOutcome::NumberTaken(position)),
                    Err(e) => return Err(e.into()),
                }
            }
            append_audit(&mut tx, audit, now_ms).await?;
            tx.commit().await?;
            Ok(PutGroupOutcome::Stored)
        })
        .await
    }

    /// The first of `numbers` (by index) that belongs to a group other than (tenant, name).
    pub async fn callin_number_taken(
        &self,
        tenant_id: &str,
        name: &str,
        numbers: &[String],
    ) -> StoreResult<Option<usize>> {
        self.timed(async {
            let mut taken = HashSet::new();
            for chunk in numbers.chunks(super::ROWS_PER_STATEMENT) {
                let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
                let sql = format!(
                    "SELECT number FROM callin_numbers WHERE number IN ({})
                     AND NOT (tenant_id = $1 AND group_name = $2)",
                    marks.join(", ")
                );
                let mut query = sqlx::query(&sql).bind(tenant_id).bind(name);
                for n in chunk {
                    query = query.bind(n.clone());
                }
                for r in query.fetch_all(&self.reader).await? {
                    taken.insert(r.try_get::<String, _>("number")?);
                }
            }
            Ok(numbers.iter().position(|n| taken.contains(n)))
        })
        .await
    }

    pub async fn get_callin_group(&self, tenant_id: &str, name: &str) -> StoreResult<Option<CallInGroupRecord>> {
        self.timed(async {
            let row = sqlx::query("SELECT name, config FROM callin_groups WHERE tenant_id = $1 AND name = $2")
                .bind(tenant_id)
                .bind(name)
                .fetch_optional(&self.reader)
                .await?;
            row.as_ref().map(group_from_row).transpose()
        })
        .await
    }

    pub async fn list_callin_groups(&self, tenant_id: &str) -> StoreResult<Vec<CallInGroupRecord>> {
        self.timed(async {
            let rows = sqlx::query("SELECT name, config FROM callin_groups WHERE tenant_id = $1 ORDER BY name")
                .bind(tenant_id)
                .fetch_all(&self.reader)
                .await?;
            rows.iter().map(group_from_row).collect()
        })
        .await
    }

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

    /// Deleting a group frees its numbers; its requests stay until they end (see `put`).
    pub async fn delete_callin_group(
        &self,
        tenant_id: &str,
        name: &str,
        audit: &AuditEntry,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let keys: &[&str] = &[tenant_id, name];
        self.audited_delete(
            &[
                ("DELETE FROM callin_groups WHERE tenant_id = $1 AND name = $2", keys),
                ("DELETE FROM callin_numbers WHERE tenant_id = $1 AND group_name = $2", keys),
            ],
            audit,
            now_ms,
        )
        .await
    }

    /// Issue a request: the least recently used number with room, a code from the OS CSPRNG that
    /// no pending request on that number holds, `PENDING` until `now + expirySeconds`.
    pub async fn create_callin(&self, new: &NewCallIn, config: &CallInGroupConfig) -> StoreResult<CreateCallInOutcome> {
        self.timed(async {
            for _ in 0..CREATE_ATTEMPTS {
                match self.try_create_callin(new, config).await? {
                    Attempt::Done(outcome) => return Ok(outcome),
                    Attempt::Collision => continue,
                }
            }
            Err(StoreError::Unavailable("call-in slots kept colliding; retry".into()))
        })
        .await
    }

    async fn try_create_callin(&self, new: &NewCallIn, config: &CallInGroupConfig) -> StoreResult<Attempt> {
        let mut tx = self.writer.begin().await?;
        // Creates for one group take turns (Postgres; SQLite has one writer anyway), so each sees
        // the previous one's row and collisions are left to writers outside the group.
        if let Some(lock) = self.kind.key_locks_sql(1) {
            sqlx::query(&lock).bind(format!("callin:{}:{}", new.tenant_id, new.group_name)).execute(&mut *tx).await?;
        }
        let now = new.now_ms;
        let expired = expire_stale_in_group(&mut tx, &new.tenant_id, &new.group_name, now).await?;
        let picked = if config.unique_numbers {
            pick_unique(&mut tx, new, config).await?
        } else {
            pick_shared(&mut tx, new, config).await?
        };
        let Some((number, slot, code)) = picked else {
            // Keep the expiries this attempt made (they free numbers for the next create).
            tx.commit().await?;
            return Ok(Attempt::Done(CreateCallInOutcome::Exhausted(expired)));
        };
        let expires_ms = now + crate::time::seconds_ms(config.expiry_seconds);
        let inserted = sqlx::query(
            "INSERT INTO callin_requests (id, tenant_id, group_name, state, to_number, slot, access_code, from_number,
                 require_caller, callback_id, user_data, expires_ms, created_ms, updated_ms)
             VALUES ($1, $2, $3, 'PENDING', $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
        )
        .bind(&new.id)
        .bind(&new.tenant_id)
        .bind(&new.group_name)
        .bind(&number)
        .bind(slot)
        .bind(code)
        .bind(new.from_number.clone())
        .bind(flag(config.require_caller_match))
        .bind(new.callback_id.clone())
        .bind(serde_json::to_string(&new.user_data)?)
        .bind(expires_ms)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Ok(Attempt::Collision),
            Err(e) => return Err(e.into()),
        }
        sqlx::query("UPDATE callin_numbers SET last_assigned_ms = $1 WHERE number = $2")
            .bind(now)
            .bind(&number)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let record = CallInRecord {
            id: new.id.clone(),
            tenant_id: new.tenant_id.clone(),
            group_name: new.group_name.clone(),
            state: RequestState::Pending,
            to_number: number,
            access_code: code,
            from_number: new.from_number.clone(),
            callback_id: new.callback_id.clone(),
            user_data: new.user_data.clone(),
            expires_ms,
            created_ms: now,
            updated_ms: now,
        };
        Ok(Attempt::Done(CreateCallInOutcome::Created(Box::new(record), expired)))
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
        now_ms: i64,
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
                .bind(now_ms)
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
        now_ms: i64,
    ) -> StoreResult<Vec<CancelCallInOutcome>> {
        self.audited_bulk(ids, audit, now_ms, async |tx, id| cancel_callin_in(tx, tenant_id, id, now_ms).await).await
    }

    /// Cancel a pending, unexpired request: one conditional write.
    pub async fn cancel_callin(&self, tenant_id: &str, id: &str, now_ms: i64) -> StoreResult<CancelCallInOutcome> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let outcome = cancel_callin_in(&mut tx, tenant_id, id, now_ms).await?;
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
        now_ms: i64,
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
            .bind(now_ms)
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
    pub async fn expire_callin_batch(&self, now_ms: i64) -> StoreResult<Vec<CallInKey>> {
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
            .bind(now_ms)
            .fetch_all(&self.writer)
            .await?;
            rows.iter().map(CallInKey::from_row).collect()
        })
        .await
    }

    /// Forget finished requests last changed before `before_ms`.
    pub async fn purge_callins(&self, before_ms: i64) -> StoreResult<u64> {
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

/// Lazy expiry made real before picking: a pending row past its expiration must not hold its
/// (number, slot) against this create.
async fn expire_stale_in_group(
    tx: &mut Transaction<'_, Any>,
    tenant_id: &str,
    group: &str,
    now_ms: i64,
) -> StoreResult<Vec<CallInKey>> {
    let rows = sqlx::query(
        "UPDATE callin_requests SET state = 'EXPIRED', updated_ms = $1
         WHERE state = 'PENDING' AND expires_ms <= $1
           AND to_number IN (SELECT number FROM callin_numbers WHERE tenant_id = $2 AND group_name = $3)
         RETURNING tenant_id, group_name",
    )
    .bind(now_ms)
    .bind(tenant_id)
    .bind(group)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(CallInKey::from_row).collect()
}

/// (number, slot, code) on a unique-numbers group: the least recently used number no pending
/// request holds. The slot is 0: the request holds the whole number.
async fn pick_unique(
    tx: &mut Transaction<'_, Any>,
    new: &NewCallIn,
    config: &CallInGroupConfig,
) -> StoreResult<Option<(String, i64, Option<i64>)>> {
    let row = sqlx::query(
        "SELECT n.number FROM callin_numbers n
         WHERE n.tenant_id = $1 AND n.group_name = $2
           AND NOT EXISTS (SELECT 1 FROM callin_requests r WHERE r.to_number = n.number AND r.state = 'PENDING')
         ORDER BY n.last_assigned_ms, n.position LIMIT 1",
    )
    .bind(&new.tenant_id)
    .bind(&new.group_name)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let code = config.uses_codes().then(|| draw_code(config.access_code_digits, &mut OsRng));
    Ok(Some((row.try_get("number")?, 0, code)))
}

/// (number, slot, code) on a shared-numbers group: the least recently used number with a free
/// code, and a code no pending request on it holds; the slot is the code.
async fn pick_shared(
    tx: &mut Transaction<'_, Any>,
    new: &NewCallIn,
    config: &CallInGroupConfig,
) -> StoreResult<Option<(String, i64, Option<i64>)>> {
    // A number still held whole by a request made while the group had unique numbers (slot 0)
    // is not shared until that request ends.
    let rows = sqlx::query(
        "SELECT n.number FROM callin_numbers n WHERE n.tenant_id = $1 AND n.group_name = $2
           AND NOT EXISTS (SELECT 1 FROM callin_requests r WHERE r.to_number = n.number AND r.state = 'PENDING' AND r.slot = 0)
         ORDER BY n.last_assigned_ms, n.position",
    )
    .bind(&new.tenant_id)
    .bind(&new.group_name)
    .fetch_all(&mut **tx)
    .await?;
    for row in rows {
        let number: String = row.try_get("number")?;
        if let Some(code) = free_code(tx, &number, config.access_code_digits).await? {
            return Ok(Some((number, code, Some(code))));
        }
    }
    Ok(None)
}

/// A code no pending request on `number` holds. A small space (4 digits or fewer) is listed and
/// drawn from uniformly; a large one is sampled, each draw checked with the unique index's own
/// lookup — half full would take hundreds of thousands of pending requests on one number, so 32
/// misses in a row mean the number is, for practical purposes, full.
async fn free_code(tx: &mut Transaction<'_, Any>, number: &str, digits: u32) -> StoreResult<Option<i64>> {
    if code_space(digits) <= ENUMERABLE_CODES {
        // A code counts as used whether it is a pending request's slot or its access code (a
        // request made while the group had unique numbers carries a code but holds slot 0).
        let rows =
            sqlx::query("SELECT slot, access_code FROM callin_requests WHERE to_number = $1 AND state = 'PENDING'")
                .bind(number)
                .fetch_all(&mut **tx)
                .await?;
        let mut used = HashSet::new();
        for r in &rows {
            used.insert(r.try_get::<i64, _>("slot")?);
            if let Some(code) = r.try_get::<Option<i64>, _>("access_code")? {
                used.insert(code);
            }
        }
        return Ok(pick_free_code(digits, &used, &mut OsRng));
    }
    for _ in 0..CODE_DRAWS {
        let code = draw_code(digits, &mut OsRng);
        let held = sqlx::query(
            "SELECT 1 AS held FROM callin_requests WHERE to_number = $1 AND (slot = $2 OR access_code = $2) AND state = 'PENDING'",
        )
        .bind(number)
        .bind(code)
        .fetch_optional(&mut **tx)
        .await?;
        if held.is_none() {
            return Ok(Some(code));
        }
    }
    Ok(None)
}
