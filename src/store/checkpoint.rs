//! WAL checkpoints off the turn's path. SQLite checkpoints when the log passes a size, in whichever thread commits;
//! with megabytes of images a turn that meant an fsync'd copy every other turn, right after the answer arrived.
//! Here a thread of its own checkpoints after each turn, while the person reads the answer or the next request
//! waits on the network. If it falls behind, SQLite's own checkpoint (at a larger log size) still bounds the log.
//!
//! The same thread removes the journal entries of recorded turns, once their commit is on disk: in WAL mode with
//! `synchronous = NORMAL` a commit reaches the log unsynced, and a power cut could undo it while the entry's removal
//! survived. So the log is synced first (an fsync off the turn's path), then the entries go. An entry whose removal
//! never happened (peel was killed first) is found recorded by the next peel and only removed.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Result;
use rusqlite::Connection;

/// Bytes the log may reach before a committing thread checkpoints anyway (SQLite counts it in pages).
pub const AUTO_CHECKPOINT_BYTES: i64 = 64 * 1024 * 1024;

/// What the thread is asked to do.
enum Job {
    Checkpoint,
    /// Remove this journal entry once the log holding the commit that recorded it is synced.
    Forget(PathBuf),
}

pub struct Checkpointer {
    wake: Option<Sender<Job>>,
    /// Held for each checkpoint: SQLite refuses a second checkpoint at the same time instead of waiting for it.
    running: Arc<Mutex<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub fn start(path: &Path) -> Result<Checkpointer> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let (wake, jobs) = channel::<Job>();
        let running = Arc::new(Mutex::new(()));
        let lock = running.clone();
        let db = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("peel-checkpoint".into())
            .spawn(move || {
                while let Ok(job) = jobs.recv() {
                    // Several turns may have queued jobs: one checkpoint and one sync cover them all.
                    let (mut checkpoint, mut forget) = (false, Vec::new());
                    for job in std::iter::once(job).chain(jobs.try_iter()) {
                        match job {
                            Job::Checkpoint => checkpoint = true,
                            Job::Forget(entry) => forget.push(entry),
                        }
                    }
                    if checkpoint {
                        // PASSIVE never waits for readers or writers; what it cannot copy now, the next one will.
                        let _running = lock.lock();
                        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    }
                    if !forget.is_empty() && sync_log(&db) {
                        for entry in forget {
                            let _ = fs::remove_file(entry);
                        }
                    }
                }
            })?;
        Ok(Checkpointer {
            wake: Some(wake),
            running,
            thread: Some(thread),
        })
    }

    /// Keeps the background checkpoint out of the way while the caller runs one of its own.
    pub fn pause(&self) -> Option<MutexGuard<'_, ()>> {
        self.running.lock().ok()
    }

    /// Asks for a checkpoint soon; never blocks.
    pub fn nudge(&self) {
        if let Some(wake) = &self.wake {
            let _ = wake.send(Job::Checkpoint);
        }
    }

    /// Removes a journal entry soon, once the commit that recorded it is on disk; never blocks.
    pub fn forget(&self, entry: PathBuf) {
        if let Some(wake) = &self.wake {
            let _ = wake.send(Job::Forget(entry));
        }
    }
}

/// Makes every commit in the database's log durable (what `synchronous = NORMAL` leaves to the next checkpoint).
/// With no log, every commit is in the database file, which SQLite synced when it folded the log in and removed it.
pub fn sync_log(db: &Path) -> bool {
    let mut log = db.as_os_str().to_os_string();
    log.push("-wal");
    match File::open(&log) {
        Ok(file) => file.sync_data().is_ok(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

impl Drop for Checkpointer {
    /// Lets a running checkpoint finish, so the store's own connection closes last and removes the log.
    fn drop(&mut self) {
        drop(self.wake.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
