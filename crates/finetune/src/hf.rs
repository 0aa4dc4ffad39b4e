//! The fine-tuned network as a Hugging Face model folder (`config.json`, `model.safetensors`
//! with the `classifier.*` head, the tokenizer files) that our loader and transformers'
//! `AutoModelForSequenceClassification` both read, and the head a checkpoint without one gets.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::{Device, Distribution, Tensor, TensorData};

use bert::{Arch, BertNet, ModelSpec};

use crate::named_params;
use crate::tensors::write_f32;

#[derive(Debug, thiserror::Error)]
pub enum HfError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Bad { path: PathBuf, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HfError + '_ {
    move |source| HfError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Tokenizer files copied beside the weights when the source folder has them.
const TOKENIZER_FILES: [&str; 5] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "merges.txt",
];

/// Give `net` a sequence-classification head for `k` classes where its checkpoint has none, as
/// transformers initializes one: weights ~ N(0, 0.02), biases 0 (BERT: pooler, if missing, and
/// classifier; the device's generator draws them, so `Device::seed` makes them reproducible).
/// A head of another size is replaced. Returns whether a head (or part of one) was made.
pub fn add_classifier_head(net: &mut BertNet, spec: &ModelSpec, k: usize, device: &Device) -> bool {
    let d = spec.hidden_size;
    let linear = |d_in: usize, d_out: usize| Linear {
        weight: Param::from_tensor(Tensor::random(
            [d_in, d_out],
            Distribution::Normal(0.0, 0.02),
            device,
        )),
        bias: Some(Param::from_tensor(Tensor::zeros([d_out], device))),
    };
    match spec.arch {
        Arch::Bert => {
            let pooler = net.pooler.is_none();
            if pooler {
                net.pooler = Some(bert::Pooler { dense: linear(d, d) });
            }
            let classifier = net.classifier.as_ref().is_none_or(|c| c.weight.dims()[1] != k);
            if classifier {
                net.classifier = Some(linear(d, k));
            }
            pooler || classifier
        }
        Arch::Roberta => {
            let head = net
                .roberta_head
                .as_ref()
                .is_none_or(|h| h.out_proj.weight.dims()[1] != k);
            if head {
                net.roberta_head = Some(bert::RobertaHead {
                    dense: linear(d, d),
                    out_proj: linear(d, k),
                });
            }
            head
        }
    }
}

/// Put a linear layer on raw head features (`weight [K, D]` row-major, `bias [K]`: a run's
/// decision layer with the standardization folded in) as `net`'s classifier: BERT's
/// `classifier` (it reads the pooler output), RoBERTa's `classifier.out_proj` (it reads the
/// head's dense + tanh). Fails where the network lacks the part that makes those features.
pub fn set_classifier(
    net: &mut BertNet,
    spec: &ModelSpec,
    weight: &[f32],
    bias: &[f32],
    device: &Device,
) -> Result<(), String> {
    let (k, d) = (bias.len(), spec.hidden_size);
    if weight.len() != k * d {
        return Err(format!(
            "the layer reads {} features, the network's head {d}",
            weight.len() / k.max(1)
        ));
    }
    // burn keeps Linear weights as [in, out].
    let mut transposed = vec![0f32; d * k];
    for c in 0..k {
        for j in 0..d {
            transposed[j * k + c] = weight[c * d + j];
        }
    }
    let linear = Linear {
        weight: Param::from_tensor(Tensor::from_data(TensorData::new(transposed, [d, k]), device)),
        bias: Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(bias.to_vec(), [k]),
            device,
        ))),
    };
    match spec.arch {
        Arch::Bert if net.pooler.is_none() => Err("the checkpoint has no pooler to feed a classifier".into()),
        Arch::Bert => {
            net.classifier = Some(linear);
            Ok(())
        }
        Arch::Roberta => match &mut net.roberta_head {
            Some(head) => {
                head.out_proj = linear;
                Ok(())
            }
            None => {
                Err("the checkpoint has no classification head whose dense layer made the features".into())
            }
        },
    }
}

/// Write `net` as a sequence-classification model folder: `model.safetensors` under the
/// checkpoint names transformers uses (`bert.` / `roberta.` before the encoder's, the head as
/// `classifier.*`, Linear weights as PyTorch's `[out, in]`), `config.json` from the source
/// folder's with the architecture and the class names set, and the tokenizer files.
pub fn save_hf_folder(
    net: &BertNet,
    spec: &ModelSpec,
    source_dir: &Path,
    out_dir: &Path,
    class_names: &[String],
) -> Result<(), HfError> {
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let (prefix, architecture) = match spec.arch {
        Arch::Bert => ("bert.", "BertForSequenceClassification"),
        Arch::Roberta => ("roberta.", "RobertaForSequenceClassification"),
    };
    let mut tensors = Vec::new();
    for p in named_params(net, None) {
        let name = bert::checkpoint_name(&p.name, prefix);
        // burn keeps Linear weights as [in, out]; embeddings are [rows, width] in both.
        if p.shape.len() == 2 && !p.name.starts_with("embeddings.") {
            let (rows, cols) = (p.shape[0], p.shape[1]);
            let mut t = vec![0f32; rows * cols];
            for r in 0..rows {
                for c in 0..cols {
                    t[c * rows + r] = p.values[r * cols + c];
                }
            }
            tensors.push((name, vec![cols, rows], t));
        } else {
            tensors.push((name, p.shape, p.values));
        }
    }
    let weights = out_dir.join("model.safetensors");
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    write_f32(&weights, tensors, Some(metadata)).map_err(io(&weights))?;

    let config_path = source_dir.join("config.json");
    let text = std::fs::read_to_string(&config_path).map_err(io(&config_path))?;
    let mut config: serde_json::Value = serde_json::from_str(&text).map_err(|e| HfError::Bad {
        path: config_path.clone(),
        reason: e.to_string(),
    })?;
    let id2label: serde_json::Map<String, serde_json::Value> = class_names
        .iter()
        .enumerate()
        .map(|(i, c)| (i.to_string(), c.clone().into()))
        .collect();
    let label2id: serde_json::Map<String, serde_json::Value> = class_names
        .iter()
        .enumerate()
        .map(|(i, c)| (c.clone(), i.into()))
        .collect();
    config["architectures"] = serde_json::json!([architecture]);
    config["id2label"] = id2label.into();
    config["label2id"] = label2id.into();
    let out_config = out_dir.join("config.json");
    let pretty = serde_json::to_string_pretty(&config).expect("JSON");
    std::fs::write(&out_config, pretty + "\n").map_err(io(&out_config))?;
    for file in TOKENIZER_FILES {
        let from = source_dir.join(file);
        if from.is_file() {
            let to = out_dir.join(file);
            std::fs::copy(&from, &to).map_err(io(&to))?;
        }
    }
    Ok(())
}
