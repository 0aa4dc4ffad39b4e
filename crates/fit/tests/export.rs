//! `fit export` checked against PyTorch without PyTorch in CI: a ResNet-50 run on synthetic
//! weights (`vision::synthetic`) exported `--to torchvision`, and a BERT run on the random-weight
//! fixture (`bert::synthetic`) exported `--to hf`. `fixtures/check_exports.py` loaded the same
//! exports in torchvision and transformers (strict load, no missing or unexpected weights) and
//! committed their logits on the same inputs to `fixtures/exports.json`; here the exports' names
//! and shapes must be torchvision's and `fit predict`'s logits PyTorch's within 1e-4.
//!
//! To remake the fixture: `FIT_EXPORT_FIXTURE_DIR=DIR FIT_EXPORT_FIXTURE_MAKE=1 cargo test
//! --release -p fit --test export`, then `.fixture-venv/bin/python
//! crates/fit/fixtures/check_exports.py DIR` (the script runs both steps when given no folder).

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;

use common::{fit, scratch};
use serde_json::Value;

/// A tensor's f32 values.
fn floats(a: &solver::io::Array) -> Vec<f32> {
    match a {
        solver::io::Array::Float { data, .. } => data.clone(),
        other => panic!("not f32: {:?}", other.shape()),
    }
}

/// Largest |ours − PyTorch| of a logit.
const TOLERANCE: f64 = 1e-4;

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The folder the runs go to (kept when the fixture is being made), and whether it is.
fn work_dir(name: &str) -> (PathBuf, bool) {
    match std::env::var_os("FIT_EXPORT_FIXTURE_DIR") {
        Some(d) => {
            let dir = PathBuf::from(d).join(name);
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            (dir, std::env::var_os("FIT_EXPORT_FIXTURE_MAKE").is_some())
        }
        None => (scratch("export", name), false),
    }
}

/// PyTorch's side of the fixture, when it is not being remade.
fn expected(section: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/exports.json");
    let all: Value = serde_json::from_slice(&std::fs::read(&path).expect("fixtures/exports.json")).unwrap();
    all[section].clone()
}

/// `fit predict --json` on `inputs`; the predictions are also left in `dir/predict.json` for
/// the fixture script.
fn predict(run: &Path, dir: &Path, inputs: &[String]) -> Vec<fit::predict::Prediction> {
    let out = ok(
        fit()
            .args(["predict", "--quiet", "--json", "--run"])
            .arg(run)
            .args(inputs)
            .output()
            .unwrap(),
        "fit predict",
    );
    std::fs::write(dir.join("predict.json"), &out).unwrap();
    serde_json::from_str(&out).unwrap()
}

/// Our logits equal PyTorch's within the tolerance, input by input.
fn assert_logits_match(preds: &[fit::predict::Prediction], expected: &Value) {
    let theirs: Vec<Vec<f64>> = serde_json::from_value(expected["logits"].clone()).unwrap();
    assert_eq!(theirs.len(), preds.len());
    let mut worst = 0f64;
    for (p, t) in preds.iter().zip(&theirs) {
        assert_eq!(p.logits.len(), t.len(), "{}", p.input);
        for (a, b) in p.logits.iter().zip(t) {
            worst = worst.max((a - b).abs());
        }
    }
    assert!(
        worst <= TOLERANCE,
        "logits differ from PyTorch's by up to {worst:e}"
    );
}

/// 256×256 PNGs, so the 256 resize is the identity in both pipelines: `classes` folders of
/// `per_class` images told apart by colour and stripe direction.
fn write_images(root: &Path, classes: usize, per_class: usize, salt: u32) -> Vec<String> {
    let mut paths = Vec::new();
    for c in 0..classes {
        let dir = root.join(format!("class{c}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..per_class {
            let i = i as u32 + salt;
            let img = image::RgbImage::from_fn(256, 256, |x, y| {
                let stripe = if c % 2 == 0 { x } else { y };
                let v = ((stripe / (8 + 4 * c as u32) + i) % 2) as u8 * 90;
                let noise = ((x * 7 + y * 13 + i * 31) % 23) as u8;
                let base = [[170u8, 40, 40], [40, 150, 60], [50, 60, 180]][c % 3];
                image::Rgb(base.map(|b| b.saturating_add(v / 2).saturating_add(noise)))
            });
            let p = dir.join(format!("{i:02}.png"));
            img.save(&p).unwrap();
            paths.push(p.display().to_string());
        }
    }
    paths
}

#[test]
fn resnet_run_exports_a_torchvision_resnet50_with_the_sparse_fc() {
    let (dir, making) = work_dir("resnet50");
    let weights = dir.join("resnet50_synthetic.safetensors");
    let arch = vision::VisionArch::ResNet50;
    vision::synthetic::write_safetensors(&vision::synthetic::state_dict(arch, 7, 1000), &[""], &weights)
        .unwrap();
    write_images(&dir.join("train"), 3, 6, 0);
    let run = dir.join("run");
    ok(
        fit()
            .args([
                "--dataset",
                "image-folder",
                "--arch",
                "resnet50",
                "--k",
                "6",
                "--val-frac",
                "0.34",
                "--quiet",
            ])
            .arg("--dataset-path")
            .arg(dir.join("train"))
            .arg("--model-path")
            .arg(&weights)
            .arg("--out-path")
            .arg(&run)
            .output()
            .unwrap(),
        "fit (resnet50)",
    );
    ok(
        fit()
            .args(["export", "--to", "torchvision", "--run"])
            .arg(&run)
            .output()
            .unwrap(),
        "fit export --to torchvision",
    );
    ok(
        fit()
            .args(["export", "--to", "timm", "--run"])
            .arg(&run)
            .output()
            .unwrap(),
        "fit export --to timm",
    );
    ok(
        fit()
            .args(["export", "--to", "linear", "--run"])
            .arg(&run)
            .output()
            .unwrap(),
        "fit export --to linear",
    );
    let exported = run.join("export/selected_torchvision.safetensors");
    assert_eq!(
        std::fs::read(&exported).unwrap(),
        std::fs::read(run.join("export/selected_timm.safetensors")).unwrap(),
        "timm's ResNet names are torchvision's"
    );
    // The fc is the folded sparse layer, every other tensor the backbone's.
    let (tensors, _) = solver::io::read_safetensors(&exported).unwrap();
    let layer = solver::Layer::load(&run.join("selected.safetensors")).unwrap();
    let (w, b) = layer.to_raw();
    assert_eq!(floats(&tensors["fc.weight"]), w);
    assert_eq!(floats(&tensors["fc.bias"]), b);
    let synthetic = vision::synthetic::state_dict(arch, 7, 1000);
    let (name, _, values) = &synthetic[0];
    assert_eq!(&floats(&tensors[name.as_str()]), values);

    let inputs = write_images(&dir.join("new"), 3, 2, 40);
    let preds = predict(&run, &dir, &inputs[..5]);
    if making {
        return;
    }
    let expected = expected("resnet50");
    let keys: Vec<(String, Vec<usize>)> = serde_json::from_value(expected["keys"].clone()).unwrap();
    let mut ours: Vec<(String, Vec<usize>)> = tensors
        .iter()
        .map(|(n, a)| (n.clone(), a.shape().to_vec()))
        .collect();
    ours.sort();
    let mut theirs = keys.clone();
    theirs.sort();
    assert_eq!(ours, theirs, "torchvision resnet50(num_classes=3)'s state dict");
    assert_logits_match(&preds, &expected);
    // The linear export, loaded strictly into nn.Linear(2048, 3) on torchvision's pooled
    // features, gave the same logits.
    assert!(expected["linear_max_abs_diff_vs_fit"].as_f64().unwrap() <= TOLERANCE);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bert_run_exports_a_bert_for_sequence_classification_with_the_sparse_classifier() {
    let (dir, making) = work_dir("bert");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/bert/fixtures/random_bert");
    let model = dir.join("random_bert");
    std::fs::create_dir_all(&model).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(fixture.join(f), model.join(f)).unwrap();
    }
    let tensors = bert::synthetic::generated_tensors(&fixture.join("tensors.json")).unwrap();
    let views: Vec<(&str, Vec<usize>, &[f32])> = tensors
        .iter()
        .map(|(n, s, v)| (n.as_str(), s.clone(), v.as_slice()))
        .collect();
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    std::fs::write(
        model.join("model.safetensors"),
        solver::io::encode_safetensors(&views, Some(meta)).unwrap(),
    )
    .unwrap();
    // Sentences whose class is in their words, so even a random network's features tell the
    // classes apart and the sparse layer uses some of them.
    let tsv = dir.join("sentences.tsv");
    let (good, bad) = (
        ["wonderful", "great", "brilliant", "lovely", "superb", "funny"],
        ["awful", "terrible", "boring", "dull", "bad", "stupid"],
    );
    let nouns = ["film", "movie", "story", "plot", "cast"];
    let mut lines = vec!["sentence\tlabel".to_string()];
    for i in 0..120 {
        let (words, label) = if i % 2 == 0 { (&good, 1) } else { (&bad, 0) };
        lines.push(format!(
            "the {} was {} and {} .\t{label}",
            nouns[i % 5],
            words[i % 6],
            words[(i / 6 + 1) % 6]
        ));
    }
    std::fs::write(&tsv, lines.join("\n") + "\n").unwrap();
    let run = dir.join("run");
    ok(
        fit()
            .args([
                "--dataset",
                "sst2-tsv",
                "--arch",
                "bert",
                "--feature-mode",
                "pooler",
                "--k",
                "8",
                "--quiet",
            ])
            .arg("--dataset-path")
            .arg(&tsv)
            .arg("--model-path")
            .arg(&model)
            .arg("--out-path")
            .arg(&run)
            .output()
            .unwrap(),
        "fit (random BERT)",
    );
    ok(
        fit()
            .args(["export", "--to", "hf", "--run"])
            .arg(&run)
            .output()
            .unwrap(),
        "fit export --to hf",
    );
    let folder = run.join("export/selected_hf");
    let (exported, _) = solver::io::read_safetensors(&folder.join("model.safetensors")).unwrap();
    let layer = solver::Layer::load(&run.join("selected.safetensors")).unwrap();
    let (w, b) = layer.to_raw();
    assert_eq!(floats(&exported["classifier.weight"]), w);
    assert_eq!(floats(&exported["classifier.bias"]), b);
    assert!(layer.features_used() > 0, "the sparse classifier uses features");
    let mut names: Vec<&str> = exported.keys().map(String::as_str).collect();
    names.sort();
    let mut fixture_names: Vec<&str> = tensors.iter().map(|(n, _, _)| n.as_str()).collect();
    fixture_names.sort();
    assert_eq!(
        names, fixture_names,
        "the fixture's BertForSequenceClassification names"
    );

    let sentences: Vec<String> = [
        "A gorgeous, witty film that never stops surprising.",
        "The plot is a tedious mess and the acting is wooden.",
        "It's not bad, but I wouldn't watch it again.",
        "the cast was brilliant and lovely .",
        "Two hours of my life I will never get back.",
    ]
    .map(String::from)
    .to_vec();
    let preds = predict(&run, &dir, &sentences);
    if making {
        return;
    }
    let expected = expected("bert");
    assert_eq!(expected["missing"], Value::Array(vec![]));
    assert_eq!(expected["unexpected"], Value::Array(vec![]));
    assert_logits_match(&preds, &expected);
    let _ = std::fs::remove_dir_all(&dir);
}
