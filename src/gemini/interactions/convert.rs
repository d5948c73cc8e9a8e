//! Between peel's stored model (generateContent's `Content` and `Part`) and the Interactions API's steps.
//!
//! peel's store stays the source of truth whatever the transport: an interaction's answer is stored as the model
//! `Content` a generateContent call would have produced, so a thread can move to the other API at any turn, and a
//! stored thread can be sent back to the Interactions API as steps when the server has lost it.
//!
//! The mapping (the SDK has no converter of its own; the shapes are SDK google-genai 3.6.1
//! `_gaos/types/interactions/thoughtstep.py`, `modeloutputstep.py`, `userinputstep.py`, `textcontent.py`,
//! `imagecontent.py`):
//! - a `thought` step's summary blocks become `thought: true` parts (text, or an image the model drew while
//!   thinking);
//! - its `signature` (content blocks carry none in the SDK's types) goes on the first part of the `model_output`
//!   step that follows, which is where generateContent puts the signature of a thought: on the first non-thought
//!   part after it. With no such part it rides on an empty text part, as generateContent's streams do;
//! - `model_output` text and image blocks become text and `inlineData` parts, in order;
//! - [`thread_steps`] is the exact inverse for everything this produces: a signed non-thought part closes a thought
//!   step with that signature, and an empty signed text part is only a carrier.
//!
//! Blocks of other modalities (audio, video, documents) and tool steps have no place in an image thread and are
//! left out.

use serde_json::{Map, Value, json};

use super::types::{Block, Interaction, InteractionStatus, Step, Usage};
use crate::gemini::error::GeminiError;
use crate::gemini::outcome::{Outcome, Refusal};
use crate::gemini::types::{Content, InlineData, Part, UsageMetadata};

/// A user turn as a `user_input` step: text parts as text blocks, inline images as image blocks.
pub fn user_input(content: &Content) -> Result<Step, GeminiError> {
    let mut blocks = Vec::with_capacity(content.parts.len());
    for part in &content.parts {
        let block = block_of(part).ok_or_else(|| {
            GeminiError::Unsupported(format!(
                "a part the Interactions API input cannot carry: {}",
                part.extra.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        blocks.push(block);
    }
    if blocks.is_empty() {
        return Err(GeminiError::Unsupported(
            "an empty user turn cannot be sent".into(),
        ));
    }
    Ok(Step::UserInput { content: blocks })
}

/// A whole stored thread (user and model contents, oldest first) as input steps: what a turn sends when the
/// server no longer has the conversation. Stored values marked with [`crate::gemini::body::Marks::fill`] pass
/// through unchanged.
pub fn thread_steps(contents: &[Content]) -> Result<Vec<Step>, GeminiError> {
    let mut steps = Vec::new();
    for content in contents {
        if content.is_model() {
            steps.extend(model_steps(content));
        } else {
            steps.push(user_input(content)?);
        }
    }
    Ok(steps)
}

/// A model content as the thought and model_output steps it stands for (see the module's mapping).
pub fn model_steps(content: &Content) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut thought: Option<Vec<Block>> = None;
    let mut output: Option<Vec<Block>> = None;
    for part in &content.parts {
        let Some(block) = block_of(part) else {
            continue;
        };
        if part.is_thought() {
            if let Some(content) = output.take() {
                steps.push(model_output(content));
            }
            thought.get_or_insert_with(Vec::new).push(block);
            continue;
        }
        if let Some(signature) = &part.thought_signature {
            if let Some(content) = output.take() {
                steps.push(model_output(content));
            }
            steps.push(Step::Thought {
                signature: Some(signature.clone()),
                summary: thought.take().unwrap_or_default(),
            });
            if matches!(&block, Block::Text { text, .. } if text.is_empty()) {
                continue;
            }
        } else if let Some(summary) = thought.take() {
            steps.push(Step::Thought {
                signature: None,
                summary,
            });
        }
        output.get_or_insert_with(Vec::new).push(block);
    }
    if let Some(summary) = thought {
        steps.push(Step::Thought {
            signature: None,
            summary,
        });
    }
    if let Some(content) = output {
        steps.push(model_output(content));
    }
    steps
}

fn model_output(content: Vec<Block>) -> Step {
    Step::ModelOutput {
        content,
        error: None,
    }
}

fn block_of(part: &Part) -> Option<Block> {
    if let Some(text) = &part.text {
        Some(Block::text(text.clone()))
    } else {
        part.inline_data
            .as_ref()
            .map(|inline| Block::image(inline.mime_type.clone(), inline.data.clone()))
    }
}

/// The model's answer of an interaction as the `Content` generateContent would have given: from the steps after
/// the last `user_input` step (`create` returns only those; `get` can include the input). Images must be inline:
/// fetch `uri` images first ([`crate::gemini::Client::inline_uri_images`]).
pub fn model_content(interaction: &Interaction) -> Result<Content, GeminiError> {
    let start = interaction
        .steps
        .iter()
        .rposition(|s| matches!(s, Step::UserInput { .. }))
        .map_or(0, |i| i + 1);
    let mut parts = Vec::new();
    let mut pending: Option<String> = None;
    let carrier = |signature: String| Part {
        text: Some(String::new()),
        thought_signature: Some(signature),
        ..Part::default()
    };
    for step in &interaction.steps[start..] {
        match step {
            Step::Thought { signature, summary } => {
                if let Some(signature) = pending.take() {
                    parts.push(carrier(signature));
                }
                for block in summary {
                    if let Some(mut part) = part_of(block)? {
                        part.thought = Some(true);
                        parts.push(part);
                    }
                }
                pending = signature.clone();
            }
            Step::ModelOutput { content, .. } => {
                for block in content {
                    if let Some(mut part) = part_of(block)? {
                        part.thought_signature = pending.take();
                        parts.push(part);
                    }
                }
            }
            Step::Other(value) => {
                // Tool steps have no place in an image thread; a thought or output that did not parse would be
                // a turn stored without part of itself.
                let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
                if matches!(kind, "thought" | "model_output" | "user_input") {
                    return Err(GeminiError::Malformed(format!(
                        "a {kind} step that does not parse: {}",
                        value.to_string().chars().take(200).collect::<String>()
                    )));
                }
            }
            Step::UserInput { .. } => {}
        }
    }
    if let Some(signature) = pending {
        parts.push(carrier(signature));
    }
    Ok(Content {
        role: Some("model".into()),
        parts,
        extra: Map::new(),
    })
}

fn part_of(block: &Block) -> Result<Option<Part>, GeminiError> {
    match block {
        Block::Text { text, .. } => Ok(Some(Part::text(text.clone()))),
        Block::Image {
            data: Some(data),
            mime_type,
            ..
        } => Ok(Some(Part {
            inline_data: Some(InlineData {
                // The SDK lists the type as optional; peel detects image types from the bytes anyway.
                mime_type: mime_type.clone().unwrap_or_else(|| "image/jpeg".into()),
                data: data.clone(),
                extra: Map::new(),
            }),
            ..Part::default()
        })),
        Block::Image { uri: Some(_), .. } => Err(GeminiError::Malformed(
            "an image delivered by uri was not fetched before the answer was stored".into(),
        )),
        Block::Image { .. } => Err(GeminiError::Malformed(
            "an image block with neither data nor uri".into(),
        )),
        Block::Other(_) => Ok(None),
    }
}

/// An interaction's usage in generateContent's terms. `total_output_tokens` does not include the thought tokens:
/// the SDK's own tests build completed events with `total_tokens = total_output_tokens + total_thought_tokens`
/// (`tests/interactions/test_automatic_continuation.py`, `_completed_event`), as generateContent's
/// `candidatesTokenCount` leaves out `thoughtsTokenCount`.
pub fn usage_metadata(usage: &Usage) -> UsageMetadata {
    let mut extra = Map::new();
    if let Some(cached) = usage.total_cached_tokens {
        extra.insert("cachedContentTokenCount".into(), json!(cached));
    }
    let details = |list: &[super::types::ModalityTokens]| -> Value {
        list.iter()
            .map(|m| {
                json!({
                    "modality": m.modality.as_deref().unwrap_or("unspecified").to_ascii_uppercase(),
                    "tokenCount": m.tokens.unwrap_or(0),
                })
            })
            .collect()
    };
    if !usage.input_tokens_by_modality.is_empty() {
        extra.insert(
            "promptTokensDetails".into(),
            details(&usage.input_tokens_by_modality),
        );
    }
    if !usage.output_tokens_by_modality.is_empty() {
        extra.insert(
            "candidatesTokensDetails".into(),
            details(&usage.output_tokens_by_modality),
        );
    }
    UsageMetadata {
        prompt_token_count: usage.total_input_tokens,
        candidates_token_count: usage.total_output_tokens,
        thoughts_token_count: usage.total_thought_tokens,
        total_token_count: usage.total_tokens,
        extra,
    }
}

/// What a finished interaction means for the conversation, in the same terms as a generateContent answer: a model
/// turn to keep, or a refusal that adds nothing to the history.
pub fn classify(interaction: &Interaction) -> Result<Outcome, GeminiError> {
    let usage = interaction.usage.as_ref().map(usage_metadata);
    let step_error = interaction.steps.iter().find_map(|step| match step {
        Step::ModelOutput {
            error: Some(error), ..
        } => Some(error),
        _ => None,
    });
    let message_of = |error: &Value| {
        error
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    if interaction.status != InteractionStatus::Completed {
        let message = step_error
            .and_then(message_of)
            .or_else(|| interaction.errors.iter().find_map(|e| e.message.clone()));
        return Ok(Outcome::Refused(Refusal {
            reason: interaction.status.as_str().to_ascii_uppercase(),
            message,
            prompt_blocked: false,
            usage,
        }));
    }
    let content = model_content(interaction)?;
    let has_something = content
        .parts
        .iter()
        .any(|p| p.inline_data.is_some() || p.text.as_deref().is_some_and(|t| !t.is_empty()));
    if !has_something {
        return Ok(Outcome::Refused(Refusal {
            reason: "NO_IMAGE".into(),
            message: step_error.and_then(message_of),
            prompt_blocked: false,
            usage,
        }));
    }
    Ok(Outcome::Answer {
        content,
        finish_reason: "STOP".into(),
        usage,
        sources: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(mut part: Part, signature: &str) -> Part {
        part.thought_signature = Some(signature.into());
        part
    }

    fn thought(mut part: Part) -> Part {
        part.thought = Some(true);
        part
    }

    fn interaction(steps: Vec<Step>) -> Interaction {
        Interaction {
            id: "v1_x".into(),
            status: InteractionStatus::Completed,
            steps,
            ..Interaction::default()
        }
    }

    #[test]
    fn an_answer_becomes_the_content_generate_content_would_store() {
        let steps = vec![
            Step::Thought {
                signature: Some("U0lH".into()),
                summary: vec![
                    Block::text("Planning"),
                    Block::image("image/jpeg", "VEhJTks="),
                ],
            },
            Step::ModelOutput {
                content: vec![
                    Block::text("Here it is"),
                    Block::image("image/jpeg", "SU1H"),
                ],
                error: None,
            },
        ];
        let content = model_content(&interaction(steps.clone())).unwrap();
        assert_eq!(
            content.parts,
            [
                thought(Part::text("Planning")),
                thought(Part::image("image/jpeg", "VEhJTks=".into())),
                signed(Part::text("Here it is"), "U0lH"),
                Part::image("image/jpeg", "SU1H".into()),
            ]
        );
        assert!(content.is_model());
        assert_eq!(model_steps(&content), steps, "the exact inverse");
    }

    #[test]
    fn signatures_without_a_following_output_ride_on_empty_text_and_come_back() {
        let steps = vec![
            Step::Thought {
                signature: Some("QQ==".into()),
                summary: vec![],
            },
            Step::Thought {
                signature: Some("Qg==".into()),
                summary: vec![Block::text("more")],
            },
        ];
        let content = model_content(&interaction(steps.clone())).unwrap();
        assert_eq!(
            content.parts,
            [
                signed(Part::text(""), "QQ=="),
                thought(Part::text("more")),
                signed(Part::text(""), "Qg=="),
            ]
        );
        assert_eq!(model_steps(&content), steps);
    }

    #[test]
    fn only_the_steps_after_the_last_input_are_the_answer() {
        let interaction = interaction(vec![
            Step::UserInput {
                content: vec![Block::text("a fox")],
            },
            Step::ModelOutput {
                content: vec![Block::text("ok")],
                error: None,
            },
        ]);
        assert_eq!(
            model_content(&interaction).unwrap().parts,
            [Part::text("ok")]
        );
    }

    #[test]
    fn a_generate_content_turn_goes_out_as_steps() {
        // As generateContent answers: a thought, text signed because it precedes the image, a signed image.
        let content = Content {
            role: Some("model".into()),
            parts: vec![
                thought(Part::text("plan")),
                signed(Part::text("Here"), "T1"),
                signed(Part::image("image/jpeg", "SU1H".into()), "I1"),
            ],
            extra: Map::new(),
        };
        let user = Content::user(vec![
            Part::text("a fox"),
            Part::image("image/png", "UE5H".into()),
        ]);
        let steps = thread_steps(&[user, content]).unwrap();
        assert_eq!(
            serde_json::to_value(&steps).unwrap(),
            json!([
                {"type": "user_input", "content": [
                    {"type": "text", "text": "a fox"},
                    {"type": "image", "data": "UE5H", "mime_type": "image/png"}]},
                {"type": "thought", "signature": "T1", "summary": [{"type": "text", "text": "plan"}]},
                {"type": "model_output", "content": [{"type": "text", "text": "Here"}]},
                {"type": "thought", "signature": "I1"},
                {"type": "model_output", "content": [
                    {"type": "image", "data": "SU1H", "mime_type": "image/jpeg"}]}
            ])
        );
    }

    #[test]
    fn a_known_step_that_does_not_parse_is_an_error() {
        let broken: Step =
            serde_json::from_value(json!({"type": "thought", "signature": 42})).unwrap();
        assert!(matches!(broken, Step::Other(_)));
        assert!(matches!(
            model_content(&interaction(vec![broken])),
            Err(GeminiError::Malformed(_))
        ));
        let tool: Step =
            serde_json::from_value(json!({"type": "google_search_call", "arguments": {}})).unwrap();
        assert!(
            model_content(&interaction(vec![tool]))
                .unwrap()
                .parts
                .is_empty()
        );
    }

    #[test]
    fn usage_maps_onto_usage_metadata() {
        let usage: Usage = serde_json::from_value(json!({
            "total_input_tokens": 600, "total_output_tokens": 1120, "total_thought_tokens": 200,
            "total_tokens": 1920, "total_cached_tokens": 500,
            "input_tokens_by_modality": [{"modality": "text", "tokens": 40}, {"modality": "image", "tokens": 560}],
            "output_tokens_by_modality": [{"modality": "image", "tokens": 1120}]
        }))
        .unwrap();
        let metadata = usage_metadata(&usage);
        assert_eq!(
            serde_json::to_value(&metadata).unwrap(),
            json!({
                "promptTokenCount": 600, "candidatesTokenCount": 1120, "thoughtsTokenCount": 200,
                "totalTokenCount": 1920, "cachedContentTokenCount": 500,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 40},
                                        {"modality": "IMAGE", "tokenCount": 560}],
                "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 1120}]
            })
        );
    }

    #[test]
    fn outcomes() {
        let answer = interaction(vec![Step::ModelOutput {
            content: vec![Block::image("image/jpeg", "SU1H")],
            error: None,
        }]);
        assert!(matches!(classify(&answer).unwrap(), Outcome::Answer { .. }));
        let mut failed = interaction(vec![Step::ModelOutput {
            content: vec![],
            error: Some(json!({"code": 3, "message": "Image was filtered."})),
        }]);
        let Outcome::Refused(refusal) = classify(&failed).unwrap() else {
            panic!()
        };
        assert_eq!(refusal.reason, "NO_IMAGE");
        assert_eq!(refusal.message.as_deref(), Some("Image was filtered."));
        failed.status = InteractionStatus::Failed;
        let Outcome::Refused(refusal) = classify(&failed).unwrap() else {
            panic!()
        };
        assert_eq!(refusal.reason, "FAILED");
        let unfetched = interaction(vec![Step::ModelOutput {
            content: vec![Block::Image {
                data: None,
                mime_type: None,
                uri: Some("https://x/y".into()),
                resolution: None,
            }],
            error: None,
        }]);
        assert!(matches!(
            classify(&unfetched),
            Err(GeminiError::Malformed(_))
        ));
    }
}

/// The bodies the official SDK builds and reads (`tests/fixtures/sdk/`, written by its `make_fixtures.py` with
/// google-genai 3.6.1's own models).
#[cfg(test)]
mod sdk_fixtures {
    use super::*;
    use crate::gemini::Progress;
    use crate::gemini::interactions::events::Assembler;
    use crate::gemini::interactions::types::{
        CreateInteraction, Delivery, GenerationConfig, ImageResponseFormat,
    };

    const IMAGE: &str = "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJ";
    const SIGNATURE: &str = "BwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYn";

    fn fixture(name: &str) -> Vec<u8> {
        crate::test_support::fixture(&format!("sdk/{name}"))
    }

    fn fixture_json(name: &str) -> Value {
        serde_json::from_slice(&fixture(name)).unwrap()
    }

    #[test]
    fn a_turn_goes_out_as_the_sdk_sends_it() {
        let user = Content::user(vec![
            Part::text("make it night"),
            Part::image("image/jpeg", IMAGE.into()),
        ]);
        let request = CreateInteraction {
            model: "gemini-3-pro-image".into(),
            input: vec![user_input(&user).unwrap()],
            previous_interaction_id: Some("v1_previous".into()),
            store: Some(true),
            stream: Some(true),
            response_format: Some(ImageResponseFormat {
                aspect_ratio: Some("16:9".into()),
                image_size: Some("2K".into()),
                delivery: Some(Delivery::Inline),
                ..ImageResponseFormat::new()
            }),
            generation_config: Some(GenerationConfig {
                thinking_level: Some("high".into()),
                thinking_summaries: Some("auto".into()),
                ..GenerationConfig::default()
            }),
            ..CreateInteraction::default()
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            fixture_json("interaction-create-request.json")
        );
    }

    #[test]
    fn a_stored_thread_goes_out_as_the_sdk_would_send_its_steps() {
        let mut thought = Part::text("Planning");
        thought.thought = Some(true);
        let mut image = Part::image("image/jpeg", IMAGE.into());
        image.thought_signature = Some(SIGNATURE.into());
        let thread = [
            Content::user(vec![Part::text("a red fox")]),
            Content {
                role: Some("model".into()),
                parts: vec![thought, image],
                extra: Map::new(),
            },
            Content::user(vec![Part::text("make it night")]),
        ];
        let request = CreateInteraction {
            model: "gemini-3.1-flash-image".into(),
            input: thread_steps(&thread).unwrap(),
            store: Some(false),
            ..CreateInteraction::default()
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            fixture_json("interaction-thread-request.json")
        );
    }

    #[test]
    fn an_answer_and_its_stream_give_the_same_stored_turn() {
        let answer: Interaction = serde_json::from_slice(&fixture("interaction.json")).unwrap();
        let content = model_content(&answer).unwrap();
        let mut thought = Part::text("**Planning the night scene**");
        thought.thought = Some(true);
        let mut text = Part::text("Here it is at night.");
        text.thought_signature = Some(SIGNATURE.into());
        assert_eq!(
            content.parts,
            [thought, text, Part::image("image/jpeg", IMAGE.into())]
        );
        let usage = usage_metadata(answer.usage.as_ref().unwrap());
        assert_eq!(usage.prompt_token_count, Some(1690));
        assert_eq!(usage.candidates_token_count, Some(1126));
        assert_eq!(usage.thoughts_token_count, Some(180));
        assert_eq!(usage.total_token_count, Some(2996));

        let mut assembler = Assembler::new();
        let quiet = |_: Progress<'_>| {};
        for line in fixture("interaction-stream.jsonl").split(|&b| b == b'\n') {
            if !line.is_empty() {
                assembler.push_json(line, &quiet).unwrap();
            }
        }
        let streamed = assembler.finish().unwrap();
        assert_eq!(streamed.id, answer.id);
        assert_eq!(streamed.steps, answer.steps);
        assert_eq!(streamed.usage, answer.usage);
        assert_eq!(model_content(&streamed).unwrap(), content);
    }
}
