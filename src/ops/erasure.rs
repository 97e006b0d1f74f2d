//! Erasure by phone number (issue 27): the tenant's database records of the number in one audited
//! transaction (`store::erasure`), then what lives outside the database — the number's throttle
//! counters (keyed hashes, in Redis or in this process) and its callbacks' entries in the dispatch
//! stream. Those two are reported, not rolled back, when Redis fails: the database part stands and
//! a repeat of the request finishes the rest.

use std::collections::HashSet;

use serde_json::{json, Value};

use super::AppState;
use crate::domain::service::ServiceConfig;
use crate::domain::throttle::{self, CounterKind};
use crate::error::ApiError;
use crate::store::{AuditEntry, Tenant};

/// Erase `raw_number` (any form a booking would accept) from `tenant`, audited as `actor`.
pub async fn erase(state: &AppState, tenant: &Tenant, raw_number: &str, actor: &str) -> Result<Value, ApiError> {
    // Every number a booking could have stored: no service's restrictions apply here.
    let lenient = ServiceConfig {
        disallow_impossible_numbers: false,
        disallow_premium_numbers: false,
        ..ServiceConfig::default()
    };
    let number = crate::domain::booking::parse_phone(raw_number, &lenient)?;
    let audit = AuditEntry::new(actor, "POST", format!("tenants/{}/erasure", tenant.name), None);
    let erased = state.store.erase_number(&tenant.id, &tenant.name, &number, &audit, crate::time::now()).await?;
    super::lifecycle::erased(tenant, &erased.cancelled_in);
    let mut incomplete = Vec::new();
    let keys = throttle_keys(state, tenant, number.as_str()).await?;
    let throttle_keys = state.throttles.forget(&keys).await.unwrap_or_else(|e| {
        incomplete.push(format!("throttle counters: {e}"));
        0
    });
    let ids: HashSet<String> = erased.callback_ids.iter().cloned().collect();
    let stream_entries = state.handoff_stream.forget(&ids).await.unwrap_or_else(|e| {
        incomplete.push(format!("dispatch stream: {e}"));
        0
    });
    if !erased.callback_ids.is_empty() {
        state.handoff_wake.notify_one();
    }
    tracing::info!(records = erased.total(), throttle_keys, stream_entries, "number erased on request");
    let mut answer = serde_json::to_value(&erased).unwrap_or_else(|_| json!({}));
    answer["throttleKeys"] = json!(throttle_keys);
    answer["streamEntries"] = json!(stream_entries);
    answer["total"] = json!(erased.total() + throttle_keys + stream_entries);
    if !incomplete.is_empty() {
        tracing::warn!(problems = ?incomplete, "erasure incomplete outside the database; repeat it");
        answer["incomplete"] = json!(incomplete);
    }
    Ok(answer)
}

/// The per-number counters of the number in every service and call-in group of the tenant.
async fn throttle_keys(state: &AppState, tenant: &Tenant, number: &str) -> Result<Vec<String>, ApiError> {
    let hashed = state.throttles.number_key(number);
    let mut keys = Vec::new();
    for service in state.store.list_services(&tenant.id).await? {
        let specs = throttle::counters(&tenant.id, &service.name, &hashed, &service.config);
        keys.extend(specs.into_iter().filter(|s| s.kind == CounterKind::PerNumber).map(|s| s.key));
    }
    for group in state.store.list_callin_groups(&tenant.id).await? {
        let specs = throttle::callin_counters(&tenant.id, &group.name, Some(&hashed), &group.config);
        keys.extend(specs.into_iter().filter(|s| s.kind == CounterKind::PerNumber).map(|s| s.key));
    }
    Ok(keys)
}
