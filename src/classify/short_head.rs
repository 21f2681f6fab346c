//! Heads for short replies: whether an answer of a line or less, one that no pattern reads
//! as a non-answer, is one all the same ("Hard pass.", "Da bin ich raus.", "这个就不聊了吧。").
//! [`ShortHead`] is the e5 tier's, [`NgramShortHead`] the embedded default's.
//!
//! Why heads of their own: the answer heads were trained on whole answers, most of them
//! long, and among their few short ones nearly all are refusals, so they read any short text
//! as a refusal ("No, it's a star." included). A short reply is therefore the patterns' to
//! judge (`judge::MIN_MODEL_ANSWER_TOKENS`), and the patterns know the formulas, not the
//! idioms. These heads were trained only on short replies, a third of them hard-negative
//! answers, and carry the threshold chosen for them leave-one-source-out (`refusal-guard
//! train --short-head-only`; the model cards are in models/e5-heads/README.md and
//! models/refusal-ngram/README.md, "The short-reply head").

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

/// The file's metadata key for [`ShortHead::non_answer_from`].
const NON_ANSWER_FROM: &str = "non_answer_from";

/// The file's metadata key for the encoder weights the head was trained over.
const ENCODER_SHA256: &str = "encoder_sha256";

fn err(e: impl std::fmt::Display) -> ClassifyError {
    ClassifyError::model("e5 short-reply head", e)
}

/// The threshold a head file's metadata holds. A file without one, or with one outside
/// (0, 1], is refused: the head's probabilities mean nothing without the threshold chosen
/// for them.
fn threshold_in(info: &HashMap<String, String>) -> Result<f32, ClassifyError> {
    let t = info
        .get(NON_ANSWER_FROM)
        .ok_or_else(|| err(format!("no {NON_ANSWER_FROM} in the file's metadata")))?;
    t.parse()
        .ok()
        .filter(|t: &f32| *t > 0.0 && *t <= 1.0)
        .ok_or_else(|| err(format!("{NON_ANSWER_FROM} {t:?} is not a probability in (0, 1]")))
}

/// A head's reading (`p` in the order of its `labels`) with its threshold.
fn judgement(labels: &[String], p: Vec<f32>, non_answer_from: f32) -> ShortJudgement {
    ShortJudgement {
        judgement: ResponseJudgement::from_labels(labels, p),
        non_answer_from,
    }
}

/// A linear head over the e5 answer vector of a short reply, with its decision threshold.
#[derive(Debug, Clone)]
pub struct ShortHead {
    /// Answer, refusal, evasion and inability, as the answer head's labels.
    pub head: LinearHead,
    /// A short reply is a non-answer when the head's probability of the non-answer classes
    /// together is at least this.
    pub non_answer_from: f32,
    /// The sha256 of the encoder weights the head was trained over.
    pub encoder_sha256: Option<String>,
}

/// What the short-reply head read.
#[derive(Debug, Clone, PartialEq)]
pub struct ShortJudgement {
    /// The head's class probabilities.
    pub judgement: ResponseJudgement,
    /// The head's threshold on the non-answer classes together ([`ShortHead::non_answer_from`]).
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

    /// Reads a head from safetensors bytes (`short.weight`, `short.bias`; the threshold in
    /// the metadata). A file without a threshold, or with one outside (0, 1], is refused:
    /// the head's probabilities mean nothing without the threshold chosen for them.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ClassifyError> {
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(err)?;
        let info = meta.metadata().clone().unwrap_or_default();
        let non_answer_from = threshold_in(&info)?;
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
        Ok(ShortHead {
            head,
            non_answer_from,
            encoder_sha256: info.get(ENCODER_SHA256).cloned(),
        })
    }

    /// The input width the head expects.
    pub fn dim(&self) -> usize {
        self.head.weight.len() / self.head.labels.len()
    }

    /// The head's reading of one answer vector; `None` when the vector's width is not the
    /// head's (another encoder's vector).
    pub fn judge(&self, vector: &[f32]) -> Option<ShortJudgement> {
        if vector.len() != self.dim() {
            return None;
        }
        Some(judgement(
            &self.head.labels,
            self.head.forward(vector),
            self.non_answer_from,
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
        info.insert(NON_ANSWER_FROM.to_string(), self.non_answer_from.to_string());
        if let Some(sha) = &self.encoder_sha256 {
            info.insert(ENCODER_SHA256.to_string(), sha.clone());
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
    /// As [`ShortHead::non_answer_from`].
    pub non_answer_from: f32,
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
        let non_answer_from = threshold_in(&model.info)?;
        let head = model
            .response
            .ok_or_else(|| err("an n-gram file without a response head"))?;
        Ok(NgramShortHead {
            head,
            non_answer_from,
        })
    }

    /// The head's reading of a short reply.
    pub fn judge(&self, text: &str) -> ShortJudgement {
        judgement(
            &self.head.config.labels,
            self.head.forward(text),
            self.non_answer_from,
        )
    }

    /// Writes the head as an n-gram model file, the threshold in its metadata with `info`'s
    /// entries beside it.
    pub fn save(&self, path: &Path, mut info: HashMap<String, String>) -> Result<(), ClassifyError> {
        info.insert(NON_ANSWER_FROM.to_string(), self.non_answer_from.to_string());
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

    fn head(non_answer_from: f32) -> ShortHead {
        // Two input dimensions: the first votes answer, the second refusal.
        ShortHead {
            head: LinearHead {
                labels: RESPONSE_LABELS.iter().map(|s| s.to_string()).collect(),
                weight: vec![4.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0],
                bias: vec![0.0, 0.0, -9.0, -9.0],
            },
            non_answer_from,
            encoder_sha256: Some("abc".into()),
        }
    }

    #[test]
    fn a_saved_head_reads_back_with_its_threshold_and_judges_alike() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.safetensors");
        head(0.7).save(&path, HashMap::new()).unwrap();
        let back = ShortHead::from_bytes(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back.non_answer_from, 0.7);
        assert_eq!(back.encoder_sha256.as_deref(), Some("abc"));
        let refusal = back.judge(&[0.0, 1.0]).unwrap();
        assert!(refusal.is_non_answer(), "{refusal:?}");
        assert!(!back.judge(&[1.0, 0.0]).unwrap().is_non_answer());
        assert!(
            back.judge(&[1.0, 0.0, 0.0]).is_none(),
            "a vector of another width"
        );
    }

    #[test]
    fn a_file_without_a_threshold_or_with_one_out_of_range_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.safetensors");
        let mut h = head(0.7);
        h.non_answer_from = 1.5;
        h.save(&path, HashMap::new()).unwrap();
        let e = ShortHead::from_bytes(&std::fs::read(&path).unwrap()).unwrap_err();
        assert!(e.to_string().contains("non_answer_from \"1.5\""), "{e}");
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
        assert!(h.non_answer_from > 0.0 && h.non_answer_from <= 1.0);
        let n = NgramShortHead::shipped().unwrap();
        assert!(n.non_answer_from > 0.0 && n.non_answer_from <= 1.0);
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
        assert_eq!(back.non_answer_from, shipped.non_answer_from);
        assert_eq!(
            back.judge("Not today.").judgement,
            shipped.judge("Not today.").judgement
        );
        let e = NgramShortHead::from_bytes(super::super::ngram::EMBEDDED_WEIGHTS).unwrap_err();
        assert!(e.to_string().contains("no non_answer_from"), "{e}");
    }
}
