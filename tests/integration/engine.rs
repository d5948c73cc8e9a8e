//! The turn engine driven with no terminal at all: a test face records the events of a turn, of a retried stream
//! and of a cancel, and the engine's results say what was recorded.

use std::time::Duration;

use peel::engine::events::Recorder;
use peel::engine::{Cancel, Cancelled, Engine};
use peel::gemini::Backend;
use peel::settings::Settings;
use peel::store::Store;

use crate::interactions::client;
use crate::support::fake_gemini::{FakeGemini, Reply};

const SENTENCE: &str = "Here is your image for turn 1 (1024x1024, aspect 1:1, size 1K).";

/// An engine with a test face's needs: its database and images in `dir`, talking to `server`.
pub fn engine_with(server: &FakeGemini, dir: &tempfile::TempDir, settings: Settings) -> Engine {
    let store = Store::open(&dir.path().join("peel.db")).unwrap();
    let backend = Backend::Remote(Box::new(client(server)));
    Engine::new(store, backend, settings, &dir.path().join("out")).unwrap()
}

/// A streaming engine with the default settings.
fn engine(server: &FakeGemini, dir: &tempfile::TempDir) -> Engine {
    let mut engine = engine_with(server, dir, Settings::default());
    engine.set_stream(true);
    engine
}

#[test]
fn a_streamed_turn_reports_its_pieces_in_order_then_its_result() {
    let server = FakeGemini::start();
    server.push_reply(Reply::ChunkedText(SENTENCE.into(), 7));
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(&server, &dir);
    let events = Recorder::default();
    let report = engine.prompt("a red fox", &events, &Cancel::new()).unwrap();
    let lines = events.lines();
    assert!(lines[0].starts_with("sending "), "{lines:?}");
    let texts: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("text: "))
        .collect();
    assert_eq!(texts.concat(), SENTENCE, "{lines:?}");
    assert_eq!(texts.len(), SENTENCE.len().div_ceil(7), "one event a piece");
    assert!(report.streamed && report.text == SENTENCE);
    assert_eq!((report.turn, report.label.as_str()), (1, "1"));
    assert_eq!(report.images.len(), 1);
    assert!(report.images[0].path.ends_with("out/red-fox/1.jpg"));
    assert_eq!(
        report.images[0].bytes,
        std::fs::read(&report.images[0].path).unwrap()
    );
}

#[test]
fn a_stream_cut_by_an_error_restarts_and_the_shown_text_is_void() {
    let server = FakeGemini::start();
    server.push_reply(Reply::StreamError);
    server.push_reply(Reply::ChunkedText(SENTENCE.into(), 20));
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(&server, &dir);
    let events = Recorder::default();
    let report = engine.prompt("a red fox", &events, &Cancel::new()).unwrap();
    let lines = events.lines();
    let restarted = lines
        .iter()
        .position(|l| l == "restarted")
        .expect("restarted");
    assert_eq!(lines[restarted - 1], "text: Here is", "{lines:?}");
    assert!(
        lines[restarted + 1].starts_with("retrying in "),
        "{lines:?}"
    );
    assert!(lines[restarted + 2].starts_with("sending "), "{lines:?}");
    let after: String = lines[restarted..]
        .iter()
        .filter_map(|l| l.strip_prefix("text: "))
        .collect();
    assert_eq!(after, SENTENCE);
    assert_eq!(
        report.text, SENTENCE,
        "only the attempt that finished is kept"
    );
    assert_eq!(server.request_count(), 2);
}

#[test]
fn a_cancelled_turn_records_nothing_and_can_be_sent_again() {
    let server = FakeGemini::start();
    server.push_reply(Reply::Hang);
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(&server, &dir);
    let cancel = Cancel::new();
    let trigger = cancel.clone();
    let events = Recorder::default();
    // Cancelled once the request is at the server (which never answers it), not after a guessed time.
    let error = std::thread::scope(|scope| {
        scope.spawn(|| {
            server.wait_for_requests(1, Duration::from_secs(20));
            trigger.cancel();
        });
        engine.prompt("a red fox", &events, &cancel).unwrap_err()
    });
    assert!(error.is::<Cancelled>(), "{error:#}");
    assert_eq!(
        events.lines().len(),
        1,
        "only the sending: {:?}",
        events.lines()
    );
    assert!(
        !engine.is_stored(),
        "nothing recorded, not even the session"
    );
    // /retry sends the same prompt again.
    let report = engine.retry(&events, &Cancel::new()).unwrap();
    assert_eq!(report.turn, 1);
    assert!(
        events
            .lines()
            .iter()
            .any(|l| l == "notice: sending again: a red fox")
    );
}
