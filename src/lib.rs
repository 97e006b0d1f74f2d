//! Ringback: a callback engagement service with a GES v3-compatible API.
//!
//! Calls point one way (docs/architecture.md): `main`/`app` (build, serve, start every task) →
//! the edges `http` (handlers), `monitor` (passes), `demo`, `simulator` (a stand-in dialer that
//! reads the hand-off stream) → `ops` (one module per use case) → `domain` (pure rules), `store`
//! (persistence) and `coord` (throttles, key cache, hand-off stream, webhook sender; it reads the
//! store) → `telemetry` → `config`, `error`, `time`, `breaker`, `coalesce`. `domain` never imports
//! actix, sqlx or redis; handlers change nothing but through `ops` and never build SQL.

pub mod app;
pub mod breaker;
pub mod coalesce;
pub mod config;
pub mod coord;
pub mod demo;
pub mod domain;
pub mod error;
pub mod health_checker;
pub mod http;
pub mod monitor;
pub mod ops;
pub mod simulator;
pub mod store;
pub mod telemetry;
pub mod time;

pub use app::Application;
pub use config::Settings;
