//! Where the credential comes from and how it travels: a key (header, `?key=`, or Bearer), or a Vertex AI OAuth
//! token printed by a command (`gcloud auth print-access-token`), cached and fetched again once when it is refused.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use super::error::GeminiError;
use crate::secret::Secret;

/// How the key travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    /// `x-goog-api-key: KEY` (Gemini API, most gateways)
    #[default]
    Header,
    /// `?key=KEY` (some gateways); every URL shown is redacted
    Query,
    /// `Authorization: Bearer KEY`
    Bearer,
}

pub const DEFAULT_TOKEN_CMD: &str = "gcloud auth print-access-token";

#[derive(Debug)]
pub enum Credential {
    Key {
        key: Secret,
        auth: Auth,
    },
    /// A Vertex AI access token, always sent as `Authorization: Bearer`.
    Token(TokenCommand),
}

impl Credential {
    /// Puts the credential on a request: into `headers`, or onto `url` for query auth.
    pub fn apply(&self, headers: &mut HeaderMap, url: &mut String) -> Result<(), GeminiError> {
        match self {
            Credential::Key { key, auth } => match auth {
                Auth::Header => {
                    headers.insert("x-goog-api-key", sensitive(key.expose())?);
                }
                Auth::Bearer => {
                    headers.insert(
                        AUTHORIZATION,
                        sensitive(&format!("Bearer {}", key.expose()))?,
                    );
                }
                Auth::Query => {
                    url.push(if url.contains('?') { '&' } else { '?' });
                    url.push_str("key=");
                    url.push_str(&percent_encode(key.expose()));
                }
            },
            Credential::Token(command) => {
                let token = command.token()?;
                headers.insert(
                    AUTHORIZATION,
                    sensitive(&format!("Bearer {}", token.expose()))?,
                );
            }
        }
        Ok(())
    }

    /// After a 401: forget a cached token so the next `apply` runs the command again. False when there is nothing
    /// to refresh (a fixed key stays wrong however often it is sent).
    pub fn refresh(&self) -> bool {
        match self {
            Credential::Token(command) => {
                command.forget();
                true
            }
            Credential::Key { .. } => false,
        }
    }

    /// The secret value, for scrubbing it out of error text.
    pub fn secret(&self) -> Option<Secret> {
        match self {
            Credential::Key { key, .. } => Some(key.clone()),
            Credential::Token(command) => command.cached(),
        }
    }
}

/// How helper commands (`api_key_cmd`, `token_cmd`) run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HelperOptions {
    /// A command still running after this is stopped, and the error names it.
    pub timeout: Duration,
    /// `-v`: a failing command's stderr is shown (sanitised, without anything it printed on stdout).
    pub verbose: bool,
}

impl Default for HelperOptions {
    fn default() -> Self {
        HelperOptions {
            timeout: Duration::from_secs(30),
            verbose: false,
        }
    }
}

/// A shell command that prints a token, run when a token is first needed and again after a 401.
#[derive(Debug)]
pub struct TokenCommand {
    command: String,
    options: HelperOptions,
    cache: Mutex<Option<Secret>>,
}

impl TokenCommand {
    pub fn new(command: impl Into<String>, options: HelperOptions) -> TokenCommand {
        TokenCommand {
            command: command.into(),
            options,
            cache: Mutex::new(None),
        }
    }

    fn token(&self) -> Result<Secret, GeminiError> {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(token) = &*cache {
            return Ok(token.clone());
        }
        let token = run_secret_command(&self.command, "token_cmd", self.options)
            .map_err(GeminiError::Credential)?;
        *cache = Some(token.clone());
        Ok(token)
    }

    fn cached(&self) -> Option<Secret> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn forget(&self) {
        *self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }
}

/// The most a helper may print: a key or a token is one short line.
const MAX_HELPER_OUTPUT: u64 = 64 * 1024;

/// Runs `command` with `sh -c` and returns its stdout, trimmed, as a secret. Its stdout is never shown. A failure
/// says which setting's command failed and how; its stderr only with `-v` (sanitised, and without anything the
/// command printed on stdout). A command still running after the timeout is stopped and named.
pub fn run_secret_command(
    command: &str,
    setting: &str,
    options: HelperOptions,
) -> Result<Secret, String> {
    // Only the program's name is ever shown: someone may have written the key into the command itself.
    let program = command.split_whitespace().next().unwrap_or_default();
    let shown = if program.len() < command.trim().len() {
        format!("{program} ...")
    } else {
        program.to_string()
    };
    let shown = crate::untrusted::sanitize(&shown);
    // The child stays in peel's process group, so a Ctrl-C at the terminal reaches it too.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not run {setting} `{shown}`: {e}"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + options.timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{setting} `{shown}` did not finish within {} s (cmd_timeout) and was stopped",
                    options.timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("could not wait for {setting} `{shown}`: {e}")),
        }
    };
    // A command that left a child behind holding the pipes open is not waited for beyond the deadline.
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(200));
    let out = stdout.recv_timeout(left).unwrap_or_default();
    let err = stderr
        .recv_timeout(Duration::from_millis(200))
        .unwrap_or_default();
    let printed = String::from_utf8_lossy(&out).trim().to_string();
    if !status.success() {
        let mut message = format!("{setting} `{shown}` failed ({status})");
        let text = String::from_utf8_lossy(&err);
        let text = if printed.is_empty() {
            text.to_string()
        } else {
            crate::untrusted::scrub(&text, &printed)
        };
        let first: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(5)
            .collect();
        if options.verbose && !first.is_empty() {
            message.push_str("; it said: ");
            message.push_str(&crate::untrusted::sanitize(
                &first.join(" / ").chars().take(500).collect::<String>(),
            ));
        } else if !first.is_empty() {
            message.push_str("; run with -v to see what it printed on stderr");
        }
        return Err(message);
    }
    if out.len() as u64 > MAX_HELPER_OUTPUT {
        return Err(format!(
            "{setting} `{shown}` printed more than {} KB; a key or a token is one short line",
            MAX_HELPER_OUTPUT / 1024
        ));
    }
    let value = String::from_utf8(out)
        .map_err(|_| format!("{setting} `{shown}` printed something that is not text"))?;
    let value = value.trim();
    if value.is_empty() {
        return Err(format!("{setting} `{shown}` printed nothing"));
    }
    Ok(Secret::new(value))
}

/// Reads a pipe to its end on a thread of its own (at most [`MAX_HELPER_OUTPUT`] + 1 bytes are kept; the rest is
/// read and dropped so the command is never stuck writing), and hands the bytes over when done.
fn drain(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe
                .by_ref()
                .take(MAX_HELPER_OUTPUT + 1)
                .read_to_end(&mut kept);
            let _ = std::io::copy(&mut pipe, &mut std::io::sink());
        }
        let _ = send.send(kept);
    });
    receive
}

fn sensitive(value: &str) -> Result<HeaderValue, GeminiError> {
    let mut header = HeaderValue::from_str(value).map_err(|_| {
        GeminiError::Credential("the key contains characters that cannot go in a header".into())
    })?;
    header.set_sensitive(true);
    Ok(header)
}

use crate::untrusted::percent_encode;

/// A URL safe to print: the value of any `key=` query parameter replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if name.eq_ignore_ascii_case("key") => format!("{name}=***"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_keys_are_escaped_and_redacted() {
        assert_eq!(percent_encode("a b&c=d"), "a%20b%26c%3Dd");
        let credential = Credential::Key {
            key: Secret::new("s3cret/+"),
            auth: Auth::Query,
        };
        let mut url = "https://x/v1beta/models/m:streamGenerateContent?alt=sse".to_string();
        credential.apply(&mut HeaderMap::new(), &mut url).unwrap();
        assert!(url.ends_with("?alt=sse&key=s3cret%2F%2B"));
        assert_eq!(
            redact_url(&url),
            "https://x/v1beta/models/m:streamGenerateContent?alt=sse&key=***"
        );
        assert_eq!(redact_url("https://x/p"), "https://x/p");
    }

    #[test]
    fn tokens_come_from_the_command_once_until_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let counter = dir.path().join("n");
        let command = format!(
            "echo x >> {0}; echo \"  tok-$(wc -l < {0} | tr -d ' ')  \"",
            counter.display()
        );
        let credential = Credential::Token(TokenCommand::new(command, HelperOptions::default()));
        let bearer = |c: &Credential| {
            let mut headers = HeaderMap::new();
            c.apply(&mut headers, &mut String::new()).unwrap();
            headers[AUTHORIZATION].to_str().unwrap().to_string()
        };
        assert_eq!(bearer(&credential), "Bearer tok-1");
        assert_eq!(bearer(&credential), "Bearer tok-1", "cached");
        assert!(credential.refresh());
        assert_eq!(bearer(&credential), "Bearer tok-2");
    }

    #[test]
    fn a_failing_command_says_so_without_its_output() {
        let command = "echo s3cr3t; echo 'not logged in as s3cr3t' >&2; printf '\\033]0;pwned\\007' >&2; exit 3";
        let quiet = run_secret_command(command, "token_cmd", HelperOptions::default()).unwrap_err();
        assert!(quiet.contains("failed") && quiet.contains("-v"), "{quiet}");
        assert!(
            !quiet.contains("not logged in"),
            "stderr only with -v: {quiet}"
        );
        let verbose = HelperOptions {
            verbose: true,
            ..HelperOptions::default()
        };
        let loud = run_secret_command(command, "token_cmd", verbose).unwrap_err();
        assert!(loud.contains("not logged in as ***"), "{loud}");
        assert!(
            !loud.contains("s3cr3t") && crate::untrusted::is_inert(&loud),
            "{loud:?}"
        );
        assert!(
            run_secret_command("true", "api_key_cmd", HelperOptions::default())
                .unwrap_err()
                .contains("printed nothing")
        );
    }

    #[test]
    fn a_command_that_hangs_is_stopped_and_named() {
        let options = HelperOptions {
            timeout: Duration::from_millis(300),
            verbose: false,
        };
        let started = Instant::now();
        let error = run_secret_command("sleep 1000", "api_key_cmd", options).unwrap_err();
        assert!(
            error.contains("api_key_cmd `sleep ...` did not finish within"),
            "{error}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        let error = run_secret_command("yes", "api_key_cmd", options).unwrap_err();
        assert!(
            error.contains("did not finish") || error.contains("printed more"),
            "{error}"
        );
    }
}
