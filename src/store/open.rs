//! Opening a database: peel opens only its own. Before anything is changed (no WAL switch, no table, no pragma that
//! writes), the file is looked at: a SQLite file marked with peel's application id, an empty new one, or a database
//! of an older peel (peel's tables, no mark yet) is opened; anything else is refused. A schema newer than this peel
//! is refused before anything is written. A database the process cannot write (the file or its folder is read-only)
//! is opened for reading, with a note that nothing can be saved.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OpenFlags};

use super::migrate;

/// `PRAGMA application_id` of a peel database: "peel" in ASCII.
pub const APPLICATION_ID: i32 = 0x7065_656c;

/// How long a write waits for another peel's transaction before giving up with "database is locked".
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The tables every peel schema since the first has.
const PEEL_TABLES: &[&str] = &["blobs", "contents", "content_blobs", "sessions"];

/// Why a file is not opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "{path} is not a SQLite database ({what}); peel opens only its own databases and changed nothing; \
         use --db with another path"
    )]
    NotSqlite { path: String, what: String },
    #[error(
        "{path} is a SQLite database of another program ({what}); peel opens only its own databases and changed \
         nothing; use --db with another path"
    )]
    Foreign { path: String, what: String },
    #[error(
        "{path} was written by a newer peel (schema version {found}; this peel knows up to {known}); nothing was \
         changed: upgrade peel, or use another database with --db"
    )]
    Future {
        path: String,
        found: i64,
        known: i64,
    },
    #[error(
        "{path} is read-only ({why}) and was written by an older peel: it needs an upgrade that cannot be written; \
         make it writable once, then it can be read read-only again"
    )]
    ReadOnlyOld { path: String, why: String },
}

/// What a database file holds, looked at without changing it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Inspection {
    pub application_id: i32,
    pub user_version: i64,
    pub tables: Vec<String>,
}

impl Inspection {
    pub(super) fn read(conn: &Connection) -> rusqlite::Result<Inspection> {
        let application_id = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
        let user_version = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let mut stmt = conn.prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )?;
        let tables = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(Inspection {
            application_id,
            user_version,
            tables,
        })
    }

    /// Whether peel may open this database; errors say whose it is instead.
    pub(super) fn check(&self, path: &Path) -> Result<(), OpenError> {
        let known = migrate::MIGRATIONS.len() as i64;
        let shown = path.display().to_string();
        let ours = match self.application_id {
            APPLICATION_ID => true,
            0 if self.tables.is_empty() && self.user_version == 0 => true,
            // Peel before the mark: its tables, and a schema version from its migrations.
            0 => {
                self.user_version >= 1
                    && PEEL_TABLES
                        .iter()
                        .all(|t| self.tables.iter().any(|n| n == t))
            }
            _ => false,
        };
        if !ours {
            let what = if self.application_id != 0 {
                format!("application id {:#010x}", self.application_id)
            } else {
                let mut names = self
                    .tables
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ");
                if self.tables.len() > 5 {
                    names.push_str(", ...");
                }
                format!("tables {names}")
            };
            return Err(OpenError::Foreign { path: shown, what });
        }
        if self.user_version > known {
            return Err(OpenError::Future {
                path: shown,
                found: self.user_version,
                known,
            });
        }
        Ok(())
    }

    /// Nothing to bring up to date.
    pub(super) fn current(&self) -> bool {
        self.application_id == APPLICATION_ID
            && self.user_version == migrate::MIGRATIONS.len() as i64
    }
}

/// The first bytes of an existing file must be SQLite's header (an empty file is a new database).
pub(super) fn check_header(path: &Path) -> Result<()> {
    let mut file = crate::files::open_regular(path)
        .with_context(|| format!("cannot open the database {}", path.display()))?;
    let mut header = [0u8; 16];
    let mut read = 0;
    while read < header.len() {
        match file.read(&mut header[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
    if read == 0 || &header[..read] == b"SQLite format 3\0" {
        return Ok(());
    }
    let printable = header[..read]
        .iter()
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
    Err(OpenError::NotSqlite {
        path: path.display().to_string(),
        what: if printable {
            "it holds text".into()
        } else {
            "its first bytes are something else".into()
        },
    }
    .into())
}

/// Why this process cannot write the database, if it cannot: the file, or the folder that must hold its log.
pub(super) fn read_only_reason(path: &Path) -> Option<String> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Some(format!("its folder {} does not exist", dir.display()));
    }
    if path.exists() && !writable(path) {
        return Some(format!("the file {} is read-only", path.display()));
    }
    if !writable(dir) {
        return Some(format!("its folder {} is read-only", dir.display()));
    }
    None
}

fn writable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: a valid NUL-terminated path; access(2) only reads it.
        unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(path).is_ok_and(|m| !m.permissions().readonly())
    }
}

/// A read-only connection. A WAL database in a read-only folder cannot get its shared-memory file, so it is opened
/// as immutable then (nobody can be writing it there).
pub(super) fn open_read_only(path: &Path) -> Result<(Connection, bool)> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .with_context(|| format!("opening the database {}", path.display()))?;
    if conn
        .query_row("PRAGMA user_version", [], |_| Ok(()))
        .is_ok()
    {
        return Ok((conn, false));
    }
    drop(conn);
    let conn = Connection::open_with_flags(immutable_uri(path), flags | OpenFlags::SQLITE_OPEN_URI)
        .with_context(|| format!("opening the database {}", path.display()))?;
    Ok((conn, true))
}

/// `file:PATH?immutable=1`, the path percent-encoded where a URI needs it.
pub(super) fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for b in path.to_string_lossy().bytes() {
        match b {
            b'?' | b'#' | b'%' => uri.push_str(&format!("%{b:02X}")),
            _ => uri.push(b as char),
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// The message SQLite gave, without the SQL text rusqlite adds to some errors.
pub(super) fn sqlite_message(error: &rusqlite::Error) -> String {
    match error {
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        rusqlite::Error::SqliteFailure(e, Some(msg)) => format!("{msg} ({:?})", e.code),
        other => other.to_string(),
    }
}

/// What went wrong with the database, in words that name the file. `None` when the error is not a database fault.
pub fn explain(error: &anyhow::Error, path: &Path) -> Option<String> {
    let sqlite = error
        .chain()
        .find_map(|e| e.downcast_ref::<rusqlite::Error>())?;
    let file = path.display();
    let rusqlite::Error::SqliteFailure(e, _) = sqlite else {
        return match sqlite {
            rusqlite::Error::QueryReturnedNoRows => Some(format!(
                "something this peel was using in {file} was deleted by another peel"
            )),
            _ => None,
        };
    };
    use rusqlite::ErrorCode::*;
    Some(match e.code {
        DatabaseBusy | DatabaseLocked => format!(
            "the database {file} is locked by another program (waited {} s)",
            BUSY_TIMEOUT.as_secs()
        ),
        DiskFull => format!("the disk holding the database {file} is full"),
        ReadOnly => format!("the database {file} is read-only"),
        SystemIoFailure => format!("the database {file} could not be written (a disk error)"),
        CannotOpen => format!("the database {file} could not be opened"),
        DatabaseCorrupt | NotADatabase => format!("the database {file} is damaged"),
        ConstraintViolation => format!(
            "the database {file} no longer holds something this peel was using (another peel changed it)"
        ),
        _ => return None,
    })
}

pub(super) fn busy_timeout(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(())
}

/// Refuses anything but peel's own database, before any change.
pub(super) fn inspect(conn: &Connection, path: &Path) -> Result<Inspection> {
    let inspection = Inspection::read(conn).map_err(|e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => anyhow::Error::new(OpenError::NotSqlite {
            path: path.display().to_string(),
            what: "or it is damaged or encrypted".into(),
        }),
        _ => anyhow::anyhow!("{}", sqlite_message(&e))
            .context(format!("reading the database {}", path.display())),
    })?;
    inspection.check(path)?;
    Ok(inspection)
}

/// Fails when a database opened read-only still needs changes.
pub(super) fn read_only_usable(inspection: &Inspection, path: &Path, why: &str) -> Result<()> {
    if inspection.user_version < migrate::MIGRATIONS.len() as i64 {
        if inspection.user_version == 0 && inspection.tables.is_empty() {
            bail!(
                "the database {} does not exist yet and cannot be created: {why}",
                path.display()
            );
        }
        return Err(OpenError::ReadOnlyOld {
            path: path.display().to_string(),
            why: why.to_string(),
        }
        .into());
    }
    Ok(())
}
