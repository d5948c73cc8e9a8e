//! A session's settings for its next turns, and how they become a request's generationConfig.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::gemini::Content;
use crate::text;

use serde_json::{Value, json};

use crate::gemini::models::{self, DEFAULT_MODEL, Thinking};
use crate::gemini::types::{GenerateContentRequest, GenerationConfig, ImageConfig, ThinkingConfig};

/// Stored with each session (as JSON, so every field added later needs `#[serde(default)]` for old rows to load);
/// `None` means "the default" (the model decides the ratio; size 1K; the model's own thinking level).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aspect: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// Ask for thought summaries (`includeThoughts`) and show them.
    #[serde(default, skip_serializing_if = "is_false")]
    pub thoughts: bool,
    /// `thinkingLevel`: `minimal` or `high` (3.1 flash only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think: Option<String>,
    /// Ground the answer in Google Search results.
    #[serde(default, skip_serializing_if = "is_false")]
    pub search: bool,
    /// How much of the thread each request carries.
    #[serde(default, skip_serializing_if = "ContextPolicy::is_full")]
    pub context: ContextPolicy,
    /// Which API carries the turns: generateContent (the whole thread each turn) or the Interactions API (the
    /// server keeps the thread; see `engine/transport.rs`).
    #[serde(default, skip_serializing_if = "Transport::is_generate")]
    pub transport: Transport,
}

/// How a turn reaches the model on the Gemini API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// `generateContent`: every request carries the whole thread.
    #[default]
    Generate,
    /// The Interactions API: a turn names its parent's interaction and sends only what is new.
    Interactions,
}

impl Transport {
    pub fn is_generate(&self) -> bool {
        *self == Transport::Generate
    }

    pub fn name(self) -> &'static str {
        match self {
            Transport::Generate => "generate",
            Transport::Interactions => "interactions",
        }
    }
}

impl std::str::FromStr for Transport {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Transport> {
        match text.trim().to_ascii_lowercase().as_str() {
            "generate" | "generatecontent" => Ok(Transport::Generate),
            "interactions" | "interaction" => Ok(Transport::Interactions),
            other => bail!(
                "unknown transport {:?}: use generate or interactions",
                crate::untrusted::sanitize(other)
            ),
        }
    }
}

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
            ContextPolicy::Last { turns } => format!("last {}", text::count(*turns, "turn")),
        }
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: DEFAULT_MODEL.to_string(),
            aspect: None,
            size: None,
            thoughts: false,
            think: None,
            search: false,
            context: ContextPolicy::Full,
            transport: Transport::Generate,
        }
    }
}

/// The thinking levels peel offers; the API also knows `low` and `medium`, which the image models do not take.
pub const THINKING_LEVELS: &[&str] = &["minimal", "high"];

pub const DEFAULT_SIZE: &str = "1K";

impl Settings {
    /// The generationConfig for these settings, or why the model will not take them. Checked before anything is
    /// sent: a ratio or size that was asked for and that the model does not take is refused; the default size is
    /// left out for a model that has none.
    pub fn generation_config(&self) -> Result<GenerationConfig> {
        self.validate()?;
        let mut image = ImageConfig::default();
        let caps = models::capabilities(&self.model);
        if let Some(aspect) = &self.aspect {
            if let Some(caps) = &caps
                && !caps.takes_ratio(aspect)
            {
                bail!(
                    "{} does not take aspect ratio {aspect}{}; it takes {}",
                    self.model,
                    caps.on(),
                    caps.ratios.join(" ")
                );
            }
            image.aspect_ratio = Some(aspect.clone());
        }
        match (&caps, &self.size) {
            (Some(caps), Some(size)) if !caps.takes_size(size) => {
                if caps.info.sizes.is_empty() {
                    bail!(
                        "{} takes no image size; use /size auto (or drop --size)",
                        self.model
                    );
                }
                bail!(
                    "{} does not take size {size}{}; it takes {}",
                    self.model,
                    caps.on(),
                    caps.sizes.join(", ")
                );
            }
            (Some(caps), None) if caps.sizes.is_empty() => {}
            // The default 1K, left out where the provider does not pass it on.
            (Some(caps), None) if !caps.takes_size(DEFAULT_SIZE) => {}
            (_, size) => {
                image.image_size = Some(size.clone().unwrap_or_else(|| DEFAULT_SIZE.to_string()))
            }
        }
        let thinking = self.thinking_config()?;
        if self.search
            && let Some(caps) = &caps
            && !caps.info.search
        {
            bail!(
                "{} cannot ground its answers in Google Search; use /search off, or a Gemini 3 model",
                self.model
            );
        }
        Ok(GenerationConfig {
            response_modalities: vec!["TEXT".into(), "IMAGE".into()],
            image_config: (!image.is_empty()).then_some(image),
            thinking_config: thinking,
        })
    }

    /// The same rules as typed settings, for settings from anywhere (an imported thread, a stored row, the config):
    /// the model id as `/model` takes it, a ratio and a size as `/aspect` and `/size` spell them, a known thinking
    /// level, a positive `/context last N`.
    pub fn validate(&self) -> Result<()> {
        crate::names::validate_model_id(&self.model)?;
        if let Some(aspect) = &self.aspect
            && models::normalize_ratio(aspect)? != *aspect
        {
            bail!("aspect ratio {aspect:?} is not written as W:H");
        }
        if let Some(size) = &self.size
            && models::normalize_size(size)? != *size
        {
            bail!("image size {size:?} is not written as 512, 1K, 2K or 4K");
        }
        if let Some(level) = &self.think
            && !THINKING_LEVELS.contains(&level.as_str())
        {
            bail!(
                "unknown thinking level {:?}: use minimal or high",
                crate::untrusted::sanitize(level)
            );
        }
        if let ContextPolicy::Last { turns } = self.context
            && turns == 0
        {
            bail!("/context last 0 would send no history at all; use /fresh");
        }
        Ok(())
    }

    /// `thinkingConfig`, only where the model table allows it: a thinkingConfig is an error on 2.5, and only
    /// 3.1 flash takes a thinking level.
    fn thinking_config(&self) -> Result<Option<ThinkingConfig>> {
        let thinking = models::info(&self.model).map(|m| m.thinking);
        if let Some(level) = &self.think {
            if !THINKING_LEVELS.contains(&level.as_str()) {
                bail!("unknown thinking level {level:?}: use minimal or high");
            }
            if matches!(thinking, Some(Thinking::AlwaysOn | Thinking::None)) {
                bail!(
                    "{} takes no thinking level (only gemini-3.1-flash-image does); use /think auto",
                    self.model
                );
            }
        }
        if self.thoughts && thinking == Some(Thinking::None) {
            bail!(
                "{} does not think, so it has no thoughts to show; use /thoughts off",
                self.model
            );
        }
        let config = ThinkingConfig {
            include_thoughts: self.thoughts.then_some(true),
            thinking_level: self.think.clone(),
        };
        Ok(
            (config.include_thoughts.is_some() || config.thinking_level.is_some())
                .then_some(config),
        )
    }

    /// A request of `contents` with these settings' generationConfig and tools.
    pub fn request(&self, contents: Vec<Content>) -> Result<GenerateContentRequest> {
        Ok(GenerateContentRequest {
            contents,
            generation_config: self.generation_config()?,
            tools: self.tools(),
            system_instruction: None,
        })
    }

    /// The request's `tools`: Google Search when asked for, with image search where the model has it.
    pub fn tools(&self) -> Vec<Value> {
        if !self.search {
            return Vec::new();
        }
        let image_search = models::info(&self.model).is_some_and(|m| m.image_search);
        if image_search {
            vec![json!({"googleSearch": {"searchTypes": {"webSearch": {}, "imageSearch": {}}}})]
        } else {
            vec![json!({"googleSearch": {}})]
        }
    }

    /// " · thoughts · think high · search" for the switches that are on (empty when none is).
    pub fn switches(&self) -> String {
        let mut text = String::new();
        if self.thoughts {
            text.push_str(" · thoughts");
        }
        if let Some(level) = &self.think {
            text.push_str(&format!(" · think {level}"));
        }
        if self.search {
            text.push_str(" · search");
        }
        text
    }

    /// "16:9 · 2K" for footers and listings.
    pub fn shape(&self) -> String {
        let aspect = self.aspect.as_deref().unwrap_or("auto");
        let takes_sizes = models::info(&self.model).is_none_or(|m| !m.sizes.is_empty());
        match (&self.size, takes_sizes) {
            (_, false) => aspect.to_string(),
            (Some(size), true) => format!("{aspect} · {size}"),
            (None, true) => format!("{aspect} · {DEFAULT_SIZE}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(model: &str, aspect: Option<&str>, size: Option<&str>) -> Settings {
        Settings {
            model: model.into(),
            aspect: aspect.map(Into::into),
            size: size.map(Into::into),
            ..Settings::default()
        }
    }

    #[test]
    fn thinking_only_where_the_model_takes_it() {
        let mut flash = settings("gemini-3.1-flash-image", None, None);
        flash.thoughts = true;
        flash.think = Some("high".into());
        let thinking = flash.generation_config().unwrap().thinking_config.unwrap();
        assert_eq!(thinking.include_thoughts, Some(true));
        assert_eq!(thinking.thinking_level.as_deref(), Some("high"));

        let mut pro = settings("gemini-3-pro-image", None, None);
        pro.thoughts = true;
        assert!(pro.generation_config().unwrap().thinking_config.is_some());
        pro.think = Some("minimal".into());
        assert!(
            pro.generation_config()
                .unwrap_err()
                .to_string()
                .contains("no thinking level")
        );

        let mut nano = settings("gemini-2.5-flash-image", None, None);
        assert!(nano.generation_config().unwrap().thinking_config.is_none());
        nano.thoughts = true;
        assert!(
            nano.generation_config()
                .unwrap_err()
                .to_string()
                .contains("does not think")
        );
    }

    #[test]
    fn search_adds_the_tool_with_image_search_on_flash() {
        let mut pro = settings("gemini-3-pro-image", None, None);
        assert!(pro.tools().is_empty());
        pro.search = true;
        assert_eq!(pro.tools(), [json!({"googleSearch": {}})]);
        let mut flash = settings("gemini-3.1-flash-image", None, None);
        flash.search = true;
        assert_eq!(
            flash.tools()[0]["googleSearch"]["searchTypes"],
            json!({"webSearch": {}, "imageSearch": {}})
        );
        let mut nano = settings("gemini-2.5-flash-image", None, None);
        nano.search = true;
        assert!(nano.generation_config().is_err());
    }

    #[test]
    fn old_rows_load_and_defaults_stay_out_of_the_json() {
        let old: Settings =
            serde_json::from_str(r#"{"model":"gemini-3-pro-image","size":"2K"}"#).unwrap();
        assert!(!old.thoughts && !old.search && old.think.is_none());
        assert_eq!(
            serde_json::to_string(&old).unwrap(),
            r#"{"model":"gemini-3-pro-image","size":"2K"}"#
        );
    }

    #[test]
    fn defaults_fill_in_and_drop_out() {
        let c = settings("gemini-3-pro-image", None, None)
            .generation_config()
            .unwrap();
        assert_eq!(c.image_config.unwrap().image_size.as_deref(), Some("1K"));
        let c = settings("gemini-2.5-flash-image", None, None)
            .generation_config()
            .unwrap();
        assert!(c.image_config.is_none());
        assert_eq!(c.response_modalities, ["TEXT", "IMAGE"]);
    }

    #[test]
    fn what_the_model_does_not_take_is_refused() {
        assert!(
            settings("gemini-2.5-flash-image", None, Some("4K"))
                .generation_config()
                .is_err()
        );
        assert!(
            settings("gemini-3-pro-image", None, Some("512"))
                .generation_config()
                .is_err()
        );
        assert!(
            settings("gemini-3-pro-image", Some("1:8"), None)
                .generation_config()
                .is_err()
        );
        let c = settings("gemini-3.1-flash-image", Some("1:8"), Some("512"))
            .generation_config()
            .unwrap();
        let image = c.image_config.unwrap();
        assert_eq!(
            (image.aspect_ratio.as_deref(), image.image_size.as_deref()),
            (Some("1:8"), Some("512"))
        );
    }

    #[test]
    fn settings_from_outside_follow_the_typed_rules() {
        for bad in [
            settings("../../../v1beta/evil?x=1#", None, None),
            settings("gemini-3-pro-image", Some("16:9\u{1b}]0;x\u{7}"), None),
            settings("gemini-3-pro-image", None, Some("1k")),
            settings("gemini-3-pro-image", None, Some("\"},\"tools\":[")),
        ] {
            assert!(bad.generation_config().is_err(), "{bad:?}");
        }
        let mut think = settings("gemini-3.1-flash-image", None, None);
        think.think = Some("ultra".into());
        assert!(think.validate().is_err());
    }

    #[test]
    fn unknown_models_are_sent_unchecked() {
        let c = settings("gemini-9-image", Some("7:3"), Some("2K"))
            .generation_config()
            .unwrap();
        assert_eq!(c.image_config.unwrap().aspect_ratio.as_deref(), Some("7:3"));
    }
}
