//! The conversation being edited: which session, where its head is, the settings and attachments for the next turn,
//! where its images go, and its history read back as turns.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use super::images::Attachment;
use super::tree::Take;
use crate::gemini::{Content, Part};
use crate::settings::Settings;
use crate::store::{ContentRow, NewSession, SessionRow, Store};

/// One turn: the N-th prompt along the session's history and the model's answer to it.
#[derive(Debug, Clone)]
pub struct Turn {
    pub number: i64,
    pub take: Take,
    pub user: ContentRow,
    pub model: ContentRow,
}

impl Turn {
    /// `3`, or `3b` when the turn has several takes: how files, listings and commands name it.
    pub fn label(&self) -> String {
        self.take.label(self.number)
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    /// `None` until the first turn (or `/save`) stores it; an unnamed session is named after its first prompt.
    pub row: Option<SessionRow>,
    pub wanted_name: Option<String>,
    pub settings: Settings,
    pub attachments: Vec<Attachment>,
    /// The absolute folder under which this session's images go (`<out_root>/<name>/`).
    pub out_root: PathBuf,
}

impl Session {
    /// A session not yet in the database.
    pub fn new(name: Option<String>, settings: Settings, out_root: PathBuf) -> Session {
        Session {
            row: None,
            wanted_name: name,
            settings,
            attachments: Vec::new(),
            out_root,
        }
    }

    /// A stored session; `fallback_root` is where its images go if it was made before peel kept that.
    pub fn open(row: SessionRow, fallback_root: &Path) -> Session {
        Session {
            settings: row.settings.clone(),
            out_root: row
                .out_dir
                .clone()
                .unwrap_or_else(|| fallback_root.to_path_buf()),
            row: Some(row),
            wanted_name: None,
            attachments: Vec::new(),
        }
    }

    pub fn name(&self) -> &str {
        match (&self.row, &self.wanted_name) {
            (Some(row), _) => &row.name,
            (None, Some(name)) => name,
            (None, None) => "new session",
        }
    }

    pub fn is_stored(&self) -> bool {
        self.row.is_some()
    }

    pub fn head(&self) -> Option<i64> {
        self.row.as_ref().and_then(|r| r.head_id)
    }

    /// Stores the session if it is not stored yet, named as asked or after `first_prompt`.
    pub fn ensure_stored(&mut self, store: &Store, first_prompt: &str) -> Result<&SessionRow> {
        let row = match self.row.take() {
            Some(row) => row,
            None => {
                let base = match &self.wanted_name {
                    Some(name) => name.clone(),
                    None => auto_name(first_prompt),
                };
                let name = store.free_name(&base)?;
                store.create_session(&name, self.new_row())?
            }
        };
        Ok(self.row.insert(row))
    }

    fn new_row(&self) -> NewSession<'_> {
        NewSession {
            out_dir: Some(&self.out_root),
            ..NewSession::empty(&self.settings)
        }
    }

    /// Names or renames the session; stores it if it was not stored yet.
    pub fn rename(&mut self, store: &Store, name: &str) -> Result<()> {
        validate_name(name)?;
        match &mut self.row {
            Some(row) => {
                store.rename_session(row.id, name)?;
                row.name = name.to_string();
            }
            None => {
                if store.session(name)?.is_some() {
                    bail!("a session named {name:?} already exists; /load {name} opens it");
                }
                self.row = Some(store.create_session(name, self.new_row())?);
            }
        }
        Ok(())
    }

    /// Keeps the settings with the session so a resumed thread continues as it was.
    pub fn save_settings(&mut self, store: &Store) -> Result<()> {
        match &mut self.row {
            Some(row) => {
                store.save_settings(row.id, &self.settings)?;
                row.settings = self.settings.clone();
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The stored history as turns, oldest first.
    pub fn turns(&self, store: &Store) -> Result<Vec<Turn>> {
        let chain = store.chain(self.head())?;
        let mut turns = Vec::with_capacity(chain.len() / 2);
        let mut rows = chain.into_iter();
        while let (Some(user), Some(model)) = (rows.next(), rows.next()) {
            turns.push(Turn {
                number: model.turn(),
                take: store.take(user.id)?,
                user,
                model,
            });
        }
        Ok(turns)
    }

    /// The user content for a prompt: the text, then the attached images.
    pub fn user_content(&self, prompt: &str) -> Content {
        let mut parts = vec![Part::text(prompt)];
        parts.extend(self.attachments.iter().map(Attachment::part));
        Content::user(parts)
    }
}

/// Session names are used as directory names and typed in commands: keep them plain (one rule for every name).
pub use crate::names::validate_session_name as validate_name;

/// A readable name from the first prompt: its first few meaningful words ("a red fox at dawn" → "red-fox-dawn").
pub fn auto_name(prompt: &str) -> String {
    const FILLER: &[&str] = &[
        "a", "an", "the", "of", "in", "on", "at", "to", "with", "and", "for", "make", "create",
        "draw", "generate", "me", "please", "image", "picture", "photo", "it", "is", "that",
        "this",
    ];
    let words: Vec<String> = prompt
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| !w.is_empty() && !FILLER.contains(&w.as_str()))
        .take(3)
        .collect();
    let name: String = words.join("-").chars().take(40).collect();
    if name.is_empty() {
        "session".to_string()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_names_read_well() {
        assert_eq!(auto_name("A red fox at dawn, in snow"), "red-fox-dawn");
        assert_eq!(auto_name("!!!"), "session");
        assert_eq!(auto_name("Ünïcode café"), "ünïcode-café");
        assert!(validate_name(&auto_name("make the sky orange")).is_ok());
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("fox~2").is_ok());
        assert!(validate_name("../etc").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name("").is_err());
    }
}
