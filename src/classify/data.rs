//! Labelled records for training and measuring the classifiers.
//!
//! Reads the JSON Lines shape of ../shared/datasets (response files and prompts/ files) and
//! the project's own example files, and maps upstream labels onto [`ResponseLabel`] with the
//! mapping of the datasets README (kept here in code, not in the data):
//! COMPLETE, DNA 1/2/3/5 → answer; DENIAL, DNA 0 → refusal; EVASIVE → evasion; DNA 4 →
//! inability; provider errors and prompt-level labels (deccp's `censored`) → not a response
//! label. The project's own label names (`answer`, `refusal`, `evasion`, `inability`) map to
//! themselves, so a user's file can use them directly.

use std::io::BufRead;
use std::path::Path;

use serde::Deserialize;

use super::{ClassifyError, ResponseLabel};

/// One record of a response file or a prompt file (unknown fields are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct Record {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub lang: String,
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub response: Option<String>,
    /// The upstream label, verbatim (a string or a number).
    #[serde(default)]
    pub label: Option<serde_json::Value>,
    /// Prompt files: the harm mapping (`null` where unclear).
    #[serde(default)]
    pub harmful: Option<bool>,
    #[serde(default)]
    pub category: Option<serde_json::Value>,
}

impl Record {
    /// The label as a string (`"0"` for the number 0).
    pub fn label_str(&self) -> Option<String> {
        match self.label.as_ref()? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// The response label under the datasets README mapping, when there is one.
    pub fn response_label(&self) -> Option<ResponseLabel> {
        self.response.as_ref()?;
        map_response_label(&self.label_str()?)
    }
}

/// Maps an upstream or project label onto a response label.
pub fn map_response_label(label: &str) -> Option<ResponseLabel> {
    match label {
        // gptfuzz '1' (jailbroken: complied) and jade 违规回答 (complied) are answers;
        // gptfuzz '0' and jade 安全有用回答 are non-answers, mostly refusals.
        "COMPLETE" | "1" | "2" | "3" | "5" | "违规回答" => Some(ResponseLabel::Answer),
        "DENIAL" | "0" | "安全有用回答" => Some(ResponseLabel::Refusal),
        "EVASIVE" => Some(ResponseLabel::Evasion),
        "4" => Some(ResponseLabel::Inability),
        other => ResponseLabel::parse(&other.to_ascii_lowercase()),
    }
}

/// Reads every record of a JSON Lines file; bad lines are reported with their number.
pub fn read_jsonl(path: &Path) -> Result<Vec<Record>, ClassifyError> {
    let io = |source| ClassifyError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let rec: Record = serde_json::from_str(&line)
            .map_err(|e| ClassifyError::Invalid(format!("{}:{}: {e}", path.display(), i + 1)))?;
        out.push(rec);
    }
    Ok(out)
}

/// The shared datasets folder: `$REFUSAL_GUARD_DATASETS`, else `../shared/datasets` or
/// `../../shared/datasets` from the current directory, else `/work/shared/datasets`.
pub fn datasets_dir() -> Option<std::path::PathBuf> {
    if let Ok(p) = std::env::var("REFUSAL_GUARD_DATASETS") {
        return Some(p.into());
    }
    [
        "../shared/datasets",
        "../../shared/datasets",
        "shared/datasets",
        "/work/shared/datasets",
    ]
    .iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.join("speechmap_criticism_nonqwen.jsonl").is_file())
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_follows_the_readme() {
        assert_eq!(map_response_label("COMPLETE"), Some(ResponseLabel::Answer));
        assert_eq!(map_response_label("DENIAL"), Some(ResponseLabel::Refusal));
        assert_eq!(map_response_label("EVASIVE"), Some(ResponseLabel::Evasion));
        assert_eq!(map_response_label("0"), Some(ResponseLabel::Refusal));
        assert_eq!(map_response_label("3"), Some(ResponseLabel::Answer));
        assert_eq!(map_response_label("4"), Some(ResponseLabel::Inability));
        assert_eq!(map_response_label("ERROR_ORIGINAL_MODERATION"), None);
        assert_eq!(map_response_label("censored"), None);
        assert_eq!(map_response_label("refusal"), Some(ResponseLabel::Refusal));
        assert_eq!(map_response_label("违规回答"), Some(ResponseLabel::Answer));
        assert_eq!(map_response_label("安全有用回答"), Some(ResponseLabel::Refusal));
    }

    #[test]
    fn numeric_labels_read_as_strings() {
        let r: Record = serde_json::from_str(r#"{"id":"x","label":0,"response":"no"}"#).unwrap();
        assert_eq!(r.response_label(), Some(ResponseLabel::Refusal));
    }
}

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

fn response_example(r: &Record) -> Option<super::train::Example> {
    let label = r.response_label()?;
    Some(super::train::Example {
        text: r.response.clone()?,
        label: label.index(),
        weight: 1.0,
    })
}

fn prompt_example(r: &Record) -> Option<super::train::Example> {
    Some(super::train::Example {
        text: r.prompt.clone()?,
        label: usize::from(r.harmful?),
        weight: 1.0,
    })
}

/// Response-head examples from files: every labelled row, or only the fit split.
pub fn response_examples(
    files: &[std::path::PathBuf],
    fit_only: bool,
    prov: &mut Provenance,
) -> Result<Vec<super::train::Example>, ClassifyError> {
    let mut out = Vec::new();
    for f in files {
        let before = out.len();
        for r in read_jsonl(f)? {
            if fit_only && !super::is_fit(&r.id) {
                continue;
            }
            out.extend(response_example(&r));
        }
        prov.files.push((short_name(f), out.len() - before));
    }
    Ok(out)
}

/// Prompt-head examples from files (rows with a `harmful` value): every row, or the fit split.
/// deccp rows (`deccp-orig-*`) count as benign prompts: political questions that a provider
/// censors are not harmful requests.
pub fn prompt_examples(
    files: &[std::path::PathBuf],
    fit_only: bool,
    prov: &mut Provenance,
) -> Result<Vec<super::train::Example>, ClassifyError> {
    let mut out = Vec::new();
    for f in files {
        let before = out.len();
        for mut r in read_jsonl(f)? {
            if fit_only && !super::is_fit(&r.id) {
                continue;
            }
            if r.id.starts_with("deccp-") {
                if !r.id.starts_with("deccp-orig") {
                    continue;
                }
                r.harmful = Some(false);
            }
            out.extend(prompt_example(&r));
        }
        prov.files.push((short_name(f), out.len() - before));
    }
    Ok(out)
}
