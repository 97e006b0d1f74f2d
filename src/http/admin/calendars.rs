//! `tenants/{tenant}/calendars/{name}`: office hours.

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::{existing_tenant, Collection};
use crate::domain::calendar::{Calendar, CalendarBody};
use crate::domain::names::check_name;
use crate::error::ApiError;
use crate::http::envelope;
use crate::http::extractors::{AdminAuth, JsonBody};
use crate::ops::{configuration, AppState};
use crate::store::AuditEntry;

fn calendar_json(name: &str, body: &CalendarBody) -> Value {
    let mut v = serde_json::to_value(body).unwrap_or_else(|_| json!({}));
    v["name"] = Value::from(name);
    v
}

pub async fn put(
    state: web::Data<AppState>,
    admin: AdminAuth,
    path: web::Path<(String, String)>,
    body: JsonBody<CalendarBody>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_name, name) = path.into_inner();
    check_name("calendar", &name)?;
    let tenant = existing_tenant(&state, &tenant_name).await?;
    Calendar::parse(&body.value).map_err(ApiError::validation)?;
    let audit =
        AuditEntry::new(&admin.actor, "PUT", format!("tenants/{tenant_name}/calendars/{name}"), Some(&body.raw));
    configuration::put_calendar(&state, &tenant, &name, &body.value, &audit).await?;
    Ok(envelope::ok(calendar_json(&name, &body.value)))
}

pub async fn get(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_name, name) = path.into_inner();
    let tenant = existing_tenant(&state, &tenant_name).await?;
    let body = state.store.get_calendar(&tenant.id, &name).await?.ok_or_else(|| ApiError::not_found("calendar"))?;
    Ok(envelope::ok(calendar_json(&name, &body)))
}

pub async fn list(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = existing_tenant(&state, &path).await?;
    let items = state.store.list_calendars(&tenant.id).await?.iter().map(|(n, b)| calendar_json(n, b)).collect();
    Ok(envelope::ok(Collection::complete(items)))
}

/// A calendar that a service uses cannot be deleted (the service would silently become always open).
pub async fn delete(
    state: web::Data<AppState>,
    admin: AdminAuth,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_name, name) = path.into_inner();
    let tenant = existing_tenant(&state, &tenant_name).await?;
    let audit = AuditEntry::new(&admin.actor, "DELETE", format!("tenants/{tenant_name}/calendars/{name}"), None);
    configuration::delete_calendar(&state, &tenant, &name, &audit).await?;
    Ok(envelope::ok(json!({ "name": name })))
}
