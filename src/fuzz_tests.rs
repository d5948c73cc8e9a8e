//! Arbitrary bytes into every parser of outside data: response JSON, SSE framing and assembly, error bodies,
//! thread.json, the config file and journal entries. None may panic; each must stay within bounded memory (the
//! inputs are bounded here; the readers in front of them cap what reaches them, see `files` and `gemini::client`).
//!
//! `cargo test --lib fuzz_tests` runs 256 cases each; the longer run is ignored:
//! `PROPTEST_CASES=20000 cargo test --release --lib fuzz_tests -- --ignored --nocapture`.

use proptest::prelude::*;

use crate::gemini::error::ApiError;
use crate::gemini::sse::SseDecoder;
use crate::gemini::stream::{Assembler, assemble_body};

fn quiet(_: crate::gemini::Progress<'_>) {}

/// Bytes that are often almost JSON: arbitrary bytes, or JSON-ish text made of the tokens parsers care about.
fn outside_bytes() -> impl Strategy<Value = Vec<u8>> {
    let tokens = prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"",
        "\"error\"",
        "\"candidates\"",
        "\"content\"",
        "\"parts\"",
        "\"text\"",
        "\"inlineData\"",
        "\"data\"",
        "\"thoughtSignature\"",
        "\"finishReason\"",
        "\"STOP\"",
        "\"code\"",
        "\"message\"",
        "\"status\"",
        "\"details\"",
        "\"@type\"",
        "\"retryDelay\"",
        "\"34.4s\"",
        "null",
        "true",
        "1e999",
        "-1",
        "18446744073709551616",
        "\"\\u001b]0;x\\u0007\"",
        "\"\\ud800\"",
        "data: ",
        "\r\n",
        "\n",
        "\n\n",
        "\u{202e}",
        "\u{1b}",
    ]);
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2048),
        prop::collection::vec(tokens, 0..200).prop_map(|t| t.concat().into_bytes()),
    ]
}

fn check_all(bytes: &[u8]) {
    let _ = crate::gemini::client::parse_response(bytes);
    let _ = assemble_body(bytes, &quiet);
    let shown = ApiError::from_body(400, bytes).to_string();
    assert!(crate::untrusted::is_inert(&shown), "{shown:?}");
    let mut decoder = SseDecoder::new();
    let mut assembler = Assembler::new();
    for chunk in bytes.chunks(7) {
        for event in decoder.push(chunk) {
            let _ = assembler.push_json(&event, &quiet);
        }
    }
    let _ = assembler.finish();
    let _ = serde_json::from_slice::<crate::engine::export::ThreadFile>(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = crate::config::Config::parse(text, None);
        let _ = crate::config::Config::parse(text, Some("p"));
    }
    let _ = serde_json::from_slice::<crate::store::journal::EntryHeader>(bytes);
    let _ = serde_json::from_slice::<crate::store::journal::Arrival>(bytes);
}

proptest! {
    #[test]
    fn no_parser_of_outside_data_panics(bytes in outside_bytes()) {
        check_all(&bytes);
    }

    /// A thread.json that parses has its settings checked before they reach a URL, a path or the database.
    #[test]
    fn imported_settings_follow_the_typed_rules(model in ".{0,40}", aspect in ".{0,8}") {
        let settings = crate::settings::Settings {
            model: model.clone(),
            aspect: Some(aspect),
            ..Default::default()
        };
        if settings.generation_config().is_ok() {
            prop_assert!(crate::names::validate_model_id(&model).is_ok());
            prop_assert!(!model.contains(['/', '?', '#', ':', '%']));
        }
    }
}

/// The longer run (see the module comment for its command).
#[test]
#[ignore = "long: run with PROPTEST_CASES=20000 and --release"]
fn no_parser_of_outside_data_panics_long() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(20_000);
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases,
        ..Default::default()
    });
    runner
        .run(&outside_bytes(), |bytes| {
            check_all(&bytes);
            Ok(())
        })
        .unwrap();
    println!("{cases} cases, no panic");
}
