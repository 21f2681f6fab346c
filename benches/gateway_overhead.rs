//! Gateway overhead on loopback: requests at fixed rates sent straight to a mock provider
//! and through `refusal-guard`'s gateway in front of the same mock (with the verdict log
//! off, and on: `rg+verdict-log`, writing to a temporary folder), and optionally through
//! another proxy (LiteLLM) in front of it; the figure is the latency each adds.
//!
//! Open loop: request i is due at `start + i / rate` whatever happened to the others,
//! and its latency counts from when it was due, so a proxy that falls behind shows it
//! (no coordinated omission). Environment:
//! - `RG_BENCH_RATES` (default `500,1000,2000`) requests per second;
//! - `RG_BENCH_SECS` (default 5) seconds per rate and target, split into
//!   `RG_BENCH_ROUNDS` (default 5) rounds: each round runs every target in turn (the order
//!   rotates), and a target's figures pool its rounds, so that a busy second of a shared
//!   machine lands on every target rather than on one;
//! - `RG_BENCH_STREAM=1` to send streamed requests;
//! - `RG_BENCH_TIERS` (e.g. `none`, `e5`, `e5:prompts`; comma-separated, one list for every
//!   gateway config) the guard's tiers; unset, the best installed tier, as `serve` picks it.
//!   This bench's answer is a pattern-clean short reply: with the e5 tier, e5's short-reply
//!   head (an encoder pass) reads such a reply only where the n-gram head is unsure of it
//!   (the short-reply cascade, `judge::Models::short_asked_from`), and every Chinese,
//!   Japanese or Korean one; `e5:wide` reads every one, which is what the cascade saves;
//! - `RG_BENCH_ANSWER` the mock's answer (default: a 16-word English reply about Paris),
//!   each ending with the request's number (` (#17)`, [`Script::numbered`]) so that no two
//!   are the same text: the e5 tier keeps the encoder's vectors of recent answers;
//! - `RG_BENCH_OTHER=name=URL` another proxy's chat-completions base URL, already running
//!   in front of this bench's mock (the mock's address is fixed with `RG_BENCH_MOCK_PORT`,
//!   default 18080); `scripts/bench-gateway.sh` starts LiteLLM that way;
//! - `RG_BENCH_BASELINE_BIN=PATH` another build of `refusal-guard` (say, a copy of the
//!   binary before a change), served with logging off as `baseline-bin` beside this
//!   build's `rg-bin-nolog`, so the two compare in one run. (That is how mimalloc as the
//!   binary's allocator was tried and dropped: 0.227 CPU ms per request either way.)
//!
//! The gateway runs in this process (`refusal-guard`, no subscriber), and twice as the
//! real `refusal-guard serve` binary: `rg-bin-nolog` with `RUST_LOG=off`, and
//! `rg-bin-jsonlog` writing JSON lines (the per-request event at `info`) to a file, so
//! the cost of logging is the difference between those two. For these two the table also
//! gives the serving process's CPU time per request (user + system, from `/proc`): unlike
//! a latency percentile on a loaded 2-core machine, it hardly moves from run to run. Below
//! the table, each binary target's model passes run and shed at that rate (read from its
//! `/metrics`; `classify::passes`): how many verdicts a full queue made without the encoder.
//!
//! Run: `cargo bench --bench gateway_overhead` (or the script for the comparison).

mod support;

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use refusal_guard::gateway::config::GatewayConfig;
use refusal_guard::gateway::Gateway;
use refusal_guard::mock::{MockProvider, Script};

const ANSWER: &str =
    "Paris is the capital of France. It sits on the Seine and has about two million inhabitants.";

#[derive(Default)]
struct Run {
    latencies: Vec<Duration>,
    errors: usize,
    wall: Duration,
}

impl Run {
    /// Pools another round's requests into this one.
    fn absorb(&mut self, other: Run) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        self.wall += other.wall;
    }
}

/// User plus system CPU time of a process so far, in clock ticks (`/proc/PID/stat`, fields
/// 14 and 15); `None` where there is no procfs.
fn cpu_ticks_of(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its `)` are fixed.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Clock ticks per second of `/proc` CPU times (`getconf CLK_TCK`; 100 on Linux).
fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn load(client: &reqwest::Client, url: &str, rate: u32, secs: u64, stream: bool) -> Run {
    let body = serde_json::json!({
        "model": "qwen-plus",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "stream": stream,
    })
    .to_string();
    let total = rate as u64 * secs;
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        let client = client.clone();
        let url = url.to_string();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(due).await;
            let response = client
                .post(&url)
                .header("content-type", "application/json")
                .header("authorization", "Bearer sk-bench")
                .body(body)
                .send()
                .await;
            let ok = match response {
                Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                _ => false,
            };
            (ok, due.elapsed())
        }));
    }
    let wall = Instant::now();
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut errors = 0;
    for t in tasks {
        let (ok, latency) = t.await.expect("load task");
        if ok {
            latencies.push(latency);
        } else {
            errors += 1;
        }
    }
    Run {
        latencies,
        errors,
        wall: wall.elapsed(),
    }
}

/// `refusal-guard serve` (the binary `bin`) in front of the mock, logging JSON to `log` or
/// not at all, its config file named after the target `name`; the child and its
/// chat-completions URL.
fn spawn_serve(
    name: &str,
    bin: &std::path::Path,
    mock_url: &str,
    log: Option<&std::path::Path>,
) -> (Child, String) {
    let dir = std::env::temp_dir();
    let config = dir.join(format!("refusal-guard-bench-{}-{name}.toml", std::process::id()));
    let logging = log.map_or(String::new(), |p| {
        format!("[logging]\nformat = \"json\"\nfile = \"{}\"\n", p.display())
    });
    let guard = guard_section();
    std::fs::write(
        &config,
        format!(
            "[server]\nmax_concurrency = 100000\n{logging}{guard}[providers.mock]\nbase_url = \"{mock_url}\"\n\
             [[routes]]\nmodel = \"*\"\nprimary = \"mock\"\n"
        ),
    )
    .expect("bench config");
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("RUST_LOG", if log.is_some() { "info" } else { "off" })
        .stdout(Stdio::piped())
        .spawn()
        .expect("refusal-guard serve starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("refusal-guard listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (child, format!("{base}/v1/chat/completions"))
}

/// The `[guard]` section `RG_BENCH_TIERS` asks for, or nothing (the best installed tier).
fn guard_section() -> String {
    match std::env::var("RG_BENCH_TIERS") {
        Ok(tiers) if !tiers.trim().is_empty() => {
            let list: Vec<String> = tiers.split(',').map(|t| format!("{:?}", t.trim())).collect();
            format!("[guard]\ntiers = [{}]\n", list.join(", "))
        }
        _ => String::new(),
    }
}

/// The model passes a gateway has run and shed (`refusal_guard_model_passes_total`,
/// `refusal_guard_model_passes_shed_total` on its `/metrics`), from its chat-completions URL;
/// `None` where it serves no such counters.
async fn passes_of(client: &reqwest::Client, chat_url: &str) -> Option<(u64, u64)> {
    let base = chat_url.strip_suffix("/v1/chat/completions")?;
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let count = |name: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse::<u64>()
                .ok()
        })
    };
    Some((
        count("refusal_guard_model_passes_total")?,
        count("refusal_guard_model_passes_shed_total")?,
    ))
}

fn main() {
    let rates: Vec<u32> = std::env::var("RG_BENCH_RATES")
        .unwrap_or_else(|_| "500,1000,2000".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let secs: u64 = support::env("RG_BENCH_SECS", 5);
    let stream = support::env("RG_BENCH_STREAM", 0u8) == 1;
    let mock_port: u16 = support::env("RG_BENCH_MOCK_PORT", 18080);
    let other = std::env::var("RG_BENCH_OTHER").ok();
    let answer = std::env::var("RG_BENCH_ANSWER").unwrap_or_else(|_| ANSWER.to_string());

    // The mock and the gateway each get a runtime of their own, as separate servers
    // would; the load generator runs on a third.
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let log_dir = std::env::temp_dir().join(format!("rg-bench-verdicts-{}", std::process::id()));
    let (mock, gateway_url, logged_url) = servers.block_on(async {
        let mock = MockProvider::start_on(([127, 0, 0, 1], mock_port).into())
            .await
            .expect("mock port free");
        // Numbered: each answer a distinct text, as in traffic; the e5 tier keeps the vectors
        // of recent answers, and one text answered again and again would time that memory.
        mock.set_default(Script::answer(&answer).numbered());
        mock.set_recording(false);
        let base = format!(
            r#"
[server]
max_concurrency = 100000
{}[providers.mock]
base_url = "{}"
[[routes]]
model = "*"
primary = "mock"
"#,
            guard_section(),
            mock.base_url()
        );
        let mut urls = Vec::new();
        for extra in [
            String::new(),
            format!("[verdict_log]\ndir = {:?}\n", log_dir.display().to_string()),
        ] {
            let config = GatewayConfig::parse(&format!("{extra}{base}")).expect("bench config");
            let gateway = Gateway::from_config(&config).expect("gateway");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            urls.push(format!(
                "http://{}/v1/chat/completions",
                listener.local_addr().unwrap()
            ));
            tokio::spawn(gateway.serve(listener, std::future::pending()));
        }
        let logged = urls.pop().expect("two gateways");
        (mock, urls.pop().expect("two gateways"), logged)
    });
    let direct_url = format!("{}/chat/completions", mock.base_url());
    let log_file = std::env::temp_dir().join(format!("refusal-guard-bench-{}.log", std::process::id()));
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_refusal-guard"));
    let (mut nolog, nolog_url) = spawn_serve("rg-bin-nolog", bin, &mock.base_url(), None);
    let (mut jsonlog, jsonlog_url) = spawn_serve("rg-bin-jsonlog", bin, &mock.base_url(), Some(&log_file));
    let mut baseline = std::env::var_os("RG_BENCH_BASELINE_BIN")
        .map(|b| spawn_serve("baseline-bin", std::path::Path::new(&b), &mock.base_url(), None));

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .build()
        .unwrap();
    let mut targets = vec![
        ("direct".to_string(), direct_url),
        ("refusal-guard".to_string(), gateway_url),
        ("rg+verdict-log".to_string(), logged_url),
        ("rg-bin-nolog".to_string(), nolog_url),
        ("rg-bin-jsonlog".to_string(), jsonlog_url),
    ];
    if let Some((_, url)) = &baseline {
        targets.push(("baseline-bin".to_string(), url.clone()));
    }
    if let Some(o) = other {
        let (name, url) = o.split_once('=').expect("RG_BENCH_OTHER=name=URL");
        targets.push((
            name.to_string(),
            format!("{}/chat/completions", url.trim_end_matches('/')),
        ));
    }
    let rounds: u64 = support::env("RG_BENCH_ROUNDS", 5u64).max(1);
    println!(
        "gateway overhead, loopback, {} requests, {secs} s per rate and target in {rounds} rounds",
        if stream { "streamed" } else { "complete" },
    );
    println!(
        "{:>6} {:>14} {:>9} {:>9} {:>9} {:>9} {:>8} {:>10} {:>12}",
        "rate", "target", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors", "achieved", "cpu ms/req"
    );
    let round_secs = secs.div_ceil(rounds).max(1);
    // The serving processes of the binary targets, for their CPU time.
    let mut pids: Vec<(String, u32)> = vec![
        ("rg-bin-nolog".to_string(), nolog.id()),
        ("rg-bin-jsonlog".to_string(), jsonlog.id()),
    ];
    if let Some((child, _)) = &baseline {
        pids.push(("baseline-bin".to_string(), child.id()));
    }
    for rate in rates {
        client_rt.block_on(async {
            // Warm the connection pools so that connects are not measured.
            for (_, url) in &targets {
                load(&client, url, 200, 1, stream).await;
            }
        });
        // Every target runs in each round, in a rotating order, so that a busy moment of
        // this shared machine falls on all of them alike rather than on one.
        let mut runs: Vec<Run> = targets.iter().map(|_| Run::default()).collect();
        let mut cpu_ticks = vec![0u64; targets.len()];
        // Model passes run and shed by the binary targets (`/metrics`; `None` for a build
        // without the counters).
        let mut passes: Vec<Option<(u64, u64)>> = vec![Some((0, 0)); targets.len()];
        for round in 0..rounds {
            for k in 0..targets.len() {
                let i = (k + round as usize) % targets.len();
                let (name, url) = &targets[i];
                let pid = pids.iter().find(|(n, _)| n == name).map(|(_, p)| *p);
                let before = pid.and_then(cpu_ticks_of);
                let passes_before = client_rt.block_on(passes_of(&client, url));
                let run = client_rt.block_on(load(&client, url, rate, round_secs, stream));
                if let (Some(b), Some(a)) = (before, pid.and_then(cpu_ticks_of)) {
                    cpu_ticks[i] += a.saturating_sub(b);
                }
                let passes_after = client_rt.block_on(passes_of(&client, url));
                passes[i] = match (passes[i], passes_before, passes_after) {
                    (Some((r, s)), Some((r0, s0)), Some((r1, s1))) => Some((r + r1 - r0, s + s1 - s0)),
                    _ => None,
                };
                runs[i].absorb(run);
            }
        }
        let mut p = Vec::new();
        for (i, (name, _)) in targets.iter().enumerate() {
            let run = &mut runs[i];
            run.latencies.sort();
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            let (p50, p90, p99) = (
                percentile(&run.latencies, 0.5),
                percentile(&run.latencies, 0.9),
                percentile(&run.latencies, 0.99),
            );
            let cpu = if pids.iter().any(|(n, _)| n == name) {
                format!(
                    "{:.3}",
                    cpu_ticks[i] as f64 * 1e3 / ticks_per_second() / run.latencies.len().max(1) as f64
                )
            } else {
                "-".into()
            };
            println!(
                "{rate:>6} {name:>14} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>8} {:>9.0}/s {cpu:>12}",
                ms(p50),
                ms(p90),
                ms(p99),
                ms(run.latencies.last().copied().unwrap_or_default()),
                run.errors,
                run.latencies.len() as f64 / run.wall.as_secs_f64().max((round_secs * rounds) as f64),
            );
            p.push((name.clone(), p50, p99));
        }
        for (i, (name, _)) in targets.iter().enumerate() {
            if let (true, Some((run, shed))) = (pids.iter().any(|(n, _)| n == name), passes[i]) {
                println!(
                    "{rate:>6} {name:>14} model passes run {run}, shed {shed} ({:.1}% of those asked for)",
                    shed as f64 * 100.0 / (run + shed).max(1) as f64
                );
            }
        }
        let (_, d50, d99) = p[0].clone();
        for (name, p50, p99) in &p[1..] {
            println!(
                "{rate:>6} {:>14} added p50 {:.3} ms, added p99 {:.3} ms",
                name,
                (p50.as_secs_f64() - d50.as_secs_f64()) * 1e3,
                (p99.as_secs_f64() - d99.as_secs_f64()) * 1e3,
            );
        }
    }
    drop(mock);
    let _ = std::fs::remove_dir_all(&log_dir);
    if let Some((child, _)) = &mut baseline {
        let _ = child.kill();
        let _ = child.wait();
    }
    for child in [&mut nolog, &mut jsonlog] {
        // SIGTERM, so the logging child flushes its last lines before it exits.
        let _ = Command::new("kill").arg(child.id().to_string()).status();
        let _ = child.wait();
    }
    let lines = std::fs::read_to_string(&log_file).map_or(0, |t| t.lines().count());
    println!(
        "rg-bin-jsonlog wrote {lines} JSON lines to {}",
        log_file.display()
    );
    let _ = std::fs::remove_file(&log_file);
}
