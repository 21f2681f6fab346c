//! Pre-routing: a request the primary is known to over-block goes straight to the
//! fallback that answered it before, skipping the doomed call.
//!
//! What is remembered: after the primary over-blocked a request (a DashScope input-stage
//! block, or a [`VerdictKind::PolicyRefusal`], i.e. a refusal of a request the pipeline
//! judged benign) and a fallback answered it, the request's prompt (its last user message)
//! is stored with the index of that fallback. After an input-stage block the whole
//! conversation is stored too: turn N+1 of a chat repeats every message of turn N, so a
//! flagged history would trip the same moderation on every later turn (conversation
//! affinity, looked up by the hashes of the history without its last one or two messages).
//! Justified refusals ([`VerdictKind::SafetyRefusal`], including the fail-safe "unsure"
//! ones) are never stored.
//!
//! How a request is matched, cheapest first: the exact prompt (hashed after folding case
//! and dropping spacing and punctuation); the conversation keys; then the most similar stored prompt by
//! cosine similarity of prompt embeddings, at or above a threshold. The embedding comes
//! from a [`PromptEmbedder`]; the default, [`NgramEmbedder`], folds the embedded n-gram
//! model's hashed input features into a unit vector (microseconds, no download; why not
//! the model's averaged embedding is said there), and an encoder can be plugged in
//! instead.
//!
//! Never for a harmful request: the embedder also judges the prompt's harm (the n-gram
//! model's prompt head reads the same features, so it is nearly free), and a prompt judged
//! at or above [`PreRouteConfig::max_harm`] is neither stored nor pre-routed, whatever it
//! matched. An embedder that cannot judge harm only allows exact and conversation matches,
//! whose prompts were judged when they were stored. A similar match is a different request,
//! so where the re-route layer has the guard's models
//! ([`RerouteLayer::preroute_judge`](crate::layer::RerouteLayer::preroute_judge); the gateway
//! passes them), they judge it too, with the guard's own prompt tiers (the encoder, where one
//! is installed) and harm policy, and it is pre-routed only when judged clearly benign.
//!
//! Bounded memory: at most [`PreRouteConfig::capacity`] entries (least recently used
//! forgotten first), each forgotten after [`PreRouteConfig::ttl`] so that a primary whose
//! policy changed gets the request again. The similarity scan reads every stored
//! embedding (256 floats, 1 KiB, each for the default embedder): 10,000 entries are
//! 10 MiB and a scan of a few million multiply-adds, about a millisecond on one core.

use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lru::LruCache;
use serde::Serialize;

use crate::classify::features::extract;
use crate::classify::ngram::NgramModel;
use crate::verdict::{Verdict, VerdictClass, VerdictKind};
use crate::wire::{Message, ModerationStage};

/// A prompt's embedding and, when the embedder can tell, its harm.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoding {
    /// L2-normalised, so that a dot product is the cosine similarity.
    pub embedding: Vec<f32>,
    /// P(harmful), when the embedder has a harm head.
    pub harmful: Option<f32>,
}

/// Turns a prompt into an [`Encoding`]. Runs on the request path before any provider is
/// called, so it must be cheap (microseconds, not a model forward pass of milliseconds).
pub trait PromptEmbedder: Send + Sync + std::fmt::Debug {
    /// A short name for logs.
    fn name(&self) -> &str;
    /// The prompt's embedding (and harm, if known).
    fn encode(&self, prompt: &str) -> Encoding;
}

/// The embedded n-gram model as an embedder: its hashed input features (the character
/// and word n-grams it reads, [`crate::classify::features`]) folded by signed feature
/// hashing into [`NgramEmbedder::DIM`] dimensions and L2-normalised, and the prompt head's
/// P(harmful) from the same features.
///
/// Why not the head's averaged embedding ([`crate::classify::ngram::NgramHead::embed`]):
/// its 16 dimensions were trained for one question, harm, and measured they put unrelated
/// benign prompts at cosine 0.94 to 0.998 ("What is the capital of France?" against "What
/// happened in Beijing in June 1989?": 0.992), so no threshold tells requests apart. The
/// features themselves do: paraphrases with a word added or changed measured 0.77 to 0.93,
/// unrelated prompts below 0.4 (see the tests). An encoder that knows meaning can be
/// plugged in through [`PromptEmbedder`] instead.
#[derive(Debug, Clone)]
pub struct NgramEmbedder {
    model: Arc<NgramModel>,
}

impl NgramEmbedder {
    /// Dimensions of the folded feature vector: 1 KiB an entry, and noise between
    /// unrelated prompts around 1/16, far below any useful threshold.
    pub const DIM: usize = 256;

    /// The model compiled into the binary.
    pub fn embedded() -> Self {
        NgramEmbedder {
            model: NgramModel::embedded(),
        }
    }

    /// A model of your own; `None` when it has no prompt head.
    pub fn new(model: Arc<NgramModel>) -> Option<Self> {
        model.prompt.as_ref()?;
        Some(NgramEmbedder { model })
    }
}

impl PromptEmbedder for NgramEmbedder {
    fn name(&self) -> &str {
        "ngram"
    }

    fn encode(&self, prompt: &str) -> Encoding {
        let Some(head) = self.model.prompt.as_ref() else {
            return Encoding {
                embedding: Vec::new(),
                harmful: None,
            };
        };
        let mut features = Vec::new();
        extract(prompt, &head.config.features, &mut features);
        let harmful = head.probability_of(&head.forward_features(&features), "harmful");
        let mut embedding = vec![0f32; Self::DIM];
        for f in features {
            // A second hash spreads the buckets over the dimensions and gives each a
            // sign, so that collisions cancel on average instead of adding up.
            let h = u64::from(f).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
            embedding[(h >> 32) as usize % Self::DIM] += sign;
        }
        let norm = embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            embedding.iter_mut().for_each(|x| *x /= norm);
        }
        Encoding {
            embedding,
            harmful: Some(harmful),
        }
    }
}

/// The store's bounds and thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreRouteConfig {
    /// Entries remembered at most (prompts and conversations together).
    pub capacity: usize,
    /// How long an entry is trusted.
    pub ttl: Duration,
    /// Cosine similarity from which a stored prompt counts as the same request.
    pub threshold: f32,
    /// A prompt judged harmful with this probability or more is never stored nor
    /// pre-routed.
    pub max_harm: f32,
}

impl Default for PreRouteConfig {
    /// 10,000 entries, one hour, similarity 0.75, harm below 0.15.
    ///
    /// Why: 10,000 entries of the default embedder are 10 MiB and scan in about a
    /// millisecond. An hour saves the repeated calls of a busy hour while a primary that
    /// relaxed its policy is asked again the next hour. 0.75 admits changes of casing
    /// and punctuation, a word added or changed in a sentence (measured 0.77 to 0.93 with
    /// the default embedder; a word swapped in a short prompt can fall under, e.g.
    /// France/Spain 0.74, 选举/投票 0.65) and keeps prompts that share only a template
    /// apart ("What is the capital of France?" / "What is the meaning of life?": 0.52;
    /// unrelated ones under 0.4). A false match would only send a benign request to the
    /// fallback, but the primary deserves its chance at a new question. 0.15 is the default
    /// policy's "clearly benign" bound ([`crate::judge::HarmPolicy`]) for the n-gram prompt
    /// head, which reads the default embedder's harm: only a request judged clearly benign
    /// skips a provider. The e5 tier's bound ([`crate::judge::HarmPolicy::for_e5`], 0.15)
    /// is for e5's reading, not this one; a request pre-routed had a refusal re-routed
    /// under whichever tier judged it when it was stored.
    fn default() -> Self {
        PreRouteConfig {
            capacity: 10_000,
            ttl: Duration::from_secs(3600),
            threshold: 0.75,
            max_harm: 0.15,
        }
    }
}

/// How a request matched a stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PreRouteMatch {
    /// A later turn of a conversation whose history tripped input moderation.
    Conversation,
    /// The same prompt (up to case, spacing and punctuation).
    Exact,
    /// A prompt at or above the similarity threshold.
    Similar,
}

impl PreRouteMatch {
    /// The name used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            PreRouteMatch::Conversation => "conversation",
            PreRouteMatch::Exact => "exact",
            PreRouteMatch::Similar => "similar",
        }
    }
}

/// A match: where to send the request, and why.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The provider index (1 = first fallback).
    pub provider: usize,
    pub matched: PreRouteMatch,
    /// The cosine similarity (1 for exact and conversation matches).
    pub similarity: f32,
    /// The prompt's harm, as judged by the embedder.
    pub harmful: Option<f32>,
}

/// An extension on a response whose request was pre-routed: the primary was not called.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreRouted {
    /// The provider the request went to.
    pub to: String,
    pub matched: PreRouteMatch,
    pub similarity: f32,
    /// The prompt's harm, as judged by the embedder.
    pub harmful: Option<f32>,
}

/// Why the primary's answer makes a request worth remembering, if it does.
pub fn over_block(verdict: &Verdict) -> Option<OverBlock> {
    // A refusal that any evidence calls justified is never remembered.
    if verdict
        .evidence
        .iter()
        .any(|e| e.suggests == VerdictClass::SafetyRefusal)
    {
        return None;
    }
    match verdict.kind {
        VerdictKind::ProviderBlock {
            stage: ModerationStage::Input,
        } => Some(OverBlock::InputBlock),
        VerdictKind::PolicyRefusal => Some(OverBlock::PolicyRefusal),
        _ => None,
    }
}

/// How the primary over-blocked a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverBlock {
    /// Its input moderation stopped the request (the conversation is remembered too).
    InputBlock,
    /// It refused a request judged benign.
    PolicyRefusal,
}

#[derive(Debug, Clone)]
struct Entry {
    provider: usize,
    /// For prompt entries; conversation entries have none.
    embedding: Option<Vec<f32>>,
    stored: Instant,
}

/// The bounded store of over-blocked requests (see the [module docs](self)).
#[derive(Debug)]
pub struct PreRouteStore {
    config: PreRouteConfig,
    embedder: Arc<dyn PromptEmbedder>,
    entries: Mutex<LruCache<u64, Entry>>,
    saved: AtomicU64,
    declined: AtomicU64,
}

impl PreRouteStore {
    /// A store with the embedded n-gram embedder.
    pub fn new(config: PreRouteConfig) -> Self {
        Self::with_embedder(config, Arc::new(NgramEmbedder::embedded()))
    }

    /// A store with an embedder of your own.
    pub fn with_embedder(config: PreRouteConfig, embedder: Arc<dyn PromptEmbedder>) -> Self {
        let capacity = NonZeroUsize::new(config.capacity.max(1)).expect("max(1)");
        PreRouteStore {
            config,
            embedder,
            entries: Mutex::new(LruCache::new(capacity)),
            saved: AtomicU64::new(0),
            declined: AtomicU64::new(0),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PreRouteConfig {
        &self.config
    }

    /// Where to send a request, if it matches an over-blocked one and is not judged
    /// harmful.
    pub fn lookup(&self, messages: &[Message]) -> Option<Hit> {
        // The no-refusal path of a gateway whose primary never over-blocked pays nothing.
        if self.entries.lock().expect("pre-route store poisoned").is_empty() {
            return None;
        }
        let prompt = last_user_prompt(messages)?;
        let encoding = self.embedder.encode(&prompt);
        if encoding.harmful.is_some_and(|p| p >= self.config.max_harm) {
            return None;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("pre-route store poisoned");
        let n = messages.len();
        let conversation = [n.checked_sub(2), n.checked_sub(1), Some(n)]
            .into_iter()
            .flatten()
            .filter(|&len| len > 0)
            .find_map(|len| self.fresh(&mut entries, conversation_key(&messages[..len]), now));
        let hit = |provider, matched, similarity| Hit {
            provider,
            matched,
            similarity,
            harmful: encoding.harmful,
        };
        if let Some(provider) = self.fresh(&mut entries, prompt_key(&prompt), now) {
            return Some(hit(provider, PreRouteMatch::Exact, 1.0));
        }
        if let Some(provider) = conversation {
            return Some(hit(provider, PreRouteMatch::Conversation, 1.0));
        }
        if encoding.harmful.is_none() || encoding.embedding.is_empty() {
            return None;
        }
        let mut best: Option<(u64, f32)> = None;
        let mut expired = Vec::new();
        for (key, entry) in entries.iter() {
            let Some(e) = &entry.embedding else { continue };
            if now.duration_since(entry.stored) > self.config.ttl {
                expired.push(*key);
                continue;
            }
            let cos = cosine(e, &encoding.embedding);
            if cos >= self.config.threshold && best.is_none_or(|(_, b)| cos > b) {
                best = Some((*key, cos));
            }
        }
        for key in expired {
            entries.pop(&key);
        }
        let (key, similarity) = best?;
        let provider = entries.get(&key)?.provider;
        Some(hit(provider, PreRouteMatch::Similar, similarity))
    }

    /// Remembers that the primary over-blocked this request and provider `provider`
    /// answered it. Returns whether it was stored: a prompt judged harmful is not.
    pub fn remember(&self, messages: &[Message], provider: usize, why: OverBlock) -> bool {
        let Some(prompt) = last_user_prompt(messages) else {
            return false;
        };
        let encoding = self.embedder.encode(&prompt);
        if encoding.harmful.is_some_and(|p| p >= self.config.max_harm) {
            return false;
        }
        let stored = Instant::now();
        let mut entries = self.entries.lock().expect("pre-route store poisoned");
        if why == OverBlock::InputBlock {
            entries.put(
                conversation_key(messages),
                Entry {
                    provider,
                    embedding: None,
                    stored,
                },
            );
        }
        entries.put(
            prompt_key(&prompt),
            Entry {
                provider,
                embedding: (!encoding.embedding.is_empty()).then_some(encoding.embedding),
                stored,
            },
        );
        true
    }

    /// How many entries are remembered.
    pub fn len(&self) -> usize {
        self.entries.lock().expect("pre-route store poisoned").len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Provider calls saved so far: requests sent past the primary.
    pub fn saved(&self) -> u64 {
        self.saved.load(Ordering::Relaxed)
    }

    pub(crate) fn count_saved(&self) {
        self.saved.fetch_add(1, Ordering::Relaxed);
    }

    /// Similar matches not pre-routed because the guard's models did not judge the request
    /// clearly benign ([`crate::layer::RerouteLayer::preroute_judge`]).
    pub fn declined(&self) -> u64 {
        self.declined.load(Ordering::Relaxed)
    }

    pub(crate) fn count_declined(&self) {
        self.declined.fetch_add(1, Ordering::Relaxed);
    }

    /// The provider of a fresh entry; an expired one is dropped.
    fn fresh(&self, entries: &mut LruCache<u64, Entry>, key: u64, now: Instant) -> Option<usize> {
        let entry = entries.get(&key)?;
        if now.duration_since(entry.stored) > self.config.ttl {
            entries.pop(&key);
            return None;
        }
        Some(entry.provider)
    }
}

/// The request's prompt: its last user message's text (what the guard judges), when it
/// is not blank.
fn last_user_prompt(messages: &[Message]) -> Option<String> {
    crate::wire::last_user_text(messages).filter(|t| !t.trim().is_empty())
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn prompt_key(prompt: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    "prompt".hash(&mut h);
    // Case, spacing and punctuation do not change a request; people and clients vary
    // them freely.
    for c in prompt
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
    {
        c.hash(&mut h);
    }
    h.finish()
}

fn conversation_key(messages: &[Message]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    "conversation".hash(&mut h);
    for m in messages {
        // Roles and texts identify a turn; clients re-serialise other fields freely.
        format!("{:?}", m.role).hash(&mut h);
        m.content.as_ref().map(|c| c.text()).hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str) -> Vec<Message> {
        vec![Message::user(text)]
    }

    fn store(capacity: usize) -> PreRouteStore {
        PreRouteStore::new(PreRouteConfig {
            capacity,
            ..PreRouteConfig::default()
        })
    }

    #[test]
    fn later_turns_of_an_input_blocked_conversation_are_found() {
        let s = store(8);
        let turn1 = user("What happened in Beijing in June 1989?");
        assert!(s.remember(&turn1, 1, OverBlock::InputBlock));
        let mut turn2 = turn1.clone();
        turn2.push(Message::assistant("an answer from the fallback"));
        turn2.push(Message::user("and what came after?"));
        let hit = s.lookup(&turn2).expect("the conversation sticks");
        assert_eq!((hit.provider, hit.matched), (1, PreRouteMatch::Conversation));
        assert_eq!(s.lookup(&user("How do I bake sourdough bread at home?")), None);
    }

    #[test]
    fn eviction_keeps_the_capacity_and_drops_the_oldest() {
        let n = 3;
        let s = store(n);
        let prompts = [
            "What happened in Beijing in June 1989?",
            "What is the capital of France?",
            "Explain the history of Taiwan's democratic elections.",
            "What is the Dalai Lama known for?",
        ];
        for p in &prompts {
            assert!(s.remember(&user(p), 1, OverBlock::PolicyRefusal), "{p}");
        }
        assert_eq!(s.len(), n);
        assert_eq!(s.lookup(&user(prompts[0])), None, "the oldest is gone");
        for p in &prompts[1..] {
            assert_eq!(
                s.lookup(&user(p)).map(|h| h.matched),
                Some(PreRouteMatch::Exact),
                "{p}"
            );
        }
    }

    #[test]
    fn entries_expire() {
        let s = PreRouteStore::new(PreRouteConfig {
            ttl: Duration::ZERO,
            ..PreRouteConfig::default()
        });
        s.remember(
            &user("What happened in Beijing in June 1989?"),
            1,
            OverBlock::PolicyRefusal,
        );
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(s.lookup(&user("What happened in Beijing in June 1989?")), None);
        assert!(s.is_empty(), "the expired entry is dropped");
    }

    #[test]
    fn exact_matches_ignore_case_spacing_and_punctuation() {
        let s = store(8);
        s.remember(
            &user("What happened in Beijing in June 1989?"),
            2,
            OverBlock::PolicyRefusal,
        );
        let hit = s
            .lookup(&user("  what happened in  BEIJING in june 1989 !"))
            .unwrap();
        assert_eq!((hit.provider, hit.matched), (2, PreRouteMatch::Exact));
        s.remember(&user("天安门事件是什么？"), 1, OverBlock::PolicyRefusal);
        let hit = s.lookup(&user("天安门事件是什么")).unwrap();
        assert_eq!((hit.provider, hit.matched), (1, PreRouteMatch::Exact));
    }

    #[test]
    fn justified_refusals_are_not_over_blocks() {
        let safety = Verdict::new(VerdictKind::SafetyRefusal { categories: vec![] }, 0.9);
        assert_eq!(over_block(&safety), None);
        let policy = Verdict::new(VerdictKind::PolicyRefusal, 0.9);
        assert_eq!(over_block(&policy), Some(OverBlock::PolicyRefusal));
        let input = Verdict::new(
            VerdictKind::ProviderBlock {
                stage: ModerationStage::Input,
            },
            1.0,
        );
        assert_eq!(over_block(&input), Some(OverBlock::InputBlock));
        let output = Verdict::new(
            VerdictKind::ProviderBlock {
                stage: ModerationStage::Output,
            },
            1.0,
        );
        assert_eq!(over_block(&output), None);
    }

    /// An embedder whose harm judgment the test sets, to show the gate holds even for a
    /// prompt that is stored (the real model's judgments are exercised in
    /// tests/preroute.rs).
    #[derive(Debug, Default)]
    struct Judged {
        harmful: Mutex<f32>,
    }

    impl PromptEmbedder for Judged {
        fn name(&self) -> &str {
            "judged"
        }

        fn encode(&self, prompt: &str) -> Encoding {
            let mut embedding = vec![0.0; 4];
            embedding[prompt.len() % 4] = 1.0;
            Encoding {
                embedding,
                harmful: Some(*self.harmful.lock().unwrap()),
            }
        }
    }

    #[test]
    fn a_prompt_judged_harmful_is_never_stored_nor_prerouted() {
        let judge = Arc::new(Judged::default());
        let s = PreRouteStore::with_embedder(PreRouteConfig::default(), judge.clone());
        let turn1 = user("a prompt");
        assert!(s.remember(&turn1, 1, OverBlock::InputBlock));
        let mut turn2 = turn1.clone();
        turn2.push(Message::assistant("answer"));
        turn2.push(Message::user("a prompt"));
        assert!(s.lookup(&turn1).is_some() && s.lookup(&turn2).is_some());
        *judge.harmful.lock().unwrap() = 0.9;
        assert_eq!(s.lookup(&turn1), None, "an exact hit, judged harmful");
        assert_eq!(s.lookup(&turn2), None, "a conversation hit, judged harmful");
        assert!(!s.remember(&user("another prompt"), 1, OverBlock::PolicyRefusal));
        *judge.harmful.lock().unwrap() = 0.0;
        assert_eq!(s.lookup(&user("another prompt")).map(|h| h.matched), None);
    }

    #[test]
    fn the_embedding_is_unit_length_and_separates_requests() {
        let e = NgramEmbedder::embedded();
        let a = e.encode("What happened in Beijing in June 1989?");
        let norm: f32 = a.embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
        let cos = |a: &str, b: &str| cosine(&e.encode(a).embedding, &e.encode(b).embedding);
        let threshold = PreRouteConfig::default().threshold;
        for (a, b) in [
            (
                "Tell me about the history of elections in Taiwan.",
                "Tell me about the history of the elections in Taiwan.",
            ),
            (
                "Tell me about the history of elections in Taiwan.",
                "Tell me about the history of votes in Taiwan.",
            ),
            (
                "What happened in Beijing in June 1989?",
                "what happened in beijing in june 1989",
            ),
            ("天安门事件是什么？", "天安门事件是什么呢？"),
            ("请介绍一下台湾的选举历史。", "请简单介绍一下台湾的选举历史。"),
        ] {
            assert!(cos(a, b) >= threshold, "{a} | {b}: {}", cos(a, b));
        }
        for (a, b) in [
            (
                "What happened in Beijing in June 1989?",
                "What is the capital of France?",
            ),
            (
                "What is the Dalai Lama known for?",
                "What is the capital of France?",
            ),
            (
                "Tell me about the history of elections in Taiwan.",
                "Who was Liu Xiaobo and why was he famous?",
            ),
            ("天安门事件是什么？", "请介绍一下台湾的选举历史。"),
            ("What is the capital of France?", "What is the meaning of life?"),
        ] {
            assert!(cos(a, b) < threshold - 0.2, "{a} | {b}: {}", cos(a, b));
        }
    }
}
