//! Where a session's images live on disk: `<out root>/<session>/<label>[-k].<ext>`, written whole or not at all,
//! and never over a file peel did not write (see [`crate::files`] for how).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Where a session's images go: `OUT/<session>`.
pub fn session_dir(out_dir: &Path, session: &str) -> PathBuf {
    out_dir.join(safe_dir_name(session))
}

/// `<turn>[-k].<ext>`: the first image of a turn is `3.jpg` (or `3b.jpg` for a second take), further ones
/// `3-2.jpg`, ...
pub fn file_name(turn: &str, index: usize, ext: &str) -> String {
    if index == 0 {
        format!("{turn}.{ext}")
    } else {
        format!("{turn}-{}.{ext}", index + 1)
    }
}

/// `OUT/<session>/<turn>[-k].<ext>`.
pub fn output_path(out_dir: &Path, session: &str, turn: &str, index: usize, ext: &str) -> PathBuf {
    session_dir(out_dir, session).join(file_name(turn, index, ext))
}

/// Session names become directory names: no separators or dot-dot tricks.
fn safe_dir_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    match cleaned.as_str() {
        "" | "." | ".." => "_".to_string(),
        _ => cleaned,
    }
}

/// Writes a new image at `path`, or beside it (`3~2.jpg`) when another file has that name: peel never replaces a
/// file it did not write for this turn. When that very image is already at `path` (written earlier, e.g. by
/// `/show`), nothing is written. Returns where it is.
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    if holds(path, bytes) {
        return Ok(path.to_path_buf());
    }
    crate::files::write_new_or_next(path, bytes)
}

/// A file whole, written once: an export's transcript or thread.json, refused if the name is taken.
pub fn write_once(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::files::write_new(path, bytes)
}

/// `path` is a regular file holding exactly `bytes`.
fn holds(path: &Path, bytes: &[u8]) -> bool {
    crate::files::read_bounded(path, bytes.len() as u64).is_ok_and(|existing| existing == bytes)
}

/// Gives `from` the name `to` when `from` holds exactly `expected` (a file peel wrote) and `to` is free. Linked,
/// then unlinked, so nothing at `to` is ever replaced.
pub fn rename_ours(from: &Path, to: &Path, expected: &[u8]) -> Result<bool> {
    if crate::files::taken(to) || !holds(from, expected) {
        return Ok(false);
    }
    match std::fs::hard_link(from, to) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("renaming {} to {}", from.display(), to.display()));
        }
    }
    std::fs::remove_file(from)
        .with_context(|| format!("renaming {} to {}", from.display(), to.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_paths() {
        let out = Path::new("/o");
        assert_eq!(
            output_path(out, "fox", "3", 0, "jpg"),
            Path::new("/o/fox/3.jpg")
        );
        assert_eq!(
            output_path(out, "fox", "3", 1, "png"),
            Path::new("/o/fox/3-2.png")
        );
        assert_eq!(
            output_path(out, "../x", "1", 0, "jpg"),
            Path::new("/o/.._x/1.jpg")
        );
        assert_eq!(
            output_path(out, "..", "1", 0, "jpg"),
            Path::new("/o/_/1.jpg")
        );
        assert_eq!(
            output_path(out, "fox", "3b", 0, "jpg"),
            Path::new("/o/fox/3b.jpg")
        );
    }

    #[test]
    fn new_images_never_replace_another_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fox/1.png");
        assert_eq!(write_new(&path, b"one").unwrap(), path);
        assert_eq!(
            write_new(&path, b"one").unwrap(),
            path,
            "the same image stays"
        );
        let beside = write_new(&path, b"two").unwrap();
        assert_eq!(beside, dir.path().join("fox/1~2.png"));
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        assert_eq!(std::fs::read(&beside).unwrap(), b"two");
        let to = dir.path().join("fox/1a.png");
        assert!(!rename_ours(&path, &to, b"other").unwrap());
        assert!(rename_ours(&path, &to, b"one").unwrap());
        assert!(!path.exists() && to.exists());
    }
}
