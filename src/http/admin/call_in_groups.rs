//! `tenants/{tenant}/call-in-groups/{name}`: click-to-call-in number pools.
//!
//! Replacing or deleting a group while requests are pending: those requests stay as they are and
//! stay matchable until they are matched, cancelled or expire (at most `expirySeconds`). A caller
//! who was handed a number and code may already be dialling; cutting the request off would strand
//! them. A removed number is no longer handed out by this group at once; should it join another
//! group meanwhile, the pending-slot unique index and the free-number checks keep it from being
//! handed out twice until the old request ends. Settings (`expirySeconds`, codes,
//! `requireCallerMatch`) apply to requests created after the write; each request keeps the
//! caller-match rule it was created under.

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::{existing_tenant, Collection};
use crate::domain::call_in::CallInGroupConfig;
use crate::domain::names::check_name;
use crate::error::ApiError;
use crate::http::envelope;
use crate::http::extractors::{AdminAuth, JsonBody};
use crate::ops::{configuration, AppState};
use crate::store::AuditEntry;
use crate::store::CallInGroupRecord;

fn group_json(record: &CallInGroupRecord) -> Value {
    let mut body = serde_json::to_value(&record.config).unwrap_or_else(|_| json!({}));
    body["name"] = Value::from(record.name.clone());
    body
}

pub async fn put(
    state: web::Data<AppState>,
    admin: AdminAuth,
    path: web::Path<(String, String)>,
    body: JsonBody<Value>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_name, name) = path.into_inner();
    check_name("group", &name)?;
    let tenant = existing_tenant(&state, &tenant_name).await?;
    let config = CallInGroupConfig::from_admin_body(body.raw.clone()).map_err(ApiError::validation)?;
    let resource = format!("tenants/{tenant_name}/call-in-groups/{name}");
    let audit = AuditEntry::new(&admin.actor, "PUT", resource, Some(&body.raw));
    configuration::put_call_in_group(&state, &tenant, &name, &config, &audit).await?;
    Ok(envelope::ok(group_json(&CallInGroupRecord { name, config })))
}

pub async fn get(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_name, name) = path.into_inner();
    let tenant = existing_tenant(&state, &tenant_name).await?;
    let record =
        state.store.get_callin_group(&tenant.id, &name).await?.ok_or_else(|| ApiError::not_found("call-in group"))?;
    Ok(envelope::ok(group_json(&record)))
}

pub async fn list(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = existing_tenant(&state, &path).await?;
    let items: Vec<Value> = state.store.list_callin_groups(&tenant.id).await?.iter().map(group_json).collect();
    Ok(envelope::ok(Collection::complete(items)))
}

pub async fn delete(
    state: web::Data<AppState>,
    admin: AdminAuth,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_name, name) = path.into_inner();
    let tenant = existing_tenant(&state, &tenant_name).await?;
    let resource = format!("tenants/{tenant_name}/call-in-groups/{name}");
    let audit = AuditEntry::new(&admin.actor, "DELETE", resource, None::<&Value>);
    configuration::delete_call_in_group(&state, &tenant, &name, &audit).await?;
    Ok(envelope::ok(json!({ "name": name })))
}
