//! The booking decision (domain.md § Booking a callback): what kind of callback a request makes,
//! when it falls due, and the refusals that need no I/O. Throttles and capacity, which need shared
//! counters, are applied after this by the store and coordination layers.

use jiff::{tz::TimeZone, Span, Timestamp};
use serde_json::{Map, Value};

use crate::domain::calendar::Hours;
use crate::domain::callback::{Kind, State};
use crate::domain::capacity::Grid;
use crate::domain::phone::{PhoneRejection, PhoneRules, E164};
use crate::domain::service::{parse_max_future, ServiceConfig};
use crate::error::{ApiError, FieldProblem, Reason};
use crate::time::{Millis, Moment};

/// An `Idempotency-Key` still "in progress" this long after it began belongs to a request that can
/// no longer commit (its deadline, a statement timeout and a read-back are validated to fit well
/// inside it: `config`): a retry may take it over.
pub const IDEMPOTENCY_TAKEOVER: Millis = Millis::from_ms(60_000);

/// A create request after field validation (types are right, required fields present).
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub service_name: String,
    pub phone_raw: String,
    pub desired_ms: Option<Moment>,
    pub priority: Option<i64>,
    pub always_check_capacity: bool,
    /// Reporting and routing fields stored as given (`language`, `channel`, `userData`, ...).
    pub details: Map<String, Value>,
}

/// A service's rules as booking needs them: its configuration, office hours and bucket zone.
#[derive(Debug, Clone)]
pub struct ServiceRules<'a> {
    pub config: &'a ServiceConfig,
    pub hours: Hours<'a>,
    /// The zone of the capacity buckets: the service's, else its calendar's, else UTC.
    pub tz: TimeZone,
}

impl<'a> ServiceRules<'a> {
    pub fn grid(&self) -> Grid<'a> {
        Grid::new(self.tz.clone(), self.config)
    }

    /// Bookable instants: from now + `minLeadSeconds` to now + `maxFuture`.
    pub fn bookable_range(&self, now: Moment) -> (Moment, Moment) {
        let earliest = now.saturating_add(Millis::from_secs(self.config.min_lead_seconds));
        (earliest, max_future(&self.config.max_future, now).unwrap_or(Moment::MAX))
    }
}

/// A capacity bucket the booking must reserve, atomically with its insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapacityClaim {
    pub bucket_start: Moment,
    pub capacity: u32,
}

/// What the store must write for an accepted booking.
#[derive(Debug, Clone)]
pub struct Booking {
    pub kind: Kind,
    pub phone: E164,
    pub desired_ms: Moment,
    /// When the monitor should hand it over (`desiredTime − dispatchBuffer`).
    pub due_ms: Moment,
    pub initial_state: State,
    pub priority: i64,
    /// Immediate callbacks are inserted already claimed for hand-off (attempt 1).
    pub claimed: bool,
    pub capacity: Option<CapacityClaim>,
    /// An immediate request outside office hours, moved to the next opening.
    pub deferred: bool,
}

/// Booking steps 2 and 3 (kind, fields, phone, time and office hours). A `SLOT_FULL` refusal
/// here (a closed time) carries no slots; the caller proposes them.
pub fn decide(req: &CreateRequest, rules: &ServiceRules<'_>, now: Moment) -> Result<Booking, ApiError> {
    let config = rules.config;
    let kind = match req.desired_ms {
        Some(t) if t > now => Kind::Scheduled,
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
    let grid = rules.grid();
    let claim_at =
        |t: Moment| grid.bucket_at(t).map(|b| CapacityClaim { bucket_start: b.start, capacity: grid.capacity(&b) });
    let mut booking = Booking {
        kind,
        phone,
        desired_ms: now,
        due_ms: now,
        initial_state: State::Queued,
        priority: req.priority.unwrap_or(config.priority),
        claimed: true,
        capacity: None,
        deferred: false,
    };
    match kind {
        Kind::Immediate => {
            if !rules.hours.is_open(now) {
                if config.reject_out_of_office_hours {
                    return Err(ApiError::new(
                        Reason::OfficeClosed,
                        "the office is closed now and this service does not take requests out of hours",
                    ));
                }
                let opening = rules.hours.next_opening(now).ok_or_else(|| {
                    ApiError::new(Reason::OfficeClosed, "the office has no opening hours in the coming year")
                })?;
                booking.desired_ms = opening;
                booking.due_ms = opening;
                booking.initial_state = State::Scheduled;
                booking.claimed = false;
                booking.deferred = true;
            }
            // With alwaysCheckCapacity, a desiredTime not in the future takes the acceptance time's bucket.
            if req.always_check_capacity && req.desired_ms.is_some() {
                booking.capacity = claim_at(now);
            }
        }
        Kind::Scheduled => {
            let desired = req.desired_ms.unwrap_or(now);
            let (due, claim) = scheduled_slot(desired, rules, now)?;
            booking.desired_ms = desired;
            booking.due_ms = due;
            booking.initial_state = State::Scheduled;
            booking.claimed = false;
            booking.capacity = claim;
        }
    }
    if booking.capacity.is_some_and(|c| c.capacity == 0) {
        return Err(no_capacity());
    }
    Ok(booking)
}

fn no_capacity() -> ApiError {
    ApiError::new(Reason::SlotFull, "that time slot has no capacity; see data.slots for open times")
}

/// The time rules of a scheduled time (create and reschedule): the bookable window, office
/// hours, and the bucket it takes. Returns when it falls due and the capacity claim.
pub fn scheduled_slot(
    desired: Moment,
    rules: &ServiceRules<'_>,
    now: Moment,
) -> Result<(Moment, Option<CapacityClaim>), ApiError> {
    let config = rules.config;
    check_time_window(desired, config, now)?;
    if !rules.hours.is_open(desired) {
        if config.reject_out_of_office_hours {
            return Err(ApiError::new(
                Reason::OfficeClosed,
                "the office is closed at desiredTime and this service does not take requests out of hours",
            ));
        }
        // Closed time has no capacity.
        return Err(ApiError::new(
            Reason::SlotFull,
            "the office is closed at desiredTime; see data.slots for open times",
        ));
    }
    let grid = rules.grid();
    let claim = grid.bucket_at(desired).map(|b| CapacityClaim { bucket_start: b.start, capacity: grid.capacity(&b) });
    if claim.is_some_and(|c| c.capacity == 0) {
        return Err(no_capacity());
    }
    let buffer = Millis::from_secs(config.dispatch_buffer_seconds);
    Ok((desired.saturating_sub(buffer).max(now), claim))
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
pub fn check_time_window(desired: Moment, config: &ServiceConfig, now: Moment) -> Result<(), ApiError> {
    if desired < now.saturating_add(Millis::from_secs(config.min_lead_seconds)) {
        return Err(ApiError::new(
            Reason::TimeOutOfRange,
            format!("desiredTime must be at least {} seconds ahead", config.min_lead_seconds),
        ));
    }
    if let Some(latest) = max_future(&config.max_future, now) {
        if desired > latest {
            return Err(ApiError::new(
                Reason::TimeOutOfRange,
                format!("desiredTime is beyond the furthest bookable time ({} ahead)", config.max_future),
            ));
        }
    }
    Ok(())
}

/// The furthest bookable instant: now plus `maxFuture` on the UTC calendar (`1M` = one month).
pub fn max_future(max_future: &str, now: Moment) -> Option<Moment> {
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
    let now = Timestamp::from_millisecond(now.as_ms()).ok()?.to_zoned(TimeZone::UTC);
    now.checked_add(span).ok().map(|z| Moment::from_timestamp(z.timestamp()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::domain::calendar::{Calendar, CalendarBody};

    const NOW: Moment = Moment::from_ms(1_795_000_000_000);

    fn decide(req: &CreateRequest, config: &ServiceConfig, now: Moment) -> Result<Booking, ApiError> {
        super::decide(req, &ServiceRules { config, hours: Hours::AlwaysOpen, tz: TimeZone::UTC }, now)
    }

    fn office(regular: &str) -> Calendar {
        Calendar::parse(&CalendarBody {
            timezone: "UTC".into(),
            regular: vec![regular.into()],
            special: vec![],
            holidays: vec![],
            effective: vec![],
        })
        .unwrap()
    }

    fn ms(text: &str) -> Moment {
        Moment::from_timestamp(text.parse::<Timestamp>().unwrap())
    }

    #[test]
    fn immediate_request_out_of_hours_is_deferred_to_the_next_opening_or_rejected() {
        let cal = office("Mon-Fri 09:00-17:00");
        let saturday = ms("2026-11-21T11:00:00Z");
        let config = ServiceConfig::default();
        let rules = ServiceRules { config: &config, hours: Hours::Calendar(&cal), tz: TimeZone::UTC };
        let b = super::decide(&req(None), &rules, saturday).unwrap();
        assert!(b.deferred);
        assert_eq!(b.initial_state, State::Scheduled);
        assert_eq!(b.desired_ms, ms("2026-11-23T09:00:00Z"), "Monday's opening");
        assert!(b.capacity.is_none(), "deferred immediate requests take no capacity");
        let open = super::decide(&req(None), &rules, ms("2026-11-23T10:00:00Z")).unwrap();
        assert!(!open.deferred && open.claimed);
        let strict = ServiceConfig { reject_out_of_office_hours: true, ..Default::default() };
        let rules = ServiceRules { config: &strict, hours: Hours::Calendar(&cal), tz: TimeZone::UTC };
        assert_eq!(super::decide(&req(None), &rules, saturday).unwrap_err().reason, Reason::OfficeClosed);
    }

    #[test]
    fn scheduled_request_for_a_closed_time_is_slot_full_and_open_time_claims_its_bucket() {
        let cal = office("Mon-Fri 09:00-17:00");
        let config = ServiceConfig { slot_minutes: 30, ..Default::default() };
        let rules = ServiceRules { config: &config, hours: Hours::Calendar(&cal), tz: TimeZone::UTC };
        let now = ms("2026-11-23T07:00:00Z");
        let closed = super::decide(&req(Some(ms("2026-11-23T08:00:00Z"))), &rules, now).unwrap_err();
        assert_eq!(closed.reason, Reason::SlotFull);
        let b = super::decide(&req(Some(ms("2026-11-23T10:05:00Z"))), &rules, now).unwrap();
        assert_eq!(b.capacity, Some(CapacityClaim { bucket_start: ms("2026-11-23T10:00:00Z"), capacity: 100 }));
    }

    fn req(desired: Option<Moment>) -> CreateRequest {
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
        let b = decide(&req(Some(NOW - Millis::from_ms(5))), &ServiceConfig::default(), NOW).unwrap();
        assert_eq!(b.kind, Kind::Immediate);
    }

    #[test]
    fn future_desired_time_is_scheduled_and_due_early_by_the_dispatch_buffer() {
        let config = ServiceConfig { dispatch_buffer_seconds: 60, priority: 3, ..Default::default() };
        let b = decide(&req(Some(NOW + Millis::from_ms(3_600_000))), &config, NOW).unwrap();
        assert_eq!((b.kind, b.initial_state, b.claimed), (Kind::Scheduled, State::Scheduled, false));
        assert_eq!(b.due_ms, NOW + Millis::from_ms(3_600_000 - 60_000));
        assert_eq!(b.priority, 3);
    }

    #[test]
    fn disabled_kinds_are_refused() {
        let no_immediate = ServiceConfig { immediate_enabled: false, ..Default::default() };
        assert_eq!(decide(&req(None), &no_immediate, NOW).unwrap_err().reason, Reason::KindDisabled);
        let no_scheduled = ServiceConfig { scheduled_enabled: false, ..Default::default() };
        assert_eq!(
            decide(&req(Some(NOW + Millis::from_ms(1000))), &no_scheduled, NOW).unwrap_err().reason,
            Reason::KindDisabled
        );
    }

    #[test]
    fn max_future_and_min_lead_bound_scheduled_times() {
        let config = ServiceConfig { max_future: "2d".into(), min_lead_seconds: 600, ..Default::default() };
        let too_soon = decide(&req(Some(NOW + Millis::from_ms(60_000))), &config, NOW).unwrap_err();
        assert_eq!(too_soon.reason, Reason::TimeOutOfRange);
        let too_far = decide(&req(Some(NOW + Millis::from_ms(3 * 86_400_000))), &config, NOW).unwrap_err();
        assert_eq!(too_far.reason, Reason::TimeOutOfRange);
        assert!(decide(&req(Some(NOW + Millis::from_ms(86_400_000))), &config, NOW).is_ok());
        assert_eq!(max_future("1h", NOW), Some(NOW + Millis::from_ms(3_600_000)));
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
