//! `refusal-guard train`: retrain the shipped models and print the proof that they
//! generalise.
//!
//! Without input files it rebuilds the shipped weights from what their licences allow, whole
//! files: speechmap, gptfuzz and jade (Apache-2.0 / MIT) and the team's own examples
//! (models/data/, models/refusal-ngram/examples.jsonl) for the answer head and the combiner;
//! the permissive prompts/ files, deccp's prompts and the team's contrast pairs for the
//! prompt head. Do-Not-Answer is never trained on (licence). Every figure it prints is
//! leave-one-source-out ([`crate::judge::fit`]). With `--responses` / `--prompts` it trains
//! on your own labelled JSON Lines instead (labels `answer` / `refusal` / `evasion` /
//! `inability`, or the upstream ones; prompts with a boolean `harmful`), each file one
//! source.
//!
//! The same inputs, flags and binary give the same files byte for byte (seeded shuffles,
//! rows in file order, full-batch fits; metadata written in sorted order by
//! [`crate::classify::weights_file`]), but for the `trained` date in their metadata: a
//! difference in `sha256sum` on the same day means the inputs or the code differed.
//!
//! The answer side (`answers`: the response heads and the combiner) runs first and starts
//! the report; the prompt side (`prompts`: the prompt-harm heads and e5's tuned prompt
//! layer) appends to it; `run` saves what both return.

mod answers;
mod prompts;
mod short;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use clap::Args;

use crate::classify::data::{short_name, Provenance, PERMISSIVE_PROMPT_FILES};
use crate::classify::e5::{self, E5Encoder};
use crate::classify::encoder::Heads;
use crate::classify::features::FeatureConfig;
use crate::classify::ngram::{NgramHead, NgramModel, PromptLanguages};
use crate::classify::train::{LinearHead, TrainConfig};
use crate::classify::ClassifyError;
use crate::judge::fit::{
    embed_cached, pool_team_sources, read_rows, shipped_sources, weigh_sources, FitConfig, Source,
    ESCALATION_CAP,
};

/// Which prompt files the fine-tuned layer is also trained without (`--tune-folds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TuneFolds {
    /// The contrast-style files (`judge::fit::is_contrast_style`), the hard case.
    Contrast,
    /// Every file (about six minutes each).
    All,
    /// None: the layer is trained once, on every file, and not measured.
    None,
}

/// How the fine-tuned prompt layer's weights are held (`--prompt-weights`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PromptWeights {
    /// f32: the tuning's values as they are; the layer runs on the f32 kernel.
    F32,
    /// Tuned and shipped on the 4-bit grid of the pretrained layers
    /// (`classify::packed::round_to_four_bit_grid`): the layer runs on the 8-bit kernel.
    FourBit,
}

/// How e5 runs its products over 8-bit weights (`--activations`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Activations {
    /// Quantize the activations to 8 bits too (AVX2, or AVX-512 with VNNI; f32 where no
    /// kernel takes them).
    Int8,
    /// Keep the activations exact.
    F32,
}

/// Arguments of `train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Where to write the n-gram model (safetensors).
    #[arg(long, default_value = "models/refusal-ngram/model.safetensors")]
    pub out: PathBuf,
    /// Where to write the combiner (safetensors).
    #[arg(long, default_value = "models/combiner/combiner.safetensors")]
    pub combiner_out: PathBuf,
    /// The encoder tier to train heads for and to stack into the combiner: `e5`, `none`, or
    /// `auto` (e5 when it is installed).
    #[arg(long, default_value = "auto", value_name = "auto|e5|none")]
    pub encoder: String,
    /// Where to write the e5 heads.
    #[arg(long, default_value = "models/e5-heads/heads.safetensors")]
    pub encoder_out: PathBuf,
    /// At most this many answers per (source, label) get a sentence vector (and half as
    /// many prompts per (file, label)). Every answer and window of the shipped sources
    /// (a cap of 1000000) embeds in about 13 minutes more on two cores, and read the
    /// held-out sources no better (models/combiner/README.md, 2026-12-07).
    #[arg(long, default_value_t = 700)]
    pub encoder_cap: usize,
    /// How many of e5's 12 layers the answer head reads through (12: all). Shallower costs
    /// less; on the shipped data 12 reads the shared sources best (models/e5-heads/README.md,
    /// `examples/e5_depth_probe.rs`).
    #[arg(long, default_value_t = 12)]
    pub answer_depth: usize,
    /// How e5 runs its products over 8-bit weights: `int8` quantizes the activations too
    /// (AVX2, or AVX-512 with VNNI, the same sums on both; about twice as fast, cosine >=
    /// 0.9995 to f32; f32 where no kernel takes them), `f32` keeps them exact. The heads
    /// record it and the tier runs e5 the same way.
    #[arg(long, value_enum, default_value_t = Activations::Int8)]
    pub activations: Activations,
    /// The embedding cache (sentence vectors of the training texts).
    #[arg(long, default_value = ".cache/embeddings/e5.bin")]
    pub embedding_cache: PathBuf,
    /// Where to write the leave-one-source-out table (Markdown).
    #[arg(long, default_value = "models/combiner/loso.md")]
    pub report: PathBuf,
    /// Labelled response files of your own. Every labeled row is used; a row whose label is
    /// empty or `null` (a review queue from `audit --review` not yet reviewed) is skipped.
    #[arg(long = "responses", value_name = "FILE")]
    pub responses: Vec<PathBuf>,
    /// Leaves one shipped response source out of the run, by the name the training log and
    /// the leave-one-source-out table give it (`gptfuzz`, `speechmap`, `jade`,
    /// `team:responses-zh`, …) or its file name, so that it can stand for traffic the
    /// models never read: the part of it an operator labeled comes back with `--responses`,
    /// and the rest measures what those labels bought (docs/operator-labels.md).
    /// Repeatable; a name that is not a shipped source is an error.
    #[arg(long = "response-exclude", value_name = "SOURCE")]
    pub response_exclude: Vec<String>,
    /// Labelled prompt files of your own (rows with a boolean `harmful`).
    #[arg(long = "prompts", value_name = "FILE")]
    pub prompts: Vec<PathBuf>,
    /// Leaves one of the shipped prompt files out of the run, by file name (e.g.
    /// `speechmap_criticism_nonqwen.jsonl`), so that the prompt judgment can be measured on
    /// a file, or a part of one given back with `--prompts`, that it never read. Repeatable;
    /// a name that is not a shipped prompt file is an error.
    #[arg(long = "prompt-exclude", value_name = "FILE_NAME")]
    pub prompt_exclude: Vec<String>,
    /// Labelled prompt files for the n-gram prompt head only: the e5 prompt parts never
    /// read them (the shipped ones are models/data/ngram/prompts-*.jsonl).
    #[arg(long = "ngram-prompts", value_name = "FILE")]
    pub ngram_prompts: Vec<PathBuf>,
    /// Add the shipped training data (licence-cleared shared datasets and the project's
    /// examples) to your files. Implied when no file is given.
    #[arg(long)]
    pub shipped: bool,
    /// The shared datasets folder (default: found next to the repository).
    #[arg(long)]
    pub datasets: Option<PathBuf>,
    /// Embedding width.
    #[arg(long, default_value_t = 16)]
    pub dim: usize,
    /// Hash buckets (rows of each embedding table), a power of two is best.
    #[arg(long, default_value_t = 1 << 16)]
    pub buckets: u32,
    #[arg(long, default_value_t = 8)]
    pub epochs: usize,
    #[arg(long, default_value_t = 0.2)]
    pub lr: f64,
    #[arg(long, default_value_t = 17)]
    pub seed: u64,
    /// Class weights are frequency^-POWER (1: balanced classes, 0: none).
    #[arg(long, default_value_t = 1.0)]
    pub class_weight_power: f32,
    /// Rows are weighted by their source's size to the power -POWER (0: every row alike, 1: every source
    /// alike; the team's files count as one source), in the n-gram model, the encoder's answer head and the
    /// combiner. A measurement: weighting was worse held out (models/combiner/README.md).
    #[arg(long, default_value_t = 0.0)]
    pub source_weight_power: f32,
    /// Chooses the thresholds and the escalation band with the team's files scored as one source
    /// (`judge::fit::pool_team_sources`), not each file as its own. A measurement: worse held out.
    #[arg(long)]
    pub pool_team_sources: bool,
    /// Sources (by name, e.g. `gptfuzz`) the encoder's answer head is not trained on; the n-gram model and the
    /// combiner still are. Repeatable. A measurement: no outside source gained.
    #[arg(long = "encoder-skip", value_name = "SOURCE")]
    pub encoder_skip: Vec<String>,
    /// Chooses the shipped thresholds and escalation band on these sources alone (by name,
    /// e.g. the file name of your own `--responses`), not on the mean over every source: the
    /// thresholds that read your traffic best. Repeatable. The leave-one-source-out table
    /// still scores each source at thresholds chosen without it. A measurement: on a review
    /// queue of 200 it read the rest of the traffic no better than the mean over sources,
    /// and raised the stream window's threshold to 0.85-0.95 (docs/operator-labels.md).
    #[arg(long = "thresholds-on", value_name = "SOURCE")]
    pub thresholds_on: Vec<String>,
    /// Passes of fine-tuning one of e5's layers (`--prompt-depth`) for prompt harm (0: the prompt head reads the
    /// frozen sentence vectors instead). About two minutes a pass on two cores. Two passes
    /// were measured and launder more framed harmful requests (models/e5-heads/README.md).
    #[arg(long, default_value_t = 3)]
    pub tune_epochs: usize,
    /// Which of e5's 12 layers is fine-tuned for prompt harm (1-based; the layers after it
    /// are not run for prompts). 12 is the last.
    #[arg(long, default_value_t = 8)]
    pub prompt_depth: usize,
    /// How the fine-tuned prompt layer's weights are tuned and shipped: `four-bit` (on the
    /// grid of the pretrained layers, so the layer runs on the 8-bit kernel as they do: a
    /// prompt costs about 14% less on AVX2), or `f32`. models/e5-heads/README.md has what
    /// each costs and scores.
    #[arg(long, value_enum, default_value_t = PromptWeights::FourBit)]
    pub prompt_weights: PromptWeights,
    /// Learning rate of the fine-tuned prompt layer (its head learns at 2e-3). 3e-4 ships
    /// with `four-bit`: on the grid a weight moves only once its change passes half a step,
    /// and at the 5e-5 that f32 layers were tuned with few did (models/e5-heads/README.md).
    #[arg(long, default_value_t = 3e-4)]
    pub prompt_layer_lr: f64,
    /// The last share of the prompt layer's tuning steps (0 to 1) whose values are averaged
    /// into the layer and head that ship (stochastic weight averaging); 0 ships the last
    /// step's values. A measurement: 0.5 read the held-out files and the harm development
    /// set no better (models/e5-heads/README.md).
    #[arg(long, default_value_t = 0.0, value_parser = parse_share)]
    pub prompt_average_last: f64,
    /// Which prompt files the fine-tuned layer is also trained without, to measure it on
    /// them: `contrast` (the contrast-style files, the hard case), `all` (every file, about
    /// six minutes each), or `none`.
    #[arg(long, value_enum, default_value_t = TuneFolds::Contrast)]
    pub tune_folds: TuneFolds,
    /// Keeps the e5 prompt head and fine-tuned prompt layer of this heads file instead of training them (and skips
    /// the tuning): for retraining the answer side without moving the prompt-harm judgment, whose tuning takes
    /// about 36 minutes and moves a held-out file's benign-flagged share by up to 0.15 from run to run.
    #[arg(long, value_name = "HEADS")]
    pub prompt_parts_from: Option<PathBuf>,
    /// Passes of fine-tuning e5's answer layer (the one at `--answer-depth`) with the
    /// response head; 0 (shipped): the head reads the frozen sentence vectors. Out of
    /// source, the layer is tuned once without each source (the team's files held out
    /// together), then on everything: about three minutes a pass each, on two cores. Tuned
    /// layer 12 read the shared sources no better than the frozen one
    /// (models/e5-heads/README.md, `examples/e5_depth_probe.rs` with `RG_PROBE_TUNE`).
    #[arg(long, default_value_t = 0)]
    pub answer_tune_epochs: usize,
    /// Also write the combiner's training rows to this file (JSON lines: each row's source,
    /// language, label, request and text, and its features out of source, without and with
    /// the encoder's reading), so that other combiner forms, and inputs the crate does not
    /// have yet, can be measured on exactly what the shipped one is fitted on
    /// (`scripts/combiner_probe.py`; models/combiner/README.md). The file holds the training
    /// texts: about 70 MB for the default sources.
    #[arg(long, value_name = "FILE")]
    pub stack_out: Option<PathBuf>,
    /// Also write every prompt row with its out-of-file harm probabilities (the n-gram head,
    /// e5's head over frozen vectors, the fine-tuned layer where its file was held out) as
    /// JSON lines, so that another way of joining the prompt judges can be measured without
    /// tuning again (a few MB).
    #[arg(long, value_name = "FILE")]
    pub prompt_stack_out: Option<PathBuf>,
    /// The most of the training data's whole answers (0 to 1) the escalation band may send to
    /// the encoder: the band is the best of those under the cap (`judge::fit::choose_band`).
    /// The encoder is nearly all of the cascade's cost, so this share sets its mean cost per
    /// answer; 1 lifts the cap. The band chosen without the cap is kept as well (the tier
    /// `e5:wide`). loso.md's "What the escalation band costs and buys" shows what each
    /// cap gives out of source.
    #[arg(long, value_name = "SHARE", default_value_t = ESCALATION_CAP, value_parser = parse_share)]
    pub escalation_cap: f64,
    /// What a token of the stream windows trained on and scored is: `words` (a word or a
    /// CJK character: what the shipped models were trained with) or `qwen` (Qwen's BPE,
    /// what the gateway's guard counts; measured and not shipped, models/combiner/README.md,
    /// "Windows cut in Qwen's tokens").
    #[arg(long, value_enum, default_value_t = crate::tokens::StreamTokens::Words)]
    pub stream_tokens: crate::tokens::StreamTokens,
    /// Trains only the short-reply heads (`classify::short_head`: the embedded default's
    /// n-gram head, and e5's where `--encoder` gives it) on the short whole answers of the
    /// sources and the short-reply files (`--short-data`), writes them to `--short-ngram-out` and `--short-out`
    /// and their leave-one-source-out report to `--short-report`, and nothing else (seconds
    /// with the embedding cache).
    #[arg(long)]
    pub short_head_only: bool,
    /// Retrains the prompt side alone (the n-gram prompt head, e5's prompt head and
    /// fine-tuned layer) and keeps the answer side of the files it rewrites: the n-gram
    /// model's response head from `--out`, e5's answer head (and layer) from
    /// `--encoder-out`; the combiner is not written. The report (`--report`) then holds the
    /// prompt tables alone, so point it away from models/combiner/loso.md. A prompt
    /// retrain then costs the prompt side's time (about 20 minutes on two cores with the
    /// embedding cache warm, against about 30 for both sides) and cannot move a verdict on
    /// an answer.
    #[arg(long, conflicts_with_all = ["short_head_only", "prompt_parts_from"])]
    pub prompt_side_only: bool,
    /// Where `--short-head-only` writes e5's head.
    #[arg(long, default_value = "models/e5-heads/short.safetensors")]
    pub short_out: PathBuf,
    /// Where `--short-head-only` writes the n-gram head.
    #[arg(long, default_value = "models/refusal-ngram/short.safetensors")]
    pub short_ngram_out: PathBuf,
    /// Where `--short-head-only` writes its report.
    #[arg(long, default_value = "models/refusal-ngram/short-loso.md")]
    pub short_report: PathBuf,
    /// The folder of short-reply files `--short-head-only` reads beside the sources (each
    /// `responses-*.jsonl` a source of its own, named `team:short/<stem>`). Default: the
    /// team's, models/data/short/ of this repository.
    #[arg(long, value_name = "DIR")]
    pub short_data: Option<PathBuf>,
}

/// A share from 0 to 1.
fn parse_share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("{s:?} is not a share from 0 to 1 (e.g. 0.04)")),
    }
}

/// Today's date (UTC) as YYYY-MM-DD, without a date crate.
pub fn today() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0) as i64;
    // Civil-from-days (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    format!("{:04}-{m:02}-{d:02}", if m <= 2 { y + 1 } else { y })
}

fn project_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(name)
}

/// The shipped prompt-head training files: speechmap's requests (benign: requests to
/// criticise governments are not harmful requests; those about China kept aside, see
/// [`crate::judge::fit::SPEECHMAP_HELD_OUT_SETS`]), the permissive prompts/ files, deccp's
/// prompts (benign: political questions a provider censors), and the
/// team's prompt files (models/refusal-ngram/prompts.jsonl, models/data/prompts-*.jsonl).
/// The n-gram prompt head also reads [`shipped_ngram_prompt_files`].
pub fn shipped_prompt_files(datasets: &Path) -> Vec<PathBuf> {
    // speechmap first: its requests about China are left out
    // (`judge::fit::SPEECHMAP_HELD_OUT_SETS`), the rest trained on.
    let mut files = vec![datasets.join("speechmap_criticism_nonqwen.jsonl")];
    files.extend(
        PERMISSIVE_PROMPT_FILES
            .iter()
            .map(|f| datasets.join("prompts").join(f)),
    );
    files.push(datasets.join("deccp_qwen2_7b.jsonl"));
    files.push(project_file("refusal-ngram/prompts.jsonl"));
    let team = crate::judge::fit::team_files(Path::new(env!("CARGO_MANIFEST_DIR")), "prompts-");
    files.extend(team);
    files
}

/// The shipped prompt files the n-gram prompt head reads and e5's prompt parts do not
/// (models/data/ngram/prompts-*.jsonl; [`crate::judge::fit::ngram_only_prompt_files`]).
pub fn shipped_ngram_prompt_files() -> Vec<PathBuf> {
    crate::judge::fit::ngram_only_prompt_files(Path::new(env!("CARGO_MANIFEST_DIR")))
}

fn find_datasets(given: Option<PathBuf>) -> Result<PathBuf, ClassifyError> {
    match given {
        Some(dir) => Ok(dir),
        None => crate::dataset::datasets_dir()
            .map_err(|e| ClassifyError::Invalid(format!("{e}, or pass --datasets"))),
    }
}

/// What one side of the training made to ship.
#[derive(Default)]
struct Trained {
    /// The n-gram model's head (response or prompt).
    ngram: Option<NgramHead>,
    /// e5's head (over frozen vectors, or over the tuned layer).
    encoder_head: Option<LinearHead>,
    /// e5's fine-tuned layer, where one was tuned.
    layer: Option<HashMap<String, Tensor>>,
    /// Where the n-gram prompt head saw both sides (the prompt side only).
    prompt_languages: Option<PromptLanguages>,
}

/// An output file created before the training starts, so that a path that cannot be
/// written fails in a second rather than after an hour; `flag` names it in errors.
struct EarlyFile {
    flag: &'static str,
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
}

impl EarlyFile {
    fn create(flag: &'static str, path: &Path) -> Result<Self, String> {
        let file = std::fs::File::create(path).map_err(|e| format!("{flag} {}: {e}", path.display()))?;
        Ok(EarlyFile {
            flag,
            path: path.to_path_buf(),
            out: std::io::BufWriter::new(file),
        })
    }

    /// An error writing the file, naming the flag and the path.
    fn error(&self, e: std::io::Error) -> String {
        format!("{} {}: {e}", self.flag, self.path.display())
    }
}

/// Sentence vectors of training texts through the embedding cache. The encoder's heads and
/// the combiner's encoder view are fitted on a capped subset (see `--encoder-cap`).
struct Embedder<'a> {
    encoder: Option<&'a E5Encoder>,
    cache: &'a Path,
}

impl Embedder<'_> {
    /// The vectors of the `texts` that `keep` selects (`None` for the others); `None`
    /// without an encoder.
    fn embed(
        &self,
        texts: Vec<&str>,
        keep: Vec<bool>,
        what: &str,
    ) -> Result<Option<Vec<Option<Vec<f32>>>>, ClassifyError> {
        let Some(enc) = self.encoder else { return Ok(None) };
        let chosen: Vec<&str> = texts
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(t, _)| *t)
            .collect();
        eprintln!(
            "embedding {} of {} {what} with {} (cached in {})",
            chosen.len(),
            texts.len(),
            e5::MODEL,
            self.cache.display()
        );
        let texts_all = texts;
        let texts = chosen;
        let mut last = std::time::Instant::now();
        let vs = embed_cached(enc, &texts, self.cache, |done, total| {
            if last.elapsed().as_secs() >= 30 || done == total {
                eprintln!("  {done}/{total} new");
                last = std::time::Instant::now();
            }
        })?;
        let mut vs = vs.into_iter();
        Ok(Some(
            texts_all
                .iter()
                .zip(&keep)
                .map(|(_, k)| if *k { vs.next() } else { None })
                .collect(),
        ))
    }
}

/// Says how many rows of an operator's own response file were left unlabeled (a review
/// queue of `audit --review` is written with `label: null`), and fails when none is
/// labeled: a file that teaches nothing is a mistake worth stopping for.
fn own_file_labels(file: &Path, used: usize) -> Result<(), Box<dyn std::error::Error>> {
    let records = crate::dataset::read_records(file)?;
    let unlabeled = records.iter().filter(|r| r.label.trim().is_empty()).count();
    if used == 0 {
        return Err(format!(
            "{}: no labeled answer to train on ({} rows, {unlabeled} with no label): fill in each \
             row's `label` (answer, refusal, evasion or inability) first",
            file.display(),
            records.len()
        )
        .into());
    }
    if unlabeled > 0 {
        eprintln!(
            "{}: {unlabeled} of {} rows have no label yet and are skipped",
            file.display(),
            records.len()
        );
    }
    // A reviewer who misspells a label ("refusl") means one; a
    // row skipped for it without a word would be a label silently lost.
    let labels = crate::dataset::LabelMap::default();
    let unused: Vec<&str> = records
        .iter()
        .filter(|r| {
            !r.label.trim().is_empty() && !r.response.trim().is_empty() && labels.response_label(r).is_none()
        })
        .map(|r| r.label.as_str())
        .collect();
    if let Some(first) = unused.first() {
        eprintln!(
            "{}: {} of {} rows have a label train does not learn from (the first: {first:?}) and are \
             skipped; the labels it learns from are answer, refusal, evasion and inability",
            file.display(),
            unused.len(),
            records.len()
        );
    }
    Ok(())
}

/// Runs `train`.
pub fn run(args: TrainArgs) -> Result<(), Box<dyn std::error::Error>> {
    let started = std::time::Instant::now();
    let shipped = args.shipped
        || (args.responses.is_empty() && args.prompts.is_empty() && args.ngram_prompts.is_empty());
    let mut sources: Vec<Source> = args
        .responses
        .iter()
        .map(|f| Source {
            name: short_name(f),
            files: vec![f.clone()],
        })
        .collect();
    let mut prov = Provenance::default();
    let mut prompt_files = args.prompts.clone();
    let mut ngram_prompt_files = args.ngram_prompts.clone();
    let mut shipped_responses = Vec::new();
    if shipped {
        let dir = find_datasets(args.datasets.clone())?;
        shipped_responses = shipped_sources(&dir, Path::new(env!("CARGO_MANIFEST_DIR")));
        prompt_files.extend(shipped_prompt_files(&dir));
        ngram_prompt_files.extend(shipped_ngram_prompt_files());
    }
    for name in &args.response_exclude {
        // By the name the training log gives it (`gptfuzz`, `team:responses-zh`) or a file name.
        let before = shipped_responses.len();
        shipped_responses.retain(|s: &Source| {
            s.name != *name
                && !s
                    .files
                    .iter()
                    .any(|f| f.file_name().is_some_and(|n| n == name.as_str()))
        });
        if shipped_responses.len() == before {
            return Err(
                format!("--response-exclude {name:?}: no shipped response source has that name").into(),
            );
        }
    }
    sources.extend(shipped_responses);
    for name in &args.prompt_exclude {
        // By the name reports give it (`prompts/coconot.jsonl`) or its file name alone.
        let named = |f: &PathBuf| short_name(f) == *name || f.file_name().is_some_and(|n| n == name.as_str());
        let before = prompt_files.len() + ngram_prompt_files.len();
        prompt_files.retain(|f| !named(f) || args.prompts.contains(f));
        ngram_prompt_files.retain(|f| !named(f) || args.ngram_prompts.contains(f));
        if prompt_files.len() + ngram_prompt_files.len() == before {
            return Err(format!("--prompt-exclude {name:?}: no shipped prompt file has that name").into());
        }
    }
    if args.short_head_only {
        return short::run(&args, sources);
    }
    let mut cfg = FitConfig {
        ngram: TrainConfig {
            dim: args.dim,
            epochs: args.epochs,
            learning_rate: args.lr,
            seed: args.seed,
            class_weight_power: args.class_weight_power,
        },
        features: FeatureConfig {
            buckets: args.buckets,
            ..FeatureConfig::default()
        },
        escalation_cap: args.escalation_cap,
        ..FitConfig::default()
    };

    let set_up = |e: E5Encoder| -> Result<E5Encoder, ClassifyError> {
        let e = e.with_answer_depth(args.answer_depth)?;
        Ok(match args.activations {
            Activations::Int8 => e.with_int8_activations(),
            Activations::F32 => e,
        })
    };
    let encoder = load_encoder(&args.encoder, "training without the e5 tier")?
        .map(set_up)
        .transpose()?;
    // Read before the hours of training, so that a wrong path fails at once.
    let kept_prompt = match (&encoder, &args.prompt_parts_from) {
        (None, Some(path)) => {
            return Err(format!(
                "--prompt-parts-from {}: the prompt parts are e5's, and this run has no e5 encoder (--encoder {})",
                path.display(),
                args.encoder
            )
            .into())
        }
        (Some(enc), Some(path)) => Some((path, prompts::kept_prompt_parts(path, enc)?)),
        _ => None,
    };
    // Likewise the stack files, opened now and written after each side's folds.
    let mut stack_out = args
        .stack_out
        .as_deref()
        .map(|p| EarlyFile::create("--stack-out", p))
        .transpose()?;
    let mut prompt_stack_out = args
        .prompt_stack_out
        .as_deref()
        .map(|p| EarlyFile::create("--prompt-stack-out", p))
        .transpose()?;
    let embedder = Embedder {
        encoder: encoder.as_ref(),
        cache: &args.embedding_cache,
    };
    // Flags that name sources of this run, as the training log names them.
    let named = |flag: &str, names: &[String]| -> Result<Vec<usize>, String> {
        names
            .iter()
            .map(|name| {
                sources
                    .iter()
                    .position(|s| &s.name == name)
                    .ok_or_else(|| format!("{flag} {name:?}: no such source"))
            })
            .collect()
    };
    cfg.encoder_skip = named("--encoder-skip", &args.encoder_skip)?;
    cfg.thresholds_on = named("--thresholds-on", &args.thresholds_on)?;
    // The guard counts the provider's tokens (Qwen's, through the logprobs the gateway asks
    // for); the shipped models were trained on windows of words and CJK characters, which a
    // retrain on Qwen's windows did not beat (models/combiner/README.md).
    let (split, _) = crate::tokens::TokenSplit::from_flag(Some(args.stream_tokens))?;
    cfg.window_unit = split.unit();
    let mut rows = read_rows(&sources, cfg.window_tokens, &split)?;
    for (i, f) in args.responses.iter().enumerate() {
        own_file_labels(f, rows.iter().filter(|r| r.source == i && !r.window).count())?;
    }
    weigh_sources(&mut rows, &sources, args.source_weight_power);
    if args.pool_team_sources {
        pool_team_sources(&mut rows, &sources);
    }
    for (i, s) in sources.iter().enumerate() {
        let whole = rows.iter().filter(|r| r.source == i && !r.window).count();
        let windows = rows.iter().filter(|r| r.source == i && r.window).count();
        eprintln!("  {whole:>6} answers (+{windows} stream windows)  {}", s.name);
        for f in &s.files {
            prov.files.push((short_name(f), whole));
        }
    }
    let answers = if args.prompt_side_only {
        kept_answer_side(&args, encoder.as_ref())?
    } else if rows.is_empty() {
        // No answers to judge: the report starts here, so that the prompt side, which
        // appends, never appends to an earlier run's report.
        write_parent(&args.report)?;
        std::fs::write(
            &args.report,
            format!(
                "# Leave-one-source-out (refusal-guard train, {})\n\nNo labelled answers in this run: prompt harm only.\n",
                today()
            ),
        )?;
        Trained::default()
    } else {
        answers::train(&args, &cfg, &sources, &rows, &embedder, stack_out.as_mut())?
    };
    let prompt_files = prompts::PromptFiles::new(prompt_files, ngram_prompt_files);
    let prompts = prompts::train(
        &args,
        &cfg,
        &prompt_files,
        &mut prov,
        &embedder,
        kept_prompt.as_ref(),
        prompt_stack_out.as_mut(),
    )?;
    let mut info = std::collections::HashMap::new();
    info.insert("trained".to_string(), today());
    info.insert("train_config".to_string(), serde_json::to_string(&cfg.ngram)?);
    info.insert("data".to_string(), serde_json::to_string(&prov.files)?);
    let prompt_languages = prompts
        .prompt_languages
        .unwrap_or_else(PromptLanguages::unrecorded);
    eprintln!(
        "the prompt head learned both sides in: {} (its reading cannot clear a request in other languages)",
        prompt_languages.codes().join(", ")
    );
    let model = NgramModel {
        response: answers.ngram,
        prompt: prompts.ngram,
        prompt_languages,
        info,
    };
    write_parent(&args.out)?;
    model.save(&args.out)?;
    if let Some(enc) = &encoder {
        let heads = Heads {
            response: answers.encoder_head,
            prompt: prompts.encoder_head,
            encoder_sha256: Some(enc.sha256().to_string()),
            prompt_layer: prompts.layer,
            answer_layer: answers.layer,
            answer_depth: Some(enc.answer_depth()),
            int8_activations: Some(enc.int8_activations()),
        };
        write_parent(&args.encoder_out)?;
        heads.save(&args.encoder_out)?;
        eprintln!("wrote {}", args.encoder_out.display());
    }
    let size = std::fs::metadata(&args.out)?.len();
    eprintln!(
        "wrote {} ({:.2} MB), {} in {:.1}s",
        args.out.display(),
        size as f64 / 1e6,
        args.combiner_out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `--prompt-side-only`: the answer side as the files to be rewritten hold it (the n-gram
/// response head of `--out`; e5's answer head and layer of `--encoder-out`, which must have
/// been trained on this encoder's weights), and a new report that says so, for the prompt
/// side to append its tables to.
fn kept_answer_side(
    args: &TrainArgs,
    encoder: Option<&E5Encoder>,
) -> Result<Trained, Box<dyn std::error::Error>> {
    let kept = |path: &Path, e: &dyn std::fmt::Display| {
        format!(
            "--prompt-side-only keeps the answer side of {}: {e}",
            path.display()
        )
    };
    let model = NgramModel::load(&args.out).map_err(|e| kept(&args.out, &e))?;
    let Some(response) = model.response else {
        return Err(kept(&args.out, &"it has no response head").into());
    };
    let mut trained = Trained {
        ngram: Some(response),
        ..Trained::default()
    };
    if let Some(enc) = encoder {
        let heads = heads_trained_on(&args.encoder_out, enc).map_err(|e| kept(&args.encoder_out, &e))?;
        if heads.answer_depth.is_some_and(|d| d != enc.answer_depth()) {
            let e = format!(
                "its answer head reads through {:?} layers, this run {} (--answer-depth)",
                heads.answer_depth,
                enc.answer_depth()
            );
            return Err(kept(&args.encoder_out, &e).into());
        }
        trained.encoder_head = heads.response;
        trained.layer = heads.answer_layer;
    }
    write_parent(&args.report)?;
    std::fs::write(
        &args.report,
        format!(
            "# Prompt harm, leave-one-file-out (refusal-guard train --prompt-side-only, {})\n\n\
             The answer side was kept from {} and {} (not retrained in this run); its tables are in the \
             report of the run that trained it.\n",
            today(),
            args.out.display(),
            args.encoder_out.display()
        ),
    )?;
    Ok(trained)
}

/// The e5 heads file at `path`, refused when it was trained on other e5 weights than
/// `enc`'s: a head reads the sentence vectors of the weights it was trained on, so over
/// others it would judge by vectors it never saw. The error says what is wrong; the caller
/// says which flag named the file.
fn heads_trained_on(path: &Path, enc: &E5Encoder) -> Result<Heads, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let heads = Heads::from_bytes(&bytes).map_err(|e| e.to_string())?;
    match heads.encoder_sha256.as_deref() {
        Some(sha) if sha != enc.sha256() => Err(format!(
            "its heads were trained on other e5 weights ({sha}, here {})",
            enc.sha256()
        )),
        _ => Ok(heads),
    }
}

/// multilingual-e5-small as `--encoder` asks for it (`flag`): `none`, none; `e5`, loaded
/// from the hf-hub cache or the error; `auto`, loaded where it is installed, else none with
/// a one-line note saying `without` and why.
fn load_encoder(flag: &str, without: &str) -> Result<Option<E5Encoder>, Box<dyn std::error::Error>> {
    match flag {
        "none" => Ok(None),
        "e5" => Ok(Some(E5Encoder::load_default()?)),
        "auto" => match E5Encoder::load_default() {
            Ok(e) => Ok(Some(e)),
            Err(e) => {
                eprintln!("note: {without} ({e})");
                Ok(None)
            }
        },
        other => Err(format!("unknown --encoder {other:?}; expected auto, e5 or none").into()),
    }
}

fn write_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir),
        _ => Ok(()),
    }
}
