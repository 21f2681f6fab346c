//! The per-request log event of the real `refusal-guard serve` binary, read back from
//! its JSON log file: one `refusal_guard::request` line per request with the id, route,
//! model, providers tried, verdict and confidence, attempts, re-route reason, latencies,
//! tokens and cost; and nowhere in the file a key, a prompt or an answer.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use refusal_guard::mock::{MockProvider, Script};
use serde_json::{json, Value};

const PRIMARY_KEY: &str = "sk-logtest-primary-Zq81Lm4";
const FALLBACK_KEY: &str = "sk-logtest-fallback-Wr73Kp2";
const PROMPT: &str = "PROMPT-MARKER-7f3a: what happened in Beijing in June 1989?";
const REFUSAL: &str = "I'm sorry, but I can't discuss this topic.";
const ANSWER: &str = "ANSWER-MARKER-91c2 In June 1989 the army cleared Tiananmen Square.";

/// The gateway binary, killed when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_serve(config: &Path) -> (Serve, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_refusal-guard"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--config",
        ])
        .arg(config)
        .env_remove("RUST_LOG")
        .env("RG_LOGTEST_PRIMARY_KEY", PRIMARY_KEY)
        .env("RG_LOGTEST_FALLBACK_KEY", FALLBACK_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the binary starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("refusal-guard listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    (Serve(child), url)
}

/// Writes a configuration (logging to `gateway.log` in `dir`, the embedded default's verdict
/// as `common::gateway_config` gives the in-process gateways, pre-routing off so that
/// every scripted request reaches its primary first, then `rest`) and starts the binary
/// on it: the process, its base URL and the log file.
fn serve_logged(dir: &Path, rest: &str) -> (Serve, String, PathBuf) {
    let log = dir.join("gateway.log");
    let config = dir.join("gateway.toml");
    let text = format!(
        "[logging]\nfile = {:?}\n\n[guard]\ntiers = [\"none\"]\n\n[preroute]\nenabled = false\n{rest}",
        log.display().to_string()
    );
    std::fs::write(&config, text).unwrap();
    let (serve, base) = spawn_serve(&config);
    (serve, base, log)
}

/// The request events in the log file, once `n` of them are there.
async fn request_events(log: &Path, n: usize) -> (String, Vec<Value>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let events: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .filter(|v| v["target"] == "refusal_guard::request")
            .collect();
        if events.len() >= n || Instant::now() > deadline {
            return (text, events);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_leaves_one_json_event_with_its_fields_and_no_secrets() {
    let primary = MockProvider::start().await;
    let fallback = MockProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (_serve, base, log) = serve_logged(
        dir.path(),
        &format!(
            r#"
[providers.primary]
base_url = "{p}"
api_key_env = "RG_LOGTEST_PRIMARY_KEY"
max_retries = 0
prices = {{ input = 0.4, output = 1.2 }}

[providers.fallback]
base_url = "{f}"
api_key_env = "RG_LOGTEST_FALLBACK_KEY"
max_retries = 0
prices = {{ input = 0.15, output = 0.6 }}

[[routes]]
model = "*"
primary = "primary"
fallbacks = ["fallback"]
"#,
            p = primary.base_url(),
            f = fallback.base_url()
        ),
    );
    let client = reqwest::Client::new();
    let url = format!("{base}/v1/chat/completions");
    let body = |stream: bool| json!({"model": "qwen-plus", "stream": stream, "messages": [{"role": "user", "content": PROMPT}]});

    // 1. The primary refuses; the fallback answers.
    primary.push(Script::answer(REFUSAL));
    fallback.push(Script::answer(ANSWER));
    let r = client
        .post(&url)
        .header("x-request-id", "client-req-1")
        .json(&body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "client-req-1");
    assert!(r.text().await.unwrap().contains("ANSWER-MARKER"));

    // 2. A streamed answer from the primary.
    primary.push(Script::answer(ANSWER).with_usage());
    let r = client.post(&url).json(&body(true)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let generated_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(r.text().await.unwrap().contains("[DONE]"));

    // 3. The primary fails with a 503, the fallback with a 500: a 5xx for the client.
    primary.push(Script::status(
        503,
        r#"{"error":{"message":"overloaded","code":"busy"}}"#,
    ));
    fallback.push(Script::status(
        500,
        r#"{"error":{"message":"broken","code":"internal"}}"#,
    ));
    let r = client.post(&url).json(&body(false)).send().await.unwrap();
    assert!(r.status().is_server_error(), "{}", r.status());

    // 4. Not even JSON: the gateway's own 400.
    let r = client.post(&url).body("{oops").send().await.unwrap();
    assert_eq!(r.status(), 400);

    let (text, events) = request_events(&log, 4).await;
    assert_eq!(events.len(), 4, "one event per request:\n{text}");

    let rerouted = &events[0];
    assert_eq!(rerouted["level"], "INFO");
    assert_eq!(rerouted["request_id"], "client-req-1");
    assert_eq!(rerouted["route"], "/v1/chat/completions");
    assert_eq!(rerouted["model"], "qwen-plus");
    assert_eq!(rerouted["stream"], false);
    assert_eq!(rerouted["status"], 200);
    assert_eq!(rerouted["providers"], "primary,fallback");
    assert_eq!(rerouted["provider"], "fallback");
    assert_eq!(rerouted["attempts"], 2);
    assert_eq!(rerouted["reroute_reason"], "policy_refusal");
    assert_eq!(rerouted["verdict"], "answer");
    let confidence = rerouted["confidence"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&confidence), "{confidence}");
    let ttfb = rerouted["ttfb_ms"].as_f64().unwrap();
    let total = rerouted["total_ms"].as_f64().unwrap();
    assert!(0.0 < ttfb && ttfb <= total, "ttfb {ttfb} total {total}");
    assert!(rerouted["prompt_tokens"].as_u64().unwrap() > 0, "{rerouted}");
    assert!(rerouted["completion_tokens"].as_u64().unwrap() > 0, "{rerouted}");
    assert!(rerouted["cost_usd"].as_f64().unwrap() > 0.0, "{rerouted}");
    assert_eq!(rerouted["completed"], true);
    assert_eq!(rerouted["span"]["request_id"], "client-req-1", "{rerouted}");

    let streamed = &events[1];
    assert_eq!(streamed["request_id"], generated_id.as_str());
    assert_eq!(streamed["stream"], true);
    assert_eq!(streamed["providers"], "primary");
    assert_eq!(streamed["attempts"], 1);
    assert_eq!(streamed["verdict"], "answer");
    assert!(streamed.get("reroute_reason").is_none(), "{streamed}");
    assert!(streamed["completion_tokens"].as_u64().unwrap() > 0, "{streamed}");
    // The mock's stream reports no usage: the request's tokens are estimated, not 0.
    assert!(streamed["prompt_tokens"].as_u64().unwrap() > 0, "{streamed}");
    assert!(streamed["ttfb_ms"].as_f64().unwrap() <= streamed["total_ms"].as_f64().unwrap());
    assert_eq!(streamed["completed"], true);

    let failed = &events[2];
    assert_eq!(failed["level"], "WARN");
    assert!(failed["status"].as_u64().unwrap() >= 500, "{failed}");
    assert!(failed["error"].is_string(), "{failed}");
    assert!(failed.get("verdict").is_none(), "{failed}");

    let bad = &events[3];
    assert_eq!(bad["status"], 400);
    assert_eq!(bad["error"], "invalid_json");
    assert!(bad.get("model").is_none(), "{bad}");

    // The provider failures were warned about, inside their requests' spans.
    let warned: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["level"] == "WARN" && v["message"] == "provider attempt failed")
        .collect();
    assert_eq!(warned.len(), 2, "{text}");
    assert!(
        warned
            .iter()
            .all(|w| w["span"]["request_id"] == failed["request_id"]),
        "{text}"
    );

    for secret in [
        PRIMARY_KEY,
        FALLBACK_KEY,
        "PROMPT-MARKER",
        "ANSWER-MARKER",
        "can't discuss",
    ] {
        assert!(!text.contains(secret), "{secret:?} is in the log:\n{text}");
    }
}

/// A base URL nothing listens on: a provider that is down (connection refused).
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/v1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provider_tried_is_named_in_events_headers_and_metrics() {
    // Providers named neither "primary" nor "fallback", so a placeholder cannot pass for
    // a configured name: `up` answers (or fails) as scripted, `fb` likewise, `gone` and
    // `gone2` are down.
    let up = MockProvider::start().await;
    let fb = MockProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (_serve, base, log) = serve_logged(
        dir.path(),
        &format!(
            r#"
[providers.up]
base_url = "{up}"
max_retries = 0

[providers.fb]
base_url = "{fb}"
max_retries = 0

[providers.gone]
base_url = "{gone}"
max_retries = 0

[providers.gone2]
base_url = "{gone2}"
max_retries = 0

[[routes]]
model = "failover"
primary = "gone"
fallbacks = ["fb"]

[[routes]]
model = "nowhere"
primary = "gone"
fallbacks = ["gone2"]

[[routes]]
model = "slow"
primary = "up"
fallbacks = ["fb"]
total_timeout_ms = 500

[[routes]]
model = "alone"
primary = "up"

[[routes]]
model = "*"
primary = "up"
fallbacks = ["fb"]
"#,
            up = up.base_url(),
            fb = fb.base_url(),
            gone = dead_url(),
            gone2 = dead_url(),
        ),
    );
    let client = reqwest::Client::new();
    let url = format!("{base}/v1/chat/completions");
    let body = |model: &str, stream: bool| json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": PROMPT}]});
    let post = |model: &str, stream: bool| client.post(&url).json(&body(model, stream)).send();
    let header =
        |r: &reqwest::Response, name: &str| r.headers().get(name).map(|v| v.to_str().unwrap().to_string());

    // 1. The primary is down; the fallback answers.
    fb.push(Script::answer(ANSWER));
    let r = post("failover", false).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-refusal-guard-providers").as_deref(),
        Some("gone,fb")
    );
    r.text().await.unwrap();

    // 2. Both answer 500: the error names both, in its headers and in its message.
    let broken = r#"{"error":{"message":"broken","code":"internal"}}"#;
    up.push(Script::status(500, broken));
    fb.push(Script::status(500, broken));
    let r = post("qwen-plus", false).await.unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(header(&r, "x-refusal-guard-attempts").as_deref(), Some("2"));
    assert_eq!(header(&r, "x-refusal-guard-providers").as_deref(), Some("up,fb"));
    assert_eq!(header(&r, "x-refusal-guard-provider").as_deref(), Some("fb"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["error"]["code"], "internal",
        "the first provider's code passes through: {v}"
    );
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("up:") && message.contains("fb:"), "{message}");

    // 3. Both refuse a stream: the held-back refusal, with both attempts.
    up.push(Script::answer(REFUSAL));
    fb.push(Script::answer(REFUSAL));
    let r = post("qwen-plus", true).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-refusal-guard-attempts").as_deref(), Some("2"));
    assert_eq!(header(&r, "x-refusal-guard-provider").as_deref(), Some("fb"));
    assert_eq!(header(&r, "x-refusal-guard-providers").as_deref(), Some("up,fb"));
    let text = r.text().await.unwrap();
    let last: Value = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .rfind(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .unwrap();
    assert_eq!(last["refusal_guard"]["attempts"], 2, "{text}");

    // 4. Both are down: a 502 whose message names both.
    let r = post("nowhere", false).await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(
        header(&r, "x-refusal-guard-providers").as_deref(),
        Some("gone,gone2")
    );
    let v: Value = r.json().await.unwrap();
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("talking to gone:") && message.contains("talking to gone2:"),
        "{message}"
    );

    // 5. The primary fails, the fallback is still silent when the route's total deadline
    // passes: a 504 that names both, the one waited for as timed out.
    up.push(Script::status(500, broken));
    fb.push(Script::answer(ANSWER).delay_first_byte(Duration::from_secs(3)));
    let r = post("slow", false).await.unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(header(&r, "x-refusal-guard-providers").as_deref(), Some("up,fb"));
    assert_eq!(header(&r, "x-refusal-guard-attempts").as_deref(), Some("2"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_timeout", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("up:") && message.contains("total deadline") && message.contains("fb"),
        "{message}"
    );

    // 6. A stream cut after its window with no fallback: a 200 whose body ends in an
    // error event; the event says so (it logged a success before).
    let long = format!("{ANSWER} {ANSWER} {ANSWER}");
    up.push(Script::answer(&long).drop_after(30));
    let r = post("alone", true).await.unwrap();
    assert_eq!(r.status(), 200);
    let sse = r.text().await.unwrap();
    assert!(sse.contains("\"error\""), "{sse}");

    // 7. The same cut with a fallback, which continues the answer: a failover.
    up.push(Script::answer(&long).drop_after(30));
    fb.push(Script::answer("and the rest."));
    let r = post("qwen-plus", true).await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap();

    let (text, events) = request_events(&log, 7).await;
    assert_eq!(events.len(), 7, "one event per request:\n{text}");
    let failover = &events[0];
    assert_eq!(failover["providers"], "gone,fb", "{failover}");
    assert_eq!(failover["provider"], "fb", "{failover}");
    assert_eq!(failover["attempts"], 2, "{failover}");
    assert_eq!(failover["reroute_reason"], "failover", "{failover}");
    for (event, status, error) in [
        (&events[1], 500, "internal"),
        (&events[2], 200, "refused_by_all_providers"),
    ] {
        assert_eq!(event["status"], status, "{event}");
        assert_eq!(event["providers"], "up,fb", "{event}");
        assert_eq!(event["provider"], "fb", "{event}");
        assert_eq!(event["attempts"], 2, "{event}");
        assert_eq!(event["error"], error, "{event}");
    }
    let nowhere = &events[3];
    assert_eq!(nowhere["status"], 502, "{nowhere}");
    assert_eq!(nowhere["providers"], "gone,gone2", "{nowhere}");
    assert_eq!(nowhere["attempts"], 2, "{nowhere}");
    assert_eq!(nowhere["error"], "upstream_unavailable", "{nowhere}");
    let slow = &events[4];
    assert_eq!(slow["status"], 504, "{slow}");
    assert_eq!(slow["providers"], "up,fb", "{slow}");
    assert_eq!(slow["attempts"], 2, "{slow}");
    assert_eq!(slow["error"], "upstream_timeout", "{slow}");
    let cut = &events[5];
    assert_eq!(cut["status"], 200, "{cut}");
    assert_eq!(cut["error"], "upstream_unavailable", "{cut}");
    assert_eq!(cut["level"], "WARN", "{cut}");
    let continued = &events[6];
    assert_eq!(continued["providers"], "up,fb", "{continued}");
    assert_eq!(continued["reroute_reason"], "failover", "{continued}");
    assert!(continued.get("error").is_none(), "{continued}");

    // Each failed attempt is warned about under the provider's configured name.
    let failed: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "provider attempt failed")
        .map(|v| v["provider"].as_str().unwrap_or("?").to_string())
        .collect();
    assert_eq!(
        failed,
        ["gone", "up", "fb", "gone", "gone2", "up", "fb"],
        "{text}"
    );

    let metrics = common::metrics_text(&client, &base).await;
    assert!(
        metrics.contains(r#"refusal_guard_reroutes_total{from="gone",to="fb"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"refusal_guard_reroutes_total{from="up",to="fb"} 3"#),
        "{metrics}"
    );
    assert!(!metrics.contains(r#"from="primary""#), "{metrics}");
}
