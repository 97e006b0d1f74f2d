//! The booking decision (domain.md § Booking a callback): what kind of callback a request makes,
//! when it falls due, and the refusals that need no I/O. Throttles and capacity, which need shared
//! counters, are applied after this by the store and coordination layers.

use jiff::{tz::TimeZone, Span, Timestamp};
use serde_json::{Map, Value};

use crate::domain::callback::{Kind, State};
use crate::domain::phone::{PhoneRejection, PhoneRules, E164};
use crate::domain::service::{parse_max_future, ServiceConfig};
use crate::error::{ApiError, FieldProblem, Reason};

/// A create request after field validation (types are right, required fields present).
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub service_name: String,
    pub phone_raw: String,
    pub desired_ms: Option<i64>,
    pub priority: Option<i64>,
    pub always_check_capacity: bool,
    /// Reporting and routing fields stored as given (`language`, `channel`, `userData`, ...).
    pub details: Map<String, Value>,
}

/// What the store must write for an accepted booking.
#[derive(Debug, Clone)]
pub struct Booking {
    pub kind: Kind,
    pub phone: E164,
    pub desired_ms: i64,
    /// When the monitor should hand it over (`desiredTime − dispatchBuffer`).
    pub due_ms: i64,
    pub initial_state: State,
    pub priority: i64,
    /// Immediate callbacks are inserted already claimed for hand-off (attempt 1).
    pub claimed: bool,
}

pub fn decide(req: &CreateRequest, config: &ServiceConfig, now_ms: i64) -> Result<Booking, ApiError> {
    let kind = match req.desired_ms {
        Some(t) if t > now_ms => Kind::Scheduled,
        _ => Kind::Immediate,
    };
    match kind {
        Kind::Immediate if !config.immediate_enabled => {
            return Err(ApiError::new(
                Reason::KindDisabled,
                "this service does not take immediate callbacks; send a future desiredTime",
            ));
        }
        Kind::Scheduled if !config.scheduled_enabled => {
            return Err(ApiError::new(
                Reason::KindDisabled,
                "this service does not take scheduled callbacks; omit desiredTime",
            ));
        }
        _ => {}
    }
    let phone = parse_phone(&req.phone_raw, config)?;
    let (desired_ms, due_ms) = match kind {
        Kind::Immediate => (now_ms, now_ms),
        Kind::Scheduled => {
            let desired = req.desired_ms.unwrap_or(now_ms);
            check_time_window(desired, config, now_ms)?;
            let buffer_ms = (config.dispatch_buffer_seconds as i64).saturating_mul(1000);
            (desired, (desired - buffer_ms).max(now_ms))
        }
    };
    Ok(Booking {
        kind,
        phone,
        desired_ms,
        due_ms,
        initial_state: if kind == Kind::Immediate { State::Queued } else { State::Scheduled },
        priority: req.priority.unwrap_or(config.priority),
        claimed: kind == Kind::Immediate,
    })
}

pub fn parse_phone(raw: &str, config: &ServiceConfig) -> Result<E164, ApiError> {
    let rules = PhoneRules {
        default_country: &config.default_country,
        disallow_impossible: config.disallow_impossible_numbers,
        disallow_premium: config.disallow_premium_numbers,
        allowed_countries: &config.allowed_countries,
        blocked_patterns: &config.blocked_patterns,
    };
    E164::parse(raw, &rules).map_err(|rejection| {
        let (reason, message) = match rejection {
            PhoneRejection::Invalid(m) => (Reason::InvalidPhoneNumber, m),
            PhoneRejection::Premium(m) => (Reason::PremiumNumber, m),
            PhoneRejection::NotAllowed(m) => (Reason::NumberNotAllowed, m),
        };
        ApiError { details: vec![FieldProblem::new("phoneNumber", message.clone())], ..ApiError::new(reason, message) }
    })
}

/// `maxFuture` and `minLeadSeconds` for a scheduled time.
pub fn check_time_window(desired_ms: i64, config: &ServiceConfig, now_ms: i64) -> Result<(), ApiError> {
    let lead_ms = (config.min_lead_seconds as i64).saturating_mul(1000);
    if desired_ms < now_ms + lead_ms {
        return Err(ApiError::new(
            Reason::TimeOutOfRange,
            format!("desiredTime must be at least {} seconds ahead", config.min_lead_seconds),
        ));
    }
    if let Some(latest) = max_future_ms(&config.max_future, now_ms) {
        if desired_ms > latest {
            return Err(ApiError::new(
                Reason::TimeOutOfRange,
                format!("desiredTime is beyond the furthest bookable time ({} ahead)", config.max_future),
            ));
        }
    }
    Ok(())
}

/// The furthest bookable instant: now plus `maxFuture` on the UTC calendar (`1M` = one month).
pub fn max_future_ms(max_future: &str, now_ms: i64) -> Option<i64> {
    let (n, unit) = parse_max_future(max_future)?;
    let n = i64::from(n);
    let span = match unit {
        'y' => Span::new().try_years(n).ok()?,
        'M' => Span::new().try_months(n).ok()?,
        'w' => Span::new().try_weeks(n).ok()?,
        'd' => Span::new().try_days(n).ok()?,
        'h' => Span::new().try_hours(n).ok()?,
        _ => Span::new().try_minutes(n).ok()?,
    };
    let now = Timestamp::from_millisecond(now_ms).ok()?.to_zoned(TimeZone::UTC);
    now.checked_add(span).ok().map(|z| z.timestamp().as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_000_000_000;

    fn req(desired: Option<i64>) -> CreateRequest {
        CreateRequest {
            service_name: "s".into(),
            phone_raw: "+14155552671".into(),
            desired_ms: desired,
            priority: None,
            always_check_capacity: false,
            details: Map::new(),
        }
    }

    #[test]
    fn absent_or_past_desired_time_is_an_immediate_claimed_booking() {
        let b = decide(&req(None), &ServiceConfig::default(), NOW).unwrap();
        assert_eq!((b.kind, b.initial_state, b.claimed, b.desired_ms), (Kind::Immediate, State::Queued, true, NOW));
        let b = decide(&req(Some(NOW - 5)), &ServiceConfig::default(), NOW).unwrap();
        assert_eq!(b.kind, Kind::Immediate);
    }

    #[test]
    fn future_desired_time_is_scheduled_and_due_early_by_the_dispatch_buffer() {
        let config = ServiceConfig { dispatch_buffer_seconds: 60, priority: 3, ..Default::default() };
        let b = decide(&req(Some(NOW + 3_600_000)), &config, NOW).unwrap();
        assert_eq!((b.kind, b.initial_state, b.claimed), (Kind::Scheduled, State::Scheduled, false));
        assert_eq!(b.due_ms, NOW + 3_600_000 - 60_000);
        assert_eq!(b.priority, 3);
    }

    #[test]
    fn disabled_kinds_are_refused() {
        let no_immediate = ServiceConfig { immediate_enabled: false, ..Default::default() };
        assert_eq!(decide(&req(None), &no_immediate, NOW).unwrap_err().reason, Reason::KindDisabled);
        let no_scheduled = ServiceConfig { scheduled_enabled: false, ..Default::default() };
        assert_eq!(decide(&req(Some(NOW + 1000)), &no_scheduled, NOW).unwrap_err().reason, Reason::KindDisabled);
    }

    #[test]
    fn max_future_and_min_lead_bound_scheduled_times() {
        let config = ServiceConfig { max_future: "2d".into(), min_lead_seconds: 600, ..Default::default() };
        let too_soon = decide(&req(Some(NOW + 60_000)), &config, NOW).unwrap_err();
        assert_eq!(too_soon.reason, Reason::TimeOutOfRange);
        let too_far = decide(&req(Some(NOW + 3 * 86_400_000)), &config, NOW).unwrap_err();
        assert_eq!(too_far.reason, Reason::TimeOutOfRange);
        assert!(decide(&req(Some(NOW + 86_400_000)), &config, NOW).is_ok());
        assert_eq!(max_future_ms("1h", NOW), Some(NOW + 3_600_000));
    }

    #[test]
    fn phone_refusals_carry_their_reason_and_the_field() {
        let mut r = req(None);
        r.phone_raw = "+19005550123".into();
        let e = decide(&r, &ServiceConfig::default(), NOW).unwrap_err();
        assert_eq!(e.reason, Reason::PremiumNumber);
        assert_eq!(e.details[0].field, "phoneNumber");
    }
}
