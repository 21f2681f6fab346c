//! What the combiner sees: one fixed-length vector per answer.
//!
//! Every source of evidence is reduced to a few numbers with a fixed meaning, so that one
//! small trained model ([`super::Combiner`]) can weigh them against each other:
//! - the embedded n-gram model's answer probabilities (always there: it is cheap);
//! - the encoder tier's answer probabilities, zero with `encoder.present = 0` when the
//!   encoder was not asked (the combiner is trained on both views of every answer, so it
//!   knows what to make of each);
//! - the pattern detector's strongest score per class (its hand-set rules become one input
//!   among others, no longer the decision);
//! - the n-gram model's reading of the text's opening and of its ending apart: a refusal
//!   opener followed by a long lecture reads as an answer on the whole, and a Qwen-style
//!   deflection often shows only in its closing line ("If you have any other questions…");
//!   the opening is exactly what a stream's 16-token window holds, so a stream and its
//!   whole answer share this evidence and cannot disagree for the wrong reason;
//! - the strongest refusal pattern that starts inside the opening;
//! - whether the text is a stream's prefix, and its length.
//!
//! Model probabilities enter as logarithms clipped at `ln 1e-4`, so that a confident model
//! counts for more than a hesitant one without a single number dominating.

use crate::classify::ResponseJudgement;
use crate::verdict::{Evidence, VerdictClass};

/// The names of the features, in vector order (written into the combiner's file, checked at
/// load, so a model trained on another layout is refused instead of misread).
pub const FEATURE_NAMES: [&str; 24] = [
    "ngram.answer",
    "ngram.refusal",
    "ngram.evasion",
    "ngram.inability",
    "encoder.answer",
    "encoder.refusal",
    "encoder.evasion",
    "encoder.inability",
    "encoder.present",
    "patterns.refusal",
    "patterns.evasion",
    "patterns.inability",
    "patterns.answer",
    "partial",
    "length",
    "opening.answer",
    "opening.refusal",
    "opening.evasion",
    "opening.inability",
    "ending.answer",
    "ending.refusal",
    "ending.evasion",
    "ending.inability",
    "patterns.refusal_opening",
];

/// Tokens of the opening and of the ending the n-gram model reads apart (the stream
/// window's size, see [`window`]).
pub const PART_TOKENS: usize = 16;

/// The number of features.
pub const N_FEATURES: usize = FEATURE_NAMES.len();

/// The source names whose evidence the combiner was trained on. Evidence of any other
/// source is folded in after the combiner as an independent vote (see [`super::decide`]):
/// the logprob checks (the labeled data has no logprobs to train on), non-decisive provider
/// signals, and detectors a user added.
pub const KNOWN_SOURCES: [&str; 1] = ["patterns"];

/// Everything the combiner is given about one answer.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The n-gram model's reading of the text.
    pub ngram: &'a ResponseJudgement,
    /// The n-gram model's reading of the opening ([`window`]`(text, PART_TOKENS)`).
    pub opening: &'a ResponseJudgement,
    /// The n-gram model's reading of the ending ([`ending`]`(text, PART_TOKENS)`).
    pub ending: &'a ResponseJudgement,
    /// The encoder tier's reading, when it was asked.
    pub encoder: Option<&'a ResponseJudgement>,
    /// The detectors' evidence.
    pub evidence: &'a [Evidence],
    /// Whether the text is the start of a stream still going.
    pub partial: bool,
    /// The text's length in characters.
    pub chars: usize,
    /// The opening's length in bytes (pattern spans are byte offsets).
    pub opening_bytes: usize,
}

fn log_clipped(p: f32) -> f32 {
    p.max(1e-4).ln()
}

fn strongest(evidence: &[Evidence], source: &str, classes: &[VerdictClass]) -> f32 {
    strongest_where(evidence, source, classes, |_| true)
}

fn strongest_where(
    evidence: &[Evidence],
    source: &str,
    classes: &[VerdictClass],
    keep: impl Fn(&Evidence) -> bool,
) -> f32 {
    evidence
        .iter()
        .filter(|e| e.source == source && classes.contains(&e.suggests) && keep(e))
        .map(|e| e.score.clamp(0.0, 1.0))
        .fold(0.0, f32::max)
}

/// The feature vector of one answer, in [`FEATURE_NAMES`] order.
pub fn vector(inputs: &Inputs<'_>) -> [f32; N_FEATURES] {
    use VerdictClass as V;
    let mut x = [0f32; N_FEATURES];
    for (i, p) in inputs.ngram.probs.iter().enumerate() {
        x[i] = log_clipped(*p);
    }
    if let Some(enc) = inputs.encoder {
        for (i, p) in enc.probs.iter().enumerate() {
            x[4 + i] = log_clipped(*p);
        }
        x[8] = 1.0;
    }
    let ev = inputs.evidence;
    x[9] = strongest(ev, "patterns", &[V::PolicyRefusal, V::SafetyRefusal]);
    x[10] = strongest(ev, "patterns", &[V::Evasion]);
    x[11] = strongest(ev, "patterns", &[V::Inability]);
    x[12] = strongest(ev, "patterns", &[V::Answer]);
    x[13] = f32::from(u8::from(inputs.partial));
    x[14] = (1.0 + inputs.chars as f32).ln() / 8.0;
    for (i, p) in inputs.opening.probs.iter().enumerate() {
        x[15 + i] = log_clipped(*p);
    }
    for (i, p) in inputs.ending.probs.iter().enumerate() {
        x[19 + i] = log_clipped(*p);
    }
    x[23] = strongest_where(ev, "patterns", &[V::PolicyRefusal, V::SafetyRefusal], |e| {
        e.span.as_ref().is_some_and(|s| s.start < inputs.opening_bytes)
    });
    x
}

fn counts_as_token(c: char, in_word: &mut bool) -> bool {
    if crate::classify::features::is_cjk(c) {
        *in_word = false;
        true
    } else if c.is_alphanumeric() {
        let starts = !*in_word;
        *in_word = true;
        starts
    } else {
        *in_word = false;
        false
    }
}

/// The start of an answer as a stream's hold-back window would see it: about `tokens`
/// tokens, counting a CJK character or a word of other scripts as one token. Training uses
/// it to teach the models what an opening alone looks like.
pub fn window(text: &str, tokens: usize) -> &str {
    let mut count = 0usize;
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        count += usize::from(counts_as_token(c, &mut in_word));
        if count > tokens {
            return &text[..i];
        }
    }
    text
}

/// Whether `text` is no longer than `tokens` tokens as [`window`] counts them (it is its own
/// window): the texts the pipeline leaves to the patterns and the short-reply heads.
pub fn fits(text: &str, tokens: usize) -> bool {
    window(text, tokens).len() == text.len()
}

/// Whether `text` is a reply of one line or less: no longer than the stream window's part
/// ([`PART_TOKENS`]). No answer model reads such a text; a short-reply head does, at its
/// one-line threshold (`classify::short_head::ShortThresholds`). (Whitespace counts as no
/// token, so a padded text is as long as its trimmed self.)
pub fn is_one_line(text: &str) -> bool {
    fits(text, PART_TOKENS)
}

/// Whether `text` is a reply of a few sentences or less: no longer than
/// [`super::SHORT_REPLY_TOKENS`], the replies a short-reply head reviews both ways.
pub fn is_few_sentences(text: &str) -> bool {
    fits(text, super::SHORT_REPLY_TOKENS)
}

/// Whether `text` is a paragraph: longer than a few sentences, no longer than
/// [`super::PARAGRAPH_REPLY_TOKENS`], the replies a short-reply head reads only to review a
/// non-answer.
pub fn is_paragraph(text: &str) -> bool {
    !is_few_sentences(text) && fits(text, super::PARAGRAPH_REPLY_TOKENS)
}

/// The opening and the ending the n-gram model reads apart from the whole text, each `None`
/// where it is the whole text (a short text is its own opening and ending, and is read
/// once). The pipeline ([`super::answer_probs`]) and training ([`super::fit::read_parts`])
/// both cut a text here.
pub fn parts(text: &str) -> (Option<&str>, Option<&str>) {
    let (opening, ending) = (window(text, PART_TOKENS), ending(text, PART_TOKENS));
    (
        (opening.len() != text.len()).then_some(opening),
        (ending.len() != text.len()).then_some(ending),
    )
}

/// The end of an answer: its last `tokens` tokens, counted as in [`window`] (a word is
/// counted where it ends, reading backwards).
pub fn ending(text: &str, tokens: usize) -> &str {
    let mut count = 0usize;
    let mut in_word = false;
    for (i, c) in text.char_indices().rev() {
        count += usize::from(counts_as_token(c, &mut in_word));
        if count > tokens {
            let next = i + c.len_utf8();
            return text[next..].trim_start();
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_counts_words_and_cjk_characters() {
        assert_eq!(window("one two three four", 2), "one two ");
        assert_eq!(window("抱歉，我无法回答", 3), "抱歉，我");
        assert_eq!(window("short", 16), "short");
    }

    #[test]
    fn ending_counts_back_from_the_end() {
        assert_eq!(ending("one two three four", 2), "three four");
        assert_eq!(ending("我无法回答。谢谢", 3), "答。谢谢");
        assert_eq!(ending("short", 16), "short");
    }

    #[test]
    fn encoder_slot_is_zero_when_absent() {
        let ngram = ResponseJudgement {
            probs: [0.7, 0.1, 0.1, 0.1],
        };
        let x = vector(&Inputs {
            ngram: &ngram,
            opening: &ngram,
            ending: &ngram,
            encoder: None,
            evidence: &[],
            partial: true,
            chars: 10,
            opening_bytes: 10,
        });
        assert_eq!(&x[4..9], &[0.0; 5]);
        assert!((x[0] - 0.7f32.ln()).abs() < 1e-6);
        assert_eq!(x[13], 1.0);
    }
}
