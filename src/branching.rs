//! Edit threads as a tree: /branch, /undo, /redo, /retry, /tree, /delete. Nothing here copies a content or a blob:
//! a branch is a row, undo and redo move a pointer, a retry adds a sibling.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result, bail};

use crate::app::App;
use crate::gemini::Content;
use crate::render::{self, one_line};
use crate::repl::command::TurnRef;
use crate::session::{self, Session};
use crate::tree::{self, Heads, TurnNode};

impl App {
    /// `/branch [NAME] [@TURN]`: a new session sharing this one's history up to its head (or turn TURN).
    pub fn branch(&mut self, name: Option<String>, at: Option<TurnRef>) -> Result<()> {
        let Some(from) = self.session.row.clone() else {
            bail!("this session has no turns yet: there is nothing to branch from");
        };
        let head = match at {
            None => from.head_id,
            Some(turn) => Some(self.resolve_turn(turn)?.model_id),
        };
        let name = match name {
            Some(name) => {
                session::validate_name(&name)?;
                name
            }
            None => self.store.free_branch_name(&from.name)?,
        };
        let row = self.store.branch_session(&from, &name, head)?;
        let turns = self.store.chain(head)?.len() / 2;
        let mut session = Session::open(row);
        session.attachments = std::mem::take(&mut self.session.attachments);
        self.session = session;
        self.ui.note(&format!(
            "branched {} from {} at turn {turns}; {} is untouched",
            self.session.name(),
            from.name,
            from.name
        ));
        Ok(())
    }

    /// `/undo`: the head steps back one turn; the turn stays stored and `/redo` brings it back.
    pub fn undo(&mut self) -> Result<()> {
        let Some(row) = self.session.row.clone() else {
            bail!("nothing to undo")
        };
        let chain = self.store.chain(row.head_id)?;
        let Some(undone) = chain.last() else {
            bail!("nothing to undo: this session has no turns")
        };
        let back = chain.len().checked_sub(3).map(|i| chain[i].id);
        let mut redo = row.redo.clone();
        redo.push(undone.id);
        self.move_head(back, redo)?;
        self.ui.note(&format!(
            "undid turn {} ({}); /redo brings it back",
            undone.turn(),
            one_line(&chain[chain.len() - 2].visible_text(), 40)
        ));
        Ok(())
    }

    /// `/redo`: forward again to the turn the last `/undo` stepped back from.
    pub fn redo(&mut self) -> Result<()> {
        let Some(row) = self.session.row.clone() else {
            bail!("nothing to redo")
        };
        let mut redo = row.redo.clone();
        let Some(next) = redo.pop() else {
            bail!("nothing to redo (a new turn clears what /undo kept)")
        };
        self.move_head(Some(next), redo)?;
        let turns = self.session.turns(&self.store)?;
        if let Some(turn) = turns.last() {
            self.ui.note(&format!(
                "back to turn {} ({})",
                turn.number,
                one_line(&turn.user.visible_text(), 40)
            ));
        }
        Ok(())
    }

    fn move_head(&mut self, head: Option<i64>, redo: Vec<i64>) -> Result<()> {
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
    pub fn retry(&mut self) -> Result<()> {
        if let Some(prompt) = self.failed_prompt.clone() {
            return self.prompt(&prompt);
        }
        let chain = self.store.chain(self.session.head())?;
        let [.., user, _model] = chain.as_slice() else {
            bail!("nothing to retry: this session has no turns yet");
        };
        let content = Content::user(self.store.parts(user)?);
        let prompt = user.visible_text();
        self.ui.note(&format!(
            "another take of turn {}: {}",
            user.turn(),
            one_line(&prompt, 50)
        ));
        self.send_turn(content, user.parent_id, &prompt)
    }

    /// Every turn of this thread's family, with the sessions at their heads.
    fn family(&self) -> Result<(Vec<TurnNode>, Heads)> {
        let chain = self.store.chain(self.session.head())?;
        let Some(root) = chain.first() else {
            return Ok((Vec::new(), HashMap::new()));
        };
        let owner = self.session.row.as_ref().map(|r| r.id);
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

    /// `/tree`: the family drawn as a tree.
    pub fn tree(&self) -> Result<()> {
        let (nodes, heads) = self.family()?;
        if nodes.is_empty() {
            self.ui
                .say(&format!("session {} has no turns yet", self.session.name()));
            return Ok(());
        }
        let path: HashSet<i64> = self.path()?.into_iter().collect();
        let mut text = tree::draw(&nodes, &heads, &path);
        text.push_str(
            "● this session's turns; /branch NAME @TURN starts a session from any of them",
        );
        self.ui.say(&text);
        Ok(())
    }

    /// Notes for `/history`: other takes of each turn and where other sessions leave this one, by model id.
    pub(crate) fn history_notes(&self) -> Result<HashMap<i64, Vec<String>>> {
        let (nodes, mut heads) = self.family()?;
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
        Ok(self
            .store
            .chain(self.session.head())?
            .into_iter()
            .filter(|r| r.role == "model")
            .map(|r| r.id)
            .collect())
    }

    /// A turn reference (`3`, `3b`) among this thread's turns.
    fn resolve_turn(&self, turn: TurnRef) -> Result<TurnNode> {
        let (nodes, _) = self.family()?;
        let path: HashSet<i64> = self.path()?.into_iter().collect();
        let on_path = nodes
            .iter()
            .find(|n| n.number == turn.number && path.contains(&n.model_id))
            .with_context(|| {
                format!(
                    "this session has no turn {} (it has {})",
                    turn.number,
                    path.len()
                )
            })?;
        let Some(take) = turn.take else {
            return Ok(on_path.clone());
        };
        nodes
            .iter()
            .find(|n| {
                n.parent_model == on_path.parent_model && n.owner == on_path.owner && n.take == take
            })
            .cloned()
            .with_context(|| {
                format!(
                    "turn {} has no take {}",
                    turn.number,
                    tree::label(turn.number, take)
                )
            })
    }

    /// `/delete NAME`: the session goes, and with it whatever no other session still reaches.
    pub fn delete(&mut self, name: &str) -> Result<()> {
        let Some(row) = self.store.session(name)? else {
            bail!("no session named {name:?}; /sessions lists them");
        };
        let before = self.store.used_bytes()?;
        self.store.delete_session(row.id)?;
        let freed = before.saturating_sub(self.store.used_bytes()?);
        if self.session.row.as_ref().is_some_and(|r| r.id == row.id) {
            self.session = Session::new(None, self.session.settings.clone());
        }
        self.ui.note(&format!(
            "deleted session {name}; {} freed",
            render::bytes(freed as u64)
        ));
        Ok(())
    }
}
