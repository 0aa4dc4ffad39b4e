//! Reading deep features (design §4): for each feature a person should look at, its top- and
//! bottom-activating examples (prototypes) and LIME on those examples — the words that raise or
//! lower it (word clouds), or the superpixels that drive it (overlays).
//!
//! The network is a closure from inputs to their `[n, D]` activations, so these functions work
//! on any backbone (and on synthetic models in tests). LIME is run once per distinct input and
//! reads all `D` features from the same perturbed forward passes, so an input shared by the
//! prototypes of many features costs its passes once.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::lime::{self, Explanation, LimeConfig, LimeError, MaskScheme};
use crate::superpixels::{self, Fill, Segments};
use crate::words::Words;

/// One example and how strongly it activates a feature.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prototype {
    /// Index into the split the activations come from.
    pub index: usize,
    pub activation: f32,
}

/// The `k` examples with the highest and the `k` with the lowest activation of feature `j`
/// (`activations` is `[n, d]` row-major; rows with a NaN are skipped). Ties go to the lower index.
pub fn prototypes(activations: &[f32], d: usize, j: usize, k: usize) -> (Vec<Prototype>, Vec<Prototype>) {
    let mut order: Vec<Prototype> = activations
        .chunks_exact(d)
        .enumerate()
        .filter(|(_, row)| !row.iter().any(|v| v.is_nan()))
        .map(|(index, row)| Prototype {
            index,
            activation: row[j],
        })
        .collect();
    order.sort_by(|a, b| b.activation.total_cmp(&a.activation).then(a.index.cmp(&b.index)));
    let top = order.iter().take(k).copied().collect();
    let bottom = order.iter().rev().take(k).copied().collect();
    (top, bottom)
}

/// A word and its mean LIME weight on one feature over the sentences it was explained in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WordWeight {
    pub word: String,
    pub weight: f32,
    /// Explained sentences the word occurs in.
    pub count: usize,
}

/// LIME of one image for one feature: a weight per superpixel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageLime {
    pub index: usize,
    pub segment_weights: Vec<f32>,
    pub r2: f32,
}

/// What was found about one deep feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureReading {
    pub feature: usize,
    pub top: Vec<Prototype>,
    pub bottom: Vec<Prototype>,
    /// Text: words that raise the feature, by mean LIME weight, largest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub positive_words: Vec<WordWeight>,
    /// Text: words that lower it, most negative first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub negative_words: Vec<WordWeight>,
    /// Images: LIME of the top images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_lime: Vec<ImageLime>,
    /// Mean R² of this feature's LIME surrogates over the explained inputs.
    pub lime_r2: f32,
}

/// How much to read per feature.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadConfig {
    /// Top and bottom prototypes kept per feature.
    pub prototypes: usize,
    /// Inputs explained by LIME per feature and side (text: top and bottom sentences; images:
    /// top images).
    pub lime_inputs: usize,
    pub lime: LimeConfig,
    /// Words kept per cloud.
    pub cloud_words: usize,
    /// Superpixels per image (SLIC).
    pub segments: usize,
    /// How a hidden superpixel is filled (lime's default: its mean colour).
    pub fill: Fill,
}

impl Default for ReadConfig {
    fn default() -> Self {
        ReadConfig {
            prototypes: 8,
            lime_inputs: 3,
            lime: LimeConfig::default(),
            cloud_words: 30,
            segments: superpixels::DEFAULT_N_SEGMENTS,
            fill: Fill::Mean,
        }
    }
}

/// What the LIME stage cost, for the report and the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LimeStats {
    /// Distinct inputs explained.
    pub inputs: usize,
    /// Perturbed inputs run through the network (samples × inputs).
    pub forward_passes: usize,
    pub seconds: f64,
}

impl LimeStats {
    pub fn inputs_per_second(&self) -> f64 {
        self.inputs as f64 / self.seconds.max(1e-9)
    }
    pub fn passes_per_second(&self) -> f64 {
        self.forward_passes as f64 / self.seconds.max(1e-9)
    }
}

/// A per-input seed, so one input's masks do not depend on which other inputs were explained.
fn input_seed(seed: u64, index: usize) -> u64 {
    seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn check_activations(activations: &[f32], n: usize, d: usize) -> Result<(), LimeError> {
    if d == 0 || activations.len() != n * d {
        return Err(LimeError::BadActivations {
            samples: n,
            found: activations.len(),
        });
    }
    Ok(())
}

/// Prototypes and word clouds of `features` over `texts` (activations `[texts.len(), d]`).
/// `forward` maps sentences to their `[len, d]` activations; `progress(done, total)` is called
/// before each explained input and once at the end.
pub fn read_text_features<F>(
    texts: &[String],
    activations: &[f32],
    d: usize,
    features: &[usize],
    config: &ReadConfig,
    mut forward: F,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Vec<FeatureReading>, LimeStats), LimeError>
where
    F: FnMut(&[String]) -> Result<Vec<f32>, LimeError>,
{
    check_activations(activations, texts.len(), d)?;
    let protos: Vec<_> = features
        .iter()
        .map(|&j| prototypes(activations, d, j, config.prototypes))
        .collect();
    let chosen = |(top, bottom): &(Vec<Prototype>, Vec<Prototype>)| -> Vec<usize> {
        top.iter()
            .take(config.lime_inputs)
            .chain(bottom.iter().take(config.lime_inputs))
            .map(|p| p.index)
            .collect()
    };
    let inputs: BTreeSet<usize> = protos.iter().flat_map(chosen).collect();
    let started = Instant::now();
    let mut stats = LimeStats::default();
    let mut explained: HashMap<usize, (Words, Explanation)> = HashMap::new();
    for (done, &i) in inputs.iter().enumerate() {
        progress(done, inputs.len());
        let words = Words::split(&texts[i]);
        if words.is_empty() {
            continue;
        }
        let cfg = LimeConfig {
            seed: input_seed(config.lime.seed, i),
            ..config.lime
        };
        let e = lime::explain(words.len(), MaskScheme::RemoveCount, &cfg, |masks| {
            let perturbed: Vec<String> = (0..masks.samples).map(|s| words.render(masks.row(s))).collect();
            forward(&perturbed)
        })?;
        stats.inputs += 1;
        stats.forward_passes += e.forward_passes;
        explained.insert(i, (words, e));
    }
    progress(inputs.len(), inputs.len());
    stats.seconds = started.elapsed().as_secs_f64();

    let readings = features
        .iter()
        .zip(&protos)
        .map(|(&j, p)| {
            // Mean weight of each (lower-cased) word over the sentences it occurs in.
            let mut sums: HashMap<String, (f64, usize)> = HashMap::new();
            let mut r2 = Vec::new();
            for i in chosen(p) {
                let Some((words, e)) = explained.get(&i) else {
                    continue;
                };
                r2.push(e.r2[j]);
                let mut seen: HashMap<String, f64> = HashMap::new();
                for (c, w) in words.vocab.iter().enumerate() {
                    *seen.entry(w.to_lowercase()).or_default() += e.weight(c, j) as f64;
                }
                for (w, v) in seen {
                    let s = sums.entry(w).or_default();
                    s.0 += v;
                    s.1 += 1;
                }
            }
            let mut all: Vec<WordWeight> = sums
                .into_iter()
                .map(|(word, (sum, count))| WordWeight {
                    word,
                    weight: (sum / count as f64) as f32,
                    count,
                })
                .collect();
            all.sort_by(|a, b| b.weight.total_cmp(&a.weight).then_with(|| a.word.cmp(&b.word)));
            let positive = all
                .iter()
                .filter(|w| w.weight > 0.0)
                .take(config.cloud_words)
                .cloned()
                .collect();
            let negative = all
                .iter()
                .rev()
                .filter(|w| w.weight < 0.0)
                .take(config.cloud_words)
                .cloned()
                .collect();
            FeatureReading {
                feature: j,
                top: p.0.clone(),
                bottom: p.1.clone(),
                positive_words: positive,
                negative_words: negative,
                image_lime: Vec::new(),
                lime_r2: mean(&r2),
            }
        })
        .collect();
    Ok((readings, stats))
}

fn mean(v: &[f32]) -> f32 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f32>() / v.len() as f32
    }
}

/// What [`read_image_features`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageReadings {
    pub readings: Vec<FeatureReading>,
    /// Superpixels of every explained image, by example index (to draw overlays).
    pub segments: HashMap<usize, Segments>,
    pub stats: LimeStats,
}

/// Prototypes of `features` over images (activations `[n, d]`) and LIME on each feature's top
/// images. `view(i)` is example i as the network sees it (resized and cropped, 8-bit),
/// `forward` maps such views to their `[len, d]` activations.
pub fn read_image_features<V, F>(
    activations: &[f32],
    d: usize,
    features: &[usize],
    config: &ReadConfig,
    mut view: V,
    mut forward: F,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ImageReadings, LimeError>
where
    V: FnMut(usize) -> Result<RgbImage, LimeError>,
    F: FnMut(&[RgbImage]) -> Result<Vec<f32>, LimeError>,
{
    let n = activations.len().checked_div(d).unwrap_or(0);
    check_activations(activations, n, d)?;
    let protos: Vec<_> = features
        .iter()
        .map(|&j| prototypes(activations, d, j, config.prototypes))
        .collect();
    let inputs: BTreeSet<usize> = protos
        .iter()
        .flat_map(|(top, _)| top.iter().take(config.lime_inputs).map(|p| p.index))
        .collect();
    let started = Instant::now();
    let mut stats = LimeStats::default();
    let mut explained: HashMap<usize, Explanation> = HashMap::new();
    let mut segmentations = HashMap::new();
    for (done, &i) in inputs.iter().enumerate() {
        progress(done, inputs.len());
        let image = view(i)?;
        let segments = superpixels::slic(&image, config.segments, superpixels::DEFAULT_COMPACTNESS);
        let cfg = LimeConfig {
            seed: input_seed(config.lime.seed, i),
            ..config.lime
        };
        let e = lime::explain(segments.count, MaskScheme::Bernoulli, &cfg, |masks| {
            let perturbed: Vec<RgbImage> = (0..masks.samples)
                .map(|s| superpixels::perturb(&image, &segments, masks.row(s), config.fill))
                .collect();
            forward(&perturbed)
        })?;
        stats.inputs += 1;
        stats.forward_passes += e.forward_passes;
        explained.insert(i, e);
        segmentations.insert(i, segments);
    }
    progress(inputs.len(), inputs.len());
    stats.seconds = started.elapsed().as_secs_f64();
    let readings = features
        .iter()
        .zip(&protos)
        .map(|(&j, (top, bottom))| {
            let image_lime: Vec<ImageLime> = top
                .iter()
                .take(config.lime_inputs)
                .filter_map(|p| explained.get(&p.index).map(|e| (p.index, e)))
                .map(|(index, e)| ImageLime {
                    index,
                    segment_weights: (0..e.m).map(|c| e.weight(c, j)).collect(),
                    r2: e.r2[j],
                })
                .collect();
            let r2: Vec<f32> = image_lime.iter().map(|l| l.r2).collect();
            FeatureReading {
                feature: j,
                top: top.clone(),
                bottom: bottom.clone(),
                positive_words: Vec::new(),
                negative_words: Vec::new(),
                lime_r2: mean(&r2),
                image_lime,
            }
        })
        .collect();
    Ok(ImageReadings {
        readings,
        segments: segmentations,
        stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prototypes_rank_and_skip_nan_rows() {
        let acts = [0.5, 1.0, 3.0, 0.0, f32::NAN, 9.0, -1.0, 2.0, 3.0, 5.0];
        let (top, bottom) = prototypes(&acts, 2, 0, 2);
        assert_eq!(top.iter().map(|p| p.index).collect::<Vec<_>>(), [1, 4]);
        assert_eq!(bottom.iter().map(|p| p.index).collect::<Vec<_>>(), [3, 0]);
    }
}
