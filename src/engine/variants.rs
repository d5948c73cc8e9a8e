//! Variants: N takes of one prompt asked for at once, as sibling takes of the same turn (3a, 3b, 3c, 3d), each
//! with its own signatures. At most `concurrency` requests are in flight; each retries on its own (a 429 on one
//! waits for that one only); one failing does not stop the others; a cancel stops what still runs and keeps
//! every answer that arrived. Each answer is journaled as it arrives, recorded when all are in, and the first one
//! recorded becomes the head (`/pick` makes another one the head).

use std::cell::RefCell;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;

use super::events::{Event, Events};
use super::listing::ImageFile;
use super::transport::Prepared;
use super::turn::{Answer, Shown, TurnReport};
use super::{Cancel, Engine, tree};
use crate::gemini::{Progress, models};
use crate::store::journal::{Arrival, JournalEntry};
use crate::text;

/// The requests a variants turn keeps in flight at once, unless configured otherwise.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// What a variants turn brought.
#[derive(Debug)]
pub struct VariantsReport {
    pub turn: i64,
    /// The takes recorded, in label order.
    pub takes: Vec<TurnReport>,
    /// Takes that did not come (which of the N, counted from 1, and why).
    pub failures: Vec<(usize, String)>,
    /// Takes still running when the turn was cancelled (nothing of them is kept).
    pub cancelled: usize,
    /// The takes side by side, when there are two or more images.
    pub sheet: Option<ImageFile>,
}

/// What a take of a variants turn is doing, for the status line.
#[derive(Debug, Clone, PartialEq)]
enum TakeState {
    Waiting,
    Sending,
    Retrying { wait: Duration, reason: String },
    Done,
    Failed,
}

/// The estimated price of asking for `n` takes of the next prompt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub each: f64,
    pub total: f64,
}

impl Engine {
    /// How many requests a variants turn keeps in flight.
    pub fn set_concurrency(&mut self, concurrency: usize) {
        self.concurrency = concurrency.max(1);
    }

    /// The estimated price of `n` takes of the next prompt: images at the model's price for the size, and the
    /// input tokens where they are priced.
    pub fn estimate(&self, n: usize) -> Result<Estimate> {
        let settings = &self.session.settings;
        if models::info(&settings.model).is_none() {
            return Ok(Estimate {
                each: 0.0,
                total: 0.0,
            });
        }
        let next = self.measure_with(
            &self.session.user_content(""),
            self.session.head(),
            &settings.context,
        )?;
        let each = super::turn::price(
            &settings.model,
            settings.size.as_deref(),
            1,
            Some(next.tokens),
        );
        Ok(Estimate {
            each,
            total: each * n as f64,
        })
    }

    /// `/variants N PROMPT`, `-n N`: N takes of the prompt at once, as siblings of the same turn.
    pub fn variants(
        &mut self,
        prompt: &str,
        n: usize,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> Result<VariantsReport> {
        if n < 2 {
            bail!("variants are 2 or more takes at once; a single take is a plain prompt");
        }
        self.store.refuse_if_read_only()?;
        let user = self.user_content(prompt)?;
        let parent = self.session.head();
        let prepared = self.prepare(&user, parent)?;
        // Every take is recorded into this session, beside the others: it must exist before they arrive.
        let created = !self.session.is_stored();
        self.session.ensure_stored(&self.store, prompt)?;
        let first_take = self.store.takes_under(parent, self.session_id())?;
        let (arrived, mut failures, cancelled) = self.ask_takes(
            &prepared, n, first_take, &user, parent, prompt, events, cancel,
        );
        let mut recorded = Vec::new();
        for (i, (index, answered, mut arrival, entry)) in arrived.into_iter().enumerate() {
            // The first take recorded moves the head; the others sit beside it.
            arrival.beside = i > 0;
            match self.record(arrival, entry, events) {
                Ok(done) => recorded.push((done, answered)),
                Err(e) => failures.push((index, format!("{e:#}"))),
            }
        }
        self.failed_prompt = recorded.is_empty().then(|| prompt.to_string());
        if recorded.is_empty() && created {
            // Nothing came: the empty session made for the takes goes again.
            if let Some(id) = self.session_id() {
                let _ = self.store.delete_session(id);
            }
            self.session.row = None;
        }
        let mut takes = Vec::new();
        let some_take = recorded.first().map(|(done, _)| done.user_id);
        for (done, answered) in recorded {
            // Labels as they are now that every take is in: 3a, 3b, ...
            let take = self.store.take(done.user_id)?;
            let label = take.label(done.turn);
            takes.push(self.write_turn(&done, &label, answered, events));
        }
        takes.sort_by(|a, b| a.label.cmp(&b.label));
        if first_take == 1
            && let (Some(user_id), Some(first)) = (some_take, takes.first())
        {
            // The turn had one take before these: it is `3a` now, and its file follows.
            self.relabel_first_take(user_id, first.turn, events);
        }
        let sheet = match self.takes_sheet(&takes) {
            Ok(sheet) => sheet,
            Err(e) => {
                events.emit(Event::Warning(&format!("no contact sheet: {e:#}")));
                None
            }
        };
        let turn = takes.first().map_or_else(
            || self.turns().map_or(1, |t| t.len() as i64 + 1),
            |t| t.turn,
        );
        Ok(VariantsReport {
            turn,
            takes,
            failures,
            cancelled,
            sheet,
        })
    }

    /// Sends `request` `n` times, at most `self.concurrency` at once; each answer is classified and journaled as it
    /// arrives. Returns the arrived answers (which of the N, the answer, what to record, its journal entry), the
    /// failures, and how many were still running when `cancel` fired.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn ask_takes(
        &self,
        prepared: &Prepared,
        n: usize,
        first_take: usize,
        user: &crate::gemini::Content,
        parent: Option<i64>,
        prompt: &str,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> (
        Vec<(usize, Shown, Arrival, Option<JournalEntry>)>,
        Vec<(usize, String)>,
        usize,
    ) {
        let states = RefCell::new(vec![TakeState::Waiting; n]);
        let show = |states: &[TakeState]| {
            events.emit(Event::Status(&status(states)));
        };
        let set = |i: usize, state: TakeState| {
            let mut all = states.borrow_mut();
            all[i] = state;
            show(&all);
        };
        let slots = tokio::sync::Semaphore::new(self.concurrency);
        let mut arrived = Vec::new();
        let mut failures = Vec::new();
        let mut running = n;
        self.runtime.block_on(async {
            show(&states.borrow());
            let mut pending: FuturesUnordered<_> = (0..n)
                .map(|i| {
                    let (slots, set) = (&slots, &set);
                    async move {
                        let _slot = slots.acquire().await;
                        set(i, TakeState::Sending);
                        let progress = |p: Progress<'_>| {
                            if let Progress::Retrying { wait, reason, .. } = p {
                                set(i, TakeState::Retrying { wait, reason });
                            }
                        };
                        let started = Instant::now();
                        let reply = self
                            .send_prepared(prepared, user, parent, first_take + i, events, &progress)
                            .await;
                        (i, reply, started.elapsed())
                    }
                })
                .collect();
            loop {
                tokio::select! {
                    next = pending.next() => {
                        let Some((i, reply, elapsed)) = next else { break };
                        running -= 1;
                        let answered = reply.and_then(|reply| {
                            self.answered(Answer {
                                reply,
                                elapsed_ms: elapsed.as_millis() as u64,
                                streamed: false,
                            })
                        });
                        match answered {
                            Ok(answered) => {
                                // Paid for: into the journal before anything else can fail.
                                let (arrival, shown) = self.arrival(user.clone(), answered, parent, prompt, true);
                                let entry = self.journal(&arrival, events);
                                arrived.push((i + 1, shown, arrival, entry));
                                set(i, TakeState::Done);
                            }
                            Err(e) => {
                                // The cause itself: "nothing was recorded" holds for this take, not the turn.
                                failures.push((i + 1, e.root_cause().to_string()));
                                set(i, TakeState::Failed);
                            }
                        }
                    }
                    () = cancel.cancelled() => break,
                }
            }
        });
        (arrived, failures, running)
    }
}

impl Engine {
    /// The takes just made side by side, from their images in hand (`None` for fewer than two pictures).
    fn takes_sheet(&self, takes: &[TurnReport]) -> Result<Option<ImageFile>> {
        let mut cells = Vec::new();
        for take in takes {
            if let Some(image) = take.images.first() {
                cells.push((take.label.clone(), super::sheet::cell(&image.bytes)?));
            }
        }
        match (cells.len(), takes.first()) {
            (2.., Some(first)) => Ok(Some(
                self.save_sheet(&format!("{}-sheet", first.turn), &cells)?,
            )),
            _ => Ok(None),
        }
    }
}

/// "4 takes: 2 done · 1 retrying in 4 s (429 ...) · 1 sending".
fn status(states: &[TakeState]) -> String {
    let count = |f: &dyn Fn(&TakeState) -> bool| states.iter().filter(|s| f(s)).count();
    let mut parts = Vec::new();
    let done = count(&|s| *s == TakeState::Done);
    if done > 0 {
        parts.push(format!("{done} done"));
    }
    let failed = count(&|s| *s == TakeState::Failed);
    if failed > 0 {
        parts.push(format!("{failed} failed"));
    }
    if let Some(TakeState::Retrying { wait, reason }) = states
        .iter()
        .find(|s| matches!(s, TakeState::Retrying { .. }))
    {
        let retrying = count(&|s| matches!(s, TakeState::Retrying { .. }));
        parts.push(format!(
            "{retrying} retrying ({}s: {})",
            wait.as_secs_f64().round(),
            text::one_line(reason, 30)
        ));
    }
    let sending = count(&|s| *s == TakeState::Sending);
    if sending > 0 {
        parts.push(format!("{sending} in flight"));
    }
    let waiting = count(&|s| *s == TakeState::Waiting);
    if waiting > 0 {
        parts.push(format!("{waiting} waiting"));
    }
    format!("{} takes: {}", states.len(), parts.join(" · "))
}

impl Engine {
    /// `/pick 3c`: the take becomes the session's head: the next turn continues from it (its parts sent byte for
    /// byte); the other takes stay in the tree, reachable by label. Returns the take's label and how many turns after
    /// it left this session's path (still in the tree).
    pub fn pick(&mut self, label: &str) -> Result<(String, usize)> {
        self.check_still_there()?;
        let turn: super::TurnRef = label.trim_start_matches('@').parse()?;
        if turn.take.is_none() {
            bail!("/pick takes a take, such as 3b (a turn number and a letter; /tree shows them)");
        }
        let node = self.resolve_turn(turn)?;
        let path = self.turns()?;
        let left = path.iter().filter(|t| t.number > node.number).count();
        if self.session.row.is_none() {
            bail!("this session has no turns yet");
        }
        self.move_head(Some(node.model_id), Vec::new())?;
        Ok((tree::Take::label(node.take, node.number), left))
    }
}
