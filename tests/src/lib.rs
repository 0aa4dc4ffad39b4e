//! Test support, written independently of the solver: seeded synthetic problems, the objective
//! and KKT conditions in f64, and a high-precision full-batch FISTA reference solve.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use solver::{BackendKind, Device, Family, Problem, Split, Standardizer, Targets};

/// The backend the numeric tests run on: `SOLVER_TEST_BACKEND` (default flex).
pub fn test_backend() -> BackendKind {
    std::env::var("SOLVER_TEST_BACKEND")
        .ok()
        .map(|s| s.parse().expect("SOLVER_TEST_BACKEND names a backend"))
        .unwrap_or(BackendKind::Flex)
}

pub fn test_device() -> Device {
    test_backend().device().expect("test backend available")
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box–Muller; enough for test data.
    let u: f64 = rng.random::<f64>().max(1e-300);
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// A seeded problem of the given family: correlated raw features with offsets and scales, and
/// targets from a sparse true model. Features are standardized with the training statistics.
pub fn synthetic(family: Family, n: usize, d: usize, k: usize, seed: u64) -> (Problem, Standardizer) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n_val = n / 4;
    let total = n + n_val;
    let mut x = vec![0f32; total * d];
    let scales: Vec<f64> = (0..d).map(|j| 0.5 + (j % 7) as f64).collect();
    let offsets: Vec<f64> = (0..d).map(|j| (j as f64 * 0.37).sin() * 3.0).collect();
    for i in 0..total {
        let shared = normal(&mut rng);
        for j in 0..d {
            let z = 0.6 * normal(&mut rng) + 0.4 * shared;
            x[i * d + j] = (z * scales[j] + offsets[j]) as f32;
        }
    }
    // Sparse true weights: each output uses 4 features.
    let mut w = vec![0f64; k * d];
    for c in 0..k {
        for t in 0..4 {
            let j = (c * 3 + t * 5) % d;
            w[c * d + j] = if t % 2 == 0 { 1.5 } else { -1.0 };
        }
    }
    let logit = |i: usize, c: usize| -> f64 {
        (0..d)
            .map(|j| w[c * d + j] * (x[i * d + j] as f64 - offsets[j]) / scales[j])
            .sum()
    };
    let make_targets = |rng: &mut ChaCha8Rng, range: std::ops::Range<usize>| -> Targets {
        match family {
            Family::Multinomial => Targets::Classes(
                range
                    .map(|i| {
                        let z: Vec<f64> = (0..k).map(|c| logit(i, c)).collect();
                        let m = z.iter().cloned().fold(f64::MIN, f64::max);
                        let p: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
                        let s: f64 = p.iter().sum();
                        let mut u = rng.random::<f64>() * s;
                        let mut c = 0;
                        while c + 1 < k && u > p[c] {
                            u -= p[c];
                            c += 1;
                        }
                        c as i64
                    })
                    .collect(),
            ),
            Family::Gaussian => Targets::Dense {
                values: range
                    .flat_map(|i| (0..k).map(move |c| (i, c)))
                    .map(|(i, c)| (logit(i, c) + 0.5 * normal(rng)) as f32)
                    .collect(),
                k,
            },
            Family::Multilabel => Targets::Dense {
                values: range
                    .flat_map(|i| (0..k).map(move |c| (i, c)))
                    .map(|(i, c)| {
                        let p = 1.0 / (1.0 + (-logit(i, c)).exp());
                        if rng.random::<f64>() < p {
                            1.0
                        } else {
                            0.0
                        }
                    })
                    .collect(),
                k,
            },
        }
    };
    let y_train = make_targets(&mut rng, 0..n);
    let y_val = make_targets(&mut rng, n..total);
    let mut train = Split::new("train", x[..n * d].to_vec(), n, d, y_train).unwrap();
    let mut val = Split::new("val", x[n * d..].to_vec(), n_val, d, y_val).unwrap();
    let st = Standardizer::fit(&train);
    st.apply(&mut train);
    st.apply(&mut val);
    (Problem::new(family, train, Some(val), None, Some(k)).unwrap(), st)
}

/// A dense f64 copy of a standardized training split: X `[n, d]`, Y `[n, k]`, weights.
pub struct Dense64 {
    pub n: usize,
    pub d: usize,
    pub k: usize,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub w: Vec<f64>,
    pub family: Family,
}

impl Dense64 {
    pub fn from_problem(p: &Problem) -> Self {
        let s = &p.train;
        Dense64 {
            n: s.n,
            d: s.d,
            k: p.k,
            x: s.x.to_f32(0, s.x.len()).iter().map(|&v| v as f64).collect(),
            y: s.target_matrix(p.k).iter().map(|&v| v as f64).collect(),
            w: s.weights
                .as_ref()
                .map_or(vec![1.0; s.n], |w| w.iter().map(|&v| v as f64).collect()),
            family: p.family,
        }
    }

    /// Mean weighted loss and its gradient w.r.t. W `[k, d]` and b `[k]`.
    pub fn loss_grad(&self, wm: &[f64], b: &[f64]) -> (f64, Vec<f64>, Vec<f64>) {
        let (n, d, k) = (self.n, self.d, self.k);
        let mut loss = 0.0;
        let mut gw = vec![0.0; k * d];
        let mut gb = vec![0.0; k];
        let mut z = vec![0.0; k];
        let mut a = vec![0.0; k];
        for i in 0..n {
            let xi = &self.x[i * d..(i + 1) * d];
            let yi = &self.y[i * k..(i + 1) * k];
            for c in 0..k {
                z[c] = b[c] + (0..d).map(|j| wm[c * d + j] * xi[j]).sum::<f64>();
            }
            let li = match self.family {
                Family::Multinomial => {
                    let m = z.iter().cloned().fold(f64::MIN, f64::max);
                    let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                    for c in 0..k {
                        a[c] = (z[c] - lse).exp() - yi[c];
                    }
                    (0..k).map(|c| yi[c] * (lse - z[c])).sum::<f64>()
                }
                Family::Gaussian => {
                    for c in 0..k {
                        a[c] = z[c] - yi[c];
                    }
                    a.iter().map(|v| v * v).sum::<f64>() / 2.0
                }
                Family::Multilabel => {
                    let mut l = 0.0;
                    for c in 0..k {
                        a[c] = 1.0 / (1.0 + (-z[c]).exp()) - yi[c];
                        l += z[c].max(0.0) + (-z[c].abs()).exp().ln_1p() - z[c] * yi[c];
                    }
                    l
                }
            };
            let wi = self.w[i];
            loss += wi * li;
            for c in 0..k {
                let ac = wi * a[c] / n as f64;
                gb[c] += ac;
                for j in 0..d {
                    gw[c * d + j] += ac * xi[j];
                }
            }
        }
        (loss / n as f64, gw, gb)
    }

    pub fn penalty(&self, wm: &[f64], lambda: f64, alpha: f64, group: bool) -> f64 {
        let sq: f64 = wm.iter().map(|v| v * v).sum();
        let p1: f64 = if group {
            (0..self.d)
                .map(|j| {
                    (0..self.k)
                        .map(|c| wm[c * self.d + j].powi(2))
                        .sum::<f64>()
                        .sqrt()
                })
                .sum()
        } else {
            wm.iter().map(|v| v.abs()).sum()
        };
        lambda * (alpha * p1 + 0.5 * (1.0 - alpha) * sq)
    }

    pub fn objective(&self, wm: &[f64], b: &[f64], lambda: f64, alpha: f64, group: bool) -> f64 {
        self.loss_grad(wm, b).0 + self.penalty(wm, lambda, alpha, group)
    }

    /// Largest violation of the optimality conditions (and |∂/∂b|), in f64.
    pub fn kkt(&self, wm: &[f64], b: &[f64], lambda: f64, alpha: f64, group: bool) -> f64 {
        let (_, gw, gb) = self.loss_grad(wm, b);
        let (d, k) = (self.d, self.k);
        let mut worst = gb.iter().map(|v| v.abs()).fold(0.0, f64::max);
        let r: Vec<f64> = (0..k * d)
            .map(|i| gw[i] + lambda * (1.0 - alpha) * wm[i])
            .collect();
        if group {
            for j in 0..d {
                let norm = (0..k).map(|c| wm[c * d + j].powi(2)).sum::<f64>().sqrt();
                let v = if norm == 0.0 {
                    ((0..k).map(|c| r[c * d + j].powi(2)).sum::<f64>().sqrt() - lambda * alpha).max(0.0)
                } else {
                    (0..k)
                        .map(|c| (r[c * d + j] + lambda * alpha * wm[c * d + j] / norm).powi(2))
                        .sum::<f64>()
                        .sqrt()
                };
                worst = worst.max(v);
            }
        } else {
            for i in 0..k * d {
                let v = if wm[i] == 0.0 {
                    (r[i].abs() - lambda * alpha).max(0.0)
                } else {
                    (r[i] + lambda * alpha * wm[i].signum()).abs()
                };
                worst = worst.max(v);
            }
        }
        worst
    }

    /// Smoothness constant of the mean loss over (W, b): curvature × λ_max(X̃ᵀ diag(w) X̃ / n).
    fn smoothness(&self) -> f64 {
        let (n, d) = (self.n, self.d);
        let mut v = vec![1.0 / ((d + 1) as f64).sqrt(); d + 1];
        let mut eig = 0.0;
        for _ in 0..500 {
            let mut out = vec![0.0; d + 1];
            for i in 0..n {
                let xi = &self.x[i * d..(i + 1) * d];
                let s = self.w[i] * ((0..d).map(|j| xi[j] * v[j]).sum::<f64>() + v[d]);
                for j in 0..d {
                    out[j] += s * xi[j] / n as f64;
                }
                out[d] += s / n as f64;
            }
            let norm = out.iter().map(|x| x * x).sum::<f64>().sqrt();
            v = out.iter().map(|x| x / norm).collect();
            if (norm - eig).abs() < 1e-12 * norm {
                eig = norm;
                break;
            }
            eig = norm;
        }
        eig * self.family_curvature()
    }

    fn family_curvature(&self) -> f64 {
        match self.family {
            Family::Multinomial => 0.5,
            Family::Gaussian => 1.0,
            Family::Multilabel => 0.25,
        }
    }

    fn prox(&self, v: &mut [f64], t: f64, lambda: f64, alpha: f64, group: bool) {
        let (d, k) = (self.d, self.k);
        let shrink = t * lambda * alpha;
        let ridge = 1.0 + t * lambda * (1.0 - alpha);
        if group {
            for j in 0..d {
                let norm = (0..k).map(|c| v[c * d + j].powi(2)).sum::<f64>().sqrt();
                let s = if norm > 0.0 {
                    (1.0 - shrink / norm).max(0.0)
                } else {
                    0.0
                };
                for c in 0..k {
                    v[c * d + j] *= s / ridge;
                }
            }
        } else {
            for x in v.iter_mut() {
                *x = x.signum() * (x.abs() - shrink).max(0.0) / ridge;
            }
        }
    }

    /// High-precision solve by FISTA with adaptive restart, in f64, until the objective stalls
    /// at machine precision. Returns (W `[k, d]`, b, objective).
    pub fn fista(&self, lambda: f64, alpha: f64, group: bool, max_iter: usize) -> (Vec<f64>, Vec<f64>, f64) {
        let (d, k) = (self.d, self.k);
        let step = 1.0 / self.smoothness();
        let mut w = vec![0.0; k * d];
        let mut b = vec![0.0; k];
        let mut yw = w.clone();
        let mut yb = b.clone();
        let mut t = 1.0f64;
        let mut obj = self.objective(&w, &b, lambda, alpha, group);
        let mut stall = 0;
        for _ in 0..max_iter {
            let (_, gw, gb) = self.loss_grad(&yw, &yb);
            let mut nw: Vec<f64> = yw.iter().zip(&gw).map(|(a, g)| a - step * g).collect();
            self.prox(&mut nw, step, lambda, alpha, group);
            let nb: Vec<f64> = yb.iter().zip(&gb).map(|(a, g)| a - step * g).collect();
            let nobj = self.objective(&nw, &nb, lambda, alpha, group);
            if nobj > obj {
                // Adaptive restart: drop the momentum. At the optimum rounding makes every step
                // look like an increase, so restarts count towards the stall too.
                t = 1.0;
                yw = w.clone();
                yb = b.clone();
                stall += 1;
                if stall > 20 {
                    break;
                }
                continue;
            }
            let nt = (1.0 + (1.0 + 4.0 * t * t).sqrt()) / 2.0;
            let beta = (t - 1.0) / nt;
            yw = nw.iter().zip(&w).map(|(a, p)| a + beta * (a - p)).collect();
            yb = nb.iter().zip(&b).map(|(a, p)| a + beta * (a - p)).collect();
            let change = obj - nobj;
            w = nw;
            b = nb;
            t = nt;
            obj = nobj;
            if change <= 1e-15 * obj.abs() {
                stall += 1;
                if stall > 20 {
                    break;
                }
            } else {
                stall = 0;
            }
        }
        (w, b, obj)
    }
}

/// f64 copies of a layer's weight `[k, d]` and bias.
pub fn layer64(layer: &solver::Layer) -> (Vec<f64>, Vec<f64>) {
    (
        layer.weight.iter().map(|&v| v as f64).collect(),
        layer.bias.iter().map(|&v| v as f64).collect(),
    )
}
