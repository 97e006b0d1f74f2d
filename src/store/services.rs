//! Services: their configuration, with the virtual-queue proxy record written in the same transaction.

use super::deletes::{DeleteOutcome, Unfinished};
use sqlx::{Any, Row, Transaction};

use super::audit::{append_audit, AuditEntry};
use super::error::StoreResult;
use super::handle::Store;
use crate::domain::service::ServiceConfig;
use crate::time::Moment;

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

impl Store {
    /// Store a service and its virtual-queue proxy record in one transaction, or neither.
    pub async fn put_service(
        &self,
        tenant_id: &str,
        name: &str,
        config: &ServiceConfig,
        audit: &AuditEntry,
        now: Moment,
    ) -> StoreResult<ServiceWrite> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let previous = sqlx::query("SELECT config FROM services WHERE tenant_id = $1 AND name = $2")
                .bind(tenant_id)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
            let previous_ttls = match previous {
                Some(row) => {
                    Some(super::callbacks::Ttls::of(&serde_json::from_str(&row.try_get::<String, _>("config")?)?))
                }
                None => None,
            };
            sqlx::query(
                "INSERT INTO services (tenant_id, name, config, created_ms, updated_ms) VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (tenant_id, name) DO UPDATE SET config = $3, updated_ms = $4",
            )
            .bind(tenant_id)
            .bind(name)
            .bind(serde_json::to_string(config)?)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            // The service's callbacks carry its TTLs (`Ttls`): a change applies to them too, as it
            // did when the monitor read the TTLs from the service.
            let ttls = super::callbacks::Ttls::of(config);
            if previous_ttls.is_none_or(|previous| previous != ttls) {
                sqlx::query(
                    "UPDATE callbacks SET queued_ttl_ms = $3, ttl_ms = $4
                     WHERE tenant_id = $1 AND service_name = $2 AND (queued_ttl_ms <> $3 OR ttl_ms <> $4)",
                )
                .bind(tenant_id)
                .bind(name)
                .bind(ttls.queued)
                .bind(ttls.finished)
                .execute(&mut *tx)
                .await?;
            }
            if let Err(e) = self.write_vq_proxy(&mut tx, tenant_id, name, config.virtual_queue_name(name)).await {
                // Dropping the transaction rolls the service write back: neither half is stored.
                return Ok(ServiceWrite::ProxyWriteFailed(e.to_string()));
            }
            append_audit(&mut tx, audit, now).await?;
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
        now: Moment,
    ) -> StoreResult<DeleteOutcome> {
        let keys: &[&str] = &[tenant_id, name];
        let scope = Unfinished { tenant_id, service: Some(name), cancel: cancel_unfinished };
        let statements: &[(&str, &[&str])] = &[
            ("DELETE FROM services WHERE tenant_id = $1 AND name = $2", keys),
            ("DELETE FROM vq_proxy WHERE tenant_id = $1 AND service_name = $2", keys),
        ];
        self.delete_with_callbacks(&scope, statements, audit, now).await
    }

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
