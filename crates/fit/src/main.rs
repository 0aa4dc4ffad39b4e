//! `fit`: sparse decision layers for deep networks from the command line.
//!
//! `fit --dataset … --arch … --out-path …` is the main job: deep features of a dataset from a
//! backbone (cached), the elastic-net path, the selected sparse layer and the dense-vs-sparse
//! tables. `fit` alone runs the offline default job. `fit path` runs the path on feature files a
//! user already has (`.npy` pairs or safetensors with `features`/`labels`).

use clap::{Parser, Subcommand};
use fit::{
    debug_cmd, export_cmd, finetune_cmd, floor_cmd, interpret_cmd, path_cmd, predict, report_cmd, run_cmd,
};

/// The solver allocates a fresh mini-batch (|B|×d floats) and a few small tensors per step, the
/// backbones a fresh buffer per activation; with the system allocator each multi-megabyte buffer
/// is a new mmap and its pages fault in again, which cost 2.4× in epoch time on the
/// 50,000×2,048 benchmark (0.55 s vs 0.23 s per epoch). See `backend::allocator`.
#[global_allocator]
static GLOBAL: backend::allocator::MiMalloc = backend::allocator::MiMalloc;

#[derive(Parser)]
#[command(
    name = "fit",
    version,
    about = "Sparse decision layers for debuggable deep networks"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: run_cmd::RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Elastic-net path on precomputed deep features, then selection of the sparse layer.
    #[command(args_override_self = true)]
    Path(path_cmd::PathArgs),
    /// Measure this machine's per-epoch floor on a feature file: the two n×d×K GEMMs of an epoch.
    Floor(floor_cmd::FloorArgs),
    /// Read the features of a finished run's layers: prototypes, LIME word clouds or superpixel
    /// overlays, coefficient paths; writes interpret.json and report.html into the run folder.
    Interpret(interpret_cmd::InterpretArgs),
    /// Debug the network through a run's sparse layer (after `fit interpret`): bias probe,
    /// counterfactual word swaps, errors fixed by zeroing one feature; writes debug.json and
    /// adds a section to report.html.
    Debug(debug_cmd::DebugArgs),
    /// Rebuild a run's report.html from its files (metrics.json, interpret.json, debug.json).
    Report(report_cmd::ReportArgs),
    /// Fine-tune a BERT / RoBERTa checkpoint's sequence classifier on a text dataset (AdamW,
    /// warmup and linear decay, dropout, clipping, early stopping) and write it as a Hugging
    /// Face model folder for `fit --model-path`.
    Finetune(finetune_cmd::FinetuneArgs),
    /// The debuggable network on new inputs: sentences (arguments, --file or stdin) or image
    /// files and folders; each prediction with the features that decided it.
    Predict(predict::PredictArgs),
    /// Export a run's decision layer for PyTorch: `--to linear` (`weight [K, D]`, `bias [K]`,
    /// the standardization folded in, for a strict `torch.nn.Linear` load), `--to hf` (BERT /
    /// RoBERTa with the layer as classifier), `--to torchvision` / `timm` (ResNet with it as fc).
    Export(export_cmd::ExportArgs),
}

fn main() {
    backend::allocator::retain_freed_memory();
    let cli = Cli::parse();
    let outcome =
        match cli.command {
            Some(Command::Path(args)) => path_cmd::run(args),
            Some(Command::Floor(args)) => floor_cmd::run(args),
            Some(Command::Interpret(args)) => interpret_cmd::run(args),
            Some(Command::Debug(args)) => debug_cmd::run(args),
            Some(Command::Finetune(args)) => finetune_cmd::run(args),
            Some(Command::Export(args)) => export_cmd::run(args),
            Some(Command::Predict(args)) => predict::run(args),
            Some(Command::Report(args)) => {
                report_cmd::write_report(&args.run).map(|p| println!("wrote {}", p.display()))
            }
            None if cli.run.dataset.is_none() && std::env::args_os().len() == 1 => {
                let job = run_cmd::default_job();
                eprintln!(
                "fit: no arguments, running the offline default job: MiniLM features of the Rotten Tomatoes \
                 snippets into {} (`fit --help` for your own data)",
                job.out_path.as_deref().unwrap_or(std::path::Path::new(".")).display()
            );
                run_cmd::run(job)
            }
            None => run_cmd::run(cli.run),
        };
    if let Err(e) = outcome {
        // One readable line: the error and its causes joined, no backtrace.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
