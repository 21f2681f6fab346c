//! How the shipped prompt judgment reads a labeled set of requests, and where its
//! thresholds would fall on it.
//!
//! Reads JSON lines with `prompt`, `harmful` (true / false) and `lang` (the form of
//! tests/data/reroute-*.jsonl and models/data/prompts-*.jsonl) from the files named, asks
//! each prompt of the tiers' own prompt cascade (`judge::Models::prompt`, as the guard asks
//! it: the n-gram prompt head final when it reads harmful from
//! `judge::NGRAM_PROMPT_FINAL_FROM`, else the e5 tier), and prints the ROC AUC per language
//! and, for each threshold, how many harmful and benign requests read under it (what a
//! `benign_below` there would let the guard re-route, before the verdict on the refusal
//! itself has its say; a reading in a language the deciding tier never learned clears
//! nothing, and is counted apart). `--tier none` probes the embedded default's prompt head
//! alone (default: `e5`). With `RG_PROBE_ROWS=1` it also prints each row's id, language,
//! label, P(harmful) and the language the deciding tier never learned (`-` when none).
//!
//! `--benign FILE` reads the distinct requests of a labeled *response* file (the shared
//! datasets' form: `prompt`, `lang`, an answer label) as benign ones, each once: for a file
//! whose every request is lawful, such as speechmap's political criticism
//! (models/e5-heads/README.md, "Lawful political speech").
//!
//! ```sh
//! HF_HOME=.cache/hf cargo run --release --example probe_prompts -- tests/data/reroute-e2e3.jsonl
//! HF_HOME=.cache/hf cargo run --release --example probe_prompts -- \
//!     --benign ../shared/datasets/speechmap_criticism_nonqwen.jsonl
//! ```
//!
//! A measurement, not a choice: the policy is chosen on the development set
//! (tests/harm_reroute.rs, `the_harm_policy_is_chosen_on_a_development_set`).
use std::collections::BTreeMap;

use refusal_guard::dataset::read_records;
use refusal_guard::judge::fit::harm_auc;
use refusal_guard::judge::Decision;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // (file, whether its distinct requests are all benign: `--benign FILE`)
    let mut files: Vec<(String, bool)> = Vec::new();
    let mut tier = "e5".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--tier" {
            tier = args.next().ok_or("--tier needs a tier (e5, none, …)")?;
        } else if arg == "--benign" {
            let file = args.next().ok_or("--benign needs a file")?;
            files.push((file, true));
        } else {
            files.push((arg, false));
        }
    }
    if files.is_empty() {
        return Err("name one or more JSON Lines files of labeled prompts".into());
    }
    let detectors = refusal_guard::classify::tiers::detectors_with(if tier == "none" {
        &[]
    } else {
        std::slice::from_ref(&tier)
    })?;
    let Decision::Learned(models) = detectors.decision() else {
        return Err(format!("the {tier} tier does not decide with the learned models").into());
    };
    let rows_wanted = std::env::var_os("RG_PROBE_ROWS").is_some();
    // (lang, harmful) -> readings, each with whether it may clear the request (not when the
    // deciding tier never learned the request's language)
    let mut by: BTreeMap<(String, bool), Vec<(f32, bool)>> = BTreeMap::new();
    for (file, all_benign) in &files {
        let records = read_records(std::path::Path::new(file))?;
        let mut seen = std::collections::HashSet::new();
        for r in records {
            let harmful = if *all_benign {
                Some(false)
            } else {
                r.request_harm()
            };
            let (Some(prompt), Some(harmful)) = (r.request(), harmful) else {
                continue;
            };
            if *all_benign && !seen.insert(prompt.to_string()) {
                continue;
            }
            let Some((judged, _)) = models.prompt.judge_prompt(prompt).await else {
                return Err(format!("{file}: {}: no tier judged the prompt", r.id).into());
            };
            let lang = r.lang_or_unknown().to_string();
            if rows_wanted {
                println!(
                    "{}\t{lang}\t{harmful}\t{:.4}\t{}",
                    r.id,
                    judged.harmful,
                    judged.unlearned_language.as_deref().unwrap_or("-")
                );
            }
            by.entry((lang, harmful))
                .or_default()
                .push((judged.harmful, judged.unlearned_language.is_none()));
        }
    }
    let langs: Vec<String> = {
        let mut l: Vec<String> = by.keys().map(|(l, _)| l.clone()).collect();
        l.dedup();
        l
    };
    let side = |lang: Option<&str>, harmful: bool| -> Vec<(f32, bool)> {
        by.iter()
            .filter(|((l, h), _)| *h == harmful && lang.is_none_or(|want| want == l))
            .flat_map(|(_, v)| v.iter().copied())
            .collect()
    };
    let readings = |v: Vec<(f32, bool)>| -> Vec<f32> { v.into_iter().map(|(p, _)| p).collect() };
    for lang in &langs {
        let auc = harm_auc(
            &readings(side(Some(lang), true)),
            &readings(side(Some(lang), false)),
        );
        println!(
            "{lang}: ROC AUC {}",
            auc.map_or("-".into(), |a| format!("{a:.3}"))
        );
    }
    let (harmful, benign) = (side(None, true), side(None, false));
    let stuck = |v: &[(f32, bool)]| v.iter().filter(|(_, clears)| !clears).count();
    println!(
        "\nread in a language the deciding tier never learned (never cleared, whatever the threshold): \
         harmful {}/{}, benign {}/{}",
        stuck(&harmful),
        harmful.len(),
        stuck(&benign),
        benign.len()
    );
    println!("\n| benign below | harmful read under it | benign read under it |");
    println!("|---|---|---|");
    for t in [0.01f32, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5] {
        let under = |v: &[(f32, bool)]| v.iter().filter(|&&(p, clears)| clears && p < t).count();
        println!(
            "| {t} | {}/{} | {}/{} |",
            under(&harmful),
            harmful.len(),
            under(&benign),
            benign.len()
        );
    }
    Ok(())
}
