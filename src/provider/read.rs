//! Reading a provider's HTTP response into a [`ChatResponse`]: the one place that knows
//! how OpenAI-compatible providers answer. The reqwest client and the HTTP-level gateway
//! layer (which calls a gateway's own proxy route) both go through here.

use std::sync::Arc;

use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;

use super::{ChatResponse, ProviderName};
use crate::error::Error;
use crate::wire::sse::{error_chain, ChunkDecoder};
use crate::wire::{is_error_body, ChatCompletion, ErrorPosition, ProviderError};

/// Limits on what a provider may send.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// The largest complete (non-streamed) body or error body.
    pub complete: usize,
    /// The most bytes one stream may carry.
    pub stream: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits {
            complete: 16 << 20,
            stream: crate::wire::sse::DEFAULT_STREAM_BYTE_LIMIT,
        }
    }
}

/// Reads a provider response: an error status becomes [`Error::Provider`]; an SSE body
/// becomes a chunk stream that yields as bytes arrive; a JSON body becomes a complete
/// answer, or an error when it holds one (some providers answer errors with 200).
pub async fn read_response<B>(
    provider: &Arc<str>,
    response: http::Response<B>,
    limits: BodyLimits,
) -> Result<ChatResponse, Error>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let status = response.status().as_u16();
    let headers = response.headers();
    let request_id = ["x-request-id", "x-dashscope-request-id", "request-id"]
        .iter()
        .find_map(|h| headers.get(*h))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let is_sse = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            // Media types are case-insensitive (RFC 9110): `Text/Event-Stream` is SSE too.
            v.trim_start()
                .get(..17)
                .is_some_and(|t| t.eq_ignore_ascii_case("text/event-stream"))
        });
    let retry_after = headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = response.into_body();

    if !(200..300).contains(&status) {
        let bytes = read_limited(provider, body, limits.complete).await?;
        let mut err = ProviderError::from_body(provider, status, &bytes, ErrorPosition::Response);
        err.request_id = err.request_id.or(request_id);
        err.retry_after = retry_after;
        return Err(err.into());
    }
    let mut out = if is_sse {
        let bytes = body.into_data_stream();
        ChatResponse::stream(Box::pin(ChunkDecoder::with_limit(
            provider.clone(),
            status,
            bytes,
            limits.stream,
        )))
    } else {
        let bytes = read_limited(provider, body, limits.complete).await?;
        let malformed = |e: serde_json::Error| Error::Malformed {
            provider: provider.to_string(),
            what: "response body",
            detail: e.to_string(),
        };
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(malformed)?;
        if is_error_body(&value) {
            let mut err = ProviderError::from_value(provider, status, value, ErrorPosition::Response);
            err.request_id = err.request_id.or(request_id);
            return Err(err.into());
        }
        let completion: ChatCompletion = serde_json::from_value(value).map_err(malformed)?;
        ChatResponse::complete(completion)
    };
    out.extensions.insert(ProviderName(provider.clone()));
    Ok(out)
}

/// Collects a body, failing once it passes `limit` bytes.
async fn read_limited<B>(provider: &Arc<str>, body: B, limit: usize) -> Result<Vec<u8>, Error>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let mut body = std::pin::pin!(body);
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::Transport {
            provider: provider.to_string(),
            message: error_chain(&e),
            mid_response: true,
        })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(Error::TooLarge {
                    provider: provider.to_string(),
                    what: "response body",
                    limit,
                });
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf)
}
