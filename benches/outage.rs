//! What an outage of the primary costs callers, with the provider cooldown off and on.
//!
//! A gateway in this process routes to a primary and a fallback, both mock providers on
//! loopback; the fallback always answers. The primary is down in one of two ways: it
//! answers every request with a 503 at once, or it stalls (headers never come, so each
//! request waits out the first-token deadline, 200 ms here). Each case sends the same
//! requests (`RG_BENCH_N`, default 400; `RG_BENCH_CONCURRENCY` at once, default 4) with
//! `cooldown_after_failures = 0` (off) and with the default 5, and prints per request the
//! latency (mean, p50, p99), the primary's calls, and the ratio of mean latencies.
//!
//! Run: `cargo bench --bench outage`. Figures from a run are in the session notes; they
//! depend on the deadline by construction (a stalled primary costs each request about
//! the deadline without a cooldown), and the bench shows how far the cooldown takes that.

use std::time::{Duration, Instant};

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::Table;
use futures::StreamExt;
use refusal_guard::gateway::config::GatewayConfig;
use refusal_guard::gateway::Gateway;
use refusal_guard::mock::{MockProvider, Script};

/// A typical answer: longer than a short reply (which the e5 tier, where installed, reads
/// with its short-reply head on every answer, a cost of its own that would drown the
/// outage's here).
const ANSWER: &str = "Paris is the capital of France. It sits on the Seine in the north of the \
country and has about two million inhabitants, more than twelve million with its suburbs. \
It has been the seat of the French government for most of the last thousand years, and it \
is the country's centre of finance, culture and transport: most of France's motorways and \
high-speed railways start from it, and its two airports are among the busiest in Europe.";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Outcome {
    latencies: Vec<Duration>,
    errors: usize,
    primary_calls: usize,
}

/// Serves a gateway over the two mocks and sends `n` requests, `concurrency` at a time.
async fn run(
    primary: &MockProvider,
    fallback: &MockProvider,
    cooldown: u32,
    n: usize,
    concurrency: usize,
) -> Outcome {
    let before = primary.requests().len();
    let config = GatewayConfig::parse(&format!(
        "[guard]\nwindow_tokens = 4\n\
         [providers.primary]\nbase_url = \"{}\"\nmax_retries = 0\nfirst_token_timeout_ms = 200\n\
         cooldown_after_failures = {cooldown}\n\
         [providers.fallback]\nbase_url = \"{}\"\nmax_retries = 0\n\
         [[routes]]\nmodel = \"*\"\nprimary = \"primary\"\nfallbacks = [\"fallback\"]\n",
        primary.base_url(),
        fallback.base_url()
    ))
    .expect("bench config");
    let gateway = Gateway::from_config(&config).expect("gateway");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/chat/completions", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gateway.serve(listener, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let body = serde_json::json!({"model": "qwen-plus",
        "messages": [{"role": "user", "content": "What is the capital of France?"}]});
    let results: Vec<(Duration, bool)> = futures::stream::iter(0..n)
        .map(|_| {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            async move {
                let started = Instant::now();
                let ok = match client.post(&url).json(&body).send().await {
                    Ok(r) => r.status().is_success() && r.text().await.is_ok_and(|t| t.contains("Paris")),
                    Err(_) => false,
                };
                (started.elapsed(), ok)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let _ = stop.send(());
    Outcome {
        latencies: results.iter().map(|r| r.0).collect(),
        errors: results.iter().filter(|r| !r.1).count(),
        primary_calls: primary.requests().len() - before,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = env_usize("RG_BENCH_N", 400);
    let concurrency = env_usize("RG_BENCH_CONCURRENCY", 4).max(1);
    let fallback = MockProvider::start().await;
    fallback.set_default(Script::answer(ANSWER));
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header([
        "primary",
        "cooldown",
        "requests",
        "failed",
        "mean ms",
        "p50 ms",
        "p99 ms",
        "primary calls",
        "mean, on / off",
    ]);
    let cases = [
        ("503 at once", Script::status(503, "")),
        (
            "stalls (200 ms deadline)",
            Script::answer(ANSWER).delay_first_byte(Duration::from_secs(30)),
        ),
    ];
    for (what, script) in cases {
        let primary = MockProvider::start().await;
        primary.set_default(script);
        let mut off_mean = None;
        for (label, after) in [("off", 0), ("on (5, 10 s)", 5)] {
            let mut o = run(&primary, &fallback, after, n, concurrency).await;
            o.latencies.sort();
            let mean = o.latencies.iter().sum::<Duration>() / o.latencies.len() as u32;
            let ratio = match off_mean {
                None => {
                    off_mean = Some(mean);
                    "-".to_string()
                }
                Some(off) => format!("{:.3}", mean.as_secs_f64() / off.as_secs_f64()),
            };
            table.add_row([
                what.to_string(),
                label.to_string(),
                n.to_string(),
                o.errors.to_string(),
                format!("{:.2}", ms(mean)),
                format!("{:.2}", ms(percentile(&o.latencies, 0.5))),
                format!("{:.2}", ms(percentile(&o.latencies, 0.99))),
                o.primary_calls.to_string(),
                ratio,
            ]);
        }
    }
    println!("outage of the primary, {n} requests, {concurrency} at a time, fallback answering:\n{table}");
}
