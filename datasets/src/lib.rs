//! Dataset loaders for fitting sparse decision layers: each format the paper's users have, read into
//! one uniform shape ([`DatasetSplits`] of [`LabeledSet`]s), with seeded splits and a fingerprint for
//! the feature cache. Pure data handling: images are listed here and decoded by the vision crate,
//! texts are tokenized by the BERT crate.
//!
//! # Formats ([`DatasetKind`]) and how their splits map onto train / val / test
//!
//! One rule throughout: a format's own labelled held-out split is the **test** split, and the
//! **validation** split (used to pick the sparse layer on the path) is carved from the training data
//! by `val_frac` (default 0.1, seeded), as the paper did. A format with dev *and* test splits uses
//! both as they are. A format with no split at all is split 80/10/10 (`fractions`, seeded).
//!
//! | kind | input | train | val | test |
//! |---|---|---|---|---|
//! | `imagenet` | `root/train/<wnid>/*`, `root/val/<wnid>/*` | `train/` minus val | carved from `train/` | `val/` (or `val/` → val and `test/` → test if both exist) |
//! | `image-folder` | `root/<class>/*`, or `root/{train,val,test}/<class>/*` | `train/` | `val/` if `test/` also exists, else carved | `test/`, else `val/` |
//! | `image-folder` (no `train/`) | `root/<class>/*` | 80% | 10% | 10% |
//! | `places10` | as `image-folder`, keeping [`image_folder::PLACES10_CLASSES`] (or `classes`) | | | |
//! | `cifar10` | `data_batch_1..5.bin`, `test_batch.bin` | batches minus val | carved | `test_batch.bin` |
//! | `mnist`, `fashion-mnist` | `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]` | train minus val | carved | `t10k` |
//! | `sst` | `stanfordSentimentTreebank/` (original release) | split 1 | split 3 (dev) | split 2 |
//! | `sst2-tsv` | GLUE `train.tsv`, `dev.tsv` (or one TSV file) | `train.tsv` minus val | carved | `dev.tsv` (GLUE's `test.tsv` has no labels) |
//! | `jigsaw` | `train.csv` [+ `test.csv`, `test_labels.csv`], or one CSV file | `train.csv` minus val | carved | Kaggle test, scored rows |
//! | `rotten-tomatoes` | `movieReviewSnippets_GroundTruth.txt` | 80% | 10% | 10% |
//!
//! When a format's held-out files are absent (no `test_batch.bin`, no `t10k-*`, no `dev.tsv`, no
//! `test.csv`, an image tree with only `train/`), its training data is split 80/10/10 instead.
//! [`DatasetSplits::notes`] says, in words, which of these happened and what was dropped.
//!
//! Labels: image trees label sorted class folders 0..K (or a class subset in list order); SST is
//! binary (`> 0.6` positive, `≤ 0.4` negative, neutral dropped: [`SstThresholds`]); Rotten Tomatoes
//! is the sign of the mean rating (zeros dropped); Jigsaw is binary on one column or multilabel over
//! several. With `balance`, the training split of a binary task keeps all positives and as many
//! seeded-random negatives ([`balance`]); val and test are left as they are.
//!
//! # Example
//! ```no_run
//! use datasets::{load, DatasetKind, LoadOptions};
//!
//! let opts = LoadOptions { seed: 0, val_frac: 0.1, ..Default::default() };
//! let kind: DatasetKind = "fashion-mnist".parse()?;
//! let splits = load(kind, "data/fashion-mnist".as_ref(), &opts)?;
//! for note in &splits.notes {
//!     println!("{note}");
//! }
//! println!("{} train examples, fingerprint {}", splits.train.len(), splits.fingerprint()?);
//! # Ok::<(), datasets::DatasetError>(())
//! ```
//!
//! # Determinism
//! Splits use ChaCha8 streams and a hand-written Fisher–Yates ([`split`]): the same seed gives the
//! same splits on every platform. Index lists are sorted, so each split keeps the files' order.
//!
//! # Errors
//! Bad data is a [`DatasetError`], never a panic; every error is one line naming the file and the
//! line or record. After loading, [`check_split_has_classes`] rejects a training split with one class.

pub mod cifar;
pub mod error;
pub mod fingerprint;
pub mod idx;
pub mod image_folder;
pub mod jigsaw;
pub mod rotten;
pub mod split;
pub mod sst;
pub mod text;
pub mod types;

use std::path::Path;

pub use error::DatasetError;
pub use fingerprint::fingerprint;
pub use split::{balance, check_split_has_classes, split_indices, train_val_split, Balanced, SplitIndices};
pub use types::{DatasetKind, DatasetSplits, Examples, LabeledSet, Labels, LoadOptions, SstThresholds};

/// Where `cargo xtask fetch` puts the real data, relative to the data folder (`$FIT_DATA_DIR`, or
/// `data/` at the workspace root).
pub mod fetched {
    /// The Rotten Tomatoes snippets, from the `vadersentiment==3.3.2` sdist.
    pub const ROTTEN_TOMATOES: &str = "pkg/vadersentiment-3.3.2/vaderSentiment-3.3.2/additional_resources/\
                                       hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt";
    /// Fashion-MNIST's four gzipped IDX files, from Debian's `dataset-fashion-mnist`.
    pub const FASHION_MNIST: &str = "fashion-mnist";
}

/// The natural splits a format provides, before val carving / 80-10-10.
enum Natural {
    /// train, val, test as the format has them.
    Three(LabeledSet, LabeledSet, LabeledSet),
    /// train and a labelled held-out set (→ test).
    TrainTest(LabeledSet, LabeledSet),
    /// one labelled set, to be split by `fractions`.
    One(LabeledSet),
}

fn validate_options(opts: &LoadOptions) -> Result<(), DatasetError> {
    // Run the split functions on nothing: they validate their arguments.
    split_indices(0, opts.fractions, opts.seed)?;
    train_val_split(0, opts.val_frac, opts.seed)?;
    Ok(())
}

fn non_empty(set: LabeledSet) -> Option<LabeledSet> {
    if set.is_empty() {
        None
    } else {
        Some(set)
    }
}

fn assemble(
    kind: DatasetKind,
    root: &Path,
    natural: Natural,
    opts: &LoadOptions,
    mut notes: Vec<String>,
) -> Result<DatasetSplits, DatasetError> {
    let (train, val, test) = match natural {
        Natural::Three(train, val, test) => {
            notes.push("splits as the dataset defines them (val_frac and fractions not used)".to_string());
            (train, non_empty(val), non_empty(test))
        }
        Natural::TrainTest(full, test) => {
            let (tr, va) = train_val_split(full.len(), opts.val_frac, opts.seed)?;
            if va.is_empty() {
                notes.push("no val split (val_frac = 0)".to_string());
                (full, None, non_empty(test))
            } else {
                notes.push(format!(
                    "val carved from train: {} of {} examples (val_frac {}, seed {})",
                    va.len(),
                    full.len(),
                    opts.val_frac,
                    opts.seed
                ));
                (full.select(&tr), Some(full.select(&va)), non_empty(test))
            }
        }
        Natural::One(full) => {
            let s = split_indices(full.len(), opts.fractions, opts.seed)?;
            notes.push(format!(
                "no split in the data: seeded split {:?} (seed {}) into {}/{}/{} of {}",
                opts.fractions,
                opts.seed,
                s.train.len(),
                s.val.len(),
                s.test.len(),
                full.len()
            ));
            let val = non_empty(full.select(&s.val));
            let test = non_empty(full.select(&s.test));
            (full.select(&s.train), val, test)
        }
    };
    let mut splits = DatasetSplits {
        kind,
        root: root.to_path_buf(),
        train,
        val,
        test,
        notes,
    };
    if opts.balance {
        let labels = match splits.train.labels.as_class() {
            Some(l) if splits.train.class_names.len() == 2 => l,
            _ => {
                return Err(DatasetError::InvalidOption(format!(
                    "balance needs a binary task; {kind} here has {} classes{}",
                    splits.train.class_names.len(),
                    if splits.train.labels.as_class().is_none() {
                        " (multilabel)"
                    } else {
                        ""
                    }
                )))
            }
        };
        let b = balance(labels, opts.seed)?;
        let mut note = format!(
            "train balanced: {} positives + {} of {} negatives (seed {})",
            b.positives, b.negatives_kept, b.negatives_available, opts.seed
        );
        if b.short_by() > 0 {
            note.push_str(&format!(
                "; {} fewer negatives than positives: all kept",
                b.short_by()
            ));
        }
        splits.notes.push(note);
        splits.train = splits.train.select(&b.indices);
    }
    check_split_has_classes("train", &splits.train)?;
    let mut counts_notes = Vec::new();
    for (name, set) in splits.splits() {
        let counts = set.class_counts();
        let shown: Vec<String> = counts.iter().take(10).map(|c| c.to_string()).collect();
        counts_notes.push(format!(
            "{name}: {} examples; per class [{}{}]",
            set.len(),
            shown.join(", "),
            if counts.len() > 10 { ", ..." } else { "" }
        ));
    }
    splits.notes.extend(counts_notes);
    Ok(splits)
}

fn images_set(f: image_folder::ImageFolder) -> LabeledSet {
    LabeledSet {
        examples: Examples::Images(f.paths),
        labels: Labels::Class(f.labels),
        class_names: f.class_names,
    }
}

fn load_image_tree(
    kind: DatasetKind,
    root: &Path,
    opts: &LoadOptions,
) -> Result<DatasetSplits, DatasetError> {
    use image_folder::{describe, scan_heldout, scan_image_folder, split_dirs, PLACES10_CLASSES};
    let classes: Option<Vec<String>> = match (&opts.classes, kind) {
        (Some(c), _) => Some(c.clone()),
        (None, DatasetKind::Places10) => Some(PLACES10_CLASSES.iter().map(|s| s.to_string()).collect()),
        (None, _) => None,
    };
    let subset = classes.is_some();
    let extra = &opts.extra_image_extensions;
    let mut notes = Vec::new();
    let (train_dir, val_dir, test_dir) = split_dirs(root);
    if kind == DatasetKind::ImageNet && (train_dir.is_none() || val_dir.is_none()) {
        let missing = if train_dir.is_none() { "train" } else { "val" };
        return Err(DatasetError::MissingFile {
            path: root.join(missing),
            what: "folder (ImageNet layout: train/<wnid>/*.JPEG and val/<wnid>/*.JPEG)".to_string(),
        });
    }
    let natural = match train_dir {
        Some(train_dir) => {
            let train = scan_image_folder(&train_dir, classes.as_deref(), extra)?;
            notes.push(describe("train", &train));
            let names = train.class_names.clone();
            match (val_dir, test_dir) {
                (Some(v), Some(t)) => {
                    let val = scan_heldout(&v, &names, subset, extra)?;
                    let test = scan_heldout(&t, &names, subset, extra)?;
                    notes.push(describe("val", &val));
                    notes.push(describe("test", &test));
                    Natural::Three(images_set(train), images_set(val), images_set(test))
                }
                (Some(h), None) | (None, Some(h)) => {
                    let test = scan_heldout(&h, &names, subset, extra)?;
                    notes.push(describe("test", &test));
                    notes.push(format!("{} used as the test split", h.display()));
                    Natural::TrainTest(images_set(train), images_set(test))
                }
                (None, None) => Natural::One(images_set(train)),
            }
        }
        None => {
            let all = scan_image_folder(root, classes.as_deref(), extra)?;
            notes.push(describe("all", &all));
            Natural::One(images_set(all))
        }
    };
    assemble(kind, root, natural, opts, notes)
}

/// Load a dataset of `kind` from `path` (a folder, or a file for the single-file formats), split it
/// as the crate docs describe, balance it if asked, and check the training split has two classes.
pub fn load(kind: DatasetKind, path: &Path, opts: &LoadOptions) -> Result<DatasetSplits, DatasetError> {
    validate_options(opts)?;
    if !path.exists() {
        return Err(DatasetError::MissingPath {
            path: path.to_path_buf(),
        });
    }
    let mut notes = Vec::new();
    match kind {
        DatasetKind::ImageNet | DatasetKind::ImageFolder | DatasetKind::Places10 => {
            load_image_tree(kind, path, opts)
        }
        DatasetKind::Cifar10 => {
            let c = cifar::load_cifar10(path)?;
            notes.push(format!("train: {} batch files", c.train_files.len()));
            if c.meta_missing {
                notes.push("batches.meta.txt missing: standard CIFAR-10 class names used".to_string());
            }
            let natural = match c.test {
                Some(test) => Natural::TrainTest(c.train, test),
                None => {
                    notes.push("test_batch.bin missing".to_string());
                    Natural::One(c.train)
                }
            };
            assemble(kind, &cifar::cifar10_dir(path), natural, opts, notes)
        }
        DatasetKind::Mnist | DatasetKind::FashionMnist => {
            let names: &[&str] = if kind == DatasetKind::Mnist {
                &idx::MNIST_CLASSES
            } else {
                &idx::FASHION_MNIST_CLASSES
            };
            let train = idx::load_idx_pair(path, "train", names)?;
            let natural = if idx::has_pair(path, "t10k") {
                Natural::TrainTest(train, idx::load_idx_pair(path, "t10k", names)?)
            } else {
                notes.push("t10k-* files missing".to_string());
                Natural::One(train)
            };
            assemble(kind, path, natural, opts, notes)
        }
        DatasetKind::Sst => {
            let s = sst::load_sst(path, opts.sst_thresholds)?;
            let r = &s.report;
            notes.push(format!(
                "{} sentences; thresholds: negative <= {}, positive > {}; neutral dropped (train/dev/test): \
                 {}/{}/{}; {} matched after fixing PTB escapes / mojibake",
                r.sentences,
                opts.sst_thresholds.negative_at_most,
                opts.sst_thresholds.positive_above,
                r.neutral_dropped[0],
                r.neutral_dropped[1],
                r.neutral_dropped[2],
                r.matched_after_normalizing
            ));
            for (what, ids) in [
                ("not in dictionary.txt", &r.not_in_dictionary),
                ("without sentiment value", &r.no_sentiment),
                ("not in datasetSplit.txt", &r.no_split),
            ] {
                if !ids.is_empty() {
                    let shown: Vec<String> = ids.iter().take(8).map(|i| i.to_string()).collect();
                    notes.push(format!(
                        "{} sentences {what}, dropped (sentence_index {}{})",
                        ids.len(),
                        shown.join(", "),
                        if ids.len() > 8 { ", ..." } else { "" }
                    ));
                }
            }
            assemble(
                kind,
                &sst::sst_dir(path),
                Natural::Three(s.train, s.dev, s.test),
                opts,
                notes,
            )
        }
        DatasetKind::Sst2Tsv => {
            if path.is_file() {
                return assemble(kind, path, Natural::One(sst::read_sst2_tsv(path)?), opts, notes);
            }
            let train_p = path.join("train.tsv");
            if !train_p.is_file() {
                return Err(DatasetError::MissingFile {
                    path: train_p,
                    what: "GLUE SST-2 train.tsv".to_string(),
                });
            }
            let train = sst::read_sst2_tsv(&train_p)?;
            let dev_p = path.join("dev.tsv");
            let natural = if dev_p.is_file() {
                notes.push("dev.tsv used as the test split (GLUE's test.tsv has no labels)".to_string());
                Natural::TrainTest(train, sst::read_sst2_tsv(&dev_p)?)
            } else {
                notes.push("dev.tsv missing".to_string());
                Natural::One(train)
            };
            assemble(kind, path, natural, opts, notes)
        }
        DatasetKind::Jigsaw => {
            let cols = &opts.label_columns;
            notes.push(format!(
                "label column(s) {}: {}",
                cols.join(", "),
                if cols.len() == 1 { "binary" } else { "multilabel" }
            ));
            let (train_p, test_pair) = if path.is_file() {
                (path.to_path_buf(), None)
            } else {
                let t = path.join("test.csv");
                let l = path.join("test_labels.csv");
                (
                    path.join("train.csv"),
                    if t.is_file() && l.is_file() {
                        Some((t, l))
                    } else {
                        None
                    },
                )
            };
            let train = jigsaw::read_jigsaw_csv(&train_p, cols)?;
            if train.unscored_dropped > 0 {
                notes.push(format!(
                    "{}: {} unscored rows dropped",
                    train_p.display(),
                    train.unscored_dropped
                ));
            }
            let train = jigsaw::jigsaw_set(train, cols);
            let natural = match test_pair {
                Some((t, l)) => {
                    let test = jigsaw::read_jigsaw_test(&t, &l, cols)?;
                    notes.push(format!(
                        "test: {} scored rows of {} ({} unscored, -1, dropped)",
                        test.texts.len(),
                        t.display(),
                        test.unscored_dropped
                    ));
                    Natural::TrainTest(train, jigsaw::jigsaw_set(test, cols))
                }
                None => {
                    if path.is_dir() {
                        notes.push("test.csv / test_labels.csv missing".to_string());
                    }
                    Natural::One(train)
                }
            };
            assemble(kind, path, natural, opts, notes)
        }
        DatasetKind::RottenTomatoes => {
            let (set, r) = rotten::read_rotten_tomatoes(path)?;
            notes.push(format!(
                "{} rows: {} positive, {} negative, {} rated 0 dropped",
                r.rows, r.positives, r.negatives, r.zeros_dropped
            ));
            assemble(kind, path, Natural::One(set), opts, notes)
        }
    }
}
