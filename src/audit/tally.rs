//! The counts every audit report is drawn from.
//!
//! A [`Tally`] grows one judged record at a time and keeps only counts (per verdict, per
//! provider, model, language, hour, confidence bin, label), so its size depends on how many
//! models, languages and hours the log spans, never on how many rows it has. Derived
//! figures (rates, accuracy, time buckets) are computed once, in [`super::report`], so that
//! every output format shows the same numbers.

use std::collections::BTreeMap;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::input::Location;
use crate::dataset::{Gold, LabelMap, Record};
use crate::score::Binary;
use crate::verdict::{Verdict, VerdictClass};

/// How many bins the confidence histograms have (of width 0.1).
pub const CONFIDENCE_BINS: usize = 10;

/// How many bad records a tally keeps for the reports (all are counted).
pub const BAD_KEPT: usize = 100;

/// One count per verdict class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts([u64; 7]);

impl Counts {
    /// Counts one more of `class`.
    pub fn add(&mut self, class: VerdictClass) {
        self.0[class as usize] += 1;
    }

    /// The count of `class`.
    pub fn get(&self, class: VerdictClass) -> u64 {
        self.0[class as usize]
    }

    /// Every class together.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Every class but the answer.
    pub fn non_answers(&self) -> u64 {
        self.total() - self.get(VerdictClass::Answer)
    }

    /// The share of non-answers (0 when empty).
    pub fn non_answer_rate(&self) -> f64 {
        ratio(self.non_answers(), self.total())
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, other: &Counts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }
}

impl Serialize for Counts {
    /// `{"answer": n, "policy_refusal": n, …}`, every class, in [`VerdictClass::ALL`] order.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(7))?;
        for class in VerdictClass::ALL {
            map.serialize_entry(class.as_str(), &self.get(class))?;
        }
        map.end()
    }
}

/// `a / b`, 0 when `b` is 0.
pub fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// A record that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadRecord {
    #[serde(flatten)]
    pub at: Location,
    pub error: String,
}

impl std::fmt::Display for BadRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.error)
    }
}

/// The facts of one judged record that reports need.
#[derive(Debug, Clone)]
pub struct Judged {
    pub at: Location,
    /// The record's id, or its location when it has none.
    pub id: String,
    pub provider: String,
    pub model: String,
    pub lang: String,
    /// The record's `source`, when it has one.
    pub source: String,
    /// The request, when the record has it (empty otherwise).
    pub prompt: String,
    /// The answer's text (empty for a block or an error with none, or a log without text).
    pub text: String,
    /// Unix seconds, when the log says.
    pub timestamp: Option<i64>,
    /// What the label says, when there is one (see [`gold_of`]).
    pub gold: Option<Gold>,
    pub verdict: Verdict,
}

/// What a record's label says, for the confusion matrix: [`LabelMap::gold`], the mapping
/// `eval` scores through (a label it does not know is labeled but not scored,
/// [`Gold::Exclude`]). `None` when unlabeled.
pub fn gold_of(map: &LabelMap, record: &Record) -> Option<Gold> {
    if record.label.trim().is_empty() {
        return None;
    }
    Some(map.gold(record))
}

/// Labels against verdicts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    /// Per label class (never [`Gold::Exclude`]), the verdicts given.
    pub confusion: BTreeMap<Gold, Counts>,
    /// Answer vs non-answer, over the records whose label is scored (the counts `eval`
    /// keeps, see [`crate::score`]).
    pub binary: Binary,
    /// Records with no label.
    pub unlabeled: u64,
    /// Records whose label maps to no scored class.
    pub excluded: u64,
}

/// The counts of an audit.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Records judged.
    pub records: u64,
    /// Records that could not be read.
    pub bad: u64,
    /// The first [`BAD_KEPT`] of them.
    pub bad_kept: Vec<BadRecord>,
    pub verdicts: Counts,
    pub by_provider: BTreeMap<String, Counts>,
    pub by_model: BTreeMap<String, Counts>,
    pub by_lang: BTreeMap<String, Counts>,
    /// Per hour (its start, Unix seconds), for records with a time.
    pub by_hour: BTreeMap<i64, Counts>,
    /// Records with no time.
    pub undated: u64,
    /// Per verdict class, how many records fell in each confidence bin.
    pub confidence: [[u64; CONFIDENCE_BINS]; 7],
    pub labels: Labels,
}

/// The name a missing provider, model or language is reported under.
pub const UNKNOWN: &str = "unknown";

fn key(s: &str) -> String {
    if s.trim().is_empty() {
        UNKNOWN.to_string()
    } else {
        s.to_string()
    }
}

/// The confidence bin of a value in 0..=1.
pub fn bin_of(confidence: f32) -> usize {
    let c = confidence.clamp(0.0, 1.0);
    ((c * CONFIDENCE_BINS as f32) as usize).min(CONFIDENCE_BINS - 1)
}

impl Tally {
    /// Counts one judged record.
    pub fn add(&mut self, j: &Judged) {
        let class = j.verdict.class();
        self.records += 1;
        self.verdicts.add(class);
        self.by_provider.entry(key(&j.provider)).or_default().add(class);
        self.by_model.entry(key(&j.model)).or_default().add(class);
        self.by_lang.entry(key(&j.lang)).or_default().add(class);
        match j.timestamp {
            Some(t) => self
                .by_hour
                .entry(t.div_euclid(3600) * 3600)
                .or_default()
                .add(class),
            None => self.undated += 1,
        }
        self.confidence[class as usize][bin_of(j.verdict.confidence)] += 1;
        match j.gold {
            None => self.labels.unlabeled += 1,
            Some(Gold::Exclude) => self.labels.excluded += 1,
            Some(gold) => {
                self.labels.confusion.entry(gold).or_default().add(class);
                if let Some(non_answer) = gold.is_non_answer() {
                    self.labels.binary.count(non_answer, class.is_non_answer());
                }
            }
        }
    }

    /// Counts one bad record.
    pub fn add_bad(&mut self, bad: BadRecord) {
        self.bad += 1;
        if self.bad_kept.len() < BAD_KEPT {
            self.bad_kept.push(bad);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_cover_zero_to_one() {
        assert_eq!(bin_of(0.0), 0);
        assert_eq!(bin_of(0.55), 5);
        assert_eq!(bin_of(1.0), 9);
        assert_eq!(bin_of(f32::NAN.max(0.0)), 0);
    }

    #[test]
    fn class_names_are_labels_too() {
        let map = LabelMap::default();
        let mut r: Record = serde_json::from_str(r#"{"id":"a","label":"policy_refusal"}"#).unwrap();
        assert_eq!(gold_of(&map, &r), Some(Gold::Refusal));
        r.label = "DENIAL".into();
        assert_eq!(gold_of(&map, &r), Some(Gold::Refusal));
        r.label = "whatever".into();
        assert_eq!(gold_of(&map, &r), Some(Gold::Exclude));
        r.label = String::new();
        assert_eq!(gold_of(&map, &r), None);
    }
}
