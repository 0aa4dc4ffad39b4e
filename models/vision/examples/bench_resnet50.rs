//! Throughput of ResNet-50 `features` (batch 32, 224x224, eval) on the backends built in,
//! beside PyTorch eager on the same machine, in one run:
//!
//!     cargo run --release -p vision --features ndarray,rayon,simd --example bench_resnet50
//!     eval "$(scripts/torch-env.sh --bench)"
//!     cargo run --release -p vision --features tch --example bench_resnet50
//!
//! `BENCH_BACKENDS=flex,tch` picks backends (default: every CPU backend built in: flex, ndarray,
//! tch). Without `rayon` flex and ndarray run on one thread and are compared with PyTorch on one;
//! tch (libtorch's own thread pool) is compared with PyTorch on all cores.
//! PyTorch comes from `$VISION_BENCH_PYTHON`, else the fixture venv (`scripts/fixture-venv.sh`),
//! else `$TORCH_PYTHON` (set by `scripts/torch-env.sh`).
//! `BENCH_ITERS` (default 3) timed batches after one warm-up; the best is reported.

/// The allocator of the `fit` binary, which runs these backbones in the product (see
/// `backend::allocator`).
#[global_allocator]
static GLOBAL: backend::allocator::MiMalloc = backend::allocator::MiMalloc;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use backend::BackendKind;
use burn::tensor::{Device, Tensor, TensorData};
use vision::{synthetic, FeatureMode, VisionArch, VisionModel};

const BATCH: usize = 32;

fn backends() -> Vec<(BackendKind, Device)> {
    let names: Vec<BackendKind> = match std::env::var("BENCH_BACKENDS") {
        Ok(list) => list
            .split(',')
            .map(|n| n.parse().unwrap_or_else(|e| panic!("BENCH_BACKENDS: {e}")))
            .collect(),
        Err(_) => [BackendKind::Flex, BackendKind::Ndarray, BackendKind::Tch]
            .into_iter()
            .filter(|b| b.compiled_in())
            .collect(),
    };
    let mut out = Vec::new();
    for kind in names {
        match kind.device() {
            Ok(d) => out.push((kind, d)),
            Err(e) => println!("{kind}: not run: {e}"),
        }
    }
    out
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Threads a backend computes on: libtorch's pool (all cores) on tch; flex and ndarray use
/// all cores only with the `rayon` feature.
fn threads(kind: BackendKind) -> usize {
    if kind == BackendKind::Tch || cfg!(feature = "rayon") {
        cores()
    } else {
        1
    }
}

fn time_backend(name: &str, device: &Device, iters: usize) -> f64 {
    let model = VisionModel::random(VisionArch::ResNet50, 1, device).expect("synthetic ResNet-50");
    let x = synthetic::input(3, &[BATCH, 3, 224, 224]);
    let x = Tensor::<4>::from_data(TensorData::new(x, [BATCH, 3, 224, 224]), device);
    let run = || {
        let t = Instant::now();
        let f = model.features(x.clone(), FeatureMode::PostRelu);
        let _ = f.into_data();
        t.elapsed().as_secs_f64()
    };
    let warm = run();
    eprintln!("{name}: warm-up batch {warm:.2} s");
    (0..iters).map(|_| run()).fold(f64::INFINITY, f64::min)
}

const TORCH_BENCH: &str = r#"
import sys, time, torch, torchvision
threads, iters, batch = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
m = torchvision.models.resnet50(weights=None).eval()
m.fc = torch.nn.Identity()
x = torch.randn(batch, 3, 224, 224)
with torch.inference_mode():
    m(x)
    best = float("inf")
    for _ in range(iters):
        t = time.perf_counter(); m(x); best = min(best, time.perf_counter() - t)
print(best, torch.__version__)
"#;

fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("VISION_BENCH_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.fixture-venv/bin/python");
    if venv.is_file() {
        return Some(venv);
    }
    std::env::var_os("TORCH_PYTHON").map(PathBuf::from)
}

fn time_torch(threads: usize, iters: usize) -> Option<(f64, String)> {
    let py = python()?;
    let out = Command::new(py)
        .args([
            "-c",
            TORCH_BENCH,
            &threads.to_string(),
            &iters.to_string(),
            &BATCH.to_string(),
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("PyTorch run failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace();
    let secs = parts.next()?.parse().ok()?;
    Some((secs, parts.next().unwrap_or("?").to_string()))
}

fn main() {
    backend::allocator::retain_freed_memory();
    let iters: usize = std::env::var("BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    println!(
        "ResNet-50 features, batch {BATCH}, 224x224, best of {iters} batches; {} cores; flex/ndarray \
         on {} thread(s) (rayon {}, simd {})",
        cores(),
        if cfg!(feature = "rayon") { cores() } else { 1 },
        if cfg!(feature = "rayon") { "on" } else { "off" },
        if cfg!(feature = "simd") { "on" } else { "off" },
    );
    let mut rows = Vec::new();
    for (kind, device) in backends() {
        let secs = time_backend(kind.name(), &device, iters);
        rows.push((kind.name().to_string(), threads(kind), secs));
    }
    // PyTorch once per thread count the backends ran on, in the same run.
    let mut counts: Vec<usize> = rows.iter().map(|r| r.1).collect();
    if counts.is_empty() {
        counts.push(1);
    }
    counts.sort_unstable();
    counts.dedup();
    let mut torch: Vec<(usize, f64)> = Vec::new();
    let mut torch_rows = Vec::new();
    for &t in &counts {
        match time_torch(t, iters) {
            Some((secs, version)) => {
                torch.push((t, secs));
                torch_rows.push((format!("pytorch {version} eager"), t, secs));
            }
            None => println!(
                "PyTorch ({t} thread(s)): not run (set VISION_BENCH_PYTHON to a python with torch and torchvision)"
            ),
        }
    }
    for (name, t, secs) in rows.iter().chain(&torch_rows) {
        let ips = BATCH as f64 / secs;
        let ratio = torch
            .iter()
            .find(|(tt, _)| tt == t)
            .map(|(_, ts)| format!("  {:.2}x PyTorch ({t} thread(s))", ts / secs))
            .unwrap_or_default();
        println!(
            "{:<40} {ips:8.2} images/s  ({secs:.2} s per batch){ratio}",
            format!("{name} ({t} thread(s))")
        );
    }
}
