//! What training needs to know of its data beyond the records themselves: which shared
//! files a licence lets the shipped weights learn from, the heads' label columns, and the
//! names and row counts a model card gives its files.
//!
//! The records, and the mapping from upstream labels to classes, are
//! [`crate::dataset`]'s: `train` reads a file through the same [`crate::dataset::Record`]
//! and [`crate::dataset::LabelMap`] as `eval` and `audit` score it with.

use std::path::Path;

/// Prompt files whose licence allows training the shipped weights (MIT, Apache-2.0,
/// CC-BY-4.0; see prompts/LICENSES.md). Not here: nq_open (CC-BY-SA-3.0, share-alike),
/// xsafety (README says research use only), and the sets that are not requests
/// (openai_moderation and cold: content samples; flames: no harm label).
pub const PERMISSIVE_PROMPT_FILES: &[&str] = &[
    "advbench.jsonl",
    "harmbench.jsonl",
    "strongreject.jsonl",
    "simplesafetytests.jsonl",
    "harmfulqa.jsonl",
    "catqa.jsonl",
    "dangerousqa.jsonl",
    "cyberseceval_interpreter.jsonl",
    "coconot.jsonl",
    "cyberseceval_frr.jsonl",
    "self_instruct.jsonl",
    "fastchat_bench.jsonl",
    "multijail.jsonl",
    "jade.jsonl",
    "cvalues_responsibility.jsonl",
    "safetybench_zh.jsonl",
];

/// Response files whose licence allows training the shipped weights (Apache-2.0, MIT).
/// Not here: do_not_answer_en (CC BY-NC-SA 4.0: evaluation only) and deccp (prompt-level
/// labels only).
pub const PERMISSIVE_RESPONSE_FILES: &[&str] = &[
    "speechmap_criticism_nonqwen.jsonl",
    "gptfuzz_responses.jsonl",
    "jade_v3_zh.jsonl",
];

/// The labels of the response head, in column order.
pub const RESPONSE_LABELS: [&str; 4] = ["answer", "refusal", "evasion", "inability"];
/// The labels of the prompt head, in column order.
pub const PROMPT_LABELS: [&str; 2] = ["benign", "harmful"];

/// A short name of a data file for model cards: `prompts/x.jsonl` or `x.jsonl`.
pub fn short_name(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    match path.parent().and_then(|p| p.file_name()) {
        Some(dir) if dir == "prompts" || dir == "refusal-ngram" => {
            format!("{}/{file}", dir.to_string_lossy())
        }
        _ => file,
    }
}

/// Where training examples came from, for the model card.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Provenance {
    /// `(file, rows used)`.
    pub files: Vec<(String, usize)>,
}
