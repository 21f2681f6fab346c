//! `audit --review OUT.jsonl`: a queue of the operator's own answers to label.
//!
//! Measured out of source, no change to the verdict's models moved a source nobody here
//! wrote as much as labels of that source's own answers: the embedded default's answer
//! head, trained on the other sources and then on half of gptfuzz's answers with their
//! labels, ranked the other half at ROC AUC 0.952 where it had ranked it at 0.795, and
//! speechmap's English answers at 0.952 where it had at 0.773 (models/combiner/README.md,
//! "Distilling e5 into the n-gram model"; the same half with e5's readings instead of
//! labels reached 0.856 and 0.774). A gateway's own traffic, labeled by the people who run
//! it, is worth more than any data this project can ship. This module picks which of the
//! audited answers a person should label first.
//!
//! The queue is written in the shape `train --responses` reads: the dataset fields of each
//! answer (`id`, `source`, `lang`, `prompt`, `response`), `label` left `null` for the
//! reviewer to fill in (`answer`, `refusal`, `evasion` or `inability`), and what the audit
//! made of it beside (`suggested`, `verdict`, `confidence`, and `why` it was picked).
//! `train` skips a row still `null`, so a half-reviewed queue trains on what was reviewed
//! and never on the pipeline's own guesses (teaching a model its own readings taught it
//! nothing held out: the distillation measurement above).
//!
//! Which answers: half are the ones the verdict was least sure of, where a label is most
//! likely to correct it: those whose probability of a non-answer lay nearest the point where
//! the verdict turns (the combiner's whole-answer threshold; a verdict's confidence alone
//! would rank every near-threshold non-answer before any near-threshold answer, since the
//! threshold is not one half); half are a uniform sample of the rest, because a queue of
//! borderline answers alone never shows the reviewer what the verdict gets confidently
//! wrong, and a model trained only on borderline rows learns a skewed picture of the
//! traffic. The sample is the answers whose id hashes lowest (`sample_hash`): the same on
//! every run and whatever the input order, with no random state to seed. Memory is bounded
//! by the queue's size, whatever the audit's, and an answer is copied only when it enters
//! the queue (the audit offers every record from one thread).
//!
//! Skipped: answers that already carry a label (they need no review), answers with no text
//! (a block or an error has nothing for the answer models to learn), and verdicts that are
//! not about the answer's words (a provider block, an empty answer).

use std::collections::{BTreeMap, BinaryHeap, HashSet};

use serde::Serialize;

use super::tally::Judged;
use crate::classify::ResponseLabel;
use crate::dataset::fnv1a64;
use crate::verdict::VerdictClass;

/// Default number of answers in a queue: about an afternoon's reviewing.
pub const DEFAULT_REVIEW_SIZE: usize = 200;

/// One line of the queue.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReviewLine {
    pub id: String,
    pub source: String,
    pub lang: String,
    pub prompt: Option<String>,
    pub response: String,
    /// Left `null` for the reviewer.
    pub label: Option<ResponseLabel>,
    /// The label the verdict stands for, as a starting point.
    pub suggested: ResponseLabel,
    pub verdict: VerdictClass,
    pub confidence: f32,
    /// `unsure` (among the verdicts nearest the boundary) or `sample` (the uniform sample).
    pub why: &'static str,
}

/// A candidate, ordered by how much a label is worth (for the heap of the least sure).
struct Unsure {
    /// The distance of the verdict's non-answer probability from the boundary, as bits:
    /// positive floats order as their bits do.
    distance: u32,
    /// The input position breaks ties, so equal distances keep their input order.
    seq: u64,
    line: ReviewLine,
}

impl PartialEq for Unsure {
    fn eq(&self, other: &Self) -> bool {
        (self.distance, self.seq) == (other.distance, other.seq)
    }
}
impl Eq for Unsure {}
impl PartialOrd for Unsure {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Unsure {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.distance, self.seq).cmp(&(other.distance, other.seq))
    }
}

/// Chooses the queue while the audit runs; [`ReviewQueue::finish`] hands it back.
pub struct ReviewQueue {
    size: usize,
    boundary: f32,
    /// The least sure so far: a max-heap on the distance from the boundary, so the surest
    /// is dropped first.
    unsure: BinaryHeap<Unsure>,
    /// The uniform sample so far: the lowest id hashes (a hash may repeat: ties by input
    /// position).
    sample: BTreeMap<(u64, u64), ReviewLine>,
    /// Answers offered that could be queued (also each one's input position).
    pub candidates: usize,
}

impl ReviewQueue {
    /// A queue of at most `size` answers; `boundary` is the probability of a non-answer
    /// at which the verdict turns ([`crate::judge::Combiner::non_answer_from`] for the
    /// learned decision).
    pub fn new(size: usize, boundary: f32) -> Self {
        ReviewQueue {
            size,
            boundary,
            unsure: BinaryHeap::new(),
            sample: BTreeMap::new(),
            candidates: 0,
        }
    }

    /// Offers one judged record.
    pub fn offer(&mut self, judged: &Judged) {
        let Some(suggested) = ResponseLabel::of_class(judged.verdict.class()) else {
            return;
        };
        if judged.gold.is_some() || judged.text.trim().is_empty() {
            return;
        }
        self.candidates += 1;
        let seq = self.candidates as u64;
        let confidence = judged.verdict.confidence.clamp(0.0, 1.0);
        let non_answer = if suggested == ResponseLabel::Answer {
            1.0 - confidence
        } else {
            confidence
        };
        // Each half may be asked for the whole queue: answers in both count once, and the
        // sample fills what the unsure half leaves.
        let key = (sample_hash(&judged.id), seq);
        let into_sample = self.sample.len() < self.size
            || self.sample.last_key_value().is_some_and(|(last, _)| key < *last);
        let distance = (non_answer - self.boundary).abs().to_bits();
        let into_unsure = self.unsure.len() < self.size.div_ceil(2)
            || self
                .unsure
                .peek()
                .is_some_and(|top| (distance, seq) < (top.distance, top.seq));
        if !into_sample && !into_unsure {
            return;
        }
        let line = ReviewLine {
            id: judged.id.clone(),
            source: judged.source.clone(),
            lang: judged.lang.clone(),
            prompt: (!judged.prompt.is_empty()).then(|| judged.prompt.clone()),
            response: judged.text.clone(),
            label: None,
            suggested,
            verdict: judged.verdict.class(),
            confidence,
            why: "unsure",
        };
        // Copied once more only when it enters both halves.
        let (for_sample, for_unsure) = match (into_sample, into_unsure) {
            (true, true) => (Some(line.clone()), Some(line)),
            (true, false) => (Some(line), None),
            (false, _) => (None, Some(line)),
        };
        if let Some(line) = for_sample {
            self.sample.insert(
                key,
                ReviewLine {
                    why: "sample",
                    ..line
                },
            );
            if self.sample.len() > self.size {
                self.sample.pop_last();
            }
        }
        if let Some(line) = for_unsure {
            if self.unsure.len() >= self.size.div_ceil(2) {
                self.unsure.pop();
            }
            self.unsure.push(Unsure { distance, seq, line });
        }
    }

    /// The queue: the least sure first (nearest the boundary at the top), then the sample in
    /// hash order, at most `size` answers, none twice (an id seen twice in the input is one
    /// answer, queued once: checked here, so that memory stays bounded by the queue's size).
    pub fn finish(self) -> Vec<ReviewLine> {
        let mut taken = HashSet::new();
        let unsure = self.unsure.into_sorted_vec().into_iter().map(|u| u.line);
        unsure
            .chain(self.sample.into_values())
            .filter(|l| taken.insert(l.id.clone()))
            .take(self.size)
            .collect()
    }
}

/// The hash that orders the sample: FNV-1a of the id, then MurmurHash3's 64-bit finaliser.
/// FNV-1a alone leaves ids that differ in their last characters (`req-280`, `req-281`, …)
/// close together in its order, so the lowest hashes would be a run of neighbouring ids,
/// not a uniform sample; the finaliser spreads every input bit over the whole hash.
fn sample_hash(id: &str) -> u64 {
    let mut h = fnv1a64(id.as_bytes());
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Writes the queue as JSON Lines.
pub fn write(out: &mut impl std::io::Write, lines: &[ReviewLine]) -> std::io::Result<()> {
    for line in lines {
        serde_json::to_writer(&mut *out, line)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Location;
    use crate::dataset::Gold;
    use crate::verdict::{Verdict, VerdictKind};

    fn judged(id: &str, kind: VerdictKind, confidence: f32) -> Judged {
        Judged {
            at: Location {
                file: "traffic.jsonl".into(),
                line: Some(1),
            },
            id: id.into(),
            provider: "qwen".into(),
            model: "qwen-plus".into(),
            lang: "en".into(),
            source: "traffic".into(),
            prompt: "a question".into(),
            text: format!("the answer of {id}"),
            timestamp: None,
            gold: None,
            verdict: Verdict::new(kind, confidence),
        }
    }

    #[test]
    fn the_least_sure_come_first_and_a_sample_fills_the_rest() {
        let mut q = ReviewQueue::new(4, 0.5);
        for i in 0..100 {
            // Confidence falls to its lowest at i = 50, then rises again.
            let c = 0.5 + (i as f32 - 50.0).abs() / 100.0;
            q.offer(&judged(&format!("r{i}"), VerdictKind::Answer, c));
        }
        assert_eq!(q.candidates, 100);
        let lines = q.finish();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0].id, "r50");
        assert_eq!(lines[0].why, "unsure");
        assert!(["r49", "r51"].contains(&lines[1].id.as_str()), "{}", lines[1].id);
        assert!(lines[2..].iter().all(|l| l.why == "sample"));
        assert!(lines
            .iter()
            .all(|l| l.label.is_none() && l.suggested == ResponseLabel::Answer));
        let ids: HashSet<_> = lines.iter().map(|l| &l.id).collect();
        assert_eq!(ids.len(), 4, "no answer twice");
    }

    #[test]
    fn unsure_means_near_the_boundary_on_either_side() {
        // With the boundary at 0.35, an answer at P(answer) 0.66 (non-answer 0.34) is less
        // sure than a refusal at 0.45, though its confidence is higher.
        let mut q = ReviewQueue::new(2, 0.35);
        q.offer(&judged("refusal", VerdictKind::PolicyRefusal, 0.45));
        q.offer(&judged("answer", VerdictKind::Answer, 0.66));
        q.offer(&judged("sure", VerdictKind::Answer, 0.99));
        let lines = q.finish();
        assert_eq!(lines[0].id, "answer");
    }

    #[test]
    fn the_sample_does_not_depend_on_input_order() {
        let ids: Vec<String> = (0..300).map(|i| format!("id-{i}")).collect();
        let pick = |order: &mut dyn Iterator<Item = &String>| {
            let mut q = ReviewQueue::new(20, 0.5);
            for id in order {
                // All alike in confidence, so only the sample decides beyond the ties.
                q.offer(&judged(id, VerdictKind::PolicyRefusal, 0.9));
            }
            let mut s: Vec<String> = q
                .finish()
                .into_iter()
                .filter(|l| l.why == "sample")
                .map(|l| l.id)
                .collect();
            s.sort();
            s
        };
        let forward = pick(&mut ids.iter());
        let backward = pick(&mut ids.iter().rev());
        assert_eq!(forward.len(), 10);
        // The unsure half breaks ties by input order, so it differs between the two runs;
        // of the sample, what neither run's unsure half took is the same.
        let common: Vec<_> = forward.iter().filter(|id| backward.contains(id)).collect();
        assert!(common.len() >= 8, "{forward:?} vs {backward:?}");
    }

    #[test]
    fn the_sample_spreads_over_neighbouring_ids() {
        // Ids that differ only in their last digits, as a log's numbered requests do: a
        // sample of 50 of 1,000 should land in every tenth of them, not in a run.
        let mut q = ReviewQueue::new(100, 0.5);
        for i in 0..1000 {
            q.offer(&judged(&format!("req-{i:04}"), VerdictKind::Answer, 0.99));
        }
        let tenths: HashSet<usize> = q
            .finish()
            .iter()
            .filter(|l| l.why == "sample")
            .map(|l| l.id[4..].parse::<usize>().unwrap() / 100)
            .collect();
        assert_eq!(tenths.len(), 10, "{tenths:?}");
    }

    #[test]
    fn labeled_empty_and_non_text_verdicts_are_not_queued() {
        let mut q = ReviewQueue::new(10, 0.5);
        let mut labeled = judged("a", VerdictKind::Answer, 0.6);
        labeled.gold = Some(Gold::Answer);
        q.offer(&labeled);
        let mut empty = judged("b", VerdictKind::Answer, 0.6);
        empty.text = "  ".into();
        q.offer(&empty);
        q.offer(&judged(
            "c",
            VerdictKind::ProviderBlock {
                stage: crate::wire::ModerationStage::Input,
            },
            0.99,
        ));
        q.offer(&judged("d", VerdictKind::Evasion, 0.55));
        q.offer(&judged("d", VerdictKind::Evasion, 0.55));
        let lines = q.finish();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].suggested, ResponseLabel::Evasion);
    }

    #[test]
    fn a_queue_line_reads_back_as_an_unlabeled_record() {
        let mut q = ReviewQueue::new(1, 0.5);
        q.offer(&judged(
            "x",
            VerdictKind::SafetyRefusal {
                categories: Vec::new(),
            },
            0.7,
        ));
        let mut buf = Vec::new();
        write(&mut buf, &q.finish()).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let record = crate::dataset::Record::from_line(text.trim()).unwrap().unwrap();
        assert_eq!(record.id, "x");
        assert_eq!(record.response, "the answer of x");
        assert!(record.label.is_empty(), "a queue is written unlabeled");
        assert!(text.contains(r#""suggested":"refusal""#), "{text}");
        // Once a reviewer fills the label in, training reads it.
        let reviewed = text.replace(r#""label":null"#, r#""label":"answer""#);
        let record = crate::dataset::Record::from_line(reviewed.trim())
            .unwrap()
            .unwrap();
        assert_eq!(
            crate::dataset::LabelMap::default().response_label(&record),
            Some(ResponseLabel::Answer)
        );
    }
}
