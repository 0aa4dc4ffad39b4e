//! LIME on deep features (design §4): explain what parts of an input drive a network's deep
//! features, not its output. An input is cut into `m` interpretable components (words of a
//! sentence, superpixels of an image); seeded random subsets of them are switched off; the
//! network runs once on every perturbed input and *all* `D` feature activations of each pass are
//! recorded; then one weighted ridge regression per feature, all solved together (one `m × m`
//! factorisation, `D` right-hand sides), says how much each component adds to each feature.
//!
//! This follows the `lime` package (Ribeiro et al.) where it matters for the numbers: the first
//! sample is the unperturbed input; text samples switch off a uniformly drawn number of words,
//! image samples each superpixel with probability ½; samples are weighted by the kernel
//! `sqrt(exp(−(d/width)²))` of their cosine distance `d` to the unperturbed mask (lime's text
//! default, width 25 on distances ×100, and its image default, width 0.25, are the same kernel:
//! width 0.25 here); the surrogate is `Ridge(alpha=1)` with an intercept.

use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How the random masks are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskScheme {
    /// lime's text sampler: remove `r ~ U{1, …, m−1}` distinct components, chosen uniformly.
    RemoveCount,
    /// lime's image sampler: keep each component with probability ½.
    Bernoulli,
}

/// LIME settings, with lime's defaults except the sample count (see `samples`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimeConfig {
    /// Perturbed inputs per explanation, the unperturbed one included. lime defaults to 5,000;
    /// a few hundred already rank a sentence's words stably and each costs a forward pass.
    pub samples: usize,
    /// Kernel width on cosine distances in [0, 1].
    pub kernel_width: f64,
    /// Ridge penalty of the surrogate (sklearn's `alpha`).
    pub ridge_alpha: f64,
    pub seed: u64,
}

impl Default for LimeConfig {
    fn default() -> Self {
        LimeConfig {
            samples: 256,
            kernel_width: 0.25,
            ridge_alpha: 1.0,
            seed: 0,
        }
    }
}

/// Why an explanation could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum LimeError {
    #[error("LIME needs at least 2 samples, got {0}")]
    TooFewSamples(usize),
    #[error("LIME needs at least one component to switch off")]
    NoComponents,
    #[error("the forward pass returned {found} values for {samples} samples (expected a multiple)")]
    BadActivations { samples: usize, found: usize },
    #[error("the surrogate's normal equations are singular")]
    Singular,
    #[error("forward pass: {0}")]
    Forward(String),
}

/// Binary masks, `samples × m`, row-major: `true` keeps a component. Row 0 keeps everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masks {
    pub samples: usize,
    pub m: usize,
    pub keep: Vec<bool>,
}

impl Masks {
    pub fn row(&self, s: usize) -> &[bool] {
        &self.keep[s * self.m..(s + 1) * self.m]
    }

    /// Seeded masks drawn as `scheme` says.
    pub fn sample(m: usize, samples: usize, scheme: MaskScheme, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut keep = vec![true; samples * m];
        for s in 1..samples {
            let row = &mut keep[s * m..(s + 1) * m];
            match scheme {
                MaskScheme::RemoveCount => {
                    // lime: randint(1, m) components removed; with one component it is removed.
                    let r = if m > 1 { rng.random_range(1..m) } else { m };
                    for j in sample(&mut rng, m, r) {
                        row[j] = false;
                    }
                }
                MaskScheme::Bernoulli => {
                    for v in row.iter_mut() {
                        *v = rng.random_bool(0.5);
                    }
                }
            }
        }
        Masks { samples, m, keep }
    }

    /// Kernel weight of every sample: `sqrt(exp(−(d/width)²))`, `d` the cosine distance of the
    /// mask to the all-ones mask (`1 − sqrt(kept / m)`).
    pub fn kernel_weights(&self, width: f64) -> Vec<f64> {
        (0..self.samples)
            .map(|s| {
                let kept = self.row(s).iter().filter(|v| **v).count() as f64;
                let d = 1.0 - (kept / self.m as f64).sqrt();
                (-(d / width).powi(2)).exp().sqrt()
            })
            .collect()
    }
}

/// The surrogate of every deep feature for one input.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// Components of the input.
    pub m: usize,
    /// Deep features explained.
    pub d: usize,
    /// `[m, d]` row-major: `coef[c * d + j]` is component c's effect on feature j.
    pub coef: Vec<f32>,
    pub intercept: Vec<f32>,
    /// Weighted R² of each feature's surrogate on the samples (lime's `score`).
    pub r2: Vec<f32>,
    /// The features of the unperturbed input (sample 0).
    pub original: Vec<f32>,
    /// Forward passes (perturbed inputs) this explanation cost.
    pub forward_passes: usize,
}

impl Explanation {
    /// Component c's effect on feature j.
    pub fn weight(&self, c: usize, j: usize) -> f32 {
        self.coef[c * self.d + j]
    }

    /// Components ordered by their effect on feature j, largest first.
    pub fn ranking(&self, j: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.m).collect();
        order.sort_by(|&a, &b| self.weight(b, j).total_cmp(&self.weight(a, j)).then(a.cmp(&b)));
        order
    }
}

/// Explain one input with `m` components. `forward` gets the masks (row 0 keeps everything)
/// and returns the `[samples, D]` activations of the perturbed inputs, row-major; it should
/// batch its forward passes.
pub fn explain<F>(
    m: usize,
    scheme: MaskScheme,
    config: &LimeConfig,
    forward: F,
) -> Result<Explanation, LimeError>
where
    F: FnOnce(&Masks) -> Result<Vec<f32>, LimeError>,
{
    if config.samples < 2 {
        return Err(LimeError::TooFewSamples(config.samples));
    }
    if m == 0 {
        return Err(LimeError::NoComponents);
    }
    let masks = Masks::sample(m, config.samples, scheme, config.seed);
    let y = forward(&masks)?;
    if y.is_empty() || y.len() % config.samples != 0 {
        return Err(LimeError::BadActivations {
            samples: config.samples,
            found: y.len(),
        });
    }
    let d = y.len() / config.samples;
    let weights = masks.kernel_weights(config.kernel_width);
    let mut e = weighted_ridge(&masks, &weights, &y, d, config.ridge_alpha)?;
    e.original = y[..d].to_vec();
    e.forward_passes = config.samples;
    Ok(e)
}

/// `min Σ_s w_s (y_sj − b_j − z_sᵀβ_j)² + α‖β_j‖²` for every output j at once, in f64.
pub fn weighted_ridge(
    masks: &Masks,
    w: &[f64],
    y: &[f32],
    d: usize,
    alpha: f64,
) -> Result<Explanation, LimeError> {
    let (s_n, m) = (masks.samples, masks.m);
    let total: f64 = w.iter().sum();
    let z = |s: usize, c: usize| if masks.keep[s * m + c] { 1.0 } else { 0.0 };
    let mut z_mean = vec![0.0; m];
    let mut y_mean = vec![0.0; d];
    for s in 0..s_n {
        for (c, zm) in z_mean.iter_mut().enumerate() {
            *zm += w[s] * z(s, c);
        }
        for (j, ym) in y_mean.iter_mut().enumerate() {
            *ym += w[s] * y[s * d + j] as f64;
        }
    }
    z_mean.iter_mut().for_each(|v| *v /= total);
    y_mean.iter_mut().for_each(|v| *v /= total);
    // A = Zcᵀ W Zc + αI, B = Zcᵀ W Yc.
    let mut a = vec![0.0; m * m];
    let mut b = vec![0.0; m * d];
    let mut zc = vec![0.0; m];
    for s in 0..s_n {
        for c in 0..m {
            zc[c] = z(s, c) - z_mean[c];
        }
        for c in 0..m {
            let wz = w[s] * zc[c];
            if wz == 0.0 {
                continue;
            }
            for e in c..m {
                a[c * m + e] += wz * zc[e];
            }
            let row = &mut b[c * d..(c + 1) * d];
            for (j, bj) in row.iter_mut().enumerate() {
                *bj += wz * (y[s * d + j] as f64 - y_mean[j]);
            }
        }
    }
    for c in 0..m {
        a[c * m + c] += alpha;
        for e in 0..c {
            a[c * m + e] = a[e * m + c];
        }
    }
    let l = cholesky(&a, m).ok_or(LimeError::Singular)?;
    let beta = cholesky_solve(&l, m, &b, d);
    let intercept: Vec<f64> = (0..d)
        .map(|j| y_mean[j] - (0..m).map(|c| z_mean[c] * beta[c * d + j]).sum::<f64>())
        .collect();
    // Weighted R² of every surrogate.
    let mut ss_res = vec![0.0; d];
    let mut ss_tot = vec![0.0; d];
    for s in 0..s_n {
        for j in 0..d {
            let mut pred = intercept[j];
            for c in 0..m {
                if masks.keep[s * m + c] {
                    pred += beta[c * d + j];
                }
            }
            let yv = y[s * d + j] as f64;
            ss_res[j] += w[s] * (yv - pred).powi(2);
            ss_tot[j] += w[s] * (yv - y_mean[j]).powi(2);
        }
    }
    // sklearn's r2_score convention for a constant target: 1 when fitted exactly, else 0.
    let r2 = (0..d)
        .map(|j| match (ss_tot[j] > 0.0, ss_res[j] <= 1e-12 * total) {
            (true, _) => (1.0 - ss_res[j] / ss_tot[j]) as f32,
            (false, true) => 1.0,
            (false, false) => 0.0,
        })
        .collect();
    Ok(Explanation {
        m,
        d,
        coef: beta.iter().map(|&v| v as f32).collect(),
        intercept: intercept.iter().map(|&v| v as f32).collect(),
        r2,
        original: Vec::new(),
        forward_passes: 0,
    })
}

/// Lower-triangular L with A = L Lᵀ, or None when A is not positive definite.
fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut sum = a[i * n + j];
            for k in 0..j {
                sum -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                if sum <= 0.0 || !sum.is_finite() {
                    return None;
                }
                l[i * n + i] = sum.sqrt();
            } else {
                l[i * n + j] = sum / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// Solve L Lᵀ X = B for `r` right-hand sides (B is `[n, r]` row-major).
fn cholesky_solve(l: &[f64], n: usize, b: &[f64], r: usize) -> Vec<f64> {
    let mut x = b.to_vec();
    for i in 0..n {
        for k in 0..i {
            let lik = l[i * n + k];
            if lik != 0.0 {
                for j in 0..r {
                    x[i * r + j] -= lik * x[k * r + j];
                }
            }
        }
        let d = l[i * n + i];
        x[i * r..(i + 1) * r].iter_mut().for_each(|v| *v /= d);
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            let lki = l[k * n + i];
            if lki != 0.0 {
                for j in 0..r {
                    x[i * r + j] -= lki * x[k * r + j];
                }
            }
        }
        let d = l[i * n + i];
        x[i * r..(i + 1) * r].iter_mut().for_each(|v| *v /= d);
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_follow_lime() {
        let m = Masks::sample(7, 400, MaskScheme::RemoveCount, 3);
        assert!(m.row(0).iter().all(|v| *v));
        for s in 1..400 {
            let kept = m.row(s).iter().filter(|v| **v).count();
            assert!((1..=6).contains(&kept), "removes 1..m-1 words, kept {kept}");
        }
        assert_eq!(m, Masks::sample(7, 400, MaskScheme::RemoveCount, 3));
        assert_ne!(m, Masks::sample(7, 400, MaskScheme::RemoveCount, 4));
        let b = Masks::sample(50, 200, MaskScheme::Bernoulli, 1);
        let share = b.keep[50..].iter().filter(|v| **v).count() as f64 / (199.0 * 50.0);
        assert!((share - 0.5).abs() < 0.03, "kept share {share}");
        let w = m.kernel_weights(0.25);
        assert_eq!(w[0], 1.0);
        assert!(w[1..].iter().all(|&v| v > 0.0 && v < 1.0));
    }

    #[test]
    fn ridge_recovers_an_additive_model_and_matches_a_direct_solve() {
        // y_j = 1 + Σ_c a_cj z_c exactly: with a tiny penalty the surrogate is the model.
        let (m, d, samples) = (6, 3, 300);
        let masks = Masks::sample(m, samples, MaskScheme::Bernoulli, 9);
        let a: Vec<f64> = (0..m * d).map(|i| ((i * 7 % 11) as f64 - 5.0) / 3.0).collect();
        let mut y = vec![0f32; samples * d];
        for s in 0..samples {
            for j in 0..d {
                let mut v = 1.0;
                for c in 0..m {
                    if masks.row(s)[c] {
                        v += a[c * d + j];
                    }
                }
                y[s * d + j] = v as f32;
            }
        }
        let w = masks.kernel_weights(0.25);
        let e = weighted_ridge(&masks, &w, &y, d, 1e-9).unwrap();
        for (i, (&got, &want)) in e.coef.iter().zip(&a).enumerate() {
            assert!((got as f64 - want).abs() < 1e-4, "{i}: {got} vs {want}");
        }
        assert!(e.intercept.iter().all(|&b| (b - 1.0).abs() < 1e-4));
        assert!(e.r2.iter().all(|&r| r > 0.999_999));
        // With alpha = 1 the coefficients shrink, and equal the normal-equation solution
        // computed here without centering tricks: [Zᵀ W Z + αI_β] over the augmented [1, z].
        let e1 = weighted_ridge(&masks, &w, &y, d, 1.0).unwrap();
        let p = m + 1;
        let mut aug = vec![0.0; p * p];
        let mut rhs = vec![0.0; p * d];
        for s in 0..samples {
            let x: Vec<f64> = std::iter::once(1.0)
                .chain(masks.row(s).iter().map(|&k| if k { 1.0 } else { 0.0 }))
                .collect();
            for r in 0..p {
                for c in 0..p {
                    aug[r * p + c] += w[s] * x[r] * x[c];
                }
                for j in 0..d {
                    rhs[r * d + j] += w[s] * x[r] * y[s * d + j] as f64;
                }
            }
        }
        for r in 1..p {
            aug[r * p + r] += 1.0;
        }
        let l = cholesky(&aug, p).unwrap();
        let sol = cholesky_solve(&l, p, &rhs, d);
        for j in 0..d {
            assert!((sol[j] - e1.intercept[j] as f64).abs() < 1e-4);
            for c in 0..m {
                assert!((sol[(c + 1) * d + j] - e1.coef[c * d + j] as f64).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn explain_checks_its_inputs() {
        let cfg = LimeConfig::default();
        assert!(matches!(
            explain(0, MaskScheme::Bernoulli, &cfg, |_| Ok(vec![])),
            Err(LimeError::NoComponents)
        ));
        assert!(matches!(
            explain(3, MaskScheme::Bernoulli, &cfg, |_| Ok(vec![0.0; 7])),
            Err(LimeError::BadActivations { .. })
        ));
        let e = explain(3, MaskScheme::RemoveCount, &cfg, |masks| {
            Ok((0..masks.samples)
                .flat_map(|s| [masks.row(s)[1] as u8 as f32, 2.0])
                .collect())
        })
        .unwrap();
        assert_eq!((e.m, e.d, e.forward_passes), (3, 2, 256));
        assert_eq!(e.ranking(0)[0], 1);
        assert_eq!(e.original, vec![1.0, 2.0]);
    }
}
