//! `fit debug --run DIR`: debug the network through a finished run's sparse layer (the paper's
//! §4 uses, each compared with the dense layer): a bias probe (append words, count flipped
//! predictions), counterfactual word swaps guided by the features' LIME word clouds (text
//! runs), and the errors that zeroing one feature fixes. Writes `debug.json` and the pictures,
//! then rebuilds `report.html` with a debugging section.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use datasets::{Examples, Labels};
use debug::{
    bias_probe, counterfactuals, single_feature_fixes, Candidates, CounterfactualConfig,
    CounterfactualResult, MisclassResult, Placement, ProbeResult,
};
use interpret::lime::LimeConfig;
use interpret::report::{Block, Figure, Section, Table, TextExample};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use solver::BackendKind;

use crate::interpret_cmd::{progress_bar, InterpretOutput, LoadedRun};

#[derive(Args, Debug, Clone)]
pub struct DebugArgs {
    /// A finished run folder on which `fit interpret` has run (the counterfactuals use its word
    /// clouds).
    #[arg(long)]
    pub run: PathBuf,
    /// Bias-probe words: a comma-separated list or a file with one word per line (default: the
    /// identity terms of crates/debug/words/identity.txt).
    #[arg(long)]
    pub probe_words: Option<String>,
    /// Where the probe puts the word: append or prepend.
    #[arg(long, default_value = "append")]
    pub placement: String,
    /// Probe only inputs the sparse layer predicts as this class (name or index).
    #[arg(long)]
    pub probe_class: Option<String>,
    /// Inputs probed per word (a seeded sample of the test split).
    #[arg(long, default_value_t = 300)]
    pub probe_inputs: usize,
    /// Sentences of the counterfactual experiment (a seeded sample of those both layers predict
    /// as --from-class); 0 skips it.
    #[arg(long, default_value_t = 250)]
    pub counterfactuals: usize,
    /// The class the counterfactual sentences are predicted as (default: `positive` when the
    /// dataset has it, else class 1 of a binary task).
    #[arg(long)]
    pub from_class: Option<String>,
    /// Candidate features per layer in the counterfactuals (its top ones for --from-class).
    #[arg(long, default_value_t = 5)]
    pub features_per_class: usize,
    /// LIME samples per counterfactual sentence (default: those of `fit interpret`).
    #[arg(long)]
    pub lime_samples: Option<usize>,
    /// Perturbed sentences per forward pass in the counterfactuals' LIME (default as in `fit
    /// interpret`).
    #[arg(long)]
    pub lime_batch: Option<usize>,
    /// Fixed errors shown in the report with the fixing feature's prototypes.
    #[arg(long, default_value_t = 6)]
    pub error_examples: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value = "flex")]
    pub backend: BackendKind,
    #[arg(long, short)]
    pub quiet: bool,
}

/// One fixed error as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorExample {
    pub index: usize,
    pub label: String,
    pub predicted: String,
    pub feature: usize,
    pub text: Option<String>,
    /// Top sentences of the feature (text runs).
    pub feature_texts: Vec<String>,
    /// The error beside the feature's prototypes (image runs), relative to the run folder.
    pub picture: Option<String>,
}

/// `debug.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DebugOutput {
    pub split: String,
    pub class_names: Vec<String>,
    pub seed: u64,
    pub probe: Option<ProbeResult>,
    pub probe_class: Option<String>,
    pub counterfactuals: Option<CounterfactualResult>,
    pub counterfactual_note: Option<String>,
    /// Layer name → single-feature fixes of its errors.
    pub misclassifications: BTreeMap<String, MisclassResult>,
    /// The rows the misclassification indices refer to, when unreadable examples were dropped.
    pub row_indices: Option<Vec<usize>>,
    pub error_examples: Vec<ErrorExample>,
}

pub fn output_path(run: &Path) -> PathBuf {
    run.join("debug.json")
}

fn class_index(names: &[String], spec: &str) -> Result<usize> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(spec)) {
        return Ok(i);
    }
    match spec.parse::<usize>() {
        Ok(i) if i < names.len() => Ok(i),
        _ => bail!("unknown class `{spec}` (classes: {})", names.join(", ")),
    }
}

fn probe_words(spec: Option<&str>) -> Result<Vec<String>> {
    let words = match spec {
        None => debug::parse_word_list(debug::IDENTITY_WORDS),
        Some(s) if Path::new(s).is_file() => debug::parse_word_list(
            &std::fs::read_to_string(s).with_context(|| format!("cannot read the word list {s}"))?,
        ),
        Some(s) => s
            .split(',')
            .map(|w| w.trim().to_string())
            .filter(|w| !w.is_empty())
            .collect(),
    };
    if words.is_empty() {
        bail!("the bias probe needs at least one word");
    }
    Ok(words)
}

fn seeded_sample(mut v: Vec<usize>, n: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    v.shuffle(&mut rng);
    v.truncate(n);
    v.sort_unstable();
    v
}

pub fn run(args: DebugArgs) -> Result<()> {
    let verbose = !args.quiet;
    let run_dir = args.run.clone();
    let loaded = LoadedRun::open(&run_dir)?;
    let interpretation = InterpretOutput::load(&run_dir)
        .with_context(|| format!("run `fit interpret --run {}` first", run_dir.display()))?;
    let set = loaded.split_set();
    let acts = loaded.activations()?;
    let d = loaded.sparse.d;
    let names = loaded.recipe.class_names.clone();
    let layers = [("sparse", &loaded.sparse), ("dense", &loaded.dense)];
    let Labels::Class(labels) = &set.labels else {
        bail!("`fit debug` needs single-label classes; this run is multilabel");
    };
    let labels: Vec<usize> = labels.iter().map(|&c| c as usize).collect();
    let readable: Vec<usize> = (0..set.len())
        .filter(|&i| !acts[i * d..(i + 1) * d].iter().any(|v| v.is_nan()))
        .collect();
    let mut output = DebugOutput {
        split: loaded.split.to_string(),
        class_names: names.clone(),
        seed: args.seed,
        probe: None,
        probe_class: None,
        counterfactuals: None,
        counterfactual_note: None,
        misclassifications: BTreeMap::new(),
        row_indices: (readable.len() < set.len()).then(|| readable.clone()),
        error_examples: Vec::new(),
    };

    // 1. Errors fixed by zeroing one feature, for both layers.
    let rows: Vec<f32> = readable
        .iter()
        .flat_map(|&i| acts[i * d..(i + 1) * d].iter().copied())
        .collect();
    let row_labels: Vec<usize> = readable.iter().map(|&i| labels[i]).collect();
    for (name, layer) in layers {
        let result = single_feature_fixes(&rows, d, &row_labels, layer, Candidates::Used);
        if verbose {
            eprintln!(
                "misclassifications ({name}): {} errors of {}, {} fixed by zeroing one feature ({:.1}%)",
                result.errors,
                result.examples,
                result.fixed,
                100.0 * result.share_fixed
            );
        }
        output.misclassifications.insert(name.to_string(), result);
    }

    let device = args.backend.device()?;
    let mut backbone = loaded.recipe.load_backbone(&set.examples, &device)?;
    backbone.set_batch(crate::backbones::lime_batch(
        args.lime_batch,
        args.backend,
        matches!(set.examples, Examples::Text(_)),
        loaded.recipe.extract_batch_size,
    ));
    std::fs::create_dir_all(run_dir.join("report"))?;
    // Fixed errors of the sparse layer, with the fixing feature's prototypes.
    let sparse_fixes = &output.misclassifications["sparse"];
    let mut shown = Vec::new();
    for e in sparse_fixes.per_error.iter().filter(|e| e.feature.is_some()) {
        if shown.len() >= args.error_examples {
            break;
        }
        let feature = e.feature.expect("filtered");
        let index = readable[e.index];
        let (top, _) = interpret::reading::prototypes(&acts, d, feature, 5);
        let mut example = ErrorExample {
            index,
            label: names[e.label].clone(),
            predicted: names[e.predicted].clone(),
            feature,
            text: None,
            feature_texts: Vec::new(),
            picture: None,
        };
        match &set.examples {
            Examples::Text(texts) => {
                example.text = Some(texts[index].clone());
                example.feature_texts = top.iter().map(|p| texts[p.index].clone()).collect();
            }
            examples => {
                let mut views = vec![backbone.view(examples, index)?];
                let mut captions = vec![format!("error: {} → {}", example.label, example.predicted)];
                for p in &top {
                    views.push(backbone.view(examples, p.index)?);
                    captions.push(format!(
                        "f{feature} {:.2} · {}",
                        p.activation,
                        loaded.label_name(p.index)
                    ));
                }
                let grid = interpret::images::grid(&views, &captions, 128, views.len());
                let rel = format!("report/error_{index}.png");
                interpret::images::save_png(&grid, &run_dir.join(&rel))?;
                example.picture = Some(rel);
            }
        }
        shown.push(example);
    }
    output.error_examples = shown;

    // 2. Text runs: the bias probe and the counterfactuals.
    if let Examples::Text(texts) = &set.examples {
        let forward = |batch: &[String]| backbone.text_features(batch);
        let words = probe_words(args.probe_words.as_deref())?;
        let placement = match args.placement.as_str() {
            "append" => Placement::Append,
            "prepend" => Placement::Prepend,
            other => bail!("--placement must be append or prepend, got `{other}`"),
        };
        let sparse_pred = debug::predict(&loaded.sparse, &acts, d);
        let pool: Vec<usize> = match &args.probe_class {
            Some(c) => {
                let c = class_index(&names, c)?;
                output.probe_class = Some(names[c].clone());
                readable
                    .iter()
                    .copied()
                    .filter(|&i| sparse_pred[i] == c)
                    .collect()
            }
            None => readable.clone(),
        };
        let inputs = seeded_sample(pool, args.probe_inputs, args.seed);
        if verbose {
            eprintln!("bias probe: {} words × {} inputs", words.len(), inputs.len());
        }
        let bar = progress_bar(words.len(), "bias probe", verbose);
        let probe = bias_probe(
            texts,
            &inputs,
            &acts,
            &words,
            placement,
            &layers,
            |batch: &[String]| {
                bar.inc(1);
                forward(batch)
            },
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        bar.finish_and_clear();
        output.probe = Some(probe);

        let from_class = match &args.from_class {
            Some(c) => Some(class_index(&names, c)?),
            None => names
                .iter()
                .position(|n| n.eq_ignore_ascii_case("positive"))
                .or((names.len() == 2).then_some(1)),
        };
        match from_class {
            Some(from) if args.counterfactuals > 0 => {
                let clouds: HashMap<usize, Vec<String>> = interpretation
                    .readings
                    .iter()
                    .filter(|r| !r.negative_words.is_empty())
                    .map(|r| {
                        (
                            r.feature,
                            r.negative_words.iter().map(|w| w.word.clone()).collect(),
                        )
                    })
                    .collect();
                let config = CounterfactualConfig {
                    from_class: from,
                    features_per_class: args.features_per_class,
                    sentences: args.counterfactuals,
                    seed: args.seed,
                    lime: LimeConfig {
                        samples: args.lime_samples.unwrap_or(interpretation.lime_samples),
                        kernel_width: interpretation.kernel_width,
                        seed: args.seed,
                        ..LimeConfig::default()
                    },
                };
                if verbose {
                    eprintln!(
                        "counterfactuals: up to {} sentences predicted {} by both layers, LIME {} samples each",
                        config.sentences, names[from], config.lime.samples
                    );
                }
                let bar = progress_bar(config.sentences, "counterfactuals", verbose);
                let result = counterfactuals(
                    texts,
                    &acts,
                    d,
                    &layers,
                    &clouds,
                    &config,
                    |batch: &[String]| {
                        if batch.len() == config.lime.samples {
                            bar.inc(1);
                        }
                        forward(batch)
                    },
                )
                .map_err(|e| anyhow::anyhow!("{e}"))?;
                bar.finish_and_clear();
                if verbose {
                    for l in &result.layers {
                        eprintln!(
                            "counterfactuals ({}): {} of {} sentences flipped ({:.1}%, 95% CI {:.1}–{:.1}%)",
                            l.layer,
                            l.flips,
                            l.attempted,
                            100.0 * l.flip_rate,
                            100.0 * l.flip_ci.0,
                            100.0 * l.flip_ci.1
                        );
                    }
                }
                output.counterfactuals = Some(result);
            }
            Some(_) => output.counterfactual_note = Some("skipped (--counterfactuals 0)".into()),
            None => {
                output.counterfactual_note =
                    Some("skipped: name the class the sentences are predicted as with --from-class".into())
            }
        }
    }
    drop(backbone);

    solver::io::write_atomic(&output_path(&run_dir), &serde_json::to_vec_pretty(&output)?)?;
    let report = crate::report_cmd::write_report(&run_dir)?;
    println!(
        "wrote {} and {}",
        output_path(&run_dir).display(),
        report.display()
    );
    Ok(())
}

fn pct(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

fn ci(c: (f64, f64)) -> String {
    format!("{:.1}–{:.1}%", 100.0 * c.0, 100.0 * c.1)
}

/// The report's debugging section, when `fit debug` has run on this folder.
pub fn report_section(run: &Path) -> Result<Option<Section>> {
    let path = output_path(run);
    if !path.is_file() {
        return Ok(None);
    }
    let out: DebugOutput = serde_json::from_slice(&std::fs::read(&path)?)
        .with_context(|| format!("{} is not debug output", path.display()))?;
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
    Ok(Some(Section {
        id: "debug".into(),
        title: "Debugging with the sparse layer".into(),
        blocks,
    }))
}
