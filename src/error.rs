//! Errors as clients see them: stable reason codes, field problems, the error envelope body.
//! Plain data (no actix), so domain rules can refuse with the same type; `http::envelope` renders it.

use http::StatusCode;
use serde::Serialize;
use serde_json::{json, Value};

/// One table of reasons: the enum, its wire names and `Reason::ALL` (for the OpenAPI enum)
/// come from the same lines, so they cannot drift apart.
macro_rules! reasons {
    ($($variant:ident => $code:literal,)*) => {
        /// Stable reason codes (api.md § Reason codes). Clients switch on these; never rename one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Reason {
            $($variant,)*
        }

        impl Reason {
            /// Every reason, in the table's order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => $code,)*
                }
            }
        }
    };
}

reasons! {
    MalformedJson => "MALFORMED_JSON",
    ValidationFailed => "VALIDATION_FAILED",
    KindDisabled => "KIND_DISABLED",
    UnknownService => "UNKNOWN_SERVICE",
    UnknownGroup => "UNKNOWN_GROUP",
    InvalidPhoneNumber => "INVALID_PHONE_NUMBER",
    PremiumNumber => "PREMIUM_NUMBER",
    NumberNotAllowed => "NUMBER_NOT_ALLOWED",
    TimeOutOfRange => "TIME_OUT_OF_RANGE",
    OfficeClosed => "OFFICE_CLOSED",
    AlreadyCompleted => "ALREADY_COMPLETED",
    NotReschedulable => "NOT_RESCHEDULABLE",
    Unauthorized => "UNAUTHORIZED",
    ForbiddenScope => "FORBIDDEN_SCOPE",
    NotFound => "NOT_FOUND",
    MethodNotAllowed => "METHOD_NOT_ALLOWED",
    IllegalTransition => "ILLEGAL_TRANSITION",
    IdempotencyInProgress => "IDEMPOTENCY_IN_PROGRESS",
    HasUnfinishedCallbacks => "HAS_UNFINISHED_CALLBACKS",
    PayloadTooLarge => "PAYLOAD_TOO_LARGE",
    UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
    IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
    SlotFull => "SLOT_FULL",
    Throttled => "THROTTLED",
    AlreadyQueued => "ALREADY_QUEUED",
    QueueFull => "QUEUE_FULL",
    PoolExhausted => "POOL_EXHAUSTED",
    RequestTimeout => "REQUEST_TIMEOUT",
    Unavailable => "UNAVAILABLE",
    Internal => "INTERNAL",
}

impl Reason {
    pub fn status(self) -> StatusCode {
        use Reason::*;
        match self {
            MalformedJson | ValidationFailed | KindDisabled | UnknownService | UnknownGroup | InvalidPhoneNumber
            | PremiumNumber | NumberNotAllowed | TimeOutOfRange | OfficeClosed | AlreadyCompleted
            | NotReschedulable => StatusCode::BAD_REQUEST,
            Unauthorized => StatusCode::UNAUTHORIZED,
            ForbiddenScope => StatusCode::FORBIDDEN,
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            IllegalTransition | IdempotencyInProgress | HasUnfinishedCallbacks => StatusCode::CONFLICT,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            SlotFull | Throttled | AlreadyQueued => StatusCode::TOO_MANY_REQUESTS,
            QueueFull | PoolExhausted | Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FieldProblem {
    pub field: String,
    pub problem: String,
}

impl FieldProblem {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        FieldProblem { field: field.into(), problem: problem.into() }
    }
}

/// An error answer. The message is for humans; `reason` is for programs.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub reason: Reason,
    pub message: String,
    pub details: Vec<FieldProblem>,
    pub retry_after_seconds: Option<u64>,
    /// Proposed slots carried by a 429 of create/reschedule (`data.slots`).
    pub slots: Option<Value>,
}

impl ApiError {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        ApiError { reason, message: message.into(), details: Vec::new(), retry_after_seconds: None, slots: None }
    }

    pub fn validation(details: Vec<FieldProblem>) -> Self {
        let message = match details.as_slice() {
            [one] => format!("{}: {}", one.field, one.problem),
            many => format!("{} fields are invalid; see details", many.len()),
        };
        ApiError { details, ..ApiError::new(Reason::ValidationFailed, message) }
    }

    pub fn field(field: &str, problem: impl Into<String>) -> Self {
        Self::validation(vec![FieldProblem::new(field, problem)])
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::new(Reason::NotFound, format!("{what} not found"))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(Reason::Unauthorized, message)
    }

    /// Database unreachable or too slow: fast 503 with a retry hint.
    pub fn unavailable() -> Self {
        ApiError {
            retry_after_seconds: Some(1),
            ..ApiError::new(Reason::Unavailable, "the database is unavailable or too slow; retry shortly")
        }
    }

    pub fn internal() -> Self {
        ApiError::new(Reason::Internal, "internal error; quote the corrId when reporting it")
    }

    /// `Retry-After` in whole seconds, rounded up (at least 1).
    pub fn with_retry_after(mut self, after: crate::time::Millis) -> Self {
        self.retry_after_seconds = Some((after.as_ms().max(1) as u64).div_ceil(1000));
        self
    }

    pub fn with_slots(mut self, slots: Value) -> Self {
        self.slots = Some(slots);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.reason.status()
    }

    /// The envelope body, with the given correlation id.
    pub fn body(&self, corr_id: &str) -> Value {
        let mut status = json!({
            "code": self.status().as_u16(),
            "message": self.message,
            "corrId": corr_id,
            "reason": self.reason.as_str(),
        });
        if !self.details.is_empty() {
            status["details"] = json!(self.details);
        }
        let mut body = json!({ "status": status });
        if let Some(slots) = &self.slots {
            body["data"] = json!({ "slots": slots });
        }
        body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason.as_str(), self.message)
    }
}

/// The envelope of a success: `{ status: { code: 200, message: "Successful", corrId }, data }`.
/// Here beside the error envelope so an answer stored before it is sent (an `Idempotency-Key`'s
/// first answer) has the same shape as one rendered by `http::envelope`.
pub fn success_body(data: Value, corr_id: &str) -> Value {
    json!({
        "status": { "code": 200, "message": "Successful", "corrId": corr_id },
        "data": data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_maps_to_the_documented_status() {
        assert_eq!(Reason::SlotFull.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(Reason::QueueFull.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(Reason::IdempotencyKeyReused.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(Reason::AlreadyCompleted.status(), StatusCode::BAD_REQUEST);
        assert_eq!(Reason::IllegalTransition.as_str(), "ILLEGAL_TRANSITION");
    }

    #[test]
    fn validation_error_lists_each_field() {
        let e = ApiError::validation(vec![
            FieldProblem::new("serviceName", "is required"),
            FieldProblem::new("phoneNumber", "is required"),
        ]);
        let body = e.body("c1");
        assert_eq!(body["status"]["code"], 400);
        assert_eq!(body["status"]["reason"], "VALIDATION_FAILED");
        assert_eq!(body["status"]["details"].as_array().unwrap().len(), 2);
        assert!(body.get("data").is_none());
    }
}
