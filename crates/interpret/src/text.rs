//! Text on `RgbImage`s with the embedded DejaVu Sans (regular and bold), rasterized by
//! `ab_glyph`: glyph coverage is alpha-blended onto the picture, so no system font is needed
//! and the same text always gives the same pixels.
//!
//! A piece of text occupies a box of [`text_size`] pixels whose top-left corner is the `(x, y)`
//! given to [`draw_text`]; every inked pixel lies inside that box (the box is the line box —
//! ascent to descent, caret start to caret end — grown to hold any glyph that overhangs it).

use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use image::RgbImage;

/// The ellipsis [`truncate_to_width`] appends.
pub const ELLIPSIS: char = '…';

fn font(bold: bool) -> &'static FontRef<'static> {
    static REGULAR: OnceLock<FontRef<'static>> = OnceLock::new();
    static BOLD: OnceLock<FontRef<'static>> = OnceLock::new();
    let (cell, bytes) = if bold {
        (&BOLD, dejavu::sans::bold())
    } else {
        (&REGULAR, dejavu::sans::regular())
    };
    // The bytes are DejaVu Sans shipped inside the `dejavu` crate: parsing cannot fail.
    cell.get_or_init(|| FontRef::try_from_slice(bytes).expect("embedded DejaVu Sans parses"))
}

/// The rasterized coverage of one piece of text: `coverage[y * width + x]` in 0..=1, with the
/// box laid out as described in the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct TextMask {
    pub width: u32,
    pub height: u32,
    pub coverage: Vec<f32>,
}

impl TextMask {
    /// Coverage at `(x, y)` of the box (0 outside).
    pub fn at(&self, x: u32, y: u32) -> f32 {
        if x < self.width && y < self.height {
            self.coverage[(y * self.width + x) as usize]
        } else {
            0.0
        }
    }

    /// Whether `(x, y)` gets any ink at all.
    pub fn inked(&self, x: u32, y: u32) -> bool {
        self.at(x, y) > 0.0
    }
}

/// Caret positions and the line metrics of `text` laid out on one line, caret starting at 0
/// and the baseline at `ascent`.
struct Laid {
    glyphs: Vec<ab_glyph::Glyph>,
    advance: f32,
    line_height: f32,
}

fn lay_out(text: &str, px: f32, bold: bool) -> Laid {
    let px = if px.is_finite() { px.max(1.0) } else { 12.0 };
    let f = font(bold).as_scaled(PxScale::from(px));
    let ascent = f.ascent();
    let line_height = f.ascent() - f.descent();
    let mut caret = 0.0f32;
    let mut prev = None;
    let mut glyphs = Vec::new();
    for c in text.chars() {
        // One line: control characters (newlines, tabs) are drawn as spaces.
        let c = if c.is_control() { ' ' } else { c };
        let id = f.glyph_id(c);
        if let Some(p) = prev {
            caret += f.kern(p, id);
        }
        glyphs.push(id.with_scale_and_position(PxScale::from(px), point(caret, ascent)));
        caret += f.h_advance(id);
        prev = Some(id);
    }
    Laid {
        glyphs,
        advance: caret,
        line_height,
    }
}

/// The rasterized coverage of `text` at `px` pixels per em.
pub fn text_mask(text: &str, px: f32, bold: bool) -> TextMask {
    let laid = lay_out(text, px, bold);
    let f = font(bold);
    let outlined: Vec<_> = laid
        .glyphs
        .iter()
        .filter_map(|g| f.outline_glyph(g.clone()))
        .collect();
    let (mut x0, mut y0) = (0.0f32, 0.0f32);
    let (mut x1, mut y1) = (laid.advance.ceil(), laid.line_height.ceil());
    for g in &outlined {
        let b = g.px_bounds();
        x0 = x0.min(b.min.x.floor());
        y0 = y0.min(b.min.y.floor());
        x1 = x1.max(b.max.x.ceil());
        y1 = y1.max(b.max.y.ceil());
    }
    let width = (x1 - x0).max(0.0) as u32;
    let height = (y1 - y0).max(1.0) as u32;
    let mut coverage = vec![0.0f32; (width * height) as usize];
    for g in &outlined {
        let b = g.px_bounds();
        let (ox, oy) = ((b.min.x - x0) as i64, (b.min.y - y0) as i64);
        g.draw(|gx, gy, c| {
            let (x, y) = (ox + gx as i64, oy + gy as i64);
            if x >= 0 && y >= 0 && (x as u32) < width && (y as u32) < height {
                let i = (y as u32 * width + x as u32) as usize;
                // Overlapping glyphs (tight kerning) add up, capped at full ink.
                coverage[i] = (coverage[i] + c.clamp(0.0, 1.0)).min(1.0);
            }
        });
    }
    TextMask {
        width,
        height,
        coverage,
    }
}

/// Width and height in pixels of the box `text` occupies when drawn at `px` pixels per em.
pub fn text_size(text: &str, px: f32, bold: bool) -> (u32, u32) {
    let m = text_mask(text, px, bold);
    (m.width, m.height)
}

/// Blends a coverage mask onto `img` in `color` with its top-left corner at `(x, y)`; the parts
/// outside the picture are clipped.
pub fn draw_mask(img: &mut RgbImage, mask: &TextMask, x: i32, y: i32, color: [u8; 3]) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    for my in 0..mask.height {
        let py = y as i64 + my as i64;
        if py < 0 || py >= h {
            continue;
        }
        for mx in 0..mask.width {
            let px = x as i64 + mx as i64;
            if px < 0 || px >= w {
                continue;
            }
            let a = mask.coverage[(my * mask.width + mx) as usize];
            if a <= 0.0 {
                continue;
            }
            let p = img.get_pixel_mut(px as u32, py as u32);
            for (c, &t) in p.0.iter_mut().zip(&color) {
                *c = (*c as f32 * (1.0 - a) + t as f32 * a).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// Draws `text` on one line with its box's top-left corner at `(x, y)`, `px` pixels per em,
/// glyph coverage alpha-blended in `color`; what falls outside the picture is clipped.
pub fn draw_text(img: &mut RgbImage, text: &str, x: i32, y: i32, px: f32, color: [u8; 3], bold: bool) {
    let mask = text_mask(text, px, bold);
    draw_mask(img, &mask, x, y, color);
}

/// `text` itself when it fits in `max_width` pixels, otherwise its longest prefix (whole
/// characters) followed by `…` that fits; an empty string when not even `…` fits.
pub fn truncate_to_width(text: &str, px: f32, bold: bool, max_width: u32) -> String {
    if text_size(text, px, bold).0 <= max_width {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let with_ellipsis = |n: usize| -> String {
        let mut s: String = chars[..n].iter().collect();
        let trimmed = s.trim_end().len();
        s.truncate(trimmed);
        s.push(ELLIPSIS);
        s
    };
    // Width grows with the prefix length: binary search the longest prefix that fits.
    let (mut lo, mut hi) = (0usize, chars.len());
    if text_size(&with_ellipsis(0), px, bold).0 > max_width {
        return String::new();
    }
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if text_size(&with_ellipsis(mid), px, bold).0 <= max_width {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    with_ellipsis(lo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn ink_stays_inside_the_reported_box() {
        for (text, px, bold) in [
            ("Hello, world", 20.0, false),
            ("jÅgy_(Q)", 33.0, true),
            ("", 12.0, false),
        ] {
            let (w, h) = text_size(text, px, bold);
            let mut img = RgbImage::from_pixel(w + 40, h + 40, Rgb([255, 255, 255]));
            draw_text(&mut img, text, 20, 20, px, [0, 0, 0], bold);
            let mut inked = 0;
            for (x, y, p) in img.enumerate_pixels() {
                if p.0 != [255, 255, 255] {
                    inked += 1;
                    assert!(
                        x >= 20 && x < 20 + w && y >= 20 && y < 20 + h,
                        "{text:?}: ink at ({x},{y}) outside {w}x{h}"
                    );
                }
            }
            assert_eq!(inked == 0, text.is_empty(), "{text:?}");
        }
    }

    #[test]
    fn size_grows_with_text_and_px_and_bold_is_wider() {
        let (w1, h1) = text_size("feature", 16.0, false);
        let (w2, h2) = text_size("feature", 32.0, false);
        assert!(w2 > w1 * 3 / 2 && h2 > h1 * 3 / 2);
        assert!(text_size("features", 16.0, false).0 > w1);
        assert!(text_size("feature", 16.0, true).0 > w1);
        // The line box is the font's, not the ink's: same height for "a" and "Ag".
        assert_eq!(text_size("a", 16.0, false).1, text_size("Ag", 16.0, false).1);
    }

    #[test]
    fn blending_is_partial_at_glyph_edges_and_clipped_at_the_border() {
        let mut img = RgbImage::from_pixel(60, 30, Rgb([255, 255, 255]));
        draw_text(&mut img, "Sparse", -10, -5, 24.0, [0, 0, 200], false);
        let mut grays = 0;
        let mut full = 0;
        for p in img.pixels() {
            if p.0[2] < 255 || p.0[0] < 255 {
                if p.0[0] == 0 {
                    full += 1;
                } else {
                    grays += 1;
                }
            }
        }
        assert!(full > 0 && grays > 0, "full {full}, partial {grays}");
    }

    #[test]
    fn truncation_fits_and_keeps_short_text() {
        assert_eq!(truncate_to_width("short", 14.0, false, 500), "short");
        let long = "a very long caption that cannot possibly fit in a small cell";
        let t = truncate_to_width(long, 14.0, false, 100);
        assert!(t.ends_with(ELLIPSIS) && t.len() < long.len(), "{t}");
        assert!(text_size(&t, 14.0, false).0 <= 100);
        // The kept part is a prefix, and keeping up to the next visible character would not fit.
        let kept = t.trim_end_matches(ELLIPSIS);
        assert!(long.starts_with(kept));
        let rest = &long[kept.len()..];
        let next = rest.find(|c: char| c != ' ').unwrap();
        let one_more = format!("{kept}{}{ELLIPSIS}", &rest[..=next]);
        assert!(text_size(&one_more, 14.0, false).0 > 100, "{one_more}");
        assert_eq!(truncate_to_width(long, 14.0, false, 2), "");
    }
}
