//! Edit threads as a tree: /branch, /undo, /redo, /retry, /tree, /delete. Nothing here copies a content or a blob:
//! a branch is a row, undo and redo move a pointer, a retry adds a sibling.

use std::collections::{HashMap, HashSet};

use anyhow::{Context as _, Result, bail};

use super::events::{Event, Events};
use super::session::{self, Session};
use super::tree::{self, Heads, TurnNode};
use super::turn::TurnReport;
use super::{Cancel, Engine};
use crate::gemini::Content;
use crate::text;

/// A reference to a turn of this thread: `3` (turn 3 on this session's path) or `3b` (a take of turn 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnRef {
    pub number: i64,
    /// `None`: the take on this session's path; `Some(0)` for `a`, `Some(1)` for `b`, ...
    pub take: Option<usize>,
}

impl std::str::FromStr for TurnRef {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<TurnRef> {
        let text = text.trim_start_matches('@');
        let digits = text.trim_end_matches(|c: char| c.is_ascii_lowercase());
        let letters = &text[digits.len()..];
        let number: i64 = match digits.parse() {
            Ok(n) if n >= 1 => n,
            _ => bail!(
                "{text:?} is not a turn: use a number (3), or a number and a take letter (3b)"
            ),
        };
        let take = match letters.as_bytes() {
            [] => None,
            [letter] => Some(usize::from(letter - b'a')),
            _ => bail!("{text:?} is not a turn: one take letter at most (3b)"),
        };
        Ok(TurnRef { number, take })
    }
}

/// A new branch.
#[derive(Debug, Clone)]
pub struct Branched {
    pub name: String,
    pub from: String,
    /// The label of the turn it branched at (`None` for an empty branch).
    pub at: Option<String>,
}

/// A turn `/undo` stepped back from.
#[derive(Debug, Clone)]
pub struct Undone {
    pub label: String,
    pub prompt: String,
}

/// `/delete`.
#[derive(Debug, Clone)]
pub struct Deleted {
    pub freed_bytes: u64,
    /// The session deleted was the one being edited: a new empty one took its place.
    pub was_current: bool,
}

/// The family drawn by `/tree`.
#[derive(Debug, Clone)]
pub struct Family {
    pub nodes: Vec<TurnNode>,
    pub heads: Heads,
    /// This session's turns (model ids).
    pub path: HashSet<i64>,
}

impl Engine {
    /// `/branch [NAME] [@TURN]`: a new session sharing this one's history up to its head (or turn TURN), with
    /// this session's settings, switched to at once.
    pub fn branch(&mut self, name: Option<String>, at: Option<TurnRef>) -> Result<Branched> {
        self.check_still_there()?;
        let Some(from) = self.session.row.clone() else {
            bail!("this session has no turns yet: there is nothing to branch from");
        };
        let (head, label) = match at {
            None => {
                let label = self.turns()?.last().map(|t| t.label());
                (from.head_id, label)
            }
            Some(turn) => {
                let node = self.resolve_turn(turn)?;
                (Some(node.model_id), Some(node.label()))
            }
        };
        let name = match name {
            Some(name) => {
                session::validate_name(&name)?;
                name
            }
            None => self.store.free_branch_name(&from.name)?,
        };
        let row = self
            .store
            .branch_session(&from, &name, head, &self.session.settings)?;
        let mut session = Session::open(row, &self.out_root);
        session.attachments = std::mem::take(&mut self.session.attachments);
        self.session = session;
        self.failed_prompt = None;
        Ok(Branched {
            name,
            from: from.name,
            at: label,
        })
    }

    /// `/undo`: the head steps back one turn; the turn stays stored and `/redo` brings it back.
    pub fn undo(&mut self) -> Result<Undone> {
        self.check_still_there()?;
        let turns = self.turns()?;
        let Some(last) = turns.last() else {
            bail!("nothing to undo: this session has no turns");
        };
        let row = self
            .session
            .row
            .clone()
            .context("the session is not stored")?;
        let back = turns.len().checked_sub(2).map(|i| turns[i].model.id);
        let mut redo = row.redo.clone();
        redo.push(last.model.id);
        self.move_head(back, redo)?;
        Ok(Undone {
            label: last.label(),
            prompt: last.user.visible_text(),
        })
    }

    /// `/redo`: forward again to the turn the last `/undo` stepped back from.
    pub fn redo(&mut self) -> Result<Undone> {
        self.check_still_there()?;
        let Some(row) = self.session.row.clone() else {
            bail!("nothing to redo: /redo steps forward again after /undo");
        };
        let mut redo = row.redo.clone();
        let Some(next) = redo.pop() else {
            bail!(
                "nothing to redo: /redo steps forward again after /undo, until a new turn is sent"
            );
        };
        self.move_head(Some(next), redo)?;
        let turns = self.turns()?;
        let turn = turns
            .last()
            .context("the turn /redo brought back is gone")?;
        Ok(Undone {
            label: turn.label(),
            prompt: turn.user.visible_text(),
        })
    }

    pub(super) fn move_head(&mut self, head: Option<i64>, redo: Vec<i64>) -> Result<()> {
        let row = self
            .session
            .row
            .as_ref()
            .context("the session is not stored")?;
        if !self.store.move_head(row.id, row.head_id, head, &redo)? {
            let name = row.name.clone();
            self.session.row = Some(self.store.session_by_id(row.id)?);
            bail!(
                "another peel changed session {name} meanwhile; reloaded it as it is now (see /history)"
            );
        }
        let row = self
            .session
            .row
            .as_mut()
            .context("the session is not stored")?;
        row.head_id = head;
        row.redo = redo;
        Ok(())
    }

    /// `/retry`: the last prompt again. After a failed turn it is sent as it was (with its attachments); otherwise
    /// the last turn is asked for another take, and the earlier take stays reachable (`/tree`, `/branch @3b`).
    pub fn retry(&mut self, events: &dyn Events, cancel: &Cancel) -> Result<TurnReport> {
        if let Some(prompt) = self.failed_prompt.clone() {
            events.emit(Event::Notice(&format!(
                "sending again: {}",
                text::one_line(&prompt, 50)
            )));
            return self.prompt(&prompt, events, cancel);
        }
        let chain = self.store.chain(self.session.head())?;
        let [.., user, _model] = chain.as_slice() else {
            bail!("nothing to retry: this session has no turns yet");
        };
        let content = Content::user(self.store.parts(user)?);
        let prompt = user.visible_text();
        events.emit(Event::Notice(&format!(
            "another take of turn {}: {}",
            user.turn(),
            text::one_line(&prompt, 50)
        )));
        self.send_turn(content, user.parent_id, &prompt, events, cancel)
    }

    /// Every turn of this thread's family, with the sessions at their heads.
    fn family_nodes(&self) -> Result<(Vec<TurnNode>, Heads)> {
        self.family_of(self.session.head(), self.session_id())
    }

    /// The family of the thread whose head is `head` (session `owner`'s), with the sessions at their heads.
    fn family_of(&self, head: Option<i64>, owner: Option<i64>) -> Result<(Vec<TurnNode>, Heads)> {
        let chain = self.store.chain(head)?;
        let Some(root) = chain.first() else {
            return Ok((Vec::new(), HashMap::new()));
        };
        let nodes = tree::turns(&self.store.family(root.id, owner)?);
        let ids: HashSet<i64> = nodes.iter().map(|n| n.model_id).collect();
        let mut heads = Heads::new();
        for summary in self.store.list_sessions()? {
            if let Some(head) = summary.session.head_id.filter(|h| ids.contains(h)) {
                heads.entry(head).or_default().push(summary.session.name);
            }
        }
        for names in heads.values_mut() {
            names.sort();
        }
        Ok((nodes, heads))
    }

    /// `/tree`: the family of this thread, for drawing.
    pub fn family(&self) -> Result<Family> {
        let (nodes, heads) = self.family_nodes()?;
        Ok(Family {
            nodes,
            heads,
            path: self.path()?.into_iter().collect(),
        })
    }

    /// Notes for `/history`: other takes of each turn and where other sessions leave this one, by model id.
    pub(super) fn history_notes(&self) -> Result<HashMap<i64, Vec<String>>> {
        let (nodes, mut heads) = self.family_nodes()?;
        if let Some(head) = self.session.head() {
            // This session's own head is not a branch of itself.
            if let Some(names) = heads.get_mut(&head) {
                names.retain(|n| n != self.session.name());
            }
        }
        heads.retain(|_, names| !names.is_empty());
        Ok(tree::path_notes(&nodes, &self.path()?, &heads))
    }

    /// The model ids of this session's turns, oldest first.
    fn path(&self) -> Result<Vec<i64>> {
        self.path_of(self.session.head())
    }

    fn path_of(&self, head: Option<i64>) -> Result<Vec<i64>> {
        Ok(self
            .store
            .chain(head)?
            .into_iter()
            .filter(|r| r.role == "model")
            .map(|r| r.id)
            .collect())
    }

    /// A turn reference (`3`, `3b`) among this thread's turns.
    pub(super) fn resolve_turn(&self, turn: TurnRef) -> Result<TurnNode> {
        self.resolve_turn_in(self.session.head(), self.session_id(), turn, "this session")
    }

    /// A turn reference among the turns of the thread whose head is `head` (session `owner`'s, called `whose` in
    /// messages).
    pub(super) fn resolve_turn_in(
        &self,
        head: Option<i64>,
        owner: Option<i64>,
        turn: TurnRef,
        whose: &str,
    ) -> Result<TurnNode> {
        let (nodes, _) = self.family_of(head, owner)?;
        let path: HashSet<i64> = self.path_of(head)?.into_iter().collect();
        let on_path = nodes
            .iter()
            .find(|n| n.number == turn.number && path.contains(&n.model_id))
            .with_context(|| {
                format!(
                    "{whose} has no turn {} (it has {})",
                    turn.number,
                    path.len()
                )
            })?;
        let Some(take) = turn.take else {
            return Ok(on_path.clone());
        };
        nodes
            .iter()
            .find(|n| tree::same_turn(n, on_path) && n.take.index == take)
            .cloned()
            .with_context(|| {
                format!(
                    "turn {} has no take {}{}",
                    turn.number,
                    turn.number,
                    tree::take_letter(take)
                )
            })
    }

    /// `/delete NAME`: the session goes, and with it whatever no other session still reaches.
    pub fn delete(&mut self, name: &str) -> Result<Deleted> {
        let Some(row) = self.store.session(name)? else {
            bail!("no session named {name:?}; /sessions lists them");
        };
        let before = self.store.used_bytes()?;
        self.store.delete_session(row.id)?;
        let freed = before.saturating_sub(self.store.used_bytes()?);
        let was_current = self.session_id() == Some(row.id);
        if was_current {
            self.session = Session::new(
                None,
                self.session.settings.clone(),
                self.session.out_root.clone(),
            );
            self.failed_prompt = None;
        }
        Ok(Deleted {
            freed_bytes: freed as u64,
            was_current,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_refs_parse() {
        assert_eq!(
            "@3b".parse::<TurnRef>().unwrap(),
            TurnRef {
                number: 3,
                take: Some(1)
            }
        );
        assert_eq!(
            "2".parse::<TurnRef>().unwrap(),
            TurnRef {
                number: 2,
                take: None
            }
        );
        assert!("@0".parse::<TurnRef>().is_err());
        assert!("3bc".parse::<TurnRef>().is_err());
    }
}
