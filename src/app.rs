//! What a line does: a prompt runs a turn, a command changes the session. Shared by the REPL, script mode and
//! one-shot mode, which differ only in where their lines come from.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::context;
use crate::gemini::body::BlobSource;
use crate::gemini::outcome::{Outcome, classify};
use crate::gemini::types::UsageMetadata;
use crate::gemini::{Backend, Content, GenerateContentRequest, GenerateContentResponse, models};
use crate::images::{self, Attachment};
use crate::render::{self, one_line, thousands};
use crate::repl::command::{self, Command, Line};
use crate::session::{Session, Turn};
use crate::store::{ImageMeta, NewTurn, Store, TurnMeta};
use crate::ui::Ui;

/// Ctrl-C during a request: nothing was recorded.
#[derive(Debug, thiserror::Error)]
#[error("cancelled; nothing was recorded")]
pub struct Cancelled;

/// The model refused or returned nothing usable; nothing was recorded and the attachments were kept.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(String);

/// What a turn showed while it ran, and what it brought besides the content.
struct AnswerExtras {
    /// Thought summaries were streamed to the screen already.
    thoughts_shown: bool,
    /// The answer text was streamed to the screen already.
    text_shown: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

pub struct App {
    /// Where request bodies read the history's images and signatures from as they stream out. Declared before
    /// `store` so it is dropped first: the writer's connection, closing last, checkpoints and removes the WAL file.
    pub(crate) blobs: Arc<dyn BlobSource>,
    pub store: Store,
    pub session: Session,
    pub ui: Ui,
    pub(crate) backend: Backend,
    pub(crate) out_dir: PathBuf,
    pub(crate) runtime: tokio::runtime::Runtime,
    /// The last prompt, while its turn failed (refused, an error, cancelled): `/retry` sends it again.
    pub(crate) failed_prompt: Option<String>,
    /// Use streamGenerateContent (`--stream`, `/stream`): on by default in the interactive REPL.
    pub stream: bool,
}

impl App {
    pub fn new(
        store: Store,
        session: Session,
        ui: Ui,
        backend: Backend,
        out_dir: PathBuf,
    ) -> Result<App> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let blobs: Arc<dyn BlobSource> = Arc::new(store.blob_reader()?);
        Ok(App {
            store,
            session,
            ui,
            backend,
            out_dir,
            runtime,
            blobs,
            failed_prompt: None,
            stream: false,
        })
    }

    /// Runs one typed line.
    pub fn handle_line(&mut self, line: &str) -> Result<Flow> {
        match line.parse::<Line>()? {
            Line::Empty => Ok(Flow::Continue),
            Line::Prompt(prompt) => self.prompt(&prompt).map(|()| Flow::Continue),
            Line::Command(command) => self.command(command),
        }
    }

    // ---- a turn ----

    /// Sends the whole history plus this prompt (and the attachments), and records the answer in one transaction.
    pub fn prompt(&mut self, prompt: &str) -> Result<()> {
        let user = self.session.user_content(prompt);
        let head = self.session.head();
        let result = self.send_turn(user, head, prompt);
        self.failed_prompt = result.is_err().then(|| prompt.to_string());
        result
    }

    /// Sends the history up to `parent` plus `user` and records the answer under `parent`: normally the head, or
    /// the content before the last turn for a retry.
    pub(crate) fn send_turn(
        &mut self,
        user: Content,
        parent: Option<i64>,
        prompt: &str,
    ) -> Result<()> {
        let (request, size) = self.build_request(&user, parent)?;
        let model = self.session.settings.model.clone();
        let started = Instant::now();
        let (response, extras) = self.ask(&model, &request)?;
        let elapsed = started.elapsed();
        let (model_version, response_id) =
            (response.model_version.clone(), response.response_id.clone());
        let (content, finish_reason, usage, sources) = match classify(response) {
            Outcome::Answer {
                content,
                finish_reason,
                usage,
                sources,
            } => (content, finish_reason, usage, sources),
            Outcome::Refused(refusal) => {
                let kept = match self.session.attachments.len() {
                    0 => String::new(),
                    n => format!("; the {n} attachment(s) are kept for the next try"),
                };
                return Err(
                    Refused(format!("{}{kept}", render::sanitize(&refusal.explain()))).into(),
                );
            }
        };
        // HOOK(wire): the answer's base64 decoded once, for the image files and the store alike.
        let decoded = crate::store::Decoded::of(&content.parts)?;
        let answer_images = images::answer_images_decoded(&content, &decoded);
        let settings = &self.session.settings;
        let meta = TurnMeta {
            settings: Some(settings.clone()),
            finish_reason,
            cost_usd: cost(
                &model,
                settings.size.as_deref(),
                answer_images.len(),
                usage.as_ref(),
            ),
            usage,
            elapsed_ms: elapsed.as_millis() as u64,
            model_version,
            response_id,
            images: answer_images.iter().map(|i| i.meta.clone()).collect(),
            request_bytes: size.bytes,
            sources,
            // HOOK(wire): which backend answered, so later turns know whose signatures this answer carries.
            made_by: Some(self.backend.made_by()),
        };
        let (number, label) = self.record(&user, &content, &decoded, &meta, parent, prompt)?;
        self.show_answer(number, &label, &content, &meta, &answer_images, &extras)
    }

    /// The request for `user` after the history up to `parent`, as the context policy trims it, checked against
    /// the limits before anything is sent. Large values stay in the store as placeholders until the body streams.
    fn build_request(
        &self,
        user: &Content,
        parent: Option<i64>,
    ) -> Result<(GenerateContentRequest, context::Measure)> {
        // HOOK(wire): the history as the model asked now can take it: the dummy signature where a turn did not come
        // from its family (the stored thread is not changed).
        let target = self.backend.signature_family(&self.session.settings.model);
        let mut contents = self.store.contents_for(parent, &target)?;
        contents.push(user.clone());
        let contents = self.session.settings.context.apply(contents);
        // HOOK(wire): the model's own reference-image limit, as this run's provider passes it on.
        context::check_references(&contents, &self.session.settings.model)?;
        let request = GenerateContentRequest {
            contents,
            generation_config: self.session.settings.generation_config()?,
            tools: self.session.settings.tools(),
            system_instruction: None,
        };
        let size = context::measure(&request, &self.session.settings.model, &self.blobs)?;
        if let Some(why) = size.over(&self.limits(), &self.session.settings.context) {
            bail!(why);
        }
        Ok((request, size))
    }

    /// Sends the request, showing progress, until it answers, fails, or Ctrl-C cancels it. Returns the response and
    /// what of it was already shown as it streamed in.
    fn ask(
        &self,
        model: &str,
        request: &GenerateContentRequest,
    ) -> Result<(GenerateContentResponse, AnswerExtras)> {
        let spinner = self.ui.spinner(model);
        let live = self
            .ui
            .live(spinner.as_ref(), self.session.settings.thoughts);
        let progress = |p: crate::gemini::Progress<'_>| live.show(p);
        let answer = self.runtime.block_on(async {
            tokio::select! {
                response = self.backend.generate(model, request, &self.blobs, self.stream, &progress) => Some(response),
                _ = tokio::signal::ctrl_c() => None,
            }
        });
        if let Some(spinner) = &spinner {
            spinner.finish_and_clear();
        }
        let Some(response) = answer else {
            return Err(Cancelled.into());
        };
        let response = response.context("the request failed; nothing was recorded")?;
        Ok((
            response,
            AnswerExtras {
                thoughts_shown: live.thoughts_shown(),
                text_shown: live.text_shown(),
            },
        ))
    }

    /// Records the turn in one transaction and moves this session along (or onto the branch the store made when
    /// another process had moved the head). Returns the turn's number and label.
    fn record(
        &mut self,
        user: &Content,
        content: &Content,
        // HOOK(wire): the answer as decoded for the image files, stored without decoding it again.
        decoded: &crate::store::Decoded,
        meta: &TurnMeta,
        parent: Option<i64>,
        prompt: &str,
    ) -> Result<(i64, String)> {
        let head = self.session.head();
        let session_id = self.session.ensure_stored(&self.store, prompt)?.id;
        let turn = NewTurn {
            user,
            model: content,
            meta,
        };
        let appended = self
            .store
            .append_decoded(session_id, head, parent, turn, Some(decoded))?;
        self.session.attachments.clear();
        match appended.branched_to {
            Some(branch) => {
                self.ui.warn(&format!(
                    "another peel moved session {} while this turn ran; the turn was saved as session {}, now open",
                    self.session.name(),
                    branch.name
                ));
                self.session = Session::open(branch);
            }
            None => {
                let row = self
                    .session
                    .row
                    .as_mut()
                    .expect("ensure_stored just stored the session");
                row.head_id = Some(appended.model_id);
                row.redo.clear();
            }
        }
        Ok((
            appended.turn,
            crate::tree::label(appended.turn, appended.take),
        ))
    }

    fn show_answer(
        &self,
        turn: i64,
        label: &str,
        content: &Content,
        meta: &TurnMeta,
        images: &[images::AnswerImage],
        extras: &AnswerExtras,
    ) -> Result<()> {
        let thoughts = content.thought_text();
        let show_thoughts = meta.settings.as_ref().is_some_and(|s| s.thoughts);
        if show_thoughts && !extras.thoughts_shown && !thoughts.trim().is_empty() {
            self.ui
                .say(&self.ui.dim(&render::sanitize(thoughts.trim())));
        }
        let text = content.answer_text();
        if !extras.text_shown && !text.trim().is_empty() {
            self.ui.say(&render::sanitize(text.trim()));
        }
        let mut saved = Vec::new();
        for (index, image) in images.iter().enumerate() {
            let path =
                images::output_path(&self.out_dir, self.session.name(), label, index, image.ext);
            images::write_atomically(&path, &image.bytes)?;
            self.ui.preview(&image.bytes);
            self.announce_path(&path, &image.meta);
            saved.push(path);
        }
        let undecodable = content.answer_images().count() - images.len();
        if undecodable > 0 {
            self.ui.warn(&format!(
                "{undecodable} image(s) in the answer are not decodable images; kept in the history"
            ));
        } else if images.is_empty() {
            self.ui.warn(
                "no image came back this turn (text only); the answer is kept in the history",
            );
        }
        if !meta.sources.is_empty() {
            let mut list = String::from("sources:");
            for (n, source) in meta.sources.iter().enumerate() {
                list.push_str(&format!(
                    "\n  {}. {} {}",
                    n + 1,
                    render::sanitize(&source.title),
                    self.ui.dim(&render::sanitize(&source.uri))
                ));
            }
            self.ui.say(&list);
        }
        if self.ui.json {
            let object = json!({
                "session": self.session.name(),
                "turn": turn,
                "images": saved.iter().zip(&meta.images).map(|(path, m)| json!({
                    "path": path, "mime": m.mime, "width": m.width, "height": m.height, "bytes": m.bytes,
                })).collect::<Vec<_>>(),
                "text": render::sanitize(&text),
                "finish_reason": meta.finish_reason,
                "sources": meta.sources,
                "usage": meta.usage,
                "cost": { "usd": meta.cost_usd, "estimated": true },
                "elapsed_ms": meta.elapsed_ms,
            });
            self.ui.result(&object.to_string());
        }
        self.ui.note(&footer(meta));
        Ok(())
    }

    /// The saved path: on stdout for scripts (unless --json carries it), beside the preview for a person.
    fn announce_path(&self, path: &Path, meta: &ImageMeta) {
        let size = format!("{}x{}", meta.width, meta.height);
        if self.ui.interactive {
            self.ui.say(&format!(
                "{}  {}",
                self.ui.bold(&path.display().to_string()),
                self.ui.dim(&size)
            ));
        } else {
            if !self.ui.json {
                self.ui.result(&path.display().to_string());
            }
            self.ui.note(&format!("saved {} ({size})", path.display()));
        }
    }

    // ---- commands ----

    pub fn command(&mut self, command: Command) -> Result<Flow> {
        match command {
            Command::Attach(paths) if paths.is_empty() => self.list_attachments(),
            Command::Attach(paths) => self.attach(&paths)?,
            Command::Detach => {
                let n = self.session.attachments.len();
                self.session.attachments.clear();
                self.ui.note(&format!("dropped {n} attachment(s)"));
            }
            Command::Save(name) => self.save(name.as_deref())?,
            Command::Load(name) => self.load(&name)?,
            Command::New(name) => {
                if let Some(name) = &name {
                    crate::session::validate_name(name)?;
                    if self.store.session(name)?.is_some() {
                        bail!("a session named {name:?} already exists; /load {name} opens it");
                    }
                }
                self.session = Session::new(name, self.session.settings.clone());
                self.ui
                    .note(&format!("new session {}", self.session.name()));
            }
            Command::Sessions => self.list_sessions()?,
            Command::History => self.history()?,
            Command::Branch { name, at } => self.branch(name, at)?,
            Command::Undo => self.undo()?,
            Command::Redo => self.redo()?,
            Command::Retry => self.retry()?,
            Command::Tree => self.tree()?,
            Command::Delete(name) => self.delete(&name)?,
            Command::Export(dir) => self.export(dir)?,
            Command::Show(turn) => self.show(turn)?,
            Command::Open(turn) => self.open(turn)?,
            Command::Model(None) => self.list_models(),
            Command::Model(Some(id)) => self.set_model(&id)?,
            Command::Aspect(ratio) => {
                let aspect = match ratio.as_str() {
                    "auto" => None,
                    other => Some(models::normalize_ratio(other)?),
                };
                self.change_settings(|s| s.aspect = aspect)?;
            }
            Command::Size(size) => {
                let size = match size.to_ascii_lowercase().as_str() {
                    "auto" | "default" => None,
                    other => Some(models::normalize_size(other)?),
                };
                self.change_settings(|s| s.size = size)?;
            }
            Command::Thoughts(on) => self.change_settings(|s| s.thoughts = on)?,
            Command::Think(level) => self.change_settings(|s| s.think = level)?,
            Command::Search(on) => self.change_settings(|s| s.search = on)?,
            Command::Stream(on) => {
                self.stream = on;
                let offline = matches!(self.backend, Backend::Offline);
                self.ui.note(match (on, offline) {
                    (true, false) => {
                        "streaming on: thought summaries and text appear as they arrive"
                    }
                    (true, true) => "streaming on (offline answers arrive whole anyway)",
                    (false, _) => "streaming off: each answer arrives whole",
                });
            }
            Command::Context(None) => self.show_context()?,
            Command::Context(Some(policy)) => self.set_context(policy)?,
            Command::Fresh => self.fresh()?,
            Command::Cost => {
                let turns = self.session.turns(&self.store)?;
                self.ui
                    .say(&crate::cost::report(self.session.name(), &turns));
            }
            Command::Settings => self.ui.say(&self.settings_text()),
            Command::Help(topic) => self.ui.say(&command::help(topic.as_deref())?),
            Command::Quit => return Ok(Flow::Quit),
        }
        Ok(Flow::Continue)
    }

    pub fn attach(&mut self, paths: &[PathBuf]) -> Result<()> {
        // All or nothing: one bad path attaches none, so the person fixes the line and sends it again.
        let read = paths
            .iter()
            .map(|p| Attachment::read(p))
            .collect::<Result<Vec<_>>>()?;
        for attachment in read {
            self.ui.note(&format!("attached {}", attachment.describe()));
            self.session.attachments.push(attachment);
        }
        Ok(())
    }

    fn list_attachments(&self) {
        if self.session.attachments.is_empty() {
            self.ui
                .say("no attachments; /attach PATH... adds images to the next prompt");
        }
        for attachment in &self.session.attachments {
            self.ui.say(&attachment.describe());
        }
    }

    fn save(&mut self, name: Option<&str>) -> Result<()> {
        let old = self.session.row.as_ref().map(|r| r.name.clone());
        match name {
            Some(name) => self.session.rename(&self.store, name)?,
            None if self.session.row.is_some() => {}
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
            let from = images::session_dir(&self.out_dir, &old);
            let to = images::session_dir(&self.out_dir, self.session.name());
            if from.is_dir()
                && !to.exists()
                && let Err(e) = std::fs::rename(&from, &to)
            {
                self.ui
                    .warn(&format!("the images stay in {}: {e}", from.display()));
            }
        }
        self.ui
            .note(&format!("session saved as {}", self.session.name()));
        Ok(())
    }

    pub fn load(&mut self, name: &str) -> Result<()> {
        let Some(row) = self.store.session(name)? else {
            bail!("no session named {name:?}; /sessions lists them");
        };
        self.store.touch(row.id)?;
        if !self.session.attachments.is_empty() {
            self.ui
                .note("the attachments were dropped with the old session");
        }
        self.session = Session::open(row);
        self.describe_session()
    }

    /// "session fox: 3 turns, last image peel-out/fox/3.jpg".
    pub fn describe_session(&self) -> Result<()> {
        let turns = self.session.turns(&self.store)?;
        let mut text = format!(
            "session {}: {}, {}",
            self.session.name(),
            render::count(turns.len(), "turn"),
            self.session.settings.model
        );
        if let Some(last) = turns.iter().rev().find(|t| t.model.image_count() > 0) {
            let files = self.turn_files(last)?;
            if let Some((path, _)) = files.first() {
                text.push_str(&format!(", last image {}", path.display()));
            }
        }
        self.ui.say(&text);
        Ok(())
    }

    /// A turn's answer images on disk (written again from the database if they were moved or deleted).
    pub(crate) fn turn_files(&self, turn: &Turn) -> Result<Vec<(PathBuf, images::AnswerImage)>> {
        self.answer_files(turn, &self.stored_answer(turn)?)
    }

    /// A turn's answer as stored, blobs put back.
    fn stored_answer(&self, turn: &Turn) -> Result<Content> {
        Ok(Content {
            role: Some("model".into()),
            parts: self.store.parts(&turn.model)?,
            extra: Default::default(),
        })
    }

    /// The answer images of `content` (turn `turn`'s answer) on disk.
    fn answer_files(
        &self,
        turn: &Turn,
        content: &Content,
    ) -> Result<Vec<(PathBuf, images::AnswerImage)>> {
        let label = turn.label();
        let images = images::answer_images(content).into_iter().enumerate();
        images
            .map(|(index, image)| Ok((self.ensure_file(&label, index, &image)?, image)))
            .collect()
    }

    /// `OUT/<session>/<name>[-k].<ext>`, written from the image if the file is missing.
    fn ensure_file(
        &self,
        name: &str,
        index: usize,
        image: &images::AnswerImage,
    ) -> Result<PathBuf> {
        let path = images::output_path(&self.out_dir, self.session.name(), name, index, image.ext);
        if !path.exists() {
            images::write_atomically(&path, &image.bytes)?;
        }
        Ok(path)
    }

    /// `/open`: the turn's image in the system's viewer (xdg-open, or open on macOS).
    fn open(&self, number: Option<i64>) -> Result<()> {
        let turn = self.pick_turn(number)?;
        let files = self.turn_files(&turn)?;
        let (path, _) = files
            .first()
            .with_context(|| format!("turn {} has no image to open", turn.label()))?;
        let opener = if cfg!(target_os = "macos") {
            "open"
        } else {
            "xdg-open"
        };
        // xdg-open and open hand the file to the viewer and return at once.
        let status = std::process::Command::new(opener)
            .arg(path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .with_context(|| format!("could not run {opener} to open {}", path.display()))?;
        if !status.success() {
            bail!("{opener} could not open {} ({status})", path.display());
        }
        self.ui.note(&format!("opened {}", path.display()));
        Ok(())
    }

    /// Turn `number`, or the last turn with an image.
    fn pick_turn(&self, number: Option<i64>) -> Result<Turn> {
        let turns = self.session.turns(&self.store)?;
        let turn = match number {
            Some(n) => turns.iter().find(|t| t.number == n).with_context(|| {
                format!(
                    "this session has no turn {n} (it has {}); /history lists them",
                    turns.len()
                )
            })?,
            None => turns
                .iter()
                .rev()
                .find(|t| t.model.image_count() > 0)
                .context("this session has no image yet")?,
        };
        Ok(turn.clone())
    }

    fn show(&self, number: Option<i64>) -> Result<()> {
        let turn = &self.pick_turn(number)?;
        let content = self.stored_answer(turn)?;
        let files = self.answer_files(turn, &content)?;
        if files.is_empty() {
            self.ui.say(&format!(
                "turn {} has no image: {}",
                turn.number,
                one_line(&turn.model.visible_text(), 70)
            ));
        }
        for (path, image) in &files {
            self.ui.preview(&image.bytes);
            self.announce_path(path, &image.meta);
        }
        // The interim images the model drew while thinking, kept in the history as they came.
        for (k, image) in images::thought_images(&content).iter().enumerate() {
            let path =
                self.ensure_file(&format!("{}-thought-{}", turn.label(), k + 1), 0, image)?;
            self.ui.note(&format!(
                "thought image {} of turn {}:",
                k + 1,
                turn.label()
            ));
            self.ui.preview(&image.bytes);
            self.announce_path(&path, &image.meta);
        }
        Ok(())
    }

    fn history(&self) -> Result<()> {
        let turns = self.session.turns(&self.store)?;
        if turns.is_empty() {
            self.ui
                .say(&format!("session {} has no turns yet", self.session.name()));
            return Ok(());
        }
        let notes = self.history_notes()?;
        let rows: Vec<Vec<String>> = turns
            .iter()
            .map(|t| {
                let meta = &t.model.meta;
                let ext = meta
                    .images
                    .first()
                    .and_then(|i| images::ext_for_mime(&i.mime))
                    .unwrap_or("");
                let image = match meta.images.first() {
                    Some(i) => format!(
                        "{} {}x{}",
                        images::output_path(&self.out_dir, self.session.name(), &t.label(), 0, ext)
                            .display(),
                        i.width,
                        i.height
                    ),
                    None => "(text only)".into(),
                };
                let attached = match t.user.image_count() {
                    0 => String::new(),
                    n => format!(" [+{n} image{}]", if n == 1 { "" } else { "s" }),
                };
                vec![
                    t.label(),
                    format!("{}{attached}", one_line(&t.user.visible_text(), 40)),
                    image,
                    meta.usage
                        .as_ref()
                        .and_then(|u| u.total_token_count)
                        .map_or("-".into(), thousands),
                    format!("${:.3}", meta.cost_usd),
                    notes
                        .get(&t.model.id)
                        .map_or(String::new(), |n| n.join("; ")),
                ]
            })
            .collect();
        let total: f64 = turns.iter().map(|t| t.model.meta.cost_usd).sum();
        let header = ["turn", "prompt", "image", "tokens", "cost", "notes"];
        let mut text = render::table(&header, &rows);
        text.push_str(&format!(
            "{}, ${total:.3} estimated; /branch NAME @TURN continues from any take, /tree shows them all",
            render::count(turns.len(), "turn")
        ));
        self.ui.say(&text);
        Ok(())
    }

    pub fn list_sessions(&self) -> Result<()> {
        let sessions = self.store.list_sessions()?;
        if sessions.is_empty() {
            self.ui.say("no sessions yet");
            return Ok(());
        }
        let current = self.session.row.as_ref().map(|r| r.id);
        let rows: Vec<Vec<String>> = sessions
            .iter()
            .map(|s| {
                let marker = if Some(s.session.id) == current {
                    "*"
                } else {
                    " "
                };
                vec![
                    format!("{marker}{}", s.session.name),
                    s.turns.to_string(),
                    render::timestamp(s.session.updated_at),
                    s.session.settings.model.clone(),
                    match (&s.session.origin_session, s.origin_turn) {
                        (Some(from), Some(turn)) => format!("{from}@{turn}"),
                        (Some(from), None) => from.clone(),
                        (None, _) => String::new(),
                    },
                    s.last_prompt
                        .as_deref()
                        .map_or(String::new(), |p| one_line(p, 40)),
                ]
            })
            .collect();
        let text = render::table(
            &[" name", "turns", "updated", "model", "from", "last prompt"],
            &rows,
        );
        self.ui.say(text.trim_end());
        Ok(())
    }

    fn list_models(&self) {
        let mut text = String::new();
        for m in models::MODELS {
            let marker = if m.id == self.session.settings.model {
                "*"
            } else {
                " "
            };
            let sizes = if m.sizes.is_empty() {
                "no size choice".to_string()
            } else {
                m.sizes.join(" ")
            };
            text.push_str(&format!("{marker}{:<24} {:<16} {sizes}\n", m.id, m.alias));
        }
        text.push_str("/model ID switches; ids peel does not know are sent as given");
        self.ui.say(&text);
    }

    fn set_model(&mut self, id: &str) -> Result<()> {
        let (id, notice) = models::resolve(id);
        if let Some(notice) = notice {
            self.ui.note(&notice);
        }
        if models::info(&id).is_none() {
            self.ui.warn(&format!(
                "{id} is not in peel's model table: it is sent as given, unchecked"
            ));
        }
        let previous = self.session.settings.model.clone();
        self.change_settings(|s| s.model = id.clone())?;
        if previous != id && self.session.head().is_some() {
            self.ui.note(&format!(
                "{id} will see the earlier turns, including those {previous} made"
            ));
        }
        Ok(())
    }

    /// Applies a change, refusing one the model will not take (and keeping the old settings then).
    fn change_settings(
        &mut self,
        change: impl FnOnce(&mut crate::settings::Settings),
    ) -> Result<()> {
        let mut next = self.session.settings.clone();
        change(&mut next);
        next.generation_config()?;
        self.session.settings = next;
        self.session.save_settings(&self.store)?;
        self.ui.note(&format!(
            "next turn: {} · {}{}",
            self.session.settings.model,
            self.session.settings.shape(),
            self.session.settings.switches()
        ));
        Ok(())
    }

    fn settings_text(&self) -> String {
        let s = &self.session.settings;
        let attachments = self.session.attachments.len();
        let on_off = |on: bool| if on { "on" } else { "off" };
        format!(
            "session      {}\nmodel        {}\naspect       {}\nsize         {}\nthoughts     {}\nthink        {}\nsearch       {}\nstream       {}\nattachments  {attachments}\nimages to    {}",
            self.session.name(),
            s.model,
            s.aspect.as_deref().unwrap_or("auto (the model decides)"),
            s.size.as_deref().unwrap_or("1K (default)"),
            on_off(s.thoughts),
            s.think.as_deref().unwrap_or("auto (the model's default)"),
            on_off(s.search),
            on_off(self.stream),
            self.out_dir.join(self.session.name()).display(),
        )
    }
}

/// The estimated price of a turn: its images at the model's per-image price, plus input tokens where the price of
/// those is known.
fn cost(model: &str, size: Option<&str>, images: usize, usage: Option<&UsageMetadata>) -> f64 {
    let Some(info) = models::info(model) else {
        return 0.0;
    };
    let input = match (
        info.input_price_per_m,
        usage.and_then(|u| u.prompt_token_count),
    ) {
        (Some(price), Some(tokens)) => price * tokens as f64 / 1e6,
        _ => 0.0,
    };
    images as f64 * info.image_price(size) + input
}

/// "gemini-3-pro-image · 16:9 · 1K · 12.3 s · 1,950 tokens (in 600, thinking 230, out 1,120) · ~$0.135".
fn footer(meta: &TurnMeta) -> String {
    let mut parts = Vec::new();
    if let Some(settings) = &meta.settings {
        parts.push(settings.model.clone());
        parts.push(settings.shape());
    }
    parts.push(format!("{:.1} s", meta.elapsed_ms as f64 / 1000.0));
    if meta.request_bytes > 0 {
        parts.push(format!("sent {}", render::bytes(meta.request_bytes)));
    }
    if let Some(usage) = &meta.usage {
        let mut tokens = usage
            .total_token_count
            .map_or("? tokens".into(), |t| format!("{} tokens", thousands(t)));
        let detail: Vec<String> = [
            ("in", usage.prompt_token_count),
            ("thinking", usage.thoughts_token_count),
            ("out", usage.candidates_token_count),
        ]
        .iter()
        .filter_map(|(label, n)| n.map(|n| format!("{label} {}", thousands(n))))
        .collect();
        if !detail.is_empty() {
            tokens.push_str(&format!(" ({})", detail.join(", ")));
        }
        parts.push(tokens);
    }
    parts.push(format!("~${:.3}", meta.cost_usd));
    parts.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    #[test]
    fn footer_reads_well() {
        let meta = TurnMeta {
            settings: Some(Settings {
                aspect: Some("16:9".into()),
                ..Settings::default()
            }),
            usage: Some(UsageMetadata {
                prompt_token_count: Some(600),
                candidates_token_count: Some(1120),
                thoughts_token_count: Some(230),
                total_token_count: Some(1950),
                extra: Default::default(),
            }),
            elapsed_ms: 12_345,
            cost_usd: 0.1352,
            ..TurnMeta::default()
        };
        assert_eq!(
            footer(&meta),
            "gemini-3-pro-image · 16:9 · 1K · 12.3 s · 1,950 tokens (in 600, thinking 230, out 1,120) · ~$0.135"
        );
    }

    #[test]
    fn cost_counts_images_and_known_input_prices() {
        let usage = UsageMetadata {
            prompt_token_count: Some(1_000_000),
            ..UsageMetadata::default()
        };
        assert!((cost("gemini-3-pro-image", Some("4K"), 1, Some(&usage)) - 2.24).abs() < 1e-9);
        assert!((cost("gemini-2.5-flash-image", None, 2, None) - 0.078).abs() < 1e-9);
        assert_eq!(cost("unknown-model", None, 1, None), 0.0);
    }
}
