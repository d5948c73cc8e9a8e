//! Where a session's images live on disk: `<out root>/<session>/<label>[-k].<ext>`, written whole or not at all.

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

/// Writes a file whole or not at all (a reader never sees half an image).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("an output path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = path.with_extension("part");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Writes a new image at `path`, or beside it when a different file already has that name (peel never replaces
/// a file it did not write for this turn). Returns where it went.
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let mut candidate = path.to_path_buf();
    let mut n = 2;
    loop {
        match std::fs::read(&candidate) {
            // The same image is already there (written earlier for this turn, e.g. by /show).
            Ok(existing) if existing == bytes => return Ok(candidate),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_atomically(&candidate, bytes)?;
                return Ok(candidate);
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot write {}", candidate.display()));
            }
        }
        candidate = numbered(path, n);
        n += 1;
    }
}

/// `dir/3.jpg` → `dir/3.2.jpg`.
fn numbered(path: &Path, n: u32) -> PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let name = match path.extension() {
        Some(ext) => format!("{stem}.{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{n}"),
    };
    path.with_file_name(name)
}

/// Renames `from` to `to` when `from` holds exactly `expected` (a file peel wrote) and `to` is free.
pub fn rename_ours(from: &Path, to: &Path, expected: &[u8]) -> Result<bool> {
    if to.exists() {
        return Ok(false);
    }
    match std::fs::read(from) {
        Ok(bytes) if bytes == expected => {
            std::fs::rename(from, to)
                .with_context(|| format!("renaming {} to {}", from.display(), to.display()))?;
            Ok(true)
        }
        _ => Ok(false),
    }
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
        assert_eq!(beside, dir.path().join("fox/1.2.png"));
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        assert_eq!(std::fs::read(&beside).unwrap(), b"two");
        let to = dir.path().join("fox/1a.png");
        assert!(!rename_ours(&path, &to, b"other").unwrap());
        assert!(rename_ours(&path, &to, b"one").unwrap());
        assert!(!path.exists() && to.exists());
    }
}
