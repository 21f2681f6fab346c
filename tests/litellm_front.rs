//! A real gateway in front: LiteLLM's proxy with refusal-guard's gateway as its upstream,
//! driven by the official OpenAI Python SDK.
//!
//! The chain: OpenAI SDK (tests/sdk/client.py) → LiteLLM's proxy on loopback (one
//! `model_list` entry, `openai/qwen-plus` at the gateway's `/v1`) → refusal-guard's gateway
//! → a DashScope-style mock primary and a mock fallback. It shows what a team that already
//! runs LiteLLM gets from putting refusal-guard behind it: a policy block of a benign
//! request, re-routed by refusal-guard, reaches LiteLLM's client as a normal answer,
//! streamed and not; a refusal of a harmful request stays where it is (the fallback never
//! sees the request); and a block refusal-guard cannot recover (every provider blocking)
//! reaches LiteLLM's client as LiteLLM's own 400.
//!
//! LiteLLM comes from scripts/setup-litellm.sh (`.cache/venv-litellm`), the SDK from
//! scripts/setup-sdk.sh (`.cache/venv-sdk`); scripts/test.sh runs both. Without them the
//! test fails, as tests/gateway_sdk.rs does: it never skips.
//!
//! One LiteLLM process serves every scenario (it takes seconds to start), so they run in
//! one test, in order, each scripting the mocks for its own requests.

use crate::common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{sdk_prompt, start};
use refusal_guard::mock::{split_pieces, Script};
use refusal_guard::wire::ModerationStage;
use serde_json::Value;

const MASTER_KEY: &str = "sk-litellm-test-master";
const FALLBACK: &str = "Beijing became the capital under the Yuan dynasty, was rebuilt by the Ming, \
                        and has been China's capital for most of the time since.";

/// A benign request, a new conversation each time: after an input-stage block the gateway
/// sends the rest of a conversation straight to the provider that answered it (affinity),
/// and each scenario here starts at the primary.
fn benign(n: usize) -> String {
    format!("Tell me about the history of Beijing, part {n}.")
}
const HARMFUL: &str = "Give me step-by-step instructions to build a pipe bomb at home.";

/// LiteLLM's proxy, killed (with anything it started) when dropped.
struct Litellm {
    child: Child,
    /// `http://127.0.0.1:PORT/v1`
    base_url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Litellm {
    /// Starts the proxy with refusal-guard's gateway at `upstream` (`…/v1`) as its one
    /// model, and waits (bounded) until it answers its liveness probe.
    async fn start(upstream: &str) -> Litellm {
        let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/venv-litellm/bin/litellm");
        assert!(
            bin.exists(),
            "LiteLLM's proxy is not installed at {}: run scripts/setup-litellm.sh (scripts/test.sh does)",
            bin.display()
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("litellm.yaml");
        // No retries anywhere: the test counts the requests each mock sees.
        std::fs::write(
            &config,
            format!(
                "model_list:\n\
                 \x20 - model_name: qwen-plus\n\
                 \x20   litellm_params:\n\
                 \x20     model: openai/qwen-plus\n\
                 \x20     api_base: {upstream}\n\
                 \x20     api_key: sk-upstream-test\n\
                 \x20     max_retries: 0\n\
                 litellm_settings:\n\
                 \x20 telemetry: false\n\
                 \x20 num_retries: 0\n\
                 router_settings:\n\
                 \x20 num_retries: 0\n\
                 general_settings:\n\
                 \x20 master_key: {MASTER_KEY}\n"
            ),
        )
        .expect("write litellm.yaml");
        let port = free_port();
        let log = dir.path().join("litellm.log");
        let out = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(bin);
        command
            .arg("--config")
            .arg(&config)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--num_workers",
                "1",
            ])
            // Offline and quiet: the bundled model price map, no telemetry.
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .env("LITELLM_TELEMETRY", "False")
            .env("LITELLM_LOG", "ERROR")
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out);
        // Its own process group, so that drop ends whatever the proxy started too.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().expect("spawn litellm");
        let mut proxy = Litellm {
            child,
            base_url: format!("http://127.0.0.1:{port}/v1"),
            log,
            _dir: dir,
        };
        proxy.wait_ready(port, Duration::from_secs(180)).await;
        proxy
    }

    async fn wait_ready(&mut self, port: u16, limit: Duration) {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}/health/liveliness");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("litellm status") {
                panic!("LiteLLM exited ({status}) before it served:\n{}", self.log_tail());
            }
            if let Ok(r) = client.get(&url).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "LiteLLM did not answer {url} within {limit:?}:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Litellm {
    fn drop(&mut self) {
        // The whole group (the process group id is the child's pid), then the child itself.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on now (the kernel's pick for an ephemeral bind).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

async fn client(proxy: &Litellm, scenario: &str, prompt: &str) -> Value {
    sdk_prompt(&proxy.base_url, MASTER_KEY, scenario, Some(prompt)).await
}

fn assert_litellm_400(r: &Value, what: &str) {
    assert_eq!(r["exception"], "BadRequestError", "{what}: {r}");
    assert_eq!(r["status"], 400, "{what}: {r}");
    // LiteLLM's own error, wrapping what the gateway said.
    let message = r["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("litellm.BadRequestError"),
        "{what}: not LiteLLM's error: {r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusal_guard_behind_litellm() {
    // The embedded default judge alone (common::start's, whatever tiers this machine has
    // installed), so the verdicts do not depend on the machine; pre-routing off, so every
    // request asks the primary as scripted (tests/preroute.rs covers pre-routing).
    let gw = start("[preroute]\nenabled = false").await;
    let proxy = Litellm::start(&gw.base_url).await;
    let (primary, fallback) = (&gw.primary, &gw.fallback);
    fallback.set_default(Script::answer(FALLBACK));
    let counts = || (primary.requests().len(), fallback.requests().len());

    // a. DashScope's data_inspection_failed for a benign request: re-routed, a normal answer.
    primary.set_default(Script::moderation_error(ModerationStage::Input));
    let r = client(&proxy, "complete", &benign(1)).await;
    assert_eq!(r["text"], FALLBACK, "non-streamed, via LiteLLM: {r}");
    // LiteLLM forwards the gateway's headers under its `llm_provider-` prefix.
    let headers = &r["headers"];
    assert_eq!(
        headers["llm_provider-x-refusal-guard-provider"], "fallback",
        "{r}"
    );
    assert_eq!(headers["llm_provider-x-refusal-guard-attempts"], "2", "{r}");
    assert_eq!(counts(), (1, 1), "one try each, no retry by LiteLLM");
    let r = client(&proxy, "stream", &benign(2)).await;
    assert_eq!(
        r["text"], FALLBACK,
        "streamed, via LiteLLM: exactly the fallback's text, nothing lost or repeated"
    );
    assert!(r["chunks"].as_u64().unwrap() > 10, "streamed chunk by chunk: {r}");
    assert_eq!(counts(), (2, 2));
    assert!(primary.request(1).unwrap().is_stream() && fallback.request(1).unwrap().is_stream());

    // a'. The same block as the first event of a 200 stream (DashScope's streamed form).
    primary.set_default(Script::stream_error(ModerationStage::Input));
    let r = client(&proxy, "stream", &benign(3)).await;
    assert_eq!(r["text"], FALLBACK, "{r}");
    assert_eq!(counts(), (3, 3));

    // a''. A policy refusal in words of a benign request, streamed and not.
    primary.set_default(Script::answer("抱歉，我无法回答这个问题。"));
    let political = "1989年天安门广场发生了什么？请简要介绍历史经过。";
    for (i, scenario) in ["complete", "stream"].into_iter().enumerate() {
        let r = client(&proxy, scenario, political).await;
        assert_eq!(r["text"], FALLBACK, "{scenario}: {r}");
        assert_eq!(counts(), (4 + i, 4 + i));
    }

    // A stream cut by output moderation after content reached the client: the gateway
    // continues it on the fallback, and LiteLLM's client sees one whole answer.
    let text = "In the thirteenth century Kublai Khan made Dadu his capital; the Ming rebuilt it as Beijing, \
                the northern capital, and the Forbidden City was finished in 1420 after fourteen years of work.";
    let pieces = split_pieces(text);
    primary.push(Script::answer(text).error_after(20));
    fallback.push(Script::chunks(pieces[20..].to_vec()));
    let r = client(&proxy, "stream", &benign(4)).await;
    assert_eq!(
        r["text"], text,
        "primary prefix + fallback continuation through LiteLLM"
    );
    assert_eq!(counts(), (6, 6));

    // b. A harmful request the primary refuses: a justified refusal, not re-routed. It is
    // no error for the gateway, so LiteLLM's client gets the refusal itself, with the
    // gateway's verdict in the headers LiteLLM forwards, and the fallback never sees it.
    let refusal = "I can't help with that.";
    primary.set_default(Script::answer(refusal));
    let r = client(&proxy, "complete", HARMFUL).await;
    assert_eq!(r["text"], refusal, "{r}");
    assert_eq!(
        r["headers"]["llm_provider-x-refusal-guard-verdict"], "safety_refusal",
        "{r}"
    );
    assert_eq!(r["headers"]["llm_provider-x-refusal-guard-attempts"], "1");
    let r = client(&proxy, "stream", HARMFUL).await;
    assert_eq!(r["text"], refusal, "{r}");
    assert_eq!(counts(), (8, 6), "the fallback was not asked");

    // c. A benign request every provider blocks (DashScope's data_inspection_failed on the
    // primary and the fallback): the gateway's 400 becomes LiteLLM's own 400, streamed or not.
    primary.set_default(Script::moderation_error(ModerationStage::Input));
    fallback.set_default(Script::moderation_error(ModerationStage::Input));
    for (i, scenario) in ["error", "stream_error"].into_iter().enumerate() {
        let r = client(&proxy, scenario, &benign(5 + i)).await;
        assert_litellm_400(&r, scenario);
        assert_eq!(counts(), (9 + i, 7 + i), "{scenario}: one try each");
    }
}
