//! Tenants, API keys, services (with their virtual-queue proxy record), the admin audit log and
//! replicated settings.

use serde::Serialize;
use sqlx::{Any, Row, Transaction};

use super::audit::{append_audit, AuditEntry};
use super::callbacks::CancelOutcome;
use super::{flag, Store, StoreResult};
use crate::domain::callback::Actor;
use crate::domain::key_scope::KeyScope;
use crate::domain::service::ServiceConfig;

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

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyRecord {
    pub id: String,
    pub prefix: String,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
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

/// What became of a service write.
#[derive(Debug)]
pub enum ServiceWrite {
    Stored(Box<ServiceRecord>),
    /// Its virtual-queue proxy record could not be written (the cause); nothing was stored.
    ProxyWriteFailed(String),
}

#[derive(Debug, Clone)]
pub struct ServiceRecord {
    pub tenant_id: String,
    pub name: String,
    pub config: ServiceConfig,
}

fn tenant_from_row(row: &sqlx::any::AnyRow) -> StoreResult<Tenant> {
    let origins: String = row.try_get("allowed_origins")?;
    Ok(Tenant {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        allowed_origins: serde_json::from_str(&origins)?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        retention_days: row.try_get("retention_days")?,
    })
}

const TENANT_COLUMNS: &str = "id, name, allowed_origins, enabled, retention_days";

impl Store {
    pub async fn put_tenant(
        &self,
        name: &str,
        allowed_origins: &[String],
        enabled: bool,
        retention_days: Option<i64>,
        audit: &AuditEntry,
        now_ms: i64,
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
            .bind(now_ms)
            .bind(retention_days)
            .execute(&mut *tx)
            .await?;
            append_audit(&mut tx, audit, now_ms).await?;
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
        now_ms: i64,
    ) -> StoreResult<DeleteOutcome> {
        let scope = Unfinished { tenant_id: &tenant.id, service: None, cancel: cancel_unfinished };
        let name: &[&str] = &[tenant.name.as_str()];
        self.delete_with_callbacks(&scope, &[("DELETE FROM tenants WHERE name = $1", name)], audit, now_ms).await
    }

    pub async fn create_api_key(
        &self,
        tenant_id: &str,
        key: &NewApiKey<'_>,
        audit: &AuditEntry,
        now_ms: i64,
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
            .bind(now_ms)
            .bind(key.scope.as_str())
            .execute(&mut *tx)
            .await?;
            append_audit(&mut tx, audit, now_ms).await?;
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
        now_ms: i64,
    ) -> StoreResult<bool> {
        self.audited_delete(
            &[("DELETE FROM api_keys WHERE tenant_id = $1 AND id = $2", &[tenant_id, key_id])],
            audit,
            now_ms,
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

    pub async fn touch_api_key(&self, key_id: &str, now_ms: i64) -> StoreResult<()> {
        self.timed(async {
            sqlx::query("UPDATE api_keys SET last_used_ms = $1 WHERE id = $2")
                .bind(now_ms)
                .bind(key_id)
                .execute(&self.writer)
                .await?;
            Ok(())
        })
        .await
    }

    /// Store a service and its virtual-queue proxy record in one transaction, or neither.
    pub async fn put_service(
        &self,
        tenant_id: &str,
        name: &str,
        config: &ServiceConfig,
        audit: &AuditEntry,
        now_ms: i64,
    ) -> StoreResult<ServiceWrite> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let previous = sqlx::query("SELECT config FROM services WHERE tenant_id = $1 AND name = $2")
                .bind(tenant_id)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
            let previous_ttls = match previous {
                Some(row) => Some(super::Ttls::of(&serde_json::from_str(&row.try_get::<String, _>("config")?)?)),
                None => None,
            };
            sqlx::query(
                "INSERT INTO services (tenant_id, name, config, created_ms, updated_ms) VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (tenant_id, name) DO UPDATE SET config = $3, updated_ms = $4",
            )
            .bind(tenant_id)
            .bind(name)
            .bind(serde_json::to_string(config)?)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            // The service's callbacks carry its TTLs (`Ttls`): a change applies to them too, as it
            // did when the monitor read the TTLs from the service.
            let ttls = super::Ttls::of(config);
            if previous_ttls.is_none_or(|previous| previous != ttls) {
                sqlx::query(
                    "UPDATE callbacks SET queued_ttl_ms = $3, ttl_ms = $4
                     WHERE tenant_id = $1 AND service_name = $2 AND (queued_ttl_ms <> $3 OR ttl_ms <> $4)",
                )
                .bind(tenant_id)
                .bind(name)
                .bind(ttls.queued_ms)
                .bind(ttls.finished_ms)
                .execute(&mut *tx)
                .await?;
            }
            if let Err(e) = self.write_vq_proxy(&mut tx, tenant_id, name, config.virtual_queue_name(name)).await {
                // Dropping the transaction rolls the service write back: neither half is stored.
                return Ok(ServiceWrite::ProxyWriteFailed(e.to_string()));
            }
            append_audit(&mut tx, audit, now_ms).await?;
            tx.commit().await?;
            self.config_changed();
            Ok(ServiceWrite::Stored(Box::new(ServiceRecord {
                tenant_id: tenant_id.to_string(),
                name: name.to_string(),
                config: config.clone(),
            })))
        })
        .await
    }

    pub async fn get_service(&self, tenant_id: &str, name: &str) -> StoreResult<Option<ServiceRecord>> {
        self.timed(async {
            let row = sqlx::query("SELECT config FROM services WHERE tenant_id = $1 AND name = $2")
                .bind(tenant_id)
                .bind(name)
                .fetch_optional(&self.reader)
                .await?;
            match row {
                Some(r) => Ok(Some(ServiceRecord {
                    tenant_id: tenant_id.to_string(),
                    name: name.to_string(),
                    config: serde_json::from_str(&r.try_get::<String, _>("config")?)?,
                })),
                None => Ok(None),
            }
        })
        .await
    }

    pub async fn list_services(&self, tenant_id: &str) -> StoreResult<Vec<ServiceRecord>> {
        self.timed(async {
            let rows = sqlx::query("SELECT name, config FROM services WHERE tenant_id = $1 ORDER BY name")
                .bind(tenant_id)
                .fetch_all(&self.reader)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(ServiceRecord {
                        tenant_id: tenant_id.to_string(),
                        name: r.try_get("name")?,
                        config: serde_json::from_str(&r.try_get::<String, _>("config")?)?,
                    })
                })
                .collect()
        })
        .await
    }

    /// Delete a service; its unfinished callbacks refuse the delete, or with `cancel_unfinished`
    /// are cancelled in the same audited transaction.
    pub async fn delete_service(
        &self,
        tenant_id: &str,
        name: &str,
        cancel_unfinished: bool,
        audit: &AuditEntry,
        now_ms: i64,
    ) -> StoreResult<DeleteOutcome> {
        let keys: &[&str] = &[tenant_id, name];
        let scope = Unfinished { tenant_id, service: Some(name), cancel: cancel_unfinished };
        let statements: &[(&str, &[&str])] = &[
            ("DELETE FROM services WHERE tenant_id = $1 AND name = $2", keys),
            ("DELETE FROM vq_proxy WHERE tenant_id = $1 AND service_name = $2", keys),
        ];
        self.delete_with_callbacks(&scope, statements, audit, now_ms).await
    }

    /// `audited_delete` for what callbacks belong to: its unfinished (not `COMPLETED`) callbacks
    /// either refuse the delete (api.md `HAS_UNFINISHED_CALLBACKS`) or are cancelled first, in the
    /// same transaction, so no callback is left without its service (handed over with default
    /// settings, never expiring, never purged).
    async fn delete_with_callbacks(
        &self,
        scope: &Unfinished<'_>,
        statements: &[(&str, &[&str])],
        audit: &AuditEntry,
        now_ms: i64,
    ) -> StoreResult<DeleteOutcome> {
        self.timed_within(self.statement_timeout * super::BULK_TIMEOUT_FACTOR, async {
            let mut tx = self.writer.begin().await?;
            // Deleted first, so an unknown name is a 404 whatever callbacks carry it; a refusal
            // below rolls the deletes back.
            if !run_deletes(&mut tx, statements).await? {
                return Ok(DeleteOutcome::NotFound);
            }
            let mut sql = "SELECT id FROM callbacks WHERE tenant_id = $1 AND state <> 'COMPLETED'".to_string();
            if scope.service.is_some() {
                sql.push_str(" AND service_name = $2");
            }
            let mut query = sqlx::query(&sql).bind(scope.tenant_id);
            if let Some(service) = scope.service {
                query = query.bind(service);
            }
            let ids: Vec<String> =
                query.fetch_all(&mut *tx).await?.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>()?;
            if !ids.is_empty() && !scope.cancel {
                return Ok(DeleteOutcome::HasUnfinished(ids.len()));
            }
            let mut cancelled = Vec::with_capacity(ids.len());
            let note = if scope.service.is_some() { "service deleted" } else { "tenant deleted" };
            for id in &ids {
                if let CancelOutcome::Cancelled(record) =
                    super::callbacks::cancel_in(&mut tx, scope.tenant_id, id, Actor::Admin, Some(note), now_ms).await?
                {
                    cancelled.push(record.service_name);
                }
            }
            append_audit(&mut tx, audit, now_ms).await?;
            tx.commit().await?;
            self.config_changed();
            Ok(DeleteOutcome::Deleted { cancelled })
        })
        .await
    }

    /// Run the statements in one transaction with the audit entry. The first statement decides:
    /// when it deletes nothing, nothing is written and the answer is `false`.
    pub(super) async fn audited_delete(
        &self,
        statements: &[(&str, &[&str])],
        audit: &AuditEntry,
        now_ms: i64,
    ) -> StoreResult<bool> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            if !run_deletes(&mut tx, statements).await? {
                return Ok(false);
            }
            append_audit(&mut tx, audit, now_ms).await?;
            tx.commit().await?;
            self.config_changed();
            Ok(true)
        })
        .await
    }

    pub async fn get_setting(&self, key: &str) -> StoreResult<Option<String>> {
        self.timed(async {
            let row =
                sqlx::query("SELECT value FROM settings WHERE key = $1").bind(key).fetch_optional(&self.reader).await?;
            Ok(row.map(|r| r.try_get("value")).transpose()?)
        })
        .await
    }

    /// The setting's value, storing `value` first if it has none. Replicas starting together all
    /// read the one value that won the insert (deployment-wide secrets and salts).
    pub async fn setting_or_insert(&self, key: &str, value: &str, now_ms: i64) -> StoreResult<String> {
        self.timed(async {
            sqlx::query(
                "INSERT INTO settings (key, value, updated_ms) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(value)
            .bind(now_ms)
            .execute(&self.writer)
            .await?;
            let row =
                sqlx::query("SELECT value FROM settings WHERE key = $1").bind(key).fetch_one(&self.writer).await?;
            Ok(row.try_get("value")?)
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

    pub async fn put_setting(&self, key: &str, value: &str, audit: &AuditEntry, now_ms: i64) -> StoreResult<()> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            sqlx::query(
                "INSERT INTO settings (key, value, updated_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO UPDATE SET value = $2, updated_ms = $3",
            )
            .bind(key)
            .bind(value)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            append_audit(&mut tx, audit, now_ms).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }
}

/// The statements of a delete, in order; false (and nothing more run) when the first deletes
/// nothing.
async fn run_deletes(tx: &mut Transaction<'_, Any>, statements: &[(&str, &[&str])]) -> StoreResult<bool> {
    for (i, (sql, params)) in statements.iter().enumerate() {
        let mut query = sqlx::query(sql);
        for p in params.iter() {
            query = query.bind(p.to_string());
        }
        let done = query.execute(&mut **tx).await?;
        if i == 0 && done.rows_affected() == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whose unfinished callbacks a delete must settle, and whether it may cancel them.
struct Unfinished<'a> {
    tenant_id: &'a str,
    service: Option<&'a str>,
    cancel: bool,
}

/// What a delete of a service or tenant did.
#[derive(Debug)]
pub enum DeleteOutcome {
    /// Deleted; the services of the callbacks it cancelled (one entry per callback).
    Deleted {
        cancelled: Vec<String>,
    },
    NotFound,
    /// Refused: this many callbacks are not `COMPLETED`.
    HasUnfinished(usize),
}

impl Store {
    /// The service's virtual-queue proxy record (virtual queue → services), replaced inside the
    /// service's own transaction so a failure leaves neither half written.
    async fn write_vq_proxy(
        &self,
        tx: &mut Transaction<'_, Any>,
        tenant_id: &str,
        service: &str,
        virtual_queue: &str,
    ) -> Result<(), sqlx::Error> {
        if self.faults.take_vq_proxy_failure() {
            // A real database error: the table does not exist.
            sqlx::query("INSERT INTO vq_proxy_fault_injection VALUES (1)").execute(&mut **tx).await?;
        }
        sqlx::query("DELETE FROM vq_proxy WHERE tenant_id = $1 AND service_name = $2")
            .bind(tenant_id)
            .bind(service)
            .execute(&mut **tx)
            .await?;
        sqlx::query("INSERT INTO vq_proxy (tenant_id, virtual_queue, service_name) VALUES ($1, $2, $3)")
            .bind(tenant_id)
            .bind(virtual_queue)
            .bind(service)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}
