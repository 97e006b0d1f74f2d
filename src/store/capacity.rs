//! Capacity buckets: reserved counts, reserved and released inside booking transactions.

use std::collections::HashMap;

use sqlx::{Any, Row, Transaction};

use super::error::StoreResult;
use super::handle::Store;
use crate::time::Moment;

/// Take one place in a bucket if it has room; false when full. Atomic on both backends: the
/// conditional increment re-checks `reserved < capacity` on the locked row (Postgres) or under
/// the single writer (SQLite).
pub(super) async fn reserve(
    tx: &mut Transaction<'_, Any>,
    tenant_id: &str,
    service: &str,
    bucket_ms: Moment,
    capacity: u32,
) -> StoreResult<bool> {
    sqlx::query(
        "INSERT INTO capacity_buckets (tenant_id, service_name, bucket_ms, reserved) VALUES ($1, $2, $3, 0)
         ON CONFLICT (tenant_id, service_name, bucket_ms) DO NOTHING",
    )
    .bind(tenant_id)
    .bind(service)
    .bind(bucket_ms)
    .execute(&mut **tx)
    .await?;
    let taken = sqlx::query(
        "UPDATE capacity_buckets SET reserved = reserved + 1
         WHERE tenant_id = $1 AND service_name = $2 AND bucket_ms = $3 AND reserved < $4",
    )
    .bind(tenant_id)
    .bind(service)
    .bind(bucket_ms)
    .bind(i64::from(capacity))
    .execute(&mut **tx)
    .await?;
    Ok(taken.rows_affected() == 1)
}

pub(super) async fn release(
    tx: &mut Transaction<'_, Any>,
    tenant_id: &str,
    service: &str,
    bucket_ms: Moment,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE capacity_buckets SET reserved = reserved - 1
         WHERE tenant_id = $1 AND service_name = $2 AND bucket_ms = $3 AND reserved > 0",
    )
    .bind(tenant_id)
    .bind(service)
    .bind(bucket_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Reserved counts of a service's buckets starting in `[from, to)`.
    pub async fn reserved_counts(
        &self,
        tenant_id: &str,
        service: &str,
        from: Moment,
        to: Moment,
    ) -> StoreResult<HashMap<Moment, u32>> {
        self.timed(async {
            let rows = sqlx::query(
                "SELECT bucket_ms, reserved FROM capacity_buckets
                 WHERE tenant_id = $1 AND service_name = $2 AND bucket_ms >= $3 AND bucket_ms < $4 AND reserved > 0",
            )
            .bind(tenant_id)
            .bind(service)
            .bind(from)
            .bind(to)
            .fetch_all(&self.reader)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok((
                        r.try_get::<Moment, _>("bucket_ms")?,
                        u32::try_from(r.try_get::<i64, _>("reserved")?).unwrap_or(u32::MAX),
                    ))
                })
                .collect()
        })
        .await
    }
}
