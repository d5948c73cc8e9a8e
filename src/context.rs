//! The context budget. Every turn sends every earlier image and its signature again, so a thread's requests grow
//! until the provider refuses them. This module knows how big a request is (bytes and estimated input tokens),
//! the limits it must stay under, and the policy that decides how much history a request carries.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::gemini::body::{BlobSource, Body};
use crate::gemini::{Content, GenerateContentRequest, models};
use crate::images::Attachment;
use crate::render;
use crate::session::Session;

/// How much of the stored thread a request carries. The stored thread is never changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "lowercase")]
pub enum ContextPolicy {
    /// Every earlier turn (the default: the model sees its whole work).
    #[default]
    Full,
    /// Only the last `turns` turns before the new prompt.
    Last { turns: usize },
}

impl ContextPolicy {
    pub fn is_full(&self) -> bool {
        *self == ContextPolicy::Full
    }

    /// The contents a request carries: `contents` is the stored history followed by the new user turn. `Last`
    /// keeps whole turns only, so the request still starts with a user turn and no model turn is split from the
    /// prompt it answers (its signatures stay valid).
    pub fn apply(&self, mut contents: Vec<Content>) -> Vec<Content> {
        let ContextPolicy::Last { turns } = *self else {
            return contents;
        };
        let keep = 2 * turns + 1;
        if contents.len() > keep {
            contents.drain(..contents.len() - keep);
        }
        contents
    }

    pub fn describe(&self) -> String {
        match self {
            ContextPolicy::Full => "full (every earlier turn)".to_string(),
            ContextPolicy::Last { turns } => format!("last {}", render::count(*turns, "turn")),
        }
    }
}

/// The size of a request, before it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Measure {
    /// The exact length of the JSON body.
    pub bytes: u64,
    /// Input tokens, estimated: images at the model's per-image count, text at about 4 bytes a token.
    pub tokens: u64,
    pub images: usize,
}

/// What a request must stay under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_tokens: Option<u64>,
}

/// Input tokens one image costs, re-sent or attached: the model table's figure (its sources are given there);
/// 560, the Gemini 3 figure, for a model peel does not know.
fn tokens_per_image(model: &str) -> u64 {
    models::info(model).map_or(560, |m| m.tokens_per_input_image)
}

/// The models' input token limits (the model table); unknown models are not checked.
pub fn input_token_limit(model: &str) -> Option<u64> {
    models::info(model).map(|m| m.input_token_limit)
}

/// The reference images (attached to the prompts) a request carries, checked against what the model takes on this
/// run's provider. Images the model made itself are its history, not references.
pub fn check_references(contents: &[Content], model: &str) -> Result<()> {
    let references = contents
        .iter()
        .filter(|c| !c.is_model())
        .flat_map(|c| &c.parts)
        .filter(|p| p.inline_data.is_some())
        .count();
    // 14, the most any model takes, for a model peel does not know.
    let (max, on) = models::capabilities(model)
        .map_or((14, String::new()), |c| (c.max_reference_images, c.on()));
    if references > max {
        bail!(
            "{model} takes at most {} in a request{on}; this one would carry {references}: /detach drops the \
             attachments, /context last N sends fewer earlier turns",
            render::count(max, "reference image")
        );
    }
    Ok(())
}

/// Measures a request without building its body: the large values stay where `blobs` keeps them.
pub fn measure(
    request: &GenerateContentRequest,
    model: &str,
    blobs: &Arc<dyn BlobSource>,
) -> Result<Measure> {
    let body =
        Body::new(&serde_json::to_string(request)?, blobs.clone()).map_err(anyhow::Error::msg)?;
    let parts = request.contents.iter().flat_map(|c| &c.parts);
    let (mut images, mut text_bytes) = (0usize, 0u64);
    for part in parts {
        if part.inline_data.is_some() && !part.is_thought() {
            images += 1;
        }
        if let Some(text) = &part.text
            && !part.is_thought()
        {
            text_bytes += text.len() as u64;
        }
    }
    let tokens = images as u64 * tokens_per_image(model) + text_bytes.div_ceil(4);
    Ok(Measure {
        bytes: body.len(),
        tokens,
        images,
    })
}

impl Measure {
    /// Why this request cannot be sent, with what to do about it; `None` when it fits.
    pub fn over(&self, limits: &Limits, policy: &ContextPolicy) -> Option<String> {
        let advice = match policy {
            ContextPolicy::Full => {
                "/context last 3 sends only the last 3 turns (the thread stays whole), or /fresh \
                                    starts a new branch from the current image"
            }
            ContextPolicy::Last { .. } => {
                "/context last N with a smaller N, or /fresh starts a new branch from the \
                                           current image"
            }
        };
        if self.bytes > limits.max_bytes {
            return Some(format!(
                "not sent: the request would be {}, over the {} request limit by {}; {advice}",
                render::bytes(self.bytes),
                render::bytes(limits.max_bytes),
                render::bytes(self.bytes - limits.max_bytes)
            ));
        }
        match limits.max_tokens {
            Some(max) if self.tokens > max => Some(format!(
                "not sent: the request would carry about {} input tokens, over the model's {} by {}; {advice}",
                render::thousands(self.tokens),
                render::thousands(max),
                render::thousands(self.tokens - max)
            )),
            _ => None,
        }
    }

    /// "12.3 MB of 100 MB · ~8,400 of 65,536 tokens".
    pub fn against(&self, limits: &Limits) -> String {
        let tokens = match limits.max_tokens {
            Some(max) => format!(
                "~{} of {} tokens",
                render::thousands(self.tokens),
                render::thousands(max)
            ),
            None => format!("~{} tokens", render::thousands(self.tokens)),
        };
        format!(
            "{} of {} · {tokens}",
            render::bytes(self.bytes),
            render::bytes(limits.max_bytes)
        )
    }
}

// ---- the commands ----

impl App {
    /// The limits the next request must stay under: the provider's request size and the model's input tokens.
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_bytes: self.backend.max_request_bytes() as u64,
            max_tokens: input_token_limit(&self.session.settings.model),
        }
    }

    /// The request the next prompt would send (history as the policy trims it, plus the attachments).
    fn next_request(&self) -> Result<GenerateContentRequest> {
        let target = self.backend.signature_family(&self.session.settings.model);
        let mut contents = self.store.contents_for(self.session.head(), &target)?;
        contents.push(self.session.user_content(""));
        Ok(GenerateContentRequest {
            contents: self.session.settings.context.apply(contents),
            generation_config: self.session.settings.generation_config()?,
            tools: self.session.settings.tools(),
            system_instruction: None,
        })
    }

    /// `/context`: the next request's size and tokens against the limits, and the policy.
    pub fn show_context(&self) -> Result<()> {
        let limits = self.limits();
        let size = measure(
            &self.next_request()?,
            &self.session.settings.model,
            &self.blobs,
        )?;
        let mut text = format!(
            "next request: {} ({} in it)\npolicy: {}",
            size.against(&limits),
            render::count(size.images, "image"),
            self.session.settings.context.describe()
        );
        if let Some(why) = size.over(&limits, &self.session.settings.context) {
            text.push_str(&format!("\n{why}"));
        }
        self.ui.say(&text);
        Ok(())
    }

    /// `/context full|last N`: kept with the session; the stored thread is untouched either way.
    pub fn set_context(&mut self, policy: ContextPolicy) -> Result<()> {
        self.session.settings.context = policy;
        self.session.save_settings(&self.store)?;
        self.show_context()
    }

    /// `/fresh`: a new branch with no history to resend, whose first prompt carries the current image as a
    /// reference.
    pub fn fresh(&mut self) -> Result<()> {
        let turns = self.session.turns(&self.store)?;
        let last = turns
            .iter()
            .rev()
            .find(|t| t.model.image_count() > 0)
            .context("there is no image yet to start from")?;
        let files = self.turn_files(last)?;
        let (path, _) = files
            .first()
            .context("the last image cannot be read back")?;
        let from = self
            .session
            .row
            .clone()
            .context("the session is not stored")?;
        let name = self.store.free_branch_name(&from.name)?;
        let row = self.store.branch_session(&from, &name, None)?;
        let mut session = Session::open(row);
        session.attachments = std::mem::take(&mut self.session.attachments);
        session.attachments.insert(0, Attachment::read(path)?);
        session.settings.context = ContextPolicy::Full;
        session.save_settings(&self.store)?;
        self.session = session;
        self.ui.note(&format!(
            "fresh start: session {name}, with turn {} of {} ({}) attached to the next prompt",
            last.label(),
            from.name,
            path.display()
        ));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemini::Part;
    use crate::gemini::types::GenerationConfig;

    fn thread(turns: usize) -> Vec<Content> {
        let mut contents = Vec::new();
        for t in 0..turns {
            contents.push(Content::user(vec![Part::text(format!("prompt {t}"))]));
            let mut image = Part::image("image/jpeg", "QUFBQQ==".repeat(100));
            image.thought_signature = Some("c2ln".into());
            contents.push(Content {
                role: Some("model".into()),
                parts: vec![image],
                extra: Default::default(),
            });
        }
        contents.push(Content::user(vec![Part::text("next")]));
        contents
    }

    #[test]
    fn last_n_keeps_whole_turns_and_starts_with_a_user_turn() {
        let trimmed = ContextPolicy::Last { turns: 2 }.apply(thread(5));
        assert_eq!(trimmed.len(), 5);
        assert_eq!(trimmed[0].parts[0].text.as_deref(), Some("prompt 3"));
        assert!(!trimmed[0].is_model() && trimmed[1].is_model());
        assert_eq!(ContextPolicy::Last { turns: 9 }.apply(thread(2)).len(), 5);
        assert_eq!(ContextPolicy::Last { turns: 0 }.apply(thread(2)).len(), 1);
        assert_eq!(ContextPolicy::Full.apply(thread(3)).len(), 7);
    }

    #[test]
    fn measure_is_the_exact_body_size() {
        let request = GenerateContentRequest {
            contents: thread(3),
            generation_config: GenerationConfig::default(),
            tools: Vec::new(),
            system_instruction: None,
        };
        let blobs: Arc<dyn BlobSource> = Arc::new(crate::gemini::body::NoBlobs);
        let m = measure(&request, "gemini-3-pro-image", &blobs).unwrap();
        assert_eq!(m.bytes, serde_json::to_vec(&request).unwrap().len() as u64);
        assert_eq!(m.images, 3);
        assert_eq!(m.tokens, 3 * 560 + (3 * 8 + 4_u64).div_ceil(4));
    }

    #[test]
    fn input_images_count_at_the_models_own_figure() {
        // 30 earlier 2.5 turns: 7,740 tokens at 258 an image, well inside its 32,768. At 1290 an image (its
        // output figure, used before) this request was refused.
        let request = GenerateContentRequest {
            contents: thread(30),
            generation_config: GenerationConfig::default(),
            tools: Vec::new(),
            system_instruction: None,
        };
        let blobs: Arc<dyn BlobSource> = Arc::new(crate::gemini::body::NoBlobs);
        let nano = measure(&request, "gemini-2.5-flash-image", &blobs).unwrap();
        assert_eq!(nano.images, 30);
        assert_eq!(nano.tokens - nano.tokens % 258, 30 * 258);
        let limits = Limits {
            max_bytes: 100_000_000,
            max_tokens: input_token_limit("gemini-2.5-flash-image"),
        };
        assert_eq!(limits.max_tokens, Some(32_768));
        assert!(nano.over(&limits, &ContextPolicy::Full).is_none());
        let pro = measure(&request, "gemini-3-pro-image", &blobs).unwrap();
        assert!(pro.tokens >= 30 * 560);
    }

    #[test]
    fn over_the_limit_says_which_by_how_much_and_what_to_do() {
        let m = Measure {
            bytes: 104_200_000,
            tokens: 9_000,
            images: 20,
        };
        let limits = Limits {
            max_bytes: 100_000_000,
            max_tokens: Some(65_536),
        };
        let message = m.over(&limits, &ContextPolicy::Full).unwrap();
        assert!(
            message.contains("104.2 MB, over the 100.0 MB request limit by 4.2 MB"),
            "{message}"
        );
        assert!(message.contains("/context last 3") && message.contains("/fresh"));
        let m = Measure {
            bytes: 1_000,
            tokens: 70_000,
            images: 120,
        };
        assert!(
            m.over(&limits, &ContextPolicy::Full)
                .unwrap()
                .contains("over the model's 65,536 by 4,464")
        );
        assert!(
            Measure {
                bytes: 1_000,
                tokens: 10,
                images: 0
            }
            .over(&limits, &ContextPolicy::Full)
            .is_none()
        );
    }
}
