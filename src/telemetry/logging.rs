//! JSON logs on stdout: one valid object per line, span fields flattened to the top level
//! (`corrId`, `tenant`, `service`, `callbackId`, `route`, ...), long values cut at `log.max_len`,
//! written through a non-blocking writer so a slow stdout never stalls a request. A line the
//! writer has to drop counts `LOGGING_FAILURE`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, Layer, Registry};

use crate::config::parse_log_filter;
use crate::telemetry::catalogue::LOGGING_FAILURE;

/// Runtime control of the log filter (`PUT /admin/v1/log-level`).
#[derive(Clone)]
pub struct LogControl {
    handle: Option<reload::Handle<EnvFilter, Registry>>,
    current: std::sync::Arc<std::sync::Mutex<String>>,
}

impl LogControl {
    /// A control that changes nothing (tests that build apps without installing logging).
    pub fn detached(level: &str) -> Self {
        LogControl { handle: None, current: std::sync::Arc::new(std::sync::Mutex::new(level.to_string())) }
    }

    pub fn current(&self) -> String {
        self.current.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn set(&self, spec: &str) -> Result<(), String> {
        let filter = parse_log_filter(spec)?;
        if let Some(handle) = &self.handle {
            handle.reload(filter).map_err(|e| e.to_string())?;
        }
        if let Ok(mut current) = self.current.lock() {
            *current = spec.trim().to_string();
        }
        Ok(())
    }
}

/// Keeps the writer thread alive; dropping it flushes what is buffered.
pub struct LogGuard {
    _guard: WorkerGuard,
}

static INSTALLED: OnceLock<LogControl> = OnceLock::new();

/// Install the JSON logger on stdout. Idempotent: a second call returns the first control.
pub fn init(level: &str, max_len: usize) -> Result<(LogControl, Option<LogGuard>), String> {
    if let Some(control) = INSTALLED.get() {
        return Ok((control.clone(), None));
    }
    let filter = parse_log_filter(level)?;
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(64 * 1024)
        .thread_name("ringback-log-writer")
        .finish(StdoutSink);
    let (filter_layer, handle) = reload::Layer::new(filter);
    let layer = JsonLayer { dropped: writer.error_counter(), writer, max_len, dropped_seen: AtomicU64::new(0) };
    tracing_subscriber::registry().with(filter_layer).with(layer).try_init().map_err(|e| e.to_string())?;
    let control = LogControl {
        handle: Some(handle),
        current: std::sync::Arc::new(std::sync::Mutex::new(level.trim().to_string())),
    };
    let _ = INSTALLED.set(control.clone());
    Ok((control, Some(LogGuard { _guard: guard })))
}

/// Stdout as the writer thread sees it: a line that cannot be written (stdout closed, a broken
/// pipe) counts `LOGGING_FAILURE` — the writer thread would otherwise drop it silently. Fault
/// injection can make it stall like a stuck terminal.
struct StdoutSink;

impl std::io::Write for StdoutSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(stall) = crate::telemetry::faults::log_writer_stall() {
            std::thread::sleep(stall);
        }
        let written = std::io::stdout().write(buf);
        // An interrupted write is retried by the writer thread: nothing is lost.
        if written.as_ref().is_err_and(|e| e.kind() != std::io::ErrorKind::Interrupted) {
            metrics::counter!(LOGGING_FAILURE).increment(1);
        }
        written
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

/// Panics go to the JSON log (with the request's corrId when a handler panicked) — their
/// location only, nowhere else: a panic message is free text that can quote request data (Rust's
/// slicing panics quote the string), so the default hook's stderr output is dropped too (issue
/// 23). Counting and recovery happen where panics are caught.
pub fn log_panics() {
    std::panic::set_hook(Box::new(move |info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        tracing::error!(location = %location, "panic");
    }));
}

struct JsonLayer {
    writer: NonBlocking,
    dropped: ErrorCounter,
    dropped_seen: AtomicU64,
    max_len: usize,
}

/// Span fields, kept as JSON in the span's extensions.
struct SpanFields(Map<String, Value>);

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            let _ = write!(text, ": {cause}");
            source = cause.source();
        }
        self.0.insert(field.name().to_string(), Value::from(text));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_string(), Value::from(format!("{value:?}")));
    }
}

impl<S> Layer<S> for JsonLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, id: &tracing::span::Id, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        attrs.record(&mut JsonVisitor(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &tracing::span::Id, values: &tracing::span::Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            if let Some(fields) = ext.get_mut::<SpanFields>() {
                values.record(&mut JsonVisitor(&mut fields.0));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert("timestamp".into(), Value::from(crate::time::format_utc(crate::time::now_ms())));
        line.insert("level".into(), Value::from(meta.level().as_str().to_ascii_lowercase()));
        line.insert("target".into(), Value::from(meta.target()));
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    for (k, v) in &fields.0 {
                        line.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        event.record(&mut JsonVisitor(&mut line));
        let truncated = truncate_values(&mut line, self.max_len);
        if truncated {
            line.insert("truncated".into(), Value::Bool(true));
        }
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        let mut writer = self.writer.clone();
        let _ = writer.write_all(text.as_bytes());
        self.count_dropped_lines();
    }
}

impl JsonLayer {
    fn count_dropped_lines(&self) {
        let dropped = self.dropped.dropped_lines() as u64;
        let seen = self.dropped_seen.swap(dropped, Ordering::Relaxed);
        if dropped > seen {
            metrics::counter!(LOGGING_FAILURE).increment(dropped - seen);
        }
    }
}

/// Cut string values longer than `max_len` characters; true when anything was cut.
fn truncate_values(line: &mut Map<String, Value>, max_len: usize) -> bool {
    let mut cut = false;
    for value in line.values_mut() {
        if let Value::String(s) = value {
            if s.chars().count() > max_len {
                *s = s.chars().take(max_len).collect();
                cut = true;
            }
        }
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_level_targets_our_crate_and_directives_pass_through() {
        assert!(parse_log_filter("trace").unwrap().to_string().contains("ringback=trace"));
        assert!(parse_log_filter("warn,ringback::http=debug").is_ok());
        assert!(parse_log_filter("").is_err());
        assert!(parse_log_filter("loud=[").is_err());
    }

    #[test]
    fn long_values_are_cut_and_flagged() {
        let mut line = Map::new();
        line.insert("message".into(), Value::from("x".repeat(40)));
        line.insert("n".into(), Value::from(5));
        assert!(truncate_values(&mut line, 16));
        assert_eq!(line["message"].as_str().unwrap().len(), 16);
        assert!(!truncate_values(&mut line, 16));
    }
}
