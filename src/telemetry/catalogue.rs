//! The metric catalogue: every metric Ringback exposes is declared here once, with its type,
//! labels and help text (observability.md). `docs/metrics.md` mirrors this table; a test keeps
//! the two in sync.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

#[derive(Debug)]
pub struct MetricDef {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
    pub buckets: &'static [f64],
}

const fn counter(name: &'static str, labels: &'static [&'static str], help: &'static str) -> MetricDef {
    MetricDef { name, kind: Kind::Counter, labels, help, buckets: &[] }
}
const fn gauge(name: &'static str, labels: &'static [&'static str], help: &'static str) -> MetricDef {
    MetricDef { name, kind: Kind::Gauge, labels, help, buckets: &[] }
}
const fn histogram(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
    buckets: &'static [f64],
) -> MetricDef {
    MetricDef { name, kind: Kind::Histogram, labels, help, buckets }
}

// Names used from code, so a typo is a compile error rather than a missing series.
pub const CALLBACKS_CREATED: &str = "ges_callbacks_created";
pub const CALLBACKS_CANCELLED: &str = "ges_callbacks_cancelled";
pub const CALLBACKS_RESCHEDULED: &str = "ges_callbacks_rescheduled";
pub const CALLBACKS_COMPLETED: &str = "ges_callbacks_completed";
pub const CALLBACKS_REJECTED: &str = "ges_callbacks_rejected";
/// Issue 27, beyond the spec: follow-ups of callbacks that did not reach the customer.
pub const CALLBACK_RETRIES: &str = "ges_callback_retries_total";
pub const CALLIN_CREATED: &str = "ges_callin_created";
pub const CALLIN_MATCHED: &str = "ges_callin_matched";
pub const CALLIN_EXPIRED: &str = "ges_callin_expired";
pub const CALLIN_POOL_EXHAUSTED: &str = "CALLIN_POOL_EXHAUSTED";
pub const CB_ENQUEUE_LIMIT_REACHED: &str = "CB_ENQUEUE_LIMIT_REACHED";
pub const CB_TTL_LIMIT_REACHED: &str = "CB_TTL_LIMIT_REACHED";
pub const CB_SUBMIT_FAILED: &str = "CB_SUBMIT_FAILED";
pub const MONITOR_LAGGING_BEHIND: &str = "MONITOR_LAGGING_BEHIND";
pub const PROCESS_CPU_SECONDS: &str = "ges_process_cpu_seconds_total";
pub const PROCESS_CPU_USER_SECONDS: &str = "ges_process_cpu_user_seconds_total";
pub const PROCESS_CPU_SYSTEM_SECONDS: &str = "ges_process_cpu_system_seconds_total";
pub const PROCESS_RESIDENT_MEMORY: &str = "ges_process_resident_memory_bytes";
pub const PROCESS_VIRTUAL_MEMORY: &str = "ges_process_virtual_memory_bytes";
pub const PROCESS_OPEN_FDS: &str = "ges_process_open_fds";
pub const PROCESS_MAX_FDS: &str = "ges_process_max_fds";
pub const PROCESS_THREADS: &str = "ges_process_threads";
pub const PROCESS_START_TIME: &str = "ges_process_start_time_seconds";
pub const HTTP_400_TOLERANCE: &str = "http_400_tolerance";
pub const HTTP_401_TOLERANCE: &str = "http_401_tolerance";
pub const HTTP_404_TOLERANCE: &str = "http_404_tolerance";
pub const HTTP_500_TOLERANCE: &str = "http_500_tolerance";
pub const RBAC_CREATE_VQ_PROXY_ERROR_TOLERANCE: &str = "rbac_create_vq_proxy_error_tolerance";
pub const INVALID_CONTENT_LENGTH_TOLERANCE: &str = "invalid_content_length_tolerance";
pub const MONITOR_SIZE: &str = "ges_monitor_size";
pub const MONITOR_CYCLE: &str = "ges_monitor_cycle_duration_seconds";
pub const MONITOR_DISPATCH_DELAY: &str = "ges_monitor_dispatch_delay_seconds";
pub const DISPATCH_PUBLISHED: &str = "ges_dispatch_published_total";
pub const HTTP_REQUESTS: &str = "ges_http_requests_total";
pub const HTTP_FAILED: &str = "ges_http_failed_requests_total";
pub const HTTP_DURATION: &str = "ges_http_request_duration_seconds";
pub const HTTP_IN_FLIGHT: &str = "ges_http_requests_in_flight";
pub const DB_POOL: &str = "ges_db_pool_connections";
pub const BUILD_INFO: &str = "ges_build_info";
pub const INVALID_CONTENT_LENGTH: &str = "INVALID_CONTENT_LENGTH";
pub const LOGGING_FAILURE: &str = "LOGGING_FAILURE";
pub const UNCAUGHT_EXCEPTION: &str = "UNCAUGHT_EXCEPTION";
pub const DNS_FAILURE: &str = "DNS_FAILURE";
pub const RBAC_CREATE_VQ_PROXY_ERROR: &str = "RBAC_CREATE_VQ_PROXY_ERROR";
pub const EVENTLOOP_LAG: &str = "ges_eventloop_lag_seconds";
pub const EVENTLOOP_DELAY: &str = "ges_eventloop_delay_seconds";
pub const REDIS_POOL: &str = "ges_redis_pool_connections";
pub const POSTGRES_STATUS: &str = "POSTGRES_STATUS";
pub const REDIS_CONNECTION: &str = "REDIS_CONNECTION";
pub const ORS_REDIS_STATUS: &str = "ORS_REDIS_STATUS";
pub const GES_HEALTH: &str = "GES_HEALTH";
pub const API_KEY_LOOKUPS: &str = "ges_api_key_lookups_total";
pub const CONFIG_PARSE_ERRORS: &str = "ges_config_parse_errors_total";
pub const API_KEY_LOOKUPS_REFUSED: &str = "ges_api_key_lookups_refused_total";
pub const API_KEY_LEGACY_USES: &str = "ges_api_key_legacy_uses_total";
pub const WIDGET_RATE_LIMIT_REACHED: &str = "WIDGET_RATE_LIMIT_REACHED";
pub const WEBHOOK_DELIVERIES: &str = "ges_webhook_deliveries_total";
pub const WEBHOOK_DELIVERY_SECONDS: &str = "ges_webhook_delivery_seconds";
pub const WEBHOOK_ENDPOINT_FAILING: &str = "ges_webhook_endpoint_failing";
pub const WEBHOOK_OUTBOX_PENDING: &str = "ges_webhook_outbox_pending";
pub const WEBHOOK_OUTBOX_OLDEST_AGE: &str = "ges_webhook_outbox_oldest_age_seconds";
pub const WEBHOOK_ENDPOINT_DISABLED: &str = "WEBHOOK_ENDPOINT_DISABLED";
pub const DISPATCH_ATTEMPTS_RAISED: &str = "ges_dispatch_attempts_raised_total";
pub const TRACE_SPANS_EXPORTED: &str = "ges_trace_spans_exported_total";
pub const TRACE_SPANS_DROPPED: &str = "ges_trace_spans_dropped_total";

const HTTP_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const CYCLE_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];
const DISPATCH_DELAY_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];
const LOOP_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Alarm counters: registered at 0 (unlabelled at start-up, tenant-labelled per known tenant) so
/// that the very first occurrence shows in `increase()`.
pub const TENANT_ALARMS: &[&str] = &[
    CB_ENQUEUE_LIMIT_REACHED,
    CB_TTL_LIMIT_REACHED,
    CB_SUBMIT_FAILED,
    CALLIN_POOL_EXHAUSTED,
    WIDGET_RATE_LIMIT_REACHED,
    WEBHOOK_ENDPOINT_DISABLED,
];
pub const GLOBAL_ALARMS: &[&str] = &[
    MONITOR_LAGGING_BEHIND,
    RBAC_CREATE_VQ_PROXY_ERROR,
    DNS_FAILURE,
    LOGGING_FAILURE,
    UNCAUGHT_EXCEPTION,
    INVALID_CONTENT_LENGTH,
];

pub static CATALOGUE: &[MetricDef] = &[
    // Business logic
    counter(CALLBACKS_CREATED, &["tenant", "service", "type"], "Callbacks booked."),
    counter(
        CALLBACKS_CANCELLED,
        &["tenant", "service"],
        "Callbacks cancelled by the API, an operator, or the monitor (service deleted).",
    ),
    counter(CALLBACKS_RESCHEDULED, &["tenant", "service"], "Callbacks moved to a new time."),
    counter(CALLBACKS_COMPLETED, &["tenant", "service", "reason"], "Callbacks that reached COMPLETED, by outcome."),
    counter(CALLBACKS_REJECTED, &["tenant", "service", "reason"], "Refused bookings, by error reason code."),
    counter(
        CALLBACK_RETRIES,
        &["tenant", "service", "outcome", "result"],
        "Completions the service's retry policy covers, by outcome (no_answer, busy, voicemail, unreachable) and result (booked: a follow-up was booked; no_slot: no open slot with room within maxFuture; exhausted: the rule's attempts were spent).",
    ),
    counter(CALLIN_CREATED, &["tenant", "group"], "Click-to-call-in requests issued."),
    counter(CALLIN_MATCHED, &["tenant", "group"], "Click-to-call-in requests matched to an inbound call."),
    counter(CALLIN_EXPIRED, &["tenant", "group"], "Click-to-call-in requests that expired unmatched."),
    gauge(
        "ges_monitor_size",
        &["type"],
        "Callbacks the monitor sees, by state (scheduled, queued, routing, processing, due).",
    ),
    histogram(MONITOR_CYCLE, &["pass"], "Duration of one monitor pass.", CYCLE_BUCKETS),
    histogram(
        MONITOR_DISPATCH_DELAY,
        &[],
        "Time from a callback falling due to its hand-off.",
        DISPATCH_DELAY_BUCKETS,
    ),
    counter(DISPATCH_PUBLISHED, &["type"], "Entries written to the dispatch stream."),
    counter(
        DISPATCH_ATTEMPTS_RAISED,
        &["cause"],
        "Hand-offs sent again as their next attempt, by cause (lease_expired, ack_timeout, publish_in_doubt).",
    ),
    // Webhooks (issue 24; beyond the spec)
    counter(
        WEBHOOK_DELIVERIES,
        &["tenant", "endpoint", "kind", "result"],
        "Webhook requests, by kind (callback.submit, callback.cancel, or a lifecycle event type) and result (delivered, not_sent, in_doubt, refused).",
    ),
    histogram(WEBHOOK_DELIVERY_SECONDS, &["kind"], "Webhook request latency, to the answer or the failure.", HTTP_BUCKETS),
    gauge(
        WEBHOOK_ENDPOINT_FAILING,
        &["tenant", "endpoint"],
        "1 while an endpoint's last request failed (not sent, in doubt or a non-2xx), else 0. An endpoint's own health: it never marks the dispatch stream down.",
    ),
    gauge(WEBHOOK_OUTBOX_PENDING, &[], "Lifecycle events in the outbox waiting for delivery (failed ones excluded)."),
    gauge(
        WEBHOOK_OUTBOX_OLDEST_AGE,
        &[],
        "Seconds since the change reported by the oldest lifecycle event still waiting for delivery; 0 when none waits.",
    ),
    // Trace export (issue 25; beyond the spec): only when telemetry.otlp.endpoint is set
    counter(TRACE_SPANS_EXPORTED, &[], "Sampled spans the OTLP collector accepted."),
    counter(
        TRACE_SPANS_DROPPED,
        &["reason"],
        "Sampled spans not exported, by reason (queue_full: the export queue was full; export_failed: the collector refused or could not be reached).",
    ),
    // HTTP
    counter(HTTP_REQUESTS, &["path", "method", "tenant"], "HTTP requests, by route pattern."),
    counter(HTTP_FAILED, &["path", "httpCode", "tenant"], "HTTP requests answered 4xx or 5xx."),
    histogram(HTTP_DURATION, &["path", "method", "httpCode"], "HTTP request latency.", HTTP_BUCKETS),
    gauge(HTTP_IN_FLIGHT, &[], "HTTP requests being served now."),
    counter(
        CONFIG_PARSE_ERRORS,
        &["kind"],
        "Stored configuration that no longer parses (kind: calendar, timezone), once per load; the service runs as if it were absent.",
    ),
    counter(
        API_KEY_LOOKUPS,
        &["result"],
        "API keys looked up in the database (not cached), by result (valid, unknown).",
    ),
    counter(
        API_KEY_LOOKUPS_REFUSED,
        &["reason"],
        "API keys answered 401 without a lookup, by reason (malformed; forged: the tag does not verify; unknown_legacy: legacy-shaped, not an existing key).",
    ),
    counter(
        API_KEY_LEGACY_USES,
        &[],
        "Requests authenticated by a legacy-format key (rb_, issued before signed keys); re-issue them.",
    ),
    // Process and runtime
    counter(PROCESS_CPU_SECONDS, &[], "CPU seconds used by the process (user + system)."),
    counter(PROCESS_CPU_USER_SECONDS, &[], "User CPU seconds used by the process."),
    counter(PROCESS_CPU_SYSTEM_SECONDS, &[], "System CPU seconds used by the process."),
    gauge(PROCESS_RESIDENT_MEMORY, &[], "Resident memory."),
    gauge(PROCESS_VIRTUAL_MEMORY, &[], "Virtual memory."),
    gauge(PROCESS_OPEN_FDS, &[], "Open file descriptors."),
    gauge(PROCESS_MAX_FDS, &[], "File descriptor limit."),
    gauge(PROCESS_THREADS, &[], "OS threads."),
    gauge(PROCESS_START_TIME, &[], "Process start time, epoch seconds."),
    gauge(EVENTLOOP_LAG, &["worker"], "Latest event-loop lag sample of each runtime worker."),
    histogram(EVENTLOOP_DELAY, &["worker"], "Every event-loop lag sample.", LOOP_BUCKETS),
    gauge(DB_POOL, &["state"], "Database pool connections, idle or in use."),
    gauge(REDIS_POOL, &["pool", "state"], "Redis pool connections, by pool (cache, ors) and state."),
    gauge(BUILD_INFO, &["version", "revision"], "Always 1; labels carry the build."),
    // Health gauges (0 up, 1 down)
    gauge(POSTGRES_STATUS, &[], "PostgreSQL health: 0 up, 1 down."),
    gauge(REDIS_CONNECTION, &[], "Cache Redis health: 0 up, 1 down."),
    gauge(ORS_REDIS_STATUS, &[], "Dispatch-stream Redis health: 0 up, 1 down."),
    gauge(GES_HEALTH, &[], "1 when a required dependency (database, dispatch stream) is down."),
    // Alarms
    counter(CB_ENQUEUE_LIMIT_REACHED, &["tenant"], "Alarm: a per-number throttle refused a booking."),
    counter(CB_TTL_LIMIT_REACHED, &["tenant"], "Alarm: a per-service rate window refused a booking."),
    counter(CB_SUBMIT_FAILED, &["tenant"], "Alarm: a callback ended SUBMIT_FAILED."),
    counter(CALLIN_POOL_EXHAUSTED, &["tenant"], "Alarm: a call-in group had no free number or code."),
    counter(
        WIDGET_RATE_LIMIT_REACHED,
        &["tenant"],
        "Alarm: a client address passed its limit of bookings with widget keys (clients.widget_bookings_per_minute).",
    ),
    counter(
        WEBHOOK_ENDPOINT_DISABLED,
        &["tenant"],
        "Alarm: a webhook endpoint failed every delivery for webhooks.retry_for_hours and was disabled.",
    ),
    counter(MONITOR_LAGGING_BEHIND, &[], "Alarm: a callback was handed over later than the lag threshold."),
    counter(RBAC_CREATE_VQ_PROXY_ERROR, &[], "Alarm: writing a virtual-queue proxy record failed."),
    counter(DNS_FAILURE, &[], "Alarm: a configured dependency host did not resolve."),
    counter(LOGGING_FAILURE, &[], "Alarm: a log line could not be written."),
    counter(UNCAUGHT_EXCEPTION, &[], "Alarm: a panic in a handler or background task."),
    counter(INVALID_CONTENT_LENGTH, &[], "Alarm: a request body over the limit."),
    // Tolerance gauges (alert thresholds, per pod)
    gauge(HTTP_400_TOLERANCE, &[], "Alert threshold: 400 answers per 2 minutes per pod."),
    gauge(HTTP_401_TOLERANCE, &[], "Alert threshold: 401 answers per 2 minutes per pod."),
    gauge(HTTP_404_TOLERANCE, &[], "Alert threshold: 404 answers per 2 minutes per pod."),
    gauge(HTTP_500_TOLERANCE, &[], "Alert threshold: 500 answers per 2 minutes per pod."),
    gauge(RBAC_CREATE_VQ_PROXY_ERROR_TOLERANCE, &[], "Alert threshold: virtual-queue proxy errors per 10 minutes."),
    gauge(INVALID_CONTENT_LENGTH_TOLERANCE, &[], "Alert threshold: oversized bodies per 2 minutes."),
];

pub fn find(name: &str) -> Option<&'static MetricDef> {
    CATALOGUE.iter().find(|m| m.name == name)
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Install the process-wide recorder once (tests build many apps in one process) and describe
/// every metric.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new();
            for def in CATALOGUE.iter().filter(|d| d.kind == Kind::Histogram) {
                builder = builder
                    .set_buckets_for_metric(Matcher::Full(def.name.to_string()), def.buckets)
                    .expect("catalogue buckets are non-empty");
            }
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed only in unit tests of this crate.
            let _ = metrics::set_global_recorder(recorder);
            describe_all();
            register_global_alarms();
            handle
        })
        .clone()
}

fn describe_all() {
    for def in CATALOGUE {
        match def.kind {
            Kind::Counter => metrics::describe_counter!(def.name, def.help),
            Kind::Gauge => metrics::describe_gauge!(def.name, def.help),
            Kind::Histogram => metrics::describe_histogram!(def.name, def.help),
        }
    }
}

fn register_global_alarms() {
    for name in GLOBAL_ALARMS {
        metrics::counter!(*name).absolute(0);
    }
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "revision" => option_env!("RINGBACK_REVISION").unwrap_or("unknown"))
        .set(1.0);
}

/// Register a tenant's alarm series at 0 (at start-up for every tenant, and when one is created).
pub fn register_tenant_alarms(tenant: &str) {
    for name in TENANT_ALARMS {
        // `increment(0)` creates the series without moving an existing one.
        metrics::counter!(*name, "tenant" => tenant.to_string()).increment(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_histograms_have_buckets() {
        let mut names: Vec<_> = CATALOGUE.iter().map(|m| m.name).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "duplicate metric names");
        for m in CATALOGUE {
            assert_eq!(m.kind == Kind::Histogram, !m.buckets.is_empty(), "{}", m.name);
            assert!(!m.help.is_empty());
        }
        for alarm in TENANT_ALARMS.iter().chain(GLOBAL_ALARMS) {
            assert_eq!(find(alarm).map(|m| m.kind), Some(Kind::Counter), "{alarm}");
        }
    }

    /// Metric and alarm names are written once, here: anywhere else in `src/` they are used
    /// through this module's constants, so a rename cannot miss a use.
    #[test]
    fn metric_names_appear_as_literals_only_in_the_catalogue() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![root];
        let mut offenders = Vec::new();
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("telemetry/catalogue.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for m in CATALOGUE {
                if text.contains(&format!("\"{}\"", m.name)) {
                    offenders.push(format!("{}: \"{}\"", path.display(), m.name));
                }
            }
        }
        assert!(offenders.is_empty(), "use the catalogue's constants:\n{}", offenders.join("\n"));
    }

    /// docs/metrics.md lists every metric of the catalogue, with its type and labels, and nothing else.
    #[test]
    fn docs_table_matches_the_catalogue() {
        let doc = include_str!("../../docs/metrics.md");
        let rows: Vec<(String, String, String)> = doc
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (cells[1].trim_matches('`').to_string(), cells[2].to_string(), cells[3].replace('`', ""))
            })
            .collect();
        for def in CATALOGUE {
            let row = rows
                .iter()
                .find(|r| r.0 == def.name)
                .unwrap_or_else(|| panic!("{} missing from docs/metrics.md", def.name));
            assert_eq!(row.1, def.kind.as_str(), "type of {}", def.name);
            let labels = if def.labels.is_empty() { "—".to_string() } else { def.labels.join(", ") };
            assert_eq!(row.2, labels, "labels of {}", def.name);
        }
        for row in &rows {
            assert!(find(&row.0).is_some(), "docs/metrics.md lists {} which the catalogue does not", row.0);
        }
    }
}
