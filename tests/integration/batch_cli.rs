//! `peel batch` end to end: the real binary against the fake Batch and Files APIs. A prompts file submitted inline
//! or as an uploaded file, followed from later runs (status, wait), fetched into sessions or as takes of one turn,
//! a per-request error reported on its line, a second fetch storing nothing, cancel, and Ctrl-C during a wait.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Run, Sandbox};
use crate::support::fake_gemini::FakeGemini;

fn write(sandbox: &Sandbox, name: &str, text: &str) -> String {
    let path = sandbox.path(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn session_names(sandbox: &Sandbox) -> Vec<String> {
    sandbox.query_all("SELECT name FROM sessions ORDER BY id")
}

fn a_png(sandbox: &Sandbox, name: &str) -> String {
    let mut bytes = Vec::new();
    image::RgbImage::from_pixel(32, 32, image::Rgb([200, 40, 40]))
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    let path = sandbox.path(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

fn batch(sandbox: &Sandbox, args: &[&str]) -> Run {
    let mut all = vec!["batch"];
    all.extend_from_slice(args);
    sandbox.run(&all, "")
}

const PROMPTS: &str = "# three foxes\na red fox at dawn\n\n\
{\"prompt\": \"a blue fox in snow\", \"references\": [\"ref.png\"], \"aspect\": \"16:9\"}\n\
{\"prompt\": \"a green fox\", \"settings\": {\"size\": \"2K\"}}\n";

#[test]
fn a_prompts_file_is_submitted_followed_and_fetched_into_sessions_once() {
    let server = FakeGemini::start();
    server.set_batch_delay(Duration::from_millis(1500));
    let sandbox = Sandbox::new(&server);
    a_png(&sandbox, "ref.png");
    let file = write(&sandbox, "foxes.txt", PROMPTS);

    let run = batch(&sandbox, &[&file]).expect_code(0);
    assert_eq!(
        run.stdout.trim(),
        "1",
        "the job's number on stdout: {run:?}"
    );
    assert!(run.stderr.contains("submitted batch 1"), "{}", run.stderr);
    assert!(run.stderr.contains("3 prompts") && run.stderr.contains("inline"));
    let create = server
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with(":batchGenerateContent"))
        .unwrap();
    let inline = create.json()["batch"]["inputConfig"]["requests"]["requests"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(inline.len(), 3);
    assert_eq!(inline[0]["metadata"]["key"], "2", "keys are line numbers");
    let blue = &inline[1]["request"];
    assert_eq!(
        blue["contents"][0]["parts"][1]["inlineData"]["mimeType"],
        "image/png"
    );
    assert_eq!(
        blue["generationConfig"]["imageConfig"]["aspectRatio"],
        "16:9"
    );
    assert_eq!(
        inline[2]["request"]["generationConfig"]["imageConfig"]["imageSize"],
        "2K"
    );

    // Any later peel follows the job: its state from the server, its counts.
    let run = batch(&sandbox, &["status", "1"]).expect_code(0);
    assert!(
        run.stdout.contains("pending") || run.stdout.contains("running"),
        "{}",
        run.stdout
    );
    let run = batch(&sandbox, &["fetch", "1"]).expect_code(1);
    assert!(run.stderr.contains("peel batch wait 1"), "{}", run.stderr);
    let run = batch(&sandbox, &["wait", "1"]).expect_code(0);
    assert!(run.stderr.contains("succeeded"), "{}", run.stderr);
    assert!(run.stderr.contains("3 of 3 done"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "waiting writes no results: {run:?}");

    let run = batch(&sandbox, &["fetch", "1"]).expect_code(0);
    let paths = run.stdout_lines();
    assert_eq!(paths.len(), 3, "{run:?}");
    let issued = server.issued_images();
    for path in &paths {
        let bytes = std::fs::read(path).unwrap();
        assert!(issued.iter().any(|i| i.bytes() == bytes), "{path}");
    }
    assert_eq!(
        session_names(&sandbox),
        ["red-fox-dawn", "blue-fox-snow", "green-fox"],
        "a session a prompt, named like auto names"
    );
    assert!(paths[0].ends_with("out/red-fox-dawn/1.jpg"), "{}", paths[0]);
    assert!(run.stderr.contains("at the batch price"), "{}", run.stderr);
    // Half the standard price: a 1K image on 3 Pro is $0.134.
    let cost: f64 = sandbox.query_one(
        "SELECT json_extract(meta, '$.cost_usd') FROM contents WHERE role = 'model' ORDER BY id LIMIT 1",
    );
    assert!((0.067..0.07).contains(&cost), "{cost}");
    let (contents, blobs) = (
        sandbox.count("SELECT count(*) FROM contents"),
        sandbox.count("SELECT count(*) FROM blobs"),
    );
    assert_eq!(contents, 6);

    // Fetching again stores nothing twice.
    let run = batch(&sandbox, &["fetch", "1"]).expect_code(0);
    assert!(run.stdout.is_empty(), "{run:?}");
    assert!(run.stderr.contains("3 stored before"), "{}", run.stderr);
    assert_eq!(
        (
            sandbox.count("SELECT count(*) FROM contents"),
            sandbox.count("SELECT count(*) FROM blobs")
        ),
        (contents, blobs)
    );
    let run = batch(&sandbox, &["list"]).expect_code(0);
    assert!(run.stdout.contains("succeeded"), "{}", run.stdout);
    assert!(run.stdout.contains("fetched"), "{}", run.stdout);
    // The sessions are ordinary sessions: a turn continues the fetched answer, signatures accepted.
    sandbox
        .run(&["-r", "green-fox"], "make it night\n")
        .expect_code(0);
    assert_eq!(server.requests().last().unwrap().contents().len(), 3);
}

#[test]
fn over_the_inline_limit_the_requests_go_as_an_uploaded_file_and_a_failure_is_reported_on_its_line()
{
    let server = FakeGemini::start();
    server.set_batch_delay(Duration::from_millis(100));
    server.fail_batch_request("3", 400, "The prompt could not be read.");
    let sandbox = Sandbox::new(&server);
    let config = write(&sandbox, "config.toml", "batch_inline_mb = 0\n");
    let file = write(
        &sandbox,
        "foxes.txt",
        "a red fox\na blue fox\na green fox\n",
    );
    let run = sandbox
        .run(&["--config", &config, "batch", "--json", &file], "")
        .expect_code(0);
    let job: Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(job["input"], "file", "{job}");
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.path == "/upload/v1beta/files"),
        "uploaded through the Files API"
    );
    let id = job["batch"].as_i64().unwrap().to_string();
    let run = sandbox
        .run(
            &[
                "--config", &config, "batch", "wait", &id, "--fetch", "--json",
            ],
            "",
        )
        .expect_code(1);
    let results: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), 3, "{run:?}");
    assert!(results[0]["images"][0]["path"].is_string());
    assert_eq!(results[0]["cost"]["batch_price"], true);
    let failed = &results[2];
    assert_eq!(failed["line"], 3);
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("could not be read")
    );
    assert!(
        run.stderr
            .contains("line 3 (a green fox): no image: 400 The prompt could not be read"),
        "{}",
        run.stderr
    );
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.path.ends_with(":download")),
        "the results came as a responses file"
    );
    let run = sandbox
        .run(&["--config", &config, "batch", "status", &id], "")
        .expect_code(0);
    assert!(run.stdout.contains("2 stored, 1 failed"), "{}", run.stdout);
    assert!(run.stderr.contains("line 3"), "{}", run.stderr);
}

#[test]
fn into_a_session_each_request_carries_its_history_and_the_results_become_takes() {
    let server = FakeGemini::start();
    server.set_batch_delay(Duration::from_millis(100));
    let sandbox = Sandbox::new(&server);
    sandbox
        .run(&["-s", "fox"], "a red fox\nmake it night\n")
        .expect_code(0);
    let file = write(&sandbox, "takes.txt", "make it dusk\nmake it dawn\n");
    server.clear_requests();

    // From turn 1: takes of turn 2 beside the one the session has; its head stays at turn 2.
    let run = batch(&sandbox, &[&file, "--into", "fox@1", "--wait"]).expect_code(0);
    let create = server
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with(":batchGenerateContent"))
        .unwrap();
    let inline = &create.json()["batch"]["inputConfig"]["requests"]["requests"];
    let contents = inline[0]["request"]["contents"].as_array().unwrap();
    assert_eq!(contents.len(), 3, "turn 1 and the prompt");
    assert_eq!(contents[2]["parts"][0]["text"], "make it dusk");
    assert!(
        contents[1]["parts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["thoughtSignature"].is_string()),
        "the history goes with its signatures"
    );
    let lines = run.stdout_lines();
    assert_eq!(lines[0], "1", "the job's number, then the paths: {run:?}");
    let paths = &lines[1..];
    assert_eq!(paths.len(), 2, "{run:?}");
    assert!(paths[0].ends_with("out/fox/2b.jpg"), "{}", paths[0]);
    assert!(paths[1].ends_with("out/fox/2c.jpg"), "{}", paths[1]);
    assert!(
        sandbox.out().join("fox/2a.jpg").is_file(),
        "the first take's file follows its new label"
    );
    assert!(run.stderr.contains("head stays"), "{}", run.stderr);
    let run = sandbox.run(&["-r", "fox"], "/history\n").expect_code(0);
    assert!(run.stderr.contains("make it night"), "{}", run.stderr);
    assert_eq!(session_names(&sandbox), ["fox"], "no new session");

    // From the head: takes of turn 3, and the head follows them.
    let file = write(&sandbox, "more.txt", "add snow\n");
    let run = batch(&sandbox, &[&file, "--into", "fox", "--wait"]).expect_code(0);
    assert_eq!(run.stdout_lines().len(), 2, "{run:?}");
    assert!(run.stdout.trim().ends_with("out/fox/3.jpg"), "{run:?}");
    let run = sandbox.run(&["-r", "fox"], "/history\n").expect_code(0);
    assert!(run.stderr.contains("add snow"), "{}", run.stderr);
}

#[test]
fn cancel_stops_the_job_and_ctrl_c_stops_only_the_wait() {
    let server = FakeGemini::start();
    server.set_batch_delay(Duration::from_secs(600));
    let sandbox = Sandbox::new(&server);
    let file = write(&sandbox, "foxes.txt", "a red fox\na blue fox\n");
    batch(&sandbox, &[&file]).expect_code(0);

    // Ctrl-C while waiting: the wait stops, the job goes on.
    let before = server.request_count();
    let child = sandbox.spawn(&["batch", "wait", "1"], "");
    let asked = &server.wait_for_requests(before + 1, Duration::from_secs(20))[before];
    assert!(
        asked.method == "GET" && asked.path.starts_with("/v1beta/batches/"),
        "the wait asks the server for the job first: {} {}",
        asked.method,
        asked.path
    );
    std::thread::sleep(Duration::from_millis(200));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("stopped waiting; the job runs on"),
        "{stderr}"
    );
    assert!(
        !server
            .requests()
            .iter()
            .any(|r| r.path.ends_with(":cancel")),
        "nothing cancelled"
    );

    let run = batch(&sandbox, &["cancel", "1"]).expect_code(0);
    assert!(run.stderr.contains("cancelled"), "{}", run.stderr);
    let run = batch(&sandbox, &["status", "1", "--json"]);
    let run = run.expect_code(0);
    let status: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(status["state"], "cancelled");
    let run = batch(&sandbox, &["fetch", "1"]).expect_code(1);
    assert!(run.stderr.contains("no results"), "{}", run.stderr);
}

#[test]
fn a_bad_line_stops_the_file_before_anything_is_sent() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let file = write(
        &sandbox,
        "foxes.txt",
        "a red fox\n{\"prompt\": \"a fox\", \"size\": \"512\"}\n",
    );
    let run = batch(&sandbox, &[&file]).expect_code(1);
    assert!(run.stderr.contains("line 2"), "{}", run.stderr);
    assert!(run.stderr.contains("512"), "{}", run.stderr);
    let file = write(
        &sandbox,
        "missing.txt",
        "{\"prompt\": \"x\", \"references\": [\"no.png\"]}\n",
    );
    let run = batch(&sandbox, &[&file]).expect_code(1);
    assert!(run.stderr.contains("no.png"), "{}", run.stderr);
    assert_eq!(server.request_count(), 0);
    assert_eq!(sandbox.count("SELECT count(*) FROM batches"), 0);
    let run = batch(&sandbox, &["list"]).expect_code(0);
    assert!(run.stderr.contains("no batches yet"), "{run:?}");
}

#[test]
fn a_job_the_server_refuses_leaves_nothing_behind() {
    let server = FakeGemini::builder()
        .models(&["gemini-3.1-flash-image"])
        .start();
    let sandbox = Sandbox::new(&server);
    let ref_png = a_png(&sandbox, "ref.png");
    let file = write(&sandbox, "foxes.txt", "a red fox\n");
    let run = batch(&sandbox, &[&file, "-i", &ref_png]).expect_code(1);
    assert!(run.stderr.contains("was not submitted"), "{}", run.stderr);
    assert!(run.stderr.contains("not found"), "{}", run.stderr);
    assert_eq!(sandbox.count("SELECT count(*) FROM batches"), 0);
    assert_eq!(
        sandbox.count("SELECT count(*) FROM blobs"),
        0,
        "the reference image went with the job"
    );
}
