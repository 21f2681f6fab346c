//! Providers: the typed client contract, and the clients that fulfil it.
//!
//! Every layer in this crate wraps a `tower::Service<ChatRequest, Response = ChatResponse,
//! Error = Error>`. A [`ChatResponse`] is either a complete answer or a stream of chunks,
//! plus [`http::Extensions`] where layers attach what they learned (the [`crate::verdict::Verdict`],
//! the provider that answered, the attempts made). [`OpenAiCompatible`] is the real HTTP
//! client for any OpenAI-compatible endpoint; [`crate::mock`] is a scriptable provider
//! for tests and benches.

mod models;
mod openai_compatible;
mod read;

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;

pub use models::ModelMap;
pub use openai_compatible::{
    ApiKey, OpenAiCompatible, OpenAiCompatibleBuilder, DASHSCOPE_CN, DASHSCOPE_INTL, DEFAULT_BODY_LIMIT,
};
pub use read::{read_response, BodyLimits};

use crate::error::Error;
use crate::wire::{ChatCompletion, ChatCompletionChunk};

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
