//! `RerouteLayer`: sends what a provider's policy blocked to the next provider.
//!
//! ```
//! use refusal_guard::layer::{RefusalGuardLayer, RerouteLayer, Route};
//! use refusal_guard::provider::{ModelMap, OpenAiCompatible};
//! use tower::{Layer, ServiceBuilder};
//!
//! # fn build() -> Result<(), refusal_guard::Error> {
//! let guard = RefusalGuardLayer::new();
//! let qwen = OpenAiCompatible::dashscope_intl().api_key("sk-…").build()?;
//! let openai = OpenAiCompatible::builder("openai", "https://api.openai.com/v1").api_key("sk-…").build()?;
//! let service = ServiceBuilder::new()
//!     .layer(RerouteLayer::new().fallback(
//!         Route::new("openai", guard.layer(openai)).models(ModelMap::new().with("*", "gpt-4o-mini")),
//!     ))
//!     .layer(guard)
//!     .service(qwen);
//! # Ok(()) }
//! ```
//!
//! The layer wraps the primary (normally a [`crate::layer::RefusalGuard`] around a
//! provider client) and holds an ordered list of fallback [`Route`]s, each guarded the
//! same way. For each request it tries the primary, then the fallbacks in order, until
//! one gives an answer whose verdict is not in the re-route set:
//! - a verdict in the set (by default policy refusals, evasions, provider blocks and
//!   empty answers) moves on to the next provider; safety refusals and inabilities are
//!   returned as they are unless the operator adds them to the set: a justified refusal
//!   is never laundered to a laxer provider by default;
//! - a failure that another provider may not share (transport errors, timeouts, 429 and
//!   5xx after the provider's own retries) fails over too; retries on the same provider
//!   are tower's `Retry` with a budget (see [`crate::layer::failover`]), never here;
//! - a policy block is not retried on the same provider, since it repeats; the opt-in
//!   [`RerouteLayer::resample_below`] re-asks the same provider with a new seed once when
//!   the logprob evidence says the refusal was a coin flip;
//! - mid-stream, when content has already reached the caller and the stream is then cut
//!   (an output-stage block, a refusal turn, a dropped connection), the next provider
//!   is asked to continue the released text (see [`continuation`]) and the caller sees
//!   one answer; the final chunk carries a `refusal_guard` field saying what happened;
//! - operators may opt Llama Guard hazard categories in ([`RerouteLayer::reroute_categories`],
//!   e.g. `S6` specialized advice): a safety refusal whose categories are *all* opted in is
//!   re-routed like a policy refusal; one with no categories, or any category not opted in,
//!   is not. None is opted in by default, and opting in all fourteen at once is refused
//!   (that is `reroute_on` with [`VerdictClass::SafetyRefusal`], said plainly);
//! - pre-routing (see [`preroute`]): a request the primary over-blocked before (an input
//!   block or a policy refusal of the same or a near-identical prompt, or a later turn of
//!   a conversation that tripped input moderation) goes straight to the fallback that
//!   answered it, skipping the doomed call; never a request whose prompt is judged
//!   harmful; the primary is then asked last, should every fallback fail. The response
//!   then carries a [`PreRouted`] extension and the store counts the
//!   call saved. On by default: the harm gate and the similarity threshold keep it to
//!   requests a primary has already refused as benign, the TTL hands the primary the
//!   request again after its policy may have changed, and it saves a full round trip
//!   (often seconds) per repeat;
//! - every attempt is recorded in the [`Attempts`] extension: provider, model, verdict,
//!   latency, tokens and estimated cost; when no provider answers, the error carries the
//!   same record ([`Error::Route`]), so who was asked is known either way;
//! - when every provider refuses, the most informative outcome comes back: the primary's
//!   original complete answer (with its verdict), else its refusal or error; a provider
//!   skipped in its cooldown ([`crate::layer::CooldownLayer`]) informs least, so its
//!   error comes back only when every provider was cooling down.

mod attempts;
pub mod continuation;
pub mod preroute;
mod stream;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};

pub use attempts::{Attempt, Attempts, Prices};
pub use continuation::ContinuationStyle;
pub use preroute::{PreRouteConfig, PreRouteStore, PreRouted};

use crate::error::{Error, Refusal, RefusalRest, RouteError};
use crate::layer::failover::DeadlineStream;
use crate::layer::StreamVerdict;
use crate::provider::{ChatResponse, ModelMap, ResponseBody};
use crate::verdict::{Verdict, VerdictClass, VerdictKind, VerdictSet};
use crate::wire::{ChatRequest, Usage};

/// A chat service behind a type-erased, cloneable handle.
pub type ChatService = BoxCloneSyncService<ChatRequest, ChatResponse, Error>;

/// A provider to re-route to: a name, a (normally guarded) service, and its model names.
#[derive(Clone)]
pub struct Route {
    name: Arc<str>,
    service: ChatService,
    models: ModelMap,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("name", &self.name)
            .field("models", &self.models)
            .finish_non_exhaustive()
    }
}

impl Route {
    /// A route called `name` to `service`.
    pub fn new<S>(name: impl Into<String>, service: S) -> Self
    where
        S: Service<ChatRequest, Response = ChatResponse, Error = Error> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
    {
        Route {
            name: Arc::from(name.into()),
            service: BoxCloneSyncService::new(service),
            models: ModelMap::new(),
        }
    }

    /// Maps the caller's model names to this provider's.
    pub fn models(mut self, models: ModelMap) -> Self {
        self.models = models;
        self
    }

    /// The route's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

#[derive(Debug, Clone)]
struct RerouteConfig {
    /// The primary's name in attempts, logs and metrics, when the operator gave one.
    primary: Option<Arc<str>>,
    fallbacks: Vec<Route>,
    reroute_on: VerdictSet,
    continue_mid_stream: bool,
    continuation: ContinuationStyle,
    min_overlap: usize,
    resample_below: Option<f64>,
    preroute: Option<Arc<PreRouteStore>>,
    /// The guard's models, asked about a request before it is pre-routed on a similar
    /// (not the same) request's record.
    preroute_judge: Option<Arc<crate::judge::Models>>,
    /// Llama Guard codes (`S6`) whose safety refusals are re-routed when all of a
    /// verdict's categories are among them.
    reroute_categories: Vec<String>,
    prices: HashMap<String, Prices>,
    /// One deadline over the whole exchange, every provider and the stream to its end.
    total_timeout: Option<Duration>,
}

/// A layer that re-routes policy-driven blocks (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct RerouteLayer {
    config: Arc<RerouteConfig>,
}

impl Default for RerouteLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RerouteLayer {
    /// No fallbacks yet, the policy-driven re-route set, mid-stream continuation on,
    /// pre-routing on with [`PreRouteConfig::default`] and the default guard's models
    /// ([`crate::judge::Models::embedded`]) asked about similar matches, no category opted
    /// in, no resampling.
    pub fn new() -> Self {
        RerouteLayer {
            config: Arc::new(RerouteConfig {
                primary: None,
                fallbacks: Vec::new(),
                reroute_on: VerdictSet::policy_driven(),
                continue_mid_stream: true,
                continuation: ContinuationStyle::default(),
                min_overlap: 8,
                resample_below: None,
                preroute: Some(Arc::new(PreRouteStore::new(PreRouteConfig::default()))),
                preroute_judge: Some(Arc::new(crate::judge::Models::embedded())),
                reroute_categories: Vec::new(),
                prices: HashMap::new(),
                total_timeout: None,
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut RerouteConfig)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// The primary's name, as attempts, logs and metrics give it (a fallback's is its
    /// [`Route`]'s). Without it, the name the primary reports (its response's
    /// [`ProviderName`](crate::provider::ProviderName), its refusal's or error's provider),
    /// else `primary`; set it where the primary's failures may name no provider (another
    /// layer's error) or a different one.
    pub fn primary(self, name: impl Into<String>) -> Self {
        let name: Arc<str> = Arc::from(name.into());
        self.edit(|c| c.primary = Some(name))
    }

    /// Bounds the whole exchange by one deadline: every provider tried, then the stream
    /// to its end. A provider still answering when it passes is recorded in the
    /// [`Attempts`] as timed out and no other is asked (no time is left); the error
    /// ([`Error::Route`] around an [`Error::Timeout`] of `what: "total"`) keeps every
    /// attempt, which a [`DeadlineLayer`](crate::layer::failover::DeadlineLayer) put
    /// outside this layer would drop with the future. A stream past it ends in that
    /// error after the text already sent. Off by default (the gateway sets each route's
    /// `total_timeout_ms`).
    pub fn total_timeout(self, total: Duration) -> Self {
        self.edit(|c| c.total_timeout = Some(total))
    }

    /// Adds a fallback, tried after the primary and the fallbacks added before it.
    pub fn fallback(self, route: Route) -> Self {
        self.edit(|c| c.fallbacks.push(route))
    }

    /// The verdict classes that move a request on to the next provider. Adding
    /// [`VerdictClass::SafetyRefusal`] here is the operator's explicit opt-in to send
    /// requests that one provider judged harmful to another.
    pub fn reroute_on(self, classes: VerdictSet) -> Self {
        self.edit(|c| c.reroute_on = classes)
    }

    /// Whether a stream cut after content reached the caller continues on the next
    /// provider. Default on.
    pub fn continue_mid_stream(self, yes: bool) -> Self {
        self.edit(|c| c.continue_mid_stream = yes)
    }

    /// How a continuation is asked for.
    pub fn continuation(self, style: ContinuationStyle) -> Self {
        self.edit(|c| c.continuation = style)
    }

    /// Re-asks the same provider once, with a new seed, when a refusal's logprob evidence
    /// says the model entered it with probability below `probability`. Off by default.
    pub fn resample_below(self, probability: f64) -> Self {
        self.edit(|c| c.resample_below = Some(probability))
    }

    /// Pre-routing with a store of your own (shared between layers if you like), or
    /// `None` to turn it off.
    pub fn preroute(self, store: Option<Arc<PreRouteStore>>) -> Self {
        self.edit(|c| c.preroute = store)
    }

    /// The guard's models (its prompt tiers and harm policy: pass the guard's own, e.g. the
    /// `Decision::Learned` of its [`crate::detect::Detectors`]), asked before a request is
    /// pre-routed on the record of a *similar* request: it is pre-routed only when they judge
    /// it clearly benign ([`crate::judge::HarmPolicy::clears_preroute`]), so pre-routing
    /// never sends on a request that the guard would not re-route after a refusal. Without
    /// them only the store's embedder judges its harm, which for the default embedder is the
    /// embedded n-gram prompt head below [`PreRouteConfig::max_harm`]. Exact and conversation
    /// matches are not asked again: their prompt was judged when it was stored. The judgment
    /// costs what the guard's prompt tier costs (an encoder: milliseconds) and is paid only
    /// on a similar match, which also saves the primary's call. Default: the embedded models,
    /// the default guard's; a guard with other tiers should pass its own. `None` leaves the
    /// store's embedder alone to judge.
    pub fn preroute_judge(self, models: Option<Arc<crate::judge::Models>>) -> Self {
        self.edit(|c| c.preroute_judge = models)
    }

    /// The pre-route store, to read its counters.
    pub fn preroute_store(&self) -> Option<&Arc<PreRouteStore>> {
        self.config.preroute.as_ref()
    }

    /// Opts Llama Guard hazard categories in for re-routing (codes `S1`..`S14` or their
    /// names, e.g. `"S6"` or `"Specialized Advice"`): a safety refusal whose categories
    /// are all opted in is re-routed. Unknown names, and all fourteen at once, are errors.
    pub fn reroute_categories<I, T>(self, categories: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let codes = hazard_codes(categories)?;
        Ok(self.edit(|c| c.reroute_categories = codes))
    }

    /// Prices of a provider, by its name, for the cost of each attempt.
    pub fn prices(self, provider: impl Into<String>, prices: Prices) -> Self {
        self.edit(|c| {
            c.prices.insert(provider.into(), prices);
        })
    }
}

impl<S> Layer<S> for RerouteLayer {
    type Service = Reroute<S>;

    fn layer(&self, primary: S) -> Self::Service {
        Reroute {
            primary,
            config: self.config.clone(),
        }
    }
}

/// The service [`RerouteLayer`] builds.
#[derive(Debug, Clone)]
pub struct Reroute<S> {
    primary: S,
    config: Arc<RerouteConfig>,
}

impl<S> Service<ChatRequest> for Reroute<S>
where
    S: Service<ChatRequest, Response = ChatResponse, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = ChatResponse;
    type Error = Error;
    type Future = BoxFuture<'static, Result<ChatResponse, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.primary.poll_ready(cx)
    }

    fn call(&mut self, request: ChatRequest) -> Self::Future {
        // The service that was polled ready goes into the future; a clone stays behind.
        let clone = self.primary.clone();
        let primary = std::mem::replace(&mut self.primary, clone);
        let run = Run {
            deadline: self.config.total_timeout.map(|t| tokio::time::Instant::now() + t),
            config: self.config.clone(),
            attempts: Attempts::default(),
            request,
        };
        Box::pin(run.start(primary))
    }
}

/// What the attempts of one request left behind to return when every provider refused.
enum Outcome {
    Response(Box<ChatResponse>),
    Refused(Box<Refusal>),
    Failed(Error),
}

/// One request's way through the providers.
pub(crate) struct Run {
    config: Arc<RerouteConfig>,
    attempts: Attempts,
    request: ChatRequest,
    /// When the route's [`RerouteLayer::total_timeout`] passes, if it has one.
    deadline: Option<tokio::time::Instant>,
}

impl Run {
    /// The request's prompt tokens, estimated ([`estimate_tokens`] of every message's text)
    /// for a provider that reports no usage: the prompt is sent to every provider tried.
    pub(crate) fn estimated_prompt_tokens(&self) -> u64 {
        self.request
            .messages
            .iter()
            .filter_map(|m| m.content.as_ref())
            .map(|c| estimate_tokens(&c.text()))
            .sum()
    }

    fn provider_count(&self) -> usize {
        self.config.fallbacks.len() + 1
    }

    /// Whether a verdict moves the request on: its class is in the re-route set, or it is
    /// a safety refusal whose categories are all opted in.
    pub(crate) fn reroutes(&self, verdict: &Verdict) -> bool {
        if self.config.reroute_on.contains(verdict.class()) {
            return true;
        }
        match &verdict.kind {
            VerdictKind::SafetyRefusal { categories } => {
                !categories.is_empty()
                    && categories.iter().all(|c| {
                        hazard_code(c).is_some_and(|code| self.config.reroute_categories.contains(&code))
                    })
            }
            _ => false,
        }
    }

    /// The provider a remembered over-block sends this request to, if any.
    async fn prerouted(&self) -> Option<(usize, PreRouted)> {
        let store = self.config.preroute.as_ref()?;
        let hit = store
            .lookup(&self.request.messages)
            .filter(|h| h.provider > 0 && h.provider < self.provider_count())?;
        let to = self.route_name(hit.provider).unwrap_or("fallback").to_string();
        if let (preroute::PreRouteMatch::Similar, Some(models)) = (hit.matched, &self.config.preroute_judge) {
            // The text the guard judges; never blank here (a blank prompt matches nothing).
            let prompt = self.request.last_user_text()?;
            if models.clears_preroute(&prompt).await.is_none() {
                tracing::info!(
                    to = %to,
                    similarity = hit.similarity,
                    "not pre-routed: similar to an over-blocked request, but the guard does not judge it clearly benign"
                );
                store.count_declined();
                return None;
            }
        }
        tracing::info!(
            to = %to,
            matched = hit.matched.as_str(),
            similarity = hit.similarity,
            harmful = hit.harmful,
            "pre-routed: the primary over-blocked this request before; not asked again"
        );
        let note = PreRouted {
            to,
            matched: hit.matched,
            similarity: hit.similarity,
            harmful: hit.harmful,
        };
        Some((hit.provider, note))
    }

    /// The request as provider `index` should see it.
    fn request_for(&self, index: usize, request: &ChatRequest) -> ChatRequest {
        let mut r = request.clone();
        if let Some(route) = index.checked_sub(1).map(|i| &self.config.fallbacks[i]) {
            r.model = route.models.map(&request.model).to_string();
        }
        r
    }

    fn route_name(&self, index: usize) -> Option<&str> {
        index.checked_sub(1).map(|i| self.config.fallbacks[i].name())
    }

    /// The one place that names provider `index` for attempts, spans, logs and metrics:
    /// a fallback by its route, the primary by its configured name, else by the name it
    /// `reported` (on its response, refusal or error), else `primary`. Configured names
    /// win so that every path (answer, refusal, failure) names a provider the same way.
    pub(crate) fn provider_name<'a>(&'a self, index: usize, reported: Option<&'a str>) -> &'a str {
        self.route_name(index)
            .or(self.config.primary.as_deref())
            .or(reported)
            .unwrap_or("primary")
    }

    async fn call_fallback(&self, index: usize, request: ChatRequest) -> Result<ChatResponse, Error> {
        let route = &self.config.fallbacks[index - 1];
        route.service.clone().oneshot(request).await
    }

    fn record(&self, mut attempt: Attempt) -> usize {
        if let (Some(usage), Some(prices)) = (&attempt.usage, self.config.prices.get(&attempt.provider)) {
            attempt.cost = Some(prices.cost(usage));
        }
        // A refusal's text and evidence may quote the answer: only its class is logged.
        match (&attempt.error, attempt.verdict) {
            (Some(_), Some(v)) => {
                tracing::info!(provider = %attempt.provider, verdict = %v, "provider refused")
            }
            (Some(e), None) => {
                tracing::warn!(provider = %attempt.provider, error = %e, "provider attempt failed")
            }
            _ => {}
        }
        self.attempts.push(attempt)
    }

    fn attempt(&self, index: usize, reported: Option<&str>, model: &str, latency: Duration) -> Attempt {
        Attempt {
            provider: self.provider_name(index, reported).to_string(),
            model: model.to_string(),
            verdict: None,
            error: None,
            latency,
            continuation: false,
            resample: false,
            usage: None,
            usage_estimated: false,
            cost: None,
        }
    }

    async fn start<S>(self, primary: S) -> Result<ChatResponse, Error>
    where
        S: Service<ChatRequest, Response = ChatResponse, Error = Error> + Clone + Send + 'static,
        S::Future: Send + 'static,
    {
        let (first, prerouted) = match self.prerouted().await {
            Some((index, note)) => (index, Some(note)),
            None => (0, None),
        };
        let mut best: Option<Outcome> = None;
        // How the primary over-blocked this request, when it did.
        let mut over_blocked = None;
        let mut resampled = false;
        let mut request = self.request.clone();
        // A pre-routed request asks the primary last, in case every fallback fails now.
        let order: Vec<usize> = (first..self.provider_count()).chain(0..first).collect();
        let mut pos = 0;
        while let Some(&index) = order.get(pos) {
            let sent = self.request_for(index, &request);
            let model = sent.model.clone();
            let started = Instant::now();
            let provider = self.provider_name(index, None);
            let span = tracing::info_span!("attempt", provider, %model);
            let call: BoxFuture<'_, Result<ChatResponse, Error>> = match index {
                0 => Box::pin(tracing::Instrument::instrument(
                    primary.clone().oneshot(sent),
                    span,
                )),
                _ => Box::pin(tracing::Instrument::instrument(
                    self.call_fallback(index, sent),
                    span,
                )),
            };
            let result = match self.deadline {
                None => call.await,
                Some(deadline) => match tokio::time::timeout_at(deadline, call).await {
                    Ok(result) => result,
                    Err(_) => {
                        // Out of time: this provider is recorded as timed out, and none
                        // after it is asked.
                        let error = self.expired(self.provider_name(index, None).to_string());
                        let mut attempt = self.attempt(index, None, &model, started.elapsed());
                        attempt.error = Some(error.to_string());
                        self.record(attempt);
                        return Err(self.failed(error));
                    }
                },
            };
            let latency = started.elapsed();
            // A provider skipped in its cooldown said nothing about this request: whatever a
            // later provider says is the more informative outcome.
            if matches!(&best, Some(Outcome::Failed(e)) if e.cooling_down_for().is_some())
                && !matches!(&result, Err(e) if e.cooling_down_for().is_some())
            {
                best = None;
            }
            match result {
                Ok(mut response) => {
                    let full = response.extensions.get::<Verdict>();
                    let rerouting = full.is_some_and(|v| self.reroutes(v));
                    if index == 0 {
                        over_blocked = full.and_then(preroute::over_block);
                    }
                    let verdict = full.map(Verdict::class);
                    let mut attempt = self.attempt(index, response.provider(), &model, latency);
                    attempt.verdict = verdict;
                    attempt.resample = resampled && index == 0;
                    if let ResponseBody::Complete(c) = &response.body {
                        (attempt.usage, attempt.usage_estimated) = usage_of(
                            c.usage.as_ref(),
                            self.estimated_prompt_tokens(),
                            estimate_tokens(&c.text()),
                        );
                    }
                    let at = self.record(attempt);
                    if rerouting && pos + 1 < order.len() {
                        // Only an observe-only guard lets such an answer through: nothing
                        // has reached the caller yet, so the next provider can still answer.
                        best.get_or_insert(Outcome::Response(Box::new(response)));
                        pos += 1;
                        continue;
                    }
                    let answered = verdict.is_none_or(|v| v == VerdictClass::Answer);
                    if let (Some(why), Some(store), true) = (over_blocked, &self.config.preroute, answered) {
                        if index > 0 {
                            store.remember(&self.request.messages, index, why);
                        }
                    }
                    if let (Some(note), Some(store), true) = (prerouted, &self.config.preroute, index > 0) {
                        // Counted once answered: a fallback that fails now sends the
                        // request back to the primary, and then nothing was saved.
                        store.count_saved();
                        response.extensions.insert(note);
                    }
                    return Ok(self.finish(response, index, at));
                }
                Err(Error::Refused(refusal)) if self.reroutes(&refusal.verdict) => {
                    let mut attempt = self.attempt(index, refusal.provider.as_deref(), &model, latency);
                    attempt.verdict = Some(refusal.verdict.class());
                    attempt.error = Some(refusal.verdict.to_string());
                    attempt.resample = resampled && index == 0;
                    self.record(attempt);
                    if index == 0 {
                        over_blocked = preroute::over_block(&refusal.verdict);
                    }
                    if !resampled && self.coin_flip(&refusal.verdict) {
                        resampled = true;
                        request.seed = Some(fresh_seed());
                        best.get_or_insert(Outcome::Refused(refusal));
                        continue;
                    }
                    best.get_or_insert(Outcome::Refused(refusal));
                }
                Err(error) if fails_over(&error) => {
                    let mut attempt = self.attempt(index, error.provider(), &model, latency);
                    attempt.error = Some(error.to_string());
                    self.record(attempt);
                    best.get_or_insert(Outcome::Failed(error));
                }
                Err(error) => {
                    let mut attempt = self.attempt(index, error.provider(), &model, latency);
                    attempt.verdict = error.as_refusal().map(|r| r.verdict.class());
                    attempt.error = Some(error.to_string());
                    self.record(attempt);
                    return Err(self.failed(error));
                }
            }
            pos += 1;
            // A request for a fresh seed only ever applies to the provider that flipped.
            request.seed = self.request.seed;
        }
        self.exhausted(best)
    }

    /// The error of a route whose [`RerouteLayer::total_timeout`] passed while `provider`
    /// was being waited for.
    fn expired(&self, provider: String) -> Error {
        Error::Timeout {
            provider,
            what: "total",
            after: self.config.total_timeout.unwrap_or_default(),
        }
    }

    /// Whether a refusal was a low-confidence coin flip that a new sample may answer.
    fn coin_flip(&self, verdict: &Verdict) -> bool {
        let Some(limit) = self.config.resample_below else {
            return false;
        };
        verdict
            .evidence
            .iter()
            .filter(|e| e.source == "logprobs" && !e.tokens.is_empty() && e.suggests != VerdictClass::Answer)
            .map(|e| e.tokens.iter().map(|t| t.logprob).sum::<f64>().exp())
            .any(|p| p < limit)
    }

    /// Every provider refused or failed: the most informative outcome.
    fn exhausted(self, best: Option<Outcome>) -> Result<ChatResponse, Error> {
        match best {
            Some(Outcome::Response(mut r)) => {
                r.extensions.insert(self.attempts);
                Ok(*r)
            }
            Some(Outcome::Refused(refusal)) => match *refusal {
                Refusal {
                    verdict,
                    completion: Some(completion),
                    ..
                } => {
                    let mut r = ChatResponse::complete(completion);
                    r.extensions.insert(verdict);
                    r.extensions.insert(self.attempts);
                    Ok(r)
                }
                refusal => Err(self.failed(Error::Refused(Box::new(refusal)))),
            },
            Some(Outcome::Failed(e)) => Err(self.failed(e)),
            None => Err(Error::invalid("route", "no provider was tried")),
        }
    }

    /// The route's error, with its attempts: who was asked travels with an error as it
    /// travels with an answer (the [`Attempts`] extension).
    fn failed(self, error: Error) -> Error {
        let error = match (error, self.deadline) {
            // The unread rest of a refused stream reaches the caller after this returns:
            // the route's deadline bounds it as it bounds an answer.
            (Error::Refused(mut refusal), Some(at)) => {
                if let Some(rest) = refusal.rest.as_ref().and_then(RefusalRest::take) {
                    let expired = self.expired(format!("route for {}", self.request.model));
                    refusal.rest = Some(RefusalRest::new(DeadlineStream::bound(rest, at, expired)));
                }
                Error::Refused(refusal)
            }
            (error, _) => error,
        };
        Error::Route(Box::new(RouteError {
            error,
            attempts: self.attempts,
        }))
    }

    /// The answer goes back to the caller, with the attempts and, for streams, the watch
    /// that continues a cut stream elsewhere.
    fn finish(self, mut response: ChatResponse, index: usize, attempt: usize) -> ChatResponse {
        response.extensions.insert(self.attempts.clone());
        if let ResponseBody::Stream(upstream) = response.body {
            // The verdict over the whole stream may come from a later provider, so the
            // caller's handle is fed by the continuing stream.
            let source = response.extensions.remove::<StreamVerdict>();
            let (tx, handle) = StreamVerdict::channel();
            response.extensions.insert(handle);
            let deadline = self.deadline;
            let expired = self.expired(format!("route for {}", self.request.model));
            let continuing = stream::Continuing::start(self, upstream, index, attempt, source, tx);
            response.body = ResponseBody::Stream(match deadline {
                Some(at) => DeadlineStream::bound(continuing, at, expired),
                None => continuing,
            });
        }
        response
    }
}

/// The Llama Guard 3 code (`S6`) of a hazard category given by code or name
/// (`"Specialized Advice"`), case-insensitively; `None` for anything else (a Qwen3Guard
/// category, a typo).
pub fn hazard_code(name: &str) -> Option<String> {
    let name = name.trim();
    crate::classify::llama_guard::Variant::Guard3_8B
        .categories()
        .into_iter()
        .find(|c| c.code.eq_ignore_ascii_case(name) || c.name.eq_ignore_ascii_case(name))
        .map(|c| c.code)
}

/// Hazard categories as codes, checked: unknown names and all of them at once are errors.
pub(crate) fn hazard_codes<I, T>(categories: I) -> Result<Vec<String>, Error>
where
    I: IntoIterator<Item = T>,
    T: AsRef<str>,
{
    let mut codes: Vec<String> = Vec::new();
    for c in categories {
        let c = c.as_ref();
        let code = hazard_code(c).ok_or_else(|| {
            Error::invalid(
                "reroute_categories",
                format!(
                    "unknown hazard category {c:?}: expected a Llama Guard 3 code S1..S14 or its name \
                     (e.g. \"S6\" or \"Specialized Advice\")"
                ),
            )
        })?;
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    let all = crate::classify::llama_guard::Variant::Guard3_8B
        .categories()
        .len();
    if codes.len() == all {
        return Err(Error::invalid(
            "reroute_categories",
            format!(
                "all {all} hazard categories are opted in: that sends every harmful request on to \
                 another provider; opt in only the categories you mean (e.g. S6), or add \
                 safety_refusal to the re-route set if you really mean all"
            ),
        ));
    }
    Ok(codes)
}

/// Whether an error is one that another provider may not share.
fn fails_over(error: &Error) -> bool {
    match error {
        Error::Transport { .. } | Error::Timeout { .. } | Error::Truncated { .. } => true,
        Error::Malformed { .. } | Error::TooLarge { .. } => true,
        Error::CoolingDown { .. } => true,
        Error::Provider(e) => e.is_retryable() || e.status == 401 || e.status == 403 || e.status == 404,
        Error::Other(_) => true,
        // A route nested in a route: its own providers are spent, but another may answer.
        Error::Route(r) => fails_over(&r.error),
        _ => false,
    }
}

/// An attempt's usage: the provider's, else estimated (`true`) from the request it was
/// sent (`prompt_tokens`, see [`Run::estimated_prompt_tokens`]) and `completion_tokens`,
/// the answer's tokens (counted by the stream, or [`estimate_tokens`] of a complete text).
fn usage_of(reported: Option<&Usage>, prompt_tokens: u64, completion_tokens: u64) -> (Option<Usage>, bool) {
    match reported {
        Some(u) => (Some(u.clone()), false),
        None => (
            Some(Usage {
                prompt_tokens,
                completion_tokens,
                total_tokens: prompt_tokens + completion_tokens,
                ..Default::default()
            }),
            true,
        ),
    }
}

/// Tokens of a text by the usual rule of thumb (four characters a token), for a usage the
/// provider did not report: logs and cost estimates need a figure, not an exact one.
/// Chinese runs closer to one or two characters a token, so this errs low there.
fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

fn fresh_seed() -> i64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    ((nanos ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)) >> 1) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hazard_categories_by_code_or_name() {
        assert_eq!(hazard_code(" s6 ").as_deref(), Some("S6"));
        assert_eq!(hazard_code("specialized advice").as_deref(), Some("S6"));
        assert_eq!(hazard_code("Politically Sensitive Topics"), None);
        assert_eq!(
            hazard_codes(["S6", "Specialized Advice", "S7"]).unwrap(),
            vec!["S6", "S7"]
        );
        let e = hazard_codes(["S6", "Medical"]).unwrap_err().to_string();
        assert!(e.contains("\"Medical\""), "{e}");
        let all: Vec<String> = (1..=14).map(|i| format!("S{i}")).collect();
        let e = hazard_codes(&all).unwrap_err().to_string();
        assert!(e.contains("all 14"), "{e}");
    }
}
