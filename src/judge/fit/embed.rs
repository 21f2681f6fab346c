//! Sentence vectors for training, through a cache file, and the capped subsets of rows
//! that get one.

use std::path::Path;

use super::Row;
use crate::classify::ClassifyError;

/// Sentence vectors of `texts`, read from and added to a cache file so that retraining does
/// not embed the same text twice (embedding the shared files takes most of an hour on two
/// cores; the rest of training, minutes). The cache holds `(key, vector)` records, the key
/// being FNV-1a 64 of the weights' id, the token budget and the text; it is appended as
/// batches finish, so an interrupted run keeps what it did.
pub fn embed_cached(
    encoder: &dyn crate::classify::encoder::SentenceEncoder,
    texts: &[&str],
    cache: &Path,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<Vec<f32>>, ClassifyError> {
    use std::io::{Read, Write};
    let io = |source| ClassifyError::Io {
        path: cache.display().to_string(),
        source,
    };
    let salt = encoder.cache_salt();
    let key = |t: &str| {
        let mut h = crate::classify::Fnv64::new();
        h.write(salt.as_bytes());
        h.write(&[0]);
        h.write(t.as_bytes());
        h.finish()
    };
    let mut known: std::collections::HashMap<u64, Vec<f32>> = std::collections::HashMap::new();
    let mut dim = 0usize;
    if let Ok(mut f) = std::fs::File::open(cache) {
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).map_err(io)?;
        if bytes.len() >= 4 {
            dim = u32::from_le_bytes(bytes[..4].try_into().unwrap_or_default()) as usize;
            let rec = 8 + 4 * dim;
            for chunk in bytes[4..].chunks_exact(rec.max(1)) {
                let k = u64::from_le_bytes(chunk[..8].try_into().unwrap_or_default());
                let v = chunk[8..]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap_or_default()))
                    .collect();
                known.insert(k, v);
            }
        }
    }
    let mut missing: Vec<&str> = texts
        .iter()
        .copied()
        .filter(|t| !known.contains_key(&key(t)))
        .collect();
    missing.sort_by_key(|t| t.len());
    missing.dedup();
    if let Some(dir) = cache.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(cache)
        .map_err(io)?;
    let total = missing.len();
    let mut done = 0;
    for chunk in missing.chunks(64) {
        let vs = encoder.embed(chunk)?;
        let mut buf = Vec::new();
        for (t, v) in chunk.iter().zip(vs) {
            if dim == 0 {
                dim = v.len();
                file.write_all(&(dim as u32).to_le_bytes()).map_err(io)?;
            }
            buf.extend_from_slice(&key(t).to_le_bytes());
            for x in &v {
                buf.extend_from_slice(&x.to_le_bytes());
            }
            known.insert(key(t), v);
        }
        file.write_all(&buf).map_err(io)?;
        done += chunk.len();
        progress(done, total);
    }
    texts
        .iter()
        .map(|t| {
            known
                .get(&key(t))
                .cloned()
                .ok_or_else(|| ClassifyError::Invalid("embedding cache lost a vector".into()))
        })
        .collect()
}

/// The answers that get a sentence vector in `train` ([`subset`]): at most `cap` per source,
/// label and view (whole answers and stream windows apart).
pub fn answer_subset(rows: &[Row], cap: usize) -> Vec<bool> {
    let keys: Vec<(String, String, &str)> = rows
        .iter()
        .map(|r| {
            let group = format!("{}{}", r.source, if r.window { "w" } else { "" });
            (group, r.label.as_str().to_string(), r.text.as_str())
        })
        .collect();
    subset(&keys, cap)
}

/// Which rows get a sentence vector when embedding every row would take too long: at most
/// `cap` rows per (group, label), chosen by a hash of the text (stable across runs, so the
/// embedding cache is reused). `group_label` gives each row's group and label.
pub fn subset(keys: &[(String, String, &str)], cap: usize) -> Vec<bool> {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&i| crate::classify::fnv1a64(keys[i].2.as_bytes()));
    let mut taken: std::collections::HashMap<(&str, &str), usize> = std::collections::HashMap::new();
    let mut keep = vec![false; keys.len()];
    for i in order {
        let n = taken.entry((keys[i].0.as_str(), keys[i].1.as_str())).or_default();
        if *n < cap {
            *n += 1;
            keep[i] = true;
        }
    }
    keep
}
