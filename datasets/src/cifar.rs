//! CIFAR-10, binary version (`cifar-10-batches-bin/`): `data_batch_1.bin`..`data_batch_5.bin`,
//! `test_batch.bin`, `batches.meta.txt`. Each record is 1 label byte and 3072 pixel bytes: the 1024
//! red values of the 32×32 image row by row, then green, then blue (CHW). Returned as HWC.

use std::path::{Path, PathBuf};

use crate::error::DatasetError;
use crate::text::{read_bytes, read_lines};
use crate::types::{Examples, LabeledSet, Labels};

/// CIFAR-10's classes, in label order (what `batches.meta.txt` lists).
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

const SIDE: usize = 32;
const PLANE: usize = SIDE * SIDE;
const RECORD: usize = 1 + 3 * PLANE;

/// The folder with the batch files: `path` itself, or `path/cifar-10-batches-bin` (the archive's
/// top folder) when the batches are there.
pub fn cifar10_dir(path: &Path) -> PathBuf {
    let inner = path.join("cifar-10-batches-bin");
    if !path.join("data_batch_1.bin").is_file() && inner.is_dir() {
        inner
    } else {
        path.to_path_buf()
    }
}

/// Read one batch file into HWC pixels (`n × 32 × 32 × 3`) and labels (each `< num_classes`).
pub fn read_cifar10_batch(path: &Path, num_classes: u32) -> Result<(Vec<u8>, Vec<u32>), DatasetError> {
    let bytes = read_bytes(path)?;
    let n = bytes.len() / RECORD;
    if bytes.is_empty() || bytes.len() % RECORD != 0 {
        return Err(DatasetError::Truncated {
            path: path.to_path_buf(),
            what: format!("record {n} (records are {RECORD} bytes: 1 label + 3072 pixels)"),
            expected: ((n + 1) * RECORD) as u64,
            found: bytes.len() as u64,
        });
    }
    let mut pixels = vec![0u8; n * 3 * PLANE];
    let mut labels = Vec::with_capacity(n);
    for (r, rec) in bytes.chunks_exact(RECORD).enumerate() {
        let label = rec[0] as u32;
        if label >= num_classes {
            return Err(DatasetError::LabelOutOfRange {
                path: path.to_path_buf(),
                record: r as u64,
                label: label as i64,
                classes: num_classes,
            });
        }
        labels.push(label);
        let out = &mut pixels[r * 3 * PLANE..(r + 1) * 3 * PLANE];
        for c in 0..3 {
            let plane = &rec[1 + c * PLANE..1 + (c + 1) * PLANE];
            for (p, &v) in plane.iter().enumerate() {
                out[p * 3 + c] = v;
            }
        }
    }
    Ok((pixels, labels))
}

/// Class names from `batches.meta.txt` (one per non-empty line; must be exactly 10).
pub fn read_cifar10_meta(path: &Path) -> Result<Vec<String>, DatasetError> {
    let lines = read_lines(path)?;
    let names: Vec<String> = lines
        .iter()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    if names.len() != CIFAR10_CLASSES.len() {
        return Err(DatasetError::malformed(
            path,
            lines.len() as u64,
            format!("{} class names, expected {}", names.len(), CIFAR10_CLASSES.len()),
        ));
    }
    Ok(names)
}

fn to_set(pixels: Vec<u8>, labels: Vec<u32>, class_names: &[String]) -> LabeledSet {
    LabeledSet {
        examples: Examples::Pixels {
            data: pixels,
            height: SIDE,
            width: SIDE,
            channels: 3,
        },
        labels: Labels::Class(labels),
        class_names: class_names.to_vec(),
    }
}

/// The training batches (`data_batch_<k>.bin` present, in order of k) concatenated, and the test
/// batch if present, with the class names (from `batches.meta.txt`, else [`CIFAR10_CLASSES`]).
pub struct Cifar10 {
    pub train: LabeledSet,
    pub test: Option<LabeledSet>,
    pub train_files: Vec<PathBuf>,
    /// Whether `batches.meta.txt` was missing (the standard names were used).
    pub meta_missing: bool,
}

/// Load a CIFAR-10 binary folder (see [`cifar10_dir`]).
pub fn load_cifar10(path: &Path) -> Result<Cifar10, DatasetError> {
    let dir = cifar10_dir(path);
    let meta = dir.join("batches.meta.txt");
    let (class_names, meta_missing) = if meta.is_file() {
        (read_cifar10_meta(&meta)?, false)
    } else {
        (CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(), true)
    };
    let k = class_names.len() as u32;
    let mut train_files: Vec<(u32, PathBuf)> = Vec::new();
    let rd = std::fs::read_dir(&dir).map_err(|e| DatasetError::io(&dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| DatasetError::io(&dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(num) = name
            .strip_prefix("data_batch_")
            .and_then(|r| r.strip_suffix(".bin"))
        {
            if let Ok(num) = num.parse::<u32>() {
                train_files.push((num, entry.path()));
            }
        }
    }
    train_files.sort();
    if train_files.is_empty() {
        return Err(DatasetError::MissingFile {
            path: dir.join("data_batch_1.bin"),
            what: "CIFAR-10 training batch (data_batch_1.bin .. data_batch_5.bin)".to_string(),
        });
    }
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (_, f) in &train_files {
        let (p, l) = read_cifar10_batch(f, k)?;
        pixels.extend(p);
        labels.extend(l);
    }
    let train = to_set(pixels, labels, &class_names);
    let test_path = dir.join("test_batch.bin");
    let test = if test_path.is_file() {
        let (p, l) = read_cifar10_batch(&test_path, k)?;
        Some(to_set(p, l, &class_names))
    } else {
        None
    };
    Ok(Cifar10 {
        train,
        test,
        train_files: train_files.into_iter().map(|(_, p)| p).collect(),
        meta_missing,
    })
}
