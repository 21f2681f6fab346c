//! Shared by the tests: two mock providers behind a gateway on loopback, the Python SDK,
//! and the e5 tier where a test needs the model.

#![allow(dead_code)]

use std::path::PathBuf;

use refusal_guard::gateway::config::GatewayConfig;
use refusal_guard::gateway::Gateway;
use refusal_guard::mock::MockProvider;

/// A gateway with `primary` and `fallback` mock providers, serving model `*`.
pub struct TestGateway {
    pub primary: MockProvider,
    pub fallback: MockProvider,
    pub gateway: Gateway,
    /// `http://127.0.0.1:PORT/v1`
    pub base_url: String,
    pub shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub served: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// `text` parsed as a gateway configuration, judged by the embedded default unless it names
/// its tiers (`[guard] tiers`).
///
/// A configuration without tiers means "the best installed" to the gateway, and under cargo
/// the e5 tier is installed wherever the test command ran (.cargo/config.toml points
/// `$HF_HOME` at .cache/hf): every gateway the tests start would load the encoder, several
/// times slower, and judge with a tier the test does not name. A test of the verdict names
/// it; a test of the gateway's plumbing gets the embedded default, as on a machine with no
/// models.
pub fn gateway_config(text: &str) -> GatewayConfig {
    let mut config = GatewayConfig::parse(text).expect("test config");
    if config.guard.tiers.is_empty() {
        config.guard.tiers = vec!["none".to_string()];
    }
    config
}

/// Serves a gateway of the configuration `text` ([`gateway_config`]) on a loopback port:
/// its `/v1` base URL, and the sender that stops it when dropped.
pub async fn serve(text: &str) -> (String, tokio::sync::oneshot::Sender<()>) {
    let gateway = Gateway::from_config(&gateway_config(text)).expect("gateway");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gateway.serve(listener, async {
        let _ = rx.await;
    }));
    (base_url, tx)
}

/// Starts a gateway with `extra` TOML added to its configuration (sections other than
/// providers and routes, e.g. `[server]` settings).
pub async fn start(extra: &str) -> TestGateway {
    let primary = MockProvider::start().await;
    let fallback = MockProvider::start().await;
    let text = format!(
        r#"
{extra}
[providers.primary]
base_url = "{}"
max_retries = 0
[providers.fallback]
base_url = "{}"
max_retries = 0
[[routes]]
model = "*"
primary = "primary"
fallbacks = ["fallback"]
"#,
        primary.base_url(),
        fallback.base_url()
    );
    let config = gateway_config(&text);
    let gateway = Gateway::from_config(&config).expect("gateway");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(gateway.clone().serve(listener, async {
        let _ = rx.await;
    }));
    TestGateway {
        primary,
        fallback,
        gateway,
        base_url,
        shutdown: Some(tx),
        served,
    }
}

/// The Python with the OpenAI SDK that scripts/setup-sdk.sh installs.
pub fn sdk_python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/venv-sdk/bin/python");
    assert!(
        python.exists(),
        "the OpenAI Python SDK is not installed at {}: run scripts/setup-sdk.sh (CI's .ci/run does)",
        python.display()
    );
    python
}

/// Runs tests/sdk/client.py with a scenario and returns what it printed.
pub async fn sdk(base_url: &str, api_key: &str, scenario: &str) -> serde_json::Value {
    sdk_prompt(base_url, api_key, scenario, None).await
}

/// As [`sdk`], with the user's prompt in place of the client's default one.
pub async fn sdk_prompt(
    base_url: &str,
    api_key: &str,
    scenario: &str,
    prompt: Option<&str>,
) -> serde_json::Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/client.py");
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new(sdk_python())
            .arg(script)
            .arg(base_url)
            .arg(api_key)
            .arg(scenario)
            .args(prompt)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the SDK client finished")
    .expect("the SDK client ran");
    assert!(
        out.status.success(),
        "SDK client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "SDK output is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The text a caller reads from a layer stack's response, complete or streamed (a stream's
/// error item counts as no text).
pub async fn response_text(response: refusal_guard::provider::ChatResponse) -> String {
    use futures::StreamExt;
    match response.body {
        refusal_guard::provider::ResponseBody::Complete(c) => c.text(),
        refusal_guard::provider::ResponseBody::Stream(s) => s
            .map(|c| c.map(|c| c.content().to_string()).unwrap_or_default())
            .collect::<Vec<_>>()
            .await
            .concat(),
    }
}

/// The gateway's Prometheus text, read from `/metrics` at `base` (with or without `/v1`).
pub async fn metrics_text(http: &reqwest::Client, base: &str) -> String {
    http.get(format!("{}/metrics", base.trim_end_matches("/v1")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The pipeline with the e5 tier, as `serve` and `audit` run it when e5 is installed, read
/// from `$HF_HOME` (under cargo, the repository's `.cache/hf` unless set, where
/// scripts/setup-models.sh installs it: .cargo/config.toml). `None` (the caller skips) when
/// the model is missing outside CI; in CI (`CI=true`) a missing model fails the test,
/// naming the script that installs it.
pub fn e5_detectors() -> Option<refusal_guard::detect::Detectors> {
    detectors_needing_e5(&["e5"])
}

/// The pipeline with tiers `specs` that need multilingual-e5-small (`e5`, `e5:prompts`),
/// found and skipped (or failed, in CI) as [`e5_detectors`] does.
pub fn detectors_needing_e5(specs: &[&str]) -> Option<refusal_guard::detect::Detectors> {
    let specs: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
    match refusal_guard::classify::tiers::detectors_with(&specs) {
        Ok(d) => Some(d),
        Err(e) => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !ci,
                "the e5 tier is not installed: {e}\n(CI=true: scripts/setup-models.sh installs it)"
            );
            eprintln!("skipping: the e5 tier is not installed ({e}); scripts/setup-models.sh installs it");
            None
        }
    }
}

/// The `refusal-guard` binary, run from the repository root with an empty model cache: its
/// verdicts are the embedded default's whatever the machine has installed (with e5 in the
/// cache, `audit` and `eval` would use it).
pub fn bin_without_models() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_refusal-guard"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c.env(
        "HF_HOME",
        std::env::temp_dir().join("refusal-guard-tests-no-models"),
    );
    c
}
