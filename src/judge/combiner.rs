//! The combiner: one small trained model that turns all the evidence into calibrated
//! answer-class probabilities.
//!
//! Why a trained model and not rules: hand-set rules (noisy-or votes, "a long answer after
//! a refusal opener is an answer") were right on the answers they were tuned on and wrong
//! on others: a refusal followed by a long lecture was discounted to an answer. The
//! combiner is a multinomial logistic regression over [`super::features`], fitted by
//! `refusal-guard train` on out-of-source predictions (each source's rows are scored by
//! models that never saw that source), so it learns how far each input can be trusted on
//! text it has not seen. One combiner judges a stream's window and a whole answer: the
//! `partial` feature tells it which it is looking at, so the two cannot disagree for the
//! wrong reason.
//!
//! The shipped weights are compiled in (`models/combiner/combiner.safetensors`, model card
//! beside it). The rule combiner stays as a baseline ([`super::rules`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use candle_core::{Device, Tensor};

use serde::Serialize;

use super::features::{FEATURE_NAMES, N_FEATURES};
use crate::classify::train::LinearHead;
use crate::classify::{ClassifyError, ResponseLabel};

/// The shipped weights.
pub const EMBEDDED_WEIGHTS: &[u8] = include_bytes!("../../models/combiner/combiner.safetensors");

/// The format tag written into the file's metadata.
pub const FORMAT: &str = "refusal-guard-combiner/1";

/// The metadata key of [`Combiner::non_answer_from`].
pub const NON_ANSWER_FROM: &str = "non_answer_from";
/// The metadata key of [`Combiner::non_answer_from_window`].
pub const NON_ANSWER_FROM_WINDOW: &str = "non_answer_from_window";
/// The metadata keys of [`Combiner::escalation_band`].
pub const ESCALATE_FROM: &str = "escalate_from";
pub const ESCALATE_TO: &str = "escalate_to";
/// The metadata keys of [`Combiner::wide_escalation_band`].
pub const ESCALATE_WIDE_FROM: &str = "escalate_wide_from";
pub const ESCALATE_WIDE_TO: &str = "escalate_wide_to";
/// The metadata key of [`Combiner::non_answer_from_escalated`].
pub const NON_ANSWER_FROM_ESCALATED: &str = "non_answer_from_escalated";

/// A trained combiner.
#[derive(Debug, Clone)]
pub struct Combiner {
    /// `4 × N_FEATURES` weights and 4 biases, classes in [`ResponseLabel::ALL`] order.
    pub head: LinearHead,
    /// Free-form metadata (training date, data, metrics), kept when saving.
    pub info: HashMap<String, String>,
    /// The decision thresholds and escalation band, parsed once from `info` at load (they
    /// are read on every verdict) and written back to it by [`Combiner::set_thresholds`].
    thresholds: Thresholds,
}

/// The non-answer thresholds of a combiner and its escalation band: chosen by
/// `refusal-guard train` ([`super::fit::Thresholds::choose`]), kept in the file's metadata,
/// read by the pipeline ([`super::decide`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    /// A whole answer judged by the embedded default ([`Combiner::non_answer_from`]).
    pub whole: f32,
    /// A whole answer the encoder was asked about ([`Combiner::non_answer_from_escalated`]).
    pub escalated: f32,
    /// A stream's prefix ([`Combiner::non_answer_from_window`]).
    pub window: f32,
    /// Where the encoder is asked ([`Combiner::escalation_band`]): chosen under the cost
    /// cap.
    pub band: super::EscalationBand,
    /// Where it is asked when cost is no object ([`Combiner::wide_escalation_band`]).
    pub wide_band: super::EscalationBand,
}

impl Thresholds {
    /// From a file's metadata; the defaults of a file without them: 0.5 each, every answer
    /// escalated.
    fn from_info(info: &HashMap<String, String>) -> Thresholds {
        let get = |key: &str| info.get(key).and_then(|v| v.parse::<f32>().ok());
        let threshold = |key: &str| get(key).filter(|t| (0.0..=1.0).contains(t)).unwrap_or(0.5);
        let band = super::EscalationBand {
            from: get(ESCALATE_FROM).unwrap_or(super::EscalationBand::ALWAYS.from),
            to: get(ESCALATE_TO).unwrap_or(super::EscalationBand::ALWAYS.to),
        };
        Thresholds {
            whole: threshold(NON_ANSWER_FROM),
            window: threshold(NON_ANSWER_FROM_WINDOW),
            escalated: threshold(NON_ANSWER_FROM_ESCALATED),
            band,
            // A file from before the cost cap (2026-12-03) has one band, chosen without one.
            wide_band: super::EscalationBand {
                from: get(ESCALATE_WIDE_FROM).unwrap_or(band.from),
                to: get(ESCALATE_WIDE_TO).unwrap_or(band.to),
            },
        }
    }

    /// Into a file's metadata (the keys [`Thresholds::from_info`] reads).
    fn write_info(&self, info: &mut HashMap<String, String>) {
        for (key, value) in [
            (NON_ANSWER_FROM, self.whole),
            (NON_ANSWER_FROM_WINDOW, self.window),
            (NON_ANSWER_FROM_ESCALATED, self.escalated),
            (ESCALATE_FROM, self.band.from),
            (ESCALATE_TO, self.band.to),
            (ESCALATE_WIDE_FROM, self.wide_band.from),
            (ESCALATE_WIDE_TO, self.wide_band.to),
        ] {
            info.insert(key.to_string(), value.to_string());
        }
    }
}

fn err(e: impl std::fmt::Display) -> ClassifyError {
    ClassifyError::model("combiner", e)
}

impl Combiner {
    /// The combiner compiled into the binary, parsed once.
    pub fn embedded() -> Arc<Combiner> {
        static MODEL: OnceLock<Arc<Combiner>> = OnceLock::new();
        MODEL
            .get_or_init(|| {
                Arc::new(Combiner::from_bytes(EMBEDDED_WEIGHTS).expect("embedded combiner is valid"))
            })
            .clone()
    }

    /// A combiner from a trained head.
    pub fn new(head: LinearHead) -> Result<Self, ClassifyError> {
        if head.bias.len() != ResponseLabel::ALL.len() || head.weight.len() != head.bias.len() * N_FEATURES {
            return Err(err(format!(
                "expected {} classes over {N_FEATURES} features, got {} weights and {} biases",
                ResponseLabel::ALL.len(),
                head.weight.len(),
                head.bias.len()
            )));
        }
        let info = HashMap::new();
        Ok(Combiner {
            head,
            thresholds: Thresholds::from_info(&info),
            info,
        })
    }

    /// Reads a combiner from safetensors bytes; refuses one trained on another feature
    /// layout.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ClassifyError> {
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(err)?;
        let info = meta.metadata().clone().unwrap_or_default();
        if info.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(err(format!("not a {FORMAT} file")));
        }
        let names = FEATURE_NAMES.join(",");
        if info.get("features") != Some(&names) {
            return Err(err(format!(
                "trained on features {:?}, this build computes {names:?}: retrain with `refusal-guard train`",
                info.get("features")
            )));
        }
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu).map_err(err)?;
        let get = |k: &str| -> Result<Vec<f32>, ClassifyError> {
            tensors
                .get(k)
                .ok_or_else(|| err(format!("missing tensor {k}")))?
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(err)
        };
        let head = LinearHead {
            labels: ResponseLabel::ALL
                .iter()
                .map(|l| l.as_str().to_string())
                .collect(),
            weight: get("weight")?,
            bias: get("bias")?,
        };
        let mut c = Combiner::new(head)?;
        c.thresholds = Thresholds::from_info(&info);
        c.info = info;
        Ok(c)
    }

    /// Reads a combiner file.
    pub fn load(path: &Path) -> Result<Self, ClassifyError> {
        let bytes = crate::classify::read_model_file(path)?;
        Self::from_bytes(&bytes)
    }

    /// Writes the combiner as safetensors, with its feature layout in the metadata.
    pub fn save(&self, path: &Path) -> Result<(), ClassifyError> {
        let n = self.head.bias.len();
        let w = Tensor::from_slice(&self.head.weight, (n, N_FEATURES), &Device::Cpu).map_err(err)?;
        let b = Tensor::from_slice(&self.head.bias, n, &Device::Cpu).map_err(err)?;
        let mut info = self.info.clone();
        info.insert("format".into(), FORMAT.into());
        info.insert("features".into(), FEATURE_NAMES.join(","));
        let bytes = crate::classify::weights_file::to_bytes([("weight", &w), ("bias", &b)], info)?;
        std::fs::write(path, bytes).map_err(|source| ClassifyError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// From this probability of the non-answer classes together a whole answer is judged
    /// a non-answer ([`super::answer_label`]). Chosen by `refusal-guard train` on
    /// leave-one-source-out predictions and kept in the file's metadata; 0.5 for a file
    /// without one.
    pub fn non_answer_from(&self) -> f32 {
        self.thresholds.whole
    }

    /// The same for a stream's prefix (its window): chosen apart because an opening and a
    /// whole answer give the combiner different evidence. 0.5 for a file without one.
    pub fn non_answer_from_window(&self) -> f32 {
        self.thresholds.window
    }

    /// The same for a whole answer the encoder was asked about: its reading moves the
    /// probabilities, so the threshold is chosen on those rows. 0.5 for a file without one.
    pub fn non_answer_from_escalated(&self) -> f32 {
        self.thresholds.escalated
    }

    /// Where the encoder is asked ([`super::EscalationBand`]); every answer for a file
    /// without one.
    pub fn escalation_band(&self) -> super::EscalationBand {
        self.thresholds.band
    }

    /// Where the encoder would be asked without the cost cap (`train --escalation-cap`): the
    /// band of the best cascade F0.5 over the training sources, whatever share of answers
    /// it sends to the encoder. The tier `e5:wide` uses it (`classify::tiers`). The same as
    /// [`Combiner::escalation_band`] for a file from before the cap.
    pub fn wide_escalation_band(&self) -> super::EscalationBand {
        self.thresholds.wide_band
    }

    /// All of them at once.
    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    /// Sets the thresholds the pipeline reads and the metadata [`Combiner::save`] writes,
    /// in one step (so the two cannot disagree).
    pub fn set_thresholds(&mut self, thresholds: Thresholds) {
        thresholds.write_info(&mut self.info);
        self.thresholds = thresholds;
    }

    /// Class probabilities in [`ResponseLabel::ALL`] order.
    pub fn probs(&self, x: &[f32; N_FEATURES]) -> [f32; 4] {
        let p = self.head.forward(x);
        [p[0], p[1], p[2], p[3]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_combiner_loads_and_sums_to_one() {
        let c = Combiner::embedded();
        let p = c.probs(&[0.0; N_FEATURES]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn a_file_with_another_layout_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        let c = Combiner::embedded();
        c.save(&path).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        // Rename one feature in the header: the layout no longer matches.
        let pos = bytes.windows(6).position(|w| w == b"length").unwrap();
        bytes[pos..pos + 6].copy_from_slice(b"lengtx");
        let e = Combiner::from_bytes(&bytes).unwrap_err().to_string();
        assert!(e.contains("retrain"), "{e}");
    }

    #[test]
    fn thresholds_set_before_saving_are_the_ones_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        let mut c = (*Combiner::embedded()).clone();
        let t = Thresholds {
            whole: 0.3,
            escalated: 0.55,
            window: 0.65,
            band: crate::judge::EscalationBand { from: 0.1, to: 0.4 },
            wide_band: crate::judge::EscalationBand { from: 0.05, to: 0.6 },
        };
        c.set_thresholds(t);
        assert_eq!(c.thresholds(), t);
        c.save(&path).unwrap();
        let back = Combiner::load(&path).unwrap();
        assert_eq!(back.thresholds(), t);
        assert_eq!(back.non_answer_from_window(), 0.65);
        assert_eq!(back.wide_escalation_band().to, 0.6);
        // A file from before the cap has one band: it serves as the wide one too.
        let mut old = (*Combiner::embedded()).clone();
        old.set_thresholds(t);
        old.info.remove(ESCALATE_WIDE_FROM);
        old.info.remove(ESCALATE_WIDE_TO);
        old.save(&path).unwrap();
        let back = Combiner::load(&path).unwrap();
        assert_eq!(back.wide_escalation_band(), t.band);
    }
}
