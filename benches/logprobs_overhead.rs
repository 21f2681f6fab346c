//! What asking for logprobs and hiding them costs the gateway: streamed answers of 200
//! chunks from the mock provider, sent straight to the mock and through two gateways in
//! front of it, one with the guard's logprob option off and one asking for
//! `top_logprobs = 5` and stripping them, all in one run.
//!
//! Per target: latency to the last byte (p50, p99) and the gateway's CPU time per request
//! (the CPU of the gateway runtime's threads, read from `/proc/self/task`, so the mock and
//! the load generator are not counted; Linux only, `n/a` elsewhere). "Added" is the
//! gateway's latency minus the direct latency of the same upstream answer (with or
//! without logprobs). Closed loop: `RG_BENCH_CONCURRENCY` (default 8) requests in flight,
//! `RG_BENCH_REQUESTS` (default 400) per target, targets interleaved in rounds so that
//! drift in the machine's load hits all of them alike.
//!
//! Run: `cargo bench --bench logprobs_overhead`.
//!
//! Measured 2026-12-01 on the shared 2-core build machine (400 requests per target, 8 in
//! flight): gateway CPU per request 1.73 ms with the option off, 4.10 ms asked and hidden
//! (the upstream stream grows from 43 kB to 128 kB with 5 alternatives per token; what
//! the client receives is the same 43 kB). The latencies on loopback are dominated by
//! 40 ms Nagle / delayed-ACK stalls on small SSE writes (the direct stream of small
//! chunks took longer than the same stream with logprobs), so the CPU figure is the one
//! to read; the added p50 was about 40 ms in both cases.

use std::time::{Duration, Instant};

use futures::StreamExt;
use refusal_guard::gateway::config::GatewayConfig;
use refusal_guard::gateway::Gateway;
use refusal_guard::mock::{MockProvider, Script};

const CHUNKS: usize = 200;
const GATEWAY_THREAD: &str = "rg-bench-gw";

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time (user + system) of this process's threads named `name`, when readable.
fn threads_cpu(name: &str) -> Option<Duration> {
    let ticks = 100.0; // USER_HZ on every Linux this runs on
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).ok()?;
        // Fields after the parenthesised command: state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        total += fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    }
    Some(Duration::from_secs_f64(total as f64 / ticks))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Target {
    name: &'static str,
    url: String,
    logprobs: bool,
    /// Whether it goes through the gateway (its CPU is measured).
    gateway: bool,
    latencies: Vec<Duration>,
    cpu: Duration,
    bytes: usize,
    errors: usize,
}

async fn one(client: &reqwest::Client, url: &str, body: &str) -> Option<(Duration, usize)> {
    let started = Instant::now();
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let mut stream = response.bytes_stream();
    let mut bytes = 0;
    while let Some(chunk) = stream.next().await {
        bytes += chunk.ok()?.len();
    }
    Some((started.elapsed(), bytes))
}

async fn round(client: &reqwest::Client, target: &mut Target, requests: usize, concurrency: usize) {
    let mut body = serde_json::json!({
        "model": "qwen-plus",
        "messages": [{"role": "user", "content": "Tell me about the Yangtze."}],
        "stream": true,
    });
    if target.logprobs && !target.gateway {
        // Straight to the mock with the parameters the guard would add.
        body["logprobs"] = true.into();
        body["top_logprobs"] = 5.into();
    }
    let body = body.to_string();
    let cpu_before = threads_cpu(GATEWAY_THREAD);
    let results: Vec<_> = futures::stream::iter(0..requests)
        .map(|_| one(client, &target.url, &body))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    if let (Some(before), Some(after)) = (cpu_before, threads_cpu(GATEWAY_THREAD)) {
        target.cpu += after.saturating_sub(before);
    }
    for r in results {
        match r {
            Some((latency, bytes)) => {
                target.latencies.push(latency);
                target.bytes = bytes;
            }
            None => target.errors += 1,
        }
    }
}

fn gateway_config(mock: &MockProvider, ask: bool) -> GatewayConfig {
    GatewayConfig::parse(&format!(
        r#"
[server]
max_concurrency = 100000
[providers.mock]
base_url = "{}"
ask_logprobs = {ask}
ask_top_logprobs = 5
[[routes]]
model = "*"
primary = "mock"
"#,
        mock.base_url()
    ))
    .expect("bench config")
}

fn main() {
    let requests: usize = env("RG_BENCH_REQUESTS", 400);
    let concurrency: usize = env("RG_BENCH_CONCURRENCY", 8);
    let rounds = 4;

    // The mock, the gateways and the load generator each on a runtime of their own.
    let mock_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let gateway_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(GATEWAY_THREAD)
        .enable_all()
        .build()
        .unwrap();
    let pieces: Vec<String> = (0..CHUNKS).map(|i| format!(" word{i}")).collect();
    let mock = mock_rt.block_on(async {
        let mock = MockProvider::start().await;
        mock.set_default(Script::chunks(pieces).with_logprobs(-0.1));
        mock.set_recording(false);
        mock
    });
    let serve = |ask: bool| {
        let config = gateway_config(&mock, ask);
        gateway_rt.block_on(async move {
            let gateway = Gateway::from_config(&config).expect("gateway");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/v1/chat/completions", listener.local_addr().unwrap());
            tokio::spawn(gateway.serve(listener, std::future::pending()));
            url
        })
    };
    let direct = format!("{}/chat/completions", mock.base_url());
    let target = |name, url: &str, logprobs, gateway| Target {
        name,
        url: url.to_string(),
        logprobs,
        gateway,
        latencies: Vec::new(),
        cpu: Duration::ZERO,
        bytes: 0,
        errors: 0,
    };
    let mut targets = vec![
        target("direct", &direct, false, false),
        target("direct+logprobs", &direct, true, false),
        target("gateway, off", &serve(false), false, true),
        target("gateway, asked+hidden", &serve(true), true, true),
    ];

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    client_rt.block_on(async {
        for t in &mut targets {
            round(&client, t, 50, concurrency).await; // warm pools and caches
            t.latencies.clear();
            t.cpu = Duration::ZERO;
        }
        for _ in 0..rounds {
            for t in &mut targets {
                round(&client, t, requests / rounds, concurrency).await;
            }
        }
    });

    println!(
        "logprobs asked and hidden vs off: streams of {CHUNKS} chunks, {requests} requests per target, \
         {concurrency} in flight"
    );
    println!(
        "{:>22} {:>9} {:>9} {:>12} {:>14} {:>7}",
        "target", "p50 ms", "p99 ms", "bytes/resp", "gw CPU/req ms", "errors"
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut p50 = Vec::new();
    for t in &mut targets {
        t.latencies.sort();
        let cpu = if t.gateway && threads_cpu(GATEWAY_THREAD).is_some() && !t.latencies.is_empty() {
            format!("{:.3}", ms(t.cpu) / t.latencies.len() as f64)
        } else {
            "n/a".into()
        };
        let (a, b) = (percentile(&t.latencies, 0.5), percentile(&t.latencies, 0.99));
        p50.push(a);
        println!(
            "{:>22} {:>9.3} {:>9.3} {:>12} {:>14} {:>7}",
            t.name,
            ms(a),
            ms(b),
            t.bytes,
            cpu,
            t.errors
        );
    }
    println!(
        "added p50: off {:.3} ms (vs direct), asked+hidden {:.3} ms (vs direct+logprobs)",
        ms(p50[2].saturating_sub(p50[0])),
        ms(p50[3].saturating_sub(p50[1]))
    );
}
