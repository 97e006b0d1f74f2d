//! Time on the wire: inputs must carry a zone; outputs are UTC with milliseconds.
//! Inside, instants are epoch milliseconds (the same integer on every backend). A bottom layer:
//! everything may use it, it uses nothing of the crate.

use jiff::Timestamp;

/// One day in milliseconds (UTC days: calendars step through local days with jiff instead).
pub const DAY_MS: i64 = 86_400_000;

/// A configured number of seconds as milliseconds (saturating: no setting overflows an instant).
pub fn seconds_ms(seconds: u64) -> i64 {
    i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
}

pub fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

/// Parse an ISO 8601 / RFC 3339 date-time that carries `Z` or an offset.
pub fn parse_instant(field: &str, raw: &str) -> Result<i64, String> {
    raw.trim()
        .parse::<Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| format!("{field} must be an ISO 8601 time with a zone, got '{}'", shorten(raw)))
}

/// `2026-11-23T15:30:00.000Z`.
pub fn format_utc(ms: i64) -> String {
    match Timestamp::from_millisecond(ms) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Err(_) => ms.to_string(),
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
        assert_eq!(format_utc(z + 7), "2026-11-23T15:30:00.007Z");
    }
}
