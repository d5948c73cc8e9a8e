//! A thread as a folder, and back: images named by turn, `transcript.md` for people, and `thread.json` with the
//! full contents (signatures included) and settings, which `peel import` turns into a session again.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::{Engine, images, output, session};
use crate::gemini::Content;
use crate::settings::Settings;
use crate::store::{NewSession, NewTurn, SessionRow, Store, TurnMeta, now_ms};
use crate::text::{self, thousands};

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
    let chain = store.chain(row.head_id)?;
    refuse_existing(store, &chain, dir)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut contents = Vec::with_capacity(chain.len());
    let mut turns = Vec::new();
    let mut written = Vec::new();
    let mut transcript = format!("# {}\n\n", row.name);
    let _ = writeln!(
        transcript,
        "Exported by peel {} on {}.\n",
        env!("CARGO_PKG_VERSION"),
        text::timestamp(now_ms())
    );
    let mut total_cost = 0.0;
    let mut total_tokens = 0;
    for stored in &chain {
        let content = store.content_of(stored)?;
        if stored.role == "user" {
            let _ = writeln!(transcript, "## Turn {}\n", stored.turn());
            for line in stored.visible_text().lines() {
                let _ = writeln!(transcript, "> {}", text::sanitize(line));
            }
            if stored.image_count() > 0 {
                let _ = writeln!(
                    transcript,
                    "\n*{} attached*",
                    text::count(stored.image_count(), "image")
                );
            }
            transcript.push('\n');
        } else {
            let text = content.answer_text();
            if !text.trim().is_empty() {
                let _ = writeln!(transcript, "{}\n", text::sanitize(text.trim()));
            }
            for (index, image) in images::answer_images(&content).iter().enumerate() {
                let prompt = stored.parent_id.context("an answer without its prompt")?;
                let label = store.take(prompt)?.label(stored.turn());
                let name = output::file_name(&label, index, image.ext);
                output::write_once(&dir.join(&name), &image.bytes)?;
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
                    text::sanitize(&source.title),
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
        text::count(turns.len(), "turn"),
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
    output::write_once(&transcript_path, transcript.as_bytes())?;
    let thread_path = dir.join("thread.json");
    output::write_once(&thread_path, &serde_json::to_vec(&thread)?)?;
    written.extend([transcript_path, thread_path]);
    Ok(written)
}

/// The names an export of `chain` writes; refused, all named, before anything is written when any is taken (a file,
/// a folder, or a symlink, even a dangling one).
fn refuse_existing(store: &Store, chain: &[crate::store::ContentRow], dir: &Path) -> Result<()> {
    let mut names = vec!["transcript.md".to_string(), "thread.json".to_string()];
    for stored in chain.iter().filter(|c| c.role == "model") {
        let prompt = stored.parent_id.context("an answer without its prompt")?;
        let label = store.take(prompt)?.label(stored.turn());
        for (index, image) in stored.meta.images.iter().enumerate() {
            let ext = images::ext_for_mime(&image.mime).unwrap_or("bin");
            names.push(output::file_name(&label, index, ext));
        }
    }
    let taken: Vec<&String> = names
        .iter()
        .filter(|name| crate::files::taken(&dir.join(name)))
        .collect();
    if !taken.is_empty() {
        let list = taken
            .iter()
            .take(8)
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let more = if taken.len() > 8 {
            format!(" and {} more", taken.len() - 8)
        } else {
            String::new()
        };
        bail!(
            "{} already holds {list}{more}; peel does not overwrite files it did not write: export into an empty or \
             new folder",
            dir.display()
        );
    }
    Ok(())
}

/// The largest thread.json read: it is parsed whole, so memory stays bounded by refusing bigger files.
pub const MAX_IMPORT_BYTES: u64 = 256 * 1024 * 1024;

/// Reads a `thread.json` (or the export folder holding one) and stores it as a new session, named as exported (or
/// `name`); a taken name gets a suffix. Its images will go under `out_dir`. Returns the new session.
pub fn import_thread(
    store: &mut Store,
    file: &Path,
    name: Option<&str>,
    out_dir: &Path,
) -> Result<SessionRow> {
    let file = if file.is_dir() {
        file.join("thread.json")
    } else {
        file.to_path_buf()
    };
    let file = file.as_path();
    let bytes = crate::files::read_bounded(file, MAX_IMPORT_BYTES).map_err(|e| match e {
        crate::files::ReadError::TooLarge { limit, .. } => anyhow::anyhow!(
            "{} is over the {limit} import limit; nothing was imported",
            file.display()
        ),
        crate::files::ReadError::Other(e) => e.context(format!("reading {}", file.display())),
    })?;
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
    // Settings from the file reach URLs and requests: the same rules as typed ones.
    thread
        .settings
        .generation_config()
        .with_context(|| format!("{}: its settings", file.display()))?;
    for (i, meta) in thread.turns.iter().enumerate() {
        if let Some(settings) = &meta.settings {
            settings
                .validate()
                .with_context(|| format!("{}: the settings of turn {}", file.display(), i + 1))?;
        }
    }
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
    let new = NewSession {
        out_dir: Some(out_dir),
        ..NewSession::empty(&thread.settings)
    };
    store.import_thread(&name, new, &turns)
}

/// Where an export went.
#[derive(Debug, Clone)]
pub struct Exported {
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
}

impl Engine {
    /// `/export [DIR]`, `peel export NAME [DIR]`: session `name` (default: this one) into DIR (default
    /// `./<session>-export`).
    pub fn export(&self, name: Option<&str>, dir: Option<PathBuf>) -> Result<Exported> {
        let row = match name {
            Some(name) => self.store.session(name)?.with_context(|| {
                format!("no session named {name:?}; `peel sessions` lists them")
            })?,
            None => self
                .session
                .row
                .clone()
                .context("this session has no turns yet: nothing to export")?,
        };
        let dir = dir.unwrap_or_else(|| PathBuf::from(format!("{}-export", row.name)));
        let files = export_session(&self.store, &row, &dir)?;
        Ok(Exported { dir, files })
    }

    /// `peel import FILE|DIR [--name NAME]`: returns the new session's name and its number of turns.
    pub fn import(&mut self, file: &Path, name: Option<&str>) -> Result<(String, usize)> {
        let row = import_thread(&mut self.store, file, name, &self.out_root)?;
        let turns = self.store.chain(row.head_id)?.len() / 2;
        Ok((row.name, turns))
    }
}
