//! HTTP to the Gemini API and to gateways that speak its protocol.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};

use super::error::{ApiError, GeminiError};
use super::types::{GenerateContentRequest, GenerateContentResponse};
use crate::secret::Secret;

pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";

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

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub base_url: String,
    pub auth: Auth,
    pub key: Secret,
    pub connect_timeout: Duration,
    /// The whole request, upload to last byte; image models can think for minutes at 4K.
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    config: ClientConfig,
}

impl Client {
    pub fn new(config: ClientConfig) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .user_agent(concat!("peel/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Client { http, config })
    }

    /// The endpoint without any credential: safe to print.
    pub fn endpoint(&self, model: &str) -> String {
        format!(
            "{}/v1beta/models/{model}:generateContent",
            self.config.base_url.trim_end_matches('/')
        )
    }

    /// One `generateContent` call.
    pub async fn generate(
        &self,
        model: &str,
        request: &GenerateContentRequest,
    ) -> Result<GenerateContentResponse, GeminiError> {
        let body =
            serde_json::to_vec(request).map_err(|e| GeminiError::Malformed(e.to_string()))?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let mut url = self.endpoint(model);
        let key = self.config.key.expose();
        match self.config.auth {
            Auth::Header => {
                headers.insert("x-goog-api-key", secret_header(key)?);
            }
            Auth::Bearer => {
                headers.insert(
                    reqwest::header::AUTHORIZATION,
                    secret_header(&format!("Bearer {key}"))?,
                );
            }
            Auth::Query => {
                url.push_str("?key=");
                url.push_str(&percent_encode(key));
            }
        }
        let response = self
            .http
            .post(&url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
        if !status.is_success() {
            return Err(GeminiError::Api(ApiError::from_body(
                status.as_u16(),
                &bytes,
            )));
        }
        parse_response(&bytes)
    }

    /// reqwest's errors print the URL, which may carry the key: keep only the host and the causes.
    fn transport(&self, error: reqwest::Error) -> GeminiError {
        let host = reqwest::Url::parse(&self.config.base_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "the server".into());
        let reason = if error.is_timeout() {
            "timed out".to_string()
        } else {
            let error = error.without_url();
            let mut reason = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                reason.push_str(": ");
                reason.push_str(&cause.to_string());
                source = cause.source();
            }
            reason
        };
        let key = self.config.key.expose();
        let reason = if key.is_empty() {
            reason
        } else {
            reason.replace(key, "***")
        };
        GeminiError::Transport { host, reason }
    }
}

/// A 2xx body: one response, or (Vertex) a one-element array of it.
pub fn parse_response(bytes: &[u8]) -> Result<GenerateContentResponse, GeminiError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| GeminiError::Malformed(e.to_string()))?;
    let value = match value {
        serde_json::Value::Array(mut items) if items.len() == 1 => items.remove(0),
        other => other,
    };
    if let Some(error) = value.get("error") {
        let body = serde_json::json!({ "error": error });
        return Err(GeminiError::Api(ApiError::from_body(
            200,
            body.to_string().as_bytes(),
        )));
    }
    serde_json::from_value(value).map_err(|e| GeminiError::Malformed(e.to_string()))
}

fn secret_header(value: &str) -> Result<HeaderValue, GeminiError> {
    let mut header = HeaderValue::from_str(value).map_err(|_| {
        GeminiError::Malformed("the API key contains characters that cannot go in a header".into())
    })?;
    header.set_sensitive(true);
    Ok(header)
}

fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn real_responses_parse() {
        let r = parse_response(&fixture("response-3.1-flash-image-redacted.json")).unwrap();
        let part = &r.candidates[0].content.as_ref().unwrap().parts[0];
        assert!(
            part.thought_signature
                .as_deref()
                .unwrap()
                .starts_with("<redacted")
        );
        assert_eq!(r.usage_metadata.unwrap().candidates_token_count, Some(1392));
        let r = parse_response(&fixture("response-no-image.json")).unwrap();
        assert_eq!(r.candidates[0].finish_reason.as_deref(), Some("NO_IMAGE"));
        let r = parse_response(&fixture("response-prompt-blocked.json")).unwrap();
        assert!(r.candidates.is_empty());
        assert_eq!(
            r.prompt_feedback.unwrap().block_reason.as_deref(),
            Some("PROHIBITED_CONTENT")
        );
        let r = parse_response(&fixture("response-image-safety-via-proxy.json")).unwrap();
        assert_eq!(
            r.candidates[0].finish_reason.as_deref(),
            Some("IMAGE_SAFETY")
        );
        assert!(r.candidates[0].content.as_ref().unwrap().parts.is_empty());
    }

    #[test]
    fn error_payload_in_a_200_is_an_error() {
        let e =
            parse_response(br#"{"error":{"code":500,"message":"internal","status":"INTERNAL"}}"#)
                .unwrap_err();
        assert!(matches!(e, GeminiError::Api(ApiError { message, .. }) if message == "internal"));
        assert!(matches!(
            parse_response(b"<html>"),
            Err(GeminiError::Malformed(_))
        ));
    }

    #[test]
    fn query_keys_are_escaped() {
        assert_eq!(percent_encode("a b&c=d"), "a%20b%26c%3Dd");
    }
}
