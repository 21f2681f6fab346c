//! One gateway request's record: a span while it runs, one event when it ends.
//!
//! The gateway opens a [`RequestRecord`] when a request arrives, tells it what it learns
//! (the model, the chat result with its attempts and verdict), and hands it the response
//! in [`RequestRecord::finish`], which moves it into the response body. When that body
//! ends, or is dropped because the client left, the record emits one
//! `refusal_guard::request` event at `info` (`warn` for a 5xx):
//!
//! `request_id`, `route`, `model`, `stream`, `status`, `provider` (the one that
//! answered; when none did, the last one tried), `providers` (all tried, in order, also
//! when none answered), `attempts`, `verdict`, `confidence`,
//! `reroute_reason` (why the first provider was left: a verdict class, or `failover` for
//! an error), `error` (the OpenAI error code sent back, if any), `ttfb_ms` (to the first
//! body byte), `total_ms` (to the body's end), `prompt_tokens`, `completion_tokens`,
//! `cost_usd` (when prices are configured), `completed` (false when the client left).
//!
//! Only names, classes, counts and times: never prompt or answer text (verdict evidence
//! can quote the answer, so only the class and confidence are logged), never headers
//! beyond a client's `x-request-id`, never keys.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response};
use http_body::Frame;
use tracing::Span;

use crate::error::Error;
use crate::layer::{Attempts, StreamVerdict};
use crate::provider::ChatResponse;
use crate::verdict::{Verdict, VerdictClass};
use crate::wire::ChatRequest;

/// The header that carries a request's id both ways: a client's own id (when it is a
/// short token) is kept, otherwise the gateway makes one; the response always has it.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The event target of the per-request event, for filters (`refusal_guard::request=off`).
pub const TARGET: &str = "refusal_guard::request";

/// The OpenAI error code of a response the gateway made itself (401, 413, 503, …), an
/// extension the record reads in [`RequestRecord::finish`].
#[derive(Debug, Clone)]
pub struct ErrorCode(pub String);

/// The OpenAI error code of an error event that ended a stream after its headers went
/// out with a 200 (an extension the SSE writer fills and the record reads when the body
/// ends): without it a stream cut mid-way would log as a success.
#[derive(Debug, Clone, Default)]
pub struct StreamErrorCode(Arc<OnceLock<String>>);

impl StreamErrorCode {
    /// Notes the code of the error event sent; the first one counts.
    pub fn set(&self, code: impl Into<String>) {
        let _ = self.0.set(code.into());
    }

    /// The code noted, if any.
    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

/// What one request did, emitted as one event when it is dropped.
#[derive(Debug)]
pub struct RequestRecord {
    id: String,
    route: String,
    started: Instant,
    span: Span,
    model: Option<String>,
    stream: Option<bool>,
    status: u16,
    attempts: Option<Attempts>,
    verdict: Option<Verdict>,
    final_verdict: Option<StreamVerdict>,
    refused_by: Option<String>,
    error: Option<String>,
    stream_error: Option<StreamErrorCode>,
    first_byte: Option<Duration>,
    completed: bool,
}

impl RequestRecord {
    /// Opens the record (and its span) for a request on `route`.
    pub fn start(route: &str, headers: &HeaderMap) -> Self {
        let id = headers
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| acceptable_id(v))
            .map_or_else(new_id, str::to_string);
        let span = tracing::info_span!(
            "request",
            request_id = %id,
            route = %route,
            model = tracing::field::Empty,
        );
        RequestRecord {
            id,
            route: route.to_string(),
            started: Instant::now(),
            span,
            model: None,
            stream: None,
            status: 0,
            attempts: None,
            verdict: None,
            final_verdict: None,
            refused_by: None,
            error: None,
            stream_error: None,
            first_byte: None,
            completed: false,
        }
    }

    /// The request's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The request's span: what runs for the request runs inside it.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// Notes the parsed request (its model and whether it streams; never its messages).
    pub fn request(&mut self, request: &ChatRequest) {
        self.span.record("model", request.model.as_str());
        self.model = Some(request.model.clone());
        self.stream = Some(request.is_stream());
    }

    /// Notes what the chat service returned: attempts and verdict, or the error.
    pub fn result(&mut self, result: &Result<ChatResponse, Error>) {
        match result {
            Ok(response) => {
                self.attempts = response.extensions.get::<Attempts>().cloned();
                self.verdict = response.extensions.get::<Verdict>().cloned();
                self.final_verdict = response.extensions.get::<StreamVerdict>().cloned();
                if self.attempts.is_none() {
                    self.refused_by = response.provider().map(str::to_string);
                }
            }
            Err(error) => {
                // A route's error names every provider it tried, as an answer does.
                self.attempts = error.attempts().cloned();
                if let Some(r) = error.as_refusal() {
                    self.verdict = Some(r.verdict.clone());
                    self.refused_by = r.provider.clone();
                }
                if self.refused_by.is_none() {
                    self.refused_by = error.provider_error().map(|p| p.provider.clone());
                }
                self.error = crate::gateway::respond::error_body(error)["error"]["code"]
                    .as_str()
                    .map(str::to_string);
            }
        }
    }

    /// Takes the response: notes its status and error code, adds the request id header,
    /// and moves the record into the body, so it is emitted when the body ends.
    pub fn finish(mut self, response: Response<Body>) -> Response<Body> {
        let (mut parts, body) = response.into_parts();
        self.status = parts.status.as_u16();
        if let Some(ErrorCode(code)) = parts.extensions.remove::<ErrorCode>() {
            self.error.get_or_insert(code);
        }
        self.stream_error = parts.extensions.remove::<StreamErrorCode>();
        if let Ok(v) = HeaderValue::from_str(&self.id) {
            parts.headers.insert(REQUEST_ID_HEADER, v);
        }
        Response::from_parts(
            parts,
            Body::new(LoggedBody {
                inner: body,
                record: self,
            }),
        )
    }

    fn emit(&self) {
        let attempts = self.attempts.as_ref().map(Attempts::snapshot).unwrap_or_default();
        let providers = if attempts.is_empty() {
            self.refused_by.clone()
        } else {
            Some(
                attempts
                    .iter()
                    .map(|a| a.provider.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            )
        };
        let provider = attempts
            .last()
            .map(|a| a.provider.clone())
            .or_else(|| self.refused_by.clone());
        let verdict = self
            .final_verdict
            .as_ref()
            .and_then(StreamVerdict::get)
            .or_else(|| self.verdict.clone());
        // Why the first provider was left: its verdict class, or `failover` for an error
        // (a stream cut after an answering window, then continued elsewhere, included).
        let reroute_reason = (attempts.len() > 1).then(|| {
            let first = &attempts[0];
            match first.verdict {
                Some(v) if v != VerdictClass::Answer || first.error.is_none() => v.as_str(),
                _ => "failover",
            }
            .to_string()
        });
        let error = self
            .error
            .as_deref()
            .or_else(|| self.stream_error.as_ref().and_then(StreamErrorCode::get));
        let with_usage: Vec<_> = attempts.iter().filter_map(|a| a.usage.as_ref()).collect();
        let prompt_tokens =
            (!with_usage.is_empty()).then(|| with_usage.iter().map(|u| u.prompt_tokens).sum::<u64>());
        let completion_tokens =
            (!with_usage.is_empty()).then(|| with_usage.iter().map(|u| u.completion_tokens).sum::<u64>());
        let costs: Vec<f64> = attempts.iter().filter_map(|a| a.cost).collect();
        let cost_usd = (!costs.is_empty()).then(|| costs.iter().sum::<f64>());
        let attempt_count = (!attempts.is_empty())
            .then_some(attempts.len())
            .or(provider.as_ref().map(|_| 1));
        macro_rules! event {
            ($level:expr) => {
                tracing::event!(
                    target: TARGET,
                    parent: &self.span,
                    $level,
                    request_id = %self.id,
                    route = %self.route,
                    model = self.model.as_deref(),
                    stream = self.stream,
                    status = self.status,
                    provider = provider.as_deref(),
                    providers = providers.as_deref(),
                    attempts = attempt_count,
                    verdict = verdict.as_ref().map(|v| v.class().as_str()),
                    confidence = verdict.as_ref().map(|v| f64::from(v.confidence)),
                    reroute_reason = reroute_reason.as_deref(),
                    error,
                    ttfb_ms = self.first_byte.map(millis),
                    total_ms = millis(self.started.elapsed()),
                    prompt_tokens,
                    completion_tokens,
                    cost_usd,
                    completed = self.completed,
                    "request"
                )
            };
        }
        if self.status >= 500 || error.is_some_and(|_| self.status < 400) {
            event!(tracing::Level::WARN);
        } else {
            event!(tracing::Level::INFO);
        }
    }
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        self.emit();
    }
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// A client's id is kept when it is a short token (no spaces, quotes or control bytes).
fn acceptable_id(v: &str) -> bool {
    (1..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A process-unique id: a random per-process prefix and a counter.
fn new_id() -> String {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        // std's hasher keys are random per process: a seed without another dependency.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish()
    });
    format!(
        "{prefix:016x}{:08x}",
        COUNTER.fetch_add(1, Ordering::Relaxed) & 0xffff_ffff
    )
}

pin_project_lite::pin_project! {
    /// A response body that notes its first byte and its end, and carries the record
    /// (and enters its span) until it is dropped.
    struct LoggedBody {
        #[pin]
        inner: Body,
        record: RequestRecord,
    }
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut this = self.project();
        // Layers that keep working while the body streams (a mid-stream re-route) log
        // inside the request's span.
        let _entered = this.record.span.enter();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if f.is_data() && this.record.first_byte.is_none() {
                    this.record.first_byte = Some(this.record.started.elapsed());
                }
                if this.inner.is_end_stream() {
                    this.record.completed = true;
                }
            }
            None => this.record.completed = true,
            Some(Err(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_kept_only_when_they_are_short_tokens() {
        assert!(acceptable_id("req-123_abc.DEF:9"));
        assert!(!acceptable_id(""));
        assert!(!acceptable_id("has space"));
        assert!(!acceptable_id("quote\"d"));
        assert!(!acceptable_id(&"x".repeat(129)));
    }

    #[test]
    fn generated_ids_differ() {
        let a = new_id();
        let b = new_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 24);
        assert!(acceptable_id(&a));
    }
}
