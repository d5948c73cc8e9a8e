//! The prompts file of `peel batch FILE`: one prompt a line, or JSONL objects with a prompt, its reference images
//! and its own model and settings. Blank lines and lines starting with `#` are skipped. Every line is checked
//! before anything is submitted: a batch is paid for, so one bad line stops the whole file.
//!
//! A JSONL line: `{"prompt": "a red fox", "references": ["fox.png"], "model": "gemini-3.1-flash-image",
//! "aspect": "16:9", "size": "2K", "thoughts": true, "think": "high", "search": false}`; the settings may also sit
//! in a `"settings": {...}` object. Reference paths are read relative to the file's folder.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde_json::{Map, Value};

use crate::gemini::models;
use crate::settings::Settings;
use crate::untrusted::sanitize;

/// The largest prompts file read.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// One prompt of the file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PromptLine {
    /// Its line in the file, from 1.
    pub line: usize,
    pub prompt: String,
    pub references: Vec<PathBuf>,
    pub model: Option<String>,
    pub aspect: Option<String>,
    pub size: Option<String>,
    pub thoughts: Option<bool>,
    /// `Some(None)`: `"think": null` or `"auto"`, the model's own level.
    pub think: Option<Option<String>>,
    pub search: Option<bool>,
}

/// Reads and checks the prompts file.
pub fn read(path: &Path) -> Result<Vec<PromptLine>> {
    let bytes = crate::files::read_bounded(path, MAX_FILE_BYTES).map_err(|e| match e {
        crate::files::ReadError::TooLarge { limit, .. } => {
            anyhow::anyhow!(
                "{} is over the {limit} limit of a prompts file",
                path.display()
            )
        }
        crate::files::ReadError::Other(e) => {
            e.context(format!("cannot read the prompts file {}", path.display()))
        }
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let lines = parse(&text, dir)?;
    if lines.is_empty() {
        bail!(
            "{} has no prompts (blank lines and # comments are skipped)",
            path.display()
        );
    }
    Ok(lines)
}

/// The prompts of `text`; reference paths relative to `dir`.
pub fn parse(text: &str, dir: &Path) -> Result<Vec<PromptLine>> {
    let mut lines = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let parsed = if trimmed.starts_with('{') {
            json_line(trimmed, line, dir)
        } else {
            Ok(PromptLine {
                line,
                prompt: trimmed.to_string(),
                ..PromptLine::default()
            })
        };
        lines.push(parsed.with_context(|| format!("line {line}"))?);
    }
    Ok(lines)
}

fn json_line(text: &str, line: usize, dir: &Path) -> Result<PromptLine> {
    let value: Value = serde_json::from_str(text).context("not a JSON object")?;
    let Value::Object(mut fields) = value else {
        bail!("not a JSON object");
    };
    let mut parsed = PromptLine {
        line,
        ..PromptLine::default()
    };
    match fields.remove("prompt") {
        Some(Value::String(prompt)) if !prompt.trim().is_empty() => {
            parsed.prompt = prompt.trim().to_string()
        }
        Some(_) => bail!("\"prompt\" must be a text that is not empty"),
        None => bail!("a JSON line needs a \"prompt\""),
    }
    for key in ["references", "images"] {
        match fields.remove(key) {
            None => {}
            Some(Value::String(path)) => parsed.references.push(dir.join(path)),
            Some(Value::Array(paths)) => {
                for path in paths {
                    let Value::String(path) = path else {
                        bail!("\"{key}\" lists image paths (texts)");
                    };
                    parsed.references.push(dir.join(path));
                }
            }
            Some(_) => bail!("\"{key}\" lists image paths"),
        }
    }
    if let Some(settings) = fields.remove("settings") {
        let Value::Object(settings) = settings else {
            bail!("\"settings\" must be an object");
        };
        apply_settings(&mut parsed, settings)?;
    }
    apply_settings(&mut parsed, fields)?;
    Ok(parsed)
}

fn apply_settings(line: &mut PromptLine, fields: Map<String, Value>) -> Result<()> {
    let text = |key: &str, value: Value| match value {
        Value::String(text) => Ok(text),
        _ => bail!("\"{key}\" must be a text"),
    };
    let flag = |key: &str, value: Value| match value {
        Value::Bool(on) => Ok(on),
        _ => bail!("\"{key}\" must be true or false"),
    };
    for (key, value) in fields {
        match key.as_str() {
            "model" => line.model = Some(text(&key, value)?),
            "aspect" => line.aspect = Some(text(&key, value)?),
            "size" => line.size = Some(text(&key, value)?),
            "thoughts" => line.thoughts = Some(flag(&key, value)?),
            "search" => line.search = Some(flag(&key, value)?),
            "think" => {
                line.think = Some(match value {
                    Value::Null => None,
                    value => Some(text(&key, value)?).filter(|t| t != "auto"),
                })
            }
            other => bail!(
                "unknown key {:?}: a line takes prompt, references, model, aspect, size, thoughts, think, \
                 search (or them in \"settings\")",
                sanitize(other)
            ),
        }
    }
    Ok(())
}

impl PromptLine {
    /// `base` with this line's own settings over it, checked as `/model`, `/aspect` and `/size` check them (a
    /// ratio or size the model does not take is refused here, before anything is paid for). Returns a notice when
    /// a retired model id was mapped to its GA id.
    pub fn settings(&self, base: &Settings) -> Result<(Settings, Option<String>)> {
        let mut settings = base.clone();
        let mut notice = None;
        if let Some(model) = &self.model {
            let (id, mapped) = models::resolve(model);
            settings.model = id;
            notice = mapped;
        }
        if let Some(aspect) = &self.aspect {
            settings.aspect = match aspect.as_str() {
                "auto" => None,
                other => Some(models::normalize_ratio(other)?),
            };
        }
        if let Some(size) = &self.size {
            settings.size = match size.to_ascii_lowercase().as_str() {
                "auto" => None,
                other => Some(models::normalize_size(other)?),
            };
        }
        if let Some(on) = self.thoughts {
            settings.thoughts = on;
        }
        if let Some(level) = &self.think {
            settings.think = level.clone();
        }
        if let Some(on) = self.search {
            settings.search = on;
        }
        settings.generation_config()?;
        Ok((settings, notice))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_and_json_lines() {
        let text = "# foxes\na red fox at dawn\n\n{\"prompt\": \"a blue fox\", \"references\": [\"ref.png\"], \
                    \"model\": \"gemini-3.1-flash-image\", \"settings\": {\"aspect\": \"16:9\", \"size\": \"512\"}}\n\
                    {\"prompt\": \" a fox \", \"images\": \"b.png\", \"thoughts\": true, \"think\": \"auto\"}\n";
        let lines = parse(text, Path::new("/p")).unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            (lines[0].line, lines[0].prompt.as_str()),
            (2, "a red fox at dawn")
        );
        assert_eq!(lines[1].line, 4);
        assert_eq!(lines[1].references, [PathBuf::from("/p/ref.png")]);
        let (settings, _) = lines[1].settings(&Settings::default()).unwrap();
        assert_eq!(
            (
                settings.model.as_str(),
                settings.aspect.as_deref(),
                settings.size.as_deref()
            ),
            ("gemini-3.1-flash-image", Some("16:9"), Some("512"))
        );
        assert_eq!(lines[2].prompt, "a fox");
        assert_eq!(lines[2].think, Some(None));
        assert!(lines[2].settings(&Settings::default()).unwrap().0.thoughts);
    }

    #[test]
    fn a_bad_line_says_which_and_why() {
        for (text, expected) in [
            ("ok\n{\"prompt\": \"x\", \"colour\": \"red\"}", "line 2"),
            ("{\"prompt\": \"\"}", "not empty"),
            ("{\"references\": [\"a.png\"]}", "needs a \"prompt\""),
            (
                "{\"prompt\": \"x\", \"thoughts\": \"yes\"}",
                "true or false",
            ),
            ("{not json", "line 1"),
        ] {
            let error = format!("{:#}", parse(text, Path::new(".")).unwrap_err());
            assert!(error.contains(expected), "{text}: {error}");
        }
        let line = PromptLine {
            prompt: "x".into(),
            size: Some("512".into()),
            ..PromptLine::default()
        };
        assert!(
            line.settings(&Settings::default()).is_err(),
            "512 on Pro is refused before anything is sent"
        );
    }
}
