//! The sentence-encoder tiers: an encoder with small trained heads. Two encoders:
//! multilingual-e5-small ([`super::e5`], the `e5` tier: English, Chinese, Finnish and ~100
//! more languages; its heads in models/e5-heads/) and all-MiniLM-L6-v2 (the `minilm` tier,
//! English only; described below). [`EncoderClassifier`] is the same for both: a
//! [`SentenceEncoder`] and its [`Heads`].
//!
//! Why: the n-gram model sees formulas; an encoder sees meaning, so a deflection phrased in
//! words the n-gram model never saw still lands near other deflections. MiniLM-L6 is the
//! smallest encoder that is good at this (22.7M parameters, 384 dimensions, ~13 ms per
//! sentence in a batch on two cores, release build). The sentence vector is the mean of the
//! token vectors under the attention mask, L2-normalised, as sentence-transformers does it.
//! The tokenizer.json of the model pads every input to 128 tokens; that padding is turned
//! off (a batch is padded to its longest member instead) and inputs are truncated at 128
//! tokens: whether an answer is a refusal or a deflection shows in its first sentences, and
//! attention cost grows with the square of the length.
//!
//! The MiniLM heads (models/minilm-heads.safetensors, a few kilobytes) were trained on the
//! earlier 30% fit split and are kept as they are; the e5 heads are trained by
//! `refusal-guard train --encoder e5` with the combiner ([`crate::judge::fit`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config as BertConfig;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::data::{PROMPT_LABELS, RESPONSE_LABELS};
use super::train::LinearHead;
use super::{ClassifyError, PromptJudgement, ResponseJudgement};
use crate::hub;

/// The manifest name of the encoder.
pub const MODEL: &str = "all-minilm-l6-v2";
/// The shipped heads.
pub const SHIPPED_HEADS: &[u8] = include_bytes!("../../models/minilm-heads.safetensors");

fn err(e: impl std::fmt::Display) -> ClassifyError {
    ClassifyError::model(MODEL, e)
}

/// The shipped e5 heads (models/e5-heads/heads.safetensors; model card beside it).
pub const E5_HEADS: &[u8] = include_bytes!("../../models/e5-heads/heads.safetensors");

/// Tokens of an answer the e5 tier reads: its opening and its ending (see
/// [`super::e5::window`]).
pub const E5_ANSWER_TOKENS: usize = 128;

/// Something that turns texts into sentence vectors.
pub trait SentenceEncoder: Send + Sync {
    /// Sentence vectors, one per text.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ClassifyError>;

    /// Sentence vectors of prompts: the same as [`Self::embed`] unless the encoder carries
    /// a layer fine-tuned for prompts.
    fn embed_prompts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ClassifyError> {
        self.embed(texts)
    }

    /// An identifier of the loaded weights (their sha256), when known: heads record the
    /// weights they were trained on.
    fn weights_id(&self) -> Option<&str> {
        None
    }

    /// What a cache of [`Self::embed`]'s vectors is keyed by besides the text: the weights
    /// and anything else that changes the vectors.
    fn cache_salt(&self) -> String {
        self.weights_id().unwrap_or("unknown").to_string()
    }
}

impl SentenceEncoder for super::e5::E5Encoder {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ClassifyError> {
        super::e5::E5Encoder::embed(self, texts, E5_ANSWER_TOKENS)
    }

    fn embed_prompts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ClassifyError> {
        super::e5::E5Encoder::embed_prompts(self, texts, E5_ANSWER_TOKENS)
    }

    fn weights_id(&self) -> Option<&str> {
        Some(self.sha256())
    }

    fn cache_salt(&self) -> String {
        // The full depth and f32 activations keep the salt the caches were written under
        // before either could change.
        let mut salt = self.sha256().to_string();
        if self.answer_depth() != self.config().num_hidden_layers {
            salt.push_str(&format!("|answer_depth={}", self.answer_depth()));
        }
        if self.int8_activations() {
            salt.push_str("|int8_activations");
        }
        if let Some(id) = self.answer_layer_id() {
            salt.push_str(&format!("|answer_layer={id}"));
        }
        salt
    }
}

impl SentenceEncoder for Encoder {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ClassifyError> {
        Encoder::embed(self, texts)
    }
}

/// A loaded all-MiniLM-L6-v2 encoder.
pub struct Encoder {
    model: super::bert::Bert,
    tokenizer: Tokenizer,
    device: Device,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").finish()
    }
}

impl Encoder {
    /// Loads config.json, tokenizer.json and model.safetensors.
    pub fn load(config: &Path, tokenizer: &Path, weights: &Path) -> Result<Self, ClassifyError> {
        let device = Device::Cpu;
        let text = std::fs::read_to_string(config).map_err(|source| ClassifyError::Io {
            path: config.display().to_string(),
            source,
        })?;
        let cfg: BertConfig = serde_json::from_str(&text).map_err(err)?;
        let mut tokenizer = Tokenizer::from_file(tokenizer).map_err(err)?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: 128,
                ..TruncationParams::default()
            }))
            .map_err(err)?;
        // SAFETY: read-only memory map of a file that must not change while loaded.
        let vb =
            unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &device) }.map_err(err)?;
        let model = super::bert::Bert::load_file(vb, weights, &cfg, super::bert::Ops::Fused).map_err(err)?;
        Ok(Encoder {
            model,
            tokenizer,
            device,
        })
    }

    /// Loads the encoder from the hf-hub cache.
    pub fn load_default() -> Result<Self, ClassifyError> {
        let m = hub::find_manifest(MODEL)?;
        Self::load(
            &hub::resolve(&m, "config.json")?,
            &hub::resolve(&m, "tokenizer.json")?,
            &hub::resolve(&m, "model.safetensors")?,
        )
    }

    /// Sentence vectors (mean pooling, L2-normalised), one per text.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ClassifyError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let enc = self.tokenizer.encode_batch(texts.to_vec(), true).map_err(err)?;
        let ids: Vec<Tensor> = enc
            .iter()
            .map(|e| Tensor::new(e.get_ids(), &self.device))
            .collect::<Result<_, _>>()
            .map_err(err)?;
        let mask: Vec<Tensor> = enc
            .iter()
            .map(|e| Tensor::new(e.get_attention_mask(), &self.device))
            .collect::<Result<_, _>>()
            .map_err(err)?;
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let ids = Tensor::stack(&ids, 0)?;
            let mask = Tensor::stack(&mask, 0)?;
            let out = self.model.forward(&ids, &mask)?;
            super::e5::mean_pool_l2(&out, &mask)?.to_vec2::<f32>()
        };
        run().map_err(err)
    }

    /// Embeds many texts in batches of `batch`.
    pub fn embed_all(&self, texts: &[&str], batch: usize) -> Result<Vec<Vec<f32>>, ClassifyError> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(batch.max(1)) {
            out.extend(self.embed(chunk)?);
        }
        Ok(out)
    }
}

/// The encoder's heads: answer and prompt.
#[derive(Debug, Clone)]
pub struct Heads {
    pub response: Option<LinearHead>,
    pub prompt: Option<LinearHead>,
    /// The sha256 of the encoder weights the heads were trained on, when recorded.
    pub encoder_sha256: Option<String>,
    /// One of the encoder's layers fine-tuned for prompt harm, when the prompt head was
    /// trained over it (e5 only; tensors named as in the checkpoint, `encoder.layer.{k}.…`;
    /// stored as f16 under `prompt_layer.`, read as f32).
    pub prompt_layer: Option<HashMap<String, Tensor>>,
    /// One of the encoder's layers fine-tuned for the answer question, when the response
    /// head was trained over it (e5 only; named as the prompt layer's tensors are, stored as
    /// f16 under `answer_layer.`): answers are read through it and pooled there, see
    /// [`super::e5::E5Encoder::with_answer_layer`].
    pub answer_layer: Option<HashMap<String, Tensor>>,
    /// How many of the encoder's layers the answer head reads through (e5 only; all of them
    /// when not recorded): see [`super::e5::E5Encoder::with_answer_depth`].
    pub answer_depth: Option<usize>,
    /// Whether the heads were trained over e5 run on 8-bit activations (e5 only; f32 when
    /// not recorded): see [`super::e5::E5Encoder::with_int8_activations`].
    pub int8_activations: Option<bool>,
}

/// The prefix of the fine-tuned prompt layer's tensors in a heads file.
const PROMPT_LAYER: &str = "prompt_layer.";

/// The prefix of the fine-tuned answer layer's tensors in a heads file.
const ANSWER_LAYER: &str = "answer_layer.";

/// The heads file's metadata key for [`Heads::answer_depth`].
const ANSWER_DEPTH: &str = "answer_depth";

/// The heads file's metadata key for [`Heads::int8_activations`].
const INT8_ACTIVATIONS: &str = "int8_activations";

/// A heads file's metadata value under `key`, parsed. A value that does not parse is refused
/// by name (`expected` says what it should be) rather than ignored: the heads would run over
/// an encoder set up unlike the one they were trained on.
fn metadata_value<T: std::str::FromStr>(
    meta: &safetensors::tensor::Metadata,
    key: &str,
    expected: &str,
) -> Result<Option<T>, ClassifyError> {
    match meta.metadata().as_ref().and_then(|m| m.get(key)) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| err(format!("heads metadata {key} {v:?} is not {expected}"))),
    }
}

impl Heads {
    /// Reads heads from safetensors bytes (`response.weight`, `response.bias`, `prompt.*`).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ClassifyError> {
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(err)?;
        let encoder_sha256 = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("encoder_sha256").cloned());
        let answer_depth = metadata_value(&meta, ANSWER_DEPTH, "a layer count")?;
        let int8_activations = metadata_value(&meta, INT8_ACTIVATIONS, "true or false")?;
        let t = candle_core::safetensors::load_buffer(bytes, &Device::Cpu).map_err(err)?;
        let head = |name: &str, labels: &[&str]| -> Result<Option<LinearHead>, ClassifyError> {
            let (Some(w), Some(b)) = (t.get(&format!("{name}.weight")), t.get(&format!("{name}.bias")))
            else {
                return Ok(None);
            };
            Ok(Some(LinearHead {
                labels: labels.iter().map(|s| s.to_string()).collect(),
                weight: w.flatten_all().and_then(|x| x.to_vec1()).map_err(err)?,
                bias: b.to_vec1().map_err(err)?,
            }))
        };
        let layer = |prefix: &str| -> Result<Option<HashMap<String, Tensor>>, ClassifyError> {
            let mut layer = HashMap::new();
            for (name, t) in &t {
                if let Some(rest) = name.strip_prefix(prefix) {
                    layer.insert(rest.to_string(), t.to_dtype(DType::F32).map_err(err)?);
                }
            }
            Ok((!layer.is_empty()).then_some(layer))
        };
        Ok(Heads {
            response: head("response", &RESPONSE_LABELS)?,
            prompt: head("prompt", &PROMPT_LABELS)?,
            encoder_sha256,
            prompt_layer: layer(PROMPT_LAYER)?,
            answer_layer: layer(ANSWER_LAYER)?,
            answer_depth,
            int8_activations,
        })
    }

    /// Sets the encoder up as the heads were trained: their fine-tuned prompt and answer
    /// layers (moved out of `self`), the depth answers are read at, and 8-bit activations.
    pub fn configure(
        &mut self,
        mut encoder: super::e5::E5Encoder,
    ) -> Result<super::e5::E5Encoder, ClassifyError> {
        if self.int8_activations == Some(true) {
            encoder = encoder.with_int8_activations();
            if !encoder.int8_activations() {
                // The vectors are then the f32 ones the 8-bit activations approximate
                // (cosine >= 0.9995, tests/e5_real.rs): the same verdicts, at about twice
                // the encoder's time (models/e5-heads/README.md).
                tracing::info!(
                    "the e5 heads were trained on 8-bit activations; this CPU (or these \
                     weights) cannot run them, so e5 runs on f32 activations"
                );
            }
        }
        if let Some(layer) = self.prompt_layer.take() {
            encoder = encoder.with_prompt_layer(layer)?;
        }
        if let Some(layer) = self.answer_layer.take() {
            encoder = encoder.with_answer_layer(layer)?;
        }
        if let Some(depth) = self.answer_depth {
            encoder = encoder.with_answer_depth(depth)?;
        }
        Ok(encoder)
    }

    /// The shipped MiniLM heads.
    pub fn shipped() -> Result<Self, ClassifyError> {
        Self::from_bytes(SHIPPED_HEADS)
    }

    /// The shipped e5 heads.
    pub fn shipped_e5() -> Result<Self, ClassifyError> {
        Self::from_bytes(E5_HEADS)
    }

    /// Heads from a file that `train --encoder-out` wrote.
    pub fn load(path: &Path) -> Result<Self, ClassifyError> {
        let bytes = super::read_model_file(path)?;
        Self::from_bytes(&bytes).map_err(|e| {
            ClassifyError::Invalid(format!("{}: not e5 heads from `train`: {e}", path.display()))
        })
    }

    /// Writes the heads as safetensors.
    pub fn save(&self, path: &Path) -> Result<(), ClassifyError> {
        let mut tensors = Vec::new();
        for (name, h) in [("response", &self.response), ("prompt", &self.prompt)] {
            let Some(h) = h else { continue };
            let dim = h.weight.len() / h.labels.len();
            tensors.push((
                format!("{name}.weight"),
                Tensor::from_slice(&h.weight, (h.labels.len(), dim), &Device::Cpu).map_err(err)?,
            ));
            tensors.push((
                format!("{name}.bias"),
                Tensor::from_slice(&h.bias, h.labels.len(), &Device::Cpu).map_err(err)?,
            ));
        }
        for (prefix, layer) in [
            (PROMPT_LAYER, &self.prompt_layer),
            (ANSWER_LAYER, &self.answer_layer),
        ] {
            for (name, t) in layer.iter().flatten() {
                tensors.push((format!("{prefix}{name}"), t.to_dtype(DType::F16).map_err(err)?));
            }
        }
        let mut info = HashMap::new();
        if let Some(sha) = &self.encoder_sha256 {
            info.insert("encoder_sha256".to_string(), sha.clone());
        }
        if let Some(depth) = self.answer_depth {
            info.insert(ANSWER_DEPTH.to_string(), depth.to_string());
        }
        if let Some(int8) = self.int8_activations {
            info.insert(INT8_ACTIVATIONS.to_string(), int8.to_string());
        }
        let bytes = super::weights_file::to_bytes(tensors.iter().map(|(k, v)| (k.as_str(), v)), info)?;
        std::fs::write(path, bytes).map_err(|source| ClassifyError::Io {
            path: path.display().to_string(),
            source,
        })
    }
}

/// Answer vectors an [`EncoderClassifier`] keeps, newest first (by the text's sha256,
/// [`super::text_lru::TextLru`]): 256 vectors of 384 floats, about 0.4 MB.
///
/// Why: two heads read the same vector. A short answer the combiner is unsure of is read by
/// the answer head (the escalation) and then by the short-reply head, and without this the
/// encoder ran twice over the same text: about 10 ms instead of 5 on one AVX2 core for a
/// one-line Chinese answer. And a gateway sees the same boilerplate answers ("I can't help
/// with that.") again and again. A vector depends only on the text and the loaded weights,
/// which a classifier never changes, so a kept one is as good as a fresh one.
pub const ANSWER_VECTORS_KEPT: usize = 256;

/// An encoder and its heads as a tier.
#[derive(Clone)]
pub struct EncoderClassifier {
    encoder: Arc<dyn SentenceEncoder>,
    heads: Arc<Heads>,
    /// The head for short replies (e5 only), read over the same answer vectors.
    short: Option<Arc<super::short_head::ShortHead>>,
    /// Answer vectors computed lately ([`ANSWER_VECTORS_KEPT`]), shared by clones.
    answers: Arc<super::text_lru::TextLru<Arc<Vec<f32>>>>,
    name: String,
}

impl EncoderClassifier {
    /// An encoder with heads, under a tier name. Heads trained on other weights than the
    /// encoder's are used with a warning: their readings shift (`models eval` shows how
    /// much).
    pub fn new(encoder: impl SentenceEncoder + 'static, heads: Heads, name: impl Into<String>) -> Self {
        let name = name.into();
        if let (Some(trained), Some(loaded)) = (&heads.encoder_sha256, encoder.weights_id()) {
            if trained != loaded {
                tracing::warn!(
                    tier = %name,
                    trained_on = %trained,
                    loaded = %loaded,
                    "the encoder heads were trained on other weights; their judgments may shift"
                );
            }
        }
        EncoderClassifier {
            encoder: Arc::new(encoder),
            heads: Arc::new(heads),
            short: None,
            answers: Arc::new(super::text_lru::TextLru::with_capacity(ANSWER_VECTORS_KEPT)),
            name,
        }
    }

    /// Reads short whole answers with `head` as well ([`super::Classifier::judge_short_answer`]).
    /// The head must read this encoder's answer vectors: it was trained on them.
    pub fn with_short_head(mut self, head: super::short_head::ShortHead) -> Self {
        self.short = Some(Arc::new(head));
        self
    }

    /// all-MiniLM-L6-v2 from the hf-hub cache with the shipped heads (the `minilm` tier).
    pub fn load_default() -> Result<Self, ClassifyError> {
        Ok(Self::new(Encoder::load_default()?, Heads::shipped()?, "minilm"))
    }

    /// multilingual-e5-small from the hf-hub cache with the shipped heads (the `e5` tier).
    pub fn load_e5() -> Result<Self, ClassifyError> {
        Self::load_e5_with(Heads::shipped_e5()?)
    }

    /// multilingual-e5-small from the hf-hub cache with heads of your own (the `e5:PATH`
    /// tier: heads that `train --encoder-out` wrote, e.g. on your own labeled traffic).
    pub fn load_e5_with(mut heads: Heads) -> Result<Self, ClassifyError> {
        let encoder = heads.configure(super::e5::E5Encoder::load_default()?)?;
        Ok(Self::new(encoder, heads, "e5").with_short_head(super::short_head::ShortHead::shipped()?))
    }

    /// The answer vector of `text`: a kept one ([`ANSWER_VECTORS_KEPT`]) or one encoder pass
    /// (looked up again here: another call may have made it while this one waited its turn).
    fn vector(&self, text: &str) -> Result<Arc<Vec<f32>>, ClassifyError> {
        if let Some(v) = self.answers.get(text) {
            return Ok(v);
        }
        let v = Arc::new(
            self.encoder
                .embed(&[text])?
                .pop()
                .ok_or_else(|| err("no embedding"))?,
        );
        self.answers.put(text, v.clone());
        Ok(v)
    }

    /// The answer vector of `response`, kept or computed off the async threads
    /// ([`super::blocking`]).
    async fn answer_vector(&self, response: &str) -> Result<Arc<Vec<f32>>, ClassifyError> {
        if let Some(v) = self.answers.get(response) {
            return Ok(v);
        }
        let this = self.clone();
        let text = response.to_string();
        super::blocking("encoder", super::Priority::Answer, move || this.vector(&text)).await
    }

    fn prompt_vector(&self, text: &str) -> Result<Vec<f32>, ClassifyError> {
        self.encoder
            .embed_prompts(&[text])?
            .pop()
            .ok_or_else(|| err("no embedding"))
    }
}

#[async_trait]
impl super::Classifier for EncoderClassifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn judge_response(
        &self,
        _prompt: Option<&str>,
        response: &str,
    ) -> Result<Option<ResponseJudgement>, ClassifyError> {
        let Some(head) = self.heads.response.clone() else {
            return Ok(None);
        };
        let v = self.answer_vector(response).await?;
        Ok(Some(ResponseJudgement::from_labels(
            &head.labels,
            head.forward(&v),
        )))
    }

    async fn judge_short_answer(
        &self,
        response: &str,
    ) -> Result<Option<super::short_head::ShortJudgement>, ClassifyError> {
        let Some(head) = self.short.clone() else {
            return Ok(None);
        };
        let v = self.answer_vector(response).await?;
        Ok(head.judge(response, &v))
    }

    async fn judge_prompt(&self, prompt: &str) -> Result<Option<PromptJudgement>, ClassifyError> {
        let Some(head) = self.heads.prompt.clone() else {
            return Ok(None);
        };
        let this = self.clone();
        let text = prompt.to_string();
        let v = super::blocking("encoder", super::Priority::Request, move || {
            this.prompt_vector(&text)
        })
        .await?;
        let p = head.forward(&v);
        Ok(Some(PromptJudgement::harm(p[1])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An encoder that counts its passes and gives every text the same vector.
    struct Counting(Arc<std::sync::atomic::AtomicUsize>);

    impl SentenceEncoder for Counting {
        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ClassifyError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(texts.iter().map(|_| vec![1.0, 0.0]).collect())
        }
    }

    /// Heads with these answer and prompt heads, no tuned layer.
    fn heads_of(response: Option<LinearHead>, prompt: Option<LinearHead>) -> Heads {
        Heads {
            response,
            prompt,
            encoder_sha256: None,
            prompt_layer: None,
            answer_layer: None,
            answer_depth: None,
            int8_activations: None,
        }
    }

    fn two_by_four() -> LinearHead {
        LinearHead {
            labels: RESPONSE_LABELS.iter().map(|s| s.to_string()).collect(),
            weight: vec![0.0; 8],
            bias: vec![0.0; 4],
        }
    }

    #[tokio::test]
    async fn the_answer_head_and_the_short_head_share_one_encoder_pass() {
        use crate::classify::Classifier;
        let passes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let heads = heads_of(Some(two_by_four()), None);
        let short = crate::classify::short_head::ShortHead {
            head: two_by_four(),
            thresholds: crate::classify::short_head::ShortThresholds {
                one_line: 0.5,
                sentences: 0.5,
            },
            encoder_sha256: None,
            asked_from: None,
        };
        let tier = EncoderClassifier::new(Counting(passes.clone()), heads, "counting").with_short_head(short);
        let count = || passes.load(std::sync::atomic::Ordering::Relaxed);
        let text = "北京是中国的首都。";
        assert!(tier.judge_response(None, text).await.unwrap().is_some());
        assert!(tier.judge_short_answer(text).await.unwrap().is_some());
        assert_eq!(count(), 1, "the short head reads the vector the answer head read");
        // A clone (how a pipeline shares a tier) keeps the vectors; another text is a pass.
        assert!(tier.clone().judge_short_answer(text).await.unwrap().is_some());
        assert_eq!(count(), 1);
        assert!(tier.judge_short_answer("上海在长江口。").await.unwrap().is_some());
        assert_eq!(count(), 2);
        // Bounded: after ANSWER_VECTORS_KEPT other texts the first is computed again.
        for i in 0..ANSWER_VECTORS_KEPT {
            tier.judge_short_answer(&format!("reply {i}")).await.unwrap();
        }
        let before = count();
        tier.judge_short_answer(text).await.unwrap();
        assert_eq!(count(), before + 1);
    }

    /// An encoder whose passes take a while, recording how many run at once.
    struct Slow {
        now: Arc<std::sync::atomic::AtomicUsize>,
        most: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl SentenceEncoder for Slow {
        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ClassifyError> {
            use std::sync::atomic::Ordering::SeqCst;
            let running = self.now.fetch_add(1, SeqCst) + 1;
            self.most.fetch_max(running, SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(20));
            self.now.fetch_sub(1, SeqCst);
            Ok(texts.iter().map(|_| vec![1.0, 0.0]).collect())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_encoder_passes_run_at_once_than_the_process_allows() {
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let encoder = Slow {
            now: Default::default(),
            most: most.clone(),
        };
        let prompt = LinearHead {
            labels: PROMPT_LABELS.iter().map(|s| s.to_string()).collect(),
            weight: vec![0.0; 4],
            bias: vec![0.0; 2],
        };
        let tier = EncoderClassifier::new(encoder, heads_of(Some(two_by_four()), Some(prompt)), "slow");
        let bound = crate::classify::concurrent_passes();
        let mut calls = Vec::new();
        for i in 0..2 * bound + 4 {
            let tier = tier.clone();
            calls.push(tokio::spawn(async move {
                use crate::classify::Classifier;
                // Answers and prompts share the bound: both are passes of one encoder.
                if i % 2 == 0 {
                    tier.judge_response(None, &format!("answer {i}"))
                        .await
                        .map(|j| j.is_some())
                } else {
                    tier.judge_prompt(&format!("prompt {i}"))
                        .await
                        .map(|j| j.is_some())
                }
            }));
        }
        let mut answered = 0;
        for call in calls {
            // Other tests of this process share the queue, so a pass may be shed; never lost.
            match call.await.unwrap() {
                Ok(true) => answered += 1,
                Err(e) if e.is_busy() => {}
                other => panic!("{other:?}"),
            }
        }
        assert!(answered > bound, "{answered} answered");
        let most = most.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            (1..=bound).contains(&most),
            "{most} passes ran at once, {bound} allowed"
        );
    }

    #[test]
    fn heads_keep_their_tuned_layers_through_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("heads.safetensors");
        let w = Tensor::new(&[[0.25f32, -1.5], [3.0, 0.001]], &Device::Cpu).unwrap();
        let mut layer = HashMap::new();
        layer.insert("encoder.layer.11.output.dense.weight".to_string(), w.clone());
        let mut answer_layer = HashMap::new();
        answer_layer.insert(
            "encoder.layer.11.output.dense.weight".to_string(),
            (&w * -2.0).unwrap(),
        );
        let heads = Heads {
            response: None,
            prompt: Some(LinearHead {
                labels: PROMPT_LABELS.iter().map(|s| s.to_string()).collect(),
                weight: vec![1.0, -1.0, 0.5, 2.0],
                bias: vec![0.1, -0.1],
            }),
            encoder_sha256: Some("ab".repeat(32)),
            prompt_layer: Some(layer),
            answer_layer: Some(answer_layer),
            answer_depth: Some(7),
            int8_activations: Some(true),
        };
        heads.save(&path).unwrap();
        let back = Heads::from_bytes(&std::fs::read(&path).unwrap()).unwrap();
        assert!(back.response.is_none());
        assert_eq!(back.prompt.as_ref().unwrap().weight, vec![1.0, -1.0, 0.5, 2.0]);
        assert_eq!(back.encoder_sha256, heads.encoder_sha256);
        assert_eq!(back.answer_depth, Some(7));
        assert_eq!(back.int8_activations, Some(true));
        let layer = back.prompt_layer.expect("the prompt layer");
        let got = layer["encoder.layer.11.output.dense.weight"]
            .to_vec2::<f32>()
            .unwrap();
        // Stored as f16: read back as f32 within f16's rounding.
        for (g, want) in got
            .iter()
            .flatten()
            .zip(w.to_vec2::<f32>().unwrap().iter().flatten())
        {
            assert!((g - want).abs() <= want.abs() * 1e-3 + 1e-6, "{g} vs {want}");
        }
        // The answer layer comes back as its own, not mixed with the prompt layer's tensors
        // of the same name.
        let answer = back.answer_layer.expect("the answer layer");
        assert_eq!(answer.len(), 1);
        let got = answer["encoder.layer.11.output.dense.weight"]
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(got[1][0], -6.0);
        // Heads without a layer load without one.
        let plain = Heads {
            prompt_layer: None,
            answer_layer: None,
            answer_depth: None,
            int8_activations: None,
            ..heads
        };
        plain.save(&path).unwrap();
        let back = Heads::from_bytes(&std::fs::read(&path).unwrap()).unwrap();
        assert!(back.prompt_layer.is_none() && back.answer_layer.is_none());
        assert_eq!(
            back.answer_depth, None,
            "heads from before depths read at full depth"
        );
        assert_eq!(back.int8_activations, None, "and with f32 activations");
    }

    #[test]
    fn a_heads_file_with_a_bad_answer_depth_is_refused_by_name() {
        let w = Tensor::new(&[0f32], &Device::Cpu).unwrap();
        let mut info = HashMap::new();
        info.insert(ANSWER_DEPTH.to_string(), "eight".to_string());
        let bytes = safetensors::serialize([("response.bias", &w)], Some(info)).unwrap();
        let e = Heads::from_bytes(&bytes).unwrap_err().to_string();
        assert!(e.contains("answer_depth") && e.contains("eight"), "{e}");
        let mut info = HashMap::new();
        info.insert(INT8_ACTIVATIONS.to_string(), "yes".to_string());
        let bytes = safetensors::serialize([("response.bias", &w)], Some(info)).unwrap();
        let e = Heads::from_bytes(&bytes).unwrap_err().to_string();
        assert!(e.contains("int8_activations") && e.contains("yes"), "{e}");
    }
}
