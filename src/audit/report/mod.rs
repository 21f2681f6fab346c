//! Audit reports: one [`Report`] of derived figures, several ways to show it.
//!
//! [`Report::new`] turns a [`Tally`] into rates, time buckets, histograms and the
//! confusion matrix once; every format renders that same value, so the terminal, the
//! Markdown, the HTML and the JSON never disagree:
//! - [`summary`]: tables for the terminal (comfy-table);
//! - [`markdown`]: the same tables as GitHub-flavoured Markdown;
//! - [`html`]: a self-contained page with inline SVG plots ([`plots`]);
//! - [`json`]: the [`Report`] itself, for machines;
//! - [`records`]: one JSON line per input record, written while the audit runs.
//!
//! Rates are rounded to four decimals so that reports of the same input are byte-identical
//! (tests compare them exactly). Nothing time-dependent (run time, rows per second) goes
//! into a report file; the terminal summary prints it separately.

pub mod html;
pub mod json;
pub mod markdown;
pub mod plots;
pub mod records;
pub mod summary;

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

use super::tally::{ratio, BadRecord, Counts, Tally, CONFIDENCE_BINS};
use crate::dataset::Gold;
use crate::verdict::VerdictClass;

/// The report format version (bumped when a field changes meaning or disappears).
pub const REPORT_VERSION: u32 = 1;

/// A rate, serialized rounded to four decimals.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Rate(pub f64);

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((self.0 * 10_000.0).round() / 10_000.0)
    }
}

impl std::fmt::Display for Rate {
    /// As a percentage with one decimal: `12.5%`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.1}%", self.0 * 100.0)
    }
}

/// The verdicts of one group of records (a provider, a model, a language, a time bucket).
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub name: String,
    pub total: u64,
    /// Non-answers (every class but `answer`) of the total.
    pub non_answer_rate: Rate,
    pub verdicts: Counts,
}

impl Group {
    fn new(name: impl Into<String>, counts: &Counts) -> Group {
        Group {
            name: name.into(),
            total: counts.total(),
            non_answer_rate: Rate(counts.non_answer_rate()),
            verdicts: *counts,
        }
    }

    fn all(map: &BTreeMap<String, Counts>) -> Vec<Group> {
        map.iter().map(|(name, c)| Group::new(name, c)).collect()
    }
}

/// How wide a time bucket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    Hour,
    Day,
    /// Weeks starting on Monday.
    Week,
}

impl Bucket {
    /// The bucket's name: `hour`, `day`, `week`.
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
            Bucket::Week => "week",
        }
    }

    /// Every width, narrowest first.
    pub const ALL: [Bucket; 3] = [Bucket::Hour, Bucket::Day, Bucket::Week];

    /// The narrowest bucket that keeps a span of hours to a readable number of points.
    fn for_span(hours: i64) -> Bucket {
        if hours < 72 {
            Bucket::Hour
        } else if hours < 24 * 120 {
            Bucket::Day
        } else {
            Bucket::Week
        }
    }

    /// The start of the bucket holding `t` (Unix seconds).
    fn start(self, t: i64) -> i64 {
        match self {
            Bucket::Hour => t.div_euclid(3600) * 3600,
            Bucket::Day => t.div_euclid(86_400) * 86_400,
            // 1970-01-05 was a Monday.
            Bucket::Week => (t - 4 * 86_400).div_euclid(7 * 86_400) * 7 * 86_400 + 4 * 86_400,
        }
    }

    /// How a bucket start is written on an axis.
    fn label(self, start: i64) -> String {
        let ts = jiff::Timestamp::from_second(start).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let text = ts.to_string(); // 2025-01-31T13:00:00Z
        match self {
            Bucket::Hour => format!("{} {}h", &text[..10], &text[11..13]),
            Bucket::Day | Bucket::Week => text[..10].to_string(),
        }
    }
}

impl std::str::FromStr for Bucket {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Bucket::ALL
            .into_iter()
            .find(|b| b.as_str() == s)
            .ok_or_else(|| format!("unknown time bucket {s:?}; expected one of hour, day, week"))
    }
}

/// One point of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// The bucket's start, RFC 3339 (UTC).
    pub start: String,
    #[serde(flatten)]
    pub group: Group,
}

/// Verdicts over time, for the records that carry a time.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    pub bucket: Bucket,
    /// Records with no time (not on the timeline).
    pub undated: u64,
    pub points: Vec<Point>,
}

impl Timeline {
    fn new(tally: &Tally, bucket: Option<Bucket>) -> Option<Timeline> {
        let first = *tally.by_hour.keys().next()?;
        let last = *tally.by_hour.keys().next_back()?;
        let bucket = bucket.unwrap_or_else(|| Bucket::for_span((last - first) / 3600));
        let mut buckets: BTreeMap<i64, Counts> = BTreeMap::new();
        for (hour, counts) in &tally.by_hour {
            buckets.entry(bucket.start(*hour)).or_default().merge(counts);
        }
        let points = buckets
            .iter()
            .map(|(start, counts)| Point {
                start: jiff::Timestamp::from_second(*start)
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
                group: Group::new(bucket.label(*start), counts),
            })
            .collect();
        Some(Timeline {
            bucket,
            undated: tally.undated,
            points,
        })
    }
}

/// Confidence histograms, one per verdict class.
#[derive(Debug, Clone, Serialize)]
pub struct Confidence {
    /// The bin edges, `[0.0, 0.1, …, 1.0]`; the last bin includes 1.0.
    pub edges: Vec<Rate>,
    /// Per class (every class, in the verdicts' order), the records in each bin.
    pub by_verdict: BTreeMap<VerdictClassKey, Vec<u64>>,
}

/// A verdict class as an ordered map key (serialized as its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct VerdictClassKey(pub VerdictClass);

impl Serialize for VerdictClassKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

/// One row of the confusion matrix: what the label said, and the verdicts given.
#[derive(Debug, Clone, Serialize)]
pub struct ConfusionRow {
    pub label: Gold,
    pub total: u64,
    /// Verdicts that agree with the label (either refusal class for `refusal`).
    pub agree: u64,
    pub verdicts: Counts,
}

/// Verdicts against labels, when some records are labeled.
#[derive(Debug, Clone, Serialize)]
pub struct LabelReport {
    /// Records whose label is scored (rows of the matrix; `prompt_level` rows are shown
    /// but not scored, as in `eval`).
    pub scored: u64,
    pub unlabeled: u64,
    /// Labeled, but the label maps to no class (or to `exclude`).
    pub excluded: u64,
    /// Scored records whose verdict agrees with the label.
    pub accuracy: Rate,
    /// Scored records judged answer / non-answer as labeled.
    pub non_answer_accuracy: Rate,
    pub confusion: Vec<ConfusionRow>,
}

impl LabelReport {
    fn new(tally: &Tally) -> Option<LabelReport> {
        let labels = &tally.labels;
        if labels.confusion.is_empty() && labels.excluded == 0 {
            return None;
        }
        let scored = labels.binary.total() as u64;
        let mut agree = 0;
        let mut confusion = Vec::new();
        for (gold, counts) in &labels.confusion {
            let agreeing: u64 = VerdictClass::ALL
                .iter()
                .filter(|c| gold.agrees(**c))
                .map(|c| counts.get(*c))
                .sum();
            if gold.is_non_answer().is_some() {
                agree += agreeing;
            }
            confusion.push(ConfusionRow {
                label: *gold,
                total: counts.total(),
                agree: agreeing,
                verdicts: *counts,
            });
        }
        Some(LabelReport {
            scored,
            unlabeled: labels.unlabeled,
            excluded: labels.excluded,
            accuracy: Rate(ratio(agree, scored)),
            non_answer_accuracy: Rate(labels.binary.accuracy()),
            confusion,
        })
    }
}

/// Everything an audit found, derived once from a [`Tally`].
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub version: u32,
    /// The inputs, as named on the command line after expansion.
    pub inputs: Vec<String>,
    /// Records judged.
    pub records: u64,
    /// Records that could not be read (skipped).
    pub bad_records: u64,
    /// The first of them, with file and line.
    pub bad: Vec<BadRecord>,
    pub verdicts: Counts,
    pub non_answer_rate: Rate,
    pub by_provider: Vec<Group>,
    pub by_model: Vec<Group>,
    pub by_lang: Vec<Group>,
    /// Absent when no record has a time.
    pub over_time: Option<Timeline>,
    pub confidence: Confidence,
    /// Absent when no record is labeled.
    pub labels: Option<LabelReport>,
}

impl Report {
    /// Derives the report of an audit of `inputs`, with time buckets as wide as the span
    /// of the records calls for.
    pub fn new(inputs: Vec<String>, tally: &Tally) -> Report {
        Self::bucketed(inputs, tally, None)
    }

    /// As [`Report::new`], with time buckets of a chosen width (`None`: from the span).
    pub fn bucketed(inputs: Vec<String>, tally: &Tally, bucket: Option<Bucket>) -> Report {
        let edges = (0..=CONFIDENCE_BINS)
            .map(|i| Rate(i as f64 / CONFIDENCE_BINS as f64))
            .collect();
        let by_verdict = VerdictClass::ALL
            .iter()
            .map(|c| (VerdictClassKey(*c), tally.confidence[*c as usize].to_vec()))
            .collect();
        Report {
            version: REPORT_VERSION,
            inputs,
            records: tally.records,
            bad_records: tally.bad,
            bad: tally.bad_kept.clone(),
            verdicts: tally.verdicts,
            non_answer_rate: Rate(tally.verdicts.non_answer_rate()),
            by_provider: Group::all(&tally.by_provider),
            by_model: Group::all(&tally.by_model),
            by_lang: Group::all(&tally.by_lang),
            over_time: Timeline::new(tally, bucket),
            confidence: Confidence { edges, by_verdict },
            labels: LabelReport::new(tally),
        }
    }

    /// The classes that occur at least once, in the verdicts' order (plots and tables
    /// leave out empty columns).
    pub fn classes_seen(&self) -> Vec<VerdictClass> {
        VerdictClass::ALL
            .into_iter()
            .filter(|c| self.verdicts.get(*c) > 0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_start_where_expected() {
        // 2024-01-03T10:20:00Z, a Wednesday.
        let t = 1_704_277_200;
        assert_eq!(Bucket::Hour.label(Bucket::Hour.start(t)), "2024-01-03 10h");
        assert_eq!("day".parse::<Bucket>(), Ok(Bucket::Day));
        assert!("month".parse::<Bucket>().unwrap_err().contains("hour, day, week"));
        assert_eq!(Bucket::Day.label(Bucket::Day.start(t)), "2024-01-03");
        assert_eq!(Bucket::Week.label(Bucket::Week.start(t)), "2024-01-01");
    }

    #[test]
    fn rates_round_to_four_decimals() {
        assert_eq!(serde_json::to_string(&Rate(2.0 / 3.0)).unwrap(), "0.6667");
        assert_eq!(Rate(0.125).to_string(), "12.5%");
    }
}
