//! The verdict log: every judged exchange as one JSON line, in the schema `audit` reads.
//!
//! An operator who wants to know "how often did Qwen refuse last week, by model and
//! language" turns it on in `gateway.toml`:
//!
//! ```toml
//! [verdict_log]
//! dir = "/var/log/refusal-guard"
//! max_file_bytes = 67108864   # a file is closed past this size…
//! max_file_age_secs = 86400   # …or this age
//! gzip = true                 # closed files are compressed (NAME.jsonl.gz)
//! include_text = false        # prompt and answer text stay out unless this is true
//! queue = 8192                # exchanges waiting for the writer; more are dropped
//! ```
//!
//! and then runs `refusal-guard audit /var/log/refusal-guard`. One line per provider
//! attempt that was judged (a request re-routed from Qwen to a fallback leaves two: Qwen's
//! refusal and the fallback's answer), so that rates by provider count what each provider
//! did, not only what the caller finally got:
//!
//! ```json
//! {"id":"rg-18c2…-7.1","request_id":"rg-18c2…-7","attempt":1,"attempts":2,
//!  "time":"2026-12-01T15:04:05.123Z","provider":"dashscope-intl","model":"qwen-plus",
//!  "lang":"en","verdict":"policy_refusal","confidence":0.93,"evidence":[…],
//!  "reason":"policy_refusal (0.93): …","stream":false,"latency_ms":412.5,"response":""}
//! ```
//!
//! `verdict`, `confidence` and `evidence` are the gateway's own verdict, which `audit`
//! counts as it is (text is usually not logged, so there is nothing to judge again);
//! `error` and `status` carry a provider's error body (its key already scrubbed by the
//! client), `stage` and `categories` the details of a block or a safety refusal. An
//! attempt before the last is known to the re-route layer by its class only, so its
//! `confidence` and `evidence` are absent. `prompt` and `response` hold text only with
//! `include_text`, after the [redaction hook](VerdictLogBuilder::redact); the language is
//! detected from the prompt either way (whatlang), and the prompt then dropped.
//!
//! Writing never blocks or slows a request: [`VerdictLog::watch`] builds the lines when an
//! answer ends and hands them to a bounded queue with `try_send`; a full queue drops them
//! and counts the drop (`refusal_guard_verdict_log_dropped_total` on `/metrics`). One
//! writer thread serialises, writes and rotates; compression runs on a thread of its own
//! per closed file, so a large file being compressed does not hold up the log.
//!
//! Rotation is own code rather than a crate: `file-rotate` closes files on size *or* time
//! but not both, names rotated files with a suffix after the extension (which a folder walk
//! by `audit` would skip), and compresses inline; `tracing-appender` rotates by time only
//! and has no compression. Files are named `verdicts-YYYYMMDDTHHMMSSZ-PID-N.jsonl` and
//! compressed through a `.tmp` name, so `audit` never reads half a gzip file. One gateway
//! per folder: at start, plain files left by an earlier run are compressed.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use futures::Stream;
use prometheus_client::metrics::counter::Counter;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Error;
use crate::lang::language;
use crate::layer::{Attempt, Attempts, StreamVerdict};
use crate::provider::{ChatResponse, ChunkStream, ProviderName, ResponseBody};
use crate::verdict::{Evidence, ModerationStage, Verdict, VerdictClass, VerdictKind};
use crate::wire::{ChatCompletionChunk, ChatRequest, ProviderError};

/// `[verdict_log]` of `gateway.toml` (see the [module docs](self)).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictLogConfig {
    /// The folder the files go to (created when missing).
    pub dir: PathBuf,
    /// A file is closed once it holds this many bytes.
    #[serde(default = "default_max_bytes")]
    pub max_file_bytes: u64,
    /// A file is closed once it is this old (checked at least every second).
    #[serde(default = "default_max_age")]
    pub max_file_age_secs: u64,
    /// Compress closed files (`.jsonl.gz`).
    #[serde(default = "default_true")]
    pub gzip: bool,
    /// Write prompt and answer text (after the redaction hook). Off by default.
    #[serde(default)]
    pub include_text: bool,
    /// How many exchanges may wait for the writer; more are dropped and counted.
    #[serde(default = "default_queue")]
    pub queue: usize,
}

fn default_max_bytes() -> u64 {
    64 << 20
}
fn default_max_age() -> u64 {
    86_400
}
fn default_true() -> bool {
    true
}
fn default_queue() -> usize {
    8192
}

impl VerdictLogConfig {
    /// A configuration for `dir` with every default.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        VerdictLogConfig {
            dir: dir.into(),
            max_file_bytes: default_max_bytes(),
            max_file_age_secs: default_max_age(),
            gzip: true,
            include_text: false,
            queue: default_queue(),
        }
    }

    /// Checks the limits, with an error that names the field.
    pub fn check(&self) -> Result<(), Error> {
        if self.dir.as_os_str().is_empty() {
            return Err(Error::invalid("configuration", "verdict_log.dir is empty"));
        }
        if self.max_file_bytes == 0 || self.max_file_age_secs == 0 || self.queue == 0 {
            return Err(Error::invalid(
                "configuration",
                "verdict_log: max_file_bytes, max_file_age_secs and queue must be above 0",
            ));
        }
        Ok(())
    }
}

/// One line of the verdict log: one judged provider attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// `REQUEST_ID.ATTEMPT`: unique per line.
    pub id: String,
    pub request_id: String,
    /// This attempt's place among the request's attempts (1-based).
    pub attempt: u32,
    /// How many attempts the request took.
    pub attempts: u32,
    /// When the request arrived, RFC 3339 (UTC).
    pub time: String,
    pub provider: String,
    /// The model the provider was asked for.
    pub model: String,
    /// The prompt's language (ISO 639-1 where there is one), `unknown` when unsure.
    pub lang: String,
    pub verdict: VerdictClass,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
    /// Which side a provider's moderation blocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<ModerationStage>,
    /// A safety refusal's categories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// Why the re-route layer gave the attempt up, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The provider's HTTP status, with `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The provider's error body, as it sent it (key scrubbed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    pub stream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// The last user message, with `include_text` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// The answer text, with `include_text` only (empty otherwise: `audit` reads the field).
    #[serde(default)]
    pub response: String,
}

/// What the gateway knows of a request before it is answered.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub request_id: String,
    /// RFC 3339 (UTC).
    pub time: String,
    pub model: String,
    pub stream: bool,
    /// The last user message: for the language, and for the log with `include_text`.
    pub prompt: Option<String>,
}

/// The most prompt characters kept for language detection when text is not logged.
const LANG_SAMPLE_CHARS: usize = 1000;
/// The most answer bytes kept from a stream with `include_text`.
const TEXT_LIMIT: usize = 1 << 20;

impl Exchange {
    /// The exchange of `request`, with a fresh request id and the current time.
    pub fn new(request: &ChatRequest) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let now = jiff::Timestamp::now();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Exchange {
            request_id: format!("rg-{:x}-{n}", now.as_millisecond()),
            time: now.to_string(),
            model: request.model.clone(),
            stream: request.is_stream(),
            prompt: request.last_user_text(),
        }
    }
}

/// Where lines go. The writer thread owns it; a test can plug in one that stalls.
pub trait LineSink: Send + 'static {
    /// Writes one line (its newline included).
    fn write_line(&mut self, line: &[u8]) -> io::Result<()>;
    /// Makes what was written visible to readers.
    fn flush(&mut self) -> io::Result<()>;
    /// Called about once a second when no line comes (age-based rotation).
    fn tick(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A hook that edits an entry before it is written (masking names or numbers in `prompt`
/// and `response`, say). It runs on the writer thread.
pub type Redactor = Arc<dyn Fn(&mut Entry) + Send + Sync>;

enum Msg {
    Lines(Vec<Entry>),
    Flush(Sender<io::Result<()>>),
}

/// The verdict log: a bounded queue in front of one writer thread. Clones share both;
/// the writer stops (flushing, and compressing the open file when `gzip` is on) when the
/// last clone is dropped.
#[derive(Clone)]
pub struct VerdictLog {
    tx: Sender<Msg>,
    include_text: bool,
    written: Counter,
    dropped: Counter,
    /// Joined by the last clone to go, so that a process exiting after the gateway's
    /// shutdown leaves complete files.
    _writer: Arc<WriterHandle>,
}

impl std::fmt::Debug for VerdictLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerdictLog")
            .field("include_text", &self.include_text)
            .field("written", &self.written.get())
            .field("dropped", &self.dropped.get())
            .finish_non_exhaustive()
    }
}

struct WriterHandle(Mutex<Option<JoinHandle<()>>>);

/// Configures a [`VerdictLog`].
#[derive(Clone)]
pub struct VerdictLogBuilder {
    queue: usize,
    include_text: bool,
    redact: Option<Redactor>,
}

impl Default for VerdictLogBuilder {
    fn default() -> Self {
        VerdictLogBuilder {
            queue: default_queue(),
            include_text: false,
            redact: None,
        }
    }
}

impl VerdictLogBuilder {
    /// Takes `queue` and `include_text` from a configuration.
    pub fn configure(mut self, config: &VerdictLogConfig) -> Self {
        self.queue = config.queue;
        self.include_text = config.include_text;
        self
    }

    /// How many exchanges may wait for the writer (at least 1).
    pub fn queue(mut self, n: usize) -> Self {
        self.queue = n.max(1);
        self
    }

    /// Whether prompt and answer text are written.
    pub fn include_text(mut self, on: bool) -> Self {
        self.include_text = on;
        self
    }

    /// A hook run on every entry before it is written.
    pub fn redact(mut self, f: impl Fn(&mut Entry) + Send + Sync + 'static) -> Self {
        self.redact = Some(Arc::new(f));
        self
    }

    /// Starts a log that writes rotating files as `config` says.
    pub fn open(self, config: &VerdictLogConfig) -> io::Result<VerdictLog> {
        let files = RotatingFiles::open(config)?;
        Ok(self.start(files))
    }

    /// Starts a log that writes to `sink`.
    pub fn start(self, sink: impl LineSink) -> VerdictLog {
        let (tx, rx) = bounded(self.queue);
        let written = Counter::default();
        let dropped = Counter::default();
        let writer = Writer {
            rx,
            sink: Box::new(sink),
            include_text: self.include_text,
            redact: self.redact,
            written: written.clone(),
            dropped: dropped.clone(),
            failing: false,
        };
        let handle = std::thread::Builder::new()
            .name("verdict-log".into())
            .spawn(move || writer.run())
            .expect("spawning the verdict-log writer thread");
        VerdictLog {
            tx,
            include_text: self.include_text,
            written,
            dropped,
            _writer: Arc::new(WriterHandle(Mutex::new(Some(handle)))),
        }
    }
}

impl VerdictLog {
    /// A builder with the defaults (queue 8192, no text, no redaction).
    pub fn builder() -> VerdictLogBuilder {
        VerdictLogBuilder::default()
    }

    /// Starts a log as `config` says.
    pub fn open(config: &VerdictLogConfig) -> io::Result<VerdictLog> {
        Self::builder().configure(config).open(config)
    }

    /// Lines written so far (a Prometheus counter).
    pub fn written(&self) -> &Counter {
        &self.written
    }

    /// Lines dropped so far, because the queue was full or a write failed.
    pub fn dropped(&self) -> &Counter {
        &self.dropped
    }

    /// Queues the lines of one exchange without waiting: `false` when the queue was full
    /// and they were dropped (and counted).
    pub fn log(&self, entries: Vec<Entry>) -> bool {
        if entries.is_empty() {
            return true;
        }
        let n = entries.len() as u64;
        match self.tx.try_send(Msg::Lines(entries)) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.inc_by(n);
                false
            }
        }
    }

    /// Waits until every line queued before this call is written and flushed. It blocks:
    /// call it off the async runtime (`spawn_blocking`), never on a request's path.
    pub fn flush(&self) -> io::Result<()> {
        let (ack, done) = bounded(1);
        self.tx
            .send(Msg::Flush(ack))
            .map_err(|_| io::Error::other("the verdict-log writer has stopped"))?;
        done.recv()
            .map_err(|_| io::Error::other("the verdict-log writer has stopped"))?
    }

    /// Logs a chat result when it is over and hands it back unchanged: a complete answer
    /// or an error at once, a stream when it ends (or the caller leaves), with the verdict
    /// over the whole stream.
    pub fn watch(
        &self,
        result: Result<ChatResponse, Error>,
        exchange: Exchange,
    ) -> Result<ChatResponse, Error> {
        match result {
            Ok(mut response) => {
                let seen = Seen::of(&response);
                match std::mem::replace(
                    &mut response.body,
                    ResponseBody::Stream(Box::pin(futures::stream::empty())),
                ) {
                    ResponseBody::Complete(completion) => {
                        let text = self.include_text.then(|| completion.text());
                        let verdict = seen.window.clone();
                        self.log(self.entries(&exchange, &seen, verdict, None, text));
                        response.body = ResponseBody::Complete(completion);
                    }
                    ResponseBody::Stream(inner) => {
                        let watched = Watched {
                            inner,
                            tracker: Some(Tracker {
                                log: self.clone(),
                                exchange,
                                seen,
                                text: self.include_text.then(String::new),
                            }),
                        };
                        response.body = ResponseBody::Stream(Box::pin(watched));
                    }
                }
                Ok(response)
            }
            Err(error) => {
                // A route that ended in an error keeps its attempts: each judged one gets
                // its line, as for an answer, so a block on every provider shows them all.
                let handle = error.attempts().cloned();
                let refusal = error.as_refusal();
                let seen = Seen {
                    attempts: handle.as_ref().map(Attempts::snapshot).unwrap_or_default(),
                    window: None,
                    final_verdict: None,
                    provider: refusal.and_then(|r| r.provider.clone()),
                    handle,
                };
                if refusal.is_some() || seen.attempts.iter().any(|a| a.verdict.is_some()) {
                    let text = self.include_text.then(|| refusal.map(|r| r.text())).flatten();
                    // A provider's error body belongs with its refusal (a moderation
                    // error), not with whichever attempt was judged last.
                    let provider_error = refusal.and(error.provider_error());
                    let entries = self.entries(
                        &exchange,
                        &seen,
                        refusal.map(|r| r.verdict.clone()),
                        provider_error,
                        text,
                    );
                    self.log(entries);
                }
                Err(error)
            }
        }
    }

    /// The lines of one exchange: one per judged attempt; the full verdict, the text and
    /// the provider's error go to the attempt that gave the verdict returned (the primary's
    /// block when every provider blocked), else to the last; the prompt to the last.
    fn entries(
        &self,
        exchange: &Exchange,
        seen: &Seen,
        verdict: Option<Verdict>,
        error: Option<&ProviderError>,
        text: Option<String>,
    ) -> Vec<Entry> {
        let prompt = exchange.prompt.as_ref().map(|p| {
            if self.include_text {
                p.clone()
            } else {
                p.chars().take(LANG_SAMPLE_CHARS).collect()
            }
        });
        let judged: Vec<usize> = (0..seen.attempts.len())
            .filter(|&i| seen.attempts[i].verdict.is_some())
            .collect();
        let base =
            |attempt: usize, attempts: usize, provider: String, model: String, class: VerdictClass| Entry {
                id: format!("{}.{attempt}", exchange.request_id),
                request_id: exchange.request_id.clone(),
                attempt: attempt as u32,
                attempts: attempts as u32,
                time: exchange.time.clone(),
                provider,
                model,
                lang: String::new(),
                verdict: class,
                confidence: None,
                evidence: Vec::new(),
                stage: None,
                categories: Vec::new(),
                reason: None,
                status: None,
                error: None,
                stream: exchange.stream,
                latency_ms: None,
                prompt: prompt.clone(),
                response: String::new(),
            };
        let finish = |entry: &mut Entry, full: Option<&Verdict>, holder: bool| {
            if let Some(v) = full {
                entry.confidence = Some(v.confidence);
                entry.evidence = v.evidence.clone();
                match &v.kind {
                    VerdictKind::ProviderBlock { stage } => entry.stage = Some(*stage),
                    VerdictKind::SafetyRefusal { categories } => entry.categories = categories.clone(),
                    _ => {}
                }
            }
            if holder {
                if let Some(e) = error {
                    entry.status = Some(e.status);
                    entry.error = Some(e.raw.clone());
                    if entry.stage.is_none() {
                        entry.stage = e.moderation.as_ref().map(|m| m.stage);
                    }
                }
                entry.response = text.clone().unwrap_or_default();
            }
        };
        if judged.is_empty() {
            // No attempt log (a refusal error, or no re-route layer): one line from the
            // verdict itself.
            let Some(v) = verdict.as_ref() else {
                return Vec::new();
            };
            let provider = seen.provider.clone().unwrap_or_else(|| "unknown".into());
            let mut entry = base(
                1,
                seen.attempts.len().max(1),
                provider,
                exchange.model.clone(),
                v.class(),
            );
            finish(&mut entry, Some(v), true);
            return vec![entry];
        }
        // The full verdict belongs to the last judged attempt of its class, by the
        // answering provider when it is known.
        let full_at = verdict.as_ref().and_then(|v| {
            let of_class = |i: usize| seen.attempts[i].verdict == Some(v.class());
            let by_provider = |i: usize| {
                seen.provider
                    .as_deref()
                    .is_none_or(|p| seen.attempts[i].provider == p)
            };
            judged
                .iter()
                .rev()
                .copied()
                .find(|&i| of_class(i) && by_provider(i))
                .or_else(|| judged.iter().rev().copied().find(|&i| of_class(i)))
        });
        let last = *judged.last().expect("not empty");
        let holder = full_at.unwrap_or(last);
        judged
            .iter()
            .map(|&i| {
                let a: &Attempt = &seen.attempts[i];
                let mut entry = base(
                    i + 1,
                    seen.attempts.len(),
                    a.provider.clone(),
                    a.model.clone(),
                    a.verdict.expect("judged"),
                );
                entry.reason = a.error.clone();
                entry.latency_ms = Some(a.latency.as_secs_f64() * 1e3);
                let full = (Some(i) == full_at).then_some(verdict.as_ref()).flatten();
                finish(&mut entry, full, i == holder);
                if i != last {
                    // Only one line per exchange carries the prompt.
                    entry.prompt = None;
                }
                entry
            })
            .collect()
    }
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        // The last `VerdictLog` clone is gone, so is the last sender: the writer drains the
        // queue, closes its file and stops.
        if let Some(handle) = self.0.lock().ok().and_then(|mut h| h.take()) {
            let _ = handle.join();
        }
    }
}

/// What a response's extensions say about the exchange.
struct Seen {
    attempts: Vec<Attempt>,
    /// The verdict of a complete answer, or of a stream's hold-back window.
    window: Option<Verdict>,
    final_verdict: Option<StreamVerdict>,
    provider: Option<String>,
    /// The request's attempt log, which a stream may still add to.
    handle: Option<Attempts>,
}

impl Seen {
    fn of(response: &ChatResponse) -> Seen {
        let handle = response.extensions.get::<Attempts>().cloned();
        Seen {
            attempts: handle.as_ref().map(Attempts::snapshot).unwrap_or_default(),
            window: response.extensions.get::<Verdict>().cloned(),
            final_verdict: response.extensions.get::<StreamVerdict>().cloned(),
            provider: response.extensions.get::<ProviderName>().map(|p| p.0.to_string()),
            handle,
        }
    }

    /// The attempts as they stand now (a stream may have added a continuation).
    fn refresh(&mut self) {
        if let Some(h) = &self.handle {
            self.attempts = h.snapshot();
        }
    }
}

/// A stream's exchange, logged when the stream ends or is dropped.
struct Tracker {
    log: VerdictLog,
    exchange: Exchange,
    seen: Seen,
    text: Option<String>,
}

impl Tracker {
    fn observe(&mut self, chunk: &ChatCompletionChunk) {
        if let Some(text) = &mut self.text {
            if text.len() < TEXT_LIMIT {
                text.push_str(chunk.content());
            }
        }
    }

    fn finish(mut self) {
        self.seen.refresh();
        let resolved = self.seen.final_verdict.as_ref().map(StreamVerdict::get);
        match (resolved, tokio::runtime::Handle::try_current()) {
            // The verdict over the whole stream may be published just after its last
            // chunk: wait for it off the caller's path.
            (Some(None), Ok(runtime)) => {
                let handle = self.seen.final_verdict.clone().expect("matched Some");
                runtime.spawn(async move {
                    let verdict = tokio::time::timeout(Duration::from_secs(30), handle.wait())
                        .await
                        .ok()
                        .flatten()
                        .or_else(|| self.seen.window.clone());
                    self.seen.refresh();
                    self.log_with(verdict);
                });
            }
            (resolved, _) => {
                let verdict = resolved.flatten().or_else(|| self.seen.window.clone());
                self.log_with(verdict);
            }
        }
    }

    fn log_with(self, verdict: Option<Verdict>) {
        let entries = self
            .log
            .entries(&self.exchange, &self.seen, verdict, None, self.text);
        self.log.log(entries);
    }
}

/// A stream that logs its exchange when it ends or is dropped (a caller that left).
struct Watched {
    inner: ChunkStream,
    tracker: Option<Tracker>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let Some(t) = self.tracker.take() {
            t.finish();
        }
    }
}

impl Stream for Watched {
    type Item = Result<ChatCompletionChunk, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Every field is `Unpin` (the inner stream is boxed).
        let this = self.get_mut();
        let next = this.inner.as_mut().poll_next(cx);
        match &next {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(t) = this.tracker.as_mut() {
                    t.observe(chunk);
                }
            }
            Poll::Ready(None) => {
                if let Some(t) = this.tracker.take() {
                    t.finish();
                }
            }
            _ => {}
        }
        next
    }
}

/// The writer thread's state.
struct Writer {
    rx: Receiver<Msg>,
    sink: Box<dyn LineSink>,
    include_text: bool,
    redact: Option<Redactor>,
    written: Counter,
    dropped: Counter,
    /// Whether the last write failed (one warning per run of failures).
    failing: bool,
}

impl Writer {
    fn run(mut self) {
        loop {
            match self.rx.recv_timeout(Duration::from_secs(1)) {
                Ok(Msg::Lines(entries)) => {
                    // One exchange: one prompt, one language for all its lines.
                    let lang = language(entries.iter().find_map(|e| e.prompt.as_deref()));
                    for mut entry in entries {
                        if entry.lang.is_empty() {
                            entry.lang.clone_from(&lang);
                        }
                        self.write(entry);
                    }
                    if self.rx.is_empty() {
                        let result = self.sink.flush();
                        self.check(result);
                    }
                }
                Ok(Msg::Flush(ack)) => {
                    let _ = ack.send(self.sink.flush());
                }
                Err(RecvTimeoutError::Timeout) => {
                    let result = self.sink.tick();
                    self.check(result);
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let result = self.sink.flush();
        self.check(result);
        // Dropping the sink closes (and compresses) the open file.
    }

    fn write(&mut self, mut entry: Entry) {
        if !self.include_text {
            entry.prompt = None;
            entry.response.clear();
        }
        if let Some(redact) = &self.redact {
            redact(&mut entry);
        }
        let mut line = match serde_json::to_vec(&entry) {
            Ok(l) => l,
            Err(_) => {
                self.dropped.inc();
                return;
            }
        };
        line.push(b'\n');
        let result = self.sink.write_line(&line);
        if result.is_ok() {
            self.written.inc();
        } else {
            self.dropped.inc();
        }
        self.check(result);
    }

    fn check(&mut self, result: io::Result<()>) {
        match result {
            Ok(()) => self.failing = false,
            Err(e) => {
                if !self.failing {
                    tracing::warn!(error = %e, "verdict log: write failed; lines are dropped until it works again");
                }
                self.failing = true;
            }
        }
    }
}

/// The open file of [`RotatingFiles`].
struct Current {
    path: PathBuf,
    file: BufWriter<File>,
    bytes: u64,
    opened: Instant,
}

/// Files in a folder, closed by size or age, compressed once closed.
pub struct RotatingFiles {
    dir: PathBuf,
    max_bytes: u64,
    max_age: Duration,
    gzip: bool,
    current: Option<Current>,
    seq: u64,
    compressing: Vec<JoinHandle<()>>,
}

/// The prefix and suffix of the log's file names.
pub const FILE_PREFIX: &str = "verdicts-";
pub const FILE_SUFFIX: &str = ".jsonl";

/// Whether an open file is due to be closed before `next` more bytes go in.
fn due(bytes: u64, next: u64, age: Duration, max_bytes: u64, max_age: Duration) -> bool {
    bytes > 0 && (bytes + next > max_bytes || age >= max_age)
}

impl RotatingFiles {
    /// Opens the folder (creating it), compressing plain files an earlier run left there
    /// when `gzip` is on. The first file is created with the first line.
    pub fn open(config: &VerdictLogConfig) -> io::Result<RotatingFiles> {
        fs::create_dir_all(&config.dir)?;
        let mut files = RotatingFiles {
            dir: config.dir.clone(),
            max_bytes: config.max_file_bytes.max(1),
            max_age: Duration::from_secs(config.max_file_age_secs.max(1)),
            gzip: config.gzip,
            current: None,
            seq: 0,
            compressing: Vec::new(),
        };
        if files.gzip {
            for entry in fs::read_dir(&files.dir)? {
                let path = entry?.path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name.starts_with(FILE_PREFIX) && name.ends_with(FILE_SUFFIX) {
                    files.compress(path);
                }
            }
        }
        Ok(files)
    }

    fn new_file(&mut self) -> io::Result<Current> {
        let now = jiff::Timestamp::now();
        let stamp: String = jiff::Timestamp::from_second(now.as_second())
            .unwrap_or(now)
            .to_string()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        loop {
            self.seq += 1;
            let name = format!(
                "{FILE_PREFIX}{stamp}-{}-{}{FILE_SUFFIX}",
                std::process::id(),
                self.seq
            );
            let path = self.dir.join(name);
            match fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(Current {
                        path,
                        file: BufWriter::with_capacity(64 << 10, file),
                        bytes: 0,
                        opened: Instant::now(),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Closes the open file and hands it to compression.
    fn close(&mut self) -> io::Result<()> {
        if let Some(mut current) = self.current.take() {
            current.file.flush()?;
            drop(current.file);
            self.compress(current.path);
        }
        self.compressing.retain(|h| !h.is_finished());
        Ok(())
    }

    fn compress(&mut self, path: PathBuf) {
        if !self.gzip {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("verdict-log-gzip".into())
            .spawn(move || {
                if let Err(e) = gzip_file(&path) {
                    tracing::warn!(file = %path.display(), error = %e, "verdict log: compressing a closed file failed; it stays plain");
                }
            });
        if let Ok(handle) = spawned {
            self.compressing.push(handle);
        }
    }
}

/// `NAME.jsonl` to `NAME.jsonl.gz`, through `NAME.jsonl.gz.tmp` so that readers never see
/// half a gzip file; the plain file is removed once the compressed one is complete.
fn gzip_file(path: &Path) -> io::Result<()> {
    let gz = PathBuf::from(format!("{}.gz", path.display()));
    let tmp = PathBuf::from(format!("{}.gz.tmp", path.display()));
    let mut input = File::open(path)?;
    let out = BufWriter::new(File::create(&tmp)?);
    let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    io::copy(&mut input, &mut encoder)?;
    let mut out = encoder.finish()?;
    out.flush()?;
    out.get_ref().sync_all()?;
    drop(out);
    fs::rename(&tmp, &gz)?;
    fs::remove_file(path)
}

impl LineSink for RotatingFiles {
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let rotate = self.current.as_ref().is_some_and(|c| {
            due(
                c.bytes,
                line.len() as u64,
                c.opened.elapsed(),
                self.max_bytes,
                self.max_age,
            )
        });
        if rotate {
            self.close()?;
        }
        if self.current.is_none() {
            self.current = Some(self.new_file()?);
        }
        let current = self.current.as_mut().expect("opened above");
        current.file.write_all(line)?;
        current.bytes += line.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.current {
            Some(c) => c.file.flush(),
            None => Ok(()),
        }
    }

    fn tick(&mut self) -> io::Result<()> {
        let old = self
            .current
            .as_ref()
            .is_some_and(|c| due(c.bytes, 0, c.opened.elapsed(), self.max_bytes, self.max_age));
        if old {
            self.close()?;
        }
        Ok(())
    }
}

impl Drop for RotatingFiles {
    fn drop(&mut self) {
        let _ = self.close();
        for handle in self.compressing.drain(..) {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_close_by_size_or_age_never_empty() {
        let (mb, day) = (100, Duration::from_secs(86_400));
        assert!(
            !due(0, 500, Duration::ZERO, mb, day),
            "an empty file takes any line"
        );
        assert!(!due(40, 60, Duration::ZERO, mb, day));
        assert!(due(41, 60, Duration::ZERO, mb, day));
        assert!(due(1, 0, day, mb, day));
        assert!(!due(0, 0, day * 2, mb, day));
    }

    #[test]
    fn the_config_needs_a_folder_and_limits_above_zero() {
        let mut c = VerdictLogConfig::new("logs");
        assert!(c.check().is_ok());
        c.queue = 0;
        assert!(c.check().unwrap_err().to_string().contains("queue"));
        let parsed: VerdictLogConfig = toml::from_str("dir = \"x\"\ngzip = false").unwrap();
        assert!(!parsed.gzip && !parsed.include_text);
        assert!(toml::from_str::<VerdictLogConfig>("dir = \"x\"\nmax_size = 1").is_err());
    }
}
