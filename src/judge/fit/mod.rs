//! Fitting the shipped models, and the proof that they generalise: leave-one-source-out.
//!
//! A verdict tuned on the data it is measured on says little about traffic it has not
//! seen, so every figure `refusal-guard train` prints is out of source: the rows of each
//! source (speechmap, gptfuzz, jade, the team's own examples) are judged by models trained
//! on the *other* sources only. The same out-of-source predictions are what the combiner is
//! trained on (stacking): it learns how far the n-gram model and the encoder can be trusted
//! on text unlike their training data, not how well they remember it.
//!
//! Steps (`fit`):
//! 1. read the labeled rows of every source; add the opening of each refusal, inability and
//!    answer as a stream window row (what the guard sees after 16 tokens);
//! 2. for each source, train the n-gram answer head (and the encoder head, when embeddings
//!    are given) on the other sources and predict the held-out one;
//! 3. score the combiner leave-one-source-out on those predictions, then fit it on all;
//! 4. train the shipped n-gram head (and encoder head) on every row.
//!
//! The prompt-harm heads are fitted and scored the same way, each prompt file held out
//! in turn (`prompts.rs`); the sentence vectors both sides train on come through a cache
//! (`embed.rs`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

mod embed;
mod prompts;
pub mod short;

pub use embed::{answer_subset, embed_cached, subset};
pub use prompts::*;

pub use super::combiner::Thresholds;
use super::features::{self, N_FEATURES};
use super::{Combiner, EscalationBand};
use crate::classify::data::RESPONSE_LABELS;
use crate::classify::features::FeatureConfig;
use crate::classify::ngram::NgramHead;
use crate::classify::train::{train_linear_head, train_ngram_head, Example, LinearHead, TrainConfig};
use crate::classify::{ClassifyError, ResponseJudgement, ResponseLabel};
use crate::dataset::{read_records, LabelMap};
use crate::detect::patterns::Patterns;
use crate::detect::Completeness;
use crate::score::{Binary, Prf};
use crate::verdict::Evidence;

/// A group of files trained on or held out together.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub files: Vec<PathBuf>,
}

/// The prefix of the team's sources' names ([`shipped_sources`]).
const TEAM_PREFIX: &str = "team:";

impl Source {
    /// Whether the team wrote this source (a file in `models/data`), not an outside one.
    pub fn is_team(&self) -> bool {
        self.name.starts_with(TEAM_PREFIX)
    }
}

/// The team's files in `models/data` whose names start with `prefix` (`responses-`,
/// `prompts-`), in name order: a new file joins training by its name alone.
pub fn team_files(repo: &Path, prefix: &str) -> Vec<PathBuf> {
    jsonl_files_in(&repo.join("models/data"), prefix)
}

/// The team's prompt files that only the n-gram prompt head reads
/// (`models/data/ngram/prompts-*.jsonl`), in name order. They exist because hashed
/// character n-grams carry nothing from one language to another: a language the head saw
/// on one side only (harmful or benign) is learned as the language, not the harm. The e5
/// encoder transfers across languages and was measured to lose benign recovery when
/// trained on such files (models/e5-heads/README.md, run I), so it does not read them.
pub fn ngram_only_prompt_files(repo: &Path) -> Vec<PathBuf> {
    jsonl_files_in(&repo.join("models/data/ngram"), "prompts-")
}

/// The short replies that only the short-reply heads read (`responses-*.jsonl` of `dir`,
/// the team's models/data/short/ when `train` is not told otherwise; one source each): the
/// answer head and the combiner learn from whole answers, and a set this dense in short
/// answers would teach them that a short text is an answer ([`short`]).
pub fn short_only_files(dir: &Path) -> Vec<PathBuf> {
    jsonl_files_in(dir, "responses-")
}

fn jsonl_files_in(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|f| f.to_str())
                        .is_some_and(|f| f.starts_with(prefix) && f.ends_with(".jsonl"))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The training sources of the shipped models: the permissively licensed response files of
/// the shared datasets, and the team's own example files (one source each).
pub fn shipped_sources(datasets: &Path, repo: &Path) -> Vec<Source> {
    let shared = |name: &str, file: &str| Source {
        name: name.into(),
        files: vec![datasets.join(file)],
    };
    let mut team = team_files(repo, "responses-");
    team.push(repo.join("models/refusal-ngram/examples.jsonl"));
    let mut sources = vec![
        shared("speechmap", "speechmap_criticism_nonqwen.jsonl"),
        shared("gptfuzz", "gptfuzz_responses.jsonl"),
        shared("jade", "jade_v3_zh.jsonl"),
    ];
    // Each team file is a source of its own: inability is labeled only in the team's
    // files, and stacking needs out-of-source predictions of every class (a single team
    // source would leave the combiner never seeing the n-gram model predict inability).
    sources.extend(team.into_iter().map(|f| team_source("", f)));
    sources
}

/// The sources of e5's short-reply head beside the shipped ones: each file of
/// [`short_only_files`] of `dir`, named `team:short/<stem>`.
pub fn short_only_sources(dir: &Path) -> Vec<Source> {
    short_only_files(dir)
        .into_iter()
        .map(|f| team_source("short/", f))
        .collect()
}

/// A team file as a source of its own, named `team:<folder><stem>`.
fn team_source(folder: &str, file: PathBuf) -> Source {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    Source {
        name: format!("{TEAM_PREFIX}{folder}{stem}"),
        files: vec![file],
    }
}

/// One labeled answer (or the opening of one).
#[derive(Debug, Clone)]
pub struct Row {
    /// Index of its source in the source list.
    pub source: usize,
    pub lang: String,
    pub prompt: Option<String>,
    pub text: String,
    pub label: ResponseLabel,
    /// The stream-window view of an answer (its first tokens), not the whole answer.
    pub window: bool,
    /// The row's weight in every training loss (1 unless [`weigh_sources`] set it).
    pub weight: f32,
    /// The group its source is scored in when thresholds are chosen: its own index, unless
    /// [`pool_team_sources`] put every team source in one.
    pub group: usize,
}

/// Reads every labeled row of the sources. Exact duplicate texts within a source count
/// once (gptfuzz repeats its one-line refusals hundreds of times). Window rows are added
/// for refusals, inabilities and answers (an evasion's opening looks like an answer: only
/// the whole text shows it): the first `window_tokens` tokens as `split` counts them, which
/// should be what the guard holds in deployment (Qwen's tokens: the gateway asks DashScope
/// for logprobs and counts one token per entry).
pub fn read_rows(
    sources: &[Source],
    window_tokens: usize,
    split: &crate::tokens::TokenSplit,
) -> Result<Vec<Row>, ClassifyError> {
    let labels = LabelMap::default();
    let mut rows = Vec::new();
    for (si, source) in sources.iter().enumerate() {
        let mut seen = HashSet::new();
        for file in &source.files {
            for r in read_records(file).map_err(ClassifyError::Invalid)? {
                let Some(label) = labels.response_label(&r) else {
                    continue;
                };
                let text = r.response.clone();
                if text.trim().is_empty() || !seen.insert(text.clone()) {
                    continue;
                }
                let lang = r.lang_or_unknown().to_string();
                if label != ResponseLabel::Evasion {
                    let w = split.opening(&text, window_tokens);
                    if w.len() < text.len() && !w.trim().is_empty() {
                        rows.push(Row {
                            source: si,
                            lang: lang.clone(),
                            prompt: r.request().map(str::to_string),
                            text: w.to_string(),
                            label,
                            window: true,
                            weight: 1.0,
                            group: si,
                        });
                    }
                }
                rows.push(Row {
                    source: si,
                    lang,
                    prompt: r.request().map(str::to_string),
                    text,
                    label,
                    window: false,
                    weight: 1.0,
                    group: si,
                });
            }
        }
    }
    Ok(rows)
}

/// Scores the team's sources as one group when thresholds are chosen (each outside source
/// stays a group of its own).
///
/// Why one might: thresholds maximise the mean score over groups, and with each team file a
/// group the team's files hold 10 of the 13 votes (3 for the sources nobody here wrote), so
/// a new team file moves every threshold. Measured (`train --pool-team-sources`,
/// models/combiner/README.md): the three outside sources then pull the thresholds to
/// 0.65-0.95 and a held-out outside source is served far worse, so the shipped training
/// keeps one group per source.
pub fn pool_team_sources(rows: &mut [Row], sources: &[Source]) {
    for r in rows.iter_mut() {
        r.group = pooled(sources, r.source);
    }
}

/// Source `s`'s group with the team's sources as one: the first team source's index for a
/// team source, its own otherwise.
fn pooled(sources: &[Source], s: usize) -> usize {
    match sources.iter().position(Source::is_team) {
        Some(first) if sources[s].is_team() => first,
        _ => s,
    }
}

/// Weighs each row by its source's size to the power `-power` (0: every row alike, 1: every
/// source alike), the team's files counted as one source, and scales the weights to a mean
/// of 1 so a trainer's learning rate keeps its meaning.
///
/// Why one might: the two big outside sources (speechmap, gptfuzz) hold most of the rows,
/// so an unweighted model learns mostly how those two label a non-answer. Measured
/// (`train --source-weight-power`, models/combiner/README.md): weighting lowers held-out
/// speechmap by 0.07 to 0.20, since gptfuzz's rows are what teach a model to read it; the
/// shipped training weighs every row alike (power 0).
pub fn weigh_sources(rows: &mut [Row], sources: &[Source], power: f32) {
    let mut counts: HashMap<usize, usize> = HashMap::new();
    for r in rows.iter() {
        *counts.entry(pooled(sources, r.source)).or_default() += 1;
    }
    for r in rows.iter_mut() {
        r.weight = (counts[&pooled(sources, r.source)] as f32).powf(-power);
    }
    let mean = mean(rows.iter().map(|r| r.weight as f64));
    for r in rows.iter_mut() {
        r.weight = (r.weight as f64 / mean) as f32;
    }
}

/// The settings of a fit.
#[derive(Debug, Clone, Serialize)]
pub struct FitConfig {
    pub ngram: TrainConfig,
    pub features: FeatureConfig,
    /// Full-batch AdamW steps and learning rate of the combiner.
    pub combiner_steps: usize,
    pub combiner_lr: f64,
    /// Steps and learning rate of the encoder head.
    pub encoder_steps: usize,
    pub encoder_lr: f64,
    /// Tokens of the stream window.
    pub window_tokens: usize,
    /// What a token of the window is (`TokenSplit::unit`), for the report.
    pub window_unit: &'static str,
    /// Sources (indices) the encoder's answer head is not trained on, though the other
    /// models are (`train --encoder-skip`).
    pub encoder_skip: Vec<usize>,
    /// The most of the training data's whole answers the escalation band may send to the
    /// encoder ([`escalation_rate`]; `train --escalation-cap`). The encoder is nearly all of
    /// the cascade's cost: an escalated answer costs about two hundred times what the
    /// embedded default does, so this share is what the cascade's mean cost per answer is.
    pub escalation_cap: f64,
    /// Sources (indices) the shipped thresholds and band are chosen on (`train
    /// --thresholds-on`); empty: every source, each weighted alike. An operator whose
    /// traffic is one labeled file may want the thresholds that read that traffic best,
    /// not the ones that read the mean source best. The leave-one-source-out table is
    /// unchanged: each row there is still scored at thresholds chosen without its source.
    pub thresholds_on: Vec<usize>,
}

/// The default [`FitConfig::escalation_cap`]: 4% of whole answers keeps the cascade's
/// mean cost per answer under issue 11's 2 ms on one core (`benches/cascade_cost.rs`).
pub const ESCALATION_CAP: f64 = 0.04;

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig {
            ngram: TrainConfig::default(),
            features: FeatureConfig::default(),
            combiner_steps: 400,
            combiner_lr: 0.05,
            encoder_steps: 300,
            encoder_lr: 0.02,
            window_tokens: 16,
            window_unit: crate::tokens::TokenSplit::Pieces.unit(),
            encoder_skip: Vec::new(),
            escalation_cap: ESCALATION_CAP,
            thresholds_on: Vec::new(),
        }
    }
}

fn examples(rows: &[Row], keep: impl Fn(&Row) -> bool) -> Vec<Example> {
    rows.iter()
        .filter(|r| keep(r))
        .map(|r| Example {
            text: r.text.clone(),
            label: r.label.index(),
            weight: r.weight,
        })
        .collect()
}

fn ngram_judge(head: &NgramHead, text: &str) -> ResponseJudgement {
    ResponseJudgement::from_labels(&head.config.labels, head.forward(text))
}

fn encoder_judge(head: &LinearHead, v: &[f32]) -> ResponseJudgement {
    ResponseJudgement::from_labels(&head.labels, head.forward(v))
}

/// The n-gram head's reading of a text, of its opening and of its ending, as
/// [`super::answer_probs`] reads them.
pub fn read_parts(head: &NgramHead, text: &str) -> (ResponseJudgement, ResponseJudgement, ResponseJudgement) {
    let whole = ngram_judge(head, text);
    let (opening, ending) = features::parts(text);
    let read = |part: Option<&str>| part.map_or_else(|| whole.clone(), |p| ngram_judge(head, p));
    let (opening, ending) = (read(opening), read(ending));
    (whole, opening, ending)
}

/// Out-of-source predictions for every row.
#[derive(Debug, Clone)]
pub struct Predictions {
    pub ngram: Vec<ResponseJudgement>,
    /// The n-gram head's reading of each row's opening and ending (see [`features`]).
    pub opening: Vec<ResponseJudgement>,
    pub ending: Vec<ResponseJudgement>,
    /// When embeddings were given: the encoder head's reading of each row that has one.
    pub encoder: Option<Vec<Option<ResponseJudgement>>>,
    /// The pattern detector's evidence (not trained: the same in and out of source).
    pub patterns: Vec<Vec<Evidence>>,
}

/// A linear head over the sentence vectors of the rows that have one, from `(vector, label,
/// weight)` triples: the answer head and the prompt head alike.
fn head_on_vectors<'a>(
    pairs: impl Iterator<Item = (&'a Option<Vec<f32>>, usize, f32)>,
    labels: &[&str],
    class_weight_power: f32,
    cfg: &FitConfig,
) -> Result<LinearHead, ClassifyError> {
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    let mut ws = Vec::new();
    for (v, y, w) in pairs {
        if let Some(v) = v {
            xs.push(v.clone());
            ys.push(y);
            ws.push(w);
        }
    }
    train_linear_head(
        &xs,
        &ys,
        Some(&ws),
        labels,
        cfg.encoder_steps,
        cfg.encoder_lr,
        class_weight_power,
    )
}

fn train_encoder_head(
    rows: &[Row],
    vectors: &[Option<Vec<f32>>],
    keep: impl Fn(&Row) -> bool,
    cfg: &FitConfig,
) -> Result<LinearHead, ClassifyError> {
    let pairs = rows
        .iter()
        .zip(vectors)
        .filter(|(r, _)| keep(r) && !cfg.encoder_skip.contains(&r.source))
        .map(|(r, v)| (v, r.label.index(), r.weight));
    head_on_vectors(pairs, &RESPONSE_LABELS, 0.5, cfg)
}

/// Leave-one-source-out predictions of the n-gram head (and of the encoder head, when
/// `vectors` holds an embedding for the rows that have one). `progress` hears about each
/// fold.
pub fn out_of_source(
    rows: &[Row],
    n_sources: usize,
    vectors: Option<&[Option<Vec<f32>>]>,
    cfg: &FitConfig,
    mut progress: impl FnMut(&str),
) -> Result<Predictions, ClassifyError> {
    let default = ResponseJudgement::certain(ResponseLabel::Answer, 0.25);
    let mut ngram = vec![default.clone(); rows.len()];
    let mut opening = vec![default.clone(); rows.len()];
    let mut ending = vec![default.clone(); rows.len()];
    let mut encoder: Option<Vec<Option<ResponseJudgement>>> = vectors.map(|_| vec![None; rows.len()]);
    for s in 0..n_sources {
        if !rows.iter().any(|r| r.source == s) {
            continue;
        }
        let train = examples(rows, |r| r.source != s);
        let head = train_ngram_head(&train, &RESPONSE_LABELS, cfg.features, &cfg.ngram, |_, _| {})?;
        for (i, r) in rows.iter().enumerate().filter(|(_, r)| r.source == s) {
            let (whole, open, end) = read_parts(&head, &r.text);
            ngram[i] = whole;
            opening[i] = open;
            ending[i] = end;
        }
        if let (Some(vs), Some(out)) = (vectors, encoder.as_mut()) {
            let head = train_encoder_head(rows, vs, |r| r.source != s, cfg)?;
            for (i, _) in rows.iter().enumerate().filter(|(_, r)| r.source == s) {
                out[i] = vs[i].as_ref().map(|v| encoder_judge(&head, v));
            }
        }
        progress(&format!("fold {s}: {} training rows", train.len()));
    }
    let patterns = rows
        .iter()
        .map(|r| {
            let c = if r.window {
                Completeness::Partial
            } else {
                Completeness::Complete
            };
            Patterns::builtin().scan_with(&r.text, c)
        })
        .collect();
    Ok(Predictions {
        ngram,
        opening,
        ending,
        encoder,
        patterns,
    })
}

/// The combiner's inputs for row `i`, with or without the encoder's reading.
pub fn feature_row(rows: &[Row], p: &Predictions, i: usize, with_encoder: bool) -> [f32; N_FEATURES] {
    let enc = if with_encoder {
        p.encoder.as_ref().and_then(|e| e[i].as_ref())
    } else {
        None
    };
    let text = &rows[i].text;
    features::vector(&features::Inputs {
        ngram: &p.ngram[i],
        opening: &p.opening[i],
        ending: &p.ending[i],
        encoder: enc,
        evidence: &p.patterns[i],
        partial: rows[i].window,
        chars: text.chars().count(),
        opening_bytes: features::window(text, features::PART_TOKENS).len(),
    })
}

/// One line of [`write_stack`]'s file.
#[derive(Serialize)]
struct StackLine<'a> {
    source: &'a str,
    lang: &'a str,
    window: bool,
    label: &'static str,
    /// The row's request and text (a window row's text is its opening), so that a probe can
    /// compute an input the crate does not have yet and measure it beside these.
    prompt: Option<&'a str>,
    text: &'a str,
    features: [f32; N_FEATURES],
    /// The same row with the encoder's reading, where the row has one.
    features_with_encoder: Option<[f32; N_FEATURES]>,
}

/// Writes the combiner's training rows (the out-of-source features [`train_combiner`] fits
/// on) as JSON lines, a header first (`{"feature_names": [...], "labels": [...]}`: the
/// column orders, so that a reader outside this crate keeps no copy of them), so that
/// another combiner form can be measured on the same rows.
pub fn write_stack(
    out: &mut impl std::io::Write,
    rows: &[Row],
    sources: &[Source],
    p: &Predictions,
) -> std::io::Result<()> {
    let header = serde_json::json!({
        "feature_names": features::FEATURE_NAMES,
        "labels": RESPONSE_LABELS,
    });
    writeln!(out, "{header}")?;
    for (i, r) in rows.iter().enumerate() {
        let has_encoder = p.encoder.as_ref().is_some_and(|e| e[i].is_some());
        let line = StackLine {
            source: &sources[r.source].name,
            lang: &r.lang,
            window: r.window,
            label: RESPONSE_LABELS[r.label.index()],
            prompt: r.prompt.as_deref(),
            text: &r.text,
            features: feature_row(rows, p, i, false),
            features_with_encoder: has_encoder.then(|| feature_row(rows, p, i, true)),
        };
        writeln!(out, "{}", serde_json::to_string(&line)?)?;
    }
    out.flush()
}

/// Trains a combiner on the rows `keep` selects: each row once without the encoder's
/// reading and, when there is one, once with it.
pub fn train_combiner(
    rows: &[Row],
    p: &Predictions,
    keep: impl Fn(&Row) -> bool,
    cfg: &FitConfig,
) -> Result<Combiner, ClassifyError> {
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    let mut ws = Vec::new();
    for (i, r) in rows.iter().enumerate().filter(|(_, r)| keep(r)) {
        xs.push(feature_row(rows, p, i, false).to_vec());
        ys.push(r.label.index());
        ws.push(r.weight);
        if p.encoder.as_ref().is_some_and(|e| e[i].is_some()) {
            xs.push(feature_row(rows, p, i, true).to_vec());
            ys.push(r.label.index());
            ws.push(r.weight);
        }
    }
    // The data's own class balance: the combiner's probabilities are what the verdict's
    // confidence reports, so they must not be skewed towards the rare classes.
    let head = train_linear_head(
        &xs,
        &ys,
        Some(&ws),
        &RESPONSE_LABELS,
        cfg.combiner_steps,
        cfg.combiner_lr,
        0.0,
    )?;
    Combiner::new(head)
}

/// What each way of deciding said about one row.
#[derive(Debug, Clone, Copy)]
pub struct Decisions {
    /// The n-gram model alone (argmax).
    pub ngram: ResponseLabel,
    /// The embedded default's probabilities: n-gram + patterns, combined.
    pub embedded: [f32; 4],
    /// The combiner's probabilities with the encoder's reading as well (rows with an
    /// encoder reading only): what the cascade decides on when it escalates.
    pub with_encoder: Option<[f32; 4]>,
}

impl Decisions {
    /// The embedded default's label at a non-answer threshold.
    pub fn embedded_label(&self, non_answer_from: f32) -> ResponseLabel {
        super::answer_label(&self.embedded, non_answer_from)
    }

    /// Whether the cascade asks the encoder about this row.
    pub fn escalated(&self, band: &EscalationBand) -> bool {
        self.with_encoder.is_some() && band.contains(&self.embedded)
    }

    /// The cascade's label as the pipeline decides it (rows with an encoder reading only):
    /// the escalated threshold on the encoder's view when the embedded default falls in
    /// the band, the whole-answer one on its own view otherwise.
    pub fn cascade_at(&self, t: &Thresholds) -> Option<ResponseLabel> {
        let with = self.with_encoder?;
        Some(if self.escalated(&t.band) {
            super::answer_label(&with, t.escalated)
        } else {
            self.embedded_label(t.whole)
        })
    }
}

/// Decides a row with a combiner, as [`super::decide`] would: without the encoder's
/// reading, and with it where the row has one.
pub fn decide_row(c: &Combiner, rows: &[Row], p: &Predictions, i: usize) -> Decisions {
    let has_encoder = p.encoder.as_ref().is_some_and(|e| e[i].is_some());
    Decisions {
        ngram: p.ngram[i].label(),
        embedded: c.probs(&feature_row(rows, p, i, false)),
        with_encoder: has_encoder.then(|| c.probs(&feature_row(rows, p, i, true))),
    }
}

/// The thresholds [`choose_threshold`] tries.
const THRESHOLDS: [f32; 17] = [
    0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95,
];

/// Which decisions a threshold is chosen for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Question {
    /// Whole answers judged by the embedded default.
    Whole,
    /// Whole answers judged with the encoder's reading (every row that has one).
    Escalated,
    /// Stream windows: explicit refusals against answers.
    Window,
}

impl Question {
    /// `(gold non-answer, predicted non-answer at t)` for a row this question covers.
    fn read(self, r: &Row, d: &Decisions, t: f32) -> Option<(bool, bool)> {
        let non = |l: ResponseLabel| l != ResponseLabel::Answer;
        match self {
            Question::Whole if !r.window => Some((non(r.label), non(d.embedded_label(t)))),
            Question::Escalated if !r.window => d
                .with_encoder
                .map(|p| (non(r.label), non(super::answer_label(&p, t)))),
            Question::Window
                if r.window && matches!(r.label, ResponseLabel::Refusal | ResponseLabel::Answer) =>
            {
                Some((non(r.label), non(d.embedded_label(t))))
            }
            _ => None,
        }
    }
}

/// F0.5 of non-answer detection: precision weighted over recall. A gateway pays more for a
/// good answer judged a non-answer (re-routed for nothing, or a stream ended with an error
/// after it was shown) than for a non-answer let through (the audit still counts it).
fn f_half(b: &Binary) -> f64 {
    let p = b.prf();
    let (pr, re) = (p.precision, p.recall);
    if pr + re == 0.0 {
        0.0
    } else {
        1.25 * pr * re / (0.25 * pr + re)
    }
}

/// The mean of the sources' F0.5 ([`f_half`]), each source weighted alike; sources without
/// a non-answer have no score to average.
fn mean_f_half(per_source: &BTreeMap<usize, Binary>) -> f64 {
    mean(per_source.values().filter(|b| b.tp + b.fn_ > 0).map(f_half))
}

/// The non-answer threshold that maximises the mean non-answer F0.5 (`f_half`) over the
/// sources `use_source` admits (each source weighted alike, so that the large files do not
/// decide for the small ones). Nested inside leave-one-source-out (the held-out source
/// excluded), it is chosen without the source it is scored on.
pub fn choose_threshold(
    rows: &[Row],
    decisions: &[Option<Decisions>],
    question: Question,
    use_source: impl Fn(usize) -> bool,
) -> f32 {
    let mut best = (f64::MIN, 0.5f32);
    for t in THRESHOLDS {
        let mut per_source: BTreeMap<usize, Binary> = BTreeMap::new();
        for (r, d) in rows.iter().zip(decisions) {
            let Some(d) = d else { continue };
            if !use_source(r.source) {
                continue;
            }
            if let Some((gold, predicted)) = question.read(r, d, t) {
                per_source.entry(r.group).or_default().count(gold, predicted);
            }
        }
        let mean = mean_f_half(&per_source);
        if mean > best.0 + 1e-9 {
            best = (mean, t);
        }
    }
    best.1
}

/// The most answer windows a stream threshold may stop, on the median source: a stream
/// stopped by mistake throws a good answer away, while a refusal its window misses is still
/// caught when the whole answer is judged. The median, not the mean, because one source's
/// "answers" may open like refusals (gptfuzz: jailbroken answers that start by refusing).
pub const MAX_WINDOW_FALSE_STOPS: f64 = 0.02;

/// The stream-window threshold: the lowest at which the median source's answer windows
/// stopped stay at or under [`MAX_WINDOW_FALSE_STOPS`], so the window stops as many
/// refusals as that allows. (F1 would not do: windows of refusals are rare in some sources
/// and common in others, and F1 follows the base rate.)
pub fn choose_window_threshold(
    rows: &[Row],
    decisions: &[Option<Decisions>],
    use_source: impl Fn(usize) -> bool,
) -> f32 {
    lowest_window_threshold(rows, decisions, use_source, |r, d, t| {
        Question::Window.read(r, d, t).map(|(_, stopped)| stopped)
    })
}

/// The lowest threshold at which the median source's answer windows stopped stay at or
/// under [`MAX_WINDOW_FALSE_STOPS`]; `stops(row, decisions, t)` says whether an answer
/// window is stopped at `t` (`None`: the row does not count).
fn lowest_window_threshold(
    rows: &[Row],
    decisions: &[Option<Decisions>],
    use_source: impl Fn(usize) -> bool,
    stops: impl Fn(&Row, &Decisions, f32) -> Option<bool>,
) -> f32 {
    for t in THRESHOLDS {
        let mut per_source: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
        for (r, d) in rows.iter().zip(decisions) {
            let Some(d) = d else { continue };
            if !use_source(r.source) || r.label != ResponseLabel::Answer {
                continue;
            }
            if let Some(stopped) = stops(r, d, t) {
                let e = per_source.entry(r.group).or_default();
                e.0 += usize::from(stopped);
                e.1 += 1;
            }
        }
        let rates = per_source
            .values()
            .map(|(hit, n)| *hit as f64 / *n as f64)
            .collect();
        if median(rates) <= MAX_WINDOW_FALSE_STOPS {
            return t;
        }
    }
    THRESHOLDS[THRESHOLDS.len() - 1]
}

/// Whether a stream window (of a row with an encoder reading; `None` otherwise) is stopped:
/// by the embedded default alone at `t.window` as the guard does today (`encoder_from`
/// None), or with the encoder asked when the embedded default is unsure (its probabilities
/// in `t.band`), its reading taken as non-answer from `encoder_from`.
fn window_stops(d: &Decisions, t: &Thresholds, encoder_from: Option<f32>) -> Option<bool> {
    let with = d.with_encoder?;
    let label = match encoder_from {
        Some(from) if d.escalated(&t.band) => super::answer_label(&with, from),
        _ => d.embedded_label(t.window),
    };
    Some(label != ResponseLabel::Answer)
}

/// Stream windows of one (source, language) on the encoder subset, judged as the guard
/// judges them today (the embedded default alone) and as it would if it asked the encoder
/// about the unsure ones ([`window_escalation`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct WindowEscalation {
    pub refusals: usize,
    pub refusals_stopped: usize,
    pub refusals_stopped_with_encoder: usize,
    pub answers: usize,
    pub answers_stopped: usize,
    pub answers_stopped_with_encoder: usize,
    /// Windows (refusals and answers) the encoder would be asked about.
    pub escalated: usize,
}

/// What asking the encoder about unsure stream windows would do, leave-one-source-out: for
/// each held-out source, the band and window threshold chosen without it (`nested`), and a
/// threshold for the encoder's reading chosen without it by the window rule (the lowest at
/// which the median other source's answer windows stopped stay at or under
/// [`MAX_WINDOW_FALSE_STOPS`]). Returns the scores and each source's chosen threshold.
/// A measurement for deciding whether the guard should escalate windows; it does not yet.
pub fn window_escalation(
    rows: &[Row],
    sources: &[Source],
    decisions: &[Option<Decisions>],
    nested: &[Thresholds],
) -> (BTreeMap<(String, String), WindowEscalation>, Vec<f32>) {
    let chosen: Vec<f32> = nested
        .iter()
        .enumerate()
        .map(|(s, t)| {
            lowest_window_threshold(
                rows,
                decisions,
                |x| x != s,
                |r, d, e| r.window.then(|| window_stops(d, t, Some(e))).flatten(),
            )
        })
        .collect();
    let mut out: BTreeMap<(String, String), WindowEscalation> = BTreeMap::new();
    for (r, d) in rows.iter().zip(decisions) {
        let Some(d) = d else { continue };
        if !r.window || !matches!(r.label, ResponseLabel::Refusal | ResponseLabel::Answer) {
            continue;
        }
        let t = &nested[r.source];
        let (Some(alone), Some(with)) = (
            window_stops(d, t, None),
            window_stops(d, t, Some(chosen[r.source])),
        ) else {
            continue;
        };
        for lang in [r.lang.as_str(), "all"] {
            let e = out
                .entry((sources[r.source].name.clone(), lang.to_string()))
                .or_default();
            e.escalated += usize::from(d.escalated(&t.band));
            if r.label == ResponseLabel::Refusal {
                e.refusals += 1;
                e.refusals_stopped += usize::from(alone);
                e.refusals_stopped_with_encoder += usize::from(with);
            } else {
                e.answers += 1;
                e.answers_stopped += usize::from(alone);
                e.answers_stopped_with_encoder += usize::from(with);
            }
        }
    }
    (out, chosen)
}

/// The trade-off behind [`window_escalation`]: for each threshold on the encoder's reading
/// of an escalated window (every source at its own nested band and window threshold), the
/// mean over sources of the explicit refusals stopped and the median over sources of the
/// answers stopped; first the embedded default alone (`None`). Encoder subset only.
pub fn window_escalation_sweep(
    rows: &[Row],
    decisions: &[Option<Decisions>],
    nested: &[Thresholds],
) -> Vec<(Option<f32>, f64, f64)> {
    let point = |encoder_from: Option<f32>| {
        let mut per_source: BTreeMap<usize, [usize; 4]> = BTreeMap::new();
        for (r, d) in rows.iter().zip(decisions) {
            let Some(d) = d else { continue };
            if !r.window || !matches!(r.label, ResponseLabel::Refusal | ResponseLabel::Answer) {
                continue;
            }
            let t = &nested[r.source];
            let Some(stopped) = window_stops(d, t, encoder_from) else {
                continue;
            };
            let e = per_source.entry(r.source).or_default();
            let k = if r.label == ResponseLabel::Refusal { 0 } else { 2 };
            e[k] += usize::from(stopped);
            e[k + 1] += 1;
        }
        let refusals = per_source
            .values()
            .filter(|e| e[1] > 0)
            .map(|e| e[0] as f64 / e[1] as f64);
        let answers = per_source
            .values()
            .filter(|e| e[3] > 0)
            .map(|e| e[2] as f64 / e[3] as f64)
            .collect();
        (encoder_from, mean(refusals), median(answers))
    };
    std::iter::once(point(None))
        .chain(THRESHOLDS.iter().map(|&t| point(Some(t))))
        .collect()
}

/// Renders [`window_escalation`] and [`window_escalation_sweep`] as Markdown.
pub fn render_window_escalation(
    scores: &BTreeMap<(String, String), WindowEscalation>,
    sources: &[Source],
    chosen: &[f32],
    sweep: &[(Option<f32>, f64, f64)],
) -> String {
    let mut s = String::from(
        "| held-out source | lang | windows (encoder subset) | escalated | refusals stopped: embedded alone | \
         with the encoder asked | answers stopped: embedded alone | with the encoder asked |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for ((src, lang), e) in scores {
        let n = e.refusals + e.answers;
        s.push_str(&format!(
            "| {src} | {lang} | {n} | {:.3} | {} | {} | {} | {} |\n",
            e.escalated as f64 / n.max(1) as f64,
            rate(e.refusals_stopped, e.refusals),
            rate(e.refusals_stopped_with_encoder, e.refusals),
            rate(e.answers_stopped, e.answers),
            rate(e.answers_stopped_with_encoder, e.answers),
        ));
    }
    s.push_str(&format!(
        "\nThe encoder's reading of a window is taken as non-answer from a threshold chosen without the held-out \
         source (the window rule: the lowest at which the median other source's answer windows stopped stay at or \
         under {:.0}%): {}.\n",
        MAX_WINDOW_FALSE_STOPS * 100.0,
        sources
            .iter()
            .zip(chosen)
            .map(|(s, t)| format!("{} {t}", s.name))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    s.push_str(
        "\nBy threshold on the encoder's reading of an escalated window (every source at its own band and \
         window threshold):\n\n| encoder's window threshold | refusals stopped, mean over sources | \
         answers stopped, median over sources |\n|---|---|---|\n",
    );
    for (t, refusals, answers) in sweep {
        let t = t.map_or("embedded default alone".to_string(), |t| t.to_string());
        s.push_str(&format!("| {t} | {refusals:.3} | {answers:.3} |\n"));
    }
    s
}

impl Thresholds {
    /// Chosen on the sources `use_source` admits; the band sends at most `cap` of their
    /// whole answers to the encoder.
    pub fn choose(
        rows: &[Row],
        decisions: &[Option<Decisions>],
        use_source: impl Fn(usize) -> bool + Copy,
        cap: f64,
    ) -> Self {
        let mut t = Thresholds {
            whole: choose_threshold(rows, decisions, Question::Whole, use_source),
            escalated: choose_threshold(rows, decisions, Question::Escalated, use_source),
            window: choose_window_threshold(rows, decisions, use_source),
            band: EscalationBand::ALWAYS,
            wide_band: EscalationBand::ALWAYS,
        };
        t.band = choose_band(rows, decisions, &t, use_source, cap);
        t.wide_band = choose_band(rows, decisions, &t, use_source, 1.0);
        t
    }
}

/// The bands [`choose_band`] tries: every (from, to) of these bounds with from < to.
const BAND_BOUNDS: [f32; 17] = [
    0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.01,
];

/// How much mean F0.5 the chosen band may give up against the best band.
pub const BAND_F1_SLACK: f64 = 0.005;

/// The cascade's mean F0.5 over sources at the thresholds `t`, on the rows with an encoder
/// reading (the only ones the cascade can be scored on).
pub fn cascade_mean_f1(
    rows: &[Row],
    decisions: &[Option<Decisions>],
    t: &Thresholds,
    use_source: impl Fn(usize) -> bool,
) -> f64 {
    let mut per_source: BTreeMap<usize, Binary> = BTreeMap::new();
    for (r, d) in rows.iter().zip(decisions) {
        let Some(d) = d else { continue };
        if r.window || !use_source(r.source) {
            continue;
        }
        let Some(label) = d.cascade_at(t) else { continue };
        per_source
            .entry(r.group)
            .or_default()
            .count(r.label != ResponseLabel::Answer, label != ResponseLabel::Answer);
    }
    mean_f_half(&per_source)
}

/// The share of the admitted sources' whole answers (pooled) whose embedded-default
/// probabilities fall in `band`: every whole answer, not only the encoder subset, because
/// whether an answer is escalated depends on the embedded default alone. The subset holds
/// more non-answers than the files do, and they are escalated more often, so this is the
/// rate that predicts traffic, and what [`FitConfig::escalation_cap`] bounds.
pub fn escalation_rate(
    rows: &[Row],
    decisions: &[Option<Decisions>],
    band: &EscalationBand,
    use_source: impl Fn(usize) -> bool,
) -> f64 {
    let (mut escalated, mut n) = (0usize, 0usize);
    for (r, d) in rows.iter().zip(decisions) {
        let Some(d) = d else { continue };
        if r.window || !use_source(r.source) {
            continue;
        }
        n += 1;
        escalated += usize::from(band.contains(&d.embedded));
    }
    escalated as f64 / n.max(1) as f64
}

/// Every band of [`BAND_BOUNDS`] with the cascade's mean F0.5 and the escalation rate it
/// gives on the rows `use_source` admits, at the thresholds of `t`.
fn scored_bands(
    rows: &[Row],
    decisions: &[Option<Decisions>],
    t: &Thresholds,
    use_source: impl Fn(usize) -> bool + Copy,
) -> Vec<(EscalationBand, f64, f64)> {
    let mut scored = Vec::new();
    for (i, from) in BAND_BOUNDS.iter().enumerate() {
        for to in &BAND_BOUNDS[i + 1..] {
            let band = EscalationBand { from: *from, to: *to };
            let f = cascade_mean_f1(rows, decisions, &Thresholds { band, ..*t }, use_source);
            let rate = escalation_rate(rows, decisions, &band, use_source);
            scored.push((band, f, rate));
        }
    }
    scored
}

/// The escalation band: of the bands that send at most `cap` of the whole answers to the
/// encoder ([`escalation_rate`]), those whose cascade mean F0.5 is within
/// [`BAND_F1_SLACK`] of the best of them, and of those the one that asks the encoder least
/// often (the cost). The band that asks nothing when none fits the cap.
pub fn choose_band(
    rows: &[Row],
    decisions: &[Option<Decisions>],
    t: &Thresholds,
    use_source: impl Fn(usize) -> bool + Copy,
    cap: f64,
) -> EscalationBand {
    let scored: Vec<_> = scored_bands(rows, decisions, t, use_source)
        .into_iter()
        .filter(|s| s.2 <= cap)
        .collect();
    let best = scored.iter().map(|s| s.1).fold(f64::MIN, f64::max);
    scored
        .into_iter()
        .filter(|s| s.1 >= best - BAND_F1_SLACK)
        .min_by(|a, b| a.2.total_cmp(&b.2))
        .map(|s| s.0)
        .unwrap_or(EscalationBand::NEVER)
}

/// The caps on the escalation rate [`band_sweep`] tries (1.0: no cap).
pub const BAND_SWEEP_CAPS: [f64; 11] = [0.0, 0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.10, 0.15, 0.20, 1.0];

/// One cap of [`band_sweep`]: each held-out source's cascade counts (on its rows with an
/// encoder reading) and escalations (of all its whole answers) at the band chosen without
/// it under the cap.
#[derive(Debug, Clone)]
pub struct BandPoint {
    pub cap: f64,
    /// Per source: the counts, whole answers escalated, whole answers.
    pub per_source: BTreeMap<usize, (Binary, usize, usize)>,
}

impl BandPoint {
    /// Mean non-answer F1 over the sources.
    pub fn mean_f1(&self) -> f64 {
        mean(self.per_source.values().map(|(b, _, _)| b.prf().f1))
    }

    /// The share of the whole answers of the sources `keep` admits that were escalated,
    /// pooled as [`escalation_rate`] pools them.
    pub fn rate(&self, keep: impl Fn(usize) -> bool) -> f64 {
        let (e, n) = self
            .per_source
            .iter()
            .filter(|(s, _)| keep(**s))
            .fold((0, 0), |(e, n), (_, (_, de, dn))| (e + de, n + dn));
        e as f64 / n.max(1) as f64
    }
}

/// What the cascade's accuracy costs in encoder calls, out of source: for each cap, every
/// source is scored at the band [`choose_band`] chooses without it under that cap (the
/// other thresholds as `nested` has them). The cap `train` ships with is one point on this
/// curve; the curve shows what a wider or narrower one would give.
pub fn band_sweep(
    rows: &[Row],
    n_sources: usize,
    decisions: &[Option<Decisions>],
    nested: &[Thresholds],
    caps: &[f64],
) -> Vec<BandPoint> {
    caps.iter()
        .map(|&cap| {
            let mut per_source: BTreeMap<usize, (Binary, usize, usize)> = BTreeMap::new();
            for (s, held_out) in nested.iter().enumerate().take(n_sources) {
                let band = choose_band(rows, decisions, held_out, |x| x != s, cap);
                let t = Thresholds { band, ..*held_out };
                for (r, d) in rows.iter().zip(decisions) {
                    let Some(d) = d else { continue };
                    if r.window || r.source != s {
                        continue;
                    }
                    let e = per_source.entry(s).or_default();
                    e.1 += usize::from(band.contains(&d.embedded));
                    e.2 += 1;
                    if let Some(label) = d.cascade_at(&t) {
                        e.0.count(r.label != ResponseLabel::Answer, label != ResponseLabel::Answer);
                    }
                }
            }
            BandPoint { cap, per_source }
        })
        .collect()
}

/// The band sweep as a Markdown table: the mean over sources, then the sources nobody here
/// wrote, then the team's files pooled.
pub fn render_band_sweep(points: &[BandPoint], sources: &[Source]) -> String {
    let shared: Vec<usize> = (0..sources.len()).filter(|&s| !sources[s].is_team()).collect();
    let mut s = format!(
        "| cap on the escalation rate | mean held-out F1 over sources | {} | team files pooled | whole answers escalated: all sources | the sources nobody here wrote |\n|---|---|{}---|---|---|\n",
        shared.iter().map(|&i| sources[i].name.as_str()).collect::<Vec<_>>().join(" | "),
        "---|".repeat(shared.len())
    );
    for p in points {
        let cells: Vec<String> = shared
            .iter()
            .map(|i| {
                p.per_source
                    .get(i)
                    .map(|(b, _, _)| format!("{:.3}", b.prf().f1))
                    .unwrap_or_else(|| "-".into())
            })
            .collect();
        let mut team = Binary::default();
        for (i, (b, _, _)) in &p.per_source {
            if sources[*i].is_team() {
                team.add(b);
            }
        }
        let cap = if p.cap >= 1.0 {
            "none".to_string()
        } else {
            format!("{:.0}%", p.cap * 100.0)
        };
        s.push_str(&format!(
            "| {cap} | {:.3} | {} | {:.3} | {:.3} | {:.3} |\n",
            p.mean_f1(),
            cells.join(" | "),
            team.prf().f1,
            p.rate(|_| true),
            p.rate(|i| !sources[i].is_team())
        ));
    }
    s
}

/// For each source, the thresholds chosen without it (the band under `cap`).
pub fn nested_thresholds(
    rows: &[Row],
    n_sources: usize,
    decisions: &[Option<Decisions>],
    cap: f64,
) -> Vec<Thresholds> {
    (0..n_sources)
        .map(|s| Thresholds::choose(rows, decisions, |x| x != s, cap))
        .collect()
}

/// Leave-one-source-out decisions: each source's rows decided by a combiner fitted on the
/// other sources' out-of-source predictions.
pub fn combiner_out_of_source(
    rows: &[Row],
    n_sources: usize,
    p: &Predictions,
    cfg: &FitConfig,
) -> Result<Vec<Option<Decisions>>, ClassifyError> {
    let source_of: Vec<usize> = rows.iter().map(|r| r.source).collect();
    held_out(
        &source_of,
        n_sources,
        |s| train_combiner(rows, p, |r| r.source != s, cfg),
        |c, i| Some(decide_row(c, rows, p, i)),
    )
}

/// Leave-one-source-out, the loop every out-of-source figure runs: for each source that has
/// rows (`source_of` gives each row's), `fit` a model without it (it is told which source is
/// held out) and let `predict` judge that source's rows. Rows of a source with no rows
/// cannot exist; a row `predict` cannot judge stays `None`.
pub(crate) fn held_out<M, T>(
    source_of: &[usize],
    n_sources: usize,
    mut fit: impl FnMut(usize) -> Result<M, ClassifyError>,
    predict: impl Fn(&M, usize) -> Option<T>,
) -> Result<Vec<Option<T>>, ClassifyError> {
    let mut out: Vec<Option<T>> = source_of.iter().map(|_| None).collect();
    for s in 0..n_sources {
        if !source_of.contains(&s) {
            continue;
        }
        let model = fit(s)?;
        for (i, _) in source_of.iter().enumerate().filter(|(_, &r)| r == s) {
            out[i] = predict(&model, i);
        }
    }
    Ok(out)
}

/// Non-answer scores of one group of rows, for each way of deciding.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GroupScore {
    pub n: usize,
    pub ngram: Binary,
    pub embedded: Binary,
    /// Over the rows with an encoder reading (`cascade_n` of them).
    pub cascade: Binary,
    pub cascade_n: usize,
    /// Rows the cascade escalated to the encoder.
    pub escalated: usize,
}

/// Scores by (source, language) over whole answers, plus `all` per source.
pub fn score(
    rows: &[Row],
    sources: &[Source],
    decisions: &[Option<Decisions>],
    thresholds: &[Thresholds],
) -> BTreeMap<(String, String), GroupScore> {
    let mut out: BTreeMap<(String, String), GroupScore> = BTreeMap::new();
    for (r, d) in rows.iter().zip(decisions) {
        let Some(d) = d else { continue };
        if r.window {
            continue;
        }
        let gold = r.label != ResponseLabel::Answer;
        let t = thresholds[r.source];
        for lang in [r.lang.as_str(), "all"] {
            let g = out
                .entry((sources[r.source].name.clone(), lang.to_string()))
                .or_default();
            g.n += 1;
            g.ngram.count(gold, d.ngram != ResponseLabel::Answer);
            g.embedded
                .count(gold, d.embedded_label(t.whole) != ResponseLabel::Answer);
            if let Some(c) = d.cascade_at(&t) {
                g.cascade.count(gold, c != ResponseLabel::Answer);
                g.cascade_n += 1;
            }
            g.escalated += usize::from(d.escalated(&t.band));
        }
    }
    out
}

/// What the stream window alone decides, per (source, language).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WindowScore {
    /// Explicit refusals (label `refusal`) whose window is judged a non-answer: the
    /// 16-token target.
    pub refusals_stopped: usize,
    pub refusals: usize,
    /// Answers whose window is judged a non-answer: a good stream held back or re-routed.
    pub answers_stopped: usize,
    pub answers: usize,
}

/// The stream window's decisions per (source, language), each source at its threshold.
pub fn window_recall(
    rows: &[Row],
    sources: &[Source],
    decisions: &[Option<Decisions>],
    thresholds: &[Thresholds],
) -> BTreeMap<(String, String), WindowScore> {
    let mut out: BTreeMap<(String, String), WindowScore> = BTreeMap::new();
    for (r, d) in rows.iter().zip(decisions) {
        let Some(d) = d else { continue };
        if !r.window || !matches!(r.label, ResponseLabel::Refusal | ResponseLabel::Answer) {
            continue;
        }
        let stopped = d.embedded_label(thresholds[r.source].window) != ResponseLabel::Answer;
        for lang in [r.lang.as_str(), "all"] {
            let e = out
                .entry((sources[r.source].name.clone(), lang.to_string()))
                .or_default();
            if r.label == ResponseLabel::Refusal {
                e.refusals += 1;
                e.refusals_stopped += usize::from(stopped);
            } else {
                e.answers += 1;
                e.answers_stopped += usize::from(stopped);
            }
        }
    }
    out
}

/// `hit/n = rate`, or `-` when there is nothing to count: a cell of the report's tables.
pub(super) fn rate(hit: usize, n: usize) -> String {
    if n == 0 {
        "-".to_string()
    } else {
        format!("{hit}/{n} = {:.3}", hit as f64 / n as f64)
    }
}

/// The mean of some scores or rates (0 for none).
fn mean(values: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, n) = values.into_iter().fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    sum / n.max(1) as f64
}

/// The median of some rates (0 for none).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Renders the leave-one-source-out table as Markdown.
pub fn render(
    scores: &BTreeMap<(String, String), GroupScore>,
    windows: &BTreeMap<(String, String), WindowScore>,
    with_encoder: bool,
    window: (usize, &str),
) -> String {
    let f = |p: Prf| format!("{:.3} / {:.3} / {:.3}", p.precision, p.recall, p.f1);
    let mut s = String::from(
        "| held-out source | lang | n | n-gram alone P / R / F1 | embedded default P / R / F1 |",
    );
    if with_encoder {
        s.push_str(" n (encoder subset) | cascade P / R / F1 | escalated |");
    }
    s.push_str(&format!(
        " refusals stopped in the {}-token window ({}) | answers stopped in it |\n|---|---|---|---|---|---|",
        window.0, window.1
    ));
    if with_encoder {
        s.push_str("---|---|---|");
    }
    s.push_str("---|\n");
    for ((src, lang), g) in scores {
        let w = windows
            .get(&(src.clone(), lang.clone()))
            .copied()
            .unwrap_or_default();
        let w = format!(
            "{} | {}",
            rate(w.refusals_stopped, w.refusals),
            rate(w.answers_stopped, w.answers)
        );
        s.push_str(&format!(
            "| {src} | {lang} | {} | {} | {} |",
            g.n,
            f(g.ngram.prf()),
            f(g.embedded.prf())
        ));
        if with_encoder {
            s.push_str(&format!(
                " {} | {} | {:.3} |",
                g.cascade_n,
                f(g.cascade.prf()),
                g.escalated as f64 / g.cascade_n.max(1) as f64
            ));
        }
        s.push_str(&format!(" {w} |\n"));
    }
    s
}

/// Trains the shipped heads on every row.
pub fn final_ngram(rows: &[Row], cfg: &FitConfig) -> Result<NgramHead, ClassifyError> {
    let train = examples(rows, |_| true);
    train_ngram_head(&train, &RESPONSE_LABELS, cfg.features, &cfg.ngram, |_, _| {})
}

/// The encoder head on every row with a vector.
pub fn final_encoder_head(
    rows: &[Row],
    vectors: &[Option<Vec<f32>>],
    cfg: &FitConfig,
) -> Result<LinearHead, ClassifyError> {
    train_encoder_head(rows, vectors, |_| true, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(source: usize, text: &str, label: ResponseLabel) -> Row {
        Row {
            source,
            lang: "en".into(),
            prompt: None,
            text: text.into(),
            label,
            window: false,
            weight: 1.0,
            group: source,
        }
    }

    #[test]
    fn the_encoder_head_skips_the_sources_it_is_told_to() {
        // Source 1 labels the same vectors the other way round; skipped, it cannot pull.
        let mut rows = Vec::new();
        let mut vectors = Vec::new();
        for s in 0..2 {
            for _ in 0..5 {
                let (r, a) = if s == 0 {
                    (ResponseLabel::Refusal, ResponseLabel::Answer)
                } else {
                    (ResponseLabel::Answer, ResponseLabel::Refusal)
                };
                rows.push(row(s, "x", r));
                vectors.push(Some(vec![1.0, 0.0]));
                rows.push(row(s, "y", a));
                vectors.push(Some(vec![0.0, 1.0]));
            }
        }
        let refusal = |cfg: &FitConfig| {
            let head = final_encoder_head(&rows, &vectors, cfg).unwrap();
            encoder_judge(&head, &[1.0, 0.0]).probs[ResponseLabel::Refusal.index()]
        };
        let skip = FitConfig {
            encoder_skip: vec![1],
            ..FitConfig::default()
        };
        assert!(refusal(&skip) > 0.8, "{}", refusal(&skip));
        let both = refusal(&FitConfig::default());
        assert!(both < 0.7, "with both sources the head cannot tell: {both}");
    }

    #[test]
    fn source_weights_even_out_sources_and_count_the_team_as_one() {
        let sources: Vec<Source> = ["big", "small", "team:a", "team:b"]
            .iter()
            .map(|n| Source {
                name: n.to_string(),
                files: Vec::new(),
            })
            .collect();
        // 8 rows of "big", 2 of "small", 1 each of the two team files (2 as one source).
        let mut rows: Vec<Row> = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3]
            .iter()
            .map(|&s| row(s, "x", ResponseLabel::Answer))
            .collect();
        let total = |rows: &[Row], s: usize| {
            rows.iter()
                .filter(|r| r.source == s)
                .map(|r| r.weight)
                .sum::<f32>()
        };
        weigh_sources(&mut rows, &sources, 0.0);
        assert!(rows.iter().all(|r| r.weight == 1.0));
        weigh_sources(&mut rows, &sources, 1.0);
        let mean = rows.iter().map(|r| r.weight).sum::<f32>() / rows.len() as f32;
        assert!((mean - 1.0).abs() < 1e-5, "mean {mean}");
        // Every source (the team's two files together) weighs the same in all.
        let (big, small, team) = (
            total(&rows, 0),
            total(&rows, 1),
            total(&rows, 2) + total(&rows, 3),
        );
        assert!(
            (big - small).abs() < 1e-4 && (big - team).abs() < 1e-4,
            "{big} {small} {team}"
        );
        assert_eq!(rows[10].weight, rows[11].weight);
        weigh_sources(&mut rows, &sources, 0.5);
        assert!(
            total(&rows, 0) > total(&rows, 1),
            "half the power keeps some of the size"
        );
        assert!(rows[0].weight < rows[8].weight);
        // Pooling for thresholds: the team's files share one group, the others keep theirs.
        assert_eq!((rows[10].group, rows[11].group), (2, 3));
        pool_team_sources(&mut rows, &sources);
        let groups: Vec<usize> = rows.iter().map(|r| r.group).collect();
        assert_eq!(groups, [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 2]);
    }

    #[test]
    fn the_answer_subset_caps_whole_answers_and_windows_apart() {
        let mut rows: Vec<Row> = (0..6)
            .map(|i| row(0, &format!("text {i}"), ResponseLabel::Refusal))
            .collect();
        for r in &mut rows[3..] {
            r.window = true;
        }
        rows.push(row(1, "other source", ResponseLabel::Refusal));
        let keep = answer_subset(&rows, 2);
        let kept = |window: bool| (0..6).filter(|&i| keep[i] && rows[i].window == window).count();
        assert_eq!((kept(false), kept(true)), (2, 2));
        assert!(keep[6], "each source has its own cap");
    }

    #[test]
    fn each_source_is_predicted_by_a_model_that_never_saw_it() {
        // Source 1 holds the only example of a word; a model trained without it cannot know
        // it, so its out-of-source prediction must not be confident about that word's label.
        let mut rows = Vec::new();
        for i in 0..60 {
            rows.push(row(
                0,
                &format!("I'm sorry, but I can't help with item {i}."),
                ResponseLabel::Refusal,
            ));
            rows.push(row(
                0,
                &format!("Sure, here are the steps for task {i}: first, open it."),
                ResponseLabel::Answer,
            ));
        }
        rows.push(row(1, "zxqv zxqv zxqv", ResponseLabel::Refusal));
        let cfg = FitConfig::default();
        let p = out_of_source(&rows, 2, None, &cfg, |_| {}).unwrap();
        let last = p.ngram.last().unwrap();
        assert!(last.confidence() < 0.95, "{last:?}");
        // Source 0's own rows were predicted by a model trained on source 1 alone: one row.
        assert!(p.ngram[0].confidence() < 0.99, "{:?}", p.ngram[0]);
    }

    /// Class probabilities with `non_answer` on refusal and the rest on answer.
    fn probs(non_answer: f32) -> [f32; 4] {
        let mut p = [0f32; 4];
        p[ResponseLabel::Answer.index()] = 1.0 - non_answer;
        p[ResponseLabel::Refusal.index()] = non_answer;
        p
    }

    /// Sources with these names and no files (the tables only read names).
    fn named_sources(names: &[&str]) -> Vec<Source> {
        names
            .iter()
            .map(|n| Source {
                name: n.to_string(),
                files: vec![],
            })
            .collect()
    }

    const HALF: Thresholds = Thresholds {
        whole: 0.5,
        escalated: 0.5,
        window: 0.5,
        band: EscalationBand::ALWAYS,
        wide_band: EscalationBand::ALWAYS,
    };
    const STRICT: Thresholds = Thresholds {
        whole: 0.95,
        escalated: 0.95,
        window: 0.95,
        band: EscalationBand::ALWAYS,
        wide_band: EscalationBand::ALWAYS,
    };

    #[test]
    fn scores_count_whole_answers_only() {
        let mut rows = vec![
            row(0, "no", ResponseLabel::Refusal),
            row(0, "yes it is", ResponseLabel::Answer),
        ];
        rows.push(Row {
            window: true,
            ..row(0, "no", ResponseLabel::Refusal)
        });
        let d = Decisions {
            ngram: ResponseLabel::Refusal,
            embedded: [0.1, 0.6, 0.2, 0.1],
            with_encoder: Some([0.1, 0.6, 0.2, 0.1]),
        };
        let sources = vec![Source {
            name: "s".into(),
            files: vec![],
        }];
        let scores = score(&rows, &sources, &[Some(d), Some(d), Some(d)], &[HALF]);
        let all = &scores[&("s".to_string(), "all".to_string())];
        assert_eq!(all.n, 2);
        assert_eq!((all.embedded.tp, all.embedded.fp), (1, 1));
        let w = window_recall(&rows, &sources, &[Some(d), Some(d), Some(d)], &[HALF]);
        let w = w[&("s".to_string(), "all".to_string())];
        assert_eq!((w.refusals_stopped, w.refusals, w.answers), (1, 1, 0));
        // At a threshold above the non-answer mass (0.9) everything is an answer.
        let strict = score(&rows, &sources, &[Some(d), Some(d), Some(d)], &[STRICT]);
        assert_eq!(strict[&("s".to_string(), "all".to_string())].embedded.tp, 0);
    }

    #[test]
    fn the_band_sweep_trades_encoder_calls_for_held_out_f1() {
        // Each source: an unsure refusal the encoder reads right, an unsure answer, a sure
        // refusal and a sure answer.
        let mut rows = Vec::new();
        let mut decisions = Vec::new();
        for source in 0..2 {
            for (label, embedded, encoder) in [
                (ResponseLabel::Refusal, 0.4, 0.9),
                (ResponseLabel::Answer, 0.45, 0.1),
                (ResponseLabel::Refusal, 0.9, 0.9),
                (ResponseLabel::Answer, 0.05, 0.05),
            ] {
                rows.push(row(source, "whole", label));
                decisions.push(Some(Decisions {
                    ngram: ResponseLabel::Answer,
                    embedded: probs(embedded),
                    with_encoder: Some(probs(encoder)),
                }));
            }
        }
        let nested = [HALF, HALF];
        let points = band_sweep(&rows, 2, &decisions, &nested, &[0.0, 0.25, 1.0]);
        // No encoder: the unsure refusal is missed (P 1, R 0.5).
        assert!((points[0].mean_f1() - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(points[0].rate(|_| true), 0.0);
        // A quarter of the rows is enough to catch it ([0.35, 0.45) holds only it).
        assert_eq!(points[1].mean_f1(), 1.0);
        assert_eq!(points[1].rate(|_| true), 0.25);
        // Without a cap the same F1, and a tie goes to the cheaper band.
        assert_eq!(points[2].mean_f1(), 1.0);
        assert_eq!(points[2].rate(|_| true), 0.25);
        let sources = named_sources(&["gptfuzz", "team:x"]);
        let table = render_band_sweep(&points, &sources);
        assert!(
            table.contains("| 0% | 0.667 | 0.667 | 0.667 | 0.000 | 0.000 |"),
            "{table}"
        );
        assert!(
            table.contains("| none | 1.000 | 1.000 | 1.000 | 0.250 | 0.250 |"),
            "{table}"
        );
    }

    #[test]
    fn asking_the_encoder_about_unsure_windows_is_measured_out_of_source() {
        let window = |source, label| Row {
            window: true,
            ..row(source, "w", label)
        };
        let rows = vec![
            // Source 0: an unsure refusal window the encoder reads as a refusal, a sure answer
            // window, and a whole answer (not a window: not counted).
            window(0, ResponseLabel::Refusal),
            window(0, ResponseLabel::Answer),
            row(0, "whole", ResponseLabel::Refusal),
            // Source 1: an unsure answer window the encoder reads as an answer, a sure refusal
            // window, and a window with no encoder reading (not counted).
            window(1, ResponseLabel::Answer),
            window(1, ResponseLabel::Refusal),
            window(1, ResponseLabel::Refusal),
        ];
        let d = |embedded: f32, encoder: Option<f32>| {
            Some(Decisions {
                ngram: ResponseLabel::Answer,
                embedded: probs(embedded),
                with_encoder: encoder.map(probs),
            })
        };
        let decisions = vec![
            d(0.4, Some(0.9)),
            d(0.05, Some(0.05)),
            d(0.9, Some(0.9)),
            d(0.3, Some(0.1)),
            d(0.8, Some(0.8)),
            d(0.3, None),
        ];
        let band = Thresholds {
            band: EscalationBand { from: 0.2, to: 0.5 },
            ..HALF
        };
        let sources = named_sources(&["a", "b"]);
        let (scores, chosen) = window_escalation(&rows, &sources, &decisions, &[band, band]);
        // Each threshold is the lowest at which the other source's answer windows stay
        // unstopped: 0.15 for both here.
        assert_eq!(chosen, vec![0.15, 0.15]);
        let all = |name: &str| scores[&(name.to_string(), "all".to_string())];
        // Source 0: the unsure refusal is stopped only when the encoder is asked.
        let a = WindowEscalation {
            refusals: 1,
            refusals_stopped: 0,
            refusals_stopped_with_encoder: 1,
            answers: 1,
            answers_stopped: 0,
            answers_stopped_with_encoder: 0,
            escalated: 1,
        };
        assert_eq!(all("a"), a);
        // Source 1: the unsure answer stays an answer; the sure refusal is stopped either way.
        let b = WindowEscalation {
            refusals_stopped: 1,
            ..a
        };
        assert_eq!(all("b"), b);
        let sweep = window_escalation_sweep(&rows, &decisions, &[band, band]);
        assert_eq!(sweep[0], (None, 0.5, 0.0), "the embedded default alone");
        assert_eq!(sweep[1], (Some(0.15), 1.0, 0.0));
        // At 0.95 the encoder's 0.9 no longer stops source 0's refusal.
        assert_eq!(sweep.last().unwrap(), &(Some(0.95), 0.5, 0.0));
    }

    #[test]
    fn threshold_is_chosen_on_the_admitted_sources_only() {
        // Source 0 needs a low threshold (its refusal has non-answer mass 0.3), source 1
        // a high one (its answer has non-answer mass 0.6).
        let rows = vec![
            row(0, "a", ResponseLabel::Refusal),
            row(0, "b", ResponseLabel::Answer),
            row(1, "c", ResponseLabel::Refusal),
            row(1, "d", ResponseLabel::Answer),
        ];
        let dec = |p: [f32; 4]| {
            Some(Decisions {
                ngram: ResponseLabel::Answer,
                embedded: p,
                with_encoder: None,
            })
        };
        let decisions = vec![
            dec([0.7, 0.3, 0.0, 0.0]),
            dec([0.95, 0.05, 0.0, 0.0]),
            dec([0.1, 0.9, 0.0, 0.0]),
            dec([0.4, 0.6, 0.0, 0.0]),
        ];
        let t0 = choose_threshold(&rows, &decisions, Question::Whole, |s| s == 0);
        assert!(t0 <= 0.3 && t0 > 0.05, "{t0}");
        let t1 = choose_threshold(&rows, &decisions, Question::Whole, |s| s == 1);
        assert!(t1 > 0.6 && t1 <= 0.9, "{t1}");
        let nested: Vec<f32> = nested_thresholds(&rows, 2, &decisions, 1.0)
            .iter()
            .map(|t| t.whole)
            .collect();
        assert_eq!(nested, vec![t1, t0]);
    }

    #[test]
    fn the_cap_bounds_escalations_over_every_whole_answer() {
        // On the encoder subset, two refusals and two answers the embedded default cannot
        // tell apart (0.42 each) and the encoder can; outside it, eight answers at 0.3 (no
        // encoder reading: they cannot be scored through the cascade, but a band that holds
        // them sends them to the encoder all the same).
        let mut rows = Vec::new();
        let mut decisions = Vec::new();
        let mut push = |label, embedded, encoder: Option<f32>, window| {
            rows.push(Row {
                window,
                ..row(0, "t", label)
            });
            decisions.push(Some(Decisions {
                ngram: ResponseLabel::Answer,
                embedded: probs(embedded),
                with_encoder: encoder.map(probs),
            }));
        };
        for _ in 0..2 {
            push(ResponseLabel::Refusal, 0.42, Some(0.9), false);
            push(ResponseLabel::Answer, 0.42, Some(0.1), false);
        }
        for _ in 0..8 {
            push(ResponseLabel::Answer, 0.3, None, false);
        }
        // A window in the band is not a whole answer: it never counts.
        push(ResponseLabel::Answer, 0.3, None, true);
        let wide = EscalationBand { from: 0.2, to: 0.5 };
        let narrow = EscalationBand { from: 0.4, to: 0.45 };
        assert_eq!(escalation_rate(&rows, &decisions, &wide, |_| true), 1.0);
        assert_eq!(escalation_rate(&rows, &decisions, &narrow, |_| true), 4.0 / 12.0);
        // Asking the encoder about the 0.42s makes the cascade right (F0.5 1); without it
        // the best it can do is P 0.5, R 1. A third of the answers fits a 40% cap; under
        // 20% no band holds them, and the band chosen asks nothing.
        for (cap, right) in [(1.0, true), (0.4, true), (0.2, false)] {
            let t = Thresholds::choose(&rows, &decisions, |_| true, cap);
            let rate = escalation_rate(&rows, &decisions, &t.band, |_| true);
            assert!(rate <= cap, "cap {cap}: band {:?} escalates {rate}", t.band);
            let f = cascade_mean_f1(&rows, &decisions, &t, |_| true);
            assert_eq!(f == 1.0, right, "cap {cap}: band {:?}, F0.5 {f}", t.band);
        }
        assert!(Thresholds::choose(&rows, &decisions, |_| true, 0.4)
            .band
            .contains(&probs(0.42)));
    }
}
