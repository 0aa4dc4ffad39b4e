//! The paper's jobs on the data this world has: `repro-sst` (sentiment, Figure 4-style table)
//! and `repro-vision` (EfficientNet-Lite0 features of Fashion-MNIST). Both run the `fit` binary,
//! so what they do is exactly what a user's `fit` command does.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;
use clap::Args;

use crate::{build_fit, root, run};

#[derive(Args)]
pub struct ReproSstArgs {
    /// A real SST folder (the Stanford release) to run the paper's own setting on; default: the
    /// Rotten Tomatoes snippets SST was built from (fetched), with a seeded 80/10/10 split.
    #[arg(long)]
    sst_path: Option<PathBuf>,
    /// The model: a folder or hub id. Default: sentence-transformers/all-MiniLM-L6-v2 (mean-pooled,
    /// normalized sentence embeddings); with --sst-path e.g. barissayil/bert-sentiment-analysis-sst.
    #[arg(long)]
    model_path: Option<String>,
    /// Feature mode (default: pooler after fine-tuning, where the fine-tuned head reads;
    /// without it the checkpoint's own, mean-l2 for MiniLM; the paper used cls for SST).
    #[arg(long)]
    feature_mode: Option<String>,
    /// Read the encoder as it is (frozen) instead of fine-tuning it on the training split
    /// first; for a backbone already trained on the task (e.g. an SST model).
    #[arg(long)]
    no_finetune: bool,
    /// Fine-tuning epochs (`fit finetune --epochs`).
    #[arg(long, default_value_t = 2)]
    finetune_epochs: usize,
    /// Where the fine-tuned model goes; reused by a rerun with the same model, data, seed and
    /// settings.
    #[arg(long, default_value = "runs/finetuned/repro-sst")]
    finetuned: PathBuf,
    #[arg(long, default_value = "flex")]
    backend: String,
    #[arg(long, default_value = "runs/repro-sst")]
    out: PathBuf,
    /// Stop after the layers and the table: skip `fit interpret` and `fit debug` (the report).
    #[arg(long)]
    no_report: bool,
    /// Extra arguments passed to `fit` as they are (e.g. `-- --k 50`).
    #[arg(last = true)]
    extra: Vec<String>,
}

pub fn repro_sst(args: ReproSstArgs) -> Result<()> {
    if args.sst_path.is_none() {
        crate::fetch::fetch_all()?;
    }
    let fit = build_fit(&args.backend)?;
    let model_path = if args.no_finetune {
        args.model_path.clone()
    } else {
        finetune(&fit, &args)?;
        Some(args.finetuned.display().to_string())
    };
    let feature_mode = match (&args.feature_mode, args.no_finetune) {
        (Some(m), _) => Some(m.clone()),
        // The fine-tuned head reads the pooler output: the table then has the head's row.
        (None, false) => Some("pooler".to_string()),
        (None, true) => None,
    };
    let mut cmd = Command::new(&fit);
    cmd.current_dir(root())
        .arg("--arch")
        .arg("bert")
        .arg("--out-path")
        .arg(&args.out);
    match &args.sst_path {
        Some(p) => cmd.args(["--dataset", "sst", "--dataset-path"]).arg(p),
        None => cmd.args(["--dataset", "rotten-tomatoes"]),
    };
    if let Some(m) = &model_path {
        cmd.arg("--model-path").arg(m);
    }
    if let Some(m) = &feature_mode {
        cmd.arg("--feature-mode").arg(m);
    }
    cmd.args(["--backend", &args.backend]).args(&args.extra);
    eprintln!("repro-sst: {cmd:?}");
    run(&mut cmd)?;
    if !args.no_report {
        report_stages(&fit, &args.out, &args.backend)?;
    }
    Ok(())
}

/// `fit finetune` of the job's model on its dataset's training split into `args.finetuned`
/// (skipped by `fit finetune` itself when a finished model with the same key is there).
fn finetune(fit: &std::path::Path, args: &ReproSstArgs) -> Result<()> {
    let mut cmd = Command::new(fit);
    cmd.current_dir(root()).arg("finetune");
    match &args.sst_path {
        Some(p) => cmd.args(["--dataset", "sst", "--dataset-path"]).arg(p),
        None => cmd.args(["--dataset", "rotten-tomatoes"]),
    };
    if let Some(m) = &args.model_path {
        cmd.arg("--model-path").arg(m);
    }
    cmd.arg("--epochs")
        .arg(args.finetune_epochs.to_string())
        .arg("--out")
        .arg(&args.finetuned)
        .args(["--backend", &args.backend]);
    eprintln!("repro-sst: {cmd:?}");
    run(&mut cmd)
}

/// `fit interpret` (a card for every feature of the sparse layer) then `fit debug` on a
/// finished run: interpret.json, debug.json, report.html.
fn report_stages(fit: &std::path::Path, out: &std::path::Path, backend: &str) -> Result<()> {
    for stage in ["interpret", "debug"] {
        let mut cmd = Command::new(fit);
        cmd.current_dir(root())
            .arg(stage)
            .arg("--run")
            .arg(out)
            .args(["--backend", backend]);
        if stage == "interpret" {
            cmd.args(["--max-features", "0"]);
        }
        eprintln!("repro: {cmd:?}");
        run(&mut cmd)?;
    }
    Ok(())
}

#[derive(Args)]
pub struct ReproVisionArgs {
    /// Examples per split (a seeded subset of Fashion-MNIST's 54,000 / 6,000 / 10,000).
    #[arg(long, default_value_t = 1000)]
    max_examples: usize,
    #[arg(long, default_value = "flex")]
    backend: String,
    #[arg(long, default_value = "runs/repro-vision")]
    out: PathBuf,
    /// Stop after the layers and the table: skip `fit interpret` and `fit debug` (the report).
    #[arg(long)]
    no_report: bool,
    #[arg(last = true)]
    extra: Vec<String>,
}

pub fn repro_vision(args: ReproVisionArgs) -> Result<()> {
    crate::fetch::fetch_all()?;
    let fit = build_fit(&args.backend)?;
    let mut cmd = Command::new(&fit);
    cmd.current_dir(root())
        .args([
            "--dataset",
            "fashion-mnist",
            "--arch",
            "efficientnet-lite0",
            "--out-path",
        ])
        .arg(&args.out)
        .arg("--max-examples")
        .arg(args.max_examples.to_string())
        .args(["--backend", &args.backend])
        .args(&args.extra);
    eprintln!("repro-vision: {cmd:?}");
    run(&mut cmd)?;
    if !args.no_report {
        report_stages(&fit, &args.out, &args.backend)?;
    }
    Ok(())
}
