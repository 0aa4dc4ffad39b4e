//! MNIST and Fashion-MNIST in the IDX format, gzipped or raw.
//!
//! Images: big-endian magic `0x00000803` (unsigned bytes, 3 dimensions), count, rows, cols, then
//! `count·rows·cols` pixels. Labels: magic `0x00000801`, count, then `count` bytes. A file is
//! gunzipped when it starts with the gzip magic, whatever its name. The magic number, the exact file
//! size, the image/label counts and every label (< number of classes) are checked.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::DatasetError;
use crate::text::read_bytes;
use crate::types::{Examples, LabeledSet, Labels};

/// MNIST's classes: the digits.
pub const MNIST_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// Fashion-MNIST's classes, in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

/// Decoded IDX images: `count` images of `rows × cols` bytes, row-major, one after another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<u8>,
}

/// The file's bytes, gunzipped when it starts with the gzip magic `1f 8b`.
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DatasetError> {
    let raw = read_bytes(path)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 2);
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| {
                DatasetError::io(
                    path,
                    std::io::Error::new(e.kind(), format!("corrupt or truncated gzip: {e}")),
                )
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn check_header(
    path: &Path,
    bytes: &[u8],
    header_len: usize,
    magic: u32,
    what: &'static str,
) -> Result<(), DatasetError> {
    if bytes.len() < 4 {
        return Err(DatasetError::Truncated {
            path: path.to_path_buf(),
            what: format!("{what} header"),
            expected: header_len as u64,
            found: bytes.len() as u64,
        });
    }
    let found = be_u32(bytes, 0);
    if found != magic {
        return Err(DatasetError::BadMagic {
            path: path.to_path_buf(),
            found,
            expected: magic,
            what,
        });
    }
    if bytes.len() < header_len {
        return Err(DatasetError::Truncated {
            path: path.to_path_buf(),
            what: format!("{what} header"),
            expected: header_len as u64,
            found: bytes.len() as u64,
        });
    }
    Ok(())
}

fn check_size(path: &Path, what: String, expected: u64, found: u64) -> Result<(), DatasetError> {
    if found < expected {
        Err(DatasetError::Truncated {
            path: path.to_path_buf(),
            what,
            expected,
            found,
        })
    } else if found > expected {
        Err(DatasetError::WrongSize {
            path: path.to_path_buf(),
            what,
            expected,
            found,
        })
    } else {
        Ok(())
    }
}

/// Read an IDX image file (`*-images-idx3-ubyte[.gz]`).
pub fn read_idx_images(path: &Path) -> Result<IdxImages, DatasetError> {
    let bytes = read_maybe_gz(path)?;
    check_header(path, &bytes, 16, IDX_IMAGES_MAGIC, "IDX images (ubyte, 3 dims)")?;
    let count = be_u32(&bytes, 4) as u64;
    let rows = be_u32(&bytes, 8) as u64;
    let cols = be_u32(&bytes, 12) as u64;
    let expected = count
        .checked_mul(rows)
        .and_then(|v| v.checked_mul(cols))
        .and_then(|v| v.checked_add(16))
        .unwrap_or(u64::MAX);
    check_size(
        path,
        format!("header says {count} images of {rows}x{cols}"),
        expected,
        bytes.len() as u64,
    )?;
    let mut data = bytes;
    data.drain(..16);
    Ok(IdxImages {
        count: count as usize,
        rows: rows as usize,
        cols: cols as usize,
        data,
    })
}

/// Read an IDX label file (`*-labels-idx1-ubyte[.gz]`); every label must be `< num_classes`.
pub fn read_idx_labels(path: &Path, num_classes: u32) -> Result<Vec<u32>, DatasetError> {
    let bytes = read_maybe_gz(path)?;
    check_header(path, &bytes, 8, IDX_LABELS_MAGIC, "IDX labels (ubyte, 1 dim)")?;
    let count = be_u32(&bytes, 4) as u64;
    check_size(
        path,
        format!("header says {count} labels"),
        count + 8,
        bytes.len() as u64,
    )?;
    let mut labels = Vec::with_capacity(count as usize);
    for (record, &b) in bytes[8..].iter().enumerate() {
        if b as u32 >= num_classes {
            return Err(DatasetError::LabelOutOfRange {
                path: path.to_path_buf(),
                record: record as u64,
                label: b as i64,
                classes: num_classes,
            });
        }
        labels.push(b as u32);
    }
    Ok(labels)
}

/// The IDX file `stem` in `dir`: `stem`, `stem.gz`, or the dotted spelling some mirrors use
/// (`train-images.idx3-ubyte`), raw or `.gz`. `None` when none is there.
pub fn find_idx_file(dir: &Path, stem: &str) -> Option<PathBuf> {
    let dotted = stem.replacen("-idx", ".idx", 1);
    [
        stem.to_string(),
        format!("{stem}.gz"),
        dotted.clone(),
        format!("{dotted}.gz"),
    ]
    .into_iter()
    .map(|n| dir.join(n))
    .find(|p| p.is_file())
}

/// Load one IDX image/label pair, `prefix` being `train` or `t10k`.
pub fn load_idx_pair(dir: &Path, prefix: &str, class_names: &[&str]) -> Result<LabeledSet, DatasetError> {
    let stem_i = format!("{prefix}-images-idx3-ubyte");
    let stem_l = format!("{prefix}-labels-idx1-ubyte");
    let img_path = find_idx_file(dir, &stem_i).ok_or_else(|| DatasetError::MissingFile {
        path: dir.join(format!("{stem_i}[.gz]")),
        what: "IDX image file".to_string(),
    })?;
    let lab_path = find_idx_file(dir, &stem_l).ok_or_else(|| DatasetError::MissingFile {
        path: dir.join(format!("{stem_l}[.gz]")),
        what: "IDX label file".to_string(),
    })?;
    let images = read_idx_images(&img_path)?;
    let labels = read_idx_labels(&lab_path, class_names.len() as u32)?;
    if labels.len() != images.count {
        return Err(DatasetError::CountMismatch {
            path: lab_path,
            images: img_path,
            expected: images.count as u64,
            found: labels.len() as u64,
        });
    }
    Ok(LabeledSet {
        examples: Examples::Pixels {
            data: images.data,
            height: images.rows,
            width: images.cols,
            channels: 1,
        },
        labels: Labels::Class(labels),
        class_names: class_names.iter().map(|s| s.to_string()).collect(),
    })
}

/// Whether `dir` holds the `prefix` pair (images and labels).
pub(crate) fn has_pair(dir: &Path, prefix: &str) -> bool {
    find_idx_file(dir, &format!("{prefix}-images-idx3-ubyte")).is_some()
        && find_idx_file(dir, &format!("{prefix}-labels-idx1-ubyte")).is_some()
}
