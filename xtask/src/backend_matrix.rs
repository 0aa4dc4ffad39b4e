//! `cargo xtask backend-matrix`: the same numeric checks on every backend this machine can run,
//! against ndarray. Each GPU or libtorch backend is its own build (`-p backend-check --features
//! ndarray,<backend>`; the checks are in `crates/backend/check`), so one backend that cannot build
//! or link does not hide the others. Backends that cannot run here are rows that say why.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::root;
use crate::target_dir;

/// Solver weights (and objectives, relatively) must agree within this on every backend.
const SOLVER_TOL: f64 = 1e-4;
/// Backbone features must agree within this (absolute) on every backend.
const BACKBONE_TOL: f64 = 1e-3;

#[derive(clap::Args)]
pub struct MatrixArgs {
    /// Backends to try, in this order (ndarray, the reference, is always run).
    #[arg(long, value_delimiter = ',', default_value = "flex,ndarray,wgpu,tch,cuda")]
    backends: Vec<String>,
    /// Checks to run: solver, resnet50, bert.
    #[arg(long, value_delimiter = ',', default_value = "solver,resnet50,bert")]
    only: Vec<String>,
    /// Install PyTorch's libtorch for tch (scripts/torch-env.sh, about 6.8 GB) when it is not
    /// set up yet; without it, tch is skipped on a machine that has no torch venv.
    #[arg(long)]
    install_torch: bool,
    /// Do not fetch the offline data first (the bert check then needs MiniLM already in data/).
    #[arg(long)]
    no_fetch: bool,
    /// Write each backend's JSON output (all numbers) into this folder.
    #[arg(long)]
    out: Option<PathBuf>,
}

enum Outcome {
    Ran { json: Value, seconds: f64 },
    Skipped(String),
    Failed(String),
}

struct Row {
    backend: String,
    outcome: Outcome,
}

/// The torch venv's environment (PATH, VIRTUAL_ENV, LIBTORCH_USE_PYTORCH, LD_LIBRARY_PATH) from
/// scripts/torch-env.sh, or why tch cannot run.
fn torch_env(install: bool) -> std::result::Result<Vec<(String, String)>, String> {
    let root = root();
    let venv = std::env::var_os("TORCH_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.parent().unwrap_or(&root).join("torch-venv"));
    if !venv.join("bin/python").is_file() && !install {
        return Err(format!(
            "libtorch not set up: no {} (run scripts/torch-env.sh, about 6.8 GB, or pass --install-torch)",
            venv.display()
        ));
    }
    let out = Command::new("bash")
        .arg("-c")
        .arg("eval \"$(scripts/torch-env.sh)\" && env -0")
        .current_dir(&root)
        .output()
        .map_err(|e| format!("cannot run scripts/torch-env.sh: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "scripts/torch-env.sh failed: {}",
            err.lines().last().unwrap_or("?")
        ));
    }
    let wanted = ["PATH", "VIRTUAL_ENV", "LIBTORCH_USE_PYTORCH", "LD_LIBRARY_PATH"];
    Ok(out
        .stdout
        .split(|&b| b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            wanted.contains(&k).then(|| (k.to_string(), v.to_string()))
        })
        .collect())
}

/// Whether an NVIDIA driver is installed (the CUDA backend loads libcuda.so at run time).
fn nvidia_driver() -> std::result::Result<(), String> {
    if Path::new("/proc/driver/nvidia/version").exists() {
        return Ok(());
    }
    let ldconfig = Command::new("ldconfig").arg("-p").output();
    if let Ok(o) = ldconfig {
        if String::from_utf8_lossy(&o.stdout).contains("libcuda.so") {
            return Ok(());
        }
    }
    Err("no NVIDIA driver (no /proc/driver/nvidia, no libcuda.so)".into())
}

fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("?")
        .trim()
        .to_string()
}

fn run_backend(backend: &str, args: &MatrixArgs) -> Outcome {
    let env = match backend {
        "tch" => match torch_env(args.install_torch) {
            Ok(env) => env,
            Err(why) => return Outcome::Skipped(why),
        },
        "cuda" => match nvidia_driver() {
            Ok(()) => Vec::new(),
            Err(why) => return Outcome::Skipped(why),
        },
        _ => Vec::new(),
    };
    // Every build also carries flex (backend-check's default) and ndarray, the reference: the flex
    // and ndarray rows share one build, and each other backend adds one.
    let features = match backend {
        "flex" | "ndarray" => "ndarray".to_string(),
        other => format!("ndarray,{other}"),
    };
    eprintln!("== {backend}: building backend-check --features {features}");
    let t = Instant::now();
    let build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root())
        .args([
            "build",
            "--release",
            "-q",
            "-p",
            "backend-check",
            "--features",
            &features,
        ])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .status();
    match build {
        Ok(s) if s.success() => {}
        Ok(s) => return Outcome::Failed(format!("build with --features {features} failed ({s})")),
        Err(e) => return Outcome::Failed(format!("cannot run cargo: {e}")),
    }
    eprintln!(
        "== {backend}: built in {:.0} s; running the checks",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let out = Command::new(target_dir().join("release/backend-check"))
        .current_dir(root())
        .args(["--backend", backend, "--only", &args.only.join(",")])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output();
    let seconds = t.elapsed().as_secs_f64();
    let out = match out {
        Ok(o) => o,
        Err(e) => return Outcome::Failed(format!("cannot run backend-check: {e}")),
    };
    let stderr_last = last_line(&out.stderr);
    match out.status.code() {
        Some(0) => {}
        // backend-check's exit code for a backend with no device: its one-line error
        Some(2) => return Outcome::Skipped(stderr_last.trim_start_matches("error: ").to_string()),
        _ => return Outcome::Failed(format!("backend-check {}: {stderr_last}", out.status)),
    }
    match serde_json::from_slice::<Value>(&out.stdout) {
        Ok(json) => {
            if let Some(dir) = &args.out {
                let _ = std::fs::create_dir_all(dir);
                let _ = std::fs::write(dir.join(format!("{backend}.json")), &out.stdout);
            }
            Outcome::Ran { json, seconds }
        }
        Err(e) => Outcome::Failed(format!("backend-check printed no JSON ({e}): {stderr_last}")),
    }
}

fn floats(v: &Value) -> Option<Vec<f64>> {
    v.as_array()?.iter().map(Value::as_f64).collect()
}

/// Largest |a − b| of one check's `key` array between two backends, or why there is none.
fn diff(a: &Value, b: &Value, check: &str, key: &str) -> std::result::Result<f64, String> {
    for v in [a, b] {
        if let Some(e) = v[check]["error"].as_str() {
            return Err(e.to_string());
        }
    }
    let (x, y) = match (floats(&a[check][key]), floats(&b[check][key])) {
        (Some(x), Some(y)) => (x, y),
        _ => return Err("not run".into()),
    };
    if x.len() != y.len() {
        return Err(format!("{} values vs {}", x.len(), y.len()));
    }
    Ok(x.iter().zip(&y).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max))
}

/// Largest relative difference of the path objectives.
fn objective_diff(a: &Value, b: &Value) -> Option<f64> {
    let (x, y) = (
        floats(&a["solver"]["objectives"])?,
        floats(&b["solver"]["objectives"])?,
    );
    (x.len() == y.len()).then(|| {
        x.iter()
            .zip(&y)
            .map(|(p, q)| (p - q).abs() / p.abs().max(1e-30))
            .fold(0.0, f64::max)
    })
}

fn cell(d: &std::result::Result<f64, String>) -> String {
    match d {
        Ok(v) => format!("{v:.1e}"),
        Err(e) if e == "not run" => "-".into(),
        Err(_) => "error".into(),
    }
}

pub fn backend_matrix(args: MatrixArgs) -> Result<()> {
    for b in &args.backends {
        b.parse::<solver::BackendKind>().map_err(anyhow::Error::msg)?;
    }
    for c in &args.only {
        if !["solver", "resnet50", "bert"].contains(&c.as_str()) {
            bail!("unknown check {c} (expected solver, resnet50, bert)");
        }
    }
    if !args.no_fetch && args.only.iter().any(|c| c == "bert") {
        crate::fetch::fetch_all().context("fetching MiniLM for the bert check")?;
    }
    // ndarray first: it is the reference the others are compared with.
    let mut order: Vec<String> = vec!["ndarray".into()];
    order.extend(args.backends.iter().filter(|b| *b != "ndarray").cloned());
    let mut rows: Vec<Row> = Vec::new();
    for b in &order {
        let outcome = run_backend(b, &args);
        if let Outcome::Skipped(why) | Outcome::Failed(why) = &outcome {
            eprintln!("== {b}: {why}");
        }
        rows.push(Row {
            backend: b.clone(),
            outcome,
        });
    }
    // print in the order asked for
    rows.sort_by_key(|r| {
        args.backends
            .iter()
            .position(|b| *b == r.backend)
            .unwrap_or(usize::MAX)
    });
    let reference = rows.iter().find_map(|r| match (&r.outcome, r.backend.as_str()) {
        (Outcome::Ran { json, .. }, "ndarray") => Some(json.clone()),
        _ => None,
    });

    let mut problems: Vec<String> = Vec::new();
    let mut lines: Vec<[String; 5]> = vec![[
        "backend".into(),
        "device".into(),
        "max abs diff vs ndarray (solver / resnet50 / bert)".into(),
        "vs PyTorch (resnet50 / bert)".into(),
        "time".into(),
    ]];
    for r in &rows {
        match &r.outcome {
            Outcome::Ran { json, seconds } => {
                let device = json["device"].as_str().unwrap_or("?").to_string();
                let diffs = match &reference {
                    Some(reference) => {
                        let s = diff(json, reference, "solver", "weights");
                        let o = objective_diff(json, reference);
                        let rn = diff(json, reference, "resnet50", "features");
                        let bt = diff(json, reference, "bert", "features");
                        for (what, d, tol) in [
                            ("solver", &s, SOLVER_TOL),
                            ("resnet50", &rn, BACKBONE_TOL),
                            ("bert", &bt, BACKBONE_TOL),
                        ] {
                            match d {
                                Ok(v) if *v > tol => problems.push(format!(
                                    "{}: {what} differs from ndarray by {v:.2e} > {tol:e}",
                                    r.backend
                                )),
                                Err(e) if e != "not run" => {
                                    problems.push(format!("{}: {what}: {e}", r.backend))
                                }
                                _ => {}
                            }
                        }
                        if let Some(o) = o.filter(|o| *o > SOLVER_TOL) {
                            problems.push(format!("{}: solver objectives differ from ndarray by {o:.2e} (relative) > {SOLVER_TOL:e}", r.backend));
                        }
                        let obj = o.map(|o| format!(" (obj {o:.0e})")).unwrap_or_default();
                        format!("{}{obj} / {} / {}", cell(&s), cell(&rn), cell(&bt))
                    }
                    None => "no ndarray reference".into(),
                };
                let py = |c: &str| match (json[c]["vs_pytorch"].as_f64(), json[c]["error"].as_str()) {
                    (Some(v), _) => format!("{v:.1e}"),
                    (None, Some(_)) => "error".into(),
                    _ => "-".into(),
                };
                let part = |c: &str| {
                    json[c]["seconds"]
                        .as_f64()
                        .map(|s| format!("{s:.0}"))
                        .unwrap_or("-".into())
                };
                lines.push([
                    r.backend.clone(),
                    device,
                    diffs,
                    format!("{} / {}", py("resnet50"), py("bert")),
                    format!(
                        "{seconds:.0} s ({} / {} / {})",
                        part("solver"),
                        part("resnet50"),
                        part("bert")
                    ),
                ]);
            }
            Outcome::Skipped(why) => lines.push([
                r.backend.clone(),
                "-".into(),
                format!("skipped: {why}"),
                String::new(),
                String::new(),
            ]),
            Outcome::Failed(why) => {
                problems.push(format!("{}: {why}", r.backend));
                lines.push([
                    r.backend.clone(),
                    "-".into(),
                    format!("FAILED: {why}"),
                    String::new(),
                    String::new(),
                ])
            }
        }
        for c in ["solver", "resnet50", "bert"] {
            if let Outcome::Ran { json, .. } = &r.outcome {
                if let Some(e) = json[c]["error"].as_str() {
                    eprintln!("{}: {c}: {e}", r.backend);
                }
            }
        }
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| lines.iter().map(|l| l[i].chars().count()).max().unwrap_or(0))
        .collect();
    println!(
        "\nBackend matrix (tolerances: solver {SOLVER_TOL:e}, backbones {BACKBONE_TOL:e}; time: checks only, solver / resnet50 / bert seconds)"
    );
    for (i, l) in lines.iter().enumerate() {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}", w = *w))
            .collect();
        println!("{}", cells.join(" | ").trim_end());
        if i == 0 {
            println!(
                "{}",
                widths
                    .iter()
                    .map(|w| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .join("-|-")
            );
        }
    }
    if reference.is_none() {
        problems.push("ndarray, the reference, did not run".into());
    }
    if !problems.is_empty() {
        bail!("backend matrix: {}", problems.join("; "));
    }
    Ok(())
}
