//! The architectures this crate builds, and the tensors (torchvision / efficientnet_pytorch names
//! and shapes) each one needs.

use std::fmt;
use std::str::FromStr;

use crate::error::VisionError;

/// A backbone architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VisionArch {
    ResNet18,
    ResNet34,
    ResNet50,
    ResNet101,
    ResNet152,
    EfficientNetLite0,
}

impl VisionArch {
    pub const ALL: [VisionArch; 6] = [
        VisionArch::ResNet18,
        VisionArch::ResNet34,
        VisionArch::ResNet50,
        VisionArch::ResNet101,
        VisionArch::ResNet152,
        VisionArch::EfficientNetLite0,
    ];

    pub fn name(self) -> &'static str {
        match self {
            VisionArch::ResNet18 => "resnet18",
            VisionArch::ResNet34 => "resnet34",
            VisionArch::ResNet50 => "resnet50",
            VisionArch::ResNet101 => "resnet101",
            VisionArch::ResNet152 => "resnet152",
            VisionArch::EfficientNetLite0 => "efficientnet-lite0",
        }
    }

    /// Width of the pooled latent (`features`).
    pub fn feature_dim(self) -> usize {
        match self.resnet_spec() {
            Some(spec) => 512 * spec.expansion(),
            None => LITE0_HEAD,
        }
    }

    pub fn is_resnet(self) -> bool {
        self.resnet_spec().is_some()
    }

    pub(crate) fn resnet_spec(self) -> Option<ResNetSpec> {
        let (bottleneck, blocks) = match self {
            VisionArch::ResNet18 => (false, [2, 2, 2, 2]),
            VisionArch::ResNet34 => (false, [3, 4, 6, 3]),
            VisionArch::ResNet50 => (true, [3, 4, 6, 3]),
            VisionArch::ResNet101 => (true, [3, 4, 23, 3]),
            VisionArch::ResNet152 => (true, [3, 8, 36, 3]),
            VisionArch::EfficientNetLite0 => return None,
        };
        Some(ResNetSpec { bottleneck, blocks })
    }

    /// The tensor of the classifier weight, `[K, D]`, whose first extent gives the class count.
    pub(crate) fn head_weight_name(self) -> &'static str {
        if self.is_resnet() {
            "fc.weight"
        } else {
            "_fc.weight"
        }
    }

    /// Every float tensor the architecture reads, in torchvision / efficientnet_pytorch names,
    /// with its shape, for a `num_classes`-way head.
    pub fn expected_tensors(self, num_classes: usize) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let bn = |out: &mut Vec<(String, Vec<usize>)>, name: &str, c: usize| {
            for p in ["weight", "bias", "running_mean", "running_var"] {
                out.push((format!("{name}.{p}"), vec![c]));
            }
        };
        match self.resnet_spec() {
            Some(spec) => {
                out.push(("conv1.weight".into(), vec![64, 3, 7, 7]));
                bn(&mut out, "bn1", 64);
                for b in spec.blocks() {
                    let p = format!("layer{}.{}", b.layer + 1, b.index);
                    if spec.bottleneck {
                        out.push((format!("{p}.conv1.weight"), vec![b.planes, b.inplanes, 1, 1]));
                        bn(&mut out, &format!("{p}.bn1"), b.planes);
                        out.push((format!("{p}.conv2.weight"), vec![b.planes, b.planes, 3, 3]));
                        bn(&mut out, &format!("{p}.bn2"), b.planes);
                        out.push((format!("{p}.conv3.weight"), vec![b.out, b.planes, 1, 1]));
                        bn(&mut out, &format!("{p}.bn3"), b.out);
                    } else {
                        out.push((format!("{p}.conv1.weight"), vec![b.planes, b.inplanes, 3, 3]));
                        bn(&mut out, &format!("{p}.bn1"), b.planes);
                        out.push((format!("{p}.conv2.weight"), vec![b.planes, b.planes, 3, 3]));
                        bn(&mut out, &format!("{p}.bn2"), b.planes);
                    }
                    if b.downsample {
                        out.push((format!("{p}.downsample.0.weight"), vec![b.out, b.inplanes, 1, 1]));
                        bn(&mut out, &format!("{p}.downsample.1"), b.out);
                    }
                }
                let d = self.feature_dim();
                out.push(("fc.weight".into(), vec![num_classes, d]));
                out.push(("fc.bias".into(), vec![num_classes]));
            }
            None => {
                out.push(("_conv_stem.weight".into(), vec![LITE0_STEM, 3, 3, 3]));
                bn(&mut out, "_bn0", LITE0_STEM);
                for (i, b) in lite0_blocks().into_iter().enumerate() {
                    let p = format!("_blocks.{i}");
                    let mid = b.cin * b.expand;
                    if b.expand != 1 {
                        out.push((format!("{p}._expand_conv.weight"), vec![mid, b.cin, 1, 1]));
                        bn(&mut out, &format!("{p}._bn0"), mid);
                    }
                    out.push((
                        format!("{p}._depthwise_conv.weight"),
                        vec![mid, 1, b.kernel, b.kernel],
                    ));
                    bn(&mut out, &format!("{p}._bn1"), mid);
                    out.push((format!("{p}._project_conv.weight"), vec![b.cout, mid, 1, 1]));
                    bn(&mut out, &format!("{p}._bn2"), b.cout);
                }
                out.push(("_conv_head.weight".into(), vec![LITE0_HEAD, 320, 1, 1]));
                bn(&mut out, "_bn1", LITE0_HEAD);
                out.push(("_fc.weight".into(), vec![num_classes, LITE0_HEAD]));
                out.push(("_fc.bias".into(), vec![num_classes]));
            }
        }
        out
    }
}

impl fmt::Display for VisionArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for VisionArch {
    type Err = VisionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace(['_', ' '], "-");
        let norm = match norm.as_str() {
            "resnet-18" => "resnet18",
            "resnet-34" => "resnet34",
            "resnet-50" => "resnet50",
            "resnet-101" => "resnet101",
            "resnet-152" => "resnet152",
            "efficientnet-lite-0" | "efficientnetlite0" | "lite0" => "efficientnet-lite0",
            other => other,
        }
        .to_string();
        VisionArch::ALL
            .into_iter()
            .find(|a| a.name() == norm)
            .ok_or_else(|| VisionError::UnknownArch(s.to_string()))
    }
}

/// Which pooled latent `features` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FeatureMode {
    /// After the last activation (ResNet: the last block's ReLU; Lite0: the head's ReLU6), then
    /// global-average pooled: the input of the classifier.
    #[default]
    PostRelu,
    /// Before it (ResNet: the last block's `out + identity`; Lite0: the head conv + BN), pooled.
    PreRelu,
}

impl FeatureMode {
    pub fn name(self) -> &'static str {
        match self {
            FeatureMode::PostRelu => "post-relu",
            FeatureMode::PreRelu => "pre-relu",
        }
    }
}

impl fmt::Display for FeatureMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FeatureMode {
    type Err = VisionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "post-relu" | "post" | "relu" => Ok(FeatureMode::PostRelu),
            "pre-relu" | "pre" => Ok(FeatureMode::PreRelu),
            _ => Err(VisionError::UnknownFeatureMode(s.to_string())),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct ResNetSpec {
    pub bottleneck: bool,
    pub blocks: [usize; 4],
}

/// One residual block of a ResNet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockSpec {
    pub layer: usize,
    pub index: usize,
    pub inplanes: usize,
    pub planes: usize,
    pub out: usize,
    pub stride: usize,
    pub downsample: bool,
}

impl ResNetSpec {
    pub fn expansion(&self) -> usize {
        if self.bottleneck {
            4
        } else {
            1
        }
    }

    pub fn blocks(&self) -> Vec<BlockSpec> {
        let mut inplanes = 64;
        let mut out = Vec::new();
        for (layer, &n) in self.blocks.iter().enumerate() {
            let planes = 64 << layer;
            let width_out = planes * self.expansion();
            for index in 0..n {
                let stride = if index == 0 && layer > 0 { 2 } else { 1 };
                out.push(BlockSpec {
                    layer,
                    index,
                    inplanes,
                    planes,
                    out: width_out,
                    stride,
                    downsample: index == 0 && (stride != 1 || inplanes != width_out),
                });
                inplanes = width_out;
            }
        }
        out
    }
}

pub(crate) const LITE0_STEM: usize = 32;
pub(crate) const LITE0_HEAD: usize = 1280;

/// One MBConv block of EfficientNet-Lite0.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MbSpec {
    pub kernel: usize,
    pub stride: usize,
    pub expand: usize,
    pub cin: usize,
    pub cout: usize,
}

/// EfficientNet-B0's block string with the Lite changes (no squeeze-excite): repeats, kernel,
/// stride, expansion, in, out. Lite0 scales neither width nor depth.
pub(crate) fn lite0_blocks() -> Vec<MbSpec> {
    const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
        (1, 3, 1, 1, 32, 16),
        (2, 3, 2, 6, 16, 24),
        (2, 5, 2, 6, 24, 40),
        (3, 3, 2, 6, 40, 80),
        (3, 5, 1, 6, 80, 112),
        (4, 5, 2, 6, 112, 192),
        (1, 3, 1, 6, 192, 320),
    ];
    let mut out = Vec::new();
    for (repeats, kernel, stride, expand, cin, cout) in STAGES {
        for i in 0..repeats {
            out.push(MbSpec {
                kernel,
                stride: if i == 0 { stride } else { 1 },
                expand,
                cin: if i == 0 { cin } else { cout },
                cout,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in VisionArch::ALL {
            assert_eq!(a.name().parse::<VisionArch>().unwrap(), a);
        }
        assert_eq!("ResNet-50".parse::<VisionArch>().unwrap(), VisionArch::ResNet50);
        assert!("resnet51".parse::<VisionArch>().is_err());
        assert_eq!("pre-relu".parse::<FeatureMode>().unwrap(), FeatureMode::PreRelu);
    }

    #[test]
    fn parameter_counts_match_torchvision() {
        // torchvision: resnet18 11,689,512; resnet50 25,557,032; resnet152 60,192,808 parameters
        // (running statistics excluded); efficientnet-lite0 4,652,008 (d-li14's table).
        let params = |a: VisionArch| -> usize {
            a.expected_tensors(1000)
                .iter()
                .filter(|(n, _)| !n.ends_with("running_mean") && !n.ends_with("running_var"))
                .map(|(_, s)| s.iter().product::<usize>())
                .sum()
        };
        assert_eq!(params(VisionArch::ResNet18), 11_689_512);
        assert_eq!(params(VisionArch::ResNet34), 21_797_672);
        assert_eq!(params(VisionArch::ResNet50), 25_557_032);
        assert_eq!(params(VisionArch::ResNet101), 44_549_160);
        assert_eq!(params(VisionArch::ResNet152), 60_192_808);
        assert_eq!(params(VisionArch::EfficientNetLite0), 4_652_008);
    }
}
