//! Feature rows read from their file while the path runs (`fit path --stream disk`): X never
//! sits in the process's memory, only the blocks in flight (a batch, a chunk of a full pass,
//! the screened columns) do. Rows are read with positioned reads (`pread`) of the `.npy` data,
//! so the page cache keeps what the machine can spare and the process's resident set stays at
//! the table, W and the blocks; a memory map would count every touched page as resident.
//!
//! The solver sees the same f32 blocks as from memory: the training rows are read in the
//! shuffled order through an index (the file is never rewritten), and standardization is
//! applied as each value is read, with the same f32 expression as in memory, so the path is
//! the same bit for bit.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use half::{bf16, f16};

use crate::data::Storage;
use crate::error::{Result, SolverError};
use crate::io::{le_u16, read_npy_header, safetensors_entry};
use safetensors::tensor::Dtype;

/// One file's part of the rows: `rows` consecutive rows stored from byte `offset` on.
#[derive(Debug, Clone)]
struct Segment {
    file: Arc<std::fs::File>,
    path: PathBuf,
    /// Byte offset of the segment's first row in its file.
    offset: u64,
    /// Index of the segment's first row among all rows.
    first_row: usize,
    rows: usize,
}

/// The rows of an `[n, d]` float array kept in one or more files (an `.npy` file, a
/// safetensors tensor, the feature cache's shards one after another), read on demand.
#[derive(Clone)]
pub struct FileRows {
    segments: Arc<[Segment]>,
    n: usize,
    d: usize,
    /// The files' element type (f32, f16; bf16 from safetensors).
    dtype: Storage,
    /// Row i of the array is row `order[i]` of the files (the shuffled training order, or the
    /// rows kept after dropping some).
    order: Option<Arc<[usize]>>,
    /// `(mean, std)`: each value is read as `(v − mean_j) / std_j`.
    affine: Option<Arc<(Vec<f32>, Vec<f32>)>>,
}

impl std::fmt::Debug for FileRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let files = match self.segments.len() {
            1 => self.segments[0].path.display().to_string(),
            count => format!("{} and {} more files", self.segments[0].path.display(), count - 1),
        };
        write!(
            f,
            "FileRows({files}, {} x {} {}{}{})",
            self.n,
            self.d,
            self.dtype,
            if self.order.is_some() { ", reordered" } else { "" },
            if self.affine.is_some() {
                ", standardized"
            } else {
                ""
            }
        )
    }
}

impl PartialEq for FileRows {
    fn eq(&self, other: &Self) -> bool {
        let place = |s: &Segment| (s.path.clone(), s.offset, s.first_row, s.rows);
        self.segments
            .iter()
            .map(place)
            .eq(other.segments.iter().map(place))
            && (self.n, self.d, self.dtype) == (other.n, other.d, other.dtype)
            && self.order == other.order
            && self.affine == other.affine
    }
}

impl FileRows {
    /// Open the 2-D float array of an `.npy` file (f32 or f16, C order) for reading by rows.
    pub fn open_npy(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| SolverError::io(path, e))?;
        let len = file.metadata().map_err(|e| SolverError::io(path, e))?.len();
        let header = read_npy_header(&mut std::io::BufReader::new(&file), len)
            .map_err(|reason| SolverError::bad_file(path, reason))?;
        let dtype = match (header.code.as_str(), header.size) {
            ("f", 4) => Storage::F32,
            ("f", 2) => Storage::F16,
            _ => {
                return Err(SolverError::bad_file(
                    path,
                    format!(
                        "streaming from disk reads float32 or float16 features, not '{}'",
                        header.descr
                    ),
                ))
            }
        };
        if header.shape.len() != 2 {
            return Err(SolverError::bad_file(
                path,
                format!(
                    "features must be a 2-D array [n, d], found shape {:?}",
                    header.shape
                ),
            ));
        }
        if header.fortran {
            return Err(SolverError::bad_file(
                path,
                "a Fortran-ordered array cannot be streamed by rows; save it in C order \
                 (numpy.ascontiguousarray) or load it into memory",
            ));
        }
        Ok(Self::one_file(
            file,
            path,
            header.data_offset,
            header.shape[0],
            header.shape[1],
            dtype,
        ))
    }

    /// Open the 2-D float tensor `name` (F32, F16 or BF16) of a safetensors file for reading
    /// by rows. Only the file's header is read.
    pub fn open_safetensors(path: &Path, name: &str) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| SolverError::io(path, e))?;
        let entry = safetensors_entry(&file, path, name)?;
        let dtype = match entry.dtype {
            Dtype::F32 => Storage::F32,
            Dtype::F16 => Storage::F16,
            Dtype::BF16 => Storage::BF16,
            other => {
                return Err(SolverError::bad_file(
                    path,
                    format!("streaming from disk reads F32, F16 or BF16 features, not {other:?}"),
                ))
            }
        };
        let [n, d] = entry.shape[..] else {
            return Err(SolverError::bad_file(
                path,
                format!(
                    "'{name}' must be a 2-D tensor [n, d], found shape {:?}",
                    entry.shape
                ),
            ));
        };
        Ok(Self::one_file(file, path, entry.start, n, d, dtype))
    }

    fn one_file(file: std::fs::File, path: &Path, offset: u64, n: usize, d: usize, dtype: Storage) -> Self {
        FileRows {
            segments: vec![Segment {
                file: Arc::new(file),
                path: path.to_path_buf(),
                offset,
                first_row: 0,
                rows: n,
            }]
            .into(),
            n,
            d,
            dtype,
            order: None,
            affine: None,
        }
    }

    /// The rows of several files one after another (the feature cache's shards): same width
    /// and element type, none reordered or standardized yet.
    pub fn concat(parts: Vec<FileRows>) -> Result<Self> {
        let Some(first) = parts.first() else {
            return Err(SolverError::Config("no feature files to read rows from".into()));
        };
        let (d, dtype) = (first.d, first.dtype);
        let mut segments = Vec::new();
        let mut n = 0;
        for part in parts {
            let path = &part.segments[0].path;
            if (part.d, part.dtype) != (d, dtype) {
                return Err(SolverError::bad_file(
                    path,
                    format!(
                        "rows of {} {} values, the others have {d} {dtype}",
                        part.d, part.dtype
                    ),
                ));
            }
            if part.order.is_some() || part.affine.is_some() {
                return Err(SolverError::Config(format!(
                    "{}: files are joined before their rows are reordered or standardized",
                    path.display()
                )));
            }
            for mut seg in part.segments.iter().cloned() {
                seg.first_row = n;
                n += seg.rows;
                segments.push(seg);
            }
        }
        Ok(FileRows {
            segments: segments.into(),
            n,
            d,
            dtype,
            order: None,
            affine: None,
        })
    }

    pub fn rows(&self) -> usize {
        self.n
    }

    pub fn cols(&self) -> usize {
        self.d
    }

    pub fn dtype(&self) -> Storage {
        self.dtype
    }

    /// Put the rows in a new order: row i becomes the current row `order[i]`.
    pub fn permute(&mut self, order: &[usize]) {
        assert_eq!(order.len(), self.n, "a permutation of the rows");
        self.select_rows(order);
    }

    /// Keep only the rows listed, in that order: row i becomes the current row `rows[i]`.
    pub fn select_rows(&mut self, rows: &[usize]) {
        let composed: Vec<usize> = match &self.order {
            Some(old) => rows.iter().map(|&i| old[i]).collect(),
            None => rows.to_vec(),
        };
        self.n = composed.len();
        self.order = Some(composed.into());
    }

    /// Standardize every value as it is read: `(v − mean_j) / std_j`.
    pub fn standardize(&mut self, mean: &[f32], std: &[f32]) {
        assert!(
            self.affine.is_none(),
            "{}: the rows are standardized once",
            self.segments[0].path.display()
        );
        self.affine = Some(Arc::new((mean.to_vec(), std.to_vec())));
    }

    /// Rows `first..first + out.len() / d` as f32 into `out`.
    ///
    /// A read error here (the file was truncated or removed while the path ran) cannot be
    /// recovered inside an epoch: it stops the process with the file's name and the reason.
    pub fn read_rows(&self, first: usize, out: &mut [f32]) {
        let d = self.d;
        let rows = out.len() / d.max(1);
        debug_assert_eq!(rows * d, out.len());
        let size = self.dtype.bytes();
        let mut bytes = vec![0u8; rows * d * size];
        let mut i = 0;
        while i < rows {
            // Consecutive rows of one file are read in one call (all of them without a
            // shuffle).
            let src = self.file_row(first + i);
            let seg = &self.segments[self.segments.partition_point(|s| s.first_row + s.rows <= src)];
            let seg_end = seg.first_row + seg.rows;
            let mut run = 1;
            while i + run < rows && src + run < seg_end && self.file_row(first + i + run) == src + run {
                run += 1;
            }
            let row = src - seg.first_row;
            let at = seg.offset + (row * d * size) as u64;
            let dst = &mut bytes[i * d * size..(i + run) * d * size];
            if let Err(e) = seg.file.read_exact_at(dst, at) {
                panic!(
                    "cannot read rows {row}..{} of {} while streaming it: {e}",
                    row + run,
                    seg.path.display()
                );
            }
            i += run;
        }
        match self.dtype {
            Storage::F32 => bytes
                .chunks_exact(4)
                .zip(out.iter_mut())
                .for_each(|(c, v)| *v = f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            Storage::F16 => le_u16(&bytes)
                .zip(out.iter_mut())
                .for_each(|(h, v)| *v = f16::from_bits(h).to_f32()),
            Storage::BF16 => le_u16(&bytes)
                .zip(out.iter_mut())
                .for_each(|(h, v)| *v = bf16::from_bits(h).to_f32()),
        }
        if let Some(affine) = &self.affine {
            let (mean, std) = (&affine.0, &affine.1);
            for row in out.chunks_exact_mut(d) {
                for ((v, m), s) in row.iter_mut().zip(mean).zip(std) {
                    *v = (*v - m) / s;
                }
            }
        }
    }

    fn file_row(&self, i: usize) -> usize {
        self.order.as_ref().map_or(i, |o| o[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{encode_npy, Array};

    #[test]
    fn rows_read_in_any_order_with_standardization() {
        let dir = std::env::temp_dir().join(format!("filerows-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.npy");
        let (n, d) = (7, 3);
        let x: Vec<f32> = (0..n * d).map(|v| v as f32 * 0.5 - 3.0).collect();
        std::fs::write(
            &path,
            encode_npy(&Array::Float {
                shape: vec![n, d],
                data: x.clone(),
            }),
        )
        .unwrap();
        let mut rows = FileRows::open_npy(&path).unwrap();
        let mut all = vec![0f32; n * d];
        rows.read_rows(0, &mut all);
        assert_eq!(all, x);
        let order = [3, 0, 6, 1, 2, 5, 4];
        rows.permute(&order);
        rows.permute(&[1, 0, 2, 3, 4, 5, 6]);
        let (mean, std) = (vec![1.0, -1.0, 0.5], vec![2.0, 0.5, 4.0]);
        rows.standardize(&mean, &std);
        let mut two = vec![0f32; 2 * d];
        rows.read_rows(1, &mut two);
        for (r, file_row) in [(0, 3), (1, 6)] {
            for j in 0..d {
                assert_eq!(two[r * d + j], (x[file_row * d + j] - mean[j]) / std[j]);
            }
        }
        // The same rows as two safetensors files (f32, then f16 of exact values) joined, read
        // across the join in a shuffled order.
        let halves = [(0, 4, "a.safetensors"), (4, 7, "b.safetensors")];
        let mut parts = Vec::new();
        for (lo, hi, name) in halves {
            let values = &x[lo * d..hi * d];
            let file = dir.join(name);
            let bytes = if lo == 0 {
                crate::io::encode_safetensors(&[("features", vec![hi - lo, d], values)], None).unwrap()
            } else {
                let half = Array::Half {
                    shape: vec![hi - lo, d],
                    data: crate::data::Features::F32(values.to_vec()).into_storage(Storage::F16),
                };
                crate::io::encode_arrays(&[("features", &half)], None).unwrap()
            };
            std::fs::write(&file, bytes).unwrap();
            parts.push(FileRows::open_safetensors(&file, "features").unwrap());
        }
        assert!(
            FileRows::concat(parts.clone()).is_err(),
            "f32 and f16 files do not join"
        );
        let f16_first = {
            let file = dir.join("a16.safetensors");
            let half = Array::Half {
                shape: vec![4, d],
                data: crate::data::Features::F32(x[..4 * d].to_vec()).into_storage(Storage::F16),
            };
            std::fs::write(
                &file,
                crate::io::encode_arrays(&[("features", &half)], None).unwrap(),
            )
            .unwrap();
            FileRows::open_safetensors(&file, "features").unwrap()
        };
        let mut joined = FileRows::concat(vec![f16_first, parts.pop().unwrap()]).unwrap();
        assert_eq!(
            (joined.rows(), joined.cols(), joined.dtype()),
            (n, d, Storage::F16)
        );
        joined.permute(&order);
        let mut all = vec![0f32; n * d];
        joined.read_rows(0, &mut all);
        for (i, &r) in order.iter().enumerate() {
            assert_eq!(
                &all[i * d..(i + 1) * d],
                &x[r * d..(r + 1) * d],
                "row {i} (file row {r})"
            );
        }
        assert!(FileRows::open_safetensors(&dir.join("a.safetensors"), "labels").is_err());

        std::fs::write(&path, b"\x93NUMPY\x01\x00\x10\x00{'descr': '<i8'}").unwrap();
        assert!(FileRows::open_npy(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
