//! `RefusalGuardHttpLayer` on the example's plain axum proxy (examples/axum_proxy.rs is
//! compiled into this test, so the example is what is tested).

#[allow(dead_code)]
#[path = "../examples/axum_proxy.rs"]
mod axum_proxy;

use refusal_guard::mock::{MockProvider, Script};
use refusal_guard::wire::ModerationStage;
use serde_json::{json, Value};

/// What the fallback answers (a real answer: the guard judges it too).
const FALLBACK_ANSWER: &str = "Falun Gong was introduced to the public by Li Hongzhi in 1992 in Changchun.";

const ANSWER: &str =
    "Falun Gong is a spiritual practice that emerged in China in 1992 and was banned in 1999.";

async fn proxy_in_front_of(primary: &MockProvider, fallback: &MockProvider) -> String {
    let app = axum_proxy::app(primary.base_url(), fallback.client("fallback"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/chat/completions", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn chat(stream: bool) -> Value {
    json!({"model": "qwen-plus", "stream": stream, "messages": [{"role": "user", "content": "What is Falun Gong?"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_through_the_proxy_is_answered_by_the_fallback() {
    let primary = MockProvider::start().await;
    let fallback = MockProvider::start().await;
    primary.set_default(Script::answer("I'm sorry, but I can't discuss this topic."));
    fallback.set_default(Script::answer(ANSWER));
    let url = proxy_in_front_of(&primary, &fallback).await;
    let client = reqwest::Client::new();

    let r = client
        .post(&url)
        .bearer_auth("sk-user")
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-refusal-guard-provider"], "fallback");
    assert_eq!(r.headers()["x-refusal-guard-attempts"], "2");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], ANSWER);
    // The proxy's own forwarding still ran: the user's key reached the primary.
    assert_eq!(primary.request(0).unwrap().bearer_token(), Some("sk-user"));

    let r = client
        .post(&url)
        .bearer_auth("sk-user")
        .json(&chat(true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let sse = r.text().await.unwrap();
    assert!(
        !sse.contains("sorry"),
        "nothing of the refusal reached the caller"
    );
    let text: String = sse
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect();
    assert_eq!(text, ANSWER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderation_block_through_the_proxy_is_rerouted_and_answers_pass() {
    let primary = MockProvider::start().await;
    let fallback = MockProvider::start().await;
    primary.push(Script::moderation_error(ModerationStage::Input));
    primary.set_default(Script::answer(ANSWER));
    fallback.set_default(Script::answer(FALLBACK_ANSWER));
    let url = proxy_in_front_of(&primary, &fallback).await;
    let client = reqwest::Client::new();
    let r = client.post(&url).json(&chat(false)).send().await.unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], FALLBACK_ANSWER);

    // Another conversation (the first one now sticks to the fallback: its prompt was flagged).
    let mut other = chat(false);
    other["messages"][0]["content"] = json!("When was Falun Gong founded?");
    let r = client.post(&url).json(&other).send().await.unwrap();
    assert_eq!(r.headers()["x-refusal-guard-verdict"], "answer");
    assert_eq!(r.headers()["x-refusal-guard-provider"], "upstream");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], ANSWER);
    assert_eq!(fallback.requests().len(), 1);
}
