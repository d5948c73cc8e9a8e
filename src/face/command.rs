//! Slash commands: one table gives their names, usage and help; `Command::from_str` parses a line against it.

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Result, bail};

pub use crate::engine::TurnRef;
pub use crate::engine::context::ContextPolicy;

/// name, usage, what it does. The order is the order of `/help`.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    (
        "attach",
        "/attach PATH|@LABEL...",
        "attach images to the next prompt (files, or stored ones: @3, @3b, @fox:2, @last); with none, list them",
    ),
    ("detach", "/detach", "drop the attachments"),
    (
        "paste",
        "/paste",
        "attach the image on the system clipboard to the next prompt",
    ),
    (
        "save",
        "/save [NAME]",
        "name (or rename) this session; it is saved after every turn anyway",
    ),
    (
        "load",
        "/load NAME",
        "switch to another session (also /resume)",
    ),
    ("new", "/new [NAME]", "start an empty session"),
    ("sessions", "/sessions", "list the sessions"),
    (
        "history",
        "/history",
        "this session's turns: prompt, image, size, tokens, cost",
    ),
    (
        "variants",
        "/variants N PROMPT",
        "N takes of the prompt at once (2 to 8), side by side on a contact sheet; /pick keeps one",
    ),
    (
        "pick",
        "/pick TAKE",
        "make a take (3c) the one the next prompt continues from; the others stay in the tree",
    ),
    (
        "sheet",
        "/sheet [TURN]",
        "the takes of a turn side by side on one contact sheet (default: the last turn)",
    ),
    (
        "compare",
        "/compare A B",
        "two images side by side: takes (3a 3c) or any labels (@2 @fox:3)",
    ),
    (
        "branch",
        "/branch [NAME] [@TURN]",
        "a new session sharing this one's history (up to turn TURN: @3, or @3b for turn 3's second take); switch to it",
    ),
    (
        "undo",
        "/undo",
        "step back one turn; the turn stays stored (/redo, /tree)",
    ),
    ("redo", "/redo", "step forward again after /undo"),
    (
        "retry",
        "/retry",
        "send the last prompt again: after an error, or for another take (the old take stays: /tree)",
    ),
    (
        "tree",
        "/tree",
        "the whole family of this thread, every branch and take (also /history --all)",
    ),
    (
        "delete",
        "/delete NAME [--yes]",
        "delete a session; history another session still uses stays (the current one: asks first, or --yes)",
    ),
    (
        "export",
        "/export [DIR]",
        "write this session's images, transcript.md and thread.json (default ./<session>-export)",
    ),
    (
        "show",
        "/show [TURN]",
        "show a turn's image again (default: the last; 3, or 3b for a take), and the images it drew while thinking",
    ),
    (
        "open",
        "/open [TURN]",
        "open a turn's image in the system viewer (default: the last)",
    ),
    (
        "preview",
        "/preview on|off|auto",
        "inline previews of the images: on, off, or auto (the best the terminal has)",
    ),
    (
        "model",
        "/model [ID] [--fit]",
        "switch model for the next turns (--fit: also change the settings it does not take); with no ID, list them",
    ),
    (
        "aspect",
        "/aspect RATIO|auto",
        "aspect ratio for the next turns (16:9, 1:1, ...; auto lets the model decide)",
    ),
    (
        "size",
        "/size SIZE|auto",
        "image size for the next turns: 512, 1K, 2K or 4K",
    ),
    (
        "thoughts",
        "/thoughts on|off",
        "ask for the model's thought summaries and show them, dimmed, above the answer",
    ),
    (
        "think",
        "/think minimal|high|auto",
        "how hard gemini-3.1-flash-image thinks (thinkingLevel)",
    ),
    (
        "search",
        "/search on|off",
        "ground the next turns in Google Search results and list the sources",
    ),
    (
        "stream",
        "/stream on|off",
        "stream answers: thought summaries and text appear as they arrive",
    ),
    (
        "transport",
        "/transport generate|interactions",
        "Gemini API: send the whole thread each turn (generate), or keep it on the server and send only what is new (interactions)",
    ),
    (
        "settings",
        "/settings",
        "show the settings for the next turn",
    ),
    (
        "context",
        "/context [full|last N]",
        "the next request's size and tokens against the limits; send every earlier turn (full) or only the last N",
    ),
    (
        "fresh",
        "/fresh",
        "a new branch that starts from the current image as a reference, with no history to resend",
    ),
    (
        "cost",
        "/cost",
        "tokens and estimated cost of each turn and of the whole thread",
    ),
    (
        "help",
        "/help [COMMAND]",
        "list the commands, or explain one",
    ),
    ("quit", "/quit", "leave (also /exit or Ctrl-D)"),
];

/// Other spellings of the same commands.
const ALIASES: &[(&str, &str)] = &[
    ("resume", "load"),
    ("exit", "quit"),
    ("q", "quit"),
    ("?", "help"),
];

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Attach(Vec<PathBuf>),
    Detach,
    Paste,
    Variants {
        n: usize,
        prompt: String,
    },
    Pick(String),
    Sheet(Option<String>),
    Compare(String, String),
    Save(Option<String>),
    Load(String),
    New(Option<String>),
    Sessions,
    History,
    Branch {
        name: Option<String>,
        at: Option<TurnRef>,
    },
    Undo,
    Redo,
    Retry,
    Tree,
    Delete {
        name: String,
        yes: bool,
    },
    Export(Option<PathBuf>),
    Show(Option<String>),
    Open(Option<String>),
    Preview(String),
    Model {
        id: Option<String>,
        fit: bool,
    },
    Aspect(String),
    Size(String),
    Thoughts(bool),
    Think(Option<String>),
    Search(bool),
    Stream(bool),
    Transport(crate::settings::Transport),
    Settings,
    Cost,
    /// `/context` (show), `/context full`, `/context last N`.
    Context(Option<ContextPolicy>),
    Fresh,
    Help(Option<String>),
    Quit,
}

/// A typed line: a prompt for the model, or a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    Prompt(String),
    Command(Command),
    Empty,
}

impl FromStr for Line {
    type Err = anyhow::Error;

    fn from_str(line: &str) -> Result<Line> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(Line::Empty);
        }
        // `//text` sends a prompt that starts with a slash.
        if let Some(prompt) = line.strip_prefix("//") {
            return Ok(Line::Prompt(format!("/{prompt}")));
        }
        if line.starts_with('/') {
            return Ok(Line::Command(line.parse()?));
        }
        Ok(Line::Prompt(line.to_string()))
    }
}

/// The canonical name of a typed command word, if it is one.
pub fn canonical(word: &str) -> Option<&'static str> {
    let word = word.trim_start_matches('/').to_ascii_lowercase();
    COMMANDS
        .iter()
        .map(|(name, _, _)| *name)
        .find(|name| *name == word)
        .or_else(|| {
            ALIASES
                .iter()
                .find(|(alias, _)| *alias == word)
                .map(|(_, name)| *name)
        })
}

impl FromStr for Command {
    type Err = anyhow::Error;

    fn from_str(line: &str) -> Result<Command> {
        let line = line.trim();
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        let Some(name) = canonical(word) else {
            bail!("unknown command {word}; /help lists the commands");
        };
        let arg = || (!rest.is_empty()).then(|| rest.to_string());
        let required = |what: &str| match arg() {
            Some(value) => Ok(value),
            None => bail!("/{name} needs {what}; usage: {}", usage(name)),
        };
        Ok(match name {
            "attach" => Command::Attach(split_paths(rest)?),
            "detach" => Command::Detach,
            "paste" => Command::Paste,
            "variants" => parse_variants(rest)?,
            "pick" => Command::Pick(
                turn_label(name, Some(required("a take, such as 3b")?))?.unwrap_or_default(),
            ),
            "sheet" => Command::Sheet(turn_label(name, arg())?),
            "compare" => match rest.split_whitespace().collect::<Vec<_>>().as_slice() {
                [a, b] => Command::Compare(a.to_string(), b.to_string()),
                _ => bail!("usage: {}", usage("compare")),
            },
            "save" => Command::Save(arg()),
            "load" => Command::Load(required("a session name")?),
            "new" => Command::New(arg()),
            "sessions" => Command::Sessions,
            "history" if rest == "--all" => Command::Tree,
            "history" => Command::History,
            "branch" => parse_branch(rest)?,
            "undo" => Command::Undo,
            "redo" => Command::Redo,
            "retry" => Command::Retry,
            "tree" => Command::Tree,
            "delete" => parse_delete(rest)?,
            "export" => Command::Export(match split_paths(rest)?.as_slice() {
                [] => None,
                [dir] => Some(dir.clone()),
                _ => bail!("/export takes one directory"),
            }),
            "show" => Command::Show(turn_label(name, arg())?),
            "open" => Command::Open(turn_label(name, arg())?),
            "preview" => Command::Preview(
                match required("on, off or auto")?.to_ascii_lowercase().as_str() {
                    setting @ ("on" | "off" | "auto") => setting.to_string(),
                    other => bail!("/preview takes on, off or auto, not {other:?}"),
                },
            ),
            "model" => parse_model(rest)?,
            "aspect" => Command::Aspect(required("a ratio such as 16:9, or auto")?),
            "size" => Command::Size(required("512, 1K, 2K, 4K or auto")?),
            "thoughts" => Command::Thoughts(on_off(name, arg())?),
            "think" => Command::Think(
                match required("minimal, high or auto")?
                    .to_ascii_lowercase()
                    .as_str()
                {
                    "auto" | "default" => None,
                    level @ ("minimal" | "high") => Some(level.to_string()),
                    other => bail!("/think takes minimal, high or auto, not {other:?}"),
                },
            ),
            "search" => Command::Search(on_off(name, arg())?),
            "stream" => Command::Stream(on_off(name, arg())?),
            "transport" => Command::Transport(required("generate or interactions")?.parse()?),
            "settings" => Command::Settings,
            "cost" => Command::Cost,
            "context" => Command::Context(parse_context(rest)?),
            "fresh" => Command::Fresh,
            "help" => Command::Help(arg()),
            "quit" => Command::Quit,
            _ => unreachable!("every name in COMMANDS has an arm above"),
        })
    }
}

/// An optional turn label (`3`, `3b`) for `/show` and `/open`.
fn turn_label(command: &str, arg: Option<String>) -> Result<Option<String>> {
    match arg {
        None => Ok(None),
        Some(text) => match text.parse::<TurnRef>() {
            Ok(_) => Ok(Some(text.trim_start_matches('@').to_string())),
            Err(_) => bail!("/{command} takes a turn (3, or 3b for a take), not {text:?}"),
        },
    }
}

/// The most takes `/variants` asks for at once (two rows of a contact sheet).
pub const MAX_VARIANTS: usize = 8;

/// `/variants N PROMPT`.
fn parse_variants(rest: &str) -> Result<Command> {
    let (n, prompt) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let n = match n.parse::<usize>() {
        Ok(n) if (2..=MAX_VARIANTS).contains(&n) => n,
        _ => bail!(
            "/variants takes a number of takes from 2 to {MAX_VARIANTS}, then the prompt; usage: {}",
            usage("variants")
        ),
    };
    let prompt = prompt.trim();
    if prompt.is_empty() {
        bail!(
            "/variants needs a prompt after the number; usage: {}",
            usage("variants")
        );
    }
    Ok(Command::Variants {
        n,
        prompt: prompt.to_string(),
    })
}

/// `/delete NAME [--yes]`.
fn parse_delete(rest: &str) -> Result<Command> {
    let mut name = None;
    let mut yes = false;
    for word in rest.split_whitespace() {
        match word {
            "--yes" | "-y" => yes = true,
            _ if name.is_none() => name = Some(word.to_string()),
            _ => bail!("usage: {}", usage("delete")),
        }
    }
    match name {
        Some(name) => Ok(Command::Delete { name, yes }),
        None => bail!("/delete needs a session name; usage: {}", usage("delete")),
    }
}

/// `/model [ID] [--fit]`.
fn parse_model(rest: &str) -> Result<Command> {
    let mut id = None;
    let mut fit = false;
    for word in rest.split_whitespace() {
        match word {
            "--fit" => fit = true,
            _ if id.is_none() => id = Some(word.to_string()),
            _ => bail!("usage: {}", usage("model")),
        }
    }
    Ok(Command::Model { id, fit })
}

/// `/context`, `/context full`, `/context last N`.
fn parse_context(rest: &str) -> Result<Option<ContextPolicy>> {
    let words: Vec<&str> = rest.split_whitespace().collect();
    Ok(match words.as_slice() {
        [] => None,
        ["full"] => Some(ContextPolicy::Full),
        ["last", n] => match n.parse::<usize>() {
            Ok(turns) if turns >= 1 => Some(ContextPolicy::Last { turns }),
            _ => bail!("/context last takes a number of turns (1 or more), not {n:?}"),
        },
        _ => bail!("usage: {}", usage("context")),
    })
}

/// `/branch [NAME] [@TURN]`, in either order.
fn parse_branch(rest: &str) -> Result<Command> {
    let mut name = None;
    let mut at = None;
    for word in rest.split_whitespace() {
        if word.starts_with('@') {
            at = Some(word.parse()?);
        } else if name.is_none() {
            name = Some(word.to_string());
        } else {
            bail!("usage: {}", usage("branch"));
        }
    }
    Ok(Command::Branch { name, at })
}

/// `on` or `off` (also yes/no, true/false, 1/0).
fn on_off(name: &str, value: Option<String>) -> Result<bool> {
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("on" | "yes" | "true" | "1") => Ok(true),
        Some("off" | "no" | "false" | "0") => Ok(false),
        _ => bail!("/{name} takes on or off; usage: {}", usage(name)),
    }
}

pub fn usage(name: &str) -> &'static str {
    COMMANDS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map_or("", |(_, usage, _)| usage)
}

/// Paths separated by spaces; quotes or backslashes keep spaces inside one path (as a shell would).
pub fn split_paths(text: &str) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                current.extend(chars.next());
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    paths.push(PathBuf::from(expand_home(&std::mem::take(&mut current))));
                    in_word = false;
                }
            }
            (None, c) => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        bail!("a quote in the path list is not closed");
    }
    if in_word {
        paths.push(PathBuf::from(expand_home(&current)));
    }
    Ok(paths)
}

fn expand_home(path: &str) -> String {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => format!("{}/{rest}", home.to_string_lossy()),
        _ => path.to_string(),
    }
}

/// `/help` text: every command, or one.
pub fn help(topic: Option<&str>) -> Result<String> {
    if let Some(topic) = topic {
        let entry = canonical(topic).and_then(|name| COMMANDS.iter().find(|(n, _, _)| *n == name));
        let Some((_, usage, what)) = entry else {
            bail!("no command {topic}; /help lists the commands");
        };
        return Ok(format!("{usage}\n  {what}"));
    }
    let width = COMMANDS
        .iter()
        .map(|(_, usage, _)| usage.len())
        .max()
        .unwrap_or(0);
    let mut text = String::from(
        "Type a prompt to send it with the thread (all of it each turn, or only what is new with /transport \
         interactions). Commands:\n",
    );
    for (_, usage, what) in COMMANDS {
        text.push_str(&format!("  {usage:<width$}  {what}\n"));
    }
    text.push_str(
        "Alt-Enter, or a line ending in \\, continues a prompt on the next line; Tab completes (twice: lists).\n\
         Ctrl-C cancels a request or clears the line; Ctrl-D leaves. Start a prompt with // to begin it with /.",
    );
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(line: &str) -> Command {
        match line.parse::<Line>().unwrap() {
            Line::Command(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn setting_switches_parse() {
        assert_eq!(cmd("/thoughts on"), Command::Thoughts(true));
        assert_eq!(
            cmd("/transport interactions"),
            Command::Transport(crate::settings::Transport::Interactions)
        );
        assert!("/transport carrier-pigeon".parse::<Command>().is_err());
        assert_eq!(cmd("/search OFF"), Command::Search(false));
        assert_eq!(cmd("/stream on"), Command::Stream(true));
        assert_eq!(cmd("/think High"), Command::Think(Some("high".into())));
        assert_eq!(cmd("/think auto"), Command::Think(None));
        assert_eq!(cmd("/cost"), Command::Cost);
        assert!("/think low".parse::<Line>().is_err());
        let e = "/search maybe".parse::<Line>().unwrap_err().to_string();
        assert!(e.contains("usage: /search on|off"), "{e}");
    }

    #[test]
    fn lines_parse() {
        assert_eq!(
            "  a red fox ".parse::<Line>().unwrap(),
            Line::Prompt("a red fox".into())
        );
        assert_eq!("".parse::<Line>().unwrap(), Line::Empty);
        assert_eq!(
            "//etc is a path".parse::<Line>().unwrap(),
            Line::Prompt("/etc is a path".into())
        );
        assert_eq!(cmd("/resume fox"), Command::Load("fox".into()));
        assert_eq!(cmd("/EXIT"), Command::Quit);
        assert_eq!(cmd("/show 3"), Command::Show(Some("3".into())));
        assert_eq!(cmd("/show @3b"), Command::Show(Some("3b".into())));
        assert_eq!(cmd("/open"), Command::Open(None));
        assert_eq!(
            cmd("/delete fox --yes"),
            Command::Delete {
                name: "fox".into(),
                yes: true
            }
        );
        assert_eq!(
            cmd("/model gemini-3-pro-image --fit"),
            Command::Model {
                id: Some("gemini-3-pro-image".into()),
                fit: true
            }
        );
        assert_eq!(cmd("/preview OFF"), Command::Preview("off".into()));
        assert_eq!(
            cmd("/variants 4 a red fox"),
            Command::Variants {
                n: 4,
                prompt: "a red fox".into()
            }
        );
        assert!("/variants 1 a fox".parse::<Line>().is_err());
        assert!("/variants 4".parse::<Line>().is_err());
        assert_eq!(cmd("/pick 3c"), Command::Pick("3c".into()));
        assert!("/pick".parse::<Line>().is_err());
        assert_eq!(
            cmd("/compare 3a @fox:2"),
            Command::Compare("3a".into(), "@fox:2".into())
        );
        assert_eq!(cmd("/sheet"), Command::Sheet(None));
        assert!("/preview maybe".parse::<Line>().is_err());
        assert!("/open x".parse::<Line>().is_err());
        assert_eq!(cmd("/save"), Command::Save(None));
        assert_eq!(cmd("/history --all"), Command::Tree);
        assert_eq!(cmd("/context"), Command::Context(None));
        assert_eq!(
            cmd("/context last 2"),
            Command::Context(Some(ContextPolicy::Last { turns: 2 }))
        );
        assert_eq!(
            cmd("/context full"),
            Command::Context(Some(ContextPolicy::Full))
        );
        assert!("/context last 0".parse::<Line>().is_err());
        assert!("/context half".parse::<Line>().is_err());
        assert_eq!(
            cmd("/branch @3b night"),
            Command::Branch {
                name: Some("night".into()),
                at: Some(TurnRef {
                    number: 3,
                    take: Some(1)
                })
            }
        );
        assert_eq!(
            cmd("/branch"),
            Command::Branch {
                name: None,
                at: None
            }
        );
        assert!("/branch @0".parse::<Line>().is_err());
        assert!("/branch a b".parse::<Line>().is_err());
        assert!("/show zero".parse::<Line>().is_err());
        assert!(
            "/load"
                .parse::<Line>()
                .unwrap_err()
                .to_string()
                .contains("usage: /load NAME")
        );
        assert!(
            "/frobnicate"
                .parse::<Line>()
                .unwrap_err()
                .to_string()
                .contains("unknown command")
        );
    }

    #[test]
    fn attach_paths_split_like_a_shell() {
        assert_eq!(
            cmd(r#"/attach a.png "my photo.jpg" b\ c.webp"#),
            Command::Attach(vec![
                "a.png".into(),
                "my photo.jpg".into(),
                "b c.webp".into()
            ])
        );
        assert_eq!(cmd("/attach"), Command::Attach(vec![]));
        assert!(split_paths("'open").is_err());
    }

    #[test]
    fn help_comes_from_the_table() {
        let all = help(None).unwrap();
        for (_, usage, _) in COMMANDS {
            assert!(all.contains(usage));
        }
        assert!(help(Some("/resume")).unwrap().starts_with("/load NAME"));
        assert!(help(Some("nope")).is_err());
    }
}
