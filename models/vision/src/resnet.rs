//! ResNet-18/34/50/101/152 as torchvision builds them (v1.5: a bottleneck's stride sits on its
//! 3x3 convolution), inference only.

use burn::module::Module;
use burn::tensor::activation::relu;
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor};

use crate::arch::{BlockSpec, VisionArch};
use crate::error::Result;
use crate::layers::{global_avg_pool, ConvBn, ConvSpec, Dense, Padding};
use crate::state_dict::StateDict;
use crate::FeatureMode;

const BN_EPS: f64 = 1e-5;

fn spec(stride: usize, padding: usize) -> ConvSpec {
    ConvSpec {
        stride,
        padding: Padding::Symmetric(padding),
        groups: 1,
        eps: BN_EPS,
    }
}

/// A BasicBlock (two 3x3 convolutions) or a Bottleneck (1x1, 3x3, 1x1).
#[derive(Module, Debug)]
pub struct Block {
    pub convs: Vec<ConvBn>,
    pub downsample: Option<ConvBn>,
}

impl Block {
    fn load(sd: &StateDict, b: &BlockSpec, bottleneck: bool, device: &Device) -> Result<Self> {
        let p = format!("layer{}.{}", b.layer + 1, b.index);
        let cb = |i: usize, s: ConvSpec| {
            ConvBn::load(sd, &format!("{p}.conv{i}"), &format!("{p}.bn{i}"), s, device)
        };
        let convs = if bottleneck {
            vec![cb(1, spec(1, 0))?, cb(2, spec(b.stride, 1))?, cb(3, spec(1, 0))?]
        } else {
            vec![cb(1, spec(b.stride, 1))?, cb(2, spec(1, 1))?]
        };
        let downsample = if b.downsample {
            Some(ConvBn::load(
                sd,
                &format!("{p}.downsample.0"),
                &format!("{p}.downsample.1"),
                spec(b.stride, 0),
                device,
            )?)
        } else {
            None
        };
        Ok(Block { convs, downsample })
    }

    /// `out + identity`, before the block's final ReLU.
    pub fn forward_pre_relu(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => d.forward(x.clone()),
            None => x.clone(),
        };
        let last = self.convs.len() - 1;
        let mut out = x;
        for (i, conv) in self.convs.iter().enumerate() {
            out = conv.forward(out);
            if i < last {
                out = relu(out);
            }
        }
        out + identity
    }
}

/// A torchvision ResNet with batch norms folded into the convolutions.
#[derive(Module, Debug)]
pub struct ResNet {
    pub stem: ConvBn,
    pub blocks: Vec<Block>,
    pub fc: Dense,
}

impl ResNet {
    pub(crate) fn load(arch: VisionArch, sd: &StateDict, device: &Device) -> Result<Self> {
        let spec_r = arch.resnet_spec().expect("a ResNet");
        let stem = ConvBn::load(sd, "conv1", "bn1", spec(2, 3), device)?;
        let blocks = spec_r
            .blocks()
            .iter()
            .map(|b| Block::load(sd, b, spec_r.bottleneck, device))
            .collect::<Result<Vec<_>>>()?;
        let fc = Dense::load(sd, "fc", device)?;
        Ok(ResNet { stem, blocks, fc })
    }

    /// The last block's output before its ReLU, `[B, C, h, w]`.
    pub fn forward_pre_relu(&self, x: Tensor<4>) -> Tensor<4> {
        let x = relu(self.stem.forward(x));
        let mut x = max_pool2d(
            x,
            MaxPoolOptions::new([3, 3])
                .with_stride([2, 2])
                .with_padding([1, 1]),
        );
        let last = self.blocks.len() - 1;
        for block in &self.blocks[..last] {
            x = relu(block.forward_pre_relu(x));
        }
        self.blocks[last].forward_pre_relu(x)
    }

    pub fn features(&self, x: Tensor<4>, mode: FeatureMode) -> Tensor<2> {
        let pre = self.forward_pre_relu(x);
        match mode {
            FeatureMode::PostRelu => global_avg_pool(relu(pre)),
            FeatureMode::PreRelu => global_avg_pool(pre),
        }
    }

    pub fn features_and_logits(&self, x: Tensor<4>, mode: FeatureMode) -> (Tensor<2>, Tensor<2>) {
        let pre = self.forward_pre_relu(x);
        let post = global_avg_pool(relu(pre.clone()));
        let logits = self.fc.forward(post.clone());
        let features = match mode {
            FeatureMode::PostRelu => post,
            FeatureMode::PreRelu => global_avg_pool(pre),
        };
        (features, logits)
    }
}
