//! Safetensors files whose bytes depend on their contents alone.
//!
//! The `safetensors` writer takes its metadata as a `HashMap` and writes it in hash order,
//! which Rust seeds afresh in every process: two runs of `refusal-guard train` that learn the
//! same numbers wrote files with different bytes, so an md5 or a sha256 could not tell a
//! reader whether a run was reproduced, and a trained part pinned by its sha256 would have
//! looked changed. [`to_bytes`] writes what `safetensors::serialize` writes, with the
//! metadata's keys in sorted order. Tensors are already written in a fixed order (by dtype
//! alignment, then name), so the file is then a function of its contents.

use std::collections::HashMap;

use safetensors::View;

use super::ClassifyError;

/// Serializes tensors and string metadata as safetensors, metadata keys sorted.
pub fn to_bytes<S: AsRef<str> + Ord + std::fmt::Display, V: View>(
    tensors: impl IntoIterator<Item = (S, V)>,
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>, ClassifyError> {
    let bytes = safetensors::serialize(tensors, Some(metadata)).map_err(invalid)?;
    canonical(bytes)
}

/// Rewrites the header of a serialized file with its metadata's keys sorted. The header is
/// JSON after an 8-byte little-endian length and padded with spaces to a multiple of 8; the
/// tensors' byte offsets count from the end of the header, so a header of another length
/// would still point at the same data (the same keys in another order have the same length).
fn canonical(bytes: Vec<u8>) -> Result<Vec<u8>, ClassifyError> {
    let len_bytes: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| invalid("safetensors file shorter than its header length"))?;
    let header_len = usize::try_from(u64::from_le_bytes(len_bytes)).map_err(invalid)?;
    let header = bytes
        .get(8..8 + header_len)
        .ok_or_else(|| invalid("safetensors header longer than the file"))?;
    let mut json: serde_json::Value = serde_json::from_slice(header).map_err(invalid)?;
    if let Some(meta) = json.get_mut("__metadata__").and_then(|m| m.as_object_mut()) {
        let mut sorted: Vec<(String, serde_json::Value)> = std::mem::take(meta).into_iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        meta.extend(sorted);
    }
    let mut new_header = serde_json::to_vec(&json).map_err(invalid)?;
    new_header.resize(new_header.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + new_header.len() + bytes.len() - 8 - header_len);
    out.extend_from_slice(&(new_header.len() as u64).to_le_bytes());
    out.extend_from_slice(&new_header);
    out.extend_from_slice(&bytes[8 + header_len..]);
    Ok(out)
}

fn invalid(e: impl std::fmt::Display) -> ClassifyError {
    ClassifyError::Invalid(format!("writing safetensors: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn metadata(keys: &[&str]) -> HashMap<String, String> {
        keys.iter()
            .map(|k| (k.to_string(), format!("value of {k}")))
            .collect()
    }

    #[test]
    fn the_same_contents_give_the_same_bytes_whatever_the_hash_order() {
        let w = Tensor::new(&[1.0f32, 2.0, 3.0], &Device::Cpu).unwrap();
        let b = Tensor::new(&[0.5f32], &Device::Cpu).unwrap();
        let keys: Vec<String> = (0..24).map(|i| format!("key{i}")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut reversed = keys.clone();
        reversed.reverse();
        // Each HashMap gets its own random seed, so the plain writer's bytes differ between
        // these (24 keys in the same order twice by chance: about 1 in 24!).
        let plain =
            |keys: &[&str]| safetensors::serialize([("w", &w), ("b", &b)], Some(metadata(keys))).unwrap();
        assert_ne!(
            plain(&keys),
            plain(&reversed),
            "the plain writer's order did not vary"
        );
        let first = to_bytes([("w", &w), ("b", &b)], metadata(&keys)).unwrap();
        let second = to_bytes([("b", &b), ("w", &w)], metadata(&reversed)).unwrap();
        assert_eq!(first, second);
        // And the file still reads back, metadata and tensors.
        let (_, meta) = safetensors::SafeTensors::read_metadata(&first).unwrap();
        let meta = meta.metadata().as_ref().unwrap();
        assert_eq!(meta.len(), 24);
        assert_eq!(meta["key7"], "value of key7");
        let read = candle_core::safetensors::load_buffer(&first, &Device::Cpu).unwrap();
        assert_eq!(read["w"].to_vec1::<f32>().unwrap(), vec![1.0, 2.0, 3.0]);
        assert_eq!(read["b"].to_vec1::<f32>().unwrap(), vec![0.5]);
    }

    #[test]
    fn a_cut_file_is_an_error_not_a_panic() {
        assert!(canonical(vec![1, 2, 3]).is_err());
        let mut long = 64u64.to_le_bytes().to_vec();
        long.extend_from_slice(b"{}");
        assert!(canonical(long).is_err());
    }
}
