//! The backend a path runs on: the workspace's one `--backend` → burn [`Device`] mapping lives in
//! the `backend` crate; it is re-exported here so `solver::BackendKind` keeps working.

pub use backend::{device_named, BackendError, BackendKind, Device};

use crate::error::SolverError;

impl From<BackendError> for SolverError {
    fn from(e: BackendError) -> Self {
        SolverError::Backend(e.to_string())
    }
}
