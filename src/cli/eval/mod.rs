//! `refusal-guard eval FILES…`: how well the detectors agree with labeled answers.
//!
//! Runs the verdict pipeline ([`Detectors::default`]: provider signals, the built-in
//! patterns, the logprob checks, judged by the embedded models and the trained combiner;
//! `--tier` adds model tiers, `--combiner rules` measures the hand-set baseline) over JSON
//! Lines files in the schema of the shared datasets
//! ([`crate::dataset::Record`]), maps each upstream label to a class with
//! [`LabelMap`] (the mapping of datasets/README.md, overridable with `--map` and
//! `--map-file`), and reports precision, recall, F1 and the confusion matrix per file, per
//! language and per class, plus the binary answer-vs-non-answer view the targets are stated
//! in. deccp's `censored` is a prompt-level label, so deccp is reported as the rate of
//! non-answer verdicts per language, not as F1.
//!
//! The shipped models are trained on whole files (speechmap, gptfuzz, jade and the team's
//! examples), so `eval` on those files measures what was learned, not what generalises: the
//! out-of-source figures are the leave-one-source-out table of `refusal-guard train`
//! (models/combiner/loso.md). On files never trained on (Do-Not-Answer, the team's
//! regression sets in tests/data/) `eval` is out of source. `--split` picks a part of each
//! file by a hash of the record id (see [`Split`]; default `all`): the pattern rules were
//! written looking at `fit` (30%) only. `--show-errors N` prints misjudged records to help
//! fitting (with `--stream-window`, also the refusals the window released and the answers
//! it stopped, each with the text it held), and for that reason only works on the fit part.

mod render;
pub mod stream;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

pub use crate::score::{Binary, ClassScore, Prf, Tally};

use crate::dataset::{read_records, Gold, LabelMap, Record, Split};
use crate::detect::{Completeness, Detectors, Observation};
use crate::verdict::{Verdict, VerdictClass};

/// Arguments of `eval`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// Labeled JSON Lines files ({"id","source","lang","prompt","response","label","model","meta"}).
    #[arg(required = true, value_name = "FILES")]
    pub files: Vec<PathBuf>,
    /// Which part of each file: `all`, `holdout` (70%), or `fit` (30%, the part the pattern
    /// rules were written looking at).
    #[arg(long, value_enum, default_value = "all")]
    pub split: Split,
    /// Overrides one label mapping, `LABEL=class` (e.g. `DNA:1=refusal`); repeatable.
    #[arg(long = "map", value_name = "LABEL=CLASS")]
    pub map: Vec<String>,
    /// Overrides label mappings from a file of `LABEL=class` lines.
    #[arg(long, value_name = "FILE")]
    pub map_file: Option<PathBuf>,
    /// Prints the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also replays each answer as a stream through the guard with a window of N tokens
    /// and reports how many non-answers it stopped inside the window.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub stream_window: Option<u64>,
    /// What a token of the stream replay is: `qwen` (Qwen's own BPE, the provider's tokens)
    /// or `words` (a word or a CJK character). Default: `qwen` where Qwen's tokenizer is
    /// installed (scripts/setup-models.sh), else `words` with a notice.
    #[arg(long, value_enum)]
    pub stream_tokens: Option<crate::tokens::StreamTokens>,
    /// Tokens the replayed guard may hold past the window when a refusal looks to be
    /// forming (the guard's `window_extension`; 0 turns it off).
    #[arg(long, value_name = "N", default_value_t = crate::layer::guard::DEFAULT_WINDOW_EXTENSION)]
    pub window_extension: usize,
    /// Prints up to N misjudged records per file (only with `--split fit`); with
    /// `--stream-window`, also up to N of the window's mistakes per file.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub show_errors: usize,
    /// Model tiers, cheapest first: `e5`, `e5:prompts` (requests only), `e5:wide` (answers over the wide escalation band), `minilm`,
    /// `ngram:PATH`, `e5:PATH` (retrained models), `guard`, `llama-guard:NAME`, `qwen3guard:NAME`, each optionally
    /// `@THRESHOLD`; repeatable.
    /// Default: the best installed tier; `none` for the embedded default alone.
    #[arg(long = "tier", value_name = "TIER")]
    pub tiers: Vec<String>,
    /// How evidence becomes a verdict: `learned` (the shipped combiner), a combiner file
    /// from `refusal-guard train --combiner-out`, or `rules` (the hand-set baseline).
    #[arg(long, value_name = "learned|rules|PATH", default_value = "learned")]
    pub combiner: String,
}

/// The scores of one group of records, with the derived figures.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    pub counts: Tally,
    /// Non-answer (positive) vs answer.
    pub binary: Prf,
    pub accuracy: f64,
    pub per_class: BTreeMap<Gold, ClassScore>,
    /// Answers with caveats judged answers, of all answers with caveats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caveats_kept: Option<(usize, usize)>,
    /// Prompt-level records with a refusal or evasion verdict, of all prompt-level records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_level_rate: Option<(usize, usize)>,
}

impl From<&Tally> for View {
    fn from(t: &Tally) -> View {
        View {
            counts: t.clone(),
            binary: t.binary.prf(),
            accuracy: t.binary.accuracy(),
            per_class: t.per_class(),
            caveats_kept: t.caveats_kept(),
            prompt_level_rate: t.prompt_level_rate(),
        }
    }
}

/// The report of one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub file: String,
    /// Records in the chosen split.
    pub records: usize,
    pub overall: View,
    pub by_lang: BTreeMap<String, View>,
    /// Labels neither the mapping nor the class names know, with their counts: their
    /// records are excluded, and the report names them so a typo or a new dataset's label
    /// is not silently dropped (`--map LABEL=class` maps one).
    pub unmapped_labels: BTreeMap<String, usize>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub split: Split,
    pub mapping: BTreeMap<String, Gold>,
    pub files: Vec<FileReport>,
    /// Every file pooled, per language (what the per-language targets are measured on).
    pub pooled_by_lang: BTreeMap<String, View>,
}

/// A misjudged record (kept for `--show-errors`, fit split only).
#[derive(Debug, Clone)]
pub struct Miss {
    pub file: String,
    pub record: Record,
    pub gold: Gold,
    pub verdict: Verdict,
}

/// Judges one record with the detectors.
pub fn judge(detectors: &Detectors, record: &Record) -> Verdict {
    let error = record.provider_error();
    let finish = record.finish_reason();
    let observation = Observation {
        prompt: Some(&record.prompt),
        text: &record.response,
        tokens: &[],
        finish_reason: finish.as_ref(),
        error: error.as_ref(),
        completeness: Completeness::Complete,
    };
    // The built-in detectors never wait on anything: blocking on them is free.
    futures::executor::block_on(detectors.judge(&observation))
}

/// Evaluates files; returns the report and, on the fit split, the misjudged records.
pub fn evaluate(
    files: &[PathBuf],
    split: Split,
    map: &LabelMap,
    detectors: &Detectors,
) -> Result<(Report, Vec<Miss>), String> {
    let mut reports = Vec::new();
    let mut misses = Vec::new();
    let mut pooled: BTreeMap<String, Tally> = BTreeMap::new();
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let records = read_records(path)?;
        let mut overall = Tally::default();
        let mut by_lang: BTreeMap<String, Tally> = BTreeMap::new();
        let mut count = 0;
        let mut unmapped_labels: BTreeMap<String, usize> = BTreeMap::new();
        for record in records.into_iter().filter(|r| split.contains(&r.id)) {
            count += 1;
            let gold = map.gold(&record);
            if gold == Gold::Exclude {
                if !map.knows(&record) {
                    *unmapped_labels.entry(record.label_key()).or_default() += 1;
                }
                overall.excluded += 1;
                by_lang.entry(record.lang.clone()).or_default().excluded += 1;
                continue;
            }
            let verdict = judge(detectors, &record);
            let predicted = verdict.class();
            overall.add(gold, predicted);
            by_lang
                .entry(record.lang.clone())
                .or_default()
                .add(gold, predicted);
            let wrong = match gold.is_non_answer() {
                Some(non_answer) => non_answer != predicted.is_non_answer(),
                None => false,
            };
            if split == Split::Fit && wrong {
                misses.push(Miss {
                    file: name.clone(),
                    record,
                    gold,
                    verdict,
                });
            }
        }
        for (lang, t) in &by_lang {
            pooled.entry(lang.clone()).or_default().merge(t);
        }
        reports.push(FileReport {
            file: name,
            records: count,
            overall: View::from(&overall),
            by_lang: by_lang.iter().map(|(l, t)| (l.clone(), View::from(t))).collect(),
            unmapped_labels,
        });
    }
    let report = Report {
        split,
        mapping: map.entries().map(|(k, g)| (k.to_string(), g)).collect(),
        files: reports,
        pooled_by_lang: pooled.iter().map(|(l, t)| (l.clone(), View::from(t))).collect(),
    };
    Ok((report, misses))
}

/// Runs `eval`.
pub fn run(args: &EvalArgs) -> Result<(), String> {
    if args.show_errors > 0 && args.split != Split::Fit {
        return Err(
            "--show-errors only works with --split fit: the held-out part is not read line by line".into(),
        );
    }
    let mut map = LabelMap::default();
    if let Some(file) = &args.map_file {
        map.load(file)?;
    }
    for entry in &args.map {
        map.set(entry)?;
    }
    let specs = crate::classify::tiers::resolve_specs(&args.tiers);
    let detectors = crate::classify::tiers::detectors_with(&specs)
        .and_then(|d| crate::classify::tiers::with_combiner(d, &args.combiner))
        .map_err(|e| e.to_string())?;
    let (report, misses) = evaluate(&args.files, args.split, &map, &detectors)?;
    if args.json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        println!("{json}");
    } else {
        print!("{}", render::text(&report));
    }
    if args.show_errors > 0 {
        print!("{}", render::misses(&misses, args.show_errors));
    }
    if let Some(window) = args.stream_window {
        let keep_misses = args.show_errors > 0;
        let (tokens, notice) = crate::tokens::TokenSplit::from_flag(args.stream_tokens)?;
        if let Some(n) = notice {
            eprintln!("{n}");
        }
        let streaming = stream::evaluate(
            &args.files,
            args.split,
            &map,
            &detectors,
            stream::Window {
                tokens: window as usize,
                extension: args.window_extension,
                split: tokens,
            },
            keep_misses,
        )?;
        if args.json {
            let json = serde_json::to_string_pretty(&streaming).map_err(|e| e.to_string())?;
            println!("{json}");
        } else {
            print!("{}", stream::render(&streaming));
        }
        if keep_misses {
            print!("{}", stream::render_misses(&streaming.misses, args.show_errors));
        }
    }
    Ok(())
}

/// The class names of the confusion matrix's columns, in order.
pub(crate) fn predicted_columns() -> [VerdictClass; 7] {
    VerdictClass::ALL
}
