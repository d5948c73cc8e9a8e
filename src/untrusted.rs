//! Text from outside (a server, a gateway, an imported thread, a helper command, the clipboard) on its way to a
//! terminal. One sanitiser for all of it: what is stored stays as received; what is shown is made inert.

use std::fmt::Write as _;

/// Bidirectional controls: they reorder what the terminal shows (`U+202E` makes `gpj.exe` read as `exe.jpg`).
const BIDI: &[char] = &[
    '\u{061c}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}',
    '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
];

/// `text` with terminal control sequences and bidi controls made harmless: ESC, the other C0 controls (but newline
/// and tab), DEL, the C1 controls and the bidi controls are shown as visible escapes (`\u{1b}`) instead of being
/// obeyed; a carriage return is dropped (it would let a line overwrite itself).
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            '\r' => {}
            c if c.is_control() || BIDI.contains(&c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Whether `text` would come out of [`sanitize`] unchanged.
pub fn is_inert(text: &str) -> bool {
    !text
        .chars()
        .any(|c| (c.is_control() && c != '\n' && c != '\t') || BIDI.contains(&c))
}

/// `text` with every occurrence of `secret` (as it is, and percent-encoded as it travels in a `?key=` URL) replaced
/// by `***`. An empty secret changes nothing.
pub fn scrub(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_string();
    }
    let mut out = text.replace(secret, "***");
    let encoded = percent_encode(secret);
    if encoded != secret {
        out = out.replace(&encoded, "***");
    }
    out
}

/// Whether `text` holds `secret` in any form [`scrub`] removes.
pub fn contains_secret(text: &str, secret: &str) -> bool {
    !secret.is_empty() && (text.contains(secret) || text.contains(&percent_encode(secret)))
}

/// The form a value takes in a URL query (RFC 3986 unreserved characters stay).
pub fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_sequences_and_bidi_are_neutralised() {
        let evil = "ok\x1b]52;c;cGF5bG9hZA==\x07 \x1b]0;pwned\x07 \x1b[2J\u{9b}31m\r\nnext\tline \u{202e}gpj.exe\u{2066}\u{200f}\u{61c}";
        let clean = sanitize(evil);
        assert!(is_inert(&clean), "{clean:?}");
        assert!(clean.contains("\\u{1b}]52;c;"));
        assert!(clean.contains("\\u{202e}gpj.exe\\u{2066}\\u{200f}\\u{61c}"));
        assert!(clean.contains("\nnext\tline"));
        assert!(!is_inert("\u{202d}"));
        assert!(is_inert("plain ünïcode\n"));
    }

    #[test]
    fn secrets_are_scrubbed_raw_and_percent_encoded() {
        assert_eq!(scrub("key=ab/c+ echo ab/c+", "ab/c+"), "key=*** echo ***");
        assert_eq!(scrub("url?key=ab%2Fc%2B", "ab/c+"), "url?key=***");
        assert!(contains_secret("x ab%2Fc%2B", "ab/c+"));
        assert_eq!(scrub("nothing", ""), "nothing");
    }

    proptest::proptest! {
        #[test]
        fn sanitized_text_is_always_inert(text in ".*") {
            proptest::prop_assert!(is_inert(&sanitize(&text)));
        }
    }
}
