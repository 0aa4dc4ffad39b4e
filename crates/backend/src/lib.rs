//! The one place where a backend name (`--backend flex|ndarray|wgpu|tch|cuda`, or a test's
//! `*_TEST_BACKEND` variable) becomes a burn [`Device`]. burn 0.22 picks the backend from the
//! device at run time; a backend must also be compiled in, through the cargo feature of the same
//! name (`--features wgpu`), which every crate of the workspace forwards here and to burn.
//!
//! Every failure is one line: an unknown name, a backend not built in (naming the feature to
//! enable), or a backend whose device cannot be opened (naming what was missing: a Vulkan/Metal/DX12
//! adapter, libtorch, an NVIDIA driver). A device is opened and checked once per process with one
//! tiny computation, so a missing adapter shows up here and not as a panic deep inside the first
//! real computation.
//!
//! ```
//! use backend::BackendKind;
//! let device = BackendKind::Flex.device()?;
//! let sum = burn::tensor::Tensor::<1>::from_floats([1.0, 2.0], &device).sum().into_scalar::<f32>();
//! assert_eq!(sum, 3.0);
//! assert!("cpu".parse::<BackendKind>().is_err());
//! # Ok::<(), backend::BackendError>(())
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once, OnceLock};

pub use burn::tensor::Device;

pub mod allocator;

/// Backends a user can name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    Flex,
    Ndarray,
    Wgpu,
    Tch,
    Cuda,
}

/// Why a backend name gave no device. Its `Display` is one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    #[error("unknown backend '{name}' (expected flex, ndarray, wgpu, tch or cuda)")]
    Unknown { name: String },
    #[error(
        "the {backend} backend is not built into this binary; rebuild with `--features {backend}` (built in: {built_in})"
    )]
    NotBuiltIn { backend: &'static str, built_in: String },
    #[error("no usable {backend} device: {reason} ({hint})")]
    NoDevice {
        backend: &'static str,
        reason: String,
        hint: &'static str,
    },
}

pub type Result<T, E = BackendError> = std::result::Result<T, E>;

impl BackendKind {
    pub const ALL: [BackendKind; 5] = [
        BackendKind::Flex,
        BackendKind::Ndarray,
        BackendKind::Wgpu,
        BackendKind::Tch,
        BackendKind::Cuda,
    ];

    /// The name on the command line, which is also the cargo feature that builds it in.
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

    /// The backend named by the environment variable `var` (`SOLVER_TEST_BACKEND`, …), or
    /// `default` when it is unset or empty.
    pub fn from_env(var: &str, default: BackendKind) -> Result<BackendKind> {
        match std::env::var(var) {
            Ok(s) if !s.is_empty() => s.parse(),
            _ => Ok(default),
        }
    }

    /// What could not be found when this backend's device does not open.
    fn hint(self) -> &'static str {
        match self {
            BackendKind::Flex | BackendKind::Ndarray => "a CPU backend, which needs no device",
            BackendKind::Wgpu => {
                "no Vulkan, Metal, DX12 or OpenGL adapter was found; for a software Vulkan device on \
                 Debian/Ubuntu: apt-get install mesa-vulkan-drivers libvulkan1"
            }
            BackendKind::Tch => {
                "libtorch 2.9.0 is needed: `eval \"$(scripts/torch-env.sh)\"` installs PyTorch's \
                 and puts torch/lib on LD_LIBRARY_PATH"
            }
            BackendKind::Cuda => "needs an NVIDIA GPU and its driver (libcuda.so)",
        }
    }

    fn no_device(self, reason: &str) -> BackendError {
        let reason = reason
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("unknown error");
        BackendError::NoDevice {
            backend: self.name(),
            reason: reason.trim().to_string(),
            hint: self.hint(),
        }
    }

    /// The device of this backend, opened and checked once per process; or a one-line error
    /// naming the feature to enable or what was missing.
    pub fn device(self) -> Result<Device> {
        if !self.compiled_in() {
            let built_in: Vec<&str> = Self::available().iter().map(|b| b.name()).collect();
            return Err(BackendError::NotBuiltIn {
                backend: self.name(),
                built_in: if built_in.is_empty() {
                    "none".into()
                } else {
                    built_in.join(", ")
                },
            });
        }
        static OPENED: [OnceLock<Result<Device>>; 5] = [const { OnceLock::new() }; 5];
        OPENED[self as usize].get_or_init(|| self.open()).clone()
    }

    #[cfg_attr(
        not(all(
            feature = "flex",
            feature = "ndarray",
            feature = "wgpu",
            feature = "tch",
            feature = "cuda"
        )),
        allow(unreachable_code, unused_variables)
    )]
    fn open(self) -> Result<Device> {
        let device = match self {
            #[cfg(feature = "flex")]
            BackendKind::Flex => Device::flex(),
            // burn-ndarray and burn-tch are deprecated upstream; both are still supported here.
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            BackendKind::Ndarray => Device::ndarray(),
            #[cfg(feature = "wgpu")]
            BackendKind::Wgpu => match Device::wgpu_options().init() {
                Ok(device) => device,
                // Also an error when the runtime was already started by a tensor operation on
                // `Device::wgpu(..)`: the probe below then decides.
                Err(e) => {
                    let lazy = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
                    if probe(&lazy).is_err() {
                        return Err(self.no_device(&e.to_string()));
                    }
                    lazy
                }
            },
            #[cfg(feature = "tch")]
            #[allow(deprecated)]
            BackendKind::Tch => Device::libtorch(),
            #[cfg(feature = "cuda")]
            BackendKind::Cuda => Device::cuda(0),
            #[allow(unreachable_patterns)]
            _ => unreachable!("checked by compiled_in"),
        };
        match probe(&device) {
            Ok(3.0) => Ok(device),
            Ok(v) => Err(self.no_device(&format!("the device computed 1 + 2 = {v}"))),
            Err(msg) => Err(self.no_device(&msg)),
        }
    }

    /// A short description of the device for tables: the adapter's own name on wgpu and cuda.
    pub fn describe(self, device: &Device) -> String {
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        if matches!(self, BackendKind::Wgpu | BackendKind::Cuda) {
            if let Ok(Some(id)) = catch_quietly(|| device.identity()) {
                return id.name;
            }
        }
        let _ = device;
        match self {
            BackendKind::Flex => "CPU (burn-flex, pure Rust)".into(),
            BackendKind::Ndarray => "CPU (burn-ndarray)".into(),
            BackendKind::Tch => "CPU (libtorch)".into(),
            BackendKind::Wgpu => "wgpu adapter".into(),
            BackendKind::Cuda => "CUDA device 0".into(),
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BackendKind {
    type Err = BackendError;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| BackendError::Unknown { name: s.to_string() })
    }
}

/// The device of the backend named `name`: [`BackendKind::from_str`] then [`BackendKind::device`].
pub fn device_named(name: &str) -> Result<Device> {
    name.parse::<BackendKind>()?.device()
}

/// 1 + 2 on the device, or the first line of the panic it raised.
fn probe(device: &Device) -> Result<f32, String> {
    let device = device.clone();
    catch_quietly(move || {
        burn::tensor::Tensor::<1>::from_floats([1.0, 2.0], &device)
            .sum()
            .into_scalar::<f32>()
    })
}

/// While set, the panic hook prints nothing: a device that fails to open panics inside burn, and
/// that panic becomes our one-line error instead of a backtrace note on stderr.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Run `f`, turning a panic into its message, without the panic hook's output. Panics of other
/// threads during `f` are silenced too (burn may open a device on a worker thread), so calls
/// are serialized and kept short.
fn catch_quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static HOOK: Once = Once::new();
    static LOCK: Mutex<()> = Mutex::new(());
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.load(Ordering::SeqCst) {
                previous(info)
            }
        }));
    });
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    QUIET.store(true, Ordering::SeqCst);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.store(false, Ordering::SeqCst);
    outcome.map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown error".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_line(e: &BackendError) -> String {
        let s = e.to_string();
        assert!(!s.contains('\n'), "not one line: {s:?}");
        s
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_one_line() {
        for b in BackendKind::ALL {
            assert_eq!(b.name().parse::<BackendKind>().unwrap(), b);
            assert_eq!(b.to_string(), b.name());
        }
        let e = "vulkan".parse::<BackendKind>().unwrap_err();
        assert_eq!(
            one_line(&e),
            "unknown backend 'vulkan' (expected flex, ndarray, wgpu, tch or cuda)"
        );
        assert!(matches!(device_named("gpu"), Err(BackendError::Unknown { .. })));
    }

    #[test]
    fn a_backend_not_built_in_names_its_feature() {
        let missing: Vec<BackendKind> = BackendKind::ALL
            .into_iter()
            .filter(|b| !b.compiled_in())
            .collect();
        if missing.is_empty() {
            eprintln!("every backend is built into this test build; nothing to check");
            return;
        }
        let built_in: Vec<&str> = BackendKind::available().iter().map(|b| b.name()).collect();
        for b in missing {
            let e = b.device().unwrap_err();
            assert_eq!(
                one_line(&e),
                format!(
                    "the {0} backend is not built into this binary; rebuild with `--features {0}` (built in: {1})",
                    b.name(),
                    built_in.join(", ")
                )
            );
            assert_eq!(device_named(b.name()).unwrap_err(), e);
        }
    }

    #[test]
    fn built_in_backends_open_once_and_compute() {
        for b in BackendKind::available() {
            let device = match b.device() {
                Ok(d) => d,
                // A GPU backend built in on a machine without its device: the error is one line
                // that says what was missing.
                Err(e @ BackendError::NoDevice { .. })
                    if matches!(b, BackendKind::Wgpu | BackendKind::Cuda | BackendKind::Tch) =>
                {
                    let s = one_line(&e);
                    assert!(s.starts_with(&format!("no usable {} device: ", b.name())), "{s}");
                    continue;
                }
                Err(e) => panic!("{b}: {e}"),
            };
            assert_eq!(
                b.device().unwrap(),
                device,
                "{b}: a second call gives the same device"
            );
            let t = burn::tensor::Tensor::<1>::from_floats([1.5, 2.0, -0.5], &device);
            assert_eq!(t.sum().into_scalar::<f32>(), 3.0, "{b}");
            assert!(!b.describe(&device).is_empty());
        }
    }

    #[test]
    fn from_env_defaults_and_parses() {
        let var = "BACKEND_CRATE_TEST_FROM_ENV";
        assert_eq!(
            BackendKind::from_env(var, BackendKind::Ndarray).unwrap(),
            BackendKind::Ndarray
        );
        // Only this test touches this variable.
        unsafe { std::env::set_var(var, "tch") };
        assert_eq!(
            BackendKind::from_env(var, BackendKind::Flex).unwrap(),
            BackendKind::Tch
        );
        unsafe { std::env::set_var(var, "metal") };
        assert!(matches!(
            BackendKind::from_env(var, BackendKind::Flex),
            Err(BackendError::Unknown { .. })
        ));
    }

    #[test]
    fn a_failed_device_is_one_line_naming_what_was_missing() {
        let e = BackendKind::Wgpu.no_device(
            "No adapter available for DefaultDevice: no adapter found\nnote: run with `RUST_BACKTRACE=1`",
        );
        let s = one_line(&e);
        assert!(
            s.starts_with(
                "no usable wgpu device: No adapter available for DefaultDevice: no adapter found ("
            ),
            "{s}"
        );
        assert!(s.contains("mesa-vulkan-drivers"), "{s}");
        let s = one_line(&BackendKind::Cuda.no_device("\n  CUDA_ERROR_NO_DEVICE  \n"));
        assert!(
            s.starts_with("no usable cuda device: CUDA_ERROR_NO_DEVICE (needs an NVIDIA GPU"),
            "{s}"
        );
        let s = one_line(&BackendKind::Tch.no_device("libtorch_cpu.so: cannot open shared object file"));
        assert!(
            s.contains("scripts/torch-env.sh") && s.contains("LD_LIBRARY_PATH"),
            "{s}"
        );
    }

    #[test]
    fn a_panic_inside_catch_quietly_is_its_message() {
        assert_eq!(catch_quietly(|| 7).unwrap(), 7);
        let e = catch_quietly(|| -> u8 { panic!("no adapter {}", 3) }).unwrap_err();
        assert_eq!(e, "no adapter 3");
    }
}
