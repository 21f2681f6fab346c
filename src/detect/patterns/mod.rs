//! Refusal, inability and evasion wording, in many languages.
//!
//! Refusals are formulaic. Chat models open a refusal with a handful of phrases per
//! language ("I'm sorry, but I can't…", "抱歉，我无法…", "Valitettavasti en voi…"), name
//! what they lack when they cannot ("I don't have access to real-time data"), and some
//! recite an official line instead of answering a political question ("中国政府始终坚持…").
//! This detector finds those phrases and weighs them by *where* and *how* they are said:
//!
//! - every rule is compiled once; a text is read in one pass to find which rules may match
//!   (`Prefilter`), and only those are run to find their positions;
//! - a match at the opening of the answer is strong, the same words in the middle of a long
//!   answer are weak, and words inside a code block or a quotation hardly count
//!   ([`layout`]);
//! - an answer that goes on with substantial content after a refusal-like opening ("As an
//!   AI I can't give medical advice, but here is…") gets evidence *for* the answer, so a
//!   caveat or a disclaimer does not make a refusal;
//! - the official-line phrases are counted together: one is a topic, a dense run is a
//!   recital, reported as [`VerdictClass::Evasion`](crate::VerdictClass::Evasion);
//! - until a prompt classifier exists, a refusal is split into safety and policy by its own
//!   words: naming harm, danger, illegality or violence makes it a safety refusal; naming
//!   sensitivity, politics, policy, guidelines or neutrality, or naming nothing, a policy
//!   refusal. The evidence reason says which words decided it.
//!
//! It works on a prefix of a stream too ([`Completeness::Partial`]): an opening refusal is
//! found in the first few tokens; the length-based evidence for an answer waits for the end.
//!
//! [`Patterns::scan`] is the synchronous fast path (benchmarks measure it); the
//! [`Detector`] implementation calls it.

pub mod layout;
pub mod lexicon;
mod scan;

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use regex::RegexSet;
use regex_automata::{meta, Anchored, Input};

use super::{Completeness, Detector, Observation};
use crate::verdict::Evidence;
pub use lexicon::{Anchor, Cue, Rule};

/// The pattern detector: a compiled rule set. Cloning is cheap (the automaton is shared).
#[derive(Clone)]
pub struct Patterns {
    compiled: Arc<Compiled>,
}

struct Compiled {
    rules: Vec<Rule>,
    /// Which rules may occur in a text.
    prefilter: Prefilter,
    /// The rules one by one, to find where those that may occur match.
    each: Vec<meta::Regex>,
}

/// Which rules may match a text, in one pass over it.
///
/// Why not one [`RegexSet`] of every rule: its lazy DFA tracks every rule's partial matches
/// at once, and on varied text (Chinese, Finnish, long essays) it keeps meeting state
/// combinations it has not built yet; building them was most of a verdict's cost. Most
/// rules (198 of 247) start with one of a few literal words ("sorry", "抱歉", "as an ai"),
/// so one Aho-Corasick pass finds where they may match, and each such rule is tried only
/// there, anchored (no states to build for the rest of the text). Only the rules whose
/// matches can start with a short or open-ended prefix ("i", "je", a character class) stay
/// in a smaller set. `cargo bench --bench pattern_scan` compares the two designs in one run
/// on 2,000 answers from the shared response files: the old one costs 3.3-3.6x as much per
/// answer in a cold process and 1.9-2.5x after a thousand answers (two runs). The result
/// is the same: a unit test checks that the hits are exactly every rule's own `find_iter`
/// matches.
struct Prefilter {
    /// The literal prefixes of the rules that have good ones.
    words: aho_corasick::AhoCorasick,
    /// The rule of each literal, by the literal's index.
    word_rule: Vec<usize>,
    /// The other rules, all at once.
    rest: RegexSet,
    /// The rule of each pattern of `rest`.
    rest_rule: Vec<usize>,
}

/// The shortest literal prefix (in bytes) worth a lookup: shorter ones ("i", "en", "no")
/// occur in nearly every text of their language.
const MIN_PREFIX_BYTES: usize = 3;

impl Prefilter {
    fn new(expanded: &[String]) -> Result<Prefilter, regex::Error> {
        let mut words: Vec<Vec<u8>> = Vec::new();
        let mut word_rule = Vec::new();
        let mut rest = Vec::new();
        let mut rest_rule = Vec::new();
        for (i, pattern) in expanded.iter().enumerate() {
            match literal_prefixes(pattern) {
                Some(prefixes) => {
                    word_rule.extend(std::iter::repeat_n(i, prefixes.len()));
                    words.extend(prefixes);
                }
                None => {
                    rest.push(pattern.as_str());
                    rest_rule.push(i);
                }
            }
        }
        // A full DFA: a few hundred kilobytes for these literals, and the fastest overlapping
        // search aho-corasick has.
        let words = aho_corasick::AhoCorasick::builder()
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(&words)
            .map_err(|e| regex::Error::Syntax(format!("pattern prefilter: {e}")))?;
        // The DFA that runs the set needs room for dozens of patterns with Unicode classes.
        let rest = regex::RegexSetBuilder::new(&rest)
            .size_limit(64 << 20)
            .dfa_size_limit(64 << 20)
            .build()?;
        Ok(Prefilter {
            words,
            word_rule,
            rest,
            rest_rule,
        })
    }

    /// Where rules may match in `text`: (rule, byte offset) pairs where a rule's match may
    /// start, sorted and without repeats, and the rules without literal prefixes that
    /// match somewhere.
    fn candidates(&self, text: &str) -> (Vec<(usize, usize)>, Vec<usize>) {
        let mut starts: Vec<(usize, usize)> = self
            .words
            .find_overlapping_iter(text)
            .map(|m| (self.word_rule[m.pattern().as_usize()], m.start()))
            .collect();
        starts.sort_unstable();
        starts.dedup();
        let rest = self
            .rest
            .matches(text)
            .iter()
            .map(|r| self.rest_rule[r])
            .collect();
        (starts, rest)
    }
}

/// The literals every match of `pattern` starts with, when there are few and all are long
/// enough to be rare ([`MIN_PREFIX_BYTES`]); `None` otherwise. regex-syntax's extractor
/// (the one the regex crate builds its own prefilters with) finds them.
fn literal_prefixes(pattern: &str) -> Option<Vec<Vec<u8>>> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let hir = regex_syntax::ParserBuilder::new().build().parse(pattern).ok()?;
    let mut extractor = Extractor::new();
    extractor
        .kind(ExtractKind::Prefix)
        .limit_class(4)
        .limit_repeat(4)
        .limit_literal_len(12)
        .limit_total(300);
    let mut seq = extractor.extract(&hir);
    // Shortens literals that share a prefix; each stays a prefix of every match it stood for.
    seq.optimize_for_prefix_by_preference();
    let literals = seq.literals()?;
    let good = !literals.is_empty() && literals.iter().all(|l| l.len() >= MIN_PREFIX_BYTES);
    good.then(|| literals.iter().map(|l| l.as_bytes().to_vec()).collect())
}

impl std::fmt::Debug for Patterns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Patterns")
            .field("rules", &self.compiled.rules.len())
            .finish()
    }
}

impl Default for Patterns {
    /// The built-in rules.
    fn default() -> Self {
        Patterns::builtin().clone()
    }
}

static BUILTIN: LazyLock<Patterns> = LazyLock::new(|| {
    Patterns::from_rules(lexicon::builtin_rules()).expect("the built-in refusal patterns compile")
});

impl Patterns {
    /// The built-in patterns, compiled once on first use.
    pub fn builtin() -> &'static Patterns {
        &BUILTIN
    }

    /// Compiles a rule set (the built-in one, or one extended by the caller).
    pub fn from_rules(rules: Vec<Rule>) -> Result<Patterns, regex::Error> {
        let expanded: Vec<String> = rules.iter().map(|r| lexicon::expand(r.pattern)).collect();
        let prefilter = Prefilter::new(&expanded)?;
        let each = expanded
            .iter()
            .map(|p| {
                meta::Regex::builder()
                    .configure(meta::Config::new().nfa_size_limit(Some(16 << 20)))
                    .build(p)
                    .map_err(|e| regex::Error::Syntax(format!("{p}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Patterns {
            compiled: Arc::new(Compiled {
                rules,
                prefilter,
                each,
            }),
        })
    }

    /// The rules this detector was compiled from.
    pub fn rules(&self) -> &[Rule] {
        &self.compiled.rules
    }

    /// Evidence found in a complete answer text.
    pub fn scan(&self, text: &str) -> Vec<Evidence> {
        self.scan_with(text, Completeness::Complete)
    }

    /// Evidence found in an answer text, complete or a stream's prefix so far.
    pub fn scan_with(&self, text: &str, completeness: Completeness) -> Vec<Evidence> {
        let hits = self.hits(text);
        scan::weigh(text, &hits, &self.compiled.rules, completeness)
    }

    /// Every match of every rule, as (rule index, byte range), in text order.
    fn hits(&self, text: &str) -> Vec<scan::Hit> {
        // Lower-casing only ASCII keeps every byte offset valid for the original text.
        let lowered = text.to_ascii_lowercase();
        let mut hits = Vec::new();
        let (starts, rest) = self.compiled.prefilter.candidates(&lowered);
        // A rule with literal prefixes is tried only where one of them occurs, anchored
        // there. Taking the starts in order and going on from the end of each match gives
        // exactly `find_iter`'s leftmost-first, non-overlapping matches: every match starts
        // at one of those places.
        let mut current = (usize::MAX, 0);
        for (rule, at) in starts {
            if rule != current.0 {
                current = (rule, 0);
            }
            if at < current.1 {
                continue;
            }
            let input = Input::new(&lowered).range(at..).anchored(Anchored::Yes);
            if let Some(m) = self.compiled.each[rule].search(&input) {
                hits.push(scan::Hit {
                    rule,
                    start: m.start(),
                    end: m.end(),
                });
                current.1 = m.end().max(at + 1);
            }
        }
        for rule in rest {
            for m in self.compiled.each[rule].find_iter(&lowered) {
                hits.push(scan::Hit {
                    rule,
                    start: m.start(),
                    end: m.end(),
                });
            }
        }
        hits.sort_by_key(|h| (h.start, h.rule));
        hits
    }
}

#[async_trait]
impl Detector for Patterns {
    fn name(&self) -> &str {
        "patterns"
    }

    async fn detect(&self, observation: &Observation<'_>) -> Vec<Evidence> {
        self.scan_with(observation.text, observation.completeness)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers in many languages and shapes: the project's fixture log and its regression
    /// sets, and each of them cut after every sentence (a stream's prefixes).
    fn texts() -> Vec<String> {
        let mut out = Vec::new();
        for file in [
            include_str!("../../../fixtures/audit/chat-log.jsonl"),
            include_str!("../../../tests/data/regression-en.jsonl"),
            include_str!("../../../tests/data/regression-zh.jsonl"),
        ] {
            for line in file.lines().filter(|l| !l.trim().is_empty()) {
                let v: serde_json::Value = serde_json::from_str(line).expect("fixture line is JSON");
                let text = v["response"].as_str().unwrap_or_default().to_ascii_lowercase();
                for (i, c) in text
                    .char_indices()
                    .filter(|(_, c)| matches!(c, '.' | '。' | '!' | '？'))
                {
                    out.push(text[..i + c.len_utf8()].to_string());
                }
                out.push(text);
            }
        }
        out
    }

    #[test]
    fn hits_are_exactly_every_rules_own_matches() {
        let patterns = Patterns::builtin();
        let c = &patterns.compiled;
        let texts = texts();
        assert!(texts.len() > 500, "only {} texts", texts.len());
        let mut matched = 0;
        for text in &texts {
            // The reference: each rule on its own over the whole text.
            let mut expected = Vec::new();
            for (rule, regex) in c.each.iter().enumerate() {
                for m in regex.find_iter(text.as_str()) {
                    expected.push((m.start(), rule, m.end()));
                }
            }
            expected.sort_unstable();
            matched += expected.len();
            let got: Vec<(usize, usize, usize)> = patterns
                .hits(text)
                .iter()
                .map(|h| (h.start, h.rule, h.end))
                .collect();
            assert_eq!(got, expected, "in {text:?}");
        }
        // The texts exercise the rules (not a vacuous pass).
        assert!(matched > 300, "only {matched} rule matches");
    }

    #[test]
    fn most_rules_are_found_by_their_literal_prefixes() {
        let c = &Patterns::builtin().compiled;
        let by_words = c.each.len() - c.prefilter.rest_rule.len();
        assert!(
            by_words * 2 > c.each.len(),
            "{by_words} of {} rules have literal prefixes",
            c.each.len()
        );
    }
}
