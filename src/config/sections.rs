//! The configuration's sections, one struct per table of `config.default.toml`, with what each
//! derives from its own values.

use serde::Deserialize;

use super::error::{bad, ConfigError};
use crate::time::Millis;

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
    /// `retry_for_hours` as a length of time.
    pub fn retry_for(&self) -> Millis {
        Millis::from_ms((self.retry_for_hours * 3_600_000.0) as i64)
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

pub(super) fn check_secrets(key: &str, secrets: &[String]) -> Result<(), ConfigError> {
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
