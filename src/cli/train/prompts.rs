//! The prompt side of `train`: the n-gram model's prompt head, e5's prompt head and the
//! fine-tuned prompt layer, each prompt file judged by models trained without it (the layer
//! only on the files `--tune-folds` holds out: a tuning takes minutes). Appends the
//! prompt-harm sections to the report the answer side wrote.

use std::path::{Path, PathBuf};

use crate::classify::data::{short_name, Provenance, PROMPT_LABELS};
use crate::classify::e5::{self, E5Encoder};
use crate::classify::encoder::Heads;
use crate::classify::ngram::PromptLanguages;
use crate::judge::fit::{
    is_contrast_style, prompts_out_of_source, prompts_out_of_source_vectors, read_prompt_rows,
    render_harm_by_file, render_harm_sweep, render_prompts, score_prompts, subset, train_prompt_ngram,
    train_prompt_vectors, write_prompt_stack, FitConfig, HarmSummary, PromptRow,
};
use crate::judge::tune::{prompts_tuned, TuneConfig};
use crate::judge::NGRAM_PROMPT_FINAL_FROM;

use super::{EarlyFile, Embedder, PromptWeights, TrainArgs, Trained, TuneFolds};

/// The prompt files of one run, and which of them only the n-gram prompt head reads.
pub(super) struct PromptFiles {
    files: Vec<PathBuf>,
    /// Per file: e5's prompt parts skip it (`--ngram-prompts`, models/data/ngram/).
    ngram_only: Vec<bool>,
}

impl PromptFiles {
    /// `both` are read by every prompt head, `ngram_only` by the n-gram head alone.
    pub(super) fn new(both: Vec<PathBuf>, ngram_only: Vec<PathBuf>) -> Self {
        let mut flags = vec![false; both.len()];
        flags.resize(both.len() + ngram_only.len(), true);
        let mut files = both;
        files.extend(ngram_only);
        Self {
            files,
            ngram_only: flags,
        }
    }
}

/// Trains the prompt side on `prompt_files` (nothing when they hold no labelled prompt):
/// prints the leave-one-file-out tables and appends them to the report, writes the prompt
/// rows (`--prompt-stack-out`), and returns the heads and layer to ship. `kept_prompt`:
/// e5's prompt parts kept from a heads file instead of trained (`--prompt-parts-from`);
/// e5 never reads the files `prompt_files` marks n-gram only.
pub(super) fn train(
    args: &TrainArgs,
    cfg: &FitConfig,
    prompt_files: &PromptFiles,
    prov: &mut Provenance,
    embedder: &Embedder,
    kept_prompt: Option<&(&PathBuf, Heads)>,
    stack_out: Option<&mut EarlyFile>,
) -> Result<Trained, Box<dyn std::error::Error>> {
    let PromptFiles {
        files: prompt_files,
        ngram_only,
    } = prompt_files;
    let prompt_rows = read_prompt_rows(prompt_files)?;
    if prompt_rows.is_empty() {
        return Ok(Trained::default());
    }
    let mut prompt_vectors = None;
    let mut prompt_layer = None;
    let names: Vec<String> = prompt_files.iter().map(|f| short_name(f)).collect();
    for (i, name) in names.iter().enumerate() {
        prov.files
            .push((name.clone(), prompt_rows.iter().filter(|r| r.source == i).count()));
    }
    eprintln!("prompt head: leave-one-file-out over {} files", names.len());
    let p = prompts_out_of_source(&prompt_rows, names.len(), cfg)?;
    // The encoder's held-out readings, for `--prompt-stack-out` (empty without e5).
    let mut frozen_held_out: Vec<Option<f32>> = Vec::new();
    let mut tuned_held_out: Vec<Option<f32>> = Vec::new();
    let policy = crate::judge::HarmPolicy::default();
    let all: Vec<Option<f32>> = p.iter().copied().map(Some).collect();
    let mut table = render_prompts(&score_prompts(&prompt_rows, &names, &all, policy.benign_below));
    let keys: Vec<(String, String, &str)> = prompt_rows
        .iter()
        .map(|r| (r.source.to_string(), r.harmful.to_string(), r.text.as_str()))
        .collect();
    let mut keep = subset(&keys, args.encoder_cap / 2);
    for (k, r) in keep.iter_mut().zip(&prompt_rows) {
        *k &= !ngram_only[r.source];
    }
    let skipped = ngram_only.iter().filter(|&&n| n).count();
    if skipped > 0 && embedder.encoder.is_some() {
        eprintln!("  e5's prompt parts skip {skipped} file(s) meant for the n-gram prompt head only");
    }
    if let Some(vs) = embedder.embed(
        prompt_rows.iter().map(|r| r.text.as_str()).collect(),
        keep.clone(),
        "prompts",
    )? {
        let pe = prompts_out_of_source_vectors(&prompt_rows, names.len(), &vs, cfg)?;
        let cascade = cascade_readings(&p, &pe, NGRAM_PROMPT_FINAL_FROM);
        table = format!(
            "n-gram prompt head alone, every prompt:\n\n{table}\ne5 prompt head alone (the embedded subset):\n\n{}\n\
             the cascade, n-gram when it reads harmful from {NGRAM_PROMPT_FINAL_FROM}, else e5 (the embedded subset):\n\n{}\n\
             The cascade's trade-off by flag threshold (the shipped policy re-routes a refusal only below \
             {}, and below {} when the refusal names harm):\n\n{}\nThe cascade file by file:\n\n{}",
            render_prompts(&score_prompts(&prompt_rows, &names, &pe, policy.benign_below)),
            render_prompts(&score_prompts(&prompt_rows, &names, &cascade, policy.benign_below)),
            policy.benign_below,
            policy.benign_below_named_harm,
            render_harm_sweep(&prompt_rows, &names, &cascade),
            render_harm_by_file(&prompt_rows, &names, &cascade)
        );
        if let Some((path, kept)) = kept_prompt {
            table.push_str(&format!(
                "\n## Prompt harm through e5's fine-tuned layer\n\nNot trained in this run: the e5 prompt head \
                 and fine-tuned layer were kept from `{}` (`--prompt-parts-from`); their leave-one-file-out \
                 tables are in the report of the run that trained them.\n",
                path.display()
            ));
            prompt_vectors = kept.prompt.clone();
            prompt_layer = kept.prompt_layer.clone();
        } else if let (Some(enc), true) = (embedder.encoder, args.tune_epochs > 0) {
            let folds: Vec<usize> = (0..names.len())
                .filter(|&i| match args.tune_folds {
                    TuneFolds::All => true,
                    TuneFolds::Contrast => is_contrast_style(&names[i]),
                    TuneFolds::None => false,
                })
                .collect();
            eprintln!(
                "fine-tuning {}'s layer {} for prompt harm: {} held-out files, then every file",
                e5::MODEL,
                args.prompt_depth,
                folds.len()
            );
            let tc = TuneConfig {
                epochs: args.tune_epochs,
                seed: args.seed,
                four_bit_weights: args.prompt_weights == PromptWeights::FourBit,
                layer_lr: args.prompt_layer_lr,
                average_last: args.prompt_average_last,
                ..TuneConfig::default()
            };
            let (held_out, tuned) =
                prompts_tuned(enc, &prompt_rows, &keep, &folds, args.prompt_depth, &tc, |m| {
                    eprintln!("  {m}")
                })?;
            table.push_str(&render_tuned(
                &prompt_rows,
                &names,
                &p,
                &pe,
                &held_out,
                args.prompt_depth,
                &tc,
            ));
            prompt_vectors = Some(tuned.head(&PROMPT_LABELS)?);
            prompt_layer = Some(tuned.layer_tensors()?);
            tuned_held_out = held_out;
        } else {
            // No tuning: e5's prompt head reads the frozen vectors.
            prompt_vectors = Some(train_prompt_vectors(&prompt_rows, &vs, |_| true, cfg)?);
        }
        frozen_held_out = pe;
    }
    if let Some(file) = stack_out {
        write_prompt_stack(
            &mut file.out,
            &prompt_rows,
            &names,
            &p,
            &frozen_held_out,
            &tuned_held_out,
        )
        .map_err(|e| file.error(e))?;
        eprintln!(
            "wrote {} prompt rows to {}",
            prompt_rows.len(),
            file.path.display()
        );
    }
    println!("{table}");
    // `run` started the report (the answer side's, or a header when there were no answers).
    let report = std::fs::read_to_string(&args.report)?;
    std::fs::write(
        &args.report,
        format!(
            "{report}\n## Prompt harm, leave-one-file-out (n-gram prompt head)\n\n\
             A prompt counts as flagged when its harm probability is not confidently benign \
             (>= {:.2}): its refusal is kept as justified.\n\n{table}",
            policy.benign_below
        ),
    )?;
    eprintln!(
        "training the shipped prompt head on {} prompts",
        prompt_rows.len()
    );
    let head = train_prompt_ngram(&prompt_rows, |_| true, cfg)?;
    Ok(Trained {
        ngram: Some(head),
        encoder_head: prompt_vectors,
        layer: prompt_layer,
        prompt_languages: Some(PromptLanguages::learned_from(
            prompt_rows.iter().map(|r| (r.lang.as_str(), r.harmful)),
        )),
    })
}

/// The e5 prompt parts of a heads file (`--prompt-parts-from`), checked to belong to the
/// encoder being trained on.
pub(super) fn kept_prompt_parts(path: &Path, enc: &E5Encoder) -> Result<Heads, Box<dyn std::error::Error>> {
    let heads = super::heads_trained_on(path, enc)
        .map_err(|e| format!("--prompt-parts-from {}: {e}", path.display()))?;
    if heads.prompt.is_none() {
        return Err(format!(
            "--prompt-parts-from {}: the file has no prompt head",
            path.display()
        )
        .into());
    }
    Ok(heads)
}

/// The prompt cascade as the pipeline runs it (`judge::Models::prompt`): the n-gram reading
/// when it finds the request harmful from `final_from` up, else the encoder's. A benign
/// n-gram reading is never final, however sure: the encoder checks it.
fn prompt_cascade(ngram: f32, encoder: f32, final_from: f32) -> f32 {
    if ngram >= final_from {
        ngram
    } else {
        encoder
    }
}

/// [`prompt_cascade`] over every row the encoder read (`None` where it did not).
fn cascade_readings(ngram: &[f32], encoder: &[Option<f32>], final_from: f32) -> Vec<Option<f32>> {
    ngram
        .iter()
        .zip(encoder)
        .map(|(n, e)| e.map(|e| prompt_cascade(*n, e, final_from)))
        .collect()
}

/// The values of the n-gram head's final-from threshold that [`render_ngram_say`] compares:
/// never (the encoder alone), the pipeline's, and lower ones, where the n-gram head's
/// "harmful" keeps a refusal that the encoder would have let go.
const NGRAM_FINAL_FROM_SWEEP: [f32; 6] = [1.01, 0.9, 0.7, 0.5, 0.3, 0.2];

/// How much the n-gram head's harmful reading should overrule the encoder's: the held-out
/// cascade at each of [`NGRAM_FINAL_FROM_SWEEP`], flagged at `flagged_from`.
fn render_ngram_say(
    rows: &[PromptRow],
    names: &[String],
    ngram: &[f32],
    encoder: &[Option<f32>],
    flagged_from: f32,
) -> String {
    let mut s = format!(
        "| n-gram reading final from | harmful flagged at {flagged_from}, mean over files (worst file) | \
         benign flagged, mean over files | benign flagged, contrast-style files |\n|---|---|---|---|\n"
    );
    for final_from in NGRAM_FINAL_FROM_SWEEP {
        let p = cascade_readings(ngram, encoder, final_from);
        let h = HarmSummary::at(rows, names, &p, flagged_from);
        let label = if final_from > 1.0 {
            "never (the encoder alone)".to_string()
        } else if final_from == NGRAM_PROMPT_FINAL_FROM {
            format!("{final_from} (the pipeline's)")
        } else {
            final_from.to_string()
        };
        s.push_str(&format!(
            "| {label} | {:.3} ({:.3}) | {:.3} | {:.3} |\n",
            h.harmful_mean, h.harmful_worst, h.benign_mean, h.benign_contrast
        ));
    }
    s
}

/// The fine-tuned prompt layer beside the frozen vectors, on the files it was held out of:
/// at the shipped flag threshold and a sweep.
fn render_tuned(
    rows: &[PromptRow],
    names: &[String],
    ngram: &[f32],
    frozen: &[Option<f32>],
    tuned: &[Option<f32>],
    depth: usize,
    tc: &TuneConfig,
) -> String {
    // The tuned layer is what the e5 tier judges requests with, so its tables flag at that
    // tier's policy, not the embedded default's.
    let policy = crate::judge::HarmPolicy::for_e5();
    let averaged = if tc.average_last > 0.0 {
        format!(", the last {} of the steps averaged", tc.average_last)
    } else {
        String::new()
    };
    let heading = format!(
        "\n## Prompt harm through e5's layer {depth} fine-tuned ({} passes, layer lr {}, head lr {}, {} weights{averaged}; \
         `crate::judge::tune`)\n\n",
        tc.epochs,
        tc.layer_lr,
        tc.head_lr,
        if tc.four_bit_weights { "4-bit" } else { "f32" }
    );
    if tuned.iter().all(Option::is_none) {
        // `--tune-folds none`: empty tables and a sweep over no rows would read as measured.
        return format!(
            "{heading}Not measured in this run: no file was held out of the tuning (`--tune-folds none`).\n"
        );
    }
    // Only the rows the tuned layer was held out on, for every column.
    let only =
        |p: &[Option<f32>]| -> Vec<Option<f32>> { p.iter().zip(tuned).map(|(p, t)| t.and(*p)).collect() };
    let cascade = cascade_readings(ngram, tuned, NGRAM_PROMPT_FINAL_FROM);
    let mut s = format!(
        "{heading}Each file below judged by a layer and head tuned without it, on the same \
         capped rows as the e5 tables above; flagged from {} (the e5 tier's policy, `HarmPolicy::for_e5`).\n\ne5 head over frozen vectors (as above):\n\n{}\n\
         fine-tuned layer:\n\n{}\nthe cascade, n-gram when it reads harmful from {NGRAM_PROMPT_FINAL_FROM}, else the fine-tuned layer:\n\n{}\n",
        policy.benign_below,
        render_prompts(&score_prompts(rows, names, &only(frozen), policy.benign_below)),
        render_prompts(&score_prompts(rows, names, tuned, policy.benign_below)),
        render_prompts(&score_prompts(rows, names, &cascade, policy.benign_below)),
    );
    for (what, p) in [
        ("frozen vectors", only(frozen)),
        ("fine-tuned", tuned.to_vec()),
        ("cascade with the fine-tuned layer", cascade),
    ] {
        s.push_str(&format!(
            "\nBy flag threshold, {what}, on these files:\n\n{}\nFile by file, {what}:\n\n{}",
            render_harm_sweep(rows, names, &p),
            render_harm_by_file(rows, names, &p)
        ));
    }
    s.push_str(&format!(
        "\nHow far the n-gram head's harmful reading should overrule the fine-tuned layer: the cascade with \
         the n-gram reading final from each value (a lower value keeps more refusals; the encoder's benign \
         reading decides below it):\n\n{}",
        render_ngram_say(rows, names, ngram, tuned, policy.benign_below)
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_cascade_is_the_pipelines() {
        // A harmful n-gram reading from the threshold up stands; below it, however benign
        // the n-gram head is, the encoder decides (the report scored a sure-benign n-gram
        // reading as final until 2026-12-05, which the pipeline never did).
        assert_eq!(prompt_cascade(0.95, 0.05, NGRAM_PROMPT_FINAL_FROM), 0.95);
        assert_eq!(prompt_cascade(0.02, 0.6, NGRAM_PROMPT_FINAL_FROM), 0.6);
        assert_eq!(prompt_cascade(0.6, 0.05, NGRAM_PROMPT_FINAL_FROM), 0.05);
        assert_eq!(prompt_cascade(0.6, 0.05, 0.5), 0.6);
    }

    #[test]
    fn the_ngram_say_table_moves_with_the_threshold() {
        let row = |harmful: bool| PromptRow {
            source: 0,
            lang: "en".into(),
            text: "x".into(),
            harmful,
        };
        let rows = vec![row(true), row(true), row(false), row(false)];
        let names = vec!["prompts-contrast.jsonl".to_string()];
        // The layer misses one harmful prompt that the n-gram head reads at 0.6, and
        // clears a benign one the n-gram head reads at 0.75.
        let ngram = [0.6, 0.95, 0.75, 0.01];
        let layer = [Some(0.05), Some(0.9), Some(0.02), Some(0.01)];
        let table = render_ngram_say(&rows, &names, &ngram, &layer, 0.15);
        let line = |label: &str| {
            table
                .lines()
                .find(|l| l.starts_with(&format!("| {label} ")))
                .unwrap_or_else(|| panic!("{label}: {table}"))
                .to_string()
        };
        assert!(
            line("never (the encoder alone)").contains("| 0.500 (0.500) | 0.000 |"),
            "{table}"
        );
        assert!(
            line("0.9 (the pipeline's)").contains("| 0.500 (0.500) | 0.000 |"),
            "{table}"
        );
        assert!(line("0.7").contains("| 0.500 (0.500) | 0.500 |"), "{table}");
        assert!(line("0.5").contains("| 1.000 (1.000) | 0.500 |"), "{table}");
    }

    #[test]
    fn a_tuning_with_no_held_out_file_says_it_measured_nothing() {
        let rows = vec![PromptRow {
            source: 0,
            lang: "en".into(),
            text: "how do I kill a stuck process".into(),
            harmful: false,
        }];
        let names = vec!["prompts-x.jsonl".to_string()];
        let tc = TuneConfig::default();
        let none = render_tuned(&rows, &names, &[0.1], &[Some(0.2)], &[None], 8, &tc);
        assert!(none.contains("Not measured in this run"), "{none}");
        assert!(!none.contains("| held-out file"), "{none}");
        let some = render_tuned(&rows, &names, &[0.1], &[Some(0.2)], &[Some(0.05)], 8, &tc);
        assert!(some.contains("| prompts-x.jsonl | en |"), "{some}");
        assert!(!some.contains("Not measured"), "{some}");
    }
}
