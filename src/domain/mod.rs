//! Pure rules: no I/O, no actix, no sqlx.

pub mod api_key;
pub mod booking;
pub mod calendar;
pub mod call_in;
pub mod callback;
pub mod capacity;
mod ges_aliases;
pub mod key_scope;
pub mod names;
pub mod operator;
pub mod phone;
pub mod retry;
pub mod service;
pub mod throttle;
pub mod webhook;
