//! The audit pipeline: read, judge on every core, count in input order.
//!
//! ```text
//!  reader thread ──batches──▶ bounded channel ──▶ N workers ──▶ bounded channel ──▶ collector
//!  (files in order,           (2 per worker)      (parse +                          (this thread:
//!   line by line)                                  judge)                            reorder, count,
//!                                                                                    call back)
//! ```
//!
//! Memory stays flat whatever the input size: the reader blocks when the workers are
//! behind, the workers block when the collector is, and the collector only holds the
//! batches that finished ahead of an earlier one (at most the channels' capacity). Rows
//! travel in batches so that the channel costs nothing next to the detectors, and each
//! batch carries a sequence number so that the collector can hand outcomes back in input
//! order: per-record output lines and "first bad line" are then the same on every run and
//! every machine.
//!
//! Workers are plain threads over a `crossbeam-channel` (multi-consumer, bounded): the
//! ordering and the back-pressure are the point here, which a rayon `par_bridge` gives up.
//! [`Detectors::judge`] is async only so that model tiers can await; the built-in detectors
//! never do, so each worker drives it with `futures::executor::block_on`.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::{bounded, Receiver, Sender};
use serde_json::Value;

use super::input::{self, Input, InputKind, Location};
use super::item::{self, Item, Sidecar};
use super::tally::{gold_of, BadRecord, Judged, Tally};
use crate::dataset::LabelMap;
use crate::detect::Detectors;

/// How an audit runs.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// The verdict pipeline ([`Detectors::default`] unless a caller adds model tiers).
    pub detectors: Detectors,
    /// The label mapping for the confusion matrix (the datasets' mapping by default).
    pub labels: LabelMap,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Stop at the first bad record instead of skipping it.
    pub strict: bool,
    /// Judge verdict-log lines again with [`AuditOptions::detectors`] instead of counting
    /// the verdict the gateway logged (useful only when the log holds text).
    pub rejudge: bool,
    /// Records per batch between threads.
    pub batch: usize,
    /// Raw input bytes (compressed bytes for gzip) up to the last record handed back to
    /// the callback: progress bars and ETAs then follow what is judged, not what is read
    /// ahead.
    pub bytes_done: Arc<AtomicU64>,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            detectors: Detectors::default(),
            labels: LabelMap::default(),
            workers: 0,
            strict: false,
            rejudge: false,
            batch: 256,
            bytes_done: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// What became of one record.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// It was read and judged.
    Judged(Box<Judged>),
    /// It could not be read.
    Bad(BadRecord),
}

/// Why an audit stopped before the end of its input.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A bad record under [`AuditOptions::strict`].
    #[error("{0} (stopped at the first bad record: --strict)")]
    Strict(BadRecord),
    /// The caller's callback failed (a report file could not be written, say).
    #[error("{0}")]
    Callback(String),
}

/// What a worker hands back: a batch's sequence number, read offset and outcomes.
struct Done {
    seq: u64,
    read: u64,
    outcomes: Vec<Outcome>,
}

/// A raw unit of input, before parsing (parsing is the workers' job).
enum Unit {
    Line {
        at: Location,
        bytes: Vec<u8>,
    },
    Document {
        at: Location,
        bytes: Vec<u8>,
        sidecar: Option<Arc<Sidecar>>,
    },
    Transcript {
        at: Location,
        bytes: Vec<u8>,
        sidecar: Option<Arc<Sidecar>>,
    },
    Bad(BadRecord),
}

struct Batch {
    seq: u64,
    /// Raw input bytes read when the batch was cut.
    read: u64,
    units: Vec<Unit>,
}

/// Audits `inputs`, calling `on_outcome` for every record in input order (on the calling
/// thread), and returns the counts. `on_outcome` sees the tally as it stands after the
/// record; an error from it stops the run.
pub fn audit<F>(inputs: &[Input], options: &AuditOptions, mut on_outcome: F) -> Result<Tally, AuditError>
where
    F: FnMut(&Outcome, &Tally) -> Result<(), String>,
{
    let workers = match options.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let stop = AtomicBool::new(false);
    let mut tally = Tally::default();
    std::thread::scope(|s| {
        let (work_tx, work_rx) = bounded::<Batch>(workers * 2);
        let (done_tx, done_rx) = bounded::<Done>(workers * 2);
        let stop = &stop;
        s.spawn(move || read_all(inputs, options, work_tx, stop));
        for _ in 0..workers {
            let (rx, tx) = (work_rx.clone(), done_tx.clone());
            s.spawn(move || work(rx, tx, options));
        }
        drop((work_rx, done_tx));
        let result = collect(done_rx, options, &mut tally, &mut on_outcome);
        if result.is_err() {
            // The reader stops at its next batch; workers stop when their send fails
            // (the collector's receiver is dropped on return).
            stop.store(true, Ordering::Relaxed);
        }
        result
    })?;
    Ok(tally)
}

/// The collector: puts batches back in order and hands their outcomes on.
fn collect<F>(
    done: Receiver<Done>,
    options: &AuditOptions,
    tally: &mut Tally,
    on_outcome: &mut F,
) -> Result<(), AuditError>
where
    F: FnMut(&Outcome, &Tally) -> Result<(), String>,
{
    let mut next = 0u64;
    let mut ahead: BTreeMap<u64, Done> = BTreeMap::new();
    for done in done {
        ahead.insert(done.seq, done);
        while let Some(Done { read, outcomes, .. }) = ahead.remove(&next) {
            next += 1;
            options.bytes_done.store(read, Ordering::Relaxed);
            for outcome in outcomes {
                match &outcome {
                    Outcome::Judged(j) => tally.add(j),
                    Outcome::Bad(bad) => {
                        if options.strict {
                            return Err(AuditError::Strict(bad.clone()));
                        }
                        tally.add_bad(bad.clone());
                    }
                }
                on_outcome(&outcome, tally).map_err(AuditError::Callback)?;
            }
        }
    }
    Ok(())
}

/// A worker: parses and judges batches until the reader is done or the collector gone.
fn work(rx: Receiver<Batch>, tx: Sender<Done>, options: &AuditOptions) {
    for batch in rx {
        let mut out = Vec::with_capacity(batch.units.len());
        for unit in batch.units {
            process(unit, options, &mut out);
        }
        let done = Done {
            seq: batch.seq,
            read: batch.read,
            outcomes: out,
        };
        if tx.send(done).is_err() {
            return;
        }
    }
}

/// Parses one unit into items and judges each.
fn process(unit: Unit, options: &AuditOptions, out: &mut Vec<Outcome>) {
    let bad = |at: Location, error: String| Outcome::Bad(BadRecord { at, error });
    match unit {
        Unit::Bad(b) => out.push(Outcome::Bad(b)),
        Unit::Line { at, bytes } => {
            let parsed = std::str::from_utf8(&bytes)
                .map_err(|e| format!("not UTF-8: {e}"))
                .and_then(|line| item::from_json_line(line, &at));
            out.push(match parsed {
                Ok(item) => judge(item, at, options),
                Err(e) => bad(at, e),
            });
        }
        Unit::Document { at, bytes, sidecar } => {
            let value: Value = match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(e) => return out.push(bad(at, format!("not JSON: {e}"))),
            };
            let sidecar = sidecar.as_deref();
            match value {
                // An array holds several bodies; each is located by its 1-based element.
                Value::Array(values) => {
                    for (i, value) in values.into_iter().enumerate() {
                        let at = Location {
                            file: at.file.clone(),
                            line: Some(i as u64 + 1),
                        };
                        out.push(match item::from_value(value, &at, sidecar) {
                            Ok(item) => judge(item, at, options),
                            Err(e) => bad(at, e),
                        });
                    }
                }
                value => out.push(match item::from_value(value, &at, sidecar) {
                    Ok(item) => judge(item, at, options),
                    Err(e) => bad(at, e),
                }),
            }
        }
        Unit::Transcript { at, bytes, sidecar } => {
            out.push(match item::from_sse(bytes, &at, sidecar.as_deref()) {
                Ok(item) => judge(item, at, options),
                Err(e) => bad(at, e),
            });
        }
    }
}

/// Runs the verdict pipeline over one item (or takes the verdict the gateway logged with
/// it). A detector that panics on one record makes that record a bad one instead of
/// ending a long run.
fn judge(mut item: Item, at: Location, options: &AuditOptions) -> Outcome {
    if let Some(verdict) = item.logged.take().filter(|_| !options.rejudge) {
        return judged(item, at, options, verdict);
    }
    // The built-in detectors never wait on anything: blocking on them is free.
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        futures::executor::block_on(options.detectors.judge(&item.observation()))
    }));
    let verdict = match caught {
        Ok(verdict) => verdict,
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            return Outcome::Bad(BadRecord {
                at,
                error: format!("the verdict pipeline panicked on this record: {why}"),
            });
        }
    };
    judged(item, at, options, verdict)
}

fn judged(item: Item, at: Location, options: &AuditOptions, verdict: crate::verdict::Verdict) -> Outcome {
    let gold = gold_of(&options.labels, &item.record);
    let Item {
        record,
        provider,
        timestamp,
        ..
    } = item;
    Outcome::Judged(Box::new(Judged {
        at,
        id: record.id,
        provider,
        model: record.model,
        lang: record.lang,
        source: record.source,
        prompt: record.prompt,
        text: record.response,
        timestamp,
        gold,
        verdict,
    }))
}

/// The reader: every input in order, cut into batches.
fn read_all(inputs: &[Input], options: &AuditOptions, tx: Sender<Batch>, stop: &AtomicBool) {
    let mut batcher = Batcher {
        tx,
        read: Arc::new(AtomicU64::new(0)),
        seq: 0,
        units: Vec::new(),
        bytes: 0,
        size: options.batch.max(1),
    };
    for input in inputs {
        if stop.load(Ordering::Relaxed) || read_one(input, &mut batcher, stop).is_err() {
            return;
        }
    }
    let _ = batcher.flush();
}

/// The collector is gone: stop reading.
struct Closed;

struct Batcher {
    tx: Sender<Batch>,
    /// Raw bytes read so far, counted by the input readers.
    read: Arc<AtomicU64>,
    seq: u64,
    units: Vec<Unit>,
    bytes: usize,
    size: usize,
}

impl Batcher {
    /// A batch is sent at `size` units or 1 MiB, whichever comes first.
    fn push(&mut self, unit: Unit, bytes: usize) -> Result<(), Closed> {
        self.units.push(unit);
        self.bytes += bytes;
        if self.units.len() >= self.size || self.bytes >= 1 << 20 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Closed> {
        if self.units.is_empty() {
            return Ok(());
        }
        let units = std::mem::take(&mut self.units);
        self.bytes = 0;
        let seq = self.seq;
        self.seq += 1;
        let read = self.read.load(Ordering::Relaxed);
        self.tx.send(Batch { seq, read, units }).map_err(|_| Closed)
    }
}

/// A byte-order mark some Windows tools put at the start of a UTF-8 file.
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// The most a `.json` document or `.sse` transcript may hold (they are read whole).
const DOCUMENT_LIMIT: u64 = 256 << 20;

fn read_one(input: &Input, batcher: &mut Batcher, stop: &AtomicBool) -> Result<(), Closed> {
    let file_at = Location {
        file: input.name.clone(),
        line: None,
    };
    let bad = |at: Location, error: String| Unit::Bad(BadRecord { at, error });
    let mut reader = match input::open(input, batcher.read.clone()) {
        Ok(r) => r,
        Err(e) => return batcher.push(bad(file_at, format!("cannot open: {e}")), 0),
    };
    match input.kind {
        InputKind::JsonLines => {
            let mut line = 0u64;
            let mut buf = Vec::new();
            loop {
                if stop.load(Ordering::Relaxed) {
                    return Err(Closed);
                }
                buf.clear();
                line += 1;
                let at = Location {
                    file: input.name.clone(),
                    line: Some(line),
                };
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return batcher.push(bad(at, format!("read error: {e}")), 0),
                }
                if line == 1 && buf.starts_with(UTF8_BOM) {
                    buf.drain(..UTF8_BOM.len());
                }
                if buf.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let bytes = std::mem::take(&mut buf);
                let len = bytes.len();
                batcher.push(Unit::Line { at, bytes }, len)?;
            }
        }
        InputKind::JsonDocument | InputKind::Sse => {
            let mut bytes = Vec::new();
            if let Err(e) = reader.take(DOCUMENT_LIMIT).read_to_end(&mut bytes) {
                return batcher.push(bad(file_at, format!("read error: {e}")), 0);
            }
            let sidecar = match read_sidecar(input) {
                Ok(s) => s,
                Err(e) => return batcher.push(bad(file_at, e), 0),
            };
            let len = bytes.len();
            let unit = if input.kind == InputKind::Sse {
                Unit::Transcript {
                    at: file_at,
                    bytes,
                    sidecar,
                }
            } else {
                Unit::Document {
                    at: file_at,
                    bytes,
                    sidecar,
                }
            };
            batcher.push(unit, len)
        }
    }
}

fn read_sidecar(input: &Input) -> Result<Option<Arc<Sidecar>>, String> {
    let Some(path) = &input.sidecar else {
        return Ok(None);
    };
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    match serde_json::from_slice(&text) {
        Ok(Value::Object(map)) => Ok(Some(Arc::new(map))),
        Ok(_) => Err(format!("{}: expected a JSON object", path.display())),
        Err(e) => Err(format!("{}: not JSON: {e}", path.display())),
    }
}
