//! Large values leave the parts JSON and live once in `blobs`, addressed by the SHA-256 of their bytes.
//!
//! A base64 value is stored as the raw bytes it decodes to (a third smaller than its text, and what the image files
//! are made of) only when encoding those bytes again gives back the very same string; anything else (URL-safe
//! alphabet, redacted placeholders, odd padding) is stored as its text. Either way the string sent next turn is the
//! string received.

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::gemini::Part;
use crate::gemini::body::{BlobRef, BlobRefs, Encoding};

/// Values shorter than this stay inline in the JSON: not worth a row.
const INLINE_LIMIT: usize = 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct Blob {
    pub hash: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(bytes: Vec<u8>) -> Blob {
        Blob {
            hash: hash_hex(&bytes),
            bytes,
        }
    }
}

pub fn hash_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn to_blob(text: &str) -> (Blob, Encoding) {
    for (engine, encoding) in [
        (&STANDARD, Encoding::Base64),
        (&URL_SAFE, Encoding::Base64Url),
    ] {
        // These engines reject anything but the canonical form (exact padding, zero trailing bits, no whitespace),
        // so a value that decodes is the one its bytes encode back to: no need to encode it again to compare.
        if let Ok(bytes) = engine.decode(text) {
            return (Blob::new(bytes), encoding);
        }
    }
    (Blob::new(text.as_bytes().to_vec()), Encoding::Text)
}

/// The parts as the JSON to store, plus the blobs it refers to.
pub fn externalize(parts: &[Part]) -> Result<(String, Vec<Blob>)> {
    let mut blobs = Vec::new();
    let mut stored = Vec::with_capacity(parts.len());
    for part in parts {
        let mut value = serde_json::to_value(part)?;
        if let Some(object) = value.as_object_mut() {
            if let Some(Value::Object(inline)) = object.get_mut("inlineData") {
                swap_out(inline, "data", &mut blobs);
            }
            swap_out(object, "thoughtSignature", &mut blobs);
        }
        stored.push(value);
    }
    Ok((serde_json::to_string(&stored)?, blobs))
}

fn swap_out(object: &mut Map<String, Value>, key: &str, blobs: &mut Vec<Blob>) {
    let Some(Value::String(text)) = object.get(key) else {
        return;
    };
    if text.len() < INLINE_LIMIT {
        return;
    }
    let (blob, encoding) = to_blob(text);
    object.insert(
        key.to_string(),
        json!({ "$blob": blob.hash, "enc": encoding.name() }),
    );
    blobs.push(blob);
}

/// The blob hashes a stored parts JSON refers to.
pub fn references(stored: &str) -> Result<Vec<String>> {
    let mut hashes = Vec::new();
    let value: Value = serde_json::from_str(stored)?;
    for part in value.as_array().into_iter().flatten() {
        let slots = [
            part.get("inlineData").and_then(|d| d.get("data")),
            part.get("thoughtSignature"),
        ];
        for slot in slots.into_iter().flatten() {
            if let Some(hash) = slot.get("$blob").and_then(Value::as_str) {
                hashes.push(hash.to_string());
            }
        }
    }
    Ok(hashes)
}

/// The parts as received, blobs put back; `fetch` reads a blob's bytes by hash.
pub fn internalize(
    stored: &str,
    mut fetch: impl FnMut(&str) -> Result<Vec<u8>>,
) -> Result<Vec<Part>> {
    internalize_with(stored, &mut |hash, encoding| {
        encoding.encode(&fetch(hash)?).map_err(anyhow::Error::msg)
    })
}

/// The parts with each blob reference left in the store: the value's string is empty and the part's typed
/// [`BlobRefs`] say which blob goes there when the body streams ([`crate::gemini::body`]), so a long history is
/// never held in memory as base64.
pub fn internalize_refs(stored: &str) -> Result<Vec<Part>> {
    let values: Vec<Value> = serde_json::from_str(stored).context("stored parts are not JSON")?;
    let mut parts = Vec::with_capacity(values.len());
    for mut value in values {
        let mut refs = BlobRefs::default();
        if let Some(object) = value.as_object_mut() {
            if let Some(Value::Object(inline)) = object.get_mut("inlineData") {
                refs.data = take_ref(inline, "data")?;
            }
            refs.signature = take_ref(object, "thoughtSignature")?;
        }
        let mut part: Part =
            serde_json::from_value(value).context("stored part has the wrong shape")?;
        part.refs = refs;
        parts.push(part);
    }
    Ok(parts)
}

/// A blob reference at `key`, replaced by an empty string.
fn take_ref(object: &mut Map<String, Value>, key: &str) -> Result<Option<BlobRef>> {
    let Some(Value::Object(reference)) = object.get(key) else {
        return Ok(None);
    };
    let (Some(hash), Some(encoding)) = (
        reference.get("$blob").and_then(Value::as_str),
        reference
            .get("enc")
            .and_then(Value::as_str)
            .and_then(Encoding::from_name),
    ) else {
        bail!("a stored part has a malformed blob reference")
    };
    let blob = BlobRef {
        hash: hash.to_string(),
        encoding,
    };
    object.insert(key.to_string(), Value::String(String::new()));
    Ok(Some(blob))
}

/// The parts with each blob reference replaced by what `value` makes of it.
fn internalize_with(
    stored: &str,
    value: &mut dyn FnMut(&str, Encoding) -> Result<String>,
) -> Result<Vec<Part>> {
    let mut values: Vec<Value> =
        serde_json::from_str(stored).context("stored parts are not JSON")?;
    for part in &mut values {
        if let Some(object) = part.as_object_mut() {
            if let Some(Value::Object(inline)) = object.get_mut("inlineData") {
                swap_in(inline, "data", value)?;
            }
            swap_in(object, "thoughtSignature", value)?;
        }
    }
    values
        .into_iter()
        .map(|v| serde_json::from_value(v).context("stored part has the wrong shape"))
        .collect()
}

fn swap_in(
    object: &mut Map<String, Value>,
    key: &str,
    value: &mut dyn FnMut(&str, Encoding) -> Result<String>,
) -> Result<()> {
    let Some(Value::Object(reference)) = object.get(key) else {
        return Ok(());
    };
    let (Some(hash), Some(encoding)) = (
        reference.get("$blob").and_then(Value::as_str),
        reference
            .get("enc")
            .and_then(Value::as_str)
            .and_then(Encoding::from_name),
    ) else {
        bail!("a stored part has a malformed blob reference")
    };
    let text = value(hash, encoding)?;
    object.insert(key.to_string(), Value::String(text));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn round_trip(parts: &[Part]) -> (Vec<Part>, Vec<Blob>) {
        let (json, blobs) = externalize(parts).unwrap();
        let by_hash: HashMap<_, _> = blobs
            .iter()
            .map(|b| (b.hash.clone(), b.bytes.clone()))
            .collect();
        assert_eq!(references(&json).unwrap().len(), blobs.len());
        (
            internalize(&json, |h| Ok(by_hash[h].clone())).unwrap(),
            blobs,
        )
    }

    #[test]
    fn large_values_become_raw_blobs_and_come_back_identical() {
        let image = STANDARD.encode(vec![7u8; 5000]);
        let signature = URL_SAFE.encode(vec![0xfbu8; 3000]);
        let mut part = Part::image("image/jpeg", image.clone());
        part.thought_signature = Some(signature.clone());
        part.extra.insert("futureField".into(), json!({"x": 1}));
        let parts = vec![Part::text("hi"), part];
        let (back, blobs) = round_trip(&parts);
        assert_eq!(back, parts);
        assert_eq!(blobs.len(), 2);
        assert_eq!(
            blobs[0].bytes.len(),
            5000,
            "standard base64 is stored decoded"
        );
        assert_eq!(
            blobs[1].bytes.len(),
            3000,
            "url-safe base64 is stored decoded"
        );
    }

    #[test]
    fn non_canonical_values_are_kept_as_text() {
        let odd = format!("{}\n", STANDARD.encode(vec![1u8; 2000]));
        let redacted = format!(
            "<redacted live image data; length=439196>{}",
            " ".repeat(2000)
        );
        let mut part = Part::image("image/png", odd);
        part.thought_signature = Some(redacted);
        let (back, blobs) = round_trip(std::slice::from_ref(&part));
        assert_eq!(back, vec![part]);
        assert!(blobs.iter().all(|b| b.bytes.len() > 2000));
    }

    proptest::proptest! {
        /// Whatever string arrives (canonical base64 in either alphabet, or padding dropped or doubled, a trailing
        /// bit set, whitespace), the string stored and sent back is that string.
        #[test]
        fn every_value_comes_back_as_received(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            tweak in 0usize..5,
            url in proptest::prelude::any::<bool>(),
        ) {
            let mut text = if url { URL_SAFE.encode(&bytes) } else { STANDARD.encode(&bytes) };
            match tweak {
                1 => text = text.trim_end_matches('=').to_string(),
                2 => text.push('='),
                3 => {
                    // A last character whose unused low bits are set: decodes leniently, but is not canonical.
                    let unpadded = text.trim_end_matches('=').len();
                    if unpadded > 0 && unpadded % 4 != 0 {
                        let last = text.as_bytes()[unpadded - 1];
                        let next = if last == b'A' { 'B' } else { 'A' };
                        text.replace_range(unpadded - 1..unpadded, &next.to_string());
                    }
                }
                4 => text.insert(0, ' '),
                _ => {}
            }
            let (blob, encoding) = to_blob(&text);
            proptest::prop_assert_eq!(encoding.encode(&blob.bytes).unwrap(), text);
        }
    }

    #[test]
    fn small_values_stay_inline() {
        let mut part = Part::image("image/png", "AA==".into());
        part.thought_signature = Some("c2ln".into());
        let (json, blobs) = externalize(std::slice::from_ref(&part)).unwrap();
        assert!(blobs.is_empty());
        assert!(json.contains("AA=="));
    }
}
