//! What each image model takes: sizes, aspect ratios, thinking, reference images, prices.
//! One table, read by validation before a request is sent, by the footer's cost, and by `--help`.

use anyhow::{Result, bail};

pub const DEFAULT_MODEL: &str = "gemini-3-pro-image";

/// The most reference images any of the image models takes in one request; used for ids peel does not know.
pub const MAX_REFERENCE_IMAGES: usize = 14;

const RATIOS: &[&str] = &[
    "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9",
];
const EXTRA_FLASH_RATIOS: &[&str] = &["1:4", "4:1", "1:8", "8:1"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thinking {
    /// Thinks always; only `includeThoughts` may be set.
    AlwaysOn,
    /// Thinks always; `thinkingLevel` minimal or high, and `includeThoughts`.
    Levels,
    /// No thinking: a thinkingConfig is an error.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelInfo {
    pub id: &'static str,
    pub alias: &'static str,
    /// Empty: the model takes no imageSize (it is left out of the request).
    pub sizes: &'static [&'static str],
    pub extra_ratios: &'static [&'static str],
    pub thinking: Thinking,
    pub max_reference_images: usize,
    pub output_mime: &'static str,
    /// Dollars per output image, by size ("" for a model without sizes).
    pub image_prices: &'static [(&'static str, f64)],
    /// Dollars per million input tokens (text and images), where API-NOTES.md gives it.
    pub input_price_per_m: Option<f64>,
    /// Takes the googleSearch tool.
    pub search: bool,
    /// Its googleSearch tool also searches images (`searchTypes.imageSearch`).
    pub image_search: bool,
}

pub const MODELS: &[ModelInfo] = &[
    ModelInfo {
        id: "gemini-3-pro-image",
        alias: "Nano Banana Pro",
        sizes: &["1K", "2K", "4K"],
        extra_ratios: &[],
        thinking: Thinking::AlwaysOn,
        max_reference_images: 14,
        output_mime: "image/jpeg",
        image_prices: &[("1K", 0.134), ("2K", 0.134), ("4K", 0.24)],
        input_price_per_m: Some(2.0),
        search: true,
        image_search: false,
    },
    ModelInfo {
        id: "gemini-3.1-flash-image",
        alias: "Nano Banana 2",
        sizes: &["512", "1K", "2K", "4K"],
        extra_ratios: EXTRA_FLASH_RATIOS,
        thinking: Thinking::Levels,
        max_reference_images: 14,
        output_mime: "image/jpeg",
        image_prices: &[("512", 0.045), ("1K", 0.067), ("2K", 0.101), ("4K", 0.151)],
        input_price_per_m: None,
        search: true,
        image_search: true,
    },
    ModelInfo {
        id: "gemini-2.5-flash-image",
        alias: "Nano Banana",
        sizes: &[],
        extra_ratios: &[],
        thinking: Thinking::None,
        max_reference_images: 3,
        output_mime: "image/png",
        image_prices: &[("", 0.039)],
        input_price_per_m: None,
        search: false,
        image_search: false,
    },
];

/// Preview ids that were shut down, and what replaced them.
const DEPRECATED: &[(&str, &str)] = &[
    ("gemini-3-pro-image-preview", "gemini-3-pro-image"),
    ("gemini-3.1-flash-image-preview", "gemini-3.1-flash-image"),
    ("gemini-2.5-flash-image-preview", "gemini-2.5-flash-image"),
];

/// The model id to send, and a notice when the asked id was a retired alias.
pub fn resolve(id: &str) -> (String, Option<String>) {
    let id = id.trim();
    let id = id.strip_prefix("models/").unwrap_or(id);
    match DEPRECATED.iter().find(|(old, _)| *old == id) {
        Some((old, new)) => (
            new.to_string(),
            Some(format!("{old} was shut down on 2026-06-25; using {new}")),
        ),
        None => (id.to_string(), None),
    }
}

/// The table entry for a model id; `None` for ids peel does not know (they are sent as given, unchecked).
pub fn info(id: &str) -> Option<&'static ModelInfo> {
    MODELS.iter().find(|m| m.id == id)
}

impl ModelInfo {
    pub fn takes_ratio(&self, ratio: &str) -> bool {
        RATIOS.contains(&ratio) || self.extra_ratios.contains(&ratio)
    }

    pub fn ratios(&self) -> Vec<&'static str> {
        RATIOS.iter().chain(self.extra_ratios).copied().collect()
    }

    pub fn takes_size(&self, size: &str) -> bool {
        self.sizes.contains(&size)
    }

    /// The price of one output image at this size (the model's only price when it has no sizes).
    pub fn image_price(&self, size: Option<&str>) -> f64 {
        let wanted = size.unwrap_or("1K");
        self.image_prices
            .iter()
            .find(|(s, _)| *s == wanted || s.is_empty())
            .or(self.image_prices.first())
            .map_or(0.0, |(_, price)| *price)
    }
}

/// `1k` → `1K`, `2048`? no: only the names the API uses. Returns the canonical spelling or an error naming them.
pub fn normalize_size(size: &str) -> Result<String> {
    let canonical = size.trim().to_ascii_uppercase();
    match canonical.as_str() {
        "512" | "1K" | "2K" | "4K" => Ok(canonical),
        _ => bail!("unknown image size {size:?}: use 512, 1K, 2K or 4K"),
    }
}

/// Checks an aspect ratio's spelling (`16:9`); whether the model takes it is checked against the table later.
pub fn normalize_ratio(ratio: &str) -> Result<String> {
    let ratio = ratio.trim();
    let valid = ratio.split_once(':').is_some_and(|(w, h)| {
        [w, h]
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    });
    if !valid {
        bail!(
            "aspect ratio {ratio:?} is not of the form W:H; known ratios: {}",
            RATIOS.join(" ")
        );
    }
    Ok(ratio.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deprecated_ids_map_to_ga() {
        let (id, notice) = resolve("gemini-3-pro-image-preview");
        assert_eq!(id, "gemini-3-pro-image");
        assert!(notice.unwrap().contains("shut down"));
        assert_eq!(
            resolve("models/gemini-2.5-flash-image"),
            ("gemini-2.5-flash-image".into(), None)
        );
    }

    #[test]
    fn sizes_and_ratios_per_model() {
        assert_eq!(normalize_size("1k").unwrap(), "1K");
        assert!(normalize_size("3K").is_err());
        let pro = info("gemini-3-pro-image").unwrap();
        assert!(!pro.takes_size("512"));
        assert!(!pro.takes_ratio("1:8"));
        let flash = info("gemini-3.1-flash-image").unwrap();
        assert!(flash.takes_size("512") && flash.takes_ratio("1:8"));
        assert!(!info("gemini-2.5-flash-image").unwrap().takes_size("4K"));
        assert!(normalize_ratio("16x9").is_err());
    }

    #[test]
    fn prices() {
        let pro = info("gemini-3-pro-image").unwrap();
        assert_eq!(pro.image_price(Some("4K")), 0.24);
        assert_eq!(
            info("gemini-2.5-flash-image").unwrap().image_price(None),
            0.039
        );
    }
}
