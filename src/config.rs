//! Typed configuration: embedded defaults, an optional TOML file, then `RINGBACK__SECTION__KEY`
//! environment variables. Validated once at start-up; a bad value names its key.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

mod error;
mod sections;

use error::bad;
pub use error::ConfigError;
use sections::check_secrets;
pub use sections::*;

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
        let takeover = crate::domain::booking::IDEMPOTENCY_TAKEOVER.as_ms() as u64;
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
        assert_eq!((s.webhooks.retry_for_hours, s.webhooks.retry_for().as_ms()), (24.0, 86_400_000));
        let s = Settings::load_from(None, env(&[("RINGBACK__WEBHOOKS__RETRY_FOR_HOURS", "0.001")])).unwrap();
        assert_eq!(s.webhooks.retry_for().as_ms(), 3_600);
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
