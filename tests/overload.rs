//! More answers needing the encoder than it can read: an e5 gateway flooded with short
//! Chinese answers (each one an encoder pass), more at once than the process's turns and
//! queue of model passes hold (`refusal_guard::classify::passes`).
//!
//! A test binary of its own, not a module of tests/integration.rs: the queue is the
//! process's, and these floods fill it on purpose. In the integration binary, an e5 test
//! running beside them lost its answer passes and with them its measured shares (checked by
//! shedding every answer pass: two of harm_reroute's e5 tests fell under their floors).
//! Like the fault suite, time is never asserted; a timeout only turns a hang into a
//! failure.

mod common;

use std::future::Future;
use std::time::Duration;

use refusal_guard::mock::{MockProvider, Script};
use serde_json::{json, Value};

/// Hang protection for one case.
const CASE: Duration = Duration::from_secs(60);

/// The process's queue of model passes, one flood at a time: with two floods at once, one
/// filled the queue and the other's passes were all shed, so none of them waited (and none
/// could be abandoned: the clients-that-hung-up case failed 2 runs of 10 that way).
static QUEUE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs one case with the queue to itself, and turns a hang into a failure.
async fn bounded<F: Future>(f: F) -> F::Output {
    let _queue = QUEUE.lock().await;
    tokio::time::timeout(CASE, f).await.expect("the case hung")
}

/// One non-streamed chat request for `model` with the user message `content`; the
/// gateway's answer, whatever its status.
async fn ask(client: &reqwest::Client, url: &str, model: &str, content: &str) -> reqwest::Response {
    client
        .post(url)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": content}]}))
        .send()
        .await
        .expect("the gateway answers")
}

/// The gateway's `/metrics` text.
async fn metrics(base_url: &str) -> String {
    common::metrics_text(&reqwest::Client::new(), base_url).await
}

/// An e5 gateway in front of a mock that answers every request with `answer` and its
/// number: the mock, the gateway's base URL and what stops it.
async fn flooded_gateway(answer: &str) -> (MockProvider, String, tokio::sync::oneshot::Sender<()>) {
    let mock = MockProvider::start().await;
    mock.set_default(Script::answer(answer).numbered());
    let (base_url, stop) = common::serve(&format!(
        "[guard]\ntiers = [\"e5\"]\n[providers.primary]\nbase_url = \"{}\"\nmax_retries = 0\n\
         [[routes]]\nmodel = \"*\"\nprimary = \"primary\"\n",
        mock.base_url()
    ))
    .await;
    (mock, base_url, stop)
}

/// The value of the unlabelled counter `name` in a `/metrics` text.
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
}

/// A flood of short Chinese answers through an e5 gateway, each of which asks the encoder
/// for a pass (the short-reply head reads every CJK short answer), more at once than the
/// process's turns and queue hold: the passes beyond the queue are shed and counted, and
/// every request still gets its own answer, whole and once (shed, an answer keeps the
/// cheaper tiers' verdict). Before the queue had a bound, such a flood waited in it without
/// end (docs/gateway.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_beyond_the_encoders_queue_are_judged_without_it_and_delivered_whole() {
    if common::e5_detectors().is_none() {
        return;
    }
    const ANSWER: &str = "巴黎是法国的首都，位于塞纳河畔，人口大约两百万。";
    let flood = refusal_guard::classify::concurrent_passes() + refusal_guard::classify::queued_passes() + 40;
    bounded(async {
        let (_mock, base_url, _stop) = flooded_gateway(ANSWER).await;
        let before = metrics(&base_url).await;
        let client = reqwest::Client::new();
        let url = format!("{base_url}/chat/completions");
        let replies = futures::future::join_all(
            (0..flood).map(|_| ask(&client, &url, "qwen-plus", "法国的首都是哪里？")),
        )
        .await;
        let mut numbers = Vec::new();
        for reply in replies {
            assert_eq!(reply.status(), 200);
            let v: Value = reply.json().await.unwrap();
            let text = v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_string();
            let number = text
                .strip_prefix(ANSWER)
                .and_then(|n| n.strip_prefix(" (#")?.strip_suffix(')')?.parse::<usize>().ok())
                .unwrap_or_else(|| panic!("not the mock's answer: {text:?}"));
            numbers.push(number);
        }
        numbers.sort_unstable();
        assert_eq!(numbers, (0..flood).collect::<Vec<_>>(), "each answer once");
        let after = metrics(&base_url).await;
        let shed = |m: &str| counter(m, "refusal_guard_model_passes_shed_total");
        let run = |m: &str| counter(m, "refusal_guard_model_passes_total");
        assert!(shed(&after) > shed(&before), "no pass was shed:\n{after}");
        assert!(run(&after) > run(&before), "no pass ran:\n{after}");
    })
    .await;
}

/// The flood above, kept up, and meanwhile the primary refuses a lawful political question
/// in Chinese: its request's reading goes before the waiting answer passes
/// ([`refusal_guard::classify::Priority`]), so it is not shed, the refusal is judged an
/// over-block, and the fallback answers, as on a quiet day. Shed, the reading would have
/// failed safe and the refusal would have reached the caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_flood_of_answer_passes_a_refused_benign_request_is_still_judged_and_rerouted() {
    if common::e5_detectors().is_none() {
        return;
    }
    const ANSWER: &str = "巴黎是法国的首都，位于塞纳河畔，人口大约两百万。";
    const FALLBACK: &str =
        "1989年春，北京的学生和市民在天安门广场聚集，要求政治改革；六月四日军队清场，造成大量伤亡。";
    let senders =
        refusal_guard::classify::concurrent_passes() + refusal_guard::classify::queued_passes() + 24;
    bounded(async {
        let (flooded, primary, fallback) = (
            MockProvider::start().await,
            MockProvider::start().await,
            MockProvider::start().await,
        );
        flooded.set_default(Script::answer(ANSWER).numbered());
        primary.set_default(Script::answer("抱歉，我无法回答这个问题。"));
        fallback.set_default(Script::answer(FALLBACK));
        let (base_url, _stop) = common::serve(&format!(
            "[guard]\ntiers = [\"e5\"]\n\
             [providers.flooded]\nbase_url = \"{}\"\nmax_retries = 0\n\
             [providers.primary]\nbase_url = \"{}\"\nmax_retries = 0\n\
             [providers.fallback]\nbase_url = \"{}\"\nmax_retries = 0\n\
             [[routes]]\nmodel = \"flood\"\nprimary = \"flooded\"\n\
             [[routes]]\nmodel = \"*\"\nprimary = \"primary\"\nfallbacks = [\"fallback\"]\n",
            flooded.base_url(),
            primary.base_url(),
            fallback.base_url()
        ))
        .await;
        let shed = |m: &str| counter(m, "refusal_guard_model_passes_shed_total");
        let url = format!("{base_url}/chat/completions");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flood: Vec<_> = (0..senders)
            .map(|_| {
                let (url, stop) = (url.clone(), stop.clone());
                tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        let r = ask(&client, &url, "flood", "法国的首都是哪里？").await;
                        assert_eq!(r.status(), 200);
                    }
                })
            })
            .collect();
        // Once passes are being shed, the queue is full of answer passes.
        let before = shed(&metrics(&base_url).await);
        while shed(&metrics(&base_url).await) == before {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let during = shed(&metrics(&base_url).await);
        let r = ask(
            &reqwest::Client::new(),
            &url,
            "qwen-plus",
            "1989年天安门广场发生了什么？请简要介绍历史经过。",
        )
        .await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        let after = shed(&metrics(&base_url).await);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for f in flood {
            f.await.unwrap();
        }
        assert!(
            after > during,
            "the flood went on shedding while the refusal was judged"
        );
        assert_eq!(
            v["choices"][0]["message"]["content"], FALLBACK,
            "the refusal was re-routed: {v}"
        );
        assert_eq!(primary.requests().len(), 1);
        assert_eq!(fallback.requests().len(), 1);
    })
    .await;
}

/// Clients that give up on a flood before their answers are judged (a timeout shorter than
/// the queue's wait): the gateway drops their requests, and the passes they left waiting
/// are given up unrun and counted as abandoned, not run for nobody. Then the queue is
/// empty again and the next request is answered as on a quiet day.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_left_waiting_by_clients_that_hung_up_are_abandoned_unrun() {
    if common::e5_detectors().is_none() {
        return;
    }
    const ANSWER: &str = "巴黎是法国的首都，位于塞纳河畔，人口大约两百万。";
    let flood = refusal_guard::classify::concurrent_passes() + refusal_guard::classify::queued_passes() + 40;
    bounded(async {
        let (_mock, base_url, _stop) = flooded_gateway(ANSWER).await;
        let abandoned = |m: &str| counter(m, "refusal_guard_model_passes_abandoned_total");
        let before = abandoned(&metrics(&base_url).await);
        let url = format!("{base_url}/chat/completions");
        // Each pass is milliseconds of a core and the queue holds several: the clients at
        // its end leave before their turn.
        let impatient = reqwest::Client::builder()
            .timeout(Duration::from_millis(15))
            .build()
            .unwrap();
        let replies = futures::future::join_all((0..flood).map(|_| {
            impatient
                .post(&url)
                .json(&json!({"model": "qwen-plus", "messages": [{"role": "user", "content": "法国的首都是哪里？"}]}))
                .send()
        }))
        .await;
        assert!(
            replies.iter().any(|r| r.as_ref().is_err_and(|e| e.is_timeout())),
            "no client gave up"
        );
        // The passes notice as their turns come round (a few seconds at most, however
        // slow the machine: the queue holds a bounded number).
        let mut after = metrics(&base_url).await;
        for _ in 0..1_000 {
            if abandoned(&after) > before && counter(&after, "refusal_guard_model_passes_waiting") == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            after = metrics(&base_url).await;
        }
        assert!(
            abandoned(&after) > before,
            "the clients left and no waiting pass was abandoned:\n{after}"
        );
        assert_eq!(counter(&after, "refusal_guard_model_passes_waiting"), 0, "{after}");
        let r = ask(&reqwest::Client::new(), &url, "qwen-plus", "法国的首都是哪里？").await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        let text = v["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(text.starts_with(ANSWER), "{v}");
    })
    .await;
}
