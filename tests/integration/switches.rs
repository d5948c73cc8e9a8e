//! Thinking, search grounding and `/cost`: what each switch puts in the request, what the model table refuses
//! before sending, and what the person sees.

use serde_json::{Value, json};

use crate::harness::Sandbox;
use crate::support::fake_gemini::FakeGemini;

#[test]
fn search_adds_the_tool_and_lists_the_sources_under_the_image() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let run = sandbox
        .run(&["-s", "s", "--json"], "/search on\na red fox\n")
        .expect_code(0);
    let request = &server.requests()[0];
    assert_eq!(request.json()["tools"], json!([{"googleSearch": {}}]));
    assert!(
        run.stderr
            .contains("sources:\n  1. wildlife.example https://vertexaisearch"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("  2. foxes.example"), "{}", run.stderr);
    let object: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(object["sources"][1]["title"], "foxes.example");
    // The sources are kept with the turn, and exported.
    let dir = sandbox.path("exported");
    sandbox
        .run(&["export", "s", dir.to_str().unwrap()], "")
        .expect_code(0);
    let transcript = std::fs::read_to_string(dir.join("transcript.md")).unwrap();
    assert!(
        transcript.contains("- [foxes.example](https://vertexaisearch"),
        "{transcript}"
    );
    let thread = std::fs::read_to_string(dir.join("thread.json")).unwrap();
    assert!(thread.contains("wildlife.example"));

    // Nano Banana 2 searches images too; the setting was kept with the session.
    sandbox
        .run(&["-r", "-m", "gemini-3.1-flash-image"], "make it night\n")
        .expect_code(0);
    assert_eq!(
        server.requests()[1].json()["tools"],
        json!([{"googleSearch": {"searchTypes": {"webSearch": {}, "imageSearch": {}}}}])
    );

    // Nano Banana has no search: the switch is refused before anything is sent, naming the setting and the fix,
    // and the script stops there (the prompt after it would have gone to the old model).
    let run = sandbox
        .run(&["-r"], "/model gemini-2.5-flash-image\nmake it night\n")
        .expect_code(1);
    assert!(
        run.stderr.contains(
            "line 1: gemini-2.5-flash-image does not take search on; /model gemini-2.5-flash-image --fit switches \
             and uses search off"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("stopped at line 1"), "{}", run.stderr);
    let run = sandbox
        .run(
            &["-s", "n", "--search", "-m", "gemini-2.5-flash-image", "x"],
            "",
        )
        .expect_code(2);
    assert!(run.stderr.contains("Google Search"), "{}", run.stderr);
    assert_eq!(server.request_count(), 2);
}

#[test]
fn thinking_settings_only_where_the_model_takes_them() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let run = sandbox
        .run(
            &["-s", "t", "-m", "gemini-3.1-flash-image"],
            "/think high\n/thoughts on\n/settings\na red fox\n",
        )
        .expect_code(0);
    assert!(run.stderr.contains("thoughts     on"), "{}", run.stderr);
    assert!(run.stderr.contains("think        high"), "{}", run.stderr);
    assert!(
        run.stderr.contains("Planning the image"),
        "the summary is shown: {}",
        run.stderr
    );
    assert_eq!(
        server.requests()[0].json()["generationConfig"]["thinkingConfig"],
        json!({"includeThoughts": true, "thinkingLevel": "high"})
    );

    // Settings resume with the session. A switch to 2.5 names every setting it does not take at once, and --fit
    // makes the change in one step; a thinking level is refused on Pro and thoughts on 2.5, before sending.
    let run = sandbox
        .run(&["-r"], "/model gemini-2.5-flash-image\n")
        .expect_code(1);
    assert!(
        run.stderr.contains(
            "gemini-2.5-flash-image does not take thoughts on or think high; /model gemini-2.5-flash-image --fit \
             switches and uses thoughts off and think auto"
        ),
        "{}",
        run.stderr
    );
    let run = sandbox
        .run(
            &["-r", "--keep-going"],
            "/model gemini-3-pro-image --fit\n/think minimal\n/thoughts on\n",
        )
        .expect_code(1);
    assert!(
        run.stderr.contains("takes no thinking level"),
        "{}",
        run.stderr
    );
    let run = sandbox
        .run(
            &["-r", "--keep-going"],
            "/model gemini-2.5-flash-image --fit\n/thoughts on\nmake it night\n",
        )
        .expect_code(1);
    assert!(run.stderr.contains("does not think"), "{}", run.stderr);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].model.as_deref(), Some("gemini-2.5-flash-image"));
    assert!(
        requests[1].json()["generationConfig"]
            .get("thinkingConfig")
            .is_none()
    );
}

#[test]
fn cost_lists_each_turn_and_the_thread() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let run = sandbox
        .run(&["-s", "c"], "/cost\na red fox\nmake it night\n/cost\n")
        .expect_code(0);
    assert!(
        run.stderr.contains("session c has no turns yet"),
        "{}",
        run.stderr
    );
    let table = &run.stderr[run.stderr.find("turn  model").expect(&run.stderr)..];
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].contains("prompt") && lines[0].contains("thinking") && lines[0].contains("output")
    );
    assert!(lines[1].starts_with("1     gemini-3-pro-image"), "{table}");
    assert!(lines[2].starts_with("2 "), "{table}");
    assert!(lines[3].starts_with("all"), "{table}");
    // Two 1K Pro images at $0.134 and their input tokens at $2/M.
    let total: f64 = lines[3].rsplit('$').next().unwrap().trim().parse().unwrap();
    assert!((0.268..0.275).contains(&total), "{table}");
    assert!(lines[4].starts_with("2 turns in session c"), "{table}");
}
