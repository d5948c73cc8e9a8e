//! The integration test binary: one binary, so the crate and its dependencies link once.

#[path = "../support/mod.rs"]
mod support;

mod batch;
mod batch_cli;
mod bench;
mod bench_sdk;
mod bench_transport;
mod context;
mod editing;
mod engine;
mod fake_server;
mod harness;
mod hostile;
mod interactions;
mod kill_sweep;
mod mixed;
mod profile;
mod providers;
mod repl;
mod retries;
mod scripts;
mod sdk_interop;
mod streaming;
mod switches;
mod terminal;
mod threads;
mod transport;
mod variants;
mod wire;
