//! Feature visualization (design §4): gradient ascent on an input image to maximize one deep
//! feature, with burn autodiff. Raw pixel ascent on a standard (non-robust) network gives
//! high-frequency noise, so the image is regularized the usual ways (Olah et al., "Feature
//! Visualization", Distill 2017): it is parameterized as a sum of a few resolutions (a Laplacian-
//! pyramid-like parameterization that favours low frequencies), squashed to [0, 1] by a
//! sigmoid, randomly jittered at every step (optimized over a slightly larger canvas, a random
//! window fed to the network), and penalized by its total variation. Robust models, for which
//! the paper shows visualizations, give readable images with the same code.
//!
//! Several features are optimized at once, one image per feature in one batch, so a batch of B
//! features costs the forward and backward passes of one batch.

use burn::tensor::activation::sigmoid;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Settings of the ascent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeatVisConfig {
    /// Side of the image the network sees.
    pub size: usize,
    /// Gradient steps.
    pub steps: usize,
    /// Adam step size on the parameterization.
    pub lr: f64,
    /// Largest random shift per step, in pixels.
    pub jitter: usize,
    /// Resolutions summed: size, size/2, …, size/2^(levels−1).
    pub levels: usize,
    /// Weight of the total-variation penalty (per pixel, on [0, 1] images).
    pub tv_weight: f64,
    pub seed: u64,
}

impl Default for FeatVisConfig {
    fn default() -> Self {
        FeatVisConfig {
            size: 128,
            steps: 64,
            lr: 0.05,
            jitter: 8,
            levels: 4,
            tv_weight: 0.5,
            seed: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FeatVisError {
    #[error("feature visualization needs at least one feature, one step and a size of 16 or more")]
    Empty,
    #[error("feature {feature} is out of range: the network has {dim} features")]
    FeatureOutOfRange { feature: usize, dim: usize },
    #[error("reading a tensor: {0}")]
    Read(String),
}

/// One visualized feature.
#[derive(Debug, Clone, PartialEq)]
pub struct Visualization {
    pub feature: usize,
    pub image: RgbImage,
    /// The feature's activation on the final image (no jitter), and on a mid-gray image.
    pub activation: f32,
    pub baseline: f32,
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, FeatVisError> {
    t.try_into_vec_as::<f32>()
        .map_err(|e| FeatVisError::Read(format!("{e:?}")))
}

/// Adam state of one parameter tensor (kept without autodiff).
struct Adam<const D: usize> {
    m: Tensor<D>,
    v: Tensor<D>,
}

/// Maximize each of `features` on its own image. `device` is the backend to run on (it is
/// wrapped for autodiff here); `forward` maps a normalized `[B, 3, size, size]` batch to its
/// `[B, D]` features and must be built on `device.clone().autodiff()` (e.g. a model moved
/// there). `mean` and `std` are the network's input normalization of [0, 1] pixels.
pub fn visualize<F>(
    features: &[usize],
    config: &FeatVisConfig,
    mean: [f32; 3],
    std: [f32; 3],
    device: &Device,
    forward: F,
) -> Result<Vec<Visualization>, FeatVisError>
where
    F: Fn(Tensor<4>) -> Tensor<2>,
{
    let (b, size, jitter) = (features.len(), config.size, config.jitter);
    if b == 0 || config.steps == 0 || size < 16 {
        return Err(FeatVisError::Empty);
    }
    let ad = device.clone().autodiff();
    let canvas = size + 2 * jitter;
    let levels = config.levels.clamp(1, 6);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    // Parameters: one tensor per resolution, small random start.
    let mut params: Vec<Tensor<4>> = (0..levels)
        .map(|l| {
            let side = (canvas >> l).max(2);
            let init: Vec<f32> = (0..b * 3 * side * side)
                .map(|_| (rng.random::<f32>() - 0.5) * 0.02)
                .collect();
            Tensor::<4>::from_data(TensorData::new(init, [b, 3, side, side]), device)
        })
        .collect();
    let mut adam: Vec<Adam<4>> = params
        .iter()
        .map(|p| Adam {
            m: p.zeros_like(),
            v: p.zeros_like(),
        })
        .collect();
    let mean_t = Tensor::<1>::from_floats(mean, &ad).reshape([1, 3, 1, 1]);
    let std_t = Tensor::<1>::from_floats(std, &ad).reshape([1, 3, 1, 1]);

    let image_of = |params: &[Tensor<4>]| -> Tensor<4> {
        let mut logit = params[0].clone();
        for p in &params[1..] {
            logit = logit
                + interpolate(
                    p.clone(),
                    InterpolateOptions::new(InterpolateMode::Bilinear).with_output_size([canvas, canvas]),
                );
        }
        sigmoid(logit)
    };

    // The one-hot selection of each image's feature, once the dimension is known.
    let probe =
        forward(((Tensor::<4>::zeros([1, 3, size, size], &ad) + 0.5) - mean_t.clone()) / std_t.clone());
    let dim = probe.dims()[1];
    let baseline = to_vec(probe.inner())?;
    if let Some(&feature) = features.iter().find(|&&f| f >= dim) {
        return Err(FeatVisError::FeatureOutOfRange { feature, dim });
    }
    let mut onehot = vec![0f32; b * dim];
    for (i, &f) in features.iter().enumerate() {
        onehot[i * dim + f] = 1.0;
    }
    let select = Tensor::<2>::from_data(TensorData::new(onehot, [b, dim]), &ad);

    let (beta1, beta2, eps) = (0.9f64, 0.999f64, 1e-8f64);
    for step in 1..=config.steps {
        let leaves: Vec<Tensor<4>> = params
            .iter()
            .map(|p| p.clone().autodiff().require_grad())
            .collect();
        let x = image_of(&leaves);
        let (dy, dx) = (rng.random_range(0..=2 * jitter), rng.random_range(0..=2 * jitter));
        let window = x.slice([0..b, 0..3, dy..dy + size, dx..dx + size]);
        let tv = (window.clone().slice([0..b, 0..3, 1..size, 0..size])
            - window.clone().slice([0..b, 0..3, 0..size - 1, 0..size]))
        .abs()
        .mean()
            + (window.clone().slice([0..b, 0..3, 0..size, 1..size])
                - window.clone().slice([0..b, 0..3, 0..size, 0..size - 1]))
            .abs()
            .mean();
        let feats = forward((window - mean_t.clone()) / std_t.clone());
        let objective = (feats * select.clone()).sum() / b as f32;
        let loss = tv * config.tv_weight as f32 - objective;
        let grads = loss.backward();
        let (c1, c2) = (1.0 - beta1.powi(step as i32), 1.0 - beta2.powi(step as i32));
        for (i, leaf) in leaves.iter().enumerate() {
            let Some(g) = leaf.grad(&grads) else { continue };
            let st = &mut adam[i];
            st.m = st.m.clone() * beta1 as f32 + g.clone() * (1.0 - beta1) as f32;
            st.v = st.v.clone() * beta2 as f32 + g.clone() * g * (1.0 - beta2) as f32;
            let update = (st.m.clone() / c1 as f32) / ((st.v.clone() / c2 as f32).sqrt() + eps as f32);
            params[i] = params[i].clone() - update * config.lr as f32;
        }
    }

    // The final images: the canvas's centre window, without autodiff.
    let x = image_of(&params).slice([0..b, 0..3, jitter..jitter + size, jitter..jitter + size]);
    let final_feats = to_vec(forward(((x.clone().autodiff()) - mean_t) / std_t).inner())?;
    let pixels = to_vec(x)?;
    let plane = size * size;
    (0..b)
        .map(|i| {
            let img = RgbImage::from_fn(size as u32, size as u32, |px, py| {
                let at = |c: usize| {
                    let v = pixels[i * 3 * plane + c * plane + py as usize * size + px as usize];
                    (v.clamp(0.0, 1.0) * 255.0).round() as u8
                };
                image::Rgb([at(0), at(1), at(2)])
            });
            Ok(Visualization {
                feature: features[i],
                image: img,
                activation: final_feats[i * dim + features[i]],
                baseline: baseline[features[i]],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A "network" whose features are the mean of each input channel and the centre-minus-
    /// border brightness: ascent must redden the image for feature 0 and light its centre for
    /// feature 3.
    fn channel_means(x: Tensor<4>) -> Tensor<2> {
        let [b, _, h, w] = x.dims();
        let means = x.clone().mean_dim(3).mean_dim(2).reshape([b, 3]);
        let centre = x
            .clone()
            .slice([0..b, 0..3, h / 4..3 * h / 4, w / 4..3 * w / 4])
            .mean_dim(3)
            .mean_dim(2)
            .mean_dim(1)
            .reshape([b, 1]);
        let all = x.mean_dim(3).mean_dim(2).mean_dim(1).reshape([b, 1]);
        Tensor::cat(vec![means, centre - all], 1)
    }

    #[test]
    fn ascent_raises_the_feature_it_is_asked_for() {
        let device = Device::flex();
        let config = FeatVisConfig {
            size: 32,
            steps: 40,
            lr: 0.1,
            jitter: 2,
            levels: 3,
            tv_weight: 0.05,
            seed: 1,
        };
        let out = visualize(&[0, 3], &config, [0.5; 3], [0.25; 3], &device, channel_means).unwrap();
        assert_eq!(out.len(), 2);
        let mean_channel = |img: &RgbImage, c: usize| {
            img.pixels().map(|p| p.0[c] as f64).sum::<f64>() / (img.width() * img.height()) as f64
        };
        let red = &out[0].image;
        assert!(
            out[0].activation > out[0].baseline + 1.0,
            "{:?}",
            (out[0].activation, out[0].baseline)
        );
        assert!(
            mean_channel(red, 0) > 200.0 && mean_channel(red, 1) < 160.0,
            "image reddened"
        );
        let lit = &out[1].image;
        let luminance = |x0: u32, x1: u32| {
            let mut s = 0.0;
            for y in x0..x1 {
                for x in x0..x1 {
                    s += lit.get_pixel(x, y).0.iter().map(|&v| v as f64).sum::<f64>();
                }
            }
            s / ((x1 - x0) * (x1 - x0)) as f64
        };
        assert!(
            luminance(10, 22) > luminance(0, 4) + 100.0,
            "centre lighter than the corner"
        );
        let again = visualize(&[0, 3], &config, [0.5; 3], [0.25; 3], &device, channel_means).unwrap();
        assert_eq!(out, again, "deterministic for a seed");
        assert!(matches!(
            visualize(&[9], &config, [0.5; 3], [0.25; 3], &device, channel_means),
            Err(FeatVisError::FeatureOutOfRange { feature: 9, dim: 4 })
        ));
    }
}
