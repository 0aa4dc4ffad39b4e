//! Reading sparse decision layers (design §3–4). So far: the path plots (accuracy against
//! features per class, Figure 4a). Prototypes, LIME on deep features, word clouds and the HTML
//! report belong here too (issue 7).

pub mod images;
pub mod plots;
pub mod superpixels;
pub mod text;
pub mod wordcloud;

#[derive(Debug, thiserror::Error)]
pub enum InterpretError {
    #[error("plot {path}: {reason}")]
    Plot {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("image {path}: {reason}")]
    Image {
        path: std::path::PathBuf,
        reason: String,
    },
}
