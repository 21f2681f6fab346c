//! The report as one self-contained HTML page: tables and inline SVG plots, no script, no
//! external file, so it can be mailed, archived or opened on an air-gapped machine.
//!
//! Sections (each a `<section id=…>`; each plot a `<figure id="plot-…">` holding one
//! `<svg>`): verdicts; by provider, by model and by language (stacked share bars); over time
//! (rates per bucket, when records carry a time); confidence (stacked histogram); labels
//! against verdicts (a shaded confusion matrix, when records are labeled); bad records.

use std::fmt::Write;

use super::plots::{self, color_hex, NON_ANSWER_HEX};
use super::summary::headline;
use super::{Group, Report};
use crate::verdict::VerdictClass;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1000px; color: #222; padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .6rem 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: .25rem .55rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; }
figure { margin: .6rem 0; } figure svg { max-width: 100%; height: auto; }
.legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .9rem; }
.swatch { display: inline-block; width: .9em; height: .9em; margin-right: .3em; vertical-align: -.1em; }
td.agree { font-weight: bold; outline: 2px solid #4c9f70; outline-offset: -2px; }
.muted { color: #777; }
"#;

/// The HTML report.
pub fn render(report: &Report) -> Result<String, String> {
    let classes = report.classes_seen();
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>refusal-guard audit</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>refusal-guard audit</h1>\n<p id=\"headline\">{}</p>\n",
        escape(&headline(report))
    );
    let _ = writeln!(
        h,
        "<p class=\"muted\">Inputs: {}</p>",
        escape(&report.inputs.join(", "))
    );

    section(&mut h, "verdicts", "Verdicts");
    verdicts_table(&mut h, report);
    h.push_str("</section>\n");

    for (id, title, what, groups) in [
        ("by-provider", "By provider", "provider", &report.by_provider),
        ("by-model", "By model", "model", &report.by_model),
        ("by-lang", "By language", "language", &report.by_lang),
    ] {
        section(&mut h, id, title);
        figure(
            &mut h,
            &format!("plot-{id}"),
            &plots::share_bars(groups, &classes, what)?,
        );
        legend(&mut h, classes.iter().map(|c| (c.as_str(), color_hex(*c))));
        groups_table(&mut h, what, groups, &classes);
        h.push_str("</section>\n");
    }

    if let Some(t) = &report.over_time {
        section(&mut h, "over-time", "Over time");
        let _ = writeln!(
            h,
            "<p>Share of each bucket's records that were not answers, per {} (UTC). \
             {} record(s) carry no time and are not shown.</p>",
            t.bucket.as_str(),
            t.undated
        );
        figure(&mut h, "plot-over-time", &plots::timeline(t, &classes)?);
        let series = plots::timeline_series(&classes);
        legend(
            &mut h,
            series.iter().map(|s| match s {
                None => ("all non-answers", NON_ANSWER_HEX),
                Some(c) => (c.as_str(), color_hex(*c)),
            }),
        );
        let groups: Vec<Group> = t.points.iter().map(|p| p.group.clone()).collect();
        groups_table(&mut h, "from", &groups, &classes);
        h.push_str("</section>\n");
    }

    section(&mut h, "confidence", "Confidence");
    h.push_str("<p>How sure the pipeline was of each verdict, in bins of 0.1.</p>\n");
    figure(
        &mut h,
        "plot-confidence",
        &plots::confidence_histogram(&report.confidence, &classes)?,
    );
    legend(&mut h, classes.iter().map(|c| (c.as_str(), color_hex(*c))));
    h.push_str("</section>\n");

    if report.labels.is_some() {
        section(&mut h, "labels", "Labels against verdicts");
        confusion(&mut h, report);
        h.push_str("</section>\n");
    }

    if !report.bad.is_empty() {
        section(&mut h, "bad", "Bad records");
        let _ = writeln!(
            h,
            "<p>{} record(s) could not be read and were skipped.</p>\n<ul>",
            report.bad_records
        );
        for bad in &report.bad {
            let _ = writeln!(
                h,
                "<li><code>{}</code>: {}</li>",
                escape(&bad.at.to_string()),
                escape(&bad.error)
            );
        }
        h.push_str("</ul>\n</section>\n");
    }
    h.push_str("</body>\n</html>\n");
    Ok(h)
}

fn section(h: &mut String, id: &str, title: &str) {
    let _ = writeln!(h, "<section id=\"{id}\">\n<h2>{}</h2>", escape(title));
}

fn figure(h: &mut String, id: &str, svg: &str) {
    let _ = writeln!(h, "<figure id=\"{id}\">\n{svg}\n</figure>");
}

fn legend<'a>(h: &mut String, items: impl Iterator<Item = (&'a str, &'a str)>) {
    h.push_str("<ul class=\"legend\">");
    for (name, hex) in items {
        let _ = write!(
            h,
            "<li><span class=\"swatch\" style=\"background:{hex}\"></span>{}</li>",
            escape(name)
        );
    }
    h.push_str("</ul>\n");
}

fn verdicts_table(h: &mut String, report: &Report) {
    h.push_str("<table>\n<tr><th>verdict</th><th>records</th><th>share</th></tr>\n");
    for class in VerdictClass::ALL {
        let n = report.verdicts.get(class);
        let _ = writeln!(
            h,
            "<tr><td><span class=\"swatch\" style=\"background:{}\"></span>{}</td><td>{n}</td><td>{}</td></tr>",
            color_hex(class),
            class.as_str(),
            super::Rate(super::ratio(n, report.records))
        );
    }
    let _ = writeln!(
        h,
        "<tr><th>non-answers</th><th>{}</th><th>{}</th></tr>\n</table>",
        report.verdicts.non_answers(),
        report.non_answer_rate
    );
}

fn groups_table(h: &mut String, what: &str, groups: &[Group], classes: &[VerdictClass]) {
    let _ = write!(
        h,
        "<table>\n<tr><th>{}</th><th>records</th><th>non-answers</th>",
        escape(what)
    );
    for c in classes {
        let _ = write!(h, "<th>{}</th>", c.as_str());
    }
    h.push_str("</tr>\n");
    for g in groups {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td>",
            escape(&g.name),
            g.total,
            g.non_answer_rate
        );
        for c in classes {
            let _ = write!(h, "<td>{}</td>", g.verdicts.get(*c));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
}

fn confusion(h: &mut String, report: &Report) {
    let Some(labels) = &report.labels else {
        return;
    };
    let _ = writeln!(
        h,
        "<p>{} of {} scored records agree with their label on the class, {} on answer versus \
         non-answer. {} unlabeled, {} with a label that is not scored. Rows: the label; \
         columns: the verdict; a refusal label agrees with either refusal class.</p>",
        labels.accuracy, labels.scored, labels.non_answer_accuracy, labels.unlabeled, labels.excluded
    );
    h.push_str("<table id=\"confusion\">\n<tr><th>label \\ verdict</th>");
    for c in VerdictClass::ALL {
        let _ = write!(h, "<th>{}</th>", c.as_str());
    }
    h.push_str("<th>records</th></tr>\n");
    for row in &labels.confusion {
        let _ = write!(h, "<tr><td>{}</td>", row.label);
        for c in VerdictClass::ALL {
            let n = row.verdicts.get(c);
            let alpha = if row.total == 0 {
                0.0
            } else {
                0.08 + 0.6 * n as f64 / row.total as f64
            };
            let class = if row.label.agrees(c) {
                " class=\"agree\""
            } else {
                ""
            };
            if n == 0 {
                let _ = write!(h, "<td{class}>0</td>");
            } else {
                let _ = write!(
                    h,
                    "<td{class} style=\"background:rgba(48,99,142,{alpha:.2})\">{n}</td>"
                );
            }
        }
        let _ = writeln!(h, "<td>{}</td></tr>", row.total);
    }
    h.push_str("</table>\n");
}
