//! Creating a click-to-call-in request: pick a free number (least recently used) or access code
//! under the group's lock, retried with a fresh pick when a unique index refuses the insert.

use std::collections::HashSet;

use rand::rngs::OsRng;
use sqlx::{Any, Row, Transaction};

use super::call_in::{CallInKey, CallInRecord, CreateCallInOutcome, NewCallIn};
use super::error::{is_unique_violation, StoreError, StoreResult};
use super::handle::{flag, Store};

use crate::domain::call_in::{code_space, draw_code, pick_free_code, CallInGroupConfig, RequestState};
use crate::time::Moment;
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

impl Store {
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
        let now = new.now;
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
        let expires_ms = now + crate::time::Millis::from_secs(config.expiry_seconds);
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
}

/// Lazy expiry made real before picking: a pending row past its expiration must not hold its
/// (number, slot) against this create.
async fn expire_stale_in_group(
    tx: &mut Transaction<'_, Any>,
    tenant_id: &str,
    group: &str,
    now: Moment,
) -> StoreResult<Vec<CallInKey>> {
    let rows = sqlx::query(
        "UPDATE callin_requests SET state = 'EXPIRED', updated_ms = $1
         WHERE state = 'PENDING' AND expires_ms <= $1
           AND to_number IN (SELECT number FROM callin_numbers WHERE tenant_id = $2 AND group_name = $3)
         RETURNING tenant_id, group_name",
    )
    .bind(now)
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
