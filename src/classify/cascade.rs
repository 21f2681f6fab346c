//! The cascade: cheapest model first, the next one only when unsure.
//!
//! Each [`Tier`] is a classifier with a confidence threshold. For each question (what the
//! answer is; whether the prompt was harmful) the cascade asks the tiers in order and stops
//! at the first whose confidence reaches its threshold; when none does, the last tier that
//! answered decides (the most capable one). For the prompt question only a confident
//! *harmful* reading stops early: a benign one always goes on to the next tier, because a
//! benign reading is what re-routes a refusal. The prompt question is asked only when it
//! matters, that is when the answer is a refusal. Which tiers run is configuration: build
//! the cascade with the tiers you have weights for.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::{BoxFuture, FutureExt};
use serde::Serialize;

use super::prompt_memo::{self, PromptMemo};
use super::{Classifier, ClassifyError, PromptJudgement, ResponseJudgement, ResponseLabel};
use crate::detect::{Completeness, Detector, Observation};
use crate::verdict::{Evidence, VerdictClass, VerdictKind};

/// One level of a cascade.
#[derive(Clone)]
pub struct Tier {
    /// The model.
    pub classifier: Arc<dyn Classifier>,
    /// The confidence from which this tier's judgement is final.
    pub threshold: f32,
}

impl std::fmt::Debug for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tier")
            .field("classifier", &self.classifier.name())
            .field("threshold", &self.threshold)
            .finish()
    }
}

/// Which question a tier was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Question {
    /// What the answer is.
    Response,
    /// Whether the prompt was harmful.
    Prompt,
}

/// What one tier did for one question.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TierRun {
    pub classifier: String,
    pub question: Question,
    /// Its confidence; `None` when it could not answer (no opinion, or an error).
    pub confidence: Option<f32>,
    /// Whether the cascade went on to the next tier after it.
    pub escalated: bool,
    #[serde(rename = "elapsed_us", serialize_with = "micros")]
    pub elapsed: Duration,
    /// The error, when the tier failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_micros() as u64)
}

/// The cascade's decision about one answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    /// The verdict the two judgements make together.
    pub kind: VerdictKind,
    /// How sure: the answer's confidence, times the prompt's when it was needed.
    pub confidence: f32,
    /// The judgement of the answer that decided, and who made it.
    pub response: ResponseJudgement,
    pub response_source: String,
    /// The judgement of the prompt, when one was needed and possible.
    pub prompt: Option<PromptJudgement>,
    pub prompt_source: Option<String>,
    /// Every tier that ran, in order.
    pub trace: Vec<TierRun>,
}

/// Tiers of classifiers, cheapest first.
#[derive(Debug, Clone, Default)]
pub struct Cascade {
    tiers: Vec<Tier>,
    /// The prompt judgments made or started ([`super::prompt_memo`]), shared by clones; a
    /// new one whenever a tier is added, since the judgments depend on the tiers. `None`
    /// only without tiers, and inside a judgment (so the memo does not hold itself).
    memo: Option<Arc<PromptMemo>>,
}

impl Cascade {
    /// A cascade with no tiers (add some with [`Cascade::tier`]).
    pub fn new() -> Self {
        Cascade::default()
    }

    /// Adds a tier after the existing ones.
    pub fn tier(self, classifier: impl Classifier + 'static, threshold: f32) -> Self {
        self.tier_arc(Arc::new(classifier), threshold)
    }

    /// Adds a shared tier after the existing ones.
    pub fn tier_arc(mut self, classifier: Arc<dyn Classifier>, threshold: f32) -> Self {
        self.tiers.push(Tier {
            classifier,
            threshold,
        });
        self.memo = Some(Arc::default());
        self
    }

    /// The tiers, in order.
    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    /// Judges an answer (and, for a refusal, its prompt).
    ///
    /// Fails only when no tier could judge the answer at all.
    pub async fn classify(
        &self,
        prompt: Option<&str>,
        response: &str,
    ) -> Result<Classification, ClassifyError> {
        let mut trace = Vec::new();
        let (response_j, response_source) = match self.ask_response(prompt, response, &mut trace).await {
            Some(found) => found,
            None => {
                return Err(ClassifyError::Invalid(format!(
                    "no tier of the cascade could judge the answer (tiers: {})",
                    self.names()
                )))
            }
        };
        let label = response_j.label();
        let mut confidence = response_j.confidence();
        let mut prompt_j = None;
        let mut prompt_source = None;
        let kind = match label {
            ResponseLabel::Answer => VerdictKind::Answer,
            ResponseLabel::Evasion => VerdictKind::Evasion,
            ResponseLabel::Inability => VerdictKind::Inability,
            ResponseLabel::Refusal => {
                // Without the prompt (or a model for it) a refusal counts as a policy refusal:
                // nothing says the request was harmful.
                let judged = match prompt {
                    Some(p) if !p.trim().is_empty() => self.ask_prompt(p, &mut trace).await,
                    _ => None,
                };
                match judged {
                    Some((j, source)) => {
                        confidence *= j.confidence();
                        let kind = if j.is_harmful() {
                            VerdictKind::SafetyRefusal {
                                categories: j.categories.clone(),
                            }
                        } else {
                            VerdictKind::PolicyRefusal
                        };
                        prompt_j = Some(j);
                        prompt_source = Some(source);
                        kind
                    }
                    None => VerdictKind::PolicyRefusal,
                }
            }
        };
        Ok(Classification {
            kind,
            confidence,
            response: response_j,
            response_source,
            prompt: prompt_j,
            prompt_source,
            trace,
        })
    }

    fn names(&self) -> String {
        let names: Vec<&str> = self.tiers.iter().map(|t| t.classifier.name()).collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }

    async fn ask_response(
        &self,
        prompt: Option<&str>,
        response: &str,
        trace: &mut Vec<TierRun>,
    ) -> Option<(ResponseJudgement, String)> {
        self.escalate(
            Question::Response,
            trace,
            |c| c.judge_response(prompt, response),
            |j| j.confidence(),
            |_, j, threshold| j.confidence() >= threshold,
        )
        .await
    }

    /// Whether a prompt is harmful, asked of the tiers cheapest first: the judgment and the
    /// tier that made it, `None` when no tier could judge it. A prompt judged (or started,
    /// see [`Cascade::start_judging_prompt`]) recently is not judged again.
    pub async fn judge_prompt(&self, prompt: &str) -> Option<(PromptJudgement, String)> {
        let Some(pending) = self.prompt_judgment(prompt) else {
            return self.ask_prompt(prompt, &mut Vec::new()).await;
        };
        let judged = pending.await;
        // A judgment some tier could not make (it failed, or its pass was shed on a busy
        // server) is a moment's, not the prompt's: the next request judges it anew.
        if judged.as_ref().is_none_or(|(j, _)| j.unchecked.is_some()) {
            if let Some(memo) = &self.memo {
                memo.forget(prompt);
            }
        }
        judged
    }

    /// Starts judging `prompt` now, on the tokio runtime, so that a later
    /// [`Cascade::judge_prompt`] of it finds the work done or under way. The guard layer
    /// calls this when a request is sent, if asked to
    /// ([`crate::layer::RefusalGuardLayer::judge_prompts_early`]).
    pub fn start_judging_prompt(&self, prompt: &str) {
        if let Some(pending) = self.prompt_judgment(prompt) {
            prompt_memo::run_now(&pending);
        }
    }

    /// Forgets every remembered prompt judgment (a benchmark that must pay for each
    /// judgment calls this; a gateway never needs to).
    pub fn forget_prompt_judgments(&self) {
        if let Some(memo) = &self.memo {
            memo.clear();
        }
    }

    /// The remembered or new judgment of `prompt`; `None` without a memo (no tiers).
    fn prompt_judgment(&self, prompt: &str) -> Option<prompt_memo::Pending> {
        let memo = self.memo.as_ref()?;
        Some(memo.get_or_start(prompt, || {
            let tiers = Cascade {
                tiers: self.tiers.clone(),
                memo: None,
            };
            let prompt = prompt.to_string();
            async move { tiers.ask_prompt(&prompt, &mut Vec::new()).await }.boxed()
        }))
    }

    async fn ask_prompt(&self, prompt: &str, trace: &mut Vec<TierRun>) -> Option<(PromptJudgement, String)> {
        // Only a harmful reading is final before the last tier. A benign reading is what lets
        // a refusal be re-routed to another provider, and laundering a harmful request is the
        // one mistake a re-router must not make, so a cheap tier's "benign", however sure,
        // is checked by the next tier installed; its "harmful" only keeps a refusal, the safe
        // side, and stands, unless the tier never learned the request's language: then its
        // "harmful" may be the language itself, and the next tier decides. When the tier
        // that should check a reading fails, the reading is marked unchecked, so that it
        // cannot clear the request either.
        let first = trace.len();
        let judged = self
            .escalate(
                Question::Prompt,
                trace,
                |c| c.judge_prompt(prompt),
                |j| j.confidence(),
                |c, j, threshold| {
                    j.harmful >= threshold
                        && j.unlearned_language.is_none()
                        && c.learned_language(&crate::lang::language(Some(prompt)))
                },
            )
            .await;
        judged.map(|(mut j, source)| {
            let runs = &trace[first..];
            let decided = runs.iter().rposition(|r| r.confidence.is_some()).unwrap_or(0);
            if let Some(failed) = runs[decided..].iter().find(|r| r.error.is_some()) {
                j.unchecked = Some(format!(
                    "{} could not check it ({})",
                    failed.classifier,
                    failed.error.as_deref().unwrap_or_default()
                ));
            }
            (j, source)
        })
    }

    /// Asks the tiers one question, cheapest first, until one's answer `is_final` at its
    /// threshold (the last tier's answer is final whatever it is, so it is not asked);
    /// records every tier asked (with its `confidence`) in `trace`. The last tier asked is
    /// the one that decided, so it is the only run not marked as escalated.
    async fn escalate<'a, J>(
        &'a self,
        question: Question,
        trace: &mut Vec<TierRun>,
        ask: impl Fn(&'a dyn Classifier) -> BoxFuture<'a, Result<Option<J>, ClassifyError>>,
        confidence: impl Fn(&J) -> f32,
        is_final: impl Fn(&dyn Classifier, &J, f32) -> bool,
    ) -> Option<(J, String)> {
        let mut last = None;
        let first = trace.len();
        for (i, tier) in self.tiers.iter().enumerate() {
            let started = Instant::now();
            let result = ask(tier.classifier.as_ref()).await;
            let mut run = TierRun {
                classifier: tier.classifier.name().to_string(),
                question,
                confidence: None,
                escalated: true,
                elapsed: started.elapsed(),
                error: None,
            };
            match result {
                Ok(Some(j)) => {
                    run.confidence = Some(confidence(&j));
                    let done =
                        i + 1 == self.tiers.len() || is_final(tier.classifier.as_ref(), &j, tier.threshold);
                    run.escalated = !done;
                    trace.push(run);
                    last = Some((j, tier.classifier.name().to_string()));
                    if done {
                        break;
                    }
                }
                Ok(None) => trace.push(run),
                Err(e) => {
                    e.report(tier.classifier.name(), "tier failed; escalating");
                    run.error = Some(e.to_string());
                    trace.push(run);
                }
            }
        }
        if let Some(run) = trace[first..].last_mut() {
            run.escalated = false;
        }
        last
    }
}

/// A [`Cascade`] as a [`Detector`]: its classification becomes one piece of evidence.
///
/// Empty answers and provider errors are left to the provider-signal detector. A partial
/// answer (inside the guard's hold-back window) is classified only when
/// [`CascadeDetector::on_partial`] allows it, so that slow tiers do not hold a stream back.
#[derive(Debug, Clone)]
pub struct CascadeDetector {
    cascade: Arc<Cascade>,
    name: String,
    on_partial: bool,
    answer_weight: f32,
}

impl CascadeDetector {
    /// Wraps a cascade; partial answers are classified too.
    pub fn new(cascade: Cascade) -> Self {
        CascadeDetector {
            cascade: Arc::new(cascade),
            name: "classify".into(),
            on_partial: true,
            answer_weight: 0.3,
        }
    }

    /// How much an "answer" judgement counts against other detectors' evidence: the
    /// evidence score is `weight × confidence`. [`crate::detect::combine`] discounts every
    /// non-answer class by the answer votes, so a full-strength vote from a model would
    /// silence strong pattern hits; the default 0.3 only overturns weak ones.
    pub fn answer_weight(mut self, weight: f32) -> Self {
        self.answer_weight = weight.clamp(0.0, 1.0);
        self
    }

    /// Whether partial answers (the start of a stream) are classified. Default: yes.
    pub fn on_partial(mut self, yes: bool) -> Self {
        self.on_partial = yes;
        self
    }

    /// The wrapped cascade.
    pub fn cascade(&self) -> &Cascade {
        &self.cascade
    }
}

/// Turns a classification into evidence for [`crate::detect::combine`].
pub fn evidence_of(c: &Classification, detector: &str) -> Evidence {
    let class = c.kind.class();
    let reason = match &c.kind {
        VerdictKind::SafetyRefusal { categories } if !categories.is_empty() => format!(
            "{} judged a refusal of a harmful prompt ({}); categories: {}",
            c.response_source,
            c.prompt_source.as_deref().unwrap_or("?"),
            categories.join(",")
        ),
        VerdictKind::SafetyRefusal { .. } => format!(
            "{} judged a refusal of a harmful prompt ({})",
            c.response_source,
            c.prompt_source.as_deref().unwrap_or("?")
        ),
        VerdictKind::PolicyRefusal => match &c.prompt_source {
            Some(p) => format!("{} judged a refusal of a benign prompt ({p})", c.response_source),
            None => format!("{} judged a refusal (prompt not judged)", c.response_source),
        },
        other => format!("{} judged {}", c.response_source, other.class()),
    };
    Evidence {
        source: format!("{detector}:{}", c.response_source),
        suggests: if class == VerdictClass::Answer {
            VerdictClass::Answer
        } else {
            class
        },
        score: c.confidence,
        reason,
        span: None,
        tokens: Vec::new(),
    }
}

#[async_trait]
impl Detector for CascadeDetector {
    fn name(&self) -> &str {
        &self.name
    }

    async fn detect(&self, observation: &Observation<'_>) -> Vec<Evidence> {
        if observation.text.trim().is_empty() || observation.error.is_some() {
            return Vec::new();
        }
        if observation.completeness == Completeness::Partial && !self.on_partial {
            return Vec::new();
        }
        match self.cascade.classify(observation.prompt, observation.text).await {
            Ok(c) => {
                let mut e = evidence_of(&c, &self.name);
                if e.suggests == VerdictClass::Answer {
                    e.score *= self.answer_weight;
                }
                vec![e]
            }
            Err(e) => {
                e.report(&self.name, "classification failed");
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A classifier with fixed answers that counts its calls.
    struct Fixed {
        name: &'static str,
        response: Option<ResponseJudgement>,
        prompt: Option<PromptJudgement>,
        calls: Arc<AtomicUsize>,
    }

    #[async_trait]
    impl Classifier for Fixed {
        fn name(&self) -> &str {
            self.name
        }
        async fn judge_response(
            &self,
            _p: Option<&str>,
            _r: &str,
        ) -> Result<Option<ResponseJudgement>, ClassifyError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(self.response.clone())
        }
        async fn judge_prompt(&self, _p: &str) -> Result<Option<PromptJudgement>, ClassifyError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(self.prompt.clone())
        }
    }

    fn fixed(
        name: &'static str,
        response: Option<ResponseJudgement>,
        prompt: Option<PromptJudgement>,
    ) -> (Fixed, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        (
            Fixed {
                name,
                response,
                prompt,
                calls: calls.clone(),
            },
            calls,
        )
    }

    #[tokio::test]
    async fn confident_first_tier_does_not_escalate() {
        let (cheap, cheap_calls) = fixed(
            "cheap",
            Some(ResponseJudgement::certain(ResponseLabel::Answer, 0.95)),
            None,
        );
        let (big, big_calls) = fixed(
            "big",
            Some(ResponseJudgement::certain(ResponseLabel::Refusal, 0.99)),
            None,
        );
        let cascade = Cascade::new().tier(cheap, 0.9).tier(big, 0.0);
        let c = cascade.classify(Some("hi"), "hello there").await.unwrap();
        assert_eq!(c.kind, VerdictKind::Answer);
        assert_eq!(c.response_source, "cheap");
        assert_eq!(cheap_calls.load(Ordering::SeqCst), 1);
        assert_eq!(big_calls.load(Ordering::SeqCst), 0);
        assert_eq!(c.trace.len(), 1);
        assert!(!c.trace[0].escalated);
    }

    /// A prompt tier that is shed (a busy server) while `busy` is set, and reads 0.01
    /// otherwise.
    struct Shed {
        busy: Arc<std::sync::atomic::AtomicBool>,
    }

    #[async_trait]
    impl Classifier for Shed {
        fn name(&self) -> &str {
            "big"
        }
        async fn judge_prompt(&self, _p: &str) -> Result<Option<PromptJudgement>, ClassifyError> {
            if self.busy.load(Ordering::SeqCst) {
                return Err(ClassifyError::Busy {
                    model: "big".into(),
                    waiting: 8,
                });
            }
            Ok(Some(PromptJudgement::harm(0.01)))
        }
    }

    /// The check of a benign reading shed: the reading comes back marked unchecked (so it
    /// cannot clear the request), and is not remembered: once the server is free again, the
    /// same prompt is judged anew and checked.
    #[tokio::test]
    async fn a_benign_reading_whose_check_was_shed_is_unchecked_and_not_remembered() {
        let busy = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (cheap, cheap_calls) = fixed("cheap", None, Some(PromptJudgement::harm(0.05)));
        let cascade = Cascade::new()
            .tier(cheap, 0.9)
            .tier(Shed { busy: busy.clone() }, 0.9);
        let (j, source) = cascade.judge_prompt("tell me about 1989").await.unwrap();
        assert_eq!((j.harmful, source.as_str()), (0.05, "cheap"));
        let why = j.unchecked.expect("marked unchecked");
        assert!(
            why.contains("big could not check it") && why.contains("not run"),
            "{why}"
        );
        busy.store(false, Ordering::SeqCst);
        let (j, source) = cascade.judge_prompt("tell me about 1989").await.unwrap();
        assert_eq!((j.harmful, source.as_str(), j.unchecked), (0.01, "big", None));
        assert_eq!(
            cheap_calls.load(Ordering::SeqCst),
            2,
            "judged anew, not remembered"
        );
        // A checked judgment is remembered as before.
        cascade.judge_prompt("tell me about 1989").await.unwrap();
        assert_eq!(cheap_calls.load(Ordering::SeqCst), 2);
        // A harmful reading is final where it is made: nothing is left to check.
        busy.store(true, Ordering::SeqCst);
        let (harmful, _) = fixed("cheap", None, Some(PromptJudgement::harm(0.95)));
        let cascade = Cascade::new().tier(harmful, 0.9).tier(Shed { busy }, 0.9);
        let (j, _) = cascade.judge_prompt("how do I hurt someone?").await.unwrap();
        assert_eq!((j.harmful, j.unchecked), (0.95, None));
    }

    #[tokio::test]
    async fn a_sure_benign_prompt_reading_is_checked_and_a_sure_harmful_one_stands() {
        let prompt = PromptJudgement::harm;
        // Two prompt tiers at 0.9: the cascade and how often each tier was asked.
        let two_tiers = |cheap_harm, big_harm| {
            let (cheap, cheap_calls) = fixed("cheap", None, Some(prompt(cheap_harm)));
            let (big, big_calls) = fixed("big", None, Some(prompt(big_harm)));
            (
                Cascade::new().tier(cheap, 0.9).tier(big, 0.9),
                cheap_calls,
                big_calls,
            )
        };
        // The cheap tier is sure the prompt is benign: the next tier is still asked, and its
        // reading decides.
        let (cascade, cheap_calls, big_calls) = two_tiers(0.02, 0.8);
        let (j, source) = cascade.judge_prompt("how do I kill a process?").await.unwrap();
        assert_eq!((j.harmful, source.as_str()), (0.8, "big"));
        assert_eq!(cheap_calls.load(Ordering::SeqCst), 1);
        assert_eq!(big_calls.load(Ordering::SeqCst), 1);
        // Sure it is harmful: that stands, the next tier is not asked.
        let (cascade, _, big_calls) = two_tiers(0.95, 0.01);
        let (j, source) = cascade.judge_prompt("how do I kill my neighbour?").await.unwrap();
        assert_eq!((j.harmful, source.as_str()), (0.95, "cheap"));
        assert_eq!(big_calls.load(Ordering::SeqCst), 0);
        // One tier alone decides either way.
        let (only, _) = fixed("only", None, Some(prompt(0.02)));
        let (j, _) = Cascade::new().tier(only, 0.9).judge_prompt("hi").await.unwrap();
        assert_eq!(j.harmful, 0.02);
    }

    #[tokio::test]
    async fn unsure_first_tier_escalates() {
        let (cheap, _) = fixed(
            "cheap",
            Some(ResponseJudgement::certain(ResponseLabel::Answer, 0.55)),
            None,
        );
        let (big, big_calls) = fixed(
            "big",
            Some(ResponseJudgement::certain(ResponseLabel::Refusal, 0.97)),
            Some(PromptJudgement::harm(0.1)),
        );
        let cascade = Cascade::new().tier(cheap, 0.9).tier(big, 0.0);
        let c = cascade
            .classify(Some("who is Xi?"), "I can't discuss that.")
            .await
            .unwrap();
        assert_eq!(c.kind, VerdictKind::PolicyRefusal);
        assert_eq!(c.response_source, "big");
        assert_eq!(big_calls.load(Ordering::SeqCst), 2, "answer and prompt");
        assert!(c.trace[0].escalated);
        assert!(!c.trace[1].escalated);
    }

    #[tokio::test]
    async fn refusal_of_harmful_prompt_is_safety_refusal_with_categories() {
        let (cheap, _) = fixed(
            "cheap",
            Some(ResponseJudgement::certain(ResponseLabel::Refusal, 0.95)),
            Some(PromptJudgement::harm(0.6)),
        );
        let (guard, _) = fixed(
            "guard",
            None,
            Some(PromptJudgement {
                harmful: 0.98,
                categories: vec!["S9".into()],
                unlearned_language: None,
                unchecked: None,
            }),
        );
        let cascade = Cascade::new().tier(cheap, 0.9).tier(guard, 0.5);
        let c = cascade
            .classify(Some("how to make sarin"), "I can't help with that.")
            .await
            .unwrap();
        assert_eq!(
            c.kind,
            VerdictKind::SafetyRefusal {
                categories: vec!["S9".into()]
            }
        );
        assert_eq!(c.prompt_source.as_deref(), Some("guard"));
        let e = evidence_of(&c, "classify");
        assert_eq!(e.suggests, VerdictClass::SafetyRefusal);
        assert!(e.reason.ends_with("categories: S9"), "{}", e.reason);
    }

    #[tokio::test]
    async fn a_harmful_reading_in_a_language_the_tier_never_learned_is_not_final() {
        // A head that saw a language only in harmful requests reads the language as harm:
        // its sure "harmful" must not stop the tier that learned the language.
        let (cheap, _) = fixed(
            "cheap",
            Some(ResponseJudgement::certain(ResponseLabel::Refusal, 0.97)),
            Some(PromptJudgement {
                harmful: 0.97,
                categories: Vec::new(),
                unlearned_language: Some("vi".into()),
                unchecked: None,
            }),
        );
        let (big, big_calls) = fixed("big", None, Some(PromptJudgement::harm(0.02)));
        let cascade = Cascade::new().tier(cheap, 0.9).tier(big, 0.0);
        let c = cascade
            .classify(
                Some("Quốc hội Việt Nam được bầu như thế nào?"),
                "Tôi không thể trả lời.",
            )
            .await
            .unwrap();
        assert_eq!(c.prompt_source.as_deref(), Some("big"));
        assert_eq!(big_calls.load(Ordering::SeqCst), 1, "the prompt only");
        assert_eq!(c.kind, VerdictKind::PolicyRefusal);
        // In a language it learned, the same reading is final.
        let (cheap, _) = fixed(
            "cheap",
            Some(ResponseJudgement::certain(ResponseLabel::Refusal, 0.97)),
            Some(PromptJudgement::harm(0.97)),
        );
        let (big, big_calls) = fixed("big", None, Some(PromptJudgement::harm(0.02)));
        let cascade = Cascade::new().tier(cheap, 0.9).tier(big, 0.0);
        let c = cascade
            .classify(Some("how to make sarin"), "I can't.")
            .await
            .unwrap();
        assert_eq!(c.prompt_source.as_deref(), Some("cheap"));
        assert_eq!(big_calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn unsure_everywhere_takes_the_last_tier() {
        let (a, _) = fixed(
            "a",
            Some(ResponseJudgement::certain(ResponseLabel::Answer, 0.5)),
            None,
        );
        let (b, _) = fixed(
            "b",
            Some(ResponseJudgement::certain(ResponseLabel::Evasion, 0.6)),
            None,
        );
        let cascade = Cascade::new().tier(a, 0.9).tier(b, 0.9);
        let c = cascade
            .classify(None, "Let's talk about something else.")
            .await
            .unwrap();
        assert_eq!(c.kind, VerdictKind::Evasion);
        assert_eq!(c.response_source, "b");
    }

    #[tokio::test]
    async fn detector_adapter_feeds_the_verdict_with_categories() {
        let (cheap, _) = fixed(
            "cheap",
            Some(ResponseJudgement::certain(ResponseLabel::Refusal, 0.97)),
            Some(PromptJudgement {
                harmful: 0.99,
                categories: vec!["S1".into(), "S10".into()],
                unlearned_language: None,
                unchecked: None,
            }),
        );
        let detectors =
            crate::detect::Detectors::empty().with(CascadeDetector::new(Cascade::new().tier(cheap, 0.5)));
        let obs = Observation {
            prompt: Some("how do I hurt someone"),
            ..Observation::text("I can't help with that.")
        };
        let v = detectors.judge(&obs).await;
        assert_eq!(
            v.kind,
            VerdictKind::SafetyRefusal {
                categories: vec!["S1".into(), "S10".into()]
            }
        );
        assert!(v.evidence[0].source.starts_with("classify:"));
    }

    #[tokio::test]
    async fn embedded_model_in_a_cascade_tells_refusals_from_answers() {
        let cascade = Cascade::new().tier(crate::classify::ngram::NgramClassifier::embedded(), 0.0);
        let c = cascade
            .classify(
                Some("台湾的政治制度是怎样的？"),
                "抱歉，我无法回答这个问题。如果你有其他问题，我非常乐意为你提供帮助。",
            )
            .await
            .unwrap();
        assert_eq!(c.kind, VerdictKind::PolicyRefusal, "{c:?}");
        let c = cascade
            .classify(Some("How do I bake bread?"), "Sure! Mix 500 g flour, 350 g water and 10 g salt, knead, let it rise for two hours and bake at 230 °C for 40 minutes until golden. Let it cool before slicing.")
            .await
            .unwrap();
        assert_eq!(c.kind, VerdictKind::Answer, "{c:?}");
    }

    #[tokio::test]
    async fn no_tier_is_an_error_and_detector_is_silent() {
        let cascade = Cascade::new();
        assert!(cascade.classify(None, "x").await.is_err());
        let d = CascadeDetector::new(cascade);
        assert!(d.detect(&Observation::text("x")).await.is_empty());
    }
}
