//! The device side of the solver: data resident on a burn device, the mini-batch SAGA epoch
//! (design §2, one GEMM per batch for the logits and one for the gradient, never a |B|×K×d
//! tensor), the proximal steps, and full-pass evaluations (objective, KKT, scores).
//!
//! Memory (design §6): X is held once, class labels stay indices (a one-hot `[n, K]` matrix is
//! as large as the SAGA table), and every full pass over the rows (gradient, table fill,
//! evaluation) runs in row chunks of [`FULL_PASS_ELEMENTS`] logits, so nothing n-sized exists
//! beside X and the table.
//!
//! Everything here is backend-agnostic: tensors follow the `Device` they were created on.

use burn::tensor::activation::sigmoid;
use burn::tensor::kind::Basic;
use burn::tensor::{Device, IndexingUpdateOp, Int, Tensor, TensorData};

use crate::config::Family;
use crate::data::{Features, Split, Targets};

/// Largest `rows × K` block a full pass materialises at once (logits, probabilities, the
/// loss gradient): 2²³ floats = 32 MiB. Problems with `n·K` below it run in one chunk.
pub const FULL_PASS_ELEMENTS: usize = 1 << 23;

/// Row chunks `(start, len)` covering `n` rows so that a `len × width` block stays within
/// [`FULL_PASS_ELEMENTS`] (at least 256 rows per chunk).
pub fn row_chunks(n: usize, width: usize) -> impl Iterator<Item = (usize, usize)> {
    let rows = (FULL_PASS_ELEMENTS / width.max(1)).max(256).min(n.max(1));
    (0..n).step_by(rows).map(move |s| (s, rows.min(n - s)))
}

/// What a split's examples are labelled with, on the device.
#[derive(Clone)]
pub enum DeviceTargets {
    /// Class indices `[n, 1]` (multinomial). The one-hot rows are never stored: the loss
    /// gathers each example's logit and the gradient subtracts 1 at its class.
    Classes(Tensor<2, Int>),
    /// Real targets `[n, K]` (gaussian outputs, multilabel indicators).
    Dense(Tensor<2>),
}

impl DeviceTargets {
    fn upload(targets: Targets, n: usize, device: &Device) -> Self {
        match targets {
            Targets::Classes(labels) => {
                DeviceTargets::Classes(Tensor::from_data(TensorData::new(labels, [n, 1]), device))
            }
            Targets::Dense { values, k } => {
                DeviceTargets::Dense(Tensor::from_data(TensorData::new(values, [n, k]), device))
            }
        }
    }

    /// Rows `start..start+len` (wrapping past the end like [`rows`]).
    pub fn rows(&self, start: usize, len: usize, n: usize) -> Self {
        match self {
            DeviceTargets::Classes(t) => DeviceTargets::Classes(rows(t.clone(), start, len, n)),
            DeviceTargets::Dense(t) => DeviceTargets::Dense(rows(t.clone(), start, len, n)),
        }
    }

    /// The `[rows, K]` target matrix (one-hot for classes): only ever built for a chunk.
    pub fn dense(&self, k: usize) -> Tensor<2> {
        match self {
            DeviceTargets::Classes(t) => {
                let rows = t.dims()[0];
                t.clone().reshape([rows]).one_hot::<2>(k).float()
            }
            DeviceTargets::Dense(t) => t.clone(),
        }
    }
}

/// Where a split's features are: a device tensor, or host rows in their storage precision
/// that reach the device block by block as f32 (a batch, a chunk of a full pass, the screened
/// columns). Host rows are how half-precision storage is held (2 bytes a value, computed in
/// f32), and how a GPU holds only the table, W and the blocks in flight (`--stream`). Both
/// give the same f32 blocks, so the same seed gives the same path bit for bit.
#[derive(Clone)]
// One per split: the size of its variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum FeatureRows {
    Device(Tensor<2>),
    Host(std::sync::Arc<Features>),
    /// Some columns of a wider X, read in place a block at a time: the screened problem of
    /// one λ without an `n × m` copy of X (see [`screened_columns_in_place`]).
    Columns(std::sync::Arc<ColumnView>),
}

/// The screened columns of a split's X, read from its rows (device tensor or host rows) as
/// blocks are needed: a batch's block is gathered from the rows, so it holds the same f32
/// values a copy of those columns would give, and the path is the same bit for bit.
pub struct ColumnView {
    /// The full rows: [`FeatureRows::Device`] or [`FeatureRows::Host`], never a view.
    rows: FeatureRows,
    /// Values per row of `rows` (the full d).
    width: usize,
    /// The columns read, in order.
    list: std::sync::Arc<[usize]>,
    /// `list` as a device index, for device-held rows.
    index: Tensor<1, Int>,
}

impl ColumnView {
    /// Rows `start..start+len` (of `n`, wrapping) of the listed columns of device-held rows.
    fn device_block(&self, start: usize, len: usize, n: usize) -> Tensor<2> {
        let FeatureRows::Device(x) = &self.rows else {
            unreachable!("host rows are read by a HostReader")
        };
        rows(x.clone(), start, len, n).select(1, self.index.clone())
    }
}

/// One split uploaded to a device: features `[n, d]`, targets, optional sample weights `[n, 1]`.
pub struct DeviceSplit {
    pub x: FeatureRows,
    pub y: DeviceTargets,
    pub w: Option<Tensor<2>>,
    pub n: usize,
    pub d: usize,
    pub k: usize,
    /// Class labels and weights on the host, in row order, where the fused host batch
    /// ([`crate::host`]) applies: class labels on a backend whose tensors are host memory.
    pub host: Option<HostRows>,
    device: Device,
}

/// Labels (and weights) of a split's rows, on the host.
#[derive(Clone)]
pub struct HostRows {
    pub labels: std::sync::Arc<[i64]>,
    pub weights: Option<std::sync::Arc<[f32]>>,
    /// The split's X itself, shared with its tensor without a copy, for a screened split of
    /// at most [`HOST_EPOCH_MAX_FEATURES`] features: its epochs run whole on the host.
    pub x: Option<burn::tensor::Bytes>,
    /// The (feature, class) pairs a screened problem solves for, when it is screened by pair
    /// (see [`crate::host::PairSet`]): its epochs and table averages then run on the host
    /// over those pairs ([`crate::host::saga_pair_epoch`]).
    pub pairs: Option<std::sync::Arc<crate::host::PairSet>>,
}

impl HostRows {
    /// The rows of X as f32 (`[n, m]` row-major), when held.
    pub fn x_rows(&self) -> Option<&[f32]> {
        self.x.as_ref().map(|b| {
            let bytes: &[u8] = b;
            assert!(
                bytes.as_ptr().align_offset(4) == 0 && bytes.len().is_multiple_of(4),
                "f32 rows"
            );
            // SAFETY: the buffer was made from a Vec<f32> (aligned, whole f32 values) and is
            // never written while shared (a write would copy it first).
            unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), bytes.len() / 4) }
        })
    }
}

/// Screened splits of at most this many features run their epochs whole on the host
/// ([`crate::host::saga_epoch`]) where host kernels apply: per row `2·m·K` multiply-adds in
/// cache against two skinny GEMMs per batch. Measured on `w4` (K = 1,000, `fit floor
/// --active M`, host vs tensor epoch): 0.27 vs 0.35 s at 5 features, 0.35 vs 0.40 s at 10,
/// equal at 20, 0.80 vs 0.63 s at 40 (each row re-reads W, where a GEMM blocks over rows).
pub const HOST_EPOCH_MAX_FEATURES: usize = 16;

/// Screened problems with at least this many outputs read their columns from X in place
/// rather than from an `n × m` copy: gathering a batch's `B × m` block costs little beside its
/// two `B × m × K` GEMMs at large K (and it is done ahead on a second core: a reader thread
/// for host rows, a gather thread for flex tensors), while at ImageNet size the copy is
/// gigabytes (w5: 1.28M rows, 2.6 GB at 500 f32 columns). With few outputs the gather rivals
/// the GEMMs and the copy is small. Measured by `fit floor --active M` (tensor epoch, copy vs
/// in place): w4 (K = 1,000) 0.57 vs 0.62 s at M = 32, 2.31 vs 2.27 s at 256; w3 (K = 100)
/// 0.011 vs 0.013 s at 32; w2 (K = 10) 0.005 vs 0.062 s.
pub const SCREENED_IN_PLACE_MIN_OUTPUTS: usize = 256;

/// Whether the screened problem of `m` features (K outputs) reads its columns from X in
/// place rather than from an `n × m` copy: from K = [`SCREENED_IN_PLACE_MIN_OUTPUTS`],
/// wherever X is held, except for the host epoch (`host_epoch_applies` and m ≤
/// [`HOST_EPOCH_MAX_FEATURES`]), which reads its ≤ 16 columns as contiguous f32 rows.
pub fn screened_columns_in_place(m: usize, k: usize, host_epoch_applies: bool) -> bool {
    let host_epoch = host_epoch_applies && m <= HOST_EPOCH_MAX_FEATURES;
    !host_epoch && k >= SCREENED_IN_PLACE_MIN_OUTPUTS
}

/// Whether a split with these targets on `device` runs its multinomial batches (and its
/// screened epochs) in the host kernels of [`crate::host`]: class labels on flex.
pub fn host_epochs_apply(targets: &Targets, device: &Device) -> bool {
    matches!(targets, Targets::Classes(_)) && host_kernels_apply(device)
}

/// Whether `device`'s tensors are host buffers that cross to and from `Vec`s without a copy
/// (flex), so the fused host batch can own the SAGA table during an epoch.
pub fn host_kernels_apply(device: &Device) -> bool {
    // `Device<Flex(..)>`: burn does not re-export its dispatch enum to match on.
    format!("{device:?}").contains("Flex(")
}

impl DeviceSplit {
    /// Upload a copy of a split (the caller keeps its host data).
    pub fn upload(split: &Split, k: usize, device: &Device) -> Self {
        Self::from_split(split.clone(), k, device, None, false)
    }

    /// Move a split to the device, its rows first put in the random order of `shuffle_seed`
    /// when given: SAGA's epochs then take consecutive rows as their batches ([`EpochPlan`]).
    /// Losses, gradients and the objective are sums over examples, so nothing else sees the
    /// order; the n×K table follows it. The rows are permuted in place on the host and the
    /// buffer handed to the backend, so X exists once (on CPU backends the tensor is that
    /// buffer; a GPU backend copies it to the device and the host copy is freed).
    ///
    /// Features stored in half precision, or any features when `host_rows` is set, stay on
    /// the host ([`FeatureRows::Host`]) and reach the device a block at a time.
    pub fn from_split(
        split: Split,
        k: usize,
        device: &Device,
        shuffle_seed: Option<u64>,
        host_rows: bool,
    ) -> Self {
        let Split {
            mut x,
            n,
            d,
            mut targets,
            mut weights,
            ..
        } = split;
        if let Some(seed) = shuffle_seed {
            let perm = shuffled_order(n, seed);
            x.permute_rows(d, &perm);
            match &mut targets {
                Targets::Classes(labels) => permute_rows(labels, 1, &perm),
                Targets::Dense { values, k } => permute_rows(values, *k, &perm),
            }
            if let Some(w) = &mut weights {
                permute_rows(w, 1, &perm);
            }
        }
        let host = match &targets {
            Targets::Classes(labels) if host_epochs_apply(&targets, device) => Some(HostRows {
                labels: labels.as_slice().into(),
                weights: weights.as_deref().map(Into::into),
                x: None,
                pairs: None,
            }),
            _ => None,
        };
        let x = match x {
            Features::F32(x) if !host_rows => {
                FeatureRows::Device(Tensor::<2>::from_data(TensorData::new(x, [n, d]), device))
            }
            x => FeatureRows::Host(std::sync::Arc::new(x)),
        };
        let y = DeviceTargets::upload(targets, n, device);
        let w = weights.map(|w| Tensor::<2>::from_data(TensorData::new(w, [n, 1]), device));
        DeviceSplit {
            x,
            y,
            w,
            n,
            d,
            k,
            host,
            device: device.clone(),
        }
    }

    pub fn device(&self) -> Device {
        self.device.clone()
    }

    /// X as a device tensor: a split held on the device, or a chunk of a full pass
    /// ([`DeviceSplit::chunks`]). Host-held rows are read through `chunks`, `batch_x` and
    /// `columns`; asking them for the whole tensor is a bug.
    pub fn x(&self) -> &Tensor<2> {
        match &self.x {
            FeatureRows::Device(x) => x,
            FeatureRows::Host(_) | FeatureRows::Columns(_) => {
                panic!("host-held rows and screened columns are read in blocks, not as one tensor")
            }
        }
    }

    /// Rows `start..start+len` of X (wrapping past the last row like [`rows`]) as f32 on the
    /// device: a view of a device-held X, a converted upload of host rows, the screened
    /// columns gathered from either.
    pub fn batch_x(&self, start: usize, len: usize) -> Tensor<2> {
        if let Some(reader) = self.host_reader() {
            let block = reader.block(start, len, self.n);
            return Tensor::from_data(TensorData::new(block, [len, self.d]), &self.device);
        }
        match &self.x {
            FeatureRows::Device(x) => rows(x.clone(), start, len, self.n),
            FeatureRows::Columns(view) => view.device_block(start, len, self.n),
            FeatureRows::Host(_) => unreachable!("host rows have a reader"),
        }
    }

    /// How host-held rows (whole, or the screened columns of them) are read, `None` when X is
    /// on the device.
    fn host_reader(&self) -> Option<HostReader> {
        match &self.x {
            FeatureRows::Device(_) => None,
            FeatureRows::Host(values) => Some(HostReader {
                values: values.clone(),
                width: self.d,
                columns: None,
            }),
            FeatureRows::Columns(view) => match &view.rows {
                FeatureRows::Host(values) => Some(HostReader {
                    values: values.clone(),
                    width: view.width,
                    columns: Some(view.list.clone()),
                }),
                _ => None,
            },
        }
    }

    /// The X block of each span `(start, len)` in turn, as [`DeviceSplit::batch_x`] gives it;
    /// host rows are read one block ahead on a helper thread (double buffering: the next
    /// block is converted, or read from its file, while the device computes on this one).
    ///
    /// Screened columns gathered from device rows are gathered ahead the same way where the
    /// device is host memory (flex): the gather then costs a second core, not epoch time.
    pub fn x_blocks(&self, spans: Vec<(usize, usize)>) -> impl Iterator<Item = Tensor<2>> + '_ {
        enum Ahead {
            Host(std::sync::mpsc::IntoIter<Vec<f32>>),
            Gathered(std::sync::mpsc::IntoIter<Tensor<2>>),
            None,
        }
        let mut ahead = match (self.host_reader(), &self.x) {
            (Some(reader), _) => Ahead::Host(reader.read_ahead(spans.clone(), self.n)),
            (None, FeatureRows::Columns(view)) if host_kernels_apply(&self.device) => {
                let (view, n) = (view.clone(), self.n);
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                let spans = spans.clone();
                std::thread::spawn(move || {
                    for (start, len) in spans {
                        if tx.send(view.device_block(start, len, n)).is_err() {
                            break;
                        }
                    }
                });
                Ahead::Gathered(rx.into_iter())
            }
            _ => Ahead::None,
        };
        let stopped = "the feature row reader stopped (its error is printed above)";
        spans.into_iter().map(move |(start, len)| match &mut ahead {
            Ahead::Host(blocks) => {
                let block = blocks.next().expect(stopped);
                Tensor::from_data(TensorData::new(block, [len, self.d]), &self.device)
            }
            Ahead::Gathered(blocks) => blocks.next().expect(stopped),
            Ahead::None => self.batch_x(start, len),
        })
    }

    /// [`DeviceSplit::x_blocks`] as host vectors beside their spans, for the host kernels
    /// (flex hands a fresh block's buffer over without a copy).
    pub fn host_x_blocks(
        &self,
        spans: Vec<(usize, usize)>,
    ) -> impl Iterator<Item = ((usize, usize), Vec<f32>)> + '_ {
        spans.clone().into_iter().zip(
            self.x_blocks(spans)
                .map(|x| x.try_into_vec_as::<f32>().expect("f32 features")),
        )
    }

    /// The same split restricted to the feature columns listed in `columns` (the screened
    /// problem of one λ), read in place or from a copy as [`screened_columns_in_place`]
    /// decides; targets and weights are shared.
    pub fn columns(&self, columns: &[usize]) -> DeviceSplit {
        let in_place = screened_columns_in_place(columns.len(), self.k, self.host.is_some());
        self.columns_as(columns, in_place)
    }

    /// This (screened) split solved on the given (feature, class) pairs only: its epochs and
    /// table averages run over them on the host. Only where [`DeviceSplit::pairs_apply`].
    pub fn with_pairs(mut self, pairs: crate::host::PairSet) -> DeviceSplit {
        assert_eq!(pairs.features(), self.d, "one pair list per feature");
        let rows = self
            .host
            .as_mut()
            .expect("pair epochs run where host kernels apply");
        rows.pairs = Some(std::sync::Arc::new(pairs));
        self
    }

    /// Whether this split's screened problems can run on (feature, class) pairs: multinomial
    /// class labels where host kernels apply (flex), with an elementwise penalty (a group
    /// penalty ties a feature's classes together).
    pub fn pairs_apply(&self, family: Family, group: bool) -> bool {
        self.host.is_some() && family == Family::Multinomial && !group
    }

    /// [`DeviceSplit::columns`], read in place from X (`in_place`) or from an `n × m` copy.
    /// Both give the same f32 blocks.
    pub fn columns_as(&self, columns: &[usize], in_place: bool) -> DeviceSplit {
        if let FeatureRows::Columns(view) = &self.x {
            // The columns of a view are columns of its rows.
            let list: Vec<usize> = columns.iter().map(|&j| view.list[j]).collect();
            return self
                .with_rows(view.rows.clone(), view.width)
                .columns_as(&list, in_place);
        }
        if !in_place {
            return self.column_copy(columns);
        }
        let m = columns.len();
        let idx: Vec<i64> = columns.iter().map(|&j| j as i64).collect();
        let view = ColumnView {
            rows: self.x.clone(),
            width: self.d,
            list: columns.into(),
            index: Tensor::<1, Int>::from_data(TensorData::new(idx, [m]), &self.device),
        };
        DeviceSplit {
            // The host epoch reads contiguous rows only.
            host: self.host.clone().map(|h| HostRows { x: None, ..h }),
            ..self.with_rows(FeatureRows::Columns(std::sync::Arc::new(view)), m)
        }
    }

    /// This split with other feature rows of width `d` (same examples, targets, weights).
    fn with_rows(&self, x: FeatureRows, d: usize) -> DeviceSplit {
        DeviceSplit {
            x,
            y: self.y.clone(),
            w: self.w.clone(),
            n: self.n,
            d,
            k: self.k,
            host: self.host.clone(),
            device: self.device.clone(),
        }
    }

    /// The screened columns as one `n × m` copy (in the features' precision for host rows,
    /// f32 where the host epoch reads them).
    fn column_copy(&self, columns: &[usize]) -> DeviceSplit {
        let (n, d, m) = (self.n, self.d, columns.len());
        let device = self.device();
        let host_epoch = self.host.is_some() && m <= HOST_EPOCH_MAX_FEATURES;
        // Half-precision rows keep their precision in the copy (n × m × 2 bytes), converted a
        // batch at a time like X itself, unless the host epoch reads them as f32.
        let selected = match &self.x {
            FeatureRows::Host(values) => Some(values.select_columns(d, columns)),
            FeatureRows::Device(_) => None,
            FeatureRows::Columns(_) => unreachable!("views are resolved to their rows first"),
        };
        let selected = match selected {
            Some(sub) if sub.storage() != crate::data::Storage::F32 && !host_epoch => {
                return DeviceSplit {
                    x: FeatureRows::Host(std::sync::Arc::new(sub)),
                    y: self.y.clone(),
                    w: self.w.clone(),
                    n,
                    d: m,
                    k: self.k,
                    host: self.host.clone(),
                    device,
                };
            }
            other => other,
        };
        // The copy as f32 values on the host, when it is built there or read there.
        let values: Option<Vec<f32>> = match (selected, &self.x) {
            (Some(sub), _) => Some(sub.into_f32()),
            (None, FeatureRows::Device(x)) if host_epoch => {
                let idx: Vec<i64> = columns.iter().map(|&j| j as i64).collect();
                let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [m]), &device);
                // The copy's only handle: flex hands its buffer over without a copy.
                Some(
                    x.clone()
                        .select(1, idx)
                        .try_into_vec_as::<f32>()
                        .expect("f32 features"),
                )
            }
            (None, _) => None,
        };
        let (x, host) = match (values, &self.host) {
            (Some(data), Some(rows)) if host_epoch => {
                // The copy becomes shared bytes that the tensor and the host epoch both read.
                let bytes = burn::tensor::Bytes::from_elems(data).shared();
                let tensor = Tensor::<2>::from_data(
                    TensorData::from_bytes(bytes.clone(), [n, m], burn::tensor::DType::F32),
                    &device,
                );
                let rows = HostRows {
                    x: Some(bytes),
                    ..rows.clone()
                };
                (tensor, Some(rows))
            }
            (Some(data), _) => (
                Tensor::<2>::from_data(TensorData::new(data, [n, m]), &device),
                self.host.clone(),
            ),
            (None, _) => {
                let idx: Vec<i64> = columns.iter().map(|&j| j as i64).collect();
                let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [m]), &device);
                (self.x().clone().select(1, idx), self.host.clone())
            }
        };
        DeviceSplit {
            x: FeatureRows::Device(x),
            y: self.y.clone(),
            w: self.w.clone(),
            n,
            d: m,
            k: self.k,
            host,
            device,
        }
    }

    /// Row chunks of a full pass over this split whose temporaries are `rows × width` and
    /// whose X block is `rows × d` (see [`row_chunks`]): `width` is K for logits. Device-held
    /// and host-held rows are cut alike, so both sum the same blocks in the same order.
    pub fn chunks(&self, width: usize) -> impl Iterator<Item = DeviceSplit> + '_ {
        self.spanned_chunks(width).map(|(_, part)| part)
    }

    /// [`DeviceSplit::chunks`] with each chunk's `(start, len)`; host rows are read ahead
    /// ([`DeviceSplit::x_blocks`]).
    pub fn spanned_chunks(&self, width: usize) -> impl Iterator<Item = ((usize, usize), DeviceSplit)> + '_ {
        let spans = self.chunk_spans(width);
        let blocks = self.x_blocks(spans.clone());
        spans.into_iter().zip(blocks).map(|((start, len), x)| {
            let part = DeviceSplit {
                x: FeatureRows::Device(x),
                y: self.y.rows(start, len, self.n),
                w: self.w.clone().map(|w| w.narrow(0, start, len)),
                n: len,
                d: self.d,
                k: self.k,
                // Full passes over chunks run as tensor operations.
                host: None,
                device: self.device.clone(),
            };
            ((start, len), part)
        })
    }

    /// The `(start, len)` of each chunk of [`DeviceSplit::chunks`].
    pub fn chunk_spans(&self, width: usize) -> Vec<(usize, usize)> {
        row_chunks(self.n, width.max(self.d)).collect()
    }
}

/// Reads blocks of host-held rows as f32: whole rows, or the listed columns of them.
struct HostReader {
    values: std::sync::Arc<Features>,
    /// Values per stored row.
    width: usize,
    /// The screened columns read from each row; all of them when `None`.
    columns: Option<std::sync::Arc<[usize]>>,
}

impl HostReader {
    /// Rows `start..start+len` (of `n`), wrapping past the last row, as `len × m` f32.
    fn block(&self, start: usize, len: usize, n: usize) -> Vec<f32> {
        let m = self.columns.as_ref().map_or(self.width, |c| c.len());
        let mut block = vec![0f32; len * m];
        let head = len.min(n - start);
        let (first, rest) = block.split_at_mut(head * m);
        self.read(start, first);
        if head < len {
            self.read(0, rest);
        }
        block
    }

    fn read(&self, first_row: usize, out: &mut [f32]) {
        match &self.columns {
            None => self.values.read_into(first_row * self.width, out),
            Some(columns) => self.values.read_columns_into(first_row, self.width, columns, out),
        }
    }

    /// The blocks of `spans` read by a helper thread one ahead of their use (a channel of
    /// one block: at most two exist at once). If a read fails, the thread stops with its
    /// error and the iterator ends early; callers treat a missing block as that failure.
    fn read_ahead(self, spans: Vec<(usize, usize)>, n: usize) -> std::sync::mpsc::IntoIter<Vec<f32>> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        std::thread::spawn(move || {
            for (start, len) in spans {
                if tx.send(self.block(start, len, n)).is_err() {
                    break;
                }
            }
        });
        rx.into_iter()
    }
}

/// The seeded random order of `n` training rows (`order[i]` = the original row placed at i).
pub fn shuffled_order(n: usize, seed: u64) -> Vec<usize> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut perm: Vec<usize> = (0..n).collect();
    perm.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    perm
}

/// Reorder the rows of a row-major buffer in place: row i becomes old row `order[i]`. Follows
/// the permutation's cycles with one row of scratch, so no second copy of the buffer exists.
pub fn permute_rows<T: Copy>(data: &mut [T], width: usize, order: &[usize]) {
    if width == 0 {
        return;
    }
    let mut done = vec![false; order.len()];
    let mut scratch: Vec<T> = Vec::with_capacity(width);
    for start in 0..order.len() {
        if done[start] || order[start] == start {
            done[start] = true;
            continue;
        }
        scratch.clear();
        scratch.extend_from_slice(&data[start * width..(start + 1) * width]);
        let mut i = start;
        loop {
            done[i] = true;
            let src = order[i];
            if src == start {
                data[i * width..(i + 1) * width].copy_from_slice(&scratch);
                break;
            }
            data.copy_within(src * width..(src + 1) * width, i * width);
            i = src;
        }
    }
}

/// Per-feature size of a `[d, K]` gradient as the penalty sees it: `max_k |g_jk|` (elementwise
/// ℓ1) or `‖g_j‖₂` (group). A feature whose weights are all zero is optimal exactly when this is
/// at most `λ·α`.
pub fn feature_scores(g: &Tensor<2>, group: bool) -> Vec<f32> {
    let s = if group {
        g.clone().square().sum_dim(1).sqrt()
    } else {
        g.clone().abs().max_dim(1)
    };
    s.try_into_vec_as::<f32>().expect("f32 scores")
}

/// Whether each feature (row of `wt`, `[d, K]`) has a nonzero weight in some class.
pub fn nonzero_features(wt: &Tensor<2>) -> Vec<bool> {
    let m: Vec<f32> = wt
        .clone()
        .abs()
        .max_dim(1)
        .try_into_vec_as::<f32>()
        .expect("f32 weights");
    m.into_iter().map(|v| v != 0.0).collect()
}

/// Per-example gradient of the loss w.r.t. the logits `[B, K]` and the per-example loss `[B, 1]`.
pub fn loss_and_grad(family: Family, logits: Tensor<2>, y: DeviceTargets) -> (Tensor<2>, Tensor<2>) {
    if let (Family::Multinomial, DeviceTargets::Classes(labels)) = (family, &y) {
        // One exp per logit (log_softmax then exp took two, and exp was an eighth of an epoch
        // at K = 100): p = e/s with e = exp(z − max z), s = Σ e; the loss −log p_y = log s −
        // z_y, and the gradient p − onehot(y) subtracts 1 at each example's class. Bit for bit
        // what the one-hot product gave (its other terms were exact zeros), without a one-hot.
        let z = logits.clone() - logits.max_dim(1);
        let e = z.clone().exp();
        let s = e.clone().sum_dim(1);
        let loss = s.clone().log() - z.gather(1, labels.clone());
        let minus_one = Tensor::<2>::full(labels.dims(), -1.0, &labels.device());
        let grad = (e / s).scatter(1, labels.clone(), minus_one, IndexingUpdateOp::Add);
        return (grad, loss);
    }
    let y = y.dense(logits.dims()[1]);
    match family {
        Family::Multinomial => {
            // Soft targets: −Σ_k y_k log p_k = (Σ y) log s − Σ_k y_k (z_k − max z).
            let z = logits.clone() - logits.max_dim(1);
            let e = z.clone().exp();
            let s = e.clone().sum_dim(1);
            let loss = s.clone().log() * y.clone().sum_dim(1) - (z * y.clone()).sum_dim(1);
            (e / s - y, loss)
        }
        Family::Gaussian => {
            let r = logits - y;
            let loss = r.clone().square().sum_dim(1) / 2.0;
            (r, loss)
        }
        Family::Multilabel => {
            // softplus(z) − z·y, written so large |z| neither overflows nor loses precision.
            let softplus = logits.clone().clamp_min(0.0) + logits.clone().abs().neg().exp().log1p();
            let loss = (softplus - logits.clone() * y.clone()).sum_dim(1);
            (sigmoid(logits) - y, loss)
        }
    }
}

/// Penalty value `λ (α P1(W) + (1−α)/2 ‖W‖²)`, computed on the host in f64 from `wt [d, K]`.
pub fn penalty_host(wt: &[f32], d: usize, k: usize, lambda: f64, alpha: f64, group: bool) -> f64 {
    let sq: f64 = wt.iter().map(|&v| (v as f64) * (v as f64)).sum();
    let p1: f64 = if group {
        (0..d)
            .map(|j| {
                wt[j * k..(j + 1) * k]
                    .iter()
                    .map(|&v| (v as f64).powi(2))
                    .sum::<f64>()
                    .sqrt()
            })
            .sum()
    } else {
        wt.iter().map(|&v| (v as f64).abs()).sum()
    };
    lambda * (alpha * p1 + 0.5 * (1.0 - alpha) * sq)
}

/// The proximal operator of the (group) elastic net with step `lr`, applied to `v = wt − lr·g`.
pub fn prox(v: Tensor<2>, lr: f64, lambda: f64, alpha: f64, group: bool) -> Tensor<2> {
    let shrink = lr * lambda * alpha;
    let ridge = 1.0 + lr * lambda * (1.0 - alpha);
    if shrink == 0.0 {
        return if ridge == 1.0 { v } else { v / ridge };
    }
    if group {
        // Column j of W is row j of wt: scale it by max(0, 1 − shrink/‖v_j‖). A zero row stays
        // zero (the division gives +inf, the clamp gives 0) instead of dividing 0 by 0.
        let norms = v.clone().square().sum_dim(1).sqrt(); // [d, 1]
        let scale = (norms.recip() * (-shrink) + 1.0).clamp_min(0.0);
        v * scale / ridge
    } else {
        // soft-threshold as v − clamp(v, −shrink, shrink): equal in f32 to sign(v)·max(|v| −
        // shrink, 0) (the same one subtraction) in two passes over W instead of five.
        let soft = v.clone() - v.clamp(-shrink, shrink);
        if ridge == 1.0 {
            soft
        } else {
            soft / ridge
        }
    }
}

/// Optimizer state carried along the path (warm starts): the layer and the SAGA table.
#[derive(Clone)]
pub struct SagaState {
    /// Weights transposed, `[d, K]`, so the batch GEMMs need no transpose of W.
    pub wt: Tensor<2>,
    /// Bias `[1, K]`.
    pub b: Tensor<2>,
    /// Last stored `∂loss/∂logits` of every training example, `[n, K]` (weighted).
    pub table: Tensor<2>,
    /// Average of the table's gradients: `Xᵀ T / n` `[d, K]` and `mean(T)` `[1, K]`.
    pub gbar_w: Tensor<2>,
    pub gbar_b: Tensor<2>,
}

impl SagaState {
    /// W = 0, b = the intercept-only optimum (the exact solution at λ_max), and the table
    /// filled with every example's gradient at that point. (Design §2 starts the table at 0;
    /// that makes the first epoch plain SGD, which at λ_max walks away from the optimum it
    /// starts at: 16 nonzeros and a 1e-3 KKT violation at λ_max on the 100-class benchmark.)
    /// Returns the full gradient there too, as [`SagaState::at`] does.
    pub fn initial(train: &DeviceSplit, family: Family) -> (Self, FullGradient) {
        let device = train.device();
        let (d, k) = (train.d, train.k);
        let ybar = weighted_target_mean(train); // [1, K]
        let b = match family {
            Family::Gaussian => ybar,
            Family::Multinomial => {
                let logp = ybar.clamp(1e-12, 1.0).log();
                let mean = logp.clone().mean_dim(1);
                logp - mean
            }
            Family::Multilabel => {
                let p = ybar.clamp(1e-6, 1.0 - 1e-6);
                (p.clone() / (p.neg() + 1.0)).log()
            }
        };
        Self::at(train, family, Tensor::zeros([d, k], &device), b)
    }

    /// The state at a given layer (`wt [d, K]`, `b [1, K]`), with the table and its averages
    /// filled there ([`SagaState::refill`]), and the full gradient at that point.
    pub fn at(train: &DeviceSplit, family: Family, wt: Tensor<2>, b: Tensor<2>) -> (Self, FullGradient) {
        let device = train.device();
        let (d, k) = (train.d, train.k);
        let mut state = SagaState {
            wt,
            b,
            table: Tensor::zeros([1, k], &device),
            gbar_w: Tensor::zeros([d, k], &device),
            gbar_b: Tensor::zeros([1, k], &device),
        };
        let grad = state.refill(train, family);
        (state, grad)
    }

    /// Refill the table with every example's gradient at the current (W, b) and the averages
    /// with their exact values; returns the full gradient of the mean loss there (`[d, K]`,
    /// `[1, K]`: the averages themselves), which the strong rule and the KKT check read.
    ///
    /// Every λ of a path starts from this table (a stale table after an extrapolated start
    /// made the first epochs rise; at a plain warm start it is the gradient the KKT check
    /// computes anyway). So the table is a function of (W, b): a checkpoint needs the layer,
    /// not the n×K table (5 GB at ImageNet), and a resumed path refills the same bits.
    /// The old table is dropped before the new one is built, so it never exists twice, and
    /// the logits read only the features that have a nonzero weight.
    pub fn refill(&mut self, train: &DeviceSplit, family: Family) -> FullGradient {
        let (n, k) = (train.n, train.k);
        let device = train.device();
        self.table = Tensor::zeros([1, k], &device);
        let logits = LogitsOf::new(&self.wt, &self.b);
        let several = train.chunk_spans(k).len() > 1;
        // Built from a Vec: flex then hands this buffer to the host epoch as a Vec without a
        // copy (a `Tensor::zeros` buffer is copied into one, so the n×K table existed twice
        // for a moment: 5 GB more peak at ImageNet size).
        let mut table =
            several.then(|| Tensor::<2>::from_data(TensorData::new(vec![0f32; n * k], [n, k]), &device));
        let mut gw: Option<Tensor<2>> = None;
        // One read of X: each chunk's table rows and their part of Xᵀ·T.
        for ((start, len), part) in train.spanned_chunks(k) {
            let a = table_at(&part, family, logits.of(part.x()));
            let g = part.x().clone().transpose().matmul(a.clone());
            gw = Some(gw.map_or(g.clone(), |acc| acc + g));
            table = Some(match table {
                Some(t) => t.slice_assign([start..start + len, 0..k], a),
                None => a,
            });
        }
        self.table = table.expect("a split has rows");
        self.gbar_w = gw.expect("a split has rows") / n as f64;
        self.gbar_b = self.table.clone().sum_dim(0) / n as f64;
        (self.gbar_w.clone(), self.gbar_b.clone())
    }

    /// Recompute the table average exactly (`Xᵀ·T / n` in the row chunks of a full pass, as
    /// [`SagaState::refill`] sums it), removing the drift of the running sums.
    pub fn refresh_average(&mut self, train: &DeviceSplit) {
        let n = train.n as f64;
        let k = train.k;
        if let Some(pairs) = train.host.as_ref().and_then(|h| h.pairs.clone()) {
            return self.refresh_pair_average(train, &pairs);
        }
        let mut gw: Option<Tensor<2>> = None;
        for ((start, len), part) in train.spanned_chunks(k) {
            let t = self.table.clone().narrow(0, start, len);
            let g = part.x().clone().transpose().matmul(t);
            gw = Some(gw.map_or(g.clone(), |acc| acc + g));
        }
        self.gbar_w = gw.expect("a split has rows") / n;
        self.gbar_b = self.table.clone().sum_dim(0) / n;
    }

    /// [`SagaState::refresh_average`] of a split screened by pair: the average at the pairs
    /// only ([`crate::host::pair_average`]), zero elsewhere (weights outside the pairs are
    /// never updated). The table crosses to the host and back without a copy.
    fn refresh_pair_average(&mut self, train: &DeviceSplit, pairs: &crate::host::PairSet) {
        let (n, m, k) = (train.n, train.d, train.k);
        let device = train.device();
        let table = std::mem::replace(&mut self.table, Tensor::zeros([1, k], &device))
            .try_into_vec_as::<f32>()
            .expect("f32 table");
        let blocks = train.host_x_blocks(train.chunk_spans(k));
        let averages = crate::host::pair_average(blocks, &table, k, pairs);
        let mut gbar_w = vec![0f32; m * k];
        for (i, v) in pairs.dense_indices(k).zip(averages) {
            gbar_w[i] = v;
        }
        self.gbar_w = Tensor::from_data(TensorData::new(gbar_w, [m, k]), &device);
        self.table = Tensor::from_data(TensorData::new(table, [n, k]), &device);
        self.gbar_b = self.table.clone().sum_dim(0) / n as f64;
    }
}

/// The full gradient `(∂F/∂Wᵀ [d, K], ∂F/∂b [1, K])` of the mean loss at a state.
pub type FullGradient = (Tensor<2>, Tensor<2>);

/// Logits `X·W + b` of a layer, reading only the features with a nonzero weight: at the head
/// of an ImageNet path a few of 2,048, so a full pass costs the softmax, not a GEMM over d.
struct LogitsOf {
    wt: Tensor<2>,
    b: Tensor<2>,
    /// The nonzero features when they are fewer than half (else X is read whole).
    columns: Option<Tensor<1, Int>>,
}

impl LogitsOf {
    fn new(wt: &Tensor<2>, b: &Tensor<2>) -> Self {
        let d = wt.dims()[0];
        let used: Vec<i64> = nonzero_features(wt)
            .into_iter()
            .enumerate()
            .filter(|(_, nz)| *nz)
            .map(|(j, _)| j as i64)
            .collect();
        if 2 * used.len() > d {
            return LogitsOf {
                wt: wt.clone(),
                b: b.clone(),
                columns: None,
            };
        }
        let m = used.len();
        let columns = Tensor::<1, Int>::from_data(TensorData::new(used, [m]), &wt.device());
        LogitsOf {
            wt: wt.clone().select(0, columns.clone()),
            b: b.clone(),
            columns: Some(columns),
        }
    }

    /// Logits of the rows of `x` (`[rows, d]` → `[rows, K]`).
    fn of(&self, x: &Tensor<2>) -> Tensor<2> {
        let rows = x.dims()[0];
        let k = self.b.dims()[1];
        match &self.columns {
            None => x.clone().matmul(self.wt.clone()) + self.b.clone(),
            Some(c) if c.dims()[0] == 0 => Tensor::zeros([rows, k], &x.device()) + self.b.clone(),
            Some(c) => x.clone().select(1, c.clone()).matmul(self.wt.clone()) + self.b.clone(),
        }
    }
}

/// The SAGA table at the given logits `[n, K]`: every example's `∂loss/∂logits`, weighted.
fn table_at(train: &DeviceSplit, family: Family, logits: Tensor<2>) -> Tensor<2> {
    let (table, _) = loss_and_grad(family, logits, train.y.clone());
    match &train.w {
        Some(w) => table * w.clone(),
        None => table,
    }
}

/// `Σ w_i y_i / Σ w_i` as `[1, K]`, summed over row chunks (class counts are exact integers
/// in any order).
pub fn weighted_target_mean(split: &DeviceSplit) -> Tensor<2> {
    let k = split.k;
    let mut sum: Option<Tensor<2>> = None;
    let mut total: Option<Tensor<2>> = None;
    for part in split.chunks(k) {
        let y = part.y.dense(k);
        let (s, t) = match &part.w {
            None => (y.sum_dim(0), None),
            Some(w) => ((y * w.clone()).sum_dim(0), Some(w.clone().sum_dim(0))),
        };
        sum = Some(sum.map_or(s.clone(), |acc| acc + s));
        if let Some(t) = t {
            total = Some(total.map_or(t.clone(), |acc| acc + t));
        }
    }
    let sum = sum.expect("a split has rows");
    match total {
        None => sum / split.n as f64,
        Some(t) => sum / t,
    }
}

/// λ_max on the given (standardized) training split: the smallest λ whose solution is W = 0.
/// `G = (1/n) Xᵀ diag(w) (Y − Ȳ_w)`; elementwise: `max |G_kj| / max(α, 1e-3)`; group: the
/// largest feature column norm `max_j ‖G_·j‖₂` over the same denominator.
pub fn lambda_max(train: &DeviceSplit, alpha: f64, group: bool) -> f64 {
    let ybar = weighted_target_mean(train);
    let mut g: Option<Tensor<2>> = None;
    for part in train.chunks(train.k) {
        let centered = part.y.dense(train.k) - ybar.clone();
        let centered = match &part.w {
            None => centered,
            Some(w) => centered * w.clone(),
        };
        let gp = part.x().clone().transpose().matmul(centered); // [d, K]
        g = Some(g.map_or(gp.clone(), |acc| acc + gp));
    }
    let g = g.expect("a split has rows") / train.n as f64;
    let m = if group {
        g.square().sum_dim(1).sqrt().max()
    } else {
        g.abs().max()
    };
    let m: f32 = m.into_scalar();
    m as f64 / alpha.max(1e-3)
}

/// Automatic SAGA step size `1 / (3 L(b))` with the mini-batch expected smoothness of
/// Gazagnadou, Gower & Salmon (2019):
/// `L(b) = n(b−1)/(b(n−1)) L + (n−b)/(b(n−1)) L_max`, where `L` is the smoothness of the full
/// objective (curvature × largest eigenvalue of `X̃ᵀ W X̃ / n`, `X̃ = [X, 1]`, by power iteration)
/// and `L_max` the largest single-example smoothness (curvature × max_i w_i ‖x̃_i‖²).
pub fn auto_step(train: &DeviceSplit, family: Family, batch: usize) -> f64 {
    let device = train.device();
    let (n, d) = (train.n, train.d);
    let c = family.curvature();
    // max_i w_i (‖x_i‖² + 1), in row chunks: squaring X whole would copy it.
    let mut row_sq_max = 0f32;
    for part in train.chunks(d) {
        let row_sq = part.x().clone().square().sum_dim(1) + 1.0; // [rows, 1]
        let row_sq = match &part.w {
            None => row_sq,
            Some(w) => row_sq * w.clone(),
        };
        row_sq_max = row_sq_max.max(row_sq.max().into_scalar::<f32>());
    }
    let l_max = c * row_sq_max as f64;

    // Power iteration on v = (u, c0) with u ∈ R^d and the bias coordinate c0.
    let mut v = Tensor::<2>::ones([d, 1], &device) / (d as f64 + 1.0).sqrt();
    let mut v0 = 1.0 / (d as f64 + 1.0).sqrt();
    let mut eig = 0.0f64;
    for it in 0..100 {
        // X̃ᵀ W X̃ v in row chunks (X read once per iteration, a block at a time).
        let mut nv: Option<Tensor<2>> = None;
        let mut xv_sum = 0f64;
        for part in train.chunks(1) {
            let xv = part.x().clone().matmul(v.clone()) + v0; // [rows, 1]
            let xv = match &part.w {
                None => xv,
                Some(w) => xv * w.clone(),
            };
            xv_sum += xv.clone().sum().into_scalar::<f32>() as f64;
            let p = part.x().clone().transpose().matmul(xv); // [d, 1]
            nv = Some(nv.map_or(p.clone(), |acc| acc + p));
        }
        let nv = nv.expect("a split has rows") / n as f64;
        let nv0 = (xv_sum / n as f64) as f32;
        let norm_sq: f32 = nv.clone().square().sum().into_scalar();
        let norm = (norm_sq as f64 + (nv0 as f64).powi(2)).sqrt();
        if norm == 0.0 || !norm.is_finite() {
            break;
        }
        let converged = it > 2 && (norm - eig).abs() <= 1e-4 * norm;
        eig = norm;
        v = nv / norm;
        v0 = nv0 as f64 / norm;
        if converged {
            break;
        }
    }
    let l_full = c * eig.max(1e-12);
    let b = batch.min(n) as f64;
    let nf = n as f64;
    let l_b = if n <= 1 {
        l_max
    } else {
        nf * (b - 1.0) / (b * (nf - 1.0)) * l_full + (nf - b) / (b * (nf - 1.0)) * l_max
    };
    1.0 / (3.0 * l_b)
}

/// What one SAGA epoch reports back to the host (a single device read per epoch).
pub struct EpochSummary {
    /// Mean loss over the batches as they were visited plus the penalty at epoch end.
    pub objective: f64,
    /// `‖θ − θ_prev‖ / ‖θ‖` over (W, b).
    pub rel_change: f64,
}

/// The fixed pieces of one λ: the penalty and the step.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub lambda: f64,
    pub alpha: f64,
    pub lr: f64,
    pub group: bool,
    pub family: Family,
}

/// The mini-batches of one SAGA epoch over a split whose rows are already in a random order
/// ([`DeviceSplit::from_split`] with a seed, once per path): batch `j` holds the `batch` consecutive
/// rows from `offset + j·batch` (wrapping around the end), and the batches are visited in
/// `order`. Consecutive rows are a view of X, where a freshly shuffled epoch had to gather every
/// batch's rows: that copy was 27% of an epoch at K = 2 (`w1`). The random offset moves the
/// batch boundaries every epoch, so the batches do not stay the same groups.
pub struct EpochPlan {
    pub offset: usize,
    pub batch: usize,
    pub order: Vec<usize>,
}

impl EpochPlan {
    pub fn random(n: usize, batch: usize, rng: &mut impl rand::Rng) -> Self {
        use rand::seq::SliceRandom;
        let batch = batch.clamp(1, n.max(1));
        let offset = if n > batch { rng.random_range(0..batch) } else { 0 };
        let mut order: Vec<usize> = (0..n.div_ceil(batch)).collect();
        order.shuffle(rng);
        EpochPlan { offset, batch, order }
    }

    /// First row (before wrapping) and length of batch `j` on `n` rows.
    fn span(&self, j: usize, n: usize) -> (usize, usize) {
        let first = j * self.batch;
        ((first + self.offset) % n, self.batch.min(n - first))
    }
}

/// Rows `start..start+len` of `t` (`n` rows), wrapping past the last row to the first: a view
/// unless it wraps.
fn rows<K: Basic>(t: Tensor<2, K>, start: usize, len: usize, n: usize) -> Tensor<2, K> {
    if start + len <= n {
        t.narrow(0, start, len)
    } else {
        let head = n - start;
        Tensor::cat(
            vec![t.clone().narrow(0, start, head), t.narrow(0, 0, len - head)],
            0,
        )
    }
}

/// Write `v` into rows `start..start+len` of `t`, wrapping like [`rows`].
fn assign_rows(t: Tensor<2>, start: usize, len: usize, n: usize, v: Tensor<2>) -> Tensor<2> {
    let k = v.dims()[1];
    if start + len <= n {
        t.slice_assign([start..start + len, 0..k], v)
    } else {
        let head = n - start;
        let t = t.slice_assign([start..n, 0..k], v.clone().narrow(0, 0, head));
        t.slice_assign([0..len - head, 0..k], v.narrow(0, head, len - head))
    }
}

/// The SAGA table during an epoch, and the epoch's loss sum: a device tensor updated by
/// tensor operations, or (multinomial labels on flex) a host buffer that the fused batch of
/// [`crate::host`] updates in one pass per row.
// One per epoch: the size of its variants does not matter.
#[allow(clippy::large_enum_variant)]
enum TableRows {
    Device {
        table: Tensor<2>,
        loss: Tensor<1>,
    },
    Host {
        table: Vec<f32>,
        rows: HostRows,
        loss: f32,
    },
}

impl TableRows {
    fn open(table: Tensor<2>, train: &DeviceSplit, family: Family) -> Self {
        match (&train.host, family) {
            (Some(rows), Family::Multinomial) => TableRows::Host {
                // The table's only handle: flex hands its buffer over without a copy.
                table: table.try_into_vec_as::<f32>().expect("f32 table"),
                rows: rows.clone(),
                loss: 0.0,
            },
            _ => TableRows::Device {
                loss: Tensor::zeros([1], &table.device()),
                table,
            },
        }
    }

    /// The K-wide half of batch `start..start+len` (wrapping at n): from its logits to
    /// `(Δ [B, K], Σ_B Δ [1, K])`, the batch's table rows replaced and its loss summed.
    fn batch(
        &mut self,
        train: &DeviceSplit,
        logits: Tensor<2>,
        start: usize,
        len: usize,
        family: Family,
    ) -> (Tensor<2>, Tensor<2>) {
        let n = train.n;
        match self {
            TableRows::Device { table, loss } => {
                let tb = rows(table.clone(), start, len, n);
                let (mut a, mut batch_loss) = loss_and_grad(family, logits, train.y.rows(start, len, n));
                if let Some(w) = &train.w {
                    let wb = rows(w.clone(), start, len, n);
                    a = a * wb.clone();
                    batch_loss = batch_loss * wb;
                }
                *loss = loss.clone() + batch_loss.sum();
                // `tb` (a view of the table) is consumed here, so the table's buffer is
                // unique again when the batch's rows are written back below.
                let delta = a.clone() - tb; // [B, K]
                let dsum = delta.clone().sum_dim(0);
                let taken = std::mem::replace(table, Tensor::zeros([1, 1], &delta.device()));
                *table = assign_rows(taken, start, len, n, a);
                (delta, dsum)
            }
            TableRows::Host { table, rows, loss } => {
                let device = logits.device();
                let k = train.k;
                let mut buf = logits.try_into_vec_as::<f32>().expect("f32 logits");
                let mut dsum = vec![0f32; k];
                *loss += crate::host::multinomial_batch(
                    &mut buf,
                    &rows.labels,
                    rows.weights.as_deref(),
                    table,
                    start,
                    &mut dsum,
                );
                (
                    Tensor::from_data(TensorData::new(buf, [len, k]), &device),
                    Tensor::from_data(TensorData::new(dsum, [1, k]), &device),
                )
            }
        }
    }

    /// The table as a tensor again, the device loss sum and the host loss sum.
    fn close(self, n: usize, k: usize, device: &Device) -> (Tensor<2>, Tensor<1>, f32) {
        match self {
            TableRows::Device { table, loss } => (table, loss, 0.0),
            TableRows::Host { table, loss, .. } => (
                Tensor::from_data(TensorData::new(table, [n, k]), device),
                Tensor::zeros([1], device),
                loss,
            ),
        }
    }
}

/// One pass of mini-batch SAGA over the training split, batch by batch as `plan` says.
///
/// The state is taken by value and apart, so every update of the n×K table, the averages and
/// the weights consumes the only handle to its tensor and flex updates it in place. A
/// `field.clone().op()` keeps the field's handle alive during the op and flex then copies the
/// whole buffer: for the table that was 2–8 MB per batch, a third of the epoch on `w3`.
pub fn saga_epoch(
    train: &DeviceSplit,
    state: SagaState,
    plan: &EpochPlan,
    step: Step,
) -> (SagaState, EpochSummary) {
    if let (Some(rows), Family::Multinomial) = (&train.host, step.family) {
        if let Some(pairs) = &rows.pairs {
            return pair_epoch(train, rows, pairs, state, plan, step);
        }
        if rows.x.is_some() {
            return host_epoch(train, rows, state, plan, step);
        }
    }
    let device = train.device();
    let (n, k) = (train.n, train.k);
    let nf = n as f64;
    let wt_prev = state.wt.clone();
    let b_prev = state.b.clone();
    let SagaState {
        mut wt,
        mut b,
        table,
        mut gbar_w,
        mut gbar_b,
    } = state;
    let mut table = TableRows::open(table, train, step.family);

    let spans: Vec<(usize, usize)> = plan.order.iter().map(|&j| plan.span(j, n)).collect();
    for (&(start, len), xb) in spans.iter().zip(train.x_blocks(spans.clone())) {
        let bsz = len as f64;
        let logits = xb.clone().matmul(wt.clone()) + b.clone();
        let (delta, dsum) = table.batch(train, logits, start, len, step.family);

        // The one gradient GEMM, as Δᵀ·X_B ([K, B]·[B, d]): 15% faster than X_Bᵀ·Δ at K = 2.
        let gsum = delta.transpose().matmul(xb).transpose(); // [d, K]

        let gw = gsum.clone() / bsz + gbar_w.clone();
        let gb = dsum.clone() / bsz + gbar_b.clone();
        wt = prox(wt - gw * step.lr, step.lr, step.lambda, step.alpha, step.group);
        b = b - gb * step.lr;

        gbar_w = gbar_w + gsum / nf;
        gbar_b = gbar_b + dsum / nf;
    }
    let (table, loss_sum, host_loss) = table.close(n, k, &device);
    let state = SagaState {
        wt,
        b,
        table,
        gbar_w,
        gbar_b,
    };

    epoch_summary(state, wt_prev, b_prev, loss_sum, host_loss, step, n)
}

/// [`saga_epoch`] on a split whose rows are on the host (a screened split of few features):
/// the epoch runs in [`crate::host::saga_epoch`].
fn host_epoch(
    train: &DeviceSplit,
    rows: &HostRows,
    state: SagaState,
    plan: &EpochPlan,
    step: Step,
) -> (SagaState, EpochSummary) {
    let x = rows.x_rows().expect("host rows");
    let batches = plan.order.iter().map(|&j| plan.span(j, train.n));
    on_host(train, state, step, |table, layer| {
        crate::host::saga_epoch(
            x,
            &rows.labels,
            rows.weights.as_deref(),
            table,
            layer,
            batches,
            host_step(step),
        )
    })
}

/// [`saga_epoch`] on a split screened by pair: the epoch runs in
/// [`crate::host::saga_pair_epoch`], each batch's rows of X read as the split holds them (in
/// place, a helper thread ahead).
fn pair_epoch(
    train: &DeviceSplit,
    rows: &HostRows,
    pairs: &crate::host::PairSet,
    state: SagaState,
    plan: &EpochPlan,
    step: Step,
) -> (SagaState, EpochSummary) {
    let spans: Vec<(usize, usize)> = plan.order.iter().map(|&j| plan.span(j, train.n)).collect();
    let blocks = train.host_x_blocks(spans);
    on_host(train, state, step, |table, layer| {
        crate::host::saga_pair_epoch(
            blocks,
            &rows.labels,
            rows.weights.as_deref(),
            table,
            layer,
            pairs,
            host_step(step),
        )
    })
}

/// Run a host-kernel epoch (`epoch`: table and layer in, the loss sum out) on the state: it
/// crosses to host vectors and back (the table without a copy), then the epoch is summarized.
fn on_host(
    train: &DeviceSplit,
    state: SagaState,
    step: Step,
    epoch: impl FnOnce(&mut Vec<f32>, &mut crate::host::HostLayer) -> f32,
) -> (SagaState, EpochSummary) {
    let device = train.device();
    let (n, m, k) = (train.n, train.d, train.k);
    let wt_prev = state.wt.clone();
    let b_prev = state.b.clone();
    let host = |t: Tensor<2>| t.try_into_vec_as::<f32>().expect("f32 state");
    let mut layer = crate::host::HostLayer {
        wt: host(state.wt),
        b: host(state.b),
        gbar_w: host(state.gbar_w),
        gbar_b: host(state.gbar_b),
    };
    let mut table = host(state.table);
    let loss = epoch(&mut table, &mut layer);
    let tensor = |v: Vec<f32>, shape: [usize; 2]| Tensor::<2>::from_data(TensorData::new(v, shape), &device);
    let state = SagaState {
        wt: tensor(layer.wt, [m, k]),
        b: tensor(layer.b, [1, k]),
        table: tensor(table, [n, k]),
        gbar_w: tensor(layer.gbar_w, [m, k]),
        gbar_b: tensor(layer.gbar_b, [1, k]),
    };
    epoch_summary(state, wt_prev, b_prev, Tensor::zeros([1], &device), loss, step, n)
}

/// The penalty and step of `step` as the host kernels take them.
fn host_step(step: Step) -> crate::host::HostStep {
    crate::host::HostStep {
        lambda: step.lambda,
        alpha: step.alpha,
        lr: step.lr,
        group: step.group,
    }
}

/// The epoch's objective and relative change, in one read: `[loss sum, ‖Δθ‖², ‖θ‖², ‖W‖₁ or
/// Σ‖W_j‖, ‖W‖²]` (the loss as a device tensor and/or a host sum).
fn epoch_summary(
    state: SagaState,
    wt_prev: Tensor<2>,
    b_prev: Tensor<2>,
    loss_sum: Tensor<1>,
    host_loss: f32,
    step: Step,
    n: usize,
) -> (SagaState, EpochSummary) {
    let nf = n as f64;
    let dw = (state.wt.clone() - wt_prev).square().sum() + (state.b.clone() - b_prev).square().sum();
    let norm = state.wt.clone().square().sum() + state.b.clone().square().sum();
    let w_sq = state.wt.clone().square().sum();
    let p1 = if step.group {
        state.wt.clone().square().sum_dim(1).sqrt().sum()
    } else {
        state.wt.clone().abs().sum()
    };
    let stats = Tensor::cat(vec![loss_sum, dw, norm, p1, w_sq], 0);
    let s: Vec<f32> = stats.try_into_vec_as::<f32>().expect("f32 stats");
    let penalty = step.lambda * (step.alpha * s[3] as f64 + 0.5 * (1.0 - step.alpha) * s[4] as f64);
    let loss = (s[0] + host_loss) as f64 / nf;
    let summary = EpochSummary {
        objective: loss + penalty,
        rel_change: (s[1] as f64).sqrt() / (s[2] as f64).sqrt().max(1e-30),
    };
    (state, summary)
}

/// Host copy of a full evaluation pass over one split.
pub struct Evaluation {
    /// Weighted mean loss `(1/n) Σ w_i loss_i`, summed in f64.
    pub loss: f64,
    /// Accuracy (multinomial), per-label accuracy (multilabel) or R² (gaussian).
    pub score: f64,
}

/// Loss and score of the layer `(wt, b)` on a split, in row chunks (see [`row_chunks`]).
pub fn evaluate(split: &DeviceSplit, wt: &Tensor<2>, b: &Tensor<2>, family: Family) -> Evaluation {
    let k = split.k;
    let mut loss = 0f64;
    // Hits (classifiers), or the residual and total sums of squares (gaussian).
    let mut hits = 0f64;
    let (mut sse, mut sst) = (0f64, 0f64);
    let ymean = (family == Family::Gaussian).then(|| {
        let mut sum: Option<Tensor<2>> = None;
        for part in split.chunks(k) {
            let s = part.y.dense(k).sum_dim(0);
            sum = Some(sum.map_or(s.clone(), |acc| acc + s));
        }
        sum.expect("a split has rows") / split.n as f64
    });
    let logits_of = LogitsOf::new(wt, b);
    for part in split.chunks(k) {
        let logits = logits_of.of(part.x());
        let (_, rows_loss) = loss_and_grad(family, logits.clone(), part.y.clone());
        let rows_loss = match &part.w {
            None => rows_loss,
            Some(w) => rows_loss * w.clone(),
        };
        let rows_loss: Vec<f32> = rows_loss.try_into_vec_as::<f32>().expect("f32 loss");
        loss += rows_loss.iter().map(|&v| v as f64).sum::<f64>();
        match (family, &part.y) {
            (Family::Multinomial, DeviceTargets::Classes(labels)) => {
                let hit = logits.argmax(1).equal(labels.clone()).float().sum();
                hits += hit.into_scalar::<f32>() as f64;
            }
            (Family::Multinomial, y) => {
                let hit = logits.argmax(1).equal(y.dense(k).argmax(1)).float().sum();
                hits += hit.into_scalar::<f32>() as f64;
            }
            (Family::Multilabel, y) => {
                let pred = logits.greater_elem(0.0);
                let truth = y.dense(k).greater_elem(0.5);
                hits += pred.equal(truth).float().sum().into_scalar::<f32>() as f64;
            }
            (Family::Gaussian, y) => {
                let y = y.dense(k);
                sse += (logits - y.clone()).square().sum().into_scalar::<f32>() as f64;
                let centered = y - ymean.clone().expect("gaussian mean");
                sst += centered.square().sum().into_scalar::<f32>() as f64;
            }
        }
    }
    let score = match family {
        Family::Multinomial => hits / split.n as f64,
        Family::Multilabel => hits / (split.n * k) as f64,
        Family::Gaussian if sst > 0.0 => 1.0 - sse / sst,
        Family::Gaussian => f64::NAN,
    };
    Evaluation {
        loss: loss / split.n as f64,
        score,
    }
}

/// Full gradient of the mean loss at `(wt, b)`: `([d, K], [1, K])`, in row chunks; the
/// logits read only the features with a nonzero weight.
pub fn full_gradient(train: &DeviceSplit, wt: &Tensor<2>, b: &Tensor<2>, family: Family) -> FullGradient {
    let logits = LogitsOf::new(wt, b);
    let mut sums: Option<FullGradient> = None;
    for part in train.chunks(train.k) {
        let a = table_at(&part, family, logits.of(part.x()));
        let gw = part.x().clone().transpose().matmul(a.clone());
        let gb = a.sum_dim(0);
        sums = Some(match sums {
            None => (gw, gb),
            Some((sw, sb)) => (sw + gw, sb + gb),
        });
    }
    let (gw, gb) = sums.expect("a split has rows");
    let n = train.n as f64;
    (gw / n, gb / n)
}

/// Largest violation of the optimality conditions of design §2 (and |∂F/∂b| for the bias).
/// Elementwise: `|∇ + λ(1−α)W + λα sign(W)|` where `W ≠ 0`, `max(0, |∇| − λα)` where `W = 0`;
/// group: the same with column norms.
pub fn kkt_violation(train: &DeviceSplit, state: &SagaState, step: Step) -> f64 {
    let (gw, gb) = full_gradient(train, &state.wt, &state.b, step.family);
    kkt_violation_from(gw, gb, state, step)
}

/// [`kkt_violation`] from the full gradient `(gw, gb)` at `state`, when it is at hand.
pub fn kkt_violation_from(gw: Tensor<2>, gb: Tensor<2>, state: &SagaState, step: Step) -> f64 {
    let (lambda, alpha) = (step.lambda, step.alpha);
    let r = gw + state.wt.clone() * (lambda * (1.0 - alpha));
    let viol = if step.group {
        let wnorm = state.wt.clone().square().sum_dim(1).sqrt(); // [d, 1]
        let zero = wnorm.clone().equal_elem(0.0);
        let unit = state.wt.clone() / wnorm.clone().clamp_min(1e-30);
        let on = (r.clone() + unit * (lambda * alpha)).square().sum_dim(1).sqrt();
        let off = (r.square().sum_dim(1).sqrt() - lambda * alpha).clamp_min(0.0);
        on.mask_where(zero, off)
    } else {
        let zero = state.wt.clone().equal_elem(0.0);
        let on = (r.clone() + state.wt.clone().sign() * (lambda * alpha)).abs();
        let off = (r.abs() - lambda * alpha).clamp_min(0.0);
        on.mask_where(zero, off)
    };
    let v: f32 = viol.max().into_scalar();
    let vb: f32 = gb.abs().max().into_scalar();
    (v.max(vb)) as f64
}

/// The per-epoch floor of this machine and backend for a split: the best-of-`reps` time of the
/// two full `n × d × K` GEMMs an epoch cannot avoid (logits `X·Wᵀ` and gradient `Xᵀ·A`), each a
/// full read of X. Returns (seconds for X·Wᵀ, seconds for Xᵀ·A).
pub fn epoch_floor(train: &DeviceSplit, reps: usize) -> (f64, f64) {
    let device = train.device();
    let wt = Tensor::<2>::ones([train.d, train.k], &device) * 1e-3;
    let a = Tensor::<2>::ones([train.n, train.k], &device) * 1e-3;
    let time = |f: &dyn Fn() -> Tensor<2>| -> f64 {
        (0..reps.max(1))
            .map(|_| {
                let _ = device.sync();
                let t = std::time::Instant::now();
                let out = f();
                let _ = device.sync();
                let s = t.elapsed().as_secs_f64();
                drop(out);
                s
            })
            .fold(f64::INFINITY, f64::min)
    };
    let fwd = time(&|| train.x().clone().matmul(wt.clone()));
    let bwd = time(&|| train.x().clone().transpose().matmul(a.clone()));
    (fwd, bwd)
}

/// The floor of an epoch on `m` active features (design §6: at K = 1,000 the n×K work is a
/// floor of its own beside the GEMMs): the best-of-`reps` time of one sweep of the K-wide batch
/// work over all n rows at once (softmax, loss, table difference and write; the fused host
/// pass where it applies, else the tensor operations in row chunks) and of the two `n × m × K`
/// GEMMs an epoch does in batches (logits `X_m·W_m`, gradient `Δᵀ·X_m`), each as one call.
/// Returns (seconds for the K-wide sweep, seconds for the two GEMMs).
pub fn head_floor(train: &DeviceSplit, m: usize, reps: usize) -> (f64, f64) {
    let device = train.device();
    let (n, k) = (train.n, train.k);
    let m = m.clamp(1, train.d);
    let wm = Tensor::<2>::ones([m, k], &device) * 1e-3;
    // The first m columns as the screened problem holds them: one contiguous n×m copy.
    let columns = Tensor::<1, Int>::arange(0..m as i64, &device);
    let xm_all = train.x().clone().select(1, columns);
    let timed = |f: &mut dyn FnMut()| {
        let _ = device.sync();
        let t = std::time::Instant::now();
        f();
        let _ = device.sync();
        t.elapsed().as_secs_f64()
    };
    // Row chunks of 2²³ logits, so the floor of an ImageNet-sized split fits beside its table.
    let chunks: Vec<(usize, usize)> = row_chunks(n, k).collect();
    // From a Vec, so the host batch takes it without a copy (see `SagaState::refill`).
    let mut table = Tensor::<2>::from_data(TensorData::new(vec![0f32; n * k], [n, k]), &device);
    let (mut sweep, mut gemms) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..reps.max(1) {
        let mut tr = TableRows::open(
            std::mem::replace(&mut table, Tensor::zeros([1, 1], &device)),
            train,
            Family::Multinomial,
        );
        let mut seconds = 0.0;
        for &(start, len) in &chunks {
            let mut logits = Some(Tensor::<2>::random(
                [len, k],
                burn::tensor::Distribution::Default,
                &device,
            ));
            seconds += timed(&mut || {
                let (delta, dsum) = tr.batch(
                    train,
                    logits.take().expect("one chunk"),
                    start,
                    len,
                    Family::Multinomial,
                );
                drop(delta);
                let _ = dsum.sum().into_scalar::<f32>();
            });
        }
        table = tr.close(n, k, &device).0;
        sweep = sweep.min(seconds);

        let mut seconds = 0.0;
        for &(start, len) in &chunks {
            let xm = xm_all.clone().narrow(0, start, len);
            let a = Tensor::<2>::ones([len, k], &device) * 1e-3;
            seconds += timed(&mut || {
                let logits = xm.clone().matmul(wm.clone());
                let grad = a.clone().transpose().matmul(xm.clone());
                let _ = (logits.sum() + grad.sum()).into_scalar::<f32>();
            });
        }
        gemms = gemms.min(seconds);
    }
    (sweep, gemms)
}

/// Best-of-`reps` times of one real SAGA epoch, seconds.
#[derive(Debug, Clone, Copy)]
pub struct EpochTimes {
    /// The fused host epoch, where it applies (flex, class labels, m ≤
    /// [`HOST_EPOCH_MAX_FEATURES`]).
    pub host: Option<f64>,
    /// Tensor operations on an `n × m` copy of the columns.
    pub tensor_copy: f64,
    /// Tensor operations on the columns read in place from X, a batch at a time.
    pub tensor_in_place: f64,
    /// The pair epoch ([`crate::host::saga_pair_epoch`]) on the columns read in place, with
    /// the asked number of (feature, class) pairs per feature, where pairs apply.
    pub pairs: Option<f64>,
}

/// The best-of-`reps` time of one real SAGA epoch (batches of `batch`, a step that keeps the
/// layer finite) on the first `m` features, by each way an epoch can read them; with
/// `pairs_per_feature`, also screened by pair on that many classes of each feature (spread
/// over the K classes).
pub fn epoch_time(
    train: &DeviceSplit,
    m: usize,
    batch: usize,
    reps: usize,
    pairs_per_feature: Option<usize>,
) -> EpochTimes {
    let device = train.device();
    let m = m.clamp(1, train.d);
    let step = Step {
        lambda: 1e-3,
        alpha: 0.99,
        lr: 1e-3,
        group: false,
        family: Family::Multinomial,
    };
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let mut time = |split: &DeviceSplit| {
        let wt = Tensor::<2>::zeros([m, split.k], &device);
        let b = Tensor::<2>::zeros([1, split.k], &device);
        let mut state = SagaState::at(split, Family::Multinomial, wt, b).0;
        let mut best = f64::INFINITY;
        for _ in 0..reps.max(1) {
            let plan = EpochPlan::random(split.n, batch, &mut rng);
            let _ = device.sync();
            let t = std::time::Instant::now();
            state = saga_epoch(split, state, &plan, step).0;
            let _ = device.sync();
            best = best.min(t.elapsed().as_secs_f64());
        }
        best
    };
    let columns: Vec<usize> = (0..m).collect();
    let copy = train.columns_as(&columns, false);
    let host = copy
        .host
        .as_ref()
        .is_some_and(|h| h.x.is_some())
        .then(|| time(&copy));
    // The same copy without the host epoch's rows: tensor operations.
    let tensor_copy = time(&DeviceSplit {
        host: copy.host.clone().map(|h| HostRows { x: None, ..h }),
        ..copy.with_rows(copy.x.clone(), m)
    });
    drop(copy);
    let tensor_in_place = time(&train.columns_as(&columns, true));
    let k = train.k;
    let pairs = pairs_per_feature
        .filter(|_| train.pairs_apply(Family::Multinomial, false))
        .map(|p| {
            let every = (k / p.clamp(1, k)).max(1);
            let set = crate::host::PairSet::from_mask(m, k, |j, c| (c + 37 * j) % every == 0);
            time(&train.columns_as(&columns, true).with_pairs(set))
        });
    EpochTimes {
        host,
        tensor_copy,
        tensor_in_place,
        pairs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect()
    }

    #[test]
    fn rows_are_permuted_in_place_like_a_gather() {
        let (n, w) = (257, 3);
        let data: Vec<u32> = (0..(n * w) as u32).collect();
        let order = shuffled_order(n, 11);
        let gathered: Vec<u32> = order
            .iter()
            .flat_map(|&i| data[i * w..(i + 1) * w].to_vec())
            .collect();
        let mut inplace = data.clone();
        permute_rows(&mut inplace, w, &order);
        assert_eq!(inplace, gathered);
    }

    #[test]
    fn class_labels_give_the_one_hot_loss_and_gradient_bit_for_bit() {
        let device = Device::flex();
        let (b, k) = (64, 7);
        let logits = Tensor::<2>::from_data(TensorData::new(random(b * k, 1), [b, k]), &device) * 8.0;
        let labels: Vec<i64> = (0..b as i64).map(|i| (i * 5 + 3) % k as i64).collect();
        let onehot: Vec<f32> = labels
            .iter()
            .flat_map(|&l| (0..k).map(move |c| if c as i64 == l { 1.0 } else { 0.0 }))
            .collect();
        let classes = DeviceTargets::Classes(Tensor::from_data(TensorData::new(labels, [b, 1]), &device));
        let (g1, l1) = loss_and_grad(Family::Multinomial, logits.clone(), classes);
        // The former formula on a one-hot matrix: log s − Σ_k y_k z_k and p − y.
        let y = Tensor::<2>::from_data(TensorData::new(onehot, [b, k]), &device);
        let z = logits.clone() - logits.max_dim(1);
        let e = z.clone().exp();
        let s = e.clone().sum_dim(1);
        let l2 = s.clone().log() - (z * y.clone()).sum_dim(1);
        let g2 = e / s - y;
        let v = |t: Tensor<2>| t.try_into_vec_as::<f32>().unwrap();
        assert_eq!(v(g1), v(g2));
        assert_eq!(v(l1), v(l2));
    }

    #[test]
    fn chunked_passes_equal_one_pass() {
        // n·K above FULL_PASS_ELEMENTS: the gradient, the table and the evaluation run in
        // two row chunks; they must agree with the unchunked formulas.
        let device = Device::flex();
        let (n, d, k) = (9000, 3, 1000);
        assert!(row_chunks(n, k).count() > 1);
        let labels: Vec<i64> = (0..n as i64).map(|i| (i * 7919) % k as i64).collect();
        let split = Split::new("train", random(n * d, 2), n, d, Targets::Classes(labels.clone())).unwrap();
        let train = DeviceSplit::upload(&split, k, &device);
        let wt = Tensor::<2>::from_data(TensorData::new(random(d * k, 3), [d, k]), &device);
        let b = Tensor::<2>::from_data(TensorData::new(random(k, 4), [1, k]), &device);
        let (gw, gb) = full_gradient(&train, &wt, &b, Family::Multinomial);
        let (state, (sw, sb)) = SagaState::at(&train, Family::Multinomial, wt.clone(), b.clone());
        // One pass, with the one-hot matrix.
        let y = train.y.dense(k);
        let logits = train.x().clone().matmul(wt.clone()) + b.clone();
        let z = logits.clone() - logits.clone().max_dim(1);
        let e = z.exp();
        let a = e.clone() / e.sum_dim(1) - y.clone();
        let rw = train.x().clone().transpose().matmul(a.clone()) / n as f64;
        let rb = a.clone().sum_dim(0) / n as f64;
        let close = |x: Tensor<2>, r: Tensor<2>, what: &str| {
            let (x, r) = (
                x.try_into_vec_as::<f32>().unwrap(),
                r.try_into_vec_as::<f32>().unwrap(),
            );
            let err = x.iter().zip(&r).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(err < 1e-6, "{what}: max error {err}");
        };
        close(gw, rw.clone(), "gradient");
        close(gb, rb.clone(), "bias gradient");
        close(sw, rw, "table average");
        close(sb, rb, "table bias average");
        close(state.table, a, "table");
        let eval = evaluate(&train, &wt, &b, Family::Multinomial);
        let hits: f64 = logits
            .argmax(1)
            .equal(y.argmax(1))
            .float()
            .sum()
            .into_scalar::<f32>() as f64;
        assert_eq!(eval.score, hits / n as f64);
    }

    #[test]
    fn host_held_rows_give_the_device_results_bit_for_bit() {
        // Several full-pass chunks (n·K above FULL_PASS_ELEMENTS), batches that wrap, sample
        // weights: every pass over host-held rows (read ahead in blocks) equals the pass over
        // the device tensor, bit for bit.
        let device = Device::flex();
        let (n, d, k) = (9000, 3, 1000);
        let labels: Vec<i64> = (0..n as i64).map(|i| (i * 7919) % k as i64).collect();
        let weights: Vec<f32> = (0..n).map(|i| 0.5 + (i % 3) as f32 * 0.5).collect();
        let split = Split::new("train", random(n * d, 12), n, d, Targets::Classes(labels))
            .unwrap()
            .with_weights(weights)
            .unwrap();
        let on_device = DeviceSplit::from_split(split.clone(), k, &device, Some(5), false);
        let on_host = DeviceSplit::from_split(split, k, &device, Some(5), true);
        assert!(matches!(on_host.x, FeatureRows::Host(_)));
        assert!(on_host.chunk_spans(k).len() > 1);
        let v = |t: Tensor<2>| t.try_into_vec_as::<f32>().unwrap();
        assert_eq!(
            lambda_max(&on_device, 0.99, false),
            lambda_max(&on_host, 0.99, false)
        );
        assert_eq!(
            auto_step(&on_device, Family::Multinomial, 256),
            auto_step(&on_host, Family::Multinomial, 256)
        );
        let wt = Tensor::<2>::from_data(TensorData::new(random(d * k, 13), [d, k]), &device);
        let b = Tensor::<2>::from_data(TensorData::new(random(k, 14), [1, k]), &device);
        let step = Step {
            lambda: 1e-3,
            alpha: 0.99,
            lr: 0.01,
            group: false,
            family: Family::Multinomial,
        };
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(2);
        let plan = EpochPlan::random(n, 700, &mut rng);
        let run = |split: &DeviceSplit| {
            let (state, (gw, gb)) = SagaState::at(split, Family::Multinomial, wt.clone(), b.clone());
            let (state, summary) = saga_epoch(split, state, &plan, step);
            let eval = evaluate(split, &state.wt, &state.b, Family::Multinomial);
            let cols = split.columns(&[2, 0]);
            (
                v(gw),
                v(gb),
                v(state.wt),
                v(state.table),
                summary.objective,
                eval.loss,
                eval.score,
                v(cols.batch_x(0, n)),
            )
        };
        let (a, b2) = (run(&on_device), run(&on_host));
        assert_eq!(a.0, b2.0, "gradient");
        assert_eq!(a.1, b2.1, "bias gradient");
        assert_eq!(a.2, b2.2, "weights after an epoch");
        assert_eq!(a.3, b2.3, "table after an epoch");
        assert_eq!((a.4, a.5, a.6), (b2.4, b2.5, b2.6), "objective and evaluation");
        assert_eq!(a.7, b2.7, "screened columns");
    }

    #[test]
    fn half_precision_rows_compute_like_their_f32_values() {
        // f16 storage is f16-rounded values computed in f32: the same results as a device
        // tensor of those values, including a screened copy kept in f16 (m > 16 features).
        let device = Device::flex();
        let (n, d, k, m) = (600, 24, 5, 20);
        let labels: Vec<i64> = (0..n as i64).map(|i| (i * 13) % k as i64).collect();
        let split = Split::new("train", random(n * d, 21), n, d, Targets::Classes(labels))
            .unwrap()
            .into_storage(crate::data::Storage::F16);
        let widened = Split {
            x: Features::F32(split.x.clone().into_f32()),
            ..split.clone()
        };
        let half = DeviceSplit::from_split(split, k, &device, Some(1), false);
        let full = DeviceSplit::from_split(widened, k, &device, Some(1), false);
        assert!(matches!(half.x, FeatureRows::Host(_)) && matches!(full.x, FeatureRows::Device(_)));
        let columns: Vec<usize> = (0..m).map(|j| (j * 7) % d).collect();
        let (hs, fs) = (half.columns_as(&columns, false), full.columns(&columns));
        assert!(matches!(hs.x, FeatureRows::Host(_)), "a screened copy stays f16");
        let v = |t: Tensor<2>| t.try_into_vec_as::<f32>().unwrap();
        let step = Step {
            lambda: 1e-3,
            alpha: 0.99,
            lr: 0.02,
            group: false,
            family: Family::Multinomial,
        };
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(4);
        let plan = EpochPlan::random(n, 64, &mut rng);
        let run = |split: &DeviceSplit| {
            let dims = split.d;
            let wt = Tensor::<2>::zeros([dims, k], &device);
            let b = Tensor::<2>::zeros([1, k], &device);
            let (state, (gw, _)) = SagaState::at(split, Family::Multinomial, wt, b);
            let (state, summary) = saga_epoch(split, state, &plan, step);
            (v(gw), v(state.wt), summary.objective)
        };
        assert_eq!(run(&half), run(&full));
        assert_eq!(run(&hs), run(&fs));
        assert_eq!(run(&half.columns_as(&columns, true)), run(&fs));
    }

    #[test]
    fn screened_columns_read_in_place_equal_their_copy() {
        // A screened problem reads the same f32 blocks from X in place as from a copy of its
        // columns, for device rows, f16 host rows and rows left in their file: the same
        // epoch, the same full-pass gradient, bit for bit; views of views compose.
        let device = Device::flex();
        let (n, d, k) = (530, 40, 70);
        let labels: Vec<i64> = (0..n as i64).map(|i| (i * 17 + i / 3) % k as i64).collect();
        let split = Split::new("train", random(n * d, 31), n, d, Targets::Classes(labels)).unwrap();
        let dir = std::env::temp_dir().join(format!("screened-in-place-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("x.npy");
        let values = crate::io::Array::Float {
            shape: vec![n, d],
            data: split.x.clone().into_f32(),
        };
        std::fs::write(&file, crate::io::encode_npy(&values)).unwrap();
        let on_file = Split {
            x: Features::File(crate::filerows::FileRows::open_npy(&file).unwrap()),
            ..split.clone()
        };
        let columns: Vec<usize> = (0..30).map(|j| (j * 11 + 3) % d).collect();
        let step = Step {
            lambda: 1e-3,
            alpha: 0.99,
            lr: 0.02,
            group: false,
            family: Family::Multinomial,
        };
        let v = |t: Tensor<2>| t.try_into_vec_as::<f32>().unwrap();
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(8);
        let plan = EpochPlan::random(n, 64, &mut rng);
        let run = |split: &DeviceSplit| {
            let wt = Tensor::<2>::zeros([split.d, k], &device);
            let b = Tensor::<2>::zeros([1, k], &device);
            let (state, (gw, _)) = SagaState::at(split, Family::Multinomial, wt, b);
            let (state, summary) = saga_epoch(split, state, &plan, step);
            (v(gw), v(state.wt), v(state.table), summary.objective)
        };
        for (what, split) in [
            ("device rows", split.clone()),
            (
                "f16 host rows",
                split.clone().into_storage(crate::data::Storage::F16),
            ),
            ("rows in their file", on_file),
        ] {
            let train = DeviceSplit::from_split(split, k, &device, Some(5), false);
            let (copy, view) = (
                train.columns_as(&columns, false),
                train.columns_as(&columns, true),
            );
            assert!(matches!(view.x, FeatureRows::Columns(_)), "{what}");
            assert_eq!(
                v(copy.batch_x(500, 60)),
                v(view.batch_x(500, 60)),
                "{what}: a wrapped block"
            );
            assert_eq!(run(&copy), run(&view), "{what}");
            let inner: Vec<usize> = vec![4, 0, 9];
            let picked: Vec<usize> = inner.iter().map(|&j| columns[j]).collect();
            assert_eq!(
                v(view.columns_as(&inner, true).batch_x(0, n)),
                v(train.columns_as(&picked, false).batch_x(0, n)),
                "{what}: columns of a view"
            );
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn host_epoch_equals_the_tensor_epoch() {
        // The same epoch (same batches, step and start) by the fused host path and by tensor
        // operations, on a screened split of few features with sample weights.
        let device = Device::flex();
        let (n, d, k, m) = (700, 9, 6, 5);
        let labels: Vec<i64> = (0..n as i64).map(|i| (i * 31 + i / 7) % k as i64).collect();
        let weights: Vec<f32> = (0..n).map(|i| 0.5 + (i % 4) as f32 * 0.25).collect();
        let split = Split::new("train", random(n * d, 5), n, d, Targets::Classes(labels))
            .unwrap()
            .with_weights(weights)
            .unwrap();
        let train = DeviceSplit::from_split(split, k, &device, Some(3), false);
        let sub = train.columns(&[0, 2, 3, 5, 8]);
        assert!(sub.host.as_ref().is_some_and(|h| h.x.is_some()));
        let tensor_sub = DeviceSplit {
            host: None,
            x: sub.x.clone(),
            y: sub.y.clone(),
            w: sub.w.clone(),
            device: sub.device.clone(),
            ..sub
        };
        let wt = Tensor::<2>::from_data(TensorData::new(random(m * k, 6), [m, k]), &device) * 0.1;
        let b = Tensor::<2>::from_data(TensorData::new(random(k, 7), [1, k]), &device) * 0.1;
        for group in [false, true] {
            let step = Step {
                lambda: 0.02,
                alpha: 0.9,
                lr: 0.05,
                group,
                family: Family::Multinomial,
            };
            let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
            let plan = EpochPlan::random(n, 64, &mut rng);
            let run = |split: &DeviceSplit| {
                let state = SagaState::at(split, Family::Multinomial, wt.clone(), b.clone()).0;
                let (state, summary) = saga_epoch(split, state, &plan, step);
                let v = |t: Tensor<2>| t.try_into_vec_as::<f32>().unwrap();
                (
                    v(state.wt),
                    v(state.b),
                    v(state.table),
                    v(state.gbar_w),
                    summary.objective,
                )
            };
            let (h, t) = (run(&sub), run(&tensor_sub));
            let close = |a: &[f32], b: &[f32], what: &str| {
                let err = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
                assert!(err < 1e-5, "{what} (group {group}): max difference {err}");
            };
            close(&h.0, &t.0, "weights");
            close(&h.1, &t.1, "bias");
            close(&h.2, &t.2, "table");
            close(&h.3, &t.3, "table average");
            assert!(
                (h.4 - t.4).abs() < 1e-5 * t.4.abs(),
                "objective {} vs {}",
                h.4,
                t.4
            );
        }
    }
}
