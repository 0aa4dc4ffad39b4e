//! The deterministic random weights of the random-weight fixtures (`fixtures/*/tensors.json`),
//! bit for bit as `fixtures/make_fixtures.py`'s `generate`: every value a splitmix64 hash of the
//! tensor's name, a seed and the element index. Tests (here and in `fit`) rebuild the 64 MB
//! checkpoints from the committed manifests instead of committing them.

use std::path::Path;

use crate::error::{BertError, Result};

/// A checkpoint entry: name, shape, values.
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// The 64-bit FNV-1a hash of `name` that seeds a tensor's values.
pub fn fnv1a64(name: &str) -> u64 {
    let mut h: u64 = 0xCBF29CE484222325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001B3);
    }
    h
}

/// `n` values `center + scale · u`, `u` uniform in [-1, 1), of the tensor `name`.
pub fn generate(name: &str, n: usize, center: f64, scale: f64, seed: u64) -> Vec<f32> {
    let h = fnv1a64(name) ^ seed;
    (1..=n as u64)
        .map(|i| {
            let mut z = h.wrapping_add(i.wrapping_mul(0x9E3779B97F4A7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
            z ^= z >> 31;
            let u = (z >> 40) as f64 / (1u64 << 24) as f64;
            (center + scale * (2.0 * u - 1.0)) as f32
        })
        .collect()
}

#[derive(serde::Deserialize)]
struct Manifest {
    seed: u64,
    tensors: Vec<TensorSpec>,
}

#[derive(serde::Deserialize)]
struct TensorSpec {
    name: String,
    shape: Vec<usize>,
    center: f64,
    scale: f64,
    /// The first values the Python generator produced: a check that the two agree.
    first: Vec<f32>,
}

/// Every tensor of a fixture's `tensors.json` (name, shape, values) in file order; an error
/// when a tensor's first values differ from the ones the Python generator wrote.
pub fn generated_tensors(manifest: &Path) -> Result<Vec<NamedTensor>> {
    let bad = |message: String| BertError::Config {
        path: manifest.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(manifest).map_err(|source| BertError::Io {
        path: manifest.to_path_buf(),
        source,
    })?;
    let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    m.tensors
        .into_iter()
        .map(|t| {
            let v = generate(&t.name, t.shape.iter().product(), t.center, t.scale, m.seed);
            if v.get(..t.first.len()) != Some(&t.first[..]) {
                return Err(bad(format!(
                    "the generator disagrees with make_fixtures.py on {}",
                    t.name
                )));
            }
            Ok((t.name, t.shape, v))
        })
        .collect()
}
