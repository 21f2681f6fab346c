//! `train --short-head-only`: the e5 tier's short-reply head
//! ([`crate::classify::short_head`]), trained on the short whole answers of the shipped
//! sources and the team's short-reply files (`models/data/short/`), each source judged by a
//! head trained without it ([`crate::judge::fit::short`]). Nothing else is retrained: the
//! head reads the shipped encoder's vectors, set up as the shipped heads set it up.

use std::collections::HashMap;
use std::path::Path;

use crate::classify::e5::{self, E5Encoder};
use crate::classify::encoder::Heads;
use crate::classify::short_head::ShortHead;
use crate::detect::{Detectors, Observation};
use crate::judge::fit::short::{
    choose_threshold, out_of_source, render, short_indices, train_head, ShortRow,
};
use crate::judge::fit::{embed_cached, read_rows, short_only_sources, Source};
use crate::verdict::VerdictClass;

use super::{today, write_parent, TrainArgs};

/// Trains, reports and writes the short-reply head.
pub(super) fn run(args: &TrainArgs, mut sources: Vec<Source>) -> Result<(), Box<dyn std::error::Error>> {
    sources.extend(short_only_sources(Path::new(env!("CARGO_MANIFEST_DIR"))));
    let mut heads = Heads::shipped_e5()?;
    let encoder: E5Encoder = heads.configure(E5Encoder::load_default()?)?;
    let (split, _) = crate::tokens::TokenSplit::from_flag(Some(crate::tokens::StreamTokens::Words))?;
    let rows = read_rows(&sources, 16, &split)?;
    let short = short_indices(&rows);
    let texts: Vec<&str> = short.iter().map(|&i| rows[i].text.trim()).collect();
    eprintln!(
        "embedding {} short replies of {} sources with {} (cached in {})",
        texts.len(),
        sources.len(),
        e5::MODEL,
        args.embedding_cache.display()
    );
    let vectors = embed_cached(&encoder, &texts, &args.embedding_cache, |_, _| {})?;
    let detectors = Detectors::default();
    let short_rows: Vec<ShortRow> = short
        .iter()
        .zip(vectors)
        .map(|(&i, vector)| {
            let r = &rows[i];
            let verdict = futures::executor::block_on(detectors.judge(&Observation::text(r.text.trim())));
            ShortRow {
                source: r.source,
                lang: r.lang.clone(),
                label: r.label,
                passed: verdict.class() == VerdictClass::Answer,
                vector,
            }
        })
        .collect();
    for (i, s) in sources.iter().enumerate() {
        let n = short_rows.iter().filter(|r| r.source == i).count();
        eprintln!("  {n:>5} short replies  {}", s.name);
    }
    let held_out = out_of_source(&short_rows, sources.len())?;
    let threshold = choose_threshold(&short_rows, &held_out, |_| true);
    let all: Vec<&ShortRow> = short_rows.iter().collect();
    let head = ShortHead {
        head: train_head(&all)?,
        non_answer_from: threshold,
        encoder_sha256: Some(encoder.sha256().to_string()),
    };
    let table = render(&short_rows, &held_out, &sources, threshold);
    let report = format!(
        "# The short-reply head, leave-one-source-out (refusal-guard train --short-head-only, {})\n\n\
         Short replies: whole answers of at most {} words or CJK characters. Counted on the ones the patterns read as \
         answers (the only ones the head judges); each source read by a head trained without it, at the lowest \
         threshold that flags at most {:.0}% of the other sources' pattern-passed short answers.\n\n{table}",
        today(),
        crate::judge::features::PART_TOKENS,
        crate::judge::fit::short::MAX_SHORT_FALSE_FLAGS * 100.0,
    );
    print!("{report}");
    write_parent(&args.short_report)?;
    std::fs::write(&args.short_report, &report)?;
    let mut info = HashMap::new();
    info.insert("trained".to_string(), today());
    info.insert(
        "data".to_string(),
        serde_json::to_string(&sources.iter().map(|s| s.name.as_str()).collect::<Vec<_>>())?,
    );
    write_parent(&args.short_out)?;
    head.save(&args.short_out, info)?;
    eprintln!(
        "wrote {} (threshold {threshold:.2}) and {}",
        args.short_out.display(),
        args.short_report.display()
    );
    Ok(())
}
