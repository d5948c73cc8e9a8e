//! `--offline`: a local stand-in for the image model, so everything but the model (history,
//! storage, previews, resume) can be tried without a key or a network.
//!
//! It answers the way the Gemini API does: the same request checks (thought signatures on the
//! model's images included), a text part and an image part that carry signatures, usage numbers
//! and a model version. The picture is drawn from the prompt's words (colours, night or day, a sun
//! or moon, patterns, one shape per other word) and, when the request carries an earlier image, on
//! top of that image, so a multi-turn session visibly evolves.
//!
//! Speed: generic `image` code (imageops, the encoders) is compiled into this crate and so runs
//! unoptimised in debug builds; only concrete `DynamicImage` methods run at the dependencies'
//! opt-level. So our own pixel loops draw on a small canvas, scaling goes through
//! `DynamicImage::resize_exact`, and the one loop over every output pixel is a plain index loop.

use std::f32::consts::TAU;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
use image::imageops::FilterType;
use image::{DynamicImage, ExtendedColorType, ImageEncoder, RgbImage, Rgba, RgbaImage};
use serde_json::{Map, json};
use sha2::{Digest, Sha256};

use crate::gemini::types::{Candidate, Content, GenerateContentRequest, GenerateContentResponse};
use crate::gemini::types::{InlineData, Part, UsageMetadata};
use crate::gemini::{ApiError, GeminiError};

/// Marks a signature as ours; the SHA-256 of the signed data follows, so checking needs no state.
const SIGNATURE_MARKER: &[u8] = b"peel-offline-signature\0";
/// Real signatures are large opaque blobs; ours are padded to a size that exercises blob storage.
const SIGNATURE_BYTES: usize = 1024;
/// The dummy the Gemini docs allow for model turns that did not come from the model.
const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";
/// The long side of the canvas our own pixel loops draw on.
const WORK_LONG_SIDE: f32 = 256.0;
const MAX_SHAPES: usize = 5;

/// A colour as 0..=255 floats, for mixing.
type Colour = [f32; 3];
const NIGHT_BLUE: Colour = [10.0, 14.0, 40.0];
const WHITE: Colour = [255.0, 255.0, 255.0];
const BLACK: Colour = [0.0, 0.0, 0.0];

#[rustfmt::skip]
const COLOURS: &[(&str, Colour)] = &[
    ("red", [214.0, 48.0, 49.0]), ("crimson", [170.0, 20.0, 50.0]), ("orange", [240.0, 140.0, 40.0]),
    ("yellow", [245.0, 215.0, 60.0]), ("gold", [212.0, 175.0, 55.0]), ("golden", [212.0, 175.0, 55.0]),
    ("green", [60.0, 170.0, 80.0]), ("forest", [34.0, 110.0, 60.0]), ("blue", [50.0, 110.0, 220.0]),
    ("sky", [120.0, 180.0, 240.0]), ("ocean", [20.0, 90.0, 160.0]), ("sea", [20.0, 90.0, 160.0]),
    ("teal", [30.0, 160.0, 160.0]), ("cyan", [40.0, 200.0, 220.0]), ("purple", [130.0, 70.0, 190.0]),
    ("violet", [140.0, 90.0, 220.0]), ("pink", [240.0, 120.0, 170.0]), ("white", [240.0, 240.0, 245.0]),
    ("snow", [235.0, 240.0, 250.0]), ("black", [20.0, 20.0, 25.0]), ("gray", [140.0, 140.0, 150.0]),
    ("grey", [140.0, 140.0, 150.0]), ("silver", [190.0, 195.0, 205.0]), ("brown", [130.0, 85.0, 50.0]),
    ("sunset", [250.0, 110.0, 60.0]), ("fire", [235.0, 80.0, 30.0]), ("night", [25.0, 30.0, 70.0]),
    ("sand", [220.0, 190.0, 130.0]), ("desert", [220.0, 170.0, 110.0]),
];
#[rustfmt::skip]
mod keywords {
    pub const DARK: &[&str] = &["night", "dark", "darker", "midnight", "evening", "nighttime", "moonlit"];
    pub const BRIGHT: &[&str] = &["day", "daylight", "bright", "brighter", "light", "lighter", "sunny", "noon"];
    pub const SUN: &[&str] = &["sun", "sunny", "sunrise", "sunset"];
    pub const MOON: &[&str] = &["moon", "moonlight", "moonlit"];
    pub const CIRCLE: &[&str] = &["circle", "ball", "planet", "orb", "dot"];
    pub const STRIPES: &[&str] = &["stripes", "striped", "stripe", "lines"];
    pub const GRID: &[&str] = &["grid", "checker", "checkered", "tiles", "plaid"];
    pub const STOP: &[&str] = &[
        "a", "an", "the", "and", "or", "of", "with", "in", "on", "at", "to", "it", "its", "is", "are",
        "be", "make", "add", "more", "less", "some", "very", "please", "now", "into", "turn", "change",
        "but", "keep", "same", "image", "picture", "photo", "draw", "show", "me", "this", "that",
        "there", "as", "by", "for", "from", "so", "too", "much", "then", "what", "how", "can", "you",
        "i", "my", "let", "lets", "give", "use", "under", "over", "behind", "near", "next", "around",
        "above", "below",
    ];
    /// The words that do not become shapes.
    pub const SPECIAL: &[&[&str]] = &[DARK, BRIGHT, SUN, MOON, CIRCLE, STRIPES, GRID, STOP];
}

/// Answers `request` as `model` would, without a network. The work runs on the blocking pool, so
/// a spinner keeps ticking and dropping the future (Ctrl-C) returns at once.
pub async fn respond(
    model: &str,
    request: &GenerateContentRequest,
    take: usize,
) -> Result<GenerateContentResponse, GeminiError> {
    // Owned copies for the blocking pool: cheap next to decoding and encoding images.
    let (model, request) = (model.to_string(), request.clone());
    tokio::task::spawn_blocking(move || answer(&model, &request, take))
        .await
        .map_err(|e| GeminiError::Malformed(format!("the offline generator failed: {e}")))?
}

/// `take` is which take of its turn this is: each take of the same prompt is drawn differently (its scene seeded by
/// the take), and the same take the same way on every run.
fn answer(
    model: &str,
    request: &GenerateContentRequest,
    take: usize,
) -> Result<GenerateContentResponse, GeminiError> {
    let contents = &request.contents;
    let Some(last) = contents.last() else {
        return Err(invalid_argument(
            "* GenerateContentRequest.contents: contents is not specified\n",
        ));
    };
    if let Some(i) = contents.iter().position(|c| c.parts.is_empty()) {
        let message = format!(
            "* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n"
        );
        return Err(invalid_argument(&message));
    }
    if last.is_model() {
        return Err(invalid_argument(
            "Please ensure that the last content is a user turn.",
        ));
    }
    check_signatures(contents)?;
    let output = Output::from_request(model, request)?;

    let config = &request.generation_config;
    let modalities = &config.response_modalities;
    let wants_image =
        modalities.is_empty() || modalities.iter().any(|m| m.eq_ignore_ascii_case("IMAGE"));
    let prompt = last.answer_text();
    let scene = Scene::from_prompt(&prompt, take);
    let turn = contents.iter().filter(|c| !c.is_model()).count();
    let base = base_image(contents).and_then(decode);
    let edited = base.is_some();
    let image = if wants_image {
        Some(draw(&scene, &output, base, turn, &prompt)?)
    } else {
        None
    };

    let quoted: String = prompt.trim().chars().take(120).collect();
    let quote = |before: &str| {
        let quoted = format!(" {before} \"{quoted}\"");
        if prompt.trim().is_empty() {
            String::new()
        } else {
            quoted
        }
    };
    let text = match (&image, edited) {
        (None, _) => "Offline, I only draw: ask for an image.".to_string(),
        (Some(_), true) => format!("Here is the image, reworked offline{}.", quote("for")),
        (Some(_), false) => format!("Here is an offline sketch{}.", quote("of")),
    };
    let thinks = !output.sizeless;
    let include_thoughts = config
        .thinking_config
        .as_ref()
        .and_then(|t| t.include_thoughts);
    let mut parts = Vec::new();
    if thinks && include_thoughts == Some(true) {
        let summary = format!(
            "**Sketching offline**\n\nShapes and colours{}.",
            quote("for")
        );
        let mut thought = Part::text(summary);
        thought.thought = Some(true);
        parts.push(thought);
    }
    // Like the real API: a signature on the first text part when it comes before the image.
    parts.push(signed(Part::text(&text), &text));
    if let Some((mime_type, data)) = &image {
        parts.push(signed(Part::image(*mime_type, data.clone()), data));
    }

    let image_tokens = image.is_some().then_some(output.image_tokens);
    let thoughts = thinks.then_some(120 + scene.seed % 160);
    let fingerprint = Sha256::digest(image.as_ref().map_or(&text, |(_, data)| data));
    let content = Content {
        role: Some("model".into()),
        parts,
        extra: Map::new(),
    };
    let candidate = Candidate {
        content: Some(content),
        finish_reason: Some("STOP".into()),
        extra: Map::from_iter([("index".to_string(), json!(0))]),
        ..Candidate::default()
    };
    Ok(GenerateContentResponse {
        candidates: vec![candidate],
        usage_metadata: Some(usage(model, request, &text, image_tokens, thoughts)),
        model_version: Some(format!("{model}-offline")),
        response_id: Some(URL_SAFE_NO_PAD.encode(&fingerprint[..15])),
        ..GenerateContentResponse::default()
    })
}

/// A 400 INVALID_ARGUMENT in Google's shape, parsed by the same code as a real one.
fn invalid_argument(message: &str) -> GeminiError {
    let body = json!({"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}});
    GeminiError::Api(ApiError::from_body(400, body.to_string().as_bytes()))
}

fn signed(part: Part, data: &str) -> Part {
    let thought_signature = Some(signature_for(data));
    Part {
        thought_signature,
        ..part
    }
}

fn signature_for(data: &str) -> String {
    let digest = Sha256::digest(data.as_bytes());
    let mut bytes = SIGNATURE_MARKER.to_vec();
    bytes.extend_from_slice(&digest);
    let mut block = digest;
    while bytes.len() < SIGNATURE_BYTES {
        block = Sha256::digest(block);
        bytes.extend_from_slice(&block);
    }
    bytes.truncate(SIGNATURE_BYTES);
    STANDARD.encode(bytes)
}

/// Every answer image of every model content must carry the signature issued for exactly its data.
fn check_signatures(contents: &[Content]) -> Result<(), GeminiError> {
    for (content_index, content) in contents.iter().enumerate().filter(|(_, c)| c.is_model()) {
        for (part_index, part) in content.parts.iter().enumerate() {
            let Some(image) = part.inline_data.as_ref().filter(|_| !part.is_thought()) else {
                continue;
            };
            let valid = match part.thought_signature.as_deref() {
                Some(SKIP_SIGNATURE) => true,
                Some(signature) => signature == signature_for(&image.data),
                None => false,
            };
            if !valid {
                let (content, part) = (content_index + 1, part_index + 1);
                return Err(invalid_argument(&format!(
                    "Image part is missing a thought_signature in content position {content}, part \
                     position {part}. Please refer to https://ai.google.dev/gemini-api/docs/\
                     thought-signatures#model-behavior for more details."
                )));
            }
        }
    }
    Ok(())
}

/// Size and encoding of the answer image.
struct Output {
    /// The side of the square with the image's pixel area: 512, 1024, 2048 or 4096.
    side: u32,
    /// Width over height as asked; `None` follows the base image, or draws a square.
    ratio: Option<f32>,
    /// The models without sizes (2.5) answer PNG, the others JPEG.
    sizeless: bool,
    image_tokens: u64,
}

impl Output {
    fn from_request(model: &str, request: &GenerateContentRequest) -> Result<Output, GeminiError> {
        let config = request
            .generation_config
            .image_config
            .clone()
            .unwrap_or_default();
        // The real 2.5 model silently ignores imageSize.
        let sizeless = model.contains("2.5");
        let (side, image_tokens) = match (sizeless, config.image_size.as_deref()) {
            (true, _) => (1024, 1290),
            (false, Some("512")) => (512, 1120),
            (false, None | Some("1K")) => (1024, 1120),
            (false, Some("2K")) => (2048, 1120),
            (false, Some("4K")) => (4096, 2000),
            (false, Some(other)) => {
                let message = format!("Unsupported image size {other:?}. Use 512, 1K, 2K or 4K.");
                return Err(invalid_argument(&message));
            }
        };
        let ratio = match config.aspect_ratio.as_deref() {
            None => None,
            Some(text) => Some(parse_ratio(text).ok_or_else(|| {
                invalid_argument(&format!(
                    "Unsupported aspect ratio {text:?}. Use W:H, 1:8 to 8:1."
                ))
            })?),
        };
        Ok(Output {
            side,
            ratio,
            sizeless,
            image_tokens,
        })
    }

    /// Pixel size for a width/height ratio, like the real models: at 1K the pixel area of
    /// 1024x1024 in multiples of 16 (16:9 is 1376x768); other sizes scale it (2K 16:9 2752x1536).
    fn dimensions(&self, ratio: f32) -> (u32, u32) {
        let root = ratio.clamp(1.0 / 8.0, 8.0).sqrt();
        let at_1k = |v: f32| (v / 16.0 - 1e-3).ceil().max(1.0) as u32 * 16;
        let scale = |v: u32| v * self.side / 1024;
        (scale(at_1k(1024.0 * root)), scale(at_1k(1024.0 / root)))
    }
}

fn parse_ratio(text: &str) -> Option<f32> {
    let (w, h) = text.trim().split_once(':')?;
    let (w, h): (u32, u32) = (w.parse().ok()?, h.parse().ok()?);
    let ratio = w as f32 / h as f32;
    (w > 0 && h > 0 && (1.0 / 8.0..=8.0).contains(&ratio)).then_some(ratio)
}

/// The image to edit: the last one attached to this prompt, else the model's newest answer image.
fn base_image(contents: &[Content]) -> Option<&InlineData> {
    let attached = contents.last()?.answer_images().last();
    let models = contents.iter().rev().filter(|c| c.is_model());
    attached.or_else(|| models.filter_map(|c| c.answer_images().last()).next())
}

/// `None` for data that is not an image we can read (a redacted placeholder): we draw fresh.
fn decode(data: &InlineData) -> Option<DynamicImage> {
    image::load_from_memory(&STANDARD.decode(&data.data).ok()?).ok()
}

/// Plausible counts: text at 4 characters a token, input images at the model table's figure.
fn usage(
    model: &str,
    request: &GenerateContentRequest,
    text: &str,
    image_tokens: Option<u64>,
    thoughts: Option<u64>,
) -> UsageMetadata {
    let text_tokens = |s: &str| (s.chars().count() as u64).div_ceil(4);
    let per_image = crate::gemini::models::tokens_per_input_image(model);
    let contents = request.contents.iter().chain(&request.system_instruction);
    let parts = contents.flat_map(|c| &c.parts).filter(|p| !p.is_thought());
    let prompt = parts.fold(0, |sum, part| match (&part.text, &part.inline_data) {
        (Some(text), _) => sum + text_tokens(text),
        (None, Some(_)) => sum + per_image,
        (None, None) => sum,
    });
    let candidates = text_tokens(text) + image_tokens.unwrap_or(0);
    UsageMetadata {
        prompt_token_count: Some(prompt),
        candidates_token_count: Some(candidates),
        thoughts_token_count: thoughts,
        total_token_count: Some(prompt + candidates + thoughts.unwrap_or(0)),
        extra: Map::new(),
    }
}

/// What the prompt's words ask for.
struct Scene {
    /// The first colour named (else one hashed from the prompt), and a second for sky and accents.
    main: Colour,
    accent: Colour,
    named_colour: bool,
    dark: bool,
    bright: bool,
    disc: Option<Disc>,
    stripes: bool,
    grid: bool,
    shapes: Vec<Shape>,
    seed: u64,
}

#[derive(Clone, Copy)]
enum Disc {
    Sun,
    Moon,
    Plain,
}

/// A soft shape standing for one word of the prompt; a word always lands in the same place.
struct Shape {
    kind: u64,
    centre: (f32, f32),
    /// Half extents, as fractions of the canvas's short side.
    radii: (f32, f32),
    colour: Colour,
}

impl Scene {
    fn from_prompt(prompt: &str, take: usize) -> Scene {
        let words: Vec<String> = prompt
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        let has = |list: &[&str]| words.iter().any(|w| list.contains(&w.as_str()));
        let colour_of = |word: &str| COLOURS.iter().find(|(name, _)| *name == word).map(|c| c.1);
        let named: Vec<Colour> = words.iter().filter_map(|w| colour_of(w)).collect();
        // The first take keeps the plain words' seed; later takes mix their number in.
        let seed =
            fnv1a(words.join(" ").as_bytes()) ^ (take as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let main = named
            .first()
            .copied()
            .unwrap_or(hsv(unit(seed), 0.55, 0.85));
        let hashed_accent = mix(main, hsv(unit(seed >> 16), 0.5, 0.95), 0.5);
        let plain = |w: &&String| {
            w.len() > 1
                && colour_of(w).is_none()
                && !keywords::SPECIAL
                    .iter()
                    .any(|list| list.contains(&w.as_str()))
        };
        let shapes = words.iter().filter(plain).take(MAX_SHAPES);
        let discs = [
            (keywords::SUN, Disc::Sun),
            (keywords::MOON, Disc::Moon),
            (keywords::CIRCLE, Disc::Plain),
        ];
        Scene {
            main,
            accent: named.get(1).copied().unwrap_or(hashed_accent),
            named_colour: !named.is_empty(),
            dark: has(keywords::DARK),
            bright: has(keywords::BRIGHT),
            disc: discs
                .into_iter()
                .find_map(|(list, disc)| has(list).then_some(disc)),
            stripes: has(keywords::STRIPES),
            grid: has(keywords::GRID),
            shapes: shapes.map(|w| Shape::for_word(w, main, take)).collect(),
            seed,
        }
    }

    /// The light asked for, as a wash over the whole picture.
    fn mood(&self) -> Option<(Colour, f32)> {
        match (self.dark, self.bright) {
            (true, _) => Some((NIGHT_BLUE, 0.55)),
            (false, true) => Some((WHITE, 0.25)),
            (false, false) => None,
        }
    }

    /// A colour under the asked light, as if the mood's wash were painted over it.
    fn lit(&self, colour: Colour) -> Colour {
        self.mood()
            .map_or(colour, |(wash, alpha)| mix(colour, wash, alpha))
    }

    fn has_marks(&self) -> bool {
        !self.shapes.is_empty() || self.disc.is_some() || self.stripes || self.grid
    }
}

impl Shape {
    fn for_word(word: &str, main: Colour, take: usize) -> Shape {
        let h = fnv1a(word.as_bytes()) ^ (take as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93);
        let size = 0.09 + 0.12 * unit(h >> 40);
        let stretch = 0.7 + 0.6 * unit(h >> 48);
        Shape {
            kind: h % 3,
            centre: (0.12 + 0.76 * unit(h >> 8), 0.42 + 0.36 * unit(h >> 24)),
            radii: (size * stretch, size / stretch),
            colour: mix(hsv(unit(h >> 32), 0.65, 0.9), main, 0.5),
        }
    }

    /// Signed distance in pixels from (x, y) to the edge (negative inside).
    fn distance(&self, x: f32, y: f32, short_side: f32, (cx, cy): (f32, f32)) -> f32 {
        let (rx, ry) = (self.radii.0 * short_side, self.radii.1 * short_side);
        let (dx, dy) = (x - cx, y - cy);
        match self.kind {
            // An ellipse (exact for circles, close enough otherwise).
            0 => ((dx / rx).hypot(dy / ry) - 1.0) * rx.min(ry),
            // A rounded rectangle.
            1 => {
                let r = 0.3 * rx.min(ry);
                let (qx, qy) = (dx.abs() - (rx - r), dy.abs() - (ry - r));
                qx.max(0.0).hypot(qy.max(0.0)) + qx.max(qy).min(0.0) - r
            }
            // A peak: a triangle standing on its base.
            _ => {
                let slope = 2.0 * ry / (1.2 * rx);
                let sides = (dx.abs() * slope - (dy + ry)) / slope.hypot(1.0);
                sides.max(dy - ry)
            }
        }
    }
}

/// Draws the answer image and returns its MIME type and base64 data.
fn draw(
    scene: &Scene,
    output: &Output,
    base: Option<DynamicImage>,
    turn: usize,
    prompt: &str,
) -> Result<(&'static str, String), GeminiError> {
    let base_ratio = base
        .as_ref()
        .map(|b| b.width() as f32 / b.height().max(1) as f32);
    let (width, height) = output.dimensions(output.ratio.or(base_ratio).unwrap_or(1.0));
    let scale = (WORK_LONG_SIDE / width.max(height) as f32).min(1.0);
    let work_size = |side: u32| (side as f32 * scale).round().max(1.0) as u32;
    let mut layer = RgbaImage::new(work_size(width), work_size(height));
    let upscale = |layer: DynamicImage| layer.resize_exact(width, height, FilterType::Triangle);
    let mut canvas = match base {
        None => {
            paint_background(&mut layer, scene);
            if let Some((colour, alpha)) = scene.mood() {
                paint(&mut layer, EVERYWHERE, colour, alpha, |_, _| 1.0);
            }
            paint_marks(&mut layer, scene);
            let layer = DynamicImage::ImageRgba8(layer).into_rgb8();
            upscale(DynamicImage::ImageRgb8(layer)).into_rgb8()
        }
        Some(base) => {
            let mut canvas = upscale(base).into_rgb8();
            let marks = scene.has_marks().then(|| {
                paint_marks(&mut layer, scene);
                premultiply(&mut layer);
                upscale(DynamicImage::ImageRgba8(layer)).into_rgba8()
            });
            composite(&mut canvas, &wash_table(scene), marks.as_ref());
            canvas
        }
    };
    draw_caption(&mut canvas, turn, prompt);

    let mut bytes = Vec::new();
    let (mime_type, encoded) = if output.sizeless {
        let png =
            PngEncoder::new_with_quality(&mut bytes, CompressionType::Fast, PngFilter::Adaptive);
        let raw = canvas.as_raw();
        (
            "image/png",
            png.write_image(raw, width, height, ExtendedColorType::Rgb8),
        )
    } else {
        let mut jpeg = JpegEncoder::new_with_quality(&mut bytes, 90);
        ("image/jpeg", jpeg.encode_image(&canvas))
    };
    let encode_error = |e| GeminiError::Malformed(format!("the offline image did not encode: {e}"));
    encoded.map_err(encode_error)?;
    Ok((mime_type, STANDARD.encode(bytes)))
}

/// A vertical gradient from the accent (sky) to the main colour, with rolling hills at the bottom.
fn paint_background(canvas: &mut RgbaImage, scene: &Scene) {
    let (top, bottom) = (mix(scene.accent, WHITE, 0.3), scene.main);
    let (width, height) = (canvas.width() as usize, canvas.height().max(2) as f32);
    for (y, row) in canvas.chunks_exact_mut(4 * width).enumerate() {
        let [r, g, b] = mix(top, bottom, y as f32 / (height - 1.0)).map(|c| c as u8);
        row.copy_from_slice(&[r, g, b, 255].repeat(width));
    }
    let phase = unit(scene.seed >> 8) * TAU;
    let hill_top = |x: usize| {
        let u = x as f32 / width as f32;
        let waves =
            0.05 * (u * TAU * 1.3 + phase).sin() + 0.025 * (u * TAU * 3.1 + 2.0 * phase).sin();
        height * (0.74 + waves)
    };
    let hill_tops: Vec<f32> = (0..width).map(hill_top).collect();
    let hills = scene.lit(mix(scene.main, BLACK, 0.45));
    paint(
        canvas,
        [0.0, 0.6 * height, f32::INFINITY, height],
        hills,
        1.0,
        |x, y| (y - hill_tops[x as usize] + 0.5).clamp(0.0, 1.0),
    );
}

/// What a prompt adds on top of the picture: shapes with soft shadows, a sun or moon, a pattern.
fn paint_marks(canvas: &mut RgbaImage, scene: &Scene) {
    let (width, height) = (canvas.width() as f32, canvas.height() as f32);
    let short_side = width.min(height);
    let shadow = (short_side / 90.0).max(1.0);
    for shape in &scene.shapes {
        let centre = (shape.centre.0 * width, shape.centre.1 * height);
        let offset = (centre.0 + shadow, centre.1 + 1.5 * shadow);
        let reach = 1.3 * shape.radii.0.max(shape.radii.1) * short_side + 5.0 * shadow;
        let area = [
            centre.0 - reach,
            centre.1 - reach,
            centre.0 + reach,
            centre.1 + reach,
        ];
        let blur =
            |centre, width| move |x, y| soft(shape.distance(x, y, short_side, centre), width);
        paint(canvas, area, BLACK, 0.3, blur(offset, 3.0 * shadow));
        paint(
            canvas,
            area,
            scene.lit(shape.colour),
            0.9,
            blur(centre, 1.2),
        );
    }
    if let Some(disc) = scene.disc {
        let across = 0.25 + 0.5 * unit(scene.seed >> 24);
        let (centre, radius, colour, glow) = match disc {
            Disc::Sun => ((across, 0.24), 0.11, [255.0, 214.0, 110.0], 0.45),
            Disc::Moon => ((across, 0.2), 0.08, [240.0, 236.0, 215.0], 0.25),
            Disc::Plain => ((0.5, 0.5), 0.2, scene.lit(mix(scene.main, WHITE, 0.3)), 0.0),
        };
        let (cx, cy, r) = (centre.0 * width, centre.1 * height, radius * short_side);
        let distance = move |x: f32, y: f32| (x - cx).hypot(y - cy) - r;
        let area = [cx - 3.5 * r, cy - 3.5 * r, cx + 3.5 * r, cy + 3.5 * r];
        let halo = |x, y| (1.0 - distance(x, y) / (2.5 * r)).clamp(0.0, 1.0).powi(2);
        paint(canvas, area, colour, glow, halo);
        paint(canvas, area, colour, 1.0, |x, y| soft(distance(x, y), 1.2));
    }
    let period = (short_side / 12.0).max(4.0);
    let on = |covered: bool| if covered { 1.0 } else { 0.0 };
    if scene.stripes {
        let stripe = |x: f32, y: f32| on((((x + y) / period) as u32).is_multiple_of(2));
        paint(canvas, EVERYWHERE, WHITE, 0.16, stripe);
    }
    if scene.grid {
        let line = |x: f32, y: f32| on(x % period < 1.5 || y % period < 1.5);
        paint(canvas, EVERYWHERE, BLACK, 0.22, line);
    }
}

/// Coverage of a pixel at signed distance `d` from an edge blurred over `width` pixels.
fn soft(d: f32, width: f32) -> f32 {
    (0.5 - d / width).clamp(0.0, 1.0)
}

/// `paint`'s area for the whole canvas.
const EVERYWHERE: [f32; 4] = [0.0, 0.0, f32::INFINITY, f32::INFINITY];

/// Blends `colour` over the pixels of `area` (left, top, right, bottom), each by `alpha` times
/// `coverage(x, y)` (0..=1, taken at the pixel's centre).
fn paint(
    canvas: &mut RgbaImage,
    area: [f32; 4],
    colour: Colour,
    alpha: f32,
    coverage: impl Fn(f32, f32) -> f32,
) {
    if alpha <= 0.0 {
        return;
    }
    // Float to integer casts saturate, so an area reaching off the canvas is clipped.
    let [left, top, right, bottom] = area;
    let x_end = (right.ceil() as u32).min(canvas.width());
    let y_end = (bottom.ceil() as u32).min(canvas.height());
    for y in top as u32..y_end {
        for x in left as u32..x_end {
            let a = alpha * coverage(x as f32 + 0.5, y as f32 + 0.5);
            if a <= 0.0 {
                continue;
            }
            // Straight-alpha "over": a transparent layer takes the colour where partly covered.
            let Rgba([r, g, b, below]) = *canvas.get_pixel(x, y);
            let below = below as f32 / 255.0;
            let out = a + below * (1.0 - a);
            let over = |c: f32, under: u8| ((c * a + under as f32 * below * (1.0 - a)) / out) as u8;
            let pixel = [
                over(colour[0], r),
                over(colour[1], g),
                over(colour[2], b),
                (out * 255.0) as u8,
            ];
            canvas.put_pixel(x, y, Rgba(pixel));
        }
    }
}

/// Scaling a layer with partly transparent pixels blends right only with premultiplied colours.
fn premultiply(layer: &mut RgbaImage) {
    for pixel in layer.pixels_mut() {
        let alpha = u16::from(pixel[3]);
        for channel in &mut pixel.0[..3] {
            *channel = (u16::from(*channel) * alpha / 255) as u8;
        }
    }
}

/// For each channel and value, the value after the edit's colour wash and light (night, day).
fn wash_table(scene: &Scene) -> [[u8; 256]; 3] {
    let tint = scene.named_colour.then_some((scene.main, 0.38));
    std::array::from_fn(|channel| {
        std::array::from_fn(|value| {
            let washes = tint.into_iter().chain(scene.mood());
            let washed = washes.fold(value as f32, |v, (colour, a)| v + (colour[channel] - v) * a);
            washed.round() as u8
        })
    })
}

/// Washes every pixel of the base through `table`, then lays the premultiplied `marks` over it.
/// A plain index loop: it touches every output pixel, and in this crate's unoptimised debug code
/// iterator adapters cost several times more.
fn composite(canvas: &mut RgbImage, table: &[[u8; 256]; 3], marks: Option<&RgbaImage>) {
    let pixels: &mut [u8] = canvas;
    let mut i = 0;
    let Some(marks) = marks else {
        while i < pixels.len() {
            pixels[i] = table[i % 3][pixels[i] as usize];
            i += 1;
        }
        return;
    };
    let marks = marks.as_raw();
    while i < pixels.len() / 3 {
        let (p, m) = (3 * i, 4 * i);
        let keep = 255 - u32::from(marks[m + 3]);
        let over = |c: usize, value: u8| {
            let below = u32::from(table[c][value as usize]) * keep / 255;
            (u32::from(marks[m + c]) + below).min(255) as u8
        };
        pixels[p] = over(0, pixels[p]);
        pixels[p + 1] = over(1, pixels[p + 1]);
        pixels[p + 2] = over(2, pixels[p + 2]);
        i += 1;
    }
}

/// The prompt in the bitmap font, one line per turn, so a picture shows what it was asked for.
fn draw_caption(canvas: &mut RgbImage, turn: usize, prompt: &str) {
    let dot = (canvas.width().min(canvas.height()) / 256).max(1);
    let (line_height, margin) = (10 * dot, 4 * dot);
    let lines = (canvas.height() / 3 / line_height).max(1) as usize;
    let top = margin + ((turn.max(1) - 1) % lines) as u32 * line_height;
    let max_chars = (canvas.width().saturating_sub(2 * margin) / (6 * dot)) as usize;
    let text: String = format!("{turn} {}", prompt.trim())
        .chars()
        .take(max_chars)
        .collect();
    crate::font::draw_text(canvas, margin, top, dot, &text);
}

/// FNV-1a: a stable hash, so the same words draw the same picture on every run and platform.
fn fnv1a(bytes: &[u8]) -> u64 {
    let step = |hash: u64, byte: &u8| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, step)
}

/// 16 bits of a hash as a number in 0..=1.
fn unit(bits: u64) -> f32 {
    (bits & 0xFFFF) as f32 / 65535.0
}

fn mix(a: Colour, b: Colour, t: f32) -> Colour {
    [0, 1, 2].map(|i| a[i] + (b[i] - a[i]) * t)
}

fn hsv(hue: f32, saturation: f32, value: f32) -> Colour {
    let channel = |n: f32| {
        let k = (n + hue * 6.0) % 6.0;
        255.0 * value * (1.0 - saturation * k.min(4.0 - k).clamp(0.0, 1.0))
    };
    [channel(5.0), channel(3.0), channel(1.0)]
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use image::{GenericImageView, ImageFormat};

    use super::*;
    use crate::gemini::types::{GenerationConfig, ImageConfig, ThinkingConfig};

    const PRO: &str = "gemini-3-pro-image";

    fn request(
        contents: Vec<Content>,
        aspect: Option<&str>,
        size: Option<&str>,
    ) -> GenerateContentRequest {
        let (aspect_ratio, image_size) = (aspect.map(Into::into), size.map(Into::into));
        let generation_config = GenerationConfig {
            response_modalities: vec!["TEXT".into(), "IMAGE".into()],
            image_config: Some(ImageConfig {
                aspect_ratio,
                image_size,
            }),
            thinking_config: None,
        };
        GenerateContentRequest {
            contents,
            generation_config,
            tools: Vec::new(),
            system_instruction: None,
        }
    }

    /// A one-prompt request with the model's defaults.
    fn ask(text: &str) -> GenerateContentRequest {
        request(vec![prompt(text)], None, None)
    }

    fn prompt(text: &str) -> Content {
        Content::user(vec![Part::text(text)])
    }

    fn model_turn(parts: Vec<Part>) -> Content {
        Content {
            role: Some("model".into()),
            parts,
            extra: Map::new(),
        }
    }

    fn answer(response: &GenerateContentResponse) -> Content {
        response.candidates[0].content.clone().unwrap()
    }

    /// The answer image, decoded, with the format its bytes are in (checked against its MIME type).
    fn answer_image(response: &GenerateContentResponse) -> (ImageFormat, DynamicImage) {
        let content = answer(response);
        let data = content.answer_images().next().expect("an image");
        let bytes = STANDARD.decode(&data.data).unwrap();
        let format = image::guess_format(&bytes).unwrap();
        assert_eq!(data.mime_type, format.to_mime_type());
        (format, image::load_from_memory(&bytes).unwrap())
    }

    /// The mean colour of some columns.
    fn mean(image: &DynamicImage, columns: std::ops::Range<u32>) -> Colour {
        let pixels = image.to_rgb8();
        let pixels: Vec<_> = pixels
            .enumerate_pixels()
            .filter(|(x, ..)| columns.contains(x))
            .collect();
        let sum = |c: usize| pixels.iter().map(|(.., p)| f64::from(p[c])).sum::<f64>();
        [0, 1, 2].map(|c| (sum(c) / pixels.len() as f64) as f32)
    }

    /// The message of the 400 INVALID_ARGUMENT the request must get.
    async fn refusal(request: &GenerateContentRequest) -> String {
        match respond(PRO, request, 0).await {
            Err(GeminiError::Api(e)) if e.http_status == 400 => {
                assert_eq!(e.status.as_deref(), Some("INVALID_ARGUMENT"));
                e.message
            }
            Err(other) => panic!("expected a 400, got {other}"),
            Ok(_) => panic!("expected a 400, got an answer"),
        }
    }

    #[tokio::test]
    async fn images_have_the_asked_size_and_format() {
        let flash = "gemini-3.1-flash-image";
        let cases = [
            (PRO, None, None, (1024, 1024)),
            (PRO, Some("16:9"), Some("1K"), (1376, 768)),
            (PRO, Some("3:2"), Some("2K"), (2528, 1696)),
            (flash, Some("9:16"), Some("512"), (384, 688)),
        ];
        for (model, aspect, size, expected) in cases {
            let asked = request(vec![prompt("a red fox at night")], aspect, size);
            let response = respond(model, &asked, 0).await.unwrap();
            let (format, image) = answer_image(&response);
            assert_eq!(
                (format, image.dimensions()),
                (ImageFormat::Jpeg, expected),
                "{aspect:?} {size:?}"
            );
            assert_eq!(response.model_version, Some(format!("{model}-offline")));
            assert_eq!(
                response.candidates[0].finish_reason.as_deref(),
                Some("STOP")
            );
            let parts = answer(&response).parts;
            assert!(
                parts[0]
                    .text
                    .as_deref()
                    .unwrap()
                    .contains("a red fox at night")
            );
            assert!(parts.iter().all(|p| p.thought_signature.is_some()));
            let usage = response.usage_metadata.unwrap();
            assert!(usage.candidates_token_count.unwrap() >= 1120);
            assert!(usage.thoughts_token_count.is_some());
        }
    }

    #[tokio::test]
    async fn models_without_sizes_answer_png_at_1k() {
        let asked = request(vec![prompt("blue stripes")], None, Some("4K"));
        let response = respond("gemini-2.5-flash-image", &asked, 0).await.unwrap();
        let (format, image) = answer_image(&response);
        assert_eq!(
            (format, image.dimensions()),
            (ImageFormat::Png, (1024, 1024))
        );
        assert_eq!(response.usage_metadata.unwrap().thoughts_token_count, None);
    }

    #[tokio::test]
    async fn the_same_request_gives_the_same_bytes() {
        let asked = ask("a green grid with a sun");
        let first = respond(PRO, &asked, 0).await.unwrap();
        assert_eq!(first, respond(PRO, &asked, 0).await.unwrap());
        let other = respond(PRO, &ask("a green grid with a moon"), 0)
            .await
            .unwrap();
        assert_ne!(answer_image(&other).1, answer_image(&first).1);
    }

    #[tokio::test]
    async fn an_attached_image_is_edited_toward_the_prompt() {
        // Black on the left, white on the right, in 3:2.
        let base = RgbImage::from_fn(768, 512, |x, _| {
            image::Rgb([if x < 384 { 0 } else { 255 }; 3])
        });
        let mut png = std::io::Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(base)
            .write_to(&mut png, ImageFormat::Png)
            .unwrap();
        let attached = Part::image("image/png", STANDARD.encode(png.into_inner()));
        let asked = request(
            vec![Content::user(vec![Part::text("make it blue"), attached])],
            None,
            None,
        );
        let response = respond(PRO, &asked, 0).await.unwrap();
        let (_, image) = answer_image(&response);
        // The base's shape at 1K's pixel area; its two halves still show; the whole leans blue.
        assert_eq!(image.dimensions(), (1264, 848));
        let (left, right) = (mean(&image, 0..600), mean(&image, 660..1264));
        assert!(right[0] - left[0] > 100.0, "left {left:?} right {right:?}");
        let whole = mean(&image, 0..1264);
        assert!(whole[2] - whole[0] > 40.0, "{whole:?}");
        assert!(answer(&response).answer_text().contains("reworked"));
    }

    #[tokio::test]
    async fn a_three_turn_session_round_trips_and_evolves() {
        let (mut contents, mut images) = (Vec::new(), Vec::new());
        for text in ["a red fox in a forest", "make it night", "add a moon"] {
            contents.push(prompt(text));
            let asked = request(contents.clone(), Some("16:9"), None);
            let response = respond(PRO, &asked, 0).await.unwrap();
            images.push(answer_image(&response).1);
            // As a store keeps it: through JSON and back.
            let received = serde_json::to_string(&answer(&response)).unwrap();
            contents.push(serde_json::from_str(&received).unwrap());
        }
        let brightness = |image: &DynamicImage| mean(image, 0..1376).iter().sum::<f32>();
        assert!(
            brightness(&images[1]) < 0.7 * brightness(&images[0]),
            "night darkens"
        );
        assert_ne!(images[1], images[2], "the moon changes the picture");
    }

    #[tokio::test]
    async fn missing_or_altered_signatures_are_refused_with_their_positions() {
        let first = respond(PRO, &ask("a cat"), 0).await.unwrap();
        let other = respond(PRO, &ask("a dog"), 0).await.unwrap();
        // The answer's image as part 3, after a thought image (which needs no signature).
        let history = |signature: Option<String>| {
            let thought_image = Part {
                thought: Some(true),
                ..Part::image("image/png", "AA==".into())
            };
            let mut answer = answer(&first);
            answer.parts.insert(0, thought_image);
            answer.parts[2].thought_signature = signature;
            request(
                vec![prompt("a cat"), answer, prompt("make it smile")],
                None,
                None,
            )
        };
        let expected = "Image part is missing a thought_signature in content position 2, part \
                        position 3. Please refer to https://ai.google.dev/gemini-api/docs/\
                        thought-signatures#model-behavior for more details.";
        assert_eq!(refusal(&history(None)).await, expected);
        let mut altered = answer(&first).parts[1].thought_signature.clone().unwrap();
        altered.replace_range(40..44, "AAAA");
        assert_eq!(refusal(&history(Some(altered))).await, expected);
        let foreign = answer(&other).parts[1].thought_signature.clone();
        assert_eq!(refusal(&history(foreign)).await, expected);
        assert!(
            respond(PRO, &history(Some(SKIP_SIGNATURE.into())), 0)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn an_undecodable_earlier_image_is_drawn_fresh() {
        let redacted = Part::image(
            "image/jpeg",
            "<redacted live image data; length=439196>".into(),
        );
        let redacted = Part {
            thought_signature: Some(SKIP_SIGNATURE.into()),
            ..redacted
        };
        let contents = vec![prompt("a cat"), model_turn(vec![redacted]), prompt("a cat")];
        let response = respond(PRO, &request(contents, None, None), 0)
            .await
            .unwrap();
        assert_eq!(answer_image(&response).1.dimensions(), (1024, 1024));
        assert!(answer(&response).answer_text().contains("sketch"));
    }

    #[tokio::test]
    async fn invalid_requests_are_refused_like_the_api() {
        assert!(
            refusal(&request(Vec::new(), None, None))
                .await
                .contains("contents is not specified")
        );
        let ends_with_model = vec![prompt("a"), model_turn(vec![Part::text("hi")])];
        assert!(
            refusal(&request(ends_with_model, None, None))
                .await
                .contains("user turn")
        );
        let empty = vec![prompt("a"), Content::user(Vec::new())];
        assert!(
            refusal(&request(empty, None, None))
                .await
                .contains("contents[1].parts")
        );
        let bad_ratio = request(vec![prompt("a")], Some("16x9"), None);
        assert!(refusal(&bad_ratio).await.contains("aspect ratio"));
        let bad_size = request(vec![prompt("a")], None, Some("1k"));
        assert!(refusal(&bad_size).await.contains("image size"));
    }

    #[tokio::test]
    async fn thoughts_come_first_when_asked_for() {
        let mut asked = ask("a sunset over the sea");
        let thinking = ThinkingConfig {
            include_thoughts: Some(true),
            thinking_level: None,
        };
        asked.generation_config.thinking_config = Some(thinking);
        let content = answer(&respond(PRO, &asked, 0).await.unwrap());
        assert!(content.parts[0].is_thought() && content.parts[0].thought_signature.is_none());
        assert!(content.thought_text().contains("sunset"));
        assert_eq!(content.answer_images().count(), 1);
    }

    #[tokio::test]
    async fn text_only_modalities_get_text_only() {
        let mut asked = ask("what can you draw?");
        asked.generation_config.response_modalities = vec!["TEXT".into()];
        let content = answer(&respond(PRO, &asked, 0).await.unwrap());
        assert_eq!(
            (content.parts.len(), content.answer_images().count()),
            (1, 0)
        );
    }

    /// `cargo test --lib offline::tests::timing -- --ignored --nocapture`
    #[tokio::test]
    #[ignore = "prints timings"]
    async fn timing() {
        for size in ["1K", "2K", "4K"] {
            let first = prompt("a red fox at night under the moon with stripes");
            let started = Instant::now();
            let response = respond(PRO, &request(vec![first.clone()], None, Some(size)), 0)
                .await
                .unwrap();
            let fresh = started.elapsed();
            let contents = vec![first, answer(&response), prompt("make it gold")];
            let started = Instant::now();
            respond(PRO, &request(contents, None, Some(size)), 0)
                .await
                .unwrap();
            println!("{size}: fresh {fresh:?}, edit {:?}", started.elapsed());
        }
    }
}
