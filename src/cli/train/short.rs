//! `train --short-head-only`: the short-reply heads ([`crate::classify::short_head`]), the
//! embedded default's n-gram head and, where multilingual-e5-small is installed, the e5
//! tier's, trained on the short whole answers of the shipped sources and the team's
//! short-reply files (`models/data/short/`), each source judged by heads trained without
//! it ([`crate::judge::fit::short`]). Nothing else is retrained: the e5 head reads the
//! shipped encoder's vectors, set up as the shipped heads set it up.

use std::collections::HashMap;
use std::path::Path;

use crate::classify::e5;
use crate::classify::encoder::Heads;
use crate::classify::ngram::NgramHead;
use crate::classify::short_head::{NgramShortHead, ShortHead};
use crate::classify::train::LinearHead;
use crate::detect::{Detectors, Observation};
use crate::judge::fit::short::{
    choose_asked_from, choose_thresholds, is_short, out_of_source, render, render_cascade, short_indices,
    ShortReader, ShortRow, ShortThresholds, MAX_CASCADE_LOSS, MAX_SHORT_FALSE_FLAGS,
};
use crate::judge::fit::{embed_cached, read_rows, short_only_sources, Source};

use super::{load_encoder, today, write_parent, TrainArgs};

/// Trains, reports and writes the short-reply heads.
pub(super) fn run(args: &TrainArgs, mut sources: Vec<Source>) -> Result<(), Box<dyn std::error::Error>> {
    let short_data = match &args.short_data {
        Some(dir) => dir.clone(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("models/data/short"),
    };
    let short_sources = short_only_sources(&short_data);
    if short_sources.is_empty() {
        return Err(format!(
            "no short-reply file (responses-*.jsonl) in {}",
            short_data.display()
        )
        .into());
    }
    sources.extend(short_sources);
    // Set up as the shipped heads set it up: the vectors the e5 head reads at run time.
    let encoder = load_encoder(&args.encoder, "training the n-gram short-reply head only")?
        .map(|e| Heads::shipped_e5()?.configure(e))
        .transpose()?;
    let (split, _) = crate::tokens::TokenSplit::from_flag(Some(crate::tokens::StreamTokens::Words))?;
    let rows = read_rows(&sources, 16, &split)?;
    let short = short_indices(&rows, |source| sources[source].is_team());
    let texts: Vec<&str> = short.iter().map(|&i| rows[i].text.trim()).collect();
    let vectors: Vec<Option<Vec<f32>>> = match &encoder {
        Some(enc) => {
            eprintln!(
                "embedding {} short replies of {} sources with {} (cached in {})",
                texts.len(),
                sources.len(),
                e5::MODEL,
                args.embedding_cache.display()
            );
            embed_cached(enc, &texts, &args.embedding_cache, |_, _| {})?
                .into_iter()
                .map(Some)
                .collect()
        }
        None => vec![None; texts.len()],
    };
    // Which replies the patterns let pass: the patterns' verdict alone, the rule combiner's,
    // read as `judge::decide` reads it before a short-reply head reads a reply.
    let detectors = Detectors::default().threshold(0.5);
    let short_rows: Vec<ShortRow> = short
        .iter()
        .zip(vectors)
        .map(|(&i, vector)| {
            let r = &rows[i];
            let text = r.text.trim().to_string();
            let verdict = futures::executor::block_on(detectors.judge(&Observation::text(&text)));
            ShortRow {
                source: r.source,
                lang: r.lang.clone(),
                label: r.label,
                passed: crate::judge::short_reply_passes(&verdict, &text),
                text,
                vector,
            }
        })
        .collect();
    for (i, s) in sources.iter().enumerate() {
        let n = short_rows.iter().filter(|r| r.source == i).count();
        eprintln!("  {n:>5} short replies  {}", s.name);
    }
    let mut info = HashMap::new();
    info.insert("trained".to_string(), today());
    info.insert(
        "data".to_string(),
        serde_json::to_string(&sources.iter().map(|s| s.name.as_str()).collect::<Vec<_>>())?,
    );
    let mut report = format!(
        "# The short-reply heads, leave-one-source-out (refusal-guard train --short-head-only, {})\n\n\
         Short replies: whole answers of at most {} words or CJK characters (one line or less: at most {}), and \
         the team's paragraphs of up to {} (read at the review's bar, `judge::SHORT_REPLY_VETO_BELOW`: found is a \
         non-answer whose flag would stand, flagged an answer whose flag would not be overruled). Counted on the ones \
         the patterns read as answers (the only ones the heads judge); each source read by a head trained without it, at the lowest \
         threshold that flags at most {:.0}% of the other sources' pattern-passed short answers.\n",
        today(),
        crate::judge::SHORT_REPLY_TOKENS,
        crate::judge::features::PART_TOKENS,
        crate::judge::PARAGRAPH_REPLY_TOKENS,
        MAX_SHORT_FALSE_FLAGS * 100.0,
    );

    // The n-gram head reads no paragraph at run time (only an escalation reader's head
    // does: judge::PARAGRAPH_REPLY_TOKENS), and trained on them it read replies of a few
    // sentences differently, so it learns from the shorter rows only.
    let up_to_sentences: Vec<ShortRow> = short_rows.iter().filter(|r| is_short(&r.text)).cloned().collect();
    let (head, threshold, table, ngram_held_out) = fit::<NgramHead>(&up_to_sentences, &sources)?;
    let out = &args.short_ngram_out;
    section(
        &mut report,
        "The embedded default's n-gram head",
        out,
        threshold,
        &table,
    )?;
    NgramShortHead {
        head,
        thresholds: threshold,
    }
    .save(out, info.clone())?;
    if let Some(enc) = &encoder {
        let (head, threshold, table, e5_held_out) = fit::<LinearHead>(&short_rows, &sources)?;
        let out = &args.short_out;
        section(&mut report, "The e5 tier's head", out, threshold, &table)?;
        // The short-reply cascade: the n-gram head's out-of-source readings beside e5's, on
        // the same rows (the n-gram head reads no paragraph).
        let mut ngram_readings = ngram_held_out.into_iter();
        let ngram_held_out: Vec<Option<f32>> = short_rows
            .iter()
            .map(|r| {
                if is_short(&r.text) {
                    ngram_readings.next().flatten()
                } else {
                    None
                }
            })
            .collect();
        let asked_from = choose_asked_from(&short_rows, &ngram_held_out, &e5_held_out);
        report.push_str(&format!(
            "\n## The short-reply cascade: the n-gram head first, e5's from an n-gram reading of {asked_from}\n\n\
             Whether a pattern-clean reply of a few sentences or less is a non-answer is asked of e5's head (an \
             encoder pass) only where the n-gram head's non-answer reading is at least the value shipped for the \
             reply's script (`ShortHead::asked_from`: for each script, the highest tried that loses at most {:.0}% \
             of the non-answers e5's head finds alone there). Out of source: each head trained without the \
             reply's source, e5's read at the thresholds chosen without it. The review of a combiner's non-answer \
             always asks e5's head; these counts leave the combiner out, so the loss is an upper bound.\n\n{}",
            MAX_CASCADE_LOSS * 100.0,
            render_cascade(&short_rows, &ngram_held_out, &e5_held_out, asked_from),
        ));
        eprintln!("the short-reply cascade asks e5's head from an n-gram reading of {asked_from}");
        ShortHead {
            head,
            thresholds: threshold,
            encoder_sha256: Some(enc.sha256().to_string()),
            asked_from: Some(asked_from),
        }
        .save(out, info)?;
    }
    print!("{report}");
    write_parent(&args.short_report)?;
    std::fs::write(&args.short_report, &report)?;
    eprintln!("wrote {}", args.short_report.display());
    Ok(())
}

/// What [`fit`] gives: the head trained on every row, its thresholds, the
/// leave-one-source-out table, and every row's out-of-source reading.
type Fitted<R> = (R, ShortThresholds, String, Vec<Option<f32>>);

/// A head of kind `R` on every row, its thresholds from every row's out-of-source reading,
/// the leave-one-source-out table, and those readings.
fn fit<R: ShortReader>(
    rows: &[ShortRow],
    sources: &[Source],
) -> Result<Fitted<R>, Box<dyn std::error::Error>> {
    let held_out = out_of_source::<R>(rows, sources.len())?;
    let threshold = choose_thresholds(rows, &held_out, |_| true);
    let all: Vec<&ShortRow> = rows.iter().collect();
    let table = render(rows, &held_out, sources, threshold);
    Ok((R::fit(&all)?, threshold, table, held_out))
}

/// Adds a head's section to the report, makes its file's folder and says where it goes.
fn section(
    report: &mut String,
    title: &str,
    out: &Path,
    threshold: ShortThresholds,
    table: &str,
) -> std::io::Result<()> {
    report.push_str(&format!("\n## {title} ({})\n\n{table}", out.display()));
    write_parent(out)?;
    eprintln!(
        "writing {} (thresholds, one line / a few sentences: {threshold})",
        out.display()
    );
    Ok(())
}
