//! Errors from the API, typed where the caller branches on the kind (retry, auth, invalid request).

use std::time::Duration;

use serde_json::Value;

use crate::text::sanitize;

/// Why a request did not produce a response we can use.
#[derive(Debug, thiserror::Error)]
pub enum GeminiError {
    /// The server answered with an error status.
    #[error("{0}")]
    Api(ApiError),
    /// The request never got a complete answer (connection refused, reset, timed out).
    #[error("could not reach {host}: {reason}")]
    Transport {
        host: String,
        reason: String,
        /// A reset or refused connection is worth another try; a request that ran out its whole timeout is not.
        retryable: bool,
    },
    /// A 2xx whose body is not a Gemini response.
    #[error("the server's answer is not a Gemini response: {0}")]
    Malformed(String),
    /// A stream that ended (after this many events) before the model said it was done.
    #[error("the answer stopped after {0} stream event(s), before the model finished")]
    Incomplete(usize),
    /// The request is bigger than the configured budget; nothing was sent.
    #[error(
        "the request would be {:.1} MB, over the {:.0} MB budget (max_request_mb); start a new session from the \
         current image, or raise max_request_mb in the config file",
        *bytes as f64 / 1e6,
        *limit as f64 / 1e6
    )]
    TooLarge { bytes: usize, limit: usize },
    /// No credential to send: the key or token command failed.
    #[error("{0}")]
    Credential(String),
    /// The Interactions API no longer has the conversation state a turn named with `previous_interaction_id`
    /// (expired, stored with `store=false`, made with another key or project, deleted): the caller can send the
    /// whole thread from its own store instead. `error` is the server's answer.
    #[error("the server no longer has interaction {id}: {error}")]
    InteractionGone { id: String, error: ApiError },
    /// What was asked is not offered by this kind of server (the Batch and Files APIs on Vertex AI, say).
    #[error("{0}")]
    Unsupported(String),
    /// The answer grew past the response size limit; the rest was not read.
    #[error(
        "the answer passed the {} limit (max_response_mb) and was not read further; nothing was recorded",
        crate::text::bytes(*limit)
    )]
    ResponseTooLarge { limit: u64 },
    /// The answer stopped arriving: no byte for this long.
    #[error(
        "the answer stopped arriving: nothing for {} s (idle_timeout); nothing was recorded",
        idle.as_secs()
    )]
    Stalled { idle: Duration },
    /// The request would go to a URL built from a value that is not a valid identifier.
    #[error("{0}")]
    Invalid(String),
    /// Every allowed attempt failed; the last failure says why.
    #[error("gave up after {attempts} attempts: {last}")]
    GaveUp {
        attempts: u32,
        last: Box<GeminiError>,
    },
}

impl GeminiError {
    /// The error with every string that came from outside passed through `clean` (the sanitiser and the credential
    /// scrubber): what a server, a gateway or a library said never reaches the terminal as it was.
    pub fn map_text(self, clean: &dyn Fn(&str) -> String) -> GeminiError {
        match self {
            GeminiError::Api(mut e) => {
                e.message = clean(&e.message);
                e.status = e.status.map(|s| clean(&s));
                e.reason = e.reason.map(|s| clean(&s));
                GeminiError::Api(e)
            }
            GeminiError::Transport {
                host,
                reason,
                retryable,
            } => GeminiError::Transport {
                host: clean(&host),
                reason: clean(&reason),
                retryable,
            },
            GeminiError::Malformed(m) => GeminiError::Malformed(clean(&m)),
            GeminiError::Credential(m) => GeminiError::Credential(clean(&m)),
            GeminiError::Invalid(m) => GeminiError::Invalid(clean(&m)),
            GeminiError::GaveUp { attempts, last } => GeminiError::GaveUp {
                attempts,
                last: Box::new(last.map_text(clean)),
            },
            other => other,
        }
    }

    /// Worth another attempt after a wait.
    pub fn is_retryable(&self) -> bool {
        match self {
            GeminiError::Api(e) => e.is_retryable(),
            GeminiError::Transport { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// How long the server asked us to wait (RetryInfo), if it did.
    pub fn retry_delay(&self) -> Option<Duration> {
        match self {
            GeminiError::Api(e) => e.retry_delay,
            _ => None,
        }
    }

    /// One short line for a spinner: `503 The model is overloaded`.
    pub fn short(&self) -> String {
        match self {
            GeminiError::Api(e) => {
                let first = e.message.split(". ").next().unwrap_or_default();
                format!("{} {}", e.http_status, first.trim_end_matches('.'))
            }
            // The innermost cause says it best ("Connection refused (os error 111)").
            GeminiError::Transport { host, reason, .. } => {
                format!("{host}: {}", reason.rsplit(": ").next().unwrap_or(reason))
            }
            other => other.to_string(),
        }
    }
}

/// An HTTP error answer, from Google's shape `{"error": {code, message, status, details}}`, Vertex's one-element
/// array of it, or a gateway's OpenAI-style `{"error": {message, type, code}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub http_status: u16,
    /// `RESOURCE_EXHAUSTED`, `INVALID_ARGUMENT`, ... or a gateway's own code.
    pub status: Option<String>,
    pub message: String,
    /// From a `google.rpc.ErrorInfo` detail (`API_KEY_INVALID`, ...).
    pub reason: Option<String>,
    /// From a `google.rpc.RetryInfo` detail.
    pub retry_delay: Option<Duration>,
    /// A `google.rpc.QuotaFailure` detail was present (a per-minute quota, worth waiting for).
    pub quota_failure: bool,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.http_status)?;
        if let Some(status) = &self.status {
            write!(f, " {status}")?;
        }
        if let Some(reason) = &self.reason {
            write!(f, " ({reason})")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = self.hint() {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl ApiError {
    /// Parses an error body; a body that is not JSON still yields an error with its (sanitised, shortened) text.
    pub fn from_body(http_status: u16, body: &[u8]) -> ApiError {
        let mut error = ApiError {
            http_status,
            status: None,
            message: String::new(),
            reason: None,
            retry_delay: None,
            quota_failure: false,
        };
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        // Vertex sometimes wraps the error in a one-element array.
        let inner = parsed.as_ref().map(|v| match v {
            Value::Array(items) => items.first().unwrap_or(v),
            _ => v,
        });
        match inner.and_then(|v| v.get("error")) {
            Some(Value::Object(e)) => {
                error.message = e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                error.status = e
                    .get("status")
                    .and_then(Value::as_str)
                    .or_else(|| e.get("type").and_then(Value::as_str))
                    .map(str::to_string);
                // Gateways put a string in `code`; Google puts the HTTP status number there.
                if let Some(code) = e.get("code").and_then(Value::as_str)
                    && error.status.is_none()
                {
                    error.status = Some(code.to_string());
                }
                for detail in e
                    .get("details")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let kind = detail
                        .get("@type")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    if kind.ends_with("google.rpc.RetryInfo") {
                        error.retry_delay = detail
                            .get("retryDelay")
                            .and_then(Value::as_str)
                            .and_then(parse_duration);
                    } else if kind.ends_with("google.rpc.QuotaFailure") {
                        error.quota_failure = true;
                    } else if kind.ends_with("google.rpc.ErrorInfo") {
                        error.reason = detail
                            .get("reason")
                            .and_then(Value::as_str)
                            .map(str::to_string);
                    }
                }
            }
            Some(Value::String(message)) => error.message = message.clone(),
            _ => {}
        }
        if error.message.is_empty() {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            error.message = if text.is_empty() {
                "(empty body)".to_string()
            } else {
                text.chars().take(300).collect()
            };
        }
        // Every field is printed; every field came from the server.
        error.message = sanitize(&error.message);
        error.status = error.status.map(|s| sanitize(&s));
        error.reason = error.reason.map(|s| sanitize(&s));
        error
    }

    /// An error payload (a google.rpc Status) that came inside a 2xx body or a batch result, read as an error body.
    pub fn from_status(http_status: u16, status: &Value) -> ApiError {
        let body = serde_json::json!({ "error": status });
        ApiError::from_body(http_status, body.to_string().as_bytes())
    }

    /// Worth sending again after a wait: overload, server faults, and per-minute quotas that say when to come back.
    pub fn is_retryable(&self) -> bool {
        match self.http_status {
            429 => self.retry_delay.is_some() || self.quota_failure,
            500 | 502 | 503 | 504 => true,
            _ => false,
        }
    }

    /// A 400 about the thought signatures of the history sent: Google's "missing a thought_signature" and
    /// "Corrupted thought signature", Vertex AI's "Thought signature is not valid", or the finish reason's name.
    pub fn is_signature_refusal(&self) -> bool {
        let message = self.message.to_ascii_lowercase();
        self.http_status == 400
            && (message.contains("thought_signature") || message.contains("thought signature"))
    }

    pub fn is_auth(&self) -> bool {
        matches!(self.http_status, 401 | 403) || self.reason.as_deref() == Some("API_KEY_INVALID")
    }

    fn hint(&self) -> Option<&'static str> {
        if self.is_auth() {
            Some(
                "check the key (GEMINI_API_KEY, GOOGLE_API_KEY, or the profile's api_key_env, api_key_cmd or \
                 token_cmd) and that it may use this model",
            )
        } else if self.http_status == 429 && !self.is_retryable() {
            Some("the quota or prepaid credit is used up; waiting will not help")
        } else if self.http_status == 404 && self.message.contains("models/") {
            Some("check the model id (-m); `peel --help` lists the known ones")
        } else if self.is_signature_refusal() {
            Some(
                "the model did not accept the thought signatures of earlier turns (turns it cannot check, such as \
                 a gateway's changed copies or a hand-edited history); nothing was recorded: /context last N sends \
                 only the last N turns, or /fresh starts a new branch from the current image",
            )
        } else {
            None
        }
    }
}

/// Google's durations are strings like "34.4s".
fn parse_duration(text: &str) -> Option<Duration> {
    let seconds: f64 = text.strip_suffix('s')?.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_support::fixture;

    #[test]
    fn retry_info_and_quota_failure_are_read() {
        let e = ApiError::from_body(429, &fixture("error-429-retry-info.json"));
        assert_eq!(e.status.as_deref(), Some("RESOURCE_EXHAUSTED"));
        assert_eq!(e.retry_delay, Some(Duration::from_millis(34_400)));
        assert!(e.quota_failure);
        assert!(e.is_retryable());
    }

    #[test]
    fn missing_signature_error_is_not_retryable() {
        let e = ApiError::from_body(400, &fixture("error-400-missing-image-signature.json"));
        assert!(!e.is_retryable());
        assert!(
            e.message
                .starts_with("Image part is missing a thought_signature in content position 3")
        );
        assert!(
            e.to_string()
                .starts_with("400 INVALID_ARGUMENT: Image part")
        );
        let shown = e.to_string();
        assert!(
            shown.contains("/fresh") && shown.contains("/context last N"),
            "{shown}"
        );
        assert!(!shown.contains("peel bug"), "{shown}");
        for message in [
            "Corrupted thought signature.",
            "Unable to submit request because Thought signature is not valid.. Learn more: https://x",
            "Text part is missing a thought_signature in content position 2, part position 1.",
        ] {
            let body = serde_json::json!({"error": {"code": 400, "message": message}}).to_string();
            let e = ApiError::from_body(400, body.as_bytes());
            assert!(e.is_signature_refusal(), "{message}");
            assert!(e.to_string().contains("/fresh"), "{message}");
        }
    }

    #[test]
    fn an_unsupported_thinking_level_is_final() {
        let e = ApiError::from_body(400, &fixture("error-400-thinking-level.json"));
        assert!(!e.is_retryable());
        assert!(
            e.message
                .starts_with("Thinking level MINIMAL is not supported")
        );
    }

    #[test]
    fn gateway_and_vertex_shapes() {
        let e = ApiError::from_body(
            402,
            br#"{"error":{"message":"insufficient balance","type":"billing","param":null,"code":"insufficient_quota"}}"#,
        );
        assert_eq!(e.status.as_deref(), Some("billing"));
        assert_eq!(e.message, "insufficient balance");
        let e = ApiError::from_body(503, br#"[{"error":{"code":503,"message":"The model is overloaded","status":"UNAVAILABLE"}}]"#);
        assert_eq!(e.message, "The model is overloaded");
        assert!(e.is_retryable());
        let e = ApiError::from_body(429, br#"{"error":{"code":429,"message":"prepayment credits are depleted","status":"RESOURCE_EXHAUSTED"}}"#);
        assert!(!e.is_retryable());
    }

    #[test]
    fn garbage_bodies_become_readable_errors() {
        let e = ApiError::from_body(502, b"<html>\x1b[31mBad gateway</html>");
        assert_eq!(e.http_status, 502);
        assert!(!e.message.contains('\x1b'));
        let e = ApiError::from_body(500, b"");
        assert_eq!(e.message, "(empty body)");
    }

    /// Issue 9: status, type, code and ErrorInfo reason were printed raw (an OSC 52 clipboard write and a title
    /// change ran). Every field is sanitised now, in Google's and gateways' shapes.
    #[test]
    fn every_field_of_an_error_is_inert() {
        let evil = "\u{1b}]52;c;cGF5bG9hZA==\u{7}\u{1b}]0;pwned\u{7}\u{202e}";
        let bodies = [
            serde_json::json!({"error": {"code": 400, "message": evil, "status": evil,
                "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": evil}]}}),
            serde_json::json!({"error": {"message": evil, "type": evil, "code": evil}}),
            serde_json::json!({"error": {"message": evil, "code": evil}}),
            serde_json::json!([{"error": {"code": 429, "message": evil, "status": evil}}]),
            serde_json::json!({"error": evil}),
        ];
        for body in bodies {
            let e = ApiError::from_body(400, body.to_string().as_bytes());
            let shown = GeminiError::Api(e.clone()).to_string();
            assert!(crate::untrusted::is_inert(&shown), "{shown:?}");
            assert!(shown.contains("]52;c;"), "still readable: {shown}");
        }
    }
}
