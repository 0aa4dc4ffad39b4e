//! `fit floor`: what an epoch cannot go below on this machine, for benchmark reports.

use anyhow::Result;
use clap::Args;
use solver::engine::{epoch_floor, epoch_time, head_floor, screened_columns_in_place, DeviceSplit};
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
    /// Also time the floor of an epoch on this many active features: one sweep of the K-wide
    /// batch work (softmax, loss, table) over all rows plus the two n×M×K GEMMs.
    #[arg(long, value_name = "M")]
    active: Option<usize>,
    /// With --active: also time the epoch screened by (feature, class) pair, on this many
    /// classes of each of the M features.
    #[arg(long, value_name = "P", requires = "active")]
    pairs_per_feature: Option<usize>,
}

pub fn run(args: FloorArgs) -> Result<()> {
    let split = FeatureSource::parse(&args.train)?.load("train")?;
    let k = args.num_classes.unwrap_or_else(|| split.implied_outputs());
    let (n, d) = (split.n, split.d);
    let device = args.backend.device()?;
    let train = DeviceSplit::from_split(
        split.into_storage(solver::data::Storage::F32),
        k,
        &device,
        None,
        false,
    );
    let (fwd, bwd) = epoch_floor(&train, args.reps);
    let flops = 2.0 * n as f64 * d as f64 * k as f64;
    let floor = fwd + bwd;
    let mut out = serde_json::json!({
        "n": n,
        "d": d,
        "k": k,
        "backend": args.backend.name(),
        "gemm_xw_s": fwd,
        "gemm_xta_s": bwd,
        "floor_s_per_epoch": floor,
        "gflops": 2.0 * flops / floor / 1e9,
    });
    if let Some(m) = args.active {
        let (sweep, gemms) = head_floor(&train, m, args.reps);
        out["active"] = m.min(d).into();
        out["k_wide_sweep_s"] = sweep.into();
        out["active_gemms_s"] = gemms.into();
        out["head_floor_s_per_epoch"] = (sweep + gemms).into();
        let times = epoch_time(&train, m, 256, args.reps, args.pairs_per_feature);
        out["epoch_host_s"] = times.host.into();
        out["epoch_tensor_s"] = times.tensor_copy.into();
        out["epoch_in_place_s"] = times.tensor_in_place.into();
        if let Some(p) = args.pairs_per_feature {
            out["pairs_per_feature"] = p.into();
            out["epoch_pairs_s"] = times.pairs.into();
        }
        // The epoch a path runs on m screened features.
        let in_place = screened_columns_in_place(m, k, train.host.is_some());
        out["epoch_s"] = match times.host {
            Some(host) => host,
            None if in_place => times.tensor_in_place,
            None => times.tensor_copy,
        }
        .into();
    }
    println!("{out}");
    Ok(())
}
