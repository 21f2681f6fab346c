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

use std::path::{Path, PathBuf};

use clap::Args;

use crate::classify::data::{
    datasets_dir, short_name, Provenance, PERMISSIVE_PROMPT_FILES, PROMPT_LABELS, RESPONSE_LABELS,
};
use crate::classify::e5::{self, E5Encoder};
use crate::classify::encoder::Heads;
use crate::classify::features::FeatureConfig;
use crate::classify::ngram::NgramModel;
use crate::classify::train::{train_ngram_head, Example, TrainConfig};
use crate::classify::ClassifyError;
use crate::judge::fit::{
    answer_subset, band_sweep, combiner_out_of_source, embed_cached, escalation_rate, final_encoder_head,
    final_ngram, is_contrast_style, judgement, nested_thresholds, out_of_source, pool_team_sources,
    prompts_out_of_source, prompts_out_of_source_vectors, read_prompt_rows, read_rows, render,
    render_band_sweep, render_harm_by_file, render_harm_sweep, render_prompts, render_window_escalation,
    score, score_prompts, shipped_sources, subset, train_combiner, train_prompt_vectors, weigh_sources,
    window_escalation, window_escalation_sweep, window_recall, write_prompt_stack, write_stack, FitConfig,
    HarmSummary, Source, Thresholds, BAND_F1_SLACK, BAND_SWEEP_CAPS, ESCALATION_CAP, MAX_WINDOW_FALSE_STOPS,
};
use crate::judge::tune::{answers_tuned, prompts_tuned, TuneConfig};
use crate::judge::NGRAM_PROMPT_FINAL_FROM;

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
    /// many prompts per (file, label)); embedding everything takes hours on two cores.
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
    /// Labelled response files of your own (all rows are used unless --fit-only).
    #[arg(long = "responses", value_name = "FILE")]
    pub responses: Vec<PathBuf>,
    /// Labelled prompt files of your own (rows with a boolean `harmful`).
    #[arg(long = "prompts", value_name = "FILE")]
    pub prompts: Vec<PathBuf>,
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
}

/// A share from 0 to 1.
fn parse_share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("{s:?} is not a share from 0 to 1 (e.g. 0.04)")),
    }
}

/// The fold a source is held out in when e5's answer layer is tuned: its own, except the
/// team's files (`team:` sources), which are held out together, so that each tuning costs
/// minutes and there are five, not fourteen.
fn answer_folds(sources: &[Source]) -> Vec<usize> {
    let team = sources.iter().position(Source::is_team);
    sources
        .iter()
        .enumerate()
        .map(|(i, s)| match team {
            Some(t) if s.is_team() => t,
            _ => i,
        })
        .collect()
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

/// The shipped prompt-head training files: the permissive prompts/ files, deccp's prompts
/// (benign: political questions a provider censors are not harmful requests), and the
/// team's prompt files (models/refusal-ngram/prompts.jsonl, models/data/prompts-*.jsonl).
pub fn shipped_prompt_files(datasets: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = PERMISSIVE_PROMPT_FILES
        .iter()
        .map(|f| datasets.join("prompts").join(f))
        .collect();
    files.push(datasets.join("deccp_qwen2_7b.jsonl"));
    files.push(project_file("refusal-ngram/prompts.jsonl"));
    let team = crate::judge::fit::team_files(Path::new(env!("CARGO_MANIFEST_DIR")), "prompts-");
    files.extend(team);
    files
}

fn find_datasets(given: Option<PathBuf>) -> Result<PathBuf, ClassifyError> {
    given.or_else(datasets_dir).ok_or_else(|| {
        ClassifyError::Invalid(
            "the shared datasets folder was not found; pass --datasets or set REFUSAL_GUARD_DATASETS".into(),
        )
    })
}

/// Runs `train`.
pub fn run(args: TrainArgs) -> Result<(), Box<dyn std::error::Error>> {
    let started = std::time::Instant::now();
    let shipped = args.shipped || (args.responses.is_empty() && args.prompts.is_empty());
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
    if shipped {
        let dir = find_datasets(args.datasets.clone())?;
        sources.extend(shipped_sources(&dir, Path::new(env!("CARGO_MANIFEST_DIR"))));
        prompt_files.extend(shipped_prompt_files(&dir));
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
    let encoder = match args.encoder.as_str() {
        "none" => None,
        "e5" => Some(set_up(E5Encoder::load_default()?)?),
        "auto" => match E5Encoder::load_default() {
            Ok(e) => Some(set_up(e)?),
            Err(e) => {
                eprintln!("note: training without the e5 tier ({e})");
                None
            }
        },
        other => return Err(format!("unknown --encoder {other:?}; expected auto, e5 or none").into()),
    };
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
        (Some(enc), Some(path)) => Some((path, kept_prompt_parts(path, enc)?)),
        _ => None,
    };
    // Likewise the stack file, opened now and written after the answer side's folds.
    let stack_error = |path: &Path, e: std::io::Error| format!("--stack-out {}: {e}", path.display());
    let mut stack_out = match &args.stack_out {
        Some(path) => Some((
            path,
            std::io::BufWriter::new(std::fs::File::create(path).map_err(|e| stack_error(path, e))?),
        )),
        None => None,
    };
    let prompt_stack_error =
        |path: &Path, e: std::io::Error| format!("--prompt-stack-out {}: {e}", path.display());
    let mut prompt_stack_out = match &args.prompt_stack_out {
        Some(path) => Some((
            path,
            std::io::BufWriter::new(std::fs::File::create(path).map_err(|e| prompt_stack_error(path, e))?),
        )),
        None => None,
    };
    // Embedding every training text takes hours on two cores; the encoder's heads and the
    // combiner's encoder view are fitted on a capped subset (see `--encoder-cap`).
    let embed = |texts: Vec<&str>,
                 keep: Vec<bool>,
                 what: &str|
     -> Result<Option<Vec<Option<Vec<f32>>>>, ClassifyError> {
        let Some(enc) = &encoder else { return Ok(None) };
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
            args.embedding_cache.display()
        );
        let texts_all = texts;
        let texts = chosen;
        let mut last = std::time::Instant::now();
        let vs = embed_cached(enc, &texts, &args.embedding_cache, |done, total| {
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
    };

    for name in &args.encoder_skip {
        let i = sources
            .iter()
            .position(|s| &s.name == name)
            .ok_or_else(|| format!("--encoder-skip {name:?}: no such source"))?;
        cfg.encoder_skip.push(i);
    }
    let mut rows = read_rows(&sources, cfg.window_tokens)?;
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
    let mut response_vectors = None;
    let mut answer_layer = None;
    let response_head = if rows.is_empty() {
        None
    } else {
        eprintln!("leave-one-source-out over {} sources", sources.len());
        let keep = answer_subset(&rows, args.encoder_cap);
        let tuning = encoder.as_ref().filter(|_| args.answer_tune_epochs > 0);
        // A tuned layer reads its held-out rows itself; the frozen vectors are then not needed.
        let vectors = match tuning {
            Some(_) => None,
            None => embed(
                rows.iter().map(|r| r.text.as_str()).collect(),
                keep.clone(),
                "answers",
            )?,
        };
        let mut predictions = out_of_source(&rows, sources.len(), vectors.as_deref(), &cfg, |m| {
            eprintln!("  {m}")
        })?;
        if let Some(vs) = &vectors {
            response_vectors = Some(final_encoder_head(&rows, vs, &cfg)?);
        }
        if let Some(enc) = tuning {
            let source_fold = answer_folds(&sources);
            let fold: Vec<usize> = rows.iter().map(|r| source_fold[r.source]).collect();
            eprintln!(
                "fine-tuning {}'s layer {} for the answer question: {} held-out folds, then every source",
                e5::MODEL,
                args.answer_depth,
                source_fold
                    .iter()
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
            );
            let tc = TuneConfig {
                epochs: args.answer_tune_epochs,
                seed: args.seed,
                ..TuneConfig::default()
            };
            let (held_out, tuned) = answers_tuned(enc, &rows, &keep, &fold, args.answer_depth, &tc, |m| {
                eprintln!("  {m}")
            })?;
            let labels: Vec<String> = RESPONSE_LABELS.iter().map(|s| s.to_string()).collect();
            predictions.encoder = Some(
                held_out
                    .into_iter()
                    .map(|p| p.map(|p| judgement(&labels, p)))
                    .collect(),
            );
            response_vectors = Some(tuned.head(&RESPONSE_LABELS)?);
            answer_layer = Some(tuned.layer_tensors()?);
        }
        if let Some((path, out)) = &mut stack_out {
            write_stack(out, &rows, &sources, &predictions).map_err(|e| stack_error(path, e))?;
            eprintln!(
                "wrote the combiner's {} training rows to {}",
                rows.len(),
                path.display()
            );
        }
        let decisions = combiner_out_of_source(&rows, sources.len(), &predictions, &cfg)?;
        // The non-answer threshold is part of the fit: each held-out source is scored at
        // the threshold chosen on the other sources; the shipped one is chosen on all.
        let nested = nested_thresholds(&rows, sources.len(), &decisions, cfg.escalation_cap);
        let shipped_threshold = Thresholds::choose(&rows, &decisions, |_| true, cfg.escalation_cap);
        let mut table = render(
            &score(&rows, &sources, &decisions, &nested),
            &window_recall(&rows, &sources, &decisions, &nested),
            predictions.encoder.is_some(),
        );
        table.push_str(&format!(
            "\nNon-answer thresholds (probability of the non-answer classes together): whole answer {} / \
             whole answer with the encoder's reading {} (each the best mean F0.5 over sources: precision weighted) / stream window {} \
             (the lowest that stops at most {:.0}% of the median source's answer windows), chosen on every \
             source's out-of-source predictions and shipped in the combiner. Each row above is scored at the \
             thresholds chosen without its source: {}. The encoder is asked when the embedded default's \
             non-answer probability is in [{}, {}) (of the bands that send at most {} of the whole answers to the \
             encoder, the one that asks it least while keeping the cascade's mean F0.5 within {} of the best of \
             them); it sends {:.3} of the whole answers of all sources, {:.3} of those of the sources nobody here \
             wrote. Without the cap (the tier `e5:wide`) the band is [{}, {}), which sends {:.3} and {:.3}.\n",
            shipped_threshold.whole,
            shipped_threshold.escalated,
            shipped_threshold.window,
            MAX_WINDOW_FALSE_STOPS * 100.0,
            sources
                .iter()
                .zip(&nested)
                .map(|(s, t)| format!(
                    "{} {} / {} / {} [{}, {})",
                    s.name, t.whole, t.escalated, t.window, t.band.from, t.band.to
                ))
                .collect::<Vec<_>>()
                .join(", "),
            shipped_threshold.band.from,
            shipped_threshold.band.to,
            cfg.escalation_cap,
            BAND_F1_SLACK,
            escalation_rate(&rows, &decisions, &shipped_threshold.band, |_| true),
            escalation_rate(&rows, &decisions, &shipped_threshold.band, |s| !sources[s].is_team()),
            shipped_threshold.wide_band.from,
            shipped_threshold.wide_band.to,
            escalation_rate(&rows, &decisions, &shipped_threshold.wide_band, |_| true),
            escalation_rate(&rows, &decisions, &shipped_threshold.wide_band, |s| !sources[s].is_team()),
        ));
        if predictions.encoder.is_some() {
            table.push_str(
                "\n## What the escalation band costs and buys\n\n\
                 Held-out non-answer F1 of the cascade (whole answers, encoder subset) when each source's band is \
                 chosen without it by the shipped rule under each cap on the share of the other sources' whole \
                 answers escalated (`--escalation-cap`), and the share of the held-out sources' whole answers (all of \
                 them, not only the subset) escalated, pooled. The traffic's rate and cost are \
                 `benches/cascade_cost.rs`'s.\n\n",
            );
            let sweep = band_sweep(&rows, sources.len(), &decisions, &nested, &BAND_SWEEP_CAPS);
            table.push_str(&render_band_sweep(&sweep, &sources));
            // Windows are never escalated today; this measures what asking would do.
            let (windows, chosen) = window_escalation(&rows, &sources, &decisions, &nested);
            table.push_str(
                "\n## Stream windows with the encoder asked when unsure (measured; the guard does not ask yet)\n\n\
                 Each held-out source's explicit refusals and answers, as 16-token windows, on the encoder subset: \
                 judged by the embedded default alone at the window threshold (what the guard does), and with the \
                 encoder asked where the embedded default's non-answer probability is in the band.\n\n",
            );
            let sweep = window_escalation_sweep(&rows, &decisions, &nested);
            table.push_str(&render_window_escalation(&windows, &sources, &chosen, &sweep));
        }
        println!("{table}");
        let mut combiner = train_combiner(&rows, &predictions, |_| true, &cfg)?;
        combiner.set_thresholds(shipped_threshold);
        combiner.info.insert("trained".into(), today());
        combiner
            .info
            .insert("fit_config".into(), serde_json::to_string(&cfg)?);
        combiner.info.insert(
            "sources".into(),
            serde_json::to_string(&sources.iter().map(|s| &s.name).collect::<Vec<_>>())?,
        );
        write_parent(&args.combiner_out)?;
        combiner.save(&args.combiner_out)?;
        write_parent(&args.report)?;
        std::fs::write(
            &args.report,
            format!(
                "# Leave-one-source-out (refusal-guard train, {})\n\nNon-answer (refusal, evasion, inability) vs answer; \
                 each source judged by models trained on the other sources only.\n\n{table}",
                today()
            ),
        )?;
        eprintln!("training the shipped answer head on {} rows", rows.len());
        Some(final_ngram(&rows, &cfg)?)
    };
    let prompt_rows = read_prompt_rows(&prompt_files)?;
    let mut prompt_vectors = None;
    let mut prompt_layer = None;
    let prompt_head = if prompt_rows.is_empty() {
        None
    } else {
        let names: Vec<String> = prompt_files.iter().map(|f| short_name(f)).collect();
        for (i, name) in names.iter().enumerate() {
            prov.files
                .push((name.clone(), prompt_rows.iter().filter(|r| r.source == i).count()));
        }
        eprintln!("prompt head: leave-one-file-out over {} files", names.len());
        let p = prompts_out_of_source(&prompt_rows, names.len(), &cfg)?;
        // The encoder's held-out readings, for `--prompt-stack-out` (empty without e5).
        let mut frozen_held_out: Vec<Option<f32>> = Vec::new();
        let mut tuned_held_out: Vec<Option<f32>> = Vec::new();
        let policy = crate::judge::HarmPolicy::default();
        let all: Vec<Option<f32>> = p.iter().copied().map(Some).collect();
        let mut table = render_prompts(&score_prompts(&prompt_rows, &names, &all, policy.benign_below));
        let keys: Vec<(String, String, &str)> = prompt_rows
            .iter()
            .map(|r| (r.source.to_string(), r.harmful.to_string(), r.text.as_str()))
            .collect();
        let keep = subset(&keys, args.encoder_cap / 2);
        if let Some(vs) = embed(
            prompt_rows.iter().map(|r| r.text.as_str()).collect(),
            keep.clone(),
            "prompts",
        )? {
            let pe = prompts_out_of_source_vectors(&prompt_rows, names.len(), &vs, &cfg)?;
            // The pipeline's prompt cascade: the n-gram head decides when it reads harmful
            // from `NGRAM_PROMPT_FINAL_FROM`, the encoder head otherwise.
            let cascade: Vec<Option<f32>> = p
                .iter()
                .zip(&pe)
                .map(|(n, e)| e.map(|e| prompt_cascade(*n, e, NGRAM_PROMPT_FINAL_FROM)))
                .collect();
            table = format!(
                "n-gram prompt head alone, every prompt:\n\n{table}\ne5 prompt head alone (the embedded subset):\n\n{}\n\
                 the cascade, n-gram when it reads harmful from {NGRAM_PROMPT_FINAL_FROM}, else e5 (the embedded subset):\n\n{}\n\
                 The cascade's trade-off by flag threshold (the shipped policy re-routes a refusal only below \
                 {}, and below {} when the refusal names harm):\n\n{}\nThe cascade file by file:\n\n{}",
                render_prompts(&score_prompts(&prompt_rows, &names, &pe, policy.benign_below)),
                render_prompts(&score_prompts(&prompt_rows, &names, &cascade, policy.benign_below)),
                policy.benign_below,
                policy.benign_below_named_harm,
                render_harm_sweep(&prompt_rows, &names, &cascade),
                render_harm_by_file(&prompt_rows, &names, &cascade)
            );
            prompt_vectors = Some(train_prompt_vectors(&prompt_rows, &vs, |_| true, &cfg)?);
            if let Some((path, kept)) = &kept_prompt {
                table.push_str(&format!(
                    "\n## Prompt harm through e5's fine-tuned layer\n\nNot trained in this run: the e5 prompt head \
                     and fine-tuned layer were kept from `{}` (`--prompt-parts-from`); their leave-one-file-out \
                     tables are in the report of the run that trained them.\n",
                    path.display()
                ));
                prompt_vectors = kept.prompt.clone();
                prompt_layer = kept.prompt_layer.clone();
            } else if let (Some(enc), true) = (&encoder, args.tune_epochs > 0) {
                let folds: Vec<usize> = (0..names.len())
                    .filter(|&i| match args.tune_folds {
                        TuneFolds::All => true,
                        TuneFolds::Contrast => is_contrast_style(&names[i]),
                        TuneFolds::None => false,
                    })
                    .collect();
                eprintln!(
                    "fine-tuning {}'s layer {} for prompt harm: {} held-out files, then every file",
                    e5::MODEL,
                    args.prompt_depth,
                    folds.len()
                );
                let tc = TuneConfig {
                    epochs: args.tune_epochs,
                    seed: args.seed,
                    four_bit_weights: args.prompt_weights == PromptWeights::FourBit,
                    layer_lr: args.prompt_layer_lr,
                    average_last: args.prompt_average_last,
                    ..TuneConfig::default()
                };
                let (held_out, tuned) =
                    prompts_tuned(enc, &prompt_rows, &keep, &folds, args.prompt_depth, &tc, |m| {
                        eprintln!("  {m}")
                    })?;
                table.push_str(&render_tuned(
                    &prompt_rows,
                    &names,
                    &p,
                    &pe,
                    &held_out,
                    args.prompt_depth,
                    &tc,
                ));
                prompt_vectors = Some(tuned.head(&PROMPT_LABELS)?);
                prompt_layer = Some(tuned.layer_tensors()?);
                tuned_held_out = held_out;
            }
            frozen_held_out = pe;
        }
        if let Some((path, out)) = &mut prompt_stack_out {
            write_prompt_stack(out, &prompt_rows, &names, &p, &frozen_held_out, &tuned_held_out)
                .map_err(|e| prompt_stack_error(path, e))?;
            eprintln!("wrote {} prompt rows to {}", prompt_rows.len(), path.display());
        }
        println!("{table}");
        let report = std::fs::read_to_string(&args.report).unwrap_or_default();
        std::fs::write(
            &args.report,
            format!(
                "{report}\n## Prompt harm, leave-one-file-out (n-gram prompt head)\n\n\
                 A prompt counts as flagged when its harm probability is not confidently benign \
                 (>= {:.2}): its refusal is kept as justified.\n\n{table}",
                crate::judge::HarmPolicy::default().benign_below
            ),
        )?;
        let train: Vec<Example> = prompt_rows
            .iter()
            .map(|r| Example {
                text: r.text.clone(),
                label: usize::from(r.harmful),
                weight: 1.0,
            })
            .collect();
        eprintln!("training the shipped prompt head on {} prompts", train.len());
        Some(train_ngram_head(
            &train,
            &PROMPT_LABELS,
            cfg.features,
            &cfg.ngram,
            |_, _| {},
        )?)
    };
    let mut info = std::collections::HashMap::new();
    info.insert("trained".to_string(), today());
    info.insert("train_config".to_string(), serde_json::to_string(&cfg.ngram)?);
    info.insert("data".to_string(), serde_json::to_string(&prov.files)?);
    let model = NgramModel {
        response: response_head,
        prompt: prompt_head,
        info,
    };
    write_parent(&args.out)?;
    model.save(&args.out)?;
    if let Some(enc) = &encoder {
        let heads = Heads {
            response: response_vectors,
            prompt: prompt_vectors,
            encoder_sha256: Some(enc.sha256().to_string()),
            prompt_layer,
            answer_layer,
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

/// The e5 prompt parts of a heads file (`--prompt-parts-from`), checked to belong to the
/// encoder being trained on.
fn kept_prompt_parts(path: &Path, enc: &E5Encoder) -> Result<Heads, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(path).map_err(|e| format!("--prompt-parts-from {}: {e}", path.display()))?;
    let heads =
        Heads::from_bytes(&bytes).map_err(|e| format!("--prompt-parts-from {}: {e}", path.display()))?;
    if heads.prompt.is_none() {
        return Err(format!(
            "--prompt-parts-from {}: the file has no prompt head",
            path.display()
        )
        .into());
    }
    if let Some(sha) = &heads.encoder_sha256 {
        if sha != enc.sha256() {
            return Err(format!(
                "--prompt-parts-from {}: its prompt parts were trained on other e5 weights ({sha}, here {})",
                path.display(),
                enc.sha256()
            )
            .into());
        }
    }
    Ok(heads)
}

/// The prompt cascade as the pipeline runs it (`judge::Models::prompt`): the n-gram reading
/// when it finds the request harmful from `final_from` up, else the encoder's. A benign
/// n-gram reading is never final, however sure: the encoder checks it.
fn prompt_cascade(ngram: f32, encoder: f32, final_from: f32) -> f32 {
    if ngram >= final_from {
        ngram
    } else {
        encoder
    }
}

/// The values of the n-gram head's final-from threshold that [`render_ngram_say`] compares:
/// never (the encoder alone), the pipeline's, and lower ones, where the n-gram head's
/// "harmful" keeps a refusal that the encoder would have let go.
const NGRAM_FINAL_FROM_SWEEP: [f32; 6] = [1.01, 0.9, 0.7, 0.5, 0.3, 0.2];

/// How much the n-gram head's harmful reading should overrule the encoder's: the held-out
/// cascade at each of [`NGRAM_FINAL_FROM_SWEEP`], flagged at `flagged_from`.
fn render_ngram_say(
    rows: &[crate::judge::fit::PromptRow],
    names: &[String],
    ngram: &[f32],
    encoder: &[Option<f32>],
    flagged_from: f32,
) -> String {
    let mut s = format!(
        "| n-gram reading final from | harmful flagged at {flagged_from}, mean over files (worst file) | \
         benign flagged, mean over files | benign flagged, contrast-style files |\n|---|---|---|---|\n"
    );
    for final_from in NGRAM_FINAL_FROM_SWEEP {
        let p: Vec<Option<f32>> = ngram
            .iter()
            .zip(encoder)
            .map(|(n, e)| e.map(|e| prompt_cascade(*n, e, final_from)))
            .collect();
        let h = HarmSummary::at(rows, names, &p, flagged_from);
        let label = if final_from > 1.0 {
            "never (the encoder alone)".to_string()
        } else if final_from == NGRAM_PROMPT_FINAL_FROM {
            format!("{final_from} (the pipeline's)")
        } else {
            final_from.to_string()
        };
        s.push_str(&format!(
            "| {label} | {:.3} ({:.3}) | {:.3} | {:.3} |\n",
            h.harmful_mean, h.harmful_worst, h.benign_mean, h.benign_contrast
        ));
    }
    s
}

/// The fine-tuned prompt layer beside the frozen vectors, on the files it was held out of:
/// at the shipped flag threshold and a sweep.
fn render_tuned(
    rows: &[crate::judge::fit::PromptRow],
    names: &[String],
    ngram: &[f32],
    frozen: &[Option<f32>],
    tuned: &[Option<f32>],
    depth: usize,
    tc: &TuneConfig,
) -> String {
    // The tuned layer is what the e5 tier judges requests with, so its tables flag at that
    // tier's policy, not the embedded default's.
    let policy = crate::judge::HarmPolicy::for_e5();
    let averaged = if tc.average_last > 0.0 {
        format!(", the last {} of the steps averaged", tc.average_last)
    } else {
        String::new()
    };
    let heading = format!(
        "\n## Prompt harm through e5's layer {depth} fine-tuned ({} passes, layer lr {}, head lr {}, {} weights{averaged}; \
         `crate::judge::tune`)\n\n",
        tc.epochs,
        tc.layer_lr,
        tc.head_lr,
        if tc.four_bit_weights { "4-bit" } else { "f32" }
    );
    if tuned.iter().all(Option::is_none) {
        // `--tune-folds none`: empty tables and a sweep over no rows would read as measured.
        return format!(
            "{heading}Not measured in this run: no file was held out of the tuning (`--tune-folds none`).\n"
        );
    }
    // Only the rows the tuned layer was held out on, for every column.
    let only =
        |p: &[Option<f32>]| -> Vec<Option<f32>> { p.iter().zip(tuned).map(|(p, t)| t.and(*p)).collect() };
    let cascade: Vec<Option<f32>> = ngram
        .iter()
        .zip(tuned)
        .map(|(n, t)| t.map(|t| prompt_cascade(*n, t, NGRAM_PROMPT_FINAL_FROM)))
        .collect();
    let mut s = format!(
        "{heading}Each file below judged by a layer and head tuned without it, on the same \
         capped rows as the e5 tables above; flagged from {} (the e5 tier's policy, `HarmPolicy::for_e5`).\n\ne5 head over frozen vectors (as above):\n\n{}\n\
         fine-tuned layer:\n\n{}\nthe cascade, n-gram when it reads harmful from {NGRAM_PROMPT_FINAL_FROM}, else the fine-tuned layer:\n\n{}\n",
        policy.benign_below,
        render_prompts(&score_prompts(rows, names, &only(frozen), policy.benign_below)),
        render_prompts(&score_prompts(rows, names, tuned, policy.benign_below)),
        render_prompts(&score_prompts(rows, names, &cascade, policy.benign_below)),
    );
    for (what, p) in [
        ("frozen vectors", only(frozen)),
        ("fine-tuned", tuned.to_vec()),
        ("cascade with the fine-tuned layer", cascade),
    ] {
        s.push_str(&format!(
            "\nBy flag threshold, {what}, on these files:\n\n{}\nFile by file, {what}:\n\n{}",
            render_harm_sweep(rows, names, &p),
            render_harm_by_file(rows, names, &p)
        ));
    }
    s.push_str(&format!(
        "\nHow far the n-gram head's harmful reading should overrule the fine-tuned layer: the cascade with \
         the n-gram reading final from each value (a lower value keeps more refusals; the encoder's benign \
         reading decides below it):\n\n{}",
        render_ngram_say(rows, names, ngram, tuned, policy.benign_below)
    ));
    s
}

fn write_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::fit::PromptRow;

    #[test]
    fn the_tables_cascade_is_the_pipelines() {
        // A harmful n-gram reading from the threshold up stands; below it, however benign
        // the n-gram head is, the encoder decides (the report scored a sure-benign n-gram
        // reading as final until 2026-12-05, which the pipeline never did).
        assert_eq!(prompt_cascade(0.95, 0.05, NGRAM_PROMPT_FINAL_FROM), 0.95);
        assert_eq!(prompt_cascade(0.02, 0.6, NGRAM_PROMPT_FINAL_FROM), 0.6);
        assert_eq!(prompt_cascade(0.6, 0.05, NGRAM_PROMPT_FINAL_FROM), 0.05);
        assert_eq!(prompt_cascade(0.6, 0.05, 0.5), 0.6);
    }

    #[test]
    fn the_ngram_say_table_moves_with_the_threshold() {
        let row = |harmful: bool| PromptRow {
            source: 0,
            lang: "en".into(),
            text: "x".into(),
            harmful,
        };
        let rows = vec![row(true), row(true), row(false), row(false)];
        let names = vec!["prompts-contrast.jsonl".to_string()];
        // The layer misses one harmful prompt that the n-gram head reads at 0.6, and
        // clears a benign one the n-gram head reads at 0.75.
        let ngram = [0.6, 0.95, 0.75, 0.01];
        let layer = [Some(0.05), Some(0.9), Some(0.02), Some(0.01)];
        let table = render_ngram_say(&rows, &names, &ngram, &layer, 0.15);
        let line = |label: &str| {
            table
                .lines()
                .find(|l| l.starts_with(&format!("| {label} ")))
                .unwrap_or_else(|| panic!("{label}: {table}"))
                .to_string()
        };
        assert!(
            line("never (the encoder alone)").contains("| 0.500 (0.500) | 0.000 |"),
            "{table}"
        );
        assert!(
            line("0.9 (the pipeline's)").contains("| 0.500 (0.500) | 0.000 |"),
            "{table}"
        );
        assert!(line("0.7").contains("| 0.500 (0.500) | 0.500 |"), "{table}");
        assert!(line("0.5").contains("| 1.000 (1.000) | 0.500 |"), "{table}");
    }

    #[test]
    fn a_tuning_with_no_held_out_file_says_it_measured_nothing() {
        let rows = vec![PromptRow {
            source: 0,
            lang: "en".into(),
            text: "how do I kill a stuck process".into(),
            harmful: false,
        }];
        let names = vec!["prompts-x.jsonl".to_string()];
        let tc = TuneConfig::default();
        let none = render_tuned(&rows, &names, &[0.1], &[Some(0.2)], &[None], 8, &tc);
        assert!(none.contains("Not measured in this run"), "{none}");
        assert!(!none.contains("| held-out file"), "{none}");
        let some = render_tuned(&rows, &names, &[0.1], &[Some(0.2)], &[Some(0.05)], 8, &tc);
        assert!(some.contains("| prompts-x.jsonl | en |"), "{some}");
        assert!(!some.contains("Not measured"), "{some}");
    }
}
