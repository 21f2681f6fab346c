//! The crate's one error type.
//!
//! Every service in the crate fails with [`Error`]. It says what went wrong in terms a
//! gateway operator can act on (which provider, which stage, whether a retry can help),
//! and it never carries a credential: provider clients build errors from status codes,
//! bodies and URLs without their headers.

use std::time::Duration;

use crate::verdict::Verdict;
use crate::wire::ProviderError;

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

    /// The guard ended a stream because the answer is not an answer (see the verdict).
    #[error("stream stopped by the refusal guard: {0}")]
    Refused(Box<Verdict>),

    /// The request or the configuration is not usable.
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },

    /// An error from another layer (tower's timeout, buffer, …).
    #[error(transparent)]
    Other(BoxError),
}

impl Error {
    /// The provider error, when this is one.
    pub fn as_provider(&self) -> Option<&ProviderError> {
        match self {
            Error::Provider(e) => Some(e),
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
            _ => false,
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

impl From<ProviderError> for Error {
    fn from(e: ProviderError) -> Self {
        Error::Provider(Box::new(e))
    }
}
