//! WAL checkpoints off the turn's path. SQLite checkpoints when the log passes a size, in whichever thread commits;
//! with megabytes of images a turn that meant an fsync'd copy every other turn, right after the answer arrived.
//! Here a thread of its own checkpoints after each turn, while the person reads the answer or the next request
//! waits on the network. If it falls behind, SQLite's own checkpoint (at a larger log size) still bounds the log.

use std::path::Path;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Result;
use rusqlite::Connection;

/// Bytes the log may reach before a committing thread checkpoints anyway (SQLite counts it in pages).
pub const AUTO_CHECKPOINT_BYTES: i64 = 64 * 1024 * 1024;

pub struct Checkpointer {
    wake: Option<Sender<()>>,
    /// Held for each checkpoint: SQLite refuses a second checkpoint at the same time instead of waiting for it.
    running: Arc<Mutex<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub fn start(path: &Path) -> Result<Checkpointer> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let (wake, wakes) = channel::<()>();
        let running = Arc::new(Mutex::new(()));
        let lock = running.clone();
        let thread = std::thread::Builder::new()
            .name("peel-checkpoint".into())
            .spawn(move || {
                while wakes.recv().is_ok() {
                    // Several turns may have queued wakes: one checkpoint covers them all.
                    while wakes.try_recv().is_ok() {}
                    // PASSIVE never waits for readers or writers; what it cannot copy now, the next one will.
                    let _running = lock.lock();
                    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
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
            let _ = wake.send(());
        }
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
