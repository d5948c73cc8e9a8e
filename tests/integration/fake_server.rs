//! Tests of the fake Gemini server itself, over real HTTP: the peel tests can only trust what it
//! checks if these pass.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::support::fake_gemini::{
    DEFAULT_API_KEY, FakeGemini, KeyPlacement, Reply, SERVER_TIME_HEADER, SKIP_SIGNATURE,
    SignatureSize, UnknownFields,
};
use crate::support::{fixture, fixture_json};

const PRO: &str = "gemini-3-pro-image";
const FLASH: &str = "gemini-3.1-flash-image";
const BANANA: &str = "gemini-2.5-flash-image";

/// A blocking HTTP client for synchronous tests: reqwest's async client on a small runtime.
struct Client {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.body))
    }

    fn header(&self, name: &str) -> &str {
        self.headers[name].to_str().unwrap()
    }

    fn error_message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

impl Client {
    fn new() -> Client {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Client {
            runtime,
            http: reqwest::Client::new(),
        }
    }

    fn send(&self, request: reqwest::RequestBuilder) -> reqwest::Result<Answer> {
        self.runtime.block_on(async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.text().await?;
            Ok(Answer {
                status,
                headers,
                body,
            })
        })
    }

    /// POSTs `body` with the default key in the header.
    fn post(&self, url: &str, body: &Value) -> Answer {
        self.send(
            self.http
                .post(url)
                .header("x-goog-api-key", DEFAULT_API_KEY)
                .json(body),
        )
        .unwrap()
    }

    fn generate(&self, server: &FakeGemini, model: &str, body: &Value) -> Answer {
        self.post(&url(server, model, "generateContent"), body)
    }
}

fn url(server: &FakeGemini, model: &str, method: &str) -> String {
    format!("{}/v1beta/models/{model}:{method}", server.url())
}

fn user(text: &str) -> Value {
    json!({"role": "user", "parts": [{"text": text}]})
}

fn request(contents: Vec<Value>) -> Value {
    json!({"contents": contents, "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]}})
}

fn with_image_config(contents: Vec<Value>, aspect: &str, size: &str) -> Value {
    json!({
        "contents": contents,
        "generationConfig": {
            "responseModalities": ["TEXT", "IMAGE"],
            "imageConfig": {"aspectRatio": aspect, "imageSize": size},
        },
    })
}

/// The model turn to resend: the candidate's content, exactly as received.
fn model_turn(response: &Value) -> Value {
    response["candidates"][0]["content"].clone()
}

fn image_part(response: &Value) -> Value {
    model_turn(response)["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|part| part.get("inlineData").is_some())
        .cloned()
        .expect("an image part")
}

fn decode(part: &Value) -> image::DynamicImage {
    let bytes = STANDARD
        .decode(part["inlineData"]["data"].as_str().unwrap())
        .unwrap();
    image::load_from_memory(&bytes).unwrap()
}

/// SSE events of a body: checks Google's framing (`data: ` lines, CRLF blank lines) on the way.
fn sse_events(body: &str) -> Vec<Value> {
    assert!(body.ends_with("\r\n\r\n"), "unterminated last event");
    body.strip_suffix("\r\n\r\n")
        .unwrap()
        .split("\r\n\r\n")
        .map(|frame| {
            let data = frame
                .strip_prefix("data: ")
                .expect("every frame is a data line");
            assert!(!data.contains('\n'), "one line per event");
            serde_json::from_str(data).unwrap()
        })
        .collect()
}

/// A model turn built from stream events the way a client must: every part, in order.
fn turn_from_events(events: &[Value]) -> Value {
    let parts: Vec<Value> = events
        .iter()
        .flat_map(|event| {
            event["candidates"][0]["content"]["parts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    json!({"role": "model", "parts": parts})
}

#[test]
fn default_reply_is_a_decodable_image_of_the_requested_size() {
    let server = FakeGemini::start();
    let client = Client::new();

    let answer = client.generate(&server, PRO, &request(vec![user("a lighthouse")]));
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer
            .header("content-type")
            .starts_with("application/json")
    );
    answer.header(SERVER_TIME_HEADER).parse::<u64>().unwrap();
    let response = answer.json();
    let candidate = &response["candidates"][0];
    assert_eq!(candidate["finishReason"], "STOP");
    assert_eq!(candidate["index"], 0);
    assert_eq!(candidate["content"]["role"], "model");
    assert_eq!(response["modelVersion"], PRO);
    assert!(response["responseId"].is_string());
    let usage = &response["usageMetadata"];
    assert_eq!(
        usage["candidatesTokensDetails"][0],
        json!({"modality": "IMAGE", "tokenCount": 1120})
    );
    assert!(usage["thoughtsTokenCount"].as_u64().unwrap() > 0);
    assert_eq!(
        usage["totalTokenCount"].as_u64().unwrap(),
        usage["promptTokenCount"].as_u64().unwrap()
            + usage["candidatesTokenCount"].as_u64().unwrap()
            + usage["thoughtsTokenCount"].as_u64().unwrap()
    );

    let part = image_part(&response);
    assert_eq!(part["inlineData"]["mimeType"], "image/jpeg");
    // Alternate unknown fields start with the first image.
    assert_eq!(part["futureField"], json!({"x": 1}));
    let image = decode(&part);
    assert_eq!((image.width(), image.height()), (1024, 1024));
    let data = part["inlineData"]["data"].as_str().unwrap();
    let kilobytes = data.len() * 3 / 4 / 1024;
    assert!((200..1024).contains(&kilobytes), "{kilobytes} KB");
    let signature = part["thoughtSignature"].as_str().unwrap();
    assert!(signature.ends_with('='), "standard base64 with padding");
    STANDARD.decode(signature).unwrap();
    assert!(signature.len().abs_diff(data.len()) <= 4);

    // Each image differs from the previous one, in bytes and in pixels.
    let wide = client.generate(
        &server,
        PRO,
        &with_image_config(vec![user("wider")], "16:9", "1K"),
    );
    let wide_part = image_part(&wide.json());
    assert!(wide_part.get("futureField").is_none());
    assert_eq!(decode(&wide_part).to_rgb8().dimensions(), (1376, 768));
    let again = client.generate(&server, PRO, &request(vec![user("again")]));
    let again_part = image_part(&again.json());
    assert_ne!(again_part["inlineData"]["data"], part["inlineData"]["data"]);
    assert_ne!(decode(&again_part).to_rgb8(), image.to_rgb8());
    assert_eq!(server.issued_images().len(), 3);
    assert_eq!(server.issued_images()[1].width, 1376);

    // Nano Banana 2's smallest size scales the 1K table by half.
    let small = client.generate(
        &server,
        FLASH,
        &with_image_config(vec![user("small")], "16:9", "512"),
    );
    assert_eq!(
        decode(&image_part(&small.json())).to_rgb8().dimensions(),
        (688, 384)
    );

    // Nano Banana answers PNG, its own sizes, and no signature.
    let png = client.generate(
        &server,
        BANANA,
        &with_image_config(vec![user("png")], "16:9", "4K"),
    );
    let png_part = image_part(&png.json());
    assert_eq!(png_part["inlineData"]["mimeType"], "image/png");
    assert!(png_part.get("thoughtSignature").is_none());
    assert_eq!(decode(&png_part).to_rgb8().dimensions(), (1344, 768));
}

#[test]
fn missing_signature_is_rejected_with_the_real_message() {
    let server = FakeGemini::start();
    let client = Client::new();
    let first = client
        .generate(&server, PRO, &request(vec![user("a cat")]))
        .json();

    let mut stripped = model_turn(&first);
    stripped["parts"][0]
        .as_object_mut()
        .unwrap()
        .remove("thoughtSignature");
    // The model turn third, as in the captured error.
    let contents = vec![user("a cat"), user("on a mat"), stripped, user("now blue")];
    let answer = client.generate(&server, PRO, &request(contents));
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.json(),
        fixture_json("error-400-missing-image-signature.json")
    );
}

#[test]
fn altered_or_borrowed_signatures_are_rejected() {
    let server = FakeGemini::start();
    let client = Client::new();
    let first = client
        .generate(&server, PRO, &request(vec![user("a cat")]))
        .json();
    let second = client
        .generate(&server, PRO, &request(vec![user("a dog")]))
        .json();

    let mut altered = model_turn(&first);
    let signature = altered["parts"][0]["thoughtSignature"]
        .as_str()
        .unwrap()
        .to_string();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    altered["parts"][0]["thoughtSignature"] = json!(format!("{flipped}{}", &signature[1..]));
    let contents = vec![user("a cat"), altered, user("now blue")];
    let answer = client.generate(&server, PRO, &request(contents));
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(answer.error_message(), "Corrupted thought signature.");

    // A real signature, but issued with another image.
    let mut borrowed = model_turn(&first);
    borrowed["parts"][0]["thoughtSignature"] = image_part(&second)["thoughtSignature"].clone();
    let contents = vec![user("a cat"), borrowed, user("now blue")];
    let answer = client.generate(&server, PRO, &request(contents));
    assert_eq!(answer.status, 400);
    assert_eq!(answer.error_message(), "Corrupted thought signature.");
}

#[test]
fn exact_round_trips_are_accepted_over_three_turns() {
    let server = FakeGemini::start();
    let client = Client::new();
    let thoughtful = |contents: Vec<Value>| {
        json!({
            "contents": contents,
            "generationConfig": {
                "responseModalities": ["TEXT", "IMAGE"],
                "thinkingConfig": {"includeThoughts": true},
            },
        })
    };

    // Turn 1: generateContent with thoughts, a text part and an unknown field.
    server.push_reply(Reply::ImageWithText("Here is your lighthouse.".into()));
    let mut contents = vec![user("a lighthouse")];
    let first = client.generate(&server, PRO, &thoughtful(contents.clone()));
    assert_eq!(first.status, 200, "{}", first.body);
    let turn = model_turn(&first.json());
    let parts = turn["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0]["thought"], true);
    assert!(
        parts[1]["thoughtSignature"].is_string(),
        "text before the image is signed"
    );
    assert_eq!(parts[2]["futureField"], json!({"x": 1}));
    contents.push(turn);

    // Turn 2: a stream; the turn is every part of every event, the empty final text included.
    contents.push(user("make the sky orange"));
    let stream = client.post(
        &format!("{}?alt=sse", url(&server, PRO, "streamGenerateContent")),
        &thoughtful(contents.clone()),
    );
    assert_eq!(stream.status, 200, "{}", stream.body);
    contents.push(turn_from_events(&sse_events(&stream.body)));

    // Turn 3: both model turns exactly as received are accepted.
    contents.push(user("add a boat"));
    let third = client.generate(&server, PRO, &thoughtful(contents.clone()));
    assert_eq!(third.status, 200, "{}", third.body);
    assert_eq!(server.issued_images().len(), 3);

    // The API also takes snake_case field names.
    let snake = serde_json::to_string(&contents)
        .unwrap()
        .replace("\"inlineData\"", "\"inline_data\"")
        .replace("\"mimeType\"", "\"mime_type\"")
        .replace("\"thoughtSignature\"", "\"thought_signature\"");
    let snake: Vec<Value> = serde_json::from_str(&snake).unwrap();
    let answer = client.generate(&server, PRO, &request(snake));
    assert_eq!(answer.status, 200, "{}", answer.body);

    // Merging streamed text parts moves the final part's signature onto other text.
    server.push_reply(Reply::TextOnly("I can't draw that.".into()));
    let refusal = client.post(
        &format!("{}?alt=sse", url(&server, PRO, "streamGenerateContent")),
        &request(vec![user("something odd")]),
    );
    let events = sse_events(&refusal.body);
    let last_part = &events.last().unwrap()["candidates"][0]["content"]["parts"][0];
    assert_eq!(last_part["text"], "");
    let merged = json!({"role": "model", "parts": [{
        "text": "I can't draw that.",
        "thoughtSignature": last_part["thoughtSignature"],
    }]});
    let contents = vec![user("something odd"), merged, user("please")];
    let answer = client.generate(&server, PRO, &request(contents));
    assert_eq!(answer.status, 400);
    assert_eq!(answer.error_message(), "Corrupted thought signature.");
}

#[test]
fn the_dummy_signature_is_accepted_for_foreign_images() {
    let server = FakeGemini::start();
    let client = Client::new();
    let data = server_made_image(&server, &client);
    let imported = json!({"role": "model", "parts": [{
        "inlineData": {"mimeType": "image/jpeg", "data": data},
        "thoughtSignature": SKIP_SIGNATURE,
    }]});
    let contents = vec![user("an old picture"), imported, user("restore it")];
    let answer = client.generate(&server, PRO, &request(contents));
    assert_eq!(answer.status, 200, "{}", answer.body);
}

/// Any real image's base64 (the fake's own, to avoid encoding one here).
fn server_made_image(server: &FakeGemini, client: &Client) -> String {
    let answer = client.generate(server, PRO, &request(vec![user("anything")]));
    image_part(&answer.json())["inlineData"]["data"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn keys_are_checked_where_the_service_expects_them() {
    let client = Client::new();
    let body = request(vec![user("a cat")]);
    let server = FakeGemini::start();
    let endpoint = url(&server, PRO, "generateContent");

    let wrong = client
        .send(
            client
                .http
                .post(&endpoint)
                .header("x-goog-api-key", "nope")
                .json(&body),
        )
        .unwrap();
    assert_eq!(wrong.status, 400);
    assert_eq!(
        wrong.error_message(),
        "API key not valid. Please pass a valid API key."
    );
    assert_eq!(
        wrong.json()["error"]["details"][0]["reason"],
        "API_KEY_INVALID"
    );

    // By default the Gemini API paths want the header: a key in the URL counts as no key.
    let in_query = format!("{endpoint}?key={DEFAULT_API_KEY}");
    let missing = client
        .send(client.http.post(&in_query).json(&body))
        .unwrap();
    assert_eq!(missing.status, 403);
    assert_eq!(missing.json()["error"]["status"], "PERMISSION_DENIED");
    assert_eq!(
        server.request_count(),
        2,
        "rejected requests are recorded too"
    );

    // A gateway that wants `?key=`.
    let gateway = FakeGemini::builder()
        .api_key("gateway-key")
        .key_placements(&[KeyPlacement::Query])
        .start();
    let gateway_url = url(&gateway, PRO, "generateContent");
    let ok = client
        .send(
            client
                .http
                .post(format!("{gateway_url}?key=gateway-key"))
                .json(&body),
        )
        .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.body);
    let header_only = client
        .send(
            client
                .http
                .post(&gateway_url)
                .header("x-goog-api-key", "gateway-key")
                .json(&body),
        )
        .unwrap();
    assert_eq!(header_only.status, 403);

    // Vertex project paths want a bearer token.
    let vertex = format!(
        "{}/v1/projects/p/locations/global/publishers/google/models/{PRO}:generateContent",
        server.url()
    );
    let bearer = client
        .send(
            client
                .http
                .post(&vertex)
                .bearer_auth(DEFAULT_API_KEY)
                .json(&body),
        )
        .unwrap();
    assert_eq!(bearer.status, 200, "{}", bearer.body);
    assert!(bearer.json()["createTime"].is_string());
    let bad_bearer = client
        .send(client.http.post(&vertex).bearer_auth("expired").json(&body))
        .unwrap();
    assert_eq!(bad_bearer.status, 401);
    assert_eq!(bad_bearer.json()["error"]["status"], "UNAUTHENTICATED");
    let no_bearer = client.post(&vertex, &body);
    assert_eq!(no_bearer.status, 401);

    // Vertex express mode takes the API key header.
    let express = format!(
        "{}/v1/publishers/google/models/{PRO}:generateContent",
        server.url()
    );
    assert_eq!(client.post(&express, &body).status, 200);
}

#[test]
fn streams_use_google_framing() {
    let server = FakeGemini::builder()
        .stream_event_delay(Duration::from_millis(5))
        .start();
    let client = Client::new();
    let body = request(vec![user("a cat")]);
    let sse_url = format!("{}?alt=sse", url(&server, PRO, "streamGenerateContent"));

    let answer = client.post(&sse_url, &body);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), "text/event-stream");
    assert!(!answer.body.contains("event:") && !answer.body.contains("[DONE]"));
    let events = sse_events(&answer.body);
    assert_eq!(events.len(), 2);
    let image = &events[0]["candidates"][0];
    assert!(image.get("finishReason").is_none());
    assert!(image["content"]["parts"][0]["thoughtSignature"].is_string());
    let last = &events[1]["candidates"][0];
    assert_eq!(last["finishReason"], "STOP");
    assert_eq!(last["content"]["parts"], json!([{"text": ""}]));
    assert!(events.iter().all(|e| e["usageMetadata"].is_object()));

    // Without alt=sse: one JSON array of the same chunks.
    let array = client.post(&url(&server, PRO, "streamGenerateContent"), &body);
    let chunks = array.json();
    assert_eq!(chunks.as_array().unwrap().len(), 2);
    assert_eq!(chunks[1]["candidates"][0]["finishReason"], "STOP");

    // Vertex wraps even its errors of such streams in an array.
    let vertex = format!(
        "{}/v1/projects/p/locations/us-central1/publishers/google/models/{PRO}:{}",
        server.url(),
        "streamGenerateContent"
    );
    let error = client.post(&vertex, &body);
    assert_eq!(error.status, 401);
    assert_eq!(error.json()[0]["error"]["code"], 401);
}

#[test]
fn scripted_replies_are_served_in_order() {
    let server = FakeGemini::start();
    let client = Client::new();
    let body = request(vec![user("a cat")]);
    server.push_reply(Reply::rate_limited());
    server.push_reply(Reply::overloaded());
    server.push_reply(Reply::gateway_error(
        402,
        "insufficient balance",
        "billing_error",
        "insufficient_quota",
    ));
    server.push_reply(Reply::RawBody(200, "{\"candidates\": [".into()));
    server.push_reply(Reply::Fixture("response-no-image.json"));
    server.push_reply(Reply::TextOnly("I can't draw that.".into()));
    server.push_reply(Reply::ImageWithText("Here it is.".into()));

    // An invalid request is refused before any scripted reply is used.
    let invalid = client.generate(&server, PRO, &request(vec![]));
    assert_eq!(invalid.status, 400);
    assert_eq!(server.pending_replies(), 7);

    let limited = client.generate(&server, PRO, &body);
    assert_eq!(limited.status, 429);
    assert_eq!(limited.json(), fixture_json("error-429-retry-info.json"));
    let overloaded = client.generate(&server, PRO, &body);
    assert_eq!(overloaded.status, 503);
    assert_eq!(overloaded.json()["error"]["status"], "UNAVAILABLE");
    let gateway = client.generate(&server, PRO, &body);
    assert_eq!(gateway.status, 402);
    assert_eq!(gateway.json()["error"]["code"], "insufficient_quota");
    let raw = client.generate(&server, PRO, &body);
    assert_eq!(raw.body, "{\"candidates\": [");
    let no_image = client.generate(&server, PRO, &body);
    assert_eq!(no_image.body, fixture("response-no-image.json"));
    let text = client.generate(&server, PRO, &body).json();
    assert_eq!(model_turn(&text)["parts"][0]["text"], "I can't draw that.");
    let with_text = client.generate(&server, PRO, &body).json();
    assert_eq!(model_turn(&with_text)["parts"][0]["text"], "Here it is.");
    assert!(model_turn(&with_text)["parts"][1]["inlineData"].is_object());
    assert_eq!(server.pending_replies(), 0);
    let default = client.generate(&server, PRO, &body);
    assert_eq!(default.status, 200);
    image_part(&default.json());

    // A stream fixture is served as a stream.
    server.push_reply(Reply::Fixture("stream-3-pro-image-signature.sse"));
    let sse = client.post(
        &format!("{}?alt=sse", url(&server, PRO, "streamGenerateContent")),
        &body,
    );
    assert_eq!(sse.header("content-type"), "text/event-stream");
    assert_eq!(sse.body, fixture("stream-3-pro-image-signature.sse"));
}

#[test]
fn delays_hangs_and_disconnects() {
    let server = FakeGemini::start();
    let client = Client::new();
    let body = request(vec![user("a cat")]);
    let endpoint = url(&server, PRO, "generateContent");

    server.push_reply(Reply::delayed(
        Duration::from_millis(200),
        Reply::TextOnly("late".into()),
    ));
    let started = Instant::now();
    let late = client.post(&endpoint, &body);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(late.header(SERVER_TIME_HEADER).parse::<u64>().unwrap() >= 200);
    assert_eq!(model_turn(&late.json())["parts"][0]["text"], "late");

    server.push_reply(Reply::Disconnect);
    let cut = client.send(
        client
            .http
            .post(&endpoint)
            .header("x-goog-api-key", DEFAULT_API_KEY)
            .json(&body),
    );
    assert!(cut.is_err(), "the body never arrives");

    server.push_reply(Reply::Hang);
    let hung = client.send(
        client
            .http
            .post(&endpoint)
            .header("x-goog-api-key", DEFAULT_API_KEY)
            .timeout(Duration::from_millis(300))
            .json(&body),
    );
    assert!(hung.err().is_some_and(|err| err.is_timeout()));
    let requests = server.wait_for_requests(3, Duration::from_secs(5));
    assert_eq!(requests.len(), 3);

    // A hung request does not keep the server from shutting down.
    let dropping = Instant::now();
    drop(server);
    assert!(dropping.elapsed() < Duration::from_secs(3));
}

#[test]
fn broken_streams() {
    let server = FakeGemini::start();
    let client = Client::new();
    let body = request(vec![user("a cat")]);
    let sse_url = format!("{}?alt=sse", url(&server, PRO, "streamGenerateContent"));

    server.push_reply(Reply::TruncatedStream);
    let truncated = sse_events(&client.post(&sse_url, &body).body);
    assert!(!truncated.is_empty());
    assert!(
        truncated
            .iter()
            .all(|event| event["candidates"][0].get("finishReason").is_none())
    );

    server.push_reply(Reply::StreamError);
    let failed = client.post(&sse_url, &body);
    assert_eq!(failed.status, 200);
    let events = sse_events(&failed.body);
    assert_eq!(events.len(), 2);
    assert!(events[0]["candidates"].is_array());
    assert_eq!(events[1]["error"]["status"], "INTERNAL");

    // The same replies on generateContent.
    server.push_reply(Reply::TruncatedStream);
    let cut = client.generate(&server, PRO, &body).json();
    assert!(cut["candidates"][0].get("finishReason").is_none());
    server.push_reply(Reply::StreamError);
    assert_eq!(client.generate(&server, PRO, &body).status, 500);
}

#[test]
fn requests_are_recorded() {
    let server = FakeGemini::start();
    let client = Client::new();
    let body = request(vec![user("a cat")]);
    let before = Instant::now();
    client.post(
        &format!("{}?alt=sse", url(&server, FLASH, "streamGenerateContent")),
        &body,
    );
    client
        .send(client.http.get(format!("{}/nowhere", server.url())))
        .unwrap();

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert_eq!(first.method, "POST");
    assert_eq!(
        first.path,
        format!("/v1beta/models/{FLASH}:streamGenerateContent")
    );
    assert_eq!(first.query.as_deref(), Some("alt=sse"));
    assert_eq!(first.header("X-Goog-Api-Key"), Some(DEFAULT_API_KEY));
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(first.json(), &body);
    assert_eq!(first.body_len, serde_json::to_vec(&body).unwrap().len());
    assert_eq!(first.contents().len(), 1);
    assert_eq!(first.model.as_deref(), Some(FLASH));
    assert!(first.stream);
    assert!(first.received_at >= before);
    assert_eq!(requests[1].method, "GET");
    assert!(requests[1].body.is_none());

    assert!(
        server
            .try_wait_for_requests(3, Duration::from_millis(50))
            .is_none()
    );
    server.clear_requests();
    assert_eq!(server.request_count(), 0);
}

#[test]
fn requests_are_validated_like_the_real_api() {
    let server = FakeGemini::builder().max_body_bytes(4096).start();
    let client = Client::new();
    let endpoint = url(&server, PRO, "generateContent");
    let invalid = |answer: Answer| {
        assert_eq!(answer.status, 400, "{}", answer.body);
        assert_eq!(answer.json()["error"]["status"], "INVALID_ARGUMENT");
        answer.error_message()
    };

    let not_json = client
        .send(
            client
                .http
                .post(&endpoint)
                .header("x-goog-api-key", DEFAULT_API_KEY)
                .body("{\"contents\": ["),
        )
        .unwrap();
    assert!(invalid(not_json).starts_with("Invalid JSON payload received."));
    let empty = client.post(&endpoint, &json!({"contents": []}));
    assert!(invalid(empty).contains("contents is not specified"));
    let model_last = request(vec![
        user("a"),
        json!({"role": "model", "parts": [{"text": "b"}]}),
    ]);
    assert!(invalid(client.post(&endpoint, &model_last)).contains("last content"));
    let model_first = request(vec![
        json!({"role": "model", "parts": [{"text": "b"}]}),
        user("a"),
    ]);
    assert!(invalid(client.post(&endpoint, &model_first)).contains("first content"));
    let bad_role = request(vec![json!({"role": "system", "parts": [{"text": "b"}]})]);
    assert_eq!(
        invalid(client.post(&endpoint, &bad_role)),
        "Please use a valid role: user, model."
    );
    let lower_k = with_image_config(vec![user("a")], "1:1", "1k");
    assert!(invalid(client.post(&endpoint, &lower_k)).contains("image size"));
    let vertex_only = json!({"contents": [user("a")], "generationConfig": {"imageConfig": {
        "imageOutputOptions": {"mimeType": "image/png"},
    }}});
    assert!(invalid(client.post(&endpoint, &vertex_only)).contains("Unknown name"));
    let minimal = json!({"contents": [user("a")], "generationConfig": {
        "thinkingConfig": {"thinkingLevel": "minimal"},
    }});
    let answer = client.post(&endpoint, &minimal);
    assert_eq!(answer.json(), fixture_json("error-400-thinking-level.json"));
    let too_big = request(vec![user(&"x".repeat(5000))]);
    assert_eq!(
        invalid(client.post(&endpoint, &too_big)),
        "Request payload size exceeds the limit: 4096 bytes."
    );

    let unknown_method = client.post(&url(&server, PRO, "countTokens"), &request(vec![]));
    assert_eq!(unknown_method.status, 404);
    let only = FakeGemini::builder().models(&[FLASH]).start();
    let retired = client.generate(
        &only,
        "gemini-3-pro-image-preview",
        &request(vec![user("a")]),
    );
    assert_eq!(retired.status, 404);
    assert!(
        retired
            .error_message()
            .starts_with("models/gemini-3-pro-image-preview is not found")
    );
}

#[test]
fn without_an_aspect_ratio_the_last_image_sets_the_shape() {
    let server = FakeGemini::builder()
        .signature_size(SignatureSize::Chars(64))
        .unknown_fields(UnknownFields::Never)
        .start();
    let client = Client::new();
    let wide = client
        .generate(
            &server,
            PRO,
            &with_image_config(vec![user("wide")], "16:9", "1K"),
        )
        .json();
    let part = image_part(&wide);
    assert!(part["thoughtSignature"].as_str().unwrap().len() < 100);
    assert!(part.get("futureField").is_none());
    let reference = json!({"role": "user", "parts": [
        {"text": "like this"},
        {"inlineData": part["inlineData"]},
    ]});
    let answer = client
        .generate(&server, PRO, &request(vec![reference]))
        .json();
    assert_eq!(
        decode(&image_part(&answer)).to_rgb8().dimensions(),
        (1376, 768)
    );
    assert_eq!(
        answer["usageMetadata"]["promptTokensDetails"][1],
        json!({"modality": "IMAGE", "tokenCount": 560})
    );
}

/// Runs the server by hand for manual testing:
/// `FAKE_GEMINI_PORT=8765 cargo test --test integration -- --ignored serve_forever --nocapture`
#[test]
#[ignore = "runs until killed"]
fn serve_forever() {
    let port = std::env::var("FAKE_GEMINI_PORT")
        .ok()
        .map(|port| port.parse().expect("FAKE_GEMINI_PORT is a port number"))
        .unwrap_or(8765);
    // FAKE_GEMINI_AUTH=header,query,bearer: where the key is accepted (default: where the real service wants it).
    let mut builder = FakeGemini::builder().port(port);
    if let Ok(list) = std::env::var("FAKE_GEMINI_AUTH") {
        let placements: Vec<KeyPlacement> = list
            .split(',')
            .map(|p| match p.trim() {
                "header" => KeyPlacement::Header,
                "query" => KeyPlacement::Query,
                "bearer" => KeyPlacement::Bearer,
                other => panic!("FAKE_GEMINI_AUTH: unknown placement {other:?}"),
            })
            .collect();
        builder = builder.key_placements(&placements);
    }
    // FAKE_GEMINI_TEXT="...": answers carry this text before the image, streamed FAKE_GEMINI_PIECE characters an
    // event (default: whole), FAKE_GEMINI_DELAY_MS apart: for looking at a streamed turn in a real terminal.
    if let Ok(text) = std::env::var("FAKE_GEMINI_TEXT") {
        let piece = std::env::var("FAKE_GEMINI_PIECE")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(text.len());
        builder = builder.default_reply(Reply::ChunkedText(text, piece));
    }
    if let Some(delay) = std::env::var("FAKE_GEMINI_DELAY_MS")
        .ok()
        .and_then(|d| d.parse().ok())
    {
        builder = builder.stream_event_delay(Duration::from_millis(delay));
    }
    let server = builder.start();
    println!(
        "fake Gemini listening on {} (key {DEFAULT_API_KEY}, {})",
        server.url(),
        std::env::var("FAKE_GEMINI_AUTH")
            .unwrap_or_else(|_| "header x-goog-api-key; Bearer on Vertex project paths".into())
    );
    loop {
        std::thread::park();
    }
}
