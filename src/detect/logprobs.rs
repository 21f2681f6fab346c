//! Log-probability checks over streamed tokens.
//!
//! When the provider sends `logprobs`, the first tokens say how the model entered its
//! answer. A refusal opened with a token it gave 0.99 probability is a settled refusal;
//! one opened at 0.4, with an answering token close behind in `top_logprobs`, was a coin
//! flip that a new sample may well answer (the re-route layer's opt-in "resample" reads
//! this). Over the whole stream, two failure shapes show in the tokens and not in any
//! keyword list: degenerate repetition loops (what a low `repetition_penalty` invites)
//! and long low-confidence spans.

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

impl LogprobCheck {
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
                    "answer opened with refusal {:?} at probability {:.2}",
                    entry.opener, entry.probability
                ),
                span: None,
                tokens: entry.tokens,
            });
        }
        if obs.completeness != Completeness::Partial {
            if let Some((period, cycles)) = self.repetition_loop(tokens) {
                let start = tokens.len() - period * cycles;
                out.push(Evidence {
                    source: "logprobs".to_string(),
                    suggests: VerdictClass::Empty,
                    score: 0.6,
                    reason: format!("degenerate repetition: a {period}-token cycle repeated {cycles} times"),
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
                reason: format!("low-confidence span, mean logprob {mean:.2} over tokens {start}..{end}"),
                span: Some(token_span(tokens, start, end)),
                tokens: Vec::new(),
            });
        }
        out
    }
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
