//! The Interactions API's calls, on the same [`Client`] as generateContent: one credential, one retry policy, one
//! redaction of keys and one mapping of transport errors.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION};

use super::events::Assembler;
use super::types::{Block, CreateInteraction, Interaction, Step};
use crate::gemini::Progress;
use crate::gemini::body::{BlobSource, Body, Marks};
use crate::gemini::client::{Api, Client, is_event_stream, parse_json};
use crate::gemini::error::{ApiError, GeminiError};

/// The API version in the path on the Gemini API. Docs: every REST example of the Interactions pages posts to
/// `https://generativelanguage.googleapis.com/v1beta/interactions`. (SDK google-genai 3.6.1 defaults to `v1`,
/// `_api_client.py` `GOOGLE_AI_API_DEFAULT_VERSION`; peel keeps the version its generateContent calls use.)
pub const GEMINI_VERSION: &str = "v1beta";

/// Vertex AI's version for interactions: SDK 3.6.1 `tests/interactions/test_paths.py` expects
/// `/v1beta1/projects/{p}/locations/{l}/interactions` (and `/v1beta1/interactions` without a project).
pub const VERTEX_VERSION: &str = "v1beta1";

/// The schema revision asked for. Docs (Streaming interactions, REST example): `Api-Revision: 2026-05-20`, the
/// revision with `steps` (the May 2026 breaking change); SDK 3.6.1 `_gaos/_hooks/google_genai_auth.py` names the
/// same revision (`GOOGLE_GENAI_API_REVISION`).
pub const API_REVISION: &str = "2026-05-20";

/// The largest image peel fetches for a `uri` delivery, unless the caller says otherwise: a 4K JPEG is a few MB.
pub const DEFAULT_MAX_IMAGE_BYTES: u64 = 64 * 1024 * 1024;

impl Client {
    /// Whether this client talks to the Gemini API (or a gateway that speaks it), where peel offers the
    /// Interactions API as a transport; on Vertex AI it is not offered (see the README's transports section).
    pub fn is_gemini_api(&self) -> bool {
        matches!(self.api(), Api::Gemini)
    }

    /// The configured base URL, for messages.
    pub fn server(&self) -> &str {
        self.base_url()
    }

    /// The collection URL: `{base}/v1beta/interactions` on the Gemini API (and gateways),
    /// `{base}/v1beta1/projects/{p}/locations/{l}/interactions` on Vertex AI, `{base}/v1beta1/interactions` in
    /// Vertex express mode.
    pub fn interactions_url(&self) -> String {
        let base = self.base_url();
        match self.api() {
            Api::Gemini => format!("{base}/{GEMINI_VERSION}/interactions"),
            Api::Vertex { project, location } => format!(
                "{base}/{VERTEX_VERSION}/projects/{project}/locations/{location}/interactions"
            ),
            Api::VertexExpress => format!("{base}/{VERTEX_VERSION}/interactions"),
        }
    }

    /// Creates an interaction: one turn. With `request.stream`, thought summaries and text are reported through
    /// `progress` as they arrive (cleared of the credential) and the events are assembled into the interaction. Passing failures are tried
    /// again as the retry policy says. When the request names a `previous_interaction_id` the server no longer
    /// has, the error is [`GeminiError::InteractionGone`].
    pub async fn create_interaction(
        &self,
        request: &CreateInteraction,
        marks: &Marks,
        blobs: &Arc<dyn BlobSource>,
        progress: &dyn Fn(Progress<'_>),
    ) -> Result<Interaction, GeminiError> {
        let json =
            serde_json::to_string(request).map_err(|e| GeminiError::Malformed(e.to_string()))?;
        let body = self
            .budgeted(Body::marked(&json, marks, blobs.clone()).map_err(GeminiError::Malformed)?)?;
        let stream = request.stream == Some(true);
        let progress = &self.scrubbing(progress);
        let result = self
            .retry_policy()
            .run(progress, || self.create_attempt(&body, stream, progress))
            .await;
        match (result, &request.previous_interaction_id) {
            (Err(GeminiError::Api(error)), Some(id)) if is_gone(&error, id) => {
                Err(GeminiError::InteractionGone {
                    id: id.clone(),
                    error,
                })
            }
            (result, _) => result,
        }
    }

    async fn create_attempt(
        &self,
        body: &Body,
        stream: bool,
        progress: &dyn Fn(Progress<'_>),
    ) -> Result<Interaction, GeminiError> {
        let mut headers = revision_headers();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static(if stream {
                "text/event-stream"
            } else {
                "application/json"
            }),
        );
        let url = self.interactions_url();
        let response = self
            .send(Method::POST, &url, &headers, Some(body), progress)
            .await?;
        if !is_event_stream(&response) {
            // Asked for one answer, or a server that answered in one piece anyway.
            return parse_interaction(&self.read_answer(response).await?);
        }
        let mut assembler = Assembler::new();
        self.read_events(response, |event| assembler.push_json(event, progress))
            .await?;
        assembler.finish()
    }

    /// A stored interaction; with `include_input` its `user_input` step too (SDK `InteractionGetParams`).
    pub async fn get_interaction(
        &self,
        id: &str,
        include_input: bool,
    ) -> Result<Interaction, GeminiError> {
        let mut url = format!("{}/{}", self.interactions_url(), path_segment(id));
        if include_input {
            url.push_str("?include_input=true");
        }
        let bytes = self
            .call(Method::GET, &url, &revision_headers(), None, &|_| {})
            .await?;
        parse_interaction(&bytes)
    }

    /// Deletes a stored interaction (answered with an empty object, SDK `empty.py`).
    pub async fn delete_interaction(&self, id: &str) -> Result<(), GeminiError> {
        let url = format!("{}/{}", self.interactions_url(), path_segment(id));
        self.call_unanswered(Method::DELETE, &url, &revision_headers(), None)
            .await
    }

    /// Fetches every image of `interaction` that came as a `uri` (delivery `uri`) and puts its bytes inline, so the
    /// answer can be stored like any other. Each image is at most `max_bytes`.
    pub async fn inline_uri_images(
        &self,
        interaction: &mut Interaction,
        max_bytes: u64,
    ) -> Result<(), GeminiError> {
        for step in &mut interaction.steps {
            let blocks = match step {
                Step::ModelOutput { content, .. } => content,
                Step::Thought { summary, .. } => summary,
                _ => continue,
            };
            for block in blocks {
                if let Block::Image {
                    data: data @ None,
                    mime_type,
                    uri: Some(uri),
                    ..
                } = block
                {
                    let image = self.download_image(uri, max_bytes).await?;
                    *data = Some(STANDARD.encode(&image.bytes));
                    if mime_type.is_none() {
                        *mime_type = image.content_type;
                    }
                }
            }
        }
        Ok(())
    }

    /// The bytes at an image `uri`, at most `max_bytes` of them. The credential goes along only when the uri is on
    /// the configured server; elsewhere (the uri itself, or where the server redirects) it must be https and gets
    /// no credential.
    pub async fn download_image(
        &self,
        uri: &str,
        max_bytes: u64,
    ) -> Result<DownloadedImage, GeminiError> {
        let url = reqwest::Url::parse(uri)
            .map_err(|e| GeminiError::Malformed(format!("an image uri that is not a URL: {e}")))?;
        let quiet = |_: Progress<'_>| {};
        self.retry_policy()
            .run(&quiet, || async {
                let mut url = url.clone();
                if self.same_origin(&url) {
                    let response = self
                        .send_raw(Method::GET, url.as_str(), &HeaderMap::new(), None, &quiet)
                        .await?;
                    let elsewhere = response
                        .status()
                        .is_redirection()
                        .then(|| response.headers().get(LOCATION).cloned())
                        .flatten();
                    match elsewhere {
                        None => {
                            let response = self.success(response).await?;
                            return self.read_bounded(response, max_bytes, &url).await;
                        }
                        Some(location) => {
                            url = location
                                .to_str()
                                .ok()
                                .and_then(|l| url.join(l).ok())
                                .ok_or_else(|| {
                                    GeminiError::Malformed("a redirect to no valid URL".into())
                                })?;
                        }
                    }
                }
                if url.scheme() != "https" {
                    return Err(GeminiError::Malformed(format!(
                        "an image on another server that is not https ({})",
                        url.scheme()
                    )));
                }
                let response = self.get_without_credential(url.clone()).await?;
                self.read_bounded(response, max_bytes, &url).await
            })
            .await
    }

    async fn read_bounded(
        &self,
        response: reqwest::Response,
        max_bytes: u64,
        url: &reqwest::Url,
    ) -> Result<DownloadedImage, GeminiError> {
        let host = url.host_str().unwrap_or("the image server");
        let too_big = || {
            GeminiError::Malformed(format!(
                "the image at {host} is larger than {:.0} MB",
                max_bytes as f64 / 1e6
            ))
        };
        if response.content_length().is_some_and(|n| n > max_bytes) {
            return Err(too_big());
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
            .filter(|v| v.starts_with("image/"));
        let bytes = self
            .read_body(response, max_bytes, false)
            .await
            .map_err(|e| match e {
                GeminiError::ResponseTooLarge { .. } => too_big(),
                other => other,
            })?;
        Ok(DownloadedImage {
            bytes,
            content_type,
        })
    }
}

/// An image fetched from a `uri`.
#[derive(Debug, Clone, PartialEq)]
pub struct DownloadedImage {
    pub bytes: Vec<u8>,
    /// The answer's `Content-Type`, when it names an image type.
    pub content_type: Option<String>,
}

fn revision_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        HeaderName::from_static("api-revision"),
        HeaderValue::from_static(API_REVISION),
    );
    headers
}

/// A 2xx body: an interaction, or an error payload some servers put in a 200.
pub fn parse_interaction(bytes: &[u8]) -> Result<Interaction, GeminiError> {
    parse_json(bytes)
}

/// Whether an error answer to a create that named `previous_id` means the server no longer has that
/// conversation. 404 is what a missing resource gets (SDK `_interactions_errors.py` maps it to `NotFoundError`);
/// a 400, 403 or 410 counts when its message is about the interaction: an expired, never-stored or foreign id is
/// described, not always answered with a 404. A refused key (403 without the interaction in its message) is not.
pub fn is_gone(error: &ApiError, previous_id: &str) -> bool {
    let message = error.message.to_ascii_lowercase();
    let about_it = message.contains(&previous_id.to_ascii_lowercase())
        || (message.contains("interaction")
            && [
                "not found",
                "expired",
                "does not exist",
                "no longer",
                "not exist",
            ]
            .iter()
            .any(|phrase| message.contains(phrase)));
    match error.http_status {
        404 | 410 => true,
        400 | 403 => about_it,
        _ => false,
    }
}

/// A resource id as one path segment: every byte but RFC 3986's unreserved ones percent-encoded.
pub(crate) use crate::untrusted::percent_encode as path_segment;

#[cfg(test)]
mod tests {
    use super::*;

    fn error(status: u16, message: &str) -> ApiError {
        let body = serde_json::json!({"error": {"code": "x", "message": message}});
        ApiError::from_body(status, body.to_string().as_bytes())
    }

    #[test]
    fn what_counts_as_a_lost_conversation() {
        assert!(is_gone(&error(404, "Not found"), "v1_a"));
        assert!(is_gone(&error(410, "Gone"), "v1_a"));
        assert!(is_gone(
            &error(400, "Interaction v1_A has expired."),
            "v1_a"
        ));
        assert!(is_gone(
            &error(400, "previous interaction does not exist"),
            "v1_a"
        ));
        assert!(is_gone(&error(403, "Permission denied on v1_a"), "v1_a"));
        assert!(!is_gone(
            &error(403, "API key not valid. Please pass a valid API key."),
            "v1_a"
        ));
        assert!(!is_gone(&error(400, "Unsupported aspect ratio"), "v1_a"));
        assert!(!is_gone(&error(503, "interaction not found"), "v1_a"));
    }

    #[test]
    fn the_collection_url_of_each_api() {
        use crate::gemini::auth::{Auth, Credential};
        use crate::gemini::client::ClientConfig;
        use crate::gemini::retry::RetryPolicy;
        use crate::secret::Secret;
        let url = |api: Api| {
            Client::new(ClientConfig {
                base_url: "https://h/".into(),
                api,
                credential: Credential::Key {
                    key: Secret::new("k"),
                    auth: Auth::Header,
                },
                connect_timeout: std::time::Duration::from_secs(1),
                timeout: std::time::Duration::from_secs(1),
                retry: RetryPolicy::default(),
                max_request_bytes: 1,
                max_response_bytes: 1,
                idle_timeout: std::time::Duration::from_secs(1),
                vertex_image_config: Default::default(),
            })
            .unwrap()
            .interactions_url()
        };
        assert_eq!(url(Api::Gemini), "https://h/v1beta/interactions");
        assert_eq!(
            url(Api::Vertex {
                project: "p".into(),
                location: "us-central1".into()
            }),
            "https://h/v1beta1/projects/p/locations/us-central1/interactions"
        );
        assert_eq!(url(Api::VertexExpress), "https://h/v1beta1/interactions");
    }

    #[test]
    fn ids_are_escaped_as_one_segment() {
        assert_eq!(path_segment("v1_Ch-abc.9~"), "v1_Ch-abc.9~");
        assert_eq!(path_segment("a/b?c"), "a%2Fb%3Fc");
    }
}
