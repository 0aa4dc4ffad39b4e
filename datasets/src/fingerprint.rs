//! Dataset fingerprints for the feature-cache manifest.
//!
//! The fingerprint is the SHA-256 (lower-case hex) of what was *loaded*, split by split, so it changes
//! exactly when the cached features would: the examples and their order, the labels, the class names,
//! and which examples went to which split (so the seed, `val_frac`, thresholds, class subset and
//! balancing all count, without being listed). Where the data lives does not count.
//!
//! - text: every string's bytes (length-prefixed);
//! - decoded pixels (CIFAR, IDX): the dimensions and every byte;
//! - image trees: each image's path relative to the dataset root (`/`-separated) and its size in
//!   bytes — not its content, which would mean reading all of ImageNet, and not its modification
//!   time, which copying changes. Replacing an image by another of the very same size and name is
//!   therefore not detected.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::DatasetError;
use crate::types::{DatasetSplits, Examples, LabeledSet, Labels};

const VERSION: &[u8] = b"datasets-fingerprint-v1";

fn put_len(h: &mut Sha256, n: usize) {
    h.update((n as u64).to_le_bytes());
}

fn put_str(h: &mut Sha256, s: &str) {
    put_len(h, s.len());
    h.update(s.as_bytes());
}

fn relative(root: &Path, p: &Path) -> String {
    let rel = p.strip_prefix(root).unwrap_or(p);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn hash_set(h: &mut Sha256, root: &Path, set: &LabeledSet) -> Result<(), DatasetError> {
    put_len(h, set.class_names.len());
    for c in &set.class_names {
        put_str(h, c);
    }
    match &set.examples {
        Examples::Text(t) => {
            h.update(b"text");
            put_len(h, t.len());
            for s in t {
                put_str(h, s);
            }
        }
        Examples::Images(paths) => {
            h.update(b"images");
            put_len(h, paths.len());
            for p in paths {
                let size = std::fs::metadata(p).map_err(|e| DatasetError::io(p, e))?.len();
                put_str(h, &relative(root, p));
                h.update(size.to_le_bytes());
            }
        }
        Examples::Pixels {
            data,
            height,
            width,
            channels,
        } => {
            h.update(b"pixels");
            for d in [*height, *width, *channels] {
                put_len(h, d);
            }
            put_len(h, data.len());
            h.update(data);
        }
    }
    match &set.labels {
        Labels::Class(c) => {
            h.update(b"class");
            put_len(h, c.len());
            for &y in c {
                h.update(y.to_le_bytes());
            }
        }
        Labels::Multi(m) => {
            h.update(b"multi");
            put_len(h, m.len());
            for row in m {
                put_len(h, row.len());
                for &v in row {
                    h.update(v.to_bits().to_le_bytes());
                }
            }
        }
    }
    Ok(())
}

/// The fingerprint of loaded splits (see the module docs). Image trees stat each file once.
pub fn fingerprint(splits: &DatasetSplits) -> Result<String, DatasetError> {
    let mut h = Sha256::new();
    h.update(VERSION);
    put_str(&mut h, splits.kind.name());
    for (name, set) in splits.splits() {
        put_str(&mut h, name);
        hash_set(&mut h, &splits.root, set)?;
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

impl DatasetSplits {
    /// See [`fingerprint`].
    pub fn fingerprint(&self) -> Result<String, DatasetError> {
        fingerprint(self)
    }
}
