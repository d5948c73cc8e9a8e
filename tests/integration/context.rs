//! Long threads stay within the limits: peel refuses a request bound to fail, and the context policies continue
//! the thread with requests a signature-checking server accepts.

use crate::harness::Sandbox;
use crate::support::fake_gemini::FakeGemini;

#[test]
fn a_thread_at_the_byte_limit_is_refused_before_sending_and_continues() {
    // About 1.2 MB of base64 per turn (a 1K JPEG and its signature): the fourth turn would carry 3.6 MB.
    let server = FakeGemini::builder().max_body_bytes(3_000_000).start();
    let sandbox = Sandbox::new(&server);
    let config = sandbox.path("config.toml");
    std::fs::write(&config, "max_request_mb = 3\n").unwrap();
    let config = config.to_str().unwrap();

    let run = sandbox
        .run(
            &["--config", config, "-s", "long"],
            "one\ntwo\nthree\nfour\n",
        )
        .expect_code(1);
    assert_eq!(
        server.request_count(),
        3,
        "the fourth request was never sent"
    );
    assert!(
        run.stderr.contains("not sent: the request would be 3."),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("over the 3.0 MB request limit by"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("/context last 2 sends only the last 2 turns")
            && run.stderr.contains("/fresh"),
        "{}",
        run.stderr
    );

    // Only the last 2 turns: the request starts with a user turn and carries whole, signed model turns.
    let run = sandbox
        .run(
            &["--config", config, "-r", "long"],
            "/context last 2\nfour\nfive\n/context\n",
        )
        .expect_code(0);
    assert!(
        run.stderr.contains("policy: last 2 turns"),
        "{}",
        run.stderr
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 5, "every request was accepted");
    for request in &requests[3..] {
        let contents = request.contents();
        assert_eq!(contents.len(), 5);
        assert_eq!(contents[0]["role"], "user");
        assert!(request.body_len < 3_000_000);
    }
    assert_eq!(requests[4].contents()[0]["parts"][0]["text"], "three");
    let history = sandbox
        .run(&["--config", config, "-r", "long"], "/history\n")
        .expect_code(0);
    assert!(
        history.stderr.contains("5 turns"),
        "the stored thread is whole: {}",
        history.stderr
    );

    // A fresh start: a new branch whose first prompt carries the current image, and nothing else.
    let run = sandbox
        .run(
            &["--config", config, "-r", "long"],
            "/fresh\nmake it snow\nand night\n",
        )
        .expect_code(0);
    assert!(
        run.stderr.contains("fresh start: session long~2"),
        "{}",
        run.stderr
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 7);
    let first = requests[5].contents();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["parts"][0]["text"], "make it snow");
    assert_eq!(first[0]["parts"][1]["inlineData"]["mimeType"], "image/jpeg");
    assert_eq!(requests[6].contents().len(), 3);
}
