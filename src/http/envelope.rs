//! Rendering: every JSON answer of the public, admin and internal APIs is an envelope.

use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::error::ApiError;
use crate::telemetry::request_context;

impl ResponseError for ApiError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status());
        if let Some(seconds) = self.retry_after_seconds {
            builder.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        builder.json(self.body(&request_context::corr_id()))
    }
}

/// `{ status: { code: 200, message: "Successful", corrId }, data }`.
pub fn ok(data: impl Serialize) -> HttpResponse {
    HttpResponse::Ok().json(ok_body(data))
}

pub fn ok_body(data: impl Serialize) -> serde_json::Value {
    // Data types here always serialise (no maps with non-string keys).
    crate::error::success_body(serde_json::to_value(data).unwrap_or_default(), &request_context::corr_id())
}
