//! The integration test binary: one binary, so the crate and its dependencies link once.

#[path = "../support/mod.rs"]
mod support;

mod editing;
mod fake_server;
mod harness;
mod repl;
