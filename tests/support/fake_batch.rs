//! The fake server's Batch API and Files API, as the official SDK sends and reads them (google-genai 3.6.1
//! `batches.py`, `files.py`, `_api_client.py` `_upload_fd`) and as Google's Batch API reference describes them:
//!
//! - `POST /v1beta/models/{m}:batchGenerateContent` takes inline requests (`inputConfig.requests.requests[]`, each
//!   `{request, metadata: {key}}`) or an uploaded JSONL file (`inputConfig.fileName`, lines `{key, request}`), and
//!   answers an operation `batches/{id}`;
//! - the job's state goes `BATCH_STATE_PENDING` -> `RUNNING` -> `SUCCEEDED` over a delay tests set
//!   ([`FakeGemini::set_batch_delay`]); each request is checked like a generateContent request (signatures
//!   included) and answered with a generated image, or with an error (a failing check, or one scripted with
//!   [`FakeGemini::fail_batch_request`]). Results come inline for inline input, as a responses file for file input;
//! - `GET /v1beta/batches[/{id}]`, `POST .../{id}:cancel`, `DELETE .../{id}`;
//! - the Files API's resumable upload (`POST /upload/v1beta/files` with `X-Goog-Upload-*` headers, then the
//!   returned upload URL in one or more chunks, the last with `finalize`), `GET /v1beta/files/{id}`, its
//!   `:download?alt=media` (generated files only, as on the real API), and `DELETE`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::HeaderName;

use super::interactions::{gemini_endpoint, own_url, versioned};
use super::*;

/// The state of the Batch and Files APIs.
#[derive(Default)]
pub(super) struct BatchState {
    files: Mutex<HashMap<String, FakeFile>>,
    uploads: Mutex<HashMap<String, Upload>>,
    batches: Mutex<HashMap<String, FakeBatch>>,
    delay: Mutex<Option<Duration>>,
    /// Keys whose request answers this error instead of an image.
    failing: Mutex<HashMap<String, (u16, String)>>,
    next_id: AtomicU64,
}

#[derive(Clone)]
struct FakeFile {
    display_name: String,
    mime_type: String,
    bytes: Arc<Vec<u8>>,
    /// Made by the server (results, images): only those can be downloaded.
    generated: bool,
}

struct Upload {
    display_name: String,
    mime_type: String,
    declared: usize,
    received: Vec<u8>,
}

struct FakeBatch {
    model: String,
    display_name: String,
    created: Instant,
    requests: Vec<(String, Value)>,
    from_file: bool,
    cancelled: bool,
    /// Worked out when the job is first seen finished: per key, a response or an error.
    results: Option<Vec<(String, Result<Value, Value>)>>,
    responses_file: Option<String>,
}

/// How long a batch takes unless a test says otherwise.
const DEFAULT_BATCH_DELAY: Duration = Duration::from_millis(300);

impl FakeGemini {
    /// How long batch jobs take from now on: pending for the first half, running for the second.
    pub fn set_batch_delay(&self, delay: Duration) {
        *lock(&self.shared.more.batch.delay) = Some(delay);
    }

    /// Makes the request with this key answer an error (a google.rpc Status) in whatever batch it comes.
    pub fn fail_batch_request(&self, key: &str, status: u16, message: &str) {
        lock(&self.shared.more.batch.failing)
            .insert(key.to_string(), (status, message.to_string()));
    }

    /// The names of the batches the server holds.
    pub fn batch_names(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.shared.more.batch.batches)
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// A stored file's bytes (`files/{id}`).
    pub fn file_bytes(&self, name: &str) -> Option<Vec<u8>> {
        lock(&self.shared.more.batch.files)
            .get(name)
            .map(|f| f.bytes.as_ref().clone())
    }

    /// The names of the stored files.
    pub fn file_names(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.shared.more.batch.files)
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }
}

impl BatchState {
    fn id(&self, prefix: &str) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        // Real ids are opaque lowercase strings; a counter keeps test output readable.
        format!(
            "{prefix}{n:04}x{:08x}",
            (n.wrapping_mul(0x9E37_79B9)) as u32
        )
    }

    /// Stores a file; returns its name `files/{id}`.
    pub(super) fn add_file(
        &self,
        display_name: &str,
        mime_type: &str,
        bytes: Vec<u8>,
        generated: bool,
    ) -> String {
        let name = format!("files/{}", self.id("f"));
        lock(&self.files).insert(
            name.clone(),
            FakeFile {
                display_name: display_name.to_string(),
                mime_type: mime_type.to_string(),
                bytes: Arc::new(bytes),
                generated,
            },
        );
        name
    }

    fn delay(&self) -> Duration {
        lock(&self.delay).unwrap_or(DEFAULT_BATCH_DELAY)
    }
}

fn file_json(name: &str, file: &FakeFile, base: &str) -> Value {
    let digest = Sha256::digest(file.bytes.as_slice());
    let mut json = json!({
        "name": name,
        "displayName": file.display_name,
        "mimeType": file.mime_type,
        "sizeBytes": file.bytes.len().to_string(),
        "createTime": "2026-06-01T12:00:00.000000Z",
        "updateTime": "2026-06-01T12:00:00.000000Z",
        "expirationTime": "2026-06-03T12:00:00.000000Z",
        "sha256Hash": STANDARD.encode(digest),
        "uri": format!("{base}/v1beta/{name}"),
        "state": "ACTIVE",
        "source": if file.generated { "GENERATED" } else { "UPLOADED" },
    });
    if file.generated {
        json["downloadUri"] = json!(format!("{base}/v1beta/{name}:download?alt=media"));
    }
    json
}

/// Answers a Batch or Files API request; `None` when the path is none of theirs.
pub(super) async fn answer(
    shared: &Arc<Shared>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    started: Instant,
) -> Option<Response> {
    let path = uri.path();
    let base = own_url(headers);
    if let Some(rest) = path.strip_prefix("/upload").and_then(versioned) {
        if rest != "files" || method != Method::POST {
            return None;
        }
        return Some(upload(shared, uri, headers, body, &base, started));
    }
    let rest = versioned(path)?;
    let known = rest.starts_with("batches")
        || rest.starts_with("files/")
        || (rest.starts_with("models/") && rest.ends_with(":batchGenerateContent"));
    if !known {
        return None;
    }
    if let Err(error) = check_auth(
        &shared.config,
        &gemini_endpoint("", false),
        uri.query(),
        headers,
    ) {
        return Some(error.into_response(None, started));
    }
    let state = &shared.more.batch;
    let not_found = |what: &str| {
        Some(
            ApiError::new(
                404,
                "NOT_FOUND",
                format!("Requested entity was not found: {what}."),
            )
            .into_response(None, started),
        )
    };
    match method.as_str() {
        "POST" if rest.starts_with("models/") => {
            let model = &rest["models/".len()..rest.len() - ":batchGenerateContent".len()];
            Some(match create_batch(shared, model, body) {
                Ok(name) => json_response(
                    200,
                    &operation(shared, &name).await.unwrap_or(Value::Null),
                    started,
                ),
                Err(error) => error.into_response(None, started),
            })
        }
        "GET" if rest == "batches" => {
            let mut names: Vec<String> = lock(&state.batches).keys().cloned().collect();
            names.sort();
            let mut operations = Vec::new();
            for name in names {
                if let Some(op) = operation(shared, &name).await {
                    operations.push(op);
                }
            }
            Some(json_response(
                200,
                &json!({"operations": operations}),
                started,
            ))
        }
        "GET" if rest.starts_with("batches/") => match operation(shared, rest).await {
            Some(op) => Some(json_response(200, &op, started)),
            None => not_found(rest),
        },
        "POST" if rest.starts_with("batches/") && rest.ends_with(":cancel") => {
            let name = &rest[..rest.len() - ":cancel".len()];
            let state_now = operation(shared, name).await;
            let Some(op) = state_now else {
                return not_found(name);
            };
            let running = matches!(
                op["metadata"]["state"].as_str(),
                Some("BATCH_STATE_PENDING" | "BATCH_STATE_RUNNING")
            );
            if running && let Some(batch) = lock(&state.batches).get_mut(name) {
                batch.cancelled = true;
            }
            Some(json_response(200, &json!({}), started))
        }
        "DELETE" if rest.starts_with("batches/") => match lock(&state.batches).remove(rest) {
            Some(_) => Some(json_response(200, &json!({}), started)),
            None => not_found(rest),
        },
        "GET" if rest.starts_with("files/") => {
            let (name, download) = match rest.strip_suffix(":download") {
                Some(name) => (name, true),
                None => (rest, false),
            };
            let file = lock(&state.files).get(name).cloned();
            let Some(file) = file else {
                return not_found(name);
            };
            if !download {
                return Some(json_response(200, &file_json(name, &file, &base), started));
            }
            if !file.generated {
                return Some(
                    ApiError::invalid("Only generated files can be downloaded.")
                        .into_response(None, started),
                );
            }
            if query_param(uri.query(), "alt") != Some("media") {
                return Some(
                    ApiError::invalid("Downloads need alt=media.").into_response(None, started),
                );
            }
            // Sent in pieces, so a client that reads it line by line sees lines cut across chunks.
            let bytes = file.bytes.clone();
            let chunks: Vec<Result<Bytes, Infallible>> = bytes
                .chunks(64 * 1024)
                .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
                .collect();
            let mut response = Response::new(Body::from_stream(futures_util::stream::iter(chunks)));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_str(&file.mime_type)
                    .unwrap_or(HeaderValue::from_static("application/octet-stream")),
            );
            Some(response)
        }
        "DELETE" if rest.starts_with("files/") => match lock(&state.files).remove(rest) {
            Some(_) => Some(json_response(200, &json!({}), started)),
            None => not_found(rest),
        },
        _ => None,
    }
}

/// The resumable upload: a `start` with the file's metadata, then the bytes at the upload URL.
fn upload(
    shared: &Shared,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    base: &str,
    started: Instant,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let state = &shared.more.batch;
    let with_headers = |mut response: Response, pairs: &[(&'static str, String)]| {
        for (name, value) in pairs {
            if let Ok(value) = HeaderValue::from_str(value) {
                response
                    .headers_mut()
                    .insert(HeaderName::from_static(name), value);
            }
        }
        response
    };
    // The upload URL is the capability (the SDK sends no key with the bytes, `_api_client.py` `_upload_fd`).
    if let Some(upload_id) = query_param(uri.query(), "upload_id") {
        let command = header("x-goog-upload-command");
        let mut uploads = lock(&state.uploads);
        let Some(upload) = uploads.get_mut(upload_id) else {
            return ApiError::new(404, "NOT_FOUND", "Unknown upload.").into_response(None, started);
        };
        if command == "query" {
            let received = upload.received.len().to_string();
            return with_headers(
                response(200, TEXT, Body::empty(), started),
                &[
                    ("x-goog-upload-status", "active".into()),
                    ("x-goog-upload-size-received", received),
                ],
            );
        }
        let offset: Option<usize> = header("x-goog-upload-offset").parse().ok();
        if offset != Some(upload.received.len()) {
            return ApiError::invalid(format!(
                "X-Goog-Upload-Offset {:?} does not match the {} bytes received.",
                header("x-goog-upload-offset"),
                upload.received.len()
            ))
            .into_response(None, started);
        }
        let commands: Vec<&str> = command.split(',').map(str::trim).collect();
        if commands.contains(&"upload") {
            upload.received.extend_from_slice(body);
        }
        if !commands.contains(&"finalize") {
            return with_headers(
                response(200, TEXT, Body::empty(), started),
                &[("x-goog-upload-status", "active".into())],
            );
        }
        if upload.received.len() != upload.declared {
            return ApiError::invalid(format!(
                "The upload has {} bytes, but {} were declared.",
                upload.received.len(),
                upload.declared
            ))
            .into_response(None, started);
        }
        let Some(upload) = uploads.remove(upload_id) else {
            return ApiError::new(404, "NOT_FOUND", "Unknown upload.").into_response(None, started);
        };
        drop(uploads);
        let name = state.add_file(
            &upload.display_name,
            &upload.mime_type,
            upload.received,
            false,
        );
        let file = lock(&state.files).get(&name).cloned();
        let Some(file) = file else {
            return ApiError::new(500, "INTERNAL", "The file vanished.")
                .into_response(None, started);
        };
        return with_headers(
            json_response(
                200,
                &json!({"file": file_json(&name, &file, base)}),
                started,
            ),
            &[("x-goog-upload-status", "final".into())],
        );
    }
    if let Err(error) = check_auth(
        &shared.config,
        &gemini_endpoint("", false),
        uri.query(),
        headers,
    ) {
        return error.into_response(None, started);
    }
    if header("x-goog-upload-protocol") != "resumable" || header("x-goog-upload-command") != "start"
    {
        return ApiError::invalid("Uploads must use the resumable protocol.")
            .into_response(None, started);
    }
    let Ok(declared) = header("x-goog-upload-header-content-length").parse::<usize>() else {
        return ApiError::invalid("X-Goog-Upload-Header-Content-Length is required.")
            .into_response(None, started);
    };
    let metadata: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let file = &metadata["file"];
    let text = |v: &Value| v.as_str().map(str::to_string);
    let mime_type = text(&file["mimeType"])
        .or_else(|| text(&file["mime_type"]))
        .unwrap_or_else(|| header("x-goog-upload-header-content-type"));
    let display_name = text(&file["displayName"])
        .or_else(|| text(&file["display_name"]))
        .unwrap_or_default();
    let upload_id = state.id("u");
    lock(&state.uploads).insert(
        upload_id.clone(),
        Upload {
            display_name,
            mime_type,
            declared,
            received: Vec::with_capacity(declared.min(64 << 20)),
        },
    );
    let path = uri.path();
    with_headers(
        response(200, TEXT, Body::empty(), started),
        &[
            (
                "x-goog-upload-url",
                format!("{base}{path}?upload_id={upload_id}&upload_protocol=resumable"),
            ),
            ("x-goog-upload-status", "active".into()),
        ],
    )
}

/// Accepts a batch; returns its name.
fn create_batch(shared: &Shared, model: &str, body: &Bytes) -> Result<String, ApiError> {
    if let Some(models) = &shared.config.models
        && !models.iter().any(|m| m == model)
    {
        return Err(ApiError::new(
            404,
            "NOT_FOUND",
            format!("models/{model} is not found for API version v1beta."),
        ));
    }
    let body: Value = serde_json::from_slice(body)
        .map_err(|err| ApiError::invalid(format!("Invalid JSON payload received. {err}")))?;
    let batch = &body["batch"];
    let input = &batch["inputConfig"];
    let state = &shared.more.batch;
    let (requests, from_file) = if let Some(list) = input["requests"]["requests"].as_array() {
        let mut requests = Vec::new();
        for (index, item) in list.iter().enumerate() {
            let request = item
                .get("request")
                .filter(|r| r.is_object())
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "* batch.input_config.requests.requests[{index}].request: required\n"
                    ))
                })?;
            let key = item["metadata"]["key"]
                .as_str()
                .map_or_else(|| index.to_string(), str::to_string);
            requests.push((key, request.clone()));
        }
        (requests, false)
    } else if let Some(name) = input["fileName"].as_str() {
        let file = lock(&state.files).get(name).cloned().ok_or_else(|| {
            ApiError::new(404, "NOT_FOUND", format!("File {name} was not found."))
        })?;
        let mut requests = Vec::new();
        for (index, line) in file.bytes.split(|&b| b == b'\n').enumerate() {
            if line.trim_ascii().is_empty() {
                continue;
            }
            let line: Value = serde_json::from_slice(line)
                .map_err(|err| ApiError::invalid(format!("{name} line {}: {err}", index + 1)))?;
            let key = line["key"]
                .as_str()
                .map_or_else(|| index.to_string(), str::to_string);
            let request = line
                .get("request")
                .filter(|r| r.is_object())
                .ok_or_else(|| {
                    ApiError::invalid(format!("{name} line {}: a request is required", index + 1))
                })?;
            requests.push((key, request.clone()));
        }
        (requests, true)
    } else {
        return Err(ApiError::invalid(
            "* batch.input_config: requests or file_name is required\n",
        ));
    };
    if requests.is_empty() {
        return Err(ApiError::invalid("A batch needs at least one request."));
    }
    let name = format!("batches/{}", state.id("b"));
    lock(&state.batches).insert(
        name.clone(),
        FakeBatch {
            model: model.to_string(),
            display_name: batch["displayName"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            created: Instant::now(),
            requests,
            from_file,
            cancelled: false,
            results: None,
            responses_file: None,
        },
    );
    Ok(name)
}

/// The batch as an operation, with its state now; results are worked out the first time it is seen finished.
async fn operation(shared: &Arc<Shared>, name: &str) -> Option<Value> {
    let state = &shared.more.batch;
    let delay = state.delay();
    let (phase, needs_results, model, requests) = {
        let batches = lock(&state.batches);
        let batch = batches.get(name)?;
        let elapsed = batch.created.elapsed();
        let phase = if batch.cancelled {
            "BATCH_STATE_CANCELLED"
        } else if elapsed < delay / 2 {
            "BATCH_STATE_PENDING"
        } else if elapsed < delay {
            "BATCH_STATE_RUNNING"
        } else {
            "BATCH_STATE_SUCCEEDED"
        };
        let needs = phase == "BATCH_STATE_SUCCEEDED" && batch.results.is_none();
        (
            phase,
            needs,
            batch.model.clone(),
            needs.then(|| batch.requests.clone()),
        )
    };
    if needs_results && let Some(requests) = requests {
        let producer = shared.clone();
        let results = tokio::task::spawn_blocking(move || {
            requests
                .into_iter()
                .map(|(key, request)| {
                    let result = producer.batch_result(&model, &key, &request);
                    (key, result)
                })
                .collect::<Vec<_>>()
        })
        .await
        .ok()?;
        let mut batches = lock(&state.batches);
        let batch = batches.get_mut(name)?;
        if batch.results.is_none() {
            if batch.from_file {
                let mut jsonl = String::new();
                for (key, result) in &results {
                    let line = match result {
                        Ok(response) => json!({"key": key, "response": response}),
                        Err(error) => json!({"key": key, "error": error}),
                    };
                    jsonl.push_str(&line.to_string());
                    jsonl.push('\n');
                }
                let display = format!("{}-responses", batch.display_name);
                batch.responses_file =
                    Some(state.add_file(&display, "application/jsonl", jsonl.into_bytes(), true));
            }
            batch.results = Some(results);
        }
    }
    let batches = lock(&state.batches);
    let batch = batches.get(name)?;
    let count = batch.requests.len();
    let failed = batch
        .results
        .as_ref()
        .map_or(0, |r| r.iter().filter(|(_, r)| r.is_err()).count());
    let mut stats = json!({"requestCount": count.to_string()});
    match phase {
        "BATCH_STATE_SUCCEEDED" => {
            stats["successfulRequestCount"] = json!((count - failed).to_string());
            stats["failedRequestCount"] = json!(failed.to_string());
        }
        "BATCH_STATE_CANCELLED" => {}
        _ => stats["pendingRequestCount"] = json!(count.to_string()),
    }
    let mut metadata = json!({
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch",
        "model": format!("models/{}", batch.model),
        "displayName": batch.display_name,
        "createTime": "2026-06-01T12:00:00.000000Z",
        "updateTime": "2026-06-01T12:00:01.000000Z",
        "batchStats": stats,
        "state": phase,
        "name": name,
    });
    let done = matches!(phase, "BATCH_STATE_SUCCEEDED" | "BATCH_STATE_CANCELLED");
    if done {
        metadata["endTime"] = json!("2026-06-01T12:05:00.000000Z");
    }
    if phase == "BATCH_STATE_SUCCEEDED" {
        metadata["output"] = match (&batch.responses_file, &batch.results) {
            (Some(file), _) => json!({"responsesFile": file}),
            (None, Some(results)) => {
                let inlined: Vec<Value> = results
                    .iter()
                    .map(|(key, result)| match result {
                        Ok(response) => json!({"response": response, "metadata": {"key": key}}),
                        Err(error) => json!({"error": error, "metadata": {"key": key}}),
                    })
                    .collect();
                json!({"inlinedResponses": {"inlinedResponses": inlined}})
            }
            (None, None) => Value::Null,
        };
    }
    Some(json!({"name": name, "metadata": metadata, "done": done}))
}

impl Shared {
    /// One request of a batch, answered as generateContent would: a response, or an error status.
    fn batch_result(&self, model: &str, key: &str, request: &Value) -> Result<Value, Value> {
        let status = |code: u16, message: &str| json!({"code": code, "message": message});
        if let Some((code, message)) = lock(&self.more.batch.failing).get(key).cloned() {
            return Err(status(code, &message));
        }
        let endpoint = gemini_endpoint(model, false);
        let checked = validate_contents(request).and_then(|contents| {
            if self.config.check_signatures && endpoint.family() != Family::Gemini25 {
                check_signatures(self, &endpoint, contents)?;
            }
            generation_request(&endpoint, request, contents)
        });
        let generation = match checked {
            Ok(generation) => generation,
            Err(error) => {
                let message = error.body["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                return Err(status(error.status, &message));
            }
        };
        let (events, blobs) = self.produce(
            &endpoint,
            &generation,
            Answer::Image {
                text: None,
                piece: None,
            },
            Ending::Finished,
        );
        let single = events.into_iter().next().unwrap_or(Value::Null);
        serde_json::from_str(&blobs.to_json(&single, false))
            .map_err(|err| status(500, &err.to_string()))
    }
}
