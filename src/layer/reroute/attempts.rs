//! The record of every attempt made for one request: who was asked, what they said,
//! how long it took, what it cost.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::verdict::VerdictClass;
use crate::wire::Usage;

/// Prices of one provider, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Prices {
    pub input: f64,
    /// Prompt tokens served from the provider's cache (often a tenth of `input`).
    #[serde(default)]
    pub cached_input: Option<f64>,
    pub output: f64,
}

impl Prices {
    /// The cost of a usage block.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let cached = usage
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
            .min(usage.prompt_tokens);
        let fresh = usage.prompt_tokens - cached;
        (fresh as f64 * self.input
            + cached as f64 * self.cached_input.unwrap_or(self.input)
            + usage.completion_tokens as f64 * self.output)
            / 1e6
    }
}

/// One attempt: a call to one provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub provider: String,
    /// The model name the provider was asked for (after mapping).
    pub model: String,
    /// What the answer was judged to be; `None` when the attempt failed without an answer.
    pub verdict: Option<VerdictClass>,
    /// Why the attempt was given up, when it was (`policy_refusal`, `HTTP 503`, …).
    pub error: Option<String>,
    /// Time until the response (for streams: until the guard released or stopped it).
    #[serde(rename = "latency_ms", with = "millis")]
    pub latency: Duration,
    /// Whether this attempt continued a stream cut on an earlier one.
    pub continuation: bool,
    /// Whether this attempt re-asked the same provider with a new seed.
    pub resample: bool,
    pub usage: Option<Usage>,
    /// Whether `usage` was estimated from the text (the provider reported none).
    pub usage_estimated: bool,
    /// In US dollars, when the provider has prices configured.
    pub cost: Option<f64>,
}

/// The attempts of one request, shared with the stream that may still add to them (an
/// extension on every response the re-route layer returns).
#[derive(Debug, Clone, Default)]
pub struct Attempts(Arc<Mutex<Vec<Attempt>>>);

impl Attempts {
    /// A copy of the attempts so far.
    pub fn snapshot(&self) -> Vec<Attempt> {
        self.0.lock().expect("attempt log poisoned").clone()
    }

    /// How many attempts were made.
    pub fn len(&self) -> usize {
        self.0.lock().expect("attempt log poisoned").len()
    }

    /// Whether no attempt was made.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether any provider other than the first answered (any re-route happened).
    pub fn rerouted(&self) -> bool {
        self.len() > 1
    }

    pub(crate) fn push(&self, attempt: Attempt) -> usize {
        let mut log = self.0.lock().expect("attempt log poisoned");
        log.push(attempt);
        log.len() - 1
    }

    pub(crate) fn update(&self, index: usize, f: impl FnOnce(&mut Attempt)) {
        if let Some(a) = self.0.lock().expect("attempt log poisoned").get_mut(index) {
            f(a);
        }
    }
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1e3)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs_f64(f64::deserialize(d)?.max(0.0) / 1e3))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::PromptTokensDetails;

    #[test]
    fn cost_counts_cached_tokens_at_their_price() {
        let prices = Prices {
            input: 0.4,
            cached_input: Some(0.04),
            output: 1.2,
        };
        let usage = Usage {
            prompt_tokens: 1_000_000,
            completion_tokens: 500_000,
            total_tokens: 1_500_000,
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: Some(250_000),
                ..Default::default()
            }),
            ..Default::default()
        };
        let cost = prices.cost(&usage);
        assert!(
            (cost - (0.75 * 0.4 + 0.25 * 0.04 + 0.5 * 1.2)).abs() < 1e-9,
            "{cost}"
        );
    }
}
