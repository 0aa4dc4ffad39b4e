//! `run.json`: how a run's data and backbone were made, so the stages after the path (`fit
//! interpret`, `fit debug`) reload exactly the same examples (seeded splits and subsets) and the
//! same network from the run folder alone.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use datasets::{DatasetKind, DatasetSplits, LabeledSet, LoadOptions};
use serde::{Deserialize, Serialize};

use crate::backbones::{Arch, Backbone};

/// Bumped when the fields change meaning.
pub const RECIPE_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecipe {
    pub format: u32,
    /// `--dataset` (a dataset kind's name).
    pub dataset: String,
    /// The dataset folder or file, absolute.
    pub dataset_path: PathBuf,
    pub arch: String,
    /// The weights as given (an absolute path when it named an existing file or folder).
    pub model_path: Option<String>,
    /// The feature mode the features were extracted with.
    pub feature_mode: String,
    pub balance: bool,
    pub label_columns: Vec<String>,
    pub max_examples: Option<usize>,
    pub val_frac: f64,
    pub random_seed: u64,
    pub extract_batch_size: usize,
    /// The feature cache folder, absolute.
    pub cache: PathBuf,
    pub class_names: Vec<String>,
    /// Features per class of the top-k evaluation.
    pub top_k: usize,
    /// What the feature cache held when the run read it ([`features_identity`]), so a later
    /// stage notices a shared cache rebuilt since for another backbone (absent in runs made
    /// before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features_identity: Option<String>,
}

/// The backbone, weights, feature mode and preprocessing a feature cache's features come from.
pub fn features_identity(manifest: &features::Manifest) -> String {
    format!(
        "{} | weights {} | {} | {}",
        manifest.backbone, manifest.weights_sha256, manifest.feature_mode, manifest.preprocessing
    )
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// An existing local path made absolute; anything else (a hub id) as it is.
pub fn absolute_model(model: Option<&str>) -> Option<String> {
    model.map(|m| {
        let p = Path::new(m);
        if p.exists() {
            absolute(p).display().to_string()
        } else {
            m.to_string()
        }
    })
}

/// The file in a run folder.
pub fn recipe_path(run: &Path) -> PathBuf {
    run.join("run.json")
}

impl RunRecipe {
    pub fn kind(&self) -> Result<DatasetKind> {
        Ok(self.dataset.parse()?)
    }

    pub fn arch(&self) -> Result<Arch> {
        self.arch.parse()
    }

    pub fn load_options(&self) -> LoadOptions {
        load_options(self.random_seed, self.val_frac, self.balance, &self.label_columns)
    }

    /// The dataset splits of this run, seeded exactly as the run made them.
    pub fn load_data(&self) -> Result<DatasetSplits> {
        load_data(
            self.kind()?,
            &self.dataset_path,
            &self.load_options(),
            self.max_examples,
            self.random_seed,
        )
    }

    /// The run's backbone on `device`.
    pub fn load_backbone(
        &self,
        examples: &datasets::Examples,
        device: &burn::tensor::Device,
    ) -> Result<Backbone> {
        Backbone::load(
            self.arch()?,
            self.model_path.as_deref(),
            Some(&self.feature_mode)
                .filter(|m| m.as_str() != "raw")
                .map(String::as_str),
            self.extract_batch_size,
            examples,
            device,
        )
    }

    pub fn save(&self, run: &Path) -> Result<()> {
        solver::io::write_atomic(&recipe_path(run), &serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }

    pub fn load(run: &Path) -> Result<Self> {
        let path = recipe_path(run);
        let bytes = std::fs::read(&path).with_context(|| {
            format!(
                "{} not found: is {} the --out-path of a finished `fit` run?",
                path.display(),
                run.display()
            )
        })?;
        let recipe: RunRecipe = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a run recipe", path.display()))?;
        if recipe.format != RECIPE_VERSION {
            bail!(
                "{} has format {} (this build reads {RECIPE_VERSION}): rerun `fit` to remake the run",
                path.display(),
                recipe.format
            );
        }
        Ok(recipe)
    }
}

pub fn load_options(seed: u64, val_frac: f64, balance: bool, label_columns: &[String]) -> LoadOptions {
    LoadOptions {
        seed,
        val_frac,
        balance,
        label_columns: label_columns.to_vec(),
        ..LoadOptions::default()
    }
}

/// A seeded subset of at most `max` examples, kept in file order.
fn subset(set: LabeledSet, max: usize, seed: u64) -> LabeledSet {
    if set.len() <= max {
        return set;
    }
    let mut idx = datasets::split::permutation(set.len(), seed)[..max].to_vec();
    idx.sort_unstable();
    set.select(&idx)
}

/// Load a dataset's splits and cut them to `max_examples` each (seeded subsets).
pub fn load_data(
    kind: DatasetKind,
    path: &Path,
    options: &LoadOptions,
    max_examples: Option<usize>,
    seed: u64,
) -> Result<DatasetSplits> {
    let mut data: DatasetSplits = datasets::load(kind, path, options)?;
    if let Some(max) = max_examples {
        data.train = subset(data.train, max, seed);
        data.val = data.val.map(|s| subset(s, max, seed + 1));
        data.test = data.test.map(|s| subset(s, max, seed + 2));
        data.notes.push(format!(
            "at most {max} examples per split (seeded subset, seed {seed})"
        ));
    }
    Ok(data)
}

/// The data folder `cargo xtask fetch` fills (see [`model_hub::data_dir`]).
pub use model_hub::data_dir;

/// The dataset's folder or file: the one given, else where `cargo xtask fetch` puts the
/// offline datasets (an error naming the command when it has not run).
pub fn dataset_path(kind: DatasetKind, given: Option<&Path>) -> Result<PathBuf> {
    let data = data_dir();
    let path = match (given, kind) {
        (Some(p), _) => p.to_path_buf(),
        (None, DatasetKind::RottenTomatoes) => data.join(datasets::fetched::ROTTEN_TOMATOES),
        (None, DatasetKind::FashionMnist) => data.join(datasets::fetched::FASHION_MNIST),
        (None, _) => bail!("--dataset-path is required for --dataset {kind}"),
    };
    if given.is_none() && !path.exists() {
        bail!(
            "{} is missing: run `cargo xtask fetch` first (it downloads the offline data into {})",
            path.display(),
            data.display()
        );
    }
    Ok(path)
}
