//! The events pass (issue 24): lifecycle events from the outbox to webhook endpoints. Each pass
//! claims what is due (any replica; order per callback and endpoint kept by the claim) and hands
//! each endpoint's share to a delivery task of its own, which sends it signed and settles it:
//! delivered rows go, others are tried again with exponential backoff and jitter until
//! `webhooks.retry_for_hours` after their change, then marked failed. An endpoint whose deliveries
//! have all failed for that long is disabled (`WEBHOOK_ENDPOINT_DISABLED`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use rand::Rng;
use serde_json::{json, Value};

use crate::coord::webhook_sender::Sent;
use crate::domain::phone::mask;
use crate::domain::webhook::LifecycleEvent;
use crate::ops::webhooks::{deliver, Delivery};
use crate::ops::AppState;
use crate::store::{AuditEntry, ClaimScope, EventOutcome, PendingEvent};
use crate::telemetry::catalogue::WEBHOOK_ENDPOINT_DISABLED;
use crate::time::{format_utc, Millis, Moment};

/// Events claimed at once: by the pass for every idle endpoint, and by an endpoint's own delivery
/// task for its next chunk.
const BATCH: i64 = 200;
/// A claim outlives the slowest chunk (`BATCH` deliveries at `webhooks.in_flight_per_endpoint` at
/// a time, each up to `timeoutMs` ≤ 30 s plus the connect timeout) and its settling. A replica
/// that dies holding claims delays those events only until the others stop seeing it
/// (`monitor.claim_lease_seconds`), as with hand-offs.
const LEASE: Millis = Millis::from_ms(30 * 60_000);
/// The first retry after about a second, doubling to at most an hour between tries.
const FIRST_RETRY_MS: i64 = 1_000;
const LONGEST_RETRY_MS: i64 = 3_600_000;

/// The endpoints (tenant id, name) this replica is delivering to right now. The pass claims no
/// events of theirs: each has a task of its own that takes its next chunk when one is settled, so a
/// slow or failing endpoint holds back only its own events, never another's.
#[derive(Clone, Default)]
pub struct Busy(Arc<Mutex<HashSet<(String, String)>>>);

impl Busy {
    fn keys(&self) -> Vec<(String, String)> {
        self.0.lock().map(|b| b.iter().cloned().collect()).unwrap_or_default()
    }

    /// Mark `key` busy until the returned guard drops (also when its task panics).
    fn take(&self, key: (String, String)) -> BusyGuard {
        if let Ok(mut b) = self.0.lock() {
            b.insert(key.clone());
        }
        BusyGuard { busy: self.clone(), key }
    }
}

struct BusyGuard {
    busy: Busy,
    key: (String, String),
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        if let Ok(mut b) = self.busy.0.lock() {
            b.remove(&self.key);
        }
    }
}

/// Claim what is due for every endpoint not busy here and start one delivery task per endpoint.
pub async fn pass(state: &AppState, busy: &Busy) {
    loop {
        match claim_and_start(state, busy).await {
            Ok(true) => continue,
            Ok(false) => break,
            Err(e) => {
                tracing::warn!(error = %e, "events pass failed; retrying next tick");
                break;
            }
        }
    }
}

/// One claim; true when it was full (more may be due for other endpoints).
async fn claim_and_start(state: &AppState, busy: &Busy) -> anyhow::Result<bool> {
    let claimed = claim(state, &ClaimScope::AllBut(busy.keys())).await?;
    let full = claimed.len() as i64 == BATCH;
    let mut by_endpoint: HashMap<(String, String), Vec<PendingEvent>> = HashMap::new();
    for event in claimed {
        by_endpoint.entry((event.tenant_id.clone(), event.endpoint.clone())).or_default().push(event);
    }
    for (key, events) in by_endpoint {
        let guard = busy.take(key);
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = deliver_endpoint(&state, &guard.key, events).await {
                tracing::warn!(error = %e, endpoint = %guard.key.1, "event deliveries failed; the claims are taken again later");
            }
            drop(guard);
        });
    }
    Ok(full)
}

async fn claim(state: &AppState, scope: &ClaimScope) -> anyhow::Result<Vec<PendingEvent>> {
    let now = crate::time::now();
    let seen_after = now - crate::time::Millis::from_secs(state.settings.monitor.claim_lease_seconds);
    Ok(state.store.claim_events(&state.replica_id, now, LEASE, seen_after, scope, BATCH).await?)
}

/// Deliver one endpoint's events, chunk after chunk, until none is due.
async fn deliver_endpoint(
    state: &AppState,
    key: &(String, String),
    mut events: Vec<PendingEvent>,
) -> anyhow::Result<()> {
    loop {
        let full = events.len() as i64 == BATCH;
        deliver_chunk(state, key, &events).await?;
        if !full {
            return Ok(());
        }
        events = claim(state, &ClaimScope::Endpoint(key.clone())).await?;
        if events.is_empty() {
            return Ok(());
        }
    }
}

/// Send a chunk of one endpoint's events and settle them: delivered rows go, others wait for
/// their next try or are given up; the endpoint's failing clock moves, and past the retry window
/// it is disabled.
async fn deliver_chunk(
    state: &AppState,
    (tenant_id, name): &(String, String),
    events: &[PendingEvent],
) -> anyhow::Result<()> {
    let endpoint = state.store.get_webhook_endpoint(tenant_id, name).await?.filter(|e| e.config.enabled);
    let Some(endpoint) = endpoint.as_ref() else {
        let error = "the endpoint is disabled or deleted";
        let outcomes: Vec<EventOutcome> = events
            .iter()
            .map(|e| EventOutcome::Retry {
                id: e.id,
                next_ms: crate::time::now(),
                error: error.to_string(),
                give_up: true,
            })
            .collect();
        state.store.settle_events(&outcomes, crate::time::now()).await?;
        return Ok(());
    };
    let deliveries: Vec<Delivery> = events
        .iter()
        .map(|event| Delivery {
            tenant_name: &event.tenant_name,
            endpoint,
            kind: &event.event_type,
            webhook_id: webhook_id(event),
            body: event_body(event, endpoint.config.include_phone_number),
            traceparent: None,
        })
        .collect();
    let results = deliver(state, &deliveries).await;
    let now = crate::time::now();
    let retry_for = state.settings.webhooks.retry_for();
    let mut delivered_any = false;
    let outcomes: Vec<EventOutcome> = events
        .iter()
        .zip(&results)
        .map(|(event, sent)| {
            if matches!(sent, Sent::Delivered { .. }) {
                delivered_any = true;
                return EventOutcome::Delivered(event.id);
            }
            EventOutcome::Retry {
                id: event.id,
                next_ms: now + backoff(event.tries),
                error: sent.error().unwrap_or_default(),
                give_up: now - event.occurred_ms >= retry_for,
            }
        })
        .collect();
    state.store.settle_events(&outcomes, now).await?;
    let failing_since = state.store.note_endpoint_health(tenant_id, name, delivered_any, now).await?;
    if failing_since.is_some_and(|since| now - since >= retry_for) {
        let tenant = events.first().map_or(tenant_id.as_str(), |e| e.tenant_name.as_str());
        disable(state, tenant_id, tenant, name, now).await?;
    }
    Ok(())
}

/// Disable an endpoint that has failed continuously for `retry_for_hours`, once, with the alarm.
async fn disable(state: &AppState, tenant_id: &str, tenant: &str, name: &str, now: Moment) -> anyhow::Result<()> {
    let audit = AuditEntry::new("ringback", "DISABLE", format!("tenants/{tenant}/webhooks/{name}"), None);
    if state.store.disable_webhook_endpoint(tenant_id, name, &audit, now).await? {
        metrics::counter!(WEBHOOK_ENDPOINT_DISABLED, "tenant" => tenant.to_string()).increment(1);
        tracing::error!(tenant = %tenant, endpoint = name, retryForHours = state.settings.webhooks.retry_for_hours, "webhook endpoint failed continuously for the retry window; disabled, its undelivered events marked failed");
    }
    Ok(())
}

/// The same for every try of the same event at the same endpoint.
fn webhook_id(event: &PendingEvent) -> String {
    format!("evt_{}", event.id)
}

/// The delay before try `tries + 1`: `FIRST_RETRY_MS` doubling, at most `LONGEST_RETRY_MS`, with
/// jitter (half to all of it) so the retries of a burst do not arrive together.
fn backoff(tries: i64) -> Millis {
    let full = FIRST_RETRY_MS.saturating_mul(1_i64 << tries.clamp(0, 30)).min(LONGEST_RETRY_MS);
    Millis::from_ms(rand::thread_rng().gen_range(full / 2..=full))
}

/// `{ type, timestamp, data }`: ids, service, state, reason, attempt and times; the customer's
/// number masked to its last four digits unless the endpoint has `includePhoneNumber`.
fn event_body(event: &PendingEvent, clear_number: bool) -> Vec<u8> {
    let tenant = &event.tenant_name;
    let number = event.phone.as_deref().map(|p| if clear_number { p.to_string() } else { mask(p) });
    let time = format_utc(event.occurred_ms);
    let data: Value = if event.event_type == LifecycleEvent::CallInMatched.as_str() {
        let (callback_id, to_number) = event.call_in.clone().unzip();
        json!({ "callInId": event.subject_id, "tenant": tenant, "group": event.service_name, "state": event.state,
                "callbackId": callback_id.flatten(), "toPhoneNumber": to_number, "fromPhoneNumber": number,
                "time": time })
    } else {
        json!({ "callbackId": event.subject_id, "tenant": tenant, "serviceName": event.service_name,
                "state": event.state, "reason": event.reason, "attempt": event.attempt,
                "dueTime": event.due_ms.map(format_utc), "phoneNumber": number, "time": time })
    };
    json!({ "type": event.event_type, "timestamp": time, "data": data }).to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_an_hour() {
        for tries in 0..40 {
            let full = (1_000_i64 << tries.min(30)).min(3_600_000);
            let b = backoff(tries).as_ms();
            assert!((full / 2..=full).contains(&b), "try {tries}: {b} not within [{}, {full}]", full / 2);
        }
    }

    #[test]
    fn the_number_is_masked_unless_the_endpoint_asks_for_it() {
        let event = PendingEvent {
            id: 7,
            tenant_id: "t1".into(),
            tenant_name: "acme".into(),
            endpoint: "crm".into(),
            subject_id: "cb-1".into(),
            service_name: "sales".into(),
            event_type: "callback.created".into(),
            state: Some("SCHEDULED".into()),
            reason: None,
            attempt: 0,
            due_ms: Some(crate::time::Moment::from_ms(0)),
            occurred_ms: crate::time::Moment::from_ms(0),
            tries: 0,
            phone: Some("+14155550123".into()),
            call_in: None,
        };
        let masked: Value = serde_json::from_slice(&event_body(&event, false)).unwrap();
        assert_eq!(masked["data"]["phoneNumber"], "*******0123");
        assert_eq!(masked["type"], "callback.created");
        assert_eq!(masked["timestamp"], "1970-01-01T00:00:00.000Z");
        let clear: Value = serde_json::from_slice(&event_body(&event, true)).unwrap();
        assert_eq!(clear["data"]["phoneNumber"], "+14155550123");
        assert_eq!(webhook_id(&event), "evt_7");
    }
}
