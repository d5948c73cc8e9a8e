//! The journal of arrived answers: a paid answer is written here, durably, before anything that can fail (the
//! database transaction, the image file, the terminal), and removed once the turn's transaction is on disk.
//! An entry left behind (a full disk, a database locked past the busy timeout, a crash) is recorded into its thread
//! by the next peel that opens the database ([`crate::store::Store::recover_arrivals`]).
//!
//! The journal is a folder beside the database, `<db file name>.arrived/` (not `-journal`, which SQLite owns). One
//! entry is one file `<id>.json`: a header line (small, read to list entries) and the body (the turn). Each is written
//! to an exclusive temp file with an unpredictable name, fsync'd, renamed without replacing anything, and the folder
//! fsync'd. An entry is bounded in size and checked when read back (length and SHA-256 of the body); a damaged one is
//! moved into `damaged/` and reported, never deleted and never a crash.
//!
//! What an entry holds: the prompt as sent, the answer as received (the client has already scrubbed the credential
//! out of it), the turn's meta and where it goes. Never the API key: nothing here is handed a credential.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::{TurnMeta, hash_hex, now_ms};
use crate::gemini::Content;

const FORMAT: &str = "peel-arrived";
const VERSION: u32 = 1;

/// The largest entry written or read back: a request (100 MB by default) and an answer (64 MB by default) with room
/// to spare. Anything bigger is refused when written and set aside when read, so reading the journal stays bounded.
pub const MAX_ENTRY_BYTES: u64 = 512 * 1024 * 1024;

/// The header line is read to list entries without reading their bodies.
const MAX_HEADER_BYTES: u64 = 64 * 1024;

/// At most this many entries are looked at per listing (an entry is one paid turn; thousands mean something else).
const MAX_LISTED: usize = 1000;
/// Entries are written as `.writing-*` files and renamed when whole. One this old was left by a peel that died while
/// writing it (a write takes milliseconds); a younger one may be another peel's, being written now.
const UNFINISHED_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

/// Where an arrived turn belongs: the session as this process last saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArrivalSession {
    /// `None` when the session was not stored yet (its first turn).
    pub id: Option<i64>,
    /// Its name, or the name it gets when it is created.
    pub name: String,
    /// When the session row was created: a session id reused after a delete is not mistaken for this session.
    pub created_at: Option<i64>,
    /// The folder its images go under, for a session this arrival creates (entries written before peel kept it
    /// have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_dir: Option<std::path::PathBuf>,
}

/// A finished turn whose answer arrived: what the store records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arrival {
    pub session: ArrivalSession,
    /// The session's head when the request was built; a different head means another process moved it.
    pub expected_head: Option<i64>,
    /// Where the turn goes in the tree: the head, or an earlier content for a retry.
    pub parent: Option<i64>,
    /// The prompt content as it was sent.
    pub user: Content,
    /// The answer exactly as received.
    pub model: Content,
    pub meta: TurnMeta,
    /// One of several takes asked for at once (variants): recorded beside the head, as a take of the same turn,
    /// without moving the head.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub beside: bool,
    /// The answer's parts as already decoded for the store (the image files are written from the same bytes);
    /// not journaled: an entry recovered later is decoded again.
    #[serde(skip)]
    pub decoded: Option<super::Decoded>,
}

impl Arrival {
    /// The prompt's text, for listings.
    pub fn prompt(&self) -> String {
        self.user
            .parts
            .iter()
            .filter_map(|p| p.text.as_deref())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The first line of an entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryHeader {
    pub format: String,
    pub version: u32,
    pub id: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub session_name: String,
    /// The prompt's first characters, for listings.
    pub prompt: String,
    pub body_bytes: u64,
    pub body_sha256: String,
}

/// An entry on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    pub path: PathBuf,
    pub header: EntryHeader,
}

impl JournalEntry {
    pub fn id(&self) -> &str {
        &self.header.id
    }
}

/// An entry that could not be read back; it was moved to `kept_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct DamagedEntry {
    pub kept_at: PathBuf,
    pub reason: String,
}

/// The entries of a journal folder.
#[derive(Debug, Default)]
pub struct Listing {
    pub entries: Vec<JournalEntry>,
    /// Entries set aside while listing (their header could not be read).
    pub damaged: Vec<DamagedEntry>,
}

#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    /// The journal of the database at `db`: `<db>.arrived/` beside it.
    pub fn for_database(db: &Path) -> Journal {
        let mut name = db.file_name().unwrap_or_default().to_os_string();
        name.push(".arrived");
        Journal {
            dir: db.with_file_name(name),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `arrival` durably and returns its entry: when this returns, the entry survives a crash or power loss.
    pub fn write(&self, arrival: &Arrival) -> Result<JournalEntry> {
        let body = serde_json::to_vec(arrival).context("encoding the answer for the journal")?;
        let id = new_entry_id();
        let created_at = now_ms();
        let header = EntryHeader {
            format: FORMAT.into(),
            version: VERSION,
            id: id.clone(),
            created_at,
            session_name: arrival.session.name.clone(),
            prompt: arrival.prompt().chars().take(200).collect(),
            body_bytes: body.len() as u64,
            body_sha256: hash_hex(&body),
        };
        let mut line = serde_json::to_vec(&header)?;
        line.push(b'\n');
        let total = (line.len() + body.len()) as u64;
        if total > MAX_ENTRY_BYTES {
            bail!(
                "the answer is too large for the journal ({} over its {} limit)",
                crate::text::bytes(total),
                crate::text::bytes(MAX_ENTRY_BYTES)
            );
        }
        self.create_dir()?;
        let path = self.dir.join(format!("{id}.json"));
        let mut file = tempfile::Builder::new()
            .prefix(".writing-")
            .tempfile_in(&self.dir)
            .with_context(|| format!("creating a journal entry in {}", self.dir.display()))?;
        let written = file
            .write_all(&line)
            .and_then(|()| file.write_all(&body))
            .and_then(|()| file.as_file().sync_all());
        written.with_context(|| format!("writing the journal entry {}", path.display()))?;
        file.persist_noclobber(&path)
            .map_err(|e| e.error)
            .with_context(|| format!("writing the journal entry {}", path.display()))?;
        sync_dir(&self.dir)?;
        Ok(JournalEntry { path, header })
    }

    /// Removes an entry once the commit that recorded its turn is on disk (the caller syncs the database's log
    /// first: [`crate::store::Store::forget_entry`]). An entry already gone (another peel recorded it) is fine.
    /// The removal itself is not synced: if a crash undoes it, the next peel finds the entry's id in the database's
    /// arrivals and only removes it again (an fsync of the folder saved on every turn).
    pub fn remove(&self, entry: &JournalEntry) -> Result<()> {
        match fs::remove_file(&entry.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", entry.path.display())),
        }
    }

    /// Deals with what peels killed while writing an entry left behind ([`UNFINISHED_AFTER`]): a file that is whole
    /// (its header, length and checksum check out: killed between the fsync and the rename) becomes the entry it
    /// was meant to be, to be recorded; anything else held no answer durably and is removed. Returns how many of
    /// each.
    pub fn finish_unfinished(&self) -> (usize, usize) {
        let Ok(read) = fs::read_dir(&self.dir) else {
            return (0, 0);
        };
        let (mut kept, mut removed) = (0, 0);
        for entry in read.flatten() {
            let name = entry.file_name();
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|at| at.elapsed().is_ok_and(|age| age >= UNFINISHED_AFTER));
            if !name.to_string_lossy().starts_with(".writing-") || !stale {
                continue;
            }
            let path = entry.path();
            let whole = read_header(&path).ok().filter(|header| {
                let entry = JournalEntry {
                    path: path.clone(),
                    header: header.clone(),
                };
                read_body(&entry).is_ok() && valid_id(&header.id)
            });
            let kept_as = whole.map(|header| self.dir.join(format!("{}.json", header.id)));
            match kept_as {
                Some(to) if !to.exists() && fs::rename(&path, &to).is_ok() => kept += 1,
                _ => removed += usize::from(fs::remove_file(&path).is_ok()),
            }
        }
        (kept, removed)
    }

    /// The entries waiting to be recorded, oldest first. An entry whose header cannot be read is set aside.
    pub fn pending(&self) -> Result<Listing> {
        let mut listing = Listing::default();
        let read = match fs::read_dir(&self.dir) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(listing),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.dir.display())),
        };
        let mut paths: Vec<PathBuf> = read
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| {
                path.extension().is_some_and(|e| e == "json")
                    && path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| !n.starts_with('.'))
            })
            .collect();
        paths.sort();
        paths.truncate(MAX_LISTED);
        for path in paths {
            match read_header(&path) {
                Ok(header) => listing.entries.push(JournalEntry { path, header }),
                Err(reason) => listing.damaged.push(self.set_aside(&path, reason)?),
            }
        }
        Ok(listing)
    }

    /// The turn an entry holds, checked against its header. A damaged entry is moved into `damaged/` and returned
    /// as the error.
    pub fn read(&self, entry: &JournalEntry) -> Result<Arrival, DamagedEntry> {
        match read_body(entry) {
            Ok(arrival) => Ok(arrival),
            Err(reason) => Err(self
                .set_aside(&entry.path, reason.clone())
                .unwrap_or_else(|e| DamagedEntry {
                    kept_at: entry.path.clone(),
                    reason: format!("{reason} (and it could not be moved aside: {e:#})"),
                })),
        }
    }

    fn set_aside(&self, path: &Path, reason: String) -> Result<DamagedEntry> {
        let damaged = self.dir.join("damaged");
        fs::create_dir_all(&damaged).with_context(|| format!("creating {}", damaged.display()))?;
        let kept_at = damaged.join(path.file_name().unwrap_or_default());
        // The folder is peel's own and the name came from it: a rename within it cannot land anywhere else.
        fs::rename(path, &kept_at).with_context(|| format!("moving {} aside", path.display()))?;
        Ok(DamagedEntry { kept_at, reason })
    }

    fn create_dir(&self) -> Result<()> {
        if self.dir.is_dir() {
            return Ok(());
        }
        let mut builder = fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        match builder.create(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", self.dir.display())),
        }
        if let Some(parent) = self.dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        Ok(())
    }
}

fn read_header(path: &Path) -> Result<EntryHeader, String> {
    let file = open_entry(path)?;
    let mut line = Vec::new();
    BufReader::new(file.take(MAX_HEADER_BYTES))
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if line.last() != Some(&b'\n') {
        return Err("its header is cut off".into());
    }
    let header: EntryHeader =
        serde_json::from_slice(&line).map_err(|e| format!("its header is not readable: {e}"))?;
    if header.format != FORMAT || header.version != VERSION {
        return Err(format!(
            "it is a {} v{} entry; this peel reads {FORMAT} v{VERSION}",
            header.format, header.version
        ));
    }
    if header.body_bytes > MAX_ENTRY_BYTES {
        return Err("its body is larger than any entry peel writes".into());
    }
    Ok(header)
}

fn read_body(entry: &JournalEntry) -> Result<Arrival, String> {
    let file = open_entry(&entry.path)?;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    reader
        .by_ref()
        .take(MAX_HEADER_BYTES)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("cannot read it: {e}"))?;
    let expected = entry.header.body_bytes;
    let mut body = Vec::with_capacity(expected as usize);
    reader
        .take(expected + 1)
        .read_to_end(&mut body)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if body.len() as u64 != expected {
        return Err(format!(
            "its body is {} bytes, its header says {expected}",
            body.len()
        ));
    }
    if hash_hex(&body) != entry.header.body_sha256 {
        return Err("its body does not match its checksum".into());
    }
    serde_json::from_slice(&body).map_err(|e| format!("its body is not a turn: {e}"))
}

/// Opens an entry for reading: a regular file within the size bound, never a link or a device.
fn open_entry(path: &Path) -> Result<File, String> {
    let file = crate::files::open_regular(path).map_err(|e| format!("{e:#}"))?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    if len > MAX_ENTRY_BYTES + MAX_HEADER_BYTES {
        return Err(format!(
            "it is larger ({len} bytes) than any entry peel writes"
        ));
    }
    Ok(file)
}

/// An id as [`new_entry_id`] makes them (it becomes a file name).
fn valid_id(id: &str) -> bool {
    id.split_once('-').is_some_and(|(time, random)| {
        !time.is_empty()
            && time.bytes().all(|b| b.is_ascii_digit())
            && !random.is_empty()
            && random.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// A new entry id: the time (so names sort oldest first) and 64 random bits.
pub fn new_entry_id() -> String {
    format!("{:013}-{}", now_ms(), random_hex())
}

/// Makes a rename or removal in `dir` durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

/// 64 random bits as hex: entry ids only need to be unique, the temp files already have unpredictable names.
fn random_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}
