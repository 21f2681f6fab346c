//! Training the e5 tier's short-reply head ([`crate::classify::short_head`]): which rows
//! are short replies, the leave-one-source-out readings, and the threshold.
//!
//! The head acts only where the patterns read a short reply as an answer, so the threshold
//! is chosen on those rows: the lowest at which at most [`MAX_SHORT_FALSE_FLAGS`] of the
//! short answers the patterns let pass are read as non-answers out of source. A short
//! answer wrongly flagged is re-routed or released as a refusal, which costs more than a
//! short refusal let through (the provider's words still reach the user), hence a bound on
//! the answers flagged rather than a balance of the two errors.

use std::collections::BTreeMap;

use super::{rate, Row, Source};
use crate::classify::data::RESPONSE_LABELS;
use crate::classify::features::has_cjk;
use crate::classify::features::FeatureConfig;
use crate::classify::ngram::NgramHead;
pub use crate::classify::short_head::{AskedFrom, ShortThresholds};
use crate::classify::train::{train_linear_head, train_ngram_head, Example, LinearHead, TrainConfig};
use crate::classify::{ClassifyError, ResponseJudgement, ResponseLabel};
use crate::judge::features;

/// The most of the pattern-passed short answers that the head may read as non-answers, out
/// of source, at the threshold it ships with.
pub const MAX_SHORT_FALSE_FLAGS: f64 = 0.05;

/// The thresholds tried, from 0.30 to 0.999. The top is fine-grained because the n-gram
/// head, trained hard on little data, puts many readings past 0.99: at 0.99 its
/// out-of-source one-liners flagged 6.3% of answers, over the bound.
const THRESHOLDS: [f32; 19] = [
    0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95, 0.97, 0.98, 0.99,
    0.995, 0.999,
];

/// Full-batch steps and learning rate of the head (as the answer head's defaults).
const STEPS: usize = 300;
const LEARNING_RATE: f64 = 0.05;

/// Whether a whole answer is a short reply: no longer than
/// [`crate::judge::SHORT_REPLY_TOKENS`], the complete answers a short-reply head decides
/// where the patterns let them pass.
pub fn is_short(text: &str) -> bool {
    let t = text.trim();
    !t.is_empty() && features::is_few_sentences(t)
}

/// One short reply, as the heads are trained and scored on it.
#[derive(Debug, Clone)]
pub struct ShortRow {
    pub source: usize,
    pub lang: String,
    pub label: ResponseLabel,
    /// Whether the patterns read it as an answer (the rows the heads act on).
    pub passed: bool,
    pub text: String,
    /// Its e5 answer vector, when the run has the encoder.
    pub vector: Option<Vec<f32>>,
}

/// The short whole answers among `rows` (windows left out), by index, and the paragraph
/// replies of the sources `with_paragraphs` marks (`train` marks the team's files).
/// The outside sources' replies of that length are mostly gptfuzz's jailbreak transcripts,
/// whose labels say whether a jailbreak worked rather than whether the reply answered, and
/// with them the heads read one-line replies worse (the e5 head found 819 of 1,262
/// pattern-clean one-line non-answers out of source, against 896).
pub fn short_indices(rows: &[Row], with_paragraphs: impl Fn(usize) -> bool) -> Vec<usize> {
    (0..rows.len())
        .filter(|&i| {
            let r = &rows[i];
            !r.window && (is_short(&r.text) || (with_paragraphs(r.source) && features::is_paragraph(&r.text)))
        })
        .collect()
}

/// Hash buckets of the n-gram short-reply head: a quarter of the answer head's, since it
/// reads a line (and is compiled into the binary: 16,384 × 16 f16 values, 0.5 MB).
pub const NGRAM_BUCKETS: u32 = 1 << 14;

/// Passes and learning rate of the n-gram short-reply head. The answer head's 8 passes at
/// 0.2 leave a head this small in data (about 1,400 replies when this was chosen) near its prior: out of source it
/// reached no threshold with any non-answer found. Leave-one-source-out, pooled non-answers
/// found at the chosen threshold (answers flagged): 40 passes at 0.5, 80/368 (4.5%); 100 at
/// 0.5, 93 (5.8%); 40 at 1.0, 99 (5.2%); 200 at 0.5, 94 (5.2%); 100 at 1.0, 104 (5.2%),
/// the one kept.
const NGRAM_EPOCHS: usize = 100;
const NGRAM_LEARNING_RATE: f64 = 1.0;

/// A short-reply head being fitted: what it reads of a row, and how it is trained.
pub trait ShortReader: Sized {
    /// Trains on `rows` (balanced classes: short answers are the rare class).
    fn fit(rows: &[&ShortRow]) -> Result<Self, ClassifyError>;
    /// The probability of the non-answer classes together; `None` where the row lacks what
    /// the reader reads.
    fn non_answer(&self, row: &ShortRow) -> Option<f32>;
}

/// e5's short-reply head: a linear head over the answer vector.
impl ShortReader for LinearHead {
    fn fit(rows: &[&ShortRow]) -> Result<Self, ClassifyError> {
        let rows: Vec<&&ShortRow> = rows.iter().filter(|r| r.vector.is_some()).collect();
        let xs: Vec<Vec<f32>> = rows.iter().filter_map(|r| r.vector.clone()).collect();
        let ys: Vec<usize> = rows.iter().map(|r| r.label.index()).collect();
        train_linear_head(&xs, &ys, None, &RESPONSE_LABELS, STEPS, LEARNING_RATE, 1.0)
    }

    fn non_answer(&self, row: &ShortRow) -> Option<f32> {
        row.vector
            .as_ref()
            .map(|v| ResponseJudgement::from_labels(&self.labels, self.forward(v)).non_answer())
    }
}

/// The embedded default's short-reply head: an n-gram head of its own (the answer head's
/// recipe over [`NGRAM_BUCKETS`] buckets).
impl ShortReader for NgramHead {
    fn fit(rows: &[&ShortRow]) -> Result<Self, ClassifyError> {
        let examples: Vec<Example> = rows
            .iter()
            .map(|r| Example {
                text: r.text.clone(),
                label: r.label.index(),
                weight: 1.0,
            })
            .collect();
        let features = FeatureConfig {
            buckets: NGRAM_BUCKETS,
            ..FeatureConfig::default()
        };
        let cfg = TrainConfig {
            class_weight_power: 1.0,
            epochs: NGRAM_EPOCHS,
            learning_rate: NGRAM_LEARNING_RATE,
            ..TrainConfig::default()
        };
        train_ngram_head(&examples, &RESPONSE_LABELS, features, &cfg, |_, _| {})
    }

    fn non_answer(&self, row: &ShortRow) -> Option<f32> {
        Some(ResponseJudgement::from_labels(&self.config.labels, self.forward(&row.text)).non_answer())
    }
}

/// Each row's non-answer probability from a head of kind `R` trained without its source
/// (`None` for a row whose source is its only one: nothing to train on).
pub fn out_of_source<R: ShortReader>(
    rows: &[ShortRow],
    n_sources: usize,
) -> Result<Vec<Option<f32>>, ClassifyError> {
    let mut out = vec![None; rows.len()];
    for s in 0..n_sources {
        if !rows.iter().any(|r| r.source == s) {
            continue;
        }
        let train: Vec<&ShortRow> = rows.iter().filter(|r| r.source != s).collect();
        if train.is_empty() {
            continue;
        }
        let head = R::fit(&train)?;
        for (i, r) in rows.iter().enumerate().filter(|(_, r)| r.source == s) {
            out[i] = head.non_answer(r);
        }
    }
    Ok(out)
}

/// Counts on the pattern-passed rows at one threshold: non-answers found of all, answers
/// flagged of all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShortCounts {
    pub found: usize,
    pub non_answers: usize,
    pub flagged: usize,
    pub answers: usize,
}

impl std::ops::AddAssign for ShortCounts {
    fn add_assign(&mut self, other: Self) {
        self.found += other.found;
        self.non_answers += other.non_answers;
        self.flagged += other.flagged;
        self.answers += other.answers;
    }
}

impl ShortCounts {
    fn flagged_share(&self) -> f64 {
        self.flagged as f64 / self.answers.max(1) as f64
    }
}

/// The counts of the pattern-passed rows that `keep` selects, at threshold `t`.
pub fn counts(rows: &[ShortRow], p: &[Option<f32>], t: f32, keep: impl Fn(&ShortRow) -> bool) -> ShortCounts {
    let mut c = ShortCounts::default();
    for (r, p) in rows.iter().zip(p) {
        let Some(p) = p else { continue };
        if !r.passed || !keep(r) {
            continue;
        }
        let flagged = *p >= t;
        if r.label == ResponseLabel::Answer {
            c.answers += 1;
            c.flagged += usize::from(flagged);
        } else {
            c.non_answers += 1;
            c.found += usize::from(flagged);
        }
    }
    c
}

/// The lowest threshold at which the rows `keep` selects flag at most
/// [`MAX_SHORT_FALSE_FLAGS`] of their pattern-passed answers (the highest tried when none
/// does).
pub fn choose_threshold(rows: &[ShortRow], p: &[Option<f32>], keep: impl Fn(&ShortRow) -> bool) -> f32 {
    THRESHOLDS
        .iter()
        .copied()
        .find(|&t| counts(rows, p, t, &keep).flagged_share() <= MAX_SHORT_FALSE_FLAGS)
        .unwrap_or(THRESHOLDS[THRESHOLDS.len() - 1])
}

/// The thresholds of each range of short replies, chosen apart on the rows `keep` selects
/// ([`choose_threshold`]): a reply of one line or less and one of a few sentences read
/// differently (a few sentences hold more of the answer), so one bound on the answers
/// flagged is kept in each.
pub fn choose_thresholds(
    rows: &[ShortRow],
    p: &[Option<f32>],
    keep: impl Fn(&ShortRow) -> bool,
) -> ShortThresholds {
    ShortThresholds {
        one_line: choose_threshold(rows, p, |r| keep(r) && features::is_one_line(&r.text)),
        sentences: choose_threshold(rows, p, |r| {
            keep(r) && !features::is_one_line(&r.text) && is_short(&r.text)
        }),
    }
}

/// The counts of the rows `keep` selects, each read at its range's threshold (a paragraph
/// at the review's bar, [`crate::judge::SHORT_REPLY_VETO_BELOW`]).
pub fn counts_by_range(
    rows: &[ShortRow],
    p: &[Option<f32>],
    t: ShortThresholds,
    keep: impl Fn(&ShortRow) -> bool,
) -> ShortCounts {
    let one = counts(rows, p, t.one_line, |r| keep(r) && features::is_one_line(&r.text));
    let more = counts(rows, p, t.sentences, |r| {
        keep(r) && !features::is_one_line(&r.text) && is_short(&r.text)
    });
    let paragraphs = counts(rows, p, crate::judge::SHORT_REPLY_VETO_BELOW, |r| {
        keep(r) && !is_short(&r.text)
    });
    let mut all = one;
    all += more;
    all += paragraphs;
    all
}

/// The report: per held-out source and language, the pattern-passed short replies and what
/// the head trained without the source finds at the threshold chosen without it.
pub fn render(rows: &[ShortRow], p: &[Option<f32>], sources: &[Source], shipped: ShortThresholds) -> String {
    let mut s = String::new();
    s.push_str(
        "| held-out source | lang | short replies | the patterns let pass: non-answers / answers | threshold chosen without it | non-answers found | answers flagged |\n|---|---|---|---|---|---|---|\n",
    );
    let mut groups: BTreeMap<(usize, String), ()> = BTreeMap::new();
    for r in rows {
        groups.insert((r.source, r.lang.clone()), ());
        groups.insert((r.source, "all".into()), ());
    }
    let mut pooled = ShortCounts::default();
    for (src, lang) in groups.keys() {
        let t = choose_thresholds(rows, p, |r| r.source != *src);
        let of_lang = |r: &ShortRow| r.source == *src && (lang == "all" || &r.lang == lang);
        let n = rows.iter().filter(|r| of_lang(r)).count();
        let c = counts_by_range(rows, p, t, of_lang);
        if lang == "all" {
            pooled += c;
        }
        s.push_str(&format!(
            "| {} | {lang} | {n} | {} / {} | {t} | {} | {} |\n",
            sources[*src].name,
            c.non_answers,
            c.answers,
            rate(c.found, c.non_answers),
            rate(c.flagged, c.answers),
        ));
    }
    type InRange = fn(&ShortRow) -> bool;
    let ranges: [(&str, InRange); 3] = [
        ("one line or less", |r| features::is_one_line(&r.text)),
        ("a few sentences", |r| {
            !features::is_one_line(&r.text) && is_short(&r.text)
        }),
        ("a paragraph, at the review's bar", |r| !is_short(&r.text)),
    ];
    for (name, in_range) in ranges {
        let mut c = ShortCounts::default();
        for src in groups.keys().filter(|(_, l)| l == "all").map(|(s, _)| *s) {
            let t = choose_thresholds(rows, p, |r| r.source != src);
            c += counts_by_range(rows, p, t, |r| r.source == src && in_range(r));
        }
        let n = rows.iter().filter(|r| in_range(r)).count();
        if n == 0 {
            continue;
        }
        s.push_str(&format!(
            "| every source, pooled: {name} | all | {n} | {} / {} | (each its own) | {} | {} |\n",
            c.non_answers,
            c.answers,
            rate(c.found, c.non_answers),
            rate(c.flagged, c.answers),
        ));
    }
    s.push_str(&format!(
        "| every source, pooled | all | {} | {} / {} | (each its own) | {} | {} |\n\nThe shipped head is trained on every source; its thresholds, chosen on every source's out-of-source readings: {shipped}.\n",
        rows.len(),
        pooled.non_answers,
        pooled.answers,
        rate(pooled.found, pooled.non_answers),
        rate(pooled.flagged, pooled.answers),
    ));
    s
}

/// The most of the non-answers the escalation reader's head finds alone, out of source,
/// that the short-reply cascade may lose by not asking it (`classify::short_head::ShortHead::asked_from`).
/// A lost one is a short refusal released as an answer (the provider's own words still
/// reach the user); each answer the cascade clears saves an encoder pass. First set at 2%:
/// no value above 0 kept it (from 0.001 up, 35 of e5's 1,375 out-of-source finds were lost,
/// 2.5%), because the n-gram head, trained hard on little data, puts more than half of
/// the team's hard short answers (replies with refusal words in their ordinary sense) above
/// 0.001. At 5% (0.01: 63 lost, 4.6%) the cascade also flags fewer answers (79 of 1,982
/// against 100) and the e5 head is asked about 43% of those answers; on everyday answers,
/// which the n-gram head reads near 0, it is hardly asked at all. The alternative a busy
/// gateway had before, `e5:prompts`, finds about 40% fewer short non-answers than e5.
pub const MAX_CASCADE_LOSS: f64 = 0.05;

/// The values of `asked_from` tried, from 0 (always asked) up.
const ASKED_FROM: [f32; 16] = [
    0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8,
];

/// The short-reply cascade on the pattern-passed replies up to a few sentences, at one
/// `asked_from`: the n-gram head reads each, the e5 head only those it reads at or above
/// `asked_from` (for the reply's script), each head trained without the reply's source and
/// each range read at the e5 threshold chosen without it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CascadeCounts {
    /// Non-answers, and how many of them the e5 head finds alone and in the cascade.
    pub non_answers: usize,
    pub found_alone: usize,
    pub found: usize,
    /// Answers, how many the e5 head flags alone and in the cascade, and how many it is
    /// asked about in the cascade (the encoder passes left).
    pub answers: usize,
    pub flagged_alone: usize,
    pub flagged: usize,
    pub answers_asked: usize,
    /// Every reply counted, and how many the e5 head is asked about.
    pub rows: usize,
    pub asked: usize,
}

/// Whether the e5 head, trained without each row's source, flags the row alone: its
/// out-of-source reading (`slow`) at the thresholds chosen without that source. `None` where
/// the row has no reading. The thresholds are chosen once per source, not per value tried.
pub fn flagged_alone(rows: &[ShortRow], slow: &[Option<f32>]) -> Vec<Option<bool>> {
    let sources: std::collections::BTreeSet<usize> = rows.iter().map(|r| r.source).collect();
    let without: BTreeMap<usize, ShortThresholds> = sources
        .into_iter()
        .map(|src| (src, choose_thresholds(rows, slow, |r| r.source != src)))
        .collect();
    rows.iter()
        .zip(slow)
        .map(|(r, e)| e.map(|e| e >= without[&r.source].for_text(&r.text)))
        .collect()
}

/// The cascade's counts at `asked_from` on the rows `keep` selects: pattern-passed replies
/// of a few sentences or less read by both heads (`fast` the n-gram head's out-of-source
/// readings, `alone` whether the e5 head flags each alone, [`flagged_alone`]).
pub fn cascade_counts(
    rows: &[ShortRow],
    fast: &[Option<f32>],
    alone: &[Option<bool>],
    asked_from: AskedFrom,
    keep: impl Fn(&ShortRow) -> bool,
) -> CascadeCounts {
    let mut c = CascadeCounts::default();
    for ((r, f), alone) in rows.iter().zip(fast).zip(alone) {
        let (Some(f), Some(alone)) = (*f, *alone) else {
            continue;
        };
        if !r.passed || !is_short(&r.text) || !keep(r) {
            continue;
        }
        let asked = f >= asked_from.for_text(&r.text);
        let flagged = alone && asked;
        c.rows += 1;
        c.asked += usize::from(asked);
        if r.label == ResponseLabel::Answer {
            c.answers += 1;
            c.answers_asked += usize::from(asked);
            c.flagged_alone += usize::from(alone);
            c.flagged += usize::from(flagged);
        } else {
            c.non_answers += 1;
            c.found_alone += usize::from(alone);
            c.found += usize::from(flagged);
        }
    }
    c
}

/// The two scripts of [`AskedFrom`], named, with which rows are theirs.
type Script = (&'static str, fn(&ShortRow) -> bool);
const SCRIPTS: [Script; 2] = [("no CJK", |r| !has_cjk(&r.text)), ("CJK", |r| has_cjk(&r.text))];

/// The same value for both scripts.
fn both(g: f32) -> AskedFrom {
    AskedFrom { other: g, cjk: g }
}

/// For each script apart, the highest value tried at which the cascade loses at most
/// [`MAX_CASCADE_LOSS`] of the non-answers the e5 head finds alone in that script (0,
/// always asked, when none does, or when the e5 head finds none there to measure by).
pub fn choose_asked_from(rows: &[ShortRow], fast: &[Option<f32>], slow: &[Option<f32>]) -> AskedFrom {
    let alone = flagged_alone(rows, slow);
    let choose = |in_script: fn(&ShortRow) -> bool| {
        if cascade_counts(rows, fast, &alone, AskedFrom::ALWAYS, in_script).found_alone == 0 {
            return 0.0;
        }
        ASKED_FROM
            .iter()
            .rev()
            .copied()
            .find(|&g| {
                let c = cascade_counts(rows, fast, &alone, both(g), in_script);
                (c.found_alone - c.found) as f64 <= MAX_CASCADE_LOSS * c.found_alone as f64
            })
            .unwrap_or(0.0)
    };
    AskedFrom {
        other: choose(SCRIPTS[0].1),
        cjk: choose(SCRIPTS[1].1),
    }
}

/// The report's section on the cascade: every value tried in each script, then the chosen
/// ones per language.
pub fn render_cascade(
    rows: &[ShortRow],
    fast: &[Option<f32>],
    slow: &[Option<f32>],
    chosen: AskedFrom,
) -> String {
    let alone = flagged_alone(rows, slow);
    const HEADER: &str = "| replies | e5 asked | answers: e5 asked | non-answers found: e5 alone / cascade | answers flagged: e5 alone / cascade |";
    let line = |label: String, c: CascadeCounts| {
        format!(
            "| {label} | {} | {} | {} | {} / {} | {} / {} |\n",
            c.rows,
            rate(c.asked, c.rows),
            rate(c.answers_asked, c.answers),
            rate(c.found_alone, c.non_answers),
            rate(c.found, c.non_answers),
            rate(c.flagged_alone, c.answers),
            rate(c.flagged, c.answers),
        )
    };
    let mut s = String::new();
    for (script, in_script) in SCRIPTS {
        let shipped = if script == "CJK" { chosen.cjk } else { chosen.other };
        s.push_str(&format!(
            "Replies with {}:\n\n| asked from (n-gram reading) {HEADER}\n|---|---|---|---|---|---|\n",
            if script == "CJK" {
                "a CJK character"
            } else {
                "no CJK character"
            }
        ));
        for g in ASKED_FROM {
            let mark = if g == shipped { " (shipped)" } else { "" };
            s.push_str(&line(
                format!("{g}{mark}"),
                cascade_counts(rows, fast, &alone, both(g), in_script),
            ));
        }
        s.push('\n');
    }
    let langs: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.lang.as_str()).collect();
    s.push_str(&format!(
        "At {chosen}, by language:\n\n| language {HEADER}\n|---|---|---|---|---|---|\n"
    ));
    for lang in langs {
        let c = cascade_counts(rows, fast, &alone, chosen, |r| r.lang == lang);
        if c.rows > 0 {
            s.push_str(&line(lang.to_string(), c));
        }
    }
    s.push_str(&line(
        "all".to_string(),
        cascade_counts(rows, fast, &alone, chosen, |_| true),
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(source: usize, label: ResponseLabel, x: f32) -> ShortRow {
        ShortRow {
            source,
            lang: "en".into(),
            label,
            passed: true,
            text: String::new(),
            vector: Some(vec![x, 1.0 - x]),
        }
    }

    /// `copies` rows of each (text, label, reading) of source 0, and their readings.
    fn rows_read_at(spec: &[(&str, ResponseLabel, f32)], copies: usize) -> (Vec<ShortRow>, Vec<Option<f32>>) {
        let mut rows = Vec::new();
        let mut p = Vec::new();
        for &(text, label, x) in spec {
            for _ in 0..copies {
                let mut r = row(0, label, x);
                r.text = text.to_string();
                rows.push(r);
                p.push(Some(x));
            }
        }
        (rows, p)
    }

    #[test]
    fn short_means_a_few_sentences_and_one_line_means_the_part() {
        assert!(is_short("Hard pass.") && features::is_one_line("Hard pass."));
        assert!(!is_short(""));
        let sentences = "word ".repeat(features::PART_TOKENS + 1);
        assert!(is_short(&sentences) && !features::is_one_line(&sentences));
        assert!(!is_short(&"word ".repeat(crate::judge::SHORT_REPLY_TOKENS + 1)));
    }

    /// Paragraphs come from the sources marked for them only, take no part in choosing a
    /// threshold, and are counted at the review's bar.
    #[test]
    fn paragraphs_are_the_team_files_and_read_at_the_review_bar() {
        let paragraph = "word ".repeat(crate::judge::SHORT_REPLY_TOKENS + 10);
        assert!(features::is_paragraph(&paragraph) && !is_short(&paragraph));
        assert!(!features::is_paragraph("Hard pass."));
        assert!(!features::is_paragraph(
            &"word ".repeat(crate::judge::PARAGRAPH_REPLY_TOKENS + 1)
        ));
        let whole = |source, text: &str| Row {
            source,
            lang: "en".into(),
            prompt: None,
            text: text.to_string(),
            label: ResponseLabel::Answer,
            window: false,
            weight: 1.0,
            group: source,
        };
        let read = vec![whole(0, &paragraph), whole(1, &paragraph), whole(0, "Hard pass.")];
        assert_eq!(short_indices(&read, |s| s == 1), vec![1, 2]);

        let (rows, p) = rows_read_at(
            &[
                ("Sure, 4.", ResponseLabel::Answer, 0.2),
                ("Not doing that.", ResponseLabel::Refusal, 0.6),
                (paragraph.as_str(), ResponseLabel::Answer, 0.45),
                (paragraph.as_str(), ResponseLabel::Refusal, 0.55),
            ],
            1,
        );
        let t = choose_thresholds(&rows, &p, |_| true);
        assert_eq!(
            t.one_line, 0.30,
            "the paragraphs leave the one-line threshold alone"
        );
        let c = counts_by_range(&rows, &p, t, |r| features::is_paragraph(&r.text));
        assert_eq!((c.found, c.non_answers, c.flagged, c.answers), (1, 1, 0, 1));
    }

    #[test]
    fn each_range_gets_its_own_threshold() {
        // One-liners: answers read 0.2, a non-answer 0.6. Replies of a few sentences:
        // answers read 0.7 (the combiner's brevity, say), a non-answer 0.9. One threshold
        // for both would flag every longer answer at 0.6 or give up the one-liner at 0.9.
        let long = "word ".repeat(features::PART_TOKENS + 4);
        let (rows, p) = rows_read_at(
            &[
                ("Sure, 4.", ResponseLabel::Answer, 0.2),
                ("Not doing that.", ResponseLabel::Refusal, 0.6),
                (long.as_str(), ResponseLabel::Answer, 0.7),
                (long.as_str(), ResponseLabel::Refusal, 0.9),
            ],
            5,
        );
        let t = choose_thresholds(&rows, &p, |_| true);
        assert_eq!((t.one_line, t.sentences), (0.30, 0.75));
        let c = counts_by_range(&rows, &p, t, |_| true);
        assert_eq!((c.found, c.non_answers, c.flagged, c.answers), (10, 10, 0, 10));
    }

    #[test]
    fn the_threshold_is_the_lowest_that_keeps_answers_flagged_under_the_bound() {
        // Twenty answers read from 0.0 to 0.95, and one non-answer at 0.9: at 0.30 six
        // answers are flagged (30%), at 0.95 one of the twenty (5%), the bound.
        let mut rows = Vec::new();
        let mut p = Vec::new();
        for i in 0..20 {
            rows.push(row(0, ResponseLabel::Answer, 0.0));
            p.push(Some(i as f32 * 0.05));
        }
        rows.push(row(1, ResponseLabel::Refusal, 0.0));
        p.push(Some(0.9));
        let t = choose_threshold(&rows, &p, |_| true);
        assert_eq!(t, 0.95);
        let c = counts(&rows, &p, t, |_| true);
        assert_eq!((c.flagged, c.answers, c.found, c.non_answers), (1, 20, 0, 1));
    }

    /// The cascade asks e5 from the highest n-gram reading that loses at most
    /// MAX_CASCADE_LOSS of e5's finds: here e5 finds 100 non-answers, `bound` of which the
    /// n-gram head reads at 0.05 and one more at 0.7; answers read 0.0 or 0.5.
    #[test]
    fn the_cascade_asks_from_the_highest_reading_that_keeps_e5s_finds() {
        let bound = (MAX_CASCADE_LOSS * 100.0).round() as usize;
        let mut rows = Vec::new();
        let (mut fast, mut slow) = (Vec::new(), Vec::new());
        let mut add = |source, label, f: f32, e: f32| {
            let mut r = row(source, label, 0.0);
            r.text = "Not doing that.".into();
            rows.push(r);
            fast.push(Some(f));
            slow.push(Some(e));
        };
        for i in 0..100 {
            let f = match i {
                i if i < bound => 0.05,
                i if i == bound => 0.7,
                _ => 0.9,
            };
            add(i % 2, ResponseLabel::Refusal, f, 0.99);
        }
        for i in 0..100 {
            add(i % 2, ResponseLabel::Answer, if i < 10 { 0.5 } else { 0.0 }, 0.0);
        }
        // From 0.1 `bound` finds are lost, at the bound; at 0.8 one more, over it.
        let g = choose_asked_from(&rows, &fast, &slow);
        assert_eq!(
            g,
            AskedFrom { other: 0.7, cjk: 0.0 },
            "no CJK row: always asked there"
        );
        let alone = flagged_alone(&rows, &slow);
        let c = cascade_counts(&rows, &fast, &alone, g, |_| true);
        assert_eq!(
            (c.found_alone, c.found, c.answers_asked, c.asked),
            (100, 100 - bound, 0, 100 - bound)
        );
        let c = cascade_counts(&rows, &fast, &alone, both(0.2), |_| true);
        assert_eq!((c.found, c.answers_asked), (100 - bound, 10));
        let report = render_cascade(&rows, &fast, &slow, g);
        assert!(report.contains("| 0.7 (shipped) |"), "{report}");
        // Nothing above 0 keeps the bound: always asked.
        fast[..=bound].iter_mut().for_each(|f| *f = Some(0.0005));
        assert_eq!(choose_asked_from(&rows, &fast, &slow), AskedFrom::ALWAYS);
        // Each script is chosen apart: the same rows in Chinese take the CJK value.
        for r in &mut rows {
            r.text = "这个就不聊了吧。".into();
        }
        fast[..=bound].iter_mut().for_each(|f| *f = Some(0.05));
        let g = choose_asked_from(&rows, &fast, &slow);
        assert_eq!(
            g,
            AskedFrom {
                other: 0.0,
                cjk: 0.05
            }
        );
    }

    #[test]
    fn out_of_source_readings_never_come_from_a_head_that_saw_the_row() {
        // Source 0 holds the only answers: held out, the head trained on source 1 (all
        // refusals) reads them as non-answers.
        let rows = vec![
            row(0, ResponseLabel::Answer, 1.0),
            row(0, ResponseLabel::Answer, 0.9),
            row(1, ResponseLabel::Refusal, 0.0),
            row(1, ResponseLabel::Refusal, 0.1),
        ];
        let p = out_of_source::<LinearHead>(&rows, 2).unwrap();
        assert!(p[0].unwrap() > 0.5 && p[1].unwrap() > 0.5, "{p:?}");
    }
}
