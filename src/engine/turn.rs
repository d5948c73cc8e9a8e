//! A turn: the request built from the stored history (and checked against the limits), sent, the answer
//! recorded in one transaction, and its images written beside the session's earlier ones. Where a turn is
//! decided (`build_request`), recorded (`record`) and written (`write_images`), each in one place.

use std::cell::Cell;
use std::time::Instant;

use anyhow::{Result, bail};

use super::context;
use super::events::{Event, Events};
use super::images::{self, AnswerImage};
use super::listing::ImageFile;
use super::output;
use super::session::{self, Session};
use super::transport::{Prepared, Reply};
use super::{Cancel, Cancelled, Engine};
use crate::gemini::outcome::{Outcome, Refusal};
use crate::gemini::types::UsageMetadata;
use crate::gemini::{Content, GenerateContentRequest, Progress, models};
use crate::store::journal::{self, Arrival, ArrivalSession, JournalEntry};
use crate::store::{Decoded, Placement, SessionRow, Take, TurnMeta};

/// The model refused or returned nothing usable: nothing was recorded, and the attachments were kept.
#[derive(Debug, thiserror::Error)]
#[error("{explanation}{}", kept_note(*kept))]
pub struct Refused {
    /// `blockReason` or `finishReason` (`IMAGE_SAFETY`, `NO_IMAGE`, ...).
    pub reason: String,
    /// The reason in words, with the server's message (raw: a face sanitises it).
    pub explanation: String,
    pub usage: Option<UsageMetadata>,
    /// How many attachments are kept for the next try.
    pub kept: usize,
}

fn kept_note(kept: usize) -> String {
    match kept {
        0 => String::new(),
        1 => "; the attachment is kept for the next try".to_string(),
        n => format!("; the {n} attachments are kept for the next try"),
    }
}

/// A finished turn, recorded.
#[derive(Debug, Clone)]
pub struct TurnReport {
    /// The session it was recorded in (another one than asked when another peel moved the head meanwhile).
    pub session: String,
    pub turn: i64,
    pub label: String,
    /// The answer's text and thought summaries, as received (a face sanitises them).
    pub text: String,
    pub thoughts: String,
    /// Whether the text and thoughts were already reported as `Event::Text`/`Event::Thought` while streaming.
    pub streamed: bool,
    pub images: Vec<ImageFile>,
    /// Answer images that are not decodable images (kept in the history, not written).
    pub undecodable: usize,
    /// Images that could not be written (the turn is recorded all the same; `/show` writes them again).
    pub unwritten: Vec<String>,
    pub meta: TurnMeta,
}

/// What came back and how the request went.
pub(super) struct Answer {
    pub(super) reply: Reply,
    pub(super) elapsed_ms: u64,
    pub(super) streamed: bool,
}

/// An answer worth keeping: the model turn exactly as received, what is recorded about it, its images decoded.
pub(super) struct Answered {
    pub(super) content: Content,
    pub(super) meta: TurnMeta,
    pub(super) decoded: Vec<AnswerImage>,
    /// The answer's parts decoded for the store, from which `decoded` was taken: each answer is decoded once.
    pub(super) stored: Option<Decoded>,
    pub(super) streamed: bool,
}

/// What a face is shown of an answer whose content went to the store (the content itself is not kept twice).
pub(super) struct Shown {
    text: String,
    thoughts: String,
    undecodable: usize,
    decoded: Vec<AnswerImage>,
    streamed: bool,
    meta: TurnMeta,
}

/// A turn recorded in the store.
pub(super) struct Recorded {
    pub(super) user_id: i64,
    pub(super) turn: i64,
    pub(super) take: Take,
}

impl Engine {
    /// A prompt: the session's history plus this prompt and the attachments, sent; the answer recorded and its
    /// images written.
    pub fn prompt(
        &mut self,
        prompt: &str,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> Result<TurnReport> {
        let user = self.user_content(prompt)?;
        let head = self.session.head();
        let result = self.send_turn(user, head, prompt, events, cancel);
        // Only a turn that never got its answer is worth sending again as it was: an answer that arrived is kept
        // (recorded, or in the journal), and sending the prompt again would pay for it twice.
        self.failed_prompt = match &result {
            Err(e) if !e.is::<NotRecorded>() => Some(prompt.to_string()),
            _ => None,
        };
        result
    }

    /// The user content for `prompt`: its text, then the attachments and the images it names inline (`@2`).
    pub(super) fn user_content(&mut self, prompt: &str) -> Result<Content> {
        if prompt.trim().is_empty() && self.session.attachments.is_empty() {
            bail!("an empty prompt: say what to draw or change");
        }
        self.attach_inline_references(prompt)?;
        Ok(self.session.user_content(prompt))
    }

    /// Sends the history up to `parent` plus `user` and records the answer under `parent`: normally the head, or
    /// the content before the last turn for another take.
    pub(super) fn send_turn(
        &mut self,
        user: Content,
        parent: Option<i64>,
        prompt: &str,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> Result<TurnReport> {
        // A read-only database could not keep the answer: refuse before anything is paid for.
        self.store.refuse_if_read_only()?;
        let prepared = self.prepare(&user, parent)?;
        let take = self.store.takes_under(parent, self.session_id())?;
        let answer = self.ask(&prepared, &user, parent, take, events, cancel)?;
        let answered = self.answered(answer)?;
        let (arrival, shown) = self.arrival(user, answered, parent, prompt, false);
        // One after the other, not side by side: on a nearly full disk the journal must get the room first.
        let entry = self.journal(&arrival, events);
        let recorded = self.record(arrival, entry, events)?;
        let label = recorded.take.label(recorded.turn);
        let report = self.write_turn(&recorded, &label, shown, events);
        if recorded.take.of == 2 {
            self.relabel_first_take(recorded.user_id, recorded.turn, events);
        }
        Ok(report)
    }

    /// What an answer is: a turn to keep (its meta worked out), or a refusal to explain.
    pub(super) fn answered(&self, answer: Answer) -> Result<Answered> {
        let Reply {
            outcome,
            model_version,
            response_id,
            interaction_id,
            request_bytes,
        } = answer.reply;
        let (content, finish_reason, usage, sources) = match outcome {
            Outcome::Answer {
                content,
                finish_reason,
                usage,
                sources,
            } => (content, finish_reason, usage, sources),
            Outcome::Refused(refusal) => return Err(self.refused(refusal).into()),
        };
        let (stored, decoded) = images::decode_answer(&content);
        let settings = &self.session.settings;
        let meta = TurnMeta {
            settings: Some(settings.clone()),
            finish_reason,
            cost_usd: cost(
                &settings.model,
                settings.size.as_deref(),
                decoded.len(),
                usage.as_ref(),
            ),
            usage,
            elapsed_ms: answer.elapsed_ms,
            model_version,
            response_id,
            images: decoded.iter().map(|i| i.meta.clone()).collect(),
            request_bytes,
            sources,
            interaction_id,
            batch: None,
            // Which backend answered: whose thought signatures this answer carries, for later turns.
            made_by: Some(self.backend.made_by()),
        };
        Ok(Answered {
            content,
            meta,
            decoded,
            stored,
            streamed: answer.streamed,
        })
    }

    /// A recorded turn's images written and everything about it gathered for a face.
    pub(super) fn write_turn(
        &self,
        recorded: &Recorded,
        label: &str,
        shown: Shown,
        events: &dyn Events,
    ) -> TurnReport {
        let (images, unwritten) = self.write_images(label, shown.decoded, events);
        TurnReport {
            session: self.session.name().to_string(),
            turn: recorded.turn,
            label: label.to_string(),
            undecodable: shown.undecodable,
            text: shown.text,
            thoughts: shown.thoughts,
            streamed: shown.streamed,
            images,
            unwritten,
            meta: shown.meta,
        }
    }

    /// The stored thread up to `parent` as a request to `model` carries it, large values by reference: the dummy
    /// signature stands in where an answer came from another model family or source (the store is not changed).
    pub(super) fn thread_for(&self, parent: Option<i64>, model: &str) -> Result<Vec<Content>> {
        let target = self.backend.signature_family(model);
        self.store.contents_for(parent, &target)
    }

    /// The request for `user` after the history up to `parent`, as the context policy trims it, checked against
    /// the limits before anything is sent. Large values stay in the store as placeholders until the body streams.
    pub(super) fn build_request(
        &self,
        user: &Content,
        parent: Option<i64>,
    ) -> Result<(GenerateContentRequest, context::Measure)> {
        let settings = &self.session.settings;
        let thread = self.thread_for(parent, &settings.model)?;
        let request = context::request_after(settings, thread, user, &settings.context)?;
        context::check_references(settings, &request.contents)?;
        let size = context::measure(&request, &settings.model, &self.blobs)?;
        if let Some(over) = size.over(&self.limits()) {
            bail!("not sent: {over}; {}", self.advice(user, parent)?);
        }
        Ok((request, size))
    }

    /// Sends the request until it answers, fails, or `cancel` fires, reporting progress as events. `take` is which
    /// take of its turn this will be (the offline stand-in draws each take differently).
    fn ask(
        &self,
        prepared: &Prepared,
        user: &Content,
        parent: Option<i64>,
        take: usize,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> Result<Answer> {
        // Whether this attempt reported any of its answer yet: a retry after that voids what was shown.
        let shown = Cell::new(false);
        let streamed = Cell::new(false);
        let progress = |p: Progress<'_>| match p {
            Progress::Thought(text) => {
                shown.set(true);
                streamed.set(true);
                events.emit(Event::Thought(text));
            }
            Progress::Text(text) => {
                shown.set(true);
                streamed.set(true);
                events.emit(Event::Text(text));
            }
            Progress::Sending { url, bytes } => events.emit(Event::Sending {
                url,
                bytes: bytes as u64,
            }),
            Progress::Retrying {
                wait,
                attempt,
                attempts,
                reason,
            } => {
                if shown.replace(false) {
                    events.emit(Event::AttemptRestarted);
                }
                events.emit(Event::Retrying {
                    wait,
                    attempt,
                    attempts,
                    reason: &reason,
                });
            }
        };
        let started = Instant::now();
        let answer = self.runtime.block_on(async {
            tokio::select! {
                reply = self.send_prepared(prepared, user, parent, take, events, &progress) => Some(reply),
                () = cancel.cancelled() => None,
            }
        });
        let Some(reply) = answer else {
            return Err(Cancelled.into());
        };
        Ok(Answer {
            reply: reply?,
            elapsed_ms: started.elapsed().as_millis() as u64,
            streamed: streamed.get(),
        })
    }

    fn refused(&self, refusal: Refusal) -> Refused {
        Refused {
            explanation: refusal.explain().trim_end_matches('.').to_string(),
            reason: refusal.reason,
            usage: refusal.usage,
            kept: self.session.attachments.len(),
        }
    }

    /// What the journal and the store keep of an arrived answer (the prompt and the answer move there), and what
    /// a face will be shown of it.
    pub(super) fn arrival(
        &self,
        user: Content,
        answered: Answered,
        parent: Option<i64>,
        prompt: &str,
        beside: bool,
    ) -> (Arrival, Shown) {
        let content = answered.content;
        let shown = Shown {
            text: content.answer_text(),
            thoughts: content.thought_text(),
            undecodable: content.answer_images().count() - answered.decoded.len(),
            decoded: answered.decoded,
            streamed: answered.streamed,
            meta: answered.meta.clone(),
        };
        let row = self.session.row.as_ref();
        let arrival = Arrival {
            session: ArrivalSession {
                id: row.map(|r| r.id),
                name: match (row, &self.session.wanted_name) {
                    (Some(row), _) => row.name.clone(),
                    (None, Some(name)) => name.clone(),
                    (None, None) => session::auto_name(prompt),
                },
                created_at: row.map(|r| r.created_at),
                out_dir: Some(self.session.out_root.clone()),
            },
            expected_head: self.session.head(),
            parent,
            user,
            model: content,
            meta: answered.meta,
            beside,
            decoded: answered.stored,
        };
        (arrival, shown)
    }

    /// The answer is paid for: before anything that can fail, it is written durably to the journal beside the
    /// database (`None` when that is impossible, with a warning: the store is then its only keeper).
    pub(super) fn journal(&self, arrival: &Arrival, events: &dyn Events) -> Option<JournalEntry> {
        let journal = self.store.journal()?;
        match journal.write(arrival) {
            Ok(entry) => Some(entry),
            Err(e) => {
                events.emit(Event::Warning(&format!(
                    "the answer could not be kept in the journal: {e:#}"
                )));
                None
            }
        }
    }

    /// Records a journaled answer in one transaction (on the head; beside it for a variant; on a new branch when
    /// another process moved the head; in a new session when this one was deleted meanwhile) and moves this
    /// session along; then the journal entry goes. If recording fails, the entry stays, the error says where, and
    /// the next peel records it.
    pub(super) fn record(
        &mut self,
        arrival: Arrival,
        entry: Option<JournalEntry>,
        events: &dyn Events,
    ) -> Result<Recorded> {
        let entry_id = entry
            .as_ref()
            .map_or_else(journal::new_entry_id, |e| e.id().to_string());
        let recorded = match self.store.record_arrival(&entry_id, &arrival) {
            Ok(recorded) => recorded,
            Err(e) => {
                let why = self.store.explain(&e).unwrap_or_else(|| format!("{e:#}"));
                return Err(NotRecorded(match &entry {
                    Some(entry) => format!(
                        "the answer arrived but could not be saved: {why}; it is kept in {} and the next peel on \
                         this database records it (run peel again once the cause is fixed)",
                        entry.path.display()
                    ),
                    None => format!("the answer arrived but could not be saved: {why}"),
                })
                .into());
            }
        };
        if let Some(entry) = &entry {
            self.store.forget_entry(entry);
        }
        let appended = recorded.appended;
        self.session.attachments.clear();
        match recorded.placement {
            Placement::Head => {
                if let Some(row) = self.session.row.as_mut() {
                    row.head_id = Some(appended.model_id);
                    row.redo.clear();
                }
            }
            Placement::Beside => {}
            Placement::NewSession | Placement::AlreadyRecorded => {
                self.session.row = Some(recorded.session);
            }
            Placement::Branched { .. } => {
                events.emit(Event::Warning(&format!(
                    "another peel moved session {} while this turn ran; the turn was saved as session {}, now open",
                    self.session.name(),
                    recorded.session.name
                )));
                self.reopen(recorded.session);
            }
            Placement::Recreated { was, parent_kept } => {
                events.emit(Event::Warning(&format!(
                    "session {was} was deleted by another peel while this turn ran; the turn was saved as session \
                     {}{}, now open",
                    recorded.session.name,
                    if parent_kept {
                        ""
                    } else {
                        " (without the deleted history)"
                    }
                )));
                self.reopen(recorded.session);
            }
        }
        Ok(Recorded {
            user_id: appended.user_id,
            turn: appended.turn,
            take: appended.take,
        })
    }

    /// Opens `row` (where another process's move put this turn) in this session's place, keeping its settings.
    fn reopen(&mut self, row: SessionRow) {
        let settings = std::mem::take(&mut self.session.settings);
        self.session = Session::open(row, &self.out_root);
        self.session.settings = settings;
    }

    /// Writes a recorded turn's images into the session's folder. A failure here loses nothing (the turn is in
    /// the database and `/show` writes the file again), so it is reported, not raised.
    pub(super) fn write_images(
        &self,
        label: &str,
        decoded: Vec<AnswerImage>,
        events: &dyn Events,
    ) -> (Vec<ImageFile>, Vec<String>) {
        let mut saved = Vec::new();
        let mut unwritten = Vec::new();
        for (index, image) in decoded.into_iter().enumerate() {
            let path = output::output_path(
                &self.session.out_root,
                self.session.name(),
                label,
                index,
                image.ext,
            );
            match output::write_new(&path, &image.bytes) {
                Ok(written) => {
                    if written != path {
                        events.emit(Event::Warning(&format!(
                            "{} was already there (not written by peel for this turn) and is left alone; the image \
                             is {}",
                            path.display(),
                            written.display()
                        )));
                    }
                    saved.push(ImageFile {
                        path: written,
                        meta: image.meta,
                        bytes: image.bytes,
                    });
                }
                Err(e) => unwritten.push(format!("{e:#}")),
            }
        }
        (saved, unwritten)
    }

    /// A turn that just got its second take: its first take is now `3a`, no longer `3`. Its files, where peel
    /// wrote them under the old name, follow.
    pub(super) fn relabel_first_take(&self, user_id: i64, number: i64, events: &dyn Events) {
        let renamed = (|| -> Result<Vec<String>> {
            let Some((first, maker)) = self.store.first_take(user_id)? else {
                return Ok(Vec::new());
            };
            let content = Content {
                role: Some("model".into()),
                parts: self.store.parts(&first)?,
                extra: Default::default(),
            };
            let mut dirs = vec![self.image_dir()];
            if let Some(maker) = maker {
                let root = maker
                    .out_dir
                    .clone()
                    .unwrap_or_else(|| self.out_root.clone());
                dirs.push(output::session_dir(&root, &maker.name));
            }
            dirs.dedup();
            let (old, new) = (
                Take { index: 0, of: 1 }.label(number),
                Take { index: 0, of: 2 }.label(number),
            );
            let mut renamed = Vec::new();
            for (index, image) in images::answer_images(&content).iter().enumerate() {
                for dir in &dirs {
                    let from = dir.join(output::file_name(&old, index, image.ext));
                    let to = dir.join(output::file_name(&new, index, image.ext));
                    if output::rename_ours(&from, &to, &image.bytes)? {
                        renamed.push(format!(
                            "{} is now {}",
                            output::file_name(&old, index, image.ext),
                            output::file_name(&new, index, image.ext)
                        ));
                    }
                }
            }
            Ok(renamed)
        })();
        match renamed {
            Ok(mut renamed) if !renamed.is_empty() => {
                renamed.dedup();
                events.emit(Event::Notice(&format!(
                    "turn {number} has two takes now, {}a and {}b: {}",
                    number,
                    number,
                    renamed.join(", ")
                )))
            }
            Ok(_) => {}
            Err(e) => events.emit(Event::Warning(&format!(
                "the first take of turn {number} keeps its old file name: {e:#}"
            ))),
        }
    }
}

/// The answer arrived but could not be recorded: it is in the journal (or nowhere, if that failed too), and the
/// message says so. A script stops here: later lines would be paid for with nothing to build on.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotRecorded(pub String);

/// The estimated price of a turn: its images at the model's per-image price, plus input tokens where the price of
/// those is known.
pub(super) fn cost(
    model: &str,
    size: Option<&str>,
    images: usize,
    usage: Option<&UsageMetadata>,
) -> f64 {
    price(
        model,
        size,
        images,
        usage.and_then(|u| u.prompt_token_count),
    )
}

/// `images` output images of `model` at `size` and `input_tokens` of input, at the table's prices (0 for a model
/// peel does not know; input is free where the table gives no input price).
pub(super) fn price(
    model: &str,
    size: Option<&str>,
    images: usize,
    input_tokens: Option<u64>,
) -> f64 {
    let Some(info) = models::info(model) else {
        return 0.0;
    };
    let input = match (info.input_price_per_m, input_tokens) {
        (Some(price), Some(tokens)) => price * tokens as f64 / 1e6,
        _ => 0.0,
    };
    images as f64 * info.image_price(size) + input
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_counts_images_and_known_input_prices() {
        let usage = UsageMetadata {
            prompt_token_count: Some(1_000_000),
            ..UsageMetadata::default()
        };
        assert!((cost("gemini-3-pro-image", Some("4K"), 1, Some(&usage)) - 2.24).abs() < 1e-9);
        assert!((cost("gemini-2.5-flash-image", None, 2, None) - 0.078).abs() < 1e-9);
        assert_eq!(cost("unknown-model", None, 1, None), 0.0);
    }

    #[test]
    fn refusals_say_what_is_kept() {
        let refused = Refused {
            reason: "IMAGE_SAFETY".into(),
            explanation: "the image was filtered out for safety (IMAGE_SAFETY): blocked images"
                .into(),
            usage: None,
            kept: 1,
        };
        assert_eq!(
            refused.to_string(),
            "the image was filtered out for safety (IMAGE_SAFETY): blocked images; the attachment is kept for \
             the next try"
        );
    }
}
