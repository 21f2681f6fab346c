//! Gateways: refusal-guard at the HTTP level.
//!
//! - [`respond`]: chat results as OpenAI-shaped HTTP responses (JSON, SSE, errors), with
//!   the verdict in headers and in the final chunk.

pub mod config;
pub mod metrics;
pub mod respond;
pub mod server;

pub use server::Gateway;
