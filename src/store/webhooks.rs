//! Webhook endpoints (with their signing secrets) and the record of their deliveries (issue 24).

use sqlx::Row;

use super::audit::{append_audit, AuditEntry};
use super::error::StoreResult;
use super::handle::Store;
use crate::domain::webhook::EndpointConfig;
use crate::time::{Millis, Moment};

/// An endpoint as stored: its configuration and the secrets that sign for it.
#[derive(Debug, Clone)]
pub struct EndpointRecord {
    pub tenant_id: String,
    pub name: String,
    pub config: EndpointConfig,
    pub secret: String,
    /// The secret before the last rotation, valid (and signing too) until `previous_until_ms`.
    pub previous_secret: Option<String>,
    pub previous_until_ms: Option<Moment>,
    pub created_ms: Moment,
    pub updated_ms: Moment,
}

impl EndpointRecord {
    /// The secrets a delivery at `now` is signed with: the current one, and the previous one while
    /// it is still valid (both signatures are sent during a rotation).
    pub fn signing_secrets(&self, now: Moment) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(previous), Some(until)) = (&self.previous_secret, self.previous_until_ms) {
            if now < until {
                secrets.push(previous.as_str());
            }
        }
        secrets
    }
}

/// How long delivery records are kept (`purge_bookkeeping`).
pub const DELIVERY_RETENTION: Millis = Millis::from_ms(7 * crate::time::DAY.as_ms());

/// One delivery attempt as recorded (`GET …/webhooks/{name}/deliveries`).
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    pub id: i64,
    pub tenant_id: String,
    pub endpoint: String,
    pub event_type: String,
    pub webhook_id: String,
    pub status_code: Option<u16>,
    pub latency_ms: Millis,
    pub error: Option<String>,
    pub created_ms: Moment,
}

const ENDPOINT_COLUMNS: &str =
    "tenant_id, name, config, secret, previous_secret, previous_until_ms, created_ms, updated_ms";

fn endpoint_from_row(row: &sqlx::any::AnyRow) -> StoreResult<EndpointRecord> {
    let config: String = row.try_get("config")?;
    Ok(EndpointRecord {
        tenant_id: row.try_get("tenant_id")?,
        name: row.try_get("name")?,
        config: serde_json::from_str(&config)?,
        secret: row.try_get("secret")?,
        previous_secret: row.try_get("previous_secret")?,
        previous_until_ms: row.try_get("previous_until_ms")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}

/// One endpoint by its key, through `executor` (a pool, or a transaction's connection).
async fn read_endpoint<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    executor: E,
    tenant_id: &str,
    name: &str,
) -> StoreResult<Option<EndpointRecord>> {
    let row =
        sqlx::query(&format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 AND name = $2"))
            .bind(tenant_id)
            .bind(name)
            .fetch_optional(executor)
            .await?;
    row.as_ref().map(endpoint_from_row).transpose()
}

impl Store {
    /// Create or update an endpoint. A new one gets `secret`; an existing one keeps its own.
    /// Returns the stored record and whether it was created.
    pub async fn put_webhook_endpoint(
        &self,
        tenant_id: &str,
        name: &str,
        config: &EndpointConfig,
        secret: &str,
        audit: &AuditEntry,
        now: Moment,
    ) -> StoreResult<(EndpointRecord, bool)> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let config_value = config;
            let config = serde_json::to_string(config)?;
            let updated = sqlx::query(
                "UPDATE webhook_endpoints SET config = $1, updated_ms = $2, failing_since_ms = NULL
                 WHERE tenant_id = $3 AND name = $4",
            )
            .bind(&config)
            .bind(now)
            .bind(tenant_id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
            let created = updated.rows_affected() == 0;
            if created {
                sqlx::query(
                    "INSERT INTO webhook_endpoints (tenant_id, name, config, secret, created_ms, updated_ms)
                     VALUES ($1, $2, $3, $4, $5, $5)",
                )
                .bind(tenant_id)
                .bind(name)
                .bind(&config)
                .bind(secret)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            super::outbox::write_subscriptions(&mut tx, tenant_id, name, &config_value.subscriptions()).await?;
            append_audit(&mut tx, audit, now).await?;
            let record = read_endpoint(&mut *tx, tenant_id, name)
                .await?
                .ok_or_else(|| anyhow::anyhow!("webhook endpoint {name} missing right after its write"))?;
            tx.commit().await?;
            self.config_changed();
            Ok((record, created))
        })
        .await
    }

    pub async fn get_webhook_endpoint(&self, tenant_id: &str, name: &str) -> StoreResult<Option<EndpointRecord>> {
        self.timed(read_endpoint(&self.reader, tenant_id, name)).await
    }

    pub async fn list_webhook_endpoints(&self, tenant_id: &str) -> StoreResult<Vec<EndpointRecord>> {
        self.timed(async {
            let rows = sqlx::query(&format!(
                "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 ORDER BY name"
            ))
            .bind(tenant_id)
            .fetch_all(&self.reader)
            .await?;
            rows.iter().map(endpoint_from_row).collect()
        })
        .await
    }

    pub async fn delete_webhook_endpoint(
        &self,
        tenant_id: &str,
        name: &str,
        audit: &AuditEntry,
        now: Moment,
    ) -> StoreResult<bool> {
        // Its subscriptions go with it (cascade); so do its undelivered events.
        self.audited_delete(
            &[
                ("DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND name = $2", &[tenant_id, name]),
                ("DELETE FROM outbox WHERE tenant_id = $1 AND endpoint = $2", &[tenant_id, name]),
            ],
            audit,
            now,
        )
        .await
    }

    /// A new secret; the old one stays valid (and signs too) until `previous_until_ms`. False if
    /// there is no such endpoint.
    pub async fn rotate_webhook_secret(
        &self,
        tenant_id: &str,
        name: &str,
        secret: &str,
        previous_until_ms: Moment,
        audit: &AuditEntry,
        now: Moment,
    ) -> StoreResult<bool> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let rotated = sqlx::query(
                "UPDATE webhook_endpoints SET previous_secret = secret, previous_until_ms = $1, secret = $2, updated_ms = $3
                 WHERE tenant_id = $4 AND name = $5",
            )
            .bind(previous_until_ms)
            .bind(secret)
            .bind(now)
            .bind(tenant_id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
            if rotated.rows_affected() == 0 {
                return Ok(false);
            }
            append_audit(&mut tx, audit, now).await?;
            tx.commit().await?;
            self.config_changed();
            Ok(true)
        })
        .await
    }

    /// Note how an endpoint's deliveries went in one pass: any delivery clears its failing
    /// mark; only failures start it (kept from the first failure on). Answers the time it has been
    /// failing since, if it is.
    pub async fn note_endpoint_health(
        &self,
        tenant_id: &str,
        name: &str,
        delivered: bool,
        now: Moment,
    ) -> StoreResult<Option<Moment>> {
        self.timed(async {
            let row = if delivered {
                sqlx::query(
                    "UPDATE webhook_endpoints SET failing_since_ms = NULL
                     WHERE tenant_id = $1 AND name = $2 AND failing_since_ms IS NOT NULL",
                )
                .bind(tenant_id)
                .bind(name)
                .execute(&self.writer)
                .await?;
                None
            } else {
                sqlx::query(
                    "UPDATE webhook_endpoints SET failing_since_ms = COALESCE(failing_since_ms, $1)
                     WHERE tenant_id = $2 AND name = $3 RETURNING failing_since_ms",
                )
                .bind(now)
                .bind(tenant_id)
                .bind(name)
                .fetch_optional(&self.writer)
                .await?
            };
            Ok(row.map(|r| r.try_get::<Option<Moment>, _>("failing_since_ms")).transpose()?.flatten())
        })
        .await
    }

    /// Disable an endpoint that has failed continuously too long: `enabled: false`, its
    /// subscriptions gone, its undelivered events marked failed, audited. False when it was
    /// already disabled or is gone (so the alarm is raised once).
    pub async fn disable_webhook_endpoint(
        &self,
        tenant_id: &str,
        name: &str,
        audit: &AuditEntry,
        now: Moment,
    ) -> StoreResult<bool> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let Some(mut record) = read_endpoint(&mut *tx, tenant_id, name).await? else { return Ok(false) };
            if !record.config.enabled {
                return Ok(false);
            }
            record.config.enabled = false;
            sqlx::query("UPDATE webhook_endpoints SET config = $1, updated_ms = $2 WHERE tenant_id = $3 AND name = $4")
                .bind(serde_json::to_string(&record.config)?)
                .bind(now)
                .bind(tenant_id)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            super::outbox::write_subscriptions(&mut tx, tenant_id, name, &[]).await?;
            sqlx::query(
                "UPDATE outbox SET failed_ms = $1, last_error = 'endpoint disabled', claimed_by = NULL, claim_until_ms = NULL
                 WHERE tenant_id = $2 AND endpoint = $3 AND failed_ms IS NULL",
            )
            .bind(now)
            .bind(tenant_id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
            append_audit(&mut tx, audit, now).await?;
            tx.commit().await?;
            self.config_changed();
            Ok(true)
        })
        .await
    }

    /// Record delivery attempts (one statement).
    pub async fn record_webhook_deliveries(&self, deliveries: &[DeliveryRecord]) -> StoreResult<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        self.timed(async {
            for chunk in deliveries.chunks(super::handle::ROWS_PER_STATEMENT) {
                let sql = format!(
                    "INSERT INTO webhook_deliveries (tenant_id, endpoint, event_type, webhook_id, status_code, latency_ms, error, created_ms)
                     VALUES {}",
                    super::placeholders::placeholders(chunk.len(), 8)
                );
                let mut query = sqlx::query(&sql);
                for d in chunk {
                    query = query
                        .bind(d.tenant_id.clone())
                        .bind(d.endpoint.clone())
                        .bind(d.event_type.clone())
                        .bind(d.webhook_id.clone())
                        .bind(d.status_code.map(i64::from))
                        .bind(d.latency_ms)
                        .bind(d.error.clone())
                        .bind(d.created_ms);
                }
                query.execute(&self.writer).await?;
            }
            Ok(())
        })
        .await
    }

    /// The newest `limit` delivery attempts of an endpoint, newest first.
    pub async fn list_webhook_deliveries(
        &self,
        tenant_id: &str,
        endpoint: &str,
        limit: i64,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        self.timed(async {
            let rows = sqlx::query(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE tenant_id = $1 AND endpoint = $2
                 ORDER BY id DESC LIMIT $3"
            ))
            .bind(tenant_id)
            .bind(endpoint)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
            rows.iter().map(delivery_from_row).collect()
        })
        .await
    }

    /// One delivery attempt of an endpoint, by its id.
    pub async fn get_webhook_delivery(
        &self,
        tenant_id: &str,
        endpoint: &str,
        id: i64,
    ) -> StoreResult<Option<DeliveryRecord>> {
        self.timed(async {
            let row = sqlx::query(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE tenant_id = $1 AND endpoint = $2 AND id = $3"
            ))
            .bind(tenant_id)
            .bind(endpoint)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
            row.as_ref().map(delivery_from_row).transpose()
        })
        .await
    }
}

const DELIVERY_COLUMNS: &str =
    "id, tenant_id, endpoint, event_type, webhook_id, status_code, latency_ms, error, created_ms";

fn delivery_from_row(r: &sqlx::any::AnyRow) -> StoreResult<DeliveryRecord> {
    Ok(DeliveryRecord {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        endpoint: r.try_get("endpoint")?,
        event_type: r.try_get("event_type")?,
        webhook_id: r.try_get("webhook_id")?,
        status_code: r.try_get::<Option<i64>, _>("status_code")?.and_then(|c| u16::try_from(c).ok()),
        latency_ms: r.try_get("latency_ms")?,
        error: r.try_get("error")?,
        created_ms: r.try_get("created_ms")?,
    })
}
