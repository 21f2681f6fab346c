//! The top of the e5 encoder, as a part that can be trained: multilingual-e5-small's last
//! BERT layer(s) written with candle's differentiable operations, over the hidden states of
//! the layers below (the "trunk", candle's `BertModel` cut short).
//!
//! Why: a linear head over the frozen sentence vector cannot tell "how do I kill a Python
//! process" from "how do I kill my neighbour" well enough; mean pooling of the frozen top
//! layer keeps the topic and loses the intent (models/combiner/loso.md). Fine-tuning the
//! whole encoder needs a GPU; fine-tuning only its top layer does not: the trunk runs once
//! per training text, its states are kept, and each step runs one layer forward and back.
//! candle's own BERT layer cannot be trained (its fused layer norm and softmax have no
//! backward pass, and its layers are private), so this file writes the same layer with
//! operations that do. [`TopLayer::forward`] over the trunk's states equals the full
//! model's output (a test in tests/e5_real.rs holds them together).
//!
//! The tuned layer ships inside the e5 heads file (models/e5-heads/heads.safetensors,
//! tensors under `prompt_layer.`), beside the head that reads it: the pipeline runs the
//! trunk once for a prompt and the tuned layer on top ([`super::e5::E5Encoder::embed_prompts`]).

use candle_core::{Module, Tensor, D};
use candle_nn::{Linear, VarBuilder};
use candle_transformers::models::bert::Config;

/// One BERT encoder layer (post-layer-norm, GELU), trainable.
#[derive(Debug, Clone)]
pub struct TopLayer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
    heads: usize,
}

/// A layer norm written with plain tensor operations (candle's fused one has no backward).
#[derive(Debug, Clone)]
struct Norm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl Norm {
    fn load(vb: VarBuilder, dim: usize, eps: f64) -> candle_core::Result<Self> {
        Ok(Norm {
            weight: vb.get(dim, "weight")?,
            bias: vb.get(dim, "bias")?,
            eps,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        normed.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
    }
}

impl TopLayer {
    /// Loads layer `encoder.layer.{index}` of a BERT checkpoint from `vb` (a memory-mapped
    /// file to run it, or a `VarMap` to train it).
    pub fn load(vb: VarBuilder, cfg: &Config, index: usize) -> candle_core::Result<Self> {
        let vb = vb.pp(format!("encoder.layer.{index}"));
        let d = cfg.hidden_size;
        let linear = |vb: VarBuilder, i: usize, o: usize| candle_nn::linear(i, o, vb);
        Ok(TopLayer {
            query: linear(vb.pp("attention.self.query"), d, d)?,
            key: linear(vb.pp("attention.self.key"), d, d)?,
            value: linear(vb.pp("attention.self.value"), d, d)?,
            attention_out: linear(vb.pp("attention.output.dense"), d, d)?,
            attention_norm: Norm::load(vb.pp("attention.output.LayerNorm"), d, cfg.layer_norm_eps)?,
            intermediate: linear(vb.pp("intermediate.dense"), d, cfg.intermediate_size)?,
            output: linear(vb.pp("output.dense"), cfg.intermediate_size, d)?,
            output_norm: Norm::load(vb.pp("output.LayerNorm"), d, cfg.layer_norm_eps)?,
            heads: cfg.num_attention_heads,
        })
    }

    /// The layer over `x` (`[batch, seq, dim]`) with `mask` (`[batch, seq]`, 1 for a token,
    /// 0 for padding).
    pub fn forward(&self, x: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (b, s, d) = x.dims3()?;
        let dh = d / self.heads;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((b, s, self.heads, dh))?.transpose(1, 2)?.contiguous()
        };
        let q = split(self.query.forward(x)?)?;
        let k = split(self.key.forward(x)?)?;
        let v = split(self.value.forward(x)?)?;
        // Padding gets a large negative score, so it takes no weight after the softmax.
        let bias = ((mask.to_dtype(x.dtype())? - 1.0)? * 1e9)?.reshape((b, 1, 1, s))?;
        let scores = (q.matmul(&k.t()?)? / (dh as f64).sqrt())?.broadcast_add(&bias)?;
        let weights = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let context = weights.matmul(&v)?.transpose(1, 2)?.reshape((b, s, d))?;
        let attended = self
            .attention_norm
            .forward(&(self.attention_out.forward(&context)? + x)?)?;
        let inner = self.intermediate.forward(&attended)?.gelu_erf()?;
        self.output_norm
            .forward(&(self.output.forward(&inner)? + attended)?)
    }
}
