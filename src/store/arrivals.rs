//! Recording arrived answers: the turn of a journal entry goes into its thread in one transaction, with the entry's
//! id, so it is recorded once however many peels (or retries after a crash) try. Used for every turn, and at
//! start-up for entries an earlier peel left behind.

use anyhow::{Context, Result};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::checkpoint;
use super::contents::{Inserted, insert_turn, placed_turn};
use super::journal::{Arrival, DamagedEntry, Journal, JournalEntry};
use super::sessions::{NewSession, free_name_in, insert_branch, insert_session, set_head};
use super::{Appended, NewTurn, SessionRow, Store, now_ms};

/// Where a recorded turn went.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    /// On the session's head, as expected.
    Head,
    /// A take beside the head (a variant): stored in the session's tree, the head left where it is.
    Beside,
    /// The session's first turn: the session was created for it.
    NewSession,
    /// Another process moved the session's head meanwhile: the turn went to a new branch (named in `session`).
    Branched { from: String },
    /// The session was deleted meanwhile: the turn went to a new session (named in `session`). `parent_kept` says
    /// whether the history before it still existed (else the turn starts a thread of its own).
    Recreated { was: String, parent_kept: bool },
    /// The entry had been recorded already (by another peel, or before a crash).
    AlreadyRecorded,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub appended: Appended,
    /// The session the turn belongs to now.
    pub session: SessionRow,
    pub placement: Placement,
}

/// What a recovery did with each pending entry.
#[derive(Debug, Default)]
pub struct RecoveryReport {
    pub recorded: Vec<(JournalEntry, Recorded)>,
    /// Entries that could not be recorded now (the database is still locked or full); they stay for next time.
    pub failed: Vec<(JournalEntry, anyhow::Error)>,
    /// Entries that could not be read; kept in the journal's `damaged/` folder.
    pub damaged: Vec<DamagedEntry>,
}

impl RecoveryReport {
    pub fn is_empty(&self) -> bool {
        self.recorded.is_empty() && self.failed.is_empty() && self.damaged.is_empty()
    }

    /// One line per entry, for the person.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (entry, recorded) in &self.recorded {
            let prompt = crate::text::one_line(&entry.header.prompt, 40);
            let (turn, session) = (recorded.appended.turn, &recorded.session.name);
            lines.push(match &recorded.placement {
                Placement::AlreadyRecorded => {
                    format!("an answer kept in the journal ({prompt}) was already saved as turn {turn} of {session}")
                }
                Placement::Recreated { was, .. } => format!(
                    "recorded an answer kept in the journal ({prompt}) as turn {turn} of session {session} \
                     (session {was} was deleted meanwhile)"
                ),
                Placement::Branched { from } => format!(
                    "recorded an answer kept in the journal ({prompt}) as turn {turn} of session {session}, a \
                     branch of {from} (its head had moved)"
                ),
                Placement::Head | Placement::Beside | Placement::NewSession => format!(
                    "recorded an answer kept in the journal ({prompt}) as turn {turn} of session {session}"
                ),
            });
        }
        for (entry, error) in &self.failed {
            lines.push(format!(
                "an answer kept in {} could not be recorded yet: {error:#}; it stays there for the next peel",
                entry.path.display()
            ));
        }
        for damaged in &self.damaged {
            lines.push(format!(
                "a journal entry could not be read ({}); it is kept at {}",
                damaged.reason,
                damaged.kept_at.display()
            ));
        }
        lines
    }
}

impl Store {
    /// The journal beside this database; `None` for an in-memory database.
    pub fn journal(&self) -> Option<Journal> {
        self.path.as_deref().map(Journal::for_database)
    }

    /// Records an arrived turn in one transaction, with `entry_id` (its journal entry) so it is recorded at most
    /// once. The turn goes on the session's head if it is still `expected_head`, to a new branch if another
    /// process moved the head, to a new session if the session was not stored yet or was deleted meanwhile.
    pub fn record_arrival(&mut self, entry_id: &str, arrival: &Arrival) -> Result<Recorded> {
        self.refuse_if_read_only()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let already: Option<Option<i64>> = tx
            .query_row(
                "SELECT model_id FROM arrivals WHERE id = ?1",
                [entry_id],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(model_id) = already {
            tx.commit()?;
            let model_id = model_id.context(
                "this answer was recorded once already, and its turn has been deleted since",
            )?;
            return self.already_recorded(model_id);
        }
        let settings = arrival.meta.settings.clone().unwrap_or_default();
        type StoredSession = (i64, String, Option<i64>, String, Option<String>);
        let stored: Option<StoredSession> = match arrival.session.id {
            Some(id) => tx
                .query_row(
                    "SELECT id, name, head_id, settings, out_dir FROM sessions WHERE id = ?1 AND created_at IS ?2",
                    params![id, arrival.session.created_at],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .optional()?,
            None => None,
        };
        let parent_exists = match arrival.parent {
            Some(parent) => tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM contents WHERE id = ?1)",
                [parent],
                |r| r.get::<_, bool>(0),
            )?,
            None => true,
        };
        let parent = arrival.parent.filter(|_| parent_exists);
        let (owner, placement) = match stored {
            Some((id, ..)) if arrival.beside => (id, Placement::Beside),
            Some((id, _, head, _, _)) if head == arrival.expected_head => (id, Placement::Head),
            Some((_, name, _, stored_settings, out_dir)) => {
                let id = insert_branch(&tx, &name, &stored_settings, out_dir.as_deref(), parent)?;
                (id, Placement::Branched { from: name })
            }
            None => {
                let name = free_name_in(&tx, &arrival.session.name, '-', true)?;
                let new = NewSession {
                    out_dir: arrival.session.out_dir.as_deref(),
                    ..NewSession::empty(&settings)
                };
                let id = insert_session(&tx, &name, new)?;
                let placement = match arrival.session.id {
                    None => Placement::NewSession,
                    Some(_) => Placement::Recreated {
                        was: arrival.session.name.clone(),
                        parent_kept: parent_exists,
                    },
                };
                (id, placement)
            }
        };
        let turn = NewTurn {
            user: &arrival.user,
            model: &arrival.model,
            meta: &arrival.meta,
        };
        let inserted = insert_turn(&tx, owner, parent, turn, None, arrival.decoded.as_ref())?;
        let now = now_ms();
        if placement == Placement::Beside {
            tx.execute(
                "UPDATE sessions SET updated_at = ?2, used_at = ?2 WHERE id = ?1",
                params![owner, now],
            )?;
        } else {
            set_head(&tx, owner, inserted.model_id, now)?;
        }
        tx.execute(
            "INSERT INTO arrivals (id, model_id, recorded_at) VALUES (?1, ?2, ?3)",
            params![entry_id, inserted.model_id, now],
        )?;
        tx.commit()?;
        self.nudge_checkpoint();
        let branched = !matches!(
            placement,
            Placement::Head | Placement::Beside | Placement::NewSession
        );
        let session = self.session_by_id(owner)?;
        let appended = placed_turn(self, inserted, branched.then(|| session.clone()))?;
        Ok(Recorded {
            appended,
            session,
            placement,
        })
    }

    fn already_recorded(&self, model_id: i64) -> Result<Recorded> {
        let (user_id, session_id, depth): (i64, Option<i64>, i64) = self.conn.query_row(
            "SELECT parent_id, session_id, depth FROM contents WHERE id = ?1",
            [model_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let session_id = session_id
            .context("this answer was recorded once already, in a session deleted since")?;
        let inserted = Inserted {
            user_id,
            model_id,
            turn: depth / 2 + 1,
        };
        Ok(Recorded {
            appended: placed_turn(self, inserted, None)?,
            session: self.session_by_id(session_id)?,
            placement: Placement::AlreadyRecorded,
        })
    }

    /// Records every entry an earlier peel left in the journal (oldest first) and removes each once it is
    /// committed. An entry that cannot be recorded now stays for next time; a damaged one is set aside. Never fails
    /// as a whole because of one entry.
    pub fn recover_arrivals(&mut self) -> Result<RecoveryReport> {
        let mut report = RecoveryReport::default();
        let Some(journal) = self.journal() else {
            return Ok(report);
        };
        if self.read_only.is_some() {
            return Ok(report);
        }
        journal.finish_unfinished();
        let listing = journal.pending()?;
        report.damaged = listing.damaged;
        for entry in listing.entries {
            let arrival = match journal.read(&entry) {
                Ok(arrival) => arrival,
                Err(damaged) => {
                    report.damaged.push(damaged);
                    continue;
                }
            };
            match self.record_arrival(entry.id(), &arrival) {
                Ok(recorded) => report.recorded.push((entry, recorded)),
                Err(e) => report.failed.push((entry, e)),
            }
        }
        // The entries go once their commits are on disk (one sync for them all).
        if let Some(path) = self.path.as_deref()
            && !report.recorded.is_empty()
            && !checkpoint::sync_log(path)
        {
            return Ok(report);
        }
        let recorded = std::mem::take(&mut report.recorded);
        for (entry, done) in recorded {
            match journal.remove(&entry) {
                Ok(()) => report.recorded.push((entry, done)),
                Err(e) => report.failed.push((entry, e)),
            }
        }
        Ok(report)
    }

    /// Removes the journal entry of a turn this store has just recorded, once that commit is on disk (in the
    /// background: see [`checkpoint`]). An entry left behind is found recorded by the next peel and removed then.
    pub fn forget_entry(&self, entry: &JournalEntry) {
        match &self.checkpointer {
            Some(checkpointer) => checkpointer.forget(entry.path.clone()),
            None => {
                if let Some(path) = self.path.as_deref()
                    && checkpoint::sync_log(path)
                {
                    let _ = std::fs::remove_file(&entry.path);
                }
            }
        }
    }
}
