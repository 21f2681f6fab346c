//! One interface over the causal language models the generative guards run on.
//!
//! Llama Guard 3 is a Llama model, Qwen3Guard-Gen a Qwen3 model; either may come as
//! safetensors (candle `llama` / `qwen3`, with a `tokenizer.json`) or as GGUF (candle
//! `quantized_llama` / `quantized_qwen3`, with the tokenizer inside the file). The guards
//! only need "feed these tokens, give me the next-token logits", so [`CausalLm`] hides which
//! of the four it is.
//!
//! GGUF on a CPU: candle has fast kernels for Q4_0, Q8_0 and the k-quants but none for
//! Q4_1 and a few others, and even the fast ones lose to a plain f32 matrix multiply when a
//! whole prompt is processed at once. Measured on SmolLM2-135M Q4_1, a 288-token prompt:
//! 23.5 s quantized, 1.35 s dequantized. So on a CPU the weights are dequantized at load by
//! default ([`Dequantize::F32`]). The cost is memory: 4 bytes per weight instead of about
//! 0.6 (Q4_1), so ~0.55 GB for a 135M model, ~6 GB for a 1.5B one (Llama Guard 3 1B with its
//! 128k vocabulary) and ~32 GB for an 8B one; choose [`Dequantize::F16`] (2 bytes per weight,
//! slower) or [`Dequantize::Keep`] when memory is short. On a GPU (`cuda` feature) the
//! quantized kernels are used as they are.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, TensorInfo};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::{llama, quantized_llama, quantized_qwen3, qwen3};
use tokenizers::Tokenizer;

use super::gguf_tokenizer::tokenizer_from_gguf;
use super::ClassifyError;

/// The model families the guards use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen3,
}

/// What to do with quantized GGUF weights at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dequantize {
    /// Dequantize on a CPU, keep on a GPU (the default).
    #[default]
    Auto,
    /// Keep the quantized blocks (least memory, slow on a CPU for Q4_1 and friends).
    Keep,
    /// Widen every quantized matrix to f32 (fastest on a CPU, ~4 bytes per weight).
    F32,
    /// Widen to f16 (2 bytes per weight; between the two in speed).
    F16,
}

enum Inner {
    Llama {
        model: llama::Llama,
        config: llama::Config,
        cache: llama::Cache,
        dtype: DType,
    },
    QLlama(quantized_llama::ModelWeights),
    Qwen3(qwen3::ModelForCausalLM),
    QQwen3(quantized_qwen3::ModelWeights),
}

/// A causal language model with its tokenizer and a position counter for the KV cache.
pub struct CausalLm {
    inner: Inner,
    /// The tokenizer (special tokens encoded as single ids).
    pub tokenizer: Tokenizer,
    device: Device,
    pos: usize,
    /// Which family it is.
    pub arch: Arch,
}

impl std::fmt::Debug for CausalLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CausalLm")
            .field("arch", &self.arch)
            .field("pos", &self.pos)
            .finish()
    }
}

fn err(e: impl std::fmt::Display) -> ClassifyError {
    ClassifyError::model("causal-lm", e)
}

/// The device models run on: the first CUDA GPU with the `cuda` feature, else the CPU.
pub fn default_device() -> Device {
    Device::cuda_if_available(0).unwrap_or(Device::Cpu)
}

/// Rewrites a GGUF's tensors into an in-memory GGUF whose matrices are f32 (or f16), so
/// that candle's loaders build plain matrix multiplies instead of quantized ones.
fn dequantized(
    ct: &gguf_file::Content,
    reader: &mut std::fs::File,
    to: GgmlDType,
) -> Result<(gguf_file::Content, Cursor<Vec<u8>>), ClassifyError> {
    let mut data: Vec<u8> = Vec::new();
    let mut infos = std::collections::HashMap::new();
    let mut names: Vec<&String> = ct.tensor_infos.keys().collect();
    names.sort();
    for name in names {
        let info = &ct.tensor_infos[name];
        let q = ct.tensor(reader, name, &Device::Cpu).map_err(err)?;
        let q = match q.dtype() {
            GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => q,
            _ => {
                let t = q.dequantize(&Device::Cpu).map_err(err)?;
                QTensor::quantize(&t, to).map_err(err)?
            }
        };
        while !data.len().is_multiple_of(32) {
            data.push(0);
        }
        let offset = data.len() as u64;
        data.extend_from_slice(&q.data().map_err(err)?);
        infos.insert(
            name.clone(),
            TensorInfo {
                ggml_dtype: q.dtype(),
                shape: info.shape.clone(),
                offset,
            },
        );
    }
    let content = gguf_file::Content {
        magic: ct.magic,
        metadata: ct.metadata.clone(),
        tensor_infos: infos,
        tensor_data_offset: 0,
    };
    Ok((content, Cursor::new(data)))
}

impl CausalLm {
    /// Loads a GGUF model (architecture and tokenizer read from the file).
    pub fn load_gguf(path: &Path, device: &Device, dequantize: Dequantize) -> Result<Self, ClassifyError> {
        let io = |source| ClassifyError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let ct = gguf_file::Content::read(&mut file).map_err(|e| err(format!("{}: {e}", path.display())))?;
        let arch_name = ct
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        let arch = match arch_name.as_str() {
            "llama" => Arch::Llama,
            "qwen3" => Arch::Qwen3,
            other => {
                return Err(err(format!(
                    "GGUF architecture {other:?} is not supported (llama, qwen3)"
                )))
            }
        };
        let tokenizer = tokenizer_from_gguf(&ct)?;
        let widen = match dequantize {
            Dequantize::Auto if device.is_cpu() => Some(GgmlDType::F32),
            Dequantize::Auto | Dequantize::Keep => None,
            Dequantize::F32 => Some(GgmlDType::F32),
            Dequantize::F16 => Some(GgmlDType::F16),
        };
        let inner = match widen {
            Some(to) => {
                let (ct, mut cursor) = dequantized(&ct, &mut file, to)?;
                Self::quantized(arch, ct, &mut cursor, device)?
            }
            None => Self::quantized(arch, ct, &mut file, device)?,
        };
        Ok(CausalLm {
            inner,
            tokenizer,
            device: device.clone(),
            pos: 0,
            arch,
        })
    }

    fn quantized<R: std::io::Read + std::io::Seek>(
        arch: Arch,
        ct: gguf_file::Content,
        reader: &mut R,
        device: &Device,
    ) -> Result<Inner, ClassifyError> {
        Ok(match arch {
            Arch::Llama => {
                Inner::QLlama(quantized_llama::ModelWeights::from_gguf(ct, reader, device).map_err(err)?)
            }
            Arch::Qwen3 => {
                Inner::QQwen3(quantized_qwen3::ModelWeights::from_gguf(ct, reader, device).map_err(err)?)
            }
        })
    }

    /// Loads a safetensors model: `config.json`, `tokenizer.json` and the weight files.
    /// Weights are read as f32 on a CPU and bf16 on a GPU.
    pub fn load_safetensors(
        arch: Arch,
        config: &Path,
        tokenizer: &Path,
        weights: &[PathBuf],
        device: &Device,
    ) -> Result<Self, ClassifyError> {
        let text = std::fs::read_to_string(config).map_err(|source| ClassifyError::Io {
            path: config.display().to_string(),
            source,
        })?;
        let tokenizer =
            Tokenizer::from_file(tokenizer).map_err(|e| err(format!("{}: {e}", tokenizer.display())))?;
        let dtype = if device.is_cpu() { DType::F32 } else { DType::BF16 };
        // SAFETY: the files are memory-mapped read-only; they must not change while loaded.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(weights, dtype, device) }.map_err(err)?;
        let inner = match arch {
            Arch::Llama => {
                let cfg: llama::LlamaConfig = serde_json::from_str(&text).map_err(err)?;
                let config = cfg.into_config(false);
                let model = llama::Llama::load(vb, &config).map_err(err)?;
                let cache = llama::Cache::new(true, dtype, &config, device).map_err(err)?;
                Inner::Llama {
                    model,
                    config,
                    cache,
                    dtype,
                }
            }
            Arch::Qwen3 => {
                let cfg: qwen3::Config = serde_json::from_str(&text).map_err(err)?;
                Inner::Qwen3(qwen3::ModelForCausalLM::new(&cfg, vb).map_err(err)?)
            }
        };
        Ok(CausalLm {
            inner,
            tokenizer,
            device: device.clone(),
            pos: 0,
            arch,
        })
    }

    /// Forgets the conversation (clears the KV cache).
    pub fn reset(&mut self) -> Result<(), ClassifyError> {
        self.pos = 0;
        match &mut self.inner {
            Inner::Llama {
                config, cache, dtype, ..
            } => *cache = llama::Cache::new(true, *dtype, config, &self.device).map_err(err)?,
            Inner::QLlama(m) => m.clear_kv_cache(),
            Inner::Qwen3(m) => m.clear_kv_cache(),
            Inner::QQwen3(m) => m.clear_kv_cache(),
        }
        Ok(())
    }

    /// Feeds tokens after those already fed and returns the next-token logits.
    pub fn feed(&mut self, tokens: &[u32]) -> Result<Vec<f32>, ClassifyError> {
        if tokens.is_empty() {
            return Err(ClassifyError::Invalid("no tokens to feed".into()));
        }
        let input = Tensor::new(tokens, &self.device)
            .and_then(|t| t.unsqueeze(0))
            .map_err(err)?;
        let pos = self.pos;
        let logits = match &mut self.inner {
            Inner::Llama { model, cache, .. } => model.forward(&input, pos, cache),
            Inner::QLlama(m) => m.forward(&input, pos),
            Inner::Qwen3(m) => m.forward(&input, pos),
            Inner::QQwen3(m) => m.forward(&input, pos),
        }
        .map_err(err)?;
        self.pos += tokens.len();
        logits
            .flatten_all()
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(err)
    }

    /// Resets and feeds a whole prompt.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<Vec<f32>, ClassifyError> {
        self.reset()?;
        self.feed(tokens)
    }

    /// Token ids of a text (special tokens spelled in the text become their ids).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ClassifyError> {
        Ok(self
            .tokenizer
            .encode(text, false)
            .map_err(err)?
            .get_ids()
            .to_vec())
    }

    /// The text of token ids (special tokens included).
    pub fn decode(&self, ids: &[u32]) -> Result<String, ClassifyError> {
        self.tokenizer.decode(ids, false).map_err(err)
    }

    /// The id of a token spelled exactly, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }
}

/// Index of the largest value.
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}
