//! The HTTP edge: routes, extractors, middleware, one file per resource.

pub mod admin;
pub mod assets;
pub mod availability;
pub mod call_in;
pub mod callback_views;
pub mod callbacks;
pub mod clean_input;
pub mod client_address;
pub mod console;
pub mod corr_id;
pub mod envelope;
pub mod extractors;
pub mod health;
pub mod internal;
pub mod middleware;
pub mod openapi;
pub mod platform;
pub mod queues;
pub mod routes;
pub mod ui;

/// Which listener a request came in on (`app_data` of each listener's app).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Everything: public, admin, internal, `/metrics`.
    Internal,
    /// Public API and health only.
    External,
}
