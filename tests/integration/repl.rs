//! The interactive REPL, driven through a pseudo-terminal as a person would use it.

use std::time::Duration;

use rexpect::session::{PtySession, spawn_command};

use crate::harness::Sandbox;
use crate::support::fake_gemini::{FakeGemini, Reply};

fn repl(sandbox: &Sandbox, args: &[&str]) -> PtySession {
    let mut command = sandbox.peel(args);
    command.env("TERM", "xterm-256color");
    spawn_command(command, Some(30_000)).expect("peel starts in a pseudo-terminal")
}

#[test]
fn prompt_cancel_and_quit_in_a_terminal() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let mut p = repl(&sandbox, &["-s", "fox", "--preview", "blocks"]);
    p.exp_string("fox> ").unwrap();

    // A turn: a spinner with elapsed seconds, the preview in coloured half-blocks (rexpect reads bytes as
    // Latin-1, so look for the colour escapes rather than the block character), then the path.
    p.send_line("a red fox").unwrap();
    p.exp_string("gemini-3-pro-image 0s").unwrap();
    p.exp_string("\x1b[48;5;").unwrap();
    p.exp_string("out/fox/1.jpg").unwrap();
    p.exp_string("fox> ").unwrap();

    // Ctrl-C at the prompt clears the line; the half-typed prompt is never sent.
    p.send("half typed").unwrap();
    p.flush().unwrap();
    p.send_control('c').unwrap();
    p.exp_string("fox> ").unwrap();

    // Ctrl-C during a request cancels it and keeps the REPL.
    server.push_reply(Reply::Hang);
    p.send_line("make it night").unwrap();
    server.wait_for_requests(2, Duration::from_secs(20));
    server.wait_for_replies_taken(Duration::from_secs(20));
    p.send_control('c').unwrap();
    p.exp_string("cancelled; nothing was recorded").unwrap();
    p.exp_string("fox> ").unwrap();

    p.send_line("/history").unwrap();
    p.exp_string("a red fox").unwrap();
    p.exp_string("1 turn, $").unwrap();
    p.send_line("/quit").unwrap();
    p.exp_eof().unwrap();

    assert_eq!(
        server.request_count(),
        2,
        "the half-typed line was never sent"
    );
    assert_eq!(
        sandbox.stored_contents(),
        2,
        "the cancelled turn left nothing"
    );
    let history = std::fs::read_to_string(sandbox.db().with_file_name("repl-history.txt")).unwrap();
    assert!(
        history.contains("make it night"),
        "the line history persists: {history}"
    );
}

#[test]
fn ctrl_d_leaves_and_tab_completes() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let mut p = repl(&sandbox, &[]);
    p.exp_string("> ").unwrap();
    p.send("/sett\t").unwrap();
    p.flush().unwrap();
    p.exp_string("/settings").unwrap();
    p.send_line("").unwrap();
    p.exp_string("gemini-3-pro-image").unwrap();
    // Ctrl-D at the prompt, once it is back (as a person presses it).
    p.exp_string("new session> ").unwrap();
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();
    assert_eq!(server.request_count(), 0);
}
