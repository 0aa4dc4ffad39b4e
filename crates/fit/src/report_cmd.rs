//! `report.html` of a run, built from the run folder's files alone (run.json, metrics.json,
//! interpret.json and, when `fit debug` has run, debug.json), so any stage can rebuild it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use interpret::report::{ClassSection, FeatureCard, Figure, Report, Table, TextExample};
use serde_json::Value;

use crate::interpret_cmd::{InterpretOutput, WeightedFeature};
use crate::recipe::RunRecipe;

#[derive(clap::Args, Debug, Clone)]
pub struct ReportArgs {
    /// A run folder on which `fit interpret` has run.
    #[arg(long)]
    pub run: PathBuf,
}

/// Text examples shown per side of a feature card.
const TEXTS_SHOWN: usize = 5;

fn read_json(path: &Path) -> Result<Value> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", path.display()))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn figure(src: &str, alt: String, caption: &str) -> Figure {
    Figure {
        src: src.to_string(),
        alt,
        caption: caption.to_string(),
    }
}

fn card(out: &InterpretOutput, wf: &WeightedFeature, class: &str, layer: &str) -> FeatureCard {
    let j = wf.feature;
    let mut card = FeatureCard {
        feature: j,
        weight: wf.weight,
        ..FeatureCard::default()
    };
    let Some(r) = out.reading(j) else {
        return card;
    };
    let lime_what = if out.is_text { "sentences" } else { "images" };
    card.stats = format!(
        "{layer} weight for {class}; activation on the {} split from {:.3} (top) to {:.3} (bottom); LIME surrogate R² {:.2} on its {lime_what}",
        out.split,
        r.top.first().map_or(f32::NAN, |p| p.activation),
        r.bottom.first().map_or(f32::NAN, |p| p.activation),
        r.lime_r2
    );
    let texts = |protos: &[interpret::reading::Prototype]| -> Vec<TextExample> {
        protos
            .iter()
            .take(TEXTS_SHOWN)
            .filter_map(|p| {
                let e = out.examples.get(&p.index)?;
                Some(TextExample {
                    text: e.text.clone()?,
                    value: p.activation,
                    note: e.label.clone(),
                })
            })
            .collect()
    };
    card.top_texts = texts(&r.top);
    card.bottom_texts = texts(&r.bottom);
    if let Some(p) = out.pictures.get(&j) {
        if let Some(src) = &p.word_cloud {
            let words = |w: &[interpret::reading::WordWeight]| {
                w.iter()
                    .take(5)
                    .map(|w| w.word.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            card.figures.push(figure(
                src,
                format!(
                    "Word clouds of feature {j}: words that raise it ({}) and lower it ({})",
                    words(&r.positive_words),
                    words(&r.negative_words)
                ),
                "LIME word weights on this feature, averaged over its top and bottom sentences",
            ));
        }
        if let Some(src) = &p.prototypes {
            card.figures.push(figure(
                src,
                format!("The {} test images that activate feature {j} most", r.top.len()),
                "most activating images (activation · true label)",
            ));
        }
        if let Some(src) = &p.feature_vis {
            let v = out.visualized.iter().find(|v| v.feature == j);
            card.figures.push(figure(
                src,
                format!("Feature visualization of feature {j}: an input image optimized by gradient ascent to maximize it"),
                &match v {
                    Some(v) => format!(
                        "gradient ascent on the input (pre-activation {:.2}; {:.2} on a gray image)",
                        v.activation, v.gray_activation
                    ),
                    None => "gradient ascent on the input".into(),
                },
            ));
        }
        if let Some(src) = &p.lime {
            card.figures.push(figure(
                src,
                format!("LIME overlays of feature {j} on its top images: superpixels that raise it outlined in green, those that lower it tinted red"),
                "LIME on the top images: green outline = superpixels that raise the feature, red = lower it, dimmed = little effect",
            ));
        }
    }
    card
}

/// Build and write `RUN/report.html`; returns its path.
pub fn write_report(run: &Path) -> Result<PathBuf> {
    let recipe = RunRecipe::load(run)?;
    let metrics = read_json(&run.join("metrics.json"))?;
    let out = InterpretOutput::load(run)?;
    let top_k = recipe.top_k;

    let mut facts = vec![
        (
            "dataset".to_string(),
            metrics["dataset"].as_str().unwrap_or_default().to_string(),
        ),
        (
            "backbone".to_string(),
            metrics["backbone"].as_str().unwrap_or_default().to_string(),
        ),
        (
            "features".to_string(),
            format!(
                "{} ({} per example)",
                metrics["feature_mode"].as_str().unwrap_or_default(),
                metrics["feature_dim"]
            ),
        ),
    ];
    if let Some(splits) = metrics["splits"].as_object() {
        let mut s: Vec<String> = ["train", "val", "test"]
            .iter()
            .filter_map(|k| splits.get(*k).map(|v| format!("{k} {}", v["n"])))
            .collect();
        if s.is_empty() {
            s.push("?".into());
        }
        facts.push(("splits".into(), s.join(", ")));
    }
    if let Some(notes) = metrics["dataset_notes"].as_array() {
        for n in notes.iter().filter_map(Value::as_str) {
            facts.push(("note".into(), n.to_string()));
        }
    }
    facts.push((
        "selected layer".into(),
        format!(
            "λ #{} = {:.4e}: validation accuracy {:.4} (best on the path {:.4}); seed {}",
            metrics["selected_lambda_index"],
            f(&metrics["selected_lambda"]),
            f(&metrics["selected_val_accuracy"]),
            f(&metrics["best_val_accuracy"]),
            recipe.random_seed
        ),
    ));
    facts.push((
        "LIME".into(),
        format!(
            "{} samples per input, kernel width {}, seed {}: {} inputs, {} forward passes in {:.1} s ({:.2} inputs/s)",
            out.lime_samples,
            out.kernel_width,
            out.seed,
            out.lime.inputs,
            out.lime.forward_passes,
            out.lime.seconds,
            out.lime.inputs_per_second()
        ),
    ));

    let row = |name: &str, e: &Value| {
        vec![
            name.to_string(),
            format!("{:.4}", f(&e["scores"]["all"])),
            format!("{:.1}", f(&e["features_per_class"])),
            format!("{:.4}", f(&e["scores"]["top_k"])),
            format!("{:.4}", f(&e["scores"]["rest"])),
            e["features_used"].to_string(),
        ]
    };
    let table = Table {
        caption: format!(
            "Accuracy on the {} split with all of a layer's features, with only each class's top {top_k} features by |weight|, and with only the rest (the paper's Figure 4b)",
            metrics["evaluated_on"].as_str().unwrap_or("test")
        ),
        header: ["layer", "accuracy", "features / class", &format!("top-{top_k} only"), "rest only", "features used"]
            .map(String::from)
            .to_vec(),
        // The network's own head first, when the run has one (`fit run`'s `head` row).
        rows: metrics
            .get("head")
            .map(|h| row("head (the network's own)", h))
            .into_iter()
            .chain([
                row("dense (ridge refit)", &metrics["dense"]),
                row("sparse", &metrics["sparse"]),
            ])
            .collect(),
    };
    let mut figures = Vec::new();
    if run.join("accuracy_vs_features.png").is_file() {
        figures.push(figure(
            "accuracy_vs_features.png",
            "Validation and test accuracy against features per class along the regularization path, with the selected layer marked".into(),
            "accuracy along the path (Figure 4a); the triangle is the selected sparse layer",
        ));
    }

    let classes = out
        .classes
        .iter()
        .map(|c| {
            let mut section = ClassSection {
                name: c.name.clone(),
                intro: format!(
                    "The sparse layer scores {} with {} feature{} (bias {:+.3}); the dense layer with all of them.",
                    c.name,
                    c.sparse.len(),
                    if c.sparse.len() == 1 { "" } else { "s" },
                    c.sparse_bias
                ),
                sparse: c.sparse[..c.sparse_shown]
                    .iter()
                    .map(|wf| card(&out, wf, &c.name, "sparse"))
                    .collect(),
                sparse_hidden: c.sparse.len() - c.sparse_shown,
                dense: c.dense.iter().map(|wf| card(&out, wf, &c.name, "dense")).collect(),
                figures: Vec::new(),
            };
            if let Some(src) = &c.coefficient_plot {
                section.figures.push(figure(
                    src,
                    format!("Coefficient paths of the sparse layer's features for class {}", c.name),
                    "weights of these features along the regularization path (λ decreasing to the right); dashed: the selected λ",
                ));
            }
            section
        })
        .collect();

    let mut sections = Vec::new();
    if let Some(debug) = crate::debug_cmd::report_section(run)? {
        sections.push(debug);
    }
    let report = Report {
        title: format!(
            "Sparse decision layer: {} on {}",
            crate::run_cmd::short_name(metrics["backbone"].as_str().unwrap_or_default()),
            recipe.dataset
        ),
        facts,
        table: Some(table),
        figures,
        classes,
        sections,
        footer: format!(
            "Made by fit {} from {}: run.json, metrics.json, interpret.json. Weights are on standardized features (the layer files hold mean and std).",
            env!("CARGO_PKG_VERSION"),
            run.display()
        ),
    };
    let path = run.join("report.html");
    interpret::report::write(&path, &report)?;
    Ok(path)
}
