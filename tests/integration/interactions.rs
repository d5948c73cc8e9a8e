//! The Interactions API client against the fake server: chains of `previous_interaction_id` that send only what
//! is new, a lost conversation as a typed error with the whole thread as the way back, streaming, `uri` delivery,
//! and a thread moving between the Interactions API and generateContent.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use peel::gemini::auth::{Auth, Credential};
use peel::gemini::body::{BlobSource, Marks, NoBlobs};
use peel::gemini::interactions::{
    self, Block, CreateInteraction, Delivery, GenerationConfig, ImageResponseFormat, Interaction,
    InteractionStatus, Step,
};
use peel::gemini::outcome::Outcome;
use peel::gemini::retry::RetryPolicy;
use peel::gemini::types::{GenerationConfig as GenerateConfig, ImageConfig};
use peel::gemini::{
    Api, Client, ClientConfig, Content, GeminiError, GenerateContentRequest, Part, Progress,
};
use peel::secret::Secret;

use crate::support::fake_gemini::{FakeGemini, Reply, SignatureSize};

pub const MODEL: &str = "gemini-3-pro-image";

/// A client of `server` with its key and quick retries.
pub fn client(server: &FakeGemini) -> Client {
    client_for(server.url(), server.api_key())
}

fn client_for(base_url: &str, key: &str) -> Client {
    Client::new(ClientConfig {
        base_url: base_url.to_string(),
        api: Api::Gemini,
        credential: Credential::Key {
            key: Secret::new(key),
            auth: Auth::Header,
        },
        connect_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(60),
        retry: RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(10),
            ..RetryPolicy::default()
        },
        max_response_bytes: 64 << 20,
        idle_timeout: Duration::from_secs(30),
        max_request_bytes: 100 * 1000 * 1000,
        vertex_image_config: Default::default(),
    })
    .unwrap()
}

pub fn no_blobs() -> Arc<dyn BlobSource> {
    Arc::new(NoBlobs)
}

fn quiet(_: Progress<'_>) {}

/// A create with no stored values to read and no progress to report.
async fn create(client: &Client, request: &CreateInteraction) -> Result<Interaction, GeminiError> {
    client
        .create_interaction(request, &Marks::new(), &no_blobs(), &quiet)
        .await
}

/// A turn: `prompt` after `previous`, asking for a 16:9 image.
fn turn(prompt: &str, previous: Option<&str>) -> CreateInteraction {
    CreateInteraction {
        model: MODEL.into(),
        input: vec![Step::UserInput {
            content: vec![Block::text(prompt)],
        }],
        previous_interaction_id: previous.map(str::to_string),
        response_format: Some(ImageResponseFormat {
            aspect_ratio: Some("16:9".into()),
            ..ImageResponseFormat::new()
        }),
        ..CreateInteraction::default()
    }
}

fn answer_of(interaction: &Interaction) -> Content {
    match interactions::classify(interaction).unwrap() {
        Outcome::Answer { content, .. } => content,
        Outcome::Refused(refusal) => panic!("refused: {}", refusal.explain()),
    }
}

fn image_count(content: &Content) -> usize {
    content.answer_images().count()
}

#[tokio::test]
async fn a_three_turn_chain_sends_only_the_new_input_each_turn() {
    let server = FakeGemini::builder()
        .signature_size(SignatureSize::LikeImage)
        .start();
    let client = client(&server);
    let mut previous: Option<String> = None;
    let mut answers = Vec::new();
    let mut ids = Vec::new();
    for prompt in ["a red fox at dawn", "make it night", "add falling snow"] {
        let interaction = create(&client, &turn(prompt, previous.as_deref()))
            .await
            .unwrap();
        assert_eq!(interaction.status, InteractionStatus::Completed);
        let content = answer_of(&interaction);
        assert_eq!(image_count(&content), 1);
        assert!(
            content.parts.iter().any(|p| p.thought_signature.is_some()),
            "the signature is kept: {content:?}"
        );
        previous = Some(interaction.id.clone());
        ids.push(interaction.id.clone());
        answers.push(content);
    }

    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    let answer_bytes: usize = answers
        .iter()
        .flat_map(|c| &c.parts)
        .map(|p| {
            p.inline_data.as_ref().map_or(0, |i| i.data.len())
                + p.thought_signature.as_ref().map_or(0, String::len)
        })
        .sum();
    for (i, request) in requests.iter().enumerate() {
        assert_eq!(request.path, "/v1beta/interactions");
        assert_eq!(request.header("api-revision"), Some("2026-05-20"));
        let input = request.json()["input"].as_array().unwrap();
        assert_eq!(input.len(), 1, "turn {}: only the new user input", i + 1);
        assert_eq!(input[0]["type"], "user_input");
        // No image or signature of the thread goes out again: a few hundred bytes a turn.
        assert!(
            request.body_len < 1000,
            "turn {} sent {} bytes",
            i + 1,
            request.body_len
        );
        println!(
            "turn {}: {} bytes sent (the thread's images and signatures so far: {} bytes)",
            i + 1,
            request.body_len,
            answer_bytes
        );
    }
    assert_eq!(requests[0].json().get("previous_interaction_id"), None);
    // Each later turn continues the one before it.
    assert_eq!(
        requests[1].json()["previous_interaction_id"],
        ids[0].as_str()
    );
    assert_eq!(
        requests[2].json()["previous_interaction_id"],
        ids[1].as_str()
    );
    assert_ne!(ids[0], ids[1]);
    assert_eq!(server.stored_interactions().len(), 3);

    // The stored answers are what generateContent would have given: the thread goes on there, signatures accepted.
    let mut contents = Vec::new();
    for (prompt, answer) in ["a red fox at dawn", "make it night", "add falling snow"]
        .iter()
        .zip(&answers)
    {
        contents.push(Content::user(vec![Part::text(*prompt)]));
        contents.push(answer.clone());
    }
    contents.push(Content::user(vec![Part::text("and a moon")]));
    let request = GenerateContentRequest {
        contents,
        generation_config: GenerateConfig {
            response_modalities: vec!["TEXT".into(), "IMAGE".into()],
            image_config: Some(ImageConfig::default()),
            thinking_config: None,
        },
        tools: Vec::new(),
        system_instruction: None,
    };
    let response = client
        .generate(MODEL, &request, &no_blobs(), false, &quiet)
        .await
        .unwrap();
    assert_eq!(
        response.candidates[0].finish_reason.as_deref(),
        Some("STOP")
    );
}

#[tokio::test]
async fn a_lost_conversation_is_a_typed_error_and_the_whole_thread_brings_it_back() {
    let server = FakeGemini::start();
    let client = client(&server);
    let first = create(&client, &turn("a red fox", None)).await.unwrap();
    server.expire_interaction(&first.id);
    let error = create(&client, &turn("make it night", Some(&first.id)))
        .await
        .unwrap_err();
    match &error {
        GeminiError::InteractionGone { id, error } => {
            assert_eq!(id, &first.id);
            assert_eq!(error.http_status, 404);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        server.requests().len(),
        2,
        "a lost conversation is not retried"
    );

    // The way back: the whole thread from the local store, as steps, with its signatures.
    let thread = [
        Content::user(vec![Part::text("a red fox")]),
        answer_of(&first),
        Content::user(vec![Part::text("make it night")]),
    ];
    let mut whole = turn("", None);
    whole.input = interactions::thread_steps(&thread).unwrap();
    let again = create(&client, &whole).await.unwrap();
    assert_eq!(image_count(&answer_of(&again)), 1);

    // The same thread with a signature altered is refused, as generateContent refuses it.
    let mut tampered = thread.clone();
    for part in &mut tampered[1].parts {
        if let Some(signature) = &mut part.thought_signature {
            signature.replace_range(0..4, "AAAA");
        }
    }
    whole.input = interactions::thread_steps(&tampered).unwrap();
    let refused = create(&client, &whole).await.unwrap_err();
    assert!(
        matches!(&refused, GeminiError::Api(e) if e.http_status == 400 && e.message.contains("signature")),
        "{refused:?}"
    );

    // Nothing can continue from an interaction that was not stored, nor from one past its time.
    let mut unstored = turn("a blue fox", None);
    unstored.store = Some(false);
    let unstored = create(&client, &unstored).await.unwrap();
    let error = create(&client, &turn("again", Some(&unstored.id)))
        .await
        .unwrap_err();
    assert!(
        matches!(error, GeminiError::InteractionGone { .. }),
        "{error:?}"
    );
    // A zero time to live: the interaction is past its time as soon as it is stored.
    server.set_interaction_ttl(Duration::ZERO);
    let short = create(&client, &turn("a green fox", None)).await.unwrap();
    let error = create(&client, &turn("again", Some(&short.id)))
        .await
        .unwrap_err();
    assert!(
        matches!(error, GeminiError::InteractionGone { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_streamed_interaction_assembles_into_what_get_returns() {
    let server = FakeGemini::builder()
        .stream_event_delay(Duration::from_millis(2))
        .start();
    let client = client(&server);
    server.push_reply(Reply::ImageWithText("Here is your fox.".into()));
    let mut request = turn("a red fox", None);
    request.stream = Some(true);
    request.generation_config = Some(GenerationConfig {
        thinking_summaries: Some("auto".into()),
        ..GenerationConfig::default()
    });
    let shown = RefCell::new(Vec::new());
    let progress = |p: Progress<'_>| match p {
        Progress::Thought(t) => shown.borrow_mut().push(format!("thought: {}", &t[..20])),
        Progress::Text(t) => shown.borrow_mut().push(format!("text: {t}")),
        _ => {}
    };
    let streamed = client
        .create_interaction(&request, &Marks::new(), &no_blobs(), &progress)
        .await
        .unwrap();
    let shown = shown.into_inner();
    assert_eq!(shown[0], "thought: **Planning the image");
    assert_eq!(
        shown[1..].concat(),
        "text: Here is text: your fox.",
        "text as it arrived, in pieces"
    );
    assert_eq!(
        server.requests()[0].header("accept"),
        Some("text/event-stream")
    );

    let content = answer_of(&streamed);
    assert!(content.thought_text().starts_with("**Planning the image**"));
    assert_eq!(content.answer_text(), "Here is your fox.");
    assert_eq!(image_count(&content), 1);
    let image = &server.issued_images()[0];
    assert_eq!(content.answer_images().next().unwrap().data, image.data);

    let stored = client.get_interaction(&streamed.id, false).await.unwrap();
    assert_eq!(stored.steps, streamed.steps);
    assert_eq!(answer_of(&stored), content);
    let with_input = client.get_interaction(&streamed.id, true).await.unwrap();
    assert!(matches!(with_input.steps[0], Step::UserInput { .. }));
    assert_eq!(
        answer_of(&with_input),
        content,
        "the input is not part of the answer"
    );

    client.delete_interaction(&streamed.id).await.unwrap();
    let error = client
        .get_interaction(&streamed.id, false)
        .await
        .unwrap_err();
    assert!(matches!(error, GeminiError::Api(e) if e.http_status == 404));
}

#[tokio::test]
async fn a_cut_stream_is_incomplete_and_an_error_event_is_retried() {
    let server = FakeGemini::start();
    let client = client(&server);
    let mut request = turn("a red fox", None);
    request.stream = Some(true);
    server.push_reply(Reply::TruncatedStream);
    let error = create(&client, &request).await.unwrap_err();
    assert!(matches!(error, GeminiError::Incomplete(_)), "{error:?}");
    // An overload before the answer and an internal error inside the stream are both passing.
    server.push_reply(Reply::overloaded());
    server.push_reply(Reply::StreamError);
    let retries = RefCell::new(0);
    let progress = |p: Progress<'_>| {
        if matches!(p, Progress::Retrying { .. }) {
            *retries.borrow_mut() += 1;
        }
    };
    let interaction = client
        .create_interaction(&request, &Marks::new(), &no_blobs(), &progress)
        .await
        .unwrap();
    assert_eq!(image_count(&answer_of(&interaction)), 1);
    assert_eq!(retries.into_inner(), 2);
}

#[tokio::test]
async fn uri_delivery_is_fetched_within_a_size_bound() {
    let server = FakeGemini::start();
    let client = client(&server);
    let mut request = turn("a red fox", None);
    request.response_format.as_mut().unwrap().delivery = Some(Delivery::Uri);
    let mut interaction = create(&client, &request).await.unwrap();
    let uri = interaction
        .steps
        .iter()
        .find_map(|step| match step {
            Step::ModelOutput { content, .. } => content.iter().find_map(|b| match b {
                Block::Image {
                    uri: Some(uri),
                    data: None,
                    ..
                } => Some(uri.clone()),
                _ => None,
            }),
            _ => None,
        })
        .expect("an image by uri");
    assert!(uri.starts_with(server.url()), "{uri}");
    assert!(matches!(
        interactions::classify(&interaction),
        Err(GeminiError::Malformed(_))
    ));

    let too_small = client.download_image(&uri, 1000).await.unwrap_err();
    assert!(too_small.to_string().contains("larger than"), "{too_small}");
    client
        .inline_uri_images(&mut interaction, interactions::DEFAULT_MAX_IMAGE_BYTES)
        .await
        .unwrap();
    let content = answer_of(&interaction);
    let image = content.answer_images().next().unwrap();
    let issued = &server.issued_images()[0];
    assert_eq!(STANDARD.decode(&image.data).unwrap(), issued.bytes());
    assert_eq!(image.mime_type, "image/jpeg");
    // The download carried the key: the image is on the configured server.
    let download = server
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with(":download"))
        .unwrap();
    assert_eq!(download.header("x-goog-api-key"), Some(server.api_key()));
    assert_eq!(download.query.as_deref(), Some("alt=media"));
}

#[tokio::test]
async fn what_the_model_does_not_take_is_refused_like_on_generate_content() {
    let server = FakeGemini::start();
    let client = client(&server);
    let mut request = turn("a red fox", None);
    request.response_format.as_mut().unwrap().image_size = Some("512".into());
    let error = create(&client, &request).await.unwrap_err();
    assert!(
        matches!(&error, GeminiError::Api(e) if e.http_status == 400 && e.message.contains("512")),
        "{error:?}"
    );
    let mut request = turn("a red fox", None);
    request.extra.insert("previous_id".into(), "x".into());
    let error = create(&client, &request).await.unwrap_err();
    assert!(
        error.to_string().contains("Unknown name \"previous_id\""),
        "{error}"
    );
}

/// A server on loopback that answers every request with `answer` and counts requests carrying the key.
async fn tiny_server(
    answer: impl Fn() -> axum::response::Response + Clone + Send + Sync + 'static,
    keys_seen: Arc<std::sync::atomic::AtomicUsize>,
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let answer = answer.clone();
        let keys_seen = keys_seen.clone();
        async move {
            if headers.contains_key("x-goog-api-key") {
                keys_seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            answer()
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn the_key_never_follows_a_redirect_to_another_server() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let elsewhere_keys = Arc::new(AtomicUsize::new(0));
    let elsewhere = tiny_server(
        || axum::response::IntoResponse::into_response("image bytes"),
        elsewhere_keys.clone(),
    )
    .await;
    let target = format!("{elsewhere}/image.jpg");
    let home_keys = Arc::new(AtomicUsize::new(0));
    let home = tiny_server(
        move || {
            axum::response::IntoResponse::into_response((
                axum::http::StatusCode::FOUND,
                [(axum::http::header::LOCATION, target.clone())],
            ))
        },
        home_keys.clone(),
    )
    .await;
    // A client whose configured server is `home`: the key goes there, and nowhere else.
    let config_client = client_for(&home, "the-key");
    let error = config_client
        .download_image(
            &format!("{home}/v1beta/files/x:download?alt=media"),
            1 << 20,
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("not https"), "{error}");
    let error = config_client
        .generate(
            MODEL,
            &GenerateContentRequest {
                contents: vec![Content::user(vec![Part::text("a fox")])],
                generation_config: GenerateConfig::default(),
                tools: Vec::new(),
                system_instruction: None,
            },
            &no_blobs(),
            false,
            &quiet,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, GeminiError::Api(e) if e.http_status == 302),
        "not followed"
    );
    assert_eq!(
        home_keys.load(Ordering::SeqCst),
        2,
        "the key went to the configured server"
    );
    assert_eq!(
        elsewhere_keys.load(Ordering::SeqCst),
        0,
        "and never elsewhere"
    );
}
