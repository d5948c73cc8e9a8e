//! peel: a terminal studio for editing images in conversation with Google's Gemini image models.
//!
//! A turn flows one way: a [`face`] (the REPL, script mode, one-shot, `--json`) hands a prompt to the [`engine`],
//! which builds the request from the [`store`]d history, sends it through the [`gemini`] backend (or the
//! [`offline`] stand-in), records the answer in one transaction, writes its images, and reports back as events and
//! a typed result that the face shows. The engine knows no terminal; the face never touches SQLite or JSON wire
//! types.

pub mod cli;
pub mod config;
pub mod engine;
pub mod face;
pub mod files;
pub mod font;
pub mod gemini;
pub mod names;
pub mod offline;
pub mod secret;
pub mod settings;
pub mod store;
pub mod text;
pub mod untrusted;

#[cfg(test)]
mod fuzz_tests;

/// What the unit tests share.
#[cfg(test)]
pub(crate) mod test_support {
    /// A file of `tests/fixtures/`: real captured API bodies (see its README).
    pub fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }
}

use std::io::IsTerminal;

use anyhow::{Result, bail};

use crate::cli::{Cli, Command};
use crate::config::usage_error;
use crate::engine::Engine;
use crate::face::interrupt::Interrupts;
use crate::face::out::{Mode, Out};
use crate::face::preview::Previews;
use crate::face::{Face, render};
use crate::gemini::Backend;
use crate::store::Store;

/// How a run ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// A turn or command failed (already reported).
    Failed,
}

pub fn run(cli: Cli) -> Result<Outcome> {
    match &cli.command {
        Some(Command::Batch(args)) => return face::batch::run(&cli, args),
        Some(Command::Completions { shell }) => {
            // stdout that cannot be written (a closed pipe, a full disk) fails the run quietly, as every output does.
            let written = cli::write_completions(*shell, &mut std::io::stdout());
            return Ok(if written.is_ok() {
                Outcome::Done
            } else {
                Outcome::Failed
            });
        }
        Some(command) => return subcommand(&cli, command),
        None => {}
    }
    let mode = if !cli.prompt.is_empty() {
        Mode::OneShot
    } else if std::io::stdin().is_terminal() {
        Mode::Repl
    } else {
        Mode::Script
    };
    let out = Out::new(mode, cli.json, cli.quiet, cli.verbose);
    let cfg = config::Config::load(&cli)?;
    let one_shot = cli.prompt.join(" ");
    if mode == Mode::OneShot && one_shot.trim().is_empty() {
        bail!(usage_error(
            "an empty prompt: say what to draw, e.g. peel \"a red fox at dawn\""
        ));
    }
    config::check_transport(&cli, &cfg)?;
    // What the provider takes (a gateway's documented lists, the profile's own keys) applies to every
    // capability looked up in this run, before any setting is checked.
    gemini::models::use_provider(config::provider(&cli, &cfg)?);
    let backend = config::backend(&cli, &cfg)?;
    // A key is needed only to send: a one-shot prompt without one is a usage error before anything happens.
    if mode == Mode::OneShot
        && !one_shot.trim_start().starts_with('/')
        && let Backend::NoKey(why) = &backend
    {
        bail!(usage_error(why.clone()));
    }
    let db_path = config::database_path(&cli)?;
    let store = Store::open(&db_path)?;
    let mut notices = Vec::new();
    let settings = config::new_session_settings(&cli, &cfg, &mut notices)?;
    let mut engine = Engine::new(store, backend, settings, &cfg.out_dir(&cli))?;
    // Answers an earlier peel could not record go into their threads now.
    let recovery = engine.recover()?;
    let resumed = open_session(&cli, &mut engine, &mut notices)?;
    engine.set_stream(cfg.stream(&cli, mode == Mode::Repl));
    if let Some(concurrency) = cfg.values.concurrency {
        engine.set_concurrency(concurrency);
    }
    engine.set_interaction_options(config::interaction_options(&cfg)?);
    let previews = Previews::new(cfg.preview(&cli));
    let mut face = Face::new(engine, out, previews, Interrupts::start());
    face.takes = usize::from(cli.variants.unwrap_or(1));
    for line in &recovery {
        face.out.warn(line);
    }
    if let Some(why) = face.engine.read_only() {
        face.out.warn(&format!(
            "{why}: history, show, sessions and export work, but nothing can be saved"
        ));
    }
    for notice in &notices {
        face.out.note(notice);
    }
    if !cli.images.is_empty() {
        face.engine.attach(&cli.images)?;
    }

    let all_ok = match mode {
        Mode::OneShot => match face.line(&one_shot) {
            Ok(_) => true,
            Err(e) => return Err(e),
        },
        Mode::Repl => {
            let offline = if cli.offline {
                " · offline: a local stand-in draws the images"
            } else {
                ""
            };
            face.out.note(&format!(
                "peel {}{offline} · /help lists the commands, Ctrl-D leaves",
                env!("CARGO_PKG_VERSION")
            ));
            if resumed {
                face.describe()?;
            }
            face::repl::run(&mut face, &db_path.with_file_name("repl-history.txt"))?;
            true
        }
        Mode::Script => face::script::run(&mut face, std::io::stdin().lock(), cli.keep_going)?,
    };
    Ok(if all_ok && !face.out.broken() {
        Outcome::Done
    } else {
        Outcome::Failed
    })
}

/// `peel sessions`, `peel export`, `peel import`, `peel completions`.
fn subcommand(cli: &Cli, command: &Command) -> Result<Outcome> {
    let out = Out::new(Mode::OneShot, cli.json, cli.quiet, cli.verbose);
    let cfg = config::Config::load(cli)?;
    let store = Store::open(&config::database_path(cli)?)?;
    let backend = Backend::NoKey("this command sends nothing".into());
    let mut engine = Engine::new(store, backend, Default::default(), &cfg.out_dir(cli))?;
    for line in engine.recover()? {
        out.warn(&line);
    }
    match command {
        Command::Sessions { json } => {
            let sessions = engine.sessions()?;
            if *json || cli.json {
                for summary in &sessions {
                    out.result(&face::json::session(summary).to_string());
                }
            } else {
                out.result(&render::sessions(&sessions, None));
            }
        }
        Command::Export { name, dir } => {
            let exported = engine.export(Some(name), dir.clone())?;
            for path in &exported.files {
                out.result(&crate::text::sanitize(&path.display().to_string()));
            }
            out.note(&format!(
                "exported {} to {}",
                crate::text::count(exported.files.len(), "file"),
                render::path(&exported.dir)
            ));
        }
        Command::Import { file, name } => {
            let (name, turns) = engine.import(file, name.as_deref())?;
            out.note(&format!(
                "imported {} as session {name}; peel -r {name} resumes it",
                crate::text::count(turns, "turn")
            ));
            out.result(&name);
        }
        // `run`, the only caller, dispatches these two before it calls here.
        Command::Completions { .. } | Command::Batch(_) => unreachable!("dispatched by run"),
    }
    Ok(if out.broken() {
        Outcome::Failed
    } else {
        Outcome::Done
    })
}

/// Opens the session this run works on: -s NAME (opened or created), -r [NAME] (resumed), or a new one. Returns
/// whether a stored session was resumed (the REPL then shows where it stands).
fn open_session(cli: &Cli, engine: &mut Engine, notices: &mut Vec<String>) -> Result<bool> {
    let out = cli.out.as_deref();
    if let Some(name) = &cli.session {
        engine::session::validate_name(name).map_err(|e| usage_error(e.to_string()))?;
        return match engine.find_session(name)? {
            Some(row) => {
                let settings = config::settings_from_flags(cli, row.settings.clone(), notices)?;
                engine.enter(row, settings, out)?;
                Ok(true)
            }
            None => {
                let settings = engine.settings().clone();
                engine.create(name, settings)?;
                Ok(false)
            }
        };
    }
    let Some(name) = &cli.resume else {
        return Ok(false);
    };
    let row = if name.is_empty() {
        match engine.most_recent_session()? {
            Some(row) => row,
            None => bail!(usage_error("there is no session to resume yet")),
        }
    } else {
        match engine.find_session(name)? {
            Some(row) => row,
            None => bail!(usage_error(format!(
                "no session named {name:?}; `peel sessions` lists them"
            ))),
        }
    };
    let settings = config::settings_from_flags(cli, row.settings.clone(), notices)?;
    engine.enter(row, settings, out)?;
    Ok(true)
}
