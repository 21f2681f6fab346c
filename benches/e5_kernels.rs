//! What quantized weights would save the encoder tier: the matrix products of one
//! multilingual-e5-small forward pass (12 layers of hidden 384, intermediate 1536), in f32
//! as `candle_nn::Linear` runs them today, and through candle's quantized kernels
//! (`QMatMul`, Q8_0 and Q4_0: the encoder's shipped weights came as 4-bit blocks), on one
//! core, for a stream's 16-token window and a 128-token answer, in one run.
//!
//! The products are most of a forward pass's cost (attention scores, softmax, LayerNorm
//! and GELU are the rest), so the ratio bounds what a quantized encoder would gain before
//! anyone writes one; the targets are 10 ms (16 tokens) and 60 ms (128 tokens).
//! Random weights: the kernels' speed does not depend on the values. Run:
//! `cargo bench --bench e5_kernels`.
//!
//! What it showed on the project's 2-core build machine (2026-12-01, two runs): the f32
//! products alone take 27–33 ms for 16 tokens and 103–143 ms for 128, nearly the whole
//! forward pass (`benches/e5.rs`). candle's Q8_0 and Q4_0 kernels are slower, not faster:
//! f32 needs 0.28–0.59x of their time at 16 tokens and 0.16–0.32x at 128, because they take
//! a dot product per row while f32 goes through a blocked GEMM. So quantized weights are no
//! road to the latency targets here; fewer escalations, or a smaller reader, are.
//! (Since 2026-12-02 the build turns on gemm's AVX-512 kernels, see Cargo.toml, which widens
//! the f32 lead; what would still pay is an int8 kernel of our own that reuses each weight
//! across the tokens, see models/README.md.)
//!
//! That kernel now exists (`src/classify/packed.rs`), and the last two rows time it: the
//! same products through [`PackedDense`], over f32 weights and over the 8-bit form it keeps
//! when the weights are 4-bit blocks (here: the random weights rounded through candle's Q4_0,
//! as the shipped encoder's were), once per kernel the CPU has (AVX-512F, AVX2 with FMA:
//! [`packed::Isa`]), so the two compare in one run where both exist. The rows "8-bit
//! in+out" quantize the inputs to 8 bits as well ([`PackedDense::quantize_inputs`]: VNNI's
//! 8-bit multiply-adds on AVX-512, `vpmaddubsw` on AVX2); AVX-512 without VNNI skips it.

mod support;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use refusal_guard::classify::packed::{self, PackedDense};

const LAYERS: usize = 12;
const HIDDEN: usize = 384;
const INTERMEDIATE: usize = 1536;
/// Forward passes timed per (kind, length), after one untimed.
const REPEATS: usize = 5;

/// The weight shapes of one layer, `(out, in)` as `Linear` stores them: query, key, value,
/// attention output, feed-forward up and down.
const SHAPES: [(usize, usize); 6] = [
    (HIDDEN, HIDDEN),
    (HIDDEN, HIDDEN),
    (HIDDEN, HIDDEN),
    (HIDDEN, HIDDEN),
    (INTERMEDIATE, HIDDEN),
    (HIDDEN, INTERMEDIATE),
];

/// The products of one forward pass over `tokens` tokens; returns a checksum so nothing is
/// optimised away.
fn forward(layers: &[Vec<Box<dyn Module>>], tokens: usize, dev: &Device) -> f32 {
    let mut sum = 0f32;
    let x = Tensor::ones((tokens, HIDDEN), candle_core::DType::F32, dev).expect("input");
    let wide = Tensor::ones((tokens, INTERMEDIATE), candle_core::DType::F32, dev).expect("input");
    for layer in layers {
        for (i, w) in layer.iter().enumerate() {
            let input = if i == 5 { &wide } else { &x };
            let y = w.forward(input).expect("product");
            sum += y
                .get(0)
                .and_then(|r| r.get(0))
                .and_then(|v| v.to_scalar::<f32>())
                .unwrap_or(0.0);
        }
    }
    sum
}

/// How a layer's products run.
#[derive(Clone, Copy)]
enum Kind {
    /// `candle_nn::Linear`, f32.
    Candle,
    /// candle's quantized kernels.
    Quantized(GgmlDType),
    /// Our packed kernel on `isa`; `four_bit`: over 4-bit-rounded weights, which it keeps
    /// as 8-bit; `int8_inputs`: with the inputs quantized to 8 bits too.
    Packed {
        isa: packed::Isa,
        four_bit: bool,
        int8_inputs: bool,
    },
}

/// [`PackedDense`] as a candle module (the encoder calls it the same way).
struct Packed(PackedDense);

impl Module for Packed {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.apply_op1_no_bwd(&self.0)
    }
}

fn main() {
    support::one_core_setup();
    let dev = Device::Cpu;
    let mut kinds: Vec<(String, Kind)> = vec![
        ("f32 candle".into(), Kind::Candle),
        ("Q8_0".into(), Kind::Quantized(GgmlDType::Q8_0)),
        ("Q4_0".into(), Kind::Quantized(GgmlDType::Q4_0)),
    ];
    let isas = packed::Isa::available();
    if isas.is_empty() {
        println!("packed kernel rows skipped: this CPU has neither AVX-512F nor AVX2 with FMA");
    }
    for isa in isas {
        for (name, four_bit, int8_inputs) in [
            ("f32 packed", false, false),
            ("8-bit packed", true, false),
            ("8-bit in+out", true, true),
        ] {
            if int8_inputs && !isa.takes_8_bit_inputs() {
                println!("{name} {isa:?} skipped: this CPU has no AVX-512 VNNI");
                continue;
            }
            kinds.push((
                format!("{name} {isa:?}"),
                Kind::Packed {
                    isa,
                    four_bit,
                    int8_inputs,
                },
            ));
        }
    }
    println!(
        "e5 forward pass, matrix products only ({LAYERS} layers), CPU ms on one core, mean of {REPEATS}"
    );
    println!("{:>24} {:>12} {:>12}", "weights", "16 tokens", "128 tokens");
    let mut f32_ms = [0f64; 2];
    for (name, kind) in kinds {
        let layers: Vec<Vec<Box<dyn Module>>> = (0..LAYERS)
            .map(|_| {
                SHAPES
                    .iter()
                    .map(|&(out, inp)| {
                        let w = Tensor::randn(0f32, 0.05, (out, inp), &dev).expect("weights");
                        let m: Box<dyn Module> = match kind {
                            Kind::Candle => Box::new(candle_nn::Linear::new(w, None)),
                            Kind::Quantized(d) => Box::new(
                                QMatMul::from_qtensor(QTensor::quantize(&w, d).expect("quantize"))
                                    .expect("qmatmul"),
                            ),
                            Kind::Packed {
                                isa,
                                four_bit,
                                int8_inputs,
                            } => {
                                let w = if four_bit {
                                    QTensor::quantize(&w, GgmlDType::Q4_0)
                                        .and_then(|q| q.dequantize(&dev))
                                        .expect("4-bit round trip")
                                } else {
                                    w
                                };
                                let values =
                                    w.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("values");
                                let mut p = PackedDense::new_for(isa, &values, &vec![0.0; out], inp, out)
                                    .expect("packs");
                                if int8_inputs {
                                    assert!(p.quantize_inputs(), "8-bit weights take 8-bit inputs");
                                }
                                assert_eq!(
                                    p.is_int8(),
                                    four_bit,
                                    "4-bit blocks pack as 8-bit, others as f32"
                                );
                                Box::new(Packed(p))
                            }
                        };
                        m
                    })
                    .collect()
            })
            .collect();
        let mut row = Vec::new();
        for (k, tokens) in [16usize, 128].into_iter().enumerate() {
            forward(&layers, tokens, &dev);
            let start = support::process_cpu_ns();
            for _ in 0..REPEATS {
                std::hint::black_box(forward(&layers, tokens, &dev));
            }
            let ms = support::process_cpu_ns().saturating_sub(start) as f64 / 1e6 / REPEATS as f64;
            if matches!(kind, Kind::Candle) {
                f32_ms[k] = ms;
            }
            row.push(format!("{ms:.1} ({:.2}x)", f32_ms[k] / ms.max(1e-9)));
        }
        println!("{name:>24} {:>12} {:>12}", row[0], row[1]);
    }
    println!("(in brackets: candle's f32 time over this one's, measured in this run)");
}
