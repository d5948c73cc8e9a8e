//! Builds one response out of the events of a stream (SSE or a JSON array of chunks).
//!
//! The model turn kept in the history must be exactly what the model sent, so each event's parts are appended in
//! order and never merged: two streamed text parts stay two parts, and the final `{"text": "", "thoughtSignature":
//! ...}` carrier is kept. Usage changes on every event; the last one counts. A stream that ends without a
//! finishReason is incomplete and is an error: half a turn must never reach the history.

use serde_json::Value;

use super::Progress;
use super::error::{ApiError, GeminiError};
use super::types::{Candidate, Content, GenerateContentResponse};

#[derive(Debug, Default)]
pub struct Assembler {
    response: GenerateContentResponse,
    events: usize,
}

impl Assembler {
    pub fn new() -> Assembler {
        Assembler::default()
    }

    /// Adds one event's JSON; an `{"error": ...}` event is the server giving up after its 200.
    pub fn push_json(
        &mut self,
        json: &[u8],
        progress: &dyn Fn(Progress<'_>),
    ) -> Result<(), GeminiError> {
        let value: Value = serde_json::from_slice(json).map_err(|e| {
            GeminiError::Malformed(format!("stream event {}: {e}", self.events + 1))
        })?;
        self.push_value(value, progress)
    }

    pub fn push_value(
        &mut self,
        value: Value,
        progress: &dyn Fn(Progress<'_>),
    ) -> Result<(), GeminiError> {
        self.events += 1;
        if let Some(error) = value.get("error") {
            let status = error
                .get("code")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(500);
            let body = serde_json::json!({ "error": error }).to_string();
            return Err(GeminiError::Api(ApiError::from_body(
                status,
                body.as_bytes(),
            )));
        }
        let event: GenerateContentResponse = serde_json::from_value(value)
            .map_err(|e| GeminiError::Malformed(format!("stream event {}: {e}", self.events)))?;
        for part in event
            .candidates
            .first()
            .and_then(|c| c.content.as_ref())
            .into_iter()
            .flat_map(|c| &c.parts)
        {
            match (&part.text, part.is_thought()) {
                (Some(text), true) => progress(Progress::Thought(text)),
                (Some(text), false) if !text.is_empty() => progress(Progress::Text(text)),
                _ => {}
            }
        }
        self.merge(event);
        Ok(())
    }

    fn merge(&mut self, event: GenerateContentResponse) {
        let into = &mut self.response;
        // Later events repeat or update the response-level fields: keep the newest of each.
        if event.usage_metadata.is_some() {
            into.usage_metadata = event.usage_metadata;
        }
        if event.prompt_feedback.is_some() {
            into.prompt_feedback = event.prompt_feedback;
        }
        if event.model_version.is_some() {
            into.model_version = event.model_version;
        }
        if event.response_id.is_some() {
            into.response_id = event.response_id;
        }
        into.extra.extend(event.extra);
        // Image models answer with one candidate; any others would be alternatives, not continuations.
        let Some(candidate) = event.candidates.into_iter().next() else {
            return;
        };
        if into.candidates.is_empty() {
            into.candidates.push(Candidate::default());
        }
        let kept = &mut into.candidates[0];
        if let Some(content) = candidate.content {
            let target = kept.content.get_or_insert_with(Content::default);
            if content.role.is_some() {
                target.role = content.role;
            }
            target.parts.extend(content.parts);
            target.extra.extend(content.extra);
        }
        if candidate.finish_reason.is_some() {
            kept.finish_reason = candidate.finish_reason;
        }
        if candidate.finish_message.is_some() {
            kept.finish_message = candidate.finish_message;
        }
        if candidate.grounding_metadata.is_some() {
            kept.grounding_metadata = candidate.grounding_metadata;
        }
        kept.extra.extend(candidate.extra);
    }

    /// The whole response, or an error when the stream stopped before the model said it was done. A blocked prompt
    /// has no candidate at all and is complete as it is.
    pub fn finish(self) -> Result<GenerateContentResponse, GeminiError> {
        let blocked = self
            .response
            .prompt_feedback
            .as_ref()
            .is_some_and(|f| f.block_reason.is_some());
        let finished = self
            .response
            .candidates
            .first()
            .is_some_and(|c| c.finish_reason.is_some());
        if finished || blocked {
            Ok(self.response)
        } else {
            Err(GeminiError::Incomplete(self.events))
        }
    }
}

/// The body of a stream asked for without `alt=sse` (or a gateway that ignored it): a JSON array of events, or one
/// plain response.
pub fn assemble_body(
    bytes: &[u8],
    progress: &dyn Fn(Progress<'_>),
) -> Result<GenerateContentResponse, GeminiError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| GeminiError::Malformed(e.to_string()))?;
    let mut assembler = Assembler::new();
    match value {
        Value::Array(events) => {
            for event in events {
                assembler.push_value(event, progress)?;
            }
        }
        single => assembler.push_value(single, progress)?,
    }
    assembler.finish()
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::gemini::sse::SseDecoder;

    use crate::test_support::fixture;

    fn quiet(_: Progress<'_>) {}

    fn from_sse(bytes: &[u8]) -> Result<GenerateContentResponse, GeminiError> {
        let mut decoder = SseDecoder::new();
        let mut assembler = Assembler::new();
        let mut events = decoder.push(bytes);
        events.extend(decoder.finish());
        for event in events {
            assembler.push_json(&event, &quiet)?;
        }
        assembler.finish()
    }

    #[test]
    fn the_real_sse_capture_assembles_with_its_signature_and_last_usage() {
        let response = from_sse(&fixture("stream-3-pro-image-signature.sse")).unwrap();
        let candidate = &response.candidates[0];
        assert_eq!(candidate.finish_reason.as_deref(), Some("STOP"));
        let parts = &candidate.content.as_ref().unwrap().parts;
        assert_eq!(
            parts.len(),
            2,
            "the image part and the final empty text part"
        );
        assert_eq!(
            parts[0].thought_signature.as_deref(),
            Some("live-image-thought-signature")
        );
        assert_eq!(parts[1].text.as_deref(), Some(""));
        let usage = response.usage_metadata.unwrap();
        assert_eq!(
            usage.thoughts_token_count,
            Some(167),
            "the last event's usage"
        );
        assert_eq!(usage.total_token_count, Some(1394));
    }

    #[test]
    fn the_empty_text_signature_carrier_is_kept_as_its_own_part() {
        let mut assembler = Assembler::new();
        for line in
            fixture("stream-chunks-empty-text-signature-carrier.jsonl").split(|&b| b == b'\n')
        {
            if !line.is_empty() {
                assembler.push_json(line, &quiet).unwrap();
            }
        }
        let response = assembler.finish().unwrap();
        let parts = &response.candidates[0].content.as_ref().unwrap().parts;
        assert_eq!(parts.len(), 2, "never merged");
        assert_eq!(parts[0].text.as_deref(), Some("4"));
        assert!(parts[0].thought_signature.is_none());
        assert_eq!(parts[1].text.as_deref(), Some(""));
        assert!(
            parts[1]
                .thought_signature
                .as_deref()
                .unwrap()
                .starts_with("EpcCCpQC")
        );
    }

    #[test]
    fn the_vertex_array_shows_its_thoughts_and_is_incomplete_without_a_finish_reason() {
        let shown = RefCell::new(Vec::new());
        let progress = |p: Progress<'_>| {
            if let Progress::Thought(t) = p {
                shown.borrow_mut().push(t.to_string());
            }
        };
        let error =
            assemble_body(&fixture("vertex-stream-array-thoughts.json"), &progress).unwrap_err();
        assert!(matches!(error, GeminiError::Incomplete(2)), "{error}");
        let shown = shown.into_inner();
        assert_eq!(shown.len(), 2);
        assert!(shown[0].starts_with("**Imagining the Scene**"));
    }

    #[test]
    fn an_error_event_after_the_200_is_an_error() {
        let body = b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Here\"}]}}]}\r\n\r\n\
                     data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n";
        match from_sse(body) {
            Err(GeminiError::Api(e)) => {
                assert_eq!(e.http_status, 503);
                assert_eq!(e.message, "The model is overloaded.");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_blocked_prompt_in_a_stream_is_complete() {
        let body = br#"[{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},"usageMetadata":{"promptTokenCount":9}}]"#;
        let response = assemble_body(body, &quiet).unwrap();
        assert!(response.candidates.is_empty());
    }

    #[test]
    fn streamed_text_parts_stay_separate_and_are_reported_in_order() {
        let shown = RefCell::new(Vec::new());
        let progress = |p: Progress<'_>| match p {
            Progress::Thought(t) => shown.borrow_mut().push(format!("thought:{t}")),
            Progress::Text(t) => shown.borrow_mut().push(format!("text:{t}")),
            Progress::Retrying { .. } | Progress::Sending { .. } => {}
        };
        let body = br#"[
            {"candidates":[{"content":{"role":"model","parts":[{"text":"plan","thought":true}]}}]},
            {"candidates":[{"content":{"role":"model","parts":[{"text":"Here "}]}}]},
            {"candidates":[{"content":{"role":"model","parts":[{"text":"it is","thoughtSignature":"c2ln"}]}}],
             "usageMetadata":{"totalTokenCount":5}},
            {"candidates":[{"content":{"role":"model","parts":[{"text":""}]},"finishReason":"STOP",
             "groundingMetadata":{"groundingChunks":[]}}],"usageMetadata":{"totalTokenCount":9}}
        ]"#;
        let response = assemble_body(body, &progress).unwrap();
        let content = response.candidates[0].content.as_ref().unwrap();
        let texts: Vec<&str> = content
            .parts
            .iter()
            .map(|p| p.text.as_deref().unwrap())
            .collect();
        assert_eq!(texts, ["plan", "Here ", "it is", ""]);
        assert_eq!(content.role.as_deref(), Some("model"));
        assert_eq!(response.usage_metadata.unwrap().total_token_count, Some(9));
        assert!(response.candidates[0].grounding_metadata.is_some());
        assert_eq!(
            shown.into_inner(),
            ["thought:plan", "text:Here ", "text:it is"]
        );
    }
}
