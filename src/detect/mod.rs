//! Detection: where a verdict is made.
//!
//! A [`Detector`] looks at an [`Observation`] (the answer so far, its tokens and
//! log-probabilities, the finish reason, a provider error) and returns [`Evidence`]: which
//! class it points to and how strongly. [`Detectors`] runs a set of them, cheapest first, and
//! combines their evidence into one [`Verdict`]. The detectors:
//! - [`signals`]: what the provider itself says (moderation errors, `content_filter`, empty
//!   answers, cut streams);
//! - [`patterns`]: refusal, inability and evasion wording in many languages;
//! - [`logprobs`]: how confidently the model entered a refusal, repetition loops.
//!
//! Model-based classifiers (see the models issue) plug in as further detectors.

pub mod logprobs;
pub mod patterns;
pub mod signals;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use crate::verdict::{Evidence, Verdict, VerdictClass, VerdictKind};
use crate::wire::{FinishReason, ModerationStage, ProviderError, TokenLogprob};

/// How much of the answer an observation covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completeness {
    /// The first part of a stream, still going (inside the guard's hold-back window).
    Partial,
    /// The whole answer.
    Complete,
    /// The stream ended without `[DONE]` or broke: the answer may be cut.
    Truncated,
}

/// Everything a detector may look at for one answer.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// The user's prompt (the last user message), when known.
    pub prompt: Option<&'a str>,
    /// The answer text (so far, when [`Completeness::Partial`]).
    pub text: &'a str,
    /// Per-token log-probabilities, when the provider sent them.
    pub tokens: &'a [TokenLogprob],
    pub finish_reason: Option<&'a FinishReason>,
    /// A provider error that ended the exchange, before or after content.
    pub error: Option<&'a ProviderError>,
    pub completeness: Completeness,
}

impl<'a> Observation<'a> {
    /// A complete answer text with nothing else known.
    pub fn text(text: &'a str) -> Self {
        Observation {
            prompt: None,
            text,
            tokens: &[],
            finish_reason: None,
            error: None,
            completeness: Completeness::Complete,
        }
    }
}

/// A source of evidence about an answer.
#[async_trait]
pub trait Detector: Send + Sync {
    /// A short stable name, written into evidence (`patterns`, `provider_signal`, …).
    fn name(&self) -> &str;

    /// Evidence found in the observation; empty when there is none.
    async fn detect(&self, observation: &Observation<'_>) -> Vec<Evidence>;
}

/// A set of detectors and the rule that turns their evidence into one verdict.
///
/// The rule: a provider block or an empty answer is decided by provider signals alone.
/// Otherwise, for each class, a detector contributes its single strongest piece of evidence
/// (several matches of one detector are not independent votes: a refusal phrase repeated
/// three times is still one refusal), and the detectors are combined as independent votes
/// (`1 - Π(1 - score)`). Evidence for the answer, combined the same way, discounts every
/// non-answer class (`score × (1 - for_answer)`): a long answer after a disclaimer is an
/// answer. The strongest class wins when its discounted score reaches the threshold
/// (default 0.5), and the answer is an [`VerdictKind::Answer`] otherwise.
#[derive(Clone)]
pub struct Detectors {
    detectors: Vec<Arc<dyn Detector>>,
    threshold: f32,
}

impl std::fmt::Debug for Detectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.detectors.iter().map(|d| d.name()).collect();
        f.debug_struct("Detectors")
            .field("detectors", &names)
            .field("threshold", &self.threshold)
            .finish()
    }
}

impl Default for Detectors {
    /// Provider signals, the built-in patterns and the logprob checks.
    fn default() -> Self {
        Detectors::empty()
            .with(signals::ProviderSignals)
            .with(patterns::Patterns::builtin().clone())
            .with(logprobs::LogprobCheck::default())
    }
}

impl Detectors {
    /// A set with no detectors: everything is an answer.
    pub fn empty() -> Self {
        Detectors {
            detectors: Vec::new(),
            threshold: 0.5,
        }
    }

    /// Adds a detector (they run in the order added).
    pub fn with(mut self, detector: impl Detector + 'static) -> Self {
        self.detectors.push(Arc::new(detector));
        self
    }

    /// Adds a shared detector.
    pub fn with_arc(mut self, detector: Arc<dyn Detector>) -> Self {
        self.detectors.push(detector);
        self
    }

    /// The combined score from which a non-answer class wins. Default 0.5.
    pub fn threshold(mut self, threshold: f32) -> Self {
        self.threshold = threshold;
        self
    }

    /// Runs every detector and combines the evidence.
    pub async fn judge(&self, observation: &Observation<'_>) -> Verdict {
        let started = Instant::now();
        let mut evidence = Vec::new();
        for d in &self.detectors {
            evidence.extend(d.detect(observation).await);
        }
        let mut verdict = combine(evidence, self.threshold, observation);
        verdict.elapsed = started.elapsed();
        verdict
    }
}

/// Combines evidence into a verdict (see [`Detectors`] for the rule).
pub fn combine(mut evidence: Vec<Evidence>, threshold: f32, observation: &Observation<'_>) -> Verdict {
    evidence.sort_by(|a, b| b.score.total_cmp(&a.score));
    let decisive = |class: VerdictClass| {
        evidence
            .iter()
            .find(|e| e.suggests == class && e.score >= 0.99)
            .map(|e| e.score)
    };
    if let Some(score) = decisive(VerdictClass::ProviderBlock) {
        let stage = observation
            .error
            .and_then(|e| e.moderation.as_ref())
            .map(|m| m.stage)
            .unwrap_or(if observation.text.trim().is_empty() {
                ModerationStage::Input
            } else {
                ModerationStage::Output
            });
        return with_evidence(VerdictKind::ProviderBlock { stage }, score, evidence);
    }
    if let Some(score) = decisive(VerdictClass::Empty) {
        return with_evidence(VerdictKind::Empty, score, evidence);
    }

    let mut best: Option<(VerdictClass, f32)> = None;
    for class in VerdictClass::ALL {
        if class == VerdictClass::Answer {
            continue;
        }
        let score = vote(&evidence, class);
        if score > 0.0 && best.is_none_or(|(_, s)| score > s) {
            best = Some((class, score));
        }
    }
    // Evidence for the answer (a long on-topic answer, say) counts against the refusal.
    let for_answer = vote(&evidence, VerdictClass::Answer);
    let discount = 1.0 - for_answer;
    match best {
        Some((class, score)) if score * discount >= threshold => {
            let kind = match class {
                VerdictClass::SafetyRefusal => VerdictKind::SafetyRefusal {
                    categories: categories_of(&evidence),
                },
                VerdictClass::PolicyRefusal => VerdictKind::PolicyRefusal,
                VerdictClass::Evasion => VerdictKind::Evasion,
                VerdictClass::Inability => VerdictKind::Inability,
                VerdictClass::Empty => VerdictKind::Empty,
                VerdictClass::ProviderBlock => VerdictKind::ProviderBlock {
                    stage: ModerationStage::Output,
                },
                VerdictClass::Answer => VerdictKind::Answer,
            };
            with_evidence(kind, score * discount, evidence)
        }
        Some((_, score)) => with_evidence(VerdictKind::Answer, 1.0 - score.min(1.0) * 0.5, evidence),
        None => with_evidence(VerdictKind::Answer, 0.5 + 0.5 * for_answer.max(0.5), evidence),
    }
}

/// The combined score for one class: each source's strongest evidence, then independent
/// votes across sources.
fn vote(evidence: &[Evidence], class: VerdictClass) -> f32 {
    let mut strongest: Vec<(&str, f32)> = Vec::new();
    for e in evidence.iter().filter(|e| e.suggests == class) {
        let score = e.score.clamp(0.0, 1.0);
        match strongest.iter_mut().find(|(s, _)| *s == e.source) {
            Some((_, best)) => *best = best.max(score),
            None => strongest.push((&e.source, score)),
        }
    }
    1.0 - strongest.iter().map(|(_, s)| 1.0 - s).product::<f32>()
}

/// Hazard categories named by safety-refusal evidence: the comma-separated list after
/// `categories: ` at the end of a reason (the convention of the model classifiers).
fn categories_of(evidence: &[Evidence]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in evidence
        .iter()
        .filter(|e| e.suggests == VerdictClass::SafetyRefusal)
    {
        if let Some((_, list)) = e.reason.rsplit_once("categories: ") {
            for c in list.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                if !out.iter().any(|o| o == c) {
                    out.push(c.to_string());
                }
            }
        }
    }
    out
}

fn with_evidence(kind: VerdictKind, confidence: f32, evidence: Vec<Evidence>) -> Verdict {
    let mut v = Verdict::new(kind, confidence.clamp(0.0, 1.0));
    v.evidence = evidence;
    v
}
