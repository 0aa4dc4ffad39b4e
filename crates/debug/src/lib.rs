//! Debugging a network through its sparse decision layer (design §4; Wong, Santurkar & Madry
//! 2021, §4). A sparse layer is only worth its lost accuracy if a person can use it to find
//! what is wrong with the network; the paper shows three uses, each with a number that compares
//! the sparse layer with the dense one, and this crate computes all three:
//!
//! - [`probe`]: add a word (an identity word, say) to chosen inputs and count how many
//!   predictions flip, and which used features moved — evidence that the word is used;
//! - [`counterfactual`]: swap a sentence's word that raises a used feature for one that lowers
//!   it (from the feature's LIME word cloud) and count flips — does the reading of the features
//!   predict what the model does?
//! - [`misclass`]: the share of errors that zeroing one feature fixes, which feature, and the
//!   confusion pairs those features explain.
//!
//! Nothing here knows about burn or a backbone: the network is a closure from sentences to
//! their `[n, D]` deep-feature activations (row-major), and decision layers are
//! [`solver::Layer`]s, whose logits are `W · ((x − mean) / std) + b` on *raw* features `x`.
//! That keeps every algorithm testable on synthetic models whose answer is known.
//!
//! Conventions shared by the modules: a prediction is the arg-max of the logits, ties going to
//! the lower class index (as `argmax` in PyTorch and the solver's accuracy); probabilities are
//! the softmax of the logits; rates come with a Wilson score interval, because the counts are
//! often small (a few hundred sentences) and the normal approximation misbehaves near 0 and 1.

use solver::Layer;

pub mod counterfactual;
pub mod misclass;
pub mod probe;

#[cfg(test)]
pub(crate) mod synthetic;

pub use counterfactual::{
    counterfactuals, CounterfactualConfig, CounterfactualResult, LayerCounterfactuals, Swap,
};
pub use misclass::{
    single_feature_fixes, Candidates, ConfusionPair, ErrorFix, FeatureCount, FeatureFixes, MisclassResult,
};
pub use probe::{bias_probe, ClassFlips, LayerProbe, MovedFeature, Placement, ProbeResult, WordProbe};

/// Why a debugging computation stopped. `E` is the error type of the caller's forward pass,
/// kept as it is so the caller sees its own error (with `E = anyhow::Error` this converts into
/// `anyhow::Error` with `?`).
#[derive(Debug, thiserror::Error)]
pub enum DebugError<E> {
    #[error("forward pass: {0}")]
    Forward(E),
    #[error("the forward pass returned {found} values for {rows} inputs of {d} features")]
    BadActivations { rows: usize, d: usize, found: usize },
    #[error("{0}")]
    Shape(String),
    #[error("LIME: {0}")]
    Lime(interpret::lime::LimeError),
}

/// Standardized features `z = (x − mean) / std` of one raw row: the space the layer's weights
/// live in, so `w_{c,j} · z_j` is feature j's contribution to class c's logit.
pub fn standardize(layer: &Layer, raw_row: &[f32]) -> Vec<f32> {
    assert_eq!(
        raw_row.len(),
        layer.d,
        "a row of {} features for a layer of {}",
        raw_row.len(),
        layer.d
    );
    raw_row
        .iter()
        .zip(layer.mean.iter().zip(&layer.std))
        .map(|(&x, (&m, &s))| (x - m) / s)
        .collect()
}

/// Logits in f64, the precision every comparison here is made in (a flip decided by the last
/// f32 ulp of a sum would be noise, and the incremental updates of [`misclass`] must agree with
/// a full recomputation).
pub fn logits_f64(layer: &Layer, raw_row: &[f32]) -> Vec<f64> {
    let z = standardize(layer, raw_row);
    layer
        .weight
        .chunks_exact(layer.d)
        .zip(&layer.bias)
        .map(|(w, &b)| b as f64 + w.iter().zip(&z).map(|(&w, &z)| w as f64 * z as f64).sum::<f64>())
        .collect()
}

/// The layer's logits for one row of raw (unstandardized) features: `W · ((x − mean)/std) + b`.
/// Raw rows are what a backbone produces, so callers never standardize themselves.
///
/// # Panics
/// When `raw_row.len() != layer.d`.
pub fn logits(layer: &Layer, raw_row: &[f32]) -> Vec<f32> {
    logits_f64(layer, raw_row).into_iter().map(|v| v as f32).collect()
}

/// Index of the largest value, the lower index on ties (PyTorch's `argmax`); NaNs lose.
pub fn argmax<T: Copy + PartialOrd>(values: &[T]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate().skip(1) {
        if v > values[best] || values[best].partial_cmp(&values[best]).is_none() {
            best = i;
        }
    }
    best
}

/// Softmax of logits, computed in f64 after subtracting the maximum so large logits do not
/// overflow.
pub fn softmax<T: Copy + Into<f64>>(logits: &[T]) -> Vec<f64> {
    let max = logits.iter().map(|&v| v.into()).fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = logits.iter().map(|&v| (v.into() - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// The layer's class probabilities for one raw row.
pub fn probabilities(layer: &Layer, raw_row: &[f32]) -> Vec<f64> {
    softmax(&logits_f64(layer, raw_row))
}

/// Predicted class of every row of `rows` (`[n, d]` raw features, row-major).
///
/// # Panics
/// When `d != layer.d` or `rows.len()` is not a multiple of `d`.
pub fn predict(layer: &Layer, rows: &[f32], d: usize) -> Vec<usize> {
    assert_eq!(d, layer.d, "rows of {d} features for a layer of {}", layer.d);
    assert!(
        d > 0 && rows.len().is_multiple_of(d),
        "{} values are not rows of {d} features",
        rows.len()
    );
    rows.chunks_exact(d)
        .map(|r| argmax(&logits_f64(layer, r)))
        .collect()
}

/// Features with a nonzero weight in at least one class: the ones a person reads (for a dense
/// layer, all of them).
pub fn used_features(layer: &Layer) -> Vec<usize> {
    (0..layer.d)
        .filter(|&j| (0..layer.k).any(|c| layer.weight[c * layer.d + j] != 0.0))
        .collect()
}

/// Wilson score interval of a binomial proportion `successes / n` at normal quantile `z`
/// (1.96 for 95%). Unlike `p ± z·sqrt(p(1−p)/n)` it stays inside [0, 1] and is not empty at 0
/// or n successes, which matters for flip rates of a few dozen sentences. `n = 0` gives the
/// uninformative (0, 1).
pub fn wilson(successes: usize, n: usize, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n_f = n as f64;
    let p = successes as f64 / n_f;
    let z2 = z * z;
    let denom = 1.0 + z2 / n_f;
    let center = (p + z2 / (2.0 * n_f)) / denom;
    let half = z / denom * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt();
    ((center - half).max(0.0), (center + half).min(1.0))
}

/// The 95% quantile every reported interval uses.
pub const Z95: f64 = 1.96;

/// `successes / n`, 0 when `n = 0` (a rate over nothing is reported as 0 with the interval
/// (0, 1), not as NaN, which JSON cannot hold).
pub(crate) fn rate(successes: usize, n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        successes as f64 / n as f64
    }
}

/// Run `forward` on `texts` and check it returned `[texts.len(), d]` values. No call is made for
/// an empty batch.
pub(crate) fn run_forward<F, E>(
    forward: &mut F,
    texts: &[String],
    d: usize,
) -> Result<Vec<f32>, DebugError<E>>
where
    F: FnMut(&[String]) -> Result<Vec<f32>, E>,
{
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    let out = forward(texts).map_err(DebugError::Forward)?;
    if out.len() != texts.len() * d {
        return Err(DebugError::BadActivations {
            rows: texts.len(),
            d,
            found: out.len(),
        });
    }
    Ok(out)
}

/// Check the layers agree on `d` and have at least two classes; returns `d`.
pub(crate) fn common_d<E>(layers: &[(&str, &Layer)]) -> Result<usize, DebugError<E>> {
    let Some((_, first)) = layers.first() else {
        return Err(DebugError::Shape("no layers given".into()));
    };
    for (name, l) in layers {
        if l.d != first.d {
            return Err(DebugError::Shape(format!(
                "layer '{name}' reads {} features, '{}' reads {}",
                l.d, layers[0].0, first.d
            )));
        }
        if l.k < 2 {
            return Err(DebugError::Shape(format!(
                "layer '{name}' has {} class(es); predictions need 2 or more",
                l.k
            )));
        }
    }
    Ok(first.d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_known_intervals() {
        // Reference values from statsmodels' proportion_confint(method="wilson").
        let (lo, hi) = wilson(7, 10, 1.96);
        assert!(
            (lo - 0.3968).abs() < 1e-4 && (hi - 0.8922).abs() < 1e-4,
            "({lo}, {hi})"
        );
        let (lo, hi) = wilson(0, 20, 1.96);
        assert_eq!(lo, 0.0);
        assert!((hi - 0.1611).abs() < 1e-4, "{hi}");
        let (lo, hi) = wilson(20, 20, 1.96);
        assert!((lo - 0.8389).abs() < 1e-4, "{lo}");
        assert_eq!(hi, 1.0);
        let (lo, hi) = wilson(731, 1000, 1.96);
        assert!(
            (lo - 0.7027).abs() < 1e-4 && (hi - 0.7576).abs() < 1e-4,
            "({lo}, {hi})"
        );
        assert_eq!(wilson(0, 0, 1.96), (0.0, 1.0));
        // Wider at a larger quantile, and always around the point estimate.
        let (a, b) = wilson(7, 10, 2.576);
        assert!(a < 0.3968 && b > 0.8922 && a < 0.7 && b > 0.7);
    }

    #[test]
    fn logits_apply_the_standardization_to_raw_rows() {
        let layer = Layer {
            k: 2,
            d: 2,
            weight: vec![1.0, -1.0, 0.0, 2.0],
            bias: vec![0.5, -0.5],
            mean: vec![1.0, 2.0],
            std: vec![2.0, 4.0],
        };
        // z = ((3 − 1)/2, (10 − 2)/4) = (1, 2).
        let l = logits(&layer, &[3.0, 10.0]);
        assert_eq!(l, vec![0.5 + 1.0 - 2.0, -0.5 + 4.0]);
        assert_eq!(predict(&layer, &[3.0, 10.0, 3.0, 2.0], 2), vec![1, 0]);
        let p = probabilities(&layer, &[3.0, 10.0]);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((p[1] - 1.0 / (1.0 + (-0.5f64 - 3.5).exp())).abs() < 1e-12);
        assert_eq!(used_features(&layer), vec![0, 1]);
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(softmax(&[1000.0f32, 1000.0]), vec![0.5, 0.5]);
    }
}

#[cfg(test)]
mod error_tests {
    use super::*;

    #[test]
    fn forward_errors_reach_the_caller_through_anyhow() {
        let layer = Layer {
            k: 2,
            d: 1,
            weight: vec![1.0, -1.0],
            bias: vec![0.0, 0.0],
            mean: vec![0.0],
            std: vec![1.0],
        };
        let texts = vec!["a".to_string()];
        let run = || -> anyhow::Result<()> {
            probe::bias_probe(
                &texts,
                &[0],
                &[1.0],
                &texts,
                Placement::Append,
                &[("l", &layer)],
                |_| Err(anyhow::anyhow!("backbone out of memory")),
            )?;
            Ok(())
        };
        let e = run().unwrap_err();
        assert_eq!(e.to_string(), "forward pass: backbone out of memory");
    }
}

/// The default word list of the bias probe (`words/identity.txt`: the identity columns of the
/// Jigsaw Unintended Bias data as single words, plus the paper's "christianity").
pub const IDENTITY_WORDS: &str = include_str!("../words/identity.txt");

/// Words of a list file's text: one per line, blank lines and `#` comments skipped.
pub fn parse_word_list(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod word_list_tests {
    #[test]
    fn identity_list_parses() {
        let words = super::parse_word_list(super::IDENTITY_WORDS);
        assert_eq!(words.first().map(String::as_str), Some("christianity"));
        assert!(words.len() >= 20 && words.iter().all(|w| !w.contains('#') && !w.is_empty()));
        assert_eq!(super::parse_word_list("a\n\n # c\nb # d\n"), ["a", "b"]);
    }
}
