//! Replicated settings (key → value), such as the log level every replica follows.

use sqlx::Row;

use super::audit::{append_audit, AuditEntry};
use super::error::StoreResult;
use super::handle::Store;
use crate::time::Moment;

impl Store {
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
    pub async fn setting_or_insert(&self, key: &str, value: &str, now: Moment) -> StoreResult<String> {
        self.timed(async {
            sqlx::query(
                "INSERT INTO settings (key, value, updated_ms) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(value)
            .bind(now)
            .execute(&self.writer)
            .await?;
            let row =
                sqlx::query("SELECT value FROM settings WHERE key = $1").bind(key).fetch_one(&self.writer).await?;
            Ok(row.try_get("value")?)
        })
        .await
    }

    pub async fn put_setting(&self, key: &str, value: &str, audit: &AuditEntry, now: Moment) -> StoreResult<()> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            sqlx::query(
                "INSERT INTO settings (key, value, updated_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO UPDATE SET value = $2, updated_ms = $3",
            )
            .bind(key)
            .bind(value)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            append_audit(&mut tx, audit, now).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }
}
