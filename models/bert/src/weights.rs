//! Loading Hugging Face checkpoints (`model.safetensors`, or `pytorch_model.bin` read by
//! burn-store's pickle *parser*, which never executes pickled code) into a [`BertNet`].

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use burn::store::{
    ApplyError, ApplyResult, KeyRemapper, ModuleAdapter, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter,
    PytorchStore, SafetensorsStore,
};

use crate::config::ModelSpec;
use crate::error::{BertError, Result};
use crate::model::{BertNet, Parts};

const WORD_EMBEDDINGS: &str = "embeddings.word_embeddings.weight";

/// What a checkpoint holds, found from its tensor names and shapes before anything is loaded.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// What comes before `embeddings.*` / `encoder.*`: `""` (bare, e.g. MiniLM), `bert.`, `roberta.`.
    pub prefix: String,
    pub parts: Parts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Safetensors,
    Pytorch,
}

fn format_of(path: &Path) -> Result<Format> {
    let mut magic = [0u8; 4];
    let mut file = std::fs::File::open(path).map_err(|source| BertError::Io {
        path: path.into(),
        source,
    })?;
    let n = file.read(&mut magic).map_err(|source| BertError::Io {
        path: path.into(),
        source,
    })?;
    // A zip archive (PyTorch ≥ 1.6) or a legacy pickle (protocol 2 starts with 0x80 0x02).
    if n >= 2 && (magic[..2] == *b"PK" || magic[..2] == [0x80, 0x02]) {
        Ok(Format::Pytorch)
    } else {
        Ok(Format::Safetensors)
    }
}

fn weights_error(path: &Path, message: impl Into<String>) -> BertError {
    BertError::Weights {
        path: path.into(),
        message: message.into(),
    }
}

enum Store {
    Safetensors(Box<SafetensorsStore>),
    Pytorch(Box<PytorchStore>),
}

impl Store {
    fn open(path: &Path, remapper: KeyRemapper) -> Result<Self> {
        Ok(match format_of(path)? {
            Format::Safetensors => Store::Safetensors(Box::new(
                SafetensorsStore::from_file(path)
                    .with_from_adapter(
                        PyTorchToBurnAdapter
                            .chain(burn::store::FloatCastAdapter::to(burn::tensor::DType::F32)),
                    )
                    .validate(false)
                    .allow_partial(true)
                    .skip_enum_variants(true)
                    .remap(remapper),
            )),
            Format::Pytorch => Store::Pytorch(Box::new(
                PytorchStore::from_file(path)
                    .validate(false)
                    .allow_partial(true)
                    .map_indices_contiguous(false)
                    .remap(remapper),
            )),
        })
    }

    /// Every tensor name with its shape.
    fn shapes(&mut self, path: &Path) -> Result<BTreeMap<String, Vec<usize>>> {
        fn collect<S: ModuleStore>(s: &mut S, path: &Path) -> Result<BTreeMap<String, Vec<usize>>>
        where
            S::Error: std::fmt::Display,
        {
            let all = s
                .get_all_tensors()
                .map_err(|e| weights_error(path, e.to_string()))?;
            Ok(all.iter().map(|(k, t)| (k.clone(), t.shape.to_vec())).collect())
        }
        match self {
            Store::Safetensors(s) => collect(s.as_mut(), path),
            Store::Pytorch(s) => collect(s.as_mut(), path),
        }
    }

    fn apply(&mut self, net: &mut BertNet, path: &Path) -> Result<ApplyResult> {
        let outcome = match self {
            Store::Safetensors(s) => net.load_from(s.as_mut()).map_err(|e| e.to_string()),
            Store::Pytorch(s) => net.load_from(s.as_mut()).map_err(|e| e.to_string()),
        };
        outcome.map_err(|e| weights_error(path, e))
    }
}

/// Run `f`, turning a panic inside a library into a typed error.
pub(crate) fn catch<T>(during: &'static str, f: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        BertError::Backend {
            during,
            message: message.lines().next().unwrap_or_default().to_string(),
        }
    })
}

/// Find the key prefix and the optional parts (pooler, classification heads) of a checkpoint.
pub fn inspect(path: &Path, spec: &ModelSpec) -> Result<Inspection> {
    let mut store = Store::open(path, KeyRemapper::new())?;
    let shapes = catch("reading the checkpoint", || store.shapes(path))??;
    let prefix = shapes
        .keys()
        .filter_map(|k| k.strip_suffix(WORD_EMBEDDINGS))
        .filter(|p| p.is_empty() || p.ends_with('.'))
        .min_by_key(|p| p.len())
        .map(str::to_string)
        .ok_or_else(|| {
            weights_error(
                path,
                format!(
                    "no `{WORD_EMBEDDINGS}` tensor (with or without a `bert.`/`roberta.` prefix): not a BERT/RoBERTa \
                     checkpoint ({} tensors)",
                    shapes.len()
                ),
            )
        })?;
    let d = spec.hidden_size;
    let classes = |name: &str| -> Result<Option<usize>> {
        match shapes.get(name) {
            None => Ok(None),
            Some(s) if s.len() == 2 && s[1] == d && s[0] > 0 => Ok(Some(s[0])),
            Some(s) => Err(weights_error(
                path,
                format!("`{name}` has shape {s:?}, expected [classes, {d}]"),
            )),
        }
    };
    let pooler = shapes.contains_key(&format!("{prefix}pooler.dense.weight"));
    let mut parts = Parts {
        pooler,
        ..Parts::default()
    };
    if let Some(k) = classes("classifier.out_proj.weight")? {
        if !shapes.contains_key("classifier.dense.weight") {
            return Err(weights_error(
                path,
                "`classifier.out_proj` without `classifier.dense`",
            ));
        }
        parts.roberta_head = Some(k);
    } else if let Some(k) = classes("classifier.weight")? {
        if !pooler {
            return Err(weights_error(
                path,
                "a `classifier` on the pooler output but no `pooler.dense` weights",
            ));
        }
        parts.bert_classifier = Some(k);
    }
    Ok(Inspection { prefix, parts })
}

fn remapper(prefix: &str) -> Result<KeyRemapper, String> {
    let mut r = KeyRemapper::new();
    if !prefix.is_empty() {
        r = r
            .add_pattern(format!("^{}", prefix.replace('.', r"\.")), "")
            .map_err(|e| e.to_string())?;
    }
    r.add_pattern(r"\.attention\.self\.", ".attention.self_attn.")
        .and_then(|r| r.add_pattern(r"^classifier\.(dense|out_proj)\.", "roberta_head.$1."))
        .map_err(|e| e.to_string())
}

/// The checkpoint name of a parameter of [`BertNet`] (for messages).
pub fn checkpoint_name(burn_path: &str, prefix: &str) -> String {
    let name = burn_path
        .replace(".self_attn.", ".self.")
        .replace(".gamma", ".weight")
        .replace(".beta", ".bias");
    if let Some(rest) = name.strip_prefix("roberta_head.") {
        format!("classifier.{rest}")
    } else if name.starts_with("classifier.") {
        name
    } else {
        format!("{prefix}{name}")
    }
}

/// An apply error in checkpoint names and PyTorch's `[out, in]` order.
fn describe(error: &ApplyError, prefix: &str) -> String {
    match error {
        ApplyError::ShapeMismatch {
            path,
            expected,
            found,
        } => {
            let torch_order = |s: &burn::tensor::Shape| {
                let mut d = s.to_vec();
                if d.len() == 2 && !path.starts_with("embeddings.") {
                    d.reverse(); // burn keeps Linear weights as [in, out]
                }
                d
            };
            format!(
                "`{}` is {:?} in the file but {:?} by config.json",
                checkpoint_name(path, prefix),
                torch_order(found),
                torch_order(expected)
            )
        }
        other => other.to_string(),
    }
}

/// Load every parameter of `net` from the checkpoint; any missing or misshapen tensor is an error.
pub fn load(net: &mut BertNet, path: &Path, inspection: &Inspection) -> Result<()> {
    let remap = remapper(&inspection.prefix).map_err(|e| weights_error(path, e))?;
    let mut store = Store::open(path, remap)?;
    let result = catch("loading weights", || store.apply(net, path))??;
    if !result.errors.is_empty() {
        let list: Vec<String> = result
            .errors
            .iter()
            .take(4)
            .map(|e| describe(e, &inspection.prefix))
            .collect();
        return Err(weights_error(
            path,
            format!(
                "{} tensor(s) do not fit config.json: {}",
                result.errors.len(),
                list.join("; ")
            ),
        ));
    }
    if !result.missing.is_empty() {
        let list: Vec<String> = result
            .missing
            .iter()
            .take(8)
            .map(|(p, _)| checkpoint_name(p, &inspection.prefix))
            .collect();
        return Err(weights_error(
            path,
            format!(
                "{} tensor(s) that config.json calls for are not in the file, e.g. {}",
                result.missing.len(),
                list.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Hex sha256 of a file, streamed ([`model_hub::sha256_file`]).
pub fn sha256_file(path: &Path) -> Result<String> {
    model_hub::sha256_file(path).map_err(|source| BertError::Io {
        path: path.to_path_buf(),
        source,
    })
}
