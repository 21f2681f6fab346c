//! The gateway over plain HTTP: limits, errors in OpenAI's shape, metrics, pass-through
//! of vendor parameters, cancellation, and graceful shutdown.

use crate::common;

use std::time::Duration;

use common::start;
use futures::StreamExt;
use refusal_guard::mock::{Outcome, Script};
use refusal_guard::wire::ModerationStage;
use serde_json::{json, Value};

const ANSWER: &str = "The Great Wall is not visible to the naked eye from low Earth orbit.";

/// Sends the test's chat request, streamed or not, to the gateway.
async fn post_chat(gw: &common::TestGateway, stream: bool) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/chat/completions", gw.base_url))
        .json(&chat(stream))
        .send()
        .await
        .unwrap()
}

fn chat(stream: bool) -> Value {
    json!({"model": "qwen-plus", "stream": stream, "messages": [{"role": "user", "content": "Is the Great Wall visible from space?"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_openai_shaped_errors() {
    let gw = start("[server]\nmax_body_bytes = 2000").await;
    let client = reqwest::Client::new();
    let url = format!("{}/chat/completions", gw.base_url);
    let r = client.post(&url).body("{not json").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_json");
    assert_eq!(body["error"]["type"], "invalid_request_error");

    // JSON, but not a chat-completions request: said as OpenAI says it, not "invalid_json".
    let r = client
        .post(&url)
        .json(&json!({"model": "m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "missing_required_parameter", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert_eq!(body["error"]["param"], "messages", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("'messages'"),
        "{body}"
    );
    let r = client
        .post(&url)
        .json(&json!({"model": "m", "messages": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");

    // A known path with a method it does not serve: a 405 in the same shape, with Allow.
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");

    let big = json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(5000)}]});
    let r = client.post(&url).json(&big).send().await.unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "request_too_large");
    assert_eq!(gw.primary.requests().len(), 0, "nothing reached the provider");

    let r = client
        .get(format!("{}/healthz", gw.base_url.trim_end_matches("/v1")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_parameters_reach_the_provider_untouched() {
    let gw = start("").await;
    gw.primary.set_default(Script::answer(ANSWER));
    let mut body = chat(false);
    body["enable_search"] = json!(true);
    body["repetition_penalty"] = json!(1.05);
    body["top_k"] = json!(20);
    body["enable_thinking"] = json!(false);
    let r = reqwest::Client::new()
        .post(format!("{}/chat/completions", gw.base_url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = &gw.primary.request(0).unwrap().body;
    for key in ["enable_search", "repetition_penalty", "top_k", "enable_thinking"] {
        assert_eq!(got[key], body[key], "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_concurrency_limit_requests_get_503_until_a_stream_ends() {
    let gw = start("[server]\nmax_concurrency = 1").await;
    let long: String = (0..60).map(|i| format!("word{i} ")).collect();
    gw.primary
        .push(Script::answer(&long).delay_between_chunks(Duration::from_millis(20)));
    gw.primary.set_default(Script::answer(ANSWER));
    let client = reqwest::Client::new();
    let url = format!("{}/chat/completions", gw.base_url);
    let first = client.post(&url).json(&chat(true)).send().await.unwrap();
    assert_eq!(first.status(), 200);
    // The first stream is still open: its permit is held by its body.
    let second = client.post(&url).json(&chat(false)).send().await.unwrap();
    assert_eq!(second.status(), 503);
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["error"]["code"], "gateway_overloaded");
    let text = first.text().await.unwrap();
    assert!(text.contains("data: [DONE]"));
    let third = client.post(&url).json(&chat(false)).send().await.unwrap();
    assert_eq!(third.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_verdicts_reroutes_and_overhead() {
    let gw = start("").await;
    gw.primary.push(Script::answer(ANSWER));
    gw.primary.push(Script::moderation_error(ModerationStage::Input));
    gw.fallback.set_default(Script::answer(ANSWER));
    let client = reqwest::Client::new();
    let url = format!("{}/chat/completions", gw.base_url);
    for _ in 0..2 {
        let r = client.post(&url).json(&chat(false)).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let text = common::metrics_text(&client, &gw.base_url).await;
    assert!(
        text.contains(r#"refusal_guard_requests_total{model="qwen-plus",stream="false"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"refusal_guard_verdicts_total{provider="primary",verdict="answer"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"refusal_guard_verdicts_total{provider="primary",verdict="provider_block"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"refusal_guard_reroutes_total{from="primary",to="fallback"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("refusal_guard_overhead_seconds_count 1"),
        "one single-attempt request: {text}"
    );
    assert!(
        text.contains(r#"refusal_guard_responses_total{status="200"} 2"#),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_stream_cancels_the_upstream() {
    let gw = start("").await;
    let long: String = (0..200).map(|i| format!("word{i} ")).collect();
    gw.primary
        .set_default(Script::answer(&long).delay_between_chunks(Duration::from_millis(10)));
    let r = post_chat(&gw, true).await;
    let mut body = r.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(body);
    assert!(
        gw.primary.wait_for_disconnect(0, Duration::from_secs(10)).await,
        "the provider saw the gateway hang up: {:?}",
        gw.primary.response(0)
    );
    let sent = gw.primary.response(0).unwrap().content_chunks_sent;
    assert!(sent < 200, "generation stopped early: {sent} of 200 chunks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_open_streams_finish() {
    let mut gw = start("[server]\nshutdown_grace_secs = 20").await;
    gw.primary
        .set_default(Script::answer(ANSWER).delay_between_chunks(Duration::from_millis(20)));
    let r = post_chat(&gw, true).await;
    assert_eq!(r.status(), 200);
    gw.shutdown.take().unwrap().send(()).unwrap();
    let text = r.text().await.unwrap();
    assert!(
        text.contains("data: [DONE]"),
        "the open stream ran to its end: {text}"
    );
    let served = tokio::time::timeout(Duration::from_secs(10), &mut gw.served).await;
    assert!(
        matches!(served, Ok(Ok(Ok(())))),
        "the server stopped after the stream: {served:?}"
    );
    assert_eq!(gw.primary.response(0).unwrap().outcome, Outcome::Finished);
    let refused = reqwest::Client::new()
        .post(format!("{}/chat/completions", gw.base_url))
        .json(&chat(false))
        .send()
        .await;
    assert!(refused.is_err(), "no new connections after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_passes_on_how_long_to_wait() {
    // Found by a bug hunt: the 429 came through without the provider's Retry-After.
    let gw = start("").await;
    let limited =
        r#"{"error":{"message":"Requests rate limit exceeded","type":"requests","code":"Throttling"}}"#;
    gw.primary
        .push(Script::status(429, limited).header("retry-after", "7"));
    gw.fallback
        .push(Script::status(429, limited).header("retry-after", "3"));
    let r = post_chat(&gw, false).await;
    assert_eq!(r.status(), 429);
    assert_eq!(
        r.headers().get("retry-after").map(|v| v.to_str().unwrap()),
        Some("7"),
        "the first provider's status, code and wait"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_blocked_before_its_first_word_is_the_400_of_a_block() {
    // Found by a bug hunt: DashScope's moderation error as a stream's first event came
    // back as a 502, where the same block of a request that does not stream is a 400.
    let gw = start("").await;
    for stream in [true, false] {
        for mock in [&gw.primary, &gw.fallback] {
            mock.push(if stream {
                Script::stream_error(ModerationStage::Input)
            } else {
                Script::moderation_error(ModerationStage::Input)
            });
        }
        let r = post_chat(&gw, stream).await;
        assert_eq!(r.status(), 400, "stream: {stream}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["error"]["code"], "data_inspection_failed",
            "stream: {stream}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_every_provider_refused_reaches_the_caller_whole() {
    // Found by a bug hunt: the caller got the refusal cut where the window stopped it
    // ("I can't help with tha"), tokens lost.
    let gw = start("[preroute]\nenabled = false").await;
    let first =
        "I'm sorry, but I cannot discuss political topics. Perhaps we could talk about the history of \
                 tea, the weather in spring, or how to bake a good loaf of bread instead?";
    gw.primary.push(Script::answer(first));
    gw.fallback.push(Script::answer(
        "I'm sorry, but I cannot discuss political topics.",
    ));
    let r = post_chat(&gw, true).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-refusal-guard-verdict"], "policy_refusal");
    assert_eq!(r.headers()["x-refusal-guard-providers"], "primary,fallback");
    let body = r.text().await.unwrap();
    let mut text = String::new();
    let mut finish = None;
    for data in body.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if data == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(data).unwrap();
        assert!(v.get("error").is_none(), "{body}");
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            text.push_str(t);
        }
        if let Some(f) = v["choices"][0]["finish_reason"].as_str() {
            finish = Some(f.to_string());
        }
    }
    assert_eq!(text, first, "the primary's refusal, whole and once");
    assert_eq!(finish.as_deref(), Some("stop"));
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
}
