//! The fine-tuning loop: seeded shuffles, padded batches, dropout, the clipped AdamW step under
//! the linear schedule, validation accuracy after every epoch and early stopping on it.

use std::time::Instant;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::SeedableRng;

use bert::{BertNet, ModelSpec};

use crate::{
    adamw_trainer, classifier_logits, clip_grad_norm, cross_entropy, linear_schedule, ClassifierBatch,
};

/// One tokenized example and its class.
#[derive(Debug, Clone)]
pub struct Example {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    pub label: i64,
}

/// Settings of a fine-tuning run; the defaults are transformers' Trainer's (AdamW with
/// β = 0.9/0.999, ε = 1e-8, weight decay 0.01 on weights only, gradient norm clipped to 1) with
/// the common BERT recipe (lr 5e-5, 10% warmup, batches of 32, 3 epochs).
#[derive(Debug, Clone)]
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
#[derive(Debug, Clone, PartialEq)]
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
pub fn make_batch(examples: &[&Example], pad_token_id: u32, device: &Device) -> ClassifierBatch {
    let b = examples.len();
    let l = examples.iter().map(|e| e.ids.len()).max().unwrap_or(0).max(1);
    let mut ids = vec![pad_token_id as i64; b * l];
    let mut mask = vec![0i64; b * l];
    let mut types = vec![0i64; b * l];
    for (r, e) in examples.iter().enumerate() {
        for (c, (&id, &t)) in e.ids.iter().zip(&e.type_ids).enumerate() {
            ids[r * l + c] = id as i64;
            mask[r * l + c] = 1;
            types[r * l + c] = t as i64;
        }
    }
    let up = |v: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(v, [b, l]), device);
    let labels: Vec<i64> = examples.iter().map(|e| e.label).collect();
    ClassifierBatch {
        input_ids: up(ids),
        attention_mask: up(mask),
        token_type_ids: up(types),
        labels: Tensor::from_data(TensorData::new(labels, [b]), device),
    }
}

/// Accuracy of the network's head on `examples`, without dropout and without autodiff.
pub fn accuracy(net: &BertNet, spec: &ModelSpec, examples: &[Example], batch_size: usize) -> f64 {
    let net = net.valid();
    let device = net.embeddings.word_embeddings.weight.val().device();
    let mut correct = 0usize;
    for chunk in examples.chunks(batch_size.max(1)) {
        let refs: Vec<&Example> = chunk.iter().collect();
        let batch = make_batch(&refs, spec.pad_token_id as u32, &device);
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

/// Fine-tune `net` (on an autodiff device, with a classification head) on `train`, checking
/// `val` after every epoch; returns the network of the best validation accuracy and the record
/// of every epoch run.
pub fn train(
    net: BertNet,
    spec: &ModelSpec,
    train: &[Example],
    val: &[Example],
    config: &TrainConfig,
    mut progress: impl FnMut(Progress),
) -> (BertNet, Vec<EpochRecord>) {
    let device = net.embeddings.word_embeddings.weight.val().device();
    device.seed(config.seed);
    let batch_size = config.batch_size.max(1);
    let per_epoch = train.len().div_ceil(batch_size);
    let total = per_epoch * config.epochs;
    let warmup = (config.warmup_ratio * total as f64).ceil() as usize;
    let mut optim = adamw_trainer(&net, 0.9, 0.999, 1e-8, config.weight_decay);
    let mut net = net;
    let mut best: Option<(f64, BertNet)> = None;
    let mut records = Vec::new();
    let mut since_best = 0;
    let mut step = 0;
    for epoch in 0..config.epochs {
        let started = Instant::now();
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
            config.seed.wrapping_add(epoch as u64),
        ));
        let mut loss_sum = 0.0;
        for chunk in order.chunks(batch_size) {
            let refs: Vec<&Example> = chunk.iter().map(|&i| &train[i]).collect();
            let batch = make_batch(&refs, spec.pad_token_id as u32, &device);
            let logits = classifier_logits(&net, spec, &batch, true).expect("a classification head");
            let loss = cross_entropy(logits, batch.labels.clone());
            let value = loss.clone().inner().into_scalar::<f64>();
            let mut grads = GradientsParams::from_grads(loss.backward(), &net);
            clip_grad_norm(&net, &mut grads, config.max_grad_norm);
            net = optim.step(config.lr * linear_schedule(step, warmup, total), net, grads);
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
        records.push(record);
        if improved {
            best = Some((val_accuracy, net.clone()));
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= config.patience.max(1) {
                break;
            }
        }
    }
    let net = best.map_or(net, |(_, n)| n);
    (net, records)
}
