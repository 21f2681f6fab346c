//! Which of e5's layers tells answers from non-answers best, out of source.
//!
//! For the same capped subset of training answers that `refusal-guard train` embeds, it pools
//! the hidden states after every layer, then for each depth fits the answer head the way
//! `train` does (`judge::fit::final_encoder_head`) leave-one-source-out, and prints the
//! held-out non-answer F1 (probability of the non-answer classes >= 0.5) per source and depth.
//! This is how the shipped answer depth was chosen (models/e5-heads/README.md).
//!
//! ```sh
//! HF_HOME=.cache/hf cargo run --release --example e5_depth_probe
//! ```
//!
//! With `RG_PROBE_TOKENS=32,64,96,128` it asks the other question of cost, how many of an
//! answer's tokens the encoder must read: it embeds the subset through the encoder as the
//! shipped heads set it up (answer depth, 8-bit activations), cut to each number of tokens
//! (opening and ending, as the tier cuts at 128), and prints the same table per cut.
//!
//! Embedding the ~14,600 texts through all 12 layers takes about 16 minutes on two cores;
//! `RG_PROBE_CACHE=path` keeps the vectors (raw f32, texts × layers × 384) for a rerun.
use std::io::{Read, Write};

use refusal_guard::classify::e5::E5Encoder;
use refusal_guard::classify::encoder::{Heads, E5_ANSWER_TOKENS};
use refusal_guard::classify::ResponseLabel;
use refusal_guard::judge::fit::{
    answer_subset, final_encoder_head, read_rows, shipped_sources, FitConfig, Row, Source,
};

const LAYERS: usize = 12;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let datasets = repo.join("../shared/datasets");
    if !datasets.is_dir() {
        return Err(format!(
            "{} is missing: the probe reads the shared datasets",
            datasets.display()
        )
        .into());
    }
    let sources = shipped_sources(&datasets, repo);
    let cfg = FitConfig::default();
    let rows = read_rows(&sources, cfg.window_tokens)?;
    // The same subset as `train --encoder-cap 700`.
    let keep = answer_subset(&rows, 700);
    let idx: Vec<usize> = (0..rows.len()).filter(|&i| keep[i]).collect();
    if let Some(cuts) = std::env::var_os("RG_PROBE_TOKENS") {
        let cuts: Vec<usize> = cuts
            .to_string_lossy()
            .split(',')
            .map(|c| c.trim().parse())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("RG_PROBE_TOKENS: {e} (want numbers of tokens such as 32,64,128)"))?;
        let encoder = Heads::shipped_e5()?.configure(E5Encoder::load_default()?)?;
        let texts: Vec<&str> = idx.iter().map(|&i| rows[i].text.as_str()).collect();
        let mut by_cut = Vec::new();
        for &cut in &cuts {
            let started = std::time::Instant::now();
            let mut vectors = Vec::with_capacity(texts.len());
            for chunk in texts.chunks(64) {
                vectors.extend(encoder.embed(chunk, cut)?);
            }
            eprintln!(
                "{cut} tokens: {} texts embedded ({:.0}s)",
                texts.len(),
                started.elapsed().as_secs_f64()
            );
            by_cut.push(vectors);
        }
        let labels: Vec<String> = cuts.iter().map(|c| format!("{c} tokens")).collect();
        return table("tokens read", &labels, &rows, &idx, &sources, &cfg, |k, c| {
            by_cut[c][k].clone()
        });
    }
    let encoder = E5Encoder::load_default()?;
    let dim = encoder.dim();
    let cache = std::env::var_os("RG_PROBE_CACHE").map(std::path::PathBuf::from);
    let want = idx.len() * LAYERS * dim;
    let mut flat: Vec<f32> = Vec::new();
    if let Some(path) = cache.as_ref().filter(|p| p.exists()) {
        let mut bytes = Vec::new();
        std::fs::File::open(path)?.read_to_end(&mut bytes)?;
        if bytes.len() != want * 4 {
            return Err(format!("{}: {} bytes, expected {}", path.display(), bytes.len(), want * 4).into());
        }
        flat = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
    } else {
        let started = std::time::Instant::now();
        for (n, chunk) in idx.chunks(256).enumerate() {
            let texts: Vec<&str> = chunk.iter().map(|&i| rows[i].text.as_str()).collect();
            for per_layer in encoder.embed_by_layer(&texts, E5_ANSWER_TOKENS, LAYERS)? {
                flat.extend(per_layer.into_iter().flatten());
            }
            eprintln!(
                "{}/{} texts ({:.0}s)",
                ((n + 1) * 256).min(idx.len()),
                idx.len(),
                started.elapsed().as_secs_f64()
            );
        }
        if let Some(path) = &cache {
            let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
            for x in &flat {
                f.write_all(&x.to_le_bytes())?;
            }
        }
    }
    let vector = |k: usize, layer: usize| flat[(k * LAYERS + layer) * dim..][..dim].to_vec();
    let labels: Vec<String> = (1..=LAYERS).map(|d| d.to_string()).collect();
    table("depth", &labels, &rows, &idx, &sources, &cfg, vector)
}

/// Prints held-out non-answer F1 per source (and speechmap per language) for each reading
/// `c` of the subset (`vector(k, c)`: text `k`'s vector under reading `c`), the answer head
/// fitted leave-one-source-out as `train` fits it.
fn table(
    title: &str,
    labels: &[String],
    rows: &[Row],
    idx: &[usize],
    sources: &[Source],
    cfg: &FitConfig,
    vector: impl Fn(usize, usize) -> Vec<f32>,
) -> Result<(), Box<dyn std::error::Error>> {
    // Held-out groups: each source, and speechmap by language too (it is three languages).
    let group = |k: usize| -> Vec<String> {
        let r = &rows[idx[k]];
        let name = sources[r.source].name.clone();
        let mut g = vec![name.clone()];
        if name == "speechmap" {
            g.push(format!("speechmap {}", r.lang));
        }
        g
    };
    let mut names: Vec<String> = (0..idx.len()).flat_map(group).collect();
    names.sort();
    names.dedup();
    println!("| {title} | {} |", names.join(" | "));
    println!("|---|{}", "---|".repeat(names.len()));
    let subset_rows: Vec<_> = idx.iter().map(|&i| rows[i].clone()).collect();
    for (layer, label) in labels.iter().enumerate() {
        let mut non_answer = vec![None; idx.len()];
        for s in 0..sources.len() {
            let held: Vec<usize> = (0..idx.len()).filter(|&k| rows[idx[k]].source == s).collect();
            if held.is_empty() {
                continue;
            }
            let vectors: Vec<Option<Vec<f32>>> = (0..idx.len())
                .map(|k| (rows[idx[k]].source != s).then(|| vector(k, layer)))
                .collect();
            let head = final_encoder_head(&subset_rows, &vectors, cfg)?;
            for &k in &held {
                let p = head.forward(&vector(k, layer));
                non_answer[k] = Some(1.0 - p[ResponseLabel::Answer.index()]);
            }
        }
        let f1 = |name: &str| -> String {
            let (mut tp, mut fp, mut fneg) = (0f64, 0f64, 0f64);
            for k in 0..idx.len() {
                let r = &rows[idx[k]];
                if r.window || !group(k).iter().any(|g| g == name) {
                    continue;
                }
                let said = non_answer[k].unwrap_or(0.0) >= 0.5;
                let truth = r.label != ResponseLabel::Answer;
                match (said, truth) {
                    (true, true) => tp += 1.0,
                    (true, false) => fp += 1.0,
                    (false, true) => fneg += 1.0,
                    _ => {}
                }
            }
            if tp == 0.0 {
                return "-".into();
            }
            format!("{:.3}", 2.0 * tp / (2.0 * tp + fp + fneg))
        };
        let cells: Vec<String> = names.iter().map(|n| f1(n)).collect();
        println!("| {label} | {} |", cells.join(" | "));
    }
    Ok(())
}
