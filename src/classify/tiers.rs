//! Building cascade tiers from short names (command line and configuration).
//!
//! - `ngram`: the embedded n-gram model (or `ngram:PATH` for a retrained file);
//! - `e5`: multilingual-e5-small with the project's heads (the best tier most installs have),
//!   or `e5:PATH` with heads `train --encoder-out` wrote;
//!   `e5:prompts` asks it about requests only (their harm), never about answers, for about a
//!   third of the cascade's mean cost (models/combiner/README.md says what that gives up);
//! - `minilm`: all-MiniLM-L6-v2 with the project's heads (English only);
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
        ("e5", None) => Ok(Arc::new(super::encoder::EncoderClassifier::load_e5()?)),
        ("e5" | "minilm", Some(part @ ("prompts" | "wide"))) => Err(ClassifyError::Invalid(format!(
            "tier {spec:?}: `:{part}` says what the verdict asks the encoder (eval, audit, serve); \
             a tier on its own is `{kind}`, or `e5:PATH` with heads of your own"
        ))),
        ("e5", Some(path)) => Ok(Arc::new(super::encoder::EncoderClassifier::load_e5_with(
            super::encoder::Heads::load(Path::new(path))?,
        )?)),
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
        ("none" | "embedded", None) => Err(ClassifyError::Invalid(format!(
            "tier {spec:?} stands alone: it means the embedded default without other tiers (leave it out to add tiers to the embedded default)"
        ))),
        _ => Err(ClassifyError::Invalid(format!(
            "unknown tier {spec:?}; expected ngram, ngram:PATH, e5, e5:PATH, e5:prompts, e5:wide, minilm, guard, llama-guard:NAME, qwen3guard:NAME, or none alone (the embedded default)"
        ))),
    }
}

/// A cascade from tier specs, each `NAME` or `NAME@THRESHOLD` (default threshold 0.9), cheapest
/// first.
pub fn cascade(specs: &[String]) -> Result<super::Cascade, ClassifyError> {
    let mut cascade = super::Cascade::new();
    for spec in specs {
        let (name, threshold) = split_threshold(spec)?;
        cascade = cascade.tier_arc(build(name)?, threshold);
    }
    Ok(cascade)
}

/// The full pipeline with the given tiers: the default detectors judged by the embedded
/// models and the trained combiner ([`crate::judge`]), plus, per spec:
/// - `ngram:PATH`: a retrained n-gram model in place of the embedded one (answer and prompt);
/// - `ngram`: the embedded model (always there; accepted for clarity);
/// - an encoder tier (`e5`, `minilm`): asked when the combiner is unsure, and on prompts the
///   n-gram prompt head does not judge surely harmful; `e5:prompts` (`minilm:prompts`): on
///   those prompts only, answers are judged by the embedded default alone; `e5:wide`
///   (`minilm:wide`): asked about answers over the combiner's wide band, the one `train`
///   chose without its cost cap (more encoder calls; see models/combiner/README.md);
/// - a generative guard (`guard`, `llama-guard:NAME`, `qwen3guard:NAME`): the last prompt
///   tier, asked for the request's harm unless a cheaper tier judged it surely harmful.
///
/// A spec's `@THRESHOLD` is the confidence from which that tier's judgment is final.
pub fn detectors_with(specs: &[String]) -> Result<crate::detect::Detectors, ClassifyError> {
    let mut models = crate::judge::Models::embedded();
    let mut prompt_tiers: Vec<(Arc<dyn Classifier>, f32)> =
        vec![(models.fast.clone(), crate::judge::NGRAM_PROMPT_FINAL_FROM)];
    for spec in specs {
        let (name, threshold) = split_threshold(spec)?;
        // What an encoder tier reads: answers in the combiner's band and prompts (the
        // default), prompts only (`:prompts`), or answers in the wide band too (`:wide`).
        let (name, prompts_only, wide) = match name.split_once(':') {
            Some((encoder @ ("e5" | "minilm"), "prompts")) => (encoder, true, false),
            Some((encoder @ ("e5" | "minilm"), "wide")) => (encoder, false, true),
            _ => (name, false, false),
        };
        let tier = build(name)?;
        let kind = name.split(':').next().unwrap_or(name);
        match kind {
            "ngram" => {
                if name.contains(':') {
                    models.fast = tier.clone();
                    prompt_tiers[0] = (tier, threshold);
                }
            }
            "minilm" | "e5" => {
                // The combiner was trained with the e5 heads in its encoder slot; another
                // encoder there is read as if it were e5.
                // When the encoder is asked about an answer is the combiner's trained
                // escalation band (the one under the cost cap, or the wide one); `@T` sets
                // only the prompt tier's threshold.
                if !prompts_only {
                    models.escalation = Some(tier.clone());
                }
                // e5's short-reply head is asked only where the n-gram one is unsure (the
                // short-reply cascade, `judge::Models::short_asked_from`); `e5:wide`, the
                // tier that asks the encoder more for accuracy, asks it about every one.
                models.short_asked_from = match (kind, wide) {
                    ("e5", false) => super::short_head::ShortHead::shipped()?
                        .asked_from
                        .unwrap_or(super::short_head::AskedFrom::ALWAYS),
                    _ => super::short_head::AskedFrom::ALWAYS,
                };
                if wide {
                    models.escalate = models.combiner.wide_escalation_band();
                }
                prompt_tiers.push((tier, threshold));
                // A benign reading is always the last prompt tier's, so the thresholds
                // that turn it into a re-route are chosen for that tier's probabilities.
                models.harm = if kind == "e5" {
                    crate::judge::HarmPolicy::for_e5()
                } else {
                    crate::judge::HarmPolicy::default()
                };
            }
            _ => {
                prompt_tiers.push((tier, threshold));
                models.harm = crate::judge::HarmPolicy::default();
            }
        }
    }
    let mut prompt = super::Cascade::new();
    for (tier, threshold) in prompt_tiers {
        prompt = prompt.tier_arc(tier, threshold);
    }
    models.prompt = prompt;
    Ok(crate::detect::Detectors::default().models(models))
}

/// Switches a pipeline's decision: `learned` keeps the shipped combiner, `rules` uses the
/// hand-set rule combiner (the baseline), anything else is a combiner file to load.
pub fn with_combiner(
    detectors: crate::detect::Detectors,
    choice: &str,
) -> Result<crate::detect::Detectors, ClassifyError> {
    use crate::judge::Decision;
    match choice {
        "learned" => Ok(detectors),
        "rules" => Ok(detectors.threshold(0.5)),
        path => {
            let combiner = Arc::new(crate::judge::Combiner::load(Path::new(path))?);
            match detectors.decision() {
                Decision::Learned(models) => {
                    let mut models = (**models).clone();
                    // The band belongs to the combiner it was trained with (its wide band
                    // where the tier asked for the wide one).
                    let wide = models.escalate == models.combiner.wide_escalation_band()
                        && models.escalate != models.combiner.escalation_band();
                    models.escalate = if wide {
                        combiner.wide_escalation_band()
                    } else {
                        combiner.escalation_band()
                    };
                    models.combiner = combiner;
                    Ok(detectors.models(models))
                }
                Decision::Rules { .. } => Err(ClassifyError::Invalid(
                    "a combiner file needs the learned decision, not the rule combiner".into(),
                )),
            }
        }
    }
}

/// The tiers a command uses when none are named: the best installed one. Today that is the
/// `e5` tier when multilingual-e5-small is in the hf-hub cache, and nothing more than the
/// embedded default otherwise (with a one-line notice on stderr saying how to get more).
pub fn best_installed() -> Vec<String> {
    let installed = crate::hub::find_manifest(super::e5::MODEL).and_then(|m| {
        for file in ["config.json", "tokenizer.json", "model.safetensors"] {
            crate::hub::resolve(&m, file)?;
        }
        Ok(())
    });
    match installed {
        Ok(()) => vec!["e5".to_string()],
        Err(e) => {
            eprintln!(
                "note: using the embedded default (n-gram model and combiner); the e5 tier is not installed ({e})"
            );
            Vec::new()
        }
    }
}

/// The named tiers, or the best installed ones when `specs` is empty; `none` alone means
/// the embedded default without looking for more.
pub fn resolve_specs(specs: &[String]) -> Vec<String> {
    match specs {
        [] => best_installed(),
        [one] if one == "none" || one == "embedded" => Vec::new(),
        _ => specs.to_vec(),
    }
}

/// A spec's name and its threshold (0.9 when it names none). A threshold is a confidence, so
/// one outside 0 to 1 (or not a number) is refused: `nan` or `2` would otherwise make the
/// tier's judgment never final, silently.
fn split_threshold(spec: &str) -> Result<(&str, f32), ClassifyError> {
    let Some((name, t)) = spec.rsplit_once('@') else {
        return Ok((spec, 0.9));
    };
    let threshold = t
        .parse::<f32>()
        .map_err(|e| ClassifyError::Invalid(format!("bad threshold in {spec:?}: {e}")))?;
    if !(0.0..=1.0).contains(&threshold) {
        return Err(ClassifyError::Invalid(format!(
            "bad threshold in {spec:?}: a confidence from 0 to 1"
        )));
    }
    Ok((name, threshold))
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
        assert!(e.contains("ngram") && e.contains("none"), "{e}");
        let e = detectors_with(&["none".into(), "ngram".into()])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("stands alone"), "{e}");
    }

    #[test]
    fn e5_heads_of_your_own_are_read_from_their_file() {
        let e = build("e5:/no/such/heads.safetensors").err().unwrap().to_string();
        assert!(e.contains("/no/such/heads.safetensors"), "{e}");
        // A file that is not heads is named, before the encoder loads.
        let e = build(concat!("e5:", env!("CARGO_MANIFEST_DIR"), "/gateway.toml"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("gateway.toml: not e5 heads"), "{e}");
        let e = build("e5:prompts").err().unwrap().to_string();
        assert!(e.contains("says what the verdict asks the encoder"), "{e}");
    }

    #[test]
    fn a_threshold_is_a_confidence() {
        assert_eq!(split_threshold("ngram").unwrap(), ("ngram", 0.9));
        assert_eq!(split_threshold("ngram@0.5").unwrap(), ("ngram", 0.5));
        assert_eq!(split_threshold("ngram:/m@1").unwrap(), ("ngram:/m", 1.0));
        for bad in [
            "ngram@nan",
            "ngram@inf",
            "ngram@-1",
            "ngram@2",
            "ngram@x",
            "ngram@",
        ] {
            let e = split_threshold(bad).err().unwrap().to_string();
            assert!(e.contains("bad threshold") && e.contains(bad), "{bad}: {e}");
        }
        // Refused where the tiers are built, before anything loads.
        assert!(detectors_with(&["ngram@5".into()]).is_err());
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
