//! The Files API, for what the Batch API needs: a resumable upload of a requests file, and the download of a
//! responses file. Gemini API only (the SDK refuses it on Vertex AI too: `files.py` "only supported in the Gemini
//! Developer client").
//!
//! Sources: SDK google-genai 3.6.1 `files.py` (`upload`, `download`, `_create`: `POST upload/{version}/files` with
//! `{"file": {...}}`, the upload URL in the `x-goog-upload-url` answer header, the file in the final answer's
//! `file`; `download`: `GET files/{id}:download?alt=media`), `_extra_utils.py` `prepare_resumable_upload` (the
//! `X-Goog-Upload-*` start headers), `_api_client.py` `_upload_fd` (the `upload, finalize` command with
//! `X-Goog-Upload-Offset`, `x-goog-upload-status: final` on success, and the upload URL moved onto the configured
//! base URL's host), `types.py` `File`, `FileState`. Files JSON is camelCase like the rest of the Gemini API.

use futures_util::Stream;
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Progress;
use super::body::Body;
use super::client::Client;
use super::client::parse_json;
use super::error::GeminiError;
use super::interactions::client::path_segment;
use super::interactions::types::string_enum;

/// The API version of the Files and Batch API paths (the version of peel's generateContent calls; the SDK's
/// default is `v1`, its tests and Google's Batch API reference use `v1beta`).
pub const VERSION: &str = "v1beta";

/// A file as the Files API describes it. SDK `types.py` `File`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileInfo {
    /// `files/{id}`.
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// An int64, which proto JSON writes as a string.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "int64"
    )]
    pub size_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<FileState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_time: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// SDK `types.py` `FileState`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    Unspecified,
    Processing,
    Active,
    Failed,
    Other(String),
}

string_enum!(FileState {
    Unspecified = "STATE_UNSPECIFIED",
    Processing = "PROCESSING",
    Active = "ACTIVE",
    Failed = "FAILED",
});

/// An int64 field: proto JSON writes it as a string, some servers as a number.
pub(crate) fn int64<'de, D>(d: D) -> Result<Option<u64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| D::Error::custom("not a non-negative integer")),
        Some(Value::String(s)) => s.parse().map(Some).map_err(D::Error::custom),
        Some(other) => Err(D::Error::custom(format!("not an integer: {other}"))),
    }
}

impl Client {
    /// `what` (the Files API, the Batch API) is refused on Vertex AI, which does not offer it.
    pub(super) fn gemini_only(&self, what: &str) -> Result<(), GeminiError> {
        if self.is_gemini_api() {
            return Ok(());
        }
        Err(GeminiError::Unsupported(format!(
            "{what} is offered by the Gemini API only, not by Vertex AI"
        )))
    }

    /// Uploads `body` as a new file with the resumable protocol, in one `upload, finalize` request (the body is
    /// streamed, so a file of any size is never held in memory). Started again from scratch if a passing failure
    /// interrupts it.
    pub async fn upload_file(
        &self,
        display_name: &str,
        mime_type: &str,
        body: &Body,
        progress: &dyn Fn(Progress<'_>),
    ) -> Result<FileInfo, GeminiError> {
        self.gemini_only("the Files API")?;
        self.retry_policy()
            .run(progress, || {
                self.upload_attempt(display_name, mime_type, body, progress)
            })
            .await
    }

    async fn upload_attempt(
        &self,
        display_name: &str,
        mime_type: &str,
        body: &Body,
        progress: &dyn Fn(Progress<'_>),
    ) -> Result<FileInfo, GeminiError> {
        let start_url = format!("{}/upload/{VERSION}/files", self.base_url());
        let mut headers = HeaderMap::new();
        let header = |name: &'static str, value: &str| {
            HeaderValue::from_str(value)
                .map(|value| (HeaderName::from_static(name), value))
                .map_err(|_| GeminiError::Malformed(format!("{name} cannot be {value:?}")))
        };
        for (name, value) in [
            ("x-goog-upload-protocol", "resumable"),
            ("x-goog-upload-command", "start"),
            (
                "x-goog-upload-header-content-length",
                &body.len().to_string(),
            ),
            ("x-goog-upload-header-content-type", mime_type),
        ] {
            let (name, value) = header(name, value)?;
            headers.insert(name, value);
        }
        let metadata =
            serde_json::json!({"file": {"displayName": display_name, "mimeType": mime_type}});
        let metadata = Body::plain(&metadata.to_string());
        let started = self
            .send(
                Method::POST,
                &start_url,
                &headers,
                Some(&metadata),
                progress,
            )
            .await?;
        let upload_url = started
            .headers()
            .get("x-goog-upload-url")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                GeminiError::Malformed("the upload was not given an upload URL".into())
            })?;
        let upload_url = self.onto_base(upload_url)?;

        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-goog-upload-command", "upload, finalize"),
            ("x-goog-upload-offset", "0"),
        ] {
            let (name, value) = header(name, value)?;
            headers.insert(name, value);
        }
        headers.insert(CONTENT_TYPE, header("content-type", mime_type)?.1);
        let finished = self
            .send(Method::POST, &upload_url, &headers, Some(body), progress)
            .await?;
        let status = finished
            .headers()
            .get("x-goog-upload-status")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = self.read_answer(finished).await?;
        if status.as_deref().is_some_and(|s| s != "final") {
            return Err(GeminiError::Malformed(format!(
                "the upload ended with status {status:?}, not final"
            )));
        }
        #[derive(Deserialize)]
        struct Uploaded {
            file: FileInfo,
        }
        let uploaded: Uploaded = parse_json(&bytes)?;
        Ok(uploaded.file)
    }

    /// The upload URL with the configured server's scheme, host and port, as the SDK does (`_upload_fd`): a
    /// gateway or test server hands out Google's own host, and the credential must never go anywhere else.
    fn onto_base(&self, upload_url: &str) -> Result<String, GeminiError> {
        let mut url = reqwest::Url::parse(upload_url)
            .map_err(|e| GeminiError::Malformed(format!("an upload URL that is not a URL: {e}")))?;
        let base = reqwest::Url::parse(self.base_url())
            .map_err(|e| GeminiError::Malformed(format!("the base URL is not a URL: {e}")))?;
        let moved = url.set_scheme(base.scheme()).is_ok()
            && url.set_host(base.host_str()).is_ok()
            && url.set_port(base.port()).is_ok();
        if !moved {
            return Err(GeminiError::Malformed(
                "the upload URL cannot be moved onto the configured server".into(),
            ));
        }
        Ok(url.into())
    }

    /// Deletes a file (uploaded request files are kept 48 hours otherwise).
    pub async fn delete_file(&self, name: &str) -> Result<(), GeminiError> {
        self.gemini_only("the Files API")?;
        let url = self.file_url(name, "");
        self.call_unanswered(Method::DELETE, &url, &HeaderMap::new(), None)
            .await
    }

    /// A file's contents as a stream of chunks, read as they arrive (a responses file can be gigabytes).
    pub async fn download_file(
        &self,
        name: &str,
    ) -> Result<impl Stream<Item = Result<bytes::Bytes, GeminiError>> + '_, GeminiError> {
        self.gemini_only("the Files API")?;
        let url = self.file_url(name, ":download?alt=media");
        let quiet = |_: Progress<'_>| {};
        let headers = HeaderMap::new();
        let response = self
            .retry_policy()
            .run(&quiet, || {
                self.send(Method::GET, &url, &headers, None, &quiet)
            })
            .await?;
        // Each chunk within the idle timeout; no size limit: the file is read as it arrives, never held whole.
        Ok(futures_util::stream::unfold(
            response.bytes_stream(),
            move |mut chunks| async move {
                match self.next_chunk(&mut chunks).await {
                    Ok(Some(chunk)) => Some((Ok(chunk), chunks)),
                    Ok(None) => None,
                    Err(e) => Some((Err(e), chunks)),
                }
            },
        ))
    }

    /// `{base}/v1beta/files/{id}{suffix}` for `files/{id}` or a bare id.
    fn file_url(&self, name: &str, suffix: &str) -> String {
        let id = name.strip_prefix("files/").unwrap_or(name);
        format!(
            "{}/{VERSION}/files/{}{suffix}",
            self.base_url(),
            path_segment(id)
        )
    }

    /// A GET whose whole (small) answer is wanted, retried as the policy says.
    pub(crate) async fn get_bytes(&self, url: &str) -> Result<Vec<u8>, GeminiError> {
        self.call(Method::GET, url, &HeaderMap::new(), None, &|_| {})
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_parses_with_its_int64_as_a_string_or_a_number() {
        let file: FileInfo = serde_json::from_str(
            r#"{"name": "files/abc", "mimeType": "application/jsonl", "sizeBytes": "1234",
                "state": "ACTIVE", "source": "UPLOADED"}"#,
        )
        .unwrap();
        assert_eq!(file.size_bytes, Some(1234));
        assert_eq!(file.state, Some(FileState::Active));
        assert_eq!(file.extra["source"], "UPLOADED");
        let file: FileInfo =
            serde_json::from_str(r#"{"name": "files/x", "sizeBytes": 7, "state": "NEW_STATE"}"#)
                .unwrap();
        assert_eq!(file.size_bytes, Some(7));
        assert_eq!(file.state, Some(FileState::Other("NEW_STATE".into())));
    }
}
