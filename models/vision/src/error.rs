//! Typed errors of the vision crate. Loading errors name the file and the tensor.

use std::path::PathBuf;

/// Why a backbone could not be loaded, or an image preprocessed.
#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is not a checkpoint this crate reads ({why}); expected safetensors or a PyTorch \
         .pth/.pt/.bin saved with torch.save"
    )]
    NotACheckpoint { path: PathBuf, why: String },
    #[error("{path} is truncated or corrupt ({detail}); download or copy it again")]
    Truncated { path: PathBuf, detail: String },
    #[error(
        "{path}: the pickle asks for the Python global `{module}.{name}`, which a weights file does \
         not need; it was refused without running anything (save `model.state_dict()` with \
         torch.save, or convert the file to safetensors)"
    )]
    UnknownGlobal {
        path: PathBuf,
        module: String,
        name: String,
    },
    #[error("{path}: tensor `{name}` is missing for {arch}{}", more_note(*more))]
    MissingTensor {
        path: PathBuf,
        arch: String,
        name: String,
        more: usize,
    },
    #[error("{path}: unexpected tensor `{name}` for {arch}{}", more_note(*more))]
    UnexpectedTensor {
        path: PathBuf,
        arch: String,
        name: String,
        more: usize,
    },
    #[error("{path}: tensor `{name}` has shape {found:?}, {arch} expects {expected:?}")]
    WrongShape {
        path: PathBuf,
        arch: String,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{path}: tensor `{name}` has dtype {dtype}, expected a floating-point tensor")]
    WrongDtype {
        path: PathBuf,
        name: String,
        dtype: String,
    },
    #[error(transparent)]
    Hub(#[from] model_hub::HubError),
    #[error(
        "unknown architecture `{0}` (expected resnet18, resnet34, resnet50, resnet101, resnet152 or \
         efficientnet-lite0)"
    )]
    UnknownArch(String),
    #[error("unknown feature mode `{0}` (expected post-relu or pre-relu)")]
    UnknownFeatureMode(String),
    #[error("image {path}: {why}")]
    Image { path: PathBuf, why: String },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("backend: {0}")]
    Backend(String),
}

fn more_note(more: usize) -> String {
    match more {
        0 => String::new(),
        1 => " (and 1 more)".into(),
        n => format!(" (and {n} more)"),
    }
}

pub type Result<T, E = VisionError> = std::result::Result<T, E>;
