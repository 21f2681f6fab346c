//! The crate's one error type.
//!
//! Every service in the crate fails with [`Error`]. It says what went wrong in terms a
//! gateway operator can act on (which provider, which stage, whether a retry can help),
//! and it never carries a credential: provider clients build errors from status codes,
//! bodies and URLs without their headers.

use std::time::Duration;

use crate::layer::Attempts;
use crate::verdict::Verdict;
use crate::wire::{ChatCompletion, ChatCompletionChunk, ProviderError};

/// A boxed error as tower's own layers (timeout, buffer) produce them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong between a caller and a provider.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The provider answered with an error (HTTP status or an SSE error event).
    #[error("{0}")]
    Provider(Box<ProviderError>),

    /// The provider could not be reached, or the connection broke.
    #[error("transport error talking to {provider}: {message}")]
    Transport {
        provider: String,
        message: String,
        /// Whether the connection broke after the response had started.
        mid_response: bool,
    },

    /// The provider sent something that is not the wire format it promised.
    #[error("malformed {what} from {provider}: {detail}")]
    Malformed {
        provider: String,
        /// What was being read: "response body", "stream chunk", "SSE framing".
        what: &'static str,
        detail: String,
    },

    /// A stream ended without `[DONE]` and without an error event: the answer may be cut.
    #[error("stream from {provider} ended after {chunks} chunks without [DONE]")]
    Truncated { provider: String, chunks: usize },

    /// A body was larger than the configured limit.
    #[error("{what} from {provider} exceeds the {limit} byte limit")]
    TooLarge {
        provider: String,
        what: &'static str,
        limit: usize,
    },

    /// A deadline passed.
    #[error("{what} deadline of {after:?} passed waiting for {provider}")]
    Timeout {
        provider: String,
        /// Which deadline: "first byte", "first token", "total", "idle".
        what: &'static str,
        after: Duration,
    },

    /// A provider was not asked: it failed request after request, failed too many of its
    /// recent requests, or asked for a pause (`Retry-After`), and is cooling down
    /// ([`crate::layer::CooldownLayer`]); `cause` says which. Another provider may answer;
    /// the same one is asked again after `retry_in`.
    #[error("{provider} not asked: cooling down ({cause}; asked again in {} s)", seconds_up(*.retry_in))]
    CoolingDown {
        provider: String,
        cause: CooldownCause,
        retry_in: Duration,
    },

    /// The guard stopped an answer that is not an answer: a stream refused inside the
    /// hold-back window, or a provider moderation error. The verdict says why; the
    /// refusal keeps what was held back and the original error, so nothing is lost.
    #[error("refused: {}", .0.verdict)]
    Refused(Box<Refusal>),

    /// The request or the configuration is not usable.
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },

    /// An error from another layer (tower's timeout, buffer, …).
    #[error(transparent)]
    Other(BoxError),

    /// A route gave no answer: the error it ends with, and the record of every provider
    /// it tried, so that the caller can say who was asked even when nobody answered (a
    /// response carries the same record as its [`Attempts`] extension). Made by
    /// [`crate::layer::RerouteLayer`]; [`Error::as_refusal`], [`Error::provider_error`],
    /// [`Error::provider`] and [`Error::is_retryable`] look through it.
    #[error("{0}")]
    Route(Box<RouteError>),
}

/// What a route that gave no answer leaves behind (see [`Error::Route`]).
#[derive(Debug)]
pub struct RouteError {
    /// The error the route ends with: when every provider failed or refused, the most
    /// informative of their outcomes (the first provider's), else the one that ended it.
    pub error: Error,
    /// Every attempt, in order.
    pub attempts: Attempts,
}

impl std::fmt::Display for RouteError {
    /// The error alone after one attempt; after several, every provider with what it
    /// ended in, since the error alone would name only one of them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let attempts = self.attempts.snapshot();
        if attempts.len() < 2 {
            return write!(f, "{}", self.error);
        }
        write!(f, "no provider answered ({} attempts): ", attempts.len())?;
        for (i, a) in attempts.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            match (&a.error, a.verdict) {
                (Some(e), _) => write!(f, "{}: {e}", a.provider)?,
                (None, Some(v)) => write!(f, "{}: {v}", a.provider)?,
                (None, None) => write!(f, "{}: no answer", a.provider)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for RouteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// What the guard knows about an answer it stopped.
#[derive(Debug)]
pub struct Refusal {
    pub verdict: Verdict,
    /// The provider that answered, when known.
    pub provider: Option<String>,
    /// Chunks held back and never released to the caller (a stream refused in the window).
    pub held: Vec<ChatCompletionChunk>,
    /// The complete answer, when the refused answer was not streamed.
    pub completion: Option<ChatCompletion>,
    /// The error that ended the exchange (a moderation 400, an SSE error event, a cut).
    pub cause: Option<Error>,
    /// The rest of a stream stopped in its window, left unread. When no provider answers
    /// instead, the caller gets the whole refusal (the held chunks, then this), not its
    /// first words; dropping the refusal closes the upstream.
    pub rest: Option<RefusalRest>,
}

/// The unread rest of a refused stream (see [`Refusal::rest`]). Taken at most once.
pub struct RefusalRest(std::sync::Mutex<Option<crate::provider::ChunkStream>>);

impl RefusalRest {
    /// Keeps `stream` for whoever delivers the refusal.
    pub fn new(stream: crate::provider::ChunkStream) -> Self {
        RefusalRest(std::sync::Mutex::new(Some(stream)))
    }

    /// The stream, the first time it is asked for.
    pub fn take(&self) -> Option<crate::provider::ChunkStream> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl std::fmt::Debug for RefusalRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefusalRest(..)")
    }
}

impl Refusal {
    /// The text the provider produced before it was stopped.
    pub fn text(&self) -> String {
        match &self.completion {
            Some(c) => c.text(),
            None => self.held.iter().map(|c| c.content()).collect(),
        }
    }
}

impl Error {
    /// The refusal, when the guard stopped the answer.
    pub fn as_refusal(&self) -> Option<&Refusal> {
        match self {
            Error::Refused(r) => Some(r),
            Error::Route(r) => r.error.as_refusal(),
            _ => None,
        }
    }

    /// The provider error behind this error, looking through a refusal to its cause.
    pub fn provider_error(&self) -> Option<&ProviderError> {
        match self {
            Error::Provider(e) => Some(e),
            Error::Refused(r) => r.cause.as_ref().and_then(Error::provider_error),
            Error::Route(r) => r.error.provider_error(),
            _ => None,
        }
    }

    /// The name of the provider the error came from, when it names one.
    pub fn provider(&self) -> Option<&str> {
        match self {
            Error::Provider(e) => Some(&e.provider),
            Error::Transport { provider, .. }
            | Error::Malformed { provider, .. }
            | Error::Truncated { provider, .. }
            | Error::TooLarge { provider, .. }
            | Error::Timeout { provider, .. }
            | Error::CoolingDown { provider, .. } => Some(provider),
            Error::Refused(r) => r.provider.as_deref(),
            Error::Route(r) => r.error.provider(),
            Error::Invalid { .. } | Error::Other(_) => None,
        }
    }

    /// The attempts of the route that ended in this error, when a route did.
    pub fn attempts(&self) -> Option<&Attempts> {
        match self {
            Error::Route(r) => Some(&r.attempts),
            _ => None,
        }
    }

    /// The error itself, without the route's record of attempts around it.
    pub fn into_inner(self) -> Error {
        match self {
            Error::Route(r) => r.error.into_inner(),
            other => other,
        }
    }

    /// The provider error, when this is one.
    pub fn as_provider(&self) -> Option<&ProviderError> {
        match self {
            Error::Provider(e) => Some(e),
            _ => None,
        }
    }

    /// How long until a provider that was not asked because it is cooling down is asked
    /// again ([`Error::CoolingDown`], also inside a route's error).
    pub fn cooling_down_for(&self) -> Option<Duration> {
        match self {
            Error::CoolingDown { retry_in, .. } => Some(*retry_in),
            Error::Route(r) => r.error.cooling_down_for(),
            _ => None,
        }
    }

    /// Whether sending the same request again (to the same provider) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Provider(e) => e.is_retryable(),
            Error::Transport { mid_response, .. } => !mid_response,
            Error::Timeout { .. } => true,
            Error::Truncated { .. } => false,
            Error::Route(r) => r.error.is_retryable(),
            _ => false,
        }
    }

    /// How long the provider asked to be left alone from now, by its `Retry-After` header
    /// ([`crate::wire::ProviderError::retry_after_in`]); `None` for an error without one.
    /// The retry policy does not retry sooner, and the cooldown layer skips the provider
    /// that long.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Provider(e) => e.retry_after_in(std::time::SystemTime::now()),
            Error::Route(r) => r.error.retry_after(),
            _ => None,
        }
    }

    /// Turns a boxed error from a tower layer back into an [`Error`].
    pub fn from_boxed(e: BoxError) -> Self {
        match e.downcast::<Error>() {
            Ok(e) => *e,
            Err(e) => Error::Other(e),
        }
    }

    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> Self {
        Error::Invalid {
            what,
            detail: detail.into(),
        }
    }
}

/// Why a provider is cooling down ([`Error::CoolingDown`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CooldownCause {
    /// This many requests in a row failed.
    InARow { failures: u32 },
    /// `failed` of its last `of` requests failed, not all in a row: a provider that fails
    /// often but not every time.
    Share { failed: u32, of: u32 },
    /// The provider said how long to wait (`Retry-After` on a 429 or 503).
    RetryAfter,
}

impl std::fmt::Display for CooldownCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CooldownCause::InARow { failures } => write!(f, "{} in a row", failed_requests(*failures)),
            CooldownCause::Share { failed, of } => write!(f, "{failed} of its last {of} requests failed"),
            CooldownCause::RetryAfter => f.write_str("it asked for a pause with Retry-After"),
        }
    }
}

/// "1 request failed", "3 requests failed".
fn failed_requests(n: u32) -> String {
    match n {
        1 => "1 request failed".into(),
        n => format!("{n} requests failed"),
    }
}

/// Whole seconds, rounded up, at least 1: what a client waits before asking again.
pub fn seconds_up(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000).max(1) as u64
}

impl From<ProviderError> for Error {
    fn from(e: ProviderError) -> Self {
        Error::Provider(Box::new(e))
    }
}
