//! Deterministic "random" weights and inputs, shared bit for bit with the fixture script
//! (`fixtures/make_fixtures.py`, functions `uniform` / `synthetic_value` / `synthetic_input`):
//! every value is a 24-bit fraction from a counter-based hash of (seed, tensor name, element
//! index), scaled in f64 and rounded once to f32. Tests rebuild ResNet weights here instead of
//! committing 100 MB of them, then load them through the real loader.

use std::path::Path;

use crate::arch::VisionArch;
use crate::error::{Result, VisionError};

fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `n` values in `[-1, 1)` for `(seed, name)`.
pub fn uniform(seed: u64, name: &str, n: usize) -> Vec<f64> {
    let key = fnv1a64(format!("{seed}:{name}").as_bytes());
    (0..n as u64)
        .map(|i| (splitmix64(key.wrapping_add(i)) >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0)
        .collect()
}

/// The synthetic value of the state-dict tensor `name` of `shape`: batch-norm running variance in
/// [0.5, 1.5], running mean and biases in ±0.1, batch-norm scale in [0.35, 0.85], convolution and
/// linear weights uniform with variance 2 / fan-in.
pub fn tensor(seed: u64, name: &str, shape: &[usize]) -> Vec<f32> {
    let n = shape.iter().product();
    let u = uniform(seed, name, n);
    let map: Box<dyn Fn(f64) -> f64> = if name.ends_with("running_var") {
        Box::new(|u| 1.0 + 0.5 * u)
    } else if name.ends_with("running_mean") {
        Box::new(|u| 0.1 * u)
    } else if shape.len() == 1 && name.ends_with("weight") {
        Box::new(|u| 0.6 + 0.25 * u)
    } else if name.ends_with("bias") {
        Box::new(|u| 0.1 * u)
    } else {
        let fan_in: usize = shape[1..].iter().product();
        let scale = (6.0 / fan_in as f64).sqrt();
        Box::new(move |u| scale * u)
    };
    u.into_iter().map(|u| map(u) as f32).collect()
}

/// A synthetic input batch of `shape` with values in `[-2, 2)`.
pub fn input(seed: u64, shape: &[usize]) -> Vec<f32> {
    uniform(seed, "input", shape.iter().product())
        .into_iter()
        .map(|u| (2.0 * u) as f32)
        .collect()
}

/// Every float tensor of `arch` (torchvision / efficientnet_pytorch names) with its synthetic
/// value.
pub fn state_dict(arch: VisionArch, seed: u64, num_classes: usize) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    arch.expected_tensors(num_classes)
        .into_iter()
        .map(|(name, shape)| {
            let v = tensor(seed, &name, &shape);
            (name, shape, v)
        })
        .collect()
}

struct Raw {
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl safetensors::View for &Raw {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Write `tensors` (f32) plus, for every batch norm, the int64 `num_batches_tracked` that
/// `state_dict()` holds, as safetensors, each name prefixed with every one of `prefixes`.
pub fn write_safetensors(
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    prefixes: &[&str],
    path: &Path,
) -> Result<()> {
    let mut raw: Vec<(String, Raw)> = Vec::new();
    for prefix in prefixes {
        for (name, shape, values) in tensors {
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            raw.push((
                format!("{prefix}{name}"),
                Raw {
                    dtype: safetensors::Dtype::F32,
                    shape: shape.clone(),
                    bytes,
                },
            ));
            if let Some(bn) = name.strip_suffix(".running_var") {
                raw.push((
                    format!("{prefix}{bn}.num_batches_tracked"),
                    Raw {
                        dtype: safetensors::Dtype::I64,
                        shape: vec![],
                        bytes: 0i64.to_le_bytes().to_vec(),
                    },
                ));
            }
        }
    }
    let bytes = safetensors::serialize(raw.iter().map(|(n, r)| (n.as_str(), r)), None)
        .map_err(|e| VisionError::InvalidInput(format!("serializing safetensors: {e}")))?;
    std::fs::write(path, bytes).map_err(|source| VisionError::Io {
        path: path.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_24_bit_fractions() {
        let u = uniform(7, "conv1.weight", 1000);
        assert!(u.iter().all(|v| (-1.0..1.0).contains(v)));
        assert!(u
            .iter()
            .all(|v| ((v + 1.0) / 2.0 * (1u64 << 24) as f64).fract() == 0.0));
        let mean = u.iter().sum::<f64>() / u.len() as f64;
        assert!(mean.abs() < 0.1);
    }
}
