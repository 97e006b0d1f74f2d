//! Fault injection (`faults.enabled`, tests only; internal listener, admin token): block a worker,
//! panic in a handler or a background task, stall the log writer, fail the next virtual-queue
//! proxy write, stall a booking batch or poison one booking — so every alarm of observability.md can be raised for real.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::http::envelope;
use crate::http::extractors::{AdminAuth, JsonBody};
use crate::ops::AppState;
use crate::telemetry::{event_loop, faults};
use crate::time::Millis;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stall {
    /// How long, in ms (at most 60 s).
    pub ms: u64,
    /// Log lines to emit while the writer is stalled (`stall-log-writer` only).
    #[serde(default)]
    pub lines: u64,
}

fn bounded(ms: u64) -> Result<Duration, ApiError> {
    if ms == 0 || ms > 60_000 {
        return Err(ApiError::field("ms", "must be between 1 and 60000"));
    }
    Ok(Duration::from_millis(ms))
}

/// Block this worker's thread (and so its event loop) for `ms`.
pub async fn block_worker(_admin: AdminAuth, body: JsonBody<Stall>) -> Result<HttpResponse, ApiError> {
    let pause = bounded(body.value.ms)?;
    let worker = event_loop::current_worker();
    tracing::warn!(worker = ?worker, ms = body.value.ms, "fault injection: blocking this worker");
    std::thread::sleep(pause);
    Ok(envelope::ok(json!({ "worker": worker })))
}

/// Panic inside a handler: the middleware answers 500 and counts `UNCAUGHT_EXCEPTION`.
pub async fn panic_in_handler(_admin: AdminAuth) -> HttpResponse {
    panic!("fault injection: panic in a handler");
}

/// The monitor's dispatch task panics on its next pass, and is restarted.
pub async fn panic_in_task(_admin: AdminAuth) -> HttpResponse {
    faults::arm_task_panic();
    envelope::ok(json!({ "armed": "panic-task" }))
}

/// Stall the log writer like a stuck stdout and emit `lines` lines meanwhile: the request is not
/// held up, lines beyond the writer's buffer are dropped and counted as `LOGGING_FAILURE`.
pub async fn stall_log_writer(_admin: AdminAuth, body: JsonBody<Stall>) -> Result<HttpResponse, ApiError> {
    let pause = bounded(body.value.ms)?;
    if body.value.lines > 1_000_000 {
        return Err(ApiError::field("lines", "must be at most 1000000"));
    }
    faults::stall_log_writer_until(crate::time::now() + Millis::from_std(pause));
    for n in 0..body.value.lines {
        tracing::warn!(n, "fault injection: log line written while the writer is stalled");
    }
    Ok(envelope::ok(json!({ "emitted": body.value.lines })))
}

/// The next virtual-queue proxy write fails with a real database error.
pub async fn fail_vq_proxy(_admin: AdminAuth, state: web::Data<AppState>) -> HttpResponse {
    state.store_faults().arm_vq_proxy_failure();
    envelope::ok(json!({ "armed": "fail-vq-proxy" }))
}

/// The next booking batch stalls past the statement timeout after writing its rows.
pub async fn stall_booking_batch(_admin: AdminAuth, state: web::Data<AppState>) -> HttpResponse {
    state.store_faults().arm_batch_stall();
    envelope::ok(json!({ "armed": "stall-booking-batch" }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchFaultBody {
    /// `lock_timeout`, `commit_answer_lost`, `rolled_back_answer_lost` or `panic`.
    pub fault: String,
    /// How many batches meet it (default 1).
    #[serde(default)]
    pub times: Option<u32>,
}

/// The next booking batches meet a fault of the writer's failure paths (issue 23).
pub async fn booking_batch_fault(
    _admin: AdminAuth,
    state: web::Data<AppState>,
    body: JsonBody<BatchFaultBody>,
) -> Result<HttpResponse, ApiError> {
    use crate::store::BatchFault;
    let fault = match body.value.fault.as_str() {
        "lock_timeout" => BatchFault::LockTimeout,
        "commit_answer_lost" => BatchFault::CommitAnswerLost,
        "rolled_back_answer_lost" => BatchFault::RolledBackAnswerLost,
        "panic" => BatchFault::Panic,
        _ => {
            return Err(ApiError::field(
                "fault",
                "must be lock_timeout, commit_answer_lost, rolled_back_answer_lost or panic",
            ))
        }
    };
    state.store_faults().arm_batch_fault(fault, body.value.times.unwrap_or(1).max(1));
    Ok(envelope::ok(json!({ "armed": body.value.fault })))
}

/// The booking writer stalls for `ms` before it looks at its next batch (a hung writer), so
/// queued bookings age towards their deadlines.
pub async fn stall_booking_writer(
    _admin: AdminAuth,
    state: web::Data<AppState>,
    body: JsonBody<Stall>,
) -> Result<HttpResponse, ApiError> {
    state.store_faults().arm_writer_stall(bounded(body.value.ms)?);
    Ok(envelope::ok(json!({ "armed": "stall-booking-writer" })))
}

/// The next bulk admin operation (cancel, re-drive) fails halfway through its ids.
pub async fn fail_bulk_midway(_admin: AdminAuth, state: web::Data<AppState>) -> HttpResponse {
    state.store_faults().arm_bulk_failure();
    envelope::ok(json!({ "armed": "fail-bulk-midway" }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Collision {
    /// E.164, as the booking's number is stored.
    pub phone_number: String,
    /// An existing callback's id.
    pub id: String,
}

/// The next booking for the number is written under an existing id: the database refuses it.
pub async fn poison_booking(_admin: AdminAuth, state: web::Data<AppState>, body: JsonBody<Collision>) -> HttpResponse {
    let Collision { phone_number, id } = body.value;
    state.store_faults().arm_booking_id_collision(phone_number, id);
    envelope::ok(json!({ "armed": "poison-booking" }))
}
