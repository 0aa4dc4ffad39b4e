//! A run folder as typed values: what `fit` wrote (run.json, metrics.json, the layers,
//! interpret.json, debug.json) read back through one struct per file, with the file's name in
//! every error. `fit`'s later stages (interpret, debug, report, predict, export) open runs
//! through here.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use debug::{CounterfactualResult, MisclassResult, ProbeResult};
use features::FeatureCache;
use interpret::reading::{FeatureReading, LimeStats};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use solver::evaluate::LayerEvaluation;
use solver::{Family, Layer};

use crate::recipe::RunRecipe;

/// A run's output folder and the names of its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFolder {
    pub dir: PathBuf,
}

/// The decision layers a run writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LayerKind {
    /// The selected sparse layer (`selected.safetensors`).
    Selected,
    /// The ridge layer refit on all features (`dense.safetensors`).
    Dense,
    /// The network's own last layer on the same features (`head.safetensors`), when it has one.
    Head,
}

impl LayerKind {
    pub fn name(self) -> &'static str {
        match self {
            LayerKind::Selected => "selected",
            LayerKind::Dense => "dense",
            LayerKind::Head => "head",
        }
    }

    /// The layer's file name in a run folder.
    pub fn file_name(self) -> String {
        format!("{}.safetensors", self.name())
    }
}

/// Read a JSON file into `T`, naming the file in the error.
pub fn read_json<T: DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not {what}", path.display()))
}

impl RunFolder {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        RunFolder { dir: dir.into() }
    }

    /// A finished run: its recipe reads and its metrics.json exists.
    pub fn open_finished(dir: impl Into<PathBuf>) -> Result<(Self, RunRecipe)> {
        let run = RunFolder::new(dir);
        let recipe = run.recipe()?;
        if !run.metrics_path().is_file() {
            bail!(
                "{} has no metrics.json: the run did not finish; rerun its `fit` command to complete it",
                run.dir.display()
            );
        }
        Ok((run, recipe))
    }

    pub fn recipe(&self) -> Result<RunRecipe> {
        RunRecipe::load(&self.dir)
    }

    pub fn metrics_path(&self) -> PathBuf {
        self.dir.join("metrics.json")
    }

    pub fn metrics(&self) -> Result<Metrics> {
        read_json(&self.metrics_path(), "a run's metrics (metrics.json)")
    }

    pub fn layer_path(&self, kind: LayerKind) -> PathBuf {
        self.dir.join(kind.file_name())
    }

    /// The layer of `kind`; an error saying why when the run has none.
    pub fn layer(&self, kind: LayerKind) -> Result<Layer> {
        let path = self.layer_path(kind);
        if !path.is_file() {
            bail!(
                "{} has no {}: {}",
                self.dir.display(),
                kind.file_name(),
                match kind {
                    LayerKind::Head => "the run's network has no head that reads its features",
                    _ => "the run did not finish; rerun its `fit` command to complete it",
                }
            );
        }
        Ok(Layer::load(&path)?)
    }

    /// The network's own head, when the run wrote one.
    pub fn head(&self) -> Result<Option<Layer>> {
        let path = self.layer_path(LayerKind::Head);
        path.is_file().then(|| self.layer(LayerKind::Head)).transpose()
    }

    pub fn interpretation_path(&self) -> PathBuf {
        self.dir.join("interpret.json")
    }

    /// `fit interpret`'s output, when it has run.
    pub fn interpretation(&self) -> Result<Option<InterpretOutput>> {
        let path = self.interpretation_path();
        path.is_file()
            .then(|| read_json(&path, "`fit interpret` output"))
            .transpose()
    }

    pub fn debugging_path(&self) -> PathBuf {
        self.dir.join("debug.json")
    }

    /// `fit debug`'s output, when it has run.
    pub fn debugging(&self) -> Result<Option<DebugOutput>> {
        let path = self.debugging_path();
        path.is_file()
            .then(|| read_json(&path, "`fit debug` output"))
            .transpose()
    }

    pub fn report_path(&self) -> PathBuf {
        self.dir.join("report.html")
    }

    /// The loss the path minimised (path.json's `family`): softmax or per-class sigmoid
    /// probabilities.
    pub fn family(&self) -> Result<Family> {
        #[derive(Deserialize)]
        struct PathFamily {
            family: Family,
        }
        let family: PathFamily = read_json(&self.dir.join("path.json"), "a path report (path.json)")?;
        Ok(family.family)
    }
}

/// One split's numbers in metrics.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitInfo {
    pub n: usize,
    pub class_counts: Vec<usize>,
    pub skipped_unreadable: usize,
}

/// `metrics.json`: the dense-vs-sparse table of a finished run and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub dataset: String,
    pub dataset_notes: Vec<String>,
    pub class_names: Vec<String>,
    pub splits: HashMap<String, SplitInfo>,
    pub backbone: String,
    pub feature_mode: String,
    pub feature_dim: usize,
    /// Split the Figure 4b table is measured on.
    pub evaluated_on: String,
    /// The network's own last layer (`head.safetensors`), when it reads these features and
    /// predicts these classes: the paper's "dense" layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<LayerEvaluation>,
    pub dense: LayerEvaluation,
    pub dense_layer: String,
    pub sparse: LayerEvaluation,
    pub selected_lambda_index: usize,
    pub selected_lambda: f64,
    pub best_val_accuracy: f64,
    pub selected_val_accuracy: f64,
    pub seconds_features: f64,
    pub seconds_path: f64,
    pub seconds_dense: f64,
}

/// A feature a class section shows, with the layer's weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightedFeature {
    pub feature: usize,
    pub weight: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassFeatures {
    pub name: String,
    /// Every feature the sparse layer uses for this class, largest |weight| first.
    pub sparse: Vec<WeightedFeature>,
    /// How many of `sparse` the report shows.
    pub sparse_shown: usize,
    pub sparse_bias: f32,
    /// The dense layer's top features by |weight|.
    pub dense: Vec<WeightedFeature>,
    /// Coefficient-path plot of the shown sparse features, relative to the run folder.
    pub coefficient_plot: Option<String>,
}

/// An example shown in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExampleInfo {
    /// The sentence, for text runs.
    pub text: Option<String>,
    pub label: String,
    /// The image file, for runs on image files: `fit predict` shows a feature's prototypes
    /// from here without listing the dataset again (1.28M files at ImageNet size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// The pictures of one feature, relative to the run folder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeaturePictures {
    pub word_cloud: Option<String>,
    pub prototypes: Option<String>,
    pub lime: Option<String>,
    /// Gradient-ascent visualization (image runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_vis: Option<String>,
}

/// A visualized feature's pre-activation (what the ascent maximizes) on its image and on a
/// mid-gray one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisualizedFeature {
    pub feature: usize,
    pub activation: f32,
    pub gray_activation: f32,
}

/// `interpret.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterpretOutput {
    /// Split the prototypes come from.
    pub split: String,
    pub n_examples: usize,
    pub is_text: bool,
    pub classes: Vec<ClassFeatures>,
    pub readings: Vec<FeatureReading>,
    pub examples: BTreeMap<usize, ExampleInfo>,
    pub pictures: BTreeMap<usize, FeaturePictures>,
    pub lime: LimeStats,
    #[serde(default)]
    pub visualized: Vec<VisualizedFeature>,
    #[serde(default)]
    pub feature_vis_seconds: f64,
    pub lime_samples: usize,
    pub lime_inputs: usize,
    pub kernel_width: f64,
    pub segments: usize,
    pub seed: u64,
}

impl InterpretOutput {
    pub fn reading(&self, feature: usize) -> Option<&FeatureReading> {
        self.readings.iter().find(|r| r.feature == feature)
    }
}

/// A class's nonzero weights, largest |weight| first (ties: lower feature index).
pub fn class_features(layer: &Layer, class: usize) -> Vec<WeightedFeature> {
    let row = &layer.weight[class * layer.d..(class + 1) * layer.d];
    let mut v: Vec<WeightedFeature> = row
        .iter()
        .enumerate()
        .filter(|(_, w)| **w != 0.0)
        .map(|(feature, &weight)| WeightedFeature { feature, weight })
        .collect();
    v.sort_by(|a, b| {
        b.weight
            .abs()
            .total_cmp(&a.weight.abs())
            .then(a.feature.cmp(&b.feature))
    });
    v
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

/// Everything the later stages need from a finished run.
pub struct LoadedRun {
    pub recipe: RunRecipe,
    pub data: datasets::DatasetSplits,
    pub cache: FeatureCache,
    pub sparse: Layer,
    pub dense: Layer,
    /// `test`, or `val` when the dataset has no test split.
    pub split: &'static str,
}

impl LoadedRun {
    pub fn open(run: &Path) -> Result<Self> {
        let (folder, recipe) = RunFolder::open_finished(run)?;
        let data = recipe.load_data()?;
        let cache = FeatureCache::open_existing(&recipe.cache)?;
        let now = crate::recipe::features_identity(cache.manifest());
        if recipe.features_identity.as_ref().is_some_and(|then| *then != now) {
            bail!(
                "the feature cache at {} now holds other features ({now}) than the run read: rerun `fit` to remake the run",
                recipe.cache.display()
            );
        }
        let fingerprint = datasets::fingerprint(&data)?;
        if fingerprint != cache.manifest().dataset_fingerprint {
            bail!(
                "the dataset at {} changed since the run (its fingerprint differs from the feature cache's): rerun `fit`",
                recipe.dataset_path.display()
            );
        }
        let sparse = folder.layer(LayerKind::Selected)?;
        let dense = folder.layer(LayerKind::Dense)?;
        let split = if data.test.is_some() { "test" } else { "val" };
        Ok(LoadedRun {
            recipe,
            data,
            cache,
            sparse,
            dense,
            split,
        })
    }

    pub fn split_set(&self) -> &datasets::LabeledSet {
        match self.split {
            "test" => self.data.test.as_ref().expect("checked at open"),
            _ => self.data.val.as_ref().expect("a finished run has a val split"),
        }
    }

    /// The split's raw (cached, unstandardized) features `[n, d]`; unreadable examples are NaN.
    pub fn activations(&self) -> Result<Vec<f32>> {
        Ok(self.cache.load(self.split)?.x.into_f32())
    }

    pub fn label_name(&self, i: usize) -> String {
        let set = self.split_set();
        match &set.labels {
            datasets::Labels::Class(c) => set.class_names.get(c[i] as usize).cloned().unwrap_or_default(),
            datasets::Labels::Multi(rows) => rows[i]
                .iter()
                .zip(&set.class_names)
                .filter(|(v, _)| **v > 0.5)
                .map(|(_, n)| n.as_str())
                .collect::<Vec<_>>()
                .join("+"),
        }
    }
}
