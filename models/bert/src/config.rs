//! `config.json` of a Hugging Face BERT or RoBERTa checkpoint, checked into a [`ModelSpec`].

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{BertError, Result};

/// The fields of a Hugging Face `config.json` this crate reads. The architecture fields are
/// required: a missing one is a [`BertError::Config`] naming it, never a silent default.
#[derive(Debug, Clone, Deserialize)]
pub struct HfConfig {
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    /// transformers' default is `gelu` (the erf form).
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Default 0 for BERT, 1 for RoBERTa (transformers' defaults).
    #[serde(default)]
    pub pad_token_id: Option<usize>,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
    #[serde(default)]
    pub id2label: Option<BTreeMap<String, String>>,
    /// Dropout after the embeddings and each sublayer's dense output (transformers' default 0.1).
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    /// Dropout of the attention probabilities (default 0.1).
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    /// Dropout before the classification head; `null` or absent means `hidden_dropout_prob`.
    #[serde(default)]
    pub classifier_dropout: Option<f64>,
}

fn default_dropout() -> f64 {
    0.1
}

const REQUIRED: &[&str] = &[
    "model_type",
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
    "layer_norm_eps",
];

fn default_act() -> String {
    "gelu".into()
}

/// The dropout probabilities a checkpoint's config defines, as transformers applies them in
/// training: after the embeddings, on the attention probabilities, after each sublayer's dense
/// output, and before the classification head.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    pub hidden: f64,
    pub attention: f64,
    pub classifier: f64,
}

/// Which family of encoder a config describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// BERT (and MiniLM, a BERT): position ids `0..L`.
    Bert,
    /// RoBERTa and its relatives (XLM-R, CamemBERT): position ids count from `padding_idx + 1`,
    /// and padding tokens get `padding_idx`.
    Roberta,
}

/// The feed-forward activation (`hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `gelu`: `x·Φ(x)` with the exact erf, as transformers' `GELUActivation`.
    Gelu,
    /// `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`: the tanh approximation.
    GeluTanh,
    Relu,
}

/// A checked model description.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub activation: Activation,
    pub pad_token_id: usize,
    /// Dropout probabilities of training (the forward pass applies them only when asked).
    pub dropout: Dropout,
    /// Class names in index order, when the config has `id2label`.
    pub labels: Option<Vec<String>>,
}

impl ModelSpec {
    /// Read and check `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| BertError::Io {
            path: path.into(),
            source,
        })?;
        Self::from_json(&text, path)
    }

    /// Parse and check the text of a `config.json` (`path` is for messages).
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let bad = |message: String| BertError::Config {
            path: path.into(),
            message,
        };
        let unsupported = |message: String| BertError::Unsupported {
            path: path.into(),
            message,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        if !value.is_object() {
            return Err(bad("not a JSON object".into()));
        }
        // Name the field in every message (serde's type errors only give a line and column).
        for field in REQUIRED {
            match value.get(field) {
                None => return Err(bad(format!("missing field `{field}`"))),
                Some(v) if *field == "model_type" && !v.is_string() => {
                    return Err(bad(format!("`{field}` must be a string, found {v}")))
                }
                Some(v) if *field == "layer_norm_eps" && !v.is_number() => {
                    return Err(bad(format!("`{field}` must be a number, found {v}")))
                }
                Some(v) if !matches!(*field, "model_type" | "layer_norm_eps") && !v.is_u64() => {
                    return Err(bad(format!(
                        "`{field}` must be a non-negative integer, found {v}"
                    )))
                }
                Some(_) => {}
            }
        }
        let raw: HfConfig = serde_json::from_value(value)
            .map_err(|e| bad(format!("not a usable BERT/RoBERTa config: {e}")))?;
        let arch = match raw.model_type.as_str() {
            "bert" => Arch::Bert,
            "roberta" | "xlm-roberta" | "camembert" => Arch::Roberta,
            other => {
                return Err(unsupported(format!(
                    "model_type `{other}` (expected bert or roberta)"
                )))
            }
        };
        let activation = match raw.hidden_act.as_str() {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            other => return Err(unsupported(format!("hidden_act `{other}`"))),
        };
        match raw.position_embedding_type.as_deref() {
            None | Some("absolute") => {}
            Some(other) => {
                return Err(unsupported(format!(
                    "position_embedding_type `{other}` (only absolute)"
                )))
            }
        }
        for (name, value) in [
            ("vocab_size", raw.vocab_size),
            ("hidden_size", raw.hidden_size),
            ("num_hidden_layers", raw.num_hidden_layers),
            ("num_attention_heads", raw.num_attention_heads),
            ("intermediate_size", raw.intermediate_size),
            ("max_position_embeddings", raw.max_position_embeddings),
            ("type_vocab_size", raw.type_vocab_size),
        ] {
            if value == 0 {
                return Err(bad(format!("{name} must be positive")));
            }
        }
        if !raw.hidden_size.is_multiple_of(raw.num_attention_heads) {
            return Err(bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                raw.hidden_size, raw.num_attention_heads
            )));
        }
        if !(raw.layer_norm_eps.is_finite() && raw.layer_norm_eps > 0.0) {
            return Err(bad(format!(
                "layer_norm_eps {} must be positive",
                raw.layer_norm_eps
            )));
        }
        let pad_token_id = raw.pad_token_id.unwrap_or(match arch {
            Arch::Bert => 0,
            Arch::Roberta => 1,
        });
        if pad_token_id >= raw.vocab_size {
            return Err(bad(format!(
                "pad_token_id {pad_token_id} >= vocab_size {}",
                raw.vocab_size
            )));
        }
        if arch == Arch::Roberta && raw.max_position_embeddings <= pad_token_id + 2 {
            return Err(bad(format!(
                "max_position_embeddings {} leaves no positions after the padding offset {}",
                raw.max_position_embeddings,
                pad_token_id + 1
            )));
        }
        let classifier = raw.classifier_dropout.unwrap_or(raw.hidden_dropout_prob);
        for (name, p) in [
            ("hidden_dropout_prob", raw.hidden_dropout_prob),
            ("attention_probs_dropout_prob", raw.attention_probs_dropout_prob),
            ("classifier_dropout", classifier),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(bad(format!("{name} {p} must be in [0, 1)")));
            }
        }
        let dropout = Dropout {
            hidden: raw.hidden_dropout_prob,
            attention: raw.attention_probs_dropout_prob,
            classifier,
        };
        let labels = match raw.id2label {
            Some(map) => {
                let mut pairs = Vec::with_capacity(map.len());
                for (k, v) in map {
                    let i: usize = k
                        .parse()
                        .map_err(|_| bad(format!("id2label key `{k}` is not an index")))?;
                    pairs.push((i, v));
                }
                pairs.sort();
                if pairs.iter().enumerate().any(|(i, (k, _))| i != *k) {
                    return Err(bad("id2label keys are not 0..K".into()));
                }
                Some(pairs.into_iter().map(|(_, v)| v).collect())
            }
            None => None,
        };
        Ok(ModelSpec {
            arch,
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            num_layers: raw.num_hidden_layers,
            num_heads: raw.num_attention_heads,
            intermediate_size: raw.intermediate_size,
            max_position_embeddings: raw.max_position_embeddings,
            type_vocab_size: raw.type_vocab_size,
            layer_norm_eps: raw.layer_norm_eps,
            activation,
            pad_token_id,
            dropout,
            labels,
        })
    }

    /// The position id of the first token: 0 for BERT, `padding_idx + 1` for RoBERTa.
    pub fn position_offset(&self) -> usize {
        match self.arch {
            Arch::Bert => 0,
            Arch::Roberta => self.pad_token_id + 1,
        }
    }

    /// The longest input (special tokens included) the position table allows.
    pub fn max_tokens(&self) -> usize {
        self.max_position_embeddings - self.position_offset()
    }
}
