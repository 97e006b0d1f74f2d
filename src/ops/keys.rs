//! API keys: issued signed (`domain::api_key`) with their secret shown once; only the key's
//! SHA-256 (and a short prefix, to tell keys apart) is stored.

use base64::Engine;
use rand::RngCore;
use serde::Serialize;

use crate::config::Settings;
use crate::coord::key_cache::hash_key;
use crate::domain::api_key::KeySigner;
use crate::domain::key_scope::KeyScope;
use crate::domain::throttle::NumberHasher;
use crate::error::ApiError;
use crate::store::{AuditEntry, NewApiKey, Store};

const PREFIX_LEN: usize = 10;
/// Where the generated signing secret is kept when none is configured.
const SIGNING_SECRET_SETTING: &str = "api_keys.signing_secret";
const NUMBER_SALT_SETTING: &str = "throttle.number_salt";

#[derive(Serialize)]
pub struct NewKey {
    pub id: String,
    pub key: String,
    pub prefix: String,
    pub scope: &'static str,
}

/// The tenant and scope of a presented API key, or `None` for a key that is not valid (the key
/// cache answers from memory within the key TTL).
pub async fn resolve(state: &super::AppState, key: &str) -> Result<Option<crate::store::ResolvedKey>, ApiError> {
    Ok(state.keys.resolve(&state.store, key).await?)
}

/// Make a key for a tenant and store its hash (admin API, `serve --demo`).
pub async fn issue_key(
    store: &Store,
    signer: &KeySigner,
    tenant_id: &str,
    tenant_name: &str,
    scope: KeyScope,
    actor: &str,
) -> Result<NewKey, ApiError> {
    let key = signer.issue();
    let prefix: String = key.chars().take(PREFIX_LEN).collect();
    let id = uuid::Uuid::now_v7().to_string();
    let audit = AuditEntry::new(actor, "POST", format!("tenants/{tenant_name}/api-keys/{id}"), None);
    let hash = hash_key(&key);
    let stored = NewApiKey { id: &id, prefix: &prefix, hash: &hash, scope };
    store.create_api_key(tenant_id, &stored, &audit, crate::time::now()).await?;
    Ok(NewKey { id, key, prefix, scope: scope.as_str() })
}

/// The salt of throttle keys' number hashes, generated once per deployment and kept in the
/// database (a setting of its own: rotating the key-signing secret must not reset throttles).
pub async fn load_number_hasher(store: &Store) -> anyhow::Result<NumberHasher> {
    let salt = store.setting_or_insert(NUMBER_SALT_SETTING, &random_secret(), crate::time::now()).await?;
    Ok(NumberHasher::new(salt.into_bytes()))
}

fn random_secret() -> String {
    let mut fresh = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut fresh);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(fresh)
}

/// The deployment's signer: the configured secrets, else the one kept in the database (generated
/// by whichever replica started first; insert-if-absent, so replicas starting together agree).
pub async fn load_signer(settings: &Settings, store: &Store) -> anyhow::Result<KeySigner> {
    let mut secrets = settings.api_keys.configured_secrets()?;
    if secrets.is_empty() {
        secrets.push(store.setting_or_insert(SIGNING_SECRET_SETTING, &random_secret(), crate::time::now()).await?);
    }
    KeySigner::new(secrets.into_iter().map(String::into_bytes).collect())
        .ok_or_else(|| anyhow::anyhow!("api_keys: no signing secret"))
}
