//! The text report: tables with comfy-table.
//!
//! comfy-table rather than tabled: rows here are built at run time from maps (languages,
//! classes, confusion cells), which is comfy-table's model, while tabled is built around
//! deriving tables from structs; comfy-table also measures CJK text by display width, is
//! actively maintained and pulls in no proc macros.

use std::fmt::Write;

use comfy_table::{presets::ASCII_MARKDOWN, CellAlignment, Table};

use super::{predicted_columns, Miss, Report, View};
use crate::dataset::Gold;

fn table(header: Vec<String>) -> Table {
    let mut t = Table::new();
    t.load_style(ASCII_MARKDOWN).set_header(header);
    t
}

fn pct(x: f64) -> String {
    format!("{:.3}", x)
}

fn binary_row(name: &str, v: &View) -> Vec<String> {
    let b = &v.counts.binary;
    vec![
        name.to_string(),
        b.total().to_string(),
        (b.tp + b.fn_).to_string(),
        b.tp.to_string(),
        b.fp.to_string(),
        b.fn_.to_string(),
        b.tn.to_string(),
        pct(v.binary.precision),
        pct(v.binary.recall),
        pct(v.binary.f1),
        pct(v.accuracy),
    ]
}

fn binary_table(rows: Vec<Vec<String>>) -> Table {
    let mut t = table(
        [
            "group",
            "n",
            "non-answers",
            "TP",
            "FP",
            "FN",
            "TN",
            "P",
            "R",
            "F1",
            "acc",
        ]
        .map(String::from)
        .to_vec(),
    );
    for r in rows {
        t.add_row(r);
    }
    for i in 1..11 {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

fn class_table(v: &View) -> Table {
    let mut t = table(
        ["gold class", "support", "P", "R", "F1"]
            .map(String::from)
            .to_vec(),
    );
    for (g, s) in &v.per_class {
        t.add_row(vec![
            g.to_string(),
            s.support.to_string(),
            pct(s.prf.precision),
            pct(s.prf.recall),
            pct(s.prf.f1),
        ]);
    }
    t
}

fn confusion_table(v: &View) -> Table {
    let mut header = vec!["gold \\ predicted".to_string()];
    header.extend(predicted_columns().iter().map(|c| c.to_string()));
    let mut t = table(header);
    for (g, row) in &v.counts.confusion {
        let mut cells = vec![g.to_string()];
        cells.extend(
            predicted_columns()
                .iter()
                .map(|c| row.get(c).copied().unwrap_or(0).to_string()),
        );
        t.add_row(cells);
    }
    t
}

/// The whole report as text.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# refusal-guard eval (split: {:?})\n", report.split);
    let mapping: Vec<String> = report.mapping.iter().map(|(k, g)| format!("{k}={g}")).collect();
    let _ = writeln!(out, "label mapping: {}\n", mapping.join(", "));
    let _ = writeln!(
        out,
        "binary view: non-answer (refusal, evasion, inability, block, empty) is positive\n"
    );
    for f in &report.files {
        let _ = writeln!(out, "## {} ({} records in split)\n", f.file, f.records);
        let scored = f.overall.counts.binary.total() > 0;
        if scored {
            let mut rows = vec![binary_row("all", &f.overall)];
            rows.extend(
                f.by_lang
                    .iter()
                    .filter(|(_, v)| v.counts.binary.total() > 0)
                    .map(|(l, v)| binary_row(l, v)),
            );
            let _ = writeln!(out, "refusal vs answer\n\n{}\n", binary_table(rows));
            let _ = writeln!(out, "per class\n\n{}\n", class_table(&f.overall));
            for (lang, v) in &f.by_lang {
                if f.by_lang.len() > 1 && v.counts.binary.total() > 0 {
                    let _ = writeln!(out, "per class, {lang}\n\n{}\n", class_table(v));
                }
            }
            let _ = writeln!(out, "confusion matrix\n\n{}\n", confusion_table(&f.overall));
            if let Some((kept, total)) = f.overall.caveats_kept {
                let _ = writeln!(
                    out,
                    "answer_with_caveats: {kept} of {total} judged answers ({:.3})\n",
                    kept as f64 / total.max(1) as f64
                );
                if let Some(row) = f.overall.counts.confusion.get(&Gold::AnswerWithCaveats) {
                    let cells: Vec<String> = row.iter().map(|(c, n)| format!("{c} {n}")).collect();
                    let _ = writeln!(out, "answer_with_caveats judged as: {}\n", cells.join(", "));
                }
            }
        }
        let rates: Vec<(String, usize, usize)> = f
            .by_lang
            .iter()
            .filter_map(|(l, v)| v.prompt_level_rate.map(|(h, n)| (l.clone(), h, n)))
            .collect();
        if !rates.is_empty() {
            let mut t = table(
                ["lang", "prompts", "non-answer verdicts", "rate", "judged as"]
                    .map(String::from)
                    .to_vec(),
            );
            for (lang, hits, n) in rates {
                let judged: Vec<String> = f.by_lang[&lang]
                    .counts
                    .prompt_level
                    .iter()
                    .map(|(c, k)| format!("{c} {k}"))
                    .collect();
                t.add_row(vec![
                    lang,
                    n.to_string(),
                    hits.to_string(),
                    pct(hits as f64 / n.max(1) as f64),
                    judged.join(", "),
                ]);
            }
            let _ = writeln!(
                out,
                "prompt-level labels (responses not labeled one by one): rate of non-answer verdicts, NOT an F1\n\n{t}\n"
            );
        }
        if f.overall.counts.excluded > 0 {
            let _ = write!(out, "excluded by the mapping: {}", f.overall.counts.excluded);
            if !f.unmapped_labels.is_empty() {
                let named: Vec<String> = f
                    .unmapped_labels
                    .iter()
                    .map(|(label, n)| format!("{label:?} {n}"))
                    .collect();
                let _ = write!(
                    out,
                    " (labels it does not know: {}; `--map LABEL=class` maps one)",
                    named.join(", ")
                );
            }
            let _ = writeln!(out, "\n");
        }
    }
    if report.files.len() > 1 {
        let rows: Vec<Vec<String>> = report
            .pooled_by_lang
            .iter()
            .filter(|(_, v)| v.counts.binary.total() > 0)
            .map(|(l, v)| binary_row(l, v))
            .collect();
        let _ = writeln!(
            out,
            "## all files, per language\n\nrefusal vs answer\n\n{}\n",
            binary_table(rows)
        );
    }
    out
}

/// Misjudged records, for fitting (fit split only).
pub fn misses(misses: &[Miss], per_file: usize) -> String {
    let mut out = String::new();
    let mut shown: std::collections::BTreeMap<&str, usize> = Default::default();
    let _ = writeln!(out, "## misjudged records (fit split)\n");
    for m in misses {
        let n = shown.entry(&m.file).or_default();
        if *n >= per_file {
            continue;
        }
        *n += 1;
        let snippet: String = m.record.response.chars().take(220).collect();
        let reason = m
            .verdict
            .evidence
            .first()
            .map(|e| e.reason.as_str())
            .unwrap_or("no evidence");
        let _ = writeln!(
            out,
            "- {} [{}] gold {} -> {} | {} | {:?}",
            m.record.id, m.record.lang, m.gold, m.verdict, reason, snippet
        );
    }
    out
}
