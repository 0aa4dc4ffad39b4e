//! Word clouds like the paper's Figure 5: the words LIME finds for a deep feature, sized by
//! their mean weight, packed around the centre.
//!
//! [`layout`] places the words, largest weight first, each on an Archimedean spiral from the
//! centre until its glyphs (pixel-exact coverage, not boxes) touch nothing already placed — an
//! occupancy bitmap holds the placed words' ink grown by a small margin. Words that find no
//! room are dropped, except the biggest, which is shrunk until it fits the canvas. [`word_cloud`]
//! draws a layout in a [`Palette`]; [`word_cloud_pair`] puts a positive and a negative cloud side
//! by side under titles.

use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::text::{draw_mask, draw_text, text_mask, text_size, truncate_to_width, TextMask};

/// Font size of the biggest word before the cloud is fitted to the canvas.
pub const MAX_PX: f32 = 64.0;
/// Font size a word of weight → 0 gets (before fitting).
pub const MIN_PX: f32 = 12.0;
/// No word is shrunk below this when the cloud is scaled down to fit (the biggest word alone
/// may be, on a canvas too small for it).
pub const FLOOR_PX: f32 = 9.0;
/// Share of the canvas the words' boxes may cover before the sizes are scaled down.
const FILL: f64 = 0.6;
/// Placement attempts, each scaling the sizes down by [`RETRY_SCALE`] while words are dropped.
const ATTEMPTS: usize = 4;
const RETRY_SCALE: f32 = 0.88;

/// One word of a cloud; only words with a finite `weight > 0` and visible text are drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudWord {
    pub text: String,
    pub weight: f32,
}

/// Colours of a cloud: greens and blues for words that raise a feature, reds and oranges for
/// words that lower it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Palette {
    Positive,
    Negative,
}

/// A word as [`layout`] placed it: its box's top-left corner at `(x, y)`, `w`×`h` pixels (the
/// box of [`crate::text::text_size`] for `text` in bold at `px`), all of it inside the canvas.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub text: String,
    pub weight: f32,
    pub x: i32,
    pub y: i32,
    pub w: u32,
    pub h: u32,
    pub px: f32,
}

impl Placed {
    /// The rasterized glyphs of this word (what [`word_cloud`] draws at `(x, y)`).
    pub fn mask(&self) -> TextMask {
        text_mask(&self.text, self.px, true)
    }
}

/// Free space around a placed word, horizontal and vertical: about a space's width beside it
/// (so neighbours on a line never read as one word), less above and below.
fn margins(px: f32) -> (usize, usize) {
    (
        ((0.28 * px).round() as usize).max(2),
        ((px / 14.0).round() as usize).max(1),
    )
}

/// Rows of bits, one bit per pixel, with a spare word per row so that reading 64 bits at any
/// offset inside the row never runs off it.
struct Bits {
    width: usize,
    height: usize,
    stride: usize,
    words: Vec<u64>,
}

impl Bits {
    fn new(width: usize, height: usize) -> Self {
        let stride = width.div_ceil(64) + 1;
        Bits {
            width,
            height,
            stride,
            words: vec![0; stride * height],
        }
    }

    fn set(&mut self, x: usize, y: usize) {
        self.words[y * self.stride + x / 64] |= 1 << (x % 64);
    }

    /// The 64 bits of row `y` starting at bit `x`.
    fn read64(&self, x: usize, y: usize) -> u64 {
        let row = &self.words[y * self.stride..(y + 1) * self.stride];
        let (i, b) = (x / 64, x % 64);
        let lo = row.get(i).copied().unwrap_or(0) >> b;
        if b == 0 {
            lo
        } else {
            lo | (row.get(i + 1).copied().unwrap_or(0) << (64 - b))
        }
    }
}

/// A word ready to place: its ink as bits and its ink grown by the margin.
struct Shape {
    ink: Bits,
    /// Offsets (relative to the box corner) of the grown ink's pixels.
    halo: Vec<(i32, i32)>,
}

fn shape(mask: &TextMask, (mx, my): (usize, usize)) -> Shape {
    let (w, h) = (mask.width as usize, mask.height as usize);
    let mut ink = Bits::new(w, h);
    for y in 0..h {
        for x in 0..w {
            if mask.coverage[y * w + x] > 0.0 {
                ink.set(x, y);
            }
        }
    }
    // Grow by a (2mx+1)×(2my+1) rectangle: rows first, then columns.
    let (gw, gh) = (w + 2 * mx, h + 2 * my);
    let mut rows = vec![false; gw * h];
    for y in 0..h {
        for x in 0..w {
            if mask.coverage[y * w + x] > 0.0 {
                rows[y * gw + x..=y * gw + x + 2 * mx].fill(true);
            }
        }
    }
    let mut halo = Vec::new();
    for gy in 0..gh {
        let lo = gy.saturating_sub(2 * my);
        let hi = gy.min(h.saturating_sub(1));
        for gx in 0..gw {
            if lo <= hi && (lo..=hi).any(|y| rows[y * gw + gx]) {
                halo.push((gx as i32 - mx as i32, gy as i32 - my as i32));
            }
        }
    }
    Shape { ink, halo }
}

fn collides(occupied: &Bits, ink: &Bits, bx: usize, by: usize) -> bool {
    for y in 0..ink.height {
        let row = &ink.words[y * ink.stride..(y + 1) * ink.stride];
        for (k, &bits) in row.iter().enumerate() {
            if bits != 0 && occupied.read64(bx + 64 * k, by + y) & bits != 0 {
                return true;
            }
        }
    }
    false
}

/// Where the spiral lets `shape` sit without touching `occupied`, if anywhere: an Archimedean
/// spiral from the centre (stretched to the canvas' aspect), starting at `angle`, turning in
/// `turn` (±1).
fn find_spot(occupied: &Bits, shape: &Shape, angle: f64, turn: f64) -> Option<(usize, usize)> {
    let (cw, ch) = (occupied.width as f64, occupied.height as f64);
    let (w, h) = (shape.ink.width as f64, shape.ink.height as f64);
    if w > cw || h > ch {
        return None;
    }
    let stretch = (cw / ch).max(1e-3);
    // Arms 2 px apart vertically; steps about 1.5 px along the arm.
    let a = 2.0 / std::f64::consts::TAU;
    let r_end = (cw / stretch).hypot(ch);
    let mut t = 0.0f64;
    let mut last = None;
    loop {
        let r = a * t;
        if r > r_end {
            return None;
        }
        let th = angle + turn * t;
        let cx = cw / 2.0 + r * th.cos() * stretch;
        let cy = ch / 2.0 + r * th.sin();
        t += (1.5 / (r * stretch.max(1.0)).max(1.0)).min(0.5);
        let bx = (cx - w / 2.0).round();
        let by = (cy - h / 2.0).round();
        if bx < 0.0 || by < 0.0 || bx + w > cw || by + h > ch {
            continue;
        }
        let spot = (bx as usize, by as usize);
        if last == Some(spot) {
            continue;
        }
        last = Some(spot);
        if !collides(occupied, &shape.ink, spot.0, spot.1) {
            return Some(spot);
        }
    }
}

/// The largest size ≤ `px` at which `text` fits in a `width`×`height` canvas.
fn fit_px(text: &str, px: f32, width: u32, height: u32) -> f32 {
    let mut px = px;
    for _ in 0..60 {
        let (w, h) = text_size(text, px, true);
        if w <= width && h <= height {
            return px;
        }
        let shrink = (width as f32 / w.max(1) as f32).min(height as f32 / h.max(1) as f32);
        px = (px * shrink.clamp(0.5, 0.97)).min(px - 0.25);
        if px < 1.0 {
            break;
        }
    }
    0.0
}

/// The words a cloud shows, largest weight first (ties in input order).
fn ranked(words: &[CloudWord]) -> Vec<&CloudWord> {
    let mut kept: Vec<&CloudWord> = words
        .iter()
        .filter(|w| w.weight.is_finite() && w.weight > 0.0 && !w.text.trim().is_empty())
        .collect();
    kept.sort_by(|a, b| b.weight.total_cmp(&a.weight));
    kept
}

/// Places `words` on a `width`×`height` canvas (see the module docs): returned largest weight
/// first, font sizes non-increasing along the list, no two words' ink within the margin of each
/// other, every box inside the canvas. The biggest word is always placed unless the canvas
/// cannot hold even a 1 px rendering of it. `seed` picks the spiral's start angle and turn.
pub fn layout(words: &[CloudWord], width: u32, height: u32, seed: u64) -> Vec<Placed> {
    let words = ranked(words);
    if words.is_empty() || width == 0 || height == 0 {
        return Vec::new();
    }
    let top = words[0].weight;
    let base: Vec<f32> = words
        .iter()
        .map(|w| MIN_PX + (MAX_PX - MIN_PX) * (w.weight / top).clamp(0.0, 1.0))
        .collect();
    // Scale so that the boxes cover at most FILL of the canvas (area goes with px²).
    let area: f64 = words
        .iter()
        .zip(&base)
        .map(|(w, &px)| {
            let (a, b) = text_size(&w.text, px, true);
            a as f64 * b as f64
        })
        .sum();
    let room = FILL * width as f64 * height as f64;
    let mut scale = if area > room {
        (room / area).sqrt() as f32
    } else {
        1.0
    };
    // Never more than a third of the canvas' height for one line of text.
    scale = scale.min(height as f32 / 3.0 / MAX_PX);

    let mut best: Vec<Placed> = Vec::new();
    for attempt in 0..ATTEMPTS {
        let placed = place(&words, &base, scale, width, height, seed);
        let done = placed.len() == words.len();
        if attempt == 0 || placed.len() > best.len() {
            best = placed;
        }
        if done || base[0] * scale * RETRY_SCALE < FLOOR_PX {
            break;
        }
        scale *= RETRY_SCALE;
    }
    best
}

fn place(words: &[&CloudWord], base: &[f32], scale: f32, width: u32, height: u32, seed: u64) -> Vec<Placed> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let angle = rng.random_range(0.0..std::f64::consts::TAU);
    let turn = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
    let mut occupied = Bits::new(width as usize, height as usize);
    let mut out = Vec::new();
    let mut cap = f32::INFINITY;
    for (i, (word, &b)) in words.iter().zip(base).enumerate() {
        let mut px = (b * scale).max(FLOOR_PX).min(cap);
        let fitted = fit_px(&word.text, px, width, height);
        if fitted < px {
            if i > 0 && fitted < FLOOR_PX {
                continue;
            }
            px = fitted;
        }
        if px <= 0.0 {
            continue;
        }
        let mask = text_mask(&word.text, px, true);
        let sh = shape(&mask, margins(px));
        let Some((bx, by)) = find_spot(&occupied, &sh, angle, turn) else {
            continue;
        };
        for &(dx, dy) in &sh.halo {
            let (x, y) = (bx as i32 + dx, by as i32 + dy);
            if x >= 0 && y >= 0 && (x as u32) < width && (y as u32) < height {
                occupied.set(x as usize, y as usize);
            }
        }
        // Later (lighter) words never get a bigger font than a shrunk heavier one.
        cap = cap.min(px);
        out.push(Placed {
            text: word.text.clone(),
            weight: word.weight,
            x: bx as i32,
            y: by as i32,
            w: mask.width,
            h: mask.height,
            px,
        });
    }
    out
}

fn hsl(h: f32, s: f32, l: f32) -> [u8; 3] {
    let h = h.rem_euclid(360.0) / 60.0;
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    [r, g, b].map(|v| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8)
}

fn color(palette: Palette, rng: &mut ChaCha8Rng) -> [u8; 3] {
    match palette {
        // Greens through teals to blues, dark enough to read on white.
        Palette::Positive => hsl(
            rng.random_range(100.0..215.0),
            rng.random_range(0.55..0.85),
            rng.random_range(0.26..0.40),
        ),
        // Crimson through reds to oranges.
        Palette::Negative => hsl(
            rng.random_range(-12.0..32.0),
            rng.random_range(0.70..0.92),
            rng.random_range(0.34..0.46),
        ),
    }
}

/// A `width`×`height` word cloud of `words` on white (see [`layout`]); colours from `palette`,
/// varied by `seed`. No words give a blank canvas.
pub fn word_cloud(words: &[CloudWord], width: u32, height: u32, palette: Palette, seed: u64) -> RgbImage {
    let mut img = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x636f_6c6f_7572_7321);
    for p in layout(words, width, height, seed) {
        let c = color(palette, &mut rng);
        draw_mask(&mut img, &p.mask(), p.x, p.y, c);
    }
    img
}

/// Title colours of the two panels of [`word_cloud_pair`].
const TITLE_POS: [u8; 3] = [25, 110, 60];
const TITLE_NEG: [u8; 3] = [175, 40, 30];

/// Two clouds side by side in one `width`×`height` picture: `positive` (greens) under
/// `title_pos` on the left, `negative` (reds) under `title_neg` on the right, a thin rule
/// between them; a panel without words says "none".
pub fn word_cloud_pair(
    positive: &[CloudWord],
    negative: &[CloudWord],
    title_pos: &str,
    title_neg: &str,
    width: u32,
    height: u32,
    seed: u64,
) -> RgbImage {
    let mut img = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    let gap = 16u32.min(width);
    let panel_w = (width - gap) / 2;
    let title_px = (height as f32 / 16.0).clamp(10.0, 18.0);
    let title_h = text_size("Ag", title_px, true).1 + 8;
    let cloud_h = height.saturating_sub(title_h + 4);
    let panels = [
        (0u32, positive, title_pos, Palette::Positive, TITLE_POS),
        (panel_w + gap, negative, title_neg, Palette::Negative, TITLE_NEG),
    ];
    for (i, (x0, words, title, palette, title_color)) in panels.into_iter().enumerate() {
        let shown = truncate_to_width(title, title_px, true, panel_w.saturating_sub(8));
        let tw = text_size(&shown, title_px, true).0;
        draw_text(
            &mut img,
            &shown,
            (x0 + (panel_w.saturating_sub(tw)) / 2) as i32,
            4,
            title_px,
            title_color,
            true,
        );
        if ranked(words).is_empty() {
            let px = (title_px * 0.9).max(10.0);
            let (nw, nh) = text_size("none", px, false);
            let x = x0 + panel_w.saturating_sub(nw) / 2;
            let y = title_h + cloud_h.saturating_sub(nh) / 2;
            draw_text(&mut img, "none", x as i32, y as i32, px, [150, 150, 150], false);
            continue;
        }
        let cloud = word_cloud(words, panel_w, cloud_h, palette, seed.wrapping_add(i as u64));
        image::imageops::replace(&mut img, &cloud, x0 as i64, (title_h + 4) as i64);
    }
    // A light rule between the panels.
    let xm = panel_w + gap / 2;
    if xm < width {
        for y in 6..height.saturating_sub(6) {
            img.put_pixel(xm, y, Rgb([215, 215, 215]));
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(n: usize, seed: u64) -> Vec<CloudWord> {
        let vocab = [
            "water",
            "ocean",
            "blue",
            "waves",
            "beach",
            "surf",
            "sand",
            "coast",
            "tide",
            "salty",
            "harbor",
            "boat",
            "sail",
            "shore",
            "current",
            "seagull",
            "island",
            "reef",
            "coral",
            "fish",
            "whale",
            "dolphin",
            "storm",
            "breeze",
            "lighthouse",
            "anchor",
            "deep",
            "swim",
            "shell",
            "pier",
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|i| CloudWord {
                text: if i < vocab.len() {
                    vocab[i].to_string()
                } else {
                    format!("{}{i}", vocab[i % vocab.len()])
                },
                weight: rng.random_range(0.01..1.0),
            })
            .collect()
    }

    /// Fails on a pixel inked by two words, on a word inking within an earlier (bigger) word's
    /// margin, or on ink off the canvas.
    fn assert_no_overlap(placed: &[Placed], width: u32, height: u32) {
        let (w, h) = (width as i64, height as i64);
        let mut owner = vec![usize::MAX; (w * h) as usize];
        let mut near = vec![usize::MAX; (w * h) as usize];
        for (i, p) in placed.iter().enumerate() {
            assert!(
                p.x >= 0 && p.y >= 0 && p.x as u32 + p.w <= width && p.y as u32 + p.h <= height,
                "{p:?}"
            );
            let m = p.mask();
            assert_eq!((m.width, m.height), (p.w, p.h));
            let ink: Vec<(i64, i64)> = (0..m.height)
                .flat_map(|y| (0..m.width).map(move |x| (x, y)))
                .filter(|&(x, y)| m.inked(x, y))
                .map(|(x, y)| (p.x as i64 + x as i64, p.y as i64 + y as i64))
                .collect();
            for &(x, y) in &ink {
                let k = (y * w + x) as usize;
                assert_eq!(
                    owner[k],
                    usize::MAX,
                    "{:?} and {:?} overlap",
                    placed.get(owner[k]),
                    p.text
                );
                assert_eq!(
                    near[k],
                    usize::MAX,
                    "{:?} within the margin of {:?}",
                    p.text,
                    placed.get(near[k])
                );
                owner[k] = i;
            }
            let (mx, my) = margins(p.px);
            for &(x, y) in &ink {
                for yy in (y - my as i64).max(0)..=(y + my as i64).min(h - 1) {
                    for xx in (x - mx as i64).max(0)..=(x + mx as i64).min(w - 1) {
                        near[(yy * w + xx) as usize] = i;
                    }
                }
            }
        }
    }

    #[test]
    fn words_do_not_overlap_and_shrink_with_weight() {
        for (n, w, h, seed) in [
            (30usize, 500u32, 300u32, 1u64),
            (80, 400, 260, 2),
            (200, 300, 200, 3),
        ] {
            let ws = words(n, seed);
            let placed = layout(&ws, w, h, seed);
            assert!(!placed.is_empty());
            assert_no_overlap(&placed, w, h);
            for pair in placed.windows(2) {
                assert!(pair[0].weight >= pair[1].weight, "{pair:?}");
                assert!(pair[0].px >= pair[1].px, "{pair:?}");
            }
            let heaviest = ws.iter().map(|w| w.weight).fold(0.0, f32::max);
            assert_eq!(placed[0].weight, heaviest);
            if n == 30 {
                assert_eq!(placed.len(), 30, "a roomy canvas holds every word");
            }
            if n == 200 {
                assert!(placed.len() < 200, "a small canvas drops words");
            }
        }
    }

    #[test]
    fn the_biggest_word_is_always_placed() {
        let ws = vec![
            CloudWord {
                text: "supercalifragilisticexpialidocious".into(),
                weight: 5.0,
            },
            CloudWord {
                text: "tiny".into(),
                weight: 0.1,
            },
        ];
        let placed = layout(&ws, 120, 60, 0);
        assert_eq!(placed[0].text, "supercalifragilisticexpialidocious");
        assert!(placed[0].w <= 120);
        assert_no_overlap(&placed, 120, 60);
        // Equal weights get equal sizes.
        let same: Vec<CloudWord> = ["a", "b", "c"]
            .iter()
            .map(|t| CloudWord {
                text: t.to_string(),
                weight: 1.0,
            })
            .collect();
        let placed = layout(&same, 300, 200, 0);
        assert!(placed.iter().all(|p| p.px == placed[0].px));
    }

    #[test]
    fn deterministic_for_a_seed_and_seed_changes_the_picture() {
        let ws = words(40, 7);
        let a = word_cloud(&ws, 360, 240, Palette::Positive, 11);
        let b = word_cloud(&ws, 360, 240, Palette::Positive, 11);
        assert_eq!(a.as_raw(), b.as_raw());
        assert_ne!(
            a.as_raw(),
            word_cloud(&ws, 360, 240, Palette::Positive, 12).as_raw()
        );
        let pair = word_cloud_pair(&ws, &ws[..5], "feature 3 +", "feature 3 −", 640, 260, 4);
        assert_eq!(
            pair.as_raw(),
            word_cloud_pair(&ws, &ws[..5], "feature 3 +", "feature 3 −", 640, 260, 4).as_raw()
        );
    }

    #[test]
    fn palettes_are_green_blue_and_red_orange() {
        let ws = words(20, 3);
        let count = |img: &RgbImage, f: fn(&[u8; 3]) -> bool| {
            img.pixels().filter(|p| p.0 != [255; 3] && f(&p.0)).count()
        };
        let pos = word_cloud(&ws, 300, 200, Palette::Positive, 1);
        let neg = word_cloud(&ws, 300, 200, Palette::Negative, 1);
        let redish = |c: &[u8; 3]| c[0] > c[1] && c[0] > c[2];
        let not_red = |c: &[u8; 3]| c[0] < c[1].max(c[2]);
        assert!(count(&pos, not_red) > 500 && count(&pos, redish) == 0);
        assert!(count(&neg, redish) > 500 && count(&neg, not_red) == 0);
    }

    #[test]
    fn empty_or_invalid_input_gives_blank_panels() {
        let blank = word_cloud(&[], 200, 100, Palette::Negative, 0);
        assert_eq!(blank.dimensions(), (200, 100));
        assert!(blank.pixels().all(|p| p.0 == [255; 3]));
        let junk = [
            CloudWord {
                text: "  ".into(),
                weight: 1.0,
            },
            CloudWord {
                text: "nan".into(),
                weight: f32::NAN,
            },
            CloudWord {
                text: "neg".into(),
                weight: -1.0,
            },
        ];
        assert!(layout(&junk, 200, 100, 0).is_empty());
        assert!(layout(&words(5, 0), 0, 0, 0).is_empty());
        let pair = word_cloud_pair(&words(5, 1), &[], "positive", "negative", 500, 200, 0);
        assert_eq!(pair.dimensions(), (500, 200));
        // The right panel's body holds only the gray "none".
        let body: Vec<[u8; 3]> = (60..200)
            .flat_map(|y| (260..500).map(move |x| (x, y)))
            .map(|(x, y)| pair.get_pixel(x, y).0)
            .collect();
        assert!(body.iter().any(|c| *c != [255; 3]));
        assert!(
            body.iter().all(|c| c[0] == c[1] && c[1] == c[2]),
            "only gray in an empty panel"
        );
        let tiny = word_cloud_pair(&[], &[], "", "", 3, 2, 0);
        assert_eq!(tiny.dimensions(), (3, 2));
    }
}
