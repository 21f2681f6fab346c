//! What a verdict costs per answer on the shared response files, on one core: the
//! embedded default (patterns + n-gram model + trained combiner), the cascade (the same,
//! asking the e5 encoder when the combiner is unsure), with the escalation rate, and
//! `e5:wide` (the same over the combiner's wide band, the one `train` chose without its cost
//! cap), and `e5:prompts` (the encoder on requests only: their harm, never an answer).
//!
//! Run: `cargo bench --bench cascade_cost` (release build; N answers per file, default 200:
//! `RG_BENCH_N=50 cargo bench --bench cascade_cost`). Other settings: `RG_BENCH_SEED`
//! (default 11) picks the sample; `REFUSAL_GUARD_DATASETS` the datasets folder (default
//! ../shared/datasets); `HF_HOME` the hf-hub cache (default <repo>/.cache/hf). Like
//! `benches/e5.rs` it pins the models to one core (`RAYON_NUM_THREADS=1` unless set).
//! Without the datasets it says so and measures nothing; without multilingual-e5-small in
//! the cache (`scripts/setup-models.sh`) it measures the embedded default alone and says
//! why.
//!
//! What it does: from each of speechmap_criticism_nonqwen, gptfuzz_responses, jade_v3_zh and
//! do_not_answer_en it takes N records with a non-empty answer, chosen by a seeded stable
//! hash of their ids (the same sample on every machine), and judges each through the real
//! judge path (`tiers::detectors_with`, the pipeline `eval`, `audit` and `serve` build)
//! twice: the whole answer, as `eval` does, and its first 16 tokens
//! (`judge::features::window`) as a stream's partial observation, the guard's default
//! hold-back window. Before anything is timed, `RG_BENCH_WARM` (default 300) *other*
//! answers per file are judged untimed: the pattern set's lazy DFA builds its states as
//! texts need them, which costs a cold process about 0.15 ms per answer for its first few
//! hundred answers and nothing once a gateway has seen some traffic. The cold mean is
//! printed above the table, so both figures are on record.
//!
//! How to read the table (one row per file, decision and observation, then `all`):
//! - `escalated`: the share of answers where the encoder read the answer: asked by the
//!   combiner when unsure (the issue-11 figure), or by a short-reply head (e5's reads a
//!   pattern-clean short answer where the n-gram short-reply head is unsure, the short-reply
//!   cascade, and reviews the combiner's non-answer on one of up to
//!   `judge::PARAGRAPH_REPLY_TOKENS`). Counted at the encoder tier itself (a wrapper that
//!   counts its answer reads, [`Counted`]), not read back from the verdict. Always 0 for the
//!   embedded default and `e5:prompts`.
//! - `harm by enc`: the share where the encoder also judged the *request's* harm (a
//!   refusal whose prompt the n-gram prompt head did not judge surely harmful: a benign
//!   reading is always checked, see `classify::cascade`; seen in the `prompt_harm`
//!   evidence, which names the tier that decided).
//! - `cpu` columns: process CPU time per answer (all threads, `CLOCK_PROCESS_CPUTIME_ID`),
//!   less the cost of reading that clock (printed above the table): the figure to compare
//!   with the targets (cascade mean <= 2 ms, embedded default < 0.2 ms). `wall`
//!   columns: elapsed time, which on a shared machine also counts waiting for a core.
//! - mean, p50 and p99 (nearest rank) in milliseconds. The mean of the cascade is the
//!   embedded cost plus the escalation rate times the encoder's cost, so a p99 far above
//!   the p50 is the escalated answers.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, Table};

use refusal_guard::classify::short_head::ShortJudgement;
use refusal_guard::classify::{tiers, Classifier, ClassifyError, PromptJudgement, ResponseJudgement};
use refusal_guard::cli::eval::judge;
use refusal_guard::dataset::Record;
use refusal_guard::detect::{Completeness, Detectors, Observation};
use refusal_guard::judge::{features, Decision};
use refusal_guard::verdict::Verdict;

const FILES: [&str; 4] = [
    "speechmap_criticism_nonqwen.jsonl",
    "gptfuzz_responses.jsonl",
    "jade_v3_zh.jsonl",
    "do_not_answer_en.jsonl",
];

/// The guard's default hold-back window, in tokens.
const WINDOW_TOKENS: usize = 16;

/// Answers per file judged untimed before anything is timed (`RG_BENCH_WARM`): others than
/// the timed ones, so that the patterns' lazy DFA has met the states real traffic meets.
/// A gateway judges thousands of answers and keeps that cache; a cold process pays about
/// 0.15 ms more per answer on its first few hundred (printed as `cold` above the table).
const WARM_UP: usize = 300;

/// What is judged of each answer.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    Whole,
    Window,
}

impl Part {
    fn name(self) -> String {
        match self {
            Part::Whole => "whole answer".into(),
            Part::Window => format!("{WINDOW_TOKENS}-token window"),
        }
    }
}

/// A pipeline under test, the name its encoder's evidence carries, and the count of the
/// encoder's answer reads.
struct Setup {
    name: &'static str,
    detectors: Detectors,
    encoder: Option<String>,
    reads: Arc<AtomicUsize>,
}

impl Setup {
    /// A pipeline whose escalation reader, if any, counts its answer reads.
    fn new(name: &'static str, detectors: Detectors, encoder: Option<String>) -> Self {
        let reads = Arc::new(AtomicUsize::new(0));
        let detectors = match detectors.decision() {
            Decision::Learned(m) if m.escalation.is_some() => {
                let mut models = (**m).clone();
                models.escalation = models.escalation.take().map(|inner| -> Arc<dyn Classifier> {
                    Arc::new(Counted {
                        inner,
                        reads: reads.clone(),
                    })
                });
                detectors.models(models)
            }
            _ => detectors,
        };
        Setup {
            name,
            detectors,
            encoder,
            reads,
        }
    }

    /// The encoder's answer reads so far.
    fn answer_reads(&self) -> usize {
        self.reads.load(Ordering::Relaxed)
    }
}

/// An escalation reader that counts its reads of answers (whole, or by its short-reply
/// head): each is an encoder pass. Its prompt reads are the prompt cascade's, not counted.
struct Counted {
    inner: Arc<dyn Classifier>,
    reads: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl Classifier for Counted {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn judge_response(
        &self,
        prompt: Option<&str>,
        response: &str,
    ) -> Result<Option<ResponseJudgement>, ClassifyError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.judge_response(prompt, response).await
    }

    async fn judge_short_answer(&self, response: &str) -> Result<Option<ShortJudgement>, ClassifyError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.judge_short_answer(response).await
    }

    async fn judge_prompt(&self, prompt: &str) -> Result<Option<PromptJudgement>, ClassifyError> {
        self.inner.judge_prompt(prompt).await
    }

    fn learned_language(&self, lang: &str) -> bool {
        self.inner.learned_language(lang)
    }
}

/// Per-answer costs of one (file, setup, part) run.
#[derive(Default, Clone)]
struct Costs {
    cpu_ns: Vec<u64>,
    wall_ns: Vec<u64>,
    escalated: usize,
    harm_by_encoder: usize,
}

impl Costs {
    fn extend(&mut self, other: &Costs) {
        self.cpu_ns.extend(&other.cpu_ns);
        self.wall_ns.extend(&other.wall_ns);
        self.escalated += other.escalated;
        self.harm_by_encoder += other.harm_by_encoder;
    }
}

/// The first `n` records of a file in the seeded order (the timed sample) and the next
/// `warm` (the warm-up).
fn sample(path: &Path, n: usize, warm: usize, seed: u64) -> Result<(Vec<Record>, Vec<Record>), String> {
    let mut timed = support::in_seeded_order(path, seed)?;
    timed.truncate(n + warm);
    let warm_up = timed.split_off(n.min(timed.len()));
    Ok((timed, warm_up))
}

fn verdict_of(detectors: &Detectors, record: &Record, part: Part) -> Verdict {
    match part {
        Part::Whole => judge(detectors, record),
        Part::Window => {
            let observation = Observation {
                prompt: Some(&record.prompt),
                text: features::window(&record.response, WINDOW_TOKENS),
                tokens: &[],
                finish_reason: None,
                error: None,
                completeness: Completeness::Partial,
            };
            futures::executor::block_on(detectors.judge(&observation))
        }
    }
}

/// The median cost of reading the CPU clock twice with nothing between, subtracted from
/// every CPU figure (small, but a cheap verdict costs only tens of microseconds).
fn clock_overhead_ns() -> u64 {
    let mut v: Vec<u64> = (0..2000)
        .map(|_| {
            let start = support::process_cpu_ns();
            support::process_cpu_ns().saturating_sub(start)
        })
        .collect();
    v.sort_unstable();
    v[v.len() / 2]
}

/// Judges the warm-up answers of every file, untimed but for the mean CPU cost of the whole
/// pass (the `cold` figure).
fn warm_up(setup: &Setup, samples: &[(&str, Vec<Record>, Vec<Record>)], part: Part) -> f64 {
    let cpu = support::process_cpu_ns();
    let mut n = 0;
    for (_, _, warm) in samples {
        for r in warm {
            forget_prompts(setup);
            verdict_of(&setup.detectors, r, part);
            n += 1;
        }
    }
    support::process_cpu_ns().saturating_sub(cpu) as f64 / n.max(1) as f64
}

/// Empties the prompt cascade's memo, so that every answer pays for its prompt's judgment:
/// the shared files hold several models' answers to one prompt, which a gateway (one
/// provider per request) would not see, and the whole-answer pass would otherwise leave
/// every prompt judged for the window pass.
fn forget_prompts(setup: &Setup) {
    if let refusal_guard::judge::Decision::Learned(models) = setup.detectors.decision() {
        models.prompt.forget_prompt_judgments();
    }
}

fn run(setup: &Setup, records: &[Record], part: Part, overhead: u64) -> Costs {
    let mut costs = Costs::default();
    for r in records {
        let reads_before = setup.answer_reads();
        forget_prompts(setup);
        let wall = Instant::now();
        let cpu = support::process_cpu_ns();
        let verdict = verdict_of(&setup.detectors, r, part);
        let cpu = support::process_cpu_ns().saturating_sub(cpu);
        costs.wall_ns.push(wall.elapsed().as_nanos() as u64);
        costs.cpu_ns.push(cpu.saturating_sub(overhead));
        if let Some(enc) = &setup.encoder {
            let prefix = format!("{enc} ");
            costs.escalated += usize::from(setup.answer_reads() > reads_before);
            costs.harm_by_encoder += usize::from(verdict.evidence.iter().any(|e| {
                e.source == refusal_guard::judge::PROMPT_HARM_SOURCE && e.reason.starts_with(&prefix)
            }));
        }
    }
    costs
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

fn ms(ns: f64) -> String {
    format!("{:.3}", ns / 1e6)
}

fn stats(values: &[u64]) -> [String; 3] {
    let mut v = values.to_vec();
    v.sort_unstable();
    let mean = v.iter().sum::<u64>() as f64 / v.len().max(1) as f64;
    [
        ms(mean),
        ms(percentile(&v, 50) as f64),
        ms(percentile(&v, 99) as f64),
    ]
}

fn share(k: usize, n: usize) -> String {
    if n == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * k as f64 / n as f64)
    }
}

fn row(file: &str, setup: &Setup, part: Part, c: &Costs) -> Vec<String> {
    let n = c.cpu_ns.len();
    let (escalated, harm) = match setup.encoder {
        Some(_) => (share(c.escalated, n), share(c.harm_by_encoder, n)),
        None => ("-".into(), "-".into()),
    };
    let mut row = vec![
        file.to_string(),
        setup.name.to_string(),
        part.name(),
        n.to_string(),
        escalated,
        harm,
    ];
    row.extend(stats(&c.cpu_ns));
    row.extend(stats(&c.wall_ns));
    row
}

fn setups() -> Vec<Setup> {
    let embedded = tiers::detectors_with(&[]).expect("the embedded default needs no file");
    let mut out = vec![Setup::new("embedded", embedded, None)];
    // The cascade; the same over the combiner's wide band (the one chosen without the cost
    // cap, and no short-reply cascade); the encoder on requests only (answers are the
    // embedded default's).
    for (name, spec) in [
        ("cascade (e5)", "e5"),
        ("e5:wide", "e5:wide"),
        ("e5:prompts", "e5:prompts"),
    ] {
        match tiers::detectors_with(&[spec.to_string()]) {
            Ok(detectors) => out.push(Setup::new(name, detectors, Some("e5".to_string()))),
            Err(e) => eprintln!("skipping {name}: {e}"),
        }
    }
    out
}

fn main() {
    support::one_core_setup();
    let Some(dir) = support::datasets_or_skip("cascade_cost") else {
        return;
    };
    let n = support::env("RG_BENCH_N", 200usize);
    let seed = support::env("RG_BENCH_SEED", 11u64);
    let warm = support::env("RG_BENCH_WARM", WARM_UP);
    let mut samples = Vec::new();
    for file in FILES {
        let path = dir.join(file);
        match sample(&path, n, warm, seed) {
            Ok((records, warm_up)) => samples.push((file, records, warm_up)),
            Err(e) => eprintln!("skipping {file}: {e}"),
        }
    }
    let setups = setups();
    let overhead = clock_overhead_ns();
    println!(
        "cascade cost: up to {n} answers per file (seed {seed}), RAYON_NUM_THREADS={}, \
         CPU clock read cost {:.1} us (subtracted)",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_default(),
        overhead as f64 / 1e3,
    );
    for setup in &setups {
        for part in [Part::Whole, Part::Window] {
            let cold = warm_up(setup, &samples, part);
            println!(
                "warm-up, {} {}: up to {warm} other answers per file, cold mean cpu {} ms",
                setup.name,
                part.name(),
                ms(cold)
            );
        }
    }

    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header(vec![
        "file",
        "decision",
        "judged",
        "answers",
        "escalated",
        "harm by enc",
        "cpu mean ms",
        "cpu p50",
        "cpu p99",
        "wall mean ms",
        "wall p50",
        "wall p99",
    ]);
    for i in 3..table.column_count() {
        if let Some(c) = table.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut overall: Vec<(usize, Part, Costs)> = Vec::new();
    for (file, records, _) in &samples {
        let short = file.trim_end_matches(".jsonl");
        for (s, setup) in setups.iter().enumerate() {
            for part in [Part::Whole, Part::Window] {
                let costs = run(setup, records, part, overhead);
                table.add_row(row(short, setup, part, &costs));
                match overall.iter_mut().find(|(i, p, _)| *i == s && *p == part) {
                    Some((_, _, all)) => all.extend(&costs),
                    None => overall.push((s, part, costs)),
                }
            }
        }
    }
    for (s, part, costs) in &overall {
        table.add_row(row("all", &setups[*s], *part, costs));
    }
    println!("{table}");
}
