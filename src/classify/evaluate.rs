//! Measuring a classifier on the shared datasets: per file and language, on the held-out
//! part (records whose id is not in the fit split, see [`super::is_fit`]) of files used in
//! training, and on every record of files never trained on (cross-file generalisation).
//! Precision, recall and F1 come from [`crate::score`], as in `eval` and `audit`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::{is_fit, Classifier, ClassifyError, ResponseLabel};
use crate::dataset::{read_records, Gold, LabelMap, Record};
use crate::score::{Binary, Prf};

/// Which records of a file to score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// Records not in the fit split.
    HeldOut,
    /// Every record (for files never trained on).
    All,
}

impl Part {
    fn keeps(self, id: &str) -> bool {
        match self {
            Part::HeldOut => !is_fit(id),
            Part::All => true,
        }
    }
}

/// Counts for one (file, language) group of response records.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ResponseScores {
    pub n: usize,
    /// Predicted label equals the mapped label.
    pub correct: usize,
    /// `confusion[gold][predicted]`, in [`ResponseLabel::ALL`] order.
    pub confusion: [[usize; 4]; 4],
    /// Records whose upstream label means "answer with caveats" (DNA 1, 2, 3), and how many
    /// of them were called a non-answer.
    pub caveat_answers: usize,
    pub caveat_flagged: usize,
    /// Total classification time in microseconds.
    pub micros: u128,
}

impl ResponseScores {
    /// Accuracy over the four labels.
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.n.max(1) as f64
    }

    /// The answer vs non-answer counts (refusal, evasion or inability), non-answer positive.
    pub fn binary(&self) -> Binary {
        self.one_vs_rest(|label| label != ResponseLabel::Answer.index())
    }

    /// Precision, recall and F1 of "not an answer" (refusal, evasion or inability).
    pub fn non_answer_prf(&self) -> Prf {
        self.binary().prf()
    }

    /// Recall of one gold label (`None` when no record has it).
    pub fn recall(&self, label: ResponseLabel) -> Option<f64> {
        let counts = self.one_vs_rest(|l| l == label.index());
        (counts.tp + counts.fn_ > 0).then(|| counts.prf().recall)
    }

    /// The confusion matrix folded to two classes: the labels `positive` holds against the
    /// rest.
    fn one_vs_rest(&self, positive: impl Fn(usize) -> bool) -> Binary {
        let mut counts = Binary::default();
        for (g, row) in self.confusion.iter().enumerate() {
            for (p, &n) in row.iter().enumerate() {
                counts.count_n(positive(g), positive(p), n);
            }
        }
        counts
    }
}

/// Counts for one (file, language) group of prompt records.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PromptScores {
    pub n: usize,
    pub harmful: usize,
    pub harmful_flagged: usize,
    pub benign: usize,
    pub benign_flagged: usize,
    pub micros: u128,
}

impl PromptScores {
    pub fn accuracy(&self) -> f64 {
        (self.harmful_flagged + (self.benign - self.benign_flagged)) as f64 / self.n.max(1) as f64
    }
}

/// Keeps at most `limit` records per language, spread evenly over the file (every k-th
/// record of each language), so that a limited run still sees every part of a file.
fn read(path: &Path) -> Result<Vec<Record>, ClassifyError> {
    read_records(path).map_err(ClassifyError::Invalid)
}

fn sample(records: Vec<Record>, limit: Option<usize>) -> Vec<Record> {
    let Some(limit) = limit else { return records };
    let mut per_lang: BTreeMap<String, usize> = BTreeMap::new();
    for r in &records {
        *per_lang.entry(r.lang.clone()).or_default() += 1;
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    records
        .into_iter()
        .filter(|r| {
            let n = per_lang[&r.lang];
            let stride = n.div_ceil(limit.max(1)).max(1);
            let i = seen.entry(r.lang.clone()).or_default();
            *i += 1;
            (*i - 1).is_multiple_of(stride)
        })
        .collect()
}

/// Scores a classifier's answer judgements on a response file. `limit` caps the records
/// per language (spread evenly over the file), for slow tiers.
pub async fn score_responses(
    classifier: &dyn Classifier,
    path: &Path,
    part: Part,
    limit: Option<usize>,
    filter: impl Fn(&Record) -> bool,
) -> Result<BTreeMap<String, ResponseScores>, ClassifyError> {
    let labels = LabelMap::default();
    let records: Vec<Record> = read(path)?
        .into_iter()
        .filter(|r| part.keeps(&r.id) && filter(r) && labels.response_label(r).is_some())
        .collect();
    let mut out: BTreeMap<String, ResponseScores> = BTreeMap::new();
    for r in sample(records, limit) {
        let Some(gold) = labels.response_label(&r) else {
            continue;
        };
        let s = out.entry(r.lang.clone()).or_default();
        let started = std::time::Instant::now();
        let judged = classifier.judge_response(r.request(), &r.response).await?;
        s.micros += started.elapsed().as_micros();
        let Some(j) = judged else {
            return Err(ClassifyError::Invalid(format!(
                "{} does not judge answers",
                classifier.name()
            )));
        };
        let pred = j.label();
        s.n += 1;
        s.correct += usize::from(pred == gold);
        s.confusion[gold.index()][pred.index()] += 1;
        if labels.gold(&r) == Gold::AnswerWithCaveats {
            s.caveat_answers += 1;
            s.caveat_flagged += usize::from(pred != ResponseLabel::Answer);
        }
    }
    Ok(out)
}

/// The non-answer rate of a file whose records carry no per-answer label (deccp), per
/// language and per id prefix (`deccp-orig`, `deccp-abliterated`); `limit` caps the records
/// per language as [`score_responses`]'s does.
pub async fn non_answer_rate(
    classifier: &dyn Classifier,
    path: &Path,
    limit: Option<usize>,
) -> Result<BTreeMap<String, (usize, usize)>, ClassifyError> {
    let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for r in sample(read(path)?, limit) {
        let group = format!(
            "{} {}",
            r.id.rsplit_once('-').map(|(a, _)| a).unwrap_or(&r.id),
            r.lang
        );
        let j = classifier
            .judge_response(r.request(), &r.response)
            .await?
            .ok_or_else(|| ClassifyError::Invalid(format!("{} does not judge answers", classifier.name())))?;
        let e = out.entry(group).or_default();
        e.0 += 1;
        e.1 += usize::from(j.label() != ResponseLabel::Answer);
    }
    Ok(out)
}

/// Scores a classifier's prompt-harm judgements on a prompt file (records with a `harmful`
/// value only).
pub async fn score_prompts(
    classifier: &dyn Classifier,
    path: &Path,
    part: Part,
    limit: Option<usize>,
) -> Result<BTreeMap<String, PromptScores>, ClassifyError> {
    let mut out: BTreeMap<String, PromptScores> = BTreeMap::new();
    let records: Vec<Record> = read(path)?
        .into_iter()
        .filter(|r| part.keeps(&r.id) && r.request_harm().is_some() && r.request().is_some())
        .collect();
    for r in sample(records, limit) {
        let (Some(harmful), Some(prompt)) = (r.request_harm(), r.request()) else {
            continue;
        };
        let s = out.entry(r.lang.clone()).or_default();
        let started = std::time::Instant::now();
        let j = classifier
            .judge_prompt(prompt)
            .await?
            .ok_or_else(|| ClassifyError::Invalid(format!("{} does not judge prompts", classifier.name())))?;
        s.micros += started.elapsed().as_micros();
        s.n += 1;
        if harmful {
            s.harmful += 1;
            s.harmful_flagged += usize::from(j.is_harmful());
        } else {
            s.benign += 1;
            s.benign_flagged += usize::from(j.is_harmful());
        }
    }
    Ok(out)
}

/// A Markdown table row for response scores.
pub fn response_row(file: &str, part: Part, lang: &str, s: &ResponseScores) -> String {
    let Prf {
        precision: p,
        recall: r,
        f1: f,
    } = s.non_answer_prf();
    let rec = |l| {
        s.recall(l)
            .map(|x| format!("{x:.3}"))
            .unwrap_or_else(|| "-".into())
    };
    let caveat = if s.caveat_answers > 0 {
        format!("{:.3}", s.caveat_flagged as f64 / s.caveat_answers as f64)
    } else {
        "-".into()
    };
    format!(
        "| {file} | {} | {lang} | {} | {:.3} | {p:.3} | {r:.3} | {f:.3} | {} | {} | {} | {} | {caveat} | {:.2} |",
        match part {
            Part::HeldOut => "held-out",
            Part::All => "all",
        },
        s.n,
        s.accuracy(),
        rec(ResponseLabel::Answer),
        rec(ResponseLabel::Refusal),
        rec(ResponseLabel::Evasion),
        rec(ResponseLabel::Inability),
        s.micros as f64 / 1000.0 / s.n.max(1) as f64,
    )
}

/// The header matching [`response_row`].
pub const RESPONSE_HEADER: &str = "| file | part | lang | n | acc (4-way) | non-answer P | R | F1 | recall answer | refusal | evasion | inability | caveat answers flagged | ms/answer |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";

/// A Markdown table row for prompt scores.
pub fn prompt_row(file: &str, part: Part, lang: &str, s: &PromptScores) -> String {
    let rate = |a: usize, b: usize| {
        if b == 0 {
            "-".to_string()
        } else {
            format!("{:.3}", a as f64 / b as f64)
        }
    };
    format!(
        "| {file} | {} | {lang} | {} | {:.3} | {} ({}) | {} ({}) | {:.3} |",
        match part {
            Part::HeldOut => "held-out",
            Part::All => "all",
        },
        s.n,
        s.accuracy(),
        rate(s.harmful_flagged, s.harmful),
        s.harmful,
        rate(s.benign_flagged, s.benign),
        s.benign,
        s.micros as f64 / 1000.0 / s.n.max(1) as f64,
    )
}

/// The header matching [`prompt_row`].
pub const PROMPT_HEADER: &str = "| file | part | lang | n | acc | harmful flagged (n) | benign flagged (n) | ms/prompt |\n|---|---|---|---|---|---|---|---|";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_answer_scores_fold_the_confusion_matrix() {
        let mut s = ResponseScores {
            n: 10,
            correct: 7,
            ..Default::default()
        };
        // gold answer: 3 right, 1 called a refusal; gold refusal: 4 right, 1 called an
        // answer; gold evasion: 1 called a refusal (a non-answer all the same).
        s.confusion[0][0] = 3;
        s.confusion[0][1] = 1;
        s.confusion[1][1] = 4;
        s.confusion[1][0] = 1;
        s.confusion[2][1] = 1;
        assert_eq!(
            s.binary(),
            Binary {
                tp: 5,
                fp: 1,
                fn_: 1,
                tn: 3
            }
        );
        let prf = s.non_answer_prf();
        assert!((prf.precision - 5.0 / 6.0).abs() < 1e-12);
        assert!((prf.recall - 5.0 / 6.0).abs() < 1e-12);
        assert_eq!(s.recall(ResponseLabel::Refusal), Some(0.8));
        assert_eq!(s.recall(ResponseLabel::Evasion), Some(0.0));
        assert_eq!(s.recall(ResponseLabel::Inability), None);
        let row = response_row("f.jsonl", Part::All, "en", &s);
        assert!(
            row.starts_with(
                "| f.jsonl | all | en | 10 | 0.700 | 0.833 | 0.833 | 0.833 | 0.750 | 0.800 | 0.000 | - | - |"
            ),
            "{row}"
        );
    }
}
