//! Judging: where a verdict is made.
//!
//! The detectors ([`crate::detect`]) and the models ([`crate::classify`]) only give
//! evidence. This module turns it into one [`Verdict`], the same way for a stream's
//! hold-back window and for a whole answer, in the gateway, the layers, `audit` and `eval`:
//!
//! 1. provider signals decide what they know for a fact: a moderation block, an empty
//!    answer ([`rules::decisive`]);
//! 2. the embedded n-gram model reads the text, its opening and its ending, and the
//!    trained [`Combiner`] weighs them with the patterns' and logprob checks' evidence
//!    ([`features`]);
//! 3. when the combiner is unsure about a whole answer and an encoder tier is installed,
//!    the encoder reads the text too and the combiner decides again with its opinion (the
//!    escalation; a stream's prefix is never escalated);
//! 4. the answer is a non-answer when the non-answer classes together reach the
//!    combiner's trained threshold ([`answer_label`]; one for whole answers, one for
//!    escalated ones, one for stream windows, each chosen out of source by `train`).
//!    A text shorter than the window is judged by the patterns instead (the models read a
//!    one-liner as a refusal too readily); a complete short answer the patterns let pass is
//!    then read by a short-reply head (the embedded default's; with the e5 tier, e5's too
//!    where the n-gram head is unsure, the short-reply cascade: [`Models::short_asked_from`]),
//!    which also reviews the combiner's verdict on a pattern-clean answer of a few sentences
//!    ([`SHORT_REPLY_TOKENS`]) and, with the e5 tier, may overrule its non-answer on a
//!    pattern-clean paragraph ([`PARAGRAPH_REPLY_TOKENS`]); a tier without such a head
//!    (`minilm`) keeps the agreement rule for short answers ([`SHORT_AGREEMENT_FROM`]);
//! 5. a refusal, and a provider's block, is then split by the *request's* harm
//!    ([`harm`]): justified (a safety refusal, not re-routed) or a policy over-block
//!    (re-routed).
//!
//! [`Decision::Rules`] keeps the hand-set rule combiner ([`rules`]) as a baseline and for
//! detector sets built without models.

pub mod combiner;
pub mod features;
pub mod fit;
pub mod harm;
pub mod rules;
pub mod tune;

use std::sync::Arc;

pub use combiner::Combiner;
pub use harm::{HarmPolicy, PROMPT_HARM_SOURCE};

use crate::classify::short_head::{AskedFrom, ShortJudgement};
use crate::classify::{Cascade, Classifier, ClassifyError, ResponseJudgement, ResponseLabel};
use crate::detect::{Completeness, Observation};
use crate::verdict::{Evidence, Verdict, VerdictClass, VerdictKind};

/// Where the combiner is unsure enough to ask the encoder: a band of the probability of the
/// non-answer classes together, around the decision threshold. Chosen by `refusal-guard
/// train` (the narrowest band that keeps the cascade's out-of-source F1, see
/// [`fit::choose_band`]) and kept in the combiner.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct EscalationBand {
    /// From this non-answer probability up…
    pub from: f32,
    /// …and below this one, the encoder is asked.
    pub to: f32,
}

impl EscalationBand {
    /// Every answer is escalated.
    pub const ALWAYS: EscalationBand = EscalationBand { from: 0.0, to: 1.01 };

    /// No answer is escalated.
    pub const NEVER: EscalationBand = EscalationBand { from: 1.01, to: 1.01 };

    /// Whether the combined probabilities fall in the band.
    pub fn contains(&self, probs: &[f32; 4]) -> bool {
        let non_answer = 1.0 - probs[ResponseLabel::Answer.index()];
        non_answer >= self.from && non_answer < self.to
    }
}

/// The answer label of combined probabilities: a non-answer when the non-answer classes
/// together reach `non_answer_from` (the combiner's trained threshold, see
/// [`Combiner::non_answer_from`]), then the likeliest of them; an answer otherwise.
/// One rule for the pipeline and for `train`'s leave-one-source-out scores.
pub fn answer_label(probs: &[f32; 4], non_answer_from: f32) -> ResponseLabel {
    let answer = ResponseLabel::Answer.index();
    if 1.0 - probs[answer] < non_answer_from {
        return ResponseLabel::Answer;
    }
    ResponseLabel::ALL
        .iter()
        .copied()
        .filter(|l| *l != ResponseLabel::Answer)
        .max_by(|a, b| probs[a.index()].total_cmp(&probs[b.index()]))
        .unwrap_or(ResponseLabel::Answer)
}

/// A text shorter than this many tokens (words, or CJK characters), a stream's prefix or a
/// whole answer, is judged by the rule combiner, not by the models: they were trained on
/// 16-token openings and longer answers, and read "I'm" as the start of "I'm sorry", or a
/// one-line greeting as a deflection, far too readily. The patterns catch the short refusal
/// formulas as soon as they are complete; a short refusal in words no rule knows is released
/// as an answer, which is why the lexicon's short forms are measured apart
/// (`detect::patterns::lexicon`, "Short answers are the rules' alone").
pub const MIN_MODEL_PREFIX_TOKENS: usize = 12;

/// The same for a whole answer: one no longer than the stream window is its own opening
/// and ending, so the combiner would count one n-gram reading three times; "The Great Wall
/// is not visible to the naked eye from low Earth orbit." read as a refusal that way. Such
/// answers are judged by the patterns (which know every short refusal formula).
pub const MIN_MODEL_ANSWER_TOKENS: usize = features::PART_TOKENS;

/// A complete answer of at most this many tokens (a few sentences) with no trace of a
/// non-answer in the patterns ([`short_reply_passes`]) is a *short reply*: where the tiers
/// have a short-reply head ([`Classifier::judge_short_answer`]), the head decides a one-line
/// one and reviews the combiner's verdict on a longer one ([`SHORT_REPLY_VETO_BELOW`]). The
/// answer models and the combiner were trained on whole answers that are mostly long
/// (essays, jailbreak transcripts) or one-line refusals, so for them brevity itself reads as
/// refusal: before the thirty-fifth session (2026-12-06) they called about a third of the
/// answers of 17 to 64 tokens in the labelled files non-answers, and 50 (embedded) and 57
/// (e5) of the 140 answers of the team's never-read replies of a few sentences
/// (tests/data/medium-replies.jsonl; "You can undo the last commit with git reset --soft
/// HEAD~1, …" was a policy refusal). The heads are trained on replies of up to this length
/// (`judge::fit::short`). Without a head (`minilm`, `ngram:PATH`) nothing changes.
pub const SHORT_REPLY_TOKENS: usize = 48;

/// A complete answer longer than [`SHORT_REPLY_TOKENS`] and at most this long (a paragraph:
/// about 150 English words or 200 Chinese characters) with no trace of a non-answer in the
/// patterns is a *paragraph reply*: where an escalation reader has a short-reply head (the
/// e5 tier), the head reads it only when the combiner calls it a non-answer, and overrules
/// that below [`SHORT_REPLY_VETO_BELOW`]; it never makes a non-answer of the combiner's
/// answer. The combiner's brevity bias reaches past a few sentences: before the
/// thirty-sixth session (2026-12-06) the e5 tier flagged 21 of the 139 answers of the team's
/// never-read paragraph replies (tests/data/paragraph-replies.jsonl), and 10 with this
/// review, finding the same 95 of 118 non-answers. The head reads only the combiner's flags,
/// because pattern-clean answers of this length are common traffic and an encoder pass on
/// each would cost more than the rest of the cascade. The embedded default's n-gram head
/// reads no paragraph: trained on the team's paragraph files, it overruled the combiner on
/// 124 pattern-clean non-answers of the training files and on 4 answers. The e5 head
/// learns paragraphs from the team's files only (`judge::fit::short::short_indices`).
pub const PARAGRAPH_REPLY_TOKENS: usize = 200;

/// How evidence becomes a verdict.
#[derive(Clone)]
pub enum Decision {
    /// The hand-set rule combiner with its threshold (the baseline).
    Rules { threshold: f32 },
    /// Models and the trained combiner.
    Learned(Arc<Models>),
}

impl std::fmt::Debug for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::Rules { threshold } => f.debug_struct("Rules").field("threshold", threshold).finish(),
            Decision::Learned(m) => f.debug_tuple("Learned").field(m).finish(),
        }
    }
}

/// From this harm probability up the embedded n-gram prompt head's reading is final: the
/// request is harmful and no encoder is asked. Below it an installed encoder's reading
/// decides, however benign the n-gram head found the request (a benign reading is what
/// lets a refusal be re-routed, so it is always the last tier's). `train`'s report scores
/// the held-out prompt cascade the same way, and beside it other values of this threshold
/// (models/combiner/loso.md).
pub const NGRAM_PROMPT_FINAL_FROM: f32 = 0.9;

/// The models of the learned decision.
#[derive(Clone)]
pub struct Models {
    /// The cheap reader of every answer (the embedded n-gram model).
    pub fast: Arc<dyn Classifier>,
    /// The reader asked when the combiner is unsure (the encoder tier), if installed.
    pub escalation: Option<Arc<dyn Classifier>>,
    /// Where the escalation reader is asked about a whole answer (never about a stream's
    /// prefix). Default: the combiner's trained band ([`Combiner::escalation_band`]).
    pub escalate: EscalationBand,
    /// Where the escalation reader's short-reply head is asked whether a pattern-clean short
    /// answer is a non-answer: from this non-answer reading of the fast reader's short-reply
    /// head up, by script (the short-reply cascade; see the module docs).
    /// [`AskedFrom::ALWAYS`] asks it about every one. The e5 tier sets the values its head
    /// was trained with ([`crate::classify::short_head::ShortHead::asked_from`]); `e5:wide`
    /// keeps `ALWAYS`.
    pub short_asked_from: AskedFrom,
    /// The trained combiner.
    pub combiner: Arc<Combiner>,
    /// The prompt-harm tiers, cheapest first (see [`harm`]).
    pub prompt: Cascade,
    /// Where harm becomes a decision.
    pub harm: HarmPolicy,
}

impl std::fmt::Debug for Models {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Models")
            .field("fast", &self.fast.name())
            .field(
                "escalation",
                &self.escalation.as_ref().map(|c| c.name().to_string()),
            )
            .field("escalate", &self.escalate)
            .field("short_asked_from", &self.short_asked_from)
            .field("prompt", &self.prompt)
            .field("harm", &self.harm)
            .finish()
    }
}

impl Models {
    /// The embedded default: the n-gram model (answer and prompt heads) and the shipped
    /// combiner. Needs no file and no download.
    pub fn embedded() -> Self {
        let ngram: Arc<dyn Classifier> = Arc::new(crate::classify::ngram::NgramClassifier::embedded());
        Models {
            fast: ngram.clone(),
            escalation: None,
            escalate: Combiner::embedded().escalation_band(),
            short_asked_from: AskedFrom::ALWAYS,
            combiner: Combiner::embedded(),
            prompt: Cascade::new().tier_arc(ngram, NGRAM_PROMPT_FINAL_FROM),
            harm: HarmPolicy::default(),
        }
    }

    /// The embedded default with no short-reply head: a short answer the patterns let pass
    /// stays an answer. What tests of the patterns' short forms judge with.
    pub fn embedded_without_short_head() -> Self {
        let model = (*crate::classify::ngram::NgramModel::embedded()).clone();
        Models {
            fast: Arc::new(crate::classify::ngram::NgramClassifier::new(model, "ngram")),
            ..Models::embedded()
        }
    }

    /// The request's P(harmful) when the prompt tiers judge it clear to skip its primary
    /// ([`HarmPolicy::clears_preroute`]); `None` when they judge it harmful or unsure, or
    /// cannot judge it: the request then asks the primary as usual (fail safe).
    pub async fn clears_preroute(&self, prompt: &str) -> Option<f32> {
        let (judged, _) = self.prompt.judge_prompt(prompt).await?;
        self.harm.clears_preroute(&judged).then_some(judged.harmful)
    }
}

fn model_evidence(source: &str, j: &ResponseJudgement) -> Evidence {
    let label = j.label();
    let probs: Vec<String> = ResponseLabel::ALL
        .iter()
        .map(|l| format!("{} {:.2}", l.as_str(), j.probs[l.index()]))
        .collect();
    Evidence {
        source: source.to_string(),
        suggests: class_of(label),
        score: j.confidence(),
        reason: format!("{source}: {}", probs.join(", ")),
        span: None,
        tokens: Vec::new(),
    }
}

/// The verdict class a response label points to (a refusal counts as a policy refusal
/// until the request is judged).
fn class_of(label: ResponseLabel) -> VerdictClass {
    match label {
        ResponseLabel::Answer => VerdictClass::Answer,
        ResponseLabel::Refusal => VerdictClass::PolicyRefusal,
        ResponseLabel::Evasion => VerdictClass::Evasion,
        ResponseLabel::Inability => VerdictClass::Inability,
    }
}

/// The verdict a response label stands for, before the request's harm splits a refusal.
fn kind_of(label: ResponseLabel) -> VerdictKind {
    match label {
        ResponseLabel::Answer => VerdictKind::Answer,
        ResponseLabel::Evasion => VerdictKind::Evasion,
        ResponseLabel::Inability => VerdictKind::Inability,
        ResponseLabel::Refusal => VerdictKind::PolicyRefusal,
    }
}

/// The fast reader's judgement of `text`; `None` (with a warning) when it fails.
async fn read_fast(models: &Models, prompt: Option<&str>, text: &str) -> Option<ResponseJudgement> {
    match models.fast.judge_response(prompt, text).await {
        Ok(j) => j,
        Err(e) => {
            e.report(models.fast.name(), "fast reader failed");
            None
        }
    }
}

/// What the learned decision read of an answer ([`answer_probs`]).
#[derive(Debug, Clone)]
pub struct AnswerReading {
    /// The combiner's answer-class probabilities.
    pub probs: [f32; 4],
    /// The fast reader's reading of the whole text.
    pub ngram: ResponseJudgement,
    /// The escalation reader's, where the combiner was unsure and it read the answer.
    pub encoder: Option<ResponseJudgement>,
    /// Where the combiner was unsure and the escalation reader could not read the answer
    /// (shed under load, failed): the trace of it ([`unread`]).
    pub unread: Option<Evidence>,
}

/// The answer-class probabilities of the learned decision, with what it asked on the way.
/// `None` when the fast reader could not read the text.
pub async fn answer_probs(
    models: &Models,
    evidence: &[Evidence],
    observation: &Observation<'_>,
) -> Option<AnswerReading> {
    let prompt = observation.prompt;
    let text = observation.text;
    let ngram = read_fast(models, prompt, text).await?;
    // The opening and the ending read apart (see features); a short text is read once.
    let (opening_part, ending_part) = features::parts(text);
    let opening = match opening_part {
        Some(part) => read_fast(models, prompt, part).await?,
        None => ngram.clone(),
    };
    let ending = match ending_part {
        Some(part) => read_fast(models, prompt, part).await?,
        None => ngram.clone(),
    };
    let inputs = features::Inputs {
        ngram: &ngram,
        opening: &opening,
        ending: &ending,
        encoder: None,
        evidence,
        partial: observation.completeness == Completeness::Partial,
        chars: text.chars().count(),
        opening_bytes: opening_part.map_or(text.len(), str::len),
    };
    let mut probs = models.combiner.probs(&features::vector(&inputs));
    let (mut encoder, mut not_read) = (None, None);
    let unsure = models.escalate.contains(&probs);
    // A stream's prefix is never escalated; the whole answer is escalated when it ends.
    // Measured (loso.md, "Stream windows with the encoder asked when unsure"): asking the
    // encoder about unsure windows stops no more refusals within the window's 2% budget of
    // good streams stopped, and a few more only by stopping more good streams.
    let partial = observation.completeness == Completeness::Partial;
    if let (true, false, Some(slow)) = (unsure, partial, &models.escalation) {
        match slow.judge_response(observation.prompt, observation.text).await {
            Ok(Some(j)) => {
                probs = models.combiner.probs(&features::vector(&features::Inputs {
                    encoder: Some(&j),
                    ..inputs
                }));
                encoder = Some(j);
            }
            Ok(None) => {}
            Err(e) => {
                e.report(slow.name(), "escalation failed; deciding without it");
                not_read = Some(unread(slow.name(), &e, "the combiner was unsure"));
            }
        }
    }
    Some(AnswerReading {
        probs,
        ngram,
        encoder,
        unread: not_read,
    })
}

/// How the source of an [`unread`] trace ends (after the tier's name).
pub const UNREAD: &str = ":unread";

/// The trace of a reading the escalation reader `tier` was asked for and could not give
/// (`error`: shed because too many model passes wait, or failed), so that the verdict,
/// made as the cheaper tiers make it, says why: a gateway under load and an audit of the
/// same answer may then differ, and the verdict shows where. `asked`: why it was asked.
///
/// A trace, never a vote: it scores 0 and joins the verdict after the combiner has
/// weighed the evidence.
pub fn unread(tier: &str, error: &ClassifyError, asked: &str) -> Evidence {
    let why = match error {
        ClassifyError::Busy { waiting, .. } => {
            format!("not run, {waiting} model passes already wait for a turn")
        }
        other => other.to_string(),
    };
    Evidence {
        source: format!("{tier}{UNREAD}"),
        suggests: VerdictClass::Answer,
        score: 0.0,
        reason: format!("{asked}, and {tier} could not read the answer ({why}): judged without it"),
        span: None,
        tokens: Vec::new(),
    }
}

/// Folds in the evidence of detectors the combiner was not trained on (a detector a user
/// added): each such source's strongest evidence per class raises that class as an
/// independent vote (`1 - (1 - p)(1 - s)`), then the probabilities are renormalised.
fn fold_unknown(probs: &mut [f32; 4], evidence: &[Evidence], known: &[&str]) {
    let mut changed = false;
    for e in evidence.iter().filter(|e| !known.contains(&e.source.as_str())) {
        if let Some(label) = ResponseLabel::of_class(e.suggests) {
            let p = &mut probs[label.index()];
            *p = 1.0 - (1.0 - *p) * (1.0 - e.score.clamp(0.0, 1.0));
            changed = true;
        }
    }
    if changed {
        let sum: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= sum.max(1e-12));
    }
}

/// How sure both readers must be before a short answer the patterns let pass is a
/// non-answer (each one's probability of the non-answer classes together).
///
/// An answer shorter than [`MIN_MODEL_ANSWER_TOKENS`] is the patterns' to judge, and a
/// short refusal in words no rule knows ("Not doing that.", "Why would I help with that?")
/// was released as an answer. A team set of 251 short replies in nine languages
/// (models/data/short/responses-short-dev.jsonl, read to choose this; since trained on, by
/// e5's short-reply head alone): the patterns found 28 of its 171 non-answers (65 with the short-form rules written from
/// it), and either model alone reads too many short answers as non-answers (the n-gram
/// model 13 of its 80 answers from 0.8, the encoder 6 from 0.5). The two agreeing from 0.6
/// found 118 with no answer more flagged; from 0.5, 14 more, but 2 more of the 70 short
/// answers of the team's training files that the patterns let pass. On a second set, never
/// read (tests/data/short-replies.jsonl, 238 replies): 15 of 160 non-answers found before,
/// 61 with this rule, answers flagged 3 → 6 of 78. Only with the encoder tier installed:
/// the n-gram model alone is not precise enough on short texts.
///
/// Since 2026-12-06 (thirty-fourth session) the e5 tier reads short answers with a head of
/// its own instead ([`crate::classify::short_head`], trained on short replies only, the
/// development set above among them): on the never-read twin 122 of 160 found, answers
/// flagged 8 of 78 (as retrained in the thirty-fifth session). This rule stays for an
/// escalation tier without such a head (`minilm`).
pub const SHORT_AGREEMENT_FROM: f32 = 0.6;

/// The verdict on a complete short answer the patterns read as an answer: by a short-reply
/// head ([`Classifier::judge_short_answer`]): the escalation reader's where there is one
/// (the e5 tier's; an encoder call, a 16-token text: about 3.6 ms on one core with AVX-512
/// VNNI, about 11 ms with AVX2, which a gateway pays per short answer), else the
/// fast reader's (the embedded default's n-gram head: microseconds). An escalation reader
/// without such a head (`minilm`) decides with the n-gram model by agreement
/// ([`SHORT_AGREEMENT_FROM`]). `verdict` (the patterns' answer) where the answer stands.
///
/// Where the escalation reader's head could not read the reply (shed under load, failed),
/// the reply is judged as the embedded default alone judges it (its own short-reply head),
/// the escalation reader is not asked again, and the verdict carries the trace ([`unread`]).
async fn short_verdict(models: &Models, observation: &Observation<'_>, verdict: Verdict) -> Verdict {
    let (reading, unread) = short_head_reading(models, observation, true, false).await;
    let (judged, unread) = match reading {
        ShortReading::Read(tier, short) => (by_short_head(tier, &short, &verdict.evidence), unread),
        ShortReading::Cleared => (None, unread),
        ShortReading::Unread => by_agreement(models, observation, &verdict.evidence).await,
    };
    let mut verdict = judged.unwrap_or(verdict);
    verdict.evidence.extend(unread);
    verdict
}

/// The verdict on a short answer where the escalation reader has no short-reply head
/// (`minilm`): a non-answer when the fast reader and the escalation reader both read one
/// from [`SHORT_AGREEMENT_FROM`]; `None` where the answer stands, with the trace of an
/// escalation reader that could not read it ([`unread`]).
async fn by_agreement(
    models: &Models,
    observation: &Observation<'_>,
    evidence: &[Evidence],
) -> (Option<Verdict>, Option<Evidence>) {
    let Some(slow) = models.escalation.as_ref() else {
        return (None, None);
    };
    let Some(fast) = read_fast(models, observation.prompt, observation.text).await else {
        return (None, None);
    };
    if fast.non_answer() < SHORT_AGREEMENT_FROM {
        return (None, None);
    }
    let encoder = match slow.judge_response(observation.prompt, observation.text).await {
        Ok(Some(j)) => j,
        Ok(None) => return (None, None),
        Err(e) => {
            e.report(slow.name(), "short answer: encoder failed; the patterns decide");
            return (None, Some(unread(slow.name(), &e, "a short reply")));
        }
    };
    if encoder.non_answer() < SHORT_AGREEMENT_FROM {
        return (None, None);
    }
    // The class both lean to: the non-answer class with the larger mean probability.
    let mean: [f32; 4] = std::array::from_fn(|i| (fast.probs[i] + encoder.probs[i]) / 2.0);
    let reason = format!(
        "{} and {} both read a non-answer ({:.2}, {:.2})",
        models.fast.name(),
        slow.name(),
        fast.non_answer(),
        encoder.non_answer()
    );
    let readings = [
        model_evidence(models.fast.name(), &fast),
        model_evidence(slow.name(), &encoder),
    ];
    (Some(short_non_answer(&mean, reason, readings, evidence)), None)
}

/// Whether the patterns let a short reply pass to a short-reply head, given their verdict on
/// it alone (the rule combiner's): an answer, and for a reply of a few sentences (longer than
/// [`MIN_MODEL_ANSWER_TOKENS`]) not a trace of a non-answer in any evidence. A weak sign
/// ("As an AI, …", an apology) leaves a reply of a few sentences to the combiner, which
/// weighs it with the models, as before the head read such replies: handed to the head,
/// many more of them were let through (Do-Not-Answer's capability disclaimers, gptfuzz's
/// persona refusals). A one-line reply has always gone to the head on the rule combiner's
/// answer alone. `train --short-head-only` marks its rows with this.
pub fn short_reply_passes(by_patterns: &Verdict, text: &str) -> bool {
    by_patterns.kind == VerdictKind::Answer
        && (features::is_one_line(text) || !by_patterns.evidence.iter().any(|e| e.suggests.is_non_answer()))
}

/// Whether a short-reply head reads a complete answer the patterns let pass
/// ([`short_reply_passes`]): one of a few sentences always ([`SHORT_REPLY_TOKENS`]), and a
/// paragraph ([`PARAGRAPH_REPLY_TOKENS`]) only where the combiner called it a non-answer
/// (`combiner_flags`) and an escalation reader, whose head may overrule that, is installed
/// (`escalation`). [`decide`] asks this; which head reads it, the fast reader's alone or the
/// escalation reader's too, is the short-reply cascade's call ([`Models::short_asked_from`]).
pub fn short_head_reviews(text: &str, combiner_flags: bool, escalation: bool) -> bool {
    features::is_few_sentences(text) || (escalation && combiner_flags && features::is_paragraph(text))
}

/// What the short-reply heads made of a short reply the patterns let pass.
enum ShortReading<'m> {
    /// The head of the tier named read it.
    Read(&'m str, ShortJudgement),
    /// The reply stays as judged and no reader is asked (again): the fast reader's head read
    /// an answer, below [`Models::short_asked_from`], so the escalation reader's head was
    /// not asked; or that head could not read it, and the embedded default alone would not
    /// have read it either.
    Cleared,
    /// No head read it: none is installed (the escalation reader's may be asked otherwise),
    /// or the fast reader's failed (logged).
    Unread,
}

/// What a short-reply head reads of a short reply the patterns let pass: the escalation
/// reader's head where it has one, else the fast reader's.
///
/// The short-reply cascade: where the escalation reader's head is only asked whether an
/// answer is a non-answer (`may_clear`: not when it reviews the combiner's non-answer, which
/// it may overrule), the fast reader's head reads first, in microseconds, and an answer it
/// reads below [`Models::short_asked_from`] (for the text's script) is `Cleared` without
/// the encoder pass (about 11 ms on an AVX2 core). Before the cascade (2026-12-07,
/// forty-second session) an e5 gateway spent 18.7 ms of CPU on a pattern-clean short answer
/// against 1.0-1.2 ms without the head, and saturated near 110 requests/s on two cores
/// (docs/gateway.md).
///
/// Where the escalation reader could not read the reply (shed under load, failed), or
/// already could not for this answer's verdict (`unread_before`: asked again, an
/// overloaded server would only shed it again), the embedded default's head reads it as
/// it would alone, with the trace of the failure ([`unread`]) where it is new.
async fn short_head_reading<'m>(
    models: &'m Models,
    observation: &Observation<'_>,
    may_clear: bool,
    unread_before: bool,
) -> (ShortReading<'m>, Option<Evidence>) {
    let Some(reader) = models.escalation.as_ref() else {
        return (read_short(&models.fast, observation.text).await, None);
    };
    let asked_from = models.short_asked_from.for_text(observation.text);
    let mut fast_reading = None;
    if may_clear && asked_from > 0.0 {
        if let ShortReading::Read(_, fast) = read_short(&models.fast, observation.text).await {
            if fast.non_answer() < asked_from {
                return (ShortReading::Cleared, None);
            }
            fast_reading = Some(fast);
        }
    }
    if unread_before {
        return (as_embedded_alone(models, observation, fast_reading).await, None);
    }
    match reader.judge_short_answer(observation.text).await {
        Ok(Some(short)) => (ShortReading::Read(reader.name(), short), None),
        Ok(None) => (ShortReading::Unread, None),
        Err(e) => {
            e.report(
                reader.name(),
                "short answer: its head could not read it; judged as the embedded default judges it",
            );
            let instead = as_embedded_alone(models, observation, fast_reading).await;
            (instead, Some(unread(reader.name(), &e, "a short reply")))
        }
    }
}

/// The short-reply reading of the embedded default alone, where the escalation reader's
/// could not be had: its head reads a reply of a few sentences and no paragraph
/// ([`short_head_reviews`]); `fast` is its reading where the cascade already took it. Never
/// [`ShortReading::Unread`], which would ask the escalation reader again.
async fn as_embedded_alone<'m>(
    models: &'m Models,
    observation: &Observation<'_>,
    fast: Option<ShortJudgement>,
) -> ShortReading<'m> {
    if !features::is_few_sentences(observation.text) {
        return ShortReading::Cleared;
    }
    if let Some(fast) = fast {
        return ShortReading::Read(models.fast.name(), fast);
    }
    match read_short(&models.fast, observation.text).await {
        ShortReading::Unread => ShortReading::Cleared,
        read => read,
    }
}

/// `reader`'s short-reply head's reading of `text`.
async fn read_short<'m>(reader: &'m Arc<dyn Classifier>, text: &str) -> ShortReading<'m> {
    match reader.judge_short_answer(text).await {
        Ok(Some(short)) => ShortReading::Read(reader.name(), short),
        Ok(None) => ShortReading::Unread,
        Err(e) => {
            e.report(
                reader.name(),
                "short answer: its reader failed; the head is not asked",
            );
            ShortReading::Unread
        }
    }
}

/// A reply of a few sentences is a non-answer by the combiner only when its short-reply head
/// also reads one at least this likely: below it, the head reads an answer more likely than
/// not, and the combiner's flag is overruled. Not tuned: the even odds. Leave-one-source-out
/// on the team's replies of a few sentences (models/data/short/responses-medium-*.jsonl,
/// which the combiner never read), the combiner alone flagged 143 (embedded) and 151 (e5) of
/// their 389 pattern-clean answers and found 175 and 190 of 234 non-answers; reviewed at
/// this bar (and flagging on the head's own threshold too), 34 and 18 flagged, 160 and 201
/// found.
pub const SHORT_REPLY_VETO_BELOW: f32 = 0.5;

/// The combiner's `verdict` on a reply of a few sentences, reviewed by the short-reply head
/// of `tier`: a non-answer stands only where the head reads one from
/// [`SHORT_REPLY_VETO_BELOW`], else the reply is an answer; an answer becomes a non-answer
/// where the head reads one from its own threshold (split by the request's harm).
async fn reviewed_by_short_head(
    models: &Models,
    verdict: Verdict,
    tier: &str,
    short: &ShortJudgement,
    observation: &Observation<'_>,
) -> Verdict {
    if verdict.class().is_non_answer() {
        if short.non_answer() >= SHORT_REPLY_VETO_BELOW {
            return verdict;
        }
        let mut all = vec![Evidence {
            source: "short_answer".to_string(),
            suggests: VerdictClass::Answer,
            score: 1.0 - short.non_answer(),
            reason: format!(
                "{} no pattern reads; {tier}'s short-reply head reads an answer \
                 (non-answer {:.3}, under {SHORT_REPLY_VETO_BELOW}): the combiner's {} is overruled",
                if features::is_few_sentences(observation.text) {
                    "a reply of a few sentences"
                } else {
                    "a paragraph"
                },
                short.non_answer(),
                verdict.class()
            ),
            span: None,
            tokens: Vec::new(),
        }];
        all.push(model_evidence(&format!("{tier}:short"), &short.judgement));
        all.extend(verdict.evidence);
        return rules::with_evidence(VerdictKind::Answer, 1.0 - short.non_answer(), all);
    }
    let Some(mut flagged) = by_short_head(tier, short, &verdict.evidence) else {
        return verdict;
    };
    if let Some((kind, ev)) = split_by_harm(flagged.class(), models, &flagged.evidence, observation).await {
        flagged.kind = kind;
        flagged.evidence.insert(0, ev);
    }
    flagged
}

/// A short answer's verdict as the non-answer class `probs` lean to, its confidence their
/// non-answer share, with a `short_answer` evidence saying `why`, then the models'
/// `readings`, then the patterns' `evidence`.
fn short_non_answer(
    probs: &[f32; 4],
    why: String,
    readings: impl IntoIterator<Item = Evidence>,
    evidence: &[Evidence],
) -> Verdict {
    let kind = kind_of(answer_label(probs, 0.0));
    let confidence = 1.0 - probs[ResponseLabel::Answer.index()];
    let mut all = vec![Evidence {
        source: "short_answer".to_string(),
        suggests: kind.class(),
        score: confidence,
        reason: format!("a short answer no pattern reads; {why}"),
        span: None,
        tokens: Vec::new(),
    }];
    all.extend(readings);
    all.extend(evidence.iter().cloned());
    rules::with_evidence(kind, confidence, all)
}

/// The verdict on a short answer the patterns let pass, by the escalation tier's short-reply
/// head (`classify::short_head`): a non-answer of the class it leans to when its reading is
/// at or above its own threshold; `None` (the patterns' answer stands) otherwise.
fn by_short_head(tier: &str, short: &ShortJudgement, evidence: &[Evidence]) -> Option<Verdict> {
    if !short.is_non_answer() {
        return None;
    }
    let reason = format!(
        "{tier}'s short-reply head reads a non-answer ({:.3}, from {})",
        short.non_answer(),
        short.non_answer_from
    );
    let readings = [model_evidence(&format!("{tier}:short"), &short.judgement)];
    Some(short_non_answer(
        &short.judgement.probs,
        reason,
        readings,
        evidence,
    ))
}

/// A refusal or an evasion of class `class`, split by the request's harm
/// ([`HarmPolicy::refusal_verdict`]); `None` for any other class, which the request's harm
/// does not change here (a provider's block is [`split_block`]'s). A deflection ("Let's talk
/// about something else.") is split as a refusal is: whether a text refuses or deflects is
/// the combiner's call and says nothing about the request, so it must not open a way around
/// the harm judgment.
async fn split_by_harm(
    class: VerdictClass,
    models: &Models,
    evidence: &[Evidence],
    observation: &Observation<'_>,
) -> Option<(VerdictKind, Evidence)> {
    let deflection = match class {
        VerdictClass::PolicyRefusal | VerdictClass::SafetyRefusal => false,
        VerdictClass::Evasion => true,
        _ => return None,
    };
    let prompt = observation.prompt.filter(|p| !p.trim().is_empty());
    let judged_prompt = match prompt {
        Some(p) => models.prompt.judge_prompt(p).await,
        None => None,
    };
    let names_harm = evidence
        .iter()
        .any(|e| e.source == "patterns" && e.suggests == VerdictClass::SafetyRefusal);
    Some(models.harm.refusal_verdict(
        judged_prompt.as_ref().map(|(j, s)| (j, s.as_str())),
        names_harm,
        deflection,
    ))
}

/// A provider's moderation block, split by the request's harm: a block of a request judged
/// clearly harmful (at or above [`HarmPolicy::block_harmful_from`]) is justified and becomes a
/// [`VerdictKind::SafetyRefusal`], so it is never re-routed to a laxer provider. Unlike a
/// refusal in words, an *unsure* judgment does not hold a block back: DashScope's input
/// filter blocks lawful political questions in bulk, re-routing them is the product's first
/// job, and the prompt judge is not precise enough (models/combiner/loso.md) to fail safe
/// on all of them. Other verdicts pass unchanged.
async fn split_block(models: &Models, mut verdict: Verdict, observation: &Observation<'_>) -> Verdict {
    if !matches!(verdict.kind, VerdictKind::ProviderBlock { .. }) {
        return verdict;
    }
    let Some(prompt) = observation.prompt.filter(|p| !p.trim().is_empty()) else {
        return verdict;
    };
    let Some((judged, source)) = models.prompt.judge_prompt(prompt).await else {
        return verdict;
    };
    if let Some((kind, ev)) = models.harm.block_verdict(&judged, &source) {
        verdict.kind = kind;
        verdict.evidence.insert(0, ev);
    }
    verdict
}

/// Turns evidence into a verdict (see the module docs).
pub async fn decide(evidence: Vec<Evidence>, observation: &Observation<'_>, decision: &Decision) -> Verdict {
    let models = match decision {
        Decision::Rules { threshold } => return rules::combine(evidence, *threshold, observation),
        Decision::Learned(models) => models,
    };
    if let Some(v) = rules::decisive(&evidence, observation) {
        return split_block(models, v, observation).await;
    }
    // A short text, a stream's prefix or a whole answer: the models read "Hello! How can I
    // help you today?" or "4" as the closing line of a deflection (short answers are rare
    // in the training data), while the patterns know every short refusal formula.
    // (MIN_MODEL_PREFIX_TOKENS, MIN_MODEL_ANSWER_TOKENS.)
    let min_tokens = if observation.completeness == Completeness::Partial {
        MIN_MODEL_PREFIX_TOKENS
    } else {
        MIN_MODEL_ANSWER_TOKENS
    };
    let short = features::fits(observation.text, min_tokens);
    let cut = observation.error.is_some() || observation.completeness == Completeness::Truncated;
    if observation.text.trim().is_empty() || short || cut {
        // Nothing to read, or an answer that an error or a cut ended (the provider signals'
        // rules say what those are; the models were trained on whole answers), or a text
        // too short for the models (see MIN_MODEL_PREFIX_TOKENS). A refusal or an evasion found
        // there is still split by the request's harm, never by its wording alone.
        let mut verdict = rules::combine(evidence, 0.5, observation);
        if short
            && !cut
            && observation.completeness == Completeness::Complete
            && verdict.kind == VerdictKind::Answer
        {
            verdict = short_verdict(models, observation, verdict).await;
        }
        if let Some((kind, ev)) = split_by_harm(verdict.class(), models, &verdict.evidence, observation).await
        {
            verdict.kind = kind;
            verdict.evidence.insert(0, ev);
        }
        return split_block(models, verdict, observation).await;
    }
    // A complete answer of a few sentences, or a paragraph, with no trace of a non-answer in
    // the patterns: the combiner reads brevity itself as refusal, so a short-reply head,
    // where the tiers have one, reviews its verdict (short_head_reviews). The patterns'
    // own verdict is combined only for the answers the head would read: most paragraphs
    // are the combiner's answers, and never reviewed.
    let kept = (observation.completeness == Completeness::Complete
        && features::fits(observation.text, PARAGRAPH_REPLY_TOKENS))
    .then(|| evidence.clone());
    let verdict = by_combiner(models, evidence, observation).await;
    let Some(evidence) = kept else {
        return verdict;
    };
    if !short_head_reviews(
        observation.text,
        verdict.class().is_non_answer(),
        models.escalation.is_some(),
    ) || !short_reply_passes(&rules::combine(evidence, 0.5, observation), observation.text)
    {
        return verdict;
    }
    // The review of a combiner's non-answer, which may overrule it, always asks the
    // escalation reader's head; whether an answer is a non-answer asks it only where the
    // fast reader's head is unsure (the short-reply cascade).
    let may_clear = !verdict.class().is_non_answer();
    let unread_before = verdict.evidence.iter().any(|e| e.source.ends_with(UNREAD));
    let (reading, unread) = short_head_reading(models, observation, may_clear, unread_before).await;
    let mut verdict = match reading {
        ShortReading::Read(tier, short) => {
            reviewed_by_short_head(models, verdict, tier, &short, observation).await
        }
        ShortReading::Cleared | ShortReading::Unread => verdict,
    };
    verdict.evidence.extend(unread);
    verdict
}

/// The combiner's verdict on an answer long enough for the answer models (or a stream's
/// window): their readings and the detectors' evidence, combined, split by the request's
/// harm.
async fn by_combiner(models: &Models, evidence: Vec<Evidence>, observation: &Observation<'_>) -> Verdict {
    let Some(AnswerReading {
        mut probs,
        ngram,
        encoder,
        unread,
    }) = answer_probs(models, &evidence, observation).await
    else {
        return rules::combine(evidence, 0.5, observation);
    };
    let mut known: Vec<&str> = features::KNOWN_SOURCES.to_vec();
    known.push(models.fast.name());
    fold_unknown(&mut probs, &evidence, &known);

    let judged = ResponseJudgement { probs };
    let threshold = if encoder.is_some() {
        models.combiner.non_answer_from_escalated()
    } else if observation.completeness == Completeness::Partial {
        models.combiner.non_answer_from_window()
    } else {
        models.combiner.non_answer_from()
    };
    let label = answer_label(&probs, threshold);
    // The verdict's confidence: the probability that it is (or is not) an answer, the
    // question the threshold decided.
    let answer_p = probs[ResponseLabel::Answer.index()];
    let confidence = if label == ResponseLabel::Answer {
        answer_p
    } else {
        1.0 - answer_p
    };
    let mut all = Vec::with_capacity(evidence.len() + 4);
    let mut combined = model_evidence("combiner", &judged);
    let mut kind = kind_of(label);
    let mut harm_evidence = None;
    if let Some((k, ev)) = split_by_harm(kind.class(), models, &evidence, observation).await {
        kind = k;
        combined.suggests = kind.class();
        harm_evidence = Some(ev);
    }
    all.push(combined);
    all.extend(harm_evidence);
    all.push(model_evidence(models.fast.name(), &ngram));
    if let (Some(j), Some(slow)) = (&encoder, &models.escalation) {
        all.push(model_evidence(slow.name(), j));
    }
    let mut rest = evidence;
    rest.sort_by(|a, b| b.score.total_cmp(&a.score));
    all.extend(rest);
    all.extend(unread);
    rules::with_evidence(kind, confidence, all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::ClassifyError;
    use crate::detect::Detectors;
    use async_trait::async_trait;

    /// A fast reader whose answer reading and short-reply head reading are fixed.
    struct Fixed {
        response: [f32; 4],
        short: f32,
    }

    #[async_trait]
    impl Classifier for Fixed {
        fn name(&self) -> &str {
            "fixed"
        }

        async fn judge_response(
            &self,
            _prompt: Option<&str>,
            _response: &str,
        ) -> Result<Option<ResponseJudgement>, ClassifyError> {
            Ok(Some(ResponseJudgement { probs: self.response }))
        }

        async fn judge_short_answer(&self, _response: &str) -> Result<Option<ShortJudgement>, ClassifyError> {
            Ok(Some(ShortJudgement {
                judgement: ResponseJudgement {
                    probs: [1.0 - self.short, self.short, 0.0, 0.0],
                },
                non_answer_from: 0.9,
            }))
        }
    }

    const FLAGS: [f32; 4] = [0.03, 0.97, 0.0, 0.0];
    const RELEASES: [f32; 4] = [0.98, 0.02, 0.0, 0.0];

    async fn verdict(text: &str, response: [f32; 4], short: f32) -> Verdict {
        let models = Models {
            fast: Arc::new(Fixed { response, short }),
            ..Models::embedded()
        };
        Detectors::default()
            .models(models)
            .judge(&Observation::text(text))
            .await
    }

    /// The same with an escalation reader reading as the fast one does (an encoder tier).
    async fn verdict_with_escalation(text: &str, response: [f32; 4], short: f32) -> Verdict {
        let models = Models {
            fast: Arc::new(Fixed { response, short }),
            escalation: Some(Arc::new(Fixed { response, short })),
            ..Models::embedded()
        };
        Detectors::default()
            .models(models)
            .judge(&Observation::text(text))
            .await
    }

    fn overruled(v: &Verdict) -> bool {
        v.evidence
            .iter()
            .any(|e| e.source == "short_answer" && e.reason.contains("overruled"))
    }

    /// A pattern-clean reply of a few sentences: the combiner's non-answer stands only where
    /// the head reads one from even odds; the head alone makes a non-answer of the
    /// combiner's answer from its own threshold.
    #[tokio::test]
    async fn the_short_reply_head_reviews_the_combiner_on_a_reply_of_a_few_sentences() {
        let text = "The museum opens at ten on weekdays and at noon on Sundays; tickets cost twelve \
                    euros and children under seven get in free.";
        assert!(!features::fits(text, MIN_MODEL_ANSWER_TOKENS) && features::fits(text, SHORT_REPLY_TOKENS));
        let v = verdict(text, FLAGS, 0.2).await;
        assert_eq!(v.kind, VerdictKind::Answer, "{v:?}");
        assert!(overruled(&v), "{v:?}");
        let v = verdict(text, FLAGS, 0.6).await;
        assert!(v.class().is_non_answer() && !overruled(&v), "{v:?}");
        let v = verdict(text, RELEASES, 0.95).await;
        assert!(v.class().is_non_answer(), "{v:?}");
        assert!(v.evidence.iter().any(|e| e.source == "fixed:short"), "{v:?}");
        assert_eq!(verdict(text, RELEASES, 0.6).await.kind, VerdictKind::Answer);
    }

    /// A pattern-clean paragraph: an escalation reader's head may overrule the combiner's
    /// non-answer, as for a reply of a few sentences, but never makes a non-answer of its
    /// answer; the embedded default's head reads no paragraph.
    #[tokio::test]
    async fn the_short_reply_head_only_overrules_the_combiner_on_a_paragraph() {
        let text = "The museum opens at ten on weekdays and at noon on Sundays. ".repeat(5);
        assert!(!features::fits(&text, SHORT_REPLY_TOKENS) && features::fits(&text, PARAGRAPH_REPLY_TOKENS));
        let v = verdict_with_escalation(&text, FLAGS, 0.2).await;
        assert_eq!(v.kind, VerdictKind::Answer, "{v:?}");
        assert!(overruled(&v), "{v:?}");
        let v = verdict_with_escalation(&text, FLAGS, 0.6).await;
        assert!(v.class().is_non_answer() && !overruled(&v), "{v:?}");
        let v = verdict_with_escalation(&text, RELEASES, 0.95).await;
        assert_eq!(v.kind, VerdictKind::Answer, "{v:?}");
        assert!(!v.evidence.iter().any(|e| e.source == "fixed:short"), "{v:?}");
        let v = verdict(&text, FLAGS, 0.2).await;
        assert!(v.class().is_non_answer() && !overruled(&v), "{v:?}");
    }

    /// An escalation reader whose short-reply head reads a fixed value, counting its reads.
    struct Counting {
        short: f32,
        reads: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl Classifier for Counting {
        fn name(&self) -> &str {
            "slow"
        }

        async fn judge_short_answer(&self, _response: &str) -> Result<Option<ShortJudgement>, ClassifyError> {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(Some(ShortJudgement {
                judgement: ResponseJudgement {
                    probs: [1.0 - self.short, self.short, 0.0, 0.0],
                },
                non_answer_from: 0.9,
            }))
        }
    }

    /// `text` judged with a fast reader whose short-reply head reads `fast` and an escalation
    /// reader whose head reads `slow`, asked from `asked_from`; with how often the escalation
    /// reader's head was asked.
    async fn verdict_in_cascade(
        text: &str,
        response: [f32; 4],
        fast: f32,
        slow: f32,
        asked_from: f32,
    ) -> (Verdict, usize) {
        let asked_from = AskedFrom {
            other: asked_from,
            cjk: 0.0,
        };
        let escalation = Arc::new(Counting {
            short: slow,
            reads: Default::default(),
        });
        let models = Models {
            fast: Arc::new(Fixed {
                response,
                short: fast,
            }),
            escalation: Some(escalation.clone()),
            escalate: EscalationBand::NEVER,
            short_asked_from: asked_from,
            ..Models::embedded()
        };
        let v = Detectors::default()
            .models(models)
            .judge(&Observation::text(text))
            .await;
        (v, escalation.reads.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// The short-reply cascade: where the fast reader's head reads an answer below
    /// `short_asked_from`, the escalation reader's head is not asked whether a pattern-clean
    /// short answer is a non-answer, even where it would have said so; it is asked from
    /// there up, and always when it reviews the combiner's non-answer.
    #[tokio::test]
    async fn the_escalation_readers_short_head_is_asked_only_where_the_fast_one_is_unsure() {
        let line = "Paris, on the Seine.";
        let sentences = "The museum opens at ten on weekdays and at noon on Sundays; tickets cost twelve \
                         euros and children under seven get in free.";
        assert!(features::is_one_line(line) && !features::is_one_line(sentences));
        for text in [line, sentences] {
            let (v, asked) = verdict_in_cascade(text, RELEASES, 0.1, 0.95, 0.5).await;
            assert_eq!((&v.kind, asked), (&VerdictKind::Answer, 0), "{text}: {v:?}");
            let (v, asked) = verdict_in_cascade(text, RELEASES, 0.6, 0.95, 0.5).await;
            assert!(v.class().is_non_answer() && asked == 1, "{text}: {v:?}");
            assert!(v.evidence.iter().any(|e| e.source == "slow:short"), "{v:?}");
            let (v, asked) = verdict_in_cascade(text, RELEASES, 0.1, 0.95, 0.0).await;
            assert!(v.class().is_non_answer() && asked == 1, "0 asks always: {v:?}");
        }
        // A CJK reply is read at the CJK value, 0 here: always asked.
        let (v, asked) = verdict_in_cascade("巴黎，在塞纳河畔。", RELEASES, 0.1, 0.95, 0.5).await;
        assert!(v.class().is_non_answer() && asked == 1, "{v:?}");
        // The combiner's non-answer on a reply of a few sentences is reviewed by the
        // escalation reader's head whatever the fast one reads, and overruled here.
        let (v, asked) = verdict_in_cascade(sentences, FLAGS, 0.1, 0.2, 0.5).await;
        assert_eq!((&v.kind, asked), (&VerdictKind::Answer, 1), "{v:?}");
        assert!(overruled(&v), "{v:?}");
    }

    /// An escalation reader whose passes are all shed (a server under more load than its
    /// queue of model passes holds), counting how often it is asked.
    struct Shed {
        asked: std::sync::atomic::AtomicUsize,
    }

    impl Shed {
        fn busy(&self) -> ClassifyError {
            self.asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ClassifyError::Busy {
                model: "slow".into(),
                waiting: 8,
            }
        }
    }

    #[async_trait]
    impl Classifier for Shed {
        fn name(&self) -> &str {
            "slow"
        }

        async fn judge_response(
            &self,
            _prompt: Option<&str>,
            _response: &str,
        ) -> Result<Option<ResponseJudgement>, ClassifyError> {
            Err(self.busy())
        }

        async fn judge_short_answer(&self, _response: &str) -> Result<Option<ShortJudgement>, ClassifyError> {
            Err(self.busy())
        }
    }

    /// `text` judged with a fast reader reading `response` and `short`, and an escalation
    /// reader that cannot read anything, asked about every unsure whole answer and every
    /// short reply; with how often it was asked.
    async fn verdict_with_escalation_shed(text: &str, response: [f32; 4], short: f32) -> (Verdict, usize) {
        let shed = Arc::new(Shed {
            asked: Default::default(),
        });
        let models = Models {
            fast: Arc::new(Fixed { response, short }),
            escalation: Some(shed.clone()),
            escalate: EscalationBand::ALWAYS,
            short_asked_from: AskedFrom::ALWAYS,
            ..Models::embedded()
        };
        let v = Detectors::default()
            .models(models)
            .judge(&Observation::text(text))
            .await;
        (v, shed.asked.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// The trace of the escalation reader's failed reading: last, scoring 0, saying why.
    fn unread_trace(v: &Verdict) -> bool {
        v.evidence.last().is_some_and(|e| {
            e.source == "slow:unread" && e.score == 0.0 && e.reason.contains("not run, 8 model passes")
        })
    }

    /// Shed, the escalation reader's reading leaves the verdict to the cheaper tiers, as
    /// the embedded default alone makes it (a short reply: its short-reply head; a long
    /// answer: the combiner without the encoder), asks it only once, and says so in the
    /// evidence. Before, a shed short reply was asked a second time (the rule for readers
    /// without a head), and the verdict said nothing of it.
    #[tokio::test]
    async fn what_the_escalation_reader_cannot_read_is_judged_as_the_embedded_default_judges_it() {
        let line = "Paris, on the Seine.";
        let sentences = "The museum opens at ten on weekdays and at noon on Sundays; tickets cost twelve \
                         euros and children under seven get in free.";
        let paragraph = "The museum opens at ten on weekdays and at noon on Sundays. ".repeat(5);
        let long = "The museum opens at ten. ".repeat(45);
        for (text, response, short, non_answer) in [
            (line, RELEASES, 0.95, true),
            (line, RELEASES, 0.6, false),
            (sentences, RELEASES, 0.95, true),
            (sentences, FLAGS, 0.2, false),
            (&paragraph, FLAGS, 0.2, true),
            (&long, FLAGS, 0.0, true),
            (&long, RELEASES, 0.0, false),
        ] {
            let (v, asked) = verdict_with_escalation_shed(text, response, short).await;
            let alone = verdict(text, response, short).await;
            assert_eq!((&v.kind, asked), (&alone.kind, 1), "{text}: {v:?}");
            assert_eq!(v.class().is_non_answer(), non_answer, "{text}: {v:?}");
            assert!(unread_trace(&v), "{text}: {v:?}");
            assert!(!unread_trace(&alone));
        }
    }

    /// The review reaches neither a reply with a refusal formula (the combiner's, as before)
    /// nor an answer longer than a paragraph.
    #[tokio::test]
    async fn a_reply_with_a_formula_or_a_long_answer_is_the_combiners() {
        let formula = "I'm sorry, but I can't help with that request. If you have other questions about \
                       the museum, its opening hours or its tickets, ask me anytime.";
        let v = verdict(formula, FLAGS, 0.0).await;
        assert!(v.class().is_non_answer() && !overruled(&v), "{v:?}");
        let long = "The museum opens at ten. ".repeat(45);
        assert!(!features::fits(&long, PARAGRAPH_REPLY_TOKENS));
        let v = verdict(&long, FLAGS, 0.0).await;
        assert!(v.class().is_non_answer() && !overruled(&v), "{v:?}");
    }
}
