//! The report as Markdown (GitHub-flavoured): the terminal tables in comfy-table's Markdown
//! preset, under headings, for pasting into an issue or a pull request.

use std::fmt::Write;

use comfy_table::presets::ASCII_MARKDOWN;

use super::summary::{headline, tables};
use super::Report;

/// The Markdown report.
pub fn render(report: &Report) -> String {
    let mut out = String::from("# refusal-guard audit\n\n");
    let _ = writeln!(out, "{}.\n", headline(report));
    let _ = writeln!(out, "Inputs: {}.", inputs(&report.inputs));
    for t in tables(report, ASCII_MARKDOWN) {
        let _ = writeln!(out, "\n## {}\n\n{}", t.title, t.table);
    }
    if !report.bad.is_empty() {
        let _ = writeln!(out, "\n## Bad records ({} skipped)\n", report.bad_records);
        for bad in &report.bad {
            let _ = writeln!(out, "- `{}`: {}", bad.at, bad.error.replace('\n', " "));
        }
    }
    out
}

fn inputs(names: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut s: Vec<String> = names.iter().take(SHOWN).map(|n| format!("`{n}`")).collect();
    if names.len() > SHOWN {
        s.push(format!("and {} more", names.len() - SHOWN));
    }
    s.join(", ")
}
