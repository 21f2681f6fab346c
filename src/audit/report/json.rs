//! The report as JSON, for machines: the [`Report`] value itself, pretty-printed.
//!
//! Field names are the contract (see [`super::REPORT_VERSION`]); every rate is a fraction
//! rounded to four decimals, every count an integer, every verdict class appears in every
//! `verdicts` object (zeros included) so that consumers never test for missing keys.

use super::Report;

/// The report as pretty-printed JSON, with a final newline.
pub fn render(report: &Report) -> String {
    let mut out = serde_json::to_string_pretty(report).expect("a report always serializes");
    out.push('\n');
    out
}
