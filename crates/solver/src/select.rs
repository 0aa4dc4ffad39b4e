//! Choosing the decision layer from a path (design §3): the *sparsest* layer whose validation
//! score is within a threshold of the best on the path (not the band's edge, as the original did).

use serde::{Deserialize, Serialize};

use crate::error::{Result, SolverError};
use crate::path::LambdaRecord;

/// How far below the best validation score a layer may fall and still be selected.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Threshold {
    /// Absolute points of the score, e.g. 0.05 = five accuracy points.
    Absolute(f64),
    /// A fraction of the best score, e.g. 0.05 = within 5% of it.
    Relative(f64),
}

impl Threshold {
    /// A threshold must be a finite number ≥ 0 (NaN would select nothing, after the path).
    pub fn validate(&self) -> Result<()> {
        let (Threshold::Absolute(t) | Threshold::Relative(t)) = *self;
        if !(t >= 0.0 && t.is_finite()) {
            return Err(SolverError::Config(format!(
                "the selection threshold must be a number >= 0, got {t}"
            )));
        }
        Ok(())
    }

    /// The lowest score within the threshold of `reference`.
    pub fn floor(&self, reference: f64) -> f64 {
        match *self {
            Threshold::Absolute(t) => reference - t,
            Threshold::Relative(t) => reference - t * reference.abs(),
        }
    }
}

impl Default for Threshold {
    fn default() -> Self {
        Threshold::Absolute(0.05)
    }
}

/// The outcome of selection, with the indices into the path's records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    pub best_index: usize,
    pub best_val_score: f64,
    pub selected_index: usize,
    pub selected_val_score: f64,
    /// The lowest validation score that qualified.
    pub cutoff: f64,
    pub threshold: Threshold,
    /// The reference score the cutoff was taken from, when not the path's best (see
    /// [`select_against`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<f64>,
}

/// Pick the sparsest layer whose validation score is within `threshold` of the path's best;
/// ties go to the higher score.
pub fn select(records: &[LambdaRecord], threshold: Threshold) -> Result<Selection> {
    select_from(records, threshold, None)
}

/// Pick the sparsest layer whose validation score is within `threshold` of `reference` (e.g.
/// the backbone's own head), so a path ended once it reached that band needs no dense end.
/// When no layer reaches the band, the path's best is selected (its score says so).
pub fn select_against(records: &[LambdaRecord], threshold: Threshold, reference: f64) -> Result<Selection> {
    if !reference.is_finite() {
        return Err(SolverError::Config(format!(
            "the reference score must be finite, got {reference}"
        )));
    }
    select_from(records, threshold, Some(reference))
}

fn select_from(records: &[LambdaRecord], threshold: Threshold, reference: Option<f64>) -> Result<Selection> {
    threshold.validate()?;
    let scores: Vec<f64> = records
        .iter()
        .map(|r| r.val.map(|v| v.score()).ok_or(()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| SolverError::Config("selection needs a validation split".into()))?;
    let (best_index, best) = scores
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, s)| s.is_finite())
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .ok_or_else(|| SolverError::Config("no finite validation score on the path".into()))?;
    let cutoff = threshold.floor(reference.unwrap_or(best));
    let selected_index = records
        .iter()
        .zip(&scores)
        .enumerate()
        .filter(|(_, (_, s))| **s >= cutoff)
        .min_by(|(_, (ra, sa)), (_, (rb, sb))| ra.nnz.cmp(&rb.nnz).then(sb.total_cmp(sa)))
        .map(|(i, _)| i)
        // Only a reference above every layer's reach leaves the band empty.
        .unwrap_or(best_index);
    Ok(Selection {
        best_index,
        best_val_score: best,
        selected_index,
        selected_val_score: scores[selected_index],
        cutoff,
        threshold,
        reference,
    })
}
