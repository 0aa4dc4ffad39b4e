//! `fit export`: a run's decision layer in a form other tools load as it is.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A finished `fit` (or `fit path`) output folder.
    #[arg(long)]
    run: PathBuf,
    /// Which layer: the selected sparse one, the ridge dense one, or the network's own head.
    #[arg(long, value_enum, default_value_t = Which::Selected)]
    layer: Which,
    /// The form: `linear` is a safetensors file with exactly `weight [K, D]` and `bias [K]`,
    /// the standardization folded in, for `torch.nn.Linear(D, K).load_state_dict(..,
    /// strict=True)` on the raw features.
    #[arg(long, value_enum, default_value_t = Form::Linear)]
    to: Form,
    /// Output file (default: RUN/export/<layer>_linear.safetensors).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Which {
    Selected,
    Dense,
    Head,
}

impl Which {
    fn file(self) -> &'static str {
        match self {
            Which::Selected => "selected.safetensors",
            Which::Dense => "dense.safetensors",
            Which::Head => "head.safetensors",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Which::Selected => "selected",
            Which::Dense => "dense",
            Which::Head => "head",
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Form {
    Linear,
}

pub fn run(args: ExportArgs) -> Result<()> {
    let source = args.run.join(args.layer.file());
    if !source.is_file() {
        bail!(
            "{} has no {}: {}",
            args.run.display(),
            args.layer.file(),
            match args.layer {
                Which::Head => "the run's network has no head that reads its features",
                _ => "the run did not finish; rerun its `fit` command to complete it",
            }
        );
    }
    let layer = solver::Layer::load(&source)?;
    let out = args.out.unwrap_or_else(|| {
        args.run
            .join("export")
            .join(format!("{}_linear.safetensors", args.layer.name()))
    });
    let Form::Linear = args.to;
    let (weight, bias) = layer.to_raw();
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
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
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
