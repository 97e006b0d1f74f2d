//! Operators (issue 26): name, role, tenants, the token's hash. Read on every admin request that
//! does not carry a configured token, so an operator added or revoked on one replica is known to
//! all at once.

use sqlx::Row;

use super::audit::append_audit;
use super::audit::AuditEntry;
use super::error::StoreResult;
use super::handle::Store;
use crate::domain::operator::{Operator, Role};
use crate::time::Moment;

/// An operator as listed (never its token).
#[derive(Debug, Clone)]
pub struct OperatorRecord {
    pub operator: Operator,
    pub created_ms: Moment,
}

fn record(r: &sqlx::any::AnyRow) -> StoreResult<OperatorRecord> {
    let role: String = r.try_get("role")?;
    let tenants: Option<String> = r.try_get("tenants")?;
    // A row written by hand with an unknown role or tenant list gets the least: a monitor of no tenant.
    let (role, tenants) = match (role.parse::<Role>(), tenants.as_deref().map(serde_json::from_str::<Vec<String>>)) {
        (Ok(role), None) => (role, None),
        (Ok(role), Some(Ok(ts))) => (role, Some(ts)),
        _ => {
            tracing::warn!("an operator row does not parse; it may only read, and no tenant");
            (Role::Monitor, Some(Vec::new()))
        }
    };
    Ok(OperatorRecord {
        operator: Operator { name: r.try_get("name")?, role, tenants },
        created_ms: r.try_get("created_ms")?,
    })
}

impl Store {
    /// Add an operator; false when the name is taken.
    pub async fn insert_operator(
        &self,
        operator: &Operator,
        token_hash: &str,
        audit: &AuditEntry,
        now: Moment,
    ) -> StoreResult<bool> {
        let tenants = operator.tenants.as_ref().map(|ts| serde_json::Value::from(ts.clone()).to_string());
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO operators (name, role, tenants, token_hash, created_ms) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(&operator.name)
            .bind(operator.role.as_str())
            .bind(tenants.clone())
            .bind(token_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !inserted {
                return Ok(false);
            }
            append_audit(&mut tx, audit, now).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    pub async fn operator_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Operator>> {
        self.timed(async {
            let row = sqlx::query("SELECT name, role, tenants, created_ms FROM operators WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.reader)
                .await?;
            Ok(row.as_ref().map(record).transpose()?.map(|r| r.operator))
        })
        .await
    }

    pub async fn list_operators(&self) -> StoreResult<Vec<OperatorRecord>> {
        self.timed(async {
            let rows = sqlx::query("SELECT name, role, tenants, created_ms FROM operators ORDER BY name")
                .fetch_all(&self.reader)
                .await?;
            rows.iter().map(record).collect()
        })
        .await
    }

    /// Whether any operator exists (the admin API is on when one does, tokens configured or not).
    pub async fn any_operator(&self) -> StoreResult<bool> {
        self.timed(async {
            Ok(sqlx::query("SELECT 1 AS one FROM operators LIMIT 1").fetch_optional(&self.reader).await?.is_some())
        })
        .await
    }

    /// Revoke an operator (its token stops working on every replica at once); false when unknown.
    pub async fn delete_operator(&self, name: &str, audit: &AuditEntry, now: Moment) -> StoreResult<bool> {
        self.audited_delete(&[("DELETE FROM operators WHERE name = $1", &[name])], audit, now).await
    }
}
