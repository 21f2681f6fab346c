//! The one-shot commands (`eval`, `models`, `audit`) on input a user gets wrong: each says
//! what is wrong and exits 1, and none drops records without saying so; and their output,
//! piped into a reader that goes away (`| head`), ends them quietly instead of in a panic.
//! The real binary, with an empty model cache (the embedded default answers).

use crate::common;

use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    common::bin_without_models()
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("the binary runs")
}

/// Runs `args`, expects exit 1 with an error naming every one of `names`.
fn fails_naming(args: &[&str], names: &[&str]) {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {}\n{err}", out.status);
    for name in names {
        assert!(err.contains(name), "{args:?}: the error names {name:?}: {err}");
    }
    assert!(!err.contains("panicked"), "{args:?}: {err}");
}

/// The scored records of a file in `eval`'s report: the `all` row's record count.
fn scored(report: &str) -> usize {
    let row = report
        .lines()
        .find(|l| l.starts_with("| all "))
        .unwrap_or_else(|| panic!("no `all` row: {report}"));
    row.split('|').nth(2).unwrap().trim().parse().unwrap()
}

/// The audit fixtures are labeled with verdict class names (`policy_refusal`,
/// `provider_block`, `empty`…); `eval` scores them as `audit` does, not 9 of the 20.
#[test]
fn eval_scores_verdict_class_labels_as_audit_does() {
    let out = run(&["eval", "--tier", "none", "fixtures/audit/chat-log.jsonl"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(scored(&report), 20, "{report}");
    assert!(!report.contains("excluded by the mapping"), "{report}");
}

/// A label neither the mapping nor the class names know is named with its count, not
/// only counted.
#[test]
fn eval_names_the_labels_it_does_not_know() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("odd.jsonl");
    std::fs::write(
        &file,
        "{\"id\":\"a\",\"response\":\"Sure, here it is.\",\"label\":\"refusl\"}\n\
         {\"id\":\"b\",\"response\":\"Sure, here it is.\",\"label\":\"refusl\"}\n\
         {\"id\":\"c\",\"response\":\"I can't help with that.\",\"label\":\"refusal\"}\n",
    )
    .unwrap();
    let out = run(&["eval", "--tier", "none", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("excluded by the mapping: 2") && report.contains("\"refusl\" 2"),
        "{report}"
    );
}

/// The audit's headline over records whose labels map to nothing says none was scored,
/// not "0.0% agree".
#[test]
fn audit_says_when_no_label_was_scored() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("odd.jsonl");
    std::fs::write(
        &file,
        "{\"id\":\"a\",\"response\":\"Sure.\",\"label\":\"refusl\"}\n",
    )
    .unwrap();
    let out = run(&["audit", "--tier", "none", file.to_str().unwrap()]);
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        summary.contains("labels: none scored (1 labeled records") && !summary.contains("0.0% agree"),
        "{summary}"
    );
}

#[test]
fn wrong_paths_and_values_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().to_str().unwrap();
    fails_naming(&["eval", "--tier", "none", folder], &[folder, "a folder"]);
    fails_naming(
        &["models", "eval", "--datasets", "/no/such/folder"],
        &["/no/such/folder", "not a folder"],
    );
    fails_naming(
        &["models", "eval", "--datasets", folder],
        &[folder, "none of the shared datasets"],
    );
    fails_naming(
        &["eval", "--tier", "ngram@2", "fixtures/audit/chat-log.jsonl"],
        &["ngram@2", "bad threshold"],
    );
    fails_naming(
        &["audit", "--tier", "e5@nan", "fixtures/audit/chat-log.jsonl"],
        &["e5@nan", "bad threshold"],
    );
    fails_naming(
        &[
            "audit",
            "--tier",
            "none",
            "--tier",
            "ngram",
            "fixtures/audit/chat-log.jsonl",
        ],
        &["\"none\"", "stands alone"],
    );
    fails_naming(
        &["models", "list", "--manifest", "/no/such/manifest.toml"],
        &["/no/such/manifest.toml"],
    );
    let out = run(&["models", "list", "--manifest", "/no/such/manifest.toml"]);
    assert!(out.stdout.is_empty(), "nothing printed before the error");
}

/// Empty input is not an answer the models should read (they called it one, 0.998).
#[test]
fn classify_refuses_an_empty_answer() {
    let out = bin()
        .args(["models", "classify"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no answer on standard input"), "{err}");
}

/// `eval … | head -1`: the reader is gone before the report is written. The command ends by
/// SIGPIPE, as `cat` would, not in a panic (exit 101 and a message on stderr before).
#[cfg(unix)]
#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let mut child = bin()
        .args(["eval", "--tier", "none", "fixtures/audit/chat-log.jsonl"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{}: {err}", out.status);
    assert!(!err.contains("panicked"), "{err}");
}
