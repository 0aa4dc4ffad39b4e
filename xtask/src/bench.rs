//! `cargo xtask bench-solver`: our path solver beside glmnet, scikit-learn and glm_saga on the
//! shared workloads (shared/bench), in one run. Our run is written in the peers' result format
//! so the shared summary computes every solver's objective gap against the same best-known
//! objective; the table printed here adds time ratios and the per-epoch floor.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};
use solver::io::{read_npy, Array, Layer};

use crate::{build_fit, fit_path, root, run};

/// Grid indices of the check λs (shared/bench/run_peers.py: λ_max/2, /10, /100).
pub const CHECKS: [usize; 3] = [10, 33, 66];

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Workload: w1 (8,000×384, 2 classes), w2 (50,000×2,048, 10), w3 (20,000×512, 100).
    #[arg(long, default_value = "w1")]
    workload: String,
    /// Only the first N λ of the 100-λ grid, for every solver.
    #[arg(long)]
    first: Option<usize>,
    /// Peers to run now, comma-separated (glmnet, sklearn, glm_saga); `none` reuses saved results.
    #[arg(long, default_value = "glmnet,sklearn,glm_saga")]
    peers: String,
    /// Also compute the high-precision reference objectives (glmnet, thr 1e-10) at the check λs.
    #[arg(long)]
    reference: bool,
    /// Backend of our solver.
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Our solver's step size (`auto` or a number).
    #[arg(long, default_value = "auto")]
    lr: String,
    /// Our solver's stopping tolerance (relative weight change per epoch). A value other than
    /// the solver's default 1e-4 is named in our row and result file, so runs at two
    /// tolerances sit side by side in the summary.
    #[arg(long, default_value = "1e-4")]
    tol: String,
    /// Our solver's mini-batch size.
    #[arg(long, default_value = "256")]
    batch_size: String,
    /// Our solver without feature screening (SAGA on every feature at every λ).
    #[arg(long)]
    no_screen: bool,
    /// Skip the peers' quiet-machine gate (smoke runs only: timings are then not comparable).
    #[arg(long)]
    no_wait: bool,
    /// Stop a peer once its path has run this many times our path time (plus a minute for its
    /// imports): its row then says it was still running, a lower bound on the ratio, instead of
    /// waiting hours for glm_saga's full path on w2/w3. Off by default.
    #[arg(long, value_name = "RATIO")]
    peer_limit: Option<f64>,
}

/// How our run is named: the solver label in the summary (`burn-saga (flex, tol 1e-3)`) and
/// the tag of its result file (`burn-saga-tol1e-3`); screening off and a non-default tolerance
/// are part of both, so the summary can hold several of our runs at once.
fn our_names(args: &BenchArgs) -> (String, String) {
    let mut label = args.backend.clone();
    let mut tag = "burn-saga".to_string();
    if args.no_screen {
        label.push_str(", no screening");
        tag.push_str("-noscreen");
    }
    if args.tol.parse::<f64>().ok() != Some(solver::PathConfig::default().tol) {
        label.push_str(&format!(", tol {}", args.tol));
        tag.push_str(&format!("-tol{}", args.tol));
    }
    (format!("burn-saga ({label})"), tag)
}

fn loadavg() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect()
}

fn bench_dir() -> PathBuf {
    root().join("bench-data")
}

fn python() -> PathBuf {
    bench_dir().join("bench-venv/bin/python")
}

fn peers_cmd(workload: &str) -> Command {
    let mut cmd = Command::new(python());
    cmd.current_dir(root())
        .arg(bench_dir().join("bench/run_peers.py"))
        .arg(workload)
        .env("BENCH_WORKLOADS", bench_dir().join("workloads"))
        .env("BENCH_PATHS", bench_dir().join("paths"));
    cmd
}

pub fn bench(args: BenchArgs) -> Result<()> {
    let w = args.workload.as_str();
    if let Some(r) = args.peer_limit {
        if !(r.is_finite() && r > 0.0) {
            bail!("--peer-limit must be a positive ratio (got {r})");
        }
    }
    // 1. Peers' environment and the workload files (idempotent).
    run(Command::new("bash")
        .arg(root().join("scripts/bench-setup.sh"))
        .env("BENCH_NAMES", w)
        .current_dir(root()))
    .context("scripts/bench-setup.sh")?;
    let wl = bench_dir().join("workloads").join(w);
    let fit = build_fit(&args.backend)?;

    // 2. The floor: two full n×d×K GEMMs on this machine and backend.
    let out = Command::new(&fit)
        .arg("floor")
        .arg("--train")
        .arg(wl.join("X_train.npy"))
        .args(["--backend", &args.backend])
        .output()?;
    if !out.status.success() {
        bail!("fit floor: {}", String::from_utf8_lossy(&out.stderr));
    }
    let floor: Value = serde_json::from_slice(&out.stdout)?;
    eprintln!("floor: {floor}");

    // 3. Our path, timed by the solver's own per-λ records.
    let run_dir = bench_dir().join("runs").join(w);
    let _ = std::fs::remove_dir_all(&run_dir);
    let load_start = loadavg();
    let mut cmd = peers_problem_path(&fit, &wl, &run_dir, &args.backend, args.first);
    cmd.args([
        "--lr",
        &args.lr,
        "--tol",
        &args.tol,
        "--batch-size",
        &args.batch_size,
    ]);
    if args.no_screen {
        cmd.arg("--no-screen");
    }
    run(&mut cmd)?;
    let load_end = loadavg();
    let (ours, our_seconds) = write_our_result(&args, &wl, &run_dir, &floor, (load_start, load_end))?;
    eprintln!("wrote {}", ours.display());

    // 4. The peers, each in its own process, on the same files.
    let mut unfinished = Vec::new();
    for peer in args
        .peers
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty() && *p != "none")
    {
        let mut cmd = peers_cmd(w);
        cmd.args(["--solver", peer]);
        if let Some(n) = args.first {
            cmd.args(["--first", &n.to_string()]);
        }
        if peer == "glm_saga" {
            cmd.args(["--threads", "2"]);
        }
        if args.no_wait {
            cmd.arg("--no-wait");
        }
        match args.peer_limit {
            None => run(&mut cmd).with_context(|| format!("peer {peer}"))?,
            Some(ratio) => {
                // A result left by an earlier run must not stand in for one stopped now.
                let result = bench_dir()
                    .join("bench/results")
                    .join(format!("{peer}_{w}{}.json", first_suffix(args.first)));
                if result.exists() {
                    std::fs::rename(&result, result.with_extension("json.prev"))?;
                }
                let limit = Duration::from_secs_f64(ratio * our_seconds + PEER_IMPORT_ALLOWANCE_S);
                if let Some(ran) = run_limited(&mut cmd, &format!("[{peer}/{w}] n="), limit)
                    .with_context(|| format!("peer {peer}"))?
                {
                    unfinished.push((peer.to_string(), ran));
                }
            }
        }
    }
    if args.reference {
        run(peers_cmd(w).args(["--solver", "ref"]))?;
    }

    // 5. The shared summary (gaps against the best-known objective), then our table.
    let out = peers_cmd(w).arg("--summary").output()?;
    if !out.status.success() {
        bail!("run_peers.py --summary: {}", String::from_utf8_lossy(&out.stderr));
    }
    let summary: Value = serde_json::from_slice(&out.stdout).context("summary JSON")?;
    print_table(&summary, &floor, args.first, &our_names(&args).0);
    for (peer, ran) in unfinished {
        println!(
            "{peer}: stopped unfinished after {ran:.0} s of its path ({:.0} s allowed for its imports): \
             slower than ours by more than {:.1}× (ours {our_seconds:.2} s)",
            PEER_IMPORT_ALLOWANCE_S,
            (ran - PEER_IMPORT_ALLOWANCE_S) / our_seconds
        );
    }
    Ok(())
}

/// `fit path` on a shared workload as the peers solve it (shared/bench: α 0.99, 100 λ down to
/// 1e-3·λ_max, `--first N` of them), into `run_dir`. The workloads are standardized already;
/// the peers use them as they are.
pub fn peers_problem_path(
    fit: &Path,
    wl: &Path,
    run_dir: &Path,
    backend: &str,
    first: Option<usize>,
) -> Command {
    let mut cmd = fit_path(fit, wl, run_dir, backend);
    cmd.args([
        "--no-standardize",
        "--alpha",
        "0.99",
        "--k",
        "100",
        "--eps",
        "1e-3",
    ]);
    if let Some(n) = first {
        cmd.args(["--first", &n.to_string()]);
    }
    cmd
}

/// Seconds granted on top of `--peer-limit`: the clock starts at the runner's start line, which
/// it prints after loading the data but before importing its solver and starting its own timer.
const PEER_IMPORT_ALLOWANCE_S: f64 = 60.0;

/// `_firstN` in result file names (run_peers.py's tags) when only the head of the 100-λ grid ran.
fn first_suffix(first: Option<usize>) -> String {
    first
        .filter(|&n| n < 100)
        .map(|n| format!("_first{n}"))
        .unwrap_or_default()
}

/// Run a peer, echoing its output, and kill it once `limit` has passed since it printed the line
/// starting with `start` (its quiet-machine gate can wait first; that wait is not counted).
/// `Some(seconds since the start line)` when it was stopped, `None` when it finished.
fn run_limited(cmd: &mut Command, start: &str, limit: Duration) -> Result<Option<f64>> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    let stdout = child.stdout.take().context("peer stdout")?;
    let (started_tx, started_rx) = mpsc::channel();
    let start = start.to_string();
    let echo = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            if line.starts_with(&start) {
                let _ = started_tx.send(Instant::now());
            }
        }
    });
    let mut started: Option<Instant> = None;
    loop {
        if let Some(status) = child.try_wait()? {
            let _ = echo.join();
            if !status.success() {
                bail!("{cmd:?} failed with {status}");
            }
            return Ok(None);
        }
        if started.is_none() {
            started = started_rx.try_recv().ok();
        }
        if let Some(t0) = started {
            if t0.elapsed() >= limit {
                let ran = t0.elapsed().as_secs_f64();
                child.kill()?;
                child.wait()?;
                let _ = echo.join();
                return Ok(Some(ran));
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// f64 objective of a layer on (X, y) at λ, α = 0.99 (the peers' definition, evaluated here):
/// mean cross-entropy + λ(α·P(W) + (1−α)/2·‖W‖²), P the elementwise ‖W‖₁ or, with `group`,
/// Σ_j ‖W_·j‖₂ over each feature's weights.
pub fn objective64(x: &[f32], y: &[i64], d: usize, layer: &Layer, lambda: f64, group: bool) -> f64 {
    let k = layer.k;
    let mut loss = 0.0;
    let mut z = vec![0f64; k];
    for (row, &label) in x.chunks_exact(d).zip(y) {
        for (c, zc) in z.iter_mut().enumerate() {
            let w = &layer.weight[c * d..(c + 1) * d];
            *zc = layer.bias[c] as f64 + row.iter().zip(w).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>();
        }
        let m = z.iter().cloned().fold(f64::MIN, f64::max);
        let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        loss += lse - z[label as usize];
    }
    let l1: f64 = if group {
        (0..d)
            .map(|j| {
                (0..k)
                    .map(|c| (layer.weight[c * d + j] as f64).powi(2))
                    .sum::<f64>()
                    .sqrt()
            })
            .sum()
    } else {
        layer.weight.iter().map(|v| (*v as f64).abs()).sum()
    };
    let l2: f64 = layer.weight.iter().map(|v| (*v as f64).powi(2)).sum();
    loss / y.len() as f64 + lambda * (0.99 * l1 + 0.005 * l2)
}

pub fn floats(a: Array) -> Result<(Vec<usize>, Vec<f32>)> {
    match a {
        Array::Float { shape, data } => Ok((shape, data)),
        _ => bail!("expected float features"),
    }
}

pub fn ints(a: Array) -> Result<Vec<i64>> {
    match a {
        Array::Int { data, .. } => Ok(data),
        _ => bail!("expected integer labels"),
    }
}

/// Write our run as `results/burn-saga_<w>[_firstN].json` in run_peers.py's format.
fn write_our_result(
    args: &BenchArgs,
    wl: &Path,
    run_dir: &Path,
    floor: &Value,
    load: (Vec<f64>, Vec<f64>),
) -> Result<(PathBuf, f64)> {
    let report: Value = serde_json::from_slice(&std::fs::read(run_dir.join("path.json"))?)?;
    let records = report["records"].as_array().context("records")?;
    let (shape, x) = floats(read_npy(&wl.join("X_train.npy"))?)?;
    let y = ints(read_npy(&wl.join("y_train.npy"))?)?;
    let d = shape[1];
    let get = |key: &str| -> Vec<Value> { records.iter().map(|r| r[key].clone()).collect() };
    let mut objective: Vec<f64> = records
        .iter()
        .map(|r| r["objective"].as_f64().unwrap_or(f64::NAN))
        .collect();
    // At the check λs, the exact f64 objective (the records sum f32 per-example losses in f64).
    for i in CHECKS {
        if i < records.len() {
            let layer = Layer::load(&solver::path::layer_file(run_dir, i))?;
            objective[i] = objective64(
                &x,
                &y,
                d,
                &layer,
                records[i]["lambda"].as_f64().unwrap_or(0.0),
                false,
            );
        }
    }
    let n_run = records.len();
    let first = args.first.filter(|&n| n < 100);
    let (solver_name, tag) = our_names(args);
    let name = format!("{tag}_{}{}.json", args.workload, first_suffix(args.first));
    let path = bench_dir().join("bench/results").join(name);
    let seconds: Vec<f64> = records
        .iter()
        .map(|r| r["seconds"].as_f64().unwrap_or(0.0))
        .collect();
    let total: f64 = seconds.iter().sum();
    let result = json!({
        "solver": solver_name,
        "workload": args.workload,
        "n_train": report["n_train"],
        "n_val": Value::Null,
        "d": report["d"],
        "k": report["k"],
        "alpha": 0.99,
        "lam_max": report["lambda_max"],
        "lambdas": get("lambda"),
        "n_lambdas_run": n_run,
        "truncated_to_first": first,
        "total_path_time_s": total,
        "time_per_lambda_s": seconds,
        "iterations_kind": "epochs",
        "iterations_per_lambda": get("epochs"),
        "train_objective": objective,
        "train_ce": records.iter().map(|r| r["train"]["loss"].clone()).collect::<Vec<_>>(),
        "val_acc": records.iter().map(|r| r["val"]["accuracy"].clone()).collect::<Vec<_>>(),
        "train_acc": records.iter().map(|r| r["train"]["accuracy"].clone()).collect::<Vec<_>>(),
        "nnz_per_class": get("nnz_per_class"),
        "nnz_per_class_abs_gt_1e-5": get("nnz_per_class"),
        "warnings": [],
        "load": {"load_at_start": load.0, "load_at_end": load.1, "note": "no gate; burn-saga runs first"},
        // flex without the `rayon` feature (how `build_fit` builds fit) computes on one thread.
        "threads": 1,
        "versions": {"burn": "0.22.1", "backend": args.backend, "lr": args.lr, "tol": args.tol, "batch_size": args.batch_size, "base_lr": report["base_lr"]},
        "floor": floor,
    });
    std::fs::create_dir_all(path.parent().unwrap())?;
    std::fs::write(&path, serde_json::to_vec_pretty(&result)?)?;
    Ok((path, total))
}

fn fmt_opt(v: &Value, f: impl Fn(f64) -> String) -> String {
    v.as_f64().map(f).unwrap_or_else(|| "—".into())
}

/// The summary's rows (whole-path or `--first N` ones, as this run), with time ratios against
/// the row of this run's solver, `ours`.
fn print_table(summary: &Value, floor: &Value, first: Option<usize>, ours: &str) {
    let rows = summary["rows"].as_array().cloned().unwrap_or_default();
    let filter = |r: &&Value| {
        let truncated = r["run"].as_str().unwrap_or("").contains("(first");
        match first {
            Some(n) if n < 100 => r["run"].as_str().unwrap_or("").contains(&format!("(first {n})")),
            _ => !truncated,
        }
    };
    let rows: Vec<&Value> = rows.iter().filter(filter).collect();
    let ours = rows.iter().find(|r| {
        let run = r["run"].as_str().unwrap_or("");
        run.strip_suffix(&format!(" (first {})", first.unwrap_or(0)))
            .unwrap_or(run)
            == ours
    });
    let our_time = ours.and_then(|r| r["path_time_s"].as_f64());
    let floor_s = floor["floor_s_per_epoch"].as_f64();
    println!(
        "\nworkload {} — best-known objectives: {}",
        summary["workload"], summary["best_known_obj"]
    );
    println!(
        "{:<30} {:>5} {:>10} {:>8} {:>10} {:>9} {:>10} {:>10} {:>10} {:>8}",
        "solver", "λs", "path s", "×ours", "s/epoch", "×floor", "gap /2", "gap /10", "gap /100", "val acc"
    );
    for r in rows {
        let t = r["path_time_s"].as_f64();
        let ratio = match (t, our_time) {
            (Some(t), Some(o)) if o > 0.0 => format!("{:.2}", t / o),
            _ => "—".into(),
        };
        let per_epoch = &r["p5_s_per_epoch"];
        let vs_floor = match (per_epoch.as_f64(), floor_s) {
            (Some(p), Some(f)) if f > 0.0 => format!("{:.2}", p / f),
            _ => "—".into(),
        };
        let gap = |name: &str| {
            let key = r["gaps"]
                .as_object()
                .and_then(|g| g.keys().find(|k| k.starts_with(name)).cloned());
            key.map(|k| fmt_opt(&r["gaps"][k], |v| format!("{v:.1e}")))
                .unwrap_or_else(|| "—".into())
        };
        println!(
            "{:<30} {:>5} {:>10} {:>8} {:>10} {:>9} {:>10} {:>10} {:>10} {:>8}",
            r["run"].as_str().unwrap_or("?"),
            r["n_lambdas"],
            fmt_opt(&r["path_time_s"], |v| format!("{v:.2}")),
            ratio,
            fmt_opt(per_epoch, |v| format!("{v:.4}")),
            vs_floor,
            gap("lam_max/2 "),
            gap("lam_max/10 "),
            gap("lam_max/100 "),
            fmt_opt(&r["best_val_acc"], |v| format!("{v:.4}")),
        );
    }
    println!(
        "floor per epoch (two n×d×K GEMMs, {}): {}s; gaps are relative to the best-known objective at each check λ",
        floor["backend"],
        fmt_opt(&floor["floor_s_per_epoch"], |v| format!("{v:.4}"))
    );
}
