//! Fine-tuning a BERT / RoBERTa sequence classifier on the task (design §7): the mean
//! cross-entropy of the checkpoint's own classification head, gradients by burn's autodiff, and
//! AdamW steps with PyTorch's semantics ([`adamw`]: decoupled weight decay `θ ← θ(1 − lr·wd)`,
//! bias-corrected moments, ε outside the square root). Checked against transformers + torch.optim.AdamW on a
//! random-weight BERT (`fixtures/make_fixtures.py`, `tests/pytorch_step.rs`).

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::activation::log_softmax;
use burn::tensor::Gradients;
use burn::tensor::{Int, Tensor};

use bert::{BertNet, ModelSpec};

pub mod adamw;
pub mod hf;
pub mod tensors;
pub mod train;

pub use adamw::AdamW;

/// One padded batch of token ids with the class of each row.
#[derive(Clone, Debug)]
pub struct ClassifierBatch {
    pub input_ids: Tensor<2, Int>,
    pub attention_mask: Tensor<2, Int>,
    pub token_type_ids: Tensor<2, Int>,
    pub labels: Tensor<1, Int>,
}

/// Class logits `[B, K]` of the network's classification head (BERT: classifier on the pooler;
/// RoBERTa: its two-layer head on `<s>`), with the config's training dropout where `training`
/// (on an autodiff device; masks from the device's seeded generator). `None` when the
/// checkpoint has no head.
pub fn classifier_logits(
    net: &BertNet,
    spec: &ModelSpec,
    batch: &ClassifierBatch,
    training: bool,
) -> Option<Tensor<2>> {
    let dropout = training.then_some(spec.dropout);
    let hidden = net.forward_with(
        spec,
        batch.input_ids.clone(),
        batch.attention_mask.clone(),
        Some(batch.token_type_ids.clone()),
        dropout,
    );
    let [b, _, d] = hidden.dims();
    net.logits_with(hidden.narrow(1, 0, 1).reshape([b, d]), dropout)
}

/// Mean cross-entropy of `logits` `[B, K]` against class `labels` `[B]` (transformers'
/// `CrossEntropyLoss()` of a sequence classifier).
pub fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let [b, _] = logits.dims();
    let picked = log_softmax(logits, 1).gather(1, labels.reshape([b, 1]));
    picked.mean().neg()
}

/// One optimizer step on `net` from the gradients of `loss` (a scalar on the autodiff device).
pub fn step<M: Module>(optim: &mut AdamW, lr: f64, net: M, loss: Tensor<1>) -> M {
    let mut grads = GradientsParams::from_grads(loss.backward(), &net);
    optim.step(lr, net, &mut grads)
}

/// Scale all gradients together so that their global L2 norm is at most `max_norm`, as
/// torch.nn.utils.clip_grad_norm_ does (factor `max_norm / (norm + 1e-6)` when it is below 1;
/// burn's own clipping acts on each tensor alone). Returns the norm before clipping.
pub fn clip_grad_norm<M: Module>(module: &M, grads: &mut GradientsParams, max_norm: f64) -> f64 {
    struct SquaredSum<'a> {
        grads: &'a GradientsParams,
        sum: f64,
    }
    impl ModuleVisitor for SquaredSum<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                self.sum += g.square().sum().into_scalar::<f64>();
            }
        }
    }
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        factor: f64,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(param.id) {
                self.grads.register(param.id, g * self.factor);
            }
        }
    }
    let mut sum = SquaredSum { grads, sum: 0.0 };
    module.visit(&mut sum);
    let norm = sum.sum.sqrt();
    let factor = max_norm / (norm + 1e-6);
    if factor < 1.0 {
        module.visit(&mut Scale { grads, factor });
    }
    norm
}

/// The learning-rate factor of optimizer step `step` (0-based) under transformers' linear
/// schedule with warmup: `step / warmup` during the warmup, then down linearly to 0 at `total`.
pub fn linear_schedule(step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        step as f64 / warmup.max(1) as f64
    } else {
        (total.saturating_sub(step)) as f64 / total.saturating_sub(warmup).max(1) as f64
    }
}

/// A parameter's path in the module (`encoder.layer.0.attention.self_attn.query.weight`), its
/// shape, its values, and its gradient when gradients were given.
#[derive(Debug, Clone)]
pub struct NamedParam {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
    pub grad: Option<Vec<f32>>,
}

/// Every float parameter of `module` by path, in visiting order, with its gradient in `grads`.
pub fn named_params<M: Module>(module: &M, grads: Option<&Gradients>) -> Vec<NamedParam> {
    struct Collect<'a> {
        path: Vec<String>,
        grads: Option<&'a Gradients>,
        out: Vec<NamedParam>,
    }
    impl ModuleVisitor for Collect<'_> {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let tensor = param.val();
            let vec = |t: Tensor<D>| t.try_into_vec_as::<f32>().expect("f32 values");
            let grad = self.grads.and_then(|g| tensor.grad(g)).map(vec);
            self.out.push(NamedParam {
                name: self.path.join("."),
                shape: tensor.dims().to_vec(),
                values: vec(tensor.inner()),
                grad,
            });
        }
    }
    let mut collect = Collect {
        path: Vec::new(),
        grads,
        out: Vec::new(),
    };
    module.visit(&mut collect);
    collect.out
}
