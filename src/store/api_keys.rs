//! API keys: issued (hashed), listed, revoked, resolved to their tenant and scope, and touched on use.

use super::tenants::{tenant_from_row, Tenant};
use serde::Serialize;
use sqlx::Row;

use super::audit::{append_audit, AuditEntry};
use super::error::StoreResult;
use super::handle::Store;
use crate::domain::key_scope::KeyScope;
use crate::time::Moment;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyRecord {
    pub id: String,
    pub prefix: String,
    pub created_ms: Moment,
    pub last_used_ms: Option<Moment>,
}

/// An API key resolved to its tenant.
#[derive(Debug, Clone)]
pub struct ResolvedKey {
    pub key_id: String,
    pub tenant: Tenant,
    pub scope: KeyScope,
}

/// An API key to store: never its plaintext, only its SHA-256.
pub struct NewApiKey<'a> {
    pub id: &'a str,
    pub prefix: &'a str,
    pub hash: &'a str,
    pub scope: KeyScope,
}

impl Store {
    pub async fn create_api_key(
        &self,
        tenant_id: &str,
        key: &NewApiKey<'_>,
        audit: &AuditEntry,
        now: Moment,
    ) -> StoreResult<()> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            sqlx::query(
                "INSERT INTO api_keys (id, tenant_id, prefix, key_hash, created_ms, scope) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(key.id)
            .bind(tenant_id)
            .bind(key.prefix)
            .bind(key.hash)
            .bind(now)
            .bind(key.scope.as_str())
            .execute(&mut *tx)
            .await?;
            append_audit(&mut tx, audit, now).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    pub async fn list_api_keys(&self, tenant_id: &str) -> StoreResult<Vec<ApiKeyRecord>> {
        self.timed(async {
            let rows = sqlx::query(
                "SELECT id, prefix, created_ms, last_used_ms FROM api_keys WHERE tenant_id = $1 ORDER BY created_ms, id",
            )
            .bind(tenant_id)
            .fetch_all(&self.reader)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(ApiKeyRecord {
                        id: r.try_get("id")?,
                        prefix: r.try_get("prefix")?,
                        created_ms: r.try_get("created_ms")?,
                        last_used_ms: r.try_get("last_used_ms")?,
                    })
                })
                .collect()
        })
        .await
    }

    pub async fn delete_api_key(
        &self,
        tenant_id: &str,
        key_id: &str,
        audit: &AuditEntry,
        now: Moment,
    ) -> StoreResult<bool> {
        self.audited_delete(
            &[("DELETE FROM api_keys WHERE tenant_id = $1 AND id = $2", &[tenant_id, key_id])],
            audit,
            now,
        )
        .await
    }

    pub async fn resolve_api_key(&self, key_hash: &str) -> StoreResult<Option<ResolvedKey>> {
        self.timed(async {
            let row = sqlx::query(
                "SELECT k.id AS key_id, k.scope, t.id, t.name, t.allowed_origins, t.enabled, t.retention_days
                 FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.key_hash = $1",
            )
            .bind(key_hash)
            .fetch_optional(&self.reader)
            .await?;
            match row {
                Some(r) => {
                    // An unknown scope (a row written by hand) gets the least: a widget's.
                    let scope = r.try_get::<String, _>("scope")?.parse().unwrap_or(KeyScope::Widget);
                    Ok(Some(ResolvedKey { key_id: r.try_get("key_id")?, tenant: tenant_from_row(&r)?, scope }))
                }
                None => Ok(None),
            }
        })
        .await
    }

    pub async fn touch_api_key(&self, key_id: &str, now: Moment) -> StoreResult<()> {
        self.timed(async {
            sqlx::query("UPDATE api_keys SET last_used_ms = $1 WHERE id = $2")
                .bind(now)
                .bind(key_id)
                .execute(&self.writer)
                .await?;
            Ok(())
        })
        .await
    }

    /// The SHA-256 of every key issued in the legacy format (`rb_`, before signed keys).
    pub async fn legacy_key_hashes(&self) -> StoreResult<std::collections::HashSet<String>> {
        self.timed(async {
            let rows = sqlx::query("SELECT key_hash FROM api_keys WHERE substr(prefix, 1, 3) = 'rb_'")
                .fetch_all(&self.reader)
                .await?;
            rows.iter().map(|r| Ok(r.try_get("key_hash")?)).collect()
        })
        .await
    }
}
