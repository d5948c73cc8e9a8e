//! The command line: flags, subcommands and help text.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};

use crate::face::preview::PreviewMode;
use crate::gemini::Auth;

#[derive(Debug, Parser)]
#[command(
    name = "peel",
    version,
    about = "Edit images in conversation with Google's Gemini image models (Nano Banana Pro, Nano Banana 2, Nano Banana)",
    after_help = "Without PROMPT, peel opens a REPL on a terminal, or reads one prompt or /command a line from stdin.\n\
                  The key comes from GEMINI_API_KEY (then GOOGLE_API_KEY); --offline needs none.\n\
                  Models: gemini-3-pro-image (default), gemini-3.1-flash-image, gemini-2.5-flash-image."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// One turn without the REPL: prints the saved image path(s) and exits
    #[arg(value_name = "PROMPT")]
    pub prompt: Vec<String>,

    /// Open session NAME, creating it if it does not exist
    #[arg(short, long, value_name = "NAME", conflicts_with = "resume", add = ArgValueCandidates::new(session_names))]
    pub session: Option<String>,

    /// Resume the most recently used session, or session NAME
    #[arg(short, long, value_name = "NAME", num_args = 0..=1, default_missing_value = "",
          add = ArgValueCandidates::new(session_names))]
    pub resume: Option<String>,

    /// Model id [env: PEEL_MODEL] [default: gemini-3-pro-image]
    #[arg(short, long, value_name = "ID", add = ArgValueCandidates::new(model_ids))]
    pub model: Option<String>,

    /// Aspect ratio: 1:1, 16:9, ... [default: the model decides]
    #[arg(short, long, value_name = "RATIO", add = ArgValueCandidates::new(ratios))]
    pub aspect: Option<String>,

    /// Image size: 512, 1K, 2K, 4K [default: 1K]
    #[arg(long, value_name = "SIZE", add = ArgValueCandidates::new(sizes))]
    pub size: Option<String>,

    /// Reference image for the first prompt: a file, or a stored image by label (@3, @fox:2, @last); repeatable
    #[arg(short, long = "image", value_name = "PATH|@LABEL")]
    pub images: Vec<PathBuf>,

    /// N takes of each prompt at once (2 to 8), side by side on a contact sheet [default: 1]
    #[arg(short = 'n', long = "variants", value_name = "N", value_parser = clap::value_parser!(u8).range(1..=8))]
    pub variants: Option<u8>,

    /// Where images are written: DIR/<session>/<turn>.<ext> [default: the config's out, else peel-out]
    #[arg(short, long, value_name = "DIR", env = "PEEL_OUT")]
    pub out: Option<PathBuf>,

    /// The SQLite database [default: <data dir>/peel/peel.db]
    #[arg(long, value_name = "PATH", env = "PEEL_DB")]
    pub db: Option<PathBuf>,

    /// The config file of profiles and defaults [default: <config dir>/peel/config.toml]
    #[arg(long, value_name = "PATH", env = "PEEL_CONFIG")]
    pub config: Option<PathBuf>,

    /// A provider profile of the config file [default: the config's `profile`, else the Gemini API]
    #[arg(short, long, value_name = "NAME", env = "PEEL_PROFILE")]
    pub profile: Option<String>,

    /// Any server that speaks the Gemini protocol [default: https://generativelanguage.googleapis.com]
    #[arg(long, value_name = "URL", env = "PEEL_BASE_URL")]
    pub base_url: Option<String>,

    /// How the key travels [default: header]
    #[arg(long, value_enum)]
    pub auth: Option<Auth>,

    /// Use Vertex AI: with --project, an OAuth token from the profile's token_cmd; without, express mode with a key
    #[arg(long)]
    pub vertex: bool,

    /// Vertex AI project
    #[arg(long, value_name = "P", env = "GOOGLE_CLOUD_PROJECT")]
    pub project: Option<String>,

    /// Vertex AI location [default: global]
    #[arg(long, value_name = "L", env = "GOOGLE_CLOUD_LOCATION")]
    pub location: Option<String>,

    /// Stream answers (thought summaries and text appear as they arrive) [default: in the interactive REPL]
    #[arg(long, overrides_with = "no_stream")]
    pub stream: bool,

    /// Do not stream answers
    #[arg(long, overrides_with = "stream")]
    pub no_stream: bool,

    /// Ask for thought summaries and show them (not on gemini-2.5-flash-image)
    #[arg(long)]
    pub thoughts: bool,

    /// Ground answers in Google Search and list the sources
    #[arg(long)]
    pub search: bool,

    /// Gemini API: re-send the thread each turn (generate), or keep it server-side and send only what is new
    /// (interactions); kept with the session [default: the config's transport, else generate]
    #[arg(long, value_enum, value_name = "TRANSPORT")]
    pub transport: Option<crate::settings::Transport>,

    /// Inline image previews, only ever on a terminal [default: the config's preview, else auto]
    #[arg(long, value_enum, env = "PEEL_PREVIEW")]
    pub preview: Option<PreviewMode>,

    /// Script mode: run on after a failed line (and exit 1 at the end) instead of stopping there
    #[arg(long)]
    pub keep_going: bool,

    /// One JSON object per turn on stdout
    #[arg(long)]
    pub json: bool,

    /// No network: a built-in local generator stands in for the model
    #[arg(long)]
    pub offline: bool,

    /// Less on stderr
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,

    /// More on stderr (endpoint and request size of each turn)
    #[arg(short, long)]
    pub verbose: bool,
}

/// The variables the flags read. Set but empty, clap would blame the flag ("a value is required for '--db'") when
/// the person never typed it: name the variable instead.
pub const FLAG_VARIABLES: &[&str] = &[
    "PEEL_OUT",
    "PEEL_DB",
    "PEEL_CONFIG",
    "PEEL_PROFILE",
    "PEEL_BASE_URL",
    "PEEL_PREVIEW",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
];

/// Checks the environment before the arguments are parsed: a variable the flags read that is set but empty.
pub fn check_environment() -> Result<(), String> {
    for name in FLAG_VARIABLES {
        if std::env::var_os(name).is_some_and(|v| v.is_empty()) {
            return Err(format!(
                "{name} is set but empty: unset it, or give it a value"
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List sessions (name, turns, updated, last prompt)
    Sessions {
        /// One JSON object a session
        #[arg(long)]
        json: bool,
    },
    /// Write a session's images, transcript.md and thread.json into DIR
    Export {
        /// The session
        #[arg(add = ArgValueCandidates::new(session_names))]
        name: String,
        /// The folder to write (created if needed) [default: ./NAME-export]
        dir: Option<PathBuf>,
    },
    /// Bring an exported thread (its folder, or its thread.json) into the database as a new session
    Import {
        /// The export folder, or its thread.json
        file: PathBuf,
        /// The new session's name (default: the exported name; a taken name gets a suffix)
        #[arg(long)]
        name: Option<String>,
    },
    /// Run a file of prompts through the Gemini Batch API at half price; the results become sessions
    ///
    /// `peel batch FILE` submits the file (one prompt a line, or JSONL objects: {"prompt", "references", "model",
    /// "aspect", "size", "thoughts", "think", "search"}); `peel batch list|status|wait|fetch|cancel ID` follow the
    /// job from any terminal. Jobs go inline up to 20 MB of requests (the config's batch_inline_mb), else as a
    /// file uploaded through the Files API.
    #[command(args_conflicts_with_subcommands = true)]
    Batch(BatchArgs),
    /// Print the shell completion script: `source <(peel completions bash)` (zsh, fish, elvish, powershell too);
    /// session names, model ids, ratios and sizes complete
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `peel batch FILE [options]`, or one of its subcommands.
#[derive(Debug, clap::Args)]
pub struct BatchArgs {
    #[command(subcommand)]
    pub action: Option<BatchAction>,

    /// The prompts file: one prompt a line (# comments), or JSONL objects
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Results become takes of the next turn of SESSION (after its head, or after turn TURN: fox@3); each request
    /// carries that history
    #[arg(long, value_name = "SESSION[@TURN]", add = ArgValueCandidates::new(session_names))]
    pub into: Option<String>,

    /// Model id for the prompts that name none
    #[arg(short, long, value_name = "ID", add = ArgValueCandidates::new(model_ids))]
    pub model: Option<String>,

    /// Aspect ratio for the prompts that name none
    #[arg(short, long, value_name = "RATIO", add = ArgValueCandidates::new(ratios))]
    pub aspect: Option<String>,

    /// Image size for the prompts that name none
    #[arg(long, value_name = "SIZE", add = ArgValueCandidates::new(sizes))]
    pub size: Option<String>,

    /// A reference image for every prompt (repeatable)
    #[arg(short, long = "image", value_name = "PATH")]
    pub images: Vec<PathBuf>,

    /// Wait for the job, then fetch its results
    #[arg(long)]
    pub wait: bool,

    /// One JSON object per job (submit, list, status) or per result (fetch) on stdout
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum BatchAction {
    /// The batches peel knows, newest first, as last seen
    List,
    /// A job's state and counts, asked of the server
    Status {
        /// The batch: its number in `peel batch list`, or batches/ID
        id: String,
    },
    /// Wait until a job is done, showing its progress; Ctrl-C stops waiting, not the job
    Wait {
        id: String,
        /// Fetch the results once it is done
        #[arg(long)]
        fetch: bool,
    },
    /// Store a finished job's results (each once: a second fetch stores nothing again)
    Fetch { id: String },
    /// Ask the server to stop a job; what it finished can still be fetched
    Cancel { id: String },
}

/// The shells' completion candidates for model ids, ratios, sizes: from the model table.
fn model_ids() -> Vec<CompletionCandidate> {
    crate::gemini::models::MODELS
        .iter()
        .map(|m| CompletionCandidate::new(m.id).help(Some(m.alias.into())))
        .collect()
}

fn ratios() -> Vec<CompletionCandidate> {
    let mut all: Vec<&str> = Vec::new();
    for model in crate::gemini::models::MODELS {
        for &ratio in model.ratios {
            if !all.contains(&ratio) {
                all.push(ratio);
            }
        }
    }
    all.into_iter().map(CompletionCandidate::new).collect()
}

fn sizes() -> Vec<CompletionCandidate> {
    ["512", "1K", "2K", "4K"]
        .into_iter()
        .map(CompletionCandidate::new)
        .collect()
}

/// The session names of the database (`PEEL_DB`, else the default one), read without changing anything; none when
/// there is no database yet or it cannot be read.
fn session_names() -> Vec<CompletionCandidate> {
    let path = match std::env::var_os("PEEL_DB").filter(|p| !p.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => match crate::config::data_dir() {
            Ok(dir) => dir.join("peel.db"),
            Err(_) => return Vec::new(),
        },
    };
    crate::store::session_names_read_only(&path)
        .unwrap_or_default()
        .into_iter()
        .map(CompletionCandidate::new)
        .collect()
}

/// `peel completions SHELL`: the script that has the shell ask peel itself (`COMPLETE=SHELL peel ...`), so
/// session names are those of the moment.
pub fn write_completions(
    shell: clap_complete::Shell,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let name = match shell {
        clap_complete::Shell::Bash => "bash",
        clap_complete::Shell::Zsh => "zsh",
        clap_complete::Shell::Fish => "fish",
        clap_complete::Shell::Elvish => "elvish",
        clap_complete::Shell::PowerShell => "powershell",
        _ => "bash",
    };
    let bin = std::env::current_exe()
        .ok()
        .map_or_else(|| "peel".to_string(), |p| p.display().to_string());
    match clap_complete::env::Shells::builtins().completer(name) {
        Some(completer) => completer.write_registration("COMPLETE", "peel", &bin, &bin, out),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn shells_complete_models_ratios_sizes() {
        let ids: Vec<String> = model_ids()
            .iter()
            .map(|c| c.get_value().to_string_lossy().into_owned())
            .collect();
        assert!(ids.contains(&"gemini-3.1-flash-image".to_string()));
        let all: Vec<String> = ratios()
            .iter()
            .map(|c| c.get_value().to_string_lossy().into_owned())
            .collect();
        assert!(all.contains(&"16:9".to_string()) && all.contains(&"1:8".to_string()));
        assert_eq!(sizes().len(), 4);
        let mut script = Vec::new();
        write_completions(clap_complete::Shell::Bash, &mut script).unwrap();
        assert!(String::from_utf8(script).unwrap().contains("COMPLETE"));
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn resume_takes_an_optional_name() {
        let cli = Cli::try_parse_from(["peel", "-r"]).unwrap();
        assert_eq!(cli.resume.as_deref(), Some(""));
        let cli = Cli::try_parse_from(["peel", "-r", "fox"]).unwrap();
        assert_eq!(cli.resume.as_deref(), Some("fox"));
        assert!(Cli::try_parse_from(["peel", "-r", "-s", "x"]).is_err());
    }

    #[test]
    fn prompts_and_subcommands() {
        let cli = Cli::try_parse_from(["peel", "-i", "a.png", "a red fox"]).unwrap();
        assert_eq!(cli.prompt, ["a red fox"]);
        assert!(matches!(
            Cli::try_parse_from(["peel", "sessions"]).unwrap().command,
            Some(Command::Sessions { json: false })
        ));
        let cli = Cli::try_parse_from(["peel", "--db", "x.db", "sessions", "--json"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Sessions { json: true })
        ));
        let cli = Cli::try_parse_from(["peel", "export", "fox"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Export { dir: None, .. })
        ));
        assert!(cli.prompt.is_empty());
    }
}
