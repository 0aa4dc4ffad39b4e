//! SLIC superpixels (Achanta et al., "SLIC Superpixels Compared to State-of-the-Art Superpixel
//! Methods", TPAMI 2012) for LIME on images: k-means in CIELAB + position on a regular grid of
//! seeds, each seed only searching a 2S×2S window, then connectivity enforcement so that every
//! segment is one 4-connected piece. [`perturb`] hides segments the way LIME does.

use image::{Rgb, RgbImage};

/// LIME's image explainer segments into about this many superpixels (`slic(n_segments=50)`).
pub const DEFAULT_N_SEGMENTS: usize = 50;
/// scikit-image's `slic` default compactness (colour distance in CIELAB units against spatial
/// distance in grid steps).
pub const DEFAULT_COMPACTNESS: f32 = 10.0;
/// k-means iterations (scikit-image's `max_num_iter` default; Achanta et al. report that 10
/// suffice).
pub const ITERATIONS: usize = 10;
/// Pieces smaller than this fraction of the expected segment size are merged into a neighbour
/// (scikit-image's `min_size_factor`).
pub const MIN_SIZE_FACTOR: f32 = 0.5;

/// A segmentation of a `width`×`height` picture: `labels` row-major, values `0..count`, every
/// label used and every segment 4-connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segments {
    pub width: usize,
    pub height: usize,
    pub labels: Vec<u32>,
    pub count: usize,
}

impl Segments {
    /// The label of pixel `(x, y)`.
    pub fn label(&self, x: usize, y: usize) -> u32 {
        self.labels[y * self.width + x]
    }

    /// Whether each pixel lies on a segment border: one of its 4-neighbours has another label
    /// (both sides of a border are marked, like scikit-image's `find_boundaries(mode="thick")`).
    pub fn boundaries(&self) -> Vec<bool> {
        let (w, h) = (self.width, self.height);
        let mut out = vec![false; w * h];
        for y in 0..h {
            for x in 0..w {
                let l = self.labels[y * w + x];
                if x + 1 < w && self.labels[y * w + x + 1] != l {
                    out[y * w + x] = true;
                    out[y * w + x + 1] = true;
                }
                if y + 1 < h && self.labels[(y + 1) * w + x] != l {
                    out[y * w + x] = true;
                    out[(y + 1) * w + x] = true;
                }
            }
        }
        out
    }

    /// Pixels per segment.
    pub fn sizes(&self) -> Vec<usize> {
        let mut s = vec![0usize; self.count];
        for &l in &self.labels {
            s[l as usize] += 1;
        }
        s
    }

    /// Each segment's mean colour in `image` (rounded).
    ///
    /// # Panics
    /// When `image` is not `width`×`height`.
    pub fn mean_colors(&self, image: &RgbImage) -> Vec<[u8; 3]> {
        self.check_size(image);
        let mut sums = vec![[0u64; 3]; self.count];
        let mut counts = vec![0u64; self.count];
        for (p, &l) in image.pixels().zip(&self.labels) {
            for (s, &v) in sums[l as usize].iter_mut().zip(&p.0) {
                *s += v as u64;
            }
            counts[l as usize] += 1;
        }
        sums.iter()
            .zip(&counts)
            .map(|(s, &n)| {
                let n = n.max(1);
                [0, 1, 2].map(|k| ((s[k] + n / 2) / n) as u8)
            })
            .collect()
    }

    fn check_size(&self, image: &RgbImage) {
        assert_eq!(
            (image.width() as usize, image.height() as usize),
            (self.width, self.height),
            "image and segmentation sizes differ"
        );
    }
}

/// sRGB → CIELAB (D65), the conversion scikit-image's `rgb2lab` makes.
fn to_lab(image: &RgbImage) -> Vec<[f32; 3]> {
    let linear: Vec<f32> = (0..256)
        .map(|v| {
            let c = v as f32 / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        })
        .collect();
    let f = |t: f32| {
        if t > 0.008856 {
            t.cbrt()
        } else {
            7.787 * t + 16.0 / 116.0
        }
    };
    image
        .pixels()
        .map(|p| {
            let [r, g, b] = p.0.map(|v| linear[v as usize]);
            let x = (0.412453 * r + 0.357580 * g + 0.180423 * b) / 0.95047;
            let y = 0.212671 * r + 0.715160 * g + 0.072169 * b;
            let z = (0.019334 * r + 0.119193 * g + 0.950227 * b) / 1.08883;
            let (fx, fy, fz) = (f(x), f(y), f(z));
            [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
        })
        .collect()
}

fn dist2(a: &[f32; 3], b: &[f32; 3]) -> f32 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)
}

/// SLIC superpixels of `image`: about `n_segments` segments (a grid of ⌈√⌉-spaced seeds),
/// `compactness` trading colour (CIELAB) against spatial proximity — higher is more regular.
/// Deterministic: the same picture and parameters give the same labels.
pub fn slic(image: &RgbImage, n_segments: usize, compactness: f32) -> Segments {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let n = w * h;
    if n == 0 {
        return Segments {
            width: w,
            height: h,
            labels: Vec::new(),
            count: 0,
        };
    }
    let lab = to_lab(image);
    let k = n_segments.clamp(1, n);
    let step = (n as f32 / k as f32).sqrt().max(1.0);
    let nx = ((w as f32 / step).round() as usize).clamp(1, w);
    let ny = ((h as f32 / step).round() as usize).clamp(1, h);

    // Gradient for seed placement: squared CIELAB differences of the 4-neighbours.
    let at = |x: usize, y: usize| &lab[y * w + x];
    let gradient = |x: usize, y: usize| {
        let (xl, xr) = (x.saturating_sub(1), (x + 1).min(w - 1));
        let (yu, yd) = (y.saturating_sub(1), (y + 1).min(h - 1));
        dist2(at(xr, y), at(xl, y)) + dist2(at(x, yd), at(x, yu))
    };
    // Centres: [L, a, b, x, y].
    let mut centers: Vec<[f32; 5]> = Vec::with_capacity(nx * ny);
    for j in 0..ny {
        for i in 0..nx {
            let x = (((i as f32 + 0.5) * w as f32 / nx as f32) as usize).min(w - 1);
            let y = (((j as f32 + 0.5) * h as f32 / ny as f32) as usize).min(h - 1);
            let mut best = (gradient(x, y), x, y);
            for yy in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for xx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    let g = gradient(xx, yy);
                    if g < best.0 {
                        best = (g, xx, yy);
                    }
                }
            }
            let c = at(best.1, best.2);
            centers.push([c[0], c[1], c[2], best.1 as f32, best.2 as f32]);
        }
    }
    // Every pixel starts in its grid cell, so one outside every window keeps a sensible label.
    let mut labels: Vec<u32> = (0..n)
        .map(|p| {
            let (x, y) = (p % w, p / w);
            ((y * ny / h) * nx + x * nx / w) as u32
        })
        .collect();
    let spatial = (compactness.max(0.0) / step).powi(2);
    let reach = step.ceil() as isize;
    let mut dist = vec![f32::INFINITY; n];
    for _ in 0..ITERATIONS {
        dist.fill(f32::INFINITY);
        for (ci, c) in centers.iter().enumerate() {
            let (cx, cy) = (c[3].round() as isize, c[4].round() as isize);
            let x0 = (cx - reach).max(0) as usize;
            let x1 = ((cx + reach) as usize).min(w - 1);
            let y0 = (cy - reach).max(0) as usize;
            let y1 = ((cy + reach) as usize).min(h - 1);
            let col = [c[0], c[1], c[2]];
            for y in y0..=y1 {
                let dy = y as f32 - c[4];
                for x in x0..=x1 {
                    let p = y * w + x;
                    let dx = x as f32 - c[3];
                    let d = dist2(&lab[p], &col) + (dx * dx + dy * dy) * spatial;
                    if d < dist[p] {
                        dist[p] = d;
                        labels[p] = ci as u32;
                    }
                }
            }
        }
        let mut sums = vec![[0f64; 6]; centers.len()];
        for (p, &l) in labels.iter().enumerate() {
            let s = &mut sums[l as usize];
            let v = &lab[p];
            s[0] += v[0] as f64;
            s[1] += v[1] as f64;
            s[2] += v[2] as f64;
            s[3] += (p % w) as f64;
            s[4] += (p / w) as f64;
            s[5] += 1.0;
        }
        for (c, s) in centers.iter_mut().zip(&sums) {
            if s[5] > 0.0 {
                for k in 0..5 {
                    c[k] = (s[k] / s[5]) as f32;
                }
            }
        }
    }
    let expected = n as f32 / (nx * ny) as f32;
    let min_size = ((MIN_SIZE_FACTOR * expected) as usize).max(1);
    enforce_connectivity(&lab, w, h, &labels, min_size)
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Splits `labels` into 4-connected pieces, merges every piece smaller than `min_size` into the
/// adjacent piece of the closest mean colour (repeatedly, smallest first), and numbers the
/// result 0.. in raster order of first appearance.
fn enforce_connectivity(lab: &[[f32; 3]], w: usize, h: usize, labels: &[u32], min_size: usize) -> Segments {
    let n = w * h;
    const NONE: usize = usize::MAX;
    let mut comp = vec![NONE; n];
    let mut pixels: Vec<Vec<usize>> = Vec::new();
    let mut queue = Vec::new();
    for start in 0..n {
        if comp[start] != NONE {
            continue;
        }
        let id = pixels.len();
        let l = labels[start];
        let mut members = vec![start];
        comp[start] = id;
        queue.clear();
        queue.push(start);
        while let Some(p) = queue.pop() {
            let (x, y) = (p % w, p / w);
            let mut visit = |q: usize| {
                if comp[q] == NONE && labels[q] == l {
                    comp[q] = id;
                    members.push(q);
                    queue.push(q);
                }
            };
            if x > 0 {
                visit(p - 1);
            }
            if x + 1 < w {
                visit(p + 1);
            }
            if y > 0 {
                visit(p - w);
            }
            if y + 1 < h {
                visit(p + w);
            }
        }
        pixels.push(members);
    }
    let m = pixels.len();
    let mut parent: Vec<usize> = (0..m).collect();
    let mut sums: Vec<[f64; 3]> = pixels
        .iter()
        .map(|ps| {
            ps.iter().fold([0.0; 3], |mut s, &p| {
                for k in 0..3 {
                    s[k] += lab[p][k] as f64;
                }
                s
            })
        })
        .collect();
    loop {
        let mut small: Vec<usize> = (0..m)
            .filter(|&c| parent[c] == c && pixels[c].len() < min_size)
            .collect();
        small.sort_by_key(|&c| (pixels[c].len(), c));
        let mut merged = false;
        for c in small {
            if parent[c] != c || pixels[c].len() >= min_size {
                continue;
            }
            let size = pixels[c].len() as f64;
            let mean = [0, 1, 2].map(|k| sums[c][k] / size);
            let mut best: Option<(f64, usize)> = None;
            for i in 0..pixels[c].len() {
                let p = pixels[c][i];
                let (x, y) = (p % w, p / w);
                let neighbours = [
                    (x > 0).then(|| p - 1),
                    (x + 1 < w).then(|| p + 1),
                    (y > 0).then(|| p - w),
                    (y + 1 < h).then(|| p + w),
                ];
                for q in neighbours.into_iter().flatten() {
                    let r = find(&mut parent, comp[q]);
                    if r == c {
                        continue;
                    }
                    let rs = pixels[r].len() as f64;
                    let d: f64 = (0..3).map(|k| (sums[r][k] / rs - mean[k]).powi(2)).sum();
                    if best.is_none_or(|(bd, br)| d < bd || (d == bd && r < br)) {
                        best = Some((d, r));
                    }
                }
            }
            // A piece with no neighbour is the whole picture: it stays.
            let Some((_, into)) = best else { continue };
            let moved = std::mem::take(&mut pixels[c]);
            pixels[into].extend(moved);
            let add = sums[c];
            for (s, v) in sums[into].iter_mut().zip(add) {
                *s += v;
            }
            parent[c] = into;
            merged = true;
        }
        if !merged {
            break;
        }
    }
    let mut relabel = vec![u32::MAX; m];
    let mut count = 0u32;
    let mut out = vec![0u32; n];
    for p in 0..n {
        let r = find(&mut parent, comp[p]);
        if relabel[r] == u32::MAX {
            relabel[r] = count;
            count += 1;
        }
        out[p] = relabel[r];
    }
    Segments {
        width: w,
        height: h,
        labels: out,
        count: count as usize,
    }
}

/// How [`perturb`] hides a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// The segment's own mean colour (LIME's default, `hide_color=None`).
    Mean,
    /// One gray level.
    Gray(u8),
}

/// `image` with every segment `s` with `keep[s] == false` hidden by `fill`.
///
/// # Panics
/// When `keep` does not have one entry per segment or the sizes of `image` and `segments`
/// differ.
pub fn perturb(image: &RgbImage, segments: &Segments, keep: &[bool], fill: Fill) -> RgbImage {
    segments.check_size(image);
    assert_eq!(keep.len(), segments.count, "one keep flag per segment");
    let colors: Vec<[u8; 3]> = match fill {
        Fill::Mean => segments.mean_colors(image),
        Fill::Gray(g) => vec![[g; 3]; segments.count],
    };
    let mut out = image.clone();
    for (p, &l) in out.pixels_mut().zip(&segments.labels) {
        if !keep[l as usize] {
            *p = Rgb(colors[l as usize]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Flat-colour rectangles (not aligned to any seed grid) with ±6 of noise per channel, and
    /// the index of the rectangle each pixel belongs to.
    fn rectangles(seed: u64) -> (RgbImage, Vec<usize>) {
        let (w, h) = (160u32, 120u32);
        let colors = [
            [200u8, 40, 40],
            [40, 160, 60],
            [40, 60, 200],
            [230, 210, 60],
            [120, 120, 120],
        ];
        let region = |x: u32, y: u32| -> usize {
            if y < 47 {
                if x < 61 {
                    0
                } else {
                    1
                }
            } else if x < 103 {
                if y < 93 {
                    2
                } else {
                    4
                }
            } else {
                3
            }
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut regions = Vec::new();
        let img = RgbImage::from_fn(w, h, |x, y| {
            let r = region(x, y);
            regions.push(r);
            Rgb(colors[r].map(|c| (c as i32 + rng.random_range(-6..=6)).clamp(0, 255) as u8))
        });
        (img, regions)
    }

    fn connected(s: &Segments, label: u32) -> bool {
        let (w, h) = (s.width, s.height);
        let Some(start) = s.labels.iter().position(|&l| l == label) else {
            return false;
        };
        let mut seen = vec![false; w * h];
        let mut stack = vec![start];
        seen[start] = true;
        let mut reached = 0;
        while let Some(p) = stack.pop() {
            reached += 1;
            let (x, y) = (p % w, p / w);
            for (ok, q) in [
                (x > 0, p.wrapping_sub(1)),
                (x + 1 < w, p + 1),
                (y > 0, p.wrapping_sub(w)),
                (y + 1 < h, p + w),
            ] {
                if ok && !seen[q] && s.labels[q] == label {
                    seen[q] = true;
                    stack.push(q);
                }
            }
        }
        reached == s.labels.iter().filter(|&&l| l == label).count()
    }

    #[test]
    fn segments_follow_rectangle_borders_and_are_connected() {
        for (seed, n_segments) in [(1u64, 50usize), (2, 30), (3, 100)] {
            let (img, regions) = rectangles(seed);
            let s = slic(&img, n_segments, DEFAULT_COMPACTNESS);
            assert_eq!((s.width, s.height, s.labels.len()), (160, 120, 160 * 120));
            assert!(
                s.count * 2 >= n_segments && s.count <= 2 * n_segments,
                "{} segments for {n_segments}",
                s.count
            );
            let mut region_of = vec![None; s.count];
            for (p, &l) in s.labels.iter().enumerate() {
                let r = region_of[l as usize].get_or_insert(regions[p]);
                assert_eq!(
                    *r, regions[p],
                    "segment {l} straddles rectangles {r} and {}",
                    regions[p]
                );
            }
            let sizes = s.sizes();
            assert_eq!(sizes.iter().sum::<usize>(), 160 * 120);
            assert!(sizes.iter().all(|&z| z > 0), "every label 0..count used");
            for l in 0..s.count as u32 {
                assert!(connected(&s, l), "segment {l} is in pieces");
            }
        }
    }

    #[test]
    fn compactness_makes_segments_regular_on_a_noisy_picture() {
        // Pure noise: with high compactness the segments are the grid cells (near-equal sizes).
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let img = RgbImage::from_fn(120, 120, |_, _| Rgb([rng.random(), rng.random(), rng.random()]));
        let s = slic(&img, 36, 1000.0);
        assert_eq!(s.count, 36);
        let sizes = s.sizes();
        assert!(sizes.iter().all(|&z| (300..=500).contains(&z)), "{sizes:?}");
    }

    #[test]
    fn deterministic_and_boundaries_mark_label_changes() {
        let (img, _) = rectangles(5);
        let a = slic(&img, DEFAULT_N_SEGMENTS, DEFAULT_COMPACTNESS);
        let b = slic(&img, DEFAULT_N_SEGMENTS, DEFAULT_COMPACTNESS);
        assert_eq!(a, b);
        let border = a.boundaries();
        let w = a.width;
        for (p, &on) in border.iter().enumerate() {
            let (x, y) = (p % w, p / w);
            let l = a.labels[p];
            let differs = (x > 0 && a.labels[p - 1] != l)
                || (x + 1 < w && a.labels[p + 1] != l)
                || (y > 0 && a.labels[p - w] != l)
                || (y + 1 < a.height && a.labels[p + w] != l);
            assert_eq!(on, differs, "pixel ({x},{y})");
        }
        assert!(border.iter().any(|&b| b) && !border.iter().all(|&b| b));
    }

    #[test]
    fn tiny_and_flat_pictures() {
        let flat = RgbImage::from_pixel(7, 5, Rgb([9, 9, 9]));
        let s = slic(&flat, 200, DEFAULT_COMPACTNESS);
        assert!(s.count >= 1 && s.labels.iter().all(|&l| (l as usize) < s.count));
        let one = slic(&RgbImage::from_pixel(1, 1, Rgb([1, 2, 3])), 50, 10.0);
        assert_eq!((one.count, one.labels.clone()), (1, vec![0]));
        let empty = slic(&RgbImage::new(0, 0), 50, 10.0);
        assert_eq!(empty.count, 0);
    }

    #[test]
    fn perturb_keeps_or_flattens_segments() {
        let (img, _) = rectangles(7);
        let s = slic(&img, DEFAULT_N_SEGMENTS, DEFAULT_COMPACTNESS);
        assert_eq!(perturb(&img, &s, &vec![true; s.count], Fill::Mean), img);
        let means = s.mean_colors(&img);
        let flat = perturb(&img, &s, &vec![false; s.count], Fill::Mean);
        for (p, &l) in flat.pixels().zip(&s.labels) {
            assert_eq!(p.0, means[l as usize]);
        }
        let mut keep = vec![true; s.count];
        keep[0] = false;
        let gray = perturb(&img, &s, &keep, Fill::Gray(128));
        for ((p, q), &l) in gray.pixels().zip(img.pixels()).zip(&s.labels) {
            if l == 0 {
                assert_eq!(p.0, [128; 3]);
            } else {
                assert_eq!(p, q);
            }
        }
        // The mean of a flat-ish rectangle is close to its colour, not mixed with neighbours.
        let red = means[s.label(5, 5) as usize];
        assert!(red[0] > 190 && red[1] < 50 && red[2] < 50, "{red:?}");
    }
}
