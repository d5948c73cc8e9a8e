//! The Gemini wire format as typed serde structs.
//!
//! Rules every type here follows:
//! - out: camelCase, the form Google documents;
//! - in: camelCase or snake_case (some gateways answer in snake_case);
//! - fields we do not know are kept in `extra` and sent back unchanged, so a model turn re-sent next turn carries
//!   everything the model gave us (new fields, `thought` flags, signatures) in the order we received it.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Accepts `null` where a list is expected (a refused candidate can carry `"parts": null`).
pub(crate) fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// One turn of the conversation: the user's prompt and images, or the model's answer exactly as received.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Content {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub parts: Vec<Part>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Content {
    pub fn user(parts: Vec<Part>) -> Self {
        Content {
            role: Some("user".into()),
            parts,
            extra: Map::new(),
        }
    }

    pub fn is_model(&self) -> bool {
        self.role.as_deref() == Some("model")
    }

    /// The images the model meant as its answer: inline data that is not an interim thought image.
    pub fn answer_images(&self) -> impl Iterator<Item = &InlineData> {
        self.parts
            .iter()
            .filter(|p| !p.is_thought())
            .filter_map(|p| p.inline_data.as_ref())
    }

    /// The interim "thought images" the model drew while thinking (kept in the history as received).
    pub fn thought_images(&self) -> impl Iterator<Item = &InlineData> {
        self.parts
            .iter()
            .filter(|p| p.is_thought())
            .filter_map(|p| p.inline_data.as_ref())
    }

    /// The visible text of the answer, thought summaries excluded.
    pub fn answer_text(&self) -> String {
        self.parts
            .iter()
            .filter(|p| !p.is_thought())
            .filter_map(|p| p.text.as_deref())
            .collect::<Vec<_>>()
            .join("")
    }

    /// The thought summaries, in order.
    pub fn thought_text(&self) -> String {
        self.parts
            .iter()
            .filter(|p| p.is_thought())
            .filter_map(|p| p.text.as_deref())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// One part of a content. Exactly one of text / inlineData is usually set; anything else rides in `extra`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "inline_data"
    )]
    pub inline_data: Option<InlineData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought: Option<bool>,
    /// Opaque base64 the model needs back next turn; often as large as the image it signs.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "thought_signature"
    )]
    pub thought_signature: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// Which of this part's large values stay in the store until the body streams (set only by the store; never
    /// serialised or deserialised, so no text can stand for a stored value).
    #[serde(skip)]
    pub refs: super::body::BlobRefs,
}

impl Part {
    pub fn text(text: impl Into<String>) -> Self {
        Part {
            text: Some(text.into()),
            ..Part::default()
        }
    }

    pub fn image(mime_type: impl Into<String>, base64_data: String) -> Self {
        Part {
            inline_data: Some(InlineData {
                mime_type: mime_type.into(),
                data: base64_data,
                extra: Map::new(),
            }),
            ..Part::default()
        }
    }

    pub fn is_thought(&self) -> bool {
        self.thought == Some(true)
    }
}

/// An inline image (or other file) as base64.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InlineData {
    #[serde(default, alias = "mime_type")]
    pub mime_type: String,
    #[serde(default)]
    pub data: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The body of `generateContent` / `streamGenerateContent`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentRequest {
    pub contents: Vec<Content>,
    pub generation_config: GenerationConfig,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_instruction: Option<Content>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationConfig {
    pub response_modalities: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_config: Option<ImageConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_config: Option<ThinkingConfig>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageConfig {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "aspect_ratio"
    )]
    pub aspect_ratio: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "image_size")]
    pub image_size: Option<String>,
}

impl ImageConfig {
    pub fn is_empty(&self) -> bool {
        self.aspect_ratio.is_none() && self.image_size.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThinkingConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_thoughts: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_level: Option<String>,
}

/// What `generateContent` answers (and what each streamed event carries).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentResponse {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub candidates: Vec<Candidate>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "prompt_feedback"
    )]
    pub prompt_feedback: Option<PromptFeedback>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "usage_metadata"
    )]
    pub usage_metadata: Option<UsageMetadata>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "model_version"
    )]
    pub model_version: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "response_id"
    )]
    pub response_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "finish_reason"
    )]
    pub finish_reason: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "finish_message"
    )]
    pub finish_message: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "grounding_metadata"
    )]
    pub grounding_metadata: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptFeedback {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "block_reason"
    )]
    pub block_reason: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "block_reason_message"
    )]
    pub block_reason_message: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "prompt_token_count"
    )]
    pub prompt_token_count: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "candidates_token_count"
    )]
    pub candidates_token_count: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "thoughts_token_count"
    )]
    pub thoughts_token_count: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "total_token_count"
    )]
    pub total_token_count: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn snake_case_answers_parse_like_camel_case() {
        let snake: Part = serde_json::from_value(json!({
            "inline_data": {"mime_type": "image/png", "data": "AA=="},
            "thought_signature": "c2ln"
        }))
        .unwrap();
        let camel: Part = serde_json::from_value(json!({
            "inlineData": {"mimeType": "image/png", "data": "AA=="},
            "thoughtSignature": "c2ln"
        }))
        .unwrap();
        assert_eq!(snake, camel);
        assert!(snake.extra.is_empty());
    }

    #[test]
    fn unknown_fields_round_trip_in_order() {
        let received = json!({
            "role": "model",
            "parts": [
                {"text": "thinking", "thought": true},
                {"inlineData": {"mimeType": "image/jpeg", "data": "AA==", "displayName": "x"},
                 "thoughtSignature": "c2ln", "futureField": {"x": 1}},
                {"text": "", "thoughtSignature": "c2ln"}
            ],
            "newThing": [1, 2]
        });
        let content: Content = serde_json::from_value(received.clone()).unwrap();
        assert_eq!(serde_json::to_value(&content).unwrap(), received);
    }

    #[test]
    fn null_parts_and_empty_content_parse() {
        let c: Content = serde_json::from_value(json!({"parts": null})).unwrap();
        assert!(c.parts.is_empty());
        let c: Content = serde_json::from_value(json!({})).unwrap();
        assert!(c.parts.is_empty());
    }
}
