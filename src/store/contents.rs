//! Contents: the conversation tree. A turn appends two rows (the prompt and the answer) in one transaction.

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::blobs::{self, Decoded};
use super::sessions::{NewSession, insert_branch, insert_session, set_head};
use super::{Appended, ContentRow, SessionRow, Store, Take, TurnMeta, now_ms};
use crate::gemini::signatures::{self, Family, Origin};
use crate::gemini::types::{Content, Part};

const CONTENT_COLUMNS: &str =
    "c.id, c.parent_id, c.depth, c.role, c.parts, c.meta, c.created_at, c.session_id, c.extra";

fn content_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ContentRow> {
    let meta: String = row.get(5)?;
    Ok(ContentRow {
        id: row.get(0)?,
        parent_id: row.get(1)?,
        depth: row.get(2)?,
        role: row.get(3)?,
        parts_json: row.get(4)?,
        extra: row
            .get::<_, Option<String>>(8)?
            .and_then(|extra| serde_json::from_str(&extra).ok())
            .unwrap_or_default(),
        meta: serde_json::from_str(&meta).unwrap_or_default(),
        created_at: row.get(6)?,
        session_id: row.get(7)?,
    })
}

/// A finished turn to record: the prompt as sent and the answer exactly as received.
#[derive(Debug, Clone, Copy)]
pub struct NewTurn<'a> {
    pub user: &'a Content,
    pub model: &'a Content,
    pub meta: &'a TurnMeta,
}

/// Where [`insert_turn`] put a turn.
#[derive(Debug, Clone, Copy)]
pub(super) struct Inserted {
    pub user_id: i64,
    pub model_id: i64,
    /// The turn it is, counted from 1 ([`ContentRow::turn`] of the model content).
    pub turn: i64,
}

/// Inserts a turn's blobs and two contents under `parent`, owned by `session_id`.
/// `user_decoded` and `model_decoded` are the contents' parts already decoded ([`Decoded::of`]) or already in the
/// store's form ([`Decoded::stored`]), when the caller has them; the parts of that content are then not read.
pub(super) fn insert_turn(
    conn: &Connection,
    session_id: i64,
    parent: Option<i64>,
    turn: NewTurn<'_>,
    user_decoded: Option<&Decoded>,
    model_decoded: Option<&Decoded>,
) -> Result<Inserted> {
    let (user_here, model_here);
    let user = match user_decoded {
        Some(decoded) => decoded,
        None => {
            user_here = Decoded::of(&turn.user.parts)?;
            &user_here
        }
    };
    let model = match model_decoded {
        Some(decoded) => decoded,
        None => {
            model_here = Decoded::of(&turn.model.parts)?;
            &model_here
        }
    };
    let (user_json, model_json) = (&user.json, &model.json);
    blobs::put_blobs(conn, user.blobs.iter().chain(&model.blobs))?;
    let parent_depth: i64 = match parent {
        Some(id) => conn.query_row("SELECT depth FROM contents WHERE id = ?1", [id], |r| {
            r.get(0)
        })?,
        None => -1,
    };
    let now = now_ms();
    let mut insert = conn.prepare_cached(
        "INSERT INTO contents (parent_id, depth, role, parts, meta, created_at, session_id, extra)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    insert.execute(params![
        parent,
        parent_depth + 1,
        "user",
        user_json,
        "{}",
        now,
        session_id,
        extra_json(turn.user)?
    ])?;
    let user_id = conn.last_insert_rowid();
    let meta = serde_json::to_string(turn.meta)?;
    insert.execute(params![
        user_id,
        parent_depth + 2,
        "model",
        model_json,
        meta,
        now,
        session_id,
        extra_json(turn.model)?
    ])?;
    let model_id = conn.last_insert_rowid();
    let mut link = conn
        .prepare_cached("INSERT OR IGNORE INTO content_blobs (content_id, hash) VALUES (?1, ?2)")?;
    for (id, json) in [(user_id, user_json), (model_id, model_json)] {
        for hash in blobs::references(json)? {
            link.execute(params![id, hash])?;
        }
    }
    Ok(Inserted {
        user_id,
        model_id,
        turn: (parent_depth + 2) / 2 + 1,
    })
}

/// Where a committed turn went: its number and take, and the branch it went to when `branched_to` is set.
pub(super) fn placed_turn(
    store: &Store,
    inserted: Inserted,
    branched_to: Option<SessionRow>,
) -> Result<Appended> {
    Ok(Appended {
        user_id: inserted.user_id,
        model_id: inserted.model_id,
        turn: inserted.turn,
        take: store.take(inserted.user_id)?,
        branched_to,
    })
}

/// A content's own unknown fields as stored: `None` when it has none.
fn extra_json(content: &Content) -> Result<Option<String>> {
    Ok(if content.extra.is_empty() {
        None
    } else {
        Some(serde_json::to_string(&content.extra)?)
    })
}

impl Store {
    /// The contents from the root to `head`, in order, parts still referring to blobs.
    pub fn chain(&self, head: Option<i64>) -> Result<Vec<ContentRow>> {
        let Some(head) = head else {
            return Ok(Vec::new());
        };
        let mut stmt = self.conn.prepare_cached(&format!(
            "WITH RECURSIVE chain(id) AS (
                 SELECT ?1
                 UNION ALL
                 SELECT c.parent_id FROM contents c JOIN chain ON c.id = chain.id WHERE c.parent_id IS NOT NULL
             )
             SELECT {CONTENT_COLUMNS} FROM chain JOIN contents c ON c.id = chain.id ORDER BY c.depth"
        ))?;
        let rows = stmt
            .query_map([head], content_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Every content descending from `root` (the whole family of a thread: branches, retries, undone turns), and
    /// from the other first turns `session` made (a retried first turn starts a root of its own), ordered so that
    /// parents come before children and siblings in the order they were made.
    pub fn family(&self, root: i64, session: Option<i64>) -> Result<Vec<ContentRow>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "WITH RECURSIVE family(id) AS (
                 SELECT id FROM contents WHERE parent_id IS NULL AND (id = ?1 OR session_id IS ?2)
                 UNION ALL
                 SELECT c.id FROM contents c JOIN family f ON c.parent_id = f.id
             )
             SELECT {CONTENT_COLUMNS} FROM family JOIN contents c ON c.id = family.id ORDER BY c.depth, c.id"
        ))?;
        let rows = stmt
            .query_map(params![root, session], content_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Which take of its turn a prompt is, and how many takes that turn has. Takes are the prompts that continue
    /// from the same answer, whichever session made them; first turns are takes of each other only when one
    /// session made them (a retried first turn). Numbered in the order made.
    pub fn take(&self, user_id: i64) -> Result<Take> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT count(CASE WHEN c.id < me.id THEN 1 END), count(*)
             FROM contents me JOIN contents c
               ON c.role = 'user' AND c.parent_id IS me.parent_id
              AND (me.parent_id IS NOT NULL OR c.session_id IS me.session_id)
             WHERE me.id = ?1",
        )?;
        let (index, of): (i64, i64) = stmt.query_row([user_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(Take {
            index: index as usize,
            of: of as usize,
        })
    }

    /// One content, parts not yet read back from the blobs.
    pub fn content(&self, id: i64) -> Result<ContentRow> {
        let sql = format!("SELECT {CONTENT_COLUMNS} FROM contents c WHERE c.id = ?1");
        self.conn
            .query_row(&sql, [id], content_from_row)
            .with_context(|| format!("content {id} is gone from the database"))
    }

    /// How many takes there are of the turn that continues from `parent` (for a first turn, the first turns
    /// `session` made): the next one made is take number this (0-based).
    pub fn takes_under(&self, parent: Option<i64>, session: Option<i64>) -> Result<usize> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM contents
             WHERE role = 'user' AND parent_id IS ?1 AND (?1 IS NOT NULL OR session_id IS ?2)",
            params![parent, session],
            |r| r.get(0),
        )?;
        Ok(n as usize)
    }

    /// The first take of the turn `user_id` is a take of: its answer, and the session that made it (if it is
    /// still there). `None` when that answer is gone.
    pub fn first_take(&self, user_id: i64) -> Result<Option<(ContentRow, Option<SessionRow>)>> {
        let sql = format!(
            "SELECT {CONTENT_COLUMNS} FROM contents me
             JOIN contents u ON u.role = 'user' AND u.parent_id IS me.parent_id
              AND (me.parent_id IS NOT NULL OR u.session_id IS me.session_id)
             JOIN contents c ON c.parent_id = u.id
             WHERE me.id = ?1
             ORDER BY u.id, c.id LIMIT 1"
        );
        let Some(model) = self
            .conn
            .query_row(&sql, [user_id], content_from_row)
            .optional()?
        else {
            return Ok(None);
        };
        let maker = match model.session_id {
            Some(id) => Some(self.session_by_id(id)?),
            None => None,
        };
        Ok(Some((model, maker)))
    }

    /// A content's parts exactly as they were received or sent.
    pub fn parts(&self, row: &ContentRow) -> Result<Vec<Part>> {
        blobs::internalize(&row.parts_json, |hash| self.blob(hash))
            .with_context(|| format!("reading content {} from the database", row.id))
    }

    /// The history up to `head` as a request to a model of family `target` carries it: each large value left in
    /// the store as a typed reference that the streamed body reads ([`crate::gemini::body`]), and the dummy
    /// signature where a model content did not come from that family ([`signatures::prepare`]). The stored
    /// contents are not changed.
    pub fn contents_for(&self, head: Option<i64>, target: &Family) -> Result<Vec<Content>> {
        let chain = self.chain(head)?;
        let origins: Vec<Origin> = chain
            .iter()
            .map(|row| match row.role.as_str() {
                "model" => row.meta.origin(),
                _ => Origin::Unknown,
            })
            .collect();
        let contents = chain
            .iter()
            .map(|row| {
                let parts = blobs::internalize_refs(&row.parts_json)
                    .with_context(|| format!("reading content {} from the database", row.id))?;
                Ok(Content {
                    role: Some(row.role.clone()),
                    parts,
                    extra: row.extra.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(signatures::prepare(contents, &origins, target))
    }

    /// A stored content as it was received or sent, blobs put back.
    pub fn content_of(&self, row: &ContentRow) -> Result<Content> {
        Ok(Content {
            role: Some(row.role.clone()),
            parts: self.parts(row)?,
            extra: row.extra.clone(),
        })
    }

    /// Records a finished turn in one transaction: blobs, the prompt and the answer (under `parent`: the head, or
    /// an earlier content for a retry), and the session's head. The head moves only if it is still
    /// `expected_head` (what this process last saw); if another process moved it meanwhile, the turn goes to a new
    /// branch instead, so neither process loses work.
    pub fn append_turn(
        &mut self,
        session_id: i64,
        expected_head: Option<i64>,
        parent: Option<i64>,
        turn: NewTurn<'_>,
    ) -> Result<Appended> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (name, head, settings, out_dir): (String, Option<i64>, String, Option<String>) = tx
            .query_row(
                "SELECT name, head_id, settings, out_dir FROM sessions WHERE id = ?1",
                [session_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?;
        let branched = head != expected_head;
        let owner = if branched {
            insert_branch(&tx, &name, &settings, out_dir.as_deref(), parent)?
        } else {
            session_id
        };
        let inserted = insert_turn(&tx, owner, parent, turn, None, None)?;
        set_head(&tx, owner, inserted.model_id, now_ms())?;
        tx.commit()?;
        self.nudge_checkpoint();
        let branched_to = if branched {
            Some(self.session_by_id(owner)?)
        } else {
            None
        };
        placed_turn(self, inserted, branched_to)
    }

    /// A thread brought in from elsewhere (`peel import`), as a new session, in one transaction.
    pub fn import_thread(
        &mut self,
        name: &str,
        new: NewSession<'_>,
        turns: &[NewTurn<'_>],
    ) -> Result<SessionRow> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id = insert_session(&tx, name, new)?;
        let mut head = None;
        for turn in turns {
            head = Some(insert_turn(&tx, id, head, *turn, None, None)?.model_id);
        }
        tx.execute(
            "UPDATE sessions SET head_id = ?2 WHERE id = ?1",
            params![id, head],
        )?;
        tx.commit()?;
        self.session_by_id(id)
    }
}
