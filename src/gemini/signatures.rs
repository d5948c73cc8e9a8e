//! Thought signatures across models: which of a thread's signatures the model asked now can check, and what goes
//! in their place when it cannot.
//!
//! A thread may mix models and sources: turns made by gemini-2.5-flash-image (which signs nothing), by another
//! Gemini 3 model, by the offline stand-in, or brought in by `peel import` from who knows where. Sent as stored, such
//! a history fails on a Gemini 3 model: `400 Image part is missing a thought_signature` (fixtures/real/
//! error-400-missing-image-signature.json; its text twin, `Text part is missing a thought_signature`, after a 2.5
//! turn), or `400 Corrupted thought signature.` for a signature the model did not issue. The documented way on is
//! the dummy signature [`DUMMY`] on the model parts that did not come from this model (API-NOTES.md, "Thought
//! signatures"). [`prepare`] puts it there, in the request only: the stored thread is never changed.
//!
//! What counts as a family (whose signatures a model can check):
//! - Google: "Thought signatures are only compatible with the model family and tier that generated them": Flash-Lite
//!   cannot use the thoughts of Flash or Pro, and older model families cannot use those of newer ones (Vertex AI,
//!   "Thought signatures", section "Thought signatures from other models", docs.cloud.google.com/vertex-ai/
//!   generative-ai/docs/thought-signatures). So Gemini 3 Pro Image (generation 3, tier Pro) and Gemini 3.1 Flash
//!   Image (generation 3.1, tier Flash) are two families, and a model's retired `-preview` id is the same family as
//!   its GA id (the same model, renamed: [`models::resolve`]).
//! - The offline stand-in is a family of its own, whatever model id it plays: its signatures are hashes of the
//!   signed data (src/offline.rs), which no real model accepts, and it accepts no real model's.
//! - gemini-2.5-flash-image does not think: it returns no signatures and asks for none (API-NOTES.md's model table;
//!   the Gemini API's "thought signatures" page makes them mandatory for Gemini 3 only), and the same Vertex page
//!   says a signature from an incompatible model is left out of the model's context rather than refused. So a 2.5
//!   request carries the history unchanged, as it always has (and as the official SDK sends it).
//! - An id peel does not know is its own family, and is assumed to check signatures: the dummy is accepted wherever
//!   signatures are checked, so this can only cost the model its earlier thoughts, never the request.

use super::models::{self, Thinking};
use super::types::{Content, Part};

/// The documented dummy signature for model parts that did not come from the model (API-NOTES.md).
pub const DUMMY: &str = "skip_thought_signature_validator";

/// A set of models whose thought signatures are interchangeable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Family {
    /// The offline stand-in of `--offline`, whatever model id it answers for.
    Offline,
    /// A model as the API knows it: its GA id (a retired preview id maps to it).
    Model(String),
}

impl Family {
    /// The family of a model id as asked or as reported (`models/` prefix and retired preview ids allowed).
    pub fn of_model(id: &str) -> Family {
        Family::Model(models::resolve(id).0)
    }

    /// Whether a request to this family is refused for signatures it cannot check.
    pub fn checks_signatures(&self) -> bool {
        match self {
            Family::Offline => true,
            Family::Model(id) => models::info(id).is_none_or(|m| m.thinking != Thinking::None),
        }
    }
}

/// Which backend answered a turn, recorded with it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum MadeBy {
    /// The Gemini API, Vertex AI or a gateway; `provider` is the host that answered.
    Api {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider: Option<String>,
    },
    /// The offline stand-in.
    Offline,
}

/// Where a content of the history came from, as far as its signatures go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Answered by a model of this family (through the API, a gateway, or the offline stand-in).
    Made(Family),
    /// No model known to have made it: a user's content, or an import that did not say where it came from.
    Unknown,
}

impl Origin {
    /// The origin of a model content made by `made_by` answering for `model`: unknown when either is.
    pub fn of(made_by: Option<&MadeBy>, model: Option<&str>) -> Origin {
        match (made_by, model) {
            (Some(MadeBy::Offline), _) => Origin::Made(Family::Offline),
            (Some(MadeBy::Api { .. }), Some(model)) => Origin::Made(Family::of_model(model)),
            _ => Origin::Unknown,
        }
    }
}

/// The contents to send to a model of family `target`, given each content's origin (`origins[i]` for
/// `contents[i]`; a missing entry is [`Origin::Unknown`]). Model contents of `target`'s own family go as they are;
/// in every other model content each signature is replaced by [`DUMMY`], and the parts that must carry one get it:
/// every non-thought image part, and the first non-thought text part unless an image comes before it. User
/// contents are never touched. A target that does not check signatures gets the contents unchanged.
pub fn prepare(contents: Vec<Content>, origins: &[Origin], target: &Family) -> Vec<Content> {
    if !target.checks_signatures() {
        return contents;
    }
    contents
        .into_iter()
        .enumerate()
        .map(|(index, content)| {
            let own = matches!(origins.get(index), Some(Origin::Made(family)) if family == target);
            if !content.is_model() || own {
                content
            } else {
                with_dummies(content)
            }
        })
        .collect()
}

/// A foreign model content with the dummy wherever a signature is or must be.
fn with_dummies(mut content: Content) -> Content {
    let is_image = |p: &Part| !p.is_thought() && p.inline_data.is_some();
    let first_image = content.parts.iter().position(is_image);
    let first_text = content
        .parts
        .iter()
        .position(|p| !p.is_thought() && p.inline_data.is_none() && p.text.is_some());
    let signed_text = first_text.filter(|&text| first_image.is_none_or(|image| text < image));
    for (index, part) in content.parts.iter_mut().enumerate() {
        let needs = is_image(part) || Some(index) == signed_text;
        if needs || part.thought_signature.is_some() {
            part.thought_signature = Some(DUMMY.to_string());
            // A signature still in the store is not sent either: the dummy is the value now.
            part.refs.signature = None;
        }
    }
    content
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn model(parts: serde_json::Value) -> Content {
        serde_json::from_value(json!({"role": "model", "parts": parts})).unwrap()
    }

    fn pro() -> Family {
        Family::of_model("gemini-3-pro-image")
    }

    fn flash() -> Family {
        Family::of_model("gemini-3.1-flash-image")
    }

    fn thread() -> (Vec<Content>, Vec<Origin>) {
        let contents = vec![
            Content::user(vec![Part::text("a fox")]),
            // From 2.5: text then image, no signatures.
            model(
                json!([{"text": "Here it is"}, {"inlineData": {"mimeType": "image/png", "data": "AA=="}}]),
            ),
            Content::user(vec![Part::text("at night")]),
            // From 3 Pro: a thought, a signed text, a signed image, an empty carrier.
            model(json!([
                {"text": "planning", "thought": true},
                {"text": "Night falls", "thoughtSignature": "cHJv"},
                {"inlineData": {"mimeType": "image/jpeg", "data": "AA=="}, "thoughtSignature": "cHJvMg==", "futureField": 1},
                {"text": "", "thoughtSignature": "cHJvMw=="}
            ])),
            Content::user(vec![Part::text("add snow")]),
        ];
        let origins = vec![
            Origin::Unknown,
            Origin::Made(Family::of_model("gemini-2.5-flash-image")),
            Origin::Unknown,
            Origin::Made(Family::of_model("models/gemini-3-pro-image-preview")),
            Origin::Unknown,
        ];
        (contents, origins)
    }

    #[test]
    fn own_family_goes_as_stored_and_foreign_gets_the_dummy() {
        let (contents, origins) = thread();
        let sent = prepare(contents.clone(), &origins, &pro());
        assert_eq!(
            sent[3], contents[3],
            "Pro's own turn, preview id or not, is untouched"
        );
        assert_eq!(sent[0], contents[0]);
        let nano = &sent[1].parts;
        assert_eq!(
            nano[0].thought_signature.as_deref(),
            Some(DUMMY),
            "text before the image"
        );
        assert_eq!(
            nano[1].thought_signature.as_deref(),
            Some(DUMMY),
            "the image"
        );
        assert_eq!(nano[1].inline_data, contents[1].parts[1].inline_data);
    }

    #[test]
    fn another_gemini_3_family_is_foreign() {
        let (contents, origins) = thread();
        let sent = prepare(contents.clone(), &origins, &flash());
        let parts = &sent[3].parts;
        assert_eq!(parts[0], contents[3].parts[0], "a thought stays as it is");
        for part in &parts[1..] {
            assert_eq!(part.thought_signature.as_deref(), Some(DUMMY));
        }
        assert_eq!(
            parts[2].extra, contents[3].parts[2].extra,
            "unknown fields stay"
        );
        assert_eq!(parts[3].text.as_deref(), Some(""), "the carrier stays");
    }

    #[test]
    fn text_after_the_first_image_needs_none_and_text_alone_gets_one() {
        let content = model(json!([
            {"inlineData": {"mimeType": "image/png", "data": "AA=="}},
            {"text": "done"}
        ]));
        let sent = prepare(vec![content], &[Origin::Unknown], &pro());
        assert_eq!(sent[0].parts[0].thought_signature.as_deref(), Some(DUMMY));
        assert_eq!(sent[0].parts[1].thought_signature, None);
        let text_only = model(json!([{"text": "only words"}]));
        let sent = prepare(vec![text_only], &[], &pro());
        assert_eq!(sent[0].parts[0].thought_signature.as_deref(), Some(DUMMY));
    }

    #[test]
    fn a_signature_still_in_the_store_is_replaced_too() {
        use crate::gemini::body::{BlobRef, Encoding};
        let (mut contents, origins) = thread();
        // Read back from the store, a large signature is an empty string and a typed reference to its blob.
        let image = &mut contents[3].parts[2];
        image.thought_signature = Some(String::new());
        image.refs.signature = Some(BlobRef {
            hash: "ab".repeat(32),
            encoding: Encoding::Base64,
        });
        let sent = prepare(contents, &origins, &flash());
        let image = &sent[3].parts[2];
        assert_eq!(image.thought_signature.as_deref(), Some(DUMMY));
        assert_eq!(
            image.refs.signature, None,
            "the stored signature is not sent"
        );
    }

    #[test]
    fn offline_is_a_family_of_its_own() {
        let (contents, mut origins) = thread();
        origins[3] = Origin::Made(Family::Offline);
        let online = prepare(contents.clone(), &origins, &pro());
        assert_eq!(online[3].parts[2].thought_signature.as_deref(), Some(DUMMY));
        let offline = prepare(contents.clone(), &origins, &Family::Offline);
        assert_eq!(offline[3], contents[3]);
        assert_eq!(
            offline[1].parts[1].thought_signature.as_deref(),
            Some(DUMMY)
        );
    }

    #[test]
    fn a_model_that_does_not_think_gets_the_history_unchanged() {
        let (contents, origins) = thread();
        let nano = Family::of_model("gemini-2.5-flash-image");
        assert!(!nano.checks_signatures());
        assert_eq!(prepare(contents.clone(), &origins, &nano), contents);
        assert!(Family::of_model("gemini-9-image").checks_signatures());
    }
}
