//! Webhook endpoints (issue 24): their admin use cases, and hand-offs delivered to them. A service
//! whose `dispatch` names an endpoint keeps the monitor's claim → publish → acknowledgement cycle
//! exactly as the stream has it; only "publish" is one signed POST per hand-off. The counters of
//! deliveries (`ges_webhook_deliveries_total`, the latency histogram, the endpoint gauge) are
//! incremented here and nowhere else.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Map, Value};

use super::AppState;
use crate::coord::stream::{message_field, Message};
use crate::coord::webhook_sender::{Outgoing, Sent};
use crate::domain::callback::HandOffKind;
use crate::domain::webhook::{new_secret, EndpointConfig};
use crate::error::{ApiError, Reason};
use crate::store::{AuditEntry, DeliveryRecord, EndpointRecord, StoreResult, Tenant};
use crate::telemetry::catalogue::{WEBHOOK_DELIVERIES, WEBHOOK_DELIVERY_SECONDS, WEBHOOK_ENDPOINT_FAILING};
use crate::time::{format_utc, Millis};

/// After a rotation the old secret stays valid (and signs too) this long.
pub const ROTATION_OVERLAP: Millis = Millis::from_ms(24 * 3_600_000);

/// The view of an endpoint an admin reads: never its secret.
pub fn endpoint_view(record: &EndpointRecord) -> Value {
    let mut body = serde_json::to_value(&record.config).unwrap_or_else(|_| json!({}));
    body["name"] = Value::from(record.name.clone());
    body["createdTime"] = Value::from(format_utc(record.created_ms));
    body["updatedTime"] = Value::from(format_utc(record.updated_ms));
    if let Some(until) = record.previous_until_ms.filter(|u| *u > crate::time::now()) {
        body["previousSecretValidUntil"] = Value::from(format_utc(until));
    }
    body
}

/// Create or update an endpoint. The answer to the `PUT` that creates it carries its secret,
/// once; a later `PUT` keeps the secret.
pub async fn put_endpoint(
    state: &AppState,
    tenant: &Tenant,
    name: &str,
    body: &Value,
    actor: &str,
) -> Result<Value, ApiError> {
    let rules = state.webhooks.rules();
    let config = EndpointConfig::from_admin_body(body.clone(), rules).map_err(ApiError::validation)?;
    refuse_internal_names(&config.url, rules).await?;
    let audit = AuditEntry::new(actor, "PUT", format!("tenants/{}/webhooks/{name}", tenant.name), Some(body));
    let secret = new_secret();
    let stored = state.webhooks.seal(&secret);
    let (record, created) =
        state.store.put_webhook_endpoint(&tenant.id, name, &config, &stored, &audit, crate::time::now()).await?;
    let mut view = endpoint_view(&record);
    if created {
        view["secret"] = Value::from(secret);
    }
    Ok(view)
}

/// A URL whose host name resolves only to addresses the rules refuse is refused now (and again at
/// every delivery: DNS can change). A name that does not resolve now is accepted.
async fn refuse_internal_names(url: &str, rules: &crate::domain::webhook::OutboundRules) -> Result<(), ApiError> {
    let Ok(url) = url::Url::parse(url) else { return Ok(()) };
    let (Some(url::Host::Domain(host)), Some(port)) = (url.host(), url.port_or_known_default()) else { return Ok(()) };
    let Ok(found) = tokio::net::lookup_host((host, port)).await else { return Ok(()) };
    let found: Vec<std::net::SocketAddr> = found.collect();
    if !found.is_empty() && !found.iter().any(|a| rules.may_reach(a.ip())) {
        return Err(ApiError::field(
            "url",
            format!("{host} resolves only to private, loopback, link-local or reserved addresses"),
        ));
    }
    Ok(())
}

/// A new secret, answered once; the old one stays valid for 24 h (both signatures sent).
pub async fn rotate_secret(state: &AppState, tenant: &Tenant, name: &str, actor: &str) -> Result<Value, ApiError> {
    let secret = new_secret();
    let now = crate::time::now();
    let audit = AuditEntry::new(actor, "POST", format!("tenants/{}/webhooks/{name}/rotate-secret", tenant.name), None);
    let stored = state.webhooks.seal(&secret);
    if !state.store.rotate_webhook_secret(&tenant.id, name, &stored, now + ROTATION_OVERLAP, &audit, now).await? {
        return Err(ApiError::not_found("webhook endpoint"));
    }
    Ok(json!({ "name": name, "secret": secret, "previousSecretValidUntil": format_utc(now + ROTATION_OVERLAP) }))
}

/// Send a hand-off again now, as the same attempt (same `webhook-id`): a receiver that lost it
/// gets it again, one that has it drops the repeat. Only while that attempt is still waiting for
/// its acknowledgement; a hand-off that has moved on is 409. A lifecycle event goes again (same
/// `webhook-id`) while it is still in the outbox: pending, or failed (one more try); a delivered
/// one is 409 (bodies are not kept).
pub async fn redeliver(
    state: &AppState,
    tenant: &Tenant,
    name: &str,
    delivery_id: i64,
    actor: &str,
) -> Result<Value, ApiError> {
    let delivery = state
        .store
        .get_webhook_delivery(&tenant.id, name, delivery_id)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    let path = format!("tenants/{}/webhooks/{name}/deliveries/{delivery_id}/redeliver", tenant.name);
    // A lifecycle event: again now while it is still in the outbox (pending, or failed and kept).
    if let Some(event) = delivery.webhook_id.strip_prefix("evt_").and_then(|n| n.parse::<i64>().ok()) {
        if !state
            .store
            .requeue_event(&tenant.id, name, event, &AuditEntry::new(actor, "POST", path, None), crate::time::now())
            .await?
        {
            return Err(ApiError::new(
                Reason::IllegalTransition,
                "that event was delivered and its body is not kept: only an undelivered or failed event can be sent again",
            ));
        }
        return Ok(json!({ "webhookId": delivery.webhook_id, "redelivery": "queued" }));
    }
    let moved_on = || {
        ApiError::new(
            Reason::IllegalTransition,
            "that hand-off has moved on: only a hand-off waiting for its acknowledgement can be sent again",
        )
    };
    let (id, attempt) = delivery.webhook_id.rsplit_once(':').ok_or_else(moved_on)?;
    let attempt: i64 = attempt.parse().map_err(|_| moved_on())?;
    let audit = AuditEntry::new(actor, "POST", path, None);
    if !state.store.redeliver_handoff(&tenant.id, id, attempt, &audit, crate::time::now()).await? {
        return Err(moved_on());
    }
    state.handoff_wake.notify_one();
    Ok(json!({ "webhookId": delivery.webhook_id, "redelivery": "queued" }))
}

pub fn delivery_view(d: &DeliveryRecord) -> Value {
    json!({ "id": d.id, "eventType": d.event_type, "webhookId": d.webhook_id, "statusCode": d.status_code,
            "latencyMs": d.latency_ms, "error": d.error, "time": format_utc(d.created_ms) })
}

/// One hand-off for a webhook endpoint: its message (the stream entry's fields) and where it goes.
pub struct WebhookHandOff<'a> {
    pub tenant_id: &'a str,
    pub tenant_name: &'a str,
    pub endpoint: &'a str,
    pub kind: HandOffKind,
    pub callback_id: &'a str,
    pub attempt: i64,
    pub message: &'a Message,
}

/// The JSON body of a hand-off: `{ type, timestamp, data }`, `data` the stream entry's fields
/// (numbers as numbers, `userData` as the object it is).
fn handoff_body(kind: HandOffKind, message: &Message) -> Vec<u8> {
    let mut data = Map::new();
    for (field, value) in message.iter().filter(|(f, _)| f != "type") {
        let value = match field.as_str() {
            "attempt" | "priority" | "maxDialAttempts" | "dialRetrySeconds" => {
                value.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::from(value.clone()))
            }
            "userData" => serde_json::from_str(value).unwrap_or_else(|_| Value::from(value.clone())),
            _ => Value::from(value.clone()),
        };
        data.insert(field.clone(), value);
    }
    json!({ "type": kind.as_str(), "timestamp": jiff::Timestamp::now().to_string(), "data": data })
        .to_string()
        .into_bytes()
}

/// One signed request to an endpoint: a hand-off or a lifecycle event.
pub struct Delivery<'a> {
    pub tenant_name: &'a str,
    pub endpoint: &'a EndpointRecord,
    /// `callback.submit`, `callback.cancel` or a lifecycle event's type (the `kind` label).
    pub kind: &'a str,
    /// The same for every re-send of the same message, so receivers can drop repeats.
    pub webhook_id: String,
    pub body: Vec<u8>,
    /// A hand-off's W3C `traceparent` (its entry's field), sent as that header.
    pub traceparent: Option<&'a str>,
}

/// The enabled endpoints among `keys` (tenant id, name); a missing or disabled one is absent.
async fn enabled_endpoints<'k>(
    state: &AppState,
    keys: Vec<(&'k str, &'k str)>,
) -> StoreResult<HashMap<(&'k str, &'k str), EndpointRecord>> {
    let mut found = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for key in keys {
        if seen.insert(key) {
            if let Some(record) = state.store.get_webhook_endpoint(key.0, key.1).await?.filter(|r| r.config.enabled) {
                found.insert(key, record);
            }
        }
    }
    Ok(found)
}

/// Deliver hand-offs: those whose endpoint is missing or disabled are not sent (the same
/// attempt goes again later); the others as `deliver`. Answers in order.
pub async fn deliver_handoffs(state: &AppState, items: &[WebhookHandOff<'_>]) -> Vec<Sent> {
    let endpoints = match enabled_endpoints(state, items.iter().map(|i| (i.tenant_id, i.endpoint)).collect()).await {
        Ok(endpoints) => endpoints,
        Err(e) => {
            // The hand-offs go again with the next pass, nothing spent.
            tracing::warn!(error = %e, "could not read webhook endpoints");
            return items.iter().map(|_| Sent::NotSent(format!("could not read the endpoint: {e}"))).collect();
        }
    };
    let mut answers: Vec<Option<Sent>> = vec![None; items.len()];
    let mut sendable = Vec::new();
    let mut positions = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match endpoints.get(&(item.tenant_id, item.endpoint)) {
            Some(endpoint) => {
                positions.push(i);
                sendable.push(Delivery {
                    tenant_name: item.tenant_name,
                    endpoint,
                    kind: item.kind.as_str(),
                    webhook_id: format!("{}:{}", item.callback_id, item.attempt),
                    body: handoff_body(item.kind, item.message),
                    traceparent: message_field(item.message, crate::telemetry::trace_context::HEADER),
                });
            }
            None => answers[i] = Some(Sent::NotSent(format!("no enabled webhook endpoint named {}", item.endpoint))),
        }
    }
    for (i, sent) in positions.into_iter().zip(deliver(state, &sendable).await) {
        answers[i] = Some(sent);
    }
    answers.into_iter().map(|a| a.unwrap_or_else(|| Sent::NotSent("not attempted".into()))).collect()
}

/// Deliver signed requests, endpoints in parallel, at most `webhooks.in_flight_per_endpoint` at
/// once per endpoint (one slow endpoint never delays another's). Answers in order. Each attempt
/// is recorded and counted.
pub async fn deliver(state: &AppState, items: &[Delivery<'_>]) -> Vec<Sent> {
    let per_endpoint = state.settings.webhooks.in_flight_per_endpoint;
    let mut by_endpoint: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        by_endpoint.entry((&item.endpoint.tenant_id, &item.endpoint.name)).or_default().push(i);
    }
    let groups = by_endpoint.into_values().map(|indices| async move {
        futures_util::stream::iter(indices)
            .map(|i| async move { (i, send_one(state, &items[i]).await) })
            .buffer_unordered(per_endpoint)
            .collect::<Vec<_>>()
            .await
    });
    let mut answers: Vec<(usize, (Sent, DeliveryRecord))> =
        futures_util::future::join_all(groups).await.into_iter().flatten().collect();
    answers.sort_by_key(|(i, _)| *i);
    let (sent, records): (Vec<Sent>, Vec<DeliveryRecord>) = answers.into_iter().map(|(_, pair)| pair).unzip();
    if let Err(e) = state.store.record_webhook_deliveries(&records).await {
        tracing::warn!(error = %e, "could not record webhook deliveries");
    }
    sent
}

async fn send_one(state: &AppState, item: &Delivery<'_>) -> (Sent, DeliveryRecord) {
    let endpoint = item.endpoint;
    let now = crate::time::now();
    let out = Outgoing {
        url: &endpoint.config.url,
        webhook_id: &item.webhook_id,
        body: item.body.clone(),
        secrets: endpoint.signing_secrets(now),
        timeout: Duration::from_millis(endpoint.config.timeout_ms),
        traceparent: item.traceparent,
    };
    let (sent, took) = state.webhooks.send(&out).await;
    let labels = [("tenant", item.tenant_name.to_string()), ("endpoint", endpoint.name.clone())];
    metrics::counter!(
        WEBHOOK_DELIVERIES,
        &[
            labels[0].clone(),
            labels[1].clone(),
            ("kind", item.kind.to_string()),
            ("result", sent.as_label().to_string())
        ]
    )
    .increment(1);
    metrics::histogram!(WEBHOOK_DELIVERY_SECONDS, "kind" => item.kind.to_string()).record(took.as_secs_f64());
    let failing = if matches!(sent, Sent::Delivered { .. }) { 0.0 } else { 1.0 };
    metrics::gauge!(WEBHOOK_ENDPOINT_FAILING, &labels).set(failing);
    let error = sent.error();
    if let Some(error) = &error {
        tracing::info!(endpoint = %endpoint.name, webhookId = %item.webhook_id, kind = item.kind, error = %error, "webhook not delivered");
    }
    let record = DeliveryRecord {
        id: 0,
        tenant_id: endpoint.tenant_id.clone(),
        endpoint: endpoint.name.clone(),
        event_type: item.kind.to_string(),
        webhook_id: item.webhook_id.clone(),
        status_code: sent.status(),
        latency_ms: Millis::from_std(took),
        error,
        created_ms: now,
    };
    (sent, record)
}
