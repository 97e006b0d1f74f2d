//! `tenants/{tenant}/services/{name}`.

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::{existing_tenant, Collection};
use crate::domain::names::check_name;
use crate::domain::service::ServiceConfig;
use crate::error::ApiError;
use crate::http::envelope;
use crate::http::extractors::{AdminAuth, JsonBody};
use crate::ops::{configuration, AppState};
use crate::store::AuditEntry;
use crate::store::ServiceRecord;

fn service_json(record: &ServiceRecord) -> Value {
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
    check_name("service", &name)?;
    let tenant = existing_tenant(&state, &tenant_name).await?;
    let config = ServiceConfig::from_admin_body(&name, body.raw.clone()).map_err(ApiError::validation)?;
    let audit = AuditEntry::new(&admin.actor, "PUT", format!("tenants/{tenant_name}/services/{name}"), Some(&body.raw));
    let stored = configuration::put_service(&state, &tenant, &name, &config, &audit).await?;
    Ok(envelope::ok(service_json(&stored)))
}

pub async fn get(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_name, name) = path.into_inner();
    let tenant = existing_tenant(&state, &tenant_name).await?;
    let record = state.store.get_service(&tenant.id, &name).await?.ok_or_else(|| ApiError::not_found("service"))?;
    Ok(envelope::ok(service_json(&record)))
}

pub async fn list(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = existing_tenant(&state, &path).await?;
    let items: Vec<Value> = state.store.list_services(&tenant.id).await?.iter().map(service_json).collect();
    Ok(envelope::ok(Collection::complete(items)))
}

pub async fn delete(
    state: web::Data<AppState>,
    admin: AdminAuth,
    path: web::Path<(String, String)>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (tenant_name, name) = path.into_inner();
    let tenant = existing_tenant(&state, &tenant_name).await?;
    let audit =
        AuditEntry::new(&admin.actor, "DELETE", format!("tenants/{tenant_name}/services/{name}"), None::<&Value>);
    let cancelled =
        configuration::delete_service(&state, &tenant, &name, super::cancel_unfinished(&req)?, &audit).await?;
    Ok(envelope::ok(json!({ "name": name, "cancelledCallbacks": cancelled })))
}

/// `GET …/services/{name}/availability` (issue 26): the public availability's answer for an
/// operator (same query parameters), so the console offers open slots when rescheduling.
pub async fn availability(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    path: web::Path<(String, String)>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (tenant_name, name) = path.into_inner();
    let tenant = existing_tenant(&state, &tenant_name).await?;
    Ok(envelope::ok(crate::http::availability::open_slots(&state, &tenant, &name, req.query_string()).await?))
}

/// Longest range `slots` answers.
const SLOTS_MAX_DAYS: i64 = 31;

/// `GET …/services/{name}/slots?from=&to=` (issue 26): every bookable slot in `[from, to)`
/// (default: the next 7 days) with its places and how many are taken, full ones included.
pub async fn slots(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    path: web::Path<(String, String)>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (tenant_name, name) = path.into_inner();
    let tenant = existing_tenant(&state, &tenant_name).await?;
    let now = crate::time::now();
    let (mut from, mut to) = (now, now + crate::time::DAY * 7);
    let mut problems = Vec::new();
    for (k, v) in form_urlencoded::parse(req.query_string().as_bytes()) {
        let target = match k.as_ref() {
            "from" => &mut from,
            "to" => &mut to,
            _ => continue,
        };
        match crate::time::parse_instant(&k, &v) {
            Ok(ms) => *target = ms,
            Err(p) => problems.push(crate::error::FieldProblem::new(k.to_string(), p)),
        }
    }
    if problems.is_empty() && to <= from {
        problems.push(crate::error::FieldProblem::new("to", "must be after from"));
    }
    if problems.is_empty() && to - from > crate::time::DAY * SLOTS_MAX_DAYS {
        problems
            .push(crate::error::FieldProblem::new("to", format!("the range may span at most {SLOTS_MAX_DAYS} days")));
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let service = crate::ops::service_context::load(&state.store, &state.services, &tenant, &name).await?;
    let slots = crate::ops::availability::slot_use(&state, &tenant, &service, from, to, now).await?;
    let items: Vec<Value> = slots
        .into_iter()
        .map(|s| {
            json!({ "utcTime": crate::time::format_utc(s.offered), "bucketStart": crate::time::format_utc(s.bucket.0),
                "bucketEnd": crate::time::format_utc(s.bucket.1), "total": s.total, "reserved": s.reserved,
                "free": s.total.saturating_sub(s.reserved) })
        })
        .collect();
    Ok(envelope::ok(json!({
        "name": name, "timezone": service.tz.iana_name().unwrap_or("UTC"), "slotMinutes": service.rules().config.slot_minutes, "slots": items,
    })))
}
