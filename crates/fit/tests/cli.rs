//! The `fit path` command as users run it: bad input gives one readable line and a non-zero
//! exit, never a panic; a path killed with SIGKILL resumes to exactly the uninterrupted result.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use solver::io::{encode_npy, read_safetensors, Array};

mod common;

use common::fit;

fn write_npy(path: &Path, a: &Array) {
    std::fs::write(path, encode_npy(a)).unwrap();
}

/// A learnable seeded problem: class = argmax of a few features plus noise.
fn make_split(dir: &Path, name: &str, n: usize, d: usize, k: usize, seed: u64) -> (Vec<f32>, Vec<i64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x: Vec<f32> = (0..n * d).map(|_| rng.random::<f32>() * 4.0 - 2.0).collect();
    let y: Vec<i64> = (0..n)
        .map(|i| {
            let row = &x[i * d..(i + 1) * d];
            let scores: Vec<f32> = (0..k)
                .map(|c| row[c] - row[c + k] + 0.7 * rng.random::<f32>())
                .collect();
            (0..k).max_by(|&a, &b| scores[a].total_cmp(&scores[b])).unwrap() as i64
        })
        .collect();
    save(dir, name, &x, &y, n, d);
    (x, y)
}

fn save(dir: &Path, name: &str, x: &[f32], y: &[i64], n: usize, d: usize) {
    write_npy(
        &dir.join(format!("X_{name}.npy")),
        &Array::Float {
            shape: vec![n, d],
            data: x.to_vec(),
        },
    );
    write_npy(
        &dir.join(format!("y_{name}.npy")),
        &Array::Int {
            shape: vec![y.len()],
            data: y.to_vec(),
        },
    );
}

/// `fit path` on the split files in `dir`, writing to `out`, quiet.
fn path_cmd(dir: &Path, out: &Path) -> Command {
    let mut cmd = fit();
    cmd.arg("path")
        .arg("--train")
        .arg(dir.join("X_train.npy"))
        .arg("--val")
        .arg(dir.join("X_val.npy"))
        .arg("--out")
        .arg(out)
        .arg("--quiet");
    cmd
}

fn run_path(dir: &Path, out: &Path, extra: &[&str]) -> Output {
    path_cmd(dir, out)
        .args(["--k", "5"])
        .args(extra)
        .output()
        .unwrap()
}

/// The command failed cleanly: non-zero exit, one `error:` line containing `needle`, no panic.
fn assert_clean_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "panic instead of an error: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains(needle), "'{needle}' not in: {stderr}");
}

#[test]
fn bad_inputs_give_one_readable_line() {
    let dir = common::scratch("cli", "bad");
    let (n, d, k) = (200, 6, 3);
    let (x, y) = make_split(&dir, "train", n, d, k, 1);
    make_split(&dir, "val", 50, d, k, 2);
    let out_dir = dir.join("out");

    // NaN and Inf features, named by split, row and column.
    let mut bad = x.clone();
    bad[5 * d + 2] = f32::NAN;
    save(&dir, "train", &bad, &y, n, d);
    assert_clean_error(&run_path(&dir, &out_dir, &[]), "row 5, column 2 is not finite");
    bad[5 * d + 2] = f32::INFINITY;
    save(&dir, "train", &bad, &y, n, d);
    assert_clean_error(
        &run_path(&dir, &out_dir, &[]),
        "inf at row 5, column 2 is not finite",
    );

    // Labels out of range and negative.
    let mut labels = y.clone();
    labels[7] = 9;
    save(&dir, "train", &x, &labels, n, d);
    assert_clean_error(
        &run_path(&dir, &out_dir, &["--num-classes", "3"]),
        "label 9 at row 7 is out of range 0..3",
    );
    labels[7] = -1;
    save(&dir, "train", &x, &labels, n, d);
    assert_clean_error(
        &run_path(&dir, &out_dir, &[]),
        "label -1 at row 7 is out of range",
    );

    // Feature/label count mismatch.
    save(&dir, "train", &x, &y[..n - 3], n, d);
    assert_clean_error(&run_path(&dir, &out_dir, &[]), "200 feature rows but 197 labels");

    // Empty split.
    save(&dir, "train", &[], &[], 0, d);
    assert_clean_error(&run_path(&dir, &out_dir, &[]), "train split is empty");

    // A split with a single class.
    save(&dir, "train", &x, &vec![1; n], n, d);
    assert_clean_error(&run_path(&dir, &out_dir, &[]), "single class");
    save(&dir, "train", &x, &y, n, d);

    // Configuration out of range.
    assert_clean_error(
        &run_path(&dir, &out_dir, &["--alpha", "1.5"]),
        "alpha must lie in [0, 1]",
    );
    assert_clean_error(&run_path(&dir, &out_dir, &["--k", "0"]), "at least one lambda");
    assert_clean_error(
        &run_path(&dir, &out_dir, &["--lr=-1"]),
        "lr must be a positive number",
    );

    // Unreadable and mis-shaped files.
    std::fs::write(dir.join("X_val.npy"), b"definitely not numpy").unwrap();
    assert_clean_error(&run_path(&dir, &out_dir, &[]), "not a .npy file");
    write_npy(
        &dir.join("X_val.npy"),
        &Array::Float {
            shape: vec![50 * d],
            data: vec![0.0; 50 * d],
        },
    );
    assert_clean_error(&run_path(&dir, &out_dir, &[]), "features must be a 2-D array");
    make_split(&dir, "val", 50, d + 1, k, 2);
    assert_clean_error(
        &run_path(&dir, &out_dir, &[]),
        "val split has 7 features but the training split has 6",
    );
    std::fs::remove_file(dir.join("y_val.npy")).unwrap();
    assert_clean_error(&run_path(&dir, &out_dir, &[]), "cannot read");
    assert!(
        !out_dir.join("path.json").exists(),
        "no failed run leaves a path.json"
    );

    // A backend that is not built in names the feature to enable.
    make_split(&dir, "val", 50, d, k, 2);
    if !solver::BackendKind::Cuda.compiled_in() {
        assert_clean_error(
            &run_path(&dir, &out_dir, &["--backend", "cuda"]),
            "--features cuda",
        );
    }
}

#[test]
fn constant_features_are_reported_and_clamped() {
    let dir = common::scratch("cli", "const");
    let (n, d, k) = (300, 5, 2);
    let (mut x, y) = make_split(&dir, "train", n, d, k, 3);
    make_split(&dir, "val", 60, d, k, 4);
    for i in 0..n {
        x[i * d + 4] = 3.25;
    }
    save(&dir, "train", &x, &y, n, d);
    let out_dir = dir.join("out");
    let out = run_path(&dir, &out_dir, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("1 constant feature(s)") && stderr.contains("[4]"),
        "{stderr}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("path.json")).unwrap()).unwrap();
    assert_eq!(report["clamped_features"], serde_json::json!([4]));
    let layer = solver::Layer::load(&out_dir.join("selected.safetensors")).unwrap();
    assert_eq!(layer.std[4], 1.0);
    assert!(layer.weight.iter().all(|v| v.is_finite()));
}

fn completed_lambdas(out: &Path) -> Option<usize> {
    let (_, meta) = read_safetensors(&out.join("checkpoint.safetensors")).ok()?;
    meta.get("completed")?.parse().ok()
}

/// Records without the wall-clock fields, for comparing runs.
fn records_without_timing(out: &Path) -> Vec<serde_json::Value> {
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("path.json")).unwrap()).unwrap();
    report["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.as_object_mut().unwrap().remove("seconds");
            r.as_object_mut().unwrap().remove("session");
            r
        })
        .collect()
}

#[test]
fn killed_path_resumes_to_the_uninterrupted_result() {
    let dir = common::scratch("cli", "resume");
    let (d, k) = (40, 4);
    make_split(&dir, "train", 8000, d, k, 5);
    make_split(&dir, "val", 500, d, k, 6);
    // tol 0 and no lookbehind: every λ runs its 150 epochs, so the kill lands mid-path.
    let args = [
        "--k",
        "24",
        "--tol",
        "0",
        "--lookbehind",
        "0",
        "--max-epochs",
        "150",
        "--seed",
        "11",
    ];

    let full = dir.join("full");
    let out = run_path(&dir, &full, &args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Start the same run, SIGKILL it once a few λ are checkpointed, then resume.
    let part = dir.join("part");
    let mut child = path_cmd(&dir, &part).args(args).spawn().unwrap();
    let started = Instant::now();
    let done_at_kill = loop {
        if let Some(done) = completed_lambdas(&part) {
            if done >= 3 {
                child.kill().unwrap(); // SIGKILL on Unix
                child.wait().unwrap();
                break completed_lambdas(&part).unwrap();
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run finished before it could be killed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(
        done_at_kill < 24,
        "killed after the last λ; nothing left to resume"
    );
    assert!(
        !part.join("path.json").exists(),
        "a killed run must not look complete"
    );

    let out = run_path(&dir, &part, &[&args[..], &["--resume"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    assert_eq!(
        records_without_timing(&full),
        records_without_timing(&part),
        "resumed path differs"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(part.join("path.json")).unwrap()).unwrap();
    // The resumed part includes dense λ (solved on all features), whose start extrapolates the
    // last two solutions: the checkpoint must carry the one before the last.
    assert!(
        dense_lambdas_after(&report, done_at_kill, d) > 0,
        "no dense λ after the kill"
    );
    for r in report["records"].as_array().unwrap() {
        let index = r["index"].as_u64().unwrap() as usize;
        let session = r["session"].as_u64().unwrap();
        // λ finished before the kill keep the first session's record: none was recomputed.
        assert_eq!(session, if index < done_at_kill { 0 } else { 1 }, "λ #{index}");
    }
    assert_same_layers(&full, &part, 24);
    assert_eq!(
        std::fs::read(full.join("selected.safetensors")).unwrap(),
        std::fs::read(part.join("selected.safetensors")).unwrap()
    );
}

#[test]
fn path_stopped_after_first_lambdas_resumes_to_the_full_result() {
    // Three epochs per λ leave every λ far from converged, so its result depends on where it
    // started: a resume that lost the extrapolated start (it needs the solution before the
    // last, kept in the checkpoint) or the SAGA table would end elsewhere.
    let dir = common::scratch("cli", "resume-first");
    let (d, k) = (12, 3);
    make_split(&dir, "train", 3000, d, k, 7);
    make_split(&dir, "val", 300, d, k, 8);
    let args = [
        "--k",
        "16",
        "--tol",
        "0",
        "--lookbehind",
        "0",
        "--max-epochs",
        "3",
        "--seed",
        "5",
    ];
    let full = dir.join("full");
    let out = run_path(&dir, &full, &args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let part = dir.join("part");
    let out = run_path(&dir, &part, &[&args[..], &["--first", "9"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run_path(&dir, &part, &[&args[..], &["--resume"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(part.join("path.json")).unwrap()).unwrap();
    assert!(
        dense_lambdas_after(&report, 9, d) > 0,
        "no dense λ after the resume point"
    );
    assert_eq!(
        records_without_timing(&full),
        records_without_timing(&part),
        "resumed path differs"
    );
    assert_same_layers(&full, &part, 16);
}

/// λ records with an index above `index` that were solved on all `d` features (the ones whose
/// start extrapolates the last two solutions).
fn dense_lambdas_after(report: &serde_json::Value, index: usize, d: usize) -> usize {
    report["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["index"].as_u64().unwrap() as usize > index && r["active_features"].as_u64() == Some(d as u64)
        })
        .count()
}

/// The first `count` layer files of two runs are equal, bit for bit.
fn assert_same_layers(a: &Path, b: &Path, count: usize) {
    for i in 0..count {
        let name = format!("layers/lambda_{i:03}.safetensors");
        let la = solver::Layer::load(&a.join(&name)).unwrap();
        let lb = solver::Layer::load(&b.join(&name)).unwrap();
        assert_eq!(la, lb, "layer {i} differs after resume");
    }
}

fn path_report(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("path.json")).unwrap()).unwrap()
}

#[test]
fn checkpoint_holds_the_layer_not_the_table() {
    // The n×K SAGA table is refilled from the layer at every λ, so the checkpoint is
    // layer-sized whatever n is (5 GB of table at ImageNet would be rewritten every λ).
    let dir = common::scratch("cli", "checkpoint-size");
    let (n, d, k) = (4000, 10, 4);
    make_split(&dir, "train", n, d, k, 31);
    make_split(&dir, "val", 200, d, k, 32);
    let out_dir = dir.join("out");
    let out = run_path(&dir, &out_dir, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (tensors, _) = read_safetensors(&out_dir.join("checkpoint.safetensors")).unwrap();
    let mut names: Vec<&str> = tensors.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["b", "b_prev", "wt", "wt_prev"]);
    let bytes = std::fs::metadata(out_dir.join("checkpoint.safetensors"))
        .unwrap()
        .len();
    assert!(bytes < (n * k * 4) as u64 / 4, "checkpoint of {bytes} bytes");
    // The memory plan and the measured peak land in path.json.
    let report = path_report(&out_dir);
    assert_eq!(report["memory"]["table"].as_u64(), Some((n * k * 4) as u64));
    assert_eq!(report["memory"]["x_train"].as_u64(), Some((n * d * 4) as u64));
    assert!(report["peak_rss"].as_u64().unwrap() > 0);
}

#[test]
fn fixed_lambda_fits_one_layer() {
    let dir = common::scratch("cli", "fixed-lambda");
    let (d, k) = (10, 3);
    make_split(&dir, "train", 1500, d, k, 41);
    make_split(&dir, "val", 200, d, k, 42);
    let path_dir = dir.join("path");
    let out = run_path(&dir, &path_dir, &["--k", "6", "--eps", "0.05"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let path = path_report(&path_dir);
    let lambda = path["lambdas"][3].as_f64().unwrap();

    let one = dir.join("one");
    let out = path_cmd(&dir, &one)
        .args(["--lambda", &format!("{lambda:e}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = path_report(&one);
    let records = report["records"].as_array().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(report["lambdas"].as_array().unwrap().len(), 1);
    assert_eq!(records[0]["lambda"].as_f64(), Some(lambda));
    // The same optimum as the path's λ #3 reached by warm starts (objective to 1e-4).
    let on_path = path["records"][3]["objective"].as_f64().unwrap();
    let alone = records[0]["objective"].as_f64().unwrap();
    assert!(
        (alone - on_path).abs() <= 1e-4 * on_path.abs(),
        "fixed λ objective {alone} vs path {on_path}"
    );
    assert!(records[0]["kkt"].as_f64().unwrap() < 1e-2);

    assert_clean_error(
        &path_cmd(&dir, &one).arg("--lambda=-1").output().unwrap(),
        "lambda must be a number >= 0",
    );
}

#[test]
fn given_lambdas_give_the_grid_path_bit_for_bit() {
    // A grid handed in with --lambdas (glm_saga's, from sparsefit) is solved exactly as the same
    // grid computed from k and eps: same layers, byte for byte.
    let dir = common::scratch("cli", "given-lambdas");
    let (d, k) = (10, 3);
    make_split(&dir, "train", 1200, d, k, 43);
    make_split(&dir, "val", 200, d, k, 44);
    let grid_dir = dir.join("grid");
    let out = run_path(&dir, &grid_dir, &["--k", "5", "--eps", "0.05", "--dense-end"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let grid = path_report(&grid_dir);
    let lambdas: Vec<f64> = grid["lambdas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_f64().unwrap())
        .collect();
    assert_eq!(lambdas.len(), 6);
    assert_eq!(lambdas[5], 0.0);
    // Rust's shortest round-trip form, so the list parses back to the same f64s.
    let list: Vec<String> = lambdas[..5].iter().map(|l| format!("{l:?}")).collect();
    let given_dir = dir.join("given");
    let out = path_cmd(&dir, &given_dir)
        .args(["--lambdas", &list.join(","), "--dense-end"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let given = path_report(&given_dir);
    assert_eq!(given["lambdas"], grid["lambdas"]);
    for i in 0..6 {
        let name = format!("layers/lambda_{i:03}.safetensors");
        let a = std::fs::read(grid_dir.join(&name)).unwrap();
        let b = std::fs::read(given_dir.join(&name)).unwrap();
        assert!(a == b, "{name} differs");
    }

    let bad = dir.join("bad");
    assert_clean_error(
        &path_cmd(&dir, &bad)
            .args(["--lambdas", "0.01,0.02"])
            .output()
            .unwrap(),
        "the lambdas must not increase",
    );
    assert_clean_error(
        &path_cmd(&dir, &bad).args(["--lambdas=0.02,-1"]).output().unwrap(),
        "every lambda must be a number >= 0",
    );
}

#[test]
fn path_ends_at_max_features_per_class_or_reference_accuracy() {
    let dir = common::scratch("cli", "early-end");
    let (d, k) = (16, 4);
    make_split(&dir, "train", 2000, d, k, 51);
    make_split(&dir, "val", 400, d, k, 52);
    let full_dir = dir.join("full");
    let out = run_path(&dir, &full_dir, &["--k", "20"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let full = path_report(&full_dir);
    let full_records = full["records"].as_array().unwrap();
    let per_class = |r: &serde_json::Value| r["nnz"].as_f64().unwrap() / k as f64;

    // Features per class: the path ends at the first λ reaching 3.
    let cap = dir.join("cap");
    let out = run_path(&dir, &cap, &["--k", "20", "--max-features-per-class", "3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("the path ended early"));
    let report = path_report(&cap);
    let records = report["records"].as_array().unwrap();
    let first_at_cap = full_records.iter().position(|r| per_class(r) >= 3.0).unwrap();
    assert_eq!(records.len(), first_at_cap + 1);
    assert!(records[..first_at_cap].iter().all(|r| per_class(r) < 3.0));
    assert!(report["ended_early"]
        .as_str()
        .unwrap()
        .contains("max-features-per-class"));

    // A reference accuracy: the path ends once a λ is within 0.05 of it, and that λ (the
    // sparsest in the band) is selected.
    let best = full["selection"]["best_val_score"].as_f64().unwrap();
    let reference = best - 0.01;
    let refd = dir.join("reference");
    let out = run_path(
        &dir,
        &refd,
        &["--k", "20", "--reference-accuracy", &format!("{reference}")],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = path_report(&refd);
    let records = report["records"].as_array().unwrap();
    let last = records.last().unwrap();
    assert!(last["val"]["accuracy"].as_f64().unwrap() >= reference - 0.05 - 1e-12);
    assert!(records.len() < full_records.len(), "the path did not end early");
    assert_eq!(
        report["selection"]["selected_index"].as_u64(),
        Some(records.len() as u64 - 1)
    );
    assert_eq!(report["selection"]["reference"].as_f64(), Some(reference));

    assert_clean_error(
        &run_path(&dir, &cap, &["--max-features-per-class", "0"]),
        "max features per class must be a positive number",
    );
    assert_clean_error(
        &run_path(&dir, &cap, &["--select-threshold", "nan"]),
        "selection threshold must be a number >= 0",
    );
}

#[test]
fn streamed_and_half_precision_features_follow_the_in_memory_path() {
    let dir = common::scratch("cli", "storage");
    let (d, k) = (12, 3);
    let (x, _) = make_split(&dir, "train", 1500, d, k, 61);
    make_split(&dir, "val", 300, d, k, 62);
    let args = ["--k", "12", "--eps", "0.02"];
    let plain = dir.join("plain");
    let out = run_path(&dir, &plain, &args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // X held on the host and moved in blocks: the same path bit for bit.
    let streamed = dir.join("streamed");
    let out = run_path(&dir, &streamed, &[&args[..], &["--stream"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_same_layers(&plain, &streamed, 12);
    // X read from the .npy files as the path runs (standardized as it is read).
    let from_disk = dir.join("disk");
    let out = run_path(&dir, &from_disk, &[&args[..], &["--stream", "disk"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_same_layers(&plain, &from_disk, 12);
    assert_eq!(path_report(&from_disk)["memory"]["x_train"].as_u64(), Some(0));

    // Half-precision storage: the f16 file and the f32 file read as f16 give the same
    // path, and it stays near the f32 path (the features are rounded to 11 bits).
    let half = dir.join("half");
    std::fs::create_dir_all(&half).unwrap();
    write_npy(
        &half.join("X_train.npy"),
        &Array::Half {
            shape: vec![1500, d],
            data: solver::Features::F32(x).into_storage(solver::Storage::F16),
        },
    );
    std::fs::copy(dir.join("y_train.npy"), half.join("y_train.npy")).unwrap();
    std::fs::copy(dir.join("X_val.npy"), half.join("X_val.npy")).unwrap();
    std::fs::copy(dir.join("y_val.npy"), half.join("y_val.npy")).unwrap();
    let from_file = half.join("out");
    let out = run_path(&half, &from_file, &[&args[..], &["--storage", "f16"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let converted = dir.join("f16");
    let out = run_path(&dir, &converted, &[&args[..], &["--storage", "f16"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_same_layers(&from_file, &converted, 12);
    let report = path_report(&converted);
    assert_eq!(report["memory"]["storage"].as_str(), Some("f16"));
    assert_eq!(report["memory"]["x_train"].as_u64(), Some((1500 * d * 2) as u64));

    let bf16 = dir.join("bf16");
    let out = run_path(&dir, &bf16, &[&args[..], &["--storage", "bf16"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let f32_path = path_report(&plain);
    for (run, tol) in [(&converted, 1e-3), (&bf16, 1e-2)] {
        let report = path_report(run);
        for (a, b) in f32_path["records"]
            .as_array()
            .unwrap()
            .iter()
            .zip(report["records"].as_array().unwrap())
        {
            let (fa, fb) = (a["objective"].as_f64().unwrap(), b["objective"].as_f64().unwrap());
            assert!(
                (fa - fb).abs() <= tol * fa,
                "{}: objective {fb} vs f32 {fa}",
                run.display()
            );
        }
    }
}

/// A `.npy` file with the given header dictionary and raw body.
fn raw_npy(path: &Path, header: &str, body: &[u8]) {
    let mut h = header.as_bytes().to_vec();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(b' ');
    }
    h.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(h.len() as u16).to_le_bytes());
    bytes.extend_from_slice(&h);
    bytes.extend_from_slice(body);
    std::fs::write(path, bytes).unwrap();
}

fn records(out: &Path) -> Vec<serde_json::Value> {
    path_report(out)["records"].as_array().unwrap().clone()
}

fn layer_count(out: &Path) -> usize {
    std::fs::read_dir(out.join("layers")).map_or(0, |d| d.count())
}

/// The hostile inputs of issue 21 that once panicked, aborted or exited 0 with wrong output:
/// each now fails with one line before any long stage, or gives the right output.
#[test]
fn hostile_inputs_fail_cleanly_or_give_the_right_output() {
    let dir = common::scratch("cli", "hostile");
    let (n, d, k) = (200, 6, 3);
    let (x, y) = make_split(&dir, "train", n, d, k, 1);
    make_split(&dir, "val", 50, d, k, 2);
    let out = dir.join("out");

    // An absurd label: no billion-class one-hot, an error naming --num-classes; and a real
    // --num-classes that size is refused by the memory plan before anything is allocated.
    let mut big = y.clone();
    big[3] = 1_000_000_000;
    save(&dir, "train", &x, &big, n, d);
    assert_clean_error(&run_path(&dir, &out, &[]), "give --num-classes 1000000001");
    assert_clean_error(
        &run_path(&dir, &out, &["--num-classes", "1000000001"]),
        "GB of host memory",
    );
    save(&dir, "train", &x, &y, n, d);
    assert_clean_error(&run_path(&dir, &out, &["--k", "99999999999"]), "at most 100000");

    // Option values checked before the path, so no layers folder is left without a path.json.
    for t in ["nan", "-1"] {
        assert_clean_error(
            &run_path(&dir, &out, &[&format!("--select-threshold={t}")]),
            "selection threshold",
        );
    }
    assert!(!out.join("layers").exists() && !out.join("path.json").exists());

    // A step size far too large: the path diverges and says so instead of reporting 5e27.
    assert_clean_error(&run_path(&dir, &out, &["--lr", "1e30"]), "diverged at lambda #2");
    assert!(!out.join("path.json").exists());

    // Malformed .npy headers.
    let body: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    let bad = dir.join("X_bad.npy");
    let bad_run = |header: &str| {
        raw_npy(&bad, header, &body);
        fit()
            .args(["path", "--quiet", "--k", "3", "--train"])
            .arg(format!("{},{}", bad.display(), dir.join("y_train.npy").display()))
            .arg("--val")
            .arg(dir.join("X_val.npy"))
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    };
    for descr in ["", "<f0"] {
        let header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (200, 6), }}");
        assert_clean_error(&bad_run(&header), "unsupported dtype");
    }
    assert_clean_error(
        &bad_run("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }"),
        "more values than memory can address",
    );
    // Fortran order is read as Fortran order: the same path as the C-order file.
    let fortran: Vec<u8> = (0..d)
        .flat_map(|j| (0..n).map(move |i| (i, j)))
        .flat_map(|(i, j)| x[i * d + j].to_le_bytes())
        .collect();
    raw_npy(
        &bad,
        "{'descr': '<f4', 'fortran_order': True, 'shape': (200, 6), }",
        &fortran,
    );
    let f_out = dir.join("fortran");
    let ran = fit()
        .args(["path", "--quiet", "--k", "5", "--train"])
        .arg(format!("{},{}", bad.display(), dir.join("y_train.npy").display()))
        .arg("--val")
        .arg(dir.join("X_val.npy"))
        .arg("--out")
        .arg(&f_out)
        .output()
        .unwrap();
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    assert!(run_path(&dir, &out, &[]).status.success());
    assert_same_layers(&out, &f_out, 5);

    // A rerun with a smaller --k leaves no layer of the longer path behind.
    assert!(run_path(&dir, &out, &["--k", "8"]).status.success());
    assert_eq!(layer_count(&out), 8);
    assert!(run_path(&dir, &out, &["--k", "4"]).status.success());
    assert_eq!((layer_count(&out), records(&out).len()), (4, 4));

    // --resume --first 3 after 8 λs reports the 3 asked for.
    assert!(run_path(&dir, &out, &["--k", "8"]).status.success());
    assert!(run_path(&dir, &out, &["--k", "8", "--resume", "--first", "3"])
        .status
        .success());
    assert_eq!(records(&out).len(), 3);
    // A resume notices a layer file deleted or overwritten since the checkpoint.
    let third = out.join("layers/lambda_002.safetensors");
    let saved = std::fs::read(&third).unwrap();
    std::fs::write(&third, b"overwritten").unwrap();
    assert_clean_error(
        &run_path(&dir, &out, &["--k", "8", "--resume"]),
        "lambda_002.safetensors is changed since the checkpoint",
    );
    std::fs::remove_file(&third).unwrap();
    assert_clean_error(
        &run_path(&dir, &out, &["--k", "8", "--resume"]),
        "lambda_002.safetensors is missing since the checkpoint",
    );
    std::fs::write(&third, saved).unwrap();
    assert!(run_path(&dir, &out, &["--k", "8", "--resume"]).status.success());

    // A write that fails is reported as a write: --out names a file, not a folder.
    let not_a_dir = dir.join("a-file");
    std::fs::write(&not_a_dir, b"x").unwrap();
    assert_clean_error(&run_path(&dir, &not_a_dir, &[]), "cannot write");

    // A second command on a folder being written fails at once.
    let lock = std::fs::File::open(out.join(solver::io::LOCK_FILE)).unwrap();
    lock.try_lock().unwrap();
    assert_clean_error(&run_path(&dir, &out, &[]), "another process is writing into");
    drop(lock);
    assert!(run_path(&dir, &out, &[]).status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The later stages' hostile options and files: one line each, before any long stage.
#[test]
fn hostile_options_of_interpret_debug_and_report_fail_cleanly() {
    let dir = common::scratch("cli", "hostile-run");
    let run = common::small_pixels_run(&dir);
    let stage = |args: &[&str]| fit().args(args).arg("--run").arg(&run).output().unwrap();
    assert_clean_error(
        &stage(&["interpret", "--kernel-width", "nan"]),
        "--kernel-width must be a positive number",
    );
    assert_clean_error(
        &stage(&["interpret", "--segments", "0"]),
        "--segments must be at least 1",
    );
    assert!(stage(&[
        "interpret",
        "--quiet",
        "--lime-samples",
        "16",
        "--max-features",
        "1",
        "--feature-vis",
        "0"
    ])
    .status
    .success());
    let missing = dir.join("no-such-words.txt");
    assert_clean_error(
        &stage(&["debug", "--probe-words", missing.to_str().unwrap()]),
        "does not exist",
    );
    assert_clean_error(
        &stage(&["debug", "--placement", "middle"]),
        "--placement must be append or prepend",
    );
    // The main job checks the path's options before reading any data.
    let never = dir.join("never");
    for bad in [["--alpha", "1.5"], ["--select-threshold", "nan"]] {
        let out = common::pixels_job(&dir.join("data"), &never, &bad);
        assert_clean_error(&out, "invalid configuration");
    }
    assert!(!never.exists(), "a refused job writes nothing");

    // A shared feature cache rebuilt since for other features: the later stages notice.
    let manifest = run.join("features/manifest.json");
    let original = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, original.replace("pixel / 255", "pixel / 256")).unwrap();
    assert_clean_error(&stage(&["debug"]), "now holds other features");
    std::fs::write(&manifest, original).unwrap();
    // A metrics.json emptied to `{}`: the report names the file instead of printing NaN.
    std::fs::write(run.join("metrics.json"), b"{}").unwrap();
    assert_clean_error(&stage(&["report"]), "metrics.json is not a run's metrics");
    let _ = std::fs::remove_dir_all(&dir);
}
