//! Typed errors of the solver crate: every bad input a user can hand us has a variant that says
//! what was wrong and where, so the CLI can print one readable line instead of panicking.

use std::path::PathBuf;

/// Everything that can go wrong while loading data, configuring or running a path.
#[derive(Debug, thiserror::Error)]
pub enum SolverError {
    #[error("invalid configuration: {0}")]
    Config(String),

    #[error("interrupted during λ #{index} (the layers of the λs before it are complete)")]
    Interrupted { index: usize },

    #[error("{split} split is empty (0 examples)")]
    EmptySplit { split: String },

    #[error("{split} split: {features} feature rows but {labels} labels")]
    CountMismatch {
        split: String,
        features: usize,
        labels: usize,
    },

    #[error("{split} split: feature value {value} at row {row}, column {col} is not finite")]
    NonFinite {
        split: String,
        row: usize,
        col: usize,
        value: f32,
    },

    #[error("{split} split: label {label} at row {row} is out of range 0..{classes}")]
    LabelOutOfRange {
        split: String,
        row: usize,
        label: i64,
        classes: usize,
    },

    #[error("{split} split: target value {value} at row {row}, column {col} is {why}")]
    BadTarget {
        split: String,
        row: usize,
        col: usize,
        value: f32,
        why: &'static str,
    },

    #[error("{split} split has {found} features but the training split has {expected}")]
    FeatureDimMismatch {
        split: String,
        expected: usize,
        found: usize,
    },

    #[error("{split} split has {found} target columns but the training split has {expected}")]
    TargetDimMismatch {
        split: String,
        expected: usize,
        found: usize,
    },

    #[error("sample weights: {0}")]
    SampleWeights(String),

    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "another process is writing into {dir} (it holds {lock}): wait for it to finish, or write elsewhere"
    )]
    Locked { dir: PathBuf, lock: PathBuf },

    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: {reason}")]
    BadFile { path: PathBuf, reason: String },

    #[error("checkpoint {path} does not belong to this problem: {reason}")]
    CheckpointMismatch { path: PathBuf, reason: String },

    /// The checkpoint is this problem's, but the layer files it vouches for are not there as
    /// it wrote them.
    #[error("cannot resume from {path}: {reason}; run again without --resume to compute the path anew")]
    CheckpointStale { path: PathBuf, reason: String },

    #[error("the solver diverged at lambda #{index} (lambda = {lambda:.4e}, lr = {lr:.3e}): the objective reached {objective:.6e}, above what the previous lambda's solution gives; lower --lr (or use --lr auto)")]
    Diverged {
        index: usize,
        lambda: f64,
        lr: f64,
        objective: f64,
    },

    #[error("backend: {0}")]
    Backend(String),
}

pub type Result<T, E = SolverError> = std::result::Result<T, E>;

impl SolverError {
    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SolverError::Write {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SolverError::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn bad_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        SolverError::BadFile {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
