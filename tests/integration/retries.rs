//! Passing failures are tried again (with the spinner's words on stderr in script mode); final ones fail at once;
//! none of them leaves anything in the history.

use std::time::Duration;

use serde_json::json;

use crate::harness::{Run, Sandbox};
use crate::support::fake_gemini::{FakeGemini, Reply};

/// A sandbox whose config file makes backoff fast, plus its `--config` arguments.
fn fast_sandbox(server: &FakeGemini, extra: &str) -> (Sandbox, String) {
    let sandbox = Sandbox::new(server);
    let config = sandbox.path("config.toml");
    std::fs::write(&config, format!("backoff_ms = 10\n{extra}")).unwrap();
    let config = config.to_str().unwrap().to_string();
    (sandbox, config)
}

fn peel(sandbox: &Sandbox, config: &str, stdin: &str) -> Run {
    sandbox.run(&["--config", config, "-s", "r"], stdin)
}

fn stored(sandbox: &Sandbox) -> i64 {
    sandbox.stored_contents()
}

#[test]
fn overloaded_twice_then_success() {
    let server = FakeGemini::start();
    let (sandbox, config) = fast_sandbox(&server, "");
    server.push_reply(Reply::overloaded());
    server.push_reply(Reply::overloaded());
    let run = peel(&sandbox, &config, "a red fox\n").expect_code(0);
    assert!(
        run.stderr.contains("(2/5): 503 The model is overloaded\n"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("retrying in"), "{}", run.stderr);
    assert!(run.stderr.contains("(3/5): 503"), "{}", run.stderr);
    assert_eq!(run.stdout_lines().len(), 1);
    assert_eq!(server.request_count(), 3);
    assert_eq!(stored(&sandbox), 2);
}

#[test]
fn a_429_with_retry_info_waits_the_retry_delay() {
    let server = FakeGemini::start();
    let (sandbox, config) = fast_sandbox(&server, "");
    let mut body = crate::support::fixture_json("error-429-retry-info.json");
    for detail in body["error"]["details"].as_array_mut().unwrap() {
        if detail["@type"].as_str().unwrap().ends_with("RetryInfo") {
            detail["retryDelay"] = json!("0.4s");
        }
    }
    server.push_reply(Reply::Status(429, body));
    let run = peel(&sandbox, &config, "a red fox\n").expect_code(0);
    assert!(
        run.stderr.contains("retrying in 400 ms (2/5): 429"),
        "{}",
        run.stderr
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let waited = requests[1].received_at - requests[0].received_at;
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
}

#[test]
fn final_errors_fail_at_once_and_leave_the_history_alone() {
    let server = FakeGemini::start();
    let (sandbox, config) = fast_sandbox(&server, "");
    peel(&sandbox, &config, "a red fox\n").expect_code(0);
    server.clear_requests();

    let exhausted = json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
        "message": "Your prepayment credits are depleted. Please go to AI Studio to manage your billing."}});
    let cases = [
        (Reply::Status(429, exhausted), "waiting will not help"),
        (
            Reply::Status(
                400,
                json!({"error": {"code": 400, "message": "Bad thing", "status": "INVALID_ARGUMENT"}}),
            ),
            "400 INVALID_ARGUMENT: Bad thing",
        ),
        (
            Reply::Status(
                403,
                json!({"error": {"code": 403, "message": "Forbidden", "status": "PERMISSION_DENIED"}}),
            ),
            "403 PERMISSION_DENIED",
        ),
        (
            Reply::Status(
                404,
                json!({"error": {"code": 404, "message": "models/x is not found", "status": "NOT_FOUND"}}),
            ),
            "404 NOT_FOUND",
        ),
        (
            Reply::gateway_error(401, "invalid token", "auth", "invalid_api_key"),
            "401 auth: invalid token",
        ),
        (
            Reply::RawBody(200, "{\"candidates\": [".into()),
            "not a Gemini response",
        ),
    ];
    for (reply, message) in cases {
        server.push_reply(reply);
        let run = peel(&sandbox, &config, "make it night\n").expect_code(1);
        assert!(run.stderr.contains(message), "{message}: {}", run.stderr);
        assert!(!run.stderr.contains("retrying"), "{}", run.stderr);
        assert!(
            run.stderr.contains("nothing was recorded"),
            "{}",
            run.stderr
        );
        assert_eq!(stored(&sandbox), 2, "{message}");
    }
    assert_eq!(server.request_count(), 6, "one request each");
    // The history sent next is still the one good turn.
    peel(&sandbox, &config, "make it night\n").expect_code(0);
    assert_eq!(server.requests().last().unwrap().contents().len(), 3);
}

#[test]
fn attempts_are_bounded_and_disconnects_are_retried() {
    let server = FakeGemini::start();
    let (sandbox, config) = fast_sandbox(&server, "retries = 2\n");
    for _ in 0..3 {
        server.push_reply(Reply::Status(
            500,
            json!({"error": {"code": 500, "message": "Internal error.", "status": "INTERNAL"}}),
        ));
    }
    let run = peel(&sandbox, &config, "a red fox\n").expect_code(1);
    assert!(
        run.stderr
            .contains("gave up after 3 attempts: 500 INTERNAL"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("(3/3)"), "{}", run.stderr);
    assert_eq!(server.request_count(), 3);
    assert_eq!(stored(&sandbox), 0);

    server.push_reply(Reply::Disconnect);
    server.push_reply(Reply::status_fixture(502, "error-400-thinking-level.json"));
    let run = peel(&sandbox, &config, "a red fox\n").expect_code(0);
    assert!(run.stderr.contains("(2/3)"), "{}", run.stderr);
    assert!(run.stderr.contains("(3/3): 502"), "{}", run.stderr);
    assert_eq!(stored(&sandbox), 2);
}

#[test]
fn the_overall_timeout_is_not_retried() {
    let server = FakeGemini::start();
    let (sandbox, config) = fast_sandbox(&server, "timeout = 1\n");
    server.push_reply(Reply::Hang);
    let run = peel(&sandbox, &config, "a red fox\n").expect_code(1);
    assert!(
        run.stderr
            .contains("no complete answer within 1 s (timeout)"),
        "{}",
        run.stderr
    );
    assert_eq!(server.request_count(), 1);
    assert_eq!(stored(&sandbox), 0);
}

#[test]
fn the_spinner_says_when_it_retries_and_ctrl_c_cancels_the_wait() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let mut body = crate::support::fixture_json("error-429-retry-info.json");
    for detail in body["error"]["details"].as_array_mut().unwrap() {
        if detail["@type"].as_str().unwrap().ends_with("RetryInfo") {
            detail["retryDelay"] = json!("60s");
        }
    }
    server.push_reply(Reply::Status(429, body));
    let mut command = sandbox.peel(&["-s", "w", "--preview", "off"]);
    command.env("TERM", "xterm-256color");
    let mut p = rexpect::session::spawn_command(command, Some(30_000)).unwrap();
    p.exp_string("w> ").unwrap();
    p.send_line("a red fox").unwrap();
    p.exp_string("retrying in 60 s (2/5): 429 You exceeded your current quota")
        .unwrap();
    p.send_control('c').unwrap();
    p.exp_string("cancelled; nothing was recorded").unwrap();
    p.exp_string("w> ").unwrap();
    p.send_line("/quit").unwrap();
    p.exp_eof().unwrap();
    assert_eq!(
        server.request_count(),
        1,
        "the wait was cancelled, not retried"
    );
}
