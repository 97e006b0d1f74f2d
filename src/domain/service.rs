//! A callback service's configuration (api.md § Admin, domain.md § services): defaults, the GES
//! option names accepted as aliases, and whole-body validation that names each field path.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::domain::ges_aliases::apply_ges_aliases;
use crate::domain::names::is_valid_name;
use crate::error::FieldProblem;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ServiceConfig {
    pub enabled: bool,
    /// Filled with the service name when absent.
    pub virtual_queue: Option<String>,
    pub calendar: Option<String>,
    /// `None` = the calendar's zone, else UTC.
    pub timezone: Option<String>,
    pub immediate_enabled: bool,
    pub scheduled_enabled: bool,
    pub slot_minutes: u32,
    pub slot_capacity: u32,
    pub capacity_overrides: Vec<CapacityOverride>,
    pub capacity_exceptions: Vec<CapacityException>,
    pub reject_out_of_office_hours: bool,
    pub max_future: String,
    pub min_lead_seconds: u64,
    pub per_number_limit: RateLimit,
    pub service_rate_limits: Vec<RateLimit>,
    pub in_queue_checking: InQueueChecking,
    pub max_queued: u32,
    pub default_country: String,
    pub disallow_impossible_numbers: bool,
    pub disallow_premium_numbers: bool,
    pub allowed_countries: Vec<String>,
    pub blocked_patterns: Vec<String>,
    pub priority: i64,
    pub max_dispatch_attempts: u32,
    pub dispatch_buffer_seconds: u64,
    pub ack_timeout_seconds: u64,
    pub queued_ttl_seconds: u64,
    pub ttl_seconds: u64,
    /// Where hand-offs go (issue 24): the dispatch stream (the default, shown only when changed)
    /// or one of the tenant's webhook endpoints.
    #[serde(skip_serializing_if = "DispatchTarget::is_stream")]
    pub dispatch: DispatchTarget,
    /// Follow-up callbacks booked when the platform reports that the customer was not reached
    /// (issue 27, `domain::retry`); none by default.
    pub retry: RetryPolicy,
    /// For platforms that redial inside one hand-off (GES `_max_dial_attempts`,
    /// `_dial_retry_timeout`): carried by the hand-off, not used by Ringback.
    pub max_dial_attempts: Option<u32>,
    pub dial_retry_seconds: Option<u64>,
}

/// Per outcome the platform reports, how many follow-ups and after how long (issue 27).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_no_answer: Option<RetryRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_busy: Option<RetryRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_voicemail: Option<RetryRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_unreachable: Option<RetryRule>,
}

/// `attempts` follow-ups at most; the n-th (1-based) no sooner than `afterSeconds[n-1]` (the last
/// value repeats when the list is shorter) after the outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryRule {
    pub attempts: u32,
    pub after_seconds: Vec<u64>,
}

/// Most follow-ups one rule may book; longest delay (a year).
pub const MAX_RETRY_ATTEMPTS: u32 = 10;
pub const MAX_RETRY_DELAY_SECONDS: u64 = 366 * 86_400;

impl RetryPolicy {
    /// The rules with the field names that carry them.
    pub fn rules(&self) -> [(&'static str, Option<&RetryRule>); 4] {
        [
            ("onNoAnswer", self.on_no_answer.as_ref()),
            ("onBusy", self.on_busy.as_ref()),
            ("onVoicemail", self.on_voicemail.as_ref()),
            ("onUnreachable", self.on_unreachable.as_ref()),
        ]
    }
}

/// Where a service's hand-offs go.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "target", rename_all = "lowercase", deny_unknown_fields)]
pub enum DispatchTarget {
    /// The dispatch stream in GES's format (a GES ORS strategy, the simulator).
    #[default]
    Stream,
    /// One POST per hand-off to the named endpoint (`tenants/{t}/webhooks/{name}`).
    Webhook { webhook: String },
}

impl DispatchTarget {
    pub fn is_stream(&self) -> bool {
        *self == DispatchTarget::Stream
    }

    /// The endpoint's name, for a webhook target.
    pub fn webhook(&self) -> Option<&str> {
        match self {
            DispatchTarget::Webhook { webhook } => Some(webhook),
            DispatchTarget::Stream => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CapacityOverride {
    pub days: String,
    pub from: String,
    pub to: String,
    pub capacity: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CapacityException {
    pub date: String,
    pub from: String,
    pub to: String,
    pub capacity: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    pub limit: u32,
    pub window_seconds: u64,
}

/// `"false"` (off), `"true"` (refuse a number with 2 unfinished callbacks), `"strict"` (1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum InQueueChecking {
    #[serde(rename = "false")]
    Off,
    #[serde(rename = "true")]
    On,
    #[serde(rename = "strict")]
    Strict,
}

impl<'de> Deserialize<'de> for InQueueChecking {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // GES stores options as strings; accept a JSON bool as well.
        match Value::deserialize(d)? {
            Value::Bool(false) => Ok(InQueueChecking::Off),
            Value::Bool(true) => Ok(InQueueChecking::On),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(InQueueChecking::Off),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(InQueueChecking::On),
            Value::String(s) if s.eq_ignore_ascii_case("strict") => Ok(InQueueChecking::Strict),
            other => Err(serde::de::Error::custom(format!("must be \"false\", \"true\" or \"strict\", got {other}"))),
        }
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            enabled: true,
            virtual_queue: None,
            calendar: None,
            timezone: None,
            immediate_enabled: true,
            scheduled_enabled: true,
            slot_minutes: 5,
            slot_capacity: 100,
            capacity_overrides: Vec::new(),
            capacity_exceptions: Vec::new(),
            reject_out_of_office_hours: false,
            max_future: "1M".to_string(),
            min_lead_seconds: 0,
            per_number_limit: RateLimit { limit: 6, window_seconds: 86_400 },
            service_rate_limits: vec![
                RateLimit { limit: 500, window_seconds: 300 },
                RateLimit { limit: 1000, window_seconds: 3600 },
            ],
            in_queue_checking: InQueueChecking::Off,
            max_queued: 1000,
            default_country: "US".to_string(),
            disallow_impossible_numbers: true,
            disallow_premium_numbers: true,
            allowed_countries: Vec::new(),
            blocked_patterns: Vec::new(),
            priority: 0,
            max_dispatch_attempts: 3,
            dispatch_buffer_seconds: 0,
            ack_timeout_seconds: 120,
            queued_ttl_seconds: 14_400,
            ttl_seconds: 86_400,
            dispatch: DispatchTarget::Stream,
            retry: RetryPolicy::default(),
            max_dial_attempts: None,
            dial_retry_seconds: None,
        }
    }
}

impl ServiceConfig {
    /// Parse an admin body: GES aliases first, then serde (unknown fields refused), then the rules.
    pub fn from_admin_body(service_name: &str, body: Value) -> Result<ServiceConfig, Vec<FieldProblem>> {
        let defaults = serde_json::to_value(ServiceConfig::default()).unwrap_or(Value::Null);
        let body = apply_ges_aliases(body, &defaults)?;
        let mut config: ServiceConfig = serde_path_to_error::deserialize(body).map_err(|e| {
            let path = e.path().to_string();
            vec![FieldProblem::new(if path == "." { "body".to_string() } else { path }, e.inner().to_string())]
        })?;
        if config.virtual_queue.is_none() {
            config.virtual_queue = Some(service_name.to_string());
        }
        config.validate()?;
        Ok(config)
    }

    pub fn virtual_queue_name<'a>(&'a self, service_name: &'a str) -> &'a str {
        self.virtual_queue.as_deref().unwrap_or(service_name)
    }

    pub fn validate(&self) -> Result<(), Vec<FieldProblem>> {
        let mut p = Vec::new();
        let mut check = |ok: bool, field: String, problem: &str| {
            if !ok {
                p.push(FieldProblem::new(field, problem));
            }
        };
        if let Some(vq) = &self.virtual_queue {
            check(is_valid_name(vq), "virtualQueue".into(), "must be 1-64 characters of A-Z a-z 0-9 . _ -");
        }
        if let Some(cal) = &self.calendar {
            check(is_valid_name(cal), "calendar".into(), "must be 1-64 characters of A-Z a-z 0-9 . _ -");
        }
        if let Some(tz) = &self.timezone {
            check(
                jiff::tz::TimeZone::get(tz).is_ok(),
                "timezone".into(),
                "must be an IANA time zone such as Europe/Paris",
            );
        }
        check(
            [5, 10, 15, 20, 30, 60, 120].contains(&self.slot_minutes),
            "slotMinutes".into(),
            "must be one of 5, 10, 15, 20, 30, 60, 120",
        );
        for (i, o) in self.capacity_overrides.iter().enumerate() {
            check(
                is_day_range(&o.days),
                format!("capacityOverrides[{i}].days"),
                "must be a day or day range such as Mon-Fri",
            );
            check(is_clock(&o.from), format!("capacityOverrides[{i}].from"), "must be HH:MM");
            check(is_clock(&o.to), format!("capacityOverrides[{i}].to"), "must be HH:MM (24:00 allowed)");
        }
        for (i, e) in self.capacity_exceptions.iter().enumerate() {
            check(is_date(&e.date), format!("capacityExceptions[{i}].date"), "must be YYYY-MM-DD or MM-DD");
            check(is_clock(&e.from), format!("capacityExceptions[{i}].from"), "must be HH:MM");
            check(is_clock(&e.to), format!("capacityExceptions[{i}].to"), "must be HH:MM (24:00 allowed)");
        }
        check(
            parse_max_future(&self.max_future).is_some(),
            "maxFuture".into(),
            "must be <n><unit> with unit y, M, w, d, h or m (e.g. 1M)",
        );
        check(self.per_number_limit.limit >= 1, "perNumberLimit.limit".into(), "must be at least 1");
        check(self.per_number_limit.window_seconds >= 1, "perNumberLimit.windowSeconds".into(), "must be at least 1");
        for (i, r) in self.service_rate_limits.iter().enumerate() {
            check(r.limit >= 1, format!("serviceRateLimits[{i}].limit"), "must be at least 1");
            check(r.window_seconds >= 1, format!("serviceRateLimits[{i}].windowSeconds"), "must be at least 1");
        }
        check(self.max_queued >= 1, "maxQueued".into(), "must be at least 1");
        for (name, rule) in self.retry.rules() {
            let Some(rule) = rule else { continue };
            check(
                (1..=MAX_RETRY_ATTEMPTS).contains(&rule.attempts),
                format!("retry.{name}.attempts"),
                "must be from 1 to 10",
            );
            check(
                !rule.after_seconds.is_empty() && rule.after_seconds.len() <= rule.attempts as usize,
                format!("retry.{name}.afterSeconds"),
                "must list 1 to `attempts` delays (the last one repeats)",
            );
            for (i, s) in rule.after_seconds.iter().enumerate() {
                check(
                    (1..=MAX_RETRY_DELAY_SECONDS).contains(s),
                    format!("retry.{name}.afterSeconds[{i}]"),
                    "must be from 1 second to a year",
                );
            }
        }
        check(
            self.max_dial_attempts.is_none_or(|n| (1..=20).contains(&n)),
            "maxDialAttempts".into(),
            "must be from 1 to 20",
        );
        check(
            self.dial_retry_seconds.is_none_or(|s| (1..=86_400).contains(&s)),
            "dialRetrySeconds".into(),
            "must be from 1 second to a day",
        );
        check(is_region(&self.default_country), "defaultCountry".into(), "must be an ISO 3166 region code such as US");
        for (i, c) in self.allowed_countries.iter().enumerate() {
            check(is_region(c), format!("allowedCountries[{i}]"), "must be an ISO 3166 region code such as US");
        }
        for (i, pat) in self.blocked_patterns.iter().enumerate() {
            let ok = match pat.strip_prefix('/').and_then(|r| r.strip_suffix('/')) {
                Some(re) => regex::Regex::new(re).is_ok(),
                None => pat.starts_with('+') && pat.len() > 1 && pat[1..].bytes().all(|b| b.is_ascii_digit()),
            };
            check(ok, format!("blockedPatterns[{i}]"), "must be a +digits prefix or a /regex/");
        }
        check(
            parse_max_future(&self.max_future).is_none_or(|(n, unit)| n <= max_future_units(unit)),
            "maxFuture".into(),
            "must be at most 10 years",
        );
        // Durations are bounded (counts and limits are not): a huge one overflowed a bigint sum.
        let durations = [
            ("minLeadSeconds", self.min_lead_seconds),
            ("dispatchBufferSeconds", self.dispatch_buffer_seconds),
            ("ackTimeoutSeconds", self.ack_timeout_seconds),
            ("queuedTtlSeconds", self.queued_ttl_seconds),
            ("ttlSeconds", self.ttl_seconds),
            ("perNumberLimit.windowSeconds", self.per_number_limit.window_seconds),
        ];
        for (field, seconds) in durations {
            check(seconds <= MAX_DURATION_SECONDS, field.into(), "must be at most 10 years (315360000 seconds)");
        }
        for (i, r) in self.service_rate_limits.iter().enumerate() {
            check(
                r.window_seconds <= MAX_DURATION_SECONDS,
                format!("serviceRateLimits[{i}].windowSeconds"),
                "must be at most 10 years (315360000 seconds)",
            );
        }
        if let Some(webhook) = self.dispatch.webhook() {
            check(is_valid_name(webhook), "dispatch.webhook".into(), "must be 1-64 characters of A-Z a-z 0-9 . _ -");
        }
        check(self.max_dispatch_attempts >= 1, "maxDispatchAttempts".into(), "must be at least 1");
        check(self.ack_timeout_seconds >= 1, "ackTimeoutSeconds".into(), "must be at least 1");
        check(self.queued_ttl_seconds >= 1, "queuedTtlSeconds".into(), "must be at least 1");
        check(self.ttl_seconds >= 1, "ttlSeconds".into(), "must be at least 1");
        if p.is_empty() {
            Ok(())
        } else {
            Err(p)
        }
    }
}

/// The longest duration a service may configure: 10 years of 365 days (issue 23).
pub const MAX_DURATION_SECONDS: u64 = 10 * 365 * 86_400;

/// How many of `unit` make the 10-year bound of `maxFuture`.
fn max_future_units(unit: char) -> u32 {
    match unit {
        'y' => 10,
        'M' => 120,
        'w' => 521,
        'd' => 3_650,
        'h' => 87_600,
        _ => 5_256_000,
    }
}

/// `1M` → (1, 'M'). Units: y M w d h m.
pub fn parse_max_future(text: &str) -> Option<(u32, char)> {
    let unit = text.chars().last()?;
    if !"yMwdhm".contains(unit) {
        return None;
    }
    let n: u32 = text[..text.len() - 1].parse().ok()?;
    (n >= 1).then_some((n, unit))
}

fn is_region(code: &str) -> bool {
    code.len() == 2 && code.parse::<phonenumber::country::Id>().is_ok()
}

fn is_clock(t: &str) -> bool {
    let Some((h, m)) = t.split_once(':') else { return false };
    let (Ok(h), Ok(m)) = (h.parse::<u32>(), m.parse::<u32>()) else { return false };
    h.to_string().len() <= 2 && m < 60 && (h < 24 || (h == 24 && m == 0)) && t.len() == 5
}

fn is_date(d: &str) -> bool {
    match d.len() {
        10 => jiff::civil::Date::strptime("%Y-%m-%d", d).is_ok(),
        5 => jiff::civil::Date::strptime("%Y-%m-%d", format!("2024-{d}")).is_ok(),
        _ => false,
    }
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

fn is_day_range(text: &str) -> bool {
    text.split('-').all(|d| DAYS.contains(&d)) && (1..=2).contains(&text.split('-').count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_body_gets_every_default_and_the_service_name_as_virtual_queue() {
        let c = ServiceConfig::from_admin_body("sales", json!({})).unwrap();
        assert_eq!(c.virtual_queue.as_deref(), Some("sales"));
        assert_eq!(c.slot_minutes, 5);
        assert_eq!(c.service_rate_limits[1], RateLimit { limit: 1000, window_seconds: 3600 });
        let out = serde_json::to_value(&c).unwrap();
        assert_eq!(out["inQueueChecking"], "false");
        assert_eq!(out["maxFuture"], "1M");
    }

    #[test]
    fn ges_option_names_are_aliases() {
        let c = ServiceConfig::from_admin_body(
            "s",
            json!({ "_throttle_callbacks_per_service_1": "20", "_throttle_ttl_2": 60,
                    "_request_time_bucket": "15", "_enable_in_queue_checking": "strict",
                    "_vq": "SalesVQ", "_immediate_enabled": "false" }),
        )
        .unwrap();
        assert_eq!(c.service_rate_limits[0], RateLimit { limit: 20, window_seconds: 300 });
        assert_eq!(c.service_rate_limits[1], RateLimit { limit: 1000, window_seconds: 60 });
        assert_eq!(c.slot_minutes, 15);
        assert_eq!(c.in_queue_checking, InQueueChecking::Strict);
        assert_eq!(c.virtual_queue.as_deref(), Some("SalesVQ"));
        assert!(!c.immediate_enabled);
    }

    #[test]
    fn errors_name_the_field_path() {
        let e = ServiceConfig::from_admin_body("s", json!({ "slotMinutes": 7 })).unwrap_err();
        assert_eq!(e[0].field, "slotMinutes");
        let e =
            ServiceConfig::from_admin_body("s", json!({ "serviceRateLimits": [{ "limit": 0, "windowSeconds": 5 }] }))
                .unwrap_err();
        assert_eq!(e[0].field, "serviceRateLimits[0].limit");
        let e = ServiceConfig::from_admin_body("s", json!({ "slotCapacty": 3 })).unwrap_err();
        assert!(e[0].problem.contains("slotCapacty"), "{e:?}");
        let e = ServiceConfig::from_admin_body(
            "s",
            json!({ "capacityOverrides": [{ "days": "Mon-Fri", "from": "9", "to": "12:00", "capacity": 1 }] }),
        )
        .unwrap_err();
        assert_eq!(e[0].field, "capacityOverrides[0].from");
        let e = ServiceConfig::from_admin_body("s", json!({ "slotCapacity": "x" })).unwrap_err();
        assert_eq!(e[0].field, "slotCapacity");
        let e = ServiceConfig::from_admin_body("s", json!({ "timezone": "Mars/Base", "maxFuture": "2q" })).unwrap_err();
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn durations_are_bounded_at_ten_years_and_limits_are_not() {
        let e =
            ServiceConfig::from_admin_body("s", json!({ "queuedTtlSeconds": 9_000_000_000_000_000u64 })).unwrap_err();
        assert_eq!(e[0].field, "queuedTtlSeconds");
        let e = ServiceConfig::from_admin_body("s", json!({ "queuedTtlSeconds": 9e15 })).unwrap_err();
        assert_eq!(e[0].field, "queuedTtlSeconds");
        let e = ServiceConfig::from_admin_body("s", json!({ "maxFuture": "11y" })).unwrap_err();
        assert_eq!(e[0].field, "maxFuture");
        let e = ServiceConfig::from_admin_body(
            "s",
            json!({ "serviceRateLimits": [{ "limit": 5, "windowSeconds": 400_000_000 }] }),
        )
        .unwrap_err();
        assert_eq!(e[0].field, "serviceRateLimits[0].windowSeconds");
        let ok = json!({ "ttlSeconds": MAX_DURATION_SECONDS, "maxFuture": "10y", "maxQueued": 1_000_000_000,
            "perNumberLimit": { "limit": 1_000_000_000, "windowSeconds": 60 } });
        assert!(ServiceConfig::from_admin_body("s", ok).is_ok());
    }
}
