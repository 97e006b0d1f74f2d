//! JSON logs on stdout: one valid object per line, the request's fields (`request_context`) and
//! span fields flattened to the top level (`corrId`, `tenant`, `service`, `callbackId`, `route`,
//! ...), long values cut at `log.max_len`,
//! written through a non-blocking writer so a slow stdout never stalls a request. A line the
//! writer has to drop counts `LOGGING_FAILURE`.

use std::cell::RefCell;
use std::io::Write as _;
use std::ops::Range;
use std::sync::OnceLock;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{EnvFilter, FilterExt};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, Layer, Registry};

use crate::config::parse_log_filter;
use crate::telemetry::catalogue::LOGGING_FAILURE;
use crate::telemetry::log_writer::{self, LineSender};
use crate::telemetry::request_context::{self, RequestContext};

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
    _guard: log_writer::WriterGuard,
}

static INSTALLED: OnceLock<LogControl> = OnceLock::new();

/// Install the JSON logger on stdout, and the span exporter when `export` holds a tracer.
/// Idempotent: a second call returns the first control.
///
/// The log filter is the JSON layer's own (not global), so logs turned off do not turn off the
/// spans that are exported, and a raised log level does not export more.
pub fn init(
    level: &str,
    max_len: usize,
    export: Option<opentelemetry_sdk::trace::SdkTracer>,
) -> Result<(LogControl, Option<LogGuard>), String> {
    if let Some(control) = INSTALLED.get() {
        return Ok((control.clone(), None));
    }
    let filter = parse_log_filter(level)?;
    let (writer, guard) =
        log_writer::spawn(StdoutSink, WRITER_BUFFER_BYTES).map_err(|e| format!("cannot start the log writer: {e}"))?;
    let (filter, handle) = reload::Layer::new(filter);
    // The exported spans are the exporter's: the request's log fields come from its
    // `request_context`, and rendering a sampled span's attributes again would only cost.
    let filter = filter.and(tracing_subscriber::filter::filter_fn(|meta| {
        !(meta.is_span() && crate::telemetry::otlp::EXPORTED_SPANS.contains(&meta.name()))
    }));
    let layer = JsonLayer { writer, max_len };
    let exported = export.map(|tracer| {
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_context_activation(false)
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_location(false)
            .with_level(false)
            .with_target(false)
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                meta.is_span() && crate::telemetry::otlp::EXPORTED_SPANS.contains(&meta.name())
            }))
    });
    tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .with(exported)
        .try_init()
        .map_err(|e| e.to_string())?;
    let control = LogControl {
        handle: Some(handle),
        current: std::sync::Arc::new(std::sync::Mutex::new(level.trim().to_string())),
    };
    let _ = INSTALLED.set(control.clone());
    Ok((control, Some(LogGuard { _guard: guard })))
}

/// Stdout as the writer thread (`log_writer`) sees it: each batch of whole lines the writer takes
/// leaves in one `write`, so none is interleaved or cut. A batch that cannot be written (stdout
/// closed, a broken pipe) counts `LOGGING_FAILURE` once per line — the writer thread would
/// otherwise drop it silently. Fault injection can make it stall like a stuck terminal.
struct StdoutSink;

/// Lines waiting for the writer, at most: about 1.5 s of `trace` logging under full load.
const WRITER_BUFFER_BYTES: usize = 16 << 20;

impl std::io::Write for StdoutSink {
    fn write(&mut self, batch: &[u8]) -> std::io::Result<usize> {
        if let Some(stall) = crate::telemetry::faults::log_writer_stall() {
            std::thread::sleep(stall);
        }
        let mut out = std::io::stdout().lock();
        // `write_all` retries an interrupted write: nothing is lost to a signal.
        if out.write_all(batch).and_then(|()| out.flush()).is_err() {
            let lines = batch.iter().filter(|b| **b == b'\n').count();
            metrics::counter!(LOGGING_FAILURE).increment(lines as u64);
        }
        Ok(batch.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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
    writer: LineSender,
    max_len: usize,
}

/// JSON values rendered once, each the text that follows `"key":`, in `text` (an arena of its
/// own: a span's fields are rendered when it is created, and only copied into each line).
#[derive(Default)]
struct Rendered {
    text: Vec<u8>,
    fields: Vec<(&'static str, Range<usize>)>,
    truncated: bool,
}

impl Rendered {
    fn clear(&mut self) {
        self.text.clear();
        self.fields.clear();
        self.truncated = false;
    }

    fn push_with(&mut self, key: &'static str, render: impl FnOnce(&mut Vec<u8>)) {
        let start = self.text.len();
        render(&mut self.text);
        self.fields.push((key, start..self.text.len()));
    }

    /// A string value, cut at `max_len` characters.
    fn push_str(&mut self, key: &'static str, value: &str, max_len: usize) {
        let value = match value.char_indices().nth(max_len) {
            Some((cut, _)) => {
                self.truncated = true;
                &value[..cut]
            }
            None => value,
        };
        // Serialising a `str` into a Vec cannot fail.
        self.push_with(key, |out| {
            let _ = serde_json::to_writer(out, value);
        });
    }

    /// The request's fields (`telemetry::request_context`), rendered for this line: before any
    /// span's or the event's own, so theirs win.
    fn push_request(&mut self, request: &RequestContext, max_len: usize) {
        self.push_str("corrId", &request.corr_id, max_len);
        self.push_str("traceId", &request.trace.trace_id_hex(), max_len);
        self.push_str("spanId", &request.trace.span_id_hex(), max_len);
        self.push_str("method", &request.method, max_len);
        let recorded = request.recorded();
        for (key, value) in [
            ("route", &recorded.route),
            ("tenant", &recorded.tenant),
            ("service", &recorded.service),
            ("callbackId", &recorded.callback_id),
        ] {
            if let Some(value) = value {
                self.push_str(key, value, max_len);
            }
        }
        if let Some(status) = recorded.status {
            self.push_with("status", |out| {
                let _ = write!(out, "{status}");
            });
        }
        if let Some(latency) = recorded.latency_ms {
            self.push_with("latencyMs", |out| {
                let _ = serde_json::to_writer(out, &latency);
            });
        }
    }

    /// Copy `other`'s fields (already rendered) after ours.
    fn extend_from(&mut self, other: &Rendered) {
        for (key, range) in &other.fields {
            self.push_with(key, |out| out.extend_from_slice(&other.text[range.clone()]));
        }
        self.truncated |= other.truncated;
    }

    /// `{"key":value,…}` and a newline into `out`: keys in order, each once, the value recorded
    /// last winning (an event's field over its spans', an inner span's over an outer one's).
    fn write_line(&mut self, out: &mut Vec<u8>) {
        if self.truncated {
            self.push_with("truncated", |out| out.extend_from_slice(b"true"));
        }
        // Stable: among equal keys the last recorded stays last.
        self.fields.sort_by(|a, b| a.0.cmp(b.0));
        out.push(b'{');
        let mut first = true;
        for (i, (key, range)) in self.fields.iter().enumerate() {
            if self.fields.get(i + 1).is_some_and(|next| next.0 == *key) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            out.push(b'"');
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(&self.text[range.clone()]);
        }
        out.extend_from_slice(b"}\n");
    }
}

/// `"2026-12-07T01:32:39.958Z"`, as `time::format_utc` writes it: the text up to the second is
/// formatted once a second per thread (formatting a date is most of a short line's cost).
fn push_timestamp(out: &mut Vec<u8>, at: crate::time::Moment) {
    let (second, milli) = (at.as_ms().div_euclid(1000), at.as_ms().rem_euclid(1000));
    SECOND_TEXT.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != Some(second) {
            let text = crate::time::format_utc(crate::time::Moment::from_ms(second * 1000));
            *cached = (Some(second), text.trim_end_matches(".000Z").to_string());
        }
        out.push(b'"');
        out.extend_from_slice(cached.1.as_bytes());
        let _ = write!(out, ".{milli:03}Z\"");
    });
}

/// Span fields, rendered when the span is created (and again for a field recorded later).
struct SpanFields(Rendered);

/// Renders recorded fields into a `Rendered`.
struct JsonVisitor<'a> {
    into: &'a mut Rendered,
    max_len: usize,
}

/// Fields that instruct the span exporter (`otel.name`, `otel.kind`), not log data.
fn for_the_exporter(field: &Field) -> bool {
    field.name().starts_with("otel.")
}

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if for_the_exporter(field) {
            return;
        }
        self.into.push_str(field.name(), value, self.max_len);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.into.push_with(field.name(), |out| {
            let _ = write!(out, "{value}");
        });
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.into.push_with(field.name(), |out| {
            let _ = write!(out, "{value}");
        });
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        // As serde_json writes it: `null` for NaN and infinities.
        self.into.push_with(field.name(), |out| {
            let _ = serde_json::to_writer(out, &value);
        });
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.into.push_with(field.name(), |out| out.extend_from_slice(if value { b"true" } else { b"false" }));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            let _ = std::fmt::Write::write_fmt(&mut text, format_args!(": {cause}"));
            source = cause.source();
        }
        self.into.push_str(field.name(), &text, self.max_len);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if for_the_exporter(field) {
            return;
        }
        DEBUG_TEXT.with(|cell| match cell.try_borrow_mut() {
            Ok(mut text) => {
                text.clear();
                let _ = std::fmt::Write::write_fmt(&mut *text, format_args!("{value:?}"));
                self.into.push_str(field.name(), &text, self.max_len);
            }
            Err(_) => self.into.push_str(field.name(), &format!("{value:?}"), self.max_len),
        });
    }
}

thread_local! {
    /// Reused per thread: a line's fields and its text, and a `Debug` value's text.
    static LINE: RefCell<(Rendered, Vec<u8>)> = RefCell::new((Rendered::default(), Vec::with_capacity(1024)));
    static DEBUG_TEXT: RefCell<String> = RefCell::new(String::with_capacity(256));
    /// The last second a line was stamped with, and its text up to the seconds.
    static SECOND_TEXT: RefCell<(Option<i64>, String)> = const { RefCell::new((None, String::new())) };
}

impl<S> Layer<S> for JsonLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, id: &tracing::span::Id, ctx: Context<'_, S>) {
        let mut fields = Rendered::default();
        attrs.record(&mut JsonVisitor { into: &mut fields, max_len: self.max_len });
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &tracing::span::Id, values: &tracing::span::Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            if let Some(fields) = ext.get_mut::<SpanFields>() {
                // Appended: the later value of a field wins when the line is written.
                values.record(&mut JsonVisitor { into: &mut fields.0, max_len: self.max_len });
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        LINE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut line) => {
                let (fields, text) = &mut *line;
                self.write_event(event, &ctx, fields, text);
            }
            // An event logged while this thread writes one (from a `Debug` impl): its own buffers.
            Err(_) => self.write_event(event, &ctx, &mut Rendered::default(), &mut Vec::new()),
        });
    }
}

impl JsonLayer {
    fn write_event<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>, fields: &mut Rendered, text: &mut Vec<u8>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        fields.clear();
        text.clear();
        let meta = event.metadata();
        fields.push_with("timestamp", |out| push_timestamp(out, crate::time::now()));
        let level: &[u8] = match *meta.level() {
            tracing::Level::TRACE => b"\"trace\"",
            tracing::Level::DEBUG => b"\"debug\"",
            tracing::Level::INFO => b"\"info\"",
            tracing::Level::WARN => b"\"warn\"",
            tracing::Level::ERROR => b"\"error\"",
        };
        fields.push_with("level", |out| out.extend_from_slice(level));
        fields.push_with("target", |out| {
            let _ = serde_json::to_writer(out, meta.target());
        });
        request_context::with_current(|request| fields.push_request(request, self.max_len));
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(span_fields) = span.extensions().get::<SpanFields>() {
                    fields.extend_from(&span_fields.0);
                }
            }
        }
        event.record(&mut JsonVisitor { into: fields, max_len: self.max_len });
        fields.write_line(text);
        self.writer.send(text);
    }
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
    fn timestamps_read_as_format_utc_writes_them_within_a_second_and_across_seconds() {
        for ms in [0, 999, 1_000, 1_796_000_123_456, 1_796_000_123_007, 1_796_000_124_000] {
            let at = crate::time::Moment::from_ms(ms);
            let mut out = Vec::new();
            push_timestamp(&mut out, at);
            assert_eq!(String::from_utf8(out).unwrap(), format!("\"{}\"", crate::time::format_utc(at)));
        }
    }

    #[test]
    fn long_values_are_cut_and_flagged_and_the_last_value_of_a_key_wins() {
        let mut fields = Rendered::default();
        fields.push_str("message", &"é".repeat(40), 16);
        fields.push_with("n", |out| out.extend_from_slice(b"5"));
        fields.push_str("a", "first", 16);
        fields.push_str("a", "second \"quoted\"\n", 16);
        let mut line = Vec::new();
        fields.write_line(&mut line);
        let text = String::from_utf8(line).unwrap();
        assert!(text.ends_with('\n'));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["message"].as_str().unwrap().chars().count(), 16);
        assert_eq!(value["truncated"], true);
        assert_eq!(value["a"], "second \"quoted\"\n");
        assert_eq!(value["n"], 5);
        assert!(text.starts_with(r#"{"a":"second"#), "keys in order: {text}");
        let mut short = Rendered::default();
        short.push_str("message", "short", 16);
        let mut line = Vec::new();
        short.write_line(&mut line);
        assert_eq!(line, b"{\"message\":\"short\"}\n");
    }
}
