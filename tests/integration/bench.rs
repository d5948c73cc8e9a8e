//! Measurements of the store, run by hand (they print figures; they assert only what must hold):
//!
//!     cargo test --release --test integration -- --ignored --nocapture bench_
//!
//! Threads are built straight through the library's store with real-sized values (a 2K JPEG's worth of bytes and a
//! signature of about the same size per turn), then the real binary is timed against them.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use peel::gemini::signatures::MadeBy;
use peel::gemini::{Content, Part};
use peel::settings::Settings;
use peel::store::{NewSession, NewTurn, Store, TurnMeta};

use crate::bench_sdk::run_measured;
use crate::harness::Sandbox;
use crate::support::fake_gemini::{FakeGemini, Reply};

/// Bytes that sniff as a JPEG, distinct per seed: a stand-in for a real image of that size.
pub(crate) fn fake_jpeg(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for b in bytes.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    bytes[..4].copy_from_slice(b"\xff\xd8\xff\xe0");
    bytes
}

/// A session of `turns` turns, each answer a `image_bytes` image with a signature of the same size.
pub(crate) fn build_thread(
    store: &mut Store,
    name: &str,
    turns: u64,
    image_bytes: usize,
    seed: u64,
) {
    let session = store
        .create_session(name, NewSession::empty(&Settings::default()))
        .unwrap();
    let mut head = None;
    for t in 0..turns {
        let user = Content::user(vec![Part::text(format!("edit number {t}"))]);
        let mut image = Part::image(
            "image/jpeg",
            STANDARD.encode(fake_jpeg(seed * 1_000_003 + t, image_bytes)),
        );
        image.thought_signature =
            Some(STANDARD.encode(fake_jpeg(seed * 7_000_001 + t, image_bytes)));
        let model = Content {
            role: Some("model".into()),
            parts: vec![image],
            extra: Default::default(),
        };
        // Made by the API for the session's model, so its signatures go back as they are (a turn of unknown
        // origin would carry the short dummy instead).
        let meta = TurnMeta {
            settings: Some(Settings::default()),
            made_by: Some(MadeBy::Api { provider: None }),
            ..TurnMeta::default()
        };
        let turn = NewTurn {
            user: &user,
            model: &model,
            meta: &meta,
        };
        head = Some(
            store
                .append_turn(session.id, head, head, turn)
                .unwrap()
                .model_id,
        );
    }
}

fn db_bytes(sandbox: &Sandbox) -> u64 {
    let conn = sandbox.open_db();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .ok();
    std::fs::metadata(sandbox.db()).unwrap().len()
        + std::fs::metadata(sandbox.db().with_extension("db-wal")).map_or(0, |m| m.len())
}

/// The median wall time of `runs` runs of peel with `args` and `stdin`.
fn median_run(sandbox: &Sandbox, args: &[&str], stdin: &str, runs: usize) -> (Duration, String) {
    let mut times = Vec::new();
    let mut stdout = String::new();
    for _ in 0..runs {
        let started = Instant::now();
        let run = sandbox.run(args, stdin).expect_code(0);
        times.push(started.elapsed());
        stdout = run.stdout;
    }
    times.sort();
    (times[times.len() / 2], stdout)
}

#[test]
#[ignore]
fn bench_threads() {
    let sandbox = Sandbox::bare();
    let image_bytes = 1_500_000; // a 2K JPEG from the 3.x models is 1 to 2 MB; its signature about the same
    let mut store = Store::open(&sandbox.db()).unwrap();
    build_thread(&mut store, "fifty", 50, image_bytes, 1);
    build_thread(&mut store, "long", 200, image_bytes, 2);
    drop(store);

    let before = db_bytes(&sandbox);
    sandbox
        .run(&["--offline", "-r", "fifty"], "/branch fifty-b\n")
        .expect_code(0);
    let added = db_bytes(&sandbox) as i64 - before as i64;
    println!(
        "branch of a 50-turn thread: database grew by {added} bytes (file {before} bytes before)"
    );
    assert!(added < 64 * 1024, "a branch must not copy history");

    let (resume, stdout) = median_run(&sandbox, &["--offline", "-r", "long"], "/show\n", 11);
    assert!(stdout.trim().ends_with("long/200.jpg"), "{stdout}");
    println!(
        "resume a 200-turn thread and print its last image path: {:.1} ms (median of 11)",
        ms(resume)
    );

    let mut store = Store::open(&sandbox.db()).unwrap();
    for n in 0..1000 {
        build_thread(&mut store, &format!("s{n:04}"), 1, 2_000, 10 + n);
    }
    drop(store);
    let (list, stdout) = median_run(&sandbox, &["sessions"], "", 11);
    assert!(stdout.lines().count() > 1000);
    println!(
        "list 1,003 sessions (`peel sessions`): {:.1} ms (median of 11)",
        ms(list)
    );
}

/// A turn with a 200 MB history must not hold more than 100 MB beyond what a turn with no history holds: the
/// history streams from the store into the request, it is never held in memory.
///
///     cargo test --release --test integration -- --ignored --nocapture bench_memory
#[test]
#[ignore]
fn bench_memory() {
    // Signatures are not checked: the fake server did not issue this synthetic history.
    let server = FakeGemini::builder().check_signatures(false).start();
    let sandbox = Sandbox::new(&server);
    let mut store = Store::open(&sandbox.db()).unwrap();
    // 67 turns of a 1.5 MB image and a 1.5 MB signature: 201 MB of history, 268 MB of base64 in the request.
    build_thread(&mut store, "long", 67, 1_500_000, 3);
    drop(store);

    // The Gemini API's 100 MB limit would refuse this request: raise it, to measure the sending of it.
    let config = sandbox.path("config.toml");
    std::fs::write(&config, "max_request_mb = 400\n").unwrap();
    let peak = |args: &[&str]| {
        let mut command = sandbox.peel(args);
        command.arg("--config").arg(&config);
        command.args(["--json", "one more edit"]);
        let run = run_measured(command, "");
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.max_rss_kb as f64 / 1024.0
    };
    let empty = peak(&["-s", "empty"]);
    let long = peak(&["-r", "long"]);
    let sent = server.requests().last().unwrap().body_len as f64 / 1e6;
    println!(
        "peak RSS of one turn: {empty:.1} MB with no history, {long:.1} MB with 201 MB of history ({sent:.0} MB sent)"
    );
    assert!(
        long - empty <= 100.0,
        "a 200 MB history held {:.1} MB extra at its peak",
        long - empty
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Variants (issue 10): four 2K takes at once against one, with the server taking as long as a model would.
/// `cargo test --release --test integration -- --ignored --nocapture bench_variants`
#[test]
#[ignore]
fn bench_variants() {
    let model_time = Duration::from_secs(2);
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let db_bytes = || {
        let db = sandbox.db();
        let wal = db.with_extension("db-wal");
        std::fs::metadata(&db).map_or(0, |m| m.len())
            + std::fs::metadata(&wal).map_or(0, |m| m.len())
    };
    let unique_blob_bytes = || -> i64 {
        sandbox
            .open_db()
            .query_row(
                "SELECT coalesce(sum(length(bytes)), 0) FROM blobs",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    let run = |args: &[&str]| {
        let mut command = sandbox.peel(args);
        command.args(["--size", "2K"]);
        let run = run_measured(command, "");
        assert_eq!(run.code, 0, "{}", run.stderr);
        run
    };
    // A first turn, so both measured turns carry the same history.
    run(&["-s", "fox", "a red fox"]);
    let mut one_walls = Vec::new();
    let mut one_rss = Vec::new();
    let mut four_walls = Vec::new();
    let mut four_rss = Vec::new();
    let mut growth = Vec::new();
    for round in 0..3 {
        server.push_reply(Reply::delayed(model_time, Reply::Image));
        let single = run(&["-r", "fox", &format!("one take, round {round}")]);
        one_walls.push(ms(single.wall));
        one_rss.push(single.max_rss_kb as f64 / 1024.0);
        sandbox.run(&["-r", "fox"], "/undo\n").expect_code(0);
        for _ in 0..4 {
            server.push_reply(Reply::delayed(model_time, Reply::Image));
        }
        let (db_before, blobs_before) = (db_bytes(), unique_blob_bytes());
        let four = run(&[
            "-r",
            "fox",
            "-n",
            "4",
            &format!("four takes, round {round}"),
        ]);
        four_walls.push(ms(four.wall));
        four_rss.push(four.max_rss_kb as f64 / 1024.0);
        growth.push((
            db_bytes().saturating_sub(db_before),
            unique_blob_bytes() - blobs_before,
        ));
        sandbox.run(&["-r", "fox"], "/undo\n").expect_code(0);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (one, four) = (median(&mut one_walls), median(&mut four_walls));
    let (rss_one, rss_four) = (median(&mut one_rss), median(&mut four_rss));
    println!(
        "one 2K take:    {one:.0} ms wall, peak RSS {rss_one:.1} MB (median of 3; the server takes {} ms)",
        model_time.as_millis()
    );
    println!(
        "four 2K takes:  {four:.0} ms wall, peak RSS {rss_four:.1} MB (median of 3), contact sheet included"
    );
    println!(
        "wall four / one: {:.2} (goal <= 1.3); RSS four / one: {:.2} (goal <= 2)",
        four / one,
        rss_four / rss_one
    );
    for (db, blobs) in &growth {
        println!(
            "database grew {db} bytes for {blobs} bytes of new unique blobs (+{:.2}%)",
            (*db as f64 / *blobs as f64 - 1.0) * 100.0
        );
        assert!(
            *db as f64 <= *blobs as f64 * 1.05,
            "the database grew by more than the takes' bytes"
        );
    }
    assert!(
        four / one <= 1.3,
        "four takes took {four:.0} ms against {one:.0} ms for one"
    );
    assert!(
        rss_four / rss_one <= 2.0,
        "{rss_four:.1} MB against {rss_one:.1} MB"
    );
}
