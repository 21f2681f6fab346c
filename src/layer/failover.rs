//! Plain failover, composed from tower's own layers: what gateways already do, done
//! once here so that every provider in a route gets the same treatment.
//!
//! A provider's stack, from the outside in:
//! - optionally a [`CooldownLayer`]: after a run of failed requests the provider is
//!   skipped for a while, so that an outage costs a fail-over, not a timeout per request;
//! - `tower::retry::Retry` with [`RetryPolicy`]: retries errors a retry can help
//!   (connection failures before a response, 429, 5xx, a missed first-token deadline),
//!   with jittered backoff and a shared [`TpsBudget`] so that an outage does not turn
//!   into a storm of retries. Refusals and moderation blocks are never retried here;
//!   they repeat on the same provider and are the re-route layer's business;
//! - the [`RefusalGuard`](crate::layer::RefusalGuard), which judges what comes from below
//!   it, a missed deadline included;
//! - [`FirstTokenLayer`] for the time to the first token: it bounds the call and a
//!   stream's chunks until one carries a token, so a provider that sends headers and then
//!   stalls misses it as one that sends nothing does;
//! - the provider client.
//!
//! [`DeadlineLayer`] adds the total budget, which tower's timeout cannot give a stream:
//! it bounds the response future and every chunk after it by one deadline.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use tower::retry::budget::{Budget, TpsBudget};
use tower::retry::Policy;
use tower::{Layer, Service, ServiceBuilder};

use crate::error::Error;
use crate::layer::cooldown::CooldownLayer;
use crate::layer::reroute::ChatService;
use crate::layer::RefusalGuardLayer;
use crate::provider::{ChatResponse, ResponseBody};
use crate::wire::ChatRequest;

/// The longest `Retry-After` a retry waits out, by default; a provider that asks for a
/// longer pause is not retried (the request fails over, or fails, at once).
pub const DEFAULT_MAX_RETRY_WAIT: Duration = Duration::from_secs(2);

/// Retries errors that a retry can help, within a budget.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    budget: Arc<TpsBudget>,
    retries_left: usize,
    backoff: Duration,
    max_wait: Duration,
}

impl RetryPolicy {
    /// At most `max_retries` retries per request, and, across all requests, at most
    /// `retry_percent` of the recent successful requests' volume (plus `min_per_sec`).
    pub fn new(max_retries: usize, min_per_sec: u32, retry_percent: f32) -> Self {
        RetryPolicy {
            budget: Arc::new(TpsBudget::new(
                Duration::from_secs(10),
                min_per_sec,
                retry_percent,
            )),
            retries_left: max_retries,
            backoff: Duration::from_millis(50),
            max_wait: DEFAULT_MAX_RETRY_WAIT,
        }
    }

    /// The first backoff; each retry doubles it, with up to 50% jitter. Default 50 ms.
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// The longest pause a provider's `Retry-After` may ask of a retry. A retry waits at
    /// least what the provider asked (a rate-limited provider retried after 50 ms only
    /// answers 429 again, and counts it against the key); a provider asking for longer is
    /// not retried, since the caller would wait that long for one answer, and a fallback
    /// answers sooner. Default [`DEFAULT_MAX_RETRY_WAIT`].
    pub fn max_retry_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }
}

impl Default for RetryPolicy {
    /// Two retries per request, one retry a second plus 10% of successful traffic.
    fn default() -> Self {
        RetryPolicy::new(2, 1, 0.1)
    }
}

impl Policy<ChatRequest, ChatResponse, Error> for RetryPolicy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _req: &mut ChatRequest,
        result: &mut Result<ChatResponse, Error>,
    ) -> Option<Self::Future> {
        match result {
            Ok(_) => {
                self.budget.deposit();
                None
            }
            Err(e) if e.is_retryable() && self.retries_left > 0 => {
                let asked = e.retry_after();
                if let Some(asked) = asked.filter(|d| *d > self.max_wait) {
                    tracing::warn!(error = %e, retry_after_ms = asked.as_millis() as u64, "provider asked for a longer pause than a retry waits; not retried");
                    return None;
                }
                if !self.budget.withdraw() {
                    return None;
                }
                self.retries_left -= 1;
                tracing::warn!(error = %e, retries_left = self.retries_left, "provider failed; retrying");
                let delay = jitter(self.backoff).max(asked.unwrap_or_default());
                self.backoff *= 2;
                Some(tokio::time::sleep(delay))
            }
            Err(_) => None,
        }
    }

    fn clone_request(&mut self, req: &ChatRequest) -> Option<ChatRequest> {
        Some(req.clone())
    }
}

fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    d + d.mul_f64(f64::from(nanos % 1000) / 2000.0)
}

/// How one provider is called: deadline to the first token, retries, and the guard.
#[derive(Debug, Clone)]
pub struct ProviderPolicy {
    /// Deadline for the first released token of each try. Default 30 s.
    pub first_token: Duration,
    pub retry: RetryPolicy,
    pub guard: RefusalGuardLayer,
    /// Skips the provider for a while after a run of failed requests; `None` (the
    /// default) always asks it. The gateway turns it on per provider
    /// (`cooldown_after_failures`, `cooldown_ms`).
    pub cooldown: Option<CooldownLayer>,
}

impl Default for ProviderPolicy {
    fn default() -> Self {
        ProviderPolicy {
            first_token: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            guard: RefusalGuardLayer::new(),
            cooldown: None,
        }
    }
}

impl ProviderPolicy {
    /// Wraps a provider client: the cooldown, if any, around retry (budgeted) around the
    /// guard around the first-token deadline ([`FirstTokenLayer`]), so that the guard
    /// judges a stall as the failure it is and a retry or a fallback answers instead, and
    /// one request's retries count once toward a cooldown.
    pub fn stack<S>(&self, name: &str, client: S) -> ChatService
    where
        S: Service<ChatRequest, Response = ChatResponse, Error = Error> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
    {
        let timed = ServiceBuilder::new()
            .layer(self.guard.clone())
            .layer(FirstTokenLayer::new(name, self.first_token))
            .service(client);
        let retried = ServiceBuilder::new().retry(self.retry.clone()).service(timed);
        match &self.cooldown {
            Some(cooldown) => ChatService::new(cooldown.layer(retried)),
            None => ChatService::new(retried),
        }
    }
}

/// Bounds the time from a request to its answer's first token: the head of a complete
/// answer, or a stream's first chunk that carries content, reasoning or a tool call. A
/// provider that sends its headers, or a role chunk, and then nothing is as stalled as one
/// that sends nothing at all; a timeout around the call alone would let it through.
#[derive(Debug, Clone)]
pub struct FirstTokenLayer {
    provider: Arc<str>,
    after: Duration,
}

impl FirstTokenLayer {
    /// A first-token deadline of `after` for `provider` (named in the timeout error).
    pub fn new(provider: &str, after: Duration) -> Self {
        FirstTokenLayer {
            provider: Arc::from(provider),
            after,
        }
    }
}

impl<S> Layer<S> for FirstTokenLayer {
    type Service = FirstToken<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FirstToken {
            inner,
            config: self.clone(),
        }
    }
}

/// The service [`FirstTokenLayer`] builds.
#[derive(Debug, Clone)]
pub struct FirstToken<S> {
    inner: S,
    config: FirstTokenLayer,
}

impl<S> Service<ChatRequest> for FirstToken<S>
where
    S: Service<ChatRequest, Response = ChatResponse, Error = Error> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = ChatResponse;
    type Error = Error;
    type Future = BoxFuture<'static, Result<ChatResponse, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: ChatRequest) -> Self::Future {
        let deadline = tokio::time::Instant::now() + self.config.after;
        let config = self.config.clone();
        let expired = move || Error::Timeout {
            provider: config.provider.to_string(),
            what: "first token",
            after: config.after,
        };
        Box::pin(bounded(
            self.inner.call(request),
            deadline,
            expired,
            Some(first_token),
        ))
    }
}

/// Whether a chunk carries a token of the answer (not only a role, a usage or nothing).
fn first_token(chunk: &crate::wire::ChatCompletionChunk) -> bool {
    chunk.choices.iter().any(|c| {
        let d = &c.delta;
        d.content.as_deref().is_some_and(|t| !t.is_empty())
            || d.reasoning_content.as_deref().is_some_and(|t| !t.is_empty())
            || d.refusal.as_deref().is_some_and(|t| !t.is_empty())
            || d.tool_calls.as_ref().is_some_and(|t| !t.is_empty())
            || c.finish_reason.is_some()
    })
}

/// Bounds a whole exchange, response and stream, by one deadline. Over a
/// [`RerouteLayer`](crate::layer::RerouteLayer), use its own
/// [`total_timeout`](crate::layer::RerouteLayer::total_timeout) instead: this layer
/// drops the future when time runs out, and with it the record of who was asked.
#[derive(Debug, Clone, Copy)]
pub struct DeadlineLayer {
    total: Duration,
}

impl DeadlineLayer {
    /// A total budget of `total` per request.
    pub fn new(total: Duration) -> Self {
        DeadlineLayer { total }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline {
            inner,
            total: self.total,
        }
    }
}

/// The service [`DeadlineLayer`] builds.
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    total: Duration,
}

impl<S> Service<ChatRequest> for Deadline<S>
where
    S: Service<ChatRequest, Response = ChatResponse, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = ChatResponse;
    type Error = Error;
    type Future = BoxFuture<'static, Result<ChatResponse, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: ChatRequest) -> Self::Future {
        let total = self.total;
        let deadline = tokio::time::Instant::now() + total;
        let model = request.model.clone();
        let expired = move || Error::Timeout {
            provider: format!("route for {model}"),
            what: "total",
            after: total,
        };
        Box::pin(bounded(self.inner.call(request), deadline, expired, None))
    }
}

/// An exchange bounded by `deadline`: the call, then every chunk of its stream, which ends
/// in `expired()` when the deadline passes first. With `lifted_by`, the first chunk it
/// accepts lifts the deadline for the rest (the first-token bound). Shared by
/// [`FirstToken`] and [`Deadline`].
async fn bounded(
    call: impl Future<Output = Result<ChatResponse, Error>>,
    deadline: tokio::time::Instant,
    expired: impl FnOnce() -> Error,
    lifted_by: Option<fn(&crate::wire::ChatCompletionChunk) -> bool>,
) -> Result<ChatResponse, Error> {
    let mut response = match tokio::time::timeout_at(deadline, call).await {
        Ok(r) => r?,
        Err(_) => return Err(expired()),
    };
    if let ResponseBody::Stream(stream) = response.body {
        let mut bounded = DeadlineStream::new(stream, deadline, expired());
        bounded.lifted_by = lifted_by;
        response.body = ResponseBody::Stream(Box::pin(bounded));
    }
    Ok(response)
}

/// A stream that ends in `expired` when `deadline` passes before its end: what came
/// before stays sent, nothing comes after. Shared by [`Deadline`], [`FirstToken`] and the
/// reroute layer's own total timeout.
pub(crate) struct DeadlineStream {
    stream: crate::provider::ChunkStream,
    /// `None` once the deadline is lifted.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    expired: Option<Error>,
    /// A chunk it accepts lifts the deadline for the rest of the stream.
    lifted_by: Option<fn(&crate::wire::ChatCompletionChunk) -> bool>,
}

impl DeadlineStream {
    fn new(stream: crate::provider::ChunkStream, deadline: tokio::time::Instant, expired: Error) -> Self {
        DeadlineStream {
            stream,
            sleep: Some(Box::pin(tokio::time::sleep_until(deadline))),
            expired: Some(expired),
            lifted_by: None,
        }
    }

    /// `stream`, ended in `expired` at `deadline`.
    pub(crate) fn bound(
        stream: crate::provider::ChunkStream,
        deadline: tokio::time::Instant,
        expired: Error,
    ) -> crate::provider::ChunkStream {
        Box::pin(DeadlineStream::new(stream, deadline, expired))
    }
}

impl futures::Stream for DeadlineStream {
    type Item = Result<crate::wire::ChatCompletionChunk, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(_) = self.expired.as_ref() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(item) = self.stream.poll_next_unpin(cx) {
            match &item {
                None => self.expired = None,
                Some(Ok(chunk)) if self.lifted_by.is_some_and(|lifts| lifts(chunk)) => self.sleep = None,
                _ => {}
            }
            return Poll::Ready(item);
        }
        match self.sleep.as_mut().map(|s| s.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => {
                let expired = self.expired.take().expect("checked above");
                Poll::Ready(Some(Err(expired)))
            }
            _ => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::scripted::{ask, Scripted};
    use tower::ServiceBuilder;

    /// A retry waits at least the provider's `Retry-After`; a longer one than
    /// `max_retry_wait` is not retried at all.
    #[tokio::test(start_paused = true)]
    async fn a_retry_waits_out_a_short_retry_after_and_skips_a_long_one() {
        let provider = Scripted::new();
        provider.failing_with(Some(429));
        let policy = || RetryPolicy::new(2, 10, 0.1).max_retry_wait(Duration::from_secs(2));
        let svc = ServiceBuilder::new().retry(policy()).service(provider.clone());
        provider.asking(Some("1"));
        let start = tokio::time::Instant::now();
        assert!(ask(&svc).await.is_err());
        assert_eq!(provider.calls(), 3, "two retries");
        assert!(start.elapsed() >= Duration::from_secs(2), "{:?}", start.elapsed());

        let provider = Scripted::new();
        provider.failing_with(Some(429));
        provider.asking(Some("30"));
        let svc = ServiceBuilder::new().retry(policy()).service(provider.clone());
        let start = tokio::time::Instant::now();
        let e = ask(&svc).await.unwrap_err();
        assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
        assert_eq!(provider.calls(), 1, "not retried");
        assert!(
            start.elapsed() < Duration::from_millis(1),
            "{:?}",
            start.elapsed()
        );

        // Without the header the usual backoff: three calls in well under a second.
        let provider = Scripted::new();
        provider.failing_with(Some(503));
        let svc = ServiceBuilder::new().retry(policy()).service(provider.clone());
        let start = tokio::time::Instant::now();
        assert!(ask(&svc).await.is_err());
        assert_eq!(provider.calls(), 3);
        assert!(start.elapsed() < Duration::from_secs(1), "{:?}", start.elapsed());
    }
}
