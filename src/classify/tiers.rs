//! Building cascade tiers from short names (command line and configuration).
//!
//! - `ngram`: the embedded n-gram model (or `ngram:PATH` for a retrained file);
//! - `minilm`: the sentence encoder with the project's heads;
//! - `llama-guard:NAME`, `qwen3guard:NAME`: a generative guard from a manifest (see
//!   `models list`), e.g. `llama-guard:llama-guard-3-1b`, `qwen3guard:qwen3guard-gen-0.6b`;
//! - `guard`: Qwen3Guard-Gen 0.6B for Chinese text, Llama Guard 3 1B for the rest.

use std::path::Path;
use std::sync::Arc;

use super::llama_guard::{Config as LlamaConfig, LlamaGuard, LlamaGuardClassifier, Variant};
use super::ngram::{NgramClassifier, NgramModel};
use super::qwen3_guard::{Qwen3Guard, Qwen3GuardClassifier};
use super::{Classifier, ClassifyError};

/// Builds a tier from its name.
pub fn build(spec: &str) -> Result<Arc<dyn Classifier>, ClassifyError> {
    let (kind, arg) = match spec.split_once(':') {
        Some((k, a)) => (k, Some(a)),
        None => (spec, None),
    };
    match (kind, arg) {
        ("ngram", None) => Ok(Arc::new(NgramClassifier::embedded())),
        ("ngram", Some(path)) => Ok(Arc::new(NgramClassifier::new(
            NgramModel::load(Path::new(path))?,
            "ngram",
        ))),
        ("minilm", None) => Ok(Arc::new(super::encoder::EncoderClassifier::load_default()?)),
        ("llama-guard", name) => {
            let m = crate::hub::find_manifest(name.unwrap_or("llama-guard-3-1b"))?;
            let variant = if m.name.contains("8b") {
                Variant::Guard3_8B
            } else {
                Variant::Guard3_1B
            };
            let guard = LlamaGuard::load_manifest(&m, LlamaConfig::new(variant))?;
            Ok(Arc::new(LlamaGuardClassifier::new(guard, m.name)))
        }
        ("guard", None) => Ok(Arc::new(ByScript::new(
            build("qwen3guard:qwen3guard-gen-0.6b")?,
            build("llama-guard:llama-guard-3-1b")?,
        ))),
        ("qwen3guard", name) => {
            let m = crate::hub::find_manifest(name.unwrap_or("qwen3guard-gen-0.6b"))?;
            Ok(Arc::new(Qwen3GuardClassifier::new(
                Qwen3Guard::load_manifest(&m)?,
                m.name,
            )))
        }
        _ => Err(ClassifyError::Invalid(format!(
            "unknown tier {spec:?}; expected ngram, ngram:PATH, minilm, guard, llama-guard:NAME or qwen3guard:NAME"
        ))),
    }
}

/// A cascade from tier specs, each `NAME` or `NAME@THRESHOLD` (default threshold 0.9), cheapest
/// first.
pub fn cascade(specs: &[String]) -> Result<super::Cascade, ClassifyError> {
    let mut cascade = super::Cascade::new();
    for spec in specs {
        let (name, threshold) = match spec.rsplit_once('@') {
            Some((n, t)) => (
                n,
                t.parse::<f32>()
                    .map_err(|e| ClassifyError::Invalid(format!("bad threshold in {spec:?}: {e}")))?,
            ),
            None => (spec.as_str(), 0.9),
        };
        cascade = cascade.tier_arc(build(name)?, threshold);
    }
    Ok(cascade)
}

/// The default detectors plus a [`super::CascadeDetector`] of the given tiers (none: the
/// default detectors alone).
pub fn detectors_with(specs: &[String]) -> Result<crate::detect::Detectors, ClassifyError> {
    let detectors = crate::detect::Detectors::default();
    if specs.is_empty() {
        return Ok(detectors);
    }
    Ok(detectors.with(super::CascadeDetector::new(cascade(specs)?)))
}

/// Routes each question to one of two classifiers by the script of the text: Qwen3Guard for
/// Chinese (it is the default guard for Chinese traffic), Llama Guard for the rest.
pub struct ByScript {
    /// For text that is mostly Chinese (CJK characters).
    pub chinese: Arc<dyn Classifier>,
    /// For everything else.
    pub other: Arc<dyn Classifier>,
    name: String,
}

impl ByScript {
    pub fn new(chinese: Arc<dyn Classifier>, other: Arc<dyn Classifier>) -> Self {
        let name = format!("{}|{}", chinese.name(), other.name());
        ByScript { chinese, other, name }
    }

    fn pick(&self, text: &str) -> &Arc<dyn Classifier> {
        if is_mostly_chinese(text) {
            &self.chinese
        } else {
            &self.other
        }
    }
}

/// Whether at least a fifth of the letters are CJK ideographs.
pub fn is_mostly_chinese(text: &str) -> bool {
    let mut letters = 0usize;
    let mut cjk = 0usize;
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        letters += 1;
        if matches!(c as u32, 0x3400..=0x4dbf | 0x4e00..=0x9fff | 0xf900..=0xfaff) {
            cjk += 1;
        }
    }
    letters > 0 && cjk * 5 >= letters
}

#[async_trait::async_trait]
impl Classifier for ByScript {
    fn name(&self) -> &str {
        &self.name
    }

    async fn judge_response(
        &self,
        prompt: Option<&str>,
        response: &str,
    ) -> Result<Option<super::ResponseJudgement>, ClassifyError> {
        self.pick(response).judge_response(prompt, response).await
    }

    async fn judge_prompt(&self, prompt: &str) -> Result<Option<super::PromptJudgement>, ClassifyError> {
        self.pick(prompt).judge_prompt(prompt).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_detection() {
        assert!(is_mostly_chinese("抱歉，我无法回答这个问题。"));
        assert!(is_mostly_chinese("请解释 Tiananmen 事件的背景和影响"));
        assert!(!is_mostly_chinese("I'm sorry, but I can't help with that."));
        assert!(!is_mostly_chinese("1234 !!"));
    }

    #[test]
    fn unknown_tier_names_the_choices() {
        let e = build("nope").err().unwrap().to_string();
        assert!(e.contains("ngram"), "{e}");
    }

    #[test]
    fn missing_guard_names_the_fix() {
        // No Llama Guard weights in a fresh cache: the error names the model and the command.
        let e = build("llama-guard:llama-guard-3-8b").err();
        if let Some(e) = e {
            let e = e.to_string();
            assert!(
                e.contains("llama-guard-3-8b") && e.contains("models fetch"),
                "{e}"
            );
        }
    }
}
