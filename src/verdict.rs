//! The verdict: what an answer turned out to be, and why we think so.
//!
//! One type is used everywhere: the guard layer attaches it to responses, the re-route
//! layer's policy is keyed by its class, audits and `eval` count it, the gateway writes it
//! into headers and metrics. [`VerdictKind`] is the taxonomy of DESIGN.md; [`Verdict`] adds
//! the confidence, the evidence that led to it, and the time the decision took.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::wire::ModerationStage;

/// What an answer is, with the details that matter for acting on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VerdictKind {
    /// The model answered (caveats and disclaimers included).
    Answer,
    /// The model declined a benign request on content-policy grounds.
    PolicyRefusal,
    /// A deflection that does not answer: talks around it, changes the subject, recites
    /// an official line.
    Evasion,
    /// The request itself was harmful; the refusal is justified.
    SafetyRefusal {
        /// Guard-model taxonomy codes (`S1`…`S14`) or names, when known.
        categories: Vec<String>,
    },
    /// The model cannot know or do it (no real-time data, no private data, out of scope).
    Inability,
    /// The provider's moderation stopped the request or the answer.
    ProviderBlock { stage: ModerationStage },
    /// Nothing came back.
    Empty,
}

/// The class of a verdict without its details: what policies, labels and metrics key on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictClass {
    Answer,
    PolicyRefusal,
    Evasion,
    SafetyRefusal,
    Inability,
    ProviderBlock,
    Empty,
}

impl VerdictClass {
    /// Every class, in a stable order (reports and confusion matrices use it).
    pub const ALL: [VerdictClass; 7] = [
        VerdictClass::Answer,
        VerdictClass::PolicyRefusal,
        VerdictClass::Evasion,
        VerdictClass::SafetyRefusal,
        VerdictClass::Inability,
        VerdictClass::ProviderBlock,
        VerdictClass::Empty,
    ];

    /// The snake_case name used in headers, JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictClass::Answer => "answer",
            VerdictClass::PolicyRefusal => "policy_refusal",
            VerdictClass::Evasion => "evasion",
            VerdictClass::SafetyRefusal => "safety_refusal",
            VerdictClass::Inability => "inability",
            VerdictClass::ProviderBlock => "provider_block",
            VerdictClass::Empty => "empty",
        }
    }

    /// Whether this class means the caller did not get an answer.
    pub fn is_non_answer(self) -> bool {
        self != VerdictClass::Answer
    }
}

impl fmt::Display for VerdictClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for VerdictClass {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VerdictClass::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = VerdictClass::ALL.iter().map(|c| c.as_str()).collect();
                format!(
                    "unknown verdict class {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

impl VerdictKind {
    /// The class of this verdict.
    pub fn class(&self) -> VerdictClass {
        match self {
            VerdictKind::Answer => VerdictClass::Answer,
            VerdictKind::PolicyRefusal => VerdictClass::PolicyRefusal,
            VerdictKind::Evasion => VerdictClass::Evasion,
            VerdictKind::SafetyRefusal { .. } => VerdictClass::SafetyRefusal,
            VerdictKind::Inability => VerdictClass::Inability,
            VerdictKind::ProviderBlock { .. } => VerdictClass::ProviderBlock,
            VerdictKind::Empty => VerdictClass::Empty,
        }
    }
}

/// A token and the log-probability the provider reported for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenEvidence {
    pub token: String,
    pub logprob: f64,
}

/// A byte range of the answer text that a detector pointed at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// One detector's or model's contribution to a verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Which detector or model: `provider_signal`, `patterns`, `logprobs`, a model id.
    pub source: String,
    /// The class this evidence points to.
    pub suggests: VerdictClass,
    /// How strongly, from 0 to 1.
    pub score: f32,
    /// A short human-readable reason ("opening refusal formula 'I'm sorry, but I can't'").
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<Span>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<TokenEvidence>,
}

/// The decision about one answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub kind: VerdictKind,
    /// How sure the pipeline is of `kind`, from 0 to 1.
    pub confidence: f32,
    /// Everything that contributed, strongest first.
    pub evidence: Vec<Evidence>,
    /// How long the decision took.
    #[serde(rename = "elapsed_us", with = "duration_micros")]
    pub elapsed: Duration,
}

impl Verdict {
    /// A verdict with no evidence, as a starting point.
    pub fn new(kind: VerdictKind, confidence: f32) -> Self {
        Verdict {
            kind,
            confidence,
            evidence: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }

    /// The class of the verdict.
    pub fn class(&self) -> VerdictClass {
        self.kind.class()
    }

    /// Whether the caller got an answer.
    pub fn is_answer(&self) -> bool {
        self.class() == VerdictClass::Answer
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:.2})", self.class(), self.confidence)?;
        match &self.kind {
            VerdictKind::SafetyRefusal { categories } if !categories.is_empty() => {
                write!(f, " [{}]", categories.join(","))?
            }
            VerdictKind::ProviderBlock { stage } => write!(f, " [{stage:?} stage]")?,
            _ => {}
        }
        if let Some(e) = self.evidence.first() {
            write!(f, ": {}", e.reason)?;
        }
        Ok(())
    }
}

mod duration_micros {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_micros() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_micros(u64::deserialize(d)?))
    }
}

/// A set of verdict classes (what a guard stops on, what a router re-routes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct VerdictSet(u8);

impl VerdictSet {
    /// The empty set.
    pub const fn empty() -> Self {
        VerdictSet(0)
    }

    /// The default re-route set of DESIGN.md: policy refusals, evasions, provider blocks
    /// and empty answers. Safety refusals and inabilities are not in it.
    pub const fn policy_driven() -> Self {
        VerdictSet::empty()
            .with(VerdictClass::PolicyRefusal)
            .with(VerdictClass::Evasion)
            .with(VerdictClass::ProviderBlock)
            .with(VerdictClass::Empty)
    }

    /// Every non-answer class.
    pub const fn all_non_answers() -> Self {
        VerdictSet::policy_driven()
            .with(VerdictClass::SafetyRefusal)
            .with(VerdictClass::Inability)
    }

    const fn bit(class: VerdictClass) -> u8 {
        1 << (class as u8)
    }

    /// The set with `class` added.
    pub const fn with(self, class: VerdictClass) -> Self {
        VerdictSet(self.0 | Self::bit(class))
    }

    /// The set with `class` removed.
    pub const fn without(self, class: VerdictClass) -> Self {
        VerdictSet(self.0 & !Self::bit(class))
    }

    /// Whether `class` is in the set.
    pub const fn contains(self, class: VerdictClass) -> bool {
        self.0 & Self::bit(class) != 0
    }

    /// The classes in the set, in [`VerdictClass::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = VerdictClass> {
        VerdictClass::ALL.into_iter().filter(move |c| self.contains(*c))
    }
}

impl FromIterator<VerdictClass> for VerdictSet {
    fn from_iter<I: IntoIterator<Item = VerdictClass>>(iter: I) -> Self {
        iter.into_iter().fold(VerdictSet::empty(), VerdictSet::with)
    }
}

impl Serialize for VerdictSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for VerdictSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<VerdictClass>::deserialize(d)?.into_iter().collect())
    }
}
