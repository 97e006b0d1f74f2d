//! `tenants/{tenant}/api-keys`: the plaintext (`rbk_…`, signed: `domain::api_key`) is returned
//! once, at creation; only its SHA-256 and a short prefix (to tell keys apart) are stored.

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::{existing_tenant, Collection};
use crate::domain::key_scope::KeyScope;
use crate::error::{ApiError, Reason};
use crate::http::envelope;
use crate::http::extractors::AdminAuth;
use crate::ops::{keys, AppState};
use crate::store::AuditEntry;
use crate::time::format_utc;

/// `POST …/api-keys`, with an optional body `{ "scope": "full" | "widget" }` (default `full`; an
/// empty body is the default too, as before scopes existed).
pub async fn create(
    state: web::Data<AppState>,
    admin: AdminAuth,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let tenant = existing_tenant(&state, &path).await?;
    let scope = requested_scope(&body)?;
    Ok(envelope::ok(
        keys::issue_key(&state.store, state.keys.signer(), &tenant.id, &tenant.name, scope, &admin.actor).await?,
    ))
}

fn requested_scope(body: &[u8]) -> Result<KeyScope, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(KeyScope::Full);
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(Reason::MalformedJson, format!("the body is not valid JSON: {e}")))?;
    let Value::Object(fields) = value else { return Err(ApiError::field("body", "must be a JSON object")) };
    if let Some(unknown) = fields.keys().find(|k| *k != "scope") {
        return Err(ApiError::field(unknown, "is not a field of an API key"));
    }
    match fields.get("scope") {
        None | Some(Value::Null) => Ok(KeyScope::Full),
        Some(Value::String(s)) => s.parse().map_err(|p: String| ApiError::field("scope", p)),
        Some(_) => Err(ApiError::field("scope", "must be \"full\", \"widget\" or \"platform\"")),
    }
}

pub async fn list(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = existing_tenant(&state, &path).await?;
    let items: Vec<Value> = state
        .store
        .list_api_keys(&tenant.id)
        .await?
        .into_iter()
        .map(|k| {
            json!({ "id": k.id, "prefix": k.prefix, "createdTime": format_utc(k.created_ms),
                    "lastUsedTime": k.last_used_ms.map(format_utc) })
        })
        .collect();
    Ok(envelope::ok(Collection::complete(items)))
}

pub async fn delete(
    state: web::Data<AppState>,
    admin: AdminAuth,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_name, key_id) = path.into_inner();
    let tenant = existing_tenant(&state, &tenant_name).await?;
    let audit =
        AuditEntry::new(&admin.actor, "DELETE", format!("tenants/{tenant_name}/api-keys/{key_id}"), None::<&Value>);
    crate::ops::configuration::revoke_key(&state, &tenant, &key_id, &audit).await?;
    Ok(envelope::ok(json!({ "id": key_id })))
}
