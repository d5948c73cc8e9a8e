//! Issue 9's sweep: peel killed (SIGKILL) at random moments of a turn, again and again, and started again each time.
//! An answer that reached peel must end up recorded exactly once; the database must stay whole.
//!
//!     KILLS=100 cargo test --release --test integration -- --ignored --nocapture kill_sweep
//!
//! What "reached peel" means from outside: the server had finished sending the answer some time before the kill.
//! The sweep reports, for each answer the server finished, whether it was recorded, and for the ones that were not,
//! how long before the kill the server finished: a kill in the few milliseconds between the last byte and the
//! journal's fsync can take an answer with it (nothing durable holds it yet); any later one must not.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::harness::Sandbox;
use crate::support::fake_gemini::FakeGemini;

/// A kill this long after the server finished its answer must find the answer kept: reading a 1K answer, decoding
/// it and writing the journal takes a few milliseconds here, even in a debug build.
const SURELY_ARRIVED: Duration = Duration::from_millis(250);

/// xorshift64*: the kill moments, reproducible from the printed seed (`SEED=...`).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
#[ignore]
fn kill_sweep() {
    let kills: usize = std::env::var("KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let seed = std::env::var("SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let mut rng = Rng(seed);
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);

    // How long an undisturbed turn takes, start to exit: the kills fall anywhere in it, and a little after.
    let mut whole = Vec::new();
    for i in 0..3 {
        let started = Instant::now();
        sandbox
            .run(&["-s", &format!("w{i}"), &format!("a warm-up fox {i}")], "")
            .expect_code(0);
        whole.push(started.elapsed());
    }
    whole.sort();
    let window = whole[1];
    println!(
        "seed {seed}; {kills} kills over 0..{} ms of a turn (an undisturbed turn takes {} ms)",
        window.as_millis(),
        whole[1].as_millis()
    );

    // When each run was killed; `None` for a run that had already finished.
    let mut killed_at: Vec<Option<Instant>> = Vec::new();
    let mut exited_first = 0;
    for i in 0..kills {
        // A session each, so that no request carries the others' history.
        let name = format!("k{i}");
        let mut child = sandbox.spawn(&["-s", &name, &format!("a fox, take {i}")], "");
        let delay = Duration::from_micros(rng.below(window.as_micros() as u64));
        std::thread::sleep(delay);
        let at = Instant::now();
        if child.try_wait().unwrap().is_some() {
            exited_first += 1;
            killed_at.push(None);
        } else {
            child.kill().unwrap();
            killed_at.push(Some(at));
        }
        child.wait().unwrap();
        // The next peel starts as a person would start it again; it records what the journal holds.
        let run = sandbox.run(&["sessions"], "");
        assert_eq!(run.code, 0, "{run:?}");
        assert!(
            !run.stderr.contains("panicked"),
            "a restart panicked: {}",
            run.stderr
        );
    }

    let db = sandbox.open_db();
    let integrity: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let stored: HashSet<String> = db
        .prepare("SELECT hash FROM blobs")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let answers: i64 = db
        .query_row(
            "SELECT count(*) FROM contents WHERE role = 'model'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let journal = sandbox.db().with_extension("db.arrived");
    let names: Vec<String> = std::fs::read_dir(&journal)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    // Entries still waiting after the last restart; `.writing-` files are runs killed while writing one, cleared
    // (or finished, when whole) by a peel that finds them old.
    let left: Vec<&String> = names.iter().filter(|n| n.ends_with(".json")).collect();
    let unfinished = names.iter().filter(|n| n.starts_with(".writing-")).count();

    // Each answer the server finished, against the kill of its run. Requests and images come in the same order (the
    // server answers every request it received whole with one image); a run killed before its request was sent
    // whole has neither. The run is known by its prompt.
    let requests = server.requests();
    let images = server.issued_images();
    assert_eq!(requests.len(), images.len(), "every request was answered");
    let run_of = |request: &crate::support::fake_gemini::RecordedRequest| -> Option<usize> {
        let prompt = request.contents().last()?["parts"][0]["text"].as_str()?;
        prompt.strip_prefix("a fox, take ")?.parse().ok()
    };
    let mut recorded = 0;
    // For the runs that were killed: how long after the server finished its answer the kill came, for the answers
    // recorded and for the others (zero: killed before the server had finished).
    let (mut recorded_gaps, mut unrecorded_gaps) = (Vec::new(), Vec::new());
    let mut distinct = HashSet::new();
    for (n, (request, image)) in requests.iter().zip(&images).enumerate() {
        let hash = hex_sha256(&image.bytes());
        distinct.insert(hash.clone());
        let kept = stored.contains(&hash);
        recorded += usize::from(kept);
        let kill = match run_of(request) {
            Some(i) => killed_at[i],
            None => {
                assert!(kept, "a warm-up answer (request {n}) is missing");
                None
            }
        };
        if let Some(kill) = kill {
            let finished = request.received_at + request.server_time.unwrap_or_default();
            let gap = kill.saturating_duration_since(finished);
            if kept {
                recorded_gaps.push(gap);
            } else {
                unrecorded_gaps.push(gap);
            }
        }
    }
    let lost: Vec<Duration> = unrecorded_gaps
        .iter()
        .copied()
        .filter(|gap| *gap >= SURELY_ARRIVED)
        .collect();
    unrecorded_gaps.sort();
    recorded_gaps.sort();
    let ms = |gaps: &[Duration]| -> Vec<String> {
        gaps.iter()
            .map(|g| format!("{:.1}", g.as_secs_f64() * 1000.0))
            .collect()
    };
    println!(
        "{kills} kills ({exited_first} runs had already finished); the server answered {} requests; {recorded} \
         answers recorded ({answers} model contents, {} distinct images); journal entries left: {}, unfinished \
         writes: {unfinished}\n\
         killed runs whose answer was recorded, kill after the server's answer (ms): {:?}\n\
         killed runs whose answer was not recorded (ms; 0: killed before the server had finished): {:?}",
        requests.len(),
        distinct.len(),
        left.len(),
        ms(&recorded_gaps),
        ms(&unrecorded_gaps),
    );
    assert!(left.is_empty(), "journal entries left behind: {left:?}");
    assert_eq!(
        answers as usize, recorded,
        "an answer was recorded twice, or a recorded one has no image"
    );
    assert!(
        lost.is_empty(),
        "answers lost though the server had finished them {SURELY_ARRIVED:?} or more before the kill: {lost:?}"
    );
}
