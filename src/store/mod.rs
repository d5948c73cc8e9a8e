//! SQLite: contents as a tree with parent pointers, sessions as named heads, large values as blobs.
//! Knows nothing about HTTP or the terminal.

mod blobs;
mod migrate;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

pub use blobs::{Blob, hash_hex};
pub use migrate::{MIGRATIONS, schema_version};

use crate::gemini::types::{Content, Part, UsageMetadata};
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
    pub meta: TurnMeta,
    pub created_at: i64,
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
    pub created_at: i64,
    pub updated_at: i64,
}

/// A line of `peel sessions`.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSummary {
    pub session: SessionRow,
    pub turns: i64,
    pub last_prompt: Option<String>,
}

/// Where a finished turn went.
#[derive(Debug, Clone, PartialEq)]
pub struct Appended {
    pub user_id: i64,
    pub model_id: i64,
    pub turn: i64,
    /// Set when another process moved the session's head while this turn was in flight: the turn went to this new
    /// branch instead of overwriting theirs.
    pub branched_to: Option<SessionRow>,
}

pub struct Store {
    conn: Connection,
}

const SESSION_COLUMNS: &str =
    "id, name, head_id, settings, origin_session, origin_head_id, created_at, updated_at";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn session_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
    let settings: String = row.get(3)?;
    Ok(SessionRow {
        id: row.get(0)?,
        name: row.get(1)?,
        head_id: row.get(2)?,
        // A settings column this binary cannot read falls back to defaults rather than locking the session away.
        settings: serde_json::from_str(&settings).unwrap_or_default(),
        origin_session: row.get(4)?,
        origin_head_id: row.get(5)?,
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
    })
}

fn content_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ContentRow> {
    let meta: String = row.get(5)?;
    Ok(ContentRow {
        id: row.get(0)?,
        parent_id: row.get(1)?,
        depth: row.get(2)?,
        role: row.get(3)?,
        parts_json: row.get(4)?,
        meta: serde_json::from_str(&meta).unwrap_or_default(),
        created_at: row.get(6)?,
    })
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let conn = Connection::open(path)
            .with_context(|| format!("opening database {}", path.display()))?;
        Store::setup(conn).with_context(|| format!("opening database {}", path.display()))
    }

    pub fn open_in_memory() -> Result<Store> {
        Store::setup(Connection::open_in_memory()?)
    }

    fn setup(mut conn: Connection) -> Result<Store> {
        // Another peel on the same database waits for its turn instead of failing with "database is locked".
        conn.busy_timeout(Duration::from_secs(10))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .context("this file is not a peel database (or it is damaged)")?;
        if mode != "wal" && mode != "memory" {
            bail!("could not switch the database to WAL mode (it reports {mode})");
        }
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        migrate::migrate(&mut conn)?;
        Ok(Store { conn })
    }

    // ---- sessions ----

    pub fn session(&self, name: &str) -> Result<Option<SessionRow>> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE name = ?1");
        Ok(self
            .conn
            .query_row(&sql, [name], session_from_row)
            .optional()?)
    }

    pub fn session_by_id(&self, id: i64) -> Result<SessionRow> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1");
        self.conn
            .query_row(&sql, [id], session_from_row)
            .context("the session is gone from the database")
    }

    /// The session opened or changed last, for `peel -r`.
    pub fn most_recent_session(&self) -> Result<Option<SessionRow>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions ORDER BY used_at DESC, id DESC LIMIT 1"
        );
        Ok(self.conn.query_row(&sql, [], session_from_row).optional()?)
    }

    pub fn create_session(
        &self,
        name: &str,
        settings: &Settings,
        head_id: Option<i64>,
    ) -> Result<SessionRow> {
        let now = now_ms();
        self.conn
            .execute(
                "INSERT INTO sessions (name, head_id, settings, created_at, updated_at, used_at)
                 VALUES (?1, ?2, ?3, ?4, ?4, ?4)",
                params![name, head_id, serde_json::to_string(settings)?, now],
            )
            .with_context(|| format!("creating session {name:?}"))?;
        self.session_by_id(self.conn.last_insert_rowid())
    }

    pub fn rename_session(&self, id: i64, name: &str) -> Result<()> {
        if self.session(name)?.is_some_and(|s| s.id != id) {
            bail!("a session named {name:?} already exists");
        }
        self.conn.execute(
            "UPDATE sessions SET name = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, name, now_ms()],
        )?;
        Ok(())
    }

    pub fn save_settings(&self, id: i64, settings: &Settings) -> Result<()> {
        self.conn.execute(
            "UPDATE sessions SET settings = ?2 WHERE id = ?1",
            params![id, serde_json::to_string(settings)?],
        )?;
        Ok(())
    }

    /// Marks the session as the one in use, for `peel -r`.
    pub fn touch(&self, id: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE sessions SET used_at = ?2 WHERE id = ?1",
            params![id, now_ms()],
        )?;
        Ok(())
    }

    /// The first of `base`, `base-2`, `base-3`, ... that no session has.
    pub fn free_name(&self, base: &str) -> Result<String> {
        let mut candidate = base.to_string();
        let mut n = 1;
        while self.session(&candidate)?.is_some() {
            n += 1;
            candidate = format!("{base}-{n}");
        }
        Ok(candidate)
    }

    pub fn list_sessions(&self) -> Result<Vec<SessionSummary>> {
        let sql = format!(
            "SELECT {}, head.depth, prompt.parts
             FROM sessions s
             LEFT JOIN contents head ON head.id = s.head_id
             LEFT JOIN contents prompt ON prompt.id = head.parent_id
             ORDER BY s.updated_at DESC, s.id DESC",
            SESSION_COLUMNS
                .split(", ")
                .map(|c| format!("s.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([], |row| {
            let depth: Option<i64> = row.get(8)?;
            let prompt: Option<String> = row.get(9)?;
            Ok((session_from_row(row)?, depth, prompt))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (session, depth, prompt) = row?;
            let last_prompt = prompt.map(|parts_json| visible_text(&parts_json));
            out.push(SessionSummary {
                session,
                turns: depth.map_or(0, |d| (d + 1) / 2),
                last_prompt,
            });
        }
        Ok(out)
    }

    // ---- contents ----

    /// The contents from the root to `head`, in order, parts still referring to blobs.
    pub fn chain(&self, head: Option<i64>) -> Result<Vec<ContentRow>> {
        let Some(head) = head else {
            return Ok(Vec::new());
        };
        let mut stmt = self.conn.prepare_cached(
            "WITH RECURSIVE chain(id) AS (
                 SELECT ?1
                 UNION ALL
                 SELECT c.parent_id FROM contents c JOIN chain ON c.id = chain.id WHERE c.parent_id IS NOT NULL
             )
             SELECT c.id, c.parent_id, c.depth, c.role, c.parts, c.meta, c.created_at
             FROM chain JOIN contents c ON c.id = chain.id
             ORDER BY c.depth",
        )?;
        let rows = stmt
            .query_map([head], content_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// A content's parts exactly as they were received or sent.
    pub fn parts(&self, row: &ContentRow) -> Result<Vec<Part>> {
        blobs::internalize(&row.parts_json, |hash| self.blob(hash))
            .with_context(|| format!("reading content {} from the database", row.id))
    }

    /// The whole `contents` of a request, from the root to `head`.
    pub fn contents(&self, head: Option<i64>) -> Result<Vec<Content>> {
        self.chain(head)?
            .iter()
            .map(|row| {
                Ok(Content {
                    role: Some(row.role.clone()),
                    parts: self.parts(row)?,
                    extra: Default::default(),
                })
            })
            .collect()
    }

    pub fn blob(&self, hash: &str) -> Result<Vec<u8>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT bytes FROM blobs WHERE hash = ?1")?;
        stmt.query_row([hash], |r| r.get(0))
            .optional()?
            .with_context(|| format!("blob {hash} is missing"))
    }

    /// Records a finished turn in one transaction: blobs, the user content, the model content, and the session's
    /// head. The head moves only if it is still `expected_head` (what this process last saw); if another process
    /// moved it meanwhile, the turn is kept on a new branch instead, so neither process loses work.
    pub fn append_turn(
        &mut self,
        session_id: i64,
        expected_head: Option<i64>,
        user: &Content,
        model: &Content,
        meta: &TurnMeta,
    ) -> Result<Appended> {
        let (user_json, mut new_blobs) = blobs::externalize(&user.parts)?;
        let (model_json, model_blobs) = blobs::externalize(&model.parts)?;
        new_blobs.extend(model_blobs);
        let now = now_ms();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut put_blob =
                tx.prepare_cached("INSERT OR IGNORE INTO blobs (hash, bytes) VALUES (?1, ?2)")?;
            for blob in &new_blobs {
                put_blob.execute(params![blob.hash, blob.bytes])?;
            }
        }
        let parent_depth: i64 = match expected_head {
            Some(head) => {
                tx.query_row("SELECT depth FROM contents WHERE id = ?1", [head], |r| {
                    r.get(0)
                })?
            }
            None => -1,
        };
        let insert_content = |parent: Option<i64>,
                              depth: i64,
                              role: &str,
                              parts: &str,
                              meta: &str| {
            tx.execute(
                "INSERT INTO contents (parent_id, depth, role, parts, meta, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![parent, depth, role, parts, meta, now],
            )
            .map(|_| tx.last_insert_rowid())
        };
        let user_id = insert_content(expected_head, parent_depth + 1, "user", &user_json, "{}")?;
        let model_id = insert_content(
            Some(user_id),
            parent_depth + 2,
            "model",
            &model_json,
            &serde_json::to_string(meta)?,
        )?;
        for (id, json) in [(user_id, &user_json), (model_id, &model_json)] {
            for hash in blobs::references(json)? {
                tx.execute(
                    "INSERT OR IGNORE INTO content_blobs (content_id, hash) VALUES (?1, ?2)",
                    params![id, hash],
                )?;
            }
        }
        let moved = tx.execute(
            "UPDATE sessions SET head_id = ?2, updated_at = ?4, used_at = ?4 WHERE id = ?1 AND head_id IS ?3",
            params![session_id, model_id, expected_head, now],
        )?;
        let branched_to = if moved == 1 {
            None
        } else {
            let (name, settings): (String, String) = tx.query_row(
                "SELECT name, settings FROM sessions WHERE id = ?1",
                [session_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let mut branch = String::new();
            for n in 2.. {
                branch = format!("{name}~{n}");
                let taken: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM sessions WHERE name = ?1)",
                    [&branch],
                    |r| r.get(0),
                )?;
                if !taken {
                    break;
                }
            }
            tx.execute(
                "INSERT INTO sessions (name, head_id, settings, origin_session, origin_head_id, created_at, updated_at,
                                       used_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6)",
                params![branch, model_id, settings, name, expected_head, now],
            )?;
            Some(tx.last_insert_rowid())
        };
        tx.commit()?;
        let branched_to = branched_to.map(|id| self.session_by_id(id)).transpose()?;
        Ok(Appended {
            user_id,
            model_id,
            turn: (parent_depth + 2) / 2 + 1,
            branched_to,
        })
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
fn visible_text(parts_json: &str) -> String {
    let parts: Vec<serde_json::Value> = serde_json::from_str(parts_json).unwrap_or_default();
    parts
        .iter()
        .filter(|p| p.get("thought") != Some(&serde_json::Value::Bool(true)))
        .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    fn model_answer(seed: u8) -> Content {
        let mut image = Part::image("image/jpeg", STANDARD.encode(vec![seed; 4096]));
        image.thought_signature = Some(STANDARD.encode(vec![seed ^ 0xff; 4096]));
        Content {
            role: Some("model".into()),
            parts: vec![
                Part {
                    text: Some("thinking".into()),
                    thought: Some(true),
                    ..Part::default()
                },
                image,
            ],
            extra: Default::default(),
        }
    }

    fn turn(store: &mut Store, session: &SessionRow, head: Option<i64>, seed: u8) -> Appended {
        let user = Content::user(vec![Part::text(format!("prompt {seed}"))]);
        store
            .append_turn(
                session.id,
                head,
                &user,
                &model_answer(seed),
                &TurnMeta::default(),
            )
            .unwrap()
    }

    #[test]
    fn turns_chain_and_round_trip() {
        let mut store = Store::open_in_memory().unwrap();
        let s = store
            .create_session("fox", &Settings::default(), None)
            .unwrap();
        let a = turn(&mut store, &s, None, 1);
        let b = turn(&mut store, &s, Some(a.model_id), 2);
        assert_eq!((a.turn, b.turn), (1, 2));
        let contents = store.contents(Some(b.model_id)).unwrap();
        assert_eq!(contents.len(), 4);
        assert_eq!(contents[3], model_answer(2));
        assert_eq!(contents[2].parts[0].text.as_deref(), Some("prompt 2"));
        let summary = &store.list_sessions().unwrap()[0];
        assert_eq!(
            (summary.turns, summary.last_prompt.as_deref()),
            (2, Some("prompt 2"))
        );
    }

    #[test]
    fn blobs_are_stored_once() {
        let mut store = Store::open_in_memory().unwrap();
        let s = store
            .create_session("a", &Settings::default(), None)
            .unwrap();
        let first = turn(&mut store, &s, None, 9);
        turn(&mut store, &s, Some(first.model_id), 9);
        assert_eq!(store.blob_bytes().unwrap(), 2 * 4096);
    }

    #[test]
    fn a_moved_head_sends_the_turn_to_a_new_branch() {
        let mut store = Store::open_in_memory().unwrap();
        let s = store
            .create_session("fox", &Settings::default(), None)
            .unwrap();
        let first = turn(&mut store, &s, None, 1);
        turn(&mut store, &s, Some(first.model_id), 2); // "the other process"
        let late = turn(&mut store, &s, Some(first.model_id), 3);
        let branch = late.branched_to.expect("a branch");
        assert_eq!(branch.name, "fox~2");
        assert_eq!(branch.origin_session.as_deref(), Some("fox"));
        assert_eq!(branch.head_id, Some(late.model_id));
        assert_ne!(
            store.session("fox").unwrap().unwrap().head_id,
            Some(late.model_id)
        );
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("peel.db");
        std::fs::write(&path, vec![b'x'; 8192]).unwrap();
        let err = format!("{:#}", Store::open(&path).err().unwrap());
        assert!(err.contains("not a peel database"), "{err}");
    }
}
