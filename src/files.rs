//! Files peel reads from outside and files it writes: bounded reads that never block on a FIFO or read a device
//! forever, and writes that create a new file whole or not at all, never replacing or following anything.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Opens `path` for reading and checks, on the opened file itself (fstat, not the path: no race), that it is a
/// regular file. Opened non-blocking, so a FIFO with no writer is refused at once instead of blocking in open.
pub fn open_regular(path: &Path) -> Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = options
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is {}, not a regular file", path.display(), kind(&meta));
    }
    Ok(file)
}

fn kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else {
        "a special file"
    }
}

/// Why a bounded read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: over the {limit} limit")]
    TooLarge { path: String, limit: String },
    #[error("{0:#}")]
    Other(anyhow::Error),
}

/// Reads a regular file of at most `max` bytes. The size is checked as the bytes are read, not taken from the
/// metadata (which says 0 for `/proc` files and devices), so nothing past `max + 1` bytes is ever read.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    let file = open_regular(path).map_err(ReadError::Other)?;
    let too_large = || ReadError::TooLarge {
        path: path.display().to_string(),
        limit: crate::text::bytes(max),
    };
    // A regular file's length is known: refuse a big one before reading any of it.
    let size = file.metadata().map_or(0, |m| m.len());
    if size > max {
        return Err(too_large());
    }
    let hint = size.min(max + 1);
    let mut bytes = Vec::with_capacity(hint as usize);
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))
        .map_err(ReadError::Other)?;
    if bytes.len() as u64 > max {
        return Err(too_large());
    }
    Ok(bytes)
}

/// A file that was there already: peel did not write it for this turn, so it is left alone.
#[derive(Debug, thiserror::Error)]
#[error("{} already exists; peel does not overwrite a file it did not write", .0.display())]
pub struct Exists(pub PathBuf);

/// Writes a new file at `path` whole or not at all (a reader never sees half of it). The bytes go to a temp file
/// with an unpredictable name, created exclusively in the same folder, which is then linked into place only if
/// nothing (file, folder or symlink, even a dangling one) is at `path`: nothing is followed and nothing replaced.
/// Fails with [`Exists`] (downcastable) when `path` is taken.
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if taken(path) {
        return Err(Exists(path.to_path_buf()).into());
    }
    let mut file = tempfile::Builder::new()
        .prefix(".peel-")
        .suffix(".part")
        .tempfile_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.flush())
        .with_context(|| format!("writing {}", path.display()))?;
    // tempfile creates files readable by their owner only; an image or an export is an ordinary file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    match file.persist_noclobber(path) {
        Ok(_) => Ok(()),
        Err(e) if e.error.kind() == ErrorKind::AlreadyExists => {
            Err(Exists(path.to_path_buf()).into())
        }
        Err(e) => Err(e.error).with_context(|| format!("writing {}", path.display())),
    }
}

/// Something is at `path`: a file, a folder, or a symlink (even one pointing nowhere).
pub fn taken(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Writes a new file at `path`, or, when that name is taken by a file peel did not write, at the first free name
/// `stem~2.ext`, `stem~3.ext`, ... Returns where the bytes went.
pub fn write_new_or_next(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let mut candidate = path.to_path_buf();
    for n in 2..=1000 {
        match write_new(&candidate, bytes) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.is::<Exists>() => candidate = numbered(path, n),
            Err(e) => return Err(e),
        }
    }
    bail!(
        "{} and 999 numbered names beside it are all taken",
        path.display()
    )
}

/// `dir/3.jpg` → `dir/3~n.jpg`.
fn numbered(path: &Path, n: u32) -> PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let name = match path.extension() {
        Some(ext) => format!("{stem}~{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}~{n}"),
    };
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_is_whole_and_readable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/1.png");
        write_new(&path, b"abc").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "no temp file is left: {leftovers:?}");
    }

    #[test]
    fn an_existing_file_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.png");
        std::fs::write(&path, b"theirs").unwrap();
        let e = write_new(&path, b"ours").unwrap_err();
        assert!(e.is::<Exists>(), "{e:#}");
        assert_eq!(std::fs::read(&path).unwrap(), b"theirs");
        let went = write_new_or_next(&path, b"ours").unwrap();
        assert_eq!(went, dir.path().join("1~2.png"));
        assert_eq!(std::fs::read(&went).unwrap(), b"ours");
        assert_eq!(std::fs::read(&path).unwrap(), b"theirs");
    }

    /// A planted symlink, dangling or not, is neither followed nor replaced.
    #[cfg(unix)]
    #[test]
    fn a_planted_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside.txt");
        std::fs::write(&outside, b"precious").unwrap();
        let folder = dir.path().join("export");
        std::fs::create_dir(&folder).unwrap();
        let link = folder.join("transcript.md");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let dangling = folder.join("thread.json");
        std::os::unix::fs::symlink(dir.path().join("created-through-link"), &dangling).unwrap();
        assert!(write_new(&link, b"evil").unwrap_err().is::<Exists>());
        assert!(write_new(&dangling, b"evil").unwrap_err().is::<Exists>());
        assert_eq!(std::fs::read(&outside).unwrap(), b"precious");
        assert!(!dir.path().join("created-through-link").exists());
    }

    #[cfg(unix)]
    #[test]
    fn special_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo has no other preconditions.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let started = std::time::Instant::now();
        let e = format!("{}", read_bounded(&fifo, 10).unwrap_err());
        assert!(e.contains("FIFO"), "{e}");
        let e = format!("{}", read_bounded(Path::new("/dev/zero"), 10).unwrap_err());
        assert!(e.contains("device"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn reads_stop_at_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, vec![0u8; 1000]).unwrap();
        assert_eq!(read_bounded(&path, 1000).unwrap().len(), 1000);
        assert!(matches!(
            read_bounded(&path, 999),
            Err(ReadError::TooLarge { .. })
        ));
    }
}
