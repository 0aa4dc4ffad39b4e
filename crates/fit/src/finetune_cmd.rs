//! `fit finetune`: fine-tune a BERT / RoBERTa checkpoint's sequence classifier on a text
//! dataset's training split (design §7) and write it as a Hugging Face model folder that
//! `fit run --model-path` and transformers' `AutoModelForSequenceClassification` both read.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use datasets::{DatasetKind, Examples, LabeledSet, Labels};
use finetune::train::{accuracy, train, Example, Progress, TrainConfig};
use model_hub::ModelRef;
use serde::Serialize;
use solver::BackendKind;

use crate::recipe;

#[derive(Args, Debug)]
pub struct FinetuneArgs {
    /// Text dataset (rotten-tomatoes, sst, jigsaw, …; see `fit --help`).
    #[arg(long, default_value = "rotten-tomatoes")]
    dataset: String,
    /// Its folder or file (default: where `cargo xtask fetch` puts it).
    #[arg(long)]
    dataset_path: Option<PathBuf>,
    /// The checkpoint to fine-tune: a folder or a hub id (default: MiniLM, all-MiniLM-L6-v2).
    #[arg(long, default_value = "sentence-transformers/all-MiniLM-L6-v2")]
    model_path: String,
    /// Output folder: the fine-tuned model (config.json, model.safetensors, tokenizer files) and
    /// finetune.json (settings, per-epoch loss and validation accuracy, test accuracy).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Peak learning rate of AdamW (reached after the warmup, then down linearly to 0).
    #[arg(long, default_value_t = 5e-5)]
    lr: f64,
    /// Share of the optimizer steps spent warming the learning rate up.
    #[arg(long, default_value_t = 0.1)]
    warmup_ratio: f64,
    /// AdamW weight decay (not on biases and LayerNorms).
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f32,
    /// Global gradient norm clipping.
    #[arg(long, default_value_t = 1.0)]
    max_grad_norm: f64,
    /// Stop after this many epochs without a better validation accuracy (the best is kept).
    #[arg(long, default_value_t = 1)]
    patience: usize,
    /// Tokens per text at most (special tokens included).
    #[arg(long, default_value_t = 128)]
    max_length: usize,
    /// Seed of the data split, the shuffles, the dropout masks and a new head's weights.
    #[arg(long, alias = "seed", default_value_t = 0)]
    random_seed: u64,
    /// Share of the training data held out for validation when the dataset has no val split.
    #[arg(long, default_value_t = 0.1)]
    val_frac: f64,
    /// Use at most this many training examples (a quick run).
    #[arg(long)]
    max_examples: Option<usize>,
    /// Train from the start: ignore a finished model in OUT made with the same model, data,
    /// seed and settings (otherwise reused) and the checkpoint in OUT/checkpoint (otherwise
    /// resumed).
    #[arg(long)]
    fresh: bool,
    #[arg(long, default_value = "flex")]
    backend: BackendKind,
    #[arg(long, short)]
    quiet: bool,
}

/// What finetune.json records.
#[derive(Serialize)]
struct Report<'a> {
    model: &'a str,
    dataset: String,
    class_names: &'a [String],
    train_examples: usize,
    val_examples: usize,
    test_examples: usize,
    /// The loop's settings (epochs, batch_size, lr, warmup_ratio, weight_decay,
    /// max_grad_norm, seed, patience).
    #[serde(flatten)]
    settings: &'a TrainConfig,
    max_length: usize,
    backend: &'a str,
    head_added: bool,
    /// What the result depends on (model and weights, data, seed and settings): a rerun with
    /// the same key reuses the folder instead of training again.
    cache_key: &'a serde_json::Value,
    records: Vec<EpochJson>,
    val_accuracy_before: f64,
    val_accuracy: f64,
    test_accuracy: Option<f64>,
    seconds: f64,
}

#[derive(Serialize)]
struct EpochJson {
    epoch: usize,
    train_loss: f64,
    val_accuracy: f64,
    seconds: f64,
}

/// The texts and classes of a single-label text split, tokenized.
fn examples(set: &LabeledSet, encoder: &bert::TextEncoder, split: &str) -> Result<Vec<Example>> {
    let Examples::Text(texts) = &set.examples else {
        bail!(
            "fine-tuning reads text datasets; the {split} split holds {}",
            set.examples.form()
        );
    };
    let Labels::Class(classes) = &set.labels else {
        bail!("fine-tuning trains a single-label classifier; the {split} split is multilabel");
    };
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let encoded = encoder.tokenize(&refs)?;
    Ok(encoded
        .into_iter()
        .zip(classes)
        .map(|(tokens, &label)| Example {
            tokens,
            label: label as i64,
        })
        .collect())
}

/// Whether `finetune.json` (`json`) records a finished run with this cache key whose model
/// file is there.
fn cached(json: &Path, key: &serde_json::Value) -> bool {
    let Some(dir) = json.parent() else {
        return false;
    };
    let recorded = std::fs::read(json)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    recorded.is_some_and(|r| r.get("cache_key") == Some(key)) && dir.join("model.safetensors").is_file()
}

pub fn run(args: FinetuneArgs) -> Result<()> {
    let started = Instant::now();
    let verbose = !args.quiet;
    let kind: DatasetKind = args.dataset.parse()?;
    if !kind.is_text() {
        bail!("fit finetune trains text classifiers; --dataset {kind} is an image dataset");
    }
    let dataset_path = crate::recipe::dataset_path(kind, args.dataset_path.as_deref())?;
    let options = recipe::load_options(args.random_seed, args.val_frac, false, &[]);
    let data = recipe::load_data(kind, &dataset_path, &options, args.max_examples, args.random_seed)?;
    let val_set = data
        .val
        .as_ref()
        .context("the dataset has no validation split: use --val-frac > 0")?;
    let device = args.backend.device()?;
    let reference = ModelRef::parse(&args.model_path)?;
    let encoder = bert::TextEncoder::load_with(
        &reference,
        &device,
        bert::LoadOptions {
            max_length: Some(args.max_length),
            warn_truncation: false,
            ..bert::LoadOptions::default()
        },
    )?;
    // A finished model made from the same weights, data, seed and settings is reused: checked
    // before the texts are tokenized and the training network is loaded.
    let weights_sha256 = encoder.weights_fingerprint();
    let data_fingerprint = datasets::fingerprint(&data)?;
    let config = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        warmup_ratio: args.warmup_ratio,
        weight_decay: args.weight_decay,
        max_grad_norm: args.max_grad_norm,
        seed: args.random_seed,
        patience: args.patience,
    };
    let cache_key = serde_json::json!({
        "model": args.model_path,
        "weights_sha256": weights_sha256,
        "data": data_fingerprint,
        "settings": config,
        "max_length": args.max_length,
    });
    let json = args.out.join("finetune.json");
    if !args.fresh && cached(&json, &cache_key) {
        println!(
            "reusing the fine-tuned model in {} (same model, data, seed and settings; --fresh trains again)",
            args.out.display()
        );
        return Ok(());
    }
    let train_set = examples(&data.train, &encoder, "train")?;
    let val = examples(val_set, &encoder, "val")?;
    let test = data
        .test
        .as_ref()
        .map(|t| examples(t, &encoder, "test"))
        .transpose()?;
    let class_names = &data.train.class_names;
    let source_dir: PathBuf = encoder
        .weights_path()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    drop(encoder);

    // The trainable network on the autodiff device, with a head of the dataset's classes.
    let train_device = device.clone().autodiff();
    train_device.seed(args.random_seed);
    let (spec, mut net) = bert::load_network(&source_dir, &train_device)?;
    let k = class_names.len();
    let head_added = finetune::hf::add_classifier_head(&mut net, &spec, k, &train_device);
    if verbose {
        eprintln!(
            "fine-tuning {} on {kind}: train {}, val {}, test {}; {} classes{}",
            reference.display_name(),
            train_set.len(),
            val.len(),
            test.as_ref().map_or(0, Vec::len),
            k,
            if head_added {
                " (new classification head)"
            } else {
                ""
            }
        );
    }
    let val_accuracy_before = accuracy(&net, &spec, &val, args.batch_size);
    let steps = train_set.len().div_ceil(args.batch_size.max(1)) * args.epochs;
    // A bar on a terminal; in a log, a line every 5% of the steps and one per epoch.
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let bar = crate::progress::progress_bar(steps, "fine-tuning", verbose && terminal);
    let log_every = (steps / 20).max(1);
    let mut loss_window = (0.0, 0usize);
    // The loop's state after every epoch, so an interrupted run resumes where it stopped.
    let checkpoint = finetune::train::Checkpoint {
        dir: args.out.join("checkpoint"),
        resume: !args.fresh,
    };
    let (net, records) = train(
        net,
        &spec,
        &train_set,
        &val,
        &config,
        Some(&checkpoint),
        |p| match p {
            Progress::Step { step, total, loss } => {
                bar.inc(1);
                bar.set_message(format!("loss {loss:.4}"));
                loss_window = (loss_window.0 + loss, loss_window.1 + 1);
                if verbose && !terminal && (step % log_every == 0 || step == total) {
                    eprintln!(
                        "step {step}/{total}: mean loss {:.4} over the last {} steps, {:.0} s",
                        loss_window.0 / loss_window.1 as f64,
                        loss_window.1,
                        started.elapsed().as_secs_f64()
                    );
                    loss_window = (0.0, 0);
                }
            }
            Progress::Epoch {
                epoch,
                train_loss,
                val_accuracy,
                improved,
            } => {
                let line = format!(
                    "epoch {}: train loss {train_loss:.4}, val accuracy {val_accuracy:.4}{}",
                    epoch + 1,
                    if improved { " (best)" } else { "" }
                );
                if terminal {
                    bar.println(line);
                } else if verbose {
                    eprintln!("{line}");
                }
            }
        },
    )?;
    bar.finish_and_clear();
    let val_accuracy = accuracy(&net, &spec, &val, args.batch_size);
    let test_accuracy = test.as_ref().map(|t| accuracy(&net, &spec, t, args.batch_size));

    finetune::hf::save_hf_folder(&net, &spec, &source_dir, &args.out, class_names)?;
    let report = Report {
        model: &args.model_path,
        dataset: format!("{kind} ({})", dataset_path.display()),
        class_names,
        train_examples: train_set.len(),
        val_examples: val.len(),
        test_examples: test.as_ref().map_or(0, Vec::len),
        settings: &config,
        max_length: args.max_length,
        backend: args.backend.name(),
        head_added,
        cache_key: &cache_key,
        records: records
            .iter()
            .map(|r| EpochJson {
                epoch: r.epoch,
                train_loss: r.train_loss,
                val_accuracy: r.val_accuracy,
                seconds: r.seconds,
            })
            .collect(),
        val_accuracy_before,
        val_accuracy,
        test_accuracy,
        seconds: started.elapsed().as_secs_f64(),
    };
    solver::io::write_atomic(&json, &serde_json::to_vec_pretty(&report)?)?;
    println!(
        "fine-tuned {}: val accuracy {val_accuracy_before:.4} -> {val_accuracy:.4}{}; model folder {}",
        reference.display_name(),
        test_accuracy.map_or(String::new(), |t| format!(", test accuracy {t:.4}")),
        args.out.display()
    );
    Ok(())
}
