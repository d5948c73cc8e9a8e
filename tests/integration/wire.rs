//! What goes over the wire besides the history itself: unknown fields at every level of a content, compressed
//! answers.

use std::io::Read as _;

use serde_json::{Value, json};

use crate::harness::Sandbox;
use crate::support::fake_gemini::{FakeGemini, SignatureSize};
use crate::support::raw_http;

#[test]
fn unknown_content_fields_are_kept_and_sent_back() {
    let server = FakeGemini::builder()
        .content_unknown_fields(true)
        .signature_size(SignatureSize::Chars(2_000))
        .start();
    let sandbox = Sandbox::new(&server);
    // One answer whole, one streamed, then a third request carrying both.
    sandbox
        .run(&["-s", "f"], "a fox\n/stream on\nat night\nin snow\n")
        .expect_code(0);
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.status == Some(200)));
    let contents = requests[2].contents();
    for answer in [&contents[1], &contents[3]] {
        assert_eq!(
            answer["futureContentField"],
            json!({"y": [2, 3]}),
            "{answer}"
        );
        assert_eq!(answer["role"], "model");
    }
    // The prompts, made by peel, carry nothing of the kind.
    assert!(contents[0].get("futureContentField").is_none());

    // And in an export, as received.
    let dir = sandbox.path("export");
    sandbox
        .run(&["export", "f", dir.to_str().unwrap()], "")
        .expect_code(0);
    let thread: Value =
        serde_json::from_slice(&std::fs::read(dir.join("thread.json")).unwrap()).unwrap();
    assert_eq!(
        thread["contents"][1]["futureContentField"],
        json!({"y": [2, 3]})
    );
}

#[test]
fn peel_asks_for_compressed_answers() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    sandbox
        .run(&["-s", "z"], "a fox\n/stream on\nat night\n")
        .expect_code(0);
    for request in server.requests() {
        let accepted = request.header("accept-encoding").unwrap_or_default();
        assert!(accepted.contains("gzip"), "{accepted:?}");
        assert_eq!(request.status, Some(200));
    }
}

/// The bytes a 2K answer takes on the wire with and without gzip, JSON and SSE (the figure in the README):
///
///     cargo test --test integration -- --nocapture compressed_2k_answers
#[test]
fn compressed_2k_answers_are_smaller_and_decode_to_the_answer() {
    let server = FakeGemini::start();
    let body = json!({
        "contents": [{"role": "user", "parts": [{"text": "a lighthouse at dawn"}]}],
        "generationConfig": {"responseModalities": ["TEXT", "IMAGE"], "imageConfig": {"imageSize": "2K"}}
    })
    .to_string();
    let key = server.api_key().to_string();
    for (method, query) in [
        ("generateContent", ""),
        ("streamGenerateContent", "?alt=sse"),
    ] {
        let path = format!("/v1beta/models/gemini-3-pro-image:{method}{query}");
        let send = |gzip: bool| {
            let mut headers = vec![
                ("content-type", "application/json"),
                ("x-goog-api-key", key.as_str()),
            ];
            if gzip {
                headers.push(("accept-encoding", "gzip"));
            }
            let answer = raw_http::post(server.url(), &path, &headers, body.as_bytes()).unwrap();
            assert_eq!(answer.status, 200);
            answer
        };
        let plain = send(false);
        let compressed = send(true);
        assert_eq!(plain.header("content-encoding"), None);
        assert_eq!(compressed.header("content-encoding"), Some("gzip"));
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(&compressed.body[..])
            .read_to_end(&mut decoded)
            .unwrap();
        // Two answers never carry the same image, but they are made the same way: the decoded one has the shape
        // and about the size of the plain one.
        let shape = |bytes: &[u8]| {
            let text = String::from_utf8_lossy(bytes);
            (
                text.contains("\"inlineData\""),
                text.contains("thoughtSignature"),
            )
        };
        assert_eq!(shape(&decoded), (true, true));
        assert_eq!(shape(&decoded), shape(&plain.body));
        let ratio = decoded.len() as f64 / plain.body.len() as f64;
        assert!((0.98..1.02).contains(&ratio), "{ratio}");
        let saved = 1.0 - compressed.wire_bytes as f64 / plain.wire_bytes as f64;
        println!(
            "2K answer, {method}: {} bytes on the wire plain, {} gzip: {:.1}% saved",
            plain.wire_bytes,
            compressed.wire_bytes,
            saved * 100.0
        );
        assert!(saved > 0.15, "gzip saves {:.1}%", saved * 100.0);
    }
}
