//! Logprobs the guard asks for on its own behalf, and hides from the caller.
//!
//! The log-probability checks ([`crate::detect::logprobs`]) only see tokens when the
//! provider sends them, and providers only send them when asked; almost no client asks.
//! With [`AskLogprobs`] switched on, the guard adds `logprobs: true` and
//! `top_logprobs: K` to a request whose client did not ask for either, judges the answer
//! with them, and removes them from every chunk, completion and held-back refusal before
//! anything leaves the guard: the caller gets what the provider would have sent without
//! them. A client that asked gets them untouched.
//!
//! Not every provider (or model) takes the parameters: OpenAI's reasoning models and some
//! Qwen models answer 400. A rejection that names them is answered by sending the
//! request again without them, once, and the provider and model are remembered (a
//! bounded LRU shared by every service the layer builds) so that later requests go out
//! as the client wrote them.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;

use crate::error::Error;
use crate::wire::{ChatCompletion, ChatCompletionChunk, ChatRequest};

/// Default number of alternatives asked for per token: enough to see whether an answer
/// was close behind a refusal, small enough that chunks stay a few hundred bytes.
pub const DEFAULT_TOP_LOGPROBS: u32 = 5;
/// The most alternatives OpenAI-compatible providers accept.
pub const MAX_TOP_LOGPROBS: u32 = 20;
/// How many (provider, model) pairs that rejected the parameters are remembered.
pub const DEFAULT_REMEMBERED: usize = 256;

/// Whether, and how, the guard asks for logprobs the client did not request.
///
/// Clones share the memory of providers that rejected the parameters.
#[derive(Clone)]
pub struct AskLogprobs {
    /// Alternatives per token; `None` when asking is off.
    top_logprobs: Option<u32>,
    /// The provider the guard wraps, when told; else learned from its answers.
    provider: Option<Arc<str>>,
    /// Hashes of (provider, model) pairs that rejected the parameters: a lookup on every
    /// request, so it allocates nothing.
    rejected: Arc<Mutex<LruCache<u64, ()>>>,
}

impl std::fmt::Debug for AskLogprobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AskLogprobs")
            .field("top_logprobs", &self.top_logprobs)
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl Default for AskLogprobs {
    /// Off: the guard wraps services it knows nothing about.
    fn default() -> Self {
        Self::off()
    }
}

impl AskLogprobs {
    fn with(top_logprobs: Option<u32>) -> Self {
        AskLogprobs {
            top_logprobs,
            provider: None,
            rejected: Arc::new(Mutex::new(LruCache::new(
                NonZeroUsize::new(DEFAULT_REMEMBERED).expect("non-zero constant"),
            ))),
        }
    }

    /// Never ask: only logprobs the client requested reach the checks.
    pub fn off() -> Self {
        Self::with(None)
    }

    /// Ask for `logprobs` and `top` alternatives per token (clamped to
    /// [`MAX_TOP_LOGPROBS`]; 0 asks for the chosen tokens only).
    pub fn top(top: u32) -> Self {
        Self::with(Some(top.min(MAX_TOP_LOGPROBS)))
    }

    /// On with [`DEFAULT_TOP_LOGPROBS`] for a provider known to accept the parameters
    /// ([`crate::provider::accepts_logprobs`]: DashScope among them), off otherwise.
    pub fn for_base_url(base_url: &str) -> Self {
        if crate::provider::accepts_logprobs(base_url) {
            Self::top(DEFAULT_TOP_LOGPROBS)
        } else {
            Self::off()
        }
    }

    /// Names the provider the guard wraps, so that a rejection is remembered for it from
    /// the first request on (a guard built anew per request, as the HTTP-level layer
    /// does, cannot learn the name from earlier answers).
    pub fn provider(mut self, name: impl Into<Arc<str>>) -> Self {
        self.provider = Some(name.into());
        self
    }

    /// Whether asking is on.
    pub fn is_on(&self) -> bool {
        self.top_logprobs.is_some()
    }

    /// The alternatives asked for per token, when on.
    pub fn top_logprobs(&self) -> Option<u32> {
        self.top_logprobs
    }

    /// The provider name given to [`AskLogprobs::provider`].
    pub(crate) fn provider_name(&self) -> Option<&Arc<str>> {
        self.provider.as_ref()
    }

    /// Whether `provider` rejected the parameters for `model` (and is not asked again).
    pub fn rejected(&self, provider: &str, model: &str) -> bool {
        let mut map = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&pair_key(provider, model)).is_some()
    }

    /// Remembers that `provider` rejected the parameters for `model`.
    pub(crate) fn remember_rejection(&self, provider: &str, model: &str) {
        let mut map = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        map.put(pair_key(provider, model), ());
    }

    /// The request to send upstream, with the parameters added, when the guard should ask:
    /// asking is on, the client asked for neither `logprobs` nor `top_logprobs`, and the
    /// provider (when known) has not rejected them for this model.
    pub(crate) fn ask(&self, request: &ChatRequest, provider: Option<&str>) -> Option<ChatRequest> {
        let top = self.top_logprobs?;
        if client_asked(request) {
            return None;
        }
        if provider.is_some_and(|p| self.rejected(p, &request.model)) {
            return None;
        }
        let mut asked = request.clone();
        asked.logprobs = Some(true);
        asked.top_logprobs = (top > 0).then_some(top);
        Some(asked)
    }
}

fn pair_key(provider: &str, model: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (provider, model).hash(&mut h);
    h.finish()
}

/// Whether the client itself asked for logprobs (then they are its to keep).
pub fn client_asked(request: &ChatRequest) -> bool {
    request.logprobs == Some(true) || request.top_logprobs.is_some()
}

/// Whether an error is a provider refusing the logprob parameters: a 400 (or 422) that is
/// no moderation block and whose message, code or `param` names `logprobs`.
pub fn rejects_logprobs(error: &Error) -> bool {
    let Some(e) = error.as_provider() else {
        return false;
    };
    if !matches!(e.status, 400 | 422) || e.moderation.is_some() {
        return false;
    }
    let names = |s: &str| s.to_ascii_lowercase().contains("logprob");
    names(&e.message)
        || e.code.as_deref().is_some_and(names)
        || e.raw
            .pointer("/error/param")
            .and_then(|p| p.as_str())
            .is_some_and(names)
}

/// Removes the logprobs of every choice of a complete answer.
pub fn strip_completion(completion: &mut ChatCompletion) {
    for choice in &mut completion.choices {
        choice.logprobs = None;
    }
}

/// Removes the logprobs of every choice of a chunk.
pub fn strip_chunk(chunk: &mut ChatCompletionChunk) {
    for choice in &mut chunk.choices {
        choice.logprobs = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ErrorPosition, Message, ProviderError};

    fn request() -> ChatRequest {
        ChatRequest::new("qwen-plus", vec![Message::user("hi")])
    }

    #[test]
    fn asks_only_when_on_and_the_client_did_not() {
        assert!(AskLogprobs::off().ask(&request(), None).is_none());
        let ask = AskLogprobs::top(5);
        let asked = ask.ask(&request(), None).unwrap();
        assert_eq!((asked.logprobs, asked.top_logprobs), (Some(true), Some(5)));
        let mut own = request();
        own.logprobs = Some(true);
        assert!(
            ask.ask(&own, None).is_none(),
            "the client's own request is untouched"
        );
        let mut declined = request();
        declined.logprobs = Some(false);
        assert!(
            ask.ask(&declined, None).is_some(),
            "an explicit false is not a request"
        );
        assert_eq!(AskLogprobs::top(99).top_logprobs(), Some(MAX_TOP_LOGPROBS));
    }

    #[test]
    fn a_rejection_is_remembered_per_provider_and_model_and_shared_by_clones() {
        let ask = AskLogprobs::top(5);
        let clone = ask.clone();
        ask.remember_rejection("openai", "o3");
        let mut o3 = request();
        o3.model = "o3".into();
        assert!(clone.ask(&o3, Some("openai")).is_none());
        assert!(
            clone.ask(&request(), Some("openai")).is_some(),
            "other models still asked"
        );
        assert!(
            clone.ask(&o3, Some("dashscope")).is_some(),
            "other providers still asked"
        );
    }

    #[test]
    fn recognises_a_rejection_naming_the_parameters() {
        let body = br#"{"error":{"message":"<400> InternalError.Algo.InvalidParameter: top_logprobs is not supported","type":"invalid_request_error","param":null,"code":"invalid_parameter_error"}}"#;
        let e: Error = ProviderError::from_body("qwen", 400, body, ErrorPosition::Response).into();
        assert!(rejects_logprobs(&e));
        let param = br#"{"error":{"message":"Unsupported parameter","type":"invalid_request_error","param":"logprobs","code":null}}"#;
        let e: Error = ProviderError::from_body("openai", 400, param, ErrorPosition::Response).into();
        assert!(rejects_logprobs(&e));
        let other = br#"{"error":{"message":"model not found","type":"invalid_request_error"}}"#;
        let e: Error = ProviderError::from_body("openai", 400, other, ErrorPosition::Response).into();
        assert!(!rejects_logprobs(&e));
    }
}
