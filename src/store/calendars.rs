//! Office-hours calendars, stored as their admin JSON.

use sqlx::Row;

use super::audit::AuditEntry;
use super::error::StoreResult;
use super::handle::Store;
use crate::domain::calendar::CalendarBody;
use crate::time::Moment;

impl Store {
    pub async fn put_calendar(
        &self,
        tenant_id: &str,
        name: &str,
        body: &CalendarBody,
        audit: &AuditEntry,
        now: Moment,
    ) -> StoreResult<()> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            sqlx::query(
                "INSERT INTO calendars (tenant_id, name, body, updated_ms) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant_id, name) DO UPDATE SET body = $3, updated_ms = $4",
            )
            .bind(tenant_id)
            .bind(name)
            .bind(serde_json::to_string(body)?)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            super::audit::append_audit(&mut tx, audit, now).await?;
            tx.commit().await?;
            self.config_changed();
            Ok(())
        })
        .await
    }

    pub async fn get_calendar(&self, tenant_id: &str, name: &str) -> StoreResult<Option<CalendarBody>> {
        self.timed(async {
            let row = sqlx::query("SELECT body FROM calendars WHERE tenant_id = $1 AND name = $2")
                .bind(tenant_id)
                .bind(name)
                .fetch_optional(&self.reader)
                .await?;
            match row {
                Some(r) => Ok(Some(serde_json::from_str(&r.try_get::<String, _>("body")?)?)),
                None => Ok(None),
            }
        })
        .await
    }

    pub async fn list_calendars(&self, tenant_id: &str) -> StoreResult<Vec<(String, CalendarBody)>> {
        self.timed(async {
            let rows = sqlx::query("SELECT name, body FROM calendars WHERE tenant_id = $1 ORDER BY name")
                .bind(tenant_id)
                .fetch_all(&self.reader)
                .await?;
            rows.iter()
                .map(|r| Ok((r.try_get("name")?, serde_json::from_str(&r.try_get::<String, _>("body")?)?)))
                .collect()
        })
        .await
    }

    pub async fn delete_calendar(
        &self,
        tenant_id: &str,
        name: &str,
        audit: &AuditEntry,
        now: Moment,
    ) -> StoreResult<bool> {
        self.audited_delete(
            &[("DELETE FROM calendars WHERE tenant_id = $1 AND name = $2", &[tenant_id, name])],
            audit,
            now,
        )
        .await
    }
}
