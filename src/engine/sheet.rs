//! Contact sheets: the takes of a turn side by side, each under its label, as one picture to compare them at a
//! glance (shown as one preview, saved beside them as `3-sheet.jpg`); and any two images side by side.

use anyhow::{Context as _, Result, bail};
use image::{DynamicImage, Rgb, RgbImage};

use super::branching::TurnRef;
use super::listing::ImageFile;
use super::output;
use super::{Engine, tree};
use crate::store::ImageMeta;

/// The height every picture is scaled to on a sheet.
const CELL_HEIGHT: u32 = 512;
/// At most this many pictures in a row.
const PER_ROW: usize = 4;
const GAP: u32 = 12;
/// Font pixels are this many image pixels.
const DOT: u32 = 4;
const BAND: u32 = 7 * DOT + 2 * GAP;
const BACKGROUND: Rgb<u8> = Rgb([24, 24, 28]);

/// A picture as a sheet's cell: decoded and shrunk to the cell height at once, so a sheet of 2K takes never holds
/// more than one full-size picture.
pub fn cell(bytes: &[u8]) -> Result<RgbImage> {
    let picture = image::load_from_memory(bytes).context("the picture cannot be decoded")?;
    Ok(shrink(&picture))
}

fn shrink(picture: &DynamicImage) -> RgbImage {
    let width = (u64::from(picture.width()) * u64::from(CELL_HEIGHT)
        / u64::from(picture.height().max(1)))
    .clamp(1, u64::from(CELL_HEIGHT) * 4) as u32;
    // A box filter: a sheet is for comparing at a glance, and it is many times faster than a windowed one.
    picture.thumbnail_exact(width, CELL_HEIGHT).to_rgb8()
}

/// `cells` (label, picture at the cell height) side by side under their labels, in rows of at most four.
pub fn compose(cells: &[(String, RgbImage)]) -> RgbImage {
    let rows: Vec<&[(String, RgbImage)]> = cells.chunks(PER_ROW).collect();
    let row_width = |row: &[(String, RgbImage)]| -> u32 {
        row.iter().map(|(_, c)| c.width() + GAP).sum::<u32>() + GAP
    };
    let width = rows.iter().map(|r| row_width(r)).max().unwrap_or(GAP);
    let height = rows.len() as u32 * (BAND + CELL_HEIGHT) + GAP;
    let mut sheet = RgbImage::from_pixel(width, height, BACKGROUND);
    for (r, row) in rows.iter().enumerate() {
        let top = r as u32 * (BAND + CELL_HEIGHT);
        let mut x = GAP;
        for (label, cell) in row.iter() {
            crate::font::draw_text(&mut sheet, x, top + GAP, DOT, label);
            image::imageops::replace(&mut sheet, cell, i64::from(x), i64::from(top + BAND));
            x += cell.width() + GAP;
        }
    }
    sheet
}

fn jpeg(picture: &RgbImage) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 88)
        .encode_image(picture)
        .context("encoding the contact sheet")?;
    Ok(bytes)
}

impl Engine {
    /// `/sheet [TURN]`: every take of turn TURN (default: the last) side by side, written beside them.
    pub fn sheet(&self, label: Option<&str>) -> Result<ImageFile> {
        let family = self.family()?;
        let number = match label {
            Some(label) => label.parse::<TurnRef>()?.number,
            None => self
                .turns()?
                .last()
                .map(|t| t.number)
                .context("this session has no turns yet")?,
        };
        let on_path = family
            .nodes
            .iter()
            .find(|n| n.number == number && family.path.contains(&n.model_id))
            .with_context(|| format!("this session has no turn {number}"))?;
        let mut cells = Vec::new();
        for node in family.nodes.iter().filter(|n| tree::same_turn(n, on_path)) {
            if let Some(bytes) = self.first_image(node.model_id)? {
                cells.push((node.label(), cell(&bytes)?));
            }
        }
        if cells.is_empty() {
            bail!("turn {number} has no image");
        }
        self.save_sheet(&format!("{number}-sheet"), &cells)
    }

    /// `/compare A B`: two images (labels: `3a`, `@fox:2`, ...) side by side, written as `A-vs-B.jpg`.
    pub fn compare(&self, a: &str, b: &str) -> Result<ImageFile> {
        let mut cells = Vec::new();
        for label in [a, b] {
            let name = label.trim_start_matches('@');
            let attachment = self.resolve_reference(&format!("@{name}"))?;
            let picture =
                cell(&attachment.bytes).with_context(|| format!("{label} cannot be shown"))?;
            cells.push((name.to_string(), picture));
        }
        let name = format!(
            "{}-vs-{}",
            cells[0].0.replace(':', "_"),
            cells[1].0.replace(':', "_")
        );
        self.save_sheet(&name, &cells)
    }

    /// Composes `cells` into a sheet and writes it as `NAME.jpg` in this session's folder.
    pub(super) fn save_sheet(&self, name: &str, cells: &[(String, RgbImage)]) -> Result<ImageFile> {
        let sheet = compose(cells);
        let bytes = jpeg(&sheet)?;
        let path = output::output_path(&self.session.out_root, self.session.name(), name, 0, "jpg");
        let path = output::write_new(&path, &bytes)?;
        Ok(ImageFile {
            path,
            meta: ImageMeta {
                mime: "image/jpeg".into(),
                width: sheet.width(),
                height: sheet.height(),
                bytes: bytes.len() as u64,
            },
            bytes: bytes.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_sit_side_by_side_under_their_labels() {
        let picture = |w, h, shade| {
            shrink(&DynamicImage::ImageRgb8(RgbImage::from_pixel(
                w,
                h,
                Rgb([shade, shade, shade]),
            )))
        };
        let pictures: Vec<(String, RgbImage)> = ["3a", "3b", "3c"]
            .iter()
            .zip([60u8, 120, 180])
            .map(|(label, shade)| (label.to_string(), picture(1024, 1024, shade)))
            .collect();
        let sheet = compose(&pictures);
        assert_eq!(sheet.height(), BAND + CELL_HEIGHT + GAP);
        assert_eq!(sheet.width(), 3 * (CELL_HEIGHT + GAP) + GAP);
        // Each picture in its place, scaled to the cell height.
        for (i, shade) in [60u8, 120, 180].iter().enumerate() {
            let x = GAP + i as u32 * (CELL_HEIGHT + GAP) + CELL_HEIGHT / 2;
            assert_eq!(
                sheet.get_pixel(x, BAND + CELL_HEIGHT / 2),
                &Rgb([*shade; 3])
            );
        }
        // Labels are drawn in the band above (white pixels there).
        let white = (0..sheet.width())
            .flat_map(|x| (0..BAND).map(move |y| (x, y)))
            .filter(|&(x, y)| sheet.get_pixel(x, y) == &Rgb([255; 3]))
            .count();
        assert!(white > 50, "{white}");
        // Five takes make two rows of at most four.
        let five: Vec<_> = (0..5)
            .map(|i| (format!("3{}", (b'a' + i) as char), picture(512, 1024, 90)))
            .collect();
        assert_eq!(compose(&five).height(), 2 * (BAND + CELL_HEIGHT) + GAP);
    }
}
