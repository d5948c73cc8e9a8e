//! Earlier images by label: `@3` (turn 3 on this session's path), `@3b` (a take of turn 3), `@fox:2` (turn 2 of
//! session fox), `@last` (this session's last image), in `/attach`, in `-i`, and inline in a prompt ("put the hat
//! from @2 on the fox"). The image is the stored answer's own bytes: sent again, its base64 is the very string the
//! model gave, and the store finds its blob already there.

use std::str::FromStr;

use anyhow::{Context as _, Result, bail};

use super::Engine;
use super::branching::TurnRef;
use super::images::Attachment;
use super::session::validate_name;

/// A label naming a stored image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Another session's (`@fox:2`); `None` for this session.
    pub session: Option<String>,
    /// `None`: the last turn with an image (`@last`).
    pub turn: Option<TurnRef>,
}

impl FromStr for Reference {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Reference> {
        let Some(label) = text.strip_prefix('@') else {
            bail!("{text:?} is not a label: labels start with @ (@3, @3b, @fox:2, @last)");
        };
        let (session, turn) = match label.rsplit_once(':') {
            Some((session, turn)) => {
                validate_name(session)?;
                (Some(session.to_string()), turn)
            }
            None => (None, label),
        };
        let turn = match turn {
            "last" => None,
            turn => Some(turn.parse::<TurnRef>()?),
        };
        Ok(Reference { session, turn })
    }
}

impl Reference {
    /// Whether a word of a prompt is meant as a label: `@` then a turn (`@2`, `@3b`, `@last`) or a session and a
    /// turn (`@fox:2`). `@everyone` is not.
    pub fn looks_like(word: &str) -> bool {
        let Some(label) = word.strip_prefix('@') else {
            return false;
        };
        let turn = label.rsplit_once(':').map_or(label, |(_, turn)| turn);
        turn == "last"
            || (turn.starts_with(|c: char| c.is_ascii_digit())
                && turn
                    .trim_end_matches(|c: char| c.is_ascii_lowercase())
                    .bytes()
                    .all(|b| b.is_ascii_digit()))
    }
}

impl Engine {
    /// The image a label names, as an attachment (its source is the label).
    pub fn resolve_reference(&self, label: &str) -> Result<Attachment> {
        let reference: Reference = label.parse()?;
        let (head, owner, whose) = match &reference.session {
            None => (
                self.session.head(),
                self.session_id(),
                "this session".to_string(),
            ),
            Some(name) => {
                let row = self.store.session(name)?.with_context(|| {
                    format!("{label}: no session named {name:?}; /sessions lists them")
                })?;
                (row.head_id, Some(row.id), format!("session {name}"))
            }
        };
        let model = match reference.turn {
            Some(turn) => {
                self.resolve_turn_in(head, owner, turn, &whose)
                    .with_context(|| format!("{label} names no image"))?
                    .model_id
            }
            None => {
                self.store
                    .chain(head)?
                    .into_iter()
                    .rev()
                    .find(|row| row.role == "model" && row.image_count() > 0)
                    .with_context(|| format!("{label}: {whose} has no image yet"))?
                    .id
            }
        };
        let image = self
            .first_image(model)?
            .with_context(|| format!("{label} is a turn without an image"))?;
        Attachment::from_bytes(label.to_string(), image.to_vec())
    }

    /// Attaches the images a prompt names inline (`@2`), each once; a label that names nothing is an error before
    /// anything is sent.
    pub(super) fn attach_inline_references(&mut self, prompt: &str) -> Result<()> {
        for word in prompt.split_whitespace() {
            let word = word.trim_end_matches(|c: char| ",.;!?)]}'\"".contains(c));
            let word = word.trim_start_matches(['(', '[', '{', '"', '\'']);
            if !Reference::looks_like(word)
                || self.session.attachments.iter().any(|a| a.source == word)
            {
                continue;
            }
            let attachment = self
                .resolve_reference(word)
                .with_context(|| format!("not sent: the prompt names {word}"))?;
            // The same picture under another label (`@last` is `@3`) goes once.
            if !self
                .session
                .attachments
                .iter()
                .any(|a| a.bytes == attachment.bytes)
            {
                self.session.attachments.push(attachment);
            }
        }
        Ok(())
    }

    /// The labels Tab offers after `@`: this session's turns and takes, `@last`, and `@NAME:` for the others
    /// (`session_names`, as [`Engine::session_names`] gives them).
    pub fn labels(&self, session_names: &[String]) -> Result<Vec<String>> {
        let mut labels = vec!["@last".to_string()];
        for turn in self.turns()? {
            if turn.model.image_count() > 0 {
                labels.push(format!("@{}", turn.label()));
            }
        }
        if let Ok(family) = self.family() {
            for node in family.nodes.iter().filter(|n| n.images > 0) {
                let label = format!("@{}", node.label());
                if !labels.contains(&label) {
                    labels.push(label);
                }
            }
        }
        for name in session_names {
            if Some(name.as_str()) != self.session.row.as_ref().map(|r| r.name.as_str()) {
                labels.push(format!("@{name}:"));
            }
        }
        Ok(labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_and_plain_words_are_not_labels() {
        assert_eq!(
            "@fox~2:3b".parse::<Reference>().unwrap(),
            Reference {
                session: Some("fox~2".into()),
                turn: Some(TurnRef {
                    number: 3,
                    take: Some(1)
                })
            }
        );
        assert_eq!("@last".parse::<Reference>().unwrap().turn, None);
        assert!("@../x:2".parse::<Reference>().is_err());
        for word in ["@2", "@3b", "@last", "@fox:2", "@fox:last"] {
            assert!(Reference::looks_like(word), "{word}");
        }
        for word in ["@everyone", "@", "email@host", "@fox:", "@3bc4"] {
            assert!(!Reference::looks_like(word), "{word}");
        }
    }
}
