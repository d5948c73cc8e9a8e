//! A 5x7 bitmap font, to write short labels on pictures (the offline stand-in's captions, the contact sheets'
//! take labels) with no font files and no font crate: letters, digits and a little punctuation.

use image::{Rgb, RgbImage};

/// Draws `text` at (`x`, `y`), each font pixel `dot` screen pixels, white on a dark shadow so it
/// reads on any background. Characters the font lacks are drawn as `?`.
pub fn draw_text(canvas: &mut RgbImage, x: u32, y: u32, dot: u32, text: &str) {
    let cell = 6 * dot;
    let glyphs: Vec<u64> = text.chars().map(glyph).collect();
    for (shift, colour) in [(dot.div_ceil(2), Rgb([0; 3])), (0, Rgb([255; 3]))] {
        for (i, glyph) in glyphs.iter().enumerate() {
            for (row, column) in (0..7).flat_map(|row| (0..5).map(move |column| (row, column))) {
                if glyph >> (8 * (6 - row) + 4 - column) & 1 == 1 {
                    let px = x + i as u32 * cell + column * dot + shift;
                    fill_square(canvas, px, y + row * dot + shift, dot, colour);
                }
            }
        }
    }
}

/// The width in pixels of `text` drawn with `dot`.
pub fn text_width(text: &str, dot: u32) -> u32 {
    text.chars().count() as u32 * 6 * dot
}

fn fill_square(canvas: &mut RgbImage, x: u32, y: u32, size: u32, colour: Rgb<u8>) {
    for y in y..(y + size).min(canvas.height()) {
        for x in x..(x + size).min(canvas.width()) {
            canvas.put_pixel(x, y, colour);
        }
    }
}

const GLYPH_CHARS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'-:/abcdefghijklmnopqrstuvwxyz";
/// One glyph per number: 7 bytes, the rows top to bottom, 5 pixels each in the low bits.
const GLYPHS: [u64; 70] = [
    0x0E11111F111111,
    0x1E11111E11111E,
    0x0E11101010110E,
    0x1E11111111111E,
    0x1F10101E10101F,
    0x1F10101E101010,
    0x0E11101711110F,
    0x1111111F111111,
    0x0E04040404040E,
    0x0702020202120C,
    0x11121418141211,
    0x1010101010101F,
    0x111B1515111111,
    0x11111915131111,
    0x0E11111111110E,
    0x1E11111E101010,
    0x0E11111115120D,
    0x1E11111E141211,
    0x0F10100E01011E,
    0x1F040404040404,
    0x1111111111110E,
    0x11111111110A04,
    0x1111111515150A,
    0x11110A040A1111,
    0x1111110A040404,
    0x1F01020408101F,
    0x0E11131519110E,
    0x040C040404040E,
    0x0E11010204081F,
    0x1F02040201110E,
    0x02060A121F0202,
    0x1F101E0101110E,
    0x0608101E11110E,
    0x1F010204080808,
    0x0E11110E11110E,
    0x0E11110F01020C,
    0x00000000000C0C,
    0x000000000C0408,
    0x04040404040004,
    0x0E110102040004,
    0x04040800000000,
    0x0000001F000000,
    0x000C0C000C0C00,
    0x01010204081010,
    0x00000E010F110F,
    0x1010161911111E,
    0x00000E1010110E,
    0x01010D1311110F,
    0x00000E111F100E,
    0x0609081C080808,
    0x000F11110F010E,
    0x10101619111111,
    0x04000C0404040E,
    0x0200060202120C,
    0x10101214181412,
    0x0C04040404040E,
    0x00001A15151111,
    0x00001619111111,
    0x00000E1111110E,
    0x00001E111E1010,
    0x00000D130F0101,
    0x00001619101010,
    0x00000E100E011E,
    0x08081C08080906,
    0x0000111111130D,
    0x00001111110A04,
    0x0000111115150A,
    0x0000110A040A11,
    0x000011110F010E,
    0x00001F0204081F,
];

/// A blank for whitespace and `?` for characters the font lacks.
fn glyph(c: char) -> u64 {
    let index = GLYPH_CHARS.find(c).or(GLYPH_CHARS.find('?'));
    index
        .filter(|_| !c.is_whitespace())
        .map_or(0, |i| GLYPHS[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_character_has_its_own_glyph_and_unknown_ones_are_a_question_mark() {
        let mut seen = std::collections::HashSet::new();
        for c in GLYPH_CHARS.chars() {
            assert!(seen.insert(glyph(c)), "{c} looks like another character");
        }
        assert_eq!(glyph('é'), glyph('?'));
        assert_eq!(glyph(' '), 0);
        assert_eq!(text_width("3a", 2), 24);
    }
}
