//! `fit interpret` and `fit debug` on finished runs, as users run them: an image run (IDX files
//! in Fashion-MNIST's format, the `pixels` backbone) and a text run (real MiniLM on Rotten
//! Tomatoes snippets, fetched by `cargo xtask fetch`). Each writes interpret.json, debug.json,
//! the pictures and a report.html whose every picture exists and has alt text; errors on a
//! folder that is not a finished run are one readable line.

use std::path::Path;
use std::process::Output;

mod common;

use common::{fit, labels, one_line_error, pixels_job, scratch, write_idx};
use serde_json::Value;

fn ok(out: Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{what} failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap()
}

/// Every `<img>` of the report names an existing file and has alt text; returns their count.
fn check_pictures(run: &Path) -> usize {
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    let mut count = 0;
    for tag in html.split("<img ").skip(1) {
        let tag = &tag[..tag.find('>').unwrap()];
        let attr = |name: &str| {
            let start = tag
                .find(&format!("{name}=\""))
                .unwrap_or_else(|| panic!("no {name} in <img {tag}>"));
            let rest = &tag[start + name.len() + 2..];
            rest[..rest.find('"').unwrap()].to_string()
        };
        let src = attr("src");
        assert!(run.join(&src).is_file(), "{src} missing");
        assert!(
            std::fs::read(run.join(&src)).unwrap().starts_with(b"\x89PNG"),
            "{src} is a PNG"
        );
        assert!(!attr("alt").trim().is_empty(), "{src} has alt text");
        count += 1;
    }
    count
}

#[test]
fn image_run_interpret_and_debug() {
    let dir = scratch("report", "pixels");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_idx(&data, "train", &labels(600, 4), 1);
    write_idx(&data, "t10k", &labels(200, 4), 2);
    let run = dir.join("run");
    // Not a run yet: one line each.
    let err = one_line_error(&fit().args(["interpret", "--run"]).arg(&run).output().unwrap());
    assert!(err.contains("run.json not found"), "{err}");
    ok(pixels_job(&data, &run, &[]), "fit");
    let err = one_line_error(
        &fit()
            .args(["debug", "--quiet", "--run"])
            .arg(&run)
            .output()
            .unwrap(),
    );
    assert!(err.contains("fit interpret"), "{err}");

    ok(
        fit()
            .args([
                "interpret",
                "--quiet",
                "--segments",
                "8",
                "--lime-samples",
                "48",
                "--max-features",
                "3",
                "--run",
            ])
            .arg(&run)
            .output()
            .unwrap(),
        "fit interpret",
    );
    let interp = json(&run.join("interpret.json"));
    let classes = interp["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 10, "Fashion-MNIST names ten classes");
    let readings = interp["readings"].as_array().unwrap();
    for c in classes {
        let shown = c["sparse_shown"].as_u64().unwrap() as usize;
        assert!(shown <= 3 && shown <= c["sparse"].as_array().unwrap().len());
        assert_eq!(c["dense"].as_array().unwrap().len(), 5);
        // Sparse features come largest |weight| first.
        let w: Vec<f64> = c["sparse"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["weight"].as_f64().unwrap().abs())
            .collect();
        assert!(w.windows(2).all(|p| p[0] >= p[1]));
        for f in c["sparse"].as_array().unwrap()[..shown]
            .iter()
            .chain(c["dense"].as_array().unwrap())
        {
            let j = f["feature"].as_u64().unwrap();
            let r = readings
                .iter()
                .find(|r| r["feature"].as_u64() == Some(j))
                .expect("every shown feature is read");
            // A pixel feature's top prototypes are the images where that pixel is brightest.
            let top: Vec<f64> = r["top"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["activation"].as_f64().unwrap())
                .collect();
            assert!(top.windows(2).all(|p| p[0] >= p[1]) && top.len() == 8);
            assert!(!r["image_lime"].as_array().unwrap().is_empty());
            let pics = &interp["pictures"][j.to_string()];
            assert!(pics["prototypes"].is_string() && pics["lime"].is_string());
        }
    }
    assert!(interp["lime"]["forward_passes"].as_u64().unwrap() > 0);
    assert!(check_pictures(&run) >= 3);

    ok(
        fit()
            .args(["debug", "--quiet", "--run"])
            .arg(&run)
            .output()
            .unwrap(),
        "fit debug",
    );
    let debug = json(&run.join("debug.json"));
    for layer in ["sparse", "dense"] {
        let m = &debug["misclassifications"][layer];
        let (errors, fixed) = (m["errors"].as_u64().unwrap(), m["fixed"].as_u64().unwrap());
        assert_eq!(m["examples"].as_u64(), Some(200));
        assert_eq!(m["per_error"].as_array().unwrap().len() as u64, errors);
        assert!(fixed <= errors);
        let with_fix = m["per_error"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["feature"].is_u64())
            .count() as u64;
        assert_eq!(with_fix, fixed);
    }
    assert!(debug["probe"].is_null(), "no bias probe on images");
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        html.contains("Debugging with the sparse layer")
            && html.contains("Errors fixed by zeroing a single feature")
    );
    check_pictures(&run);

    // The test split as PNG files through `fit predict`: the run's predictions, with evidence.
    let inputs = dir.join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    let loaded = fit::run_folder::LoadedRun::open(&run).unwrap();
    let datasets::Examples::Pixels {
        data: px,
        height,
        width,
        ..
    } = &loaded.split_set().examples
    else {
        panic!("IDX examples are pixels");
    };
    for (i, img) in px.chunks_exact(height * width).enumerate() {
        image::GrayImage::from_raw(*width as u32, *height as u32, img.to_vec())
            .unwrap()
            .save(inputs.join(format!("{i:04}.png")))
            .unwrap();
    }
    let preds = common::assert_predict_matches_run(&run, &[inputs.clone().into_os_string()]);
    assert_eq!(preds.len(), 200);
    let top = &preds[0].evidence[0];
    assert!(
        top.card
            .as_deref()
            .is_some_and(|c| c.contains("report.html#class-"))
            && !top.prototypes.is_empty(),
        "{top:?}"
    );
    let html_page = dir.join("predict.html");
    let text = ok(
        fit()
            .args(["predict", "--top", "3", "--run"])
            .arg(&run)
            .arg(inputs.join("0000.png"))
            .arg("--html")
            .arg(&html_page)
            .output()
            .unwrap(),
        "fit predict",
    );
    assert!(text.contains("sparse: ") && text.contains("= bias "), "{text}");
    assert!(std::fs::read_to_string(&html_page).unwrap().contains("<table>"));

    // Bad inputs and runs: one line each.
    std::fs::write(inputs.join("broken.png"), b"not a png").unwrap();
    let predict =
        |args: &[&std::ffi::OsStr]| one_line_error(&fit().arg("predict").args(args).output().unwrap());
    let r = run.as_os_str();
    let err = predict(&["--run".as_ref(), r, inputs.join("broken.png").as_os_str()]);
    assert!(
        err.contains("cannot read the image") && err.contains("broken.png"),
        "{err}"
    );
    let err = predict(&["--run".as_ref(), r, dir.join("missing.png").as_os_str()]);
    assert!(err.contains("does not exist"), "{err}");
    let list = dir.join("list.txt");
    std::fs::write(&list, format!("{}\n\n", inputs.join("0001.png").display())).unwrap();
    let err = predict(&["--run".as_ref(), r, "--file".as_ref(), list.as_os_str()]);
    assert!(err.contains("input 2") && err.contains("empty"), "{err}");
    let unfinished = dir.join("unfinished");
    std::fs::create_dir_all(&unfinished).unwrap();
    std::fs::copy(run.join("run.json"), unfinished.join("run.json")).unwrap();
    let err = predict(&[
        "--run".as_ref(),
        unfinished.as_os_str(),
        inputs.join("0001.png").as_os_str(),
    ]);
    assert!(err.contains("did not finish"), "{err}");
    // A network export needs a ResNet run.
    let err = one_line_error(
        &fit()
            .args(["export", "--to", "torchvision", "--run"])
            .arg(&run)
            .output()
            .unwrap(),
    );
    assert!(err.contains("exports ResNet runs"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn text_run_interpret_and_debug_with_real_minilm() {
    let data_dir = fit::recipe::data_dir();
    assert!(
        data_dir.join("pkg").is_dir(),
        "run `cargo xtask fetch` first (the README's test command does)"
    );
    let dir = scratch("report", "text");
    let run = dir.join("run");
    ok(
        fit()
            .env("FIT_DATA_DIR", &data_dir)
            .args([
                "--dataset",
                "rotten-tomatoes",
                "--arch",
                "minilm",
                "--max-examples",
                "150",
                "--k",
                "10",
                "--quiet",
                "--out-path",
            ])
            .arg(&run)
            .output()
            .unwrap(),
        "fit",
    );
    ok(
        fit()
            .args([
                "interpret",
                "--quiet",
                "--lime-samples",
                "24",
                "--max-features",
                "3",
                "--dense-top",
                "2",
                "--prototypes",
                "3",
                "--lime-inputs",
                "1",
                "--run",
            ])
            .arg(&run)
            .output()
            .unwrap(),
        "fit interpret",
    );
    let interp = json(&run.join("interpret.json"));
    assert_eq!(interp["is_text"], Value::Bool(true));
    for r in interp["readings"].as_array().unwrap() {
        let j = r["feature"].as_u64().unwrap().to_string();
        assert!(interp["pictures"][&j]["word_cloud"].is_string());
        for p in r["top"].as_array().unwrap() {
            let text = &interp["examples"][p["index"].as_u64().unwrap().to_string()]["text"];
            assert!(text.as_str().is_some_and(|t| !t.is_empty()));
        }
        // Words come from the explained sentences and are sorted by weight.
        let pos: Vec<f64> = r["positive_words"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["weight"].as_f64().unwrap())
            .collect();
        assert!(pos.iter().all(|&w| w > 0.0) && pos.windows(2).all(|p| p[0] >= p[1]));
    }
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        html.contains("Class: negative")
            && html.contains("Class: positive")
            && html.contains("most activating")
    );
    check_pictures(&run);

    // The evaluated split's sentences through `fit predict --file`: the run's predictions.
    let loaded = fit::run_folder::LoadedRun::open(&run).unwrap();
    let datasets::Examples::Text(sentences) = &loaded.split_set().examples else {
        panic!("a text run");
    };
    assert!(sentences
        .iter()
        .all(|t| !t.contains('\n') && !t.trim().is_empty()));
    let list = dir.join("sentences.txt");
    std::fs::write(&list, sentences.join("\n") + "\n").unwrap();
    let preds = common::assert_predict_matches_run(&run, &["--file".into(), list.into_os_string()]);
    assert!(
        preds
            .iter()
            .any(|p| p.evidence.iter().any(|e| !e.words.is_empty())),
        "the evidence carries word-cloud words"
    );

    ok(
        fit()
            .args([
                "debug",
                "--quiet",
                "--counterfactuals",
                "20",
                "--probe-inputs",
                "20",
                "--probe-words",
                "christianity,awful",
                "--lime-samples",
                "24",
                "--run",
            ])
            .arg(&run)
            .output()
            .unwrap(),
        "fit debug",
    );
    let debug = json(&run.join("debug.json"));
    let probe = &debug["probe"];
    assert_eq!(probe["words"].as_array().unwrap().len(), 2);
    assert_eq!(probe["inputs"].as_u64(), Some(20));
    let cf = &debug["counterfactuals"];
    let sampled = cf["sampled"].as_array().unwrap().len() as u64;
    assert!(sampled > 0 && sampled <= 20);
    for l in cf["layers"].as_array().unwrap() {
        assert_eq!(l["attempted"].as_u64(), Some(sampled));
        assert!(l["flips"].as_u64().unwrap() <= l["swapped"].as_u64().unwrap());
        for s in l["swaps"].as_array().unwrap() {
            let words = interpret::words::Words::split(s["text"].as_str().unwrap());
            assert!(
                words.position(s["word"].as_str().unwrap()).is_none(),
                "every occurrence swapped"
            );
            assert!(words.position(s["replacement"].as_str().unwrap()).is_some());
        }
    }
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("Bias probe") && html.contains("Counterfactuals"));
    let _ = std::fs::remove_dir_all(&dir);
}
