//! `refusal-guard audit PATHS…`: run the verdict pipeline over logged traffic and report.
//!
//! The work is [`crate::audit`]'s; this module is the command line around it: arguments,
//! the progress bar (indicatif, on a terminal only: piped output stays clean), bad records
//! on standard error as they are found, `--records` lines as they are judged, and the
//! report files at the end. See `refusal-guard audit --help`.
//!
//! A folder written by the gateway's verdict log (`[verdict_log]` in `gateway.toml`) is an
//! input like any other: `refusal-guard audit LOGDIR --bucket day` reports refusal rates by
//! provider, model and language, and per day, from the verdicts the gateway logged.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::audit::report::{self, summary::RunStats, Bucket, Report};
use crate::audit::review::{self, ReviewQueue};
use crate::audit::{self as audit_lib, input, AuditOptions, Outcome};
use crate::dataset::LabelMap;

/// Arguments of `audit`.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// Files, folders (recursive), glob patterns, or `-` for standard input. JSON Lines
    /// (`.jsonl`, `.ndjson`), raw response or error bodies (`.json`), SSE transcripts
    /// (`.sse`), any of them gzipped; `NAME.meta.json` gives a body or transcript its id,
    /// language, label and model. A verdict-log folder of the gateway is read as it is.
    #[arg(required = true, value_name = "PATHS")]
    pub paths: Vec<String>,
    /// Writes the report as JSON (`-` for standard output).
    #[arg(long, value_name = "OUT")]
    pub json: Option<PathBuf>,
    /// Writes the report as Markdown (`-` for standard output).
    #[arg(long, value_name = "OUT")]
    pub markdown: Option<PathBuf>,
    /// Writes the report as a self-contained HTML page with plots.
    #[arg(long, value_name = "OUT")]
    pub html: Option<PathBuf>,
    /// Writes one JSON line per record: {"id","verdict","confidence","evidence"}.
    #[arg(long, value_name = "OUT.jsonl")]
    pub records: Option<PathBuf>,
    /// Writes a queue of answers for a person to label, in the form `train --responses`
    /// reads (`label` left null): the least sure verdicts and a uniform sample, labeled
    /// records and answers with no text left out (docs/operator-labels.md).
    #[arg(long, value_name = "OUT.jsonl")]
    pub review: Option<PathBuf>,
    /// How many answers the review queue holds (half the least sure, half a sample).
    #[arg(long, value_name = "N", default_value_t = crate::audit::review::DEFAULT_REVIEW_SIZE, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub review_size: usize,
    /// Stops at the first bad record (exit status 1) instead of skipping it.
    #[arg(long)]
    pub strict: bool,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub workers: usize,
    /// Overrides one label mapping, `LABEL=class`; repeatable (as in `eval`).
    #[arg(long = "map", value_name = "LABEL=CLASS")]
    pub map: Vec<String>,
    /// Overrides label mappings from a file of `LABEL=class` lines.
    #[arg(long, value_name = "FILE")]
    pub map_file: Option<PathBuf>,
    /// The width of the time buckets: hour, day or week (default: from the span of the
    /// records' times).
    #[arg(long, value_name = "WIDTH", value_parser = clap::builder::ValueParser::new(|s: &str| s.parse::<Bucket>()))]
    pub bucket: Option<Bucket>,
    /// Judges verdict-log lines again instead of counting the verdict the gateway logged
    /// (only meaningful for a log written with `include_text`).
    #[arg(long)]
    pub rejudge: bool,
    /// Prints no summary (report files and bad-record warnings only).
    #[arg(long, short)]
    pub quiet: bool,
    /// Model tiers, as in `eval`: `e5`, `e5:prompts` (requests only), `e5:wide` (answers over the wide escalation band), `ngram:PATH`, `e5:PATH` (retrained models), `guard`,
    /// `llama-guard:NAME`, `qwen3guard:NAME`, each optionally `@THRESHOLD`; repeatable. Default: the best
    /// installed tier (`e5` when multilingual-e5-small is in the hf-hub cache); `none` for
    /// the embedded default alone.
    #[arg(long = "tier", value_name = "TIER")]
    pub tiers: Vec<String>,
    /// How evidence becomes a verdict: `learned` (default), `rules` (the hand-set
    /// baseline), or a combiner file.
    #[arg(long, value_name = "learned|rules|PATH", default_value = "learned")]
    pub combiner: String,
}

/// How many bad records are printed to standard error as they are found.
const BAD_PRINTED: u64 = 20;

fn is_stdout(p: &std::path::Path) -> bool {
    p.as_os_str() == "-"
}

/// Opens an output file, creating its folder (or standard output for `-`).
fn create(path: &std::path::Path) -> Result<Box<dyn Write>, String> {
    if is_stdout(path) {
        return Ok(Box::new(std::io::stdout().lock()));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Box::new(BufWriter::new(file)))
}

fn write_out(path: &std::path::Path, text: &str) -> Result<(), String> {
    let mut out = create(path)?;
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn progress_bar(total: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(total) => {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} {msg} ETA {eta}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar
        }
        None => {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} {bytes} {msg}")
                    .expect("a valid template"),
            );
            bar
        }
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Runs `audit`.
pub fn run(args: &AuditArgs) -> Result<(), String> {
    let mut labels = LabelMap::default();
    if let Some(file) = &args.map_file {
        labels.load(file)?;
    }
    for entry in &args.map {
        labels.set(entry)?;
    }
    let inputs = input::resolve(&args.paths)?;
    if inputs.is_empty() {
        return Err(format!("no input files under {}", args.paths.join(" ")));
    }
    let specs = crate::classify::tiers::resolve_specs(&args.tiers);
    let detectors = crate::classify::tiers::detectors_with(&specs)
        .and_then(|d| crate::classify::tiers::with_combiner(d, &args.combiner))
        .map_err(|e| e.to_string())?;
    let options = AuditOptions {
        labels,
        detectors,
        workers: args.workers,
        strict: args.strict,
        rejudge: args.rejudge,
        ..AuditOptions::default()
    };
    let workers = match options.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    // Bytes are known for files, not for standard input: the bar is then a spinner.
    let total = if inputs.iter().all(|i| i.size.is_some()) {
        Some(inputs.iter().filter_map(|i| i.size).sum())
    } else {
        None
    };
    let bar = progress_bar(total);
    let mut records = match &args.records {
        Some(path) => Some((path.clone(), create(path)?)),
        None => None,
    };

    // Opened before the run, so that a bad path fails at once, not after it.
    let review_out = match &args.review {
        Some(path) => Some((path.clone(), create(path)?)),
        None => None,
    };
    let boundary = match options.detectors.decision() {
        crate::judge::Decision::Learned(models) => models.combiner.non_answer_from(),
        crate::judge::Decision::Rules { threshold } => *threshold,
    };
    let mut review = review_out
        .as_ref()
        .map(|_| ReviewQueue::new(args.review_size, boundary));

    let started = Instant::now();
    let mut last_tick = Instant::now();
    let bytes_done = options.bytes_done.clone();
    let result = audit_lib::audit(&inputs, &options, |outcome, tally| {
        match outcome {
            Outcome::Judged(judged) => {
                if let Some((path, out)) = &mut records {
                    report::records::write(out, judged).map_err(|e| format!("{}: {e}", path.display()))?;
                }
                if let Some(queue) = &mut review {
                    queue.offer(judged);
                }
            }
            Outcome::Bad(bad) => {
                if tally.bad <= BAD_PRINTED {
                    bar.suspend(|| eprintln!("refusal-guard: skipped {bad}"));
                }
                if tally.bad == BAD_PRINTED + 1 {
                    bar.suspend(|| eprintln!("refusal-guard: more bad records: see the summary"));
                }
            }
        }
        if last_tick.elapsed() >= Duration::from_millis(100) {
            last_tick = Instant::now();
            let rate = tally.records as f64 / started.elapsed().as_secs_f64().max(1e-9);
            bar.set_position(bytes_done.load(Ordering::Relaxed));
            bar.set_message(format!(
                "{} records, {rate:.0}/s, {} bad",
                tally.records, tally.bad
            ));
        }
        Ok(())
    });
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let tally = result.map_err(|e| e.to_string())?;
    if let Some((path, mut out)) = records {
        out.flush().map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let (Some((path, mut out)), Some(queue)) = (review_out, review) {
        let candidates = queue.candidates;
        let lines = queue.finish();
        review::write(&mut out, &lines)
            .and_then(|()| out.flush())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if !is_stdout(&path) {
            eprintln!(
                "refusal-guard: {} answers to label in {} (of {candidates} unlabeled answers with text; labeled records are left out): fill in each `label`, then train on it with `refusal-guard train --responses` into files of your own (docs/operator-labels.md)",
                lines.len(),
                path.display(),
            );
        }
    }

    let report = Report::bucketed(
        inputs.iter().map(|i| i.name.to_string()).collect(),
        &tally,
        args.bucket,
    );
    if let Some(path) = &args.json {
        write_out(path, &report::json::render(&report))?;
    }
    if let Some(path) = &args.markdown {
        write_out(path, &report::markdown::render(&report))?;
    }
    if let Some(path) = &args.html {
        write_out(path, &report::html::render(&report)?)?;
    }
    let stdout_taken = [
        &args.json,
        &args.markdown,
        &args.html,
        &args.records,
        &args.review,
    ]
    .into_iter()
    .flatten()
    .any(|p| is_stdout(p));
    if !args.quiet && !stdout_taken {
        let run = RunStats { elapsed, workers };
        print!("{}", report::summary::render(&report, Some(run)));
    }
    Ok(())
}
