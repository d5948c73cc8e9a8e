//! Issue 12's goals, measured (ignored tests, run in release; they print figures and PASS/MISS, and assert only that
//! the runs were sound):
//!
//!     cargo test --release --test integration -- --ignored --nocapture bench_interactions
//!     cargo test --release --test integration -- --ignored --nocapture bench_batch
//!
//! - `bench_interactions`: the 10-turn 2K thread of `bench_sdk` (2048x2048 JPEGs of about 1.9 MB, signatures as
//!   long as the image's base64) through peel twice against the fake server, with `--transport generate` and with
//!   `--transport interactions`: request bytes per turn (the body length the fake received), and what each run
//!   stored. Goals: turn 10 at most 1% of generateContent's, all turns at most 1/20.
//! - `bench_batch`: 50 prompts at 2K submitted, waited for and fetched into sessions, each step a process of its
//!   own; every image stored once, and the fetching peel's peak RSS (`VmHWM` from /proc, polled every millisecond)
//!   under 100 MB. The job is inline, so the fake answers the finished job with all 50 images and signatures inline
//!   in one operation of about 250 MB.

use std::time::Duration;

use serde_json::Value;

use crate::bench_sdk::{PROMPTS, run_measured};
use crate::harness::Sandbox;
use crate::support::fake_gemini::FakeGemini;

const SIZE: &str = "2K";

struct TransportRun {
    request_bytes: Vec<usize>,
    wall_s: f64,
    max_rss_mb: f64,
    contents: i64,
    images: Vec<(i64, i64)>,
    blob_bytes: i64,
}

fn run_thread(server: &FakeGemini, transport: &str) -> TransportRun {
    server.clear_requests();
    let sandbox = Sandbox::new(server);
    let script: String = PROMPTS.iter().map(|p| format!("{p}\n")).collect();
    let command = sandbox.peel(&[
        "--json",
        "--size",
        SIZE,
        "-s",
        "bench",
        "--transport",
        transport,
    ]);
    let measured = run_measured(command, &script);
    assert_eq!(measured.code, 0, "peel failed:\n{}", measured.stderr);
    assert_eq!(measured.lines.len(), PROMPTS.len(), "{}", measured.stderr);
    let mut images = Vec::new();
    for (_, line) in &measured.lines {
        let turn: Value = serde_json::from_str(line).unwrap();
        let image = &turn["images"][0];
        images.push((
            image["width"].as_i64().unwrap(),
            image["bytes"].as_i64().unwrap(),
        ));
    }
    let request_bytes: Vec<usize> = server
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.body_len)
        .collect();
    assert_eq!(request_bytes.len(), PROMPTS.len(), "one request a turn");
    let db = sandbox.open_db();
    let contents: i64 = db
        .query_row("SELECT count(*) FROM contents", [], |r| r.get(0))
        .unwrap();
    let blob_bytes: i64 = db
        .query_row("SELECT sum(length(bytes)) FROM blobs", [], |r| r.get(0))
        .unwrap();
    TransportRun {
        request_bytes,
        wall_s: measured.wall.as_secs_f64(),
        max_rss_mb: measured.max_rss_kb as f64 / 1024.0,
        contents,
        images,
        blob_bytes,
    }
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "MISS" }
}

#[test]
#[ignore]
fn bench_interactions() {
    let server = FakeGemini::start();
    let generate = run_thread(&server, "generate");
    let interactions = run_thread(&server, "interactions");
    println!(
        "\n{:>4} {:>14} {:>16} {:>10}",
        "turn", "generate B", "interactions B", "ratio"
    );
    for (turn, (g, i)) in generate
        .request_bytes
        .iter()
        .zip(&interactions.request_bytes)
        .enumerate()
    {
        println!(
            "{:>4} {g:>14} {i:>16} {:>9.4}%",
            turn + 1,
            *i as f64 / *g as f64 * 100.0
        );
    }
    let last = PROMPTS.len() - 1;
    let turn_ratio = interactions.request_bytes[last] as f64 / generate.request_bytes[last] as f64;
    let (g_total, i_total): (usize, usize) = (
        generate.request_bytes.iter().sum(),
        interactions.request_bytes.iter().sum(),
    );
    let total_ratio = i_total as f64 / g_total as f64;
    println!(
        "\nturn 10: {} B with interactions against {:.2} MB with generateContent: {:.4}% (goal <= 1%): {}",
        interactions.request_bytes[last],
        generate.request_bytes[last] as f64 / 1e6,
        turn_ratio * 100.0,
        verdict(turn_ratio <= 0.01)
    );
    println!(
        "all 10 turns: {:.1} KB against {:.2} MB: 1/{:.0} (goal <= 1/20): {}",
        i_total as f64 / 1e3,
        g_total as f64 / 1e6,
        1.0 / total_ratio,
        verdict(total_ratio <= 0.05)
    );
    println!(
        "stored: {} contents and {:.2} MB of blobs (generate) / {} contents and {:.2} MB (interactions); every \
         image {}x{}",
        generate.contents,
        generate.blob_bytes as f64 / 1e6,
        interactions.contents,
        interactions.blob_bytes as f64 / 1e6,
        interactions.images[0].0,
        interactions.images[0].0
    );
    println!(
        "process: {:.1} s, peak RSS {:.1} MB (generate) / {:.1} s, {:.1} MB (interactions)",
        generate.wall_s, generate.max_rss_mb, interactions.wall_s, interactions.max_rss_mb
    );
    // The runs were sound: the same turns and images stored either way.
    assert_eq!(generate.contents, interactions.contents);
    assert!(interactions.images.iter().all(|(w, _)| *w == 2048));
    let spread =
        (generate.blob_bytes - interactions.blob_bytes).abs() as f64 / generate.blob_bytes as f64;
    assert!(spread < 0.02, "{spread}");
}

#[test]
#[ignore]
fn bench_batch() {
    const N: usize = 50;
    let server = FakeGemini::start();
    server.set_batch_delay(Duration::from_millis(500));
    let sandbox = Sandbox::new(&server);
    let subjects = ["fox", "lighthouse", "teapot", "owl", "bicycle"];
    let prompts: String = (0..N)
        .map(|n| format!("a {} in style number {n}\n", subjects[n % subjects.len()]))
        .collect();
    let file = sandbox.path("prompts.txt");
    std::fs::write(&file, prompts).unwrap();
    let file = file.display().to_string();

    let submit = run_measured(sandbox.peel(&["batch", &file, "--size", SIZE]), "");
    assert_eq!(submit.code, 0, "{}", submit.stderr);
    let id = submit.lines[0].1.trim().to_string();
    let wait = run_measured(sandbox.peel(&["batch", "wait", &id]), "");
    assert_eq!(wait.code, 0, "{}", wait.stderr);
    let fetch = run_measured(sandbox.peel(&["batch", "fetch", &id]), "");
    assert_eq!(fetch.code, 0, "{}", fetch.stderr);
    assert_eq!(fetch.lines.len(), N, "a path a prompt");

    let issued = server.issued_images();
    assert_eq!(issued.len(), N);
    let polls = server
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/v1beta/batches/"))
        .count();
    let db = sandbox.open_db();
    let mut once = 0;
    for image in &issued {
        let hash = peel::store::hash_hex(&image.bytes());
        let copies: i64 = db
            .query_row("SELECT count(*) FROM blobs WHERE hash = ?1", [&hash], |r| {
                r.get(0)
            })
            .unwrap();
        once += usize::from(copies == 1);
    }
    let sessions: i64 = db
        .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
        .unwrap();
    let files_match = fetch
        .lines
        .iter()
        .filter(|(_, path)| {
            let bytes = std::fs::read(path).unwrap();
            issued.iter().any(|i| i.bytes() == bytes)
        })
        .count();
    let image_mb = issued.iter().map(|i| i.bytes().len()).sum::<usize>() as f64 / 1e6;
    let signature_mb = issued
        .iter()
        .map(|i| i.signature.as_ref().map_or(0, String::len))
        .sum::<usize>() as f64
        / 1e6;
    let fetch_rss = fetch.max_rss_kb as f64 / 1024.0;
    println!(
        "\n{N} prompts at {SIZE}: {:.1} MB of images and {:.1} MB of signatures (base64) came back inline",
        image_mb, signature_mb
    );
    println!(
        "submit {:.2} s (peak RSS {:.1} MB), wait {:.2} s, fetch {:.2} s ({} reads of the job in all)",
        submit.wall.as_secs_f64(),
        submit.max_rss_kb as f64 / 1024.0,
        wait.wall.as_secs_f64(),
        fetch.wall.as_secs_f64(),
        polls
    );
    println!(
        "sessions {sessions}, image files matching the server's {files_match}/{N}, images stored exactly once \
         {once}/{N}: {}",
        verdict(once == N && files_match == N && sessions == N as i64)
    );
    println!(
        "peak RSS while fetching: {fetch_rss:.1} MB (goal < 100 MB): {}",
        verdict(fetch_rss < 100.0)
    );
    assert_eq!(sessions, N as i64);
}
