//! The faces: how a person or a script drives the engine and sees what it did. The REPL (`repl.rs`), script mode
//! (`script.rs`) and one-shot mode share one [`Face`]: a line is a prompt or a command; a turn's events are shown
//! live (`live.rs`), its report rendered after (`render.rs`, `preview.rs`), or printed as JSON (`json.rs`).

pub mod batch;
mod clipboard;
pub mod command;
mod commands;
mod helper;
pub mod interrupt;
pub mod json;
pub mod live;
pub mod out;
pub mod preview;
pub mod render;
pub mod repl;
pub mod script;
mod term;

use anyhow::Result;

use crate::engine::{Cancel, Engine, Events, ImageFile, Refused, TurnReport};
use crate::text::{self, sanitize};
use command::Line;
use interrupt::Interrupts;
use live::Live;
use out::{Mode, Out};
use preview::Previews;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

/// Asks the person a yes/no question; `None` where nobody can answer (scripts).
pub type Confirm = Box<dyn FnMut(&str) -> Option<bool>>;

pub struct Face {
    pub engine: Engine,
    pub out: Out,
    pub previews: Previews,
    pub interrupts: Interrupts,
    /// How to ask the person (the REPL sets it).
    confirm: Option<Confirm>,
    /// Takes a prompt gets (`-n N`): 1, or variants.
    pub takes: usize,
}

impl Face {
    pub fn new(engine: Engine, out: Out, previews: Previews, interrupts: Interrupts) -> Face {
        Face {
            engine,
            out,
            previews,
            interrupts,
            confirm: None,
            takes: 1,
        }
    }

    pub fn set_confirm(&mut self, confirm: Confirm) {
        self.confirm = Some(confirm);
    }

    /// Runs one line: a prompt or a command.
    pub fn line(&mut self, line: &str) -> Result<Flow> {
        match line.parse::<Line>()? {
            Line::Empty => Ok(Flow::Continue),
            Line::Prompt(prompt) => {
                if self.offered_as_attachment(&prompt)? {
                    return Ok(Flow::Continue);
                }
                if self.takes > 1 {
                    self.variants(&prompt, self.takes)?;
                } else {
                    self.turn(|engine, events, cancel| engine.prompt(&prompt, events, cancel))?;
                }
                Ok(Flow::Continue)
            }
            Line::Command(command) => self.command(command),
        }
    }

    /// Asks a yes/no question; `None` when nobody can answer here.
    fn ask(&mut self, question: &str) -> Option<bool> {
        self.confirm.as_mut().and_then(|confirm| confirm(question))
    }

    /// Runs a turn with its events shown live and Ctrl-C cancelling it, then shows what it brought.
    fn turn(
        &mut self,
        run: impl FnOnce(&mut Engine, &dyn Events, &Cancel) -> Result<TurnReport>,
    ) -> Result<()> {
        let (cancel, _request) = self.interrupts.request();
        // Keys typed while the turn runs wait, unseen, for the next prompt instead of garbling the output.
        let quiet_keys = (self.out.mode == Mode::Repl).then(term::NoEcho::start);
        let model = self.engine.settings().model.clone();
        let mut live = Live::start(&self.out, &model);
        let result = run(&mut self.engine, &live, &cancel);
        let shown = (live.shown_text(), live.shown_thoughts());
        live.finish();
        drop(live);
        drop(quiet_keys);
        match result {
            Ok(report) => {
                self.report(&report, shown);
                Ok(())
            }
            Err(error) => {
                if self.out.json
                    && let Some(refused) = error.downcast_ref::<Refused>()
                {
                    self.out
                        .result(&json::refused(self.engine.session_name(), refused).to_string());
                }
                Err(error)
            }
        }
    }

    /// A finished turn: its text (unless it streamed), its images with their paths, and the footer.
    fn report(&mut self, report: &TurnReport, (shown_text, shown_thoughts): (bool, bool)) {
        let asked_thoughts = report.meta.settings.as_ref().is_some_and(|s| s.thoughts);
        if asked_thoughts && !shown_thoughts && !report.thoughts.trim().is_empty() {
            self.out
                .say(&self.out.dim(&sanitize(report.thoughts.trim())));
        }
        if !shown_text && !report.text.trim().is_empty() {
            self.out.say(&sanitize(report.text.trim()));
        }
        for image in &report.images {
            self.image(image);
        }
        for failure in &report.unwritten {
            self.out.warn(&format!(
                "turn {} is saved, but an image file could not be written: {}; /show {} writes it again",
                report.label,
                sanitize(failure),
                report.label
            ));
        }
        if report.undecodable > 0 {
            self.out.warn(&format!(
                "{} in the answer cannot be decoded; kept in the history",
                text::count(report.undecodable, "image")
            ));
        } else if report.images.is_empty() && report.unwritten.is_empty() {
            self.out.warn(
                "no image came back this turn (text only); the answer is kept in the history",
            );
        }
        if !report.meta.sources.is_empty() {
            let mut list = String::from("sources:");
            for (n, source) in report.meta.sources.iter().enumerate() {
                list.push_str(&format!(
                    "\n  {}. {} {}",
                    n + 1,
                    sanitize(&source.title),
                    self.out.dim(&sanitize(&source.uri))
                ));
            }
            self.out.say(&list);
        }
        if self.out.json {
            self.out.result(&json::turn(report).to_string());
        }
        let footer = match self.out.width() {
            Some(width) => render::join_fitting(&render::footer_parts(&report.meta), " · ", width),
            None => render::footer(&report.meta),
        };
        self.out.note(&footer);
    }

    /// A line that is only paths of images (what a terminal pastes when a file is dropped on it, quoted or
    /// escaped): in the REPL, offered as attachments instead of being sent as a prompt.
    fn offered_as_attachment(&mut self, line: &str) -> Result<bool> {
        if self.out.mode != Mode::Repl {
            return Ok(false);
        }
        let Ok(paths) = command::split_paths(line) else {
            return Ok(false);
        };
        let paths: Vec<std::path::PathBuf> = paths
            .into_iter()
            .map(
                |p| match p.to_str().and_then(|s| s.strip_prefix("file://")) {
                    Some(rest) => std::path::PathBuf::from(rest),
                    None => p,
                },
            )
            .collect();
        // Metadata only: nothing is opened (a FIFO named like an image is not a regular file).
        let images = !paths.is_empty()
            && paths.iter().all(|p| {
                p.is_absolute()
                    && p.is_file()
                    && p.extension().is_some_and(|e| {
                        ["png", "jpg", "jpeg", "webp", "gif", "heic", "heif", "avif"]
                            .contains(&e.to_string_lossy().to_ascii_lowercase().as_str())
                    })
            });
        if !images {
            return Ok(false);
        }
        let shown: Vec<String> = paths.iter().map(|p| render::path(p)).collect();
        let question = format!("attach {} to the next prompt?", text::and_list(&shown));
        if self.ask(&question) == Some(false) {
            return Ok(false);
        }
        let n = self.engine.attach(&paths)?;
        let attached = self.engine.attachments();
        for attachment in &attached[attached.len() - n..] {
            self.out
                .note(&format!("attached {}", sanitize(&attachment.describe())));
        }
        Ok(true)
    }

    /// `/variants N PROMPT`, `-n N`: the takes come at once, side by side on a contact sheet.
    fn variants(&mut self, prompt: &str, n: usize) -> Result<()> {
        let estimate = self.engine.estimate(n)?;
        self.out.note(&format!(
            "{n} takes at once: ~${:.3} in all (~${:.3} each, estimated)",
            estimate.total, estimate.each
        ));
        let (cancel, _request) = self.interrupts.request();
        let quiet_keys = (self.out.mode == Mode::Repl).then(term::NoEcho::start);
        let mut live = Live::start(&self.out, &format!("{n} takes"));
        let result = self.engine.variants(prompt, n, &live, &cancel);
        live.finish();
        drop(live);
        drop(quiet_keys);
        let report = result?;
        for take in &report.takes {
            if !take.text.trim().is_empty() {
                self.out.say(&self.out.dim(&format!(
                    "{}: {}",
                    take.label,
                    text::one_line(&take.text, 70)
                )));
            }
            for image in &take.images {
                self.announce(image, false);
            }
            if self.out.json {
                self.out.result(&json::turn(take).to_string());
            }
        }
        for (which, why) in &report.failures {
            self.out.warn(&format!(
                "take {which} of {n} did not come: {}",
                sanitize(why)
            ));
        }
        if report.cancelled > 0 {
            self.out.note(&format!(
                "{} still running cancelled; the {} that came are kept",
                text::count(report.cancelled, "take"),
                report.takes.len()
            ));
        }
        if let Some(sheet) = &report.sheet {
            // For a script, stdout carries the takes; the sheet is told on stderr.
            if self.out.mode == Mode::Repl {
                self.image(sheet);
            } else {
                self.out
                    .note(&format!("contact sheet: {}", render::path(&sheet.path)));
            }
        }
        if report.takes.is_empty() {
            anyhow::bail!("no take came back; nothing was recorded");
        }
        let labels: Vec<&str> = report.takes.iter().map(|t| t.label.as_str()).collect();
        let cost: f64 = report.takes.iter().map(|t| t.meta.cost_usd).sum();
        let mut note = format!(
            "turn {}: {} · ~${cost:.3} · the next prompt continues from {}",
            report.turn,
            labels.join(" "),
            labels[0]
        );
        if labels.len() > 1 {
            note.push_str(&format!(
                "; /pick {} continues from another, /compare {} {} shows two",
                labels[1], labels[0], labels[1]
            ));
        }
        self.out.note(&note);
        Ok(())
    }

    /// An image on disk: previewed for a person on a terminal, its path on stdout for a script.
    fn image(&mut self, image: &ImageFile) {
        self.announce(image, true);
    }

    /// An image's path (and, with `preview`, the image itself on a terminal).
    fn announce(&mut self, image: &ImageFile, preview: bool) {
        let size = format!("{}x{}", image.meta.width, image.meta.height);
        let path = render::path(&image.path);
        if preview && self.out.stdout_is_terminal && !self.out.json {
            match self.previews.show(&image.bytes) {
                Ok(Some(notice)) => self.out.note(&notice),
                Ok(None) => {}
                Err(e) => self.out.warn(&format!("{e:#}")),
            }
        }
        if self.out.mode == Mode::Repl {
            self.out.say(&format!(
                "{}  {}",
                self.out.bold(&path),
                self.out.dim(&size)
            ));
        } else {
            // For machines, the absolute path: it means the same wherever the reader stands.
            if !self.out.json {
                self.out
                    .result(&sanitize(&image.path.display().to_string()));
            }
            self.out.note(&format!("saved {path} ({size})"));
        }
    }

    /// "session fox: 3 turns, gemini-3-pro-image", and its last image.
    pub fn describe(&mut self) -> Result<()> {
        let description = self.engine.describe()?;
        self.out.say(&format!(
            "session {}: {}, {}",
            sanitize(&description.name),
            text::count(description.turns, "turn"),
            sanitize(&description.model)
        ));
        if let Some(image) = &description.last_image {
            self.image(image);
        }
        Ok(())
    }
}
