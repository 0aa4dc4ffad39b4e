//! Host-side feature matrices and targets: validation (every bad value named by split, row and
//! column) and standardization with training statistics (design §1).

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use serde::{Deserialize, Serialize};

use crate::config::Family;
use crate::error::{Result, SolverError};
use crate::filerows::FileRows;

/// What the model predicts for each example.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// One class index per example (multinomial).
    Classes(Vec<i64>),
    /// `n × k` real targets, row-major (gaussian outputs or multilabel 0/1 indicators).
    Dense { values: Vec<f32>, k: usize },
}

impl Targets {
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes(l) => l.len(),
            Targets::Dense { values, k } => values.len() / (*k).max(1),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Precision in which a split's features are stored (on disk and in memory). The solver
/// computes in f32 whatever the storage: half-precision rows are converted block by block
/// (a batch, a chunk of a full pass, the screened columns), so X takes 2 bytes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    #[default]
    F32,
    F16,
    BF16,
}

impl Storage {
    /// Bytes per stored value.
    pub fn bytes(self) -> usize {
        match self {
            Storage::F32 => 4,
            Storage::F16 | Storage::BF16 => 2,
        }
    }
}

impl std::fmt::Display for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Storage::F32 => "f32",
            Storage::F16 => "f16",
            Storage::BF16 => "bf16",
        })
    }
}

impl std::str::FromStr for Storage {
    type Err = SolverError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" | "float32" => Ok(Storage::F32),
            "f16" | "float16" | "half" => Ok(Storage::F16),
            "bf16" | "bfloat16" => Ok(Storage::BF16),
            other => Err(SolverError::Config(format!(
                "unknown feature storage '{other}' (expected f32, f16 or bf16)"
            ))),
        }
    }
}

/// A split's `n × d` feature values, row-major, in their storage precision.
#[derive(Debug, Clone, PartialEq)]
pub enum Features {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    /// Rows left in their file and read as they are needed ([`FileRows`]); reads are whole
    /// rows.
    File(FileRows),
}

impl From<Vec<f32>> for Features {
    fn from(v: Vec<f32>) -> Self {
        Features::F32(v)
    }
}

impl Features {
    pub fn len(&self) -> usize {
        match self {
            Features::F32(v) => v.len(),
            Features::F16(v) => v.len(),
            Features::BF16(v) => v.len(),
            Features::File(f) => f.rows() * f.cols(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn storage(&self) -> Storage {
        match self {
            Features::F32(_) => Storage::F32,
            Features::F16(_) => Storage::F16,
            Features::BF16(_) => Storage::BF16,
            Features::File(f) => f.dtype(),
        }
    }

    /// Bytes the values take in memory (none for rows left in their file).
    pub fn bytes(&self) -> u64 {
        match self {
            Features::File(_) => 0,
            _ => self.len() as u64 * self.storage().bytes() as u64,
        }
    }

    /// The values when stored as f32.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match self {
            Features::F32(v) => Some(v),
            _ => None,
        }
    }

    /// Values `start..start + out.len()` converted to f32 into `out` (whole rows for
    /// [`Features::File`]).
    pub fn read_into(&self, start: usize, out: &mut [f32]) {
        let end = start + out.len();
        match self {
            Features::F32(v) => out.copy_from_slice(&v[start..end]),
            Features::F16(v) => v[start..end].convert_to_f32_slice(out),
            Features::BF16(v) => v[start..end].convert_to_f32_slice(out),
            Features::File(f) => {
                assert!(
                    start.is_multiple_of(f.cols()) && out.len().is_multiple_of(f.cols()),
                    "rows are read whole from a file"
                );
                f.read_rows(start / f.cols(), out)
            }
        }
    }

    /// Columns `columns` of rows `first_row..` (rows `width` values wide) as f32, `columns.len()`
    /// values per row of `out`: a screened problem's block read in place, without an `n × m`
    /// copy of X. A file's rows are read whole, then gathered.
    pub fn read_columns_into(&self, first_row: usize, width: usize, columns: &[usize], out: &mut [f32]) {
        fn gather<T: Copy>(
            rows: &[T],
            width: usize,
            columns: &[usize],
            out: &mut [f32],
            f32_of: impl Fn(T) -> f32,
        ) {
            for (row, o) in rows.chunks_exact(width).zip(out.chunks_exact_mut(columns.len())) {
                for (o, &j) in o.iter_mut().zip(columns) {
                    *o = f32_of(row[j]);
                }
            }
        }
        let m = columns.len();
        if m == 0 || width == 0 {
            return;
        }
        let rows = out.len() / m;
        let span = first_row * width..(first_row + rows) * width;
        match self {
            Features::F32(v) => gather(&v[span], width, columns, out, |x| x),
            Features::F16(v) => gather(&v[span], width, columns, out, f16::to_f32),
            Features::BF16(v) => gather(&v[span], width, columns, out, bf16::to_f32),
            Features::File(_) => {
                let mut whole = vec![0f32; rows * width];
                self.read_into(span.start, &mut whole);
                gather(&whole, width, columns, out, |x| x);
            }
        }
    }

    /// Values `start..end` as f32.
    pub fn to_f32(&self, start: usize, end: usize) -> Vec<f32> {
        let mut out = vec![0f32; end - start];
        self.read_into(start, &mut out);
        out
    }

    /// Every value as f32 (a copy unless stored as f32).
    pub fn into_f32(self) -> Vec<f32> {
        match self {
            Features::F32(v) => v,
            other => other.to_f32(0, other.len()),
        }
    }

    /// Convert to another storage precision (rounding to nearest when narrowing); rows left
    /// in a file are read into memory unless the file already holds that precision.
    pub fn into_storage(self, storage: Storage) -> Features {
        // A file's storage is its own precision: it stays a file then.
        if self.storage() == storage {
            return self;
        }
        let v = self.into_f32();
        match storage {
            Storage::F32 => Features::F32(v),
            Storage::F16 => Features::F16(v.iter().map(|&x| f16::from_f32(x)).collect()),
            Storage::BF16 => Features::BF16(v.iter().map(|&x| bf16::from_f32(x)).collect()),
        }
    }

    /// The columns `columns` of every row of width `d`, in the same precision (rows in a
    /// file come back as f32 in memory).
    pub fn select_columns(&self, d: usize, columns: &[usize]) -> Features {
        fn gather<T: Copy>(v: &[T], d: usize, columns: &[usize]) -> Vec<T> {
            v.chunks_exact(d)
                .flat_map(|row| columns.iter().map(move |&j| row[j]))
                .collect()
        }
        match self {
            Features::F32(v) => Features::F32(gather(v, d, columns)),
            Features::F16(v) => Features::F16(gather(v, d, columns)),
            Features::BF16(v) => Features::BF16(gather(v, d, columns)),
            Features::File(_) => {
                let mut out = Vec::with_capacity(self.len() / d.max(1) * columns.len());
                self.for_each_row(d, |row| out.extend(columns.iter().map(|&j| row[j])));
                Features::F32(out)
            }
        }
    }

    /// Append `other`'s values, converted to this storage precision (a file's rows are read).
    pub fn append(&mut self, other: Features) {
        let other = other.into_storage_in_memory().into_storage(self.storage());
        match (self, other) {
            (Features::F32(a), Features::F32(b)) => a.extend(b),
            (Features::F16(a), Features::F16(b)) => a.extend(b),
            (Features::BF16(a), Features::BF16(b)) => a.extend(b),
            _ => unreachable!("values are appended in memory, in one precision"),
        }
    }

    /// The values in memory (read from their file if they are there).
    fn into_storage_in_memory(self) -> Features {
        match self {
            Features::File(f) => {
                let storage = f.dtype();
                let v = Features::File(f).into_f32();
                Features::F32(v).into_storage(storage)
            }
            other => other,
        }
    }

    /// The first value that is not finite, with its position.
    pub fn first_non_finite(&self) -> Option<(usize, f32)> {
        match self {
            Features::File(f) => {
                let mut found = None;
                let mut at = 0;
                self.for_each_block(f.cols(), |block| {
                    if found.is_none() {
                        found = block
                            .iter()
                            .position(|v| !v.is_finite())
                            .map(|p| (at + p, block[p]));
                        at += block.len();
                    }
                });
                found
            }
            Features::F32(v) => v.iter().position(|x| !x.is_finite()).map(|p| (p, v[p])),
            Features::F16(v) => v.iter().position(|x| !x.is_finite()).map(|p| (p, v[p].to_f32())),
            Features::BF16(v) => v.iter().position(|x| !x.is_finite()).map(|p| (p, v[p].to_f32())),
        }
    }

    /// Each value's bit pattern (for fingerprints).
    pub fn for_each_bits(&self, mut f: impl FnMut(u64)) {
        match self {
            Features::F32(v) => v.iter().for_each(|x| f(x.to_bits() as u64)),
            Features::F16(v) => v.iter().for_each(|x| f(x.to_bits() as u64)),
            Features::BF16(v) => v.iter().for_each(|x| f(x.to_bits() as u64)),
            Features::File(rows) => self.for_each_block(rows.cols(), |block| {
                block.iter().for_each(|x| f(x.to_bits() as u64))
            }),
        }
    }

    /// Reorder rows of width `d` in place (see [`crate::engine::permute_rows`]).
    pub fn permute_rows(&mut self, d: usize, order: &[usize]) {
        use crate::engine::permute_rows;
        match self {
            Features::F32(v) => permute_rows(v, d, order),
            Features::F16(v) => permute_rows(v, d, order),
            Features::BF16(v) => permute_rows(v, d, order),
            Features::File(f) => f.permute(order),
        }
    }

    /// Keep only the rows (of width `d`) listed in `rows`, in that order: a copy of those rows
    /// in memory, an index over the rows of a file (which is never rewritten).
    pub fn select_rows(self, d: usize, rows: &[usize]) -> Features {
        fn gather<T: Copy>(v: &[T], d: usize, rows: &[usize]) -> Vec<T> {
            rows.iter()
                .flat_map(|&i| v[i * d..(i + 1) * d].iter().copied())
                .collect()
        }
        match self {
            Features::F32(v) => Features::F32(gather(&v, d, rows)),
            Features::F16(v) => Features::F16(gather(&v, d, rows)),
            Features::BF16(v) => Features::BF16(gather(&v, d, rows)),
            Features::File(mut f) => {
                f.select_rows(rows);
                Features::File(f)
            }
        }
    }

    /// Apply `f` to every row of width `d` as f32 values, writing the result back in the
    /// storage precision (f32 rows are changed in place). Not for rows in a file.
    fn map_rows(&mut self, d: usize, mut f: impl FnMut(&mut [f32])) {
        let mut row = vec![0f32; d];
        match self {
            Features::File(_) => unreachable!("rows in a file are transformed as they are read"),
            Features::F32(v) => v.chunks_exact_mut(d).for_each(f),
            Features::F16(v) => v.chunks_exact_mut(d).for_each(|r| {
                r.convert_to_f32_slice(&mut row);
                f(&mut row);
                r.convert_from_f32_slice(&row);
            }),
            Features::BF16(v) => v.chunks_exact_mut(d).for_each(|r| {
                r.convert_to_f32_slice(&mut row);
                f(&mut row);
                r.convert_from_f32_slice(&row);
            }),
        }
    }

    /// Visit every row of width `d` as f32 values.
    fn for_each_row(&self, d: usize, mut f: impl FnMut(&[f32])) {
        match self {
            Features::F32(v) => v.chunks_exact(d).for_each(f),
            _ => self.for_each_block(d, |block| block.chunks_exact(d).for_each(&mut f)),
        }
    }

    /// Visit the values in blocks of whole rows (about 1 M values each) as f32.
    fn for_each_block(&self, d: usize, mut f: impl FnMut(&[f32])) {
        let rows = ((1usize << 20) / d.max(1)).max(1);
        let n = self.len() / d.max(1);
        let mut block = vec![0f32; rows * d];
        for start in (0..n).step_by(rows) {
            let len = rows.min(n - start);
            let block = &mut block[..len * d];
            self.read_into(start * d, block);
            f(block);
        }
    }
}

/// One split (train, val or test): `n × d` features, row-major, and its targets.
#[derive(Debug, Clone)]
pub struct Split {
    pub name: String,
    pub x: Features,
    pub n: usize,
    pub d: usize,
    pub targets: Targets,
    /// Optional per-example weights w_i of the loss (default 1).
    pub weights: Option<Vec<f32>>,
}

impl Split {
    /// Build a split, checking that the feature matrix and the targets describe the same examples.
    pub fn new(name: &str, x: impl Into<Features>, n: usize, d: usize, targets: Targets) -> Result<Self> {
        let x = x.into();
        if Some(x.len()) != n.checked_mul(d) {
            return Err(SolverError::Config(format!(
                "{name} split: feature buffer holds {} values, not {n} x {d}",
                x.len()
            )));
        }
        if targets.len() != n {
            return Err(SolverError::CountMismatch {
                split: name.into(),
                features: n,
                labels: targets.len(),
            });
        }
        if n == 0 {
            return Err(SolverError::EmptySplit { split: name.into() });
        }
        Ok(Split {
            name: name.into(),
            x,
            n,
            d,
            targets,
            weights: None,
        })
    }

    /// The same split with its features stored in `storage` precision.
    pub fn into_storage(mut self, storage: Storage) -> Self {
        self.x = self.x.into_storage(storage);
        self
    }

    /// Attach per-example loss weights (non-negative, finite, not all zero).
    pub fn with_weights(mut self, w: Vec<f32>) -> Result<Self> {
        if w.len() != self.n {
            return Err(SolverError::SampleWeights(format!(
                "{} weights for {} examples of the {} split",
                w.len(),
                self.n,
                self.name
            )));
        }
        if let Some((i, v)) = w.iter().enumerate().find(|(_, v)| !(v.is_finite() && **v >= 0.0)) {
            return Err(SolverError::SampleWeights(format!(
                "weight {v} of example {i} is negative or not finite"
            )));
        }
        if w.iter().all(|v| *v == 0.0) {
            return Err(SolverError::SampleWeights("all weights are zero".into()));
        }
        self.weights = Some(w);
        Ok(self)
    }

    /// Number of outputs K the targets imply (for class labels: max label + 1).
    pub fn implied_outputs(&self) -> usize {
        match &self.targets {
            Targets::Classes(l) => l.iter().copied().max().map_or(0, |m| (m.max(0) + 1) as usize),
            Targets::Dense { k, .. } => *k,
        }
    }

    /// Check every value: finite features, labels in `0..k`, targets that fit the family.
    pub fn validate(&self, family: Family, k: usize, d: usize) -> Result<()> {
        let split = || self.name.clone();
        if self.d != d {
            return Err(SolverError::FeatureDimMismatch {
                split: split(),
                expected: d,
                found: self.d,
            });
        }
        if let Some((pos, value)) = self.x.first_non_finite() {
            return Err(SolverError::NonFinite {
                split: split(),
                row: pos / self.d,
                col: pos % self.d,
                value,
            });
        }
        match (&self.targets, family) {
            (Targets::Classes(labels), Family::Multinomial) => {
                if let Some((row, &label)) =
                    labels.iter().enumerate().find(|(_, &l)| l < 0 || l as usize >= k)
                {
                    return Err(SolverError::LabelOutOfRange {
                        split: split(),
                        row,
                        label,
                        classes: k,
                    });
                }
            }
            (Targets::Classes(_), fam) => {
                return Err(SolverError::Config(format!(
                    "{} split: the {fam:?} family needs an n x K target matrix, not class labels",
                    self.name
                )))
            }
            (Targets::Dense { .. }, Family::Multinomial) => {
                return Err(SolverError::Config(format!(
                    "{} split: the multinomial family needs integer class labels, not a target matrix",
                    self.name
                )))
            }
            (Targets::Dense { values, k: kk }, fam) => {
                if *kk != k {
                    return Err(SolverError::TargetDimMismatch {
                        split: split(),
                        expected: k,
                        found: *kk,
                    });
                }
                for (pos, &v) in values.iter().enumerate() {
                    let why = if !v.is_finite() {
                        Some("not finite")
                    } else if fam == Family::Multilabel && !(0.0..=1.0).contains(&v) {
                        Some("outside [0, 1] (multilabel targets are probabilities)")
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        return Err(SolverError::BadTarget {
                            split: split(),
                            row: pos / kk,
                            col: pos % kk,
                            value: v,
                            why,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Targets as an `n × k` row-major matrix (one-hot for class labels).
    pub fn target_matrix(&self, k: usize) -> Vec<f32> {
        match &self.targets {
            Targets::Classes(labels) => {
                let mut y = vec![0.0f32; labels.len() * k];
                for (i, &l) in labels.iter().enumerate() {
                    y[i * k + l as usize] = 1.0;
                }
                y
            }
            Targets::Dense { values, .. } => values.clone(),
        }
    }
}

/// Training statistics used to standardize every split; stored with each layer so raw features
/// can be fed at inference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    pub mean: Vec<f32>,
    /// Standard deviation over n (not n − 1); values below [`Standardizer::MIN_STD`] are set to 1.
    pub std: Vec<f32>,
    /// Features whose training std was below the threshold (constant features).
    pub clamped: Vec<usize>,
}

impl Standardizer {
    pub const MIN_STD: f64 = 1e-5;

    /// Mean and std of each column of the training split, accumulated in f64.
    pub fn fit(train: &Split) -> Self {
        let (n, d) = (train.n, train.d);
        let mut mean = vec![0f64; d];
        train.x.for_each_row(d, |row| {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64;
            }
        });
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut var = vec![0f64; d];
        train.x.for_each_row(d, |row| {
            for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
                let c = v as f64 - m;
                *s += c * c;
            }
        });
        let mut clamped = Vec::new();
        let std = var
            .iter()
            .enumerate()
            .map(|(j, s)| {
                let sd = (s / n as f64).sqrt();
                if sd < Self::MIN_STD {
                    clamped.push(j);
                    1.0
                } else {
                    sd as f32
                }
            })
            .collect();
        Standardizer {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std,
            clamped,
        }
    }

    /// The identity transform (for features that are already standardized).
    pub fn identity(d: usize) -> Self {
        Standardizer {
            mean: vec![0.0; d],
            std: vec![1.0; d],
            clamped: Vec::new(),
        }
    }

    /// Standardize a split in place: `(x − mean) / std`, computed in f32 and stored in the
    /// split's precision.
    pub fn apply(&self, split: &mut Split) {
        let d = self.mean.len();
        if let Features::File(rows) = &mut split.x {
            rows.standardize(&self.mean, &self.std);
            return;
        }
        split.x.map_rows(d, |row| {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s;
            }
        });
    }

    /// Standardize every split of a problem (train, val, test) in place.
    pub fn apply_to_problem(&self, problem: &mut Problem) {
        for s in [
            Some(&mut problem.train),
            problem.val.as_mut(),
            problem.test.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            self.apply(s);
        }
    }
}

/// The splits of one problem. Validation happens once, here.
#[derive(Debug, Clone)]
pub struct Problem {
    pub family: Family,
    pub train: Split,
    pub val: Option<Split>,
    pub test: Option<Split>,
    /// Number of outputs K.
    pub k: usize,
}

/// Classes implied by the labels (max + 1) beyond this many times the distinct labels present
/// (and beyond [`IMPLIED_CLASSES_FREE`]) mean an absurd label, not a real class count: a one-hot
/// of a billion classes grows until the machine runs out of memory.
pub const IMPLIED_CLASSES_PER_PRESENT: usize = 16;
/// Implied class counts up to this are always accepted (ImageNet's 1,000 with a few present).
pub const IMPLIED_CLASSES_FREE: usize = 1024;

/// An error naming `--num-classes` when the largest label implies far more classes than occur.
fn check_implied_classes(train: &Split, k: usize) -> Result<()> {
    let Targets::Classes(labels) = &train.targets else {
        return Ok(());
    };
    if k <= IMPLIED_CLASSES_FREE {
        return Ok(());
    }
    let mut present: Vec<i64> = labels.clone();
    present.sort_unstable();
    present.dedup();
    if k <= IMPLIED_CLASSES_PER_PRESENT.saturating_mul(present.len()) {
        return Ok(());
    }
    let (row, max) = labels
        .iter()
        .enumerate()
        .max_by_key(|(_, l)| **l)
        .map(|(i, l)| (i, *l))
        .unwrap_or_default();
    Err(SolverError::Config(format!(
        "{} split: label {max} at row {row} implies {k} classes, but only {} distinct labels occur; number the classes 0..K-1, or give --num-classes {k} if there really are that many",
        train.name,
        present.len()
    )))
}

impl Problem {
    /// Assemble and validate a problem. `k` defaults to what the training labels imply (max
    /// label + 1 over all splits for class labels).
    pub fn new(
        family: Family,
        train: Split,
        val: Option<Split>,
        test: Option<Split>,
        k: Option<usize>,
    ) -> Result<Self> {
        let d = train.d;
        if d == 0 {
            return Err(SolverError::Config("the training split has 0 features".into()));
        }
        let k = match k {
            Some(k) => k,
            None => {
                let k = train.implied_outputs();
                check_implied_classes(&train, k)?;
                k
            }
        };
        if k == 0 {
            return Err(SolverError::Config("no outputs: K = 0".into()));
        }
        train.validate(family, k, d)?;
        if let Targets::Classes(labels) = &train.targets {
            // Not a k-long table: k may be huge (the memory plan refuses it later).
            if labels.iter().all(|&l| l == labels[0]) {
                return Err(SolverError::Config(format!(
                    "the training split holds a single class ({}); a classifier needs at least 2",
                    labels[0]
                )));
            }
        }
        for s in [&val, &test].into_iter().flatten() {
            s.validate(family, k, d)?;
        }
        Ok(Problem {
            family,
            train,
            val,
            test,
            k,
        })
    }

    pub fn d(&self) -> usize {
        self.train.d
    }

    /// Standardize every split in place with the training split's mean and std (`fit`), or
    /// keep the features as they are (the identity); returns the standardizer the layers carry.
    /// The one place the CLI, the main job and the Python package prepare a problem, so the
    /// same arrays give the same path everywhere.
    pub fn standardize(&mut self, fit: bool) -> Standardizer {
        let standardizer = if fit {
            Standardizer::fit(&self.train)
        } else {
            Standardizer::identity(self.d())
        };
        standardizer.apply_to_problem(self);
        standardizer
    }
}
