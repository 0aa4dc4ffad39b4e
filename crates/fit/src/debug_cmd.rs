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
use debug::{bias_probe, counterfactuals, single_feature_fixes, Candidates, CounterfactualConfig, Placement};
use interpret::lime::LimeConfig;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use solver::BackendKind;

use crate::progress::Progress;
use crate::run_folder::{DebugOutput, ErrorExample, LoadedRun, RunFolder};

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
        // A path that is not there is a mistake, not a word.
        Some(s) if s.contains(['/', '\\']) || s.ends_with(".txt") => {
            bail!("the word list {s} does not exist (give a file of words, one per line, or a comma-separated list)")
        }
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
    let _lock = solver::io::lock_output(&run_dir)?;
    // Every option checked before the first long stage.
    let words = probe_words(args.probe_words.as_deref())?;
    let placement = match args.placement.as_str() {
        "append" => Placement::Append,
        "prepend" => Placement::Prepend,
        other => bail!("--placement must be append or prepend, got `{other}`"),
    };
    let class_of = |spec: &Option<String>| {
        spec.as_deref()
            .map(|c| class_index(&loaded.recipe.class_names, c))
            .transpose()
    };
    let (probe_class, from_class) = (class_of(&args.probe_class)?, class_of(&args.from_class)?);
    if args.lime_samples == Some(0) || args.lime_batch == Some(0) {
        bail!("--lime-samples and --lime-batch must be at least 1");
    }
    let folder = RunFolder::new(&run_dir);
    let interpretation = folder.interpretation()?.with_context(|| {
        format!(
            "{} has no interpret.json: run `fit interpret --run {}` first",
            run_dir.display(),
            run_dir.display()
        )
    })?;
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
        let sparse_pred = debug::predict(&loaded.sparse, &acts, d);
        let pool: Vec<usize> = match probe_class {
            Some(c) => {
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
        let bar = std::cell::RefCell::new(Progress::new(words.len(), "bias probe words", verbose));
        let probe = bias_probe(
            texts,
            &inputs,
            &acts,
            &words,
            placement,
            &layers,
            |batch: &[String]| {
                bar.borrow_mut().inc();
                forward(batch)
            },
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        bar.into_inner().finish();
        output.probe = Some(probe);

        let from_class = from_class.or_else(|| {
            names
                .iter()
                .position(|n| n.eq_ignore_ascii_case("positive"))
                .or((names.len() == 2).then_some(1))
        });
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
                let bar = std::cell::RefCell::new(Progress::new(
                    config.sentences,
                    "counterfactual sentences",
                    verbose,
                ));
                let result = counterfactuals(
                    texts,
                    &acts,
                    d,
                    &layers,
                    &clouds,
                    &config,
                    |batch: &[String]| {
                        if batch.len() == config.lime.samples {
                            bar.borrow_mut().inc();
                        }
                        forward(batch)
                    },
                )
                .map_err(|e| anyhow::anyhow!("{e}"))?;
                bar.into_inner().finish();
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

    solver::io::write_atomic(&folder.debugging_path(), &serde_json::to_vec_pretty(&output)?)?;
    let report = crate::report_cmd::write_report(&run_dir)?;
    println!(
        "wrote {} and {}",
        folder.debugging_path().display(),
        report.display()
    );
    Ok(())
}
