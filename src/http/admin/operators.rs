//! `operators` (issue 26, admin only): list, add (the token is in the answer, once), revoke.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::Collection;
use crate::error::ApiError;
use crate::http::envelope;
use crate::http::extractors::{AdminAuth, JsonBody};
use crate::ops::{operators, AppState};
use crate::time::format_utc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOperator {
    name: String,
    role: String,
    /// The tenants it may see; absent or null: all.
    #[serde(default)]
    tenants: Option<Vec<String>>,
}

pub async fn list(state: web::Data<AppState>, _admin: AdminAuth) -> Result<HttpResponse, ApiError> {
    let items = operators::list(&state.store)
        .await?
        .into_iter()
        .map(|r| {
            json!({ "name": r.operator.name, "role": r.operator.role.as_str(), "tenants": r.operator.tenants,
                    "created": format_utc(r.created_ms) })
        })
        .collect();
    Ok(envelope::ok(Collection::complete(items)))
}

pub async fn create(
    state: web::Data<AppState>,
    admin: AdminAuth,
    body: JsonBody<NewOperator>,
) -> Result<HttpResponse, ApiError> {
    let NewOperator { name, role, tenants } = body.value;
    let token = operators::add(&state.store, &name, &role, tenants.clone(), &admin.actor).await?;
    Ok(envelope::ok(json!({ "name": name, "role": role, "tenants": tenants, "token": token })))
}

pub async fn delete(
    state: web::Data<AppState>,
    admin: AdminAuth,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    operators::revoke(&state.store, &name, &admin.actor).await?;
    Ok(envelope::ok(json!({ "name": name })))
}

/// `GET /admin/v1/me` (issue 26): who the token belongs to, what its role may do and which tenants
/// it sees, so the console shows only the controls the caller may use (the server checks anyway).
pub async fn me(admin: AdminAuth) -> Result<HttpResponse, ApiError> {
    use crate::domain::operator::Need;
    let o = &admin.operator;
    let may = |need| o.role.may(need);
    Ok(envelope::ok(json!({ "name": o.name, "role": o.role.as_str(), "tenants": o.tenants,
        "may": { "operate": may(Need::Operate), "develop": may(Need::Develop), "admin": may(Need::Admin) } })))
}
