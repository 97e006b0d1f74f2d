//! `tenants/{tenant}/api-keys`: the plaintext is returned once, at creation; only its SHA-256
//! and a short prefix (to tell keys apart) are stored.

use actix_web::{web, HttpResponse};
use base64::Engine;
use rand::RngCore;
use serde::Serialize;
use serde_json::{json, Value};

use super::{audit_entry, existing_tenant, Collection};
use crate::coord::key_cache::hash_key;
use crate::domain::time::{format_utc, now_ms};
use crate::error::ApiError;
use crate::http::envelope;
use crate::http::extractors::AdminAuth;
use crate::ops::AppState;
use crate::store::Store;

const PREFIX_LEN: usize = 10;

#[derive(Serialize)]
pub struct NewKey {
    pub id: String,
    pub key: String,
    pub prefix: String,
}

/// Make a key for a tenant and store its hash. Shared by the admin API and `serve --demo`.
pub async fn issue_key(store: &Store, tenant_id: &str, tenant_name: &str, actor: &str) -> Result<NewKey, ApiError> {
    let mut secret = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let key = format!("rb_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret));
    let prefix: String = key.chars().take(PREFIX_LEN).collect();
    let id = uuid::Uuid::now_v7().to_string();
    let audit = audit_entry(actor, "POST", format!("tenants/{tenant_name}/api-keys/{id}"), None::<&Value>);
    store.create_api_key(tenant_id, &id, &prefix, &hash_key(&key), &audit, now_ms()).await?;
    Ok(NewKey { id, key, prefix })
}

pub async fn create(
    state: web::Data<AppState>,
    admin: AdminAuth,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = existing_tenant(&state, &path).await?;
    Ok(envelope::ok(issue_key(&state.store, &tenant.id, &tenant.name, &admin.actor).await?))
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
    let audit = audit_entry(&admin.actor, "DELETE", format!("tenants/{tenant_name}/api-keys/{key_id}"), None::<&Value>);
    if !state.store.delete_api_key(&tenant.id, &key_id, &audit, now_ms()).await? {
        return Err(ApiError::not_found("API key"));
    }
    // Revoked at once here; other replicas within the key cache TTL.
    state.keys.invalidate_all();
    Ok(envelope::ok(json!({ "id": key_id })))
}
