//! Stream entries (api.md § Dispatch contract).

use serde_json::Value;

use crate::coord::stream::Message;
use crate::domain::callback::HandOffKind;
use crate::domain::service::ServiceConfig;
use crate::store::HandOff;
use crate::telemetry::otlp;
use crate::telemetry::trace_context::{self, TraceContext};
use crate::time::format_utc;

/// Reporting fields passed through to the platform as stored.
const REPORTING: [&str; 9] = [
    "cbOfferType",
    "inboundVQ",
    "channel",
    "cbOriginationIxnId",
    "surveyRP",
    "routePoint",
    "offerThreshold",
    "offerTiming",
    "pushTargets",
];

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn handoff_message(kind: HandOffKind, h: &HandOff, tenant: &str, config: &ServiceConfig) -> Message {
    let mut m: Message = vec![
        ("type".into(), kind.as_str().into()),
        ("id".into(), h.id.clone()),
        ("attempt".into(), h.attempt.to_string()),
        ("tenant".into(), tenant.to_string()),
        ("service".into(), h.service_name.clone()),
        ("virtualQueue".into(), config.virtual_queue_name(&h.service_name).to_string()),
        ("phoneNumber".into(), h.phone.clone()),
        ("desiredTime".into(), format_utc(h.desired_ms)),
        ("priority".into(), h.priority.to_string()),
        ("language".into(), h.details.get("language").map(text).unwrap_or_else(|| "en-US".into())),
        ("corrId".into(), h.corr_id.clone()),
        ("userData".into(), h.details.get("userData").map(Value::to_string).unwrap_or_else(|| "{}".into())),
    ];
    // For platforms that redial inside one hand-off (issue 27; GES `_max_dial_attempts`,
    // `_dial_retry_timeout`): only when the service sets them.
    if let Some(n) = config.max_dial_attempts {
        m.push(("maxDialAttempts".into(), n.to_string()));
    }
    if let Some(s) = config.dial_retry_seconds {
        m.push(("dialRetrySeconds".into(), s.to_string()));
    }
    for field in REPORTING {
        if let Some(v) = h.details.get(field) {
            m.push((field.to_string(), text(v)));
        }
    }
    // W3C Trace Context (issue 25): the hand-off starts a trace of its own — its parent is the
    // monitor's hand-off span, whose context the platform's state reports send back — linked to the
    // booking's trace (a scheduled callback is handed over long after that trace ended).
    if let Some(booking) = h.traceparent.as_deref().and_then(TraceContext::parse) {
        m.push((trace_context::HEADER.into(), handoff_context(kind, h, &booking).header()));
    }
    m
}

/// The hand-off's own context, a new trace carrying the booking's sampling decision. A sampled
/// booking's hand-off is an exported producer span (the message is sent as it ends, as a
/// messaging producer's is), linked to the booking's request span.
fn handoff_context(kind: HandOffKind, h: &HandOff, booking: &TraceContext) -> TraceContext {
    if otlp::enabled() && booking.sampled {
        let span = tracing::info_span!(
            parent: None,
            "handoff",
            otel.name = kind.as_str(),
            otel.kind = "producer",
            callbackId = %h.id,
            attempt = h.attempt,
        );
        otlp::link(&span, booking);
        if let Some(own) = otlp::own_context(&span) {
            return own;
        }
    }
    TraceContext::root(booking.sampled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handoff() -> HandOff {
        HandOff {
            id: "cb-1".into(),
            tenant_id: "t".into(),
            service_name: "sales".into(),
            attempt: 1,
            phone: "+14155552671".into(),
            desired_ms: crate::time::Moment::from_ms(0),
            due_ms: crate::time::Moment::from_ms(0),
            priority: 0,
            corr_id: "c".into(),
            failed_attempts: 0,
            details: serde_json::Map::new(),
            traceparent: None,
        }
    }

    /// Issue 27: the hand-off tells a platform that redials inside one hand-off how, when the
    /// service says (GES `_max_dial_attempts`, `_dial_retry_timeout`); otherwise nothing.
    #[test]
    fn dial_retries_travel_with_the_hand_off_only_when_configured() {
        let field = |m: &Message, name: &str| m.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let plain = handoff_message(HandOffKind::Submit, &handoff(), "acme", &ServiceConfig::default());
        assert_eq!(field(&plain, "maxDialAttempts"), None);
        let config =
            ServiceConfig { max_dial_attempts: Some(3), dial_retry_seconds: Some(90), ..ServiceConfig::default() };
        let m = handoff_message(HandOffKind::Submit, &handoff(), "acme", &config);
        assert_eq!(field(&m, "maxDialAttempts").as_deref(), Some("3"));
        assert_eq!(field(&m, "dialRetrySeconds").as_deref(), Some("90"));
        let aliased = ServiceConfig::from_admin_body(
            "s",
            serde_json::json!({ "_max_dial_attempts": "4", "_dial_retry_timeout": "30" }),
        )
        .unwrap();
        assert_eq!((aliased.max_dial_attempts, aliased.dial_retry_seconds), (Some(4), Some(30)));
    }
}
