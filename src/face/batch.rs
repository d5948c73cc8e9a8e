//! `peel batch`: submit a prompts file to the Batch API, and list, follow, wait for, fetch or cancel its jobs from
//! any terminal. As everywhere in peel, stdout carries results (a job's number on submit, image paths on fetch,
//! listings; one JSON object per job or result with `--json`) and stderr the notices, progress and failures.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};

use super::interrupt::Interrupts;
use super::out::{Mode, Out};
use super::render;
use crate::Outcome;
use crate::cli::{BatchAction, BatchArgs, Cli};
use crate::config::{self, usage_error};
use crate::engine::batch::{BatchSpec, BatchStatus, FetchSummary, Fetched, state_word};
use crate::engine::events::{Event, Events};
use crate::engine::{Cancel, Cancelled, Engine};
use crate::settings::Settings;
use crate::store::Store;
use crate::store::batches::BatchRow;
use crate::text::{self, sanitize};

/// Notices of the engine go to stderr as lines.
struct Notices<'a>(&'a Out);

impl Events for Notices<'_> {
    fn emit(&self, event: Event<'_>) {
        match event {
            Event::Notice(text) => self.0.note(&sanitize(text)),
            Event::Warning(text) => self.0.warn(&sanitize(text)),
            _ => {}
        }
    }
}

pub fn run(cli: &Cli, args: &BatchArgs) -> Result<Outcome> {
    let json = cli.json || args.json;
    let out = Out::new(Mode::OneShot, json, cli.quiet, cli.verbose);
    let cfg = config::Config::load(cli)?;
    if args.action.is_none() && args.file.is_none() {
        return Err(usage_error(
            "peel batch FILE submits a prompts file; peel batch list|status|wait|fetch|cancel ID follow its jobs",
        ));
    }
    // What the provider takes applies to every prompt's settings and references, as in a REPL run.
    crate::gemini::models::use_provider(config::provider(cli, &cfg)?);
    let backend = config::backend(cli, &cfg)?;
    let store = Store::open(&config::database_path(cli)?)?;
    let mut engine = Engine::new(store, backend, Settings::default(), &cfg.out_dir(cli))?;
    for line in engine.recover()? {
        out.warn(&line);
    }
    let mut face = BatchFace {
        engine,
        out,
        interrupts: None,
    };
    let ok = match &args.action {
        None => face.submit(cli, &cfg, args)?,
        Some(BatchAction::List) => face.list()?,
        Some(BatchAction::Status { id }) => face.status(id)?,
        Some(BatchAction::Wait { id, fetch }) => face.wait(id, *fetch)?,
        Some(BatchAction::Fetch { id }) => face.fetch(id)?,
        Some(BatchAction::Cancel { id }) => face.cancel(id)?,
    };
    Ok(if ok && !face.out.broken() {
        Outcome::Done
    } else {
        Outcome::Failed
    })
}

struct BatchFace {
    engine: Engine,
    out: Out,
    /// Ctrl-C, once a wait has taken it over (from then on it no longer ends peel by itself: it stops the wait, or
    /// the fetch after it between two results).
    interrupts: Option<Interrupts>,
}

impl BatchFace {
    fn submit(&mut self, cli: &Cli, cfg: &config::Config, args: &BatchArgs) -> Result<bool> {
        let Some(file) = &args.file else {
            return Ok(false);
        };
        let mut notices = Vec::new();
        let base = match &args.into {
            Some(into) => {
                let name = into
                    .rsplit_once('@')
                    .map_or(into.as_str(), |(name, _)| name);
                match self.engine.find_session(name)? {
                    Some(row) => config::settings_from_flags(cli, row.settings, &mut notices)?,
                    None => {
                        return Err(usage_error(format!(
                            "--into: no session named {:?}; `peel sessions` lists them",
                            sanitize(name)
                        )));
                    }
                }
            }
            None => config::new_session_settings(cli, cfg, &mut notices)?,
        };
        let settings = config::image_flags(
            base,
            args.model.as_deref(),
            args.aspect.as_deref(),
            args.size.as_deref(),
            &mut notices,
        )?;
        for notice in &notices {
            self.out.note(notice);
        }
        let spec = BatchSpec {
            file: file.clone(),
            settings,
            references: cli.images.iter().chain(&args.images).cloned().collect(),
            into: args.into.clone(),
            max_inline_bytes: cfg.batch_inline_bytes(),
        };
        let submitted = self.engine.submit_batch(&spec, &Notices(&self.out))?;
        for job in &submitted {
            if self.out.json {
                self.out.result(
                    &json!({
                        "batch": job.id, "name": job.name, "model": job.model, "requests": job.requests,
                        "input": job.input, "state": job.state,
                    })
                    .to_string(),
                );
            } else {
                self.out.result(&job.id.to_string());
            }
            self.out.note(&format!(
                "submitted batch {} ({}): {} for {}, {}, {}{}",
                job.id,
                sanitize(&job.name),
                text::count(job.requests, "prompt"),
                sanitize(&job.model),
                if job.input == "file" {
                    "uploaded as a file (over the inline limit)"
                } else {
                    "inline"
                },
                job.state,
                if args.wait {
                    String::new()
                } else {
                    format!(
                        "; peel batch wait {} follows it, peel batch fetch {} stores the results",
                        job.id, job.id
                    )
                }
            ));
        }
        if !args.wait {
            return Ok(true);
        }
        let mut ok = true;
        for job in &submitted {
            ok &= self.wait(&job.id.to_string(), true)?;
        }
        Ok(ok)
    }

    fn list(&mut self) -> Result<bool> {
        let rows = self.engine.batch_list()?;
        if self.out.json {
            for row in &rows {
                self.out.result(&row_json(row).to_string());
            }
            return Ok(true);
        }
        if rows.is_empty() {
            self.out
                .note("no batches yet; peel batch FILE submits a file of prompts");
            return Ok(true);
        }
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|row| {
                vec![
                    row.id.to_string(),
                    sanitize(row.name.as_deref().unwrap_or("-")),
                    state_word(&row.state),
                    sanitize(&row.model),
                    format!("{}", row.requests),
                    stored_column(row),
                    text::timestamp(row.created_at),
                    sanitize(&text::one_line(&row.source, 30)),
                ]
            })
            .collect();
        self.out.result(&render::table(
            &[
                "batch", "name", "state", "model", "prompts", "stored", "created", "file",
            ],
            &table,
        ));
        self.out
            .note("states as last seen; peel batch status ID asks the server");
        Ok(true)
    }

    fn status(&mut self, id: &str) -> Result<bool> {
        let status = self.engine.batch_status(id)?;
        if self.out.json {
            self.out.result(&status_json(&status).to_string());
        } else {
            self.out.result(&describe(&status));
            for request in self.engine.batch_requests(status.row.id)? {
                if let Some(error) = request.error {
                    self.out.warn(&format!(
                        "line {} ({}): {}",
                        request.line,
                        sanitize(&text::one_line(&request.prompt, 40)),
                        sanitize(&error)
                    ));
                }
            }
        }
        Ok(true)
    }

    fn wait(&mut self, id: &str, fetch: bool) -> Result<bool> {
        // Ctrl-C is taken over from the first wait on (it stops the wait, not the job); before that it ends peel as
        // usual, which loses nothing: each result is stored in a transaction of its own.
        let (cancel, request) = self
            .interrupts
            .get_or_insert_with(Interrupts::start)
            .request();
        let live = self.out.stderr_is_terminal && !self.out.quiet;
        let mut last_line = String::new();
        let out = &self.out;
        let mut on_update = |status: &BatchStatus, elapsed: Duration| {
            let line = format!(
                "batch {} · {} · {}",
                status.row.id,
                progress(status),
                elapsed_words(elapsed)
            );
            if live {
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r\x1b[K{line}");
                let _ = err.flush();
            } else {
                // One line a change, not one a poll.
                let changed = line
                    .rsplit_once(" · ")
                    .map(|(head, _)| head.to_string())
                    .unwrap_or_default();
                if changed != last_line {
                    out.note(&line);
                    last_line = changed;
                }
            }
        };
        let waited = self.engine.wait_batch(id, &cancel, &mut on_update);
        drop(request);
        if live {
            eprint!("\r\x1b[K");
        }
        let status = match waited {
            Ok(status) => status,
            Err(e) if e.is::<Cancelled>() => {
                self.out.note(&format!(
                    "stopped waiting; the job runs on: peel batch wait {id} picks it up again"
                ));
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        self.out.note(&describe(&status));
        if let Some(why) = &status.not_asked {
            self.out.warn(&format!("batch {}: {why}", status.row.id));
            return Ok(false);
        }
        if fetch && status.is_final() {
            return self.fetch(&status.row.id.to_string());
        }
        if status.is_final() {
            self.out.note(&format!(
                "peel batch fetch {} stores the results",
                status.row.id
            ));
        }
        Ok(true)
    }

    fn fetch(&mut self, id: &str) -> Result<bool> {
        // Where a wait took Ctrl-C over, it stops the fetch between two results; elsewhere it ends peel as usual.
        let (cancel, _request) = match &self.interrupts {
            Some(interrupts) => {
                let (cancel, request) = interrupts.request();
                (cancel, Some(request))
            }
            None => (Cancel::new(), None),
        };
        let out = &self.out;
        let mut each = |fetched: &Fetched| show_fetched(out, fetched);
        let summary = self
            .engine
            .fetch_batch(id, &cancel, &Notices(out), &mut each)?;
        self.out.note(&summary_line(id, &summary));
        Ok(summary.failed == 0)
    }

    fn cancel(&mut self, id: &str) -> Result<bool> {
        let status = self.engine.cancel_batch(id)?;
        self.out.note(&format!(
            "asked the server to cancel batch {}; {}",
            status.row.id,
            describe(&status)
        ));
        if status.is_final() {
            self.out.note(&format!(
                "peel batch fetch {} stores what it finished",
                status.row.id
            ));
        }
        Ok(true)
    }
}

/// The batch flags over the base settings, checked like the command line's.
fn stored_column(row: &BatchRow) -> String {
    let mut text = format!("{}", row.stored);
    if row.failed > 0 {
        text.push_str(&format!(" ({} failed)", row.failed));
    }
    if row.fetched_at.is_some() {
        text.push_str(" · fetched");
    }
    text
}

/// "running · 12 of 50 done" from the server's counts.
fn progress(status: &BatchStatus) -> String {
    let state = status.state_word();
    let Some(job) = &status.live else {
        return state;
    };
    let stats = &job.stats;
    let total = stats
        .request_count
        .unwrap_or(status.row.requests.max(0) as u64);
    let done =
        stats.successful_request_count.unwrap_or(0) + stats.failed_request_count.unwrap_or(0);
    let mut text = format!("{state} · {done} of {total} done");
    if let Some(failed) = stats.failed_request_count.filter(|n| *n > 0) {
        text.push_str(&format!(" ({failed} failed)"));
    }
    text
}

fn elapsed_words(elapsed: Duration) -> String {
    let secs = elapsed.as_secs();
    if secs >= 60 {
        format!("{} m {:02} s", secs / 60, secs % 60)
    } else {
        format!("{secs} s")
    }
}

/// "batch 3 (batches/abc): succeeded · 50 of 50 done · 50 prompts, 48 stored, 2 failed · gemini-3-pro-image".
fn describe(status: &BatchStatus) -> String {
    let row = &status.row;
    let mut text = format!(
        "batch {} ({}): {} · {}, {} stored",
        row.id,
        sanitize(row.name.as_deref().unwrap_or("not submitted")),
        progress(status),
        text::count(row.requests as usize, "prompt"),
        row.stored
    );
    if row.failed > 0 {
        text.push_str(&format!(", {} failed", row.failed));
    }
    text.push_str(&format!(" · {}", sanitize(&row.model)));
    if let Some(input) = &row.input {
        text.push_str(&format!(" · input {input}"));
    }
    if row.fetched_at.is_some() {
        text.push_str(" · fetched");
    }
    if let Some(why) = &status.not_asked {
        text.push_str(&format!(" ({})", sanitize(why)));
    }
    text
}

fn row_json(row: &BatchRow) -> Value {
    json!({
        "batch": row.id,
        "name": row.name,
        "model": row.model,
        "state": state_word(&row.state),
        "requests": row.requests,
        "stored": row.stored,
        "failed": row.failed,
        "fetched": row.fetched_at.is_some(),
        "input": row.input,
        "source": sanitize(&row.source),
        "created_ms": row.created_at,
        "stats": row.stats,
    })
}

fn status_json(status: &BatchStatus) -> Value {
    let mut value = row_json(&status.row);
    value["state"] = json!(status.state_word());
    if let Some(job) = &status.live {
        value["stats"] = serde_json::to_value(&job.stats).unwrap_or(Value::Null);
    }
    value["asked_server"] = json!(status.live.is_some());
    value
}

fn show_fetched(out: &Out, fetched: &Fetched) {
    match fetched {
        Fetched::Stored {
            key,
            line,
            prompt,
            session,
            turn,
            label,
            images,
            unwritten,
            head_stayed,
            meta,
        } => {
            if out.json {
                out.result(
                    &json!({
                        "key": key,
                        "line": line,
                        "prompt": sanitize(prompt),
                        "session": session,
                        "turn": turn,
                        "label": label,
                        "images": images
                            .iter()
                            .map(|i| super::json::image(&i.path, &i.meta))
                            .collect::<Vec<_>>(),
                        "finish_reason": meta.finish_reason,
                        "usage": meta.usage,
                        "cost": {"usd": meta.cost_usd, "estimated": true, "batch_price": true},
                        "error": Value::Null,
                    })
                    .to_string(),
                );
            } else {
                for image in images {
                    out.result(&sanitize(&image.path.display().to_string()));
                }
            }
            let mut note = format!(
                "line {line} ({}): session {}, turn {label}",
                sanitize(&text::one_line(prompt, 40)),
                sanitize(session)
            );
            if *head_stayed {
                note.push_str(&format!(
                    " (a take: the session's head stays where it was; /branch NAME @{label} starts from it)"
                ));
            }
            note.push_str(&format!(" · ~${:.3} at the batch price", meta.cost_usd));
            out.note(&note);
            for failure in unwritten {
                out.warn(&format!(
                    "line {line}: turn {label} of {} is stored, but an image file could not be written: {}; /show \
                     {label} writes it again",
                    sanitize(session),
                    sanitize(failure)
                ));
            }
        }
        Fetched::Failed {
            key,
            line,
            prompt,
            error,
        } => {
            if out.json {
                out.result(
                    &json!({
                        "key": key, "line": line, "prompt": prompt.as_deref().map(sanitize),
                        "session": Value::Null, "images": [], "error": sanitize(error),
                    })
                    .to_string(),
                );
            }
            let place = match (line, prompt) {
                (Some(line), Some(prompt)) => {
                    format!("line {line} ({})", sanitize(&text::one_line(prompt, 40)))
                }
                _ => format!("key {}", sanitize(key)),
            };
            out.warn(&format!("{place}: no image: {}", sanitize(error)));
        }
    }
}

fn summary_line(id: &str, summary: &FetchSummary) -> String {
    let mut parts = Vec::new();
    if summary.stored > 0 || (summary.failed == 0 && summary.already == 0) {
        parts.push(format!("stored {}", text::count(summary.stored, "result")));
    }
    if summary.failed > 0 {
        parts.push(format!("{} failed", summary.failed));
    }
    if summary.already > 0 {
        parts.push(format!("{} stored before, left alone", summary.already));
    }
    format!("batch {}: {}", sanitize(id), parts.join(", "))
}
