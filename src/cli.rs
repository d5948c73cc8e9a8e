//! The command line: flags, subcommands and help text.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::gemini::Auth;
use crate::preview::PreviewMode;

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
    #[arg(short, long, value_name = "NAME", conflicts_with = "resume")]
    pub session: Option<String>,

    /// Resume the most recently used session, or session NAME
    #[arg(short, long, value_name = "NAME", num_args = 0..=1, default_missing_value = "")]
    pub resume: Option<String>,

    /// Model id [env: PEEL_MODEL] [default: gemini-3-pro-image]
    #[arg(short, long, value_name = "ID")]
    pub model: Option<String>,

    /// Aspect ratio: 1:1, 16:9, ... [default: the model decides]
    #[arg(short, long, value_name = "RATIO")]
    pub aspect: Option<String>,

    /// Image size: 512, 1K, 2K, 4K [default: 1K]
    #[arg(long, value_name = "SIZE")]
    pub size: Option<String>,

    /// Reference image for the first prompt (repeatable, at most 14)
    #[arg(short, long = "image", value_name = "PATH")]
    pub images: Vec<PathBuf>,

    /// Where images are written: DIR/<session>/<turn>.<ext>
    #[arg(
        short,
        long,
        value_name = "DIR",
        env = "PEEL_OUT",
        default_value = "peel-out"
    )]
    pub out: PathBuf,

    /// The SQLite database [default: <data dir>/peel/peel.db]
    #[arg(long, value_name = "PATH", env = "PEEL_DB")]
    pub db: Option<PathBuf>,

    /// Any server that speaks the Gemini protocol
    #[arg(long, value_name = "URL", env = "PEEL_BASE_URL", default_value = crate::gemini::client::DEFAULT_BASE_URL)]
    pub base_url: String,

    /// How the key travels
    #[arg(long, value_enum, default_value_t)]
    pub auth: Auth,

    /// Inline image previews (only ever on a terminal)
    #[arg(long, value_enum, env = "PEEL_PREVIEW", default_value_t)]
    pub preview: PreviewMode,

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List sessions (name, turns, updated, last prompt)
    Sessions,
    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

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
            Some(Command::Sessions)
        ));
        let cli = Cli::try_parse_from(["peel", "--db", "x.db", "sessions"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Sessions)));
        assert!(cli.prompt.is_empty());
    }
}
