//! The e5 tier's head for short replies: whether an answer of a line or less, one that no
//! pattern reads as a non-answer, is one all the same ("Hard pass.", "Da bin ich raus.",
//! "这个就不聊了吧。").
//!
//! Why a head of its own: the answer head was trained on whole answers, most of them long,
//! and among its few short ones nearly all are refusals, so it reads any short text as a
//! refusal ("No, it's a star." included). A short reply is therefore the patterns' to judge
//! (`judge::MIN_MODEL_ANSWER_TOKENS`), and the patterns know the formulas, not the idioms.
//! This head reads the same sentence vector as the answer head, but was trained only on
//! short replies, half of them hard-negative answers, and carries the threshold chosen for
//! it leave-one-source-out (`refusal-guard train --short-head-only`; the model card is
//! models/e5-heads/short.md).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use super::data::RESPONSE_LABELS;
use super::train::LinearHead;
use super::{ClassifyError, ResponseJudgement, ResponseLabel};

/// The shipped short-reply head (models/e5-heads/short.safetensors).
pub const E5_SHORT_HEAD: &[u8] = include_bytes!("../../models/e5-heads/short.safetensors");

/// The file's metadata key for [`ShortHead::non_answer_from`].
const NON_ANSWER_FROM: &str = "non_answer_from";

/// The file's metadata key for the encoder weights the head was trained over.
const ENCODER_SHA256: &str = "encoder_sha256";

fn err(e: impl std::fmt::Display) -> ClassifyError {
    ClassifyError::model("e5 short-reply head", e)
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
        1.0 - self.judgement.probs[ResponseLabel::Answer.index()]
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
        let non_answer_from = info
            .get(NON_ANSWER_FROM)
            .ok_or_else(|| err(format!("no {NON_ANSWER_FROM} in the file's metadata")))?;
        let non_answer_from: f32 = non_answer_from
            .parse()
            .ok()
            .filter(|t: &f32| *t > 0.0 && *t <= 1.0)
            .ok_or_else(|| {
                err(format!(
                    "{NON_ANSWER_FROM} {non_answer_from:?} is not a probability in (0, 1]"
                ))
            })?;
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
        let mut probs = [0f32; 4];
        for (l, p) in self.head.labels.iter().zip(self.head.forward(vector)) {
            if let Some(l) = ResponseLabel::parse(l) {
                probs[l.index()] += p;
            }
        }
        Some(ShortJudgement {
            judgement: ResponseJudgement { probs },
            non_answer_from: self.non_answer_from,
        })
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
    fn the_shipped_head_loads() {
        let h = ShortHead::shipped().unwrap();
        assert_eq!(h.dim(), 384);
        assert!(h.non_answer_from > 0.0 && h.non_answer_from <= 1.0);
    }
}
