//! `fit export`: a run's decision layer in a form other tools load as it is.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

use crate::run_folder::{LayerKind, RunFolder};

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A finished `fit` (or `fit path`) output folder.
    #[arg(long)]
    run: PathBuf,
    /// Which layer: the selected sparse one, the ridge dense one, or the network's own head.
    #[arg(long, value_enum, default_value_t = LayerKind::Selected)]
    layer: LayerKind,
    /// The form: `linear` is a safetensors file with exactly `weight [K, D]` and `bias [K]`,
    /// the standardization folded in, for `torch.nn.Linear(D, K).load_state_dict(..,
    /// strict=True)` on the raw features.
    #[arg(long, value_enum, default_value_t = Form::Linear)]
    to: Form,
    /// Output file (linear, torchvision, timm) or folder (hf); default
    /// RUN/export/<layer>_<form>[.safetensors].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Backend the network is loaded on for `--to hf`.
    #[arg(long, default_value = "flex")]
    backend: solver::BackendKind,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Form {
    Linear,
    /// A Hugging Face sequence-classification folder: the run's BERT / RoBERTa with the layer
    /// as its classifier (runs on the features the HF head reads: pooler for BERT,
    /// roberta-dense for RoBERTa), for `AutoModelForSequenceClassification`.
    Hf,
    /// A ResNet run's whole network as a torchvision state dict (safetensors) with the layer
    /// as its `fc`, for `torchvision.models.resnet50(num_classes=K)` (post-relu runs).
    Torchvision,
    /// The same state dict for timm (`timm.create_model("resnet50", num_classes=K)`), whose
    /// ResNet names are torchvision's.
    Timm,
}

impl Form {
    fn name(self) -> &'static str {
        match self {
            Form::Linear => "linear",
            Form::Hf => "hf",
            Form::Torchvision => "torchvision",
            Form::Timm => "timm",
        }
    }
}

pub fn run(args: ExportArgs) -> Result<()> {
    let folder = RunFolder::new(&args.run);
    let source = folder.layer_path(args.layer);
    let layer = folder.layer(args.layer)?;
    let out = args.out.clone().unwrap_or_else(|| {
        args.run.join("export").join(match args.to {
            Form::Hf => format!("{}_hf", args.layer.name()),
            form => format!("{}_{}.safetensors", args.layer.name(), form.name()),
        })
    });
    let (weight, bias) = layer.to_raw();
    match args.to {
        Form::Hf => return export_hf(&args, &weight, &bias, &out),
        Form::Torchvision | Form::Timm => return export_resnet(&args, &layer, &weight, &bias, &out),
        Form::Linear => {}
    }
    let meta = HashMap::from([
        ("source".to_string(), source.display().to_string()),
        (
            "logits".to_string(),
            "weight @ x + bias on raw (unstandardized) features".to_string(),
        ),
    ]);
    let bytes = solver::io::encode_safetensors(
        &[
            ("weight", vec![layer.k, layer.d], &weight),
            ("bias", vec![layer.k], &bias),
        ],
        Some(meta),
    )?;
    create_parent(&out)?;
    solver::io::write_atomic(&out, &bytes)?;
    println!(
        "wrote {} (nn.Linear({}, {}): weight [{}, {}], bias [{}]; {} nonzero weights)",
        out.display(),
        layer.d,
        layer.k,
        layer.k,
        layer.d,
        layer.k,
        weight.iter().filter(|w| **w != 0.0).count()
    );
    Ok(())
}

/// The run's BERT / RoBERTa with `weight`/`bias` (raw features) as its classification head,
/// written as a Hugging Face folder. Refused where the run's features are not what the HF head
/// reads: a layer on CLS or mean-pooled features has no place in `...ForSequenceClassification`.
fn export_hf(args: &ExportArgs, weight: &[f32], bias: &[f32], out: &std::path::Path) -> Result<()> {
    let recipe = RunFolder::new(&args.run).recipe()?;
    if !matches!(recipe.arch()?, crate::backbones::Arch::Bert) {
        bail!(
            "--to hf exports BERT / RoBERTa runs; this run's backbone is {}",
            recipe.arch
        );
    }
    let model = recipe
        .model_path
        .as_deref()
        .context("the run records no model path")?;
    let device = args.backend.device()?;
    // The folder of the run's weights (a hub id resolves to its cached snapshot).
    let weights = model_hub::ModelRef::parse(model)?.first_of(&["model.safetensors", "pytorch_model.bin"])?;
    let source_dir = weights
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let (spec, mut net) = bert::load_network(&source_dir, &device)?;
    let reads = match spec.arch {
        bert::Arch::Bert => "pooler",
        bert::Arch::Roberta => "roberta-dense",
    };
    if recipe.feature_mode != reads {
        bail!(
            "this run's layer reads {} features, and the HF classification head reads {reads} features (rerun `fit` with --feature-mode {reads} to export it as one)",
            recipe.feature_mode
        );
    }
    finetune::hf::set_classifier(&mut net, &spec, weight, bias, &device)
        .map_err(|reason| anyhow::anyhow!("{}: {reason}", source_dir.display()))?;
    finetune::hf::save_hf_folder(&net, &spec, &source_dir, out, &recipe.class_names)?;
    println!(
        "wrote {} ({} with the {} layer as its classifier: {} nonzero weights; AutoModelForSequenceClassification loads it)",
        out.display(),
        model,
        args.layer.name(),
        weight.iter().filter(|w| **w != 0.0).count()
    );
    Ok(())
}

fn create_parent(out: &std::path::Path) -> Result<()> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    Ok(())
}

/// A ResNet run's network under torchvision's names with `weight`/`bias` (raw features) as
/// its `fc`. Refused where the layer does not read what `fc` reads: torchvision's fc takes the
/// pooled post-ReLU features, a `pre-relu` run's layer the pooled features before the last ReLU.
fn export_resnet(
    args: &ExportArgs,
    layer: &solver::Layer,
    weight: &[f32],
    bias: &[f32],
    out: &std::path::Path,
) -> Result<()> {
    let form = args.to.name();
    let recipe = RunFolder::new(&args.run).recipe()?;
    let arch = match recipe.arch()? {
        crate::backbones::Arch::Vision(v) if v.is_resnet() => v,
        _ => bail!(
            "--to {form} exports ResNet runs; this run's backbone is {}",
            recipe.arch
        ),
    };
    if recipe.feature_mode != vision::FeatureMode::PostRelu.to_string() {
        bail!(
            "this run's layer reads {} features (pooled before the last block's ReLU), and torchvision's fc reads the pooled post-ReLU features, so the layer cannot be the network's fc: use --to linear and apply it to the same features, or rerun `fit` with --feature-mode post-relu",
            recipe.feature_mode
        );
    }
    let model = recipe
        .model_path
        .as_deref()
        .context("the run records no model path")?;
    let (mut tensors, layout) = vision::canonical_state_dict(arch, &vision::WeightsSource::parse(model)?)?;
    for (name, shape, values) in &mut tensors {
        match name.as_str() {
            "fc.weight" => (*shape, *values) = (vec![layer.k, layer.d], weight.to_vec()),
            "fc.bias" => (*shape, *values) = (vec![layer.k], bias.to_vec()),
            _ => {}
        }
    }
    create_parent(out)?;
    vision::synthetic::write_safetensors(&tensors, &[""], out)?;
    let constructor = match args.to {
        Form::Timm => format!("timm.create_model(\"{}\", num_classes={})", arch.name(), layer.k),
        _ => format!("torchvision.models.{}(num_classes={})", arch.name(), layer.k),
    };
    println!(
        "wrote {} ({} with the {} layer as its fc: {} nonzero weights; load with {constructor}.load_state_dict(safetensors.torch.load_file(path)))",
        out.display(),
        arch.name(),
        args.layer.name(),
        weight.iter().filter(|w| **w != 0.0).count()
    );
    if let Some((mean, std)) = layout.normalizer {
        eprintln!(
            "note: the checkpoint normalized its inputs inside the network (mean {mean:?}, std {std:?}); the exported network expects inputs normalized that way"
        );
    }
    Ok(())
}
