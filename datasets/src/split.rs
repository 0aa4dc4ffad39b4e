//! Seeded splits and balancing, identical on every platform.
//!
//! All randomness is a ChaCha8 stream seeded with `ChaCha8Rng::seed_from_u64(seed)` and shuffled by
//! a hand-written Fisher–Yates over `u64` ranges, so a seed gives the same indices on 32- and 64-bit
//! targets and across `rand` patch releases. Each purpose reads its own ChaCha stream (`set_stream`):
//! 0 for [`split_indices`], 1 for [`train_val_split`], 2 for [`balance`], so the same `--random-seed`
//! drives them all without correlating them. Every returned index list is sorted ascending: a split
//! keeps the file's order of its examples.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::DatasetError;
use crate::types::{LabeledSet, Labels};

const STREAM_SPLIT: u64 = 0;
const STREAM_VAL: u64 = 1;
const STREAM_BALANCE: u64 = 2;

fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

/// A seeded permutation of `0..n` (Fisher–Yates).
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    shuffle(&mut idx, &mut rng(seed, STREAM_SPLIT));
    idx
}

fn shuffle<T>(v: &mut [T], rng: &mut ChaCha8Rng) {
    for i in (1..v.len()).rev() {
        let j = rng.random_range(0..=i as u64) as usize;
        v.swap(i, j);
    }
}

/// Indices of the three splits, each sorted ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitIndices {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}

fn check_fraction(name: &str, f: f64) -> Result<(), DatasetError> {
    if !(f.is_finite() && (0.0..=1.0).contains(&f)) {
        return Err(DatasetError::InvalidOption(format!(
            "{name} = {f} is not in [0, 1]"
        )));
    }
    Ok(())
}

/// Split `0..n` into train/val/test by `fractions` (each in [0, 1], summing to 1 within 1e-6).
/// Sizes: `round(n·f_train)` and `round(n·f_val)`, the test split takes the rest.
pub fn split_indices(n: usize, fractions: (f64, f64, f64), seed: u64) -> Result<SplitIndices, DatasetError> {
    let (a, b, c) = fractions;
    check_fraction("train fraction", a)?;
    check_fraction("val fraction", b)?;
    check_fraction("test fraction", c)?;
    if ((a + b + c) - 1.0).abs() > 1e-6 {
        return Err(DatasetError::InvalidOption(format!(
            "split fractions ({a}, {b}, {c}) sum to {}, not 1",
            a + b + c
        )));
    }
    let n_train = ((n as f64) * a).round() as usize;
    let n_train = n_train.min(n);
    let n_val = (((n as f64) * b).round() as usize).min(n - n_train);
    let perm = permutation(n, seed);
    let mut train = perm[..n_train].to_vec();
    let mut val = perm[n_train..n_train + n_val].to_vec();
    let mut test = perm[n_train + n_val..].to_vec();
    train.sort_unstable();
    val.sort_unstable();
    test.sort_unstable();
    Ok(SplitIndices { train, val, test })
}

/// Hold out `round(n·val_frac)` of `0..n` as validation (`val_frac` in [0, 1)).
/// Returns `(train, val)`, each sorted ascending; `val` is empty when `val_frac` is 0.
pub fn train_val_split(n: usize, val_frac: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>), DatasetError> {
    if !(val_frac.is_finite() && (0.0..1.0).contains(&val_frac)) {
        return Err(DatasetError::InvalidOption(format!(
            "val_frac = {val_frac} is not in [0, 1)"
        )));
    }
    let n_val = (((n as f64) * val_frac).round() as usize).min(n);
    let mut perm: Vec<usize> = (0..n).collect();
    shuffle(&mut perm, &mut rng(seed, STREAM_VAL));
    let mut val = perm[..n_val].to_vec();
    let mut train = perm[n_val..].to_vec();
    train.sort_unstable();
    val.sort_unstable();
    Ok((train, val))
}

/// What [`balance`] kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balanced {
    /// Kept example indices, sorted ascending.
    pub indices: Vec<usize>,
    pub positives: usize,
    pub negatives_available: usize,
    pub negatives_kept: usize,
}

impl Balanced {
    /// How many negatives short of a 50/50 set the result is (0 when balanced).
    pub fn short_by(&self) -> usize {
        self.positives.saturating_sub(self.negatives_kept)
    }
}

/// Balance a binary task (labels 0 = negative, 1 = positive): keep every positive and
/// `min(#positives, #negatives)` negatives drawn at random (seeded). When there are fewer negatives
/// than positives, every example is kept, nothing is duplicated or dropped, and the result stays
/// positive-heavy ([`Balanced::short_by`] says by how much). Labels other than 0/1 are an error.
pub fn balance(labels: &[u32], seed: u64) -> Result<Balanced, DatasetError> {
    let mut pos = Vec::new();
    let mut neg = Vec::new();
    for (i, &y) in labels.iter().enumerate() {
        match y {
            0 => neg.push(i),
            1 => pos.push(i),
            other => {
                return Err(DatasetError::InvalidOption(format!(
                    "balance needs binary labels 0/1, found label {other} at example {i}"
                )))
            }
        }
    }
    let negatives_available = neg.len();
    shuffle(&mut neg, &mut rng(seed, STREAM_BALANCE));
    neg.truncate(pos.len());
    let negatives_kept = neg.len();
    let positives = pos.len();
    let mut indices = pos;
    indices.extend(neg);
    indices.sort_unstable();
    Ok(Balanced {
        indices,
        positives,
        negatives_available,
        negatives_kept,
    })
}

/// Check that a split can train or score a classifier: it is non-empty and, for class labels,
/// holds at least two distinct classes; for multilabel targets, every label column has at least
/// one positive and one negative. `split` names the split in the error ("train", "val"...).
pub fn check_split_has_classes(split: &str, set: &LabeledSet) -> Result<(), DatasetError> {
    let err = |message: String| DatasetError::SingleClass {
        split: split.to_string(),
        message,
    };
    if set.is_empty() {
        return Err(err("split is empty".to_string()));
    }
    let name = |k: usize| {
        set.class_names
            .get(k)
            .cloned()
            .unwrap_or_else(|| format!("class {k}"))
    };
    match &set.labels {
        Labels::Class(c) => {
            let first = c[0];
            if c.iter().all(|&y| y == first) {
                return Err(err(format!(
                    "all {} examples are of one class ({:?}); need at least two classes",
                    c.len(),
                    name(first as usize)
                )));
            }
        }
        Labels::Multi(m) => {
            let k = m[0].len();
            for j in 0..k {
                let pos = m
                    .iter()
                    .filter(|row| row.get(j).copied().unwrap_or(0.0) > 0.5)
                    .count();
                if pos == 0 || pos == m.len() {
                    return Err(err(format!(
                        "label column {:?} is {} in all {} examples; need both values",
                        name(j),
                        if pos == 0 { 0 } else { 1 },
                        m.len()
                    )));
                }
            }
        }
    }
    Ok(())
}
