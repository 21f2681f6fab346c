//! Regression floor on the shared datasets' held-out split.
//!
//! Runs the same evaluation as `refusal-guard eval --split holdout` and asserts the binary
//! refusal-vs-answer F1 stays above floors set a little under what was measured when the
//! patterns landed. Since the shipped models train on whole speechmap, its held-out split is
//! no longer out of sample: the speechmap floors guard against regressions only, and
//! Do-Not-Answer (never trained on) is the out-of-sample floor here; the leave-one-source-out
//! figures are in models/combiner/loso.md. Fails loudly when the datasets are missing: a
//! regression test that silently passes without its data protects nothing.

use std::path::PathBuf;

use refusal_guard::cli::eval::evaluate;
use refusal_guard::dataset::{datasets_dir, LabelMap, Split};
use refusal_guard::detect::Detectors;

fn data(name: &str) -> PathBuf {
    let dir = datasets_dir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join(name);
    assert!(path.is_file(), "dataset file {} is missing", path.display());
    path
}

#[test]
fn held_out_f1_stays_above_the_floor() {
    let files = [
        data("speechmap_criticism_nonqwen.jsonl"),
        data("do_not_answer_en.jsonl"),
        data("deccp_qwen2_7b.jsonl"),
    ];
    let (report, misses) = evaluate(
        &files,
        Split::Holdout,
        &LabelMap::default(),
        &Detectors::default(),
    )
    .expect("evaluation runs");
    assert!(
        misses.is_empty(),
        "held-out records are never collected for inspection"
    );
    let f1 = |lang: &str| report.pooled_by_lang[lang].binary.f1;
    let speechmap = |lang: &str| report.files[0].by_lang[lang].binary.f1;
    let floors = [
        ("en, all files", f1("en"), FLOOR_EN),
        ("zh, all files", f1("zh"), FLOOR_ZH),
        ("en, speechmap", speechmap("en"), FLOOR_SPEECHMAP_EN),
        ("dna", report.files[1].overall.binary.f1, FLOOR_DNA),
    ];
    for (name, got, floor) in floors {
        assert!(
            got >= floor,
            "{name}: held-out F1 {got:.3} fell under the floor {floor:.3}"
        );
    }
    // deccp is prompt-level: a rate, not an F1; Qwen2 refused most of these prompts.
    let (hits, n) = report.files[2]
        .overall
        .prompt_level_rate
        .expect("deccp is prompt-level");
    assert!(
        n > 100 && hits as f64 / n as f64 >= FLOOR_DECCP_RATE,
        "deccp non-answer rate {hits}/{n}"
    );
}

// Floors: the held-out figures measured when the patterns landed, minus about 0.02
// (en all files 0.802, zh 0.802, speechmap en 0.714, do-not-answer 0.813, deccp rate 0.346).
const FLOOR_EN: f64 = 0.78;
const FLOOR_ZH: f64 = 0.78;
const FLOOR_SPEECHMAP_EN: f64 = 0.69;
const FLOOR_DNA: f64 = 0.79;
const FLOOR_DECCP_RATE: f64 = 0.32;
