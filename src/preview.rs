//! Inline previews in the terminal. The only caller of viuer: it writes escape codes to stdout without checking that
//! stdout is a terminal, so callers ask [`crate::ui::Ui::can_preview`] first and never call this while rustyline
//! owns the terminal.

use anyhow::{Context, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PreviewMode {
    /// Kitty or iTerm graphics where the terminal has them, else coloured half-blocks
    #[default]
    Auto,
    Kitty,
    Iterm,
    /// Sixel is not built in; falls back to half-blocks
    Sixel,
    Blocks,
    Off,
}

/// Draws the image at most `max_cols` wide and `max_rows` tall, keeping its shape.
pub fn show(bytes: &[u8], mode: PreviewMode, max_cols: u32, max_rows: u32) -> Result<()> {
    if mode == PreviewMode::Off {
        return Ok(());
    }
    let image =
        image::load_from_memory(bytes).context("the image cannot be decoded for a preview")?;
    let config = viuer::Config {
        width: Some(fit_columns(
            image.width(),
            image.height(),
            max_cols,
            max_rows,
        )),
        height: None,
        absolute_offset: false,
        use_kitty: matches!(mode, PreviewMode::Auto | PreviewMode::Kitty),
        use_iterm: matches!(mode, PreviewMode::Auto | PreviewMode::Iterm),
        ..viuer::Config::default()
    };
    viuer::print(&image, &config).context("the terminal preview failed")?;
    Ok(())
}

/// The widest preview, in terminal columns, that keeps the image's shape within `max_rows` rows (a cell is about
/// twice as tall as it is wide). viuer stretches when given both bounds, so it gets the width alone.
fn fit_columns(width: u32, height: u32, max_cols: u32, max_rows: u32) -> u32 {
    let by_rows = (u64::from(max_rows) * 2 * u64::from(width) / u64::from(height.max(1))) as u32;
    max_cols.min(by_rows).max(1)
}

#[cfg(test)]
mod tests {
    use super::fit_columns;

    #[test]
    fn previews_keep_their_shape() {
        assert_eq!(fit_columns(1024, 1024, 80, 20), 40);
        assert_eq!(fit_columns(1376, 768, 60, 30), 60);
        assert_eq!(fit_columns(1, 100_000, 80, 20), 1);
    }
}
