//! `fit` as a library: the stages of a debuggable network's run, callable from Rust without
//! the command line. Each module is one stage; the `fit` binary parses its arguments and calls
//! them.
//!
//! - [`run_cmd`]: the main job (data, backbone features, path, dense layer, tables);
//! - [`path_cmd`]: the path on feature files a user already has;
//! - [`interpret_cmd`], [`debug_cmd`], [`report_cmd`]: reading a finished run's features;
//! - [`predict`]: the debuggable network on new inputs, with each prediction's evidence;
//! - [`export_cmd`]: the decision layer for PyTorch;
//! - [`run_folder`]: a run folder's files as typed values.
//!
//! The pipeline from Rust: a run on the offline Rotten Tomatoes snippets with MiniLM (`cargo
//! xtask fetch` puts them in the data folder), its table, and the debuggable network on a new
//! sentence with the features that decided it.
//!
//! ```
//! # fn main() -> anyhow::Result<()> {
//! use fit::predict::{Inputs, Predictor};
//! use fit::run_cmd::{self, RunArgs};
//! use fit::run_folder::RunFolder;
//!
//! let out = std::env::temp_dir().join(format!("fit-doc-{}", std::process::id()));
//! let mut job = RunArgs::new("rotten-tomatoes", "minilm", &out);
//! job.max_examples = Some(120);
//! job.k = 8;
//! job.quiet = true;
//! run_cmd::run(job)?;
//!
//! let metrics = RunFolder::new(&out).metrics()?;
//! assert!(metrics.sparse.features_used <= metrics.dense.features_used);
//!
//! let predictor = Predictor::open(&out, &solver::BackendKind::Flex.device()?, None)?;
//! let sentence = Inputs::Text(vec!["A gorgeous, witty film that never stops surprising.".into()]);
//! let prediction = &predictor.predict(&sentence, false)?[0];
//! let logit = prediction.bias as f64 + prediction.evidence.iter().map(|e| e.contribution).sum::<f64>();
//! assert!((logit - prediction.sparse.logit).abs() < 1e-5);
//! println!("{}", fit::predict::render_text(prediction, 5));
//! # std::fs::remove_dir_all(&out)?;
//! # Ok(())
//! # }
//! ```

pub mod backbones;
pub mod debug_cmd;
pub mod export_cmd;
pub mod finetune_cmd;
pub mod floor_cmd;
pub mod interpret_cmd;
pub mod path_cmd;
pub mod predict;
pub mod progress;
pub mod recipe;
pub mod report_cmd;
pub mod run_cmd;
pub mod run_folder;

/// How long the path keeps freed pages (ms): its step buffers recur within milliseconds; its
/// screened copies of X (hundreds of MB at ImageNet size, one size per λ) are then returned.
pub const PATH_PURGE_DELAY_MS: u32 = 1000;
