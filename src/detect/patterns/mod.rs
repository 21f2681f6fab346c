//! Refusal, inability and evasion wording, in many languages.
//!
//! Refusals are formulaic. Chat models open a refusal with a handful of phrases per
//! language ("I'm sorry, but I can't…", "抱歉，我无法…", "Valitettavasti en voi…"), name
//! what they lack when they cannot ("I don't have access to real-time data"), and some
//! recite an official line instead of answering a political question ("中国政府始终坚持…").
//! This detector finds those phrases and weighs them by *where* and *how* they are said:
//!
//! - every rule of every language is compiled once into a single [`regex::RegexSet`] (one
//!   automaton, one pass over the text); only the rules that matched are run again to find
//!   their positions;
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
use regex::{Regex, RegexSet};

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
    /// All rules at once: which of them occur anywhere in the text.
    set: RegexSet,
    /// The same rules one by one, to find the positions of those that occurred.
    each: Vec<Regex>,
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
        // The DFA that runs the set needs room for ~150 patterns with Unicode classes.
        let set = regex::RegexSetBuilder::new(&expanded)
            .size_limit(64 << 20)
            .dfa_size_limit(64 << 20)
            .build()?;
        let each = expanded
            .iter()
            .map(|p| regex::RegexBuilder::new(p).size_limit(16 << 20).build())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Patterns {
            compiled: Arc::new(Compiled { rules, set, each }),
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
        for rule in self.compiled.set.matches(&lowered).iter() {
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
