//! Refusal, inability and evasion wording (placeholder until the patterns land).

use async_trait::async_trait;

use super::{Detector, Observation};
use crate::verdict::Evidence;

/// The pattern detector.
#[derive(Debug, Clone, Default)]
pub struct Patterns;

impl Patterns {
    /// The built-in patterns, compiled once.
    pub fn builtin() -> &'static Patterns {
        static P: Patterns = Patterns;
        &P
    }
}

#[async_trait]
impl Detector for Patterns {
    fn name(&self) -> &str {
        "patterns"
    }

    async fn detect(&self, _observation: &Observation<'_>) -> Vec<Evidence> {
        Vec::new()
    }
}
