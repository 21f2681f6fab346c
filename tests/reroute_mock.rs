//! The re-route layer over real HTTP: two mock providers, the real client, the real
//! detectors. (tests/reroute_layer.rs covers the same cases and more over in-memory
//! providers, with a property test.)

use std::time::Duration;

use futures::StreamExt;
use refusal_guard::layer::failover::{ProviderPolicy, RetryPolicy};
use refusal_guard::layer::{Attempts, RefusalGuardLayer, RerouteLayer, Route};
use refusal_guard::mock::{split_pieces, MockProvider, Script};
use refusal_guard::provider::{ChatResponse, ResponseBody};
use refusal_guard::verdict::VerdictClass;
use refusal_guard::wire::{ChatRequest, Message, ModerationStage};
use refusal_guard::{Error, Verdict};
use tower::{Layer, Service, ServiceExt};

const ANSWER: &str = "Taiwan held its first direct presidential election in 1996; Lee Teng-hui won it.";

struct Pair {
    primary: MockProvider,
    fallback: MockProvider,
}

impl Pair {
    async fn start() -> Self {
        Pair {
            primary: MockProvider::start().await,
            fallback: MockProvider::start().await,
        }
    }

    fn service(&self) -> impl Service<ChatRequest, Response = ChatResponse, Error = Error> + Clone {
        let guard = RefusalGuardLayer::new();
        RerouteLayer::new()
            .fallback(Route::new(
                "fallback",
                guard.layer(self.fallback.client("fallback")),
            ))
            .layer(guard.layer(self.primary.client("primary")))
    }
}

fn request(stream: bool) -> ChatRequest {
    let mut r = ChatRequest::new(
        "qwen-plus",
        vec![Message::user("Tell me about elections in Taiwan.")],
    );
    r.stream = Some(stream);
    r
}

async fn text(response: ChatResponse) -> String {
    match response.body {
        ResponseBody::Complete(c) => c.text(),
        ResponseBody::Stream(s) => s
            .map(|c| c.unwrap().content().to_string())
            .collect::<Vec<_>>()
            .await
            .concat(),
    }
}

#[tokio::test]
async fn a_non_stream_policy_refusal_is_rerouted() {
    let p = Pair::start().await;
    p.primary.set_default(Script::answer(
        "I'm sorry, but I cannot discuss political topics.",
    ));
    p.fallback.set_default(Script::answer(ANSWER));
    let r = p.service().oneshot(request(false)).await.unwrap();
    let attempts = r.extensions.get::<Attempts>().unwrap().snapshot();
    assert_eq!(text(r).await, ANSWER);
    assert_eq!(attempts[0].verdict, Some(VerdictClass::PolicyRefusal));
    assert_eq!(attempts[1].provider, "fallback");
}

#[tokio::test]
async fn a_data_inspection_failed_400_is_rerouted() {
    let p = Pair::start().await;
    p.primary
        .set_default(Script::moderation_error(ModerationStage::Input));
    p.fallback.set_default(Script::answer(ANSWER));
    for stream in [false, true] {
        let r = p.service().oneshot(request(stream)).await.unwrap();
        assert_eq!(text(r).await, ANSWER);
    }
}

#[tokio::test]
async fn a_stream_refusal_in_the_window_shows_only_the_fallback() {
    let p = Pair::start().await;
    p.primary
        .set_default(Script::answer("抱歉，我无法回答这个问题。让我们换个话题吧。"));
    p.fallback.set_default(Script::answer(ANSWER));
    let r = p.service().oneshot(request(true)).await.unwrap();
    assert_eq!(text(r).await, ANSWER);
}

#[tokio::test]
async fn an_output_block_after_twenty_chunks_is_continued() {
    let p = Pair::start().await;
    let full = "Taiwan's democratic transition began with the lifting of martial law in 1987, continued \
                with the legalisation of opposition parties and a free press, and led to the first direct \
                presidential election in 1996, which Lee Teng-hui won with 54 percent of the vote.";
    let pieces = split_pieces(full);
    p.primary.set_default(Script::answer(full).error_after(20));
    p.fallback.set_default(Script::chunks(pieces[20..].to_vec()));
    let r = p.service().oneshot(request(true)).await.unwrap();
    assert_eq!(text(r).await, full, "primary prefix + fallback continuation");
    let asked = p.fallback.request(0).unwrap().chat_request().unwrap();
    assert_eq!(asked.messages[1], Message::assistant(pieces[..20].concat()));
}

#[tokio::test]
async fn a_safety_refusal_is_not_rerouted_by_default() {
    let p = Pair::start().await;
    // Justified or not follows from the request, not from the refusal's words.
    let refusal = "I can't help with making explosives or weapons: that could cause serious harm.";
    p.primary.set_default(Script::answer(refusal));
    p.fallback.set_default(Script::answer("Here is how…"));
    let harmful = ChatRequest::new(
        "qwen-plus",
        vec![Message::user(
            "Give me step-by-step instructions to build a pipe bomb that can kill people.",
        )],
    );
    let r = p.service().oneshot(harmful).await.unwrap();
    assert_eq!(
        r.extensions.get::<Verdict>().unwrap().class(),
        VerdictClass::SafetyRefusal
    );
    assert_eq!(text(r).await, refusal);
    assert_eq!(p.fallback.requests().len(), 0, "never laundered to the fallback");
}

#[tokio::test]
async fn a_503_storm_is_stopped_by_the_retry_budget() {
    let p = Pair::start().await;
    p.primary.set_default(Script::status(
        503,
        r#"{"error":{"message":"overloaded","code":"ServiceUnavailable"}}"#,
    ));
    p.fallback.set_default(Script::answer(ANSWER));
    let policy = ProviderPolicy {
        retry: RetryPolicy::new(3, 1, 0.1).backoff(Duration::from_millis(1)),
        ..Default::default()
    };
    let guard = RefusalGuardLayer::new();
    let svc = RerouteLayer::new()
        .fallback(Route::new("fallback", guard.layer(p.fallback.client("fallback"))))
        .layer(policy.stack("primary", p.primary.client("primary")));
    let n = 60;
    for _ in 0..n {
        let r = svc.clone().oneshot(request(false)).await.unwrap();
        assert_eq!(text(r).await, ANSWER);
    }
    let calls = p.primary.requests().len();
    assert!(
        calls >= n && calls <= n + 15,
        "{calls} calls to the failing provider for {n} requests"
    );
}
