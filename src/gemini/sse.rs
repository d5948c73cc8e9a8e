//! Server-sent event framing, fed with whatever chunks the network delivers.
//!
//! Google frames `streamGenerateContent?alt=sse` as `data: <json>` lines ended by CRLF with a blank line between
//! events; gateways and proxies use LF. A chunk boundary can fall anywhere, including between the CR and the LF of
//! one line ending, so the decoder keeps the unfinished line and remembers a trailing CR.

/// Splits a byte stream into the `data` payloads of its events.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// The line being read (no terminator yet).
    line: Vec<u8>,
    /// The `data` lines of the event being read, joined with `\n` as the SSE standard says.
    data: Vec<u8>,
    has_data: bool,
    /// The last chunk ended with CR: an LF at the start of the next one belongs to the same line ending.
    after_cr: bool,
}

impl SseDecoder {
    pub fn new() -> SseDecoder {
        SseDecoder::default()
    }

    /// Feeds one chunk; returns the payloads of the events it completed, in order.
    pub fn push(&mut self, mut chunk: &[u8]) -> Vec<Vec<u8>> {
        let mut events = Vec::new();
        if chunk.is_empty() {
            return events;
        }
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        // Images and signatures make single lines of megabytes: copy whole runs up to the next line ending.
        while let Some(end) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&chunk[..end]);
            self.end_line(&mut events);
            let crlf = chunk[end] == b'\r';
            chunk = &chunk[end + 1..];
            if crlf {
                match chunk.first() {
                    Some(b'\n') => chunk = &chunk[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.line.extend_from_slice(chunk);
        events
    }

    /// The end of the body: an event that lacks its closing blank line still counts (whether it is the whole answer
    /// is for the caller to judge from its content).
    pub fn finish(mut self) -> Option<Vec<u8>> {
        let mut events = Vec::new();
        if !self.line.is_empty() {
            self.end_line(&mut events);
        }
        self.end_line(&mut events);
        events.pop()
    }

    fn end_line(&mut self, events: &mut Vec<Vec<u8>>) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            if self.has_data {
                self.has_data = false;
                events.push(std::mem::take(&mut self.data));
            }
            return;
        }
        // Other fields (event:, id:, retry:) and comments (":...") carry nothing peel uses.
        if let Some(value) = line.strip_prefix(b"data:") {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
        } else if line == b"data" {
            if self.has_data {
                self.data.push(b'\n');
            }
            self.has_data = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_whole(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut decoder = SseDecoder::new();
        let mut events = decoder.push(bytes);
        events.extend(decoder.finish());
        events
    }

    fn decode_in_chunks(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut decoder = SseDecoder::new();
        let mut events = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            events.extend(decoder.push(&bytes[start..cut]));
            start = cut;
        }
        events.extend(decoder.finish());
        events
    }

    fn fixture() -> Vec<u8> {
        crate::test_support::fixture("stream-3-pro-image-signature.sse")
    }

    /// The same events framed the way Google does (CRLF), with a comment and a two-line data field thrown in.
    fn crlf_sample() -> Vec<u8> {
        b"data: {\"a\":1}\r\n\r\n: keep-alive\r\n\r\ndata: {\"b\":\r\ndata: 2}\r\n\r\ndata:{\"c\":3}\r\n\r\n"
            .to_vec()
    }

    #[test]
    fn lf_and_crlf_framing() {
        let events = decode_whole(&fixture());
        assert_eq!(events.len(), 2);
        for event in &events {
            serde_json::from_slice::<serde_json::Value>(event).unwrap();
        }
        assert_eq!(
            decode_whole(&crlf_sample()),
            [
                b"{\"a\":1}".to_vec(),
                b"{\"b\":\n2}".to_vec(),
                b"{\"c\":3}".to_vec()
            ]
        );
        // A last event without its blank line is still delivered.
        assert_eq!(
            decode_whole(b"data: x\n\ndata: y"),
            [b"x".to_vec(), b"y".to_vec()]
        );
        assert!(decode_whole(b"").is_empty());
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_events(cuts in proptest::collection::vec(any::<usize>(), 0..40)) {
            for bytes in [fixture(), crlf_sample(), fixture().iter().flat_map(|&b| {
                // The fixture again with CRLF line endings.
                if b == b'\n' { vec![b'\r', b'\n'] } else { vec![b] }
            }).collect()] {
                prop_assert_eq!(decode_in_chunks(&bytes, &cuts), decode_whole(&bytes));
            }
        }

        #[test]
        fn one_byte_at_a_time_is_no_different(split in 0usize..200) {
            let bytes = crlf_sample();
            let cuts: Vec<usize> = (0..bytes.len()).filter(|i| i % (split % 7 + 1) == 0).collect();
            prop_assert_eq!(decode_in_chunks(&bytes, &cuts), decode_whole(&bytes));
        }
    }
}
