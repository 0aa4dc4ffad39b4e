//! Typed errors of the text encoder: every bad input is one of these, never a panic.

use std::path::PathBuf;

/// Why a model could not be loaded or a text not encoded.
#[derive(Debug, thiserror::Error)]
pub enum BertError {
    #[error(transparent)]
    Hub(#[from] model_hub::HubError),

    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// `config.json` is not valid JSON, lacks a required field or has an impossible value.
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },

    /// A valid config of a model this crate does not implement (e.g. relative position embeddings).
    #[error("{path}: unsupported model: {message}")]
    Unsupported { path: PathBuf, message: String },

    #[error("tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },

    /// The tokenizer can emit ids the embedding matrix has no row for.
    #[error(
        "the tokenizer {tokenizer} produces ids up to {max_id} but the model's embedding matrix has {rows} rows \
         (config vocab_size); tokenizer and weights do not belong together"
    )]
    VocabMismatch {
        tokenizer: PathBuf,
        max_id: u32,
        rows: usize,
    },

    #[error("weights {path}: {message}")]
    Weights { path: PathBuf, message: String },

    /// A text that is empty or whitespace only, under [`EmptyText::Reject`](crate::EmptyText::Reject).
    #[error("text #{index} is empty or whitespace only")]
    EmptyText { index: usize },

    #[error("{path}, line {line}: not valid UTF-8 ({message})")]
    InvalidUtf8 {
        path: PathBuf,
        line: usize,
        message: String,
    },

    #[error("tokenizing text #{index}: {message}")]
    Encode { index: usize, message: String },

    #[error("unknown feature mode `{0}` (expected cls, pooler, mean, mean-l2 or roberta-dense)")]
    UnknownMode(String),

    /// The feature mode needs a part the checkpoint does not have (a pooler, a RoBERTa head).
    #[error("feature mode `{mode}` needs {needs}, which {model} does not have")]
    ModeUnavailable {
        mode: String,
        needs: &'static str,
        model: String,
    },

    #[error("{model} has no sequence-classification head (`classifier.*` weights)")]
    NoHead { model: String },

    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A backend failure surfaced as a panic inside burn (e.g. no usable GPU adapter).
    #[error("backend failure during {during}: {message}")]
    Backend { during: &'static str, message: String },
}

pub type Result<T, E = BertError> = std::result::Result<T, E>;
