//! BERT and RoBERTa text encoders on burn, as backbones for sparse decision layers (design §1):
//! a Hugging Face checkpoint folder or hub id in, `[N, D]` feature rows (or class logits) out.
//!
//! ```no_run
//! use bert::{FeatureMode, TextEncoder};
//! use model_hub::ModelRef;
//!
//! let device = burn::tensor::Device::flex();
//! let model = ModelRef::parse("sentence-transformers/all-MiniLM-L6-v2")?;
//! let encoder = TextEncoder::load(&model, &device)?;
//! let features = encoder.features(&["a gorgeous film", "dull"], FeatureMode::MeanL2, 64)?;
//! assert_eq!(features.dim, 384);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What it reads from the model folder: `config.json` (architecture: hidden size, layers, heads,
//! intermediate size, vocabulary, positions, token types, layer-norm eps, `hidden_act`,
//! `pad_token_id`, `id2label`), `tokenizer.json`, and `model.safetensors` or else
//! `pytorch_model.bin` (parsed, never unpickled by Python code). Checkpoint keys may be bare
//! (`embeddings.*`, `encoder.*`: sentence-transformers' MiniLM), or under `bert.` / `roberta.`
//! with `classifier.*` heads (`BertForSequenceClassification`, `RobertaForSequenceClassification`).
//! The int64 `embeddings.position_ids` buffer and heads this crate does not use (masked-LM) are
//! ignored. Beside `config.json`, sentence-transformers' `sentence_bert_config.json`
//! (`max_seq_length`) and `modules.json` (pooling, normalization) set the maximum length and the
//! [default feature mode](TextEncoder::default_mode).
//!
//! Texts:
//! * **Truncation**: every text is cut to [`TextEncoder::max_length`] tokens, special tokens
//!   included: `max_seq_length` of `sentence_bert_config.json` when present, else
//!   `max_position_embeddings` (minus RoBERTa's `padding_idx + 1` offset: 512 for roberta-base).
//!   The indices of truncated texts are in [`Features::truncated`], and a one-line warning goes
//!   to stderr unless [`LoadOptions::warn_truncation`] is off.
//! * **Empty or whitespace-only texts** are encoded exactly as transformers encodes them (BERT:
//!   `[CLS] [SEP]`; RoBERTa: `<s> </s>` or the byte-level tokens of the whitespace) and listed in
//!   [`Features::empty`]; with [`EmptyText::Reject`] they are an error instead.
//! * Batches are formed after sorting texts by token count (less padding); rows come back in the
//!   caller's order.

mod config;
mod error;
mod model;
pub mod synthetic;
mod weights;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use burn::tensor::{Device, Int, Tensor, TensorData};
use model_hub::ModelRef;
use tokenizers::{Encoding, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

pub use config::{Activation, Arch, Dropout, ModelSpec};
pub use error::{BertError, Result};
pub use model::{BertNet, Parts, Pooler, RobertaHead};
pub use weights::{checkpoint_name, sha256_file};

/// How a text becomes one feature row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeatureMode {
    /// The last layer's hidden state of the first token (`[CLS]` / `<s>`).
    Cls,
    /// BERT's pooler: `tanh(pooler.dense(h_CLS))`.
    Pooler,
    /// Mean of the last hidden states over the attention mask.
    Mean,
    /// [`Mean`](FeatureMode::Mean), then L2-normalized: sentence-transformers' recipe for MiniLM.
    MeanL2,
    /// RoBERTa classifiers: `tanh(classifier.dense(h_CLS))`, the input of `classifier.out_proj`.
    RobertaDense,
}

impl FeatureMode {
    pub const ALL: [FeatureMode; 5] = [
        FeatureMode::Cls,
        FeatureMode::Pooler,
        FeatureMode::Mean,
        FeatureMode::MeanL2,
        FeatureMode::RobertaDense,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FeatureMode::Cls => "cls",
            FeatureMode::Pooler => "pooler",
            FeatureMode::Mean => "mean",
            FeatureMode::MeanL2 => "mean-l2",
            FeatureMode::RobertaDense => "roberta-dense",
        }
    }
}

impl fmt::Display for FeatureMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FeatureMode {
    type Err = BertError;
    fn from_str(s: &str) -> Result<Self> {
        FeatureMode::ALL
            .into_iter()
            .find(|m| m.name() == s.trim())
            .ok_or_else(|| BertError::UnknownMode(s.to_string()))
    }
}

/// What to do with a text that is empty or whitespace only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmptyText {
    /// Encode it as transformers does (BERT: `[CLS] [SEP]`) and list it in [`Features::empty`].
    #[default]
    Encode,
    /// Fail with [`BertError::EmptyText`].
    Reject,
}

/// Options of [`TextEncoder::load_with`].
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Maximum tokens per text, special tokens included (default: see the crate docs). Must not
    /// exceed what the position table allows.
    pub max_length: Option<usize>,
    pub empty: EmptyText,
    /// Print one warning line per call that truncated texts (default on).
    pub warn_truncation: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            max_length: None,
            empty: EmptyText::Encode,
            warn_truncation: true,
        }
    }
}

/// Feature rows (or logits) of N texts, in the caller's order.
#[derive(Debug, Clone)]
pub struct Features {
    /// `[n, dim]` row-major.
    pub data: Vec<f32>,
    pub n: usize,
    pub dim: usize,
    /// Indices of the texts that were cut to [`TextEncoder::max_length`] tokens.
    pub truncated: Vec<usize>,
    /// Indices of the texts that were empty or whitespace only.
    pub empty: Vec<usize>,
}

impl Features {
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// One tokenized text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    /// Whether the text had more tokens than [`TextEncoder::max_length`].
    pub truncated: bool,
}

/// Token ids, attention mask and token type ids of a padded batch, each `[B, L]`.
pub struct Batch {
    pub input_ids: Tensor<2, Int>,
    pub attention_mask: Tensor<2, Int>,
    pub token_type_ids: Tensor<2, Int>,
}

impl Batch {
    /// `encodings` padded with `pad_token_id` to the longest of them (mask 0 on the padding)
    /// and uploaded to `device`.
    pub fn pad(encodings: &[&Encoded], pad_token_id: usize, device: &Device) -> Batch {
        let b = encodings.len();
        let l = encodings.iter().map(|e| e.ids.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![pad_token_id as i64; b * l];
        let mut mask = vec![0i64; b * l];
        let mut types = vec![0i64; b * l];
        for (r, e) in encodings.iter().enumerate() {
            for (c, (&id, &t)) in e.ids.iter().zip(&e.type_ids).enumerate() {
                ids[r * l + c] = id as i64;
                mask[r * l + c] = 1;
                types[r * l + c] = t as i64;
            }
        }
        let up = |v: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(v, [b, l]), device);
        Batch {
            input_ids: up(ids),
            attention_mask: up(mask),
            token_type_ids: up(types),
        }
    }
}

/// A loaded encoder: network, tokenizer and what is known about the checkpoint.
pub struct TextEncoder {
    net: BertNet,
    spec: ModelSpec,
    tokenizer: Tokenizer,
    device: Device,
    max_length: usize,
    name: String,
    weights_path: PathBuf,
    fingerprint: String,
    /// sha256 of config.json and tokenizer.json: what turns text into the network's input.
    inputs_fingerprint: String,
    default_mode: FeatureMode,
    options: LoadOptions,
}

impl fmt::Debug for TextEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TextEncoder")
            .field("name", &self.name)
            .field("arch", &self.spec.arch)
            .field("hidden_size", &self.spec.hidden_size)
            .field("layers", &self.spec.num_layers)
            .field("max_length", &self.max_length)
            .field("weights", &self.weights_path)
            .finish()
    }
}

/// What sentence-transformers files say, when they are there.
#[derive(Default)]
struct SentenceTransformers {
    max_seq_length: Option<usize>,
    mode: Option<FeatureMode>,
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|source| BertError::Io {
        path: path.into(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| BertError::Config {
        path: path.into(),
        message: e.to_string(),
    })
}

/// A file of the model that may be absent: beside `config.json` first (a local folder or the
/// hub snapshot), then through the hub cache/download for hub ids; absence is not an error.
fn optional_file(model: &ModelRef, beside: &Path, name: &str) -> Option<PathBuf> {
    let local = beside.join(name);
    if local.is_file() {
        return Some(local);
    }
    match model {
        ModelRef::Hub { .. } => model.file(name).ok(),
        ModelRef::Local(_) => None,
    }
}

fn sentence_transformers(model: &ModelRef, dir: &Path) -> Result<SentenceTransformers> {
    let mut st = SentenceTransformers::default();
    if let Some(p) = optional_file(model, dir, "sentence_bert_config.json") {
        let v = read_json(&p)?;
        st.max_seq_length = v
            .get("max_seq_length")
            .and_then(|m| m.as_u64())
            .map(|m| m as usize);
    }
    let Some(p) = optional_file(model, dir, "modules.json") else {
        return Ok(st);
    };
    let modules = read_json(&p)?;
    let modules = modules.as_array().cloned().unwrap_or_default();
    let kind = |m: &serde_json::Value| {
        m.get("type")
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let normalize = modules.iter().any(|m| kind(m).ends_with("models.Normalize"));
    if let Some(pooling) = modules.iter().find(|m| kind(m).ends_with("models.Pooling")) {
        let sub = pooling
            .get("path")
            .and_then(|p| p.as_str())
            .unwrap_or("1_Pooling");
        if let Some(p) = optional_file(model, dir, &format!("{sub}/config.json")) {
            let cfg = read_json(&p)?;
            let flag = |k: &str| cfg.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
            st.mode = if flag("pooling_mode_mean_tokens") {
                Some(if normalize {
                    FeatureMode::MeanL2
                } else {
                    FeatureMode::Mean
                })
            } else if flag("pooling_mode_cls_token") && !normalize {
                Some(FeatureMode::Cls)
            } else {
                None
            };
        }
    }
    Ok(st)
}

/// Read a text file as lines (LF or CRLF), failing with the 1-based line number of the first
/// line that is not valid UTF-8. A final newline does not add an empty line.
pub fn read_lines(path: impl AsRef<Path>) -> Result<Vec<String>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| BertError::Io {
        path: path.into(),
        source,
    })?;
    let mut lines = Vec::new();
    let mut parts: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if parts.last().is_some_and(|l| l.is_empty()) {
        parts.pop();
    }
    for (i, line) in parts.into_iter().enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = std::str::from_utf8(line).map_err(|e| BertError::InvalidUtf8 {
            path: path.into(),
            line: i + 1,
            message: format!("invalid byte at column {}", e.valid_up_to() + 1),
        })?;
        lines.push(text.to_string());
    }
    Ok(lines)
}

/// The network of a checkpoint folder without its tokenizer: the spec from `config.json` and
/// the weights beside it (`model.safetensors` or `pytorch_model.bin`). Training steps and
/// exports read the network alone.
pub fn load_network(dir: &Path, device: &Device) -> Result<(ModelSpec, BertNet)> {
    let spec = ModelSpec::from_file(&dir.join("config.json"))?;
    let weights_path = ["model.safetensors", "pytorch_model.bin"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
        .ok_or_else(|| BertError::Io {
            path: dir.join("model.safetensors"),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no model.safetensors or pytorch_model.bin",
            ),
        })?;
    let inspection = weights::inspect(&weights_path, &spec)?;
    let mut net = weights::catch("building the network", || {
        BertNet::init(&spec, inspection.parts, device)
    })?;
    weights::load(&mut net, &weights_path, &inspection)?;
    Ok((spec, net))
}

impl TextEncoder {
    /// Load a model folder or hub id with default [`LoadOptions`].
    pub fn load(model: &ModelRef, device: &Device) -> Result<Self> {
        Self::load_with(model, device, LoadOptions::default())
    }

    pub fn load_with(model: &ModelRef, device: &Device, options: LoadOptions) -> Result<Self> {
        let config_path = model.file("config.json")?;
        let spec = ModelSpec::from_file(&config_path)?;
        let dir = config_path.parent().map(Path::to_path_buf).unwrap_or_default();
        let tokenizer_path = model.file("tokenizer.json")?;
        let weights_path = model.first_of(&["model.safetensors", "pytorch_model.bin"])?;
        let st = sentence_transformers(model, &dir)?;

        let limit = spec.max_tokens();
        let max_length = match options.max_length.or(st.max_seq_length) {
            Some(n) if n < 2 => {
                return Err(BertError::InvalidArgument(format!(
                    "max_length {n} leaves no room for a token"
                )));
            }
            Some(n) if options.max_length.is_some() && n > limit => {
                return Err(BertError::InvalidArgument(format!(
                    "max_length {n} exceeds the {limit} tokens the position table of {} allows",
                    model.display_name()
                )));
            }
            Some(n) => n.min(limit),
            None => limit,
        };
        let tokenizer = load_tokenizer(&tokenizer_path, &spec, max_length)?;

        let inspection = weights::inspect(&weights_path, &spec)?;
        let mut net = weights::catch("building the network", || {
            BertNet::init(&spec, inspection.parts, device)
        })?;
        weights::load(&mut net, &weights_path, &inspection)?;
        let fingerprint = sha256_file(&weights_path)?;
        let inputs_fingerprint = format!(
            "config.json {} tokenizer.json {}",
            sha256_file(&config_path)?,
            sha256_file(&tokenizer_path)?
        );

        let default_mode = st.mode.unwrap_or(if inspection.parts.roberta_head.is_some() {
            FeatureMode::RobertaDense
        } else if inspection.parts.pooler && inspection.parts.bert_classifier.is_some() {
            FeatureMode::Pooler
        } else {
            FeatureMode::Cls
        });
        Ok(TextEncoder {
            net,
            spec,
            tokenizer,
            device: device.clone(),
            max_length,
            name: model.display_name(),
            weights_path,
            fingerprint,
            inputs_fingerprint,
            default_mode,
            options,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn net(&self) -> &BertNet {
        &self.net
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Maximum tokens per text, special tokens included.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    pub fn weights_path(&self) -> &Path {
        &self.weights_path
    }

    /// Hex sha256 of the weights file (for feature-cache manifests).
    pub fn weights_fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    /// sha256 of the model's config.json and tokenizer.json: a feature cache keyed on the
    /// weights alone would not notice a changed tokenizer or maximum length.
    pub fn inputs_fingerprint(&self) -> &str {
        &self.inputs_fingerprint
    }

    /// The mode the model was made for: sentence-transformers' pooling when its files say so,
    /// `roberta-dense` for a RoBERTa classifier, `pooler` for a BERT classifier, else `cls`.
    pub fn default_mode(&self) -> FeatureMode {
        self.default_mode
    }

    /// Whether `mode` can be computed with this checkpoint.
    pub fn supports(&self, mode: FeatureMode) -> bool {
        match mode {
            FeatureMode::Pooler => self.net.pooler.is_some(),
            FeatureMode::RobertaDense => self.net.roberta_head.is_some(),
            _ => true,
        }
    }

    /// Width of a feature row: the hidden size, for every mode.
    pub fn feature_dim(&self, _mode: FeatureMode) -> usize {
        self.spec.hidden_size
    }

    /// Class names from `id2label`, when the config has them.
    pub fn labels(&self) -> Option<&[String]> {
        self.spec.labels.as_deref()
    }

    /// Number of classes of the classification head, if any.
    pub fn num_classes(&self) -> Option<usize> {
        self.head().map(|(_, b)| b.len())
    }

    /// The dense head `(weight [K, D] row-major, bias [K])` and the feature mode it reads:
    /// BERT's `classifier` on `pooler` features, RoBERTa's `classifier.out_proj` on
    /// `roberta-dense` features. `logits = weight · feature + bias`.
    pub fn head(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        self.head_with_mode().map(|(w, b, _)| (w, b))
    }

    /// [`head`](Self::head) with the feature mode its input is.
    pub fn head_with_mode(&self) -> Option<(Vec<f32>, Vec<f32>, FeatureMode)> {
        let (linear, mode) = match (&self.net.classifier, &self.net.roberta_head) {
            (Some(c), _) => (c, FeatureMode::Pooler),
            (None, Some(h)) => (&h.out_proj, FeatureMode::RobertaDense),
            (None, None) => return None,
        };
        // burn stores Linear weights as [in, out]; the head is [out, in].
        let weight = linear.weight.val().transpose().try_into_vec_as::<f32>().ok()?;
        let bias = match &linear.bias {
            Some(b) => b.val().try_into_vec_as::<f32>().ok()?,
            None => vec![0.0; linear.weight.dims()[1]],
        };
        Some((weight, bias, mode))
    }

    /// Tokenize texts (truncated to [`max_length`](Self::max_length), not padded).
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Encoded>> {
        if self.options.empty == EmptyText::Reject {
            if let Some(index) = texts.iter().position(|t| t.trim().is_empty()) {
                return Err(BertError::EmptyText { index });
            }
        }
        let encodings: Vec<Encoding> = match self.tokenizer.encode_batch(texts.to_vec(), true) {
            Ok(e) => e,
            Err(_) => {
                // Find which text failed.
                let mut out = Vec::with_capacity(texts.len());
                for (index, t) in texts.iter().enumerate() {
                    out.push(self.tokenizer.encode(*t, true).map_err(|e| BertError::Encode {
                        index,
                        message: e.to_string(),
                    })?);
                }
                out
            }
        };
        let mut out = Vec::with_capacity(encodings.len());
        for (index, e) in encodings.into_iter().enumerate() {
            let ids = e.get_ids().to_vec();
            let type_ids = e.get_type_ids().to_vec();
            if let Some(&bad) = ids.iter().find(|&&i| i as usize >= self.spec.vocab_size) {
                return Err(BertError::Encode {
                    index,
                    message: format!(
                        "token id {bad} is outside the embedding matrix ({} rows)",
                        self.spec.vocab_size
                    ),
                });
            }
            if let Some(&bad) = type_ids
                .iter()
                .find(|&&i| i as usize >= self.spec.type_vocab_size)
            {
                return Err(BertError::Encode {
                    index,
                    message: format!(
                        "token type {bad} >= type_vocab_size {}",
                        self.spec.type_vocab_size
                    ),
                });
            }
            out.push(Encoded {
                ids,
                type_ids,
                truncated: !e.get_overflowing().is_empty(),
            });
        }
        Ok(out)
    }

    /// Pad encodings to their longest and upload them as a batch.
    pub fn batch(&self, encodings: &[&Encoded]) -> Batch {
        Batch::pad(encodings, self.spec.pad_token_id, &self.device)
    }

    /// Last hidden states `[B, L, D]` (see [`BertNet::forward`]); the building block for
    /// perturbation methods such as LIME that batch their own token ids.
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        token_type_ids: Option<Tensor<2, Int>>,
    ) -> Tensor<3> {
        self.net
            .forward(&self.spec, input_ids, attention_mask, token_type_ids)
    }

    fn check_mode(&self, mode: FeatureMode) -> Result<()> {
        let needs = match mode {
            FeatureMode::Pooler if self.net.pooler.is_none() => "a pooler (`pooler.dense` weights)",
            FeatureMode::RobertaDense if self.net.roberta_head.is_none() => {
                "a RoBERTa classification head (`classifier.dense` weights)"
            }
            _ => return Ok(()),
        };
        Err(BertError::ModeUnavailable {
            mode: mode.to_string(),
            needs,
            model: self.name.clone(),
        })
    }

    /// Feature rows `[B, D]` of hidden states `[B, L, D]` under `attention_mask` `[B, L]`.
    pub fn pool(
        &self,
        hidden: Tensor<3>,
        attention_mask: Tensor<2, Int>,
        mode: FeatureMode,
    ) -> Result<Tensor<2>> {
        self.check_mode(mode)?;
        let [b, _, d] = hidden.dims();
        let cls = || hidden.clone().narrow(1, 0, 1).reshape([b, d]);
        Ok(match mode {
            FeatureMode::Cls => cls(),
            FeatureMode::Pooler => self.net.pool(cls()).expect("checked"),
            FeatureMode::RobertaDense => self.net.roberta_dense(cls()).expect("checked"),
            FeatureMode::Mean | FeatureMode::MeanL2 => {
                let m = attention_mask.float().unsqueeze_dim::<3>(2);
                let sum = (hidden.clone() * m.clone()).sum_dim(1).reshape([b, d]);
                let count = m.sum_dim(1).reshape([b, 1]).clamp_min(1e-9);
                let mean = sum / count;
                if mode == FeatureMode::MeanL2 {
                    let norm = mean.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
                    mean / norm
                } else {
                    mean
                }
            }
        })
    }

    /// Feature rows of `texts` in their order: `[N, D]` row-major in [`Features::data`].
    ///
    /// Texts are sorted by token count and run `batch_size` at a time at most (fewer where one
    /// long text would otherwise pad a whole batch to its length).
    pub fn features(&self, texts: &[&str], mode: FeatureMode, batch_size: usize) -> Result<Features> {
        self.check_mode(mode)?;
        self.run(texts, batch_size, self.spec.hidden_size, |hidden, mask| {
            self.pool(hidden, mask, mode)
        })
    }

    /// Class logits `[N, K]` of the checkpoint's sequence-classification head.
    pub fn logits(&self, texts: &[&str], batch_size: usize) -> Result<Features> {
        let k = self.num_classes().ok_or_else(|| BertError::NoHead {
            model: self.name.clone(),
        })?;
        self.run(texts, batch_size, k, |hidden, _| {
            let [b, _, d] = hidden.dims();
            Ok(self
                .net
                .logits(hidden.narrow(1, 0, 1).reshape([b, d]))
                .expect("head checked"))
        })
    }

    fn run(
        &self,
        texts: &[&str],
        batch_size: usize,
        dim: usize,
        head: impl Fn(Tensor<3>, Tensor<2, Int>) -> Result<Tensor<2>>,
    ) -> Result<Features> {
        if batch_size == 0 {
            return Err(BertError::InvalidArgument("batch size must be at least 1".into()));
        }
        let encoded = self.tokenize(texts)?;
        let n = texts.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encoded[i].ids.len()));
        let lengths: Vec<usize> = order.iter().map(|&i| encoded[i].ids.len()).collect();
        let mut data = vec![0f32; n * dim];
        for range in plan_batches(&lengths, batch_size) {
            let chunk = &order[range];
            let batch: Vec<&Encoded> = chunk.iter().map(|&i| &encoded[i]).collect();
            let rows = weights::catch("the forward pass", || -> Result<Vec<f32>> {
                let Batch {
                    input_ids,
                    attention_mask,
                    token_type_ids,
                } = self.batch(&batch);
                let hidden = self.forward(input_ids, attention_mask.clone(), Some(token_type_ids));
                let out = head(hidden, attention_mask)?;
                out.try_into_vec_as::<f32>().map_err(|e| BertError::Backend {
                    during: "reading results",
                    message: format!("{e:?}"),
                })
            })??;
            for (r, &i) in chunk.iter().enumerate() {
                data[i * dim..(i + 1) * dim].copy_from_slice(&rows[r * dim..(r + 1) * dim]);
            }
        }
        let truncated: Vec<usize> = (0..n).filter(|&i| encoded[i].truncated).collect();
        let empty: Vec<usize> = (0..n).filter(|&i| texts[i].trim().is_empty()).collect();
        if self.options.warn_truncation && !truncated.is_empty() {
            eprintln!(
                "warning: {} of {n} texts were longer than {} tokens and were truncated ({})",
                truncated.len(),
                self.max_length,
                self.name
            );
        }
        Ok(Features {
            data,
            n,
            dim,
            truncated,
            empty,
        })
    }
}

/// Cut texts sorted by decreasing token count into batches of at most `batch_size`, also ending
/// a batch where padding to its first (longest) text would make it more than 1.5× its real
/// tokens, so one long outlier does not pad a whole batch to its length.
fn plan_batches(lengths: &[usize], batch_size: usize) -> Vec<std::ops::Range<usize>> {
    let mut batches = Vec::new();
    let mut start = 0;
    while start < lengths.len() {
        let longest = lengths[start];
        let (mut end, mut real) = (start + 1, longest);
        while end < lengths.len() && end - start < batch_size {
            let next = real + lengths[end];
            if 2 * (end - start + 1) * longest > 3 * next {
                break;
            }
            real = next;
            end += 1;
        }
        batches.push(start..end);
        start = end;
    }
    batches
}

fn load_tokenizer(path: &Path, spec: &ModelSpec, max_length: usize) -> Result<Tokenizer> {
    let bad = |message: String| BertError::Tokenizer {
        path: path.into(),
        message,
    };
    let mut tokenizer = Tokenizer::from_file(path).map_err(|e| bad(e.to_string()))?;
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        }))
        .map_err(|e| bad(e.to_string()))?;
    let max_id = tokenizer
        .get_vocab(true)
        .into_values()
        .max()
        .ok_or_else(|| bad("empty vocabulary".into()))?;
    if max_id as usize >= spec.vocab_size {
        return Err(BertError::VocabMismatch {
            tokenizer: path.into(),
            max_id,
            rows: spec.vocab_size,
        });
    }
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::plan_batches;

    #[test]
    fn batches_respect_the_size_and_do_not_pad_outliers() {
        assert_eq!(plan_batches(&[10, 10, 10, 10, 10], 2), vec![0..2, 2..4, 4..5]);
        assert_eq!(plan_batches(&[256, 256, 60, 60, 60, 60], 64), vec![0..3, 3..6]);
        assert_eq!(plan_batches(&[30, 29, 28, 20], 64), vec![0..4]);
        assert!(plan_batches(&[], 4).is_empty());
    }
}
