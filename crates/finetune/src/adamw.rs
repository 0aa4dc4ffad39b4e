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

use crate::tensors::{read_f32, replaced, write_f32};

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
        let mut tensors = Vec::new();
        for (name, (m, v)) in &self.moments {
            for (kind, t) in [("m", m), ("v", v)] {
                let values = t.clone().try_into_vec_as::<f32>().expect("f32 moments");
                tensors.push((format!("{kind}.{name}"), vec![values.len()], values));
            }
        }
        let metadata = HashMap::from([("steps".to_string(), self.steps.to_string())]);
        write_f32(path, tensors, Some(metadata))
    }

    /// Restore what [`AdamW::save`] wrote, the moments on `device`.
    pub fn load(&mut self, path: &Path, device: &Device) -> std::io::Result<()> {
        let bad = |e: String| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        };
        let (tensors, meta) = read_f32(path)?;
        let steps = meta
            .get("steps")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no step count".into()))?;
        let mut halves: HashMap<String, [Option<Tensor<1>>; 2]> = HashMap::new();
        for (name, (_, values)) in tensors {
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
        let theta = tensor.clone().inner();
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
        replaced(id, &tensor, updated, mapper)
    }
}
