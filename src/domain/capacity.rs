//! Capacity buckets (domain.md § Capacity buckets): `slotMinutes` buckets aligned to local
//! midnight in the service's zone, their capacity (exceptions, then overrides, then
//! `slotCapacity`), whether they are open, and the proposed slots of a `SLOT_FULL` answer.
//!
//! A bucket is identified by its start instant (UTC ms). On DST days, local bucket starts that do
//! not exist are skipped and the repeated hour yields two buckets (one per offset); each bucket
//! lasts until the next one starts.

use std::collections::HashMap;

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::Timestamp;

use crate::domain::calendar::{parse_clock, parse_days, Hours};
use crate::domain::service::ServiceConfig;
use crate::time::{Millis, Moment, DAY};

/// How far either side of the desired time slot proposals search.
pub const PROPOSAL_SEARCH_DAYS: i64 = 7;
/// Proposals read reservations this far either side of the desired time, and capacity rows are
/// kept this long after their bucket (`store` purges them then): one day more than the search,
/// so the rows a proposal reads are never purged under it.
pub const BUCKET_RETENTION_DAYS: i64 = PROPOSAL_SEARCH_DAYS + 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub start: Moment,
    pub end: Moment,
    /// Local wall-clock start, for capacity rules.
    pub local_date: Date,
    pub local_minute: i32,
}

/// An open bucket as availability and proposals show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub bucket: Bucket,
    /// First open instant in the bucket (`utcTime`).
    pub offered: Moment,
    pub total: u32,
}

/// The bucket grid of one service.
#[derive(Debug, Clone)]
pub struct Grid<'a> {
    pub tz: TimeZone,
    pub config: &'a ServiceConfig,
}

impl<'a> Grid<'a> {
    pub fn new(tz: TimeZone, config: &'a ServiceConfig) -> Self {
        Grid { tz, config }
    }

    fn local_date(&self, at: Moment) -> Option<Date> {
        Timestamp::from_millisecond(at.as_ms()).ok().map(|t| t.to_zoned(self.tz.clone()).date())
    }

    /// Every bucket start of a local date: (instant, local minute).
    fn starts_of_day(&self, date: Date) -> Vec<(Moment, i32)> {
        let step = self.config.slot_minutes as i32;
        if let Some(midnight) = self.midnight_of_steady_day(date) {
            // Every booking asks for its bucket: on a day without an offset change (all but the
            // DST days), starts are midnight plus whole minutes, with no zone lookup per start.
            return (0..1440)
                .step_by(step as usize)
                .map(|m| (midnight + Millis::from_ms(i64::from(m) * 60_000), m))
                .collect();
        }
        self.starts_by_zone_lookup(date)
    }

    /// `starts_of_day` the long way: each local start through the zone (gaps skipped, folds twice).
    fn starts_by_zone_lookup(&self, date: Date) -> Vec<(Moment, i32)> {
        let step = self.config.slot_minutes as i32;
        let mut starts = Vec::with_capacity((1440 / step) as usize + 12);
        for minute in (0..1440).step_by(step as usize) {
            let dt: DateTime = date.at((minute / 60) as i8, (minute % 60) as i8, 0, 0);
            let ambiguous = self.tz.to_ambiguous_timestamp(dt);
            let offsets = match ambiguous.offset() {
                AmbiguousOffset::Unambiguous { offset } => vec![offset],
                AmbiguousOffset::Gap { .. } => vec![],
                AmbiguousOffset::Fold { before, after } => vec![before, after],
            };
            for offset in offsets {
                if let Ok(ts) = offset.to_timestamp(dt) {
                    starts.push((Moment::from_timestamp(ts), minute));
                }
            }
        }
        starts.sort_unstable();
        starts
    }

    /// The instant of local midnight of `date` when the zone's offset does not change during
    /// that day (no transition before the next midnight); `None` on DST days.
    fn midnight_of_steady_day(&self, date: Date) -> Option<Moment> {
        let midnight: DateTime = date.at(0, 0, 0, 0);
        let AmbiguousOffset::Unambiguous { offset } = self.tz.to_ambiguous_timestamp(midnight).offset() else {
            return None;
        };
        let start = offset.to_timestamp(midnight).ok()?;
        let day_end = Moment::from_timestamp(start) + DAY;
        let steady = self.tz.following(start).next().is_none_or(|t| Moment::from_timestamp(t.timestamp()) >= day_end);
        steady.then_some(Moment::from_timestamp(start))
    }

    /// Buckets that intersect `[from, to)`, in order.
    pub fn buckets(&self, from: Moment, to: Moment) -> Vec<Bucket> {
        let (Some(first), Some(last)) = (self.local_date(from), self.local_date(to)) else { return Vec::new() };
        let mut starts: Vec<(Moment, i32, Date)> = Vec::new();
        let mut date = first.yesterday().unwrap_or(first);
        let stop = last.tomorrow().unwrap_or(last);
        while date <= stop {
            starts.extend(self.starts_of_day(date).into_iter().map(|(at, minute)| (at, minute, date)));
            match date.tomorrow() {
                Ok(d) => date = d,
                Err(_) => break,
            }
        }
        starts
            .windows(2)
            .map(|w| Bucket { start: w[0].0, end: w[1].0, local_date: w[0].2, local_minute: w[0].1 })
            .filter(|b| b.end > from && b.start < to)
            .collect()
    }

    pub fn bucket_at(&self, t: Moment) -> Option<Bucket> {
        self.buckets(t, t + Millis::from_ms(1)).into_iter().find(|b| b.start <= t && t < b.end)
    }

    /// Capacity of a bucket: the last matching exception, else the last matching override, else
    /// `slotCapacity`.
    pub fn capacity(&self, bucket: &Bucket) -> u32 {
        let minute = bucket.local_minute;
        let in_range = |from: &str, to: &str| {
            let (Some(f), Some(t)) = (parse_clock(from), parse_clock(to)) else { return false };
            f <= minute && minute < t
        };
        let date_text = bucket.local_date.strftime("%Y-%m-%d").to_string();
        let exception = self.config.capacity_exceptions.iter().rev().find(|e| {
            (e.date == date_text || (e.date.len() == 5 && date_text.ends_with(&e.date))) && in_range(&e.from, &e.to)
        });
        if let Some(e) = exception {
            return e.capacity;
        }
        let weekday = bucket.local_date.weekday().to_monday_zero_offset() as usize;
        let overriding = self
            .config
            .capacity_overrides
            .iter()
            .rev()
            .find(|o| parse_days(&o.days).is_ok_and(|d| d[weekday]) && in_range(&o.from, &o.to));
        overriding.map(|o| o.capacity).unwrap_or(self.config.slot_capacity)
    }

    /// Open buckets in `[from, to)` whose offered time is within `[earliest, latest]`.
    pub fn open_slots(
        &self,
        hours: Hours<'_>,
        from: Moment,
        to: Moment,
        earliest: Moment,
        latest: Moment,
    ) -> Vec<Slot> {
        let buckets = self.buckets(from, to);
        let (Some(first), Some(last)) = (buckets.first(), buckets.last()) else { return Vec::new() };
        let open = hours.open_intervals(first.start, last.end);
        let mut slots = Vec::new();
        let mut i = 0;
        for bucket in buckets {
            while i < open.len() && open[i].1 <= bucket.start {
                i += 1;
            }
            // First open instant in the bucket, no earlier than `earliest`.
            let mut offered = None;
            for &(s, e) in &open[i..] {
                if s >= bucket.end {
                    break;
                }
                let candidate = s.max(bucket.start).max(earliest);
                if candidate < e.min(bucket.end) {
                    offered = Some(candidate);
                    break;
                }
            }
            if let Some(offered) = offered.filter(|o| *o <= latest) {
                slots.push(Slot { bucket, offered, total: self.capacity(&bucket) });
            }
        }
        slots
    }
}

/// One open slot and the use of its places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotUse {
    /// The slot's first open instant.
    pub offered: Moment,
    /// Its bucket's start and end.
    pub bucket: (Moment, Moment),
    pub total: u32,
    pub reserved: u32,
}

impl SlotUse {
    /// Places still free.
    pub fn left(&self) -> u32 {
        self.total.saturating_sub(self.reserved)
    }
}

/// The open slots in `[from, to)` offered within `[earliest, latest]`, with the places
/// `reserved` (bucket start → places) holds: the one computation of "open slots with room"
/// behind availability, the console's slots and the proposals of a full slot.
pub fn slots_with_use(
    grid: &Grid<'_>,
    hours: Hours<'_>,
    (from, to): (Moment, Moment),
    (earliest, latest): (Moment, Moment),
    reserved: &HashMap<Moment, u32>,
) -> Vec<SlotUse> {
    grid.open_slots(hours, from, to, earliest, latest)
        .into_iter()
        .map(|s| SlotUse {
            offered: s.offered,
            bucket: (s.bucket.start, s.bucket.end),
            total: s.total,
            reserved: reserved.get(&s.bucket.start).copied().unwrap_or(0),
        })
        .collect()
}

/// Up to `max` open buckets with room, nearest to `desired` (earlier or later), within 7 days
/// either side, ordered by time. `reserved` maps bucket start → reserved count.
pub fn propose(
    grid: &Grid<'_>,
    hours: Hours<'_>,
    desired: Moment,
    earliest: Moment,
    latest: Moment,
    reserved: &HashMap<Moment, u32>,
    max: usize,
) -> Vec<(Moment, u32)> {
    let window = DAY * PROPOSAL_SEARCH_DAYS;
    let slots = slots_with_use(grid, hours, (desired - window, desired + window), (earliest, latest), reserved);
    let mut with_room: Vec<(Moment, u32)> =
        slots.into_iter().filter(|s| s.left() > 0).map(|s| (s.offered, s.left())).collect();
    with_room.sort_by_key(|(t, _)| (*t - desired).abs());
    with_room.truncate(max);
    with_room.sort_unstable();
    with_room
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::calendar::{Calendar, CalendarBody};
    use crate::domain::service::{CapacityException, CapacityOverride};
    use proptest::prelude::*;

    fn ms(text: &str) -> Moment {
        Moment::from_timestamp(text.parse::<Timestamp>().unwrap())
    }

    fn day_bounds(tz: &TimeZone, date: &str) -> (Moment, Moment) {
        let d = Date::strptime("%Y-%m-%d", date).unwrap();
        let s = Moment::from_timestamp(tz.to_ambiguous_timestamp(d.at(0, 0, 0, 0)).compatible().unwrap());
        let e = Moment::from_timestamp(
            tz.to_ambiguous_timestamp(d.tomorrow().unwrap().at(0, 0, 0, 0)).compatible().unwrap(),
        );
        (s, e)
    }

    #[test]
    fn steady_days_take_the_short_way_to_the_same_starts() {
        let zones =
            ["UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata", "America/St_Johns"];
        for zone in zones {
            for slot_minutes in [15, 60] {
                let config = ServiceConfig { slot_minutes, ..ServiceConfig::default() };
                let grid = Grid::new(TimeZone::get(zone).unwrap(), &config);
                let mut date = jiff::civil::date(2025, 1, 1);
                let (mut steady, mut dst) = (0, 0);
                for _ in 0..800 {
                    assert_eq!(grid.starts_of_day(date), grid.starts_by_zone_lookup(date), "{zone} {date}");
                    match grid.midnight_of_steady_day(date) {
                        Some(_) => steady += 1,
                        None => dst += 1,
                    }
                    date = date.tomorrow().unwrap();
                }
                // Zones with DST have their transition days on the long way, the rest never.
                let expected_dst = if matches!(zone, "UTC" | "Asia/Kolkata") { 0 } else { 4 };
                assert_eq!((steady + dst, dst), (800, expected_dst), "{zone}");
            }
        }
    }

    #[test]
    fn buckets_align_to_local_midnight_and_follow_dst() {
        let config = ServiceConfig { slot_minutes: 5, ..Default::default() };
        let tz = TimeZone::get("America/New_York").unwrap();
        let grid = Grid::new(tz.clone(), &config);
        for (date, expected) in [("2026-11-23", 288), ("2026-03-08", 276), ("2026-11-01", 300)] {
            let (s, e) = day_bounds(&tz, date);
            let buckets: Vec<_> = grid.buckets(s, e).into_iter().filter(|b| b.start >= s && b.start < e).collect();
            assert_eq!(buckets.len(), expected, "{date}");
            assert!(
                buckets.iter().all(|b| b.end - b.start == Millis::from_ms(300_000)),
                "{date}: every bucket lasts 5 real minutes"
            );
        }
        let b = grid.bucket_at(ms("2026-11-23T14:07:00Z")).unwrap();
        assert_eq!((b.start, b.local_minute), (ms("2026-11-23T14:05:00Z"), 9 * 60 + 5));
    }

    #[test]
    fn capacity_exceptions_beat_overrides_beat_the_default() {
        let config = ServiceConfig {
            slot_minutes: 60,
            slot_capacity: 10,
            capacity_overrides: vec![CapacityOverride {
                days: "Mon-Fri".into(),
                from: "09:00".into(),
                to: "12:00".into(),
                capacity: 4,
            }],
            capacity_exceptions: vec![CapacityException {
                date: "2026-12-24".into(),
                from: "00:00".into(),
                to: "24:00".into(),
                capacity: 0,
            }],
            ..Default::default()
        };
        let grid = Grid::new(TimeZone::UTC, &config);
        let cap = |t: &str| grid.capacity(&grid.bucket_at(ms(t)).unwrap());
        assert_eq!(cap("2026-11-23T10:30:00Z"), 4);
        assert_eq!(cap("2026-11-23T13:30:00Z"), 10);
        assert_eq!(cap("2026-11-28T10:30:00Z"), 10, "Saturday");
        assert_eq!(cap("2026-12-24T10:30:00Z"), 0);
    }

    #[test]
    fn a_bucket_is_offered_from_its_first_open_instant() {
        let config = ServiceConfig { slot_minutes: 60, ..Default::default() };
        let cal = Calendar::parse(&CalendarBody {
            timezone: "UTC".into(),
            regular: vec!["Mon-Fri 09:30-11:00".into()],
            special: vec![],
            holidays: vec![],
            effective: vec![],
        })
        .unwrap();
        let grid = Grid::new(TimeZone::UTC, &config);
        let (s, e) = (ms("2026-11-23T00:00:00Z"), ms("2026-11-24T00:00:00Z"));
        let slots = grid.open_slots(Hours::Calendar(&cal), s, e, s, Moment::MAX);
        let offered: Vec<Moment> = slots.iter().map(|s| s.offered).collect();
        assert_eq!(offered, vec![ms("2026-11-23T09:30:00Z"), ms("2026-11-23T10:00:00Z")]);
    }

    #[test]
    fn proposals_are_the_nearest_buckets_with_room_in_time_order() {
        let config = ServiceConfig { slot_minutes: 60, slot_capacity: 2, ..Default::default() };
        let grid = Grid::new(TimeZone::UTC, &config);
        let desired = ms("2026-11-23T12:00:00Z");
        let mut reserved = HashMap::new();
        reserved.insert(desired, 2);
        reserved.insert(ms("2026-11-23T13:00:00Z"), 1);
        let p = propose(&grid, Hours::AlwaysOpen, desired, ms("2026-11-23T11:00:00Z"), Moment::MAX, &reserved, 3);
        assert_eq!(
            p,
            vec![(ms("2026-11-23T11:00:00Z"), 2), (ms("2026-11-23T13:00:00Z"), 1), (ms("2026-11-23T14:00:00Z"), 2)]
        );
    }

    proptest! {
        #[test]
        fn bucket_starts_increase_and_cover_time(zone in 0usize..4, slot in prop::sample::select(vec![5u32, 15, 30, 60, 120]), offset_h in 0i64..(24 * 400)) {
            let zones = ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "America/Santiago"];
            let config = ServiceConfig { slot_minutes: slot, ..Default::default() };
            let grid = Grid::new(TimeZone::get(zones[zone]).unwrap(), &config);
            let from = ms("2026-01-01T00:00:00Z") + Millis::from_ms(offset_h * 3_600_000);
            let buckets = grid.buckets(from, from + DAY);
            for w in buckets.windows(2) {
                prop_assert_eq!(w[0].end, w[1].start, "contiguous");
                prop_assert!(w[0].start < w[0].end);
            }
            let t = from + Millis::from_ms(1234);
            let b = grid.bucket_at(t).unwrap();
            prop_assert!(b.start <= t && t < b.end);
        }
    }
}
