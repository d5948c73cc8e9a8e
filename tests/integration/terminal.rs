//! What a person sees in a real terminal: the REPL in a pseudo-terminal, its output played through a terminal
//! emulator (vt100), and the screen read back as a person reads it.

use std::time::Duration;

use rexpect::session::{PtySession, spawn_command};

use crate::harness::Sandbox;
use crate::support::fake_gemini::{FakeGemini, Reply};

/// A REPL in a pseudo-terminal, everything it printed kept as a screen of 80 columns (tall enough never to scroll).
struct Terminal {
    session: PtySession,
    screen: vt100::Parser,
}

impl Terminal {
    fn start(sandbox: &Sandbox, args: &[&str]) -> Terminal {
        let mut command = sandbox.peel(args);
        command.env("TERM", "xterm-256color");
        Terminal {
            session: spawn_command(command, Some(30_000))
                .expect("peel starts in a pseudo-terminal"),
            screen: vt100::Parser::new(400.try_into().unwrap(), 80.try_into().unwrap(), 0),
        }
    }

    /// Waits for `needle`, feeding everything up to and including it to the screen.
    fn expect(&mut self, needle: &str) {
        // rexpect hands bytes over as Latin-1 characters, one a byte: the needle is matched the same way.
        let latin1: String = needle.bytes().map(char::from).collect();
        let before = self
            .session
            .exp_string(&latin1)
            .unwrap_or_else(|e| panic!("waiting for {needle:?}: {e}\nscreen:\n{}", self.text()));
        let bytes: Vec<u8> = before
            .chars()
            .chain(latin1.chars())
            .map(|c| c as u8)
            .collect();
        self.screen.process(&bytes);
    }

    fn send(&mut self, text: &str) {
        self.session.send(text).unwrap();
        self.session.flush().unwrap();
    }

    fn line(&mut self, text: &str) {
        self.send(&format!("{text}\r"));
    }

    /// The screen as text, trailing blank lines dropped.
    fn text(&self) -> String {
        self.screen.screen().contents()
    }

    fn quit(mut self) {
        self.line("/quit");
        self.session.exp_eof().unwrap();
    }
}

const SENTENCE: &str = "Here is your image for turn 1 (1024x1024, aspect 1:1, size 1K). The fox stands in \
                        the snow at dawn, looking back over its shoulder at the rising sun.";

#[test]
fn a_sentence_streamed_in_tiny_pieces_reads_whole_wrapped_at_word_boundaries() {
    let server = FakeGemini::builder()
        .stream_event_delay(Duration::from_millis(15))
        .start();
    server.push_reply(Reply::ChunkedText(SENTENCE.into(), 3));
    let sandbox = Sandbox::new(&server);
    let mut term = Terminal::start(&sandbox, &["-s", "fox", "--preview", "off"]);
    term.expect("fox> ");
    term.line("a red fox");
    term.expect("out/fox/1.jpg");
    term.expect("fox> ");
    let screen = term.text();
    // The text flows over lines broken between words only, whatever the 3-character pieces were.
    let words: Vec<&str> = SENTENCE.split(' ').collect();
    let start = screen.find("Here is").expect(&screen);
    let end = screen[start..].find("sun.").expect(&screen) + start + 4;
    let shown: Vec<&str> = screen[start..end].split_whitespace().collect();
    assert_eq!(shown, words, "{screen}");
    for line in screen[start..end].lines() {
        assert!(line.chars().count() < 80, "{line:?}");
    }
    assert!(screen[start..end].lines().count() >= 2, "wrapped: {screen}");
    // No spinner frame or status line is left behind.
    assert!(
        !screen.contains("gemini-3-pro-image 0s")
            && !screen.chars().any(|c| ('⠀'..='⣿').contains(&c)),
        "{screen}"
    );
    term.quit();
}

/// A notice during a turn (here: the thread goes whole once when it moves to the Interactions API) wraps between
/// words like the streamed text, never mid-word.
#[test]
fn a_notice_during_a_turn_wraps_between_words() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let mut term = Terminal::start(&sandbox, &["-s", "fox", "--preview", "off"]);
    term.expect("fox> ");
    term.line("a red fox");
    term.expect("out/fox/1.jpg");
    term.expect("fox> ");
    term.line("/transport interactions");
    term.expect("fox> ");
    term.line("now add a hat");
    term.expect("out/fox/2.jpg");
    term.expect("fox> ");
    let screen = term.text();
    let start = screen.find("turn 1 was not made").expect(&screen);
    let end = screen[start..].find("what is new").expect(&screen) + start + "what is new".len();
    let notice = &screen[start..end];
    assert!(notice.lines().count() >= 2, "{screen}");
    let words: Vec<&str> = notice.split_whitespace().collect();
    for word in ["thread", "whole", "once;", "next", "turns"] {
        assert!(words.contains(&word), "{word:?} cut: {notice}");
    }
    term.quit();
}

#[test]
fn lines_typed_during_a_slow_turn_run_after_it_in_order() {
    let server = FakeGemini::start();
    server.push_reply(Reply::delayed(Duration::from_millis(1500), Reply::Image));
    let sandbox = Sandbox::new(&server);
    let mut term = Terminal::start(&sandbox, &["-s", "fox", "--preview", "off"]);
    term.expect("fox> ");
    term.line("a red fox");
    server.wait_for_requests(1, Duration::from_secs(20));
    // Typed while the turn runs: kept, not lost, and not printed into the turn's output.
    term.line("/aspect 16:9");
    term.line("/settings");
    term.expect("out/fox/1.jpg");
    term.expect("next turn: gemini-3-pro-image · 16:9 · 1K");
    term.expect("aspect       16:9");
    term.expect("fox> ");
    term.quit();
}

#[test]
fn a_prompt_over_several_lines_is_sent_with_its_line_breaks() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let mut term = Terminal::start(&sandbox, &["-s", "fox", "--preview", "off"]);
    term.expect("fox> ");
    // A trailing backslash continues the prompt; so does Alt-Enter (ESC then Enter).
    term.send("a red fox\\\r");
    term.send("at dawn\x1b\r");
    term.line("in the snow");
    term.expect("out/fox/1.jpg");
    term.expect("fox> ");
    let requests = server.requests();
    assert_eq!(
        requests[0].contents()[0]["parts"][0]["text"],
        "a red fox\nat dawn\nin the snow"
    );
    term.quit();
}

#[test]
fn tab_lists_session_names_and_the_ratios_the_model_takes() {
    let sandbox = Sandbox::bare();
    for name in ["fox", "fox-night", "cat"] {
        sandbox
            .run(&["--offline", "-s", name, "an animal"], "")
            .expect_code(0);
    }
    let mut term = Terminal::start(&sandbox, &["--offline", "-s", "cat"]);
    term.expect("cat> ");
    // The first Tab completes what all candidates share, the second lists them.
    term.send("/load f\t\t");
    term.expect("fox-night");
    term.send("\x15");
    term.send("/aspect 2\t\t");
    term.expect("21:9");
    term.send("\x15");
    term.expect("cat> ");
    let screen = term.text();
    assert!(
        screen.contains("fox  ") || screen.contains("fox\n"),
        "{screen}"
    );
    assert!(
        screen.contains("2:3") && screen.contains("21:9"),
        "{screen}"
    );
    assert!(!screen.contains("1:8"), "Pro does not take 1:8: {screen}");
    term.quit();
}

#[test]
fn preview_off_draws_no_image_and_on_draws_it_again() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let mut term = Terminal::start(&sandbox, &["-s", "fox", "--preview", "blocks"]);
    term.expect("fox> ");
    term.line("/preview off");
    term.expect("previews off");
    term.line("a red fox");
    let before = term.session.exp_string("out/fox/1.jpg").unwrap();
    assert!(
        !before.contains("\x1b[48;5;") && !before.contains("\x1b[48;2;"),
        "no blocks drawn"
    );
    term.expect("fox> ");
    term.line("/preview on");
    term.expect("previews on");
    term.line("/show");
    let drawn = term.session.exp_string("out/fox/1.jpg").unwrap();
    assert!(drawn.contains("\x1b[48;"), "blocks drawn again");
    term.expect("fox> ");
    term.quit();
}

#[test]
fn deleting_the_open_session_asks_first() {
    let sandbox = Sandbox::bare();
    sandbox
        .run(&["--offline", "-s", "fox", "a red fox"], "")
        .expect_code(0);
    let mut term = Terminal::start(&sandbox, &["--offline", "-r", "fox"]);
    term.expect("fox> ");
    term.line("/delete fox");
    term.expect("the one open now?");
    term.expect("[y/N] ");
    term.line("n");
    term.expect("kept");
    term.expect("fox> ");
    term.line("/delete fox");
    term.expect("[y/N] ");
    term.line("y");
    term.expect("deleted session fox");
    term.expect("new session> ");
    term.quit();
    let run = sandbox.run(&["sessions"], "").expect_code(0);
    assert!(!run.stdout.contains("fox"), "{run:?}");
}
