//! Log-probability checks over streamed tokens.
//!
//! When the provider sends `logprobs`, the first tokens say how the model entered its
//! answer. A refusal opened with a token it gave 0.99 probability is a settled refusal;
//! one opened at 0.4, with an answering token close behind in `top_logprobs`, was a coin
//! flip that a new sample may well answer (the re-route layer's opt-in "resample" reads
//! this). Over the whole stream, two failure shapes show in the tokens and not in any
//! keyword list: degenerate repetition loops (what a low `repetition_penalty` invites)
//! and long low-confidence spans.
//!
//! With `top_logprobs`, the alternatives at the first tokens say how close the model came
//! to the other road: the probability mass of alternatives that leave every refusal
//! opener, at the fork where a refusal entry could still have become an answer (and, for
//! an answer, the mass of alternatives that would have begun a refusal). That is the
//! [`Opening`], reported on every answer that has logprobs as evidence with no weight of
//! its own (`suggests: answer`, score 0), its numbers written into the reason as
//! `key=value` pairs that [`reason_fields`] reads back: features for a trained combiner,
//! not a vote in the hand-tuned one.

use async_trait::async_trait;

use super::{Completeness, Detector, Observation};
use crate::verdict::{Evidence, Span, TokenEvidence, VerdictClass};
use crate::wire::TokenLogprob;

/// Openings of a refusal, lower-cased, as the first content tokens spell them.
const REFUSAL_OPENERS: &[&str] = &[
    "i'm sorry",
    "i am sorry",
    "sorry",
    "i cannot",
    "i can't",
    "i can’t",
    "i'm unable",
    "i am unable",
    "i won't",
    "as an ai",
    "unfortunately, i",
    "抱歉",
    "对不起",
    "很抱歉",
    "我无法",
    "我不能",
    "作为一个人工智能",
    "作为ai",
];

/// The log-probability detector.
#[derive(Debug, Clone)]
pub struct LogprobCheck {
    /// Tokens of the opening examined for a refusal entry.
    pub opening_tokens: usize,
    /// A repeat of this many cycles at the end of the answer counts as a loop.
    pub loop_min_cycles: usize,
    /// Mean logprob below which a span counts as low-confidence.
    pub low_confidence_mean: f64,
    /// The span length (tokens) for the low-confidence check.
    pub low_confidence_span: usize,
}

impl Default for LogprobCheck {
    fn default() -> Self {
        LogprobCheck {
            opening_tokens: 8,
            loop_min_cycles: 4,
            low_confidence_mean: -2.5,
            low_confidence_span: 12,
        }
    }
}

/// How the model entered a refusal: the opening it spelled and how likely it was.
#[derive(Debug, Clone, PartialEq)]
pub struct RefusalEntry {
    /// The opener matched (`i'm sorry`, `抱歉`, …).
    pub opener: &'static str,
    /// The probability of the tokens that spelled it, `exp(Σ logprob)`.
    pub probability: f64,
    /// The tokens that spelled it.
    pub tokens: Vec<TokenEvidence>,
}

/// What the first tokens and their alternatives say about how the answer began.
#[derive(Debug, Clone, PartialEq)]
pub struct Opening {
    /// Whether the tokens spelled a refusal opener.
    pub entered_refusal: bool,
    /// The probability of the first token.
    pub first_probability: f64,
    /// The most alternatives seen at one of the examined tokens (0 without `top_logprobs`).
    pub top_k: usize,
    /// The largest mass of alternatives, at one position, that leave every refusal
    /// opener: for a refusal entry, how nearly the model started an answer instead.
    pub answer_mass: f64,
    /// The position (token index) of that mass.
    pub fork_at: usize,
    /// The mass of the first token's alternatives (the chosen one excluded) that would
    /// have begun a refusal opener: for an answer, how nearly the model refused.
    pub refusal_mass: f64,
    /// The alternatives at the fork that leave every opener, most likely first.
    pub answer_alternatives: Vec<TokenEvidence>,
}

/// Whether text spelled so far (already trimmed at the start and lower-cased) may still
/// become, or already is, a refusal opener.
fn may_open_refusal(lowered: &str) -> bool {
    REFUSAL_OPENERS
        .iter()
        .any(|o| o.starts_with(lowered) || lowered.starts_with(o))
}

impl LogprobCheck {
    /// How the answer began, from its first tokens and their alternatives; `None` without tokens.
    pub fn opening(&self, tokens: &[TokenLogprob]) -> Option<Opening> {
        let first = tokens.first()?;
        let entry = self.refusal_entry(tokens);
        // For a refusal, the forks along the tokens that spelled the opener; for an
        // answer, the first token only (after it the answer is already under way).
        let examined = entry.as_ref().map_or(1, |e| e.tokens.len());
        let mut spelled = String::new();
        let mut opening = Opening {
            entered_refusal: entry.is_some(),
            first_probability: first.logprob.exp(),
            top_k: 0,
            answer_mass: 0.0,
            fork_at: 0,
            refusal_mass: 0.0,
            answer_alternatives: Vec::new(),
        };
        for (i, token) in tokens.iter().take(examined).enumerate() {
            let alternatives = token.top_logprobs.as_deref().unwrap_or(&[]);
            opening.top_k = opening.top_k.max(alternatives.len());
            let mut leaving = Vec::new();
            let mut answer_mass = 0.0;
            for alt in alternatives.iter().filter(|a| a.token != token.token) {
                let candidate = format!("{spelled}{}", alt.token);
                let lowered = candidate.trim_start().to_lowercase();
                if lowered.is_empty() {
                    // Whitespace leads both roads; it decides nothing.
                    continue;
                }
                let p = alt.logprob.exp();
                if may_open_refusal(&lowered) {
                    if i == 0 {
                        opening.refusal_mass += p;
                    }
                } else {
                    answer_mass += p;
                    leaving.push(TokenEvidence {
                        token: alt.token.clone(),
                        logprob: alt.logprob,
                    });
                }
            }
            if answer_mass > opening.answer_mass {
                leaving.sort_by(|a, b| b.logprob.total_cmp(&a.logprob));
                opening.answer_mass = answer_mass;
                opening.fork_at = i;
                opening.answer_alternatives = leaving;
            }
            spelled.push_str(&token.token);
        }
        Some(opening)
    }

    /// The refusal entry of an answer, if its first tokens spell a refusal opener.
    pub fn refusal_entry(&self, tokens: &[TokenLogprob]) -> Option<RefusalEntry> {
        let mut spelled = String::new();
        let mut used = Vec::new();
        for t in tokens.iter().take(self.opening_tokens) {
            spelled.push_str(&t.token);
            used.push(t);
            let lowered = spelled.trim_start().to_lowercase();
            if let Some(opener) = REFUSAL_OPENERS.iter().find(|o| lowered.starts_with(*o)) {
                let logprob: f64 = used.iter().map(|t| t.logprob).sum();
                return Some(RefusalEntry {
                    opener,
                    probability: logprob.exp(),
                    tokens: used
                        .iter()
                        .map(|t| TokenEvidence {
                            token: t.token.clone(),
                            logprob: t.logprob,
                        })
                        .collect(),
                });
            }
            if !REFUSAL_OPENERS
                .iter()
                .any(|o| o.starts_with(&lowered) || lowered.starts_with(o))
            {
                return None;
            }
        }
        None
    }

    /// The length of a repeated cycle at the end of the tokens, and how many times it repeats,
    /// when it repeats at least `loop_min_cycles` times.
    pub fn repetition_loop(&self, tokens: &[TokenLogprob]) -> Option<(usize, usize)> {
        let n = tokens.len();
        for period in 1..=32.min(n / self.loop_min_cycles.max(1)) {
            let mut cycles = 1;
            while (cycles + 1) * period <= n {
                let a = &tokens[n - (cycles + 1) * period..n - cycles * period];
                let b = &tokens[n - period..n];
                if a.iter().zip(b).all(|(x, y)| x.token == y.token) {
                    cycles += 1;
                } else {
                    break;
                }
            }
            // Single-token "loops" of whitespace or punctuation are formatting, not degeneration.
            let meaningful = tokens[n - period..]
                .iter()
                .any(|t| t.token.chars().any(char::is_alphanumeric));
            if cycles >= self.loop_min_cycles && meaningful && cycles * period >= 12 {
                return Some((period, cycles));
            }
        }
        None
    }

    /// The token range of the least confident span, when its mean is below the threshold.
    pub fn low_confidence_span(&self, tokens: &[TokenLogprob]) -> Option<(usize, usize, f64)> {
        let w = self.low_confidence_span;
        if tokens.len() < w || w == 0 {
            return None;
        }
        let mut sum: f64 = tokens[..w].iter().map(|t| t.logprob).sum();
        let mut best = (0, sum);
        for i in w..tokens.len() {
            sum += tokens[i].logprob - tokens[i - w].logprob;
            if sum < best.1 {
                best = (i + 1 - w, sum);
            }
        }
        let mean = best.1 / w as f64;
        (mean < self.low_confidence_mean).then_some((best.0, best.0 + w, mean))
    }

    /// The evidence, synchronously.
    pub fn scan(&self, obs: &Observation<'_>) -> Vec<Evidence> {
        let tokens = obs.tokens;
        let mut out = Vec::new();
        if tokens.is_empty() {
            return out;
        }
        if let Some(entry) = self.refusal_entry(tokens) {
            // A confident entry is strong evidence on its own; a coin flip is weak.
            let score = (0.35 + 0.5 * entry.probability) as f32;
            out.push(Evidence {
                source: "logprobs".to_string(),
                suggests: VerdictClass::PolicyRefusal,
                score,
                reason: format!(
                    "answer opened with refusal {:?} at probability {:.2} (entry_p={:.4} entry_tokens={})",
                    entry.opener,
                    entry.probability,
                    entry.probability,
                    entry.tokens.len()
                ),
                span: None,
                tokens: entry.tokens,
            });
        }
        if let Some(o) = self.opening(tokens) {
            // Weightless on purpose: the numbers are for a trained combiner to weigh.
            out.push(Evidence {
                source: "logprobs".to_string(),
                suggests: VerdictClass::Answer,
                score: 0.0,
                reason: format!(
                    "opening alternatives (entered_refusal={} first_p={:.4} answer_mass={:.4} fork_at={} refusal_mass={:.4} top_k={})",
                    u8::from(o.entered_refusal),
                    o.first_probability,
                    o.answer_mass,
                    o.fork_at,
                    o.refusal_mass,
                    o.top_k
                ),
                span: None,
                tokens: o.answer_alternatives,
            });
        }
        if obs.completeness != Completeness::Partial {
            if let Some((period, cycles)) = self.repetition_loop(tokens) {
                let start = tokens.len() - period * cycles;
                out.push(Evidence {
                    source: "logprobs".to_string(),
                    suggests: VerdictClass::Empty,
                    score: 0.6,
                    reason: format!(
                        "degenerate repetition: a {period}-token cycle repeated {cycles} times (period={period} cycles={cycles})"
                    ),
                    span: Some(token_span(tokens, start, tokens.len())),
                    tokens: Vec::new(),
                });
            }
        }
        if let Some((start, end, mean)) = self.low_confidence_span(tokens) {
            // Recorded for people reading the evidence; it does not move the verdict.
            out.push(Evidence {
                source: "logprobs".to_string(),
                suggests: VerdictClass::Answer,
                score: 0.0,
                reason: format!(
                    "low-confidence span, mean logprob {mean:.2} over tokens {start}..{end} (mean_logprob={mean:.4} start={start} end={end})"
                ),
                span: Some(token_span(tokens, start, end)),
                tokens: Vec::new(),
            });
        }
        out
    }
}

/// The `key=value` numbers of a logprob evidence's reason (`entry_p`, `answer_mass`, …),
/// in order; words that are not such a pair are skipped.
pub fn reason_fields(reason: &str) -> impl Iterator<Item = (&str, f64)> + '_ {
    let inner = reason
        .rfind('(')
        .map_or("", |at| reason[at + 1..].trim_end_matches(')'));
    inner.split_whitespace().filter_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        Some((key, value.parse().ok()?))
    })
}

/// The text span covered by tokens `start..end` (byte offsets into the concatenated tokens).
fn token_span(tokens: &[TokenLogprob], start: usize, end: usize) -> Span {
    let offset: usize = tokens[..start].iter().map(|t| t.token.len()).sum();
    let text: String = tokens[start..end].iter().map(|t| t.token.as_str()).collect();
    Span {
        start: offset,
        end: offset + text.len(),
        text,
    }
}

#[async_trait]
impl Detector for LogprobCheck {
    fn name(&self) -> &str {
        "logprobs"
    }

    async fn detect(&self, observation: &Observation<'_>) -> Vec<Evidence> {
        self.scan(observation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(pairs: &[(&str, f64)]) -> Vec<TokenLogprob> {
        pairs
            .iter()
            .map(|(t, l)| TokenLogprob {
                token: t.to_string(),
                logprob: *l,
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn confident_refusal_entry_is_strong_and_coin_flip_weak() {
        let check = LogprobCheck::default();
        let confident = toks(&[("I", -0.01), ("'m", -0.01), (" sorry", -0.02), (",", -0.1)]);
        let entry = check.refusal_entry(&confident).unwrap();
        assert_eq!(entry.opener, "i'm sorry");
        assert!(entry.probability > 0.95);
        let flip = toks(&[("I", -0.3), ("'m", -0.2), (" sorry", -0.5)]);
        let weak = check.refusal_entry(&flip).unwrap();
        assert!(weak.probability < 0.4);
        let score = |t: &[TokenLogprob]| {
            let obs = Observation {
                tokens: t,
                ..Observation::text("")
            };
            check.scan(&obs)[0].score
        };
        let (strong, coin) = (score(&confident), score(&flip));
        assert!(strong > 0.8 && coin < 0.6, "{strong} {coin}");
    }

    #[test]
    fn chinese_refusal_entry_and_answer_opening() {
        let check = LogprobCheck::default();
        let zh = toks(&[("抱", -0.05), ("歉", -0.01), ("，", -0.1)]);
        assert_eq!(check.refusal_entry(&zh).unwrap().opener, "抱歉");
        let answer = toks(&[("The", -0.1), (" capital", -0.2), (" of", -0.01)]);
        assert!(check.refusal_entry(&answer).is_none());
    }

    #[test]
    fn repetition_loop_found_and_normal_text_not() {
        let check = LogprobCheck::default();
        let mut looping = toks(&[("Intro", -0.1), (" text", -0.1)]);
        for _ in 0..6 {
            looping.extend(toks(&[(" the", -0.1), (" same", -0.1), (" thing", -0.1)]));
        }
        assert_eq!(check.repetition_loop(&looping), Some((3, 6)));
        let normal = toks(&[
            ("a", -0.1),
            (" b", -0.1),
            (" c", -0.1),
            (" d", -0.1),
            (" e", -0.1),
        ]);
        assert_eq!(check.repetition_loop(&normal), None);
        let dashes: Vec<_> = (0..40).map(|_| toks(&[("-", -0.01)])[0].clone()).collect();
        assert_eq!(
            check.repetition_loop(&dashes),
            None,
            "a markdown rule is not a loop"
        );
    }

    fn alt(token: &str, logprob: f64) -> crate::wire::TopLogprob {
        crate::wire::TopLogprob {
            token: token.to_string(),
            logprob,
            ..Default::default()
        }
    }

    #[test]
    fn opening_measures_how_nearly_a_refusal_began_as_an_answer() {
        let check = LogprobCheck::default();
        let mut tokens = toks(&[("I", -0.7), ("'m", -0.05), (" sorry", -0.01), (",", -0.1)]);
        // "The" leaves every opener, "Sorry" is one, whitespace decides nothing.
        tokens[0].top_logprobs = Some(vec![
            alt("I", -0.7),
            alt("The", -1.0),
            alt("Sorry", -3.0),
            alt(" ", -4.0),
        ]);
        tokens[1].top_logprobs = Some(vec![alt("'m", -0.05), alt(" think", -3.2)]);
        let o = check.opening(&tokens).unwrap();
        assert!(o.entered_refusal);
        assert_eq!((o.fork_at, o.top_k), (0, 4));
        assert!((o.answer_mass - (-1.0f64).exp()).abs() < 1e-9, "{o:?}");
        assert!((o.refusal_mass - (-3.0f64).exp()).abs() < 1e-9, "{o:?}");
        assert_eq!(o.answer_alternatives[0].token, "The");

        let obs = Observation {
            tokens: &tokens,
            ..Observation::text("")
        };
        let evidence = check.scan(&obs);
        let opening = evidence
            .iter()
            .find(|e| e.reason.starts_with("opening"))
            .expect("opening evidence");
        assert_eq!((opening.suggests, opening.score), (VerdictClass::Answer, 0.0));
        let fields: std::collections::HashMap<_, _> = reason_fields(&opening.reason).collect();
        assert_eq!(fields["entered_refusal"], 1.0);
        assert!((fields["answer_mass"] - o.answer_mass).abs() < 1e-4);
        let entry = evidence
            .iter()
            .find(|e| e.suggests == VerdictClass::PolicyRefusal)
            .unwrap();
        let entry_p = reason_fields(&entry.reason)
            .find(|(k, _)| *k == "entry_p")
            .unwrap()
            .1;
        assert!((entry_p - (-0.76f64).exp()).abs() < 1e-4, "{}", entry.reason);
    }

    #[test]
    fn opening_of_an_answer_measures_how_nearly_it_refused() {
        let check = LogprobCheck::default();
        let mut tokens = toks(&[("The", -0.2), (" capital", -0.1)]);
        tokens[0].top_logprobs = Some(vec![alt("The", -0.2), alt("I", -2.0), alt("Paris", -2.5)]);
        let o = check.opening(&tokens).unwrap();
        assert!(!o.entered_refusal);
        assert!((o.refusal_mass - (-2.0f64).exp()).abs() < 1e-9);
        assert!((o.answer_mass - (-2.5f64).exp()).abs() < 1e-9);
        let plain = toks(&[("The", -0.2)]);
        assert_eq!(
            check.opening(&plain).unwrap().top_k,
            0,
            "no alternatives, no masses"
        );
        assert!(check.opening(&[]).is_none());
    }

    #[test]
    fn low_confidence_span_located() {
        let check = LogprobCheck::default();
        let mut t = toks(&[("ok", -0.1); 20]);
        for tok in t.iter_mut().skip(5).take(12) {
            tok.logprob = -4.0;
        }
        let (start, end, mean) = check.low_confidence_span(&t).unwrap();
        assert_eq!((start, end), (5, 17));
        assert!(mean < -3.9);
        assert!(check.low_confidence_span(&toks(&[("ok", -0.1); 20])).is_none());
    }
}
