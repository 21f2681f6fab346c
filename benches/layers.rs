//! The cost of the guard and re-route layers on the no-refusal path, in-process: the same
//! in-memory upstream called bare, through the guard, and through re-route + guard with
//! a fallback configured (never used). Complete answers of about 1 KB, and streams of 64
//! chunks consumed to the end. The per-request figure the goal speaks of is the
//! difference between the bare and the layered runs.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use futures::StreamExt;
use refusal_guard::layer::{RefusalGuardLayer, RerouteLayer, Route};
use refusal_guard::provider::{ChatResponse, ProviderName, ResponseBody};
use refusal_guard::wire::{
    ChatCompletion, ChatCompletionChunk, ChatRequest, Choice, ChunkChoice, Delta, Message,
};
use refusal_guard::Error;
use tower::{Layer, Service, ServiceExt};

const ANSWER: &str = "The Treaty of Westphalia, signed in 1648, ended the Thirty Years' War and the \
Eighty Years' War. It is often described as the beginning of the modern system of sovereign states, \
because it recognised the principle that each state has authority over its own territory and domestic \
affairs, to the exclusion of all external powers. Historians debate how much the treaties really changed: \
many of the ideas attributed to them developed over the following centuries. Still, the settlement \
redrew the map of central Europe, confirmed the independence of the Dutch Republic and the Swiss \
Confederation, and gave the German princes wide autonomy within the Holy Roman Empire. ";

fn completion() -> ChatCompletion {
    ChatCompletion {
        id: Some("chatcmpl-bench".into()),
        choices: vec![Choice {
            index: 0,
            message: Message::assistant(ANSWER),
            finish_reason: None,
            logprobs: None,
            extra: Default::default(),
        }],
        ..Default::default()
    }
}

fn chunks() -> Vec<ChatCompletionChunk> {
    ANSWER
        .split_inclusive(' ')
        .take(64)
        .map(|w| ChatCompletionChunk {
            id: Some("chatcmpl-bench".into()),
            choices: vec![ChunkChoice {
                delta: Delta {
                    content: Some(w.into()),
                    ..Default::default()
                },
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect()
}

#[derive(Clone)]
struct Upstream {
    completion: Arc<ChatCompletion>,
    chunks: Arc<Vec<ChatCompletionChunk>>,
}

impl Service<ChatRequest> for Upstream {
    type Response = ChatResponse;
    type Error = Error;
    type Future = std::future::Ready<Result<ChatResponse, Error>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        let mut r = if req.is_stream() {
            let items: Vec<Result<_, Error>> = self.chunks.iter().cloned().map(Ok).collect();
            ChatResponse::stream(Box::pin(futures::stream::iter(items)))
        } else {
            ChatResponse::complete((*self.completion).clone())
        };
        r.extensions.insert(ProviderName(Arc::from("bench")));
        std::future::ready(Ok(r))
    }
}

async fn drain(response: ChatResponse) -> usize {
    match response.body {
        ResponseBody::Complete(c) => c.text().len(),
        ResponseBody::Stream(s) => {
            s.map(|c| c.unwrap().content().len())
                .fold(0, |a, b| async move { a + b })
                .await
        }
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let upstream = Upstream {
        completion: Arc::new(completion()),
        chunks: Arc::new(chunks()),
    };
    let guard = RefusalGuardLayer::new();
    let guarded = guard.layer(upstream.clone());
    let rerouted = RerouteLayer::new()
        .fallback(Route::new("fallback", guard.layer(upstream.clone())))
        .layer(guard.layer(upstream.clone()));
    let complete = ChatRequest::new("qwen-plus", vec![Message::user("Tell me about Westphalia.")]);
    let mut streamed = complete.clone();
    streamed.stream = Some(true);

    for (label, request) in [("complete", complete), ("stream64", streamed)] {
        let mut group = c.benchmark_group(format!("layers/{label}"));
        group.bench_function("bare", |b| {
            b.to_async(&rt)
                .iter(|| async { drain(upstream.clone().oneshot(request.clone()).await.unwrap()).await })
        });
        group.bench_function("guard", |b| {
            b.to_async(&rt)
                .iter(|| async { drain(guarded.clone().oneshot(request.clone()).await.unwrap()).await })
        });
        group.bench_function("reroute+guard", |b| {
            b.to_async(&rt)
                .iter(|| async { drain(rerouted.clone().oneshot(request.clone()).await.unwrap()).await })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
