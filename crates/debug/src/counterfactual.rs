//! Counterfactuals for text (paper §4.2): if the features' word clouds say what the features
//! mean, they should say how to change a prediction. For a sentence the model predicts as
//! `from_class`, take a feature the layer uses for that class and a word of the sentence that
//! raises it (by LIME on the sentence), swap that word for one that lowers the same feature
//! (from the feature's word cloud), and see whether the prediction leaves `from_class`. The
//! paper reports 73.1% flips for the sparse layer and 52.2% for the dense one on SST: the sparse
//! layer's features are the ones that decide, so editing them works more often.
//!
//! Each sentence gets one LIME explanation (all `D` features from the same perturbed passes),
//! shared by every layer; each layer then chooses its own swap from its own features, and all
//! swapped sentences go through the network in one batched call.

use std::collections::{HashMap, HashSet};

use interpret::lime::{explain, Explanation, LimeConfig, LimeError, MaskScheme};
use interpret::words::Words;
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use solver::Layer;

use crate::{common_d, predict, probabilities, rate, run_forward, wilson, DebugError, Z95};

/// What to swap and over how many sentences.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CounterfactualConfig {
    /// The class the sentences are predicted as (SST's positive class is 1).
    pub from_class: usize,
    /// Candidate features per layer: its largest positive weights for `from_class` among the
    /// features that have a word cloud (the paper reads the top 5).
    pub features_per_class: usize,
    /// Sentences sampled from those every layer predicts as `from_class`.
    pub sentences: usize,
    /// Seed of the sample (LIME's masks are seeded by `lime.seed`, per sentence).
    pub seed: u64,
    pub lime: LimeConfig,
}

impl CounterfactualConfig {
    pub fn new(from_class: usize) -> Self {
        CounterfactualConfig {
            from_class,
            ..Default::default()
        }
    }
}

impl Default for CounterfactualConfig {
    fn default() -> Self {
        CounterfactualConfig {
            from_class: 1,
            features_per_class: 5,
            sentences: 250,
            seed: 0,
            lime: LimeConfig::default(),
        }
    }
}

/// One counterfactual edit and what it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Swap {
    /// Index of the sentence in `texts`.
    pub index: usize,
    pub feature: usize,
    /// The sentence's word that raised the feature (every occurrence was replaced).
    pub word: String,
    /// The feature's most negative cloud word not already in the sentence.
    pub replacement: String,
    /// The edited sentence.
    pub text: String,
    /// LIME weight of `word` on `feature` in this sentence.
    pub lime_weight: f32,
    /// Its estimated effect on the `from_class` logit through the feature:
    /// `lime_weight · w_{from,feature} / std_feature` (what chose this pair).
    pub logit_effect: f64,
    /// The layer no longer predicts `from_class`.
    pub flipped: bool,
    /// Softmax probability of `from_class` before and after the swap.
    pub prob_before: f64,
    pub prob_after: f64,
}

/// One layer's counterfactuals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerCounterfactuals {
    pub layer: String,
    /// Its candidate features, largest weight first.
    pub candidates: Vec<usize>,
    /// Sampled sentences (a sentence with no possible swap counts as attempted, not flipped:
    /// failing to find an edit is a failure of the reading, too).
    pub attempted: usize,
    /// Sentences where a swap was made.
    pub swapped: usize,
    pub flips: usize,
    /// Flips over attempted sentences (the paper's number).
    pub flip_rate: f64,
    /// 95% Wilson interval of `flip_rate`.
    pub flip_ci: (f64, f64),
    /// Flips over swapped sentences.
    pub flip_rate_of_swaps: f64,
    pub swaps: Vec<Swap>,
}

/// The counterfactual experiment over every layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CounterfactualResult {
    pub from_class: usize,
    /// Sentences every layer predicts as `from_class`.
    pub eligible: usize,
    /// The sampled ones, in increasing order.
    pub sampled: Vec<usize>,
    pub layers: Vec<LayerCounterfactuals>,
    /// Perturbed sentences run for LIME.
    pub lime_forward_passes: usize,
    /// Swapped sentences run to score the edits.
    pub swap_forward_passes: usize,
}

/// lime's per-input seed, as `interpret::reading` derives it, so a sentence's masks do not depend
/// on which other sentences were sampled.
fn input_seed(seed: u64, index: usize) -> u64 {
    seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The layer's candidate features for `class`: positive weight, a non-empty cloud, the `top`
/// largest weights (ties to the lower index).
fn candidates(layer: &Layer, class: usize, clouds: &HashMap<usize, Vec<String>>, top: usize) -> Vec<usize> {
    let row = &layer.weight[class * layer.d..(class + 1) * layer.d];
    let mut c: Vec<usize> = (0..layer.d)
        .filter(|&j| row[j] > 0.0 && clouds.get(&j).is_some_and(|w| !w.is_empty()))
        .collect();
    c.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    c.truncate(top);
    c
}

/// A swap chosen but not yet scored.
struct Pending {
    layer: usize,
    swap: Swap,
}

/// The best (feature, word) pair of one layer in one explained sentence, with its replacement.
fn choose(
    layer: &Layer,
    class: usize,
    cands: &[usize],
    words: &Words,
    e: &Explanation,
    clouds: &HashMap<usize, Vec<String>>,
) -> Option<(usize, usize, String, f32, f64)> {
    let present: HashSet<String> = words.vocab.iter().map(|w| w.to_lowercase()).collect();
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for &j in cands {
        let scale = layer.weight[class * layer.d + j] as f64 / layer.std[j] as f64;
        for c in 0..words.len() {
            let effect = e.weight(c, j) as f64 * scale;
            if effect > 0.0 {
                pairs.push((effect, j, c));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    pairs.into_iter().find_map(|(effect, j, c)| {
        let replacement = clouds[&j].iter().find(|w| !present.contains(&w.to_lowercase()))?;
        Some((j, c, replacement.clone(), e.weight(c, j), effect))
    })
}

/// Counterfactual word swaps over a seeded sample of the sentences every layer predicts as
/// `config.from_class`.
///
/// `activations` are those of `texts` (`[texts.len(), d]`); `negative_words[j]` is feature j's
/// word cloud's negative side, most negative first (features without one are never chosen);
/// `forward` maps sentences to their `[n, d]` activations (LIME calls it once per sentence with
/// `config.lime.samples` perturbations, then once for all swapped sentences).
pub fn counterfactuals<F, E>(
    texts: &[String],
    activations: &[f32],
    d: usize,
    layers: &[(&str, &Layer)],
    negative_words: &HashMap<usize, Vec<String>>,
    config: &CounterfactualConfig,
    mut forward: F,
) -> Result<CounterfactualResult, DebugError<E>>
where
    F: FnMut(&[String]) -> Result<Vec<f32>, E>,
{
    let ld = common_d(layers)?;
    if ld != d || activations.len() != texts.len() * d {
        return Err(DebugError::Shape(format!(
            "{} activations for {} texts of {d} features, layers of {ld}",
            activations.len(),
            texts.len()
        )));
    }
    let class = config.from_class;
    if let Some((name, l)) = layers.iter().find(|(_, l)| class >= l.k) {
        return Err(DebugError::Shape(format!(
            "class {class} is past layer '{name}''s {} classes",
            l.k
        )));
    }
    let preds: Vec<Vec<usize>> = layers.iter().map(|(_, l)| predict(l, activations, d)).collect();
    let eligible: Vec<usize> = (0..texts.len())
        .filter(|&i| preds.iter().all(|p| p[i] == class))
        .collect();
    let sampled: Vec<usize> = if eligible.len() <= config.sentences {
        eligible.clone()
    } else {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let mut s: Vec<usize> = sample(&mut rng, eligible.len(), config.sentences)
            .into_iter()
            .map(|k| eligible[k])
            .collect();
        s.sort_unstable();
        s
    };
    let cands: Vec<Vec<usize>> = layers
        .iter()
        .map(|(_, l)| candidates(l, class, negative_words, config.features_per_class))
        .collect();

    let mut lime_passes = 0;
    let mut pending: Vec<Pending> = Vec::new();
    if cands.iter().any(|c| !c.is_empty()) {
        for &i in &sampled {
            let words = Words::split(&texts[i]);
            if words.is_empty() {
                continue;
            }
            let lime = LimeConfig {
                seed: input_seed(config.lime.seed, i),
                ..config.lime
            };
            let mut failed: Option<DebugError<E>> = None;
            let e = explain(words.len(), MaskScheme::RemoveCount, &lime, |masks| {
                let perturbed: Vec<String> = (0..masks.samples).map(|s| words.render(masks.row(s))).collect();
                run_forward(&mut forward, &perturbed, d).map_err(|err| {
                    failed = Some(err);
                    LimeError::Forward("the forward pass failed".into())
                })
            });
            let e = match (e, failed) {
                (_, Some(err)) => return Err(err),
                (Err(err), None) => return Err(DebugError::Lime(err)),
                (Ok(e), None) => e,
            };
            lime_passes += e.forward_passes;
            for (li, (_, layer)) in layers.iter().enumerate() {
                let Some((feature, c, replacement, lime_weight, logit_effect)) =
                    choose(layer, class, &cands[li], &words, &e, negative_words)
                else {
                    continue;
                };
                let row = &activations[i * d..(i + 1) * d];
                pending.push(Pending {
                    layer: li,
                    swap: Swap {
                        index: i,
                        feature,
                        word: words.vocab[c].clone(),
                        text: words.replace(c, &replacement),
                        replacement,
                        lime_weight,
                        logit_effect,
                        flipped: false,
                        prob_before: probabilities(layer, row)[class],
                        prob_after: f64::NAN,
                    },
                });
            }
        }
    }

    let edited: Vec<String> = pending.iter().map(|p| p.swap.text.clone()).collect();
    let after = run_forward(&mut forward, &edited, d)?;
    let mut per_layer: Vec<Vec<Swap>> = vec![Vec::new(); layers.len()];
    for (r, mut p) in pending.into_iter().enumerate() {
        let layer = layers[p.layer].1;
        let row = &after[r * d..(r + 1) * d];
        p.swap.flipped = predict(layer, row, d)[0] != class;
        p.swap.prob_after = probabilities(layer, row)[class];
        per_layer[p.layer].push(p.swap);
    }
    let layers_out = layers
        .iter()
        .zip(per_layer)
        .zip(cands)
        .map(|(((name, _), swaps), candidates)| {
            let flips = swaps.iter().filter(|s| s.flipped).count();
            LayerCounterfactuals {
                layer: name.to_string(),
                candidates,
                attempted: sampled.len(),
                swapped: swaps.len(),
                flips,
                flip_rate: rate(flips, sampled.len()),
                flip_ci: wilson(flips, sampled.len(), Z95),
                flip_rate_of_swaps: rate(flips, swaps.len()),
                swaps,
            }
        })
        .collect();
    Ok(CounterfactualResult {
        from_class: class,
        eligible: eligible.len(),
        sampled,
        layers: layers_out,
        lime_forward_passes: lime_passes,
        swap_forward_passes: edited.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{layer_on, strings, CountNet};

    const POSITIVE: [&str; 3] = ["great", "superb", "wonderful"];

    /// Feature 0: praise minus its antonyms (cloud: "dull", "boring"); feature 1: "fun" minus
    /// "tedious" (a cloud, but no layer uses it); feature 2: "film"/"movie" (no cloud).
    fn net() -> CountNet {
        CountNet {
            features: vec![
                (
                    0.0,
                    vec![
                        ("great", 1.0),
                        ("superb", 1.0),
                        ("wonderful", 1.0),
                        ("dull", -1.0),
                        ("boring", -1.0),
                    ],
                ),
                (0.0, vec![("fun", 1.0), ("tedious", -1.0)]),
                (0.0, vec![("film", 1.0), ("movie", 1.0)]),
            ],
        }
    }

    fn clouds() -> HashMap<usize, Vec<String>> {
        HashMap::from([(0, strings(&["dull", "boring"])), (1, strings(&["tedious"]))])
    }

    fn corpus() -> Vec<String> {
        let mut v = Vec::new();
        let subjects = ["a", "the", "this", "one", "that"];
        for (s, subject) in subjects.iter().enumerate() {
            for n in 1..=3 {
                let praise = POSITIVE[..n].join(" ");
                v.push(format!("{subject} {praise} film ."));
                v.push(format!("{subject} {praise} movie , fun"));
            }
            v.push(format!("{subject} great superb film , dull ending"));
            v.push(format!("{subject} dull film"));
            v.push(format!("{subject} great story"));
            v.push(format!(
                "{subject} boring {}",
                if s % 2 == 0 { "plot" } else { "movie" }
            ));
        }
        v
    }

    /// Layer "reads": class 1 iff praise outweighs its antonyms (feature 0 > 0.5).
    /// Layer "ignores": class 1 iff the sentence names a film (feature 2 > 0.5); it weighs
    /// feature 0 only slightly, so its swaps (on feature 0, its only candidate) change little.
    fn layers(acts: &[f32]) -> (Layer, Layer) {
        let mut reads = layer_on(acts, 3, vec![0.0, 0.0, 0.0, 2.0, 0.0, 0.0], vec![0.0, 0.0]);
        reads.bias[1] = -2.0 * (0.5 - reads.mean[0]) / reads.std[0];
        let mut ignores = layer_on(acts, 3, vec![0.0, 0.0, 0.0, 0.1, 0.0, 2.0], vec![0.0, 0.0]);
        ignores.bias[1] = -2.0 * (0.5 - ignores.mean[2]) / ignores.std[2];
        (reads, ignores)
    }

    fn run(config: &CounterfactualConfig) -> CounterfactualResult {
        let net = net();
        let texts = corpus();
        let acts = net.activations(&texts);
        let (reads, ignores) = layers(&acts);
        let l = [("reads", &reads), ("ignores", &ignores)];
        counterfactuals(&texts, &acts, 3, &l, &clouds(), config, |t| net.forward(t)).unwrap()
    }

    #[test]
    fn swaps_flip_the_layer_that_reads_the_feature() {
        let net = net();
        let texts = corpus();
        let acts = net.activations(&texts);
        let (reads, ignores) = layers(&acts);
        let config = CounterfactualConfig {
            sentences: 20,
            seed: 7,
            ..CounterfactualConfig::new(1)
        };
        let r = run(&config);
        // Eligible: praise > antonyms and a film named.
        let expected: Vec<usize> = (0..texts.len())
            .filter(|&i| acts[i * 3] > 0.5 && acts[i * 3 + 2] > 0.5)
            .collect();
        assert_eq!(r.eligible, expected.len());
        assert_eq!(r.sampled.len(), 20);
        assert!(r.sampled.iter().all(|i| expected.contains(i)));
        assert_eq!(r.lime_forward_passes, 20 * config.lime.samples);
        let (a, b) = (&r.layers[0], &r.layers[1]);
        assert_eq!(a.candidates, vec![0]);
        assert_eq!(
            b.candidates,
            vec![0],
            "feature 2 has no cloud, feature 1 no weight"
        );
        assert_eq!(r.swap_forward_passes, a.swapped + b.swapped);
        for (lc, layer) in [(a, &reads), (b, &ignores)] {
            assert_eq!(lc.attempted, 20);
            assert_eq!(
                lc.swapped, 20,
                "{}: every sampled sentence has a praise word",
                lc.layer
            );
            for s in &lc.swaps {
                let original = &texts[s.index];
                assert_eq!(s.feature, 0);
                assert!(POSITIVE.contains(&s.word.as_str()), "{s:?}");
                assert!(s.lime_weight > 0.0 && s.logit_effect > 0.0);
                // The most negative cloud word unless the sentence already has it.
                let want = if original.contains("dull") {
                    "boring"
                } else {
                    "dull"
                };
                assert_eq!(s.replacement, want);
                assert_eq!(s.text, original.replace(&s.word, want));
                // Flipped exactly when the edited sentence's features say so.
                let now = net.row(&s.text);
                assert_eq!(s.flipped, predict(layer, &now, 3)[0] != 1);
                assert!(s.prob_after < s.prob_before);
            }
        }
        // The layer reading the feature flips unless a third praise word holds it up; the one
        // that ignores it never flips.
        for s in &a.swaps {
            let praise = POSITIVE.iter().filter(|w| texts[s.index].contains(*w)).count();
            let antonyms = texts[s.index].contains("dull") as usize;
            assert_eq!(s.flipped, praise - antonyms <= 2, "{s:?}");
        }
        assert!(a.flips > 0 && a.flips < a.swapped, "{} of {}", a.flips, a.swapped);
        assert_eq!(b.flips, 0);
        assert!(a.flip_rate > b.flip_rate);
        assert!(a.flip_ci.0 > 0.0 && b.flip_ci.0 == 0.0);
    }

    #[test]
    fn seeded_and_bounded() {
        let config = CounterfactualConfig {
            sentences: 12,
            seed: 3,
            ..Default::default()
        };
        let r = run(&config);
        assert_eq!(r, run(&config), "same seed, same result");
        let other = run(&CounterfactualConfig { seed: 4, ..config });
        assert_ne!(r.sampled, other.sampled);
        // Asking for more sentences than are eligible takes them all.
        let all = run(&CounterfactualConfig {
            sentences: 1000,
            ..config
        });
        assert_eq!(all.sampled.len(), all.eligible);
        // No candidate features: nothing explained, nothing swapped, every sentence attempted.
        let none = run(&CounterfactualConfig {
            features_per_class: 0,
            ..config
        });
        assert_eq!(none.lime_forward_passes, 0);
        assert!(none
            .layers
            .iter()
            .all(|l| l.swapped == 0 && l.flips == 0 && l.attempted == 12));
        // From class 0 the layers share few sentences; the result still serializes.
        let zero = run(&CounterfactualConfig::new(0));
        assert!(serde_json::to_string(&zero).is_ok());
    }
}
