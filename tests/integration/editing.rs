//! The editing loop end to end: the real binary against the fake server.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::Sandbox;
use crate::support::fake_gemini::{FakeGemini, Reply};

/// A small real PNG to attach.
fn write_png(path: &std::path::Path, w: u32, h: u32) {
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 128]))
        .save(path)
        .unwrap();
}

#[test]
fn three_turns_then_a_resumed_fourth_resend_the_whole_history_exactly() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let run = sandbox
        .run(
            &["-s", "fox"],
            "a red fox\n/aspect 16:9\nmake it night\nadd snow\n",
        )
        .expect_code(0);

    // stdout carries only the saved paths, one a line, typed from the bytes (JPEG for 3 Pro).
    let paths = run.stdout_lines();
    assert_eq!(paths.len(), 3, "{run:?}");
    for (turn, path) in paths.iter().enumerate() {
        assert!(
            path.ends_with(&format!("out/fox/{}.jpg", turn + 1)),
            "{path}"
        );
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..3], b"\xff\xd8\xff");
        assert_eq!(bytes, server.issued_images()[turn].bytes());
    }
    let (w, h) = image::image_dimensions(paths[1]).unwrap();
    assert!(w > h, "turn 2 was asked for 16:9 and got {w}x{h}");

    let run = sandbox.run(&["-r"], "add a moon\n").expect_code(0);
    assert!(run.stdout.trim_end().ends_with("out/fox/4.jpg"), "{run:?}");

    let requests = server.requests();
    assert_eq!(requests.len(), 4);
    let last = requests[3].contents();
    assert_eq!(
        last.len(),
        7,
        "the 4th turn carries 3 prompts, 3 answers and the new prompt"
    );
    let roles: Vec<&str> = last.iter().map(|c| c["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        ["user", "model", "user", "model", "user", "model", "user"]
    );
    // Every earlier request is a prefix of the last one: user turns are re-sent as first sent.
    for (k, request) in requests[..3].iter().enumerate() {
        assert_eq!(
            request.contents(),
            &last[..2 * k + 1],
            "request {} is a prefix of the last",
            k + 1
        );
    }
    // Every model turn is re-sent exactly as the server sent it: parts, order, signatures, unknown fields.
    let answers = server.responses();
    for k in 0..3 {
        assert_eq!(
            last[2 * k + 1],
            answers[k]["candidates"][0]["content"],
            "model turn {}",
            k + 1
        );
    }
    assert_eq!(last[6]["parts"][0]["text"], "add a moon");

    let config = &requests[1].json()["generationConfig"];
    assert_eq!(config["responseModalities"], json!(["TEXT", "IMAGE"]));
    assert_eq!(
        config["imageConfig"],
        json!({"aspectRatio": "16:9", "imageSize": "1K"})
    );
    assert_eq!(
        requests[0].json()["generationConfig"]["imageConfig"],
        json!({"imageSize": "1K"})
    );
    assert_eq!(
        requests[3].json()["generationConfig"]["imageConfig"]["aspectRatio"],
        "16:9",
        "settings resume too"
    );
    for request in &requests {
        assert_eq!(request.header("x-goog-api-key"), Some(server.api_key()));
        assert!(request.query.is_none());
        assert_eq!(
            request.path,
            "/v1beta/models/gemini-3-pro-image:generateContent"
        );
    }
}

#[test]
fn a_changed_history_gets_the_real_400_and_records_nothing() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    sandbox.run(&["-s", "s"], "one\n").expect_code(0);
    // Damage the stored signature the way a careless client would: drop it.
    let conn = rusqlite::Connection::open(sandbox.db()).unwrap();
    let parts: String = conn
        .query_row("SELECT parts FROM contents WHERE role = 'model'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let mut parts: Value = serde_json::from_str(&parts).unwrap();
    for part in parts.as_array_mut().unwrap() {
        part.as_object_mut().unwrap().remove("thoughtSignature");
    }
    conn.execute(
        "UPDATE contents SET parts = ?1 WHERE role = 'model'",
        [parts.to_string()],
    )
    .unwrap();
    drop(conn);

    let run = sandbox.run(&["-r", "s"], "two\n").expect_code(1);
    assert!(
        run.stderr.contains("400 INVALID_ARGUMENT"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("missing a thought_signature in content position 2"),
        "{}",
        run.stderr
    );
    assert_eq!(sandbox.stored_contents(), 2);
}

#[test]
fn a_process_killed_mid_request_leaves_every_earlier_turn() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    server.push_reply(Reply::Image);
    server.push_reply(Reply::Image);
    server.push_reply(Reply::Hang);
    let mut child = sandbox.spawn(&["-s", "k"], "one\ntwo\nthree\n");
    server.wait_for_requests(3, Duration::from_secs(30));
    server.wait_for_replies_taken(Duration::from_secs(30));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    assert_eq!(
        sandbox.stored_contents(),
        4,
        "two whole turns, nothing of the third"
    );
    let integrity: String = sandbox
        .open_db()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let run = sandbox.run(&["-r", "k"], "/history\nfour\n").expect_code(0);
    assert!(run.stderr.contains("two"), "{}", run.stderr);
    assert_eq!(server.requests().last().unwrap().contents().len(), 5);
}

#[test]
fn one_shot_prints_paths_and_json_and_types_files_from_their_bytes() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let run = sandbox
        .run(&["-m", "gemini-2.5-flash-image", "a cat in a teacup"], "")
        .expect_code(0);
    let path = run.stdout.trim();
    assert!(path.ends_with("out/cat-teacup/1.png"), "{path}");
    assert_eq!(&std::fs::read(path).unwrap()[..4], b"\x89PNG");
    assert!(
        server.requests()[0].json()["generationConfig"]
            .get("imageConfig")
            .is_none(),
        "2.5 takes no imageSize, and the default is left out"
    );

    let run = sandbox
        .run(&["-s", "j", "--json", "a dog"], "")
        .expect_code(0);
    let object: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(object["session"], "j");
    assert_eq!(object["turn"], 1);
    assert_eq!(object["finish_reason"], "STOP");
    assert!(object["usage"]["totalTokenCount"].as_u64().unwrap() > 0);
    assert!(object["cost"]["usd"].as_f64().unwrap() > 0.1);
    let image = &object["images"][0];
    assert!(
        image["width"].as_u64().unwrap() > 0 && image["path"].as_str().unwrap().ends_with("1.jpg")
    );
}

#[test]
fn errors_are_one_clear_line_and_record_nothing() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);

    // A 429 without RetryInfo or QuotaFailure is a used-up quota: not retried (the retried kind is in providers.rs).
    server.push_reply(Reply::Status(
        429,
        json!({"error": {"code": 429, "message": "You exceeded your current quota.", "status": "RESOURCE_EXHAUSTED"}}),
    ));
    let run = sandbox.run(&["a cat"], "").expect_code(1);
    assert!(
        run.stderr
            .contains("429 RESOURCE_EXHAUSTED: You exceeded your current quota"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("waiting will not help"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());

    server.push_reply(Reply::gateway_error(
        402,
        "insufficient balance",
        "billing",
        "insufficient_quota",
    ));
    let run = sandbox.run(&["a cat"], "").expect_code(1);
    assert!(
        run.stderr.contains("402 billing: insufficient balance"),
        "{}",
        run.stderr
    );

    server.push_reply(Reply::RawBody(200, "<html>not json".into()));
    let run = sandbox.run(&["a cat"], "").expect_code(1);
    assert!(
        run.stderr.contains("not a Gemini response"),
        "{}",
        run.stderr
    );

    server.push_reply(Reply::Fixture("response-prompt-blocked.json"));
    let run = sandbox.run(&["a cat"], "").expect_code(1);
    assert!(
        run.stderr
            .contains("prompt was blocked as prohibited content (PROHIBITED_CONTENT)"),
        "{}",
        run.stderr
    );

    assert_eq!(sandbox.stored_contents(), 0);
    assert!(!run.stderr.contains("panicked"));
}

#[test]
fn a_refusal_keeps_the_attachments_for_the_next_try() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    write_png(&sandbox.path("ref.png"), 64, 48);
    server.push_reply(Reply::Fixture("response-image-safety-via-proxy.json"));
    server.push_reply(Reply::Fixture("response-no-image.json"));
    let run = sandbox
        .run(
            &["-s", "r", "--keep-going"],
            "/attach ref.png\nmake it a painting\nmake it a painting\nagain\n",
        )
        .expect_code(1);
    assert!(
        run.stderr
            .contains("filtered out for safety (IMAGE_SAFETY): Unable to show"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("the attachment is kept for the next try"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("returned no image (NO_IMAGE)"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout_lines().len(), 1, "the third try succeeded");

    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    for request in &requests {
        let parts = &request.contents()[0]["parts"];
        assert_eq!(
            parts[1]["inlineData"]["mimeType"], "image/png",
            "the attachment rides along every try"
        );
        assert_eq!(
            request.contents().len(),
            1,
            "refusals add nothing to the history"
        );
    }
    assert_eq!(sandbox.stored_contents(), 2);
}

#[test]
fn bad_attachments_are_refused_before_any_request() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    std::fs::write(sandbox.path("notes.png"), "just text").unwrap();
    let run = sandbox
        .run(&["-i", "notes.png", "a cat"], "")
        .expect_code(1);
    assert!(run.stderr.contains("not an image"), "{}", run.stderr);
    let run = sandbox
        .run(&["-i", "missing.png", "a cat"], "")
        .expect_code(1);
    assert!(run.stderr.contains("missing.png"), "{}", run.stderr);
    let run = sandbox.run(&[], "/attach missing.jpg\n").expect_code(1);
    assert!(run.stderr.contains("missing.jpg"), "{}", run.stderr);
    assert_eq!(server.request_count(), 0);
}

#[test]
fn a_text_only_answer_is_a_turn() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    server.push_reply(Reply::TextOnly(
        "I need more detail: what kind of fox?".into(),
    ));
    let run = sandbox
        .run(&["-s", "t"], "a fox\na red one\n")
        .expect_code(0);
    assert!(run.stderr.contains("I need more detail"), "{}", run.stderr);
    assert!(run.stderr.contains("no image came back"), "{}", run.stderr);
    assert_eq!(run.stdout_lines().len(), 1);
    assert_eq!(server.requests()[1].contents().len(), 3);
}

#[test]
fn usage_errors_exit_2_without_a_request() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    for (args, message) in [
        (vec!["--size", "3K", "x"], "unknown image size"),
        (
            vec!["-m", "gemini-2.5-flash-image", "--size", "4K", "x"],
            "takes no image size",
        ),
        (vec!["--size", "512", "x"], "does not take size 512"),
        (vec!["-a", "1:8", "x"], "does not take aspect ratio 1:8"),
        (vec!["-r", "nobody"], "no session named"),
        (vec!["--bogus"], "unexpected argument"),
    ] {
        let run = sandbox.run(&args, "").expect_code(2);
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
    }
    let run = Sandbox::bare().run(&["a cat"], "").expect_code(2);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("GEMINI_API_KEY"));
    assert_eq!(server.request_count(), 0);
}

#[test]
fn newer_or_broken_databases_are_refused_clearly() {
    let sandbox = Sandbox::bare();
    sandbox.run(&["sessions"], "").expect_code(0);
    let conn = rusqlite::Connection::open(sandbox.db()).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let run = sandbox.run(&["--offline", "x"], "").expect_code(1);
    assert!(
        run.stderr.contains("written by a newer peel"),
        "{}",
        run.stderr
    );

    std::fs::write(sandbox.db(), vec![0x42; 10_000]).unwrap();
    let run = sandbox.run(&["--offline", "x"], "").expect_code(1);
    assert!(
        run.stderr.contains("not a SQLite database"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read(sandbox.db()).unwrap(),
        vec![0x42; 10_000],
        "nothing was overwritten"
    );
}

#[test]
fn the_key_is_nowhere_but_the_header() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    server.push_reply(Reply::status_fixture(
        400,
        "error-400-missing-image-signature.json",
    ));
    let first = sandbox.run(&["-s", "k", "-v"], "one\ntwo\n/history\n/sessions\n");
    let second = sandbox.run(&["-r", "k"], "three\n");
    sandbox.assert_key_nowhere(server.api_key(), &[&first, &second]);
}

#[test]
fn offline_mode_needs_no_key_and_resumes() {
    let sandbox = Sandbox::bare();
    let run = sandbox
        .run(&["--offline", "-s", "o"], "a red fox\nmake it night\n")
        .expect_code(0);
    assert_eq!(run.stdout_lines().len(), 2);
    let first = image::open(run.stdout_lines()[0]).unwrap();
    assert_eq!((first.width(), first.height()), (1024, 1024));
    let run = sandbox
        .run(&["--offline", "-r"], "/history\nadd snow\n")
        .expect_code(0);
    assert!(run.stdout.trim_end().ends_with("o/3.jpg"), "{run:?}");
}

#[test]
fn interim_thought_images_are_kept_and_shown() {
    use base64::Engine;
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let png = |w: u32| {
        let mut out = Vec::new();
        image::RgbImage::new(w, 8)
            .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        base64::engine::general_purpose::STANDARD.encode(out)
    };
    server.push_reply(Reply::Status(
        200,
        json!({"candidates": [{"content": {"role": "model", "parts": [
            {"text": "**Sketching**", "thought": true},
            {"inlineData": {"mimeType": "image/png", "data": png(16)}, "thought": true},
            {"inlineData": {"mimeType": "image/png", "data": png(32)}, "thoughtSignature": "c2ln"}
        ]}, "finishReason": "STOP"}]}),
    ));
    let run = sandbox.run(&["-s", "t"], "a fox\n/show 1\n").expect_code(0);
    let lines = run.stdout_lines();
    assert!(lines[0].ends_with("out/t/1.png"), "{run:?}");
    assert!(
        lines.last().unwrap().ends_with("out/t/1-thought-1.png"),
        "{run:?}"
    );
    assert_eq!(
        image::image_dimensions(lines.last().unwrap()).unwrap(),
        (16, 8)
    );
    assert!(
        run.stderr.contains("thought image 1 of turn 1"),
        "{}",
        run.stderr
    );
}

#[test]
fn open_hands_the_image_to_the_system_viewer() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::bare();
    let bin = sandbox.path("bin");
    std::fs::create_dir(&bin).unwrap();
    let opener = bin.join("xdg-open");
    let log = sandbox.path("opened.txt");
    std::fs::write(
        &opener,
        format!("#!/bin/sh\necho \"$1\" > {}\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = sandbox.peel(&["--offline", "-s", "o"]);
    command.env("PATH", path);
    let run = sandbox
        .run_command(command, "a fox\n/open\n")
        .expect_code(0);
    let opened = std::fs::read_to_string(&log).unwrap();
    assert!(opened.trim().ends_with("out/o/1.jpg"), "{opened} {run:?}");
}
