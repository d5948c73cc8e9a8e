//! The Interactions transport end to end: the real peel binary (and the engine with a test face) against the fake
//! server. Each turn after the first sends only its new input, `/branch`, `/undo` and `/retry` continue from the
//! right interaction, a thread the server lost goes whole once with one notice, a thread moves between transports,
//! and `uri` images are stored inline.

use peel::engine::Cancel;
use peel::engine::events::Recorder;
use peel::settings::{Settings, Transport};
use serde_json::Value;

use crate::engine::engine_with;
use crate::harness::Sandbox;
use crate::support::fake_gemini::{FakeGemini, RecordedRequest, SignatureSize};

/// Each model content's interaction id, oldest first (`None` for turns made another way).
fn interaction_ids(sandbox: &Sandbox) -> Vec<Option<String>> {
    sandbox.query_all(
        "SELECT json_extract(meta, '$.interaction_id') FROM contents WHERE role = 'model' ORDER BY id",
    )
}

fn creates(server: &FakeGemini) -> Vec<RecordedRequest> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v1beta/interactions")
        .collect()
}

fn previous(request: &RecordedRequest) -> Option<&str> {
    request.json()["previous_interaction_id"].as_str()
}

fn input_steps(request: &RecordedRequest) -> usize {
    request.json()["input"].as_array().map_or(0, Vec::len)
}

/// The new user input's text of a create.
fn prompt_of(request: &RecordedRequest) -> String {
    let input = request.json()["input"].as_array().unwrap();
    let last = input.last().unwrap();
    assert_eq!(last["type"], "user_input");
    last["content"][0]["text"].as_str().unwrap().to_string()
}

#[test]
fn a_three_turn_script_sends_only_the_new_input_after_the_first_turn() {
    let server = FakeGemini::builder()
        .signature_size(SignatureSize::LikeImage)
        .start();
    let sandbox = Sandbox::new(&server);
    let mut png = Vec::new();
    image::RgbImage::from_pixel(16, 16, image::Rgb([10, 120, 200]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    std::fs::write(sandbox.path("ref.png"), &png).unwrap();
    let run = sandbox
        .run(
            &["-s", "fox", "--transport", "interactions"],
            "/attach ref.png\na red fox\nmake it night\nadd falling snow\n",
        )
        .expect_code(0);
    assert_eq!(run.stdout_lines().len(), 3, "a path a turn: {run:?}");
    for path in run.stdout_lines() {
        assert!(std::path::Path::new(path).is_file(), "{path}");
    }
    assert!(
        !run.stderr.contains("whole thread"),
        "a new thread has nothing to send whole: {}",
        run.stderr
    );
    let creates = creates(&server);
    assert_eq!(creates.len(), 3);
    assert_eq!(server.requests().len(), 3, "nothing but the three creates");
    let ids = interaction_ids(&sandbox);
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(Option::is_some), "{ids:?}");
    assert_eq!(previous(&creates[0]), None);
    let attached = &creates[0].json()["input"][0]["content"][1];
    assert_eq!(
        (&attached["type"], &attached["mime_type"]),
        (&Value::from("image"), &Value::from("image/png")),
        "the attachment goes with the first turn"
    );
    for turn in 1..3 {
        let request = &creates[turn];
        assert_eq!(previous(request), ids[turn - 1].as_deref());
        assert_eq!(input_steps(request), 1, "only the new input");
        // The thread so far is megabytes of images and signatures; the turn is a few hundred bytes.
        assert!(
            request.body_len < 1000,
            "turn {} sent {} bytes",
            turn + 1,
            request.body_len
        );
    }
    let answer_bytes: usize = server
        .issued_images()
        .iter()
        .map(|i| i.data.len() + i.signature.as_ref().map_or(0, String::len))
        .sum();
    assert!(answer_bytes > 100_000, "{answer_bytes}");

    // The turns are stored as generateContent's: /history and the footer show the small requests.
    let run = sandbox
        .run(&["-r", "fox"], "/history\n/settings\n/context\n")
        .expect_code(0);
    assert!(run.stderr.contains("add falling snow"), "{}", run.stderr);
    assert!(
        run.stderr.contains("the server keeps this thread"),
        "/context says what the next request carries: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("transport    interactions"),
        "kept with the session: {}",
        run.stderr
    );
}

#[test]
fn branch_undo_and_retry_continue_from_the_right_interaction_with_nothing_resent() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    sandbox
        .run(
            &["-s", "fox", "--transport", "interactions"],
            "a red fox\nmake it night\n/retry\n/undo\nadd snow\n/branch dusk @2a\nin winter\n",
        )
        .expect_code(0);
    let creates = creates(&server);
    let prompts: Vec<String> = creates.iter().map(prompt_of).collect();
    assert_eq!(
        prompts,
        [
            "a red fox",
            "make it night",
            "make it night",
            "add snow",
            "in winter"
        ]
    );
    let ids = interaction_ids(&sandbox);
    let id = |n: usize| ids[n].as_deref();
    // Turn 1, its takes 2a and 2b (/retry: a sibling, the same previous id), 2c after /undo, and dusk's turn 3
    // after take 2a.
    assert_eq!(previous(&creates[0]), None);
    assert_eq!(previous(&creates[1]), id(0));
    assert_eq!(
        previous(&creates[2]),
        id(0),
        "/retry: another take of turn 2"
    );
    assert_eq!(previous(&creates[3]), id(0), "after /undo: from turn 1");
    assert_eq!(previous(&creates[4]), id(1), "the branch at 2a");
    for request in &creates {
        assert_eq!(input_steps(request), 1);
        assert!(request.body_len < 1000, "{}", request.body_len);
    }
}

#[test]
fn a_lost_thread_goes_whole_once_with_one_notice_and_continues() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    sandbox
        .run(
            &["-s", "fox", "--transport", "interactions"],
            "a red fox\nmake it night\n",
        )
        .expect_code(0);
    let ids = interaction_ids(&sandbox);
    server.expire_interaction(ids[1].as_deref().unwrap());
    server.clear_requests();

    let run = sandbox
        .run(&["-r", "fox"], "add snow\nand a moon\n")
        .expect_code(0);
    assert_eq!(
        run.stderr.matches("no longer has this thread").count(),
        1,
        "{}",
        run.stderr
    );
    let creates = creates(&server);
    assert_eq!(
        creates.len(),
        3,
        "the refused turn, the thread whole, the next turn"
    );
    assert_eq!(previous(&creates[0]), ids[1].as_deref());
    assert_eq!(creates[0].status, Some(404));
    // The whole thread: turn 1 and 2 (each a user input, a thought and an output step or more) and the prompt,
    // with every signature, accepted by the fake's signature check.
    assert_eq!(previous(&creates[1]), None);
    assert!(
        input_steps(&creates[1]) >= 5,
        "{}",
        input_steps(&creates[1])
    );
    assert_eq!(prompt_of(&creates[1]), "add snow");
    assert!(creates[1].body_len > 10 * creates[2].body_len);
    let ids = interaction_ids(&sandbox);
    assert_eq!(ids.len(), 4, "nothing lost, nothing doubled");
    assert_eq!(
        previous(&creates[2]),
        ids[2].as_deref(),
        "the next turn chains from the new interaction"
    );
    assert_eq!(input_steps(&creates[2]), 1);
}

#[test]
fn a_thread_moves_from_generate_to_interactions_and_back() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let run = sandbox
        .run(
            &["-s", "fox"],
            "a red fox\n/transport interactions\nmake it night\nadd snow\n/transport generate\nand a moon\n",
        )
        .expect_code(0);
    assert_eq!(run.stdout_lines().len(), 4, "{run:?}");
    assert_eq!(
        run.stderr
            .matches("so this turn sends the whole thread")
            .count(),
        1,
        "said once, for the turn after the generateContent one: {}",
        run.stderr
    );
    let requests = server.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/v1beta/models/gemini-3-pro-image:generateContent",
            "/v1beta/interactions",
            "/v1beta/interactions",
            "/v1beta/models/gemini-3-pro-image:generateContent",
        ]
    );
    // Turn 2 carries turn 1 (made with generateContent, so the server has no state) as steps.
    assert_eq!(previous(&requests[1]), None);
    assert!(input_steps(&requests[1]) >= 3);
    let ids = interaction_ids(&sandbox);
    assert_eq!(ids[0], None);
    assert_eq!(previous(&requests[2]), ids[1].as_deref());
    assert_eq!(ids[3], None);
    // Back on generateContent the whole thread goes as contents, the interactions' answers with their
    // signatures: the fake checks them as the real API does.
    let contents = requests[3].contents();
    assert_eq!(contents.len(), 7);
    assert_eq!(requests[3].status, Some(200));
    assert!(
        contents[3]["parts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["thoughtSignature"].is_string())
    );
}

#[test]
fn uri_images_are_downloaded_and_stored_inline() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let config = sandbox.path("config.toml");
    std::fs::write(
        &config,
        "transport = \"interactions\"\nimage_delivery = \"uri\"\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let run = sandbox
        .run(
            &["--config", &config, "-s", "fox"],
            "a red fox\nmake it night\n",
        )
        .expect_code(0);
    let requests = server.requests();
    assert_eq!(
        requests[0].json()["response_format"]["delivery"],
        "uri",
        "asked for"
    );
    let downloads: Vec<_> = requests
        .iter()
        .filter(|r| r.path.ends_with(":download"))
        .collect();
    assert_eq!(downloads.len(), 2);
    // The files hold the server's images, and the database holds them inline, as any answer image.
    let issued = server.issued_images();
    assert_eq!(issued.len(), 2, "one image a turn");
    assert_eq!(run.stdout_lines().len(), 2, "one path a turn: {run:?}");
    for (path, image) in run.stdout_lines().iter().zip(&issued) {
        assert_eq!(std::fs::read(path).unwrap(), image.bytes());
    }
    let stored = sandbox
        .count("SELECT count(*) FROM contents WHERE role = 'model' AND parts LIKE '%inlineData%'");
    assert_eq!(stored, 2);
    // The second turn continued the first: the stored answer needs no uri any more.
    assert_eq!(input_steps(&creates(&server)[1]), 1);
}

#[test]
fn streamed_thoughts_text_usage_and_cost_come_as_on_generate_content() {
    let server = FakeGemini::start();
    server.push_reply(crate::support::fake_gemini::Reply::ImageWithText(
        "Here is your fox.".into(),
    ));
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        thoughts: true,
        aspect: Some("16:9".into()),
        transport: Transport::Interactions,
        ..Settings::default()
    };
    let mut engine = engine_with(&server, &dir, settings);
    engine.set_stream(true);
    let events = Recorder::default();
    let report = engine.prompt("a red fox", &events, &Cancel::new()).unwrap();
    let lines = events.lines();
    assert!(lines[0].starts_with("sending "), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("thought: **Planning the image")),
        "{lines:?}"
    );
    let text: String = lines
        .iter()
        .filter_map(|l| l.strip_prefix("text: "))
        .collect();
    assert_eq!(text, "Here is your fox.");
    assert!(report.streamed);
    assert_eq!(report.text, "Here is your fox.");
    assert!(report.thoughts.starts_with("**Planning the image**"));
    assert_eq!(report.images.len(), 1);
    assert_eq!(
        (report.images[0].meta.width, report.images[0].meta.height),
        (1376, 768),
        "16:9 at 1K"
    );
    let meta = &report.meta;
    let usage = meta.usage.as_ref().expect("usage");
    assert!(usage.prompt_token_count.unwrap() > 0);
    assert!(usage.candidates_token_count.unwrap() >= 1120, "{usage:?}");
    assert!(usage.thoughts_token_count.unwrap() > 0);
    assert!(meta.cost_usd > 0.134, "{}", meta.cost_usd);
    assert!(meta.interaction_id.as_deref().unwrap().starts_with("v1_"));
    let requests = server.requests();
    let request: &Value = requests[0].json();
    assert_eq!(request["stream"], true);
    assert_eq!(
        request["generation_config"]["thinking_summaries"], "auto",
        "{request}"
    );
}

#[test]
fn vertex_refuses_the_interactions_transport_before_anything_is_sent() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let run = sandbox
        .run(
            &[
                "--vertex",
                "--project",
                "p",
                "--transport",
                "interactions",
                "a red fox",
            ],
            "",
        )
        .expect_code(2);
    assert!(
        run.stderr.contains("Gemini API only") && run.stderr.contains("Vertex AI"),
        "{}",
        run.stderr
    );
    let run = sandbox
        .run(
            &["--vertex", "--project", "p", "-s", "fox"],
            "/transport interactions\n",
        )
        .expect_code(1);
    assert!(
        run.stderr.contains(
            "offered on the Gemini API only, and this profile talks to Vertex AI; turns go with"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(server.request_count(), 0);
}

#[test]
fn a_server_that_echoes_the_key_gets_it_stored_nowhere() {
    let server = FakeGemini::start();
    let key = server.api_key().to_string();
    server.push_reply(crate::support::fake_gemini::Reply::ImageWithText(format!(
        "Here is your fox, {key}."
    )));
    server.push_reply(crate::support::fake_gemini::Reply::ImageWithText(format!(
        "And the night, {key}."
    )));
    let sandbox = Sandbox::new(&server);
    let first = sandbox
        .run(
            &["-s", "fox", "--transport", "interactions", "--stream"],
            "a red fox\nmake it night\n",
        )
        .expect_code(0);
    let history = sandbox.run(&["-r", "fox"], "/history\n").expect_code(0);
    assert!(
        history.stderr.contains("make it night"),
        "{}",
        history.stderr
    );
    sandbox.assert_key_nowhere(&key, &[&first, &history]);
}
