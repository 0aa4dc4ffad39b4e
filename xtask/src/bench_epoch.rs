//! `cargo xtask bench-epoch`: seconds per SAGA epoch at the head of an ImageNet-shaped path,
//! ours against this machine's floor for that epoch and against glm_saga, in one run.
//!
//! Ours and the floor come from `fit floor --active M` (an epoch on M screened features, host
//! and tensor kernels; the floor is one sweep of the n×K softmax + table work plus the two
//! n×M×K GEMMs as single calls). glm_saga's comes from `scripts/glm_saga_epoch.py`: its own
//! epoch loop timed over the first B batches, scaled to a whole epoch (its batch cost does not
//! depend on the rows or on λ).

use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::Value;

use crate::{build_fit, root, run};

#[derive(Args, Debug)]
pub struct EpochArgs {
    /// Workload (shared/bench): w4 is ImageNet-shaped (100,000 × 2,048, 1,000 classes).
    #[arg(long, default_value = "w4")]
    workload: String,
    /// Active (screened) features of our epoch: the head of the path runs on 10–80.
    #[arg(long, default_value_t = 10)]
    active: usize,
    /// glm_saga batches to time (each ≈ 2 s at 1,000 classes × 2,048 features).
    #[arg(long, default_value_t = 20)]
    batches: usize,
    /// Threads for glm_saga (torch); ours uses the machine's.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Repetitions of our epoch and floor; the best counts.
    #[arg(long, default_value_t = 3)]
    reps: usize,
}

/// Run `cmd` and parse the JSON it prints (echoed to stderr for the log).
fn json_of(cmd: &mut Command, what: &str) -> Result<Value> {
    let out = cmd.output().with_context(|| format!("cannot start {what}"))?;
    if !out.status.success() {
        bail!("{what}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let value: Value = serde_json::from_slice(&out.stdout).with_context(|| format!("{what} JSON"))?;
    eprintln!("{what}: {value}");
    Ok(value)
}

pub fn bench_epoch(args: EpochArgs) -> Result<()> {
    let bench = root().join("bench-data");
    run(Command::new("bash")
        .arg(root().join("scripts/bench-setup.sh"))
        .env("BENCH_NAMES", &args.workload)
        .current_dir(root()))
    .context("scripts/bench-setup.sh")?;
    let wl = bench.join("workloads").join(&args.workload);
    let fit = build_fit("flex")?;

    let ours = json_of(
        Command::new(&fit)
            .arg("floor")
            .arg("--train")
            .arg(wl.join("X_train.npy"))
            .args([
                "--active",
                &args.active.to_string(),
                "--reps",
                &args.reps.to_string(),
            ]),
        "fit floor",
    )?;
    let peer = json_of(
        Command::new(bench.join("bench-venv/bin/python"))
            .arg(root().join("scripts/glm_saga_epoch.py"))
            .arg(&wl)
            .args([
                "--batches",
                &args.batches.to_string(),
                "--threads",
                &args.threads.to_string(),
            ]),
        "glm_saga_epoch.py",
    )?;

    let num = |v: &Value, key: &str| v[key].as_f64().with_context(|| format!("no {key} in {v}"));
    let host = ours["epoch_host_s"].as_f64();
    let tensor = num(&ours, "epoch_tensor_s")?;
    let in_place = num(&ours, "epoch_in_place_s")?;
    // The epoch the path runs on that many screened features.
    let epoch = num(&ours, "epoch_s")?;
    let floor = num(&ours, "head_floor_s_per_epoch")?;
    let theirs = num(&peer, "seconds_per_epoch")?;
    println!(
        "{} ({} × {}, {} classes), an epoch on {} active features:",
        args.workload, ours["n"], ours["d"], ours["k"], args.active
    );
    println!(
        "  ours      {epoch:>9.3} s  (host kernels {}, tensor kernels on a copy of the columns {tensor:.3} s, in place {in_place:.3} s)",
        host.map_or("n/a".into(), |h| format!("{h:.3} s"))
    );
    println!(
        "  floor     {floor:>9.3} s  (K-wide sweep {:.3} s + the two n×M×K GEMMs {:.3} s); ours / floor = {:.2}",
        num(&ours, "k_wide_sweep_s")?,
        num(&ours, "active_gemms_s")?,
        epoch / floor
    );
    println!(
        "  glm_saga  {theirs:>9.1} s  ({} batches timed in {:.1} s, {} threads); glm_saga / ours = {:.0}×",
        peer["batches_timed"],
        num(&peer, "seconds_timed")?,
        args.threads,
        theirs / epoch
    );
    Ok(())
}
