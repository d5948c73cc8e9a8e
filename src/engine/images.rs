//! Images as bytes: what a byte string is, how big it is, attachments read and checked, answers decoded.

use std::path::Path;

use anyhow::{Result, bail};
use bytes::Bytes;

use crate::gemini::Content;
use crate::gemini::types::InlineData;
use crate::store::{Decoded, ImageMeta};

/// Larger attachments are refused before anything is sent: the Gemini API takes at most 100 MB per request, and
/// every earlier image is sent again each turn.
pub const MAX_ATTACHMENT_BYTES: u64 = 30 * 1024 * 1024;

/// The image types the API takes: (mime, extension).
const TYPES: &[(&str, &str)] = &[
    ("image/png", "png"),
    ("image/jpeg", "jpg"),
    ("image/webp", "webp"),
    ("image/gif", "gif"),
    ("image/avif", "avif"),
    ("image/heic", "heic"),
    ("image/heif", "heif"),
];

/// What kind of image a byte string is, by its first bytes: (mime, extension).
pub fn sniff(bytes: &[u8]) -> Option<(&'static str, &'static str)> {
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    let mime = if starts(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if starts(b"\xff\xd8\xff") {
        "image/jpeg"
    } else if bytes.len() >= 12 && starts(b"RIFF") && &bytes[8..12] == b"WEBP" {
        "image/webp"
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        "image/gif"
    } else if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        match &bytes[8..12] {
            b"avif" | b"avis" => "image/avif",
            b"heic" | b"heix" | b"heim" | b"heis" => "image/heic",
            b"mif1" | b"msf1" | b"hevc" | b"hevx" => "image/heif",
            _ => return None,
        }
    } else {
        return None;
    };
    Some((mime, ext_for_mime(mime)?))
}

/// The file extension for an image MIME type.
pub fn ext_for_mime(mime: &str) -> Option<&'static str> {
    TYPES.iter().find(|(m, _)| *m == mime).map(|(_, ext)| *ext)
}

/// Pixel size from the header, without decoding the image; `None` for types peel cannot read (HEIC, AVIF).
pub fn dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()
}

/// An image the user attached to the next prompt, read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    /// Where it came from, for listings: a file path, or a stored image's label (`fox@3`).
    pub source: String,
    pub mime: &'static str,
    pub bytes: Vec<u8>,
    pub dimensions: Option<(u32, u32)>,
}

impl Attachment {
    /// The attachment as a request part (base64 inline data).
    pub fn part(&self) -> crate::gemini::Part {
        use base64::Engine as _;
        crate::gemini::Part::image(
            self.mime,
            base64::engine::general_purpose::STANDARD.encode(&self.bytes),
        )
    }
    /// Reads and checks a file: it must exist, be readable, not be huge, and be an image by its bytes.
    pub fn read(path: &Path) -> Result<Attachment> {
        // Regular files only, opened without blocking (a FIFO would wait for a writer forever), and the size checked
        // as the bytes are read (a device or /proc file says 0 in its metadata).
        let bytes =
            crate::files::read_bounded(path, MAX_ATTACHMENT_BYTES).map_err(|e| match e {
                crate::files::ReadError::TooLarge { .. } => anyhow::anyhow!(
                    "cannot attach {}: it is over the {} limit for one image; scale it down first",
                    path.display(),
                    crate::text::bytes(MAX_ATTACHMENT_BYTES)
                ),
                crate::files::ReadError::Other(e) => {
                    e.context(format!("cannot attach {}", path.display()))
                }
            })?;
        Attachment::from_bytes(path.display().to_string(), bytes)
    }

    /// Checks bytes from `source`: they must be an image by their bytes, and not a damaged one.
    pub fn from_bytes(source: String, bytes: Vec<u8>) -> Result<Attachment> {
        let Some((mime, _)) = sniff(&bytes) else {
            bail!(
                "cannot attach {source}: not an image (png, jpeg, webp, gif, heic, heif or avif)"
            );
        };
        let dimensions = dimensions(&bytes);
        if dimensions.is_none()
            && matches!(
                mime,
                "image/png" | "image/jpeg" | "image/webp" | "image/gif"
            )
        {
            bail!("cannot attach {source}: the {mime} file is damaged or truncated");
        }
        Ok(Attachment {
            source,
            mime,
            bytes,
            dimensions,
        })
    }

    pub fn describe(&self) -> String {
        let size = self
            .dimensions
            .map_or(String::new(), |(w, h)| format!(" {w}x{h}"));
        format!(
            "{} ({}{size}, {})",
            self.source,
            self.mime,
            crate::text::bytes(self.bytes.len() as u64)
        )
    }
}

/// An answer image decoded and measured, ready to be written to disk.
pub struct AnswerImage {
    /// Shared with the store when decoded once for both ([`decode_answer`]).
    pub bytes: Bytes,
    pub meta: ImageMeta,
    pub ext: &'static str,
}

/// The answer's images that decode, typed by their bytes. A value that is not an image (a redacted capture, say) is
/// left out rather than written as a broken file; the caller says so.
pub fn answer_images(content: &Content) -> Vec<AnswerImage> {
    content
        .answer_images()
        .filter_map(|inline| decode(inline).and_then(measure))
        .collect()
}

/// The first of the answer's images that decodes (the others are not decoded).
pub fn first_answer_image(content: &Content) -> Option<AnswerImage> {
    content
        .answer_images()
        .find_map(|inline| decode(inline).and_then(measure))
}

/// An answer decoded once, for the store and the image files alike: the store's form of its parts (`None` only
/// on a serialiser fault, when the store decodes the answer itself) and its images, written from the very bytes
/// the store keeps.
pub fn decode_answer(content: &Content) -> (Option<Decoded>, Vec<AnswerImage>) {
    let Ok(stored) = Decoded::of(&content.parts) else {
        return (None, answer_images(content));
    };
    let images = content
        .parts
        .iter()
        .enumerate()
        .filter(|(_, part)| !part.is_thought())
        .filter_map(|(index, part)| {
            let inline = part.inline_data.as_ref()?;
            let bytes = match stored.inline_bytes(index) {
                Some(bytes) => bytes.clone(),
                None => decode(inline)?,
            };
            measure(bytes)
        })
        .collect();
    (Some(stored), images)
}

/// The interim thought images of an answer that decode.
pub fn thought_images(content: &Content) -> Vec<AnswerImage> {
    content
        .thought_images()
        .filter_map(|inline| decode(inline).and_then(measure))
        .collect()
}

fn decode(inline: &InlineData) -> Option<Bytes> {
    base64_simd::STANDARD
        .decode_to_vec(inline.data.as_bytes())
        .ok()
        .map(Bytes::from)
}

/// Typed and sized from its bytes; `None` for bytes that are not an image.
fn measure(bytes: Bytes) -> Option<AnswerImage> {
    let (mime, ext) = sniff(&bytes)?;
    let (width, height) = dimensions(&bytes).unwrap_or((0, 0));
    let meta = ImageMeta {
        mime: mime.to_string(),
        width,
        height,
        bytes: bytes.len() as u64,
    };
    Some(AnswerImage { bytes, meta, ext })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        image::RgbImage::new(w, h)
            .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn types_come_from_bytes() {
        assert_eq!(sniff(&png(2, 2)), Some(("image/png", "png")));
        assert_eq!(sniff(b"\xff\xd8\xff\xe0rest"), Some(("image/jpeg", "jpg")));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(("image/webp", "webp")));
        assert_eq!(sniff(b"\0\0\0\x18ftypheic"), Some(("image/heic", "heic")));
        assert_eq!(sniff(b"hello"), None);
        assert_eq!(dimensions(&png(3, 5)), Some((3, 5)));
    }

    #[test]
    fn attachments_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("a.dat");
        std::fs::write(&good, png(4, 3)).unwrap();
        assert_eq!(Attachment::read(&good).unwrap().dimensions, Some((4, 3)));
        let text = dir.path().join("notes.png");
        std::fs::write(&text, "not an image").unwrap();
        assert!(
            Attachment::read(&text)
                .unwrap_err()
                .to_string()
                .contains("not an image")
        );
        let truncated = dir.path().join("t.png");
        std::fs::write(&truncated, &png(64, 64)[..20]).unwrap();
        assert!(
            Attachment::read(&truncated)
                .unwrap_err()
                .to_string()
                .contains("damaged")
        );
        assert!(
            format!(
                "{:#}",
                Attachment::read(&dir.path().join("missing.png")).unwrap_err()
            )
            .contains("missing.png")
        );
    }
}
