//! Synthetic networks whose answers are known, for the tests: every deep feature is an affine
//! function of word counts, so what a word does to a feature (and so to a layer) is exact.

use solver::Layer;

/// Feature j = `offset_j + Σ_w weight · count(w)` over the (lower-cased) words of a sentence.
pub struct CountNet {
    pub features: Vec<(f32, Vec<(&'static str, f32)>)>,
}

impl CountNet {
    pub fn d(&self) -> usize {
        self.features.len()
    }

    pub fn row(&self, text: &str) -> Vec<f32> {
        // Words as `interpret::words::Words` cuts them (runs of alphanumerics and `_`), every
        // occurrence counted.
        let all: Vec<String> = text
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .map(|w| w.to_lowercase())
            .collect();
        self.features
            .iter()
            .map(|(offset, terms)| {
                offset
                    + terms
                        .iter()
                        .map(|(w, a)| a * all.iter().filter(|x| x == w).count() as f32)
                        .sum::<f32>()
            })
            .collect()
    }

    pub fn forward(&self, texts: &[String]) -> Result<Vec<f32>, String> {
        Ok(texts.iter().flat_map(|t| self.row(t)).collect())
    }

    pub fn activations(&self, texts: &[String]) -> Vec<f32> {
        self.forward(texts).unwrap()
    }
}

/// A layer with weights `weight [K, D]` standardized by the mean and std of `rows` (std floored
/// at 1e-5 → 1, as the solver's standardizer does), so the tests exercise the raw-feature path.
pub fn layer_on(rows: &[f32], d: usize, weight: Vec<f32>, bias: Vec<f32>) -> Layer {
    let n = rows.len() / d;
    let mut mean = vec![0f64; d];
    for r in rows.chunks_exact(d) {
        for j in 0..d {
            mean[j] += r[j] as f64 / n as f64;
        }
    }
    let mut var = vec![0f64; d];
    for r in rows.chunks_exact(d) {
        for j in 0..d {
            var[j] += (r[j] as f64 - mean[j]).powi(2) / n as f64;
        }
    }
    let std = var
        .iter()
        .map(|v| if v.sqrt() < 1e-5 { 1.0 } else { v.sqrt() as f32 })
        .collect();
    Layer {
        k: bias.len(),
        d,
        weight,
        bias,
        mean: mean.iter().map(|&m| m as f32).collect(),
        std,
    }
}

pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}
