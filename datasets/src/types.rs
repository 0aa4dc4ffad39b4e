//! The uniform surface every loader returns: examples, labels, class names, and the splits.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::DatasetError;

/// The inputs of a dataset, in one of three forms. Index `i` of every form is example `i`.
#[derive(Debug, Clone, PartialEq)]
pub enum Examples {
    /// Sentences or comments, as they should be fed to a tokenizer.
    Text(Vec<String>),
    /// Image files, to be decoded by the vision crate.
    Images(Vec<PathBuf>),
    /// Decoded 8-bit images, `n × height × width × channels` (HWC, row-major) in one buffer.
    /// CIFAR-10 has `channels = 3` (RGB), MNIST and Fashion-MNIST `channels = 1`.
    Pixels {
        data: Vec<u8>,
        height: usize,
        width: usize,
        channels: usize,
    },
}

impl Examples {
    /// Number of examples.
    pub fn len(&self) -> usize {
        match self {
            Examples::Text(t) => t.len(),
            Examples::Images(p) => p.len(),
            Examples::Pixels {
                data,
                height,
                width,
                channels,
            } => data.len().checked_div(height * width * channels).unwrap_or(0),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The examples at `indices`, in that order. Panics if an index is out of range (a caller bug,
    /// not bad data: indices come from this crate's split functions).
    pub fn select(&self, indices: &[usize]) -> Examples {
        match self {
            Examples::Text(t) => Examples::Text(indices.iter().map(|&i| t[i].clone()).collect()),
            Examples::Images(p) => Examples::Images(indices.iter().map(|&i| p[i].clone()).collect()),
            Examples::Pixels {
                data,
                height,
                width,
                channels,
            } => {
                let per = height * width * channels;
                let mut out = Vec::with_capacity(indices.len() * per);
                for &i in indices {
                    out.extend_from_slice(&data[i * per..(i + 1) * per]);
                }
                Examples::Pixels {
                    data: out,
                    height: *height,
                    width: *width,
                    channels: *channels,
                }
            }
        }
    }

    /// The pixels of example `i` (HWC), for the `Pixels` form.
    pub fn pixels(&self, i: usize) -> Option<&[u8]> {
        match self {
            Examples::Pixels {
                data,
                height,
                width,
                channels,
            } => {
                let per = height * width * channels;
                data.get(i * per..(i + 1) * per)
            }
            _ => None,
        }
    }

    /// `"text"`, `"images"` or `"pixels"`.
    pub fn form(&self) -> &'static str {
        match self {
            Examples::Text(_) => "text",
            Examples::Images(_) => "images",
            Examples::Pixels { .. } => "pixels",
        }
    }
}

/// Targets: one class index per example, or a 0/1 vector per example for multilabel tasks.
#[derive(Debug, Clone, PartialEq)]
pub enum Labels {
    /// Class index in `0..class_names.len()`.
    Class(Vec<u32>),
    /// One value in {0, 1} per label column (`class_names[j]` names column `j`).
    Multi(Vec<Vec<f32>>),
}

impl Labels {
    pub fn len(&self) -> usize {
        match self {
            Labels::Class(c) => c.len(),
            Labels::Multi(m) => m.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn select(&self, indices: &[usize]) -> Labels {
        match self {
            Labels::Class(c) => Labels::Class(indices.iter().map(|&i| c[i]).collect()),
            Labels::Multi(m) => Labels::Multi(indices.iter().map(|&i| m[i].clone()).collect()),
        }
    }

    /// The class indices, for single-label tasks.
    pub fn as_class(&self) -> Option<&[u32]> {
        match self {
            Labels::Class(c) => Some(c),
            Labels::Multi(_) => None,
        }
    }
}

/// Examples with their labels and the names of the classes (or label columns).
#[derive(Debug, Clone, PartialEq)]
pub struct LabeledSet {
    pub examples: Examples,
    pub labels: Labels,
    pub class_names: Vec<String>,
}

impl LabeledSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The subset at `indices`, in that order, with the same class names.
    pub fn select(&self, indices: &[usize]) -> LabeledSet {
        LabeledSet {
            examples: self.examples.select(indices),
            labels: self.labels.select(indices),
            class_names: self.class_names.clone(),
        }
    }

    /// Examples per class (single-label) or positives per label column (multilabel).
    pub fn class_counts(&self) -> Vec<usize> {
        let k = self.class_names.len();
        let mut counts = vec![0usize; k];
        match &self.labels {
            Labels::Class(c) => {
                for &y in c {
                    if let Some(slot) = counts.get_mut(y as usize) {
                        *slot += 1;
                    }
                }
            }
            Labels::Multi(m) => {
                for row in m {
                    for (slot, &v) in counts.iter_mut().zip(row) {
                        if v > 0.5 {
                            *slot += 1;
                        }
                    }
                }
            }
        }
        counts
    }
}

/// Train, validation and test splits of one dataset, as [`crate::load`] returns them.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetSplits {
    pub kind: DatasetKind,
    /// The folder (or file) loaded; image paths in [`Examples::Images`] are under it.
    pub root: PathBuf,
    pub train: LabeledSet,
    pub val: Option<LabeledSet>,
    pub test: Option<LabeledSet>,
    /// Human-readable lines on how the splits were made and what was dropped or skipped
    /// (e.g. "val carved from train: 10% with seed 0", "37 zero-rated rows dropped").
    pub notes: Vec<String>,
}

impl DatasetSplits {
    /// The named splits that are present, in train, val, test order.
    pub fn splits(&self) -> Vec<(&'static str, &LabeledSet)> {
        let mut out = vec![("train", &self.train)];
        if let Some(v) = &self.val {
            out.push(("val", v));
        }
        if let Some(t) = &self.test {
            out.push(("test", t));
        }
        out
    }

    pub fn class_names(&self) -> &[String] {
        &self.train.class_names
    }
}

/// The dataset formats this crate reads. `FromStr` accepts the names below (and a few aliases);
/// `Display` prints the canonical name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// `imagenet`: an ImageNet tree with `train/<wnid>/*.JPEG` and `val/<wnid>/*.JPEG`.
    #[serde(rename = "imagenet")]
    ImageNet,
    /// `image-folder`: any `root/<class>/<images>` tree, with or without `train/`/`val/`/`test/`.
    ImageFolder,
    /// `places10`: a Places365 tree restricted to 10 classes (the paper's list by default).
    Places10,
    /// `cifar10`: the CIFAR-10 binary version (`data_batch_*.bin`, `test_batch.bin`).
    Cifar10,
    /// `mnist`: MNIST IDX files.
    Mnist,
    /// `fashion-mnist`: Fashion-MNIST IDX files.
    FashionMnist,
    /// `sst`: the original Stanford Sentiment Treebank release, binary sentence labels.
    Sst,
    /// `sst2-tsv`: GLUE's SST-2 (`train.tsv`, `dev.tsv`, unlabeled `test.tsv`).
    Sst2Tsv,
    /// `jigsaw`: the Jigsaw toxic-comment CSVs (`train.csv`, optionally `test.csv` + `test_labels.csv`).
    Jigsaw,
    /// `rotten-tomatoes`: `movieReviewSnippets_GroundTruth.txt` (id, mean rating, text).
    RottenTomatoes,
}

impl DatasetKind {
    /// Every kind, in the order of the docs.
    pub const ALL: [DatasetKind; 10] = [
        DatasetKind::ImageNet,
        DatasetKind::ImageFolder,
        DatasetKind::Places10,
        DatasetKind::Cifar10,
        DatasetKind::Mnist,
        DatasetKind::FashionMnist,
        DatasetKind::Sst,
        DatasetKind::Sst2Tsv,
        DatasetKind::Jigsaw,
        DatasetKind::RottenTomatoes,
    ];

    /// The canonical name (what `Display` prints and `FromStr` reads).
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::ImageNet => "imagenet",
            DatasetKind::ImageFolder => "image-folder",
            DatasetKind::Places10 => "places10",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Sst => "sst",
            DatasetKind::Sst2Tsv => "sst2-tsv",
            DatasetKind::Jigsaw => "jigsaw",
            DatasetKind::RottenTomatoes => "rotten-tomatoes",
        }
    }

    /// Whether the loader gives decoded pixel arrays (the IDX and CIFAR binary formats) rather
    /// than image files or text.
    pub fn is_decoded_pixels(self) -> bool {
        matches!(
            self,
            DatasetKind::Cifar10 | DatasetKind::Mnist | DatasetKind::FashionMnist
        )
    }

    /// Whether the examples are text (tokenized by the BERT crate) rather than images.
    pub fn is_text(self) -> bool {
        matches!(
            self,
            DatasetKind::Sst | DatasetKind::Sst2Tsv | DatasetKind::Jigsaw | DatasetKind::RottenTomatoes
        )
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetKind {
    type Err = DatasetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key = s.trim().to_ascii_lowercase().replace('_', "-");
        let kind = match key.as_str() {
            "imagenet" => DatasetKind::ImageNet,
            "image-folder" | "imagefolder" | "folder" => DatasetKind::ImageFolder,
            "places10" | "places-10" => DatasetKind::Places10,
            "cifar10" | "cifar-10" => DatasetKind::Cifar10,
            "mnist" => DatasetKind::Mnist,
            "fashion-mnist" | "fashionmnist" => DatasetKind::FashionMnist,
            "sst" => DatasetKind::Sst,
            "sst2-tsv" | "sst2" | "sst-2" | "glue-sst2" => DatasetKind::Sst2Tsv,
            "jigsaw" | "toxic" => DatasetKind::Jigsaw,
            "rotten-tomatoes" | "rt" => DatasetKind::RottenTomatoes,
            _ => {
                return Err(DatasetError::UnknownKind {
                    name: s.to_string(),
                    expected: DatasetKind::ALL
                        .iter()
                        .map(|k| k.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        };
        Ok(kind)
    }
}

/// Thresholds turning SST's sentiment values in [0, 1] into binary labels: value `> positive_above`
/// is positive (1), value `<= negative_at_most` is negative (0), anything between is neutral and
/// dropped. The defaults (0.6, 0.4) are those of the SST paper's binary task and of GLUE's SST-2.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SstThresholds {
    pub negative_at_most: f64,
    pub positive_above: f64,
}

impl Default for SstThresholds {
    fn default() -> Self {
        SstThresholds {
            negative_at_most: 0.4,
            positive_above: 0.6,
        }
    }
}

impl SstThresholds {
    /// `Some(0)`, `Some(1)`, or `None` for a neutral value.
    pub fn label(&self, value: f64) -> Option<u32> {
        if value > self.positive_above {
            Some(1)
        } else if value <= self.negative_at_most {
            Some(0)
        } else {
            None
        }
    }
}

/// Options of [`crate::load`]. `Default` gives the paper's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadOptions {
    /// Seed of every random choice (val carving, 80/10/10 splits, balancing). Default 0.
    pub seed: u64,
    /// Share of the training split held out as validation when the format has no validation split
    /// of its own. Default 0.1; 0 gives no validation split.
    pub val_frac: f64,
    /// (train, val, test) shares for formats with no natural split at all. Default (0.8, 0.1, 0.1).
    pub fractions: (f64, f64, f64),
    /// Image trees: keep only these classes, labelled in this order (a class may be a nested folder
    /// such as `a/airfield`). `places10` defaults to [`crate::image_folder::PLACES10_CLASSES`].
    pub classes: Option<Vec<String>>,
    /// Image trees: extra file extensions (lower case, no dot) to accept besides
    /// [`crate::image_folder::IMAGE_EXTENSIONS`].
    pub extra_image_extensions: Vec<String>,
    /// SST (original release): how sentiment values become binary labels.
    pub sst_thresholds: SstThresholds,
    /// Jigsaw: label columns. One column gives a binary task (`not <col>`, `<col>`); several give a
    /// multilabel task over them. Default `["toxic"]`.
    pub label_columns: Vec<String>,
    /// Binary tasks: keep all positives of the training split plus as many seeded-random negatives
    /// (see [`crate::balance`]). Validation and test splits are never balanced. Default false.
    pub balance: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            seed: 0,
            val_frac: 0.1,
            fractions: (0.8, 0.1, 0.1),
            classes: None,
            extra_image_extensions: Vec::new(),
            sst_thresholds: SstThresholds::default(),
            label_columns: vec!["toxic".to_string()],
            balance: false,
        }
    }
}
