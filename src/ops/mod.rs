//! The operations layer: one module per use case, between the edges (`http`, `monitor`, `demo`)
//! and the layers below (`domain` decides, `store` persists, `coord` coordinates). An edge parses,
//! calls one operation, and renders what it returns; an operation owns the use case's steps, its
//! business counters (each incremented here and nowhere else) and its log lines.
//!
//! Calls point one way: http / monitor → ops → domain, store, coord → telemetry → config, error.

pub mod booking;
pub mod call_in;
pub mod directory;
pub mod erasure;
pub mod keys;
pub mod lifecycle;
pub mod operators;
pub mod refusals;
pub mod service_context;
pub mod services;
mod state;
pub mod webhooks;

pub use directory::{Directory, Labels};
pub use state::{AppState, Coord};
