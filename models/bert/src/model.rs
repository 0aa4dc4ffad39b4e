//! The BERT / RoBERTa encoder as burn modules. Field names follow the Hugging Face checkpoint
//! keys (`embeddings.word_embeddings`, `encoder.layer.N.attention.output.LayerNorm`, ...) so
//! weights load by name; the only renames are `attention.self` → `attention.self_attn` (`self`
//! is a Rust keyword) and RoBERTa's `classifier.{dense,out_proj}` → `roberta_head.*`.

#![allow(non_snake_case)]

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{gelu, gelu_approximate, relu, softmax};
use burn::tensor::{Device, Distribution, Int, Tensor};

use crate::config::{Activation, Arch, Dropout, ModelSpec};

#[derive(Module, Debug)]
pub struct Embeddings {
    pub word_embeddings: Embedding,
    pub position_embeddings: Embedding,
    pub token_type_embeddings: Embedding,
    pub LayerNorm: LayerNorm,
}

#[derive(Module, Debug)]
pub struct SelfAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
}

/// `dense` then `LayerNorm(· + residual)`: HF's `BertSelfOutput` and `BertOutput`.
#[derive(Module, Debug)]
pub struct DenseNorm {
    pub dense: Linear,
    pub LayerNorm: LayerNorm,
}

#[derive(Module, Debug)]
pub struct Attention {
    pub self_attn: SelfAttention,
    pub output: DenseNorm,
}

#[derive(Module, Debug)]
pub struct Intermediate {
    pub dense: Linear,
}

#[derive(Module, Debug)]
pub struct Layer {
    pub attention: Attention,
    pub intermediate: Intermediate,
    pub output: DenseNorm,
}

#[derive(Module, Debug)]
pub struct Encoder {
    pub layer: Vec<Layer>,
}

/// BERT's pooler: `tanh(dense(h_CLS))`.
#[derive(Module, Debug)]
pub struct Pooler {
    pub dense: Linear,
}

/// RoBERTa's classification head: `out_proj(tanh(dense(h_CLS)))`.
#[derive(Module, Debug)]
pub struct RobertaHead {
    pub dense: Linear,
    pub out_proj: Linear,
}

/// Which parts besides the encoder a checkpoint has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Parts {
    pub pooler: bool,
    /// `classifier` on the pooler output with this many classes (BERT).
    pub bert_classifier: Option<usize>,
    /// `classifier.dense` + `classifier.out_proj` with this many classes (RoBERTa).
    pub roberta_head: Option<usize>,
}

/// The whole network. Build it with [`BertNet::init`], then load weights into it.
#[derive(Module, Debug)]
pub struct BertNet {
    pub embeddings: Embeddings,
    pub encoder: Encoder,
    pub pooler: Option<Pooler>,
    pub classifier: Option<Linear>,
    pub roberta_head: Option<RobertaHead>,
}

fn linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out).init(device)
}

impl BertNet {
    /// A network of the given shape (weights are placeholders until loaded).
    pub fn init(spec: &ModelSpec, parts: Parts, device: &Device) -> Self {
        let d = spec.hidden_size;
        let norm = || {
            LayerNormConfig::new(d)
                .with_epsilon(spec.layer_norm_eps)
                .init(device)
        };
        let embeddings = Embeddings {
            word_embeddings: EmbeddingConfig::new(spec.vocab_size, d).init(device),
            position_embeddings: EmbeddingConfig::new(spec.max_position_embeddings, d).init(device),
            token_type_embeddings: EmbeddingConfig::new(spec.type_vocab_size, d).init(device),
            LayerNorm: norm(),
        };
        let layer = (0..spec.num_layers)
            .map(|_| Layer {
                attention: Attention {
                    self_attn: SelfAttention {
                        query: linear(d, d, device),
                        key: linear(d, d, device),
                        value: linear(d, d, device),
                    },
                    output: DenseNorm {
                        dense: linear(d, d, device),
                        LayerNorm: norm(),
                    },
                },
                intermediate: Intermediate {
                    dense: linear(d, spec.intermediate_size, device),
                },
                output: DenseNorm {
                    dense: linear(spec.intermediate_size, d, device),
                    LayerNorm: norm(),
                },
            })
            .collect();
        BertNet {
            embeddings,
            encoder: Encoder { layer },
            pooler: parts.pooler.then(|| Pooler {
                dense: linear(d, d, device),
            }),
            classifier: parts.bert_classifier.map(|k| linear(d, k, device)),
            roberta_head: parts.roberta_head.map(|k| RobertaHead {
                dense: linear(d, d, device),
                out_proj: linear(d, k, device),
            }),
        }
    }

    /// Last hidden states `[B, L, D]` for token ids `[B, L]`, an attention mask `[B, L]` (1 =
    /// token, 0 = padding) and optional token type ids (default all 0). Position ids follow the
    /// architecture: `0..L` for BERT; for RoBERTa `cumsum(ids != pad)·(ids != pad) + pad`, as
    /// transformers' `create_position_ids_from_input_ids`.
    pub fn forward(
        &self,
        spec: &ModelSpec,
        input_ids: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        token_type_ids: Option<Tensor<2, Int>>,
    ) -> Tensor<3> {
        self.forward_with(spec, input_ids, attention_mask, token_type_ids, None)
    }

    /// [`BertNet::forward`] with training dropout where `dropout` is given (transformers'
    /// places: after the embeddings, on the attention probabilities, after each sublayer's
    /// dense output). Masks come from the device's random generator (`Device::seed`).
    pub fn forward_with(
        &self,
        spec: &ModelSpec,
        input_ids: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        token_type_ids: Option<Tensor<2, Int>>,
        dropout: Option<Dropout>,
    ) -> Tensor<3> {
        let [b, l] = input_ids.dims();
        let device = input_ids.device();
        let position_ids = match spec.arch {
            Arch::Bert => Tensor::<1, Int>::arange(0..l as i64, &device)
                .unsqueeze::<2>()
                .expand([b, l]),
            Arch::Roberta => {
                let pad = spec.pad_token_id as i64;
                let not_pad = input_ids.clone().not_equal_elem(pad).int();
                not_pad.clone().cumsum(1) * not_pad + pad
            }
        };
        let token_type_ids = token_type_ids.unwrap_or_else(|| Tensor::<2, Int>::zeros([b, l], &device));
        let e = &self.embeddings;
        let x = e.word_embeddings.forward(input_ids)
            + e.position_embeddings.forward(position_ids)
            + e.token_type_embeddings.forward(token_type_ids);
        let mut x = drop(e.LayerNorm.forward(x), dropout.map(|d| d.hidden));
        // Additive mask [B, 1, 1, L]: 0 on tokens, the most negative f32 on padding (as transformers).
        let bias = (attention_mask.float().neg() + 1.0)
            .mul_scalar(f32::MIN)
            .reshape([b, 1, 1, l]);
        for layer in &self.encoder.layer {
            x = layer.forward(x, bias.clone(), spec, dropout);
        }
        x
    }

    /// `tanh(pooler.dense(h_CLS))` for CLS states `[B, D]`.
    pub fn pool(&self, cls: Tensor<2>) -> Option<Tensor<2>> {
        self.pooler.as_ref().map(|p| p.dense.forward(cls).tanh())
    }

    /// `tanh(classifier.dense(h_CLS))` of a RoBERTa head.
    pub fn roberta_dense(&self, cls: Tensor<2>) -> Option<Tensor<2>> {
        self.roberta_head.as_ref().map(|h| h.dense.forward(cls).tanh())
    }

    /// Classification logits `[B, K]` from CLS states, when the checkpoint has a head.
    pub fn logits(&self, cls: Tensor<2>) -> Option<Tensor<2>> {
        self.logits_with(cls, None)
    }

    /// [`BertNet::logits`] with the head's training dropout where `dropout` is given (BERT: on
    /// the pooled output; RoBERTa: on `<s>` and after the head's dense layer).
    pub fn logits_with(&self, cls: Tensor<2>, dropout: Option<Dropout>) -> Option<Tensor<2>> {
        let p = dropout.map(|d| d.classifier);
        if let (Some(classifier), Some(pooled)) = (&self.classifier, self.pool(cls.clone())) {
            return Some(classifier.forward(drop(pooled, p)));
        }
        let head = self.roberta_head.as_ref()?;
        let hidden = head.dense.forward(drop(cls, p)).tanh();
        Some(head.out_proj.forward(drop(hidden, p)))
    }
}

/// Inverted dropout with probability `p` (none when `None` or 0): kept values are scaled by
/// 1 / (1 − p), as torch.nn.Dropout does in training.
fn drop<const D: usize>(x: Tensor<D>, p: Option<f64>) -> Tensor<D> {
    match p {
        Some(p) if p > 0.0 => {
            let keep = 1.0 - p;
            let mask = x.random_like(Distribution::Bernoulli(keep));
            x * mask * (1.0 / keep)
        }
        _ => x,
    }
}

impl Layer {
    fn forward(
        &self,
        x: Tensor<3>,
        bias: Tensor<4>,
        spec: &ModelSpec,
        dropout: Option<Dropout>,
    ) -> Tensor<3> {
        let (hidden, attention) = (dropout.map(|d| d.hidden), dropout.map(|d| d.attention));
        let [b, l, d] = x.dims();
        let h = spec.num_heads;
        let dh = d / h;
        let sa = &self.attention.self_attn;
        let split = |t: Tensor<3>| t.reshape([b, l, h, dh]).swap_dims(1, 2);
        let q = split(sa.query.forward(x.clone()));
        let k = split(sa.key.forward(x.clone()));
        let v = split(sa.value.forward(x.clone()));
        let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(1.0 / (dh as f64).sqrt()) + bias;
        let context = drop(softmax(scores, 3), attention)
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([b, l, d]);
        let out = &self.attention.output;
        let a = out
            .LayerNorm
            .forward(drop(out.dense.forward(context), hidden) + x);
        let i = self.intermediate.dense.forward(a.clone());
        let i = match spec.activation {
            Activation::Gelu => gelu(i),
            Activation::GeluTanh => gelu_approximate(i),
            Activation::Relu => relu(i),
        };
        self.output
            .LayerNorm
            .forward(drop(self.output.dense.forward(i), hidden) + a)
    }
}
