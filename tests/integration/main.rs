//! The integration test binary: one binary, so the crate and its dependencies link once.

#[path = "../support/mod.rs"]
mod support;

mod bench;
mod bench_sdk;
mod context;
mod editing;
mod fake_server;
mod harness;
mod mixed;
mod profile;
mod providers;
mod repl;
mod retries;
mod streaming;
mod switches;
mod threads;
mod wire;
