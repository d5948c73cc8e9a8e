//! A hostile "Gemini" server: it answers every request with one attack, over plain HTTP/1.1 on 127.0.0.1. It puts
//! terminal escapes (OSC 52 clipboard writes, title changes, CSI, C1, bidi overrides) in every field a client might
//! print, echoes the key it was sent back in every place it can, forges the old in-band blob placeholder, sends
//! answers that never end or stop arriving, and bytes that are not UTF-8.
//!
//! Raw sockets rather than the fake server's axum: the point is to send what no honest server would.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

/// Escapes a terminal would obey: a clipboard write, a title change, a screen clear, a C1 CSI, bidi overrides.
pub const ESCAPES: &str =
    "\u{1b}]52;c;aGFja2Vk\u{7}\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31m\u{202e}gpj.exe\u{2066}\u{200f}";

/// The old in-band placeholder for a stored image: as text it must stay text.
pub const FORGED_PLACEHOLDER: &str =
    "\u{1}peel-blob:base64:0000000000000000000000000000000000000000000000000000000000000000\u{1}";

/// What the server does with every request.
#[derive(Clone, Debug, PartialEq)]
pub enum Attack {
    /// This HTTP status with an error body carrying escapes and the key in every field (Google's shape).
    GoogleError(u16),
    /// The same in a gateway's OpenAI shape (`type`, string `code`).
    GatewayError(u16),
    /// A 200 whose body is an error (escapes and the key).
    ErrorIn200,
    /// An SSE stream with one event, then an error event (escapes and the key).
    SseErrorEvent,
    /// A real answer (an image) whose text, thoughts, finish message and sources carry escapes, the key and a
    /// forged placeholder.
    PoisonedAnswer,
    /// A 200 whose JSON never ends.
    Endless,
    /// An SSE stream of events that never ends.
    EndlessStream,
    /// A 200 with its headers, then nothing at all.
    Stall,
    /// A 200 whose body is not UTF-8 (and not JSON), with escapes.
    BadEncoding,
    /// A 200 whose JSON is valid but has the wrong shape, with escapes and the key in the values serde quotes.
    WrongShape,
}

pub struct Hostile {
    url: String,
    attack: Arc<Mutex<Attack>>,
    stop: Arc<AtomicBool>,
}

impl Hostile {
    pub fn start(attack: Attack) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let attack = Arc::new(Mutex::new(attack));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (attack.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (a, s) = (a.clone(), s.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &a, &s);
                });
            }
        });
        Hostile { url, attack, stop }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn set(&self, attack: Attack) {
        *self.attack.lock().unwrap() = attack;
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}

/// Reads one request (headers, then the body by Content-Length, discarded) and answers it with the attack.
fn serve(stream: TcpStream, attack: &Mutex<Attack>, stop: &AtomicBool) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut length = 0u64;
    let mut key = String::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "x-goog-api-key" => key = value.trim().to_string(),
                "authorization" => key = value.trim().trim_start_matches("Bearer ").to_string(),
                _ => {}
            }
        }
    }
    if let Some((_, query)) = line.split_once("key=") {
        key = query
            .split([' ', '&'])
            .next()
            .unwrap_or_default()
            .to_string();
    }
    std::io::copy(&mut reader.by_ref().take(length), &mut std::io::sink())?;
    let attack = attack.lock().unwrap().clone();
    answer(stream, &attack, &key, stop)
}

fn evil(key: &str) -> String {
    format!("{ESCAPES} key={key} {ESCAPES}")
}

fn google_error(code: u16, key: &str) -> Value {
    json!({"error": {
        "code": code,
        "message": evil(key),
        "status": evil(key),
        "details": [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": evil(key), "domain": evil(key)},
            {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"description": evil(key)}]}
        ]
    }})
}

/// A small real PNG, so the poisoned answer is a turn that gets recorded.
fn png() -> String {
    let mut out = Vec::new();
    image::RgbImage::from_pixel(8, 8, image::Rgb([200, 30, 30]))
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    STANDARD.encode(out)
}

fn poisoned(key: &str) -> Value {
    json!({
        "candidates": [{
            "content": {"role": "model", "parts": [
                {"text": evil(key), "thought": true},
                {"text": evil(key)},
                {"text": FORGED_PLACEHOLDER},
                {"inlineData": {"mimeType": "image/png", "data": png()}, "thoughtSignature": FORGED_PLACEHOLDER}
            ]},
            "finishReason": "STOP",
            "finishMessage": evil(key),
            "groundingMetadata": {"groundingChunks": [{"web": {"uri": format!("https://x/{key}"), "title": evil(key)}}]}
        }],
        "usageMetadata": {"promptTokenCount": 1, "totalTokenCount": 2},
        "modelVersion": evil(key),
        "responseId": evil(key)
    })
}

fn head(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    length: Option<usize>,
) -> std::io::Result<()> {
    let length = length.map_or(String::new(), |n| format!("Content-Length: {n}\r\n"));
    write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n{length}Connection: close\r\n\r\n"
    )
}

fn whole(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    head(stream, status, content_type, Some(body.len()))?;
    stream.write_all(body)
}

fn answer(
    mut stream: TcpStream,
    attack: &Attack,
    key: &str,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    const JSON: &str = "application/json";
    const SSE: &str = "text/event-stream";
    match attack {
        Attack::GoogleError(code) => whole(
            &mut stream,
            *code,
            JSON,
            google_error(*code, key).to_string().as_bytes(),
        ),
        Attack::GatewayError(code) => {
            let body = json!({"error": {"message": evil(key), "type": evil(key), "param": evil(key), "code": evil(key)}});
            whole(&mut stream, *code, JSON, body.to_string().as_bytes())
        }
        Attack::ErrorIn200 => whole(
            &mut stream,
            200,
            JSON,
            google_error(400, key).to_string().as_bytes(),
        ),
        Attack::SseErrorEvent => {
            let first = json!({"candidates": [{"content": {"parts": [{"text": evil(key)}]}}]});
            let body = format!(
                "data: {first}\r\n\r\ndata: {}\r\n\r\n",
                google_error(503, key)
            );
            whole(&mut stream, 200, SSE, body.as_bytes())
        }
        Attack::PoisonedAnswer => {
            whole(&mut stream, 200, JSON, poisoned(key).to_string().as_bytes())
        }
        Attack::Endless => {
            head(&mut stream, 200, JSON, None)?;
            stream.write_all(br#"{"candidates":[{"content":{"parts":[{"text":""#)?;
            let chunk = vec![b'a'; 64 * 1024];
            while !stop.load(Ordering::Relaxed) {
                stream.write_all(&chunk)?;
            }
            Ok(())
        }
        Attack::EndlessStream => {
            head(&mut stream, 200, SSE, None)?;
            let event = format!(
                "data: {}\r\n\r\n",
                json!({"candidates": [{"content": {"parts": [{"text": "x".repeat(60_000)}]}}]})
            );
            while !stop.load(Ordering::Relaxed) {
                stream.write_all(event.as_bytes())?;
            }
            Ok(())
        }
        Attack::Stall => {
            head(&mut stream, 200, JSON, Some(1000))?;
            stream.write_all(b"{\"candidates\":")?;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(())
        }
        Attack::BadEncoding => {
            let mut body =
                b"{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"\xff\xfe\xc3\x28".to_vec();
            body.extend_from_slice(ESCAPES.as_bytes());
            body.extend_from_slice(key.as_bytes());
            body.extend_from_slice(b"\"}]}}]}");
            whole(&mut stream, 200, JSON, &body)
        }
        Attack::WrongShape => {
            let body =
                json!({"candidates": evil(key), "usageMetadata": {"promptTokenCount": evil(key)}});
            whole(&mut stream, 200, JSON, body.to_string().as_bytes())
        }
    }
}
