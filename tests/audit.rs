//! `refusal-guard audit`, end to end: the real binary over the hand-written fixtures in
//! `fixtures/audit`, plus the library's pipeline where a property is easier to state there.
//!
//! The JSON report of the fixtures is compared with `tests/audit/fixtures-report.json`
//! field by field, except the confidence histogram, which moves whenever a detector's
//! scoring is tuned (its bins are checked against the verdict counts instead). After a
//! deliberate change to the detectors or the fixtures, regenerate the expected report with
//! `REFUSAL_GUARD_BLESS=1 cargo test --release --test integration audit::` and review the diff.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

use refusal_guard::audit::{self, input, AuditOptions, Outcome};

const FIXTURES: &str = "fixtures/audit";
const CHAT_LOG: &str = "fixtures/audit/chat-log.jsonl";
const GOLDEN: &str = "tests/audit/fixtures-report.json";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The binary with an empty model cache: the counts below are the embedded default's.
fn bin() -> Command {
    common::bin_without_models()
}

/// A fresh scratch folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("refusal-guard-audit-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("the binary runs")
}

fn run_ok(args: &[&str]) -> Output {
    let out = run(args);
    assert!(
        out.status.success(),
        "audit {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn verdicts(
    answer: u64,
    policy: u64,
    evasion: u64,
    safety: u64,
    inability: u64,
    block: u64,
    empty: u64,
) -> Value {
    json!({"answer": answer, "policy_refusal": policy, "evasion": evasion, "safety_refusal": safety,
           "inability": inability, "provider_block": block, "empty": empty})
}

#[test]
fn the_fixture_report_is_exact() {
    let dir = scratch("golden");
    let report_path = dir.join("report.json");
    let out = run_ok(&["audit", FIXTURES, "--json", report_path.to_str().unwrap()]);
    let report = read_json(&report_path);

    // The counts, spelled out (readable when they change).
    assert_eq!(report["records"], 28);
    assert_eq!(report["bad_records"], 0);
    assert_eq!(
        report["inputs"].as_array().unwrap().len(),
        9,
        "1 JSON Lines file, 5 bodies, 3 transcripts"
    );
    // Refusals and evasions split by the request's harm: the six refusals of benign
    // (political) requests are policy refusals, the two of bomb-making requests safety
    // refusals; both evasions stay evasions, their requests judged benign. (The one of a
    // mock press release of China's foreign ministry was held as a safety refusal, fail
    // safe, while the embedded prompt head was unsure of it, n-gram 0.34; trained with
    // speechmap's requests to criticise other governments, since 2026-12-07, it reads 0.12.)
    // One answer is judged a refusal by mistake (fx-zh-answer-1, a Chinese history answer):
    // see the labels below.
    assert_eq!(report["verdicts"], verdicts(5, 7, 2, 2, 2, 7, 3));
    assert_eq!(report["non_answer_rate"], 0.8214);
    let group = |key: &str, name: &str| {
        report[key]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == name)
            .unwrap_or_else(|| panic!("no {key} group {name}"))
            .clone()
    };
    assert_eq!(group("by_lang", "en")["verdicts"], verdicts(4, 2, 1, 1, 1, 4, 1));
    assert_eq!(group("by_lang", "zh")["verdicts"], verdicts(1, 5, 1, 1, 1, 3, 2));
    assert_eq!(group("by_provider", "dashscope")["total"], 23);
    assert_eq!(
        group("by_provider", "openrouter")["verdicts"],
        verdicts(1, 0, 0, 0, 0, 1, 0)
    );
    assert_eq!(group("by_model", "qwen-max")["total"], 9);
    assert_eq!(report["over_time"]["bucket"], "day");
    assert_eq!(report["over_time"]["undated"], 0);
    assert_eq!(report["over_time"]["points"].as_array().unwrap().len(), 5);
    let labels = &report["labels"];
    assert_eq!(labels["scored"], 28);
    assert_eq!(
        labels["accuracy"], 0.9643,
        "27 of 28: fx-zh-answer-1 judged a refusal"
    );
    let refusal_row = labels["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["label"] == "refusal")
        .unwrap();
    assert_eq!(refusal_row["verdicts"], verdicts(0, 6, 0, 2, 0, 0, 0));

    // Confidence: every record in exactly one bin of its class.
    for (class, bins) in report["confidence"]["by_verdict"].as_object().unwrap() {
        let sum: u64 = bins.as_array().unwrap().iter().map(|b| b.as_u64().unwrap()).sum();
        assert_eq!(Some(sum), report["verdicts"][class].as_u64(), "{class}");
    }

    // The whole report, but the confidence histogram, against the expected file.
    let mut actual = report.clone();
    actual.as_object_mut().unwrap().remove("confidence");
    if std::env::var_os("REFUSAL_GUARD_BLESS").is_some() {
        std::fs::create_dir_all(root().join("tests/audit")).unwrap();
        let text = serde_json::to_string_pretty(&actual).unwrap() + "\n";
        std::fs::write(root().join(GOLDEN), text).unwrap();
    }
    let expected = read_json(&root().join(GOLDEN));
    assert_eq!(
        actual, expected,
        "the fixtures' JSON report changed; if on purpose, re-bless (see the module docs)"
    );

    // The terminal summary says the same.
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with("28 records from 9 inputs: 23 non-answers (82.1%)"),
        "{stdout}"
    );
    for (class, n, share) in [
        ("answer", 5, "17.9%"),
        ("policy_refusal", 7, "25.0%"),
        ("evasion", 2, "7.1%"),
        ("safety_refusal", 2, "7.1%"),
        ("inability", 2, "7.1%"),
        ("provider_block", 7, "25.0%"),
        ("empty", 3, "10.7%"),
    ] {
        let row = stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(class))
            .unwrap_or_else(|| panic!("no summary row for {class}:\n{stdout}"));
        let cells: Vec<&str> = row
            .split(['│', '┆'])
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(cells, [class, &n.to_string(), share], "{row}");
    }
}

#[test]
fn every_record_gets_a_line_with_its_id_and_verdict() {
    let dir = scratch("records");
    let records = dir.join("records.jsonl");
    run_ok(&["audit", FIXTURES, "-q", "--records", records.to_str().unwrap()]);
    let lines: Vec<Value> = std::fs::read_to_string(&records)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 28);
    for line in &lines {
        let keys: Vec<&str> = line.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["id", "verdict", "confidence", "evidence"]);
    }
    let verdict_of = |id: &str| {
        lines
            .iter()
            .find(|l| l["id"] == id)
            .unwrap_or_else(|| panic!("no line for {id}"))["verdict"]
            .clone()
    };
    // In input order: the JSON Lines file comes first (folders are walked by name).
    assert_eq!(lines[0]["id"], "fx-en-answer-1");
    assert_eq!(verdict_of("fx-zh-block-openrouter"), "provider_block");
    assert_eq!(verdict_of("fx-en-stream-cut"), "provider_block");
    assert_eq!(verdict_of("fx-zh-stream-silent"), "empty");
    assert_eq!(verdict_of("fx-zh-stream-refusal"), "policy_refusal");
    assert_eq!(verdict_of("fx-en-safety-1"), "safety_refusal");
    let cut = lines.iter().find(|l| l["id"] == "fx-en-stream-cut").unwrap();
    assert!(
        cut["evidence"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("Output stage"),
        "{cut}"
    );
}

const MIXED: &str = r#"{"id":"ok-1","response":"The capital of France is Paris, a city on the Seine."}
{"id":"broken", "response": 
{"response":"I'm sorry, but I can't discuss this topic."}

{"foo": 1}
{"id":"ok-3","response":"","meta":{"api_error":"{\"error\":{\"code\":\"data_inspection_failed\",\"message\":\"Input data may contain inappropriate content.\"}}"}}
"#;

#[test]
fn bad_lines_are_reported_with_their_line_and_skipped() {
    let dir = scratch("bad");
    let file = dir.join("mixed.jsonl");
    std::fs::write(&file, MIXED).unwrap();
    let report_path = dir.join("report.json");
    let records = dir.join("records.jsonl");
    let out = run_ok(&[
        "audit",
        file.to_str().unwrap(),
        "--json",
        report_path.to_str().unwrap(),
        "--records",
        records.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    let name = file.display().to_string();
    assert!(stderr.contains(&format!("{name}:2: not JSON")), "{stderr}");
    assert!(
        stderr.contains(&format!("{name}:5: neither a record")),
        "{stderr}"
    );
    let report = read_json(&report_path);
    assert_eq!(report["records"], 3);
    assert_eq!(report["bad_records"], 2);
    assert_eq!(report["bad"][0]["file"], name.as_str());
    assert_eq!(report["bad"][0]["line"], 2);
    assert_eq!(report["bad"][1]["line"], 5);
    assert_eq!(report["verdicts"], verdicts(1, 1, 0, 0, 0, 1, 0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("2 bad records skipped"), "{stdout}");
    // A record without an id is named by its line.
    let ids: Vec<String> = std::fs::read_to_string(&records)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids, ["ok-1".to_string(), format!("{name}:3"), "ok-3".to_string()]);
}

#[test]
fn strict_stops_at_the_first_bad_line() {
    let dir = scratch("strict");
    let file = dir.join("mixed.jsonl");
    std::fs::write(&file, MIXED).unwrap();
    let report_path = dir.join("report.json");
    let out = run(&[
        "audit",
        "--strict",
        file.to_str().unwrap(),
        "--json",
        report_path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&format!("{}:2: not JSON", file.display())),
        "{stderr}"
    );
    assert!(stderr.contains("--strict"), "{stderr}");
    assert!(!stderr.contains(":5:"), "stopped at the first: {stderr}");
    assert!(!report_path.exists(), "no report after a strict stop");
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn verdicts_of(args: &[&str], stdin: Option<Vec<u8>>, dir: &Path) -> Value {
    let report_path = dir.join("r.json");
    let _ = std::fs::remove_file(&report_path);
    let mut cmd = bin();
    cmd.args(args)
        .args(["-q", "--json", report_path.to_str().unwrap()])
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        std::thread::spawn(move || pipe.write_all(&bytes).unwrap());
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = read_json(&report_path);
    assert_eq!(report["bad_records"], 0);
    report["verdicts"].clone()
}

#[test]
fn gzip_files_stdin_and_gzip_on_stdin_read_like_the_plain_file() {
    let dir = scratch("gzip");
    let plain = std::fs::read(root().join(CHAT_LOG)).unwrap();
    let gz = dir.join("chat-log.jsonl.gz");
    std::fs::write(&gz, gzip(&plain)).unwrap();
    let expected = verdicts_of(&["audit", CHAT_LOG], None, &dir);
    assert_eq!(expected, verdicts(4, 5, 2, 2, 2, 3, 2));
    assert_eq!(
        verdicts_of(&["audit", gz.to_str().unwrap()], None, &dir),
        expected
    );
    assert_eq!(verdicts_of(&["audit", "-"], Some(plain.clone()), &dir), expected);
    assert_eq!(verdicts_of(&["audit", "-"], Some(gzip(&plain)), &dir), expected);
}

#[test]
fn globs_and_folders_expand_to_files() {
    let dir = scratch("glob");
    let sse = verdicts_of(&["audit", "fixtures/audit/dashscope/*.sse"], None, &dir);
    assert_eq!(sse, verdicts(0, 1, 0, 0, 0, 1, 1));
    let bodies = verdicts_of(&["audit", "fixtures/audit/dashscope"], None, &dir);
    assert_eq!(bodies, verdicts(1, 2, 0, 0, 0, 4, 1));
    let out = run(&["audit", "fixtures/audit/nothing-*.jsonl"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no file matches"));
}

#[test]
fn markdown_goes_to_stdout_with_dash() {
    let out = run_ok(&["audit", FIXTURES, "--markdown", "-"]);
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(md.starts_with("# refusal-guard audit\n"), "{md}");
    assert!(md.contains("## Labels against verdicts"), "{md}");
    let row = |l: &str| -> Vec<String> {
        l.split('|')
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect()
    };
    assert!(
        md.lines().any(|l| row(l) == ["provider_block", "7", "25.0%"]),
        "{md}"
    );
}

/// The library's pipeline hands outcomes back in input order whatever the worker count,
/// and the counts do not depend on it.
#[test]
fn outcomes_come_back_in_input_order_on_any_number_of_workers() {
    let inputs = input::resolve(&[root().join(FIXTURES).display().to_string()]).unwrap();
    let ids = |workers: usize, batch: usize| {
        let options = AuditOptions {
            workers,
            batch,
            ..AuditOptions::default()
        };
        let mut ids = Vec::new();
        let tally = audit::audit(&inputs, &options, |outcome, _| {
            if let Outcome::Judged(j) = outcome {
                ids.push((j.id.clone(), j.verdict.class()));
            }
            Ok(())
        })
        .unwrap();
        (ids, tally.verdicts)
    };
    let one = ids(1, 256);
    assert_eq!(one.0.len(), 28);
    assert_eq!(ids(4, 1), one);
    assert_eq!(ids(3, 7), one);
}

/// A detector that panics on one answer.
struct PanicsOn(&'static str);

#[async_trait::async_trait]
impl refusal_guard::detect::Detector for PanicsOn {
    fn name(&self) -> &str {
        "panics_on"
    }

    async fn detect(
        &self,
        observation: &refusal_guard::detect::Observation<'_>,
    ) -> Vec<refusal_guard::verdict::Evidence> {
        assert!(observation.text != self.0, "boom");
        Vec::new()
    }
}

/// A record that makes a detector panic is a bad record, not the end of the run; a
/// byte-order mark before the first line is not an error.
#[test]
fn a_panicking_detector_costs_one_record_not_the_run() {
    let dir = scratch("panic");
    let file = dir.join("rows.jsonl");
    std::fs::write(
        &file,
        "\u{feff}{\"id\":\"a\",\"response\":\"fine\"}\n{\"id\":\"b\",\"response\":\"explode\"}\n{\"id\":\"c\",\"response\":\"fine too\"}\n",
    )
    .unwrap();
    let inputs = input::resolve(&[file.display().to_string()]).unwrap();
    let options = AuditOptions {
        detectors: refusal_guard::detect::Detectors::empty().with(PanicsOn("explode")),
        ..AuditOptions::default()
    };
    let tally = audit::audit(&inputs, &options, |_, _| Ok(())).unwrap();
    assert_eq!(tally.records, 2);
    assert_eq!(tally.bad, 1);
    assert_eq!(tally.bad_kept[0].at.line, Some(2));
    assert!(
        tally.bad_kept[0].error.contains("panicked"),
        "{}",
        tally.bad_kept[0].error
    );
}
