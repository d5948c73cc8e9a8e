//! What each slash command does, seen from the face: it asks the engine and shows the answer.

use anyhow::{Context as _, Result, bail};

use super::command::Command;
use super::render::{self, SettingsView};
use super::{Face, Flow};
use crate::engine::ModelSwitch;
use crate::gemini::models;
use crate::text::{self, and_list, one_line, sanitize};

impl Face {
    pub fn command(&mut self, command: Command) -> Result<Flow> {
        match command {
            Command::Attach(paths) if paths.is_empty() => self.list_attachments(),
            Command::Attach(paths) => {
                let n = self.engine.attach(&paths)?;
                let attached = self.engine.attachments();
                for attachment in &attached[attached.len() - n..] {
                    self.out
                        .note(&format!("attached {}", sanitize(&attachment.describe())));
                }
            }
            Command::Paste => {
                let bytes = super::clipboard::image()?;
                self.engine.attach_bytes("clipboard", bytes)?;
                let attached = self.engine.attachments();
                if let Some(attachment) = attached.last() {
                    self.out
                        .note(&format!("attached {}", sanitize(&attachment.describe())));
                }
            }
            Command::Variants { n, prompt } => self.variants(&prompt, n)?,
            Command::Pick(label) => {
                let (label, left) = self.engine.pick(&label)?;
                let mut note = format!("the next prompt continues from {label}");
                if left > 0 {
                    note.push_str(&format!(
                        "; the {} after it stay in the tree (/tree)",
                        text::count(left, "turn")
                    ));
                }
                self.out.note(&note);
            }
            Command::Sheet(label) => {
                let sheet = self.engine.sheet(label.as_deref())?;
                self.image(&sheet);
            }
            Command::Compare(a, b) => {
                let both = self.engine.compare(&a, &b)?;
                self.image(&both);
            }
            Command::Detach => match self.engine.detach() {
                0 => self.out.note("no attachments to drop"),
                n => self
                    .out
                    .note(&format!("dropped {}", text::count(n, "attachment"))),
            },
            Command::Save(name) => {
                if let Some(warning) = self.engine.save(name.as_deref())? {
                    self.out.warn(&warning);
                }
                self.out.note(&format!(
                    "session saved as {}",
                    sanitize(self.engine.session_name())
                ));
            }
            Command::Load(name) => {
                let dropped = self.engine.load(&name)?;
                if dropped > 0 {
                    self.out.note(&format!(
                        "{} dropped with the old session",
                        text::count(dropped, "attachment")
                    ));
                }
                self.describe()?;
            }
            Command::New(name) => {
                let named = name.is_some();
                self.engine.new_session(name)?;
                if named {
                    self.out.note(&format!(
                        "new session {}",
                        sanitize(self.engine.session_name())
                    ));
                } else {
                    self.out.note(
                        "new session: it is named after its first prompt (or /save NAME now)",
                    );
                }
            }
            Command::Sessions => {
                let sessions = self.engine.sessions()?;
                self.out
                    .say(&render::sessions(&sessions, self.engine.session_id()));
            }
            Command::History => {
                let rows = self.engine.history()?;
                self.out
                    .say(&render::history(self.engine.session_name(), &rows));
            }
            Command::Tree => {
                let family = self.engine.family()?;
                if family.nodes.is_empty() {
                    self.out.say(&format!(
                        "session {} has no turns yet",
                        sanitize(self.engine.session_name())
                    ));
                } else {
                    let mut drawing = render::tree(&family.nodes, &family.heads, &family.path);
                    drawing.push_str(
                        "● this session's turns; /branch NAME @TURN starts a session from any of them",
                    );
                    self.out.say(&drawing);
                }
            }
            Command::Branch { name, at } => {
                let branched = self.engine.branch(name, at)?;
                let at = branched
                    .at
                    .map_or(String::new(), |label| format!(" at turn {label}"));
                self.out.note(&format!(
                    "branched {} from {}{at}; {} is untouched",
                    sanitize(&branched.name),
                    sanitize(&branched.from),
                    sanitize(&branched.from)
                ));
            }
            Command::Undo => {
                let undone = self.engine.undo()?;
                self.out.note(&format!(
                    "undid turn {} ({}); /redo brings it back",
                    undone.label,
                    one_line(&undone.prompt, 40)
                ));
            }
            Command::Redo => {
                let back = self.engine.redo()?;
                self.out.note(&format!(
                    "back to turn {} ({})",
                    back.label,
                    one_line(&back.prompt, 40)
                ));
            }
            Command::Retry => self.turn(|engine, events, cancel| engine.retry(events, cancel))?,
            Command::Delete { name, yes } => self.delete(&name, yes)?,
            Command::Export(dir) => {
                let exported = self.engine.export(None, dir)?;
                self.out.note(&format!(
                    "exported {} to {}",
                    text::count(exported.files.len(), "file"),
                    render::path(&exported.dir)
                ));
            }
            Command::Show(label) => self.show(label.as_deref())?,
            Command::Open(label) => self.open(label.as_deref())?,
            Command::Preview(setting) => {
                let message = self.previews.set(&setting)?;
                self.out.note(&message);
            }
            Command::Model { id: None, .. } => self.list_models(),
            Command::Model { id: Some(id), fit } => self.switch_model(&id, fit)?,
            Command::Aspect(ratio) => {
                self.engine.set_aspect(&ratio)?;
                self.next_turn();
            }
            Command::Size(size) => {
                self.engine.set_size(&size)?;
                self.next_turn();
            }
            Command::Thoughts(on) => {
                self.engine.set_thoughts(on)?;
                self.next_turn();
            }
            Command::Think(level) => {
                self.engine.set_think(level)?;
                self.next_turn();
            }
            Command::Search(on) => {
                self.engine.set_search(on)?;
                self.next_turn();
            }
            Command::Stream(on) => {
                self.engine.set_stream(on);
                self.out.note(match (on, self.engine.is_offline()) {
                    (true, false) => {
                        "streaming on: thought summaries and text appear as they arrive"
                    }
                    (true, true) => "streaming on (offline answers arrive whole anyway)",
                    (false, _) => "streaming off: each answer arrives whole",
                });
            }
            Command::Transport(transport) => {
                self.engine.set_transport(transport)?;
                self.out
                    .note(&render::transport(transport, self.engine.is_offline()));
            }
            Command::Context(None) => {
                self.context(self.engine.context()?);
                self.transport_context()?;
            }
            Command::Context(Some(policy)) => {
                let report = self.engine.set_context(policy)?;
                self.context(report);
                self.transport_context()?;
            }
            Command::Fresh => {
                let fresh = self.engine.fresh()?;
                self.out.note(&format!(
                    "fresh start: session {}, with turn {} of {} attached to the next prompt",
                    sanitize(&fresh.name),
                    fresh.label,
                    sanitize(&fresh.from)
                ));
            }
            Command::Cost => {
                let turns = self.engine.turns()?;
                self.out
                    .say(&render::cost(self.engine.session_name(), &turns));
            }
            Command::Settings => {
                let view = SettingsView {
                    session: self.engine.session_name(),
                    settings: self.engine.settings(),
                    attachments: self.engine.attachments().len(),
                    stream: self.engine.stream(),
                    previews: self.previews.describe(self.out.stdout_is_terminal),
                    images_to: self.engine.image_dir(),
                };
                self.out.say(&render::settings(&view));
            }
            Command::Help(topic) => self.out.say(&super::command::help(topic.as_deref())?),
            Command::Quit => return Ok(Flow::Quit),
        }
        Ok(Flow::Continue)
    }

    fn next_turn(&self) {
        self.out.note(&render::next_turn(self.engine.settings()));
    }

    fn list_attachments(&self) {
        let attachments = self.engine.attachments();
        if attachments.is_empty() {
            self.out.say(
                "no attachments; /attach PATH|@LABEL... (or /paste) adds images to the next prompt",
            );
        }
        for attachment in attachments {
            self.out.say(&sanitize(&attachment.describe()));
        }
    }

    fn delete(&mut self, name: &str, yes: bool) -> Result<()> {
        let current = self.engine.is_current(name);
        if !yes {
            let question = if current {
                format!(
                    "delete session {}, the one open now? Turns no other session uses go with it.",
                    sanitize(name)
                )
            } else {
                format!(
                    "delete session {}? Turns no other session uses go with it.",
                    sanitize(name)
                )
            };
            match self.ask(&question) {
                Some(true) => {}
                Some(false) => {
                    self.out.note("kept");
                    return Ok(());
                }
                None if current => bail!(
                    "{} is the session open now: /delete {} --yes deletes it",
                    sanitize(name),
                    sanitize(name)
                ),
                None => {}
            }
        }
        let deleted = self.engine.delete(name)?;
        let mut note = format!(
            "deleted session {}; {} freed",
            sanitize(name),
            text::bytes(deleted.freed_bytes)
        );
        if deleted.was_current {
            note.push_str("; a new session is open");
        }
        self.out.note(&note);
        Ok(())
    }

    fn show(&mut self, label: Option<&str>) -> Result<()> {
        let shown = self.engine.show(label)?;
        if shown.images.is_empty() {
            self.out.say(&format!(
                "turn {} has no image: {}",
                shown.label,
                one_line(&shown.text, 70)
            ));
        }
        for image in &shown.images {
            self.image(image);
        }
        // The interim images the model drew while thinking, kept in the history as they came.
        for (k, image) in shown.thought_images.iter().enumerate() {
            self.out
                .note(&format!("thought image {} of turn {}:", k + 1, shown.label));
            self.image(image);
        }
        Ok(())
    }

    /// `/open`: the turn's image in the system's viewer (xdg-open, or open on macOS).
    fn open(&mut self, label: Option<&str>) -> Result<()> {
        let path = self.engine.image_file(label)?;
        let opener = if cfg!(target_os = "macos") {
            "open"
        } else {
            "xdg-open"
        };
        // xdg-open and open hand the file to the viewer and return at once.
        let status = std::process::Command::new(opener)
            .arg(&path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .with_context(|| format!("could not run {opener} to open {}", render::path(&path)))?;
        if !status.success() {
            bail!("{opener} could not open {} ({status})", render::path(&path));
        }
        self.out.note(&format!("opened {}", render::path(&path)));
        Ok(())
    }

    fn list_models(&self) {
        let current = &self.engine.settings().model;
        let mut text = String::new();
        for m in models::MODELS {
            let marker = if m.id == current { "*" } else { " " };
            let sizes = if m.sizes.is_empty() {
                "no size choice".to_string()
            } else {
                m.sizes.join(" ")
            };
            text.push_str(&format!("{marker}{:<24} {:<16} {sizes}\n", m.id, m.alias));
        }
        text.push_str("/model ID switches; ids peel does not know are sent as given");
        self.out.say(&text);
    }

    /// `/model ID [--fit]`: every setting the new model does not take is named at once, with the change that
    /// fits; the REPL offers it, elsewhere `--fit` makes it.
    fn switch_model(&mut self, id: &str, fit: bool) -> Result<()> {
        let plan = self.engine.plan_model(id)?;
        if let Some(notice) = &plan.notice {
            self.out.note(notice);
        }
        if plan.unknown {
            self.out.warn(&format!(
                "{} is not in peel's model table: it is sent as given, unchecked",
                sanitize(&plan.id)
            ));
        }
        if !plan.conflicts.is_empty() && !fit {
            let question = format!("{}; switch and use {}?", not_taken(&plan), becomes(&plan));
            match self.ask(&question) {
                Some(true) => {}
                Some(false) => {
                    self.out.note(&format!(
                        "still {}",
                        sanitize(&self.engine.settings().model)
                    ));
                    return Ok(());
                }
                None => bail!(
                    "{}; /model {} --fit switches and uses {}",
                    not_taken(&plan),
                    sanitize(&plan.id),
                    becomes(&plan)
                ),
            }
        }
        self.engine.switch_model(&plan)?;
        self.next_turn();
        if !plan.earlier_models.is_empty() {
            self.out.note(&format!(
                "{} will see the earlier turns, including those {} made",
                sanitize(&plan.id),
                sanitize(&and_list(&plan.earlier_models))
            ));
        }
        Ok(())
    }

    /// `/context` on the interactions transport says what the next request really carries.
    fn transport_context(&self) -> Result<()> {
        if let Some(note) = self.engine.transport_context()? {
            self.out.note(&note);
        }
        Ok(())
    }

    fn context(&self, report: crate::engine::ContextReport) {
        let mut out = format!(
            "next request: {} ({} in it)\npolicy: {}",
            report.measure.against(&report.limits),
            text::count(report.measure.images, "image"),
            report.policy.describe()
        );
        if let Some(over) = &report.over {
            out.push_str(&format!("\n{over}"));
        }
        self.out.say(&out);
    }
}

/// "gemini-3-pro-image does not take aspect 1:8 or size 512".
fn not_taken(plan: &ModelSwitch) -> String {
    let settings: Vec<String> = plan
        .conflicts
        .iter()
        .map(|c| format!("{} {}", c.setting, sanitize(&c.value)))
        .collect();
    let list = settings.join(" or ");
    format!("{} does not take {list}", sanitize(&plan.id))
}

/// "aspect auto and size 1K (the default)".
fn becomes(plan: &ModelSwitch) -> String {
    let changes: Vec<String> = plan
        .conflicts
        .iter()
        .map(|c| format!("{} {}", c.setting, c.becomes))
        .collect();
    and_list(&changes)
}
