//! Admin API (`/admin/v1`, bearer tokens, internal listener only). PUT creates or replaces and
//! answers with the stored object; collections answer `{ items, nextCursor }`; DELETE answers
//! `{ name }` (`{ id }` for keys). Every write is validated whole first and audited.

pub mod api_keys;
pub mod audit;
pub mod calendars;
pub mod call_in_groups;
pub mod callbacks;
pub mod faults;
pub mod log_level;
pub mod services;
pub mod tenants;

use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{AuditEntry, Tenant};

/// `{ items, nextCursor }`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Collection<T: Serialize> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T: Serialize> Collection<T> {
    pub fn complete(items: Vec<T>) -> Self {
        Collection { items, next_cursor: None }
    }
}

pub fn audit_entry(actor: &str, action: &str, resource: String, body: Option<&Value>) -> AuditEntry {
    AuditEntry { actor: actor.to_string(), action: action.to_string(), resource, body: body.map(Value::to_string) }
}

pub async fn existing_tenant(state: &AppState, name: &str) -> Result<Tenant, ApiError> {
    state.store.get_tenant(name).await?.ok_or_else(|| ApiError::not_found("tenant"))
}
