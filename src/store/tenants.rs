//! Tenants: their rows, and the audited delete of one with its callbacks.

use super::deletes::{DeleteOutcome, Unfinished};
use serde::Serialize;
use sqlx::Row;

use super::audit::{append_audit, AuditEntry};
use super::error::StoreResult;
use super::handle::{flag, Store};
use crate::time::Moment;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub allowed_origins: Vec<String>,
    pub enabled: bool,
    /// Days a finished callback keeps its number and `userData` (issue 27); `None`: until purged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<i64>,
}

pub(super) fn tenant_from_row(row: &sqlx::any::AnyRow) -> StoreResult<Tenant> {
    let origins: String = row.try_get("allowed_origins")?;
    Ok(Tenant {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        allowed_origins: serde_json::from_str(&origins)?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        retention_days: row.try_get("retention_days")?,
    })
}

pub(super) const TENANT_COLUMNS: &str = "id, name, allowed_origins, enabled, retention_days";

impl Store {
    pub async fn put_tenant(
        &self,
        name: &str,
        allowed_origins: &[String],
        enabled: bool,
        retention_days: Option<i64>,
        audit: &AuditEntry,
        now: Moment,
    ) -> StoreResult<Tenant> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let origins = serde_json::to_string(allowed_origins)?;
            let id = uuid::Uuid::now_v7().to_string();
            sqlx::query(
                "INSERT INTO tenants (id, name, allowed_origins, enabled, created_ms, updated_ms, retention_days)
                 VALUES ($1, $2, $3, $4, $5, $5, $6)
                 ON CONFLICT (name) DO UPDATE SET allowed_origins = $3, enabled = $4, updated_ms = $5, retention_days = $6",
            )
            .bind(id)
            .bind(name)
            .bind(origins)
            .bind(flag(enabled))
            .bind(now)
            .bind(retention_days)
            .execute(&mut *tx)
            .await?;
            append_audit(&mut tx, audit, now).await?;
            let row = sqlx::query(&format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE name = $1"))
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            tenant_from_row(&row)
        })
        .await
    }

    pub async fn get_tenant(&self, name: &str) -> StoreResult<Option<Tenant>> {
        self.timed(async {
            let row = sqlx::query(&format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE name = $1"))
                .bind(name)
                .fetch_optional(&self.reader)
                .await?;
            row.as_ref().map(tenant_from_row).transpose()
        })
        .await
    }

    pub async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        self.timed(async {
            let rows = sqlx::query(&format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY name"))
                .fetch_all(&self.reader)
                .await?;
            rows.iter().map(tenant_from_row).collect()
        })
        .await
    }

    /// Delete a tenant (its keys and services go with it); its unfinished callbacks refuse the
    /// delete, or with `cancel_unfinished` are cancelled in the same audited transaction.
    pub async fn delete_tenant(
        &self,
        tenant: &Tenant,
        cancel_unfinished: bool,
        audit: &AuditEntry,
        now: Moment,
    ) -> StoreResult<DeleteOutcome> {
        let scope = Unfinished { tenant_id: &tenant.id, service: None, cancel: cancel_unfinished };
        let name: &[&str] = &[tenant.name.as_str()];
        self.delete_with_callbacks(&scope, &[("DELETE FROM tenants WHERE name = $1", name)], audit, now).await
    }
}
