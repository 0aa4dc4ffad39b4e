//! Probe how SAGA converges at one λ of a finished path, for tuning the step and the stopping
//! rule without recomputing the path: it warm-starts from the saved layer of λ #(i−1) (table
//! filled at that point), solves λ #i with each step multiplier given, and prints epochs and
//! the f64 objective beside the path's own record.
//!
//! `cargo run --release -p solver --example lambda_probe -- TRAIN.npy RUN_DIR INDEX MULT...`
//! (RUN_DIR from `fit path --out`, features already standardized as the run saw them; a MULT
//! with a trailing `x`, e.g. `1x`, also extrapolates the warm start from λ #(i−2)).

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::{Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use solver::engine::{self, DeviceSplit, EpochPlan, SagaState, Step};
use solver::{BackendKind, Family, FeatureSource, Layer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        return Err("usage: lambda_probe TRAIN.npy RUN_DIR INDEX MULT...".into());
    }
    let train = FeatureSource::parse(&args[0])?.load("train")?;
    let run_dir = PathBuf::from(&args[1]);
    let index: usize = args[2].parse()?;
    let path: serde_json::Value = serde_json::from_slice(&std::fs::read(run_dir.join("path.json"))?)?;
    let base_lr = path["base_lr"].as_f64().ok_or("base_lr")?;
    let lambda = path["lambdas"][index].as_f64().ok_or("lambda")?;
    let alpha = path["config"]["alpha"].as_f64().ok_or("alpha")?;
    let tol = std::env::var("PROBE_TOL").map_or(1e-4, |v| v.parse().unwrap());
    let max_epochs: usize = std::env::var("PROBE_MAX_EPOCHS").map_or(2000, |v| v.parse().unwrap());
    let record = &path["records"][index];
    let k = path["k"].as_u64().ok_or("k")? as usize;
    let device = BackendKind::Flex.device()?;
    let split = DeviceSplit::from_split(train, k, &device, Some(0), false);
    let (n, d) = (split.n, split.d);
    let load = |i: usize| -> Result<(Tensor<2>, Tensor<2>), Box<dyn std::error::Error>> {
        let layer = Layer::load(&solver::path::layer_file(&run_dir, i))?;
        let w = Tensor::<2>::from_data(TensorData::new(layer.weight, [k, d]), &device);
        let b = Tensor::<2>::from_data(TensorData::new(layer.bias, [1, k]), &device);
        Ok((w.transpose(), b))
    };
    let (wt1, b1) = load(index - 1)?;
    println!(
        "λ #{index} = {lambda:.4e}, base lr {base_lr:.4e}; path: {} epochs, objective {:.10}",
        record["epochs"], record["objective"]
    );
    for spec in &args[3..] {
        let (mult, extrapolate) = match spec.strip_suffix('x') {
            Some(m) => (m.parse::<f64>()?, true),
            None => (spec.parse::<f64>()?, false),
        };
        let (wt, b) = if extrapolate {
            let (wt2, b2) = load(index - 2)?;
            (wt1.clone() * 2.0 - wt2, b1.clone() * 2.0 - b2)
        } else {
            (wt1.clone(), b1.clone())
        };
        let logits = split.x().clone().matmul(wt.clone()) + b.clone();
        let (table, _) = engine::loss_and_grad(Family::Multinomial, logits, split.y.clone());
        let mut state = SagaState {
            wt,
            b,
            table,
            gbar_w: Tensor::zeros([d, k], &device),
            gbar_b: Tensor::zeros([1, k], &device),
        };
        state.refresh_average(&split);
        let step = Step {
            lambda,
            alpha,
            lr: base_lr * mult,
            group: false,
            family: Family::Multinomial,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let started = Instant::now();
        let mut epochs = 0;
        let mut trace = Vec::new();
        let mut objectives = Vec::new();
        for epoch in 1..=max_epochs {
            if epoch > 1 && (epoch - 1) % 10 == 0 {
                state.refresh_average(&split);
            }
            let plan = EpochPlan::random(n, 256, &mut rng);
            let (next, s) = engine::saga_epoch(&split, state, &plan, step);
            state = next;
            epochs = epoch;
            trace.push(s.rel_change);
            objectives.push(s.objective);
            if !s.objective.is_finite() || s.rel_change <= tol {
                break;
            }
        }
        let eval = engine::evaluate(&split, &state.wt, &state.b, Family::Multinomial);
        let wt_host: Vec<f32> = state.wt.clone().try_into_vec_as::<f32>()?;
        let objective = eval.loss + engine::penalty_host(&wt_host, d, k, lambda, alpha, false);
        let kkt = engine::kkt_violation(&split, &state, step);
        let every: Vec<String> = trace
            .iter()
            .step_by((trace.len() / 8).max(1))
            .map(|v| format!("{v:.1e}"))
            .collect();
        let first: Vec<String> = objectives.iter().take(6).map(|v| format!("{v:.6}")).collect();
        println!("  epoch objectives: {}", first.join(" "));
        println!(
            "mult {spec:>5}: {epochs:>4} epochs {:.1}s objective {objective:.10} kkt {kkt:.2e} Δw {}",
            started.elapsed().as_secs_f64(),
            every.join(" ")
        );
    }
    Ok(())
}
