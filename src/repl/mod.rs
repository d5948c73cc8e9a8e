//! The loops that feed lines to the app: the interactive REPL (rustyline) and script mode (stdin not a terminal).

pub mod command;
mod helper;

use std::io::BufRead;
use std::path::Path;

use anyhow::Result;
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{Config, Editor};

use crate::app::{App, Cancelled, Flow};
use helper::PeelHelper;

/// The REPL. Line history lives in `history_file`. Returns when the person leaves.
pub fn interactive(app: &mut App, history_file: &Path) -> Result<()> {
    let config = Config::builder()
        .auto_add_history(true)
        .history_ignore_dups(true)?
        .max_history_size(5000)?
        .build();
    let mut editor: Editor<PeelHelper, FileHistory> = Editor::with_config(config)?;
    editor.set_helper(Some(PeelHelper::new()));
    // A missing history file is the normal first run.
    let _ = editor.load_history(history_file);
    loop {
        let prompt = format!("{}> ", app.session.name());
        match editor.readline(&prompt) {
            Ok(line) => {
                let flow = app.handle_line(&line);
                // Save after every line: a killed REPL keeps what was typed.
                if let Err(e) = editor.save_history(history_file) {
                    app.ui.warn(&format!(
                        "could not save the line history to {}: {e}",
                        history_file.display()
                    ));
                }
                match flow {
                    Ok(Flow::Quit) => break,
                    Ok(Flow::Continue) => {}
                    Err(e) if e.is::<Cancelled>() => app.ui.note(&e.to_string()),
                    Err(e) => app.ui.error(&e),
                }
            }
            // Ctrl-C at the prompt clears the line.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Script mode: each line of `input` is a prompt or a command, run in order. Returns whether every line succeeded;
/// a failed line is reported and the script goes on, except a cancelled request, which stops it.
pub fn script(app: &mut App, input: impl BufRead) -> Result<bool> {
    let mut all_ok = true;
    for line in input.lines() {
        let line = line?;
        if line.trim_start().starts_with('#') {
            continue;
        }
        match app.handle_line(&line) {
            Ok(Flow::Quit) => break,
            Ok(Flow::Continue) => {}
            Err(e) if e.is::<Cancelled>() => {
                app.ui.error(&e);
                return Ok(false);
            }
            Err(e) => {
                app.ui.error(&e);
                all_ok = false;
            }
        }
    }
    Ok(all_ok)
}
