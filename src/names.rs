//! Identifiers: the rules for names and ids, the same whether they were typed, read from the config, or came from
//! outside (an imported thread.json, a stored row written by an older peel). Checked before a name reaches a path or
//! the database, and before a model id reaches a URL.

use anyhow::{Result, bail};

/// The longest session name, in bytes.
pub const MAX_SESSION_NAME: usize = 64;

/// The longest model id, in bytes.
pub const MAX_MODEL_ID: usize = 100;

/// Session names are folder names and words in commands: letters, digits, `-`, `_`, `.`, `~`; up to 64 bytes; not
/// starting with `.`, `-` or `@`.
pub fn validate_session_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_SESSION_NAME
        && !name.starts_with(['.', '-', '@'])
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'));
    if !ok {
        bail!(
            "{name:?} is not a usable session name: use letters, digits, '-', '_', '.' or '~' (up to \
             {MAX_SESSION_NAME})"
        );
    }
    Ok(())
}

/// `base` cut so that `base` + `suffix` is a valid session name's length (at a character boundary).
pub fn fit_session_name(base: &str, suffix: &str) -> String {
    let room = MAX_SESSION_NAME.saturating_sub(suffix.len());
    let mut end = base.len().min(room);
    while !base.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{suffix}", &base[..end])
}

/// A model id goes into the URL path (`.../models/{id}:generateContent`): ASCII letters, digits, `-`, `_` and `.`,
/// starting with a letter or digit, up to 100 bytes. Nothing that could end the segment or start a query.
pub fn validate_model_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= MAX_MODEL_ID
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        bail!(
            "{:?} is not a model id: use letters, digits, '-', '_' and '.' (up to {MAX_MODEL_ID}), like \
             gemini-3-pro-image",
            crate::untrusted::sanitize(&id.chars().take(120).collect::<String>())
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names() {
        assert!(validate_session_name("fox~2").is_ok());
        assert!(validate_session_name("../etc").is_err());
        assert!(validate_session_name("a b").is_err());
        assert!(validate_session_name("").is_err());
        assert!(validate_session_name(&"x".repeat(65)).is_err());
        let long = "y".repeat(64);
        let fitted = fit_session_name(&long, "~12");
        assert_eq!(fitted.len(), 64);
        assert!(validate_session_name(&fitted).is_ok());
        assert_eq!(fit_session_name(&"é".repeat(40), "~2").len(), 64);
    }

    #[test]
    fn model_ids() {
        for good in [
            "gemini-3-pro-image",
            "gemini-3.1-flash-image",
            "my_tuned.model-2",
        ] {
            assert!(validate_model_id(good).is_ok(), "{good}");
        }
        for bad in [
            "../../../v1beta/evil?x=1#",
            "a/b",
            "m:generateContent",
            "",
            "-x",
            "a b",
            "a%2F",
            "a\u{1b}]0;t\u{7}",
        ] {
            assert!(validate_model_id(bad).is_err(), "{bad}");
        }
        assert!(validate_model_id(&"m".repeat(101)).is_err());
    }
}
