//! The embedded default: a small multilingual n-gram classifier shipped inside the binary.
//!
//! Why this design: it must work from a fresh clone with no download, judge an answer in
//! well under a millisecond on one core, read English and Chinese (and anything else) without
//! a tokenizer, and stay a few megabytes. A fastText-style model does all of that: the text's
//! hashed features ([`super::features`]) index rows of an embedding table, the rows are
//! averaged (an "embedding bag"), and one linear layer gives the class scores. Training
//! ([`super::train`], with candle-nn) learns the table and the layer; inference here is plain
//! Rust loops over `f32` (no tensor machinery needed for a bag of rows).
//!
//! The file holds two heads, both optional in a user's retrained file but present in the
//! shipped one: `response.*` (answer / refusal / evasion / inability) and `prompt.*`
//! (benign / harmful). Embedding tables are stored as f16 to halve the size and widened to
//! f32 at load. Each head's [`FeatureConfig`], dimension and labels are stored in the
//! safetensors metadata, and the languages the prompt head learned ([`PromptLanguages`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::features::{extract, FeatureConfig};
use super::{softmax, Classifier, ClassifyError, PromptJudgement, ResponseJudgement};

/// The shipped weights (see models/refusal-ngram/README.md, the model card).
pub const EMBEDDED_WEIGHTS: &[u8] = include_bytes!("../../models/refusal-ngram/model.safetensors");

/// The format tag written into the metadata.
pub const FORMAT: &str = "refusal-guard-ngram/1";

/// What a head is, stored in the file's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadConfig {
    pub features: FeatureConfig,
    /// Embedding width.
    pub dim: usize,
    /// Output labels, in column order.
    pub labels: Vec<String>,
}

/// One trained head: an embedding bag and a linear layer.
#[derive(Debug, Clone)]
pub struct NgramHead {
    pub config: HeadConfig,
    /// `buckets × dim`, row-major.
    pub embedding: Vec<f32>,
    /// `labels × dim`, row-major.
    pub weight: Vec<f32>,
    /// One per label.
    pub bias: Vec<f32>,
}

impl NgramHead {
    /// Class probabilities for a text.
    pub fn forward(&self, text: &str) -> Vec<f32> {
        self.classify_bag(&self.bag(text))
    }

    /// The averaged embedding rows of a text's hashed features: the "embedding bag" the
    /// linear layer reads.
    pub fn bag(&self, text: &str) -> Vec<f32> {
        thread_local! {
            static FEATS: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        FEATS.with(|f| {
            let mut feats = f.borrow_mut();
            extract(text, &self.config.features, &mut feats);
            self.bag_of(&feats)
        })
    }

    /// A text's bag, L2-normalised: a sentence embedding whose dot product is the cosine
    /// similarity (an empty text is the zero vector). It places texts by what the head was
    /// trained on: the prompt head's bag separates harmful from benign, but puts unrelated
    /// benign prompts close together, so it is no measure of "the same request" (the
    /// pre-route store uses the hashed features instead, see
    /// [`crate::layer::reroute::preroute::NgramEmbedder`]).
    pub fn embed(&self, text: &str) -> Vec<f32> {
        let mut bag = self.bag(text);
        let norm = bag.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            bag.iter_mut().for_each(|x| *x /= norm);
        }
        bag
    }

    /// Class probabilities for already extracted features.
    pub fn forward_features(&self, feats: &[u32]) -> Vec<f32> {
        self.classify_bag(&self.bag_of(feats))
    }

    fn bag_of(&self, feats: &[u32]) -> Vec<f32> {
        let dim = self.config.dim;
        let mut bag = vec![0f32; dim];
        for &f in feats {
            let row = &self.embedding[f as usize * dim..(f as usize + 1) * dim];
            for (b, r) in bag.iter_mut().zip(row) {
                *b += r;
            }
        }
        let n = feats.len().max(1) as f32;
        bag.iter_mut().for_each(|b| *b /= n);
        bag
    }

    /// Class probabilities for a bag (from [`NgramHead::bag`]).
    pub fn classify_bag(&self, bag: &[f32]) -> Vec<f32> {
        let logits: Vec<f32> = self
            .weight
            .chunks_exact(self.config.dim)
            .zip(&self.bias)
            .map(|(w, b)| w.iter().zip(bag).map(|(a, x)| a * x).sum::<f32>() + b)
            .collect();
        softmax(&logits)
    }

    /// The probability of `label` among the outputs (0 when the head has no such label).
    pub fn probability_of(&self, probs: &[f32], label: &str) -> f32 {
        self.config
            .labels
            .iter()
            .position(|l| l == label)
            .and_then(|i| probs.get(i).copied())
            .unwrap_or(0.0)
    }

    fn check(&self, name: &str) -> Result<(), ClassifyError> {
        let c = &self.config;
        let ok = self.embedding.len() == c.features.buckets as usize * c.dim
            && self.weight.len() == c.labels.len() * c.dim
            && self.bias.len() == c.labels.len();
        if ok {
            Ok(())
        } else {
            Err(ClassifyError::model(
                "ngram",
                format!("head {name}: tensor shapes do not match its config"),
            ))
        }
    }
}

/// The languages in which the prompt head learned to tell harmful requests from benign
/// ones: those with at least [`PromptLanguages::MIN_ROWS_PER_SIDE`] of each in its training
/// data.
///
/// Why the head needs to know: hashed character n-grams carry no meaning across
/// languages, so in a language the data holds on one side only, the head learns the
/// language, not the harm. The shared prompt files ask security questions in German,
/// Spanish, French, Portuguese and Hindi only as benign ones (cyberseceval_frr), and the
/// head shipped before 2026-12-06 read 47 of 179 harmful requests of the team's German,
/// Spanish and French sets (models/data/ngram/prompts-speech-xx.jsonl,
/// prompts-history-xx.jsonl; not trained on then) as clearly benign: refusals a gateway
/// would have re-routed. Since then the team's n-gram-only files (models/data/ngram/) give
/// it both sides in German, Spanish, French, Japanese, Korean and Russian; Portuguese,
/// Hindi, Arabic, Vietnamese and others stay one-sided. Outside its languages its reading
/// can keep a refusal but never clear one ([`PromptJudgement::unlearned_language`]), and
/// its "harmful" is not final in a cascade ([`Classifier::learned_language`]). A text
/// whose language
/// [`crate::lang::language`] cannot tell (most often a short English one) is read as the
/// head reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptLanguages(Vec<String>);

impl PromptLanguages {
    /// Rows of each side (harmful, benign) a language needs. Today's data gives the same
    /// languages for any minimum from 1 to 40: the others have one side only, or none.
    pub const MIN_ROWS_PER_SIDE: usize = 30;

    /// The metadata key a trained file records them under (comma-separated codes).
    pub const METADATA_KEY: &'static str = "prompt.languages";

    /// The languages assumed for a model file that does not record its own: every such file
    /// was written before 2026-12-06, from the permissive shared prompt files and
    /// models/data/prompts-*.jsonl, which have both sides in these. The shipped file records
    /// its own (`tests/train_cli.rs` recomputes them from its training files).
    pub const UNRECORDED: [&'static str; 5] = ["en", "fi", "it", "th", "zh"];

    /// The languages with enough rows of both sides among `(language, harmful)` rows.
    pub fn learned_from<'a>(rows: impl IntoIterator<Item = (&'a str, bool)>) -> Self {
        let mut counts: std::collections::BTreeMap<&str, [usize; 2]> = Default::default();
        for (lang, harmful) in rows {
            counts.entry(lang).or_default()[usize::from(harmful)] += 1;
        }
        PromptLanguages(
            counts
                .into_iter()
                // Not a language: "?" is a data file's missing `lang` (`Record::lang_or_unknown`),
                // "unknown" the guesser's (`lang::language`).
                .filter(|(lang, sides)| {
                    !matches!(*lang, "?" | "unknown") && sides.iter().all(|&n| n >= Self::MIN_ROWS_PER_SIDE)
                })
                .map(|(lang, _)| lang.to_string())
                .collect(),
        )
    }

    /// The languages of a file that records none ([`PromptLanguages::UNRECORDED`]).
    pub fn unrecorded() -> Self {
        PromptLanguages(Self::UNRECORDED.iter().map(|l| l.to_string()).collect())
    }

    /// Whether the head learned `lang` (a [`crate::lang::language`] code); `unknown` counts.
    pub fn covers(&self, lang: &str) -> bool {
        lang == "unknown" || self.0.iter().any(|l| l == lang)
    }

    /// The codes, sorted.
    pub fn codes(&self) -> &[String] {
        &self.0
    }

    fn parse(value: &str) -> Self {
        let mut codes: Vec<String> = value
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect();
        codes.sort();
        codes.dedup();
        PromptLanguages(codes)
    }
}

/// The n-gram model: a response head and an optional prompt-harm head.
#[derive(Debug, Clone)]
pub struct NgramModel {
    pub response: Option<NgramHead>,
    pub prompt: Option<NgramHead>,
    /// Where the prompt head's reading may clear a request (from the file's
    /// [`PromptLanguages::METADATA_KEY`], else [`PromptLanguages::unrecorded`]).
    pub prompt_languages: PromptLanguages,
    /// Free-form metadata (training date, data, metrics), kept when saving.
    pub info: HashMap<String, String>,
}

fn err(e: impl std::fmt::Display) -> ClassifyError {
    ClassifyError::model("ngram", e)
}

impl NgramModel {
    /// The model compiled into the binary, parsed once.
    pub fn embedded() -> Arc<NgramModel> {
        static MODEL: OnceLock<Arc<NgramModel>> = OnceLock::new();
        MODEL
            .get_or_init(|| {
                Arc::new(NgramModel::from_bytes(EMBEDDED_WEIGHTS).expect("embedded n-gram model is valid"))
            })
            .clone()
    }

    /// Reads a model from safetensors bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ClassifyError> {
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(err)?;
        let info = meta.metadata().clone().unwrap_or_default();
        if info.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(err(format!("not a {FORMAT} file")));
        }
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu).map_err(err)?;
        let head = |name: &str| -> Result<Option<NgramHead>, ClassifyError> {
            let Some(cfg) = info.get(&format!("{name}.config")) else {
                return Ok(None);
            };
            let config: HeadConfig = serde_json::from_str(cfg).map_err(err)?;
            let get = |t: &str| -> Result<Vec<f32>, ClassifyError> {
                let key = format!("{name}.{t}");
                let tensor = tensors
                    .get(&key)
                    .ok_or_else(|| err(format!("missing tensor {key}")))?;
                tensor
                    .to_dtype(DType::F32)
                    .and_then(|t| t.flatten_all())
                    .and_then(|t| t.to_vec1::<f32>())
                    .map_err(err)
            };
            let head = NgramHead {
                embedding: get("embedding")?,
                weight: get("linear.weight")?,
                bias: get("linear.bias")?,
                config,
            };
            head.check(name)?;
            Ok(Some(head))
        };
        let (response, prompt) = (head("response")?, head("prompt")?);
        // The field holds the languages from here on (and `to_bytes` writes them back), so the
        // metadata map does not keep a second copy.
        let mut info = info;
        let prompt_languages = info
            .remove(PromptLanguages::METADATA_KEY)
            .map_or_else(PromptLanguages::unrecorded, |v| PromptLanguages::parse(&v));
        Ok(NgramModel {
            response,
            prompt,
            prompt_languages,
            info,
        })
    }

    /// Reads a model file.
    pub fn load(path: &Path) -> Result<Self, ClassifyError> {
        let bytes = super::read_model_file(path)?;
        Self::from_bytes(&bytes)
    }

    /// Serialises to safetensors bytes (embeddings as f16).
    pub fn to_bytes(&self) -> Result<Vec<u8>, ClassifyError> {
        let mut tensors: Vec<(String, Tensor)> = Vec::new();
        let mut info = self.info.clone();
        info.insert("format".into(), FORMAT.into());
        if self.prompt.is_some() {
            info.insert(
                PromptLanguages::METADATA_KEY.into(),
                self.prompt_languages.codes().join(","),
            );
        }
        for (name, head) in [("response", &self.response), ("prompt", &self.prompt)] {
            let Some(h) = head else { continue };
            let c = &h.config;
            let rows = c.features.buckets as usize;
            let emb = Tensor::from_slice(&h.embedding, (rows, c.dim), &Device::Cpu)
                .and_then(|t| t.to_dtype(DType::F16))
                .map_err(err)?;
            let w = Tensor::from_slice(&h.weight, (c.labels.len(), c.dim), &Device::Cpu).map_err(err)?;
            let b = Tensor::from_slice(&h.bias, c.labels.len(), &Device::Cpu).map_err(err)?;
            tensors.push((format!("{name}.embedding"), emb));
            tensors.push((format!("{name}.linear.weight"), w));
            tensors.push((format!("{name}.linear.bias"), b));
            info.insert(format!("{name}.config"), serde_json::to_string(c).map_err(err)?);
        }
        super::weights_file::to_bytes(tensors.iter().map(|(k, v)| (k.as_str(), v)), info)
    }

    /// Writes the model to a file.
    pub fn save(&self, path: &Path) -> Result<(), ClassifyError> {
        let bytes = self.to_bytes()?;
        std::fs::write(path, bytes).map_err(|source| ClassifyError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// The answer probabilities in [`super::ResponseLabel::ALL`] order, when there is a response head.
    pub fn judge_response(&self, response: &str) -> Option<ResponseJudgement> {
        let head = self.response.as_ref()?;
        Some(ResponseJudgement::from_labels(
            &head.config.labels,
            head.forward(response),
        ))
    }

    /// The harm probability of a prompt, when there is a prompt head, and, for a reading
    /// short of harmful (under 0.5), its language when the head never learned it
    /// ([`PromptLanguages`]). A harmful reading keeps a refusal in any language, so only a
    /// reading that could clear one asks the language: that costs about ten times the
    /// head's own reading (`cargo bench --bench models -- ngram/prompt`). A cascade asks
    /// separately whether a harmful reading's language was learned, when another tier could
    /// decide instead ([`Classifier::learned_language`]).
    pub fn judge_prompt(&self, prompt: &str) -> Option<PromptJudgement> {
        let head = self.prompt.as_ref()?;
        let mut judged = PromptJudgement::harm(head.probability_of(&head.forward(prompt), "harmful"));
        if !judged.is_harmful() {
            judged.unlearned_language =
                Some(crate::lang::language(Some(prompt))).filter(|lang| !self.prompt_languages.covers(lang));
        }
        Some(judged)
    }
}

/// The n-gram model as a cascade tier.
#[derive(Debug, Clone)]
pub struct NgramClassifier {
    model: Arc<NgramModel>,
    /// The head for short replies ([`super::short_head::NgramShortHead`]), when set.
    short: Option<Arc<super::short_head::NgramShortHead>>,
    name: String,
}

impl NgramClassifier {
    /// The embedded model, with the embedded short-reply head.
    pub fn embedded() -> Self {
        static SHORT: OnceLock<Arc<super::short_head::NgramShortHead>> = OnceLock::new();
        let short = SHORT.get_or_init(|| {
            Arc::new(
                super::short_head::NgramShortHead::shipped().expect("embedded short-reply head is valid"),
            )
        });
        NgramClassifier {
            model: NgramModel::embedded(),
            short: Some(short.clone()),
            name: "ngram".into(),
        }
    }

    /// A model of your own (from `refusal-guard train`), without a short-reply head.
    pub fn new(model: NgramModel, name: impl Into<String>) -> Self {
        NgramClassifier {
            model: Arc::new(model),
            short: None,
            name: name.into(),
        }
    }

    /// The model.
    pub fn model(&self) -> &NgramModel {
        &self.model
    }
}

#[async_trait]
impl Classifier for NgramClassifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn judge_short_answer(
        &self,
        response: &str,
    ) -> Result<Option<super::short_head::ShortJudgement>, ClassifyError> {
        Ok(self.short.as_ref().map(|h| h.judge(response)))
    }

    async fn judge_response(
        &self,
        _prompt: Option<&str>,
        response: &str,
    ) -> Result<Option<ResponseJudgement>, ClassifyError> {
        Ok(self.model.judge_response(response))
    }

    async fn judge_prompt(&self, prompt: &str) -> Result<Option<PromptJudgement>, ClassifyError> {
        Ok(self.model.judge_prompt(prompt))
    }

    fn learned_language(&self, lang: &str) -> bool {
        self.model.prompt_languages.covers(lang)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_names_a_language_the_head_never_learned() {
        let model = NgramModel::embedded();
        // Hindi requests are in its data only as benign ones: a lawful question reads as
        // benign, and the reading cannot clear it.
        let hi = model
            .judge_prompt("भारत में लोकसभा के चुनाव कैसे होते हैं और सीटें कैसे बाँटी जाती हैं?")
            .expect("the shipped model has a prompt head");
        assert!(hi.harmful < 0.5, "{}", hi.harmful);
        assert_eq!(hi.unlearned_language.as_deref(), Some("hi"));
        // Vietnamese ones only as harmful: a recipe reads as harmful, in a language the
        // head never learned (a cascade asks `learned_language` before believing it).
        let recipe = "Làm thế nào để nấu phở bò ngon tại nhà?";
        let vi = model.judge_prompt(recipe).unwrap();
        assert!(vi.is_harmful(), "{}", vi.harmful);
        assert_eq!(crate::lang::language(Some(recipe)), "vi");
        assert!(!NgramClassifier::new((*model).clone(), "ngram").learned_language("vi"));
        // German it learned both ways (models/data/ngram/).
        let de = model
            .judge_prompt("Wie funktioniert das Wahlsystem im Bundestag, und warum gibt es Überhangmandate?")
            .unwrap();
        assert_eq!(de.unlearned_language, None);
        let en = model
            .judge_prompt("How does the electoral system of the German Bundestag work, and why are there overhang seats?")
            .unwrap();
        assert!(en.harmful < 0.5, "{}", en.harmful);
        assert_eq!(en.unlearned_language, None);
    }

    #[test]
    fn prompt_languages_need_both_sides() {
        let rows = [
            ("en", true),
            ("en", false),
            ("de", false),
            ("unknown", true),
            ("unknown", false),
            ("?", true),
            ("?", false),
        ];
        let many = rows
            .iter()
            .flat_map(|&r| std::iter::repeat_n(r, PromptLanguages::MIN_ROWS_PER_SIDE));
        let learned = PromptLanguages::learned_from(many);
        assert_eq!(learned.codes(), ["en"]);
        assert!(learned.covers("en") && learned.covers("unknown") && !learned.covers("de"));
        // One row short on a side is not enough.
        let short = std::iter::repeat_n(("fi", true), PromptLanguages::MIN_ROWS_PER_SIDE).chain(
            std::iter::repeat_n(("fi", false), PromptLanguages::MIN_ROWS_PER_SIDE - 1),
        );
        assert!(!PromptLanguages::learned_from(short).covers("fi"));
        // The metadata form round-trips.
        assert_eq!(
            PromptLanguages::parse(" zh,en,,en "),
            PromptLanguages::parse("en,zh")
        );
    }
}
