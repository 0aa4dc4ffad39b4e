//! The fine-tuning loop: seeded shuffles, padded batches, dropout, the clipped AdamW step under
//! the linear schedule, validation accuracy after every epoch and early stopping on it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{Module, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use bert::{Batch, BertNet, Encoded, ModelSpec};

use crate::tensors::{read_f32, replaced, write_f32, Named};
use crate::{classifier_logits, clip_grad_norm, cross_entropy, linear_schedule, AdamW, ClassifierBatch};

/// One tokenized example and its class.
#[derive(Debug, Clone)]
pub struct Example {
    pub tokens: Encoded,
    pub label: i64,
}

/// Settings of a fine-tuning run; the defaults are transformers' Trainer's (AdamW with
/// β = 0.9/0.999, ε = 1e-8, weight decay 0.01 on weights only, gradient norm clipped to 1) with
/// the common BERT recipe (lr 5e-5, 10% warmup, batches of 32, 3 epochs).
#[derive(Debug, Clone, Serialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// Share of all optimizer steps spent warming the learning rate up from 0.
    pub warmup_ratio: f64,
    pub weight_decay: f32,
    pub max_grad_norm: f64,
    /// Seeds the shuffles (one order per epoch) and the dropout masks.
    pub seed: u64,
    /// Stop after this many epochs without a better validation accuracy.
    pub patience: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 3,
            batch_size: 32,
            lr: 5e-5,
            warmup_ratio: 0.1,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
            seed: 0,
            patience: 1,
        }
    }
}

/// What one epoch did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_accuracy: f64,
    pub seconds: f64,
}

/// Progress of the loop, for a bar or a log line.
#[derive(Debug, Clone, Copy)]
pub enum Progress {
    Step {
        step: usize,
        total: usize,
        loss: f64,
    },
    Epoch {
        epoch: usize,
        train_loss: f64,
        val_accuracy: f64,
        improved: bool,
    },
}

/// Pad `examples` to their longest and upload them with their classes.
pub fn make_batch(examples: &[&Example], pad_token_id: usize, device: &Device) -> ClassifierBatch {
    let tokens: Vec<&Encoded> = examples.iter().map(|e| &e.tokens).collect();
    let Batch {
        input_ids,
        attention_mask,
        token_type_ids,
    } = Batch::pad(&tokens, pad_token_id, device);
    let labels: Vec<i64> = examples.iter().map(|e| e.label).collect();
    ClassifierBatch {
        input_ids,
        attention_mask,
        token_type_ids,
        labels: Tensor::from_data(TensorData::new(labels, [examples.len()]), device),
    }
}

/// Accuracy of the network's head on `examples`, without dropout and without autodiff.
pub fn accuracy(net: &BertNet, spec: &ModelSpec, examples: &[Example], batch_size: usize) -> f64 {
    let net = net.valid();
    let device = net.embeddings.word_embeddings.weight.val().device();
    let mut correct = 0usize;
    for chunk in examples.chunks(batch_size.max(1)) {
        let refs: Vec<&Example> = chunk.iter().collect();
        let batch = make_batch(&refs, spec.pad_token_id, &device);
        let logits = classifier_logits(&net, spec, &batch, false).expect("a classification head");
        let predicted = logits.argmax(1).try_into_vec_as::<i64>().expect("class indices");
        correct += predicted
            .iter()
            .zip(chunk)
            .filter(|(p, e)| **p == e.label)
            .count();
    }
    correct as f64 / examples.len().max(1) as f64
}

/// Where the loop keeps its state after every epoch, and whether it picks it up: the last and
/// the best network's parameters, the optimizer's moments and `state.json` (epochs done, steps,
/// the records). A resumed run equals an uninterrupted one: each epoch's shuffle and dropout
/// masks are seeded by the seed and the epoch alone.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub dir: PathBuf,
    pub resume: bool,
}

/// What `state.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LoopState {
    epochs_done: usize,
    steps: usize,
    best_val_accuracy: Option<f64>,
    since_best: usize,
    records: Vec<EpochRecord>,
    /// The settings the state was made with: a resume under other ones starts over.
    settings: String,
}

/// Fine-tune `net` (on an autodiff device, with a classification head) on `train`, checking
/// `val` after every epoch; returns the network of the best validation accuracy and the record
/// of every epoch run (those of a resumed checkpoint included).
pub fn train(
    net: BertNet,
    spec: &ModelSpec,
    train: &[Example],
    val: &[Example],
    config: &TrainConfig,
    checkpoint: Option<&Checkpoint>,
    mut progress: impl FnMut(Progress),
) -> Result<(BertNet, Vec<EpochRecord>), TrainError> {
    let device = net.embeddings.word_embeddings.weight.val().device();
    let batch_size = config.batch_size.max(1);
    let per_epoch = train.len().div_ceil(batch_size);
    let total = per_epoch * config.epochs;
    let warmup = (config.warmup_ratio * total as f64).ceil() as usize;
    let settings = format!("{config:?} train {} val {}", train.len(), val.len());
    let mut optim = AdamW::trainer(config.weight_decay as f64);
    let mut net = net;
    let mut best: Option<(f64, BertNet)> = None;
    let mut state = LoopState {
        epochs_done: 0,
        steps: 0,
        best_val_accuracy: None,
        since_best: 0,
        records: Vec::new(),
        settings: settings.clone(),
    };
    if let Some(ck) = checkpoint.filter(|c| c.resume) {
        if let Some(saved) = load_state(&ck.dir)?.filter(|s| s.settings == settings) {
            net = load_params(net, &ck.dir.join("last.safetensors"))?;
            optim
                .load(&ck.dir.join("optimizer.safetensors"), &device)
                .map_err(|e| TrainError::io(&ck.dir, e))?;
            if let Some(acc) = saved.best_val_accuracy {
                best = Some((acc, load_params(net.clone(), &ck.dir.join("best.safetensors"))?));
            }
            state = saved;
        }
    }
    let mut step = state.steps;
    for epoch in state.epochs_done..config.epochs {
        if state.since_best >= config.patience.max(1) {
            break;
        }
        let started = Instant::now();
        device.seed(config.seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64));
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
            config.seed.wrapping_add(epoch as u64),
        ));
        let mut loss_sum = 0.0;
        for chunk in order.chunks(batch_size) {
            let refs: Vec<&Example> = chunk.iter().map(|&i| &train[i]).collect();
            let batch = make_batch(&refs, spec.pad_token_id, &device);
            let logits = classifier_logits(&net, spec, &batch, true).expect("a classification head");
            let loss = cross_entropy(logits, batch.labels.clone());
            let value = loss.clone().inner().into_scalar::<f64>();
            let mut grads = GradientsParams::from_grads(loss.backward(), &net);
            clip_grad_norm(&net, &mut grads, config.max_grad_norm);
            net = optim.step(config.lr * linear_schedule(step, warmup, total), net, &mut grads);
            step += 1;
            loss_sum += value * chunk.len() as f64;
            progress(Progress::Step {
                step,
                total,
                loss: value,
            });
        }
        let val_accuracy = accuracy(&net, spec, val, batch_size);
        let improved = best.as_ref().is_none_or(|(b, _)| val_accuracy > *b);
        let record = EpochRecord {
            epoch,
            train_loss: loss_sum / train.len().max(1) as f64,
            val_accuracy,
            seconds: started.elapsed().as_secs_f64(),
        };
        progress(Progress::Epoch {
            epoch,
            train_loss: record.train_loss,
            val_accuracy,
            improved,
        });
        state.records.push(record);
        if improved {
            best = Some((val_accuracy, net.clone()));
            state.since_best = 0;
        } else {
            state.since_best += 1;
        }
        state.epochs_done = epoch + 1;
        state.steps = step;
        state.best_val_accuracy = best.as_ref().map(|(a, _)| *a);
        if let Some(ck) = checkpoint {
            save_checkpoint(ck, &net, improved.then_some(&net), &optim, &state)?;
        }
    }
    let net = best.map_or(net, |(_, n)| n);
    Ok((net, state.records))
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("fine-tuning checkpoint {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("fine-tuning checkpoint {path}: {reason}")]
    Bad { path: PathBuf, reason: String },
}

impl TrainError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn load_state(dir: &Path) -> Result<Option<LoopState>, TrainError> {
    let path = dir.join("state.json");
    if !path.is_file() {
        return Ok(None);
    }
    let bytes = std::fs::read(&path).map_err(|e| TrainError::io(&path, e))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| TrainError::Bad {
            path,
            reason: e.to_string(),
        })
}

/// The epoch's files, each written to a temporary name and renamed, `state.json` last: a
/// checkpoint whose state exists is complete.
fn save_checkpoint(
    ck: &Checkpoint,
    last: &BertNet,
    best: Option<&BertNet>,
    optim: &AdamW,
    state: &LoopState,
) -> Result<(), TrainError> {
    std::fs::create_dir_all(&ck.dir).map_err(|e| TrainError::io(&ck.dir, e))?;
    let atomic = |name: &str, write: &dyn Fn(&Path) -> std::io::Result<()>| {
        let tmp = ck.dir.join(format!("{name}.tmp"));
        let path = ck.dir.join(name);
        write(&tmp)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| TrainError::io(&path, e))
    };
    atomic("last.safetensors", &|p| save_params(last, p))?;
    if let Some(best) = best {
        atomic("best.safetensors", &|p| save_params(best, p))?;
    }
    atomic("optimizer.safetensors", &|p| optim.save(p))?;
    let json = serde_json::to_vec_pretty(state).expect("JSON");
    atomic("state.json", &|p| std::fs::write(p, &json))
}

/// Every parameter of `net` by module path, as f32 safetensors.
fn save_params(net: &BertNet, path: &Path) -> std::io::Result<()> {
    let tensors = crate::named_params(net, None)
        .into_iter()
        .map(|p| (p.name, p.shape, p.values))
        .collect();
    write_f32(path, tensors, None)
}

/// `net` with every parameter's values replaced by those saved under its path.
fn load_params(net: BertNet, path: &Path) -> Result<BertNet, TrainError> {
    struct Replace {
        values: Named,
        path: Vec<String>,
        missing: Vec<String>,
    }
    impl ModuleMapper for Replace {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (id, tensor, mapper) = param.consume();
            let name = self.path.join(".");
            let Some((shape, values)) = self.values.remove(&name).filter(|(s, _)| *s == tensor.dims()) else {
                self.missing.push(name);
                return Param::from_mapped_value(id, tensor, mapper);
            };
            let value =
                Tensor::<D>::from_data(TensorData::new(values, shape), &tensor.clone().inner().device());
            replaced(id, &tensor, value, mapper)
        }
    }
    let (values, _) = read_f32(path).map_err(|e| TrainError::io(path, e))?;
    let mut replace = Replace {
        values,
        path: Vec::new(),
        missing: Vec::new(),
    };
    let net = net.map(&mut replace);
    if !replace.missing.is_empty() {
        return Err(TrainError::Bad {
            path: path.to_path_buf(),
            reason: format!("no saved values for {}", replace.missing.join(", ")),
        });
    }
    Ok(net)
}
