//! The operations layer: one module per use case, between the edges (`http`, `monitor`, `demo`)
//! and the layers below (`domain` decides, `store` persists, `coord` coordinates). An edge parses,
//! calls one operation, and renders what it returns; an operation owns the use case's steps, its
//! business counters (each incremented here and nowhere else) and its log lines.
//!
//! Calls point one way: http / monitor → ops → domain, store, coord → telemetry → config, error.

pub mod availability;
pub mod booking;
pub mod call_in;
pub mod configuration;
pub mod erasure;
pub mod keys;
pub mod lifecycle;
pub mod operators;
pub mod queues;
pub mod readiness;
pub mod refusals;
pub mod service_context;
pub mod services;
mod state;
mod store_errors;
pub mod tenant_directory;
pub mod webhooks;

pub use state::{AppState, Coord, MonitorPasses};
pub use tenant_directory::{Labels, TenantDirectory};
