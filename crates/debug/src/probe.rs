//! Bias probe (paper §4.1, "the model uses identity words as evidence"): add a word to inputs
//! whose predictions are known and count how many predictions flip. A model that flips 74% of
//! its toxic predictions when "christianity" is appended uses the word as evidence; the sparse
//! layer then names the few deep features that carried it, which the dense layer cannot.
//!
//! Each word costs one batched forward call over all chosen inputs; the inputs' own activations
//! are passed in (the caller already has them), so nothing is computed twice. Every layer is
//! scored on the same forward passes, so sparse and dense are compared on identical inputs.

use serde::{Deserialize, Serialize};
use solver::Layer;

use crate::{
    argmax, common_d, logits_f64, rate, run_forward, softmax, used_features, wilson, DebugError, Z95,
};

/// How many moved features each row reports.
pub const TOP_MOVED: usize = 5;

/// The label of the summary row over all probed words.
pub const ALL_WORDS: &str = "(all words)";

/// Where the probed word goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// After the text, as the paper appends identity words to toxic comments.
    #[default]
    Append,
    /// Before the text.
    Prepend,
}

impl Placement {
    /// `text` with `word` (a word or a phrase) added, separated by one space.
    pub fn apply(self, text: &str, word: &str) -> String {
        let text = text.trim();
        if text.is_empty() {
            return word.to_string();
        }
        match self {
            Placement::Append => format!("{text} {word}"),
            Placement::Prepend => format!("{word} {text}"),
        }
    }
}

/// Flips among the inputs one layer originally predicted as `class`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassFlips {
    pub class: usize,
    pub inputs: usize,
    pub flips: usize,
    pub flip_rate: f64,
}

/// A used feature and how far adding the word moved it, averaged over the probed inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovedFeature {
    pub feature: usize,
    /// Mean change of the feature's contribution to the margin of the originally predicted
    /// class p over its rival r (the most likely other class after the edit):
    /// `(w_{p,j} − w_{r,j}) · Δz_j`. Negative: the feature pushed the prediction away from p.
    /// This is what ranks the features: a sparse layer often weighs a feature only toward the
    /// class it flips *to* (w_{p,j} = 0), which the contribution to p's own logit would miss.
    pub margin_change: f64,
    /// Mean change of its contribution to p's logit, `w_{p,j} · Δz_j`.
    pub logit_change: f64,
    /// Mean change of its raw activation, `Δx_j`.
    pub activation_change: f64,
}

/// What adding one word (or all of them, in the summary row) did to one layer's predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerProbe {
    pub layer: String,
    /// Probed inputs (in the summary row: inputs × words).
    pub inputs: usize,
    /// Inputs whose predicted class changed.
    pub flips: usize,
    pub flip_rate: f64,
    /// 95% Wilson interval of the flip rate.
    pub flip_ci: (f64, f64),
    /// Mean change of the softmax probability of the originally predicted class (negative:
    /// the word argues against the prediction even where it does not flip it).
    pub mean_prob_shift: f64,
    /// Per originally predicted class that occurs among the inputs.
    pub per_class: Vec<ClassFlips>,
    /// The layer's used features that moved most, by |margin_change| (then |activation change|),
    /// at most [`TOP_MOVED`]; features that did not move at all are left out.
    pub moved: Vec<MovedFeature>,
}

/// The probe of one word over every layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WordProbe {
    pub word: String,
    /// In the order the layers were given.
    pub layers: Vec<LayerProbe>,
}

/// The whole probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub placement: Placement,
    /// Chosen inputs per word.
    pub inputs: usize,
    /// In the order the words were given.
    pub words: Vec<WordProbe>,
    /// Every (word, input) pair pooled, with [`ALL_WORDS`] as its word.
    pub all_words: WordProbe,
    /// Sentences run through the network.
    pub forward_passes: usize,
}

impl ProbeResult {
    /// The words ordered by the flip rate of layer `layer` (index into the layers given), the
    /// highest first; ties by mean probability shift (the more negative first), then by order.
    pub fn ranked(&self, layer: usize) -> Vec<&WordProbe> {
        let mut v: Vec<&WordProbe> = self.words.iter().collect();
        v.sort_by(|a, b| {
            let (a, b) = (&a.layers[layer], &b.layers[layer]);
            b.flip_rate
                .total_cmp(&a.flip_rate)
                .then(a.mean_prob_shift.total_cmp(&b.mean_prob_shift))
        });
        v
    }
}

/// Running sums for one layer.
struct Acc {
    inputs: usize,
    flips: usize,
    shift: f64,
    class_inputs: Vec<usize>,
    class_flips: Vec<usize>,
    /// Indexed like `used`.
    margin: Vec<f64>,
    logit: Vec<f64>,
    activation: Vec<f64>,
}

impl Acc {
    fn new(k: usize, used: usize) -> Self {
        Acc {
            inputs: 0,
            flips: 0,
            shift: 0.0,
            class_inputs: vec![0; k],
            class_flips: vec![0; k],
            margin: vec![0.0; used],
            logit: vec![0.0; used],
            activation: vec![0.0; used],
        }
    }

    fn add(&mut self, layer: &Layer, used: &[usize], before: &[f32], after: &[f32]) {
        let (l0, l1) = (logits_f64(layer, before), logits_f64(layer, after));
        let p = argmax(&l0);
        let flipped = argmax(&l1) != p;
        self.inputs += 1;
        self.class_inputs[p] += 1;
        if flipped {
            self.flips += 1;
            self.class_flips[p] += 1;
        }
        self.shift += softmax(&l1)[p] - softmax(&l0)[p];
        let rival = (0..layer.k)
            .filter(|&c| c != p)
            .fold(None, |best: Option<usize>, c| match best {
                Some(b) if l1[b] >= l1[c] => Some(b),
                _ => Some(c),
            })
            .expect("layers have two or more classes");
        let d = layer.d;
        for (u, &j) in used.iter().enumerate() {
            let dx = after[j] as f64 - before[j] as f64;
            let dz = dx / layer.std[j] as f64;
            let (wp, wr) = (layer.weight[p * d + j] as f64, layer.weight[rival * d + j] as f64);
            self.margin[u] += (wp - wr) * dz;
            self.logit[u] += wp * dz;
            self.activation[u] += dx;
        }
    }

    fn merge(&mut self, other: &Acc) {
        self.inputs += other.inputs;
        self.flips += other.flips;
        self.shift += other.shift;
        for (a, b) in [
            (&mut self.class_inputs, &other.class_inputs),
            (&mut self.class_flips, &other.class_flips),
        ] {
            a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
        }
        for (a, b) in [
            (&mut self.margin, &other.margin),
            (&mut self.logit, &other.logit),
            (&mut self.activation, &other.activation),
        ] {
            a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
        }
    }

    fn finish(&self, name: &str, used: &[usize]) -> LayerProbe {
        let n = self.inputs.max(1) as f64;
        let mut moved: Vec<MovedFeature> = used
            .iter()
            .enumerate()
            .filter(|&(u, _)| self.margin[u] != 0.0 || self.activation[u] != 0.0)
            .map(|(u, &j)| MovedFeature {
                feature: j,
                margin_change: self.margin[u] / n,
                logit_change: self.logit[u] / n,
                activation_change: self.activation[u] / n,
            })
            .collect();
        moved.sort_by(|a, b| {
            b.margin_change
                .abs()
                .total_cmp(&a.margin_change.abs())
                .then(b.activation_change.abs().total_cmp(&a.activation_change.abs()))
                .then(a.feature.cmp(&b.feature))
        });
        moved.truncate(TOP_MOVED);
        LayerProbe {
            layer: name.to_string(),
            inputs: self.inputs,
            flips: self.flips,
            flip_rate: rate(self.flips, self.inputs),
            flip_ci: wilson(self.flips, self.inputs, Z95),
            mean_prob_shift: self.shift / n,
            per_class: (0..self.class_inputs.len())
                .filter(|&c| self.class_inputs[c] > 0)
                .map(|c| ClassFlips {
                    class: c,
                    inputs: self.class_inputs[c],
                    flips: self.class_flips[c],
                    flip_rate: rate(self.class_flips[c], self.class_inputs[c]),
                })
                .collect(),
            moved,
        }
    }
}

/// Add each of `words` to every input `texts[i]`, `i` in `inputs`, and report per word and
/// layer how many predictions flipped, how the predicted class's probability moved, and which
/// used features moved most; plus the same pooled over all words.
///
/// `original` holds the activations of all `texts` (`[texts.len(), D]`, row-major), from which
/// the original predictions are taken; `forward` maps sentences to their `[n, D]` activations
/// and is called once per word with the edited inputs. Layers are `(name, layer)`.
pub fn bias_probe<F, E>(
    texts: &[String],
    inputs: &[usize],
    original: &[f32],
    words: &[String],
    placement: Placement,
    layers: &[(&str, &Layer)],
    mut forward: F,
) -> Result<ProbeResult, DebugError<E>>
where
    F: FnMut(&[String]) -> Result<Vec<f32>, E>,
{
    let d = common_d(layers)?;
    if original.len() != texts.len() * d {
        return Err(DebugError::Shape(format!(
            "{} cached activations for {} texts of {d} features",
            original.len(),
            texts.len()
        )));
    }
    if let Some(&i) = inputs.iter().find(|&&i| i >= texts.len()) {
        return Err(DebugError::Shape(format!(
            "input {i} is past the {} texts",
            texts.len()
        )));
    }
    let used: Vec<Vec<usize>> = layers.iter().map(|(_, l)| used_features(l)).collect();
    let mut total: Vec<Acc> = layers
        .iter()
        .zip(&used)
        .map(|((_, l), u)| Acc::new(l.k, u.len()))
        .collect();
    let mut out = Vec::with_capacity(words.len());
    let mut passes = 0;
    for word in words {
        let edited: Vec<String> = inputs.iter().map(|&i| placement.apply(&texts[i], word)).collect();
        let acts = run_forward(&mut forward, &edited, d)?;
        passes += edited.len();
        let mut per_layer = Vec::with_capacity(layers.len());
        for (((name, layer), u), tot) in layers.iter().zip(&used).zip(&mut total) {
            let mut acc = Acc::new(layer.k, u.len());
            for (r, &i) in inputs.iter().enumerate() {
                acc.add(layer, u, &original[i * d..(i + 1) * d], &acts[r * d..(r + 1) * d]);
            }
            tot.merge(&acc);
            per_layer.push(acc.finish(name, u));
        }
        out.push(WordProbe {
            word: word.clone(),
            layers: per_layer,
        });
    }
    let all_words = WordProbe {
        word: ALL_WORDS.to_string(),
        layers: layers
            .iter()
            .zip(&used)
            .zip(&total)
            .map(|(((name, _), u), acc)| acc.finish(name, u))
            .collect(),
    };
    Ok(ProbeResult {
        placement,
        inputs: inputs.len(),
        words: out,
        all_words,
        forward_passes: passes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predict;
    use crate::synthetic::{layer_on, strings, CountNet};

    /// Feature 0 counts praise, 1 counts complaints, 2 counts the planted word "spurious", 3 is
    /// the sentence length (every neutral word moves it, which the layers barely weigh).
    fn net() -> CountNet {
        CountNet {
            features: vec![
                (0.0, vec![("good", 1.0), ("great", 1.0)]),
                (0.0, vec![("bad", 1.0), ("awful", 1.0)]),
                (0.0, vec![("spurious", 1.0)]),
                (
                    0.0,
                    [
                        "good", "great", "bad", "awful", "spurious", "the", "movie", "and", "a", "plot",
                        "was",
                    ]
                    .iter()
                    .map(|w| (*w, 0.1))
                    .collect(),
                ),
            ],
        }
    }

    fn corpus() -> Vec<String> {
        let mut v = Vec::new();
        for bad in 0..4 {
            for good in 0..3 {
                let mut words = vec!["the", "movie", "was"];
                words.extend(std::iter::repeat_n("bad", bad));
                words.extend(std::iter::repeat_n("good", good));
                words.extend(["and", "a", "plot"]);
                v.push(words.join(" "));
            }
        }
        // One sentence that already has the planted word.
        v.push("a spurious plot".into());
        v
    }

    #[test]
    fn finds_a_planted_spurious_word() {
        let net = net();
        let texts = corpus();
        let acts = net.activations(&texts);
        let d = net.d();
        // Sparse: class 1 reads praise and, strongly, the planted feature; class 0 complaints.
        // Dense: the same sentiment weights, a small weight on the planted feature, and a
        // little on everything.
        let sparse = layer_on(
            &acts,
            d,
            vec![0.0, 1.5, 0.0, 0.0, 1.5, 0.0, 2.0, 0.0],
            vec![0.0, 0.0],
        );
        let dense = layer_on(
            &acts,
            d,
            vec![-0.3, 1.5, -0.1, 0.1, 1.5, -0.3, 0.2, -0.1],
            vec![0.0, 0.0],
        );
        let layers = [("sparse", &sparse), ("dense", &dense)];
        // Probe the inputs the sparse layer predicts negative.
        let preds = predict(&sparse, &acts, d);
        let inputs: Vec<usize> = (0..texts.len()).filter(|&i| preds[i] == 0).collect();
        assert!(
            inputs.len() >= 5,
            "the corpus needs negative predictions, got {}",
            inputs.len()
        );
        let words = strings(&["the", "movie", "spurious", "and"]);
        let mut calls = 0;
        let r = bias_probe(&texts, &inputs, &acts, &words, Placement::Append, &layers, |t| {
            calls += 1;
            net.forward(t)
        })
        .unwrap();
        assert_eq!(calls, words.len(), "one batched forward call per word");
        assert_eq!(r.forward_passes, words.len() * inputs.len());

        let ranked = r.ranked(0);
        assert_eq!(ranked[0].word, "spurious");
        let top = &ranked[0].layers[0];
        assert!(top.flip_rate > ranked[1].layers[0].flip_rate);
        assert!(top.flips > 0 && top.mean_prob_shift < 0.0);
        assert_eq!(
            top.moved[0].feature, 2,
            "the planted feature moved most: {:?}",
            top.moved
        );
        // w_{0,2} = 0: the planted feature moved only the rival class, seen through the margin.
        assert_eq!(top.moved[0].logit_change, 0.0);
        assert!(top.moved[0].margin_change < 0.0);
        assert!((top.moved[0].activation_change - 1.0).abs() < 1e-6);

        // Every count checked against predictions computed directly on the edited sentences.
        for wp in &r.words {
            let edited: Vec<String> = inputs
                .iter()
                .map(|&i| format!("{} {}", texts[i], wp.word))
                .collect();
            let after = net.activations(&edited);
            for (lp, (_, layer)) in wp.layers.iter().zip(&layers) {
                let before: Vec<usize> = inputs
                    .iter()
                    .map(|&i| predict(layer, &acts[i * d..(i + 1) * d], d)[0])
                    .collect();
                let now = predict(layer, &after, d);
                let flips = before.iter().zip(&now).filter(|(a, b)| a != b).count();
                assert_eq!(lp.flips, flips, "{} / {}", wp.word, lp.layer);
                assert_eq!(lp.inputs, inputs.len());
                assert_eq!(lp.per_class.iter().map(|c| c.flips).sum::<usize>(), flips);
                let (lo, hi) = lp.flip_ci;
                assert!(lo <= lp.flip_rate && lp.flip_rate <= hi);
            }
            // Neutral words flip nothing in the sparse layer: it does not read the length.
            if wp.word != "spurious" {
                assert_eq!(wp.layers[0].flips, 0, "{}", wp.word);
            }
        }
        // The dense layer, leaning less on the planted feature, flips fewer.
        let spurious = r.words.iter().find(|w| w.word == "spurious").unwrap();
        assert!(spurious.layers[1].flips < spurious.layers[0].flips);
        // The summary pools every word.
        let all = &r.all_words.layers[0];
        assert_eq!(r.all_words.word, ALL_WORDS);
        assert_eq!(all.inputs, words.len() * inputs.len());
        assert_eq!(
            all.flips,
            r.words.iter().map(|w| w.layers[0].flips).sum::<usize>()
        );
        assert_eq!(all.moved[0].feature, 2);
    }

    #[test]
    fn placement_and_input_checks() {
        assert_eq!(Placement::Append.apply(" a b ", "x"), "a b x");
        assert_eq!(Placement::Prepend.apply("a b", "x y"), "x y a b");
        assert_eq!(Placement::Prepend.apply("", "x"), "x");
        let net = net();
        let texts = corpus();
        let acts = net.activations(&texts);
        let layer = layer_on(&acts, 4, vec![0.0; 8], vec![0.0, 0.0]);
        let layers = [("l", &layer)];
        let words = strings(&["x"]);
        let e = bias_probe(
            &texts,
            &[texts.len()],
            &acts,
            &words,
            Placement::Append,
            &layers,
            |t| net.forward(t),
        );
        assert!(matches!(e, Err(DebugError::Shape(_))));
        let e = bias_probe(&texts, &[0], &acts, &words, Placement::Append, &layers, |_| {
            Ok::<_, String>(vec![0.0; 3])
        });
        assert!(matches!(
            e,
            Err(DebugError::BadActivations {
                rows: 1,
                d: 4,
                found: 3
            })
        ));
        let e = bias_probe(&texts, &[0], &acts, &words, Placement::Append, &layers, |_| {
            Err("down".to_string())
        });
        assert!(matches!(e, Err(DebugError::Forward(ref s)) if s == "down"));
        // Prepending counts the same words.
        let r = bias_probe(&texts, &[0, 1], &acts, &words, Placement::Prepend, &layers, |t| {
            assert!(t.iter().all(|s| s.starts_with("x ")));
            net.forward(t)
        })
        .unwrap();
        assert_eq!(r.words[0].layers[0].flips, 0);
    }
}
