//! The team's regression sets (tests/data/regression-{en,zh}.jsonl): answers written by the
//! team in the shapes the verdict used to get wrong (a refusal opener followed by a long
//! lecture, moralising deflections, refusals worded as a referral, evasive essays, partial
//! answers with a lecture) and hard negatives (answers that look like refusals), never
//! trained on. The default pipeline must keep its non-answer F1 on them above a floor set a
//! little under what was measured when the trained combiner landed, in each language, and
//! the hard negatives must stay answers.
//!
//! The embedded default (what every install has) and the e5 cascade (the default where e5 is
//! installed, as `audit`, `eval` and `serve` run it) each have their floors.
use crate::common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use refusal_guard::cli::eval::judge;
use refusal_guard::dataset::{LabelMap, Record};
use refusal_guard::detect::Detectors;
use refusal_guard::score::{Binary, Prf};

fn set(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The records of one set, each with its `kind` (the failure shape it holds).
fn records(name: &str) -> Vec<(Record, String)> {
    let text = std::fs::read_to_string(set(name)).expect("regression set reads");
    let records: Vec<(Record, String)> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let r = Record::from_line(line).expect("valid JSON").expect("not blank");
            let kind = serde_json::from_str::<serde_json::Value>(line).expect("valid JSON")["kind"]
                .as_str()
                .unwrap_or("?")
                .to_string();
            (r, kind)
        })
        .collect();
    assert!(records.len() >= 100, "{name}: {} records", records.len());
    records
}

/// Non-answer counts overall and accuracy per `kind` of one file.
fn run(name: &str, detectors: &Detectors) -> (Binary, BTreeMap<String, (usize, usize)>) {
    let map = LabelMap::default();
    let mut binary = Binary::default();
    let mut by_kind: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (r, kind) in &records(name) {
        let gold = map.gold(r);
        let Some(non_answer) = gold.is_non_answer() else {
            panic!("{name}: record {} has an unmapped label {:?}", r.id, r.label)
        };
        let verdict = judge(detectors, r);
        let predicted = verdict.class().is_non_answer();
        binary.count(non_answer, predicted);
        let e = by_kind.entry(kind.clone()).or_default();
        e.1 += 1;
        // Right: an answer judged an answer, a non-answer judged a non-answer.
        e.0 += usize::from(non_answer == predicted);
    }
    (binary, by_kind)
}

fn check(name: &str, detectors: &Detectors, f1_floor: f64, shape_floor: f64) {
    let (binary, by_kind) = run(name, detectors);
    let prf = binary.prf();
    let report: Vec<String> = by_kind
        .iter()
        .map(|(k, (ok, n))| format!("{k}: {ok}/{n}"))
        .collect();
    eprintln!(
        "{name}: non-answer P {:.3} R {:.3} F1 {:.3}; by shape: {}",
        prf.precision,
        prf.recall,
        prf.f1,
        report.join(", ")
    );
    assert!(
        prf.f1 >= f1_floor,
        "{name}: non-answer F1 {:.3} fell under {f1_floor:.3}",
        prf.f1
    );
    // Hard negatives (answers written to look like refusals) must stay answers: re-routing
    // them costs a call and an audit would count refusals that did not happen.
    let (ok, n) = by_kind
        .iter()
        .filter(|(k, _)| k.starts_with("hn-"))
        .fold((0, 0), |(a, b), (_, (ok, n))| (a + ok, b + n));
    assert!(n >= 25, "{name}: {n} hard negatives");
    let acc = ok as f64 / n as f64;
    assert!(
        acc >= shape_floor,
        "{name}: hard negatives judged answers {ok}/{n} = {acc:.2}, under {shape_floor:.2}"
    );
}

#[test]
fn english_regression_set() {
    check(
        "regression-en.jsonl",
        &Detectors::default(),
        FLOOR_EN,
        SHAPE_FLOOR,
    );
}

#[test]
fn chinese_regression_set() {
    check(
        "regression-zh.jsonl",
        &Detectors::default(),
        FLOOR_ZH,
        SHAPE_FLOOR,
    );
}

/// Both sets through the e5 cascade (one model load).
#[test]
fn both_regression_sets_with_the_e5_tier() {
    let Some(detectors) = common::e5_detectors() else {
        return;
    };
    check("regression-en.jsonl", &detectors, E5_FLOOR_EN, SHAPE_FLOOR);
    check("regression-zh.jsonl", &detectors, E5_FLOOR_ZH, SHAPE_FLOOR);
}

/// Both sets through `e5:wide`: the encoder asked over the band chosen without the cost cap.
#[test]
fn both_regression_sets_with_the_wide_e5_tier() {
    let Some(detectors) = common::detectors_needing_e5(&["e5:wide"]) else {
        return;
    };
    check("regression-en.jsonl", &detectors, E5_WIDE_FLOOR_EN, SHAPE_FLOOR);
    check("regression-zh.jsonl", &detectors, E5_WIDE_FLOOR_ZH, SHAPE_FLOOR);
}

/// `e5:prompts` never asks the encoder about an answer, where the full e5 tier does for many
/// of these (the unsure ones), and judges the sets with the embedded default's figures.
#[test]
fn e5_for_requests_only_never_reads_an_answer() {
    let (Some(full), Some(prompts_only)) = (
        common::e5_detectors(),
        common::detectors_needing_e5(&["e5:prompts"]),
    ) else {
        return;
    };
    let map = LabelMap::default();
    let read_by_e5 = |d: &Detectors| {
        let mut n = 0;
        for name in ["regression-en.jsonl", "regression-zh.jsonl"] {
            for (r, _) in records(name) {
                assert!(map.gold(&r).is_non_answer().is_some());
                n += usize::from(judge(d, &r).evidence.iter().any(|e| e.source == "e5"));
            }
        }
        n
    };
    let asked = read_by_e5(&full);
    let wide = common::detectors_needing_e5(&["e5:wide"]).expect("e5 is installed");
    let asked_wide = read_by_e5(&wide);
    eprintln!("answers read by the encoder: e5 {asked}, e5:wide {asked_wide}, of 240");
    assert!(asked >= 5, "the e5 tier read only {asked} answers");
    assert!(
        asked_wide > asked,
        "the wide band read {asked_wide} answers, the capped one {asked}"
    );
    assert_eq!(read_by_e5(&prompts_only), 0);
    let (embedded, _) = run("regression-en.jsonl", &Detectors::default());
    let (cheap, _) = run("regression-en.jsonl", &prompts_only);
    assert_eq!(
        (embedded.tp, embedded.fp, embedded.fn_),
        (cheap.tp, cheap.fp, cheap.fn_),
        "answers are the embedded default's to judge"
    );
}

/// Short replies (tests/data/short-replies.jsonl): 238 answers of at most 14 words or CJK
/// characters in nine languages, 160 of them non-answers (flat, idiomatic, impersonal and
/// canned-filter refusals, deflections, inabilities) and 78 answers, most of them hard
/// negatives ("No, it's a star.", a refusal sentence translated on request). Written by the
/// team to measure the short path, never read while writing rules and never trained on. A
/// text that short is read by the patterns, then, where they let it pass, by a short-reply
/// head: the embedded default's n-gram head, or e5's with the e5 tier (`classify::short_head`;
/// models/refusal-ngram/README.md and models/e5-heads/README.md, "The short-reply head").
/// Non-answer vs answer over every record of the team set `file`, judged by `detectors`,
/// with the number of records.
fn judged(file: &str, detectors: &Detectors) -> (Binary, usize) {
    let text = std::fs::read_to_string(set(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let map = LabelMap::default();
    let mut binary = Binary::default();
    let mut n = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let r = Record::from_line(line).expect("valid JSON").expect("not blank");
        let non_answer = map.gold(&r).is_non_answer().expect("mapped label");
        binary.count(non_answer, judge(detectors, &r).class().is_non_answer());
        n += 1;
    }
    let prf = binary.prf();
    eprintln!(
        "{file}: non-answer P {:.3} R {:.3} F1 {:.3}; answers flagged {}",
        prf.precision, prf.recall, prf.f1, binary.fp
    );
    (binary, n)
}

fn short_replies(detectors: &Detectors) -> (Binary, usize) {
    judged("short-replies.jsonl", detectors)
}

/// Holds a set's figure `of` the non-answer scores (recall, F1) to `floor` and the answers
/// it flags to `max_flagged`; the number of records.
fn holds(judged: (Binary, usize), of: fn(&Prf) -> f64, floor: f64, max_flagged: usize) -> usize {
    let (b, n) = judged;
    let figure = of(&b.prf());
    assert!(figure >= floor, "{figure:.3} under {floor}");
    assert!(b.fp <= max_flagged, "{} answers flagged", b.fp);
    n
}

#[test]
fn short_replies_with_the_embedded_default() {
    let n = holds(
        short_replies(&Detectors::default()),
        |p| p.recall,
        SHORT_FLOOR_R,
        SHORT_MAX_FLAGGED,
    );
    assert!(n >= 200, "{n} records");
}

/// Replies of a few sentences (tests/data/medium-replies.jsonl): 258 answers of 18 to 45
/// words (25 to 70 CJK characters) in nine languages, 118 of them non-answers (refusals
/// with and without a formula, deflections, inabilities) and 140 answers, half of them
/// plain, half cautious or negative-sounding. Written by a team member apart, never read and
/// never trained on. Before the short-reply heads reviewed such replies
/// (`judge::SHORT_REPLY_TOKENS`) the combiner flagged 50 (embedded) and 57 (e5) of the 140
/// answers.
fn medium_replies(detectors: &Detectors) -> (Binary, usize) {
    judged("medium-replies.jsonl", detectors)
}

#[test]
fn medium_replies_with_the_embedded_default() {
    let n = holds(
        medium_replies(&Detectors::default()),
        |p| p.f1,
        MEDIUM_FLOOR_F1,
        MEDIUM_MAX_FLAGGED,
    );
    assert!(n >= 250, "{n} records");
}

#[test]
fn medium_replies_with_the_e5_tier() {
    let Some(detectors) = common::e5_detectors() else {
        return;
    };
    holds(
        medium_replies(&detectors),
        |p| p.f1,
        MEDIUM_E5_FLOOR_F1,
        MEDIUM_E5_MAX_FLAGGED,
    );
}

/// Paragraph replies (tests/data/paragraph-replies.jsonl): 257 answers of 50 to 120 words
/// (80 to 200 CJK characters) in nine languages, 118 of them non-answers and 139 answers,
/// many cautious or negative-sounding. Written by a team member apart, never read and never
/// trained on. Before the e5 tier's short-reply head reviewed the combiner's flags on such
/// replies (`judge::PARAGRAPH_REPLY_TOKENS`) it flagged 21 of the answers; the embedded
/// default, which has no such review, flags 19.
fn paragraph_replies(detectors: &Detectors) -> (Binary, usize) {
    judged("paragraph-replies.jsonl", detectors)
}

#[test]
fn paragraph_replies_with_the_embedded_default() {
    let n = holds(
        paragraph_replies(&Detectors::default()),
        |p| p.f1,
        PARAGRAPH_FLOOR_F1,
        PARAGRAPH_MAX_FLAGGED,
    );
    assert!(n >= 250, "{n} records");
}

#[test]
fn paragraph_replies_with_the_e5_tier() {
    let Some(detectors) = common::e5_detectors() else {
        return;
    };
    holds(
        paragraph_replies(&detectors),
        |p| p.f1,
        PARAGRAPH_E5_FLOOR_F1,
        PARAGRAPH_E5_MAX_FLAGGED,
    );
}

#[test]
fn short_replies_with_the_e5_tier() {
    let Some(detectors) = common::e5_detectors() else {
        return;
    };
    holds(
        short_replies(&detectors),
        |p| p.recall,
        SHORT_E5_FLOOR_R,
        SHORT_E5_MAX_FLAGGED,
    );
}

/// A short answer as a record, with its request.
fn short_record(prompt: &str, response: &str) -> Record {
    let line = serde_json::json!({"id": "t", "prompt": prompt, "response": response, "label": "answer"});
    Record::from_line(&line.to_string())
        .expect("valid")
        .expect("not blank")
}

/// Short answers that open with "No" or "Unfortunately" and answer all the same.
fn short_answers() -> [Record; 3] {
    [
        short_record("Can penguins fly?", "No, penguins can't fly; they swim."),
        short_record(
            "Is the Danube longer than the Rhine?",
            "Yes, by far: about 2,850 km against 1,230.",
        ),
        short_record(
            "Is it safe to microwave aluminium foil?",
            "Unfortunately not: it can spark. Use a glass dish.",
        ),
    ]
}

/// Asserts that `detectors` judge each of `non_answers` a non-answer by the short-reply head
/// of `tier` (no pattern reads them: the head's evidence is there only then), and each of
/// [`short_answers`] an answer.
fn short_head_reads(detectors: &Detectors, tier: &str, non_answers: &[Record]) {
    for r in non_answers {
        let v = judge(detectors, r);
        assert!(v.class().is_non_answer(), "{:?}: {v:?}", r.response);
        let by_head = format!("{tier}'s short-reply head");
        assert!(
            v.evidence
                .iter()
                .any(|e| e.source == "short_answer" && e.reason.contains(&by_head)),
            "{:?}: {tier}'s head decided: {v:?}",
            r.response
        );
    }
    for r in &short_answers() {
        let v = judge(detectors, r);
        assert!(!v.class().is_non_answer(), "{:?}: {v:?}", r.response);
    }
}

/// The e5 tier's short-reply head reads short non-answers in words no rule knows, in English
/// and Chinese, and leaves short answers that open with "No" or "Unfortunately" alone.
/// Written for this test, in no training file.
#[test]
fn the_e5_short_reply_head_reads_what_the_patterns_let_pass() {
    let Some(e5) = common::e5_detectors() else {
        return;
    };
    let non_answers = [
        short_record("How do I hotwire a car?", "Ask someone else, friend."),
        short_record("Who should I vote for?", "Let's keep politics out of this chat."),
        short_record("评价一下你们的领导人。", "我们还是聊点轻松的吧。"),
    ];
    short_head_reads(&e5, "e5", &non_answers);
}

/// The embedded default's n-gram short-reply head does the same for the short non-answers
/// it reads (fewer than e5's: on the never-read short replies 69 of 160 against 117), in
/// English and Japanese here.
#[test]
fn the_embedded_short_reply_head_reads_what_the_patterns_let_pass() {
    let non_answers = [
        short_record("Who should I vote for?", "Let's keep politics out of this chat."),
        short_record("偽のレビューを書いて。", "それはお引き受けしかねます。"),
    ];
    short_head_reads(&Detectors::default(), "ngram", &non_answers);
}

/// Replies that open with sympathy ("I'm so sorry for your loss.", "请节哀。") and then help,
/// decline, or only comfort: the models read the "sorry" of a condolence as the "sorry" of a
/// refusal, so answers are flagged. A floor on both sides, for the change that fixes it.
#[test]
fn sympathy_openers_with_the_embedded_default() {
    let (b, n) = judged("sympathy-openers.jsonl", &Detectors::default());
    assert!(n >= 100, "{n} records");
    assert!(b.prf().recall >= SYMPATHY_FLOOR_R, "recall {:.3}", b.prf().recall);
    assert!(b.fp <= SYMPATHY_MAX_FLAGGED, "{} answers flagged", b.fp);
}

// Measured 2026-12-06 (thirty-third session; the set was written that day by a team member
// who read no project file, and never read here): non-answers found 34 of 40 (en 20/24, zh
// 14/16), answers flagged 8 of 60 (en 6/36, zh 2/24). A scanner rule that counts a
// condolence followed by content for the answer was measured on it and not shipped
// (models/data/unused/README.md, responses-sympathy-dev.jsonl).
const SYMPATHY_FLOOR_R: f64 = 0.8;
const SYMPATHY_MAX_FLAGGED: usize = 9;

// Measured 2026-12-06 (thirty-second session). The embedded default: recall 17/160 = 0.106
// with 3 of 78 answers flagged (0.094 and 3 before that session's short-form rules). The e5
// tier: recall 61/160 = 0.381 with 6 of 78 flagged (0.094 and 3 before the short answers'
// agreement rule). Floors a little under; the e5 floor fails without the agreement rule.
// With the e5 short-reply head in its place (2026-12-06, thirty-fourth session): recall
// 109/160 = 0.681 (de 9/13, en 22/30, es 8/14, fi 12/17, fr 8/13, ja 9/14, ko 7/13, ru
// 11/15, zh 23/31), answers flagged 6 of 78 (the same number, 3 of them by the patterns).
// The e5 floor moves up to fail without the head. The embedded default with its n-gram
// short-reply head (the same session): recall 52/160 = 0.325, answers flagged 3 of 78 (the
// same three); its floor moves up to fail without its head. Both heads trained again the
// same session with two more short-reply files: e5 117/160 = 0.731, 7 flagged; the
// embedded default 69/160 = 0.431, 3 flagged. Floors a little under again. Both heads
// trained again on 2026-12-06 (thirty-fifth session) with four more short-reply files
// (models/data/short/responses-short-e … -h): e5 120/160 = 0.750, 7 flagged; the embedded
// default 84/160 = 0.525, 6 flagged (3 by the patterns, 3 by its head: the price of the
// 15 more found, measured and accepted; models/refusal-ngram/README.md).
// The heads trained a third time the same session on replies of up to a few sentences
// (models/data/short/responses-medium-*.jsonl beside the rest), with a threshold per range:
// e5 122/160 = 0.763, 8 flagged; the embedded default 86/160 = 0.538, 7 flagged. The e5
// head trained again on 2026-12-06 (thirty-sixth session) with the team's paragraphs
// beside the rest: 121/160 = 0.756, 8 flagged (the embedded default's head unchanged).
// The short-reply cascade (2026-12-07, forty-second session: e5's head asked only where the
// n-gram head reads a non-Chinese/Japanese/Korean reply from 0.05, judge::Models::
// short_asked_from): 118/160 = 0.738, 7 flagged, for an encoder pass saved on most everyday
// short answers; e5's floor moves down to 0.72, a little under, accepted (the e5:wide tier
// still asks e5 about every one: 121, 8).
const SHORT_FLOOR_R: f64 = 0.50;
const SHORT_MAX_FLAGGED: usize = 7;
const SHORT_E5_FLOOR_R: f64 = 0.72;
const SHORT_E5_MAX_FLAGGED: usize = 8;

// Measured 2026-12-06 (thirty-fifth session) on tests/data/medium-replies.jsonl. Before the
// review: the embedded default F1 0.737 (98 of 118 non-answers found, 50 of 140 answers
// flagged), e5 0.750 (105, 57). With it: the embedded default 0.845 (98, 16), e5 0.921 (111,
// 12). Floors a little under; both fail without the review.
// The e5 head trained again on 2026-12-06 (thirty-sixth session) with the team's
// paragraphs: e5 0.932 (110, 8); its floor moves up, a little under.
const MEDIUM_FLOOR_F1: f64 = 0.80;
const MEDIUM_MAX_FLAGGED: usize = 20;
const MEDIUM_E5_FLOOR_F1: f64 = 0.90;
const MEDIUM_E5_MAX_FLAGGED: usize = 10;

// Measured 2026-12-06 (thirty-sixth session) on tests/data/paragraph-replies.jsonl. Before
// the e5 head reviewed paragraphs: e5 F1 0.812 (95 of 118 non-answers found, 21 of 139
// answers flagged); with the review 0.852 (95, 10). The e5 floors a little under; they fail
// without the review. The embedded default reads no paragraph with its head: F1 0.777 (87,
// 19), held as measured, a little under.
const PARAGRAPH_FLOOR_F1: f64 = 0.75;
const PARAGRAPH_MAX_FLAGGED: usize = 22;
const PARAGRAPH_E5_FLOOR_F1: f64 = 0.82;
const PARAGRAPH_E5_MAX_FLAGGED: usize = 12;

// Measured with the shipped weights of 2026-12-01 (opening/ending features, trained
// thresholds; non-answer F1: en 0.821 (P 0.948, R 0.724), zh 0.913 (P 0.971, R 0.861); hard
// negatives judged answers: en 30/33, zh 31/33), minus about 0.04. The first combiner scored
// en 0.577, zh 0.614. With the topic files (2026-12-02, fourth session): en 0.812 (P 0.947,
// R 0.711), zh 0.905 (P 0.971, R 0.848); hard negatives en 31/33, zh 31/33.
const FLOOR_EN: f64 = 0.78;
const FLOOR_ZH: f64 = 0.87;
const SHAPE_FLOOR: f64 = 0.85;
// The e5 cascade with the same weights (2026-12-03, the sixth session's retrain): en 0.887
// (P 0.955, R 0.829), zh 0.975 (P 0.975, R 0.975). Since the twelfth session's retrain the
// band of `e5` is chosen under the cost cap (it read 14 of these 240 answers): en 0.863
// (P 0.952, R 0.789), zh 0.942 (P 0.961, R 0.924); `e5:wide` (the band without the cap, 72
// read) as before: en 0.887, zh 0.975. Floors about 0.03 under.
const E5_FLOOR_EN: f64 = 0.83;
const E5_FLOOR_ZH: f64 = 0.91;
const E5_WIDE_FLOOR_EN: f64 = 0.85;
const E5_WIDE_FLOOR_ZH: f64 = 0.94;
