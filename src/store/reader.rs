//! Blobs read on their own connection while a request body streams out (WAL lets it read beside the writer).

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::gemini::body::BlobSource;

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
}
