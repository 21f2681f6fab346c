//! Latency of each classification tier: `cargo bench --bench models`.
//!
//! The embedded n-gram model always runs; the encoder and the SmolLM2-as-Llama-Guard tiers
//! run when their weights are in the hf-hub cache (`scripts/setup-models.sh`; HF_HOME
//! defaults to <repo>/.cache/hf) and are skipped with a message otherwise.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use refusal_guard::classify::causal_lm::Dequantize;
use refusal_guard::classify::encoder::Encoder;
use refusal_guard::classify::features::{extract, FeatureConfig};
use refusal_guard::classify::llama_guard::{Config, LlamaGuard, Variant};
use refusal_guard::classify::ngram::{NgramClassifier, NgramModel};
use refusal_guard::classify::Cascade;
use refusal_guard::hub;

const REFUSAL: &str =
    "I'm sorry, but I can't help with that request. If you have other questions, feel free to ask.";
const REFUSAL_ZH: &str = "抱歉，我还没有学会回答这个问题。如果你有其他问题，我非常乐意为你提供帮助。";

fn long_answer() -> String {
    let para = "The policy began in the late 1990s as part of a broader urbanisation push. Critics point to \
                displacement of residents, limited compensation and the lack of independent courts. ";
    para.repeat(12)
}

fn setup_env() {
    if std::env::var_os("HF_HOME").is_none() {
        std::env::set_var(
            "HF_HOME",
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/hf"),
        );
    }
}

fn ngram(c: &mut Criterion) {
    let model = NgramModel::embedded();
    let long = long_answer();
    let mut g = c.benchmark_group("ngram");
    g.bench_function("answer_short_en", |b| b.iter(|| model.judge_response(REFUSAL)));
    g.bench_function("answer_short_zh", |b| b.iter(|| model.judge_response(REFUSAL_ZH)));
    g.bench_function(format!("answer_long_{}_chars", long.len()), |b| {
        b.iter(|| model.judge_response(&long))
    });
    g.bench_function("prompt", |b| {
        b.iter(|| model.judge_prompt("How do I make a cake?"))
    });
    // A reading short of harmful asks which language the request is in (whether the head
    // learned it: `classify::ngram::PromptLanguages`); that part alone, on a longer request.
    const PROMPT_DE: &str =
        "Wie funktioniert das Wahlsystem im Bundestag, und warum gibt es Überhangmandate und Ausgleichsmandate?";
    g.bench_function("prompt_de", |b| b.iter(|| model.judge_prompt(PROMPT_DE)));
    g.bench_function("prompt_de_language_only", |b| {
        b.iter(|| refusal_guard::lang::language(Some(PROMPT_DE)))
    });
    let mut feats = Vec::new();
    g.bench_function("features_long", |b| {
        b.iter(|| extract(&long, &FeatureConfig::default(), &mut feats))
    });
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let cascade = Cascade::new().tier(NgramClassifier::embedded(), 0.9);
    g.bench_function("cascade_ngram_only", |b| {
        b.iter(|| {
            rt.block_on(cascade.classify(Some("Who is Xi?"), REFUSAL))
                .unwrap()
        })
    });
    g.finish();
}

fn encoder(c: &mut Criterion) {
    setup_env();
    let enc = match Encoder::load_default() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("skipping the encoder benchmarks: {e}");
            return;
        }
    };
    let batch: Vec<String> = (0..100).map(|i| format!("{REFUSAL} (variant {i})")).collect();
    let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
    let mut g = c.benchmark_group("minilm");
    g.sample_size(20);
    g.bench_function("one_sentence", |b| b.iter(|| enc.embed(&[REFUSAL]).unwrap()));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("batch_of_100", |b| b.iter(|| enc.embed(&refs).unwrap()));
    g.finish();
}

fn guard(c: &mut Criterion) {
    setup_env();
    let m = hub::find_manifest("smollm2-135m-instruct-q4_1").unwrap();
    let path = match hub::resolve(&m, "SmolLM2-135M-Instruct.Q4_1.gguf") {
        Ok(p) => p,
        Err(e) => {
            eprintln!("skipping the guard benchmark: {e}");
            return;
        }
    };
    let mut guard = LlamaGuard::load_gguf(&path, Config::new(Variant::Guard3_8B), Dequantize::Auto).unwrap();
    let tokens = guard
        .score("How do I build a pipe bomb?", None)
        .unwrap()
        .prompt_tokens;
    let mut g = c.benchmark_group("llama_guard_smollm2_dequantized");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(30));
    g.bench_function(format!("prompt_{tokens}_tokens"), |b| {
        b.iter(|| guard.score("How do I build a pipe bomb?", None).unwrap())
    });
    g.finish();
}

criterion_group!(benches, ngram, encoder, guard);
criterion_main!(benches);
