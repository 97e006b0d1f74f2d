//! Follow-ups when the customer was not reached (issue 27): which outcomes a service retries, how
//! many times and after how long, and the times a follow-up may take — inside office hours, with
//! room in its slot, within `maxFuture` — earliest first. The store books the first candidate whose
//! place it can still take, in the transaction of the platform's report.

use std::collections::HashMap;

use crate::domain::booking::{scheduled_slot, CapacityClaim, ServiceRules};
use crate::domain::callback::CompletionReason;
use crate::domain::service::{RetryPolicy, RetryRule};
use crate::time::{Millis, Moment, DAY};

/// The outcomes a platform reports with `COMPLETED` when nobody was reached, and the metric's
/// `outcome` label of each.
pub const RETRY_REASONS: [(&str, &str); 4] =
    [("NO_ANSWER", "no_answer"), ("BUSY", "busy"), ("VOICEMAIL", "voicemail"), ("UNREACHABLE", "unreachable")];

/// The `outcome` label of a completion reason the policy can retry; `None` for any other.
pub fn outcome_label(reason: &CompletionReason) -> Option<&'static str> {
    RETRY_REASONS.iter().find(|(r, _)| *r == reason.as_str()).map(|(_, label)| *label)
}

/// The policy's rule for a completion reason.
pub fn rule_for<'a>(policy: &'a RetryPolicy, reason: &CompletionReason) -> Option<&'a RetryRule> {
    match reason.as_str() {
        "NO_ANSWER" => policy.on_no_answer.as_ref(),
        "BUSY" => policy.on_busy.as_ref(),
        "VOICEMAIL" => policy.on_voicemail.as_ref(),
        "UNREACHABLE" => policy.on_unreachable.as_ref(),
        _ => None,
    }
}

/// The delay before the follow-up of a callback that is itself follow-up number `retry_number`
/// (0: the original); `None` when the rule's attempts are spent.
pub fn delay(rule: &RetryRule, retry_number: i64) -> Option<Millis> {
    if retry_number < 0 || retry_number >= i64::from(rule.attempts) {
        return None;
    }
    let index = (retry_number as usize).min(rule.after_seconds.len().saturating_sub(1));
    rule.after_seconds.get(index).map(|s| Millis::from_secs(*s))
}

/// A time a follow-up may take: its desired and due times and the place it reserves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub desired_ms: Moment,
    pub due_ms: Moment,
    pub claim: Option<CapacityClaim>,
}

/// How far each step of the search reads the slot grid.
const SEARCH_WINDOW: Millis = Millis::from_ms(7 * DAY.as_ms());

/// Up to `limit` times no earlier than `earliest`, earliest first: each the first open instant of
/// a slot that has room by `reserved` (bucket start → places taken), within the service's bookable
/// range (`minLeadSeconds` … `maxFuture` from `now`). Empty: no slot within `maxFuture`.
pub fn candidates(
    rules: &ServiceRules<'_>,
    earliest: Moment,
    now: Moment,
    reserved: &HashMap<Moment, u32>,
    limit: usize,
) -> Vec<Candidate> {
    let (bookable_from, latest) = rules.bookable_range(now);
    let start = earliest.max(bookable_from);
    let grid = rules.grid();
    let mut out: Vec<Candidate> = Vec::new();
    let mut last_bucket = None;
    let mut from = start;
    while from <= latest && out.len() < limit {
        let to = from.saturating_add(SEARCH_WINDOW).min(latest.saturating_add(Millis::from_ms(1)));
        for slot in grid.open_slots(rules.hours, from, to, start, latest) {
            // A bucket across the window's edge comes back in the next window too.
            if last_bucket.is_some_and(|b| slot.bucket.start <= b) {
                continue;
            }
            last_bucket = Some(slot.bucket.start);
            if reserved.get(&slot.bucket.start).copied().unwrap_or(0) >= slot.total {
                continue;
            }
            if let Ok((due_ms, claim)) = scheduled_slot(slot.offered, rules, now) {
                out.push(Candidate { desired_ms: slot.offered, due_ms, claim });
                if out.len() == limit {
                    break;
                }
            }
        }
        from = to;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::calendar::{Calendar, CalendarBody, Hours};
    use crate::domain::service::ServiceConfig;
    use jiff::tz::TimeZone;
    use proptest::prelude::*;

    const NOW: Moment = Moment::from_ms(1_795_000_000_000);

    fn rule(attempts: u32, after: &[u64]) -> RetryRule {
        RetryRule { attempts, after_seconds: after.to_vec() }
    }

    #[test]
    fn delays_follow_the_list_repeat_its_last_value_and_stop_after_the_attempts() {
        let r = rule(3, &[600, 3600]);
        assert_eq!(delay(&r, 0), Some(Millis::from_ms(600_000)));
        assert_eq!(delay(&r, 1), Some(Millis::from_ms(3_600_000)));
        assert_eq!(delay(&r, 2), Some(Millis::from_ms(3_600_000)));
        assert_eq!(delay(&r, 3), None);
        assert_eq!(outcome_label(&CompletionReason::parse("BUSY")), Some("busy"));
        assert_eq!(outcome_label(&CompletionReason::parse("AGENT_CONNECTED")), None);
    }

    fn calendar(regular: &str) -> Calendar {
        Calendar::parse(&CalendarBody {
            timezone: "UTC".into(),
            regular: vec![regular.into()],
            special: vec![],
            holidays: vec!["12-25".into()],
            effective: vec![],
        })
        .unwrap()
    }

    proptest! {
        /// A follow-up is never outside office hours, never in a full slot, never before its delay
        /// or past `maxFuture`, and never more than the rule's attempts.
        #[test]
        fn a_follow_up_keeps_every_rule(
            hours in prop::sample::select(vec!["Mon-Fri 09:00-17:00", "Sat-Mon 22:00-06:00", "Mon-Sun 00:00-24:00", "Wed 12:00-12:30"]),
            slot_minutes in prop::sample::select(vec![5u32, 15, 30, 60]),
            capacity in 1u32..3,
            delay_s in 1u64..(10 * 86_400),
            max_days in 1i64..30,
            full in prop::collection::vec(0u32..400, 0..60),
            retry_number in 0i64..5,
            attempts in 1u32..4,
        ) {
            let cal = calendar(hours);
            let config = ServiceConfig { slot_minutes, slot_capacity: capacity, max_future: format!("{max_days}d"), ..ServiceConfig::default() };
            let rules = ServiceRules { config: &config, hours: Hours::Calendar(&cal), tz: TimeZone::UTC };
            let bucket = Millis::from_ms(i64::from(slot_minutes) * 60_000);
            let first = NOW.truncate(bucket);
            // Some buckets full (every place taken).
            let reserved: HashMap<Moment, u32> = full.iter().map(|n| (first + bucket * i64::from(*n), capacity)).collect();
            let r = rule(attempts, &[delay_s]);
            let Some(delay) = delay(&r, retry_number) else {
                prop_assert!(retry_number >= i64::from(attempts));
                return Ok(());
            };
            prop_assert!(retry_number < i64::from(attempts));
            let earliest = NOW + delay;
            let found = candidates(&rules, earliest, NOW, &reserved, 5);
            prop_assert!(found.len() <= 5);
            for (i, c) in found.iter().enumerate() {
                prop_assert!(cal.is_open(c.desired_ms), "outside office hours: {:?}", c.desired_ms);
                prop_assert!(c.desired_ms >= earliest);
                prop_assert!(c.desired_ms <= NOW + DAY * max_days);
                let claim = c.claim.expect("a scheduled follow-up takes a place");
                prop_assert!(reserved.get(&claim.bucket_start).copied().unwrap_or(0) < claim.capacity, "over capacity");
                prop_assert!(i == 0 || found[i - 1].desired_ms < c.desired_ms, "earliest first, one per slot");
            }
            if earliest > NOW + DAY * max_days {
                prop_assert!(found.is_empty(), "nothing past maxFuture");
            }
        }
    }
}
