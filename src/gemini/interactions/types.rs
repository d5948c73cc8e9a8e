//! The Interactions API's wire types.
//!
//! Sources, named on each item: "SDK" is google-genai 3.6.1 (PyPI), its generated types in
//! `google/genai/_gaos/types/interactions/<file>.py` and its client in `google/genai/_gaos/interactions.py`;
//! "docs" are Google's pages under `ai.google.dev/gemini-api/docs/interactions*`. The JSON is snake_case throughout
//! (SDK: every field is declared and dumped under its snake_case name).
//!
//! Every enum of values the server chooses (statuses, step and block types) parses values it does not know, so a
//! server newer than peel never breaks a turn.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::gemini::types::null_as_empty;

/// Serde for enums of strings that keep values they do not know.
macro_rules! string_enum {
    ($name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Other(text) => text,
                }
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                match text {
                    $($text => $name::$variant,)*
                    other => $name::Other(other.to_string()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(deserializer)?;
                Ok($name::from(text.as_str()))
            }
        }
    };
}
pub(crate) use string_enum;

/// The body of `POST /{version}/interactions` for a model (not an agent).
/// SDK `createmodelinteraction.py` (`CreateModelInteraction`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CreateInteraction {
    /// A model id without `models/` (SDK `model.py`: `gemini-3-pro-image`, ...).
    pub model: String,
    /// SDK `interactionsinput.py`: a string, one content block, a list of blocks, or a list of steps. peel always
    /// sends steps: a `user_input` step for a turn (what the SDK itself turns a list of blocks into,
    /// `google_genai.py` `_normalize_create_body`), or the whole thread as steps when the server lost it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input: Vec<Step>,
    /// The interaction this one continues: the server supplies the conversation up to and including it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_interaction_id: Option<String>,
    /// Default true (docs); false: nothing can continue from this interaction later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
    /// Server-sent events instead of one JSON answer (SDK: `Accept: text/event-stream` when true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// SDK `responseformat.py`: one format or a list; peel sends the image format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ImageResponseFormat>,
    /// Not inherited from the previous interaction (docs, "server-side state management"): sent every turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_config: Option<GenerationConfig>,
    /// SDK: a plain string here, not a Content. Not inherited either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_instruction: Option<String>,
    /// SDK `tool.py`, e.g. `{"type": "google_search"}`. Not inherited either.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Value>,
    /// Anything else the caller wants on the wire (`service_tier`, `labels`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// SDK `imageresponseformat.py` (`ImageResponseFormat`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ImageResponseFormat {
    /// Always `"image"` (the discriminator of SDK `responseformat.py`).
    #[serde(rename = "type", default = "image_type")]
    pub kind: String,
    /// SDK: `1:1 2:3 3:2 3:4 4:3 4:5 5:4 9:16 16:9 21:9 1:8 8:1 1:4 4:1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aspect_ratio: Option<String>,
    /// SDK: `512 1K 2K 4K`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
    /// SDK: only `image/jpeg` is listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
}

fn image_type() -> String {
    "image".into()
}

impl ImageResponseFormat {
    pub fn new() -> ImageResponseFormat {
        ImageResponseFormat {
            kind: image_type(),
            ..ImageResponseFormat::default()
        }
    }
}

/// How a generated image comes back. SDK `imageresponseformat.py`: `inline` (base64 in the answer) or `uri` (a
/// link to fetch it from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Inline,
    Uri,
    Other(String),
}

string_enum!(Delivery { Inline = "inline", Uri = "uri" });

/// SDK `generationconfig.py` (`GenerationConfig`): the fields peel uses, the rest kept in `extra`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GenerationConfig {
    /// SDK `thinkinglevel.py`: `minimal low medium high xhigh` (lowercase, unlike generateContent's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_level: Option<String>,
    /// SDK `thinkingsummaries.py`: `auto` (send them) or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_summaries: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl GenerationConfig {
    pub fn is_empty(&self) -> bool {
        self.thinking_level.is_none() && self.thinking_summaries.is_none() && self.extra.is_empty()
    }
}

/// One step of an interaction's timeline. SDK `step.py`; the three kinds an image model produces or is given are
/// typed, every other kind (tool calls and results) is kept as it came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Step {
    /// SDK `userinputstep.py`.
    UserInput {
        #[serde(default, deserialize_with = "null_as_empty")]
        content: Vec<Block>,
    },
    /// SDK `modeloutputstep.py`: content, or an `error` (a google.rpc Status, SDK `status.py`).
    ModelOutput {
        #[serde(default, deserialize_with = "null_as_empty")]
        content: Vec<Block>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<Value>,
    },
    /// SDK `thoughtstep.py`: the model's thinking as an opaque `signature` (base64, "for backend validation") and
    /// an optional `summary` of text and image blocks (SDK `thoughtsummarycontent.py`).
    Thought {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
        #[serde(
            default,
            deserialize_with = "null_as_empty",
            skip_serializing_if = "Vec::is_empty"
        )]
        summary: Vec<Block>,
    },
    #[serde(untagged)]
    Other(Value),
}

/// A content block. SDK `content.py`: text, image, audio, document, video; peel types the first two.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    /// SDK `textcontent.py`.
    Text {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        annotations: Option<Value>,
    },
    /// SDK `imagecontent.py`: `data` (standard base64) with `mime_type`, or a `uri`.
    Image {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mime_type: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uri: Option<String>,
        /// SDK `mediaresolution.py`: `low medium high ultra_high`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resolution: Option<String>,
    },
    #[serde(untagged)]
    Other(Value),
}

impl Block {
    pub fn text(text: impl Into<String>) -> Block {
        Block::Text {
            text: text.into(),
            annotations: None,
        }
    }

    pub fn image(mime_type: impl Into<String>, base64_data: impl Into<String>) -> Block {
        Block::Image {
            data: Some(base64_data.into()),
            mime_type: Some(mime_type.into()),
            uri: None,
            resolution: None,
        }
    }
}

/// The Interaction resource: what `create` answers and `get` returns. SDK `interaction.py` (`Interaction`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Interaction {
    /// SDK: "Required. Output only." (defaults to "" in the SDK too).
    #[serde(default)]
    pub id: String,
    pub status: InteractionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `create` answers with the model's steps only; `get` includes the `user_input` step (docs, May 2026
    /// breaking-changes page).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub steps: Vec<Step>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_interaction_id: Option<String>,
    /// ISO 8601 (SDK).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    /// Set with status `requires_continuation` (SDK `interaction.py`; the SDK's create() resumes with it by itself,
    /// `google_genai.py` `automatic_continuation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation_token: Option<String>,
    /// SDK `error.py`: `{code: string, message}` diagnostics recorded on the interaction.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub errors: Vec<ErrorBody>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// SDK `interaction.py` (`InteractionStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum InteractionStatus {
    #[default]
    InProgress,
    RequiresAction,
    Completed,
    Failed,
    Cancelled,
    Incomplete,
    BudgetExceeded,
    Queued,
    Idle,
    RequiresContinuation,
    Other(String),
}

string_enum!(InteractionStatus {
    InProgress = "in_progress",
    RequiresAction = "requires_action",
    Completed = "completed",
    Failed = "failed",
    Cancelled = "cancelled",
    Incomplete = "incomplete",
    BudgetExceeded = "budget_exceeded",
    Queued = "queued",
    Idle = "idle",
    RequiresContinuation = "requires_continuation",
});

/// An error as the Interactions API spells it: SDK `error.py`, `code` a string such as `resource_exhausted`
/// (SDK `tests/interactions/test_automatic_continuation.py` sends exactly that in an `error` event).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Token counts of an interaction. SDK `usage.py` (`Usage`) and `modalitytokens.py`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_thought_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_cached_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tool_use_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub input_tokens_by_modality: Vec<ModalityTokens>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub output_tokens_by_modality: Vec<ModalityTokens>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cached_tokens_by_modality: Vec<ModalityTokens>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// SDK `modalitytokens.py`: modality lowercase (`text image audio video document`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ModalityTokens {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modality: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_steps_blocks_and_statuses_parse_and_round_trip() {
        let received = json!({
            "id": "v1_abc",
            "status": "something_new",
            "steps": [
                {"type": "google_search_call", "arguments": {"queries": ["fox"]}},
                {"type": "model_output", "content": [
                    {"type": "audio", "data": "AA==", "mime_type": "audio/wav"},
                    {"type": "text", "text": "hi"}
                ]}
            ]
        });
        let interaction: Interaction = serde_json::from_value(received.clone()).unwrap();
        assert_eq!(
            interaction.status,
            InteractionStatus::Other("something_new".into())
        );
        assert!(matches!(interaction.steps[0], Step::Other(_)));
        let Step::ModelOutput { content, .. } = &interaction.steps[1] else {
            panic!("{:?}", interaction.steps[1]);
        };
        assert!(matches!(content[0], Block::Other(_)));
        assert_eq!(content[1], Block::text("hi"));
        assert_eq!(serde_json::to_value(&interaction).unwrap(), received);
    }

    #[test]
    fn null_lists_are_empty() {
        let interaction: Interaction = serde_json::from_value(json!({
            "id": "x", "status": "completed", "steps": null, "errors": null
        }))
        .unwrap();
        assert!(interaction.steps.is_empty());
        let step: Step =
            serde_json::from_value(json!({"type": "model_output", "content": null})).unwrap();
        assert_eq!(
            step,
            Step::ModelOutput {
                content: vec![],
                error: None
            }
        );
    }

    #[test]
    fn a_create_body_leaves_out_what_is_not_set() {
        let body = CreateInteraction {
            model: "gemini-3-pro-image".into(),
            input: vec![Step::UserInput {
                content: vec![Block::text("a fox")],
            }],
            response_format: Some(ImageResponseFormat {
                aspect_ratio: Some("16:9".into()),
                delivery: Some(Delivery::Uri),
                ..ImageResponseFormat::new()
            }),
            ..CreateInteraction::default()
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({
                "model": "gemini-3-pro-image",
                "input": [{"type": "user_input", "content": [{"type": "text", "text": "a fox"}]}],
                "response_format": {"type": "image", "aspect_ratio": "16:9", "delivery": "uri"}
            })
        );
    }
}
