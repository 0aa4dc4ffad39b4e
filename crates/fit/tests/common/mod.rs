//! Helpers shared by `fit`'s command-line tests: the binary, scratch folders, the one-line error
//! check, and small IDX datasets in Fashion-MNIST's format for the `pixels` backbone.

#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn fit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fit"))
}

/// A fresh folder under the temp dir, unique to this test process.
pub fn scratch(prefix: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fit-{prefix}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The command failed with exit code 1 and exactly one `error:` line, no panic; returns it.
pub fn one_line_error(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "exit code; stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    lines[0].to_string()
}

/// IDX files (`{prefix}-images-idx3-ubyte`, `{prefix}-labels-idx1-ubyte`) of 8×8 images whose
/// class lights one of the first rows brighter, plus noise.
pub fn write_idx(dir: &Path, prefix: &str, labels: &[u8], seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (h, w) = (8usize, 8usize);
    let mut images = Vec::new();
    images.extend_from_slice(&0x0000_0803u32.to_be_bytes());
    for v in [labels.len() as u32, h as u32, w as u32] {
        images.extend_from_slice(&v.to_be_bytes());
    }
    for &y in labels {
        for r in 0..h {
            for _ in 0..w {
                let base = if r == (y as usize % h) { 150.0 } else { 40.0 };
                images.push((base + rng.random::<f32>() * 80.0) as u8);
            }
        }
    }
    let mut lab = Vec::new();
    lab.extend_from_slice(&0x0000_0801u32.to_be_bytes());
    lab.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    lab.extend_from_slice(labels);
    std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
    std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), lab).unwrap();
}

/// Labels 0, 1, …, k−1, 0, 1, … of n examples.
pub fn labels(n: usize, k: u8) -> Vec<u8> {
    (0..n).map(|i| (i % k as usize) as u8).collect()
}

/// The main job on an IDX folder with the `pixels` backbone and a 12-λ path.
pub fn pixels_job(data: &Path, out: &Path, extra: &[&str]) -> Output {
    fit()
        .args([
            "--dataset",
            "fashion-mnist",
            "--arch",
            "pixels",
            "--k",
            "12",
            "--quiet",
        ])
        .arg("--dataset-path")
        .arg(data)
        .arg("--out-path")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// A finished pixels run (300 training and 90 test 8×8 images of 3 classes) in `dir/run`.
pub fn small_pixels_run(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_idx(&data, "train", &labels(300, 3), 1);
    write_idx(&data, "t10k", &labels(90, 3), 2);
    let run = dir.join("run");
    let made = pixels_job(&data, &run, &[]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    run
}

/// `fit predict` on the raw inputs of a finished run's evaluated split gives the predictions
/// behind its metrics.json: per input the classes the run's layers give on the cached features,
/// the same accuracies, and every logit equal to the bias plus the listed contributions.
/// `args` name the inputs of the split's readable examples, in order. Returns the predictions.
pub fn assert_predict_matches_run(run: &Path, args: &[std::ffi::OsString]) -> Vec<fit::predict::Prediction> {
    let loaded = fit::run_folder::LoadedRun::open(run).unwrap();
    let acts = loaded.activations().unwrap();
    let d = loaded.sparse.d;
    let readable: Vec<usize> = (0..acts.len() / d)
        .filter(|&i| acts[i * d..(i + 1) * d].iter().all(|v| v.is_finite()))
        .collect();
    let rows: Vec<f32> = readable
        .iter()
        .flat_map(|&i| acts[i * d..(i + 1) * d].iter().copied())
        .collect();
    let datasets::Labels::Class(labels) = &loaded.split_set().labels else {
        panic!("single-label runs only");
    };
    let out = fit()
        .args(["predict", "--quiet", "--json", "--run"])
        .arg(run)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fit predict: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let preds: Vec<fit::predict::Prediction> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(preds.len(), readable.len(), "one prediction per input");
    let metrics = fit::run_folder::RunFolder::new(run).metrics().unwrap();
    let accuracy = |classes: &[usize]| {
        let right = classes
            .iter()
            .zip(&readable)
            .filter(|(c, &i)| **c as u32 == labels[i])
            .count();
        right as f64 / readable.len() as f64
    };
    let head = fit::run_folder::RunFolder::new(run).head().unwrap();
    let layers = [
        ("sparse", Some(&loaded.sparse), Some(&metrics.sparse)),
        ("dense", Some(&loaded.dense), Some(&metrics.dense)),
        ("head", head.as_ref(), metrics.head.as_ref()),
    ];
    for (name, layer, eval) in layers {
        let (Some(layer), Some(eval)) = (layer, eval) else {
            continue;
        };
        let cached = debug::predict(layer, &rows, d);
        let predicted: Vec<usize> = preds
            .iter()
            .map(|p| match name {
                "sparse" => p.sparse.class,
                "dense" => p.dense.class,
                _ => p.head.as_ref().expect("a head verdict").class,
            })
            .collect();
        assert_eq!(predicted, cached, "{name}: predict's classes are the run's");
        assert!(
            (accuracy(&predicted) - eval.scores.all).abs() < 1e-12,
            "{name}: accuracy {} vs metrics.json {}",
            accuracy(&predicted),
            eval.scores.all
        );
    }
    for p in &preds {
        let sum: f64 = p.bias as f64 + p.evidence.iter().map(|e| e.contribution).sum::<f64>();
        assert!(
            (sum - p.sparse.logit).abs() <= 1e-5,
            "{}: bias + contributions {sum} vs logit {}",
            p.input,
            p.sparse.logit
        );
        assert_eq!(
            p.evidence.len(),
            loaded.sparse.nnz_per_class()[p.sparse.class],
            "every used feature is listed"
        );
    }
    preds
}
