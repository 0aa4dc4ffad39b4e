//! Reading weight files: safetensors, and PyTorch `torch.save` files (zip since 1.6, the legacy
//! pickle stream before it, and the early tar layout) through `pytorch-reader`, which parses
//! pickles without running them. Before any tensor is read, [`crate::pickle_scan`] checks that
//! the pickle names only globals a state dict needs.
//!
//! A checkpoint is seen as a flat map `dotted.name -> tensor`; nested dictionaries (a training
//! checkpoint's `{"model": state_dict, "optimizer": ...}`) flatten to `model.conv1.weight`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::{Result, VisionError};
use crate::pickle_scan::{self, ScanError};

/// The container a checkpoint was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Safetensors,
    /// `torch.save` since PyTorch 1.6 (a zip archive).
    TorchZip,
    /// `torch.save` with `_use_new_zipfile_serialization=False` or before PyTorch 1.6.
    TorchLegacy,
    /// The tar layout of PyTorch < 0.1.10.
    TorchTar,
}

/// Element type of a stored tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F64,
    F16,
    BF16,
    /// Integers and booleans (e.g. `num_batches_tracked`), named as the file names them.
    Other(&'static str),
}

impl Dtype {
    pub fn is_float(self) -> bool {
        !matches!(self, Dtype::Other(_))
    }
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
            Dtype::F16 => "float16",
            Dtype::BF16 => "bfloat16",
            Dtype::Other(n) => n,
        }
    }
}

enum Data {
    Owned(Vec<f32>),
    Bytes {
        file: Arc<Vec<u8>>,
        start: usize,
        end: usize,
    },
    Torch(pytorch_reader::Tensor),
}

/// One tensor of a checkpoint, read on demand.
pub struct Entry {
    pub shape: Vec<usize>,
    pub dtype: Dtype,
    data: Data,
}

/// A weights file opened for reading.
pub struct Checkpoint {
    path: PathBuf,
    format: Format,
    sha256: String,
    entries: BTreeMap<String, Entry>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("tensors", &self.entries.len())
            .finish()
    }
}

const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

impl Checkpoint {
    /// Open `path`, detecting the format from its bytes (not its extension).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|source| VisionError::Io {
            path: path.clone(),
            source,
        })?;
        let sha256 = hex(&Sha256::digest(&bytes));
        let not_ckpt = |why: &str| VisionError::NotACheckpoint {
            path: path.clone(),
            why: why.to_string(),
        };
        if bytes.len() < 8 {
            return Err(not_ckpt("shorter than any header"));
        }
        let (format, entries) = if bytes.starts_with(ZIP_MAGIC) {
            scan_zip_pickle(&path)?;
            (Format::TorchZip, read_torch(&path)?)
        } else if is_tar(&bytes) {
            scan_tar_pickles(&path, &bytes)?;
            (Format::TorchTar, read_torch(&path)?)
        } else if let Some(n) = safetensors_header_len(&bytes) {
            (Format::Safetensors, read_safetensors(&path, bytes, n)?)
        } else if bytes[0] == 0x80 {
            // legacy torch.save: pickles (magic, protocol, sys info, object, storage keys), storages
            scan(&path, pickle_scan::scan_legacy(&bytes))?;
            (Format::TorchLegacy, read_torch(&path)?)
        } else {
            return Err(not_ckpt(
                "neither a safetensors header, a zip archive nor a pickle",
            ));
        };
        Ok(Checkpoint {
            path,
            format,
            sha256,
            entries,
        })
    }

    /// A checkpoint held in memory (synthetic weights), labelled `label` in messages.
    pub fn from_f32(label: &str, tensors: Vec<(String, Vec<usize>, Vec<f32>)>) -> Self {
        let mut hasher = Sha256::new();
        let entries = tensors
            .into_iter()
            .map(|(name, shape, values)| {
                hasher.update(name.as_bytes());
                for v in &values {
                    hasher.update(v.to_le_bytes());
                }
                (
                    name,
                    Entry {
                        shape,
                        dtype: Dtype::F32,
                        data: Data::Owned(values),
                    },
                )
            })
            .collect();
        Checkpoint {
            path: PathBuf::from(label),
            format: Format::Safetensors,
            sha256: hex(&hasher.finalize()),
            entries,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn format(&self) -> Format {
        self.format
    }
    /// SHA-256 of the file's bytes, lowercase hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// The tensor `name` as f32, row-major.
    pub fn read_f32(&self, name: &str) -> Result<Vec<f32>> {
        let entry = self.entries.get(name).ok_or_else(|| VisionError::MissingTensor {
            path: self.path.clone(),
            arch: "this checkpoint".into(),
            name: name.into(),
            more: 0,
        })?;
        let bytes: std::borrow::Cow<[u8]> = match &entry.data {
            Data::Owned(v) => return Ok(v.clone()),
            Data::Bytes { file, start, end } => std::borrow::Cow::Borrowed(&file[*start..*end]),
            Data::Torch(t) => std::borrow::Cow::Owned(t.read().map_err(|e| self.read_error(name, e))?),
        };
        let n: usize = entry.shape.iter().product();
        let out: Vec<f32> = match entry.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F64 => bytes
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::Other(d) => {
                return Err(VisionError::WrongDtype {
                    path: self.path.clone(),
                    name: name.into(),
                    dtype: d.into(),
                })
            }
        };
        if out.len() != n {
            return Err(VisionError::Truncated {
                path: self.path.clone(),
                detail: format!(
                    "tensor `{name}` holds {} values, its shape {:?} needs {n}",
                    out.len(),
                    entry.shape
                ),
            });
        }
        Ok(out)
    }

    fn read_error(&self, name: &str, e: std::io::Error) -> VisionError {
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData => VisionError::Truncated {
                path: self.path.clone(),
                detail: format!("reading tensor `{name}`: {e}"),
            },
            _ => VisionError::Io {
                path: self.path.clone(),
                source: e,
            },
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_tar(bytes: &[u8]) -> bool {
    bytes.len() > 262 && &bytes[257..262] == b"ustar"
}

fn safetensors_header_len(bytes: &[u8]) -> Option<usize> {
    let n = u64::from_le_bytes(bytes[..8].try_into().ok()?);
    (bytes.len() > 8 && bytes[8] == b'{' && (2..=100_000_000).contains(&n)).then_some(n as usize)
}

fn scan(path: &Path, outcome: std::result::Result<usize, ScanError>) -> Result<()> {
    match outcome {
        Ok(_) => Ok(()),
        Err(ScanError::Truncated) => Err(VisionError::Truncated {
            path: path.into(),
            detail: "the pickle ends before its STOP opcode".into(),
        }),
        Err(ScanError::Corrupt(why)) => Err(VisionError::NotACheckpoint {
            path: path.into(),
            why,
        }),
        Err(ScanError::UnknownGlobal { module, name }) => Err(VisionError::UnknownGlobal {
            path: path.into(),
            module,
            name,
        }),
    }
}

/// The pickles of PyTorch's early tar layout (members `sys_info` and `pickle`, the object
/// itself) through the same allow-list as the zip and legacy layouts: a tar checkpoint must
/// not be a way around it.
fn scan_tar_pickles(path: &Path, bytes: &[u8]) -> Result<()> {
    let corrupt = |why: String| VisionError::NotACheckpoint {
        path: path.into(),
        why,
    };
    let mut pos = 0usize;
    let mut scanned_object = false;
    while pos + 512 <= bytes.len() {
        let header = &bytes[pos..pos + 512];
        if header.iter().all(|&b| b == 0) {
            break;
        }
        let name_end = header[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let name = String::from_utf8_lossy(&header[..name_end]).into_owned();
        let size_field = String::from_utf8_lossy(&header[124..136]);
        let size = usize::from_str_radix(size_field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
            .map_err(|_| corrupt(format!("tar member {name} has no readable size")))?;
        let start = pos + 512;
        let end = start
            .checked_add(size)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| corrupt(format!("tar member {name} runs past the end of the file")))?;
        let member = name.rsplit('/').next().unwrap_or(&name);
        if member == "pickle" || member == "sys_info" {
            scan(path, pickle_scan::scan_pickle(&bytes[start..end], 0))?;
            scanned_object |= member == "pickle";
        }
        pos = start + size.div_ceil(512) * 512;
    }
    if !scanned_object {
        return Err(corrupt(
            "a tar archive without the `pickle` member of a torch checkpoint".into(),
        ));
    }
    Ok(())
}

fn scan_zip_pickle(path: &Path) -> Result<()> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|source| VisionError::Io {
        path: path.into(),
        source,
    })?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| VisionError::Truncated {
        path: path.into(),
        detail: format!("a zip archive whose directory cannot be read: {e}"),
    })?;
    let name = archive
        .file_names()
        .filter_map(|n| n.ok())
        .find(|n| n.as_ref() == "data.pkl" || n.ends_with("/data.pkl"))
        .map(|n| n.into_owned())
        .ok_or_else(|| VisionError::NotACheckpoint {
            path: path.into(),
            why: "a zip archive without data.pkl".into(),
        })?;
    let mut pickle = Vec::new();
    archive
        .by_name(&name)
        .and_then(|mut f| f.read_to_end(&mut pickle).map_err(Into::into))
        .map_err(|e| VisionError::Truncated {
            path: path.into(),
            detail: format!("reading {name}: {e}"),
        })?;
    scan(path, pickle_scan::scan_pickle(&pickle, 0))
}

fn torch_dtype(d: pytorch_reader::DType) -> Dtype {
    use pytorch_reader::DType as D;
    match d {
        D::F32 => Dtype::F32,
        D::F64 => Dtype::F64,
        D::F16 => Dtype::F16,
        D::BF16 => Dtype::BF16,
        D::I64 => Dtype::Other("int64"),
        D::I32 => Dtype::Other("int32"),
        D::I16 => Dtype::Other("int16"),
        D::I8 => Dtype::Other("int8"),
        D::U64 => Dtype::Other("uint64"),
        D::U32 => Dtype::Other("uint32"),
        D::U16 => Dtype::Other("uint16"),
        D::U8 => Dtype::Other("uint8"),
        D::Bool => Dtype::Other("bool"),
    }
}

fn read_torch(path: &Path) -> Result<BTreeMap<String, Entry>> {
    use pytorch_reader::{PickleError, PytorchError};
    let reader = pytorch_reader::PytorchReader::new(path).map_err(|e| {
        let eof = |io: &std::io::Error| io.kind() == std::io::ErrorKind::UnexpectedEof;
        match &e {
            PytorchError::Io(io) if eof(io) => VisionError::Truncated {
                path: path.into(),
                detail: e.to_string(),
            },
            PytorchError::Pickle(PickleError::Io(io)) if eof(io) => VisionError::Truncated {
                path: path.into(),
                detail: e.to_string(),
            },
            PytorchError::Io(io) if io.kind() != std::io::ErrorKind::InvalidData => VisionError::Io {
                path: path.into(),
                source: std::io::Error::new(io.kind(), e.to_string()),
            },
            PytorchError::Zip(_) => VisionError::Truncated {
                path: path.into(),
                detail: e.to_string(),
            },
            PytorchError::InvalidFormat(msg)
                if [
                    "truncat",
                    "extends past",
                    "beyond the end",
                    "end of file",
                    "unexpected end",
                ]
                .iter()
                .any(|k| msg.contains(k)) =>
            {
                VisionError::Truncated {
                    path: path.into(),
                    detail: e.to_string(),
                }
            }
            _ => VisionError::NotACheckpoint {
                path: path.into(),
                why: e.to_string(),
            },
        }
    })?;
    Ok(reader
        .into_tensors()
        .into_iter()
        .map(|(name, t)| {
            let entry = Entry {
                shape: t.shape().to_vec(),
                dtype: torch_dtype(t.dtype()),
                data: Data::Torch(t),
            };
            (name, entry)
        })
        .collect())
}

fn read_safetensors(path: &Path, bytes: Vec<u8>, header_len: usize) -> Result<BTreeMap<String, Entry>> {
    use safetensors::SafeTensorError as E;
    let truncated = |detail: String| VisionError::Truncated {
        path: path.into(),
        detail,
    };
    if header_len + 8 > bytes.len() {
        return Err(truncated(format!(
            "its header claims {header_len} bytes, the file has {}",
            bytes.len() - 8
        )));
    }
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| match e {
        E::MetadataIncompleteBuffer | E::InvalidHeaderLength => {
            truncated("the tensor data does not end where the header says".into())
        }
        other => VisionError::NotACheckpoint {
            path: path.into(),
            why: format!("safetensors: {other}"),
        },
    })?;
    let data_start = 8 + header_len;
    let file = Arc::new(bytes);
    let mut out = BTreeMap::new();
    for (name, info) in meta.tensors() {
        use safetensors::Dtype as S;
        let dtype = match info.dtype {
            S::F32 => Dtype::F32,
            S::F64 => Dtype::F64,
            S::F16 => Dtype::F16,
            S::BF16 => Dtype::BF16,
            S::I64 => Dtype::Other("int64"),
            S::I32 => Dtype::Other("int32"),
            S::BOOL => Dtype::Other("bool"),
            S::U8 => Dtype::Other("uint8"),
            _ => Dtype::Other("another non-f32 type"),
        };
        let (s, e) = info.data_offsets;
        out.insert(
            name,
            Entry {
                shape: info.shape.clone(),
                dtype,
                data: Data::Bytes {
                    file: file.clone(),
                    start: data_start + s,
                    end: data_start + e,
                },
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar archive with one member per `(name, data)`.
    fn tar(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in members {
            let mut h = [0u8; 512];
            h[..name.len()].copy_from_slice(name.as_bytes());
            h[100..108].copy_from_slice(b"0000644\0");
            h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
            h[156] = b'0';
            h[257..263].copy_from_slice(b"ustar\0");
            out.extend_from_slice(&h);
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    #[test]
    fn tar_checkpoints_go_through_the_pickle_allow_list() {
        let path = Path::new("model.tar");
        // GLOBAL os.system: refused, as in the zip and legacy layouts.
        let evil = tar(&[
            ("sys_info", b"\x80\x02}q\x00."),
            ("pickle", b"\x80\x02cos\nsystem\nq\x00."),
        ]);
        assert!(is_tar(&evil));
        match scan_tar_pickles(path, &evil) {
            Err(VisionError::UnknownGlobal { module, name, .. }) => {
                assert_eq!((module.as_str(), name.as_str()), ("os", "system"))
            }
            other => panic!("expected an unknown global, got {other:?}"),
        }
        // A plain dict passes; a tar without the object pickle, or cut short, does not.
        assert!(scan_tar_pickles(path, &tar(&[("pickle", b"\x80\x02}q\x00.")])).is_ok());
        assert!(scan_tar_pickles(path, &tar(&[("storages", b"\x80\x02}q\x00.")])).is_err());
        let cut = tar(&[("pickle", b"\x80\x02}q\x00.")]);
        assert!(scan_tar_pickles(path, &cut[..515]).is_err());
    }
}
