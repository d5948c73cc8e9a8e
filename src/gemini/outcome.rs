//! What a response means for the conversation: an answer to keep, or a refusal to explain and forget.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::types::{Content, GenerateContentResponse, UsageMetadata};

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A model turn to keep in the history exactly as received (images, text, or text alone).
    Answer {
        content: Content,
        finish_reason: String,
        usage: Option<UsageMetadata>,
        /// The search results the answer was grounded in (`/search on`).
        sources: Vec<Source>,
    },
    /// Nothing usable came back; nothing may be added to the history.
    Refused(Refusal),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// `blockReason` of a blocked prompt, or the candidate's `finishReason`.
    pub reason: String,
    /// `finishMessage` / `blockReasonMessage`, when the server gave one.
    pub message: Option<String>,
    pub prompt_blocked: bool,
    pub usage: Option<UsageMetadata>,
}

impl Refusal {
    /// The reason in plain words.
    pub fn explain(&self) -> String {
        let why = if self.prompt_blocked {
            match self.reason.as_str() {
                "SAFETY" => "the prompt was blocked for safety",
                "BLOCKLIST" => "the prompt contains blocked terms",
                "PROHIBITED_CONTENT" => "the prompt was blocked as prohibited content",
                "IMAGE_SAFETY" => "an attached image was blocked for safety",
                "OTHER" => "the prompt was blocked, for no stated reason",
                "EMPTY" => "the server answered with neither an answer nor a reason",
                _ => "the prompt was blocked",
            }
        } else {
            match self.reason.as_str() {
                "IMAGE_SAFETY" => "the image was filtered out for safety",
                "IMAGE_PROHIBITED_CONTENT" => "the image was refused as prohibited content",
                "IMAGE_RECITATION" => {
                    "the image was refused because it resembled existing work too closely"
                }
                "IMAGE_OTHER" => "the model could not make this image",
                "NO_IMAGE" => "the model returned no image",
                "SAFETY" => "the answer was stopped for safety",
                "PROHIBITED_CONTENT" => "the answer was refused as prohibited content",
                "RECITATION" => "the answer was stopped for recitation",
                "MAX_TOKENS" => "the answer ran out of tokens before it was finished",
                "MISSING_THOUGHT_SIGNATURE" => {
                    "the model rejected the history (a thought signature was missing)"
                }
                "MALFORMED_RESPONSE" => "the model produced a malformed answer",
                "OTHER" => "the model stopped, for no stated reason",
                "BLOCKLIST" => "the answer contained blocked terms",
                "SPII" => "the answer was stopped for containing personal information",
                "LANGUAGE" => "the answer was stopped: the language is not supported",
                "UNEXPECTED_TOOL_CALL" | "TOO_MANY_TOOL_CALLS" | "MALFORMED_FUNCTION_CALL" => {
                    "the model's use of a tool (search) went wrong"
                }
                _ => "the model stopped without an answer",
            }
        };
        let mut text = format!("{why} ({})", self.reason);
        if let Some(message) = &self.message {
            text.push_str(": ");
            text.push_str(message);
        }
        text
    }
}

/// Classifies a complete response. Only `STOP` with at least one non-empty part counts as an answer.
pub fn classify(response: GenerateContentResponse) -> Outcome {
    let usage = response.usage_metadata.clone();
    let Some(candidate) = response.candidates.into_iter().next() else {
        let feedback = response.prompt_feedback.unwrap_or_default();
        return Outcome::Refused(Refusal {
            reason: feedback.block_reason.unwrap_or_else(|| "EMPTY".into()),
            message: feedback.block_reason_message,
            prompt_blocked: true,
            usage,
        });
    };
    let sources = sources(candidate.grounding_metadata.as_ref());
    let finish_reason = candidate.finish_reason.unwrap_or_else(|| "STOP".into());
    let content = candidate.content.unwrap_or_default();
    let has_something = content
        .parts
        .iter()
        .any(|p| p.inline_data.is_some() || p.text.as_deref().is_some_and(|t| !t.is_empty()));
    if finish_reason != "STOP" || !has_something {
        let reason = if finish_reason == "STOP" {
            "NO_IMAGE".to_string()
        } else {
            finish_reason
        };
        return Outcome::Refused(Refusal {
            reason,
            message: candidate.finish_message,
            prompt_blocked: false,
            usage,
        });
    }
    let content = Content {
        role: Some("model".into()),
        ..content
    };
    Outcome::Answer {
        content,
        finish_reason,
        usage,
        sources,
    }
}

/// A web page (or image) a grounded answer drew on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub title: String,
    pub uri: String,
}

/// The sources of `groundingMetadata.groundingChunks`: `web {uri, title}` chunks, and image chunks, whose page is in
/// `sourceUri` (or `uri`). Repeated pages are listed once.
pub fn sources(grounding: Option<&Value>) -> Vec<Source> {
    let chunks = grounding
        .and_then(|g| {
            g.get("groundingChunks")
                .or_else(|| g.get("grounding_chunks"))
        })
        .and_then(Value::as_array);
    let mut found: Vec<Source> = Vec::new();
    for chunk in chunks.into_iter().flatten() {
        let Some(inner) = chunk
            .as_object()
            .and_then(|c| c.values().find(|v| v.is_object()))
        else {
            continue;
        };
        let text = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| inner.get(*n).and_then(Value::as_str))
                .map(str::to_string)
        };
        let Some(uri) = text(&["uri", "sourceUri", "source_uri"]) else {
            continue;
        };
        let title = text(&["title", "domain"]).unwrap_or_else(|| uri.clone());
        if !found.iter().any(|s| s.uri == uri) {
            found.push(Source { title, uri });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemini::client::parse_response;

    fn outcome(name: &str) -> Outcome {
        classify(parse_response(&crate::test_support::fixture(name)).unwrap())
    }

    #[test]
    fn every_real_response_has_the_right_outcome() {
        assert!(matches!(
            outcome("response-3.1-flash-image-redacted.json"),
            Outcome::Answer { .. }
        ));
        let Outcome::Refused(r) = outcome("response-no-image.json") else {
            panic!()
        };
        assert_eq!(r.reason, "NO_IMAGE");
        let Outcome::Refused(r) = outcome("response-prompt-blocked.json") else {
            panic!()
        };
        assert!(r.prompt_blocked);
        assert!(r.explain().contains("prohibited"));
        let Outcome::Refused(r) = outcome("response-image-safety-via-proxy.json") else {
            panic!()
        };
        assert_eq!(r.reason, "IMAGE_SAFETY");
        assert!(r.explain().contains("You will not be charged"));
    }

    #[test]
    fn every_reason_of_the_notes_has_its_own_words_and_keeps_the_message() {
        let finish = [
            "IMAGE_SAFETY",
            "IMAGE_PROHIBITED_CONTENT",
            "IMAGE_OTHER",
            "NO_IMAGE",
            "IMAGE_RECITATION",
            "SAFETY",
            "PROHIBITED_CONTENT",
            "RECITATION",
            "OTHER",
            "MAX_TOKENS",
            "MISSING_THOUGHT_SIGNATURE",
            "MALFORMED_RESPONSE",
            "BLOCKLIST",
            "SPII",
        ];
        let blocked = [
            "SAFETY",
            "OTHER",
            "BLOCKLIST",
            "PROHIBITED_CONTENT",
            "IMAGE_SAFETY",
        ];
        let mut seen = std::collections::HashSet::new();
        for (reasons, prompt_blocked) in [(&finish[..], false), (&blocked[..], true)] {
            for reason in reasons {
                let refusal = Refusal {
                    reason: reason.to_string(),
                    message: Some("More detail.".into()),
                    prompt_blocked,
                    usage: None,
                };
                let text = refusal.explain();
                assert!(
                    text.ends_with(&format!("({reason}): More detail.")),
                    "{text}"
                );
                let words = text.split(" (").next().unwrap().to_string();
                assert!(
                    seen.insert(words.clone()),
                    "{reason}: {words} is not its own message"
                );
            }
        }
    }

    #[test]
    fn grounding_chunks_become_sources() {
        let grounding = serde_json::json!({
            "webSearchQueries": ["red fox"],
            "groundingChunks": [
                {"web": {"uri": "https://a.example/fox", "title": "Foxes"}},
                {"web": {"uri": "https://a.example/fox", "title": "Foxes again"}},
                {"image": {"sourceUri": "https://b.example/page", "imageUri": "https://b.example/i.jpg", "domain": "b.example"}},
                {"web": {"title": "no uri"}}
            ]
        });
        assert_eq!(
            sources(Some(&grounding)),
            [
                Source {
                    title: "Foxes".into(),
                    uri: "https://a.example/fox".into()
                },
                Source {
                    title: "b.example".into(),
                    uri: "https://b.example/page".into()
                },
            ]
        );
        assert!(sources(None).is_empty());
    }

    #[test]
    fn unknown_finish_reasons_are_refusals_that_name_themselves() {
        let response: GenerateContentResponse = serde_json::from_str(
            r#"{"candidates":[{"content":{"parts":[{"text":"x"}]},"finishReason":"SOMETHING_NEW"}]}"#,
        )
        .unwrap();
        let Outcome::Refused(r) = classify(response) else {
            panic!()
        };
        assert!(r.explain().contains("SOMETHING_NEW"));
    }
}
