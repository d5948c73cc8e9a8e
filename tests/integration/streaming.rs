//! Streaming end to end: `streamGenerateContent?alt=sse` from the fake server, assembled into turns that the server
//! accepts back byte for byte.

use serde_json::{Value, json};

use crate::harness::Sandbox;
use crate::support::fake_gemini::{FakeGemini, Reply};

/// The model content a stream carried: every event's parts appended in order, as the server sent them.
fn streamed_content(frames: &str) -> Vec<Value> {
    frames
        .split("\r\n\r\n")
        .filter_map(|frame| frame.strip_prefix("data: "))
        .map(|json| serde_json::from_str::<Value>(json).unwrap())
        .flat_map(|event| {
            event["candidates"][0]["content"]["parts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn three_streamed_turns_then_a_fourth_are_accepted_byte_for_byte() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    // An image, an image after signed text, and a text-only answer whose signature rides on a final empty part.
    server.push_reply(Reply::Image);
    server.push_reply(Reply::ImageWithText("Here is your fox.".into()));
    server.push_reply(Reply::TextOnly("Which kind of snow?".into()));
    let run = sandbox
        .run(
            &["-s", "fox", "--stream"],
            "a red fox\nmake it night\nadd snow\n",
        )
        .expect_code(0);
    assert_eq!(run.stdout_lines().len(), 2, "two images, one text answer");
    assert!(run.stderr.contains("Here is your fox."), "{}", run.stderr);
    assert_eq!(
        run.stderr.matches("Here is your fox.").count(),
        1,
        "streamed text is not shown again under the answer: {}",
        run.stderr
    );
    assert!(run.stderr.contains("Which kind of snow?"), "{}", run.stderr);

    let run = sandbox
        .run(&["-r", "--stream"], "light snow\n")
        .expect_code(0);
    assert!(run.stdout.trim_end().ends_with("fox/4.jpg"), "{run:?}");

    let requests = server.requests();
    assert_eq!(requests.len(), 4);
    for request in &requests {
        assert!(request.stream, "{}", request.path);
        assert_eq!(request.query.as_deref(), Some("alt=sse"));
        assert_eq!(
            request.path,
            "/v1beta/models/gemini-3-pro-image:streamGenerateContent"
        );
    }
    let last = requests[3].contents();
    assert_eq!(last.len(), 7);
    let streams = server.sent_bodies();
    for k in 0..3 {
        let parts = streamed_content(&streams[k]);
        assert_eq!(
            last[2 * k + 1]["parts"],
            Value::Array(parts),
            "model turn {} is every streamed part, unmerged, in order",
            k + 1
        );
        assert_eq!(last[2 * k + 1]["role"], "model");
    }
    let text_turn = last[5]["parts"].as_array().unwrap();
    assert_eq!(text_turn.len(), 2);
    assert_eq!(text_turn[1]["text"], "");
    assert!(
        text_turn[1]["thoughtSignature"].is_string(),
        "the empty signature carrier is kept"
    );
}

#[test]
fn thought_summaries_stream_dimmed_above_the_answer() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let run = sandbox
        .run(&["-s", "t", "--stream", "--thoughts"], "a lighthouse\n")
        .expect_code(0);
    let thought = run.stderr.find("Planning the image").expect(&run.stderr);
    let saved = run.stderr.find("saved ").expect(&run.stderr);
    assert!(thought < saved, "{}", run.stderr);
    let request = &server.requests()[0];
    assert_eq!(
        request.json()["generationConfig"]["thinkingConfig"],
        json!({"includeThoughts": true})
    );

    // Without streaming the summaries are shown all the same, from the answer.
    let run = sandbox
        .run(&["-r", "--no-stream"], "make it stormy\n")
        .expect_code(0);
    assert!(run.stderr.contains("Planning the image"), "{}", run.stderr);
    assert!(!server.requests()[1].stream);
    // The thought part is kept in the history and resent as received.
    let resent = server.requests()[1].contents()[1]["parts"][0].clone();
    assert_eq!(resent["thought"], true);
}

#[test]
fn a_truncated_stream_records_nothing() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    server.push_reply(Reply::TruncatedStream);
    let run = sandbox
        .run(&["-s", "cut", "--stream"], "a red fox\n")
        .expect_code(1);
    assert!(
        run.stderr.contains("before the model finished"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
    assert_eq!(server.request_count(), 1, "not retried");
    assert_eq!(
        sandbox
            .open_db()
            .query_row("SELECT count(*) FROM contents", [], |r| r.get::<_, i64>(0))
            .unwrap_or(0),
        0
    );
}

#[test]
fn an_error_event_mid_stream_is_an_error_and_is_retried() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let config = sandbox.path("config.toml");
    std::fs::write(&config, "retries = 0\n").unwrap();
    server.push_reply(Reply::StreamError);
    let run = sandbox
        .run(
            &["--config", config.to_str().unwrap(), "-s", "e", "--stream"],
            "a red fox\n",
        )
        .expect_code(1);
    assert!(run.stderr.contains("500 INTERNAL"), "{}", run.stderr);
    assert!(run.stdout.is_empty());

    // With retries (the default), the 500 is tried again and the next answer is kept.
    std::fs::write(&config, "backoff_ms = 10\n").unwrap();
    server.push_reply(Reply::StreamError);
    let run = sandbox
        .run(
            &["--config", config.to_str().unwrap(), "-s", "e", "--stream"],
            "a red fox\n",
        )
        .expect_code(0);
    assert!(run.stderr.contains("retrying in"), "{}", run.stderr);
    assert_eq!(run.stdout_lines().len(), 1);
    assert_eq!(server.request_count(), 3);
    assert_eq!(
        server.requests()[2].contents().len(),
        1,
        "the failed turn left nothing in the history"
    );
}

#[test]
fn the_json_array_form_and_the_real_captures() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);

    // A gateway that ignores alt=sse and answers with a JSON array of chunks.
    let array = json!([
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Considering it", "thought": true}]}}]},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "I cannot draw that, "}]}}]},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "but here are words."}]},
                         "finishReason": "STOP"}],
         "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 9, "totalTokenCount": 14}}
    ]);
    server.push_reply(Reply::RawBody(200, array.to_string()));
    let run = sandbox
        .run(&["-s", "a", "--stream", "--thoughts"], "a thing\n")
        .expect_code(0);
    assert!(run.stderr.contains("Considering it"), "{}", run.stderr);
    assert!(run.stderr.contains("no image came back"), "{}", run.stderr);
    let run = sandbox.run(&["-r", "--stream"], "again\n").expect_code(0);
    let resent = server.requests()[1].contents()[1]["parts"].clone();
    assert_eq!(
        resent.as_array().unwrap().len(),
        3,
        "three parts, never merged: {resent}"
    );
    assert_eq!(run.stdout_lines().len(), 1);

    // Vertex's captured array stops before a finishReason: incomplete, nothing recorded.
    server.push_reply(Reply::Fixture("vertex-stream-array-thoughts.json"));
    let run = sandbox
        .run(&["-s", "v", "--stream"], "a thing\n")
        .expect_code(1);
    assert!(
        run.stderr.contains("stopped after 2 stream event(s)"),
        "{}",
        run.stderr
    );

    // The real SSE capture (LF framing): an answer whose redacted image is kept but not written.
    server.push_reply(Reply::Fixture("stream-3-pro-image-signature.sse"));
    let run = sandbox
        .run(&["-s", "sse", "--stream"], "a thing\n")
        .expect_code(0);
    assert!(run.stderr.contains("cannot be decoded"), "{}", run.stderr);
    assert!(
        run.stderr.contains("1,394 tokens"),
        "usage from the last event: {}",
        run.stderr
    );
}

#[test]
fn the_repl_streams_by_default_and_stream_off_turns_it_off() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let mut command = sandbox.peel(&["-s", "r", "--preview", "off", "--thoughts"]);
    command.env("TERM", "xterm-256color");
    let mut p = rexpect::session::spawn_command(command, Some(30_000)).unwrap();
    p.exp_string("r> ").unwrap();
    p.send_line("a red fox").unwrap();
    p.exp_string("Planning the image").unwrap();
    p.exp_string("out/r/1.jpg").unwrap();
    p.exp_string("r> ").unwrap();
    p.send_line("/stream off").unwrap();
    p.exp_string("streaming off").unwrap();
    p.send_line("make it night").unwrap();
    p.exp_string("out/r/2.jpg").unwrap();
    p.exp_string("r> ").unwrap();
    p.send_line("/quit").unwrap();
    p.exp_eof().unwrap();
    let requests = server.requests();
    assert!(requests[0].stream && !requests[1].stream);
}
