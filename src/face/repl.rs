//! The REPL: rustyline on a terminal. Lines typed while a turn runs wait for the next prompt and run in order;
//! Alt-Enter or a trailing `\` continues a prompt on the next line, and a bracketed paste keeps its newlines.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use anyhow::Result;
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{Cmd, CompletionType, Config, Editor, EventHandler, KeyCode, KeyEvent, Modifiers};

use super::helper::{Candidates, PeelHelper, join_continued};
use super::{Face, Flow};
use crate::engine::Cancelled;
use crate::text::sanitize;

type LineEditor = Editor<PeelHelper, FileHistory>;

/// Runs the REPL until the person leaves. Line history lives in `history_file`.
pub fn run(face: &mut Face, history_file: &Path) -> Result<()> {
    let config = Config::builder()
        // Lines are added by hand, so yes/no answers stay out of the history.
        .auto_add_history(false)
        .history_ignore_dups(true)?
        .max_history_size(5000)?
        .completion_type(CompletionType::List)
        .build();
    let mut editor: LineEditor = Editor::with_config(config)?;
    let candidates = Rc::new(RefCell::new(Candidates::default()));
    editor.set_helper(Some(PeelHelper::new(candidates.clone())));
    // Only Alt-Enter: typed-ahead Enters arrive as Ctrl-J, which must stay "accept the line".
    editor.bind_sequence(
        KeyEvent(KeyCode::Enter, Modifiers::ALT),
        EventHandler::Simple(Cmd::Newline),
    );
    // A missing history file is the normal first run.
    let _ = editor.load_history(history_file);
    let editor = Rc::new(RefCell::new(editor));
    let asker = editor.clone();
    face.set_confirm(Box::new(move |question| {
        let answer = asker
            .borrow_mut()
            .readline(&format!("{question} [y/N] "))
            .ok()?;
        Some(matches!(
            answer.trim().to_ascii_lowercase().as_str(),
            "y" | "yes"
        ))
    }));
    loop {
        {
            let mut candidates = candidates.borrow_mut();
            candidates.model = face.engine.settings().model.clone();
            candidates.sessions = face.engine.session_names().unwrap_or_default();
            candidates.labels = face.engine.labels(&candidates.sessions).unwrap_or_default();
        }
        let prompt = format!("{}> ", sanitize(face.engine.session_name()));
        let read = editor.borrow_mut().readline(&prompt);
        match read {
            Ok(line) => {
                let line = join_continued(&line);
                {
                    let mut editor = editor.borrow_mut();
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    // Saved after every line: a killed REPL keeps what was typed.
                    if let Err(e) = editor.save_history(history_file) {
                        face.out.warn(&format!(
                            "could not save the line history to {}: {e}",
                            history_file.display()
                        ));
                    }
                }
                // A Ctrl-C that came while no request ran cancels nothing later.
                face.interrupts.take_outside();
                match face.line(&line) {
                    Ok(Flow::Quit) => break,
                    Ok(Flow::Continue) => {}
                    Err(e) if e.is::<Cancelled>() => face.out.note(&e.to_string()),
                    Err(e) => face.out.error(&e),
                }
                if face.out.broken() {
                    break;
                }
            }
            // Ctrl-C at the prompt clears the line.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    if face.engine.is_stored() {
        let name = sanitize(face.engine.session_name());
        face.out.note(&format!(
            "session {name} is saved; peel -r {name} resumes it"
        ));
    }
    Ok(())
}
