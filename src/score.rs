//! Scoring: confusion matrices, precision, recall and F1, for `eval`, `train`'s
//! leave-one-source-out tables and the model evaluations alike.
//!
//! Two views of the same judgements. The *binary* view asks what the F1 targets ask: did
//! the caller get an answer or not (a refusal, an evasion, an inability, a block are all
//! non-answers; a non-answer is the positive class). The *class* view asks whether the
//! verdict named the right kind of non-answer; a refusal counts as right whether the
//! detectors called it a policy or a safety refusal.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::dataset::Gold;
use crate::verdict::VerdictClass;

/// Binary counts, non-answer positive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Binary {
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
    pub tn: usize,
}

/// Precision, recall and F1 (0 where undefined).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Prf {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl Prf {
    /// From true positives, false positives and false negatives.
    pub fn of(tp: usize, fp: usize, fn_: usize) -> Prf {
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let precision = ratio(tp, tp + fp);
        let recall = ratio(tp, tp + fn_);
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        Prf {
            precision,
            recall,
            f1,
        }
    }
}

impl Binary {
    /// Scores of the non-answer class.
    pub fn prf(&self) -> Prf {
        Prf::of(self.tp, self.fp, self.fn_)
    }

    /// All judged records.
    pub fn total(&self) -> usize {
        self.tp + self.fp + self.fn_ + self.tn
    }

    /// Share judged right.
    pub fn accuracy(&self) -> f64 {
        if self.total() == 0 {
            0.0
        } else {
            (self.tp + self.tn) as f64 / self.total() as f64
        }
    }

    /// Counts one judgement: whether the label and the prediction say "non-answer".
    pub fn count(&mut self, gold_non_answer: bool, predicted_non_answer: bool) {
        self.count_n(gold_non_answer, predicted_non_answer, 1);
    }

    /// Counts `n` alike judgements at once (a cell of a confusion matrix).
    pub fn count_n(&mut self, gold_non_answer: bool, predicted_non_answer: bool, n: usize) {
        match (gold_non_answer, predicted_non_answer) {
            (true, true) => self.tp += n,
            (false, true) => self.fp += n,
            (true, false) => self.fn_ += n,
            (false, false) => self.tn += n,
        }
    }

    /// Adds another group's counts (pooling groups).
    pub fn add(&mut self, other: &Binary) {
        self.tp += other.tp;
        self.fp += other.fp;
        self.fn_ += other.fn_;
        self.tn += other.tn;
    }
}

/// The class-level scores of one gold class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ClassScore {
    pub support: usize,
    #[serde(flatten)]
    pub prf: Prf,
}

/// Everything counted over one group of records (a file, a language, a file × language).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tally {
    /// Non-answer vs answer.
    pub binary: Binary,
    /// Gold class × predicted class (predicted keyed by its snake_case name).
    pub confusion: BTreeMap<Gold, BTreeMap<VerdictClass, usize>>,
    /// Prompt-level records (deccp): predicted class counts, not scored.
    pub prompt_level: BTreeMap<VerdictClass, usize>,
    /// Records excluded by the mapping.
    pub excluded: usize,
}

impl Tally {
    /// Counts one judgement.
    pub fn add(&mut self, gold: Gold, predicted: VerdictClass) {
        match gold.is_non_answer() {
            None if gold == Gold::PromptLevel => {
                *self.prompt_level.entry(predicted).or_default() += 1;
                return;
            }
            None => {
                self.excluded += 1;
                return;
            }
            Some(non_answer) => self.binary.count(non_answer, predicted.is_non_answer()),
        }
        *self
            .confusion
            .entry(gold)
            .or_default()
            .entry(predicted)
            .or_default() += 1;
    }

    /// Adds another tally into this one.
    pub fn merge(&mut self, other: &Tally) {
        self.binary.add(&other.binary);
        for (g, row) in &other.confusion {
            let mine = self.confusion.entry(*g).or_default();
            for (p, n) in row {
                *mine.entry(*p).or_default() += n;
            }
        }
        for (p, n) in &other.prompt_level {
            *self.prompt_level.entry(*p).or_default() += n;
        }
        self.excluded += other.excluded;
    }

    /// Per gold class (answers with caveats merged into answers) precision, recall and F1.
    pub fn per_class(&self) -> BTreeMap<Gold, ClassScore> {
        let classes = [
            Gold::Answer,
            Gold::Refusal,
            Gold::Evasion,
            Gold::Inability,
            Gold::ProviderBlock,
            Gold::Empty,
        ];
        let merged = |g: Gold| {
            if g == Gold::AnswerWithCaveats {
                Gold::Answer
            } else {
                g
            }
        };
        let mut out = BTreeMap::new();
        for class in classes {
            let (mut tp, mut fp, mut fn_, mut support) = (0, 0, 0, 0);
            for (g, row) in &self.confusion {
                let g = merged(*g);
                for (p, n) in row {
                    let predicted_this = class.agrees(*p);
                    if g == class {
                        support += n;
                        if predicted_this {
                            tp += n;
                        } else {
                            fn_ += n;
                        }
                    } else if predicted_this {
                        fp += n;
                    }
                }
            }
            if support + fp > 0 {
                out.insert(
                    class,
                    ClassScore {
                        support,
                        prf: Prf::of(tp, fp, fn_),
                    },
                );
            }
        }
        out
    }

    /// For answers with caveats: how many were judged answers.
    pub fn caveats_kept(&self) -> Option<(usize, usize)> {
        let row = self.confusion.get(&Gold::AnswerWithCaveats)?;
        let total: usize = row.values().sum();
        let kept = row.get(&VerdictClass::Answer).copied().unwrap_or(0);
        Some((kept, total))
    }

    /// For prompt-level records: how many got a refusal or evasion verdict, of how many.
    pub fn prompt_level_rate(&self) -> Option<(usize, usize)> {
        if self.prompt_level.is_empty() {
            return None;
        }
        let total: usize = self.prompt_level.values().sum();
        let hits = self
            .prompt_level
            .iter()
            .filter(|(c, _)| c.is_non_answer())
            .map(|(_, n)| n)
            .sum();
        Some((hits, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prf_of_known_counts() {
        let p = Prf::of(8, 2, 2);
        assert!((p.precision - 0.8).abs() < 1e-9);
        assert!((p.recall - 0.8).abs() < 1e-9);
        assert!((p.f1 - 0.8).abs() < 1e-9);
        assert_eq!(Prf::of(0, 0, 0).f1, 0.0);
    }

    #[test]
    fn count_n_is_n_counts() {
        let mut one_by_one = Binary::default();
        let mut at_once = Binary::default();
        for (gold, predicted, n) in [
            (true, true, 3),
            (false, true, 2),
            (true, false, 1),
            (false, false, 4),
        ] {
            for _ in 0..n {
                one_by_one.count(gold, predicted);
            }
            at_once.count_n(gold, predicted, n);
        }
        assert_eq!(at_once, one_by_one);
        assert_eq!(
            at_once,
            Binary {
                tp: 3,
                fp: 2,
                fn_: 1,
                tn: 4
            }
        );
    }

    #[test]
    fn tally_counts_binary_and_classes() {
        let mut t = Tally::default();
        t.add(Gold::Refusal, VerdictClass::SafetyRefusal);
        t.add(Gold::Refusal, VerdictClass::Answer);
        t.add(Gold::Evasion, VerdictClass::PolicyRefusal);
        t.add(Gold::AnswerWithCaveats, VerdictClass::Answer);
        t.add(Gold::Answer, VerdictClass::Inability);
        t.add(Gold::Exclude, VerdictClass::Answer);
        t.add(Gold::PromptLevel, VerdictClass::Evasion);
        assert_eq!(
            t.binary,
            Binary {
                tp: 2,
                fp: 1,
                fn_: 1,
                tn: 1
            }
        );
        let c = t.per_class();
        assert_eq!(c[&Gold::Refusal].support, 2);
        assert!((c[&Gold::Refusal].prf.precision - 0.5).abs() < 1e-9);
        assert_eq!(t.caveats_kept(), Some((1, 1)));
        assert_eq!(t.prompt_level_rate(), Some((1, 1)));
        assert_eq!(t.excluded, 1);
    }
}
