//! OpenTelemetry export (only with `--features otel`): a request through the gateway
//! leaves as OTLP/HTTP protobuf spans at a collector on loopback, the request span and
//! the attempt and guard spans inside it.

#![cfg(feature = "otel")]

use crate::common;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use common::start;
use http::HeaderMap;
use refusal_guard::mock::Script;
use refusal_guard::observe::{LoggingConfig, OtlpConfig};
use serde_json::json;

type Received = Arc<Mutex<Vec<(String, Bytes)>>>;

async fn collect(State(received): State<Received>, headers: HeaderMap, body: Bytes) -> &'static str {
    let kind = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    received.lock().unwrap().push((kind, body));
    ""
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_collector() {
    let received: Received = Arc::default();
    let collector = axum::Router::new()
        .route("/v1/traces", post(collect))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let telemetry = refusal_guard::observe::init(&LoggingConfig {
        file: Some(std::env::temp_dir().join(format!("rg-otel-test-{}.log", std::process::id()))),
        otlp: Some(OtlpConfig {
            endpoint,
            service_name: "rg-otel-test".into(),
        }),
        ..LoggingConfig::default()
    })
    .expect("telemetry");

    let gw = start("").await;
    gw.primary
        .set_default(Script::answer("Paris is the capital of France."));
    let r = reqwest::Client::new()
        .post(format!("{}/chat/completions", gw.base_url))
        .json(&json!({"model": "qwen-plus", "messages": [{"role": "user", "content": "capital of France?"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap();

    // Dropping the handle flushes the batch exporter (a blocking call: off the runtime).
    tokio::task::spawn_blocking(move || drop(telemetry))
        .await
        .unwrap();
    let received = received.lock().unwrap();
    assert!(!received.is_empty(), "the collector got an export");
    let all: Vec<u8> = received.iter().flat_map(|(_, b)| b.to_vec()).collect();
    assert!(
        received.iter().all(|(kind, _)| kind == "application/x-protobuf"),
        "{:?}",
        received.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    for name in ["rg-otel-test", "request", "attempt", "guard", "request_id"] {
        assert!(contains(&all, name.as_bytes()), "{name} is in the export");
    }
}
