//! The official Python SDK (google-genai, pinned in `tests/sdk/requirements.txt`) against the fake server's
//! Interactions, Batch and Files APIs: interactions created and continued with `previous_interaction_id`, streamed,
//! read back, refused for an unknown id; batches inline and through an uploaded file, waited for, read, cancelled.
//! The SDK parsing every answer and the fake accepting every request is what shows the fake speaks the APIs as the
//! SDK's types define them.
//!
//! The SDK is installed into `target/sdk-venv` the way the benchmark installs its own (`bench_sdk::sdk_venv`). Without
//! python3 or PyPI the test says so and passes; with `PEEL_REQUIRE_SDK=1` (for CI) it fails instead.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::bench_sdk::sdk_venv;
use crate::support::fake_gemini::{FakeGemini, SignatureSize};

#[test]
fn the_official_sdk_runs_against_the_fake() {
    let installing = Instant::now();
    let python = match sdk_venv("target/sdk-venv", "tests/sdk/requirements.txt") {
        Ok(python) => python,
        Err(why) if std::env::var_os("PEEL_REQUIRE_SDK").is_none() => {
            eprintln!(
                "SKIPPED the_official_sdk_runs_against_the_fake: the SDK could not be installed: {why}"
            );
            return;
        }
        Err(why) => panic!("PEEL_REQUIRE_SDK is set and the SDK could not be installed: {why}"),
    };
    let installed = installing.elapsed();
    // Small signatures keep the SDK's base64 checks quick; the sizes are not what is tested here.
    let server = FakeGemini::builder()
        .signature_size(SignatureSize::Chars(400))
        .start();
    server.set_batch_delay(Duration::from_millis(600));
    let home = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/against_fake.py");
    let running = Instant::now();
    let output = Command::new(&python)
        .arg(script)
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("FAKE_URL", server.url())
        .env("GEMINI_API_KEY", server.api_key())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the SDK script failed:\n{stderr}");
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("the SDK script's report: {e}\n{stderr}"));
    eprintln!(
        "SDK {} against the fake: {report}\n(install/check {:.1} s, script {:.1} s)",
        report["sdk"],
        installed.as_secs_f64(),
        running.elapsed().as_secs_f64()
    );

    assert_eq!(report["unknown_previous"], json!(["NotFoundError", 404]));
    let stream: Vec<&str> = report["stream_events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(stream.first(), Some(&"interaction.created"));
    assert!(stream.contains(&"step.delta") && stream.contains(&"step.stop"));
    assert_eq!(report["get_steps"][0], "user_input");
    let succeeded = json!([
        "JOB_STATE_PENDING",
        "JOB_STATE_RUNNING",
        "JOB_STATE_SUCCEEDED"
    ]);
    assert_eq!(report["inline_states"], succeeded);
    assert_eq!(report["inline_keys"], json!(["cat", "dog"]));
    assert_eq!(report["file_states"], succeeded);
    assert_eq!(report["file_keys"], json!(["owl", "hare"]));
    assert_eq!(report["cancelled"], "JOB_STATE_CANCELLED");

    // What the SDK sent: its default API version, only the new input on a continued turn, the resumable upload.
    let requests = server.requests();
    let creates: Vec<_> = requests
        .iter()
        .filter(|r| r.path == "/v1/interactions" && r.method == "POST")
        .collect();
    assert_eq!(creates.len(), 4, "three turns and the refused one");
    assert_eq!(
        creates[1].json()["previous_interaction_id"],
        report["chain"][0]
    );
    assert_eq!(creates[1].json()["input"], "make it night");
    assert!(
        requests
            .iter()
            .all(|r| r.status.is_some_and(|s| s < 300) || r.path == "/v1/interactions")
    );
    let upload = requests
        .iter()
        .find(|r| {
            r.path == "/upload/v1/files" && r.header("x-goog-upload-command") == Some("start")
        })
        .expect("the SDK started a resumable upload");
    assert_eq!(upload.header("x-goog-upload-protocol"), Some("resumable"));
}
