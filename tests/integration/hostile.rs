//! Issue 9 end to end: a hostile server, recording faults (a lock held past the busy timeout, a session deleted
//! mid-turn, a full disk), special files, and peak memory under endless answers, /dev/zero and a 1 GB import.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{PEEL, Run, Sandbox};
use crate::support::fake_gemini::{FakeGemini, Reply, SignatureSize};
use crate::support::hostile::{Attack, FORGED_PLACEHOLDER, Hostile};

const KEY: &str = "hostile-test-key-AIzaSyQ7";

/// Characters a terminal would obey: ESC, BEL, the C1 CSI, and the bidi controls.
fn escapes(text: &str) -> usize {
    text.chars()
        .filter(|c| {
            matches!(
                c,
                '\u{1b}' | '\u{7}' | '\u{9b}' | '\u{61c}' | '\u{200e}' | '\u{200f}'
            ) || ('\u{202a}'..='\u{202e}').contains(c)
                || ('\u{2066}'..='\u{2069}').contains(c)
        })
        .count()
}

/// A config file with short limits, so the endless and stalled attacks end quickly.
fn config(sandbox: &Sandbox, extra: &str) -> PathBuf {
    let path = sandbox.path("config.toml");
    std::fs::write(
        &path,
        format!("retries = 0\ntimeout = 60\nidle_timeout = 2\n{extra}"),
    )
    .unwrap();
    path
}

fn hostile_run(sandbox: &Sandbox, server: &Hostile, config: &Path, args: &[&str]) -> Run {
    hostile_script(sandbox, server, config, args, "")
}

fn hostile_script(
    sandbox: &Sandbox,
    server: &Hostile,
    config: &Path,
    args: &[&str],
    stdin: &str,
) -> Run {
    let mut command = sandbox.peel(args);
    command
        .env("PEEL_BASE_URL", server.url())
        .env("GEMINI_API_KEY", KEY)
        .env("PEEL_CONFIG", config);
    sandbox.run_command(command, stdin)
}

#[test]
fn server_text_reaches_no_terminal_raw_and_the_key_is_nowhere() {
    let attacks = [
        Attack::GoogleError(400),
        Attack::GoogleError(429),
        Attack::GoogleError(503),
        Attack::GatewayError(402),
        Attack::ErrorIn200,
        Attack::SseErrorEvent,
        Attack::PoisonedAnswer,
        Attack::Endless,
        Attack::EndlessStream,
        Attack::Stall,
        Attack::BadEncoding,
        Attack::WrongShape,
    ];
    let server = Hostile::start(Attack::Stall);
    let mut total_escapes = 0;
    for attack in attacks {
        server.set(attack.clone());
        let sandbox = Sandbox::bare();
        let config = config(&sandbox, "max_response_mb = 4\n");
        let mut runs = Vec::new();
        for mode in [
            &["-s", "fox", "a cat"][..],
            &["-s", "fox", "--stream", "-v", "a cat"][..],
        ] {
            let run = hostile_run(&sandbox, &server, &config, mode);
            if attack != Attack::PoisonedAnswer {
                assert_eq!(run.code, 1, "{attack:?} {mode:?}: {run:?}");
            }
            let found = escapes(&run.stdout) + escapes(&run.stderr);
            total_escapes += found;
            assert_eq!(found, 0, "{attack:?} {mode:?}: {:?}", run.stderr);
            runs.push(run);
        }
        let history = hostile_run(&sandbox, &server, &config, &["-s", "fox"]);
        let listed = hostile_script(
            &sandbox,
            &server,
            &config,
            &["-s", "fox"],
            "/history\n/show\n/sessions\n/tree\n/cost\n/export ex\n",
        );
        total_escapes += escapes(&listed.stdout) + escapes(&listed.stderr);
        assert_eq!(escapes(&listed.stderr), 0, "{attack:?}: {}", listed.stderr);
        runs.push(history);
        runs.push(listed);
        let refs: Vec<&Run> = runs.iter().collect();
        sandbox.assert_key_nowhere(KEY, &refs);
        if attack == Attack::PoisonedAnswer {
            assert_eq!(
                sandbox.stored_contents(),
                4,
                "both poisoned answers were kept: {:?}",
                runs[0]
            );
        }
    }
    println!("hostile: {total_escapes} bytes of server escape sequences reached stdout or stderr");
}

/// The text of a hostile answer equal to the old in-band placeholder is sent back as text next turn, never as
/// another session's image.
#[test]
fn a_forged_placeholder_stays_text() {
    let server = Hostile::start(Attack::PoisonedAnswer);
    let sandbox = Sandbox::bare();
    let config = config(&sandbox, "");
    hostile_run(&sandbox, &server, &config, &["-s", "fox", "a cat"]).expect_code(0);
    let fake = FakeGemini::builder().check_signatures(false).start();
    let mut command = sandbox.peel(&["-r", "fox", "again"]);
    command
        .env("PEEL_BASE_URL", fake.url())
        .env("GEMINI_API_KEY", fake.api_key());
    sandbox.run_command(command, "").expect_code(0);
    let sent = fake.requests().last().unwrap().contents().to_vec();
    let model = &sent[1]["parts"];
    assert_eq!(model[2]["text"], FORGED_PLACEHOLDER);
    assert_eq!(model[3]["thoughtSignature"], FORGED_PLACEHOLDER);
}

/// Peak RSS of a peel run, by /usr/bin/time (kilobytes); `None` where it is not installed.
fn measured(sandbox: &Sandbox, command: Command, stdin: &str) -> Option<(Run, u64)> {
    if !Path::new("/usr/bin/time").exists() {
        return None;
    }
    let out = sandbox.path("rss.txt");
    let mut timed = Command::new("/usr/bin/time");
    timed
        .args(["-f", "%M", "-o"])
        .arg(&out)
        .arg(PEEL)
        .args(command.get_args());
    timed.env_clear();
    for (name, value) in command.get_envs() {
        if let Some(value) = value {
            timed.env(name, value);
        }
    }
    timed.current_dir(sandbox.dir.path());
    let run = sandbox.run_command(timed, stdin);
    let kb = std::fs::read_to_string(&out)
        .ok()?
        .trim()
        .lines()
        .last()?
        .parse()
        .ok()?;
    Some((run, kb))
}

#[test]
fn peak_memory_stays_under_100_mb_on_hostile_input() {
    let mut figures = Vec::new();
    // An answer that never ends, with the default limits (max_response_mb 64), through either transport.
    for (attack, transport) in [Attack::Endless, Attack::EndlessStream]
        .into_iter()
        .flat_map(|attack| ["generate", "interactions"].map(|t| (attack.clone(), t)))
    {
        let server = Hostile::start(attack.clone());
        let sandbox = Sandbox::bare();
        let config = sandbox.path("config.toml");
        std::fs::write(&config, "retries = 0\n").unwrap();
        let mut command = sandbox.peel(&["--stream", "-q", "--transport", transport, "a cat"]);
        command
            .env("PEEL_BASE_URL", server.url())
            .env("GEMINI_API_KEY", KEY)
            .env("PEEL_CONFIG", &config);
        let Some((run, kb)) = measured(&sandbox, command, "") else {
            eprintln!("skipped: no /usr/bin/time");
            return;
        };
        assert!(
            run.stderr.contains("max_response_mb"),
            "{attack:?} {transport}: {}",
            &run.stderr[run.stderr.len().saturating_sub(500)..]
        );
        figures.push((format!("{attack:?} ({transport})"), kb));
    }
    // An answer that stops arriving is given up after idle_timeout, through either transport.
    let server = Hostile::start(Attack::Stall);
    for transport in ["generate", "interactions"] {
        let sandbox = Sandbox::bare();
        let config = config(&sandbox, "");
        let started = Instant::now();
        let run = hostile_run(
            &sandbox,
            &server,
            &config,
            &["-s", "fox", "--transport", transport, "a cat"],
        );
        assert_eq!(run.code, 1, "{transport}: {run:?}");
        assert!(
            run.stderr.contains("idle_timeout"),
            "{transport}: {}",
            run.stderr
        );
        assert!(started.elapsed() < Duration::from_secs(30), "{transport}");
    }
    // /dev/zero and a FIFO attached.
    let sandbox = Sandbox::bare();
    let fifo = sandbox.path("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for special in [Path::new("/dev/zero"), fifo.as_path()] {
        let started = Instant::now();
        let command = sandbox.peel(&["--offline", "-i", special.to_str().unwrap(), "a cat"]);
        let (run, kb) = measured(&sandbox, command, "").unwrap();
        assert_eq!(run.code, 1, "{run:?}");
        assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);
        assert!(started.elapsed() < Duration::from_secs(10));
        figures.push((format!("attach {}", special.display()), kb));
    }
    // A 1 GB thread.json (sparse: no disk is used).
    let big = sandbox.path("big.json");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let command = sandbox.peel(&["import", big.to_str().unwrap()]);
    let (run, kb) = measured(&sandbox, command, "").unwrap();
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("import limit"), "{}", run.stderr);
    figures.push(("import of a 1 GB file".into(), kb));
    for (what, kb) in &figures {
        println!("peak RSS, {what}: {:.1} MB", *kb as f64 / 1024.0);
        assert!(*kb < 100 * 1024, "{what}: {kb} KB");
    }
}

/// Waits for peel (at most two minutes), collecting its output.
fn finish(child: std::process::Child) -> Run {
    let output = child.wait_with_output().unwrap();
    Run::from(output)
}

#[test]
fn an_answer_that_cannot_be_recorded_is_kept_and_recorded_by_the_next_peel() {
    let server = FakeGemini::builder()
        .signature_size(SignatureSize::Chars(2000))
        .start();
    let sandbox = Sandbox::new(&server);
    // Another program holds the write lock while the answer arrives, past the 10 s busy timeout.
    server.push_reply(Reply::delayed(Duration::from_millis(500), Reply::Image));
    let child = sandbox.spawn(&["-s", "fox", "a red fox"], "");
    server.wait_for_requests(1, Duration::from_secs(30));
    let lock = rusqlite::Connection::open(sandbox.db()).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let run = finish(child);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("could not be saved")
            && run.stderr.contains("locked")
            && run.stderr.contains(".arrived"),
        "{}",
        run.stderr
    );
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    assert_eq!(sandbox.stored_contents(), 0);
    let run = sandbox.run(&["sessions"], "").expect_code(0);
    assert!(
        run.stderr
            .contains("recorded an answer kept in the journal"),
        "{}",
        run.stderr
    );
    assert_eq!(
        sandbox.stored_contents(),
        2,
        "the paid answer is in the thread"
    );
    assert_eq!(server.request_count(), 1, "and it was paid for once");

    // Another peel deletes the session mid-turn: the turn goes to a new session at once.
    server.push_reply(Reply::delayed(Duration::from_millis(1500), Reply::Image));
    let child = sandbox.spawn(&["-s", "fox", "make it night"], "");
    server.wait_for_requests(2, Duration::from_secs(30));
    sandbox
        .run(&["-s", "other"], "/delete fox\n")
        .expect_code(0);
    let run = finish(child);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains("was deleted by another peel"),
        "{}",
        run.stderr
    );
    let run = sandbox.run(&["sessions"], "").expect_code(0);
    assert!(run.stdout.contains("fox"), "{run:?}");
    assert_eq!(sandbox.stored_contents(), 2);
    sandbox.assert_key_nowhere(server.api_key(), &[&run]);
}

/// A small tmpfs mounted for a test (needs root); unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(path: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(path).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallDisk(path.to_path_buf()))
    }

    fn free(&self) -> u64 {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(&self.0)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_keeps_the_answer_in_the_journal() {
    let server = FakeGemini::builder()
        .signature_size(SignatureSize::Chars(2000))
        .start();
    let sandbox = Sandbox::new(&server);
    let Some(disk) = SmallDisk::mount(&sandbox.path("disk"), "16m") else {
        eprintln!("skipped: no tmpfs can be mounted here (needs root)");
        return;
    };
    let db = disk.0.join("peel.db");
    let run_on_disk = |args: &[&str]| {
        let mut command = sandbox.peel(args);
        command.env("PEEL_DB", &db);
        sandbox.run_command(command, "")
    };
    run_on_disk(&["-s", "fox", "a red fox"]).expect_code(0);
    let answer = server.sent_bodies().last().unwrap().len() as u64;
    // Room for the journal entry (about the answer's size), not for the entry and the database's copy too.
    let filler = disk.0.join("filler");
    let keep = answer + answer / 3;
    std::fs::write(&filler, vec![0u8; (disk.free() - keep) as usize]).unwrap();
    let run = run_on_disk(&["-s", "fox", "make it night"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("could not be saved") && run.stderr.contains(".arrived"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("full"), "{}", run.stderr);
    std::fs::remove_file(&filler).unwrap();
    let run = run_on_disk(&["sessions"]).expect_code(0);
    assert!(
        run.stderr
            .contains("recorded an answer kept in the journal"),
        "{}",
        run.stderr
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let contents: i64 = conn
        .query_row("SELECT count(*) FROM contents", [], |r| r.get(0))
        .unwrap();
    assert_eq!(contents, 4);
    drop(conn);
    drop(disk);
}

/// Issue 9: a new session reusing a deleted session's name replaced `out/fox/1.png`; `peel export` replaced a file
/// the person had in the folder, and followed a planted link out of it.
#[test]
fn files_peel_did_not_write_are_left_alone() {
    let sandbox = Sandbox::bare();
    sandbox
        .run(&["--offline", "-s", "fox", "a red fox"], "")
        .expect_code(0);
    let first = sandbox.out().join("fox/1.jpg");
    let before = std::fs::read(&first).unwrap();
    sandbox
        .run(&["--offline", "-s", "other"], "/delete fox\n")
        .expect_code(0);
    let run = sandbox
        .run(&["--offline", "-s", "fox", "a blue fox"], "")
        .expect_code(0);
    assert_eq!(
        std::fs::read(&first).unwrap(),
        before,
        "the old image is untouched"
    );
    assert!(run.stderr.contains("was already there"), "{}", run.stderr);
    assert_eq!(
        run.stdout.trim(),
        sandbox.out().join("fox/1~2.jpg").display().to_string()
    );

    let folder = sandbox.path("ex");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("transcript.md"), "mine").unwrap();
    let outside = sandbox.path("outside.txt");
    std::fs::write(&outside, "precious").unwrap();
    std::os::unix::fs::symlink(&outside, folder.join("thread.json")).unwrap();
    let run = sandbox
        .run(&["export", "fox", folder.to_str().unwrap()], "")
        .expect_code(1);
    assert!(
        run.stderr.contains("transcript.md") && run.stderr.contains("thread.json"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(folder.join("transcript.md")).unwrap(),
        "mine"
    );
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious");
    assert!(!folder.join("1.jpg").exists(), "nothing was written");
    // Into a new folder it works.
    sandbox
        .run(
            &["export", "fox", sandbox.path("ex2").to_str().unwrap()],
            "",
        )
        .expect_code(0);
}

#[test]
fn database_paths_and_variables_are_named_right() {
    let sandbox = Sandbox::bare();
    let mut command = sandbox.peel(&["sessions"]);
    command.env("PEEL_DB", "");
    let run = sandbox.run_command(command, "").expect_code(2);
    assert!(
        run.stderr.contains("PEEL_DB is set but empty") && !run.stderr.contains("--db"),
        "{}",
        run.stderr
    );
    let typo = sandbox.path("no-such-folder/peel.db");
    let mut command = sandbox.peel(&["sessions"]);
    command.env("PEEL_DB", &typo);
    let run = sandbox.run_command(command, "").expect_code(2);
    assert!(
        run.stderr.contains("does not exist") && run.stderr.contains("PEEL_DB"),
        "{}",
        run.stderr
    );
    assert!(
        !sandbox.path("no-such-folder").exists(),
        "no new folder, no new empty database"
    );
}
