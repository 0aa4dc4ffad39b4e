//! Building blocks. Inference only: each convolution carries its batch norm folded in
//! (`w' = w·γ/√(σ²+ε)`, `b' = β − μ·γ/√(σ²+ε)`, computed in f64), which saves one pass over
//! every activation map and gives the same numbers as conv→BN in eval mode to f32 rounding.

use burn::module::{Module, Param};
use burn::tensor::module::conv2d;
use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::s;
use burn::tensor::{Device, Tensor, TensorData};

use crate::error::Result;
use crate::state_dict::StateDict;

/// How a convolution pads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// The same number of zeros on every side (PyTorch `padding=p`).
    Symmetric(usize),
    /// TensorFlow "SAME": output size `ceil(in / stride)`, the extra zero (if any) at the
    /// bottom/right, computed from the input it is given (efficientnet_pytorch's dynamic padding,
    /// which equals its static padding at the model's image size).
    TfSame,
}

/// A convolution with its batch norm folded in.
#[derive(Module, Debug)]
pub struct ConvBn {
    pub weight: Param<Tensor<4>>,
    pub bias: Param<Tensor<1>>,
    pub stride: usize,
    pub groups: usize,
    /// Symmetric padding; ignored when `tf_same` is set.
    pub padding: usize,
    pub tf_same: bool,
}

/// Weights of a convolution followed by a batch norm, read from a state dict.
pub(crate) struct ConvBnWeights {
    pub weight: Vec<f32>,
    pub shape: [usize; 4],
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
    pub eps: f64,
}

impl ConvBnWeights {
    pub fn read(sd: &StateDict, conv: &str, bn: &str, eps: f64) -> Result<Self> {
        let weight = sd.get(&format!("{conv}.weight"))?;
        let out = sd.get(&format!("{bn}.weight"))?.len();
        let per_out = weight.len() / out;
        let shape = sd.shape(&format!("{conv}.weight"));
        debug_assert_eq!(per_out * out, weight.len());
        Ok(ConvBnWeights {
            weight,
            shape: [shape[0], shape[1], shape[2], shape[3]],
            gamma: sd.get(&format!("{bn}.weight"))?,
            beta: sd.get(&format!("{bn}.bias"))?,
            mean: sd.get(&format!("{bn}.running_mean"))?,
            var: sd.get(&format!("{bn}.running_var"))?,
            eps,
        })
    }

    /// Folded weight and bias.
    pub fn fold(self) -> (Vec<f32>, [usize; 4], Vec<f32>) {
        let out = self.shape[0];
        let per_out = self.weight.len() / out;
        let mut w = self.weight;
        let mut b = vec![0f32; out];
        for o in 0..out {
            let scale = self.gamma[o] as f64 / (self.var[o] as f64 + self.eps).sqrt();
            for v in &mut w[o * per_out..(o + 1) * per_out] {
                *v = (*v as f64 * scale) as f32;
            }
            b[o] = (self.beta[o] as f64 - self.mean[o] as f64 * scale) as f32;
        }
        (w, self.shape, b)
    }
}

/// Stride, padding and grouping of a convolution, and its batch norm's epsilon.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvSpec {
    pub stride: usize,
    pub padding: Padding,
    pub groups: usize,
    pub eps: f64,
}

impl ConvBn {
    pub(crate) fn load(
        sd: &StateDict,
        conv: &str,
        bn: &str,
        spec: ConvSpec,
        device: &Device,
    ) -> Result<Self> {
        let ConvSpec {
            stride,
            padding,
            groups,
            eps,
        } = spec;
        let (w, shape, b) = ConvBnWeights::read(sd, conv, bn, eps)?.fold();
        Ok(ConvBn {
            weight: Param::from_tensor(Tensor::from_data(TensorData::new(w, shape), device)),
            bias: Param::from_tensor(Tensor::from_data(TensorData::new(b, [shape[0]]), device)),
            stride,
            groups,
            padding: match padding {
                Padding::Symmetric(p) => p,
                Padding::TfSame => 0,
            },
            tf_same: padding == Padding::TfSame,
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let weight = self.weight.val();
        let [_, _, kh, kw] = weight.dims();
        let (x, pad) = if self.tf_same {
            let [_, _, h, w] = x.dims();
            let (pt, pb) = tf_same_pad(h, kh, self.stride);
            let (pl, pr) = tf_same_pad(w, kw, self.stride);
            if pt == pb && pl == pr {
                (x, [pt, pl])
            } else {
                (x.pad([(pt, pb), (pl, pr)], PadMode::Constant(0.0)), [0, 0])
            }
        } else {
            (x, [self.padding, self.padding])
        };
        if self.groups == 1 && matmul_convs(&x.device()) {
            return self.forward_matmul(x, weight, pad);
        }
        let options = ConvOptions::new([self.stride, self.stride], pad, [1, 1], self.groups);
        conv2d(x, weight, Some(self.bias.val()), options)
    }

    /// A convolution as one batched matmul over shifted (and, for stride > 1, subsampled)
    /// copies of the input (im2col from tensor ops): for backends whose matmul is much faster
    /// than their convolution.
    fn forward_matmul(&self, x: Tensor<4>, weight: Tensor<4>, pad: [usize; 2]) -> Tensor<4> {
        let [o, c, kh, kw] = weight.dims();
        let st = self.stride;
        let x = if pad == [0, 0] {
            x
        } else {
            x.pad([(pad[0], pad[0]), (pad[1], pad[1])], PadMode::Constant(0.0))
        };
        let [b, _, hp, wp] = x.dims();
        let (oh, ow) = ((hp - kh) / st + 1, (wp - kw) / st + 1);
        // rows i, i+st, .., i+(oh-1)*st of the padded input (and likewise columns)
        let window = |i: usize, j: usize, x: Tensor<4>| -> Tensor<4> {
            let (ie, je) = ((i + (oh - 1) * st + 1) as isize, (j + (ow - 1) * st + 1) as isize);
            let (i, j, st) = (i as isize, j as isize, st as isize);
            x.slice(s![.., .., i..ie;st, j..je;st])
        };
        let cols = if kh == 1 && kw == 1 {
            window(0, 0, x).reshape([b, c, oh * ow])
        } else {
            let mut patches = Vec::with_capacity(kh * kw);
            for i in 0..kh {
                for j in 0..kw {
                    patches.push(window(i, j, x.clone()));
                }
            }
            Tensor::cat(patches, 1).reshape([b, kh * kw * c, oh * ow])
        };
        // weight columns in the patches' order: (kernel row, kernel column, channel)
        let w = weight.permute([0, 2, 3, 1]).reshape([1, o, kh * kw * c]);
        let out = w.matmul(cols) + self.bias.val().reshape([1, o, 1]);
        out.reshape([b, o, oh, ow])
    }
}

/// Whether convolutions on `device` run faster as matmuls: ndarray's convolution is a direct
/// loop, 4-6x slower than its matmul here; flex and the GPU backends have real convolutions.
fn matmul_convs(device: &Device) -> bool {
    #[cfg(feature = "ndarray")]
    {
        #[allow(deprecated)]
        let ndarray = Device::ndarray();
        if *device == ndarray {
            return true;
        }
    }
    let _ = device;
    false
}

/// TensorFlow "SAME" padding `(before, after)` of one spatial dimension.
pub fn tf_same_pad(input: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = input.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(input);
    (total / 2, total - total / 2)
}

/// A fully connected layer kept as `[D, K]` so the forward pass is one matmul.
#[derive(Module, Debug)]
pub struct Dense {
    pub weight_t: Param<Tensor<2>>,
    pub bias: Param<Tensor<1>>,
}

impl Dense {
    /// From a PyTorch `[K, D]` weight.
    pub(crate) fn load(sd: &StateDict, name: &str, device: &Device) -> Result<Self> {
        let w = sd.get(&format!("{name}.weight"))?;
        let shape = sd.shape(&format!("{name}.weight"));
        let (k, d) = (shape[0], shape[1]);
        let weight = Tensor::<2>::from_data(TensorData::new(w, [k, d]), device);
        Ok(Dense {
            weight_t: Param::from_tensor(weight.transpose()),
            bias: Param::from_tensor(Tensor::from_data(
                TensorData::new(sd.get(&format!("{name}.bias"))?, [k]),
                device,
            )),
        })
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.weight_t.val()) + self.bias.val().unsqueeze::<2>()
    }

    /// `(weight [K, D] row-major, bias [K])` on the host.
    pub fn to_host(&self) -> (Vec<f32>, Vec<f32>) {
        let w = self.weight_t.val().transpose().into_data().convert::<f32>();
        let b = self.bias.val().into_data().convert::<f32>();
        (
            w.try_into_vec::<f32>().expect("f32"),
            b.try_into_vec::<f32>().expect("f32"),
        )
    }
}

/// Global average pooling `[B, C, H, W] -> [B, C]`.
pub fn global_avg_pool(x: Tensor<4>) -> Tensor<2> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h * w]).mean_dim(2).reshape([b, c])
}

#[cfg(test)]
mod tests {
    use super::tf_same_pad;

    #[test]
    fn tf_same_padding_matches_efficientnet_pytorch() {
        assert_eq!(tf_same_pad(224, 3, 2), (0, 1));
        assert_eq!(tf_same_pad(112, 3, 1), (1, 1));
        assert_eq!(tf_same_pad(56, 5, 2), (1, 2));
        assert_eq!(tf_same_pad(14, 5, 1), (2, 2));
        assert_eq!(tf_same_pad(7, 1, 1), (0, 0));
        assert_eq!(tf_same_pad(225, 3, 2), (1, 1));
    }
}
