//! What a person sees while a turn runs on a terminal: streamed thought summaries (dimmed, their `**headings**`
//! bold) and answer text flowing above a status line, wrapped at the terminal's width at word boundaries whatever
//! the chunks were; the status line (a spinner, what is happening, the elapsed time) at the bottom. A restarted
//! attempt's text is erased (or marked when it has scrolled away); nothing is left behind when the turn ends.
//!
//! The cursor always rests at the start of the status row; the row above it may hold the line being written
//! (the partial row), redrawn as more text arrives.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use unicode_width::UnicodeWidthStr;

use super::out::Out;
use super::term;
use crate::engine::{Event, Events};
use crate::text::sanitize;

const FRAMES: &[&str] = &["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const TICK: Duration = Duration::from_millis(100);

/// The events of one turn, shown to a person. Drop (or [`Live::finish`]) leaves the screen clean.
pub struct Live<'a> {
    out: &'a Out,
    /// `None` when stderr is not a terminal (or `-q`): then only retries and notices are told, as lines.
    screen: Option<Arc<Mutex<Screen>>>,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl<'a> Live<'a> {
    /// Starts the status line with `label` (the model), when a person watches a terminal.
    pub fn start(out: &'a Out, label: &str) -> Live<'a> {
        let stop = Arc::new(AtomicBool::new(false));
        if !out.stderr_is_terminal || out.quiet {
            return Live {
                out,
                screen: None,
                stop,
                ticker: None,
            };
        }
        let (cols, rows) = term::size();
        let screen = Arc::new(Mutex::new(Screen::new(cols, rows, out.has_color(), label)));
        let ticker = {
            let screen = screen.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("peel-status".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        if let Ok(mut screen) = screen.lock() {
                            screen.frame += 1;
                            screen.draw_status();
                            screen.flush();
                        }
                    }
                })
                .ok()
        };
        if let Ok(mut s) = screen.lock() {
            s.draw_status();
            s.flush();
        }
        Live {
            out,
            screen: Some(screen),
            stop,
            ticker,
        }
    }

    /// Whether streamed answer text was shown (so the face does not show it again).
    pub fn shown_text(&self) -> bool {
        self.with_screen(|s| s.shown_text).unwrap_or(false)
    }

    /// Whether streamed thought summaries were shown.
    pub fn shown_thoughts(&self) -> bool {
        self.with_screen(|s| s.shown_thoughts).unwrap_or(false)
    }

    /// Ends the live view: the last line of text is put down and the status line removed.
    pub fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
        self.with_screen(|s| {
            s.end_flow();
            s.clear_status();
            s.status = None;
            s.flush();
        });
    }

    fn with_screen<T>(&self, f: impl FnOnce(&mut Screen) -> T) -> Option<T> {
        let screen = self.screen.as_ref()?;
        let mut guard: MutexGuard<'_, Screen> = screen.lock().ok()?;
        Some(f(&mut guard))
    }
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Events for Live<'_> {
    fn emit(&self, event: Event<'_>) {
        let Some(screen) = &self.screen else {
            // Not a terminal: what a script's log should say, one line each.
            match event {
                Event::Retrying { .. } => self.out.note(&event.retry_message().unwrap_or_default()),
                Event::Sending { url, bytes } if self.out.verbose => self.out.note(&format!(
                    "POST {} ({})",
                    sanitize(url),
                    crate::text::bytes(bytes)
                )),
                Event::Notice(text) => self.out.note(text),
                Event::Warning(text) => self.out.warn(text),
                _ => {}
            }
            return;
        };
        let Ok(mut s) = screen.lock() else { return };
        match event {
            Event::Thought(text) => {
                s.shown_thoughts = true;
                s.flow(Kind::Thought, &sanitize(text));
            }
            Event::Text(text) => {
                s.shown_text = true;
                s.flow(Kind::Text, &sanitize(text));
            }
            Event::AttemptRestarted => s.void_attempt(),
            Event::Retrying { .. } => {
                s.message = event.retry_message();
                s.draw_status();
            }
            Event::Status(text) => {
                s.message = Some(sanitize(text));
                s.draw_status();
            }
            Event::Sending { url, bytes } => {
                s.message = None;
                if self.out.verbose {
                    let line = format!("POST {} ({})", sanitize(url), crate::text::bytes(bytes));
                    s.put_line(&self.out.dim(&line));
                }
                s.draw_status();
            }
            Event::Notice(text) => {
                if !self.out.quiet {
                    s.end_flow();
                    for line in super::render::wrap(text, s.width).lines() {
                        s.put_line(&self.out.dim(line));
                    }
                    s.draw_status();
                }
            }
            Event::Warning(text) => {
                s.end_flow();
                // Wrapped at words like everything else on screen, one row each (a restarted attempt erases them).
                let wrapped = super::render::wrap(&format!("warning: {text}"), s.width);
                for (n, line) in wrapped.lines().enumerate() {
                    match line.strip_prefix("warning:") {
                        Some(rest) if n == 0 && s.color => {
                            s.put_line(&format!("\x1b[1;33mwarning:\x1b[0m{rest}"));
                        }
                        _ => s.put_line(line),
                    }
                }
                s.draw_status();
            }
        }
        s.flush();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Thought,
    Text,
}

/// The terminal's bottom rows while a turn runs.
struct Screen {
    width: usize,
    rows: usize,
    color: bool,
    label: String,
    /// Replaces the label while something is worth saying (a retry's wait).
    message: Option<String>,
    started: Instant,
    frame: usize,
    /// `None` once finished.
    status: Option<()>,
    /// The row above the status row holds the line being written.
    partial_row: bool,
    /// Rows this attempt has put on screen (for erasing it when it is restarted).
    attempt_rows: usize,
    kind: Option<Kind>,
    /// The line being built: styled text, and its width on screen.
    line: String,
    line_width: usize,
    /// The word being received (raw, with its `**` markers).
    word: String,
    bold: bool,
    /// The last line put down was empty (paragraphs are separated by one empty line, never more).
    blank: bool,
    shown_text: bool,
    shown_thoughts: bool,
    buffer: Vec<u8>,
}

impl Screen {
    fn new(cols: usize, rows: usize, color: bool, label: &str) -> Screen {
        Screen {
            // The last column is left free: some terminals wrap on writing it.
            width: cols.saturating_sub(1).max(20),
            rows,
            color,
            label: sanitize(label),
            message: None,
            started: Instant::now(),
            frame: 0,
            status: Some(()),
            partial_row: false,
            attempt_rows: 0,
            kind: None,
            line: String::new(),
            line_width: 0,
            word: String::new(),
            bold: false,
            blank: true,
            shown_text: false,
            shown_thoughts: false,
            buffer: Vec::new(),
        }
    }

    fn write(&mut self, text: &str) {
        self.buffer.extend_from_slice(text.as_bytes());
    }

    fn flush(&mut self) {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(&self.buffer);
        let _ = err.flush();
        self.buffer.clear();
    }

    fn status_text(&self) -> String {
        let frame = FRAMES[self.frame % FRAMES.len()];
        let what = self.message.as_deref().unwrap_or(&self.label);
        let text = format!("{frame} {what} {}s", self.started.elapsed().as_secs());
        truncate(&text, self.width)
    }

    fn draw_status(&mut self) {
        if self.status.is_none() {
            return;
        }
        let text = self.status_text();
        self.write("\r\x1b[K");
        self.write(&text);
        self.write("\r");
    }

    fn clear_status(&mut self) {
        self.write("\r\x1b[K");
    }

    /// Puts down a finished line above the status line.
    fn put_line(&mut self, line: &str) {
        self.clear_status();
        if self.partial_row {
            self.write("\x1b[A\r\x1b[K");
            self.partial_row = false;
        }
        self.write(line);
        self.write("\x1b[0m\n");
        self.attempt_rows += 1;
    }

    /// Shows the line being written on the partial row.
    fn show_partial(&mut self) {
        let mut shown = self.line.clone();
        let mut width = self.line_width;
        if !self.word.is_empty() {
            let (word, _) = render_word(&self.word, self.bold, self.kind, self.color);
            if width > 0 {
                shown.push(' ');
                width += 1;
            }
            width += word.1;
            shown.push_str(&word.0);
        }
        if width == 0 {
            return;
        }
        if width > self.width {
            // The word will wrap when it is complete; until then show what fits.
            shown = truncate(&strip_styles(&shown), self.width);
        }
        self.clear_status();
        if !self.partial_row {
            self.write("\n");
            self.partial_row = true;
        }
        self.write("\x1b[A\r\x1b[K");
        self.write(&shown);
        self.write("\x1b[0m\n");
        self.draw_status();
    }

    /// Text as it streams in: whole words are laid out, the rest waits for more.
    fn flow(&mut self, kind: Kind, text: &str) {
        if self.kind != Some(kind) {
            self.end_flow();
            if self.kind.is_some() && !self.blank {
                self.put_line("");
                self.blank = true;
            }
            self.kind = Some(kind);
            self.bold = false;
        }
        for c in text.chars() {
            match c {
                '\n' => {
                    self.end_word();
                    if self.line_width > 0 {
                        self.end_line();
                    } else if !self.blank {
                        self.put_line("");
                        self.blank = true;
                    }
                }
                c if c.is_whitespace() => self.end_word(),
                c => self.word.push(c),
            }
        }
        self.show_partial();
        self.draw_status();
    }

    fn end_word(&mut self) {
        if self.word.is_empty() {
            return;
        }
        let word = std::mem::take(&mut self.word);
        let ((styled, width), bold) = render_word(&word, self.bold, self.kind, self.color);
        self.bold = bold;
        if self.line_width > 0 && self.line_width + 1 + width > self.width {
            self.end_line();
        }
        if width > self.width {
            // Longer than a line (a URL): it has to be cut somewhere.
            for piece in chunks(&strip_styles(&styled), self.width) {
                if self.line_width > 0 {
                    self.end_line();
                }
                self.line_width = piece.width();
                self.line = piece;
            }
            return;
        }
        if self.line_width > 0 {
            self.line.push(' ');
            self.line_width += 1;
        }
        self.line.push_str(&styled);
        self.line_width += width;
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        self.line_width = 0;
        self.put_line(&line);
        self.blank = false;
    }

    /// Puts down what is left of the text.
    fn end_flow(&mut self) {
        self.end_word();
        if self.line_width > 0 {
            self.end_line();
        }
        if self.partial_row {
            // An empty partial row: give it back.
            self.clear_status();
            self.write("\x1b[A\r\x1b[K");
            self.partial_row = false;
        }
    }

    /// The attempt whose text is on screen failed and will be tried again: erase its rows if they are all still
    /// on screen, else say that the text above was cut off.
    fn void_attempt(&mut self) {
        self.word.clear();
        self.line.clear();
        self.line_width = 0;
        let rows = self.attempt_rows + usize::from(self.partial_row);
        if rows > 0 && rows < self.rows.saturating_sub(1) {
            self.clear_status();
            self.write(&format!("\x1b[{rows}A\r\x1b[J"));
        } else if rows > 0 {
            self.end_flow();
            let mark = "(the answer above was cut off; the next attempt starts over)";
            let mark = if self.color {
                format!("\x1b[2m{mark}")
            } else {
                mark.to_string()
            };
            self.put_line(&mark);
        }
        self.partial_row = false;
        self.attempt_rows = 0;
        self.kind = None;
        self.blank = true;
        self.bold = false;
        self.draw_status();
    }
}

/// A word with its `**` markers turned into bold, styled for its kind: (styled text, width), and whether bold is
/// still on after it.
fn render_word(
    word: &str,
    mut bold: bool,
    kind: Option<Kind>,
    color: bool,
) -> ((String, usize), bool) {
    let mut styled = String::new();
    let mut width = 0;
    for (i, segment) in word.split("**").enumerate() {
        if i > 0 {
            bold = !bold;
        }
        if segment.is_empty() {
            continue;
        }
        width += segment.width();
        match (color, bold, kind) {
            (false, _, _) => styled.push_str(segment),
            (true, true, _) => styled.push_str(&format!("\x1b[1m{segment}\x1b[0m")),
            (true, false, Some(Kind::Thought)) => {
                styled.push_str(&format!("\x1b[2m{segment}\x1b[0m"))
            }
            (true, false, _) => styled.push_str(segment),
        }
    }
    ((styled, width), bold)
}

/// Text without its ANSI styles.
fn strip_styles(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// At most `width` columns of `text`.
fn truncate(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w > width {
            break;
        }
        used += w;
        out.push(c);
    }
    out
}

/// `text` cut into pieces of at most `width` columns.
fn chunks(text: &str, width: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let piece = truncate(rest, width.max(1));
        let piece = if piece.is_empty() {
            rest.chars().take(1).collect()
        } else {
            piece
        };
        rest = &rest[piece.len()..];
        pieces.push(piece);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screen(width: usize) -> Screen {
        let mut s = Screen::new(width + 1, 24, false, "m");
        s.status = None;
        s
    }

    /// The lines a screen put down, as a terminal would show them (cursor moves applied to a grid).
    fn rendered(s: &Screen) -> Vec<String> {
        let text = String::from_utf8(s.buffer.clone()).unwrap();
        let mut grid: Vec<String> = vec![String::new()];
        let mut row = 0usize;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' => {}
                '\n' => {
                    row += 1;
                    if grid.len() <= row {
                        grid.push(String::new());
                    }
                }
                '\x1b' => {
                    let mut seq = String::new();
                    for c in chars.by_ref() {
                        seq.push(c);
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                    match seq.chars().last() {
                        Some('A') => {
                            let n: usize = seq[1..seq.len() - 1].parse().unwrap_or(1);
                            row = row.saturating_sub(n);
                        }
                        Some('K') => grid[row].clear(),
                        Some('J') => {
                            grid[row].clear();
                            grid.truncate(row + 1);
                        }
                        _ => {}
                    }
                }
                c => grid[row].push(c),
            }
        }
        while grid.last().is_some_and(String::is_empty) {
            grid.pop();
        }
        grid
    }

    #[test]
    fn text_in_tiny_chunks_wraps_at_word_boundaries() {
        let mut s = screen(20);
        let sentence = "Here is your image for turn 1 (1024x1024, aspect 1:1, size 1K).";
        for chunk in sentence.as_bytes().chunks(3) {
            s.flow(Kind::Text, std::str::from_utf8(chunk).unwrap());
        }
        s.end_flow();
        assert_eq!(
            rendered(&s),
            [
                "Here is your image",
                "for turn 1",
                "(1024x1024, aspect",
                "1:1, size 1K)."
            ]
        );
    }

    #[test]
    fn thought_headings_are_rendered_not_shown_raw() {
        let mut s = screen(40);
        s.flow(
            Kind::Thought,
            "**Planning the image**\n\nI'm working out the light.",
        );
        s.flow(Kind::Text, "Here it is.");
        s.end_flow();
        assert_eq!(
            rendered(&s),
            [
                "Planning the image",
                "",
                "I'm working out the light.",
                "",
                "Here it is."
            ]
        );
    }

    #[test]
    fn a_restarted_attempt_is_erased() {
        let mut s = screen(20);
        s.flow(Kind::Text, "first attempt says this and more ");
        s.void_attempt();
        s.flow(Kind::Text, "second");
        s.end_flow();
        assert_eq!(rendered(&s), ["second"]);
    }

    #[test]
    fn long_words_are_cut() {
        assert_eq!(chunks("abcdefgh", 3), ["abc", "def", "gh"]);
        assert_eq!(truncate("日本語", 4), "日本");
    }
}
