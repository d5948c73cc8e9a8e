//! The fake server's Interactions API (`/v1beta/interactions`, and `/v1/interactions` where the Python SDK sends
//! it by default), as the official SDK's types define it (google-genai 3.6.1,
//! `google/genai/_gaos/types/interactions/`):
//!
//! - `POST` creates an interaction: the input (a string, blocks, or steps) is checked, the conversation is the
//!   stored chain of `previous_interaction_id` plus the new input, and the answer is a `thought` step (summary when
//!   `generation_config.thinking_summaries` is `auto`, and a signature) before each `model_output` step: text,
//!   then the image (inline, or at a `uri` on this server with `response_format.delivery = "uri"`). One signature
//!   per output step is the fake's model of where the real API keeps what generateContent puts on each part; it is
//!   remembered like generateContent's signatures, so a thread can move to generateContent and back.
//! - `stream: true` answers with server-sent events (`interaction.created`, `step.start`, `step.delta`,
//!   `step.stop`, `interaction.completed`), framed with `event:` and `data:` lines and CRLF.
//! - Stored interactions expire after a time tests can set ([`FakeGemini::set_interaction_ttl`]) or at once
//!   ([`FakeGemini::expire_interaction`]); an unknown, expired, deleted or `store: false` id answers 404
//!   `{"error": {"code": "not_found", ...}}` (SDK `error.py`: the code is a string).
//! - Thought signatures in input steps are checked like generateContent's: a `thought` step's signature must be
//!   the one issued for the output that follows it, and an image output without one is refused.
//! - `GET` returns a stored interaction (its input too with `include_input=true`); `DELETE` forgets it.
//!
//! Scripted replies ([`Reply`]) work as for generateContent: errors verbatim, hangs, delays, disconnects, a
//! stream cut before `interaction.completed` (`TruncatedStream`) or ended by an `error` event (`StreamError`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Map;

use super::*;

/// How long the real API keeps an interaction on the paid tier (API-NOTES.md: 55 days; 1 day free).
const DEFAULT_TTL: Duration = Duration::from_secs(55 * 24 * 3600);

/// The fields of `CreateModelInteraction` (SDK `createmodelinteraction.py`); anything else is an unknown name.
const CREATE_FIELDS: &[&str] = &[
    "model",
    "background",
    "cached_content",
    "continuation_token",
    "environment",
    "generation_config",
    "input",
    "labels",
    "previous_interaction_id",
    "response_format",
    "response_mime_type",
    "response_modalities",
    "safety_settings",
    "service_tier",
    "store",
    "stream",
    "system_instruction",
    "tools",
    "webhook_config",
];

/// The state of the APIs beyond generateContent, held by the server's `Shared`.
#[derive(Default)]
pub(super) struct MoreApis {
    interactions: Mutex<HashMap<String, Stored>>,
    ttl: Mutex<Option<Duration>>,
    pub(super) batch: super::batch::BatchState,
}

/// One stored interaction.
#[derive(Clone)]
struct Stored {
    model: String,
    previous: Option<String>,
    /// This turn's input steps, as sent.
    input: Vec<Value>,
    /// The model's steps, with the large strings in place.
    output: Vec<Value>,
    usage: Value,
    stored_at: Instant,
    expired: bool,
}

impl FakeGemini {
    /// How long stored interactions live from now on (default: 55 days, as on the paid tier).
    pub fn set_interaction_ttl(&self, ttl: Duration) {
        *lock(&self.shared.more.ttl) = Some(ttl);
    }

    /// Makes one stored interaction expire now.
    pub fn expire_interaction(&self, id: &str) {
        if let Some(stored) = lock(&self.shared.more.interactions).get_mut(id) {
            stored.expired = true;
        }
    }

    /// The ids of the interactions stored and not expired.
    pub fn stored_interactions(&self) -> Vec<String> {
        let ttl = self.shared.more.ttl();
        let mut ids: Vec<String> = lock(&self.shared.more.interactions)
            .iter()
            .filter(|(_, s)| s.alive(ttl))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }
}

impl MoreApis {
    fn ttl(&self) -> Duration {
        lock(&self.ttl).unwrap_or(DEFAULT_TTL)
    }
}

impl Stored {
    fn alive(&self, ttl: Duration) -> bool {
        !self.expired && self.stored_at.elapsed() < ttl
    }
}

/// The API version prefix of a path: `/v1beta/...` (docs) or `/v1/...` (the SDK's default).
pub(super) fn versioned(path: &str) -> Option<&str> {
    path.strip_prefix("/v1beta/")
        .or_else(|| path.strip_prefix("/v1/"))
}

/// An error in the Interactions API's own shape (SDK `error.py`: `{code: string, message}`).
fn interactions_error(status: u16, code: &str, message: impl AsRef<str>) -> ApiError {
    ApiError {
        status,
        body: json!({"error": {"code": code, "message": message.as_ref()}}),
    }
}

fn invalid(message: impl AsRef<str>) -> ApiError {
    interactions_error(400, "invalid_argument", message)
}

fn not_found(id: &str) -> ApiError {
    interactions_error(
        404,
        "not_found",
        format!("Interaction '{id}' was not found, or has expired."),
    )
}

/// The fake Gemini endpoint a request of these APIs is checked against (auth and model behaviour).
pub(super) fn gemini_endpoint(model: &str, stream: bool) -> Endpoint {
    Endpoint {
        api: Api::Gemini,
        model: model.to_string(),
        stream,
        sse: stream,
        gzip: false,
    }
}

/// The base URL this request reached the server by, for the URLs the server hands out.
pub(super) fn own_url(headers: &HeaderMap) -> String {
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// Answers a request of the Interactions, Batch or Files API; `None` when the path is none of theirs.
pub(super) async fn answer(
    shared: &Arc<Shared>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    started: Instant,
) -> Option<Response> {
    let path = uri.path();
    let rest = versioned(path).and_then(|p| p.strip_prefix("interactions"));
    let Some(rest) = rest else {
        return super::batch::answer(shared, method, uri, headers, body, started).await;
    };
    let reject = |error: ApiError| Some(error.into_response(None, started));
    if let Err(error) = check_auth(
        &shared.config,
        &gemini_endpoint("", false),
        uri.query(),
        headers,
    ) {
        return reject(error);
    }
    match (method.as_str(), rest) {
        ("POST", "") => Some(create(shared, headers, body, started).await),
        ("GET", id) if id.starts_with('/') => {
            let include_input = query_param(uri.query(), "include_input") == Some("true");
            Some(match get(shared, &id[1..], include_input) {
                Ok(interaction) => json_response(200, &interaction, started),
                Err(error) => error.into_response(None, started),
            })
        }
        ("DELETE", id) if id.starts_with('/') => {
            let id = &id[1..];
            let ttl = shared.more.ttl();
            let removed = lock(&shared.more.interactions)
                .remove(id)
                .filter(|s| s.alive(ttl));
            Some(match removed {
                Some(_) => json_response(200, &json!({}), started),
                None => not_found(id).into_response(None, started),
            })
        }
        _ => reject(ApiError::new(
            404,
            "NOT_FOUND",
            format!("The requested URL {path} was not found on this server."),
        )),
    }
}

fn get(shared: &Shared, id: &str, include_input: bool) -> Result<Value, ApiError> {
    let ttl = shared.more.ttl();
    let stored = lock(&shared.more.interactions)
        .get(id)
        .filter(|s| s.alive(ttl))
        .cloned()
        .ok_or_else(|| not_found(id))?;
    let mut steps = Vec::new();
    if include_input {
        steps.extend(stored.input.iter().cloned());
    }
    steps.extend(stored.output.iter().cloned());
    let mut interaction = json!({
        "id": id,
        "status": "completed",
        "model": stored.model,
        "created": TIMESTAMP,
        "updated": TIMESTAMP,
        "steps": steps,
        "usage": stored.usage,
    });
    if let Some(previous) = stored.previous {
        interaction["previous_interaction_id"] = json!(previous);
    }
    Ok(interaction)
}

const TIMESTAMP: &str = "2026-06-01T12:00:00Z";

/// What a valid create asks for.
struct Create {
    model: String,
    previous: Option<String>,
    /// This turn's input as steps.
    input: Vec<Value>,
    store: bool,
    stream: bool,
    uri_delivery: bool,
    generation: GenerationRequest,
}

async fn create(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    body: &Bytes,
    started: Instant,
) -> Response {
    let parsed: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(err) => {
            return invalid(format!("Invalid JSON payload received. {err}"))
                .into_response(None, started);
        }
    };
    let request = match admit_create(shared, &parsed) {
        Ok(request) => request,
        Err(error) => return error.into_response(None, started),
    };
    let mut reply = shared.next_reply();
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
        Reply::ImageWithText(text) | Reply::ChunkedText(text, _) => (
            Answer::Image {
                text: Some(text),
                piece: None,
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
        Reply::StreamError if !request.stream => {
            return interactions_error(500, "internal", "An internal error has occurred.")
                .into_response(None, started);
        }
        Reply::StreamError => (Answer::Text("Here is".into()), Ending::Error),
        Reply::Status(status, body) => return json_response(status, &body, started),
        Reply::RawBody(status, body) => return response(status, JSON, Body::from(body), started),
        Reply::Fixture(name) => {
            let content_type = if name.ends_with(".sse") {
                "text/event-stream"
            } else {
                JSON
            };
            return match std::fs::read(super::super::fixture_path(name)) {
                Ok(body) => response(200, content_type, Body::from(body), started),
                Err(err) => {
                    interactions_error(500, "internal", format!("fake Gemini: {name}: {err}"))
                        .into_response(None, started)
                }
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
    let base = own_url(headers);
    let producer = shared.clone();
    let produced = tokio::task::spawn_blocking(move || {
        let produced = producer.produce_steps(&request, answer, &base);
        (request, produced)
    })
    .await;
    let (request, (id, steps, usage, blobs)) = match produced {
        Ok(produced) => produced,
        Err(err) => {
            return interactions_error(500, "internal", format!("fake Gemini failed: {err}"))
                .into_response(None, started);
        }
    };
    if request.store && ending == Ending::Finished {
        let output = steps
            .iter()
            .map(|step| serde_json::from_str(&blobs.to_json(step, false)).unwrap_or(Value::Null))
            .collect();
        lock(&shared.more.interactions).insert(
            id.clone(),
            Stored {
                model: request.model.clone(),
                previous: request.previous.clone(),
                input: request.input.clone(),
                output,
                usage: usage.clone(),
                stored_at: Instant::now(),
                expired: false,
            },
        );
    }
    if !request.stream {
        let mut interaction = json!({
            "id": id,
            "status": "completed",
            "model": request.model,
            "object": "interaction",
            "created": TIMESTAMP,
            "updated": TIMESTAMP,
            "steps": steps,
            "usage": usage,
        });
        if let Some(previous) = &request.previous {
            interaction["previous_interaction_id"] = json!(previous);
        }
        let text = blobs.to_json(&interaction, true);
        lock(&shared.sent).push(text.clone());
        return response(200, JSON, Body::from(text), started);
    }
    stream_events(shared, &request, &id, steps, usage, blobs, ending, started)
}

/// Checks a create the way the API would, and works out what it asks for.
fn admit_create(shared: &Shared, body: &Value) -> Result<Create, ApiError> {
    let Some(fields) = body.as_object() else {
        return Err(invalid(
            "Invalid JSON payload received. Expected an object.",
        ));
    };
    if let Some(unknown) = fields.keys().find(|k| !CREATE_FIELDS.contains(&k.as_str())) {
        return Err(invalid(format!(
            "Invalid JSON payload received. Unknown name \"{unknown}\": Cannot find field."
        )));
    }
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| invalid("model is required."))?
        .to_string();
    if let Some(models) = &shared.config.models
        && !models.contains(&model)
    {
        return Err(interactions_error(
            404,
            "not_found",
            format!("models/{model} is not found, or is not supported for interactions."),
        ));
    }
    let input = input_steps(body.get("input").unwrap_or(&Value::Null))?;
    if input
        .last()
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        != Some("user_input")
    {
        return Err(invalid(
            "The input must end with user input: the model answers a user turn.",
        ));
    }
    let store = body.get("store").and_then(Value::as_bool) != Some(false);
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    let previous = body
        .get("previous_interaction_id")
        .and_then(Value::as_str)
        .map(str::to_string);

    // The conversation: the stored chain, oldest first, then this input.
    let mut chain = Vec::new();
    let ttl = shared.more.ttl();
    let mut next = previous.clone();
    {
        let stored = lock(&shared.more.interactions);
        while let Some(id) = next {
            let interaction = stored
                .get(&id)
                .filter(|s| s.alive(ttl))
                .ok_or_else(|| not_found(&id))?;
            chain.push(interaction.clone());
            next = interaction.previous.clone();
        }
    }
    chain.reverse();
    let endpoint = gemini_endpoint(&model, stream);
    if shared.config.check_signatures && endpoint.family() != Family::Gemini25 {
        check_step_signatures(shared, endpoint.family(), &input)?;
    }
    let mut steps: Vec<&Value> = Vec::new();
    for stored in &chain {
        steps.extend(stored.input.iter());
        steps.extend(stored.output.iter());
    }
    steps.extend(input.iter());
    let history = contents_of(&steps);

    // generateContent's checks of sizes, ratios and thinking, on the equivalent request.
    let format = response_format(body.get("response_format"))?;
    let mut generation_config = json!({});
    let mut image_config = json!({});
    if let Some(ratio) = format.get("aspect_ratio") {
        image_config["aspectRatio"] = ratio.clone();
    }
    if let Some(size) = format.get("image_size") {
        image_config["imageSize"] = size.clone();
    }
    generation_config["imageConfig"] = image_config;
    if let Some(config) = body.get("generation_config").filter(|c| !c.is_null()) {
        let mut thinking = json!({});
        if let Some(level) = config.get("thinking_level") {
            thinking["thinkingLevel"] = level.clone();
        }
        if config.get("thinking_summaries").and_then(Value::as_str) == Some("auto") {
            thinking["includeThoughts"] = json!(true);
        }
        if thinking.as_object().is_some_and(|t| !t.is_empty()) {
            generation_config["thinkingConfig"] = thinking;
        }
    }
    let equivalent = json!({"contents": history, "generationConfig": generation_config});
    let generation = generation_request(&endpoint, &equivalent, &history)?;
    let uri_delivery = format.get("delivery").and_then(Value::as_str) == Some("uri");
    Ok(Create {
        model,
        previous,
        input,
        store,
        stream,
        uri_delivery,
        generation,
    })
}

/// The input as steps: a string, one block, a list of blocks (each as one `user_input` step, as the SDK's
/// `_normalize_create_body` does) or a list of steps. Blocks and steps are checked.
fn input_steps(input: &Value) -> Result<Vec<Value>, ApiError> {
    let steps = match input {
        Value::String(text) => {
            vec![json!({"type": "user_input", "content": [{"type": "text", "text": text}]})]
        }
        Value::Object(_) => vec![json!({"type": "user_input", "content": [input]})],
        Value::Array(items) if items.is_empty() => return Err(invalid("input must not be empty.")),
        Value::Array(items) => {
            let is_step = |item: &Value| {
                matches!(
                    item.get("type").and_then(Value::as_str),
                    Some("user_input" | "model_output" | "thought")
                )
            };
            if items.iter().all(is_step) {
                items.clone()
            } else if items.iter().any(is_step) {
                return Err(invalid("input mixes steps and content blocks."));
            } else {
                vec![json!({"type": "user_input", "content": items})]
            }
        }
        _ => return Err(invalid("input is required.")),
    };
    for (index, step) in steps.iter().enumerate() {
        let blocks = match step.get("type").and_then(Value::as_str) {
            Some("user_input" | "model_output") => step.get("content"),
            Some("thought") => step.get("summary"),
            other => {
                return Err(invalid(format!(
                    "input[{index}]: unknown step type {other:?}."
                )));
            }
        };
        for (at, block) in blocks
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            check_block(block, &format!("input[{index}].content[{at}]"))?;
        }
        if step.get("type").and_then(Value::as_str) == Some("thought")
            && let Some(signature) = step.get("signature")
            && !signature
                .as_str()
                .is_some_and(|s| lenient_base64(s) || s == SKIP_SIGNATURE)
        {
            return Err(invalid(format!(
                "input[{index}].signature: Base64 decoding failed."
            )));
        }
    }
    Ok(steps)
}

fn check_block(block: &Value, at: &str) -> Result<(), ApiError> {
    match block.get("type").and_then(Value::as_str) {
        Some("text") if block.get("text").is_some_and(Value::is_string) => Ok(()),
        Some("text") => Err(invalid(format!("{at}.text is required."))),
        Some("image") => {
            let data = block.get("data").and_then(Value::as_str);
            let uri = block.get("uri").and_then(Value::as_str);
            match (data, uri) {
                (Some(data), _) if !lenient_base64(data) => {
                    let start: String = data.chars().take(40).collect();
                    Err(invalid(format!(
                        "{at}.data: Base64 decoding failed for \"{start}...\""
                    )))
                }
                (Some(_), _) if block.get("mime_type").and_then(Value::as_str).is_none() => {
                    Err(invalid(format!("{at}.mime_type is required with data.")))
                }
                (Some(_), _) | (None, Some(_)) => Ok(()),
                (None, None) => Err(invalid(format!("{at}: an image needs data or a uri."))),
            }
        }
        other => Err(invalid(format!(
            "{at}: unsupported content type {other:?}."
        ))),
    }
}

fn response_format(format: Option<&Value>) -> Result<Map<String, Value>, ApiError> {
    let format = match format {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::Array(list)) => list
            .iter()
            .find(|f| f.get("type").and_then(Value::as_str) == Some("image"))
            .cloned()
            .unwrap_or(Value::Null),
        Some(other) => other.clone(),
    };
    let Value::Object(format) = format else {
        return Ok(Map::new());
    };
    if format.get("type").and_then(Value::as_str) != Some("image") {
        return Err(invalid(
            "response_format: this model answers with images (type \"image\").",
        ));
    }
    for (key, value) in &format {
        match key.as_str() {
            "type" | "aspect_ratio" | "image_size" => {}
            "delivery" if matches!(value.as_str(), Some("inline" | "uri")) => {}
            "mime_type" if value.as_str() == Some("image/jpeg") => {}
            _ => {
                return Err(invalid(format!(
                    "Invalid value at 'response_format.{key}': {value}"
                )));
            }
        }
    }
    Ok(format)
}

/// The check every naive client fails, for steps: a thought's signature must be the one issued with the output
/// that follows it; an image output must come after a signed thought.
fn check_step_signatures(shared: &Shared, family: Family, steps: &[Value]) -> Result<(), ApiError> {
    let mut signature: Option<&str> = None;
    for (index, step) in steps.iter().enumerate() {
        match step.get("type").and_then(Value::as_str) {
            Some("thought") => signature = step.get("signature").and_then(Value::as_str),
            Some("model_output") => {
                let first = step
                    .get("content")
                    .and_then(Value::as_array)
                    .and_then(|blocks| blocks.first());
                let signature = signature.take();
                let Some(first) = first else { continue };
                if signature == Some(SKIP_SIGNATURE) {
                    continue;
                }
                let is_image = first.get("type").and_then(Value::as_str) == Some("image");
                match (signature, is_image) {
                    (None, true) => {
                        return Err(invalid(format!(
                            "Image output in input[{index}] is missing the thought signature of the \
                             thought step before it. Please refer to {MISSING_SIGNATURE_DOCS} for more details."
                        )));
                    }
                    (None, false) => {}
                    (Some(signature), true) => {
                        let data = first
                            .get("data")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        if !shared.was_issued(family, SignedKind::Image, data, signature) {
                            return Err(invalid("Corrupted thought signature."));
                        }
                    }
                    (Some(signature), false) => {
                        let text = first
                            .get("text")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        if !shared.was_issued(family, SignedKind::Text, text, signature) {
                            return Err(invalid("Corrupted thought signature."));
                        }
                    }
                }
            }
            _ => signature = None,
        }
    }
    Ok(())
}

/// Steps in generateContent's shape (user and model contents with parts), as far as sizes and token counts go.
fn contents_of(steps: &[&Value]) -> Vec<Value> {
    let mut contents: Vec<Value> = Vec::new();
    for step in steps {
        let (role, blocks, thought) = match step.get("type").and_then(Value::as_str) {
            Some("user_input") => ("user", step.get("content"), false),
            Some("model_output") => ("model", step.get("content"), false),
            Some("thought") => ("model", step.get("summary"), true),
            _ => continue,
        };
        let parts: Vec<Value> = blocks
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|block| match block.get("type").and_then(Value::as_str) {
                Some("text") => Some(json!({"text": block.get("text"), "thought": thought})),
                Some("image") => Some(json!({"inlineData": {
                    "mimeType": block.get("mime_type"),
                    "data": block.get("data").and_then(Value::as_str).unwrap_or_default(),
                }, "thought": thought})),
                _ => None,
            })
            .collect();
        match contents.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(list) = last["parts"].as_array_mut() {
                    list.extend(parts);
                }
            }
            _ => contents.push(json!({"role": role, "parts": parts})),
        }
    }
    contents
}

impl Shared {
    /// The model's steps for a valid create: for each output (text, then image) a signed thought step before it;
    /// with summaries asked for, the first thought carries one. Large strings are blob placeholders.
    fn produce_steps(
        &self,
        request: &Create,
        answer: Answer,
        base_url: &str,
    ) -> (String, Vec<Value>, Value, Blobs) {
        let endpoint = gemini_endpoint(&request.model, request.stream);
        let family = endpoint.family();
        let signed = family != Family::Gemini25;
        let seed = NEXT_SEED.fetch_add(1, Ordering::Relaxed);
        let mut rng = SplitMix64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x1A7E);
        let id = format!("v1_{}", random_id(&mut rng));
        let mut blobs = Blobs::default();
        let mut steps = Vec::new();
        let mut summary = request.generation.include_thoughts.then(|| {
            vec![
                json!({"type": "text", "text": "**Planning the image**\n\nI'm working out the \
                composition, the light and the details the request asks for."}),
            ]
        });
        let mut thought = |steps: &mut Vec<Value>, signature: Option<Value>| {
            if signature.is_none() && summary.is_none() {
                return;
            }
            let mut step = json!({"type": "thought"});
            if let Some(signature) = signature {
                step["signature"] = signature;
            }
            if let Some(summary) = summary.take() {
                step["summary"] = json!(summary);
            }
            steps.push(step);
        };
        let (mut text_tokens, mut image_tokens) = (0u32, 0u32);
        let (text, image) = match answer {
            Answer::Image { text, .. } => (text, true),
            Answer::Text(text) => (Some(text), false),
        };
        if let Some(text) = text {
            text_tokens = token_estimate(&text);
            let signature = signed.then(|| {
                let signature = random_base64(&mut rng, 180);
                self.remember(family, SignedKind::Text, &text, &signature);
                json!(signature)
            });
            thought(&mut steps, signature);
            steps
                .push(json!({"type": "model_output", "content": [{"type": "text", "text": text}]}));
        }
        if image {
            let (mime, bytes) = render_image(
                family,
                request.generation.width,
                request.generation.height,
                seed,
            );
            let data = STANDARD.encode(&bytes);
            let signature = signed.then(|| {
                let chars = match self.config.signature_size {
                    SignatureSize::LikeImage => data.len(),
                    SignatureSize::Chars(chars) => chars,
                };
                let signature = random_base64(&mut rng, chars);
                self.remember(family, SignedKind::Image, &data, &signature);
                signature
            });
            thought(&mut steps, signature.clone().map(|s| blobs.add(s)));
            let block = if request.uri_delivery {
                let name = self
                    .more
                    .batch
                    .add_file(&format!("image-{seed}"), mime, bytes, true);
                json!({"type": "image", "mime_type": mime,
                       "uri": format!("{base_url}/v1beta/{name}:download?alt=media")})
            } else {
                json!({"type": "image", "mime_type": mime, "data": blobs.add(data.clone())})
            };
            steps.push(json!({"type": "model_output", "content": [block]}));
            image_tokens = request.generation.image_tokens;
            lock(&self.images).push(IssuedImage {
                model: request.model.clone(),
                mime_type: mime.to_string(),
                width: request.generation.width,
                height: request.generation.height,
                data,
                signature,
            });
        }
        let thought_tokens = if signed { 150 + (seed % 100) as u32 } else { 0 };
        let usage = interaction_usage(
            &endpoint,
            request,
            text_tokens,
            image_tokens,
            thought_tokens,
        );
        (id, steps, usage, blobs)
    }
}

/// The usage of an interaction: the whole conversation counts as input, as it is what the model reads (SDK
/// `usage.py` field names; modality names lowercase, SDK `modalitytokens.py`).
fn interaction_usage(
    endpoint: &Endpoint,
    request: &Create,
    text_tokens: u32,
    image_tokens: u32,
    thought_tokens: u32,
) -> Value {
    let per_input_image = if endpoint.family() == Family::Gemini3Pro {
        560
    } else {
        258
    };
    let prompt_images = request.generation.prompt_images;
    let input_text = request.generation.prompt_text_tokens;
    let input_images = prompt_images * per_input_image;
    let output = text_tokens + image_tokens;
    let mut input_by_modality = vec![json!({"modality": "text", "tokens": input_text})];
    if input_images > 0 {
        input_by_modality.push(json!({"modality": "image", "tokens": input_images}));
    }
    let mut output_by_modality = Vec::new();
    if image_tokens > 0 {
        output_by_modality.push(json!({"modality": "image", "tokens": image_tokens}));
    }
    if text_tokens > 0 {
        output_by_modality.push(json!({"modality": "text", "tokens": text_tokens}));
    }
    json!({
        "total_input_tokens": input_text + input_images,
        "total_output_tokens": output,
        "total_thought_tokens": thought_tokens,
        "total_tokens": input_text + input_images + output + thought_tokens,
        "input_tokens_by_modality": input_by_modality,
        "output_tokens_by_modality": output_by_modality,
    })
}

/// The answer as server-sent events.
#[allow(clippy::too_many_arguments)]
fn stream_events(
    shared: &Shared,
    request: &Create,
    id: &str,
    steps: Vec<Value>,
    usage: Value,
    blobs: Blobs,
    ending: Ending,
    started: Instant,
) -> Response {
    let mut events = vec![json!({
        "event_type": "interaction.created",
        "interaction": {"id": id, "status": "in_progress", "model": request.model,
                        "object": "interaction", "created": TIMESTAMP},
    })];
    for (index, step) in steps.iter().enumerate() {
        let kind = step.get("type").and_then(Value::as_str).unwrap_or_default();
        events.push(json!({"event_type": "step.start", "index": index, "step": {"type": kind}}));
        match kind {
            "thought" => {
                for block in step
                    .get("summary")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    events.push(json!({"event_type": "step.delta", "index": index,
                                       "delta": {"type": "thought_summary", "content": block}}));
                }
                if let Some(signature) = step.get("signature") {
                    events.push(json!({"event_type": "step.delta", "index": index,
                                       "delta": {"type": "thought_signature", "signature": signature}}));
                }
            }
            _ => {
                for block in step
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    match block.get("type").and_then(Value::as_str) {
                        Some("text") => {
                            // Text arrives in pieces, as it is generated.
                            let text = block
                                .get("text")
                                .and_then(Value::as_str)
                                .unwrap_or_default();
                            let middle = text
                                .char_indices()
                                .nth(text.chars().count() / 2)
                                .map_or(0, |(i, _)| i);
                            for piece in [&text[..middle], &text[middle..]] {
                                if !piece.is_empty() {
                                    events.push(json!({"event_type": "step.delta", "index": index,
                                                       "delta": {"type": "text", "text": piece}}));
                                }
                            }
                        }
                        _ => {
                            let mut delta = block.clone();
                            delta["type"] = json!("image");
                            events.push(
                                json!({"event_type": "step.delta", "index": index, "delta": delta}),
                            );
                        }
                    }
                }
            }
        }
        events.push(json!({"event_type": "step.stop", "index": index}));
        if ending == Ending::Error {
            events.push(json!({"event_type": "error",
                               "error": {"code": "internal", "message": "An internal error has occurred."}}));
            break;
        }
    }
    match ending {
        Ending::Finished => events.push(json!({
            "event_type": "interaction.completed",
            "interaction": {"id": id, "status": "completed", "model": request.model, "object": "interaction",
                            "created": TIMESTAMP, "updated": TIMESTAMP, "usage": usage},
        })),
        // Cut before the end: the last step's stop and the completion never come.
        Ending::Truncated => {
            events.pop();
        }
        Ending::Error => {}
    }
    let delay = shared.config.stream_event_delay;
    let frames: Vec<(usize, String)> = events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            let kind = event
                .get("event_type")
                .and_then(Value::as_str)
                .unwrap_or("message");
            (
                index,
                format!(
                    "event: {kind}\r\ndata: {}\r\n\r\n",
                    blobs.to_json(event, false)
                ),
            )
        })
        .collect();
    lock(&shared.sent).push(frames.iter().map(|(_, frame)| frame.as_str()).collect());
    let body = futures_util::stream::iter(frames).then(move |(index, frame)| async move {
        if index > 0 && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok::<_, Infallible>(frame)
    });
    response(200, "text/event-stream", Body::from_stream(body), started)
}
