//! Which files an audit reads, and how they are opened.
//!
//! The command line takes files, folders (walked recursively, in name order so that runs
//! are reproducible), glob patterns (for shells that do not expand them, and for patterns
//! quoted on purpose: `'logs/**/*.jsonl.gz'`) and `-` for standard input. What a file holds
//! is read from its name:
//!
//! | name | holds |
//! |---|---|
//! | `*.jsonl`, `*.ndjson` (and any name given explicitly that is not below) | JSON Lines: one record, response or error body per line |
//! | `*.json` | one raw response or error body (or an array of them) |
//! | `*.sse` | one recorded server-sent-events transcript |
//! | `NAME.meta.json` | the id, language, label, model… of `NAME.json` / `NAME.sse`, never an input itself |
//!
//! Any of them may be gzip-compressed: a file is decompressed when its first bytes are the
//! gzip magic, whatever its name, so `zcat`-less pipes into `-` work too. Standard input is
//! read as JSON Lines.
//!
//! Folder walking is `walkdir`'s job and glob expansion `glob`'s (the rust-lang crate that
//! walks the file system; `globset` only matches names); decompression is `flate2`'s.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use flate2::read::MultiGzDecoder;
use serde::Serialize;

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// One JSON value per line.
    JsonLines,
    /// One JSON document: a `chat.completion`, an `{"error":…}` body, or an array of them.
    JsonDocument,
    /// A recorded SSE transcript of one streamed answer.
    Sse,
}

/// One input: a file, or standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The file; `None` for standard input.
    pub path: Option<PathBuf>,
    /// The name used in reports and error messages (`-` reads as `<stdin>`).
    pub name: Arc<str>,
    pub kind: InputKind,
    /// The size on disk, for the progress bar; `None` for standard input.
    pub size: Option<u64>,
    /// The `NAME.meta.json` beside a document or transcript, when there is one.
    pub sidecar: Option<PathBuf>,
}

/// Where a record came from: a file and, for JSON Lines, a 1-based line (for a JSON array,
/// the 1-based element).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    #[serde(serialize_with = "serialize_arc_str")]
    pub file: Arc<str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
}

fn serialize_arc_str<S: serde::Serializer>(s: &Arc<str>, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s)
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.file),
            None => f.write_str(&self.file),
        }
    }
}

/// The name standard input goes by in reports.
pub const STDIN_NAME: &str = "<stdin>";

/// The suffix of a metadata sidecar.
pub const SIDECAR_SUFFIX: &str = ".meta.json";

/// The kind of a file from its name; `None` for names a folder walk should skip.
pub fn kind_of(path: &Path) -> Option<InputKind> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    if name.ends_with(SIDECAR_SUFFIX) {
        None
    } else if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
        Some(InputKind::JsonLines)
    } else if name.ends_with(".json") {
        Some(InputKind::JsonDocument)
    } else if name.ends_with(".sse") {
        Some(InputKind::Sse)
    } else {
        None
    }
}

/// `NAME.meta.json` for `NAME.json`, `NAME.sse` and their `.gz` forms, when it exists.
fn sidecar_of(path: &Path, kind: InputKind) -> Option<PathBuf> {
    if kind == InputKind::JsonLines {
        return None;
    }
    let name = path.file_name()?.to_str()?;
    let name = name.strip_suffix(".gz").unwrap_or(name);
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    let candidate = path.with_file_name(format!("{stem}{SIDECAR_SUFFIX}"));
    candidate.is_file().then_some(candidate)
}

fn file_input(path: PathBuf, kind: InputKind) -> Input {
    let size = std::fs::metadata(&path).ok().map(|m| m.len());
    let sidecar = sidecar_of(&path, kind);
    Input {
        name: Arc::from(path.display().to_string()),
        path: Some(path),
        kind,
        size,
        sidecar,
    }
}

/// Turns command-line arguments into inputs, in order, each file once.
///
/// An argument that names nothing (a missing file, a glob that matches no file) is an
/// error: it is a typo, and auditing the rest silently would report on the wrong data.
pub fn resolve(args: &[String]) -> Result<Vec<Input>, String> {
    let mut out: Vec<Input> = Vec::new();
    let push = |input: Input, out: &mut Vec<Input>| {
        if !out.iter().any(|i| i.path == input.path) {
            out.push(input);
        }
    };
    for arg in args {
        if arg == "-" {
            push(
                Input {
                    path: None,
                    name: Arc::from(STDIN_NAME),
                    kind: InputKind::JsonLines,
                    size: None,
                    sidecar: None,
                },
                &mut out,
            );
            continue;
        }
        let path = Path::new(arg);
        if path.is_dir() {
            for input in walk(path)? {
                push(input, &mut out);
            }
        } else if path.is_file() {
            // A file named explicitly is read even with an unknown extension (as JSON Lines).
            let kind = kind_of(path).unwrap_or(InputKind::JsonLines);
            push(file_input(path.to_path_buf(), kind), &mut out);
        } else if arg.contains(['*', '?', '[']) {
            let matches = glob::glob(arg).map_err(|e| format!("{arg}: bad glob pattern: {e}"))?;
            let mut any = false;
            for entry in matches {
                let path = entry.map_err(|e| format!("{arg}: {e}"))?;
                if path.is_dir() {
                    for input in walk(&path)? {
                        any = true;
                        push(input, &mut out);
                    }
                } else if let Some(kind) = kind_of(&path) {
                    any = true;
                    push(file_input(path, kind), &mut out);
                }
            }
            if !any {
                return Err(format!("{arg}: no file matches"));
            }
        } else {
            return Err(format!("{arg}: no such file or folder"));
        }
    }
    Ok(out)
}

/// The inputs under a folder, recursively, sorted by name.
fn walk(dir: &Path) -> Result<Vec<Input>, String> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        if !entry.file_type().is_file() {
            continue;
        }
        if let Some(kind) = kind_of(entry.path()) {
            out.push(file_input(entry.into_path(), kind));
        }
    }
    Ok(out)
}

/// Counts the bytes read from the underlying file (before decompression), for the progress
/// bar: compressed and plain inputs then advance it at the same rate as their size.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A reader over an input's content, decompressed when it is gzip.
pub type Reader = Box<dyn BufRead + Send>;

/// Opens an input; `read` counts the raw bytes consumed.
pub fn open(input: &Input, read: Arc<AtomicU64>) -> io::Result<Reader> {
    let raw: Box<dyn Read + Send> = match &input.path {
        Some(path) => Box::new(File::open(path)?),
        None => Box::new(io::stdin()),
    };
    let mut buffered = BufReader::with_capacity(64 << 10, Counting { inner: raw, read });
    let gzip = buffered.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gzip {
        Box::new(BufReader::with_capacity(64 << 10, MultiGzDecoder::new(buffered)))
    } else {
        Box::new(buffered)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_names() {
        assert_eq!(kind_of(Path::new("a/b.jsonl")), Some(InputKind::JsonLines));
        assert_eq!(kind_of(Path::new("b.NDJSON.gz")), Some(InputKind::JsonLines));
        assert_eq!(kind_of(Path::new("b.json")), Some(InputKind::JsonDocument));
        assert_eq!(kind_of(Path::new("b.sse.gz")), Some(InputKind::Sse));
        assert_eq!(kind_of(Path::new("b.meta.json")), None);
        assert_eq!(kind_of(Path::new("README.md")), None);
    }

    #[test]
    fn locations_print_like_compilers() {
        let at = Location {
            file: Arc::from("x.jsonl"),
            line: Some(7),
        };
        assert_eq!(at.to_string(), "x.jsonl:7");
    }
}
