//! Where output goes. stdout carries results (saved image paths, or JSON with --json) so scripts can pipe them;
//! everything for a person (model text, notices, footers, listings) goes to stderr, except in the interactive REPL
//! where stdout is the person's terminal too. A closed or full stream is remembered, never a panic: the run ends
//! quietly with a failure status at the next line.

use std::cell::Cell;
use std::io::{IsTerminal, Write};

use crate::text::sanitize;

/// How peel was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The REPL on a terminal.
    Repl,
    /// Lines from stdin that is not a terminal.
    Script,
    /// One prompt or command from the command line.
    OneShot,
}

#[derive(Debug)]
pub struct Out {
    pub mode: Mode,
    pub json: bool,
    pub quiet: bool,
    /// `-v`: also the endpoint and size of each request, and helper commands' errors.
    pub verbose: bool,
    pub stdout_is_terminal: bool,
    pub stderr_is_terminal: bool,
    color: bool,
    /// Lines for a person are fitted to this width (the REPL on a terminal).
    width: Option<usize>,
    /// A write to stdout or stderr failed (a closed pipe, a full disk).
    broken: Cell<bool>,
}

impl Out {
    pub fn new(mode: Mode, json: bool, quiet: bool, verbose: bool) -> Out {
        let stderr_is_terminal = std::io::stderr().is_terminal();
        let stdout_is_terminal = std::io::stdout().is_terminal();
        let mut out = Out {
            mode,
            json,
            quiet,
            verbose,
            stdout_is_terminal,
            stderr_is_terminal,
            color: stderr_is_terminal && std::env::var_os("NO_COLOR").is_none(),
            width: None,
            broken: Cell::new(false),
        };
        if mode == Mode::Repl && stdout_is_terminal {
            out.width =
                super::term::size_of(&std::io::stdout()).map(|(cols, _)| cols.saturating_sub(1));
        }
        out
    }

    /// The width lines for a person are fitted to, when they are.
    pub fn width(&self) -> Option<usize> {
        self.width
    }

    /// Something for the person: model text, listings, confirmations (fitted to the terminal's width).
    pub fn say(&self, text: &str) {
        self.put(&self.fit(text));
    }

    /// A notice that `-q` silences, dimmed.
    pub fn note(&self, text: &str) {
        if !self.quiet {
            let lines: Vec<String> = self.fit(text).lines().map(|l| self.dim(l)).collect();
            self.put(&lines.join("\n"));
        }
    }

    /// Text fitted to the terminal, in the REPL (styles are added after: they take no columns).
    fn fit(&self, text: &str) -> String {
        match (self.mode, self.width) {
            (Mode::Repl, Some(width)) => super::render::wrap(text, width),
            _ => text.to_string(),
        }
    }

    /// A person's text where the person reads: stdout in the REPL, stderr elsewhere.
    fn put(&self, text: &str) {
        if self.mode == Mode::Repl {
            self.write_stdout(text);
        } else {
            self.write_stderr(text);
        }
    }

    /// A failure: one line on stderr (plus the cause chain, indented), sanitised: errors carry servers' words.
    pub fn error(&self, error: &anyhow::Error) {
        self.error_at("", error);
    }

    /// A failure with where it happened first ("line 3: ...").
    pub fn error_at(&self, place: &str, error: &anyhow::Error) {
        let mut text = if place.is_empty() {
            sanitize(&error.to_string())
        } else {
            format!("{place}: {}", sanitize(&error.to_string()))
        };
        for cause in error.chain().skip(1) {
            text.push_str(&format!("\n  caused by: {}", sanitize(&cause.to_string())));
        }
        let label = self.paint("1;31", "error:");
        self.write_stderr(&format!("{label} {text}"));
    }

    /// A warning about something that did not stop the work.
    pub fn warn(&self, text: &str) {
        let label = self.paint("1;33", "warning:");
        self.write_stderr(&format!("{label} {text}"));
    }

    /// A result line for stdout (a saved path, or one JSON object).
    pub fn result(&self, line: &str) {
        self.write_stdout(line);
    }

    pub fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }

    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }

    pub fn has_color(&self) -> bool {
        self.color
    }

    fn paint(&self, style: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{style}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// stdout or stderr could not be written: the reader went away or the disk is full.
    pub fn broken(&self) -> bool {
        self.broken.get()
    }

    fn write_stdout(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            self.broken.set(true);
        }
    }

    pub(super) fn write_stderr(&self, line: &str) {
        // Whatever the REPL printed on stdout comes first.
        let _ = std::io::stdout().flush();
        if writeln!(std::io::stderr().lock(), "{line}").is_err() {
            self.broken.set(true);
        }
    }
}
