//! The terminal summary: the report's tables, drawn with comfy-table.
//!
//! comfy-table (already the `eval` tables' crate) builds rows at run time from maps and
//! measures CJK text by display width, which the language and model names need. The same
//! tables, in comfy-table's Markdown preset, make up most of [`super::markdown`].

use std::fmt::Write;
use std::time::Duration;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, Table, TableStyle};

use super::{Group, Report};
use crate::verdict::VerdictClass;

/// How the run went (printed on the terminal, never written into report files).
#[derive(Debug, Clone, Copy)]
pub struct RunStats {
    pub elapsed: Duration,
    pub workers: usize,
}

impl RunStats {
    /// Records per second.
    pub fn rows_per_second(&self, records: u64) -> f64 {
        records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A titled table.
pub struct Titled {
    pub title: String,
    pub table: Table,
}

fn table(preset: TableStyle, header: Vec<String>, right_from: usize) -> Table {
    let mut t = Table::new();
    t.load_style(preset).set_header(header);
    let columns = t.column_count();
    for i in right_from..columns {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// The overall verdict counts.
pub fn verdicts_table(report: &Report, preset: TableStyle) -> Table {
    let mut t = table(
        preset,
        vec!["verdict".into(), "records".into(), "share".into()],
        1,
    );
    let total = report.records;
    for class in VerdictClass::ALL {
        let n = report.verdicts.get(class);
        t.add_row(vec![
            class.as_str().to_string(),
            n.to_string(),
            super::Rate(super::ratio(n, total)).to_string(),
        ]);
    }
    t.add_row(vec![
        "non-answers".to_string(),
        report.verdicts.non_answers().to_string(),
        report.non_answer_rate.to_string(),
    ]);
    t
}

/// One row per group, one column per verdict class seen.
pub fn groups_table(what: &str, groups: &[Group], classes: &[VerdictClass], preset: TableStyle) -> Table {
    let mut header = vec![what.to_string(), "records".into(), "non-answers".into()];
    header.extend(classes.iter().map(|c| c.as_str().to_string()));
    let mut t = table(preset, header, 1);
    for g in groups {
        let mut row = vec![g.name.clone(), g.total.to_string(), g.non_answer_rate.to_string()];
        row.extend(classes.iter().map(|c| g.verdicts.get(*c).to_string()));
        t.add_row(row);
    }
    t
}

/// Label rows against verdict columns.
pub fn confusion_table(report: &Report, preset: TableStyle) -> Option<Table> {
    let labels = report.labels.as_ref()?;
    let mut header = vec!["label \\ verdict".to_string(), "records".into(), "agree".into()];
    header.extend(VerdictClass::ALL.iter().map(|c| c.as_str().to_string()));
    let mut t = table(preset, header, 1);
    for row in &labels.confusion {
        let mut cells = vec![
            row.label.to_string(),
            row.total.to_string(),
            row.agree.to_string(),
        ];
        cells.extend(VerdictClass::ALL.iter().map(|c| row.verdicts.get(*c).to_string()));
        t.add_row(cells);
    }
    Some(t)
}

/// Every table of the report, titled, in reading order.
pub fn tables(report: &Report, preset: TableStyle) -> Vec<Titled> {
    let classes = report.classes_seen();
    let mut out = vec![
        Titled {
            title: "Verdicts".into(),
            table: verdicts_table(report, preset),
        },
        Titled {
            title: "By provider".into(),
            table: groups_table("provider", &report.by_provider, &classes, preset),
        },
        Titled {
            title: "By model".into(),
            table: groups_table("model", &report.by_model, &classes, preset),
        },
        Titled {
            title: "By language".into(),
            table: groups_table("language", &report.by_lang, &classes, preset),
        },
    ];
    if let Some(t) = &report.over_time {
        let groups: Vec<Group> = t.points.iter().map(|p| p.group.clone()).collect();
        out.push(Titled {
            title: format!(
                "Over time (per {}, UTC; {} undated)",
                t.bucket.as_str(),
                t.undated
            ),
            table: groups_table("from", &groups, &classes, preset),
        });
    }
    if let Some(table) = confusion_table(report, preset) {
        out.push(Titled {
            title: "Labels against verdicts".into(),
            table,
        });
    }
    out
}

/// One line saying what was audited.
pub fn headline(report: &Report) -> String {
    let mut s = format!(
        "{} records from {} input{}: {} non-answers ({})",
        report.records,
        report.inputs.len(),
        if report.inputs.len() == 1 { "" } else { "s" },
        report.verdicts.non_answers(),
        report.non_answer_rate,
    );
    if report.bad_records > 0 {
        let _ = write!(s, "; {} bad records skipped", report.bad_records);
    }
    match &report.labels {
        // Agreement over nothing would print as 0.0%, which reads as a score.
        Some(l) if l.scored == 0 => {
            let _ = write!(
                s,
                "; labels: none scored ({} labeled records, none with a label mapped to a class; `--map LABEL=class` maps one)",
                l.excluded
            );
        }
        Some(l) => {
            let _ = write!(
                s,
                "; labels: {} agree on the class, {} on answer vs non-answer ({} scored)",
                l.accuracy, l.non_answer_accuracy, l.scored
            );
        }
        None => {}
    }
    s
}

/// The terminal summary.
pub fn render(report: &Report, run: Option<RunStats>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", headline(report));
    if let Some(run) = run {
        let _ = writeln!(
            out,
            "{:.2} s on {} workers, {:.0} records/s",
            run.elapsed.as_secs_f64(),
            run.workers,
            run.rows_per_second(report.records)
        );
    }
    for t in tables(report, UTF8_FULL_CONDENSED) {
        let _ = writeln!(out, "\n{}\n{}", t.title, t.table);
    }
    if !report.bad.is_empty() {
        let _ = writeln!(out, "\nBad records ({} in all):", report.bad_records);
        for bad in report.bad.iter().take(10) {
            let _ = writeln!(out, "  {bad}");
        }
        if report.bad_records > 10 {
            let _ = writeln!(
                out,
                "  … (see the JSON report for the first {})",
                report.bad.len()
            );
        }
    }
    out
}
