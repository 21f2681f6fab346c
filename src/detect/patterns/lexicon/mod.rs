//! The pattern lexicon: what refusals, inabilities and evasions say, per language.
//!
//! Each [`Rule`] is one phrase family written as a regular expression over the answer text
//! with its ASCII letters lower-cased (so `I'M SORRY` and `I'm sorry` are one pattern, and
//! byte offsets stay those of the original text). Three spellings are expanded when the
//! rules are compiled so the tables stay readable: a `'` matches both the straight and the
//! curly apostrophe, a space matches any run of white space, and `\b` is an ASCII word
//! boundary (a Unicode one would stop the fast DFA on non-ASCII text). Letters outside
//! ASCII (Cyrillic, accented capitals) need an inline `(?i:…)` where the capital form
//! matters.
//!
//! `\x20` is one space exactly (not expanded): a rule that opens with a short word ("no",
//! "je", "я") writes the spaces after it that way, so that it keeps a literal prefix of three
//! bytes or more and the scan's prefilter takes it, not the slower set of the rules without
//! one (`super::Prefilter`). Two more ways to lose the prefix or the match: alternatives that
//! share a short start and go on ("(en|enkä)\x20(voi|pysty) …") are cut back to the shared
//! "en" by the prefix optimiser, so such forms are rules of their own (`fi.cannot_act`,
//! `fi.and_cannot`); and `\b` is an ASCII boundary, so it never matches after a letter
//! outside ASCII ("mielipiteitä\b", "просите\b"): such rules end without it, or with the
//! punctuation that must follow.
//!
//! **Short answers are the rules' alone.** An answer shorter than the stream window (16
//! tokens) is judged by these rules and nothing else (`judge::MIN_MODEL_ANSWER_TOKENS`: the
//! models read a one-liner as a refusal far too readily), so a short refusal no rule knows
//! is released as an answer. `eval --stream-window 16 --split fit --show-errors N` lists the
//! window's misses, which is how these were found on 2026-12-06: the embedded default read
//! 50 of the 223 short non-answers of the team files it may read as answers, among them
//! Qwen's own canned line ("你好，我无法给到相关内容。"), DashScope's moderation message passed
//! on as the text ("Input data may contain inappropriate content."), most short Finnish
//! refusals ("En kirjoita tätä.", "Ei onnistu.") and verb-last Russian ones ("Помочь вам с
//! этим я не могу."). The rules written for them (`zh.no_related_content`,
//! `zh.not_mine_to_help`, `zh.cant_answer_colloquial`, `zh.flat_no`, `fi.will_not`,
//! `fi.cannot_say`, `fi.not_answered`, `ru.inverted_cannot`, more verbs in others, "joke
//! about" in `en.not_something_i_walk`) leave 3 of them; on the shared files, which they were not written from, they
//! find 3 more Finnish non-answers of speechmap, and no answer of any shared or team file
//! changed its verdict. A second batch (`en.filtered`, `zh.filtered`, `fr.filtered`,
//! `ru.filtered` for a provider filter's canned line, idioms of declining in six
//! languages, more subject changes) was written from a team set of short replies
//! (models/data/short/responses-short-dev.jsonl). Rules written from examples generalise
//! poorly to short replies in new words: on its never-read twin (tests/data/short-replies.jsonl,
//! 160 non-answers) the patterns find 17 where they found 15. With the e5 tier its
//! short-reply head, trained on short replies, reads what the patterns let pass and finds
//! 122 (`classify::short_head`); the embedded default's n-gram short-reply head, 86 (both as
//! retrained in the thirty-fifth session).
//!
//! The tables are data, kept apart from the scoring so that adding a language is adding a
//! file here. Weights are the strength of a match at the opening of an answer, before the
//! position, code-block and length adjustments of the scanner.

mod en;
mod more;
mod zh;

/// What a phrase family is a sign of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cue {
    /// Declining to do what was asked ("I can't help with that", "我无法回答").
    Refusal,
    /// Not able to know or do it (no real-time data, no private data, no feelings).
    Inability,
    /// Talking around the request: changing the subject, "I aim to stay balanced".
    Evasion,
    /// One phrase of an official line (a government position recited instead of an answer).
    /// Counted together: one phrase is a topic, a dense run of them is a recital.
    Official,
    /// "As an AI language model": a hedge that often opens a refusal or an inability but
    /// just as often a normal answer; weak on its own.
    Disclaimer,
    /// An apology or "unfortunately" at the very start of the answer: weak on its own.
    Apology,
    /// An offer of something else ("If you'd like, I can…"): it means the content that
    /// follows a refusal is an alternative, not the answer.
    Redirect,
    /// A caveat about scope ("I can't give medical advice", "I'm not a lawyer"): it cancels
    /// the refusal or inability wording it overlaps, because what follows is usually the
    /// answer.
    Caveat,
    /// The whole answer is a block marker leaked as text (Gemini's `SAFETY`): the
    /// provider's moderation, seen through the text.
    BlockMarker,
    /// Words naming harm, danger, illegality, violence: the grounds of a safety refusal.
    SafetyGrounds,
    /// Words naming sensitivity, politics, policy, guidelines, neutrality: the grounds of a
    /// policy refusal.
    PolicyGrounds,
}

/// Where in the answer a rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// Anywhere; the scanner weighs it by position.
    Anywhere,
    /// Only in the opening of the answer (its first characters): phrases that are common
    /// later in an answer ("sorry", "unfortunately").
    Opening,
}

/// One phrase family.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// A stable short id, `lang.name`, written into evidence reasons.
    pub id: &'static str,
    /// The language the phrases are in (ISO 639-1; `zh` covers simplified and traditional).
    pub lang: &'static str,
    pub cue: Cue,
    /// Strength at the opening of an answer, 0 to 1. For [`Cue::Official`], the phrase's
    /// share of a recital (how distinctive of official language it is).
    pub weight: f32,
    pub anchor: Anchor,
    /// The regular expression (see the module docs for the two expansions).
    pub pattern: &'static str,
}

/// Shorthand constructor for the tables.
pub(crate) const fn rule(
    id: &'static str,
    lang: &'static str,
    cue: Cue,
    weight: f32,
    anchor: Anchor,
    pattern: &'static str,
) -> Rule {
    Rule {
        id,
        lang,
        cue,
        weight,
        anchor,
        pattern,
    }
}

/// Every built-in rule, all languages.
pub fn builtin_rules() -> Vec<Rule> {
    let mut rules = Vec::new();
    rules.extend_from_slice(en::RULES);
    rules.extend_from_slice(zh::RULES);
    rules.extend_from_slice(more::RULES);
    rules
}

/// The rule's pattern with the apostrophe and space expansions applied: `'` matches both
/// apostrophes, a space one or more whitespace characters, and ` ?` optional whitespace.
pub fn expand(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => out.push_str("['’]"),
            // `i ?(am|'m)`: the space before a contraction is optional ("i'm", "i am").
            ' ' if chars.peek() == Some(&'?') => {
                chars.next();
                out.push_str(r"\s*");
            }
            ' ' => out.push_str(r"\s+"),
            // An ASCII word boundary: a Unicode one stops the fast DFA on non-ASCII text.
            '\\' if chars.peek() == Some(&'b') => {
                chars.next();
                out.push_str(r"(?-u:\b)");
            }
            '\\' => {
                out.push(c);
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            c => out.push(c),
        }
    }
    out
}
