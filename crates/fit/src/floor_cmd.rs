//! `fit floor`: what an epoch cannot go below on this machine, for benchmark reports.

use anyhow::Result;
use clap::Args;
use solver::engine::{epoch_floor, DeviceSplit};
use solver::{BackendKind, FeatureSource};

#[derive(Args, Debug)]
pub struct FloorArgs {
    /// Training features (same forms as `fit path --train`).
    #[arg(long)]
    train: String,
    /// Number of outputs K (default: max label + 1).
    #[arg(long)]
    num_classes: Option<usize>,
    #[arg(long, default_value = "flex")]
    backend: BackendKind,
    /// Repetitions; the best time counts.
    #[arg(long, default_value_t = 5)]
    reps: usize,
}

pub fn run(args: FloorArgs) -> Result<()> {
    let split = FeatureSource::parse(&args.train)?.load("train")?;
    let k = args.num_classes.unwrap_or_else(|| split.implied_outputs());
    let device = args.backend.device()?;
    let train = DeviceSplit::upload(&split, k, &device);
    let (fwd, bwd) = epoch_floor(&train, args.reps);
    let flops = 2.0 * split.n as f64 * split.d as f64 * k as f64;
    let floor = fwd + bwd;
    println!(
        "{{\"n\": {}, \"d\": {}, \"k\": {k}, \"backend\": \"{}\", \"gemm_xw_s\": {fwd:.6}, \"gemm_xta_s\": {bwd:.6}, \"floor_s_per_epoch\": {floor:.6}, \"gflops\": {:.2}}}",
        split.n,
        split.d,
        args.backend.name(),
        2.0 * flops / floor / 1e9
    );
    Ok(())
}
