//! Blobs read on their own connection while a request body streams out (WAL lets it read beside the writer).

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::{Connection, MAIN_DB, OpenFlags, OptionalExtension};

use crate::gemini::body::BlobSource;

/// Bytes read from a blob under one lock of the connection.
const READ_BLOCK: usize = 1 << 20;

pub struct BlobReader {
    conn: Mutex<Connection>,
}

impl BlobReader {
    /// `immutable`: the store itself was opened so (a WAL database in a read-only folder).
    pub fn open(path: &Path, immutable: bool) -> Result<BlobReader> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = if immutable {
            Connection::open_with_flags(
                super::open::immutable_uri(path),
                flags | OpenFlags::SQLITE_OPEN_URI,
            )
        } else {
            Connection::open_with_flags(path, flags)
        }
        .with_context(|| format!("opening {} to read images", path.display()))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        Ok(BlobReader {
            conn: Mutex::new(conn),
        })
    }

    fn query<T: rusqlite::types::FromSql>(&self, sql: &str, hash: &str) -> Result<T, String> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| "the blob reader was poisoned".to_string())?;
        conn.query_row(sql, [hash], |r| r.get(0))
            .optional()
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("blob {hash} is missing from the database"))
    }
}

impl BlobSource for BlobReader {
    fn read(&self, hash: &str) -> Result<Vec<u8>, String> {
        self.query("SELECT bytes FROM blobs WHERE hash = ?1", hash)
    }

    fn len(&self, hash: &str) -> Result<u64, String> {
        // length() of a BLOB comes from the record header: the bytes themselves are not read.
        self.query::<i64>("SELECT length(bytes) FROM blobs WHERE hash = ?1", hash)
            .map(|n| n as u64)
    }

    /// Incremental blob I/O: the value is read from its pages a block at a time straight into one buffer, so it
    /// is never held whole (a SELECT copies it into SQLite's memory, then into ours). The connection is locked only
    /// while a block is read, never while `each` runs: `each` may wait for the network, and the thread that drives
    /// the network may need this reader meanwhile (to measure the next body), which would otherwise deadlock.
    fn read_chunks(
        &self,
        hash: &str,
        chunk: usize,
        each: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(), String> {
        let rowid: i64 = self.query("SELECT rowid FROM blobs WHERE hash = ?1", hash)?;
        let chunk = chunk.max(1);
        let block = (READ_BLOCK / chunk).max(1) * chunk;
        let mut buffer = Vec::new();
        let mut at = 0;
        loop {
            let len = {
                let conn = self
                    .conn
                    .lock()
                    .map_err(|_| "the blob reader was poisoned".to_string())?;
                let blob = conn
                    .blob_open(MAIN_DB, c"blobs", c"bytes", rowid, true)
                    .map_err(|e| format!("blob {hash}: {e}"))?;
                let n = block.min(blob.len().saturating_sub(at));
                buffer.resize(n, 0);
                blob.read_at_exact(&mut buffer, at)
                    .map_err(|e| format!("blob {hash}: {e}"))?;
                blob.len()
            };
            for piece in buffer.chunks(chunk) {
                each(piece)?;
            }
            at += buffer.len();
            if at >= len {
                return Ok(());
            }
        }
    }
}
