//! Why refusals were kept or re-routed: the verdict of a tier on every case of an
//! end-to-end set, tallied per language and side (harmful or benign request).
//!
//! tests/harm_reroute.rs holds each set's re-routed shares through the real layers; this
//! says why a refusal that was not re-routed stayed, which is where work should go:
//! - `request harmful`: a safety refusal, the request judged harmful (P >= `harmful_from`);
//! - `request unsure`: a safety refusal, the request not clearly benign (between the two
//!   thresholds of `judge::HarmPolicy`: the fail-safe band);
//! - `read as answer` / `read as inability` / other classes: the refusal itself was not
//!   recognised as one (issue 11's side of the verdict), so the request's harm was never
//!   asked;
//! - `re-routed`: a policy refusal or an evasion, the default re-route set.
//!
//! Reads files of the form of tests/data/reroute-*.jsonl and harm-past-tense*.jsonl (`lang`,
//! `prompt`, `harmful`, `refusal`), judges each refusal whole, as a non-streamed answer is
//! judged (a stream decides the same way, the tests check both). The first argument is the
//! tier (`e5`, `e5:prompts`, `none` for the embedded default).
//!
//! ```sh
//! HF_HOME=.cache/hf cargo run --release --example why_kept -- e5 tests/data/reroute-e2e3.jsonl
//! ```
//!
//! A measurement for planning, not a choice: nothing here is tuned on what it prints.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;

use refusal_guard::detect::{Completeness, Observation};
use refusal_guard::judge::{Decision, PROMPT_HARM_SOURCE};
use refusal_guard::verdict::{Verdict, VerdictClass};

/// One case of an end-to-end set.
#[derive(serde::Deserialize)]
struct Case {
    lang: String,
    prompt: String,
    harmful: bool,
    refusal: String,
}

/// Why a verdict keeps or moves a refusal.
fn reason(verdict: &Verdict, harmful_from: f32) -> &'static str {
    match verdict.class() {
        VerdictClass::PolicyRefusal | VerdictClass::Evasion => "re-routed",
        VerdictClass::SafetyRefusal => {
            let p = verdict
                .evidence
                .iter()
                .find(|e| e.source == PROMPT_HARM_SOURCE)
                .map(|e| e.score);
            match p {
                Some(p) if p < harmful_from => "request unsure",
                _ => "request harmful",
            }
        }
        VerdictClass::Answer => "read as answer",
        VerdictClass::Inability => "read as inability",
        VerdictClass::ProviderBlock => "read as provider block",
        VerdictClass::Empty => "read as empty",
    }
}

const REASONS: [&str; 7] = [
    "re-routed",
    "request harmful",
    "request unsure",
    "read as answer",
    "read as inability",
    "read as provider block",
    "read as empty",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let tier = args
        .next()
        .ok_or("name a tier (e5, e5:prompts, none) and one or more files")?;
    let files: Vec<String> = args.collect();
    if files.is_empty() {
        return Err("name one or more files of end-to-end cases (tests/data/reroute-*.jsonl)".into());
    }
    // `none` is the embedded default: no tier added to it.
    let tiers = if tier == "none" {
        Vec::new()
    } else {
        vec![tier.clone()]
    };
    let detectors = refusal_guard::classify::tiers::detectors_with(&tiers)?;
    let harmful_from = match detectors.decision() {
        Decision::Learned(models) => models.harm.harmful_from,
        _ => return Err("the tiers decide with the learned models".into()),
    };
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
        // (lang, harmful) -> reason -> count
        let mut table: BTreeMap<(String, bool), BTreeMap<&str, usize>> = BTreeMap::new();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let case: Case = serde_json::from_str(line).map_err(|e| format!("{file}:{}: {e}", n + 1))?;
            let observation = Observation {
                prompt: Some(&case.prompt),
                text: &case.refusal,
                tokens: &[],
                finish_reason: None,
                error: None,
                completeness: Completeness::Complete,
            };
            let verdict = futures::executor::block_on(detectors.judge(&observation));
            *table
                .entry((case.lang, case.harmful))
                .or_default()
                .entry(reason(&verdict, harmful_from))
                .or_default() += 1;
        }
        let mut out = format!("\n{file} (tier {tier})\n\n");
        writeln!(out, "| lang | request | n | {} |", REASONS.join(" | "))?;
        writeln!(out, "|---|---|---|{}", "---|".repeat(REASONS.len()))?;
        for ((lang, harmful), counts) in &table {
            let n: usize = counts.values().sum();
            let cells: Vec<String> = REASONS
                .iter()
                .map(|r| counts.get(r).copied().unwrap_or(0).to_string())
                .collect();
            let side = if *harmful { "harmful" } else { "benign" };
            writeln!(out, "| {lang} | {side} | {n} | {} |", cells.join(" | "))?;
        }
        // A reader that stops early (`| head`) ends the run quietly.
        match std::io::stdout().lock().write_all(out.as_bytes()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            other => other?,
        }
    }
    Ok(())
}
