//! `tenants/{tenant}/webhooks/{name}` (issue 24): endpoints for hand-offs and lifecycle events.
//! The secret is answered once, by the `PUT` that creates the endpoint and by `rotate-secret`;
//! `GET` never returns it.

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::{existing_tenant, Collection};
use crate::domain::names::check_name;
use crate::error::ApiError;
use crate::http::envelope;
use crate::http::extractors::{AdminAuth, JsonBody};
use crate::ops::{webhooks, AppState};
use crate::store::AuditEntry;

/// How many recent deliveries `GET …/deliveries` answers.
const RECENT_DELIVERIES: i64 = 100;

pub async fn put(
    state: web::Data<AppState>,
    admin: AdminAuth,
    path: web::Path<(String, String)>,
    body: JsonBody<Value>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_name, name) = path.into_inner();
    check_name("webhook", &name)?;
    let tenant = existing_tenant(&state, &tenant_name).await?;
    Ok(envelope::ok(webhooks::put_endpoint(&state, &tenant, &name, &body.raw, &admin.actor).await?))
}

pub async fn get(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_name, name) = path.into_inner();
    let tenant = existing_tenant(&state, &tenant_name).await?;
    let record = state
        .store
        .get_webhook_endpoint(&tenant.id, &name)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook endpoint"))?;
    Ok(envelope::ok(webhooks::endpoint_view(&record)))
}

pub async fn list(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = existing_tenant(&state, &path).await?;
    let items: Vec<Value> =
        state.store.list_webhook_endpoints(&tenant.id).await?.iter().map(webhooks::endpoint_view).collect();
    Ok(envelope::ok(Collection::complete(items)))
}

pub async fn delete(
    state: web::Data<AppState>,
    admin: AdminAuth,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_name, name) = path.into_inner();
    let tenant = existing_tenant(&state, &tenant_name).await?;
    let audit = AuditEntry::new(&admin.actor, "DELETE", format!("tenants/{tenant_name}/webhooks/{name}"), None);
    crate::ops::configuration::delete_webhook_endpoint(&state, &tenant, &name, &audit).await?;
    Ok(envelope::ok(json!({ "name": name })))
}

pub async fn rotate_secret(
    state: web::Data<AppState>,
    admin: AdminAuth,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_name, name) = path.into_inner();
    let tenant = existing_tenant(&state, &tenant_name).await?;
    Ok(envelope::ok(webhooks::rotate_secret(&state, &tenant, &name, &admin.actor).await?))
}

pub async fn deliveries(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_name, name) = path.into_inner();
    let tenant = existing_tenant(&state, &tenant_name).await?;
    let items: Vec<Value> = state
        .store
        .list_webhook_deliveries(&tenant.id, &name, RECENT_DELIVERIES)
        .await?
        .iter()
        .map(webhooks::delivery_view)
        .collect();
    Ok(envelope::ok(Collection::complete(items)))
}

pub async fn redeliver(
    state: web::Data<AppState>,
    admin: AdminAuth,
    path: web::Path<(String, String, i64)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_name, name, delivery) = path.into_inner();
    let tenant = existing_tenant(&state, &tenant_name).await?;
    Ok(envelope::ok(webhooks::redeliver(&state, &tenant, &name, delivery, &admin.actor).await?))
}
