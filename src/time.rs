//! Time on the wire: inputs must carry a zone; outputs are UTC with milliseconds.
//! Inside, an instant is a `Moment` and a length of time a `Millis`: both epoch milliseconds
//! underneath (the same integer on every backend, converted only where a row is read or bound),
//! so an instant can never be passed where a duration is meant, nor either as a bare number.
//! A bottom layer: everything may use it, it uses nothing of the crate.

use std::ops::{Add, Mul, Sub};

use jiff::Timestamp;
use serde::Serialize;

/// An instant: milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(transparent)]
pub struct Moment(i64);

/// A length of time (may be negative: the difference of two instants), in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(transparent)]
pub struct Millis(i64);

/// One day (UTC days: calendars step through local days with jiff instead).
pub const DAY: Millis = Millis(86_400_000);
/// One hour.
pub const HOUR: Millis = Millis(3_600_000);

impl Moment {
    /// The latest instant (an open end of a range).
    pub const MAX: Moment = Moment(i64::MAX);

    /// From epoch milliseconds (a stored column, a cursor, a test's fixture).
    pub const fn from_ms(ms: i64) -> Moment {
        Moment(ms)
    }

    /// Epoch milliseconds (for a column, a cursor, a wire field in milliseconds).
    pub const fn as_ms(self) -> i64 {
        self.0
    }

    /// As a jiff timestamp (clamped into jiff's range, which spans years -9999 to 9999).
    pub fn timestamp(self) -> Timestamp {
        Timestamp::from_millisecond(self.0).unwrap_or(if self.0 < 0 { Timestamp::MIN } else { Timestamp::MAX })
    }

    pub fn from_timestamp(t: Timestamp) -> Moment {
        Moment(t.as_millisecond())
    }

    /// The start of the `unit`-long period (an hour, a day in UTC) this instant falls in.
    pub fn truncate(self, unit: Millis) -> Moment {
        Moment(self.0.div_euclid(unit.0) * unit.0)
    }

    /// Saturating: open-ended ranges add to `MAX` without wrapping.
    pub fn saturating_add(self, d: Millis) -> Moment {
        Moment(self.0.saturating_add(d.0))
    }

    pub fn saturating_sub(self, d: Millis) -> Moment {
        Moment(self.0.saturating_sub(d.0))
    }
}

impl Millis {
    pub const ZERO: Millis = Millis(0);

    pub const fn from_ms(ms: i64) -> Millis {
        Millis(ms)
    }

    pub const fn as_ms(self) -> i64 {
        self.0
    }

    /// A configured number of seconds (saturating: no setting overflows an instant).
    pub fn from_secs(seconds: u64) -> Millis {
        Millis(i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX))
    }

    /// Whole seconds, rounded down.
    pub const fn as_secs(self) -> i64 {
        self.0 / 1000
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    pub fn abs(self) -> Millis {
        Millis(self.0.saturating_abs())
    }

    /// For a timer: negative lengths are zero.
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(u64::try_from(self.0).unwrap_or(0))
    }

    pub fn from_std(d: std::time::Duration) -> Millis {
        Millis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

impl Add<Millis> for Moment {
    type Output = Moment;
    fn add(self, d: Millis) -> Moment {
        Moment(self.0 + d.0)
    }
}

impl Sub<Millis> for Moment {
    type Output = Moment;
    fn sub(self, d: Millis) -> Moment {
        Moment(self.0 - d.0)
    }
}

impl Sub for Moment {
    type Output = Millis;
    fn sub(self, other: Moment) -> Millis {
        Millis(self.0 - other.0)
    }
}

impl Add for Millis {
    type Output = Millis;
    fn add(self, other: Millis) -> Millis {
        Millis(self.0 + other.0)
    }
}

impl Sub for Millis {
    type Output = Millis;
    fn sub(self, other: Millis) -> Millis {
        Millis(self.0 - other.0)
    }
}

impl Mul<i64> for Millis {
    type Output = Millis;
    fn mul(self, n: i64) -> Millis {
        Millis(self.0 * n)
    }
}

/// The current instant: read at the edge or in the operation and passed down.
pub fn now() -> Moment {
    Moment(Timestamp::now().as_millisecond())
}

/// Parse an ISO 8601 / RFC 3339 date-time that carries `Z` or an offset.
pub fn parse_instant(field: &str, raw: &str) -> Result<Moment, String> {
    raw.trim()
        .parse::<Timestamp>()
        .map(Moment::from_timestamp)
        .map_err(|_| format!("{field} must be an ISO 8601 time with a zone, got '{}'", shorten(raw)))
}

/// `2026-11-23T15:30:00.000Z`.
pub fn format_utc(at: Moment) -> String {
    match Timestamp::from_millisecond(at.0) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Err(_) => at.0.to_string(),
    }
}

fn shorten(raw: &str) -> String {
    raw.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_is_required_and_offsets_are_honoured() {
        assert!(parse_instant("desiredTime", "10am").unwrap_err().contains("'10am'"));
        assert!(parse_instant("desiredTime", "2026-11-23T10:00:00").is_err());
        let z = parse_instant("t", "2026-11-23T15:30:00Z").unwrap();
        let off = parse_instant("t", "2026-11-23T10:30:00-05:00").unwrap();
        assert_eq!(z, off);
        assert_eq!(format_utc(z), "2026-11-23T15:30:00.000Z");
        assert_eq!(format_utc(z + Millis::from_ms(7)), "2026-11-23T15:30:00.007Z");
    }

    #[test]
    fn instants_and_lengths_keep_their_kinds() {
        let t = Moment::from_ms(1_000);
        assert_eq!(t + Millis::from_secs(2) - t, Millis::from_ms(2_000));
        assert_eq!((t - Millis::from_secs(3)).as_ms(), -2_000);
        assert_eq!(Moment::MAX.saturating_add(DAY), Moment::MAX);
        assert_eq!(Millis::from_ms(-5).to_std(), std::time::Duration::ZERO);
        assert_eq!(serde_json::to_string(&t).unwrap(), "1000");
    }
}
