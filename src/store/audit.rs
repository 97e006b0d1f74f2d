//! The audit log: who wrote what, appended in the same transaction as the write it describes.

use serde::Serialize;
use sqlx::{Any, Row, Transaction};

use super::error::StoreResult;
use super::handle::Store;
use crate::time::Moment;

/// Who wrote what, appended in the same transaction as the write it describes.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub body: Option<String>,
}

impl AuditEntry {
    /// `actor` did `action` (an HTTP method) on `resource`, with `body` if it had one.
    pub fn new(actor: &str, action: &str, resource: String, body: Option<&serde_json::Value>) -> AuditEntry {
        AuditEntry {
            actor: actor.to_string(),
            action: action.to_string(),
            resource,
            body: body.map(serde_json::Value::to_string),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub id: i64,
    pub time_ms: Moment,
    pub actor: String,
    /// The tenant the write concerns, if any.
    pub tenant: Option<String>,
    pub action: String,
    pub resource: String,
    pub body: Option<serde_json::Value>,
}

pub(super) async fn append_audit(tx: &mut Transaction<'_, Any>, entry: &AuditEntry, now: Moment) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (time_ms, actor, action, resource, body, tenant) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(now)
    .bind(&entry.actor)
    .bind(&entry.action)
    .bind(&entry.resource)
    .bind(entry.body.clone())
    .bind(tenant_of(&entry.resource).map(str::to_string))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The tenant a resource path (`tenants/acme/services/sales`) belongs to.
fn tenant_of(resource: &str) -> Option<&str> {
    resource.strip_prefix("tenants/").and_then(|rest| rest.split('/').next()).filter(|t| !t.is_empty())
}

/// An audited body as it was stored: JSON, or — for a row that does not parse (written by hand)
/// — the raw text, logged rather than dropped.
fn stored_body(raw: &str) -> serde_json::Value {
    serde_json::from_str(raw).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "an audit entry's body is not JSON; shown as text");
        serde_json::Value::String(raw.to_string())
    })
}

impl Store {
    /// Newest first; `before` is the id of the last entry of the previous page; `tenants`, when
    /// given, keeps the entries of those tenants only.
    pub async fn list_audit(
        &self,
        before: Option<i64>,
        limit: i64,
        tenants: Option<&[String]>,
    ) -> StoreResult<Vec<AuditRecord>> {
        self.timed(async {
            let only = match tenants {
                None => String::new(),
                Some([]) => " AND 1 = 0".to_string(),
                // `($3, $4, …)`: after `before` and the limit.
                Some(ts) => format!(" AND tenant IN {}", super::placeholders::numbered(&mut 3, 1, ts.len())),
            };
            let sql = format!(
                "SELECT id, time_ms, actor, action, resource, body, tenant FROM audit_log
                 WHERE id < $1{only} ORDER BY id DESC LIMIT $2"
            );
            let mut query = sqlx::query(&sql).bind(before.unwrap_or(i64::MAX)).bind(limit);
            for tenant in tenants.unwrap_or_default() {
                query = query.bind(tenant.clone());
            }
            let rows = query.fetch_all(&self.reader).await?;
            rows.iter()
                .map(|r| {
                    let body: Option<String> = r.try_get("body")?;
                    Ok(AuditRecord {
                        id: r.try_get("id")?,
                        time_ms: r.try_get("time_ms")?,
                        actor: r.try_get("actor")?,
                        tenant: r.try_get("tenant")?,
                        action: r.try_get("action")?,
                        resource: r.try_get("resource")?,
                        body: body.map(|b| stored_body(&b)),
                    })
                })
                .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_entry_belongs_to_the_tenant_its_resource_names() {
        assert_eq!(super::tenant_of("tenants/acme/services/sales"), Some("acme"));
        assert_eq!(super::tenant_of("tenants/acme"), Some("acme"));
        assert_eq!(super::tenant_of("log-level"), None);
        assert_eq!(super::tenant_of("operators/ana"), None);
    }
}
