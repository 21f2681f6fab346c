//! The answer side of `train`: the n-gram model's response head, e5's answer head (and
//! layer, when tuned) and the combiner, each source judged by models trained without it
//! ([`crate::judge::fit`]). Writes the combiner and the report's answer sections (a new
//! report: the prompt side appends to it).

use crate::classify::data::RESPONSE_LABELS;
use crate::classify::e5;
use crate::classify::ResponseJudgement;
use crate::judge::fit::{
    answer_subset, band_sweep, combiner_out_of_source, escalation_rate, final_encoder_head, final_ngram,
    nested_thresholds, out_of_source, render, render_band_sweep, render_window_escalation, score,
    train_combiner, window_escalation, window_escalation_sweep, window_recall, write_stack, FitConfig, Row,
    Source, Thresholds, BAND_F1_SLACK, BAND_SWEEP_CAPS, MAX_WINDOW_FALSE_STOPS,
};
use crate::judge::tune::{answers_tuned, TuneConfig};

use super::{today, write_parent, EarlyFile, Embedder, TrainArgs, Trained};

/// Trains the answer side on `rows` (not empty) of `sources`: prints and writes the
/// leave-one-source-out report (`--report`), writes the combiner (`--combiner-out`) and the
/// stacked rows (`--stack-out`), and returns the heads to ship.
pub(super) fn train(
    args: &TrainArgs,
    cfg: &FitConfig,
    sources: &[Source],
    rows: &[Row],
    embedder: &Embedder,
    stack_out: Option<&mut EarlyFile>,
) -> Result<Trained, Box<dyn std::error::Error>> {
    let mut response_vectors = None;
    let mut answer_layer = None;
    eprintln!("leave-one-source-out over {} sources", sources.len());
    let keep = answer_subset(rows, args.encoder_cap);
    let tuning = embedder.encoder.filter(|_| args.answer_tune_epochs > 0);
    // A tuned layer reads its held-out rows itself; the frozen vectors are then not needed.
    let vectors = match tuning {
        Some(_) => None,
        None => embedder.embed(
            rows.iter().map(|r| r.text.as_str()).collect(),
            keep.clone(),
            "answers",
        )?,
    };
    let mut predictions = out_of_source(rows, sources.len(), vectors.as_deref(), cfg, |m| {
        eprintln!("  {m}")
    })?;
    if let Some(vs) = &vectors {
        response_vectors = Some(final_encoder_head(rows, vs, cfg)?);
    }
    if let Some(enc) = tuning {
        let source_fold = answer_folds(sources);
        let fold: Vec<usize> = rows.iter().map(|r| source_fold[r.source]).collect();
        eprintln!(
            "fine-tuning {}'s layer {} for the answer question: {} held-out folds, then every source",
            e5::MODEL,
            args.answer_depth,
            source_fold
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        );
        let tc = TuneConfig {
            epochs: args.answer_tune_epochs,
            seed: args.seed,
            ..TuneConfig::default()
        };
        let (held_out, tuned) = answers_tuned(enc, rows, &keep, &fold, args.answer_depth, &tc, |m| {
            eprintln!("  {m}")
        })?;
        let labels: Vec<String> = RESPONSE_LABELS.iter().map(|s| s.to_string()).collect();
        predictions.encoder = Some(
            held_out
                .into_iter()
                .map(|p| p.map(|p| ResponseJudgement::from_labels(&labels, p)))
                .collect(),
        );
        response_vectors = Some(tuned.head(&RESPONSE_LABELS)?);
        answer_layer = Some(tuned.layer_tensors()?);
    }
    if let Some(file) = stack_out {
        write_stack(&mut file.out, rows, sources, &predictions).map_err(|e| file.error(e))?;
        eprintln!(
            "wrote the combiner's {} training rows to {}",
            rows.len(),
            file.path.display()
        );
    }
    let decisions = combiner_out_of_source(rows, sources.len(), &predictions, cfg)?;
    // The non-answer threshold is part of the fit: each held-out source is scored at
    // the threshold chosen on the other sources; the shipped one is chosen on all.
    let nested = nested_thresholds(rows, sources.len(), &decisions, cfg.escalation_cap);
    let on = &cfg.thresholds_on;
    let shipped_threshold = Thresholds::choose(
        rows,
        &decisions,
        |s| on.is_empty() || on.contains(&s),
        cfg.escalation_cap,
    );
    let mut table = render(
        &score(rows, sources, &decisions, &nested),
        &window_recall(rows, sources, &decisions, &nested),
        predictions.encoder.is_some(),
        (cfg.window_tokens, cfg.window_unit),
    );
    table.push_str(&format!(
        "\nNon-answer thresholds (probability of the non-answer classes together): whole answer {} / \
         whole answer with the encoder's reading {} (each the best mean F0.5 over sources: precision weighted) / stream window {} \
         (the lowest that stops at most {:.0}% of the median source's answer windows), chosen on {} \
         out-of-source predictions and shipped in the combiner. Each row above is scored at the \
         thresholds chosen without its source: {}. The encoder is asked when the embedded default's \
         non-answer probability is in [{}, {}) (of the bands that send at most {} of the whole answers to the \
         encoder, the one that asks it least while keeping the cascade's mean F0.5 within {} of the best of \
         them); it sends {:.3} of the whole answers of all sources, {:.3} of those of the sources nobody here \
         wrote. Without the cap (the tier `e5:wide`) the band is [{}, {}), which sends {:.3} and {:.3}.\n",
        shipped_threshold.whole,
        shipped_threshold.escalated,
        shipped_threshold.window,
        MAX_WINDOW_FALSE_STOPS * 100.0,
        if on.is_empty() {
            "every source's".to_string()
        } else {
            let names: Vec<&str> = on.iter().map(|&i| sources[i].name.as_str()).collect();
            format!("the {} (`--thresholds-on`)", names.join(", "))
        },
        sources
            .iter()
            .zip(&nested)
            .map(|(s, t)| format!(
                "{} {} / {} / {} [{}, {})",
                s.name, t.whole, t.escalated, t.window, t.band.from, t.band.to
            ))
            .collect::<Vec<_>>()
            .join(", "),
        shipped_threshold.band.from,
        shipped_threshold.band.to,
        cfg.escalation_cap,
        BAND_F1_SLACK,
        escalation_rate(rows, &decisions, &shipped_threshold.band, |_| true),
        escalation_rate(rows, &decisions, &shipped_threshold.band, |s| !sources[s].is_team()),
        shipped_threshold.wide_band.from,
        shipped_threshold.wide_band.to,
        escalation_rate(rows, &decisions, &shipped_threshold.wide_band, |_| true),
        escalation_rate(rows, &decisions, &shipped_threshold.wide_band, |s| !sources[s].is_team()),
    ));
    if predictions.encoder.is_some() {
        table.push_str(
            "\n## What the escalation band costs and buys\n\n\
             Held-out non-answer F1 of the cascade (whole answers, encoder subset) when each source's band is \
             chosen without it by the shipped rule under each cap on the share of the other sources' whole \
             answers escalated (`--escalation-cap`), and the share of the held-out sources' whole answers (all of \
             them, not only the subset) escalated, pooled. The traffic's rate and cost are \
             `benches/cascade_cost.rs`'s.\n\n",
        );
        let sweep = band_sweep(rows, sources.len(), &decisions, &nested, &BAND_SWEEP_CAPS);
        table.push_str(&render_band_sweep(&sweep, sources));
        // Windows are never escalated today; this measures what asking would do.
        let (windows, chosen) = window_escalation(rows, sources, &decisions, &nested);
        table.push_str(
            "\n## Stream windows with the encoder asked when unsure (measured; the guard does not ask yet)\n\n\
             Each held-out source's explicit refusals and answers, as stream windows (the table above's), on the encoder subset: \
             judged by the embedded default alone at the window threshold (what the guard does), and with the \
             encoder asked where the embedded default's non-answer probability is in the band.\n\n",
        );
        let sweep = window_escalation_sweep(rows, &decisions, &nested);
        table.push_str(&render_window_escalation(&windows, sources, &chosen, &sweep));
    }
    println!("{table}");
    let mut combiner = train_combiner(rows, &predictions, |_| true, cfg)?;
    combiner.set_thresholds(shipped_threshold);
    combiner.info.insert("trained".into(), today());
    combiner
        .info
        .insert("fit_config".into(), serde_json::to_string(cfg)?);
    combiner.info.insert(
        "sources".into(),
        serde_json::to_string(&sources.iter().map(|s| &s.name).collect::<Vec<_>>())?,
    );
    write_parent(&args.combiner_out)?;
    combiner.save(&args.combiner_out)?;
    write_parent(&args.report)?;
    std::fs::write(
        &args.report,
        format!(
            "# Leave-one-source-out (refusal-guard train, {})\n\nNon-answer (refusal, evasion, inability) vs answer; \
             each source judged by models trained on the other sources only.\n\n{table}",
            today()
        ),
    )?;
    eprintln!("training the shipped answer head on {} rows", rows.len());
    Ok(Trained {
        ngram: Some(final_ngram(rows, cfg)?),
        encoder_head: response_vectors,
        layer: answer_layer,
        prompt_languages: None,
    })
}

/// The fold a source is held out in when e5's answer layer is tuned: its own, except the
/// team's files (`team:` sources), which are held out together, so that each tuning costs
/// minutes and there are five, not fourteen.
fn answer_folds(sources: &[Source]) -> Vec<usize> {
    let team = sources.iter().position(Source::is_team);
    sources
        .iter()
        .enumerate()
        .map(|(i, s)| match team {
            Some(t) if s.is_team() => t,
            _ => i,
        })
        .collect()
}
