//! The outcome report's roll-up (issue 27; migration 0016): per tenant, service and hour, counts
//! by metric and label, as inserted rows — the booking writer's statement adds its batch, a
//! trigger on `callback_history` what callbacks do next, in the transaction of each change;
//! refusals, never stored, are added here (`add_refusals`) — folded into one row a cell by the
//! recovery pass (`compact_outcomes`).

use sqlx::Row;

use super::error::StoreResult;
use super::handle::Store;
use crate::time::Moment;

/// One roll-up cell: (hour start, metric, label, count).
pub type OutcomeRow = (Moment, String, String, i64);

/// Refusals to add: (tenant id, service, hour start, reason, count).
pub type RefusalCount = (String, String, Moment, String, i64);

impl Store {
    pub async fn add_refusals(&self, counts: &[RefusalCount]) -> StoreResult<()> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            for (tenant_id, service, hour_ms, reason, n) in counts {
                sqlx::query(
                    "INSERT INTO outcome_rollup (tenant_id, service_name, hour_ms, metric, label, n)
                     VALUES ($1, $2, $3, 'refused', $4, $5)",
                )
                .bind(tenant_id.clone())
                .bind(service.clone())
                .bind(*hour_ms)
                .bind(reason.clone())
                .bind(*n)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// The roll-up of `[from, to)` hours of one service (or every service), summed per hour.
    pub async fn list_outcome_rows(
        &self,
        tenant_id: &str,
        service: Option<&str>,
        from_ms: Moment,
        to_ms: Moment,
    ) -> StoreResult<Vec<OutcomeRow>> {
        self.timed(async {
            let rows = sqlx::query(
                "SELECT hour_ms, metric, label, CAST(SUM(n) AS BIGINT) AS n FROM outcome_rollup
                 WHERE tenant_id = $1 AND ($2 = '' OR service_name = $2) AND hour_ms >= $3 AND hour_ms < $4
                 GROUP BY hour_ms, metric, label",
                // (SUM is NUMERIC on PostgreSQL: cast back to BIGINT.)
            )
            .bind(tenant_id)
            .bind(service.unwrap_or_default())
            .bind(from_ms)
            .bind(to_ms)
            .fetch_all(&self.reader)
            .await?;
            rows.iter()
                .map(|r| Ok((r.try_get("hour_ms")?, r.try_get("metric")?, r.try_get("label")?, r.try_get("n")?)))
                .collect()
        })
        .await
    }

    /// Fold the roll-up's rows of hours from `since_ms` on into one per cell (tenant, service,
    /// hour, metric, label). Writers only insert, so no change waits on a counter row; this keeps a
    /// report reading about one row per cell. The rows folded are exactly those this delete took
    /// (a row inserted meanwhile by another transaction is left for the next pass), so no count is
    /// lost or doubled, whichever replica folds.
    pub async fn compact_outcomes(&self, since_ms: Moment) -> StoreResult<u64> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            let rows = sqlx::query(
                "DELETE FROM outcome_rollup WHERE hour_ms >= $1
                 RETURNING tenant_id, service_name, hour_ms, metric, label, n",
            )
            .bind(since_ms)
            .fetch_all(&mut *tx)
            .await?;
            let mut cells: std::collections::BTreeMap<(String, String, i64, String, String), i64> = Default::default();
            for r in &rows {
                let key = (r.try_get("tenant_id")?, r.try_get("service_name")?, r.try_get("hour_ms")?, r.try_get("metric")?, r.try_get("label")?);
                *cells.entry(key).or_default() += r.try_get::<i64, _>("n")?;
            }
            for ((tenant_id, service, hour_ms, metric, label), n) in &cells {
                sqlx::query(
                    "INSERT INTO outcome_rollup (tenant_id, service_name, hour_ms, metric, label, n) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(tenant_id.clone())
                .bind(service.clone())
                .bind(*hour_ms)
                .bind(metric.clone())
                .bind(label.clone())
                .bind(*n)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok((rows.len() - cells.len()) as u64)
        })
        .await
    }

    /// Drop roll-up hours before `before_ms` (`reports.retention_days`).
    pub async fn purge_outcomes(&self, before_ms: Moment) -> StoreResult<u64> {
        self.timed(async {
            let done = sqlx::query("DELETE FROM outcome_rollup WHERE hour_ms < $1")
                .bind(before_ms)
                .execute(&self.writer)
                .await?;
            Ok(done.rows_affected())
        })
        .await
    }
}
