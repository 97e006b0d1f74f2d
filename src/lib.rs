//! Ringback: a callback engagement service with a GES v3-compatible API.
//!
//! Data flows one way: `http` → `domain` (decide) → `store`/`coord` (persist, count) →
//! `telemetry` (observe). `domain` never imports actix, sqlx or redis; handlers never build SQL.

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
