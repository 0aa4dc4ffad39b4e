//! `report.html` of a run, built from the run folder's files alone (run.json, metrics.json,
//! interpret.json and, when `fit debug` has run, debug.json), so any stage can rebuild it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use debug::Placement;
use interpret::report::{Block, ClassSection, FeatureCard, Figure, Report, Section, Table, TextExample};
use solver::evaluate::LayerEvaluation;

use crate::run_folder::{DebugOutput, InterpretOutput, RunFolder, WeightedFeature};

#[derive(clap::Args, Debug, Clone)]
pub struct ReportArgs {
    /// A run folder on which `fit interpret` has run.
    #[arg(long)]
    pub run: PathBuf,
}

/// Text examples shown per side of a feature card.
const TEXTS_SHOWN: usize = 5;

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
    let folder = RunFolder::new(run);
    let recipe = folder.recipe()?;
    let metrics = folder.metrics()?;
    let out = folder.interpretation()?.with_context(|| {
        format!(
            "{} has no interpret.json: run `fit interpret --run {}` first",
            run.display(),
            run.display()
        )
    })?;
    let top_k = recipe.top_k;

    let mut facts = vec![
        ("dataset".to_string(), metrics.dataset.clone()),
        ("backbone".to_string(), metrics.backbone.clone()),
        (
            "features".to_string(),
            format!("{} ({} per example)", metrics.feature_mode, metrics.feature_dim),
        ),
    ];
    let splits: Vec<String> = ["train", "val", "test"]
        .iter()
        .filter_map(|k| metrics.splits.get(*k).map(|v| format!("{k} {}", v.n)))
        .collect();
    facts.push(("splits".into(), splits.join(", ")));
    for n in &metrics.dataset_notes {
        facts.push(("note".into(), n.clone()));
    }
    facts.push((
        "selected layer".into(),
        format!(
            "λ #{} = {:.4e}: validation accuracy {:.4} (best on the path {:.4}); seed {}",
            metrics.selected_lambda_index,
            metrics.selected_lambda,
            metrics.selected_val_accuracy,
            metrics.best_val_accuracy,
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

    let row = |name: &str, e: &LayerEvaluation| {
        vec![
            name.to_string(),
            format!("{:.4}", e.scores.all),
            format!("{:.1}", e.features_per_class),
            format!("{:.4}", e.scores.top_k),
            format!("{:.4}", e.scores.rest),
            e.features_used.to_string(),
        ]
    };
    let table = Table {
        caption: format!(
            "Accuracy on the {} split with all of a layer's features, with only each class's top {top_k} features by |weight|, and with only the rest (the paper's Figure 4b)",
            metrics.evaluated_on
        ),
        header: ["layer", "accuracy", "features / class", &format!("top-{top_k} only"), "rest only", "features used"]
            .map(String::from)
            .to_vec(),
        // The network's own head first, when the run has one (`fit run`'s `head` row).
        rows: metrics
            .head
            .iter()
            .map(|h| row("head (the network's own)", h))
            .chain([
                row("dense (ridge refit)", &metrics.dense),
                row("sparse", &metrics.sparse),
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
    if let Some(debug) = folder.debugging()? {
        sections.push(debug_section(&debug));
    }
    let report = Report {
        title: format!(
            "Sparse decision layer: {} on {}",
            crate::backbones::short_name(&metrics.backbone),
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

fn pct(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

fn ci(c: (f64, f64)) -> String {
    format!("{:.1}–{:.1}%", 100.0 * c.0, 100.0 * c.1)
}

/// The report's debugging section, when `fit debug` has run on this folder.
fn debug_section(out: &DebugOutput) -> Section {
    let names = &out.class_names;
    let name = |c: usize| names.get(c).cloned().unwrap_or_else(|| c.to_string());
    let mut blocks = Vec::new();

    if let Some(p) = &out.probe {
        blocks.push(Block::Paragraph(format!(
            "Bias probe: each word was {} to the same {} {} inputs{}, seed {}; a flip is a changed prediction, Δp the mean change of the originally predicted class's probability.",
            match p.placement {
                Placement::Append => "appended",
                Placement::Prepend => "prepended",
            },
            p.inputs,
            out.split,
            out.probe_class.as_ref().map(|c| format!(" predicted {c} by the sparse layer")).unwrap_or_default(),
            out.seed
        )));
        let layer_cells = |w: &debug::WordProbe| -> Vec<String> {
            let mut cells = vec![w.word.clone()];
            for l in &w.layers {
                cells.push(format!(
                    "{}/{} = {} ({})",
                    l.flips,
                    l.inputs,
                    pct(l.flip_rate),
                    ci(l.flip_ci)
                ));
                cells.push(format!("{:+.3}", l.mean_prob_shift));
            }
            cells.push(
                w.layers[0]
                    .moved
                    .iter()
                    .take(3)
                    .map(|m| format!("f{} ({:+.3})", m.feature, m.margin_change))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            cells
        };
        let mut rows: Vec<Vec<String>> = p.ranked(0).into_iter().map(layer_cells).collect();
        rows.push(layer_cells(&p.all_words));
        blocks.push(Block::Table(Table {
            caption: "Words ranked by the sparse layer's flip rate (95% Wilson intervals); the sparse features that moved most, with their mean change of the predicted class's margin".into(),
            header: ["word", "sparse flips", "sparse Δp", "dense flips", "dense Δp", "sparse features moved"]
                .map(String::from)
                .to_vec(),
            rows,
        }));
    }

    if let Some(c) = &out.counterfactuals {
        blocks.push(Block::Paragraph(format!(
            "Counterfactuals: {} sentences sampled (seed {}) from the {} that both layers predict {}. In each, the word that most raises one of the layer's top features for {} (by LIME weight × layer weight) is replaced everywhere by that feature's most negative word-cloud word; a flip is a prediction that is no longer {}. LIME cost {} forward passes.",
            c.sampled.len(),
            out.seed,
            c.eligible,
            name(c.from_class),
            name(c.from_class),
            name(c.from_class),
            c.lime_forward_passes
        )));
        blocks.push(Block::Table(Table {
            caption:
                "Flip rate of the counterfactual swaps (over the sampled sentences; 95% Wilson interval)"
                    .into(),
            header: [
                "layer",
                "candidate features",
                "sentences",
                "swaps made",
                "flips",
                "flip rate",
                "95% CI",
                "flips / swaps",
            ]
            .map(String::from)
            .to_vec(),
            rows: c
                .layers
                .iter()
                .map(|l| {
                    vec![
                        l.layer.clone(),
                        l.candidates
                            .iter()
                            .map(|f| format!("f{f}"))
                            .collect::<Vec<_>>()
                            .join(" "),
                        l.attempted.to_string(),
                        l.swapped.to_string(),
                        l.flips.to_string(),
                        pct(l.flip_rate),
                        ci(l.flip_ci),
                        pct(l.flip_rate_of_swaps),
                    ]
                })
                .collect(),
        }));
        for l in &c.layers {
            let examples: Vec<TextExample> = l
                .swaps
                .iter()
                .take(6)
                .map(|s| TextExample {
                    text: s.text.clone(),
                    value: s.prob_after as f32,
                    note: format!(
                        "{} layer: “{}” → “{}” via f{}, p({}) {:.3} → {:.3}{}",
                        l.layer,
                        s.word,
                        s.replacement,
                        s.feature,
                        name(c.from_class),
                        s.prob_before,
                        s.prob_after,
                        if s.flipped { ", flipped" } else { "" }
                    ),
                })
                .collect();
            if !examples.is_empty() {
                blocks.push(Block::Examples(examples));
            }
        }
    } else if let Some(note) = &out.counterfactual_note {
        blocks.push(Block::Paragraph(format!("Counterfactuals: {note}.")));
    }

    if !out.misclassifications.is_empty() {
        blocks.push(Block::Paragraph(format!(
            "Misclassifications: for each error on the {} split, is there one feature whose zeroing (the feature does not fire) makes the prediction right?",
            out.split
        )));
        blocks.push(Block::Table(Table {
            caption: "Errors fixed by zeroing a single feature (95% Wilson interval)".into(),
            header: [
                "layer",
                "examples",
                "errors",
                "fixed by one feature",
                "share",
                "95% CI",
                "features tried",
            ]
            .map(String::from)
            .to_vec(),
            rows: out
                .misclassifications
                .iter()
                .rev()
                .map(|(layer, m)| {
                    vec![
                        layer.clone(),
                        m.examples.to_string(),
                        m.errors.to_string(),
                        m.fixed.to_string(),
                        pct(m.share_fixed),
                        ci(m.share_ci),
                        m.candidates.to_string(),
                    ]
                })
                .collect(),
        }));
        if let Some(m) = out.misclassifications.get("sparse") {
            blocks.push(Block::Table(Table {
                caption: "Confusion pairs of the sparse layer and the features whose zeroing fixes them"
                    .into(),
                header: [
                    "true → predicted",
                    "errors",
                    "fixed",
                    "fixing features (errors fixed)",
                ]
                .map(String::from)
                .to_vec(),
                rows: m
                    .confusions
                    .iter()
                    .take(12)
                    .map(|p| {
                        vec![
                            format!("{} → {}", name(p.truth), name(p.predicted)),
                            p.errors.to_string(),
                            p.fixed.to_string(),
                            p.features
                                .iter()
                                .map(|f| format!("f{} ({})", f.feature, f.fixes))
                                .collect::<Vec<_>>()
                                .join(", "),
                        ]
                    })
                    .collect(),
            }));
        }
        let figures: Vec<Figure> = out
            .error_examples
            .iter()
            .filter_map(|e| {
                e.picture.as_ref().map(|src| Figure {
                    src: src.clone(),
                    alt: format!(
                        "Test image {} ({}, predicted {}) beside the top images of feature {}, whose zeroing fixes it",
                        e.index, e.label, e.predicted, e.feature
                    ),
                    caption: format!(
                        "#{}: {} predicted {}; zeroing feature {} fixes it (right: that feature's top images)",
                        e.index, e.label, e.predicted, e.feature
                    ),
                })
            })
            .collect();
        if !figures.is_empty() {
            blocks.push(Block::Figures(figures));
        }
        let texts: Vec<String> = out
            .error_examples
            .iter()
            .filter_map(|e| {
                e.text.as_ref().map(|t| {
                    format!(
                        "“{t}” ({} predicted {}): zeroing feature {} fixes it; that feature's top sentences: {}",
                        e.label,
                        e.predicted,
                        e.feature,
                        e.feature_texts.iter().take(3).map(|s| format!("“{s}”")).collect::<Vec<_>>().join(" · ")
                    )
                })
            })
            .collect();
        if !texts.is_empty() {
            blocks.push(Block::List(texts));
        }
    }
    Section {
        id: "debug".into(),
        title: "Debugging with the sparse layer".into(),
        blocks,
    }
}
