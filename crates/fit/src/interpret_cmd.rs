//! `fit interpret --run DIR`: read the deep features a finished run's decision layers use.
//! For every class, the features the sparse layer uses (largest |weight| first) and the dense
//! layer's top features; for each such feature its top- and bottom-activating test examples,
//! LIME on those examples (word clouds for text, superpixel overlays for images), and the
//! coefficient path of each class's features. Writes `interpret.json`, the pictures under
//! `report/`, and `report.html`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use datasets::Examples;
use interpret::lime::{LimeConfig, LimeError};
use interpret::reading::{self, ReadConfig};
use solver::{BackendKind, Layer};

use crate::progress::Progress;
use crate::run_folder::{
    class_features, ClassFeatures, ExampleInfo, FeaturePictures, InterpretOutput, LoadedRun, RunFolder,
    VisualizedFeature,
};

#[derive(Args, Debug, Clone)]
pub struct InterpretArgs {
    /// A finished `fit` output folder (it holds run.json, metrics.json and the layers).
    #[arg(long)]
    pub run: PathBuf,
    /// Sparse-layer features shown per class, largest |weight| first (the rest are listed in
    /// interpret.json); 0 shows them all.
    #[arg(long, default_value_t = 10)]
    pub max_features: usize,
    /// Dense-layer features shown per class (its top ones by |weight|). Each class's this many
    /// largest positive weights of both layers are read too (the counterfactuals' candidates).
    #[arg(long, default_value_t = 5)]
    pub dense_top: usize,
    /// Top- and bottom-activating test examples kept per feature.
    #[arg(long, default_value_t = 8)]
    pub prototypes: usize,
    /// Examples explained by LIME per feature and side (default 3 for text, 2 for images).
    #[arg(long)]
    pub lime_inputs: Option<usize>,
    /// Perturbed inputs per LIME explanation, each one forward pass (default 128 for text, 64
    /// for images; lime itself defaults to 5,000 and 1,000).
    #[arg(long)]
    pub lime_samples: Option<usize>,
    /// Perturbed inputs per forward pass in LIME (default: 16 sentences or 1 image on the CPU
    /// backends, where that measured fastest; the run's batch size on the others).
    #[arg(long)]
    pub lime_batch: Option<usize>,
    /// LIME kernel width on cosine distances (lime's default).
    #[arg(long, default_value_t = 0.25)]
    pub kernel_width: f64,
    /// Superpixels per image (SLIC).
    #[arg(long, default_value_t = interpret::superpixels::DEFAULT_N_SEGMENTS)]
    pub segments: usize,
    /// Words per word cloud.
    #[arg(long, default_value_t = 30)]
    pub cloud_words: usize,
    /// Image runs: visualize this many of each class's top sparse features by gradient ascent
    /// on the input (0: none).
    #[arg(long, default_value_t = 1)]
    pub feature_vis: usize,
    /// Gradient steps per feature visualization.
    #[arg(long, default_value_t = 64)]
    pub feature_vis_steps: usize,
    /// Side of the visualized images.
    #[arg(long, default_value_t = 128)]
    pub feature_vis_size: usize,
    /// Seed of LIME's perturbations and of the visualizations' start and jitter.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Compute backend for the backbone's forward passes.
    #[arg(long, default_value = "flex")]
    pub backend: BackendKind,
    #[arg(long, short)]
    pub quiet: bool,
}

fn forward_error(e: anyhow::Error) -> LimeError {
    LimeError::Forward(format!("{e:#}"))
}

fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

impl InterpretArgs {
    /// Every option checked before the first long stage.
    fn validate(&self) -> Result<()> {
        if !(self.kernel_width.is_finite() && self.kernel_width > 0.0) {
            bail!(
                "--kernel-width must be a positive number, got {}",
                self.kernel_width
            );
        }
        for (name, value) in [
            ("--segments", Some(self.segments)),
            ("--prototypes", Some(self.prototypes)),
            ("--cloud-words", Some(self.cloud_words)),
            ("--lime-samples", self.lime_samples),
            ("--lime-inputs", self.lime_inputs),
            ("--lime-batch", self.lime_batch),
            ("--feature-vis-steps", Some(self.feature_vis_steps)),
        ] {
            if value == Some(0) {
                bail!("{name} must be at least 1");
            }
        }
        if self.feature_vis_size < 16 {
            bail!(
                "--feature-vis-size must be at least 16, got {}",
                self.feature_vis_size
            );
        }
        Ok(())
    }
}

pub fn run(args: InterpretArgs) -> Result<()> {
    args.validate()?;
    let verbose = !args.quiet;
    let run_dir = args.run.clone();
    let loaded = LoadedRun::open(&run_dir)?;
    let _lock = solver::io::lock_output(&run_dir)?;
    let device = args.backend.device()?;
    let set = loaded.split_set();
    let acts = loaded.activations()?;
    let d = loaded.sparse.d;
    if acts.len() != set.len() * d {
        bail!(
            "the cached {} features have {} values, expected {} × {d}",
            loaded.split,
            acts.len(),
            set.len()
        );
    }
    let is_text = matches!(set.examples, Examples::Text(_));
    let names = &loaded.recipe.class_names;

    // 1. The features each class section shows.
    let mut classes: Vec<ClassFeatures> = (0..loaded.sparse.k)
        .map(|c| {
            let sparse = class_features(&loaded.sparse, c);
            let mut dense = class_features(&loaded.dense, c);
            dense.truncate(args.dense_top);
            ClassFeatures {
                name: names.get(c).cloned().unwrap_or_else(|| format!("class {c}")),
                sparse_shown: match args.max_features {
                    0 => sparse.len(),
                    m => sparse.len().min(m),
                },
                sparse,
                sparse_bias: loaded.sparse.bias[c],
                dense,
                coefficient_plot: None,
            }
        })
        .collect();
    let mut shown: BTreeSet<usize> = classes
        .iter()
        .flat_map(|c| {
            c.sparse[..c.sparse_shown]
                .iter()
                .chain(&c.dense)
                .map(|f| f.feature)
        })
        .collect();
    // Text runs: also each class's `dense_top` largest positive weights of both layers, the
    // features whose word clouds the counterfactuals of `fit debug` swap words from.
    for layer in [&loaded.sparse, &loaded.dense].into_iter().filter(|_| is_text) {
        for c in 0..layer.k {
            shown.extend(
                class_features(layer, c)
                    .into_iter()
                    .filter(|f| f.weight > 0.0)
                    .take(args.dense_top)
                    .map(|f| f.feature),
            );
        }
    }
    let shown: Vec<usize> = shown.into_iter().collect();

    // 2. Prototypes and LIME through the run's backbone.
    let lime_inputs = args.lime_inputs.unwrap_or(if is_text { 3 } else { 2 });
    let samples = args.lime_samples.unwrap_or(if is_text { 128 } else { 64 });
    let config = ReadConfig {
        prototypes: args.prototypes,
        lime_inputs,
        lime: LimeConfig {
            samples,
            kernel_width: args.kernel_width,
            seed: args.seed,
            ..LimeConfig::default()
        },
        cloud_words: args.cloud_words,
        segments: args.segments,
        ..ReadConfig::default()
    };
    if verbose {
        eprintln!(
            "interpret {}: {} features to read ({} classes) on the {} split ({} examples); LIME {samples} samples × up to {lime_inputs} inputs per feature{}",
            run_dir.display(),
            shown.len(),
            classes.len(),
            loaded.split,
            set.len(),
            if is_text { " and side" } else { "" }
        );
    }
    let mut backbone = loaded.recipe.load_backbone(&set.examples, &device)?;
    backbone.set_batch(crate::backbones::lime_batch(
        args.lime_batch,
        args.backend,
        is_text,
        loaded.recipe.extract_batch_size,
    ));
    let mut bar = Progress::new(0, "LIME inputs", verbose);
    let mut progress = |done: usize, total: usize| bar.set_of(done, total);
    let pictures_dir = run_dir.join("report");
    std::fs::create_dir_all(&pictures_dir)
        .with_context(|| format!("cannot create {}", pictures_dir.display()))?;
    let mut pictures: BTreeMap<usize, FeaturePictures> = BTreeMap::new();
    let (readings, stats) = if is_text {
        let Examples::Text(texts) = &set.examples else {
            unreachable!()
        };
        let (readings, stats) = reading::read_text_features(
            texts,
            &acts,
            d,
            &shown,
            &config,
            |batch| backbone.text_features(batch).map_err(forward_error),
            &mut progress,
        )?;
        bar.finish_bar();
        for r in &readings {
            let cloud = |words: &[reading::WordWeight]| -> Vec<interpret::wordcloud::CloudWord> {
                words
                    .iter()
                    .map(|w| interpret::wordcloud::CloudWord {
                        text: w.word.clone(),
                        weight: w.weight.abs(),
                    })
                    .collect()
            };
            let image = interpret::wordcloud::word_cloud_pair(
                &cloud(&r.positive_words),
                &cloud(&r.negative_words),
                "raise the feature",
                "lower the feature",
                960,
                320,
                args.seed ^ r.feature as u64,
            );
            let rel = format!("report/cloud_f{}.png", r.feature);
            interpret::images::save_png(&image, &run_dir.join(&rel))?;
            pictures.entry(r.feature).or_default().word_cloud = Some(rel);
        }
        (readings, stats)
    } else {
        let view = |i: usize| backbone.view(&set.examples, i).map_err(forward_error);
        let reading::ImageReadings {
            readings,
            segments,
            stats,
        } = reading::read_image_features(
            &acts,
            d,
            &shown,
            &config,
            view,
            |batch| backbone.view_features(batch).map_err(forward_error),
            &mut progress,
        )?;
        bar.finish_bar();
        for r in &readings {
            let views = r
                .top
                .iter()
                .map(|p| backbone.view(&set.examples, p.index))
                .collect::<Result<Vec<_>>>()?;
            let captions: Vec<String> = r
                .top
                .iter()
                .map(|p| format!("{:.2} · {}", p.activation, loaded.label_name(p.index)))
                .collect();
            let grid = interpret::images::grid(&views, &captions, 112, 8);
            let rel = format!("report/prototypes_f{}.png", r.feature);
            interpret::images::save_png(&grid, &run_dir.join(&rel))?;
            let entry = pictures.entry(r.feature).or_default();
            entry.prototypes = Some(rel);
            if !r.image_lime.is_empty() {
                let mut overlays = Vec::new();
                let mut captions = Vec::new();
                for l in &r.image_lime {
                    let image = backbone.view(&set.examples, l.index)?;
                    overlays.push(image.clone());
                    captions.push(format!("#{} {}", l.index, loaded.label_name(l.index)));
                    overlays.push(interpret::images::lime_overlay(
                        &image,
                        &segments[&l.index],
                        &l.segment_weights,
                        5,
                    ));
                    captions.push(format!("LIME, R² {:.2}", l.r2));
                }
                let grid = interpret::images::grid(&overlays, &captions, 160, overlays.len());
                let rel = format!("report/lime_f{}.png", r.feature);
                interpret::images::save_png(&grid, &run_dir.join(&rel))?;
                entry.lime = Some(rel);
            }
        }
        (readings, stats)
    };
    // Feature visualization of each class's top sparse features (image backbones).
    let mut visualized = Vec::new();
    let started = std::time::Instant::now();
    let vis_features: Vec<usize> = if is_text || args.feature_vis == 0 || !backbone.is_cnn() {
        Vec::new()
    } else {
        let set: BTreeSet<usize> = classes
            .iter()
            .flat_map(|c| {
                c.sparse
                    .iter()
                    .take(args.feature_vis.min(c.sparse_shown))
                    .map(|f| f.feature)
            })
            .collect();
        set.into_iter().collect()
    };
    if vis_features.is_empty() {
        drop(backbone);
    } else {
        let config = interpret::featvis::FeatVisConfig {
            size: args.feature_vis_size,
            steps: args.feature_vis_steps,
            seed: args.seed,
            ..interpret::featvis::FeatVisConfig::default()
        };
        if verbose {
            eprintln!(
                "feature visualization: {} features, {} steps at {}x{}",
                vis_features.len(),
                config.steps,
                config.size,
                config.size
            );
        }
        for v in backbone.visualize(&vis_features, &config, 8)? {
            let rel = format!("report/featvis_f{}.png", v.feature);
            interpret::images::save_png(&v.image, &run_dir.join(&rel))?;
            pictures.entry(v.feature).or_default().feature_vis = Some(rel);
            visualized.push(VisualizedFeature {
                feature: v.feature,
                activation: v.activation,
                gray_activation: v.baseline,
            });
        }
    }
    let feature_vis_seconds = started.elapsed().as_secs_f64();
    if verbose {
        eprintln!(
            "LIME: {} inputs, {} forward passes in {:.1}s ({:.2} inputs/s, {:.1} passes/s)",
            stats.inputs,
            stats.forward_passes,
            stats.seconds,
            stats.inputs_per_second(),
            stats.passes_per_second()
        );
    }

    // 3. Coefficient paths of each class's shown sparse features.
    let path_json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(run_dir.join("path.json")).context("cannot read the run's path.json")?,
    )?;
    let lambdas: Vec<f64> = path_json["lambdas"]
        .as_array()
        .context("path.json has no lambdas")?
        .iter()
        .filter_map(|v| v.as_f64())
        .collect();
    let selected_lambda = path_json["selection"]["selected_lambda"].as_f64().or_else(|| {
        path_json["selection"]["selected_index"]
            .as_u64()
            .and_then(|i| lambdas.get(i as usize).copied())
    });
    let layers: Vec<Layer> = (0..lambdas.len())
        .map(|i| solver::path::layer_file(&run_dir, i))
        .take_while(|p| p.is_file())
        .map(|p| Layer::load(&p))
        .collect::<solver::Result<_>>()?;
    if !layers.is_empty() {
        for (c, class) in classes.iter_mut().enumerate() {
            let series: Vec<(String, Vec<f64>)> = class.sparse[..class.sparse_shown]
                .iter()
                .map(|f| {
                    (
                        format!("feature {}", f.feature),
                        layers
                            .iter()
                            .map(|l| l.weight[c * l.d + f.feature] as f64)
                            .collect(),
                    )
                })
                .collect();
            if series.is_empty() {
                continue;
            }
            let rel = format!("report/coefficients_{c}_{}.png", file_stem(&class.name));
            interpret::plots::coefficient_paths(
                &run_dir.join(&rel),
                &format!("class {}: weights along the path", class.name),
                &lambdas[..layers.len()],
                &series,
                selected_lambda,
            )?;
            class.coefficient_plot = Some(rel);
        }
    }

    // 4. interpret.json and the report.
    let mut examples = BTreeMap::new();
    for r in &readings {
        for p in r.top.iter().chain(&r.bottom) {
            examples.entry(p.index).or_insert_with(|| ExampleInfo {
                text: match &set.examples {
                    Examples::Text(t) => Some(t[p.index].clone()),
                    _ => None,
                },
                label: loaded.label_name(p.index),
                file: match &set.examples {
                    Examples::Images(paths) => paths.get(p.index).map(|f| f.display().to_string()),
                    _ => None,
                },
            });
        }
    }
    let output = InterpretOutput {
        split: loaded.split.to_string(),
        n_examples: set.len(),
        is_text,
        classes,
        readings,
        examples,
        pictures,
        lime: stats,
        visualized,
        feature_vis_seconds,
        lime_samples: samples,
        lime_inputs,
        kernel_width: args.kernel_width,
        segments: args.segments,
        seed: args.seed,
    };
    solver::io::write_atomic(
        &RunFolder::new(&run_dir).interpretation_path(),
        &serde_json::to_vec_pretty(&output)?,
    )?;
    let report = crate::report_cmd::write_report(&run_dir)?;
    println!(
        "wrote {} and {}",
        RunFolder::new(&run_dir).interpretation_path().display(),
        report.display()
    );
    Ok(())
}
