//! Load on loopback: many concurrent streaming clients through the gateway, with the
//! gateway's memory sampled as it goes.
//!
//! The gateway runs as its own process (the `refusal-guard serve` binary of this build),
//! so its resident memory (`VmRSS` of `/proc/PID/status`) is the gateway's alone, not the
//! clients' or the mock's, which run here. Three things are measured:
//! 1. **Steady load**: `RG_LOAD_CLIENTS` (default 1000) clients, each streaming one
//!    answer after another for `RG_LOAD_SECS` (default 20) seconds, through the full stack
//!    (guard with its hold-back window, re-route layer, deadlines). RSS is printed every
//!    second; time to the first byte and to the end of each stream are reported as p50,
//!    p99 and max. Every stream is checked: status 200, the whole answer, `[DONE]`.
//! 2. **Leaks**: the load runs `RG_LOAD_RUNS` (default 3) times against the same gateway
//!    process; RSS after each run (once the streams are over) should not grow from run to
//!    run beyond allocator noise.
//! 3. **The hold-back window's memory**: `RG_LOAD_HOLD` (default 1000) streams are held
//!    open *inside* the window (the mock pauses after 12 content chunks; the window is 16
//!    tokens and 60 s), and the RSS delta over the idle gateway divided by the stream
//!    count is the cost of one stream in the window. The same is measured for streams
//!    paused *after* the window was released (the mock pauses after 24 chunks), in a fresh
//!    gateway process; the difference is what holding chunks back costs.
//!
//! Reading the figures: RSS after a run stays well above the idle figure because the
//! gateway keeps its connections to the provider open for reuse (one per client, idle for
//! up to 90 s). glibc's per-thread arenas keep freed memory too, so RSS after a run creeps
//! up irregularly with the default allocator settings; to tell that from a leak, rerun
//! with `MALLOC_ARENA_MAX=1` (inherited by the gateway process): RSS then plateaus and
//! also falls between runs, which live leaked objects would not allow. On a 2-core
//! machine that also runs the clients and the mock, latencies are bound by the CPU, not
//! the gateway; the first byte waits for the hold-back window (16 tokens, 20 ms apart).
//!
//! Run it with `scripts/load-test.sh` (raises `ulimit -n`, which 1000 clients need), or
//! `cargo bench --bench load` with the environment above.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use refusal_guard::mock::{split_pieces, Gate, MockProvider, Script};

/// The streamed answer: 60 pieces of words and CJK characters.
const ANSWER: &str = "The Great Wall of China is not visible to the naked eye from low Earth orbit, \
despite the popular claim. 长城在太空中肉眼看不见。 Astronauts have photographed it with long \
lenses, but the wall is narrow and close in colour to the land around it, so it blends in.";

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A gateway in its own process; killed when dropped.
struct GatewayProcess {
    child: Child,
    url: String,
    config: PathBuf,
}

impl GatewayProcess {
    fn start(name: &str, config: &str) -> Self {
        let path = std::env::temp_dir().join(format!("rg-load-{}-{name}.toml", std::process::id()));
        std::fs::write(&path, config).expect("write the gateway config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_refusal-guard"))
            .args(["serve", "--config"])
            .arg(&path)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start refusal-guard serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("the gateway prints its address");
        let url = line
            .trim()
            .strip_prefix("refusal-guard listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        GatewayProcess {
            child,
            url: format!("{url}/v1/chat/completions"),
            config: path,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}

fn config(mock: &str, window_tokens: usize, window_ms: u64) -> String {
    format!(
        r#"
[server]
max_concurrency = 8192
[guard]
window_tokens = {window_tokens}
window_ms = {window_ms}
[providers.mock]
base_url = "{mock}"
max_retries = 0
first_token_timeout_ms = 120000
[[routes]]
model = "*"
primary = "mock"
"#
    )
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn body() -> String {
    serde_json::json!({
        "model": "qwen-plus",
        "stream": true,
        "messages": [{"role": "user", "content": "Is the Great Wall visible from space?"}],
    })
    .to_string()
}

/// The content of an SSE body, and whether it ended with `[DONE]`.
fn content_of(raw: &str) -> (String, bool) {
    let mut text = String::new();
    let mut done = false;
    for data in raw.split("\n\n").filter_map(|e| e.strip_prefix("data: ")) {
        if data == "[DONE]" {
            done = true;
        } else if let Ok(v) = serde_json::from_str::<serde_json::Value>(data) {
            if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
                text.push_str(t);
            }
        }
    }
    (text, done)
}

struct Sample {
    first_byte: Duration,
    total: Duration,
}

/// One streamed request: its timings, or what went wrong.
async fn one_stream(client: &reqwest::Client, url: &str, body: &str) -> Result<Sample, String> {
    let start = Instant::now();
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("send: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("status {}", response.status()));
    }
    let mut bytes = response.bytes_stream();
    let mut raw = Vec::new();
    let mut first_byte = None;
    while let Some(chunk) = bytes.next().await {
        let chunk = chunk.map_err(|e| format!("body: {e}"))?;
        first_byte.get_or_insert_with(|| start.elapsed());
        raw.extend_from_slice(&chunk);
    }
    let (text, done) = content_of(&String::from_utf8_lossy(&raw));
    if text != ANSWER || !done {
        return Err(format!("wrong answer (done: {done}): {text:?}"));
    }
    Ok(Sample {
        first_byte: first_byte.unwrap_or_default(),
        total: start.elapsed(),
    })
}

/// `clients` clients streaming one answer after another for `secs` seconds.
async fn steady(run: usize, gateway: &GatewayProcess, clients: usize, secs: u64) -> u64 {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let completed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let body = Arc::new(body());
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (client, url, body, completed) = (
            client.clone(),
            gateway.url.clone(),
            body.clone(),
            completed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut errors = Vec::new();
            while Instant::now() < deadline {
                match one_stream(&client, &url, &body).await {
                    Ok(s) => {
                        samples.push(s);
                        completed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => errors.push(e),
                }
            }
            (samples, errors)
        }));
    }
    let started = Instant::now();
    let sampler = {
        let completed = completed.clone();
        let pid = gateway.pid();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find_map(|l| l.strip_prefix("VmRSS:"))
                            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                    })
                    .unwrap_or(0);
                println!(
                    "  run {run}  t={:>3}s  gateway RSS {:>7.1} MiB  streams done {:>7}",
                    started.elapsed().as_secs(),
                    mib(rss),
                    completed.load(Ordering::Relaxed)
                );
            }
        })
    };
    let mut first = Vec::new();
    let mut total = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    for t in tasks {
        let (samples, errs) = t.await.expect("client task");
        for s in samples {
            first.push(s.first_byte);
            total.push(s.total);
        }
        errors.extend(errs);
    }
    sampler.abort();
    let wall = started.elapsed();
    first.sort();
    total.sort();
    println!(
        "run {run}: {} streams in {:.1}s ({:.0}/s) from {clients} clients, {} errors",
        total.len(),
        wall.as_secs_f64(),
        total.len() as f64 / wall.as_secs_f64(),
        errors.len()
    );
    for e in errors.iter().take(5) {
        println!("  error: {e}");
    }
    println!(
        "  first byte: p50 {:>6.1} ms  p99 {:>6.1} ms  max {:>6.1} ms",
        percentile(&first, 0.5).as_secs_f64() * 1e3,
        percentile(&first, 0.99).as_secs_f64() * 1e3,
        percentile(&first, 1.0).as_secs_f64() * 1e3
    );
    println!(
        "  whole stream: p50 {:>6.1} ms  p99 {:>6.1} ms  max {:>6.1} ms",
        percentile(&total, 0.5).as_secs_f64() * 1e3,
        percentile(&total, 0.99).as_secs_f64() * 1e3,
        percentile(&total, 1.0).as_secs_f64() * 1e3
    );
    drop(client);
    // Let the connections close and the gateway settle before reading its memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = gateway.rss_kib();
    println!("  gateway RSS after run {run}: {:.1} MiB", mib(rss));
    rss
}

/// RSS per stream with `n` streams paused after `pause_after` content chunks.
async fn held(name: &str, mock: &MockProvider, n: usize, pause_after: usize) -> f64 {
    let gateway = GatewayProcess::start(name, &config(&mock.base_url(), 16, 60_000));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(n)
        .build()
        .unwrap();
    // Warm up (allocator arenas, connection pool) with a few whole answers.
    let body = body();
    let warm = (0..50).map(|_| one_stream(&client, &gateway.url, &body));
    for r in futures::future::join_all(warm).await {
        r.expect("warm-up");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = gateway.rss_kib();
    let gate = Gate::new();
    mock.set_recording(true);
    let before = mock.requests().len();
    mock.set_default(Script::answer(ANSWER.repeat(2)).pause_after(pause_after, &gate));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (client, url, body) = (client.clone(), gateway.url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            match response {
                Ok(r) => r.bytes().await.map(|b| b.len()).unwrap_or(0),
                Err(_) => 0,
            }
        }));
    }
    // Wait until every stream has sent its chunks and is paused.
    let waited = Instant::now();
    loop {
        let responses = mock.responses();
        let paused = responses[before.min(responses.len())..]
            .iter()
            .filter(|r| r.content_chunks_sent >= pause_after)
            .count();
        if paused >= n || waited.elapsed() > Duration::from_secs(60) {
            println!("  {paused} of {n} streams paused after {pause_after} chunks");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let loaded = gateway.rss_kib();
    gate.open();
    for t in tasks {
        let _ = t.await;
    }
    mock.set_recording(false);
    mock.set_default(
        Script::answer(ANSWER).delay_between_chunks(Duration::from_millis(env("RG_LOAD_CHUNK_MS", 20))),
    );
    let per_stream = (loaded.saturating_sub(base)) as f64 * 1024.0 / n as f64;
    println!(
        "  {name}: idle {:.1} MiB, with {n} streams {:.1} MiB: {:.1} KiB per stream",
        mib(base),
        mib(loaded),
        per_stream / 1024.0
    );
    per_stream
}

fn main() {
    let clients: usize = env("RG_LOAD_CLIENTS", 1000);
    let secs: u64 = env("RG_LOAD_SECS", 20);
    let runs: usize = env("RG_LOAD_RUNS", 3);
    let hold: usize = env("RG_LOAD_HOLD", 1000);
    let chunk_ms: u64 = env("RG_LOAD_CHUNK_MS", 20);
    if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
        if let Some(line) = limits.lines().find(|l| l.starts_with("Max open files")) {
            let soft: u64 = line
                .split_whitespace()
                .nth(3)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if soft < (clients as u64) * 3 {
                eprintln!(
                    "warning: open-file limit {soft} is low for {clients} clients; run `ulimit -n 8192` \
                     first (scripts/load-test.sh does)"
                );
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mock = MockProvider::start().await;
        mock.set_recording(false);
        mock.set_default(Script::answer(ANSWER).delay_between_chunks(Duration::from_millis(chunk_ms)));
        println!(
            "load: {clients} streaming clients × {secs}s × {runs} runs; answer of {} chunks, {chunk_ms} ms apart",
            split_pieces(ANSWER).len()
        );
        let gateway = GatewayProcess::start("steady", &config(&mock.base_url(), 16, 1000));
        println!("gateway pid {}, idle RSS {:.1} MiB", gateway.pid(), mib(gateway.rss_kib()));
        let mut after = Vec::new();
        for run in 1..=runs {
            after.push(steady(run, &gateway, clients, secs).await);
        }
        let growth: Vec<String> = after
            .windows(2)
            .map(|w| format!("{:+.1} MiB", (w[1] as f64 - w[0] as f64) / 1024.0))
            .collect();
        println!(
            "RSS after each run: {}; growth run to run: {}",
            after.iter().map(|k| format!("{:.1} MiB", mib(*k))).collect::<Vec<_>>().join(", "),
            if growth.is_empty() { "n/a".to_string() } else { growth.join(", ") }
        );
        drop(gateway);

        if hold > 0 {
            println!("hold-back window memory, {hold} streams:");
            let inside = held("inside the window", &mock, hold, 12).await;
            let outside = held("released, open", &mock, hold, 24).await;
            println!(
                "window cost: {:.1} KiB per stream held in the window vs {:.1} KiB per open released stream \
                 ({:+.1} KiB for holding 12 chunks back)",
                inside / 1024.0,
                outside / 1024.0,
                (inside - outside) / 1024.0
            );
        }
    });
}
