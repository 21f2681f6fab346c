//! What the models would say about short answers, which the pipeline judges by the patterns
//! alone (`judge::MIN_MODEL_ANSWER_TOKENS`): for every answer of the given labelled files
//! shorter than the stream window, one line of JSON with its label, the n-gram model's and
//! the e5 tier's probability of the non-answer classes, and the default verdict.
//!
//! ```sh
//! HF_HOME=.cache/hf cargo run --release --example short_probe -- FILE.jsonl… > probe.jsonl
//! ```
//!
//! A measurement for planning: the answers it prints are read, so a file it is run on stops
//! being a held-out set.
use std::io::Write as _;

use refusal_guard::classify::tiers::build;
use refusal_guard::dataset::read_records;
use refusal_guard::detect::{Detectors, Observation};
use refusal_guard::judge::features;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ngram = build("ngram")?;
    let e5 = build("e5").ok();
    let detectors = Detectors::default();
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let mut out = std::io::stdout().lock();
    for path in std::env::args().skip(1) {
        for r in read_records(std::path::Path::new(&path))? {
            let text = r.response.trim();
            if text.is_empty() || features::window(text, features::PART_TOKENS).len() != text.len() {
                continue;
            }
            let non = |p: [f32; 4]| 1.0 - p[0];
            let n = rt
                .block_on(ngram.judge_response(Some(&r.prompt), text))?
                .map(|j| non(j.probs));
            let e = match &e5 {
                Some(c) => rt
                    .block_on(c.judge_response(Some(&r.prompt), text))?
                    .map(|j| non(j.probs)),
                None => None,
            };
            let v = rt.block_on(detectors.judge(&Observation::text(text)));
            let line = serde_json::json!({"file": path, "id": r.id, "lang": r.lang, "label": r.label,
                "ngram": n, "e5": e, "verdict": v.class().to_string(), "text": text});
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}
