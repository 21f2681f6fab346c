//! Server-sent events of a streamed chat completion, both ways.
//!
//! Framing (fields, comments, CRLF, events split across reads) is the `sse-stream`
//! crate's job: it follows the WHATWG algorithm, decodes and encodes, and is what the
//! official Rust MCP SDK streams with. This module adds the chat-completions layer on
//! top: `[DONE]`, `data: {"error":…}` events before or after content, malformed chunks,
//! streams that end without `[DONE]`, and a byte limit so that an upstream cannot make
//! the gateway buffer without bound. The client, the mock provider, the HTTP adapter
//! and the audit reader all go through here.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use serde::Serialize;
use sse_stream::{Sse, SseByteStream};

use super::error::{is_error_body, ErrorPosition, ProviderError};
use super::response::{ChatCompletionChunk, FinishReason};
use crate::error::Error;

/// The default limit on the bytes one stream may carry (64 MiB).
pub const DEFAULT_STREAM_BYTE_LIMIT: usize = 64 << 20;

/// Decodes a byte stream of SSE into chat-completion chunks.
///
/// Yields each chunk as soon as its event is complete. Ends after `[DONE]`. Yields one
/// error and ends on: an error event ([`Error::Provider`], its position telling whether
/// content came before), a chunk that is not valid JSON ([`Error::Malformed`]), a broken
/// connection ([`Error::Transport`]), more bytes than the limit ([`Error::TooLarge`]), or
/// the end of the bytes without `[DONE]` ([`Error::Truncated`]). Comments, empty events
/// and events without data are skipped.
///
/// A stream whose every choice has already given its finish reason is complete: if its
/// bytes then end, or its connection drops, before `[DONE]`, it ends cleanly. Nothing of
/// the answer is missing, and calling it cut would make a gateway continue (and so
/// lengthen) an answer that was whole.
pub struct ChunkDecoder {
    events: SseByteStream<Limited>,
    provider: Arc<str>,
    status: u16,
    chunks: usize,
    chars_streamed: usize,
    finished: bool,
    /// The choice indexes seen, each with whether it has given a finish reason.
    choices: Vec<(u32, bool)>,
}

/// The bytes under a decoder, boxed so that any body or byte stream fits.
type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, ByteError>> + Send>>;

impl ChunkDecoder {
    /// A decoder for `provider`'s stream, answered with HTTP `status`.
    pub fn new<S, E>(provider: Arc<str>, status: u16, bytes: S) -> Self
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        Self::with_limit(provider, status, bytes, DEFAULT_STREAM_BYTE_LIMIT)
    }

    /// As [`ChunkDecoder::new`], with a limit on the total bytes.
    pub fn with_limit<S, E>(provider: Arc<str>, status: u16, bytes: S, limit: usize) -> Self
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        use futures::TryStreamExt;
        let bytes: ByteStream = Box::pin(bytes.map_err(|e| ByteError::Body(Box::new(e))));
        ChunkDecoder {
            events: SseByteStream::new(Limited {
                inner: bytes,
                seen: 0,
                limit,
            }),
            provider,
            status,
            chunks: 0,
            chars_streamed: 0,
            finished: false,
            choices: Vec::new(),
        }
    }

    /// Whether every choice seen has given its finish reason: the answer is whole.
    fn complete(&self) -> bool {
        !self.choices.is_empty() && self.choices.iter().all(|(_, done)| *done)
    }

    fn finish(&mut self, item: Result<ChatCompletionChunk, Error>) -> Poll<Option<<Self as Stream>::Item>> {
        self.finished = true;
        Poll::Ready(Some(item))
    }

    fn on_event(&mut self, event: Sse) -> Option<Result<ChatCompletionChunk, Error>> {
        let data = event.data?;
        let data = data.trim();
        if data.is_empty() {
            return None;
        }
        if data == "[DONE]" {
            self.finished = true;
            return None;
        }
        let value: serde_json::Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(e) => {
                self.finished = true;
                return Some(Err(Error::Malformed {
                    provider: self.provider.to_string(),
                    what: "stream chunk",
                    detail: format!("{e} in event after {} chunks", self.chunks),
                }));
            }
        };
        if is_error_body(&value) {
            self.finished = true;
            self.chars_streamed += error_event_content_chars(&value);
            let position = if self.chars_streamed == 0 {
                ErrorPosition::StreamBeforeContent
            } else {
                ErrorPosition::StreamAfterContent {
                    chars_streamed: self.chars_streamed,
                }
            };
            let status = error_event_status(&value).unwrap_or(self.status);
            return Some(Err(ProviderError::from_value(
                &self.provider,
                status,
                value,
                position,
            )
            .into()));
        }
        match serde_json::from_value::<ChatCompletionChunk>(value) {
            Ok(chunk) => {
                self.chunks += 1;
                self.chars_streamed += chunk.content().chars().count();
                for c in &chunk.choices {
                    // OpenRouter's `finish_reason: "error"` ends a choice that failed.
                    let done = c
                        .finish_reason
                        .as_ref()
                        .is_some_and(|r| !matches!(r, FinishReason::Other(o) if o == "error"));
                    match self.choices.iter_mut().find(|(i, _)| *i == c.index) {
                        Some(seen) => seen.1 |= done,
                        None => self.choices.push((c.index, done)),
                    }
                }
                Some(Ok(chunk))
            }
            Err(e) => {
                self.finished = true;
                Some(Err(Error::Malformed {
                    provider: self.provider.to_string(),
                    what: "stream chunk",
                    detail: format!("{e} in chunk {}", self.chunks + 1),
                }))
            }
        }
    }
}

/// The content characters of the choices of an event that is also an error (OpenRouter
/// reports a mid-stream failure as a chunk whose choice has `finish_reason: "error"` and
/// whose top level carries the `error`): they count as streamed before the error.
fn error_event_content_chars(v: &serde_json::Value) -> usize {
    v.get("choices")
        .and_then(|c| c.get(0))
        .and_then(|c| c.get("delta"))
        .and_then(|d| d.get("content"))
        .and_then(|c| c.as_str())
        .map_or(0, |s| s.chars().count())
}

/// Some providers put the HTTP status they would have sent inside the error event.
fn error_event_status(v: &serde_json::Value) -> Option<u16> {
    let code = v.get("error")?.get("code")?;
    code.as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c))
}

impl Stream for ChunkDecoder {
    type Item = Result<ChatCompletionChunk, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.finished {
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.events).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(event))) => {
                    if let Some(item) = self.on_event(event) {
                        return Poll::Ready(Some(item));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let err = self.framing_error(e);
                    if self.complete() && matches!(err, Error::Transport { .. }) {
                        tracing::debug!(provider = %self.provider, error = %err, "connection dropped after the last finish reason; the answer is whole");
                        self.finished = true;
                        return Poll::Ready(None);
                    }
                    return self.finish(Err(err));
                }
                Poll::Ready(None) if self.complete() => {
                    self.finished = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(None) => {
                    let err = Error::Truncated {
                        provider: self.provider.to_string(),
                        chunks: self.chunks,
                    };
                    return self.finish(Err(err));
                }
            }
        }
    }
}

impl ChunkDecoder {
    fn framing_error(&self, e: sse_stream::Error) -> Error {
        match e {
            sse_stream::Error::Body(inner) => match inner.downcast::<ByteError>().map(|b| *b) {
                Ok(ByteError::Limit(limit)) => Error::TooLarge {
                    provider: self.provider.to_string(),
                    what: "stream",
                    limit,
                },
                Ok(ByteError::Body(inner)) => Error::Transport {
                    provider: self.provider.to_string(),
                    message: error_chain(&*inner),
                    mid_response: true,
                },
                Err(inner) => Error::Transport {
                    provider: self.provider.to_string(),
                    message: error_chain(&*inner),
                    mid_response: true,
                },
            },
            other => Error::Malformed {
                provider: self.provider.to_string(),
                what: "SSE framing",
                detail: other.to_string(),
            },
        }
    }
}

/// The messages of an error and its sources, joined: "error sending request: connection reset".
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        source = s.source();
    }
    out
}

/// Why the byte stream under the SSE framing failed.
#[derive(Debug, thiserror::Error)]
enum ByteError {
    #[error("more than {0} bytes")]
    Limit(usize),
    #[error("{}", error_chain(&**.0))]
    Body(Box<dyn std::error::Error + Send + Sync>),
}

/// A byte stream that fails once more than `limit` bytes have passed.
struct Limited {
    inner: ByteStream,
    seen: usize,
    limit: usize,
}

impl Stream for Limited {
    type Item = Result<Bytes, ByteError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                self.seen += bytes.len();
                if self.seen > self.limit {
                    Poll::Ready(Some(Err(ByteError::Limit(self.limit))))
                } else {
                    Poll::Ready(Some(Ok(bytes)))
                }
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Encodes one value as a `data:` event.
pub fn encode_data<T: Serialize>(value: &T) -> Bytes {
    let json = serde_json::to_string(value).expect("wire types always serialise");
    encode_raw_data(json)
}

/// Encodes a string as a `data:` event as it is (it may be invalid JSON: the mock
/// provider sends malformed chunks this way).
pub fn encode_raw_data(data: impl Into<String>) -> Bytes {
    Sse::default()
        .data(data)
        .encode()
        .expect("a data-only event always encodes")
}

/// The `data: [DONE]` event that ends an OpenAI-compatible stream.
pub fn encode_done() -> Bytes {
    encode_raw_data("[DONE]")
}
