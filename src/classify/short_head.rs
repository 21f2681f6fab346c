//! Heads for short replies: whether an answer of a line or less, one that no pattern reads
//! as a non-answer, is one all the same ("Hard pass.", "Da bin ich raus.", "这个就不聊了吧。").
//! [`ShortHead`] is the e5 tier's, [`NgramShortHead`] the embedded default's.
//!
//! Why heads of their own: the answer heads were trained on whole answers, most of them
//! long, and among their few short ones nearly all are refusals, so they read any short text
//! as a refusal ("No, it's a star." included). A short reply is therefore the patterns' to
//! judge (`judge::MIN_MODEL_ANSWER_TOKENS`), and the patterns know the formulas, not the
//! idioms. These heads were trained only on short replies, a third of them hard-negative
//! answers, and carry the thresholds chosen for them leave-one-source-out (`refusal-guard
//! train --short-head-only`; the model cards are in models/e5-heads/README.md and
//! models/refusal-ngram/README.md, "The short-reply head").
//!
//! Since 2026-12-06 (thirty-fifth session) they also read replies of a few sentences (up to
//! `judge::SHORT_REPLY_TOKENS`), where they review the combiner's verdict rather than
//! decide alone: the combiner, trained on mostly long answers, reads brevity itself as
//! refusal. Each range has its own threshold ([`ShortThresholds`]). Since the thirty-sixth
//! session they read paragraphs too (up to `judge::PARAGRAPH_REPLY_TOKENS`), only to
//! overrule the combiner's non-answer, at the review's even odds rather than a threshold.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use super::data::RESPONSE_LABELS;
use super::ngram::{NgramHead, NgramModel, PromptLanguages};
use super::train::LinearHead;
use super::{ClassifyError, ResponseJudgement};

/// The shipped short-reply head of the e5 tier (models/e5-heads/short.safetensors).
pub const E5_SHORT_HEAD: &[u8] = include_bytes!("../../models/e5-heads/short.safetensors");

/// The shipped short-reply head of the embedded default
/// (models/refusal-ngram/short.safetensors).
pub const NGRAM_SHORT_HEAD: &[u8] = include_bytes!("../../models/refusal-ngram/short.safetensors");

/// The file's metadata key for [`ShortThresholds::one_line`].
const NON_ANSWER_FROM: &str = "non_answer_from";

/// The file's metadata key for [`ShortThresholds::sentences`].
const NON_ANSWER_FROM_SENTENCES: &str = "non_answer_from_sentences";

/// The file's metadata key for the encoder weights the head was trained over.
const ENCODER_SHA256: &str = "encoder_sha256";

/// The file's metadata keys for [`AskedFrom`].
const ASKED_FROM: &str = "asked_from_ngram";
const ASKED_FROM_CJK: &str = "asked_from_ngram_cjk";

fn err(e: impl std::fmt::Display) -> ClassifyError {
    ClassifyError::model("e5 short-reply head", e)
}

/// A short-reply head's thresholds on the non-answer classes together, one per range of
/// length: a reply of one line or less (at most [`crate::judge::features::PART_TOKENS`]
/// tokens) and one of a few sentences (up to [`crate::judge::SHORT_REPLY_TOKENS`]). Each is
/// chosen apart, leave-one-source-out, on the short answers of its range that the patterns
/// let pass (`judge::fit::short`): the two ranges read differently, and one threshold for
/// both flagged too many of one or missed too many of the other.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShortThresholds {
    /// For a reply of one line or less.
    pub one_line: f32,
    /// For a reply of a few sentences.
    pub sentences: f32,
}

impl ShortThresholds {
    /// The threshold for `text`, by its length.
    pub fn for_text(&self, text: &str) -> f32 {
        if crate::judge::features::is_one_line(text) {
            self.one_line
        } else {
            self.sentences
        }
    }

    /// Reads both from a head file's metadata. A file without them, or with one outside
    /// (0, 1], is refused: the head's probabilities mean nothing without the thresholds
    /// chosen for them.
    fn from_info(info: &HashMap<String, String>) -> Result<Self, ClassifyError> {
        let read = |key: &str| {
            read_probability(info, key, false)?.ok_or_else(|| err(format!("no {key} in the file's metadata")))
        };
        Ok(ShortThresholds {
            one_line: read(NON_ANSWER_FROM)?,
            sentences: read(NON_ANSWER_FROM_SENTENCES)?,
        })
    }

    /// Writes both into a head file's metadata.
    fn to_info(self, info: &mut HashMap<String, String>) {
        info.insert(NON_ANSWER_FROM.to_string(), self.one_line.to_string());
        info.insert(NON_ANSWER_FROM_SENTENCES.to_string(), self.sentences.to_string());
    }
}

impl std::fmt::Display for ShortThresholds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} / {}", self.one_line, self.sentences)
    }
}

/// Where the e5 head is asked in the short-reply cascade: the embedded default's n-gram
/// short-reply head reads a pattern-clean short answer first (microseconds), and the e5 head
/// (an encoder pass, about 11 ms on an AVX2 core) is asked whether it is a non-answer only
/// from this n-gram non-answer reading up. One value for text in CJK scripts and one for
/// the rest: the n-gram head reads CJK by characters and is far less sure there (out of
/// source, at the other scripts' value it lost 42 of e5's 463 CJK finds, 9%, against 21 of
/// 912). Chosen by `train --short-head-only` on both heads' out-of-source readings
/// (`judge::fit::short::choose_asked_from`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AskedFrom {
    /// For a reply with no CJK character.
    pub other: f32,
    /// For a reply with one ([`crate::classify::features::has_cjk`]).
    pub cjk: f32,
}

impl AskedFrom {
    /// The e5 head is asked about every pattern-clean short answer.
    pub const ALWAYS: AskedFrom = AskedFrom { other: 0.0, cjk: 0.0 };

    /// The value for `text`, by its script.
    pub fn for_text(&self, text: &str) -> f32 {
        if crate::classify::features::has_cjk(text) {
            self.cjk
        } else {
            self.other
        }
    }

    /// Reads both from a head file's metadata: `None` where neither is there (a file written
    /// before the cascade); one without the other, or one outside [0, 1], is refused.
    fn from_info(info: &HashMap<String, String>) -> Result<Option<Self>, ClassifyError> {
        let read = |key: &str| read_probability(info, key, true);
        match (read(ASKED_FROM)?, read(ASKED_FROM_CJK)?) {
            (Some(other), Some(cjk)) => Ok(Some(AskedFrom { other, cjk })),
            (None, None) => Ok(None),
            _ => Err(err(format!(
                "{ASKED_FROM} and {ASKED_FROM_CJK} go together; the file has one"
            ))),
        }
    }

    fn to_info(self, info: &mut HashMap<String, String>) {
        info.insert(ASKED_FROM.to_string(), self.other.to_string());
        info.insert(ASKED_FROM_CJK.to_string(), self.cjk.to_string());
    }
}

impl std::fmt::Display for AskedFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (CJK {})", self.other, self.cjk)
    }
}

/// The probability under `key` in a head file's metadata, if there: in (0, 1], or [0, 1]
/// where `zero` is allowed; any other value is refused by name.
fn read_probability(
    info: &HashMap<String, String>,
    key: &str,
    zero: bool,
) -> Result<Option<f32>, ClassifyError> {
    let Some(t) = info.get(key) else { return Ok(None) };
    let (low, range) = if zero {
        (0.0, "[0, 1]")
    } else {
        (f32::MIN_POSITIVE, "(0, 1]")
    };
    t.parse()
        .ok()
        .filter(|t: &f32| (low..=1.0).contains(t))
        .map(Some)
        .ok_or_else(|| err(format!("{key} {t:?} is not a probability in {range}")))
}

/// A head's reading (`p` in the order of its `labels`) of `text`, with the threshold of
/// its range.
fn judgement(labels: &[String], p: Vec<f32>, thresholds: ShortThresholds, text: &str) -> ShortJudgement {
    ShortJudgement {
        judgement: ResponseJudgement::from_labels(labels, p),
        non_answer_from: thresholds.for_text(text),
    }
}

/// A linear head over the e5 answer vector of a short reply, with its decision threshold.
#[derive(Debug, Clone)]
pub struct ShortHead {
    /// Answer, refusal, evasion and inability, as the answer head's labels.
    pub head: LinearHead,
    /// A short reply is a non-answer when the head's probability of the non-answer classes
    /// together is at least its range's threshold.
    pub thresholds: ShortThresholds,
    /// The sha256 of the encoder weights the head was trained over.
    pub encoder_sha256: Option<String>,
    /// Where this head is asked in the short-reply cascade ([`AskedFrom`]). It never applies
    /// to a review that may overrule a combiner's non-answer: that one is always asked.
    /// `None` (a file written before the cascade): asked about every such answer.
    pub asked_from: Option<AskedFrom>,
}

/// What the short-reply head read.
#[derive(Debug, Clone, PartialEq)]
pub struct ShortJudgement {
    /// The head's class probabilities.
    pub judgement: ResponseJudgement,
    /// The head's threshold on the non-answer classes together, for the reply's range
    /// ([`ShortThresholds::for_text`]).
    pub non_answer_from: f32,
}

impl ShortJudgement {
    /// The probability of the non-answer classes together.
    pub fn non_answer(&self) -> f32 {
        self.judgement.non_answer()
    }

    /// Whether the reply is a non-answer by the head's own threshold.
    pub fn is_non_answer(&self) -> bool {
        self.non_answer() >= self.non_answer_from
    }
}

impl ShortHead {
    /// The shipped head.
    pub fn shipped() -> Result<Self, ClassifyError> {
        Self::from_bytes(E5_SHORT_HEAD)
    }

    /// Reads a head from safetensors bytes (`short.weight`, `short.bias`; the thresholds in
    /// the metadata). A file without its two thresholds, or with one outside (0, 1], is
    /// refused: the head's probabilities mean nothing without the thresholds chosen for them.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ClassifyError> {
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(err)?;
        let info = meta.metadata().clone().unwrap_or_default();
        let thresholds = ShortThresholds::from_info(&info)?;
        let t = candle_core::safetensors::load_buffer(bytes, &Device::Cpu).map_err(err)?;
        let (Some(w), Some(b)) = (t.get("short.weight"), t.get("short.bias")) else {
            return Err(err("no short.weight / short.bias tensors"));
        };
        let head = LinearHead {
            labels: RESPONSE_LABELS.iter().map(|s| s.to_string()).collect(),
            weight: w.flatten_all().and_then(|x| x.to_vec1()).map_err(err)?,
            bias: b.to_vec1().map_err(err)?,
        };
        if head.bias.len() != head.labels.len()
            || head.weight.is_empty()
            || !head.weight.len().is_multiple_of(head.labels.len())
        {
            return Err(err(format!(
                "short.bias has {} values and short.weight {}; expected {} classes",
                head.bias.len(),
                head.weight.len(),
                head.labels.len()
            )));
        }
        let asked_from = AskedFrom::from_info(&info)?;
        Ok(ShortHead {
            head,
            thresholds,
            encoder_sha256: info.get(ENCODER_SHA256).cloned(),
            asked_from,
        })
    }

    /// The input width the head expects.
    pub fn dim(&self) -> usize {
        self.head.weight.len() / self.head.labels.len()
    }

    /// The head's reading of `text` from its answer vector; `None` when the vector's width
    /// is not the head's (another encoder's vector).
    pub fn judge(&self, text: &str, vector: &[f32]) -> Option<ShortJudgement> {
        if vector.len() != self.dim() {
            return None;
        }
        Some(judgement(
            &self.head.labels,
            self.head.forward(vector),
            self.thresholds,
            text,
        ))
    }

    /// Writes the head as safetensors, the threshold and the encoder's sha256 in its
    /// metadata, with `info`'s entries (data, date) beside them.
    pub fn save(&self, path: &Path, mut info: HashMap<String, String>) -> Result<(), ClassifyError> {
        let n = self.head.labels.len();
        let tensors = [
            (
                "short.weight",
                Tensor::from_slice(&self.head.weight, (n, self.dim()), &Device::Cpu).map_err(err)?,
            ),
            (
                "short.bias",
                Tensor::from_slice(&self.head.bias, n, &Device::Cpu).map_err(err)?,
            ),
        ];
        self.thresholds.to_info(&mut info);
        if let Some(sha) = &self.encoder_sha256 {
            info.insert(ENCODER_SHA256.to_string(), sha.clone());
        }
        if let Some(t) = self.asked_from {
            t.to_info(&mut info);
        }
        let bytes = super::weights_file::to_bytes(tensors.iter().map(|(k, v)| (*k, v)), info)?;
        std::fs::write(path, bytes).map_err(|source| ClassifyError::Io {
            path: path.display().to_string(),
            source,
        })
    }
}

/// An n-gram head over the text of a short reply (the embedded default's), with its decision
/// threshold. Stored as an n-gram model file (`classify::ngram`) whose response head is this
/// head, the threshold in its metadata.
#[derive(Debug, Clone)]
pub struct NgramShortHead {
    pub head: NgramHead,
    /// As [`ShortHead::thresholds`].
    pub thresholds: ShortThresholds,
}

impl NgramShortHead {
    /// The shipped head.
    pub fn shipped() -> Result<Self, ClassifyError> {
        Self::from_bytes(NGRAM_SHORT_HEAD)
    }

    /// Reads a head from an n-gram model file's bytes (its response head; the threshold in
    /// the metadata, refused as [`ShortHead::from_bytes`] refuses it).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ClassifyError> {
        let model = NgramModel::from_bytes(bytes)?;
        let thresholds = ShortThresholds::from_info(&model.info)?;
        let head = model
            .response
            .ok_or_else(|| err("an n-gram file without a response head"))?;
        Ok(NgramShortHead { head, thresholds })
    }

    /// The head's reading of a short reply.
    pub fn judge(&self, text: &str) -> ShortJudgement {
        judgement(
            &self.head.config.labels,
            self.head.forward(text),
            self.thresholds,
            text,
        )
    }

    /// Writes the head as an n-gram model file, the threshold in its metadata with `info`'s
    /// entries beside it.
    pub fn save(&self, path: &Path, mut info: HashMap<String, String>) -> Result<(), ClassifyError> {
        self.thresholds.to_info(&mut info);
        NgramModel {
            response: Some(self.head.clone()),
            prompt: None,
            prompt_languages: PromptLanguages::unrecorded(),
            info,
        }
        .save(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(one_line: f32) -> ShortHead {
        // Two input dimensions: the first votes answer, the second refusal.
        ShortHead {
            head: LinearHead {
                labels: RESPONSE_LABELS.iter().map(|s| s.to_string()).collect(),
                weight: vec![4.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0],
                bias: vec![0.0, 0.0, -9.0, -9.0],
            },
            thresholds: ShortThresholds {
                one_line,
                sentences: 0.99,
            },
            encoder_sha256: Some("abc".into()),
            asked_from: Some(AskedFrom {
                other: 0.25,
                cjk: 0.001,
            }),
        }
    }

    #[test]
    fn a_saved_head_reads_back_with_its_thresholds_and_judges_alike() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.safetensors");
        head(0.7).save(&path, HashMap::new()).unwrap();
        let back = ShortHead::from_bytes(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back.thresholds, head(0.7).thresholds);
        assert_eq!(back.encoder_sha256.as_deref(), Some("abc"));
        assert_eq!(
            back.asked_from,
            Some(AskedFrom {
                other: 0.25,
                cjk: 0.001
            })
        );
        assert_eq!(back.asked_from.unwrap().for_text("Not today."), 0.25);
        assert_eq!(back.asked_from.unwrap().for_text("今天不行。"), 0.001);
        let line = "Not today.";
        let refusal = back.judge(line, &[0.0, 1.0]).unwrap();
        assert!(refusal.is_non_answer(), "{refusal:?}");
        assert_eq!(refusal.non_answer_from, 0.7);
        assert!(!back.judge(line, &[1.0, 0.0]).unwrap().is_non_answer());
        assert!(
            back.judge(line, &[1.0, 0.0, 0.0]).is_none(),
            "a vector of another width"
        );
        // A reply of a few sentences is read at the other range's threshold: the same
        // reading (about 0.98) falls short of 0.99 there.
        let sentences = "word ".repeat(crate::judge::features::PART_TOKENS + 4);
        let read = back.judge(&sentences, &[0.0, 1.0]).unwrap();
        assert_eq!(read.non_answer_from, 0.99);
        assert!(!read.is_non_answer(), "{read:?}");
    }

    #[test]
    fn a_file_without_a_threshold_or_with_one_out_of_range_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.safetensors");
        let mut h = head(0.7);
        h.thresholds.one_line = 1.5;
        h.save(&path, HashMap::new()).unwrap();
        let e = ShortHead::from_bytes(&std::fs::read(&path).unwrap()).unwrap_err();
        assert!(e.to_string().contains("non_answer_from \"1.5\""), "{e}");
        let mut h = head(0.7);
        h.thresholds.sentences = 0.0;
        h.save(&path, HashMap::new()).unwrap();
        let e = ShortHead::from_bytes(&std::fs::read(&path).unwrap()).unwrap_err();
        assert!(e.to_string().contains("non_answer_from_sentences \"0\""), "{e}");
        let mut h = head(0.7);
        h.asked_from = Some(AskedFrom { other: 2.0, cjk: 0.0 });
        h.save(&path, HashMap::new()).unwrap();
        let e = ShortHead::from_bytes(&std::fs::read(&path).unwrap()).unwrap_err();
        assert!(e.to_string().contains("asked_from_ngram \"2\""), "{e}");
        let mut info = HashMap::new();
        info.insert(ASKED_FROM_CJK.to_string(), "0.1".to_string());
        let mut h = head(0.7);
        h.asked_from = None;
        h.save(&path, info).unwrap();
        let e = ShortHead::from_bytes(&std::fs::read(&path).unwrap()).unwrap_err();
        assert!(e.to_string().contains("go together"), "{e}");
        let mut h = head(0.7);
        h.asked_from = None;
        h.save(&path, HashMap::new()).unwrap();
        let back = ShortHead::from_bytes(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            back.asked_from, None,
            "a file from before the cascade: always asked"
        );
        let w = Tensor::zeros((4, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let b = Tensor::zeros(4, candle_core::DType::F32, &Device::Cpu).unwrap();
        let bytes = crate::classify::weights_file::to_bytes(
            [("short.bias", &b), ("short.weight", &w)],
            HashMap::new(),
        )
        .unwrap();
        let e = ShortHead::from_bytes(&bytes).unwrap_err();
        assert!(e.to_string().contains("no non_answer_from"), "{e}");
    }

    #[test]
    fn the_shipped_heads_load() {
        let h = ShortHead::shipped().unwrap();
        assert_eq!(h.dim(), 384);
        assert!(
            h.asked_from
                .is_some_and(|t| t.other > 0.0 && t.other < 1.0 && t.cjk < 1.0),
            "the shipped e5 head carries the short-reply cascade's bar: {:?}",
            h.asked_from
        );
        let n = NgramShortHead::shipped().unwrap();
        for t in [h.thresholds, n.thresholds] {
            for t in [t.one_line, t.sentences] {
                assert!(t > 0.0 && t <= 1.0, "{t}");
            }
        }
        let sure = |text: &str| n.judge(text).non_answer();
        assert!(sure("Ask someone else, friend.") > sure("Paris, on the Seine."));
    }

    #[test]
    fn an_ngram_head_saved_reads_back_and_a_model_without_a_threshold_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.safetensors");
        let shipped = NgramShortHead::shipped().unwrap();
        shipped.save(&path, HashMap::new()).unwrap();
        let back = NgramShortHead::from_bytes(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back.thresholds, shipped.thresholds);
        assert_eq!(
            back.judge("Not today.").judgement,
            shipped.judge("Not today.").judgement
        );
        let e = NgramShortHead::from_bytes(super::super::ngram::EMBEDDED_WEIGHTS).unwrap_err();
        assert!(e.to_string().contains("no non_answer_from"), "{e}");
    }
}
