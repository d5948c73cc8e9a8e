//! Everything a run needs, resolved once: flags win over the environment, the environment over defaults.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::cli::Cli;
use crate::gemini::{Backend, Client, ClientConfig, models};
use crate::secret::Secret;
use crate::settings::Settings;

/// Variables that may hold the key, in the order they are tried.
pub const KEY_VARIABLES: &[&str] = &["GEMINI_API_KEY", "GOOGLE_API_KEY"];

/// A mistake in how peel was called (exit code 2), as opposed to a failure while working (exit code 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn usage_error(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// The database path: --db / PEEL_DB, else `<data dir>/peel/peel.db`.
pub fn database_path(cli: &Cli) -> Result<PathBuf> {
    match &cli.db {
        Some(path) => Ok(path.clone()),
        None => Ok(data_dir()?.join("peel.db")),
    }
}

/// `<data dir>/peel`: the database and the REPL's line history.
pub fn data_dir() -> Result<PathBuf> {
    let dirs = directories::BaseDirs::new()
        .context("no home directory to keep the database in: pass --db PATH")?;
    Ok(dirs.data_dir().join("peel"))
}

/// The settings asked for on the command line, applied over `base` (a stored session's, or the defaults).
pub fn settings_from_flags(
    cli: &Cli,
    base: Settings,
    notices: &mut Vec<String>,
) -> Result<Settings> {
    let mut settings = base;
    if let Some(model) = &cli.model {
        let (id, notice) = models::resolve(model);
        notices.extend(notice);
        settings.model = id;
    }
    if let Some(aspect) = &cli.aspect {
        settings.aspect =
            Some(models::normalize_ratio(aspect).map_err(|e| usage_error(e.to_string()))?);
    }
    if let Some(size) = &cli.size {
        settings.size = Some(models::normalize_size(size).map_err(|e| usage_error(e.to_string()))?);
    }
    settings
        .generation_config()
        .map_err(|e| usage_error(e.to_string()))?;
    Ok(settings)
}

/// The settings of a new session: PEEL_MODEL seeds the model; flags go over it.
pub fn new_session_settings(cli: &Cli, notices: &mut Vec<String>) -> Result<Settings> {
    let mut base = Settings::default();
    if let Some(model) = std::env::var("PEEL_MODEL")
        .ok()
        .filter(|m| !m.trim().is_empty())
    {
        let (id, notice) = models::resolve(&model);
        notices.extend(notice);
        base.model = id;
    }
    settings_from_flags(cli, base, notices)
}

/// The API key from the first variable that is set and not empty.
pub fn api_key() -> Result<Secret> {
    for name in KEY_VARIABLES {
        if let Ok(value) = std::env::var(name)
            && !value.trim().is_empty()
        {
            return Ok(Secret::new(value.trim()));
        }
    }
    Err(usage_error(
        "no API key: set GEMINI_API_KEY (or GOOGLE_API_KEY), or try peel without one: peel --offline",
    ))
}

/// Who answers turns: the local stand-in with --offline, else the API at --base-url with the key.
pub fn backend(cli: &Cli) -> Result<Backend> {
    if cli.offline {
        return Ok(Backend::Offline);
    }
    let base_url = cli.base_url.trim().to_string();
    if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
        bail!(usage_error(format!(
            "--base-url must start with https:// or http://, not {base_url:?}"
        )));
    }
    let client = Client::new(ClientConfig {
        base_url,
        auth: cli.auth,
        key: api_key()?,
        connect_timeout: Duration::from_secs(15),
        timeout: Duration::from_secs(600),
    })?;
    Ok(Backend::Remote(client))
}
