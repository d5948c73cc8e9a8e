//! The Batch API: many generateContent requests run on Google's fleet at half price, answered within a day.
//! Gemini API only (on Vertex AI batch prediction is another API, with Cloud Storage or BigQuery input).
//!
//! Sources: SDK google-genai 3.6.1 `batches.py` (`_create`: `POST {version}/models/{model}:batchGenerateContent`;
//! `_CreateBatchJobParameters_to_mldev`, `_BatchJobSource_to_mldev`, `_InlinedRequest_to_mldev`: the body
//! `{"batch": {"displayName", "inputConfig": {"requests": {"requests": [{"request", "metadata"}]}} | {"fileName"}}}`;
//! `_BatchJob_from_mldev`: the answer is an operation whose `name` is `batches/{id}` and whose `metadata` holds
//! `displayName`, `state`, `createTime`, `updateTime`, `endTime`, `model`, `output`;
//! `_BatchJobDestination_from_mldev`: `output.responsesFile` or `output.inlinedResponses.inlinedResponses[]`;
//! `_InlinedResponse_from_mldev`: each `{response | error, metadata}`; `get`, `cancel` (`POST batches/{id}:cancel`),
//! `delete`, `_list` (`GET batches?pageSize&pageToken` answering `operations` and `nextPageToken`));
//! `_transformers.py` `t_job_state` (the `BATCH_STATE_*` names). Google's Batch API reference
//! (ai.google.dev/api/batch-api): `batchStats` with `requestCount`, `successfulRequestCount`, `failedRequestCount`,
//! `pendingRequestCount` (int64). API-NOTES.md: inline requests total at most 20 MB; the responses file is JSONL of
//! `{"key", "response" | "error"}`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Progress;
use super::body::{BlobSource, Body, Marks};
use super::client::Client;
use super::client::parse_json;
use super::error::{ApiError, GeminiError};
use super::files::{FileInfo, VERSION, int64};
use super::interactions::client::path_segment;
use super::interactions::types::string_enum;
use super::types::{GenerateContentRequest, GenerateContentResponse};

/// Inline requests may total this much (API-NOTES.md: 20 MB); bigger batches go through an uploaded file.
pub const INLINE_LIMIT_BYTES: u64 = 20 * 1000 * 1000;

/// One request of a batch, with the key its result comes back under.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRequest {
    pub key: String,
    pub request: GenerateContentRequest,
}

/// What to submit.
#[derive(Debug, Clone, Copy)]
pub struct NewBatch<'a> {
    /// A model id (`gemini-3-pro-image`) or `models/...`.
    pub model: &'a str,
    pub display_name: &'a str,
    pub requests: &'a [BatchRequest],
    /// Requests whose inline body would be bigger than this go through the Files API instead
    /// ([`INLINE_LIMIT_BYTES`] unless a test wants otherwise).
    pub max_inline_bytes: u64,
}

/// A submitted batch, and the requests file uploaded for it, if it needed one (delete it once the job is done).
#[derive(Debug, Clone, PartialEq)]
pub struct SubmittedBatch {
    pub job: BatchJob,
    pub uploaded: Option<FileInfo>,
}

/// SDK `_transformers.py` `t_job_state`, API reference `BatchState`. The SDK's own `JOB_STATE_*` spellings are
/// accepted too.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BatchState {
    #[default]
    Unspecified,
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Expired,
    Other(String),
}

string_enum!(BatchState {
    Unspecified = "BATCH_STATE_UNSPECIFIED",
    Pending = "BATCH_STATE_PENDING",
    Running = "BATCH_STATE_RUNNING",
    Succeeded = "BATCH_STATE_SUCCEEDED",
    Failed = "BATCH_STATE_FAILED",
    Cancelled = "BATCH_STATE_CANCELLED",
    Expired = "BATCH_STATE_EXPIRED",
});

impl BatchState {
    fn parse(text: &str) -> BatchState {
        match text.strip_prefix("JOB_STATE_") {
            Some(rest) => BatchState::from(format!("BATCH_STATE_{rest}").as_str()),
            None => BatchState::from(text),
        }
    }

    /// The job will not change any more.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            BatchState::Succeeded
                | BatchState::Failed
                | BatchState::Cancelled
                | BatchState::Expired
        )
    }

    /// `succeeded`, `running`, ... for people.
    pub fn word(&self) -> String {
        let name = self.as_str();
        name.strip_prefix("BATCH_STATE_")
            .unwrap_or(name)
            .to_ascii_lowercase()
    }
}

/// API reference `BatchStats` (int64 counts, written as strings).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchStats {
    #[serde(default, deserialize_with = "int64")]
    pub request_count: Option<u64>,
    #[serde(default, deserialize_with = "int64")]
    pub successful_request_count: Option<u64>,
    #[serde(default, deserialize_with = "int64")]
    pub failed_request_count: Option<u64>,
    #[serde(default, deserialize_with = "int64")]
    pub pending_request_count: Option<u64>,
}

/// Where the results are.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchOutput {
    /// Inline results, as the server listed them.
    Inline(Vec<Value>),
    /// A JSONL file of the Files API (`files/{id}`).
    File(String),
}

/// A batch job as `get` and `list` describe it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchJob {
    /// `batches/{id}`: what every later call names.
    pub name: String,
    pub display_name: Option<String>,
    pub model: Option<String>,
    pub state: BatchState,
    pub stats: BatchStats,
    pub create_time: Option<String>,
    pub update_time: Option<String>,
    pub end_time: Option<String>,
    pub output: Option<BatchOutput>,
    /// The operation's own error (a job that failed as a whole).
    pub error: Option<ApiError>,
}

impl BatchJob {
    /// From an operation (`{name, metadata, done, error, response}`) or, leniently, a bare `GenerateContentBatch`.
    pub fn from_value(value: &Value) -> Result<BatchJob, GeminiError> {
        let metadata = match value.get("metadata") {
            Some(metadata) if metadata.is_object() => metadata,
            _ => value,
        };
        let text = |v: &Value, name: &str| v.get(name).and_then(Value::as_str).map(str::to_string);
        let name = text(value, "name")
            .or_else(|| text(metadata, "name"))
            .ok_or_else(|| GeminiError::Malformed("a batch without a name".into()))?;
        let output_of = |output: &Value| -> Option<BatchOutput> {
            if let Some(file) = output.get("responsesFile").and_then(Value::as_str) {
                return Some(BatchOutput::File(file.to_string()));
            }
            let inlined = output.get("inlinedResponses")?;
            // `{"inlinedResponses": {"inlinedResponses": [...]}}`; a plain list is read too.
            let list = inlined
                .get("inlinedResponses")
                .unwrap_or(inlined)
                .as_array()?;
            Some(BatchOutput::Inline(list.clone()))
        };
        let output = metadata
            .get("output")
            .and_then(output_of)
            .or_else(|| value.get("response").and_then(output_of));
        let error = value.get("error").filter(|e| e.is_object()).map(api_error);
        Ok(BatchJob {
            name,
            display_name: text(metadata, "displayName"),
            model: text(metadata, "model"),
            state: metadata
                .get("state")
                .and_then(Value::as_str)
                .map(BatchState::parse)
                .unwrap_or_default(),
            stats: metadata
                .get("batchStats")
                .map(|s| serde_json::from_value(s.clone()))
                .transpose()
                .map_err(|e| GeminiError::Malformed(format!("batchStats: {e}")))?
                .unwrap_or_default(),
            create_time: text(metadata, "createTime"),
            update_time: text(metadata, "updateTime"),
            end_time: text(metadata, "endTime"),
            output,
            error,
        })
    }
}

/// One page of `list`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchPage {
    pub jobs: Vec<BatchJob>,
    pub next_page_token: Option<String>,
}

/// The result of one request of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchResult {
    /// The request's key (or `line N` / `#N` when the server gave none).
    pub key: String,
    pub result: Result<GenerateContentResponse, ApiError>,
}

/// A per-request error (a google.rpc Status: `{code, message, details}`) as an [`ApiError`].
fn api_error(status: &Value) -> ApiError {
    let code = status
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (100..600).contains(c))
        .unwrap_or(500);
    ApiError::from_status(code, status)
}

/// One result line or inline result: `{key | metadata.key, response | error}`.
pub(super) fn result_of(value: Value, fallback_key: String) -> Result<BatchResult, GeminiError> {
    let Value::Object(mut fields) = value else {
        return Err(GeminiError::Malformed(format!(
            "batch result {fallback_key} is not an object"
        )));
    };
    let key = match fields.remove("key") {
        Some(Value::String(key)) => Some(key),
        _ => None,
    }
    .or_else(|| {
        fields
            .get("metadata")
            .and_then(|m| m.get("key"))
            .and_then(Value::as_str)
            .map(str::to_string)
    })
    .unwrap_or(fallback_key);
    let result = if let Some(error) = fields.get("error").filter(|e| e.is_object()) {
        Err(api_error(error))
    } else {
        let response = fields.remove("response").unwrap_or(Value::Null);
        let response: GenerateContentResponse = serde_json::from_value(response)
            .map_err(|e| GeminiError::Malformed(format!("batch result {key}: {e}")))?;
        Ok(response)
    };
    Ok(BatchResult { key, result })
}

/// The body of `batchGenerateContent` with the requests inline, as the SDK builds it
/// (`_CreateBatchJobParameters_to_mldev`; `tests/fixtures/sdk/batch-create-request.json` is its output).
pub fn inline_batch_body(
    display_name: &str,
    requests: &[BatchRequest],
) -> Result<Value, GeminiError> {
    let inline: Vec<Value> = requests
        .iter()
        .map(|r| {
            Ok(json!({
                "request": serde_json::to_value(&r.request)?,
                "metadata": {"key": r.key},
            }))
        })
        .collect::<Result<_, serde_json::Error>>()
        .map_err(|e| GeminiError::Malformed(e.to_string()))?;
    Ok(json!({"batch": {
        "displayName": display_name,
        "inputConfig": {"requests": {"requests": inline}},
    }}))
}

impl Client {
    fn batches_url(&self) -> String {
        format!("{}/{VERSION}/batches", self.base_url())
    }

    pub(super) fn batch_url(&self, name: &str, suffix: &str) -> String {
        let id = name.strip_prefix("batches/").unwrap_or(name);
        format!("{}/{}{suffix}", self.batches_url(), path_segment(id))
    }

    /// Submits a batch: inline when the requests fit in `max_inline_bytes`, otherwise as a JSONL file uploaded
    /// through the Files API first. Stored values in the requests are marked ([`Marks::fill`]) and read from `blobs` as
    /// the body goes out.
    pub async fn create_batch(
        &self,
        batch: &NewBatch<'_>,
        marks: &Marks,
        blobs: &Arc<dyn BlobSource>,
        progress: &dyn Fn(Progress<'_>),
    ) -> Result<SubmittedBatch, GeminiError> {
        self.gemini_only("the Batch API")?;
        if batch.requests.is_empty() {
            return Err(GeminiError::Unsupported(
                "a batch needs at least one request".into(),
            ));
        }
        let encode = |e: serde_json::Error| GeminiError::Malformed(e.to_string());
        let model = batch.model.strip_prefix("models/").unwrap_or(batch.model);
        let url = format!(
            "{}/{VERSION}/models/{}:batchGenerateContent",
            self.base_url(),
            path_segment(model)
        );
        let inline_body = inline_batch_body(batch.display_name, batch.requests)?;
        let body = Body::marked(&inline_body.to_string(), marks, blobs.clone())
            .map_err(GeminiError::Malformed)?;
        let (body, uploaded) = if body.len() <= batch.max_inline_bytes {
            (body, None)
        } else {
            // One `{"key", "request"}` line per request (API-NOTES.md); streamed from the blobs like any body.
            let mut lines = String::new();
            for request in batch.requests {
                let line = json!({"key": request.key, "request": serde_json::to_value(&request.request).map_err(encode)?});
                lines.push_str(&line.to_string());
                lines.push('\n');
            }
            let file =
                Body::marked(&lines, marks, blobs.clone()).map_err(GeminiError::Malformed)?;
            let name = format!("{}-requests", batch.display_name);
            let uploaded = self
                .upload_file(&name, "application/jsonl", &file, progress)
                .await?;
            let body = json!({"batch": {
                "displayName": batch.display_name,
                "inputConfig": {"fileName": uploaded.name},
            }});
            let body = Body::plain(&body.to_string());
            (body, Some(uploaded))
        };
        let bytes = self
            .call(Method::POST, &url, &HeaderMap::new(), Some(&body), progress)
            .await?;
        let job = BatchJob::from_value(&parse_json::<Value>(&bytes)?)?;
        Ok(SubmittedBatch { job, uploaded })
    }

    /// A batch job's state now. `name` is `batches/{id}` (or the bare id).
    pub async fn get_batch(&self, name: &str) -> Result<BatchJob, GeminiError> {
        self.gemini_only("the Batch API")?;
        let bytes = self.get_bytes(&self.batch_url(name, "")).await?;
        BatchJob::from_value(&parse_json::<Value>(&bytes)?)
    }

    /// One page of this key's batch jobs.
    pub async fn list_batches(
        &self,
        page_size: Option<u32>,
        page_token: Option<&str>,
    ) -> Result<BatchPage, GeminiError> {
        self.gemini_only("the Batch API")?;
        let mut query = Vec::new();
        if let Some(size) = page_size {
            query.push(format!("pageSize={size}"));
        }
        if let Some(token) = page_token {
            query.push(format!("pageToken={}", path_segment(token)));
        }
        let mut url = self.batches_url();
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query.join("&"));
        }
        let page: Value = parse_json(&self.get_bytes(&url).await?)?;
        let jobs = page
            .get("operations")
            .or_else(|| page.get("batches"))
            .and_then(Value::as_array)
            .map(|list| list.iter().map(BatchJob::from_value).collect())
            .transpose()?
            .unwrap_or_default();
        Ok(BatchPage {
            jobs,
            next_page_token: page
                .get("nextPageToken")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_string),
        })
    }

    /// Asks the server to stop a job; requests already done keep their results.
    pub async fn cancel_batch(&self, name: &str) -> Result<(), GeminiError> {
        self.gemini_only("the Batch API")?;
        let url = self.batch_url(name, ":cancel");
        let empty = Body::plain("{}");
        self.call_unanswered(Method::POST, &url, &HeaderMap::new(), Some(&empty))
            .await
    }

    /// Deletes a job (its results go with it).
    pub async fn delete_batch(&self, name: &str) -> Result<(), GeminiError> {
        self.gemini_only("the Batch API")?;
        let url = self.batch_url(name, "");
        self.call_unanswered(Method::DELETE, &url, &HeaderMap::new(), None)
            .await
    }

    /// Polls a job every `every` until its state is final, telling `on_update` each state seen.
    pub async fn wait_for_batch(
        &self,
        name: &str,
        every: Duration,
        on_update: &dyn Fn(&BatchJob),
    ) -> Result<BatchJob, GeminiError> {
        loop {
            let job = self.get_batch(name).await?;
            on_update(&job);
            if job.state.is_final() {
                return Ok(job);
            }
            tokio::time::sleep(every).await;
        }
    }

    /// The results of a finished job, one request at a time: inline ones as listed, or the responses file read
    /// line by line as it downloads (never whole in memory).
    pub async fn batch_results(&self, job: &BatchJob) -> Result<BatchResults<'_>, GeminiError> {
        self.gemini_only("the Batch API")?;
        match &job.output {
            None => Err(GeminiError::Malformed(format!(
                "batch {} has no results (state {})",
                job.name,
                job.state.word()
            ))),
            Some(BatchOutput::Inline(list)) => Ok(BatchResults {
                source: Source::Inline(list.clone().into_iter()),
                count: 0,
            }),
            Some(BatchOutput::File(file)) => Ok(BatchResults {
                source: Source::File {
                    chunks: Box::pin(self.download_file(file).await?),
                    lines: LineSplitter::default(),
                    done: false,
                },
                count: 0,
            }),
        }
    }
}

/// The results of a batch, read one at a time with [`BatchResults::next`].
pub struct BatchResults<'a> {
    source: Source<'a>,
    count: usize,
}

type Chunks<'a> = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, GeminiError>> + 'a>>;

enum Source<'a> {
    Inline(std::vec::IntoIter<Value>),
    File {
        chunks: Chunks<'a>,
        lines: LineSplitter,
        done: bool,
    },
}

impl BatchResults<'_> {
    /// The next result, `None` after the last. A line that is not a result is an error for that line only: the
    /// ones after it can still be read.
    pub async fn next(&mut self) -> Option<Result<BatchResult, GeminiError>> {
        match &mut self.source {
            Source::Inline(list) => {
                let value = list.next()?;
                self.count += 1;
                Some(result_of(value, format!("#{}", self.count)))
            }
            Source::File {
                chunks,
                lines,
                done,
            } => loop {
                if let Some(line) = lines.next_line(*done) {
                    self.count += 1;
                    let fallback = format!("line {}", self.count);
                    return Some(
                        serde_json::from_slice::<Value>(&line)
                            .map_err(|e| {
                                GeminiError::Malformed(format!("batch result {fallback}: {e}"))
                            })
                            .and_then(|value| result_of(value, fallback)),
                    );
                }
                if *done {
                    return None;
                }
                match chunks.next().await {
                    Some(Ok(chunk)) => lines.push(&chunk),
                    Some(Err(e)) => {
                        *done = true;
                        return Some(Err(e));
                    }
                    None => *done = true,
                }
            },
        }
    }
}

/// Cuts a byte stream into non-empty lines. A line megabytes long arriving in many chunks is scanned once.
#[derive(Debug, Default)]
struct LineSplitter {
    buffer: Vec<u8>,
    /// Where the buffer's first unfinished line starts.
    start: usize,
    /// Up to where the buffer has been searched for a newline.
    scanned: usize,
}

impl LineSplitter {
    fn push(&mut self, chunk: &[u8]) {
        if self.start > 0 {
            self.buffer.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buffer.extend_from_slice(chunk);
    }

    /// The next complete line; at the end of the input (`last`), what remains too.
    fn next_line(&mut self, last: bool) -> Option<Vec<u8>> {
        loop {
            let found = self.buffer[self.scanned..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|i| self.scanned + i);
            let (end, next) = match found {
                Some(end) => (end, end + 1),
                None if last && self.start < self.buffer.len() => {
                    (self.buffer.len(), self.buffer.len())
                }
                None => {
                    self.scanned = self.buffer.len();
                    return None;
                }
            };
            let line = self.buffer[self.start..end].trim_ascii().to_vec();
            self.start = next;
            self.scanned = next;
            if !line.is_empty() {
                return Some(line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdk_fixture(name: &str) -> Value {
        serde_json::from_slice(&crate::test_support::fixture(&format!("sdk/{name}"))).unwrap()
    }

    #[test]
    fn the_inline_body_is_the_one_the_sdk_sends() {
        use crate::gemini::types::{Content, GenerationConfig, ImageConfig, Part};
        let requests: Vec<BatchRequest> = ["a", "b", "c"]
            .iter()
            .map(|key| BatchRequest {
                key: key.to_string(),
                request: GenerateContentRequest {
                    contents: vec![Content::user(vec![Part::text(format!(
                        "a fox, take {key}"
                    ))])],
                    generation_config: GenerationConfig {
                        response_modalities: vec!["TEXT".into(), "IMAGE".into()],
                        image_config: Some(ImageConfig {
                            aspect_ratio: Some("1:1".into()),
                            image_size: None,
                        }),
                        thinking_config: None,
                    },
                    tools: Vec::new(),
                    system_instruction: None,
                },
            })
            .collect();
        assert_eq!(
            inline_batch_body("foxes", &requests).unwrap(),
            sdk_fixture("batch-create-request.json")
        );
    }

    #[test]
    fn a_finished_job_reads_as_the_sdk_reads_it() {
        let job = BatchJob::from_value(&sdk_fixture("batch-operation.json")).unwrap();
        let sdk = sdk_fixture("batch-operation.sdk-view.json");
        assert_eq!(job.name, sdk["name"]);
        assert_eq!(job.state.as_str().replace("BATCH_", "JOB_"), sdk["state"]);
        assert_eq!(job.display_name.as_deref(), sdk["display_name"].as_str());
        assert_eq!(job.model.as_deref(), sdk["model"].as_str());
        let Some(BatchOutput::Inline(list)) = &job.output else {
            panic!("{:?}", job.output)
        };
        let results: Vec<BatchResult> = list
            .iter()
            .map(|v| result_of(v.clone(), String::new()).unwrap())
            .collect();
        let keys: Vec<&str> = results.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(json!(keys), sdk["keys"]);
        let errors: Vec<Option<&str>> = results
            .iter()
            .map(|r| r.result.as_ref().err().map(|e| e.message.as_str()))
            .collect();
        assert_eq!(json!(errors), sdk["errors"]);
        let response = results[0].result.as_ref().unwrap();
        let part = &response.candidates[0].content.as_ref().unwrap().parts[0];
        assert!(part.thought_signature.is_some() && part.inline_data.is_some());
        assert_eq!(job.stats.successful_request_count, Some(1));
    }

    #[test]
    fn states_parse_in_either_spelling_and_unknown_ones_survive() {
        assert_eq!(
            BatchState::parse("BATCH_STATE_RUNNING"),
            BatchState::Running
        );
        assert_eq!(
            BatchState::parse("JOB_STATE_SUCCEEDED"),
            BatchState::Succeeded
        );
        assert_eq!(
            BatchState::parse("BATCH_STATE_PAUSED"),
            BatchState::Other("BATCH_STATE_PAUSED".into())
        );
        assert!(BatchState::Expired.is_final());
        assert!(!BatchState::Pending.is_final());
        assert_eq!(BatchState::Cancelled.word(), "cancelled");
    }

    #[test]
    fn an_operation_describes_its_job_and_where_the_results_are() {
        let job = BatchJob::from_value(&json!({
            "name": "batches/abc",
            "metadata": {
                "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch",
                "model": "models/gemini-3-pro-image", "displayName": "foxes",
                "state": "BATCH_STATE_SUCCEEDED",
                "batchStats": {"requestCount": "3", "successfulRequestCount": "2", "failedRequestCount": "1"},
                "output": {"inlinedResponses": {"inlinedResponses": [
                    {"response": {"candidates": []}, "metadata": {"key": "a"}},
                    {"error": {"code": 400, "message": "bad"}, "metadata": {"key": "b"}}
                ]}}
            },
            "done": true
        }))
        .unwrap();
        assert_eq!(job.name, "batches/abc");
        assert_eq!(job.state, BatchState::Succeeded);
        assert_eq!(job.stats.request_count, Some(3));
        assert_eq!(job.stats.failed_request_count, Some(1));
        let Some(BatchOutput::Inline(list)) = &job.output else {
            panic!("{:?}", job.output)
        };
        let results: Vec<_> = list
            .iter()
            .enumerate()
            .map(|(i, v)| result_of(v.clone(), format!("#{i}")).unwrap())
            .collect();
        assert_eq!(results[0].key, "a");
        assert!(results[0].result.is_ok());
        assert_eq!(results[1].key, "b");
        let error = results[1].result.as_ref().unwrap_err();
        assert_eq!((error.http_status, error.message.as_str()), (400, "bad"));

        let job = BatchJob::from_value(&json!({"name": "batches/f", "metadata": {
            "state": "BATCH_STATE_SUCCEEDED", "output": {"responsesFile": "files/out"}}}))
        .unwrap();
        assert_eq!(job.output, Some(BatchOutput::File("files/out".into())));
        assert!(BatchJob::from_value(&json!({"metadata": {}})).is_err());
    }

    #[test]
    fn lines_come_out_whole_however_the_bytes_are_cut() {
        let text = b"{\"a\":1}\n\n{\"b\":2}\r\n{\"c\":3}";
        for cut in 1..text.len() {
            let mut lines = LineSplitter::default();
            let mut got = Vec::new();
            for chunk in text.chunks(cut) {
                lines.push(chunk);
                while let Some(line) = lines.next_line(false) {
                    got.push(line);
                }
            }
            while let Some(line) = lines.next_line(true) {
                got.push(line);
            }
            assert_eq!(
                got,
                [
                    b"{\"a\":1}".to_vec(),
                    b"{\"b\":2}".to_vec(),
                    b"{\"c\":3}".to_vec()
                ],
                "cut every {cut} bytes"
            );
        }
    }
}
