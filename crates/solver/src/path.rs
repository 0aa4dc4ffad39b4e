//! The regularization path: λ_max, the λ grid, warm-started SAGA per λ with its stopping rules,
//! a record per λ, and a checkpoint after every λ so an interrupted path resumes after its last
//! complete λ and ends exactly where an uninterrupted run would (same seed, CPU backends).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::{Device, IndexingUpdateOp, Int, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::{Family, PathConfig, StepSize};
use crate::data::{Problem, Split, Standardizer, Targets};
use crate::engine::{self, DeviceSplit, EpochPlan, FullGradient, SagaState, Step};
use crate::error::{Result, SolverError};
use crate::host::PairSet;
use crate::io::{self, Array, Layer};
use crate::memory::{self, MemoryPlan};

/// Why the SAGA loop of one λ ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Relative weight change over an epoch below tol.
    Tol,
    /// The epoch objective did not improve for `lookbehind` consecutive epochs.
    Lookbehind,
    /// The objective gap estimated from the epoch objectives' decrease fell below `gap_tol`.
    Gap,
    MaxEpochs,
}

/// Loss and score of a layer on one split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitMetrics {
    pub loss: f64,
    /// Accuracy (multinomial), mean per-label accuracy (multilabel), absent for gaussian.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub accuracy: Option<f64>,
    /// Coefficient of determination (gaussian only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub r2: Option<f64>,
}

impl SplitMetrics {
    fn new(family: Family, e: engine::Evaluation) -> Self {
        match family {
            Family::Gaussian => SplitMetrics {
                loss: e.loss,
                accuracy: None,
                r2: Some(e.score),
            },
            _ => SplitMetrics {
                loss: e.loss,
                accuracy: Some(e.score),
                r2: None,
            },
        }
    }
    /// The number selection compares: accuracy, or R² for gaussian.
    pub fn score(&self) -> f64 {
        self.accuracy.or(self.r2).unwrap_or(f64::NAN)
    }
}

/// Everything measured at one λ of the path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LambdaRecord {
    pub index: usize,
    pub lambda: f64,
    pub lr: f64,
    pub epochs: usize,
    pub seconds: f64,
    pub stop: StopReason,
    /// Exact training objective `F(W, b)` at the end of this λ (f64 sums).
    pub objective: f64,
    /// Largest KKT violation (design §2), including |∂F/∂b|.
    pub kkt: f64,
    pub train: SplitMetrics,
    pub val: Option<SplitMetrics>,
    pub test: Option<SplitMetrics>,
    /// Exact nonzero weights (the proximal step produces exact zeros).
    pub nnz: usize,
    pub nnz_per_class: Vec<usize>,
    /// Features used by at least one class.
    pub features_used: usize,
    /// Which run computed this λ: 0 for the first, incremented by each resume.
    pub session: u32,
    /// Features SAGA ran on at this λ after screening (d when it ran on all of them).
    #[serde(default)]
    pub active_features: usize,
    /// The (feature, class) weights SAGA ran on, when the λ was screened by pair
    /// ([`PathConfig::screen_pairs`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_pairs: Option<usize>,
}

/// A finished (or, while running, partial) path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathResult {
    pub family: Family,
    pub config: PathConfig,
    pub lambda_max: f64,
    pub lambdas: Vec<f64>,
    /// The step size before decay (`--lr auto` resolved).
    pub base_lr: f64,
    pub n_train: usize,
    pub d: usize,
    pub k: usize,
    /// Features whose training std was clamped (constant features).
    pub clamped_features: Vec<usize>,
    pub records: Vec<LambdaRecord>,
    /// What the solver planned to hold (printed at the start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryPlan>,
    /// The process's peak resident memory at the end of the path, in bytes (Linux).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss: Option<u64>,
    /// Why the path ended before its last λ (an end rule of [`RunOptions`]), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_early: Option<String>,
    /// Wall seconds of this session's path (from the data's upload to its last λ), and of
    /// writing the layer files and checkpoints within it.
    #[serde(default)]
    pub path_seconds: f64,
    #[serde(default)]
    pub write_seconds: f64,
    /// Layers of every λ, in path order, when requested with [`RunOptions::keep_layers`].
    #[serde(skip)]
    pub layers: Vec<Layer>,
}

/// Where and how to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Output folder: every λ's layer goes to `layers/lambda_XXX.safetensors` and the
    /// checkpoint to `checkpoint.safetensors`. None: nothing is written.
    pub out_dir: Option<PathBuf>,
    /// Continue after the last complete λ of the checkpoint in `out_dir`, if there is one.
    pub resume: bool,
    /// Keep every layer in memory in [`PathResult::layers`].
    pub keep_layers: bool,
    /// Draw a progress bar per λ on stderr (hidden when stderr is not a terminal).
    pub progress: bool,
    /// Print one summary line per λ on stderr.
    pub verbose: bool,
    /// Stop after this many λ of the path (benchmarks of the path's head); None: all.
    pub stop_after: Option<usize>,
    /// End the path after the first λ whose layer uses at least this many nonzero weights
    /// per class on average (ImageNet users stop near 20; VLG-CBM patches glm_saga for it).
    pub max_features_per_class: Option<f64>,
    /// End the path after the first λ whose validation score reaches this (e.g. the
    /// backbone's own head's accuracy minus the selection threshold): the sparsest layer in
    /// the band is then the last one computed.
    pub stop_at_val_score: Option<f64>,
    /// Keep X in host memory and move it to the device a block at a time (batches, chunks of
    /// full passes, the screened columns): a GPU then holds only the table, W and the blocks
    /// in flight. The path is the same bit for bit. Half-precision features are always held
    /// this way.
    pub host_rows: bool,
    /// Calls into the embedding program (the Python package): interruption and per-λ reports.
    pub hooks: Hooks,
}

/// A check the solver calls after every epoch: true ends the path with
/// [`SolverError::Interrupted`] (Python's Ctrl-C reaches a solve this way).
pub type InterruptCheck = Arc<dyn Fn() -> bool + Send + Sync>;

/// Called after each λ is solved with its record and the path's λ count.
pub type LambdaReport = Arc<dyn Fn(&LambdaRecord, usize) + Send + Sync>;

/// The embedding program's calls, none by default.
#[derive(Clone, Default)]
pub struct Hooks {
    pub interrupted: Option<InterruptCheck>,
    pub on_lambda: Option<LambdaReport>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("interrupted", &self.interrupted.is_some())
            .field("on_lambda", &self.on_lambda.is_some())
            .finish()
    }
}

impl RunOptions {
    /// Reject end rules that cannot mean anything.
    pub fn validate(&self) -> Result<()> {
        if let Some(f) = self.max_features_per_class {
            if !(f > 0.0 && f.is_finite()) {
                return Err(SolverError::Config(format!(
                    "max features per class must be a positive number, got {f}"
                )));
            }
        }
        if let Some(v) = self.stop_at_val_score {
            if !v.is_finite() {
                return Err(SolverError::Config(format!(
                    "the validation score to stop at must be finite, got {v}"
                )));
            }
        }
        Ok(())
    }

    /// Why the path ends after `record` (an end rule was met), if it does.
    pub fn early_end(&self, record: &LambdaRecord, k: usize) -> Option<String> {
        let per_class = record.nnz as f64 / k.max(1) as f64;
        if let Some(max) = self.max_features_per_class.filter(|&m| per_class >= m) {
            return Some(format!(
                "{per_class:.1} nonzero weights per class reach --max-features-per-class {max}"
            ));
        }
        let val = record.val.map(|v| v.score());
        if let (Some(target), Some(v)) = (self.stop_at_val_score, val) {
            if v >= target {
                return Some(format!("validation score {v:.4} reaches {target:.4}"));
            }
        }
        None
    }
}

/// File name of λ #i's layer inside `out_dir/layers`.
pub fn layer_file(out_dir: &Path, index: usize) -> PathBuf {
    out_dir
        .join("layers")
        .join(format!("lambda_{index:03}.safetensors"))
}

pub fn checkpoint_file(out_dir: &Path) -> PathBuf {
    out_dir.join("checkpoint.safetensors")
}

/// A cheap, stable fingerprint of the data and configuration, so a checkpoint is only resumed
/// on the problem it was written for.
fn fingerprint(problem: &Problem, config: &PathConfig) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |v: u64| {
        h ^= v;
        h = h.wrapping_mul(0x0000_0100_0000_01b3).rotate_left(23);
    };
    let json = serde_json::to_string(config).unwrap_or_default();
    json.bytes().for_each(|b| mix(b as u64));
    for s in [Some(&problem.train), problem.val.as_ref(), problem.test.as_ref()]
        .into_iter()
        .flatten()
    {
        mix(s.n as u64);
        mix(s.d as u64);
        s.x.for_each_bits(&mut mix);
        match &s.targets {
            Targets::Classes(labels) => labels.iter().for_each(|&l| mix(l as u64)),
            Targets::Dense { values, .. } => values.iter().for_each(|v| mix(v.to_bits() as u64)),
        }
        if let Some(w) = &s.weights {
            w.iter().for_each(|v| mix(v.to_bits() as u64));
        }
    }
    mix(problem.k as u64);
    format!("{h:016x}")
}

fn read_tensor(device: &Device, data: Vec<f32>, shape: [usize; 2]) -> Tensor<2> {
    Tensor::<2>::from_data(TensorData::new(data, shape), device)
}

fn host(t: &Tensor<2>) -> Vec<f32> {
    t.clone().try_into_vec_as::<f32>().expect("f32 tensor")
}

/// State saved after a complete λ: the layer, not the n×K SAGA table, which every λ refills
/// at its start from the layer ([`SagaState::refill`]), so a resumed path refills the same
/// bits. The file is the size of two layers (16 MB at ImageNet's 2,048 × 1,000), not 5 GB.
struct Checkpoint {
    completed: usize,
    /// `wt [d, K]`, `b [1, K]`.
    state: (Vec<f32>, Vec<f32>),
    /// The solution before the last one (`wt [d, K]`, `b [1, K]`), for the extrapolated start.
    previous: Option<(Vec<f32>, Vec<f32>)>,
    /// The step multiplier reached (see [`AUTO_STEP_BOOST`]).
    boost: f64,
    records: Vec<LambdaRecord>,
    /// [`io::content_hash`] of each completed λ's layer file, so a resume notices one deleted
    /// or overwritten since (absent in checkpoints written before the hashes were kept).
    layer_hashes: Option<Vec<String>>,
}

#[allow(clippy::too_many_arguments)]
fn save_checkpoint(
    path: &Path,
    fp: &str,
    state: &SagaState,
    previous: Option<&(Tensor<2>, Tensor<2>)>,
    boost: f64,
    dims: (usize, usize),
    result: &PathResult,
    layer_hashes: &[String],
) -> Result<()> {
    let (d, k) = dims;
    let (wt, b) = (host(&state.wt), host(&state.b));
    let mut meta = HashMap::new();
    meta.insert(
        "layer_hashes".to_string(),
        serde_json::to_string(layer_hashes).expect("hashes serialize"),
    );
    meta.insert("fingerprint".to_string(), fp.to_string());
    meta.insert("completed".to_string(), result.records.len().to_string());
    meta.insert("boost".to_string(), format!("{boost:e}"));
    meta.insert(
        "records".to_string(),
        serde_json::to_string(&result.records).expect("records serialize"),
    );
    let previous = previous.map(|(w, b)| (host(w), host(b)));
    let mut tensors = vec![("wt", vec![d, k], &wt[..]), ("b", vec![1, k], &b[..])];
    if let Some((w, b)) = &previous {
        tensors.push(("wt_prev", vec![d, k], &w[..]));
        tensors.push(("b_prev", vec![1, k], &b[..]));
    }
    let bytes = io::encode_safetensors(&tensors, Some(meta))?;
    io::write_atomic(path, &bytes)
}

fn load_checkpoint(path: &Path, fp: &str, dims: (usize, usize)) -> Result<Option<Checkpoint>> {
    if !path.exists() {
        return Ok(None);
    }
    let (mut t, meta) = io::read_safetensors(path)?;
    let mismatch = |reason: String| SolverError::CheckpointMismatch {
        path: path.into(),
        reason,
    };
    if meta.get("fingerprint").map(String::as_str) != Some(fp) {
        return Err(mismatch(
            "its data or configuration fingerprint differs (remove the folder or drop --resume)".into(),
        ));
    }
    let completed: usize = meta
        .get("completed")
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| mismatch("no completed-λ count".into()))?;
    let records: Vec<LambdaRecord> = meta
        .get("records")
        .and_then(|r| serde_json::from_str(r).ok())
        .ok_or_else(|| mismatch("unreadable records".into()))?;
    let (d, k) = dims;
    let has_previous = t.contains_key("wt_prev");
    let mut take = |name: &str, len: usize| -> Result<Vec<f32>> {
        match t.remove(name) {
            Some(Array::Float { data, .. }) if data.len() == len => Ok(data),
            _ => Err(mismatch(format!("tensor '{name}' missing or of the wrong size"))),
        }
    };
    let state = (take("wt", d * k)?, take("b", k)?);
    let previous = if has_previous {
        Some((take("wt_prev", d * k)?, take("b_prev", k)?))
    } else {
        None
    };
    let boost: f64 = meta
        .get("boost")
        .and_then(|b| b.parse().ok())
        .ok_or_else(|| mismatch("no step multiplier ('boost')".into()))?;
    let layer_hashes = match meta.get("layer_hashes") {
        Some(h) => Some(serde_json::from_str(h).map_err(|_| mismatch("unreadable layer hashes".into()))?),
        None => None,
    };
    Ok(Some(Checkpoint {
        completed,
        state,
        previous,
        boost,
        records,
        layer_hashes,
    }))
}

/// Read a checkpoint as a resume would (`fingerprint` and `dims` = (d, K) of the problem it
/// must belong to): the number of completed λs, none when there is no file, an error for a
/// checkpoint that is not this problem's or not readable. Public for the hostile-input suite.
pub fn read_checkpoint(path: &Path, fingerprint: &str, dims: (usize, usize)) -> Result<Option<usize>> {
    Ok(load_checkpoint(path, fingerprint, dims)?.map(|c| c.completed))
}

/// An error when a completed λ's layer file is missing or differs from the one the checkpoint
/// recorded: a resumed path would report a layer it no longer has.
fn check_layer_files(out: &Path, checkpoint: &Path, hashes: &[String]) -> Result<()> {
    for (index, expected) in hashes.iter().enumerate() {
        let file = layer_file(out, index);
        let found = std::fs::read(&file).ok().map(|b| io::content_hash(&b));
        if found.as_deref() != Some(expected.as_str()) {
            return Err(SolverError::CheckpointStale {
                path: checkpoint.into(),
                reason: format!(
                    "{} is {} since the checkpoint",
                    file.display(),
                    if found.is_none() { "missing" } else { "changed" }
                ),
            });
        }
    }
    Ok(())
}

/// Remove the layer files from `first` on: left by an earlier path in the same folder (a
/// longer `--k`, or a run that was not resumed), they would sit beside this path's records.
fn remove_layer_files_from(out: &Path, first: usize) -> Result<()> {
    let dir = out.join("layers");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let index = name
            .to_str()
            .and_then(|n| n.strip_prefix("lambda_"))
            .and_then(|n| n.strip_suffix(".safetensors"))
            .and_then(|n| n.parse::<usize>().ok());
        if index.is_some_and(|i| i >= first) {
            std::fs::remove_file(entry.path()).map_err(|e| SolverError::write(entry.path(), e))?;
        }
    }
    Ok(())
}

/// Along a path, `--lr auto` raises the data's smoothness step `1/(3L(b))` up to this
/// multiple. That step bounds the loss curvature by its global maximum (1/2 for softmax): about
/// right at the head of the path, where predictions are uncertain, and far above the curvature
/// once the layer predicts confidently. Measured on the `w2` benchmark at λ #90: 1× took 178
/// epochs to the tolerance, 12× 65 epochs to a lower objective, 24× drifted away within 250
/// epochs. So the multiplier doubles after every λ solved without instability, and halves
/// (restarting the λ) when an epoch shows it, down to 1×, the step the theory covers. On `w2`
/// the first 30 λ end at 2–4× and the rest at 8×; on `w3` (100 classes) 8× from λ #3 on.
pub const AUTO_STEP_BOOST: f64 = 8.0;

/// How one SAGA run at one λ ended.
enum Outcome {
    Done(SagaState, usize, StopReason),
    /// The boosted step showed instability after this many epochs.
    Unstable(usize),
    /// The boosted step stopped improving the epoch objective (the lookbehind rule): its
    /// noise hides the progress left; the state after this many epochs is worth keeping.
    Plateau(SagaState, usize),
}

/// Run SAGA at one λ from the given state until a stopping rule fires. With `guard` (a step
/// above the theory's), an epoch objective that is not finite or rises more than 0.1% above
/// the best so far ends the run as [`Outcome::Unstable`], and a lookbehind stop as
/// [`Outcome::Plateau`].
fn solve_lambda(
    train: &DeviceSplit,
    mut state: SagaState,
    step: Step,
    config: &PathConfig,
    seed: u64,
    bar: &EpochProgress,
    guard: bool,
) -> Result<Outcome> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    state.refresh_average(train);
    let mut best = f64::INFINITY;
    let mut since_best = 0usize;
    let mut gap_rule = GapEstimate::default();
    for epoch in 1..=config.max_epochs {
        if config.refresh_every > 0 && epoch > 1 && (epoch - 1) % config.refresh_every == 0 {
            state.refresh_average(train);
        }
        let plan = EpochPlan::random(train.n, config.batch_size, &mut rng);
        let (next, summary) = engine::saga_epoch(train, state, &plan, step);
        state = next;
        bar.epoch(epoch, summary.objective, summary.rel_change);
        if bar.interrupted() {
            return Err(SolverError::Interrupted { index: 0 });
        }
        let rising = summary.objective > best + 1e-3 * best.abs();
        if guard && (!summary.objective.is_finite() || rising) {
            return Ok(Outcome::Unstable(epoch));
        }
        if !summary.objective.is_finite() {
            return Err(SolverError::Diverged {
                index: 0,
                lambda: step.lambda,
                lr: step.lr,
                objective: summary.objective,
            });
        }
        if summary.rel_change <= config.tol {
            return Ok(Outcome::Done(state, epoch, StopReason::Tol));
        }
        let gap = gap_rule.push(summary.objective);
        if config.gap_tol > 0.0 && gap.is_some_and(|g| g <= config.gap_tol * summary.objective.abs()) {
            return Ok(Outcome::Done(state, epoch, StopReason::Gap));
        }
        // Lookbehind: the epoch objective has stopped improving at all (a plateau at the
        // precision of f32 arithmetic, where the weight change may never fall below tol).
        if summary.objective < best {
            best = summary.objective;
            since_best = 0;
        } else {
            since_best += 1;
            if config.lookbehind > 0 && since_best >= config.lookbehind {
                if guard {
                    return Ok(Outcome::Plateau(state, epoch));
                }
                return Ok(Outcome::Done(state, epoch, StopReason::Lookbehind));
            }
        }
    }
    Ok(Outcome::Done(state, config.max_epochs, StopReason::MaxEpochs))
}

/// The objective gap `F_t − F*` estimated from the last epoch objectives (see
/// [`PathConfig::gap_tol`]): `δ_t ρ / (1 − ρ)` with δ the decreases of the last three epochs
/// and ρ the larger of their two ratios; none while an epoch did not decrease or the decrease
/// did not shrink.
#[derive(Default)]
struct GapEstimate {
    /// The last four epoch objectives, newest last.
    objectives: Vec<f64>,
}

impl GapEstimate {
    fn push(&mut self, objective: f64) -> Option<f64> {
        if self.objectives.len() == 4 {
            self.objectives.remove(0);
        }
        self.objectives.push(objective);
        let [a, b, c, d] = self.objectives[..] else {
            return None;
        };
        let (d1, d2, d3) = (a - b, b - c, c - d);
        if !(d1 > 0.0 && d2 > 0.0 && d3 > 0.0) {
            return None;
        }
        let rho = (d3 / d2).max(d2 / d1);
        (rho < 1.0).then(|| d3 * rho / (1.0 - rho))
    }
}

/// [`solve_lambda`] at `step.lr × boost`; when the boosted step proves unstable, `boost`
/// halves (the caller keeps it for the next λ) and the λ restarts from the layer of `state`
/// with the table refilled there (exactly the table a λ starts with, so keeping a copy of the
/// n×K table for a restart is not needed); when it
/// reaches a plateau, the step halves for this λ and SAGA goes on from where it got (a
/// smaller step averages out the noise that hid the remaining progress from the lookbehind
/// rule).
/// Returns the state, the epochs of every try, the stop reason and the step finally used.
fn solve_boosted(
    train: &DeviceSplit,
    mut state: SagaState,
    step: Step,
    boost: &mut f64,
    config: &PathConfig,
    seed: u64,
    bar: &EpochProgress,
) -> Result<(SagaState, usize, StopReason, f64)> {
    let mut spent = 0;
    // The multiplier of this try: a plateau lowers it for the rest of this λ only, an
    // instability for the path (through `boost`).
    let mut local = *boost;
    loop {
        let guard = local > 1.0;
        let trial = Step {
            lr: step.lr * local,
            ..step
        };
        // The layer of the try's start, kept only while a restart is possible (a clone of
        // the table would make the epoch's in-place table update copy it: n×K twice).
        let start = guard.then(|| (state.wt.clone(), state.b.clone()));
        match solve_lambda(train, state, trial, config, seed, bar, guard)? {
            Outcome::Done(state, epochs, stop) => return Ok((state, spent + epochs, stop, trial.lr)),
            Outcome::Unstable(epochs) => {
                spent += epochs;
                *boost = (local / 2.0).max(1.0);
                local = *boost;
                let (wt, b) = start.expect("a guarded try keeps its start");
                state = SagaState::at(train, step.family, wt, b).0;
            }
            Outcome::Plateau(reached, epochs) => {
                spent += epochs;
                local = (local / 2.0).max(1.0);
                state = reached;
            }
        }
    }
}

/// One λ solved: the state, the epochs it took (all screening rounds), why the last round
/// stopped, the full gradient at the final state when the screening computed it (the record's
/// KKT violation and the next λ's strong rule use it; the state's table is then the exact one
/// at the final layer) and the number of features SAGA ran on.
struct Solved {
    state: SagaState,
    epochs: usize,
    stop: StopReason,
    grad: Option<FullGradient>,
    active: usize,
    /// The (feature, class) weights SAGA ran on, when screened by pair.
    pairs: Option<usize>,
    /// The step of the last SAGA run (the boosted one when `--lr auto`).
    lr: f64,
}

/// Screening rounds (strong set, then the features the KKT check adds) before a λ falls back
/// to SAGA on every feature.
const SCREEN_ROUNDS: u64 = 8;

/// Screening by (feature, class) pair applies from this many outputs (K): below it a
/// feature's K weights are few and the dense epoch's GEMMs cost little.
pub const PAIR_SCREEN_MIN_OUTPUTS: usize = 100;

/// A screened problem runs on its pairs when they are at most this fraction of its `m × K`
/// weights: per row the pair epoch does `2·P` scattered multiply-adds where the dense epoch
/// does `2·m·K` in GEMMs, at a far higher rate. Measured by `fit floor --active M
/// --pairs-per-feature P` on `w4` (K = 1,000; dense epoch vs pair epoch): M = 600 5.14 vs
/// 0.68 s at 4 pairs per feature, 5.34 vs 3.23 s at 32, 5.35 vs 10.51 s at 125 (break-even
/// near 6%); M = 64 0.81 vs 0.28 s at 4; M = 16 (host epoch) 0.47 vs 0.25 s at 2.
pub const PAIR_SCREEN_MAX_DENSITY: f64 = 0.05;

/// The weights a λ's screening keeps: whole features, or (feature, class) pairs.
enum Kept {
    Features(Vec<bool>),
    /// `[d, K]` row-major.
    Pairs(Vec<bool>),
}

impl Kept {
    /// Features with at least one kept weight.
    fn features(&self, d: usize, k: usize) -> Vec<usize> {
        match self {
            Kept::Features(f) => (0..d).filter(|&j| f[j]).collect(),
            Kept::Pairs(p) => (0..d)
                .filter(|&j| p[j * k..(j + 1) * k].contains(&true))
                .collect(),
        }
    }

    /// Add every weight that is not kept and whose gradient (`g`, `[d, K]`) breaks its
    /// optimality condition (score above `allowed`); returns how many were added.
    fn add_violators(&mut self, g: &Tensor<2>, group: bool, allowed: f64) -> usize {
        let mut added = 0;
        match self {
            Kept::Features(f) => {
                for (kept, s) in f.iter_mut().zip(engine::feature_scores(g, group)) {
                    if !*kept && s as f64 > allowed {
                        *kept = true;
                        added += 1;
                    }
                }
            }
            Kept::Pairs(p) => {
                for (kept, v) in p.iter_mut().zip(host(g)) {
                    if !*kept && v.abs() as f64 > allowed {
                        *kept = true;
                        added += 1;
                    }
                }
            }
        }
        added
    }
}

/// Solve one λ with screening, as glmnet does: the sequential strong rule keeps the weights
/// that are nonzero or whose gradient at the warm start is at least `α(2λ − λ_prev)`; SAGA
/// runs on those only (the n×K table is per example, so it carries over unchanged); then the
/// full gradient checks every left-out weight's optimality condition `|g| ≤ λα` and any
/// violator joins the set for another round. Weights are screened as whole features, or one
/// by one (a (feature, class) pair each) with an elementwise penalty at large K on the host
/// kernels ([`PathConfig::screen_pairs`]). When the set holds more than half of the features
/// (and, by pair, its pairs are too dense to pay), SAGA runs on all features.
#[allow(clippy::too_many_arguments)]
fn solve_screened(
    train: &DeviceSplit,
    state: SagaState,
    step: Step,
    prev_lambda: f64,
    start_grad: FullGradient,
    boost: &mut f64,
    config: &PathConfig,
    seed: u64,
    bar: &EpochProgress,
) -> Result<Solved> {
    let (d, k) = (train.d, train.k);
    let full = |state: SagaState, epochs_before: usize, boost: &mut f64| -> Result<Solved> {
        let (state, epochs, stop, lr) = solve_boosted(train, state, step, boost, config, seed, bar)?;
        Ok(Solved {
            state,
            epochs: epochs_before + epochs,
            stop,
            grad: None,
            active: d,
            pairs: None,
            lr,
        })
    };
    if !config.screen || step.alpha == 0.0 || step.lambda == 0.0 {
        return full(state, 0, boost);
    }
    let by_pair =
        config.screen_pairs && k >= PAIR_SCREEN_MIN_OUTPUTS && train.pairs_apply(step.family, step.group);
    let device = train.device();
    let wt_host = host(&state.wt);
    let nonzero: Vec<bool> = wt_host
        .chunks_exact(k)
        .map(|row| row.iter().any(|&v| v != 0.0))
        .collect();
    let nonzero_features = nonzero.iter().filter(|&&nz| nz).count();
    let nonzero_pairs = wt_host.iter().filter(|&&v| v != 0.0).count();
    // The set holds every nonzero weight: when they alone are more than half the features
    // (and too many pairs to pay), SAGA runs on all features and the strong rule's gradient
    // (two n×d×K GEMMs) is not needed.
    let pairs_pay =
        |pairs: usize, m: usize| by_pair && (pairs as f64) <= PAIR_SCREEN_MAX_DENSITY * (m * k) as f64;
    if 2 * nonzero_features > d && !pairs_pay(nonzero_pairs, d) {
        return full(state, 0, boost);
    }
    // A zero weight counts as violating its optimality condition when its score exceeds λα
    // by more than this relative margin: far inside the 1e-3·λα the optimality checks allow.
    let allowed = step.lambda * step.alpha * (1.0 + 1e-4);
    // Strong rule; a zero weight already optimal at the warm start is left to the KKT check
    // (at λ_max that leaves nothing to solve: W = 0 and the intercept optimum are the answer).
    let strong = step.alpha * (2.0 * step.lambda - prev_lambda);
    let keeps = |nonzero: bool, s: f32| nonzero || (s as f64 >= strong && s as f64 > allowed);
    let mut kept = if by_pair {
        let g = host(&start_grad.0);
        Kept::Pairs(
            wt_host
                .iter()
                .zip(&g)
                .map(|(&w, &g)| keeps(w != 0.0, g.abs()))
                .collect(),
        )
    } else {
        let scores = engine::feature_scores(&start_grad.0, step.group);
        Kept::Features(
            nonzero
                .iter()
                .zip(&scores)
                .map(|(&nz, &s)| keeps(nz, s))
                .collect(),
        )
    };
    drop(wt_host);
    let mut state = state;
    let mut epochs = 0;
    let mut stop = StopReason::Tol;
    let mut lr = step.lr * *boost;
    let mut ran_pairs = None;
    for round in 0..SCREEN_ROUNDS {
        let columns = kept.features(d, k);
        let m = columns.len();
        let pairs = match &kept {
            Kept::Pairs(p) => Some(PairSet::from_mask(m, k, |jj, c| p[columns[jj] * k + c])),
            Kept::Features(_) => None,
        }
        .filter(|p| pairs_pay(p.len(), m));
        if 2 * m > d && pairs.is_none() {
            return full(state, epochs, boost);
        }
        if m > 0 {
            let idx: Vec<i64> = columns.iter().map(|&j| j as i64).collect();
            let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [m]), &device);
            ran_pairs = pairs.as_ref().map(PairSet::len);
            let sub = match pairs {
                Some(p) => train.columns(&columns).with_pairs(p),
                None => train.columns(&columns),
            };
            let SagaState {
                wt, b, table, gbar_b, ..
            } = state;
            let sub_state = SagaState {
                wt: wt.select(0, idx.clone()),
                b,
                table,
                // recomputed from the table when the solve starts
                gbar_w: Tensor::zeros([m, k], &device),
                gbar_b,
            };
            let round_seed = if round == 0 {
                seed
            } else {
                seed ^ round.wrapping_mul(0xd1b5_4a32_d192_ed03)
            };
            let (solved, e, r, used) = solve_boosted(&sub, sub_state, step, boost, config, round_seed, bar)?;
            epochs += e;
            stop = r;
            lr = used;
            // Every weight outside the set was zero before (the set holds all nonzero ones)
            // and SAGA did not touch it.
            state = SagaState {
                wt: Tensor::zeros([d, k], &device).select_assign(0, idx, solved.wt, IndexingUpdateOp::Add),
                b: solved.b,
                table: solved.table,
                gbar_w: Tensor::zeros([d, k], &device),
                gbar_b: solved.gbar_b,
            };
        }
        // The KKT check's pass also refills the table at the round's end (the SAGA table is
        // dropped first): the next round, or the next λ, starts from exact gradients.
        let g = if m == 0 && round == 0 {
            start_grad.clone()
        } else {
            state.refill(train, step.family)
        };
        if kept.add_violators(&g.0, step.group, allowed) == 0 {
            return Ok(Solved {
                state,
                epochs,
                stop,
                grad: Some(g),
                active: m,
                pairs: ran_pairs,
                lr,
            });
        }
    }
    full(state, epochs, boost)
}

/// A problem's splits on the device, ready for the solver.
pub struct DeviceProblem {
    pub train: DeviceSplit,
    pub val: Option<DeviceSplit>,
    pub test: Option<DeviceSplit>,
}

impl DeviceProblem {
    /// Move every split to the device (X is held once: see [`DeviceSplit::from_split`]); the
    /// training rows go in the random order of `seed`. With `host_rows`, X stays in host
    /// memory and reaches the device a block at a time (half-precision storage always does).
    pub fn upload(problem: Problem, device: &Device, seed: u64, host_rows: bool) -> Self {
        let k = problem.k;
        let up = |s: Split, seed| DeviceSplit::from_split(s, k, device, seed, host_rows);
        DeviceProblem {
            train: up(problem.train, Some(seed)),
            val: problem.val.map(|s| up(s, None)),
            test: problem.test.map(|s| up(s, None)),
        }
    }
}

/// How the SAGA loop of one λ went, before measuring its result.
struct Run {
    index: usize,
    epochs: usize,
    active_features: usize,
    active_pairs: Option<usize>,
    seconds: f64,
    stop: StopReason,
    session: u32,
}

/// Measure the current state at λ: the layer and its record (objective, KKT, metrics, nnz).
/// `grad` is the full gradient at `state` when the solve already computed it.
/// Without it, the state's table is refilled at the final layer to get it (the same pass):
/// either way the next λ starts from the exact table, and the gradient is returned for its
/// strong rule.
fn measure(
    dp: &DeviceProblem,
    state: &mut SagaState,
    grad: Option<FullGradient>,
    step: Step,
    standardizer: &Standardizer,
    run: Run,
) -> (Layer, LambdaRecord, FullGradient) {
    let (d, k) = (dp.train.d, dp.train.k);
    let family = step.family;
    let grad = match grad {
        Some(g) => g,
        None => state.refill(&dp.train, family),
    };
    let kkt = engine::kkt_violation_from(grad.0.clone(), grad.1.clone(), state, step);
    let train_eval = engine::evaluate(&dp.train, &state.wt, &state.b, family);
    let wt = host(&state.wt);
    let objective = train_eval.loss + engine::penalty_host(&wt, d, k, step.lambda, step.alpha, step.group);
    let layer = Layer::from_transposed(&wt, host(&state.b), d, k, standardizer);
    let eval = |s: &Option<DeviceSplit>| {
        s.as_ref()
            .map(|s| SplitMetrics::new(family, engine::evaluate(s, &state.wt, &state.b, family)))
    };
    let nnz_per_class = layer.nnz_per_class();
    let record = LambdaRecord {
        index: run.index,
        lambda: step.lambda,
        lr: step.lr,
        epochs: run.epochs,
        seconds: run.seconds,
        stop: run.stop,
        objective,
        kkt,
        train: SplitMetrics::new(family, train_eval),
        val: eval(&dp.val),
        test: eval(&dp.test),
        nnz: nnz_per_class.iter().sum(),
        features_used: layer.features_used(),
        nnz_per_class,
        session: run.session,
        active_features: run.active_features,
        active_pairs: run.active_pairs,
    };
    (layer, record, grad)
}

/// How a λ's epochs are shown: a bar on a terminal; in a log (stderr not a terminal, the
/// bar hidden) a line a minute with the epoch, objective, weight change and the seconds per
/// epoch so far, so a λ of an ImageNet-sized path (tens of minutes) shows it is moving.
struct EpochProgress {
    bar: ProgressBar,
    label: String,
    log: Option<EpochLog>,
    interrupted: Option<InterruptCheck>,
}

/// When logging: when the λ started, when the last line was written, and the first epoch
/// seen with its time (the rate leaves out the λ's full passes before it).
struct EpochLog {
    started: Instant,
    last: std::cell::Cell<Instant>,
    first: std::cell::Cell<Option<(usize, Instant)>>,
}

/// Seconds between two progress lines in a log.
const LOG_EVERY_S: u64 = 60;

impl EpochProgress {
    fn epoch(&self, epoch: usize, objective: f64, rel_change: f64) {
        self.bar.set_position(epoch as u64);
        self.bar
            .set_message(format!("obj {objective:.6e}  Δw {rel_change:.1e}"));
        let Some(log) = &self.log else {
            return;
        };
        let now = Instant::now();
        let (first_epoch, first_at) = match log.first.get() {
            // A new screening round counts its epochs from 1 again.
            Some((e, at)) if e < epoch => (e, at),
            _ => {
                log.first.set(Some((epoch, now)));
                (epoch, now)
            }
        };
        if log.last.get().elapsed().as_secs() >= LOG_EVERY_S {
            log.last.set(now);
            let rate = match epoch - first_epoch {
                0 => String::new(),
                done => format!(
                    ", {:.2} s/epoch",
                    now.duration_since(first_at).as_secs_f64() / done as f64
                ),
            };
            eprintln!(
                "{}: epoch {epoch}, obj {objective:.6e}, Δw {rel_change:.1e}, {:.0} s into the λ{rate}",
                self.label,
                log.started.elapsed().as_secs_f64(),
            );
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// Whether the embedding program asked the solve to stop.
    fn interrupted(&self) -> bool {
        self.interrupted.as_ref().is_some_and(|check| check())
    }
}

fn progress_bar(opts: &RunOptions, max_epochs: usize, label: String) -> EpochProgress {
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let target = if opts.progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(max_epochs as u64), target);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} epochs {elapsed} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.clone());
    let log = (opts.progress && opts.verbose && !terminal).then(|| EpochLog {
        started: Instant::now(),
        last: std::cell::Cell::new(Instant::now()),
        first: std::cell::Cell::new(None),
    });
    EpochProgress {
        bar,
        label,
        log,
        interrupted: opts.hooks.interrupted.clone(),
    }
}

/// The step multiplier for the next λ (see [`AUTO_STEP_BOOST`]): doubled after a λ solved
/// without instability, for `--lr auto` only (a fixed step is used as given).
fn next_boost(config: &PathConfig, boost: f64, stable: bool) -> f64 {
    match config.lr {
        StepSize::Auto if stable => (boost * 2.0).min(AUTO_STEP_BOOST),
        _ => boost,
    }
}

/// Resolve the base step size (`--lr auto` or the fixed value).
pub fn base_step(train: &DeviceSplit, config: &PathConfig) -> f64 {
    match config.lr {
        StepSize::Fixed(lr) => lr,
        StepSize::Auto => engine::auto_step(train, config.family, config.batch_size),
    }
}

/// Compute the whole regularization path of a standardized problem on `device`.
///
/// The path takes the problem: its feature matrices move to the device (on CPU backends they
/// are the device tensors), so X is held once. `standardizer` is only stored with the layers;
/// the problem's features must already be standardized with it.
pub fn run_path(
    problem: Problem,
    standardizer: &Standardizer,
    config: &PathConfig,
    device: &Device,
    opts: &RunOptions,
) -> Result<PathResult> {
    config.validate()?;
    opts.validate()?;
    if problem.family != config.family {
        return Err(SolverError::Config(format!(
            "the problem is {:?} but the configuration asks for {:?}",
            problem.family, config.family
        )));
    }
    let (n, d, k) = (problem.train.n, problem.d(), problem.k);
    let host_rows = opts.host_rows || problem.train.x.storage() != crate::data::Storage::F32;
    let held = memory::where_held(device);
    let held = if matches!(problem.train.x, crate::data::Features::File(_)) {
        format!("{held}; X read from its files in blocks")
    } else if host_rows && held != "host memory" {
        format!("{held}; X in host memory, moved in blocks")
    } else {
        held
    };
    let host_epoch = engine::host_epochs_apply(&problem.train.targets, device);
    let plan = MemoryPlan::new(&problem, config, &held, host_epoch);
    if opts.verbose {
        plan.lines().iter().for_each(|l| eprintln!("{l}"));
    }
    plan.check_fits_host()?;
    let fp = fingerprint(&problem, config);
    let family = problem.family;
    let path_started = Instant::now();
    let dp = DeviceProblem::upload(problem, device, config.seed, opts.host_rows);
    let lambda_max = engine::lambda_max(&dp.train, config.alpha, config.group);
    let lambdas = config.lambdas(lambda_max);
    let base_lr = base_step(&dp.train, config);

    let mut result = PathResult {
        family,
        config: config.clone(),
        lambda_max,
        lambdas: lambdas.clone(),
        base_lr,
        n_train: n,
        d,
        k,
        clamped_features: standardizer.clamped.clone(),
        records: Vec::new(),
        layers: Vec::new(),
        memory: Some(plan),
        peak_rss: None,
        ended_early: None,
        path_seconds: 0.0,
        write_seconds: 0.0,
    };
    // The solution before the current one, `(wt, b)`, for the extrapolated start.
    let mut previous: Option<(Tensor<2>, Tensor<2>)> = None;
    let mut session = 0;
    let mut boost = 1.0;
    let mut resumed: Option<(Tensor<2>, Tensor<2>)> = None;

    let mut layer_hashes: Vec<String> = Vec::new();
    if let (Some(out), true) = (&opts.out_dir, opts.resume) {
        if let Some(ck) = load_checkpoint(&checkpoint_file(out), &fp, (d, k))? {
            if let Some(hashes) = &ck.layer_hashes {
                check_layer_files(out, &checkpoint_file(out), hashes)?;
                layer_hashes = hashes.clone();
            }
            let (wt, b) = ck.state;
            resumed = Some((read_tensor(device, wt, [d, k]), read_tensor(device, b, [1, k])));
            previous = ck
                .previous
                .map(|(w, b)| (read_tensor(device, w, [d, k]), read_tensor(device, b, [1, k])));
            boost = ck.boost;
            session = ck.records.iter().map(|r| r.session).max().map_or(0, |s| s + 1);
            if opts.keep_layers {
                for i in 0..ck.completed {
                    result.layers.push(Layer::load(&layer_file(out, i))?);
                }
            }
            result.records = ck.records;
            if opts.verbose {
                eprintln!("resuming after lambda #{} of {}", ck.completed, lambdas.len());
            }
        }
    }
    if let Some(out) = &opts.out_dir {
        remove_layer_files_from(out, result.records.len())?;
    }
    // Every λ starts from the table refilled at its start, so the resumed state is the
    // uninterrupted run's, bit for bit.
    // `grad`: the full gradient at the current state (the table is the exact one there).
    let (mut state, mut grad) = match resumed {
        Some((wt, b)) => SagaState::at(&dp.train, family, wt, b),
        None => SagaState::initial(&dp.train, family),
    };
    let total = lambdas.len();
    let end = opts.stop_after.map_or(total, |s| s.min(total));
    if result.records.len() > end {
        // The checkpoint is further along than asked: report the λs asked for (the layer files
        // of the others stay, for a later resume).
        if opts.verbose {
            eprintln!(
                "note: the checkpoint holds {} λs; reporting the first {end} as asked",
                result.records.len()
            );
        }
        result.records.truncate(end);
        result.layers.truncate(end);
        return finish(result, path_started);
    }
    if let Some(reason) = result.records.last().and_then(|r| opts.early_end(r, k)) {
        // A resumed path that had already met its end rule stays ended.
        result.ended_early = Some(reason);
    }
    for (index, &lambda) in lambdas.iter().enumerate().take(end).skip(result.records.len()) {
        if result.ended_early.is_some() {
            break;
        }
        let lr = config.lr_at(base_lr, index, total);
        let step = Step {
            lambda,
            alpha: config.alpha,
            lr,
            group: config.group,
            family,
        };
        let bar = progress_bar(
            opts,
            config.max_epochs,
            format!("λ {:>3}/{total} {lambda:.3e}", index + 1),
        );
        let started = Instant::now();
        let lambda_seed = config.seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // The strong rule compares with the λ the start solves: λ_max's for the first.
        let prev_lambda = if index == 0 {
            lambda_max.max(lambda)
        } else {
            lambdas[index - 1]
        };
        let boost_before = boost;
        let last_solution = (state.wt.clone(), state.b.clone());
        let dense = result.records.last().is_some_and(|r| r.active_features == d);
        let extrapolate = config.extrapolate && dense && index >= 2 && lambda > 0.0;
        if let (true, Some(prev)) = (extrapolate, &previous) {
            // In log λ: the grid's last step over the step before (1 on a log-spaced grid).
            // (Equal λs, as with eps = 1, give no direction: 0/0.)
            let ratio = (lambda / lambdas[index - 1]).ln() / (lambdas[index - 1] / lambdas[index - 2]).ln();
            if ratio.is_finite() {
                state = extrapolated_start(state, prev, ratio);
                grad = state.refill(&dp.train, family);
            }
        }
        let solved = solve_screened(
            &dp.train,
            state,
            step,
            prev_lambda,
            grad,
            &mut boost,
            config,
            lambda_seed,
            &bar,
        )
        .map_err(|e| match e {
            SolverError::Diverged {
                lambda,
                lr,
                objective,
                ..
            } => SolverError::Diverged {
                index: index + 1,
                lambda,
                lr,
                objective,
            },
            SolverError::Interrupted { .. } => SolverError::Interrupted { index: index + 1 },
            e => e,
        })?;
        state = solved.state;
        previous = Some(last_solution);
        boost = next_boost(config, boost, boost == boost_before);
        let (epochs, stop) = (solved.epochs, solved.stop);
        device
            .sync()
            .map_err(|e| SolverError::Backend(format!("{e:?}")))?;
        let seconds = started.elapsed().as_secs_f64();
        bar.finish();

        let (layer, record, end_grad) = measure(
            &dp,
            &mut state,
            solved.grad,
            Step {
                lr: solved.lr,
                ..step
            },
            standardizer,
            Run {
                index,
                epochs,
                active_features: solved.active,
                active_pairs: solved.pairs,
                seconds,
                stop,
                session,
            },
        );
        grad = end_grad;
        if opts.verbose {
            eprintln!("{}", record_line(&record, total, k));
        }
        if let Some(report) = &opts.hooks.on_lambda {
            report(&record, total);
        }
        check_not_diverged(&record, result.records.last(), solved.lr)?;
        let writing = Instant::now();
        if let Some(out) = &opts.out_dir {
            // One metadata key, so the file's bytes do not depend on a map's iteration order.
            let meta = HashMap::from([(
                "path_entry".to_string(),
                format!("{{\"index\": {index}, \"lambda\": {lambda:e}}}"),
            )]);
            let bytes = layer.encode(Some(meta))?;
            io::write_atomic(&layer_file(out, index), &bytes)?;
            layer_hashes.push(io::content_hash(&bytes));
        }
        result.ended_early = opts.early_end(&record, k);
        result.records.push(record);
        if opts.keep_layers {
            result.layers.push(layer);
        }
        if let Some(out) = &opts.out_dir {
            save_checkpoint(
                &checkpoint_file(out),
                &fp,
                &state,
                previous.as_ref(),
                boost,
                (d, k),
                &result,
                &layer_hashes,
            )?;
        }
        result.write_seconds += writing.elapsed().as_secs_f64();
        if let (true, Some(reason)) = (opts.verbose, &result.ended_early) {
            eprintln!("path ends after λ #{}: {reason}", index + 1);
        }
    }
    finish(result, path_started)
}

/// The path's result with its peak memory and wall time.
fn finish(mut result: PathResult, started: Instant) -> Result<PathResult> {
    result.peak_rss = memory::peak_rss();
    result.path_seconds = started.elapsed().as_secs_f64();
    Ok(result)
}

/// How far (relative) a λ's objective may end above the previous λ's before the path counts
/// as diverged. The previous solution is feasible at the new λ with an objective no larger
/// (the penalty's weight fell), so a solved λ ends at or below it; a step size far above the
/// loss's curvature ends orders of magnitude above (`--lr 1e30`: 5e27 after λ #2).
const DIVERGED_ABOVE_PREVIOUS: f64 = 0.01;

/// An error when `record` ended above what the previous λ's solution already achieves.
fn check_not_diverged(record: &LambdaRecord, previous: Option<&LambdaRecord>, lr: f64) -> Result<()> {
    let bound = previous.map_or(f64::INFINITY, |p| {
        p.objective + DIVERGED_ABOVE_PREVIOUS * p.objective.abs().max(1e-6)
    });
    if record.objective.is_finite() && record.objective <= bound {
        return Ok(());
    }
    Err(SolverError::Diverged {
        index: record.index + 1,
        lambda: record.lambda,
        lr,
        objective: record.objective,
    })
}

/// One terminal line per λ; per-class counts are summarised (K may be 1,000).
fn record_line(record: &LambdaRecord, total: usize, k: usize) -> String {
    let val_txt = record
        .val
        .map(|v| format!(" val {:.4}", v.score()))
        .unwrap_or_default();
    let pairs_txt = record
        .active_pairs
        .map(|p| format!(" ({p} weights)"))
        .unwrap_or_default();
    format!(
        "λ {:>3}/{total} {:.4e}: {} epochs ({:?}) on {} features{pairs_txt} {:.2}s obj {:.6e} kkt {:.1e} nnz {} ({:.1}/class){val_txt}",
        record.index + 1,
        record.lambda,
        record.epochs,
        record.stop,
        record.active_features,
        record.seconds,
        record.objective,
        record.kkt,
        record.nnz,
        record.nnz as f64 / k.max(1) as f64,
    )
}

/// The warm start moved along the path's tangent: `θ + ratio·(θ − θ_prev)` for the bias and for
/// every weight nonzero in both solutions (a weight that just entered or left keeps its value,
/// so no weight is set nonzero that the last solution had at zero). The caller refills the SAGA
/// table at the new start: with the old table the first epochs' objective rose above the
/// start's and the lookbehind rule ended λs after 4–6 epochs at gaps up to 1e-3 (`w2`).
fn extrapolated_start(state: SagaState, previous: &(Tensor<2>, Tensor<2>), ratio: f64) -> SagaState {
    let (prev_wt, prev_b) = previous;
    let step = (state.wt.clone() - prev_wt.clone())
        .mul_scalar(ratio)
        .mask_fill(state.wt.clone().equal_elem(0.0), 0.0)
        .mask_fill(prev_wt.clone().equal_elem(0.0), 0.0);
    let b_step = (state.b.clone() - prev_b.clone()).mul_scalar(ratio);
    SagaState {
        wt: state.wt + step,
        b: state.b + b_step,
        ..state
    }
}

/// Fit a single λ from the intercept-only start (no path, no warm start from larger λ).
pub fn fit_lambda(
    problem: &Problem,
    standardizer: &Standardizer,
    lambda: f64,
    config: &PathConfig,
    device: &Device,
) -> Result<(Layer, LambdaRecord)> {
    fit_lambda_shown(problem, standardizer, lambda, config, device, None)
}

/// [`fit_lambda`] with its progress shown under `label` (a bar on a terminal, a line a minute
/// in a log), for fits long enough to need it (the dense layer at ImageNet size).
pub fn fit_lambda_shown(
    problem: &Problem,
    standardizer: &Standardizer,
    lambda: f64,
    config: &PathConfig,
    device: &Device,
    label: Option<&str>,
) -> Result<(Layer, LambdaRecord)> {
    config.validate()?;
    if !(lambda >= 0.0 && lambda.is_finite()) {
        return Err(SolverError::Config(format!("lambda must be >= 0, got {lambda}")));
    }
    let dp = DeviceProblem::upload(problem.clone(), device, config.seed, false);
    let (state, start_grad) = SagaState::initial(&dp.train, problem.family);
    let lr = base_step(&dp.train, config);
    let step = Step {
        lambda,
        alpha: config.alpha,
        lr,
        group: config.group,
        family: problem.family,
    };
    let shown = RunOptions {
        progress: label.is_some(),
        verbose: label.is_some(),
        ..RunOptions::default()
    };
    let bar = progress_bar(&shown, config.max_epochs, label.unwrap_or_default().to_string());
    let started = Instant::now();
    // The intercept-only start is the solution at λ_max: the strong rule starts from there.
    let lambda_max = engine::lambda_max(&dp.train, config.alpha, config.group);
    let mut boost = 1.0;
    let solved = solve_screened(
        &dp.train,
        state,
        step,
        lambda_max.max(lambda),
        start_grad,
        &mut boost,
        config,
        config.seed,
        &bar,
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let run = Run {
        index: 0,
        epochs: solved.epochs,
        active_features: solved.active,
        active_pairs: solved.pairs,
        seconds,
        stop: solved.stop,
        session: 0,
    };
    let mut state = solved.state;
    let (layer, record, _) = measure(
        &dp,
        &mut state,
        solved.grad,
        Step {
            lr: solved.lr,
            ..step
        },
        standardizer,
        run,
    );
    Ok((layer, record))
}

/// λ_max of a (standardized) problem: the smallest λ at which the solution has W = 0.
pub fn lambda_max(problem: &Problem, alpha: f64, group: bool, device: &Device) -> f64 {
    let train = DeviceSplit::upload(&problem.train, problem.k, device);
    engine::lambda_max(&train, alpha, group)
}

#[cfg(test)]
mod tests {
    use super::GapEstimate;

    #[test]
    fn gap_estimate_is_exact_on_a_linearly_converging_objective() {
        // F_t = F* + c ρ^t: the decreases shrink by ρ and the estimate is F_t − F* itself.
        let (f_star, c, rho) = (0.75, 0.3, 0.9f64);
        let mut rule = GapEstimate::default();
        for t in 0..12 {
            let f = f_star + c * rho.powi(t);
            let gap = rule.push(f);
            if t < 3 {
                assert!(gap.is_none(), "three decreases are needed, epoch {t}");
            } else {
                let g = gap.expect("a shrinking decrease gives an estimate");
                assert!(
                    (g - (f - f_star)).abs() <= 1e-12,
                    "epoch {t}: {g} vs {}",
                    f - f_star
                );
            }
        }
    }

    #[test]
    fn gap_estimate_waits_for_a_decreasing_shrinking_objective() {
        let mut rule = GapEstimate::default();
        // A rise in the window, then a decrease that grows: no estimate either way.
        for f in [1.0, 0.9, 0.95, 0.8] {
            assert!(rule.push(f).is_none());
        }
        let mut rule = GapEstimate::default();
        for f in [1.0, 0.99, 0.97, 0.9] {
            assert!(rule.push(f).is_none());
        }
        // The slower of the two rates counts: decreases 0.1, 0.01, 0.009 give ρ = 0.9.
        let mut rule = GapEstimate::default();
        let mut last = None;
        for f in [1.0, 0.9, 0.89, 0.881] {
            last = rule.push(f);
        }
        let g = last.expect("an estimate");
        assert!((g - 0.009 * 0.9 / 0.1).abs() < 1e-9, "{g}");
    }
}
