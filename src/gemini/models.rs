//! What each image model takes: sizes, aspect ratios, thinking, reference images, input tokens, prices; and what a
//! provider (a gateway, or a profile of the config file) narrows of it. One table, read by validation before a
//! request is sent, by the context budget, by the footer's cost, and by `--help`.
//!
//! Where each figure comes from:
//! - sizes, ratios, thinking, output type, prices, reference images: API-NOTES.md's model table (Google's model
//!   pages). 2.5's "best with 3" reference images is applied as its limit (Vertex AI's page for the model says "up
//!   to 3"); a profile may raise it (`max_reference_images`).
//! - input tokens per image (the pre-send budget counts every image a request carries, re-sent or attached):
//!   3 Pro: 560, API-NOTES.md ("Input images cost 560 tokens each on 3 Pro", Google's pricing page); the one real
//!   capture with an input image (fixtures/real/response-image-safety-via-proxy.json, gemini-3-pro-image-preview)
//!   counts it as 258 prompt tokens, so 560 is an upper bound there, as a budget should be. 3.1 Flash: 560 too, the
//!   Gemini 3 figure (no source gives the image model's own). 2.5: 258, the Gemini 2.x unit (an image up to 384 px a
//!   side is 258 tokens; larger ones are cut into 768 px tiles of 258 each: Google's token counting guide), which
//!   the capture shows too. The 1290 that peel used before is 2.5's OUTPUT image count (API-NOTES.md), which
//!   made the budget refuse good 2.5 requests after about 25 images.
//! - input token limits: Google's model pages (2026).
//! - provider lists: Anyfast's model pages document only `1:1 4:3 3:4 16:9 9:16` for all three models (and sizes
//!   1K/2K/4K, 512 on 3.1 Flash: the models' own; its 2.5 stream page also lists 1K/2K/4K, which 2.5 ignores, so the
//!   model's own "none" stands). Modelverse (UCloud) documents the models' own ten ratios and sizes: no override.

use std::sync::OnceLock;

use anyhow::{Result, bail};

pub const DEFAULT_MODEL: &str = "gemini-3-pro-image";

/// The most reference images any of the image models takes in one request; used for ids peel does not know.
pub const MAX_REFERENCE_IMAGES: usize = 14;

const RATIOS: &[&str] = &[
    "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9",
];
const FLASH_RATIOS: &[&str] = &[
    "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9", "1:4", "4:1", "1:8",
    "8:1",
];

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
    pub ratios: &'static [&'static str],
    pub thinking: Thinking,
    pub max_reference_images: usize,
    /// Input tokens one image in a request costs (see the module's sources).
    pub tokens_per_input_image: u64,
    pub input_token_limit: u64,
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
        ratios: RATIOS,
        thinking: Thinking::AlwaysOn,
        max_reference_images: 14,
        tokens_per_input_image: 560,
        input_token_limit: 65_536,
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
        ratios: FLASH_RATIOS,
        thinking: Thinking::Levels,
        max_reference_images: 14,
        tokens_per_input_image: 560,
        input_token_limit: 131_072,
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
        ratios: RATIOS,
        thinking: Thinking::None,
        max_reference_images: 3,
        tokens_per_input_image: 258,
        input_token_limit: 32_768,
        output_mime: "image/png",
        image_prices: &[("", 0.039)],
        input_price_per_m: None,
        search: false,
        image_search: false,
    },
];

/// What a provider changes of the models' own capabilities; `None` leaves the model's own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderLimits {
    /// Who says so, for messages ("Anyfast", "profile fast").
    pub name: Option<String>,
    pub ratios: Option<Vec<String>>,
    pub sizes: Option<Vec<String>>,
    pub max_reference_images: Option<usize>,
    /// The request size limit, in bytes.
    pub max_request_bytes: Option<u64>,
}

/// Anyfast's model pages list these ratios for every Gemini image model (docs.anyfast.ai, guides/model-api/google).
const ANYFAST_RATIOS: &[&str] = &["1:1", "4:3", "3:4", "16:9", "9:16"];

impl ProviderLimits {
    /// What peel knows of the gateway at `base_url` from its documents; nothing for Google's own hosts and for
    /// gateways that pass the models' capabilities on unchanged.
    pub fn built_in(base_url: &str) -> ProviderLimits {
        let host = base_url
            .split("://")
            .nth(1)
            .unwrap_or(base_url)
            .split(['/', ':', '?'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if host == "anyfast.ai" || host.ends_with(".anyfast.ai") {
            return ProviderLimits {
                name: Some("Anyfast".into()),
                ratios: Some(ANYFAST_RATIOS.iter().map(|r| r.to_string()).collect()),
                ..ProviderLimits::default()
            };
        }
        ProviderLimits::default()
    }

    fn is_empty(&self) -> bool {
        self.ratios.is_none()
            && self.sizes.is_none()
            && self.max_reference_images.is_none()
            && self.max_request_bytes.is_none()
    }
}

/// The provider a run talks to: what its documents say (built in, for the gateways peel targets), which narrows
/// the models' capabilities since a gateway passes on at most what the model takes; and the profile's own keys,
/// which replace them, since the person knows their gateway.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Provider {
    pub gateway: ProviderLimits,
    pub profile: ProviderLimits,
}

impl Provider {
    /// The request size limit: the profile's, else the gateway's; `None` for the API's default.
    pub fn max_request_bytes(&self) -> Option<u64> {
        self.profile
            .max_request_bytes
            .or(self.gateway.max_request_bytes)
    }
}

/// A model's capabilities with the provider's changes applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Capabilities {
    pub info: &'static ModelInfo,
    pub ratios: Vec<String>,
    /// Empty: the model takes no imageSize.
    pub sizes: Vec<String>,
    pub max_reference_images: usize,
    /// Who changed what the model takes, for messages ("Anyfast", "profile fast").
    pub provider: Option<String>,
}

impl Capabilities {
    pub fn of(info: &'static ModelInfo, provider: &Provider) -> Capabilities {
        let (gateway, profile) = (&provider.gateway, &provider.profile);
        let list = |own: &[&str],
                    narrowed: &Option<Vec<String>>,
                    replaced: &Option<Vec<String>>| match (replaced, narrowed) {
            (Some(replaced), _) => replaced.clone(),
            (None, Some(narrowed)) => own
                .iter()
                .filter(|x| narrowed.iter().any(|n| n == *x))
                .map(|x| x.to_string())
                .collect(),
            (None, None) => own.iter().map(|x| x.to_string()).collect(),
        };
        // A model without sizes stays without: its imageSize is left out of the request.
        let sizes = if info.sizes.is_empty() {
            Vec::new()
        } else {
            list(info.sizes, &gateway.sizes, &profile.sizes)
        };
        let max_reference_images = profile.max_reference_images.unwrap_or_else(|| {
            gateway
                .max_reference_images
                .map_or(info.max_reference_images, |n| {
                    n.min(info.max_reference_images)
                })
        });
        let by = |limits: &ProviderLimits| {
            let changed = limits.ratios.is_some()
                || (limits.sizes.is_some() && !info.sizes.is_empty())
                || limits.max_reference_images.is_some();
            limits
                .name
                .clone()
                .filter(|_| changed && !limits.is_empty())
        };
        Capabilities {
            info,
            ratios: list(info.ratios, &gateway.ratios, &profile.ratios),
            sizes,
            max_reference_images,
            provider: by(profile).or_else(|| by(gateway)),
        }
    }

    pub fn takes_ratio(&self, ratio: &str) -> bool {
        self.ratios.iter().any(|r| r == ratio)
    }

    pub fn takes_size(&self, size: &str) -> bool {
        self.sizes.iter().any(|s| s == size)
    }

    /// " on Anyfast" when a provider changed what the model takes, for messages.
    pub fn on(&self) -> String {
        self.provider
            .as_ref()
            .map_or(String::new(), |name| format!(" on {name}"))
    }
}

/// The provider of this run, set once at start-up; the Gemini API's own capabilities until then.
static PROVIDER: OnceLock<Provider> = OnceLock::new();

/// Sets the provider whose limits apply to every capability looked up in this run. Once: later calls are ignored;
/// a run that never calls it gets the models' own capabilities.
pub fn use_provider(provider: Provider) {
    let _ = PROVIDER.set(provider);
}

/// The capabilities of a model id as this run's provider passes them on; `None` for ids peel does not know
/// (they are sent as given, unchecked).
pub fn capabilities(id: &str) -> Option<Capabilities> {
    let provider = PROVIDER.get().cloned().unwrap_or_default();
    info(id).map(|info| Capabilities::of(info, &provider))
}

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

/// Input tokens one image costs `model`, re-sent or attached: the table's figure (its sources are given there);
/// 560, the Gemini 3 figure, for a model peel does not know.
pub fn tokens_per_input_image(model: &str) -> u64 {
    info(model).map_or(560, |m| m.tokens_per_input_image)
}

impl ModelInfo {
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

    fn caps(id: &str) -> Capabilities {
        Capabilities::of(info(id).unwrap(), &Provider::default())
    }

    #[test]
    fn sizes_and_ratios_per_model() {
        assert_eq!(normalize_size("1k").unwrap(), "1K");
        assert!(normalize_size("3K").is_err());
        let pro = caps("gemini-3-pro-image");
        assert!(!pro.takes_size("512"));
        assert!(!pro.takes_ratio("1:8"));
        let flash = caps("gemini-3.1-flash-image");
        assert!(flash.takes_size("512") && flash.takes_ratio("1:8"));
        assert_eq!(flash.ratios.len(), 14);
        assert!(!caps("gemini-2.5-flash-image").takes_size("4K"));
        assert!(normalize_ratio("16x9").is_err());
    }

    #[test]
    fn per_model_figures() {
        let nano = caps("gemini-2.5-flash-image");
        assert_eq!(nano.max_reference_images, 3);
        assert_eq!(nano.info.tokens_per_input_image, 258);
        assert_eq!(caps("gemini-3-pro-image").max_reference_images, 14);
        assert_eq!(
            info("gemini-3-pro-image").unwrap().tokens_per_input_image,
            560
        );
    }

    #[test]
    fn a_gateway_narrows_and_a_profile_replaces() {
        let anyfast = ProviderLimits::built_in("https://www.anyfast.ai/");
        assert_eq!(anyfast.name.as_deref(), Some("Anyfast"));
        assert_eq!(
            ProviderLimits::built_in("https://api.umodelverse.ai"),
            ProviderLimits::default()
        );
        assert_eq!(
            ProviderLimits::built_in("http://127.0.0.1:9"),
            ProviderLimits::default()
        );
        let on_anyfast = Provider {
            gateway: anyfast,
            profile: ProviderLimits::default(),
        };
        let flash = Capabilities::of(info("gemini-3.1-flash-image").unwrap(), &on_anyfast);
        assert_eq!(flash.ratios, ["1:1", "3:4", "4:3", "9:16", "16:9"]);
        assert!(flash.takes_size("512"), "sizes stay the model's");
        assert_eq!(flash.on(), " on Anyfast");
        assert_eq!(flash.max_reference_images, 14);

        let profile = Provider {
            profile: ProviderLimits {
                name: Some("profile mine".into()),
                ratios: Some(vec!["1:1".into(), "7:3".into()]),
                sizes: Some(vec!["1K".into()]),
                max_reference_images: Some(6),
                max_request_bytes: Some(3_000_000),
            },
            ..on_anyfast
        };
        let nano = Capabilities::of(info("gemini-2.5-flash-image").unwrap(), &profile);
        assert_eq!(nano.max_reference_images, 6, "a profile may raise it");
        assert!(nano.takes_ratio("7:3") && !nano.takes_ratio("16:9"));
        assert!(nano.sizes.is_empty(), "2.5 still takes no size");
        let pro = Capabilities::of(info("gemini-3-pro-image").unwrap(), &profile);
        assert_eq!(pro.sizes, ["1K"]);
        assert_eq!(pro.on(), " on profile mine");
        assert_eq!(profile.max_request_bytes(), Some(3_000_000));
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
