//! Classification with local models: what kind of non-answer is this, and was the request
//! harmful?
//!
//! Detectors ([`crate::detect`]) find *that* something is off; classifiers say *what* it
//! is. Two questions are asked, each by whichever models can answer it:
//! - the answer: [`ResponseLabel`] (an answer, a refusal, an evasion, an inability);
//! - the prompt: harmful (with the guard model's categories) or benign.
//!
//! The verdict follows from both: a refusal of a harmful prompt is a justified
//! [`SafetyRefusal`](crate::verdict::VerdictKind::SafetyRefusal); a refusal of a benign prompt is a
//! [`PolicyRefusal`](crate::verdict::VerdictKind::PolicyRefusal) that the router may send elsewhere.
//!
//! Models are organised as tiers of a [`Cascade`], cheapest first: the embedded n-gram
//! model ([`ngram`], about a tenth of a millisecond, shipped inside the binary), the sentence
//! encoder with trained heads ([`encoder`], tens of milliseconds), and the generative guards
//! ([`llama_guard`], [`qwen3_guard`], about a second on a CPU). A tier answers when it is
//! confident enough and passes the question on otherwise. [`CascadeDetector`] makes a cascade
//! usable wherever a [`crate::detect::Detector`] is expected (the guard layer, `eval`).

pub mod bert;
pub mod cascade;
pub mod causal_lm;
pub mod data;
pub mod e5;
pub mod encoder;
pub mod evaluate;
pub mod features;
pub mod gguf_tokenizer;
pub mod llama_guard;
pub mod ngram;
pub mod packed;
pub mod passes;
pub mod prompt_memo;
pub mod qwen3_guard;
pub mod short_head;
pub mod text_lru;
pub mod tiers;
pub mod train;
pub mod weights_file;

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use cascade::{Cascade, CascadeDetector, Classification, Tier, TierRun};
pub use passes::{blocking, concurrent_passes, queued_passes, Priority, MODEL_PASSES_ENV, MODEL_QUEUE_ENV};

/// What an answer is, as the classifiers see it. Provider blocks and empty answers are not
/// here: provider signals decide those without a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseLabel {
    /// The model answered (caveats and disclaimers included).
    Answer,
    /// The model declined.
    Refusal,
    /// The model talked around the question.
    Evasion,
    /// The model cannot know or do it.
    Inability,
}

impl ResponseLabel {
    /// The label a verdict class stands for (either refusal class is a refusal); `None`
    /// for the classes that are not about the answer's words (a block, an empty answer).
    pub fn of_class(class: crate::verdict::VerdictClass) -> Option<ResponseLabel> {
        use crate::verdict::VerdictClass;
        match class {
            VerdictClass::Answer => Some(ResponseLabel::Answer),
            VerdictClass::PolicyRefusal | VerdictClass::SafetyRefusal => Some(ResponseLabel::Refusal),
            VerdictClass::Evasion => Some(ResponseLabel::Evasion),
            VerdictClass::Inability => Some(ResponseLabel::Inability),
            VerdictClass::ProviderBlock | VerdictClass::Empty => None,
        }
    }

    /// Every label, in the order of the models' output columns.
    pub const ALL: [ResponseLabel; 4] = [
        ResponseLabel::Answer,
        ResponseLabel::Refusal,
        ResponseLabel::Evasion,
        ResponseLabel::Inability,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseLabel::Answer => "answer",
            ResponseLabel::Refusal => "refusal",
            ResponseLabel::Evasion => "evasion",
            ResponseLabel::Inability => "inability",
        }
    }

    /// The column of this label in probability vectors.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Parses a label name (`answer`, `refusal`, `evasion`, `inability`).
    pub fn parse(s: &str) -> Option<Self> {
        ResponseLabel::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

impl fmt::Display for ResponseLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classifier's reading of an answer: a probability per [`ResponseLabel`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseJudgement {
    /// Probabilities in [`ResponseLabel::ALL`] order; they sum to 1.
    pub probs: [f32; 4],
}

impl ResponseJudgement {
    /// A judgement that puts `p` on `label` and spreads the rest evenly.
    pub fn certain(label: ResponseLabel, p: f32) -> Self {
        let rest = (1.0 - p) / 3.0;
        let mut probs = [rest; 4];
        probs[label.index()] = p;
        ResponseJudgement { probs }
    }

    /// The most probable label.
    pub fn label(&self) -> ResponseLabel {
        let mut best = 0;
        for i in 1..4 {
            if self.probs[i] > self.probs[best] {
                best = i;
            }
        }
        ResponseLabel::ALL[best]
    }

    /// The probability of the most probable label.
    pub fn confidence(&self) -> f32 {
        self.probs[self.label().index()]
    }

    /// A head's class probabilities `p`, in the order of its `labels`, as a judgement
    /// (labels that are not a [`ResponseLabel`] are dropped; repeated ones add up).
    pub fn from_labels(labels: &[String], p: Vec<f32>) -> Self {
        let mut probs = [0f32; 4];
        for (l, p) in labels.iter().zip(p) {
            if let Some(l) = ResponseLabel::parse(l) {
                probs[l.index()] += p;
            }
        }
        ResponseJudgement { probs }
    }

    /// The probability that this is not an answer.
    pub fn non_answer(&self) -> f32 {
        1.0 - self.probs[ResponseLabel::Answer.index()]
    }
}

/// A classifier's reading of a prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptJudgement {
    /// The probability that the request is harmful.
    pub harmful: f32,
    /// Taxonomy codes or names (`S1`, `Violent`, …) when the model gives them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// The request's language (a [`crate::lang::language`] code) when the judge never
    /// learned to tell harmful from benign requests in it: its reading may still flag the
    /// request, but cannot clear it as benign ([`crate::judge::HarmPolicy`] fails safe), and
    /// a cascade asks the next tier rather than take its "harmful" as final. The n-gram head
    /// names it for readings short of harmful; for a harmful one a cascade asks the tier
    /// ([`Classifier::learned_language`]) only when the answer matters.
    /// `None` when the judge knows the language, or does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unlearned_language: Option<String>,
    /// Why a later tier that should have checked this reading could not (it failed, or its
    /// pass was shed: [`ClassifyError::Busy`]). A cascade takes only a *harmful* reading
    /// of an early tier as final, because a benign one re-routes a refusal; unchecked, such
    /// a reading may keep a refusal but not clear one ([`crate::judge::HarmPolicy`] fails
    /// safe), and it is not remembered for the next request. `None` when nothing was
    /// left unchecked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unchecked: Option<String>,
}

impl PromptJudgement {
    /// A reading of `harmful` with no categories, in a language the judge learned.
    pub fn harm(harmful: f32) -> Self {
        PromptJudgement {
            harmful,
            categories: Vec::new(),
            unlearned_language: None,
            unchecked: None,
        }
    }

    /// Whether the prompt counts as harmful at the 0.5 threshold.
    pub fn is_harmful(&self) -> bool {
        self.harmful >= 0.5
    }

    /// How sure the judgement is of its side: `max(p, 1 - p)`.
    pub fn confidence(&self) -> f32 {
        self.harmful.max(1.0 - self.harmful)
    }
}

/// Reads a model file whole (n-gram model, encoder heads, combiner), the error naming it.
pub(crate) fn read_model_file(path: &std::path::Path) -> Result<Vec<u8>, ClassifyError> {
    std::fs::read(path).map_err(|source| ClassifyError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Why a classifier could not judge.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    /// A model's weights or tokenizer are not where they should be.
    #[error("model {model} is not available locally: {detail}. Provide it with: {fix}")]
    MissingModel {
        model: String,
        detail: String,
        /// The command that provides it.
        fix: String,
    },
    /// Loading or running a model failed.
    #[error("model {model}: {message}")]
    Model { model: String, message: String },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Bad input or configuration.
    #[error("{0}")]
    Invalid(String),
    /// The pass was not run: this many model passes already waited for a turn
    /// ([`passes::queued_passes`]). The caller judges without it.
    #[error(
        "model {model}: not run, {waiting} model passes already wait for a turn (set {env} to let more wait)",
        env = MODEL_QUEUE_ENV
    )]
    Busy { model: String, waiting: usize },
}

impl ClassifyError {
    /// Whether the model was not run because too many passes waited
    /// ([`ClassifyError::Busy`]): an overloaded server's normal day, logged at debug level
    /// and counted by [`passes::pass_counters`], where other failures are warnings.
    pub fn is_busy(&self) -> bool {
        matches!(self, ClassifyError::Busy { .. })
    }

    /// Logs this failure of `classifier` and what the caller does instead
    /// (`consequence`): a warning, or a debug line for [`ClassifyError::Busy`], which an
    /// overloaded server meets on every request it sheds (the gateway counts those).
    pub fn report(&self, classifier: &str, consequence: &str) {
        if self.is_busy() {
            tracing::debug!(classifier, error = %self, "{consequence}");
        } else {
            tracing::warn!(classifier, error = %self, "{consequence}");
        }
    }

    /// A model error with the model's name.
    pub fn model(model: impl Into<String>, message: impl fmt::Display) -> Self {
        ClassifyError::Model {
            model: model.into(),
            message: message.to_string(),
        }
    }
}

/// A model that judges answers, prompts, or both.
///
/// A classifier answers the questions it can and returns `Ok(None)` for the others (the
/// default). Implementations that run for long (generative guards) move the work off the
/// async runtime with `spawn_blocking`.
#[async_trait]
pub trait Classifier: Send + Sync {
    /// A short stable name, written into evidence (`ngram`, `minilm`, `llama-guard-3-1b`).
    fn name(&self) -> &str;

    /// What the answer is. `prompt` is the request it answers, when known.
    async fn judge_response(
        &self,
        _prompt: Option<&str>,
        _response: &str,
    ) -> Result<Option<ResponseJudgement>, ClassifyError> {
        Ok(None)
    }

    /// What a short whole answer is (a line or less: `judge::MIN_MODEL_ANSWER_TOKENS`), read
    /// by a head trained on short replies, with that head's own threshold; `None` where the
    /// tier has no such head (every tier but `e5`).
    async fn judge_short_answer(
        &self,
        _response: &str,
    ) -> Result<Option<short_head::ShortJudgement>, ClassifyError> {
        Ok(None)
    }

    /// Whether the request itself is harmful.
    async fn judge_prompt(&self, _prompt: &str) -> Result<Option<PromptJudgement>, ClassifyError> {
        Ok(None)
    }

    /// Whether this tier learned to judge requests in `lang` (a [`crate::lang::language`]
    /// code). A cascade takes a tier's sure "harmful" as final only in a language it
    /// learned: a head that saw a language only in harmful requests reads the language as
    /// harm. Asked only when another prompt tier follows, since the guess costs about ten
    /// times the n-gram head's reading. Multilingual tiers, and tiers that do not say, learned
    /// every language.
    fn learned_language(&self, _lang: &str) -> bool {
        true
    }
}

/// Softmax of a slice, numerically stable.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// FNV-1a, 64 bits: the stable hash used for feature buckets and for the fit / held-out split.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = Fnv64::new();
    h.write(bytes);
    h.finish()
}

/// An incremental FNV-1a 64 hasher.
#[derive(Debug, Clone, Copy)]
pub struct Fnv64(u64);

impl Fnv64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// A fresh hasher.
    pub fn new() -> Self {
        Fnv64(Self::OFFSET)
    }

    /// Feeds bytes.
    #[inline]
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// The hash so far.
    #[inline]
    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64::new()
    }
}

/// The deterministic fit / held-out split of the project ([`crate::dataset::Split`]): a
/// record is in the fit part (30%) when `fnv1a64(id) % 100 < 30`; the other 70% are held
/// out for reporting. Models are trained on the fit part only.
pub fn is_fit(id: &str) -> bool {
    crate::dataset::Split::Fit.contains(id)
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn fnv_matches_reference_values() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn split_is_about_thirty_percent() {
        let fit = (0..10_000).filter(|i| is_fit(&format!("rec-{i}"))).count();
        assert!((2_700..3_300).contains(&fit), "{fit}");
    }

    #[test]
    fn judgement_label_and_confidence() {
        let j = ResponseJudgement {
            probs: [0.1, 0.7, 0.15, 0.05],
        };
        assert_eq!(j.label(), ResponseLabel::Refusal);
        assert!((j.confidence() - 0.7).abs() < 1e-6);
        assert!((j.non_answer() - 0.9).abs() < 1e-6);
    }
}
