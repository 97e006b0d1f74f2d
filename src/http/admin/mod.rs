//! Admin API (`/admin/v1`, bearer tokens, internal listener only). PUT creates or replaces and
//! answers with the stored object; collections answer `{ items, nextCursor }`; DELETE answers
//! `{ name }` (`{ id }` for keys). Every write is validated whole first and audited.

pub mod api_keys;
pub mod audit;
pub mod calendars;
pub mod call_in_groups;
pub mod call_in_requests;
pub mod callbacks;
pub mod csv_export;
pub mod erasure;
pub mod faults;
pub mod log_level;
pub mod openapi;
pub mod operators;
pub mod overview;
pub mod reports;
pub mod services;
pub mod tenants;
pub mod webhooks;

use serde::Serialize;

use crate::error::ApiError;
use crate::ops::AppState;
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

/// Most ids one bulk call (cancel, re-drive) names: each is one transaction with its audit entry.
pub const MAX_IDS: usize = 1000;

/// A bulk call's ids, or 400 naming `ids` past `MAX_IDS`.
pub fn bounded_ids(ids: &[String]) -> Result<&[String], ApiError> {
    if ids.len() > MAX_IDS {
        return Err(ApiError::field("ids", format!("at most {MAX_IDS} ids per call")));
    }
    Ok(ids)
}

pub async fn existing_tenant(state: &AppState, name: &str) -> Result<Tenant, ApiError> {
    state.store.get_tenant(name).await?.ok_or_else(|| ApiError::not_found("tenant"))
}

/// `?cancelUnfinished=true` on a delete of a service or tenant (api.md); `false` or absent: no.
pub fn cancel_unfinished(req: &actix_web::HttpRequest) -> Result<bool, ApiError> {
    let mut cancel = false;
    for (k, v) in form_urlencoded::parse(req.query_string().as_bytes()) {
        if k == "cancelUnfinished" {
            cancel = match v.as_ref() {
                "true" => true,
                "false" => false,
                _ => return Err(ApiError::field("cancelUnfinished", "must be true or false")),
            };
        }
    }
    Ok(cancel)
}
