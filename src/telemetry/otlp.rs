//! OpenTelemetry trace export over OTLP/HTTP (issue 25), optional: with no
//! `telemetry.otlp.endpoint` nothing here runs and no span is built for it.
//!
//! The libraries do the work: `tracing-opentelemetry` turns the spans we name (`EXPORTED_SPANS`)
//! into OpenTelemetry spans, the SDK's batch processor queues them on a thread of its own and
//! `opentelemetry-otlp` sends them. Ours are thin pieces around them:
//! - sampling is decided where a trace enters (parent-based, the ratio for new traces: the SDK's
//!   `TraceIdRatioBased` on our trace id), *before* any exported span exists: an unsampled request
//!   creates no span at all (its log lines read `request_context`), so at a ratio of 0.01 the other 99 % cost what
//!   they cost without export. Exported spans are therefore all sampled: the SDK's sampler is
//!   parent-based over always-on. A hand-off or batch span exists when a booking it links to was
//!   sampled;
//! - a bound in front of the batch queue that counts what it drops (the SDK's own count is
//!   private), and the exporter's outcome as counters.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SamplingDecision, SdkTracer, SdkTracerProvider, ShouldSample,
    SpanData, SpanExporter, SpanProcessor,
};
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::OtlpSettings;
use crate::telemetry::catalogue::{TRACE_SPANS_DROPPED, TRACE_SPANS_EXPORTED};
use crate::telemetry::trace_context::TraceContext;

/// The spans that become OpenTelemetry spans; every other span stays a log context only (the
/// exporter's cost is paid for these alone).
pub const EXPORTED_SPANS: &[&str] = &[REQUEST_SPAN, BOOKING_SPAN, BATCH_SPAN, HANDOFF_SPAN];
/// A sampled request's span (an unsampled request has none).
pub const REQUEST_SPAN: &str = "sampled_request";
pub const BOOKING_SPAN: &str = "create_callback";
pub const BATCH_SPAN: &str = "booking_batch";
pub const HANDOFF_SPAN: &str = "handoff";

static ENABLED: AtomicBool = AtomicBool::new(false);
static RATIO: std::sync::OnceLock<Sampler> = std::sync::OnceLock::new();

/// Whether spans are exported (the process installed an exporter).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The exporter's provider; dropping it sends what is queued (shutdown flushes).
pub struct Export {
    provider: SdkTracerProvider,
}

impl Drop for Export {
    fn drop(&mut self) {
        let _ = self.provider.shutdown_with_timeout(Duration::from_secs(5));
    }
}

/// Build the exporter when an endpoint is configured: the tracer for the tracing layer, and the
/// guard that flushes at shutdown.
pub fn build(settings: &OtlpSettings, instance: &str) -> Result<Option<(SdkTracer, Export)>, String> {
    let Some(url) = settings.traces_url() else { return Ok(None) };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| format!("telemetry.otlp.endpoint: {e}"))?;
    let queued = Arc::new(AtomicUsize::new(0));
    let batch = BatchSpanProcessor::builder(Counted { inner: exporter, queued: queued.clone() })
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(settings.queue_size)
                .with_max_export_batch_size(settings.queue_size.min(512))
                .with_scheduled_delay(Duration::from_millis(settings.export_delay_ms))
                .build(),
        )
        .build();
    let resource = Resource::builder_empty()
        .with_service_name("ringback")
        .with_attributes([
            KeyValue::new("service.instance.id", instance.to_string()),
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        ])
        .build();
    let _ = RATIO.set(Sampler::TraceIdRatioBased(settings.sample_ratio));
    let provider = SdkTracerProvider::builder()
        .with_span_processor(Bounded { inner: batch, queued, limit: settings.queue_size })
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("ringback");
    ENABLED.store(true, Ordering::Relaxed);
    Ok(Some((tracer, Export { provider })))
}

/// This process among the service's replicas: the pod name where there is one.
pub fn instance_id() -> String {
    std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// A sampled request's exported span: `parent` continued, or a new trace. Returns the ids the span
/// got, which every log line of the request then carries. `None` when nothing is exported.
/// The caller's `tracestate` is kept in the exported span's context (W3C: a participant that does
/// not understand it passes it on unchanged).
pub fn start_request(
    span: &tracing::Span,
    parent: Option<TraceContext>,
    tracestate: Option<&str>,
) -> Option<TraceContext> {
    if !enabled() {
        return None;
    }
    if let Some(parent) = parent {
        let state = tracestate.and_then(|t| t.parse::<TraceState>().ok()).unwrap_or(TraceState::NONE);
        let remote = span_context(&parent, state);
        let _ = span.set_parent(Context::new().with_remote_span_context(remote));
    }
    own_context(span)
}

/// Whether a trace with this id is recorded when nobody trusted decided: a new trace, or one
/// continued from the public listener whatever its caller's flag says. False when nothing is
/// exported.
pub fn ratio_samples(trace_id: [u8; 16]) -> bool {
    let Some(ratio) = RATIO.get() else { return false };
    let result = ratio.should_sample(None, TraceId::from_bytes(trace_id), "", &SpanKind::Server, &[], &[]);
    result.decision == SamplingDecision::RecordAndSample
}

/// Name an exported span once its name is known (a request's route is known after routing,
/// after the span started).
pub fn rename(span: &tracing::Span, name: String) {
    span.context().span().update_name(name);
}

/// Link `span` to another trace's span (a batch to its bookings, a hand-off to its booking).
pub fn link(span: &tracing::Span, to: &TraceContext) {
    span.add_link(span_context(to, TraceState::NONE));
}

/// The context `span` was given (its own ids and sampling decision); starts it if not yet.
pub fn own_context(span: &tracing::Span) -> Option<TraceContext> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| TraceContext {
        trace_id: sc.trace_id().to_bytes(),
        span_id: sc.span_id().to_bytes(),
        sampled: sc.is_sampled(),
    })
}

fn span_context(t: &TraceContext, state: TraceState) -> SpanContext {
    let flags = if t.sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
    SpanContext::new(TraceId::from_bytes(t.trace_id), SpanId::from_bytes(t.span_id), flags, true, state)
}

/// The batch processor behind a bound of our own: at `limit` spans waiting, a finished span is
/// dropped and counted here (the inner queue has the same size, so it never drops uncounted).
/// Nothing here blocks: a full queue costs a request one atomic add.
#[derive(Debug)]
struct Bounded {
    inner: BatchSpanProcessor,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

impl SpanProcessor for Bounded {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.queued.fetch_add(1, Ordering::Relaxed) >= self.limit {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            metrics::counter!(TRACE_SPANS_DROPPED, "reason" => "queue_full").increment(1);
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter, its outcome counted; a batch it takes leaves the queue `Bounded` counts.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    queued: Arc<AtomicUsize>,
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len();
        self.queued.fetch_sub(n, Ordering::Relaxed);
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => metrics::counter!(TRACE_SPANS_EXPORTED).increment(n as u64),
            Err(_) => metrics::counter!(TRACE_SPANS_DROPPED, "reason" => "export_failed").increment(n as u64),
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
