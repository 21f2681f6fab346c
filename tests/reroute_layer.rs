//! The re-route layer over in-memory providers: which verdicts move on, mid-stream
//! continuation, the retry budget, pre-routing, resampling, and the property that a
//! continued stream never loses or repeats text. tests/reroute_mock.rs repeats the key
//! cases over real HTTP against mock providers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::StreamExt;
use proptest::prelude::*;
use refusal_guard::detect::logprobs::LogprobCheck;
use refusal_guard::detect::signals::ProviderSignals;
use refusal_guard::detect::{Detector, Detectors, Observation};
use refusal_guard::layer::failover::{ProviderPolicy, RetryPolicy};
use refusal_guard::layer::{
    Attempts, CooldownLayer, Prices, RefusalGuardLayer, RerouteLayer, Route, StreamVerdict,
};
use refusal_guard::provider::{ChatResponse, ProviderName, ResponseBody};
use refusal_guard::verdict::{Evidence, VerdictClass, VerdictSet};
use refusal_guard::wire::{
    ChatCompletion, ChatCompletionChunk, ChatRequest, Choice, ChunkChoice, Delta, ErrorPosition,
    FinishReason, FunctionCall, Logprobs, Message, ProviderError, TokenLogprob, ToolCall, Usage,
};
use refusal_guard::{Error, Verdict};
use tower::{Layer, Service, ServiceExt};

/// "Sorry…" is a policy refusal; "I cannot help with weapons" a safety refusal.
struct TestWords;

#[async_trait]
impl Detector for TestWords {
    fn name(&self) -> &str {
        "test_words"
    }
    async fn detect(&self, obs: &Observation<'_>) -> Vec<Evidence> {
        let t = obs.text.trim_start();
        let suggests = if t.starts_with("Sorry") {
            VerdictClass::PolicyRefusal
        } else if t.starts_with("I cannot help with weapons") {
            VerdictClass::SafetyRefusal
        } else {
            return vec![];
        };
        vec![Evidence {
            source: "test_words".into(),
            suggests,
            score: 1.0,
            reason: "test".into(),
            span: None,
            tokens: vec![],
        }]
    }
}

fn guard() -> RefusalGuardLayer {
    RefusalGuardLayer::new()
        .detectors(
            Detectors::empty()
                .with(ProviderSignals)
                .with(TestWords)
                .with(LogprobCheck::default()),
        )
        .window_tokens(8)
}

/// What a fake provider does for one call.
enum Reply {
    /// Text in chunks; optionally cut by an error after that many chunks.
    Chunks(Vec<String>, Option<(usize, Error)>),
    /// Text in chunks with one logprob per chunk.
    WithLogprobs(Vec<(String, f64)>),
    /// These chunks and errors, as they are (streamed requests only).
    Raw(Vec<Result<ChatCompletionChunk, Error>>),
    Fail(Error),
}

type Behaviour = dyn Fn(usize, &ChatRequest) -> Reply + Send + Sync;

#[derive(Clone)]
struct Fake {
    name: &'static str,
    calls: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<ChatRequest>>>,
    behave: Arc<Behaviour>,
}

impl Fake {
    fn new(
        name: &'static str,
        behave: impl Fn(usize, &ChatRequest) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Fake {
            name,
            calls: Arc::default(),
            requests: Arc::default(),
            behave: Arc::new(behave),
        }
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn chunk(text: &str, logprob: Option<f64>) -> ChatCompletionChunk {
    ChatCompletionChunk {
        id: Some("c1".into()),
        choices: vec![ChunkChoice {
            delta: Delta {
                content: Some(text.into()),
                ..Default::default()
            },
            logprobs: logprob.map(|l| Logprobs {
                content: Some(vec![TokenLogprob {
                    token: text.into(),
                    logprob: l,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn finish_chunk() -> ChatCompletionChunk {
    ChatCompletionChunk {
        id: Some("c1".into()),
        choices: vec![ChunkChoice {
            finish_reason: Some(FinishReason::Stop),
            ..Default::default()
        }],
        ..Default::default()
    }
}

impl Service<ChatRequest> for Fake {
    type Response = ChatResponse;
    type Error = Error;
    type Future = BoxFuture<'static, Result<ChatResponse, Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        self.requests.lock().unwrap().push(req.clone());
        let reply = (self.behave)(n, &req);
        let name = self.name;
        Box::pin(async move {
            let (items, text): (Vec<Result<ChatCompletionChunk, Error>>, String) = match reply {
                Reply::Fail(e) => return Err(e),
                Reply::Chunks(pieces, cut) => {
                    let text = pieces.concat();
                    let mut items: Vec<_> = pieces.iter().map(|p| Ok(chunk(p, None))).collect();
                    match cut {
                        Some((at, e)) => {
                            items.truncate(at);
                            items.push(Err(e));
                        }
                        None => items.push(Ok(finish_chunk())),
                    }
                    (items, text)
                }
                Reply::Raw(items) => {
                    let text = items
                        .iter()
                        .filter_map(|i| i.as_ref().ok())
                        .map(|c| c.content())
                        .collect();
                    (items, text)
                }
                Reply::WithLogprobs(pieces) => {
                    let text = pieces.iter().map(|p| p.0.as_str()).collect();
                    let mut items: Vec<_> = pieces.iter().map(|(p, l)| Ok(chunk(p, Some(*l)))).collect();
                    items.push(Ok(finish_chunk()));
                    (items, text)
                }
            };
            let mut response = if req.is_stream() {
                ChatResponse::stream(Box::pin(futures::stream::iter(items)))
            } else {
                ChatResponse::complete(ChatCompletion {
                    choices: vec![Choice {
                        index: 0,
                        message: Message::assistant(text.clone()),
                        finish_reason: Some(FinishReason::Stop),
                        logprobs: None,
                        extra: Default::default(),
                    }],
                    usage: Some(Usage {
                        prompt_tokens: 100,
                        completion_tokens: 10,
                        total_tokens: 110,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
            };
            response.extensions.insert(ProviderName(Arc::from(name)));
            Ok(response)
        })
    }
}

fn words(text: &str) -> Vec<String> {
    text.split_inclusive(' ').map(str::to_string).collect()
}

fn moderation(stage_msg: &str, position: ErrorPosition) -> Error {
    let body = format!(
        r#"{{"error":{{"code":"data_inspection_failed","type":"data_inspection_failed","message":"{stage_msg}","param":null}},"request_id":"r"}}"#
    );
    let status = if position == ErrorPosition::Response {
        400
    } else {
        200
    };
    ProviderError::from_body("primary", status, body.as_bytes(), position).into()
}

fn request(stream: bool) -> ChatRequest {
    let mut r = ChatRequest::new("qwen-plus", vec![Message::user("What happened in 1989?")]);
    r.stream = Some(stream);
    r
}

fn service(
    primary: &Fake,
    fallback: &Fake,
    layer: RerouteLayer,
) -> impl Service<ChatRequest, Response = ChatResponse, Error = Error> + Clone {
    let g = guard();
    layer
        .fallback(Route::new(fallback.name, g.layer(fallback.clone())))
        .layer(g.layer(primary.clone()))
}

async fn collect(response: ChatResponse) -> (String, Vec<ChatCompletionChunk>) {
    match response.body {
        ResponseBody::Complete(c) => (c.text(), vec![]),
        ResponseBody::Stream(s) => {
            let chunks: Vec<_> = s.map(|c| c.expect("no error reaches the caller")).collect().await;
            (chunks.iter().map(|c| c.content()).collect(), chunks)
        }
    }
}

const ANSWER: &str = "In the spring of 1989 students gathered in Tiananmen Square to call for reform. ";

#[tokio::test]
async fn complete_policy_refusal_is_rerouted_and_attempts_recorded() {
    let primary = Fake::new("qwen", |_, _| {
        Reply::Chunks(words("Sorry, I cannot discuss that."), None)
    });
    let fallback = Fake::new("other", |_, _| Reply::Chunks(words(ANSWER), None));
    let layer = RerouteLayer::new().prices(
        "other",
        Prices {
            input: 1.0,
            cached_input: None,
            output: 2.0,
        },
    );
    let response = service(&primary, &fallback, layer)
        .oneshot(request(false))
        .await
        .unwrap();
    let attempts = response.extensions.get::<Attempts>().unwrap().snapshot();
    assert_eq!(collect(response).await.0, ANSWER);
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].provider, "qwen");
    assert_eq!(attempts[0].verdict, Some(VerdictClass::PolicyRefusal));
    assert_eq!(attempts[1].provider, "other");
    assert_eq!(attempts[1].verdict, Some(VerdictClass::Answer));
    let cost = attempts[1].cost.expect("priced");
    assert!((cost - (100.0 * 1.0 + 10.0 * 2.0) / 1e6).abs() < 1e-12);
}

#[tokio::test]
async fn a_cooling_primary_is_skipped_and_the_fallbacks_outcome_is_the_routes() {
    let primary = Fake::new("qwen", |_, _| {
        Reply::Fail(ProviderError::from_body("qwen", 503, b"down", ErrorPosition::Response).into())
    });
    let broken = Fake::new("other", |_, _| {
        Reply::Fail(ProviderError::from_body("other", 500, b"broken", ErrorPosition::Response).into())
    });
    let cooldown = CooldownLayer::new("qwen").after_failures(2);
    let g = guard();
    let svc = RerouteLayer::new()
        .fallback(Route::new("other", g.layer(broken.clone())))
        .layer(cooldown.layer(g.layer(primary.clone())));
    for _ in 0..4 {
        let e = svc.clone().oneshot(request(false)).await.unwrap_err();
        let names: Vec<String> = e
            .attempts()
            .unwrap()
            .snapshot()
            .into_iter()
            .map(|a| a.provider)
            .collect();
        assert_eq!(names, ["qwen", "other"], "a skipped provider is still on record");
        // Once the primary cools down, the fallback's 500 is the route's outcome, not the
        // skip: the skip says nothing about the request.
        let status = e.provider_error().map(|p| p.status);
        assert!(status == Some(503) || status == Some(500), "{e}");
    }
    assert_eq!(primary.calls(), 2, "two failures, then the primary is skipped");
    assert_eq!(cooldown.skipped().get(), 2);
    let e = svc.clone().oneshot(request(false)).await.unwrap_err();
    assert_eq!(e.provider_error().map(|p| p.status), Some(500), "{e}");
    assert!(e.cooling_down_for().is_none());

    // Every provider cooling down: then the skip is all there is to say.
    let fallback_cooldown = CooldownLayer::new("other").after_failures(1);
    let svc = RerouteLayer::new()
        .fallback(Route::new(
            "other",
            fallback_cooldown.layer(g.layer(broken.clone())),
        ))
        .layer(cooldown.layer(g.layer(primary.clone())));
    let _ = svc.clone().oneshot(request(false)).await;
    let e = svc.clone().oneshot(request(false)).await.unwrap_err();
    assert!(e.cooling_down_for().is_some(), "{e}");
    assert!(e.to_string().contains("cooling down"), "{e}");
}

#[tokio::test]
async fn a_failed_primary_is_named_and_an_exhausted_route_keeps_its_attempts() {
    let down = || Error::Transport {
        provider: "qwen".into(),
        message: "connection refused".into(),
        mid_response: false,
    };
    let primary = Fake::new("qwen", move |_, _| Reply::Fail(down()));
    let fallback = Fake::new("other", |_, _| Reply::Chunks(words(ANSWER), None));

    // A failure names the primary as an answer does: by its configured name, else by
    // the name its error reports; never a placeholder.
    for (layer, name) in [
        (RerouteLayer::new().primary("up"), "up"),
        (RerouteLayer::new(), "qwen"),
    ] {
        let response = service(&primary, &fallback, layer)
            .oneshot(request(false))
            .await
            .unwrap();
        let attempts = response.extensions.get::<Attempts>().unwrap().snapshot();
        let names: Vec<&str> = attempts.iter().map(|a| a.provider.as_str()).collect();
        assert_eq!(names, [name, "other"]);
        assert!(attempts[0].error.is_some() && attempts[0].verdict.is_none());
    }

    // Every provider fails: the error carries every attempt, and says who was asked.
    let broken = Fake::new("other", |_, _| {
        Reply::Fail(ProviderError::from_body("other", 500, b"broken", ErrorPosition::Response).into())
    });
    let e = service(&primary, &broken, RerouteLayer::new().primary("up"))
        .oneshot(request(false))
        .await
        .unwrap_err();
    let attempts = e.attempts().expect("a route's error has its attempts").snapshot();
    let names: Vec<&str> = attempts.iter().map(|a| a.provider.as_str()).collect();
    assert_eq!(names, ["up", "other"]);
    let message = e.to_string();
    assert!(
        message.contains("up: transport error") && message.contains("other: provider other answered 500"),
        "{message}"
    );
    assert_eq!(
        e.provider(),
        Some("qwen"),
        "the first provider's error is the one kept"
    );

    // Every provider refuses a stream: the refusal is still reachable, with the attempts.
    let refuses = |name| {
        Fake::new(name, |_, _| {
            Reply::Chunks(words("Sorry, I cannot discuss that."), None)
        })
    };
    let e = service(
        &refuses("qwen"),
        &refuses("other"),
        RerouteLayer::new().primary("up"),
    )
    .oneshot(request(true))
    .await
    .unwrap_err();
    assert_eq!(
        e.as_refusal().unwrap().verdict.class(),
        VerdictClass::PolicyRefusal
    );
    assert_eq!(e.attempts().unwrap().len(), 2);
}

#[tokio::test]
async fn moderation_400_is_rerouted() {
    let primary = Fake::new("qwen", |_, _| {
        Reply::Fail(moderation(
            "Input data may contain inappropriate content.",
            ErrorPosition::Response,
        ))
    });
    let fallback = Fake::new("other", |_, _| Reply::Chunks(words(ANSWER), None));
    let response = service(&primary, &fallback, RerouteLayer::new())
        .oneshot(request(false))
        .await
        .unwrap();
    let attempts = response.extensions.get::<Attempts>().unwrap().snapshot();
    assert_eq!(attempts[0].verdict, Some(VerdictClass::ProviderBlock));
    assert_eq!(collect(response).await.0, ANSWER);
}

#[tokio::test]
async fn stream_refusal_in_window_shows_only_the_fallback() {
    let primary = Fake::new("qwen", |_, _| {
        Reply::Chunks(words("Sorry, I cannot discuss that topic at all, really."), None)
    });
    let fallback = Fake::new("other", |_, _| Reply::Chunks(words(ANSWER), None));
    let response = service(&primary, &fallback, RerouteLayer::new())
        .oneshot(request(true))
        .await
        .unwrap();
    let (text, chunks) = collect(response).await;
    assert_eq!(text, ANSWER);
    let last = chunks.iter().rev().find(|c| c.finish_reason().is_some()).unwrap();
    assert_eq!(last.extra["refusal_guard"]["rerouted"], true);
    assert_eq!(last.extra["refusal_guard"]["continued"], false);
}

#[tokio::test]
async fn output_block_after_twenty_chunks_is_continued_without_loss_or_repeat() {
    let full: Vec<String> = (0..40).map(|i| format!("part{i} ")).collect();
    let prefix: String = full[..20].concat();
    let chars = prefix.len();
    let full_text = full.concat();
    let primary = Fake::new("qwen", move |_, _| {
        let cut = moderation(
            "Output data may contain inappropriate content.",
            ErrorPosition::StreamAfterContent {
                chars_streamed: chars,
            },
        );
        Reply::Chunks((0..40).map(|i| format!("part{i} ")).collect(), Some((20, cut)))
    });
    let full_for_fallback = full_text.clone();
    let fallback = Fake::new("other", move |_, req| {
        let released = req.messages[1].content.as_ref().unwrap().text();
        // A model that repeats the last words before continuing: the layer must drop them.
        let start = released.len() - "part18 part19 ".len();
        Reply::Chunks(words(&full_for_fallback[start..]), None)
    });
    let response = service(&primary, &fallback, RerouteLayer::new())
        .oneshot(request(true))
        .await
        .unwrap();
    let attempts = response.extensions.get::<Attempts>().unwrap().clone();
    let final_verdict = response.extensions.get::<StreamVerdict>().unwrap().clone();
    let (text, chunks) = collect(response).await;
    assert_eq!(text, full_text);
    assert_eq!(
        final_verdict.wait().await.map(|v| v.class()),
        Some(VerdictClass::Answer),
        "the whole-stream verdict is the continuing provider's"
    );
    let sent = fallback.requests.lock().unwrap()[0].clone();
    assert_eq!(sent.messages[1], Message::assistant(prefix));
    let last = chunks.iter().rev().find(|c| c.finish_reason().is_some()).unwrap();
    assert_eq!(last.extra["refusal_guard"]["continued"], true);
    let log = attempts.snapshot();
    assert_eq!(log.len(), 2);
    assert!(log[1].continuation);
    assert_eq!(log[0].verdict, Some(VerdictClass::ProviderBlock));
}

#[tokio::test]
async fn safety_refusal_is_not_rerouted_by_default_but_is_when_opted_in() {
    let refusal = "I cannot help with weapons. ";
    let primary = Fake::new("qwen", move |_, _| Reply::Chunks(words(refusal), None));
    let fallback = Fake::new("other", |_, _| Reply::Chunks(words(ANSWER), None));
    let response = service(&primary, &fallback, RerouteLayer::new())
        .oneshot(request(false))
        .await
        .unwrap();
    assert_eq!(
        response.extensions.get::<Verdict>().unwrap().class(),
        VerdictClass::SafetyRefusal
    );
    assert_eq!(collect(response).await.0, refusal);
    assert_eq!(fallback.calls(), 0);

    // The opt-in needs the guard to stop safety refusals too, and the router to re-route them.
    let stop_all = VerdictSet::policy_driven().with(VerdictClass::SafetyRefusal);
    let g = guard().stop_on(stop_all);
    let opted = RerouteLayer::new()
        .reroute_on(stop_all)
        .fallback(Route::new("other", g.layer(fallback.clone())))
        .layer(g.layer(primary.clone()));
    let response = opted.oneshot(request(false)).await.unwrap();
    assert_eq!(collect(response).await.0, ANSWER);
}

#[tokio::test]
async fn storm_of_503s_is_bounded_by_the_retry_budget() {
    let primary = Fake::new("qwen", |_, _| {
        Reply::Fail(ProviderError::from_body("qwen", 503, b"overloaded", ErrorPosition::Response).into())
    });
    let fallback = Fake::new("other", |_, _| Reply::Chunks(words(ANSWER), None));
    // Up to 3 retries a request, but a budget of 1 retry/s (10 s window) and no
    // successes to earn more: the storm must stay near one call per request.
    let policy = ProviderPolicy {
        retry: RetryPolicy::new(3, 1, 0.1).backoff(std::time::Duration::from_millis(1)),
        guard: guard(),
        ..Default::default()
    };
    let svc = RerouteLayer::new()
        .fallback(Route::new("other", guard().layer(fallback.clone())))
        .layer(policy.stack("qwen", primary.clone()));
    let requests = 100;
    for _ in 0..requests {
        let r = svc.clone().oneshot(request(false)).await.unwrap();
        assert_eq!(collect(r).await.0, ANSWER);
    }
    let calls = primary.calls();
    assert!(calls >= requests, "every request tried the primary once: {calls}");
    assert!(
        calls <= requests + 15,
        "the budget capped the retries: {calls} calls for {requests} requests"
    );
    assert_eq!(fallback.calls(), requests);
}

#[tokio::test]
async fn retries_help_a_transient_503() {
    let primary = Fake::new("qwen", |n, _| {
        if n == 0 {
            Reply::Fail(ProviderError::from_body("qwen", 503, b"busy", ErrorPosition::Response).into())
        } else {
            Reply::Chunks(words(ANSWER), None)
        }
    });
    let policy = ProviderPolicy {
        retry: RetryPolicy::default().backoff(std::time::Duration::from_millis(1)),
        guard: guard(),
        ..Default::default()
    };
    let response = policy
        .stack("qwen", primary.clone())
        .oneshot(request(false))
        .await
        .unwrap();
    assert_eq!(collect(response).await.0, ANSWER);
    assert_eq!(primary.calls(), 2);
}

#[tokio::test]
async fn a_policy_block_is_not_retried_on_the_same_provider() {
    let primary = Fake::new("qwen", |_, _| {
        Reply::Fail(moderation(
            "Input data may contain inappropriate content.",
            ErrorPosition::Response,
        ))
    });
    let policy = ProviderPolicy {
        retry: RetryPolicy::default().backoff(std::time::Duration::from_millis(1)),
        guard: guard(),
        ..Default::default()
    };
    let err = policy
        .stack("qwen", primary.clone())
        .oneshot(request(false))
        .await
        .unwrap_err();
    assert_eq!(
        err.as_refusal().unwrap().verdict.class(),
        VerdictClass::ProviderBlock
    );
    assert_eq!(primary.calls(), 1);
}

#[tokio::test]
async fn a_flagged_conversation_sticks_to_the_fallback() {
    let primary = Fake::new("qwen", |_, req| {
        if req
            .messages
            .iter()
            .any(|m| m.content.as_ref().is_some_and(|c| c.text().contains("1989")))
        {
            Reply::Fail(moderation(
                "Input data may contain inappropriate content.",
                ErrorPosition::Response,
            ))
        } else {
            Reply::Chunks(words("Fine."), None)
        }
    });
    let fallback = Fake::new("other", |_, _| Reply::Chunks(words(ANSWER), None));
    let svc = service(&primary, &fallback, RerouteLayer::new());
    let turn1 = request(false);
    svc.clone().oneshot(turn1.clone()).await.unwrap();
    assert_eq!(primary.calls(), 1);
    let mut turn2 = turn1.clone();
    turn2.messages.push(Message::assistant(ANSWER));
    // The follow-up must be judged benign: a prompt the n-gram head calls harmful is never
    // pre-routed (the shipped head gives "Tell me more." 0.46, over the 0.15 gate).
    turn2.messages.push(Message::user("What happened after that?"));
    let r = svc.clone().oneshot(turn2).await.unwrap();
    assert_eq!(primary.calls(), 1, "turn 2 went straight to the fallback");
    assert_eq!(
        r.extensions.get::<Attempts>().unwrap().snapshot()[0].provider,
        "other"
    );
    // An unrelated conversation still starts at the primary.
    svc.oneshot(ChatRequest::new("qwen-plus", vec![Message::user("hello")]))
        .await
        .unwrap();
    assert_eq!(primary.calls(), 2);
}

#[tokio::test]
async fn a_coin_flip_refusal_is_resampled_on_the_same_provider_when_opted_in() {
    let primary = Fake::new("qwen", |n, req| {
        if n == 0 {
            assert!(req.seed.is_none());
            Reply::WithLogprobs(vec![("Sorry".into(), -1.2), (", no.".into(), -0.1)])
        } else {
            assert!(req.seed.is_some(), "the resample carries a new seed");
            Reply::WithLogprobs(vec![("In ".into(), -0.1), ("1989 ...".into(), -0.1)])
        }
    });
    let fallback = Fake::new("other", |_, _| Reply::Chunks(words(ANSWER), None));
    let svc = service(&primary, &fallback, RerouteLayer::new().resample_below(0.5));
    let response = svc.oneshot(request(true)).await.unwrap();
    let attempts = response.extensions.get::<Attempts>().unwrap().snapshot();
    assert_eq!(collect(response).await.0, "In 1989 ...");
    assert_eq!(primary.calls(), 2);
    assert_eq!(fallback.calls(), 0);
    assert!(attempts[1].resample);

    // Without the opt-in, the same refusal goes to the fallback.
    let primary = Fake::new("qwen", |_, _| {
        Reply::WithLogprobs(vec![("Sorry".into(), -1.2), (", no.".into(), -0.1)])
    });
    let svc = service(&primary, &fallback, RerouteLayer::new());
    let response = svc.oneshot(request(true)).await.unwrap();
    assert_eq!(collect(response).await.0, ANSWER);
    assert_eq!(primary.calls(), 1);
}

#[tokio::test]
async fn when_every_provider_refuses_the_original_answer_comes_back() {
    let primary = Fake::new("qwen", |_, _| {
        Reply::Chunks(words("Sorry, I cannot discuss that."), None)
    });
    let fallback = Fake::new("other", |_, _| Reply::Chunks(words("Sorry, me neither."), None));
    let response = service(&primary, &fallback, RerouteLayer::new())
        .oneshot(request(false))
        .await
        .unwrap();
    let attempts = response.extensions.get::<Attempts>().unwrap().snapshot();
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        response.extensions.get::<Verdict>().unwrap().class(),
        VerdictClass::PolicyRefusal
    );
    assert_eq!(collect(response).await.0, "Sorry, I cannot discuss that.");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Whatever the chunking, wherever the primary is cut, and whether or not the fallback
    /// repeats the last words it was given, the caller receives the text exactly once.
    #[test]
    fn continued_streams_lose_and_repeat_nothing(
        n_words in 4usize..60,
        splits in proptest::collection::vec(1usize..12, 60),
        cut_at in 0usize..60,
        repeat in prop_oneof![Just(0usize), 8usize..40],
        cut_kind in 0u8..3,
    ) {
        let text: String = (0..n_words).map(|i| format!("w{i} ")).collect();
        // Random chunking of the text.
        let mut pieces = Vec::new();
        let mut rest = text.as_str();
        for s in splits.iter().cycle() {
            if rest.is_empty() { break; }
            let take = (*s).min(rest.len());
            pieces.push(rest[..take].to_string());
            rest = &rest[take..];
        }
        let cut = cut_at % pieces.len();
        let chars: usize = pieces[..cut].iter().map(|p| p.len()).sum();
        let primary_pieces = pieces.clone();
        let primary = Fake::new("qwen", move |_, _| {
            let error: Error = match cut_kind {
                0 => moderation("Output data may contain inappropriate content.", ErrorPosition::StreamAfterContent { chars_streamed: chars }),
                1 => Error::Truncated { provider: "qwen".into(), chunks: cut },
                _ => Error::Transport { provider: "qwen".into(), message: "connection reset".into(), mid_response: true },
            };
            Reply::Chunks(primary_pieces.clone(), Some((cut, error)))
        });
        let full = text.clone();
        let fallback = Fake::new("other", move |_, req| {
            // Asked to continue: the remainder, after repeating up to `repeat` bytes.
            // Asked afresh (the cut came inside the window): the whole answer.
            let released = match req.messages.get(1) {
                Some(m) => m.content.as_ref().unwrap().text(),
                None => return Reply::Chunks(words(&full), None),
            };
            let start = released.len().saturating_sub(repeat);
            Reply::Chunks(words(&full[start..]), None)
        });
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let got = rt.block_on(async {
            let r = service(&primary, &fallback, RerouteLayer::new()).oneshot(request(true)).await.unwrap();
            collect(r).await.0
        });
        prop_assert_eq!(got, text);
    }
}

fn cut(provider: &str) -> Error {
    Error::Transport {
        provider: provider.into(),
        message: "connection reset".into(),
        mid_response: true,
    }
}

/// The caller's side of a stream: its text, and the error it ended in, if any.
async fn text_and_error(response: ChatResponse) -> (String, Option<Error>) {
    let ResponseBody::Stream(s) = response.body else {
        panic!("a stream was asked for");
    };
    let mut text = String::new();
    let mut s = s;
    while let Some(item) = s.next().await {
        match item {
            Ok(c) => text.push_str(c.content()),
            Err(e) => {
                assert!(s.next().await.is_none(), "nothing after an error");
                return (text, Some(e));
            }
        }
    }
    (text, None)
}

#[tokio::test]
async fn a_stream_cut_while_the_fallback_cools_down_ends_in_its_own_cut() {
    let text = "In the spring of 1989 students gathered in Tiananmen Square to call for reform, \
                and the movement spread to many other cities over the following weeks.";
    let pieces = words(text);
    let cut_after = 14;
    let sent: String = pieces[..cut_after].concat();
    let primary = Fake::new("qwen", move |_, _| {
        Reply::Chunks(pieces.clone(), Some((cut_after, cut("qwen"))))
    });
    let down = Fake::new("other", |_, _| {
        Reply::Fail(ProviderError::from_body("other", 503, b"down", ErrorPosition::Response).into())
    });
    let cooldown = CooldownLayer::new("other").after_failures(1);
    // The fallback failed once already: it is cooling down when the stream is cut.
    let g = guard();
    let mut fallback = cooldown.layer(g.layer(down.clone()));
    assert!(fallback
        .ready()
        .await
        .unwrap()
        .call(request(false))
        .await
        .is_err());
    assert!(cooldown.is_cooling());
    let svc = RerouteLayer::new()
        .fallback(Route::new("other", fallback))
        .layer(g.layer(primary.clone()));
    let r = svc.oneshot(request(true)).await.unwrap();
    let attempts = r.extensions.get::<Attempts>().unwrap().clone();
    let (got, error) = text_and_error(r).await;
    assert_eq!(got, sent, "what was released, once, and nothing after the cut");
    let error = error.expect("the stream ends in an error");
    assert!(
        matches!(error, Error::Transport { ref provider, .. } if provider == "qwen"),
        "the cut, not the skip, ends the stream: {error}"
    );
    assert_eq!(down.calls(), 1, "the cooling fallback was not called again");
    let names: Vec<String> = attempts.snapshot().into_iter().map(|a| a.provider).collect();
    assert_eq!(names, ["qwen", "other"], "the skipped continuation is on record");
}

#[tokio::test]
async fn a_refusal_is_never_spliced_onto_a_continued_answer() {
    // Found by a bug hunt: a fallback that refused the continuation had its refusal
    // streamed on after the primary's half answer, as one garbled reply.
    for refusal in [
        "Sorry, I cannot discuss that at all.",
        "I cannot help with weapons of any kind.",
    ] {
        let pieces: Vec<String> = (0..40).map(|i| format!("part{i} ")).collect();
        let prefix: String = pieces[..20].concat();
        let primary = Fake::new("qwen", move |_, _| {
            Reply::Chunks(pieces.clone(), Some((20, cut("qwen"))))
        });
        let fallback = Fake::new("other", move |_, _| Reply::Chunks(words(refusal), None));
        let response = service(&primary, &fallback, RerouteLayer::new())
            .oneshot(request(true))
            .await
            .unwrap();
        let attempts = response.extensions.get::<Attempts>().unwrap().clone();
        let (text, error) = text_and_error(response).await;
        assert_eq!(text, prefix, "{refusal}: only the released text");
        // A refusal the route re-routes ends it as every provider's failure does (the
        // last one's); any other ends it with the cut that started the continuation.
        assert!(
            matches!(&error, Some(Error::Transport { provider, .. }) if provider == "qwen")
                || error.as_ref().and_then(Error::as_refusal).is_some(),
            "{refusal}: {error:?}"
        );
        assert_eq!(fallback.calls(), 1, "{refusal}");
        let log = attempts.snapshot();
        assert_eq!(log.len(), 2, "{refusal}: {log:?}");
        assert!(log[1].continuation && log[1].verdict.is_some_and(|v| v != VerdictClass::Answer));
    }
}

#[tokio::test]
async fn a_cut_tool_call_is_not_continued() {
    // A tool call's arguments are not text a fallback can continue: handed an empty
    // partial answer, it would start a new one after half a call.
    let call = |id: Option<&str>, name: Option<&str>, args: &str| ChatCompletionChunk {
        id: Some("c1".into()),
        choices: vec![ChunkChoice {
            delta: Delta {
                tool_calls: Some(vec![ToolCall {
                    index: Some(0),
                    id: id.map(str::to_string),
                    kind: id.map(|_| "function".to_string()),
                    function: Some(FunctionCall {
                        name: name.map(str::to_string),
                        arguments: Some(args.into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            ..Default::default()
        }],
        ..Default::default()
    };
    let primary = Fake::new("qwen", move |_, _| {
        let mut items = vec![Ok(call(Some("call_1"), Some("write_file"), ""))];
        for piece in [
            "{\"pa", "th\": ", "\"/tmp", "/x.tx", "t\", \"c", "onten", "t\": \"", "hello", " worl", "d thi",
        ] {
            items.push(Ok(call(None, None, piece)));
        }
        items.push(Err(cut("qwen")));
        Reply::Raw(items)
    });
    let fallback = Fake::new("other", |_, _| Reply::Chunks(words(ANSWER), None));
    let response = service(&primary, &fallback, RerouteLayer::new())
        .oneshot(request(true))
        .await
        .unwrap();
    let (text, error) = text_and_error(response).await;
    assert_eq!(text, "");
    assert!(matches!(error, Some(Error::Transport { .. })), "{error:?}");
    assert_eq!(fallback.calls(), 0, "no continuation of a tool call");
}

#[tokio::test]
async fn a_connection_lost_before_any_text_is_a_failure_not_an_empty_answer() {
    // Found by a bug hunt: a reset after the role chunk came back as an `empty` refusal
    // (a 422 or a content-filter close), not as the failure it was.
    let role_only = || ChatCompletionChunk {
        id: Some("c1".into()),
        choices: vec![ChunkChoice {
            delta: Delta {
                role: Some(refusal_guard::wire::Role::Assistant),
                ..Default::default()
            },
            ..Default::default()
        }],
        ..Default::default()
    };
    let primary = Fake::new("qwen", move |_, _| {
        Reply::Raw(vec![Ok(role_only()), Err(cut("qwen"))])
    });
    // The guard alone: the failure itself.
    let Err(error) = guard().layer(primary.clone()).oneshot(request(true)).await else {
        panic!("a response from a stream that said nothing");
    };
    assert!(matches!(error, Error::Transport { .. }), "{error:?}");
    // Under the re-route layer: the fallback is asked the request anew, not to continue.
    let fallback = Fake::new("other", |_, _| Reply::Chunks(words(ANSWER), None));
    let response = service(&primary, &fallback, RerouteLayer::new())
        .oneshot(request(true))
        .await
        .unwrap();
    let attempts = response.extensions.get::<Attempts>().unwrap().clone();
    let (text, error) = text_and_error(response).await;
    assert_eq!((text.as_str(), error.is_none()), (ANSWER, true));
    assert_eq!(
        fallback.requests.lock().unwrap()[0].messages.len(),
        1,
        "the request as sent"
    );
    let log = attempts.snapshot();
    assert_eq!(log[0].verdict, None, "{log:?}");
    assert!(
        log[0].error.as_deref().unwrap().contains("connection reset"),
        "{log:?}"
    );
}
