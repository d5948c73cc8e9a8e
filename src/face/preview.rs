//! Inline previews in the terminal: kitty graphics, iTerm inline images or sixel where the terminal has them
//! (inside tmux, passed through to the outer terminal when tmux allows it), coloured half-blocks elsewhere. The
//! only caller of viuer (for the blocks), which writes to stdout without checking that it is a terminal: callers
//! draw previews only when stdout is a terminal, and never while rustyline owns it.
//!
//! Sizes are in terminal cells, taken as twice as tall as wide: the preview fills as much of the terminal as the
//! image's shape allows (a tall image uses the height), leaving room for the lines under it.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use image::DynamicImage;

use super::term;

/// `--preview`, `PEEL_PREVIEW`, the config's `preview`, `/preview`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PreviewMode {
    /// The best the terminal has: kitty graphics, iTerm images, else coloured half-blocks
    #[default]
    Auto,
    Kitty,
    Iterm,
    Sixel,
    Blocks,
    Off,
}

/// How images are drawn, once decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Kitty,
    Iterm,
    Sixel,
    Blocks,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Choice {
    protocol: Protocol,
    /// Wrapped for tmux's passthrough to the outer terminal.
    passthrough: bool,
    /// Said once, at the first preview: which mode and why, when it is not the obvious one.
    notice: Option<String>,
}

/// The terminal's side of previews: what was asked, and what was chosen.
#[derive(Debug)]
pub struct Previews {
    mode: PreviewMode,
    /// `/preview off`: none until `/preview on`.
    enabled: bool,
    choice: Option<Choice>,
}

/// What the environment says about the terminal, read once (a test builds its own).
#[derive(Debug, Clone, Default)]
struct Terminal {
    tmux: bool,
    kitty: bool,
    iterm: bool,
    sixel: bool,
    truecolor: bool,
}

impl Terminal {
    fn from_env() -> Terminal {
        let var = |name: &str| std::env::var(name).unwrap_or_default();
        let (term, program) = (var("TERM"), var("TERM_PROGRAM"));
        Terminal {
            tmux: !var("TMUX").is_empty(),
            // Inside tmux, TERM and TERM_PROGRAM name tmux; the variables the outer terminal set are inherited.
            kitty: !var("KITTY_WINDOW_ID").is_empty()
                || term == "xterm-kitty"
                || program == "ghostty"
                || !var("GHOSTTY_RESOURCES_DIR").is_empty(),
            iterm: program == "iTerm.app" || var("LC_TERMINAL") == "iTerm2" || program == "WezTerm",
            sixel: ["foot", "mlterm", "contour"]
                .iter()
                .any(|t| term.starts_with(t)),
            truecolor: ["truecolor", "24bit"]
                .iter()
                .any(|t| var("COLORTERM").contains(t)),
        }
    }
}

impl Previews {
    pub fn new(mode: PreviewMode) -> Previews {
        Previews {
            mode,
            enabled: mode != PreviewMode::Off,
            choice: None,
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// For `/settings`: "on: kitty graphics", "off", ...
    pub fn describe(&mut self, on_terminal: bool) -> String {
        if !self.enabled {
            "off".to_string()
        } else if !on_terminal {
            "on, but stdout is not a terminal".to_string()
        } else {
            let choice = self.choose();
            format!("on: {}", describe(&choice))
        }
    }

    /// `/preview on|off|auto`: `on` brings back the mode peel was started with (auto when that was off).
    pub fn set(&mut self, setting: &str) -> Result<String> {
        match setting {
            "off" => self.enabled = false,
            "on" => {
                if self.mode == PreviewMode::Off {
                    self.mode = PreviewMode::Auto;
                }
                self.enabled = true;
            }
            "auto" => {
                self.mode = PreviewMode::Auto;
                self.enabled = true;
            }
            other => anyhow::bail!("/preview takes on, off or auto, not {other:?}"),
        }
        self.choice = None;
        Ok(if self.enabled {
            let choice = self.choose();
            format!("previews on: {}", describe(&choice))
        } else {
            "previews off; /preview on brings them back".to_string()
        })
    }

    fn choose(&mut self) -> Choice {
        let choice = self
            .choice
            .get_or_insert_with(|| decide(self.mode, &Terminal::from_env(), tmux_passthrough));
        choice.clone()
    }

    /// Draws `bytes` on stdout (a terminal); returns the notice to say first, the first time there is one.
    pub fn show(&mut self, bytes: &[u8]) -> Result<Option<String>> {
        if !self.enabled {
            return Ok(None);
        }
        let choice = self.choose();
        let notice = self.choice.as_mut().and_then(|c| c.notice.take());
        let image =
            image::load_from_memory(bytes).context("the image cannot be decoded for a preview")?;
        let (cols, rows) = term::size_of(&std::io::stdout()).unwrap_or((80, 24));
        let (w, h) = fit(
            image.width(),
            image.height(),
            cols.saturating_sub(1),
            rows.saturating_sub(4),
        );
        let mut out = std::io::stdout().lock();
        match choice.protocol {
            Protocol::Blocks => {
                drop(out);
                let config = viuer::Config {
                    width: Some(w),
                    height: None,
                    absolute_offset: false,
                    use_kitty: false,
                    use_iterm: false,
                    ..viuer::Config::default()
                };
                viuer::print(&image, &config).context("the terminal preview failed")?;
            }
            protocol => {
                let sequence = match protocol {
                    Protocol::Kitty => kitty(&image, w, h, choice.passthrough)?,
                    Protocol::Iterm => iterm(&image, w, h)?,
                    _ => sixel(&image, w, h)?,
                };
                let sequence = if choice.passthrough && protocol != Protocol::Kitty {
                    tmux_wrap(&sequence)
                } else {
                    sequence
                };
                out.write_all(sequence.as_bytes())?;
                // Behind tmux's back the outer terminal moved its cursor; move tmux's past the image too.
                let newlines = if choice.passthrough { h as usize } else { 1 };
                out.write_all("\n".repeat(newlines).as_bytes())?;
                out.flush()?;
            }
        }
        Ok(notice)
    }
}

/// Which protocol `mode` gets on `terminal`; `passthrough` asks tmux whether it lets graphics through.
fn decide(mode: PreviewMode, terminal: &Terminal, passthrough: fn() -> bool) -> Choice {
    let wanted = match mode {
        PreviewMode::Kitty => Some(Protocol::Kitty),
        PreviewMode::Iterm => Some(Protocol::Iterm),
        PreviewMode::Sixel => Some(Protocol::Sixel),
        PreviewMode::Blocks | PreviewMode::Off => None,
        PreviewMode::Auto if terminal.kitty => Some(Protocol::Kitty),
        PreviewMode::Auto if terminal.iterm => Some(Protocol::Iterm),
        PreviewMode::Auto if terminal.sixel => Some(Protocol::Sixel),
        PreviewMode::Auto => None,
    };
    let blocks = |why: Option<String>| {
        let colours = if terminal.truecolor {
            None
        } else {
            Some(
                "in 256 colours: the terminal does not say it has true colour (set COLORTERM=truecolor if it does)"
                    .to_string(),
            )
        };
        let notice = match (why, colours) {
            (None, None) => None,
            (why, colours) => Some(format!(
                "previews: coloured blocks{}{}",
                why.map_or(String::new(), |w| format!(" ({w})")),
                colours.map_or(String::new(), |c| format!(", {c}"))
            )),
        };
        Choice {
            protocol: Protocol::Blocks,
            passthrough: false,
            notice,
        }
    };
    let Some(protocol) = wanted else {
        return blocks(None);
    };
    let name = match protocol {
        Protocol::Kitty => "kitty graphics",
        Protocol::Iterm => "iTerm images",
        _ => "sixel",
    };
    if !terminal.tmux {
        return Choice {
            protocol,
            passthrough: false,
            notice: None,
        };
    }
    if passthrough() {
        return Choice {
            protocol,
            passthrough: true,
            notice: Some(format!(
                "previews: {name} through tmux (allow-passthrough is on)"
            )),
        };
    }
    blocks(Some(format!(
        "inside tmux, {name} need `tmux set -g allow-passthrough on`"
    )))
}

fn describe(choice: &Choice) -> String {
    let name = match choice.protocol {
        Protocol::Kitty => "kitty graphics",
        Protocol::Iterm => "iTerm images",
        Protocol::Sixel => "sixel",
        Protocol::Blocks => "coloured blocks",
    };
    if choice.passthrough {
        format!("{name} through tmux")
    } else {
        name.to_string()
    }
}

/// Whether the tmux we run in passes escape sequences through to the outer terminal.
fn tmux_passthrough() -> bool {
    let output = Command::new("tmux")
        .args(["show-options", "-gqv", "allow-passthrough"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    output.is_ok_and(|o| {
        let value = String::from_utf8_lossy(&o.stdout);
        matches!(value.trim(), "on" | "all")
    })
}

/// The largest size in cells (columns, rows) within `max_cols` x `max_rows` that keeps the image's shape, a cell
/// being about twice as tall as wide.
pub fn fit(width: u32, height: u32, max_cols: usize, max_rows: usize) -> (u32, u32) {
    let (width, height) = (u64::from(width.max(1)), u64::from(height.max(1)));
    let (max_cols, max_rows) = (max_cols.max(1) as u64, max_rows.max(1) as u64);
    let cols = max_cols.min(max_rows * 2 * width / height).max(1);
    let rows = (cols * height).div_ceil(2 * width).clamp(1, max_rows);
    (cols as u32, rows as u32)
}

/// The image resized to about `cols` x `rows` cells' worth of pixels, as PNG.
fn png(image: &DynamicImage, cols: u32, rows: u32) -> Result<Vec<u8>> {
    let small = image.resize(cols * 10, rows * 20, image::imageops::FilterType::Triangle);
    let mut bytes = Vec::new();
    small.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )?;
    Ok(bytes)
}

/// Kitty's graphics protocol: the PNG in chunks of 4096 base64 characters, shown in `cols` x `rows` cells, the
/// terminal's replies silenced (`q=2`). Through tmux each chunk is wrapped on its own, and the cursor is left
/// where it was (`C=1`) since tmux does not know the image is there.
fn kitty(image: &DynamicImage, cols: u32, rows: u32, passthrough: bool) -> Result<String> {
    let data = STANDARD.encode(png(image, cols, rows)?);
    let chunks: Vec<&[u8]> = data.as_bytes().chunks(4096).collect();
    let mut out = String::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let more = u8::from(i + 1 < chunks.len());
        let keys = if i == 0 {
            let stay = if passthrough { ",C=1" } else { "" };
            format!("a=T,f=100,q=2,c={cols},r={rows}{stay},m={more}")
        } else {
            format!("m={more}")
        };
        let sequence = format!("\x1b_G{keys};{}\x1b\\", String::from_utf8_lossy(chunk));
        out.push_str(&if passthrough {
            tmux_wrap(&sequence)
        } else {
            sequence
        });
    }
    Ok(out)
}

/// iTerm2's inline image (OSC 1337), sized in cells.
fn iterm(image: &DynamicImage, cols: u32, rows: u32) -> Result<String> {
    let bytes = png(image, cols, rows)?;
    Ok(format!(
        "\x1b]1337;File=inline=1;size={};width={cols};height={rows};preserveAspectRatio=1:{}\x07",
        bytes.len(),
        STANDARD.encode(&bytes)
    ))
}

/// Sixel, at about 8x16 pixels a cell.
fn sixel(image: &DynamicImage, cols: u32, rows: u32) -> Result<String> {
    let small = image.resize(cols * 8, rows * 16, image::imageops::FilterType::Triangle);
    let rgba = small.to_rgba8();
    icy_sixel::sixel_encode(
        rgba.as_raw(),
        rgba.width() as usize,
        rgba.height() as usize,
        &icy_sixel::EncodeOptions::default(),
    )
    .map_err(|e| anyhow::anyhow!("the sixel preview failed: {e}"))
}

/// tmux's passthrough: `ESC P tmux;` + the sequence with every ESC doubled + `ESC \`.
fn tmux_wrap(sequence: &str) -> String {
    format!("\x1bPtmux;{}\x1b\\", sequence.replace('\x1b', "\x1b\x1b"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_keep_their_shape_and_tall_ones_use_the_height() {
        assert_eq!(fit(1024, 1024, 79, 20), (40, 20));
        assert_eq!(fit(1376, 768, 79, 20), (71, 20));
        // 9:16 in 80x24 uses the height: 22 columns, not 13.
        assert_eq!(fit(768, 1376, 79, 20), (22, 20));
        assert_eq!(fit(1, 100_000, 80, 20), (1, 20));
        assert_eq!(fit(1024, 1024, 159, 46), (92, 46));
    }

    #[test]
    fn the_mode_follows_the_terminal_and_tmux() {
        let yes = || true;
        let no = || false;
        let kitty = Terminal {
            kitty: true,
            truecolor: true,
            ..Terminal::default()
        };
        assert_eq!(
            decide(PreviewMode::Auto, &kitty, no).protocol,
            Protocol::Kitty
        );
        let in_tmux = Terminal {
            tmux: true,
            ..kitty.clone()
        };
        let through = decide(PreviewMode::Auto, &in_tmux, yes);
        assert!(through.passthrough && through.protocol == Protocol::Kitty);
        let blocked = decide(PreviewMode::Kitty, &in_tmux, no);
        assert_eq!(blocked.protocol, Protocol::Blocks);
        assert!(blocked.notice.unwrap().contains("allow-passthrough"));
        let plain = Terminal::default();
        let choice = decide(PreviewMode::Auto, &plain, no);
        assert_eq!(choice.protocol, Protocol::Blocks);
        assert!(choice.notice.unwrap().contains("256 colours"));
        let truecolor = Terminal {
            truecolor: true,
            ..Terminal::default()
        };
        assert_eq!(decide(PreviewMode::Auto, &truecolor, no).notice, None);
    }

    #[test]
    fn tmux_passthrough_doubles_every_escape() {
        assert_eq!(
            tmux_wrap("\x1b_Gx\x1b\\"),
            "\x1bPtmux;\x1b\x1b_Gx\x1b\x1b\\\x1b\\"
        );
    }
}
