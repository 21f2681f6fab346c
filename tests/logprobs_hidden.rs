//! Logprobs the guard asks for on its own behalf: the checks see them, the client does
//! not. Over real HTTP: the mock provider answers, the OpenAI-compatible client decodes,
//! a tap records what came off the wire, the guard judges and hides.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use refusal_guard::detect::logprobs::reason_fields;
use refusal_guard::layer::{AskLogprobs, RefusalGuardLayer, RerouteLayer, StreamVerdict};
use refusal_guard::mock::{MockProvider, Script};
use refusal_guard::provider::{ChatResponse, ResponseBody};
use refusal_guard::verdict::{Evidence, VerdictClass};
use refusal_guard::wire::{ChatRequest, Message};
use refusal_guard::{Error, Verdict};
use serde_json::{json, Value};
use tower::{Layer, ServiceExt};

const ANSWER: &str = "The Cultural Revolution lasted from 1966 to 1976. It was launched by Mao Zedong, \
and it brought persecution and the closing of schools and universities.";

const REFUSAL: &str = "I'm sorry, but I can't discuss this topic. Let's talk about something else.";

fn request(stream: bool) -> ChatRequest {
    let mut r = ChatRequest::new(
        "qwen-plus",
        vec![Message::user("What was the Cultural Revolution?")],
    );
    r.stream = Some(stream);
    r
}

/// What came off the wire, as JSON values: the complete answer or every chunk.
type Tap = Arc<Mutex<Vec<Value>>>;

/// The mock's client, with a tap that records (as JSON) what the client decoded.
fn tapped_client(
    mock: &MockProvider,
) -> (
    impl tower::Service<ChatRequest, Response = ChatResponse, Error = Error, Future = impl Send> + Clone,
    Tap,
) {
    let wire: Tap = Arc::default();
    let tap = wire.clone();
    let client = mock.client("mock");
    let service = tower::service_fn(move |req: ChatRequest| {
        let client = client.clone();
        let tap = tap.clone();
        async move {
            let mut response = client.oneshot(req).await?;
            match response.body {
                ResponseBody::Complete(ref c) => tap.lock().unwrap().push(serde_json::to_value(c).unwrap()),
                ResponseBody::Stream(s) => {
                    response.body = ResponseBody::Stream(Box::pin(s.inspect(move |item| {
                        if let Ok(c) = item {
                            tap.lock().unwrap().push(serde_json::to_value(c).unwrap());
                        }
                    })));
                }
            }
            Ok::<_, Error>(response)
        }
    });
    (service, wire)
}

fn guard() -> RefusalGuardLayer {
    RefusalGuardLayer::new().ask_logprobs(AskLogprobs::top(5))
}

/// A value with every `choices[*].logprobs` removed, and whether there was one.
fn without_logprobs(mut v: Value) -> (Value, bool) {
    let mut had = false;
    if let Some(choices) = v.get_mut("choices").and_then(Value::as_array_mut) {
        for c in choices {
            if let Some(o) = c.as_object_mut() {
                had |= o.remove("logprobs").is_some_and(|l| !l.is_null());
            }
        }
    }
    (v, had)
}

/// Whether a `logprobs` key appears anywhere in a JSON text.
fn mentions_logprobs(text: &str) -> bool {
    text.contains("\"logprobs\"") || text.contains("top_logprobs")
}

/// The opening evidence of a verdict and its numbers.
fn opening(verdict: &Verdict) -> std::collections::HashMap<String, f64> {
    let e: &Evidence = verdict
        .evidence
        .iter()
        .find(|e| e.source == "logprobs" && e.reason.starts_with("opening"))
        .unwrap_or_else(|| panic!("no opening evidence in {:?}", verdict.evidence));
    reason_fields(&e.reason)
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

fn asked_for_logprobs(body: &Value, top: u64) {
    assert_eq!(body["logprobs"], json!(true), "{body}");
    assert_eq!(body["top_logprobs"], json!(top), "{body}");
}

fn sent_no_logprobs(body: &Value) {
    assert!(
        body.get("logprobs").is_none() && body.get("top_logprobs").is_none(),
        "{body}"
    );
}

#[tokio::test]
async fn a_complete_answer_is_judged_with_logprobs_and_returned_without_them() {
    let mock = MockProvider::start().await;
    mock.set_default(Script::answer(ANSWER).with_logprobs(-0.05));
    let (client, wire) = tapped_client(&mock);
    let response = guard().layer(client).oneshot(request(false)).await.unwrap();

    asked_for_logprobs(&mock.request(0).unwrap().body, 5);
    let verdict = response.extensions.get::<Verdict>().unwrap().clone();
    assert_eq!(verdict.class(), VerdictClass::Answer);
    let numbers = opening(&verdict);
    assert_eq!(numbers["top_k"], 5.0, "the checks saw the alternatives");
    assert_eq!(numbers["entered_refusal"], 0.0);
    assert!((numbers["first_p"] - (-0.05f64).exp()).abs() < 1e-3);

    let got = serde_json::to_value(response.as_complete().unwrap()).unwrap();
    assert!(!mentions_logprobs(&got.to_string()), "{got}");
    let (expected, had) = without_logprobs(wire.lock().unwrap()[0].clone());
    assert!(had, "the provider did send logprobs");
    assert_eq!(got, expected, "everything else is the provider's answer");
}

#[tokio::test]
async fn a_stream_is_judged_with_logprobs_and_every_chunk_released_without_them() {
    let mock = MockProvider::start().await;
    mock.set_default(Script::answer(ANSWER).with_logprobs(-0.05).with_usage());
    let (client, wire) = tapped_client(&mock);
    let mut req = request(true);
    req.stream_options = Some(refusal_guard::wire::StreamOptions {
        include_usage: Some(true),
        ..Default::default()
    });
    let response = guard().layer(client).oneshot(req).await.unwrap();
    asked_for_logprobs(&mock.request(0).unwrap().body, 5);
    let window = response.extensions.get::<Verdict>().unwrap().clone();
    assert_eq!(opening(&window)["top_k"], 5.0, "the window's checks saw them");
    let final_verdict = response.extensions.get::<StreamVerdict>().unwrap().clone();
    let ResponseBody::Stream(stream) = response.body else {
        panic!("stream")
    };
    let released: Vec<Value> = stream
        .map(|c| serde_json::to_value(c.unwrap()).unwrap())
        .collect()
        .await;
    let sent = wire.lock().unwrap().clone();
    assert!(
        sent.len() > 20,
        "role, content, finish and usage chunks: {}",
        sent.len()
    );
    assert_eq!(released.len(), sent.len(), "no chunk lost or added");
    let mut with_logprobs = 0;
    for (got, wire) in released.iter().zip(sent) {
        assert!(!mentions_logprobs(&got.to_string()), "{got}");
        let (expected, had) = without_logprobs(wire);
        with_logprobs += usize::from(had);
        assert_eq!(got, &expected);
    }
    assert_eq!(
        with_logprobs,
        Script::answer(ANSWER).pieces().len(),
        "every content chunk came with logprobs"
    );
    let whole = final_verdict.wait().await.unwrap();
    assert_eq!(opening(&whole)["top_k"], 5.0, "the final verdict saw them too");
}

#[tokio::test]
async fn a_client_that_asked_gets_them_untouched() {
    let mock = MockProvider::start().await;
    mock.set_default(Script::answer(ANSWER).with_logprobs(-0.2));
    for stream in [false, true] {
        let (client, wire) = tapped_client(&mock);
        let mut req = request(stream);
        req.logprobs = Some(true);
        req.top_logprobs = Some(2);
        let response = guard().layer(client).oneshot(req).await.unwrap();
        let verdict = response.extensions.get::<Verdict>().unwrap().clone();
        assert_eq!(
            opening(&verdict)["top_k"],
            2.0,
            "the client's own K, not the guard's"
        );
        let got: Vec<Value> = match response.body {
            ResponseBody::Complete(c) => vec![serde_json::to_value(c).unwrap()],
            ResponseBody::Stream(s) => {
                s.map(|c| serde_json::to_value(c.unwrap()).unwrap())
                    .collect()
                    .await
            }
        };
        let sent = wire.lock().unwrap().clone();
        assert_eq!(got, sent, "released exactly as received (stream: {stream})");
        assert!(got.iter().any(|v| v.to_string().contains("\"top_logprobs\"")));
    }
    for r in mock.requests() {
        asked_for_logprobs(&r.body, 2);
    }
}

#[tokio::test]
async fn a_provider_that_rejects_them_is_asked_again_once_without_and_never_again() {
    let mock = MockProvider::start().await;
    mock.reject_logprobs(true);
    mock.set_default(Script::answer(ANSWER).with_logprobs(-0.05));
    let guarded = guard().layer(mock.client("mock"));

    let first = guarded.clone().oneshot(request(true)).await.unwrap();
    let ResponseBody::Stream(s) = first.body else {
        panic!("stream")
    };
    let text: String = s.map(|c| c.unwrap().content().to_string()).collect().await;
    assert_eq!(text, ANSWER);
    let requests = mock.requests();
    assert_eq!(requests.len(), 2, "the rejected try and the retry");
    asked_for_logprobs(&requests[0].body, 5);
    sent_no_logprobs(&requests[1].body);

    for stream in [false, true, false] {
        let r = guarded.clone().oneshot(request(stream)).await.unwrap();
        assert_eq!(
            r.extensions.get::<Verdict>().unwrap().class(),
            VerdictClass::Answer
        );
    }
    let requests = mock.requests();
    assert_eq!(requests.len(), 5, "one request each from now on");
    for r in &requests[2..] {
        sent_no_logprobs(&r.body);
    }

    // A guard built anew per request (the HTTP-level layer does that) remembers by name.
    let named = guard().ask_logprobs(AskLogprobs::top(5).provider("mock"));
    let _ = named
        .layer(mock.client("mock"))
        .oneshot(request(false))
        .await
        .unwrap();
    let _ = named
        .layer(mock.client("mock"))
        .oneshot(request(false))
        .await
        .unwrap();
    assert_eq!(
        mock.requests().len(),
        8,
        "a retry for the first, none for the second"
    );
    sent_no_logprobs(&mock.request(7).unwrap().body);
}

#[tokio::test]
async fn a_rejection_of_the_clients_own_logprobs_is_the_clients() {
    let mock = MockProvider::start().await;
    mock.reject_logprobs(true);
    let mut req = request(false);
    req.logprobs = Some(true);
    let err = guard().layer(mock.client("mock")).oneshot(req).await.unwrap_err();
    assert_eq!(err.as_provider().unwrap().status, 400, "{err}");
    assert_eq!(mock.requests().len(), 1, "not retried: the client asked");
}

#[tokio::test]
async fn a_coin_flip_refusal_seen_through_hidden_logprobs_is_resampled() {
    let mock = MockProvider::start().await;
    // "I'm" + " sorry," at -0.6 each: the refusal was entered at probability 0.30.
    mock.push(Script::answer(REFUSAL).with_logprobs(-0.6));
    mock.push(Script::answer(ANSWER).with_logprobs(-0.05));
    let service = RerouteLayer::new()
        .resample_below(0.5)
        .layer(guard().layer(mock.client("mock")));
    let response = service.oneshot(request(true)).await.unwrap();
    let ResponseBody::Stream(s) = response.body else {
        panic!("stream")
    };
    let chunks: Vec<Value> = s
        .map(|c| serde_json::to_value(c.unwrap()).unwrap())
        .collect()
        .await;
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, ANSWER);
    assert!(chunks.iter().all(|c| !mentions_logprobs(&c.to_string())));
    let requests = mock.requests();
    assert_eq!(requests.len(), 2, "the refusal and the resample");
    for r in &requests {
        asked_for_logprobs(&r.body, 5);
    }
    assert!(
        requests[1].body.get("seed").is_some(),
        "resampled with a new seed"
    );
}

#[tokio::test]
async fn a_refusal_stopped_in_the_window_holds_no_logprobs_and_shows_the_fork() {
    let mock = MockProvider::start().await;
    mock.set_default(Script::answer(REFUSAL).with_logprobs(-0.6));
    for stream in [true, false] {
        let err = guard()
            .layer(mock.client("mock"))
            .oneshot(request(stream))
            .await
            .unwrap_err();
        let r = err.as_refusal().expect("stopped");
        assert_eq!(r.verdict.class(), VerdictClass::PolicyRefusal, "{}", r.verdict);
        let numbers = opening(&r.verdict);
        assert_eq!(numbers["entered_refusal"], 1.0);
        // The mock's alternatives " alt1".." alt4" sit 1.5 nats apart below the chosen
        // token and leave every opener: their mass is the answer mass at the fork.
        let expected: f64 = (1..5).map(|j| (-0.6 - 1.5 * j as f64).exp()).sum();
        assert!((numbers["answer_mass"] - expected).abs() < 1e-3, "{numbers:?}");
        for chunk in &r.held {
            assert!(chunk.choices.iter().all(|c| c.logprobs.is_none()));
        }
        if let Some(c) = &r.completion {
            assert!(c.choices.iter().all(|c| c.logprobs.is_none()));
        }
    }
}

/// A gateway over one mock provider that the guard asks for logprobs.
async fn gateway(mock: &MockProvider) -> (String, tokio::sync::oneshot::Sender<()>) {
    let text = format!(
        r#"
[providers.primary]
base_url = "{}"
max_retries = 0
ask_logprobs = true
ask_top_logprobs = 3
[[routes]]
model = "*"
primary = "primary"
"#,
        mock.base_url()
    );
    crate::common::serve(&text).await
}

/// The JSON of each SSE `data:` event, `[DONE]` left out.
fn sse_events(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// What differs per request whatever the guard does: the creation time.
fn normalised(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("created");
        o.remove("refusal_guard");
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_gateway_clients_get_the_providers_answer_without_them() {
    let mock = MockProvider::start().await;
    let script = Script::answer(ANSWER).with_logprobs(-0.05);
    mock.set_default(script.clone());
    let (base_url, _stop) = gateway(&mock).await;
    let client = reqwest::Client::new();
    let body = json!({"model": "qwen-plus", "stream": true,
        "messages": [{"role": "user", "content": "What was the Cultural Revolution?"}]});

    let r = client
        .post(format!("{base_url}/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-refusal-guard-verdict"], "answer");
    let text = r.text().await.unwrap();
    assert!(!mentions_logprobs(&text), "{text}");
    asked_for_logprobs(&mock.request(0).unwrap().body, 3);
    // The mock's answer to the request the client sent (request 0, so the same id).
    let client_request: ChatRequest = serde_json::from_value(body.clone()).unwrap();
    let expected = String::from_utf8(script.render_stream(&client_request).to_vec()).unwrap();
    let expected: Vec<Value> = sse_events(&expected).into_iter().map(normalised).collect();
    let got: Vec<Value> = sse_events(&text).into_iter().map(normalised).collect();
    assert_eq!(got, expected);

    let mut complete = body.clone();
    complete["stream"] = json!(false);
    let r = client
        .post(format!("{base_url}/chat/completions"))
        .json(&complete)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got: Value = r.json().await.unwrap();
    assert!(!mentions_logprobs(&got.to_string()), "{got}");
    asked_for_logprobs(&mock.request(1).unwrap().body, 3);
    // The mock's own answer to the client's request, asked directly (request 2).
    let direct: Value = client
        .post(format!("{}/chat/completions", mock.base_url()))
        .bearer_auth(refusal_guard::mock::MOCK_API_KEY)
        .json(&complete)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = |v: &Value| v["id"].as_str().unwrap().to_string();
    assert_ne!(id(&got), id(&direct), "two requests, two ids");
    let mut direct = normalised(direct);
    direct["id"] = got["id"].clone();
    assert_eq!(normalised(got), direct);
}

/// A plain proxy route (forward the body, stream the answer back) with the HTTP-level
/// layer in front of it, its guard asking for logprobs.
async fn proxied(mock: &MockProvider) -> String {
    use axum::body::Body;
    use axum::extract::{Request, State};
    use refusal_guard::gateway::RefusalGuardHttpLayer;

    async fn forward(State(upstream): State<String>, request: Request) -> axum::response::Response {
        let body = axum::body::to_bytes(request.into_body(), 1 << 20).await.unwrap();
        let r = reqwest::Client::new()
            .post(format!("{upstream}/chat/completions"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let mut out = axum::response::Response::builder().status(r.status().as_u16());
        if let Some(ct) = r.headers().get("content-type") {
            out = out.header("content-type", ct.as_bytes());
        }
        out.body(Body::from_stream(r.bytes_stream())).unwrap()
    }

    let app = axum::Router::new()
        .route("/v1/chat/completions", axum::routing::post(forward))
        .route_layer(RefusalGuardHttpLayer::new("upstream").guard(guard()))
        .with_state(mock.base_url());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/chat/completions", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_http_layer_they_are_hidden_and_a_rejection_is_remembered() {
    let mock = MockProvider::start().await;
    mock.set_default(Script::answer(ANSWER).with_logprobs(-0.05));
    let url = proxied(&mock).await;
    let client = reqwest::Client::new();
    let send = |stream: bool| {
        let body = json!({"model": "qwen-plus", "stream": stream,
            "messages": [{"role": "user", "content": "What was the Cultural Revolution?"}]});
        client.post(&url).json(&body).send()
    };

    let r = send(true).await.unwrap();
    assert_eq!(r.headers()["x-refusal-guard-verdict"], "answer");
    let text = r.text().await.unwrap();
    assert!(!mentions_logprobs(&text), "{text}");
    let content: String = sse_events(&text)
        .iter()
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect();
    assert_eq!(content, ANSWER);
    asked_for_logprobs(&mock.request(0).unwrap().body, 5);

    // The layer builds its guard anew for every request: the rejection is remembered by
    // the route's name all the same.
    mock.reject_logprobs(true);
    for stream in [false, true] {
        let r = send(stream).await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(!mentions_logprobs(&r.text().await.unwrap()));
    }
    let requests = mock.requests();
    assert_eq!(requests.len(), 4, "asked, rejected, retried, then plain");
    asked_for_logprobs(&requests[1].body, 5);
    sent_no_logprobs(&requests[2].body);
    sent_no_logprobs(&requests[3].body);
}
