//! Gateways: refusal-guard at the HTTP level.
//!
//! - [`http_layer`]: [`RefusalGuardHttpLayer`], the guard and re-route layers for an
//!   existing hyper/axum proxy route;
//! - [`server`]: [`Gateway`], the ready gateway behind `refusal-guard serve`, configured by
//!   [`config`] and observed through [`metrics`]; [`edge`] accepts its connections and
//!   cuts off slow and idle ones;
//! - [`stack`]: the gateway's request stack (edge, trace, auth, limits, routing, per-route
//!   layers) in the order a request meets it;
//! - [`routes`]: routes other than chat completions ([`routes::passthrough`]);
//! - [`respond`]: chat results as OpenAI-shaped HTTP responses (JSON, SSE, errors), with
//!   the verdict in headers and in the final chunk.

pub mod config;
pub mod edge;
pub mod http_layer;
pub mod metrics;
pub mod respond;
pub mod routes;
pub mod server;
pub mod stack;

pub use http_layer::{RefusalGuardHttp, RefusalGuardHttpLayer};
pub use server::Gateway;
