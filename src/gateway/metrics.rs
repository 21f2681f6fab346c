//! Prometheus metrics of the gateway, in the text format `/metrics` serves.
//!
//! The figure a gateway operator watches first is the overhead: what the gateway adds on
//! top of waiting for providers. It is observed for single-attempt requests (the
//! no-refusal path), as the time to the response head minus the provider's own time
//! to its response, and the hold-back window's wait, which is time spent waiting for the
//! provider's tokens, not work the gateway does. Re-routed requests are measured by the
//! request duration and the re-route counter instead.

use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub model: String,
    pub stream: String,
}

/// Labels of a verdict.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    pub provider: String,
    pub verdict: String,
}

/// Labels of a re-route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RerouteLabels {
    pub from: String,
    pub to: String,
}

/// Labels of a pre-routed request (a provider call saved).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PreRouteLabels {
    /// The provider asked instead of the primary.
    pub to: String,
    /// `conversation`, `exact` or `similar`.
    pub matched: String,
}

/// Labels of a provider.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: String,
}

/// Labels of an answered status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

/// Labels of a pass-through response.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PassthroughLabels {
    /// The first path segment after `/v1/` when it is a known endpoint, else `other`.
    pub endpoint: String,
    pub status: String,
}

/// The gateway's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    pub requests: Family<RequestLabels, Counter>,
    pub responses: Family<StatusLabels, Counter>,
    pub verdicts: Family<VerdictLabels, Counter>,
    pub reroutes: Family<RerouteLabels, Counter>,
    /// Answered requests sent past a primary known to over-block them: calls saved.
    pub prerouted: Family<PreRouteLabels, Counter>,
    /// Cooldowns begun: a provider failed request after request, or too many of its recent
    /// requests, or asked for a pause, and is skipped a while.
    pub cooldowns: Family<ProviderLabels, Counter>,
    /// Calls not made to a provider in its cooldown.
    pub cooldown_skips: Family<ProviderLabels, Counter>,
    pub passthrough: Family<PassthroughLabels, Counter>,
    pub duration: Histogram,
    pub upstream: Histogram,
    pub overhead: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `refusal_guard` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("refusal_guard");
        let requests = Family::<RequestLabels, Counter>::default();
        let responses = Family::<StatusLabels, Counter>::default();
        let verdicts = Family::<VerdictLabels, Counter>::default();
        let reroutes = Family::<RerouteLabels, Counter>::default();
        let prerouted = Family::<PreRouteLabels, Counter>::default();
        let cooldowns = Family::<ProviderLabels, Counter>::default();
        let cooldown_skips = Family::<ProviderLabels, Counter>::default();
        let passthrough = Family::<PassthroughLabels, Counter>::default();
        // 10 µs to ~160 s: overheads are microseconds, requests are seconds.
        let duration = Histogram::new(exponential_buckets(1e-5, 2.0, 24));
        let upstream = Histogram::new(exponential_buckets(1e-5, 2.0, 24));
        let overhead = Histogram::new(exponential_buckets(1e-6, 2.0, 24));
        registry.register("requests", "Chat requests received", requests.clone());
        registry.register("responses", "Responses sent, by HTTP status", responses.clone());
        registry.register("verdicts", "Verdicts, by provider and class", verdicts.clone());
        registry.register(
            "reroutes",
            "Requests moved from one provider to another",
            reroutes.clone(),
        );
        registry.register(
            "prerouted",
            "Requests sent straight to a fallback because the primary over-blocked them before (provider calls saved)",
            prerouted.clone(),
        );
        registry.register(
            "provider_cooldowns",
            "Cooldowns begun: a provider failed too often, or asked for a pause, and is not asked for a while",
            cooldowns.clone(),
        );
        registry.register(
            "provider_cooldown_skips",
            "Calls not made to a provider during its cooldown (each failed over at once)",
            cooldown_skips.clone(),
        );
        registry.register(
            "passthrough_responses",
            "Pass-through responses, by endpoint and HTTP status",
            passthrough.clone(),
        );
        // The process's pass counters (the turns are the process's, so every gateway of a
        // process serves the same figures).
        let passes = crate::classify::passes::pass_counters();
        registry.register(
            "model_passes",
            "Model passes (encoder, generative guard) run by this process's verdicts",
            passes.run.clone(),
        );
        registry.register(
            "model_passes_shed",
            "Model passes not run because too many already waited for a turn (REFUSAL_GUARD_MODEL_QUEUE): \
             answers kept the cheaper tiers' verdict, refusals of unchecked requests were not re-routed",
            passes.shed.clone(),
        );
        registry.register(
            "model_passes_abandoned",
            "Model passes given up unrun while they waited for a turn, because their caller had gone \
             (a client that hung up, a timeout)",
            passes.abandoned.clone(),
        );
        registry.register(
            "model_passes_waiting",
            "Model passes waiting for a turn now (near REFUSAL_GUARD_MODEL_QUEUE, the next ones are shed)",
            passes.waiting.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to the response head",
            duration.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "Providers' time to their response head (complete answers: the whole body)",
            upstream.clone(),
        );
        registry.register(
            "overhead_seconds",
            "Gateway time minus provider time, single-attempt requests",
            overhead.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            requests,
            responses,
            verdicts,
            reroutes,
            prerouted,
            cooldowns,
            cooldown_skips,
            passthrough,
            duration,
            upstream,
            overhead,
        }
    }

    /// Registers a verdict log's counters: lines written, and lines dropped because its
    /// queue was full or a write failed.
    pub fn register_verdict_log(&self, log: &crate::observe::VerdictLog) {
        let mut registry = self.registry.lock().expect("metrics registry poisoned");
        registry.register(
            "verdict_log_lines",
            "Verdict-log lines written",
            log.written().clone(),
        );
        registry.register(
            "verdict_log_dropped",
            "Verdict-log lines dropped (queue full or write failed)",
            log.dropped().clone(),
        );
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().expect("metrics registry poisoned");
        encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }
}
