//! The context budget. Every turn sends every earlier image and its signature again, so a thread's requests grow
//! until the provider refuses them. This module knows how big a request is (bytes and estimated input tokens),
//! the limits it must stay under, and the policy that decides how much history a request carries.

use std::sync::Arc;

use anyhow::{Context, Result, bail};

use super::Engine;
use super::images::Attachment;
use super::session::Session;
use crate::gemini::body::{BlobSource, Body};
use crate::gemini::{Content, GenerateContentRequest, models};
pub use crate::settings::ContextPolicy;
use crate::settings::Settings;
use crate::text;

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

/// The models' input token limits (the model table); unknown models are not checked.
pub fn input_token_limit(model: &str) -> Option<u64> {
    models::info(model).map(|m| m.input_token_limit)
}

/// The request for `user` after `thread` (the history up to where it goes) under `policy`.
pub(super) fn request_after(
    settings: &Settings,
    mut thread: Vec<Content>,
    user: &Content,
    policy: &ContextPolicy,
) -> Result<GenerateContentRequest> {
    thread.push(user.clone());
    settings.request(policy.apply(thread))
}

/// Measures a request without building its body: the large values stay where `blobs` keeps them.
pub fn measure(
    request: &GenerateContentRequest,
    model: &str,
    blobs: &Arc<dyn BlobSource>,
) -> Result<Measure> {
    let body = Body::new(request, blobs.clone()).map_err(anyhow::Error::msg)?;
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
    let tokens = images as u64 * models::tokens_per_input_image(model) + text_bytes.div_ceil(4);
    Ok(Measure {
        bytes: body.len(),
        tokens,
        images,
    })
}

impl Measure {
    /// What this request is over, by how much; `None` when it fits.
    pub fn over(&self, limits: &Limits) -> Option<String> {
        if self.bytes > limits.max_bytes {
            return Some(format!(
                "the request would be {}, over the {} request limit by {}",
                text::bytes(self.bytes),
                text::bytes(limits.max_bytes),
                text::bytes(self.bytes - limits.max_bytes)
            ));
        }
        match limits.max_tokens {
            Some(max) if self.tokens > max => Some(format!(
                "the request would carry about {} input tokens, over the model's {} by {}",
                text::thousands(self.tokens),
                text::thousands(max),
                text::thousands(self.tokens - max)
            )),
            _ => None,
        }
    }

    /// "12.3 MB of 100 MB · ~8,400 of 65,536 tokens".
    pub fn against(&self, limits: &Limits) -> String {
        let tokens = match limits.max_tokens {
            Some(max) => format!(
                "~{} of {} tokens",
                text::thousands(self.tokens),
                text::thousands(max)
            ),
            None => format!("~{} tokens", text::thousands(self.tokens)),
        };
        format!(
            "{} of {} · {tokens}",
            text::bytes(self.bytes),
            text::bytes(limits.max_bytes)
        )
    }
}

/// The reference images a request carries (the images in its user turns), against what the model takes on this
/// run's provider. Images the model made itself are its history, not references.
pub(super) fn check_references(settings: &Settings, contents: &[Content]) -> Result<()> {
    let references = contents
        .iter()
        .filter(|c| !c.is_model())
        .flat_map(|c| &c.parts)
        .filter(|p| p.inline_data.is_some())
        .count();
    let (max, on) = reference_limit(&settings.model);
    if references > max {
        bail!(
            "not sent: {} takes at most {} in a request{on}, and this one would carry {references}; /detach \
             drops the attachments, /context last N sends fewer earlier turns",
            settings.model,
            text::count(max, "reference image")
        );
    }
    Ok(())
}

/// How many reference images a model takes on this run's provider, and " on NAME" when the provider narrowed it;
/// the most any model takes for an id peel does not know.
pub(super) fn reference_limit(model: &str) -> (usize, String) {
    models::capabilities(model).map_or((models::MAX_REFERENCE_IMAGES, String::new()), |c| {
        (c.max_reference_images, c.on())
    })
}

/// `/context`: the next request against the limits, and the policy.
#[derive(Debug, Clone)]
pub struct ContextReport {
    pub measure: Measure,
    pub limits: Limits,
    pub policy: ContextPolicy,
    /// Why the next request would not be sent, with what to do; `None` when it fits.
    pub over: Option<String>,
}

/// `/fresh`: where the new branch starts from.
#[derive(Debug, Clone)]
pub struct Fresh {
    pub name: String,
    pub from: String,
    pub label: String,
}

impl Engine {
    /// The limits the next request must stay under: the provider's request size and the model's input tokens.
    pub(super) fn limits(&self) -> Limits {
        Limits {
            max_bytes: self.backend.max_request_bytes() as u64,
            max_tokens: input_token_limit(&self.session.settings.model),
        }
    }

    /// The request for `user` after the history up to `parent` under `policy`, measured.
    pub(super) fn measure_with(
        &self,
        user: &Content,
        parent: Option<i64>,
        policy: &ContextPolicy,
    ) -> Result<Measure> {
        let settings = &self.session.settings;
        let thread = self.thread_for(parent, &settings.model)?;
        let request = request_after(settings, thread, user, policy)?;
        measure(&request, &settings.model, &self.blobs)
    }

    /// What to do about a request for `user` after `parent` that is over a limit: the largest `/context last N`
    /// that fits, `/fresh` when there is an image to start from, or fewer attachments when even that is too big.
    pub(super) fn advice(&self, user: &Content, parent: Option<i64>) -> Result<String> {
        let limits = self.limits();
        let settings = &self.session.settings;
        // The thread is read once; each policy tried takes its end of it (values stay in the store).
        let thread = self.thread_for(parent, &settings.model)?;
        let earlier = thread.len() / 2;
        let sent = match settings.context {
            ContextPolicy::Full => earlier,
            ContextPolicy::Last { turns } => turns.min(earlier),
        };
        let last = |turns| {
            let policy = ContextPolicy::Last { turns };
            let request = request_after(settings, thread.clone(), user, &policy)?;
            measure(&request, &settings.model, &self.blobs)
        };
        let mut fits = None;
        for n in (1..sent).rev() {
            if last(n)?.over(&limits).is_none() {
                fits = Some(n);
                break;
            }
        }
        let alone = last(0)?;
        let mut ways = Vec::new();
        if let Some(n) = fits {
            ways.push(format!(
                "/context last {n} sends only the last {} (the thread stays whole)",
                text::count(n, "turn")
            ));
        }
        if earlier > 0 && alone.over(&limits).is_none() {
            ways.push("/fresh starts a new branch from the current image".to_string());
        }
        if ways.is_empty() {
            let attached = user
                .parts
                .iter()
                .filter(|p| p.inline_data.is_some())
                .count();
            return Ok(if attached > 0 {
                "even the prompt and its attachments alone are too big: /detach, then attach fewer or smaller \
                 images"
                    .to_string()
            } else {
                "even the prompt alone is too big: shorten it".to_string()
            });
        }
        Ok(ways.join(", or "))
    }

    /// `/context`: the next request's size and tokens against the limits, and the policy.
    pub fn context(&self) -> Result<ContextReport> {
        let user = self.session.user_content("");
        let parent = self.session.head();
        let measure = self.measure_with(&user, parent, &self.session.settings.context)?;
        let limits = self.limits();
        let over = match measure.over(&limits) {
            Some(over) => Some(format!(
                "the next prompt would not be sent: {over}; {}",
                self.advice(&user, parent)?
            )),
            None => None,
        };
        Ok(ContextReport {
            measure,
            limits,
            policy: self.session.settings.context,
            over,
        })
    }

    /// `/context full|last N`: kept with the session; the stored thread is untouched either way.
    pub fn set_context(&mut self, policy: ContextPolicy) -> Result<ContextReport> {
        self.session.settings.context = policy;
        self.session.save_settings(&self.store)?;
        self.context()
    }

    /// `/fresh`: a new branch with no history to resend, whose first prompt carries the current image as a
    /// reference.
    pub fn fresh(&mut self) -> Result<Fresh> {
        self.check_still_there()?;
        let turns = self.session.turns(&self.store)?;
        let last = turns
            .iter()
            .rev()
            .find(|t| t.model.image_count() > 0)
            .context("there is no image yet to start from")?;
        let image = self
            .first_image(last.model.id)?
            .context("the last image cannot be read back")?;
        let from = self
            .session
            .row
            .clone()
            .context("the session is not stored")?;
        let name = self.store.free_branch_name(&from.name)?;
        let mut settings = self.session.settings.clone();
        settings.context = ContextPolicy::Full;
        let row = self.store.branch_session(&from, &name, None, &settings)?;
        let mut session = Session::open(row, &self.out_root);
        session.attachments = std::mem::take(&mut self.session.attachments);
        session.attachments.insert(
            0,
            Attachment::from_bytes(format!("{}@{}", from.name, last.label()), image.to_vec())?,
        );
        self.session = session;
        Ok(Fresh {
            name,
            from: from.name,
            label: last.label(),
        })
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
        assert!(nano.over(&limits).is_none());
        let pro = measure(&request, "gemini-3-pro-image", &blobs).unwrap();
        assert!(pro.tokens >= 30 * 560);
    }

    #[test]
    fn over_the_limit_says_which_and_by_how_much() {
        let m = Measure {
            bytes: 104_200_000,
            tokens: 9_000,
            images: 20,
        };
        let limits = Limits {
            max_bytes: 100_000_000,
            max_tokens: Some(65_536),
        };
        let message = m.over(&limits).unwrap();
        assert!(
            message.contains("104.2 MB, over the 100.0 MB request limit by 4.2 MB"),
            "{message}"
        );
        let m = Measure {
            bytes: 1_000,
            tokens: 70_000,
            images: 120,
        };
        assert!(
            m.over(&limits)
                .unwrap()
                .contains("over the model's 65,536 by 4,464")
        );
        let fits = Measure {
            bytes: 1_000,
            tokens: 10,
            images: 0,
        };
        assert!(fits.over(&limits).is_none());
    }
}
