//! Would the embedded n-gram model gain from learning e5's readings of an operator's own
//! traffic (distillation)? A measurement for issue 11, run on a `train --stack-out` file
//! written with `--encoder-cap 1000000`, so that every row carries e5's out-of-source reading.
//!
//! For each source nobody on the team wrote (speechmap, gptfuzz, jade), its whole answers are
//! split in two by their place in the file: the odd half stands for logged traffic, the even
//! half is scored. Three n-gram answer heads are trained with `train`'s defaults:
//!
//! - `other sources`: every row of the other sources, gold labels (what `train` does);
//! - `+ e5's readings`: the same, plus the odd half's answers with e5's class probabilities as
//!   soft targets (each answer once per class, weighted by e5's probability of that class);
//!   e5 here is the head trained without the source, so no label of the source reaches it;
//! - `+ gold labels`: the same rows with their gold labels instead, the ceiling that labelling
//!   the traffic by hand would give.
//!
//! First, where a student could learn from e5 at all: every source's whole answers read by
//! the n-gram head and by e5's, each trained without the source (ROC AUC and F1 at 0.5).
//!
//! Each head's non-answer probability on the even half is scored by ROC AUC and by F1 at 0.5,
//! per language, beside the teacher's own and the n-gram reading `train` stacked (which the
//! first head must reproduce: a check that the probe trains as `train` does). The n-gram model alone, not the combiner: the question is whether the
//! student learns what the teacher knows.
//!
//! ```sh
//! cargo run --release --example distill_probe -- /tmp/U/stack.jsonl
//! ```
use std::collections::BTreeMap;
use std::io::BufRead as _;

use refusal_guard::classify::data::RESPONSE_LABELS;
use refusal_guard::classify::features::FeatureConfig;
use refusal_guard::classify::train::{train_ngram_head, Example, TrainConfig};
use refusal_guard::judge::fit::harm_auc;

/// One row of the stack file: what this probe reads of it.
struct StackRow {
    source: String,
    lang: String,
    window: bool,
    text: String,
    label: usize,
    /// e5's out-of-source class probabilities, where the row has them.
    teacher: Option<[f32; 4]>,
    /// The out-of-source n-gram head's probability of an answer, as `train` stacked it.
    stacked_answer: f32,
}

const OUTSIDE: [&str; 3] = ["speechmap", "gptfuzz", "jade"];

fn read(path: &str) -> Result<Vec<StackRow>, Box<dyn std::error::Error>> {
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let mut lines = std::io::BufReader::new(file).lines();
    let header: serde_json::Value = serde_json::from_str(&lines.next().ok_or("empty stack file")??)?;
    let names: Vec<&str> = header["feature_names"]
        .as_array()
        .ok_or(format!(
            "{path}: no feature_names: is it a `train --stack-out` file?"
        ))?
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let at = |name: &str| {
        names
            .iter()
            .position(|n| *n == name)
            .ok_or(format!("{path}: no feature {name}"))
    };
    let (ngram, encoder, present) = (at("ngram.answer")?, at("encoder.answer")?, at("encoder.present")?);
    let mut rows = Vec::new();
    for line in lines {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let r: serde_json::Value = serde_json::from_str(&line)?;
        let label = r["label"].as_str().unwrap_or_default();
        let Some(label) = RESPONSE_LABELS.iter().position(|l| *l == label) else {
            return Err(format!("{path}: unknown label {label:?}").into());
        };
        let teacher = r["features_with_encoder"].as_array().and_then(|x| {
            let f = |i: usize| x.get(i).and_then(|v| v.as_f64()).map(|v| v as f32);
            (f(present)? == 1.0).then(|| {
                let mut p = [0.0f32; 4];
                for (c, p) in p.iter_mut().enumerate() {
                    *p = f(encoder + c).unwrap_or(f32::NEG_INFINITY).exp();
                }
                p
            })
        });
        let stacked_answer = r["features"][ngram].as_f64().unwrap_or(0.0).exp() as f32;
        rows.push(StackRow {
            source: r["source"].as_str().unwrap_or_default().to_string(),
            lang: r["lang"].as_str().unwrap_or_default().to_string(),
            window: r["window"].as_bool().unwrap_or(false),
            text: r["text"].as_str().unwrap_or_default().to_string(),
            label,
            teacher,
            stacked_answer,
        });
    }
    Ok(rows)
}

/// ROC AUC / F1 at 0.5 of a non-answer probability, `answer` giving each row's P(answer).
fn score(rows: &[&StackRow], answer: impl Fn(&StackRow) -> f32) -> String {
    let (mut pos, mut neg) = (Vec::new(), Vec::new());
    for r in rows {
        let non_answer = 1.0 - answer(r);
        if r.label == 0 { &mut neg } else { &mut pos }.push(non_answer);
    }
    if pos.is_empty() || neg.is_empty() {
        return "-".into();
    }
    let tp = pos.iter().filter(|&&p| p >= 0.5).count() as f64;
    let fp = neg.iter().filter(|&&p| p >= 0.5).count() as f64;
    let f1 = 2.0 * tp / (tp + pos.len() as f64 + fp);
    // `harm_auc` is the crate's ROC AUC (named for its first use): the chance a positive
    // reads higher than a negative, ties half.
    let auc = harm_auc(&pos, &neg).unwrap_or(f64::NAN);
    format!("{auc:.3} / {f1:.3}")
}

/// The first table: every source's whole answers as `train` stacked them, read by the n-gram
/// head and by e5's head trained without the source (the team's files pooled per language).
/// Where e5 reads better is where a student could learn from it at all.
fn print_heads_alone(rows: &[StackRow]) {
    let mut groups: BTreeMap<(&str, &str), Vec<&StackRow>> = BTreeMap::new();
    for r in rows.iter().filter(|r| !r.window && r.teacher.is_some()) {
        let source = if r.source.starts_with("team") {
            "team"
        } else {
            r.source.as_str()
        };
        groups.entry((source, r.lang.as_str())).or_default().push(r);
    }
    println!("Each source read by heads trained without it (whole answers; ROC AUC / F1 at 0.5):\n");
    println!("| source | lang | answers | non-answers | n-gram head | e5 head |");
    println!("|---|---|---|---|---|---|");
    for ((source, lang), group) in groups {
        let non_answers = group.iter().filter(|r| r.label != 0).count();
        if group.len() < 50 || non_answers == 0 || non_answers == group.len() {
            continue;
        }
        println!(
            "| {source} | {lang} | {} | {non_answers} | {} | {} |",
            group.len(),
            score(&group, |r| r.stacked_answer),
            score(&group, |r| r.teacher.map_or(f32::NAN, |p| p[0])),
        );
    }
    println!("\nDistillation, each outside source's odd half as traffic, its even half scored:\n");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: distill_probe STACK.jsonl")?;
    let rows = read(&path)?;
    let cfg = TrainConfig::default();
    let train = |examples: &[Example]| {
        train_ngram_head(
            examples,
            &RESPONSE_LABELS,
            FeatureConfig::default(),
            &cfg,
            |_, _| {},
        )
    };
    print_heads_alone(&rows);
    println!(
        "| held-out source | lang | answers scored | e5 (the teacher) | n-gram as train stacked it | other sources | + e5's readings | + gold labels |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for source in OUTSIDE {
        let gold = |r: &StackRow| Example {
            text: r.text.clone(),
            label: r.label,
            weight: 1.0,
        };
        let others: Vec<Example> = rows.iter().filter(|r| r.source != source).map(gold).collect();
        let held: Vec<&StackRow> = rows.iter().filter(|r| r.source == source && !r.window).collect();
        let (traffic, scored): (Vec<_>, Vec<_>) = held.iter().enumerate().partition(|(i, _)| i % 2 == 1);
        let traffic: Vec<&StackRow> = traffic.into_iter().map(|(_, r)| *r).collect();
        let scored: Vec<&StackRow> = scored.into_iter().map(|(_, r)| *r).collect();
        if traffic.iter().any(|r| r.teacher.is_none()) {
            return Err(format!(
                "{path}: some of {source}'s answers have no e5 reading: train with --encoder-cap 1000000"
            )
            .into());
        }
        let mut soft = others.clone();
        for r in &traffic {
            for (c, &p) in r.teacher.iter().flatten().enumerate() {
                if p > 1e-4 {
                    soft.push(Example {
                        text: r.text.clone(),
                        label: c,
                        weight: p,
                    });
                }
            }
        }
        let mut labelled = others.clone();
        labelled.extend(traffic.iter().map(|r| gold(r)));
        let heads = [train(&others)?, train(&soft)?, train(&labelled)?];
        let mut by_lang: BTreeMap<&str, Vec<&StackRow>> = BTreeMap::new();
        for r in &scored {
            by_lang.entry(r.lang.as_str()).or_default().push(r);
        }
        for (lang, group) in by_lang.iter().filter(|(_, g)| g.len() >= 50) {
            let mut cells = vec![
                score(group, |r| r.teacher.map_or(f32::NAN, |p| p[0])),
                score(group, |r| r.stacked_answer),
            ];
            cells.extend(heads.iter().map(|h| score(group, |r| h.forward(&r.text)[0])));
            println!("| {source} | {lang} | {} | {} |", group.len(), cells.join(" | "));
        }
    }
    println!("\nEach cell: ROC AUC of the non-answer probability / F1 at 0.5.");
    Ok(())
}
