//! From a checkpoint's flat tensor names to the architecture's state dict: find where the model's
//! tensors live (a plain state dict, `module.` from DataParallel, a training checkpoint's
//! `model.` / `state_dict.`, robustness-library wrappers `module.model.` and
//! `module.attacker.model.`), map foreign naming schemes (Hugging Face transformers' ResNet) to
//! torchvision's, pick up an input normalizer stored beside the model (robustness library's
//! `normalizer.new_mean/new_std` or `attacker.normalize.*`), then check every expected tensor.

use std::collections::BTreeMap;

use crate::arch::VisionArch;
use crate::checkpoint::Checkpoint;
use crate::error::{Result, VisionError};

/// Naming scheme of the model's tensors inside the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// torchvision, timm (`resnet*.a1_in1k` and friends) and efficientnet_pytorch names.
    Native,
    /// Hugging Face transformers `ResNetForImageClassification` (`microsoft/resnet-50`).
    HfTransformers,
}

/// Where the model's tensors were found and what came with them.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Prefix stripped from the model's tensor names (e.g. `model.module.model.`).
    pub prefix: String,
    pub naming: Naming,
    /// Per-channel input mean and std stored in the checkpoint (robustness library models
    /// normalize inside the network), to apply to `[0, 1]` pixels.
    pub normalizer: Option<([f32; 3], [f32; 3])>,
    /// Number of classes of the checkpoint's head.
    pub num_classes: usize,
}

/// The architecture's tensors, validated: canonical name -> name in the checkpoint.
pub struct StateDict<'a> {
    ckpt: &'a Checkpoint,
    names: BTreeMap<String, String>,
    pub layout: Layout,
}

fn anchors(arch: VisionArch) -> &'static [(&'static str, Naming)] {
    if arch.is_resnet() {
        &[
            ("conv1.weight", Naming::Native),
            (
                "resnet.embedder.embedder.convolution.weight",
                Naming::HfTransformers,
            ),
        ]
    } else {
        &[("_conv_stem.weight", Naming::Native)]
    }
}

/// The `(prefix, naming)` under which `arch`'s first tensor is found; the shortest prefix wins
/// (a robustness checkpoint holds the same model under `module.model.` and
/// `module.attacker.model.`).
fn find_prefix(ckpt: &Checkpoint, arch: VisionArch) -> Option<(String, Naming)> {
    let mut best: Option<(String, Naming)> = None;
    for name in ckpt.names() {
        for &(anchor, naming) in anchors(arch) {
            if let Some(prefix) = name.strip_suffix(anchor) {
                if prefix.is_empty() || prefix.ends_with('.') {
                    let better = match &best {
                        None => true,
                        Some((b, _)) => (prefix.len(), prefix) < (b.len(), b.as_str()),
                    };
                    if better {
                        best = Some((prefix.to_string(), naming));
                    }
                }
            }
        }
    }
    best
}

/// A transformers ResNet name in torchvision's naming, or `None` when it has no counterpart.
fn hf_to_torchvision(name: &str) -> Option<String> {
    if let Some(rest) = name.strip_prefix("resnet.embedder.embedder.") {
        return match rest.split_once('.') {
            Some(("convolution", p)) => Some(format!("conv1.{p}")),
            Some(("normalization", p)) => Some(format!("bn1.{p}")),
            _ => None,
        };
    }
    if let Some(rest) = name.strip_prefix("classifier.1.") {
        return Some(format!("fc.{rest}"));
    }
    let rest = name.strip_prefix("resnet.encoder.stages.")?;
    let parts: Vec<&str> = rest.split('.').collect();
    // {stage}.layers.{block}.shortcut.{convolution|normalization}.{param}
    // {stage}.layers.{block}.layer.{j}.{convolution|normalization}.{param}
    let stage: usize = parts.first()?.parse().ok()?;
    if parts.get(1) != Some(&"layers") {
        return None;
    }
    let block: usize = parts.get(2)?.parse().ok()?;
    let base = format!("layer{}.{}", stage + 1, block);
    match parts.get(3..)? {
        ["shortcut", "convolution", p] => Some(format!("{base}.downsample.0.{p}")),
        ["shortcut", "normalization", p] => Some(format!("{base}.downsample.1.{p}")),
        ["layer", j, "convolution", p] => Some(format!("{base}.conv{}.{p}", j.parse::<usize>().ok()? + 1)),
        ["layer", j, "normalization", p] => Some(format!("{base}.bn{}.{p}", j.parse::<usize>().ok()? + 1)),
        _ => None,
    }
}

/// Buffers that are state but not weights: ignored wherever they appear.
fn ignorable(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
}

/// The input normalizer stored in a checkpoint (`…normalizer.new_mean/new_std` or
/// `…normalize.new_mean/new_std`, the robustness library's `InputNormalize` buffers): per-channel
/// mean and std for `[0, 1]` pixels. The shortest-named one wins.
pub fn input_normalizer(ckpt: &Checkpoint) -> Result<Option<([f32; 3], [f32; 3])>> {
    let mut best: Option<&str> = None;
    for name in ckpt.names() {
        if let Some(stem) = name.strip_suffix("new_mean") {
            if (stem.ends_with("normalizer.") || stem.ends_with("normalize."))
                && best.is_none_or(|b| (stem.len(), stem) < (b.len(), b))
            {
                best = Some(stem);
            }
        }
    }
    let Some(stem) = best else { return Ok(None) };
    let read3 = |what: &str| -> Result<[f32; 3]> {
        let name = format!("{stem}{what}");
        let found = ckpt.entry(&name).map(|e| e.shape.clone());
        let v = match found {
            Some(_) => ckpt.read_f32(&name)?,
            None => {
                return Err(VisionError::MissingTensor {
                    path: ckpt.path().into(),
                    arch: "the input normalizer".into(),
                    name,
                    more: 0,
                })
            }
        };
        <[f32; 3]>::try_from(v.as_slice()).map_err(|_| VisionError::WrongShape {
            path: ckpt.path().into(),
            arch: "the input normalizer".into(),
            name: name.clone(),
            expected: vec![3, 1, 1],
            found: found.unwrap_or_default(),
        })
    };
    Ok(Some((read3("new_mean")?, read3("new_std")?)))
}

impl<'a> StateDict<'a> {
    /// Locate and validate `arch`'s tensors in `ckpt`: every expected tensor present with its
    /// shape and a float dtype, nothing else under the model's prefix.
    pub fn resolve(ckpt: &'a Checkpoint, arch: VisionArch) -> Result<Self> {
        let path = ckpt.path().to_path_buf();
        let (prefix, naming) = find_prefix(ckpt, arch).ok_or_else(|| VisionError::MissingTensor {
            path: path.clone(),
            arch: arch.name().into(),
            name: anchors(arch)[0].0.into(),
            more: arch.expected_tensors(1000).len() - 1,
        })?;
        let mut names = BTreeMap::new();
        let mut unmapped = Vec::new();
        for name in ckpt.names() {
            let Some(local) = name.strip_prefix(prefix.as_str()) else {
                continue;
            };
            if ignorable(local) {
                continue;
            }
            let canonical = match naming {
                Naming::Native => Some(local.to_string()),
                Naming::HfTransformers => hf_to_torchvision(local),
            };
            match canonical {
                Some(c) => {
                    names.insert(c, name.to_string());
                }
                None => unmapped.push(name.to_string()),
            }
        }
        let head = arch.head_weight_name();
        let num_classes = names
            .get(head)
            .and_then(|n| ckpt.entry(n))
            .and_then(|e| e.shape.first().copied())
            .unwrap_or(1000);
        let expected = arch.expected_tensors(num_classes);

        let missing: Vec<&String> = expected
            .iter()
            .map(|(n, _)| n)
            .filter(|n| !names.contains_key(*n))
            .collect();
        if let Some(first) = missing.first() {
            return Err(VisionError::MissingTensor {
                path,
                arch: arch.name().into(),
                name: format!("{prefix}{first}"),
                more: missing.len() - 1,
            });
        }
        for (name, shape) in &expected {
            let file_name = &names[name];
            let entry = ckpt.entry(file_name).expect("listed by the checkpoint");
            if &entry.shape != shape {
                return Err(VisionError::WrongShape {
                    path,
                    arch: arch.name().into(),
                    name: file_name.clone(),
                    expected: shape.clone(),
                    found: entry.shape.clone(),
                });
            }
            if !entry.dtype.is_float() {
                return Err(VisionError::WrongDtype {
                    path,
                    name: file_name.clone(),
                    dtype: entry.dtype.name().into(),
                });
            }
        }
        let expected_names: std::collections::HashSet<&str> =
            expected.iter().map(|(n, _)| n.as_str()).collect();
        let mut unexpected: Vec<String> = names
            .iter()
            .filter(|(c, _)| !expected_names.contains(c.as_str()))
            .map(|(_, f)| f.clone())
            .collect();
        unexpected.extend(unmapped);
        unexpected.sort();
        if let Some(first) = unexpected.first() {
            return Err(VisionError::UnexpectedTensor {
                path,
                arch: arch.name().into(),
                name: first.clone(),
                more: unexpected.len() - 1,
            });
        }
        names.retain(|c, _| expected_names.contains(c.as_str()));
        let normalizer = input_normalizer(ckpt)?;
        Ok(StateDict {
            ckpt,
            names,
            layout: Layout {
                prefix,
                naming,
                normalizer,
                num_classes,
            },
        })
    }

    /// The shape of the validated tensor `name` (canonical name).
    pub fn shape(&self, name: &str) -> Vec<usize> {
        let file_name = self
            .names
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not an expected tensor"));
        self.ckpt.entry(file_name).expect("validated").shape.clone()
    }

    /// The validated tensor `name` (canonical name) as f32.
    pub fn get(&self, name: &str) -> Result<Vec<f32>> {
        let file_name = self
            .names
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not an expected tensor"));
        self.ckpt.read_f32(file_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transformers_names_map_to_torchvision() {
        let cases = [
            ("resnet.embedder.embedder.convolution.weight", "conv1.weight"),
            (
                "resnet.embedder.embedder.normalization.running_var",
                "bn1.running_var",
            ),
            (
                "resnet.encoder.stages.0.layers.0.shortcut.convolution.weight",
                "layer1.0.downsample.0.weight",
            ),
            (
                "resnet.encoder.stages.3.layers.2.shortcut.normalization.bias",
                "layer4.2.downsample.1.bias",
            ),
            (
                "resnet.encoder.stages.1.layers.3.layer.2.convolution.weight",
                "layer2.3.conv3.weight",
            ),
            (
                "resnet.encoder.stages.2.layers.5.layer.0.normalization.weight",
                "layer3.5.bn1.weight",
            ),
            ("classifier.1.weight", "fc.weight"),
        ];
        for (hf, tv) in cases {
            assert_eq!(hf_to_torchvision(hf).as_deref(), Some(tv), "{hf}");
        }
        assert_eq!(hf_to_torchvision("resnet.pooler.weight"), None);
    }
}
