//! `refusal-guard train`: retrain the embedded n-gram model (and the encoder heads).
//!
//! Without input files it rebuilds the shipped weights from what their licences allow:
//! speechmap_criticism_nonqwen.jsonl (Apache-2.0) for the answer head, the permissive
//! prompts/ files and deccp's prompts for the prompt head, always only their fit split
//! (30%, by id hash) so the other 70% stay held out for `models eval`, plus the project's own
//! examples in models/refusal-ngram/. With `--responses` / `--prompts` it trains on your own
//! labelled JSON Lines instead (labels `answer` / `refusal` / `evasion` / `inability`, or
//! the upstream ones; prompts with a boolean `harmful`).

use std::path::PathBuf;

use clap::Args;

use crate::classify::data::{
    datasets_dir, prompt_examples, response_examples, Provenance, PERMISSIVE_PROMPT_FILES,
    PERMISSIVE_RESPONSE_FILES, PROMPT_LABELS, RESPONSE_LABELS,
};
use crate::classify::features::FeatureConfig;
use crate::classify::ngram::NgramModel;
use crate::classify::train::{train_ngram_head, Example, TrainConfig};
use crate::classify::ClassifyError;

/// Arguments of `train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Where to write the model (safetensors).
    #[arg(long, default_value = "models/refusal-ngram/model.safetensors")]
    pub out: PathBuf,
    /// Labelled response files of your own (all rows are used unless --fit-only).
    #[arg(long = "responses", value_name = "FILE")]
    pub responses: Vec<PathBuf>,
    /// Labelled prompt files of your own (rows with a boolean `harmful`).
    #[arg(long = "prompts", value_name = "FILE")]
    pub prompts: Vec<PathBuf>,
    /// Use only the fit split (30%, by id hash) of your files too.
    #[arg(long)]
    pub fit_only: bool,
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
    #[arg(long, default_value_t = 4)]
    pub epochs: usize,
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,
    #[arg(long, default_value_t = 17)]
    pub seed: u64,
    /// Class weights are frequency^-POWER (1: balanced classes, 0: none).
    #[arg(long, default_value_t = 1.0)]
    pub class_weight_power: f32,
    /// Also train the sentence-encoder heads and write them here (needs all-MiniLM-L6-v2 in
    /// the hf-hub cache).
    #[arg(long)]
    pub encoder_heads: Option<PathBuf>,
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
        .join("models/refusal-ngram")
        .join(name)
}

/// The shipped training sets: (response examples, prompt examples, provenance).
pub fn shipped_data(
    datasets: Option<PathBuf>,
) -> Result<(Vec<Example>, Vec<Example>, Provenance), ClassifyError> {
    let dir = datasets.or_else(datasets_dir).ok_or_else(|| {
        ClassifyError::Invalid(
            "the shared datasets folder was not found; pass --datasets or set REFUSAL_GUARD_DATASETS".into(),
        )
    })?;
    let mut prov = Provenance::default();
    let shared: Vec<PathBuf> = PERMISSIVE_RESPONSE_FILES.iter().map(|f| dir.join(f)).collect();
    let mut responses = response_examples(&shared, true, &mut prov)?;
    responses.extend(response_examples(
        &[project_file("examples.jsonl")],
        false,
        &mut prov,
    )?);
    let mut prompt_files: Vec<PathBuf> = PERMISSIVE_PROMPT_FILES
        .iter()
        .map(|f| dir.join("prompts").join(f))
        .collect();
    prompt_files.push(dir.join("deccp_qwen2_7b.jsonl"));
    let mut prompts = prompt_examples(&prompt_files, true, &mut prov)?;
    prompts.extend(prompt_examples(
        &[project_file("prompts.jsonl")],
        false,
        &mut prov,
    )?);
    Ok((responses, prompts, prov))
}

/// Runs `train`.
pub fn run(args: TrainArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut prov = Provenance::default();
    let mut responses = response_examples(&args.responses, args.fit_only, &mut prov)?;
    let mut prompts = prompt_examples(&args.prompts, args.fit_only, &mut prov)?;
    if args.shipped || (args.responses.is_empty() && args.prompts.is_empty()) {
        let (r, p, pv) = shipped_data(args.datasets.clone())?;
        responses.extend(r);
        prompts.extend(p);
        prov.files.extend(pv.files);
    }
    for (f, n) in &prov.files {
        eprintln!("  {n:>6} rows  {f}");
    }
    let features = FeatureConfig {
        buckets: args.buckets,
        ..FeatureConfig::default()
    };
    let cfg = TrainConfig {
        dim: args.dim,
        epochs: args.epochs,
        learning_rate: args.lr,
        seed: args.seed,
        class_weight_power: args.class_weight_power,
        ..TrainConfig::default()
    };
    let started = std::time::Instant::now();
    let response = if responses.is_empty() {
        None
    } else {
        eprintln!("training the answer head on {} examples", responses.len());
        Some(train_ngram_head(
            &responses,
            &RESPONSE_LABELS,
            features,
            &cfg,
            |e, l| eprintln!("  epoch {e}: loss {l:.4}"),
        )?)
    };
    let prompt = if prompts.is_empty() {
        None
    } else {
        eprintln!("training the prompt head on {} examples", prompts.len());
        Some(train_ngram_head(
            &prompts,
            &PROMPT_LABELS,
            features,
            &cfg,
            |e, l| eprintln!("  epoch {e}: loss {l:.4}"),
        )?)
    };
    let mut info = std::collections::HashMap::new();
    info.insert("trained".to_string(), today());
    info.insert("train_config".to_string(), serde_json::to_string(&cfg)?);
    info.insert("data".to_string(), serde_json::to_string(&prov.files)?);
    let model = NgramModel {
        response,
        prompt,
        info,
    };
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    model.save(&args.out)?;
    let size = std::fs::metadata(&args.out)?.len();
    eprintln!(
        "wrote {} ({:.2} MB) in {:.1}s",
        args.out.display(),
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = args.encoder_heads {
        crate::classify::encoder::train_heads_cli(&path, &responses, &prompts)?;
    }
    Ok(())
}
