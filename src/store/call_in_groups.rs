//! Click-to-call-in groups with their number pools.

use std::collections::{HashMap, HashSet};

use sqlx::Row;

use super::audit::{append_audit, AuditEntry};
use super::error::{is_unique_violation, StoreResult};
use super::handle::Store;
use crate::domain::call_in::CallInGroupConfig;
use crate::time::Moment;
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

fn group_from_row(r: &sqlx::any::AnyRow) -> StoreResult<CallInGroupRecord> {
    Ok(CallInGroupRecord {
        name: r.try_get("name")?,
        config: serde_json::from_str(&r.try_get::<String, _>("config")?)?,
    })
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
        now: Moment,
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
            .bind(now)
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
            append_audit(&mut tx, audit, now).await?;
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
            for chunk in numbers.chunks(super::handle::ROWS_PER_STATEMENT) {
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

    /// Deleting a group frees its numbers; its requests stay until they end (see `put`).
    pub async fn delete_callin_group(
        &self,
        tenant_id: &str,
        name: &str,
        audit: &AuditEntry,
        now: Moment,
    ) -> StoreResult<bool> {
        let keys: &[&str] = &[tenant_id, name];
        self.audited_delete(
            &[
                ("DELETE FROM callin_groups WHERE tenant_id = $1 AND name = $2", keys),
                ("DELETE FROM callin_numbers WHERE tenant_id = $1 AND group_name = $2", keys),
            ],
            audit,
            now,
        )
        .await
    }
}
