//! A tenant's configuration as the admin API writes it: tenants, services (and pausing their
//! hand-offs), calendars, call-in groups, webhook endpoints' removal, API key revocation and the
//! replicated log level. Each write is validated whole by the edge first and audited here in the
//! store's transaction; what other parts of the process cache (keys, origins, the monitor's
//! sleep) is told here, after the write.

use crate::domain::calendar::CalendarBody;
use crate::domain::call_in::CallInGroupConfig;
use crate::domain::service::ServiceConfig;
use crate::error::{ApiError, FieldProblem, Reason};
use crate::ops::AppState;
use crate::store::{AuditEntry, DeleteOutcome, PutGroupOutcome, ServiceRecord, Tenant};
use crate::telemetry::catalogue::register_tenant_alarms;

/// The replicated setting every replica's log level follows.
pub const LOG_LEVEL_SETTING: &str = "log.level";

/// What a tenant is configured with (`PUT tenants/{name}`).
pub struct TenantWrite<'a> {
    pub allowed_origins: &'a [String],
    pub enabled: bool,
    pub retention_days: Option<i64>,
}

/// Create or replace a tenant; its alarms are registered, keys re-read, CORS origins refreshed.
pub async fn put_tenant(
    state: &AppState,
    name: &str,
    write: TenantWrite<'_>,
    audit: &AuditEntry,
) -> Result<Tenant, ApiError> {
    let tenant = state
        .store
        .put_tenant(name, write.allowed_origins, write.enabled, write.retention_days, audit, crate::time::now())
        .await?;
    register_tenant_alarms(&tenant.name);
    state.keys.invalidate_all();
    refresh_origins(state).await;
    Ok(tenant)
}

/// Delete a tenant (its unfinished callbacks cancelled when `cancel_unfinished`, else refused);
/// answers how many callbacks it cancelled.
pub async fn delete_tenant(
    state: &AppState,
    tenant: &Tenant,
    cancel_unfinished: bool,
    audit: &AuditEntry,
) -> Result<usize, ApiError> {
    let outcome = state.store.delete_tenant(tenant, cancel_unfinished, audit, crate::time::now()).await?;
    let cancelled = settle_delete(tenant, outcome, "tenant")?;
    state.keys.invalidate_all();
    refresh_origins(state).await;
    Ok(cancelled)
}

async fn refresh_origins(state: &AppState) {
    if let Err(e) = state.origins.refresh(&state.store).await {
        tracing::warn!(error = %e, "could not refresh CORS origins; the periodic refresh will retry");
    }
}

/// Revoke an API key: at once on this replica, on others within the key cache's TTL.
pub async fn revoke_key(state: &AppState, tenant: &Tenant, key_id: &str, audit: &AuditEntry) -> Result<(), ApiError> {
    if !state.store.delete_api_key(&tenant.id, key_id, audit, crate::time::now()).await? {
        return Err(ApiError::not_found("API key"));
    }
    state.keys.invalidate_all();
    Ok(())
}

/// Store a service whose calendar and webhook endpoint exist in the tenant (and which names an
/// endpoint when this deployment hands over by webhooks only).
pub async fn put_service(
    state: &AppState,
    tenant: &Tenant,
    name: &str,
    config: &ServiceConfig,
    audit: &AuditEntry,
) -> Result<ServiceRecord, ApiError> {
    if let Some(calendar) = &config.calendar {
        if state.store.get_calendar(&tenant.id, calendar).await?.is_none() {
            return Err(ApiError::field("calendar", format!("no calendar named '{calendar}' in this tenant")));
        }
    }
    match config.dispatch.webhook() {
        Some(webhook) if state.store.get_webhook_endpoint(&tenant.id, webhook).await?.is_none() => {
            return Err(ApiError::field(
                "dispatch.webhook",
                format!("no webhook endpoint named '{webhook}' in this tenant"),
            ));
        }
        None if state.settings.monitor.dispatch == crate::config::DispatchMode::Webhooks => {
            return Err(ApiError::field(
                "dispatch",
                "must name a webhook endpoint ({\"target\": \"webhook\", \"webhook\": \"<name>\"}): monitor.dispatch is webhooks, no stream is used",
            ));
        }
        _ => {}
    }
    super::services::put_service(&state.store, &tenant.id, name, config, audit, crate::time::now()).await
}

/// Delete a service (as `delete_tenant` for its callbacks); answers how many it cancelled.
pub async fn delete_service(
    state: &AppState,
    tenant: &Tenant,
    name: &str,
    cancel_unfinished: bool,
    audit: &AuditEntry,
) -> Result<usize, ApiError> {
    let outcome = state.store.delete_service(&tenant.id, name, cancel_unfinished, audit, crate::time::now()).await?;
    settle_delete(tenant, outcome, "service")
}

/// Pause or resume a service's hand-offs; a resume wakes this replica's monitor at once.
pub async fn pause_handoffs(
    state: &AppState,
    tenant: &Tenant,
    service: &str,
    paused: bool,
    audit: &AuditEntry,
) -> Result<(), ApiError> {
    if !state.store.set_handoffs_paused(&tenant.id, service, paused, audit, crate::time::now()).await? {
        return Err(ApiError::not_found("service"));
    }
    if !paused {
        state.handoff_wake.notify_one();
    }
    tracing::info!(service = %service, paused, "service hand-offs paused or resumed");
    Ok(())
}

/// A delete's outcome as the admin API answers it: not found, refused for unfinished callbacks,
/// or done (the cancelled callbacks counted).
fn settle_delete(tenant: &Tenant, outcome: DeleteOutcome, what: &str) -> Result<usize, ApiError> {
    match outcome {
        DeleteOutcome::NotFound => Err(ApiError::not_found(what)),
        DeleteOutcome::HasUnfinished(count) => Err(ApiError {
            details: vec![FieldProblem::new("unfinishedCallbacks", count.to_string())],
            ..ApiError::new(
                Reason::HasUnfinishedCallbacks,
                format!(
                    "the {what} has {count} unfinished callbacks; delete with ?cancelUnfinished=true to cancel them"
                ),
            )
        }),
        DeleteOutcome::Deleted { cancelled } => {
            super::lifecycle::cancelled(tenant, &cancelled);
            Ok(cancelled.len())
        }
    }
}

/// Store a calendar (already parsed whole by the edge).
pub async fn put_calendar(
    state: &AppState,
    tenant: &Tenant,
    name: &str,
    body: &CalendarBody,
    audit: &AuditEntry,
) -> Result<(), ApiError> {
    Ok(state.store.put_calendar(&tenant.id, name, body, audit, crate::time::now()).await?)
}

/// Delete a calendar no service uses (a service would silently become always open).
pub async fn delete_calendar(
    state: &AppState,
    tenant: &Tenant,
    name: &str,
    audit: &AuditEntry,
) -> Result<(), ApiError> {
    let users: Vec<String> = state
        .store
        .list_services(&tenant.id)
        .await?
        .into_iter()
        .filter(|s| s.config.calendar.as_deref() == Some(name))
        .map(|s| s.name)
        .collect();
    if !users.is_empty() {
        return Err(ApiError::validation(vec![FieldProblem::new(
            "calendar",
            format!("is used by service(s) {}; point them elsewhere first", users.join(", ")),
        )]));
    }
    if !state.store.delete_calendar(&tenant.id, name, audit, crate::time::now()).await? {
        return Err(ApiError::not_found("calendar"));
    }
    Ok(())
}

fn number_taken(index: usize) -> ApiError {
    ApiError::field(&format!("numbers[{index}]"), "is already in another call-in group (of this or another tenant)")
}

/// Store a call-in group whose numbers no other group holds.
pub async fn put_call_in_group(
    state: &AppState,
    tenant: &Tenant,
    name: &str,
    config: &CallInGroupConfig,
    audit: &AuditEntry,
) -> Result<(), ApiError> {
    // A friendly answer first; the primary key on the number decides races between writers.
    if let Some(index) = state.store.callin_number_taken(&tenant.id, name, &config.numbers).await? {
        return Err(number_taken(index));
    }
    match state.store.put_callin_group(&tenant.id, name, config, audit, crate::time::now()).await? {
        PutGroupOutcome::Stored => {}
        PutGroupOutcome::NumberTaken(index) => return Err(number_taken(index)),
    }
    tracing::info!(group = %name, numbers = config.numbers.len(), "call-in group stored");
    Ok(())
}

/// Delete a call-in group (its pending requests stay matchable until they end).
pub async fn delete_call_in_group(
    state: &AppState,
    tenant: &Tenant,
    name: &str,
    audit: &AuditEntry,
) -> Result<(), ApiError> {
    match state.store.delete_callin_group(&tenant.id, name, audit, crate::time::now()).await? {
        true => Ok(()),
        false => Err(ApiError::not_found("call-in group")),
    }
}

/// Delete a webhook endpoint.
pub async fn delete_webhook_endpoint(
    state: &AppState,
    tenant: &Tenant,
    name: &str,
    audit: &AuditEntry,
) -> Result<(), ApiError> {
    match state.store.delete_webhook_endpoint(&tenant.id, name, audit, crate::time::now()).await? {
        true => Ok(()),
        false => Err(ApiError::not_found("webhook endpoint")),
    }
}

/// Set the log level of every replica: stored (each replica's follower picks it up) and applied
/// here at once. `level` was checked by the edge.
pub async fn set_log_level(state: &AppState, level: &str, audit: &AuditEntry) -> Result<(), ApiError> {
    state.store.put_setting(LOG_LEVEL_SETTING, level, audit, crate::time::now()).await?;
    state.log.set(level).map_err(|p| ApiError::field("level", p))?;
    tracing::info!(level = %level, "log level changed");
    Ok(())
}
