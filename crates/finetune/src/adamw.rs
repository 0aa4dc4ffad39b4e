//! AdamW with PyTorch's semantics whose state is keyed by parameter path, so a checkpoint
//! written after an epoch restores it into a network loaded afresh (burn's optimizer keys its
//! state by parameter ids, which a reloaded network does not keep).
//!
//! Per parameter θ with gradient g at step t (1-based): m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g²,
//! θ ← θ(1 − lr·wd) − lr · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε), as torch.optim.AdamW.

use std::collections::HashMap;
use std::path::Path;

use burn::module::{Module, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};

/// Where weight decay applies: transformers' Trainer exempts biases and LayerNorm parameters.
pub fn decays(path: &str) -> bool {
    !(path.ends_with(".bias") || path.contains("LayerNorm."))
}

#[derive(Debug, Clone)]
pub struct AdamW {
    pub beta_1: f64,
    pub beta_2: f64,
    pub epsilon: f64,
    pub weight_decay: f64,
    /// Decay only the parameters whose path this accepts (all when `None`).
    pub decay_filter: Option<fn(&str) -> bool>,
    /// Steps taken so far.
    pub steps: u64,
    /// First and second moments by parameter path, flattened.
    moments: HashMap<String, (Tensor<1>, Tensor<1>)>,
}

impl AdamW {
    /// torch.optim.AdamW with these settings, weight decay on every parameter.
    pub fn new(beta_1: f64, beta_2: f64, epsilon: f64, weight_decay: f64) -> Self {
        AdamW {
            beta_1,
            beta_2,
            epsilon,
            weight_decay,
            decay_filter: None,
            steps: 0,
            moments: HashMap::new(),
        }
    }

    /// As transformers' Trainer sets it up: β 0.9 / 0.999, ε 1e-8, the decay off for biases
    /// and LayerNorms.
    pub fn trainer(weight_decay: f64) -> Self {
        AdamW {
            decay_filter: Some(decays),
            ..AdamW::new(0.9, 0.999, 1e-8, weight_decay)
        }
    }

    /// One step of every parameter of `module` that has a gradient in `grads`.
    pub fn step<M: Module>(&mut self, lr: f64, module: M, grads: &mut GradientsParams) -> M {
        self.steps += 1;
        let mut mapper = Stepper {
            adam: self,
            lr,
            grads,
            path: Vec::new(),
        };
        module.map(&mut mapper)
    }

    /// The moments and the step count as a safetensors file (`m.PATH`, `v.PATH`; the count in
    /// the metadata).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut entries: Vec<(String, Vec<u8>, usize)> = Vec::new();
        for (name, (m, v)) in &self.moments {
            for (kind, t) in [("m", m), ("v", v)] {
                let values = t.clone().try_into_vec_as::<f32>().expect("f32 moments");
                let n = values.len();
                entries.push((
                    format!("{kind}.{name}"),
                    values.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    n,
                ));
            }
        }
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = entries
            .iter()
            .map(|(name, bytes, n)| {
                let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![*n], bytes)
                    .expect("shape matches data");
                (name.clone(), view)
            })
            .collect();
        let metadata = HashMap::from([("steps".to_string(), self.steps.to_string())]);
        let bytes = safetensors::serialize(views, Some(metadata)).map_err(std::io::Error::other)?;
        std::fs::write(path, bytes)
    }

    /// Restore what [`AdamW::save`] wrote, the moments on `device`.
    pub fn load(&mut self, path: &Path, device: &Device) -> std::io::Result<()> {
        let bytes = std::fs::read(path)?;
        let bad = |e: String| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        };
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let steps = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("steps"))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no step count".into()))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let mut halves: HashMap<String, [Option<Tensor<1>>; 2]> = HashMap::new();
        for (name, view) in st.tensors() {
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let n = values.len();
            let t = Tensor::<1>::from_data(TensorData::new(values, [n]), device);
            let (slot, param) = match name.split_once('.') {
                Some(("m", p)) => (0, p),
                Some(("v", p)) => (1, p),
                _ => return Err(bad(format!("unexpected tensor {name}"))),
            };
            halves.entry(param.to_string()).or_default()[slot] = Some(t);
        }
        self.moments = halves
            .into_iter()
            .map(|(p, [m, v])| match (m, v) {
                (Some(m), Some(v)) => Ok((p, (m, v))),
                _ => Err(bad(format!("{p}: one moment missing"))),
            })
            .collect::<std::io::Result<_>>()?;
        self.steps = steps;
        Ok(())
    }
}

struct Stepper<'a> {
    adam: &'a mut AdamW,
    lr: f64,
    grads: &'a mut GradientsParams,
    path: Vec<String>,
}

impl ModuleMapper for Stepper<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let adam = &mut *self.adam;
        let path = self.path.join(".");
        let require_grad = tensor.is_require_grad();
        let theta = tensor.inner();
        let shape = theta.dims();
        let n: usize = shape.iter().product();
        let g = grad.reshape([n]);
        let (b1, b2) = (adam.beta_1, adam.beta_2);
        let (m, v) = match adam.moments.remove(&path) {
            Some((m, v)) => (m * b1 + g.clone() * (1.0 - b1), v * b2 + g.square() * (1.0 - b2)),
            None => (g.clone() * (1.0 - b1), g.square() * (1.0 - b2)),
        };
        let t = adam.steps as i32;
        let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        let update = (m.clone() / c1) / ((v.clone() / c2).sqrt() + adam.epsilon);
        adam.moments.insert(path.clone(), (m, v));
        let decay = adam.weight_decay * self.lr;
        let decayed = if decay > 0.0 && adam.decay_filter.is_none_or(|f| f(&path)) {
            theta * (1.0 - decay)
        } else {
            theta
        };
        let updated = decayed - update.reshape(shape) * self.lr;
        let mut value = Tensor::from_inner(updated);
        if require_grad {
            value = value.require_grad();
        }
        Param::from_mapped_value(id, value, mapper)
    }
}
