//! Model-name mapping: the name a caller uses and the name a provider knows.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Maps the caller's model names to a provider's (`qwen-plus` → `qwen/qwen-plus` on an
/// aggregator). Names without an entry pass unchanged; `*` maps every other name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ModelMap(pub HashMap<String, String>);

impl ModelMap {
    /// An empty map: every name passes unchanged.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one mapping.
    pub fn with(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.0.insert(from.into(), to.into());
        self
    }

    /// The provider's name for `model`.
    pub fn map<'a>(&'a self, model: &'a str) -> &'a str {
        self.0
            .get(model)
            .or_else(|| self.0.get("*"))
            .map(String::as_str)
            .unwrap_or(model)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for ModelMap {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        ModelMap(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}
