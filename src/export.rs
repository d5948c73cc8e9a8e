//! A thread as a folder, and back: images named by turn, `transcript.md` for people, and `thread.json` with the
//! full contents (signatures included) and settings, which `peel import` turns into a session again.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::gemini::Content;
use crate::images;
use crate::render::{self, thousands};
use crate::session;
use crate::settings::Settings;
use crate::store::{NewTurn, SessionRow, Store, TurnMeta, now_ms};
use crate::tree;

const FORMAT: &str = "peel-thread";
const VERSION: u32 = 1;

/// `thread.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadFile {
    pub format: String,
    pub version: u32,
    pub session: String,
    pub settings: Settings,
    /// The whole history as it is sent: user and model contents in turn, model parts exactly as received.
    pub contents: Vec<Content>,
    /// What peel recorded about each turn (usage, cost, timings), one per model content.
    #[serde(default)]
    pub turns: Vec<TurnMeta>,
}

/// Writes `row`'s thread into `dir`; returns the files written.
pub fn export_session(store: &Store, row: &SessionRow, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let chain = store.chain(row.head_id)?;
    let mut contents = Vec::with_capacity(chain.len());
    let mut turns = Vec::new();
    let mut written = Vec::new();
    let mut transcript = format!("# {}\n\n", row.name);
    let _ = writeln!(
        transcript,
        "Exported by peel {} on {}.\n",
        env!("CARGO_PKG_VERSION"),
        render::timestamp(now_ms())
    );
    let mut total_cost = 0.0;
    let mut total_tokens = 0;
    for stored in &chain {
        let content = store.content(stored)?;
        if stored.role == "user" {
            let _ = writeln!(transcript, "## Turn {}\n", stored.turn());
            for line in stored.visible_text().lines() {
                let _ = writeln!(transcript, "> {}", render::sanitize(line));
            }
            if stored.image_count() > 0 {
                let _ = writeln!(
                    transcript,
                    "\n*{} attached*",
                    render::count(stored.image_count(), "image")
                );
            }
            transcript.push('\n');
        } else {
            let text = content.answer_text();
            if !text.trim().is_empty() {
                let _ = writeln!(transcript, "{}\n", render::sanitize(text.trim()));
            }
            for (index, image) in images::answer_images(&content).iter().enumerate() {
                let prompt = stored.parent_id.context("an answer without its prompt")?;
                let label = tree::label(stored.turn(), store.take_index(prompt)?);
                let name = images::file_name(&label, index, image.ext);
                images::write_atomically(&dir.join(&name), &image.bytes)?;
                written.push(dir.join(&name));
                let _ = writeln!(
                    transcript,
                    "![turn {}]({name}) {}x{}\n",
                    stored.turn(),
                    image.meta.width,
                    image.meta.height
                );
            }
            let meta = &stored.meta;
            for source in &meta.sources {
                let _ = writeln!(
                    transcript,
                    "- [{}]({})",
                    render::sanitize(&source.title),
                    source.uri
                );
            }
            if !meta.sources.is_empty() {
                transcript.push('\n');
            }
            let settings = meta
                .settings
                .as_ref()
                .map_or(String::new(), |s| format!("{} · {} · ", s.model, s.shape()));
            let tokens = meta
                .usage
                .as_ref()
                .and_then(|u| u.total_token_count)
                .unwrap_or(0);
            let _ = writeln!(
                transcript,
                "`{settings}{:.1} s · {} tokens · ~${:.3}`\n",
                meta.elapsed_ms as f64 / 1000.0,
                thousands(tokens),
                meta.cost_usd
            );
            total_cost += meta.cost_usd;
            total_tokens += tokens;
            turns.push(meta.clone());
        }
        contents.push(content);
    }
    let _ = writeln!(
        transcript,
        "---\n\n{} · {} tokens · ~${total_cost:.3} estimated · next turn: {} · {}",
        render::count(turns.len(), "turn"),
        thousands(total_tokens),
        row.settings.model,
        row.settings.shape()
    );
    let thread = ThreadFile {
        format: FORMAT.into(),
        version: VERSION,
        session: row.name.clone(),
        settings: row.settings.clone(),
        contents,
        turns,
    };
    let transcript_path = dir.join("transcript.md");
    images::write_atomically(&transcript_path, transcript.as_bytes())?;
    let thread_path = dir.join("thread.json");
    images::write_atomically(&thread_path, &serde_json::to_vec(&thread)?)?;
    written.extend([transcript_path, thread_path]);
    Ok(written)
}

/// Reads a `thread.json` and stores it as a new session, named as exported (or `name`); a taken name gets a
/// suffix. Returns the new session.
pub fn import_thread(store: &mut Store, file: &Path, name: Option<&str>) -> Result<SessionRow> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let thread: ThreadFile = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a peel thread.json", file.display()))?;
    if thread.format != FORMAT || thread.version > VERSION {
        bail!(
            "{} is a {} v{} file; this peel reads {FORMAT} v{VERSION}",
            file.display(),
            thread.format,
            thread.version
        );
    }
    let pairs = thread.contents.chunks(2);
    if !thread.contents.len().is_multiple_of(2)
        || pairs
            .clone()
            .any(|pair| pair[0].role.as_deref() != Some("user") || !pair[1].is_model())
    {
        bail!(
            "{}: the contents must alternate user and model, starting with user",
            file.display()
        );
    }
    let base = name.unwrap_or(&thread.session);
    session::validate_name(base)?;
    let name = store.free_name(base)?;
    // Who made each turn goes along; a file from before peel recorded it is judged as the database migration
    // judges old rows, and a turn whose file says nothing of it stays unknown (its signatures are then replaced by
    // the dummy when sent).
    let metas: Vec<TurnMeta> = (0..thread.contents.len() / 2)
        .map(|i| {
            let mut meta = thread.turns.get(i).cloned().unwrap_or_default();
            if meta.made_by.is_none() {
                meta.made_by = meta.infer_made_by();
            }
            meta
        })
        .collect();
    let turns: Vec<NewTurn<'_>> = pairs
        .zip(&metas)
        .map(|(pair, meta)| NewTurn {
            user: &pair[0],
            model: &pair[1],
            meta,
        })
        .collect();
    store.import_thread(&name, &thread.settings, &turns)
}

impl App {
    /// `/export [DIR]`: this session's thread into DIR (default `./<session>-export`).
    pub fn export(&self, dir: Option<PathBuf>) -> Result<()> {
        let row = self
            .session
            .row
            .as_ref()
            .context("this session has no turns yet: nothing to export")?;
        let dir = dir.unwrap_or_else(|| PathBuf::from(format!("{}-export", row.name)));
        let written = export_session(&self.store, row, &dir)?;
        self.ui.note(&format!(
            "exported {} files to {}",
            written.len(),
            dir.display()
        ));
        Ok(())
    }
}
