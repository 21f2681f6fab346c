//! `--records OUT.jsonl`: one line per input record, in input order.
//!
//! `{"id", "verdict", "confidence", "evidence"}`: the record's id (its `file:line` when it
//! has none), the verdict class (`answer`, `policy_refusal`, `evasion`, `safety_refusal`,
//! `inability`, `provider_block`, `empty`), the confidence, and the evidence that led to it
//! (detector, class suggested, score, reason, span). Lines are written as the audit
//! progresses, so a million-record audit never holds them.

use serde::Serialize;

use crate::audit::tally::Judged;
use crate::verdict::{Evidence, VerdictClass};

/// One line of `--records`.
#[derive(Debug, Serialize)]
pub struct RecordLine<'a> {
    pub id: &'a str,
    pub verdict: VerdictClass,
    pub confidence: f32,
    pub evidence: &'a [Evidence],
}

impl<'a> RecordLine<'a> {
    /// The line of a judged record.
    pub fn of(judged: &'a Judged) -> RecordLine<'a> {
        RecordLine {
            id: &judged.id,
            verdict: judged.verdict.class(),
            confidence: judged.verdict.confidence,
            evidence: &judged.verdict.evidence,
        }
    }
}

/// Writes the line of `judged`, with its newline.
pub fn write(out: &mut impl std::io::Write, judged: &Judged) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &RecordLine::of(judged))?;
    out.write_all(b"\n")
}
