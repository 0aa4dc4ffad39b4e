//! Elastic-net regularization paths of GLMs (multinomial, gaussian, multilabel) by mini-batch
//! SAGA, on any burn backend: glm_saga's algorithm with its bugs fixed (see `shared/design.md`
//! §2). The entry points are [`run_path`] for a whole path and [`fit_lambda`] for one λ.
//!
//! ```no_run
//! use solver::{BackendKind, Family, PathConfig, Problem, RunOptions, Split, Standardizer, Targets};
//! let mut train = Split::new("train", vec![0.0; 8], 4, 2, Targets::Classes(vec![0, 1, 0, 1]))?;
//! let standardizer = Standardizer::fit(&train);
//! standardizer.apply(&mut train);
//! let problem = Problem::new(Family::Multinomial, train, None, None, None)?;
//! let device = BackendKind::Flex.device()?;
//! let path = solver::run_path(problem, &standardizer, &PathConfig::default(), &device, &RunOptions::default())?;
//! println!("λ_max = {}", path.lambda_max);
//! # Ok::<(), solver::SolverError>(())
//! ```

pub mod backend;
pub mod config;
pub mod data;
pub mod engine;
pub mod error;
pub mod evaluate;
pub mod filerows;
pub mod host;
pub mod io;
pub mod memory;
pub mod path;
pub mod select;

pub use backend::BackendKind;
pub use config::{Family, PathConfig, StepSize};
pub use data::{Features, Problem, Split, Standardizer, Storage, Targets};
pub use error::{Result, SolverError};
pub use io::{FeatureSource, Layer};
pub use memory::MemoryPlan;
pub use path::{
    fit_lambda, fit_lambda_shown, run_path, Hooks, InterruptCheck, LambdaRecord, LambdaReport, PathResult,
    RunOptions, SplitMetrics, StopReason,
};
pub use select::{select, select_against, Selection, Threshold};

/// Re-exported so users need not depend on burn to name a device.
pub use burn::tensor::Device;
