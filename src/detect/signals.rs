//! Provider signals: what the provider itself says about the answer.
//!
//! These are facts, not guesses, so they come with full confidence: a moderation error
//! (DashScope's `data_inspection_failed` and its relatives, at the input or output stage),
//! `finish_reason: "content_filter"`, OpenAI's structured `refusal`, an answer with no
//! content, and a stream cut by an error after content or ending without `[DONE]`.

use async_trait::async_trait;

use super::{Completeness, Detector, Observation};
use crate::verdict::{Evidence, VerdictClass};
use crate::wire::FinishReason;

/// The provider-signal detector. Cheap: it reads fields, never text.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProviderSignals;

impl ProviderSignals {
    /// The evidence, synchronously (the detector never awaits).
    pub fn scan(&self, obs: &Observation<'_>) -> Vec<Evidence> {
        let mut out = Vec::new();
        let evidence = |suggests, score, reason: String| Evidence {
            source: "provider_signal".to_string(),
            suggests,
            score,
            reason,
            span: None,
            tokens: Vec::new(),
        };
        if let Some(err) = obs.error {
            if let Some(m) = &err.moderation {
                out.push(evidence(
                    VerdictClass::ProviderBlock,
                    1.0,
                    format!(
                        "{} moderation ({}) at the {:?} stage: {}",
                        err.provider, m.marker, m.stage, err.message
                    ),
                ));
            } else if !obs.text.trim().is_empty() {
                // A non-moderation error after content: the answer is cut, not refused.
                out.push(evidence(
                    VerdictClass::Empty,
                    0.6,
                    format!("answer cut by a provider error: {}", err.message),
                ));
            } else {
                out.push(evidence(
                    VerdictClass::Empty,
                    1.0,
                    format!("no answer: provider error {}", err.message),
                ));
            }
        }
        if obs.finish_reason == Some(&FinishReason::ContentFilter) {
            out.push(evidence(
                VerdictClass::ProviderBlock,
                1.0,
                "finish_reason content_filter".to_string(),
            ));
        }
        if obs.completeness != Completeness::Partial && obs.error.is_none() && obs.text.trim().is_empty() {
            out.push(evidence(
                VerdictClass::Empty,
                1.0,
                match obs.completeness {
                    Completeness::Truncated => "stream ended with no content and no [DONE]".to_string(),
                    _ => "empty answer".to_string(),
                },
            ));
        }
        if obs.completeness == Completeness::Truncated && !obs.text.trim().is_empty() {
            out.push(evidence(
                VerdictClass::Empty,
                0.3,
                "stream ended without [DONE]: the answer may be cut".to_string(),
            ));
        }
        out
    }
}

#[async_trait]
impl Detector for ProviderSignals {
    fn name(&self) -> &str {
        "provider_signal"
    }

    async fn detect(&self, observation: &Observation<'_>) -> Vec<Evidence> {
        self.scan(observation)
    }
}
