//! The guard layer's mechanics over in-memory upstreams: hold-back, release, stop, and
//! watching after the window. A small test detector stands in for the pattern set so
//! that these tests pin the layer's behaviour, not the patterns' coverage (the patterns
//! have their own tests, and tests/guard_mock.rs runs the real set against the mock).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use refusal_guard::detect::signals::ProviderSignals;
use refusal_guard::detect::{Detector, Detectors, Observation};
use refusal_guard::layer::{HoldBack, RefusalGuardLayer, StreamVerdict};
use refusal_guard::provider::{ChatResponse, ChunkStream, ResponseBody};
use refusal_guard::verdict::{Evidence, VerdictClass, VerdictKind, VerdictSet};
use refusal_guard::wire::{
    ChatCompletion, ChatCompletionChunk, ChatRequest, Choice, ChunkChoice, Delta, ErrorPosition, Message,
    ModerationStage, ProviderError,
};
use refusal_guard::{Error, Verdict};
use tower::{Layer, ServiceExt};

/// A test detector: `read` looks at the text and gives a policy refusal's strength and the
/// reason, or nothing; the evidence comes from `source`.
struct TextCue {
    source: &'static str,
    read: fn(&str) -> Option<(f32, &'static str)>,
}

#[async_trait]
impl Detector for TextCue {
    fn name(&self) -> &str {
        self.source
    }
    async fn detect(&self, obs: &Observation<'_>) -> Vec<Evidence> {
        (self.read)(obs.text)
            .map(|(score, reason)| Evidence {
                source: self.source.into(),
                suggests: VerdictClass::PolicyRefusal,
                score,
                reason: reason.into(),
                span: None,
                tokens: vec![],
            })
            .into_iter()
            .collect()
    }
}

/// Flags an answer that opens with "Sorry" as a policy refusal, with full confidence.
const OPENS_WITH_SORRY: TextCue = TextCue {
    source: "test_sorry",
    read: |text| {
        text.trim_start()
            .starts_with("Sorry")
            .then_some((1.0, "opens with Sorry"))
    },
};

fn detectors() -> Detectors {
    Detectors::empty().with(ProviderSignals).with(OPENS_WITH_SORRY)
}

fn chunk(text: &str) -> ChatCompletionChunk {
    ChatCompletionChunk {
        id: Some("chatcmpl-test".into()),
        object: Some("chat.completion.chunk".into()),
        choices: vec![ChunkChoice {
            delta: Delta {
                content: Some(text.into()),
                ..Default::default()
            },
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn words(text: &str) -> Vec<Result<ChatCompletionChunk, Error>> {
    text.split_inclusive(' ').map(|w| Ok(chunk(w))).collect()
}

fn block(position: ErrorPosition) -> Error {
    let body = br#"{"error":{"code":"data_inspection_failed","type":"data_inspection_failed","message":"Output data may contain inappropriate content.","param":null},"request_id":"r-1"}"#;
    ProviderError::from_body("mock", 200, body, position).into()
}

/// An upstream stream over fixed items, counting how many were pulled and noticing drops.
struct Upstream {
    pulled: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

impl Upstream {
    fn new() -> Self {
        Upstream {
            pulled: Arc::new(AtomicUsize::new(0)),
            dropped: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn stream(&self, items: Vec<Result<ChatCompletionChunk, Error>>, gap: Duration) -> ChunkStream {
        struct OnDrop(Arc<AtomicUsize>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let pulled = self.pulled.clone();
        let guard = OnDrop(self.dropped.clone());
        Box::pin(futures::stream::iter(items).then(move |item| {
            let pulled = pulled.clone();
            let _keep = &guard;
            async move {
                if !gap.is_zero() {
                    tokio::time::sleep(gap).await;
                }
                pulled.fetch_add(1, Ordering::SeqCst);
                item
            }
        }))
    }
}

async fn run_stream(layer: RefusalGuardLayer, stream: ChunkStream) -> Result<ChatResponse, Error> {
    let cell = std::sync::Arc::new(std::sync::Mutex::new(Some(stream)));
    let upstream = tower::service_fn(move |_req: ChatRequest| {
        let s = cell.lock().unwrap().take().expect("one call");
        async move { Ok::<_, Error>(ChatResponse::stream(s)) }
    });
    layer
        .layer(upstream)
        .oneshot(ChatRequest::new("qwen-plus", vec![Message::user("hi")]))
        .await
}

/// The chunks a released stream sends, each as its JSON.
async fn released_json(response: ChatResponse) -> Vec<String> {
    let ResponseBody::Stream(stream) = response.body else {
        panic!("stream expected")
    };
    stream
        .map(|c| serde_json::to_string(&c.unwrap()).unwrap())
        .collect()
        .await
}

fn texts(chunks: &[ChatCompletionChunk]) -> String {
    chunks.iter().map(|c| c.content()).collect()
}

#[tokio::test]
async fn answer_is_released_byte_identical_and_in_order() {
    let up = Upstream::new();
    let items = words("The capital of France is Paris, a city on the Seine with about two million people living in it today.");
    let expected: Vec<String> = items
        .iter()
        .map(|i| serde_json::to_string(i.as_ref().unwrap()).unwrap())
        .collect();
    let layer = RefusalGuardLayer::new().detectors(detectors()).window_tokens(8);
    let response = run_stream(layer, up.stream(items, Duration::ZERO)).await.unwrap();
    let verdict = response.extensions.get::<Verdict>().unwrap().clone();
    assert_eq!(verdict.class(), VerdictClass::Answer);
    let hold = *response.extensions.get::<HoldBack>().unwrap();
    assert_eq!(hold.tokens, 8, "decided exactly when the window filled");
    let final_verdict = response.extensions.get::<StreamVerdict>().unwrap().clone();
    let got = released_json(response).await;
    assert_eq!(got, expected);
    assert_eq!(final_verdict.wait().await.unwrap().class(), VerdictClass::Answer);
}

#[tokio::test]
async fn refusal_caught_inside_window_releases_nothing_and_keeps_the_rest_unread() {
    let up = Upstream::new();
    let opening = "Sorry, I can't discuss that topic. ";
    let tail = "Here is a long tail that is not pulled from the upstream unless it is asked for.";
    let mut items = words(opening);
    items.extend(words(tail));
    let total = items.len();
    let layer = RefusalGuardLayer::new().detectors(detectors()).window_tokens(16);
    let err = run_stream(layer, up.stream(items, Duration::ZERO))
        .await
        .unwrap_err();
    let refusal = err.as_refusal().expect("a refusal");
    assert_eq!(refusal.verdict.class(), VerdictClass::PolicyRefusal);
    assert_eq!(texts(&refusal.held), "Sorry, ", "decided on the first chunk");
    assert_eq!(up.pulled.load(Ordering::SeqCst), 1);
    assert!(total > 10);
    // The rest stays unread for a caller whom no other provider answers; dropping the
    // refusal (a fallback answered) closes the upstream.
    assert_eq!(up.dropped.load(Ordering::SeqCst), 0, "the rest is kept, unread");
    let rest = refusal
        .rest
        .as_ref()
        .and_then(|r| r.take())
        .expect("the unread rest");
    let rest: Vec<ChatCompletionChunk> = rest.map(|c| c.unwrap()).collect().await;
    assert_eq!(
        format!("Sorry, {}", texts(&rest)),
        format!("{opening}{tail}"),
        "whole, once"
    );
    drop(err);
    assert_eq!(up.dropped.load(Ordering::SeqCst), 1, "upstream stream dropped");
}

#[tokio::test]
async fn output_block_after_window_is_recorded_and_handed_on() {
    let up = Upstream::new();
    let mut items: Vec<_> = (0..20).map(|i| Ok(chunk(&format!("word{i} ")))).collect();
    let chars: usize = (0..20).map(|i| format!("word{i} ").len()).sum();
    items.push(Err(block(ErrorPosition::StreamAfterContent {
        chars_streamed: chars,
    })));
    let layer = RefusalGuardLayer::new().detectors(detectors()).window_tokens(4);
    let response = run_stream(layer, up.stream(items, Duration::ZERO)).await.unwrap();
    let final_verdict = response.extensions.get::<StreamVerdict>().unwrap().clone();
    let ResponseBody::Stream(mut stream) = response.body else {
        panic!()
    };
    let mut released = Vec::new();
    let err = loop {
        match stream.next().await {
            Some(Ok(c)) => released.push(c),
            Some(Err(e)) => break e,
            None => panic!("stream ended without the block"),
        }
    };
    assert_eq!(released.len(), 20);
    let refusal = err.as_refusal().expect("block handed on as a refusal");
    assert_eq!(
        refusal.verdict.kind,
        VerdictKind::ProviderBlock {
            stage: ModerationStage::Output
        }
    );
    assert!(err.provider_error().unwrap().is_moderation());
    assert!(stream.next().await.is_none());
    assert_eq!(
        final_verdict.get().unwrap().kind,
        VerdictKind::ProviderBlock {
            stage: ModerationStage::Output
        }
    );
}

#[tokio::test(start_paused = true)]
async fn slow_stream_is_released_when_the_window_time_passes() {
    let up = Upstream::new();
    let items = words("one two three four five six seven eight nine ten eleven twelve");
    let layer = RefusalGuardLayer::new()
        .detectors(detectors())
        .window_tokens(100)
        .window_duration(Duration::from_millis(350));
    let response = run_stream(layer, up.stream(items, Duration::from_millis(100)))
        .await
        .unwrap();
    let hold = *response.extensions.get::<HoldBack>().unwrap();
    assert_eq!(
        hold.chunks, 3,
        "three chunks arrived inside 350 ms at one per 100 ms"
    );
    let ResponseBody::Stream(stream) = response.body else {
        panic!()
    };
    let all: Vec<_> = stream.map(|c| c.unwrap()).collect().await;
    assert_eq!(
        texts(&all),
        "one two three four five six seven eight nine ten eleven twelve"
    );
}

#[tokio::test]
async fn short_answer_ending_inside_window_is_released_whole() {
    let up = Upstream::new();
    let layer = RefusalGuardLayer::new().detectors(detectors()).window_tokens(16);
    let response = run_stream(layer, up.stream(words("Yes, it is."), Duration::ZERO))
        .await
        .unwrap();
    let ResponseBody::Stream(stream) = response.body else {
        panic!()
    };
    let all: Vec<_> = stream.map(|c| c.unwrap()).collect().await;
    assert_eq!(texts(&all), "Yes, it is.");
}

#[tokio::test]
async fn empty_stream_is_stopped_as_empty() {
    let up = Upstream::new();
    let layer = RefusalGuardLayer::new().detectors(detectors());
    let err = run_stream(layer, up.stream(vec![], Duration::ZERO))
        .await
        .unwrap_err();
    assert_eq!(err.as_refusal().unwrap().verdict.class(), VerdictClass::Empty);
}

#[tokio::test]
async fn block_before_content_in_stream_is_a_provider_block() {
    let up = Upstream::new();
    let items = vec![Err(block(ErrorPosition::StreamBeforeContent))];
    let layer = RefusalGuardLayer::new().detectors(detectors());
    let err = run_stream(layer, up.stream(items, Duration::ZERO))
        .await
        .unwrap_err();
    let refusal = err.as_refusal().unwrap();
    assert_eq!(refusal.verdict.class(), VerdictClass::ProviderBlock);
    assert_eq!(err.provider_error().unwrap().request_id.as_deref(), Some("r-1"));
}

#[tokio::test]
async fn observe_only_releases_a_refusal_with_its_verdict() {
    let up = Upstream::new();
    let layer = RefusalGuardLayer::new().detectors(detectors()).observe_only(true);
    let response = run_stream(layer, up.stream(words("Sorry, no."), Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(
        response.extensions.get::<Verdict>().unwrap().class(),
        VerdictClass::PolicyRefusal
    );
    let ResponseBody::Stream(stream) = response.body else {
        panic!()
    };
    let all: Vec<_> = stream.map(|c| c.unwrap()).collect().await;
    assert_eq!(texts(&all), "Sorry, no.");
}

#[tokio::test]
async fn safety_refusal_outside_stop_set_is_released() {
    let up = Upstream::new();
    let layer = RefusalGuardLayer::new()
        .detectors(detectors())
        .stop_on(VerdictSet::empty().with(VerdictClass::Evasion));
    let response = run_stream(layer, up.stream(words("Sorry, no."), Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(
        response.extensions.get::<Verdict>().unwrap().class(),
        VerdictClass::PolicyRefusal
    );
}

fn completion(text: &str) -> ChatCompletion {
    ChatCompletion {
        choices: vec![Choice {
            index: 0,
            message: Message::assistant(text),
            finish_reason: None,
            logprobs: None,
            extra: Default::default(),
        }],
        ..Default::default()
    }
}

async fn run_complete(result: Result<ChatCompletion, Error>) -> Result<ChatResponse, Error> {
    let cell = std::sync::Arc::new(std::sync::Mutex::new(Some(result)));
    let upstream = tower::service_fn(move |_req: ChatRequest| {
        let r = cell.lock().unwrap().take().unwrap();
        async move { r.map(ChatResponse::complete) }
    });
    RefusalGuardLayer::new()
        .detectors(detectors())
        .layer(upstream)
        .oneshot(ChatRequest::new("qwen-plus", vec![Message::user("hi")]))
        .await
}

#[tokio::test]
async fn complete_answers_get_a_verdict_and_refusals_keep_the_completion() {
    let ok = run_complete(Ok(completion("Paris."))).await.unwrap();
    assert_eq!(
        ok.extensions.get::<Verdict>().unwrap().class(),
        VerdictClass::Answer
    );
    let err = run_complete(Ok(completion("Sorry, I can't."))).await.unwrap_err();
    let refusal = err.as_refusal().unwrap();
    assert_eq!(refusal.text(), "Sorry, I can't.");
}

#[tokio::test]
async fn moderation_400_becomes_a_provider_block_with_the_original_error() {
    let body = br#"{"error":{"code":"data_inspection_failed","type":"data_inspection_failed","message":"Input data may contain inappropriate content.","param":null},"id":"chatcmpl-1","request_id":"req-9"}"#;
    let e: Error = ProviderError::from_body("dashscope-intl", 400, body, ErrorPosition::Response).into();
    let err = run_complete(Err(e)).await.unwrap_err();
    assert_eq!(
        err.as_refusal().unwrap().verdict.kind,
        VerdictKind::ProviderBlock {
            stage: ModerationStage::Input
        }
    );
    let original = err.provider_error().unwrap();
    assert_eq!(original.status, 400);
    assert_eq!(original.request_id.as_deref(), Some("req-9"));
}

#[tokio::test]
async fn non_moderation_errors_pass_unchanged() {
    let e: Error = ProviderError::from_body("p", 503, b"overloaded", ErrorPosition::Response).into();
    let err = run_complete(Err(e)).await.unwrap_err();
    assert!(err.as_refusal().is_none());
    assert_eq!(err.provider_error().unwrap().status, 503);
}

fn tool_call_chunk(args: &str) -> ChatCompletionChunk {
    ChatCompletionChunk {
        choices: vec![ChunkChoice {
            delta: Delta {
                tool_calls: Some(vec![refusal_guard::wire::ToolCall {
                    index: Some(0),
                    function: Some(refusal_guard::wire::FunctionCall {
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
    }
}

#[tokio::test]
async fn tool_call_streams_and_answers_are_answers_not_empty() {
    let up = Upstream::new();
    let items = vec![
        Ok(tool_call_chunk("{\"city\":")),
        Ok(tool_call_chunk("\"Beijing\"}")),
    ];
    let response = run_stream(
        RefusalGuardLayer::new().detectors(detectors()),
        up.stream(items, Duration::ZERO),
    )
    .await
    .expect("a tool call is released");
    assert_eq!(
        response.extensions.get::<Verdict>().unwrap().class(),
        VerdictClass::Answer
    );
    let ResponseBody::Stream(stream) = response.body else {
        panic!()
    };
    assert_eq!(stream.count().await, 2);

    let mut call = completion("");
    call.choices[0].message.content = None;
    call.choices[0].message.tool_calls = Some(vec![refusal_guard::wire::ToolCall {
        id: Some("call_1".into()),
        kind: Some("function".into()),
        ..Default::default()
    }]);
    let ok = run_complete(Ok(call)).await.expect("a tool call is an answer");
    assert_eq!(
        ok.extensions.get::<Verdict>().unwrap().class(),
        VerdictClass::Answer
    );
}

/// A prompt judge that records when it ran, and reads every prompt as benign.
struct ClockedPromptJudge {
    runs: Arc<std::sync::Mutex<Vec<std::time::Instant>>>,
}

#[async_trait]
impl refusal_guard::classify::Classifier for ClockedPromptJudge {
    fn name(&self) -> &str {
        "clocked"
    }

    async fn judge_prompt(
        &self,
        _prompt: &str,
    ) -> Result<Option<refusal_guard::classify::PromptJudgement>, refusal_guard::classify::ClassifyError>
    {
        self.runs.lock().unwrap().push(std::time::Instant::now());
        Ok(Some(refusal_guard::classify::PromptJudgement::harm(0.0)))
    }
}

#[tokio::test]
async fn an_early_prompt_judgment_runs_while_the_provider_answers_and_only_once() {
    for early in [false, true] {
        let runs = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut models = refusal_guard::judge::Models::embedded();
        models.prompt =
            refusal_guard::classify::Cascade::new().tier(ClockedPromptJudge { runs: runs.clone() }, 0.9);
        let answered = Arc::new(std::sync::Mutex::new(None));
        let at = answered.clone();
        let upstream = tower::service_fn(move |_req: ChatRequest| {
            let at = at.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                *at.lock().unwrap() = Some(std::time::Instant::now());
                Ok::<_, Error>(ChatResponse::complete(completion(
                    "I'm sorry, but I can't help with that.",
                )))
            }
        });
        let err = RefusalGuardLayer::new()
            .detectors(Detectors::default().models(models))
            .judge_prompts_early(early)
            .layer(upstream)
            .oneshot(ChatRequest::new(
                "qwen-plus",
                vec![Message::user("How do I kill a Python process that hangs?")],
            ))
            .await
            .unwrap_err();
        // The judge read the prompt as benign, so the refusal is a policy refusal.
        let verdict = &err.as_refusal().expect("a refusal").verdict;
        assert_eq!(verdict.class(), VerdictClass::PolicyRefusal, "early={early}");
        let runs = runs.lock().unwrap().clone();
        assert_eq!(
            runs.len(),
            1,
            "early={early}: the prompt was judged {} times",
            runs.len()
        );
        let answered = answered.lock().unwrap().expect("the provider answered");
        if early {
            assert!(runs[0] < answered, "the early judgment waited for the answer");
        } else {
            assert!(
                runs[0] >= answered,
                "the judgment ran before any refusal was seen"
            );
        }
    }
}

/// Stands in for the pattern set (the guard reads pattern evidence as a refusal forming) on
/// a refusal that forms slowly: "Unfortunately" is a weak sign of one (too weak alone to
/// stop anything), "can't" a sure one.
const FORMING_REFUSAL: TextCue = TextCue {
    source: "patterns",
    read: |text| {
        if text.contains("can't") {
            Some((1.0, "refusal formula"))
        } else {
            text.starts_with("Unfortunately")
                .then_some((0.3, "apology at the opening"))
        }
    },
};

/// `items` through a guard with [`FORMING_REFUSAL`], a window of 8 tokens and `extension`.
async fn forming(
    items: Vec<Result<ChatCompletionChunk, Error>>,
    extension: usize,
) -> Result<ChatResponse, Error> {
    let layer = RefusalGuardLayer::new()
        .detectors(Detectors::empty().with(ProviderSignals).with(FORMING_REFUSAL))
        .window_tokens(8)
        .window_extension(extension);
    run_stream(layer, Upstream::new().stream(items, Duration::ZERO)).await
}

#[tokio::test]
async fn a_refusal_still_forming_at_the_window_is_held_into_the_extension_and_stopped() {
    let text =
        "Unfortunately, given everything you told me about work, I can't write that note for you today.";
    // Without the extension the window's end (8 tokens, before "can't") releases it.
    let response = forming(words(text), 0).await.unwrap();
    assert_eq!(
        response.extensions.get::<Verdict>().unwrap().class(),
        VerdictClass::Answer
    );
    assert_eq!(response.extensions.get::<HoldBack>().unwrap().tokens, 8);
    // With it, the weak sign at the window's end holds the stream on until the formula
    // completes, and the refusal is stopped before anything reached the caller.
    let err = forming(words(text), 8).await.unwrap_err();
    let refusal = err.as_refusal().expect("a refusal");
    assert_eq!(refusal.verdict.class(), VerdictClass::PolicyRefusal);
    let held = texts(&refusal.held);
    assert!(
        held.contains("can't") && refusal.held.len() > 8 && refusal.held.len() <= 16,
        "{held:?}"
    );
}

#[tokio::test]
async fn an_answer_held_into_the_extension_is_released_whole_and_in_order() {
    let text = "Unfortunately the museum is closed on Mondays, but it opens at nine on every other day of the week, \
                and entry is free on the first Sunday of each month for everyone.";
    let items = words(text);
    let expected: Vec<String> = items
        .iter()
        .map(|i| serde_json::to_string(i.as_ref().unwrap()).unwrap())
        .collect();
    let response = forming(items, 8).await.unwrap();
    assert_eq!(
        response.extensions.get::<Verdict>().unwrap().class(),
        VerdictClass::Answer
    );
    assert_eq!(
        response.extensions.get::<HoldBack>().unwrap().tokens,
        16,
        "held to the extension's end"
    );
    let got = released_json(response).await;
    assert_eq!(got, expected, "every chunk once, in order");
}
