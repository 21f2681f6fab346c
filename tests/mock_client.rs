//! The OpenAI-compatible client against the mock provider, one test per scripted
//! behaviour, over real loopback HTTP.

use std::time::Duration;

use futures::StreamExt;
use refusal_guard::mock::{split_pieces, Gate, MockProvider, Outcome, Script, MOCK_API_KEY};
use refusal_guard::provider::{ChatResponse, ModelMap, OpenAiCompatible, ResponseBody};
use refusal_guard::wire::{
    ChatCompletion, ChatCompletionChunk, ChatRequest, ErrorPosition, FinishReason, Message, ModerationStage,
    Role, StreamOptions,
};
use refusal_guard::Error;
use serde_json::{json, Value};
use tower::ServiceExt;

/// Hang protection only: no assertion depends on how long anything takes.
const HANG: Duration = Duration::from_secs(20);

fn request(stream: bool) -> ChatRequest {
    let mut r = ChatRequest::new(
        "qwen-plus",
        vec![Message::system("Be brief."), Message::user("Tell me about 1989.")],
    );
    if stream {
        r.stream = Some(true);
    }
    r
}

async fn call(client: &OpenAiCompatible, req: ChatRequest) -> Result<ChatResponse, Error> {
    tokio::time::timeout(HANG, client.clone().oneshot(req))
        .await
        .expect("request hung")
}

async fn complete(client: &OpenAiCompatible, req: ChatRequest) -> Result<ChatCompletion, Error> {
    let r = call(client, req).await?;
    match r.body {
        ResponseBody::Complete(c) => Ok(c),
        ResponseBody::Stream(_) => panic!("expected a complete answer"),
    }
}

/// Every chunk of a stream, and the error that ended it, if any.
async fn drain(client: &OpenAiCompatible, req: ChatRequest) -> (Vec<ChatCompletionChunk>, Option<Error>) {
    let r = call(client, req).await.expect("stream starts");
    let ResponseBody::Stream(mut s) = r.body else {
        panic!("expected a stream")
    };
    let mut chunks = Vec::new();
    loop {
        match tokio::time::timeout(HANG, s.next()).await.expect("stream hung") {
            Some(Ok(c)) => chunks.push(c),
            Some(Err(e)) => {
                assert!(
                    tokio::time::timeout(HANG, s.next()).await.unwrap().is_none(),
                    "a stream ends after its error"
                );
                return (chunks, Some(e));
            }
            None => return (chunks, None),
        }
    }
}

fn text_of(chunks: &[ChatCompletionChunk]) -> String {
    chunks.iter().map(|c| c.content()).collect()
}

fn content_chunks(chunks: &[ChatCompletionChunk]) -> Vec<&str> {
    chunks
        .iter()
        .map(|c| c.content())
        .filter(|c| !c.is_empty())
        .collect()
}

fn provider_error(e: &Error) -> &refusal_guard::wire::ProviderError {
    e.as_provider()
        .unwrap_or_else(|| panic!("expected a provider error, got {e:?}"))
}

#[tokio::test]
async fn complete_answer() {
    let mock = MockProvider::start().await;
    mock.push(Script::answer("Paris is the capital of France."));
    let client = mock.client("mock");
    let c = complete(&client, request(false)).await.unwrap();
    assert_eq!(c.text(), "Paris is the capital of France.");
    assert_eq!(c.finish_reason(), Some(&FinishReason::Stop));
    assert_eq!(c.object.as_deref(), Some("chat.completion"));
    assert_eq!(c.model.as_deref(), Some("qwen-plus"));
    assert_eq!(c.choices[0].message.role, Role::Assistant);
    let usage = c.usage.clone().expect("complete answers carry usage");
    assert_eq!(
        usage.completion_tokens,
        split_pieces("Paris is the capital of France.").len() as u64
    );
    assert!(c.token_logprobs().is_empty(), "no logprobs unless asked");
    assert_eq!(mock.wait_for_end(0, HANG).await, Some(Outcome::Finished));
}

#[tokio::test]
async fn a_numbered_script_answers_each_request_with_its_number() {
    let mock = MockProvider::start().await;
    mock.set_default(Script::answer("巴黎是法国的首都。").numbered());
    mock.push(Script::answer("Queued.").numbered());
    let client = mock.client("mock");
    let first = complete(&client, request(false)).await.unwrap();
    assert_eq!(first.text(), "Queued. (#0)");
    let second = complete(&client, request(false)).await.unwrap();
    assert_eq!(second.text(), "巴黎是法国的首都。 (#1)");
    let (chunks, error) = drain(&client, request(true)).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(text_of(&chunks), "巴黎是法国的首都。 (#2)");
    // Unnumbered scripts answer the same text every time.
    mock.set_default(Script::answer("Same."));
    for _ in 0..2 {
        assert_eq!(complete(&client, request(false)).await.unwrap().text(), "Same.");
    }
}

#[tokio::test]
async fn streamed_answer_has_role_content_finish_and_done() {
    let mock = MockProvider::start().await;
    let text = "Paris is the capital of France.";
    mock.set_default(Script::answer(text));
    let client = mock.client("mock");
    let response = call(&client, request(true)).await.unwrap();
    assert_eq!(response.provider(), Some("mock"));
    let (chunks, err) = drain(&client, request(true)).await;
    assert!(err.is_none(), "{err:?}");
    // role chunk, one chunk per piece, finish chunk; [DONE] is not a chunk.
    let pieces = split_pieces(text);
    assert_eq!(chunks.len(), pieces.len() + 2);
    assert_eq!(chunks[0].choices[0].delta.role, Some(Role::Assistant));
    assert_eq!(chunks[0].content(), "");
    assert_eq!(content_chunks(&chunks), pieces);
    assert_eq!(chunks.last().unwrap().finish_reason(), Some(&FinishReason::Stop));
    assert!(chunks
        .iter()
        .all(|c| c.object.as_deref() == Some("chat.completion.chunk")));
    assert!(chunks.iter().all(|c| c.usage.is_none()));
    // The second request is the one drained; the first response was dropped unread.
    let state = mock
        .wait_for_response(1, HANG, |s| s.outcome.is_over())
        .await
        .unwrap();
    assert_eq!(state.outcome, Outcome::Finished);
    assert_eq!(state.content_chunks_sent, pieces.len());
    assert_eq!(
        state.events_sent,
        pieces.len() + 3,
        "role + pieces + finish + [DONE]"
    );
}

#[tokio::test]
async fn cjk_answer_streams_one_character_a_chunk() {
    let mock = MockProvider::start().await;
    mock.set_default(Script::answer("抱歉，我无法回答这个问题"));
    let client = mock.client("mock");
    let (chunks, err) = drain(&client, request(true)).await;
    assert!(err.is_none());
    assert_eq!(
        content_chunks(&chunks).len(),
        "抱歉，我无法回答这个问题".chars().count()
    );
    assert_eq!(text_of(&chunks), "抱歉，我无法回答这个问题");
}

#[tokio::test]
async fn explicit_chunks_are_sent_as_given() {
    let mock = MockProvider::start().await;
    mock.push(Script::chunks(["As an AI", " developed by Alibaba Cloud", ", I"]));
    let client = mock.client("mock");
    let (chunks, _) = drain(&client, request(true)).await;
    assert_eq!(
        content_chunks(&chunks),
        ["As an AI", " developed by Alibaba Cloud", ", I"]
    );
}

#[tokio::test]
async fn logprobs_are_sent_when_the_request_asks() {
    let mock = MockProvider::start().await;
    let script = Script::chunks(["I", "'m", " sorry"]).with_logprobs(vec![-0.01, -0.5, -2.25]);
    mock.push(script.clone());
    mock.push(script.clone());
    mock.push(script);
    let client = mock.client("mock");

    let mut req = request(true);
    req.logprobs = Some(true);
    req.top_logprobs = Some(3);
    let (chunks, err) = drain(&client, req.clone()).await;
    assert!(err.is_none());
    let lps: Vec<_> = chunks.iter().flat_map(|c| c.token_logprobs().to_vec()).collect();
    assert_eq!(
        lps.iter().map(|l| l.token.as_str()).collect::<Vec<_>>(),
        ["I", "'m", " sorry"]
    );
    assert_eq!(
        lps.iter().map(|l| l.logprob).collect::<Vec<_>>(),
        [-0.01, -0.5, -2.25]
    );
    for l in &lps {
        assert_eq!(l.bytes.as_deref(), Some(l.token.as_bytes()));
        let top = l.top_logprobs.as_ref().unwrap();
        assert_eq!(top.len(), 3);
        assert_eq!(top[0].token, l.token);
        assert!(top.windows(2).all(|w| w[0].logprob > w[1].logprob));
    }
    assert_eq!(chunks[1].token_count(), 1);

    // A complete answer carries them all in one list.
    req.stream = None;
    let c = complete(&client, req).await.unwrap();
    assert_eq!(c.token_logprobs().len(), 3);
    assert_eq!(c.token_logprobs()[2].logprob, -2.25);

    // Without `logprobs: true` the provider sends none.
    let (chunks, _) = drain(&client, request(true)).await;
    assert!(chunks.iter().all(|c| c.token_logprobs().is_empty()));
}

#[tokio::test]
async fn constant_logprobs_apply_to_every_token() {
    let mock = MockProvider::start().await;
    mock.push(Script::answer("one two three four").with_logprobs(-0.75));
    let mut req = request(true);
    req.logprobs = Some(true);
    let (chunks, _) = drain(&mock.client("mock"), req).await;
    let lps: Vec<f64> = chunks
        .iter()
        .flat_map(|c| c.token_logprobs().iter().map(|l| l.logprob))
        .collect();
    assert_eq!(lps, [-0.75; 4]);
    assert!(chunks[1].token_logprobs()[0]
        .top_logprobs
        .as_ref()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn moderation_error_is_a_400_in_both_modes() {
    let mock = MockProvider::start().await;
    let client = mock.client("dashscope-intl");
    for (stage, stream) in [
        (ModerationStage::Input, false),
        (ModerationStage::Input, true),
        (ModerationStage::Output, false),
        (ModerationStage::Output, true),
    ] {
        mock.push(Script::moderation_error(stage));
        let err = call(&client, request(stream)).await.unwrap_err();
        let p = provider_error(&err);
        assert_eq!(p.status, 400);
        assert_eq!(p.code.as_deref(), Some("data_inspection_failed"));
        assert_eq!(p.kind.as_deref(), Some("data_inspection_failed"));
        assert_eq!(p.position, ErrorPosition::Response);
        let m = p.moderation.as_ref().expect("moderation recognised");
        assert_eq!((m.stage, m.stage_stated), (stage, true));
        assert!(!err.is_retryable());
        // The exact DashScope body.
        let raw = &p.raw;
        assert_eq!(raw["error"]["param"], Value::Null);
        assert!(raw["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert_eq!(p.request_id.as_deref(), raw["request_id"].as_str());
        let keys: Vec<_> = raw["error"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["code", "type", "message", "param"]);
    }
}

#[tokio::test]
async fn stream_error_event_before_content() {
    let mock = MockProvider::start().await;
    mock.push(Script::stream_error(ModerationStage::Input));
    mock.push(Script::stream_error(ModerationStage::Input));
    let client = mock.client("mock");
    let (chunks, err) = drain(&client, request(true)).await;
    assert!(chunks.is_empty(), "the error is the first event");
    let err = err.expect("an error ends the stream");
    let p = provider_error(&err);
    assert_eq!(p.status, 200, "the stream itself was a 200");
    assert_eq!(p.position, ErrorPosition::StreamBeforeContent);
    assert_eq!(p.moderation.as_ref().unwrap().stage, ModerationStage::Input);
    assert!(p.request_id.is_some());
    // Not streaming: the same block as an HTTP 400.
    let err = call(&client, request(false)).await.unwrap_err();
    assert_eq!(provider_error(&err).status, 400);
}

#[tokio::test]
async fn error_event_after_content_cuts_the_answer() {
    let mock = MockProvider::start().await;
    let script = Script::answer("In 1989, students gathered in the square and").error_after(3);
    mock.push(script.clone());
    mock.push(script);
    let client = mock.client("mock");
    let (chunks, err) = drain(&client, request(true)).await;
    assert_eq!(content_chunks(&chunks), ["In", " 1989,", " students"]);
    assert!(
        chunks.iter().all(|c| c.finish_reason().is_none()),
        "no finish chunk before the error"
    );
    let err = err.unwrap();
    let p = provider_error(&err);
    assert_eq!(
        p.position,
        ErrorPosition::StreamAfterContent {
            chars_streamed: "In 1989, students".chars().count()
        }
    );
    let m = p.moderation.as_ref().unwrap();
    assert_eq!((m.stage, m.stage_stated), (ModerationStage::Output, true));
    assert_eq!(mock.wait_for_end(0, HANG).await, Some(Outcome::Finished));

    let err = call(&client, request(false)).await.unwrap_err();
    let p = provider_error(&err);
    assert_eq!(
        (p.status, p.moderation.as_ref().unwrap().stage),
        (400, ModerationStage::Output)
    );
}

#[tokio::test]
async fn custom_error_event_after_content() {
    let mock = MockProvider::start().await;
    let body = json!({"error": {"message": "Upstream overloaded", "code": 502}});
    mock.push(Script::answer("Half an").error_event_after(1, body));
    let (chunks, err) = drain(&mock.client("mock"), request(true)).await;
    assert_eq!(content_chunks(&chunks), ["Half"]);
    let err = err.unwrap();
    let p = provider_error(&err);
    assert_eq!(p.status, 502, "the status named inside the event");
    assert!(p.moderation.is_none());
    assert!(err.is_retryable());
}

#[tokio::test]
async fn content_filter_finish_reason() {
    let mock = MockProvider::start().await;
    mock.push(Script::content_filter("The protests began"));
    mock.push(Script::answer("x").finish_reason(FinishReason::ContentFilter));
    let client = mock.client("mock");
    let (chunks, err) = drain(&client, request(true)).await;
    assert!(err.is_none());
    assert_eq!(text_of(&chunks), "The protests began");
    assert_eq!(
        chunks.last().unwrap().finish_reason(),
        Some(&FinishReason::ContentFilter)
    );
    let c = complete(&client, request(false)).await.unwrap();
    assert_eq!(c.finish_reason(), Some(&FinishReason::ContentFilter));
}

#[tokio::test]
async fn empty_answer() {
    let mock = MockProvider::start().await;
    mock.set_default(Script::empty());
    let client = mock.client("mock");
    let (chunks, err) = drain(&client, request(true)).await;
    assert!(err.is_none());
    assert_eq!(chunks.len(), 2, "role chunk and finish chunk only");
    assert_eq!(text_of(&chunks), "");
    let c = complete(&client, request(false)).await.unwrap();
    assert_eq!(c.text(), "");
    assert_eq!(c.finish_reason(), Some(&FinishReason::Stop));
}

#[tokio::test]
async fn http_statuses() {
    let mock = MockProvider::start().await;
    let client = mock.client("mock");
    let rate = json!({"error": {"message": "Requests rate limit exceeded, please try again later.", "type": "limit_requests", "param": null, "code": "limit_requests"}, "request_id": "rl-1"});
    mock.push(Script::status(429, rate.to_string()).header("retry-after", "2"));
    mock.push(Script::status(
        500,
        json!({"error": {"message": "internal", "type": "server_error"}}).to_string(),
    ));
    mock.push(Script::status(503, "<html>Service Unavailable</html>"));
    mock.push(Script::status(
        400,
        json!({"error": {"message": "Invalid value for top_k", "code": "invalid_parameter_error"}})
            .to_string(),
    ));

    let err = call(&client, request(true)).await.unwrap_err();
    let p = provider_error(&err);
    assert_eq!(
        (p.status, p.code.as_deref(), p.request_id.as_deref()),
        (429, Some("limit_requests"), Some("rl-1"))
    );
    assert!(err.is_retryable());

    let err = call(&client, request(false)).await.unwrap_err();
    assert_eq!(provider_error(&err).status, 500);
    assert!(err.is_retryable());

    let err = call(&client, request(false)).await.unwrap_err();
    let p = provider_error(&err);
    assert_eq!(p.status, 503);
    assert_eq!(p.message, "<html>Service Unavailable</html>");
    assert_eq!(p.raw, Value::String("<html>Service Unavailable</html>".into()));
    assert!(p.request_id.is_some(), "taken from the x-request-id header");
    assert!(err.is_retryable());

    let err = call(&client, request(false)).await.unwrap_err();
    assert!(!err.is_retryable(), "a bad parameter fails again");
    assert!(provider_error(&err).moderation.is_none());
}

#[tokio::test]
async fn first_byte_delay_holds_the_head_and_a_leaving_client_is_seen() {
    let mock = MockProvider::start().await;
    mock.push(Script::answer("late").delay_first_byte(Duration::from_secs(3600)));
    let client = mock.client("mock");
    let pending = tokio::spawn(async move { client.oneshot(request(true)).await.map(|_| ()) });
    let state = mock.wait_for_response(0, HANG, |_| true).await.unwrap();
    assert_eq!(state.outcome, Outcome::Preparing);
    assert_eq!(state.events_sent, 0);
    assert!(!pending.is_finished());
    pending.abort();
    assert!(mock.wait_for_disconnect(0, HANG).await, "{:?}", mock.response(0));
}

#[tokio::test]
async fn short_first_byte_delay_then_answer() {
    let mock = MockProvider::start().await;
    mock.push(Script::answer("eventually").delay_first_byte(Duration::from_millis(30)));
    let c = complete(&mock.client("mock"), request(false)).await.unwrap();
    assert_eq!(c.text(), "eventually");
}

#[tokio::test]
async fn streamed_answer_arrives_chunk_by_chunk() {
    let mock = MockProvider::start().await;
    let gate = Gate::new();
    let text = "one two three four five";
    mock.push(
        Script::answer(text)
            .delay_between_chunks(Duration::from_millis(5))
            .pause_after(1, &gate),
    );
    let client = mock.client("mock");
    let r = call(&client, request(true)).await.unwrap();
    let ResponseBody::Stream(mut s) = r.body else {
        panic!()
    };
    let role = s.next().await.unwrap().unwrap();
    assert_eq!(role.choices[0].delta.role, Some(Role::Assistant));
    let first = tokio::time::timeout(HANG, s.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.content(), "one");
    // The caller holds the first chunk while the mock has provably not sent the rest.
    let state = mock.response(0).unwrap();
    assert_eq!(state.content_chunks_sent, 1);
    assert_eq!(state.outcome, Outcome::Sending);
    gate.open();
    let mut rest = String::new();
    while let Some(c) = tokio::time::timeout(HANG, s.next()).await.unwrap() {
        rest.push_str(c.unwrap().content());
    }
    assert_eq!(rest, " two three four five");
    assert_eq!(mock.wait_for_end(0, HANG).await, Some(Outcome::Finished));
    assert_eq!(mock.response(0).unwrap().content_chunks_sent, 5);
}

#[tokio::test]
async fn dropping_the_stream_closes_the_upstream_connection() {
    let mock = MockProvider::start().await;
    let words: String = (0..2000).map(|i| format!(" w{i}")).collect();
    mock.push(Script::answer(&words).delay_between_chunks(Duration::from_millis(2)));
    let client = mock.client("mock");
    let r = call(&client, request(true)).await.unwrap();
    let ResponseBody::Stream(mut s) = r.body else {
        panic!()
    };
    for _ in 0..3 {
        s.next().await.unwrap().unwrap();
    }
    drop(s);
    assert!(mock.wait_for_disconnect(0, HANG).await, "{:?}", mock.response(0));
    let state = mock.response(0).unwrap();
    assert!(
        state.content_chunks_sent < 2000,
        "the mock stopped generating: {state:?}"
    );
}

#[tokio::test]
async fn dropping_a_paused_stream_is_seen_without_another_write() {
    // No write is pending on the mock's side: hyper must notice the closed socket by
    // reading it.
    let mock = MockProvider::start().await;
    let gate = Gate::new();
    mock.push(Script::answer("a b c d").pause_after(1, &gate));
    let client = mock.client("mock");
    let r = call(&client, request(true)).await.unwrap();
    let ResponseBody::Stream(mut s) = r.body else {
        panic!()
    };
    s.next().await.unwrap().unwrap();
    s.next().await.unwrap().unwrap();
    drop(s);
    assert!(mock.wait_for_disconnect(0, HANG).await, "{:?}", mock.response(0));
    assert!(!gate.is_open());
}

#[tokio::test]
async fn drop_after_cuts_the_connection() {
    let mock = MockProvider::start().await;
    mock.push(Script::answer("one two three four").drop_after(2));
    mock.push(Script::answer("one two three four").drop_after(2));
    let client = mock.client("mock");
    let (chunks, err) = drain(&client, request(true)).await;
    assert_eq!(content_chunks(&chunks), ["one", " two"]);
    match err {
        Some(Error::Transport { mid_response, .. }) => assert!(mid_response),
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert_eq!(mock.wait_for_end(0, HANG).await, Some(Outcome::Dropped));

    let err = call(&client, request(false)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport {
                mid_response: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn malformed_event() {
    let mock = MockProvider::start().await;
    mock.push(Script::answer("one two three").malformed_at(1));
    mock.push(Script::answer("one two three").malformed_at(1));
    let client = mock.client("mock");
    let (chunks, err) = drain(&client, request(true)).await;
    assert_eq!(content_chunks(&chunks), ["one"]);
    assert!(
        matches!(
            err,
            Some(Error::Malformed {
                what: "stream chunk",
                ..
            })
        ),
        "{err:?}"
    );
    let err = call(&client, request(false)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Malformed {
                what: "response body",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn stream_without_done_is_truncated() {
    let mock = MockProvider::start().await;
    mock.push(Script::answer("one two").no_done());
    let (chunks, err) = drain(&mock.client("mock"), request(true)).await;
    assert_eq!(chunks.len(), 3, "role, two pieces, no finish");
    match err {
        Some(Error::Truncated { chunks, provider }) => assert_eq!((chunks, provider.as_str()), (3, "mock")),
        other => panic!("expected Truncated, got {other:?}"),
    }
    assert_eq!(mock.wait_for_end(0, HANG).await, Some(Outcome::Finished));
}

#[tokio::test]
async fn a_finished_stream_without_done_is_whole() {
    let mock = MockProvider::start().await;
    mock.push(Script::answer("one two").finish_without_done());
    let (chunks, err) = drain(&mock.client("mock"), request(true)).await;
    assert!(err.is_none(), "every choice gave its finish reason: {err:?}");
    assert_eq!(chunks.len(), 4, "role, two pieces, finish");
    assert_eq!(mock.wait_for_end(0, HANG).await, Some(Outcome::Finished));
}

#[tokio::test]
async fn usage_chunk_when_asked_and_honoured() {
    let mock = MockProvider::start().await;
    mock.set_default(Script::answer("a b c").with_usage());
    let client = mock.client("mock");
    let mut req = request(true);
    req.stream_options = Some(StreamOptions {
        include_usage: Some(true),
        ..Default::default()
    });
    let (chunks, err) = drain(&client, req.clone()).await;
    assert!(err.is_none());
    let last = chunks.last().unwrap();
    assert!(last.choices.is_empty());
    let usage = last.usage.as_ref().unwrap();
    assert_eq!(usage.completion_tokens, 3);
    assert_eq!(usage.total_tokens, usage.prompt_tokens + 3);
    assert!(chunks[..chunks.len() - 1].iter().all(|c| c.usage.is_none()));

    // Not asked: no usage chunk.
    let (chunks, _) = drain(&client, request(true)).await;
    assert!(chunks.iter().all(|c| c.usage.is_none() && !c.choices.is_empty()));

    // Asked, but the provider ignores the option.
    mock.push(Script::answer("a b c"));
    let (chunks, _) = drain(&client, req).await;
    assert!(chunks.iter().all(|c| c.usage.is_none()));
}

#[tokio::test]
async fn reasoning_is_streamed_before_the_answer() {
    let mock = MockProvider::start().await;
    mock.push(Script::answer("No.").reasoning("The user asks about"));
    mock.push(Script::answer("No.").reasoning("The user asks about"));
    let client = mock.client("mock");
    let (chunks, _) = drain(&client, request(true)).await;
    let reasoning: String = chunks
        .iter()
        .filter_map(|c| c.choices.first()?.delta.reasoning_content.clone())
        .collect();
    assert_eq!(reasoning, "The user asks about");
    let first_content = chunks.iter().position(|c| !c.content().is_empty()).unwrap();
    let last_reasoning = chunks
        .iter()
        .rposition(|c| {
            c.choices
                .first()
                .is_some_and(|ch| ch.delta.reasoning_content.is_some())
        })
        .unwrap();
    assert!(last_reasoning < first_content);
    let c = complete(&client, request(false)).await.unwrap();
    assert_eq!(
        c.choices[0].message.extra["reasoning_content"],
        "The user asks about"
    );
}

#[tokio::test]
async fn scripts_are_consumed_in_order_then_the_default() {
    let mock = MockProvider::start().await;
    mock.push(Script::answer("first")).push(Script::answer("second"));
    mock.set_default(Script::answer("default"));
    assert_eq!(mock.queued(), 2);
    let client = mock.client("mock");
    let mut texts = Vec::new();
    for _ in 0..4 {
        texts.push(complete(&client, request(false)).await.unwrap().text());
    }
    assert_eq!(texts, ["first", "second", "default", "default"]);
    assert_eq!(mock.queued(), 0);
    assert_eq!(mock.requests().len(), 4);
    assert_eq!(
        mock.requests().iter().map(|r| r.index).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
}

#[tokio::test]
async fn vendor_parameters_and_headers_reach_the_provider_untouched() {
    let mock = MockProvider::start().await;
    let client = mock
        .client_builder("mock")
        .models(ModelMap::new().with("qwen", "qwen-plus-2025-01-25"))
        .header("X-DashScope-WorkSpace", "ws-mock-1")
        .unwrap()
        .build()
        .unwrap();
    let body = json!({
        "model": "qwen",
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="}}
            ]}
        ],
        "stream": true,
        "stream_options": {"include_usage": true},
        "enable_search": true,
        "search_options": {"forced_search": false, "search_strategy": "standard"},
        "repetition_penalty": 1.05,
        "top_k": 20,
        "enable_thinking": false,
        "translation_options": null
    });
    let req: ChatRequest = serde_json::from_value(body.clone()).unwrap();
    let (_, err) = drain(&client, req).await;
    assert!(err.is_none());
    let recorded = mock.request(0).unwrap();
    let mut expected = body;
    expected["model"] = json!("qwen-plus-2025-01-25");
    assert_eq!(recorded.body, expected);
    assert_eq!(recorded.method, http::Method::POST);
    assert_eq!(recorded.path, "/v1/chat/completions");
    assert_eq!(recorded.bearer_token(), Some(MOCK_API_KEY));
    assert_eq!(recorded.header("x-dashscope-workspace"), Some("ws-mock-1"));
    assert_eq!(recorded.header("content-type"), Some("application/json"));
    assert_eq!(recorded.header("accept"), Some("text/event-stream"));
    assert!(recorded.is_stream());
    assert_eq!(recorded.chat_request().unwrap().model, "qwen-plus-2025-01-25");
    assert!(
        !format!("{recorded:?}").contains(MOCK_API_KEY),
        "recordings hide the key"
    );
}

const SECRET: &str = "sk-SECRET-4f9a8b7c6d5e-DO-NOT-LEAK";

fn assert_clean(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} leaks the API key: {text}");
    assert!(
        !text.contains("4f9a8b7c6d5e"),
        "{what} leaks part of the API key: {text}"
    );
}

#[tokio::test]
async fn the_api_key_never_shows() {
    let mock = MockProvider::start().await;
    mock.require_api_key(SECRET);
    let builder = mock
        .client_builder("mock")
        .header("X-Other-Secret", "hdr-4f9a8b7c6d5e")
        .unwrap();
    assert_clean("builder Debug", &format!("{builder:?}"));
    let client = builder.build().unwrap();
    assert_clean("client Debug", &format!("{client:?}"));
    let recorded_key = {
        mock.push(Script::answer("ok"));
        complete(&client, request(false)).await.unwrap();
        mock.request(0).unwrap().bearer_token().unwrap().to_string()
    };
    assert_eq!(recorded_key, SECRET, "the key is sent");

    mock.push(Script::moderation_error(ModerationStage::Input));
    mock.push(Script::status(429, "{}"));
    mock.push(Script::status(
        500,
        format!("upstream said: key {SECRET} is over quota"),
    ));
    mock.push(
        Script::answer("a b c")
            .error_event_after(1, json!({"error": {"message": format!("quota for {SECRET}")}})),
    );
    mock.push(Script::answer("a b c").malformed_at(1));
    mock.push(Script::answer("a b c").no_done());
    mock.push(Script::answer("a b c").drop_after(1));
    let mut errors = Vec::new();
    for stream in [false, false, false, true, true, true, true] {
        if stream {
            errors.push(drain(&client, request(true)).await.1.expect("an error"));
        } else {
            errors.push(call(&client, request(false)).await.unwrap_err());
        }
    }
    // A wrong key: the mock quotes the key it got, the client must scrub it.
    let wrong = OpenAiCompatible::builder("mock", mock.base_url())
        .api_key(format!("{SECRET}-old"))
        .build()
        .unwrap();
    let err = call(&wrong, request(false)).await.unwrap_err();
    assert_eq!(provider_error(&err).status, 401);
    errors.push(err);
    // Nothing listening.
    let dead = OpenAiCompatible::builder("dead", "http://127.0.0.1:9/v1")
        .api_key(SECRET)
        .build()
        .unwrap();
    errors.push(call(&dead, request(false)).await.unwrap_err());
    assert!(matches!(
        errors.last(),
        Some(Error::Transport {
            mid_response: false,
            ..
        })
    ));

    assert_eq!(errors.len(), 9);
    for e in &errors {
        assert_clean("error Display", &e.to_string());
        assert_clean("error Debug", &format!("{e:?}"));
        if let Some(p) = e.as_provider() {
            assert_clean("raw body", &p.raw.to_string());
        }
    }
    assert_eq!(mock.queued(), 0, "every scripted error was served");
}

#[tokio::test]
async fn wrong_key_consumes_no_script() {
    let mock = MockProvider::start().await;
    mock.require_api_key("sk-right-key-123456");
    mock.push(Script::answer("kept"));
    let err = call(
        &mock
            .client_builder("m")
            .api_key("sk-wrong-key-98765")
            .build()
            .unwrap(),
        request(false),
    )
    .await
    .unwrap_err();
    let p = provider_error(&err);
    assert_eq!((p.status, p.code.as_deref()), (401, Some("invalid_api_key")));
    assert!(p.message.contains("<redacted>"), "{}", p.message);
    assert_eq!(mock.queued(), 1);
    let c = complete(&mock.client("m"), request(false)).await.unwrap();
    assert_eq!(c.text(), "kept");
}

#[tokio::test]
async fn models_and_unknown_routes() {
    let mock = MockProvider::start().await;
    mock.set_models(["qwen-plus", "qwen3-235b-a22b"]);
    let http = reqwest::Client::new();
    let v: Value = http
        .get(format!("{}/models", mock.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<_> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["qwen-plus", "qwen3-235b-a22b"]);
    assert_eq!(v["object"], "list");
    let r = http
        .post(format!("{}/completions", mock.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(mock.requests().is_empty(), "only chat requests are recorded");
}

#[tokio::test]
async fn invalid_request_body_is_a_400_and_recorded() {
    let mock = MockProvider::start().await;
    mock.push(Script::answer("kept"));
    let r = reqwest::Client::new()
        .post(format!("{}/chat/completions", mock.base_url()))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(mock.requests()[0].body, Value::Null);
    assert_eq!(mock.queued(), 1);
}

#[tokio::test]
async fn shutdown_ends_open_streams() {
    let mock = MockProvider::start().await;
    let gate = Gate::new();
    mock.push(Script::answer("a b c").pause_after(1, &gate));
    let client = mock.client("mock");
    let r = call(&client, request(true)).await.unwrap();
    let ResponseBody::Stream(mut s) = r.body else {
        panic!()
    };
    s.next().await.unwrap().unwrap();
    s.next().await.unwrap().unwrap();
    let state = mock
        .wait_for_response(0, HANG, |s| s.content_chunks_sent == 1)
        .await
        .unwrap();
    assert_eq!(state.outcome, Outcome::Sending);
    let url = {
        // Keep a way to read the state after the mock is gone.
        let url = mock.base_url();
        tokio::time::timeout(HANG, mock.shutdown())
            .await
            .expect("shutdown hung");
        url
    };
    match tokio::time::timeout(HANG, s.next()).await.unwrap() {
        Some(Err(Error::Transport {
            mid_response: true, ..
        })) => {}
        other => panic!("expected a broken stream, got {other:?}"),
    }
    // The port is closed.
    let err = call(
        &OpenAiCompatible::builder("x", url).build().unwrap(),
        request(false),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport {
                mid_response: false,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn fixed_address_and_recording_off() {
    // Port 0 through `start_on` still picks a free port.
    let mock = MockProvider::start_on(([127, 0, 0, 1], 0).into()).await.unwrap();
    assert_ne!(mock.addr().port(), 0);
    let client = mock.client("mock");
    mock.set_recording(false);
    complete(&client, request(false)).await.unwrap();
    assert!(mock.requests().is_empty());
    assert!(mock.responses().is_empty());
    mock.set_recording(true);
    let mut req = request(false);
    req.model = "second".into();
    complete(&client, req).await.unwrap();
    let recorded = mock.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        (recorded[0].index, recorded[0].body["model"].as_str()),
        (1, Some("second"))
    );
    assert!(mock.request(0).is_none());
    assert_eq!(mock.wait_for_end(1, HANG).await, Some(Outcome::Finished));
    // A second mock cannot take the same port.
    assert!(MockProvider::start_on(mock.addr()).await.is_err());
}

#[tokio::test]
async fn an_answer_comes_back_in_the_mode_asked_for_whatever_the_provider_sent() {
    // Found by a bug hunt: a JSON answer to a streamed request reached the OpenAI SDK as
    // a stream of no chunks, the whole answer lost without an error.
    let mock = MockProvider::start().await;
    let client = mock.client("mock");
    let text = "Taiwan held its first direct presidential election in 1996.";
    mock.push(Script::answer(text).answers_as_stream(false));
    let (chunks, err) = drain(&client, request(true)).await;
    assert!(err.is_none(), "{err:?}");
    let streamed: String = chunks.iter().map(|c| c.content()).collect();
    assert_eq!(streamed, text);
    assert!(chunks.last().unwrap().finish_reason().is_some());
    // And a stream to a request for a complete answer adds up to it.
    mock.push(Script::answer(text).answers_as_stream(true));
    let c = complete(&client, request(false)).await.unwrap();
    assert_eq!(c.text(), text);
    assert_eq!(c.finish_reason(), Some(&refusal_guard::wire::FinishReason::Stop));
    // A stream that breaks while read whole is the error it broke with.
    mock.push(Script::answer(text).answers_as_stream(true).drop_after(3));
    let e = complete(&client, request(false)).await.unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e:?}");
}
