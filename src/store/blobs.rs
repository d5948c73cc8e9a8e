//! Large values leave the parts JSON and live once in `blobs`, addressed by the SHA-256 of their bytes.
//!
//! A base64 value is stored as the raw bytes it decodes to (a third smaller than its text, and what the image files
//! are made of) only when encoding those bytes again gives back the very same string; anything else (URL-safe
//! alphabet, redacted placeholders, odd padding) is stored as its text. Either way the string sent next turn is the
//! string received.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use rusqlite::{Connection, params};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::gemini::Part;
use crate::gemini::body::{BlobRef, BlobRefs, Encoding};
use crate::gemini::types::InlineData;

/// Values shorter than this stay inline in the JSON: not worth a row.
const INLINE_LIMIT: usize = 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct Blob {
    pub hash: String,
    /// Shared, so the image files can be written from the very bytes the store keeps.
    pub bytes: Bytes,
}

impl Blob {
    pub fn new(bytes: impl Into<Bytes>) -> Blob {
        let bytes = bytes.into();
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
        (&base64_simd::STANDARD, Encoding::Base64),
        (&base64_simd::URL_SAFE, Encoding::Base64Url),
    ] {
        // These engines reject anything but the canonical form (exact padding, zero trailing bits, no whitespace),
        // so a value that decodes is the one its bytes encode back to: no need to encode it again to compare.
        // (base64-simd's strict decoding accepts and rejects exactly what base64's STANDARD and URL_SAFE do:
        // CRATES.md; `every_value_comes_back_as_received` below checks it.)
        if let Ok(bytes) = engine.decode_to_vec(text) {
            return (Blob::new(bytes), encoding);
        }
    }
    (Blob::new(text.as_bytes().to_vec()), Encoding::Text)
}

/// Where in a part a large value sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Data,
    Signature,
}

impl Slot {
    /// Puts `value` in this slot of a serialised part (whose key is already there: the position is kept).
    fn put(self, part: &mut Value, value: Value) {
        let object = match self {
            Slot::Data => part.get_mut("inlineData").and_then(Value::as_object_mut),
            Slot::Signature => part.as_object_mut(),
        };
        if let Some(object) = object {
            let key = match self {
                Slot::Data => "data",
                Slot::Signature => "thoughtSignature",
            };
            object.insert(key.to_string(), value);
        }
    }
}

/// A content's parts with their large values decoded once: the JSON to store (blob references in place of the
/// values) and the blobs, for the store and for whatever else needs the bytes (the image files).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    pub json: String,
    pub blobs: Vec<Blob>,
    /// For each part, the index in `blobs` of its inline data when that was standard base64.
    inline: Vec<Option<usize>>,
}

impl Decoded {
    /// Decodes `parts`' large values (images, signatures) and hashes them; several values are decoded and hashed at
    /// once on threads of their own (an answer's image and signature take about the same time each).
    pub fn of(parts: &[Part]) -> Result<Decoded> {
        // The parts with their large values left out, serialised; they go back in as references (or, when short,
        // as they are) at the same place, so nothing large is copied on the way.
        let mut stored = Vec::with_capacity(parts.len());
        // (part, slot, text): every value long enough to become a blob.
        let mut large: Vec<(usize, Slot, &str)> = Vec::new();
        for (index, part) in parts.iter().enumerate() {
            let skeleton = Part {
                text: part.text.clone(),
                inline_data: part.inline_data.as_ref().map(|d| InlineData {
                    mime_type: d.mime_type.clone(),
                    data: String::new(),
                    extra: d.extra.clone(),
                }),
                thought: part.thought,
                thought_signature: part.thought_signature.as_ref().map(|_| String::new()),
                extra: part.extra.clone(),
                refs: Default::default(),
            };
            let mut value = serde_json::to_value(&skeleton)?;
            let values = [
                (
                    Slot::Data,
                    part.inline_data.as_ref().map(|d| d.data.as_str()),
                ),
                (Slot::Signature, part.thought_signature.as_deref()),
            ];
            for (slot, text) in values {
                let Some(text) = text else { continue };
                if text.len() < INLINE_LIMIT {
                    slot.put(&mut value, Value::String(text.to_string()));
                } else {
                    large.push((index, slot, text));
                }
            }
            stored.push(value);
        }
        let blobs: Vec<(Blob, Encoding)> = std::thread::scope(|scope| {
            let others: Vec<_> = large
                .iter()
                .skip(1)
                .map(|&(_, _, text)| scope.spawn(move || to_blob(text)))
                .collect();
            let first = large.first().map(|&(_, _, text)| to_blob(text));
            // A decoding thread cannot panic short of running out of memory, which ends the process anyway.
            first
                .into_iter()
                .chain(
                    others
                        .into_iter()
                        .map(|h| h.join().expect("a decoding thread")),
                )
                .collect()
        });
        let mut decoded = Decoded {
            json: String::new(),
            blobs: Vec::with_capacity(blobs.len()),
            inline: vec![None; parts.len()],
        };
        for ((index, slot, _), (blob, encoding)) in large.into_iter().zip(blobs) {
            slot.put(
                &mut stored[index],
                json!({ "$blob": blob.hash, "enc": encoding.name() }),
            );
            if slot == Slot::Data && encoding == Encoding::Base64 {
                decoded.inline[index] = Some(decoded.blobs.len());
            }
            decoded.blobs.push(blob);
        }
        decoded.json = serde_json::to_string(&stored)?;
        Ok(decoded)
    }

    /// Parts already in the store's form (`json`, as an earlier [`Decoded::of`] made it, its blobs already
    /// stored): nothing is decoded or hashed, and there are no blobs to store or bytes to hand out.
    pub(super) fn stored(json: String) -> Decoded {
        Decoded {
            json,
            ..Decoded::default()
        }
    }

    /// The decoded bytes of part `index`'s inline data, when it was long enough to become a blob and was standard
    /// base64 (what an image file is written from).
    pub fn inline_bytes(&self, index: usize) -> Option<&Bytes> {
        let blob = (*self.inline.get(index)?)?;
        self.blobs.get(blob).map(|b| &b.bytes)
    }
}

/// Stores blobs, each once: a blob already there (same hash, so same bytes) is left as it is.
pub(super) fn put_blobs<'a>(
    conn: &Connection,
    blobs: impl IntoIterator<Item = &'a Blob>,
) -> Result<()> {
    let mut put =
        conn.prepare_cached("INSERT OR IGNORE INTO blobs (hash, bytes) VALUES (?1, ?2)")?;
    for blob in blobs {
        put.execute(params![blob.hash, &blob.bytes[..]])?;
    }
    Ok(())
}

/// What makes a blob unused: no content refers to it, and no job still keeps it for its prompts.
const UNUSED: &str =
    "hash NOT IN (SELECT hash FROM content_blobs) AND hash NOT IN (SELECT hash FROM batch_blobs)";

/// Deletes every unused blob.
pub(super) fn delete_unused(conn: &Connection) -> Result<()> {
    conn.execute(&format!("DELETE FROM blobs WHERE {UNUSED}"), [])?;
    Ok(())
}

/// Deletes blob `hash` if it is unused.
pub(super) fn delete_if_unused(conn: &Connection, hash: &str) -> Result<()> {
    conn.execute(
        &format!("DELETE FROM blobs WHERE hash = ?1 AND {UNUSED}"),
        [hash],
    )?;
    Ok(())
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
    let mut parts = internalize_refs(stored)?;
    for part in &mut parts {
        let refs = std::mem::take(&mut part.refs);
        let mut value = |blob: BlobRef| -> Result<String> {
            blob.encoding
                .encode(&fetch(&blob.hash)?)
                .map_err(anyhow::Error::msg)
        };
        // A data reference was taken from the part's `inlineData`, so the part has one.
        if let (Some(blob), Some(inline)) = (refs.data, part.inline_data.as_mut()) {
            inline.data = value(blob)?;
        }
        if let Some(blob) = refs.signature {
            part.thought_signature = Some(value(blob)?);
        }
    }
    Ok(parts)
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

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    use std::collections::HashMap;

    fn externalize(parts: &[Part]) -> Result<(String, Vec<Blob>)> {
        let decoded = Decoded::of(parts)?;
        Ok((decoded.json, decoded.blobs))
    }

    fn round_trip(parts: &[Part]) -> (Vec<Part>, Vec<Blob>) {
        let (json, blobs) = externalize(parts).unwrap();
        let by_hash: HashMap<_, _> = blobs
            .iter()
            .map(|b| (b.hash.clone(), b.bytes.to_vec()))
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
