//! The wire: everything that knows what the Gemini protocol looks like. Nothing here touches SQLite or the terminal.

pub mod auth;
pub mod batch;
pub mod batch_spool;
pub mod body;
pub mod client;
pub mod error;
pub mod files;
pub mod interactions;
pub mod models;
pub mod outcome;
pub mod retry;
pub mod signatures;
pub mod sse;
pub mod stream;
pub mod types;

use std::sync::Arc;
use std::time::Duration;

use body::BlobSource;

pub use auth::Auth;
pub use client::{Api, Client, ClientConfig};
pub use error::{ApiError, GeminiError};
pub use types::{Content, GenerateContentRequest, GenerateContentResponse, Part};

/// What happens while a request runs, for the person watching: streamed parts as they arrive, and retries.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress<'a> {
    /// A thought summary part (`"thought": true`), as it arrived.
    Thought(&'a str),
    /// A non-empty text part of the answer, as it arrived.
    Text(&'a str),
    /// A request is being sent to `url` (credentials redacted) with a body of `bytes`.
    Sending { url: &'a str, bytes: usize },
    /// Attempt `attempt` of `attempts` starts after `wait`, because the last one failed with `reason`.
    Retrying {
        wait: Duration,
        attempt: u32,
        attempts: u32,
        reason: String,
    },
}

/// Who answers a turn: the real API (or a gateway), or the local stand-in of `--offline`.
#[derive(Debug)]
pub enum Backend {
    // Boxed: a client is large, and the offline variant is empty.
    Remote(Box<Client>),
    Offline,
    /// No credential could be had (why, in words): everything but sending works.
    NoKey(String),
}

/// The Gemini API's inline request limit (since 2026-01), used when nothing else is configured.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 100 * 1000 * 1000;

impl Backend {
    /// The largest request body this backend may be sent.
    pub fn max_request_bytes(&self) -> usize {
        match self {
            Backend::Remote(client) => client.max_request_bytes(),
            Backend::Offline | Backend::NoKey(_) => DEFAULT_MAX_REQUEST_BYTES,
        }
    }

    /// Who answers, as recorded with each turn.
    pub fn made_by(&self) -> signatures::MadeBy {
        match self {
            Backend::Remote(client) => signatures::MadeBy::Api {
                provider: client.host(),
            },
            Backend::Offline => signatures::MadeBy::Offline,
            // Never answers: it refuses to send.
            Backend::NoKey(_) => signatures::MadeBy::Api { provider: None },
        }
    }

    /// The family whose thought signatures `model` checks when this backend answers for it.
    pub fn signature_family(&self, model: &str) -> signatures::Family {
        match self {
            Backend::Remote(_) | Backend::NoKey(_) => signatures::Family::of_model(model),
            Backend::Offline => signatures::Family::Offline,
        }
    }

    /// One turn. With `stream`, parts are reported through `progress` as they arrive; retries are reported either way.
    /// `take` is which take of its turn the answer will be: the offline stand-in draws each one differently.
    pub async fn generate(
        &self,
        model: &str,
        request: &GenerateContentRequest,
        blobs: &Arc<dyn BlobSource>,
        stream: bool,
        take: usize,
        progress: &dyn Fn(Progress<'_>),
    ) -> Result<GenerateContentResponse, GeminiError> {
        match self {
            Backend::Remote(client) => {
                client
                    .generate(model, request, blobs, stream, progress)
                    .await
            }
            Backend::Offline => {
                // The stand-in draws from the images themselves, so it gets them inline.
                let request =
                    body::inflate(request, blobs.as_ref()).map_err(GeminiError::Malformed)?;
                crate::offline::respond(model, &request, take).await
            }
            Backend::NoKey(why) => Err(GeminiError::Credential(why.clone())),
        }
    }
}
