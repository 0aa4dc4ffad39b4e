//! The one place where a backend name (`--backend`) becomes a burn [`Device`]. burn 0.22 picks
//! the backend from the device at run time; a backend must also be compiled in (cargo feature).

use burn::tensor::Device;

use crate::error::{Result, SolverError};

/// Backends a user can name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Flex,
    Ndarray,
    Wgpu,
    Tch,
    Cuda,
}

impl BackendKind {
    pub const ALL: [BackendKind; 5] = [
        BackendKind::Flex,
        BackendKind::Ndarray,
        BackendKind::Wgpu,
        BackendKind::Tch,
        BackendKind::Cuda,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Flex => "flex",
            BackendKind::Ndarray => "ndarray",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Tch => "tch",
            BackendKind::Cuda => "cuda",
        }
    }

    /// Whether this binary was built with the backend's cargo feature.
    pub fn compiled_in(self) -> bool {
        match self {
            BackendKind::Flex => cfg!(feature = "flex"),
            BackendKind::Ndarray => cfg!(feature = "ndarray"),
            BackendKind::Wgpu => cfg!(feature = "wgpu"),
            BackendKind::Tch => cfg!(feature = "tch"),
            BackendKind::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// Backends compiled into this binary.
    pub fn available() -> Vec<BackendKind> {
        Self::ALL.into_iter().filter(|b| b.compiled_in()).collect()
    }

    /// The device of this backend, or a one-line error naming the feature to enable.
    #[cfg_attr(
        not(any(
            feature = "flex",
            feature = "ndarray",
            feature = "wgpu",
            feature = "tch",
            feature = "cuda"
        )),
        allow(unreachable_code, unused_variables)
    )]
    pub fn device(self) -> Result<Device> {
        if !self.compiled_in() {
            return Err(SolverError::Backend(format!(
                "the {0} backend is not built into this binary; rebuild with `--features {0}` (built in: {1})",
                self.name(),
                Self::available().iter().map(|b| b.name()).collect::<Vec<_>>().join(", ")
            )));
        }
        let device = match self {
            #[cfg(feature = "flex")]
            BackendKind::Flex => Device::flex(),
            #[cfg(feature = "ndarray")]
            BackendKind::Ndarray => Device::ndarray(),
            #[cfg(feature = "wgpu")]
            BackendKind::Wgpu => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
            #[cfg(feature = "tch")]
            BackendKind::Tch => Device::libtorch(),
            #[cfg(feature = "cuda")]
            BackendKind::Cuda => Device::cuda(0),
            #[allow(unreachable_patterns)]
            _ => unreachable!("checked by compiled_in"),
        };
        probe(self, &device)?;
        Ok(device)
    }
}

/// Run one tiny operation so a missing adapter or driver shows up here as a typed error, not as
/// a panic deep inside the first real computation.
fn probe(kind: BackendKind, device: &Device) -> Result<()> {
    let device = device.clone();
    let outcome = std::panic::catch_unwind(move || {
        let t = burn::tensor::Tensor::<1>::from_floats([1.0, 2.0], &device);
        t.sum().into_scalar::<f32>()
    });
    match outcome {
        Ok(3.0) => Ok(()),
        Ok(v) => Err(SolverError::Backend(format!(
            "the {} device computed 1 + 2 = {v}",
            kind.name()
        ))),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown error".into());
            let first = msg.lines().next().unwrap_or_default().to_string();
            Err(SolverError::Backend(format!(
                "no usable {} device: {first}",
                kind.name()
            )))
        }
    }
}

impl std::str::FromStr for BackendKind {
    type Err = SolverError;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|b| b.name() == s).ok_or_else(|| {
            SolverError::Backend(format!(
                "unknown backend '{s}' (expected flex, ndarray, wgpu, tch or cuda)"
            ))
        })
    }
}
