//! `GET /callbacks/availability/{service-name}` and `GET /callbacks/open-for/{service-name}`.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::error::{ApiError, FieldProblem, Reason};
use crate::http::envelope;
use crate::http::extractors::ApiKeyAuth;
use crate::ops::availability;
use crate::ops::service_context;
use crate::ops::AppState;
use crate::store::Tenant;
use crate::time::{format_utc, Millis, Moment, DAY};

const MAX_RANGE: Millis = Millis::from_ms(31 * DAY.as_ms());

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlotView {
    /// The slot's first open instant, UTC.
    pub utc_time: String,
    /// The same instant in `timezone`, with its offset.
    pub local_time: String,
    /// Places still free.
    pub capacity: u32,
    /// Places the slot holds.
    pub total: u32,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AvailabilityData {
    pub slots: Vec<SlotView>,
    pub duration_min: u32,
    pub timezone: String,
}

#[derive(Debug)]
struct Query {
    start: Moment,
    end: Moment,
    tz: TimeZone,
    tz_name: String,
    max_slots: Option<usize>,
    report_busy: bool,
}

fn params(query: &str) -> HashMap<String, String> {
    form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn zone(p: &HashMap<String, String>) -> Result<(TimeZone, String), ApiError> {
    let name = p.get("timezone").cloned().unwrap_or_else(|| "UTC".to_string());
    TimeZone::get(&name)
        .map(|tz| (tz, name))
        .map_err(|_| ApiError::field("timezone", "must be an IANA time zone such as America/New_York"))
}

/// An instant with a zone, or a local date-time or date read in `tz`.
fn instant_in(field: &str, text: &str, tz: &TimeZone) -> Result<Moment, ApiError> {
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(Moment::from_timestamp(t));
    }
    let local = text.parse::<DateTime>().or_else(|_| text.parse::<Date>().map(|d| d.at(0, 0, 0, 0))).map_err(|_| {
        ApiError::field(
            field,
            format!("'{}' is not an ISO 8601 date or time", text.chars().take(40).collect::<String>()),
        )
    })?;
    tz.to_ambiguous_timestamp(local)
        .compatible()
        .map(Moment::from_timestamp)
        .map_err(|_| ApiError::field(field, "is out of range"))
}

fn ms_param(p: &HashMap<String, String>, field: &str) -> Result<Option<Moment>, ApiError> {
    // Only instants a calendar can hold (years -9999 to 9999), so later arithmetic cannot overflow.
    p.get(field)
        .map(|v| {
            v.parse::<i64>()
                .ok()
                .filter(|ms| Timestamp::from_millisecond(*ms).is_ok())
                .map(Moment::from_ms)
                .ok_or_else(|| ApiError::field(field, "must be epoch milliseconds between the years -9999 and 9999"))
        })
        .transpose()
}

/// The start of the local day `days` after the one containing `t`.
fn local_midnight_after(t: Moment, days: i64, tz: &TimeZone) -> Result<Moment, ApiError> {
    let date = Timestamp::from_millisecond(t.as_ms())
        .map_err(|_| ApiError::field("start", "is out of range"))?
        .to_zoned(tz.clone())
        .date();
    // `Span::days` panics past ±7,304,484 days (any tenant could raise UNCAUGHT_EXCEPTION at
    // will): the checked form answers beyond-range counts as the 31-day limit does.
    let target = jiff::Span::new()
        .try_days(days)
        .ok()
        .and_then(|span| date.checked_add(span).ok())
        .ok_or_else(range_too_long)?;
    tz.to_ambiguous_timestamp(target.at(0, 0, 0, 0))
        .compatible()
        .map(Moment::from_timestamp)
        .map_err(|_| ApiError::field("end", "is out of range"))
}

fn range_too_long() -> ApiError {
    ApiError {
        details: vec![FieldProblem::new("end", "the range may span at most 31 days")],
        ..ApiError::new(Reason::TimeOutOfRange, "the availability range may span at most 31 days")
    }
}

fn parse_query(query: &str, now: Moment) -> Result<Query, ApiError> {
    let p = params(query);
    let (tz, tz_name) = zone(&p)?;
    let start = match (p.get("start"), ms_param(&p, "startMS")?) {
        (Some(_), Some(_)) => return Err(ApiError::field("start", "send start or startMS, not both")),
        (Some(s), None) => instant_in("start", s, &tz)?,
        (None, Some(ms)) => ms,
        (None, None) => now,
    };
    let days = p
        .get("numberOfDays")
        .map(|v| {
            v.parse::<i64>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| ApiError::field("numberOfDays", "must be a whole number of at least 1"))
        })
        .transpose()?;
    let end_ms = ms_param(&p, "endMS")?;
    let given = [p.contains_key("end"), end_ms.is_some(), days.is_some()].iter().filter(|g| **g).count();
    if given > 1 {
        return Err(ApiError::field("end", "send at most one of end, endMS and numberOfDays"));
    }
    let end = match (p.get("end"), end_ms, days) {
        (Some(e), _, _) => instant_in("end", e, &tz)?,
        (_, Some(ms), _) => ms,
        (_, _, Some(n)) => local_midnight_after(start, n, &tz)?,
        _ => local_midnight_after(start, 1, &tz)?,
    };
    if end <= start {
        return Err(ApiError::field("end", "must be after start"));
    }
    // Saturating: startMS and endMS may be anywhere in i64.
    if Millis::from_ms(end.as_ms().saturating_sub(start.as_ms())) > MAX_RANGE {
        return Err(range_too_long());
    }
    let max_slots = p
        .get("maxTimeSlots")
        .map(|v| {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| ApiError::field("maxTimeSlots", "must be a whole number of at least 1"))
        })
        .transpose()?;
    let report_busy = match p.get("reportBusy").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::field("reportBusy", "must be true or false")),
    };
    Ok(Query { start, end, tz, tz_name, max_slots, report_busy })
}

fn local_text(at: Moment, tz: &TimeZone) -> String {
    Timestamp::from_millisecond(at.as_ms())
        .map(|t| t.to_zoned(tz.clone()).strftime("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string())
        .unwrap_or_default()
}

/// Open slots of a service with their free places.
#[utoipa::path(get, path = "/engagement/v3/callbacks/availability/{service-name}", tag = "callbacks",
    params(("service-name" = String, Path),
        ("start" = Option<String>, Query, description = "ISO 8601; zone-less values are read in `timezone`; default now"),
        ("startMS" = Option<i64>, Query), ("end" = Option<String>, Query), ("endMS" = Option<i64>, Query),
        ("numberOfDays" = Option<i64>, Query, description = "At most one of end, endMS, numberOfDays; none = end of the start day"),
        ("timezone" = Option<String>, Query, description = "IANA zone, default UTC"),
        ("maxTimeSlots" = Option<usize>, Query), ("reportBusy" = Option<bool>, Query, description = "Also list full slots")),
    responses((status = 200, body = AvailabilityData), (status = 400, description = "Unknown service, bad parameter, or a range over 31 days")),
    security(("api_key" = [])))]
pub async fn availability(
    state: web::Data<AppState>,
    auth: ApiKeyAuth,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    Ok(envelope::ok(open_slots(&state, &auth.tenant, &path, req.query_string()).await?))
}

/// A service's open slots as the public availability answers them (the admin API's
/// `services/{name}/availability` answers the same for an operator rescheduling a callback).
pub async fn open_slots(
    state: &AppState,
    tenant: &Tenant,
    service: &str,
    query: &str,
) -> Result<AvailabilityData, ApiError> {
    let now = crate::time::now();
    let service = service_context::load(&state.store, &state.services, tenant, service).await?;
    let q = parse_query(query, now)?;
    let mut views = Vec::new();
    for slot in availability::slot_use(state, tenant, &service, q.start, q.end, now).await? {
        let left = slot.left();
        if left == 0 && !q.report_busy {
            continue;
        }
        views.push(SlotView {
            utc_time: format_utc(slot.offered),
            local_time: local_text(slot.offered, &q.tz),
            capacity: left,
            total: slot.total,
        });
        if q.max_slots.is_some_and(|m| views.len() >= m) {
            break;
        }
    }
    let duration_min = service.rules().config.slot_minutes;
    Ok(AvailabilityData { slots: views, duration_min, timezone: q.tz_name })
}

/// Seconds until the office closes (0 when closed). The name may be a service or a calendar.
#[utoipa::path(get, path = "/engagement/v3/callbacks/open-for/{service-name}", tag = "callbacks",
    params(("service-name" = String, Path, description = "A callback service or a calendar of the tenant"),
        ("start" = Option<String>, Query), ("timezone" = Option<String>, Query)),
    responses((status = 200, description = "data.openFor in seconds")),
    security(("api_key" = [])))]
pub async fn open_for(
    state: web::Data<AppState>,
    auth: ApiKeyAuth,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let p = params(req.query_string());
    let (tz, _) = zone(&p)?;
    let start = match p.get("start") {
        Some(s) => instant_in("start", s, &tz)?,
        None => crate::time::now(),
    };
    let seconds = availability::open_for(&state, &auth.tenant, &path, start).await?;
    Ok(envelope::ok(json!({ "openFor": seconds })))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Moment = Moment::from_ms(1_795_000_000_000);

    #[test]
    fn default_range_is_the_rest_of_the_start_day_in_the_zone() {
        let q = parse_query("start=2026-11-24T10:00:00&timezone=America/New_York", NOW).unwrap();
        assert_eq!(format_utc(q.start), "2026-11-24T15:00:00.000Z");
        assert_eq!(format_utc(q.end), "2026-11-25T05:00:00.000Z");
        let q = parse_query("startMS=1795000000000&numberOfDays=2", NOW).unwrap();
        assert_eq!(format_utc(q.end), "2026-11-20T00:00:00.000Z");
    }

    #[test]
    fn conflicting_or_oversized_ranges_are_refused() {
        assert_eq!(parse_query("end=2026-11-25T00:00:00Z&numberOfDays=1", NOW).unwrap_err().details[0].field, "end");
        assert_eq!(parse_query("numberOfDays=32", NOW).unwrap_err().reason, Reason::TimeOutOfRange);
        // Found by fuzzing (issue 13): a panic in Span::days and an overflowing subtraction.
        assert_eq!(parse_query("numberOfDays=9999999", NOW).unwrap_err().reason, Reason::TimeOutOfRange);
        assert_eq!(parse_query(&format!("numberOfDays={}", i64::MAX), NOW).unwrap_err().reason, Reason::TimeOutOfRange);
        let extremes = format!("startMS={}&endMS={}", i64::MIN, i64::MAX);
        assert_eq!(parse_query(&extremes, NOW).unwrap_err().details[0].field, "startMS");
        let near_min = format!("startMS={}&endMS={}", i64::MIN, i64::MIN + 1000);
        assert_eq!(parse_query(&near_min, NOW).unwrap_err().details[0].field, "startMS");
        assert_eq!(parse_query("timezone=Nowhere/Land", NOW).unwrap_err().details[0].field, "timezone");
        assert_eq!(parse_query("maxTimeSlots=0", NOW).unwrap_err().details[0].field, "maxTimeSlots");
        assert_eq!(parse_query("start=2026-11-24T00:00:00Z&startMS=1", NOW).unwrap_err().details[0].field, "start");
    }
}
