//! Where output goes. stdout carries results (saved image paths, or JSON with --json) so scripts can pipe them;
//! everything for a person (model text, notices, footers, listings) goes to stderr, except in the interactive REPL
//! where stdout is the person's terminal too.

use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::gemini::Progress;
use crate::preview::{self, PreviewMode};
use crate::render::sanitize;

#[derive(Debug, Clone)]
pub struct Ui {
    /// The REPL on a terminal (not script or one-shot mode).
    pub interactive: bool,
    pub json: bool,
    pub quiet: bool,
    /// `-v`: also the endpoint and size of each request.
    pub verbose: bool,
    pub preview: PreviewMode,
    color: bool,
    stdout_is_terminal: bool,
    stderr_is_terminal: bool,
}

impl Ui {
    pub fn new(interactive: bool, json: bool, quiet: bool, preview: PreviewMode) -> Ui {
        let stdout_is_terminal = std::io::stdout().is_terminal();
        let stderr_is_terminal = std::io::stderr().is_terminal();
        let color = interactive && stderr_is_terminal && std::env::var_os("NO_COLOR").is_none();
        Ui {
            interactive,
            json,
            quiet,
            verbose: false,
            preview,
            color,
            stdout_is_terminal,
            stderr_is_terminal,
        }
    }

    /// Something for the person: model text, listings, confirmations.
    pub fn say(&self, text: &str) {
        if self.interactive {
            println!("{text}");
        } else {
            eprintln!("{text}");
        }
    }

    /// A notice that `-q` silences.
    pub fn note(&self, text: &str) {
        if !self.quiet {
            self.say(&self.dim(text));
        }
    }

    /// A failure: one line on stderr (plus the cause chain, indented).
    pub fn error(&self, error: &anyhow::Error) {
        let mut text = format!("{}", error);
        for cause in error.chain().skip(1) {
            text.push_str(&format!("\n  caused by: {cause}"));
        }
        let label = if self.color {
            "\x1b[1;31merror:\x1b[0m"
        } else {
            "error:"
        };
        eprintln!("{label} {text}");
    }

    /// A warning about something that did not stop the work.
    pub fn warn(&self, text: &str) {
        let label = if self.color {
            "\x1b[1;33mwarning:\x1b[0m"
        } else {
            "warning:"
        };
        eprintln!("{label} {text}");
    }

    /// A result line for stdout (a saved path, or one JSON object).
    pub fn result(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        // A closed pipe (`peel "a cat" | head -0`) is the reader's choice, not an error worth reporting.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    pub fn dim(&self, text: &str) -> String {
        if self.color {
            format!("\x1b[2m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn bold(&self, text: &str) -> String {
        if self.color {
            format!("\x1b[1m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// Previews go only to a terminal, and only when the person has not turned them off.
    pub fn can_preview(&self) -> bool {
        self.stdout_is_terminal && self.preview != PreviewMode::Off && !self.json
    }

    pub fn preview(&self, bytes: &[u8]) {
        if !self.can_preview() {
            return;
        }
        let (cols, rows) = terminal_size();
        if let Err(e) = preview::show(
            bytes,
            self.preview,
            cols.saturating_sub(2).min(100),
            (rows / 2).max(8),
        ) {
            self.warn(&format!("{e:#}"));
        }
    }

    /// A spinner with elapsed seconds, only for a person watching a terminal.
    pub fn spinner(&self, message: &str) -> Option<ProgressBar> {
        if !(self.interactive && self.stderr_is_terminal) || self.quiet {
            return None;
        }
        let bar = ProgressBar::new_spinner();
        // The template is a literal that indicatif accepts; a failure would be a bug caught by any interactive run.
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
            bar.set_style(style);
        }
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        Some(bar)
    }
}

/// What a running request shows: streamed thought summaries (dimmed) and text above the spinner as they arrive,
/// and each retry in the spinner (or as a notice when there is none).
pub struct Live<'a> {
    ui: &'a Ui,
    spinner: Option<&'a ProgressBar>,
    show_thoughts: bool,
    thoughts_shown: Cell<bool>,
    text_shown: Cell<bool>,
}

impl Live<'_> {
    pub fn show(&self, progress: Progress<'_>) {
        let line = match progress {
            Progress::Thought(text) if self.show_thoughts && !text.trim().is_empty() => {
                self.thoughts_shown.set(true);
                self.ui.dim(&sanitize(text.trim()))
            }
            Progress::Text(text) if !text.trim().is_empty() => {
                self.text_shown.set(true);
                sanitize(text.trim())
            }
            Progress::Sending { url, bytes } => {
                if self.ui.verbose {
                    let line = self.ui.dim(&format!(
                        "POST {url} ({})",
                        crate::render::bytes(bytes as u64)
                    ));
                    match self.spinner {
                        Some(spinner) => spinner.suspend(|| self.ui.say(&line)),
                        None => self.ui.say(&line),
                    }
                }
                return;
            }
            Progress::Retrying { .. } => {
                let message = progress.retry_message().unwrap_or_default();
                match self.spinner {
                    Some(spinner) => spinner.set_message(message),
                    None => self.ui.note(&message),
                }
                return;
            }
            _ => return,
        };
        match self.spinner {
            Some(spinner) => spinner.suspend(|| self.ui.say(&line)),
            None => self.ui.say(&line),
        }
    }

    /// Thought summaries were shown as they arrived (so not again under the answer).
    pub fn thoughts_shown(&self) -> bool {
        self.thoughts_shown.get()
    }

    /// Answer text was shown as it arrived.
    pub fn text_shown(&self) -> bool {
        self.text_shown.get()
    }
}

impl Ui {
    pub fn live<'a>(&'a self, spinner: Option<&'a ProgressBar>, show_thoughts: bool) -> Live<'a> {
        Live {
            ui: self,
            spinner,
            show_thoughts,
            thoughts_shown: Cell::new(false),
            text_shown: Cell::new(false),
        }
    }
}

fn terminal_size() -> (u32, u32) {
    let (cols, rows) = viuer::terminal_size();
    (u32::from(cols).max(20), u32::from(rows).max(10))
}
