//! The guard with the real detectors, over real HTTP: the mock provider streams, the
//! OpenAI-compatible client decodes, the guard judges.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use refusal_guard::layer::{RefusalGuardLayer, StreamVerdict};
use refusal_guard::mock::{MockProvider, Outcome, Script};
use refusal_guard::provider::{ChatResponse, ResponseBody};
use refusal_guard::verdict::{VerdictClass, VerdictKind};
use refusal_guard::wire::{ChatRequest, Message, ModerationStage};
use refusal_guard::{Error, Verdict};
use tower::{Layer, ServiceExt};

const ANSWER: &str = "The Cultural Revolution lasted from 1966 to 1976. It was launched by Mao Zedong, \
and it brought persecution, the closing of schools and universities, and the destruction of much of \
China's cultural heritage. Historians estimate that hundreds of thousands to millions died.";

fn request(stream: bool) -> ChatRequest {
    let mut r = ChatRequest::new(
        "qwen-plus",
        vec![Message::user("What was the Cultural Revolution?")],
    );
    r.stream = Some(stream);
    r
}

/// The client, with a tap that records (as JSON) every chunk it decoded from the wire.
fn tapped_client(
    mock: &MockProvider,
) -> (
    impl tower::Service<ChatRequest, Response = ChatResponse, Error = Error, Future = impl Send> + Clone,
    Arc<Mutex<Vec<String>>>,
) {
    let wire = Arc::new(Mutex::new(Vec::new()));
    let tap = wire.clone();
    let client = mock.client("mock");
    let service = tower::service_fn(move |req: ChatRequest| {
        let client = client.clone();
        let tap = tap.clone();
        async move {
            let mut response = client.oneshot(req).await?;
            if let ResponseBody::Stream(s) = response.body {
                response.body = ResponseBody::Stream(Box::pin(s.inspect(move |item| {
                    if let Ok(c) = item {
                        tap.lock().unwrap().push(serde_json::to_string(c).unwrap());
                    }
                })));
            }
            Ok::<_, Error>(response)
        }
    });
    (service, wire)
}

#[tokio::test]
async fn an_answer_is_released_byte_identical_to_what_the_provider_sent() {
    let mock = MockProvider::start().await;
    mock.set_default(Script::answer(ANSWER).with_logprobs(-0.05).with_usage());
    let (client, wire) = tapped_client(&mock);
    let mut req = request(true);
    req.logprobs = Some(true);
    req.extra.insert(
        "stream_options".into(),
        serde_json::json!({"include_usage": true}),
    );
    let response = RefusalGuardLayer::new().layer(client).oneshot(req).await.unwrap();
    assert_eq!(
        response.extensions.get::<Verdict>().unwrap().class(),
        VerdictClass::Answer
    );
    let ResponseBody::Stream(stream) = response.body else {
        panic!("stream")
    };
    let released: Vec<String> = stream
        .map(|c| serde_json::to_string(&c.unwrap()).unwrap())
        .collect()
        .await;
    let sent = wire.lock().unwrap().clone();
    assert!(
        sent.len() > 40,
        "role, content, finish and usage chunks: {}",
        sent.len()
    );
    assert_eq!(released, sent);
}

#[tokio::test]
async fn a_streamed_refusal_is_stopped_in_the_window_and_the_provider_stops_generating() {
    let mock = MockProvider::start().await;
    let refusal = "I'm sorry, but I can't discuss this topic. Let's talk about something else instead, \
                   for example the history of Chinese poetry or the geography of the Yangtze basin, which \
                   I would be glad to help with in as much detail as you like.";
    mock.set_default(Script::answer(refusal).delay_between_chunks(Duration::from_millis(5)));
    let err = RefusalGuardLayer::new()
        .layer(mock.client("mock"))
        .oneshot(request(true))
        .await
        .unwrap_err();
    let r = err.as_refusal().expect("stopped as a refusal");
    assert_eq!(r.verdict.class(), VerdictClass::PolicyRefusal, "{}", r.verdict);
    let held_tokens: usize = r.held.iter().map(|c| c.token_count()).sum();
    assert!(
        held_tokens <= 16,
        "decided inside the window: {held_tokens} tokens"
    );
    // The refusal keeps the rest of the stream unread for a caller no fallback answers;
    // once it is dropped (a fallback answered), the provider is let go.
    drop(err);
    assert!(mock.wait_for_disconnect(0, Duration::from_secs(10)).await);
    let sent = mock.response(0).unwrap().content_chunks_sent;
    assert!(sent < 40, "the provider was cut off early: {sent} chunks");
}

#[tokio::test]
async fn chinese_refusal_and_non_stream_refusal_are_stopped() {
    let mock = MockProvider::start().await;
    mock.push(Script::answer("抱歉，我无法回答这个问题。我们可以聊聊其他话题。"));
    mock.push(Script::answer(
        "As an AI developed by Alibaba Cloud, I'm unable to discuss this topic.",
    ));
    let guard = RefusalGuardLayer::new().layer(mock.client("mock"));
    let zh = guard.clone().oneshot(request(true)).await.unwrap_err();
    assert!(zh.as_refusal().unwrap().verdict.class().is_non_answer());
    let en = guard.oneshot(request(false)).await.unwrap_err();
    let r = en.as_refusal().unwrap();
    assert!(r.completion.is_some(), "the original answer is kept");
    assert!(r.verdict.class().is_non_answer(), "{}", r.verdict);
}

#[tokio::test]
async fn an_output_block_after_the_window_is_recorded() {
    let mock = MockProvider::start().await;
    mock.set_default(Script::answer(ANSWER).error_after(20));
    let response = RefusalGuardLayer::new()
        .layer(mock.client("mock"))
        .oneshot(request(true))
        .await
        .unwrap();
    let final_verdict = response.extensions.get::<StreamVerdict>().unwrap().clone();
    let ResponseBody::Stream(mut stream) = response.body else {
        panic!()
    };
    let mut content = 0;
    let err = loop {
        match stream.next().await.expect("the block arrives") {
            Ok(c) => content += usize::from(!c.content().is_empty()),
            Err(e) => break e,
        }
    };
    assert_eq!(content, 20);
    let stage = ModerationStage::Output;
    assert_eq!(
        err.as_refusal().unwrap().verdict.kind,
        VerdictKind::ProviderBlock { stage }
    );
    assert_eq!(
        final_verdict.wait().await.unwrap().kind,
        VerdictKind::ProviderBlock { stage }
    );
    assert_eq!(mock.response(0).unwrap().outcome, Outcome::Finished);
}

/// A short refusal in words no pattern knows, streamed whole inside the window, is judged
/// as the complete answer it is: the embedded default's short-reply head reads it
/// (`classify::short_head`), and the guard stops it, streamed or not. A short answer that
/// opens with "No" is released, every byte.
#[tokio::test]
async fn a_short_refusal_no_pattern_knows_is_stopped_by_the_short_reply_head() {
    let mock = MockProvider::start().await;
    let refusal = "Let's keep politics out of this chat.";
    mock.push(Script::answer(refusal));
    mock.push(Script::answer(refusal));
    let answer = "No, penguins can't fly; they swim.";
    mock.push(Script::answer(answer));
    let guard = RefusalGuardLayer::new().layer(mock.client("mock"));
    for stream in [true, false] {
        let err = guard.clone().oneshot(request(stream)).await.unwrap_err();
        let verdict = &err.as_refusal().expect("stopped as a refusal").verdict;
        assert!(verdict.class().is_non_answer(), "{verdict}");
        assert!(
            verdict
                .evidence
                .iter()
                .any(|e| e.source == "short_answer" && e.reason.contains("short-reply head")),
            "{verdict:?}"
        );
    }
    let response = guard.oneshot(request(true)).await.unwrap();
    assert_eq!(common::response_text(response).await, answer);
}

/// A plain answer of a few sentences with no trace of a refusal: the combiner alone reads
/// brevity itself as refusal and called this one a policy refusal (0.43 from 0.35, before
/// 2026-12-06's thirty-fifth session), and the guard stopped it. The embedded default's
/// short-reply head now reviews such replies (`judge::SHORT_REPLY_TOKENS`,
/// `judge::SHORT_REPLY_VETO_BELOW`), and the guard releases it whole, streamed or not. A
/// reply of the same length that opens with a refusal formula is still the combiner's, and
/// is stopped.
#[tokio::test]
async fn a_plain_answer_of_a_few_sentences_is_released_whole() {
    let mock = MockProvider::start().await;
    let answer = "You can undo the last commit with git reset --soft HEAD~1, which keeps your \
        changes staged so you can fix them and commit again.";
    let refusal = "I'm sorry, but I can't help with getting into someone else's email account. \
        If you have lost access to your own, the provider's recovery page is the way back in.";
    for _ in 0..2 {
        mock.push(Script::answer(answer));
    }
    for _ in 0..2 {
        mock.push(Script::answer(refusal));
    }
    let guard = RefusalGuardLayer::new().layer(mock.client("mock"));
    for stream in [true, false] {
        let response = guard.clone().oneshot(request(stream)).await.unwrap();
        assert_eq!(common::response_text(response).await, answer, "stream {stream}");
    }
    for stream in [true, false] {
        let err = guard.clone().oneshot(request(stream)).await.unwrap_err();
        let verdict = &err.as_refusal().expect("stopped as a refusal").verdict;
        assert!(verdict.class().is_non_answer(), "{verdict}");
    }
}
