//! Everything a run needs, resolved once: flags win over the environment, the environment over the config file
//! (`<config dir>/peel/config.toml`, its top-level keys under the chosen profile's), the file over defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::cli::Cli;
use crate::engine::transport::InteractionOptions;
use crate::face::preview::PreviewMode;
use crate::gemini::auth::{self, Credential, DEFAULT_TOKEN_CMD, HelperOptions, TokenCommand};
use crate::gemini::client::{self, Api, DEFAULT_BASE_URL};
use crate::gemini::interactions::Delivery;
use crate::gemini::retry::RetryPolicy;
use crate::gemini::{Auth, Backend, Client, ClientConfig, models};
use crate::secret::Secret;
use crate::settings::{Settings, Transport};

/// The largest answer read, in MB: a 4K image with its signature and thought images is well under it, and an
/// answer that never ends stops here (with peel's own memory under 100 MB).
pub const DEFAULT_MAX_RESPONSE_MB: u64 = 64;

/// Seconds an answer may send nothing (streams send thought summaries as the model works).
pub const DEFAULT_IDLE_TIMEOUT_S: u64 = 180;

/// Seconds `api_key_cmd` and `token_cmd` may run (gcloud can take a few).
pub const DEFAULT_CMD_TIMEOUT_S: u64 = 30;

/// Variables that may hold the key, in the order they are tried.
pub const KEY_VARIABLES: &[&str] = &["GEMINI_API_KEY", "GOOGLE_API_KEY"];

/// A mistake in how peel was called (exit code 2), as opposed to a failure while working (exit code 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn usage_error(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// The keys of a profile, and the file's top-level defaults (the same keys). Every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    pub base_url: Option<String>,
    pub auth: Option<Auth>,
    /// The variable holding the key (default GEMINI_API_KEY, then GOOGLE_API_KEY).
    pub api_key_env: Option<String>,
    /// A command whose stdout (trimmed) is the key; run once per peel run.
    pub api_key_cmd: Option<String>,
    pub vertex: Option<bool>,
    pub project: Option<String>,
    pub location: Option<String>,
    /// The command printing a Vertex AI access token.
    pub token_cmd: Option<String>,
    pub model: Option<String>,
    pub size: Option<String>,
    pub out: Option<String>,
    pub max_request_mb: Option<u64>,
    /// The aspect ratios this provider takes, for every model (replacing the models' own lists).
    pub ratios: Option<Vec<String>>,
    /// The image sizes this provider takes, for every model that takes sizes at all.
    pub sizes: Option<Vec<String>>,
    /// The reference images one request may carry, for every model.
    pub max_reference_images: Option<usize>,
    /// Retries after the first attempt.
    pub retries: Option<u32>,
    /// The first backoff wait in milliseconds; it doubles with each retry.
    pub backoff_ms: Option<u64>,
    /// Seconds to wait for a connection.
    pub connect_timeout: Option<u64>,
    /// Seconds for a whole request, answer included.
    pub timeout: Option<u64>,
    /// The largest answer read, in MB (a bigger one is not read further).
    pub max_response_mb: Option<u64>,
    /// Seconds an answer may send nothing before it is given up.
    pub idle_timeout: Option<u64>,
    /// Seconds `api_key_cmd` and `token_cmd` may run.
    pub cmd_timeout: Option<u64>,
    pub stream: Option<bool>,
    pub thoughts: Option<bool>,
    pub search: Option<bool>,
    /// Vertex AI only: `ALLOW_ALL`, `ALLOW_ADULT` or `ALLOW_NONE` (`DONT_ALLOW` is taken for `ALLOW_NONE`).
    pub person_generation: Option<String>,
    /// Vertex AI only: `image/png` or `image/jpeg`.
    pub output_mime_type: Option<String>,
    /// Vertex AI only: JPEG quality 0-100.
    pub jpeg_quality: Option<u8>,
    /// Inline previews: auto, kitty, iterm, sixel, blocks or off.
    pub preview: Option<PreviewMode>,
    /// How many requests variants keep in flight at once (default 4).
    pub concurrency: Option<usize>,
    /// `generate` or `interactions`: the transport of new sessions (Gemini API only).
    pub transport: Option<Transport>,
    /// Interactions transport: `inline` (the default) or `uri` (images fetched from where the answer points).
    pub image_delivery: Option<String>,
    /// `peel batch`: requests bigger than this many MB in total go through the Files API (default 20, the Batch
    /// API's inline limit; 0 sends every batch as a file).
    pub batch_inline_mb: Option<f64>,
}

impl ProfileConfig {
    /// `self`'s keys, and `base`'s where `self` has none.
    fn over(self, base: ProfileConfig) -> ProfileConfig {
        ProfileConfig {
            base_url: self.base_url.or(base.base_url),
            auth: self.auth.or(base.auth),
            api_key_env: self.api_key_env.or(base.api_key_env),
            api_key_cmd: self.api_key_cmd.or(base.api_key_cmd),
            vertex: self.vertex.or(base.vertex),
            project: self.project.or(base.project),
            location: self.location.or(base.location),
            token_cmd: self.token_cmd.or(base.token_cmd),
            model: self.model.or(base.model),
            size: self.size.or(base.size),
            out: self.out.or(base.out),
            max_request_mb: self.max_request_mb.or(base.max_request_mb),
            ratios: self.ratios.or(base.ratios),
            sizes: self.sizes.or(base.sizes),
            max_reference_images: self.max_reference_images.or(base.max_reference_images),
            retries: self.retries.or(base.retries),
            backoff_ms: self.backoff_ms.or(base.backoff_ms),
            connect_timeout: self.connect_timeout.or(base.connect_timeout),
            timeout: self.timeout.or(base.timeout),
            max_response_mb: self.max_response_mb.or(base.max_response_mb),
            idle_timeout: self.idle_timeout.or(base.idle_timeout),
            cmd_timeout: self.cmd_timeout.or(base.cmd_timeout),
            stream: self.stream.or(base.stream),
            thoughts: self.thoughts.or(base.thoughts),
            search: self.search.or(base.search),
            person_generation: self.person_generation.or(base.person_generation),
            output_mime_type: self.output_mime_type.or(base.output_mime_type),
            jpeg_quality: self.jpeg_quality.or(base.jpeg_quality),
            preview: self.preview.or(base.preview),
            concurrency: self.concurrency.or(base.concurrency),
            transport: self.transport.or(base.transport),
            image_delivery: self.image_delivery.or(base.image_delivery),
            batch_inline_mb: self.batch_inline_mb.or(base.batch_inline_mb),
        }
    }
}

/// The config file as it applies to this run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// The file that was read; `None` when there is none.
    pub path: Option<PathBuf>,
    /// The profile in use.
    pub profile: Option<String>,
    /// The profile's keys over the file's top-level keys.
    pub values: ProfileConfig,
}

impl Config {
    /// Reads `--config` / PEEL_CONFIG, else `<config dir>/peel/config.toml` if it exists, and picks the profile
    /// of `-p` / PEEL_PROFILE, else the file's `profile`.
    pub fn load(cli: &Cli) -> Result<Config> {
        let (path, explicit) = match &cli.config {
            Some(path) => (Some(path.clone()), true),
            None => (
                directories::BaseDirs::new().map(|d| d.config_dir().join("peel/config.toml")),
                false,
            ),
        };
        let text = match &path {
            Some(path) if explicit || path.exists() => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("could not read the config file {}", path.display()))
                    .map_err(|e| usage_error(format!("{e:#}")))?,
            ),
            _ => None,
        };
        let Some(text) = text else {
            if let Some(name) = &cli.profile {
                return Err(usage_error(format!(
                    "no profile {name:?}: there is no config file (looked for {})",
                    path.map_or("<config dir>/peel/config.toml".into(), |p| p
                        .display()
                        .to_string())
                )));
            }
            return Ok(Config::default());
        };
        let path = path.unwrap_or_default();
        Config::parse(&text, cli.profile.as_deref())
            .map(|config| Config {
                path: Some(path.clone()),
                ..config
            })
            .map_err(|e| usage_error(format!("config file {}: {e:#}", path.display())))
    }

    /// Parses the file's text and picks `profile` (or the file's own `profile`).
    pub fn parse(text: &str, profile: Option<&str>) -> Result<Config> {
        let mut table: toml::Table = text.parse()?;
        let default_profile = match table.remove("profile") {
            Some(toml::Value::String(name)) => Some(name),
            Some(_) => {
                anyhow::bail!("`profile` must be a string: the name of a [profiles.NAME] table")
            }
            None => None,
        };
        let mut profiles: std::collections::BTreeMap<String, ProfileConfig> =
            match table.remove("profiles") {
                Some(value) => value.try_into().context("in [profiles]")?,
                None => Default::default(),
            };
        let defaults: ProfileConfig = toml::Value::Table(table).try_into()?;
        let chosen = profile.map(str::to_string).or(default_profile);
        let values = match &chosen {
            None => defaults,
            Some(name) => match profiles.remove(name) {
                Some(profile) => profile.over(defaults),
                None => {
                    let known: Vec<&str> = profiles.keys().map(String::as_str).collect();
                    anyhow::bail!(
                        "no profile {name:?}; the profiles are: {}",
                        if known.is_empty() {
                            "(none)".to_string()
                        } else {
                            known.join(", ")
                        }
                    );
                }
            },
        };
        Ok(Config {
            path: None,
            profile: chosen,
            values,
        })
    }

    /// Where images go: -o / PEEL_OUT, else the file's `out`, else `./peel-out`.
    pub fn out_dir(&self, cli: &Cli) -> PathBuf {
        match (&cli.out, &self.values.out) {
            (Some(out), _) => out.clone(),
            (None, Some(out)) => PathBuf::from(expand_home(out)),
            (None, None) => PathBuf::from("peel-out"),
        }
    }

    /// `peel batch`: the inline size limit of a job's requests, in bytes.
    pub fn batch_inline_bytes(&self) -> u64 {
        match self.values.batch_inline_mb {
            Some(mb) if mb.is_finite() && mb >= 0.0 => (mb * 1e6) as u64,
            _ => crate::gemini::batch::INLINE_LIMIT_BYTES,
        }
    }

    /// How previews are drawn: --preview / PEEL_PREVIEW, else the file's `preview`, else auto.
    pub fn preview(&self, cli: &Cli) -> PreviewMode {
        cli.preview.or(self.values.preview).unwrap_or_default()
    }

    /// Whether turns stream: --stream / --no-stream, else the file's `stream`, else only in the interactive REPL.
    pub fn stream(&self, cli: &Cli, interactive: bool) -> bool {
        if cli.stream {
            true
        } else if cli.no_stream {
            false
        } else {
            self.values.stream.unwrap_or(interactive)
        }
    }
}

fn expand_home(path: &str) -> String {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest).display().to_string(),
        _ => path.to_string(),
    }
}

/// The database path: --db / PEEL_DB, else `<data dir>/peel/peel.db`. Only the default data folder is created: a
/// folder given with --db or PEEL_DB must exist (a typo there must not start a new, empty database elsewhere).
pub fn database_path(cli: &Cli) -> Result<PathBuf> {
    let Some(path) = &cli.db else {
        let dir = data_dir()?;
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        return Ok(dir.join("peel.db"));
    };
    let source = if std::env::var_os("PEEL_DB").is_some_and(|v| v == path.as_os_str()) {
        "PEEL_DB"
    } else {
        "--db"
    };
    if path.as_os_str().is_empty() {
        return Err(usage_error(format!(
            "{source} is empty: give it the path of a database"
        )));
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(usage_error(format!(
            "the folder {} of the database given by {source} ({}) does not exist; create it first, or fix the path",
            dir.display(),
            path.display()
        )));
    }
    if path.is_dir() {
        return Err(usage_error(format!(
            "{source} names a folder ({}); give it the path of a database file, e.g. {}",
            path.display(),
            path.join("peel.db").display()
        )));
    }
    Ok(path.clone())
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
    settings.thoughts |= cli.thoughts;
    settings.search |= cli.search;
    if let Some(transport) = cli.transport {
        settings.transport = transport;
    }
    image_flags(
        settings,
        cli.model.as_deref(),
        cli.aspect.as_deref(),
        cli.size.as_deref(),
        notices,
    )
}

/// `--model`, `--aspect` and `--size` over `settings` (a model alias resolved with a notice, a ratio or size
/// normalised), checked together: what `peel` and `peel batch` both take.
pub fn image_flags(
    mut settings: Settings,
    model: Option<&str>,
    aspect: Option<&str>,
    size: Option<&str>,
    notices: &mut Vec<String>,
) -> Result<Settings> {
    if let Some(model) = model {
        let (id, notice) = models::resolve(model);
        notices.extend(notice);
        settings.model = id;
    }
    if let Some(aspect) = aspect {
        settings.aspect =
            Some(models::normalize_ratio(aspect).map_err(|e| usage_error(e.to_string()))?);
    }
    if let Some(size) = size {
        settings.size = Some(models::normalize_size(size).map_err(|e| usage_error(e.to_string()))?);
    }
    settings
        .generation_config()
        .map_err(|e| usage_error(e.to_string()))?;
    Ok(settings)
}

/// The settings of a new session: PEEL_MODEL, else the config file's model, seeds the model; the file's size,
/// thoughts and search are defaults; flags go over them all.
pub fn new_session_settings(
    cli: &Cli,
    config: &Config,
    notices: &mut Vec<String>,
) -> Result<Settings> {
    let mut base = Settings::default();
    let model = std::env::var("PEEL_MODEL")
        .ok()
        .filter(|m| !m.trim().is_empty())
        .or_else(|| config.values.model.clone());
    if let Some(model) = model {
        let (id, notice) = models::resolve(&model);
        notices.extend(notice);
        base.model = id;
    }
    if let Some(size) = &config.values.size {
        let size = models::normalize_size(size).map_err(|e| usage_error(format!("config: {e}")))?;
        // A default the model does not take is left out, as the built-in 1K is on 2.5.
        let model = cli
            .model
            .as_deref()
            .map_or(base.model.clone(), |m| models::resolve(m).0);
        if models::capabilities(&model).is_none_or(|m| m.takes_size(&size)) {
            base.size = Some(size);
        }
    }
    base.thoughts = config.values.thoughts.unwrap_or(false);
    base.search = config.values.search.unwrap_or(false);
    base.transport = config.values.transport.unwrap_or_default();
    settings_from_flags(cli, base, notices)
}

/// The Interactions transport is a Gemini API feature: asking for it (flag or config) on Vertex AI is a usage
/// error, said before anything else happens.
pub fn check_transport(cli: &Cli, config: &Config) -> Result<()> {
    let asked = cli.transport.or(config.values.transport);
    let vertex = cli.vertex || config.values.vertex == Some(true);
    if asked == Some(Transport::Interactions) && vertex && !cli.offline {
        let which = config
            .profile
            .as_deref()
            .map_or("this run".to_string(), |p| format!("profile {p}"));
        return Err(usage_error(format!(
            "the interactions transport is offered on the Gemini API only, and {which} talks to Vertex AI; use \
             --transport generate (or drop transport from the config)"
        )));
    }
    Ok(())
}

/// How the Interactions transport asks for images: the config's `image_delivery`.
pub fn interaction_options(config: &Config) -> Result<InteractionOptions> {
    let delivery = match config.values.image_delivery.as_deref() {
        None | Some("inline") => Delivery::Inline,
        Some("uri") => Delivery::Uri,
        Some(other) => {
            return Err(usage_error(format!(
                "image_delivery {:?}: use inline or uri",
                crate::untrusted::sanitize(other)
            )));
        }
    };
    Ok(InteractionOptions {
        delivery,
        ..InteractionOptions::default()
    })
}

/// Who answers turns: the local stand-in with --offline, else the server of the profile (Gemini API, a gateway,
/// or Vertex AI) with its credential. Nothing is sent here; an `api_key_cmd` runs once.
pub fn backend(cli: &Cli, config: &Config) -> Result<Backend> {
    if cli.offline {
        return Ok(Backend::Offline);
    }
    let values = &config.values;
    let vertex = cli.vertex || values.vertex == Some(true);
    let api = api(cli, values)?;
    let base_url = base_url(cli, values, &api)?;
    let vertex_image_config = vertex_image_config(values, vertex, config.profile.as_deref())?;
    let helper = HelperOptions {
        timeout: Duration::from_secs(values.cmd_timeout.unwrap_or(DEFAULT_CMD_TIMEOUT_S).max(1)),
        verbose: cli.verbose,
    };
    let credential = match &api {
        Api::Vertex { .. } => Credential::Token(TokenCommand::new(
            values.token_cmd.as_deref().unwrap_or(DEFAULT_TOKEN_CMD),
            helper,
        )),
        _ => match api_key(values, config.profile.as_deref(), helper) {
            Ok(key) => Credential::Key {
                key,
                auth: cli.auth.or(values.auth).unwrap_or_default(),
            },
            // Browsing, showing and exporting stored threads need no key: say so when a request would be sent.
            Err(e) => return Ok(Backend::NoKey(e.to_string())),
        },
    };
    let retries = values.retries.unwrap_or(4);
    let client = Client::new(ClientConfig {
        base_url,
        api,
        credential,
        connect_timeout: Duration::from_secs(values.connect_timeout.unwrap_or(15).max(1)),
        timeout: Duration::from_secs(values.timeout.unwrap_or(600).max(1)),
        retry: RetryPolicy {
            attempts: retries.saturating_add(1),
            base_delay: Duration::from_millis(values.backoff_ms.unwrap_or(1000)),
            ..RetryPolicy::default()
        },
        max_request_bytes: usize::try_from(
            provider(cli, config)?
                .max_request_bytes()
                .unwrap_or(crate::gemini::DEFAULT_MAX_REQUEST_BYTES as u64),
        )
        .unwrap_or(usize::MAX),
        max_response_bytes: values
            .max_response_mb
            .unwrap_or(DEFAULT_MAX_RESPONSE_MB)
            .max(1)
            .saturating_mul(1_000_000),
        idle_timeout: Duration::from_secs(
            values.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT_S).max(1),
        ),
        vertex_image_config,
    })?;
    Ok(Backend::Remote(Box::new(client)))
}

/// Which URL scheme the server speaks: the Gemini API's, Vertex AI's with a project, or Vertex express mode's.
fn api(cli: &Cli, values: &ProfileConfig) -> Result<Api> {
    let vertex = cli.vertex || values.vertex == Some(true);
    let location = cli
        .location
        .clone()
        .or_else(|| values.location.clone())
        .unwrap_or_else(|| "global".into());
    let project = cli.project.clone().or_else(|| values.project.clone());
    Ok(match (vertex, project) {
        (false, _) => Api::Gemini,
        (true, Some(project)) => Api::Vertex {
            project: path_segment(&project, "project")?,
            location: path_segment(&location, "location")?,
        },
        (true, None) => Api::VertexExpress,
    })
}

/// The server's base URL: --base-url / PEEL_BASE_URL, else the profile's, else the API's own host.
fn base_url(cli: &Cli, values: &ProfileConfig, api: &Api) -> Result<String> {
    let base_url = cli
        .base_url
        .clone()
        .or_else(|| values.base_url.clone())
        .unwrap_or_else(|| match api {
            Api::Gemini => DEFAULT_BASE_URL.to_string(),
            Api::Vertex { location, .. } => client::vertex_base_url(location),
            Api::VertexExpress => client::vertex_base_url("global"),
        });
    let base_url = base_url.trim().to_string();
    if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
        return Err(usage_error(format!(
            "the base URL must start with https:// or http://, not {base_url:?}"
        )));
    }
    Ok(base_url)
}

/// Who this run talks to, as far as what the models take goes: the built-in figures of a gateway peel knows (by
/// its base URL) under the profile's own `ratios`, `sizes`, `max_reference_images` and `max_request_mb`. The
/// offline stand-in takes what the models take.
pub fn provider(cli: &Cli, config: &Config) -> Result<models::Provider> {
    if cli.offline {
        return Ok(models::Provider::default());
    }
    let values = &config.values;
    let gateway = models::ProviderLimits::built_in(&base_url(cli, values, &api(cli, values)?)?);
    let bad = |e: anyhow::Error| usage_error(format!("config: {e}"));
    let ratios = match &values.ratios {
        Some(list) => Some(
            list.iter()
                .map(|r| models::normalize_ratio(r))
                .collect::<Result<Vec<_>>>()
                .map_err(bad)?,
        ),
        None => None,
    };
    let sizes = match &values.sizes {
        Some(list) => Some(
            list.iter()
                .map(|s| models::normalize_size(s))
                .collect::<Result<Vec<_>>>()
                .map_err(bad)?,
        ),
        None => None,
    };
    let name = config
        .profile
        .as_ref()
        .map_or("the config file".to_string(), |p| format!("profile {p}"));
    Ok(models::Provider {
        gateway,
        profile: models::ProviderLimits {
            name: Some(name),
            ratios,
            sizes,
            max_reference_images: values.max_reference_images,
            max_request_bytes: values.max_request_mb.map(|mb| mb.saturating_mul(1_000_000)),
        },
    })
}

/// A project or location goes into the URL path as it is: refuse anything that would change the path.
fn path_segment(value: &str, what: &str) -> Result<String> {
    let value = value.trim();
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !ok {
        return Err(usage_error(format!(
            "the Vertex AI {what} {value:?} is not a valid name"
        )));
    }
    Ok(value.to_string())
}

/// The key: the profile's `api_key_cmd`, else its `api_key_env`, else GEMINI_API_KEY, then GOOGLE_API_KEY.
fn api_key(values: &ProfileConfig, profile: Option<&str>, helper: HelperOptions) -> Result<Secret> {
    let profile = profile.map_or(String::new(), |p| format!("profile {p}: "));
    if let Some(command) = &values.api_key_cmd {
        return auth::run_secret_command(command, "api_key_cmd", helper)
            .map_err(|e| anyhow::anyhow!("{profile}no API key: {e}"));
    }
    if let Some(name) = &values.api_key_env {
        return match std::env::var(name) {
            Ok(value) if !value.trim().is_empty() => Ok(Secret::new(value.trim())),
            _ => Err(usage_error(format!(
                "{profile}no API key: the variable {name} (api_key_env) is not set"
            ))),
        };
    }
    for name in KEY_VARIABLES {
        if let Ok(value) = std::env::var(name)
            && !value.trim().is_empty()
        {
            return Ok(Secret::new(value.trim()));
        }
    }
    Err(usage_error(format!(
        "{profile}no API key: set GEMINI_API_KEY (or GOOGLE_API_KEY), or try peel without one: peel --offline"
    )))
}

/// The Vertex-only image settings as `imageConfig` fields; refused (before any request) when the server is not
/// Vertex AI, where the Gemini API would answer 400 "Unknown name".
fn vertex_image_config(
    values: &ProfileConfig,
    vertex: bool,
    profile: Option<&str>,
) -> Result<Map<String, Value>> {
    let mut fields = Map::new();
    let asked: Vec<&str> = [
        ("person_generation", values.person_generation.is_some()),
        ("output_mime_type", values.output_mime_type.is_some()),
        ("jpeg_quality", values.jpeg_quality.is_some()),
    ]
    .iter()
    .filter_map(|(name, set)| set.then_some(*name))
    .collect();
    if asked.is_empty() {
        return Ok(fields);
    }
    if !vertex {
        let which = profile.map_or("this run".to_string(), |p| format!("profile {p}"));
        let (fields, verb) = if asked.len() == 1 {
            (asked[0].to_string(), "works")
        } else {
            (asked.join(", "), "work")
        };
        return Err(usage_error(format!(
            "{fields} only {verb} on Vertex AI, and {which} talks to the Gemini API; set vertex = true (with \
             project and location) or remove {}",
            if asked.len() == 1 { "it" } else { "them" }
        )));
    }
    if let Some(person) = &values.person_generation {
        fields.insert(
            "personGeneration".into(),
            json!(person_generation(person).map_err(usage_error)?),
        );
    }
    let mut output = Map::new();
    if let Some(mime) = &values.output_mime_type {
        if !["image/png", "image/jpeg"].contains(&mime.as_str()) {
            return Err(usage_error(format!(
                "output_mime_type {mime:?}: use image/png or image/jpeg"
            )));
        }
        output.insert("mimeType".into(), json!(mime));
    }
    if let Some(quality) = values.jpeg_quality {
        if quality > 100 {
            return Err(usage_error("jpeg_quality is 0 to 100"));
        }
        if values.output_mime_type.as_deref() == Some("image/png") {
            return Err(usage_error(
                "jpeg_quality needs output_mime_type = \"image/jpeg\"",
            ));
        }
        output.insert("compressionQuality".into(), json!(quality));
    }
    if !output.is_empty() {
        fields.insert("imageOutputOptions".into(), Value::Object(output));
    }
    Ok(fields)
}

/// The value Vertex AI's `imageConfig.personGeneration` takes for a spelling of it. Vertex's ImageConfig enum says
/// `ALLOW_ALL`, `ALLOW_ADULT`, `ALLOW_NONE` (the aiplatform v1 reference, `ImageConfig.PersonGeneration`); the
/// google-genai SDK's own enum for Imagen says `DONT_ALLOW` for the last (`types.PersonGeneration`). Both are taken;
/// the one Vertex takes is sent.
fn person_generation(value: &str) -> Result<&'static str, String> {
    match value.trim().to_ascii_uppercase().as_str() {
        "ALLOW_ALL" => Ok("ALLOW_ALL"),
        "ALLOW_ADULT" => Ok("ALLOW_ADULT"),
        "ALLOW_NONE" | "DONT_ALLOW" => Ok("ALLOW_NONE"),
        other => Err(format!(
            "person_generation {other:?}: use ALLOW_ALL, ALLOW_ADULT or ALLOW_NONE (DONT_ALLOW)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
profile = "google"
model = "gemini-3-pro-image"
size = "1K"
out = "~/Pictures/peel"
max_request_mb = 100

[profiles.google]
api_key_env = "GEMINI_API_KEY"

[profiles.anyfast]
base_url = "https://www.anyfast.ai"
auth = "query"
api_key_cmd = "pass show anyfast"
model = "gemini-3.1-flash-image"

[profiles.vertex]
vertex = true
project = "my-project"
location = "global"
token_cmd = "gcloud auth print-access-token"
person_generation = "ALLOW_ADULT"
"#;

    #[test]
    fn profiles_override_the_top_level_defaults() {
        let config = Config::parse(SAMPLE, None).unwrap();
        assert_eq!(config.profile.as_deref(), Some("google"));
        assert_eq!(config.values.api_key_env.as_deref(), Some("GEMINI_API_KEY"));
        assert_eq!(config.values.model.as_deref(), Some("gemini-3-pro-image"));
        let anyfast = Config::parse(SAMPLE, Some("anyfast")).unwrap().values;
        assert_eq!(anyfast.auth, Some(Auth::Query));
        assert_eq!(anyfast.model.as_deref(), Some("gemini-3.1-flash-image"));
        assert_eq!(anyfast.size.as_deref(), Some("1K"), "inherited");
        let vertex = Config::parse(SAMPLE, Some("vertex")).unwrap().values;
        assert_eq!(vertex.vertex, Some(true));
        assert_eq!(vertex.project.as_deref(), Some("my-project"));
    }

    #[test]
    fn mistakes_are_named() {
        let e = Config::parse(SAMPLE, Some("nope")).unwrap_err().to_string();
        assert!(e.contains("anyfast, google, vertex"), "{e}");
        let e = format!("{:#}", Config::parse("modle = \"x\"", None).unwrap_err());
        assert!(e.contains("modle"), "{e}");
        let e = format!(
            "{:#}",
            Config::parse("[profiles.a]\nauth = \"cookie\"", Some("a")).unwrap_err()
        );
        assert!(e.contains("cookie"), "{e}");
        assert_eq!(Config::parse("", None).unwrap(), Config::default());
    }

    #[test]
    fn vertex_only_settings_are_refused_elsewhere() {
        let values = ProfileConfig {
            person_generation: Some("allow_adult".into()),
            output_mime_type: Some("image/jpeg".into()),
            jpeg_quality: Some(80),
            ..ProfileConfig::default()
        };
        let fields = vertex_image_config(&values, true, None).unwrap();
        assert_eq!(
            Value::Object(fields),
            json!({"personGeneration": "ALLOW_ADULT",
                   "imageOutputOptions": {"mimeType": "image/jpeg", "compressionQuality": 80}})
        );
        let e = vertex_image_config(&values, false, Some("google"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("jpeg_quality only work on Vertex AI") && e.contains("profile google"),
            "{e}"
        );
        let bad = ProfileConfig {
            person_generation: Some("everyone".into()),
            ..ProfileConfig::default()
        };
        assert!(vertex_image_config(&bad, true, None).is_err());
        // Both documented spellings of "no people"; Vertex gets the one it takes.
        for spelling in ["DONT_ALLOW", "dont_allow", "ALLOW_NONE"] {
            let values = ProfileConfig {
                person_generation: Some(spelling.into()),
                ..ProfileConfig::default()
            };
            let fields = vertex_image_config(&values, true, None).unwrap();
            assert_eq!(fields["personGeneration"], "ALLOW_NONE", "{spelling}");
        }
    }

    #[test]
    fn vertex_names_cannot_change_the_path() {
        assert!(path_segment("my-project", "project").is_ok());
        assert!(path_segment("../x", "project").is_err());
        assert!(path_segment("", "location").is_err());
    }
}
