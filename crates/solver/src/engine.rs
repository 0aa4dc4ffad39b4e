//! The device side of the solver: data resident on a burn device, the mini-batch SAGA epoch
//! (design §2, one GEMM per batch for the logits and one for the gradient, never a |B|×K×d
//! tensor), the proximal steps, and full-pass evaluations (objective, KKT, scores).
//!
//! Everything here is backend-agnostic: tensors follow the `Device` they were created on.

use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::config::Family;
use crate::data::Split;

/// One split uploaded to a device: features `[n, d]`, targets `[n, K]` (one-hot for classes),
/// optional sample weights `[n, 1]`.
pub struct DeviceSplit {
    pub x: Tensor<2>,
    pub y: Tensor<2>,
    pub w: Option<Tensor<2>>,
    pub n: usize,
    pub d: usize,
    pub k: usize,
}

impl DeviceSplit {
    pub fn upload(split: &Split, k: usize, device: &Device) -> Self {
        let w = split.weights.clone();
        Self::from_host(
            split.x.clone(),
            split.target_matrix(k),
            w,
            split.n,
            split.d,
            k,
            device,
        )
    }

    /// [`DeviceSplit::upload`] with the rows in a random order given by `seed`: SAGA's epochs
    /// then take consecutive rows as their batches ([`EpochPlan`]). Losses, gradients and the
    /// objective are sums over examples, so nothing else sees the order; the n×K table follows
    /// it. The rows are reordered on the host while building the upload's copy, so the device
    /// holds X once (a device-side `select` needed two copies of X while it ran).
    pub fn upload_shuffled(split: &Split, k: usize, device: &Device, seed: u64) -> Self {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let (n, d) = (split.n, split.d);
        let mut perm: Vec<usize> = (0..n).collect();
        perm.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        let reorder = |v: &[f32], width: usize| -> Vec<f32> {
            perm.iter()
                .flat_map(|&i| v[i * width..(i + 1) * width].iter().copied())
                .collect()
        };
        let x = reorder(&split.x, d);
        let y = reorder(&split.target_matrix(k), k);
        let w = split.weights.as_deref().map(|w| reorder(w, 1));
        Self::from_host(x, y, w, n, d, k, device)
    }

    fn from_host(
        x: Vec<f32>,
        y: Vec<f32>,
        w: Option<Vec<f32>>,
        n: usize,
        d: usize,
        k: usize,
        device: &Device,
    ) -> Self {
        let x = Tensor::<2>::from_data(TensorData::new(x, [n, d]), device);
        let y = Tensor::<2>::from_data(TensorData::new(y, [n, k]), device);
        let w = w.map(|w| Tensor::<2>::from_data(TensorData::new(w, [n, 1]), device));
        DeviceSplit { x, y, w, n, d, k }
    }

    pub fn device(&self) -> Device {
        self.x.device()
    }

    /// The same split restricted to the `m` feature columns listed in `columns` (the screened
    /// problem of one λ): one `n × m` copy of X; targets and weights are shared.
    pub fn columns(&self, columns: &Tensor<1, Int>, m: usize) -> DeviceSplit {
        DeviceSplit {
            x: self.x.clone().select(1, columns.clone()),
            y: self.y.clone(),
            w: self.w.clone(),
            n: self.n,
            d: m,
            k: self.k,
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
pub fn loss_and_grad(family: Family, logits: Tensor<2>, y: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
    match family {
        Family::Multinomial => {
            // One exp per logit (log_softmax then exp took two, and exp was an eighth of an
            // epoch at K = 100): p = e/s with e = exp(z − max z), s = Σ e, and for one-hot y
            // the loss −Σ_k y_k log p_k = log s − Σ_k y_k (z_k − max z).
            let z = logits.clone() - logits.max_dim(1);
            let e = z.clone().exp();
            let s = e.clone().sum_dim(1);
            let loss = s.clone().log() - (z * y.clone()).sum_dim(1);
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
    pub fn initial(train: &DeviceSplit, family: Family) -> Self {
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
        // With W = 0 every example's logits are the bias.
        let logits = Tensor::<2>::zeros([train.n, k], &device) + b.clone();
        let table = table_at(train, family, logits);
        let mut state = SagaState {
            wt: Tensor::zeros([d, k], &device),
            b,
            table,
            gbar_w: Tensor::zeros([d, k], &device),
            gbar_b: Tensor::zeros([1, k], &device),
        };
        state.refresh_average(train);
        state
    }

    /// Refill the table with every example's gradient at the current (W, b) (one GEMM for the
    /// logits): for a start moved away from the iterates the table remembers, so the first
    /// epoch's variance-reduced steps are exact rather than corrected by stale gradients.
    pub fn refill_table(&mut self, train: &DeviceSplit, family: Family) {
        let logits = train.x.clone().matmul(self.wt.clone()) + self.b.clone();
        self.table = table_at(train, family, logits);
    }

    /// Recompute the table average exactly (one GEMM), removing the drift of the running sums.
    pub fn refresh_average(&mut self, train: &DeviceSplit) {
        let n = train.n as f64;
        self.gbar_w = train.x.clone().transpose().matmul(self.table.clone()) / n;
        self.gbar_b = self.table.clone().sum_dim(0) / n;
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

/// `Σ w_i y_i / Σ w_i` as `[1, K]`.
pub fn weighted_target_mean(split: &DeviceSplit) -> Tensor<2> {
    match &split.w {
        None => split.y.clone().mean_dim(0),
        Some(w) => (split.y.clone() * w.clone()).sum_dim(0) / w.clone().sum_dim(0),
    }
}

/// λ_max on the given (standardized) training split: the smallest λ whose solution is W = 0.
/// `G = (1/n) Xᵀ diag(w) (Y − Ȳ_w)`; elementwise: `max |G_kj| / max(α, 1e-3)`; group: the
/// largest feature column norm `max_j ‖G_·j‖₂` over the same denominator.
pub fn lambda_max(train: &DeviceSplit, alpha: f64, group: bool) -> f64 {
    let centered = train.y.clone() - weighted_target_mean(train);
    let centered = match &train.w {
        None => centered,
        Some(w) => centered * w.clone(),
    };
    let g = train.x.clone().transpose().matmul(centered) / train.n as f64; // [d, K]
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
    let row_sq = train.x.clone().square().sum_dim(1) + 1.0; // [n, 1]
    let row_sq = match &train.w {
        None => row_sq,
        Some(w) => row_sq * w.clone(),
    };
    let l_max = c * row_sq.max().into_scalar::<f32>() as f64;

    // Power iteration on v = (u, c0) with u ∈ R^d and the bias coordinate c0.
    let mut v = Tensor::<2>::ones([d, 1], &device) / (d as f64 + 1.0).sqrt();
    let mut v0 = 1.0 / (d as f64 + 1.0).sqrt();
    let mut eig = 0.0f64;
    for it in 0..100 {
        let xv = train.x.clone().matmul(v.clone()) + v0; // [n, 1]
        let xv = match &train.w {
            None => xv,
            Some(w) => xv * w.clone(),
        };
        let nv = train.x.clone().transpose().matmul(xv.clone()) / n as f64; // [d, 1]
        let nv0: f32 = (xv.sum() / n as f64).into_scalar();
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
/// ([`DeviceSplit::upload_shuffled`], once per path): batch `j` holds the `batch` consecutive
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
fn rows(t: Tensor<2>, start: usize, len: usize, n: usize) -> Tensor<2> {
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
    let device = train.device();
    let n = train.n;
    let nf = n as f64;
    let wt_prev = state.wt.clone();
    let b_prev = state.b.clone();
    let mut loss_sum = Tensor::<1>::zeros([1], &device);
    let SagaState {
        mut wt,
        mut b,
        mut table,
        mut gbar_w,
        mut gbar_b,
    } = state;

    for &j in &plan.order {
        let (start, len) = plan.span(j, n);
        let bsz = len as f64;
        let xb = rows(train.x.clone(), start, len, n);
        let yb = rows(train.y.clone(), start, len, n);
        let tb = rows(table.clone(), start, len, n);

        let logits = xb.clone().matmul(wt.clone()) + b.clone();
        let (mut a, mut loss) = loss_and_grad(step.family, logits, yb);
        if let Some(w) = &train.w {
            let wb = rows(w.clone(), start, len, n);
            a = a * wb.clone();
            loss = loss * wb;
        }
        loss_sum = loss_sum + loss.sum();

        // `tb` (a view of the table) is consumed here, so the table's buffer is unique again
        // when the batch's rows are written back below.
        let delta = a.clone() - tb; // [B, K]

        // The one gradient GEMM, as Δᵀ·X_B ([K, B]·[B, d]): 15% faster than X_Bᵀ·Δ at K = 2.
        let gsum = delta.clone().transpose().matmul(xb).transpose(); // [d, K]
        let dsum = delta.sum_dim(0); // [1, K]

        let gw = gsum.clone() / bsz + gbar_w.clone();
        let gb = dsum.clone() / bsz + gbar_b.clone();
        wt = prox(wt - gw * step.lr, step.lr, step.lambda, step.alpha, step.group);
        b = b - gb * step.lr;

        table = assign_rows(table, start, len, n, a);
        gbar_w = gbar_w + gsum / nf;
        gbar_b = gbar_b + dsum / nf;
    }
    let state = SagaState {
        wt,
        b,
        table,
        gbar_w,
        gbar_b,
    };

    // One read: [loss sum, ‖Δθ‖², ‖θ‖², ‖W‖₁ or Σ‖W_j‖, ‖W‖²].
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
    let loss = s[0] as f64 / nf;
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

/// Loss and score of the layer `(wt, b)` on a split (one pass; logits are n × K).
pub fn evaluate(split: &DeviceSplit, wt: &Tensor<2>, b: &Tensor<2>, family: Family) -> Evaluation {
    let logits = split.x.clone().matmul(wt.clone()) + b.clone();
    let (_, loss) = loss_and_grad(family, logits.clone(), split.y.clone());
    let loss = match &split.w {
        None => loss,
        Some(w) => loss * w.clone(),
    };
    let rows: Vec<f32> = loss.try_into_vec_as::<f32>().expect("f32 loss");
    let loss = rows.iter().map(|&v| v as f64).sum::<f64>() / split.n as f64;
    let score = match family {
        Family::Multinomial => {
            let hit = logits.argmax(1).equal(split.y.clone().argmax(1)).float().sum();
            hit.into_scalar::<f32>() as f64 / split.n as f64
        }
        Family::Multilabel => {
            let pred = logits.greater_elem(0.0);
            let truth = split.y.clone().greater_elem(0.5);
            let hit = pred.equal(truth).float().sum();
            hit.into_scalar::<f32>() as f64 / (split.n * split.k) as f64
        }
        Family::Gaussian => {
            let sse: f32 = (logits - split.y.clone()).square().sum().into_scalar();
            let centered = split.y.clone() - split.y.clone().mean_dim(0);
            let sst: f32 = centered.square().sum().into_scalar();
            if sst > 0.0 {
                1.0 - sse as f64 / sst as f64
            } else {
                f64::NAN
            }
        }
    };
    Evaluation { loss, score }
}

/// Full gradient of the mean loss at `(wt, b)`: `([d, K], [1, K])`.
pub fn full_gradient(
    train: &DeviceSplit,
    wt: &Tensor<2>,
    b: &Tensor<2>,
    family: Family,
) -> (Tensor<2>, Tensor<2>) {
    let logits = train.x.clone().matmul(wt.clone()) + b.clone();
    let (mut a, _) = loss_and_grad(family, logits, train.y.clone());
    if let Some(w) = &train.w {
        a = a * w.clone();
    }
    let n = train.n as f64;
    (
        train.x.clone().transpose().matmul(a.clone()) / n,
        a.sum_dim(0) / n,
    )
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
    let fwd = time(&|| train.x.clone().matmul(wt.clone()));
    let bwd = time(&|| train.x.clone().transpose().matmul(a.clone()));
    (fwd, bwd)
}
