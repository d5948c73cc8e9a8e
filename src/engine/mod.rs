//! The engine: sessions, turns, the tree, recording and files. It knows no terminal: it takes typed requests,
//! reports a running turn's progress as [`events::Event`]s, and returns typed results for a face to show.
//!
//! A turn flows one way (see `turn.rs`): the history is read from the store, the request built and checked against
//! the limits, sent through the backend, the answer recorded in one transaction, and its images written beside the
//! session's earlier ones.

pub mod batch;
mod batch_input;
mod branching;
pub mod context;
pub mod events;
pub mod export;
pub mod images;
mod listing;
pub mod output;
pub mod references;
pub mod session;
mod settings;
mod sheet;
pub mod transport;
pub mod tree;
mod turn;
pub mod variants;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};

pub use branching::{Branched, Deleted, Family, TurnRef, Undone};
pub use context::ContextReport;
pub use events::{Event, Events};
pub use listing::{Description, HistoryRow, ImageFile, Shown, TurnFile};
pub use settings::{Conflict, ModelSwitch};
pub use turn::{NotRecorded, Refused, TurnReport};

use crate::gemini::Backend;
use crate::gemini::body::BlobSource;
use crate::settings::Settings;
use crate::store::{SessionRow, SessionSummary, Store};
use images::Attachment;
use session::Session;

/// Ctrl-C (or whatever the face maps to it) cancelled a request: nothing was recorded.
#[derive(Debug, thiserror::Error)]
#[error("cancelled; nothing was recorded")]
pub struct Cancelled;

/// What cancels a running request: the face cancels it (on Ctrl-C); the engine only waits on it.
pub type Cancel = tokio_util::sync::CancellationToken;

pub struct Engine {
    /// Where request bodies read the history's images and signatures from as they stream out. Declared before
    /// `store` so it is dropped first: the writer's connection, closing last, checkpoints and removes the WAL file.
    blobs: Arc<dyn BlobSource>,
    store: Store,
    session: Session,
    backend: Backend,
    runtime: tokio::runtime::Runtime,
    /// The last prompt while its turn failed before an answer arrived: `/retry` sends it again.
    failed_prompt: Option<String>,
    /// Use streamGenerateContent.
    stream: bool,
    /// Where the images of sessions made in this run go (absolute).
    out_root: PathBuf,
    /// How many requests a variants turn keeps in flight.
    concurrency: usize,
    /// How the Interactions transport asks for images (`transport.rs`).
    interaction_options: transport::InteractionOptions,
}

impl Engine {
    /// An engine on `store`, with a new unsaved session of `settings` whose images go under `out_root`.
    pub fn new(
        store: Store,
        backend: Backend,
        settings: Settings,
        out_root: &Path,
    ) -> Result<Engine> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let blobs: Arc<dyn BlobSource> = Arc::new(store.blob_reader()?);
        let out_root = absolute(out_root)?;
        Ok(Engine {
            blobs,
            store,
            session: Session::new(None, settings, out_root.clone()),
            backend,
            runtime,
            failed_prompt: None,
            stream: false,
            out_root,
            concurrency: variants::DEFAULT_CONCURRENCY,
            interaction_options: Default::default(),
        })
    }

    // ---- what the faces read ----

    pub fn session_name(&self) -> &str {
        self.session.name()
    }

    pub fn is_stored(&self) -> bool {
        self.session.is_stored()
    }

    pub fn settings(&self) -> &Settings {
        &self.session.settings
    }

    pub fn attachments(&self) -> &[Attachment] {
        &self.session.attachments
    }

    /// The folder this session's images are written to.
    pub fn image_dir(&self) -> PathBuf {
        output::session_dir(&self.session.out_root, self.session.name())
    }

    pub fn stream(&self) -> bool {
        self.stream
    }

    pub fn set_stream(&mut self, on: bool) {
        self.stream = on;
    }

    /// How turns over the Interactions API ask for their images (the config's `image_delivery`).
    pub fn set_interaction_options(&mut self, options: transport::InteractionOptions) {
        self.interaction_options = options;
    }

    /// Why nothing can be saved in this database (it is read-only), if so.
    pub fn read_only(&self) -> Option<String> {
        self.store.read_only().map(str::to_string)
    }

    /// Records the answers an earlier peel could not (kept in the journal beside the database) into their threads;
    /// returns what it did, a line each.
    pub fn recover(&mut self) -> Result<Vec<String>> {
        if self.store.read_only().is_some() {
            return Ok(Vec::new());
        }
        Ok(self.store.recover_arrivals()?.lines())
    }

    /// Answers come from the local stand-in (`--offline`), which answers whole, never streamed.
    pub fn is_offline(&self) -> bool {
        matches!(self.backend, Backend::Offline)
    }

    // ---- opening sessions ----

    /// A stored session by name.
    pub fn find_session(&self, name: &str) -> Result<Option<SessionRow>> {
        self.store.session(name)
    }

    /// The session opened or changed last.
    pub fn most_recent_session(&self) -> Result<Option<SessionRow>> {
        self.store.most_recent_session()
    }

    pub fn session_names(&self) -> Result<Vec<String>> {
        Ok(self
            .store
            .list_sessions()?
            .into_iter()
            .map(|s| s.session.name)
            .collect())
    }

    pub fn sessions(&self) -> Result<Vec<SessionSummary>> {
        self.store.list_sessions()
    }

    /// The id of the session being edited, once stored.
    pub fn session_id(&self) -> Option<i64> {
        self.session.row.as_ref().map(|r| r.id)
    }

    /// Makes `row` the session being edited with `settings` for its next turns; `out_root`, when given (`-o`),
    /// is where its images go from now on. Marks it as the one in use (for `peel -r`).
    pub fn enter(
        &mut self,
        row: SessionRow,
        settings: Settings,
        out_root: Option<&Path>,
    ) -> Result<()> {
        self.store.touch(row.id)?;
        let mut session = Session::open(row, &self.out_root);
        if settings != session.settings {
            session.settings = settings;
            session.save_settings(&self.store)?;
        }
        let stored = session.row.as_ref().and_then(|r| r.out_dir.clone());
        let wanted = match out_root {
            Some(dir) => Some(absolute(dir)?),
            None => None,
        };
        if let Some(dir) = wanted.or_else(|| stored.is_none().then(|| self.out_root.clone()))
            && stored.as_deref() != Some(dir.as_path())
            && let Some(row) = &mut session.row
        {
            self.store.set_out_dir(row.id, &dir)?;
            row.out_dir = Some(dir.clone());
            session.out_root = dir;
        }
        self.session = session;
        Ok(())
    }

    /// Creates and enters a new stored session `name` (`peel -s NAME` for a name not taken).
    pub fn create(&mut self, name: &str, settings: Settings) -> Result<()> {
        session::validate_name(name)?;
        let mut session = Session::new(Some(name.to_string()), settings, self.out_root.clone());
        session.rename(&self.store, name)?;
        self.session = session;
        Ok(())
    }

    /// Checks that the session being edited is still in the database: another peel may have deleted it. If it
    /// is gone, this one becomes a new unsaved session with the same settings, and the error says so.
    pub(crate) fn check_still_there(&mut self) -> Result<()> {
        let Some(row) = &self.session.row else {
            return Ok(());
        };
        if self.store.session_if_any(row.id)?.is_some() {
            return Ok(());
        }
        let name = row.name.clone();
        self.session.row = None;
        self.failed_prompt = None;
        bail!(
            "session {name} was deleted by another peel meanwhile (its turns went with it unless another session \
             uses them); this is a new session now: a prompt starts it, /sessions lists the others"
        );
    }

    // ---- attachments ----

    /// Reads and checks each file (or stored image, for a label such as `@3`), all or nothing: one bad one
    /// attaches none, so the line can be fixed and sent again. Returns how many were attached.
    pub fn attach(&mut self, paths: &[PathBuf]) -> Result<usize> {
        let read = paths
            .iter()
            .map(|p| match p.to_str() {
                Some(label) if label.starts_with('@') => self.resolve_reference(label),
                _ => Attachment::read(p),
            })
            .collect::<Result<Vec<_>>>()?;
        let n = read.len();
        self.session.attachments.extend(read);
        Ok(n)
    }

    /// Attaches image bytes from somewhere else than a file (the clipboard), checked like a file's.
    pub fn attach_bytes(&mut self, source: &str, bytes: Vec<u8>) -> Result<()> {
        let attachment = Attachment::from_bytes(source.to_string(), bytes)?;
        self.session.attachments.push(attachment);
        Ok(())
    }

    /// Drops the attachments; returns how many there were.
    pub fn detach(&mut self) -> usize {
        std::mem::take(&mut self.session.attachments).len()
    }

    // ---- sessions ----

    /// `/save [NAME]`: names or renames the session, storing it if needed; its image folder moves along. Returns
    /// a warning when the folder could not be moved.
    pub fn save(&mut self, name: Option<&str>) -> Result<Option<String>> {
        self.check_still_there()?;
        let old = self.session.row.as_ref().map(|r| r.name.clone());
        match name {
            Some(name) => self.session.rename(&self.store, name)?,
            None if self.session.is_stored() => {}
            None => {
                let base = self
                    .session
                    .wanted_name
                    .clone()
                    .unwrap_or_else(|| "session".into());
                let name = self.store.free_name(&base)?;
                self.session.rename(&self.store, &name)?;
            }
        }
        // Keep the images with the session: move its image folder along when it is renamed.
        if let Some(old) = old.filter(|old| old != self.session.name()) {
            let from = output::session_dir(&self.session.out_root, &old);
            let to = self.image_dir();
            if from.is_dir() {
                if to.exists() {
                    return Ok(Some(format!(
                        "the images stay in {}: {} already exists",
                        from.display(),
                        to.display()
                    )));
                }
                if let Err(e) = std::fs::rename(&from, &to) {
                    return Ok(Some(format!("the images stay in {}: {e}", from.display())));
                }
            }
        }
        Ok(None)
    }

    /// `/load NAME`: switches to another session; returns how many attachments were dropped with the old one.
    pub fn load(&mut self, name: &str) -> Result<usize> {
        let Some(row) = self.store.session(name)? else {
            bail!("no session named {name:?}; /sessions lists them");
        };
        let dropped = self.session.attachments.len();
        let settings = row.settings.clone();
        self.enter(row, settings, None)?;
        Ok(dropped)
    }

    /// `/new [NAME]`: an empty session with the current settings (and image folder), stored at its first turn.
    pub fn new_session(&mut self, name: Option<String>) -> Result<()> {
        if let Some(name) = &name {
            session::validate_name(name)?;
            if self.store.session(name)?.is_some() {
                bail!("a session named {name:?} already exists; /load {name} opens it");
            }
        }
        let mut settings = self.session.settings.clone();
        settings.context = Default::default();
        self.session = Session::new(name, settings, self.session.out_root.clone());
        self.failed_prompt = None;
        Ok(())
    }

    /// Whether `name` is the session being edited.
    pub fn is_current(&self, name: &str) -> bool {
        self.session.row.as_ref().is_some_and(|r| r.name == name)
    }
}

/// `path` made absolute against the current directory (without touching the file system).
fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path)
        .with_context(|| format!("the folder {} cannot be resolved", path.display()))
}
