//! No credential leaves the process: not in a log line, an error message, an HTTP
//! response of the gateway, or the `Debug` of a configuration or a client.
//!
//! Distinctive keys are configured the way an operator does (provider keys and the
//! gateway's client keys in environment variables), then requests run through the
//! gateway and through the client directly, over every error path that carries upstream
//! text: a 401 whose message quotes the key it was sent (as careless proxies do), the
//! same quote in a 500 text body, in a 200 error body and in an error event mid-stream,
//! a moderation block, a transport failure, a malformed upstream, a client with a wrong
//! gateway key. Everything is captured (a tracing subscriber at TRACE level writes every
//! log line of every crate to a buffer) and searched for the keys.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use refusal_guard::gateway::Gateway;
use refusal_guard::mock::{MockProvider, Script};
use refusal_guard::provider::{OpenAiCompatible, ResponseBody};
use refusal_guard::wire::{ChatRequest, Message, ModerationStage};
use serde_json::{json, Value};
use tower::ServiceExt;

const PRIMARY_KEY: &str = "sk-primary-Qm2ZxV9LkP4WtR8aa";
const FALLBACK_KEY: &str = "sk-fallback-Hn6YbJ1QsD5GcF0bb";
const GATEWAY_KEY: &str = "gwkey-client-Xe4TuA7MpK2VzN6cc";
const SECOND_GATEWAY_KEY: &str = "gwkey-second-Lr8WqC3NdE1HyB5dd";
const SECRETS: [&str; 4] = [PRIMARY_KEY, FALLBACK_KEY, GATEWAY_KEY, SECOND_GATEWAY_KEY];

/// Every log line, from every crate, at every level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Everything the process let out, to be searched for the keys.
#[derive(Default)]
struct Surfaces {
    items: Vec<(String, String)>,
}

impl Surfaces {
    fn add(&mut self, what: impl Into<String>, text: impl Into<String>) {
        self.items.push((what.into(), text.into()));
    }

    fn error(&mut self, what: &str, e: &refusal_guard::Error) {
        self.add(format!("{what} (Display)"), e.to_string());
        self.add(format!("{what} (Debug)"), format!("{e:?}"));
        self.add(format!("{what} (Debug, pretty)"), format!("{e:#?}"));
    }

    /// A gateway response: status, every header and the whole body.
    async fn response(&mut self, what: &str, r: reqwest::Response) -> (u16, String) {
        let status = r.status().as_u16();
        for (name, value) in r.headers() {
            self.add(
                format!("{what} header {name}"),
                String::from_utf8_lossy(value.as_bytes()),
            );
        }
        let body = r.text().await.unwrap_or_default();
        self.add(format!("{what} body"), body.clone());
        (status, body)
    }

    fn assert_clean(&self) {
        for (what, text) in &self.items {
            for secret in SECRETS {
                assert!(!text.contains(secret), "{what} holds a key: {text}");
            }
        }
    }
}

fn request(stream: bool) -> ChatRequest {
    let mut r = ChatRequest::new("qwen-plus", vec![Message::user("Tell me about 1989.")]);
    r.stream = Some(stream);
    r
}

fn body(stream: bool) -> Value {
    json!({"model": "qwen-plus", "stream": stream, "messages": [{"role": "user", "content": "Tell me about 1989."}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_appears_in_logs_errors_responses_or_debug_output() {
    let logs = Captured::default();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(logs.clone())
        .init();
    tracing::info!("capture started");
    // The only test in this binary, so no other thread reads the environment meanwhile.
    std::env::set_var("RG_TEST_PRIMARY_KEY", PRIMARY_KEY);
    std::env::set_var("RG_TEST_FALLBACK_KEY", FALLBACK_KEY);
    std::env::set_var(
        "RG_TEST_GATEWAY_KEYS",
        format!("{GATEWAY_KEY}, {SECOND_GATEWAY_KEY}"),
    );

    let mut out = Surfaces::default();
    tokio::time::timeout(Duration::from_secs(60), run(&mut out))
        .await
        .expect("the scenarios finished");

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("capture started"), "the subscriber captures");
    assert!(text.lines().count() > 20, "the requests logged something: {text}");
    for (n, line) in text.lines().enumerate() {
        out.add(format!("log line {}", n + 1), line);
    }
    out.assert_clean();
}

async fn run(out: &mut Surfaces) {
    let primary = MockProvider::start().await;
    let fallback = MockProvider::start().await;
    primary.require_api_key(PRIMARY_KEY);
    fallback.require_api_key(FALLBACK_KEY);
    // A provider that wants another key: its 401 quotes the key it was sent.
    let strict = MockProvider::start().await;
    strict.require_api_key("sk-other-key-the-mock-wants");
    let closed = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let config_text = format!(
        r#"
[server]
api_keys_env = "RG_TEST_GATEWAY_KEYS"
[guard]
window_tokens = 4
window_ms = 200
[providers.primary]
base_url = "{}"
api_key_env = "RG_TEST_PRIMARY_KEY"
max_retries = 0
[providers.fallback]
base_url = "{}"
api_key_env = "RG_TEST_FALLBACK_KEY"
max_retries = 0
[providers.down]
base_url = "http://{closed}/v1"
api_key_env = "RG_TEST_PRIMARY_KEY"
max_retries = 0
[providers.strict]
base_url = "{}"
api_key_env = "RG_TEST_PRIMARY_KEY"
max_retries = 0
[[routes]]
model = "down-model"
primary = "down"
[[routes]]
model = "strict-model"
primary = "strict"
[[routes]]
model = "*"
primary = "primary"
fallbacks = ["fallback"]
"#,
        primary.base_url(),
        fallback.base_url(),
        strict.base_url()
    );
    let config = common::gateway_config(&config_text);
    out.add("GatewayConfig Debug", format!("{config:?}"));
    out.add("GatewayConfig Debug pretty", format!("{config:#?}"));
    let gateway = Gateway::from_config(&config).unwrap();
    out.add("Gateway Debug", format!("{gateway:?}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gateway.serve(listener, async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let url = format!("{base}/chat/completions");
    let send = |body: Value, key: &str| http.post(&url).bearer_auth(key).json(&body).send();

    // Answers, streamed and not, with each gateway key.
    for (i, key) in [GATEWAY_KEY, SECOND_GATEWAY_KEY].into_iter().enumerate() {
        let r = send(body(i == 0), key).await.unwrap();
        let (status, _) = out.response("answer", r).await;
        assert_eq!(status, 200);
    }
    // A wrong gateway key, and none.
    let r = send(body(false), "gwkey-wrong-0000000000000000").await.unwrap();
    let (status, text) = out.response("wrong gateway key", r).await;
    assert_eq!(status, 401);
    assert!(
        !text.contains("gwkey-wrong"),
        "the presented key is not echoed: {text}"
    );
    let r = http.post(&url).json(&body(false)).send().await.unwrap();
    assert_eq!(out.response("no gateway key", r).await.0, 401);

    // The upstream quotes the key it was sent, in every error shape.
    let quoting = |status: u16, key: &str| {
        Script::status(
            status,
            json!({"error": {"message": format!("Incorrect API key provided: {key}."), "code": "invalid_api_key", "type": key}, "request_id": key}).to_string(),
        )
    };
    // (Each case sets both providers' default script, so no queued script is left over
    // when a case is not re-routed.)
    let both = |p: Script, f: Script| {
        primary.set_default(p);
        fallback.set_default(f);
    };
    for stream in [false, true] {
        both(quoting(401, PRIMARY_KEY), quoting(401, FALLBACK_KEY));
        let r = send(body(stream), GATEWAY_KEY).await.unwrap();
        let (status, text) = out.response("upstream 401 quoting the key", r).await;
        assert_eq!(status, 401, "{text}");
        assert!(text.contains("<redacted>"), "{text}");
        both(
            Script::status(500, format!("auth with {PRIMARY_KEY} failed upstream")),
            Script::status(500, format!("auth with {FALLBACK_KEY} failed upstream")),
        );
        let r = send(body(stream), GATEWAY_KEY).await.unwrap();
        out.response("upstream 500 text quoting the key", r).await;
        both(quoting(200, PRIMARY_KEY), quoting(200, FALLBACK_KEY));
        let r = send(body(stream), GATEWAY_KEY).await.unwrap();
        out.response("upstream 200 error body quoting the key", r).await;
    }
    both(
        Script::answer("The Great Wall is about 21,000 km long in all its branches."),
        Script::answer("Its oldest walls date from the 7th century BC."),
    );
    // Mid-stream, after content, on both providers.
    let event = |key: &str| json!({"error": {"message": format!("quota of {key} exceeded"), "code": key}});
    primary.push(
        Script::answer("Here is the first part of a long answer that goes on")
            .error_event_after(6, event(PRIMARY_KEY)),
    );
    fallback.push(
        Script::answer("And a second part that also goes on for a while")
            .error_event_after(6, event(FALLBACK_KEY)),
    );
    let r = send(body(true), GATEWAY_KEY).await.unwrap();
    out.response("error events quoting the keys", r).await;
    // A wrong key configured: the mock's own 401 quotes what it was sent.
    for stream in [false, true] {
        let mut b = body(stream);
        b["model"] = json!("strict-model");
        let r = send(b, GATEWAY_KEY).await.unwrap();
        let (status, text) = out.response("mock 401 with require_api_key", r).await;
        assert_eq!(status, 401, "{text}");
        assert!(text.contains("<redacted>"), "the mock quoted the key: {text}");
    }
    let direct = OpenAiCompatible::builder("strict", strict.base_url())
        .api_key(PRIMARY_KEY)
        .header("X-Extra-Secret", FALLBACK_KEY)
        .unwrap();
    out.add("builder Debug", format!("{direct:?}"));
    let direct = direct.build().unwrap();
    out.add("client Debug", format!("{direct:?}"));
    for stream in [false, true] {
        let e = direct.clone().oneshot(request(stream)).await.unwrap_err();
        assert_eq!(e.as_provider().map(|p| p.status), Some(401));
        out.error("client 401", &e);
    }
    for r in strict.requests() {
        out.add("recorded request Debug", format!("{r:?}"));
    }

    // Moderation: the primary blocks, the fallback answers; then both block.
    primary.push(Script::moderation_error(ModerationStage::Input));
    let r = send(body(false), GATEWAY_KEY).await.unwrap();
    let (status, text) = out.response("moderation rerouted", r).await;
    assert_eq!(status, 200, "{text}");
    primary.push(Script::moderation_error(ModerationStage::Input));
    fallback.push(Script::moderation_error(ModerationStage::Input));
    let r = send(body(true), GATEWAY_KEY).await.unwrap();
    out.response("moderation everywhere", r).await;
    let client = primary
        .client_builder("primary")
        .api_key(PRIMARY_KEY)
        .build()
        .unwrap();
    primary.push(Script::moderation_error(ModerationStage::Output));
    let e = client.clone().oneshot(request(false)).await.unwrap_err();
    out.error("client moderation", &e);

    // Transport failure.
    let mut down = body(true);
    down["model"] = json!("down-model");
    let r = send(down, GATEWAY_KEY).await.unwrap();
    assert_eq!(out.response("transport failure", r).await.0, 502);
    let e = OpenAiCompatible::builder("down", format!("http://{closed}/v1"))
        .api_key(PRIMARY_KEY)
        .build()
        .unwrap()
        .oneshot(request(false))
        .await
        .unwrap_err();
    out.error("client transport failure", &e);

    // Malformed upstream, streamed and not, through the gateway and directly.
    for stream in [false, true] {
        primary.push(Script::answer("Some text that breaks").malformed_at(2));
        fallback.push(Script::answer("Some text that breaks").malformed_at(1));
        let r = send(body(stream), GATEWAY_KEY).await.unwrap();
        out.response("malformed upstream", r).await;
        primary.push(Script::answer("Some text that breaks").malformed_at(2));
        match client.clone().oneshot(request(stream)).await {
            Err(e) => out.error("client malformed", &e),
            Ok(response) => {
                if let ResponseBody::Stream(mut s) = response.body {
                    while let Some(item) = s.next().await {
                        if let Err(e) = item {
                            out.error("client malformed stream", &e);
                        }
                    }
                }
            }
        }
    }

    // The other routes.
    for path in ["/models", "/../metrics"] {
        let r = http
            .get(format!("{base}{path}"))
            .bearer_auth(GATEWAY_KEY)
            .send()
            .await
            .unwrap();
        out.response(path, r).await;
    }
    let metrics = http
        .get(format!("{}/metrics", base.trim_end_matches("/v1")))
        .send()
        .await
        .unwrap();
    out.response("metrics", metrics).await;
    assert!(
        primary
            .requests()
            .iter()
            .all(|r| r.bearer_token() == Some(PRIMARY_KEY)),
        "the keys did reach the provider, where they belong"
    );
}
