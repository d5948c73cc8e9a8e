//! A streamed interaction (`"stream": true`): its server-sent events, and how they add up to one [`Interaction`].
//!
//! Sources: SDK (google-genai 3.6.1) `_gaos/types/interactions/interactionsseevent.py` lists the events by
//! `event_type`; `stepstart.py`, `stepdelta.py`, `stepdeltadata.py`, `stepstop.py` and `*delta.py` give their fields;
//! `_gaos/interactions.py` reads the stream with `sentinel="[DONE]"` (a `data: [DONE]` line ends it, if sent) and
//! `utils/eventstreaming.py` takes each event's `data` as the whole JSON event. Docs ("Streaming interactions")
//! show a client reading `step.delta` events of type `text`.
//!
//! How the pieces add up is not written down anywhere; this is what the types allow and what peel does:
//! `step.start` puts a step at `index` (with whatever content it already carries), `step.delta` adds to the step
//! at its `index`: a `text` delta extends the text block it follows (a new block after an image), an `image` delta
//! is a whole image block, `thought_signature` sets a thought step's signature, `thought_summary` adds a summary
//! block. `interaction.completed` carries the id, status and usage (its `interaction` may omit the steps, SDK
//! `interactionsseeventinteraction.py`), and ends the answer.

use serde::Deserialize;
use serde_json::Value;

use super::types::{Block, ErrorBody, Interaction, InteractionStatus, Step, Usage};
use crate::gemini::Progress;
use crate::gemini::error::{ApiError, GeminiError};

/// One event of the stream. SDK `interactionsseevent.py` (`InteractionSSEEvent`), discriminated by `event_type`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "event_type")]
pub enum Event {
    /// SDK `interactioncreatedevent.py`: the interaction's id and status, before any step.
    #[serde(rename = "interaction.created")]
    Created { interaction: Interaction },
    /// SDK `interactioncompletedevent.py`.
    #[serde(rename = "interaction.completed")]
    Completed { interaction: Interaction },
    /// SDK `interactionstatusupdate.py`.
    #[serde(rename = "interaction.status_update")]
    StatusUpdate {
        #[serde(default)]
        interaction_id: Option<String>,
        status: InteractionStatus,
        #[serde(default)]
        continuation_token: Option<String>,
        #[serde(default)]
        usage: Option<Usage>,
    },
    /// SDK `stepstart.py`.
    #[serde(rename = "step.start")]
    StepStart { index: usize, step: Step },
    /// SDK `stepdelta.py`; `metadata.total_usage` (SDK `stepdeltametadata.py`) is the usage so far.
    #[serde(rename = "step.delta")]
    StepDelta {
        index: usize,
        delta: Delta,
        #[serde(default)]
        metadata: Option<Value>,
    },
    /// SDK `stepstop.py`.
    #[serde(rename = "step.stop")]
    StepStop {
        index: usize,
        #[serde(default)]
        usage: Option<Usage>,
    },
    /// SDK `errorevent.py`: the server giving up after its 200.
    #[serde(rename = "error")]
    Error {
        #[serde(default)]
        error: Option<ErrorBody>,
    },
    #[serde(untagged)]
    Other(Value),
}

/// What a `step.delta` adds. SDK `stepdeltadata.py`, discriminated by `type`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Delta {
    /// SDK `textdelta.py`.
    Text { text: String },
    /// SDK `imagedelta.py`: like an image block.
    Image {
        #[serde(default)]
        data: Option<String>,
        #[serde(default)]
        mime_type: Option<String>,
        #[serde(default)]
        uri: Option<String>,
        #[serde(default)]
        resolution: Option<String>,
    },
    /// SDK `thoughtsignaturedelta.py`.
    ThoughtSignature {
        #[serde(default)]
        signature: Option<String>,
    },
    /// SDK `thoughtsummarydelta.py`: one content block of the summary.
    ThoughtSummary {
        #[serde(default)]
        content: Option<Block>,
    },
    #[serde(untagged)]
    Other(Value),
}

/// The `event_type`s of [`Event`]'s typed variants.
const KNOWN_EVENTS: [&str; 7] = [
    "interaction.created",
    "interaction.completed",
    "interaction.status_update",
    "step.start",
    "step.delta",
    "step.stop",
    "error",
];

/// The most steps an interaction's stream may build here (an image turn has a handful: thoughts, then the output).
const MAX_STEPS: usize = 1024;

/// Builds the interaction out of a stream's events, reporting thought summaries and text as they arrive.
#[derive(Debug, Default)]
pub struct Assembler {
    interaction: Interaction,
    steps: Vec<Option<Step>>,
    events: usize,
    completed: bool,
}

impl Assembler {
    pub fn new() -> Assembler {
        Assembler::default()
    }

    /// Adds one event's `data`.
    pub fn push_json(
        &mut self,
        data: &[u8],
        progress: &dyn Fn(Progress<'_>),
    ) -> Result<(), GeminiError> {
        if data.trim_ascii() == b"[DONE]" {
            return Ok(());
        }
        self.events += 1;
        let event: Event = serde_json::from_slice(data).map_err(|e| {
            GeminiError::Malformed(format!("interaction stream event {}: {e}", self.events))
        })?;
        self.push(event, progress)
    }

    pub fn push(
        &mut self,
        event: Event,
        progress: &dyn Fn(Progress<'_>),
    ) -> Result<(), GeminiError> {
        match event {
            Event::Created { interaction } => self.merge_interaction(interaction),
            Event::Completed { interaction } => {
                self.merge_interaction(interaction);
                self.completed = true;
            }
            Event::StatusUpdate {
                interaction_id,
                status,
                continuation_token,
                usage,
            } => {
                if let Some(id) = interaction_id.filter(|id| !id.is_empty()) {
                    self.interaction.id = id;
                }
                self.interaction.status = status;
                if continuation_token.is_some() {
                    self.interaction.continuation_token = continuation_token;
                }
                if usage.is_some() {
                    self.interaction.usage = usage;
                }
            }
            Event::StepStart { index, step } => {
                for block in step_blocks(&step) {
                    report(block, step_is_thought(&step), progress);
                }
                *self.slot(index)? = Some(step);
            }
            Event::StepDelta { index, delta, .. } => self.apply(index, delta, progress)?,
            Event::StepStop { usage, .. } => {
                if usage.is_some() {
                    self.interaction.usage = usage;
                }
            }
            Event::Error { error } => return Err(error_event(error.unwrap_or_default())),
            Event::Other(value) => {
                // A kind of event this peel does not know carries nothing it needs; a known kind that did not
                // parse would lose part of the answer.
                let kind = value
                    .get("event_type")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if KNOWN_EVENTS.contains(&kind) {
                    return Err(GeminiError::Malformed(format!(
                        "interaction stream event {}: a {kind} event that does not parse: {}",
                        self.events,
                        value.to_string().chars().take(200).collect::<String>()
                    )));
                }
            }
        }
        Ok(())
    }

    fn merge_interaction(&mut self, interaction: Interaction) {
        let Interaction {
            id,
            status,
            model,
            steps,
            usage,
            previous_interaction_id,
            created,
            updated,
            continuation_token,
            errors,
            extra,
        } = interaction;
        let into = &mut self.interaction;
        if !id.is_empty() {
            into.id = id;
        }
        into.status = status;
        into.model = model.or(into.model.take());
        into.usage = usage.or(into.usage.take());
        into.previous_interaction_id =
            previous_interaction_id.or(into.previous_interaction_id.take());
        into.created = created.or(into.created.take());
        into.updated = updated.or(into.updated.take());
        into.continuation_token = continuation_token.or(into.continuation_token.take());
        into.errors.extend(errors);
        into.extra.extend(extra);
        // A completed event that carries the steps (the SDK's type allows it) is used only when the deltas built
        // nothing: the deltas are what arrived.
        if self.steps.iter().all(Option::is_none) && !steps.is_empty() {
            self.steps = steps.into_iter().map(Some).collect();
        }
    }

    /// The step at `index`, made room for. The index comes from the server: one past [`MAX_STEPS`] is refused,
    /// since the steps are a dense list and an index of a billion would ask for gigabytes.
    fn slot(&mut self, index: usize) -> Result<&mut Option<Step>, GeminiError> {
        if index >= MAX_STEPS {
            return Err(GeminiError::Malformed(format!(
                "interaction stream event {}: step {index}, past the {MAX_STEPS} steps an interaction may have",
                self.events
            )));
        }
        if self.steps.len() <= index {
            self.steps.resize(index + 1, None);
        }
        Ok(&mut self.steps[index])
    }

    fn apply(
        &mut self,
        index: usize,
        delta: Delta,
        progress: &dyn Fn(Progress<'_>),
    ) -> Result<(), GeminiError> {
        let events = self.events;
        let slot = self.slot(index)?;
        // A delta for a step that never started: the kind follows from the delta.
        let step = slot.get_or_insert_with(|| match delta {
            Delta::ThoughtSignature { .. } | Delta::ThoughtSummary { .. } => Step::Thought {
                signature: None,
                summary: Vec::new(),
            },
            _ => Step::ModelOutput {
                content: Vec::new(),
                error: None,
            },
        });
        let mismatch = |what: &str| {
            GeminiError::Malformed(format!(
                "interaction stream event {events}: a {what} delta for step {index}, which is not a \
                 step of that kind"
            ))
        };
        match delta {
            Delta::Text { text } => {
                let Step::ModelOutput { content, .. } = step else {
                    return Err(mismatch("text"));
                };
                if !text.is_empty() {
                    progress(Progress::Text(&text));
                }
                match content.last_mut() {
                    Some(Block::Text { text: last, .. }) => last.push_str(&text),
                    _ => content.push(Block::text(text)),
                }
            }
            Delta::Image {
                data,
                mime_type,
                uri,
                resolution,
            } => {
                let block = Block::Image {
                    data,
                    mime_type,
                    uri,
                    resolution,
                };
                match step {
                    Step::ModelOutput { content, .. } => content.push(block),
                    // An image the model drew while thinking.
                    Step::Thought { summary, .. } => summary.push(block),
                    _ => return Err(mismatch("image")),
                }
            }
            Delta::ThoughtSignature { signature } => {
                let Step::Thought {
                    signature: into, ..
                } = step
                else {
                    return Err(mismatch("thought_signature"));
                };
                if let Some(signature) = signature {
                    // A signature may come in pieces, like text.
                    into.get_or_insert_with(String::new).push_str(&signature);
                }
            }
            Delta::ThoughtSummary { content } => {
                let Step::Thought { summary, .. } = step else {
                    return Err(mismatch("thought_summary"));
                };
                if let Some(block) = content {
                    report(&block, true, progress);
                    match (summary.last_mut(), block) {
                        (Some(Block::Text { text: last, .. }), Block::Text { text, .. }) => {
                            last.push_str(&text)
                        }
                        (_, block) => summary.push(block),
                    }
                }
            }
            Delta::Other(_) => {}
        }
        Ok(())
    }

    /// The whole interaction, or an error when the stream stopped before `interaction.completed`.
    pub fn finish(mut self) -> Result<Interaction, GeminiError> {
        if !self.completed {
            return Err(GeminiError::Incomplete(self.events));
        }
        if self.steps.iter().any(Option::is_some) {
            self.interaction.steps = self.steps.into_iter().flatten().collect();
        }
        Ok(self.interaction)
    }
}

fn step_is_thought(step: &Step) -> bool {
    matches!(step, Step::Thought { .. })
}

fn step_blocks(step: &Step) -> &[Block] {
    match step {
        Step::Thought { summary, .. } => summary,
        Step::ModelOutput { content, .. } => content,
        _ => &[],
    }
}

fn report(block: &Block, thought: bool, progress: &dyn Fn(Progress<'_>)) {
    if let Block::Text { text, .. } = block {
        match thought {
            true => progress(Progress::Thought(text)),
            false if !text.is_empty() => progress(Progress::Text(text)),
            false => {}
        }
    }
}

/// An `error` event as an API error. Its `code` is a status name in lowercase (SDK `error.py`: a string;
/// `resource_exhausted` in the SDK's own tests), mapped to the HTTP status that name stands for so the retry policy
/// treats it like the same error before the 200.
pub(super) fn error_event(error: ErrorBody) -> GeminiError {
    let name = match &error.code {
        Some(Value::String(code)) => code.to_ascii_uppercase(),
        _ => String::new(),
    };
    let http_status = match &error.code {
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .unwrap_or(500),
        _ => http_status_of(&name),
    };
    let body = serde_json::json!({ "error": {
        "code": error.code,
        "message": error.message.unwrap_or_default(),
    }});
    GeminiError::Api(ApiError::from_body(
        http_status,
        body.to_string().as_bytes(),
    ))
}

/// The HTTP status google.rpc.Code names map to (google/rpc/code.proto).
fn http_status_of(name: &str) -> u16 {
    match name {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => 400,
        "UNAUTHENTICATED" => 401,
        "PERMISSION_DENIED" => 403,
        "NOT_FOUND" => 404,
        "ABORTED" | "ALREADY_EXISTS" => 409,
        "RESOURCE_EXHAUSTED" => 429,
        "CANCELLED" => 499,
        "UNIMPLEMENTED" => 501,
        "UNAVAILABLE" => 503,
        "DEADLINE_EXCEEDED" => 504,
        _ => 500,
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    fn assemble(events: &[Value]) -> (Result<Interaction, GeminiError>, Vec<String>) {
        let shown = RefCell::new(Vec::new());
        let progress = |p: Progress<'_>| match p {
            Progress::Thought(t) => shown.borrow_mut().push(format!("thought:{t}")),
            Progress::Text(t) => shown.borrow_mut().push(format!("text:{t}")),
            _ => {}
        };
        let mut assembler = Assembler::new();
        for event in events {
            if let Err(e) = assembler.push_json(event.to_string().as_bytes(), &progress) {
                return (Err(e), shown.into_inner());
            }
        }
        (assembler.finish(), shown.into_inner())
    }

    #[test]
    fn deltas_build_thought_and_output_steps() {
        let events = [
            serde_json::json!({"event_type": "interaction.created",
                               "interaction": {"id": "v1_1", "status": "in_progress"}}),
            serde_json::json!({"event_type": "step.start", "index": 0, "step": {"type": "thought"}}),
            serde_json::json!({"event_type": "step.delta", "index": 0,
                               "delta": {"type": "thought_summary", "content": {"type": "text", "text": "Plan"}}}),
            serde_json::json!({"event_type": "step.delta", "index": 0,
                               "delta": {"type": "thought_summary", "content": {"type": "text", "text": "ning"}}}),
            serde_json::json!({"event_type": "step.delta", "index": 0,
                               "delta": {"type": "thought_signature", "signature": "c2ln"}}),
            serde_json::json!({"event_type": "step.stop", "index": 0}),
            serde_json::json!({"event_type": "step.start", "index": 1, "step": {"type": "model_output"}}),
            serde_json::json!({"event_type": "step.delta", "index": 1, "delta": {"type": "text", "text": "Here "}}),
            serde_json::json!({"event_type": "step.delta", "index": 1, "delta": {"type": "text", "text": "it is"}}),
            serde_json::json!({"event_type": "step.delta", "index": 1,
                               "delta": {"type": "image", "data": "AAAA", "mime_type": "image/jpeg"}}),
            serde_json::json!({"event_type": "step.stop", "index": 1}),
            serde_json::json!({"event_type": "some.future_event", "x": 1}),
            serde_json::json!({"event_type": "interaction.completed",
                               "interaction": {"id": "v1_1", "status": "completed",
                                               "usage": {"total_tokens": 9}}}),
        ];
        let (interaction, shown) = assemble(&events);
        let interaction = interaction.unwrap();
        assert_eq!(interaction.id, "v1_1");
        assert_eq!(interaction.status, InteractionStatus::Completed);
        assert_eq!(interaction.usage.unwrap().total_tokens, Some(9));
        assert_eq!(
            interaction.steps,
            [
                Step::Thought {
                    signature: Some("c2ln".into()),
                    summary: vec![Block::text("Planning")],
                },
                Step::ModelOutput {
                    content: vec![
                        Block::text("Here it is"),
                        Block::image("image/jpeg", "AAAA")
                    ],
                    error: None,
                },
            ]
        );
        assert_eq!(
            shown,
            ["thought:Plan", "thought:ning", "text:Here ", "text:it is"]
        );
    }

    #[test]
    fn a_stream_without_completion_is_incomplete_and_an_error_event_is_an_api_error() {
        let (result, _) = assemble(&[
            serde_json::json!({"event_type": "interaction.created",
                               "interaction": {"id": "v1_1", "status": "in_progress"}}),
            serde_json::json!({"event_type": "step.delta", "index": 0, "delta": {"type": "text", "text": "x"}}),
        ]);
        assert!(matches!(result, Err(GeminiError::Incomplete(2))));
        let (result, _) = assemble(&[serde_json::json!({"event_type": "error",
            "error": {"code": "unavailable", "message": "The model is overloaded."}})]);
        match result {
            Err(GeminiError::Api(e)) => {
                assert_eq!(e.http_status, 503);
                assert_eq!(e.status.as_deref(), Some("unavailable"));
                assert!(e.is_retryable());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_known_event_that_does_not_parse_is_an_error_not_a_gap() {
        let (result, _) = assemble(&[serde_json::json!({"event_type": "step.delta",
            "delta": {"type": "text", "text": "no index"}})]);
        assert!(matches!(result, Err(GeminiError::Malformed(m)) if m.contains("step.delta")));
    }

    #[test]
    fn a_step_index_from_a_hostile_server_is_refused_not_allocated() {
        for index in [1024_u64, 1 << 32, u64::MAX] {
            let (result, _) = assemble(&[
                serde_json::json!({"event_type": "step.start", "index": index, "step": {"type": "model_output"}}),
            ]);
            assert!(
                matches!(&result, Err(GeminiError::Malformed(m)) if m.contains("past the 1024 steps")),
                "{result:?}"
            );
            let (result, _) = assemble(&[
                serde_json::json!({"event_type": "step.delta", "index": index,
                "delta": {"type": "text", "text": "x"}}),
            ]);
            assert!(
                matches!(&result, Err(GeminiError::Malformed(_))),
                "{result:?}"
            );
        }
        let (result, _) = assemble(&[
            serde_json::json!({"event_type": "step.start", "index": 1023, "step": {"type": "model_output"}}),
        ]);
        assert!(
            matches!(result, Err(GeminiError::Incomplete(1))),
            "{result:?}"
        );
    }

    #[test]
    fn the_done_sentinel_is_not_an_event() {
        let mut assembler = Assembler::new();
        assembler.push_json(b"[DONE]", &|_| {}).unwrap();
        assert!(matches!(
            assembler.finish(),
            Err(GeminiError::Incomplete(0))
        ));
    }
}
