//! HTTP to the Gemini API, Vertex AI, and gateways that speak the Gemini protocol.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value};

use super::Progress;
use super::auth::{Credential, redact_url};
use super::body::{BlobSource, Body};
use super::error::{ApiError, GeminiError};
use super::retry::RetryPolicy;
use super::sse::SseDecoder;
use super::stream::{Assembler, assemble_body};
use super::types::{Content, GenerateContentRequest, GenerateContentResponse};

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
    /// An answer bigger than this is not read further (`max_response_mb`).
    pub max_response_bytes: u64,
    /// An answer that sends nothing for this long is given up (`idle_timeout`).
    pub idle_timeout: Duration,
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
            .user_agent(concat!("peel/", env!("CARGO_PKG_VERSION")))
            // reqwest strips only `Authorization` and cookies when a redirect leaves the host: `x-goog-api-key`
            // would follow to wherever a server points. Redirects are followed within one origin only; a redirect
            // elsewhere comes back as the answer, for the caller to follow without the credential (or refuse).
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let same_origin = attempt
                    .previous()
                    .last()
                    .is_some_and(|previous| previous.origin() == attempt.url().origin());
                if !same_origin || attempt.previous().len() > 10 {
                    attempt.stop()
                } else {
                    attempt.follow()
                }
            }));
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

    /// The endpoint without any credential: safe to print. The model id goes into the path, so it is checked by
    /// the same rule as a typed one first (an id from an imported thread must not reach another path).
    pub fn endpoint(&self, model: &str, stream: bool) -> Result<String, GeminiError> {
        crate::names::validate_model_id(model).map_err(|e| GeminiError::Invalid(e.to_string()))?;
        let base = self.config.base_url.trim_end_matches('/');
        let method = if stream {
            "streamGenerateContent?alt=sse"
        } else {
            "generateContent"
        };
        Ok(match &self.config.api {
            Api::Gemini => format!("{base}/v1beta/models/{model}:{method}"),
            Api::Vertex { project, location } => format!(
                "{base}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:{method}"
            ),
            Api::VertexExpress => format!("{base}/v1/publishers/google/models/{model}:{method}"),
        })
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
        let progress = self.scrubbing(progress);
        let body = self.body(request, blobs).map_err(|e| self.clean(e))?;
        let mut response = self
            .config
            .retry
            .run(&progress, || async {
                self.attempt(model, &body, stream, &progress)
                    .await
                    .map_err(|e| self.clean(e))
            })
            .await
            .map_err(|e| self.clean(e))?;
        self.scrub_response(&mut response);
        Ok(response)
    }

    /// The request body, with the Vertex-only image fields added, checked against the size budget. Large values
    /// stay in `blobs` until the body is streamed.
    fn body(
        &self,
        request: &GenerateContentRequest,
        blobs: &Arc<dyn BlobSource>,
    ) -> Result<Body, GeminiError> {
        let body =
            Body::with_image_config(request, &self.config.vertex_image_config, blobs.clone())
                .map_err(GeminiError::Malformed)?;
        self.budgeted(body)
    }

    async fn attempt(
        &self,
        model: &str,
        body: &Body,
        stream: bool,
        progress: &dyn Fn(Progress<'_>),
    ) -> Result<GenerateContentResponse, GeminiError> {
        let url = self.endpoint(model, stream)?;
        let response = self
            .send(Method::POST, &url, &HeaderMap::new(), Some(body), progress)
            .await?;
        if !stream {
            return parse_response(&self.read_answer(response).await?);
        }
        if !is_event_stream(&response) {
            // A JSON array of chunks (Vertex without alt=sse) or a gateway that answered in one piece.
            return assemble_body(&self.read_answer(response).await?, progress);
        }
        let mut assembler = Assembler::new();
        self.read_events(response, |event| assembler.push_json(event, progress))
            .await?;
        assembler.finish()
    }

    /// A whole answer, read as it arrives within the response limit (`max_response_bytes`) and the idle timeout.
    pub(super) async fn read_answer(
        &self,
        response: reqwest::Response,
    ) -> Result<Vec<u8>, GeminiError> {
        self.read_body(response, self.config.max_response_bytes, false)
            .await
    }

    /// A server-sent event stream, each event's data handed to `each` as it arrives, within the response limit
    /// (all events together) and the idle timeout (between chunks).
    pub(super) async fn read_events(
        &self,
        response: reqwest::Response,
        mut each: impl FnMut(&[u8]) -> Result<(), GeminiError>,
    ) -> Result<(), GeminiError> {
        let mut decoder = SseDecoder::new();
        let mut chunks = response.bytes_stream();
        let mut received = 0u64;
        while let Some(chunk) = self.next_chunk(&mut chunks).await? {
            received += chunk.len() as u64;
            if received > self.config.max_response_bytes {
                return Err(GeminiError::ResponseTooLarge {
                    limit: self.config.max_response_bytes,
                });
            }
            for event in decoder.push(&chunk) {
                each(&event)?;
            }
        }
        match decoder.finish() {
            Some(event) => each(&event),
            None => Ok(()),
        }
    }

    /// One call whose whole (small) answer is wanted: sent, checked and read as [`Client::read_answer`] reads,
    /// tried again as the retry policy says.
    pub(super) async fn call(
        &self,
        method: Method,
        url: &str,
        headers: &HeaderMap,
        body: Option<&Body>,
        progress: &dyn Fn(Progress<'_>),
    ) -> Result<Vec<u8>, GeminiError> {
        self.config
            .retry
            .run(progress, || async {
                let response = self
                    .send(method.clone(), url, headers, body, progress)
                    .await?;
                self.read_answer(response).await
            })
            .await
    }

    /// One call whose answer says nothing peel needs (a delete, a cancel): sent and checked, its body left unread,
    /// tried again as the retry policy says.
    pub(super) async fn call_unanswered(
        &self,
        method: Method,
        url: &str,
        headers: &HeaderMap,
        body: Option<&Body>,
    ) -> Result<(), GeminiError> {
        let quiet = |_: Progress<'_>| {};
        self.config
            .retry
            .run(&quiet, || async {
                self.send(method.clone(), url, headers, body, &quiet)
                    .await
                    .map(drop)
            })
            .await
    }

    /// One HTTP exchange with the credential applied (an OAuth token that expired between turns is fetched again,
    /// once). A body goes out as JSON, streamed; `headers` are added as they are. The answer of a 2xx is returned
    /// unread; any other status becomes [`GeminiError::Api`], its text scrubbed of the credential. The Gemini API,
    /// the Interactions API, the Batch API and the Files API all go through here.
    pub(super) async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &HeaderMap,
        body: Option<&Body>,
        progress: &dyn Fn(Progress<'_>),
    ) -> Result<reqwest::Response, GeminiError> {
        let response = self.send_raw(method, url, headers, body, progress).await?;
        self.success(response).await
    }

    /// The answer of a 2xx; any other status as [`GeminiError::Api`].
    pub(super) async fn success(
        &self,
        response: reqwest::Response,
    ) -> Result<reqwest::Response, GeminiError> {
        let status = response.status();
        if !status.is_success() {
            // An error body is a few hundred bytes; whatever more a server sends is not read.
            let bytes = self.read_body(response, MAX_ERROR_BODY, true).await?;
            return Err(self.clean(GeminiError::Api(ApiError::from_body(
                status.as_u16(),
                &bytes,
            ))));
        }
        Ok(response)
    }

    /// [`Client::send`] without the status check: a redirect to another origin comes back as it is.
    pub(super) async fn send_raw(
        &self,
        method: Method,
        url: &str,
        headers: &HeaderMap,
        body: Option<&Body>,
        progress: &dyn Fn(Progress<'_>),
    ) -> Result<reqwest::Response, GeminiError> {
        let mut refreshed = false;
        let response = loop {
            let mut url = url.to_string();
            let mut all = headers.clone();
            self.config.credential.apply(&mut all, &mut url)?;
            let mut request = self.http.request(method.clone(), &url);
            if let Some(body) = body {
                if !all.contains_key(CONTENT_TYPE) {
                    all.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
                all.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
                progress(Progress::Sending {
                    url: &redact_url(&url),
                    bytes: body.len() as usize,
                });
                // Streamed: images and signatures are read and base64-encoded as the bytes go out.
                request = request.body(reqwest::Body::wrap_stream(body.stream()));
            }
            let response = request
                .headers(all)
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
        Ok(response)
    }

    /// The base URL without a trailing slash.
    pub(super) fn base_url(&self) -> &str {
        self.config.base_url.trim_end_matches('/')
    }

    pub(super) fn api(&self) -> &Api {
        &self.config.api
    }

    pub(super) fn retry_policy(&self) -> &RetryPolicy {
        &self.config.retry
    }

    /// A request body checked against the size budget, as [`Client::generate`] checks its own.
    pub(super) fn budgeted(&self, body: Body) -> Result<Body, GeminiError> {
        if body.len() > self.config.max_request_bytes as u64 {
            return Err(GeminiError::TooLarge {
                bytes: body.len() as usize,
                limit: self.config.max_request_bytes,
            });
        }
        Ok(body)
    }

    /// The next chunk of a body, or the end; an error when nothing arrives within the idle timeout.
    pub(super) async fn next_chunk(
        &self,
        chunks: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    ) -> Result<Option<bytes::Bytes>, GeminiError> {
        match tokio::time::timeout(self.config.idle_timeout, chunks.next()).await {
            Err(_) => Err(GeminiError::Stalled {
                idle: self.config.idle_timeout,
            }),
            Ok(None) => Ok(None),
            Ok(Some(chunk)) => chunk.map(Some).map_err(|e| self.transport(e)),
        }
    }

    /// A whole body of at most `limit` bytes, read as it arrives (never more than `limit` plus one chunk). With
    /// `truncate`, a longer body is cut at `limit` instead of refused (for error bodies, which are shown, not used).
    pub(super) async fn read_body(
        &self,
        response: reqwest::Response,
        limit: u64,
        truncate: bool,
    ) -> Result<Vec<u8>, GeminiError> {
        let limit_bytes = usize::try_from(limit).unwrap_or(usize::MAX);
        // Room for the whole body at once when the server says how long it is: no copies as it grows.
        let mut body = Vec::new();
        if let Some(length) = response.content_length().filter(|&n| n <= limit) {
            let _ = body.try_reserve_exact(length as usize);
        }
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = self.next_chunk(&mut chunks).await? {
            let wanted = body.len() + chunk.len();
            if wanted > limit_bytes {
                if truncate {
                    let room = limit_bytes.saturating_sub(body.len());
                    body.extend_from_slice(&chunk[..room.min(chunk.len())]);
                    break;
                }
                return Err(GeminiError::ResponseTooLarge { limit });
            }
            if wanted > body.capacity() && wanted > GROWN_AT {
                // A body of unknown length past its first megabyte: room up to the limit at once. Doubling would
                // leave each outgrown buffer in the heap, which keeps freed memory (main.rs), about as much again
                // as the body; a buffer this large is mapped on its own and only the pages written are resident.
                let room = limit_bytes.min(MAX_ROOM_AT_ONCE).max(wanted);
                let _ = body.try_reserve_exact(room - body.len());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Whether `url` is on the configured server (same scheme, host and port): only there may the credential go.
    pub(super) fn same_origin(&self, url: &reqwest::Url) -> bool {
        reqwest::Url::parse(&self.config.base_url).is_ok_and(|base| base.origin() == url.origin())
    }

    /// A plain GET that carries no credential: for URLs on other hosts (a generated image served from storage).
    pub(super) async fn get_without_credential(
        &self,
        url: reqwest::Url,
    ) -> Result<reqwest::Response, GeminiError> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        self.success(response).await
    }

    /// reqwest's errors print the URL, which may carry the key: keep only the host and the causes.
    pub(super) fn transport(&self, error: reqwest::Error) -> GeminiError {
        let host = self.host().unwrap_or_else(|| "the server".into());
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
            reason: redact_url(&reason),
            retryable,
        }
    }

    /// An error fit for the terminal: every string sanitised and without the credential.
    fn clean(&self, error: GeminiError) -> GeminiError {
        error.map_text(&|text| crate::untrusted::sanitize(&self.scrub_text(text)))
    }

    /// `progress` with what the server says as it streams (shown at once) cleared of the credential, if it echoes
    /// it.
    pub(super) fn scrubbing<'a>(
        &'a self,
        progress: &'a dyn Fn(Progress<'_>),
    ) -> impl Fn(Progress<'_>) + 'a {
        move |p: Progress<'_>| match p {
            Progress::Thought(text) if self.holds_secret(text) => {
                progress(Progress::Thought(&self.scrub_text(text)))
            }
            Progress::Text(text) if self.holds_secret(text) => {
                progress(Progress::Text(&self.scrub_text(text)))
            }
            other => progress(other),
        }
    }

    /// `text` without the credential (the same text when it holds none, as an honest answer's never does).
    pub fn scrubbed(&self, text: String) -> String {
        if self.holds_secret(&text) {
            self.scrub_text(&text)
        } else {
            text
        }
    }

    fn holds_secret(&self, text: &str) -> bool {
        self.config
            .credential
            .secret()
            .is_some_and(|s| crate::untrusted::contains_secret(text, s.expose()))
    }

    /// A server or a library may echo the credential back; it never reaches the person.
    fn scrub_text(&self, text: &str) -> String {
        match self.config.credential.secret() {
            Some(secret) => crate::untrusted::scrub(text, secret.expose()),
            None => text.to_string(),
        }
    }

    /// The credential out of every string of an answer's content (one that did not come through
    /// [`Client::generate`], which does this itself).
    pub fn scrub_content(&self, content: &mut Content) {
        if let Some(fix) = self.fixer() {
            scrub_content(content, &fix);
        }
    }

    /// What replaces the credential in a string, `None` when there is no credential to look for.
    fn fixer(&self) -> Option<impl Fn(&mut String)> {
        let secret = (self.config.credential.secret()).filter(|s| !s.expose().is_empty())?;
        Some(move |text: &mut String| {
            if crate::untrusted::contains_secret(text, secret.expose()) {
                *text = crate::untrusted::scrub(text, secret.expose());
            }
        })
    }

    /// The credential out of every string of an answer (a hostile gateway could put it in the model's text, where
    /// it would be stored, exported and shown). An honest answer never holds it, so nothing changes then.
    fn scrub_response(&self, response: &mut GenerateContentResponse) {
        let Some(fix) = self.fixer() else {
            return;
        };
        let fix: &dyn Fn(&mut String) = &fix;
        let fix_map = |map: &mut Map<String, Value>| {
            for value in map.values_mut() {
                scrub_value(value, fix);
            }
        };
        for candidate in &mut response.candidates {
            if let Some(content) = &mut candidate.content {
                scrub_content(content, fix);
            }
            candidate.finish_reason.as_mut().map(fix);
            candidate.finish_message.as_mut().map(fix);
            if let Some(grounding) = &mut candidate.grounding_metadata {
                scrub_value(grounding, &fix);
            }
            fix_map(&mut candidate.extra);
        }
        if let Some(feedback) = &mut response.prompt_feedback {
            feedback.block_reason.as_mut().map(fix);
            feedback.block_reason_message.as_mut().map(fix);
            fix_map(&mut feedback.extra);
        }
        if let Some(usage) = &mut response.usage_metadata {
            fix_map(&mut usage.extra);
        }
        response.model_version.as_mut().map(fix);
        response.response_id.as_mut().map(fix);
        fix_map(&mut response.extra);
    }
}

/// Every string of a content through `fix`.
fn scrub_content(content: &mut Content, fix: &dyn Fn(&mut String)) {
    let fix_map = |map: &mut Map<String, Value>| {
        for value in map.values_mut() {
            scrub_value(value, fix);
        }
    };
    for part in &mut content.parts {
        part.text.as_mut().map(fix);
        part.thought_signature.as_mut().map(fix);
        if let Some(inline) = &mut part.inline_data {
            fix(&mut inline.data);
            fix(&mut inline.mime_type);
            fix_map(&mut inline.extra);
        }
        fix_map(&mut part.extra);
    }
    content.role.as_mut().map(fix);
    fix_map(&mut content.extra);
}

/// Every string in a JSON value (keys too) through `fix`.
fn scrub_value(value: &mut Value, fix: &dyn Fn(&mut String)) {
    match value {
        Value::String(text) => fix(text),
        Value::Array(items) => items.iter_mut().for_each(|v| scrub_value(v, fix)),
        Value::Object(map) => {
            let entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
            for (mut key, mut v) in entries {
                fix(&mut key);
                scrub_value(&mut v, fix);
                map.insert(key, v);
            }
        }
        _ => {}
    }
}

/// Error bodies beyond this are not read: a few hundred bytes say what went wrong.
const MAX_ERROR_BODY: u64 = 64 * 1024;

/// A body of unknown length that grows past this gets room up to its limit at once ([`Client::read_body`]).
const GROWN_AT: usize = 1 << 20;

/// The most room taken at once for a body of unknown length; past it, the body grows as usual.
const MAX_ROOM_AT_ONCE: usize = 256 << 20;

/// Whether an answer is a server-sent event stream (a server asked to stream may still answer in one piece).
pub(super) fn is_event_stream(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// A 2xx body: one response, or (Vertex) a one-element array of it.
pub fn parse_response(bytes: &[u8]) -> Result<GenerateContentResponse, GeminiError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| GeminiError::Malformed(e.to_string()))?;
    let value = match value {
        serde_json::Value::Array(mut items) if items.len() == 1 => items.remove(0),
        other => other,
    };
    from_json(value)
}

/// A 2xx JSON body of the type wanted, or the error payload some servers put in a 200.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, GeminiError> {
    from_json(serde_json::from_slice(bytes).map_err(|e| GeminiError::Malformed(e.to_string()))?)
}

fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, GeminiError> {
    if let Some(error) = value.get("error") {
        return Err(GeminiError::Api(ApiError::from_status(200, error)));
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
            max_response_bytes: 1 << 20,
            idle_timeout: Duration::from_secs(1),
            vertex_image_config: Map::new(),
        })
        .unwrap()
    }

    /// What the Interactions transport keeps and shows goes through the same scrubbing as generateContent's.
    #[test]
    fn the_credential_is_scrubbed_from_streamed_text_and_kept_content() {
        let mut config = client("https://g/", Api::Gemini).config;
        config.credential = Credential::Key {
            key: Secret::new("sekrit-key-123"),
            auth: Auth::Header,
        };
        let client = Client::new(config).unwrap();
        let mut image = crate::gemini::types::Part::image("image/png", "AAsekrit-key-123".into());
        image.thought_signature = Some("sig sekrit-key-123".into());
        image.extra.insert(
            "note".into(),
            serde_json::json!({"deep": ["sekrit-key-123"]}),
        );
        let mut content = Content {
            role: Some("model".into()),
            parts: vec![
                crate::gemini::types::Part::text("the key is sekrit-key-123"),
                image,
            ],
            extra: Map::new(),
        };
        client.scrub_content(&mut content);
        let kept = serde_json::to_string(&content).unwrap();
        assert!(!kept.contains("sekrit"), "{kept}");
        assert_eq!(content.parts[0].text.as_deref(), Some("the key is ***"));

        let shown = std::cell::RefCell::new(Vec::new());
        let record = |p: Progress<'_>| {
            if let Progress::Text(t) | Progress::Thought(t) = p {
                shown.borrow_mut().push(t.to_string());
            }
        };
        let progress = client.scrubbing(&record);
        progress(Progress::Text("a sekrit-key-123 b"));
        progress(Progress::Thought("sekrit-key-123"));
        progress(Progress::Text("plain"));
        assert_eq!(*shown.borrow(), ["a *** b", "***", "plain"]);
        assert_eq!(client.scrubbed("id-sekrit-key-123".into()), "id-***");
    }

    #[test]
    fn endpoints_for_each_api() {
        let gemini = client("https://g/", Api::Gemini);
        assert_eq!(
            gemini.endpoint("m", false).unwrap(),
            "https://g/v1beta/models/m:generateContent"
        );
        assert_eq!(
            gemini.endpoint("m", true).unwrap(),
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
            vertex.endpoint("m", false).unwrap(),
            "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/publishers/google/models/m:generateContent"
        );
        assert!(matches!(
            gemini.endpoint("../../../v1beta/evil?x=1#", false),
            Err(GeminiError::Invalid(_))
        ));
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
            us.endpoint("m", false).unwrap(),
            "https://aiplatform.us.rep.googleapis.com/v1/projects/p/locations/us/publishers/google/models/m:generateContent"
        );
        let express = client(&vertex_base_url("global"), Api::VertexExpress);
        assert_eq!(
            express.endpoint("m", true).unwrap(),
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
