//! Black-box HTTP tests of the real application: the fast default suite (`cargo test`). Each
//! conformance test body runs on SQLite and on PostgreSQL (`on_both_backends!`). The heavy
//! multi-process and stress tests are the `heavy` target (`tests/heavy`), run by the test command.

#[allow(dead_code)]
#[path = "../common/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "../common/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "../common/receiver.rs"]
mod receiver;

mod admin;
mod binary;
mod booking_rules;
mod bounds;
mod callbacks;
mod callin;
mod console_api;
mod edge;
mod erasure;
mod ges_gaps;
mod group_commit;
mod keys;
mod monitor;
mod observability;
mod openapi_truth;
mod operators;
mod outage;
mod outcomes;
mod retries;
mod schema;
mod telemetry;
mod webhook_events;
mod webhooks;
mod writer_faults;
