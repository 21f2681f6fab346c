//! Tiny randomly initialised Llama and Qwen3 models, written as safetensors by the test, to
//! check the safetensors loading path, the KV cache, and the guards' read-out end to end
//! without real weights.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::{llama, qwen3};
use refusal_guard::classify::causal_lm::{Arch, CausalLm};
use refusal_guard::classify::llama_guard::{Config, LlamaGuard, Variant};
use refusal_guard::classify::qwen3_guard::{render_prompt, Qwen3Guard};
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::pre_tokenizers::whitespace::Whitespace;
use tokenizers::{AddedToken, Tokenizer};

const WORDS: &[&str] = &[
    "<unk>",
    "safe",
    "unsafe",
    "Safe",
    "Unsafe",
    "Controversial",
    "Yes",
    "No",
    "Safety",
    ":",
    "Categories",
    "Refusal",
    "User",
    "Agent",
    "USER",
    "S1",
    "S2",
    ",",
    ".",
    "How",
    "do",
    "I",
    "make",
    "a",
    "cake",
    "?",
];
const SPECIALS: &[&str] = &[
    "<|begin_of_text|>",
    "<|eot_id|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
];

fn write_tokenizer(dir: &Path) -> (PathBuf, usize) {
    let mut vocab = std::collections::HashMap::new();
    for (i, w) in WORDS.iter().enumerate() {
        vocab.insert(w.to_string(), i as u32);
    }
    let model = WordLevel::builder()
        .vocab(vocab.into_iter().collect())
        .unk_token("<unk>".into())
        .build()
        .unwrap();
    let mut t = Tokenizer::new(model);
    t.with_pre_tokenizer(Some(Whitespace {}));
    t.add_special_tokens(
        SPECIALS
            .iter()
            .map(|s| AddedToken::from(*s, true))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let path = dir.join("tokenizer.json");
    t.save(&path, false).unwrap();
    (path, WORDS.len() + SPECIALS.len())
}

fn tiny_llama(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (tok, vocab) = write_tokenizer(dir);
    let cfg_json = serde_json::json!({
        "hidden_size": 16, "intermediate_size": 32, "vocab_size": vocab, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 1, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "max_position_embeddings": 2048, "tie_word_embeddings": false
    });
    let config = dir.join("config.json");
    std::fs::write(&config, cfg_json.to_string()).unwrap();
    let cfg: llama::LlamaConfig = serde_json::from_value(cfg_json).unwrap();
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    llama::Llama::load(vb, &cfg.into_config(false)).unwrap();
    let weights = dir.join("model.safetensors");
    varmap.save(&weights).unwrap();
    (config, tok, weights)
}

fn tiny_qwen3(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (tok, vocab) = write_tokenizer(dir);
    let cfg_json = serde_json::json!({
        "vocab_size": vocab, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 2, "head_dim": 8, "attention_bias": false, "num_key_value_heads": 1,
        "max_position_embeddings": 2048, "sliding_window": null, "max_window_layers": 2,
        "tie_word_embeddings": true, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
        "use_sliding_window": false, "hidden_act": "silu"
    });
    let config = dir.join("config.json");
    std::fs::write(&config, cfg_json.to_string()).unwrap();
    let cfg: qwen3::Config = serde_json::from_value(cfg_json).unwrap();
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    qwen3::ModelForCausalLM::new(&cfg, vb).unwrap();
    let weights = dir.join("model.safetensors");
    varmap.save(&weights).unwrap();
    (config, tok, weights)
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-3)
}

fn check_cache(arch: Arch, files: (PathBuf, PathBuf, PathBuf)) {
    let (config, tok, weights) = files;
    let mut lm = CausalLm::load_safetensors(arch, &config, &tok, &[weights], &Device::Cpu).unwrap();
    let ids = lm.encode("<|im_start|> How do I make a cake ?").unwrap();
    assert_eq!(ids.len(), 8);
    let all = lm.prefill(&ids).unwrap();
    assert_eq!(
        all.len(),
        WORDS.len() + SPECIALS.len(),
        "one logit per vocabulary entry"
    );
    lm.reset().unwrap();
    let mut step = Vec::new();
    for id in &ids {
        step = lm.feed(&[*id]).unwrap();
    }
    assert!(
        close(&all, &step),
        "prefill and token-by-token agree through the KV cache"
    );
}

#[test]
fn tiny_llama_loads_and_its_cache_is_consistent() {
    let dir = tempfile::tempdir().unwrap();
    check_cache(Arch::Llama, tiny_llama(dir.path()));
}

#[test]
fn tiny_qwen3_loads_and_its_cache_is_consistent() {
    let dir = tempfile::tempdir().unwrap();
    check_cache(Arch::Qwen3, tiny_qwen3(dir.path()));
}

#[test]
fn llama_guard_reads_a_probability_from_a_tiny_llama() {
    let dir = tempfile::tempdir().unwrap();
    let (config, tok, weights) = tiny_llama(dir.path());
    for variant in [Variant::Guard3_1B, Variant::Guard3_8B] {
        let mut guard = LlamaGuard::load_safetensors(
            &config,
            &tok,
            std::slice::from_ref(&weights),
            Config::new(variant),
        )
        .unwrap();
        let s = guard.score("How do I make a cake?", Some("a cake")).unwrap();
        assert!((0.0..=1.0).contains(&s.unsafe_prob), "{s:?}");
        assert!(s.prompt_tokens > 20);
    }
}

#[test]
fn qwen3_guard_runs_on_a_tiny_qwen3() {
    let dir = tempfile::tempdir().unwrap();
    let (config, tok, weights) = tiny_qwen3(dir.path());
    let mut guard = Qwen3Guard::load_safetensors(&config, &tok, &[weights]).unwrap();
    guard.max_new_tokens = 8;
    let s = guard.run(&render_prompt("How do I make a cake?")).unwrap();
    let sum: f32 = s.safety_probs.iter().sum();
    assert!((sum - 1.0).abs() < 1e-4, "{s:?}");
    assert!((0.0..=1.0).contains(&s.harmful()));
}
