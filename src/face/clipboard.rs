//! The image on the system clipboard, through the platform's own tools: `wl-paste` (Wayland), `xclip` (X11),
//! `pngpaste` (macOS). No clipboard library: these are what the desktop already has, and a test puts a stand-in on
//! PATH. What a tool prints is checked to be an image by its bytes (xclip prints the text when there is no image).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::engine::images::{self, MAX_ATTACHMENT_BYTES};

/// A clipboard tool gets this long to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The clipboard's image, as bytes; an error that says why there is none.
pub fn image() -> Result<Vec<u8>> {
    let wayland = std::env::var_os("WAYLAND_DISPLAY").is_some();
    let x11 = std::env::var_os("DISPLAY").is_some();
    let mut tried = Vec::new();
    let tools: [(&str, bool); 3] = [
        ("wl-paste", wayland || !x11),
        ("xclip", x11 || !wayland),
        ("pngpaste", cfg!(target_os = "macos")),
    ];
    for (tool, fits) in tools {
        if !fits || !on_path(tool) {
            continue;
        }
        tried.push(tool);
        let types = match tool {
            "wl-paste" => run(tool, &["--list-types"])?,
            "xclip" => run(tool, &["-selection", "clipboard", "-t", "TARGETS", "-o"])?,
            _ => b"image/png".to_vec(),
        };
        let types = String::from_utf8_lossy(&types);
        let Some(mime) = types
            .lines()
            .map(str::trim)
            .find(|t| ["image/png", "image/jpeg", "image/webp"].contains(t))
        else {
            let what = types.lines().map(str::trim).find(|t| !t.is_empty());
            bail!(
                "the clipboard holds no image{}",
                what.map_or(String::new(), |t| format!(
                    " (it holds {})",
                    crate::text::sanitize(&t.chars().take(40).collect::<String>())
                ))
            );
        };
        let bytes = match tool {
            "wl-paste" => run(tool, &["--type", mime])?,
            "xclip" => run(tool, &["-selection", "clipboard", "-t", mime, "-o"])?,
            _ => run(tool, &["-"])?,
        };
        if images::sniff(&bytes).is_none() {
            bail!("the clipboard's content is not an image peel can send");
        }
        return Ok(bytes);
    }
    if tried.is_empty() {
        bail!(
            "no clipboard tool found: install wl-clipboard (Wayland), xclip (X11) or pngpaste (macOS), or save the \
             image and /attach it"
        );
    }
    bail!("the clipboard holds no image")
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

/// A tool's stdout, at most an attachment's worth, within the timeout.
fn run(tool: &str, args: &[&str]) -> Result<Vec<u8>> {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("could not run {tool}"))?;
    let mut stdout = child
        .stdout
        .take()
        .context("no output from the clipboard tool")?;
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let read = (&mut stdout)
            .take(MAX_ATTACHMENT_BYTES + 1)
            .read_to_end(&mut bytes);
        read.map(|_| bytes)
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{tool} did not answer within {} s", TIMEOUT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let bytes = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reading from {tool} failed"))??;
    if bytes.len() as u64 > MAX_ATTACHMENT_BYTES {
        bail!(
            "the clipboard's image is over the {} limit for one image",
            crate::text::bytes(MAX_ATTACHMENT_BYTES)
        );
    }
    if !status.success() {
        bail!("the clipboard holds no image ({tool} found none)");
    }
    Ok(bytes)
}
