//! The gateway's layer stack, read top to bottom: everything a request passes through
//! between the socket and a provider, assembled here and only here.
//!
//! Outermost first:
//! 1. **edge** ([`super::edge`], per connection): header-read timeout, idle timeout, the
//!    cap on open connections. First, because a client that never completes a request
//!    must cost nothing further in.
//! 2. **trace** (chat completions): the request's id, span and one log event
//!    ([`RequestRecord`]), and the responses-by-status metric; pass-through routes count
//!    their own metric at the same place. Outside auth and limits, so rejected requests are
//!    logged and counted too.
//! 3. **auth**: the client keys of `server.api_keys_env` (a 401 in OpenAI's shape). Before
//!    any limit, so a client without a key cannot take a concurrency permit.
//! 4. **concurrency limit**: `server.max_concurrency` requests in flight, a 503 at once
//!    above it (no queue: a client retries faster than a queue drains). The permit is held
//!    by the response body, so an open stream counts until it ends.
//! 5. **body limit** (`server.max_body_bytes`, a 413) and **routing** by the request's
//!    `model`: in the handlers ([`super::server`], [`super::routes::passthrough`]), which
//!    read the body once, under the limit, to find the model.
//! 6. **per route** (`route_service`): the re-route layer ([`RerouteLayer`]) with the
//!    route's total deadline ([`RerouteLayer::total_timeout`], which keeps the attempts
//!    of a route that runs out of time) over the primary; each provider is wrapped by
//!    [`crate::layer::failover::ProviderPolicy::stack`] (retry with a budget, the
//!    first-token deadline, the guard).
//!
//! `/healthz` and `/metrics` sit outside auth and limits: probes and scrapers must get an
//! answer from a gateway at its concurrency limit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{from_fn_with_state, Next};
use axum::routing::{any, get, post};
use axum::Router;
use futures::StreamExt;
use http::{header, HeaderMap, Response, StatusCode};
use tower::{Layer, ServiceBuilder};
use tracing::Instrument;

use super::metrics::StatusLabels;
use super::routes::passthrough;
use super::server::{self, openai_error, Gateway};
use crate::layer::reroute::ChatService;
use crate::layer::RerouteLayer;
use crate::observe::request::RequestRecord;

/// The gateway's router with its whole request stack (steps 2 to 5 of the module docs).
pub(crate) fn router(gateway: &Gateway) -> Router {
    let state = || gateway.clone();
    let chat = Router::new()
        .route("/v1/chat/completions", post(server::chat))
        .route("/chat/completions", post(server::chat))
        .route_layer(
            ServiceBuilder::new()
                .layer(from_fn_with_state(state(), trace_chat))
                .layer(from_fn_with_state(state(), authenticate))
                .layer(from_fn_with_state(state(), limit_concurrency)),
        );
    let passthrough = Router::new()
        .route("/v1/{*path}", any(passthrough::passthrough))
        .route_layer(
            ServiceBuilder::new()
                .layer(from_fn_with_state(state(), passthrough::count))
                .layer(from_fn_with_state(state(), authenticate))
                .layer(from_fn_with_state(state(), limit_concurrency)),
        );
    // Listing models costs nothing upstream: a key, but no permit.
    let models = Router::new()
        .route("/v1/models", get(server::models))
        .route_layer(from_fn_with_state(state(), authenticate));
    let open = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(server::metrics));
    Router::new()
        .merge(chat)
        .merge(models)
        .merge(passthrough)
        .merge(open)
        .fallback(passthrough::not_found)
        // After the merges: it applies to the routes registered before it.
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(gateway.clone())
}

/// A known path asked with a method it does not serve: a 405 in OpenAI's error shape, as
/// a 404 is, instead of an empty body. The router adds the `Allow` header.
async fn method_not_allowed(request: Request) -> Response<Body> {
    openai_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        "method_not_allowed",
        format!("{} is not allowed on {}", request.method(), request.uri().path()),
    )
}

/// One route's chat service (step 6 of the module docs): the total deadline over the
/// re-route layer over the primary's provider stack.
pub(crate) fn route_service(total: Duration, reroute: RerouteLayer, primary: ChatService) -> ChatService {
    ChatService::new(reroute.total_timeout(total).layer(primary))
}

/// The chat route's request record, handed to the handler for what only it knows (the
/// parsed request, the service's result) and taken back to close it on the response.
#[derive(Clone)]
pub(crate) struct RecordSlot(Arc<Mutex<Option<RequestRecord>>>);

impl RecordSlot {
    /// The record, for the handler; give it back with [`RecordSlot::put`].
    pub(crate) fn take(&self) -> Option<RequestRecord> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Returns the record the handler took.
    pub(crate) fn put(&self, record: RequestRecord) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(record);
    }
}

/// Step 2 for chat completions: the request's record and span, and the status metric.
async fn trace_chat(State(gateway): State<Gateway>, mut request: Request, next: Next) -> Response<Body> {
    let record = RequestRecord::start(request.uri().path(), request.headers());
    let span = record.span().clone();
    let slot = RecordSlot(Arc::new(Mutex::new(Some(record))));
    request.extensions_mut().insert(slot.clone());
    let response = next.run(request).instrument(span).await;
    gateway
        .metrics()
        .responses
        .get_or_create(&StatusLabels {
            status: response.status().as_u16().to_string(),
        })
        .inc();
    match slot.take() {
        Some(record) => record.finish(response),
        None => response,
    }
}

/// Step 3: the client keys, when the gateway has any.
async fn authenticate(State(gateway): State<Gateway>, request: Request, next: Next) -> Response<Body> {
    if !authorised(gateway.client_keys(), request.headers()) {
        return openai_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_api_key",
            "missing or unknown gateway API key".into(),
        );
    }
    next.run(request).await
}

/// Step 4: a permit per request in flight, held until the response body is done.
async fn limit_concurrency(State(gateway): State<Gateway>, request: Request, next: Next) -> Response<Body> {
    let Ok(permit) = gateway.permits().clone().try_acquire_owned() else {
        return openai_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "gateway_overloaded",
            "too many requests in flight; retry shortly".into(),
        );
    };
    let (parts, body) = next.run(request).await.into_parts();
    let stream = body.into_data_stream().map(move |chunk| {
        let _held = &permit;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

fn authorised(keys: Option<&[crate::provider::ApiKey]>, headers: &HeaderMap) -> bool {
    let Some(keys) = keys else {
        return true;
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    presented.is_some_and(|p| {
        keys.iter()
            .any(|k| constant_time_eq(k.expose().as_bytes(), p.as_bytes()))
    })
}

/// Compares keys without an early exit, so response times do not leak how much matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
