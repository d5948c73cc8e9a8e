//! Where the credential comes from and how it travels: a key (header, `?key=`, or Bearer), or a Vertex AI OAuth
//! token printed by a command (`gcloud auth print-access-token`), cached and fetched again once when it is refused.

use std::process::{Command, Stdio};
use std::sync::Mutex;

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

/// A shell command that prints a token, run when a token is first needed and again after a 401.
#[derive(Debug)]
pub struct TokenCommand {
    command: String,
    cache: Mutex<Option<Secret>>,
}

impl TokenCommand {
    pub fn new(command: impl Into<String>) -> TokenCommand {
        TokenCommand {
            command: command.into(),
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
        let token =
            run_secret_command(&self.command, "token_cmd").map_err(GeminiError::Credential)?;
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

/// Runs `command` with `sh -c` and returns its stdout, trimmed, as a secret. Its output is never shown: an error
/// says which setting's command failed, its exit status and the first line of its stderr.
pub fn run_secret_command(command: &str, setting: &str) -> Result<Secret, String> {
    // Only the program's name is ever shown: someone may have written the key into the command itself.
    let program = command.split_whitespace().next().unwrap_or_default();
    let shown = if program.len() < command.trim().len() {
        format!("{program} ...")
    } else {
        program.to_string()
    };
    let output = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()
        .map_err(|e| format!("could not run {setting} `{shown}`: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        let first = crate::render::sanitize(first.trim());
        let mut message = format!("{setting} `{shown}` failed ({})", output.status);
        if !first.is_empty() {
            message.push_str(": ");
            message.push_str(&first.chars().take(200).collect::<String>());
        }
        return Err(message);
    }
    let value = String::from_utf8(output.stdout)
        .map_err(|_| format!("{setting} `{shown}` printed something that is not text"))?;
    let value = value.trim();
    if value.is_empty() {
        return Err(format!("{setting} `{shown}` printed nothing"));
    }
    Ok(Secret::new(value))
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
        let credential = Credential::Token(TokenCommand::new(command));
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
        let error = run_secret_command(
            "echo s3cr3t | tr 3 e; echo 'not logged in' >&2; exit 3",
            "token_cmd",
        )
        .unwrap_err();
        assert!(error.contains("not logged in"), "{error}");
        assert!(
            !error.contains("secret") && !error.contains("s3cr3t"),
            "{error}"
        );
        assert!(
            run_secret_command("true", "api_key_cmd")
                .unwrap_err()
                .contains("printed nothing")
        );
    }
}
