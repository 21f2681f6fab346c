//! `CooldownLayer`: stops asking a provider that keeps failing, for a while.
//!
//! In an outage every request would otherwise pay the provider's own failure before the
//! re-route layer asks the next one: a connect timeout, or the first-token deadline (30 s
//! by default) once per try. After `after_failures` requests in a row failed the way an
//! unwell provider fails ([`Error::is_retryable`]: the connection, a deadline, 429 or 5xx,
//! after the provider's own retries), the layer answers at once with
//! [`Error::CoolingDown`] for `cooldown`, without calling it. The re-route layer fails over
//! on that as on any outage, and records the attempt, so who was skipped is on record.
//! When the cooldown has passed, one request is let through as a probe: an answer ends
//! the cooldown, a failure starts another. Refusals, moderation blocks and client errors
//! are answers from a working provider: they end a run of failures. A stream that breaks
//! after its first tokens were released is not counted: the provider did answer, and
//! the re-route layer continues it elsewhere. A failure whose provider said how long to
//! wait (`Retry-After` on a 429 or 503) starts a cooldown of that length at once (at most
//! `max_retry_after`, 5 minutes by default): a rate-limited key is refused until then, so
//! each call before it would only cost a round trip and count against the limit.
//!
//! This is a circuit breaker in the usual sense (closed, open, half-open with one probe).
//! It sits outside the provider's retries, so one request's retries count once, and
//! inside the re-route layer, so a route with fallbacks skips a provider that is down
//! instead of waiting for it. A route with no fallback answers 503 with `Retry-After`
//! while its provider cools down, which is what a client can act on; set `after_failures`
//! to 0 to turn the layer off.
//!
//! ```
//! use std::time::Duration;
//! use refusal_guard::layer::{CooldownLayer, RefusalGuardLayer};
//! use refusal_guard::provider::OpenAiCompatible;
//! use tower::ServiceBuilder;
//!
//! # fn build() -> Result<(), refusal_guard::Error> {
//! let qwen = OpenAiCompatible::dashscope_intl().api_key("sk-…").build()?;
//! let cooldown = CooldownLayer::new("dashscope-intl")
//!     .after_failures(5)
//!     .cooldown(Duration::from_secs(10));
//! let service = ServiceBuilder::new()
//!     .layer(cooldown.clone())
//!     .layer(RefusalGuardLayer::new())
//!     .service(qwen);
//! // `cooldown.skipped()` counts the calls it spared the provider.
//! # Ok(()) }
//! ```

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use prometheus_client::metrics::counter::Counter;
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::error::Error;
use crate::provider::ChatResponse;
use crate::wire::ChatRequest;

/// Failed requests in a row that start a cooldown, by default.
pub const DEFAULT_AFTER_FAILURES: u32 = 5;

/// How long a provider is skipped, by default.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(10);

/// The longest a provider's `Retry-After` may have it skipped, by default.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Skips a provider for `cooldown` after `after_failures` failed requests in a row. Every
/// service this layer builds shares one state, so build one layer per provider.
#[derive(Debug, Clone)]
pub struct CooldownLayer {
    shared: Shared,
}

/// The configuration, and the breaker every service and call of one layer shares (cheap to
/// clone: the state and the counters are shared handles).
#[derive(Debug, Clone)]
struct Shared {
    provider: Arc<str>,
    after_failures: u32,
    cooldown: Duration,
    max_retry_after: Duration,
    state: Arc<Mutex<Breaker>>,
    begun: Counter,
    skipped: Counter,
}

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Breaker {
    /// Calls go through; `failures` in a row so far.
    Closed { failures: u32 },
    /// Calls are refused until `until`; `failures` is the run that opened it.
    Open { until: Instant, failures: u32 },
    /// One call is out as a probe; the others are refused until it ends.
    Probing { failures: u32 },
}

impl CooldownLayer {
    /// A cooldown for `provider` (named in its errors and logs), with the defaults: 5
    /// failed requests in a row start 10 seconds without calls.
    pub fn new(provider: &str) -> Self {
        CooldownLayer {
            shared: Shared {
                provider: Arc::from(provider),
                after_failures: DEFAULT_AFTER_FAILURES,
                cooldown: DEFAULT_COOLDOWN,
                max_retry_after: DEFAULT_MAX_RETRY_AFTER,
                state: Arc::new(Mutex::new(Breaker::Closed { failures: 0 })),
                begun: Counter::default(),
                skipped: Counter::default(),
            },
        }
    }

    /// Failed requests in a row that start a cooldown; 0 turns the layer off. Default 5.
    pub fn after_failures(mut self, n: u32) -> Self {
        self.shared.after_failures = n;
        self
    }

    /// How long the provider is skipped before a probe is let through. Default 10 s.
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.shared.cooldown = cooldown;
        self
    }

    /// The longest a provider's `Retry-After` may have it skipped (a longer one, say a daily
    /// quota's, is cut to this, after which a probe asks again). Default 5 minutes.
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.shared.max_retry_after = max;
        self
    }

    /// Counts into these counters instead of its own: cooldowns begun, and calls not made
    /// because the provider was cooling down (e.g. a gateway's per-provider metrics).
    pub fn counters(mut self, begun: Counter, skipped: Counter) -> Self {
        self.shared.begun = begun;
        self.shared.skipped = skipped;
        self
    }

    /// Cooldowns begun so far.
    pub fn begun(&self) -> &Counter {
        &self.shared.begun
    }

    /// Calls not made because the provider was cooling down.
    pub fn skipped(&self) -> &Counter {
        &self.shared.skipped
    }

    /// Whether calls are refused now (a cooldown, or a probe out).
    pub fn is_cooling(&self) -> bool {
        !matches!(*self.shared.lock(), Breaker::Closed { .. })
    }
}

impl<S> Layer<S> for CooldownLayer {
    type Service = Cooldown<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Cooldown {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`CooldownLayer`] builds.
#[derive(Debug, Clone)]
pub struct Cooldown<S> {
    inner: S,
    shared: Shared,
}

impl<S> Service<ChatRequest> for Cooldown<S>
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
        if self.shared.after_failures == 0 {
            return Box::pin(self.inner.call(request));
        }
        match self.shared.admit(Instant::now()) {
            Err(refused) => {
                self.shared.skipped.inc();
                Box::pin(futures::future::ready(Err(refused)))
            }
            Ok(probe) => {
                let mut ticket = Ticket {
                    shared: self.shared.clone(),
                    probe,
                    settled: false,
                };
                let call = self.inner.call(request);
                Box::pin(async move {
                    let result = call.await;
                    ticket.settle(&result);
                    result
                })
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Breaker> {
        // The state is a few words, never left half-written: a panic elsewhere while the
        // lock was held leaves a valid state, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a call may go out now: `Ok(true)` as the probe after a cooldown, `Ok(false)`
    /// as an ordinary call, or the error that says why not.
    fn admit(&self, now: Instant) -> Result<bool, Error> {
        let mut state = self.lock();
        match *state {
            Breaker::Closed { .. } => Ok(false),
            Breaker::Open { until, failures } if now >= until => {
                *state = Breaker::Probing { failures };
                tracing::info!(provider = %self.provider, "cooldown over; asking the provider again");
                Ok(true)
            }
            Breaker::Open { until, failures } => Err(self.refusal(failures, until - now)),
            // The probe's outcome decides; until then the provider is still unwell.
            Breaker::Probing { failures } => Err(self.refusal(failures, Duration::ZERO)),
        }
    }

    fn refusal(&self, failures: u32, retry_in: Duration) -> Error {
        Error::CoolingDown {
            provider: self.provider.to_string(),
            failures,
            retry_in,
        }
    }

    /// Records how a call ended: whether it failed the way an unwell provider fails, and
    /// the pause the provider asked for (`Retry-After`), which starts a cooldown of that
    /// length at once, however short the run of failures: the provider said when to come
    /// back, and every call before then would be refused the same way.
    fn settle(&self, failed: bool, asked: Option<Duration>, now: Instant) {
        let mut state = self.lock();
        if !failed {
            if !matches!(*state, Breaker::Closed { .. }) {
                tracing::info!(provider = %self.provider, "provider answered; cooldown ended");
            }
            *state = Breaker::Closed { failures: 0 };
            return;
        }
        let asked = asked
            .filter(|d| !d.is_zero())
            .map(|d| d.min(self.max_retry_after));
        let failures = match *state {
            Breaker::Closed { failures } if failures + 1 < self.after_failures && asked.is_none() => {
                *state = Breaker::Closed {
                    failures: failures + 1,
                };
                return;
            }
            Breaker::Closed { failures } => failures + 1,
            // A call let through before the cooldown began, ending late: the cooldown stands.
            Breaker::Open { .. } => return,
            // The probe failed: another cooldown.
            Breaker::Probing { failures } => failures,
        };
        let pause = asked.unwrap_or(self.cooldown);
        *state = Breaker::Open {
            until: now + pause,
            failures,
        };
        self.begun.inc();
        if asked.is_some() {
            tracing::warn!(
                provider = %self.provider,
                cooldown_ms = pause.as_millis() as u64,
                "provider asked for a pause (Retry-After); not asked until it ends"
            );
        } else {
            tracing::warn!(
                provider = %self.provider,
                failures,
                cooldown_ms = pause.as_millis() as u64,
                "provider failed request after request; not asked until its cooldown ends"
            );
        }
    }

    /// A probe that never ended (its caller went away): the next call probes instead, so
    /// the breaker cannot stay shut on a probe nobody waits for.
    fn abandon_probe(&self, now: Instant) {
        let mut state = self.lock();
        if let Breaker::Probing { failures } = *state {
            *state = Breaker::Open { until: now, failures };
        }
    }
}

/// One call let through, settled when it ends (or, for a probe, when it is dropped).
struct Ticket {
    shared: Shared,
    probe: bool,
    settled: bool,
}

impl Ticket {
    fn settle(&mut self, result: &Result<ChatResponse, Error>) {
        let failed = matches!(result, Err(e) if e.is_retryable());
        let asked = result.as_ref().err().and_then(Error::retry_after);
        self.shared.settle(failed, asked, Instant::now());
        self.settled = true;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.probe && !self.settled {
            self.shared.abandon_probe(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::scripted::{ask, request, Scripted};

    #[tokio::test(start_paused = true)]
    async fn a_run_of_failures_starts_a_cooldown_and_a_probe_ends_it() {
        let provider = Scripted::new();
        let layer = CooldownLayer::new("p")
            .after_failures(3)
            .cooldown(Duration::from_secs(10));
        let svc = layer.layer(provider.clone());
        provider.failing_with(Some(503));
        for _ in 0..3 {
            assert!(matches!(ask(&svc).await, Err(Error::Provider(_))));
        }
        assert_eq!(provider.calls(), 3);
        assert_eq!(layer.begun().get(), 1);
        // Cooling down: refused at once, the provider not called.
        match ask(&svc).await {
            Err(Error::CoolingDown {
                provider: p,
                failures,
                retry_in,
            }) => {
                assert_eq!((p.as_str(), failures), ("p", 3));
                assert!(retry_in > Duration::from_secs(9) && retry_in <= Duration::from_secs(10));
            }
            other => panic!("expected CoolingDown, got {other:?}"),
        }
        assert_eq!(provider.calls(), 3);
        assert_eq!(layer.skipped().get(), 1);
        assert!(layer.is_cooling());
        // The provider recovers; after the cooldown one probe goes out and closes it.
        provider.failing_with(None);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(ask(&svc).await.is_ok());
        assert_eq!(provider.calls(), 4);
        assert!(!layer.is_cooling());
        assert!(ask(&svc).await.is_ok());
        assert_eq!(provider.calls(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_starts_another_cooldown() {
        let provider = Scripted::new();
        let layer = CooldownLayer::new("p")
            .after_failures(2)
            .cooldown(Duration::from_secs(5));
        let svc = layer.layer(provider.clone());
        provider.failing_with(Some(502));
        for _ in 0..2 {
            let _ = ask(&svc).await;
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(matches!(ask(&svc).await, Err(Error::Provider(_))), "the probe");
        assert_eq!(provider.calls(), 3);
        assert_eq!(layer.begun().get(), 2);
        assert!(matches!(ask(&svc).await, Err(Error::CoolingDown { .. })));
        assert_eq!(provider.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn answers_and_client_errors_end_a_run_of_failures() {
        let provider = Scripted::new();
        let layer = CooldownLayer::new("p").after_failures(3);
        let svc = layer.layer(provider.clone());
        for round in 0..4 {
            provider.failing_with(Some(503));
            let _ = ask(&svc).await;
            let _ = ask(&svc).await;
            // A 400 is the provider working (the request was wrong), an answer too.
            provider.failing_with(if round % 2 == 0 { Some(400) } else { None });
            let _ = ask(&svc).await;
        }
        assert_eq!(layer.begun().get(), 0);
        assert_eq!(provider.calls(), 12);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_whose_caller_left_frees_the_next_call_to_probe() {
        let provider = Scripted::new();
        let layer = CooldownLayer::new("p")
            .after_failures(1)
            .cooldown(Duration::from_secs(1));
        let svc = layer.layer(provider.clone());
        provider.failing_with(Some(500));
        let _ = ask(&svc).await;
        tokio::time::advance(Duration::from_secs(1)).await;
        // The probe's future is made and dropped unpolled: its caller went away.
        let mut s = svc.clone();
        drop(s.call(request()));
        provider.failing_with(None);
        assert!(ask(&svc).await.is_ok(), "the next call probes");
        assert!(!layer.is_cooling());
    }

    /// One 429 with `Retry-After` starts a cooldown of that length at once, cut to
    /// `max_retry_after`; one without it, or with an unreadable one, counts as any failure.
    #[tokio::test(start_paused = true)]
    async fn a_retry_after_starts_a_cooldown_of_its_length_at_once() {
        let provider = Scripted::new();
        let layer = CooldownLayer::new("p")
            .after_failures(5)
            .cooldown(Duration::from_secs(10))
            .max_retry_after(Duration::from_secs(60));
        let svc = layer.layer(provider.clone());
        provider.failing_with(Some(429));
        provider.asking(Some("soon"));
        let _ = ask(&svc).await;
        assert!(!layer.is_cooling(), "an unreadable Retry-After asks for nothing");
        provider.asking(Some("30"));
        let _ = ask(&svc).await;
        match ask(&svc).await {
            Err(Error::CoolingDown { retry_in, .. }) => {
                assert!(
                    retry_in > Duration::from_secs(29) && retry_in <= Duration::from_secs(30),
                    "{retry_in:?}"
                )
            }
            other => panic!("expected CoolingDown, got {other:?}"),
        }
        assert_eq!(provider.calls(), 2);
        // Not before the pause is over, though the default cooldown (10 s) would be.
        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(matches!(ask(&svc).await, Err(Error::CoolingDown { .. })));
        provider.failing_with(None);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(ask(&svc).await.is_ok(), "the probe");
        assert_eq!(provider.calls(), 3);
        // A day's pause (a quota) is cut to max_retry_after.
        provider.failing_with(Some(429));
        provider.asking(Some("86400"));
        let _ = ask(&svc).await;
        match ask(&svc).await {
            Err(Error::CoolingDown { retry_in, .. }) => {
                assert!(retry_in <= Duration::from_secs(60), "{retry_in:?}")
            }
            other => panic!("expected CoolingDown, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn zero_turns_it_off() {
        let provider = Scripted::new();
        let layer = CooldownLayer::new("p").after_failures(0);
        let svc = layer.layer(provider.clone());
        provider.failing_with(Some(503));
        for _ in 0..20 {
            assert!(matches!(ask(&svc).await, Err(Error::Provider(_))));
        }
        assert_eq!(provider.calls(), 20);
        assert_eq!(layer.begun().get(), 0);
    }
}
