//! The wire: everything that knows what the Gemini protocol looks like. Nothing here touches SQLite or the terminal.

pub mod client;
pub mod error;
pub mod models;
pub mod outcome;
pub mod types;

pub use client::{Auth, Client, ClientConfig};
pub use error::{ApiError, GeminiError};
pub use types::{Content, GenerateContentRequest, GenerateContentResponse, Part};

/// Who answers a turn: the real API (or a gateway), or the local stand-in of `--offline`.
#[derive(Debug)]
pub enum Backend {
    Remote(Client),
    Offline,
}

impl Backend {
    pub async fn generate(
        &self,
        model: &str,
        request: &GenerateContentRequest,
    ) -> Result<GenerateContentResponse, GeminiError> {
        match self {
            Backend::Remote(client) => client.generate(model, request).await,
            Backend::Offline => crate::offline::respond(model, request).await,
        }
    }
}
