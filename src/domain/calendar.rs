//! Office-hours calendars (domain.md § Office hours): weekly hours, special days, holidays and
//! effective ranges, evaluated in the calendar's IANA zone. Everything is reduced to one query —
//! the open intervals (UTC epoch ms) in a range — from which "is open", "next opening",
//! "open for" and bucket openness follow.
//!
//! DST: local times are turned into instants with jiff's `compatible` rule (a time in a gap is
//! read with the offset before the change, a repeated time takes its first occurrence), the rule
//! of RFC 5545 and Temporal, so every calendar has one deterministic reading.

use jiff::civil::{Date, DateTime, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::FieldProblem;
use crate::time::{Millis, Moment, DAY};

/// The calendar body of the admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CalendarBody {
    pub timezone: String,
    #[serde(default)]
    pub regular: Vec<String>,
    #[serde(default)]
    pub special: Vec<SpecialBody>,
    #[serde(default)]
    pub holidays: Vec<String>,
    #[serde(default)]
    pub effective: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecialBody {
    pub date: String,
    /// `[]` = closed that day.
    pub hours: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DateSpec {
    Dated(Date),
    /// `MM-DD`, every year.
    Yearly(i8, i8),
}

impl DateSpec {
    fn matches(self, date: Date) -> bool {
        match self {
            DateSpec::Dated(d) => d == date,
            DateSpec::Yearly(m, d) => date.month() == m && date.day() == d,
        }
    }
}

/// Minutes after local midnight; `end <= start` wraps past midnight (belongs to the start day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    start: i32,
    end: i32,
}

#[derive(Debug, Clone)]
struct Regular {
    /// Monday first.
    days: [bool; 7],
    ranges: Vec<Range>,
}

#[derive(Debug, Clone)]
struct Special {
    date: DateSpec,
    ranges: Vec<Range>,
}

#[derive(Debug, Clone)]
pub struct Calendar {
    tz: TimeZone,
    regular: Vec<Regular>,
    special: Vec<Special>,
    holidays: Vec<DateSpec>,
    effective: Vec<(Date, Date)>,
}

const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

pub fn parse_clock(text: &str) -> Option<i32> {
    let (h, m) = text.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m) || (h == 24 && m == 0)).then_some(h * 60 + m)
}

fn parse_range(text: &str) -> Result<Range, String> {
    let (a, b) = text.split_once('-').ok_or_else(|| format!("'{text}' is not a time range like 09:00-17:00"))?;
    let start = parse_clock(a).filter(|m| *m < 1440).ok_or_else(|| format!("'{a}' is not a time HH:MM"))?;
    let end = parse_clock(b).ok_or_else(|| format!("'{b}' is not a time HH:MM (24:00 allowed)"))?;
    if start == end {
        return Err(format!("'{text}' is empty; use 00:00-24:00 for all day"));
    }
    Ok(Range { start, end })
}

fn parse_ranges(texts: &[&str]) -> Result<Vec<Range>, String> {
    texts.iter().map(|t| parse_range(t)).collect()
}

pub fn parse_weekday(text: &str) -> Option<usize> {
    DAY_NAMES.iter().position(|d| d.eq_ignore_ascii_case(text.trim()))
}

/// `Mon`, `Mon-Fri`, `Sat-Mon` (wraps the week), or a comma list of those.
pub fn parse_days(text: &str) -> Result<[bool; 7], String> {
    let mut days = [false; 7];
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (parse_weekday(a), parse_weekday(b));
                let (Some(a), Some(b)) = (a, b) else {
                    return Err(format!("'{part}' is not a day range like Mon-Fri"));
                };
                let mut d = a;
                loop {
                    days[d] = true;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days[parse_weekday(part).ok_or_else(|| format!("'{part}' is not a day (Mon … Sun)"))?] = true,
        }
    }
    Ok(days)
}

fn parse_date_spec(text: &str) -> Result<DateSpec, String> {
    let text = text.trim();
    match text.len() {
        10 => Date::strptime("%Y-%m-%d", text)
            .map(DateSpec::Dated)
            .map_err(|_| format!("'{text}' is not a date YYYY-MM-DD")),
        5 => Date::strptime("%Y-%m-%d", format!("2024-{text}"))
            .map(|d| DateSpec::Yearly(d.month(), d.day()))
            .map_err(|_| format!("'{text}' is not a yearly date MM-DD")),
        _ => Err(format!("'{text}' is not a date (YYYY-MM-DD or yearly MM-DD)")),
    }
}

fn weekday_index(w: Weekday) -> usize {
    w.to_monday_zero_offset() as usize
}

impl Calendar {
    /// Parse and check a calendar body; every problem names its entry (`regular[1]`).
    pub fn parse(body: &CalendarBody) -> Result<Calendar, Vec<FieldProblem>> {
        let mut problems = Vec::new();
        let tz = TimeZone::get(&body.timezone)
            .map_err(|_| {
                problems.push(FieldProblem::new("timezone", "must be an IANA time zone such as America/New_York"))
            })
            .ok();
        let mut regular = Vec::new();
        for (i, entry) in body.regular.iter().enumerate() {
            let mut parts = entry.split_whitespace();
            let parsed = parts
                .next()
                .ok_or_else(|| "must be like 'Mon-Fri 09:00-17:00'".to_string())
                .and_then(parse_days)
                .and_then(|days| {
                    let rest: Vec<&str> = parts.flat_map(|p| p.split(',')).filter(|p| !p.is_empty()).collect();
                    if rest.is_empty() {
                        return Err("needs hours, e.g. 'Mon-Fri 09:00-17:00'".to_string());
                    }
                    Ok(Regular { days, ranges: parse_ranges(&rest)? })
                });
            match parsed {
                Ok(r) => regular.push(r),
                Err(p) => problems.push(FieldProblem::new(format!("regular[{i}]"), p)),
            }
        }
        let mut special = Vec::new();
        for (i, entry) in body.special.iter().enumerate() {
            let hours: Vec<&str> = entry.hours.iter().map(String::as_str).collect();
            match (parse_date_spec(&entry.date), parse_ranges(&hours)) {
                (Ok(date), Ok(ranges)) => special.push(Special { date, ranges }),
                (Err(p), _) => problems.push(FieldProblem::new(format!("special[{i}].date"), p)),
                (_, Err(p)) => problems.push(FieldProblem::new(format!("special[{i}].hours"), p)),
            }
        }
        let mut holidays = Vec::new();
        for (i, entry) in body.holidays.iter().enumerate() {
            match parse_date_spec(entry) {
                Ok(d) => holidays.push(d),
                Err(p) => problems.push(FieldProblem::new(format!("holidays[{i}]"), p)),
            }
        }
        let mut effective = Vec::new();
        for (i, entry) in body.effective.iter().enumerate() {
            let parsed = entry
                .split_once(" to ")
                .ok_or_else(|| "must be 'YYYY-MM-DD to YYYY-MM-DD'".to_string())
                .and_then(|(a, b)| match (parse_date_spec(a)?, parse_date_spec(b)?) {
                    (DateSpec::Dated(a), DateSpec::Dated(b)) if a <= b => Ok((a, b)),
                    (DateSpec::Dated(_), DateSpec::Dated(_)) => Err("the range ends before it starts".to_string()),
                    _ => Err("effective ranges need full dates YYYY-MM-DD".to_string()),
                });
            match parsed {
                Ok(r) => effective.push(r),
                Err(p) => problems.push(FieldProblem::new(format!("effective[{i}]"), p)),
            }
        }
        match tz {
            Some(tz) if problems.is_empty() => Ok(Calendar { tz, regular, special, holidays, effective }),
            _ => Err(problems),
        }
    }

    pub fn timezone(&self) -> &TimeZone {
        &self.tz
    }

    /// The hour ranges that apply to a local date (before DST conversion).
    fn ranges_for(&self, date: Date) -> Vec<Range> {
        if !self.effective.is_empty() && !self.effective.iter().any(|(a, b)| *a <= date && date <= *b) {
            return Vec::new();
        }
        if self.holidays.iter().any(|h| h.matches(date)) {
            return Vec::new();
        }
        // A dated special day beats a yearly one; within each, the later entry wins.
        let dated = self.special.iter().rev().find(|s| matches!(s.date, DateSpec::Dated(_)) && s.date.matches(date));
        let yearly = self.special.iter().rev().find(|s| matches!(s.date, DateSpec::Yearly(..)) && s.date.matches(date));
        if let Some(special) = dated.or(yearly) {
            return special.ranges.clone();
        }
        let weekday = weekday_index(date.weekday());
        self.regular.iter().filter(|r| r.days[weekday]).flat_map(|r| r.ranges.iter().copied()).collect()
    }

    fn local_to_moment(&self, dt: DateTime) -> Option<Moment> {
        self.tz.to_ambiguous_timestamp(dt).compatible().ok().map(Moment::from_timestamp)
    }

    pub fn local_date(&self, at: Moment) -> Option<Date> {
        Timestamp::from_millisecond(at.as_ms()).ok().map(|t| t.to_zoned(self.tz.clone()).date())
    }

    /// Open intervals `[start, end)` that intersect `[from, to)`, clipped, sorted, merged.
    pub fn open_intervals(&self, from: Moment, to: Moment) -> Vec<(Moment, Moment)> {
        let (Some(first), Some(last)) = (self.local_date(from), self.local_date(to)) else { return Vec::new() };
        let mut out = Vec::new();
        // The day before may wrap past midnight into the range.
        let mut date = first.yesterday().unwrap_or(first);
        while date <= last {
            for range in self.ranges_for(date) {
                let start = date.at((range.start / 60) as i8, (range.start % 60) as i8, 0, 0);
                let end_day = if range.end > range.start { date } else { date.tomorrow().unwrap_or(date) };
                let end = if range.end == 1440 {
                    end_day.tomorrow().unwrap_or(end_day).at(0, 0, 0, 0)
                } else {
                    end_day.at((range.end / 60) as i8, (range.end % 60) as i8, 0, 0)
                };
                if let (Some(s), Some(e)) = (self.local_to_moment(start), self.local_to_moment(end)) {
                    let (s, e) = (s.max(from), e.min(to));
                    if s < e {
                        out.push((s, e));
                    }
                }
            }
            match date.tomorrow() {
                Ok(d) => date = d,
                Err(_) => break,
            }
        }
        merge(out)
    }

    pub fn is_open(&self, t: Moment) -> bool {
        !self.open_intervals(t, t + Millis::from_ms(1)).is_empty()
    }

    /// The first open instant at or after `t`, looking up to `horizon` ahead.
    pub fn next_opening(&self, t: Moment, horizon: Millis) -> Option<Moment> {
        let mut from = t;
        let end = t + horizon;
        while from < end {
            let to = (from + DAY * 7).min(end);
            if let Some((s, _)) = self.open_intervals(from, to).first() {
                return Some(*s);
            }
            from = to;
        }
        None
    }

    /// How long until the office closes (zero when closed), looking at most `horizon` ahead.
    pub fn open_for(&self, t: Moment, horizon: Millis) -> Millis {
        let intervals = self.open_intervals(t, t + horizon);
        match intervals.first() {
            Some((s, e)) if *s == t => *e - t,
            _ => Millis::ZERO,
        }
    }
}

fn merge(mut intervals: Vec<(Moment, Moment)>) -> Vec<(Moment, Moment)> {
    intervals.sort_unstable();
    let mut merged: Vec<(Moment, Moment)> = Vec::with_capacity(intervals.len());
    for (s, e) in intervals {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// Office hours of a service: a calendar, or always open when it has none.
#[derive(Debug, Clone, Copy)]
pub enum Hours<'a> {
    AlwaysOpen,
    Calendar(&'a Calendar),
}

impl Hours<'_> {
    pub fn open_intervals(&self, from: Moment, to: Moment) -> Vec<(Moment, Moment)> {
        match self {
            Hours::AlwaysOpen if from < to => vec![(from, to)],
            Hours::AlwaysOpen => Vec::new(),
            Hours::Calendar(c) => c.open_intervals(from, to),
        }
    }

    pub fn is_open(&self, t: Moment) -> bool {
        match self {
            Hours::AlwaysOpen => true,
            Hours::Calendar(c) => c.is_open(t),
        }
    }

    pub fn next_opening(&self, t: Moment) -> Option<Moment> {
        match self {
            Hours::AlwaysOpen => Some(t),
            Hours::Calendar(c) => c.next_opening(t, DAY * 366),
        }
    }

    /// Seconds until closing; an always-open service reports its look-ahead horizon.
    pub fn open_for_seconds(&self, t: Moment) -> i64 {
        const HORIZON: Millis = Millis::from_ms(31 * DAY.as_ms());
        match self {
            Hours::AlwaysOpen => HORIZON.as_secs(),
            Hours::Calendar(c) => c.open_for(t, HORIZON).as_secs(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MINUTE_MS: i64 = 60_000;

    fn cal(tz: &str, regular: &[&str]) -> Calendar {
        Calendar::parse(&CalendarBody {
            timezone: tz.into(),
            regular: regular.iter().map(|s| s.to_string()).collect(),
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
    fn weekly_hours_in_the_calendar_zone() {
        let c = cal("America/New_York", &["Mon-Fri 09:00-17:00", "Sat 10:00-14:00"]);
        assert!(c.is_open(ms("2026-11-23T14:00:00Z"))); // Mon 09:00 EST
        assert!(!c.is_open(ms("2026-11-23T13:59:59Z")));
        assert!(!c.is_open(ms("2026-11-23T22:00:00Z"))); // 17:00 closes
        assert!(c.is_open(ms("2026-11-28T15:00:00Z"))); // Sat 10:00
        assert!(!c.is_open(ms("2026-11-29T16:00:00Z"))); // Sun
        assert_eq!(c.next_opening(ms("2026-11-28T20:00:00Z"), DAY * 7), Some(ms("2026-11-30T14:00:00Z")));
        assert_eq!(c.open_for(ms("2026-11-23T21:00:00Z"), DAY * 7), Millis::from_ms(3_600_000));
        assert_eq!(c.open_for(ms("2026-11-23T23:00:00Z"), DAY * 7), Millis::ZERO);
    }

    #[test]
    fn day_ranges_wrap_the_week_and_hours_wrap_midnight() {
        let c = cal("UTC", &["Sat-Mon 22:00-06:00"]);
        assert!(c.is_open(ms("2026-11-28T23:00:00Z"))); // Sat night
        assert!(c.is_open(ms("2026-11-29T05:59:00Z"))); // Sun small hours (Sat's range)
        assert!(c.is_open(ms("2026-12-01T03:00:00Z"))); // Tue small hours belong to Mon night
        assert!(!c.is_open(ms("2026-12-01T23:00:00Z"))); // Tue night closed
        assert!(!c.is_open(ms("2026-11-28T03:00:00Z"))); // Sat small hours: Fri night closed
        let all = cal("UTC", &["Mon-Sun 00:00-24:00"]);
        assert_eq!(all.open_intervals(ms("2026-11-23T00:00:00Z"), ms("2026-11-30T00:00:00Z")).len(), 1, "continuous");
    }

    #[test]
    fn holidays_special_days_and_effective_ranges() {
        let c = Calendar::parse(&CalendarBody {
            timezone: "Europe/Paris".into(),
            regular: vec!["Mon-Fri 09:00-17:00".into()],
            special: vec![
                SpecialBody { date: "2026-12-24".into(), hours: vec!["09:00-12:00".into()] },
                SpecialBody { date: "12-31".into(), hours: vec![] },
                SpecialBody { date: "11-27".into(), hours: vec!["10:00-11:00".into()] },
                SpecialBody { date: "2026-11-27".into(), hours: vec!["13:00-14:00".into()] },
            ],
            holidays: vec!["2026-11-26".into(), "12-25".into()],
            effective: vec!["2026-01-01 to 2026-12-31".into()],
        })
        .unwrap();
        assert!(!c.is_open(ms("2026-11-26T10:00:00Z")), "dated holiday");
        assert!(!c.is_open(ms("2026-12-25T10:00:00Z")), "yearly holiday");
        assert!(c.is_open(ms("2026-12-24T10:00:00Z")) && !c.is_open(ms("2026-12-24T12:00:00Z")), "special hours");
        assert!(!c.is_open(ms("2026-12-31T10:00:00Z")), "special closed day");
        assert!(c.is_open(ms("2026-11-27T12:30:00Z")) && !c.is_open(ms("2026-11-27T09:30:00Z")), "dated special wins");
        assert!(!c.is_open(ms("2027-01-04T10:00:00Z")), "outside the effective range");
    }

    #[test]
    fn parse_errors_name_the_entry() {
        let e = Calendar::parse(&CalendarBody {
            timezone: "Mars/Olympus".into(),
            regular: vec!["Mon-Fri 09:00-17:00".into(), "Funday 09:00-10:00".into(), "Mon 9-5".into()],
            special: vec![SpecialBody { date: "2026-02-30".into(), hours: vec![] }],
            holidays: vec!["xmas".into()],
            effective: vec!["2026-12-31 to 2026-01-01".into()],
        })
        .unwrap_err();
        let fields: Vec<&str> = e.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["timezone", "regular[1]", "regular[2]", "special[0].date", "holidays[0]", "effective[0]"]
        );
    }

    #[test]
    fn spring_forward_and_fall_back_days_have_their_real_length() {
        let all = cal("America/New_York", &["Mon-Sun 00:00-24:00"]);
        let spring = all.open_intervals(ms("2026-03-08T05:00:00Z"), ms("2026-03-09T04:00:00Z"));
        assert_eq!(spring, vec![(ms("2026-03-08T05:00:00Z"), ms("2026-03-09T04:00:00Z"))]);
        let c = cal("America/New_York", &["Sun 01:00-04:00"]);
        // 01:00 EST → 04:00 EDT is two real hours on the spring-forward day.
        let iv = c.open_intervals(ms("2026-03-08T00:00:00Z"), ms("2026-03-09T00:00:00Z"));
        assert_eq!(iv, vec![(ms("2026-03-08T06:00:00Z"), ms("2026-03-08T08:00:00Z"))]);
        // And four on the fall-back day (the repeated 01:00 is read as its first occurrence).
        let iv = c.open_intervals(ms("2026-11-01T00:00:00Z"), ms("2026-11-02T00:00:00Z"));
        assert_eq!(iv, vec![(ms("2026-11-01T05:00:00Z"), ms("2026-11-01T09:00:00Z"))]);
    }

    const ZONES: [&str; 5] =
        ["America/New_York", "Europe/London", "Australia/Sydney", "America/Santiago", "Asia/Kolkata"];
    // Spring-forward and fall-back days of 2026 in those zones, and ordinary days.
    const DAYS: [&str; 8] = [
        "2026-03-08",
        "2026-11-01",
        "2026-03-29",
        "2026-10-25",
        "2026-04-05",
        "2026-10-04",
        "2026-09-06",
        "2026-06-15",
    ];

    proptest! {
        #[test]
        fn intervals_are_sorted_disjoint_and_agree_with_is_open(
            zone in 0usize..ZONES.len(), day in 0usize..DAYS.len(), offset_min in 0i64..(3 * 1440), from_h in 0i32..24, len_h in 1i32..23,
        ) {
            let range = format!("{:02}:00-{:02}:00", from_h, (from_h + len_h) % 24);
            let c = cal(ZONES[zone], &["Mon-Sun ".to_string() + &range].iter().map(String::as_str).collect::<Vec<_>>());
            let base = Date::strptime("%Y-%m-%d", DAYS[day]).unwrap().at(0, 0, 0, 0).to_zoned(TimeZone::UTC).unwrap().timestamp();
            let base = Moment::from_timestamp(base) - DAY;
            let iv = c.open_intervals(base, base + DAY * 3);
            for w in iv.windows(2) {
                prop_assert!(w[0].1 < w[1].0, "sorted and disjoint: {:?}", iv);
            }
            let t = base + Millis::from_ms(offset_min * MINUTE_MS);
            let inside = iv.iter().any(|(s, e)| *s <= t && t < *e);
            prop_assert_eq!(inside, c.is_open(t));
        }

        #[test]
        fn daytime_hours_keep_their_length_on_dst_days(zone in 0usize..ZONES.len(), day in 0usize..DAYS.len()) {
            // Transitions happen at night, so 09:00-17:00 is eight real hours every day.
            let c = cal(ZONES[zone], &["Mon-Sun 09:00-17:00"]);
            let date = Date::strptime("%Y-%m-%d", DAYS[day]).unwrap();
            let tz = TimeZone::get(ZONES[zone]).unwrap();
            let start = Moment::from_timestamp(tz.to_ambiguous_timestamp(date.at(0, 0, 0, 0)).compatible().unwrap());
            let end = Moment::from_timestamp(tz.to_ambiguous_timestamp(date.tomorrow().unwrap().at(0, 0, 0, 0)).compatible().unwrap());
            let total: i64 = c.open_intervals(start, end).iter().map(|(s, e)| (*e - *s).as_ms()).sum();
            prop_assert_eq!(total, 8 * 3_600_000);
        }
    }
}
