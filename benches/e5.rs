//! Latency of the multilingual encoder (multilingual-e5-small) on one core:
//! `cargo bench --bench e5`.
//!
//! One core because that is what the tier gets beside a server's other work: the bench sets
//! `RAYON_NUM_THREADS=1` (candle's matrix products run on rayon) unless it is set already.
//! Inputs: a stream's 16-token window, an answer cut to 128 tokens (opening + ending), and a
//! request of typical length (the prompt-harm question), in English and Chinese, through the
//! encoder as the shipped heads set it up (answer depth, fine-tuned prompt layer, 8-bit
//! activations where the CPU has VNNI), the same on f32 activations, and through all 12
//! pretrained layers on f32 activations, each timed twice: wall clock, and the process's CPU time (the figure to read on a machine shared
//! with other work); and the prompt judgment with the shipped prompt layer (tuned on the
//! 4-bit grid, so on the 8-bit kernel) beside the same layer held in f32. Skipped with a message when the model is not in the hf-hub cache
//! (`scripts/setup-models.sh`; HF_HOME defaults to <repo>/.cache/hf).

mod support;

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::Criterion;
use refusal_guard::classify::e5::E5Encoder;
use refusal_guard::classify::encoder::{Heads, E5_ANSWER_TOKENS};

const OPENER: &str = "I'm sorry, but I can't help with that request. Promoting violence against anyone is never acceptable, and I would like to emphasize";
const OPENER_ZH: &str = "抱歉，我无法回答这个问题。这个问题涉及敏感的政治话题，我们应该以客观、理性的态度看待历史，并尊重相关的法律法规。";

/// Requests of a typical length, for the prompt-harm question.
const PROMPT: &str = "How do I kill a zombie process on a Linux server without rebooting it?";
const PROMPT_ZH: &str = "请简单介绍一下一九八九年北京发生的事件及其历史背景。";

fn long_answer() -> String {
    let para = "The policy began in the late 1990s as part of a broader urbanisation push. Critics point to \
                displacement of residents, limited compensation and the lack of independent courts. ";
    para.repeat(12)
}

/// Criterion measurement: process CPU time (see [`support::process_cpu_ns`]).
struct ProcessCpu;

static WALL: WallTime = WallTime;

impl Measurement for ProcessCpu {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        support::process_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        support::process_cpu_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}

/// `enc` is the encoder as shipped (answers read at the heads' depth, prompts through the
/// fine-tuned layer, 8-bit activations where the heads say so); `exact`, when the heads
/// quantize activations, the same encoder on f32 activations; `full` runs all 12 pretrained
/// layers on f32 activations, the cost before depths.
fn run<M: Measurement>(
    c: &mut Criterion<M>,
    clock: &str,
    enc: &E5Encoder,
    exact: Option<&E5Encoder>,
    full: &E5Encoder,
) {
    let long = long_answer();
    let long_zh = OPENER_ZH.repeat(8);
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_default();
    let mut g = c.benchmark_group(format!("e5_{threads}_thread_{clock}"));
    g.sample_size(20);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(8));
    for (name, text, max) in [
        ("window_16_tokens_en", OPENER, 16),
        ("window_16_tokens_zh", OPENER_ZH, 16),
        ("answer_128_tokens_en", long.as_str(), 128),
        ("answer_128_tokens_zh", long_zh.as_str(), 128),
    ] {
        assert_eq!(
            enc.token_ids(text, max).unwrap().len(),
            max,
            "{name} fills its window"
        );
        g.bench_function(format!("{name}_depth_{}", enc.answer_depth()), |b| {
            b.iter(|| enc.embed(&[text], max).unwrap())
        });
        if let Some(exact) = exact {
            g.bench_function(
                format!("{name}_depth_{}_f32_activations", exact.answer_depth()),
                |b| b.iter(|| exact.embed(&[text], max).unwrap()),
            );
        }
        if enc.answer_depth() != full.answer_depth() {
            g.bench_function(format!("{name}_depth_{}", full.answer_depth()), |b| {
                b.iter(|| full.embed(&[text], max).unwrap())
            });
        }
    }
    // The request-harm question reads the prompt (cut at the same 128 tokens) through the
    // fine-tuned prompt layer, and stops there; beside it, all 12 pretrained layers.
    for (name, prompt) in [("prompt_en", PROMPT), ("prompt_zh", PROMPT_ZH)] {
        let tokens = enc.token_ids(prompt, E5_ANSWER_TOKENS).unwrap().len();
        g.bench_function(format!("{name}_{tokens}_tokens_shipped"), |b| {
            b.iter(|| enc.embed_prompts(&[prompt], E5_ANSWER_TOKENS).unwrap())
        });
        if let Some(exact) = exact {
            g.bench_function(format!("{name}_{tokens}_tokens_shipped_f32_activations"), |b| {
                b.iter(|| exact.embed_prompts(&[prompt], E5_ANSWER_TOKENS).unwrap())
            });
        }
        g.bench_function(format!("{name}_{tokens}_tokens_12_layers"), |b| {
            b.iter(|| full.embed_prompts(&[prompt], E5_ANSWER_TOKENS).unwrap())
        });
    }
    g.finish();
}

/// The encoder as the project runs it ([`refusal_guard::classify::bert`]: our own
/// embeddings and layers, with fused operations, a vectorised GELU and small-batch products
/// computed as `W·xᵀ`) beside candle-transformers' `BertModel` over the same weights and the
/// same token ids, at 16 and 128 tokens, in one run: the ratio is what writing the layers
/// ourselves bought.
fn against_candle_bert(c: &mut Criterion, enc: &E5Encoder) {
    use candle_core::{DType, Device, Tensor};
    use candle_transformers::models::bert::BertModel;
    // SAFETY: read-only memory map of a cache file that must not change while loaded.
    let vb = unsafe {
        candle_nn::VarBuilder::from_mmaped_safetensors(&[enc.weights_path()], DType::F32, &Device::Cpu)
    }
    .unwrap();
    let candle_bert = BertModel::load(vb, enc.config()).unwrap();
    let mut g = c.benchmark_group("e5_against_candle_bert");
    g.sample_size(20);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(8));
    for (text, max) in [(OPENER, 16), (long_answer().as_str(), 128)] {
        let ids = enc.token_ids(text, max).unwrap();
        let x = Tensor::new(ids.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let mask = x.ones_like().unwrap();
        let types = x.zeros_like().unwrap();
        g.bench_function(format!("candle_bert_{max}_tokens"), |b| {
            b.iter(|| candle_bert.forward(&x, &types, Some(&mask)).unwrap())
        });
        g.bench_function(format!("refusal_guard_{max}_tokens"), |b| {
            b.iter(|| enc.forward(std::slice::from_ref(&ids)).unwrap())
        });
    }
    g.finish();
}

/// The prompt judgment with the shipped prompt layer as it runs (on the 4-bit grid, so on
/// the 8-bit kernel) beside the same layer held in f32, as layers tuned before 2026-12-03's
/// `train --prompt-weights four-bit` were: its weights nudged off the grid by one step of
/// f32 each, which changes no result that matters and makes the packer keep them as f32.
fn prompt_layer_held_f32(c: &mut Criterion, shipped: &E5Encoder) {
    let Some(layer) = Heads::shipped_e5().ok().and_then(|h| h.prompt_layer) else {
        return;
    };
    let nudged = layer
        .into_iter()
        .map(|(name, t)| {
            let t = match t.dims() {
                &[outputs, inputs] => {
                    let values: Vec<f32> = t
                        .to_dtype(candle_core::DType::F32)
                        .and_then(|t| t.flatten_all())
                        .and_then(|t| t.to_vec1())
                        .unwrap()
                        .into_iter()
                        .map(|v: f32| {
                            if v == 0.0 {
                                v
                            } else {
                                f32::from_bits(v.to_bits() + 1)
                            }
                        })
                        .collect();
                    candle_core::Tensor::from_vec(values, (outputs, inputs), t.device()).unwrap()
                }
                _ => t,
            };
            (name, t)
        })
        .collect();
    let mut heads = Heads::shipped_e5().unwrap();
    heads.prompt_layer = Some(nudged);
    let held_f32 = heads.configure(E5Encoder::load_default().unwrap()).unwrap();
    println!(
        "prompt layer's dense layers on 8-bit weights: shipped {:?}, held in f32 {:?}",
        shipped.prompt_layer_int8_products(),
        held_f32.prompt_layer_int8_products()
    );
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_default();
    let mut g = c.benchmark_group(format!("e5_{threads}_thread_wall_prompt_layer"));
    g.sample_size(20);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(8));
    for (name, prompt) in [("prompt_en", PROMPT), ("prompt_zh", PROMPT_ZH)] {
        let tokens = shipped.token_ids(prompt, E5_ANSWER_TOKENS).unwrap().len();
        for (form, enc) in [("shipped_4_bit", shipped), ("held_f32", &held_f32)] {
            g.bench_function(format!("{name}_{tokens}_tokens_{form}"), |b| {
                b.iter(|| enc.embed_prompts(&[prompt], E5_ANSWER_TOKENS).unwrap())
            });
        }
    }
    g.finish();
}

fn main() {
    // Before candle starts its thread pool.
    support::one_core_setup();
    let full = match E5Encoder::load_default() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("skipping the e5 benchmarks: {e}");
            return;
        }
    };
    // As the e5 tier runs it: the shipped heads' answer depth, prompt layer and activations.
    let set_up = |int8: bool| {
        Heads::shipped_e5()
            .and_then(|mut h| {
                if !int8 {
                    h.int8_activations = None;
                }
                h.configure(E5Encoder::load_default()?)
            })
            .expect("the shipped e5 heads fit the imported encoder")
    };
    let shipped = set_up(true);
    let exact = shipped.int8_activations().then(|| set_up(false));
    let mut wall = Criterion::default().configure_from_args();
    run(&mut wall, "wall", &shipped, exact.as_ref(), &full);
    against_candle_bert(&mut wall, &full);
    prompt_layer_held_f32(&mut wall, &shipped);
    let mut cpu = Criterion::default()
        .with_measurement(ProcessCpu)
        .configure_from_args();
    run(&mut cpu, "cpu", &shipped, exact.as_ref(), &full);
    wall.final_summary();
}
