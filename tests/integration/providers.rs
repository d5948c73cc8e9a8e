//! Each kind of provider profile against the fake server: the path, where the key travels, and that the key never
//! shows up in any output or file.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::harness::{Run, Sandbox};
use crate::support::fake_gemini::{FakeGemini, KeyPlacement, Reply};

/// Files the test writes that hold the key on purpose (a key file, a token script) live here, outside the sandbox
/// whose every file is searched for the key.
struct Secrets(tempfile::TempDir);

impl Secrets {
    fn new() -> Secrets {
        Secrets(tempfile::tempdir().unwrap())
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A token command that prints `tokens[n]` on its n-th run (the last one from then on), counting runs in a file.
    fn token_script(&self, tokens: &[&str]) -> (String, PathBuf) {
        let count = self.0.path().join("runs");
        let mut script = format!(
            "#!/bin/sh\necho run >> '{0}'\nn=$(wc -l < '{0}' | tr -d ' ')\n",
            count.display()
        );
        for (k, token) in tokens.iter().enumerate() {
            script.push_str(&format!(
                "if [ \"$n\" -le {} ]; then echo '{token}'; exit 0; fi\n",
                k + 1
            ));
        }
        script.push_str(&format!("echo '{}'\n", tokens.last().unwrap()));
        let path = self.file("token.sh", &script);
        (format!("sh {}", path.display()), count)
    }
}

fn runs_of(count: &Path) -> usize {
    std::fs::read_to_string(count).map_or(0, |t| t.lines().count())
}

/// `peel ARGS` with the config file and no key or base URL from the environment unless given in `env`.
fn peel(sandbox: &Sandbox, config: &str, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Run {
    let path = sandbox.path("config.toml");
    std::fs::write(&path, config).unwrap();
    let mut full = vec!["--config", path.to_str().unwrap()];
    full.extend_from_slice(args);
    let mut command: Command = sandbox.peel(&full);
    command
        .env_remove("GEMINI_API_KEY")
        .env_remove("PEEL_BASE_URL");
    for (name, value) in env {
        command.env(name, value);
    }
    sandbox.run_command(command, stdin)
}

#[test]
fn a_header_profile_like_modelverse() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let config = format!(
        "profile = \"modelverse\"\nmodel = \"gemini-3.1-flash-image\"\n\n\
         [profiles.modelverse]\nbase_url = \"{}\"\napi_key_env = \"MODELVERSE_API_KEY\"\n",
        server.url()
    );
    let key = server.api_key().to_string();
    let run = peel(
        &sandbox,
        &config,
        &["-s", "m", "-v"],
        &[("MODELVERSE_API_KEY", &key)],
        "a red fox\nmake it night\n",
    )
    .expect_code(0);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(
            request.path, "/v1beta/models/gemini-3.1-flash-image:generateContent",
            "the config's default model"
        );
        assert_eq!(request.header("x-goog-api-key"), Some(key.as_str()));
        assert!(request.query.is_none());
        assert!(request.header("authorization").is_none());
    }
    assert!(
        run.stderr.contains(&format!(
            "POST {}/v1beta/models/gemini-3.1-flash-image:generateContent",
            server.url()
        )),
        "{}",
        run.stderr
    );

    // The named variable is required: GEMINI_API_KEY does not stand in for it.
    let missing = peel(&sandbox, &config, &["x"], &[("GEMINI_API_KEY", &key)], "").expect_code(2);
    assert!(
        missing
            .stderr
            .contains("MODELVERSE_API_KEY (api_key_env) is not set"),
        "{}",
        missing.stderr
    );
    sandbox.assert_key_nowhere(&key, &[&run, &missing]);
}

#[test]
fn a_query_profile_like_anyfast_redacts_every_url() {
    let server = FakeGemini::builder()
        .key_placements(&[KeyPlacement::Query])
        .start();
    let sandbox = Sandbox::new(&server);
    let secrets = Secrets::new();
    let key = server.api_key().to_string();
    let key_file = secrets.file("key", &format!("  {key}\n"));
    let config = format!(
        "[profiles.anyfast]\nbase_url = \"{}\"\nauth = \"query\"\napi_key_cmd = \"cat {}\"\n",
        server.url(),
        key_file.display()
    );
    let run = peel(
        &sandbox,
        &config,
        &["-p", "anyfast", "-s", "q", "-v", "--stream"],
        &[],
        "a red fox\nmake it night\n",
    )
    .expect_code(0);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(
            request.path,
            "/v1beta/models/gemini-3-pro-image:streamGenerateContent"
        );
        assert_eq!(
            request.query.as_deref(),
            Some(format!("alt=sse&key={key}").as_str())
        );
        assert!(request.header("x-goog-api-key").is_none());
    }
    assert!(
        run.stderr.contains("streamGenerateContent?alt=sse&key=***"),
        "the URL shown is redacted: {}",
        run.stderr
    );

    // A gateway that echoes the URL back in its error: the key is scrubbed from the message.
    server.push_reply(Reply::gateway_error(
        400,
        &format!("bad request: /v1beta/models/x:generateContent?key={key}"),
        "invalid_request_error",
        "bad_request",
    ));
    let echoed = peel(&sandbox, &config, &["-p", "anyfast", "-r"], &[], "again\n").expect_code(1);
    assert!(echoed.stderr.contains("key=***"), "{}", echoed.stderr);

    // An unreachable host: the transport error names the host, never the URL with its key.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let unreachable = peel(
        &sandbox,
        &format!("retries = 0\n[profiles.anyfast]\nbase_url = \"{dead}\"\nauth = \"query\"\napi_key_cmd = \"cat {}\"\n", key_file.display()),
        &["-p", "anyfast", "x"],
        &[],
        "",
    )
    .expect_code(1);
    assert!(
        unreachable.stderr.contains("could not reach 127.0.0.1"),
        "{}",
        unreachable.stderr
    );

    // PEEL_PROFILE picks the profile too.
    let by_env = peel(
        &sandbox,
        &config,
        &["-r"],
        &[("PEEL_PROFILE", "anyfast")],
        "one more\n",
    )
    .expect_code(0);
    sandbox.assert_key_nowhere(&key, &[&run, &echoed, &unreachable, &by_env]);
}

#[test]
fn vertex_with_a_token_command_caches_the_token_and_refreshes_it_once_after_a_401() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let secrets = Secrets::new();
    let token = server.api_key().to_string();
    let (token_cmd, runs) = secrets.token_script(&["expired-token", &token]);
    let config = format!(
        "profile = \"vertex\"\n[profiles.vertex]\nvertex = true\nproject = \"my-project\"\n\
         location = \"us-central1\"\ntoken_cmd = \"{token_cmd}\"\nbase_url = \"{}\"\n",
        server.url()
    );
    let run = peel(
        &sandbox,
        &config,
        &["-s", "v"],
        &[],
        "a red fox\nmake it night\nadd snow\n",
    )
    .expect_code(0);
    assert_eq!(run.stdout_lines().len(), 3);
    assert_eq!(
        runs_of(&runs),
        2,
        "once, then once more after the 401; cached after that"
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 4, "the 401 and three turns");
    for request in &requests {
        assert_eq!(
            request.path,
            "/v1/projects/my-project/locations/us-central1/publishers/google/models/gemini-3-pro-image:generateContent"
        );
        assert!(request.header("x-goog-api-key").is_none());
    }
    assert_eq!(
        requests[0].header("authorization"),
        Some("Bearer expired-token")
    );
    for request in &requests[1..] {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {token}").as_str())
        );
    }
    // The Vertex history is resent exactly too (the fake checks signatures on Vertex paths as well).
    assert_eq!(requests[3].contents().len(), 5);

    // A token that stays wrong is reported, not retried forever: one refresh per request.
    let bad_secrets = Secrets::new();
    let (bad_cmd, bad_runs) = bad_secrets.token_script(&["wrong"]);
    let bad_config = config.replace(&token_cmd, &bad_cmd);
    let bad = peel(&sandbox, &bad_config, &["-r"], &[], "again\n").expect_code(1);
    assert!(bad.stderr.contains("401 UNAUTHENTICATED"), "{}", bad.stderr);
    assert!(
        bad.stderr.contains("token_cmd"),
        "the hint names it: {}",
        bad.stderr
    );
    assert_eq!(runs_of(&bad_runs), 2);
    sandbox.assert_key_nowhere(&token, &[&run, &bad]);
}

#[test]
fn vertex_global_streaming_and_vertex_only_settings() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let secrets = Secrets::new();
    let (token_cmd, _) = secrets.token_script(&[server.api_key()]);
    let config = format!(
        "[profiles.vertex]\nvertex = true\nproject = \"p-1\"\ntoken_cmd = \"{token_cmd}\"\nbase_url = \"{}\"\n\
         person_generation = \"ALLOW_ADULT\"\noutput_mime_type = \"image/jpeg\"\njpeg_quality = 80\n\n\
         [profiles.plain]\nbase_url = \"{}\"\nperson_generation = \"ALLOW_ALL\"\n",
        server.url(),
        server.url()
    );
    let run = peel(
        &sandbox,
        &config,
        &["-p", "vertex", "-s", "g", "--stream"],
        &[],
        "a red fox\n",
    )
    .expect_code(0);
    assert_eq!(run.stdout_lines().len(), 1);
    let request = &server.requests()[0];
    assert_eq!(
        request.path,
        "/v1/projects/p-1/locations/global/publishers/google/models/gemini-3-pro-image:streamGenerateContent"
    );
    assert_eq!(request.query.as_deref(), Some("alt=sse"));
    assert_eq!(
        request.json()["generationConfig"]["imageConfig"],
        json!({"imageSize": "1K", "personGeneration": "ALLOW_ADULT",
               "imageOutputOptions": {"mimeType": "image/jpeg", "compressionQuality": 80}})
    );

    let refused = peel(
        &sandbox,
        &config,
        &["-p", "plain", "x"],
        &[("GEMINI_API_KEY", server.api_key())],
        "",
    )
    .expect_code(2);
    assert!(
        refused
            .stderr
            .contains("person_generation only works on Vertex AI"),
        "{}",
        refused.stderr
    );
    assert_eq!(server.request_count(), 1, "refused before any request");
}

#[test]
fn vertex_express_mode_sends_the_key_in_the_header() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let config = format!(
        "[profiles.express]\nvertex = true\nbase_url = \"{}\"\napi_key_env = \"VERTEX_KEY\"\n",
        server.url()
    );
    let run = peel(
        &sandbox,
        &config,
        &["-p", "express", "-m", "gemini-2.5-flash-image", "a cat"],
        &[("VERTEX_KEY", server.api_key())],
        "",
    )
    .expect_code(0);
    assert!(run.stdout.trim_end().ends_with(".png"), "{run:?}");
    let request = &server.requests()[0];
    assert_eq!(
        request.path,
        "/v1/publishers/google/models/gemini-2.5-flash-image:generateContent"
    );
    assert_eq!(request.header("x-goog-api-key"), Some(server.api_key()));
    assert!(request.header("authorization").is_none());
}

#[test]
fn flags_beat_the_environment_and_the_environment_beats_the_config() {
    let server = FakeGemini::start();
    let sandbox = Sandbox::new(&server);
    let config = "base_url = \"http://127.0.0.1:9\"\nmodel = \"gemini-2.5-flash-image\"\n";
    let key = server.api_key();
    // PEEL_BASE_URL and PEEL_MODEL win over the file's base_url and model.
    peel(
        &sandbox,
        config,
        &["a cat"],
        &[
            ("GEMINI_API_KEY", key),
            ("PEEL_BASE_URL", server.url()),
            ("PEEL_MODEL", "gemini-3.1-flash-image"),
        ],
        "",
    )
    .expect_code(0);
    assert_eq!(
        server.requests()[0].model.as_deref(),
        Some("gemini-3.1-flash-image")
    );
    // -m beats PEEL_MODEL; --base-url beats PEEL_BASE_URL.
    peel(
        &sandbox,
        config,
        &[
            "-m",
            "gemini-3-pro-image",
            "--base-url",
            server.url(),
            "a dog",
        ],
        &[
            ("GEMINI_API_KEY", key),
            ("PEEL_BASE_URL", "http://127.0.0.1:9"),
            ("PEEL_MODEL", "gemini-3.1-flash-image"),
        ],
        "",
    )
    .expect_code(0);
    assert_eq!(
        server.requests()[1].model.as_deref(),
        Some("gemini-3-pro-image")
    );

    let run = peel(
        &sandbox,
        config,
        &["-p", "nope", "x"],
        &[("GEMINI_API_KEY", key)],
        "",
    )
    .expect_code(2);
    assert!(run.stderr.contains("no profile \"nope\""), "{}", run.stderr);
    let run = peel(
        &sandbox,
        "modle = 1\n",
        &["x"],
        &[("GEMINI_API_KEY", key)],
        "",
    )
    .expect_code(2);
    assert!(run.stderr.contains("modle"), "{}", run.stderr);
    assert_eq!(server.request_count(), 2);
}
