//! `RefusalGuardHttpLayer`: refusal-guard for a gateway's existing proxy route.
//!
//! ```no_run
//! use axum::{routing::post, Router};
//! use refusal_guard::gateway::RefusalGuardHttpLayer;
//! use refusal_guard::layer::{RerouteLayer, Route, RefusalGuardLayer};
//! use refusal_guard::provider::OpenAiCompatible;
//! use tower::Layer;
//!
//! # async fn proxy() -> &'static str { "" }
//! # fn build() -> Result<(), refusal_guard::Error> {
//! let fallback = OpenAiCompatible::builder("openai", "https://api.openai.com/v1").api_key("sk-…").build()?;
//! let guard = RefusalGuardLayer::new();
//! let app: Router = Router::new().route("/v1/chat/completions", post(proxy)).route_layer(
//!     RefusalGuardHttpLayer::new("qwen-proxy")
//!         .reroute(RerouteLayer::new().fallback(Route::new("openai", guard.layer(fallback)))),
//! );
//! # Ok(()) }
//! ```
//!
//! The layer sits in front of a route that already proxies OpenAI-compatible chat
//! completions. For a `POST …/chat/completions` it reads the JSON request, calls the
//! route with it through the guard and re-route layers (the route is the primary
//! provider; the incoming method, URI and headers are kept, so the route's own
//! authentication and forwarding work as before), reads the route's JSON or SSE answer,
//! and writes OpenAI-shaped JSON or SSE back with the verdict headers. Other requests
//! pass through untouched.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use bytes::Bytes;
use futures::future::BoxFuture;
use http::{header, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use tower::{Layer, Service, ServiceExt};

use super::respond::respond;
use crate::error::{BoxError, Error};
use crate::layer::{RefusalGuardLayer, RerouteLayer};
use crate::provider::{in_mode, read_response, BodyLimits, ChatResponse, UpstreamTiming};
use crate::wire::ChatRequest;

/// The layer (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct RefusalGuardHttpLayer {
    name: Arc<str>,
    guard: RefusalGuardLayer,
    reroute: RerouteLayer,
    max_request_bytes: usize,
    limits: BodyLimits,
}

impl RefusalGuardHttpLayer {
    /// A layer whose route is known to verdicts and attempts as provider `name`, with the
    /// default guard and no fallbacks.
    pub fn new(name: impl Into<String>) -> Self {
        let name: Arc<str> = Arc::from(name.into());
        RefusalGuardHttpLayer {
            guard: RefusalGuardLayer::new(),
            reroute: RerouteLayer::new().primary(&*name),
            name,
            max_request_bytes: 4 << 20,
            limits: BodyLimits::default(),
        }
    }

    /// The guard applied to the route's answers.
    pub fn guard(mut self, guard: RefusalGuardLayer) -> Self {
        // The guard is built anew per request: a logprob rejection must be remembered by name.
        self.guard = guard.name_provider(&self.name);
        self
    }

    /// The re-route policy and fallbacks; the route is its primary, under this layer's name.
    pub fn reroute(mut self, reroute: RerouteLayer) -> Self {
        self.reroute = reroute.primary(&*self.name);
        self
    }

    /// The largest request body read (413 above). Default 4 MiB.
    pub fn max_request_bytes(mut self, bytes: usize) -> Self {
        self.max_request_bytes = bytes;
        self
    }

    /// Limits on the route's answers.
    pub fn response_limits(mut self, limits: BodyLimits) -> Self {
        self.limits = limits;
        self
    }
}

impl<S> Layer<S> for RefusalGuardHttpLayer {
    type Service = RefusalGuardHttp<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RefusalGuardHttp {
            inner,
            config: self.clone(),
        }
    }
}

/// The service [`RefusalGuardHttpLayer`] builds.
#[derive(Debug, Clone)]
pub struct RefusalGuardHttp<S> {
    inner: S,
    config: RefusalGuardHttpLayer,
}

impl<S, ResB> Service<Request<Body>> for RefusalGuardHttp<S>
where
    S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: std::error::Error + Send + Sync + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The inner route is driven to readiness per call (`oneshot`), so that its
        // errors become responses instead of errors of this service.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        let config = self.config.clone();
        Box::pin(async move {
            if request.method() != http::Method::POST || !request.uri().path().ends_with("/chat/completions")
            {
                return Ok(match inner.oneshot(request).await {
                    Ok(r) => r.map(Body::new),
                    Err(e) => gateway_error(StatusCode::BAD_GATEWAY, "upstream_error", e.into().to_string()),
                });
            }
            let (parts, body) = request.into_parts();
            let bytes = match http_body_util::Limited::new(body, config.max_request_bytes)
                .collect()
                .await
            {
                Ok(c) => c.to_bytes(),
                Err(_) => {
                    return Ok(gateway_error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "request_too_large",
                        format!("request body exceeds {} bytes", config.max_request_bytes),
                    ))
                }
            };
            let chat = match super::server::read_chat_request(&bytes) {
                Ok(r) => r,
                Err(response) => return Ok(*response),
            };
            let route = RouteProvider {
                inner,
                parts: Arc::new(parts),
                name: config.name.clone(),
                limits: config.limits,
            };
            let service = config.reroute.layer(config.guard.layer(route));
            Ok(respond(service.oneshot(chat).await))
        })
    }
}

fn gateway_error(status: StatusCode, code: &str, message: String) -> Response<Body> {
    let body =
        json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}});
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("valid response parts")
}

/// The wrapped route as a chat provider: each call re-sends the incoming request's
/// method, URI and headers with the (possibly re-written) chat request as its body.
#[derive(Clone)]
struct RouteProvider<S> {
    inner: S,
    parts: Arc<http::request::Parts>,
    name: Arc<str>,
    limits: BodyLimits,
}

impl<S, ResB> Service<ChatRequest> for RouteProvider<S>
where
    S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: std::error::Error + Send + Sync + 'static,
{
    type Response = ChatResponse;
    type Error = Error;
    type Future = BoxFuture<'static, Result<ChatResponse, Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, chat: ChatRequest) -> Self::Future {
        let inner = self.inner.clone();
        let parts = self.parts.clone();
        let name = self.name.clone();
        let limits = self.limits;
        Box::pin(async move {
            let body = serde_json::to_vec(&chat).map_err(|e| Error::invalid("request", e.to_string()))?;
            let mut request = Request::builder()
                .method(parts.method.clone())
                .uri(parts.uri.clone())
                .version(parts.version)
                .body(Body::from(body))
                .map_err(|e| Error::invalid("request", e.to_string()))?;
            *request.headers_mut() = parts.headers.clone();
            request.headers_mut().remove(header::CONTENT_LENGTH);
            let started = Instant::now();
            let response = inner.oneshot(request).await.map_err(|e| Error::Transport {
                provider: name.to_string(),
                message: e.into().to_string(),
                mid_response: false,
            })?;
            let out = read_response(&name, response, limits).await?;
            let mut out = in_mode(out, chat.is_stream()).await?;
            out.extensions.insert(UpstreamTiming(started.elapsed()));
            Ok(out)
        })
    }
}
