//! Pass-through of the OpenAI-compatible paths the gateway does not judge: embeddings and
//! the rest reach the primary provider of the request's route with that provider's key,
//! and come back byte for byte; the gateway's edge (client keys, body limit) still holds.

use refusal_guard::gateway::Gateway;
use refusal_guard::mock::MockProvider;
use serde_json::{json, Value};

const QWEN_KEY: &str = "sk-qwen-provider-7f3a9c1e5b";
const OTHER_KEY: &str = "sk-other-provider-2d8e4f6a0c";
const CLIENT_KEY: &str = "sk-gateway-client-91b2c3d4";

/// Two providers behind a gateway: `qwen` serves `qwen-plus` (and maps it to the name it
/// uses for embeddings), `other` serves `other-model`; the gateway requires `CLIENT_KEY`.
struct Setup {
    qwen: MockProvider,
    other: MockProvider,
    gateway: Gateway,
    base: String,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

async fn setup(test: &str, extra: &str) -> Setup {
    let qwen = MockProvider::start().await;
    let other = MockProvider::start().await;
    qwen.require_api_key(QWEN_KEY);
    other.require_api_key(OTHER_KEY);
    // Variable names per test: tests run in parallel in one process.
    let (qk, ok, ck) = (
        format!("RG_PT_{test}_QWEN"),
        format!("RG_PT_{test}_OTHER"),
        format!("RG_PT_{test}_CLIENTS"),
    );
    std::env::set_var(&qk, QWEN_KEY);
    std::env::set_var(&ok, OTHER_KEY);
    std::env::set_var(&ck, CLIENT_KEY);
    let text = format!(
        r#"
[server]
api_keys_env = "{ck}"
{extra}
[providers.qwen]
base_url = "{}"
api_key_env = "{qk}"
headers = {{ "X-DashScope-WorkSpace" = "ws-1" }}
models = {{ "qwen-embed" = "text-embedding-v3" }}
[providers.other]
base_url = "{}"
api_key_env = "{ok}"
[[routes]]
model = "qwen-plus"
primary = "qwen"
[[routes]]
model = "qwen-embed"
primary = "qwen"
[[routes]]
model = "other-model"
primary = "other"
"#,
        qwen.base_url(),
        other.base_url()
    );
    let config = crate::common::gateway_config(&text);
    let gateway = Gateway::from_config(&config).expect("gateway");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gateway.clone().serve(listener, async {
        let _ = rx.await;
    }));
    Setup {
        qwen,
        other,
        gateway,
        base,
        _shutdown: tx,
    }
}

fn embeddings_body(model: &str) -> Value {
    json!({"model": model, "input": ["The Great Wall of China", "长城"], "encoding_format": "float"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_pass_through_with_the_providers_key_byte_for_byte() {
    let s = setup("EMB", "").await;
    let http = reqwest::Client::new();
    let body = serde_json::to_vec(&embeddings_body("qwen-plus")).unwrap();
    let via_gateway = http
        .post(format!("{}/v1/embeddings", s.base))
        .bearer_auth(CLIENT_KEY)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(via_gateway.status(), 200);
    assert_eq!(
        via_gateway.headers()["content-type"],
        "application/json",
        "the provider's headers come back"
    );
    let via_gateway = via_gateway.bytes().await.unwrap();
    let direct = http
        .post(format!("{}/embeddings", s.qwen.base_url()))
        .bearer_auth(QWEN_KEY)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(via_gateway, direct, "byte-identical to the provider's own answer");
    let parsed: Value = serde_json::from_slice(&via_gateway).unwrap();
    assert_eq!(parsed["data"].as_array().unwrap().len(), 2);

    let seen = s.qwen.other_requests();
    assert_eq!(seen.len(), 2, "the gateway's request and the direct one");
    let forwarded = &seen[0];
    assert_eq!(forwarded.path, "/v1/embeddings");
    assert_eq!(
        forwarded.bearer_token(),
        Some(QWEN_KEY),
        "the provider's key, not the client's"
    );
    assert_eq!(
        forwarded.header("x-dashscope-workspace"),
        Some("ws-1"),
        "provider headers go along"
    );
    assert_eq!(forwarded.body, embeddings_body("qwen-plus"), "the body as sent");
    assert!(s.other.other_requests().is_empty(), "the other route saw nothing");
    let text = String::from_utf8_lossy(&via_gateway);
    assert!(!text.contains(QWEN_KEY) && !text.contains(CLIENT_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_picks_the_route_and_its_provider_name() {
    let s = setup("ROUTE", "").await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/v1/embeddings", s.base))
        .bearer_auth(CLIENT_KEY)
        .json(&embeddings_body("other-model"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = s.other.other_requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].bearer_token(), Some(OTHER_KEY));
    assert!(s.qwen.other_requests().is_empty());

    // A route whose provider maps the name: the provider gets its own name.
    let r = http
        .post(format!("{}/v1/embeddings", s.base))
        .bearer_auth(CLIENT_KEY)
        .json(&embeddings_body("qwen-embed"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["model"], "text-embedding-v3");
    assert_eq!(s.qwen.other_requests()[0].body["model"], "text-embedding-v3");

    // A request without a body names no model: the default route (the first here), with
    // the provider's answer (a 404 from the mock for an id it does not serve) passed on.
    let r = http
        .get(format!("{}/v1/files", s.base))
        .bearer_auth(CLIENT_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"]["message"], "no route for /v1/files",
        "the provider's own body"
    );
    let last = s.qwen.other_requests().pop().unwrap();
    assert_eq!((last.method.as_str(), last.path.as_str()), ("GET", "/v1/files"));
    assert_eq!(last.bearer_token(), Some(QWEN_KEY));

    // `/v1/models/{id}` routes by the id.
    let r = http
        .get(format!("{}/v1/models/other-model", s.base))
        .bearer_auth(CLIENT_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the mock serves no model retrieval");
    assert_eq!(
        s.other.other_requests().pop().unwrap().path,
        "/v1/models/other-model"
    );

    let metrics = http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains(r#"refusal_guard_passthrough_responses_total{endpoint="embeddings",status="200"} 2"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_models_missing_keys_and_large_bodies_stop_at_the_gateway() {
    let s = setup("EDGE", "max_body_bytes = 2000").await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/embeddings", s.base);

    let r = http
        .post(&url)
        .bearer_auth(CLIENT_KEY)
        .json(&embeddings_body("no-such-model"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_found");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no-such-model"));

    let r = http
        .post(&url)
        .json(&embeddings_body("qwen-plus"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no client key");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");
    let r = http
        .post(&url)
        .bearer_auth("sk-wrong")
        .json(&embeddings_body("qwen-plus"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a wrong client key");

    let big = json!({"model": "qwen-plus", "input": "x".repeat(5000)});
    let r = http
        .post(&url)
        .bearer_auth(CLIENT_KEY)
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "request_too_large");

    // A body that is not JSON streams on, and is cut with a 413 past the limit too.
    let r = http
        .post(format!("{}/v1/audio/transcriptions", s.base))
        .bearer_auth(CLIENT_KEY)
        .header("content-type", "application/octet-stream")
        .body(vec![b'a'; 5000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    assert!(s.qwen.other_requests().is_empty(), "nothing reached a provider");
    assert!(s.other.other_requests().is_empty());

    // Paths outside /v1 get OpenAI's error shape, not an empty 404.
    let r = http.get(format!("{}/nowhere", s.base)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    drop(s.gateway);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_quoting_its_key_back_is_redacted() {
    let s = setup("REDACT", "").await;
    // The provider now wants another key: it answers 401 quoting the one it got.
    s.qwen.require_api_key("sk-something-else-entirely");
    let r = reqwest::Client::new()
        .post(format!("{}/v1/embeddings", s.base))
        .bearer_auth(CLIENT_KEY)
        .json(&embeddings_body("qwen-plus"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the provider's status passes through");
    let text = r.text().await.unwrap();
    assert!(!text.contains(QWEN_KEY), "{text}");
    assert!(text.contains("<redacted>"), "{text}");
}
