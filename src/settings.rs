//! A session's settings for its next turns, and how they become a request's generationConfig.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use serde_json::{Value, json};

use crate::context::ContextPolicy;
use crate::gemini::models::{self, DEFAULT_MODEL, Thinking};
use crate::gemini::types::{GenerationConfig, ImageConfig, ThinkingConfig};

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
    fn unknown_models_are_sent_unchecked() {
        let c = settings("gemini-9-image", Some("7:3"), Some("2K"))
            .generation_config()
            .unwrap();
        assert_eq!(c.image_config.unwrap().aspect_ratio.as_deref(), Some("7:3"));
    }
}
