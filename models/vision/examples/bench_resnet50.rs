//! Throughput of ResNet-50 `features` (batch 32, 224x224, eval) on the CPU backends built in,
//! beside PyTorch eager on the same machine, in one run:
//!
//!     cargo run --release -p vision --features ndarray,rayon,simd --example bench_resnet50
//!
//! Without `rayon` flex and ndarray run on one thread (PyTorch is then also timed on one).
//! PyTorch comes from `$VISION_BENCH_PYTHON`, else the fixture venv (`scripts/fixture-venv.sh`).
//! `BENCH_ITERS` (default 3) timed batches after one warm-up; the best is reported.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};
use vision::{synthetic, FeatureMode, VisionArch, VisionModel};

const BATCH: usize = 32;

fn backends() -> Vec<(&'static str, Device)> {
    let mut out = Vec::new();
    for name in ["flex", "ndarray"] {
        match vision::backend_device(name) {
            Ok(d) => out.push((name, d)),
            Err(_) => eprintln!("{name}: not built in (add `--features {name}`)"),
        }
    }
    out
}

fn threads() -> usize {
    if cfg!(feature = "rayon") {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
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
    venv.is_file().then_some(venv)
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
    let iters: usize = std::env::var("BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let threads = threads();
    println!(
        "ResNet-50 features, batch {BATCH}, 224x224, best of {iters} batches; burn {} thread(s) \
         (rayon {}, simd {})",
        threads,
        if cfg!(feature = "rayon") { "on" } else { "off" },
        if cfg!(feature = "simd") { "on" } else { "off" },
    );
    let mut rows = Vec::new();
    for (name, device) in backends() {
        let secs = time_backend(name, &device, iters);
        rows.push((name.to_string(), secs));
    }
    let torch = time_torch(threads, iters);
    if let Some((secs, version)) = &torch {
        rows.push((format!("pytorch {version} eager ({threads} thread(s))"), *secs));
    } else {
        println!("PyTorch: not run (set VISION_BENCH_PYTHON to a python with torch and torchvision)");
    }
    for (name, secs) in &rows {
        let ips = BATCH as f64 / secs;
        let ratio = torch
            .as_ref()
            .map(|(t, _)| format!("  {:.2}x PyTorch", t / secs))
            .unwrap_or_default();
        println!("{name:<40} {ips:8.2} images/s  ({secs:.2} s per batch){ratio}");
    }
}
