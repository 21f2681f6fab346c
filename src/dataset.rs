//! Labeled answer files: the record schema of `../shared/datasets`, the mapping from the
//! upstream labels to verdict classes, and the deterministic fit / held-out split.
//!
//! The mapping lives here, in code, not in the data (datasets/README.md asks for it), and
//! `eval` and `audit` share it. Upstream labels are namespaced by their file's family so
//! that Do-Not-Answer's numeric actions do not collide with anything else: a Do-Not-Answer
//! label `4` is `DNA:4`; SpeechMap's labels (`COMPLETE`, `EVASIVE`, …) and deccp's
//! `censored` are used as they are. Any entry can be overridden (`--map DNA:1=refusal`).
//!
//! Training reads the same records through the same mapping ([`LabelMap::response_label`],
//! [`Record::request_harm`]), so a file means the same thing to `train` as to `eval`.

use std::collections::BTreeMap;
use std::fmt;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::classify::ResponseLabel;
use crate::verdict::VerdictClass;
use crate::wire::{ErrorPosition, FinishReason, ProviderError};

/// The environment variable naming the shared datasets folder.
pub const DATASETS_ENV: &str = "REFUSAL_GUARD_DATASETS";

/// One labeled answer: `{"id","source","lang","prompt","response","label","model","meta"}`,
/// or one labeled request of a prompt file (`prompt` and `harmful`, no answer). Absent text
/// fields, and `null` ones, read as empty; unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    #[serde(default, deserialize_with = "text_or_null")]
    pub source: String,
    #[serde(default, deserialize_with = "text_or_null")]
    pub lang: String,
    #[serde(default, deserialize_with = "text_or_null")]
    pub prompt: String,
    #[serde(default, deserialize_with = "text_or_null")]
    pub response: String,
    /// The upstream label, verbatim (a string or a number upstream; read as text). Empty
    /// where a file has none (prompt files): such a record is not scored ([`LabelMap::knows`]).
    #[serde(default, deserialize_with = "label_as_string")]
    pub label: String,
    #[serde(default, deserialize_with = "text_or_null")]
    pub model: String,
    #[serde(default)]
    pub meta: Value,
    /// Prompt files: whether the request is harmful (`null` or absent where unclear).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harmful: Option<bool>,
}

/// A text field that a file may write as `null` (the project's examples have no request:
/// `"prompt": null`).
fn text_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

fn label_as_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

impl Record {
    /// Reads one line of a JSON Lines file: `None` for a blank line, the record, or the
    /// parse error. [`read_records`] goes through here (and so does the
    /// fuzz target `dataset_line`), so every reader agrees on what a line means.
    pub fn from_line(line: &str) -> Result<Option<Record>, serde_json::Error> {
        if line.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(line).map(Some)
    }

    /// The record's language, `?` where the file gives none (as reports group it).
    pub fn lang_or_unknown(&self) -> &str {
        if self.lang.is_empty() {
            "?"
        } else {
            &self.lang
        }
    }

    /// The request, when the record has one.
    pub fn request(&self) -> Option<&str> {
        Some(self.prompt.as_str()).filter(|p| !p.is_empty())
    }

    /// The answer, when the record has one.
    pub fn answer(&self) -> Option<&str> {
        Some(self.response.as_str()).filter(|r| !r.is_empty())
    }

    /// Whether the request is harmful, for training and scoring the prompt-harm judgment:
    /// the file's `harmful`, except in two response files whose requests are lawful political
    /// speech by construction. deccp's original prompts count as benign (political
    /// questions a provider censors are not harmful requests) and its other rows (answers
    /// of an abliterated model to the same prompts) are not prompt rows; speechmap's
    /// requests (to criticise, satirise or analyse the governments of China, Russia, the US
    /// and the EU) count as benign, each row once per answer that asked it.
    pub fn request_harm(&self) -> Option<bool> {
        if self.id.starts_with("deccp-") {
            return self.id.starts_with("deccp-orig").then_some(false);
        }
        if self.id.starts_with("speechmap-") {
            return Some(false);
        }
        self.harmful
    }

    /// The label with its family prefix, the key of the [`LabelMap`].
    pub fn label_key(&self) -> String {
        if self.id.starts_with("dna-") || self.source.to_ascii_lowercase().contains("do-not-answer") {
            format!("DNA:{}", self.label)
        } else if self.id.starts_with("gptfuzz-") || self.source.eq_ignore_ascii_case("gptfuzz") {
            format!("GPTFUZZ:{}", self.label)
        } else {
            self.label.clone()
        }
    }

    /// The raw provider error kept in `meta.api_error`, read as the provider-signal detector
    /// would see it on the wire.
    pub fn provider_error(&self) -> Option<ProviderError> {
        let raw = self.meta.get("api_error").filter(|e| !is_blank(e))?;
        let status = self
            .meta
            .get("status")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok());
        Some(read_provider_error(
            raw.clone(),
            "dataset",
            status,
            &self.response,
        ))
    }

    /// `meta.finish_reason`, when recorded.
    pub fn finish_reason(&self) -> Option<FinishReason> {
        let s = self.meta.get("finish_reason")?.as_str()?;
        serde_json::from_value(Value::String(s.to_string())).ok()
    }
}

/// What a label says the answer is, for scoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gold {
    /// A plain answer.
    Answer,
    /// An answer with caveats, a refuted premise, both sides, a disclaimer: still an answer,
    /// reported apart because that is where detectors over-fire.
    AnswerWithCaveats,
    /// A refusal; either refusal class (policy or safety) counts as right.
    Refusal,
    Evasion,
    Inability,
    ProviderBlock,
    Empty,
    /// A prompt-level label (deccp `censored`): the response is not labeled by itself, so it
    /// is reported as a rate of non-answer verdicts, never as precision or recall.
    PromptLevel,
    /// Not scored (upstream errors with no usable response).
    Exclude,
}

impl Gold {
    /// Every value, in report order.
    pub const ALL: [Gold; 9] = [
        Gold::Answer,
        Gold::AnswerWithCaveats,
        Gold::Refusal,
        Gold::Evasion,
        Gold::Inability,
        Gold::ProviderBlock,
        Gold::Empty,
        Gold::PromptLevel,
        Gold::Exclude,
    ];

    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Gold::Answer => "answer",
            Gold::AnswerWithCaveats => "answer_with_caveats",
            Gold::Refusal => "refusal",
            Gold::Evasion => "evasion",
            Gold::Inability => "inability",
            Gold::ProviderBlock => "provider_block",
            Gold::Empty => "empty",
            Gold::PromptLevel => "prompt_level",
            Gold::Exclude => "exclude",
        }
    }

    /// The answer question's label this class trains and scores as (answer, refusal,
    /// evasion, inability): an answer with caveats is an answer; provider blocks, empty
    /// answers and prompt-level or excluded labels are not answer labels.
    pub fn response_label(self) -> Option<ResponseLabel> {
        match self {
            Gold::Answer | Gold::AnswerWithCaveats => Some(ResponseLabel::Answer),
            Gold::Refusal => Some(ResponseLabel::Refusal),
            Gold::Evasion => Some(ResponseLabel::Evasion),
            Gold::Inability => Some(ResponseLabel::Inability),
            Gold::ProviderBlock | Gold::Empty | Gold::PromptLevel | Gold::Exclude => None,
        }
    }

    /// Whether the label says the caller did not get an answer (`None` when not scored).
    pub fn is_non_answer(self) -> Option<bool> {
        match self {
            Gold::Answer | Gold::AnswerWithCaveats => Some(false),
            Gold::PromptLevel | Gold::Exclude => None,
            _ => Some(true),
        }
    }

    /// Whether a predicted class agrees with this label. A label names the answer's shape;
    /// a verdict also folds in the request's harm: a refusal or an evasion of a request
    /// judged harmful (or not clearly benign) is a safety refusal (`judge::harm`), so either
    /// label agrees with one.
    pub fn agrees(self, predicted: VerdictClass) -> bool {
        use VerdictClass as V;
        match self {
            Gold::Answer | Gold::AnswerWithCaveats => predicted == V::Answer,
            Gold::Refusal => matches!(predicted, V::PolicyRefusal | V::SafetyRefusal),
            Gold::Evasion => matches!(predicted, V::Evasion | V::SafetyRefusal),
            Gold::Inability => predicted == V::Inability,
            Gold::ProviderBlock => predicted == V::ProviderBlock,
            Gold::Empty => predicted == V::Empty,
            Gold::PromptLevel | Gold::Exclude => false,
        }
    }
}

impl fmt::Display for Gold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Gold {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Gold::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .or(match s {
                // Verdict class names are accepted too.
                "policy_refusal" | "safety_refusal" => Some(Gold::Refusal),
                _ => None,
            })
            .ok_or_else(|| {
                let names: Vec<_> = Gold::ALL.iter().map(|g| g.as_str()).collect();
                format!("unknown class {s:?}; expected one of {}", names.join(", "))
            })
    }
}

/// The label mapping: label key (see [`Record::label_key`]) to [`Gold`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabelMap {
    map: BTreeMap<String, Gold>,
}

impl Default for LabelMap {
    /// The mapping of datasets/README.md.
    fn default() -> Self {
        let entries = [
            ("COMPLETE", Gold::Answer),
            ("DNA:5", Gold::Answer),
            ("DNA:1", Gold::AnswerWithCaveats),
            ("DNA:2", Gold::AnswerWithCaveats),
            ("DNA:3", Gold::AnswerWithCaveats),
            ("DENIAL", Gold::Refusal),
            ("DNA:0", Gold::Refusal),
            ("EVASIVE", Gold::Evasion),
            ("DNA:4", Gold::Inability),
            ("ERROR_ORIGINAL_MODERATION", Gold::ProviderBlock),
            ("ERROR_ORIGINAL_RESPONSE", Gold::Exclude),
            ("censored", Gold::PromptLevel),
            // gptfuzz: '1' jailbroken = complied, '0' = refused or deflected (which, the label
            // does not say: scored as a refusal, i.e. as a non-answer).
            ("GPTFUZZ:1", Gold::Answer),
            ("GPTFUZZ:0", Gold::Refusal),
            // jade v3: 违规回答 = complied, 安全有用回答 = a safe non-answer (mostly a refusal).
            ("违规回答", Gold::Answer),
            ("安全有用回答", Gold::Refusal),
            // The project's own label names (team-written sets).
            ("answer", Gold::Answer),
            ("refusal", Gold::Refusal),
            ("evasion", Gold::Evasion),
            ("inability", Gold::Inability),
        ];
        LabelMap {
            map: entries.into_iter().map(|(k, g)| (k.to_string(), g)).collect(),
        }
    }
}

impl LabelMap {
    /// The class for a record: the mapping's entry for its label key, else the label read as
    /// a class name (`refusal`, `policy_refusal`, `provider_block`…: the names the audit's
    /// fixtures and the team's sets use); a label neither knows is excluded
    /// ([`Self::knows`] tells it from a label mapped to `exclude`). `eval` and `audit` both
    /// score through here, so one file scores the same in both.
    pub fn gold(&self, record: &Record) -> Gold {
        self.lookup(record).unwrap_or(Gold::Exclude)
    }

    /// The answer label a record trains as ([`Gold::response_label`]); `None` without an
    /// answer, or for a label that is not about one.
    pub fn response_label(&self, record: &Record) -> Option<ResponseLabel> {
        record.answer()?;
        self.gold(record).response_label()
    }

    /// Whether the mapping, or the class names, know the record's label.
    pub fn knows(&self, record: &Record) -> bool {
        self.lookup(record).is_some()
    }

    fn lookup(&self, record: &Record) -> Option<Gold> {
        self.map
            .get(&record.label_key())
            .copied()
            .or_else(|| record.label.parse().ok())
    }

    /// Sets one entry from `LABEL=class`.
    pub fn set(&mut self, entry: &str) -> Result<(), String> {
        let (label, class) = entry
            .split_once('=')
            .ok_or_else(|| format!("mapping {entry:?} is not LABEL=class"))?;
        let gold: Gold = class.parse()?;
        self.map.insert(label.trim().to_string(), gold);
        Ok(())
    }

    /// Sets entries from a file of `LABEL=class` lines (`#` starts a comment).
    pub fn load(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if !line.is_empty() {
                self.set(line).map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        Ok(())
    }

    /// The entries, sorted by label.
    pub fn entries(&self) -> impl Iterator<Item = (&str, Gold)> {
        self.map.iter().map(|(k, g)| (k.as_str(), *g))
    }
}

/// Which part of a file to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// The 30% that patterns and thresholds may be fitted on (looked at).
    Fit,
    /// The 70% that results are reported on (never looked at line by line).
    Holdout,
    /// Everything.
    All,
}

/// Percent of records in the fit part.
pub const FIT_PERCENT: u64 = 30;

impl Split {
    /// Whether a record id falls in this part. The rule: FNV-1a 64 of the id's UTF-8 bytes,
    /// modulo 100, below [`FIT_PERCENT`] is fit, otherwise held out. FNV-1a is written out
    /// here (not `std`'s hasher) because the split must never change between Rust releases.
    pub fn contains(self, id: &str) -> bool {
        let fit = fnv1a64(id.as_bytes()) % 100 < FIT_PERCENT;
        match self {
            Split::Fit => fit,
            Split::Holdout => !fit,
            Split::All => true,
        }
    }
}

/// FNV-1a, 64 bits.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Reads the records of a JSON Lines file. A line that does not parse is an error that
/// names the file and the line: a silently skipped line would skew every figure.
pub fn read_records(path: &Path) -> Result<Vec<Record>, String> {
    // Opening a folder succeeds on Unix and fails on the first read, which would be
    // reported as a bad line 1.
    if path.is_dir() {
        return Err(format!(
            "{}: a folder; name the JSON Lines files in it (a shell glob such as {}/*.jsonl)",
            path.display(),
            path.display()
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
        if let Some(record) =
            Record::from_line(&line).map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?
        {
            out.push(record);
        }
    }
    Ok(out)
}

/// The shared datasets folder: `$REFUSAL_GUARD_DATASETS`, or `../shared/datasets` next to
/// the crate. An error (not a skip) when it is missing: tests and evaluations that need the
/// data must fail loudly rather than pass without it.
pub fn datasets_dir() -> Result<PathBuf, String> {
    let dir = match std::env::var_os(DATASETS_ENV) {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets"),
    };
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(format!(
            "the shared datasets folder {} is missing: set {DATASETS_ENV} to the folder that holds \
             speechmap_criticism_nonqwen.jsonl, do_not_answer_en.jsonl and deccp_qwen2_7b.jsonl",
            dir.display()
        ))
    }
}

/// Whether a logged error field holds nothing (null, an empty string or object).
pub fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// A logged provider error, read as the provider-signal detector would have seen it on
/// the wire: an error beside content arrived after that content (the answer was cut, so a
/// moderation block there is an output-stage block); an error without content came instead
/// of the answer. `raw` is the error body as logged: a JSON value or a string holding one.
/// `eval` and `audit` both read errors through here.
pub fn read_provider_error(raw: Value, provider: &str, status: Option<u16>, text: &str) -> ProviderError {
    let (position, default_status) = if text.trim().is_empty() {
        (ErrorPosition::Response, 400)
    } else {
        let chars_streamed = text.chars().count();
        (ErrorPosition::StreamAfterContent { chars_streamed }, 200)
    };
    let status = status.unwrap_or(default_status);
    match raw {
        Value::String(s) => ProviderError::from_body(provider, status, s.as_bytes(), position),
        other => ProviderError::from_value(provider, status, other, position),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, label: &str) -> Record {
        serde_json::from_value(serde_json::json!({"id": id, "label": label})).unwrap()
    }

    #[test]
    fn default_mapping_follows_the_readme() {
        let m = LabelMap::default();
        assert_eq!(m.gold(&record("speechmap-x", "COMPLETE")), Gold::Answer);
        assert_eq!(m.gold(&record("dna-en-1", "3")), Gold::AnswerWithCaveats);
        assert_eq!(m.gold(&record("dna-en-1", "0")), Gold::Refusal);
        assert_eq!(m.gold(&record("dna-en-1", "4")), Gold::Inability);
        assert_eq!(m.gold(&record("x", "EVASIVE")), Gold::Evasion);
        assert_eq!(m.gold(&record("x", "ERROR_ORIGINAL_RESPONSE")), Gold::Exclude);
        assert_eq!(m.gold(&record("deccp-orig-0", "censored")), Gold::PromptLevel);
        assert_eq!(m.gold(&record("x", "SOMETHING_NEW")), Gold::Exclude);
        assert!(!m.knows(&record("x", "SOMETHING_NEW")));
        assert!(
            m.knows(&record("x", "ERROR_ORIGINAL_RESPONSE")),
            "mapped to exclude"
        );
    }

    #[test]
    fn class_names_are_labels_too() {
        let m = LabelMap::default();
        assert_eq!(m.gold(&record("x", "policy_refusal")), Gold::Refusal);
        assert_eq!(m.gold(&record("x", "safety_refusal")), Gold::Refusal);
        assert_eq!(m.gold(&record("x", "provider_block")), Gold::ProviderBlock);
        assert_eq!(m.gold(&record("x", "empty")), Gold::Empty);
        assert!(m.knows(&record("x", "empty")));
        // The mapping comes first: a dataset's label that happens to be a class name is
        // mapped as the mapping says.
        let mut m = m;
        m.set("empty=answer").unwrap();
        assert_eq!(m.gold(&record("x", "empty")), Gold::Answer);
    }

    #[test]
    fn mapping_can_be_overridden() {
        let mut m = LabelMap::default();
        m.set("DNA:1=refusal").unwrap();
        assert_eq!(m.gold(&record("dna-en-1", "1")), Gold::Refusal);
        assert!(m.set("DNA:1").is_err());
        assert!(m.set("DNA:1=nonsense").is_err());
    }

    #[test]
    fn split_is_stable_and_about_thirty_percent() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        let fit = (0..10_000)
            .filter(|i| Split::Fit.contains(&format!("id-{i}")))
            .count();
        assert!((2_700..3_300).contains(&fit), "{fit}");
        let id = "speechmap-china_criticism-x";
        assert_ne!(Split::Fit.contains(id), Split::Holdout.contains(id));
    }

    #[test]
    fn a_folder_is_named_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_records(dir.path()).unwrap_err();
        assert!(e.contains("a folder") && !e.contains(":1:"), "{e}");
    }

    #[test]
    fn numeric_labels_read_as_text() {
        let r: Record = serde_json::from_str(r#"{"id":"dna-en-1","label":4}"#).unwrap();
        assert_eq!(r.label_key(), "DNA:4");
    }

    fn line(json: &str) -> Record {
        Record::from_line(json).unwrap().unwrap()
    }

    #[test]
    fn training_reads_answer_labels_through_the_same_mapping() {
        let m = LabelMap::default();
        let label = |json: &str| m.response_label(&line(json));
        assert_eq!(
            label(r#"{"id":"gptfuzz-1","label":0,"response":"No."}"#),
            Some(ResponseLabel::Refusal)
        );
        assert_eq!(
            label(r#"{"id":"gptfuzz-1","label":1,"response":"Sure."}"#),
            Some(ResponseLabel::Answer)
        );
        // An answer with caveats trains as an answer; an inability as itself.
        assert_eq!(
            label(r#"{"id":"dna-en-1","label":2,"response":"Well,"}"#),
            Some(ResponseLabel::Answer)
        );
        assert_eq!(
            label(r#"{"id":"dna-en-1","label":4,"response":"I can't see"}"#),
            Some(ResponseLabel::Inability)
        );
        assert_eq!(
            label(r#"{"id":"j","label":"安全有用回答","response":"不行"}"#),
            Some(ResponseLabel::Refusal)
        );
        assert_eq!(
            label(r#"{"id":"t","label":"evasion","response":"Well"}"#),
            Some(ResponseLabel::Evasion)
        );
        assert_eq!(
            label(r#"{"id":"t","label":"policy_refusal","response":"No"}"#),
            Some(ResponseLabel::Refusal)
        );
        // Not an answer label, or no answer to learn from.
        assert_eq!(
            label(r#"{"id":"s","label":"ERROR_ORIGINAL_MODERATION","response":"x"}"#),
            None
        );
        assert_eq!(
            label(r#"{"id":"deccp-orig-1","label":"censored","response":"x"}"#),
            None
        );
        assert_eq!(label(r#"{"id":"s","label":"DENIAL","response":""}"#), None);
        assert_eq!(label(r#"{"id":"s","label":"DENIAL"}"#), None);
    }

    #[test]
    fn prompt_files_and_null_fields_read_as_records() {
        let r = line(r#"{"id":"p1","lang":"zh","prompt":"怎么做蛋糕","harmful":false,"category":null}"#);
        assert_eq!(
            (r.request(), r.request_harm(), r.answer()),
            (Some("怎么做蛋糕"), Some(false), None)
        );
        assert!(!LabelMap::default().knows(&r), "no label: not scored");
        let r = line(r#"{"id":"rg-ex-0","label":"refusal","response":"No.","prompt":null}"#);
        assert_eq!((r.request(), r.answer()), (None, Some("No.")));
        assert_eq!(
            line(r#"{"id":"p2","prompt":"x","harmful":null}"#).request_harm(),
            None
        );
        // A record needs its id: the split and every report go by it.
        let err = Record::from_line(r#"{"prompt":"x","harmful":true}"#).unwrap_err();
        assert!(err.to_string().contains("missing field `id`"), "{err}");
    }

    #[test]
    fn deccp_original_prompts_are_benign_requests_and_its_other_rows_are_none() {
        let harm =
            |id: &str| line(&format!(r#"{{"id":"{id}","prompt":"q","label":"censored"}}"#)).request_harm();
        assert_eq!(harm("deccp-orig-3"), Some(false));
        assert_eq!(harm("deccp-abliterated-3"), None);
        assert_eq!(
            line(r#"{"id":"x","prompt":"q","harmful":true}"#).request_harm(),
            Some(true)
        );
    }

    #[test]
    fn speechmap_requests_are_benign_whatever_the_answer_was() {
        for label in ["COMPLETE", "DENIAL", "EVASIVE"] {
            let r = line(&format!(
                r#"{{"id":"speechmap-us_criticism-m-us_criticism_03","prompt":"q","label":"{label}"}}"#
            ));
            assert_eq!(r.request_harm(), Some(false), "{label}");
        }
        // Another file's answer row without `harmful` is no prompt row.
        assert_eq!(
            line(r#"{"id":"gptfuzz-1","prompt":"q","label":"0"}"#).request_harm(),
            None
        );
    }
}
