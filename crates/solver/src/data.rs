//! Host-side feature matrices and targets: validation (every bad value named by split, row and
//! column) and standardization with training statistics (design §1).

use serde::{Deserialize, Serialize};

use crate::config::Family;
use crate::error::{Result, SolverError};

/// What the model predicts for each example.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// One class index per example (multinomial).
    Classes(Vec<i64>),
    /// `n × k` real targets, row-major (gaussian outputs or multilabel 0/1 indicators).
    Dense { values: Vec<f32>, k: usize },
}

impl Targets {
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes(l) => l.len(),
            Targets::Dense { values, k } => values.len() / (*k).max(1),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One split (train, val or test): `n × d` features, row-major, and its targets.
#[derive(Debug, Clone)]
pub struct Split {
    pub name: String,
    pub x: Vec<f32>,
    pub n: usize,
    pub d: usize,
    pub targets: Targets,
    /// Optional per-example weights w_i of the loss (default 1).
    pub weights: Option<Vec<f32>>,
}

impl Split {
    /// Build a split, checking that the feature matrix and the targets describe the same examples.
    pub fn new(name: &str, x: Vec<f32>, n: usize, d: usize, targets: Targets) -> Result<Self> {
        if x.len() != n * d {
            return Err(SolverError::Config(format!(
                "{name} split: feature buffer holds {} values, not {n} x {d}",
                x.len()
            )));
        }
        if targets.len() != n {
            return Err(SolverError::CountMismatch {
                split: name.into(),
                features: n,
                labels: targets.len(),
            });
        }
        if n == 0 {
            return Err(SolverError::EmptySplit { split: name.into() });
        }
        Ok(Split {
            name: name.into(),
            x,
            n,
            d,
            targets,
            weights: None,
        })
    }

    /// Attach per-example loss weights (non-negative, finite, not all zero).
    pub fn with_weights(mut self, w: Vec<f32>) -> Result<Self> {
        if w.len() != self.n {
            return Err(SolverError::SampleWeights(format!(
                "{} weights for {} examples of the {} split",
                w.len(),
                self.n,
                self.name
            )));
        }
        if let Some((i, v)) = w.iter().enumerate().find(|(_, v)| !(v.is_finite() && **v >= 0.0)) {
            return Err(SolverError::SampleWeights(format!(
                "weight {v} of example {i} is negative or not finite"
            )));
        }
        if w.iter().all(|v| *v == 0.0) {
            return Err(SolverError::SampleWeights("all weights are zero".into()));
        }
        self.weights = Some(w);
        Ok(self)
    }

    /// Number of outputs K the targets imply (for class labels: max label + 1).
    pub fn implied_outputs(&self) -> usize {
        match &self.targets {
            Targets::Classes(l) => l.iter().copied().max().map_or(0, |m| (m.max(0) + 1) as usize),
            Targets::Dense { k, .. } => *k,
        }
    }

    /// Check every value: finite features, labels in `0..k`, targets that fit the family.
    pub fn validate(&self, family: Family, k: usize, d: usize) -> Result<()> {
        let split = || self.name.clone();
        if self.d != d {
            return Err(SolverError::FeatureDimMismatch {
                split: split(),
                expected: d,
                found: self.d,
            });
        }
        if let Some(pos) = self.x.iter().position(|v| !v.is_finite()) {
            return Err(SolverError::NonFinite {
                split: split(),
                row: pos / self.d,
                col: pos % self.d,
                value: self.x[pos],
            });
        }
        match (&self.targets, family) {
            (Targets::Classes(labels), Family::Multinomial) => {
                if let Some((row, &label)) =
                    labels.iter().enumerate().find(|(_, &l)| l < 0 || l as usize >= k)
                {
                    return Err(SolverError::LabelOutOfRange {
                        split: split(),
                        row,
                        label,
                        classes: k,
                    });
                }
            }
            (Targets::Classes(_), fam) => {
                return Err(SolverError::Config(format!(
                    "{} split: the {fam:?} family needs an n x K target matrix, not class labels",
                    self.name
                )))
            }
            (Targets::Dense { .. }, Family::Multinomial) => {
                return Err(SolverError::Config(format!(
                    "{} split: the multinomial family needs integer class labels, not a target matrix",
                    self.name
                )))
            }
            (Targets::Dense { values, k: kk }, fam) => {
                if *kk != k {
                    return Err(SolverError::TargetDimMismatch {
                        split: split(),
                        expected: k,
                        found: *kk,
                    });
                }
                for (pos, &v) in values.iter().enumerate() {
                    let why = if !v.is_finite() {
                        Some("not finite")
                    } else if fam == Family::Multilabel && !(0.0..=1.0).contains(&v) {
                        Some("outside [0, 1] (multilabel targets are probabilities)")
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        return Err(SolverError::BadTarget {
                            split: split(),
                            row: pos / kk,
                            col: pos % kk,
                            value: v,
                            why,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Targets as an `n × k` row-major matrix (one-hot for class labels).
    pub fn target_matrix(&self, k: usize) -> Vec<f32> {
        match &self.targets {
            Targets::Classes(labels) => {
                let mut y = vec![0.0f32; labels.len() * k];
                for (i, &l) in labels.iter().enumerate() {
                    y[i * k + l as usize] = 1.0;
                }
                y
            }
            Targets::Dense { values, .. } => values.clone(),
        }
    }
}

/// Training statistics used to standardize every split; stored with each layer so raw features
/// can be fed at inference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    pub mean: Vec<f32>,
    /// Standard deviation over n (not n − 1); values below [`Standardizer::MIN_STD`] are set to 1.
    pub std: Vec<f32>,
    /// Features whose training std was below the threshold (constant features).
    pub clamped: Vec<usize>,
}

impl Standardizer {
    pub const MIN_STD: f64 = 1e-5;

    /// Mean and std of each column of the training split, accumulated in f64.
    pub fn fit(train: &Split) -> Self {
        let (n, d) = (train.n, train.d);
        let mut mean = vec![0f64; d];
        for row in train.x.chunks_exact(d) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut var = vec![0f64; d];
        for row in train.x.chunks_exact(d) {
            for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
                let c = v as f64 - m;
                *s += c * c;
            }
        }
        let mut clamped = Vec::new();
        let std = var
            .iter()
            .enumerate()
            .map(|(j, s)| {
                let sd = (s / n as f64).sqrt();
                if sd < Self::MIN_STD {
                    clamped.push(j);
                    1.0
                } else {
                    sd as f32
                }
            })
            .collect();
        Standardizer {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std,
            clamped,
        }
    }

    /// The identity transform (for features that are already standardized).
    pub fn identity(d: usize) -> Self {
        Standardizer {
            mean: vec![0.0; d],
            std: vec![1.0; d],
            clamped: Vec::new(),
        }
    }

    /// Standardize a split in place: `(x − mean) / std`.
    pub fn apply(&self, split: &mut Split) {
        let d = self.mean.len();
        for row in split.x.chunks_exact_mut(d) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s;
            }
        }
    }

    /// Standardize every split of a problem (train, val, test) in place.
    pub fn apply_to_problem(&self, problem: &mut Problem) {
        for s in [
            Some(&mut problem.train),
            problem.val.as_mut(),
            problem.test.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            self.apply(s);
        }
    }
}

/// The splits of one problem. Validation happens once, here.
#[derive(Debug, Clone)]
pub struct Problem {
    pub family: Family,
    pub train: Split,
    pub val: Option<Split>,
    pub test: Option<Split>,
    /// Number of outputs K.
    pub k: usize,
}

impl Problem {
    /// Assemble and validate a problem. `k` defaults to what the training labels imply (max
    /// label + 1 over all splits for class labels).
    pub fn new(
        family: Family,
        train: Split,
        val: Option<Split>,
        test: Option<Split>,
        k: Option<usize>,
    ) -> Result<Self> {
        let d = train.d;
        if d == 0 {
            return Err(SolverError::Config("the training split has 0 features".into()));
        }
        let k = k.unwrap_or_else(|| train.implied_outputs());
        if k == 0 {
            return Err(SolverError::Config("no outputs: K = 0".into()));
        }
        train.validate(family, k, d)?;
        if let Targets::Classes(labels) = &train.targets {
            let mut seen = vec![false; k];
            labels.iter().for_each(|&l| seen[l as usize] = true);
            if seen.iter().filter(|s| **s).count() < 2 {
                return Err(SolverError::Config(format!(
                    "the training split holds a single class ({}); a classifier needs at least 2",
                    labels[0]
                )));
            }
        }
        for s in [&val, &test].into_iter().flatten() {
            s.validate(family, k, d)?;
        }
        Ok(Problem {
            family,
            train,
            val,
            test,
            k,
        })
    }

    pub fn d(&self) -> usize {
        self.train.d
    }
}
