//! `refusal-guard serve`: a ready OpenAI-compatible gateway.
//!
//! Routes: `POST /v1/chat/completions` (streamed or not), `GET /v1/models`, `/healthz`,
//! `/metrics`; every other `/v1/…` path passes through to a provider
//! ([`super::routes::passthrough`]). Each configured route is a [`RerouteLayer`] over its
//! primary provider, every provider wrapped by [`ProviderPolicy::stack`] (retry with a
//! budget, a first-token deadline, the guard), with the route's total budget kept by the
//! re-route layer ([`RerouteLayer::total_timeout`]). With `[verdict_log]`,
//! each judged exchange is also written to the verdict log ([`crate::observe::verdict_log`]).
//!
//! Auth, limits and the order of everything a request passes through are assembled in
//! [`super::stack`]; this file builds the gateway from its configuration and holds the
//! handlers. Shutdown stops accepting, lets open streams finish for
//! `shutdown_grace_secs`, then cuts them. Every error leaves in OpenAI's error JSON, so
//! SDKs raise their typed exceptions.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::{Extension, Router};
use http::{header, HeaderMap, Response, StatusCode, Uri};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tracing::Instrument;

use super::config::{GatewayConfig, ProviderConfig};
use super::metrics::{Metrics, PreRouteLabels, ProviderLabels, RequestLabels, RerouteLabels, VerdictLabels};
use super::respond::{error_response, respond};
use super::routes::passthrough::Passthrough;
use super::stack::{self, RecordSlot};
use crate::error::Error;
use crate::layer::failover::{ProviderPolicy, RetryPolicy};
use crate::layer::reroute::ChatService;
use crate::layer::CooldownLayer;
use crate::layer::{
    Attempt, Attempts, HoldBack, PreRouteStore, PreRouted, RefusalGuardLayer, RerouteLayer, Route,
};
use crate::observe::request::{ErrorCode, RequestRecord};
use crate::observe::{Exchange, VerdictLog};
use crate::provider::{ApiKey, ChatResponse, ModelMap, OpenAiCompatible, UpstreamTiming};
use crate::wire::ChatRequest;

/// The gateway: its routes, limits and metrics.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    routes: Vec<(String, ChatService)>,
    client_keys: Option<Vec<ApiKey>>,
    metrics: Metrics,
    permits: Arc<Semaphore>,
    max_body: usize,
    grace: Duration,
    passthrough: Passthrough,
    verdict_log: Option<VerdictLog>,
    edge: super::edge::EdgeLimits,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let models: Vec<&str> = self.inner.routes.iter().map(|(m, _)| m.as_str()).collect();
        f.debug_struct("Gateway")
            .field("routes", &models)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Builds the gateway: provider clients, guards, routes. Fails with a clear error for
    /// a provider whose key variable is named but unset, or a client key variable that
    /// holds no key.
    pub fn from_config(config: &GatewayConfig) -> Result<Self, Error> {
        let log = match &config.verdict_log {
            Some(c) => Some(VerdictLog::open(c).map_err(|e| {
                Error::invalid(
                    "configuration",
                    format!("verdict_log.dir {}: {e}", c.dir.display()),
                )
            })?),
            None => None,
        };
        Self::build(config, log)
    }

    /// As [`Gateway::from_config`], with a verdict log the caller built (a redaction hook,
    /// another sink) in place of the configuration's `[verdict_log]`.
    pub fn with_verdict_log(config: &GatewayConfig, log: VerdictLog) -> Result<Self, Error> {
        Self::build(config, Some(log))
    }

    fn build(config: &GatewayConfig, verdict_log: Option<VerdictLog>) -> Result<Self, Error> {
        let specs = crate::classify::tiers::resolve_specs(&config.guard.tiers);
        let detectors = crate::classify::tiers::detectors_with(&specs)
            .map_err(|e| Error::invalid("configuration", format!("[guard] tiers: {e}")))?;
        let detectors = crate::classify::tiers::with_combiner(detectors, &config.guard.combiner)
            .map_err(|e| Error::invalid("configuration", format!("[guard] combiner: {e}")))?;
        // Pre-routing on a similar request asks the guard's own prompt tiers and policy.
        let preroute_judge = match detectors.decision() {
            crate::judge::Decision::Learned(models) => Some(models.clone()),
            crate::judge::Decision::Rules { .. } => None,
        };
        let guard = RefusalGuardLayer::new()
            .detectors(detectors)
            .window_tokens(config.guard.window_tokens)
            .window_extension(config.guard.window_extension_tokens)
            .window_duration(Duration::from_millis(config.guard.window_ms))
            .decide_confidence(config.guard.decide_confidence)
            .stop_on(config.policy.reroute)
            .observe_only(config.guard.observe_only)
            .judge_prompts_early(config.guard.judge_prompts_early);
        let metrics = Metrics::new();
        let mut stacks = HashMap::new();
        let mut clients = HashMap::new();
        for (name, p) in &config.providers {
            let client = build_client(name, p)?;
            clients.insert(name.clone(), client.clone());
            let labels = ProviderLabels {
                provider: name.clone(),
            };
            let cooldown = CooldownLayer::new(name)
                .after_failures(p.cooldown_after_failures)
                .cooldown(Duration::from_millis(p.cooldown_ms))
                .failure_rate(p.cooldown_failure_share, p.cooldown_failure_window)
                .max_retry_after(Duration::from_millis(p.cooldown_max_retry_after_ms))
                .counters(
                    metrics.cooldowns.get_or_create(&labels).clone(),
                    metrics.cooldown_skips.get_or_create(&labels).clone(),
                );
            let policy = ProviderPolicy {
                first_token: Duration::from_millis(p.first_token_timeout_ms),
                retry: RetryPolicy::new(p.max_retries, 1, 0.1)
                    .max_retry_wait(Duration::from_millis(p.retry_max_wait_ms)),
                guard: guard.clone().ask_logprobs(p.logprobs(name)),
                cooldown: Some(cooldown),
            };
            stacks.insert(name.clone(), policy.stack(name, client));
        }
        let mut routes = Vec::new();
        for r in &config.routes {
            let mut layer = RerouteLayer::new()
                .primary(r.primary.clone())
                .reroute_on(if config.guard.observe_only {
                    crate::verdict::VerdictSet::empty()
                } else {
                    config.policy.reroute
                })
                .continue_mid_stream(config.policy.continue_mid_stream)
                .preroute(
                    config
                        .preroute
                        .store_config()
                        .map(|c| Arc::new(PreRouteStore::new(c))),
                )
                .preroute_judge(preroute_judge.clone())
                .reroute_categories(&config.policy.reroute_categories)?;
            if let Some(p) = config.policy.resample_below {
                layer = layer.resample_below(p);
            }
            for (name, p) in &config.providers {
                if let Some(prices) = p.prices {
                    layer = layer.prices(name.clone(), prices);
                }
            }
            for f in &r.fallbacks {
                layer = layer.fallback(Route::new(f.clone(), stacks[f].clone()));
            }
            let service = stack::route_service(
                Duration::from_millis(r.total_timeout_ms),
                layer,
                stacks[&r.primary].clone(),
            );
            routes.push((r.model.clone(), service));
        }
        let client_keys = match &config.server.api_keys_env {
            None => None,
            Some(var) => {
                let keys: Vec<ApiKey> = std::env::var(var)
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(ApiKey::new)
                    .collect();
                if keys.is_empty() {
                    return Err(Error::invalid(
                        "configuration",
                        format!("server.api_keys_env names {var}, which holds no key"),
                    ));
                }
                Some(keys)
            }
        };
        if let Some(log) = &verdict_log {
            metrics.register_verdict_log(log);
        }
        Ok(Gateway {
            inner: Arc::new(Inner {
                routes,
                client_keys,
                metrics,
                permits: Arc::new(Semaphore::new(config.server.max_concurrency.max(1))),
                max_body: config.server.max_body_bytes,
                grace: Duration::from_secs(config.server.shutdown_grace_secs),
                passthrough: Passthrough::new(config, &clients),
                verdict_log,
                edge: config.server.edge_limits(),
            }),
        })
    }

    /// The gateway's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The verdict log, when one is on.
    pub fn verdict_log(&self) -> Option<&VerdictLog> {
        self.inner.verdict_log.as_ref()
    }

    /// The axum router, for embedding the gateway in a larger server: the routes under
    /// the whole request stack of [`super::stack`].
    pub fn router(&self) -> Router {
        stack::router(self)
    }

    /// The client keys, when the gateway requires one.
    pub(crate) fn client_keys(&self) -> Option<&[ApiKey]> {
        self.inner.client_keys.as_deref()
    }

    /// The concurrency permits, one per request in flight.
    pub(crate) fn permits(&self) -> &Arc<Semaphore> {
        &self.inner.permits
    }

    /// The largest request body accepted.
    pub(crate) fn max_body(&self) -> usize {
        self.inner.max_body
    }

    /// The pass-through routing table.
    pub(crate) fn passthrough(&self) -> &Passthrough {
        &self.inner.passthrough
    }

    /// Serves until `shutdown` resolves, then lets open requests finish for the grace
    /// period; slow and idle client connections are cut at the edge's limits (see
    /// [`super::edge`]).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (edge, grace) = (self.inner.edge, self.inner.grace);
        let result = super::edge::serve(listener, self.router(), edge, shutdown, grace).await;
        if let Some(log) = self.inner.verdict_log.clone() {
            // What was answered before shutdown is on disk when the process exits.
            let _ = tokio::task::spawn_blocking(move || log.flush()).await;
        }
        result
    }
}

fn build_client(name: &str, p: &ProviderConfig) -> Result<OpenAiCompatible, Error> {
    let mut builder = OpenAiCompatible::builder(name, &p.base_url)
        .connect_timeout(Duration::from_millis(p.connect_timeout_ms))
        .body_limit(p.max_response_bytes)
        .stream_limit(p.max_stream_bytes)
        .models(
            p.models
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<ModelMap>(),
        );
    if let Some(var) = &p.api_key_env {
        builder = builder.api_key_from_env(var)?;
    }
    for (k, v) in &p.headers {
        builder = builder.header(k, v)?;
    }
    builder.build()
}

/// An error response in OpenAI's shape.
pub(crate) fn openai_error(status: StatusCode, kind: &str, code: &str, message: String) -> Response<Body> {
    openai_error_for(status, kind, code, None, message)
}

/// An error response in OpenAI's shape about one request parameter (`param`).
pub(crate) fn openai_error_for(
    status: StatusCode,
    kind: &str,
    code: &str,
    param: Option<&str>,
    message: String,
) -> Response<Body> {
    let body = json!({"error": {"message": message, "type": kind, "param": param, "code": code}});
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    response.extensions_mut().insert(ErrorCode(code.into()));
    response
}

/// A chat-completions request body, or the 400 that says what is wrong with it as OpenAI
/// says it: `invalid_json` only for a body that is not JSON; a missing field is
/// `missing_required_parameter` naming it in `param`; any other mismatch (a wrong type, a
/// body that is not an object) `invalid_request`.
pub(crate) fn read_chat_request(bytes: &[u8]) -> Result<ChatRequest, Box<Response<Body>>> {
    let bad = |code: &str, param: Option<&str>, message: String| {
        Box::new(openai_error_for(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            param,
            message,
        ))
    };
    let error = match serde_json::from_slice::<ChatRequest>(bytes) {
        Ok(request) => return Ok(request),
        Err(e) if e.is_data() => e,
        Err(e) => {
            return Err(bad(
                "invalid_json",
                None,
                format!("request body is not JSON: {e}"),
            ))
        }
    };
    // Read again as a value: its error has no position, so a missing field's name can be
    // read off serde's "missing field `name`".
    let detail = serde_json::from_slice::<serde_json::Value>(bytes)
        .and_then(serde_json::from_value::<ChatRequest>)
        .err()
        .map_or_else(|| error.to_string(), |e| e.to_string());
    match detail
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        Some(field) => Err(bad(
            "missing_required_parameter",
            Some(field),
            format!("Missing required parameter: '{field}'."),
        )),
        None => Err(bad(
            "invalid_request",
            None,
            format!("request body is not a chat-completions request: {detail}"),
        )),
    }
}

/// `POST /v1/chat/completions`, under the stack's trace, auth and concurrency layers: the
/// body limit, the route by model, the route's service. The request record comes from the
/// trace layer and goes back to it with what this handler learnt.
pub(crate) async fn chat(
    State(gateway): State<Gateway>,
    slot: Option<Extension<RecordSlot>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response<Body> {
    let taken = slot.as_ref().and_then(|Extension(s)| s.take());
    let mut record = taken.unwrap_or_else(|| RequestRecord::start(uri.path(), &headers));
    let span = record.span().clone();
    let response = chat_inner(&gateway.inner, body, &mut record)
        .instrument(span)
        .await;
    match slot {
        Some(Extension(slot)) => {
            slot.put(record);
            response
        }
        None => record.finish(response),
    }
}

async fn chat_inner(g: &Inner, body: Body, record: &mut RequestRecord) -> Response<Body> {
    let started = Instant::now();
    let bytes = match axum::body::to_bytes(body, g.max_body).await {
        Ok(b) => b,
        Err(_) => {
            return openai_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request_too_large",
                format!("request body exceeds {} bytes", g.max_body),
            )
        }
    };
    let request = match read_chat_request(&bytes) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    record.request(&request);
    let Some(service) = g
        .routes
        .iter()
        .find(|(m, _)| m == &request.model)
        .or_else(|| g.routes.iter().find(|(m, _)| m == "*"))
        .map(|(_, s)| s.clone())
    else {
        return openai_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            format!("no route serves model {:?}", request.model),
        );
    };
    g.metrics
        .requests
        .get_or_create(&RequestLabels {
            model: request.model.clone(),
            stream: request.is_stream().to_string(),
        })
        .inc();
    let exchange = g.verdict_log.as_ref().map(|_| Exchange::new(&request));
    let mut result = service.oneshot(request).await;
    if let (Some(log), Some(exchange)) = (&g.verdict_log, exchange) {
        result = log.watch(result, exchange);
    }
    record.result(&result);
    let elapsed = started.elapsed();
    g.metrics.duration.observe(elapsed.as_secs_f64());
    match &result {
        Ok(response) => observe(g, response, elapsed),
        // A route's error carries its attempts: their verdicts and re-routes count as an
        // answer's do.
        Err(e) => match e.attempts() {
            Some(attempts) => count_attempts(g, &attempts.snapshot()),
            None => {
                if let Some(r) = e.as_refusal() {
                    g.metrics
                        .verdicts
                        .get_or_create(&VerdictLabels {
                            provider: r.provider.clone().unwrap_or_default(),
                            verdict: r.verdict.class().as_str().into(),
                        })
                        .inc();
                }
            }
        },
    }
    match result {
        Err(e) if e.as_refusal().is_none() && e.provider_error().is_none() => error_response(&e),
        other => respond(other),
    }
}

/// Verdicts, re-routes and overhead of an answered request.
fn observe(g: &Inner, response: &ChatResponse, elapsed: Duration) {
    let attempts = response
        .extensions
        .get::<Attempts>()
        .map(Attempts::snapshot)
        .unwrap_or_default();
    count_attempts(g, &attempts);
    if let Some(p) = response.extensions.get::<PreRouted>() {
        g.metrics
            .prerouted
            .get_or_create(&PreRouteLabels {
                to: p.to.clone(),
                matched: p.matched.as_str().into(),
            })
            .inc();
    }
    if let Some(t) = response.extensions.get::<UpstreamTiming>() {
        g.metrics.upstream.observe(t.0.as_secs_f64());
        if attempts.len() <= 1 {
            let waited = response
                .extensions
                .get::<HoldBack>()
                .map_or(Duration::ZERO, |h| h.waited);
            let overhead = elapsed.saturating_sub(t.0 + waited);
            g.metrics.overhead.observe(overhead.as_secs_f64());
        }
    }
}

/// The verdicts of a request's attempts, and its re-routes (one per provider left).
fn count_attempts(g: &Inner, attempts: &[Attempt]) {
    for a in attempts {
        if let Some(v) = a.verdict {
            g.metrics
                .verdicts
                .get_or_create(&VerdictLabels {
                    provider: a.provider.clone(),
                    verdict: v.as_str().into(),
                })
                .inc();
        }
    }
    for pair in attempts.windows(2) {
        g.metrics
            .reroutes
            .get_or_create(&RerouteLabels {
                from: pair[0].provider.clone(),
                to: pair[1].provider.clone(),
            })
            .inc();
    }
}

/// `GET /v1/models`: the routes' model names.
pub(crate) async fn models(State(gateway): State<Gateway>) -> Response<Body> {
    let data: Vec<_> = gateway
        .inner
        .routes
        .iter()
        .filter(|(m, _)| m != "*")
        .map(|(m, _)| json!({"id": m, "object": "model", "owned_by": "refusal-guard"}))
        .collect();
    let body = json!({"object": "list", "data": data});
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// `GET /metrics`: the gateway's metrics in OpenMetrics text.
pub(crate) async fn metrics(State(gateway): State<Gateway>) -> Response<Body> {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        gateway.inner.metrics.render(),
    )
        .into_response()
}
