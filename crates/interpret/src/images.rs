//! Picture helpers for the report: captioned grids of examples (prototypes), LIME overlays of
//! superpixels, and atomic PNG writing.

use std::io::{BufWriter, Write};
use std::path::Path;

use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage};

use crate::superpixels::Segments;
use crate::text::{draw_text, text_size, truncate_to_width};
use crate::InterpretError;

/// Background of grids.
pub const BACKGROUND: [u8; 3] = [255, 255, 255];
/// The letterbox around a picture whose aspect is not the cell's.
pub const LETTERBOX: [u8; 3] = [242, 242, 242];
/// Caption colour.
pub const CAPTION: [u8; 3] = [40, 40, 40];
/// Outline around the positive segments of a LIME overlay.
pub const OUTLINE: [u8; 3] = [0, 255, 64];
/// Tint of the negative segments of a LIME overlay.
pub const NEGATIVE_TINT: [u8; 3] = [235, 30, 30];
/// What the segments outside the top ones are dimmed toward.
pub const DIM_TOWARD: [u8; 3] = [150, 150, 150];
/// Share of the tint in a negative segment's pixels.
pub const NEGATIVE_ALPHA: f32 = 0.45;
/// Share of [`DIM_TOWARD`] in the other segments' pixels.
pub const DIM_ALPHA: f32 = 0.65;

/// Gap between cells and around the grid, in pixels.
const GAP: u32 = 8;

fn caption_px(cell: u32) -> f32 {
    (cell as f32 / 14.0).clamp(11.0, 15.0)
}

/// `image` scaled to fit a `cell`×`cell` square, aspect kept (Catmull-Rom when shrinking,
/// triangle when enlarging).
pub fn fit(image: &RgbImage, cell: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    if w == 0 || h == 0 || cell == 0 {
        return RgbImage::new(0, 0);
    }
    let scale = (cell as f64 / w as f64).min(cell as f64 / h as f64);
    let nw = ((w as f64 * scale).round() as u32).clamp(1, cell);
    let nh = ((h as f64 * scale).round() as u32).clamp(1, cell);
    if (nw, nh) == (w, h) {
        return image.clone();
    }
    let filter = if scale < 1.0 {
        FilterType::CatmullRom
    } else {
        FilterType::Triangle
    };
    imageops::resize(image, nw, nh, filter)
}

/// The pictures in a grid of `cols` columns, each scaled to fit a `cell`×`cell` square
/// (letterboxed), with its caption (truncated with … to the cell's width) on a line under
/// it; white background and gaps. Missing captions are empty; no pictures give a blank frame.
pub fn grid(images: &[RgbImage], captions: &[String], cell: u32, cols: usize) -> RgbImage {
    let cell = cell.max(1);
    let n = images.len();
    if n == 0 {
        return RgbImage::from_pixel(2 * GAP, 2 * GAP, Rgb(BACKGROUND));
    }
    let cols = cols.clamp(1, n) as u32;
    let rows = (n as u32).div_ceil(cols);
    let px = caption_px(cell);
    let cap_h = text_size("Ag", px, false).1;
    let row_h = cell + 4 + cap_h;
    let width = 2 * GAP + cols * cell + (cols - 1) * GAP;
    let height = 2 * GAP + rows * row_h + (rows - 1) * GAP;
    let mut out = RgbImage::from_pixel(width, height, Rgb(BACKGROUND));
    for (i, img) in images.iter().enumerate() {
        let (c, r) = (i as u32 % cols, i as u32 / cols);
        let (x0, y0) = (GAP + c * (cell + GAP), GAP + r * (row_h + GAP));
        for y in y0..y0 + cell {
            for x in x0..x0 + cell {
                out.put_pixel(x, y, Rgb(LETTERBOX));
            }
        }
        let scaled = fit(img, cell);
        let (ox, oy) = (
            x0 + (cell - scaled.width()) / 2,
            y0 + (cell - scaled.height()) / 2,
        );
        imageops::replace(&mut out, &scaled, ox as i64, oy as i64);
        let caption = captions.get(i).map(String::as_str).unwrap_or("");
        let shown = truncate_to_width(caption, px, false, cell);
        if !shown.is_empty() {
            let tw = text_size(&shown, px, false).0;
            let tx = x0 + (cell - tw.min(cell)) / 2;
            draw_text(
                &mut out,
                &shown,
                tx as i32,
                (y0 + cell + 4) as i32,
                px,
                CAPTION,
                false,
            );
        }
    }
    out
}

/// The segments a LIME overlay highlights: the `top` ones with the largest |weight| (ties by
/// index, zero and non-finite weights never), split into positive and negative weight.
pub fn top_segments(weights: &[f32], top: usize) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..weights.len())
        .filter(|&s| weights[s].is_finite() && weights[s] != 0.0)
        .collect();
    order.sort_by(|&a, &b| weights[b].abs().total_cmp(&weights[a].abs()).then(a.cmp(&b)));
    order.truncate(top);
    order.into_iter().partition(|&s| weights[s] > 0.0)
}

/// Width of the outline of a LIME overlay: 1 px up to ~170 px pictures, 2 px at 224, growing.
pub fn outline_width(width: usize, height: usize) -> usize {
    ((width.min(height) as f32 / 112.0).round() as usize).max(1)
}

fn blend(p: [u8; 3], toward: [u8; 3], alpha: f32) -> [u8; 3] {
    [0, 1, 2].map(|k| (p[k] as f32 * (1.0 - alpha) + toward[k] as f32 * alpha).round() as u8)
}

/// A LIME explanation drawn on `image`, as LIME's `get_image_and_mask(positive_only=False)`
/// with `num_features = top`: of the `top` segments with the largest |weight|, the positive ones
/// keep their colours inside a bright green outline (drawn just inside their border with
/// everything else, [`outline_width`] thick), the negative ones get a translucent red tint,
/// and every other segment is dimmed toward gray.
///
/// # Panics
/// When `weights` does not have one entry per segment or the sizes differ.
pub fn lime_overlay(image: &RgbImage, segments: &Segments, weights: &[f32], top: usize) -> RgbImage {
    assert_eq!(
        (image.width() as usize, image.height() as usize),
        (segments.width, segments.height),
        "image and segmentation sizes differ"
    );
    assert_eq!(weights.len(), segments.count, "one weight per segment");
    let (positive, negative) = top_segments(weights, top);
    // 0: other, 1: positive, 2: negative.
    let mut kind = vec![0u8; segments.count];
    for &s in &positive {
        kind[s] = 1;
    }
    for &s in &negative {
        kind[s] = 2;
    }
    let (w, h) = (segments.width, segments.height);
    let is_pos: Vec<bool> = segments.labels.iter().map(|&l| kind[l as usize] == 1).collect();
    let t = outline_width(w, h) as isize;
    let mut out = image.clone();
    for (p, px) in out.pixels_mut().enumerate() {
        let (x, y) = ((p % w) as isize, (p / w) as isize);
        px.0 = match kind[segments.labels[p] as usize] {
            1 => {
                let mut edge = false;
                'window: for yy in (y - t).max(0)..=(y + t).min(h as isize - 1) {
                    for xx in (x - t).max(0)..=(x + t).min(w as isize - 1) {
                        if !is_pos[yy as usize * w + xx as usize] {
                            edge = true;
                            break 'window;
                        }
                    }
                }
                if edge {
                    OUTLINE
                } else {
                    px.0
                }
            }
            2 => blend(px.0, NEGATIVE_TINT, NEGATIVE_ALPHA),
            _ => blend(px.0, DIM_TOWARD, DIM_ALPHA),
        };
    }
    out
}

/// Writes `image` as a PNG at `path` atomically: to a temporary file in the same folder, then
/// renamed over `path`, so a reader never sees half a picture.
pub fn save_png(image: &RgbImage, path: &Path) -> Result<(), InterpretError> {
    let err = |reason: String| InterpretError::Image {
        path: path.to_path_buf(),
        reason,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .suffix(".png")
        .tempfile_in(dir)
        .map_err(|e| err(format!("temporary file in {}: {e}", dir.display())))?;
    {
        let mut writer = BufWriter::new(tmp.as_file());
        image
            .write_with_encoder(image::codecs::png::PngEncoder::new(&mut writer))
            .map_err(|e| err(e.to_string()))?;
        writer.flush().map_err(|e| err(e.to_string()))?;
    }
    tmp.persist(path).map_err(|e| err(e.error.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::superpixels::slic;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            Rgb([(x * 255 / w.max(1)) as u8, (y * 255 / h.max(1)) as u8, 128])
        })
    }

    #[test]
    fn grid_has_the_layout_size_and_letterboxes() {
        let images = vec![
            gradient(64, 32),
            gradient(20, 80),
            gradient(100, 100),
            gradient(7, 7),
            gradient(300, 120),
        ];
        let captions: Vec<String> = vec![
            "".into(),
            "a caption far too long to fit under one cell of the grid, so it is cut".into(),
            "cat 0.93".into(),
        ];
        let cell = 96;
        let g = grid(&images, &captions, cell, 3);
        let cap_h = text_size("Ag", caption_px(cell), false).1;
        assert_eq!(g.width(), 2 * GAP + 3 * cell + 2 * GAP);
        assert_eq!(g.height(), 2 * GAP + 2 * (cell + 4 + cap_h) + GAP);
        // The wide picture fills the cell's width and is letterboxed above and below.
        assert_eq!(g.get_pixel(GAP + 1, GAP + 2).0, LETTERBOX);
        assert_ne!(g.get_pixel(GAP + 1, GAP + cell / 2).0, LETTERBOX);
        // Gaps stay white; the long caption stays within its cell (the gap after it is white).
        let cap_y = GAP + cell + 4;
        for y in cap_y..cap_y + cap_h {
            for x in (2 * GAP + 2 * cell)..(2 * GAP + 2 * cell + GAP) {
                assert_eq!(g.get_pixel(x, y).0, BACKGROUND, "caption spilled at ({x},{y})");
            }
        }
        let inked = (cap_y..cap_y + cap_h)
            .any(|y| (GAP + cell + GAP..2 * GAP + 2 * cell).any(|x| g.get_pixel(x, y).0 != BACKGROUND));
        assert!(inked, "the long caption is drawn (truncated)");
        // Fewer pictures than columns: the grid shrinks to them; none: a blank frame.
        assert_eq!(grid(&images[..1], &[], 50, 4).width(), 2 * GAP + 50);
        let blank = grid(&[], &[], 50, 4);
        assert!(blank.pixels().all(|p| p.0 == BACKGROUND));
        assert_eq!(
            grid(&[RgbImage::new(0, 0)], &["x".into()], 40, 0).width(),
            2 * GAP + 40
        );
    }

    #[test]
    fn fit_keeps_aspect() {
        assert_eq!(fit(&gradient(200, 100), 64).dimensions(), (64, 32));
        assert_eq!(fit(&gradient(10, 40), 64).dimensions(), (16, 64));
        assert_eq!(fit(&gradient(64, 64), 64), gradient(64, 64));
    }

    fn blocks() -> RgbImage {
        RgbImage::from_fn(120, 90, |x, y| {
            let c = [[220u8, 60, 60], [60, 200, 90], [70, 90, 220], [210, 200, 80]]
                [((x / 60) + 2 * (y / 45)) as usize];
            Rgb(c)
        })
    }

    #[test]
    fn overlay_keeps_top_segments_except_the_outline() {
        let img = blocks();
        let s = slic(&img, 12, 10.0);
        assert!(s.count >= 4);
        let mut weights = vec![0.01f32; s.count];
        weights[0] = 0.9;
        weights[1] = -0.8;
        weights[2] = 0.5;
        let out = lime_overlay(&img, &s, &weights, 3);
        let (pos, neg) = top_segments(&weights, 3);
        assert_eq!((pos.clone(), neg.clone()), (vec![0, 2], vec![1]));
        let (w, h) = (s.width, s.height);
        let t = outline_width(w, h) as isize;
        let is_pos = |x: isize, y: isize| pos.contains(&(s.label(x as usize, y as usize) as usize));
        let (mut kept, mut outlined) = (0, 0);
        for y in 0..h as isize {
            for x in 0..w as isize {
                let (o, i) = (
                    out.get_pixel(x as u32, y as u32).0,
                    img.get_pixel(x as u32, y as u32).0,
                );
                let l = s.label(x as usize, y as usize) as usize;
                if pos.contains(&l) {
                    let near_other = ((y - t).max(0)..=(y + t).min(h as isize - 1))
                        .any(|yy| ((x - t).max(0)..=(x + t).min(w as isize - 1)).any(|xx| !is_pos(xx, yy)));
                    if near_other {
                        assert_eq!(o, OUTLINE);
                        outlined += 1;
                    } else {
                        assert_eq!(o, i, "top segment pixel ({x},{y}) changed");
                        kept += 1;
                    }
                } else if neg.contains(&l) {
                    assert_eq!(o, blend(i, NEGATIVE_TINT, NEGATIVE_ALPHA));
                    assert!(o[0] as i32 - o[1] as i32 >= i[0] as i32 - i[1] as i32, "redder");
                } else {
                    assert_eq!(o, blend(i, DIM_TOWARD, DIM_ALPHA));
                }
            }
        }
        assert!(kept > 0 && outlined > 0, "kept {kept}, outlined {outlined}");
        // top = 0 dims everything.
        let none = lime_overlay(&img, &s, &weights, 0);
        assert!(none
            .pixels()
            .zip(img.pixels())
            .all(|(o, i)| o.0 == blend(i.0, DIM_TOWARD, DIM_ALPHA)));
    }

    #[test]
    fn save_png_writes_atomically_and_reports_bad_folders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.png");
        let img = gradient(33, 17);
        save_png(&img, &path).unwrap();
        save_png(&img, &path).unwrap();
        let back = image::open(&path).unwrap().to_rgb8();
        assert_eq!(back, img);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("g.png")],
            "no temporary file left"
        );
        let bad = dir.path().join("missing").join("g.png");
        assert!(matches!(save_png(&img, &bad), Err(InterpretError::Image { .. })));
    }
}
