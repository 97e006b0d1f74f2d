//! Pure rules: no I/O, no actix, no sqlx.

pub mod booking;
pub mod callback;
pub mod names;
pub mod phone;
pub mod service;
pub mod time;
