//! The HTML report's plots, as inline SVG drawn with `plotters`.
//!
//! Why plotters: it is the maintained Rust plotting crate with a pure SVG backend, so the
//! page is static and self-contained (it renders with no script and no network, in a mail
//! client or an air-gapped browser), and with `default-features = false` it compiles no
//! font or bitmap stack (text stays SVG `<text>`, laid out by the browser). `charming`
//! draws with ECharts in JavaScript, which the page would have to embed (about 1 MB) or
//! fetch; hand-writing SVG would mean writing axes, ticks and scales again.
//!
//! Every plot is one `<svg>` of bars (`<rect>`) or lines (`<polyline>`) in the fixed
//! per-class [`color`]s; legends are HTML next to the plot, so each coloured shape in the
//! SVG is data (tests count them).

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Confidence, Group, Timeline};
use crate::verdict::VerdictClass;

/// The colour of a verdict class, as `#rrggbb` (the HTML legend uses the same).
pub fn color_hex(class: VerdictClass) -> &'static str {
    match class {
        VerdictClass::Answer => "#4c9f70",
        VerdictClass::PolicyRefusal => "#d1495b",
        VerdictClass::Evasion => "#edae49",
        VerdictClass::SafetyRefusal => "#8e5ea2",
        VerdictClass::Inability => "#00798c",
        VerdictClass::ProviderBlock => "#30638e",
        VerdictClass::Empty => "#8c8c8c",
    }
}

/// The colour of a verdict class.
pub fn color(class: VerdictClass) -> RGBColor {
    let hex = color_hex(class);
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0);
    RGBColor(byte(1), byte(3), byte(5))
}

/// The colour of the "all non-answers" line of the timeline.
pub const NON_ANSWER_HEX: &str = "#222222";

type Result<T> = std::result::Result<T, String>;

fn err(e: impl std::fmt::Display) -> String {
    format!("plot: {e}")
}

/// Draws into an SVG string of the given size.
fn svg(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<()>,
) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

/// Width, in pixels, of a label area holding names up to this many characters.
fn label_width(names: &[String]) -> u32 {
    let longest = names.iter().map(|n| n.chars().count()).max().unwrap_or(4);
    (longest.clamp(4, 40) as u32) * 7 + 20
}

fn shorten(name: &str) -> String {
    const MAX: usize = 40;
    if name.chars().count() <= MAX {
        name.to_string()
    } else {
        let mut s: String = name.chars().take(MAX - 1).collect();
        s.push('…');
        s
    }
}

/// Horizontal bars, one per group, split by verdict class as shares of the group's
/// records. One `<rect>` per non-zero (group, class) cell.
pub fn share_bars(groups: &[Group], classes: &[VerdictClass], what: &str) -> Result<String> {
    let names: Vec<String> = groups.iter().map(|g| shorten(&g.name)).collect();
    let n = groups.len().max(1);
    let height = 90 + 26 * n as u32;
    svg((860, height), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(label_width(&names))
            .build_cartesian_2d(0f64..100f64, -0.5f64..(n as f64 - 0.5))
            .map_err(err)?;
        let label = |y: &f64| {
            let i = y.round();
            if (y - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 14))
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&label)
            .x_labels(11)
            .x_label_formatter(&|x| format!("{x:.0}%"))
            .x_desc("share of records (%)")
            .y_desc(what)
            .draw()
            .map_err(err)?;
        let mut bars = Vec::new();
        for (i, g) in groups.iter().enumerate() {
            let mut x = 0.0;
            let total = g.total.max(1) as f64;
            for class in classes {
                let count = g.verdicts.get(*class);
                if count == 0 {
                    continue;
                }
                let w = 100.0 * count as f64 / total;
                let y = i as f64;
                bars.push(Rectangle::new(
                    [(x, y - 0.35), (x + w, y + 0.35)],
                    color(*class).filled(),
                ));
                x += w;
            }
        }
        chart.draw_series(bars).map_err(err)?;
        Ok(())
    })
}

/// Stacked vertical bars of the confidence histogram: one bin per 0.1, stacked by class.
/// One `<rect>` per non-zero (bin, class) cell.
pub fn confidence_histogram(confidence: &Confidence, classes: &[VerdictClass]) -> Result<String> {
    let bins = confidence.edges.len().saturating_sub(1);
    let mut heights = vec![0u64; bins];
    for (key, counts) in &confidence.by_verdict {
        if classes.contains(&key.0) {
            for (h, c) in heights.iter_mut().zip(counts) {
                *h += c;
            }
        }
    }
    let top = heights.iter().copied().max().unwrap_or(0).max(1) as f64 * 1.08;
    svg((860, 380), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..1f64, 0f64..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 14))
            .disable_x_mesh()
            .x_labels(11)
            .x_label_formatter(&|x| format!("{x:.1}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .x_desc("confidence")
            .y_desc("records")
            .draw()
            .map_err(err)?;
        let width = 1.0 / bins.max(1) as f64;
        let mut bars = Vec::new();
        for bin in 0..bins {
            let mut y = 0.0;
            let x0 = bin as f64 * width + width * 0.08;
            let x1 = (bin + 1) as f64 * width - width * 0.08;
            for (key, counts) in &confidence.by_verdict {
                let c = counts.get(bin).copied().unwrap_or(0);
                if c == 0 || !classes.contains(&key.0) {
                    continue;
                }
                bars.push(Rectangle::new(
                    [(x0, y), (x1, y + c as f64)],
                    color(key.0).filled(),
                ));
                y += c as f64;
            }
        }
        chart.draw_series(bars).map_err(err)?;
        Ok(())
    })
}

/// The series the timeline draws: all non-answers, then each non-answer class seen.
pub fn timeline_series(classes: &[VerdictClass]) -> Vec<Option<VerdictClass>> {
    std::iter::once(None)
        .chain(classes.iter().filter(|c| c.is_non_answer()).map(|c| Some(*c)))
        .collect()
}

/// Rates over time: one `<polyline>` per series of [`timeline_series`], as a percentage of
/// the bucket's records, with a dot per point.
pub fn timeline(timeline: &Timeline, classes: &[VerdictClass]) -> Result<String> {
    let points = &timeline.points;
    let n = points.len().max(1);
    let labels: Vec<String> = points.iter().map(|p| p.group.name.clone()).collect();
    let series = timeline_series(classes);
    let rate = |p: &super::Point, s: Option<VerdictClass>| -> f64 {
        let g = &p.group;
        let count = match s {
            None => g.verdicts.non_answers(),
            Some(c) => g.verdicts.get(c),
        };
        100.0 * count as f64 / g.total.max(1) as f64
    };
    let top = points
        .iter()
        .map(|p| rate(p, None))
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.1;
    svg((860, 380), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(60)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..top.min(100.0))
            .map_err(err)?;
        let x_label = |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 14))
            .disable_x_mesh()
            .x_labels(n.min(12))
            .x_label_formatter(&x_label)
            .y_label_formatter(&|y| format!("{y:.0}%"))
            .x_desc("time (UTC)")
            .y_desc("share of records (%)")
            .draw()
            .map_err(err)?;
        for s in series {
            let style = match s {
                None => RGBColor(0x22, 0x22, 0x22).stroke_width(3),
                Some(c) => color(c).stroke_width(2),
            };
            let data: Vec<(f64, f64)> = points
                .iter()
                .enumerate()
                .map(|(i, p)| (i as f64, rate(p, s)))
                .collect();
            chart
                .draw_series(LineSeries::new(data.clone(), style))
                .map_err(err)?;
            chart
                .draw_series(data.into_iter().map(|xy| Circle::new(xy, 3, style.filled())))
                .map_err(err)?;
        }
        Ok(())
    })
}
