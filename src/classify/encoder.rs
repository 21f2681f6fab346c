//! The sentence-encoder tier: all-MiniLM-L6-v2 (candle `bert`) with small trained heads.
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
//! The heads are linear softmax layers trained by `refusal-guard train --encoder-heads`
//! on the same licence-cleared data as the n-gram model, and shipped in
//! models/minilm-heads.safetensors (a few kilobytes).

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::data::{PROMPT_LABELS, RESPONSE_LABELS};
use super::train::{train_linear_head, Example, LinearHead};
use super::{ClassifyError, PromptJudgement, ResponseJudgement, ResponseLabel};
use crate::hub;

/// The manifest name of the encoder.
pub const MODEL: &str = "all-minilm-l6-v2";
/// The shipped heads.
pub const SHIPPED_HEADS: &[u8] = include_bytes!("../../models/minilm-heads.safetensors");

fn err(e: impl std::fmt::Display) -> ClassifyError {
    ClassifyError::model(MODEL, e)
}

/// A loaded sentence encoder.
pub struct Encoder {
    model: BertModel,
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
        let model = BertModel::load(vb, &cfg).map_err(err)?;
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
            let types = ids.zeros_like()?;
            let out = self.model.forward(&ids, &types, Some(&mask))?;
            let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = out.broadcast_mul(&m)?.sum(1)?;
            let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?;
            let mean = summed.broadcast_div(&counts)?;
            let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
            mean.broadcast_div(&norm)?.to_vec2::<f32>()
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
}

impl Heads {
    /// Reads heads from safetensors bytes (`response.weight`, `response.bias`, `prompt.*`).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ClassifyError> {
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
        Ok(Heads {
            response: head("response", &RESPONSE_LABELS)?,
            prompt: head("prompt", &PROMPT_LABELS)?,
        })
    }

    /// The shipped heads.
    pub fn shipped() -> Result<Self, ClassifyError> {
        Self::from_bytes(SHIPPED_HEADS)
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
        let map: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
        candle_core::safetensors::save(&map, path).map_err(err)
    }
}

/// The encoder and its heads as a cascade tier.
#[derive(Clone)]
pub struct EncoderClassifier {
    encoder: Arc<Encoder>,
    heads: Arc<Heads>,
}

impl EncoderClassifier {
    pub fn new(encoder: Encoder, heads: Heads) -> Self {
        EncoderClassifier {
            encoder: Arc::new(encoder),
            heads: Arc::new(heads),
        }
    }

    /// The encoder from the hf-hub cache with the shipped heads.
    pub fn load_default() -> Result<Self, ClassifyError> {
        Ok(Self::new(Encoder::load_default()?, Heads::shipped()?))
    }

    fn vector(&self, text: &str) -> Result<Vec<f32>, ClassifyError> {
        self.encoder
            .embed(&[text])?
            .pop()
            .ok_or_else(|| err("no embedding"))
    }
}

#[async_trait]
impl super::Classifier for EncoderClassifier {
    fn name(&self) -> &str {
        "minilm"
    }

    async fn judge_response(
        &self,
        _prompt: Option<&str>,
        response: &str,
    ) -> Result<Option<ResponseJudgement>, ClassifyError> {
        let Some(head) = self.heads.response.clone() else {
            return Ok(None);
        };
        let this = self.clone();
        let text = response.to_string();
        let v = tokio::task::spawn_blocking(move || this.vector(&text))
            .await
            .map_err(err)??;
        let p = head.forward(&v);
        let mut probs = [0f32; 4];
        for (l, p) in head.labels.iter().zip(p) {
            if let Some(l) = ResponseLabel::parse(l) {
                probs[l.index()] += p;
            }
        }
        Ok(Some(ResponseJudgement { probs }))
    }

    async fn judge_prompt(&self, prompt: &str) -> Result<Option<PromptJudgement>, ClassifyError> {
        let Some(head) = self.heads.prompt.clone() else {
            return Ok(None);
        };
        let this = self.clone();
        let text = prompt.to_string();
        let v = tokio::task::spawn_blocking(move || this.vector(&text))
            .await
            .map_err(err)??;
        let p = head.forward(&v);
        Ok(Some(PromptJudgement {
            harmful: p[1],
            categories: Vec::new(),
        }))
    }
}

/// Trains both heads on the encoder's vectors of the examples and writes them to `path`.
pub fn train_heads_cli(path: &Path, responses: &[Example], prompts: &[Example]) -> Result<(), ClassifyError> {
    let encoder = Encoder::load_default()?;
    let started = std::time::Instant::now();
    let train = |examples: &[Example], labels: &[&str]| -> Result<Option<LinearHead>, ClassifyError> {
        if examples.is_empty() {
            return Ok(None);
        }
        let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
        eprintln!("embedding {} texts with {MODEL}", texts.len());
        let xs = encoder.embed_all(&texts, 32)?;
        let ys: Vec<usize> = examples.iter().map(|e| e.label).collect();
        Ok(Some(train_linear_head(&xs, &ys, labels, 300, 0.05, 1.0)?))
    };
    let heads = Heads {
        response: train(responses, &RESPONSE_LABELS)?,
        prompt: train(prompts, &PROMPT_LABELS)?,
    };
    heads.save(path)?;
    eprintln!(
        "wrote {} in {:.0}s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
