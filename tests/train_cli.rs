//! `refusal-guard train` end to end, on two small team files (each one source), without the
//! encoder: the binary trains the n-gram model and the combiner leave-one-source-out, writes
//! both and the report, and what it wrote loads through the pipeline's own loaders and
//! judges. A training path that runs but writes nothing usable (a head whose classes are
//! misnamed, a model that does not save) fails here, not at the next release.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use refusal_guard::classify::ngram::{NgramModel, PromptLanguages};
use refusal_guard::classify::ResponseLabel;
use refusal_guard::judge::combiner::Combiner;

fn team_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("models/data")
        .join(name)
}

/// `train --encoder none` on the team files `responses`, writing into `dir` (the n-gram
/// model, the combiner and the report: `ngram.safetensors`, `combiner.safetensors`,
/// `loso.md`), with `extra` arguments.
fn train(dir: &Path, responses: &[&str], extra: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_refusal-guard"));
    command.args(["train", "--encoder", "none"]);
    for name in responses {
        command.arg("--responses").arg(team_file(name));
    }
    command
        .arg("--out")
        .arg(dir.join("ngram.safetensors"))
        .arg("--combiner-out")
        .arg(dir.join("combiner.safetensors"))
        .arg("--report")
        .arg(dir.join("loso.md"))
        .args(extra)
        .output()
        .expect("the binary runs")
}

/// `train` for one epoch on the team's prompt files `prompts` alone (no answers), into
/// `dir`, with `extra` arguments; fails the test, with train's own message, if the run
/// fails.
fn train_one_epoch_on_prompts(dir: &Path, prompts: &[&str], extra: &[&str]) {
    let paths: Vec<String> = prompts
        .iter()
        .map(|f| team_file(f).to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["--epochs", "1"];
    for p in &paths {
        args.extend(["--prompts", p.as_str()]);
    }
    args.extend(extra);
    let run = train(dir, &[], &args);
    assert!(
        run.status.success(),
        "train failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn train_writes_models_that_load_and_judge() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ngram.safetensors");
    let combiner = dir.path().join("combiner.safetensors");
    let report = dir.path().join("loso.md");
    let stack = dir.path().join("stack.jsonl");
    let run = train(
        dir.path(),
        &["responses-en.jsonl", "responses-en2.jsonl"],
        &[
            "--epochs",
            "20",
            "--lr",
            "0.5",
            "--stack-out",
            stack.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "train failed: {stderr}");

    let model = NgramModel::load(&out).expect("the n-gram model loads");
    let head = model.response.as_ref().expect("a response head");
    let mut names = head.config.labels.clone();
    names.sort();
    assert_eq!(names, ["answer", "evasion", "inability", "refusal"]);
    let refusal = model
        .judge_response("I'm sorry, but I can't help with that request.")
        .expect("a reading");
    let answer = model
        .judge_response("Boil the egg for six and a half minutes, then cool it in ice water.")
        .expect("a reading");
    let non_answer = |p: &[f32; 4]| 1.0 - p[ResponseLabel::Answer.index()];
    assert!(
        non_answer(&refusal.probs) > non_answer(&answer.probs) + 0.2,
        "refusal {:?} against answer {:?}",
        refusal.probs,
        answer.probs
    );

    Combiner::load(&combiner).expect("the combiner loads");
    let table = std::fs::read_to_string(&report).expect("the report is written");
    for source in ["responses-en.jsonl", "responses-en2.jsonl"] {
        assert!(
            table.contains(source),
            "{source} missing from the report:\n{table}"
        );
    }

    // The combiner's training rows: a header naming the features, then one line per row
    // with the row's features out of source (no encoder in this run).
    let text = std::fs::read_to_string(&stack).expect("--stack-out writes its file");
    let mut lines = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap());
    let header = lines.next().expect("a header");
    let n = header["feature_names"].as_array().expect("feature names").len();
    assert_eq!(n, refusal_guard::judge::features::N_FEATURES);
    let rows: Vec<_> = lines.collect();
    for source in ["responses-en.jsonl", "responses-en2.jsonl"] {
        let of: Vec<_> = rows.iter().filter(|r| r["source"] == source).collect();
        assert!(of.len() > 100, "{source}: {} rows", of.len());
        assert!(of.iter().any(|r| r["window"] == true) && of.iter().any(|r| r["window"] == false));
    }
    let labels: std::collections::BTreeSet<_> = rows.iter().map(|r| r["label"].as_str().unwrap()).collect();
    assert_eq!(
        labels.into_iter().collect::<Vec<_>>(),
        ["answer", "evasion", "inability", "refusal"]
    );
    // Each row carries its request and text, so a probe can compute a new input beside the
    // features: a window row's text is the opening of its answer's.
    let whole = |r: &&serde_json::Value| r["window"] == false;
    for r in rows.iter().filter(|r| r["window"] == true).take(50) {
        let opening = r["text"].as_str().expect("a window row's text");
        assert!(
            rows.iter()
                .filter(whole)
                .any(|w| w["text"].as_str().unwrap().starts_with(opening) && w["prompt"] == r["prompt"]),
            "a window row's text opens a whole row's: {opening:?}"
        );
    }
    assert!(rows
        .iter()
        .filter(whole)
        .all(|r| !r["text"].as_str().unwrap().is_empty()));
    assert!(rows
        .iter()
        .any(|r| r["prompt"].as_str().is_some_and(|p| !p.is_empty())));
    for r in &rows {
        assert_eq!(r["features"].as_array().unwrap().len(), n);
        assert!(
            r["features_with_encoder"].is_null(),
            "no encoder in this run: {r}"
        );
    }
}

/// `--prompt-stack-out` writes every prompt row once, with the n-gram prompt head's harm
/// probability trained without the row's file, and no encoder reading in a run without one.
#[test]
fn train_writes_the_prompt_rows_out_of_file() {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("prompts.jsonl");
    let files = ["prompts-contrast.jsonl", "prompts-contrast2.jsonl"];
    let mut extra = vec!["--epochs", "2", "--prompt-stack-out", stack.to_str().unwrap()];
    let paths: Vec<String> = files
        .iter()
        .map(|f| team_file(f).to_string_lossy().into_owned())
        .collect();
    for p in &paths {
        extra.extend(["--prompts", p.as_str()]);
    }
    let run = train(dir.path(), &["responses-en.jsonl", "responses-en2.jsonl"], &extra);
    assert!(
        run.status.success(),
        "train failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(&stack).expect("--prompt-stack-out writes its file");
    let rows: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for (file, path) in files.iter().zip(&paths) {
        let labelled = std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count();
        let of: Vec<_> = rows.iter().filter(|r| r["file"] == *file).collect();
        assert_eq!(of.len(), labelled, "{file}: every labelled prompt once");
        assert!(of.iter().any(|r| r["harmful"] == true) && of.iter().any(|r| r["harmful"] == false));
    }
    let mut distinct = std::collections::BTreeSet::new();
    for r in &rows {
        let p = r["ngram"].as_f64().expect("an n-gram reading");
        assert!((0.0..=1.0).contains(&p), "{r}");
        distinct.insert((p * 1e6) as i64);
        assert!(
            r["e5_frozen"].is_null() && r["e5_tuned"].is_null(),
            "no encoder: {r}"
        );
        assert!(!r["text"].as_str().unwrap().is_empty());
    }
    assert!(
        distinct.len() > 10,
        "readings, not a constant: {}",
        distinct.len()
    );
}

/// A run on prompts alone writes a report of its own: run twice to the same path, the
/// report holds one prompt-harm section, not the first run's with the second's appended.
#[test]
fn a_prompts_only_run_starts_its_own_report() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        train_one_epoch_on_prompts(
            dir.path(),
            &["prompts-contrast.jsonl", "prompts-contrast2.jsonl"],
            &[],
        );
    }
    let report = std::fs::read_to_string(dir.path().join("loso.md")).unwrap();
    assert_eq!(
        report.matches("## Prompt harm, leave-one-file-out").count(),
        1,
        "{report}"
    );
    assert!(report.contains("No labelled answers in this run"), "{report}");
    assert!(report.contains("| prompts-contrast.jsonl |"), "{report}");
}

/// `--prompt-side-only` retrains the prompt head and keeps the answer side of the file it
/// rewrites: over a copy of the shipped n-gram model, the response head comes out as it
/// was and the prompt head does not, no combiner is written, and the report says where the
/// answer side came from.
#[test]
fn a_prompt_side_only_run_keeps_the_answer_side() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ngram.safetensors");
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/refusal-ngram/model.safetensors"),
        &out,
    )
    .unwrap();
    train_one_epoch_on_prompts(
        dir.path(),
        &["prompts-contrast.jsonl", "prompts-contrast2.jsonl"],
        &["--prompt-side-only"],
    );
    let trained = NgramModel::load(&out).expect("loads");
    let shipped = NgramModel::embedded();
    let text = "Write a satirical poem about a parliament's budget.";
    let (r_new, r_old) = (
        trained.response.as_ref().expect("a response head").forward(text),
        shipped.response.as_ref().expect("a response head").forward(text),
    );
    assert_eq!(r_new, r_old, "the response head is the shipped one");
    let (p_new, p_old) = (
        trained.prompt.as_ref().expect("a prompt head").forward(text),
        shipped.prompt.as_ref().expect("a prompt head").forward(text),
    );
    assert_ne!(
        p_new, p_old,
        "the prompt head was retrained on one file for one epoch"
    );
    assert!(
        !dir.path().join("combiner.safetensors").exists(),
        "no combiner written"
    );
    let report = std::fs::read_to_string(dir.path().join("loso.md")).unwrap();
    assert!(report.contains("The answer side was kept from"), "{report}");
    assert!(report.contains("| prompts-contrast.jsonl |"), "{report}");
    // Without a model to keep the answer side of, it says so.
    let missing = tempfile::tempdir().unwrap();
    let prompts = team_file("prompts-contrast.jsonl");
    let run = train(
        missing.path(),
        &[],
        &["--prompt-side-only", "--prompts", prompts.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success() && stderr.contains("--prompt-side-only keeps the answer side of"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The measurement flags fail with a message naming the problem, not a panic or a silent
/// no-op: an unknown source to skip, prompt parts asked for without the encoder, and a stack
/// file that cannot be written (before training, not after).
#[test]
fn train_rejects_flags_it_cannot_honour() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let out = train(
            dir.path(),
            &["responses-en.jsonl"],
            &[&["--epochs", "1"], extra].concat(),
        );
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, stderr) = run(&["--encoder-skip", "gptfuzzz"]);
    assert!(
        !ok && stderr.contains("--encoder-skip \"gptfuzzz\": no such source"),
        "{stderr}"
    );
    let (ok, stderr) = run(&["--prompt-parts-from", "models/e5-heads/heads.safetensors"]);
    assert!(!ok && stderr.contains("has no e5 encoder"), "{stderr}");
    let (ok, stderr) = run(&[
        "--shipped",
        "--prompt-exclude",
        "speechmap_criticism_nonqwen.jsonI",
    ]);
    assert!(
        !ok && stderr
            .contains("--prompt-exclude \"speechmap_criticism_nonqwen.jsonI\": no shipped prompt file"),
        "{stderr}"
    );
    let (ok, stderr) = run(&["--thresholds-on", "responses-en.jsonI"]);
    assert!(
        !ok && stderr.contains("--thresholds-on \"responses-en.jsonI\": no such source"),
        "{stderr}"
    );
    let (ok, stderr) = run(&["--shipped", "--response-exclude", "gptfuzzz"]);
    assert!(
        !ok && stderr.contains("--response-exclude \"gptfuzzz\": no shipped response source"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // An output file that cannot be created fails before any training, not after it.
    for flag in ["--stack-out", "--prompt-stack-out"] {
        let path = "/nonexistent-dir/out.jsonl";
        let (ok, stderr) = run(&[flag, path]);
        assert!(
            !ok && stderr.contains(&format!("{flag} {path}: ")),
            "{flag}: {stderr}"
        );
        assert!(
            !stderr.contains("leave-one-source-out"),
            "{flag}: failed only after training: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{flag}: {stderr}");
    }
    for share in ["1.5", "-0.1", "four"] {
        let (ok, stderr) = run(&[&format!("--escalation-cap={share}")]);
        assert!(
            !ok && stderr.contains("--escalation-cap")
                && stderr.contains(&format!("{share:?} is not a share from 0 to 1")),
            "{share}: {stderr}"
        );
    }
}

/// A trained prompt head records the languages it saw both sides of (where its reading may
/// clear a request), and they load with it: prompts-contrast.jsonl has harmful and benign
/// requests in English and Chinese, prompts-contrast8.jsonl in Finnish too.
#[test]
fn a_trained_prompt_head_knows_its_languages() {
    let dir = tempfile::tempdir().unwrap();
    train_one_epoch_on_prompts(
        dir.path(),
        &["prompts-contrast.jsonl", "prompts-contrast8.jsonl"],
        &[],
    );
    let model = NgramModel::load(&dir.path().join("ngram.safetensors")).expect("loads");
    assert_eq!(model.prompt_languages.codes(), ["en", "fi", "zh"]);
    assert!(!model.prompt_languages.covers("de") && model.prompt_languages.covers("fi"));
}

/// `--ngram-prompts` files train the n-gram prompt head like `--prompts` ones (here their
/// six languages join its learned ones, and the held-out table scores them); only e5's
/// prompt parts skip them, which a run without e5 cannot show.
#[test]
fn ngram_only_prompt_files_teach_the_ngram_head() {
    let dir = tempfile::tempdir().unwrap();
    let xx = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/data/ngram/prompts-contrast-xx.jsonl");
    let contrast = team_file("prompts-contrast.jsonl");
    let run = train(
        dir.path(),
        &[],
        &[
            "--epochs",
            "1",
            "--prompts",
            &contrast.to_string_lossy(),
            "--ngram-prompts",
            &xx.to_string_lossy(),
        ],
    );
    assert!(
        run.status.success(),
        "train failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let model = NgramModel::load(&dir.path().join("ngram.safetensors")).expect("loads");
    assert_eq!(
        model.prompt_languages.codes(),
        ["de", "en", "es", "fr", "ja", "ko", "ru", "zh"]
    );
    let report = std::fs::read_to_string(dir.path().join("loso.md")).unwrap();
    assert!(report.contains("| prompts-contrast-xx.jsonl | ko |"), "{report}");
}

/// The languages the shipped prompt head is trusted in (the `prompt.languages` its file
/// records) are those its training data has both sides of: recomputed here from the files
/// `train` reads by default, the n-gram-only ones (models/data/ngram/) among them.
#[test]
fn the_shipped_prompt_languages_are_those_of_its_training_data() {
    let datasets = refusal_guard::dataset::datasets_dir().unwrap_or_else(|e| panic!("{e}"));
    let mut files = refusal_guard::cli::train::shipped_prompt_files(&datasets);
    files.extend(refusal_guard::cli::train::shipped_ngram_prompt_files());
    let rows = refusal_guard::judge::fit::read_prompt_rows(&files).expect("the training files read");
    let learned = PromptLanguages::learned_from(rows.iter().map(|r| (r.lang.as_str(), r.harmful)));
    assert_eq!(NgramModel::embedded().prompt_languages, learned);
}

/// `train --short-head-only` on two team files and every eighth line of each short-reply
/// file of models/data/short/ (`--short-data`: the run's shape, every kind of file, at an
/// eighth of the encoder's work; the whole folder, embedded cold, made the e5 run the
/// suite's slowest test, 205 s on a 2-core machine against 46 s), with `encoder` (`e5` or `none`), writing into `dir`; fails the test,
/// with train's own message, if the run fails.
fn train_short_heads(dir: &Path, encoder: &str) -> String {
    let out = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let short = dir.join("short");
    std::fs::create_dir(&short).unwrap();
    let team_short = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/data/short");
    for file in std::fs::read_dir(&team_short).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            let text = std::fs::read_to_string(&path).unwrap();
            let every_eighth: String = text.lines().step_by(8).map(|l| format!("{l}\n")).collect();
            std::fs::write(short.join(path.file_name().unwrap()), every_eighth).unwrap();
        }
    }
    let mut command = Command::new(env!("CARGO_BIN_EXE_refusal-guard"));
    command.args(["train", "--short-head-only", "--encoder", encoder]);
    command.arg("--short-data").arg(&short);
    for name in ["responses-en.jsonl", "responses-zh.jsonl"] {
        command.arg("--responses").arg(team_file(name));
    }
    let run = command
        .args(["--short-out", &out("e5-short.safetensors")])
        .args(["--short-ngram-out", &out("ngram-short.safetensors")])
        .args(["--short-report", &out("short.md")])
        .args(["--embedding-cache", &out("e5.bin")])
        .args(["--out", &out("ngram.safetensors"), "--report", &out("loso.md")])
        .output()
        .expect("the binary runs");
    assert!(
        run.status.success(),
        "train failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report = std::fs::read_to_string(dir.join("short.md")).unwrap();
    for source in [
        "responses-en.jsonl",
        "responses-zh.jsonl",
        "team:short/responses-short-dev",
    ] {
        assert!(
            report.contains(&format!("| {source} | all |")),
            "{source} missing:\n{report}"
        );
    }
    assert!(
        !dir.join("ngram.safetensors").exists() && !dir.join("loso.md").exists(),
        "only the short heads are trained"
    );
    report
}

/// A `--short-data` folder with no short-reply file is refused by name, before anything is
/// trained or written: a mistyped folder must not train heads on the sources alone.
#[test]
fn an_empty_short_data_folder_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("no-replies-here");
    std::fs::create_dir(&empty).unwrap();
    let out = |f: &str| dir.path().join(f).to_string_lossy().into_owned();
    let run = Command::new(env!("CARGO_BIN_EXE_refusal-guard"))
        .args(["train", "--short-head-only", "--encoder", "none"])
        .arg("--responses")
        .arg(team_file("responses-en.jsonl"))
        .arg("--short-data")
        .arg(&empty)
        .args(["--short-ngram-out", &out("ngram-short.safetensors")])
        .args(["--short-report", &out("short.md")])
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(
        stderr.contains("no short-reply file") && stderr.contains("no-replies-here"),
        "{stderr}"
    );
    assert!(!dir.path().join("ngram-short.safetensors").exists());
    assert!(!dir.path().join("short.md").exists());
}

/// Without the encoder, `train --short-head-only` writes the embedded default's n-gram
/// short-reply head, which loads with its two thresholds and reads a refusal idiom above a plain
/// short answer, and no e5 head.
#[test]
fn train_short_head_only_writes_an_ngram_head_that_loads() {
    let dir = tempfile::tempdir().unwrap();
    let report = train_short_heads(dir.path(), "none");
    assert!(!report.contains("e5 tier's head"), "{report}");
    assert!(!dir.path().join("e5-short.safetensors").exists());
    let head = refusal_guard::classify::short_head::NgramShortHead::from_bytes(
        &std::fs::read(dir.path().join("ngram-short.safetensors")).unwrap(),
    )
    .unwrap();
    for t in [head.thresholds.one_line, head.thresholds.sentences] {
        assert!(t > 0.0 && t <= 1.0, "{t}");
    }
    let read = |t: &str| head.judge(t).non_answer();
    assert!(read("Not something I'll help with.") > read("The train leaves at 9:40."));
}

/// With multilingual-e5-small, it writes e5's head as well: it loads with its thresholds and
/// the encoder's sha256. Skipped without the model, a failure in CI.
#[test]
fn train_short_head_only_writes_an_e5_head_that_loads() {
    if common::e5_detectors().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let report = train_short_heads(dir.path(), "e5");
    assert!(report.contains("e5 tier's head"), "{report}");
    let head = refusal_guard::classify::short_head::ShortHead::from_bytes(
        &std::fs::read(dir.path().join("e5-short.safetensors")).unwrap(),
    )
    .unwrap();
    assert_eq!(head.dim(), 384);
    for t in [head.thresholds.one_line, head.thresholds.sentences] {
        assert!(t > 0.0 && t <= 1.0, "{t}");
    }
    assert_eq!(head.encoder_sha256.as_ref().map(String::len), Some(64));
}

/// The shipped n-gram answer head is what `train` writes from the files it reads by
/// default: the rows read again from the shared and team files (whole answers and their
/// 16-word stream windows) and the head trained on them with the default settings, tensor
/// for tensor. What this guards: a change to how training files are read, labelled,
/// deduplicated or cut into windows moves the model a full `train` writes away from the
/// shipped one, so the model card's command stops reproducing it. It happened once
/// unnoticed (2026-12-06: windows cut as stream pieces, 26 rows moved), and was found only
/// when a retrain's tensors were compared by hand.
#[test]
fn the_shipped_answer_head_is_what_train_writes() {
    use refusal_guard::judge::fit::{final_ngram, read_rows, shipped_sources, FitConfig};
    let datasets = refusal_guard::dataset::datasets_dir().unwrap_or_else(|e| panic!("{e}"));
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cfg = FitConfig::default();
    let rows = read_rows(
        &shipped_sources(&datasets, repo),
        cfg.window_tokens,
        &refusal_guard::tokens::TokenSplit::Pieces,
    )
    .expect("the training files read");
    let windows = rows.iter().filter(|r| r.window).count();
    let trained = final_ngram(&rows, &cfg).expect("the answer head trains");
    // Through the file format, as `train` writes it (embedding tables in f16).
    let shipped = NgramModel::embedded();
    let mut model = (*shipped).clone();
    model.response = Some(trained);
    let written = NgramModel::from_bytes(&model.to_bytes().unwrap()).unwrap();
    let (ours, theirs) = (written.response.unwrap(), shipped.response.clone().unwrap());
    let differing = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .filter(|(x, y)| x.to_bits() != y.to_bits())
            .count()
    };
    assert_eq!(
        (ours.embedding.len(), ours.weight.len(), ours.bias.len()),
        (theirs.embedding.len(), theirs.weight.len(), theirs.bias.len())
    );
    let moved = (
        differing(&ours.embedding, &theirs.embedding),
        differing(&ours.weight, &theirs.weight),
        differing(&ours.bias, &theirs.bias),
    );
    assert_eq!(
        moved,
        (0, 0, 0),
        "values moved (embedding, weight, bias) from {} rows, {windows} of them stream windows: \
         training reads its files differently from the run that wrote the shipped head",
        rows.len()
    );
}

/// The operator's loop (docs/operator-labels.md): `audit --review` picks answers of
/// unlabeled traffic to label, `train --responses` learns from the rows a person labeled
/// and skips the rest, and the gateway serves the retrained model with the combiner
/// trained beside it (`[guard] combiner`).
#[test]
fn reviewed_traffic_trains_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    // Traffic: a team file with its labels taken away, as a gateway's log has none.
    let gold: std::collections::HashMap<String, String> =
        std::fs::read_to_string(team_file("responses-en.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["id"].as_str().unwrap().to_string(),
                    v["label"].as_str().unwrap().to_string(),
                )
            })
            .collect();
    let traffic: String = std::fs::read_to_string(team_file("responses-en.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["label"] = serde_json::Value::Null;
            format!("{v}\n")
        })
        .collect();
    std::fs::write(path("traffic.jsonl"), traffic).unwrap();

    let audit = Command::new(env!("CARGO_BIN_EXE_refusal-guard"))
        .args([
            "audit",
            "--tier",
            "none",
            "--quiet",
            "--review-size",
            "40",
            "--review",
        ])
        .arg(path("queue.jsonl"))
        .arg(path("traffic.jsonl"))
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&audit.stderr);
    assert!(audit.status.success(), "{stderr}");
    assert!(stderr.contains("40 answers to label"), "{stderr}");
    let queue: Vec<serde_json::Value> = std::fs::read_to_string(path("queue.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(queue.len(), 40);
    assert!(queue
        .iter()
        .all(|l| l["label"].is_null() && l["suggested"].is_string()));
    assert!(
        queue[..20].iter().all(|l| l["why"] == "unsure"),
        "the least sure first"
    );
    assert!(queue[20..].iter().all(|l| l["why"] == "sample"));

    // One epoch on a team file and the reviewed file, the thresholds chosen on the reviewed
    // file alone: whether it ran, and what it said.
    let train_beside_en2 = |reviewed: &Path| {
        let name = reviewed.file_name().unwrap().to_str().unwrap();
        let run = train(
            dir.path(),
            &["responses-en2.jsonl"],
            &[
                "--epochs",
                "1",
                "--responses",
                reviewed.to_str().unwrap(),
                "--thresholds-on",
                name,
            ],
        );
        (
            run.status.success(),
            String::from_utf8_lossy(&run.stderr).to_string(),
        )
    };

    // Unreviewed, the queue teaches nothing, and train says so.
    let (ok, stderr) = train_beside_en2(&path("queue.jsonl"));
    assert!(
        !ok && stderr.contains("no labeled answer to train on"),
        "{stderr}"
    );

    // A reviewer labels 35 of the 40 (one misspelt); the other 5 stay null and are skipped.
    let reviewed: String = queue
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut l = l.clone();
            if i == 0 {
                // A misspelt label is not learned from: said, and skipped.
                l["label"] = "refusl".into();
            } else if i % 8 != 7 {
                l["label"] = gold[l["id"].as_str().unwrap()].clone().into();
            }
            format!("{l}\n")
        })
        .collect();
    std::fs::write(path("reviewed.jsonl"), reviewed).unwrap();
    let (ok, stderr) = train_beside_en2(&path("reviewed.jsonl"));
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("5 of 40 rows have no label yet and are skipped"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 of 40 rows have a label train does not learn from (the first: \"refusl\")"),
        "{stderr}"
    );
    assert!(stderr.contains("    34 answers"), "{stderr}");
    let report = std::fs::read_to_string(path("loso.md")).unwrap();
    assert!(
        report.contains("chosen on the reviewed.jsonl (`--thresholds-on`) out-of-source predictions"),
        "{report}"
    );

    // The gateway serves the retrained pair; a combiner that is not there is named.
    let config = |combiner: &str| {
        common::gateway_config(&format!(
            r#"
[providers.qwen]
base_url = "http://127.0.0.1:9/v1"

[[routes]]
model = "qwen-plus"
primary = "qwen"

[guard]
tiers = ["ngram:{}"]
combiner = "{combiner}"
"#,
            path("ngram.safetensors").display()
        ))
    };
    refusal_guard::gateway::Gateway::from_config(&config(path("combiner.safetensors").to_str().unwrap()))
        .expect("the retrained model and its combiner serve");
    let missing = path("no-combiner.safetensors");
    let err = match refusal_guard::gateway::Gateway::from_config(&config(missing.to_str().unwrap())) {
        Ok(_) => panic!("a missing combiner is refused"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("[guard] combiner") && err.contains("no-combiner.safetensors"),
        "{err}"
    );
}
