//! The verdict log: written by the gateway for a scripted mock session, read back by
//! `refusal-guard audit` with exactly the scripted counts; rotated and compressed files
//! read the same; a stalled writer never holds up a request (the queue drops and counts).

use crate::common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use refusal_guard::audit::{self, input, AuditOptions};
use refusal_guard::gateway::Gateway;
use refusal_guard::mock::{MockProvider, Script};
use refusal_guard::observe::{Entry, LineSink, VerdictLog, VerdictLogConfig};
use refusal_guard::verdict::VerdictClass;
use refusal_guard::wire::ModerationStage;
use serde_json::{json, Value};

const PRIMARY_KEY: &str = "sk-primary-verdictlog-5e6f7a8b9c";
const FALLBACK_KEY: &str = "sk-fallback-verdictlog-1a2b3c4d5e";
const CLIENT_KEY: &str = "sk-client-verdictlog-0f1e2d3c4b";

const ANSWER: &str = "Taiwan held its first direct presidential election in 1996; Lee Teng-hui won it.";
const REFUSAL: &str = "I'm sorry, but I cannot discuss political topics.";
const EN_PROMPT: &str =
    "Tell me about the history of elections in Taiwan and how the voting system works today.";
const ZH_PROMPT: &str = "请介绍一下台湾选举的历史以及现在的投票制度是如何运作的。";

/// What the primary answers, request by request: 7 answers, 3 policy refusals, 2
/// moderation blocks. The fallback answers whatever is re-routed to it.
#[derive(Clone, Copy, PartialEq)]
enum Scripted {
    Answer,
    Refusal,
    Block,
}
use Scripted::{Answer as A, Block as B, Refusal as R};
const SESSION: [Scripted; 12] = [A, A, R, A, B, A, R, A, A, B, R, A];
/// Requests whose prompt is Chinese (the rest are English).
const CHINESE: [usize; 3] = [0, 4, 8];

struct Running {
    primary: MockProvider,
    fallback: MockProvider,
    gateway: Gateway,
    base: String,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

async fn start(test: &str, extra: &str, log: Option<VerdictLog>) -> Running {
    let primary = MockProvider::start().await;
    let fallback = MockProvider::start().await;
    primary.require_api_key(PRIMARY_KEY);
    fallback.require_api_key(FALLBACK_KEY);
    fallback.set_default(Script::answer(ANSWER));
    let (pk, fk, ck) = (
        format!("RG_VL_{test}_PRIMARY"),
        format!("RG_VL_{test}_FALLBACK"),
        format!("RG_VL_{test}_CLIENTS"),
    );
    std::env::set_var(&pk, PRIMARY_KEY);
    std::env::set_var(&fk, FALLBACK_KEY);
    std::env::set_var(&ck, CLIENT_KEY);
    let text = format!(
        r#"
[server]
api_keys_env = "{ck}"
{extra}
[providers.primary]
base_url = "{}"
api_key_env = "{pk}"
max_retries = 0
[providers.fallback]
base_url = "{}"
api_key_env = "{fk}"
max_retries = 0
[[routes]]
model = "*"
primary = "primary"
fallbacks = ["fallback"]
"#,
        primary.base_url(),
        fallback.base_url()
    );
    let config = crate::common::gateway_config(&text);
    let gateway = match log {
        Some(log) => Gateway::with_verdict_log(&config, log),
        None => Gateway::from_config(&config),
    }
    .expect("gateway");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gateway.clone().serve(listener, async {
        let _ = rx.await;
    }));
    Running {
        primary,
        fallback,
        gateway,
        base,
        _shutdown: tx,
    }
}

fn chat(prompt: &str, stream: bool) -> Value {
    json!({"model": "qwen-plus", "stream": stream, "messages": [{"role": "user", "content": prompt}]})
}

/// Sends one request and reads its whole body.
async fn send(http: &reqwest::Client, base: &str, prompt: &str, stream: bool) -> (u16, String) {
    let r = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(CLIENT_KEY)
        .json(&chat(prompt, stream))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

/// Every line of every file under `dir`, gzip or not.
fn read_all(dir: &Path) -> (Vec<PathBuf>, String) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut text = String::new();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        if bytes.starts_with(&[0x1f, 0x8b]) {
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_string(&mut text)
                .unwrap();
        } else {
            text.push_str(std::str::from_utf8(&bytes).unwrap());
        }
    }
    (files, text)
}

async fn flush(log: &VerdictLog) {
    let log = log.clone();
    tokio::task::spawn_blocking(move || log.flush())
        .await
        .unwrap()
        .unwrap();
}

/// Flushes the log once `n` lines are written (a stream's line is queued when its verdict
/// is final, just after its last byte), or after two seconds, whichever comes first.
async fn flush_after(log: &VerdictLog, n: u64) {
    for _ in 0..200 {
        if log.written().get() >= n {
            break;
        }
        flush(log).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    flush(log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_session_reads_back_with_the_scripted_counts() {
    let dir = tempfile::tempdir().unwrap();
    // Near-identical prompts: pre-routing would skip the primary's scripted refusals.
    let extra = format!(
        "[preroute]\nenabled = false\n[verdict_log]\ndir = {:?}\n",
        dir.path().display().to_string()
    );
    let run = start("SESSION", &extra, None).await;
    for s in SESSION {
        run.primary.push(match s {
            A => Script::answer(ANSWER),
            R => Script::answer(REFUSAL),
            B => Script::moderation_error(ModerationStage::Input),
        });
    }
    let http = reqwest::Client::new();
    for i in 0..SESSION.len() {
        // A fresh conversation each time: after an input block the gateway keeps a
        // conversation on the fallback (pre-routing), which would skip the primary's script.
        let prompt = if CHINESE.contains(&i) {
            format!("{ZH_PROMPT}（第{i}次）")
        } else {
            format!("{EN_PROMPT} This is question {i}.")
        };
        let stream = i % 2 == 1;
        let (status, body) = send(&http, &run.base, &prompt, stream).await;
        assert_eq!(status, 200, "request {i}: {body}");
        let answered = if stream { "data: [DONE]" } else { "Lee Teng-hui" };
        assert!(body.contains(answered), "request {i} was answered: {body}");
    }
    let log = run.gateway.verdict_log().expect("the log is on").clone();
    flush_after(&log, 17).await;
    let (_, text) = read_all(dir.path());
    assert_eq!(
        run.fallback.requests().len(),
        5,
        "3 refusals and 2 blocks re-routed: {text}"
    );
    assert_eq!(log.written().get(), 17, "12 primary attempts and 5 fallback ones");
    assert_eq!(log.dropped().get(), 0);
    for secret in [
        PRIMARY_KEY,
        FALLBACK_KEY,
        CLIENT_KEY,
        EN_PROMPT,
        ZH_PROMPT,
        ANSWER,
    ] {
        assert!(!text.contains(secret), "{secret:?} is in the log");
    }
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let block = lines
        .iter()
        .find(|l| l["verdict"] == "provider_block")
        .expect("a block line");
    assert_eq!(block["attempt"], 1);
    assert_eq!(block["attempts"], 2);
    assert_eq!(block["provider"], "primary");
    assert!(
        block["reason"].as_str().unwrap().contains("provider_block"),
        "{block}"
    );

    // The audit over the folder, by the real command line.
    let out = crate::common::bin_without_models()
        .args(["audit", "--bucket", "day", "--json", "-"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["records"], 17);
    assert_eq!(report["bad_records"], 0);
    let group = |key: &str, name: &str| -> Value {
        report[key]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {key}: {}", report[key]))["verdicts"]
            .clone()
    };
    let primary = group("by_provider", "primary");
    assert_eq!(primary["answer"], 7);
    assert_eq!(primary["policy_refusal"], 3);
    assert_eq!(primary["provider_block"], 2);
    let fallback = group("by_provider", "fallback");
    assert_eq!(fallback["answer"], 5);
    assert_eq!(fallback["policy_refusal"], 0);
    assert_eq!(group("by_model", "qwen-plus")["answer"], 12);
    // Chinese prompts: an answer, a block re-routed (2 lines), an answer.
    let zh = group("by_lang", "zh");
    assert_eq!(
        (zh["answer"].as_u64(), zh["provider_block"].as_u64()),
        (Some(3), Some(1))
    );
    let en = group("by_lang", "en");
    assert_eq!(en["answer"], 9);
    assert_eq!(en["policy_refusal"], 3);
    assert_eq!(en["provider_block"], 1);
    let over_time = &report["over_time"];
    assert_eq!(over_time["bucket"], "day");
    assert_eq!(over_time["undated"], 0);
    let points = over_time["points"].as_array().unwrap();
    assert_eq!(points.len(), 1, "one day of traffic");
    assert_eq!(points[0]["total"], 17);
}

fn entry(i: usize, class: VerdictClass) -> Entry {
    Entry {
        id: format!("r{i}.1"),
        request_id: format!("r{i}"),
        attempt: 1,
        attempts: 1,
        time: format!("2026-11-{:02}T12:00:00Z", 20 + i % 5),
        provider: if i.is_multiple_of(2) { "qwen" } else { "other" }.into(),
        model: "qwen-plus".into(),
        lang: String::new(),
        verdict: class,
        confidence: Some(0.9),
        evidence: Vec::new(),
        stage: None,
        categories: Vec::new(),
        reason: None,
        status: None,
        error: None,
        stream: false,
        latency_ms: Some(1.0),
        prompt: Some(format!(
            "Question number {i} about the history of the Silk Road trade routes."
        )),
        response: format!("secret answer {i}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_and_compressed_files_read_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = VerdictLogConfig::new(dir.path());
    config.max_file_bytes = 1500;
    let log = VerdictLog::builder()
        .configure(&config)
        .include_text(true)
        .redact(|e| e.response = e.response.replace("secret", "[masked]"))
        .open(&config)
        .unwrap();
    for i in 0..40 {
        let class = if i % 4 == 0 {
            VerdictClass::PolicyRefusal
        } else {
            VerdictClass::Answer
        };
        assert!(log.log(vec![entry(i, class)]));
    }
    // The last handle gone, the writer closes and compresses the open file.
    tokio::task::spawn_blocking(move || drop(log)).await.unwrap();

    let (files, text) = read_all(dir.path());
    assert!(files.len() > 3, "rotated by size: {files:?}");
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("verdicts-") && name.ends_with(".jsonl.gz"),
            "every closed file is compressed: {name}"
        );
    }
    assert!(!text.contains("secret"), "the redaction hook ran");
    assert!(text.contains("[masked] answer 7"));
    assert!(text.contains("Silk Road"), "text is kept with include_text");

    let inputs = input::resolve(&[dir.path().display().to_string()]).unwrap();
    let tally = audit::audit(&inputs, &AuditOptions::default(), |_, _| Ok(())).unwrap();
    assert_eq!(tally.records, 40);
    assert_eq!(tally.bad, 0);
    assert_eq!(tally.verdicts.get(VerdictClass::PolicyRefusal), 10);
    assert_eq!(tally.by_provider["qwen"].get(VerdictClass::PolicyRefusal), 10);
    assert_eq!(tally.by_provider["other"].get(VerdictClass::Answer), 20);
    assert_eq!(tally.by_lang["en"].total(), 40);
    assert_eq!(tally.by_hour.len(), 5, "five days, one hour each");
}

/// A sink whose first write waits until the test opens the gate.
struct Stalled {
    entered: crossbeam_channel::Sender<()>,
    gate: crossbeam_channel::Receiver<()>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl LineSink for Stalled {
    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        let _ = self.entered.try_send(());
        // Blocks until the gate's sender is dropped.
        let _ = self.gate.recv();
        self.lines
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(line).into_owned());
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_writer_drops_and_counts_and_never_holds_a_request() {
    let (entered_tx, entered) = crossbeam_channel::bounded(1);
    let (open, gate) = crossbeam_channel::bounded::<()>(0);
    let lines = Arc::new(Mutex::new(Vec::new()));
    let log = VerdictLog::builder().queue(2).start(Stalled {
        entered: entered_tx,
        gate,
        lines: lines.clone(),
    });
    let run = start("STALL", "", Some(log)).await;
    run.primary.set_default(Script::answer(ANSWER));
    let http = reqwest::Client::new();

    let (status, _) = send(&http, &run.base, EN_PROMPT, false).await;
    assert_eq!(status, 200);
    // The writer has taken the first line and is stuck in the sink.
    tokio::task::spawn_blocking(move || entered.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("the writer reached the sink");
    // Nine more: two wait in the queue, seven are dropped; every request is answered.
    for i in 0..9 {
        let (status, body) =
            tokio::time::timeout(Duration::from_secs(30), send(&http, &run.base, EN_PROMPT, false))
                .await
                .expect("a request is never held by the log");
        assert_eq!(status, 200, "request {i}: {body}");
    }
    let log = run.gateway.verdict_log().unwrap().clone();
    assert_eq!(log.dropped().get(), 7);
    let metrics = common::metrics_text(&http, &run.base).await;
    assert!(
        metrics.contains("refusal_guard_verdict_log_dropped_total 7"),
        "{metrics}"
    );

    drop(open);
    flush(&log).await;
    assert_eq!(
        lines.lock().unwrap().len(),
        3,
        "the first line and the two queued"
    );
    assert_eq!(log.written().get(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_on_every_provider_logs_each_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[preroute]\nenabled = false\n[verdict_log]\ndir = {:?}\n",
        dir.path().display().to_string()
    );
    let run = start("EVERY", &extra, None).await;
    run.primary.push(Script::moderation_error(ModerationStage::Input));
    run.fallback
        .push(Script::moderation_error(ModerationStage::Output));
    let http = reqwest::Client::new();
    let (status, body) = send(&http, &run.base, EN_PROMPT, false).await;
    assert_ne!(status, 200, "both blocked: {body}");
    assert_eq!(run.fallback.requests().len(), 1, "the block was re-routed");
    let log = run.gateway.verdict_log().expect("the log is on").clone();
    flush_after(&log, 2).await;
    let (_, text) = read_all(dir.path());
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // One line per provider that blocked, as for a request some provider answered.
    assert_eq!(lines.len(), 2, "{text}");
    for (line, (n, provider)) in lines.iter().zip([(1, "primary"), (2, "fallback")]) {
        assert_eq!(line["attempt"], n, "{line}");
        assert_eq!(line["attempts"], 2, "{line}");
        assert_eq!(line["provider"], provider, "{line}");
        assert_eq!(line["verdict"], "provider_block", "{line}");
    }
    // The verdict returned (the primary's input block) and its error body stay with the
    // primary's line; the fallback's block is named in its line's reason.
    assert_eq!(lines[0]["stage"], "input", "{}", lines[0]);
    assert_eq!(lines[0]["status"], 400, "{}", lines[0]);
    assert!(lines[1].get("error").is_none(), "{}", lines[1]);
    let reason = lines[1]["reason"].as_str().unwrap();
    assert!(reason.contains("Output stage"), "{reason}");
}
