//! (in progress)

use std::path::Path;

use super::train::Example;
use super::ClassifyError;

/// Trains the encoder heads (see `refusal-guard train --encoder-heads`).
pub fn train_heads_cli(_path: &Path, _responses: &[Example], _prompts: &[Example]) -> Result<(), ClassifyError> {
    Err(ClassifyError::Invalid("encoder heads: not yet".into()))
}
