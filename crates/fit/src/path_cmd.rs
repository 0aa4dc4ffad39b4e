//! `fit path`: the solver on its own, on feature files.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use solver::{
    BackendKind, Family, FeatureSource, PathConfig, PathResult, Problem, RunOptions, Selection, Standardizer,
    StepSize, Storage, Threshold,
};

#[derive(Args, Debug)]
pub struct PathArgs {
    /// Training features: FILE.safetensors (tensors `features` [n,d] and `labels`), X.npy,y.npy,
    /// or X_train.npy (labels read from y_train.npy beside it).
    #[arg(long)]
    train: String,
    /// Validation features, same forms; used to select the layer.
    #[arg(long)]
    val: String,
    /// Test features, same forms; only reported.
    #[arg(long)]
    test: Option<String>,
    /// Output folder (path.json, layers/, selected.safetensors, checkpoint).
    #[arg(long, alias = "out-path")]
    out: PathBuf,
    /// GLM family: multinomial (class labels), gaussian or multilabel (an [n, K] target matrix).
    #[arg(long, default_value = "multinomial")]
    family: Family,
    /// Number of outputs K (default: max label + 1 of the training split).
    #[arg(long)]
    num_classes: Option<usize>,
    /// Elastic-net mixing α: 1 = lasso, 0 = ridge.
    #[arg(long, default_value_t = 0.99)]
    alpha: f64,
    /// Number of λ values on the path.
    #[arg(long, default_value_t = 100)]
    k: usize,
    /// Fit this one λ instead of a path (from the λ_max solution, as Label-free CBM runs
    /// glm_saga with k=1); --k and --eps are then unused.
    #[arg(long, conflicts_with_all = ["k", "eps", "lambdas"])]
    lambda: Option<f64>,
    /// Solve these λs in order (comma-separated, not increasing) instead of the log-spaced
    /// grid, e.g. a grid computed by another tool; --k and --eps are then unused.
    #[arg(long, value_delimiter = ',', num_args = 1.., conflicts_with_all = ["k", "eps"])]
    lambdas: Option<Vec<f64>>,
    /// End the path after the first λ whose layer has at least N nonzero weights per class on
    /// average (ImageNet layers are read at ~20 per class).
    #[arg(long, value_name = "N")]
    max_features_per_class: Option<f64>,
    /// A reference validation accuracy (e.g. the backbone's own head): selection keeps the
    /// sparsest layer within --select-threshold of it instead of the path's best, and the path
    /// ends once a λ reaches that band.
    #[arg(long, value_name = "ACC")]
    reference_accuracy: Option<f64>,
    /// The path ends at eps·λ_max.
    #[arg(long, alias = "lam-factor", default_value_t = 1e-3)]
    eps: f64,
    /// Append a λ = 0 (dense) fit to the path.
    #[arg(long)]
    dense_end: bool,
    /// Group lasso over features instead of the elementwise ℓ1 penalty.
    #[arg(long)]
    group: bool,
    /// Step size: a number, or `auto` (derived from the data's smoothness).
    #[arg(long, default_value = "auto")]
    lr: StepSize,
    /// Step sizes decay log-linearly from lr to lr/lr_decay along the path.
    #[arg(long, default_value_t = 1.0)]
    lr_decay: f64,
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    #[arg(long, default_value_t = 2000)]
    max_epochs: usize,
    /// Stopping tolerance on the relative weight change per epoch.
    #[arg(long, default_value_t = 1e-4)]
    tol: f64,
    /// Also stop when the epoch objective has not improved for this many epochs (0 = off).
    #[arg(long, default_value_t = 3)]
    lookbehind: usize,
    /// Also stop when the objective gap estimated from the epoch objectives' decrease (linear
    /// convergence) is below this, relative to the objective (0 = off). With `--tol 0` it is
    /// the only tolerance: it follows the curvature along the path, where a weight-change
    /// tolerance over-solves large λ and under-solves small ones.
    #[arg(long, default_value_t = 0.0)]
    gap_tol: f64,
    /// Seed of the shuffles.
    #[arg(long, alias = "random-seed", default_value_t = 0)]
    seed: u64,
    /// Run SAGA on every feature at every λ instead of the screened ones (strong rule + KKT
    /// check); same optimum, slower on sparse layers.
    #[arg(long)]
    no_screen: bool,
    /// Screen whole features only, not each (feature, class) weight (pair screening applies
    /// to the elementwise penalty from 100 classes on the CPU backend); for comparisons.
    #[arg(long)]
    no_pair_screen: bool,
    /// Start every λ from the last solution itself instead of the extrapolation of the last
    /// two (where the previous λ was solved on all features); for comparisons.
    #[arg(long)]
    no_extrapolate: bool,
    /// Selection: how far below the best validation accuracy the selected layer may be.
    #[arg(long, default_value_t = 0.05)]
    select_threshold: f64,
    /// Read --select-threshold as a fraction of the best accuracy instead of absolute points.
    #[arg(long)]
    select_relative: bool,
    /// The features are already standardized: skip it (mean 0, std 1 are stored with layers).
    #[arg(long)]
    no_standardize: bool,
    /// How the features are held in memory: f32, f16 or bf16 (computed in f32 either way; a
    /// half-precision X takes half the memory). Default: the files' own precision (f16 `.npy`
    /// and F16/BF16 safetensors stay half, anything else is f32).
    #[arg(long, value_name = "PRECISION")]
    storage: Option<Storage>,
    /// Move X to the compute device a block at a time (batches, row chunks of full passes,
    /// the screened columns) from host memory (`--stream`, `--stream memory`: a GPU then
    /// holds only the SAGA table, W and the blocks in flight) or from the `.npy` files
    /// themselves (`--stream disk`: X is never loaded; for features larger than memory). Same
    /// path bit for bit. Half-precision storage is always held in host memory this way.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "memory", value_name = "FROM")]
    stream: Option<StreamFrom>,
    /// Run only the first N λ of the path (selection then sees only those).
    #[arg(long)]
    first: Option<usize>,
    /// Continue an interrupted path from the checkpoint in --out.
    #[arg(long)]
    resume: bool,
    /// Compute backend: flex, ndarray, wgpu, tch or cuda (must be compiled in).
    #[arg(long, default_value = "flex")]
    backend: BackendKind,
    /// No progress bars or per-λ lines.
    #[arg(long, short)]
    quiet: bool,
}

/// Where `--stream` reads the feature rows from.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamFrom {
    Memory,
    Disk,
}

/// What `path.json` holds: the path, the selection, and where the files are.
#[derive(Serialize)]
pub struct PathReport<'a> {
    #[serde(flatten)]
    path: &'a PathResult,
    selection: &'a Selection,
    selected_layer: String,
    layers_dir: String,
    backend: &'static str,
}

pub fn run(args: PathArgs) -> Result<()> {
    let config = PathConfig {
        family: args.family,
        alpha: args.alpha,
        n_lambdas: args.k,
        eps: args.eps,
        dense_end: args.dense_end,
        group: args.group,
        lr: args.lr,
        lr_decay: args.lr_decay,
        batch_size: args.batch_size,
        max_epochs: args.max_epochs,
        tol: args.tol,
        lookbehind: args.lookbehind,
        gap_tol: args.gap_tol,
        seed: args.seed,
        screen: !args.no_screen,
        screen_pairs: !args.no_pair_screen,
        extrapolate: !args.no_extrapolate,
        lambda: args.lambda,
        lambda_list: args.lambdas,
        ..PathConfig::default()
    };
    config.validate()?;
    let threshold = if args.select_relative {
        Threshold::Relative(args.select_threshold)
    } else {
        Threshold::Absolute(args.select_threshold)
    };
    threshold.validate()?;
    RunOptions {
        max_features_per_class: args.max_features_per_class,
        ..RunOptions::default()
    }
    .validate()?;
    if let Some(r) = args.reference_accuracy {
        anyhow::ensure!(
            (0.0..=1.0).contains(&r),
            "--reference-accuracy must lie in [0, 1], got {r}"
        );
    }

    if let (Some(StreamFrom::Disk), Some(storage)) = (args.stream, args.storage) {
        anyhow::bail!(
            "--storage {storage} cannot apply to --stream disk: the rows are read in the files' own precision"
        );
    }
    let load = |spec: &str, name: &str| -> Result<solver::Split> {
        let source = FeatureSource::parse(spec)?;
        Ok(match args.stream {
            Some(StreamFrom::Disk) => source.load_streamed(name)?,
            _ => source.load_as(name, args.storage)?,
        })
    };
    let train = load(&args.train, "train")?;
    let val = load(&args.val, "val")?;
    let test = args.test.as_deref().map(|t| load(t, "test")).transpose()?;

    // Validate the raw values (NaN/Inf are reported where they are in the files), then
    // standardize in place with the training statistics.
    let mut problem = Problem::new(args.family, train, Some(val), test, args.num_classes)?;
    let standardizer = problem.standardize(!args.no_standardize);
    if !standardizer.clamped.is_empty() {
        eprintln!(
            "warning: {} constant feature(s) (training std < {:e}) kept with std clamped to 1: {:?}",
            standardizer.clamped.len(),
            Standardizer::MIN_STD,
            &standardizer.clamped[..standardizer.clamped.len().min(20)]
        );
    }

    let device = args.backend.device()?;
    let _lock = solver::io::lock_output(&args.out)?;
    let final_json = args.out.join("path.json");
    if final_json.exists() {
        // A finished run's summary must never describe a different, half-done run.
        std::fs::remove_file(&final_json)
            .with_context(|| format!("cannot remove {}", final_json.display()))?;
    }
    let opts = RunOptions {
        out_dir: Some(args.out.clone()),
        resume: args.resume,
        keep_layers: false,
        progress: !args.quiet,
        verbose: !args.quiet,
        stop_after: args.first,
        max_features_per_class: args.max_features_per_class,
        stop_at_val_score: args.reference_accuracy.map(|r| threshold.floor(r)),
        host_rows: args.stream.is_some(),
        ..RunOptions::default()
    };
    if !args.quiet {
        eprintln!(
            "path: n={} d={} K={} family={:?} alpha={} k={} backend={} features {}{}",
            problem.train.n,
            problem.d(),
            problem.k,
            args.family,
            args.alpha,
            args.k,
            args.backend.name(),
            problem.train.x.storage(),
            match args.stream {
                Some(StreamFrom::Memory) => " (streamed from host memory)",
                Some(StreamFrom::Disk) => " (streamed from the files)",
                None => "",
            }
        );
    }
    // One-off n×m screened copies must not stay in the footprint (see backend::allocator).
    backend::allocator::release_freed_memory_after(crate::PATH_PURGE_DELAY_MS);
    let result = solver::run_path(problem, &standardizer, &config, &device, &opts)?;
    let selection = match args.reference_accuracy {
        Some(r) => solver::select::select_against(&result.records, threshold, r)?,
        None => solver::select(&result.records, threshold)?,
    };

    write_path_outputs(&args.out, &result, &selection, args.backend)?;

    let sel = &result.records[selection.selected_index];
    let best = &result.records[selection.best_index];
    let score = args.family.score_name();
    println!(
        "best:     λ #{:<3} {:.4e}  val {score} {:.4}  nnz {} ({} features)",
        best.index, best.lambda, selection.best_val_score, best.nnz, best.features_used
    );
    println!(
        "selected: λ #{:<3} {:.4e}  val {score} {:.4}  nnz {} ({} features; per class {}){}",
        sel.index,
        sel.lambda,
        selection.selected_val_score,
        sel.nnz,
        sel.features_used,
        per_class_summary(&sel.nnz_per_class),
        sel.test
            .map(|t| format!("  test {score} {:.4}", t.score()))
            .unwrap_or_default()
    );
    if let Some(reason) = &result.ended_early {
        println!("the path ended early: {reason}");
    }
    if let (Some(plan), Some(peak)) = (&result.memory, result.peak_rss) {
        println!(
            "memory: peak RSS {:.3} GB; plan {:.3} GB (X train {:.3} + val {:.3} + test {:.3}, table {:.3})",
            peak as f64 / 1e9,
            plan.total() as f64 / 1e9,
            plan.x_train as f64 / 1e9,
            plan.x_val as f64 / 1e9,
            plan.x_test as f64 / 1e9,
            plan.table as f64 / 1e9
        );
    }
    println!(
        "time: path {:.1} s, of which layer files and checkpoints {:.2} s ({:.2}%)",
        result.path_seconds,
        result.write_seconds,
        100.0 * result.write_seconds / result.path_seconds.max(1e-9)
    );
    println!("wrote {}", args.out.display());
    Ok(())
}

/// Nonzero weights per class for a terminal: every count for a few classes, min / median /
/// max beyond ten (K = 1,000 would print a thousand numbers).
pub fn per_class_summary(counts: &[usize]) -> String {
    if counts.len() <= 10 {
        return format!("{counts:?}");
    }
    let mut sorted = counts.to_vec();
    sorted.sort_unstable();
    format!(
        "min {} / median {} / max {} over {} classes",
        sorted[0],
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1],
        sorted.len()
    )
}

/// Copy the selected layer to `selected.safetensors` and write `path.json`, both atomically.
pub fn write_path_outputs(
    out: &std::path::Path,
    result: &PathResult,
    selection: &Selection,
    backend: BackendKind,
) -> Result<()> {
    let selected_src = solver::path::layer_file(out, selection.selected_index);
    let bytes =
        std::fs::read(&selected_src).with_context(|| format!("cannot read {}", selected_src.display()))?;
    solver::io::write_atomic(&out.join("selected.safetensors"), &bytes)?;
    let report = PathReport {
        path: result,
        selection,
        selected_layer: "selected.safetensors".into(),
        layers_dir: "layers".into(),
        backend: backend.name(),
    };
    solver::io::write_atomic(&out.join("path.json"), &serde_json::to_vec_pretty(&report)?)?;
    Ok(())
}
