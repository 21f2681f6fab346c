//! The pattern scan on varied real answers, against the design it replaced, in one run.
//!
//! `benches/patterns.rs` times the scan on a few repeated texts, where every automaton is
//! warm. Real traffic is varied: a lazy DFA meets new states on new texts, in Chinese,
//! Finnish and long essays. This bench takes answers from the shared response files
//! (sampled by a seeded hash of their ids, so every machine reads the same ones) and times,
//! per answer, on one core:
//!
//! - `one set`: the previous design, one [`regex::RegexSet`] of every rule and then each
//!   matching rule's `find_iter` (hits only, no weighing);
//! - `scan`: [`Patterns::scan`], the prefilter design (literal prefixes in one
//!   Aho-Corasick pass, each rule tried only where one occurs) with the weighing.
//!
//! Each over the first half of the answers (a cold process) and then over the second half
//! (after a thousand answers). Run: `cargo bench --bench pattern_scan`
//! (`RG_BENCH_N`, default 500 answers per file).

mod support;

use std::path::Path;

use refusal_guard::detect::patterns::{lexicon, Patterns};

const FILES: [&str; 4] = [
    "speechmap_criticism_nonqwen.jsonl",
    "gptfuzz_responses.jsonl",
    "jade_v3_zh.jsonl",
    "do_not_answer_en.jsonl",
];

fn sample(path: &Path, n: usize) -> Vec<String> {
    let records = support::in_seeded_order(path, 11).unwrap_or_else(|e| panic!("{e}"));
    records.into_iter().take(n).map(|r| r.response).collect()
}

/// Mean CPU milliseconds per answer of `f` over `texts`.
fn cpu_ms(texts: &[String], mut f: impl FnMut(&str) -> usize) -> (f64, usize) {
    let start = support::process_cpu_ns();
    let mut found = 0;
    for t in texts {
        found += f(t);
    }
    let ns = support::process_cpu_ns().saturating_sub(start);
    (ns as f64 / 1e6 / texts.len().max(1) as f64, found)
}

fn main() {
    support::one_core_setup();
    let Some(dir) = support::datasets_or_skip("pattern_scan") else {
        return;
    };
    let n = support::env("RG_BENCH_N", 500usize);
    // Interleaved, so both halves hold every file alike.
    let per_file: Vec<Vec<String>> = FILES.iter().map(|f| sample(&dir.join(f), n)).collect();
    let mut texts = Vec::new();
    for i in 0..n {
        texts.extend(per_file.iter().filter_map(|v| v.get(i).cloned()));
    }
    let bytes: usize = texts.iter().map(String::len).sum();
    let (cold, warm) = texts.split_at(texts.len() / 2);

    let expanded: Vec<String> = lexicon::builtin_rules()
        .iter()
        .map(|r| lexicon::expand(r.pattern))
        .collect();
    let set = regex::RegexSetBuilder::new(&expanded)
        .size_limit(64 << 20)
        .dfa_size_limit(64 << 20)
        .build()
        .expect("the rules compile");
    let each: Vec<regex::Regex> = expanded
        .iter()
        .map(|p| regex::Regex::new(p).expect("rule compiles"))
        .collect();
    let one_set = |text: &str| {
        let lowered = text.to_ascii_lowercase();
        set.matches(&lowered)
            .iter()
            .map(|r| each[r].find_iter(&lowered).count())
            .sum::<usize>()
    };
    let patterns = Patterns::from_rules(lexicon::builtin_rules()).expect("the rules compile");
    let scan = |text: &str| patterns.scan(text).len();

    println!(
        "pattern scan: {} answers ({} per file, {} bytes on average), CPU ms per answer, one core",
        texts.len(),
        n,
        bytes / texts.len().max(1)
    );
    println!("{:>10} {:>12} {:>12}", "design", "first half", "second half");
    let (a_cold, _) = cpu_ms(cold, one_set);
    let (a_warm, _) = cpu_ms(warm, one_set);
    println!("{:>10} {a_cold:>12.3} {a_warm:>12.3}", "one set");
    let (b_cold, _) = cpu_ms(cold, scan);
    let (b_warm, _) = cpu_ms(warm, scan);
    println!("{:>10} {b_cold:>12.3} {b_warm:>12.3}", "scan");
    println!(
        "one set / scan: {:.2}x on the first half, {:.2}x on the second",
        a_cold / b_cold.max(1e-9),
        a_warm / b_warm.max(1e-9)
    );
}
