//! Booking a callback (domain.md § Booking, steps 1–6), with its `Idempotency-Key`: the key's
//! record, the service's rules, throttles, capacity and guards, the insert (shared with the
//! bookings that arrive meanwhile: `store::writer`), waking the monitor, and the booking's
//! counters (`ges_callbacks_created`, `ges_callbacks_rejected`, the throttle alarms) and logs.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Map, Value};

use super::service_context::{self, ServiceContext};
use super::AppState;
use crate::coord::throttle::ThrottleOutcome;
use crate::domain::booking::{self, CreateRequest};
use crate::domain::capacity;
use crate::domain::key_scope::KeyScope;
use crate::domain::throttle::{self, CounterKind, CounterSpec};
use crate::error::{ApiError, Reason};
use crate::store::{
    Booking, BookingGuards, IdempotencyBegin, IdempotencyResult, InsertOutcome, NewCallback, Tenant, Ttls,
};
use crate::telemetry::catalogue::{
    CALLBACKS_CREATED, CALLBACKS_REJECTED, CB_ENQUEUE_LIMIT_REACHED, CB_TTL_LIMIT_REACHED, UNCAUGHT_EXCEPTION,
    WIDGET_RATE_LIMIT_REACHED,
};
use crate::telemetry::trace_context::TraceContext;
use crate::time::{format_utc, Millis, Moment, DAY};

/// A request's `Idempotency-Key` with the digest of the body it came with.
pub struct Idempotency {
    pub key: String,
    pub body_digest: String,
}

/// What a create answers.
pub enum Created {
    /// Booked now: the callback's id and the envelope body of the answer.
    Booked { id: String, body: Value },
    /// The first answer to this `Idempotency-Key`, replayed as it was sent.
    Replayed { status: u16, body: String },
}

/// Who asks for a booking: the key's tenant and scope, the client's address, and the request's
/// deadline (`http.request_timeout_ms` after it arrived).
pub struct Caller {
    pub tenant: Tenant,
    pub scope: KeyScope,
    pub client: IpAddr,
    pub deadline: Instant,
    /// The request's W3C trace context, stored with the callback.
    pub trace: Option<TraceContext>,
}

/// Book `request` for the caller's tenant, exactly once per `Idempotency-Key` when one is given.
/// A widget key is public (issue 22): its bookings are limited per client address, and the
/// service's priority applies whatever it sends.
///
/// The booking runs to its end in a task of its own: a client that disconnects does not cut it
/// short, so its throttle reservation and its `Idempotency-Key` record always settle with the
/// real outcome (released on a refusal, kept with the answer on success) — never left held.
pub async fn create(
    state: &AppState,
    caller: Caller,
    mut request: Result<CreateRequest, ApiError>,
    idempotency: Option<Idempotency>,
) -> Result<Created, ApiError> {
    if caller.scope == KeyScope::Widget {
        admit_widget_booking(state, &caller.tenant, caller.client)?;
        if let Ok(request) = &mut request {
            request.priority = None;
        }
    }
    let state = state.clone();
    let context = crate::telemetry::request_context::current();
    // Exported traces show the booking as an operation of its own inside the request: a span that
    // lasts as long as the task (not entered: see `request_context` for why no span is).
    let span = context
        .as_ref()
        .and_then(|c| c.exported())
        .map(|request| tracing::info_span!(parent: request, "create_callback", otel.kind = "internal"));
    let work = async move {
        let _span = span;
        create_to_end(&state, &caller, request, idempotency).await
    };
    let task = tokio::spawn(crate::telemetry::request_context::scope(context, work));
    task.await.unwrap_or_else(|_| {
        // The panic hook logged where; the request gets the 500 envelope a handler panic gets.
        metrics::counter!(UNCAUGHT_EXCEPTION).increment(1);
        Err(ApiError::internal())
    })
}

async fn create_to_end(
    state: &AppState,
    caller: &Caller,
    request: Result<CreateRequest, ApiError>,
    idempotency: Option<Idempotency>,
) -> Result<Created, ApiError> {
    let tenant = &caller.tenant;
    let Some(idempotency) = idempotency else {
        return book(state, caller, request, None).await;
    };
    let key = idempotency.key.as_str();
    match state.store.begin_idempotent(&tenant.id, key, &idempotency.body_digest, crate::time::now()).await? {
        IdempotencyBegin::Fresh => {}
        IdempotencyBegin::Replay { status, body } => return Ok(Created::Replayed { status, body }),
        IdempotencyBegin::DifferentBody => {
            return Err(ApiError::new(
                Reason::IdempotencyKeyReused,
                "this Idempotency-Key was used with a different body",
            ))
        }
        IdempotencyBegin::InProgress => {
            return Err(ApiError::new(
                Reason::IdempotencyInProgress,
                "a request with this Idempotency-Key is still being processed",
            )
            .with_retry_after(Millis::from_secs(1)))
        }
    }
    let answer = book(state, caller, request, Some(key)).await;
    // A booking stores its answer with itself; a refusal is remembered (400) or let go.
    if let Err(e) = &answer {
        let remembered = if e.status() == http::StatusCode::BAD_REQUEST {
            let result = IdempotencyResult {
                tenant_id: tenant.id.clone(),
                key: key.to_string(),
                status: 400,
                body: e.body(&crate::telemetry::request_context::corr_id()).to_string(),
            };
            state.store.finish_idempotent(&result).await
        } else {
            // 429 and 5xx are not remembered, so a retry can succeed.
            state.store.release_idempotent(&tenant.id, key).await
        };
        if let Err(e) = remembered {
            tracing::warn!(error = %e, "could not update the idempotency record");
        }
    }
    answer
}

/// The booking itself; every refusal is counted here, under the service once it is known.
async fn book(
    state: &AppState,
    caller: &Caller,
    request: Result<CreateRequest, ApiError>,
    idempotency_key: Option<&str>,
) -> Result<Created, ApiError> {
    let tenant = &caller.tenant;
    let mut service_label = None;
    let result = match request {
        Ok(request) => book_valid(state, caller, request, idempotency_key, &mut service_label).await,
        Err(e) => Err(e),
    };
    if let Err(e) = &result {
        let service = service_label.unwrap_or_else(|| super::tenant_directory::UNKNOWN_SERVICE.to_string());
        state.refusals.add(&tenant.id, &service, e.reason.as_str(), crate::time::now());
        metrics::counter!(CALLBACKS_REJECTED, "tenant" => tenant.name.clone(), "service" => service, "reason" => e.reason.as_str())
            .increment(1);
        tracing::debug!(reason = e.reason.as_str(), "booking refused");
    }
    result
}

async fn book_valid(
    state: &AppState,
    caller: &Caller,
    request: CreateRequest,
    idempotency_key: Option<&str>,
    service_label: &mut Option<String>,
) -> Result<Created, ApiError> {
    let tenant = &caller.tenant;
    let service = service_context::load(&state.store, &state.services, tenant, &request.service_name).await?;
    *service_label = Some(service.name().to_string());
    crate::telemetry::request_context::record_service(service.name());
    let rules = service.rules();
    let config = &service.record.config;
    let now = crate::time::now();
    let decision = match booking::decide(&request, &rules, now) {
        Ok(d) => d,
        Err(e) => return Err(with_proposals(e, state, tenant, &service, request.desired_ms.unwrap_or(now), now).await),
    };
    tracing::trace!(stage = "validated", kind = decision.kind.as_label(), phone = %decision.phone, "request validated");

    // Step 4: throttles, reserved all or none. In-queue checking is decided with the insert,
    // where it also sees the same batch's earlier bookings.
    let phone = decision.phone.as_str();
    let in_queue_limit = throttle::in_queue_limit(config.in_queue_checking);
    let counters = throttle::counters(&tenant.id, service.name(), &state.throttles.number_key(phone), config);
    let reservation = match state.throttles.reserve(&counters).await {
        ThrottleOutcome::Admitted(r) => r,
        ThrottleOutcome::Refused { index, retry_after } => {
            return Err(throttled(&counters[index], tenant, retry_after));
        }
    };
    tracing::trace!(stage = "throttle", "throttles passed");

    // Steps 5 and 6: capacity, guards and the insert in one transaction (shared with the
    // bookings that arrived meanwhile: `store::writer`).
    let id = state.store.faults().take_booking_id_collision(phone).unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let body = crate::error::success_body(json!({ "id": id }), &crate::telemetry::request_context::corr_id());
    let replay = idempotency_key.map(|key| IdempotencyResult {
        tenant_id: tenant.id.clone(),
        key: key.to_string(),
        status: 200,
        body: body.to_string(),
    });
    let active_on_insert = decision.initial_state.is_active();
    let guards = BookingGuards {
        max_unfinished_for_number: in_queue_limit,
        max_active: active_on_insert.then_some(i64::from(config.max_queued)),
        bucket: decision.capacity,
    };
    let new = NewCallback {
        id: id.clone(),
        tenant_id: tenant.id.clone(),
        service_name: service.name().to_string(),
        state: decision.initial_state,
        phone: decision.phone.clone(),
        desired_ms: decision.desired_ms,
        due_ms: decision.due_ms,
        priority: decision.priority,
        corr_id: crate::telemetry::request_context::corr_id(),
        claimed_by: decision.claimed.then(|| state.replica_id.clone()),
        details: request.details,
        now,
        ttls: Ttls::of(config),
        traceparent: caller.trace.map(|t| t.header()),
    };
    let has_bucket = guards.bucket.is_some();
    let outcome = state.bookings.book(Booking { new, guards, replay, deadline: caller.deadline }).await;
    let refusal = match outcome {
        Ok(InsertOutcome::Inserted) => None,
        Ok(InsertOutcome::AlreadyQueued) => Some(already_queued()),
        Ok(InsertOutcome::QueueFull) => {
            Some(ApiError::new(Reason::QueueFull, "the service has as many active callbacks as it can hold; try later"))
        }
        Ok(InsertOutcome::SlotFull) => {
            let full = ApiError::new(Reason::SlotFull, "that time slot is full; see data.slots for open times");
            Some(with_proposals(full, state, tenant, &service, decision.desired_ms, now).await)
        }
        Err(e) => Some(ApiError::from(e)),
    };
    if let Some(refusal) = refusal {
        // Only accepted bookings consume throttle budget.
        state.throttles.release(&reservation).await;
        return Err(refusal);
    }
    if has_bucket {
        tracing::trace!(stage = "capacity", "capacity reserved");
    }
    if decision.claimed {
        state.handoff_wake.notify_one();
    }
    crate::telemetry::request_context::record_callback_id(&id);
    tracing::trace!(stage = "stored", callbackId = %id, state = decision.initial_state.as_str(), "callback stored");
    let labels = [("tenant", tenant.name.as_str()), ("service", service.name()), ("type", decision.kind.as_label())];
    crate::telemetry::handles::counter(CALLBACKS_CREATED, &labels).increment(1);
    tracing::info!(callbackId = %id, kind = decision.kind.as_label(), deferred = decision.deferred, phone = %decision.phone, "callback booked");
    Ok(Created::Booked { id, body })
}

/// What a create would answer now (`callbacks/validate`, issue 27): bookable with the decision,
/// or refused with the create's error (proposals included).
pub enum Verdict {
    Bookable(booking::Booking),
    Refused(ApiError),
}

/// The verdict a create of `request` would get now, reserving and writing nothing: the request's
/// fields, the service's rules, in-queue checking, `maxQueued` and the slot's capacity, read as
/// the booking writer would see them this instant. Not evaluated: the rate limits (per number and
/// per service), because checking one means taking from its budget; a create may still answer
/// `THROTTLED`. A widget key's dry runs count against its address's allowance, as its creates do.
pub async fn dry_run(
    state: &AppState,
    caller: &Caller,
    request: Result<CreateRequest, ApiError>,
) -> Result<Verdict, ApiError> {
    if caller.scope == KeyScope::Widget {
        admit_widget_booking(state, &caller.tenant, caller.client)?;
    }
    let tenant = &caller.tenant;
    let verdict = |e: ApiError| match e.status().is_server_error() && e.reason != Reason::QueueFull {
        true => Err(e),
        false => Ok(Verdict::Refused(e)),
    };
    let request = match request {
        Ok(r) => r,
        Err(e) => return verdict(e),
    };
    let service = match service_context::load(&state.store, &state.services, tenant, &request.service_name).await {
        Ok(s) => s,
        Err(e) => return verdict(e),
    };
    let (rules, config, now) = (service.rules(), &service.record.config, crate::time::now());
    let decision = match booking::decide(&request, &rules, now) {
        Ok(d) => d,
        Err(e) => {
            let desired = request.desired_ms.unwrap_or(now);
            return verdict(with_proposals(e, state, tenant, &service, desired, now).await);
        }
    };
    let (unfinished, active) = state.store.booking_room(&tenant.id, service.name(), &decision.phone).await?;
    if throttle::in_queue_limit(config.in_queue_checking).is_some_and(|limit| unfinished >= limit) {
        return verdict(already_queued());
    }
    if decision.initial_state.is_active() && active >= i64::from(config.max_queued) {
        return verdict(ApiError::new(
            Reason::QueueFull,
            "the service has as many active callbacks as it can hold; try later",
        ));
    }
    if let Some(claim) = decision.capacity {
        let start = claim.bucket_start;
        let reserved =
            state.store.reserved_counts(&tenant.id, service.name(), start, start + Millis::from_ms(1)).await?;
        if reserved.get(&start).copied().unwrap_or(0) >= claim.capacity {
            let full = ApiError::new(Reason::SlotFull, "that time slot is full; see data.slots for open times");
            return verdict(with_proposals(full, state, tenant, &service, decision.desired_ms, now).await);
        }
    }
    Ok(Verdict::Bookable(decision))
}

/// A widget key's booking from `client`, or 429 `THROTTLED` (with the alarm) past the address's
/// allowance (`clients.widget_bookings_per_minute`).
fn admit_widget_booking(state: &AppState, tenant: &Tenant, client: IpAddr) -> Result<(), ApiError> {
    let Err(wait) = state.widget_bookings.check(client) else { return Ok(()) };
    metrics::counter!(WIDGET_RATE_LIMIT_REACHED, "tenant" => tenant.name.clone()).increment(1);
    tracing::info!(tenant = %tenant.name, "widget bookings from one client address past their limit");
    let seconds = wait.as_secs().max(1);
    Err(ApiError::new(Reason::Throttled, format!("too many bookings from this address; retry in {seconds} s"))
        .with_retry_after(Millis::from_secs(seconds))
        .with_slots(json!({})))
}

fn already_queued() -> ApiError {
    ApiError::new(Reason::AlreadyQueued, "this number already has callbacks waiting in this service")
        .with_slots(json!({}))
}

/// 429 `THROTTLED` for the counter that refused (a booking's or a call-in request's), with its alarm.
pub(super) fn throttled(spec: &CounterSpec, tenant: &Tenant, retry_after: Millis) -> ApiError {
    let (alarm, message) = match spec.kind {
        CounterKind::PerNumber => {
            (CB_ENQUEUE_LIMIT_REACHED, "this number has made as many requests as the service allows for now")
        }
        CounterKind::ServiceWindow => (CB_TTL_LIMIT_REACHED, "the service is taking no more requests for now"),
    };
    metrics::counter!(alarm, "tenant" => tenant.name.clone()).increment(1);
    let retry_after = retry_after.max(Millis::from_secs(1));
    let seconds = (retry_after.as_ms() as u64).div_ceil(1000);
    ApiError::new(Reason::Throttled, format!("{message}; retry in {seconds} s"))
        .with_retry_after(retry_after)
        .with_slots(json!({}))
}

/// How far either side of the desired time proposals look; also how long the capacity rows of a
/// past bucket are kept (`store::purge_bookkeeping`), so a proposal never reads a purged bucket.
pub const PROPOSAL_WINDOW: Millis = Millis::from_ms(capacity::BUCKET_RETENTION_DAYS * DAY.as_ms());

/// Attach `data.slots` to a `SLOT_FULL`: up to 10 open buckets with room nearest `desired`.
pub async fn with_proposals(
    e: ApiError,
    state: &AppState,
    tenant: &Tenant,
    service: &ServiceContext,
    desired: Moment,
    now: Moment,
) -> ApiError {
    if e.reason != Reason::SlotFull {
        return e;
    }
    let rules = service.rules();
    let (earliest, latest) = rules.bookable_range(now);
    let (from, to) = (desired - PROPOSAL_WINDOW, desired + PROPOSAL_WINDOW);
    let key = (tenant.id.clone(), service.name().to_string(), from, to);
    let read = || async { state.store.reserved_counts(&tenant.id, service.name(), from, to).await.map(Arc::new) };
    let reserved = match state.reservations.get_or_load(key, 0, read).await {
        Ok(r) => r,
        Err(err) => return ApiError::from(err),
    };
    let slots = capacity::propose(&rules.grid(), rules.hours, desired, earliest, latest, &reserved, 10);
    let map: Map<String, Value> = slots.into_iter().map(|(t, left)| (format_utc(t), Value::from(left))).collect();
    e.with_slots(Value::Object(map))
}
