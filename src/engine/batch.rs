//! `peel batch`: a file of prompts run through the Gemini Batch API (half price, answered within a day), kept in
//! the database (`store/batches.rs`) so any later peel can follow, wait for, fetch or cancel the job.
//!
//! - submit: every line is checked first (`batch_input.rs`); the prompts are grouped by model (the Batch API takes
//!   one model per job) and each job is recorded before it goes out; its requests are generateContent requests whose
//!   images are read from the store as the body streams, inline when they fit the Batch API's 20 MB (API-NOTES.md),
//!   else as a JSONL file uploaded through the Files API (`gemini/batch.rs`, `gemini/files.rs`).
//! - `--into SESSION[@TURN]`: each request carries that session's history up to the turn (its head by default), and
//!   the results become takes of the next turn in that session.
//! - fetch: the results are read one at a time (the inline ones from a spooled answer, `gemini/batch_spool.rs`; a
//!   responses file line by line as it downloads), each stored in its own transaction with its key marked, so a
//!   result is stored once however often fetch runs; new sessions are named after their prompts; images are
//!   written beside the session's others. Cost is estimated at the batch price: half the standard price (Google's
//!   Batch API page: "50% of the standard cost"; API-NOTES.md).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::Value;

use super::batch_input::{self, PromptLine};
use super::events::{Event, Events};
use super::images::{self, Attachment};
use super::output;
use super::session::{Session, auto_name};
use super::{Cancel, Cancelled, Engine, TurnRef};
use crate::gemini::batch::{BatchJob, BatchOutput, BatchRequest, BatchResult, BatchState};
use crate::gemini::body::Marks;
use crate::gemini::outcome::{Outcome, classify};
use crate::gemini::signatures::MadeBy;
use crate::gemini::{Backend, Client, Content, GeminiError, Part};
use crate::settings::Settings;
use crate::store::batches::{
    BatchAnswer, BatchRecord, BatchRequestRow, BatchRow, NewBatch, NewBatchRequest,
};
use crate::store::{ImageMeta, Store, TurnMeta};

/// The Batch API's price against the standard one.
pub const BATCH_PRICE_FACTOR: f64 = 0.5;

/// What `peel batch FILE` is asked to do.
#[derive(Debug, Clone)]
pub struct BatchSpec {
    pub file: PathBuf,
    /// The settings every line starts from (flags over the config, or over the `--into` session's).
    pub settings: Settings,
    /// Reference images for every prompt (`-i`).
    pub references: Vec<PathBuf>,
    /// `SESSION` or `SESSION@TURN`.
    pub into: Option<String>,
    /// Requests bigger than this in total go through the Files API.
    pub max_inline_bytes: u64,
}

/// A job the server took.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub id: i64,
    pub name: String,
    pub model: String,
    pub requests: usize,
    /// `inline` or `file`.
    pub input: &'static str,
    pub state: String,
}

/// A job as it stands: what peel keeps, refreshed from the server when it could ask.
#[derive(Debug, Clone)]
pub struct BatchStatus {
    pub row: BatchRow,
    /// The state now (`None` when the server was not asked: no key, or never submitted).
    pub live: Option<BatchJob>,
    /// Why the server was not asked, if it was not.
    pub not_asked: Option<String>,
}

impl BatchStatus {
    /// `pending`, `running`, `succeeded`, ...
    pub fn state_word(&self) -> String {
        match &self.live {
            Some(job) => job.state.word(),
            None => state_word(&self.row.state),
        }
    }

    pub fn is_final(&self) -> bool {
        match &self.live {
            Some(job) => job.state.is_final(),
            None => BatchState::from(self.row.state.as_str()).is_final(),
        }
    }
}

/// `BATCH_STATE_RUNNING` as `running`; peel's own `SUBMITTING` as `not submitted`.
pub fn state_word(state: &str) -> String {
    if state == crate::store::batches::SUBMITTING {
        return "not submitted".into();
    }
    BatchState::from(state).word()
}

/// An image a fetched result wrote.
#[derive(Debug, Clone)]
pub struct BatchImage {
    pub path: PathBuf,
    pub meta: ImageMeta,
}

/// What became of one result of a fetch.
#[derive(Debug, Clone)]
pub enum Fetched {
    /// Stored as turn `label` of `session`.
    Stored {
        key: String,
        line: i64,
        prompt: String,
        session: String,
        turn: i64,
        label: String,
        images: Vec<BatchImage>,
        /// Images that could not be written (the turn is stored; `/show` writes them again).
        unwritten: Vec<String>,
        /// `--into` while the session had moved on: the take is stored, the head stayed.
        head_stayed: bool,
        meta: Box<TurnMeta>,
    },
    /// No answer to store: an error of the request, or a refusal.
    Failed {
        key: String,
        line: Option<i64>,
        prompt: Option<String>,
        error: String,
    },
}

/// A fetch, counted.
#[derive(Debug, Clone, Default)]
pub struct FetchSummary {
    pub stored: usize,
    pub failed: usize,
    /// Results stored by an earlier fetch, left alone.
    pub already: usize,
    /// Every request has an answer stored or a failure noted.
    pub complete: bool,
}

impl Engine {
    /// `peel batch FILE`: checks every line, then submits one job per model. Returns the jobs in the order their
    /// models first appear.
    pub fn submit_batch(
        &mut self,
        spec: &BatchSpec,
        events: &dyn Events,
    ) -> Result<Vec<Submitted>> {
        self.store.refuse_if_read_only()?;
        remote(&self.backend)?;
        let lines = batch_input::read(&spec.file)?;
        let into = self.batch_target(spec.into.as_deref())?;
        let shared: Vec<Part> = spec
            .references
            .iter()
            .map(|path| Attachment::read(path).map(|a| Attachment::part(&a)))
            .collect::<Result<_>>()?;
        // Every line checked before anything is paid for.
        let mut groups: Vec<(String, Vec<NewBatchRequest>)> = Vec::new();
        for line in &lines {
            let request = self
                .batch_request(line, spec, &shared)
                .with_context(|| format!("line {}", line.line))?;
            if let Some(notice) = request.1 {
                events.emit(Event::Notice(&format!("line {}: {notice}", line.line)));
            }
            let request = request.0;
            match groups
                .iter_mut()
                .find(|(m, _)| *m == request.settings.model)
            {
                Some((_, list)) => list.push(request),
                None => groups.push((request.settings.model.clone(), vec![request])),
            }
        }
        let source = spec.file.display().to_string();
        let stem = spec
            .file
            .file_stem()
            .map_or("prompts".into(), |s| s.to_string_lossy().into_owned());
        let mut submitted = Vec::new();
        for (model, requests) in &groups {
            let display_name: String = format!("peel {stem}").chars().take(120).collect();
            // The history as this group's model takes it (its own signatures, the dummy for other families').
            let history = match into {
                Some((_, parent)) => self.thread_for(parent, model)?,
                None => Vec::new(),
            };
            let id = self.store.create_batch(&NewBatch {
                model,
                display_name: &display_name,
                source: &source,
                into,
                requests,
            })?;
            let sent = self.send_batch(id, model, &display_name, &history, requests, spec, events);
            match sent {
                Ok(job) => submitted.push(job),
                Err(e) => {
                    let done = if submitted.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (the jobs submitted before it stay: {})",
                            submitted
                                .iter()
                                .map(|s: &Submitted| s.id.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    };
                    return Err(e.context(format!(
                        "the batch of {} for {model} was not submitted{done}",
                        crate::text::count(requests.len(), "prompt")
                    )));
                }
            }
        }
        Ok(submitted)
    }

    /// `--into SESSION[@TURN]`: the session and the content its requests continue from.
    fn batch_target(&mut self, into: Option<&str>) -> Result<Option<(i64, Option<i64>)>> {
        let Some(into) = into else {
            return Ok(None);
        };
        let (name, turn) = match into.rsplit_once('@') {
            Some((name, turn)) => (name, Some(turn.parse::<TurnRef>()?)),
            None => (into, None),
        };
        let Some(row) = self.store.session(name)? else {
            bail!("--into: no session named {name:?}; `peel sessions` lists them");
        };
        let parent = match turn {
            None => row.head_id,
            Some(turn) => {
                // Turn labels are read along that session's own path, as /branch @TURN reads them: the engine
                // looks at that session for as long as it takes.
                let that = Session::open(row.clone(), &self.out_root);
                let this = std::mem::replace(&mut self.session, that);
                let node = self.resolve_turn(turn);
                self.session = this;
                Some(node?.model_id)
            }
        };
        Ok(Some((row.id, parent)))
    }

    /// The request of one line: its prompt content (text, then the shared references, then its own) and settings.
    fn batch_request(
        &self,
        line: &PromptLine,
        spec: &BatchSpec,
        shared: &[Part],
    ) -> Result<(NewBatchRequest, Option<String>)> {
        let (settings, notice) = line.settings(&spec.settings)?;
        let mut parts = vec![Part::text(line.prompt.clone())];
        parts.extend(shared.iter().cloned());
        for path in &line.references {
            parts.push(Attachment::part(&Attachment::read(path)?));
        }
        let (max, on) = super::context::reference_limit(&settings.model);
        if parts.len() - 1 > max {
            bail!(
                "{} takes at most {}{on}, and this prompt has {}",
                settings.model,
                crate::text::count(max, "reference image"),
                parts.len() - 1
            );
        }
        Ok((
            NewBatchRequest {
                key: line.line.to_string(),
                line: line.line as i64,
                prompt: line.prompt.clone(),
                user: Content::user(parts),
                settings,
            },
            notice,
        ))
    }

    /// Sends one recorded job; its images and history stream from the store.
    #[allow(clippy::too_many_arguments)]
    fn send_batch(
        &mut self,
        id: i64,
        model: &str,
        display_name: &str,
        history: &[Content],
        requests: &[NewBatchRequest],
        spec: &BatchSpec,
        events: &dyn Events,
    ) -> Result<Submitted> {
        let client = remote(&self.backend)?;
        let users: HashMap<String, Content> =
            self.store.batch_user_contents(id)?.into_iter().collect();
        let mut marks = Marks::new();
        let mut batch = Vec::with_capacity(requests.len());
        for request in requests {
            let mut contents = history.to_vec();
            contents.push(
                users
                    .get(&request.key)
                    .cloned()
                    .context("a stored prompt is missing")?,
            );
            let mut contents = request.settings.context.apply(contents);
            marks.fill(&mut contents);
            batch.push(BatchRequest {
                key: request.key.clone(),
                request: request.settings.request(contents)?,
            });
        }
        let progress = |p: crate::gemini::Progress<'_>| {
            if let crate::gemini::Progress::Retrying { .. } = &p
                && let Some(message) = retry_line(&p)
            {
                events.emit(Event::Notice(&message));
            }
        };
        let new = crate::gemini::batch::NewBatch {
            model,
            display_name,
            requests: &batch,
            max_inline_bytes: spec.max_inline_bytes,
        };
        let submitted =
            match self
                .runtime
                .block_on(client.create_batch(&new, &marks, &self.blobs, &progress))
            {
                Ok(submitted) => submitted,
                Err(e) => {
                    // The server did not take it: nothing to follow, nothing paid.
                    self.store.forget_unsubmitted_batch(id)?;
                    return Err(anyhow::Error::new(e).context("the Batch API did not take the job"));
                }
            };
        let input = if submitted.uploaded.is_some() {
            "file"
        } else {
            "inline"
        };
        self.store
            .set_batch_submitted(
                id,
                &submitted.job.name,
                submitted.job.state.as_str(),
                input,
                submitted.uploaded.as_ref().map(|f| f.name.as_str()),
            )
            .with_context(|| {
                format!(
                    "the server took the job as {} but peel could not note it (its prompts are kept as batch {id})",
                    submitted.job.name
                )
            })?;
        Ok(Submitted {
            id,
            name: submitted.job.name,
            model: model.to_string(),
            requests: requests.len(),
            input,
            state: submitted.job.state.word(),
        })
    }

    /// The requests of a job, in the order of its prompts file.
    pub fn batch_requests(&self, id: i64) -> Result<Vec<BatchRequestRow>> {
        self.store.batch_requests(id)
    }

    /// Every job peel knows, newest first, as last seen.
    pub fn batch_list(&self) -> Result<Vec<BatchRow>> {
        self.store.batches()
    }

    /// A job by number or name, refreshed from the server when there is a key to ask with.
    pub fn batch_status(&mut self, id: &str) -> Result<BatchStatus> {
        let row = self.find_batch(id)?;
        let Some(name) = row.name.clone() else {
            return Ok(BatchStatus {
                row,
                live: None,
                not_asked: Some(
                    "it was never submitted (the submission failed or was cut off)".into(),
                ),
            });
        };
        let client = match &self.backend {
            Backend::Remote(client) => client,
            Backend::NoKey(why) => {
                return Ok(BatchStatus {
                    row,
                    live: None,
                    not_asked: Some(format!("as last seen; the server was not asked: {why}")),
                });
            }
            Backend::Offline => {
                return Ok(BatchStatus {
                    row,
                    live: None,
                    not_asked: Some("as last seen; --offline asks no server".into()),
                });
            }
        };
        let job = self.runtime.block_on(client.get_batch_spooled(&name))?.job;
        self.store
            .set_batch_state(row.id, job.state.as_str(), &stats_json(&job))?;
        Ok(BatchStatus {
            row: self.find_batch(id)?,
            live: Some(job),
            not_asked: None,
        })
    }

    /// Waits until the job is done, telling `on_update` each state seen; `cancel` stops the wait (the job runs on)
    /// with [`Cancelled`]. Polls every second at first, less often as the wait grows (at most every 30 s).
    pub fn wait_batch(
        &mut self,
        id: &str,
        cancel: &Cancel,
        on_update: &mut dyn FnMut(&BatchStatus, Duration),
    ) -> Result<BatchStatus> {
        let started = Instant::now();
        let mut every = Duration::from_secs(1);
        loop {
            let status = self.batch_status(id)?;
            on_update(&status, started.elapsed());
            if status.is_final() || status.live.is_none() {
                return Ok(status);
            }
            let stopped = self.runtime.block_on(async {
                tokio::select! {
                    () = tokio::time::sleep(every) => false,
                    () = cancel.cancelled() => true,
                }
            });
            if stopped {
                return Err(Cancelled.into());
            }
            every = (every.mul_f64(1.5)).min(Duration::from_secs(30));
        }
    }

    /// `peel batch cancel ID`: asks the server to stop the job; what it finished can still be fetched.
    pub fn cancel_batch(&mut self, id: &str) -> Result<BatchStatus> {
        let row = self.find_batch(id)?;
        let Some(name) = row.name.clone() else {
            bail!(
                "batch {} was never submitted: there is nothing to cancel",
                row.id
            );
        };
        let client = remote(&self.backend)?;
        self.runtime
            .block_on(client.cancel_batch(&name))
            .context("the Batch API did not cancel the job")?;
        self.batch_status(id)
    }

    /// `peel batch fetch ID`: stores every result not stored yet, telling `each` about each (stored or failed) as
    /// it goes. Results stored before are skipped.
    pub fn fetch_batch(
        &mut self,
        id: &str,
        cancel: &Cancel,
        events: &dyn Events,
        each: &mut dyn FnMut(&Fetched),
    ) -> Result<FetchSummary> {
        self.store.refuse_if_read_only()?;
        let row = self.find_batch(id)?;
        let Some(name) = row.name.clone() else {
            bail!("batch {} was never submitted: it has no results", row.id);
        };
        let client = remote(&self.backend)?;
        let mut spooled = self
            .runtime
            .block_on(async {
                tokio::select! {
                    spooled = client.get_batch_spooled(&name) => Ok(spooled),
                    () = cancel.cancelled() => Err(Cancelled),
                }
            })?
            .context("the job could not be read")?;
        let job = spooled.job.clone();
        self.store
            .set_batch_state(row.id, job.state.as_str(), &stats_json(&job))?;
        if !job.state.is_final() {
            bail!(
                "batch {} is still {}; `peel batch wait {}` waits for it",
                row.id,
                job.state.word(),
                row.id
            );
        }
        if job.output.is_none() {
            let why = job
                .error
                .as_ref()
                .map_or(String::new(), |e| format!(": {}", e.message));
            bail!(
                "batch {} ended {} with no results{why}",
                row.id,
                job.state.word()
            );
        }
        let requests: HashMap<String, BatchRequestRow> = self
            .store
            .batch_requests(row.id)?
            .into_iter()
            .map(|r| (r.key.clone(), r))
            .collect();
        let mut fetcher = Fetcher {
            store: &mut self.store,
            batch: row.id,
            name: &name,
            requests: &requests,
            out_root: &self.out_root,
            made_by: self.backend.made_by(),
            summary: FetchSummary::default(),
            relabel: Vec::new(),
            error: None,
            each,
        };
        match &job.output {
            Some(BatchOutput::File(_)) => {
                let runtime = &self.runtime;
                runtime.block_on(async {
                    let mut results = match client.batch_results(&job).await {
                        Ok(results) => results,
                        Err(e) => {
                            fetcher.error = Some(anyhow::Error::new(e));
                            return;
                        }
                    };
                    loop {
                        let result = tokio::select! {
                            result = results.next() => result,
                            () = cancel.cancelled() => {
                                fetcher.error = Some(anyhow!("interrupted (Ctrl-C)"));
                                break;
                            }
                        };
                        let Some(result) = result else { break };
                        if !fetcher.take(result) {
                            break;
                        }
                    }
                });
            }
            Some(BatchOutput::Inline(_)) => {
                spooled.inline(&mut |result| {
                    if cancel.is_cancelled() {
                        fetcher.error = Some(anyhow!("interrupted (Ctrl-C)"));
                        return false;
                    }
                    fetcher.take(result)
                })?;
            }
            None => {}
        }
        let Fetcher {
            summary,
            relabel,
            error,
            ..
        } = fetcher;
        let mut summary = summary;
        for (user_id, turn) in relabel {
            self.relabel_first_take(user_id, turn, events);
        }
        if let Some(error) = error {
            return Err(error.context(format!(
                "fetching batch {} stopped; what was stored stays, and `peel batch fetch {}` goes on from there",
                row.id, row.id
            )));
        }
        let rows = self.store.batch_requests(row.id)?;
        summary.complete = rows
            .iter()
            .all(|r| r.model_id.is_some() || r.error.is_some());
        if summary.complete && row.fetched_at.is_none() {
            self.store.set_batch_fetched(row.id)?;
            // The uploaded requests file has done its work (the Files API would keep it 48 hours).
            if let Some(file) = &row.uploaded_file
                && let Err(e) = self.runtime.block_on(client.delete_file(file))
            {
                events.emit(Event::Warning(&format!(
                    "the uploaded requests file {file} could not be deleted ({e}); the Files API removes it after \
                     48 hours"
                )));
            }
        }
        Ok(summary)
    }

    fn find_batch(&self, id: &str) -> Result<BatchRow> {
        self.store.batch(id)?.with_context(|| {
            format!(
                "no batch {:?}; `peel batch list` shows the batches peel knows",
                crate::untrusted::sanitize(id)
            )
        })
    }
}

/// Stores results as they come.
struct Fetcher<'a> {
    store: &'a mut Store,
    batch: i64,
    name: &'a str,
    requests: &'a HashMap<String, BatchRequestRow>,
    out_root: &'a Path,
    /// Who answers the batch's requests: whose thought signatures the stored answers carry.
    made_by: MadeBy,
    summary: FetchSummary,
    /// Turns that got their second take: their first take's files are renamed after.
    relabel: Vec<(i64, i64)>,
    /// What stopped the fetch, if something did.
    error: Option<anyhow::Error>,
    each: &'a mut dyn FnMut(&Fetched),
}

impl Fetcher<'_> {
    /// One result; false when the fetch must stop (the database failed).
    fn take(&mut self, result: Result<BatchResult, GeminiError>) -> bool {
        let result = match result {
            Ok(result) => result,
            Err(e) => {
                // A line that is not a result: the others can still be read.
                self.summary.failed += 1;
                (self.each)(&Fetched::Failed {
                    key: String::new(),
                    line: None,
                    prompt: None,
                    error: format!("a result that cannot be read: {e}"),
                });
                return true;
            }
        };
        let requests = self.requests;
        let Some(request) = requests.get(&result.key) else {
            self.summary.failed += 1;
            (self.each)(&Fetched::Failed {
                key: result.key.clone(),
                line: None,
                prompt: None,
                error: "a result for a key this job does not have".into(),
            });
            return true;
        };
        if request.model_id.is_some() {
            self.summary.already += 1;
            return true;
        }
        match self.store_one(request, result.result) {
            Ok(Some(fetched)) => {
                match &fetched {
                    Fetched::Stored { .. } => self.summary.stored += 1,
                    Fetched::Failed { .. } => self.summary.failed += 1,
                }
                (self.each)(&fetched);
                true
            }
            Ok(None) => {
                self.summary.already += 1;
                true
            }
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }

    fn store_one(
        &mut self,
        request: &BatchRequestRow,
        result: Result<crate::gemini::GenerateContentResponse, crate::gemini::ApiError>,
    ) -> Result<Option<Fetched>> {
        let (key, line, prompt) = (request.key.as_str(), request.line, request.prompt.as_str());
        let failed = |error: String| Fetched::Failed {
            key: key.to_string(),
            line: Some(line),
            prompt: Some(prompt.to_string()),
            error,
        };
        let response = match result {
            Ok(response) => response,
            Err(error) => {
                let message = format!("{} {}", error.http_status, error.message);
                self.store
                    .set_batch_request_error(self.batch, key, &message)?;
                return Ok(Some(failed(message)));
            }
        };
        let (model_version, response_id) =
            (response.model_version.clone(), response.response_id.clone());
        let (content, finish_reason, usage, sources) = match classify(response) {
            Outcome::Answer {
                content,
                finish_reason,
                usage,
                sources,
            } => (content, finish_reason, usage, sources),
            Outcome::Refused(refusal) => {
                let message = refusal.explain().trim_end_matches('.').to_string();
                self.store
                    .set_batch_request_error(self.batch, key, &message)?;
                return Ok(Some(failed(message)));
            }
        };
        let settings = request.settings.clone();
        let (stored, decoded) = images::decode_answer(&content);
        let meta = TurnMeta {
            cost_usd: super::turn::cost(
                &settings.model,
                settings.size.as_deref(),
                decoded.len(),
                usage.as_ref(),
            ) * BATCH_PRICE_FACTOR,
            settings: Some(settings),
            finish_reason,
            usage,
            elapsed_ms: 0,
            model_version,
            response_id,
            images: decoded.iter().map(|i| i.meta.clone()).collect(),
            request_bytes: 0,
            sources,
            interaction_id: None,
            batch: Some(self.name.to_string()),
            made_by: Some(self.made_by.clone()),
        };
        let recorded = self.store.record_batch_result(
            self.batch,
            key,
            BatchAnswer {
                content: &content,
                decoded: stored.as_ref(),
                meta: &meta,
            },
            &auto_name(prompt),
            self.out_root,
        )?;
        let BatchRecord::Stored(stored) = recorded else {
            return Ok(None);
        };
        let stored = *stored;
        let label = stored.take.label(stored.turn);
        if stored.take.of == 2 && stored.take.index == 1 {
            self.relabel.push((stored.user_id, stored.turn));
        }
        let root = stored
            .session
            .out_dir
            .clone()
            .unwrap_or_else(|| self.out_root.to_path_buf());
        let mut written = Vec::new();
        let mut unwritten = Vec::new();
        for (index, image) in decoded.into_iter().enumerate() {
            let path = output::output_path(&root, &stored.session.name, &label, index, image.ext);
            match output::write_new(&path, &image.bytes) {
                Ok(path) => written.push(BatchImage {
                    path,
                    meta: image.meta,
                }),
                Err(e) => unwritten.push(format!("{e:#}")),
            }
        }
        Ok(Some(Fetched::Stored {
            key: key.to_string(),
            line,
            prompt: prompt.to_string(),
            session: stored.session.name,
            turn: stored.turn,
            label,
            images: written,
            unwritten,
            head_stayed: !stored.head_moved,
            meta: Box::new(meta),
        }))
    }
}

fn remote(backend: &Backend) -> Result<&Client> {
    match backend {
        Backend::Remote(client) => Ok(client),
        Backend::NoKey(why) => bail!("{why}"),
        Backend::Offline => bail!("the Batch API needs the Gemini API: --offline has no batches"),
    }
}

fn stats_json(job: &BatchJob) -> Value {
    serde_json::to_value(&job.stats).unwrap_or(Value::Null)
}

fn retry_line(progress: &crate::gemini::Progress<'_>) -> Option<String> {
    let crate::gemini::Progress::Retrying {
        wait,
        attempt,
        attempts,
        reason,
    } = progress
    else {
        return None;
    };
    Event::Retrying {
        wait: *wait,
        attempt: *attempt,
        attempts: *attempts,
        reason,
    }
    .retry_message()
}
