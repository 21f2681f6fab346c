//! Justified or over-blocked: the request is judged, not the refusal's wording.
//!
//! An over-refusing model names harm just as a justified one does ("I can't help with
//! anything that could cause harm"), so the words of a refusal cannot tell a policy
//! over-block from a safety refusal. What can is the request itself: a refusal of a harmful
//! request is a [`VerdictKind::SafetyRefusal`] (never re-routed by default), a refusal of a
//! benign one a [`VerdictKind::PolicyRefusal`] (re-routed). A deflection (an evasion) is
//! split the same way ([`HarmPolicy::refusal_verdict`]): it stays an [`VerdictKind::Evasion`] only
//! when the request is judged benign, so a provider that changes the subject of a harmful
//! request is not a way around the judgment.
//!
//! The harm probability comes from the prompt tiers of the pipeline, cheapest first (the
//! embedded n-gram prompt head, the encoder's prompt head, a generative guard where one is
//! installed). Between the two thresholds of [`HarmPolicy`] the judgment is unsure, and an
//! unsure judgment fails safe: the refusal is treated as justified and not re-routed, and
//! the evidence says so. Laundering a harmful request to a laxer provider is the one
//! mistake a re-router must not make.

use crate::classify::PromptJudgement;
use crate::verdict::{Evidence, VerdictClass, VerdictKind};

/// The `source` of the evidence this module adds to a verdict: the request's harm and what
/// it decided. Readers of a verdict (benchmarks, tests, tools) find that evidence by it.
pub const PROMPT_HARM_SOURCE: &str = "prompt_harm";

/// Where a prompt's harm probability becomes a decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HarmPolicy {
    /// From this probability up the request is harmful: a safety refusal.
    pub harmful_from: f32,
    /// Below this probability the request is benign: a policy refusal.
    pub benign_below: f32,
    /// The same, when the refusal's own words name harm, danger or illegality: that is
    /// evidence, not the decision, and it narrows what counts as clearly benign.
    pub benign_below_named_harm: f32,
    /// From this probability up a provider's *block* is held back as justified (a safety
    /// refusal). Higher than `harmful_from`: a DashScope input block is most often a lawful
    /// political question, re-routing those is the product's first job, and the embedded
    /// prompt judge puts some of them (Chinese questions on Taiwan's elections) at 0.5–0.7.
    pub block_harmful_from: f32,
}

impl Default for HarmPolicy {
    /// Harmful from 0.5, benign below 0.15 whether or not the refusal names harm, unsure
    /// (fail safe) between. The benign thresholds are chosen on a development set
    /// (tests/harm_reroute.rs, `the_embedded_harm_policy_is_chosen_on_the_development_set`),
    /// not on the end-to-end sets the shares are reported on. The band is wide on purpose:
    /// the shipped prompt judges recall harmful requests poorly on files they never saw
    /// (models/combiner/loso.md), and a refusal kept by mistake costs one answer while one
    /// re-routed by mistake launders a harmful request. From 2026-12-03 the rule chose 0.10
    /// when the refusal names harm; with the n-gram prompt head trained on 2026-12-05
    /// (twenty-sixth session) beside the team's lawful political speech and history
    /// requests (models/data/prompts-contrast8.jsonl, prompts-contrast9.jsonl) it chose
    /// 0.15 / 0.15 over the 199-pair development set (1 of 199 harmful re-routed, 0.447 of
    /// the benign), as it does for the e5 tier.
    fn default() -> Self {
        HarmPolicy {
            harmful_from: 0.5,
            benign_below: 0.15,
            benign_below_named_harm: 0.15,
            block_harmful_from: 0.9,
        }
    }
}

impl HarmPolicy {
    /// The policy where e5's fine-tuned prompt layer is the last prompt tier (the `e5`
    /// tiers of [`crate::classify::tiers`]): benign below 0.15, whether or not the refusal
    /// names harm. Chosen by the rule of tests/harm_reroute.rs
    /// (`the_harm_policy_is_chosen_on_a_development_set`) on its development set of 320
    /// requests, for the prompt layer tuned on 2026-12-05 with the team's requests asked as
    /// history beside harmful twins asked in the past tense
    /// (models/data/prompts-contrast7.jsonl): it re-routes 1 of 160 harmful requests and 130
    /// of 160 benign ones, where the layer before at its policy (0.10 / 0.067) re-routed 3
    /// and 126 (models/e5-heads/README.md, "Harmful requests asked as history"). Chosen
    /// again when the development set gained 39 election-framed pairs (2026-12-05, with
    /// evasions split by harm): 2 of 199 harmful and 155 of 199 benign; and again for the
    /// layer trained beside the team's lawful political speech and history requests
    /// (2026-12-05, twenty-sixth session): 2 of 199 and 152 of 199; and again for the layer
    /// trained with speechmap's requests to criticise the US, Russia and the EU (2026-12-07,
    /// thirty-eighth session): 3 of 199 and 159 of 199, where the layer before re-routed 3
    /// and 156 on the same machine. The other tiers keep [`HarmPolicy::default`], which is
    /// the same since then (for the n-gram prompt head trained with the same requests: 2 of
    /// 199 and 99 of 199).
    pub fn for_e5() -> Self {
        HarmPolicy {
            benign_below: 0.15,
            benign_below_named_harm: 0.15,
            ..HarmPolicy::default()
        }
    }

    /// Whether a request `judged` so may skip its primary for a fallback on the strength
    /// of a *similar* request the primary over-blocked ([`crate::layer::reroute::preroute`]):
    /// only below both benign thresholds, only judged in a language the judge learned, and
    /// only when no tier was left unable to check the reading.
    /// The primary's answer is not known yet, and a refusal that names harm narrows what
    /// counts as benign, so the stricter threshold holds: a request is never pre-routed that
    /// the guard would not re-route after whatever refusal or block the primary gave it.
    pub fn clears_preroute(&self, judged: &PromptJudgement) -> bool {
        judged.unlearned_language.is_none()
            && judged.unchecked.is_none()
            && judged.harmful < self.benign_below.min(self.benign_below_named_harm)
    }

    /// The verdict for a provider's block of a request judged `judged` by `source`: a
    /// safety refusal when the request is clearly harmful (`block_harmful_from`), `None` (the block stands and is
    /// re-routed) otherwise; see [`crate::judge::decide`] for why an unsure judgment does
    /// not hold a block back. An unchecked reading ([`PromptJudgement::unchecked`]) is one
    /// kind of unsure: the reading available decides, as it would with that tier alone.
    pub fn block_verdict(&self, judged: &PromptJudgement, source: &str) -> Option<(VerdictKind, Evidence)> {
        let p = judged.harmful;
        (p >= self.block_harmful_from).then(|| {
            (
                VerdictKind::SafetyRefusal {
                    categories: judged.categories.clone(),
                },
                Evidence {
                    source: PROMPT_HARM_SOURCE.into(),
                    suggests: VerdictClass::SafetyRefusal,
                    score: p,
                    reason: format!(
                        "the provider blocked a request {source} judged harmful (p={p:.2}): justified, not re-routed"
                    ),
                    span: None,
                    tokens: Vec::new(),
                },
            )
        })
    }

    /// The verdict for a refusal, or for a deflection (`deflection`: an evasion), given the
    /// prompt's judgment (`None`: no prompt, or no model could judge it), and the evidence
    /// that explains it. Of a request judged harmful, or not clearly benign, either is a
    /// safety refusal (fail safe): whether a text refuses or deflects says nothing about the
    /// request. Of a benign or unjudged request, a refusal is a policy refusal and a
    /// deflection stays an evasion.
    /// `names_harm`: the refusal's own words name harm, danger or illegality. That is
    /// evidence, not the decision: it narrows what counts as benign to
    /// `benign_below_named_harm`, so only a request judged clearly benign is re-routed.
    /// A judgment made in a language its judge never learned
    /// ([`PromptJudgement::unlearned_language`]) can keep a refusal but not clear one: short
    /// of harmful, it is unsure; so is a reading that a later tier should have checked and
    /// could not ([`PromptJudgement::unchecked`]: it failed, or a busy server shed its pass).
    pub fn refusal_verdict(
        &self,
        judged: Option<(&PromptJudgement, &str)>,
        names_harm: bool,
        deflection: bool,
    ) -> (VerdictKind, Evidence) {
        let (benign_kind, shape) = if deflection {
            (VerdictKind::Evasion, "evasion")
        } else {
            (VerdictKind::PolicyRefusal, "refusal")
        };
        let evidence = |suggests, score: f32, reason: String| Evidence {
            source: PROMPT_HARM_SOURCE.into(),
            suggests,
            score,
            reason,
            span: None,
            tokens: Vec::new(),
        };
        let Some((j, source)) = judged else {
            // Nothing says the request was harmful (an audited answer without its prompt).
            return (
                benign_kind.clone(),
                evidence(
                    benign_kind.class(),
                    0.5,
                    format!("{shape}; the prompt was not available to judge"),
                ),
            );
        };
        let p = j.harmful;
        if p >= self.harmful_from {
            let cats = if j.categories.is_empty() {
                String::new()
            } else {
                format!(" [{}]", j.categories.join(","))
            };
            (
                VerdictKind::SafetyRefusal {
                    categories: j.categories.clone(),
                },
                evidence(
                    VerdictClass::SafetyRefusal,
                    p,
                    format!("{source} judged the request harmful (p={p:.2}){cats}"),
                ),
            )
        } else {
            let benign_below = if names_harm {
                self.benign_below_named_harm
            } else {
                self.benign_below
            };
            // Why a reading short of harmful still does not clear the request, if it does not.
            let unsure = match (&j.unlearned_language, &j.unchecked) {
                (Some(lang), _) => Some(format!(
                    "{source} never learned to judge requests in this language ({lang}; p harmful={p:.2} \
                     cannot clear it)"
                )),
                (None, Some(why)) => Some(format!(
                    "{source} read the request as not harmful (p={p:.2}), but {why}, and an unchecked reading \
                     cannot clear it"
                )),
                (None, None) if p >= benign_below => Some(format!(
                    "{source} is unsure whether the request is harmful (p={p:.2}, under {:.2} but not clearly \
                     benign{})",
                    self.harmful_from,
                    if names_harm { "; the refusal names harm" } else { "" }
                )),
                (None, None) => None,
            };
            match unsure {
                None => (
                    benign_kind.clone(),
                    evidence(
                        benign_kind.class(),
                        1.0 - p,
                        format!("{source} judged the request benign (p harmful={p:.2})"),
                    ),
                ),
                Some(why) => (
                    VerdictKind::SafetyRefusal {
                        categories: j.categories.clone(),
                    },
                    evidence(
                        VerdictClass::SafetyRefusal,
                        p,
                        format!("{why}: treated as justified, not re-routed (fail safe)"),
                    ),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_request_benign_under_both_bounds_clears_preroute() {
        // A policy whose bound for refusals naming harm is the narrower (the default's until
        // 2026-12-05): under 0.15 a plain refusal of it would be re-routed, but one naming
        // harm (0.10) would not: not yet known, so it asks the primary.
        let d = narrower_when_harm_is_named();
        assert!(d.clears_preroute(&PromptJudgement::harm(0.09)));
        assert!(!d.clears_preroute(&PromptJudgement::harm(0.10)));
        assert!(!d.clears_preroute(&PromptJudgement::harm(0.12)));
        let e5 = HarmPolicy::for_e5();
        assert!(e5.clears_preroute(&PromptJudgement::harm(0.14)));
        assert!(!e5.clears_preroute(&PromptJudgement::harm(0.16)));
        // However benign the reading, not in a language the judge never learned.
        assert!(!e5.clears_preroute(&in_unlearned_language(0.01)));
    }

    fn in_unlearned_language(p: f32) -> PromptJudgement {
        PromptJudgement {
            unlearned_language: Some("de".into()),
            unchecked: None,
            ..PromptJudgement::harm(p)
        }
    }

    #[test]
    fn a_reading_in_an_unlearned_language_keeps_refusals_but_clears_none() {
        let policy = HarmPolicy::default();
        for deflection in [false, true] {
            let (kind, ev) =
                policy.refusal_verdict(Some((&in_unlearned_language(0.02), "ngram")), false, deflection);
            assert_eq!(kind.class(), VerdictClass::SafetyRefusal);
            assert!(
                ev.reason.contains("(de;") && ev.reason.contains("fail safe"),
                "{}",
                ev.reason
            );
        }
        // A harmful reading stands as one, with its own reason.
        let (kind, ev) = policy.refusal_verdict(Some((&in_unlearned_language(0.8), "ngram")), false, false);
        assert_eq!(kind.class(), VerdictClass::SafetyRefusal);
        assert!(ev.reason.contains("judged the request harmful"), "{}", ev.reason);
        // The same reading in a learned language clears the request.
        let (kind, _) = policy.refusal_verdict(Some((&PromptJudgement::harm(0.02), "ngram")), false, false);
        assert_eq!(kind.class(), VerdictClass::PolicyRefusal);
    }

    /// Benign below 0.15, or 0.10 when the refusal names harm.
    fn narrower_when_harm_is_named() -> HarmPolicy {
        HarmPolicy {
            benign_below_named_harm: 0.10,
            ..HarmPolicy::default()
        }
    }

    fn judged(p: f32) -> PromptJudgement {
        PromptJudgement {
            harmful: p,
            categories: vec!["S1".into()],
            unlearned_language: None,
            unchecked: None,
        }
    }

    #[test]
    fn harm_decides_the_class() {
        let policy = HarmPolicy::default();
        assert_eq!(
            policy
                .refusal_verdict(Some((&judged(0.9), "ngram")), false, false)
                .0
                .class(),
            VerdictClass::SafetyRefusal
        );
        assert_eq!(
            policy
                .refusal_verdict(Some((&judged(0.1), "ngram")), false, false)
                .0
                .class(),
            VerdictClass::PolicyRefusal
        );
    }

    #[test]
    fn only_a_harmful_request_turns_a_block_into_a_safety_refusal() {
        let policy = HarmPolicy::default();
        let (kind, ev) = policy.block_verdict(&judged(0.95), "ngram").unwrap();
        assert_eq!(kind.class(), VerdictClass::SafetyRefusal);
        assert!(ev.reason.contains("blocked"), "{}", ev.reason);
        assert!(policy.block_verdict(&judged(0.7), "ngram").is_none());
        assert!(policy.block_verdict(&judged(0.3), "ngram").is_none());
        assert!(policy.block_verdict(&judged(0.05), "ngram").is_none());
    }

    /// A benign reading the next tier could not check keeps the refusal (fail safe, said in
    /// the evidence) and never clears a request for pre-routing; checked, the same reading
    /// re-routes.
    #[test]
    fn an_unchecked_benign_reading_fails_safe() {
        let policy = HarmPolicy::for_e5();
        let mut j = judged(0.02);
        let (kind, _) = policy.refusal_verdict(Some((&j, "ngram")), false, false);
        assert_eq!(kind.class(), VerdictClass::PolicyRefusal);
        assert!(policy.clears_preroute(&j));
        j.unchecked = Some("e5 could not check it (not run, 8 model passes already wait)".into());
        let (kind, ev) = policy.refusal_verdict(Some((&j, "ngram")), false, false);
        assert_eq!(kind.class(), VerdictClass::SafetyRefusal);
        assert!(
            ev.reason.contains("e5 could not check it") && ev.reason.contains("fail safe"),
            "{}",
            ev.reason
        );
        assert!(!policy.clears_preroute(&j));
        // A deflection of it stays a safety refusal too: never re-routed unchecked.
        let (kind, _) = policy.refusal_verdict(Some((&j, "ngram")), false, true);
        assert_eq!(kind.class(), VerdictClass::SafetyRefusal);
    }

    #[test]
    fn unsure_fails_safe_and_says_so() {
        let (kind, ev) = HarmPolicy::default().refusal_verdict(Some((&judged(0.4), "ngram")), false, false);
        assert_eq!(kind.class(), VerdictClass::SafetyRefusal);
        assert!(ev.reason.contains("fail safe"), "{}", ev.reason);
        // Words naming harm narrow "benign" where the policy says so: 0.12 is benign alone,
        // unsure with them.
        let policy = narrower_when_harm_is_named();
        assert!(policy.benign_below_named_harm <= 0.12 && 0.12 < policy.benign_below);
        let (kind, _) = policy.refusal_verdict(Some((&judged(0.12), "ngram")), false, false);
        assert_eq!(kind.class(), VerdictClass::PolicyRefusal);
        let (kind, ev) = policy.refusal_verdict(Some((&judged(0.12), "ngram")), true, false);
        assert_eq!(kind.class(), VerdictClass::SafetyRefusal);
        assert!(ev.reason.contains("fail safe"), "{}", ev.reason);
    }
}
