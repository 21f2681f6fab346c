//! Detection: evidence about an answer.
//!
//! A [`Detector`] looks at an [`Observation`] (the answer so far, its tokens and
//! log-probabilities, the finish reason, a provider error) and returns [`Evidence`]: which
//! class it points to and how strongly. [`Detectors`] runs a set of them, cheapest first, and
//! hands their evidence to [`crate::judge`], where the verdict is made. The detectors:
//! - [`signals`]: what the provider itself says (moderation errors, `content_filter`, empty
//!   answers, cut streams);
//! - [`patterns`]: refusal, inability and evasion wording in many languages;
//! - [`logprobs`]: how confidently the model entered a refusal, repetition loops.
//!
//! The models (the embedded n-gram model, the encoder tier) are not detectors: they are
//! inputs of the trained combiner in [`crate::judge`].

pub mod logprobs;
pub mod patterns;
pub mod signals;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use crate::judge::{Decision, Models};
use crate::verdict::{Evidence, Verdict};
use crate::wire::{FinishReason, ProviderError, TokenLogprob};

pub use crate::judge::rules::combine;

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

/// A set of detectors and the decision that turns their evidence into one verdict.
///
/// [`Detectors::default`] is the full pipeline: provider signals, the built-in patterns and
/// the logprob checks, judged by the embedded n-gram model and the trained combiner
/// ([`crate::judge`]). [`Detectors::empty`] starts a custom set judged by the rule combiner
/// ([`crate::judge::rules`]); [`Detectors::models`] switches any set to the learned decision.
#[derive(Clone)]
pub struct Detectors {
    detectors: Vec<Arc<dyn Detector>>,
    decision: Decision,
}

impl std::fmt::Debug for Detectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.detectors.iter().map(|d| d.name()).collect();
        f.debug_struct("Detectors")
            .field("detectors", &names)
            .field("decision", &self.decision)
            .finish()
    }
}

impl Default for Detectors {
    /// Provider signals, the built-in patterns and the logprob checks, judged by the
    /// embedded models and the trained combiner.
    fn default() -> Self {
        Detectors::empty()
            .with(signals::ProviderSignals)
            .with(patterns::Patterns::builtin().clone())
            .with(logprobs::LogprobCheck::default())
            .models(Models::embedded())
    }
}

impl Detectors {
    /// A set with no detectors, judged by the rule combiner: everything is an answer.
    pub fn empty() -> Self {
        Detectors {
            detectors: Vec::new(),
            decision: Decision::Rules { threshold: 0.5 },
        }
    }

    /// Judges with models and the trained combiner ([`crate::judge`]).
    pub fn models(mut self, models: Models) -> Self {
        self.decision = Decision::Learned(Arc::new(models));
        self
    }

    /// The decision in use.
    pub fn decision(&self) -> &Decision {
        &self.decision
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

    /// Judges with the rule combiner, a non-answer class winning from this combined score
    /// (the baseline; 0.5 in [`Detectors::empty`]).
    pub fn threshold(mut self, threshold: f32) -> Self {
        self.decision = Decision::Rules { threshold };
        self
    }

    /// Runs every detector and decides.
    pub async fn judge(&self, observation: &Observation<'_>) -> Verdict {
        let started = Instant::now();
        let mut evidence = Vec::new();
        for d in &self.detectors {
            evidence.extend(d.detect(observation).await);
        }
        let mut verdict = crate::judge::decide(evidence, observation, &self.decision).await;
        verdict.elapsed = started.elapsed();
        verdict
    }
}
