//! Streaming log-probability checks (placeholder).

use async_trait::async_trait;

use super::{Detector, Observation};
use crate::verdict::Evidence;

/// The logprob detector.
#[derive(Debug, Clone, Default)]
pub struct LogprobCheck;

#[async_trait]
impl Detector for LogprobCheck {
    fn name(&self) -> &str {
        "logprobs"
    }

    async fn detect(&self, _observation: &Observation<'_>) -> Vec<Evidence> {
        Vec::new()
    }
}
