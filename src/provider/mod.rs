//! Providers: the typed client contract, and the clients that fulfil it.
//!
//! Every layer in this crate wraps a `tower::Service<ChatRequest, Response = ChatResponse,
//! Error = Error>`. A [`ChatResponse`] is either a complete answer or a stream of chunks,
//! plus [`http::Extensions`] where layers attach what they learned (the [`crate::verdict::Verdict`],
//! the provider that answered, the attempts made). [`OpenAiCompatible`] is the real HTTP
//! client for any OpenAI-compatible endpoint; [`crate::mock`] is a scriptable provider
//! for tests and benches.

mod mode;
mod models;
mod openai_compatible;
mod read;

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;

pub use mode::{as_chunks, from_chunks, in_mode};
pub use models::ModelMap;
pub use openai_compatible::{
    ApiKey, OpenAiCompatible, OpenAiCompatibleBuilder, DASHSCOPE_CN, DASHSCOPE_INTL, DEFAULT_BODY_LIMIT,
};
pub use read::{read_response, BodyLimits};

use crate::error::Error;
use crate::wire::{ChatCompletion, ChatCompletionChunk};

/// Hosts known to accept `logprobs` and `top_logprobs` on chat completions, streamed too:
/// DashScope's OpenAI-compatible mode (both regions), OpenAI, DeepSeek. A model there that
/// does not (a reasoning model, say) answers 400, which the guard remembers.
const LOGPROB_HOSTS: &[&str] = &[
    "dashscope-intl.aliyuncs.com",
    "dashscope.aliyuncs.com",
    "api.openai.com",
    "api.deepseek.com",
];

/// Whether the provider at `base_url` is known to accept `logprobs` / `top_logprobs`
/// (the guard asks such providers for them by default; see
/// [`crate::layer::logprobs::AskLogprobs::for_base_url`]).
pub fn accepts_logprobs(base_url: &str) -> bool {
    base_url
        .parse::<http::Uri>()
        .ok()
        .and_then(|uri| uri.host().map(str::to_ascii_lowercase))
        .is_some_and(|host| LOGPROB_HOSTS.contains(&host.as_str()))
}

/// A stream of chunks as they arrive. It ends after the last chunk, or after one error.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<ChatCompletionChunk, Error>> + Send>>;

/// The body of a response: one complete answer, or chunks as they come.
// A response is moved a handful of times per request; boxing the completion would
// cost an allocation on every one of them to save bytes on a stack that is not hot.
#[allow(clippy::large_enum_variant)]
pub enum ResponseBody {
    Complete(ChatCompletion),
    Stream(ChunkStream),
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResponseBody::Complete(c) => f.debug_tuple("Complete").field(c).finish(),
            ResponseBody::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

/// What a chat service answers.
#[derive(Debug)]
pub struct ChatResponse {
    pub body: ResponseBody,
    /// What layers learned about this response, by type.
    pub extensions: http::Extensions,
}

impl ChatResponse {
    /// A complete answer with empty extensions.
    pub fn complete(completion: ChatCompletion) -> Self {
        ChatResponse {
            body: ResponseBody::Complete(completion),
            extensions: http::Extensions::new(),
        }
    }

    /// A streamed answer with empty extensions.
    pub fn stream(stream: ChunkStream) -> Self {
        ChatResponse {
            body: ResponseBody::Stream(stream),
            extensions: http::Extensions::new(),
        }
    }

    /// The complete answer, if this is not a stream.
    pub fn as_complete(&self) -> Option<&ChatCompletion> {
        match &self.body {
            ResponseBody::Complete(c) => Some(c),
            ResponseBody::Stream(_) => None,
        }
    }

    /// The name of the provider that answered, when a client recorded it.
    pub fn provider(&self) -> Option<&str> {
        self.extensions.get::<ProviderName>().map(|p| &*p.0)
    }
}

/// The configured name of the provider that produced a response (an extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderName(pub Arc<str>);

/// How long the provider took to its response: to the head for streams, to the whole
/// body for complete answers (an extension the client sets; the gateway's overhead
/// metric subtracts it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamTiming(pub std::time::Duration);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashscope_is_known_to_accept_logprobs_and_unknown_hosts_are_not() {
        assert!(accepts_logprobs(DASHSCOPE_INTL));
        assert!(accepts_logprobs(DASHSCOPE_CN));
        assert!(accepts_logprobs("https://API.openai.com/v1"));
        assert!(!accepts_logprobs("http://127.0.0.1:9001/v1"));
        assert!(!accepts_logprobs("https://openrouter.ai/api/v1"));
        assert!(!accepts_logprobs("not a url"));
    }
}
