//! `tenants/{tenant}`.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{existing_tenant, Collection};
use crate::domain::names::check_name;
use crate::error::{ApiError, FieldProblem};
use crate::http::envelope;
use crate::http::extractors::{AdminAuth, JsonBody};
use crate::ops::configuration::{self, TenantWrite};
use crate::ops::AppState;
use crate::store::AuditEntry;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantBody {
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Days a finished callback keeps its number and `userData` (issue 27), 1–3,650; absent: until
    /// it is purged.
    #[serde(default)]
    pub retention_days: Option<i64>,
}

fn enabled_by_default() -> bool {
    true
}

/// An origin is `scheme://host[:port]`, exactly as browsers send it.
fn check_origins(origins: &[String]) -> Result<(), ApiError> {
    let problems: Vec<FieldProblem> = origins
        .iter()
        .enumerate()
        .filter(|(_, o)| {
            let parsed = url::Url::parse(o);
            !parsed.is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.origin().ascii_serialization() == **o
            })
        })
        .map(|(i, _)| {
            FieldProblem::new(
                format!("allowedOrigins[{i}]"),
                "must be an origin like https://shop.example (no path or trailing slash)",
            )
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(problems))
    }
}

pub async fn put(
    state: web::Data<AppState>,
    admin: AdminAuth,
    path: web::Path<String>,
    body: JsonBody<TenantBody>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    check_name("tenant", &name)?;
    check_origins(&body.value.allowed_origins)?;
    if body.value.retention_days.is_some_and(|d| !(1..=3650).contains(&d)) {
        return Err(ApiError::field("retentionDays", "must be from 1 to 3650 days"));
    }
    let audit = AuditEntry::new(&admin.actor, "PUT", format!("tenants/{name}"), Some(&body.raw));
    let write = TenantWrite {
        allowed_origins: &body.value.allowed_origins,
        enabled: body.value.enabled,
        retention_days: body.value.retention_days,
    };
    let tenant = configuration::put_tenant(&state, &name, write, &audit).await?;
    Ok(envelope::ok(tenant))
}

pub async fn get(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(envelope::ok(existing_tenant(&state, &path).await?))
}

/// Every tenant, or a tenant-limited operator's own.
pub async fn list(state: web::Data<AppState>, admin: AdminAuth) -> Result<HttpResponse, ApiError> {
    let mut tenants = state.store.list_tenants().await?;
    tenants.retain(|t| admin.sees(&t.name));
    Ok(envelope::ok(Collection::complete(tenants)))
}

pub async fn delete(
    state: web::Data<AppState>,
    admin: AdminAuth,
    path: web::Path<String>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    let tenant = super::existing_tenant(&state, &name).await?;
    let audit = AuditEntry::new(&admin.actor, "DELETE", format!("tenants/{name}"), None::<&Value>);
    let cancelled = configuration::delete_tenant(&state, &tenant, super::cancel_unfinished(&req)?, &audit).await?;
    Ok(envelope::ok(json!({ "name": name, "cancelledCallbacks": cancelled })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_must_be_bare_origins() {
        assert!(check_origins(&["https://shop.example".into(), "http://localhost:8080".into()]).is_ok());
        let e =
            check_origins(&["https://shop.example/".into(), "shop.example".into(), "ftp://x.y".into()]).unwrap_err();
        assert_eq!(e.details.len(), 3);
        assert_eq!(e.details[1].field, "allowedOrigins[1]");
    }
}
