//! `CooldownLayer`: stops asking a provider that keeps failing, for a while.
//!
//! In an outage every request would otherwise pay the provider's own failure before the
//! re-route layer asks the next one: a connect timeout, or the first-token deadline (30 s
//! by default) once per try. After `after_failures` requests in a row failed the way an
//! unwell provider fails ([`Error::is_retryable`]: the connection, a deadline, 429 or 5xx,
//! after the provider's own retries), or at least `failure_share` of its last
//! `failure_window` requests did (a provider that fails every other request never fails
//! five in a row, and still costs every second caller a failure's wait), the layer answers
//! at once with [`Error::CoolingDown`] for `cooldown`, without calling it. The re-route
//! layer fails over on that as on any outage, and records the attempt, so who was skipped
//! is on record.
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

use crate::error::{CooldownCause, Error};
use crate::provider::ChatResponse;
use crate::wire::ChatRequest;

/// Failed requests in a row that start a cooldown, by default.
pub const DEFAULT_AFTER_FAILURES: u32 = 5;

/// How long a provider is skipped, by default.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(10);

/// The longest a provider's `Retry-After` may have it skipped, by default.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// The share of the last [`DEFAULT_FAILURE_WINDOW`] requests that starts a cooldown when
/// they failed, by default: half. A provider failing that often is unwell whatever its
/// successes in between; one failing one request in five is not, and is retried instead.
pub const DEFAULT_FAILURE_SHARE: f32 = 0.5;

/// The requests the failure share is counted over, by default. The share is read only
/// once that many requests have settled since the provider was last cooled down, so a few
/// early failures cannot start a cooldown by themselves.
pub const DEFAULT_FAILURE_WINDOW: u32 = 20;

/// The longest failure window: the layer keeps the outcomes of at most this many requests.
pub const MAX_FAILURE_WINDOW: u32 = 64;

/// Skips a provider for `cooldown` after `after_failures` failed requests in a row, or after
/// `failure_share` of its last `failure_window` requests failed. Every service this layer
/// builds shares one state, so build one layer per provider.
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
    failure_share: f32,
    failure_window: u32,
    cooldown: Duration,
    max_retry_after: Duration,
    state: Arc<Mutex<State>>,
    begun: Counter,
    skipped: Counter,
}

/// The breaker, and the outcomes of the requests since it last closed.
#[derive(Debug, Clone, Copy, PartialEq)]
struct State {
    breaker: Breaker,
    recent: Outcomes,
}

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Breaker {
    /// Calls go through; `failures` in a row so far.
    Closed { failures: u32 },
    /// Calls are refused until `until`, for `cause`.
    Open { until: Instant, cause: CooldownCause },
    /// One call is out as a probe; the others are refused until it ends.
    Probing { cause: CooldownCause },
}

/// Whether each of the last requests failed, newest in the lowest bit: at most
/// [`MAX_FAILURE_WINDOW`] of them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Outcomes {
    failed: u64,
    len: u32,
}

impl Outcomes {
    fn push(&mut self, failed: bool) {
        self.failed = (self.failed << 1) | u64::from(failed);
        self.len = (self.len + 1).min(MAX_FAILURE_WINDOW);
    }

    /// How many of the last `n` requests failed, and how many there were (fewer than `n`
    /// while fewer have settled).
    fn failed_of_last(&self, n: u32) -> (u32, u32) {
        let n = n.min(self.len);
        let mask = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        ((self.failed & mask).count_ones(), n)
    }
}

impl CooldownLayer {
    /// A cooldown for `provider` (named in its errors and logs), with the defaults: 5
    /// failed requests in a row, or half of the last 20, start 10 seconds without calls.
    pub fn new(provider: &str) -> Self {
        CooldownLayer {
            shared: Shared {
                provider: Arc::from(provider),
                after_failures: DEFAULT_AFTER_FAILURES,
                failure_share: DEFAULT_FAILURE_SHARE,
                failure_window: DEFAULT_FAILURE_WINDOW,
                cooldown: DEFAULT_COOLDOWN,
                max_retry_after: DEFAULT_MAX_RETRY_AFTER,
                state: Arc::new(Mutex::new(State {
                    breaker: Breaker::Closed { failures: 0 },
                    recent: Outcomes::default(),
                })),
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

    /// Also start a cooldown when at least `share` of the last `window` requests failed (the
    /// share is read once `window` requests have settled since the breaker last closed).
    /// `window` is at most [`MAX_FAILURE_WINDOW`] (a larger one is cut to it); 0 turns this
    /// rule off, leaving the run of failures in a row. `share` is cut into (0, 1]. Default
    /// half of the last 20.
    pub fn failure_rate(mut self, share: f32, window: u32) -> Self {
        self.shared.failure_share = if share.is_nan() {
            1.0
        } else {
            share.clamp(f32::EPSILON, 1.0)
        };
        self.shared.failure_window = window.min(MAX_FAILURE_WINDOW);
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
        !matches!(self.shared.lock().breaker, Breaker::Closed { .. })
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
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a few words, never left half-written: a panic elsewhere while the
        // lock was held leaves a valid state, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a call may go out now: `Ok(true)` as the probe after a cooldown, `Ok(false)`
    /// as an ordinary call, or the error that says why not.
    fn admit(&self, now: Instant) -> Result<bool, Error> {
        let mut state = self.lock();
        match state.breaker {
            Breaker::Closed { .. } => Ok(false),
            Breaker::Open { until, cause } if now >= until => {
                state.breaker = Breaker::Probing { cause };
                tracing::info!(provider = %self.provider, "cooldown over; asking the provider again");
                Ok(true)
            }
            Breaker::Open { until, cause } => Err(self.refusal(cause, until - now)),
            // The probe's outcome decides; until then the provider is still unwell.
            Breaker::Probing { cause } => Err(self.refusal(cause, Duration::ZERO)),
        }
    }

    fn refusal(&self, cause: CooldownCause, retry_in: Duration) -> Error {
        Error::CoolingDown {
            provider: self.provider.to_string(),
            cause,
            retry_in,
        }
    }

    /// Records how a call ended: whether it failed the way an unwell provider fails, and
    /// the pause the provider asked for (`Retry-After`), which starts a cooldown of that
    /// length at once, however short the run of failures: the provider said when to come
    /// back, and every call before then would be refused the same way.
    fn settle(&self, failed: bool, asked: Option<Duration>, now: Instant) {
        let mut state = self.lock();
        if let Breaker::Closed { .. } = state.breaker {
            state.recent.push(failed);
        }
        if !failed {
            if !matches!(state.breaker, Breaker::Closed { .. }) {
                tracing::info!(provider = %self.provider, "provider answered; cooldown ended");
                state.recent = Outcomes::default();
            }
            state.breaker = Breaker::Closed { failures: 0 };
            return;
        }
        let asked = asked
            .filter(|d| !d.is_zero())
            .map(|d| d.min(self.max_retry_after));
        let cause = match state.breaker {
            Breaker::Closed { failures } => match self.cause(failures + 1, asked.is_some(), state.recent) {
                Some(cause) => cause,
                None => {
                    state.breaker = Breaker::Closed {
                        failures: failures + 1,
                    };
                    return;
                }
            },
            // A call let through before the cooldown began, ending late: the cooldown stands.
            Breaker::Open { .. } => return,
            // The probe failed: another cooldown, for the same cause unless it asked for one.
            Breaker::Probing { cause } => {
                if asked.is_some() {
                    CooldownCause::RetryAfter
                } else {
                    cause
                }
            }
        };
        let pause = asked.unwrap_or(self.cooldown);
        state.breaker = Breaker::Open {
            until: now + pause,
            cause,
        };
        state.recent = Outcomes::default();
        self.begun.inc();
        tracing::warn!(
            provider = %self.provider,
            cause = %cause,
            cooldown_ms = pause.as_millis() as u64,
            "provider not asked until its cooldown ends"
        );
    }

    /// Why a failure that makes `in_a_row` failures in a row, with `recent` outcomes (this
    /// one included), starts a cooldown, if it does: a pause the provider asked for first,
    /// then the run, then the share.
    fn cause(&self, in_a_row: u32, asked: bool, recent: Outcomes) -> Option<CooldownCause> {
        if asked {
            return Some(CooldownCause::RetryAfter);
        }
        if in_a_row >= self.after_failures {
            return Some(CooldownCause::InARow { failures: in_a_row });
        }
        let (failed, of) = recent.failed_of_last(self.failure_window);
        let window_full = self.failure_window > 0 && of == self.failure_window;
        (window_full && failed as f32 >= self.failure_share * of as f32)
            .then_some(CooldownCause::Share { failed, of })
    }

    /// A probe that never ended (its caller went away): the next call probes instead, so
    /// the breaker cannot stay shut on a probe nobody waits for.
    fn abandon_probe(&self, now: Instant) {
        let mut state = self.lock();
        if let Breaker::Probing { cause } = state.breaker {
            state.breaker = Breaker::Open { until: now, cause };
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
                cause,
                retry_in,
            }) => {
                assert_eq!((p.as_str(), cause), ("p", CooldownCause::InARow { failures: 3 }));
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

    /// A provider that fails every other request never fails 3 in a row, and half of its
    /// last 10 requests starts a cooldown once 10 have settled; 4 of 10 does not.
    #[tokio::test(start_paused = true)]
    async fn a_provider_failing_half_its_requests_cools_down() {
        let provider = Scripted::new();
        let layer = CooldownLayer::new("p")
            .after_failures(3)
            .failure_rate(0.5, 10)
            .cooldown(Duration::from_secs(10));
        let svc = layer.layer(provider.clone());
        // 4 failures among 10: under the share.
        for i in 0..10 {
            provider.failing_with((i % 5 < 2).then_some(503));
            let _ = ask(&svc).await;
        }
        assert!(!layer.is_cooling(), "4 of 10 failed");
        // Every other request fails: the window holds 5 of 10 failed at the next failure.
        for i in 0..2 {
            provider.failing_with((i % 2 == 0).then_some(503));
            let _ = ask(&svc).await;
        }
        assert!(
            !layer.is_cooling(),
            "3 of the last 10: the first ones have left the window"
        );
        let mut asked = 12;
        while !layer.is_cooling() {
            provider.failing_with((asked % 2 == 0).then_some(503));
            let _ = ask(&svc).await;
            asked += 1;
            assert!(asked < 40, "never cooled down");
        }
        assert_eq!(provider.calls(), asked);
        match ask(&svc).await {
            Err(e @ Error::CoolingDown { .. }) => {
                let Error::CoolingDown { cause, .. } = &e else {
                    unreachable!()
                };
                assert_eq!(*cause, CooldownCause::Share { failed: 5, of: 10 });
                assert!(e.to_string().contains("5 of its last 10 requests failed"), "{e}");
            }
            other => panic!("expected CoolingDown, got {other:?}"),
        }
        assert_eq!(provider.calls(), asked, "not called while cooling");
        // The probe answers: the window starts empty, so one failure does not reopen it.
        provider.failing_with(None);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(ask(&svc).await.is_ok());
        provider.failing_with(Some(503));
        let _ = ask(&svc).await;
        assert!(!layer.is_cooling());
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_of_zero_leaves_only_the_run_in_a_row() {
        let provider = Scripted::new();
        let layer = CooldownLayer::new("p").after_failures(3).failure_rate(0.5, 0);
        let svc = layer.layer(provider.clone());
        for i in 0..60 {
            provider.failing_with((i % 2 == 0).then_some(503));
            let _ = ask(&svc).await;
        }
        assert_eq!((layer.begun().get(), provider.calls()), (0, 60));
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
