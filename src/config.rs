//! Typed configuration: embedded defaults, an optional TOML file, then `RINGBACK__SECTION__KEY`
//! environment variables. Validated once at start-up; a bad value names its key.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

const DEFAULTS: &str = include_str!("config.default.toml");

/// Our own crate's target; a bare level applies to it, other crates stay at `warn`.
const OWN_TARGET: &str = "ringback";

/// Turn `log.level`, `RINGBACK_LOG` and / `log-level` input into a tracing filter: a bare level applies to Ringback's
/// targets (others at `warn`); anything else is used as a full filter directive.
pub fn parse_log_filter(spec: &str) -> Result<tracing_subscriber::EnvFilter, String> {
    let spec = spec.trim();
    let directive = match spec.to_ascii_lowercase().as_str() {
        level @ ("off" | "error" | "warn" | "info" | "debug" | "trace") => format!("warn,{OWN_TARGET}={level}"),
        _ => spec.to_string(),
    };
    if spec.is_empty() {
        return Err("must be a level (error, warn, info, debug, trace) or a filter directive".into());
    }
    tracing_subscriber::EnvFilter::try_new(&directive)
        .map_err(|e| format!("'{spec}' is not a level or filter directive: {e}"))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub ors_redis: OrsRedisSettings,
    pub listen: ListenSettings,
    pub http: HttpSettings,
    pub booking: BookingSettings,
    pub admin: TokenSettings,
    pub internal: TokenSettings,
    pub cache: CacheSettings,
    pub api_keys: ApiKeySettings,
    pub clients: ClientSettings,
    pub monitor: MonitorSettings,
    pub health: HealthSettings,
    pub alerts: AlertSettings,
    pub log: LogSettings,
    pub faults: FaultSettings,
    pub webhooks: WebhookSettings,
    pub telemetry: TelemetrySettings,
    pub reports: ReportSettings,
}

/// The outcome report (issue 27).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSettings {
    /// Days the hourly roll-up behind `GET …/reports/outcomes` is kept.
    pub retention_days: u32,
}

/// Trace export (issue 25).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    pub otlp: OtlpSettings,
}

/// OpenTelemetry export over OTLP/HTTP (protobuf). No endpoint: nothing is exported, and no
/// exporter is built (no cost).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpSettings {
    /// The collector's base URL (`http://collector:4318`); `/v1/traces` is appended unless the
    /// path already names it. Empty: no export.
    pub endpoint: String,
    /// The share of new traces recorded (parent-based: a trace continued from a trusted caller
    /// keeps its caller's decision).
    pub sample_ratio: f64,
    /// Finished spans wait at most this long before they are sent.
    pub export_delay_ms: u64,
    /// Finished spans waiting to be sent; beyond it they are dropped and counted.
    pub queue_size: usize,
}

impl OtlpSettings {
    /// The traces URL, when export is configured.
    pub fn traces_url(&self) -> Option<String> {
        let base = self.endpoint.trim().trim_end_matches('/');
        match base {
            "" => None,
            b if b.ends_with("/v1/traces") => Some(b.to_string()),
            b => Some(format!("{b}/v1/traces")),
        }
    }
}

/// Outbound webhooks (issue 24): where they may go, and how long a failing one is retried.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Hosts that may be called over plain http (e.g. 127.0.0.1 in tests); all others need https.
    pub allow_http: Vec<String>,
    /// CIDR blocks allowed although private, loopback or link-local (refused otherwise).
    pub allowed_networks: Vec<String>,
    /// Deliveries in flight at once per endpoint.
    pub in_flight_per_endpoint: usize,
    /// A file holding the base64 of a 32-byte key: endpoint secrets are then stored encrypted
    /// (AES-256-GCM). Empty: stored as given.
    pub encryption_key_file: String,
    /// Lifecycle events are retried (exponential backoff, jitter) this long after their change,
    /// then marked failed; an endpoint failing continuously this long is disabled. Hours;
    /// fractions allowed (tests use seconds' worth).
    pub retry_for_hours: f64,
}

impl WebhookSettings {
    /// `retry_for_hours` in milliseconds.
    pub fn retry_for_ms(&self) -> i64 {
        (self.retry_for_hours * 3_600_000.0) as i64
    }

    pub fn rules(&self) -> Result<crate::domain::webhook::OutboundRules, ConfigError> {
        let allowed_networks = self
            .allowed_networks
            .iter()
            .map(|n| {
                n.parse::<ipnet::IpNet>()
                    .map_err(|_| bad("webhooks.allowed_networks", format!("{n:?} is not a CIDR block")))
            })
            .collect::<Result<_, _>>()?;
        Ok(crate::domain::webhook::OutboundRules { allow_http: self.allow_http.clone(), allowed_networks })
    }

    /// The box endpoint secrets are sealed in, when a key file is configured.
    pub fn secret_box(&self) -> Result<Option<crate::domain::webhook::SecretBox>, ConfigError> {
        use base64::Engine;
        if self.encryption_key_file.is_empty() {
            return Ok(None);
        }
        let key = "webhooks.encryption_key_file";
        let text = std::fs::read_to_string(&self.encryption_key_file)
            .map_err(|e| bad(key, format!("{}: {e}", self.encryption_key_file)))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| bad(key, "must hold the base64 of a 32-byte key (e.g. `head -c 32 /dev/urandom | base64`)"))?;
        crate::domain::webhook::SecretBox::new(&bytes).map(Some).map_err(|e| bad(key, e))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    pub statement_timeout_ms: u64,
    pub acquire_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrsRedisSettings {
    pub url: String,
    pub stream: String,
    pub max_len: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenSettings {
    /// Everything: public, admin, internal, `/metrics`, health.
    pub internal: String,
    /// Public API and health only; empty = off.
    pub external: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub body_limit_bytes: usize,
    /// Actix workers per listener; 0 = one per core.
    pub workers: usize,
    pub shutdown_timeout_seconds: u64,
    /// Every request's deadline: its body must arrive and a booking be written within it.
    pub request_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookingSettings {
    /// Bookings waiting for the writer per replica; past it a booking answers 503 at once.
    pub queue_limit: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    /// Several tokens may be valid at once so they can be rotated.
    pub tokens: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    /// How long a resolved API key is trusted before the database is asked again (≤ 30 s).
    pub key_ttl_seconds: u64,
}

/// How API keys are signed (`domain::api_key`). With neither key set, a secret is generated once
/// and kept in the database, so replicas agree; a configured secret wins.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySettings {
    /// The first signs new keys; every one verifies (rotation: put the new one first).
    pub signing_secrets: Vec<String>,
    /// A file with one secret per line (a mounted Kubernetes secret), read at start-up.
    pub signing_secrets_file: String,
}

impl ApiKeySettings {
    /// The configured secrets, from the list or the file; empty when none is configured.
    pub fn configured_secrets(&self) -> Result<Vec<String>, ConfigError> {
        if self.signing_secrets_file.is_empty() {
            return Ok(self.signing_secrets.clone());
        }
        let key = "api_keys.signing_secrets_file";
        let text = std::fs::read_to_string(&self.signing_secrets_file)
            .map_err(|e| bad(key, format!("{}: {e}", self.signing_secrets_file)))?;
        let secrets: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
        if secrets.is_empty() {
            return Err(bad(key, "the file holds no secret"));
        }
        check_secrets(key, &secrets)?;
        Ok(secrets)
    }
}

fn check_secrets(key: &str, secrets: &[String]) -> Result<(), ConfigError> {
    let min = crate::domain::api_key::MIN_SECRET_LEN;
    match secrets.iter().position(|s| s.len() < min) {
        Some(i) => Err(bad(key, format!("secret {} is shorter than {min} characters", i + 1))),
        None => Ok(()),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    /// Removed (issue 22): forged keys are refused without a lookup, so no per-address lookup
    /// limit remains. Accepted and ignored, with a warning at start-up, for one release.
    pub unknown_key_lookups_per_minute: Option<u32>,
    /// Bookings with widget (public) keys per client address per minute, also the burst; IPv6
    /// clients are grouped by /64. Past it: 429 THROTTLED and `WIDGET_RATE_LIMIT_REACHED`.
    pub widget_bookings_per_minute: u32,
    /// Proxies (addresses or CIDR blocks) whose `X-Forwarded-For` names the client; from any other
    /// peer the header is ignored and the peer is the client.
    pub trusted_proxies: Vec<String>,
}

impl ClientSettings {
    /// The trusted proxies as networks (a bare address is a one-address network).
    pub fn trusted_networks(&self) -> Result<Vec<ipnet::IpNet>, String> {
        self.trusted_proxies
            .iter()
            .map(|p| {
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("{p:?} is not an IP address or CIDR block"))
            })
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorSettings {
    pub dispatch: DispatchMode,
    pub tick_ms: u64,
    pub recovery_seconds: u64,
    pub lag_threshold_seconds: u64,
    pub claim_lease_seconds: u64,
}

/// Whether this replica hands callbacks over (api.md `RINGBACK__MONITOR__DISPATCH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DispatchMode {
    Stream,
    /// Hand-offs go to webhook endpoints only: no stream is used, so PostgreSQL may run without
    /// any Redis URL, and a service whose target is the stream is refused.
    Webhooks,
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSettings {
    pub interval_seconds: u64,
    pub lag_probe_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSettings {
    /// Expose the fault-injection routes (tests only).
    pub enabled: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    pub http_400_tolerance: f64,
    pub http_401_tolerance: f64,
    pub http_404_tolerance: f64,
    pub http_500_tolerance: f64,
    pub rbac_create_vq_proxy_error_tolerance: f64,
    pub invalid_content_length_tolerance: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// Overridden by `RINGBACK_LOG` and at run time by `PUT /admin/v1/log-level`.
    pub level: String,
    pub max_len: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration error: {key}: {problem}")]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
}

fn bad(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError { key: key.to_string(), problem: problem.into() }
}

impl Settings {
    /// Defaults, then the file (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// Same as [`Settings::load`] with an explicit environment (tests use this).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let mut builder =
            config::Config::builder().add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(path) = file {
            if !path.exists() {
                return Err(bad("--config", format!("file {} does not exist", path.display())));
            }
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        let env_map: config::Map<String, String> =
            env.into_iter().filter(|(k, _)| k.starts_with("RINGBACK__")).collect();
        builder = builder.add_source(
            config::Environment::with_prefix("RINGBACK")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("admin.tokens")
                .with_list_parse_key("internal.tokens")
                .with_list_parse_key("clients.trusted_proxies")
                .with_list_parse_key("api_keys.signing_secrets")
                .with_list_parse_key("webhooks.allow_http")
                .with_list_parse_key("webhooks.allowed_networks")
                .source(Some(env_map)),
        );
        let raw = builder.build().map_err(config_error)?;
        let mut settings: Settings = raw.try_deserialize().map_err(config_error)?;
        settings.normalise();
        settings.validate()?;
        Ok(settings)
    }

    fn normalise(&mut self) {
        let lists = [
            &mut self.admin.tokens,
            &mut self.internal.tokens,
            &mut self.clients.trusted_proxies,
            &mut self.api_keys.signing_secrets,
            &mut self.webhooks.allow_http,
            &mut self.webhooks.allowed_networks,
        ];
        for tokens in lists {
            tokens.iter_mut().for_each(|t| *t = t.trim().to_string());
            tokens.retain(|t| !t.is_empty());
        }
    }

    fn validate_otlp(&self) -> Result<(), ConfigError> {
        let otlp = &self.telemetry.otlp;
        if let Some(url) = otlp.traces_url() {
            let parsed = url::Url::parse(&url).map_err(|e| bad("telemetry.otlp.endpoint", format!("{url}: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(bad("telemetry.otlp.endpoint", "must start with http:// or https://"));
            }
        }
        if !(0.0..=1.0).contains(&otlp.sample_ratio) {
            return Err(bad("telemetry.otlp.sample_ratio", "must be between 0 and 1"));
        }
        if otlp.export_delay_ms == 0 || otlp.export_delay_ms > 60_000 {
            return Err(bad("telemetry.otlp.export_delay_ms", "must be between 1 and 60000"));
        }
        if otlp.queue_size == 0 {
            return Err(bad("telemetry.otlp.queue_size", "must be at least 1"));
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=3650).contains(&self.reports.retention_days) {
            return Err(bad("reports.retention_days", "must be from 1 to 3650"));
        }
        let db = &self.database;
        if !(db.url.starts_with("sqlite:") || db.url.starts_with("postgres://") || db.url.starts_with("postgresql://"))
        {
            return Err(bad("database.url", "must start with sqlite: or postgres://"));
        }
        if db.max_connections == 0 {
            return Err(bad("database.max_connections", "must be at least 1"));
        }
        if db.statement_timeout_ms == 0 {
            return Err(bad("database.statement_timeout_ms", "must be positive"));
        }
        if db.acquire_timeout_ms == 0 {
            return Err(bad("database.acquire_timeout_ms", "must be positive"));
        }
        for (key, url) in [("redis.url", &self.redis.url), ("ors_redis.url", &self.ors_redis.url)] {
            if !(url.is_empty() || url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(bad(key, "must start with redis:// or rediss://"));
            }
        }
        if self.ors_redis.stream.trim().is_empty() {
            return Err(bad("ors_redis.stream", "must not be empty"));
        }
        parse_listen("listen.internal", &self.listen.internal)?;
        parse_listen("listen.external", &self.listen.external)?;
        if self.listen.internal.is_empty() && self.listen.external.is_empty() {
            return Err(bad("listen", "at least one of listen.internal and listen.external must be set"));
        }
        let takeover = crate::domain::booking::IDEMPOTENCY_TAKEOVER_MS as u64;
        let timeout = self.http.request_timeout_ms;
        if timeout < db.statement_timeout_ms + 1_000 {
            return Err(bad("http.request_timeout_ms", "must be at least database.statement_timeout_ms + 1000"));
        }
        // The original request, its commit and a read-back all end before a retry may take its
        // Idempotency-Key over.
        if timeout + 2 * db.statement_timeout_ms >= takeover {
            return Err(bad(
                "http.request_timeout_ms",
                format!("request_timeout_ms + 2 × database.statement_timeout_ms must stay under {takeover} (the Idempotency-Key takeover age)"),
            ));
        }
        if self.booking.queue_limit == 0 {
            return Err(bad("booking.queue_limit", "must be at least 1"));
        }
        if self.http.body_limit_bytes < 1024 {
            return Err(bad("http.body_limit_bytes", "must be at least 1024"));
        }
        if self.cache.key_ttl_seconds == 0 || self.cache.key_ttl_seconds > 30 {
            return Err(bad("cache.key_ttl_seconds", "must be between 1 and 30"));
        }
        if self.clients.widget_bookings_per_minute == 0 {
            return Err(bad("clients.widget_bookings_per_minute", "must be positive"));
        }
        check_secrets("api_keys.signing_secrets", &self.api_keys.signing_secrets)?;
        if !self.api_keys.signing_secrets.is_empty() && !self.api_keys.signing_secrets_file.is_empty() {
            return Err(bad("api_keys", "set signing_secrets or signing_secrets_file, not both"));
        }
        self.api_keys.configured_secrets()?;
        self.webhooks.rules()?;
        self.webhooks.secret_box()?;
        if self.webhooks.in_flight_per_endpoint == 0 {
            return Err(bad("webhooks.in_flight_per_endpoint", "must be at least 1"));
        }
        if !(self.webhooks.retry_for_hours > 0.0 && self.webhooks.retry_for_hours <= 24.0 * 30.0) {
            return Err(bad("webhooks.retry_for_hours", "must be more than 0 and at most 720 (30 days)"));
        }
        self.validate_otlp()?;
        self.clients.trusted_networks().map_err(|e| bad("clients.trusted_proxies", e))?;
        if self.monitor.tick_ms == 0 {
            return Err(bad("monitor.tick_ms", "must be positive"));
        }
        if self.health.interval_seconds == 0 {
            return Err(bad("health.interval_seconds", "must be positive"));
        }
        if !(10..=10_000).contains(&self.health.lag_probe_ms) {
            return Err(bad("health.lag_probe_ms", "must be between 10 and 10000"));
        }
        if self.log.max_len < 16 {
            return Err(bad("log.max_len", "must be at least 16"));
        }
        parse_log_filter(&self.log.level).map_err(|e| bad("log.level", e))?;
        Ok(())
    }

    pub fn internal_addr(&self) -> Option<SocketAddr> {
        parse_listen("listen.internal", &self.listen.internal).ok().flatten()
    }

    pub fn external_addr(&self) -> Option<SocketAddr> {
        parse_listen("listen.external", &self.listen.external).ok().flatten()
    }

    /// A configuration that would book callbacks and never hand them over: PostgreSQL (a
    /// deployment) with no Redis to publish to and `monitor.dispatch = "stream"`. Refused at
    /// start-up (exit 2) instead of logging hand-offs nobody dials; `serve --demo` has its own
    /// in-process stream.
    pub fn dispatch_problem(&self, demo: bool) -> Option<String> {
        let postgres = self.database.url.starts_with("postgres");
        let stranded =
            postgres && !demo && self.monitor.dispatch == DispatchMode::Stream && self.ors_redis_url().is_empty();
        stranded.then(|| {
            "ors_redis.url: PostgreSQL needs a Redis stream to hand callbacks over; set ors_redis.url (or redis.url), \
             or monitor.dispatch = \"none\" for a replica that hands nothing over"
                .to_string()
        })
    }

    pub fn ors_redis_url(&self) -> &str {
        if self.ors_redis.url.is_empty() {
            &self.redis.url
        } else {
            &self.ors_redis.url
        }
    }
}

fn parse_listen(key: &str, value: &str) -> Result<Option<SocketAddr>, ConfigError> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    value
        .trim()
        .parse::<SocketAddr>()
        .map(Some)
        .map_err(|_| bad(key, format!("'{value}' is not an address like 0.0.0.0:3050")))
}

/// config-rs says "invalid type: string \"x\", expected u32 for key `database.max_connections`";
/// pull the key out so every error starts with the field it is about.
fn config_error(e: config::ConfigError) -> ConfigError {
    let text = e.to_string();
    let key = text.split('`').nth(1).map(|k| k.to_string()).unwrap_or_else(|| "configuration".to_string());
    ConfigError { key, problem: text }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.database.url, "sqlite://ringback.db");
        assert_eq!(s.database.max_connections, 16);
        assert_eq!(s.database.statement_timeout_ms, 5000);
        assert_eq!(s.listen.internal, "0.0.0.0:3050");
        assert_eq!(s.listen.external, "0.0.0.0:3005");
        assert_eq!(s.http.body_limit_bytes, 65536);
        assert_eq!(s.ors_redis.stream, "NewCallbackStream");
        assert_eq!(s.ors_redis.max_len, 1_000_000);
        assert!(s.admin.tokens.is_empty());
        assert_eq!(s.log.max_len, 2048);
        assert_eq!(s.alerts.http_401_tolerance, 20.0);
    }

    #[test]
    fn environment_overrides_with_double_underscores_and_token_lists() {
        let s = Settings::load_from(
            None,
            env(&[
                ("RINGBACK__DATABASE__MAX_CONNECTIONS", "4"),
                ("RINGBACK__ADMIN__TOKENS", "a, b"),
                ("RINGBACK__LISTEN__EXTERNAL", ""),
                ("RINGBACK__REDIS__URL", "redis://127.0.0.1:6379"),
            ]),
        )
        .unwrap();
        assert_eq!(s.database.max_connections, 4);
        assert_eq!(s.admin.tokens, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(s.external_addr(), None);
        assert_eq!(s.ors_redis_url(), "redis://127.0.0.1:6379");
    }

    #[test]
    fn the_event_retry_window_is_hours_with_fractions_and_bounded() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!((s.webhooks.retry_for_hours, s.webhooks.retry_for_ms()), (24.0, 86_400_000));
        let s = Settings::load_from(None, env(&[("RINGBACK__WEBHOOKS__RETRY_FOR_HOURS", "0.001")])).unwrap();
        assert_eq!(s.webhooks.retry_for_ms(), 3_600);
        for bad in ["0", "-1", "721", "NaN"] {
            let e = Settings::load_from(None, env(&[("RINGBACK__WEBHOOKS__RETRY_FOR_HOURS", bad)])).unwrap_err();
            assert_eq!(e.key, "webhooks.retry_for_hours", "{bad}: {e}");
        }
    }

    #[test]
    fn trace_export_is_off_by_default_and_its_keys_are_checked() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.telemetry.otlp.traces_url(), None, "no endpoint: no export");
        assert_eq!(s.telemetry.otlp.sample_ratio, 0.01);
        for (endpoint, url) in [
            ("http://collector:4318", "http://collector:4318/v1/traces"),
            ("http://collector:4318/", "http://collector:4318/v1/traces"),
            ("https://c.example/v1/traces", "https://c.example/v1/traces"),
        ] {
            let s = Settings::load_from(None, env(&[("RINGBACK__TELEMETRY__OTLP__ENDPOINT", endpoint)])).unwrap();
            assert_eq!(s.telemetry.otlp.traces_url().as_deref(), Some(url));
        }
        for (key, bad) in [
            ("ENDPOINT", "ftp://collector"),
            ("ENDPOINT", "not a url"),
            ("SAMPLE_RATIO", "1.5"),
            ("SAMPLE_RATIO", "-0.1"),
            ("EXPORT_DELAY_MS", "0"),
            ("QUEUE_SIZE", "0"),
        ] {
            let var = format!("RINGBACK__TELEMETRY__OTLP__{key}");
            let e = Settings::load_from(None, env(&[(var.as_str(), bad)])).unwrap_err();
            assert_eq!(e.key, format!("telemetry.otlp.{}", key.to_lowercase()), "{key}={bad}: {e}");
        }
    }

    #[test]
    fn bad_value_names_its_field() {
        let e = Settings::load_from(None, env(&[("RINGBACK__DATABASE__MAX_CONNECTIONS", "lots")])).unwrap_err();
        assert_eq!(e.key, "database.max_connections", "{e}");
        let e = Settings::load_from(None, env(&[("RINGBACK__LISTEN__INTERNAL", "nowhere")])).unwrap_err();
        assert_eq!(e.key, "listen.internal");
        let e = Settings::load_from(None, env(&[("RINGBACK__CACHE__KEY_TTL_SECONDS", "60")])).unwrap_err();
        assert_eq!(e.key, "cache.key_ttl_seconds");
        let e = Settings::load_from(None, env(&[("RINGBACK__DATABASE__URL", "mysql://x")])).unwrap_err();
        assert_eq!(e.key, "database.url");
    }

    #[test]
    fn the_removed_lookup_limit_is_accepted_and_signing_secrets_are_checked() {
        let s = Settings::load_from(None, env(&[("RINGBACK__CLIENTS__UNKNOWN_KEY_LOOKUPS_PER_MINUTE", "60")])).unwrap();
        assert_eq!(s.clients.unknown_key_lookups_per_minute, Some(60));
        assert_eq!(s.clients.widget_bookings_per_minute, 30);
        let long = "x".repeat(32);
        let s = Settings::load_from(None, env(&[("RINGBACK__API_KEYS__SIGNING_SECRETS", &format!("{long}, {long}y"))]))
            .unwrap();
        assert_eq!(s.api_keys.configured_secrets().unwrap().len(), 2);
        let e = Settings::load_from(None, env(&[("RINGBACK__API_KEYS__SIGNING_SECRETS", "short")])).unwrap_err();
        assert_eq!(e.key, "api_keys.signing_secrets");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secrets");
        std::fs::write(&file, format!("{long}\n\n{long}z\n")).unwrap();
        let s = Settings::load_from(None, env(&[("RINGBACK__API_KEYS__SIGNING_SECRETS_FILE", file.to_str().unwrap())]))
            .unwrap();
        assert_eq!(s.api_keys.configured_secrets().unwrap(), vec![long.clone(), format!("{long}z")]);
    }

    #[test]
    fn file_overrides_defaults_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.toml");
        std::fs::write(&path, "[database]\nmax_connections = 3\n").unwrap();
        let s = Settings::load_from(Some(&path), env(&[])).unwrap();
        assert_eq!(s.database.max_connections, 3);
        std::fs::write(&path, "[database]\nmax_conections = 3\n").unwrap();
        let e = Settings::load_from(Some(&path), env(&[])).unwrap_err();
        assert!(e.to_string().contains("max_conections"), "{e}");
    }
}
