//! `cargo xtask bench-more-peers`: our path beside adelie and cyanure (shared/bench/
//! run_more_peers.py) on the same workload and λ grid, in one run.
//!
//! cyanure (QNing / Catalyst-MISO, one λ at a time with warm starts) solves the elementwise
//! problem, our default path; adelie 1.1.52 (block coordinate descent with pivot screening)
//! solves the grouped one (penalty Σ_j ‖W_·j‖₂), our `--group` path. Each row compares path
//! times (the timed solver loop only, every solver on one thread) and the float64 objective at
//! the check λs that ran (grid indices 10, 33, 66), all evaluated here by one function.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::Value;
use solver::io::{read_npy, Layer};

use crate::bench::{floats, ints, objective64, peers_problem_path, CHECKS};
use crate::{build_fit, root, run};

#[derive(Args, Debug)]
pub struct MoreArgs {
    /// Workload (shared/bench): w2 (50,000×2,048, 10 classes), w3 (20,000×512, 100), w1, w4.
    #[arg(long, default_value = "w2")]
    workload: String,
    /// Only the first N λ of the 100-λ grid, for every solver.
    #[arg(long)]
    first: Option<usize>,
    /// Peers, comma-separated: cyanure (elementwise penalty), adelie (grouped penalty).
    #[arg(long, default_value = "cyanure,adelie")]
    peers: String,
    /// Threads of each peer (ours computes on one).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// The penalty each peer solves: adelie's multinomial penalty is grouped by feature.
fn grouped(peer: &str) -> Result<bool> {
    match peer {
        "cyanure" => Ok(false),
        "adelie" => Ok(true),
        other => bail!("unknown peer {other:?}: cyanure or adelie"),
    }
}

/// One solver's run: path seconds and the f64 objective at each check λ that ran.
struct Row {
    solver: String,
    seconds: f64,
    objectives: Vec<(usize, f64)>,
    best_val: f64,
    /// The grid's first λ: the rows compare only on the same grid.
    lambda_max: f64,
}

pub fn bench_more(args: MoreArgs) -> Result<()> {
    let w = args.workload.as_str();
    let peers: Vec<&str> = args
        .peers
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    for p in &peers {
        grouped(p)?;
    }
    let bench = root().join("bench-data");
    run(Command::new("bash")
        .arg(root().join("scripts/bench-setup.sh"))
        .env("BENCH_NAMES", w)
        .current_dir(root()))
    .context("scripts/bench-setup.sh")?;
    run(Command::new("bash")
        .arg(root().join("scripts/bench-more-setup.sh"))
        .current_dir(root()))
    .context("scripts/bench-more-setup.sh")?;
    let wl = bench.join("workloads").join(w);
    let fit = build_fit("flex")?;
    let (shape, x) = floats(read_npy(&wl.join("X_train.npy"))?)?;
    let y = ints(read_npy(&wl.join("y_train.npy"))?)?;
    let d = shape[1];

    let mut table: Vec<(Row, Row)> = Vec::new();
    for peer in peers {
        let group = grouped(peer)?;
        // Ours on the same penalty, then the peer, one after the other.
        let run_dir = bench
            .join("runs")
            .join(format!("more-{w}{}", if group { "-group" } else { "" }));
        let _ = std::fs::remove_dir_all(&run_dir);
        let mut cmd = peers_problem_path(&fit, &wl, &run_dir, "flex", args.first);
        if group {
            cmd.arg("--group");
        }
        run(&mut cmd)?;
        let ours = our_row(&run_dir, &x, &y, d, group)?;

        let results = bench.join("bench/results-more");
        let mut cmd = Command::new(bench.join("more-venv/bin/python"));
        cmd.current_dir(root())
            .arg(bench.join("bench/run_more_peers.py"))
            .arg(w)
            .args(["--solver", peer, "--threads", &args.threads.to_string()])
            .env("BENCH_WORKLOADS", bench.join("workloads"))
            .env("BENCH_RESULTS", &results);
        if group {
            cmd.arg("--group");
        }
        if let Some(n) = args.first {
            cmd.args(["--first", &n.to_string()]);
        }
        run(&mut cmd).with_context(|| format!("peer {peer}"))?;
        let name = format!(
            "{peer}{}_{w}{}.json",
            if group { "_group" } else { "" },
            args.first
                .map(|n| format!("_first{}", n.min(100)))
                .unwrap_or_default()
        );
        let theirs = peer_row(peer, &results.join(name))?;
        let drift = (ours.lambda_max - theirs.lambda_max).abs() / theirs.lambda_max;
        if drift > 1e-5 {
            bail!(
                "λ_max differs: ours {} vs {peer}'s {} (relative {drift:.1e}); the objectives would not compare",
                ours.lambda_max,
                theirs.lambda_max
            );
        }
        table.push((ours, theirs));
    }
    print_table(w, args.first, &table);
    Ok(())
}

/// Our run's row: the solver's own per-λ seconds, and the f64 objective of the saved layers.
fn our_row(run_dir: &Path, x: &[f32], y: &[i64], d: usize, group: bool) -> Result<Row> {
    let report: Value = serde_json::from_slice(&std::fs::read(run_dir.join("path.json"))?)?;
    let records = report["records"].as_array().context("records")?;
    let mut objectives = Vec::new();
    for i in CHECKS.into_iter().filter(|&i| i < records.len()) {
        let layer = Layer::load(&solver::path::layer_file(run_dir, i))?;
        let lambda = records[i]["lambda"].as_f64().context("lambda")?;
        objectives.push((i, objective64(x, y, d, &layer, lambda, group)));
    }
    Ok(Row {
        solver: format!("burn-saga{}", if group { " --group" } else { "" }),
        seconds: records.iter().filter_map(|r| r["seconds"].as_f64()).sum(),
        objectives,
        best_val: records
            .iter()
            .filter_map(|r| r["val"]["accuracy"].as_f64())
            .fold(0.0, f64::max),
        lambda_max: report["lambda_max"].as_f64().context("lambda_max")?,
    })
}

/// A peer's row from the JSON run_more_peers.py wrote.
fn peer_row(peer: &str, file: &Path) -> Result<Row> {
    let r: Value =
        serde_json::from_slice(&std::fs::read(file).with_context(|| format!("{}", file.display()))?)?;
    let objectives = r["check_objectives"]
        .as_object()
        .context("check_objectives")?
        .iter()
        .filter_map(|(i, v)| Some((i.parse().ok()?, v.as_f64()?)))
        .collect();
    Ok(Row {
        solver: peer.to_string(),
        seconds: r["path_s"].as_f64().context("path_s")?,
        objectives,
        best_val: r["best_val"].as_f64().unwrap_or(f64::NAN),
        lambda_max: r["lam_max"].as_f64().context("lam_max")?,
    })
}

fn print_table(w: &str, first: Option<usize>, table: &[(Row, Row)]) {
    let lambdas = first.map_or("the full path".to_string(), |n| format!("the first {n} λ"));
    println!("{w}, {lambdas} (one thread each; path loop seconds):");
    println!(
        "  {:<18} {:>10} {:>10}   {:<44} {:>9}",
        "solver", "path s", "vs ours", "f64 objective at check λ (gap to the lower)", "best val"
    );
    for (ours, theirs) in table {
        for row in [ours, theirs] {
            let objectives: Vec<String> = row
                .objectives
                .iter()
                .map(|&(i, obj)| {
                    let other = [ours, theirs]
                        .iter()
                        .filter_map(|r| r.objectives.iter().find(|(j, _)| *j == i).map(|(_, o)| *o))
                        .fold(f64::INFINITY, f64::min);
                    format!("#{i} {obj:.10} ({:+.1e})", (obj - other) / other.abs())
                })
                .collect();
            println!(
                "  {:<18} {:>10.2} {:>9.1}×   {:<44} {:>9.4}",
                row.solver,
                row.seconds,
                row.seconds / ours.seconds,
                objectives.join(", "),
                row.best_val
            );
        }
    }
}
