//! peel: a terminal studio for editing images in conversation with Google's Gemini image models.
//!
//! A turn flows one way: the REPL (or a script line) gives a prompt to the [`app`], which builds the request from
//! the [`session`]'s stored history, sends it through the [`gemini`] backend, records the answer with the [`store`]
//! in one transaction, and shows it ([`render`], [`preview`]).

pub mod app;
pub mod branching;
pub mod cli;
pub mod config;
pub mod context;
pub mod cost;
pub mod export;
pub mod gemini;
pub mod images;
pub mod offline;
pub mod preview;
pub mod render;
pub mod repl;
pub mod secret;
pub mod session;
pub mod settings;
pub mod store;
pub mod tree;
pub mod ui;

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
use clap::CommandFactory;

use crate::app::App;
use crate::cli::{Cli, Command};
use crate::config::usage_error;
use crate::session::Session;
use crate::store::Store;
use crate::ui::Ui;

/// How a run ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// A turn or command failed (already reported).
    Failed,
}

pub fn run(cli: Cli) -> Result<Outcome> {
    match &cli.command {
        Some(Command::Completions { shell }) => {
            clap_complete::generate(*shell, &mut Cli::command(), "peel", &mut std::io::stdout());
            return Ok(Outcome::Done);
        }
        Some(Command::Sessions) => {
            let store = Store::open(&config::database_path(&cli)?)?;
            let ui = Ui::new(true, false, cli.quiet, cli.preview);
            let app = App::new(
                store,
                Session::new(None, Default::default()),
                ui,
                gemini::Backend::Offline,
                cli.out.clone().unwrap_or_else(|| "peel-out".into()),
            )?;
            app.list_sessions()?;
            return Ok(Outcome::Done);
        }
        Some(Command::Export { name, dir }) => {
            let store = Store::open(&config::database_path(&cli)?)?;
            let Some(row) = store.session(name)? else {
                bail!(usage_error(format!(
                    "no session named {name:?}; `peel sessions` lists them"
                )));
            };
            for path in export::export_session(&store, &row, dir)? {
                println!("{}", path.display());
            }
            return Ok(Outcome::Done);
        }
        Some(Command::Import { file, name }) => {
            let mut store = Store::open(&config::database_path(&cli)?)?;
            let row = export::import_thread(&mut store, file, name.as_deref())?;
            let turns = store.chain(row.head_id)?.len() / 2;
            eprintln!(
                "imported {} as session {}",
                crate::render::count(turns, "turn"),
                row.name
            );
            println!("{}", row.name);
            return Ok(Outcome::Done);
        }
        None => {}
    }

    let one_shot = !cli.prompt.is_empty();
    let interactive = !one_shot && std::io::stdin().is_terminal();
    let ui = Ui::new(interactive, cli.json, cli.quiet, cli.preview);
    let cfg = config::Config::load(&cli)?;
    // HOOK(wire): what the provider takes (a gateway's documented lists, the profile's own keys) applies to every
    // capability looked up in this run, before any setting is checked.
    gemini::models::use_provider(config::provider(&cli, &cfg)?);
    let backend = config::backend(&cli, &cfg)?;
    let db_path = config::database_path(&cli)?;
    let store = Store::open(&db_path)?;

    let mut notices = Vec::new();
    let session = open_session(&cli, &cfg, &store, &mut notices)?;
    let mut app = App::new(store, session, ui, backend, cfg.out_dir(&cli))?;
    app.stream = cfg.stream(&cli, interactive);
    app.ui.verbose = cli.verbose;
    for notice in &notices {
        app.ui.note(notice);
    }
    if !cli.images.is_empty() {
        app.attach(&cli.images)?;
    }
    if let Some(row) = &app.session.row {
        app.store.touch(row.id)?;
    }

    if one_shot {
        let prompt = cli.prompt.join(" ");
        return match app.prompt(&prompt) {
            Ok(()) => Ok(Outcome::Done),
            Err(e) => Err(e),
        };
    }
    if interactive {
        let history_file = db_path.with_file_name("repl-history.txt");
        let mode = if cli.offline {
            " · offline: a local stand-in draws the images"
        } else {
            ""
        };
        app.ui.note(&format!(
            "peel {}{mode} · /help lists the commands, Ctrl-D leaves",
            env!("CARGO_PKG_VERSION")
        ));
        if app.session.row.is_some() {
            app.describe_session()?;
        }
        repl::interactive(&mut app, &history_file)?;
        return Ok(Outcome::Done);
    }
    let all_ok = repl::script(&mut app, std::io::stdin().lock())?;
    Ok(if all_ok {
        Outcome::Done
    } else {
        Outcome::Failed
    })
}

/// The session this run works on: -s NAME (opened or created), -r [NAME] (resumed), or a new one.
fn open_session(
    cli: &Cli,
    cfg: &config::Config,
    store: &Store,
    notices: &mut Vec<String>,
) -> Result<Session> {
    if let Some(name) = &cli.session {
        session::validate_name(name).map_err(|e| usage_error(e.to_string()))?;
        return match store.session(name)? {
            Some(row) => {
                let settings = config::settings_from_flags(cli, row.settings.clone(), notices)?;
                let mut session = Session::open(row);
                if settings != session.settings {
                    session.settings = settings;
                    session.save_settings(store)?;
                }
                Ok(session)
            }
            None => {
                let settings = config::new_session_settings(cli, cfg, notices)?;
                Ok(Session::open(store.create_session(name, &settings, None)?))
            }
        };
    }
    if let Some(name) = &cli.resume {
        let row = if name.is_empty() {
            match store.most_recent_session()? {
                Some(row) => row,
                None => bail!(usage_error("there is no session to resume yet")),
            }
        } else {
            match store.session(name)? {
                Some(row) => row,
                None => bail!(usage_error(format!(
                    "no session named {name:?}; `peel sessions` lists them"
                ))),
            }
        };
        let settings = config::settings_from_flags(cli, row.settings.clone(), notices)?;
        let mut session = Session::open(row);
        if settings != session.settings {
            session.settings = settings;
            session.save_settings(store)?;
        }
        return Ok(session);
    }
    Ok(Session::new(
        None,
        config::new_session_settings(cli, cfg, notices)?,
    ))
}
