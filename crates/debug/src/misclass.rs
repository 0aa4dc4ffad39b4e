//! Misclassifications caused by one feature (paper §4.3): for every error of a layer, would the
//! prediction be right if a single deep feature did not fire? The paper fixes over 30% of
//! ImageNet errors this way with the sparse layer; the feature that does it, and its
//! prototypes, show a person what the model confused (a spurious texture, a co-occurring
//! object). Pooled over confusion pairs (true, predicted), the same features explain *which*
//! classes the model mixes up.
//!
//! "Does not fire" is `x_j = 0` on the raw feature (a post-ReLU feature's resting value), so
//! the standardized input moves by `Δz_j = −x_j / std_j` and every logit by `W[c, j] · Δz_j`.
//! Only the classes with a nonzero weight on `j` change, so one feature costs
//! O(nonzeros of column j) plus a walk down the other classes' logits sorted once per error —
//! not a full `K × D` recomputation — which keeps a dense 1000-class layer over 2048 features
//! tractable on thousands of errors.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use solver::Layer;

use crate::{argmax, logits_f64, rate, used_features, wilson, Z95};

/// Fixing features reported per confusion pair.
pub const TOP_FEATURES: usize = 5;

/// Which features may be zeroed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Candidates {
    /// Features with a nonzero weight in some class. Zeroing any other feature changes no logit,
    /// so this gives the same answers as `All`, only faster.
    Used,
    /// Every feature.
    All,
    /// These features only (e.g. the dense layer restricted to the features the sparse layer
    /// uses, for a like-for-like comparison).
    Only(Vec<usize>),
}

/// One error of the layer and the single feature that fixes it, if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorFix {
    /// Row of the activations.
    pub index: usize,
    pub label: usize,
    pub predicted: usize,
    /// `logit[label] − max_{c ≠ label} logit[c]` (≤ 0 for an error).
    pub margin: f64,
    /// The candidate feature whose zeroing gives the largest true-class margin among those that
    /// make the prediction right (ties to the lower index); none when no single feature does.
    pub feature: Option<usize>,
    /// The margin after zeroing `feature` (> 0).
    pub margin_after: Option<f64>,
    /// How many candidate features fix this error on their own.
    pub fixing_features: usize,
}

/// A feature and how many errors it fixes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureCount {
    pub feature: usize,
    pub fixes: usize,
}

/// Errors with one (true, predicted) pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfusionPair {
    pub truth: usize,
    pub predicted: usize,
    pub errors: usize,
    /// Errors of this pair some single feature fixes.
    pub fixed: usize,
    /// The features chosen for this pair's fixed errors, most often chosen first, at most
    /// [`TOP_FEATURES`].
    pub features: Vec<FeatureCount>,
}

/// One fixing feature and the errors it was chosen for (to show with its prototypes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureFixes {
    pub feature: usize,
    pub fixes: usize,
    /// Indices of the errors, in increasing order.
    pub examples: Vec<usize>,
}

/// The single-feature fixes of one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MisclassResult {
    pub examples: usize,
    pub errors: usize,
    /// Errors some single feature fixes.
    pub fixed: usize,
    /// `fixed / errors`.
    pub share_fixed: f64,
    /// 95% Wilson interval of `share_fixed`.
    pub share_ci: (f64, f64),
    /// Features that were tried.
    pub candidates: usize,
    /// Every error, in increasing index order.
    pub per_error: Vec<ErrorFix>,
    /// Every chosen feature, the most fixes first (ties to the lower index).
    pub by_feature: Vec<FeatureFixes>,
    /// Every pair that occurs among the errors, the most fixed first, then the most errors.
    pub confusions: Vec<ConfusionPair>,
}

/// What one thread needs to try every candidate on one error.
struct Columns<'a> {
    layer: &'a Layer,
    /// Candidate features with their nonzero weights `(class, W[class, j])`.
    cols: Vec<(usize, Vec<(usize, f64)>)>,
}

impl Columns<'_> {
    /// `stamp` is scratch of `K` entries; `*generation` marks the classes one feature changes.
    fn fix(
        &self,
        index: usize,
        row: &[f32],
        label: usize,
        stamp: &mut [u64],
        generation: &mut u64,
    ) -> ErrorFix {
        let layer = self.layer;
        let l = logits_f64(layer, row);
        let others_max = |l: &[f64]| {
            (0..l.len())
                .filter(|&c| c != label)
                .map(|c| l[c])
                .fold(f64::NEG_INFINITY, f64::max)
        };
        // The other classes by logit, largest first: the largest one a feature leaves unchanged
        // is the first one in this order it does not touch.
        let mut order: Vec<usize> = (0..layer.k).filter(|&c| c != label).collect();
        order.sort_by(|&a, &b| l[b].total_cmp(&l[a]).then(a.cmp(&b)));
        let mut best: Option<(usize, f64)> = None;
        let mut fixing = 0;
        for (j, col) in &self.cols {
            let x = row[*j];
            if x == 0.0 || col.is_empty() {
                continue;
            }
            let dz = -(x as f64) / layer.std[*j] as f64;
            *generation += 1;
            let g = *generation;
            let mut true_logit = l[label];
            let mut changed_max = f64::NEG_INFINITY;
            for &(c, w) in col {
                stamp[c] = g;
                if c == label {
                    true_logit += w * dz;
                } else {
                    changed_max = changed_max.max(l[c] + w * dz);
                }
            }
            let unchanged_max = order
                .iter()
                .find(|&&c| stamp[c] != g)
                .map_or(f64::NEG_INFINITY, |&c| l[c]);
            let margin = true_logit - changed_max.max(unchanged_max);
            // A strictly positive margin: a tie is not a fix (the arg-max would go to the lower
            // index, which is not worth the bookkeeping for a measure-zero event).
            if margin > 0.0 {
                fixing += 1;
                if best.is_none_or(|(_, m)| margin > m) {
                    best = Some((*j, margin));
                }
            }
        }
        ErrorFix {
            index,
            label,
            predicted: argmax(&l),
            margin: l[label] - others_max(&l),
            feature: best.map(|b| b.0),
            margin_after: best.map(|b| b.1),
            fixing_features: fixing,
        }
    }
}

/// For every error of `layer` on `activations` (`[n, d]` raw features, row-major) with true
/// `labels`, whether zeroing one candidate feature's raw activation makes the prediction right,
/// and which feature does it best; pooled per feature and per confusion pair.
///
/// # Panics
/// When the shapes disagree (`d != layer.d`, `activations.len() != labels.len() · d`), a label
/// is not a class of the layer, or a candidate is not a feature.
pub fn single_feature_fixes(
    activations: &[f32],
    d: usize,
    labels: &[usize],
    layer: &Layer,
    candidates: Candidates,
) -> MisclassResult {
    assert_eq!(
        d, layer.d,
        "activations of {d} features for a layer of {}",
        layer.d
    );
    assert_eq!(
        activations.len(),
        labels.len() * d,
        "{} activations for {} labels of {d} features",
        activations.len(),
        labels.len()
    );
    assert!(layer.k >= 2, "a layer of {} class(es)", layer.k);
    if let Some(&y) = labels.iter().find(|&&y| y >= layer.k) {
        panic!("label {y} is not one of the layer's {} classes", layer.k);
    }
    let mut feats = match candidates {
        Candidates::Used => used_features(layer),
        Candidates::All => (0..d).collect(),
        Candidates::Only(v) => v,
    };
    feats.sort_unstable();
    feats.dedup();
    assert!(
        feats.iter().all(|&j| j < d),
        "candidate features must be below {d}"
    );
    let columns = Columns {
        layer,
        cols: feats
            .iter()
            .map(|&j| {
                let col = (0..layer.k)
                    .filter_map(|c| {
                        let w = layer.weight[c * d + j];
                        (w != 0.0).then_some((c, w as f64))
                    })
                    .collect();
                (j, col)
            })
            .collect(),
    };
    let errors: Vec<usize> = (0..labels.len())
        .filter(|&i| argmax(&logits_f64(layer, &activations[i * d..(i + 1) * d])) != labels[i])
        .collect();

    // Errors are independent: split them over the cores, each thread with its own scratch, and
    // concatenate in order (the result does not depend on the thread count).
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 16);
    let chunk = errors.len().div_ceil(threads).max(1);
    let per_error: Vec<ErrorFix> = std::thread::scope(|s| {
        let handles: Vec<_> = errors
            .chunks(chunk)
            .map(|part| {
                let columns = &columns;
                s.spawn(move || {
                    let mut stamp = vec![0u64; layer.k];
                    let mut generation = 0u64;
                    part.iter()
                        .map(|&i| {
                            columns.fix(
                                i,
                                &activations[i * d..(i + 1) * d],
                                labels[i],
                                &mut stamp,
                                &mut generation,
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a fixing thread panicked"))
            .collect()
    });

    let fixed = per_error.iter().filter(|e| e.feature.is_some()).count();
    let mut by_feature: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut pairs: HashMap<(usize, usize), ConfusionPair> = HashMap::new();
    for e in &per_error {
        let p = pairs
            .entry((e.label, e.predicted))
            .or_insert_with(|| ConfusionPair {
                truth: e.label,
                predicted: e.predicted,
                errors: 0,
                fixed: 0,
                features: Vec::new(),
            });
        p.errors += 1;
        if let Some(j) = e.feature {
            p.fixed += 1;
            match p.features.iter_mut().find(|f| f.feature == j) {
                Some(f) => f.fixes += 1,
                None => p.features.push(FeatureCount { feature: j, fixes: 1 }),
            }
            by_feature.entry(j).or_default().push(e.index);
        }
    }
    let mut by_feature: Vec<FeatureFixes> = by_feature
        .into_iter()
        .map(|(feature, examples)| FeatureFixes {
            feature,
            fixes: examples.len(),
            examples,
        })
        .collect();
    by_feature.sort_by(|a, b| b.fixes.cmp(&a.fixes).then(a.feature.cmp(&b.feature)));
    let mut confusions: Vec<ConfusionPair> = pairs.into_values().collect();
    for p in &mut confusions {
        p.features
            .sort_by(|a, b| b.fixes.cmp(&a.fixes).then(a.feature.cmp(&b.feature)));
        p.features.truncate(TOP_FEATURES);
    }
    confusions.sort_by(|a, b| {
        b.fixed
            .cmp(&a.fixed)
            .then(b.errors.cmp(&a.errors))
            .then((a.truth, a.predicted).cmp(&(b.truth, b.predicted)))
    });
    MisclassResult {
        examples: labels.len(),
        errors: errors.len(),
        fixed,
        share_fixed: rate(fixed, errors.len()),
        share_ci: wilson(fixed, errors.len(), Z95),
        candidates: feats.len(),
        per_error,
        by_feature,
        confusions,
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::synthetic::layer_on;
    use crate::{logits_f64, predict};

    const SPURIOUS: usize = 3;

    /// Three classes, a signal feature per class (0, 1, 2) and a planted spurious feature 3
    /// that fires on a fifth of the class-0 examples; `y`, the rows, and whether 3 fired.
    fn data(n: usize, seed: u64) -> (Vec<usize>, Vec<f32>, Vec<bool>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (mut y, mut x, mut fired) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            let c = i % 3;
            let spur = c == 0 && rng.random_bool(0.2);
            for j in 0..3 {
                let signal = if j == c { 1.0 } else { 0.0 };
                // Post-ReLU-like: non-negative, sometimes exactly zero.
                let v: f32 = signal + rng.random_range(-0.6..0.6);
                x.push(v.max(0.0));
            }
            x.push(if spur { rng.random_range(2.0..3.0) } else { 0.0 });
            y.push(c);
            fired.push(spur);
        }
        (y, x, fired)
    }

    /// Each class reads its signal feature; class 1 also reads the spurious one, strongly.
    fn sparse(x: &[f32]) -> Layer {
        #[rustfmt::skip]
        let w = vec![
            2.0, 0.0, 0.0, 0.0,
            0.0, 2.0, 0.0, 3.0,
            0.0, 0.0, 2.0, 0.0,
        ];
        layer_on(x, 4, w, vec![0.0; 3])
    }

    /// The same by full recomputation: every candidate zeroed in turn.
    fn brute(
        x: &[f32],
        y: &[usize],
        layer: &Layer,
        feats: &[usize],
    ) -> Vec<(usize, usize, Option<usize>, usize)> {
        let d = layer.d;
        let mut out = Vec::new();
        for i in 0..y.len() {
            let row = &x[i * d..(i + 1) * d];
            let p = predict(layer, row, d)[0];
            if p == y[i] {
                continue;
            }
            let mut best: Option<(usize, f64)> = None;
            let mut count = 0;
            for &j in feats {
                let mut r = row.to_vec();
                r[j] = 0.0;
                let l = logits_f64(layer, &r);
                let m = l[y[i]]
                    - (0..layer.k)
                        .filter(|&c| c != y[i])
                        .map(|c| l[c])
                        .fold(f64::NEG_INFINITY, f64::max);
                if m > 0.0 {
                    count += 1;
                    if best.is_none_or(|(_, bm)| m > bm) {
                        best = Some((j, m));
                    }
                }
            }
            out.push((i, p, best.map(|b| b.0), count));
        }
        out
    }

    #[test]
    fn finds_the_planted_feature_that_causes_errors() {
        let (y, x, fired) = data(900, 1);
        let layer = sparse(&x);
        let r = single_feature_fixes(&x, 4, &y, &layer, Candidates::Used);
        assert_eq!(r.candidates, 4);
        // Errors the planted feature causes: it fired, the layer said 1, and without it the
        // layer is right (computed here directly, by recomputing the logits).
        let planted: Vec<usize> = (0..y.len())
            .filter(|&i| fired[i] && predict(&layer, &x[i * 4..(i + 1) * 4], 4)[0] == 1)
            .collect();
        let caused: Vec<usize> = planted
            .iter()
            .copied()
            .filter(|&i| {
                let mut row = x[i * 4..(i + 1) * 4].to_vec();
                row[SPURIOUS] = 0.0;
                predict(&layer, &row, 4)[0] == y[i]
            })
            .collect();
        assert!(
            caused.len() >= 20,
            "the planted feature should cause errors, got {}",
            caused.len()
        );
        assert!(
            caused.len() * 10 >= planted.len() * 9,
            "{} of {}",
            caused.len(),
            planted.len()
        );
        for &i in &planted {
            let e = r
                .per_error
                .iter()
                .find(|e| e.index == i)
                .expect("a planted error is an error");
            assert_eq!((e.label, e.predicted), (0, 1), "{e:?}");
            assert!(e.margin <= 0.0);
            if caused.contains(&i) {
                assert_eq!(e.feature, Some(SPURIOUS), "{e:?}");
                assert!(e.margin_after.unwrap() > 0.0);
            } else {
                assert_ne!(e.feature, Some(SPURIOUS), "{e:?}");
            }
        }
        // Where the spurious feature is silent it fixes nothing.
        assert!(r
            .per_error
            .iter()
            .filter(|e| !fired[e.index])
            .all(|e| e.feature != Some(SPURIOUS)));
        // The pair it explains comes first, named by that feature.
        let top = &r.confusions[0];
        assert_eq!((top.truth, top.predicted), (0, 1));
        assert_eq!(top.features[0].feature, SPURIOUS);
        assert_eq!(top.features[0].fixes, caused.len());
        assert_eq!(r.by_feature[0].feature, SPURIOUS);
        assert!(r.by_feature[0].examples.windows(2).all(|w| w[0] < w[1]));
        // Counts hang together.
        assert_eq!(r.errors, r.per_error.len());
        assert_eq!(r.fixed, r.by_feature.iter().map(|f| f.fixes).sum::<usize>());
        assert_eq!(r.errors, r.confusions.iter().map(|c| c.errors).sum::<usize>());
        assert!((r.share_fixed - r.fixed as f64 / r.errors as f64).abs() < 1e-12);
        assert!(r.share_ci.0 <= r.share_fixed && r.share_fixed <= r.share_ci.1);
        assert!(serde_json::to_string(&r).is_ok());

        // Without the planted feature among the candidates, those errors stay unfixed.
        let only = single_feature_fixes(&x, 4, &y, &layer, Candidates::Only(vec![2, 0, 1, 1]));
        assert_eq!(only.candidates, 3);
        assert!(caused.iter().all(|i| only
            .per_error
            .iter()
            .any(|e| e.index == *i && e.feature != Some(SPURIOUS))));
        assert!(only.fixed < r.fixed);
    }

    #[test]
    fn incremental_updates_equal_full_recomputation() {
        let (y, x, _) = data(600, 2);
        // A dense layer with random weights (every column full) and the sparse one.
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let w: Vec<f32> = (0..12).map(|_| rng.random_range(-1.5..1.5)).collect();
        let dense = layer_on(&x, 4, w, vec![0.3, -0.2, 0.1]);
        for layer in [sparse(&x), dense] {
            let want = brute(&x, &y, &layer, &[0, 1, 2, 3]);
            for cands in [Candidates::All, Candidates::Used] {
                let r = single_feature_fixes(&x, 4, &y, &layer, cands.clone());
                let got: Vec<_> = r
                    .per_error
                    .iter()
                    .map(|e| (e.index, e.predicted, e.feature, e.fixing_features))
                    .collect();
                assert_eq!(got, want, "{cands:?}");
            }
            assert!(want.iter().any(|w| w.2.is_some()) && want.iter().any(|w| w.2.is_none()));
        }
        // Used and All agree on the sparse layer even when a feature is unused.
        let mut l = sparse(&x);
        l.weight[4 + 3] = 0.0;
        let used = single_feature_fixes(&x, 4, &y, &l, Candidates::Used);
        let all = single_feature_fixes(&x, 4, &y, &l, Candidates::All);
        assert_eq!((used.candidates, all.candidates), (3, 4));
        assert_eq!(used.per_error, all.per_error);
    }
}
