//! Pass-through: every OpenAI-compatible path the gateway does not judge.
//!
//! `/v1/embeddings`, `/v1/completions`, `/v1/models/{id}`, `/v1/audio/…` and the rest go to
//! the primary provider of the route that the request's `model` names (the `model` of a
//! JSON body; for `/v1/models/{id}`, the id; otherwise, for a request without a JSON body,
//! the default route: the `*` route, else the first), with that provider's key and headers
//! and its model-name mapping. Nothing is judged or re-routed: a team that points its SDK
//! at the gateway keeps the provider's other endpoints.
//!
//! The edge is the chat route's ([`crate::gateway::stack`]): the same client keys, the same
//! concurrency permits (held until the response body ends), the same body limit (413 above
//! it). A JSON body is read
//! whole (it is needed for its `model`, and it is under the limit); any other body
//! (multipart uploads) streams to the provider as it arrives, cut with a 413 past the
//! limit. The provider's response streams back as it comes, status and headers kept, byte
//! for byte, except an error body that quotes the provider key back, which is redacted.
//! An unknown model is a 404 in OpenAI's error shape, as is a path outside `/v1/`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::middleware::Next;
use bytes::Bytes;
use futures::StreamExt;
use http::{header, HeaderMap, HeaderName, Request, Response, StatusCode};
use http_body::Body as _;
use serde_json::Value;

use crate::gateway::config::GatewayConfig;
use crate::gateway::metrics::PassthroughLabels;
use crate::gateway::server::{openai_error, Gateway};
use crate::provider::OpenAiCompatible;

/// The largest provider error body read (to redact a quoted key) before it is passed on.
const ERROR_BODY_LIMIT: usize = 1 << 20;

/// Headers that describe one hop, or that the gateway sets itself: never forwarded.
const HOP_HEADERS: [&str; 11] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// Endpoint names the pass-through metric uses; any other path counts as `other`, so that
/// callers cannot grow the metric's label set.
const ENDPOINTS: [&str; 14] = [
    "embeddings",
    "completions",
    "models",
    "moderations",
    "audio",
    "images",
    "files",
    "batches",
    "responses",
    "rerank",
    "fine_tuning",
    "uploads",
    "vector_stores",
    "assistants",
];

/// One provider a pass-through request may go to.
#[derive(Clone)]
struct Upstream {
    client: OpenAiCompatible,
    /// The route's total budget, applied to the provider's response head.
    timeout: Duration,
}

/// The pass-through routing table: model name to the primary provider of its route.
#[derive(Clone, Default)]
pub struct Passthrough {
    routes: Vec<(String, Upstream)>,
}

impl std::fmt::Debug for Passthrough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let models: Vec<&str> = self.routes.iter().map(|(m, _)| m.as_str()).collect();
        f.debug_struct("Passthrough").field("models", &models).finish()
    }
}

impl Passthrough {
    /// The table for `config`, with the provider clients the gateway built (sharing their
    /// connection pools). Routes whose primary has no client are left out.
    pub fn new(
        config: &GatewayConfig,
        clients: &std::collections::HashMap<String, OpenAiCompatible>,
    ) -> Self {
        let routes = config
            .routes
            .iter()
            .filter_map(|r| {
                let client = clients.get(&r.primary)?.clone();
                let timeout = Duration::from_millis(r.total_timeout_ms);
                Some((r.model.clone(), Upstream { client, timeout }))
            })
            .collect();
        Passthrough { routes }
    }

    /// The route of `model`: the first exact match, else the first `*`.
    fn for_model(&self, model: &str) -> Option<&Upstream> {
        self.routes
            .iter()
            .find(|(m, _)| m == model)
            .or_else(|| self.routes.iter().find(|(m, _)| m == "*"))
            .map(|(_, u)| u)
    }

    /// The route of a request that names no model: the `*` route, else the first.
    fn default_route(&self) -> Option<&Upstream> {
        self.routes
            .iter()
            .find(|(m, _)| m == "*")
            .or_else(|| self.routes.first())
            .map(|(_, u)| u)
    }
}

/// Paths outside `/v1/`: a 404 in OpenAI's error shape instead of an empty one.
pub async fn not_found(request: Request<Body>) -> Response<Body> {
    openai_error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "not_found",
        format!("no route for {} {}", request.method(), request.uri().path()),
    )
}

/// The handler of `/v1/{*path}` (see the [module docs](self)), under the stack's auth and
/// concurrency layers.
pub async fn passthrough(State(gateway): State<Gateway>, request: Request<Body>) -> Response<Body> {
    forward(&gateway, request).await
}

/// The pass-through metric, by endpoint and status: the outermost layer of the
/// pass-through routes, so rejected requests count too.
pub(crate) async fn count(
    State(gateway): State<Gateway>,
    request: Request<Body>,
    next: Next,
) -> Response<Body> {
    let endpoint = endpoint_of(request.uri().path());
    let response = next.run(request).await;
    gateway
        .metrics()
        .passthrough
        .get_or_create(&PassthroughLabels {
            endpoint: endpoint.into(),
            status: response.status().as_u16().to_string(),
        })
        .inc();
    response
}

fn endpoint_of(path: &str) -> &'static str {
    let first = path
        .strip_prefix("/v1/")
        .unwrap_or("")
        .split('/')
        .next()
        .unwrap_or("");
    ENDPOINTS
        .iter()
        .find(|e| **e == first)
        .copied()
        .unwrap_or("other")
}

/// What a request's body is, once the model is known.
enum Outgoing {
    None,
    Bytes(Bytes),
    /// A body streamed as it comes; the flag is set when it passed the limit.
    Stream(Body, Arc<AtomicBool>),
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let v = v.trim().to_ascii_lowercase();
            v.starts_with("application/json") || (v.starts_with("application/") && v.contains("+json"))
        })
}

fn not_found_model(model: &str) -> Response<Body> {
    openai_error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "model_not_found",
        format!("no route serves model {model:?}"),
    )
}

async fn forward(gateway: &Gateway, request: Request<Body>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let max_body = gateway.max_body();
    let path = parts.uri.path();
    let rest = path.strip_prefix("/v1").unwrap_or(path);
    let table = gateway.passthrough();

    // The model and the body: a JSON body names its model; `/models/{id}` names it in the
    // path; anything else goes to the default route.
    let (upstream, outgoing) = if is_json(&parts.headers) {
        let bytes = match axum::body::to_bytes(body, max_body).await {
            Ok(b) => b,
            Err(_) => return too_large(max_body),
        };
        let mut value: Option<Value> = None;
        let model = if bytes.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) => {
                    let model = v.get("model").and_then(Value::as_str).map(str::to_string);
                    value = Some(v);
                    model
                }
                Err(e) => {
                    return openai_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request_error",
                        "invalid_json",
                        format!("request body is not JSON: {e}"),
                    )
                }
            }
        };
        let upstream = match &model {
            Some(m) => match table.for_model(m) {
                Some(u) => u,
                None => return not_found_model(m),
            },
            None => match table.default_route() {
                Some(u) => u,
                None => return not_found_model(""),
            },
        };
        let bytes = match (model, value) {
            // The provider's name for the model, when it has its own; the body is left
            // byte for byte as sent otherwise.
            (Some(m), Some(mut v)) if upstream.client.models().map(&m) != m => {
                v["model"] = Value::String(upstream.client.models().map(&m).to_string());
                Bytes::from(serde_json::to_vec(&v).expect("a parsed JSON value serialises"))
            }
            _ => bytes,
        };
        (upstream, Outgoing::Bytes(bytes))
    } else {
        let upstream = match rest.strip_prefix("/models/").filter(|m| !m.is_empty()) {
            Some(model) => match table.for_model(model) {
                Some(u) => u,
                None => return not_found_model(model),
            },
            None => match table.default_route() {
                Some(u) => u,
                None => return not_found_model(""),
            },
        };
        let outgoing = if body.size_hint().exact() == Some(0) {
            Outgoing::None
        } else {
            Outgoing::Stream(body, Arc::new(AtomicBool::new(false)))
        };
        (upstream, outgoing)
    };

    let target = match parts.uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        if forwarded(name) {
            headers.append(name, value.clone());
        }
    }
    let mut builder = upstream.client.request(parts.method.clone(), &target, headers);
    let over = match outgoing {
        Outgoing::None => None,
        Outgoing::Bytes(bytes) => {
            builder = builder.body(bytes);
            None
        }
        Outgoing::Stream(body, over) => {
            builder = builder.body(reqwest::Body::wrap_stream(limited(body, max_body, over.clone())));
            Some(over)
        }
    };
    let sent = tokio::time::timeout(upstream.timeout, builder.send()).await;
    let response = match sent {
        Err(_) => {
            return openai_error(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout_error",
                "upstream_timeout",
                format!(
                    "provider {} sent no response head within {} ms",
                    upstream.client.name(),
                    upstream.timeout.as_millis()
                ),
            )
        }
        Ok(Err(_)) if over.as_ref().is_some_and(|o| o.load(Ordering::Relaxed)) => return too_large(max_body),
        Ok(Err(e)) => {
            return openai_error(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "upstream_unavailable",
                format!(
                    "provider {}: {}",
                    upstream.client.name(),
                    crate::wire::sse::error_chain(&e.without_url())
                ),
            )
        }
        Ok(Ok(r)) => r,
    };
    let status = response.status();
    let mut out = Response::builder().status(status);
    let mut redact = false;
    if let Some(headers) = out.headers_mut() {
        for (name, value) in response.headers() {
            if !HOP_HEADERS.contains(&name.as_str()) || name == header::CONTENT_LENGTH {
                headers.append(name, value.clone());
            }
        }
        redact = status.is_client_error() || status.is_server_error();
        if redact {
            headers.remove(header::CONTENT_LENGTH);
        }
    }
    if redact {
        // A rejected key may be quoted back: an error body is read (it is small) and
        // cleaned before it is passed on.
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) if body.len() + c.len() <= ERROR_BODY_LIMIT => body.extend_from_slice(&c),
                _ => {
                    return openai_error(
                        StatusCode::BAD_GATEWAY,
                        "upstream_error",
                        "upstream_too_large",
                        format!(
                            "provider {} answered {} with an error body that could not be read whole",
                            upstream.client.name(),
                            status.as_u16()
                        ),
                    )
                }
            }
        }
        let body = upstream.client.redact_key(&body).unwrap_or(body);
        return out.body(Body::from(body)).expect("valid response parts");
    }
    let body = Body::from_stream(response.bytes_stream());
    out.body(body).expect("valid response parts")
}

/// Whether a caller's header goes on to the provider: not the hop's own, not the
/// caller's gateway key, not an encoding the gateway would have to undo to redact.
fn forwarded(name: &HeaderName) -> bool {
    !HOP_HEADERS.contains(&name.as_str())
        && name != header::AUTHORIZATION
        && name != header::ACCEPT_ENCODING
        && name != header::COOKIE
        && name.as_str() != "api-key"
        && name.as_str() != "x-api-key"
}

fn too_large(max_body: usize) -> Response<Body> {
    openai_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request_error",
        "request_too_large",
        format!("request body exceeds {max_body} bytes"),
    )
}

/// A request body streamed on, failing (and setting `over`) past `limit` bytes.
fn limited(
    body: Body,
    limit: usize,
    over: Arc<AtomicBool>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let mut seen = 0usize;
    body.into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        seen += chunk.len();
        if seen > limit {
            over.store(true, Ordering::Relaxed);
            return Err(std::io::Error::other(format!(
                "request body exceeds {limit} bytes"
            )));
        }
        Ok(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_come_from_the_first_segment() {
        assert_eq!(endpoint_of("/v1/embeddings"), "embeddings");
        assert_eq!(endpoint_of("/v1/models/qwen-plus"), "models");
        assert_eq!(endpoint_of("/v1/whatever/x"), "other");
        assert_eq!(endpoint_of("/v1/"), "other");
    }

    #[test]
    fn the_callers_key_and_hop_headers_stay_behind() {
        assert!(!forwarded(&header::AUTHORIZATION));
        assert!(!forwarded(&header::HOST));
        assert!(!forwarded(&header::TRANSFER_ENCODING));
        assert!(forwarded(&header::CONTENT_TYPE));
        assert!(forwarded(&HeaderName::from_static("openai-beta")));
    }
}
