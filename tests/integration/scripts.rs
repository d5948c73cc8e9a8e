//! peel for scripts and from the command line: where script mode stops, what `--json` says of a refusal, one-shot
//! commands, what works without a key, and a thread's images staying in one folder wherever peel is resumed.

use crate::harness::{Sandbox, wait_with_timeout};
use crate::support::fake_gemini::{FakeGemini, Reply};

#[test]
fn a_script_stops_at_the_first_failed_line_and_names_it() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let run = sandbox
        .run(&["-s", "fox"], "a red fox\n/aspect 7:3x\nmake it night\n")
        .expect_code(1);
    assert!(
        run.stderr.contains("error: line 2: aspect ratio"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("stopped at line 2"), "{}", run.stderr);
    assert_eq!(
        server.request_count(),
        1,
        "the prompt after the failed line is never sent"
    );

    // --keep-going runs on, and still exits 1.
    let run = sandbox
        .run(
            &["-r", "fox", "--keep-going"],
            "/aspect 7:3x\nmake it night\n",
        )
        .expect_code(1);
    assert!(run.stderr.contains("line 1"), "{}", run.stderr);
    assert_eq!(server.request_count(), 2);

    // A line that is not UTF-8 is a failed line too, named by its number.
    let command = sandbox.peel(&["-r", "fox"]);
    let run = sandbox.run_command_bytes(command, b"/settings\nmake it \xff\xfe dark\nmore\n");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("line 2: the line is not UTF-8 text"),
        "{}",
        run.stderr
    );
    assert_eq!(server.request_count(), 2);
}

#[test]
fn json_says_why_a_turn_was_refused() {
    let server = FakeGemini::start();
    server.push_reply(Reply::Fixture("response-no-image.json"));
    let sandbox = Sandbox::new(&server);
    let run = sandbox
        .run(&["-s", "j", "--json", "a red fox"], "")
        .expect_code(1);
    let object: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect(&run.stdout);
    assert_eq!(object["finish_reason"], "NO_IMAGE");
    assert!(object["turn"].is_null() && object["images"] == serde_json::json!([]));
    assert!(
        object["message"]
            .as_str()
            .unwrap()
            .contains("returned no image"),
        "{object}"
    );
}

#[test]
fn one_shot_commands_run_as_commands_and_an_empty_prompt_is_refused() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    sandbox.run(&["-s", "x", "a red fox"], "").expect_code(0);
    let run = sandbox.run(&["-s", "x", "/history"], "").expect_code(0);
    assert!(run.stderr.contains("a red fox"), "{}", run.stderr);
    let run = sandbox.run(&["-s", "x", "/frobnicate"], "").expect_code(1);
    assert!(run.stderr.contains("unknown command"), "{}", run.stderr);
    let run = sandbox.run(&[""], "").expect_code(2);
    assert!(run.stderr.contains("an empty prompt"), "{}", run.stderr);
    assert_eq!(server.request_count(), 1, "no command was sent as a prompt");
}

#[test]
fn a_stored_thread_is_browsed_shown_exported_and_branched_without_a_key() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    sandbox.run(&["-s", "fox", "a red fox"], "").expect_code(0);
    let mut command = sandbox.peel(&["-r", "fox"]);
    command.env_remove("GEMINI_API_KEY");
    let run = sandbox.run_command(command, "/history\n/show\n/branch dusk\n/export\n/tree\n");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains("branched dusk from fox"),
        "{}",
        run.stderr
    );
    assert!(sandbox.path("dusk-export/thread.json").exists());
    // Sending is where the key is needed: the line says so, and nothing else was lost.
    let mut command = sandbox.peel(&["-r", "dusk"]);
    command.env_remove("GEMINI_API_KEY");
    let run = sandbox.run_command(command, "make it night\n");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("GEMINI_API_KEY"), "{}", run.stderr);
    // One-shot prompts without a key are a usage error, before anything happens.
    let mut command = sandbox.peel(&["-s", "fox", "make it night"]);
    command.env_remove("GEMINI_API_KEY");
    assert_eq!(sandbox.run_command(command, "").code, 2);
    assert_eq!(server.request_count(), 1);
}

#[test]
fn export_defaults_its_folder_import_takes_it_and_sessions_speak_json() {
    let sandbox = Sandbox::bare();
    sandbox
        .run(&["--offline", "-s", "fox", "a red fox"], "")
        .expect_code(0);
    let run = sandbox.run(&["export", "fox"], "").expect_code(0);
    assert!(run.stdout.contains("fox-export/thread.json"), "{run:?}");
    let run = sandbox
        .run(&["import", "fox-export", "--name", "fox2"], "")
        .expect_code(0);
    assert_eq!(run.stdout.trim(), "fox2");
    assert!(
        run.stderr.contains("peel -r fox2 resumes it"),
        "{}",
        run.stderr
    );
    let run = sandbox.run(&["sessions", "--json"], "").expect_code(0);
    let names: Vec<String> = run
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"fox".to_string()) && names.contains(&"fox2".to_string()));
}

#[test]
fn a_thread_resumed_from_another_folder_writes_into_its_own() {
    let sandbox = Sandbox::bare();
    let (first, second) = (sandbox.path("first"), sandbox.path("second"));
    std::fs::create_dir_all(&first).unwrap();
    std::fs::create_dir_all(&second).unwrap();
    let mut command = sandbox.peel(&["--offline", "-s", "fox", "a red fox"]);
    command.env_remove("PEEL_OUT").current_dir(&first);
    assert_eq!(sandbox.run_command(command, "").code, 0);
    let mut command = sandbox.peel(&["--offline", "-r", "fox"]);
    command.env_remove("PEEL_OUT").current_dir(&second);
    let run = sandbox.run_command(command, "make it night\n/history\n");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(first.join("peel-out/fox/1.jpg").exists());
    assert!(first.join("peel-out/fox/2.jpg").exists(), "{run:?}");
    assert!(!second.join("peel-out").exists());
    // /history shows paths that resolve from where the person stands.
    let shown = first.join("peel-out/fox/1.jpg").display().to_string();
    assert!(run.stderr.contains(&shown), "{}", run.stderr);
}

#[test]
fn a_session_deleted_by_another_peel_is_said_so_not_saved_into() {
    use std::io::{BufRead, BufReader, Write};
    let sandbox = Sandbox::bare();
    sandbox
        .run(&["--offline", "-s", "fox", "a red fox"], "")
        .expect_code(0);
    let mut command = sandbox.peel(&["--offline", "-r", "fox", "--keep-going"]);
    command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    writeln!(stdin, "/settings").unwrap();
    // Wait until the first line ran: the session is open.
    let mut line = String::new();
    while !line.starts_with("session") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "peel ended before it opened the session (exit {:?})",
            child.try_wait()
        );
    }
    sandbox
        .run(&["--offline", "-s", "other"], "/delete fox --yes\n")
        .expect_code(0);
    writeln!(stdin, "/save renamed\n/branch b").unwrap();
    drop(stdin);
    // The rest of stderr is read on the side, so the wait below is the harness's, bounded: past it peel is
    // killed, which ends the reading too.
    let rest = std::thread::spawn(move || {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
        rest
    });
    let status = wait_with_timeout(&mut child).status;
    let rest = rest.join().unwrap();
    assert_eq!(status.code(), Some(1), "{rest}");
    assert!(
        rest.contains("line 2: session fox was deleted by another peel meanwhile"),
        "{rest}"
    );
    assert!(
        !rest.contains("FOREIGN KEY") && !rest.contains("saved as renamed"),
        "{rest}"
    );
}
