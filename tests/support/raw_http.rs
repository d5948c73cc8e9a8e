//! The least an HTTP client can do: one POST of bytes that are already encoded, on a fresh loopback connection,
//! and the answer read to its last byte without parsing it. The benchmark's transport floor, and a way to see the
//! bytes a server really put on the wire (compressed or not).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// An answer as it came off the socket.
pub struct RawResponse {
    pub status: u16,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
    /// The body as sent, chunked framing removed, any content encoding left in place.
    pub body: Vec<u8>,
    /// Bytes read from the socket in all (status line, headers, framing and body).
    pub wire_bytes: usize,
    /// From the first byte written to the last byte read.
    pub elapsed: Duration,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// POSTs `body` to `base_url` (`http://127.0.0.1:PORT`) + `path_and_query` with `headers`, and reads the whole
/// answer. `Connection: close`, so the answer ends where the socket does.
pub fn post(
    base_url: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<RawResponse> {
    let address = base_url
        .strip_prefix("http://")
        .expect("a plain http:// loopback URL");
    assert!(
        address.starts_with("127.0.0.1:") || address.starts_with("localhost:"),
        "loopback only: {address}"
    );
    let mut head = format!(
        "POST {path_and_query} HTTP/1.1\r\nhost: {address}\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut socket = TcpStream::connect(address)?;
    socket.set_nodelay(true)?;
    let started = Instant::now();
    socket.write_all(head.as_bytes())?;
    socket.write_all(body)?;
    let mut raw = Vec::with_capacity(1 << 20);
    socket.read_to_end(&mut raw)?;
    let elapsed = started.elapsed();
    parse(raw, elapsed)
}

fn parse(raw: Vec<u8>, elapsed: Duration) -> std::io::Result<RawResponse> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("headers are not text"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let rest = &raw[end + 4..];
    let body = if chunked {
        dechunk(rest).ok_or_else(|| bad("bad chunked body"))?
    } else {
        rest.to_vec()
    };
    Ok(RawResponse {
        status,
        headers,
        body,
        wire_bytes: raw.len(),
        elapsed,
    })
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::with_capacity(rest.len());
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}
