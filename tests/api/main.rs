//! Black-box HTTP tests of the real application. Each conformance test body runs on SQLite and
//! on PostgreSQL (`on_both_backends!`).

mod admin;
mod booking_rules;
mod callbacks;
mod callin;
mod chaos;
mod edge;
mod group_commit;
mod helpers;
mod monitor;
mod observability;
mod openapi_truth;
mod outage;
mod process;
mod replicas;
mod telemetry;
