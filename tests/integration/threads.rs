//! Edit threads as a tree, end to end: branches, undo and retry, export and import, two processes at once.

use std::time::Duration;

use rexpect::session::spawn_command;
use serde_json::Value;

use crate::harness::Sandbox;
use crate::support::fake_gemini::{FakeGemini, Reply};

fn count(sandbox: &Sandbox, table: &str) -> i64 {
    sandbox
        .open_db()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn branch_undo_redo_and_retry_never_lose_a_turn() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    sandbox
        .run(&["-s", "fox"], "a red fox\nmake it night\nadd snow\n")
        .expect_code(0);
    let (contents, blobs) = (count(&sandbox, "contents"), count(&sandbox, "blobs"));

    // A branch is one row: no content, no blob is copied.
    let run = sandbox
        .run(&["-r", "fox"], "/branch dusk @2\n/sessions\n")
        .expect_code(0);
    assert!(
        run.stderr.contains("branched dusk from fox at turn 2"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("fox@2"),
        "/sessions shows where the branch came from: {}",
        run.stderr
    );
    assert_eq!(
        (count(&sandbox, "contents"), count(&sandbox, "blobs")),
        (contents, blobs)
    );

    // The branch goes its own way; the original is untouched.
    sandbox
        .run(&["-r", "dusk"], "add fireflies\n")
        .expect_code(0);
    let last = server.requests().last().unwrap().contents().to_vec();
    assert_eq!(
        last.len(),
        5,
        "the branch sends turns 1 and 2 and its own prompt"
    );
    assert_eq!(last[4]["parts"][0]["text"], "add fireflies");
    let run = sandbox.run(&["-r", "fox"], "/history\n").expect_code(0);
    assert!(
        run.stderr.contains("add snow") && !run.stderr.contains("add fireflies"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("dusk branches off here"),
        "{}",
        run.stderr
    );

    // Undo steps back (the next turn continues from turn 2), redo steps forward again.
    let run = sandbox
        .run(&["-r", "fox"], "/undo\n/redo\n/undo\nmake it dawn\n/redo\n")
        .expect_code(1);
    assert!(
        run.stderr.contains("nothing to redo"),
        "a new turn clears the redo stack: {}",
        run.stderr
    );
    assert_eq!(server.requests().last().unwrap().contents().len(), 5);
    // Takes are lettered across sessions in the order made: fox's snow is 3a, dusk's fireflies 3b, this 3c; the
    // first take's file followed its new name when dusk's turn made it one of several.
    assert!(
        run.stdout.trim().ends_with("out/fox/3c.jpg"),
        "another take of turn 3: {}",
        run.stdout
    );
    assert!(sandbox.out().join("fox/3a.jpg").exists());
    assert!(!sandbox.out().join("fox/3.jpg").exists());

    // Retry asks for another take of the last turn; the earlier take stays reachable.
    let before = server.requests().len();
    let run = sandbox
        .run(&["-r", "fox"], "/retry\n/history\n/tree\n")
        .expect_code(0);
    assert!(
        run.stdout.trim().ends_with("out/fox/3d.jpg"),
        "{}",
        run.stdout
    );
    let retried = &server.requests()[before];
    assert_eq!(retried.contents().len(), 5);
    assert_eq!(retried.contents()[4]["parts"][0]["text"], "make it dawn");
    assert!(
        run.stderr.contains("other takes: @3a @3b @3c"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("3c make it dawn"), "{}", run.stderr);
    assert!(run.stderr.contains("3a add snow"), "{}", run.stderr);
    assert!(run.stderr.contains("← dusk"), "{}", run.stderr);

    // Any take can become a session of its own.
    sandbox
        .run(&["-r", "fox"], "/branch snowy @3a\n")
        .expect_code(0);
    sandbox.run(&["-r", "snowy"], "more snow\n").expect_code(0);
    let last = server.requests().last().unwrap().contents().to_vec();
    assert_eq!(last[4]["parts"][0]["text"], "add snow");
}

#[test]
fn deleting_a_session_keeps_what_others_use() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    sandbox
        .run(&["-s", "a"], "one\ntwo\n/branch b @1\nthree\n")
        .expect_code(0);
    assert_eq!(count(&sandbox, "contents"), 6);
    let run = sandbox.run(&["-s", "a"], "/delete a\n").expect_code(1);
    assert!(
        run.stderr
            .contains("a is the session open now: /delete a --yes deletes it"),
        "{}",
        run.stderr
    );
    sandbox
        .run(&["-s", "a"], "/delete a --yes\n")
        .expect_code(0);
    assert_eq!(
        count(&sandbox, "contents"),
        4,
        "turn 1 stays for b; a's turn 2 goes"
    );
    assert_eq!(
        count(&sandbox, "blobs"),
        4,
        "two images and two signatures remain"
    );
    sandbox.run(&["-r", "b"], "four\n").expect_code(0);
    assert_eq!(server.requests().last().unwrap().contents().len(), 5);
    let run = sandbox.run(&[], "/delete nobody\n").expect_code(1);
    assert!(run.stderr.contains("no session named"), "{}", run.stderr);
}

#[test]
fn export_then_import_sends_the_same_next_request() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    sandbox
        .run(&["-s", "fox", "-a", "16:9"], "a red fox\nmake it night\n")
        .expect_code(0);
    let export = sandbox.path("fox-export");
    let run = sandbox
        .run(&["export", "fox", export.to_str().unwrap()], "")
        .expect_code(0);
    assert_eq!(
        run.stdout_lines().len(),
        4,
        "two images, transcript.md, thread.json: {}",
        run.stdout
    );
    let transcript = std::fs::read_to_string(export.join("transcript.md")).unwrap();
    assert!(
        transcript.contains("> make it night") && transcript.contains("![turn 2](2.jpg)"),
        "{transcript}"
    );
    let thread: Value =
        serde_json::from_slice(&std::fs::read(export.join("thread.json")).unwrap()).unwrap();
    assert_eq!(thread["contents"].as_array().unwrap().len(), 4);
    assert!(
        thread["contents"][1]["parts"]
            .to_string()
            .contains("thoughtSignature")
    );

    // Into a fresh database: the imported thread's next request is the original's, byte for byte.
    let other = Sandbox::new(&server);
    let file = export.join("thread.json");
    let run = other
        .run(&["import", file.to_str().unwrap()], "")
        .expect_code(0);
    assert_eq!(run.stdout.trim(), "fox");
    let run = other
        .run(&["import", file.to_str().unwrap()], "")
        .expect_code(0);
    assert_eq!(run.stdout.trim(), "fox-2", "a taken name gets a suffix");
    sandbox.run(&["-r", "fox"], "add snow\n").expect_code(0);
    other.run(&["-r", "fox"], "add snow\n").expect_code(0);
    let requests = server.requests();
    let (original, imported) = (&requests[requests.len() - 2], &requests[requests.len() - 1]);
    assert_eq!(original.body_len, imported.body_len);
    assert_eq!(original.json(), imported.json());

    let bad = sandbox.path("bad.json");
    std::fs::write(&bad, "{\"format\": \"something-else\"}").unwrap();
    let run = other
        .run(&["import", bad.to_str().unwrap()], "")
        .expect_code(1);
    assert!(
        run.stderr.contains("not a peel thread.json"),
        "{}",
        run.stderr
    );
}

#[test]
fn two_processes_on_one_session_never_overwrite_each_other() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    sandbox.run(&["-s", "fox"], "a red fox\n").expect_code(0);
    // The first process's turn is slow; the second one finishes in between.
    server.push_reply(Reply::delayed(Duration::from_millis(1500), Reply::Image));
    let slow = sandbox.spawn(&["-s", "fox", "make it night"], "");
    server.wait_for_requests(2, Duration::from_secs(20));
    server.wait_for_replies_taken(Duration::from_secs(20));
    let quick = sandbox
        .run(&["-s", "fox", "make it dawn"], "")
        .expect_code(0);
    assert!(quick.stdout.trim().ends_with("out/fox/2.jpg"), "{quick:?}");
    let slow = crate::harness::Run::from(slow.wait_with_output().unwrap()).expect_code(0);
    assert!(
        slow.stderr.contains("saved as session fox~2"),
        "{}",
        slow.stderr
    );
    // Both continue from turn 1, so they are takes of turn 2: 2a (fox's, its file renamed) and 2b.
    assert!(slow.stdout.trim().ends_with("out/fox~2/2b.jpg"), "{slow:?}");
    assert!(sandbox.out().join("fox/2a.jpg").exists());
    assert!(!slow.stderr.contains("locked") && !quick.stderr.contains("locked"));

    let run = sandbox.run(&[], "/sessions\n").expect_code(0);
    assert!(
        run.stderr.contains("fox~2") && run.stderr.contains("fox@1"),
        "{}",
        run.stderr
    );
    // Different sessions side by side.
    let a = sandbox.spawn(&["-s", "one", "x"], "");
    let b = sandbox.spawn(&["-s", "two", "y"], "");
    for child in [a, b] {
        crate::harness::Run::from(child.wait_with_output().unwrap()).expect_code(0);
    }
}

#[test]
fn branches_in_the_terminal() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let mut command = sandbox.peel(&["-s", "fox", "--preview", "off"]);
    command.env("TERM", "xterm-256color");
    let mut p = spawn_command(command, Some(30_000)).unwrap();
    p.exp_string("fox> ").unwrap();
    p.send_line("a red fox").unwrap();
    p.exp_string("out/fox/1.jpg").unwrap();
    p.exp_string("fox> ").unwrap();
    p.send_line("/branch night").unwrap();
    p.exp_string("night> ").unwrap();
    p.send_line("make it night").unwrap();
    p.exp_string("out/night/2.jpg").unwrap();
    p.exp_string("night> ").unwrap();
    p.send_line("/load fox").unwrap();
    p.exp_string("session fox: 1 turn").unwrap();
    p.exp_string("fox> ").unwrap();
    p.send_line("/history").unwrap();
    p.exp_string("night branches off here").unwrap();
    p.exp_string("fox> ").unwrap();
    p.send_line("/tree").unwrap();
    p.exp_string("2 make it night  ").unwrap();
    p.exp_string("night").unwrap();
    p.send_line("/quit").unwrap();
    p.exp_eof().unwrap();
}
