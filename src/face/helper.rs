//! The REPL's line editing help: Tab completion (commands, session names, model ids, the ratios and sizes the
//! current model takes, on/off words, paths), argument hints, and multi-line prompts (a line ending in `\`).

use std::cell::RefCell;
use std::rc::Rc;

use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper, Highlighter};

use super::command::{COMMANDS, canonical, usage};
use crate::gemini::models;

/// What completion offers that changes while the REPL runs; the REPL refreshes it after each line.
#[derive(Debug, Clone, Default)]
pub struct Candidates {
    pub sessions: Vec<String>,
    pub model: String,
    /// Labels of stored images: `@3`, `@3b`, `@last`, `@fox:`.
    pub labels: Vec<String>,
}

#[derive(Helper, Highlighter)]
pub struct PeelHelper {
    files: FilenameCompleter,
    pub candidates: Rc<RefCell<Candidates>>,
}

impl PeelHelper {
    pub fn new(candidates: Rc<RefCell<Candidates>>) -> PeelHelper {
        PeelHelper {
            files: FilenameCompleter::new(),
            candidates,
        }
    }

    /// The words that may follow `/command ` (`None`: file paths).
    fn arguments(&self, command: &str) -> Option<Vec<String>> {
        let words = |list: &[&str]| list.iter().map(|w| w.to_string()).collect();
        let candidates = self.candidates.borrow();
        // What the model takes on this run's provider.
        let model = models::capabilities(&candidates.model);
        Some(match command {
            "load" | "delete" | "branch" => candidates.sessions.clone(),
            "model" => models::MODELS.iter().map(|m| m.id.to_string()).collect(),
            "aspect" => {
                let mut ratios = vec!["auto".to_string()];
                ratios.extend(model.as_ref().map_or_else(Vec::new, |m| m.ratios.clone()));
                ratios
            }
            "size" => {
                let mut sizes = vec!["auto".to_string()];
                sizes.extend(model.as_ref().map_or_else(Vec::new, |m| m.sizes.clone()));
                sizes
            }
            "thoughts" | "search" | "stream" => words(&["on", "off"]),
            "preview" => words(&["on", "off", "auto"]),
            "think" => words(&["minimal", "high", "auto"]),
            "transport" => words(&["generate", "interactions"]),
            "context" => words(&["full", "last"]),
            "help" => COMMANDS
                .iter()
                .map(|(name, _, _)| name.to_string())
                .collect(),
            "attach" | "export" => return None,
            _ => Vec::new(),
        })
    }
}

impl Completer for PeelHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        // A label anywhere: in a prompt ("the hat from @2"), after /attach, /compare, /branch.
        let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let word = &before[start..];
        if word.starts_with('@') {
            let labels = self.candidates.borrow().labels.clone();
            let candidates = labels
                .into_iter()
                .filter(|l| l.starts_with(word))
                .map(|l| Pair {
                    replacement: if l.ends_with(':') {
                        l.clone()
                    } else {
                        format!("{l} ")
                    },
                    display: l,
                })
                .collect();
            return Ok((start, candidates));
        }
        let Some(typed) = before.strip_prefix('/') else {
            return Ok((pos, Vec::new()));
        };
        let Some((word, _)) = typed.split_once(char::is_whitespace) else {
            let candidates = COMMANDS
                .iter()
                .filter(|(name, _, _)| name.starts_with(typed))
                .map(|(name, _, _)| Pair {
                    display: format!("/{name}"),
                    replacement: format!("/{name} "),
                })
                .collect();
            return Ok((0, candidates));
        };
        let Some(command) = canonical(word) else {
            return Ok((pos, Vec::new()));
        };
        let Some(arguments) = self.arguments(command) else {
            return self.files.complete(line, pos, ctx);
        };
        let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let partial = &before[start..];
        let candidates = arguments
            .into_iter()
            .filter(|a| a.starts_with(partial))
            .map(|a| Pair {
                display: a.clone(),
                replacement: format!("{a} "),
            })
            .collect();
        Ok((start, candidates))
    }
}

impl Hinter for PeelHelper {
    type Hint = String;

    /// After a complete command word, a dim reminder of its arguments.
    fn hint(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> Option<String> {
        if pos != line.len() || !line.starts_with('/') || line.contains(char::is_whitespace) {
            return None;
        }
        let name = canonical(line)?;
        let rest = usage(name).split_once(' ').map(|(_, args)| args)?;
        (format!("/{name}") == line).then(|| format!(" {rest}"))
    }
}

impl Validator for PeelHelper {
    /// A line ending in `\` continues on the next one.
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        if ctx.input().ends_with('\\') {
            Ok(ValidationResult::Incomplete)
        } else {
            Ok(ValidationResult::Valid(None))
        }
    }
}

/// A multi-line entry as sent: each `\` that ended a line is dropped, the line break kept.
pub fn join_continued(line: &str) -> String {
    line.replace("\\\n", "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustyline::history::DefaultHistory;

    fn helper() -> PeelHelper {
        PeelHelper::new(Rc::new(RefCell::new(Candidates {
            sessions: vec!["fox".into(), "fox~2".into(), "cat".into()],
            model: "gemini-3-pro-image".into(),
            labels: vec![
                "@last".into(),
                "@1".into(),
                "@2a".into(),
                "@2b".into(),
                "@cat:".into(),
            ],
        })))
    }

    fn complete(line: &str) -> Vec<String> {
        let history = DefaultHistory::new();
        let ctx = Context::new(&history);
        let (_, pairs) = helper().complete(line, line.len(), &ctx).unwrap();
        pairs.into_iter().map(|p| p.replacement).collect()
    }

    #[test]
    fn completes_commands_arguments_and_paths() {
        assert_eq!(complete("/hi"), ["/history "]);
        let s = complete("/s");
        for expected in ["/save ", "/sessions ", "/show ", "/size ", "/settings "] {
            assert!(s.iter().any(|c| c == expected), "{expected} in {s:?}");
        }
        assert_eq!(complete("/load f"), ["fox ", "fox~2 "]);
        assert_eq!(complete("/delete c"), ["cat "]);
        assert!(complete("/model gemini-3").contains(&"gemini-3.1-flash-image ".to_string()));
        let ratios = complete("/aspect ");
        assert!(ratios.contains(&"16:9 ".to_string()) && !ratios.contains(&"1:8 ".to_string()));
        assert_eq!(complete("/size "), ["auto ", "1K ", "2K ", "4K "]);
        assert_eq!(complete("/preview o"), ["on ", "off "]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("photo.png"), b"x").unwrap();
        let line = format!("/attach {}/pho", dir.path().display());
        assert!(complete(&line).iter().any(|c| c.ends_with("photo.png")));
        assert!(complete("a red fox").is_empty());
        assert_eq!(complete("put the hat from @2"), ["@2a ", "@2b "]);
        assert_eq!(complete("/attach @c"), ["@cat:"]);
    }

    #[test]
    fn hints_show_arguments() {
        let history = DefaultHistory::new();
        let ctx = Context::new(&history);
        assert_eq!(helper().hint("/load", 5, &ctx).as_deref(), Some(" NAME"));
        assert_eq!(helper().hint("/quit", 5, &ctx), None);
    }

    #[test]
    fn continued_lines_join() {
        assert_eq!(join_continued("a red fox\\\nat dawn"), "a red fox\nat dawn");
    }
}
