//! A `tokenizers` tokenizer built from the vocabulary inside a GGUF file.
//!
//! Why not candle's `TokenizerFromGguf`: for the plain GPT-2 pre-tokenizer it uses
//! `ByteLevel::default()`, which adds a prefix space to the input, so "safe" becomes " safe"
//! and every template is shifted by one token. Byte-level BPE models in GGUF (SmolLM2,
//! Llama 3, Qwen) do not add that space. This builder follows `tokenizer.ggml.pre`:
//! - `smollm`, `gpt2` and unknown values: individual digits, then the GPT-2 byte-level regex;
//! - `llama-bpe` / `llama3`: the Llama 3 split regex, then byte-level without its own regex;
//! - `qwen2`: the Qwen2 split regex (single digits), then byte-level.
//!
//! Control and user-defined tokens (`<|im_start|>`, `<|eot_id|>`) become added tokens, so a
//! template that spells them in text encodes them as single ids. No BOS is added: the
//! templates write it themselves.

use candle_core::quantized::gguf_file;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

use super::ClassifyError;

const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn err(e: impl std::fmt::Display) -> ClassifyError {
    ClassifyError::model("gguf-tokenizer", e)
}

fn strings(ct: &gguf_file::Content, key: &str) -> Result<Vec<String>, ClassifyError> {
    let v = ct
        .metadata
        .get(key)
        .ok_or_else(|| err(format!("GGUF has no {key}")))?;
    v.to_vec()
        .map_err(err)?
        .iter()
        .map(|s| s.to_string().cloned().map_err(err))
        .collect()
}

fn split(regex: &str) -> Result<PreTokenizerWrapper, ClassifyError> {
    Ok(Split::new(
        SplitPattern::Regex(regex.into()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(err)?
    .into())
}

/// Builds the tokenizer of a byte-level BPE GGUF (`tokenizer.ggml.model = "gpt2"`).
pub fn tokenizer_from_gguf(ct: &gguf_file::Content) -> Result<Tokenizer, ClassifyError> {
    let model = ct
        .metadata
        .get("tokenizer.ggml.model")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_default();
    if model != "gpt2" {
        return Err(err(format!(
            "tokenizer model {model:?} is not supported (only byte-level BPE, \"gpt2\"); use the safetensors files with tokenizer.json instead"
        )));
    }
    let tokens = strings(ct, "tokenizer.ggml.tokens")?;
    let merges: Vec<(String, String)> = strings(ct, "tokenizer.ggml.merges")?
        .into_iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| err(format!("bad merge {m:?}")))
        })
        .collect::<Result<_, _>>()?;
    let vocab: tokenizers::models::bpe::Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(err)?;
    let mut tokenizer = Tokenizer::new(bpe);

    let pre = ct
        .metadata
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_else(|| "gpt2".into());
    let pre_tokenizer: PreTokenizerWrapper = match pre.as_str() {
        "llama-bpe" | "llama3" | "smaug-bpe" => Sequence::new(vec![
            split(LLAMA3_SPLIT)?,
            ByteLevel::new(false, true, false).into(),
        ])
        .into(),
        "qwen2" => Sequence::new(vec![
            split(QWEN2_SPLIT)?,
            ByteLevel::new(false, true, false).into(),
        ])
        .into(),
        _ => Sequence::new(vec![
            Digits::new(true).into(),
            ByteLevel::new(false, true, true).into(),
        ])
        .into(),
    };
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
    tokenizer.with_decoder(Some(ByteLevelDecoder::new(false, true, true)));

    if let Some(types) = ct
        .metadata
        .get("tokenizer.ggml.token_type")
        .and_then(|v| v.to_vec().ok())
    {
        let mut special = Vec::new();
        let mut added = Vec::new();
        for (i, t) in types.iter().enumerate() {
            let kind = t.to_i32().or_else(|_| t.to_u32().map(|u| u as i32)).unwrap_or(1);
            match kind {
                3 => special.push(AddedToken::from(tokens[i].clone(), true)),
                4 => added.push(AddedToken::from(tokens[i].clone(), false)),
                _ => {}
            }
        }
        tokenizer.add_special_tokens(special).map_err(err)?;
        tokenizer.add_tokens(added).map_err(err)?;
    }
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::gguf_file::{Content, Value, VersionedMagic};
    use std::collections::HashMap;

    /// A GGUF header with a toy byte-level vocabulary.
    fn toy() -> Content {
        let toks = [
            "<|endoftext|>",
            "<|im_start|>",
            "s",
            "a",
            "f",
            "e",
            "sa",
            "saf",
            "safe",
            "Ġ",
            "Ġsafe",
            "1",
            "2",
        ];
        let mut md = HashMap::new();
        md.insert("tokenizer.ggml.model".into(), Value::String("gpt2".into()));
        md.insert("tokenizer.ggml.pre".into(), Value::String("smollm".into()));
        md.insert(
            "tokenizer.ggml.tokens".into(),
            Value::Array(toks.iter().map(|t| Value::String(t.to_string())).collect()),
        );
        md.insert(
            "tokenizer.ggml.merges".into(),
            Value::Array(
                ["s a", "sa f", "saf e", "Ġ safe"]
                    .iter()
                    .map(|t| Value::String(t.to_string()))
                    .collect(),
            ),
        );
        md.insert(
            "tokenizer.ggml.token_type".into(),
            Value::Array(
                toks.iter()
                    .enumerate()
                    .map(|(i, _)| Value::I32(if i < 2 { 3 } else { 1 }))
                    .collect(),
            ),
        );
        Content {
            magic: VersionedMagic::GgufV3,
            metadata: md,
            tensor_infos: HashMap::new(),
            tensor_data_offset: 0,
        }
    }

    #[test]
    fn no_prefix_space_and_special_tokens_are_single_ids() {
        let t = tokenizer_from_gguf(&toy()).unwrap();
        let ids = t.encode("safe", false).unwrap().get_ids().to_vec();
        assert_eq!(ids, vec![8], "\"safe\" must not become \" safe\"");
        let ids = t
            .encode("<|im_start|>safe safe", false)
            .unwrap()
            .get_ids()
            .to_vec();
        assert_eq!(ids, vec![1, 8, 10]);
        let ids = t.encode("12", false).unwrap().get_ids().to_vec();
        assert_eq!(ids, vec![11, 12], "digits are split one by one");
        assert_eq!(t.decode(&[8, 10], false).unwrap(), "safe safe");
    }
}
