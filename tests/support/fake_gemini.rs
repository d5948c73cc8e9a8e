//! A fake Gemini image API for integration tests.
//!
//! It speaks the real wire protocol (the captures in `tests/fixtures/` show it) over real HTTP on
//! 127.0.0.1, so the peel binary can be pointed at it with a base URL. What makes it useful rather
//! than just a mock:
//!
//! - it validates requests the way Google does, above all the thought signatures: every model image
//!   part resent by the client must carry exactly the signature the server issued with that image;
//! - it answers with real, decodable images of the requested pixel size and a realistic byte size,
//!   and with signatures as large as the images, so clients are exercised with real-sized payloads;
//! - tests can script replies (errors, refusals, hangs, broken streams) and inspect every request.
//!
//! The server runs on its own thread with its own tokio runtime, so synchronous tests can drive it
//! while they run peel as a child process. Dropping the [`FakeGemini`] handle shuts it down.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::future::IntoFuture;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, HeaderValue};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::{DecodePaddingMode, general_purpose};
use futures_util::StreamExt as _;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder as _, RgbImage};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

// The Interactions, Batch and Files APIs live in their own files; as child modules they reuse this file's checks,
// images and signatures.
#[path = "fake_batch.rs"]
mod batch;
#[path = "fake_interactions.rs"]
mod interactions;

/// The key a default server expects.
pub const DEFAULT_API_KEY: &str = "test-key-123";

/// The documented dummy signature for model parts that did not come from the model.
pub const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// Request bodies up to this size are read; `Config::max_body_bytes` models the API's own limit.
/// Real requests carry many base64 images (100 MB inline on the Gemini API), so this is generous.
const BODY_LIMIT_BYTES: usize = 512 * 1024 * 1024;

/// The response header carrying the time the server spent producing the answer, in milliseconds.
pub const SERVER_TIME_HEADER: &str = "x-fake-server-ms";

const MISSING_SIGNATURE_DOCS: &str =
    "https://ai.google.dev/gemini-api/docs/thought-signatures#model-behavior";

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// Where a request may carry its credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyPlacement {
    /// `x-goog-api-key: <key>` (Gemini API, Vertex express mode, Modelverse).
    Header,
    /// `?key=<key>` (Anyfast; the real Gemini API also accepts it).
    Query,
    /// `Authorization: Bearer <token>` (Vertex AI with an OAuth token).
    Bearer,
}

/// When to add a field the client cannot know (`"futureField": {"x": 1}`) to the image part, so
/// tests can check that clients resend model parts with unknown fields intact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnknownFields {
    Never,
    Always,
    /// On the 1st, 3rd, 5th... image reply of the server.
    Alternate,
}

/// How long the signature of an image is, in base64 characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureSize {
    /// About as long as the image's base64, like the real API (a 439 KB image came with a 598 KB
    /// signature).
    LikeImage,
    /// About this many base64 characters.
    Chars(usize),
}

/// Server options. Build with [`FakeGemini::builder`] (or `Config::default()`) and the chained
/// setters, then call [`Config::start`].
#[derive(Clone, Debug)]
pub struct Config {
    /// 0 picks a free port (what tests want); a fixed port is for running the server by hand.
    pub port: u16,
    pub api_key: String,
    /// Where the key is accepted. `None`: where the real service wants it for the path: the
    /// `x-goog-api-key` header for the Gemini API and Vertex express paths, `Authorization: Bearer`
    /// for Vertex project paths. (Google also accepts `?key=`, but a key in the URL leaks into
    /// logs, so by default the fake refuses it to catch clients that put it there.)
    pub key_placements: Option<Vec<KeyPlacement>>,
    /// The API's own request size limit: larger bodies get Google's 400 "Request payload size
    /// exceeds the limit". `None`: no limit below the transport limit of 512 MiB.
    pub max_body_bytes: Option<usize>,
    /// Validate thought signatures on resent model parts (on by default; it is the point).
    pub check_signatures: bool,
    pub signature_size: SignatureSize,
    pub unknown_fields: UnknownFields,
    /// Also add a field the client cannot know to every answer's content itself (`"futureContentField"`), beside
    /// `role` and `parts`, so tests can check that clients keep unknown fields at every level of a content.
    pub content_unknown_fields: bool,
    /// Answer given when no scripted reply is queued.
    pub default_reply: Reply,
    /// Pause between stream events, so clients can be seen rendering progressively.
    pub stream_event_delay: Duration,
    /// When set, other model ids get the real 404 "models/X is not found".
    pub models: Option<Vec<String>>,
    /// Compress answers for a client that asks (`Accept-Encoding: gzip`), as Google's front ends do (on by
    /// default).
    pub compress: bool,
    /// Keep every request body's bytes as they arrived ([`RecordedRequest::raw_body`]), so a benchmark can send
    /// the very same bytes again.
    pub keep_raw_bodies: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 0,
            api_key: DEFAULT_API_KEY.to_string(),
            key_placements: None,
            max_body_bytes: None,
            check_signatures: true,
            signature_size: SignatureSize::LikeImage,
            unknown_fields: UnknownFields::Alternate,
            content_unknown_fields: false,
            default_reply: Reply::Image,
            stream_event_delay: Duration::ZERO,
            models: None,
            keep_raw_bodies: false,
            compress: true,
        }
    }
}

impl Config {
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = key.into();
        self
    }

    pub fn key_placements(mut self, placements: &[KeyPlacement]) -> Self {
        self.key_placements = Some(placements.to_vec());
        self
    }

    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = Some(limit);
        self
    }

    pub fn check_signatures(mut self, check: bool) -> Self {
        self.check_signatures = check;
        self
    }

    pub fn signature_size(mut self, size: SignatureSize) -> Self {
        self.signature_size = size;
        self
    }

    pub fn unknown_fields(mut self, when: UnknownFields) -> Self {
        self.unknown_fields = when;
        self
    }

    pub fn content_unknown_fields(mut self, add: bool) -> Self {
        self.content_unknown_fields = add;
        self
    }

    pub fn default_reply(mut self, reply: Reply) -> Self {
        self.default_reply = reply;
        self
    }

    pub fn stream_event_delay(mut self, delay: Duration) -> Self {
        self.stream_event_delay = delay;
        self
    }

    pub fn compress(mut self, compress: bool) -> Self {
        self.compress = compress;
        self
    }

    pub fn keep_raw_bodies(mut self, keep: bool) -> Self {
        self.keep_raw_bodies = keep;
        self
    }

    pub fn models(mut self, models: &[&str]) -> Self {
        self.models = Some(models.iter().map(|m| m.to_string()).collect());
        self
    }

    /// Starts the server; panics if it cannot (a test cannot go on without it).
    pub fn start(self) -> FakeGemini {
        self.try_start().expect("start the fake Gemini server")
    }

    pub fn try_start(self) -> io::Result<FakeGemini> {
        FakeGemini::spawn(self)
    }
}

// ---------------------------------------------------------------------------------------------
// Scripted replies
// ---------------------------------------------------------------------------------------------

/// One answer of the server. Scripted replies are used only for requests that pass
/// authentication and validation: an invalid request gets the API's error and leaves the queue
/// alone, so a broken client can never be answered as if it were right.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A generated image (the default).
    Image,
    /// A text part ("Here is ...") before the image; the text carries a signature too.
    ImageWithText(String),
    /// The same, with the text streamed in pieces of this many characters, an event each (the first piece
    /// signed), as a slow model types: for what a terminal shows of a stream.
    ChunkedText(String, usize),
    /// Only text, as when the model declines to draw. Signed like the real API: on the text part,
    /// or in streams on a final empty text part.
    TextOnly(String),
    /// This status with this JSON body, verbatim (e.g. a 429 fixture, a 503, a gateway error).
    Status(u16, Value),
    /// This status with this body, verbatim: for malformed JSON and other garbage.
    RawBody(u16, String),
    /// A file of `tests/fixtures/` as a 200 body (`.sse` files as `text/event-stream`).
    Fixture(&'static str),
    /// Accept the request and never answer (for kill and cancel tests).
    Hang,
    /// Wait, then give the inner reply.
    Delay(Duration, Box<Reply>),
    /// A stream whose events stop before any `finishReason` (the image event is sent). On
    /// `generateContent`: a response whose candidate has no `finishReason`.
    TruncatedStream,
    /// A stream with one event, then an `{"error": {...}}` event (an error after the 200). On
    /// `generateContent`: a 500 INTERNAL.
    StreamError,
    /// Send a 200 status line and headers, then drop the connection before any body.
    Disconnect,
}

impl Reply {
    /// A status whose body is a JSON file of `tests/fixtures/`.
    pub fn status_fixture(status: u16, name: &str) -> Reply {
        Reply::Status(status, super::fixture_json(name))
    }

    /// The real 429 with QuotaFailure and RetryInfo (`retryDelay` "34.4s").
    pub fn rate_limited() -> Reply {
        Reply::status_fixture(429, "error-429-retry-info.json")
    }

    /// Google's 503 "The model is overloaded".
    pub fn overloaded() -> Reply {
        Reply::Status(
            503,
            google_error(
                503,
                "UNAVAILABLE",
                "The model is overloaded. Please try again later.",
            ),
        )
    }

    /// An OpenAI-style error as some gateways send (`code` is a string there).
    pub fn gateway_error(status: u16, message: &str, kind: &str, code: &str) -> Reply {
        Reply::Status(
            status,
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
        )
    }

    pub fn delayed(delay: Duration, reply: Reply) -> Reply {
        Reply::Delay(delay, Box::new(reply))
    }
}

// ---------------------------------------------------------------------------------------------
// What tests can inspect
// ---------------------------------------------------------------------------------------------

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    /// Lowercase header names; repeated headers joined with ", ".
    pub headers: BTreeMap<String, String>,
    /// The parsed JSON body; `None` when it is not JSON. Shared because bodies can be huge.
    pub body: Option<Arc<Value>>,
    pub body_len: usize,
    /// The body's bytes as they arrived, when the server keeps them (`Config::keep_raw_bodies`).
    pub raw_body: Option<Bytes>,
    /// When the whole body had been received.
    pub received_at: Instant,
    /// The model id of a generate endpoint path.
    pub model: Option<String>,
    /// `streamGenerateContent` rather than `generateContent`.
    pub stream: bool,
    /// The answer's HTTP status, once the server has produced it (`None` while it is being produced,
    /// and for ever for `Reply::Hang`).
    pub status: Option<u16>,
    /// The server's own time for the answer, from the whole body received to the answer's headers
    /// (what the `x-fake-server-ms` header says, unrounded); `None` until then.
    pub server_time: Option<Duration>,
    /// Which request of this server it is, to fill in `status` and `server_time` later.
    seq: u64,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The body, or `Value::Null` when it was not JSON.
    pub fn json(&self) -> &Value {
        self.body.as_deref().unwrap_or(&Value::Null)
    }

    /// The request's `contents` (empty when absent).
    pub fn contents(&self) -> &[Value] {
        self.json()
            .get("contents")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }
}

/// An image the server sent, with the signature it issued for it.
#[derive(Clone, Debug)]
pub struct IssuedImage {
    pub model: String,
    pub mime_type: String,
    pub width: u32,
    pub height: u32,
    /// Base64, exactly as sent.
    pub data: String,
    pub signature: Option<String>,
}

impl IssuedImage {
    pub fn bytes(&self) -> Vec<u8> {
        STANDARD
            .decode(&self.data)
            .expect("the server only issues valid base64")
    }
}

// ---------------------------------------------------------------------------------------------
// The handle
// ---------------------------------------------------------------------------------------------

/// A running fake server. Shut down on drop.
pub struct FakeGemini {
    url: String,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeGemini {
    /// A server with the default configuration.
    pub fn start() -> FakeGemini {
        Config::default().start()
    }

    pub fn builder() -> Config {
        Config::default()
    }

    /// The base URL, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn api_key(&self) -> &str {
        &self.shared.config.api_key
    }

    /// Queues a reply for the next valid request.
    pub fn push_reply(&self, reply: Reply) {
        lock(&self.shared.replies).push_back(reply);
    }

    /// Scripted replies not used yet.
    pub fn pending_replies(&self) -> usize {
        lock(&self.shared.replies).len()
    }

    /// Waits until every scripted reply has been taken by a request. A request is recorded before its reply is
    /// taken, so a test that kills or cancels a client mid-request waits for this first: a client gone before its
    /// reply was taken would leave the reply (a `Hang`, say) for the next client.
    pub fn wait_for_replies_taken(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.pending_replies() > 0 {
            assert!(
                Instant::now() < deadline,
                "fake Gemini: {} replies still queued after {timeout:?}",
                self.pending_replies()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.log).clone()
    }

    pub fn request_count(&self) -> usize {
        lock(&self.shared.log).len()
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// Waits until at least `n` requests have arrived; `None` on timeout.
    pub fn try_wait_for_requests(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Option<Vec<RecordedRequest>> {
        let log = lock(&self.shared.log);
        let (log, _) = self
            .shared
            .arrived
            .wait_timeout_while(log, timeout, |log| log.len() < n)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (log.len() >= n).then(|| log.clone())
    }

    /// Waits until at least `n` requests have arrived; panics on timeout.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        match self.try_wait_for_requests(n, timeout) {
            Some(log) => log,
            None => panic!(
                "fake Gemini: waited {timeout:?} for {n} requests, got {}",
                self.request_count()
            ),
        }
    }

    /// The bodies of the answers the server produced (not scripted statuses or fixtures), oldest first:
    /// a JSON body as sent, or a stream's frames concatenated.
    pub fn sent_bodies(&self) -> Vec<String> {
        lock(&self.shared.sent).clone()
    }

    /// The non-streamed answers the server produced, parsed.
    pub fn responses(&self) -> Vec<Value> {
        self.sent_bodies()
            .iter()
            .filter_map(|body| serde_json::from_str(body).ok())
            .collect()
    }

    /// Every image the server has sent, oldest first.
    pub fn issued_images(&self) -> Vec<IssuedImage> {
        lock(&self.shared.images).clone()
    }

    fn spawn(config: Config) -> io::Result<FakeGemini> {
        // Bind here, not on the server thread, so a failure reaches the caller and the URL is
        // known before the first request. Loopback only: tests must never listen on the network.
        let listener = StdTcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, config.port)))?;
        listener.set_nonblocking(true)?;
        let url = format!("http://{}", listener.local_addr()?);

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fake-gemini")
            .enable_all()
            .build()?;
        let shared = Arc::new(Shared::new(config));
        let app = router(shared.clone());
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();

        let thread = std::thread::Builder::new()
            .name("fake-gemini".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(err) => {
                            eprintln!("fake Gemini: cannot use the listener: {err}");
                            return;
                        }
                    };
                    // Not a graceful shutdown: it would wait forever for `Reply::Hang` requests.
                    tokio::select! {
                        result = axum::serve(listener, app).into_future() => {
                            if let Err(err) = result {
                                eprintln!("fake Gemini: server stopped: {err}");
                            }
                        }
                        _ = shutdown_rx => {}
                    }
                });
                // Dropping the runtime cancels the connection tasks, hung ones included; only an
                // image still being encoded on a blocking thread is waited for, briefly.
                runtime.shutdown_timeout(Duration::from_secs(2));
            })?;

        Ok(FakeGemini {
            url,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }
}

impl Drop for FakeGemini {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // An error means the server thread has already stopped: nothing to do.
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    // The `{model}:{method}` segment has a colon, which axum's path syntax cannot split, so the
    // handler parses the path itself; the routes are here to document the accepted shapes.
    Router::new()
        .route("/v1beta/models/{*rest}", post(handle))
        .route(
            "/v1/projects/{project}/locations/{location}/publishers/google/models/{*rest}",
            post(handle),
        )
        .route("/v1/publishers/google/models/{*rest}", post(handle))
        .fallback(handle)
        .with_state(shared)
}

/// Locks, ignoring poisoning: a panicking test thread must not turn into a cascade of
/// unrelated panics in the server.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Server state
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum SignedKind {
    Image,
    Text,
}

struct Shared {
    config: Config,
    replies: Mutex<VecDeque<Reply>>,
    log: Mutex<Vec<RecordedRequest>>,
    arrived: Condvar,
    /// Digests of every (kind, content, signature) triple issued. Digests rather than the strings,
    /// which are megabytes each.
    signatures: Mutex<HashSet<[u8; 32]>>,
    images: Mutex<Vec<IssuedImage>>,
    /// The bodies of the answers the server produced, as sent (one JSON body, or a stream's frames).
    sent: Mutex<Vec<String>>,
    image_replies: AtomicU64,
    requests_seen: AtomicU64,
    /// The Interactions, Batch and Files APIs' state.
    more: interactions::MoreApis,
}

impl Shared {
    fn new(config: Config) -> Self {
        Shared {
            config,
            replies: Mutex::default(),
            log: Mutex::default(),
            arrived: Condvar::new(),
            signatures: Mutex::default(),
            images: Mutex::default(),
            sent: Mutex::default(),
            image_replies: AtomicU64::new(0),
            requests_seen: AtomicU64::new(0),
            more: interactions::MoreApis::default(),
        }
    }

    /// Logs a request; returns its `seq` for [`Shared::answered`].
    fn record(&self, mut request: RecordedRequest) -> u64 {
        let seq = self.requests_seen.fetch_add(1, Ordering::Relaxed);
        request.seq = seq;
        lock(&self.log).push(request);
        self.arrived.notify_all();
        seq
    }

    /// Notes the status and the server time of a logged request's answer.
    fn answered(&self, seq: u64, status: u16, server_time: Duration) {
        let mut log = lock(&self.log);
        if let Some(request) = log.iter_mut().rev().find(|r| r.seq == seq) {
            request.status = Some(status);
            request.server_time = Some(server_time);
        }
    }

    fn remember(&self, family: Family, kind: SignedKind, content: &str, signature: &str) {
        lock(&self.signatures).insert(signature_digest(family, kind, content, signature));
    }

    fn was_issued(&self, family: Family, kind: SignedKind, content: &str, signature: &str) -> bool {
        lock(&self.signatures).contains(&signature_digest(family, kind, content, signature))
    }

    fn next_reply(&self) -> Reply {
        lock(&self.replies)
            .pop_front()
            .unwrap_or_else(|| self.config.default_reply.clone())
    }
}

/// Signatures are bound to the family of the model that issued them: Google's signatures "are only compatible with
/// the model family and tier that generated them" (Vertex AI, "Thought signatures"), and the Gemini API answers
/// another family's signature with `400 Corrupted thought signature.`.
fn signature_digest(family: Family, kind: SignedKind, content: &str, signature: &str) -> [u8; 32] {
    // Google reads bytes fields in either base64 alphabet, and the official Python SDK resends
    // history re-encoded URL-safe: compare image data and signatures in the standard alphabet.
    // (Any other change, padding included, still counts as an altered signature.)
    let content = match kind {
        SignedKind::Image => standard_alphabet(content),
        SignedKind::Text => content.into(),
    };
    let signature = standard_alphabet(signature);
    let mut hasher = Sha256::new();
    hasher.update([kind as u8, family as u8]);
    // The length prefix keeps (content, signature) pairs from colliding when concatenated.
    hasher.update((content.len() as u64).to_le_bytes());
    hasher.update(content.as_bytes());
    hasher.update(signature.as_bytes());
    hasher.finalize().into()
}

/// Base64 text with the URL-safe alphabet's `-` and `_` turned into the standard `+` and `/`.
fn standard_alphabet(base64: &str) -> std::borrow::Cow<'_, str> {
    if !base64.contains(['-', '_']) {
        return base64.into();
    }
    base64
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect::<String>()
        .into()
}

// ---------------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Api {
    Gemini,
    Vertex,
    VertexExpress,
}

#[derive(Clone, Debug)]
struct Endpoint {
    api: Api,
    model: String,
    stream: bool,
    sse: bool,
    /// The client asked for a gzip-compressed answer (see `fake_gzip`).
    gzip: bool,
}

impl Endpoint {
    fn parse(path: &str, query: Option<&str>) -> Option<Endpoint> {
        let (api, rest) = if let Some(rest) = path.strip_prefix("/v1beta/models/") {
            (Api::Gemini, rest)
        } else if let Some(rest) = path.strip_prefix("/v1/publishers/google/models/") {
            (Api::VertexExpress, rest)
        } else {
            let rest = path.strip_prefix("/v1/projects/")?;
            let mut segments = rest.splitn(6, '/');
            let (_project, locations, _location, publishers, google, models_rest) = (
                segments.next()?,
                segments.next()?,
                segments.next()?,
                segments.next()?,
                segments.next()?,
                segments.next()?,
            );
            if locations != "locations" || publishers != "publishers" || google != "google" {
                return None;
            }
            (Api::Vertex, models_rest.strip_prefix("models/")?)
        };
        let (model, method) = rest.rsplit_once(':')?;
        if model.is_empty() || model.contains('/') {
            return None;
        }
        let stream = match method {
            "generateContent" => false,
            "streamGenerateContent" => true,
            _ => return None,
        };
        let sse = stream && query_param(query, "alt") == Some("sse");
        Some(Endpoint {
            api,
            model: model.to_string(),
            stream,
            sse,
            gzip: false,
        })
    }

    fn family(&self) -> Family {
        if self.model.contains("2.5") {
            Family::Gemini25
        } else if self.model.contains("flash") {
            Family::Gemini31Flash
        } else {
            Family::Gemini3Pro
        }
    }

    fn is_vertex(&self) -> bool {
        self.api != Api::Gemini
    }
}

/// Which real model the request's model id behaves like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    /// Nano Banana: no thinking, no signatures, PNG output, no `imageSize`.
    Gemini25,
    /// Nano Banana Pro.
    Gemini3Pro,
    /// Nano Banana 2: more aspect ratios and a 512 size.
    Gemini31Flash,
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find_map(|(key, value)| (key == name).then_some(value))
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// An error answer: HTTP status and Google-shaped body.
#[derive(Debug)]
struct ApiError {
    status: u16,
    body: Value,
}

fn google_error(code: u16, status: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message, "status": status}})
}

impl ApiError {
    fn new(code: u16, status: &str, message: impl AsRef<str>) -> ApiError {
        ApiError {
            status: code,
            body: google_error(code, status, message.as_ref()),
        }
    }

    fn invalid(message: impl AsRef<str>) -> ApiError {
        ApiError::new(400, "INVALID_ARGUMENT", message)
    }

    fn with_details(mut self, details: Vec<Value>) -> ApiError {
        self.body["error"]["details"] = Value::Array(details);
        self
    }

    /// An unknown JSON field, as Google's proto JSON parser reports it.
    fn unknown_field(name: &str, at: &str) -> ApiError {
        let description = format!(
            "Invalid JSON payload received. Unknown name \"{name}\" at '{at}': Cannot find field."
        );
        ApiError::invalid(&description).with_details(vec![json!({
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": at, "description": description}],
        })])
    }

    fn into_response(self, endpoint: Option<&Endpoint>, started: Instant) -> Response {
        // Vertex wraps errors of a JSON-array stream in a one-element array.
        let wrap = endpoint.is_some_and(|e| e.is_vertex() && e.stream && !e.sse);
        let body = if wrap {
            Value::Array(vec![self.body])
        } else {
            self.body
        };
        json_response(self.status, &body, started)
    }
}

const JSON: &str = "application/json; charset=UTF-8";
const TEXT: &str = "text/plain; charset=utf-8";

fn json_response(status: u16, body: &Value, started: Instant) -> Response {
    // Pretty, like Google's own bodies; clients must not depend on the layout anyway.
    let text = serde_json::to_string_pretty(body).unwrap_or_else(|err| err.to_string());
    response(status, JSON, Body::from(text), started)
}

fn response(status: u16, content_type: &'static str, body: Body, started: Instant) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    headers.insert(SERVER_TIME_HEADER, HeaderValue::from(millis));
    response
}

// ---------------------------------------------------------------------------------------------
// The handler
// ---------------------------------------------------------------------------------------------

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // The server's time starts when the body's last byte has arrived: joining its chunks into one
    // buffer (a copy of tens of megabytes for long threads) is the server's work, not the client's.
    let mut chunks = Vec::new();
    let mut length = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            let message = "the request body broke off";
            return response(400, TEXT, Body::from(message), Instant::now());
        };
        length += chunk.len();
        if length > BODY_LIMIT_BYTES {
            let message = "Failed to buffer the request body: length limit exceeded";
            return response(413, TEXT, Body::from(message), Instant::now());
        }
        chunks.push(chunk);
    }
    let started = Instant::now();
    let body = match chunks.len() {
        1 => chunks.pop().unwrap_or_default(),
        _ => {
            let mut joined = Vec::with_capacity(length);
            for chunk in &chunks {
                joined.extend_from_slice(chunk);
            }
            Bytes::from(joined)
        }
    };
    let (seq, response) = answer(&shared, method, uri, headers, body, started).await;
    shared.answered(seq, response.status().as_u16(), started.elapsed());
    response
}

async fn answer(
    shared: &Arc<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    started: Instant,
) -> (u64, Response) {
    let endpoint = Endpoint::parse(uri.path(), uri.query()).map(|endpoint| Endpoint {
        gzip: shared.config.compress && super::fake_gzip::accepts_gzip(&headers),
        ..endpoint
    });
    let parsed = serde_json::from_slice::<Value>(&body).map(Arc::new);
    let seq = shared.record(RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers: header_map(&headers),
        body: parsed.as_ref().ok().cloned(),
        body_len: body.len(),
        raw_body: shared.config.keep_raw_bodies.then(|| body.clone()),
        received_at: started,
        model: endpoint.as_ref().map(|e| e.model.clone()),
        stream: endpoint.as_ref().is_some_and(|e| e.stream),
        status: None,
        server_time: None,
        seq: 0,
    });

    let Some(endpoint) = endpoint.filter(|_| method == Method::POST) else {
        if let Some(response) =
            interactions::answer(shared, &method, &uri, &headers, &body, started).await
        {
            return (seq, response);
        }
        let error = ApiError::new(
            404,
            "NOT_FOUND",
            format!(
                "The requested URL {} was not found on this server.",
                uri.path()
            ),
        );
        return (seq, error.into_response(None, started));
    };
    let request = match admit(shared, &endpoint, uri.query(), &headers, body.len(), parsed) {
        Ok(request) => request,
        Err(error) => return (seq, error.into_response(Some(&endpoint), started)),
    };

    let reply = shared.next_reply();
    let response = serve(shared.clone(), reply, endpoint, request, started).await;
    (seq, response)
}

fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut map = BTreeMap::<String, String>::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        map.entry(name.as_str().to_string())
            .and_modify(|existing| {
                existing.push_str(", ");
                existing.push_str(&value);
            })
            .or_insert(value);
    }
    map
}

/// What generation needs to know about a valid request.
#[derive(Clone, Debug)]
struct GenerationRequest {
    width: u32,
    height: u32,
    image_tokens: u32,
    include_thoughts: bool,
    /// The request carries the googleSearch tool: the answer is grounded and says in what.
    search: bool,
    prompt_text_tokens: u32,
    prompt_images: u32,
}

/// Checks a request in the order Google does (size, auth, JSON, then content).
fn admit(
    shared: &Shared,
    endpoint: &Endpoint,
    query: Option<&str>,
    headers: &HeaderMap,
    body_len: usize,
    parsed: Result<Arc<Value>, serde_json::Error>,
) -> Result<GenerationRequest, ApiError> {
    let config = &shared.config;
    if let Some(limit) = config.max_body_bytes
        && body_len > limit
    {
        return Err(ApiError::invalid(format!(
            "Request payload size exceeds the limit: {limit} bytes."
        )));
    }
    check_auth(config, endpoint, query, headers)?;
    if let Some(models) = &config.models
        && !models.contains(&endpoint.model)
    {
        let version = if endpoint.api == Api::Gemini {
            "v1beta"
        } else {
            "v1"
        };
        return Err(ApiError::new(
            404,
            "NOT_FOUND",
            format!(
                "models/{} is not found for API version {version}, or is not supported for \
                 generateContent. Call ListModels to see the list of available models and their \
                 supported methods.",
                endpoint.model
            ),
        ));
    }
    let body =
        parsed.map_err(|err| ApiError::invalid(format!("Invalid JSON payload received. {err}")))?;
    let contents = validate_contents(&body)?;
    if config.check_signatures && endpoint.family() != Family::Gemini25 {
        check_signatures(shared, endpoint, contents)?;
    }
    generation_request(endpoint, &body, contents)
}

fn check_auth(
    config: &Config,
    endpoint: &Endpoint,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let natural = match endpoint.api {
        Api::Gemini | Api::VertexExpress => [KeyPlacement::Header],
        Api::Vertex => [KeyPlacement::Bearer],
    };
    let placements = config.key_placements.as_deref().unwrap_or(&natural);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let presented = placements.iter().find_map(|placement| {
        let credential = match placement {
            KeyPlacement::Header => header("x-goog-api-key"),
            KeyPlacement::Query => query_param(query, "key"),
            KeyPlacement::Bearer => header("authorization").and_then(|v| v.strip_prefix("Bearer ")),
        };
        credential.map(|credential| (*placement, credential))
    });
    let bearer_only = placements == [KeyPlacement::Bearer];
    match presented {
        Some((_, credential)) if credential == config.api_key => Ok(()),
        Some((KeyPlacement::Bearer, _)) => Err(unauthenticated(
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login \
             cookie or other valid authentication credential. See \
             https://developers.google.com/identity/sign-in/web/devconsole-project.",
            "ACCESS_TOKEN_TYPE_UNSUPPORTED",
        )),
        Some(_) => Err(
            ApiError::invalid("API key not valid. Please pass a valid API key.").with_details(
                vec![
                    json!({
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"},
                    }),
                    json!({
                        "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                        "locale": "en-US",
                        "message": "API key not valid. Please pass a valid API key.",
                    }),
                ],
            ),
        ),
        None if bearer_only => Err(unauthenticated(
            "Request is missing required authentication credential. Expected OAuth 2 access \
             token, login cookie or other valid authentication credential. See \
             https://developers.google.com/identity/sign-in/web/devconsole-project.",
            "CREDENTIALS_MISSING",
        )),
        None => Err(ApiError::new(
            403,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers (callers without established identity). \
             Please use API Key or other form of API consumer identity to call this API.",
        )),
    }
}

fn unauthenticated(message: &str, reason: &str) -> ApiError {
    ApiError::new(401, "UNAUTHENTICATED", message).with_details(vec![json!({
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {
            "method": "google.cloud.aiplatform.v1.PredictionService.GenerateContent",
            "service": "aiplatform.googleapis.com",
        },
    })])
}

/// A field under its camelCase or snake_case name: the API accepts both.
fn field<'a>(value: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    value.get(camel).or_else(|| value.get(snake))
}

fn parts_of(content: &Value) -> &[Value] {
    content
        .get("parts")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn role_of(content: &Value) -> &str {
    // A content without a role is a user content, as for single-turn requests.
    content
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or("user")
}

fn is_thought(part: &Value) -> bool {
    part.get("thought").and_then(Value::as_bool) == Some(true)
}

fn inline_data(part: &Value) -> Option<&Value> {
    field(part, "inlineData", "inline_data")
}

/// Base64 as Google's proto JSON parser reads bytes: either alphabet, padding optional.
fn lenient_base64(data: &str) -> bool {
    const LENIENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD_LENIENT: GeneralPurpose =
        GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
    const URL_SAFE_LENIENT: GeneralPurpose =
        GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);
    STANDARD_LENIENT.decode(data).is_ok() || URL_SAFE_LENIENT.decode(data).is_ok()
}

fn validate_contents(body: &Value) -> Result<&[Value], ApiError> {
    if !body.is_object() {
        return Err(ApiError::invalid(
            "Invalid JSON payload received. Expected an object for the request.",
        ));
    }
    let contents = body
        .get("contents")
        .and_then(Value::as_array)
        .filter(|contents| !contents.is_empty())
        .ok_or_else(|| {
            ApiError::invalid("* GenerateContentRequest.contents: contents is not specified\n")
        })?;
    for (index, content) in contents.iter().enumerate() {
        if !matches!(role_of(content), "user" | "model") {
            return Err(ApiError::invalid("Please use a valid role: user, model."));
        }
        let parts = parts_of(content);
        if parts.is_empty() {
            return Err(ApiError::invalid(format!(
                "* GenerateContentRequest.contents[{index}].parts: contents.parts must not be \
                 empty.\n"
            )));
        }
        for (part_index, part) in parts.iter().enumerate() {
            let Some(inline) = inline_data(part) else {
                continue;
            };
            let data = field(inline, "data", "data").and_then(Value::as_str);
            let mime = field(inline, "mimeType", "mime_type").and_then(Value::as_str);
            let at = format!("contents[{index}].parts[{part_index}].inline_data");
            match (data, mime) {
                (Some(data), Some(_)) if lenient_base64(data) => {}
                (Some(data), Some(_)) => {
                    let start: String = data.chars().take(40).collect();
                    return Err(ApiError::invalid(format!(
                        "Invalid value at '{at}.data' (TYPE_BYTES), Base64 decoding failed for \
                         \"{start}...\""
                    )));
                }
                _ => {
                    return Err(ApiError::invalid(format!(
                        "* GenerateContentRequest.{at}: inline data needs both data and mime_type\n"
                    )));
                }
            }
        }
    }
    if role_of(&contents[0]) != "user" {
        return Err(ApiError::invalid(
            "Please ensure that the first content of a request is a user content.",
        ));
    }
    if contents.last().map(role_of) != Some("user") {
        return Err(ApiError::invalid(
            "Please ensure that the last content of a request is a user content: the model \
             answers a user turn.",
        ));
    }
    Ok(contents)
}

/// The check every naive client fails: model parts must come back exactly as issued, by a model of the family
/// asked now. The parts that must carry a signature are those a Gemini 3 model signs: every non-thought image, and
/// the first non-thought text part when it comes before the first image. A missing one gets Google's "missing a
/// thought_signature" 400 (fixtures/real/error-400-missing-image-signature.json; "Text part" for the text one, as
/// seen after a gemini-2.5-flash-image turn), a signature this family did not issue "Corrupted thought signature",
/// and the documented dummy passes.
fn check_signatures(
    shared: &Shared,
    endpoint: &Endpoint,
    contents: &[Value],
) -> Result<(), ApiError> {
    let family = endpoint.family();
    let corrupted = || {
        if endpoint.is_vertex() {
            ApiError::invalid(
                "Unable to submit request because Thought signature is not valid.. Learn more: \
                 https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/gemini",
            )
        } else {
            ApiError::invalid("Corrupted thought signature.")
        }
    };
    let missing = |what: &str, content_index: usize, part_index: usize| {
        // Positions are 1-based in Google's message.
        ApiError::invalid(format!(
            "{what} part is missing a thought_signature in content position {}, part position {}. Please \
             refer to {MISSING_SIGNATURE_DOCS} for more details.",
            content_index + 1,
            part_index + 1
        ))
    };
    for (content_index, content) in contents.iter().enumerate() {
        if role_of(content) != "model" {
            continue;
        }
        let parts = parts_of(content);
        let first_image = parts
            .iter()
            .position(|p| !is_thought(p) && inline_data(p).is_some());
        let first_text = parts
            .iter()
            .position(|p| !is_thought(p) && inline_data(p).is_none() && p.get("text").is_some());
        let signed_text = first_text.filter(|&t| first_image.is_some_and(|i| t < i));
        for (part_index, part) in parts.iter().enumerate() {
            if is_thought(part) {
                continue;
            }
            let signature =
                field(part, "thoughtSignature", "thought_signature").and_then(Value::as_str);
            if signature == Some(SKIP_SIGNATURE) {
                continue;
            }
            if let Some(data) = inline_data(part)
                .and_then(|inline| inline.get("data"))
                .and_then(Value::as_str)
            {
                let Some(signature) = signature else {
                    return Err(missing("Image", content_index, part_index));
                };
                if !shared.was_issued(family, SignedKind::Image, data, signature) {
                    return Err(corrupted());
                }
            } else if let Some(text) = part.get("text").and_then(Value::as_str) {
                match signature {
                    // A text part the model signs must come back signed; other text may come back bare, as the
                    // real API tolerates. A signature moved to other text (merged stream chunks, an edited turn)
                    // is refused.
                    None if Some(part_index) == signed_text => {
                        return Err(missing("Text", content_index, part_index));
                    }
                    Some(signature)
                        if !shared.was_issued(family, SignedKind::Text, text, signature) =>
                    {
                        return Err(corrupted());
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Generation parameters
// ---------------------------------------------------------------------------------------------

/// Width and height in pixels.
type Size = (u32, u32);
/// An aspect ratio, width to height.
type Ratio = (u32, u32);

const RATIOS: [&str; 10] = [
    "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9",
];
const FLASH_EXTRA_RATIOS: [&str; 4] = ["1:4", "4:1", "1:8", "8:1"];

fn generation_request(
    endpoint: &Endpoint,
    body: &Value,
    contents: &[Value],
) -> Result<GenerationRequest, ApiError> {
    let family = endpoint.family();
    let generation = field(body, "generationConfig", "generation_config");
    let image_config = generation.and_then(|g| field(g, "imageConfig", "image_config"));
    let thinking = generation.and_then(|g| field(g, "thinkingConfig", "thinking_config"));

    if let Some(image_config) = image_config.and_then(Value::as_object) {
        for key in image_config.keys() {
            let known = match key.as_str() {
                "aspectRatio" | "aspect_ratio" | "imageSize" | "image_size" => true,
                // Vertex-only fields, refused by the Gemini API.
                "imageOutputOptions"
                | "image_output_options"
                | "personGeneration"
                | "person_generation"
                | "prominentPeople"
                | "prominent_people" => endpoint.is_vertex(),
                _ => false,
            };
            if !known {
                return Err(ApiError::unknown_field(
                    key,
                    "generation_config.image_config",
                ));
            }
        }
    }
    if let Some(thinking) = thinking {
        check_thinking(family, thinking)?;
    }

    let aspect = image_config
        .and_then(|c| field(c, "aspectRatio", "aspect_ratio"))
        .and_then(Value::as_str);
    let size = image_config
        .and_then(|c| field(c, "imageSize", "image_size"))
        .and_then(Value::as_str);
    let ratio = match aspect {
        Some(aspect) => {
            let allowed = RATIOS.contains(&aspect)
                || (family == Family::Gemini31Flash && FLASH_EXTRA_RATIOS.contains(&aspect));
            let ratio = parse_ratio(aspect).filter(|_| allowed).ok_or_else(|| {
                ApiError::invalid(format!("Unsupported aspect ratio: {aspect:?}."))
            })?;
            Some(ratio)
        }
        // With no aspect ratio the model follows the shape of the last image it was given.
        None => last_image_ratio(contents),
    };
    let ratio = ratio.unwrap_or((1, 1));

    // The multiple of the 1K size; 2.5 ignores imageSize.
    let scale = match (family, size) {
        (Family::Gemini25, _) | (_, None | Some("1K")) => 1.0,
        (_, Some("2K")) => 2.0,
        (_, Some("4K")) => 4.0,
        (Family::Gemini31Flash, Some("512")) => 0.5,
        (_, Some(other)) => {
            return Err(ApiError::invalid(format!(
                "Unsupported image size: {other:?}. Use \"1K\", \"2K\" or \"4K\"{}.",
                if family == Family::Gemini31Flash {
                    " or \"512\""
                } else {
                    ""
                }
            )));
        }
    };
    let (width, height) = pixel_size(family, ratio, scale);
    let image_tokens = match (family, size) {
        (Family::Gemini25, _) => 1290,
        (_, Some("4K")) => 2000,
        _ => 1120,
    };
    let include_thoughts = family != Family::Gemini25
        && thinking
            .and_then(|t| field(t, "includeThoughts", "include_thoughts"))
            .and_then(Value::as_bool)
            == Some(true);

    let (mut text_chars, mut images) = (0usize, 0u32);
    for part in contents.iter().flat_map(parts_of) {
        if let Some(text) = part.get("text").and_then(Value::as_str) {
            text_chars += text.len();
        }
        if inline_data(part).is_some() {
            images += 1;
        }
    }
    let search = body
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|tools| {
            tools
                .iter()
                .any(|tool| field(tool, "googleSearch", "google_search").is_some())
        });
    Ok(GenerationRequest {
        width,
        height,
        image_tokens,
        include_thoughts,
        search,
        prompt_text_tokens: u32::try_from(text_chars / 4 + 1).unwrap_or(u32::MAX),
        prompt_images: images,
    })
}

fn check_thinking(family: Family, thinking: &Value) -> Result<(), ApiError> {
    if family == Family::Gemini25 {
        return Err(ApiError::invalid(
            "Thinking is not supported by this model.",
        ));
    }
    let Some(level) = field(thinking, "thinkingLevel", "thinking_level") else {
        return Ok(());
    };
    let level = level.as_str().unwrap_or_default().to_ascii_uppercase();
    if !matches!(level.as_str(), "MINIMAL" | "LOW" | "MEDIUM" | "HIGH") {
        return Err(ApiError::invalid(format!(
            "Invalid value at 'generation_config.thinking_config.thinking_level' \
             (type.googleapis.com/google.ai.generativelanguage.v1beta.ThinkingConfig.\
             ThinkingLevel), {level:?}"
        )));
    }
    // Nano Banana Pro refuses MINIMAL (tests/fixtures/error-400-thinking-level.json).
    if family == Family::Gemini3Pro && level == "MINIMAL" {
        return Err(ApiError::invalid(format!(
            "Thinking level {level} is not supported for this model. Please retry with other \
             thinking level."
        )));
    }
    Ok(())
}

fn parse_ratio(aspect: &str) -> Option<Ratio> {
    let (w, h) = aspect.split_once(':')?;
    let (w, h) = (w.parse().ok()?, h.parse().ok()?);
    (w > 0 && h > 0).then_some((w, h))
}

/// The closest supported ratio to the last image in the request, if it can be read.
fn last_image_ratio(contents: &[Value]) -> Option<Ratio> {
    let data = contents
        .iter()
        .rev()
        .flat_map(|content| parts_of(content).iter().rev())
        .find_map(|part| inline_data(part)?.get("data")?.as_str())?;
    // The header is all that is needed: decode a prefix (a whole number of base64 quads), not
    // what can be a hundred megabytes.
    let prefix = &data[..data.len().min(256 * 1024)];
    let prefix = &prefix[..prefix.len() - prefix.len() % 4];
    let bytes = STANDARD.decode(standard_alphabet(prefix).as_bytes()).ok()?;
    let (width, height) = image::ImageReader::new(io::Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()?;
    let shape = f64::from(width) / f64::from(height.max(1));
    RATIOS
        .iter()
        .filter_map(|ratio| parse_ratio(ratio))
        .min_by(|a, b| {
            let distance = |(w, h): &Ratio| (f64::from(*w) / f64::from(*h) / shape).ln().abs();
            distance(a).total_cmp(&distance(b))
        })
}

/// Real output sizes at 1K (they differ a little from the documented tables), scaled.
fn pixel_size(family: Family, (w, h): Ratio, scale: f64) -> Size {
    let table: &[(Ratio, Size)] = if family == Family::Gemini25 {
        &[
            ((1, 1), (1024, 1024)),
            ((2, 3), (832, 1248)),
            ((3, 2), (1248, 832)),
            ((3, 4), (864, 1184)),
            ((4, 3), (1184, 864)),
            ((4, 5), (896, 1152)),
            ((5, 4), (1152, 896)),
            ((9, 16), (768, 1344)),
            ((16, 9), (1344, 768)),
            ((21, 9), (1536, 672)),
        ]
    } else {
        &[
            ((1, 1), (1024, 1024)),
            ((2, 3), (848, 1264)),
            ((3, 2), (1264, 848)),
            ((3, 4), (896, 1200)),
            ((4, 3), (1200, 896)),
            ((4, 5), (928, 1152)),
            ((5, 4), (1152, 928)),
            ((9, 16), (768, 1376)),
            ((16, 9), (1376, 768)),
            ((21, 9), (1584, 672)),
        ]
    };
    let (base_w, base_h) = table
        .iter()
        .find_map(|&(ratio, size)| (ratio == (w, h)).then_some(size))
        .unwrap_or_else(|| {
            // The extra flash ratios: about a megapixel, in multiples of 16 like the real sizes.
            let width = (1024.0 * 1024.0 * f64::from(w) / f64::from(h)).sqrt();
            let height = width * f64::from(h) / f64::from(w);
            (round16(width), round16(height))
        });
    (
        round16(f64::from(base_w) * scale),
        round16(f64::from(base_h) * scale),
    )
}

fn round16(x: f64) -> u32 {
    ((x / 16.0).round() as u32).max(1) * 16
}

// ---------------------------------------------------------------------------------------------
// Serving replies
// ---------------------------------------------------------------------------------------------

/// What a successful answer holds before it is cut into stream events.
enum Answer {
    Image {
        text: Option<String>,
        /// Stream the text in pieces of this many characters.
        piece: Option<usize>,
    },
    Text(String),
}

async fn serve(
    shared: Arc<Shared>,
    reply: Reply,
    endpoint: Endpoint,
    request: GenerationRequest,
    started: Instant,
) -> Response {
    let mut reply = reply;
    while let Reply::Delay(delay, inner) = reply {
        tokio::time::sleep(delay).await;
        reply = *inner;
    }
    let (answer, ending) = match reply {
        Reply::Image => (
            Answer::Image {
                text: None,
                piece: None,
            },
            Ending::Finished,
        ),
        Reply::ImageWithText(text) => (
            Answer::Image {
                text: Some(text),
                piece: None,
            },
            Ending::Finished,
        ),
        Reply::ChunkedText(text, piece) => (
            Answer::Image {
                text: Some(text),
                piece: Some(piece.max(1)),
            },
            Ending::Finished,
        ),
        Reply::TextOnly(text) => (Answer::Text(text), Ending::Finished),
        Reply::TruncatedStream => (
            Answer::Image {
                text: None,
                piece: None,
            },
            Ending::Truncated,
        ),
        Reply::StreamError if !endpoint.stream => {
            return ApiError::new(
                500,
                "INTERNAL",
                "An internal error has occurred. Please retry or report in \
                 https://developers.generativeai.google/guide/troubleshooting",
            )
            .into_response(Some(&endpoint), started);
        }
        Reply::StreamError => (Answer::Text("Here is".to_string()), Ending::Error),
        Reply::Status(status, body) => return json_response(status, &body, started),
        Reply::RawBody(status, body) => {
            return response(status, JSON, Body::from(body), started);
        }
        Reply::Fixture(name) => {
            let content_type = if name.ends_with(".sse") {
                "text/event-stream"
            } else {
                JSON
            };
            return match std::fs::read(super::fixture_path(name)) {
                Ok(body) => response(200, content_type, Body::from(body), started),
                Err(err) => ApiError::new(500, "INTERNAL", format!("fake Gemini: {name}: {err}"))
                    .into_response(Some(&endpoint), started),
            };
        }
        Reply::Hang => return std::future::pending::<Response>().await,
        Reply::Disconnect => {
            let broken = futures_util::stream::once(async {
                Err::<Bytes, io::Error>(io::Error::other("fake Gemini: disconnect"))
            });
            return response(200, JSON, Body::from_stream(broken), started);
        }
        Reply::Delay(..) => unreachable!("delays are unwrapped above"),
    };

    // Encoding a multi-megapixel image is CPU work: keep it off the async workers.
    let producer = shared.clone();
    let producing_endpoint = endpoint.clone();
    let produced = tokio::task::spawn_blocking(move || {
        producer.produce(&producing_endpoint, &request, answer, ending)
    })
    .await;
    let (events, blobs) = match produced {
        Ok(produced) => produced,
        Err(err) => {
            return ApiError::new(500, "INTERNAL", format!("fake Gemini failed: {err}"))
                .into_response(Some(&endpoint), started);
        }
    };
    stream_or_json(&shared, &endpoint, events, blobs, started)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    Finished,
    Truncated,
    Error,
}

fn stream_or_json(
    shared: &Shared,
    endpoint: &Endpoint,
    events: Vec<Value>,
    blobs: Blobs,
    started: Instant,
) -> Response {
    let config = &shared.config;
    let json = |body: String| {
        let compressed = endpoint
            .gzip
            .then(|| super::fake_gzip::gzip(body.as_bytes()));
        lock(&shared.sent).push(body.clone());
        match compressed {
            Some(compressed) => gzipped(response(200, JSON, Body::from(compressed), started)),
            None => response(200, JSON, Body::from(body), started),
        }
    };
    if !endpoint.stream {
        let single = events.into_iter().next().unwrap_or(Value::Null);
        return json(blobs.to_json(&single, true));
    }
    if !endpoint.sse {
        return json(blobs.to_json(&Value::Array(events), true));
    }
    let delay = config.stream_event_delay;
    let frames: Vec<(usize, String)> = events
        .iter()
        .enumerate()
        // Google frames events with CRLF; a client that only accepts LF breaks on the real API.
        .map(|(index, event)| {
            (
                index,
                format!("data: {}\r\n\r\n", blobs.to_json(event, false)),
            )
        })
        .collect();
    lock(&shared.sent).push(frames.iter().map(|(_, frame)| frame.as_str()).collect());
    let chunks: Vec<(usize, Bytes)> = if endpoint.gzip {
        let texts: Vec<String> = frames.into_iter().map(|(_, frame)| frame).collect();
        let compressed = super::fake_gzip::gzip_frames(&texts);
        compressed
            .into_iter()
            .map(Bytes::from)
            .enumerate()
            .collect()
    } else {
        frames
            .into_iter()
            .map(|(i, frame)| (i, Bytes::from(frame)))
            .collect()
    };
    let body = futures_util::stream::iter(chunks).then(move |(index, chunk)| async move {
        if index > 0 && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok::<_, Infallible>(chunk)
    });
    let response = response(200, "text/event-stream", Body::from_stream(body), started);
    if endpoint.gzip {
        gzipped(response)
    } else {
        response
    }
}

fn gzipped(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::CONTENT_ENCODING,
        HeaderValue::from_static("gzip"),
    );
    response
}

/// Large strings (images, signatures) kept out of the JSON tree until the end. serde_json's
/// serialiser is instantiated in this unoptimised test crate and needs about 50 ms per MB, so
/// events are serialised with short placeholders and the blobs spliced in afterwards (base64
/// needs no JSON escaping).
#[derive(Default)]
struct Blobs(Vec<String>);

const BLOB_OPEN: &str = "@@fake-gemini-blob-";
const BLOB_CLOSE: &str = "@@";

impl Blobs {
    /// Keeps `blob` and returns the placeholder to put in the JSON tree.
    fn add(&mut self, blob: String) -> Value {
        let placeholder = format!("{BLOB_OPEN}{}{BLOB_CLOSE}", self.0.len());
        self.0.push(blob);
        Value::String(placeholder)
    }

    fn to_json(&self, value: &Value, pretty: bool) -> String {
        let skeleton = if pretty {
            serde_json::to_string_pretty(value)
        } else {
            serde_json::to_string(value)
        }
        .unwrap_or_else(|err| err.to_string());
        let total = skeleton.len() + self.0.iter().map(String::len).sum::<usize>();
        let mut json = String::with_capacity(total);
        let mut rest = skeleton.as_str();
        while let Some(start) = rest.find(BLOB_OPEN) {
            json.push_str(&rest[..start]);
            let after = &rest[start + BLOB_OPEN.len()..];
            let blob = after.find(BLOB_CLOSE).and_then(|end| {
                let blob = self.0.get(after[..end].parse::<usize>().ok()?)?;
                Some((blob, end))
            });
            match blob {
                Some((blob, end)) => {
                    json.push_str(blob);
                    rest = &after[end + BLOB_CLOSE.len()..];
                }
                // Not one of ours (a prompt could contain the marker): keep it as it is.
                None => {
                    json.push_str(BLOB_OPEN);
                    rest = after;
                }
            }
        }
        json.push_str(rest);
        json
    }
}

/// Seeds images and signatures; process-wide so no two servers in a test run send the same image.
static NEXT_SEED: AtomicU64 = AtomicU64::new(1);

impl Shared {
    /// Produces the answer as a list of events (one for `generateContent`, several for streams)
    /// and the blobs their placeholders stand for.
    fn produce(
        &self,
        endpoint: &Endpoint,
        request: &GenerationRequest,
        answer: Answer,
        ending: Ending,
    ) -> (Vec<Value>, Blobs) {
        let mut blobs = Blobs::default();
        let family = endpoint.family();
        let signed = family != Family::Gemini25;
        let seed = NEXT_SEED.fetch_add(1, Ordering::Relaxed);
        let mut rng = SplitMix64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED);

        // Each inner Vec is the parts of one stream event.
        let mut events: Vec<Vec<Value>> = Vec::new();
        let mut thought_tokens = 0;
        if signed {
            thought_tokens = 150 + (seed % 100) as u32;
        }
        if request.include_thoughts {
            events.push(vec![json!({
                "text": "**Planning the image**\n\nI'm working out the composition, the light and \
                         the details the request asks for.",
                "thought": true,
            })]);
        }
        let (mut text_tokens, mut image_tokens) = (0u32, 0u32);
        // Set when the final (finishReason) event carries the text signature, as in real streams
        // of text-only answers.
        let mut final_signature: Option<String> = None;
        match answer {
            Answer::Image { text, piece } => {
                if let Some(text) = text {
                    text_tokens = token_estimate(&text);
                    let chars: Vec<char> = text.chars().collect();
                    let pieces: Vec<String> = match piece {
                        Some(n) if endpoint.stream => {
                            chars.chunks(n).map(|c| c.iter().collect()).collect()
                        }
                        _ => vec![text.clone()],
                    };
                    for (i, piece) in pieces.into_iter().enumerate() {
                        let mut part = json!({"text": piece});
                        if signed && i == 0 {
                            // The first non-thought part is signed when text precedes the image.
                            let signature = random_base64(&mut rng, 180);
                            self.remember(family, SignedKind::Text, &piece, &signature);
                            part["thoughtSignature"] = json!(signature);
                        }
                        events.push(vec![part]);
                    }
                }
                let (mime, bytes) = render_image(family, request.width, request.height, seed);
                let data = STANDARD.encode(&bytes);
                let mut part =
                    json!({"inlineData": {"mimeType": mime, "data": blobs.add(data.clone())}});
                let signature = signed.then(|| {
                    let chars = match self.config.signature_size {
                        SignatureSize::LikeImage => data.len(),
                        SignatureSize::Chars(chars) => chars,
                    };
                    let signature = random_base64(&mut rng, chars);
                    self.remember(family, SignedKind::Image, &data, &signature);
                    part["thoughtSignature"] = blobs.add(signature.clone());
                    signature
                });
                let nth = self.image_replies.fetch_add(1, Ordering::Relaxed);
                let unknown = match self.config.unknown_fields {
                    UnknownFields::Never => false,
                    UnknownFields::Always => true,
                    UnknownFields::Alternate => nth.is_multiple_of(2),
                };
                if unknown {
                    part["futureField"] = json!({"x": 1});
                }
                events.push(vec![part]);
                image_tokens = request.image_tokens;
                lock(&self.images).push(IssuedImage {
                    model: endpoint.model.clone(),
                    mime_type: mime.to_string(),
                    width: request.width,
                    height: request.height,
                    data,
                    signature,
                });
            }
            Answer::Text(text) => {
                text_tokens = token_estimate(&text);
                let signature = signed.then(|| random_base64(&mut rng, 180));
                if endpoint.stream {
                    events.push(vec![json!({"text": text})]);
                    final_signature = signature;
                } else {
                    let mut part = json!({"text": text});
                    if let Some(signature) = signature {
                        self.remember(family, SignedKind::Text, &text, &signature);
                        part["thoughtSignature"] = json!(signature);
                    }
                    events.push(vec![part]);
                }
            }
        }

        let usage = usage_metadata(endpoint, request, text_tokens, image_tokens, thought_tokens);
        let response_id = random_id(&mut rng);
        let event = |parts: Vec<Value>, finish: bool| {
            let mut candidate = json!({"content": {"parts": parts, "role": "model"}});
            if self.config.content_unknown_fields {
                candidate["content"]["futureContentField"] = json!({"y": [2, 3]});
            }
            if finish {
                candidate["finishReason"] = json!("STOP");
                if request.search {
                    candidate["groundingMetadata"] = grounding_metadata();
                }
            }
            candidate["index"] = json!(0);
            let mut event = json!({
                "candidates": [candidate],
                "usageMetadata": usage,
                "modelVersion": endpoint.model,
                "responseId": response_id,
            });
            if endpoint.is_vertex() {
                event["createTime"] = json!("2026-06-01T12:00:00.000000Z");
            }
            event
        };

        if !endpoint.stream {
            let parts = events.into_iter().flatten().collect();
            return (vec![event(parts, ending == Ending::Finished)], blobs);
        }
        let mut stream: Vec<Value> = events
            .into_iter()
            .map(|parts| event(parts, false))
            .collect();
        match ending {
            Ending::Finished => {
                let mut last = json!({"text": ""});
                if let Some(signature) = final_signature {
                    self.remember(family, SignedKind::Text, "", &signature);
                    last["thoughtSignature"] = json!(signature);
                }
                stream.push(event(vec![last], true));
            }
            Ending::Truncated => {}
            Ending::Error => stream.push(google_error(
                500,
                "INTERNAL",
                "An internal error has occurred. Please retry or report in \
                 https://developers.generativeai.google/guide/troubleshooting",
            )),
        }
        (stream, blobs)
    }
}

/// What a grounded answer says it drew on, shaped like the real `groundingMetadata`.
fn grounding_metadata() -> Value {
    json!({
        "webSearchQueries": ["red fox photos"],
        "groundingChunks": [
            {"web": {"uri": "https://vertexaisearch.cloud.google.com/grounding-api-redirect/fox1",
                     "title": "wildlife.example"}},
            {"web": {"uri": "https://vertexaisearch.cloud.google.com/grounding-api-redirect/fox2",
                     "title": "foxes.example"}}
        ],
        "searchEntryPoint": {"renderedContent": "<div class=\"container\">red fox photos</div>"}
    })
}

fn token_estimate(text: &str) -> u32 {
    u32::try_from(text.len() / 4 + 1).unwrap_or(u32::MAX)
}

fn usage_metadata(
    endpoint: &Endpoint,
    request: &GenerationRequest,
    text_tokens: u32,
    image_tokens: u32,
    thought_tokens: u32,
) -> Value {
    let per_input_image = if endpoint.family() == Family::Gemini3Pro {
        560
    } else {
        258
    };
    let prompt_image_tokens = request.prompt_images * per_input_image;
    let prompt = request.prompt_text_tokens + prompt_image_tokens;
    let candidates = text_tokens + image_tokens;
    let mut prompt_details =
        vec![json!({"modality": "TEXT", "tokenCount": request.prompt_text_tokens})];
    if prompt_image_tokens > 0 {
        prompt_details.push(json!({"modality": "IMAGE", "tokenCount": prompt_image_tokens}));
    }
    let mut candidate_details = Vec::new();
    if image_tokens > 0 {
        candidate_details.push(json!({"modality": "IMAGE", "tokenCount": image_tokens}));
    }
    if text_tokens > 0 {
        candidate_details.push(json!({"modality": "TEXT", "tokenCount": text_tokens}));
    }
    let mut usage = json!({
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thought_tokens,
        "promptTokensDetails": prompt_details,
        "candidatesTokensDetails": candidate_details,
    });
    if thought_tokens > 0 {
        usage["thoughtsTokenCount"] = json!(thought_tokens);
    }
    if endpoint.is_vertex() {
        usage["trafficType"] = json!("ON_DEMAND");
    } else {
        usage["serviceTier"] = json!("standard");
    }
    usage
}

// ---------------------------------------------------------------------------------------------
// Random bytes and images
// ---------------------------------------------------------------------------------------------

/// A small, fast PRNG: the data only has to look random and be reproducible.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn fill(&mut self, bytes: &mut [u8]) {
        for chunk in bytes.chunks_mut(8) {
            let value = self.next().to_le_bytes();
            chunk.copy_from_slice(&value[..chunk.len()]);
        }
    }
}

/// Random bytes as standard base64 of about `chars` characters, always ending in padding so
/// clients that strip or re-encode it get caught.
fn random_base64(rng: &mut SplitMix64, chars: usize) -> String {
    let mut len = (chars * 3 / 4).max(4);
    if len.is_multiple_of(3) {
        len -= 1;
    }
    let mut bytes = vec![0; len];
    rng.fill(&mut bytes);
    STANDARD.encode(bytes)
}

fn random_id(rng: &mut SplitMix64) -> String {
    let mut bytes = [0; 16];
    rng.fill(&mut bytes);
    general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A 512x512 picture (gradient plus noise) that bigger images are tiled from: building every size
/// pixel by pixel would be slow in an unoptimised test build. The noise keeps JPEG from
/// compressing the picture to almost nothing, so byte sizes stay realistic.
fn tile() -> &'static RgbImage {
    static TILE: OnceLock<RgbImage> = OnceLock::new();
    TILE.get_or_init(|| {
        const SIDE: u32 = 512;
        let mut rng = SplitMix64(0x7115);
        let mut tile = RgbImage::new(SIDE, SIDE);
        for (x, y, pixel) in tile.enumerate_pixels_mut() {
            let noise = rng.next().to_le_bytes();
            let jitter = |i: usize| i32::from(noise[i] % NOISE) - i32::from(NOISE / 2);
            let r = (x / 2) as i32;
            let g = (y / 2) as i32;
            let b = 96 + ((x + y) % 128) as i32;
            pixel.0 = [
                (r + jitter(0)).clamp(0, 255) as u8,
                (g + jitter(1)).clamp(0, 255) as u8,
                (b + jitter(2)).clamp(0, 255) as u8,
            ];
        }
        tile
    })
}

/// Noise amplitude of the tile: tuned so a 1K JPEG is a few hundred KB, like the real ones.
const NOISE: u8 = 24;

/// The base picture of a size, tiled from [`tile`].
fn base_pixels(width: u32, height: u32) -> RgbImage {
    let tile = tile();
    let row_bytes = tile.width() as usize * 3;
    let mut image = RgbImage::new(width, height);
    let width_bytes = width as usize * 3;
    for (y, row) in image.chunks_exact_mut(width_bytes).enumerate() {
        let tile_row = y % tile.height() as usize;
        let source = &tile.as_raw()[tile_row * row_bytes..(tile_row + 1) * row_bytes];
        for chunk in row.chunks_mut(row_bytes) {
            chunk.copy_from_slice(&source[..chunk.len()]);
        }
    }
    image
}

/// The base JPEG of each size, encoded once per test process: the image crate's encoder needs
/// about a quarter of a second per megapixel, too slow to run for every reply.
fn base_jpeg(width: u32, height: u32) -> Arc<Vec<u8>> {
    static JPEGS: OnceLock<Mutex<HashMap<Size, Arc<Vec<u8>>>>> = OnceLock::new();
    let mut jpegs = lock(JPEGS.get_or_init(Mutex::default));
    jpegs
        .entry((width, height))
        .or_insert_with(|| {
            let image = base_pixels(width, height);
            let mut bytes = Vec::new();
            JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY)
                .encode(image.as_raw(), width, height, ExtendedColorType::Rgb8)
                // An in-memory RGB buffer of matching size only fails to encode on a bug here.
                .expect("encode the base JPEG");
            Arc::new(bytes)
        })
        .clone()
}

const JPEG_QUALITY: u8 = 90;

/// A distinct image of this size.
fn render_image(family: Family, width: u32, height: u32, seed: u64) -> (&'static str, Vec<u8>) {
    if family == Family::Gemini25 {
        ("image/png", render_png(width, height, seed))
    } else {
        ("image/jpeg", vary_jpeg(&base_jpeg(width, height), seed))
    }
}

/// The base JPEG made distinct in microseconds: the seed is written into the luminance
/// quantisation table, which changes every decoded pixel a little without re-encoding, and into a
/// comment segment for whoever looks at the bytes.
fn vary_jpeg(base: &[u8], seed: u64) -> Vec<u8> {
    const SOI: usize = 2;
    let comment = format!("fake-gemini image {seed}");
    let mut jpeg = Vec::with_capacity(base.len() + comment.len() + 4);
    jpeg.extend_from_slice(&base[..SOI]);
    jpeg.extend_from_slice(&[0xFF, 0xFE]);
    jpeg.extend_from_slice(&(comment.len() as u16 + 2).to_be_bytes());
    jpeg.extend_from_slice(comment.as_bytes());
    let tables_from = jpeg.len();
    jpeg.extend_from_slice(&base[SOI..]);

    let mut at = tables_from;
    // Walk the marker segments up to the start of scan; each is FF, marker, 2-byte length.
    while at + 4 <= jpeg.len() && jpeg[at] == 0xFF && jpeg[at + 1] != 0xDA {
        let marker = jpeg[at + 1];
        let length = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
        // A DQT segment holding the luminance table (id 0) in 8-bit precision first.
        if marker == 0xDB && jpeg.get(at + 4) == Some(&0x00) {
            let table = &mut jpeg[at + 5..at + 5 + 64];
            // Base-4 digits of the seed added to the 32 lowest frequencies (zigzag order), which
            // every block of the noisy picture uses: distinct seeds give distinct pixels.
            let mut rest = seed;
            for entry in table.iter_mut().take(32) {
                *entry = entry.saturating_add((rest % 4) as u8);
                rest /= 4;
            }
            break;
        }
        at += 2 + length;
    }
    jpeg
}

/// PNG has no such shortcut, but storing the pixels without compression is cheap (and about as
/// large as the real, compressed, noisier PNGs): paint a band whose place and colour depend on the
/// seed, then encode.
fn render_png(width: u32, height: u32, seed: u64) -> Vec<u8> {
    let mut image = base_pixels(width, height);
    let band = 16.min(height);
    let top = (seed.wrapping_mul(97) % u64::from(height - band + 1)) as u32;
    let colour = SplitMix64(seed).next().to_le_bytes();
    let row_bytes = width as usize * 3;
    let pixels: &mut [u8] = &mut image;
    let band_bytes = &mut pixels[top as usize * row_bytes..(top + band) as usize * row_bytes];
    for pixel in band_bytes.chunks_exact_mut(3) {
        pixel.copy_from_slice(&colour[..3]);
    }
    let mut bytes = Vec::new();
    PngEncoder::new_with_quality(
        &mut bytes,
        CompressionType::Uncompressed,
        FilterType::NoFilter,
    )
    .write_image(image.as_raw(), width, height, ExtendedColorType::Rgb8)
    // As for the JPEG: only a bug here makes an in-memory encode fail.
    .expect("encode a PNG");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_scale_from_the_real_1k_table() {
        assert_eq!(pixel_size(Family::Gemini3Pro, (16, 9), 2.0), (2752, 1536));
        assert_eq!(pixel_size(Family::Gemini3Pro, (1, 1), 4.0), (4096, 4096));
        assert_eq!(pixel_size(Family::Gemini31Flash, (9, 16), 0.5), (384, 688));
        assert_eq!(pixel_size(Family::Gemini31Flash, (1, 4), 1.0), (512, 2048));
        assert_eq!(pixel_size(Family::Gemini25, (21, 9), 1.0), (1536, 672));
    }

    #[test]
    fn endpoints_are_parsed_from_the_path() {
        let gemini = Endpoint::parse("/v1beta/models/m:streamGenerateContent", Some("alt=sse"));
        let gemini = gemini.unwrap();
        assert_eq!((gemini.api, gemini.model.as_str()), (Api::Gemini, "m"));
        assert!(gemini.stream && gemini.sse);
        let vertex = Endpoint::parse(
            "/v1/projects/p/locations/global/publishers/google/models/m:generateContent",
            None,
        );
        assert_eq!(
            vertex.map(|e| (e.api, e.stream)),
            Some((Api::Vertex, false))
        );
        let express = Endpoint::parse("/v1/publishers/google/models/m:generateContent", None);
        assert_eq!(express.map(|e| e.api), Some(Api::VertexExpress));
        assert!(Endpoint::parse("/v1beta/models/m:countTokens", None).is_none());
        assert!(Endpoint::parse("/v1beta/models/m", None).is_none());
        assert!(
            Endpoint::parse(
                "/v1/projects/p/zones/z/publishers/google/models/m:generateContent",
                None
            )
            .is_none()
        );
    }

    #[test]
    fn signatures_match_in_either_base64_alphabet() {
        let shared = Shared::new(Config::default());
        let pro = Family::Gemini3Pro;
        shared.remember(pro, SignedKind::Image, "ab+/cd==", "x+y/z+==");
        // What the Python SDK sends back: the same bytes, URL-safe.
        assert!(shared.was_issued(pro, SignedKind::Image, "ab-_cd==", "x-y_z-=="));
        assert!(shared.was_issued(pro, SignedKind::Image, "ab+/cd==", "x+y/z+=="));
        assert!(!shared.was_issued(pro, SignedKind::Image, "ab+/cd==", "x+y/z/=="));
        assert!(!shared.was_issued(pro, SignedKind::Image, "ab+/ce==", "x+y/z+=="));
        // Another family's signature is not this one's.
        let flash = Family::Gemini31Flash;
        assert!(!shared.was_issued(flash, SignedKind::Image, "ab+/cd==", "x+y/z+=="));
    }

    #[test]
    fn blobs_are_spliced_into_the_json() {
        let mut blobs = Blobs::default();
        let value = json!({"data": blobs.add("QUJD".into()), "text": "@@fake-gemini-blob-x"});
        assert_eq!(
            blobs.to_json(&value, false),
            r#"{"data":"QUJD","text":"@@fake-gemini-blob-x"}"#
        );
    }
}
