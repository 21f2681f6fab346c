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
//!
//! With `RG_PROBE_TUNE=12` it asks whether fine-tuning a layer for the answer question
//! (`judge::tune`, as the prompt layer is tuned) reads held-out sources better than a head
//! over the frozen layer: for each source nobody here wrote (gptfuzz, jade, speechmap) it
//! tunes that layer and a head on every other source's rows of the subset, and prints the
//! same F1 for the frozen layer with `train`'s head, the tuned layer with its own head, and
//! the tuned layer with `train`'s head refitted over it. `RG_PROBE_TUNE_EPOCHS` (default 2)
//! sets the passes and `RG_PROBE_TUNE_LR` the layer's learning rate (default 5e-5);
//! `RG_PROBE_STATES=path` keeps the trunk states for a rerun.
//!
//! With `RG_PROBE_PAIR=1` it asks whether the answer head reads better with the request
//! beside the answer: on the rows that have a request it embeds both through the shipped
//! set-up and fits the head over the answer alone, the answer with its product with the
//! request, the answer with the request and the product, and the answer with their cosine.
//! `RG_PROBE_PAIR_CACHE=path` keeps the vectors (raw f32, rows × 2 × 384).
//!
//! With `RG_PROBE_SEGMENTS=1` it asks whether the head reads better when the encoder also
//! reads the answer in pieces: mean pooling over a long answer drowns one refusing voice
//! beside a complying one (a jailbroken reply in two personas) and one complying paragraph in
//! a lecture. Each answer is cut at sentence ends into pieces of at most
//! [`SEGMENT_BYTES`] bytes (the first and last few when there are more than
//! [`SEGMENTS_KEPT`]), each piece embedded as the shipped set-up embeds an answer, and the
//! head fitted over the whole answer's vector alone, beside the pieces' element-wise
//! maximum, beside their maximum and minimum, and beside their mean.
//! `RG_PROBE_SEGMENTS_CACHE=path` keeps the vectors.
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
    let rows = read_rows(
        &sources,
        cfg.window_tokens,
        &refusal_guard::tokens::TokenSplit::best_installed().0,
    )?;
    // The same subset as `train --encoder-cap 700`.
    let keep = answer_subset(&rows, 700);
    let idx: Vec<usize> = (0..rows.len()).filter(|&i| keep[i]).collect();
    if let Some(depth) = std::env::var_os("RG_PROBE_TUNE") {
        let depth: usize = depth
            .to_string_lossy()
            .trim()
            .parse()
            .map_err(|e| format!("RG_PROBE_TUNE: {e} (want the layer to tune, 1-12)"))?;
        return tuned(depth, &rows, &idx, &sources, &cfg);
    }
    if std::env::var_os("RG_PROBE_PAIR").is_some() {
        return paired(&rows, &idx, &sources, &cfg);
    }
    if std::env::var_os("RG_PROBE_SEGMENTS").is_some() {
        return segmented(&rows, &idx, &sources, &cfg);
    }
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
        flat = read_f32s(path, want)?;
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
            write_f32s(path, &flat)?;
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
    let group = |k: usize| groups_of(&rows[idx[k]], sources);
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
            f1_cell(
                (0..idx.len())
                    .filter(|&k| !rows[idx[k]].window && group(k).iter().any(|g| g == name))
                    .map(|k| (non_answer[k].unwrap_or(0.0), rows[idx[k]].label)),
            )
        };
        let cells: Vec<String> = names.iter().map(|n| f1(n)).collect();
        println!("| {label} | {} |", cells.join(" | "));
    }
    Ok(())
}

/// The `RG_PROBE_TUNE` question: a tuned answer layer against a head over the frozen one,
/// on the sources nobody here wrote, each held out in turn.
fn tuned(
    depth: usize,
    rows: &[Row],
    idx: &[usize],
    sources: &[Source],
    cfg: &FitConfig,
) -> Result<(), Box<dyn std::error::Error>> {
    use refusal_guard::judge::tune::{trunk_states, tune, TrainingSet, TuneConfig};
    if !(1..=LAYERS).contains(&depth) {
        return Err(format!("RG_PROBE_TUNE={depth}: the layer to tune is 1-{LAYERS}").into());
    }
    let epochs: usize = match std::env::var("RG_PROBE_TUNE_EPOCHS") {
        Ok(e) => e
            .trim()
            .parse()
            .map_err(|e| format!("RG_PROBE_TUNE_EPOCHS: {e}"))?,
        Err(_) => 2,
    };
    let layer_lr: f64 = match std::env::var("RG_PROBE_TUNE_LR") {
        Ok(e) => e.trim().parse().map_err(|e| format!("RG_PROBE_TUNE_LR: {e}"))?,
        Err(_) => TuneConfig::default().layer_lr,
    };
    let encoder = Heads::shipped_e5()?.configure(E5Encoder::load_default()?)?;
    let dim = encoder.dim();
    let texts: Vec<&str> = idx.iter().map(|&i| rows[i].text.as_str()).collect();
    let states = match std::env::var_os("RG_PROBE_STATES").map(std::path::PathBuf::from) {
        Some(path) if path.exists() => read_states(&path, dim, texts.len())?,
        cache => {
            let started = std::time::Instant::now();
            let mut last = std::time::Instant::now();
            let states = trunk_states(&encoder, &texts, E5_ANSWER_TOKENS, depth - 1, |d, n| {
                if last.elapsed().as_secs() >= 60 || d == n {
                    eprintln!("trunk states {d}/{n} ({:.0}s)", started.elapsed().as_secs_f64());
                    last = std::time::Instant::now();
                }
            })?;
            if let Some(path) = cache {
                write_states(&path, &states)?;
            }
            states
        }
    };
    let subset_rows: Vec<Row> = idx.iter().map(|&i| rows[i].clone()).collect();
    let labels: Vec<usize> = subset_rows.iter().map(|r| r.label.index()).collect();
    let n_classes = ResponseLabel::ALL.len();
    let held_out = ["gptfuzz", "jade", "speechmap"];
    // Per reading: the held-out non-answer probability of each subset row.
    let readings = ["frozen + train's head", "tuned, own head", "tuned + train's head"];
    let mut non_answer = vec![vec![None::<f32>; idx.len()]; readings.len()];
    for name in held_out {
        let Some(s) = sources.iter().position(|src| src.name == name) else {
            return Err(format!("no source named {name}").into());
        };
        let train: Vec<usize> = (0..idx.len()).filter(|&k| subset_rows[k].source != s).collect();
        let test: Vec<usize> = (0..idx.len()).filter(|&k| subset_rows[k].source == s).collect();
        // Classes weighted by frequency^-0.5, as train's head weights them.
        let mut counts = vec![0f32; n_classes];
        for &k in &train {
            counts[labels[k]] += 1.0;
        }
        let raw: Vec<f32> = counts
            .iter()
            .map(|&c| if c > 0.0 { c.powf(-0.5) } else { 0.0 })
            .collect();
        let mean = train.iter().map(|&k| raw[labels[k]]).sum::<f32>() / train.len() as f32;
        let set = TrainingSet {
            states: train.iter().map(|&k| &states[k]).collect(),
            labels: train.iter().map(|&k| labels[k]).collect(),
            weights: train.iter().map(|&k| raw[labels[k]] / mean).collect(),
            classes: n_classes,
        };
        let all: Vec<&candle_core::Tensor> = states.iter().collect();
        let refit = |vectors: &[Vec<f32>]| {
            let vs: Vec<Option<Vec<f32>>> = (0..idx.len())
                .map(|k| (subset_rows[k].source != s).then(|| vectors[k].clone()))
                .collect();
            final_encoder_head(&subset_rows, &vs, cfg)
        };
        let answer = ResponseLabel::Answer.index();
        for (reading, epochs) in [(0usize, 0usize), (1, epochs)] {
            let started = std::time::Instant::now();
            let mut last = std::time::Instant::now();
            let tc = TuneConfig {
                epochs,
                layer_lr,
                ..TuneConfig::default()
            };
            let top = tune(
                encoder.config(),
                encoder.weights_path(),
                depth - 1,
                &set,
                &tc,
                |k, total, loss| {
                    if last.elapsed().as_secs() >= 60 || k == total {
                        eprintln!(
                            "without {name}: step {k}/{total}, loss {loss:.3} ({:.0}s)",
                            started.elapsed().as_secs_f64()
                        );
                        last = std::time::Instant::now();
                    }
                },
            )?;
            let vectors = top.vectors(&all)?;
            let head = refit(&vectors)?;
            let refit_reading = if reading == 0 { 0 } else { 2 };
            for &k in &test {
                non_answer[refit_reading][k] = Some(1.0 - head.forward(&vectors[k])[answer]);
            }
            if reading == 1 {
                let own = top.head(&refusal_guard::classify::data::RESPONSE_LABELS)?;
                for &k in &test {
                    non_answer[1][k] = Some(1.0 - own.forward(&vectors[k])[answer]);
                }
            }
        }
    }
    let groups = [
        "gptfuzz",
        "jade",
        "speechmap",
        "speechmap en",
        "speechmap fi",
        "speechmap zh",
    ];
    println!(
        "| layer {depth}, {epochs} passes, layer lr {layer_lr} | {} |",
        groups.join(" | ")
    );
    println!("|---|{}", "---|".repeat(groups.len()));
    for (reading, label) in readings.iter().enumerate() {
        let cells: Vec<String> = groups
            .iter()
            .map(|g| {
                f1_cell((0..idx.len()).filter_map(|k| {
                    let r = &subset_rows[k];
                    let in_group = groups_of(r, sources).iter().any(|name| name == g);
                    let p = non_answer[reading][k].filter(|_| in_group && !r.window)?;
                    Some((p, r.label))
                }))
            })
            .collect();
        println!("| {label} | {} |", cells.join(" | "));
    }
    Ok(())
}

/// The `RG_PROBE_PAIR` question: does the answer head read held-out sources better when it
/// also sees the request (its e5 vector beside the answer's, and their product), than from
/// the answer alone? Rows without a request (the template examples) are left out of both.
fn paired(
    rows: &[Row],
    idx: &[usize],
    sources: &[Source],
    cfg: &FitConfig,
) -> Result<(), Box<dyn std::error::Error>> {
    let idx: Vec<usize> = idx
        .iter()
        .copied()
        .filter(|&i| rows[i].prompt.is_some())
        .collect();
    let encoder = Heads::shipped_e5()?.configure(E5Encoder::load_default()?)?;
    let dim = encoder.dim();
    let cache = std::env::var_os("RG_PROBE_PAIR_CACHE").map(std::path::PathBuf::from);
    let want = idx.len() * 2 * dim;
    let mut flat: Vec<f32> = Vec::new();
    if let Some(path) = cache.as_ref().filter(|p| p.exists()) {
        flat = read_f32s(path, want)?;
    } else {
        let started = std::time::Instant::now();
        // Prompts repeat (several models answer one request): embed each once.
        let mut prompt_vec: std::collections::HashMap<&str, Vec<f32>> = Default::default();
        for (n, chunk) in idx.chunks(256).enumerate() {
            let texts: Vec<&str> = chunk.iter().map(|&i| rows[i].text.as_str()).collect();
            let answers = encoder.embed(&texts, E5_ANSWER_TOKENS)?;
            let mut new: Vec<&str> = chunk
                .iter()
                .map(|&i| rows[i].prompt.as_deref().unwrap_or(""))
                .filter(|p| !prompt_vec.contains_key(p))
                .collect();
            new.sort();
            new.dedup();
            for (p, v) in new.iter().zip(encoder.embed(&new, E5_ANSWER_TOKENS)?) {
                prompt_vec.insert(p, v);
            }
            for (&i, a) in chunk.iter().zip(answers) {
                flat.extend(a);
                flat.extend(&prompt_vec[rows[i].prompt.as_deref().unwrap_or("")]);
            }
            eprintln!(
                "{}/{} texts, {} prompts ({:.0}s)",
                ((n + 1) * 256).min(idx.len()),
                idx.len(),
                prompt_vec.len(),
                started.elapsed().as_secs_f64()
            );
        }
        if let Some(path) = &cache {
            write_f32s(path, &flat)?;
        }
    }
    let scale = (dim as f32).sqrt();
    let vector = |k: usize, reading: usize| -> Vec<f32> {
        let a = &flat[k * 2 * dim..][..dim];
        let p = &flat[k * 2 * dim + dim..][..dim];
        let product = a.iter().zip(p).map(|(x, y)| x * y * scale);
        let cosine: f32 = a.iter().zip(p).map(|(x, y)| x * y).sum();
        match reading {
            0 => a.to_vec(),
            1 => a.iter().copied().chain(product).collect(),
            2 => a.iter().chain(p).copied().chain(product).collect(),
            _ => a.iter().copied().chain([cosine]).collect(),
        }
    };
    let labels: Vec<String> = [
        "answer alone",
        "answer, answer x request",
        "answer, request, product",
        "answer, cosine",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    table("reading", &labels, rows, &idx, sources, cfg, vector)
}

/// The longest piece [`segments`] makes, in bytes (about 50 to 60 tokens in English or
/// Chinese).
const SEGMENT_BYTES: usize = 240;
/// The most pieces of one answer read: the first six and the last two.
const SEGMENTS_KEPT: usize = 8;
/// Tokens of each piece the encoder reads.
const SEGMENT_TOKENS: usize = 64;

/// `text` cut after sentence ends and line breaks into pieces of at most `SEGMENT_BYTES`
/// (a longer sentence is a piece of its own), the first and last few when there are more
/// than `SEGMENTS_KEPT`.
fn segments(text: &str) -> Vec<&str> {
    let mut sentences = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if matches!(c, '.' | '!' | '?' | '\n' | '。' | '！' | '？' | '；') {
            let end = i + c.len_utf8();
            sentences.push(&text[start..end]);
            start = end;
        }
    }
    sentences.push(&text[start..]);
    let mut pieces: Vec<&str> = Vec::new();
    let mut from: Option<usize> = None;
    let mut to = 0;
    for s in sentences {
        let s_start = s.as_ptr() as usize - text.as_ptr() as usize;
        let s_end = s_start + s.len();
        match from {
            Some(f) if s_end - f <= SEGMENT_BYTES => to = s_end,
            Some(f) => {
                pieces.push(&text[f..to]);
                from = Some(s_start);
                to = s_end;
            }
            None => {
                from = Some(s_start);
                to = s_end;
            }
        }
    }
    if let Some(f) = from {
        pieces.push(&text[f..to]);
    }
    pieces.retain(|p| !p.trim().is_empty());
    if pieces.len() > SEGMENTS_KEPT {
        let tail = pieces.split_off(pieces.len() - 2);
        pieces.truncate(SEGMENTS_KEPT - 2);
        pieces.extend(tail);
    }
    if pieces.is_empty() {
        pieces.push(text);
    }
    pieces
}

/// The `RG_PROBE_SEGMENTS` question: the whole answer's vector beside its pieces' vectors.
fn segmented(
    rows: &[Row],
    idx: &[usize],
    sources: &[Source],
    cfg: &FitConfig,
) -> Result<(), Box<dyn std::error::Error>> {
    let encoder = Heads::shipped_e5()?.configure(E5Encoder::load_default()?)?;
    let dim = encoder.dim();
    let cache = std::env::var_os("RG_PROBE_SEGMENTS_CACHE").map(std::path::PathBuf::from);
    // Per text: its whole vector, then its pieces' vectors.
    let mut per_text: Vec<Vec<Vec<f32>>> = Vec::with_capacity(idx.len());
    if let Some(path) = cache.as_ref().filter(|p| p.exists()) {
        let mut bytes = Vec::new();
        std::fs::File::open(path)?.read_to_end(&mut bytes)?;
        let mut at = 0;
        while at + 4 <= bytes.len() {
            let n = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
            at += 4;
            let mut vs = Vec::with_capacity(n);
            for _ in 0..n {
                let v: Vec<f32> = bytes[at..at + dim * 4]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                at += dim * 4;
                vs.push(v);
            }
            per_text.push(vs);
        }
        if per_text.len() != idx.len() {
            return Err(format!(
                "{}: {} texts, expected {}",
                path.display(),
                per_text.len(),
                idx.len()
            )
            .into());
        }
    } else {
        let started = std::time::Instant::now();
        for (n, chunk) in idx.chunks(64).enumerate() {
            let texts: Vec<&str> = chunk.iter().map(|&i| rows[i].text.as_str()).collect();
            let wholes = encoder.embed(&texts, E5_ANSWER_TOKENS)?;
            let pieces: Vec<Vec<&str>> = texts.iter().map(|t| segments(t)).collect();
            let flat: Vec<&str> = pieces.iter().flatten().copied().collect();
            let mut piece_vecs = encoder.embed(&flat, SEGMENT_TOKENS)?.into_iter();
            for (whole, p) in wholes.into_iter().zip(&pieces) {
                let mut vs = vec![whole];
                vs.extend(piece_vecs.by_ref().take(p.len()));
                per_text.push(vs);
            }
            if n % 16 == 15 {
                eprintln!(
                    "{}/{} texts ({:.0}s)",
                    ((n + 1) * 64).min(idx.len()),
                    idx.len(),
                    started.elapsed().as_secs_f64()
                );
            }
        }
        if let Some(path) = &cache {
            let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
            for vs in &per_text {
                f.write_all(&(vs.len() as u32).to_le_bytes())?;
                for x in vs.iter().flatten() {
                    f.write_all(&x.to_le_bytes())?;
                }
            }
        }
    }
    let pieces_n: usize = per_text.iter().map(|v| v.len() - 1).sum();
    eprintln!("{} texts, {pieces_n} pieces", per_text.len());
    let fold = |vs: &[Vec<f32>], f: fn(f32, f32) -> f32| -> Vec<f32> {
        let mut out = vs[0].clone();
        for v in &vs[1..] {
            for (o, x) in out.iter_mut().zip(v) {
                *o = f(*o, *x);
            }
        }
        out
    };
    let vector = |k: usize, reading: usize| -> Vec<f32> {
        let whole = &per_text[k][0];
        let pieces = &per_text[k][1..];
        let max = fold(pieces, f32::max);
        let min = fold(pieces, f32::min);
        match reading {
            0 => whole.clone(),
            1 => whole.iter().chain(&max).copied().collect(),
            2 => whole.iter().chain(&max).chain(&min).copied().collect(),
            _ => {
                let n = pieces.len() as f32;
                let mean = fold(pieces, |a, b| a + b).into_iter().map(|x| x / n);
                whole.iter().copied().chain(mean).collect()
            }
        }
    };
    let labels: Vec<String> = [
        "whole answer",
        "whole, pieces' max",
        "whole, pieces' max and min",
        "whole, pieces' mean",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    table("reading", &labels, rows, idx, sources, cfg, vector)
}

/// A vector cache: `want` raw little-endian f32s, or an error naming the file when it holds
/// another number (a cache from another subset or model).
fn read_f32s(path: &std::path::Path, want: usize) -> Result<Vec<f32>, Box<dyn std::error::Error>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut bytes)?;
    if bytes.len() != want * 4 {
        return Err(format!("{}: {} bytes, expected {}", path.display(), bytes.len(), want * 4).into());
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

fn write_f32s(path: &std::path::Path, values: &[f32]) -> Result<(), Box<dyn std::error::Error>> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for x in values {
        f.write_all(&x.to_le_bytes())?;
    }
    Ok(())
}

/// Trunk states as raw little-endian records: a u32 token count, then that many rows of f32.
fn write_states(
    path: &std::path::Path,
    states: &[candle_core::Tensor],
) -> Result<(), Box<dyn std::error::Error>> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for s in states {
        let rows: Vec<Vec<f32>> = s.to_vec2()?;
        f.write_all(&(rows.len() as u32).to_le_bytes())?;
        for x in rows.iter().flatten() {
            f.write_all(&x.to_le_bytes())?;
        }
    }
    Ok(())
}

fn read_states(
    path: &std::path::Path,
    dim: usize,
    expected: usize,
) -> Result<Vec<candle_core::Tensor>, Box<dyn std::error::Error>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut bytes)?;
    let mut at = 0;
    let mut out = Vec::with_capacity(expected);
    while at + 4 <= bytes.len() {
        let n = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        at += 4;
        let end = at + n * dim * 4;
        if end > bytes.len() {
            return Err(format!("{}: cut short", path.display()).into());
        }
        let xs: Vec<f32> = bytes[at..end]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        out.push(candle_core::Tensor::from_vec(
            xs,
            (n, dim),
            &candle_core::Device::Cpu,
        )?);
        at = end;
    }
    if out.len() != expected {
        return Err(format!("{}: {} texts, expected {expected}", path.display(), out.len()).into());
    }
    Ok(out)
}

/// The held-out groups a row is scored in: its source, and for speechmap (three languages)
/// its source and language too.
fn groups_of(row: &Row, sources: &[Source]) -> Vec<String> {
    let name = sources[row.source].name.clone();
    let mut groups = vec![name.clone()];
    if name == "speechmap" {
        groups.push(format!("speechmap {}", row.lang));
    }
    groups
}

/// Non-answer F1 at 0.5 over (non-answer probability, true label) pairs, as a table cell
/// ("-" when nothing was found).
fn f1_cell(pairs: impl Iterator<Item = (f32, ResponseLabel)>) -> String {
    let (mut tp, mut fp, mut fneg) = (0f64, 0f64, 0f64);
    for (p, label) in pairs {
        match (p >= 0.5, label != ResponseLabel::Answer) {
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
}
