//! Persistence. One `Store` type, two backends: PostgreSQL for production and SQLite as the
//! embedded default. The SQL is shared (runtime queries over sqlx's `Any` driver, epoch-ms integers
//! and JSON text so both backends read the same); what differs — pools, pragmas, row locking,
//! migrations — lives behind the `Backend` trait in `postgres.rs` and `sqlite.rs`.
//! sqlx's compile-time macros cannot check two databases in one crate; the conformance tests
//! (`tests/api`, run against both backends) prove the queries instead.

mod api_keys;
mod audit;
mod backend;
mod booking_batch;
mod calendars;
mod call_in;
mod call_in_create;
mod call_in_groups;
mod callback_changes;
mod callback_queries;
mod callbacks;
mod capacity;
mod deletes;
mod erasure;
mod error;
mod faults;
mod handle;
mod handoffs;
mod housekeeping;
mod idempotency;
mod operators;
mod outbox;
mod outcomes;
mod placeholders;
mod platform_reports;
mod postgres;
mod queues;
mod service_control;
mod services;
mod settings;
mod sqlite;
mod tenants;
mod time_columns;
mod webhooks;
mod writer;

pub use api_keys::{ApiKeyRecord, NewApiKey, ResolvedKey};
pub use audit::{AuditEntry, AuditRecord};
pub use booking_batch::Booking;
pub use call_in::{
    CallInFilter, CallInKey, CallInLabelFacts, CallInRecord, CancelCallInOutcome, CreateCallInOutcome, NewCallIn,
    CALLIN_EXPIRY_BATCH,
};
pub use call_in_groups::{CallInGroupRecord, PutGroupOutcome};
pub use callback_changes::{CallbackEdit, CancelOutcome, NewTime, RescheduleOutcome};
pub use callback_queries::CallbackFilter;
pub use callbacks::{BookingGuards, CallbackRecord, HistoryEntry, InsertOutcome, NewCallback, Ttls};
pub use deletes::DeleteOutcome;
pub use erasure::{Erased, ERASED_NUMBER};
pub use faults::{BatchFault, StoreFaults};
pub use handoffs::HandOff;
pub use housekeeping::{Finished, ORPHAN_BATCH, RECOVERY_BATCH, SERVICE_DELETED_NOTE};
pub use idempotency::{IdempotencyBegin, IdempotencyResult, STALE_IN_PROGRESS};
pub use operators::OperatorRecord;
pub use outbox::{ClaimScope, EventOutcome, PendingEvent};
pub use outcomes::{OutcomeRow, RefusalCount};
pub use platform_reports::{FollowUpOutcome, FollowUpPlan, PlatformReport, ReportOutcome};
pub use queues::QueueStats;
pub use service_control::{RedriveOutcome, ServiceNow};
pub use services::{ServiceRecord, ServiceWrite};
pub use tenants::Tenant;
pub use webhooks::{DeliveryRecord, EndpointRecord};
pub use writer::BookingWriter;

pub use backend::BackendKind;
pub use error::{StoreError, StoreResult};
pub use handle::Store;
