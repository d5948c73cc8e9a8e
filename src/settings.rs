//! A session's settings for its next turns, and how they become a request's generationConfig.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::gemini::models::{self, DEFAULT_MODEL};
use crate::gemini::types::{GenerationConfig, ImageConfig};

/// Stored with each session; `None` means "the default" (the model decides the ratio; size 1K).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aspect: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: DEFAULT_MODEL.to_string(),
            aspect: None,
            size: None,
        }
    }
}

pub const DEFAULT_SIZE: &str = "1K";

impl Settings {
    /// The generationConfig for these settings, or why the model will not take them. Checked before anything is
    /// sent: a ratio or size that was asked for and that the model does not take is refused; the default size is
    /// left out for a model that has none.
    pub fn generation_config(&self) -> Result<GenerationConfig> {
        let mut image = ImageConfig::default();
        let info = models::info(&self.model);
        if let Some(aspect) = &self.aspect {
            if let Some(info) = info
                && !info.takes_ratio(aspect)
            {
                bail!(
                    "{} does not take aspect ratio {aspect}; it takes {}",
                    self.model,
                    info.ratios().join(" ")
                );
            }
            image.aspect_ratio = Some(aspect.clone());
        }
        match (info, &self.size) {
            (Some(info), Some(size)) if !info.takes_size(size) => {
                if info.sizes.is_empty() {
                    bail!(
                        "{} takes no image size; use /size auto (or drop --size)",
                        self.model
                    );
                }
                bail!(
                    "{} does not take size {size}; it takes {}",
                    self.model,
                    info.sizes.join(", ")
                );
            }
            (Some(info), None) if info.sizes.is_empty() => {}
            (_, size) => {
                image.image_size = Some(size.clone().unwrap_or_else(|| DEFAULT_SIZE.to_string()))
            }
        }
        Ok(GenerationConfig {
            response_modalities: vec!["TEXT".into(), "IMAGE".into()],
            image_config: (!image.is_empty()).then_some(image),
            thinking_config: None,
        })
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
        }
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
