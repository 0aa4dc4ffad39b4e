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
}

/// Pick the sparsest layer whose validation score ≥ cutoff; ties go to the higher score.
pub fn select(records: &[LambdaRecord], threshold: Threshold) -> Result<Selection> {
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
    let cutoff = match threshold {
        Threshold::Absolute(t) => best - t,
        Threshold::Relative(t) => best - t * best.abs(),
    };
    let selected_index = records
        .iter()
        .zip(&scores)
        .enumerate()
        .filter(|(_, (_, s))| **s >= cutoff)
        .min_by(|(_, (ra, sa)), (_, (rb, sb))| ra.nnz.cmp(&rb.nnz).then(sb.total_cmp(sa)))
        .map(|(i, _)| i)
        .expect("the best layer always qualifies");
    Ok(Selection {
        best_index,
        best_val_score: best,
        selected_index,
        selected_val_score: scores[selected_index],
        cutoff,
        threshold,
    })
}
