//! What the engine tells about a thread without changing it: its turns with their files, a turn's images again,
//! where a resumed session stands.

use std::path::PathBuf;

use anyhow::{Context as _, Result};

use super::Engine;
use super::images::{self, AnswerImage};
use super::output;
use super::session::Turn;
use crate::gemini::Content;
use crate::store::ImageMeta;

/// A turn's image on disk: where it is, or where `/show` would write it.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnFile {
    pub path: PathBuf,
    /// The file is there (in this session's folder, or in the folder of the session that made the turn).
    pub present: bool,
}

/// A line of `/history`.
#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub label: String,
    /// The prompt as typed (a face sanitises it).
    pub prompt: String,
    /// Images attached to the prompt.
    pub attached: usize,
    /// The answer's first image and its file.
    pub image: Option<(ImageMeta, TurnFile)>,
    pub tokens: Option<u64>,
    pub cost_usd: f64,
    /// Other takes of the turn, and sessions that branch off after it.
    pub notes: Vec<String>,
}

/// An image on disk: where it is, what it is, and its bytes (for a preview).
#[derive(Debug, Clone)]
pub struct ImageFile {
    pub path: PathBuf,
    pub meta: ImageMeta,
    pub bytes: bytes::Bytes,
}

/// `/show`: a turn's answer images, and the images it drew while thinking.
#[derive(Debug, Clone)]
pub struct Shown {
    pub label: String,
    /// The answer's text (for a turn without an image).
    pub text: String,
    pub images: Vec<ImageFile>,
    pub thought_images: Vec<ImageFile>,
}

/// Where a session stands: for `/load` and `peel -r`.
#[derive(Debug, Clone)]
pub struct Description {
    pub name: String,
    pub turns: usize,
    pub model: String,
    pub last_image: Option<ImageFile>,
}

impl Engine {
    /// This session's turns, oldest first.
    pub fn turns(&self) -> Result<Vec<Turn>> {
        self.session.turns(&self.store)
    }

    /// `/history`: this session's turns with their images' files and notes.
    pub fn history(&self) -> Result<Vec<HistoryRow>> {
        let turns = self.turns()?;
        let notes = self.history_notes()?;
        turns
            .iter()
            .map(|t| {
                let meta = &t.model.meta;
                let image = match meta.images.first() {
                    Some(first) => {
                        let ext = images::ext_for_mime(&first.mime).unwrap_or("bin");
                        Some((first.clone(), self.turn_file(t, 0, ext)?))
                    }
                    None => None,
                };
                Ok(HistoryRow {
                    label: t.label(),
                    prompt: t.user.visible_text(),
                    attached: t.user.image_count(),
                    image,
                    tokens: meta.usage.as_ref().and_then(|u| u.total_token_count),
                    cost_usd: meta.cost_usd,
                    notes: notes.get(&t.model.id).cloned().unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Where image `index` of `turn` is: this session's folder, else the folder of the session that made the
    /// turn; when it is in neither, where `/show` would write it.
    fn turn_file(&self, turn: &Turn, index: usize, ext: &str) -> Result<TurnFile> {
        let name = output::file_name(&turn.label(), index, ext);
        let here = self.image_dir().join(&name);
        if here.exists() {
            return Ok(TurnFile {
                path: here,
                present: true,
            });
        }
        if let Some(maker) = turn
            .model
            .session_id
            .filter(|id| Some(*id) != self.session_id())
        {
            let maker = self.store.session_by_id(maker)?;
            let root = maker.out_dir.unwrap_or_else(|| self.out_root.clone());
            let there = output::session_dir(&root, &maker.name).join(&name);
            if there.exists() {
                return Ok(TurnFile {
                    path: there,
                    present: true,
                });
            }
        }
        Ok(TurnFile {
            path: here,
            present: false,
        })
    }

    /// A turn's answer as stored, blobs put back.
    pub(super) fn stored_answer(&self, turn: &Turn) -> Result<Content> {
        Ok(Content {
            role: Some("model".into()),
            parts: self.store.parts(&turn.model)?,
            extra: Default::default(),
        })
    }

    /// The bytes of the first answer image of a stored model content.
    pub(super) fn first_image(&self, model_id: i64) -> Result<Option<bytes::Bytes>> {
        let row = self.store.content(model_id)?;
        let content = self.store.content_of(&row)?;
        Ok(images::first_answer_image(&content).map(|image| image.bytes))
    }

    /// Turn `label` (`3`, `3b`) on this session's path, or the last turn with an image.
    fn pick_turn(&self, label: Option<&str>) -> Result<Turn> {
        let turns = self.turns()?;
        let turn = match label {
            Some(label) => turns
                .iter()
                .find(|t| t.label() == label || t.number.to_string() == label)
                .with_context(|| {
                    format!(
                        "this session has no turn {label} (it has {}); /history lists them",
                        turns.len()
                    )
                })?,
            None => turns
                .iter()
                .rev()
                .find(|t| t.model.image_count() > 0)
                .context("this session has no image yet")?,
        };
        Ok(turn.clone())
    }

    /// `/show [TURN]`: a turn's images (written again into this session's folder if missing), and the images it
    /// drew while thinking.
    pub fn show(&self, label: Option<&str>) -> Result<Shown> {
        let turn = self.pick_turn(label)?;
        let content = self.stored_answer(&turn)?;
        let label = turn.label();
        let images = self.ensure_files(&turn, &label, images::answer_images(&content))?;
        let thought_images = images::thought_images(&content)
            .into_iter()
            .enumerate()
            .map(|(k, image)| self.ensure_file(&format!("{label}-thought-{}", k + 1), 0, image))
            .collect::<Result<_>>()?;
        Ok(Shown {
            text: content.answer_text(),
            label,
            images,
            thought_images,
        })
    }

    /// The file of a turn's first image (for `/open`), written if missing.
    pub fn image_file(&self, label: Option<&str>) -> Result<PathBuf> {
        let turn = self.pick_turn(label)?;
        let content = self.stored_answer(&turn)?;
        let shown = self.ensure_files(&turn, &turn.label(), images::answer_images(&content))?;
        shown
            .into_iter()
            .next()
            .map(|s| s.path)
            .with_context(|| format!("turn {} has no image to open", turn.label()))
    }

    fn ensure_files(
        &self,
        turn: &Turn,
        label: &str,
        images: Vec<AnswerImage>,
    ) -> Result<Vec<ImageFile>> {
        images
            .into_iter()
            .enumerate()
            .map(|(index, image)| {
                let file = self.turn_file(turn, index, image.ext)?;
                if file.present {
                    return Ok(ImageFile {
                        path: file.path,
                        meta: image.meta,
                        bytes: image.bytes,
                    });
                }
                self.ensure_file(label, index, image)
            })
            .collect()
    }

    /// `<this session's folder>/<name>[-k].<ext>`, written from the image unless that very image is there.
    fn ensure_file(&self, name: &str, index: usize, image: AnswerImage) -> Result<ImageFile> {
        let path = output::output_path(
            &self.session.out_root,
            self.session.name(),
            name,
            index,
            image.ext,
        );
        let path = output::write_new(&path, &image.bytes)?;
        Ok(ImageFile {
            path,
            meta: image.meta,
            bytes: image.bytes,
        })
    }

    /// Where this session stands: its turns, model, and last image (written if missing).
    pub fn describe(&self) -> Result<Description> {
        let turns = self.turns()?;
        let last_image = match turns.iter().rev().find(|t| t.model.image_count() > 0) {
            Some(turn) => {
                let content = self.stored_answer(turn)?;
                self.ensure_files(turn, &turn.label(), images::answer_images(&content))?
                    .into_iter()
                    .next()
            }
            None => None,
        };
        Ok(Description {
            name: self.session.name().to_string(),
            turns: turns.len(),
            model: self.session.settings.model.clone(),
            last_image,
        })
    }
}
