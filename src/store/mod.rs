//! SQLite: contents as a tree with parent pointers, sessions as named heads, large values as blobs.
//! Knows nothing about HTTP or the terminal.

mod blobs;
mod checkpoint;
mod contents;
mod migrate;
mod reader;
mod sessions;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

pub use blobs::{Blob, Decoded, hash_hex};
use checkpoint::Checkpointer;
pub use contents::NewTurn;
pub use migrate::{MIGRATIONS, schema_version};
pub use reader::BlobReader;

use crate::gemini::outcome::Source;
use crate::gemini::signatures::{MadeBy, Origin};
use crate::gemini::types::UsageMetadata;
use crate::settings::Settings;

/// What is recorded about a model turn besides its content.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TurnMeta {
    pub settings: Option<Settings>,
    #[serde(default)]
    pub finish_reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageMetadata>,
    #[serde(default)]
    pub elapsed_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
    /// The answer images, in order: type and pixel size read from the bytes.
    #[serde(default)]
    pub images: Vec<ImageMeta>,
    #[serde(default)]
    pub cost_usd: f64,
    /// The size of the request body that was sent.
    #[serde(default)]
    pub request_bytes: u64,
    /// Search grounding sources listed under the answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
    /// Which backend made the answer (with `settings.model`, which model): whose thought signatures it carries.
    /// `None` when that is not known (an imported history that did not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub made_by: Option<MadeBy>,
}

impl TurnMeta {
    /// Where the answer came from, for its thought signatures ([`crate::gemini::signatures`]).
    pub fn origin(&self) -> Origin {
        let model = self
            .settings
            .as_ref()
            .map(|s| s.model.as_str())
            .or(self.model_version.as_deref());
        Origin::of(self.made_by.as_ref(), model)
    }

    /// Who made a turn recorded before peel kept it, judged from what was kept (the rule of migration 0003): the
    /// offline stand-in's model versions end in `-offline`; any other turn with recorded settings came from the
    /// API. A turn with no settings (a hand-made history) stays unknown.
    pub fn infer_made_by(&self) -> Option<MadeBy> {
        self.settings.as_ref()?;
        Some(
            if self
                .model_version
                .as_deref()
                .is_some_and(|v| v.ends_with("-offline"))
            {
                MadeBy::Offline
            } else {
                MadeBy::Api { provider: None }
            },
        )
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ImageMeta {
    pub mime: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
}

/// One stored content, parts not yet read back from the blobs.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentRow {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub depth: i64,
    pub role: String,
    pub parts_json: String,
    /// The content's own fields besides role and parts, as received.
    pub extra: serde_json::Map<String, serde_json::Value>,
    pub meta: TurnMeta,
    pub created_at: i64,
    /// The session that made it (`None` once that session is deleted).
    pub session_id: Option<i64>,
}

impl ContentRow {
    /// The turn this content belongs to, counted from 1.
    pub fn turn(&self) -> i64 {
        self.depth / 2 + 1
    }

    /// The text parts that are not thoughts, read without touching any blob.
    pub fn visible_text(&self) -> String {
        visible_text(&self.parts_json)
    }

    /// How many images the user attached (user contents) or the model returned (model contents).
    pub fn image_count(&self) -> usize {
        let parts: Vec<serde_json::Value> =
            serde_json::from_str(&self.parts_json).unwrap_or_default();
        parts
            .iter()
            .filter(|p| p.get("thought") != Some(&serde_json::Value::Bool(true)))
            .filter(|p| p.get("inlineData").is_some())
            .count()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub id: i64,
    pub name: String,
    pub head_id: Option<i64>,
    pub settings: Settings,
    pub origin_session: Option<String>,
    pub origin_head_id: Option<i64>,
    /// Heads stepped back from by /undo, newest last.
    pub redo: Vec<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A line of `peel sessions`.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSummary {
    pub session: SessionRow,
    pub turns: i64,
    pub last_prompt: Option<String>,
    /// The turn of `origin_session` this session branched at.
    pub origin_turn: Option<i64>,
}

/// Where a finished turn went.
#[derive(Debug, Clone, PartialEq)]
pub struct Appended {
    pub user_id: i64,
    pub model_id: i64,
    pub turn: i64,
    /// Which take of that turn (0 first; 1 is `3b` after a /retry).
    pub take: usize,
    /// Set when another process moved the session's head while this turn was in flight: the turn went to this new
    /// branch instead of overwriting theirs.
    pub branched_to: Option<SessionRow>,
}

pub struct Store {
    /// Declared before `conn` so it stops first: the store's connection then closes last and removes the log.
    checkpointer: Option<Checkpointer>,
    conn: Connection,
    /// Where the database lives, so request bodies can read blobs on a connection of their own.
    path: Option<PathBuf>,
}

/// The page size of new databases (SQLite's largest).
const PAGE_SIZE: i64 = 65_536;

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let conn = Connection::open(path)
            .with_context(|| format!("opening database {}", path.display()))?;
        let mut store =
            Store::setup(conn).with_context(|| format!("opening database {}", path.display()))?;
        store.path = Some(path.to_path_buf());
        let page_size: i64 = store.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        store.conn.pragma_update(
            None,
            "wal_autocheckpoint",
            checkpoint::AUTO_CHECKPOINT_BYTES / page_size.max(512),
        )?;
        store.checkpointer = Some(Checkpointer::start(path)?);
        Ok(store)
    }

    pub fn open_in_memory() -> Result<Store> {
        Store::setup(Connection::open_in_memory()?)
    }

    /// A reader of this database's blobs for streamed request bodies.
    pub fn blob_reader(&self) -> Result<BlobReader> {
        BlobReader::open(
            self.path
                .as_deref()
                .context("an in-memory database has no blob reader")?,
        )
    }

    fn setup(mut conn: Connection) -> Result<Store> {
        // Another peel on the same database waits for its turn instead of failing with "database is locked".
        conn.busy_timeout(Duration::from_secs(10))?;
        // A new database gets large pages: its rows are mostly images and signatures of megabytes, which SQLite
        // reads, logs and checkpoints a page at a time, a system call each (4 KiB pages: about 900 per 3.7 MB
        // answer, each way). Only settable before the file has any content, and never in WAL mode after.
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .context("this file is not a peel database (or it is damaged)")?;
        if pages == 0 {
            conn.pragma_update(None, "page_size", PAGE_SIZE)?;
        }
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .context("this file is not a peel database (or it is damaged)")?;
        if mode != "wal" && mode != "memory" {
            bail!("could not switch the database to WAL mode (it reports {mode})");
        }
        conn.pragma_update(None, "foreign_keys", true)?;
        // Deleted sessions give their pages back to the file system (only settable before the first table).
        if migrate::schema_version(&conn)? == 0 {
            conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Statement journals spill to a temporary file past 64 KiB, a single page here: keep them in memory.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        migrate::migrate(&mut conn)?;
        Ok(Store {
            checkpointer: None,
            conn,
            path: None,
        })
    }

    pub fn blob(&self, hash: &str) -> Result<Vec<u8>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT bytes FROM blobs WHERE hash = ?1")?;
        stmt.query_row([hash], |r| r.get(0))
            .optional()?
            .with_context(|| format!("blob {hash} is missing"))
    }

    /// Bytes the database file holds in use (pages × page size), for measurements.
    pub fn used_bytes(&self) -> Result<i64> {
        let pages: i64 = self.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let free: i64 = self
            .conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        let size: i64 = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok((pages - free) * size)
    }

    /// Total bytes of all blobs.
    pub fn blob_bytes(&self) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT coalesce(sum(length(bytes)), 0) FROM blobs",
            [],
            |r| r.get(0),
        )?)
    }
}

/// The non-thought text of stored parts JSON.
pub(crate) fn visible_text(parts_json: &str) -> String {
    let parts: Vec<serde_json::Value> = serde_json::from_str(parts_json).unwrap_or_default();
    parts
        .iter()
        .filter(|p| p.get("thought") != Some(&serde_json::Value::Bool(true)))
        .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests;
