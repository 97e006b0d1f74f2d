//! The current request's context — its correlation id, trace ids and the fields every log line of
//! the request carries (`corrId`, `traceId`, `spanId`, `method`, `route`, `tenant`, `service`,
//! `callbackId`, `status`, `latencyMs`) — held in a task-local for the request (the middleware
//! sets it; the booking task inherits it), so every error envelope, log line and stored callback
//! can carry it without threading it through each call.
//!
//! Why not a tracing span (issue 25): a span is created in the subscriber's registry, entered and
//! left on every poll of the request and of its booking task, and renders each field as it is
//! recorded — whether or not a line is ever written. At `info` a booking writes one line, and that
//! bookkeeping cost more than the line. Here a field is a value stored once; the log layer
//! (`telemetry::logging`) renders the fields only into a line it writes. A request whose trace is
//! exported still has a span for the exporter: fields recorded here are recorded on it too. Even
//! that span is never entered: nothing needs it current (its children name it as their parent,
//! and the log layer reads this context), it ends when it is dropped, and an entered span costs
//! the subscriber's bookkeeping and the exporter's clock read on every poll.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::telemetry::otlp;
use crate::telemetry::trace_context::TraceContext;

/// Ids written into the context are cut to this many characters: a client-sent id is input, and
/// every log line of the request repeats it (issue 23).
pub const ID_MAX: usize = 64;

pub struct RequestContext {
    pub corr_id: String,
    /// The request's own ids: `traceId` and `spanId` of its log lines.
    pub trace: TraceContext,
    pub method: String,
    recorded: Mutex<Recorded>,
    /// The exported span of a sampled request (none otherwise).
    exported: Option<tracing::Span>,
}

/// What is learnt while the request runs.
#[derive(Default)]
pub struct Recorded {
    pub route: Option<String>,
    pub tenant: Option<String>,
    pub service: Option<String>,
    pub callback_id: Option<String>,
    pub status: Option<u16>,
    pub latency_ms: Option<f64>,
}

tokio::task_local! {
    static CONTEXT: Arc<RequestContext>;
}

impl RequestContext {
    pub fn new(corr_id: String, trace: TraceContext, method: String, exported: Option<tracing::Span>) -> Self {
        RequestContext { corr_id, trace, method, recorded: Mutex::new(Recorded::default()), exported }
    }

    /// The request's exported span, the parent of the spans its work exports.
    pub fn exported(&self) -> Option<&tracing::Span> {
        self.exported.as_ref()
    }

    /// The fields recorded so far (the log layer renders them into a line).
    pub fn recorded(&self) -> MutexGuard<'_, Recorded> {
        // A panic while a field was stored leaves plain values: still fit to log.
        self.recorded.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The route, status and latency, known when the response is (the exported span is named
    /// after the route then: it is known only after routing).
    pub fn record_response(&self, route: &str, status: u16, latency_ms: f64) {
        let mut recorded = self.recorded();
        recorded.route = Some(route.to_string());
        recorded.status = Some(status);
        recorded.latency_ms = Some(latency_ms);
        if let Some(span) = &self.exported {
            otlp::rename(span, format!("{} {route}", self.method));
            span.record("route", route);
            span.record("status", status);
        }
    }
}

/// The current request's context, to carry into a task the request spawns.
pub fn current() -> Option<Arc<RequestContext>> {
    CONTEXT.try_with(Arc::clone).ok()
}

/// Run `f` with the current request's context, when there is one.
pub fn with_current<R>(f: impl FnOnce(&RequestContext) -> R) -> Option<R> {
    CONTEXT.try_with(|context| f(context)).ok()
}

/// The current request's correlation id ("-" outside a request).
pub fn corr_id() -> String {
    with_current(|c| c.corr_id.clone()).unwrap_or_else(|| "-".to_string())
}

/// Run `f` within `context` (as it is, outside any request, when `None`).
pub async fn scope<F: std::future::Future>(context: Option<Arc<RequestContext>>, f: F) -> F::Output {
    match context {
        Some(context) => CONTEXT.scope(context, f).await,
        None => f.await,
    }
}

/// The tenant the request's API key belongs to.
pub fn record_tenant(name: &str) {
    record("tenant", name, |r| &mut r.tenant);
}

/// The service the request books for.
pub fn record_service(name: &str) {
    record("service", name, |r| &mut r.service);
}

/// A callback id from the request (cut to `ID_MAX`: it may be client-sent).
pub fn record_callback_id(id: &str) {
    let cut = id.char_indices().nth(ID_MAX).map_or(id, |(at, _)| &id[..at]);
    record("callbackId", cut, |r| &mut r.callback_id);
}

fn record(name: &'static str, value: &str, field: impl FnOnce(&mut Recorded) -> &mut Option<String>) {
    with_current(|context| {
        *field(&mut context.recorded()) = Some(value.to_string());
        if let Some(span) = &context.exported {
            span.record(name, value);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn what_a_task_the_request_spawns_records_reaches_the_requests_context() {
        let context = Arc::new(RequestContext::new("c-1".into(), TraceContext::root(false), "POST".into(), None));
        scope(Some(context.clone()), async {
            record_tenant("acme");
            let booking = scope(current(), async {
                record_service("sales");
                record_callback_id(&"é".repeat(100));
                corr_id()
            });
            assert_eq!(tokio::spawn(booking).await.unwrap(), "c-1");
        })
        .await;
        let recorded = context.recorded();
        assert_eq!(recorded.tenant.as_deref(), Some("acme"));
        assert_eq!(recorded.service.as_deref(), Some("sales"));
        assert_eq!(recorded.callback_id.as_ref().map(|id| id.chars().count()), Some(ID_MAX));
        assert_eq!(corr_id(), "-", "outside the request");
    }
}
