//! The heavy black-box tests: several processes, killed processes and dependencies, and stress.
//! Not part of a plain `cargo test` (`test = false` in Cargo.toml); the test command runs them as
//! `cargo test --test heavy` with their own, lower parallelism.

#[allow(dead_code)]
#[path = "../common/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "../common/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "../common/receiver.rs"]
mod receiver;

mod chaos;
mod durability;
mod replicas;
mod stress;
mod traces;
mod webhook_events;
