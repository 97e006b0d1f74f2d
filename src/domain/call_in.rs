//! Click-to-call-in (domain.md § Click-to-call-in): a group's configuration with whole-body
//! validation, access codes, and the request states as clients read them.

use std::collections::{HashMap, HashSet};

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::phone::{PhoneRules, E164};
use crate::domain::service::RateLimit;
use crate::error::FieldProblem;
use crate::time::Moment;

/// Codes fit a JSON number and an `i64` comfortably; nine digits are 900 million codes.
pub const MAX_ACCESS_CODE_DIGITS: u32 = 9;
/// One second makes tests fast; a day is longer than any caller waits to dial.
pub const EXPIRY_SECONDS_RANGE: std::ops::RangeInclusive<u64> = 1..=86_400;
/// A pool is written as one admin body; a thousand numbers is beyond any real group.
pub const MAX_NUMBERS: usize = 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CallInGroupConfig {
    /// E.164, in the order given.
    pub numbers: Vec<String>,
    /// Each number held by at most one pending request; `false` = shared numbers (codes required).
    pub unique_numbers: bool,
    /// 0 = no codes; otherwise 1–9, first digit 1–9.
    pub access_code_digits: u32,
    pub expiry_seconds: u64,
    /// The inbound caller (ANI) must equal the request's `fromPhoneNumber`.
    pub require_caller_match: bool,
    /// Requests per `fromPhoneNumber` per window (issue 22: a loop must not drain the pool).
    pub per_number_limit: RateLimit,
    /// Requests of the whole group per window.
    pub rate_limit: RateLimit,
}

impl Default for CallInGroupConfig {
    fn default() -> Self {
        CallInGroupConfig {
            numbers: Vec::new(),
            unique_numbers: true,
            access_code_digits: 4,
            expiry_seconds: 300,
            require_caller_match: false,
            per_number_limit: RateLimit { limit: 6, window_seconds: 3_600 },
            rate_limit: RateLimit { limit: 600, window_seconds: 60 },
        }
    }
}

impl CallInGroupConfig {
    /// Parse an admin body (defaults filled, unknown fields refused) and validate it whole.
    pub fn from_admin_body(body: Value) -> Result<CallInGroupConfig, Vec<FieldProblem>> {
        let config: CallInGroupConfig = serde_path_to_error::deserialize(body).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "body".to_string() } else { path };
            vec![FieldProblem::new(field, e.inner().to_string())]
        })?;
        config.validated()
    }

    /// Every problem at once; numbers come back normalised.
    fn validated(mut self) -> Result<CallInGroupConfig, Vec<FieldProblem>> {
        let mut problems = Vec::new();
        if self.numbers.is_empty() {
            problems.push(FieldProblem::new("numbers", "must hold at least one E.164 number"));
        }
        if self.numbers.len() > MAX_NUMBERS {
            problems.push(FieldProblem::new("numbers", format!("must hold at most {MAX_NUMBERS} numbers")));
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, raw) in self.numbers.iter_mut().enumerate() {
            match parse_e164(raw) {
                Some(e164) => {
                    if let Some(first) = seen.get(&e164) {
                        problems
                            .push(FieldProblem::new(format!("numbers[{i}]"), format!("duplicates numbers[{first}]")));
                    } else {
                        seen.insert(e164.clone(), i);
                    }
                    *raw = e164;
                }
                None => problems.push(FieldProblem::new(
                    format!("numbers[{i}]"),
                    "must be a valid E.164 number: + and the country code, e.g. +14155550100",
                )),
            }
        }
        if self.access_code_digits > MAX_ACCESS_CODE_DIGITS {
            problems.push(FieldProblem::new(
                "accessCodeDigits",
                format!("must be 0 (no codes) or 1-{MAX_ACCESS_CODE_DIGITS}"),
            ));
        } else if !self.unique_numbers && self.access_code_digits == 0 {
            problems.push(FieldProblem::new(
                "accessCodeDigits",
                "shared numbers (uniqueNumbers false) need access codes: use 1-9 digits",
            ));
        }
        if !EXPIRY_SECONDS_RANGE.contains(&self.expiry_seconds) {
            problems.push(FieldProblem::new(
                "expirySeconds",
                format!("must be {}-{}", EXPIRY_SECONDS_RANGE.start(), EXPIRY_SECONDS_RANGE.end()),
            ));
        }
        for (name, limit) in [("perNumberLimit", self.per_number_limit), ("rateLimit", self.rate_limit)] {
            if limit.limit == 0 {
                problems.push(FieldProblem::new(format!("{name}.limit"), "must be at least 1"));
            }
            if limit.window_seconds == 0 {
                problems.push(FieldProblem::new(format!("{name}.windowSeconds"), "must be at least 1"));
            }
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(problems)
        }
    }

    pub fn uses_codes(&self) -> bool {
        self.access_code_digits > 0
    }
}

/// Pool numbers are written already in E.164 (`+` and digits); anything the parser would have to
/// guess a country for is refused rather than silently rewritten.
fn parse_e164(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    if !trimmed.starts_with('+') {
        return None;
    }
    let rules = PhoneRules { disallow_premium: false, ..PhoneRules::default() };
    let parsed = E164::parse(trimmed, &rules).ok()?;
    (parsed.as_str() == trimmed).then(|| parsed.as_str().to_string())
}

/// A caller's number (`fromPhoneNumber`, the inbound ANI) normalised to E.164 with the default
/// rules; `None` when it is not a phone number.
pub fn normalise_caller(raw: &str) -> Option<String> {
    let rules = PhoneRules { disallow_premium: false, ..PhoneRules::default() };
    E164::parse(raw, &rules).ok().map(|n| n.as_str().to_string())
}

/// How many codes of `digits` digits exist (first digit 1–9): 9·10^(digits-1); 0 for no codes.
pub fn code_space(digits: u32) -> i64 {
    match digits {
        0 => 0,
        d => 9 * 10_i64.pow(d.min(MAX_ACCESS_CODE_DIGITS) - 1),
    }
}

/// A uniformly drawn code of `digits` digits whose first digit is 1–9. `digits` must be 1–9.
pub fn draw_code(digits: u32, rng: &mut impl Rng) -> i64 {
    let low = 10_i64.pow(digits.clamp(1, MAX_ACCESS_CODE_DIGITS) - 1);
    rng.gen_range(low..low * 10)
}

/// A uniformly drawn code not in `used`, or `None` when every code is used. Enumerates the free
/// codes, so callers use it only when the space is small or dense (rejection draws otherwise).
pub fn pick_free_code(digits: u32, used: &HashSet<i64>, rng: &mut impl Rng) -> Option<i64> {
    let low = 10_i64.pow(digits.clamp(1, MAX_ACCESS_CODE_DIGITS) - 1);
    let free: Vec<i64> = (low..low * 10).filter(|c| !used.contains(c)).collect();
    (!free.is_empty()).then(|| free[rng.gen_range(0..free.len())])
}

/// `accessCode` as the voice platform sends it: a JSON number or a string of digits.
pub fn parse_access_code(value: &Value) -> Result<Option<i64>, String> {
    const PROBLEM: &str = "must be a number or a string of digits";
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => n.as_i64().filter(|c| *c >= 0).map(Some).ok_or_else(|| PROBLEM.to_string()),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => {
            let s = s.trim();
            if s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(PROBLEM.to_string());
            }
            s.parse().map(Some).map_err(|_| PROBLEM.to_string())
        }
        _ => Err(PROBLEM.to_string()),
    }
}

/// A request's state as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestState {
    Pending,
    Matched,
    Expired,
    Cancelled,
}

impl RequestState {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "PENDING",
            RequestState::Matched => "MATCHED",
            RequestState::Expired => "EXPIRED",
            RequestState::Cancelled => "CANCELLED",
        }
    }

    /// A pending request past its expiration reads as `EXPIRED` whether or not a sweep has run.
    pub fn as_seen(self, expires: Moment, now: Moment) -> RequestState {
        if self == RequestState::Pending && expires <= now {
            RequestState::Expired
        } else {
            self
        }
    }
}

impl std::str::FromStr for RequestState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "PENDING" => Ok(RequestState::Pending),
            "MATCHED" => Ok(RequestState::Matched),
            "EXPIRED" => Ok(RequestState::Expired),
            "CANCELLED" => Ok(RequestState::Cancelled),
            other => Err(format!("unknown call-in state {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(problems: &[FieldProblem]) -> Vec<&str> {
        problems.iter().map(|p| p.field.as_str()).collect()
    }

    #[test]
    fn empty_optional_fields_get_defaults() {
        let c = CallInGroupConfig::from_admin_body(json!({ "numbers": ["+14155550100"] })).unwrap();
        assert_eq!(c.access_code_digits, 4);
        assert_eq!(c.expiry_seconds, 300);
        assert!(c.unique_numbers);
        assert!(!c.require_caller_match);
        assert!(c.uses_codes());
    }

    #[test]
    fn each_bad_number_is_named_by_its_index() {
        let e = CallInGroupConfig::from_admin_body(json!({
            "numbers": ["+14155550100", "4155550101", "+14155550100", "+1555", "+14155550102"]
        }))
        .unwrap_err();
        assert_eq!(fields(&e), ["numbers[1]", "numbers[2]", "numbers[3]"]);
        assert!(e[1].problem.contains("numbers[0]"), "{:?}", e[1]);
    }

    #[test]
    fn shared_numbers_need_codes_and_ranges_hold() {
        let e = CallInGroupConfig::from_admin_body(json!({
            "numbers": ["+14155550100"], "uniqueNumbers": false, "accessCodeDigits": 0
        }))
        .unwrap_err();
        assert_eq!(fields(&e), ["accessCodeDigits"]);
        let e = CallInGroupConfig::from_admin_body(json!({
            "numbers": [], "accessCodeDigits": 10, "expirySeconds": 0
        }))
        .unwrap_err();
        assert_eq!(fields(&e), ["numbers", "accessCodeDigits", "expirySeconds"]);
        assert!(
            CallInGroupConfig::from_admin_body(json!({ "numbers": ["+14155550100"], "accessCodeDigits": 0 })).is_ok()
        );
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_refused_with_their_path() {
        let e = CallInGroupConfig::from_admin_body(json!({ "numbers": ["+14155550100"], "colour": 1 })).unwrap_err();
        assert_eq!(e[0].field, "colour");
        assert!(e[0].problem.contains("unknown field"), "{:?}", e[0]);
        let e = CallInGroupConfig::from_admin_body(json!({ "numbers": ["+14155550100", 7] })).unwrap_err();
        assert_eq!(e[0].field, "numbers[1]");
    }

    #[test]
    fn codes_have_the_digit_count_and_a_non_zero_first_digit() {
        let mut rng = rand::thread_rng();
        for digits in 1..=MAX_ACCESS_CODE_DIGITS {
            for _ in 0..200 {
                let code = draw_code(digits, &mut rng);
                assert_eq!(code.to_string().len() as u32, digits, "{code}");
            }
        }
        assert_eq!(code_space(2), 90);
        assert_eq!(code_space(0), 0);
        assert_eq!(code_space(9), 900_000_000);
    }

    #[test]
    fn a_free_code_is_found_until_the_space_is_full() {
        let mut rng = rand::thread_rng();
        let mut used = HashSet::new();
        for _ in 0..code_space(2) {
            let code = pick_free_code(2, &used, &mut rng).expect("a free code");
            assert!((10..100).contains(&code));
            assert!(used.insert(code), "{code} drawn twice");
        }
        assert_eq!(pick_free_code(2, &used, &mut rng), None);
    }

    #[test]
    fn access_codes_arrive_as_numbers_or_digit_strings() {
        assert_eq!(parse_access_code(&json!(1234)), Ok(Some(1234)));
        assert_eq!(parse_access_code(&json!("1234")), Ok(Some(1234)));
        assert_eq!(parse_access_code(&json!(null)), Ok(None));
        assert!(parse_access_code(&json!("12a4")).is_err());
        assert!(parse_access_code(&json!(-3)).is_err());
        assert!(parse_access_code(&json!(true)).is_err());
    }

    #[test]
    fn pending_past_expiry_reads_as_expired() {
        assert_eq!(
            RequestState::Pending.as_seen(crate::time::Moment::from_ms(1000), crate::time::Moment::from_ms(999)),
            RequestState::Pending
        );
        assert_eq!(
            RequestState::Pending.as_seen(crate::time::Moment::from_ms(1000), crate::time::Moment::from_ms(1000)),
            RequestState::Expired
        );
        assert_eq!(
            RequestState::Matched.as_seen(crate::time::Moment::from_ms(1000), crate::time::Moment::from_ms(5000)),
            RequestState::Matched
        );
    }
}
