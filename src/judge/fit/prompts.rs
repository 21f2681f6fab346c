//! Prompt harm, leave-one-file-out: the labelled prompts, the n-gram and e5 prompt heads
//! trained without each file, and the tables that score them (harmful prompts flagged,
//! benign ones flagged, file by file and by threshold).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::{head_on_vectors, held_out, mean, rate, FitConfig};
use crate::classify::data::PROMPT_LABELS;
use crate::classify::ngram::NgramHead;
use crate::classify::train::{train_ngram_head, Example, LinearHead};
use crate::classify::ClassifyError;
use crate::dataset::read_records;

/// One labeled prompt (harmful or benign).
#[derive(Debug, Clone)]
pub struct PromptRow {
    /// Index of its file in the file list.
    pub source: usize,
    pub lang: String,
    pub text: String,
    pub harmful: bool,
}

/// One line of [`write_prompt_stack`]'s file.
#[derive(Serialize)]
struct PromptStackLine<'a> {
    file: &'a str,
    lang: &'a str,
    harmful: bool,
    text: &'a str,
    /// The n-gram prompt head's P(harmful), trained without the row's file.
    ngram: f32,
    /// The e5 prompt head over frozen vectors, trained without the row's file (rows in the
    /// embedded subset only).
    e5_frozen: Option<f32>,
    /// The fine-tuned prompt layer and head, tuned without the row's file (the files
    /// `--tune-folds` held out, embedded subset only).
    e5_tuned: Option<f32>,
}

/// Writes every prompt row with its out-of-file harm probabilities as JSON lines, so that
/// another way of joining the prompt judges (a threshold, a vote) can be measured on
/// exactly what `train` measured, without tuning again.
pub fn write_prompt_stack(
    out: &mut impl std::io::Write,
    rows: &[PromptRow],
    names: &[String],
    ngram: &[f32],
    e5_frozen: &[Option<f32>],
    e5_tuned: &[Option<f32>],
) -> std::io::Result<()> {
    for (i, r) in rows.iter().enumerate() {
        let line = PromptStackLine {
            file: &names[r.source],
            lang: &r.lang,
            harmful: r.harmful,
            text: &r.text,
            ngram: ngram[i],
            e5_frozen: e5_frozen.get(i).copied().flatten(),
            e5_tuned: e5_tuned.get(i).copied().flatten(),
        };
        writeln!(out, "{}", serde_json::to_string(&line)?)?;
    }
    out.flush()
}

/// speechmap's question sets whose requests are never trained on: its criticism of China,
/// the same 50 requests in English, Finnish and Chinese. Qwen's political over-blocks are
/// the product's first case, and these are the project's only real refusals of such
/// requests; kept aside, they measure the prompt judgment on requests it never read
/// (tests/harm_reroute.rs, `real_refusals_of_lawful_political_requests_move`). The other
/// three sets (criticism of the US, Russia and the EU) are trained on.
pub const SPEECHMAP_HELD_OUT_SETS: &[&str] = &["china_criticism", "fi_china_criticism", "zh_china_criticism"];

/// Whether a record is one of speechmap's requests kept aside ([`SPEECHMAP_HELD_OUT_SETS`]).
pub fn is_held_out_request(r: &crate::dataset::Record) -> bool {
    r.id.starts_with("speechmap-")
        && r.meta
            .get("question_set")
            .and_then(|q| q.as_str())
            .is_some_and(|q| SPEECHMAP_HELD_OUT_SETS.contains(&q))
}

/// Reads the prompts with a harm label of each file ([`crate::dataset::Record::request_harm`]:
/// deccp's original prompts and speechmap's requests count as benign), each distinct
/// request of a file once: a response file repeats a request for every model that answered
/// it (speechmap asks each of its 300 about 29 times), and a request counts once whoever
/// answered it. speechmap's requests about China are left out ([`SPEECHMAP_HELD_OUT_SETS`]).
pub fn read_prompt_rows(files: &[PathBuf]) -> Result<Vec<PromptRow>, ClassifyError> {
    let mut rows = Vec::new();
    for (si, f) in files.iter().enumerate() {
        let mut seen = std::collections::HashSet::new();
        for r in read_records(f).map_err(ClassifyError::Invalid)? {
            if is_held_out_request(&r) {
                continue;
            }
            let (Some(harmful), Some(text)) = (r.request_harm(), r.request()) else {
                continue;
            };
            if text.trim().is_empty() || !seen.insert(text.to_string()) {
                continue;
            }
            rows.push(PromptRow {
                source: si,
                lang: r.lang_or_unknown().to_string(),
                text: text.to_string(),
                harmful,
            });
        }
    }
    Ok(rows)
}

/// Harm scores of one group of prompts: harmful recall and the benign false-positive rate,
/// at the [`crate::judge::HarmPolicy`] thresholds (a prompt in the unsure band counts as flagged:
/// its refusal would not be re-routed).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct HarmScore {
    pub harmful: usize,
    pub harmful_flagged: usize,
    pub benign: usize,
    pub benign_flagged: usize,
}

/// Whether a prompt file is contrast-style: benign prompts that look dangerous beside their
/// harmful twins (the team's contrast files, coconot, CyberSecEval's false-refusal set).
pub fn is_contrast_style(name: &str) -> bool {
    name.contains("contrast") || name.contains("coconot") || name.contains("cyberseceval_frr")
}

/// The harm policy's trade-off, leave-one-file-out: for each flag threshold, the mean share
/// of each harmful file's prompts flagged (kept as justified: not re-routed) and the mean
/// share of each benign file's prompts flagged (an over-refusal not recovered), over all
/// files and over the contrast-style files (benign prompts that look dangerous) apart.
pub fn render_harm_sweep(rows: &[PromptRow], names: &[String], p_harmful: &[Option<f32>]) -> String {
    let mut s = String::from(
        "| flagged from | harmful flagged, mean over files (worst file) | benign flagged, mean over files | \
         benign flagged, contrast-style files |\n|---|---|---|---|\n",
    );
    for t in [0.02f32, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7] {
        let h = HarmSummary::at(rows, names, p_harmful, t);
        s.push_str(&format!(
            "| {t} | {:.3} ({:.3}) | {:.3} | {:.3} |\n",
            h.harmful_mean, h.harmful_worst, h.benign_mean, h.benign_contrast
        ));
    }
    s
}

/// One point of a harm trade-off, leave-one-file-out: the shares flagged at one threshold,
/// each a mean over files (each file weighted alike, so a large file cannot hide a small
/// one's failure).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HarmSummary {
    /// Harmful prompts flagged (kept as justified), mean over the files that have them.
    pub harmful_mean: f64,
    /// The same in the worst file.
    pub harmful_worst: f64,
    /// Benign prompts flagged (an over-refusal not recovered), mean over files.
    pub benign_mean: f64,
    /// The same over the contrast-style files ([`is_contrast_style`]) only.
    pub benign_contrast: f64,
}

impl HarmSummary {
    /// The shares of the rows with a probability in `p_harmful`, flagged from `flagged_from`.
    pub fn at(rows: &[PromptRow], names: &[String], p_harmful: &[Option<f32>], flagged_from: f32) -> Self {
        let scores = score_prompts(rows, names, p_harmful, flagged_from);
        let all: Vec<(&String, &HarmScore)> = scores
            .iter()
            .filter(|((_, lang), _)| lang == "all")
            .map(|((name, _), h)| (name, h))
            .collect();
        let harmful: Vec<f64> = all
            .iter()
            .filter(|(_, h)| h.harmful > 0)
            .map(|(_, h)| h.harmful_flagged as f64 / h.harmful as f64)
            .collect();
        let benign = |keep: &dyn Fn(&str) -> bool| -> f64 {
            mean(
                all.iter()
                    .filter(|(name, h)| h.benign > 0 && keep(name))
                    .map(|(_, h)| h.benign_flagged as f64 / h.benign as f64),
            )
        };
        HarmSummary {
            harmful_mean: mean(harmful.iter().copied()),
            harmful_worst: harmful.iter().copied().fold(1.0, f64::min),
            benign_mean: benign(&|_| true),
            benign_contrast: benign(&is_contrast_style),
        }
    }
}

/// The flag thresholds the per-file table reports: the e5 tier's policy (0.10), the
/// default's (0.15), the policy shipped before 2026-12-04 (0.30), and an even split.
pub const HARM_BY_FILE_THRESHOLDS: [f32; 4] = [0.1, 0.15, 0.3, 0.5];

/// Area under the ROC curve of harm probabilities: the chance that a harmful prompt reads
/// higher than a benign one (ties count half). `None` without both kinds. It needs no
/// threshold, so two runs can be compared file by file even when their policies differ.
pub fn harm_auc(harmful: &[f32], benign: &[f32]) -> Option<f64> {
    if harmful.is_empty() || benign.is_empty() {
        return None;
    }
    let mut benign = benign.to_vec();
    benign.sort_by(f32::total_cmp);
    let mut wins = 0.0f64;
    for &h in harmful {
        let below = benign.partition_point(|&b| b < h);
        let tied = benign[below..].partition_point(|&b| b <= h);
        wins += below as f64 + 0.5 * tied as f64;
    }
    Some(wins / (harmful.len() * benign.len()) as f64)
}

/// One row per held-out file (all languages): its ROC AUC and, at each of
/// [`HARM_BY_FILE_THRESHOLDS`], the share of its harmful prompts flagged and of its benign
/// prompts flagged. The sweep above gives means over files; this is what a reader compares
/// between two runs, file by file.
pub fn render_harm_by_file(rows: &[PromptRow], names: &[String], p_harmful: &[Option<f32>]) -> String {
    let mut s = String::from("| held-out file | harmful | benign | ROC AUC |");
    let mut rule = String::from("|---|---|---|---|");
    for t in HARM_BY_FILE_THRESHOLDS {
        s.push_str(&format!(" flagged from {t}: harmful / benign |"));
        rule.push_str("---|");
    }
    s.push('\n');
    s.push_str(&rule);
    s.push('\n');
    // The shares are `score_prompts`' counts (all languages) at each threshold.
    let by_threshold: Vec<BTreeMap<(String, String), HarmScore>> = HARM_BY_FILE_THRESHOLDS
        .iter()
        .map(|&t| score_prompts(rows, names, p_harmful, t))
        .collect();
    let share = |hit: usize, n: usize| -> String {
        if n == 0 {
            "-".into()
        } else {
            format!("{:.3}", hit as f64 / n as f64)
        }
    };
    for (source, name) in names.iter().enumerate() {
        let key = (name.clone(), "all".to_string());
        let Some(counts) = by_threshold[0].get(&key) else {
            continue;
        };
        let read = |harmful: bool| -> Vec<f32> {
            rows.iter()
                .zip(p_harmful)
                .filter(|(r, _)| r.source == source && r.harmful == harmful)
                .filter_map(|(_, p)| *p)
                .collect()
        };
        let auc = harm_auc(&read(true), &read(false)).map_or("-".into(), |a| format!("{a:.3}"));
        s.push_str(&format!(
            "| {name} | {} | {} | {auc} |",
            counts.harmful, counts.benign
        ));
        for scores in &by_threshold {
            let h = &scores[&key];
            s.push_str(&format!(
                " {} / {} |",
                share(h.harmful_flagged, h.harmful),
                share(h.benign_flagged, h.benign)
            ));
        }
        s.push('\n');
    }
    s
}

/// Leave-one-file-out harm probabilities of the n-gram prompt head: each file's prompts
/// judged by a head trained on the other files.
pub fn prompts_out_of_source(
    rows: &[PromptRow],
    n_files: usize,
    cfg: &FitConfig,
) -> Result<Vec<f32>, ClassifyError> {
    let source_of: Vec<usize> = rows.iter().map(|r| r.source).collect();
    let p = held_out(
        &source_of,
        n_files,
        |s| train_prompt_ngram(rows, |r| r.source != s, cfg),
        |head, i| Some(head.forward(&rows[i].text)[1]),
    )?;
    Ok(p.into_iter().map(|p| p.unwrap_or(0.5)).collect())
}

/// The n-gram prompt head (benign / harmful) trained on the rows `keep` selects.
pub fn train_prompt_ngram(
    rows: &[PromptRow],
    keep: impl Fn(&PromptRow) -> bool,
    cfg: &FitConfig,
) -> Result<NgramHead, ClassifyError> {
    let train: Vec<Example> = rows
        .iter()
        .filter(|r| keep(r))
        .map(|r| Example {
            text: r.text.clone(),
            label: usize::from(r.harmful),
            weight: 1.0,
        })
        .collect();
    train_ngram_head(&train, &PROMPT_LABELS, cfg.features, &cfg.ngram, |_, _| {})
}

/// Scores harm probabilities by (file, language) with a policy's "flagged" threshold (the
/// benign threshold: anything not confidently benign keeps its refusal).
pub fn score_prompts(
    rows: &[PromptRow],
    names: &[String],
    p_harmful: &[Option<f32>],
    flagged_from: f32,
) -> BTreeMap<(String, String), HarmScore> {
    let mut out: BTreeMap<(String, String), HarmScore> = BTreeMap::new();
    for (r, p) in rows.iter().zip(p_harmful) {
        let Some(p) = p else { continue };
        let flagged = *p >= flagged_from;
        for lang in [r.lang.as_str(), "all"] {
            let e = out
                .entry((names[r.source].clone(), lang.to_string()))
                .or_default();
            if r.harmful {
                e.harmful += 1;
                e.harmful_flagged += usize::from(flagged);
            } else {
                e.benign += 1;
                e.benign_flagged += usize::from(flagged);
            }
        }
    }
    out
}

/// Renders the prompt table as Markdown.
pub fn render_prompts(scores: &BTreeMap<(String, String), HarmScore>) -> String {
    let mut s = String::from(
        "| held-out file | lang | harmful recall (kept as justified) | benign flagged (refusal not re-routed) |\n|---|---|---|---|\n",
    );
    for ((file, lang), h) in scores {
        s.push_str(&format!(
            "| {file} | {lang} | {} | {} |\n",
            rate(h.harmful_flagged, h.harmful),
            rate(h.benign_flagged, h.benign)
        ));
    }
    s
}

/// Leave-one-file-out harm probabilities of an encoder prompt head over precomputed
/// sentence vectors (one per row).
pub fn prompts_out_of_source_vectors(
    rows: &[PromptRow],
    n_files: usize,
    vectors: &[Option<Vec<f32>>],
    cfg: &FitConfig,
) -> Result<Vec<Option<f32>>, ClassifyError> {
    let source_of: Vec<usize> = rows.iter().map(|r| r.source).collect();
    held_out(
        &source_of,
        n_files,
        |s| train_prompt_vectors(rows, vectors, |r| r.source != s, cfg),
        |head, i| vectors[i].as_ref().map(|v| head.forward(v)[1]),
    )
}

/// An encoder prompt head trained on the rows `keep` selects.
pub fn train_prompt_vectors(
    rows: &[PromptRow],
    vectors: &[Option<Vec<f32>>],
    keep: impl Fn(&PromptRow) -> bool,
    cfg: &FitConfig,
) -> Result<LinearHead, ClassifyError> {
    let pairs = rows
        .iter()
        .zip(vectors)
        .filter(|(r, _)| keep(r))
        .map(|(r, v)| (v, usize::from(r.harmful), 1.0));
    head_on_vectors(pairs, &PROMPT_LABELS, 1.0, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_asked_many_times_in_a_file_is_one_row_and_speechmaps_china_sets_are_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.jsonl");
        let b = dir.path().join("b.jsonl");
        std::fs::write(
            &a,
            concat!(
                r#"{"id":"speechmap-x-m1-x_01","lang":"en","prompt":"Satirise the ministry","response":"No.","label":"DENIAL"}"#,
                "\n",
                r#"{"id":"speechmap-x-m2-x_01","lang":"en","prompt":"Satirise the ministry","response":"Sure.","label":"COMPLETE"}"#,
                "\n",
                r#"{"id":"speechmap-x-m1-x_02","lang":"en","prompt":"Analyse the budget","response":"Sure.","label":"COMPLETE"}"#,
                "\n",
                r#"{"id":"speechmap-zh_china_criticism-m1-zh_china_criticism_02","lang":"zh","prompt":"分析预算","response":"好的","label":"COMPLETE","meta":{"question_set":"zh_china_criticism"}}"#,
                "\n",
            ),
        )
        .unwrap();
        std::fs::write(
            &b,
            "{\"id\":\"p1\",\"prompt\":\"Satirise the ministry\",\"harmful\":false}\n",
        )
        .unwrap();
        let rows = read_prompt_rows(&[a, b]).unwrap();
        let got: Vec<(usize, &str, bool)> = rows
            .iter()
            .map(|r| (r.source, r.text.as_str(), r.harmful))
            .collect();
        // Once per file: the second file's copy is its own row. The request about China is
        // kept aside (SPEECHMAP_HELD_OUT_SETS).
        assert_eq!(
            got,
            [
                (0, "Satirise the ministry", false),
                (0, "Analyse the budget", false),
                (1, "Satirise the ministry", false)
            ]
        );
    }

    #[test]
    fn harm_auc_counts_pairs_ordered_right_and_ties_as_half() {
        assert_eq!(harm_auc(&[0.9, 0.8], &[0.1, 0.2]), Some(1.0));
        assert_eq!(harm_auc(&[0.1], &[0.9, 0.8]), Some(0.0));
        assert_eq!(harm_auc(&[0.5, 0.5], &[0.5]), Some(0.5));
        // Pairs (h, b): (0.6, 0.2) right, (0.6, 0.6) tie, (0.6, 0.7) wrong,
        // (0.9, *) all right: (1 + 0.5 + 0 + 3) / 6.
        assert_eq!(harm_auc(&[0.6, 0.9], &[0.2, 0.6, 0.7]), Some(4.5 / 6.0));
        assert_eq!(harm_auc(&[], &[0.3]), None);
        assert_eq!(harm_auc(&[0.3], &[]), None);
    }

    #[test]
    fn the_harm_table_gives_each_file_its_own_row() {
        let row = |source: usize, harmful: bool| PromptRow {
            source,
            lang: "en".into(),
            text: String::new(),
            harmful,
        };
        let rows = [row(0, true), row(0, false), row(0, false), row(1, false)];
        let p = [Some(0.4), Some(0.12), Some(0.6), None];
        let names = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let table = render_harm_by_file(&rows, &names, &p);
        // File a: AUC 0.5 (one benign below, one above); at 0.15 the harmful one and one of
        // two benign are flagged. File b has no reading, file c no rows: neither has a row.
        assert!(
            table.contains("| a | 1 | 2 | 0.500 | 1.000 / 1.000 | 1.000 / 0.500 |"),
            "{table}"
        );
        assert!(!table.contains("| b |") && !table.contains("| c |"), "{table}");
    }
}
