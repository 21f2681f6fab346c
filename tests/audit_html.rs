//! The HTML audit report, rendered by a real browser: headless Chromium parses the page,
//! and the test reads the DOM it built (`--dump-dom`), so what is checked is what a reader
//! sees (SVG elements in the document, not text that merely looks like SVG).
//!
//! For each plot the number of data shapes in the rendered `<svg>` is compared with the
//! JSON report of the same run: one bar per non-zero (group, class) cell, one line per
//! timeline series; axis titles and group names must be there as SVG text.
//!
//! Chromium comes from Debian (`scripts/setup-chromium.sh`, which CI runs first). When it is
//! missing the test fails with that instruction: a skipped browser test would pass silently.

use std::path::{Path, PathBuf};
use std::process::Command;

use regex::Regex;
use serde_json::Value;

const CLASSES: [&str; 7] = [
    "answer",
    "policy_refusal",
    "evasion",
    "safety_refusal",
    "inability",
    "provider_block",
    "empty",
];

fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser"] {
        if let Ok(out) = Command::new("which").arg(name).output() {
            if out.status.success() {
                return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            }
        }
    }
    panic!(
        "headless Chromium is required for the HTML report test and was not found on PATH: \
         run scripts/setup-chromium.sh (apt-get update && apt-get install -y chromium, as root)"
    );
}

/// The DOM Chromium builds from a file.
fn dump_dom(page: &Path) -> String {
    let profile = std::env::temp_dir().join(format!("refusal-guard-chromium-{}", std::process::id()));
    std::fs::create_dir_all(&profile).unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The markup of `<figure id="ID">…</figure>` in the DOM.
fn figure<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("<figure id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no figure {id} in the DOM"));
    let end = start + dom[start..].find("</figure>").expect("figure closes");
    &dom[start..end]
}

fn palette() -> Vec<String> {
    CLASSES
        .iter()
        .map(|c| refusal_guard::audit::report::plots::color_hex(c.parse().unwrap()).to_ascii_lowercase())
        .collect()
}

/// Shapes of a kind (`rect`, `polyline`) whose fill or stroke is a data colour.
fn data_shapes(svg: &str, tag: &str, attr: &str, colours: &[String]) -> usize {
    let re = Regex::new(&format!(r#"<{tag}\b[^>]*\b{attr}="(#[0-9a-fA-F]{{6}})""#)).unwrap();
    re.captures_iter(svg)
        .filter(|c| colours.contains(&c[1].to_ascii_lowercase()))
        .count()
}

/// The texts of the SVG's `<text>` elements.
fn texts(svg: &str) -> Vec<String> {
    let re = Regex::new(r"(?s)<text\b[^>]*>(.*?)</text>").unwrap();
    re.captures_iter(svg).map(|c| c[1].trim().to_string()).collect()
}

fn nonzero_cells(groups: &Value) -> usize {
    groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            CLASSES
                .iter()
                .filter(|c| g["verdicts"][**c].as_u64().unwrap() > 0)
                .count()
        })
        .sum()
}

#[test]
fn the_html_report_renders_its_plots_in_a_browser() {
    let dir = std::env::temp_dir().join(format!("refusal-guard-audit-html-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (html, json) = (dir.join("report.html"), dir.join("report.json"));
    let out = crate::common::bin_without_models()
        .args(["audit", "fixtures/audit", "-q", "--html"])
        .arg(&html)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let dom = dump_dom(&html);
    let colours = palette();

    assert!(dom.contains("<h1>refusal-guard audit</h1>"), "the page parsed");
    assert_eq!(dom.matches("<svg").count(), 5, "five plots");

    for (id, key, axis, names) in [
        (
            "plot-by-provider",
            "by_provider",
            "provider",
            vec!["dashscope", "openai", "openrouter"],
        ),
        (
            "plot-by-model",
            "by_model",
            "model",
            vec!["qwen-plus", "qwen-max", "gpt-4o-mini"],
        ),
        ("plot-by-lang", "by_lang", "language", vec!["en", "zh"]),
    ] {
        let svg = figure(&dom, id);
        let expected = nonzero_cells(&report[key]);
        assert!(expected > 0);
        assert_eq!(
            data_shapes(svg, "rect", "fill", &colours),
            expected,
            "{id}: one bar per non-zero cell"
        );
        let t = texts(svg);
        for label in [axis, "share of records (%)", "0%", "100%"].iter().chain(&names) {
            assert!(
                t.iter().any(|x| x == label),
                "{id}: axis text {label:?} missing from {t:?}"
            );
        }
    }

    // Confidence: one bar per non-zero (bin, class) cell.
    let svg = figure(&dom, "plot-confidence");
    let cells: usize = report["confidence"]["by_verdict"]
        .as_object()
        .unwrap()
        .values()
        .map(|bins| {
            bins.as_array()
                .unwrap()
                .iter()
                .filter(|b| b.as_u64().unwrap() > 0)
                .count()
        })
        .sum();
    assert_eq!(
        data_shapes(svg, "rect", "fill", &colours),
        cells,
        "confidence bars"
    );
    let t = texts(svg);
    for label in ["confidence", "records", "0.0", "0.5", "1.0"] {
        assert!(
            t.iter().any(|x| x == label),
            "confidence: axis text {label:?} missing from {t:?}"
        );
    }

    // Over time: one line for all non-answers and one per non-answer class seen.
    let svg = figure(&dom, "plot-over-time");
    let mut line_colours = colours.clone();
    line_colours.push(refusal_guard::audit::report::plots::NON_ANSWER_HEX.to_string());
    let seen = CLASSES[1..]
        .iter()
        .filter(|c| report["verdicts"][**c].as_u64().unwrap() > 0)
        .count();
    assert_eq!(
        data_shapes(svg, "polyline", "stroke", &line_colours),
        1 + seen,
        "timeline series"
    );
    let points = report["over_time"]["points"].as_array().unwrap().len();
    assert_eq!(
        data_shapes(svg, "circle", "fill", &line_colours),
        points * (1 + seen),
        "a dot per point and series"
    );
    let t = texts(svg);
    for label in ["time (UTC)", "share of records (%)", "2025-03-03", "2025-03-07"] {
        assert!(
            t.iter().any(|x| x == label),
            "timeline: axis text {label:?} missing from {t:?}"
        );
    }

    // The confusion matrix: one row per label class, plus the header.
    let start = dom.find("<table id=\"confusion\">").expect("a confusion matrix");
    let table = &dom[start..start + dom[start..].find("</table>").unwrap()];
    let rows = report["labels"]["confusion"].as_array().unwrap().len();
    assert_eq!(table.matches("<tr>").count(), rows + 1);
    let _ = std::fs::remove_dir_all(&dir);
}
