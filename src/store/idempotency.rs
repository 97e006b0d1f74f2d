//! `Idempotency-Key` records (api.md § create): the first answer (2xx or 400) is replayed for 24 h;
//! a different body under the same key is refused; a repeat while the first runs gets a 409.

use sqlx::{Any, Row, Transaction};

use super::error::StoreResult;
use super::handle::Store;
use crate::time::{Millis, Moment};

/// How long a key is remembered.
pub const RETENTION: Millis = crate::time::DAY;
/// A key still "in progress" after this long belongs to a request that died with its process;
/// a retry may take it over (the rule lives in `domain::booking`).
pub const STALE_IN_PROGRESS: Millis = crate::domain::booking::IDEMPOTENCY_TAKEOVER;

#[derive(Debug, Clone, PartialEq)]
pub enum IdempotencyBegin {
    /// First use: the key is now held by this request.
    Fresh,
    Replay {
        status: u16,
        body: String,
    },
    DifferentBody,
    InProgress,
}

/// The answer to remember for a key.
#[derive(Debug, Clone)]
pub struct IdempotencyResult {
    pub tenant_id: String,
    pub key: String,
    pub status: u16,
    pub body: String,
}

pub(super) async fn record_result(tx: &mut Transaction<'_, Any>, result: &IdempotencyResult) -> StoreResult<()> {
    sqlx::query("UPDATE idempotency SET status = $1, response = $2 WHERE tenant_id = $3 AND key = $4")
        .bind(i64::from(result.status))
        .bind(&result.body)
        .bind(&result.tenant_id)
        .bind(&result.key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    pub async fn begin_idempotent(
        &self,
        tenant_id: &str,
        key: &str,
        request_hash: &str,
        now: Moment,
    ) -> StoreResult<IdempotencyBegin> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let row = sqlx::query(
                "SELECT request_hash, status, response, created_ms FROM idempotency WHERE tenant_id = $1 AND key = $2",
            )
            .bind(tenant_id)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
            let outcome = match row {
                None => {
                    let inserted = sqlx::query(
                        "INSERT INTO idempotency (tenant_id, key, request_hash, created_ms) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (tenant_id, key) DO NOTHING",
                    )
                    .bind(tenant_id)
                    .bind(key)
                    .bind(request_hash)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    // Lost a race with a concurrent first use of the same key.
                    if inserted.rows_affected() == 0 {
                        IdempotencyBegin::InProgress
                    } else {
                        IdempotencyBegin::Fresh
                    }
                }
                Some(r) => {
                    let hash: String = r.try_get("request_hash")?;
                    let status: Option<i64> = r.try_get("status")?;
                    let created: Moment = r.try_get("created_ms")?;
                    let expired = now - created > RETENTION;
                    let abandoned = status.is_none() && now - created > STALE_IN_PROGRESS;
                    if expired || abandoned {
                        let taken = sqlx::query(
                            "UPDATE idempotency SET request_hash = $1, status = NULL, response = NULL, created_ms = $2
                             WHERE tenant_id = $3 AND key = $4 AND created_ms = $5",
                        )
                        .bind(request_hash)
                        .bind(now)
                        .bind(tenant_id)
                        .bind(key)
                        .bind(created)
                        .execute(&mut *tx)
                        .await?;
                        // A concurrent retry took it over first (the row no longer holds what
                        // was read): that one books; this one waits for its answer.
                        if taken.rows_affected() == 0 {
                            IdempotencyBegin::InProgress
                        } else {
                            IdempotencyBegin::Fresh
                        }
                    } else if hash != request_hash {
                        IdempotencyBegin::DifferentBody
                    } else {
                        match status {
                            None => IdempotencyBegin::InProgress,
                            Some(code) => IdempotencyBegin::Replay {
                                status: u16::try_from(code).unwrap_or(500),
                                body: r.try_get::<Option<String>, _>("response")?.unwrap_or_default(),
                            },
                        }
                    }
                }
            };
            tx.commit().await?;
            Ok(outcome)
        })
        .await
    }

    /// Remember an answer that did not create anything (a 400).
    pub async fn finish_idempotent(&self, result: &IdempotencyResult) -> StoreResult<()> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            record_result(&mut tx, result).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Forget a key whose answer must not be replayed (429, 5xx), so a retry can succeed.
    pub async fn release_idempotent(&self, tenant_id: &str, key: &str) -> StoreResult<()> {
        self.timed(async {
            sqlx::query("DELETE FROM idempotency WHERE tenant_id = $1 AND key = $2 AND status IS NULL")
                .bind(tenant_id)
                .bind(key)
                .execute(&self.writer)
                .await?;
            Ok(())
        })
        .await
    }
}
