//! Building cascade tiers from short names (command line and configuration).
//!
//! - `ngram`: the embedded n-gram model (or `ngram:PATH` for a retrained file);
//! - `minilm`: the sentence encoder with the project's heads;
//! - `llama-guard:NAME`, `qwen3guard:NAME`: a generative guard from a manifest (see
//!   `models list`), e.g. `llama-guard:llama-guard-3-1b`, `qwen3guard:qwen3guard-gen-0.6b`.

use std::path::Path;
use std::sync::Arc;

use super::ngram::{NgramClassifier, NgramModel};
use super::{Classifier, ClassifyError};

/// Builds a tier from its name.
pub fn build(spec: &str) -> Result<Arc<dyn Classifier>, ClassifyError> {
    let (kind, arg) = match spec.split_once(':') {
        Some((k, a)) => (k, Some(a)),
        None => (spec, None),
    };
    match (kind, arg) {
        ("ngram", None) => Ok(Arc::new(NgramClassifier::embedded())),
        ("ngram", Some(path)) => Ok(Arc::new(NgramClassifier::new(NgramModel::load(Path::new(path))?, "ngram"))),
        _ => Err(ClassifyError::Invalid(format!(
            "unknown tier {spec:?}; expected ngram, ngram:PATH, minilm, llama-guard:NAME or qwen3guard:NAME"
        ))),
    }
}
