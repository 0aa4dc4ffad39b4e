//! Files in and out, as a PyTorch user has them: `.npy` arrays (numpy's format 1.0–3.0) and
//! safetensors files; every write is atomic (temp file in the same folder, fsync, rename), so an
//! interrupted run never leaves a half-written file that looks complete.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

use crate::data::{Features, Split, Standardizer, Storage, Targets};
use crate::error::{Result, SolverError};

/// An array read from disk, converted to the element type we compute in.
#[derive(Debug, Clone, PartialEq)]
pub enum Array {
    Float {
        shape: Vec<usize>,
        data: Vec<f32>,
    },
    Int {
        shape: Vec<usize>,
        data: Vec<i64>,
    },
    /// Floating-point values kept in half precision: f16 `.npy` files, F16/BF16 safetensors,
    /// or any float file read for half-precision storage ([`read_npy_as`]).
    Half {
        shape: Vec<usize>,
        data: Features,
    },
}

impl Array {
    pub fn shape(&self) -> &[usize] {
        match self {
            Array::Float { shape, .. } | Array::Int { shape, .. } | Array::Half { shape, .. } => shape,
        }
    }
}

/// An exclusive hold on an output folder while a command writes into it: a second command on
/// the same folder fails at once instead of interleaving its files with the first's. Released
/// when dropped (or when the process dies, so a killed run leaves no stale lock).
#[derive(Debug)]
pub struct OutputLock {
    _file: std::fs::File,
}

/// The lock file inside an output folder.
pub const LOCK_FILE: &str = ".fit.lock";

/// Create `dir` if needed and take its lock.
pub fn lock_output(dir: &Path) -> Result<OutputLock> {
    std::fs::create_dir_all(dir).map_err(|e| SolverError::write(dir, e))?;
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| SolverError::write(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(OutputLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(SolverError::Locked {
            dir: dir.to_path_buf(),
            lock: path,
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(SolverError::Write { path, source: e }),
    }
}

/// A 64-bit FNV-1a digest of `bytes` in hex: enough to notice a file deleted, truncated or
/// rewritten since it was recorded (not a defence against a forger).
pub fn content_hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Write bytes to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| SolverError::write(dir, e))?;
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(SolverError::write(path, e));
    }
    Ok(())
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| SolverError::io(path, e))
}

/// Parse a `.npy` file (C or Fortran order; f32, f64, integer and bool dtypes). The body is
/// read in blocks straight into the converted array, so a feature file is held once, not
/// twice (its bytes and its values) while it loads.
pub fn read_npy(path: &Path) -> Result<Array> {
    read_npy_as(path, None)
}

/// [`read_npy`] with float values converted to `storage` as they are read (block by block, so
/// an f32 file read for f16 storage never exists in memory as f32). `None` keeps the file's
/// own precision (f16 files stay f16, f64 becomes f32).
pub fn read_npy_as(path: &Path, storage: Option<Storage>) -> Result<Array> {
    let file = std::fs::File::open(path).map_err(|e| SolverError::io(path, e))?;
    let len = file.metadata().map_err(|e| SolverError::io(path, e))?.len();
    parse_npy_from(std::io::BufReader::new(file), len, storage)
        .map_err(|reason| SolverError::bad_file(path, reason))
}

#[cfg(test)]
fn parse_npy(bytes: &[u8]) -> std::result::Result<Array, String> {
    parse_npy_from(bytes, bytes.len() as u64, None)
}

/// Read `count` values of `size` bytes each from `r` in blocks of 2²⁰ values, handing each
/// block's bytes to `f` (a feature file is converted as it streams in, never held twice).
fn read_blocks<R: std::io::Read>(
    r: &mut R,
    count: usize,
    size: usize,
    mut f: impl FnMut(&[u8]),
) -> std::result::Result<(), String> {
    const BLOCK: usize = 1 << 20;
    let mut buf = vec![0u8; BLOCK.min(count) * size];
    let mut left = count;
    while left > 0 {
        let take = left.min(BLOCK);
        let bytes = &mut buf[..take * size];
        r.read_exact(bytes)
            .map_err(|e| format!("cannot read the array's data ({e})"))?;
        f(bytes);
        left -= take;
    }
    Ok(())
}

/// Read `count` little-endian values of `size` bytes each from `r`, converted one by one.
fn read_values<T, R: std::io::Read>(
    r: &mut R,
    count: usize,
    size: usize,
    convert: impl Fn(&[u8]) -> T,
) -> std::result::Result<Vec<T>, String> {
    let mut out = Vec::with_capacity(count);
    read_blocks(r, count, size, |bytes| {
        out.extend(bytes.chunks_exact(size).map(&convert))
    })?;
    Ok(out)
}

/// Read `count` little-endian floats of `size` bytes (2, 4 or 8) into `storage` precision,
/// a block at a time through f32 (f16 → f32 is exact; f32 → f16/bf16 rounds to nearest).
fn read_floats<R: std::io::Read>(
    r: &mut R,
    count: usize,
    size: usize,
    storage: Storage,
) -> std::result::Result<Features, String> {
    let mut out = match storage {
        Storage::F32 => Features::F32(Vec::with_capacity(count)),
        Storage::F16 => Features::F16(Vec::with_capacity(count)),
        Storage::BF16 => Features::BF16(Vec::with_capacity(count)),
    };
    let mut block = Vec::new();
    read_blocks(r, count, size, |bytes| {
        block.clear();
        match size {
            2 => block.extend(le_u16(bytes).map(|h| f16::from_bits(h).to_f32())),
            4 => block.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap())),
            ),
            _ => block.extend(
                bytes
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32),
            ),
        }
        match &mut out {
            Features::F32(o) => o.extend_from_slice(&block),
            Features::F16(o) => {
                let at = o.len();
                o.resize(at + block.len(), f16::ZERO);
                o[at..].convert_from_f32_slice(&block);
            }
            Features::BF16(o) => {
                let at = o.len();
                o.resize(at + block.len(), bf16::ZERO);
                o[at..].convert_from_f32_slice(&block);
            }
            Features::File(_) => unreachable!("values are read into memory here"),
        }
    })?;
    Ok(out)
}

/// What an `.npy` header says about the array that follows it.
pub(crate) struct NpyHeader {
    /// dtype kind (`f`, `i`, `u`, `b`) and item size in bytes, little-endian.
    pub code: String,
    pub size: usize,
    pub descr: String,
    pub fortran: bool,
    pub shape: Vec<usize>,
    /// Number of values (checked product of the shape).
    pub count: usize,
    /// Byte offset of the data from the start of the file.
    pub data_offset: u64,
}

/// Read and check an `.npy` header (magic, version, dict, dtype, shape, data length against
/// the file's `total_len`), leaving `r` at the first data byte.
pub(crate) fn read_npy_header<R: std::io::Read>(
    r: &mut R,
    total_len: u64,
) -> std::result::Result<NpyHeader, String> {
    let mut lead = [0u8; 10];
    if total_len < 10 || r.read_exact(&mut lead).is_err() || &lead[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (missing the \\x93NUMPY magic)".into());
    }
    let major = lead[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([lead[8], lead[9]]) as usize, 10),
        2 | 3 => {
            let mut more = [0u8; 2];
            r.read_exact(&mut more).map_err(|_| "truncated .npy header")?;
            (
                u32::from_le_bytes([lead[8], lead[9], more[0], more[1]]) as usize,
                12,
            )
        }
        v => return Err(format!("unsupported .npy version {v}")),
    };
    if (start + header_len) as u64 > total_len {
        return Err("truncated .npy header".into());
    }
    let mut header = vec![0u8; header_len];
    r.read_exact(&mut header).map_err(|_| "truncated .npy header")?;
    let header = std::str::from_utf8(&header).map_err(|_| "the .npy header is not text")?;
    let descr = dict_value(header, "descr").ok_or("the .npy header has no 'descr'")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let fortran = dict_value(header, "fortran_order").ok_or("the .npy header has no 'fortran_order'")?;
    let fortran = fortran.trim() == "True";
    let shape_txt = dict_value(header, "shape").ok_or("the .npy header has no 'shape'")?;
    let shape: Vec<usize> = shape_txt
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| format!("bad shape entry '{s}'")))
        .collect::<std::result::Result<_, _>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &s| acc.checked_mul(s))
        .ok_or_else(|| format!("shape {shape:?} holds more values than memory can address"))?;
    if descr.len() < 3 || !descr.is_char_boundary(1) || !descr.is_char_boundary(2) {
        return Err(format!("unsupported dtype '{descr}'"));
    }
    let (endian, code) = descr.split_at(1);
    if endian == ">" {
        return Err(format!(
            "big-endian dtype '{descr}' is not supported; save with '<' byte order"
        ));
    }
    let size: usize = code[1..]
        .parse()
        .ok()
        .filter(|&s| s > 0)
        .ok_or_else(|| format!("unsupported dtype '{descr}'"))?;
    let body_len = total_len - (start + header_len) as u64;
    let needed = count.checked_mul(size).map(|b| b as u64);
    if needed.is_none_or(|b| body_len < b) {
        return Err(format!(
            "truncated data: shape {shape:?} of '{descr}' needs {} bytes, the file has {body_len}",
            needed.map_or_else(|| "more".to_string(), |b| b.to_string()),
        ));
    }
    Ok(NpyHeader {
        code: code[..1].to_string(),
        size,
        descr: descr.to_string(),
        fortran,
        shape,
        count,
        data_offset: (start + header_len) as u64,
    })
}

fn parse_npy_from<R: std::io::Read>(
    mut r: R,
    total_len: u64,
    storage: Option<Storage>,
) -> std::result::Result<Array, String> {
    let NpyHeader {
        code,
        size,
        descr,
        fortran,
        shape,
        count,
        ..
    } = read_npy_header(&mut r, total_len)?;
    let shape_of = || shape.clone();
    let mut array = match (code.as_str(), size) {
        ("f", 2 | 4 | 8) => {
            let native = if size == 2 { Storage::F16 } else { Storage::F32 };
            match read_floats(&mut r, count, size, storage.unwrap_or(native))? {
                Features::F32(data) => Array::Float {
                    shape: shape_of(),
                    data,
                },
                half => Array::Half {
                    shape: shape_of(),
                    data: half,
                },
            }
        }
        ("i", 8) => Array::Int {
            shape: shape_of(),
            data: read_values(&mut r, count, 8, |c| i64::from_le_bytes(c.try_into().unwrap()))?,
        },
        ("i", 4) => Array::Int {
            shape: shape_of(),
            data: read_values(&mut r, count, 4, |c| {
                i32::from_le_bytes(c.try_into().unwrap()) as i64
            })?,
        },
        ("i", 2) => Array::Int {
            shape: shape_of(),
            data: read_values(&mut r, count, 2, |c| {
                i16::from_le_bytes(c.try_into().unwrap()) as i64
            })?,
        },
        ("i", 1) => Array::Int {
            shape: shape_of(),
            data: read_values(&mut r, count, 1, |c| c[0] as i8 as i64)?,
        },
        ("u", 1) | ("b", 1) => Array::Int {
            shape: shape_of(),
            data: read_values(&mut r, count, 1, |c| c[0] as i64)?,
        },
        ("u", 2) => Array::Int {
            shape: shape_of(),
            data: read_values(&mut r, count, 2, |c| {
                u16::from_le_bytes(c.try_into().unwrap()) as i64
            })?,
        },
        ("u", 4) => Array::Int {
            shape: shape_of(),
            data: read_values(&mut r, count, 4, |c| {
                u32::from_le_bytes(c.try_into().unwrap()) as i64
            })?,
        },
        _ => {
            return Err(format!(
                "unsupported dtype '{descr}' (use float16/32/64 or an integer type)"
            ))
        }
    };
    if fortran && shape.len() == 2 {
        let (r, c) = (shape[0], shape[1]);
        match &mut array {
            Array::Float { data, .. } => *data = transpose(data, c, r),
            Array::Int { data, .. } => *data = transpose(data, c, r),
            Array::Half { data, .. } => {
                *data = match data {
                    Features::F32(v) => Features::F32(transpose(v, c, r)),
                    Features::F16(v) => Features::F16(transpose(v, c, r)),
                    Features::BF16(v) => Features::BF16(transpose(v, c, r)),
                    Features::File(_) => unreachable!("values are read into memory here"),
                }
            }
        }
    } else if fortran && shape.len() > 2 {
        return Err("Fortran-ordered arrays of rank > 2 are not supported".into());
    }
    Ok(array)
}

/// Row-major `[rows, cols]` → row-major `[cols, rows]`.
fn transpose<T: Copy>(data: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(data.len());
    for c in 0..cols {
        for r in 0..rows {
            out.push(data[r * cols + c]);
        }
    }
    out
}

/// The text after `'key':` in a Python dict literal, up to the next top-level comma.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pos = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[pos + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let mut depth = 0;
    for (i, ch) in rest.char_indices() {
        match ch {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(rest[..i].trim()),
            _ => {}
        }
    }
    None
}

/// Encode a 1-D or 2-D array as `.npy` (f32 or i64, C order).
pub fn encode_npy(array: &Array) -> Vec<u8> {
    let (descr, shape, body): (&str, &[usize], Vec<u8>) = match array {
        Array::Float { shape, data } => ("<f4", shape, data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        Array::Int { shape, data } => ("<i8", shape, data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        Array::Half {
            shape,
            data: Features::F16(v),
        } => ("<f2", shape, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        // numpy has no bfloat16: written as the exact float32 values.
        Array::Half { shape, data } => (
            "<f4",
            shape,
            data.to_f32(0, data.len())
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
    };
    let shape_txt = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
        ),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_txt}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&body);
    out
}

/// Little-endian 16-bit words (the bits of f16 / bf16 values).
pub(crate) fn le_u16(data: &[u8]) -> impl Iterator<Item = u16> + '_ {
    data.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]))
}

/// Where one tensor of a safetensors file lies: its element type, shape and the absolute byte
/// range of its data in the file.
#[derive(Debug, Clone)]
pub struct SafetensorsEntry {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub start: u64,
    pub end: u64,
}

/// The entry of tensor `name` in the header of an open safetensors file; only the header is
/// read, and the data range is checked against the file's length.
pub fn safetensors_entry(file: &std::fs::File, path: &Path, name: &str) -> Result<SafetensorsEntry> {
    use std::os::unix::fs::FileExt;
    let bad = |reason: String| SolverError::bad_file(path, reason);
    let len = file.metadata().map_err(|e| SolverError::io(path, e))?.len();
    let mut size = [0u8; 8];
    file.read_exact_at(&mut size, 0)
        .map_err(|_| bad("too short for a safetensors file".into()))?;
    let header_len = u64::from_le_bytes(size);
    if header_len > len.saturating_sub(8) || header_len > 100 << 20 {
        return Err(bad(format!("header of {header_len} bytes in a {len}-byte file")));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact_at(&mut header, 8)
        .map_err(|e| SolverError::io(path, e))?;
    let header: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| bad(format!("not a readable safetensors header ({e})")))?;
    let entry = header
        .get(name)
        .ok_or_else(|| bad(format!("no '{name}' tensor")))?;
    let dtype: Dtype = serde_json::from_value(entry["dtype"].clone())
        .map_err(|_| bad(format!("'{name}' has an unknown element type {}", entry["dtype"])))?;
    let numbers = |key: &str| -> Vec<u64> {
        entry[key]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
            .unwrap_or_default()
    };
    let shape: Vec<usize> = numbers("shape").into_iter().map(|v| v as usize).collect();
    let [begin, end] = numbers("data_offsets")[..] else {
        return Err(bad(format!("'{name}' has no data offsets")));
    };
    let (start, end) = (8 + header_len + begin, 8 + header_len + end);
    let expected = (shape.iter().product::<usize>() as u64 * dtype.bitsize() as u64).div_ceil(8);
    if end < start || end - start != expected || end > len {
        return Err(bad(format!(
            "'{name}' {dtype:?} {shape:?} does not fit its data offsets {begin}..{} in a {len}-byte file",
            end - 8 - header_len
        )));
    }
    Ok(SafetensorsEntry {
        dtype,
        shape,
        start,
        end,
    })
}

/// Tensor `name` of a safetensors file, reading only its bytes: the labels of a file whose
/// features are streamed, without reading gigabytes of features.
pub fn read_safetensors_tensor(path: &Path, name: &str) -> Result<Array> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path).map_err(|e| SolverError::io(path, e))?;
    let entry = safetensors_entry(&file, path, name)?;
    let mut bytes = vec![0u8; (entry.end - entry.start) as usize];
    file.read_exact_at(&mut bytes, entry.start)
        .map_err(|e| SolverError::io(path, e))?;
    let view = TensorView::new(entry.dtype, entry.shape, &bytes)
        .map_err(|e| SolverError::bad_file(path, format!("'{name}': {e}")))?;
    safetensor_array(path, &view)
}

fn safetensor_array(path: &Path, view: &TensorView<'_>) -> Result<Array> {
    let shape = view.shape().to_vec();
    let data = view.data();
    let arr = match view.dtype() {
        Dtype::F32 => Array::Float {
            shape,
            data: data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        },
        Dtype::F64 => Array::Float {
            shape,
            data: data
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect(),
        },
        Dtype::F16 => Array::Half {
            shape,
            data: Features::F16(le_u16(data).map(f16::from_bits).collect()),
        },
        Dtype::BF16 => Array::Half {
            shape,
            data: Features::BF16(le_u16(data).map(bf16::from_bits).collect()),
        },
        Dtype::I64 => Array::Int {
            shape,
            data: data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        },
        Dtype::I32 => Array::Int {
            shape,
            data: data
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
        },
        Dtype::U8 | Dtype::BOOL => Array::Int {
            shape,
            data: data.iter().map(|&b| b as i64).collect(),
        },
        Dtype::I8 => Array::Int {
            shape,
            data: data.iter().map(|&b| b as i8 as i64).collect(),
        },
        other => {
            return Err(SolverError::bad_file(
                path,
                format!("tensor has dtype {other:?}; use float16/bfloat16/float32/float64 features and integer labels"),
            ))
        }
    };
    Ok(arr)
}

/// Read named tensors from a safetensors file.
pub fn read_safetensors(path: &Path) -> Result<(HashMap<String, Array>, HashMap<String, String>)> {
    let bytes = read_bytes(path)?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| SolverError::bad_file(path, format!("not a readable safetensors file ({e})")))?;
    let (_, meta) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| SolverError::bad_file(path, format!("bad safetensors header ({e})")))?;
    let mut out = HashMap::new();
    for name in st.names() {
        let view = st
            .tensor(name)
            .map_err(|e| SolverError::bad_file(path, e.to_string()))?;
        out.insert(name.to_string(), safetensor_array(path, &view)?);
    }
    Ok((out, meta.metadata().clone().unwrap_or_default()))
}

/// Serialize f32 tensors (name, shape, values) plus string metadata to safetensors bytes.
pub fn encode_safetensors(
    tensors: &[(&str, Vec<usize>, &[f32])],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, d)| {
            (
                n.to_string(),
                s.clone(),
                d.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).expect("shape matches data"),
            )
        })
        .collect();
    safetensors::tensor::serialize(views, metadata)
        .map_err(|e| SolverError::Config(format!("safetensors serialization failed: {e}")))
}

/// Serialize named arrays (f32 or i64) plus string metadata to safetensors bytes.
pub fn encode_arrays(
    tensors: &[(&str, &Array)],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>> {
    let bytes: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, a)| match a {
            Array::Float { shape, data } => (
                n.to_string(),
                Dtype::F32,
                shape.clone(),
                data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            Array::Int { shape, data } => (
                n.to_string(),
                Dtype::I64,
                shape.clone(),
                data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            Array::Half { shape, data } => {
                let (dtype, bytes) = match data {
                    Features::F32(v) => (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
                    Features::F16(v) => (Dtype::F16, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
                    Features::BF16(v) => (Dtype::BF16, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
                    rows @ Features::File(_) => (
                        Dtype::F32,
                        rows.to_f32(0, rows.len())
                            .iter()
                            .flat_map(|x| x.to_le_bytes())
                            .collect(),
                    ),
                };
                (n.to_string(), dtype, shape.clone(), bytes)
            }
        })
        .collect();
    let mut views = Vec::with_capacity(bytes.len());
    for (n, dtype, shape, b) in &bytes {
        let view = TensorView::new(*dtype, shape.clone(), b).map_err(|e| {
            SolverError::Config(format!(
                "tensor {n}: shape {shape:?} does not match its data ({e})"
            ))
        })?;
        views.push((n.clone(), view));
    }
    safetensors::tensor::serialize(views, metadata)
        .map_err(|e| SolverError::Config(format!("safetensors serialization failed: {e}")))
}

/// Where a split's features and labels live on disk.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureSource {
    /// One safetensors file with a 2-D float `features` tensor and a `labels` tensor
    /// (1-D integer class indices, or a 2-D float target matrix).
    Safetensors(PathBuf),
    /// A pair of `.npy` files: features `[n, d]` and labels.
    NpyPair { features: PathBuf, labels: PathBuf },
}

impl FeatureSource {
    /// Parse a command-line spec: `file.safetensors`, `X.npy,y.npy`, or `X_train.npy` alone
    /// (the labels are then the file whose name has the leading `X` replaced by `y`).
    pub fn parse(spec: &str) -> Result<Self> {
        if let Some((x, y)) = spec.split_once(',') {
            return Ok(FeatureSource::NpyPair {
                features: x.into(),
                labels: y.into(),
            });
        }
        let path = PathBuf::from(spec);
        match path.extension().and_then(|e| e.to_str()) {
            Some("safetensors") => Ok(FeatureSource::Safetensors(path)),
            Some("npy") => {
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                let label_name = if let Some(rest) = name.strip_prefix('X') {
                    format!("y{rest}")
                } else if let Some(rest) = name.strip_prefix("features") {
                    format!("labels{rest}")
                } else {
                    return Err(SolverError::Config(format!(
                        "{spec}: give the labels too, as FEATURES.npy,LABELS.npy (the label file is \
                         inferred only for names starting with 'X' or 'features')"
                    )));
                };
                Ok(FeatureSource::NpyPair {
                    labels: path.with_file_name(label_name),
                    features: path,
                })
            }
            _ => Err(SolverError::Config(format!(
                "{spec}: expected a .safetensors file or a .npy features file"
            ))),
        }
    }

    fn features_path(&self) -> &Path {
        match self {
            FeatureSource::Safetensors(p) => p,
            FeatureSource::NpyPair { features, .. } => features,
        }
    }

    /// Load the split, checking ranks and counts; numbers are validated later per family.
    /// Features keep their file's precision (f16 stays f16).
    pub fn load(&self, name: &str) -> Result<Split> {
        self.load_as(name, None)
    }

    /// [`FeatureSource::load`] with the features left in their file (`.npy`, or the
    /// `features` tensor of a safetensors file) and read by rows while the path runs
    /// ([`crate::filerows::FileRows`]); the labels are read into memory.
    pub fn load_streamed(&self, name: &str) -> Result<Split> {
        let (rows, labels, lpath) = match self {
            FeatureSource::NpyPair { features, labels } => (
                crate::filerows::FileRows::open_npy(features)?,
                read_npy(labels)?,
                labels,
            ),
            FeatureSource::Safetensors(path) => {
                let rows = crate::filerows::FileRows::open_safetensors(path, "features")?;
                (rows, read_safetensors_tensor(path, "labels")?, path)
            }
        };
        let (n, d) = (rows.rows(), rows.cols());
        let targets = targets_from(labels, lpath)?;
        if targets.len() != n {
            return Err(SolverError::CountMismatch {
                split: name.into(),
                features: n,
                labels: targets.len(),
            });
        }
        Split::new(name, Features::File(rows), n, d, targets)
    }

    /// [`FeatureSource::load`] with the features stored in `storage` precision (converted
    /// while reading an `.npy` file, so the file's f32 values are never all in memory).
    pub fn load_as(&self, name: &str, storage: Option<Storage>) -> Result<Split> {
        let (features, labels, lpath) = match self {
            FeatureSource::Safetensors(path) => {
                let (mut tensors, _) = read_safetensors(path)?;
                let f = tensors.remove("features").ok_or_else(|| {
                    SolverError::bad_file(path, "no 'features' tensor (expected 'features' and 'labels')")
                })?;
                let l = tensors.remove("labels").ok_or_else(|| {
                    SolverError::bad_file(path, "no 'labels' tensor (expected 'features' and 'labels')")
                })?;
                (f, l, path.clone())
            }
            FeatureSource::NpyPair { features, labels } => {
                (read_npy_as(features, storage)?, read_npy(labels)?, labels.clone())
            }
        };
        let fpath = self.features_path();
        let (n, d, x) = match features {
            Array::Float { shape, data } if shape.len() == 2 => (shape[0], shape[1], Features::F32(data)),
            Array::Half { shape, data } if shape.len() == 2 => (shape[0], shape[1], data),
            Array::Int { shape, data } if shape.len() == 2 => (
                shape[0],
                shape[1],
                Features::F32(data.into_iter().map(|v| v as f32).collect()),
            ),
            other => {
                return Err(SolverError::bad_file(
                    fpath,
                    format!(
                        "features must be a 2-D array [n, d], found shape {:?}",
                        other.shape()
                    ),
                ))
            }
        };
        let targets = targets_from(labels, &lpath)?;
        if targets.len() != n {
            return Err(SolverError::CountMismatch {
                split: name.into(),
                features: n,
                labels: targets.len(),
            });
        }
        let x = match storage {
            Some(s) => x.into_storage(s),
            None => x,
        };
        Split::new(name, x, n, d, targets)
    }
}

/// Class indices (1-D integers, or whole floats) or a 2-D target matrix from a label array.
fn targets_from(labels: Array, lpath: &Path) -> Result<Targets> {
    Ok(match labels {
        Array::Int { shape, data } if shape.len() == 1 => Targets::Classes(data),
        Array::Int { shape, data } if shape.len() == 2 && shape[1] == 1 => Targets::Classes(data),
        Array::Float { shape, data } if shape.len() == 2 => Targets::Dense {
            values: data,
            k: shape[1],
        },
        Array::Float { shape, data } if shape.len() == 1 => {
            // Float class labels as some tools save them: accept exact integers only.
            if let Some(v) = data.iter().find(|v| v.fract() != 0.0 || !v.is_finite()) {
                return Err(SolverError::bad_file(
                    lpath,
                    format!("1-D float labels must be whole class indices, found {v}"),
                ));
            }
            let _ = shape;
            Targets::Classes(data.into_iter().map(|v| v as i64).collect())
        }
        other => {
            return Err(SolverError::bad_file(
                lpath,
                format!(
                "labels must be 1-D class indices [n] or a 2-D float target matrix [n, K], found shape {:?}",
                other.shape()
            ),
            ))
        }
    })
}

/// A linear decision layer as users load it from PyTorch: `weight [K, D]`, `bias [K]`, and the
/// standardization `mean [D]`, `std [D]` to apply to raw features first.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub k: usize,
    pub d: usize,
    /// Row-major `[K, D]`.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Layer {
    /// Build from the solver's transposed weights `wt [D, K]`.
    pub fn from_transposed(
        wt: &[f32],
        bias: Vec<f32>,
        d: usize,
        k: usize,
        standardizer: &Standardizer,
    ) -> Self {
        Layer {
            k,
            d,
            weight: transpose(wt, d, k),
            bias,
            mean: standardizer.mean.clone(),
            std: standardizer.std.clone(),
        }
    }

    /// A layer given on raw features (`logits = weight · x + bias`, `weight [K, D]`
    /// row-major: a network's own head) expressed on standardized features `z = (x − μ)/σ`,
    /// as the solver's layers are: `W' = W·diag(σ)`, `b' = b + W·μ` (summed in f64), so the
    /// same logits come out of the standardized split.
    pub fn from_raw(weight: &[f32], bias: &[f32], standardizer: &Standardizer) -> Self {
        let (k, d) = (bias.len(), standardizer.mean.len());
        assert_eq!(weight.len(), k * d, "weight is [K, D]");
        let (mean, std) = (&standardizer.mean, &standardizer.std);
        let folded: Vec<f32> = weight
            .chunks_exact(d)
            .flat_map(|row| row.iter().zip(std).map(|(w, s)| w * s))
            .collect();
        let bias = weight
            .chunks_exact(d)
            .zip(bias)
            .map(|(row, &b)| {
                (b as f64
                    + row
                        .iter()
                        .zip(mean)
                        .map(|(&w, &m)| w as f64 * m as f64)
                        .sum::<f64>()) as f32
            })
            .collect();
        Layer {
            k,
            d,
            weight: folded,
            bias,
            mean: mean.clone(),
            std: std.clone(),
        }
    }

    /// The layer on raw features, standardization folded in (the inverse of
    /// [`Layer::from_raw`]): `(weight [K, D] row-major, bias [K])` with `logits = weight · x +
    /// bias`, i.e. `W/σ` and `b − (W/σ)·μ` (summed in f64). What a plain `nn.Linear` loads.
    pub fn to_raw(&self) -> (Vec<f32>, Vec<f32>) {
        let d = self.d;
        let weight: Vec<f32> = self
            .weight
            .chunks_exact(d)
            .flat_map(|row| row.iter().zip(&self.std).map(|(w, s)| w / s))
            .collect();
        let bias = weight
            .chunks_exact(d)
            .zip(&self.bias)
            .map(|(row, &b)| {
                (b as f64
                    - row
                        .iter()
                        .zip(&self.mean)
                        .map(|(&w, &m)| w as f64 * m as f64)
                        .sum::<f64>()) as f32
            })
            .collect();
        (weight, bias)
    }

    /// Exact nonzeros (the proximal step produces exact zeros), total and per class.
    pub fn nnz_per_class(&self) -> Vec<usize> {
        self.weight
            .chunks_exact(self.d)
            .map(|r| r.iter().filter(|v| **v != 0.0).count())
            .collect()
    }

    /// Features used by at least one class.
    pub fn features_used(&self) -> usize {
        (0..self.d)
            .filter(|&j| (0..self.k).any(|c| self.weight[c * self.d + j] != 0.0))
            .count()
    }

    pub fn save(&self, path: &Path, metadata: Option<HashMap<String, String>>) -> Result<()> {
        write_atomic(path, &self.encode(metadata)?)
    }

    /// The layer file's bytes (safetensors: weight, bias, mean, std).
    pub fn encode(&self, metadata: Option<HashMap<String, String>>) -> Result<Vec<u8>> {
        encode_safetensors(
            &[
                ("weight", vec![self.k, self.d], &self.weight),
                ("bias", vec![self.k], &self.bias),
                ("mean", vec![self.d], &self.mean),
                ("std", vec![self.d], &self.std),
            ],
            metadata,
        )
    }

    pub fn load(path: &Path) -> Result<Self> {
        let (mut t, _) = read_safetensors(path)?;
        let mut take = |name: &str| -> Result<(Vec<usize>, Vec<f32>)> {
            match t.remove(name) {
                Some(Array::Float { shape, data }) => Ok((shape, data)),
                _ => Err(SolverError::bad_file(path, format!("no float tensor '{name}'"))),
            }
        };
        let (ws, weight) = take("weight")?;
        let (_, bias) = take("bias")?;
        let (_, mean) = take("mean")?;
        let (_, std) = take("std")?;
        if ws.len() != 2 || bias.len() != ws[0] || mean.len() != ws[1] || std.len() != ws[1] {
            return Err(SolverError::bad_file(
                path,
                format!("inconsistent layer shapes: weight {ws:?}"),
            ));
        }
        Ok(Layer {
            k: ws[0],
            d: ws[1],
            weight,
            bias,
            mean,
            std,
        })
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_layer_unfolded_gives_the_same_logits_on_raw_features() {
        let (k, d) = (2, 3);
        let layer = Layer {
            k,
            d,
            weight: vec![0.5, 0.0, -1.5, 2.0, 0.25, 0.0],
            bias: vec![0.3, -0.7],
            mean: vec![1.0, -2.0, 0.5],
            std: vec![2.0, 0.5, 4.0],
        };
        let (w, b) = layer.to_raw();
        let x = [0.3f32, -1.0, 2.0];
        for c in 0..k {
            let z: f32 = (0..d)
                .map(|j| layer.weight[c * d + j] * (x[j] - layer.mean[j]) / layer.std[j])
                .sum();
            let raw: f32 = b[c] + (0..d).map(|j| w[c * d + j] * x[j]).sum::<f32>();
            assert!((layer.bias[c] + z - raw).abs() < 1e-6, "class {c}");
        }
        // Zeros stay zeros: a sparse layer exports sparse.
        assert_eq!(w[1], 0.0);
        assert_eq!(w[5], 0.0);
    }

    #[test]
    fn a_raw_head_folded_gives_the_same_logits_on_standardized_features() {
        let (k, d) = (3, 4);
        let weight: Vec<f32> = (0..k * d).map(|i| (i as f32 * 0.37).sin()).collect();
        let bias = vec![0.1, -0.2, 0.3];
        let standardizer = Standardizer {
            mean: vec![1.0, -2.0, 0.5, 3.0],
            std: vec![2.0, 0.5, 1.5, 4.0],
            clamped: vec![],
        };
        let layer = Layer::from_raw(&weight, &bias, &standardizer);
        let x = [0.3f32, -1.0, 2.0, 5.0];
        let z: Vec<f32> = (0..d)
            .map(|j| (x[j] - standardizer.mean[j]) / standardizer.std[j])
            .collect();
        for c in 0..k {
            let raw: f32 = bias[c] + (0..d).map(|j| weight[c * d + j] * x[j]).sum::<f32>();
            let folded: f32 = layer.bias[c] + (0..d).map(|j| layer.weight[c * d + j] * z[j]).sum::<f32>();
            assert!((raw - folded).abs() < 1e-5, "class {c}: {raw} vs {folded}");
        }
    }

    use super::*;

    #[test]
    fn half_precision_arrays_round_trip_and_convert_on_read() {
        let values: Vec<f32> = (0..12).map(|i| i as f32 * 0.3 - 1.7).collect();
        let as_f16 = Features::F32(values.clone()).into_storage(Storage::F16);
        let half = Array::Half {
            shape: vec![3, 4],
            data: as_f16.clone(),
        };
        // An f16 .npy stays f16; read for f32 storage it is widened exactly.
        let bytes = encode_npy(&half);
        assert_eq!(parse_npy(&bytes).unwrap(), half);
        let wide = parse_npy_from(&bytes[..], bytes.len() as u64, Some(Storage::F32)).unwrap();
        assert_eq!(
            wide,
            Array::Float {
                shape: vec![3, 4],
                data: as_f16.to_f32(0, 12)
            }
        );
        // An f32 file read for f16 / bf16 storage rounds each value to nearest.
        let f32_bytes = encode_npy(&Array::Float {
            shape: vec![3, 4],
            data: values.clone(),
        });
        for storage in [Storage::F16, Storage::BF16] {
            let read = parse_npy_from(&f32_bytes[..], f32_bytes.len() as u64, Some(storage)).unwrap();
            let expected = Features::F32(values.clone()).into_storage(storage);
            assert_eq!(
                read,
                Array::Half {
                    shape: vec![3, 4],
                    data: expected.clone()
                }
            );
            // Safetensors keep F16 / BF16 as they are.
            let st = encode_arrays(
                &[(
                    "features",
                    &Array::Half {
                        shape: vec![3, 4],
                        data: expected.clone(),
                    },
                )],
                None,
            )
            .unwrap();
            let parsed = SafeTensors::deserialize(&st).unwrap();
            let back = safetensor_array(Path::new("x"), &parsed.tensor("features").unwrap()).unwrap();
            assert_eq!(
                back,
                Array::Half {
                    shape: vec![3, 4],
                    data: expected
                }
            );
        }
    }

    #[test]
    fn npy_round_trip_and_fortran_order() {
        let a = Array::Float {
            shape: vec![2, 3],
            data: vec![1., 2., 3., 4., 5., 6.],
        };
        assert_eq!(parse_npy(&encode_npy(&a)).unwrap(), a);
        let l = Array::Int {
            shape: vec![3],
            data: vec![0, 2, 1],
        };
        assert_eq!(parse_npy(&encode_npy(&l)).unwrap(), l);
        // The same 2x3 matrix stored column-major.
        let mut bytes = encode_npy(&Array::Float {
            shape: vec![2, 3],
            data: vec![1., 4., 2., 5., 3., 6.],
        });
        let hdr = String::from_utf8_lossy(&bytes[10..]).into_owned();
        let pos = hdr.find("False").unwrap() + 10;
        bytes.splice(pos..pos + 5, b"True ".iter().copied());
        assert_eq!(parse_npy(&bytes).unwrap(), a);
    }

    #[test]
    fn npy_errors_are_readable() {
        assert!(parse_npy(b"hello world").unwrap_err().contains("not a .npy"));
        let mut bytes = encode_npy(&Array::Float {
            shape: vec![4, 4],
            data: vec![0.0; 16],
        });
        bytes.truncate(bytes.len() - 8);
        assert!(parse_npy(&bytes).unwrap_err().contains("truncated"));
    }

    #[test]
    fn label_file_is_inferred() {
        let s = FeatureSource::parse("dir/X_train.npy").unwrap();
        assert_eq!(
            s,
            FeatureSource::NpyPair {
                features: "dir/X_train.npy".into(),
                labels: "dir/y_train.npy".into()
            }
        );
        assert!(FeatureSource::parse("dir/train.npy").is_err());
        assert!(FeatureSource::parse("dir/train.csv").is_err());
    }
}
