//! Evaluation of decision layers (design §3): the paper's Figure 4b table — accuracy of a layer
//! with all its features, with only each class's top-k features by |weight|, and with only the
//! rest — for the dense and the selected sparse layer.

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::config::Family;
use crate::data::Split;
use crate::engine::{self, DeviceSplit};
use crate::io::Layer;

/// Scores of one layer restricted three ways.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TopKScores {
    /// Features kept per class.
    pub k: usize,
    /// Accuracy (R² for gaussian) with all of the layer's weights.
    pub all: f64,
    /// With only each class's k largest |weights| (the rest zeroed).
    pub top_k: f64,
    /// With each class's k largest |weights| zeroed.
    pub rest: f64,
}

/// A layer's size and its Figure 4b row on one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerEvaluation {
    /// Nonzero weights.
    pub nnz: usize,
    pub nnz_per_class: Vec<usize>,
    /// Mean nonzero weights per class (the paper's "features per class").
    pub features_per_class: f64,
    /// Features used by at least one class.
    pub features_used: usize,
    pub scores: TopKScores,
}

/// Which of a class's weights a restricted layer keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    TopK,
    Rest,
}

/// A copy of `layer` keeping, per class, only its `k` largest |weights| (`Keep::TopK`) or only
/// the others (`Keep::Rest`). Ties break toward the lower feature index; zero weights are never
/// counted among the top k.
pub fn restrict(layer: &Layer, k: usize, keep: Keep) -> Layer {
    let mut out = layer.clone();
    for row in out.weight.chunks_exact_mut(layer.d) {
        let mut order: Vec<usize> = (0..row.len()).filter(|&j| row[j] != 0.0).collect();
        order.sort_by(|&a, &b| row[b].abs().total_cmp(&row[a].abs()).then(a.cmp(&b)));
        let top: std::collections::HashSet<usize> = order.into_iter().take(k).collect();
        for (j, w) in row.iter_mut().enumerate() {
            if top.contains(&j) != (keep == Keep::TopK) {
                *w = 0.0;
            }
        }
    }
    out
}

/// Score of `layer` on an uploaded, standardized split (the layer's own mean/std are not
/// applied: the split is already in the space the layer was fitted in).
pub fn score(split: &DeviceSplit, layer: &Layer, family: Family) -> f64 {
    let device = split.device();
    let (wt, b) = upload(layer, &device);
    engine::evaluate(split, &wt, &b, family).score
}

fn upload(layer: &Layer, device: &Device) -> (Tensor<2>, Tensor<2>) {
    let w = Tensor::<2>::from_data(TensorData::new(layer.weight.clone(), [layer.k, layer.d]), device);
    let b = Tensor::<2>::from_data(TensorData::new(layer.bias.clone(), [1, layer.k]), device);
    (w.transpose(), b)
}

/// The Figure 4b row of `layer` on `split` (standardized like the training data).
pub fn evaluate_layer(
    split: &Split,
    layer: &Layer,
    family: Family,
    k: usize,
    device: &Device,
) -> LayerEvaluation {
    let uploaded = DeviceSplit::upload(split, layer.k, device);
    let nnz_per_class = layer.nnz_per_class();
    let nnz: usize = nnz_per_class.iter().sum();
    LayerEvaluation {
        nnz,
        features_per_class: nnz as f64 / layer.k.max(1) as f64,
        nnz_per_class,
        features_used: layer.features_used(),
        scores: TopKScores {
            k,
            all: score(&uploaded, layer, family),
            top_k: score(&uploaded, &restrict(layer, k, Keep::TopK), family),
            rest: score(&uploaded, &restrict(layer, k, Keep::Rest), family),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Standardizer;

    fn layer(weight: Vec<f32>, k: usize, d: usize) -> Layer {
        let s = Standardizer::identity(d);
        Layer {
            k,
            d,
            weight,
            bias: vec![0.0; k],
            mean: s.mean,
            std: s.std,
        }
    }

    #[test]
    fn restrict_keeps_each_class_top_k_by_magnitude() {
        let l = layer(vec![0.1, -3.0, 2.0, 0.0, /* class 1 */ 0.0, 0.0, 0.5, -0.5], 2, 4);
        let top = restrict(&l, 1, Keep::TopK);
        assert_eq!(top.weight, vec![0.0, -3.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0]);
        let rest = restrict(&l, 1, Keep::Rest);
        assert_eq!(rest.weight, vec![0.1, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, -0.5]);
        // More than the nonzeros: top-k is the whole layer, the rest is empty.
        assert_eq!(restrict(&l, 10, Keep::TopK).weight, l.weight);
        assert!(restrict(&l, 10, Keep::Rest).weight.iter().all(|&w| w == 0.0));
    }

    #[cfg(feature = "flex")]
    #[test]
    fn scores_follow_the_features_kept() {
        use crate::data::Targets;
        // Class = sign of feature 0; feature 1 is noise the layer weighs less.
        let x = vec![1.0, 0.3, -1.0, 0.2, 2.0, -0.4, -2.0, -0.1];
        let split = Split::new("test", x, 4, 2, Targets::Classes(vec![1, 0, 1, 0])).unwrap();
        let l = layer(vec![-1.0, 0.1, 1.0, -0.1], 2, 2);
        let e = evaluate_layer(&split, &l, Family::Multinomial, 1, &Device::flex());
        assert_eq!(e.nnz, 4);
        assert_eq!(e.features_per_class, 2.0);
        assert_eq!(e.scores.all, 1.0);
        assert_eq!(e.scores.top_k, 1.0);
        assert!(e.scores.rest < 1.0);
    }
}
