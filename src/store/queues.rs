//! Queue statistics, positions and wait times (domain.md § Queue position and EWT).

use sqlx::Row;

use super::error::StoreResult;
use super::handle::Store;
use crate::time::Moment;

#[derive(Debug, Clone, PartialEq)]
pub struct QueueStats {
    pub ewt: Option<i64>,
    pub agents_logged_in: Option<i64>,
    pub calls_waiting: Option<i64>,
    pub updated_ms: Moment,
}

impl Store {
    pub async fn put_queue_stats(&self, tenant_id: &str, virtual_queue: &str, stats: &QueueStats) -> StoreResult<()> {
        self.timed(async {
            sqlx::query(
                "INSERT INTO queue_stats (tenant_id, virtual_queue, ewt, agents_logged_in, calls_waiting, updated_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (tenant_id, virtual_queue) DO UPDATE SET ewt = $3, agents_logged_in = $4, calls_waiting = $5, updated_ms = $6",
            )
            .bind(tenant_id)
            .bind(virtual_queue)
            .bind(stats.ewt)
            .bind(stats.agents_logged_in)
            .bind(stats.calls_waiting)
            .bind(stats.updated_ms)
            .execute(&self.writer)
            .await?;
            Ok(())
        })
        .await
    }

    pub async fn queue_stats(&self, tenant_id: &str, virtual_queue: &str) -> StoreResult<Option<QueueStats>> {
        self.timed(async {
            let row = sqlx::query(
                "SELECT ewt, agents_logged_in, calls_waiting, updated_ms FROM queue_stats WHERE tenant_id = $1 AND virtual_queue = $2",
            )
            .bind(tenant_id)
            .bind(virtual_queue)
            .fetch_optional(&self.reader)
            .await?;
            row.map(|r| {
                Ok(QueueStats {
                    ewt: r.try_get("ewt")?,
                    agents_logged_in: r.try_get("agents_logged_in")?,
                    calls_waiting: r.try_get("calls_waiting")?,
                    updated_ms: r.try_get("updated_ms")?,
                })
            })
            .transpose()
        })
        .await
    }

    /// Services feeding a virtual queue (the virtual-queue proxy record).
    pub async fn services_of_queue(&self, tenant_id: &str, virtual_queue: &str) -> StoreResult<Vec<String>> {
        self.timed(async {
            let rows = sqlx::query(
                "SELECT service_name FROM vq_proxy WHERE tenant_id = $1 AND virtual_queue = $2 ORDER BY service_name",
            )
            .bind(tenant_id)
            .bind(virtual_queue)
            .fetch_all(&self.reader)
            .await?;
            rows.iter().map(|r| Ok(r.try_get("service_name")?)).collect()
        })
        .await
    }

    /// mode1: the mean hand-off → `PROCESSING` time (ms) of the queue's last 50 callbacks that
    /// reached `PROCESSING` since `since`.
    pub async fn recent_wait_ms(
        &self,
        tenant_id: &str,
        services: &[String],
        since: Moment,
    ) -> StoreResult<Option<i64>> {
        if services.is_empty() {
            return Ok(None);
        }
        self.timed(async {
            let marks: Vec<String> = (0..services.len()).map(|i| format!("${}", i + 3)).collect();
            let sql = format!(
                "SELECT processing_ms - queued_ms AS waited FROM callbacks
                 WHERE tenant_id = $1 AND processing_ms >= $2 AND queued_ms IS NOT NULL AND service_name IN ({})
                 ORDER BY processing_ms DESC LIMIT 50",
                marks.join(", ")
            );
            let mut query = sqlx::query(&sql).bind(tenant_id).bind(since);
            for s in services {
                query = query.bind(s.clone());
            }
            let rows = query.fetch_all(&self.reader).await?;
            let waits: Vec<i64> = rows.iter().map(|r| r.try_get::<i64, _>("waited")).collect::<Result<_, _>>()?;
            Ok((!waits.is_empty()).then(|| waits.iter().sum::<i64>() / waits.len() as i64))
        })
        .await
    }

    /// Rank among the service's `QUEUED` callbacks by (priority desc, queued time asc), from 1.
    pub async fn queue_rank(
        &self,
        tenant_id: &str,
        service: &str,
        priority: i64,
        queued_ms: Moment,
        id: &str,
    ) -> StoreResult<i64> {
        self.timed(async {
            let row = sqlx::query(
                "SELECT COUNT(*) AS n FROM callbacks WHERE tenant_id = $1 AND service_name = $2 AND state = 'QUEUED'
                   AND (priority > $3 OR (priority = $3 AND (queued_ms < $4 OR (queued_ms = $4 AND id < $5))))",
            )
            .bind(tenant_id)
            .bind(service)
            .bind(priority)
            .bind(queued_ms)
            .bind(id)
            .fetch_one(&self.reader)
            .await?;
            Ok(row.try_get::<i64, _>("n")? + 1)
        })
        .await
    }

    /// Every service of every tenant: (tenant id, tenant name, service name, configuration).
    pub async fn all_services(
        &self,
    ) -> StoreResult<Vec<(String, String, String, crate::domain::service::ServiceConfig)>> {
        self.timed(async {
            let rows = sqlx::query(
                "SELECT t.id AS tenant_id, t.name AS tenant_name, s.name, s.config FROM services s JOIN tenants t ON t.id = s.tenant_id",
            )
            .fetch_all(&self.reader)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok((
                        r.try_get("tenant_id")?,
                        r.try_get("tenant_name")?,
                        r.try_get("name")?,
                        serde_json::from_str(&r.try_get::<String, _>("config")?)?,
                    ))
                })
                .collect()
        })
        .await
    }

    pub async fn tenant_name(&self, tenant_id: &str) -> StoreResult<Option<String>> {
        self.timed(async {
            let row = sqlx::query("SELECT name FROM tenants WHERE id = $1")
                .bind(tenant_id)
                .fetch_optional(&self.reader)
                .await?;
            Ok(row.map(|r| r.try_get("name")).transpose()?)
        })
        .await
    }
}
