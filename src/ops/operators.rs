//! Operators (issue 26): added from the command line (`ringback operator add`) or by an admin
//! through `/admin/v1/operators`, each with a token shown once and stored hashed; recognised on
//! every admin request that does not carry a configured token.

use crate::domain::names::is_valid_name;
use crate::domain::operator::{is_valid_operator_name, new_token, token_hash, Operator, Role, TOKEN_PREFIX};
use crate::error::ApiError;
use crate::store::{AuditEntry, OperatorRecord, Store};

/// Add an operator; returns its token (shown once). `actor` is who adds it, for the audit log.
pub async fn add(
    store: &Store,
    name: &str,
    role: &str,
    tenants: Option<Vec<String>>,
    actor: &str,
) -> Result<String, ApiError> {
    if !is_valid_operator_name(name) {
        return Err(ApiError::field("name", "must be 1-64 characters of A-Z a-z 0-9 . _ - @, not admin-token-<n>"));
    }
    let role: Role = role.parse().map_err(|e: String| ApiError::field("role", e))?;
    if let Some(bad) = tenants.iter().flatten().find(|t| !is_valid_name(t)) {
        return Err(ApiError::field("tenants", format!("{bad:?} is not a tenant name")));
    }
    let operator = Operator { name: name.to_string(), role, tenants };
    let token = new_token();
    let audit = AuditEntry::new(
        actor,
        "POST",
        format!("operators/{name}"),
        Some(&serde_json::json!({ "role": role.as_str(), "tenants": operator.tenants })),
    );
    if !store.insert_operator(&operator, &token_hash(&token), &audit, crate::time::now()).await? {
        return Err(ApiError::field("name", format!("an operator named {name} exists; revoke it first")));
    }
    tracing::info!(operator = name, role = role.as_str(), actor, "operator added");
    Ok(token)
}

pub async fn revoke(store: &Store, name: &str, actor: &str) -> Result<(), ApiError> {
    let audit = AuditEntry::new(actor, "DELETE", format!("operators/{name}"), None);
    if !store.delete_operator(name, &audit, crate::time::now()).await? {
        return Err(ApiError::not_found("operator"));
    }
    tracing::info!(operator = name, actor, "operator revoked");
    Ok(())
}

pub async fn list(store: &Store) -> Result<Vec<OperatorRecord>, ApiError> {
    Ok(store.list_operators().await?)
}

/// Whether any operator exists (the admin API exists when one does, or a token is configured).
pub async fn any_exist(store: &Store) -> Result<bool, ApiError> {
    Ok(store.any_operator().await?)
}

/// The operator a presented token belongs to, if any. Only tokens of the operators' shape are
/// looked up: anything else costs no query.
pub async fn recognise(store: &Store, presented: &str) -> Result<Option<Operator>, ApiError> {
    if !presented.starts_with(TOKEN_PREFIX) || presented.len() > 128 {
        return Ok(None);
    }
    Ok(store.operator_by_token_hash(&token_hash(presented)).await?)
}
