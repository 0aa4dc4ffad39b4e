//! The memory plan of a path (design §6): what the solver holds, in bytes, printed before it
//! starts and stored in `path.json`, beside the process's measured peak. X and the SAGA table
//! exist once each; everything else is small or chunk-sized.

use serde::{Deserialize, Serialize};

use crate::config::PathConfig;
use crate::data::{Problem, Split, Targets};
use crate::engine::{screened_columns_in_place, FULL_PASS_ELEMENTS, HOST_EPOCH_MAX_FEATURES};

/// Bytes the solver holds for one path, by item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryPlan {
    /// Where the items below live: "host" for CPU backends, else the accelerator.
    pub device: String,
    /// How the features are stored (f32, f16, bf16); the x_* sizes are in that precision.
    #[serde(default)]
    pub storage: crate::data::Storage,
    pub x_train: u64,
    pub x_val: u64,
    pub x_test: u64,
    /// Labels (8 bytes per example) or target matrices, and sample weights, of every split.
    pub targets: u64,
    /// The SAGA table, `n × K` f32.
    pub table: u64,
    /// Layer-sized tensors (`d × K`): W, the table average, the previous solution, the prox
    /// and gradient temporaries, the strong rule's gradient; counted 8 times.
    pub layer_state: u64,
    /// Temporaries of a full pass (logits, probabilities, gradient and, for host-held rows,
    /// the f32 X block of one row chunk; ×4).
    pub pass_chunk: u64,
    /// The screened copy of X (`n × m` for the m screened features), at its largest: screening
    /// stops once m exceeds d/2, and most screened problems read their columns from X in
    /// place (see [`crate::engine::screened_columns_in_place`]).
    pub screened_x_max: u64,
    /// One batch's temporaries (`batch × K` and `batch × m`; ×8).
    pub batch: u64,
}

impl MemoryPlan {
    /// The plan of `problem` on a device described as `device`; `host_epoch`: the fused host
    /// epoch applies (flex, class labels), which reads up to 16 screened columns from an f32
    /// copy.
    pub fn new(problem: &Problem, config: &PathConfig, device: &str, host_epoch: bool) -> Self {
        let (n, d, k) = (problem.train.n as u64, problem.d() as u64, problem.k as u64);
        let f = 4u64;
        let x = |s: Option<&Split>| s.map_or(0, |s| s.x.bytes());
        let targets = [Some(&problem.train), problem.val.as_ref(), problem.test.as_ref()]
            .into_iter()
            .flatten()
            .map(|s| {
                let t = match &s.targets {
                    Targets::Classes(l) => l.len() as u64 * 8,
                    Targets::Dense { values, .. } => values.len() as u64 * f,
                };
                t + s.weights.as_ref().map_or(0, |w| w.len() as u64 * f)
            })
            .sum();
        // Chunks are cut so that both their logits and their X block stay within the limit.
        let width = k.max(d).max(1);
        let chunk_rows = (FULL_PASS_ELEMENTS as u64 / width).max(256).min(n);
        let batch = config.batch_size as u64;
        MemoryPlan {
            device: device.to_string(),
            storage: problem.train.x.storage(),
            x_train: x(Some(&problem.train)),
            x_val: x(problem.val.as_ref()),
            x_test: x(problem.test.as_ref()),
            targets,
            table: n * k * f,
            layer_state: 8 * d * k * f,
            pass_chunk: 4 * chunk_rows * width * f,
            // Screening stops at d/2 features; the host epoch's copy has at most 16 columns.
            // A copy holds the features' precision (f32 for rows read from a file).
            screened_x_max: if screened_columns_in_place((d / 2) as usize, k as usize, host_epoch) {
                if host_epoch {
                    n * (HOST_EPOCH_MAX_FEATURES as u64).min(d / 2) * f
                } else {
                    0
                }
            } else {
                let bytes = match problem.train.x {
                    crate::data::Features::File(_) => 4,
                    ref x => x.storage().bytes() as u64,
                };
                n * (d / 2) * bytes
            },
            batch: 8 * batch * (k + d) * f,
        }
    }

    /// Everything at once, the screened copy at its largest.
    pub fn total(&self) -> u64 {
        self.x_train
            + self.x_val
            + self.x_test
            + self.targets
            + self.table
            + self.layer_state
            + self.pass_chunk
            + self.screened_x_max
            + self.batch
    }

    /// The plan as terminal lines.
    pub fn lines(&self) -> Vec<String> {
        let g = |b: u64| format!("{:.3} GB", b as f64 / 1e9);
        vec![
            format!(
                "memory plan ({}): X ({}) train {}, val {}, test {}; labels/targets {}; SAGA table (n×K) {}",
                self.device,
                self.storage,
                g(self.x_train),
                g(self.x_val),
                g(self.x_test),
                g(self.targets),
                g(self.table)
            ),
            format!(
                "  layer-sized state {}, full-pass chunk {}, batch {}, screened X copy up to {}; total up to {}",
                g(self.layer_state),
                g(self.pass_chunk),
                g(self.batch),
                g(self.screened_x_max),
                g(self.total())
            ),
        ]
    }
}

/// Where a device's tensors live, for the plan's first line: host memory on the CPU backends.
pub fn where_held(device: &burn::tensor::Device) -> String {
    let name = format!("{device:?}");
    let cpu = ["Flex", "NdArray", "Cpu"].iter().any(|c| name.contains(c));
    if cpu {
        "host memory".into()
    } else {
        format!("device memory of {name}")
    }
}

/// This machine's physical memory (Linux `MemTotal`), in bytes.
pub fn physical_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl MemoryPlan {
    /// An error when the plan needs more host memory than the machine has at all: the path
    /// would be killed partway (or take the machine down with it) instead of failing now.
    pub fn check_fits_host(&self) -> crate::error::Result<()> {
        if !self.device.starts_with("host memory") {
            return Ok(());
        }
        match physical_memory() {
            Some(total) if self.total() > total => Err(crate::error::SolverError::Config(format!(
                "the path needs up to {:.1} GB of host memory (the memory plan above) and this machine has {:.1} GB: read the training rows from disk (--stream disk), keep the features in f16 (--storage f16), or fit fewer classes",
                self.total() as f64 / 1e9,
                total as f64 / 1e9
            ))),
            _ => Ok(()),
        }
    }
}

/// The process's peak resident memory so far (Linux `VmHWM`), in bytes.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
