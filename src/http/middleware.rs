//! One middleware around every request: correlation id, W3C trace context, the request context
//! (its fields are flattened into every log line; a span only when the request is exported), the
//! `received`/`responded` log stages, the HTTP metrics with exactly the labels of
//! observability.md, and CORS.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpResponse, ResponseError};

use crate::error::ApiError;
use crate::http::corr_id;
use crate::http::extractors::{OriginAllowed, RequestDeadline, TenantLabel, DEFAULT_TIMEOUT};
use crate::http::Surface;
use crate::ops::AppState;
use crate::telemetry::catalogue::{HTTP_DURATION, HTTP_FAILED, HTTP_IN_FLIGHT, HTTP_REQUESTS, UNCAUGHT_EXCEPTION};
use crate::telemetry::request_context::{self, RequestContext};
use crate::telemetry::trace_context::{self, TraceContext};
use crate::telemetry::{handles, otlp};

pub async fn request_telemetry(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let corr = corr_id::from_header(req.headers().get(corr_id::HEADER).and_then(|v| v.to_str().ok()));
    let method = req.method().as_str().to_string();
    let (span, trace) = request_span(&req, &corr, &method);
    let context = Arc::new(RequestContext::new(corr, trace, method.clone(), span));
    metrics::gauge!(HTTP_IN_FLIGHT).increment(1.0);
    let origin = req.headers().get(header::ORIGIN).cloned();
    let state = req.app_data::<web::Data<AppState>>().cloned();

    let work = async move {
        // Preflights carry no API key: answer them here for the union of tenants' origins.
        if let Some(response) = preflight(&req, state.as_ref()) {
            return Ok(req.into_response(response));
        }
        let timeout =
            state.as_ref().map_or(DEFAULT_TIMEOUT, |s| Duration::from_millis(s.settings.http.request_timeout_ms));
        req.extensions_mut().insert(RequestDeadline(started + timeout));
        // The booking stores it with the callback (its hand-offs are linked to this trace).
        req.extensions_mut().insert(trace);
        tracing::trace!(stage = "received", path = %req.path(), "request received");
        let result = next.call(req).await.map(|r| r.map_into_boxed_body());
        match result {
            Ok(mut res) => {
                let route =
                    res.request().match_pattern().map(|p| route_label(&p)).unwrap_or_else(|| "unmatched".to_string());
                let tenant = res
                    .request()
                    .extensions()
                    .get::<TenantLabel>()
                    .map(|t| t.0.clone())
                    .unwrap_or_else(|| "undefined".to_string());
                let status = res.status().as_u16();
                let took = started.elapsed();
                record_metrics(&route, &method, &tenant, status, took);
                let latency_ms = (took.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
                request_context::with_current(|c| c.record_response(&route, status, latency_ms));
                if status >= 500 {
                    tracing::warn!(stage = "responded", "request failed");
                } else {
                    tracing::debug!(stage = "responded", "request served");
                }
                let origin_allowed = res.request().extensions().get::<OriginAllowed>().is_some();
                let headers = res.headers_mut();
                if let Ok(value) = HeaderValue::from_str(&request_context::corr_id()) {
                    headers.insert(header::HeaderName::from_static(corr_id::HEADER), value);
                }
                if let Some(origin) = origin {
                    allow_origin_if_tenant_permits(headers, origin, origin_allowed);
                }
                Ok(res)
            }
            Err(e) => Err(e),
        }
    };
    // The exported span (if any) is held by the context and ends with it; never entered.
    let result = request_context::scope(Some(context), work).await;
    metrics::gauge!(HTTP_IN_FLIGHT).decrement(1.0);
    result
}

/// Catch a panic in a handler: the request gets a 500 envelope, `UNCAUGHT_EXCEPTION` counts it,
/// the worker keeps serving. Wrapped around each resource (after routing), because the request
/// can only be cloned once the router no longer needs it to itself.
pub async fn catch_panic(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let request = req.request().clone();
    match AssertUnwindSafe(next.call(req)).catch_unwind().await {
        Ok(result) => result.map(ServiceResponse::map_into_boxed_body),
        Err(_) => {
            metrics::counter!(UNCAUGHT_EXCEPTION).increment(1);
            // Not the panic's message: it may carry request data (a phone number, userData). The
            // panic hook (`telemetry::logging::log_panics`) has logged where it happened.
            tracing::error!("handler panicked; answered 500");
            Ok(ServiceResponse::new(request, ApiError::internal().error_response()))
        }
    }
}

/// The route pattern as observability.md spells it: actix parameter names cannot hold `-`, so
/// `{service_name}` in the router is `{service-name}` in labels and logs.
pub fn route_label(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut in_param = false;
    for c in pattern.chars() {
        match c {
            '{' => in_param = true,
            '}' => in_param = false,
            '_' if in_param => {
                out.push('-');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// The request's W3C trace context, and its span when the request is exported: a child of the
/// caller's `traceparent` (the trace continued), or a new trace. On the external listener the
/// caller's sampled flag is not obeyed — any client could otherwise ask for every request to be
/// recorded — so the decision is ours (the export's ratio; "not sampled" when nothing is
/// exported). Internal callers (the platform, operators) are trusted. A sampled request's ids are
/// its exported span's; any other request has no span (its log lines read `RequestContext`).
fn request_span(req: &ServiceRequest, corr: &str, method: &str) -> (Option<tracing::Span>, TraceContext) {
    let external = req.app_data::<Surface>() == Some(&Surface::External);
    let mut parent =
        req.headers().get(trace_context::HEADER).and_then(|v| v.to_str().ok()).and_then(TraceContext::parse);
    if let Some(parent) = parent.as_mut().filter(|_| external) {
        parent.sampled = otlp::ratio_samples(parent.trace_id);
    }
    let own = parent.map_or_else(
        || {
            let mut root = TraceContext::root(false);
            root.sampled = otlp::ratio_samples(root.trace_id);
            root
        },
        |p| p.child(),
    );
    if !own.sampled || !otlp::enabled() {
        return (None, own);
    }
    // The exported span's fields are its attributes (its ids and duration are the span's own).
    let span = tracing::info_span!(
        "sampled_request",
        corrId = %corr,
        method = %method,
        route = tracing::field::Empty,
        tenant = tracing::field::Empty,
        service = tracing::field::Empty,
        callbackId = tracing::field::Empty,
        status = tracing::field::Empty,
        otel.kind = "server",
    );
    let tracestate = req.headers().get(trace_context::STATE_HEADER).and_then(|v| v.to_str().ok());
    let trace = otlp::start_request(&span, parent, tracestate).unwrap_or(own);
    (Some(span), trace)
}

/// The request's series, through handles resolved once per label set (`telemetry::handles`).
fn record_metrics(route: &str, method: &str, tenant: &str, status: u16, took: std::time::Duration) {
    let code = itoa_status(status);
    let code = code.as_str();
    handles::counter(HTTP_REQUESTS, &[("path", route), ("method", method), ("tenant", tenant)]).increment(1);
    if status >= 400 {
        handles::counter(HTTP_FAILED, &[("path", route), ("httpCode", code), ("tenant", tenant)]).increment(1);
    }
    handles::histogram(HTTP_DURATION, &[("path", route), ("method", method), ("httpCode", code)])
        .record(took.as_secs_f64());
}

/// A status code's three digits without allocating.
fn itoa_status(status: u16) -> StatusText {
    StatusText([b'0' + (status / 100 % 10) as u8, b'0' + (status / 10 % 10) as u8, b'0' + (status % 10) as u8])
}

struct StatusText([u8; 3]);

impl StatusText {
    fn as_str(&self) -> &str {
        // Three ASCII digits are UTF-8.
        std::str::from_utf8(&self.0).unwrap_or("000")
    }
}

const ALLOWED_HEADERS: &str = "content-type, x-api-key, idempotency-key, x-correlation-id";
const EXPOSED_HEADERS: &str = "x-correlation-id, retry-after";

/// CORS is hand-written rather than actix-cors: the actual request must be checked against the
/// origins of the tenant its API key resolves to (known only after authentication), and a
/// refusal must be our JSON envelope, not actix-cors's plain-text 400.
fn preflight(req: &ServiceRequest, state: Option<&web::Data<AppState>>) -> Option<HttpResponse> {
    if req.method() != actix_web::http::Method::OPTIONS {
        return None;
    }
    let origin = req.headers().get(header::ORIGIN)?.to_str().ok()?;
    req.headers().get(header::ACCESS_CONTROL_REQUEST_METHOD)?;
    let mut response = HttpResponse::NoContent();
    response.insert_header((header::VARY, "Origin"));
    if state.is_some_and(|s| s.origins.allows(origin)) {
        response
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin))
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"))
            .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOWED_HEADERS))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"));
    }
    Some(response.finish())
}

/// The API-key extractor marks a request whose origin its tenant allows.
fn allow_origin_if_tenant_permits(headers: &mut header::HeaderMap, origin: HeaderValue, origin_allowed: bool) {
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    if origin_allowed {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED_HEADERS));
    }
}
