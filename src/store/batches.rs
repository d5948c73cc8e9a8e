//! Batch API jobs in the database (`migrations/0005_batches.sql`): a job is recorded before it is submitted, with
//! what each of its keys stands for (the prompt content, its settings, where its answer goes), so any later peel
//! can follow it, and each result is stored at most once, in the same transaction that marks its key done.

use std::path::Path;

use anyhow::{Context, Result, bail};
use rusqlite::{OptionalExtension, Row, TransactionBehavior, params};
use serde_json::Value;

use super::blobs;
use super::contents::insert_turn;
use super::sessions::{NewSession, free_name_in, insert_session};
use super::{NewTurn, SessionRow, Store, Take, TurnMeta, now_ms};
use crate::gemini::Content;
use crate::settings::Settings;

/// A job not yet submitted: one model, its requests.
#[derive(Debug, Clone)]
pub struct NewBatch<'a> {
    pub model: &'a str,
    pub display_name: &'a str,
    pub source: &'a str,
    /// `--into`: the session the results become takes in, and the content every request continues from.
    pub into: Option<(i64, Option<i64>)>,
    pub requests: &'a [NewBatchRequest],
}

/// One prompt of a job.
#[derive(Debug, Clone)]
pub struct NewBatchRequest {
    pub key: String,
    pub line: i64,
    pub prompt: String,
    /// The prompt content as it is sent (its images inline; they are stored as blobs).
    pub user: Content,
    pub settings: Settings,
}

/// A job as peel keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRow {
    pub id: i64,
    /// `batches/{id}` on the server; `None` until submitted.
    pub name: Option<String>,
    pub model: String,
    pub display_name: String,
    pub source: String,
    /// The last state seen: `BATCH_STATE_*`, or `SUBMITTING` before the server has it.
    pub state: String,
    /// The last `batchStats` seen.
    pub stats: Value,
    /// `inline` or `file`.
    pub input: Option<String>,
    pub uploaded_file: Option<String>,
    pub into_session: Option<i64>,
    pub into_parent: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub fetched_at: Option<i64>,
    /// How many requests it has, how many are stored, how many failed.
    pub requests: i64,
    pub stored: i64,
    pub failed: i64,
}

/// One request of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRequestRow {
    pub key: String,
    pub line: i64,
    pub prompt: String,
    pub settings: Settings,
    pub model_id: Option<i64>,
    pub session: Option<String>,
    pub error: Option<String>,
}

/// The state of a job before the server has it.
pub const SUBMITTING: &str = "SUBMITTING";

const BATCH_COLUMNS: &str = "b.id, b.name, b.model, b.display_name, b.source, b.state, b.stats, b.input, \
     b.uploaded_file, b.into_session, b.into_parent, b.created_at, b.updated_at, b.fetched_at, \
     (SELECT count(*) FROM batch_requests r WHERE r.batch_id = b.id), \
     (SELECT count(*) FROM batch_requests r WHERE r.batch_id = b.id AND r.model_id IS NOT NULL), \
     (SELECT count(*) FROM batch_requests r WHERE r.batch_id = b.id AND r.error IS NOT NULL)";

fn batch_from_row(row: &Row<'_>) -> rusqlite::Result<BatchRow> {
    let stats: String = row.get(6)?;
    Ok(BatchRow {
        id: row.get(0)?,
        name: row.get(1)?,
        model: row.get(2)?,
        display_name: row.get(3)?,
        source: row.get(4)?,
        state: row.get(5)?,
        stats: serde_json::from_str(&stats).unwrap_or(Value::Null),
        input: row.get(7)?,
        uploaded_file: row.get(8)?,
        into_session: row.get(9)?,
        into_parent: row.get(10)?,
        created_at: row.get(11)?,
        updated_at: row.get(12)?,
        fetched_at: row.get(13)?,
        requests: row.get(14)?,
        stored: row.get(15)?,
        failed: row.get(16)?,
    })
}

/// Where a stored result went.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchStored {
    /// The session it is in now.
    pub session: SessionRow,
    pub user_id: i64,
    pub model_id: i64,
    pub turn: i64,
    pub take: Take,
    /// Whether the session's head moved to it (a new session's always does; `--into` only while the session's head
    /// is still where the job's requests continue from, or on an earlier take of this job).
    pub head_moved: bool,
}

/// What storing a result did.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchRecord {
    Stored(Box<BatchStored>),
    /// The key's answer was stored before (by this peel or another): nothing was done.
    AlreadyStored,
}

/// One request's answer, as a fetch has it.
pub struct BatchAnswer<'a> {
    pub content: &'a Content,
    /// Its parts already decoded ([`blobs::Decoded::of`], as the image files were written from), when the caller
    /// has them; the store decodes them itself otherwise.
    pub decoded: Option<&'a blobs::Decoded>,
    pub meta: &'a TurnMeta,
}

impl Store {
    /// Records a job before it is submitted, with its requests and their images, in one transaction; returns its
    /// number.
    pub fn create_batch(&mut self, batch: &NewBatch<'_>) -> Result<i64> {
        self.refuse_if_read_only()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = now_ms();
        let (into_session, into_parent) = match batch.into {
            Some((session, parent)) => (Some(session), parent),
            None => (None, None),
        };
        tx.execute(
            "INSERT INTO batches (model, display_name, source, state, into_session, into_parent, created_at,
                                  updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            params![
                batch.model,
                batch.display_name,
                batch.source,
                SUBMITTING,
                into_session,
                into_parent,
                now
            ],
        )?;
        let id = tx.last_insert_rowid();
        let mut link = tx
            .prepare_cached("INSERT OR IGNORE INTO batch_blobs (batch_id, hash) VALUES (?1, ?2)")?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO batch_requests (batch_id, key, line, prompt, user_parts, settings)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for request in batch.requests {
            let blobs::Decoded {
                json: parts,
                blobs: new_blobs,
                ..
            } = blobs::Decoded::of(&request.user.parts)?;
            blobs::put_blobs(&tx, &new_blobs)?;
            for blob in &new_blobs {
                link.execute(params![id, blob.hash])?;
            }
            insert.execute(params![
                id,
                request.key,
                request.line,
                request.prompt,
                parts,
                serde_json::to_string(&request.settings)?
            ])?;
        }
        drop((link, insert));
        tx.commit()?;
        Ok(id)
    }

    /// The prompt content of each request of a job, oldest line first, its images left in the store as references
    /// (for a request body that streams them).
    pub fn batch_user_contents(&self, id: i64) -> Result<Vec<(String, Content)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT key, user_parts FROM batch_requests WHERE batch_id = ?1 ORDER BY line, key",
        )?;
        let rows = stmt
            .query_map([id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(key, parts)| {
                let parts = blobs::internalize_refs(&parts)
                    .with_context(|| format!("reading the prompt of key {key}"))?;
                Ok((key, Content::user(parts)))
            })
            .collect()
    }

    /// The server took the job: its name and how its requests went.
    pub fn set_batch_submitted(
        &self,
        id: i64,
        name: &str,
        state: &str,
        input: &str,
        uploaded_file: Option<&str>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE batches SET name = ?2, state = ?3, input = ?4, uploaded_file = ?5, updated_at = ?6 WHERE id = ?1",
            params![id, name, state, input, uploaded_file, now_ms()],
        )?;
        Ok(())
    }

    /// The last state and counts seen on the server.
    pub fn set_batch_state(&self, id: i64, state: &str, stats: &Value) -> Result<()> {
        self.conn.execute(
            "UPDATE batches SET state = ?2, stats = ?3, updated_at = ?4 WHERE id = ?1",
            params![id, state, stats.to_string(), now_ms()],
        )?;
        Ok(())
    }

    /// Forgets a job the server never took, with the images only it used.
    pub fn forget_unsubmitted_batch(&mut self, id: i64) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let hashes: Vec<String> = tx
            .prepare("SELECT hash FROM batch_blobs WHERE batch_id = ?1")?
            .query_map([id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        tx.execute("DELETE FROM batches WHERE id = ?1 AND name IS NULL", [id])?;
        for hash in hashes {
            blobs::delete_if_unused(&tx, &hash)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every job, newest first.
    pub fn batches(&self) -> Result<Vec<BatchRow>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {BATCH_COLUMNS} FROM batches b ORDER BY b.id DESC"
        ))?;
        let rows = stmt
            .query_map([], batch_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// A job by its number (`3`), its server name (`batches/abc`) or the id in it (`abc`).
    pub fn batch(&self, id: &str) -> Result<Option<BatchRow>> {
        let id = id.trim();
        let sql = format!(
            "SELECT {BATCH_COLUMNS} FROM batches b
             WHERE CAST(b.id AS TEXT) = ?1 OR b.name = ?1 OR b.name = 'batches/' || ?1"
        );
        Ok(self.conn.query_row(&sql, [id], batch_from_row).optional()?)
    }

    /// The requests of a job, in the order of the prompts file.
    pub fn batch_requests(&self, id: i64) -> Result<Vec<BatchRequestRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT key, line, prompt, settings, model_id, session, error FROM batch_requests
             WHERE batch_id = ?1 ORDER BY line, key",
        )?;
        let rows = stmt
            .query_map([id], |r| {
                let settings: String = r.get(3)?;
                Ok(BatchRequestRow {
                    key: r.get(0)?,
                    line: r.get(1)?,
                    prompt: r.get(2)?,
                    settings: serde_json::from_str(&settings).unwrap_or_default(),
                    model_id: r.get(4)?,
                    session: r.get(5)?,
                    error: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// A request that has no answer to store: why (kept, and shown by `status`).
    pub fn set_batch_request_error(&self, id: i64, key: &str, error: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE batch_requests SET error = ?3 WHERE batch_id = ?1 AND key = ?2 AND model_id IS NULL",
            params![id, key, error],
        )?;
        Ok(())
    }

    /// Every result of the job has been looked at: it is fetched, and its prompts' images are now kept by the
    /// contents that use them (or by nothing, for failed ones).
    pub fn set_batch_fetched(&mut self, id: i64) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE batches SET fetched_at = ?2, updated_at = ?2 WHERE id = ?1",
            params![id, now_ms()],
        )?;
        tx.execute("DELETE FROM batch_blobs WHERE batch_id = ?1", [id])?;
        blobs::delete_unused(&tx)?;
        tx.commit()?;
        Ok(())
    }

    /// Stores the answer to one request of a job, once: in one transaction the prompt and the answer go into their
    /// session (a new one named after `name_base`, with its images under `out_dir`; or, for `--into`, a take under
    /// the content the job continues from), and the key is marked stored. A key stored before is left alone.
    pub fn record_batch_result(
        &mut self,
        id: i64,
        key: &str,
        answer: BatchAnswer<'_>,
        name_base: &str,
        out_dir: &Path,
    ) -> Result<BatchRecord> {
        self.refuse_if_read_only()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let request: Option<(Option<i64>, String, String)> = tx
            .query_row(
                "SELECT model_id, user_parts, settings FROM batch_requests WHERE batch_id = ?1 AND key = ?2",
                params![id, key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((stored, user_parts, settings)) = request else {
            bail!("the job has no request with key {key:?}");
        };
        if stored.is_some() {
            return Ok(BatchRecord::AlreadyStored);
        }
        let (into_session, into_parent): (Option<i64>, Option<i64>) = tx.query_row(
            "SELECT into_session, into_parent FROM batches WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let settings: Settings = serde_json::from_str(&settings).unwrap_or_default();
        // The prompt goes into its session as it was stored with the job: the same parts JSON, referring to the
        // same blobs (already stored, and checked to be still there), so its images are not read or decoded again.
        let user = Content::user(
            blobs::internalize_refs(&user_parts)
                .and_then(|parts| {
                    let mut exists =
                        tx.prepare_cached("SELECT EXISTS (SELECT 1 FROM blobs WHERE hash = ?1)")?;
                    for blob in parts
                        .iter()
                        .flat_map(|part| [&part.refs.data, &part.refs.signature])
                        .flatten()
                    {
                        if !exists.query_row([&blob.hash], |r| r.get::<_, bool>(0))? {
                            bail!("blob {} is missing", blob.hash);
                        }
                    }
                    Ok(parts)
                })
                .with_context(|| format!("reading the prompt of key {key}"))?,
        );
        let user_decoded = blobs::Decoded::stored(user_parts);
        // --into: a take in that session (or, if it was deleted meanwhile, in a new one that keeps the history).
        let session = match into_session {
            Some(session) => tx
                .query_row(
                    "SELECT head_id FROM sessions WHERE id = ?1",
                    [session],
                    |r| r.get::<_, Option<i64>>(0),
                )
                .optional()?
                .map(|head| (session, head)),
            None => None,
        };
        let (owner, parent, move_head) = match session {
            Some((session, head)) => {
                let head_on_this_job: bool = match head {
                    Some(head) => tx.query_row(
                        "SELECT EXISTS (SELECT 1 FROM batch_requests WHERE batch_id = ?1 AND model_id = ?2)",
                        params![id, head],
                        |r| r.get(0),
                    )?,
                    None => false,
                };
                (
                    session,
                    into_parent,
                    head == into_parent || head_on_this_job,
                )
            }
            None => {
                let name = free_name_in(&tx, name_base, '-', true)?;
                let new = NewSession {
                    out_dir: Some(out_dir),
                    ..NewSession::empty(&settings)
                };
                (insert_session(&tx, &name, new)?, into_parent, true)
            }
        };
        let inserted = insert_turn(
            &tx,
            owner,
            parent,
            NewTurn {
                user: &user,
                model: answer.content,
                meta: answer.meta,
            },
            Some(&user_decoded),
            answer.decoded,
        )?;
        let now = now_ms();
        if move_head {
            tx.execute(
                "UPDATE sessions SET head_id = ?2, redo = '[]', updated_at = ?3 WHERE id = ?1",
                params![owner, inserted.model_id, now],
            )?;
        } else {
            tx.execute(
                "UPDATE sessions SET updated_at = ?2 WHERE id = ?1",
                params![owner, now],
            )?;
        }
        let name: String =
            tx.query_row("SELECT name FROM sessions WHERE id = ?1", [owner], |r| {
                r.get(0)
            })?;
        tx.execute(
            "UPDATE batch_requests SET model_id = ?3, session = ?4, error = NULL WHERE batch_id = ?1 AND key = ?2",
            params![id, key, inserted.model_id, name],
        )?;
        tx.commit()?;
        self.nudge_checkpoint();
        Ok(BatchRecord::Stored(Box::new(BatchStored {
            session: self.session_by_id(owner)?,
            user_id: inserted.user_id,
            model_id: inserted.model_id,
            turn: inserted.turn,
            take: self.take(inserted.user_id)?,
            head_moved: move_head,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemini::Part;

    fn answer(text: &str) -> Content {
        Content {
            role: Some("model".into()),
            parts: vec![Part::text(text)],
            extra: Default::default(),
        }
    }

    fn request(key: &str, prompt: &str, image: Option<&[u8]>) -> NewBatchRequest {
        use base64::Engine as _;
        let mut parts = vec![Part::text(prompt)];
        if let Some(bytes) = image {
            parts.push(Part::image(
                "image/png",
                base64::engine::general_purpose::STANDARD.encode(bytes),
            ));
        }
        NewBatchRequest {
            key: key.into(),
            line: key.parse().unwrap(),
            prompt: prompt.into(),
            user: Content::user(parts),
            settings: Settings::default(),
        }
    }

    #[test]
    fn a_job_is_kept_and_each_result_stored_once() {
        let mut store = Store::open_in_memory().unwrap();
        let image = vec![7u8; 5000];
        let requests = [
            request("1", "a red fox", Some(&image)),
            request("2", "a blue fox", Some(&image)),
        ];
        let id = store
            .create_batch(&NewBatch {
                model: "gemini-3-pro-image",
                display_name: "foxes",
                source: "foxes.txt",
                into: None,
                requests: &requests,
            })
            .unwrap();
        let row = store.batch(&id.to_string()).unwrap().unwrap();
        assert_eq!(
            (row.state.as_str(), row.requests, row.stored),
            (SUBMITTING, 2, 0)
        );
        let contents = store.batch_user_contents(id).unwrap();
        assert_eq!(contents.len(), 2);
        assert!(
            contents[0].1.parts[1].refs.data.is_some(),
            "the image stays a blob"
        );
        assert_eq!(store.blob_bytes().unwrap(), 5000, "stored once");

        store
            .set_batch_submitted(id, "batches/abc", "BATCH_STATE_PENDING", "inline", None)
            .unwrap();
        assert_eq!(store.batch("abc").unwrap().unwrap().id, id);
        assert_eq!(store.batch("batches/abc").unwrap().unwrap().id, id);
        assert!(store.batch("nope").unwrap().is_none());

        let out = Path::new("/tmp/out");
        let meta = TurnMeta::default();
        let BatchRecord::Stored(first) = store
            .record_batch_result(
                id,
                "1",
                BatchAnswer {
                    content: &answer("one"),
                    decoded: None,
                    meta: &meta,
                },
                "red-fox",
                out,
            )
            .unwrap()
        else {
            panic!()
        };
        assert_eq!((first.session.name.as_str(), first.turn), ("red-fox", 1));
        assert_eq!(first.session.head_id, Some(first.model_id));
        assert_eq!(
            store
                .record_batch_result(
                    id,
                    "1",
                    BatchAnswer {
                        content: &answer("one"),
                        decoded: None,
                        meta: &meta
                    },
                    "red-fox",
                    out
                )
                .unwrap(),
            BatchRecord::AlreadyStored
        );
        store.set_batch_request_error(id, "2", "400 bad").unwrap();
        let row = store.batch(&id.to_string()).unwrap().unwrap();
        assert_eq!((row.stored, row.failed), (1, 1));

        // The image goes on living in the content that uses it once the job is done; nothing else keeps it.
        store.set_batch_fetched(id).unwrap();
        assert_eq!(store.blob_bytes().unwrap(), 5000);
        let rows = store.batch_requests(id).unwrap();
        assert_eq!(rows[0].session.as_deref(), Some("red-fox"));
        assert_eq!(rows[1].error.as_deref(), Some("400 bad"));
    }

    #[test]
    fn a_stored_prompt_comes_back_as_it_was_sent() {
        let mut store = Store::open_in_memory().unwrap();
        // A standard-base64 image and a URL-safe signature, both large enough to be blobs.
        let image: Vec<u8> = (0..7000u32).map(|i| (i * 37 % 251) as u8).collect();
        let mut sent = request("1", "a fox", Some(&image));
        sent.user.parts[1].thought_signature = Some({
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE.encode(vec![0xfbu8; 3000])
        });
        let id = store
            .create_batch(&NewBatch {
                model: "m",
                display_name: "d",
                source: "s",
                into: None,
                requests: std::slice::from_ref(&sent),
            })
            .unwrap();
        let stored_parts: String = store
            .conn
            .query_row(
                "SELECT user_parts FROM batch_requests WHERE batch_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        let BatchRecord::Stored(stored) = store
            .record_batch_result(
                id,
                "1",
                BatchAnswer {
                    content: &answer("one"),
                    decoded: None,
                    meta: &TurnMeta::default(),
                },
                "fox",
                Path::new("/tmp"),
            )
            .unwrap()
        else {
            panic!()
        };
        let row = store.content(stored.user_id).unwrap();
        assert_eq!(row.parts_json, stored_parts);
        let back = store.content_of(&row).unwrap();
        assert_eq!(back, sent.user);
        // The session keeps the prompt's images once the job no longer does.
        store.set_batch_fetched(id).unwrap();
        assert_eq!(store.content_of(&row).unwrap().parts, sent.user.parts);
    }

    #[test]
    fn takes_into_a_session_move_its_head_only_from_where_the_job_continues() {
        let mut store = Store::open_in_memory().unwrap();
        let settings = Settings::default();
        let session = store
            .create_session("fox", NewSession::empty(&settings))
            .unwrap();
        let user = Content::user(vec![Part::text("a fox")]);
        let meta = TurnMeta::default();
        let turn = |store: &mut Store, head: Option<i64>| {
            store
                .append_turn(
                    session.id,
                    head,
                    head,
                    NewTurn {
                        user: &user,
                        model: &answer("x"),
                        meta: &meta,
                    },
                )
                .unwrap()
                .model_id
        };
        let one = turn(&mut store, None);
        let requests = [
            request("1", "at night", None),
            request("2", "at dawn", None),
        ];
        let new = |store: &mut Store, parent| {
            store
                .create_batch(&NewBatch {
                    model: "m",
                    display_name: "d",
                    source: "s",
                    into: Some((session.id, Some(parent))),
                    requests: &requests,
                })
                .unwrap()
        };
        let job = new(&mut store, one);
        let out = Path::new("/tmp");
        for key in ["1", "2"] {
            let BatchRecord::Stored(stored) = store
                .record_batch_result(
                    job,
                    key,
                    BatchAnswer {
                        content: &answer(key),
                        decoded: None,
                        meta: &meta,
                    },
                    "x",
                    out,
                )
                .unwrap()
            else {
                panic!()
            };
            assert!(stored.head_moved, "{key}");
            assert_eq!(stored.session.name, "fox");
            assert_eq!(stored.turn, 2);
        }
        let head = store.session("fox").unwrap().unwrap().head_id.unwrap();
        assert_eq!(store.take(head - 1).unwrap().of, 2);

        // A job continuing from turn 1 while the session has moved on: takes are added, the head stays.
        let later = turn(&mut store, Some(head));
        let job = new(&mut store, one);
        let BatchRecord::Stored(stored) = store
            .record_batch_result(
                job,
                "1",
                BatchAnswer {
                    content: &answer("late"),
                    decoded: None,
                    meta: &meta,
                },
                "x",
                out,
            )
            .unwrap()
        else {
            panic!()
        };
        assert!(!stored.head_moved);
        assert_eq!(store.session("fox").unwrap().unwrap().head_id, Some(later));
        assert_eq!(stored.take.of, 3);
    }
}
