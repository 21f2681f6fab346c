//! Building cascade tiers from short names (command line and configuration).
//!
//! - `ngram`: the embedded n-gram model (or `ngram:PATH` for a retrained file);
//! - `minilm`: the sentence encoder with the project's heads;
//! - `llama-guard:NAME`, `qwen3guard:NAME`: a generative guard from a manifest (see
//!   `models list`), e.g. `llama-guard:llama-guard-3-1b`, `qwen3guard:qwen3guard-gen-0.6b`.

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
        ("qwen3guard", name) => {
            let m = crate::hub::find_manifest(name.unwrap_or("qwen3guard-gen-0.6b"))?;
            Ok(Arc::new(Qwen3GuardClassifier::new(
                Qwen3Guard::load_manifest(&m)?,
                m.name,
            )))
        }
        _ => Err(ClassifyError::Invalid(format!(
            "unknown tier {spec:?}; expected ngram, ngram:PATH, minilm, llama-guard:NAME or qwen3guard:NAME"
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
