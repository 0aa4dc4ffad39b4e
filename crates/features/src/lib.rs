//! Deep features, computed once and cached (design §1).
//!
//! A cache folder holds `manifest.json` — what the features are: backbone, weights hash,
//! feature mode, preprocessing, dataset fingerprint, dimension, split sizes — and
//! `shards/<split>-<NNNNN>.safetensors`, each a `features [m, D]` f32 block of consecutive
//! examples with its `labels` (`[m]` i64 classes or `[m, K]` f32 targets). Shards are written
//! atomically, so a shard file that exists is complete: an interrupted extraction resumes at the
//! first missing shard. A cache whose manifest differs from the one asked for is stale: its
//! shards are deleted and rebuilt, never used.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use solver::io::{encode_arrays, read_safetensors, write_atomic, Array};
use solver::{Features, Split, Storage, Targets};

/// Bumped when the shard layout changes, so old caches are rebuilt instead of misread.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error("feature cache {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("feature cache shard {path} is corrupt: {reason}; delete it and rerun to recompute it")]
    Corrupt { path: PathBuf, reason: String },
    #[error("split `{0}` is not in the feature cache manifest")]
    UnknownSplit(String),
    #[error("split `{split}` has {found} labels, the manifest says {expected} examples")]
    LabelCount {
        split: String,
        expected: usize,
        found: usize,
    },
    #[error("extracting {split} examples {start}..{end}: {source}")]
    Extract {
        split: String,
        start: usize,
        end: usize,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("extracting {split} examples {start}..{end}: got {found} values, expected {expected} ({rows} rows × {dim})")]
    WrongSize {
        split: String,
        start: usize,
        end: usize,
        rows: usize,
        dim: usize,
        expected: usize,
        found: usize,
    },
    #[error("split `{split}` is incomplete in the cache: shard {shard} missing")]
    Incomplete { split: String, shard: usize },
    #[error(transparent)]
    Solver(#[from] solver::SolverError),
}

pub type Result<T, E = FeatureError> = std::result::Result<T, E>;

/// Size and label kind of one split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitSpec {
    pub n: usize,
    /// 0 for class labels, K for an `[n, K]` target matrix.
    pub target_columns: usize,
}

/// What a cache holds. Two manifests that differ in any field describe different features.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// Backbone family and id, e.g. `bert sentence-transformers/all-MiniLM-L6-v2`.
    pub backbone: String,
    /// sha256 of the weights file(s).
    pub weights_sha256: String,
    pub feature_mode: String,
    /// Input preprocessing, e.g. `resize 256, center-crop 224, mean …, std …` or `max_len 256`.
    pub preprocessing: String,
    /// Dataset kind, path and options (balance, split seed, subset).
    pub dataset: String,
    /// Content hash of the examples and labels.
    pub dataset_fingerprint: String,
    pub dim: usize,
    pub shard_size: usize,
    /// Precision of the stored features (f32, f16, bf16): half precision halves the cache
    /// and the memory of the features when they are loaded.
    #[serde(default)]
    pub storage: Storage,
    pub splits: BTreeMap<String, SplitSpec>,
}

impl Manifest {
    /// The first field that differs from `other`, for the "rebuilding" message.
    fn first_difference(&self, other: &Manifest) -> &'static str {
        if self.format != other.format {
            "cache format"
        } else if self.backbone != other.backbone {
            "backbone"
        } else if self.weights_sha256 != other.weights_sha256 {
            "weights"
        } else if self.feature_mode != other.feature_mode {
            "feature mode"
        } else if self.preprocessing != other.preprocessing {
            "preprocessing"
        } else if self.dataset != other.dataset || self.dataset_fingerprint != other.dataset_fingerprint {
            "dataset"
        } else if self.dim != other.dim {
            "dimension"
        } else if self.shard_size != other.shard_size {
            "shard size"
        } else if self.storage != other.storage {
            "storage precision"
        } else {
            "splits"
        }
    }
}

/// What opening a cache found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheState {
    /// No cache was there.
    New,
    /// A matching cache; `complete` of `total` shards are already computed.
    Reused { complete: usize, total: usize },
    /// A cache for other features was there and was cleared.
    Rebuilt { reason: String },
}

impl std::fmt::Display for CacheState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheState::New => write!(f, "new feature cache"),
            CacheState::Reused { complete, total } if complete == total => {
                write!(f, "feature cache matches: all {total} shards reused")
            }
            CacheState::Reused { complete, total } => {
                write!(
                    f,
                    "feature cache matches: {complete} of {total} shards done, resuming"
                )
            }
            CacheState::Rebuilt { reason } => write!(f, "stale feature cache ({reason} changed): rebuilding"),
        }
    }
}

/// Seconds between two progress lines of an extraction in a log.
const LOG_EVERY_SECONDS: f64 = 5.0;

/// An open cache folder whose manifest is the one asked for.
#[derive(Debug)]
pub struct FeatureCache {
    dir: PathBuf,
    manifest: Manifest,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> FeatureError + '_ {
    move |source| FeatureError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl FeatureCache {
    /// Open (or create) the cache in `dir` for `manifest`; a different manifest there is replaced
    /// and its shards deleted.
    pub fn open(dir: &Path, manifest: Manifest) -> Result<(Self, CacheState)> {
        let manifest_path = dir.join("manifest.json");
        let shards = dir.join("shards");
        let existing: Option<Manifest> = match std::fs::read(&manifest_path) {
            Ok(bytes) => Some(serde_json::from_slice(&bytes).unwrap_or_else(|_| Manifest {
                format: 0,
                ..manifest.clone()
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&manifest_path)(e)),
        };
        let cache = FeatureCache {
            dir: dir.to_path_buf(),
            manifest,
        };
        let state = match existing {
            Some(old) if old == cache.manifest => {
                let total: usize = cache
                    .manifest
                    .splits
                    .keys()
                    .map(|s| cache.shard_ranges(s).len())
                    .sum();
                let complete: usize = cache
                    .manifest
                    .splits
                    .keys()
                    .map(|s| {
                        (0..cache.shard_ranges(s).len())
                            .filter(|&i| cache.shard_path(s, i).is_file())
                            .count()
                    })
                    .sum();
                CacheState::Reused { complete, total }
            }
            Some(old) => {
                let reason = old.first_difference(&cache.manifest).to_string();
                if shards.exists() {
                    std::fs::remove_dir_all(&shards).map_err(io_err(&shards))?;
                }
                CacheState::Rebuilt { reason }
            }
            None => {
                if shards.exists() {
                    // Shards without a manifest cannot be trusted.
                    std::fs::remove_dir_all(&shards).map_err(io_err(&shards))?;
                }
                CacheState::New
            }
        };
        std::fs::create_dir_all(&shards).map_err(io_err(&shards))?;
        if !matches!(state, CacheState::Reused { .. }) {
            let json = serde_json::to_vec_pretty(&cache.manifest).expect("manifest serializes");
            write_atomic(&manifest_path, &json)?;
        }
        Ok((cache, state))
    }

    /// Open the cache already in `dir` to read it (never clears anything); the caller checks
    /// that its manifest describes the features it expects.
    pub fn open_existing(dir: &Path) -> Result<Self> {
        let manifest_path = dir.join("manifest.json");
        let bytes = std::fs::read(&manifest_path).map_err(io_err(&manifest_path))?;
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| FeatureError::Corrupt {
            path: manifest_path.clone(),
            reason: e.to_string(),
        })?;
        if manifest.format != FORMAT_VERSION {
            return Err(FeatureError::Corrupt {
                path: manifest_path,
                reason: format!(
                    "cache format {} (this build reads {FORMAT_VERSION})",
                    manifest.format
                ),
            });
        }
        Ok(FeatureCache {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn spec(&self, split: &str) -> Result<&SplitSpec> {
        self.manifest
            .splits
            .get(split)
            .ok_or_else(|| FeatureError::UnknownSplit(split.into()))
    }

    /// Example ranges of the shards of `split`, in order.
    pub fn shard_ranges(&self, split: &str) -> Vec<Range<usize>> {
        let n = self.manifest.splits.get(split).map_or(0, |s| s.n);
        let size = self.manifest.shard_size.max(1);
        (0..n.div_ceil(size))
            .map(|i| i * size..((i + 1) * size).min(n))
            .collect()
    }

    pub fn shard_path(&self, split: &str, index: usize) -> PathBuf {
        self.dir
            .join("shards")
            .join(format!("{split}-{index:05}.safetensors"))
    }

    /// Whether every shard of `split` is on disk.
    pub fn is_complete(&self, split: &str) -> bool {
        (0..self.shard_ranges(split).len()).all(|i| self.shard_path(split, i).is_file())
    }

    /// Compute the missing shards of `split`. `compute(range)` returns the features of those
    /// examples, row-major `[range.len(), dim]`; `targets` are all of the split's labels.
    /// Returns the number of examples computed now (0 when the split was complete).
    pub fn extract<E>(
        &self,
        split: &str,
        targets: &Targets,
        progress: bool,
        mut compute: impl FnMut(Range<usize>) -> std::result::Result<Vec<f32>, E>,
    ) -> Result<usize>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let spec = self.spec(split)?.clone();
        if targets.len() != spec.n {
            return Err(FeatureError::LabelCount {
                split: split.into(),
                expected: spec.n,
                found: targets.len(),
            });
        }
        let ranges = self.shard_ranges(split);
        let missing: Vec<usize> = (0..ranges.len())
            .filter(|&i| !self.shard_path(split, i).is_file())
            .collect();
        if missing.is_empty() {
            return Ok(0);
        }
        let todo: usize = missing.iter().map(|&i| ranges[i].len()).sum();
        // A bar on a terminal; in a log (stderr redirected), a line every few seconds.
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let log_lines = progress && !terminal;
        let started = std::time::Instant::now();
        let mut last_line = started;
        let mut done = spec.n - todo;
        let bar = if progress && terminal {
            let bar = ProgressBar::with_draw_target(Some(spec.n as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:>16} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
                )
                .expect("valid template"),
            );
            bar.set_message(format!("features {split}"));
            bar.set_position((spec.n - todo) as u64);
            bar.reset_eta();
            bar
        } else {
            ProgressBar::hidden()
        };
        let dim = self.manifest.dim;
        for i in missing {
            let range = ranges[i].clone();
            let rows = range.len();
            let values = compute(range.clone()).map_err(|e| FeatureError::Extract {
                split: split.into(),
                start: range.start,
                end: range.end,
                source: e.into(),
            })?;
            if values.len() != rows * dim {
                return Err(FeatureError::WrongSize {
                    split: split.into(),
                    start: range.start,
                    end: range.end,
                    rows,
                    dim,
                    expected: rows * dim,
                    found: values.len(),
                });
            }
            let features = match self.manifest.storage {
                Storage::F32 => Array::Float {
                    shape: vec![rows, dim],
                    data: values,
                },
                storage => Array::Half {
                    shape: vec![rows, dim],
                    data: Features::F32(values).into_storage(storage),
                },
            };
            let labels = match targets {
                Targets::Classes(c) => Array::Int {
                    shape: vec![rows],
                    data: c[range.clone()].to_vec(),
                },
                Targets::Dense { values, k } => Array::Float {
                    shape: vec![rows, *k],
                    data: values[range.start * k..range.end * k].to_vec(),
                },
            };
            let meta = [("first_example".to_string(), range.start.to_string())]
                .into_iter()
                .collect();
            let bytes = encode_arrays(&[("features", &features), ("labels", &labels)], Some(meta))?;
            write_atomic(&self.shard_path(split, i), &bytes)?;
            bar.inc(rows as u64);
            done += rows;
            if log_lines && (last_line.elapsed().as_secs_f64() >= LOG_EVERY_SECONDS || done == spec.n) {
                last_line = std::time::Instant::now();
                let seconds = started.elapsed().as_secs_f64();
                eprintln!(
                    "features {split}: {done}/{} examples ({:.1}/s, {seconds:.0} s)",
                    spec.n,
                    (done - (spec.n - todo)) as f64 / seconds.max(1e-9)
                );
            }
        }
        bar.finish_and_clear();
        Ok(todo)
    }

    /// All features and labels of a complete split, as the solver takes them.
    pub fn load(&self, split: &str) -> Result<Split> {
        self.load_split(split, false)
    }

    /// [`FeatureCache::load`] with the features left in their shards and read by rows while
    /// the path runs (`--stream disk`: [`solver::filerows::FileRows`] over the shard files one
    /// after another); only the labels are read into memory.
    pub fn load_streamed(&self, split: &str) -> Result<Split> {
        self.load_split(split, true)
    }

    fn load_split(&self, split: &str, streamed: bool) -> Result<Split> {
        let spec = self.spec(split)?.clone();
        let dim = self.manifest.dim;
        let mut x = Features::F32(Vec::new()).into_storage(self.manifest.storage);
        let mut files = Vec::new();
        let mut classes = Vec::new();
        let mut dense = Vec::new();
        for (i, range) in self.shard_ranges(split).into_iter().enumerate() {
            let path = self.shard_path(split, i);
            if !path.is_file() {
                return Err(FeatureError::Incomplete {
                    split: split.into(),
                    shard: i,
                });
            }
            let corrupt = |reason: String| FeatureError::Corrupt {
                path: path.clone(),
                reason,
            };
            let labels = if streamed {
                let rows = solver::filerows::FileRows::open_safetensors(&path, "features")?;
                if (rows.rows(), rows.cols()) != (range.len(), dim) {
                    return Err(corrupt(format!(
                        "features have shape [{}, {}], expected [{}, {dim}]",
                        rows.rows(),
                        rows.cols(),
                        range.len()
                    )));
                }
                files.push(rows);
                solver::io::read_safetensors_tensor(&path, "labels")
                    .map_err(|_| corrupt("no readable `labels` tensor".into()))?
            } else {
                let (mut tensors, _) = read_safetensors(&path)?;
                match tensors.remove("features") {
                    Some(Array::Float { shape, data }) if shape == [range.len(), dim] => {
                        x.append(Features::F32(data))
                    }
                    Some(Array::Half { shape, data }) if shape == [range.len(), dim] => x.append(data),
                    Some(a) => {
                        return Err(corrupt(format!(
                            "features have shape {:?}, expected [{}, {dim}]",
                            a.shape(),
                            range.len()
                        )))
                    }
                    None => return Err(corrupt("no `features` tensor".into())),
                }
                tensors
                    .remove("labels")
                    .ok_or_else(|| corrupt("no `labels` tensor".into()))?
            };
            match (labels, spec.target_columns) {
                (Array::Int { shape, data }, 0) if shape == [range.len()] => classes.extend(data),
                (Array::Float { shape, data }, k) if k > 0 && shape == [range.len(), k] => dense.extend(data),
                (a, _) => return Err(corrupt(format!("labels have shape {:?}", a.shape()))),
            }
        }
        if streamed {
            x = Features::File(solver::filerows::FileRows::concat(files)?);
        }
        let targets = if spec.target_columns == 0 {
            Targets::Classes(classes)
        } else {
            Targets::Dense {
                values: dense,
                k: spec.target_columns,
            }
        };
        Ok(Split::new(split, x, spec.n, dim, targets)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(n_train: usize, dim: usize) -> Manifest {
        Manifest {
            format: FORMAT_VERSION,
            backbone: "test".into(),
            weights_sha256: "abc".into(),
            feature_mode: "cls".into(),
            preprocessing: "none".into(),
            dataset: "synthetic".into(),
            dataset_fingerprint: "f".into(),
            dim,
            shard_size: 4,
            storage: Storage::F32,
            splits: [(
                "train".to_string(),
                SplitSpec {
                    n: n_train,
                    target_columns: 0,
                },
            )]
            .into_iter()
            .collect(),
        }
    }

    fn row(i: usize, dim: usize) -> Vec<f32> {
        (0..dim).map(|j| (i * 10 + j) as f32).collect()
    }

    fn compute(range: Range<usize>) -> std::result::Result<Vec<f32>, std::io::Error> {
        Ok(range.flat_map(|i| row(i, 3)).collect())
    }

    #[test]
    fn extracts_resumes_and_loads_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let labels = Targets::Classes((0..10).map(|i| i % 2).collect());
        let (cache, state) = FeatureCache::open(dir.path(), manifest(10, 3)).unwrap();
        assert_eq!(state, CacheState::New);
        // Interrupted after the first shard: the callback fails on the second.
        let mut calls = 0;
        let err = cache
            .extract("train", &labels, false, |r| {
                calls += 1;
                if calls == 2 {
                    Err(std::io::Error::other("killed"))
                } else {
                    compute(r)
                }
            })
            .unwrap_err();
        assert!(err.to_string().contains("examples 4..8"), "{err}");
        assert!(!cache.is_complete("train"));
        assert!(matches!(
            cache.load("train"),
            Err(FeatureError::Incomplete { shard: 1, .. })
        ));

        let (cache, state) = FeatureCache::open(dir.path(), manifest(10, 3)).unwrap();
        assert_eq!(
            state,
            CacheState::Reused {
                complete: 1,
                total: 3
            }
        );
        let mut seen = Vec::new();
        let done = cache
            .extract("train", &labels, false, |r| {
                seen.push(r.clone());
                compute(r)
            })
            .unwrap();
        assert_eq!(done, 6);
        assert_eq!(seen, vec![4..8, 8..10], "only missing shards are recomputed");
        let split = cache.load("train").unwrap();
        assert_eq!(split.x, Features::F32((0..10).flat_map(|i| row(i, 3)).collect()));
        assert_eq!(split.targets, labels);
        assert_eq!(cache.extract("train", &labels, false, compute).unwrap(), 0);
    }

    #[test]
    fn half_precision_cache_stores_and_loads_half_values() {
        let dir = tempfile::tempdir().unwrap();
        let labels = Targets::Classes((0..10).map(|i| i % 2).collect());
        let mut half = manifest(10, 3);
        half.storage = Storage::F16;
        let (cache, _) = FeatureCache::open(dir.path(), half.clone()).unwrap();
        let fractional =
            |r: Range<usize>| compute(r).map(|v| v.iter().map(|x| x + 0.1).collect::<Vec<f32>>());
        cache.extract("train", &labels, false, fractional).unwrap();
        let split = cache.load("train").unwrap();
        let exact: Vec<f32> = fractional(0..10).unwrap();
        assert_eq!(split.x, Features::F32(exact).into_storage(Storage::F16));
        // Shards take 2 bytes a value.
        let (tensors, _) = read_safetensors(&cache.shard_path("train", 0)).unwrap();
        assert!(matches!(tensors["features"], Array::Half { .. }));
        // Asking for f32 rebuilds the cache.
        let (_, state) = FeatureCache::open(dir.path(), manifest(10, 3)).unwrap();
        assert_eq!(
            state,
            CacheState::Rebuilt {
                reason: "storage precision".into()
            }
        );
    }

    #[test]
    fn open_existing_reads_without_clearing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            FeatureCache::open_existing(dir.path()),
            Err(FeatureError::Io { .. })
        ));
        let labels = Targets::Classes(vec![1; 10]);
        let (cache, _) = FeatureCache::open(dir.path(), manifest(10, 3)).unwrap();
        cache.extract("train", &labels, false, compute).unwrap();
        let read = FeatureCache::open_existing(dir.path()).unwrap();
        assert_eq!(read.manifest(), &manifest(10, 3));
        assert_eq!(read.load("train").unwrap().x, cache.load("train").unwrap().x);
        std::fs::write(dir.path().join("manifest.json"), b"{").unwrap();
        assert!(matches!(
            FeatureCache::open_existing(dir.path()),
            Err(FeatureError::Corrupt { .. })
        ));
        assert!(cache.is_complete("train"), "nothing was deleted");
    }

    #[test]
    fn a_different_manifest_rebuilds() {
        let dir = tempfile::tempdir().unwrap();
        let labels = Targets::Classes(vec![0; 10]);
        let (cache, _) = FeatureCache::open(dir.path(), manifest(10, 3)).unwrap();
        cache.extract("train", &labels, false, compute).unwrap();
        let mut other = manifest(10, 3);
        other.weights_sha256 = "def".into();
        let (cache, state) = FeatureCache::open(dir.path(), other).unwrap();
        assert_eq!(
            state,
            CacheState::Rebuilt {
                reason: "weights".into()
            }
        );
        assert!(!cache.is_complete("train"));
    }

    #[test]
    fn wrong_sizes_and_labels_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (cache, _) = FeatureCache::open(dir.path(), manifest(10, 3)).unwrap();
        let labels = Targets::Classes(vec![0; 9]);
        assert!(matches!(
            cache.extract("train", &labels, false, compute),
            Err(FeatureError::LabelCount {
                expected: 10,
                found: 9,
                ..
            })
        ));
        let labels = Targets::Classes(vec![0; 10]);
        let short =
            |r: Range<usize>| -> std::result::Result<Vec<f32>, std::io::Error> { Ok(vec![0.0; r.len()]) };
        assert!(matches!(
            cache.extract("train", &labels, false, short),
            Err(FeatureError::WrongSize { .. })
        ));
        assert!(matches!(cache.load("val"), Err(FeatureError::UnknownSplit(_))));
        // A truncated shard is reported as corrupt, not misread.
        cache.extract("train", &labels, false, compute).unwrap();
        let shard = cache.shard_path("train", 0);
        let bytes = std::fs::read(&shard).unwrap();
        std::fs::write(&shard, &bytes[..bytes.len() / 2]).unwrap();
        let err = cache.load("train").unwrap_err();
        assert!(err.to_string().contains("train-00000"), "{err}");
    }
}
