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
//! as the shipped encoder's were). They need AVX-512F and are skipped without it. The
//! last row ("8-bit in+out") quantizes the inputs to 8 bits as well, for AVX-512 VNNI's
//! 8-bit multiply-adds ([`PackedDense::quantize_inputs`]); it is skipped without VNNI.

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
    /// Our packed kernel; `four_bit`: over 4-bit-rounded weights, which it keeps as 8-bit;
    /// `int8_inputs`: with the inputs quantized to 8 bits too (AVX-512 VNNI).
    Packed { four_bit: bool, int8_inputs: bool },
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
    let kinds: [(&str, Kind); 6] = [
        ("f32 candle", Kind::Candle),
        ("Q8_0", Kind::Quantized(GgmlDType::Q8_0)),
        ("Q4_0", Kind::Quantized(GgmlDType::Q4_0)),
        (
            "f32 packed",
            Kind::Packed {
                four_bit: false,
                int8_inputs: false,
            },
        ),
        (
            "8-bit packed",
            Kind::Packed {
                four_bit: true,
                int8_inputs: false,
            },
        ),
        (
            "8-bit in+out",
            Kind::Packed {
                four_bit: true,
                int8_inputs: true,
            },
        ),
    ];
    println!(
        "e5 forward pass, matrix products only ({LAYERS} layers), CPU ms on one core, mean of {REPEATS}"
    );
    println!("{:>12} {:>12} {:>12}", "weights", "16 tokens", "128 tokens");
    let mut f32_ms = [0f64; 2];
    for (name, kind) in kinds {
        if matches!(kind, Kind::Packed { .. }) && !packed::avx512_available() {
            println!("{name:>12} skipped: this CPU has no AVX-512F");
            continue;
        }
        if matches!(
            kind,
            Kind::Packed {
                int8_inputs: true,
                ..
            }
        ) && !packed::vnni_available()
        {
            println!("{name:>12} skipped: this CPU has no AVX-512 VNNI");
            continue;
        }
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
                                let mut p =
                                    PackedDense::new(&values, &vec![0.0; out], inp, out).expect("packs");
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
        println!("{name:>12} {:>12} {:>12}", row[0], row[1]);
    }
    println!("(in brackets: candle's f32 time over this one's, measured in this run)");
}
