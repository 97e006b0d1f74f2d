//! API keys: issued with a random secret shown once; only its SHA-256 (and a short prefix, to
//! tell keys apart) is stored.

use base64::Engine;
use rand::RngCore;
use serde::Serialize;

use crate::coord::key_cache::hash_key;
use crate::domain::key_scope::KeyScope;
use crate::error::ApiError;
use crate::store::{AuditEntry, NewApiKey, Store};
use crate::time::now_ms;

const PREFIX_LEN: usize = 10;

#[derive(Serialize)]
pub struct NewKey {
    pub id: String,
    pub key: String,
    pub prefix: String,
    pub scope: &'static str,
}

/// Make a key for a tenant and store its hash (admin API, `serve --demo`).
pub async fn issue_key(
    store: &Store,
    tenant_id: &str,
    tenant_name: &str,
    scope: KeyScope,
    actor: &str,
) -> Result<NewKey, ApiError> {
    let mut secret = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let key = format!("rb_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret));
    let prefix: String = key.chars().take(PREFIX_LEN).collect();
    let id = uuid::Uuid::now_v7().to_string();
    let audit = AuditEntry::new(actor, "POST", format!("tenants/{tenant_name}/api-keys/{id}"), None);
    let hash = hash_key(&key);
    let stored = NewApiKey { id: &id, prefix: &prefix, hash: &hash, scope };
    store.create_api_key(tenant_id, &stored, &audit, now_ms()).await?;
    Ok(NewKey { id, key, prefix, scope: scope.as_str() })
}
