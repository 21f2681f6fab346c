//! A plain axum proxy for an OpenAI-compatible provider, with refusal-guard added in a
//! few lines (the `route_layer` call). Run against any upstream:
//!
//! ```sh
//! UPSTREAM=https://dashscope-intl.aliyuncs.com/compatible-mode/v1 \
//! FALLBACK=https://openrouter.ai/api/v1 FALLBACK_KEY=sk-or-… \
//!   cargo run --release --example axum_proxy
//! ```
//! then send chat completions to http://127.0.0.1:3000/v1/chat/completions with your
//! upstream key; refusals and blocks come back from the fallback, with
//! `x-refusal-guard-*` headers saying what happened.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use refusal_guard::gateway::RefusalGuardHttpLayer;
use refusal_guard::layer::{RefusalGuardLayer, RerouteLayer, Route};
use refusal_guard::provider::OpenAiCompatible;
use tower::Layer;

/// The proxy as it was before refusal-guard: forward the request, stream the answer back.
async fn proxy(State(upstream): State<String>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let mut forward = reqwest::Client::new()
        .post(format!("{upstream}/chat/completions"))
        .body(reqwest::Body::wrap_stream(body.into_data_stream()));
    for name in [http::header::AUTHORIZATION, http::header::CONTENT_TYPE] {
        if let Some(v) = parts.headers.get(&name) {
            forward = forward.header(name, v);
        }
    }
    match forward.send().await {
        Ok(r) => {
            let mut out = Response::builder().status(r.status().as_u16());
            if let Some(ct) = r.headers().get(http::header::CONTENT_TYPE) {
                out = out.header(http::header::CONTENT_TYPE, ct.as_bytes());
            }
            out.body(Body::from_stream(r.bytes_stream())).unwrap()
        }
        Err(e) => Response::builder()
            .status(502)
            .body(Body::from(e.to_string()))
            .unwrap(),
    }
}

/// The proxy's router with refusal-guard in front of its chat route.
pub fn app(upstream: String, fallback: OpenAiCompatible) -> Router {
    let guard = RefusalGuardLayer::new();
    Router::new()
        .route("/v1/chat/completions", post(proxy))
        // The refusal-guard part: guard the route, re-route what policy blocked.
        .route_layer(
            RefusalGuardHttpLayer::new("upstream")
                .guard(guard.clone())
                .reroute(RerouteLayer::new().fallback(Route::new("fallback", guard.layer(fallback)))),
        )
        .with_state(upstream)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let upstream = std::env::var("UPSTREAM").map_err(|_| "set UPSTREAM to the provider's base URL")?;
    let fallback_url = std::env::var("FALLBACK").map_err(|_| "set FALLBACK to the fallback's base URL")?;
    let fallback = OpenAiCompatible::builder("fallback", fallback_url)
        .api_key_from_env("FALLBACK_KEY")?
        .build()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("proxy on http://{}/v1", listener.local_addr()?);
    axum::serve(listener, app(upstream, fallback)).await?;
    Ok(())
}
