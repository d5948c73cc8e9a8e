//! The Batch API client against the fake server: inline jobs and jobs over the inline limit (through a Files API
//! upload), states over time, results per key (errors included), results files read line by line, cancel, list
//! and delete.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use peel::gemini::batch::{
    BatchOutput, BatchRequest, BatchResult, BatchState, INLINE_LIMIT_BYTES, NewBatch,
};
use peel::gemini::body::{BlobRef, BlobSource, Encoding, Marks};
use peel::gemini::outcome::{Outcome, classify};
use peel::gemini::types::{GenerationConfig, ImageConfig};
use peel::gemini::{Content, GeminiError, GenerateContentRequest, Part, Progress};
use serde_json::Value;

use crate::interactions::{MODEL, client, no_blobs};
use crate::support::fake_gemini::FakeGemini;

fn quiet(_: Progress<'_>) {}

fn request(prompt: &str, parts: Vec<Part>) -> GenerateContentRequest {
    let mut all = vec![Part::text(prompt)];
    all.extend(parts);
    GenerateContentRequest {
        contents: vec![Content::user(all)],
        generation_config: GenerationConfig {
            response_modalities: vec!["TEXT".into(), "IMAGE".into()],
            image_config: Some(ImageConfig {
                aspect_ratio: Some("1:1".into()),
                image_size: None,
            }),
            thinking_config: None,
        },
        tools: Vec::new(),
        system_instruction: None,
    }
}

fn requests(keys: &[&str]) -> Vec<BatchRequest> {
    keys.iter()
        .map(|key| BatchRequest {
            key: key.to_string(),
            request: request(&format!("a fox, take {key}"), Vec::new()),
        })
        .collect()
}

/// Images by hash, as peel's store hands them out while a body is sent.
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

async fn all_results(
    client: &peel::gemini::Client,
    job: &peel::gemini::batch::BatchJob,
) -> Vec<BatchResult> {
    let mut results = client.batch_results(job).await.unwrap();
    let mut all = Vec::new();
    while let Some(result) = results.next().await {
        all.push(result.unwrap());
    }
    all
}

fn has_image(result: &BatchResult) -> bool {
    match result.result.as_ref().map(|r| classify(r.clone())) {
        Ok(Outcome::Answer { content, .. }) => content.answer_images().count() == 1,
        _ => false,
    }
}

#[tokio::test]
async fn three_inline_requests_go_pending_running_succeeded_with_an_error_per_key() {
    let server = FakeGemini::start();
    // Pending for half a second, then running for half a second: room for a slow machine to see both.
    server.set_batch_delay(Duration::from_secs(1));
    server.fail_batch_request("b", 400, "The prompt could not be read.");
    let client = client(&server);
    let batch = requests(&["a", "b", "c"]);
    let submitted = client
        .create_batch(
            &NewBatch {
                model: MODEL,
                display_name: "foxes",
                requests: &batch,
                max_inline_bytes: INLINE_LIMIT_BYTES,
            },
            &Marks::new(),
            &no_blobs(),
            &quiet,
        )
        .await
        .unwrap();
    assert!(submitted.uploaded.is_none(), "small enough to go inline");
    let job = submitted.job;
    assert!(job.name.starts_with("batches/"), "{}", job.name);
    assert_eq!(job.state, BatchState::Pending);
    assert_eq!(job.display_name.as_deref(), Some("foxes"));
    let create = &server.requests()[0];
    assert_eq!(
        create.path,
        "/v1beta/models/gemini-3-pro-image:batchGenerateContent"
    );
    let inline = &create.json()["batch"]["inputConfig"]["requests"]["requests"];
    assert_eq!(inline[1]["metadata"]["key"], "b");
    assert_eq!(
        inline[1]["request"]["contents"][0]["parts"][0]["text"],
        "a fox, take b"
    );

    let seen = RefCell::new(Vec::new());
    let done = client
        .wait_for_batch(&job.name, Duration::from_millis(50), &|job| {
            let mut seen = seen.borrow_mut();
            if seen.last() != Some(&job.state) {
                seen.push(job.state.clone());
            }
        })
        .await
        .unwrap();
    assert_eq!(
        seen.into_inner(),
        [
            BatchState::Pending,
            BatchState::Running,
            BatchState::Succeeded
        ]
    );
    assert_eq!(done.stats.request_count, Some(3));
    assert_eq!(done.stats.failed_request_count, Some(1));
    assert!(matches!(done.output, Some(BatchOutput::Inline(_))));
    let results = all_results(&client, &done).await;
    let keys: Vec<&str> = results.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["a", "b", "c"]);
    assert!(has_image(&results[0]) && has_image(&results[2]));
    let error = results[1].result.as_ref().unwrap_err();
    assert_eq!(error.http_status, 400);
    assert_eq!(error.message, "The prompt could not be read.");

    let page = client.list_batches(Some(10), None).await.unwrap();
    assert_eq!(page.jobs.len(), 1);
    assert_eq!(page.jobs[0].name, job.name);
    client.delete_batch(&job.name).await.unwrap();
    assert!(server.batch_names().is_empty());
    let gone = client.get_batch(&job.name).await.unwrap_err();
    assert!(matches!(gone, GeminiError::Api(e) if e.http_status == 404));
}

#[tokio::test]
async fn a_batch_over_the_inline_limit_goes_through_an_uploaded_file_and_comes_back_as_one() {
    let server = FakeGemini::start();
    server.set_batch_delay(Duration::from_millis(50));
    server.fail_batch_request("ref-2", 429, "Resource has been exhausted.");
    let client = client(&server);
    // A reference image, read from the blob source only as the file is uploaded.
    let reference: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let blobs: Arc<dyn BlobSource> = Arc::new(Blobs(HashMap::from([(
        "ref".to_string(),
        reference.clone(),
    )])));
    // The reference as the store hands it over: a typed reference to a stored value, marked for this body.
    let mut marks = Marks::new();
    let mut with_reference = |key: &str| {
        let mut image = Part::image("image/png", String::new());
        image.refs.data = Some(BlobRef {
            hash: "ref".into(),
            encoding: Encoding::Base64,
        });
        let mut request = request("the same fox, in winter", vec![image]);
        marks.fill(&mut request.contents);
        BatchRequest {
            key: key.to_string(),
            request,
        }
    };
    let mut batch = requests(&["plain-1"]);
    batch.extend([
        with_reference("ref-1"),
        with_reference("ref-2"),
        with_reference("ref-3"),
    ]);
    let submitted = client
        .create_batch(
            &NewBatch {
                model: MODEL,
                display_name: "winter",
                requests: &batch,
                // Forced: the four requests are about 1.2 MB, well under the real limit.
                max_inline_bytes: 100_000,
            },
            &marks,
            &blobs,
            &quiet,
        )
        .await
        .unwrap();
    let uploaded = submitted.uploaded.expect("went through the Files API");
    assert_eq!(uploaded.mime_type.as_deref(), Some("application/jsonl"));

    let requests = server.requests();
    let paths: Vec<(&str, &str)> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        paths,
        [
            ("POST", "/upload/v1beta/files"),
            ("POST", "/upload/v1beta/files"),
            (
                "POST",
                "/v1beta/models/gemini-3-pro-image:batchGenerateContent"
            ),
        ]
    );
    assert_eq!(requests[0].header("x-goog-upload-command"), Some("start"));
    assert_eq!(
        requests[1].header("x-goog-upload-command"),
        Some("upload, finalize")
    );
    assert_eq!(
        requests[0].header("x-goog-upload-header-content-length"),
        Some(requests[1].body_len.to_string().as_str())
    );
    assert_eq!(
        requests[2].json()["batch"]["inputConfig"]["fileName"],
        uploaded.name.as_str()
    );
    // The uploaded file: one line per request, the image whole in each.
    let file = server.file_bytes(&uploaded.name).unwrap();
    let lines: Vec<Value> = file
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[1]["key"], "ref-1");
    let sent = lines[1]["request"]["contents"][0]["parts"][1]["inlineData"]["data"]
        .as_str()
        .unwrap();
    assert_eq!(STANDARD.decode(sent).unwrap(), reference);

    let done = client
        .wait_for_batch(&submitted.job.name, Duration::from_millis(20), &|_| {})
        .await
        .unwrap();
    let Some(BatchOutput::File(responses)) = &done.output else {
        panic!("{:?}", done.output)
    };
    let results = all_results(&client, &done).await;
    let keys: Vec<&str> = results.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["plain-1", "ref-1", "ref-2", "ref-3"]);
    assert!(has_image(&results[0]) && has_image(&results[1]) && has_image(&results[3]));
    assert_eq!(results[2].result.as_ref().unwrap_err().http_status, 429);
    // Read as it downloaded: the file came in 64 KiB pieces, its lines cut across them.
    let size = server.file_bytes(responses).unwrap().len();
    assert!(size > 3 * 64 * 1024, "{size} bytes of results");

    client.delete_file(&uploaded.name).await.unwrap();
    assert!(!server.file_names().contains(&uploaded.name));
}

#[tokio::test]
async fn a_cancelled_batch_stops_and_has_no_results() {
    let server = FakeGemini::start();
    server.set_batch_delay(Duration::from_secs(30));
    let client = client(&server);
    let batch = requests(&["a", "b"]);
    let submitted = client
        .create_batch(
            &NewBatch {
                model: MODEL,
                display_name: "slow",
                requests: &batch,
                max_inline_bytes: INLINE_LIMIT_BYTES,
            },
            &Marks::new(),
            &no_blobs(),
            &quiet,
        )
        .await
        .unwrap();
    client.cancel_batch(&submitted.job.name).await.unwrap();
    let job = client.get_batch(&submitted.job.name).await.unwrap();
    assert_eq!(job.state, BatchState::Cancelled);
    assert!(job.state.is_final());
    assert!(job.output.is_none());
    let error = match client.batch_results(&job).await {
        Ok(_) => panic!("a cancelled job has no results"),
        Err(error) => error,
    };
    assert!(error.to_string().contains("cancelled"), "{error}");
    let cancel = server
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with(":cancel"))
        .unwrap();
    assert_eq!(cancel.method, "POST");
}

/// Ctrl-C during a fetch (the face cancels the token it handed the engine) stops it between two results: what was
/// stored stays, the error says how to go on, and the next fetch stores the rest, nothing twice. A token cancelled
/// before the job is read stores nothing.
#[test]
fn a_cancelled_fetch_keeps_what_it_stored_and_the_next_one_goes_on() {
    use peel::engine::batch::{BatchSpec, Fetched};
    use peel::engine::events::Recorder;
    use peel::engine::{Cancel, Cancelled, Engine};
    use peel::settings::Settings;

    let server = FakeGemini::start();
    server.set_batch_delay(Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let mut engine = crate::engine::engine_with(&server, &dir, Settings::default());
    let file = dir.path().join("foxes.txt");
    std::fs::write(&file, "a red fox\na blue fox\na green fox\n").unwrap();
    let spec = BatchSpec {
        file,
        settings: Settings::default(),
        references: Vec::new(),
        into: None,
        max_inline_bytes: INLINE_LIMIT_BYTES,
    };
    let events = Recorder::default();
    let submitted = engine.submit_batch(&spec, &events).unwrap();
    let id = submitted[0].id.to_string();
    let status = engine
        .wait_batch(&id, &Cancel::new(), &mut |_, _| {})
        .unwrap();
    assert!(status.is_final());
    let stored_sessions = |engine: &Engine| engine.batch_requests(submitted[0].id).unwrap();

    let cancelled = Cancel::new();
    cancelled.cancel();
    let error = engine
        .fetch_batch(&id, &cancelled, &events, &mut |_| {})
        .unwrap_err();
    assert!(error.is::<Cancelled>(), "{error:#}");
    assert!(
        stored_sessions(&engine)
            .iter()
            .all(|r| r.model_id.is_none())
    );

    let cancel = Cancel::new();
    let mut seen = 0;
    let error = engine
        .fetch_batch(&id, &cancel, &events, &mut |fetched| {
            assert!(matches!(fetched, Fetched::Stored { .. }), "{fetched:?}");
            seen += 1;
            cancel.cancel();
        })
        .unwrap_err();
    assert_eq!(seen, 1);
    let message = format!("{error:#}");
    assert!(
        message.contains("interrupted (Ctrl-C)") && message.contains("goes on from there"),
        "{message}"
    );
    let rows = stored_sessions(&engine);
    assert_eq!(rows.iter().filter(|r| r.model_id.is_some()).count(), 1);

    let summary = engine
        .fetch_batch(&id, &Cancel::new(), &events, &mut |_| {})
        .unwrap();
    assert!(summary.complete, "{summary:?}");
    let rows = stored_sessions(&engine);
    assert!(rows.iter().all(|r| r.model_id.is_some()), "{rows:?}");
}
