//! peel alone through bench_sdk's thread, for profiling (in a module of its own, so that `bench_sdk` as a test
//! filter does not run it beside the benchmark, where it would take the CPU the benchmark measures).

use std::process::Command;

use crate::bench_sdk::{PROMPTS, SIZE, ms, run_measured};
use crate::harness::Sandbox;
use crate::support::fake_gemini::FakeGemini;

/// peel through the benchmark's thread under a profiler, to see where its time goes before changing anything:
///
///     PEEL_PROFILER="perf record -e cpu-clock -F 4999 -g -o /tmp/peel.perf --" \
///         cargo test --release --test integration -- --ignored --nocapture bench_profile
///
/// (`valgrind --tool=callgrind --callgrind-out-file=/tmp/peel.cg` counts instructions instead.)
#[test]
#[ignore]
fn bench_profile() {
    let profiler = std::env::var("PEEL_PROFILER").unwrap_or_default();
    let mut words = profiler.split_whitespace();
    let gzip = std::env::var("BENCH_GZIP").is_ok_and(|v| v == "1");
    let server = FakeGemini::builder().compress(gzip).start();
    let sandbox = Sandbox::new(&server);
    sandbox.run(&["sessions"], "").expect_code(0);
    let peel = sandbox.peel(&["--json", "--size", SIZE, "-s", "bench"]);
    let mut command = match words.next() {
        Some(program) => {
            let mut command = Command::new(program);
            command
                .args(words)
                .arg(peel.get_program())
                .args(peel.get_args());
            command
        }
        None => {
            let mut command = Command::new(peel.get_program());
            command.args(peel.get_args());
            command
        }
    };
    command.env_clear();
    for (name, value) in peel.get_envs() {
        if let Some(value) = value {
            command.env(name, value);
        }
    }
    if let Some(dir) = peel.get_current_dir() {
        command.current_dir(dir);
    }
    let script: String = PROMPTS.iter().map(|p| format!("{p}\n")).collect();
    let measured = run_measured(command, &script);
    assert_eq!(measured.code, 0, "{}", measured.stderr);
    let requests = server.requests();
    let server_ms: f64 = requests.iter().filter_map(|r| r.server_time).map(ms).sum();
    let mut previous = measured.started;
    let per_turn: Vec<String> = measured
        .lines
        .iter()
        .zip(&requests)
        .map(|((at, _), request)| {
            let overhead = ms(*at - previous) - ms(request.server_time.unwrap());
            previous = *at;
            format!("{overhead:.1}")
        })
        .collect();
    println!("overhead per turn, ms: {}", per_turn.join(" "));
    println!(
        "peel under {profiler:?}: {:.0} ms wall, CPU {:.0} ms (user {:.0}, sys {:.0}); server {server_ms:.0} ms for \
         {} requests; the first request's body in {:.1} ms from the spawn",
        ms(measured.wall),
        ms(measured.user + measured.sys),
        ms(measured.user),
        ms(measured.sys),
        requests.len(),
        ms(requests[0].received_at - measured.started),
    );
}
