//! Experiment: do the opening logprob features separate refusals from answers?
//!
//! A local model stands in for a provider that reports logprobs: SmolLM2-135M-Instruct
//! (GGUF, through candle and the project's loading code, from the hf-hub cache that
//! `scripts/setup-models.sh` fills) reads each labeled record's prompt in its chat
//! template and then the record's own response, token by token (teacher forcing), and
//! reports for the first tokens the logprob of each token and its top 5 alternatives,
//! exactly the shape a provider sends. [`LogprobCheck`] turns them into the features the
//! guard's evidence carries (`entry_p`, `first_p`, `answer_mass`, `refusal_mass`), and the
//! ROC AUC of each for refusal vs answer is printed per source.
//!
//! Labels (datasets README mapping): do_not_answer action 0 = refusal, 1/2/3/5 = answer;
//! SpeechMap DENIAL = refusal, COMPLETE = answer. Balanced samples of
//! `RG_SIGNAL_PER_CLASS` (default 60) records per class and source, taken in file order
//! every k-th record. Data is read from `../shared/datasets` (or `RG_DATASETS`).
//!
//! What it is not: the responses were written by other models (GPT-4, Claude, …), so
//! the logprobs are SmolLM2's view of them, not the answering model's own; a provider's
//! logprobs of its own answer would be sharper. Run:
//! `HF_HOME=.cache/hf cargo bench --bench logprob_signal`.
//!
//! Found 2026-12-01 (60 refusals and 60 answers per source, English; ~2 s a record on the
//! shared CPU): AUC entered-a-refusal-opener 0.708 / 0.658 (do_not_answer / SpeechMap),
//! entry_p 0.719 / 0.658, first_p 0.509 / 0.556, answer_mass 0.509 / 0.524, refusal_mass
//! 0.445 / 0.430. The entry probability separates about as well as the opener itself and
//! adds almost nothing to it; the alternatives' masses carry no signal here. Whether the
//! provider's own logprobs do better (they describe its own choice, not a small model's
//! reading of another model's text) is open; this run cannot say.

use std::path::{Path, PathBuf};

use refusal_guard::classify::causal_lm::{CausalLm, Dequantize};
use refusal_guard::detect::logprobs::LogprobCheck;
use refusal_guard::hub;
use refusal_guard::wire::{TokenLogprob, TopLogprob};
use serde_json::Value;

const OPENING: usize = 8;
const TOP: usize = 5;

struct Sample {
    refusal: bool,
    prompt: String,
    response: String,
}

/// Maps a record's upstream label to refusal (`true`), answer (`false`) or neither.
type Class = fn(&str) -> Option<bool>;

/// A balanced sample of English records of one file.
fn samples(dir: &Path, file: &str, per_class: usize, class: Class) -> Vec<Sample> {
    let text = std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let rows: Vec<Sample> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["lang"] == "en")
        .filter_map(|v| {
            let refusal = class(v["label"].as_str()?)?;
            Some(Sample {
                refusal,
                prompt: v["prompt"].as_str()?.to_string(),
                response: v["response"].as_str()?.to_string(),
            })
        })
        .filter(|s| !s.response.trim().is_empty())
        .collect();
    let mut out = Vec::new();
    for want in [true, false] {
        let of: Vec<&Sample> = rows.iter().filter(|s| s.refusal == want).collect();
        let step = (of.len() / per_class).max(1);
        out.extend(of.iter().step_by(step).take(per_class).map(|s| Sample {
            refusal: s.refusal,
            prompt: s.prompt.clone(),
            response: s.response.clone(),
        }));
    }
    out
}

fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
    let log_z = max + sum.ln();
    logits.iter().map(|&x| x as f64 - log_z).collect()
}

/// The first tokens of `response` after `prompt`, as a provider would report them.
fn opening_tokens(lm: &mut CausalLm, prompt: &str, response: &str) -> Vec<TokenLogprob> {
    let chat = format!(
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"
    );
    let mut chat_ids = lm.encode(&chat).unwrap();
    chat_ids.truncate(480);
    let ids = lm.encode(response).unwrap();
    let mut logits = lm.prefill(&chat_ids).unwrap();
    let mut out = Vec::new();
    let mut prefix: Vec<u32> = Vec::new();
    let text_of = |lm: &CausalLm, prefix: &[u32], next: u32| -> String {
        let before = lm.decode(prefix).unwrap();
        let mut with = prefix.to_vec();
        with.push(next);
        let after = lm.decode(&with).unwrap();
        after.get(before.len()..).unwrap_or("").to_string()
    };
    for &id in ids.iter().take(OPENING) {
        let lp = log_softmax(&logits);
        let mut order: Vec<usize> = (0..lp.len()).collect();
        order.select_nth_unstable_by(TOP, |a, b| lp[*b].total_cmp(&lp[*a]));
        let mut top: Vec<usize> = order[..TOP].to_vec();
        top.sort_by(|a, b| lp[*b].total_cmp(&lp[*a]));
        out.push(TokenLogprob {
            token: text_of(lm, &prefix, id),
            logprob: lp[id as usize],
            top_logprobs: Some(
                top.iter()
                    .map(|&t| TopLogprob {
                        token: text_of(lm, &prefix, t as u32),
                        logprob: lp[t],
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        });
        prefix.push(id);
        logits = lm.feed(&[id]).unwrap();
    }
    out
}

/// ROC AUC of `score` for positives (refusals) over negatives (answers), ties half.
fn auc(points: &[(bool, f64)]) -> f64 {
    let pos: Vec<f64> = points.iter().filter(|p| p.0).map(|p| p.1).collect();
    let neg: Vec<f64> = points.iter().filter(|p| !p.0).map(|p| p.1).collect();
    let mut wins = 0.0;
    for p in &pos {
        for n in &neg {
            wins += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / (pos.len() * neg.len()).max(1) as f64
}

fn main() {
    if std::env::var_os("HF_HOME").is_none() {
        std::env::set_var("HF_HOME", concat!(env!("CARGO_MANIFEST_DIR"), "/.cache/hf"));
    }
    let dir = PathBuf::from(
        std::env::var("RG_DATASETS")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/datasets").into()),
    );
    let per_class: usize = std::env::var("RG_SIGNAL_PER_CLASS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let manifest = hub::find_manifest("smollm2-135m-instruct-q4_1").unwrap();
    let path = hub::resolve(&manifest, "SmolLM2-135M-Instruct.Q4_1.gguf")
        .unwrap_or_else(|e| panic!("{e}\n(run scripts/setup-models.sh first)"));
    let mut lm = CausalLm::load_gguf(&path, &candle_core::Device::Cpu, Dequantize::Auto).unwrap();
    let check = LogprobCheck::default();
    let sources: [(&str, &str, Class); 2] = [
        ("do_not_answer_en", "do_not_answer_en.jsonl", |l| match l {
            "0" => Some(true),
            "1" | "2" | "3" | "5" => Some(false),
            _ => None,
        }),
        (
            "speechmap (en)",
            "speechmap_criticism_nonqwen.jsonl",
            |l| match l {
                "DENIAL" => Some(true),
                "COMPLETE" => Some(false),
                _ => None,
            },
        ),
    ];
    println!(
        "feature AUC, refusal vs answer (SmolLM2-135M teacher-forced, first {OPENING} tokens, top {TOP})"
    );
    println!(
        "{:>18} {:>5} {:>5} {:>8} {:>8} {:>8} {:>12} {:>12}",
        "source", "ref", "ans", "entered", "entry_p", "first_p", "answer_mass", "refusal_mass"
    );
    let mut all: Vec<[(bool, f64); 5]> = Vec::new();
    for (name, file, class) in sources {
        let started = std::time::Instant::now();
        let mut rows = Vec::new();
        for s in samples(&dir, file, per_class, class) {
            let tokens = opening_tokens(&mut lm, &s.prompt, &s.response);
            let entry = check.refusal_entry(&tokens);
            let Some(o) = check.opening(&tokens) else {
                continue;
            };
            rows.push([
                (s.refusal, f64::from(u8::from(entry.is_some()))),
                (s.refusal, entry.map_or(0.0, |e| e.probability)),
                (s.refusal, o.first_probability),
                (s.refusal, o.answer_mass),
                (s.refusal, o.refusal_mass),
            ]);
        }
        print_row(name, &rows);
        eprintln!(
            "{name}: {} records in {:.1} s",
            rows.len(),
            started.elapsed().as_secs_f64()
        );
        all.extend(rows);
    }
    print_row("all", &all);
    println!("(AUC > 0.5: higher values mean refusal; < 0.5: higher values mean answer)");
}

fn print_row(name: &str, rows: &[[(bool, f64); 5]]) {
    let column = |i: usize| auc(&rows.iter().map(|r| r[i]).collect::<Vec<_>>());
    let refusals = rows.iter().filter(|r| r[0].0).count();
    println!(
        "{:>18} {:>5} {:>5} {:>8.3} {:>8.3} {:>8.3} {:>12.3} {:>12.3}",
        name,
        refusals,
        rows.len() - refusals,
        column(0),
        column(1),
        column(2),
        column(3),
        column(4)
    );
}
