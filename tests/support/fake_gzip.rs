//! Compressed answers for the fake Gemini server, as Google's front ends give them to a client that asks
//! (`Accept-Encoding: gzip`): a JSON answer compressed whole, a stream compressed as one gzip member whose
//! deflate data is flushed after every event, so each event can be decoded as soon as it arrives.
//!
//! The work is done before the answer's headers go out, so it counts as the server's time, not the client's.

use std::io::Write as _;

use axum::http::HeaderMap;
use flate2::Compression;
use flate2::write::GzEncoder;

/// The request's `Accept-Encoding` names gzip (with a non-zero quality, if it gives one).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all("accept-encoding")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut fields = coding.split(';').map(str::trim);
            let name = fields.next().unwrap_or_default();
            let zero = fields.any(|f| {
                f.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !zero
        })
}

/// One body, compressed whole.
pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 2), Compression::default());
    // Writing to a Vec cannot fail.
    encoder.write_all(body).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

/// Stream frames compressed into one gzip member: each returned chunk holds everything needed to decode its
/// frame (a sync flush ends it); the last chunk also carries the gzip trailer.
pub fn gzip_frames(frames: &[String]) -> Vec<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    let mut chunks = Vec::with_capacity(frames.len());
    for frame in frames {
        encoder
            .write_all(frame.as_bytes())
            .expect("gzip into memory");
        encoder.flush().expect("gzip into memory");
        chunks.push(std::mem::take(encoder.get_mut()));
    }
    let tail = encoder.finish().expect("gzip into memory");
    match chunks.last_mut() {
        Some(last) => last.extend_from_slice(&tail),
        None => chunks.push(tail),
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use std::io::Read as _;

    #[test]
    fn accept_encoding_is_read_like_a_server_would() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("accept-encoding", HeaderValue::from_str(value).unwrap());
            accepts_gzip(&headers)
        };
        assert!(with("gzip"));
        assert!(with("br, gzip;q=0.5"));
        assert!(!with("gzip;q=0"));
        assert!(!with("identity"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn frames_decode_one_by_one_and_whole() {
        let frames = vec![
            "data: {\"a\":1}\r\n\r\n".to_string(),
            "data: {\"b\":2}\r\n\r\n".to_string(),
        ];
        let chunks = gzip_frames(&frames);
        assert_eq!(chunks.len(), 2);
        let whole: Vec<u8> = chunks.concat();
        let mut text = String::new();
        flate2::read::GzDecoder::new(&whole[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, frames.concat());
        // The first chunk alone already yields the first frame.
        let mut first = Vec::new();
        let mut decoder = flate2::read::GzDecoder::new(&chunks[0][..]);
        let _ = decoder.read_to_end(&mut first);
        assert_eq!(String::from_utf8_lossy(&first), frames[0]);
    }
}
