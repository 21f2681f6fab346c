//! The fault suite: what the client, the layers and the gateway do when the upstream
//! misbehaves, against the mock provider over real loopback HTTP.
//!
//! Every case checks the one property a gateway must never break: no token is lost and
//! none is duplicated. What the caller received is compared, exactly, with what the mock
//! sent: either the whole answer once, or a prefix of it ending at a chunk boundary
//! followed by one typed error and nothing after it. Cases: 503 storms under the retry
//! budget, a primary that keeps failing skipped during its cooldown, a deadline at each stage (connect, first byte, between chunks, total), cuts at
//! many chunk boundaries with and without a fallback, malformed chunks, a slow-loris
//! upstream, a client that leaves mid-stream (the upstream request must be cancelled and
//! no task left behind), and an upstream that sends 100 MB. (More answers needing the
//! encoder than it can read: tests/overload.rs, a process of its own.)
//!
//! Time is never asserted: tokio timeouts around each case only turn a hang into a
//! failure. The deadlines under test are short (hundreds of milliseconds) so the whole
//! suite runs in a few seconds.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use refusal_guard::layer::failover::{DeadlineLayer, ProviderPolicy, RetryPolicy};
use refusal_guard::layer::RefusalGuardLayer;
use refusal_guard::mock::{split_pieces, Gate, MockProvider, Outcome, Script};
use refusal_guard::provider::{ChatResponse, OpenAiCompatible, ResponseBody};
use refusal_guard::wire::{ChatRequest, Message, Role};
use refusal_guard::Error;
use serde_json::{json, Value};
use tower::{Layer, ServiceExt};

/// The answer every case streams: words and CJK characters, under 512 bytes so that a
/// fallback that restarts it is recognised as a repeat and trimmed.
const TEXT: &str = "The Great Wall of China is not visible to the naked eye from low Earth orbit, \
despite the popular claim. 长城在太空中肉眼看不见。 Astronauts have photographed it with \
long lenses, but the wall is narrow and close in colour to the land around it, so it \
blends in. Cities, airports and highways are far easier to spot from up there.";

/// Hang protection for one case.
const CASE: Duration = Duration::from_secs(30);

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(CASE, f)
        .await
        .expect("the case hung: a deadline or a cancellation did not fire")
}

fn request(stream: bool) -> ChatRequest {
    let mut r = ChatRequest::new(
        "qwen-plus",
        vec![Message::user("Is the Great Wall visible from space?")],
    );
    r.stream = Some(stream);
    r
}

fn pieces() -> Vec<String> {
    split_pieces(TEXT)
}

/// The text of the first `k` pieces.
fn prefix(k: usize) -> String {
    pieces()[..k].concat()
}

/// What a caller read from a stream.
#[derive(Debug)]
struct Read {
    text: String,
    error: Option<Error>,
}

/// Reads a chat response to its end: the content of every chunk in order, then the one
/// error that ended it. Asserts that nothing comes after the error.
async fn read(response: ChatResponse) -> Read {
    match response.body {
        ResponseBody::Complete(c) => Read {
            text: c.text(),
            error: None,
        },
        ResponseBody::Stream(mut stream) => {
            let mut text = String::new();
            while let Some(item) = stream.next().await {
                match item {
                    Ok(chunk) => text.push_str(chunk.content()),
                    Err(e) => {
                        assert!(
                            stream.next().await.is_none(),
                            "something came after the error {e}"
                        );
                        return Read { text, error: Some(e) };
                    }
                }
            }
            Read { text, error: None }
        }
    }
}

/// The guard as the gateway runs it, with a short window so that streams are released
/// after a few chunks.
fn guard() -> RefusalGuardLayer {
    RefusalGuardLayer::new()
        .window_tokens(4)
        .window_duration(Duration::from_millis(200))
}

fn policy(first_token: Duration, retries: usize) -> ProviderPolicy {
    ProviderPolicy {
        first_token,
        retry: RetryPolicy::new(retries, 1, 0.1).backoff(Duration::from_millis(1)),
        guard: guard(),
        cooldown: None,
    }
}

// ---------------------------------------------------------------------------------------
// A gateway over loopback, configured per case.

struct Gw {
    base_url: String,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// Starts a gateway from a TOML text.
async fn gateway(config: &str) -> Gw {
    let (base_url, tx) = crate::common::serve(config).await;
    Gw {
        base_url,
        _shutdown: tx,
    }
}

/// A gateway whose route `*` goes to `primary` (and `fallback`, when given); `extra`
/// adds sections and `provider` adds keys to every provider.
async fn gateway_over(primary: &str, fallback: Option<&str>, extra: &str, provider: &str) -> Gw {
    let mut text = format!(
        "{extra}\n[guard]\nwindow_tokens = 4\nwindow_ms = 200\n\
         [providers.primary]\nbase_url = \"{primary}\"\nmax_retries = 0\n{provider}\n"
    );
    if let Some(f) = fallback {
        text.push_str(&format!(
            "[providers.fallback]\nbase_url = \"{f}\"\nmax_retries = 0\n{provider}\n"
        ));
    }
    text.push_str("[[routes]]\nmodel = \"*\"\nprimary = \"primary\"\n");
    if fallback.is_some() {
        text.push_str("fallbacks = [\"fallback\"]\n");
    }
    gateway(&text).await
}

/// A gateway over a primary that answers as `primary` says and a fallback that answers
/// [`TEXT`]; `provider` adds keys to both providers.
async fn over_a_fallback(primary: Script, provider: &str) -> (MockProvider, MockProvider, Gw) {
    let (p, f) = (MockProvider::start().await, MockProvider::start().await);
    p.set_default(primary);
    f.set_default(Script::answer(TEXT));
    let gw = gateway_over(&p.base_url(), Some(&f.base_url()), "", provider).await;
    (p, f, gw)
}

fn body(stream: bool) -> Value {
    json!({"model": "qwen-plus", "stream": stream,
           "messages": [{"role": "user", "content": "Is the Great Wall visible from space?"}]})
}

/// What a caller read from the gateway's SSE body, parsed on its own (not with the
/// crate's decoder, so the two cannot share a bug).
#[derive(Debug)]
struct SseRead {
    text: String,
    /// The `error` object of an error event, when one came.
    error: Option<Value>,
    /// The last finish reason seen.
    finish: Option<String>,
    done: bool,
}

fn parse_sse(raw: &str) -> SseRead {
    let mut out = SseRead {
        text: String::new(),
        error: None,
        finish: None,
        done: false,
    };
    for event in raw.split("\n\n").filter(|e| !e.trim().is_empty()) {
        assert!(
            out.error.is_none() && !out.done,
            "an event came after the end of the stream: {event:?}\n{raw}"
        );
        let data = event
            .strip_prefix("data: ")
            .unwrap_or_else(|| panic!("not a data event: {event:?}"));
        if data == "[DONE]" {
            out.done = true;
            continue;
        }
        let v: Value = serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"));
        if let Some(e) = v.get("error") {
            out.error = Some(e.clone());
            continue;
        }
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            out.text.push_str(t);
        }
        if let Some(f) = v["choices"][0]["finish_reason"].as_str() {
            out.finish = Some(f.to_string());
        }
    }
    out
}

async fn post(gw: &Gw, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/chat/completions", gw.base_url))
        .json(body)
        .send()
        .await
        .expect("the gateway answers")
}

async fn stream_through(gw: &Gw) -> SseRead {
    let r = post(gw, &body(true)).await;
    assert_eq!(r.status(), 200);
    parse_sse(&r.text().await.expect("the gateway's body ends"))
}

// ---------------------------------------------------------------------------------------
// 503 storms.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_storm_is_bounded_by_the_retry_budget() {
    bounded(async {
        let mock = MockProvider::start().await;
        mock.set_default(Script::status(
            503,
            r#"{"error":{"message":"overloaded","code":"ServiceUnavailable"}}"#,
        ));
        let service = policy(Duration::from_secs(5), 3).stack("storm", mock.client("storm"));
        let requests = 40;
        for stream in [false, true] {
            for _ in 0..requests / 2 {
                let e = service.clone().oneshot(request(stream)).await.unwrap_err();
                assert_eq!(e.as_provider().map(|p| p.status), Some(503), "{e}");
            }
        }
        let calls = mock.requests().len();
        // Without a budget: 40 × (1 + 3) = 160 calls. The budget allows about 10 retries
        // (one a second over its 10 s window) and nothing from deposits, since nothing
        // succeeded.
        assert!(calls >= requests, "every request was tried: {calls}");
        assert!(
            calls <= requests + 12,
            "the budget bounds the retries: {calls} calls"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_after_503s_deliver_the_answer_exactly_once() {
    bounded(async {
        let mock = MockProvider::start().await;
        for stream in [false, true] {
            mock.push(Script::status(503, ""));
            mock.push(Script::status(503, ""));
            mock.push(Script::answer(TEXT));
            let service = policy(Duration::from_secs(5), 3).stack("p", mock.client("p"));
            let got = read(service.oneshot(request(stream)).await.unwrap()).await;
            assert!(got.error.is_none(), "{:?}", got.error);
            assert_eq!(got.text, TEXT, "stream={stream}");
        }
        assert_eq!(mock.requests().len(), 6);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_storm_on_the_primary_fails_over_with_the_text_once() {
    bounded(async {
        // Without a cooldown, so that every request asks the primary (the next case has one).
        let (primary, fallback, gw) =
            over_a_fallback(Script::status(503, ""), "cooldown_after_failures = 0").await;
        for _ in 0..5 {
            let got = stream_through(&gw).await;
            assert_eq!(got.text, TEXT);
            assert!(got.done && got.error.is_none(), "{got:?}");
            let r = post(&gw, &body(false)).await;
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["choices"][0]["message"]["content"], TEXT);
        }
        assert_eq!(
            primary.requests().len(),
            10,
            "max_retries = 0: one call per request"
        );
        assert_eq!(fallback.requests().len(), 10);
    })
    .await;
}

/// The gateway's `/metrics` text.
async fn metrics(gw: &Gw) -> String {
    let url = gw.base_url.trim_end_matches("/v1").to_string() + "/metrics";
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_keeps_failing_is_skipped_until_a_probe_finds_it_back() {
    bounded(async {
        let (primary, fallback, gw) = over_a_fallback(
            Script::status(503, ""),
            "cooldown_after_failures = 3\ncooldown_ms = 400",
        )
        .await;
        for i in 0..8 {
            let stream = i % 2 == 1;
            let r = post(&gw, &body(stream)).await;
            assert_eq!(r.status(), 200);
            let providers = r.headers()["x-refusal-guard-providers"]
                .to_str()
                .unwrap()
                .to_string();
            // A skipped primary is on record as an attempt: who was not asked is known.
            assert_eq!(providers, "primary,fallback", "request {i}");
            let raw = r.text().await.unwrap();
            let text = if stream {
                let got = parse_sse(&raw);
                assert!(got.done && got.error.is_none(), "{got:?}");
                got.text
            } else {
                let v: Value = serde_json::from_str(&raw).unwrap();
                v["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .to_string()
            };
            assert_eq!(text, TEXT, "request {i}: the fallback's text, once");
        }
        assert_eq!(
            primary.requests().len(),
            3,
            "three failures in a row, then the primary is not called"
        );
        assert_eq!(fallback.requests().len(), 8);
        let m = metrics(&gw).await;
        assert!(
            m.contains(r#"refusal_guard_provider_cooldowns_total{provider="primary"} 1"#),
            "{m}"
        );
        assert!(
            m.contains(r#"refusal_guard_provider_cooldown_skips_total{provider="primary"} 5"#),
            "{m}"
        );
        // The primary recovers; after the cooldown one request probes it and it answers again.
        primary.set_default(Script::answer(TEXT));
        tokio::time::sleep(Duration::from_millis(500)).await;
        for stream in [false, true] {
            let r = post(&gw, &body(stream)).await;
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["x-refusal-guard-providers"], "primary");
            let _ = r.text().await.unwrap();
        }
        assert_eq!(primary.requests().len(), 5);
        assert_eq!(fallback.requests().len(), 8);
    })
    .await;
}

/// A primary that fails every other request never fails three in a row, but half of its
/// last 6 requests failing skips it like a run would: the failure share, configured per
/// provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_failing_every_other_request_is_skipped_by_its_failure_share() {
    bounded(async {
        let primary = MockProvider::start().await;
        let fallback = MockProvider::start().await;
        fallback.set_default(Script::answer(TEXT));
        for i in 0..12 {
            primary.push(if i % 2 == 0 {
                Script::status(503, "")
            } else {
                Script::answer(TEXT)
            });
        }
        let gw = gateway_over(
            &primary.base_url(),
            Some(&fallback.base_url()),
            "",
            "cooldown_after_failures = 3\ncooldown_ms = 60000\ncooldown_failure_share = 0.5\ncooldown_failure_window = 6",
        )
        .await;
        for i in 0..10 {
            let r = post(&gw, &body(i % 2 == 1)).await;
            assert_eq!(r.status(), 200, "request {i}");
            let _ = r.text().await.unwrap();
        }
        // Calls 1, 3, 5 and 7 failed; the 7th made 3 of the last 6 (the share is read once
        // 6 have settled, and at a failure), then the primary is not called.
        assert_eq!(primary.requests().len(), 7, "the primary skipped after the share");
        assert_eq!(fallback.requests().len(), 4 + 3, "each failure and each skip");
        let m = metrics(&gw).await;
        assert!(
            m.contains(r#"refusal_guard_provider_cooldowns_total{provider="primary"} 1"#),
            "{m}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_with_no_fallback_answers_503_with_retry_after_while_its_provider_cools_down() {
    bounded(async {
        let primary = MockProvider::start().await;
        primary.set_default(Script::status(502, r#"{"error":{"message":"bad gateway"}}"#));
        let gw = gateway_over(
            &primary.base_url(),
            None,
            "",
            "cooldown_after_failures = 2\ncooldown_ms = 5000",
        )
        .await;
        for _ in 0..2 {
            assert_eq!(post(&gw, &body(false)).await.status(), 502);
        }
        for stream in [false, true] {
            let r = post(&gw, &body(stream)).await;
            assert_eq!(r.status(), 503, "stream={stream}");
            let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=5).contains(&wait), "Retry-After {wait}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["code"], "provider_cooling_down", "{v}");
            let message = v["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("primary") && message.contains("2 requests failed in a row"),
                "{message}"
            );
        }
        assert_eq!(primary.requests().len(), 2, "the cooling provider was not called");
    })
    .await;
}

/// A 429 whose `Retry-After` is longer than a retry waits (2 s by default) is not retried,
/// and skips its provider that long at once: the first request fails over after one call,
/// later ones go to the fallback without calling the primary. Without a fallback the client
/// gets the 429 with its `Retry-After`, then 503s that count the same pause down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_with_retry_after_is_not_retried_and_skips_its_provider_that_long() {
    bounded(async {
        let limited = || {
            Script::status(429, r#"{"error":{"message":"rate limited","code":"Throttling"}}"#)
                .header("retry-after", "30")
        };
        let (primary, fallback) = (MockProvider::start().await, MockProvider::start().await);
        primary.set_default(limited());
        fallback.set_default(Script::answer(TEXT));
        let gw = gateway(&format!(
            "[guard]\nwindow_tokens = 4\nwindow_ms = 200\n\
             [providers.primary]\nbase_url = \"{}\"\nmax_retries = 2\n\
             [providers.fallback]\nbase_url = \"{}\"\nmax_retries = 0\n\
             [[routes]]\nmodel = \"*\"\nprimary = \"primary\"\nfallbacks = [\"fallback\"]\n",
            primary.base_url(),
            fallback.base_url()
        ))
        .await;
        for stream in [false, true, false] {
            let r = post(&gw, &body(stream)).await;
            assert_eq!(r.status(), 200, "stream={stream}");
            assert_eq!(r.headers()["x-refusal-guard-providers"], "primary,fallback");
            let _ = r.text().await.unwrap();
        }
        assert_eq!(
            primary.requests().len(),
            1,
            "one call: not retried (max_retries = 2), then skipped"
        );
        assert_eq!(fallback.requests().len(), 3);
        let m = metrics(&gw).await;
        assert!(
            m.contains(r#"refusal_guard_provider_cooldowns_total{provider="primary"} 1"#),
            "{m}"
        );

        let alone = MockProvider::start().await;
        alone.set_default(limited());
        let gw = gateway_over(&alone.base_url(), None, "", "").await;
        let r = post(&gw, &body(false)).await;
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "30", "the provider's own");
        let r = post(&gw, &body(true)).await;
        assert_eq!(r.status(), 503);
        let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((29..=30).contains(&wait), "Retry-After {wait}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "provider_cooling_down", "{v}");
        assert_eq!(alone.requests().len(), 1);
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Deadlines at each stage.

/// A loopback port with nothing listening.
async fn closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/v1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_a_closed_port_is_a_transport_error() {
    bounded(async {
        let url = closed_port().await;
        let client = OpenAiCompatible::builder("closed", &url)
            .connect_timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        for stream in [false, true] {
            let e = client.clone().oneshot(request(stream)).await.unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::Transport {
                        mid_response: false,
                        ..
                    }
                ),
                "{e:?}"
            );
        }
        // Through the gateway: alone, a 502; with a fallback, the fallback's answer once.
        let gw = gateway_over(&url, None, "", "").await;
        let r = post(&gw, &body(true)).await;
        assert_eq!(r.status(), 502);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "upstream_unavailable");
        let fallback = MockProvider::start().await;
        fallback.set_default(Script::answer(TEXT));
        let gw = gateway_over(&url, Some(&fallback.base_url()), "", "").await;
        let got = stream_through(&gw).await;
        assert_eq!(got.text, TEXT);
        assert!(got.done);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_byte_past_the_first_token_deadline_is_a_timeout_and_cancels_the_upstream() {
    bounded(async {
        let mock = MockProvider::start().await;
        mock.set_default(Script::answer(TEXT).delay_first_byte(Duration::from_secs(60)));
        let service = policy(Duration::from_millis(300), 0).stack("slow", mock.client("slow"));
        for (i, stream) in [false, true].into_iter().enumerate() {
            let e = service.clone().oneshot(request(stream)).await.unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::Timeout {
                        what: "first token",
                        ..
                    }
                ),
                "{e:?}"
            );
            assert!(
                mock.wait_for_disconnect(i, Duration::from_secs(10)).await,
                "the upstream request was cancelled"
            );
        }
        // Through the gateway: a 504.
        let gw = gateway_over(&mock.base_url(), None, "", "first_token_timeout_ms = 300").await;
        let r = post(&gw, &body(true)).await;
        assert_eq!(r.status(), 504);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "upstream_timeout");
        assert!(mock.wait_for_disconnect(2, Duration::from_secs(10)).await);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_between_chunks_hits_the_total_deadline() {
    bounded(async {
        let mock = MockProvider::start().await;
        let gate = Gate::new(); // never opened: the upstream stalls after 6 chunks
        mock.set_default(Script::answer(TEXT).pause_after(6, &gate));
        let total = Duration::from_millis(600);
        // The bare client under the deadline, and the full provider stack under it.
        let bare = DeadlineLayer::new(total).layer(mock.client("p"));
        let got = read(bare.oneshot(request(true)).await.unwrap()).await;
        assert_eq!(got.text, prefix(6));
        assert!(
            matches!(got.error, Some(Error::Timeout { what: "total", .. })),
            "{:?}",
            got.error
        );
        assert!(mock.wait_for_disconnect(0, Duration::from_secs(10)).await);

        let stacked =
            DeadlineLayer::new(total).layer(policy(Duration::from_secs(5), 0).stack("p", mock.client("p")));
        let got = read(stacked.oneshot(request(true)).await.unwrap()).await;
        assert_eq!(got.text, prefix(6));
        assert!(
            matches!(got.error, Some(Error::Timeout { what: "total", .. })),
            "{:?}",
            got.error
        );
        assert!(mock.wait_for_disconnect(1, Duration::from_secs(10)).await);

        // Through the gateway: the prefix, then an error event, and nothing after it.
        let text = format!(
            "[guard]\nwindow_tokens = 4\nwindow_ms = 200\n\
             [providers.primary]\nbase_url = \"{}\"\nmax_retries = 0\n\
             [[routes]]\nmodel = \"*\"\nprimary = \"primary\"\ntotal_timeout_ms = 600\n",
            mock.base_url()
        );
        let gw = gateway(&text).await;
        let got = stream_through(&gw).await;
        assert_eq!(got.text, prefix(6));
        assert_eq!(got.error.as_ref().unwrap()["code"], "upstream_timeout", "{got:?}");
        assert!(!got.done);
        assert!(mock.wait_for_disconnect(2, Duration::from_secs(10)).await);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_after_the_head_is_a_first_token_timeout_and_the_fallback_answers() {
    // Found by a bug hunt: a provider that sent its headers and role chunk and then
    // nothing was released by the window as an answer and waited on past the
    // first-token deadline.
    bounded(async {
        let primary = MockProvider::start().await;
        let fallback = MockProvider::start().await;
        let gate = Gate::new(); // never opened: the primary stalls after its role chunk
        primary.set_default(Script::answer(TEXT).pause_after(0, &gate));
        fallback.set_default(Script::answer(TEXT));
        let gw = gateway_over(
            &primary.base_url(),
            Some(&fallback.base_url()),
            "",
            "first_token_timeout_ms = 600",
        )
        .await;
        let started = std::time::Instant::now();
        let r = post(&gw, &body(true)).await;
        assert_eq!(r.status(), 200);
        let providers = r.headers()["x-refusal-guard-providers"]
            .to_str()
            .unwrap()
            .to_string();
        let got = parse_sse(&r.text().await.unwrap());
        assert_eq!(got.text, TEXT, "{got:?}");
        assert!(got.error.is_none() && got.done, "{got:?}");
        assert_eq!(providers, "primary,fallback");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "answered after the deadline, not after the stall: {:?}",
            started.elapsed()
        );
        assert!(
            primary.wait_for_disconnect(0, Duration::from_secs(10)).await,
            "the stalled upstream was let go"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Cuts at chunk boundaries.

/// Where the cuts go: before anything, inside the guard's window, just after it, in the
/// middle, and after the last piece.
fn cut_points() -> Vec<usize> {
    let n = pieces().len();
    vec![0, 1, 3, 4, 5, 9, n / 2, n - 1, n]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_gives_a_prefix_then_a_typed_error() {
    bounded(async {
        let mock = MockProvider::start().await;
        let client = mock.client("p");
        for (i, k) in cut_points().into_iter().enumerate() {
            mock.push(Script::answer(TEXT).drop_after(k));
            let got = read(client.clone().oneshot(request(true)).await.unwrap()).await;
            assert_eq!(got.text, prefix(k), "cut after {k}");
            assert!(
                matches!(
                    got.error,
                    Some(
                        Error::Transport {
                            mid_response: true,
                            ..
                        } | Error::Truncated { .. }
                    )
                ),
                "cut after {k}: {:?}",
                got.error
            );
            assert_eq!(mock.response(i).unwrap().outcome, Outcome::Dropped);
        }
        // A complete answer cut in the middle of its JSON.
        mock.push(Script::answer(TEXT).drop_after(1));
        let e = client.oneshot(request(false)).await.unwrap_err();
        assert!(
            matches!(
                e,
                Error::Transport {
                    mid_response: true,
                    ..
                }
            ),
            "{e:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_with_a_fallback_gives_the_whole_text_exactly_once() {
    bounded(async {
        let primary = MockProvider::start().await;
        let fallback = MockProvider::start().await;
        let gw = gateway_over(&primary.base_url(), Some(&fallback.base_url()), "", "").await;
        let mut asked = 0;
        for k in cut_points() {
            // The guard's window is 4 tokens: a cut after it continues what was released; a
            // cut inside it sends the original request again. The fallback either obeys
            // (continues exactly, or answers from the start when nothing was released), or
            // starts the answer over regardless. Either way the caller must get the text
            // once: nothing lost, nothing repeated.
            let obedient = if k >= 4 {
                Script::chunks(pieces()[k..].to_vec())
            } else {
                Script::answer(TEXT)
            };
            for (style, fallback_script) in [("obedient", obedient), ("restarting", Script::answer(TEXT))] {
                primary.push(Script::answer(TEXT).drop_after(k));
                fallback.push(fallback_script);
                let got = stream_through(&gw).await;
                assert_eq!(got.text, TEXT, "cut after {k}, {style} fallback: {got:?}");
                assert!(got.done && got.error.is_none(), "cut after {k}, {style}: {got:?}");
                // When content had been released, the fallback was asked to continue exactly
                // what the caller had: every piece the primary sent.
                let request = fallback.request(asked).unwrap().chat_request().unwrap();
                asked += 1;
                let partial = request.messages.iter().find(|m| m.role == Role::Assistant);
                match partial {
                    Some(m) => assert_eq!(m.content.as_ref().unwrap().text(), prefix(k), "cut after {k}"),
                    None => assert!(k < 4, "cut after {k}: released content was not continued"),
                }
            }
        }
        // A complete answer cut in the middle of its JSON fails over too.
        primary.push(Script::answer(TEXT).drop_after(1));
        fallback.push(Script::answer(TEXT));
        let r = post(&gw, &body(false)).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], TEXT);
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Malformed chunks.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_chunk_is_a_typed_error_and_nothing_follows_it() {
    bounded(async {
        let mock = MockProvider::start().await;
        let client = mock.client("p");
        for k in [0, 2, 7] {
            // The mock goes on sending good chunks after the bad one; none may get through.
            mock.push(Script::answer(TEXT).malformed_at(k));
            let got = read(client.clone().oneshot(request(true)).await.unwrap()).await;
            assert_eq!(got.text, prefix(k), "malformed at {k}");
            assert!(
                matches!(got.error, Some(Error::Malformed { .. })),
                "malformed at {k}: {:?}",
                got.error
            );
        }
        mock.push(Script::answer(TEXT).malformed_at(0));
        let e = client.oneshot(request(false)).await.unwrap_err();
        assert!(matches!(e, Error::Malformed { .. }), "{e:?}");

        // Through the gateway without a fallback: what was sent before the bad chunk, then
        // one error event and nothing after it. (Inside the guard's window the guard may
        // instead judge the broken stream a non-answer; with no provider left the caller
        // then gets what was held back, closed as a content filter closes it, or the rest of
        // the stream when the refusal was decided before the malformed chunk.) Before any
        // chunk, an error response. Never a token lost or repeated.
        let gw = gateway_over(&mock.base_url(), None, "", "").await;
        for k in [0, 2, 4, 7] {
            mock.push(Script::answer(TEXT).malformed_at(k));
            let r = post(&gw, &body(true)).await;
            if k == 0 {
                assert!(r.status().is_client_error() || r.status().is_server_error());
                let v: Value = r.json().await.unwrap();
                assert!(v["error"]["message"].is_string(), "{v}");
                continue;
            }
            assert_eq!(r.status(), 200, "malformed at {k}");
            let got = parse_sse(&r.text().await.unwrap());
            assert_eq!(got.text, prefix(k), "malformed at {k}: {got:?}");
            let errored = got.error.is_some() && !got.done;
            let filtered = got.finish.as_deref() == Some("content_filter");
            assert!(errored || (k < 4 && filtered), "malformed at {k}: {got:?}");
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// A slow-loris upstream.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_loris_upstream_is_ended_by_the_gateways_deadline() {
    bounded(async {
        let mock = MockProvider::start().await;
        // One word every 150 ms: forever, for a client that waits.
        let long: String = TEXT.repeat(20);
        mock.set_default(Script::answer(&long).delay_between_chunks(Duration::from_millis(150)));
        let text = format!(
            "[guard]\nwindow_tokens = 4\nwindow_ms = 200\n\
             [providers.primary]\nbase_url = \"{}\"\nmax_retries = 0\nfirst_token_timeout_ms = 2000\n\
             [[routes]]\nmodel = \"*\"\nprimary = \"primary\"\ntotal_timeout_ms = 1500\n",
            mock.base_url()
        );
        let gw = gateway(&text).await;
        let got = stream_through(&gw).await;
        let all = split_pieces(&long);
        assert!(
            (1..all.len()).any(|k| all[..k].concat() == got.text),
            "a prefix at a chunk boundary: {got:?}"
        );
        assert_eq!(got.error.as_ref().unwrap()["code"], "upstream_timeout");
        assert!(
            mock.wait_for_disconnect(0, Duration::from_secs(10)).await,
            "the slow upstream was let go"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// A client that leaves mid-stream.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_stream_cancels_the_upstream_and_leaves_no_task_behind() {
    bounded(async {
        let metrics = tokio::runtime::Handle::current().metrics();
        let mock = MockProvider::start().await;
        let long: String = TEXT.repeat(10);
        mock.set_default(Script::answer(&long).delay_between_chunks(Duration::from_millis(5)));
        // One request at a time: a permit not given back would turn the next one into a 503.
        let gw = gateway_over(&mock.base_url(), None, "[server]\nmax_concurrency = 1", "").await;
        // One whole stream first, so that what lives as long as the gateway (the provider
        // client's pool and its idle-connection reaper) is in the baseline.
        mock.push(Script::answer(TEXT));
        let got = stream_through(&gw).await;
        assert_eq!(got.text, TEXT);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let baseline = metrics.num_alive_tasks();
        for i in 0..10 {
            let client = reqwest::Client::new();
            let response = client
                .post(format!("{}/chat/completions", gw.base_url))
                .json(&body(true))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "round {i}: the permit came back");
            let mut bytes = response.bytes_stream();
            let mut seen = 0;
            while seen < 2_000 {
                seen += bytes.next().await.unwrap().unwrap().len();
            }
            drop(bytes);
            drop(client);
            assert!(
                mock.wait_for_disconnect(i + 1, Duration::from_secs(10)).await,
                "round {i}: the upstream request was cancelled"
            );
            let sent = mock.response(i + 1).unwrap().content_chunks_sent;
            assert!(
                sent < split_pieces(&long).len(),
                "round {i}: the upstream stopped early"
            );
        }
        // Every task the requests started (connections, bodies) is gone.
        let mut alive = metrics.num_alive_tasks();
        for _ in 0..200 {
            if alive <= baseline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            alive = metrics.num_alive_tasks();
        }
        assert!(alive <= baseline, "{alive} tasks alive, {baseline} before");
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// An upstream that sends 100 MB.

const HUGE: usize = 100 << 20;
const LIMIT: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_upstream_is_stopped_at_the_limit_without_buffering_it() {
    bounded(async {
        let mock = MockProvider::start().await;
        mock.set_default(Script::huge(HUGE));
        let client = mock
            .client_builder("flood")
            .stream_limit(LIMIT)
            .body_limit(LIMIT)
            .build()
            .unwrap();
        let expected = Script::huge(HUGE).pieces().concat();
        assert!(expected.is_empty(), "the huge script is all repeats");

        // A stream: content arrives until the limit, then TooLarge.
        let got = read(client.clone().oneshot(request(true)).await.unwrap()).await;
        assert!(
            matches!(
                got.error,
                Some(Error::TooLarge {
                    what: "stream",
                    limit: LIMIT,
                    ..
                })
            ),
            "{:?}",
            got.error
        );
        assert!(
            got.text.len() <= LIMIT && got.text.len() > LIMIT / 2,
            "{}",
            got.text.len()
        );
        let piece_text = Script::huge(16 << 10).text();
        assert!(
            piece_text.repeat(got.text.len().div_ceil(piece_text.len()))[..].starts_with(&got.text),
            "what arrived is the start of the answer"
        );
        assert!(mock.wait_for_disconnect(0, Duration::from_secs(10)).await);
        let sent = mock.response(0).unwrap().content_chunks_sent * (16 << 10);
        assert!(sent < HUGE / 4, "the mock stopped early: {sent} bytes sent");

        // A complete answer: TooLarge before the body is read whole.
        let e = client.oneshot(request(false)).await.unwrap_err();
        assert!(
            matches!(
                e,
                Error::TooLarge {
                    what: "response body",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(mock.wait_for_disconnect(1, Duration::from_secs(10)).await);

        // Through the gateway, with the limits from its configuration.
        let gw = gateway_over(
            &mock.base_url(),
            None,
            "",
            &format!("max_stream_bytes = {LIMIT}\nmax_response_bytes = {LIMIT}"),
        )
        .await;
        let got = stream_through(&gw).await;
        assert_eq!(
            got.error.as_ref().unwrap()["code"],
            "upstream_too_large",
            "{:?}",
            got.error
        );
        assert!(!got.done);
        assert!(mock.wait_for_disconnect(2, Duration::from_secs(10)).await);
        let r = post(&gw, &body(false)).await;
        assert_eq!(r.status(), 502);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "upstream_too_large");
        assert!(mock.wait_for_disconnect(3, Duration::from_secs(10)).await);
    })
    .await;
}
