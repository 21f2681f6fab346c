//! Writing answers back as OpenAI-shaped HTTP: JSON for complete answers, SSE for
//! streams, OpenAI's error JSON for failures, and the verdict where clients can read it.
//!
//! The verdict surfaces twice. As headers (`x-refusal-guard-verdict`, `-provider`,
//! `-providers`, `-attempts`), decided before the body starts: for streams, that is the
//! hold-back window's verdict. And, for streams, in the final chunk: a `refusal_guard`
//! field with the verdict over the whole answer. To put it there without delaying any
//! content, the writer holds back only the trailing chunks that carry no content (the
//! finish chunk and the usage chunk), and adds the field to the last of them when the
//! stream ends.
//!
//! A route's error carries the same headers, read from the attempts the error carries
//! ([`Error::Route`]): a client learns who was asked whether or not anyone answered.

use std::convert::Infallible;

use axum::body::Body;
use bytes::Bytes;
use futures::StreamExt;
use http::response::Builder;
use http::{header, HeaderValue, Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::error::{Error, RefusalRest};
use crate::layer::{Attempts, StreamVerdict};
use crate::observe::request::StreamErrorCode;
use crate::provider::{ChatResponse, ChunkStream, ResponseBody};
use crate::verdict::Verdict;
use crate::wire::sse::{encode_data, encode_done};
use crate::wire::{ChatCompletionChunk, ErrorPosition, FinishReason};

/// The verdict class of the answer (`answer`, `policy_refusal`, …).
pub const VERDICT_HEADER: &str = "x-refusal-guard-verdict";
/// The provider that produced the answer; when none did, the last one tried.
pub const PROVIDER_HEADER: &str = "x-refusal-guard-provider";
/// Every provider tried, in order, comma-separated (a provider asked twice, twice).
pub const PROVIDERS_HEADER: &str = "x-refusal-guard-providers";
/// How many provider attempts the answer (or the error) took.
pub const ATTEMPTS_HEADER: &str = "x-refusal-guard-attempts";

/// The HTTP response for a chat service's result.
pub fn respond(result: Result<ChatResponse, Error>) -> Response<Body> {
    match result {
        Ok(response) => respond_ok(response),
        Err(error) if error.as_refusal().is_some_and(|r| !r.held.is_empty()) => held_refusal(error),
        Err(error) => error_response(&error),
    }
}

/// Every provider refused a stream inside its window: the caller gets the first refusal
/// whole, with the attempts: what was held back, then the rest of its stream as the
/// provider sends it. Where there is no rest (the stream had ended, or failed), what was
/// held back, closed as a content filter would close it.
fn held_refusal(error: Error) -> Response<Body> {
    let attempts = error.attempts().cloned();
    let refusal = match error.into_inner() {
        Error::Refused(refusal) => refusal,
        other => return error_response(&other),
    };
    let verdict = refusal.verdict.clone();
    let rest = refusal.rest.as_ref().and_then(RefusalRest::take);
    let mut chunks: Vec<Result<ChatCompletionChunk, Error>> = refusal.held.into_iter().map(Ok).collect();
    let body: ChunkStream = match rest {
        Some(rest) => Box::pin(futures::stream::iter(chunks).chain(rest)),
        None => {
            let last_id = chunks
                .iter()
                .rev()
                .find_map(|c| c.as_ref().ok().and_then(|c| c.id.clone()));
            chunks.push(Ok(ChatCompletionChunk::closing(
                last_id,
                FinishReason::ContentFilter,
            )));
            Box::pin(futures::stream::iter(chunks))
        }
    };
    let mut response = ChatResponse::stream(body);
    response.extensions.insert(verdict);
    if let Some(attempts) = attempts {
        response.extensions.insert(attempts);
    }
    respond_ok(response)
}

/// The verdict and attempt headers, the same on answers and on a route's errors.
fn route_headers(
    mut builder: Builder,
    verdict: Option<&Verdict>,
    attempts: Option<&Attempts>,
    reported: Option<&str>,
) -> Builder {
    if let Some(v) = verdict {
        builder = builder.header(VERDICT_HEADER, v.class().as_str());
    }
    let tried = attempts.map(Attempts::snapshot).unwrap_or_default();
    let provider = tried.last().map(|a| a.provider.as_str()).or(reported);
    if let Some(p) = provider.and_then(|p| HeaderValue::from_str(p).ok()) {
        builder = builder.header(PROVIDER_HEADER, p);
    }
    let providers = if tried.is_empty() {
        provider.map(str::to_string)
    } else {
        Some(
            tried
                .iter()
                .map(|a| a.provider.as_str())
                .collect::<Vec<_>>()
                .join(","),
        )
    };
    if let Some(p) = providers.and_then(|p| HeaderValue::from_str(&p).ok()) {
        builder = builder.header(PROVIDERS_HEADER, p);
    }
    builder.header(ATTEMPTS_HEADER, tried.len().max(1))
}

fn respond_ok(response: ChatResponse) -> Response<Body> {
    let ChatResponse { body, extensions } = response;
    let verdict = extensions.get::<Verdict>().cloned();
    let attempts = extensions.get::<Attempts>().cloned();
    let reported = extensions.get::<crate::provider::ProviderName>().map(|p| &*p.0);
    let builder = route_headers(
        Response::builder().status(StatusCode::OK),
        verdict.as_ref(),
        attempts.as_ref(),
        reported,
    );
    match body {
        ResponseBody::Complete(completion) => {
            let json = serde_json::to_vec(&completion).expect("wire types always serialise");
            builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(json))
                .expect("valid response parts")
        }
        ResponseBody::Stream(stream) => {
            let writer = SseWriter {
                stream,
                tail: Vec::new(),
                window_verdict: verdict,
                final_verdict: extensions.get::<StreamVerdict>().cloned(),
                attempts,
                done: false,
                identity: ChatCompletionChunk::default(),
                error_code: StreamErrorCode::default(),
            };
            let error_code = writer.error_code.clone();
            let body = futures::stream::unfold(writer, |mut w| async move {
                let bytes = w.next().await?;
                Some((Ok::<_, Infallible>(bytes), w))
            });
            builder
                .header(header::CONTENT_TYPE, "text/event-stream")
                .header(header::CACHE_CONTROL, "no-cache")
                .extension(error_code)
                .body(Body::from_stream(body))
                .expect("valid response parts")
        }
    }
}

/// Turns chunks into SSE bytes, holding back content-free trailing chunks so the last
/// one can carry the final verdict.
struct SseWriter {
    stream: ChunkStream,
    tail: Vec<ChatCompletionChunk>,
    window_verdict: Option<Verdict>,
    final_verdict: Option<StreamVerdict>,
    attempts: Option<Attempts>,
    done: bool,
    /// The stream's `id`, `created` and `model`, for a final chunk the writer adds itself:
    /// strict clients check every chunk for them.
    identity: ChatCompletionChunk,
    /// Where the code of an error event that ends the stream is noted for the request log.
    error_code: StreamErrorCode,
}

fn carries_content(chunk: &ChatCompletionChunk) -> bool {
    chunk.choices.iter().any(|c| {
        c.finish_reason.is_none()
            || c.delta.content.as_deref().is_some_and(|t| !t.is_empty())
            || c.delta.tool_calls.is_some()
            || c.delta.reasoning_content.is_some()
    })
}

impl SseWriter {
    async fn next(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        loop {
            let next = self.stream.next().await;
            if let Some(Ok(chunk)) = &next {
                let identity = &mut self.identity;
                identity.id = identity.id.take().or_else(|| chunk.id.clone());
                identity.created = identity.created.or(chunk.created);
                identity.model = identity.model.take().or_else(|| chunk.model.clone());
            }
            match next {
                Some(Ok(chunk)) if carries_content(&chunk) && !chunk.choices.is_empty() => {
                    let mut out = self.flush_tail();
                    out.extend_from_slice(&encode_data(&chunk));
                    return Some(out.into());
                }
                Some(Ok(chunk)) => self.tail.push(chunk),
                Some(Err(error)) => {
                    // Headers are gone: the error travels as OpenAI's in-stream error event.
                    self.done = true;
                    let mut out = self.flush_tail();
                    let body = error_body(&error);
                    if let Some(code) = body["error"]["code"].as_str() {
                        self.error_code.set(code);
                    }
                    out.extend_from_slice(&encode_data(&body));
                    return Some(out.into());
                }
                None => {
                    self.done = true;
                    let marker = marker(
                        self.final_verdict.clone(),
                        self.window_verdict.clone(),
                        self.attempts.clone(),
                    )
                    .await;
                    let mut last = self.tail.pop().unwrap_or_else(|| ChatCompletionChunk {
                        id: self.identity.id.clone(),
                        object: Some("chat.completion.chunk".into()),
                        created: self.identity.created,
                        model: self.identity.model.clone(),
                        ..Default::default()
                    });
                    let mut out = self.flush_tail();
                    merge_marker(&mut last.extra, marker);
                    out.extend_from_slice(&encode_data(&last));
                    out.extend_from_slice(&encode_done());
                    return Some(out.into());
                }
            }
        }
    }

    fn flush_tail(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in self.tail.drain(..) {
            out.extend_from_slice(&encode_data(&chunk));
        }
        out
    }
}

/// The `refusal_guard` fields of the final chunk: the verdict over the whole stream
/// (the window's when the final one is unknown) and the attempt count.
async fn marker(
    final_verdict: Option<StreamVerdict>,
    window: Option<Verdict>,
    attempts: Option<Attempts>,
) -> Value {
    let verdict = match final_verdict {
        Some(v) => v.wait().await,
        None => None,
    }
    .or(window);
    let mut m = Map::new();
    if let Some(v) = verdict {
        m.insert("verdict".into(), json!(v.class().as_str()));
        m.insert("confidence".into(), json!(v.confidence));
    }
    if let Some(a) = &attempts {
        m.insert("attempts".into(), json!(a.len()));
    }
    Value::Object(m)
}

/// Adds the verdict fields to a chunk's `refusal_guard` object, keeping what the re-route
/// layer already put there.
fn merge_marker(extra: &mut Map<String, Value>, marker: Value) {
    let entry = extra.entry("refusal_guard").or_insert_with(|| json!({}));
    if let (Value::Object(into), Value::Object(from)) = (entry, marker) {
        for (k, v) in from {
            into.entry(k).or_insert(v);
        }
    }
}

/// An error as an HTTP response in OpenAI's error shape; a route's error (one that
/// carries its attempts) with the same `x-refusal-guard-*` headers as an answer.
pub fn error_response(error: &Error) -> Response<Body> {
    let status = error_status(error);
    let json = serde_json::to_vec(&error_body(error)).expect("json values serialise");
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(attempts) = error.attempts() {
        let verdict = error.as_refusal().map(|r| &r.verdict);
        builder = route_headers(builder, verdict, Some(attempts), None);
    }
    // A provider's own status passes through, and with a 429 or 503 how long it asked
    // callers to wait.
    // A provider cooling down is asked again after its cooldown: the caller may retry then.
    let retry_after = match error.cooling_down_for() {
        Some(wait) => Some(crate::error::seconds_up(wait).to_string()),
        None => error.provider_error().and_then(|p| p.retry_after.clone()),
    };
    if let (Some(value), true) = (retry_after, status.as_u16() == 429 || status.as_u16() == 503) {
        if let Ok(value) = HeaderValue::from_str(&value) {
            builder = builder.header(header::RETRY_AFTER, value);
        }
    }
    builder.body(Body::from(json)).expect("valid response parts")
}

/// The status a gateway answers for an error: a provider's own status passes through, so
/// clients see the 400 of a moderation block or the 429 of a rate limit as the provider
/// sent it.
pub fn error_status(error: &Error) -> StatusCode {
    if let Error::Route(r) = error {
        return error_status(&r.error);
    }
    if let Some(p) = error.provider_error() {
        return match p.position {
            ErrorPosition::Response => StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_GATEWAY),
            // A stream blocked by moderation before its first word: nothing was sent, so
            // the caller gets the 400 the same block answers a request that does not stream.
            ErrorPosition::StreamBeforeContent if p.is_moderation() => StatusCode::BAD_REQUEST,
            _ => StatusCode::BAD_GATEWAY,
        };
    }
    match error {
        Error::Invalid { .. } => StatusCode::BAD_REQUEST,
        Error::TooLarge { .. } => StatusCode::BAD_GATEWAY,
        Error::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        Error::CoolingDown { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Error::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// OpenAI's error JSON: `{"error":{"message","type","param","code"}}`, plus the verdict
/// when the guard stopped the answer. A route's error keeps the type and code of the error
/// it ends with; after several attempts its message names every provider tried.
pub fn error_body(error: &Error) -> Value {
    if let Error::Route(r) = error {
        let mut body = error_body(&r.error);
        if r.attempts.len() > 1 {
            body["error"]["message"] = json!(r.to_string());
        }
        return body;
    }
    if let Some(p) = error.provider_error() {
        let mut body = json!({
            "error": {
                "message": p.message,
                "type": p.kind.clone().unwrap_or_else(|| "upstream_error".into()),
                "param": null,
                "code": p.code,
            }
        });
        if let Some(id) = &p.request_id {
            body["request_id"] = json!(id);
        }
        if let Some(r) = error.as_refusal() {
            body["error"]["refusal_guard"] = json!({"verdict": r.verdict.class().as_str()});
        }
        return body;
    }
    let (kind, code) = match error {
        Error::Invalid { .. } => ("invalid_request_error", "invalid_request"),
        Error::Timeout { .. } => ("timeout_error", "upstream_timeout"),
        Error::CoolingDown { .. } => ("upstream_error", "provider_cooling_down"),
        Error::Refused(_) => ("refusal_error", "refused_by_all_providers"),
        Error::TooLarge { .. } => ("upstream_error", "upstream_too_large"),
        Error::Malformed { .. } => ("upstream_error", "upstream_malformed"),
        Error::Truncated { .. } => ("upstream_error", "upstream_truncated"),
        _ => ("upstream_error", "upstream_unavailable"),
    };
    let mut body = json!({
        "error": { "message": error.to_string(), "type": kind, "param": null, "code": code }
    });
    if let Some(r) = error.as_refusal() {
        body["error"]["refusal_guard"] = json!({"verdict": r.verdict.class().as_str()});
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_final_chunk_the_writer_adds_carries_the_streams_identity() {
        // The last upstream chunk carries content and the finish reason, so the verdict
        // needs a chunk of its own; strict clients check each chunk's id and model.
        let chunk: ChatCompletionChunk = serde_json::from_value(json!({
            "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "qwen-plus",
            "choices": [{"index": 0, "delta": {"content": "Paris."}, "finish_reason": "stop"}]
        }))
        .unwrap();
        let response = ChatResponse::stream(Box::pin(futures::stream::iter([Ok(chunk)])));
        let bytes = respond(Ok(response))
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let events: Vec<Value> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert_eq!(events.len(), 2, "{text}");
        let added = &events[1];
        assert!(added.get("refusal_guard").is_some(), "{added}");
        assert_eq!(
            (&added["id"], &added["created"], &added["model"]),
            (&json!("chatcmpl-1"), &json!(7), &json!("qwen-plus")),
            "{added}"
        );
    }
}
