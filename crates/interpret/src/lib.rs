//! Reading sparse decision layers (design §3–4): the path plots (accuracy against features per
//! class, Figure 4a; coefficient paths), prototypes (top- and bottom-activating examples of a
//! deep feature), LIME on deep features (words of a sentence, superpixels of an image; all D
//! features from the same perturbed forward passes), word clouds, image grids and overlays, and
//! the run's HTML report.

pub mod featvis;
pub mod images;
pub mod lime;
pub mod plots;
pub mod reading;
pub mod report;
pub mod superpixels;
pub mod text;
pub mod wordcloud;
pub mod words;

#[derive(Debug, thiserror::Error)]
pub enum InterpretError {
    #[error("plot {path}: {reason}")]
    Plot {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("report {path}: {reason}")]
    Report {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("image {path}: {reason}")]
    Image {
        path: std::path::PathBuf,
        reason: String,
    },
}
