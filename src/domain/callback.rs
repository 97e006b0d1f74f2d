//! The callback lifecycle (domain.md § Callback lifecycle): states, outcomes, who moved it.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Scheduled,
    Queued,
    Routing,
    Processing,
    Completed,
}

impl State {
    pub const ALL: [State; 5] = [State::Scheduled, State::Queued, State::Routing, State::Processing, State::Completed];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Scheduled => "SCHEDULED",
            State::Queued => "QUEUED",
            State::Routing => "ROUTING",
            State::Processing => "PROCESSING",
            State::Completed => "COMPLETED",
        }
    }

    /// Queue position and EWT are shown only while the platform holds the callback.
    pub fn is_active(self) -> bool {
        matches!(self, State::Queued | State::Routing | State::Processing)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        State::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("'{s}' is not one of SCHEDULED, QUEUED, ROUTING, PROCESSING, COMPLETED"))
    }
}

/// `callbackReason` values on `COMPLETED` (the GMS set).
/// The last four (issue 27) say the customer was not reached: a service's retry policy may book a
/// follow-up for them.
pub const COMPLETION_REASONS: [&str; 16] = [
    "AGENT_CONNECTED",
    "CANCELLED",
    "NOT_AVAILABLE",
    "FAIL_CALL_TO_CUSTOMER",
    "FAIL_TIMEOUT_TTL",
    "FAIL_NO_CUSTOMER_NUMBER",
    "FAIL_USER_NO_CONFIRM",
    "FAIL_QUEUEING",
    "FAIL_AGENT_CONNECT",
    "FAIL_TARGET_NOT_FOUND",
    "FAIL_ERROR",
    "SUBMIT_FAILED",
    "NO_ANSWER",
    "BUSY",
    "VOICEMAIL",
    "UNREACHABLE",
];

/// What a hand-off message asks of the voice platform (its `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandOffKind {
    /// Dial this callback.
    Submit,
    /// Forget a callback handed over earlier (cancelled after its hand-off).
    Cancel,
}

impl HandOffKind {
    /// The message's `type` (`callback.submit`, `callback.cancel`).
    pub fn as_str(self) -> &'static str {
        match self {
            HandOffKind::Submit => "callback.submit",
            HandOffKind::Cancel => "callback.cancel",
        }
    }

    /// The `type` label of `ges_dispatch_published_total`.
    pub fn label(self) -> &'static str {
        match self {
            HandOffKind::Submit => "submit",
            HandOffKind::Cancel => "cancel",
        }
    }
}

/// Why a callback completed: one of Ringback's own reasons, or the one the platform reported
/// (GES reasons are open-ended: `AGENT_CONNECTED`, `BUSY`, a platform's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompletionReason {
    Cancelled,
    Erased,
    SubmitFailed,
    FailTimeoutTtl,
    Reported(String),
}

impl CompletionReason {
    /// A stored or reported reason.
    pub fn parse(text: &str) -> CompletionReason {
        match text {
            REASON_CANCELLED => CompletionReason::Cancelled,
            REASON_ERASED => CompletionReason::Erased,
            REASON_SUBMIT_FAILED => CompletionReason::SubmitFailed,
            REASON_FAIL_TIMEOUT_TTL => CompletionReason::FailTimeoutTtl,
            other => CompletionReason::Reported(other.to_string()),
        }
    }

    /// As stored, reported and labelled (`callbackReason`, the `reason` label).
    pub fn as_str(&self) -> &str {
        match self {
            CompletionReason::Cancelled => REASON_CANCELLED,
            CompletionReason::Erased => REASON_ERASED,
            CompletionReason::SubmitFailed => REASON_SUBMIT_FAILED,
            CompletionReason::FailTimeoutTtl => REASON_FAIL_TIMEOUT_TTL,
            CompletionReason::Reported(reason) => reason,
        }
    }
}

pub const REASON_CANCELLED: &str = "CANCELLED";
/// Completed because the number was erased on request (issue 27); not a reason platforms report.
pub const REASON_ERASED: &str = "ERASED";
/// The monitor spent the hand-off attempts (`maxDispatchAttempts`).
pub const REASON_SUBMIT_FAILED: &str = "SUBMIT_FAILED";
/// Handed over but not `PROCESSING` within `queuedTtlSeconds`.
pub const REASON_FAIL_TIMEOUT_TTL: &str = "FAIL_TIMEOUT_TTL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Api,
    Admin,
    Monitor,
    Platform,
}

impl Actor {
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Api => "api",
            Actor::Admin => "admin",
            Actor::Monitor => "monitor",
            Actor::Platform => "platform",
        }
    }
}

/// How a booking is classified: immediate (queued now) or scheduled (handed over when due).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Immediate,
    Scheduled,
}

impl Kind {
    pub fn as_label(self) -> &'static str {
        match self {
            Kind::Immediate => "immediate",
            Kind::Scheduled => "scheduled",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_only_handed_over_states_are_active() {
        for s in State::ALL {
            assert_eq!(s.as_str().parse::<State>().unwrap(), s);
        }
        assert!("DONE".parse::<State>().is_err());
        assert!(!State::Scheduled.is_active());
        assert!(State::Routing.is_active());
        assert!(!State::Completed.is_active());
    }
}
