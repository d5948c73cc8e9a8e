//! Image editing as a search: N takes at once as siblings, a pick, contact sheets, earlier images by label, and the
//! clipboard, against the signature-checking fake server.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use peel::engine::events::Recorder;
use peel::engine::{Cancel, Event, Events};
use peel::settings::Settings;
use serde_json::json;

use crate::engine::engine_with;
use crate::harness::Sandbox;
use crate::support::fake_gemini::{FakeGemini, Reply};

/// A test face another thread can watch: the lines a [`Recorder`] would hold, and a wait for one.
#[derive(Default)]
struct Watched {
    lines: Mutex<Vec<String>>,
    added: Condvar,
}

impl Events for Watched {
    fn emit(&self, event: Event<'_>) {
        let recorder = Recorder::default();
        recorder.emit(event);
        self.lines.lock().unwrap().extend(recorder.lines());
        self.added.notify_all();
    }
}

impl Watched {
    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits (at most 20 s) for a line that `wanted` accepts.
    fn wait_for(&self, wanted: impl Fn(&str) -> bool) {
        let lines = self.lines.lock().unwrap();
        let (lines, _) = self
            .added
            .wait_timeout_while(lines, Duration::from_secs(20), |lines| {
                !lines.iter().any(|l| wanted(l))
            })
            .unwrap();
        assert!(lines.iter().any(|l| wanted(l)), "never came: {lines:?}");
    }
}

#[test]
fn four_takes_are_in_flight_at_once_and_stored_as_signed_siblings() {
    let server = FakeGemini::start();
    for _ in 0..4 {
        server.push_reply(Reply::delayed(Duration::from_millis(600), Reply::Image));
    }
    let sandbox = Sandbox::new(&server);
    sandbox.run(&["-s", "fox", "a red fox"], "").expect_code(0);
    let run = sandbox
        .run(&["-r", "fox"], "/variants 4 make it night\n")
        .expect_code(0);
    // The four requests overlap: each arrived before every other one was answered.
    let requests = server.requests();
    assert_eq!(requests.len(), 5);
    let takes = &requests[1..];
    for a in takes {
        for b in takes {
            let answered = b.received_at + b.server_time.unwrap();
            assert!(
                a.received_at < answered,
                "the requests ran one after another"
            );
        }
    }
    // Four sibling takes under turn 1, each with its own image and signature, printed in label order.
    let paths = run.stdout_lines();
    assert_eq!(paths.len(), 4, "{run:?}");
    for (path, letter) in paths.iter().zip(["a", "b", "c", "d"]) {
        assert!(path.ends_with(&format!("out/fox/2{letter}.jpg")), "{path}");
    }
    assert!(
        run.stderr.contains("contact sheet: out/fox/2-sheet.jpg"),
        "{}",
        run.stderr
    );
    let (w, h) = image::image_dimensions(sandbox.out().join("fox/2-sheet.jpg")).unwrap();
    assert!(w > 4 * 512 && h > 512, "{w}x{h}");
    assert_eq!(
        sandbox.count("SELECT count(*) FROM contents WHERE role = 'user' AND depth = 2"),
        4
    );
    let signatures: std::collections::HashSet<String> = server
        .issued_images()
        .iter()
        .skip(1)
        .map(|i| i.signature.clone().unwrap())
        .collect();
    assert_eq!(signatures.len(), 4);

    // /pick: the next turn continues from the picked take, sending its parts byte for byte, and is accepted.
    let run = sandbox
        .run(&["-r", "fox"], "/pick 2c\nadd the moon\n/history\n")
        .expect_code(0);
    assert!(run.stderr.contains("continues from 2c"), "{}", run.stderr);
    let last = server.requests().last().unwrap().contents().to_vec();
    assert_eq!(last.len(), 5);
    assert_eq!(last[3]["role"], "model", "the picked take's answer");
    server
        .responses()
        .iter()
        .find(|r| r["candidates"][0]["content"]["parts"] == last[3]["parts"])
        .expect("the picked take's parts, as the server sent them");
    // And the take sent is 2c: its image is the one written as 2c, which no other take has.
    let take =
        |letter: &str| std::fs::read(sandbox.out().join(format!("fox/2{letter}.jpg"))).unwrap();
    let take_c = take("c");
    for other in ["a", "b", "d"] {
        assert!(take(other) != take_c, "2{other} and 2c are the same image");
    }
    let sent_image: Vec<&str> = last[3]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["inlineData"]["data"].as_str())
        .collect();
    assert_eq!(sent_image.len(), 1, "one image in the picked take");
    // Compared by equality only: a failure should not print megabytes of bytes.
    assert!(
        STANDARD.decode(sent_image[0]).unwrap() == take_c,
        "the continued take is not 2c"
    );
    assert!(
        run.stderr.contains("other takes: @2a @2b @2d"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_429_on_one_take_retries_that_one_only() {
    let server = FakeGemini::start();
    let mut body = crate::support::fixture_json("error-429-retry-info.json");
    for detail in body["error"]["details"].as_array_mut().unwrap() {
        if detail["@type"].as_str().unwrap().ends_with("RetryInfo") {
            detail["retryDelay"] = json!("0.3s");
        }
    }
    server.push_reply(Reply::delayed(Duration::from_millis(200), Reply::Image));
    server.push_reply(Reply::Status(429, body));
    let sandbox = Sandbox::new(&server);
    let run = sandbox
        .run(&["-s", "fox", "-n", "3", "a red fox"], "")
        .expect_code(0);
    assert_eq!(server.request_count(), 4, "three takes and one retry");
    assert_eq!(run.stdout_lines().len(), 3, "{run:?}");
    assert_eq!(
        sandbox.count("SELECT count(*) FROM contents WHERE role = 'model'"),
        3
    );
}

#[test]
fn a_take_that_fails_leaves_the_others_and_a_cancel_keeps_what_came() {
    let server = FakeGemini::start();
    server.push_reply(Reply::Status(
        400,
        json!({"error": {"code": 400, "message": "bad take", "status": "INVALID_ARGUMENT"}}),
    ));
    let sandbox = Sandbox::new(&server);
    let run = sandbox
        .run(&["-s", "fox", "-n", "2", "a red fox"], "")
        .expect_code(0);
    assert!(
        run.stderr
            .contains(" of 2 did not come: 400 INVALID_ARGUMENT: bad take"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout_lines().len(), 1);

    // The engine with a test face: two takes answer, two hang; Ctrl-C keeps the two.
    let server = FakeGemini::start();
    server.push_reply(Reply::Image);
    server.push_reply(Reply::Image);
    server.push_reply(Reply::Hang);
    server.push_reply(Reply::Hang);
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine_with(&server, &dir, Settings::default());
    let cancel = Cancel::new();
    let events = Watched::default();
    // Ctrl-C once all four are at the server and two have answered (said by the engine, not guessed by a sleep).
    let report = std::thread::scope(|scope| {
        scope.spawn(|| {
            server.wait_for_requests(4, Duration::from_secs(20));
            server.wait_for_replies_taken(Duration::from_secs(20));
            events.wait_for(|l| l.starts_with("status: 4 takes: 2 done"));
            cancel.cancel();
        });
        engine.variants("a red fox", 4, &events, &cancel).unwrap()
    });
    assert_eq!(report.takes.len(), 2);
    assert_eq!(report.cancelled, 2);
    assert!(
        events
            .lines()
            .iter()
            .any(|l| l.starts_with("status: 4 takes: "))
    );
    assert_eq!(engine.turns().unwrap().len(), 1);
}

#[test]
fn labels_send_the_stored_bytes_themselves() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    sandbox
        .run(&["-s", "fox"], "a red fox\nmake it night\n")
        .expect_code(0);
    sandbox.run(&["-s", "cat", "a cat"], "").expect_code(0);
    let issued = server.issued_images();
    let (fox2, cat1) = (issued[1].data.clone(), issued[2].data.clone());
    let blobs_before = sandbox.count("SELECT count(*) FROM blobs");
    let run = sandbox
        .run(
            &["-r", "fox"],
            "/attach @2 @cat:1\n/attach\nput the hat from @last on the fox\n",
        )
        .expect_code(0);
    assert!(run.stderr.contains("@2 (image/jpeg"), "{}", run.stderr);
    let requests = server.requests();
    let parts = requests.last().unwrap().contents().last().unwrap()["parts"].clone();
    let sent: Vec<&str> = parts
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["inlineData"]["data"].as_str())
        .collect();
    // @2 and @last are the same picture: sent once; @cat:1 from another session. Compared by equality only:
    // a failure should not print megabytes of base64.
    assert_eq!(sent.len(), 2, "two images sent");
    assert!(
        sent[0] == fox2 && sent[1] == cat1,
        "the stored bytes themselves"
    );
    assert_eq!(parts[0]["text"], "put the hat from @last on the fox");
    // No new blob for a referenced image: the store had it already. The turn adds its answer's image and
    // signature only.
    assert_eq!(
        sandbox.count("SELECT count(*) FROM blobs"),
        blobs_before + 2
    );
    // A label that names nothing is refused before anything is sent.
    let before = server.request_count();
    let run = sandbox.run(&["-r", "fox"], "use @9 here\n").expect_code(1);
    assert!(run.stderr.contains("the prompt names @9"), "{}", run.stderr);
    assert_eq!(server.request_count(), before);
}

#[test]
fn paste_takes_the_clipboards_image_through_the_platforms_tool() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let bin = sandbox.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let png = sandbox.path("clip.png");
    image::RgbImage::from_pixel(32, 24, image::Rgb([200, 30, 30]))
        .save(&png)
        .unwrap();
    // A stand-in for wl-paste: lists an image type, then prints the PNG.
    let script = format!(
        "#!/bin/sh\nif [ \"$1\" = --list-types ]; then echo text/plain; echo image/png; else cat {}; fi\n",
        png.display()
    );
    let tool = bin.join("wl-paste");
    std::fs::write(&tool, script).unwrap();
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let mut command = sandbox.peel(&["-s", "fox"]);
    command
        .env("PATH", &path)
        .env("WAYLAND_DISPLAY", "wayland-0");
    let run = sandbox.run_command(command, "/paste\nput this on a t-shirt\n");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains("attached clipboard (image/png 32x24"),
        "{}",
        run.stderr
    );
    let sent = server.requests()[0].contents()[0]["parts"][1]["inlineData"]["data"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(STANDARD.decode(sent).unwrap(), std::fs::read(&png).unwrap());

    // Text only on the clipboard: a clear message, nothing attached.
    std::fs::write(&tool, "#!/bin/sh\necho text/plain\n").unwrap();
    let mut command = sandbox.peel(&["-r", "fox"]);
    command
        .env("PATH", &path)
        .env("WAYLAND_DISPLAY", "wayland-0");
    let run = sandbox.run_command(command, "/paste\n");
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("the clipboard holds no image (it holds text/plain)"),
        "{}",
        run.stderr
    );
}

#[test]
fn offline_takes_differ_and_compare_shows_two() {
    let sandbox = Sandbox::bare();
    let run = sandbox
        .run(
            &["--offline", "-s", "fox"],
            "/variants 3 a red fox\n/compare 1a 1c\n",
        )
        .expect_code(0);
    let paths = run.stdout_lines();
    assert_eq!(paths.len(), 4, "three takes and the comparison: {run:?}");
    let bytes: Vec<Vec<u8>> = paths[..3]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert!(
        bytes[0] != bytes[1] && bytes[1] != bytes[2],
        "each take drawn differently"
    );
    assert!(paths[3].ends_with("1a-vs-1c.jpg"), "{run:?}");
}
