//! SQLite: contents as a tree with parent pointers, sessions as named heads, large values as blobs.
//! Knows nothing about HTTP or the terminal.

mod arrivals;
pub mod batches;
mod blobs;
mod checkpoint;
mod contents;
mod interactions;
pub mod journal;
mod migrate;
pub mod open;
mod reader;
mod sessions;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

pub use arrivals::{Placement, Recorded, RecoveryReport};
pub use blobs::{Blob, Decoded, hash_hex};
use checkpoint::Checkpointer;
pub use contents::NewTurn;
pub use migrate::{MIGRATIONS, schema_version};
pub use reader::BlobReader;
pub use sessions::NewSession;

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
    /// The Interactions API's id of this answer, for a turn made over that API: the next turn names it as
    /// `previous_interaction_id` and sends only what is new (`engine/transport.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interaction_id: Option<String>,
    /// The Batch API job (`batches/...`) this answer came from; its cost is at the batch price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
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

    /// Who made a turn recorded before peel kept it, judged from what was kept (the rule of migration 0006): the
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
    /// The absolute folder its images go to (`None` for sessions made before peel kept it).
    pub out_dir: Option<PathBuf>,
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

/// Which take of its turn a prompt is, and how many takes the turn has (see [`crate::engine::tree`] for what
/// makes two prompts takes of one turn, and how they are labelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Take {
    /// 0 for the first take made, 1 for the second, ...
    pub index: usize,
    pub of: usize,
}

/// Where a finished turn went.
#[derive(Debug, Clone, PartialEq)]
pub struct Appended {
    pub user_id: i64,
    pub model_id: i64,
    pub turn: i64,
    /// Which take of that turn it is, and how many the turn now has.
    pub take: Take,
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
    /// Why nothing can be saved, when the database was opened read-only.
    read_only: Option<String>,
    /// Opened read-only as immutable (a WAL database in a read-only folder): other readers must do the same.
    immutable: bool,
}

/// The page size of new databases (SQLite's largest).
const PAGE_SIZE: i64 = 65_536;

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Store {
    /// Opens the database at `path` (creating it if the file does not exist; its folder must). Only peel's own
    /// databases are opened: anything else is refused before it is changed, and so is a schema from a newer peel.
    /// A database this process cannot write is opened read-only: [`Store::read_only`] says why, and every write
    /// fails with that reason.
    pub fn open(path: &Path) -> Result<Store> {
        if path.exists() {
            open::check_header(path)?;
        }
        if let Some(why) = open::read_only_reason(path) {
            return Store::open_read_only(path, why);
        }
        let mut conn = Connection::open(path)
            .with_context(|| format!("opening the database {}", path.display()))?;
        open::busy_timeout(&conn)?;
        let inspection = open::inspect(&conn, path)?;
        let fresh = inspection.tables.is_empty();
        // A new database gets large pages: its rows are mostly images and signatures of megabytes, which SQLite
        // reads, logs and checkpoints a page at a time, a system call each (4 KiB pages: about 900 per 3.7 MB
        // answer, each way). Only settable before the file has any content, and never in WAL mode after.
        let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        if pages == 0 {
            conn.pragma_update(None, "page_size", PAGE_SIZE)?;
        }
        if !inspection.current() || fresh {
            let mode: String = conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .map_err(|e| anyhow::anyhow!("{}", open::sqlite_message(&e)))
                .with_context(|| format!("preparing the database {}", path.display()))?;
            if mode != "wal" {
                bail!(
                    "could not switch the database {} to WAL mode (it reports {mode})",
                    path.display()
                );
            }
        }
        conn.pragma_update(None, "foreign_keys", true)?;
        // Deleted sessions give their pages back to the file system (only settable before the first table).
        if fresh {
            conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Statement journals spill to a temporary file past 64 KiB, a single page here: keep them in memory.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        migrate::migrate(&mut conn).with_context(|| format!("the database {}", path.display()))?;
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        conn.pragma_update(
            None,
            "wal_autocheckpoint",
            checkpoint::AUTO_CHECKPOINT_BYTES / page_size.max(512),
        )?;
        Ok(Store {
            checkpointer: Some(Checkpointer::start(path)?),
            conn,
            path: Some(path.to_path_buf()),
            read_only: None,
            immutable: false,
        })
    }

    /// Opens the database for reading only (history, show, sessions, export); nothing can be saved.
    pub fn open_read_only(path: &Path, why: String) -> Result<Store> {
        if !path.exists() {
            bail!(
                "the database {} does not exist yet and cannot be created: {why}",
                path.display()
            );
        }
        open::check_header(path)?;
        let (conn, immutable) = open::open_read_only(path)?;
        open::busy_timeout(&conn)?;
        let inspection = open::inspect(&conn, path)?;
        open::read_only_usable(&inspection, path, &why)?;
        conn.pragma_update(None, "foreign_keys", true)?;
        Ok(Store {
            checkpointer: None,
            conn,
            path: Some(path.to_path_buf()),
            read_only: Some(why),
            immutable,
        })
    }

    /// Why nothing can be saved, when the database is read-only: "the file /x/peel.db is read-only".
    pub fn read_only(&self) -> Option<&str> {
        self.read_only.as_deref()
    }

    /// Fails, saying why, when nothing can be saved.
    pub fn refuse_if_read_only(&self) -> Result<()> {
        match &self.read_only {
            Some(why) => bail!("nothing can be saved: {why}"),
            None => Ok(()),
        }
    }

    /// Where the database lives (`None` in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// A database fault in words that name the file ("the disk holding the database X is full").
    pub fn explain(&self, error: &anyhow::Error) -> Option<String> {
        open::explain(error, self.path.as_deref().unwrap_or(Path::new(":memory:")))
    }

    pub fn open_in_memory() -> Result<Store> {
        let mut conn = Connection::open_in_memory()?;
        conn.pragma_update(None, "foreign_keys", true)?;
        migrate::migrate(&mut conn)?;
        Ok(Store {
            checkpointer: None,
            conn,
            path: None,
            read_only: None,
            immutable: false,
        })
    }

    /// A reader of this database's blobs for streamed request bodies.
    pub fn blob_reader(&self) -> Result<BlobReader> {
        BlobReader::open(
            self.path
                .as_deref()
                .context("an in-memory database has no blob reader")?,
            self.immutable,
        )
    }

    /// After a commit of a turn: asks the background checkpoint (if this store has one) to run soon; never blocks.
    fn nudge_checkpoint(&self) {
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.nudge();
        }
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

/// The session names of the database at `path`, read-only, for shell completion: nothing is created or changed,
/// and a file that is not a peel database just has none.
pub fn session_names_read_only(path: &Path) -> Result<Vec<String>> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let mut stmt = conn.prepare("SELECT name FROM sessions ORDER BY used_at DESC")?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .filter_map(|n| n.ok())
        .filter(|n| crate::names::validate_session_name(n).is_ok())
        .collect();
    Ok(names)
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
mod fault_tests;
#[cfg(test)]
mod tests;
