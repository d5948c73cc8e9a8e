//! Threads whose turns did not all come from the model asked now (issue 11): started offline, switched between
//! models, imported from a hand-made file. Every request must pass the fake server's signature check, which binds
//! each signature to the family of the model that issued it, as the real API does.

use serde_json::{Value, json};

use crate::harness::Sandbox;
use crate::support::fake_gemini::{FakeGemini, Reply, SKIP_SIGNATURE, SignatureSize};

const NANO: &str = "gemini-2.5-flash-image";
const PRO: &str = "gemini-3-pro-image";
const FLASH: &str = "gemini-3.1-flash-image";

/// The model of turn `n` (from 1): 2.5, 3 Pro, 3.1 Flash, 2.5, ...
fn model_of(turn: usize) -> &'static str {
    [NANO, PRO, FLASH][(turn - 1) % 3]
}

/// Lines for turns `from..=to`, each after a /model for its model; streaming from the turn `stream_from`.
fn script(from: usize, to: usize, stream_from: usize) -> String {
    (from..=to)
        .map(|turn| {
            let stream = if turn == stream_from {
                "/stream on\n"
            } else {
                ""
            };
            format!(
                "/model {}\n{stream}turn {turn}: more detail\n",
                model_of(turn)
            )
        })
        .collect()
}

fn signature_of(part: &Value) -> Option<&str> {
    part.get("thoughtSignature").and_then(Value::as_str)
}

#[test]
fn a_twenty_turn_thread_started_offline_goes_on_across_three_models() {
    // Text before every image, so turns of 2.5 also leave an unsigned text part where a Gemini 3 model signs one.
    let server = FakeGemini::builder()
        .signature_size(SignatureSize::Chars(4_000))
        .default_reply(Reply::ImageWithText("Here it is.".into()))
        .start();
    let sandbox = Sandbox::new(&server);

    // Turns 1 and 2 offline, as 2.5 and 3 Pro.
    sandbox
        .run(&["--offline", "-s", "mix"], &script(1, 2, 0))
        .expect_code(0);
    assert_eq!(server.request_count(), 0, "offline sends nothing");
    let offline_model_parts: String =
        sandbox.query_one("SELECT parts FROM contents WHERE role = 'model' AND depth = 3");

    // Turns 3 to 20 against the server, alternating models; streamed from turn 12 on.
    let run = sandbox
        .run(&["-r", "mix"], &script(3, 20, 12))
        .expect_code(0);
    let requests = server.requests();
    assert_eq!(requests.len(), 18, "{}", run.stderr);
    for (i, request) in requests.iter().enumerate() {
        let turn = i + 3;
        assert_eq!(request.model.as_deref(), Some(model_of(turn)));
        assert_eq!(
            request.status,
            Some(200),
            "turn {turn} ({}) was refused:\n{}",
            model_of(turn),
            run.stderr
        );
        assert_eq!(request.contents().len(), 2 * turn - 1);
    }
    assert_eq!(sandbox.stored_contents(), 40);

    // Turn 10 goes to 2.5: the history exactly as stored, signatures and all.
    let to_nano = &requests[10 - 3];
    assert_eq!(to_nano.model.as_deref(), Some(NANO));
    let offline_pro = &to_nano.contents()[3]["parts"];
    assert!(
        signature_of(&offline_pro[1]).is_some_and(|s| s != SKIP_SIGNATURE),
        "{offline_pro}"
    );

    // Turn 20 goes to 3 Pro: its own turns made online (5, 8, 11, 14, 17) carry the signatures it issued; every
    // other model turn, the offline stand-in's turn 2 as 3 Pro included, the dummy on its image and on the text
    // before it.
    let last = &requests[20 - 3];
    assert_eq!(last.model.as_deref(), Some(PRO));
    let issued: Vec<String> = server
        .issued_images()
        .iter()
        .filter_map(|image| image.signature.clone())
        .collect();
    for turn in 1..20 {
        let parts = last.contents()[2 * turn - 1]["parts"].as_array().unwrap();
        let (text, image) = (&parts[0], &parts[1]);
        assert!(image.get("inlineData").is_some(), "turn {turn}: {parts:?}");
        if turn >= 3 && model_of(turn) == PRO {
            let signature = signature_of(image).unwrap();
            assert!(issued.iter().any(|s| s == signature), "turn {turn}");
            assert_ne!(signature_of(text), Some(SKIP_SIGNATURE), "turn {turn}");
        } else {
            assert_eq!(signature_of(image), Some(SKIP_SIGNATURE), "turn {turn}");
            assert_eq!(signature_of(text), Some(SKIP_SIGNATURE), "turn {turn}");
        }
    }

    // The stored thread was never changed: the offline turn's parts are as the stand-in gave them.
    let stored_now: String =
        sandbox.query_one("SELECT parts FROM contents WHERE role = 'model' AND depth = 3");
    assert_eq!(stored_now, offline_model_parts);
    assert!(!stored_now.contains(SKIP_SIGNATURE));

    // Who made each turn is recorded: the stand-in for the first two, the server's host for the others.
    let made_by: Vec<String> = sandbox.query_all(
        "SELECT json_extract(meta, '$.made_by.backend') FROM contents WHERE role = 'model' ORDER BY depth",
    );
    assert_eq!(made_by[..2], ["offline", "offline"]);
    assert!(made_by[2..].iter().all(|b| b == "api"), "{made_by:?}");
}

#[test]
fn a_hand_made_history_is_imported_and_continued_on_gemini_3() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    // Someone's own history: a model turn with text and an image and no signature, no record of who made it.
    let image = server_image(&server);
    let thread = json!({
        "format": "peel-thread",
        "version": 1,
        "session": "handmade",
        "settings": {"model": PRO},
        "contents": [
            {"role": "user", "parts": [{"text": "an old photo"}]},
            {"role": "model", "parts": [
                {"text": "Here is the photo."},
                {"inlineData": {"mimeType": "image/jpeg", "data": image}}
            ]}
        ]
    });
    let file = sandbox.path("thread.json");
    std::fs::write(&file, thread.to_string()).unwrap();
    sandbox
        .run(&["import", file.to_str().unwrap()], "")
        .expect_code(0);
    server.clear_requests();
    sandbox
        .run(&["-r", "handmade"], "restore the colours\n")
        .expect_code(0);
    let request = &server.requests()[0];
    assert_eq!(request.status, Some(200));
    let parts = &request.contents()[1]["parts"];
    assert_eq!(signature_of(&parts[0]), Some(SKIP_SIGNATURE));
    assert_eq!(signature_of(&parts[1]), Some(SKIP_SIGNATURE));
}

#[test]
fn a_signature_refusal_names_the_cause_and_the_way_on() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    sandbox.run(&["-s", "s"], "one\n").expect_code(0);
    server.push_reply(Reply::status_fixture(
        400,
        "error-400-missing-image-signature.json",
    ));
    let run = sandbox.run(&["-r", "s"], "two\n").expect_code(1);
    assert!(run.stderr.contains("/context last N"), "{}", run.stderr);
    assert!(run.stderr.contains("/fresh"), "{}", run.stderr);
    assert!(!run.stderr.contains("peel bug"), "{}", run.stderr);
}

/// A real image's base64, made by the server itself (then forgotten by the log).
fn server_image(server: &FakeGemini) -> String {
    let sandbox = Sandbox::new(server);
    sandbox.run(&["-s", "x"], "anything\n").expect_code(0);
    server.issued_images().last().unwrap().data.clone()
}

/// A PNG of `w`x`h` in the sandbox, to attach.
fn png(sandbox: &Sandbox, name: &str) -> String {
    let path = sandbox.path(name);
    image::RgbImage::new(8, 8).save(&path).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn reference_limits_are_the_models_and_a_profile_can_narrow_what_is_taken() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let images: Vec<String> = (0..4)
        .map(|i| png(&sandbox, &format!("r{i}.png")))
        .collect();
    let attach = |n: usize| format!("/attach {}\n", images[..n].join(" "));

    // 2.5 takes 3 reference images; 3 Pro takes 14.
    let run = sandbox
        .run(&["-s", "n", "-m", NANO], &format!("{}four\n", attach(4)))
        .expect_code(1);
    assert!(
        run.stderr.contains("takes at most 3 reference images")
            && run.stderr.contains("would carry 4"),
        "{}",
        run.stderr
    );
    assert_eq!(server.request_count(), 0, "refused before sending");
    sandbox
        .run(&["-s", "n2", "-m", NANO], &format!("{}three\n", attach(3)))
        .expect_code(0);
    sandbox
        .run(&["-s", "p", "-m", PRO], &format!("{}four\n", attach(4)))
        .expect_code(0);
    assert_eq!(server.request_count(), 2);

    // A profile's own lists and limits.
    let config = sandbox.path("config.toml");
    std::fs::write(
        &config,
        "[profiles.narrow]\nratios = [\"1:1\", \"16:9\"]\nsizes = [\"1K\"]\nmax_reference_images = 1\n",
    )
    .unwrap();
    let with_profile = |stdin: &str| {
        let mut command = sandbox.peel(&[
            "--config",
            config.to_str().unwrap(),
            "-p",
            "narrow",
            "-s",
            "q",
        ]);
        command.env("PEEL_MODEL", PRO);
        sandbox.run_command(command, stdin)
    };
    let run = with_profile("/aspect 4:3\n").expect_code(1);
    assert!(
        run.stderr
            .contains("does not take aspect ratio 4:3 on profile narrow; it takes 1:1 16:9"),
        "{}",
        run.stderr
    );
    let run = with_profile("/size 2K\n").expect_code(1);
    assert!(
        run.stderr
            .contains("does not take size 2K on profile narrow"),
        "{}",
        run.stderr
    );
    let run = with_profile(&format!("{}two\n", attach(2))).expect_code(1);
    assert!(
        run.stderr
            .contains("takes at most 1 reference image in a request on profile narrow"),
        "{}",
        run.stderr
    );
    with_profile("/aspect 16:9\none\n").expect_code(0);
    assert_eq!(server.request_count(), 3);
    let sent = &server.requests()[2];
    assert_eq!(
        sent.json()["generationConfig"]["imageConfig"]["aspectRatio"],
        "16:9"
    );
}
