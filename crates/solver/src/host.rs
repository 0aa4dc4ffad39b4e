//! The n×K half of a multinomial SAGA batch, fused into one pass on the host, for the CPU
//! backend whose tensors are host buffers (flex). At K = 1,000 the softmax, the loss, the
//! table difference, the table write and the column sums are a floor of their own beside the
//! GEMMs on the few active features (design §6); as tensor operations they were ten passes
//! over each `batch × K` block, here each row is read and written once while it sits in L1.
//!
//! The GEMMs stay with the backend: the batch's logits come out of one, its table difference
//! goes into the other, and both cross without a copy on flex.

/// `exp(x)` for `x ≤ 0` (a softmax's `z − max z`), in straight-line arithmetic the compiler
/// vectorizes: `2^n · p(r)` with `x = n ln 2 + r`, |r| ≤ ln2/2 (Cody–Waite split of ln 2) and
/// Cephes' degree-6 polynomial for `e^r` (relative error ≈ 1e-7, as libm's `expf`). Below
/// −87 (where `e^x` < 1.7e-38) the result is `e^−87`: a probability no f32 sum can see.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2²³: adding it rounds to an integer for |t| < 2²², branch-free.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 0.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    er * scale
}

/// Largest value of a row (NaN-blind: a NaN logit makes the objective NaN, which the path
/// reports as a divergence).
#[inline(always)]
fn row_max(row: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (m, &v) in lanes.iter_mut().zip(c) {
            *m = if v > *m { v } else { *m };
        }
    }
    let mut m = lanes
        .iter()
        .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    for &v in chunks.remainder() {
        m = if v > m { v } else { m };
    }
    m
}

/// `e = exp(row − shift)` written over the row; returns `Σ e` (eight partial sums, so the
/// loop vectorizes).
#[inline(always)]
fn exp_in_place(row: &mut [f32], shift: f32) -> f32 {
    let mut lanes = [0f32; 8];
    let mut chunks = row.chunks_exact_mut(8);
    for c in &mut chunks {
        for (s, v) in lanes.iter_mut().zip(c.iter_mut()) {
            *v = exp_nonpositive(*v - shift);
            *s += *v;
        }
    }
    let mut sum: f32 = lanes.iter().sum();
    for v in chunks.into_remainder() {
        *v = exp_nonpositive(*v - shift);
        sum += *v;
    }
    sum
}

/// One batch of multinomial SAGA, the part that is K wide, for batch row `r` at split row
/// `i = (first_row + r) mod n` (`labels`, `weights` and the table are the split's, all n rows):
/// `a = w_i·(softmax(z) − onehot(y_i))`, `Δ = a − T[i]`, `T[i] ← a`, `Σ_r Δ` into `dsum`.
/// `logits` (`[B, K]`, bias added) is overwritten with Δ. Returns `Σ_r w_r·loss_r` with
/// `loss = log Σ e^z − z_y`, summed in f32 as the tensor path sums it: the epoch objective's
/// f32 plateau is what the lookbehind rule detects, so both paths stop alike.
///
/// On x86-64 with AVX2 the same code runs compiled for it (8 lanes instead of SSE2's 4; no
/// FMA contraction, so the results are the same bits either way).
pub fn multinomial_batch(
    logits: &mut [f32],
    labels: &[i64],
    weights: Option<&[f32]>,
    table: &mut [f32],
    first_row: usize,
    dsum: &mut [f32],
) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { multinomial_batch_avx2(logits, labels, weights, table, first_row, dsum) };
    }
    multinomial_batch_portable(logits, labels, weights, table, first_row, dsum)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn multinomial_batch_avx2(
    logits: &mut [f32],
    labels: &[i64],
    weights: Option<&[f32]>,
    table: &mut [f32],
    first_row: usize,
    dsum: &mut [f32],
) -> f32 {
    multinomial_batch_portable(logits, labels, weights, table, first_row, dsum)
}

#[inline(always)]
fn multinomial_batch_portable(
    logits: &mut [f32],
    labels: &[i64],
    weights: Option<&[f32]>,
    table: &mut [f32],
    first_row: usize,
    dsum: &mut [f32],
) -> f32 {
    let k = dsum.len();
    let n = table.len() / k;
    let mut loss = 0f32;
    for (r, row) in logits.chunks_exact_mut(k).enumerate() {
        let i = (first_row + r) % n;
        let y = labels[i] as usize;
        let w = weights.map_or(1.0, |w| w[i]);
        let max = row_max(row);
        let z_y = row[y] - max;
        let sum = exp_in_place(row, max);
        loss += w * (sum.ln() - z_y);
        let scale = w / sum;
        let trow = &mut table[i * k..(i + 1) * k];
        for ((e, t), s) in row.iter_mut().zip(trow.iter_mut()).zip(dsum.iter_mut()) {
            let a = *e * scale;
            let delta = a - *t;
            *t = a;
            *e = delta;
            *s += delta;
        }
        // The one-hot term: a_y and Δ_y are w lower.
        trow[y] -= w;
        row[y] -= w;
        dsum[y] -= w;
    }
    loss
}

/// The state of a SAGA epoch on few features, on the host: `wt`/`gbar_w` are `[m, K]`
/// row-major, `b`/`gbar_b` are `[K]`.
pub struct HostLayer {
    pub wt: Vec<f32>,
    pub b: Vec<f32>,
    pub gbar_w: Vec<f32>,
    pub gbar_b: Vec<f32>,
}

/// The penalty and step of one λ, as the host epoch needs them.
#[derive(Debug, Clone, Copy)]
pub struct HostStep {
    pub lambda: f64,
    pub alpha: f64,
    pub lr: f64,
    pub group: bool,
}

/// A whole multinomial SAGA epoch on `m` features, every batch fused on the host: for each
/// row the logits `b + Σ_j x_j W_j` (m rows of W, in cache), the K-wide softmax/table step of
/// [`multinomial_batch`], and the gradient `Σ_j x_j Δ` accumulated at once; then the batch's
/// proximal step. No `batch × K` block is ever stored, and no per-batch tensor operation
/// runs: with a few active features (the head of an ImageNet path) the GEMMs of the tensor
/// path were half of the epoch and ran far below the machine's GEMM rate.
///
/// `x` is the split's `[n, m]` rows, `batches` the `(first row, length)` of each batch in the
/// epoch's order (wrapping at n). Returns the epoch's loss sum (f32, as the tensor path sums).
#[allow(clippy::too_many_arguments)]
pub fn saga_epoch(
    x: &[f32],
    labels: &[i64],
    weights: Option<&[f32]>,
    table: &mut [f32],
    layer: &mut HostLayer,
    batches: impl Iterator<Item = (usize, usize)>,
    step: HostStep,
) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { saga_epoch_avx2(x, labels, weights, table, layer, batches, step) };
    }
    saga_epoch_portable(x, labels, weights, table, layer, batches, step)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn saga_epoch_avx2(
    x: &[f32],
    labels: &[i64],
    weights: Option<&[f32]>,
    table: &mut [f32],
    layer: &mut HostLayer,
    batches: impl Iterator<Item = (usize, usize)>,
    step: HostStep,
) -> f32 {
    saga_epoch_portable(x, labels, weights, table, layer, batches, step)
}

#[inline(always)]
fn saga_epoch_portable(
    x: &[f32],
    labels: &[i64],
    weights: Option<&[f32]>,
    table: &mut [f32],
    layer: &mut HostLayer,
    batches: impl Iterator<Item = (usize, usize)>,
    step: HostStep,
) -> f32 {
    let k = layer.b.len();
    let m = layer.wt.len() / k.max(1);
    let n = labels.len();
    let nf = n as f32;
    let mut row = vec![0f32; k];
    let mut gsum = vec![0f32; m * k];
    let mut dsum = vec![0f32; k];
    let mut loss = 0f32;
    for (start, len) in batches {
        gsum.iter_mut().for_each(|v| *v = 0.0);
        dsum.iter_mut().for_each(|v| *v = 0.0);
        let mut batch_loss = 0f32;
        for r in 0..len {
            let i = (start + r) % n;
            let xi = &x[i * m..(i + 1) * m];
            row.copy_from_slice(&layer.b);
            for (j, &xj) in xi.iter().enumerate() {
                if xj != 0.0 {
                    for (z, &w) in row.iter_mut().zip(&layer.wt[j * k..(j + 1) * k]) {
                        *z += xj * w;
                    }
                }
            }
            batch_loss += multinomial_batch_portable(&mut row, labels, weights, table, i, &mut dsum);
            for (j, &xj) in xi.iter().enumerate() {
                if xj != 0.0 {
                    for (g, &d) in gsum[j * k..(j + 1) * k].iter_mut().zip(&row) {
                        *g += xj * d;
                    }
                }
            }
        }
        loss += batch_loss;
        batch_step(
            &mut layer.wt,
            &mut layer.gbar_w,
            &gsum,
            &mut layer.b,
            &mut layer.gbar_b,
            &dsum,
            len,
            nf,
            step,
        );
    }
    loss
}

/// The end of a SAGA batch of `len` rows on the host: `w ← prox(w − lr·(g/B + ḡ))` and
/// `b ← b − lr·(d/B + ḡ_b)` from the batch's gradient sums `gsum`, `dsum`, then the averages
/// take them (`ḡ += g/n`). `w` and `gbar_w` are `[m, K]` rows, or packed pairs (elementwise).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn batch_step(
    w: &mut [f32],
    gbar_w: &mut [f32],
    gsum: &[f32],
    b: &mut [f32],
    gbar_b: &mut [f32],
    dsum: &[f32],
    len: usize,
    nf: f32,
    step: HostStep,
) {
    let bsz = len as f32;
    let lr = step.lr as f32;
    for (wv, (g, gb)) in w.iter_mut().zip(gsum.iter().zip(gbar_w.iter())) {
        *wv -= lr * (*g / bsz + *gb);
    }
    prox_host(w, b.len(), step);
    for (bv, (d, gb)) in b.iter_mut().zip(dsum.iter().zip(gbar_b.iter())) {
        *bv -= lr * (*d / bsz + *gb);
    }
    for (gb, g) in gbar_w.iter_mut().zip(gsum) {
        *gb += *g / nf;
    }
    for (gb, d) in gbar_b.iter_mut().zip(dsum) {
        *gb += *d / nf;
    }
}

/// The (feature, class) weights a screened problem solves for, by feature (CSR): feature
/// `j`'s classes are `classes[offsets[j]..offsets[j + 1]]`, ascending. Every other weight of
/// the problem's `[m, K]` layer is zero and stays zero: with an elementwise penalty each
/// weight has its own optimality condition, so the strong rule and the KKT check can screen
/// weights one by one (as glmnet screens features), not only whole features.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairSet {
    pub offsets: Vec<usize>,
    pub classes: Vec<u32>,
}

impl PairSet {
    /// The pairs of an `[m, K]` layer for which `keep(j, c)` holds.
    pub fn from_mask(m: usize, k: usize, mut keep: impl FnMut(usize, usize) -> bool) -> Self {
        let mut offsets = Vec::with_capacity(m + 1);
        let mut classes = Vec::new();
        offsets.push(0);
        for j in 0..m {
            classes.extend((0..k).filter(|&c| keep(j, c)).map(|c| c as u32));
            offsets.push(classes.len());
        }
        PairSet { offsets, classes }
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// Number of features (rows of the layer).
    pub fn features(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Where feature `j`'s pairs are, in `classes` and in any per-pair vector.
    #[inline(always)]
    pub fn span(&self, j: usize) -> std::ops::Range<usize> {
        self.offsets[j]..self.offsets[j + 1]
    }

    /// The row-major index `j·K + c` of each pair in an `[m, K]` layer, in pair order.
    pub fn dense_indices(&self, k: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.features()).flat_map(move |j| {
            self.classes[self.span(j)]
                .iter()
                .map(move |&c| j * k + c as usize)
        })
    }
}

/// [`saga_epoch`] on the pairs of `pairs` only: per row the logits `b + Σ_(j,c) x_j W_jc`
/// over the pairs, the same K-wide softmax/table step, and the gradient of each pair; then the
/// batch's proximal step on the pairs. Per row that is `2·P` multiply-adds (P pairs, a few per
/// feature at the head of an ImageNet path) where the dense epoch does `2·m·K`. With every
/// pair of the layer in `pairs` it computes what [`saga_epoch`] computes, bit for bit.
///
/// `blocks` yields each batch's `(first row, length)` and its `[len, m]` rows of X (read in
/// place or from a copy by the caller); `layer` is `[m, K]` with zeros outside the pairs.
#[allow(clippy::too_many_arguments)]
pub fn saga_pair_epoch(
    blocks: impl Iterator<Item = ((usize, usize), Vec<f32>)>,
    labels: &[i64],
    weights: Option<&[f32]>,
    table: &mut [f32],
    layer: &mut HostLayer,
    pairs: &PairSet,
    step: HostStep,
) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { saga_pair_epoch_avx2(blocks, labels, weights, table, layer, pairs, step) };
    }
    saga_pair_epoch_portable(blocks, labels, weights, table, layer, pairs, step)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn saga_pair_epoch_avx2(
    blocks: impl Iterator<Item = ((usize, usize), Vec<f32>)>,
    labels: &[i64],
    weights: Option<&[f32]>,
    table: &mut [f32],
    layer: &mut HostLayer,
    pairs: &PairSet,
    step: HostStep,
) -> f32 {
    saga_pair_epoch_portable(blocks, labels, weights, table, layer, pairs, step)
}

#[inline(always)]
fn saga_pair_epoch_portable(
    blocks: impl Iterator<Item = ((usize, usize), Vec<f32>)>,
    labels: &[i64],
    weights: Option<&[f32]>,
    table: &mut [f32],
    layer: &mut HostLayer,
    pairs: &PairSet,
    step: HostStep,
) -> f32 {
    let k = layer.b.len();
    let m = pairs.features();
    let n = labels.len();
    let nf = n as f32;
    // The pairs' weights and averages, packed in pair order for the inner loops.
    let dense: Vec<usize> = pairs.dense_indices(k).collect();
    let mut wp: Vec<f32> = dense.iter().map(|&i| layer.wt[i]).collect();
    let mut gbar: Vec<f32> = dense.iter().map(|&i| layer.gbar_w[i]).collect();
    let classes = &pairs.classes;
    let mut row = vec![0f32; k];
    let mut gsum = vec![0f32; wp.len()];
    let mut dsum = vec![0f32; k];
    let mut loss = 0f32;
    for ((start, len), x) in blocks {
        gsum.iter_mut().for_each(|v| *v = 0.0);
        dsum.iter_mut().for_each(|v| *v = 0.0);
        let mut batch_loss = 0f32;
        for r in 0..len {
            let i = (start + r) % n;
            let xi = &x[r * m..(r + 1) * m];
            row.copy_from_slice(&layer.b);
            for (j, &xj) in xi.iter().enumerate() {
                if xj != 0.0 {
                    let span = pairs.span(j);
                    for (&c, &w) in classes[span.clone()].iter().zip(&wp[span]) {
                        row[c as usize] += xj * w;
                    }
                }
            }
            batch_loss += multinomial_batch_portable(&mut row, labels, weights, table, i, &mut dsum);
            for (j, &xj) in xi.iter().enumerate() {
                if xj != 0.0 {
                    let span = pairs.span(j);
                    for (&c, g) in classes[span.clone()].iter().zip(&mut gsum[span]) {
                        *g += xj * row[c as usize];
                    }
                }
            }
        }
        loss += batch_loss;
        let elementwise = HostStep { group: false, ..step };
        batch_step(
            &mut wp,
            &mut gbar,
            &gsum,
            &mut layer.b,
            &mut layer.gbar_b,
            &dsum,
            len,
            nf,
            elementwise,
        );
    }
    for ((&i, w), g) in dense.iter().zip(wp).zip(gbar) {
        layer.wt[i] = w;
        layer.gbar_w[i] = g;
    }
    loss
}

/// The table average `Xᵀ·T / n` at the pairs of `pairs` (pair order), from the `[len, m]` rows
/// of X of each `(start, len)` block and the n×K table: `n·P` multiply-adds where the dense
/// average is a GEMM over every `(feature, class)`. Summed in f64.
pub fn pair_average(
    blocks: impl Iterator<Item = ((usize, usize), Vec<f32>)>,
    table: &[f32],
    k: usize,
    pairs: &PairSet,
) -> Vec<f32> {
    let m = pairs.features();
    let n = table.len() / k.max(1);
    let mut sum = vec![0f64; pairs.len()];
    for ((start, len), x) in blocks {
        for r in 0..len {
            let i = (start + r) % n;
            let trow = &table[i * k..(i + 1) * k];
            for (j, &xj) in x[r * m..(r + 1) * m].iter().enumerate() {
                if xj != 0.0 {
                    let span = pairs.span(j);
                    for (&c, s) in pairs.classes[span.clone()].iter().zip(&mut sum[span]) {
                        *s += xj as f64 * trow[c as usize] as f64;
                    }
                }
            }
        }
    }
    sum.into_iter().map(|s| (s / n as f64) as f32).collect()
}

/// The elastic-net proximal step of [`crate::engine::prox`] on a host `[m, K]` weight block.
#[inline(always)]
fn prox_host(wt: &mut [f32], k: usize, step: HostStep) {
    let shrink = (step.lr * step.lambda * step.alpha) as f32;
    let ridge = (1.0 + step.lr * step.lambda * (1.0 - step.alpha)) as f32;
    if step.group {
        for wrow in wt.chunks_exact_mut(k) {
            let norm = wrow.iter().map(|v| v * v).sum::<f32>().sqrt();
            let scale = if norm > 0.0 {
                (1.0 - shrink / norm).max(0.0)
            } else {
                0.0
            };
            wrow.iter_mut().for_each(|v| *v = *v * scale / ridge);
        }
    } else {
        for v in wt.iter_mut() {
            let soft = *v - v.clamp(-shrink, shrink);
            *v = if ridge == 1.0 { soft } else { soft / ridge };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm_to_a_few_ulp() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -87.0 * i as f32 / 200_000.0;
            let (got, want) = (exp_nonpositive(x) as f64, (x as f64).exp());
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst < 4e-7, "relative error {worst}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(-1000.0) < 2e-38);
    }

    #[test]
    fn fused_batch_equals_the_formulas() {
        let (b, k, n) = (5, 11, 7);
        let logits: Vec<f32> = (0..b * k).map(|i| ((i * 37) % 23) as f32 * 0.7 - 6.0).collect();
        // Labels and weights per split row, like the table.
        let labels: Vec<i64> = (0..n as i64).map(|i| (i * 3) % k as i64).collect();
        let weights: Vec<f32> = (0..n).map(|i| 0.5 + i as f32 * 0.25).collect();
        let table0: Vec<f32> = (0..n * k).map(|i| ((i * 13) % 17) as f32 * 0.01 - 0.08).collect();
        let first = 4; // rows 4, 5, 6, 0, 1: the batch wraps
        let (mut delta, mut table, mut dsum) = (logits.clone(), table0.clone(), vec![0f32; k]);
        let loss = multinomial_batch(&mut delta, &labels, Some(&weights), &mut table, first, &mut dsum);
        let mut want_loss = 0f64;
        let mut want_dsum = vec![0f64; k];
        for r in 0..b {
            let z: Vec<f64> = logits[r * k..(r + 1) * k].iter().map(|&v| v as f64).collect();
            let max = z.iter().cloned().fold(f64::MIN, f64::max);
            let s: f64 = z.iter().map(|v| (v - max).exp()).sum();
            let t = (first + r) % n;
            let y = labels[t] as usize;
            let w = weights[t] as f64;
            want_loss += w * (s.ln() - (z[y] - max));
            for c in 0..k {
                let a = w * ((z[c] - max).exp() / s - if c == y { 1.0 } else { 0.0 });
                let d = a - table0[t * k + c] as f64;
                assert!(
                    (table[t * k + c] as f64 - a).abs() < 1e-6,
                    "table row {t} col {c}"
                );
                assert!(
                    (delta[r * k + c] as f64 - d).abs() < 1e-6,
                    "delta row {r} col {c}"
                );
                want_dsum[c] += d;
            }
        }
        assert!(
            (loss as f64 - want_loss).abs() < 1e-5 * want_loss.abs(),
            "{loss} vs {want_loss}"
        );
        for c in 0..k {
            assert!((dsum[c] as f64 - want_dsum[c]).abs() < 1e-5);
        }
        // Rows outside the batch are untouched.
        let t = 2;
        assert_eq!(table[t * k..(t + 1) * k], table0[t * k..(t + 1) * k]);
    }

    /// A small multinomial epoch setup: `[n, m]` rows, labels, table, layer.
    fn epoch_setup(n: usize, m: usize, k: usize) -> (Vec<f32>, Vec<i64>, Vec<f32>, HostLayer) {
        let x: Vec<f32> = (0..n * m)
            .map(|i| {
                if i % 5 == 3 {
                    0.0
                } else {
                    ((i * 29) % 19) as f32 * 0.1 - 0.9
                }
            })
            .collect();
        let labels: Vec<i64> = (0..n as i64).map(|i| (i * 7) % k as i64).collect();
        let table: Vec<f32> = (0..n * k).map(|i| ((i * 11) % 13) as f32 * 0.01 - 0.06).collect();
        let layer = HostLayer {
            wt: (0..m * k).map(|i| ((i * 3) % 7) as f32 * 0.05 - 0.15).collect(),
            b: (0..k).map(|c| c as f32 * 0.01).collect(),
            gbar_w: (0..m * k).map(|i| ((i * 5) % 11) as f32 * 0.002 - 0.01).collect(),
            gbar_b: vec![0.001; k],
        };
        (x, labels, table, layer)
    }

    #[test]
    fn pair_epoch_on_every_pair_is_the_dense_epoch() {
        let (n, m, k) = (23, 4, 9);
        let (x, labels, mut dense_table, mut dense) = epoch_setup(n, m, k);
        let (_, _, mut pair_table, mut pairs_layer) = epoch_setup(n, m, k);
        let step = HostStep {
            lambda: 0.02,
            alpha: 0.9,
            lr: 0.3,
            group: false,
        };
        let batches = [(5usize, 8usize), (13, 8), (21, 7)]; // the last wraps
        let dense_loss = saga_epoch(
            &x,
            &labels,
            None,
            &mut dense_table,
            &mut dense,
            batches.iter().copied(),
            step,
        );
        let all = PairSet::from_mask(m, k, |_, _| true);
        let blocks = batches.iter().map(|&(start, len)| {
            let rows: Vec<f32> = (0..len)
                .flat_map(|r| x[((start + r) % n) * m..((start + r) % n + 1) * m].to_vec())
                .collect();
            ((start, len), rows)
        });
        let pair_loss = saga_pair_epoch(
            blocks,
            &labels,
            None,
            &mut pair_table,
            &mut pairs_layer,
            &all,
            step,
        );
        assert_eq!(pair_loss.to_bits(), dense_loss.to_bits());
        assert_eq!(pair_table, dense_table);
        assert_eq!(pairs_layer.wt, dense.wt);
        assert_eq!(pairs_layer.b, dense.b);
        assert_eq!(pairs_layer.gbar_w, dense.gbar_w);
        assert_eq!(pairs_layer.gbar_b, dense.gbar_b);
    }

    #[test]
    fn pair_epoch_leaves_other_weights_alone_and_averages_match_the_formula() {
        let (n, m, k) = (17, 3, 6);
        let (x, labels, mut table, mut layer) = epoch_setup(n, m, k);
        let pairs = PairSet::from_mask(m, k, |j, c| (j + c) % 3 == 0);
        assert_eq!(pairs.offsets, vec![0, 2, 4, 6]);
        // Zero outside the pairs, as a screened problem's layer is.
        let inside: Vec<usize> = pairs.dense_indices(k).collect();
        for (i, w) in layer.wt.iter_mut().enumerate() {
            if !inside.contains(&i) {
                *w = 0.0;
            }
        }
        let gbar_before = layer.gbar_w.clone();
        let blocks = [((0usize, n), x.clone())].into_iter();
        let step = HostStep {
            lambda: 0.01,
            alpha: 0.99,
            lr: 0.5,
            group: false,
        };
        saga_pair_epoch(blocks, &labels, None, &mut table, &mut layer, &pairs, step);
        for (i, (w, (g, before))) in layer
            .wt
            .iter()
            .zip(layer.gbar_w.iter().zip(&gbar_before))
            .enumerate()
        {
            if !inside.contains(&i) {
                assert_eq!(*w, 0.0, "weight {i} outside the pairs");
                assert_eq!(g, before);
            }
        }
        assert!(inside.iter().any(|&i| layer.wt[i] != 0.0));
        // The pair average is Xᵀ·T / n at the pairs.
        let avg = pair_average([((0usize, n), x.clone())].into_iter(), &table, k, &pairs);
        for (p, i) in inside.iter().enumerate() {
            let (j, c) = (i / k, i % k);
            let want: f64 = (0..n)
                .map(|r| x[r * m + j] as f64 * table[r * k + c] as f64)
                .sum::<f64>()
                / n as f64;
            assert!(
                (avg[p] as f64 - want).abs() < 1e-6,
                "pair {p}: {} vs {want}",
                avg[p]
            );
        }
    }
}
