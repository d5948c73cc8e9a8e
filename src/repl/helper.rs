//! Tab completion and hints for the REPL: slash commands, and file paths after `/attach`.

use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::hint::Hinter;
use rustyline::{Context, Helper, Highlighter, Validator};

use super::command::{COMMANDS, canonical, usage};

#[derive(Helper, Highlighter, Validator)]
pub struct PeelHelper {
    files: FilenameCompleter,
}

impl PeelHelper {
    pub fn new() -> PeelHelper {
        PeelHelper {
            files: FilenameCompleter::new(),
        }
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
        if let Some(word) = before.strip_prefix('/')
            && !word.contains(char::is_whitespace)
        {
            let candidates = COMMANDS
                .iter()
                .filter(|(name, _, _)| name.starts_with(word))
                .map(|(name, _, _)| Pair {
                    display: format!("/{name}"),
                    replacement: format!("/{name} "),
                })
                .collect();
            return Ok((0, candidates));
        }
        if before.starts_with("/attach ") {
            return self.files.complete(line, pos, ctx);
        }
        Ok((pos, Vec::new()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use rustyline::history::DefaultHistory;

    fn complete(line: &str) -> Vec<String> {
        let history = DefaultHistory::new();
        let ctx = Context::new(&history);
        let (_, pairs) = PeelHelper::new().complete(line, line.len(), &ctx).unwrap();
        pairs.into_iter().map(|p| p.replacement).collect()
    }

    #[test]
    fn completes_commands_and_paths() {
        assert_eq!(complete("/hi"), ["/history "]);
        let s = complete("/s");
        for expected in ["/save ", "/sessions ", "/show ", "/size ", "/settings "] {
            assert!(s.iter().any(|c| c == expected), "{expected} in {s:?}");
        }
        assert!(s.iter().all(|c| c.starts_with("/s")));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("photo.png"), b"x").unwrap();
        let line = format!("/attach {}/pho", dir.path().display());
        assert!(complete(&line).iter().any(|c| c.ends_with("photo.png")));
        assert!(complete("a red fox").is_empty());
    }

    #[test]
    fn hints_show_arguments() {
        let history = DefaultHistory::new();
        let ctx = Context::new(&history);
        assert_eq!(
            PeelHelper::new().hint("/load", 5, &ctx).as_deref(),
            Some(" NAME")
        );
        assert_eq!(PeelHelper::new().hint("/quit", 5, &ctx), None);
    }
}
