//! Helpers shared by the integration tests.

// Each test uses a different subset of these helpers and of the fake server's API.
#![allow(dead_code)]

pub mod fake_gemini;
pub mod fake_gzip;
pub mod hostile;
pub mod raw_http;

use std::path::PathBuf;

/// `tests/fixtures/`: real captured Gemini bodies (see its README.md).
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn fixture_path(name: &str) -> PathBuf {
    fixtures_dir().join(name)
}

/// A fixture's text; panics with the path when it is missing.
pub fn fixture(name: &str) -> String {
    let path = fixture_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
}

/// A JSON fixture, parsed.
pub fn fixture_json(name: &str) -> serde_json::Value {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|err| panic!("parse fixture {name}: {err}"))
}
