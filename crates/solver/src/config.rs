//! Path configuration with its defaults in one place (design §2), checked before any work starts.

use serde::{Deserialize, Serialize};

use crate::error::{Result, SolverError};

/// The GLM family: which loss the path minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Softmax cross-entropy over K classes; labels are class indices.
    #[default]
    Multinomial,
    /// Squared error / 2 summed over K real-valued outputs.
    Gaussian,
    /// Independent sigmoid binary cross-entropy per output; targets in [0, 1].
    Multilabel,
}

impl Family {
    /// Upper bound of the loss Hessian w.r.t. the logits, used by the automatic step size.
    pub fn curvature(self) -> f64 {
        match self {
            Family::Multinomial => 0.5,
            Family::Gaussian => 1.0,
            Family::Multilabel => 0.25,
        }
    }

    /// Name of the score reported beside the loss: accuracy for classifiers, R² for regression.
    pub fn score_name(self) -> &'static str {
        match self {
            Family::Multinomial => "accuracy",
            Family::Multilabel => "label accuracy",
            Family::Gaussian => "r2",
        }
    }
}

impl std::str::FromStr for Family {
    type Err = SolverError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "multinomial" => Ok(Family::Multinomial),
            "gaussian" => Ok(Family::Gaussian),
            "multilabel" => Ok(Family::Multilabel),
            other => Err(SolverError::Config(format!(
                "unknown family '{other}' (expected multinomial, gaussian or multilabel)"
            ))),
        }
    }
}

/// Step size: a fixed learning rate, or one derived from the data (mini-batch SAGA smoothness).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StepSize {
    /// `1 / (3 L(b))` with `L(b)` the expected smoothness of a mini-batch of size b
    /// (Gazagnadou, Gower & Salmon 2019), from the largest eigenvalue of XᵀX/n and the largest
    /// row norm of X.
    #[default]
    Auto,
    Fixed(f64),
}

impl std::str::FromStr for StepSize {
    type Err = SolverError;
    fn from_str(s: &str) -> Result<Self> {
        if s == "auto" {
            return Ok(StepSize::Auto);
        }
        s.parse::<f64>()
            .map(StepSize::Fixed)
            .map_err(|_| SolverError::Config(format!("--lr must be 'auto' or a number, got '{s}'")))
    }
}

/// Everything that shapes one regularization path. Defaults follow glm_saga where it was right.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathConfig {
    pub family: Family,
    /// Elastic-net mixing: 1 = lasso, 0 = ridge.
    pub alpha: f64,
    /// Number of λ values on the log-spaced path (k).
    pub n_lambdas: usize,
    /// The path ends at `eps · λ_max`.
    pub eps: f64,
    /// Append a λ = 0 (dense) fit at the end of the path.
    pub dense_end: bool,
    /// Group lasso over features (columns of W) instead of the elementwise ℓ1 penalty.
    pub group: bool,
    pub lr: StepSize,
    /// Step sizes are log-spaced from `lr` to `lr / lr_decay` along the path.
    pub lr_decay: f64,
    pub batch_size: usize,
    pub max_epochs: usize,
    /// Stop a λ when the relative weight change over an epoch, ‖θ − θ_prev‖ / ‖θ‖, falls
    /// below tol.
    pub tol: f64,
    /// Also stop when the epoch objective has not improved at all for this many epochs: SAGA
    /// in f32 reaches a precision plateau where the weight change may never fall below tol.
    /// (An improvement threshold of tol here, as in glm_saga, stops ill-conditioned problems
    /// after a few epochs far from the optimum: 3 epochs and a 3× too high objective on the
    /// digits demo.) 0 = off.
    pub lookbehind: usize,
    /// Also stop a λ when the objective gap estimated from the epoch objectives falls below
    /// `gap_tol · |F|` (0 = off). Under linear convergence the epoch objective's decrease δ_t
    /// shrinks by a rate ρ per epoch and `F_t − F* ≈ δ_t ρ / (1 − ρ)`; ρ is the larger of the
    /// last two ratios δ_t/δ_{t−1}, and any epoch without a decrease defers the rule. Unlike
    /// the weight change it tracks the curvature: at the small-λ end of a path (weak
    /// curvature, large weights) a relative weight change of 1e-3 left gaps up to 1e-3 on the
    /// `w2` benchmark, while the same tolerance over-solves the head.
    #[serde(default)]
    pub gap_tol: f64,
    /// Seed of the training rows' random order and of each epoch's batch offset and order: one
    /// seed gives one path on CPU backends.
    pub seed: u64,
    /// Recompute the SAGA gradient average exactly from the table every this many epochs
    /// (0 = only at the start of each λ). Stops f32 drift of the running average.
    pub refresh_every: usize,
    /// Screen features per λ (sequential strong rule, then a KKT check over all features): SAGA
    /// runs on the columns that can be nonzero and the rest are checked, as glmnet does. The
    /// result satisfies the same optimality conditions; only the work per epoch shrinks.
    #[serde(default = "default_true")]
    pub screen: bool,
    /// With an elementwise penalty and K ≥ [`crate::path::PAIR_SCREEN_MIN_OUTPUTS`] on the host
    /// kernels, screen (feature, class) weights one by one rather than whole features: SAGA
    /// then updates only the weights the strong rule keeps (see [`crate::host::PairSet`]).
    /// Same optimality conditions checked for every weight. Left out of a saved configuration
    /// while on, so checkpoints written before it existed still resume.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub screen_pairs: bool,
    /// Start each λ of the dense part of the path from the straight-line extrapolation (in
    /// log λ) of the last two solutions instead of the last one: where the active set no longer
    /// changes the path is smooth, and on the `w2`/`w3` benchmarks the extrapolated start lay
    /// 4–30× closer to the next solution than the last solution did. Applied when the previous
    /// λ was solved on every feature, only to weights nonzero in both solutions.
    #[serde(default = "default_true")]
    pub extrapolate: bool,
    /// Fit this one λ instead of a path (`n_lambdas` and `eps` are then unused): what Label-free
    /// CBM does with glm_saga's `k=1` and a given `max_reg`. The solve starts from the λ_max
    /// solution (W = 0, the intercept optimum), as the path does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda: Option<f64>,
    /// Solve these λs, in this order, instead of the log-spaced grid (`n_lambdas` and `eps`
    /// are then unused; `dense_end` still appends λ = 0): a grid computed elsewhere, as
    /// glm_saga's from a given `max_reg`, or a path continued on a finer grid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda_list: Option<Vec<f64>>,
}

fn default_true() -> bool {
    true
}

fn is_true(v: &bool) -> bool {
    *v
}

impl Default for PathConfig {
    fn default() -> Self {
        PathConfig {
            family: Family::Multinomial,
            alpha: 0.99,
            n_lambdas: 100,
            eps: 1e-3,
            dense_end: false,
            group: false,
            lr: StepSize::Auto,
            lr_decay: 1.0,
            batch_size: 256,
            max_epochs: 2000,
            tol: 1e-4,
            lookbehind: 3,
            gap_tol: 0.0,
            seed: 0,
            refresh_every: 10,
            screen: true,
            screen_pairs: true,
            extrapolate: true,
            lambda: None,
            lambda_list: None,
        }
    }
}

/// The most λs a path may have: each is a layer file and a record, and a grid this fine is
/// already far below the solver's tolerance between neighbours.
pub const MAX_LAMBDAS: usize = 100_000;

impl PathConfig {
    /// Reject values the algorithm cannot run with, naming the flag.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(SolverError::Config(m));
        if !(0.0..=1.0).contains(&self.alpha) || self.alpha.is_nan() {
            return bad(format!("alpha must lie in [0, 1], got {}", self.alpha));
        }
        if self.n_lambdas == 0 {
            return bad("the path needs at least one lambda (k = 0 given)".into());
        }
        if self.n_lambdas > MAX_LAMBDAS {
            return bad(format!(
                "k = {} lambdas is more than a path can use (at most {MAX_LAMBDAS}; the paper's paths have 100)",
                self.n_lambdas
            ));
        }
        if !(self.eps > 0.0 && self.eps <= 1.0) {
            return bad(format!("eps must lie in (0, 1], got {}", self.eps));
        }
        if let StepSize::Fixed(lr) = self.lr {
            if !(lr > 0.0 && lr.is_finite()) {
                return bad(format!("lr must be a positive number, got {lr}"));
            }
        }
        if !(self.lr_decay >= 1.0 && self.lr_decay.is_finite()) {
            return bad(format!("lr_decay must be >= 1, got {}", self.lr_decay));
        }
        if self.batch_size == 0 {
            return bad("batch size must be at least 1".into());
        }
        if self.max_epochs == 0 {
            return bad("max epochs must be at least 1".into());
        }
        if !(self.tol >= 0.0 && self.tol.is_finite()) {
            return bad(format!("tol must be >= 0, got {}", self.tol));
        }
        if !(self.gap_tol >= 0.0 && self.gap_tol.is_finite()) {
            return bad(format!("gap tol must be >= 0, got {}", self.gap_tol));
        }
        if let Some(l) = self.lambda {
            if !(l >= 0.0 && l.is_finite()) {
                return bad(format!("lambda must be a number >= 0, got {l}"));
            }
        }
        if let Some(list) = &self.lambda_list {
            if self.lambda.is_some() {
                return bad("give one fixed lambda or a list of lambdas, not both".into());
            }
            if list.is_empty() {
                return bad("the list of lambdas is empty".into());
            }
            if list.len() > MAX_LAMBDAS {
                return bad(format!(
                    "{} lambdas is more than a path can use (at most {MAX_LAMBDAS})",
                    list.len()
                ));
            }
            if let Some(l) = list.iter().find(|l| !(**l >= 0.0 && l.is_finite())) {
                return bad(format!("every lambda must be a number >= 0, got {l}"));
            }
            if let Some(i) = (1..list.len()).find(|&i| list[i] > list[i - 1]) {
                return bad(format!(
                    "the lambdas must not increase (each λ starts from the previous solution): {} follows {}",
                    list[i],
                    list[i - 1]
                ));
            }
        }
        Ok(())
    }

    /// The λ values of the path, from λ_max down to eps·λ_max (plus 0 with `dense_end`), the
    /// given [`PathConfig::lambda_list`] (plus 0 with `dense_end`), or the one fixed
    /// [`PathConfig::lambda`].
    pub fn lambdas(&self, lambda_max: f64) -> Vec<f64> {
        if let Some(l) = self.lambda {
            return vec![l];
        }
        let k = self.n_lambdas;
        let mut out: Vec<f64> = match &self.lambda_list {
            Some(list) => list.clone(),
            None => (0..k)
                .map(|i| {
                    let t = if k == 1 { 0.0 } else { i as f64 / (k - 1) as f64 };
                    lambda_max * self.eps.powf(t)
                })
                .collect(),
        };
        if self.dense_end {
            out.push(0.0);
        }
        out
    }

    /// Step size of the i-th λ out of `total`, log-spaced from `lr` to `lr / lr_decay`.
    pub fn lr_at(&self, base_lr: f64, i: usize, total: usize) -> f64 {
        if total <= 1 {
            return base_lr;
        }
        base_lr * self.lr_decay.powf(-(i as f64) / (total - 1) as f64)
    }
}
