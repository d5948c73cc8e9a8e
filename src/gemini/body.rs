//! The request body, streamed. A thread's history is mostly images and thought signatures, each megabytes of
//! base64; holding the whole body in memory would cost several times the history's size. Instead a request's large
//! values stay in the store: a part read from the store carries typed references ([`BlobRefs`], never deserialised
//! from anything) for its image data and its signature, and the body is written structurally, field by field, with
//! each referenced value read from its source and base64-encoded chunk by chunk as the body goes out.
//!
//! No text can stand for a stored value: only a reference set by the store makes the body read a blob. A text part,
//! an image's data or a signature from a server or an imported thread is written as the string it is, whatever it
//! looks like.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;

use serde::Serialize;
use serde_json::{Map, Value};

use super::types::{Content, GenerateContentRequest, Part};

/// How a large value's bytes become the string that goes on the wire (and came off it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Base64,
    Base64Url,
    /// Kept as received (a value that was not canonical base64, such as a redacted placeholder).
    Text,
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Base64 => "base64",
            Encoding::Base64Url => "base64url",
            Encoding::Text => "text",
        }
    }

    pub fn from_name(name: &str) -> Option<Encoding> {
        [Encoding::Base64, Encoding::Base64Url, Encoding::Text]
            .into_iter()
            .find(|e| e.name() == name)
    }

    /// The string these bytes stand for.
    pub fn encode(self, bytes: &[u8]) -> Result<String, String> {
        match self {
            Encoding::Base64 => Ok(base64_simd::STANDARD.encode_to_string(bytes)),
            Encoding::Base64Url => Ok(base64_simd::URL_SAFE.encode_to_string(bytes)),
            Encoding::Text => String::from_utf8(bytes.to_vec())
                .map_err(|_| "a text value is not UTF-8".to_string()),
        }
    }
}

/// Where large values are read from when the body is sent (the store, for peel).
pub trait BlobSource: Send + Sync {
    fn read(&self, hash: &str) -> Result<Vec<u8>, String>;
    /// The length of the raw bytes, without reading them.
    fn len(&self, hash: &str) -> Result<u64, String>;
    /// Hands the raw bytes to `each` in slices of `chunk` bytes, the last one shorter, without holding them all;
    /// stops at the first error. The default reads the whole value first.
    fn read_chunks(
        &self,
        hash: &str,
        chunk: usize,
        each: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(), String> {
        self.read(hash)?.chunks(chunk).try_for_each(each)
    }
}

/// A source for requests that carry no placeholders (every value inline).
pub struct NoBlobs;

impl BlobSource for NoBlobs {
    fn read(&self, hash: &str) -> Result<Vec<u8>, String> {
        Err(format!("no blob source for {hash}"))
    }

    fn len(&self, hash: &str) -> Result<u64, String> {
        Err(format!("no blob source for {hash}"))
    }
}

/// A value kept in the store: the bytes' hash and how they become the string that goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    pub hash: String,
    pub encoding: Encoding,
}

/// The large values of a part that stay in the store until the body is sent. Set only by the store when it reads
/// a thread back (serde skips this field both ways), so nothing received or imported can set it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlobRefs {
    /// `inlineData.data`.
    pub data: Option<BlobRef>,
    /// `thoughtSignature`.
    pub signature: Option<BlobRef>,
}

impl BlobRefs {
    pub fn is_empty(&self) -> bool {
        self.data.is_none() && self.signature.is_none()
    }
}

#[derive(Debug, Clone)]
enum Segment {
    Json(Bytes),
    /// A large value, written inside the quotes that surround it in the JSON.
    Blob {
        hash: String,
        encoding: Encoding,
    },
}

/// A request body ready to be sent any number of times (a retry sends it again).
#[derive(Clone)]
pub struct Body {
    segments: Vec<Segment>,
    len: u64,
    source: Arc<dyn BlobSource>,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body")
            .field("len", &self.len)
            .field("segments", &self.segments.len())
            .finish()
    }
}

/// Bytes of raw data per chunk: a multiple of 3, so chunks base64-encode without padding in between.
const RAW_CHUNK: usize = 48 * 1024;

impl Body {
    /// The body of `request`, its referenced values left in `source` until it is streamed.
    pub fn new(
        request: &GenerateContentRequest,
        source: Arc<dyn BlobSource>,
    ) -> Result<Body, String> {
        Body::with_image_config(request, &Map::new(), source)
    }

    /// The body with `image_config` fields added to `generationConfig.imageConfig` (Vertex-only settings).
    pub fn with_image_config(
        request: &GenerateContentRequest,
        image_config: &Map<String, Value>,
        source: Arc<dyn BlobSource>,
    ) -> Result<Body, String> {
        let mut writer = Writer::new(source.as_ref());
        writer.json(b"{\"contents\":[");
        for (index, content) in request.contents.iter().enumerate() {
            if index > 0 {
                writer.json(b",");
            }
            writer.content(index, content)?;
        }
        writer.json(b"]");
        if let Some(system) = &request.system_instruction
            && system.parts.iter().any(|p| !p.refs.is_empty())
        {
            return Err("a system instruction cannot refer to stored values".into());
        }
        let tail = Tail {
            generation_config: &request.generation_config,
            tools: &request.tools,
            system_instruction: &request.system_instruction,
        };
        let mut tail = serde_json::to_value(tail).map_err(|e| e.to_string())?;
        if !image_config.is_empty() {
            let image = &mut tail["generationConfig"]["imageConfig"];
            if !image.is_object() {
                *image = Value::Object(Map::new());
            }
            if let Value::Object(image) = image {
                image.extend(image_config.clone());
            }
        }
        let tail = serde_json::to_string(&tail).map_err(|e| e.to_string())?;
        // `{"generationConfig":...}` continues the object after the contents.
        match tail.strip_prefix('{') {
            Some("}") | None => writer.json(b"}"),
            Some(rest) => {
                writer.json(b",");
                writer.json(rest.as_bytes());
            }
        }
        let (segments, len) = writer.finish();
        Ok(Body {
            segments,
            len,
            source,
        })
    }

    /// The exact number of bytes [`Body::stream`] produces.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The body as a stream of chunks. A thread of its own reads the large values a chunk at a time and
    /// base64-encodes them while the connection writes the chunks before, so reading and encoding overlap with
    /// sending instead of adding to it; at most [`CHUNKS_AHEAD`] encoded chunks wait between the two. Dropping the
    /// stream stops the thread at its next chunk.
    pub fn stream(&self) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        let (sender, mut receiver) = tokio::sync::mpsc::channel(CHUNKS_AHEAD);
        let (segments, source) = (self.segments.clone(), self.source.clone());
        let spawned = std::thread::Builder::new()
            .name("peel-body".into())
            .spawn(move || produce(&segments, source.as_ref(), &sender));
        let mut failed = spawned
            .err()
            .map(|e| std::io::Error::other(format!("could not start the request body: {e}")));
        futures_util::stream::poll_fn(move |cx| match failed.take() {
            Some(error) => std::task::Poll::Ready(Some(Err(error))),
            None => receiver.poll_recv(cx),
        })
    }

    /// The whole body in memory (for tests and small requests).
    pub fn to_vec(&self) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(self.len as usize);
        for segment in &self.segments {
            match segment {
                Segment::Json(bytes) => out.extend_from_slice(bytes),
                Segment::Blob { hash, encoding } => {
                    for chunk in encoded_chunks(self.source.read(hash)?, *encoding) {
                        out.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The request's fields after `contents`, in the order [`GenerateContentRequest`] serialises them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Tail<'a> {
    generation_config: &'a super::types::GenerationConfig,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: &'a Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: &'a Option<Content>,
}

/// Builds the segments of a body: JSON bytes, with each referenced value as a segment of its own.
struct Writer<'a> {
    segments: Vec<Segment>,
    pending: Vec<u8>,
    len: u64,
    source: &'a dyn BlobSource,
}

impl<'a> Writer<'a> {
    fn new(source: &'a dyn BlobSource) -> Writer<'a> {
        Writer {
            segments: Vec::new(),
            pending: Vec::new(),
            len: 0,
            source,
        }
    }

    fn json(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    fn value(&mut self, value: &impl Serialize) -> Result<(), String> {
        serde_json::to_writer(&mut self.pending, value).map_err(|e| e.to_string())
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            let bytes = std::mem::take(&mut self.pending);
            self.len += bytes.len() as u64;
            self.segments.push(Segment::Json(Bytes::from(bytes)));
        }
    }

    /// A referenced value, between the quotes of its JSON string.
    fn blob(&mut self, blob: &BlobRef, place: &str) -> Result<(), String> {
        let missing = |e: String| {
            format!(
                "{place} refers to a stored value (blob {}...) that cannot be read from the database ({e}); the rest \
                 of the thread is intact: /context last N leaves the turns before it out, or /branch NAME @TURN \
                 continues from an earlier turn",
                blob.hash.get(..12).unwrap_or(&blob.hash)
            )
        };
        self.json(b"\"");
        self.flush();
        self.len += match blob.encoding {
            Encoding::Base64 | Encoding::Base64Url => {
                self.source.len(&blob.hash).map_err(missing)?.div_ceil(3) * 4
            }
            Encoding::Text => {
                escaped_text(&self.source.read(&blob.hash).map_err(missing)?)?.len() as u64
            }
        };
        self.segments.push(Segment::Blob {
            hash: blob.hash.clone(),
            encoding: blob.encoding,
        });
        self.json(b"\"");
        Ok(())
    }

    /// A content as serde writes it (`role`, `parts`, its other fields), each part written by [`Writer::part`].
    fn content(&mut self, index: usize, content: &Content) -> Result<(), String> {
        // Its fields but the parts (written one by one below): the parts are not copied to get them.
        let Value::Object(fields) = serde_json::to_value(Content {
            role: content.role.clone(),
            parts: Vec::new(),
            extra: content.extra.clone(),
        })
        .map_err(|e| e.to_string())?
        else {
            return Err("a content is not a JSON object".into());
        };
        self.object(&fields, |writer, key, value| {
            if key != "parts" {
                return writer.value(value);
            }
            writer.json(b"[");
            for (j, part) in content.parts.iter().enumerate() {
                if j > 0 {
                    writer.json(b",");
                }
                writer.part(part, &format!("part {} of content {}", j + 1, index + 1))?;
            }
            writer.json(b"]");
            Ok(())
        })
    }

    /// A part as serde writes it, with its referenced values (and only those) read from the source.
    fn part(&mut self, part: &Part, place: &str) -> Result<(), String> {
        if part.refs.is_empty() {
            return self.value(part);
        }
        let Value::Object(fields) = serde_json::to_value(part).map_err(|e| e.to_string())? else {
            return Err("a part is not a JSON object".into());
        };
        if part.refs.data.is_some() && !fields.contains_key("inlineData") {
            return Err(format!(
                "{place} refers to stored image data but has no inlineData"
            ));
        }
        if part.refs.signature.is_some() && !fields.contains_key("thoughtSignature") {
            return Err(format!(
                "{place} refers to a stored signature but has no thoughtSignature"
            ));
        }
        self.object(&fields, |writer, key, value| match (key, &part.refs) {
            (
                "thoughtSignature",
                BlobRefs {
                    signature: Some(blob),
                    ..
                },
            ) => writer.blob(blob, place),
            (
                "inlineData",
                BlobRefs {
                    data: Some(blob), ..
                },
            ) => {
                let Value::Object(inline) = value else {
                    return Err(format!("{place}: inlineData is not an object"));
                };
                writer.object(inline, |writer, key, value| {
                    if key == "data" {
                        writer.blob(blob, place)
                    } else {
                        writer.value(value)
                    }
                })
            }
            _ => writer.value(value),
        })
    }

    /// A JSON object of `fields` in their order, each value written by `field` (given the key and the value).
    fn object(
        &mut self,
        fields: &Map<String, Value>,
        mut field: impl FnMut(&mut Self, &str, &Value) -> Result<(), String>,
    ) -> Result<(), String> {
        self.json(b"{");
        for (n, (key, value)) in fields.iter().enumerate() {
            if n > 0 {
                self.json(b",");
            }
            self.value(key)?;
            self.json(b":");
            field(self, key, value)?;
        }
        self.json(b"}");
        Ok(())
    }

    fn finish(mut self) -> (Vec<Segment>, u64) {
        self.flush();
        (self.segments, self.len)
    }
}

/// Stored values in a body built from JSON text (the Interactions and Batch APIs' requests, which peel does not write
/// field by field): each value's slot holds a marker made of a nonce drawn for this body, after everything in it
/// was received, so no text from a server or an import can hold one; [`Body::marked`] splits the JSON at the
/// markers and reads each value from the store as the body goes out.
#[derive(Debug, Clone)]
pub struct Marks {
    nonce: String,
    refs: Vec<BlobRef>,
}

impl Default for Marks {
    fn default() -> Self {
        Marks::new()
    }
}

impl Marks {
    pub fn new() -> Marks {
        Marks {
            nonce: format!("{:016x}{:016x}", random_u64(), random_u64()),
            refs: Vec::new(),
        }
    }

    /// Puts a marker in every slot of `contents` whose value stays in the store (a part's typed references).
    pub fn fill(&mut self, contents: &mut [Content]) {
        for part in contents.iter_mut().flat_map(|c| c.parts.iter_mut()) {
            if let Some(data) = part.refs.data.take()
                && let Some(inline) = &mut part.inline_data
            {
                inline.data = self.mark(data);
            }
            if let Some(signature) = part.refs.signature.take() {
                part.thought_signature = Some(self.mark(signature));
            }
        }
    }

    fn mark(&mut self, blob: BlobRef) -> String {
        self.refs.push(blob);
        format!("\u{1}peel:{}:{}\u{1}", self.nonce, self.refs.len() - 1)
    }

    /// `"\u0001peel:NONCE:` as serde_json writes the start of a marker inside a JSON string.
    fn opening(&self) -> String {
        format!("\"\\u0001peel:{}:", self.nonce)
    }
}

/// 64 random bits: std's hasher is keyed from the operating system's randomness, freshly for each RandomState.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

impl Body {
    /// A body of JSON text with no stored values in it.
    pub fn plain(json: &str) -> Body {
        let len = json.len() as u64;
        Body {
            segments: vec![Segment::Json(Bytes::copy_from_slice(json.as_bytes()))],
            len,
            source: Arc::new(NoBlobs),
        }
    }

    /// A body of JSON text whose marked slots ([`Marks`]) are read from `source` as it goes out.
    pub fn marked(json: &str, marks: &Marks, source: Arc<dyn BlobSource>) -> Result<Body, String> {
        let mut writer = Writer::new(source.as_ref());
        let opening = marks.opening();
        let mut rest = json;
        while let Some(at) = rest.find(&opening) {
            let after = &rest[at + opening.len()..];
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            let index: usize = after[..digits]
                .parse()
                .map_err(|_| "a marker without its index".to_string())?;
            let after = after[digits..]
                .strip_prefix("\\u0001\"")
                .ok_or("a marker that does not end where it should")?;
            let blob = marks
                .refs
                .get(index)
                .ok_or("a marker for a value that was never marked")?;
            writer.json(&rest.as_bytes()[..at]);
            writer.blob(blob, "a stored value")?;
            rest = after;
        }
        writer.json(rest.as_bytes());
        let (segments, len) = writer.finish();
        Ok(Body {
            segments,
            len,
            source,
        })
    }
}

/// Encoded chunks the body thread may have ready before the connection takes them (256 KiB of base64).
const CHUNKS_AHEAD: usize = 4;

type ChunkSender = tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>;

/// The body thread: every segment in order into `sender`; returns early when the stream is gone.
fn produce(segments: &[Segment], source: &dyn BlobSource, sender: &ChunkSender) {
    // `Err(())`: the receiving stream was dropped (the request ended); nothing more to do.
    let send = |chunk: Result<Bytes, std::io::Error>| sender.blocking_send(chunk).map_err(|_| ());
    let run = || -> Result<(), ()> {
        for segment in segments {
            match segment {
                Segment::Json(bytes) => send(Ok(bytes.clone()))?,
                Segment::Blob {
                    hash,
                    encoding: Encoding::Text,
                } => {
                    let text = source.read(hash).and_then(|raw| escaped_text(&raw));
                    send(text.map(Bytes::from).map_err(std::io::Error::other))?;
                }
                Segment::Blob { hash, encoding } => {
                    let engine = base64_engine(*encoding);
                    let mut gone = false;
                    let read = source.read_chunks(hash, RAW_CHUNK, &mut |raw| {
                        let encoded = Bytes::from(engine.encode_type::<Vec<u8>>(raw));
                        gone = send(Ok(encoded)).is_err();
                        if gone {
                            Err("the request ended".into())
                        } else {
                            Ok(())
                        }
                    });
                    if gone {
                        return Err(());
                    }
                    if let Err(e) = read {
                        send(Err(std::io::Error::other(e)))?;
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    };
    let _ = run();
}

/// SIMD base64 (AVX2 here, picked at run time): 4.6 GB/s in chunks of [`RAW_CHUNK`] against 1.6 for the base64
/// crate (CRATES.md), and byte-identical output.
fn base64_engine(encoding: Encoding) -> base64_simd::Base64 {
    if encoding == Encoding::Base64Url {
        base64_simd::URL_SAFE
    } else {
        base64_simd::STANDARD
    }
}

/// A text value as it goes between JSON quotes.
fn escaped_text(raw: &[u8]) -> Result<String, String> {
    let text = Encoding::Text.encode(raw)?;
    let quoted = serde_json::to_string(&text).map_err(|e| e.to_string())?;
    Ok(quoted[1..quoted.len() - 1].to_string())
}

fn encoded_chunks(
    raw: Vec<u8>,
    encoding: Encoding,
) -> Box<dyn Iterator<Item = Result<Bytes, std::io::Error>> + Send> {
    match encoding {
        Encoding::Text => Box::new(std::iter::once(
            escaped_text(&raw)
                .map(Bytes::from)
                .map_err(std::io::Error::other),
        )),
        Encoding::Base64 | Encoding::Base64Url => {
            let engine = base64_engine(encoding);
            let raw = Arc::new(raw);
            let count = raw.len().div_ceil(RAW_CHUNK);
            Box::new((0..count).map(move |i| {
                let chunk = &raw[i * RAW_CHUNK..((i + 1) * RAW_CHUNK).min(raw.len())];
                Ok(Bytes::from(engine.encode_type::<Vec<u8>>(chunk)))
            }))
        }
    }
}

/// The request with every referenced value put in place: for the offline stand-in, which reads the images.
pub fn inflate(
    request: &GenerateContentRequest,
    source: &dyn BlobSource,
) -> Result<GenerateContentRequest, String> {
    let resolve = |blob: &BlobRef| -> Result<String, String> {
        blob.encoding.encode(&source.read(&blob.hash)?)
    };
    let mut request = request.clone();
    for content in &mut request.contents {
        for part in &mut content.parts {
            let refs = std::mem::take(&mut part.refs);
            if let Some(blob) = &refs.data {
                let inline = part
                    .inline_data
                    .as_mut()
                    .ok_or("stored image data without inlineData")?;
                inline.data = resolve(blob)?;
            }
            if let Some(blob) = &refs.signature {
                part.thought_signature = Some(resolve(blob)?);
            }
        }
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemini::Part;
    use crate::gemini::types::GenerationConfig;
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    use futures_util::StreamExt;

    use std::collections::HashMap;

    struct Blobs(HashMap<String, Vec<u8>>);

    impl BlobSource for Blobs {
        fn read(&self, hash: &str) -> Result<Vec<u8>, String> {
            self.0
                .get(hash)
                .cloned()
                .ok_or_else(|| format!("no blob {hash}"))
        }
        fn len(&self, hash: &str) -> Result<u64, String> {
            self.read(hash).map(|b| b.len() as u64)
        }
    }

    fn blob(hash: &str, encoding: Encoding) -> BlobRef {
        BlobRef {
            hash: hash.into(),
            encoding,
        }
    }

    /// A part whose image and signature stay in the store.
    fn stored(data: BlobRef, signature: BlobRef) -> Part {
        let mut p = Part::image("image/jpeg", String::new());
        p.thought_signature = Some(String::new());
        p.refs = BlobRefs {
            data: Some(data),
            signature: Some(signature),
        };
        p
    }

    /// What the old in-band placeholder looked like: text equal to it must stay text.
    const FORGED: &str = "\u{1}peel-blob:base64:img\u{1}";

    fn request_and_source() -> (GenerateContentRequest, GenerateContentRequest, Arc<Blobs>) {
        let image: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let signature: Vec<u8> = (0..100_001u32).map(|i| (i * 13 % 256) as u8).collect();
        let text = "<redacted \"quoted\" \u{1} value>".repeat(3).into_bytes();
        let source = Blobs(HashMap::from([
            ("img".to_string(), image.clone()),
            ("sig".to_string(), signature.clone()),
            ("txt".to_string(), text.clone()),
        ]));
        let model = |parts| Content {
            role: Some("model".into()),
            parts,
            extra: Default::default(),
        };
        // A model part received with strings that look like references: they are sent as they are.
        let mut lookalike = Part::image("image/png", FORGED.into());
        lookalike.thought_signature = Some(FORGED.into());
        lookalike.extra.insert(
            "$blob".into(),
            serde_json::json!({"$blob": "img", "enc": "base64"}),
        );
        let with_refs = vec![
            Content::user(vec![Part::text(FORGED), Part::text("typed by a person")]),
            model(vec![
                stored(
                    blob("img", Encoding::Base64),
                    blob("sig", Encoding::Base64Url),
                ),
                stored(blob("img", Encoding::Base64), blob("txt", Encoding::Text)),
                Part::text(FORGED),
                lookalike,
            ]),
            Content::user(vec![Part::text("next")]),
        ];
        let mut inline = with_refs.clone();
        for part in &mut inline[1].parts {
            part.refs = BlobRefs::default();
        }
        inline[1].parts[0].inline_data.as_mut().unwrap().data = STANDARD.encode(&image);
        inline[1].parts[0].thought_signature = Some(URL_SAFE.encode(&signature));
        inline[1].parts[1].inline_data.as_mut().unwrap().data = STANDARD.encode(&image);
        inline[1].parts[1].thought_signature = Some(String::from_utf8(text).unwrap());
        let request = |contents| GenerateContentRequest {
            contents,
            generation_config: GenerationConfig::default(),
            tools: vec![serde_json::json!({"googleSearch": {}})],
            system_instruction: None,
        };
        (request(with_refs), request(inline), Arc::new(source))
    }

    #[test]
    fn the_streamed_body_is_exactly_the_plain_serialisation() {
        let (with_refs, inline, source) = request_and_source();
        let expected = serde_json::to_vec(&inline).unwrap();
        let body = Body::new(&with_refs, source.clone()).unwrap();
        assert_eq!(body.len(), expected.len() as u64);
        assert_eq!(body.to_vec().unwrap(), expected);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let streamed: Vec<u8> = runtime
            .block_on(body.stream().collect::<Vec<_>>())
            .into_iter()
            .flat_map(|chunk| chunk.unwrap().to_vec())
            .collect();
        assert_eq!(streamed, expected);
        assert_eq!(inflate(&with_refs, source.as_ref()).unwrap(), inline);
    }

    /// Issue 9: a text part (from a model answer or an imported thread) equal to the old placeholder was replaced by
    /// a blob from any session. Now only a reference set by the store reads a blob.
    #[test]
    fn no_text_can_stand_for_a_stored_value() {
        let (with_refs, _, source) = request_and_source();
        let mut forged = with_refs.clone();
        forged.contents[1].parts.truncate(0);
        forged.contents[1].parts.push(Part::text(FORGED));
        let body = String::from_utf8(
            Body::new(&forged, source.clone())
                .unwrap()
                .to_vec()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(body, serde_json::to_string(&forged).unwrap());
        assert!(!body.contains(&STANDARD.encode(&source.0["img"])));
        // Parsed back as a request would be, the lookalikes are still the strings they were.
        let sent: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(sent["contents"][0]["parts"][0]["text"], FORGED);
    }

    #[test]
    fn vertex_image_fields_go_into_the_image_config() {
        let (with_refs, inline, source) = request_and_source();
        let mut fields = Map::new();
        fields.insert("personGeneration".into(), serde_json::json!("ALLOW_ADULT"));
        let body = Body::with_image_config(&with_refs, &fields, source).unwrap();
        let sent: serde_json::Value = serde_json::from_slice(&body.to_vec().unwrap()).unwrap();
        assert_eq!(
            sent["generationConfig"]["imageConfig"]["personGeneration"],
            "ALLOW_ADULT"
        );
        let mut expected = serde_json::to_value(&inline).unwrap();
        expected["generationConfig"]["imageConfig"] =
            serde_json::json!({"personGeneration": "ALLOW_ADULT"});
        assert_eq!(sent, expected);
    }

    #[test]
    fn marked_json_bodies_read_the_marked_values_and_nothing_else() {
        let (with_refs, inline, source) = request_and_source();
        let mut contents = with_refs.contents.clone();
        let mut marks = Marks::new();
        marks.fill(&mut contents);
        // A text that looks like a marker of another body, or like this one's without its nonce, stays text.
        contents[0].parts[0].text = Some("\u{1}peel:0123:0\u{1}".into());
        let json = serde_json::to_string(&contents).unwrap();
        let body = Body::marked(&json, &marks, source.clone()).unwrap();
        let mut expected = inline.contents.clone();
        expected[0].parts[0].text = Some("\u{1}peel:0123:0\u{1}".into());
        assert_eq!(
            body.to_vec().unwrap(),
            serde_json::to_vec(&expected).unwrap()
        );
        assert_eq!(
            body.len(),
            serde_json::to_vec(&expected).unwrap().len() as u64
        );
        assert_ne!(Marks::new().nonce, marks.nonce);
        assert_eq!(Body::plain("{}").to_vec().unwrap(), b"{}");
    }

    #[test]
    fn a_value_that_cannot_be_read_while_streaming_ends_the_body_with_an_error() {
        struct Flaky(Blobs);
        impl BlobSource for Flaky {
            fn read(&self, hash: &str) -> Result<Vec<u8>, String> {
                self.0.read(hash)
            }
            fn len(&self, hash: &str) -> Result<u64, String> {
                self.0.len(hash)
            }
            fn read_chunks(
                &self,
                _: &str,
                chunk: usize,
                each: &mut dyn FnMut(&[u8]) -> Result<(), String>,
            ) -> Result<(), String> {
                each(&vec![0; chunk])?;
                Err("the disk went away".into())
            }
        }
        let (with_refs, _, source) = request_and_source();
        let source = Arc::new(Flaky(Blobs(source.0.clone())));
        let body = Body::new(&with_refs, source).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let chunks = runtime.block_on(body.stream().collect::<Vec<_>>());
        let error = chunks.iter().find_map(|c| c.as_ref().err()).unwrap();
        assert!(error.to_string().contains("the disk went away"));
    }

    /// A reference to a blob the database lacks is a clear error about that one value, not a short body.
    #[test]
    fn a_missing_blob_is_a_clear_error_not_a_short_body() {
        let (with_refs, _, _) = request_and_source();
        let empty: Arc<dyn BlobSource> = Arc::new(Blobs(HashMap::new()));
        let error = Body::new(&with_refs, empty).unwrap_err();
        assert!(
            error.contains("part 1 of content 2") && error.contains("/context last"),
            "{error}"
        );
    }
}
