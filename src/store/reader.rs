//! Blobs read on their own connection while a request body streams out (WAL lets it read beside the writer).

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::{Connection, MAIN_DB, OpenFlags, OptionalExtension};

use crate::gemini::body::BlobSource;

pub struct BlobReader {
    conn: Mutex<Connection>,
}

impl BlobReader {
    pub fn open(path: &Path) -> Result<BlobReader> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
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

    /// Incremental blob I/O: each chunk is read from the pages straight into one buffer, so no value is ever held
    /// whole (a SELECT copies it into SQLite's memory, then into ours).
    fn read_chunks(
        &self,
        hash: &str,
        chunk: usize,
        each: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(), String> {
        let rowid: i64 = self.query("SELECT rowid FROM blobs WHERE hash = ?1", hash)?;
        let conn = self
            .conn
            .lock()
            .map_err(|_| "the blob reader was poisoned".to_string())?;
        let blob = conn
            .blob_open(MAIN_DB, c"blobs", c"bytes", rowid, true)
            .map_err(|e| format!("blob {hash}: {e}"))?;
        let mut buffer = vec![0u8; chunk.min(blob.len()).max(1)];
        let mut at = 0;
        while at < blob.len() {
            let n = chunk.min(blob.len() - at);
            blob.read_at_exact(&mut buffer[..n], at)
                .map_err(|e| format!("blob {hash}: {e}"))?;
            each(&buffer[..n])?;
            at += n;
        }
        Ok(())
    }
}
