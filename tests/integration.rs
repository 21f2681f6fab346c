//! The integration tests, built as one test binary.
//!
//! Each file beside this one is a module of it (`tests/faults.rs` is `faults`), so
//! `cargo test --release --test integration faults::` runs one file's tests. One binary,
//! not one per file, because each test binary links and optimises its own copy of the
//! whole dependency stack (tokio, hyper, axum, candle): built separately, the files cost
//! a clean CI run most of its build time. `tests/secrets.rs` stays a binary of its own: it
//! installs the process's global log subscriber and sets provider keys in the environment,
//! and it must be the only test in its process while it does. `tests/overload.rs` too: its
//! floods fill the process's queue of model passes, which e5 tests here share.

mod common;

mod audit;
mod audit_html;
mod cli_inputs;
mod e5_real;
mod eval_datasets;
mod faults;
mod gateway_edge;
mod gateway_http;
mod gateway_logs;
mod gateway_otel;
mod gateway_sdk;
mod guard_layer;
mod guard_mock;
mod harm_reroute;
mod http_layer;
mod litellm_front;
mod logprobs_hidden;
mod mock_client;
mod models_real;
mod passthrough;
mod patterns;
mod preroute;
mod provider_errors;
mod regression_sets;
mod regressions;
mod reroute_layer;
mod reroute_mock;
mod sse_decoder;
mod tiny_models;
mod train_cli;
mod verdict_log;
mod wire_roundtrip;
