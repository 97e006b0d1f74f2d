//! Phone numbers: parse to E.164 with a libphonenumber port, apply the service's number rules,
//! and never show more than the last four digits anywhere a human or a log can see.

use std::fmt;
use std::str::FromStr;

use phonenumber::country::Id as CountryId;
use phonenumber::{Mode, Type};

/// A number in E.164 form (`+14155550123`). `Display` and `Debug` mask it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct E164(String);

/// The service's number rules (domain.md § services).
#[derive(Debug, Clone)]
pub struct PhoneRules<'a> {
    pub default_country: &'a str,
    pub disallow_impossible: bool,
    pub disallow_premium: bool,
    pub allowed_countries: &'a [String],
    pub blocked_patterns: &'a [String],
}

impl Default for PhoneRules<'_> {
    fn default() -> Self {
        PhoneRules {
            default_country: "US",
            disallow_impossible: true,
            disallow_premium: true,
            allowed_countries: &[],
            blocked_patterns: &[],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneRejection {
    /// Does not parse, or is not a possible number.
    Invalid(String),
    Premium(String),
    NotAllowed(String),
}

impl E164 {
    /// Parse and check a number against the rules.
    pub fn parse(raw: &str, rules: &PhoneRules<'_>) -> Result<E164, PhoneRejection> {
        let shown = mask(raw);
        let country = CountryId::from_str(&rules.default_country.to_ascii_uppercase()).ok();
        let parsed = phonenumber::parse(country, raw.trim())
            .map_err(|_| PhoneRejection::Invalid(format!("phoneNumber {shown} is not a phone number")))?;
        let e164 = parsed.format().mode(Mode::E164).to_string();
        let shown = mask(&e164);
        // One pass over the number's metadata patterns serves both checks: `is_valid` is exactly
        // "its type is known" computed on the national number as written, which is the same
        // string `number_type` uses unless the national number has leading zeros (Italy).
        let kind = (rules.disallow_impossible || rules.disallow_premium)
            .then(|| parsed.number_type(&phonenumber::metadata::DATABASE));
        let valid = match kind {
            Some(kind) if parsed.national().zeros() == 0 => kind != Type::Unknown,
            _ => parsed.is_valid(),
        };
        if rules.disallow_impossible && !valid {
            return Err(PhoneRejection::Invalid(format!(
                "phoneNumber {shown} is not a valid number for its country; send it with + and the country code"
            )));
        }
        if rules.disallow_premium && kind == Some(Type::PremiumRate) {
            return Err(PhoneRejection::Premium(format!("phoneNumber {shown} is a premium-rate number")));
        }
        if !rules.allowed_countries.is_empty() {
            let region = parsed.country().id().map(|id| id.as_ref().to_string());
            let allowed =
                region.as_deref().is_some_and(|r| rules.allowed_countries.iter().any(|c| c.eq_ignore_ascii_case(r)));
            if !allowed {
                return Err(PhoneRejection::NotAllowed(format!(
                    "phoneNumber {shown} is in a country this service does not call"
                )));
            }
        }
        for pattern in rules.blocked_patterns {
            if blocked_by(pattern, &e164) {
                return Err(PhoneRejection::NotAllowed(format!("phoneNumber {shown} is blocked for this service")));
            }
        }
        Ok(E164(e164))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A pattern is a prefix (`+1900`) or a `/regex/`. Invalid regexes are refused when the service
/// is written, so here they simply never match.
pub fn blocked_by(pattern: &str, e164: &str) -> bool {
    match pattern.strip_prefix('/').and_then(|p| p.strip_suffix('/')) {
        Some(re) => regex::Regex::new(re).map(|r| r.is_match(e164)).unwrap_or(false),
        None => e164.starts_with(pattern),
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask(&self.0))
    }
}

impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E164({})", mask(&self.0))
    }
}

/// All but the last four digits replaced by `*` (non-digits dropped): `+14155550123` → `*******0123`.
pub fn mask(raw: &str) -> String {
    let digits: Vec<char> = raw.chars().filter(|c| c.is_ascii_digit()).collect();
    let keep = digits.len().min(4);
    let hidden = digits.len() - keep;
    let mut out = "*".repeat(hidden.max(1));
    out.extend(&digits[hidden..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_number_is_normalised_with_default_country() {
        let n = E164::parse("(415) 555-2671", &PhoneRules::default()).unwrap();
        assert_eq!(n.as_str(), "+14155552671");
        let n = E164::parse("020 7946 0958", &PhoneRules { default_country: "GB", ..Default::default() }).unwrap();
        assert_eq!(n.as_str(), "+442079460958");
    }

    #[test]
    fn impossible_number_is_refused_with_masked_message() {
        let e = E164::parse("+1 555 123", &PhoneRules::default()).unwrap_err();
        match e {
            PhoneRejection::Invalid(m) => assert!(!m.contains("555123") && m.contains("5123"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(E164::parse("hello", &PhoneRules::default()), Err(PhoneRejection::Invalid(_))));
    }

    #[test]
    fn premium_allowed_country_and_blocked_patterns() {
        assert!(matches!(E164::parse("+19005550123", &PhoneRules::default()), Err(PhoneRejection::Premium(_))));
        let gb = vec!["GB".to_string()];
        let rules = PhoneRules { allowed_countries: &gb, ..Default::default() };
        assert!(matches!(E164::parse("+14155552671", &rules), Err(PhoneRejection::NotAllowed(_))));
        assert!(E164::parse("+442079460958", &rules).is_ok());
        let blocked = vec!["+1415".to_string(), "/^\\+44.*58$/".to_string()];
        let rules = PhoneRules { blocked_patterns: &blocked, ..Default::default() };
        assert!(matches!(E164::parse("+14155552671", &rules), Err(PhoneRejection::NotAllowed(_))));
        assert!(matches!(E164::parse("+442079460958", &rules), Err(PhoneRejection::NotAllowed(_))));
        assert!(E164::parse("+12125552671", &rules).is_ok());
    }

    #[test]
    fn display_and_debug_mask_all_but_last_four() {
        let n = E164::parse("+14155552671", &PhoneRules::default()).unwrap();
        assert_eq!(n.to_string(), "*******2671");
        assert_eq!(format!("{n:?}"), "E164(*******2671)");
        assert_eq!(mask("12"), "*12");
    }
}
