//! Sessions: named pointers into the contents tree. Branching inserts a row; undo and redo move a pointer; deleting
//! a session takes with it only what no remaining session reaches.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::blobs;
use super::{SessionRow, SessionSummary, Store, now_ms, visible_text};
use crate::names::{fit_session_name, validate_session_name};
use crate::settings::Settings;

pub(super) const SESSION_COLUMNS: &str = "id, name, head_id, settings, origin_session, origin_head_id, redo, \
                                          created_at, updated_at, out_dir";

pub(super) fn session_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
    let settings: String = row.get(3)?;
    let redo: String = row.get(6)?;
    Ok(SessionRow {
        id: row.get(0)?,
        name: row.get(1)?,
        head_id: row.get(2)?,
        // A settings column this binary cannot read falls back to defaults rather than locking the session away.
        settings: serde_json::from_str(&settings).unwrap_or_default(),
        origin_session: row.get(4)?,
        origin_head_id: row.get(5)?,
        redo: serde_json::from_str(&redo).unwrap_or_default(),
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
        out_dir: row.get::<_, Option<String>>(9)?.map(PathBuf::from),
    })
}

/// The first free name among `base` (when `bare_first`), then `base{sep}2`, `base{sep}3`, ... each cut to stay a
/// valid session name (so `-s` opens whatever peel names).
pub(super) fn free_name_in(
    conn: &Connection,
    base: &str,
    sep: char,
    bare_first: bool,
) -> Result<String> {
    let taken = |name: &str| -> Result<bool> {
        Ok(conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sessions WHERE name = ?1)",
            [name],
            |r| r.get(0),
        )?)
    };
    let bare = fit_session_name(base, "");
    if bare_first && !taken(&bare)? {
        return Ok(bare);
    }
    let mut n = 2;
    loop {
        let name = fit_session_name(base, &format!("{sep}{n}"));
        if !taken(&name)? {
            return Ok(name);
        }
        n += 1;
    }
}

/// The automatic name of a branch of `from`: `fox~2`, `fox~3`, ... (a branch of `fox~2` is numbered on from `fox`).
pub(super) fn branch_name_in(conn: &Connection, from: &str) -> Result<String> {
    let base = match from.rsplit_once('~') {
        Some((base, n)) if !base.is_empty() && n.parse::<u32>().is_ok() => base,
        _ => from,
    };
    free_name_in(conn, base, '~', false)
}

/// What a new session row holds besides its name.
#[derive(Debug, Clone, Copy)]
pub struct NewSession<'a> {
    pub settings: &'a Settings,
    pub head_id: Option<i64>,
    /// The session it branched from, and where.
    pub origin: Option<(&'a str, Option<i64>)>,
    /// The absolute folder its images go to (under `<out_dir>/<name>/`).
    pub out_dir: Option<&'a Path>,
}

impl<'a> NewSession<'a> {
    /// An empty session with these settings, not branched from anything, its folder not yet decided.
    pub fn empty(settings: &'a Settings) -> NewSession<'a> {
        NewSession {
            settings,
            head_id: None,
            origin: None,
            out_dir: None,
        }
    }
}

/// A new session row; returns its id.
pub(super) fn insert_session(conn: &Connection, name: &str, new: NewSession<'_>) -> Result<i64> {
    validate_session_name(name)?;
    let now = now_ms();
    let out_dir = new.out_dir.map(|d| d.to_string_lossy().into_owned());
    conn.execute(
        "INSERT INTO sessions (name, head_id, settings, origin_session, origin_head_id, created_at, updated_at, used_at,
                               out_dir)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6, ?7)",
        params![
            name,
            new.head_id,
            serde_json::to_string(new.settings)?,
            new.origin.map(|o| o.0),
            new.origin.and_then(|o| o.1),
            now,
            out_dir
        ],
    )
    .with_context(|| format!("creating session {name:?}"))?;
    Ok(conn.last_insert_rowid())
}

/// A branch of session `from` (whose stored settings JSON and output folder it takes) at `parent`, for a turn that
/// found `from`'s head moved by another process; returns its id. Its head is set once the turn is in.
pub(super) fn insert_branch(
    conn: &Connection,
    from: &str,
    settings: &str,
    out_dir: Option<&str>,
    parent: Option<i64>,
) -> Result<i64> {
    let branch = branch_name_in(conn, from)?;
    let settings: Settings = serde_json::from_str(settings).unwrap_or_default();
    let new = NewSession {
        settings: &settings,
        head_id: None,
        origin: Some((from, parent)),
        out_dir: out_dir.map(Path::new),
    };
    insert_session(conn, &branch, new)
}

/// Moves session `id`'s head to a turn just recorded (`now`): nothing is left to redo, and it is the session in use.
pub(super) fn set_head(conn: &Connection, id: i64, head: i64, now: i64) -> Result<()> {
    conn.execute(
        "UPDATE sessions SET head_id = ?2, redo = '[]', updated_at = ?3, used_at = ?3 WHERE id = ?1",
        params![id, head, now],
    )?;
    Ok(())
}

impl Store {
    pub fn session(&self, name: &str) -> Result<Option<SessionRow>> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE name = ?1");
        Ok(self
            .conn
            .query_row(&sql, [name], session_from_row)
            .optional()?)
    }

    /// Session `id`, if it is still there (another process may have deleted it).
    pub fn session_if_any(&self, id: i64) -> Result<Option<SessionRow>> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1");
        Ok(self
            .conn
            .query_row(&sql, [id], session_from_row)
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

    pub fn create_session(&self, name: &str, new: NewSession<'_>) -> Result<SessionRow> {
        if self.session(name)?.is_some() {
            bail!("a session named {name:?} already exists");
        }
        let id = insert_session(&self.conn, name, new)?;
        self.session_by_id(id)
    }

    /// A new session sharing `from`'s history up to `head` (one row; nothing is copied), with `settings` for its
    /// next turns and `from`'s output folder.
    pub fn branch_session(
        &self,
        from: &SessionRow,
        name: &str,
        head: Option<i64>,
        settings: &Settings,
    ) -> Result<SessionRow> {
        let new = NewSession {
            settings,
            head_id: head,
            origin: Some((&from.name, head)),
            out_dir: from.out_dir.as_deref(),
        };
        self.create_session(name, new)
    }

    /// Where a session's images go, kept so that every turn lands in one folder wherever peel runs from.
    pub fn set_out_dir(&self, id: i64, dir: &Path) -> Result<()> {
        self.conn.execute(
            "UPDATE sessions SET out_dir = ?2 WHERE id = ?1",
            params![id, dir.to_string_lossy()],
        )?;
        Ok(())
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
        free_name_in(&self.conn, base, '-', true)
    }

    /// The automatic name of a branch: `fox~2`, `fox~3`, ...
    pub fn free_branch_name(&self, from: &str) -> Result<String> {
        branch_name_in(&self.conn, from)
    }

    /// Moves the head (undo, redo) if it is still where this process saw it; false if another process moved it.
    pub fn move_head(
        &self,
        id: i64,
        expected: Option<i64>,
        head: Option<i64>,
        redo: &[i64],
    ) -> Result<bool> {
        let moved = self.conn.execute(
            "UPDATE sessions SET head_id = ?3, redo = ?4, updated_at = ?5, used_at = ?5
             WHERE id = ?1 AND head_id IS ?2",
            params![id, expected, head, serde_json::to_string(redo)?, now_ms()],
        )?;
        Ok(moved == 1)
    }

    pub fn list_sessions(&self) -> Result<Vec<SessionSummary>> {
        let columns: Vec<String> = SESSION_COLUMNS
            .split(", ")
            .map(|c| format!("s.{}", c.trim()))
            .collect();
        let sql = format!(
            "SELECT {}, head.depth, prompt.parts, origin.depth
             FROM sessions s
             LEFT JOIN contents head ON head.id = s.head_id
             LEFT JOIN contents prompt ON prompt.id = head.parent_id
             LEFT JOIN contents origin ON origin.id = s.origin_head_id
             ORDER BY s.updated_at DESC, s.id DESC",
            columns.join(", ")
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([], |row| {
            // After the session's own columns.
            let depth: Option<i64> = row.get(10)?;
            let prompt: Option<String> = row.get(11)?;
            let origin: Option<i64> = row.get(12)?;
            Ok(SessionSummary {
                session: session_from_row(row)?,
                turns: depth.map_or(0, |d| (d + 1) / 2),
                origin_turn: origin.map(|d| (d + 1) / 2),
                last_prompt: prompt.map(|parts| visible_text(&parts)),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Deletes a session and, in the same transaction, every content and blob that no remaining session reaches
    /// (through its history, its undone turns, or the turns it made). Then gives the freed pages back to the file
    /// system when that is worth it.
    pub fn delete_session(&mut self, id: i64) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM sessions WHERE id = ?1", [id])?;
        tx.execute(
            "WITH RECURSIVE reached(id) AS (
                 SELECT head_id FROM sessions WHERE head_id IS NOT NULL
                 UNION SELECT origin_head_id FROM sessions WHERE origin_head_id IS NOT NULL
                 UNION SELECT value FROM sessions, json_each(sessions.redo)
                 UNION SELECT id FROM contents WHERE session_id IS NOT NULL
                 UNION SELECT into_parent FROM batches WHERE into_parent IS NOT NULL AND fetched_at IS NULL
                 UNION SELECT c.parent_id FROM contents c JOIN reached r ON c.id = r.id WHERE c.parent_id IS NOT NULL
             )
             DELETE FROM contents WHERE id NOT IN (SELECT id FROM reached)",
            [],
        )?;
        blobs::delete_unused(&tx)?;
        tx.commit()?;
        self.reclaim_space()
    }

    /// Returns free pages to the file system once they are a noticeable share of the file, so create/delete
    /// cycles do not grow it.
    fn reclaim_space(&self) -> Result<()> {
        let free: i64 = self
            .conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        let total: i64 = self.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        if free > 0 && free * 10 >= total {
            let mode: i64 = self
                .conn
                .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
            if mode == 2 {
                // Frees one page per step: run it to the end.
                let mut stmt = self.conn.prepare("PRAGMA incremental_vacuum")?;
                let mut rows = stmt.query([])?;
                while rows.next()?.is_some() {}
            } else {
                self.conn.execute_batch("VACUUM")?;
            }
            // The file shrinks only when a checkpoint copies the whole log back: do it now. If another process is
            // reading or checkpointing, the space comes back at a later checkpoint instead.
            let _pause = self.checkpointer.as_ref().and_then(|c| c.pause());
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(())
    }
}
