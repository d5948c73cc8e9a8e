//! HTTP to the Gemini API, Vertex AI, and gateways that speak the Gemini protocol.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::{Map, Value};

use super::Progress;
use super::auth::{Credential, redact_url};
use super::body::{BlobSource, Body};
use super::error::{ApiError, GeminiError};
use super::retry::RetryPolicy;
use super::sse::SseDecoder;
use super::stream::{Assembler, assemble_body};
use super::types::{GenerateContentRequest, GenerateContentResponse};

pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";

/// Which URL scheme the server speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Api {
    /// `{base}/v1beta/models/{model}:...` (Google AI Studio and the gateways).
    Gemini,
    /// `{base}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:...`
    Vertex { project: String, location: String },
    /// Vertex AI express mode, with an API key: `{base}/v1/publishers/google/models/{model}:...`
    VertexExpress,
}

/// The Vertex AI host for a location. Three kinds (Google's "Generative AI on Vertex AI locations" page):
/// `global` has the plain host; the multi-regions `us` and `eu` have `aiplatform.{us,eu}.rep.googleapis.com`;
/// a region such as `us-central1` prefixes the host with its name.
pub fn vertex_base_url(location: &str) -> String {
    match location {
        "global" => "https://aiplatform.googleapis.com".to_string(),
        "us" | "eu" => format!("https://aiplatform.{location}.rep.googleapis.com"),
        region => format!("https://{region}-aiplatform.googleapis.com"),
    }
}

#[derive(Debug)]
pub struct ClientConfig {
    pub base_url: String,
    pub api: Api,
    pub credential: Credential,
    pub connect_timeout: Duration,
    /// The whole request, upload to last byte; image models can think for minutes at 4K.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Requests bigger than this are refused before they are sent.
    pub max_request_bytes: usize,
    /// Vertex-only `imageConfig` fields (`personGeneration`, `imageOutputOptions`) added to every request.
    pub vertex_image_config: Map<String, Value>,
}

#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    config: ClientConfig,
}

impl Client {
    pub fn max_request_bytes(&self) -> usize {
        self.config.max_request_bytes
    }

    pub fn new(config: ClientConfig) -> anyhow::Result<Client> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .user_agent(concat!("peel/", env!("CARGO_PKG_VERSION")));
        if config.base_url.starts_with("http://") {
            // A plain-HTTP server (a local proxy, a test server) needs no certificate: skip loading the system's
            // roots, which is most of building a client (about 5 ms here, ~300 files read and parsed).
            builder = builder.tls_certs_only(std::iter::empty());
        }
        let http = builder.build()?;
        Ok(Client { http, config })
    }

    /// The server's host name (`generativelanguage.googleapis.com`, a gateway's), as recorded with each turn.
    pub fn host(&self) -> Option<String> {
        reqwest::Url::parse(&self.config.base_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
    }

    /// The endpoint without any credential: safe to print.
    pub fn endpoint(&self, model: &str, stream: bool) -> String {
        let base = self.config.base_url.trim_end_matches('/');
        let method = if stream {
            "streamGenerateContent?alt=sse"
        } else {
            "generateContent"
        };
        match &self.config.api {
            Api::Gemini => format!("{base}/v1beta/models/{model}:{method}"),
            Api::Vertex { project, location } => format!(
                "{base}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:{method}"
            ),
            Api::VertexExpress => format!("{base}/v1/publishers/google/models/{model}:{method}"),
        }
    }

    /// One turn: `generateContent`, or `streamGenerateContent` with the parts reported through `progress` as they
    /// arrive. Passing failures are tried again as the retry policy says.
    pub async fn generate(
        &self,
        model: &str,
        request: &GenerateContentRequest,
        blobs: &Arc<dyn BlobSource>,
        stream: bool,
        progress: &dyn Fn(Progress<'_>),
    ) -> Result<GenerateContentResponse, GeminiError> {
        let body = self.body(request, blobs)?;
        self.config
            .retry
            .run(progress, || self.attempt(model, &body, stream, progress))
            .await
    }

    /// The request body, with the Vertex-only image fields added, checked against the size budget. Large values
    /// stay in `blobs` until the body is streamed.
    fn body(
        &self,
        request: &GenerateContentRequest,
        blobs: &Arc<dyn BlobSource>,
    ) -> Result<Body, GeminiError> {
        let encode = |e: serde_json::Error| GeminiError::Malformed(e.to_string());
        let json = if self.config.vertex_image_config.is_empty() {
            serde_json::to_string(request).map_err(encode)?
        } else {
            let mut value = serde_json::to_value(request).map_err(encode)?;
            let image = &mut value["generationConfig"]["imageConfig"];
            if !image.is_object() {
                *image = Value::Object(Map::new());
            }
            if let Value::Object(image) = image {
                image.extend(self.config.vertex_image_config.clone());
            }
            serde_json::to_string(&value).map_err(encode)?
        };
        let body = Body::new(&json, blobs.clone()).map_err(GeminiError::Malformed)?;
        if body.len() > self.config.max_request_bytes as u64 {
            return Err(GeminiError::TooLarge {
                bytes: body.len() as usize,
                limit: self.config.max_request_bytes,
            });
        }
        Ok(body)
    }

    async fn attempt(
        &self,
        model: &str,
        body: &Body,
        stream: bool,
        progress: &dyn Fn(Progress<'_>),
    ) -> Result<GenerateContentResponse, GeminiError> {
        let mut refreshed = false;
        let response = loop {
            let mut url = self.endpoint(model, stream);
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            self.config.credential.apply(&mut headers, &mut url)?;
            headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
            progress(Progress::Sending {
                url: &redact_url(&url),
                bytes: body.len() as usize,
            });
            let response = self
                .http
                .post(&url)
                .headers(headers)
                // Streamed: images and signatures are read and base64-encoded as the bytes go out.
                .body(reqwest::Body::wrap_stream(body.stream()))
                .send()
                .await
                .map_err(|e| self.transport(e))?;
            // An OAuth token can expire between turns: fetch a new one, once.
            if response.status() == StatusCode::UNAUTHORIZED
                && !refreshed
                && self.config.credential.refresh()
            {
                refreshed = true;
                continue;
            }
            break response;
        };
        let status = response.status();
        if !status.is_success() {
            let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
            return Err(GeminiError::Api(
                self.scrub(ApiError::from_body(status.as_u16(), &bytes)),
            ));
        }
        if !stream {
            let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
            return parse_response(&bytes);
        }
        let is_sse = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            // A JSON array of chunks (Vertex without alt=sse) or a gateway that answered in one piece.
            let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
            return assemble_body(&bytes, progress);
        }
        let mut decoder = SseDecoder::new();
        let mut assembler = Assembler::new();
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| self.transport(e))?;
            for event in decoder.push(&chunk) {
                assembler.push_json(&event, progress)?;
            }
        }
        if let Some(event) = decoder.finish() {
            assembler.push_json(&event, progress)?;
        }
        assembler.finish()
    }

    /// reqwest's errors print the URL, which may carry the key: keep only the host and the causes.
    fn transport(&self, error: reqwest::Error) -> GeminiError {
        let host = reqwest::Url::parse(&self.config.base_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "the server".into());
        let retryable = if error.is_timeout() {
            error.is_connect()
        } else {
            error.is_connect() || error.is_request() || error.is_body() || error.is_decode()
        };
        let reason = if error.is_timeout() && !error.is_connect() {
            format!(
                "no complete answer within {} s (timeout)",
                self.config.timeout.as_secs()
            )
        } else if error.is_timeout() {
            format!(
                "no connection within {} s (connect_timeout)",
                self.config.connect_timeout.as_secs()
            )
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
        GeminiError::Transport {
            host,
            reason: self.scrub_text(&redact_url(&reason)),
            retryable,
        }
    }

    fn scrub(&self, mut error: ApiError) -> ApiError {
        error.message = self.scrub_text(&error.message);
        error
    }

    /// A server or a library may echo the credential back; it never reaches the person.
    fn scrub_text(&self, text: &str) -> String {
        match self.config.credential.secret() {
            Some(secret) if !secret.expose().is_empty() => text.replace(secret.expose(), "***"),
            _ => text.to_string(),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemini::auth::Auth;
    use crate::secret::Secret;

    use crate::test_support::fixture;

    fn client(base_url: &str, api: Api) -> Client {
        Client::new(ClientConfig {
            base_url: base_url.into(),
            api,
            credential: Credential::Key {
                key: Secret::new("k"),
                auth: Auth::Header,
            },
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            retry: RetryPolicy::default(),
            max_request_bytes: 1 << 20,
            vertex_image_config: Map::new(),
        })
        .unwrap()
    }

    #[test]
    fn endpoints_for_each_api() {
        let gemini = client("https://g/", Api::Gemini);
        assert_eq!(
            gemini.endpoint("m", false),
            "https://g/v1beta/models/m:generateContent"
        );
        assert_eq!(
            gemini.endpoint("m", true),
            "https://g/v1beta/models/m:streamGenerateContent?alt=sse"
        );
        let vertex = client(
            &vertex_base_url("us-central1"),
            Api::Vertex {
                project: "p".into(),
                location: "us-central1".into(),
            },
        );
        assert_eq!(
            vertex.endpoint("m", false),
            "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/publishers/google/models/m:generateContent"
        );
        assert_eq!(
            vertex_base_url("global"),
            "https://aiplatform.googleapis.com"
        );
        assert_eq!(
            vertex_base_url("eu"),
            "https://aiplatform.eu.rep.googleapis.com"
        );
        let us = client(
            &vertex_base_url("us"),
            Api::Vertex {
                project: "p".into(),
                location: "us".into(),
            },
        );
        assert_eq!(
            us.endpoint("m", false),
            "https://aiplatform.us.rep.googleapis.com/v1/projects/p/locations/us/publishers/google/models/m:generateContent"
        );
        let express = client(&vertex_base_url("global"), Api::VertexExpress);
        assert_eq!(
            express.endpoint("m", true),
            "https://aiplatform.googleapis.com/v1/publishers/google/models/m:streamGenerateContent?alt=sse"
        );
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
    fn oversized_requests_are_refused_before_sending() {
        let client = client("https://g", Api::Gemini);
        let request = GenerateContentRequest {
            contents: vec![super::super::Content::user(vec![super::super::Part::text(
                "x".repeat(2 << 20),
            )])],
            generation_config: Default::default(),
            tools: Vec::new(),
            system_instruction: None,
        };
        let blobs: Arc<dyn BlobSource> = Arc::new(super::super::body::NoBlobs);
        assert!(matches!(
            client.body(&request, &blobs),
            Err(GeminiError::TooLarge { .. })
        ));
    }
}
