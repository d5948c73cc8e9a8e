//! Google's Interactions API (`POST /v1beta/interactions`): the server keeps the conversation, and a turn names its
//! parent with `previous_interaction_id` and sends only what is new. peel's own store stays the source of truth:
//! answers are converted to the `Content` generateContent would have given ([`convert`]), and a thread the server
//! has lost ([`GeminiError::InteractionGone`](crate::gemini::GeminiError::InteractionGone)) can be sent whole as
//! steps.
//!
//! - [`types`]: the request, the Interaction, its steps and blocks, usage;
//! - [`events`]: the streamed events and how they add up to an Interaction;
//! - [`convert`]: peel's `Content`/`Part`/`UsageMetadata` to and from steps, and the outcome of a turn;
//! - [`client`]: create (streamed or not), get, delete, and fetching `uri` images, as methods of
//!   [`Client`](crate::gemini::Client).

pub mod client;
pub mod convert;
pub mod events;
pub mod types;

pub use client::{DEFAULT_MAX_IMAGE_BYTES, DownloadedImage, is_gone, parse_interaction};
pub use convert::{classify, model_content, model_steps, thread_steps, usage_metadata, user_input};
pub use events::{Assembler, Delta, Event};
pub use types::{
    Block, CreateInteraction, Delivery, ErrorBody, GenerationConfig, ImageResponseFormat,
    Interaction, InteractionStatus, ModalityTokens, Step, Usage,
};
